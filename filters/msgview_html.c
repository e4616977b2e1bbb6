/*
 * msgview_html.c - an HTML part reduced to the text a reader sees, with
 * libxml2's HTML parser in SAX mode (recovering, no network, no DTD, no
 * implied elements, the document's own charset hints ignored: the input
 * is already UTF-8). What is rendered: character data outside script,
 * style and template; entities decoded by libxml2, U+00A0 as a space;
 * block elements (HTML Living Standard §15.3) become line breaks, table
 * cells a space; white space collapsed as a browser does. Text a reader
 * does not see goes to a second output, the invisible text, as
 * SpamAssassin's HTML.pm (html_font_invisible) sorts it: inside elements
 * hidden by CSS (display:none, visibility:hidden) or the hidden
 * attribute, in a colour that is the background's or near it or invalid
 * (see font_low_contrast below), or in a font of size 1 or less.
 *
 * Also collected: URIs of link-bearing attributes (href, src, action,
 * background, data, formaction, poster, lowsrc, dynsrc, and meta refresh
 * URLs), each <a href> with its anchor text, and the struct mv_html
 * counters. Two counters are heuristics:
 *  - font_low_contrast: a run of text (hidden or not, outside script and
 *    style) whose colour is the background colour or near it (a distance
 *    under 12, channels weighted by brightness), with colours tracked as
 *    SpamAssassin's HTML.pm does so that its HTML_FONT_LOW_CONTRAST
 *    means the same here: text colour from font/basefont color, body
 *    text and CSS color; background only from CSS background(-color)
 *    (HTML.pm never applies bgcolor attributes); default black on white;
 *    colours read as its name_to_rgb (CSS names, "#" hex however short
 *    or long, rgb(), anything else "invalid"). font_invalid_color: text
 *    drawn in an invalid colour on the same terms;
 *  - obfuscation: a word split by inline tags or a comment with nothing
 *    between two lower-case letters ("v<b></b>iagra", "v<!-- -->iagra"),
 *    plus each numeric character reference that stands for an ASCII
 *    letter or digit ("&#118;iagra").
 *
 * libxml2 builds a tree while it parses and drops what it finds
 * misplaced: the document is fed inside an element of its own, with its
 * html, head and body tags renamed (see mask_structure()), so that all
 * of it is rendered, as a mail reader and SpamAssassin render it.
 *
 * Bounded: the element stack keeps STACK_MAX levels (deeper ones are
 * counted, not tracked); anchor texts and hrefs are cut at fixed sizes;
 * the rendering is at most the input's size plus one byte per tag.
 * Thread-safe: the SAX handler table is constant, all state is per call;
 * libxml2 itself is set up once by mv_html_global_init().
 */
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/HTMLparser.h>
#include <libxml/parser.h>

#include "msgview_int.h"
#include "util.h"

#define STACK_MAX  256
#define HREF_MAX   2048
#define ATEXT_MAX  512
#define FEED_CHUNK (1u << 20)
#define DEFAULT_FG 0x000000
#define DEFAULT_BG 0xffffff
#define C_INVALID  (-2) /* HTML.pm's "invalid" */
#define C_EMPTY	   (-3) /* its "#" (a "#" with no hex digits) */
#define C_TRANSP   (-4) /* CSS transparent, while a style is read */

/* Element kinds. */
#define K_BLOCK	 0x01u /* line break before and after */
#define K_CELL	 0x02u /* a space before and after */
#define K_SKIP	 0x04u /* content is not rendered */
#define K_INLINE 0x08u /* phrasing element: may split a word */

struct tag {
	const char *name;
	unsigned    kind;
};

/* HTML 4.01 and the HTML Living Standard, sorted for bsearch(). */
static const struct tag tags[] = { { "a", K_INLINE }, { "abbr", K_INLINE },
	{ "acronym", K_INLINE }, { "address", K_BLOCK }, { "applet", 0 },
	{ "area", 0 }, { "article", K_BLOCK }, { "aside", K_BLOCK },
	{ "audio", 0 }, { "b", K_INLINE }, { "base", 0 }, { "basefont", 0 },
	{ "bdi", K_INLINE }, { "bdo", K_INLINE }, { "bgsound", 0 },
	{ "big", K_INLINE }, { "blink", K_INLINE }, { "blockquote", K_BLOCK },
	{ "body", K_BLOCK }, { "br", 0 }, { "button", 0 }, { "canvas", 0 },
	{ "caption", K_BLOCK }, { "center", K_BLOCK }, { "cite", K_INLINE },
	{ "code", K_INLINE }, { "col", 0 }, { "colgroup", 0 },
	{ "data", K_INLINE }, { "datalist", 0 }, { "dd", K_BLOCK },
	{ "del", K_INLINE }, { "details", K_BLOCK }, { "dfn", K_INLINE },
	{ "dialog", K_BLOCK }, { "dir", K_BLOCK }, { "div", K_BLOCK },
	{ "dl", K_BLOCK }, { "dt", K_BLOCK }, { "em", K_INLINE },
	{ "embed", 0 }, { "fieldset", K_BLOCK }, { "figcaption", K_BLOCK },
	{ "figure", K_BLOCK }, { "font", K_INLINE }, { "footer", K_BLOCK },
	{ "form", K_BLOCK }, { "frame", 0 }, { "frameset", K_BLOCK },
	{ "h1", K_BLOCK }, { "h2", K_BLOCK }, { "h3", K_BLOCK },
	{ "h4", K_BLOCK }, { "h5", K_BLOCK }, { "h6", K_BLOCK }, { "head", 0 },
	{ "header", K_BLOCK }, { "hgroup", K_BLOCK }, { "hr", K_BLOCK },
	{ "html", K_BLOCK }, { "i", K_INLINE }, { "iframe", 0 }, { "img", 0 },
	{ "input", 0 }, { "ins", K_INLINE }, { "isindex", 0 },
	{ "kbd", K_INLINE }, { "keygen", 0 }, { "label", K_INLINE },
	{ "legend", K_BLOCK }, { "li", K_BLOCK }, { "link", 0 },
	{ "main", K_BLOCK }, { "map", 0 }, { "mark", K_INLINE },
	{ "marquee", K_BLOCK }, { "menu", K_BLOCK }, { "menuitem", 0 },
	{ "meta", 0 }, { "meter", 0 }, { "nav", K_BLOCK }, { "nobr", K_INLINE },
	{ "noembed", 0 }, { "noframes", 0 }, { "noscript", 0 }, { "object", 0 },
	{ "ol", K_BLOCK }, { "optgroup", K_BLOCK }, { "option", K_BLOCK },
	{ "output", 0 }, { "p", K_BLOCK }, { "param", 0 }, { "picture", 0 },
	{ "pre", K_BLOCK }, { "progress", 0 }, { "q", K_INLINE },
	{ "rp", K_INLINE }, { "rt", K_INLINE }, { "ruby", K_INLINE },
	{ "s", K_INLINE }, { "samp", K_INLINE }, { "script", K_SKIP },
	{ "section", K_BLOCK }, { "select", 0 }, { "small", K_INLINE },
	{ "source", 0 }, { "span", K_INLINE }, { "strike", K_INLINE },
	{ "strong", K_INLINE }, { "style", K_SKIP }, { "sub", K_INLINE },
	{ "summary", K_BLOCK }, { "sup", K_INLINE }, { "table", K_BLOCK },
	{ "tbody", 0 }, { "td", K_CELL }, { "template", K_SKIP },
	{ "textarea", 0 }, { "tfoot", 0 }, { "th", K_CELL }, { "thead", 0 },
	{ "time", K_INLINE }, { "title", K_BLOCK }, { "tr", K_BLOCK },
	{ "track", 0 }, { "tt", K_INLINE }, { "u", K_INLINE },
	{ "ul", K_BLOCK }, { "var", K_INLINE }, { "video", 0 }, { "wbr", 0 } };

struct level {
	uint32_t name; /* FNV-1a of the element name */
	int	 fg, bg;
	unsigned tiny : 1, hidden : 1, skip : 1;
};

struct hstate {
	struct mv_build *b;
	struct mv_html	*c;
	struct mv_buf	*out;
	struct mv_buf	*inv;		    /* the invisible text */
	int		 inv_nl, inv_space; /* its pending separators */
	size_t		 inv_shown; /* its bytes not hidden (tiny, faint) */

	struct level stack[STACK_MAX];
	size_t	     depth;    /* levels in stack */
	size_t	     overflow; /* levels past STACK_MAX */

	int pending_nl, pending_space;
	int last_alpha; /* the last rendered byte was a letter */
	int split;	/* an inline tag or comment since it */

	int    synthetic; /* the WRAPPER fed before the document */
	int    in_a;
	char   href[HREF_MAX + 1];
	char   atext[ATEXT_MAX + 1];
	size_t atextlen;
	int    aspace;
};

static int
tag_cmp(const void *k, const void *e)
{
	return strcmp(k, ((const struct tag *)e)->name);
}

static const struct tag *
tag_find(const char *name)
{
	return bsearch(name, tags, nitems(tags), sizeof(tags[0]), tag_cmp);
}

static struct level *
top(struct hstate *h)
{
	static const struct level root = { 0, DEFAULT_FG, DEFAULT_BG, 0, 0, 0 };

	return h->depth > 0 ? &h->stack[h->depth - 1] : (struct level *)&root;
}

/* ------------------------------------------------------------ colours */

static int
hex2(const char *s)
{
	int r = 0, i, c;

	for (i = 0; i < 2; i++) {
		c = ascii_lower((unsigned char)s[i]);
		if (c >= '0' && c <= '9')
			r = r * 16 + c - '0';
		else if (c >= 'a' && c <= 'f')
			r = r * 16 + c - 'a' + 10;
		else
			return -1;
	}
	return r;
}

/* CSS colour keywords (HTML 4's sixteen and CSS3's), sorted */
static const struct color_name {
	const char *name;
	int	    rgb;
} color_names[] = { { "aliceblue", 0xf0f8ff }, { "antiquewhite", 0xfaebd7 },
	{ "aqua", 0x00ffff }, { "aquamarine", 0x7fffd4 }, { "azure", 0xf0ffff },
	{ "beige", 0xf5f5dc }, { "bisque", 0xffe4c4 }, { "black", 0x000000 },
	{ "blanchedalmond", 0xffebcd }, { "blue", 0x0000ff },
	{ "blueviolet", 0x8a2be2 }, { "brown", 0xa52a2a },
	{ "burlywood", 0xdeb887 }, { "cadetblue", 0x5f9ea0 },
	{ "chartreuse", 0x7fff00 }, { "chocolate", 0xd2691e },
	{ "coral", 0xff7f50 }, { "cornflowerblue", 0x6495ed },
	{ "cornsilk", 0xfff8dc }, { "crimson", 0xdc143c }, { "cyan", 0x00ffff },
	{ "darkblue", 0x00008b }, { "darkcyan", 0x008b8b },
	{ "darkgoldenrod", 0xb8860b }, { "darkgray", 0xa9a9a9 },
	{ "darkgreen", 0x006400 }, { "darkgrey", 0xa9a9a9 },
	{ "darkkhaki", 0xbdb76b }, { "darkmagenta", 0x8b008b },
	{ "darkolivegreen", 0x556b2f }, { "darkorange", 0xff8c00 },
	{ "darkorchid", 0x9932cc }, { "darkred", 0x8b0000 },
	{ "darksalmon", 0xe9967a }, { "darkseagreen", 0x8fbc8f },
	{ "darkslateblue", 0x483d8b }, { "darkslategray", 0x2f4f4f },
	{ "darkslategrey", 0x2f4f4f }, { "darkturquoise", 0x00ced1 },
	{ "darkviolet", 0x9400d3 }, { "deeppink", 0xff1493 },
	{ "deepskyblue", 0x00bfff }, { "dimgray", 0x696969 },
	{ "dimgrey", 0x696969 }, { "dodgerblue", 0x1e90ff },
	{ "firebrick", 0xb22222 }, { "floralwhite", 0xfffaf0 },
	{ "forestgreen", 0x228b22 }, { "fuchsia", 0xff00ff },
	{ "gainsboro", 0xdcdcdc }, { "ghostwhite", 0xf8f8ff },
	{ "gold", 0xffd700 }, { "goldenrod", 0xdaa520 }, { "gray", 0x808080 },
	{ "green", 0x008000 }, { "greenyellow", 0xadff2f },
	{ "grey", 0x808080 }, { "honeydew", 0xf0fff0 }, { "hotpink", 0xff69b4 },
	{ "indianred", 0xcd5c5c }, { "indigo", 0x4b0082 },
	{ "ivory", 0xfffff0 }, { "khaki", 0xf0e68c }, { "lavender", 0xe6e6fa },
	{ "lavenderblush", 0xfff0f5 }, { "lawngreen", 0x7cfc00 },
	{ "lemonchiffon", 0xfffacd }, { "lightblue", 0xadd8e6 },
	{ "lightcoral", 0xf08080 }, { "lightcyan", 0xe0ffff },
	{ "lightgoldenrodyellow", 0xfafad2 }, { "lightgray", 0xd3d3d3 },
	{ "lightgreen", 0x90ee90 }, { "lightgrey", 0xd3d3d3 },
	{ "lightpink", 0xffb6c1 }, { "lightsalmon", 0xffa07a },
	{ "lightseagreen", 0x20b2aa }, { "lightskyblue", 0x87cefa },
	{ "lightslategray", 0x778899 }, { "lightslategrey", 0x778899 },
	{ "lightsteelblue", 0xb0c4de }, { "lightyellow", 0xffffe0 },
	{ "lime", 0x00ff00 }, { "limegreen", 0x32cd32 }, { "linen", 0xfaf0e6 },
	{ "magenta", 0xff00ff }, { "maroon", 0x800000 },
	{ "mediumaquamarine", 0x66cdaa }, { "mediumblue", 0x0000cd },
	{ "mediumorchid", 0xba55d3 }, { "mediumpurple", 0x9370db },
	{ "mediumseagreen", 0x3cb371 }, { "mediumslateblue", 0x7b68ee },
	{ "mediumspringgreen", 0x00fa9a }, { "mediumturquoise", 0x48d1cc },
	{ "mediumvioletred", 0xc71585 }, { "midnightblue", 0x191970 },
	{ "mintcream", 0xf5fffa }, { "mistyrose", 0xffe4e1 },
	{ "moccasin", 0xffe4b5 }, { "navajowhite", 0xffdead },
	{ "navy", 0x000080 }, { "oldlace", 0xfdf5e6 }, { "olive", 0x808000 },
	{ "olivedrab", 0x6b8e23 }, { "orange", 0xffa500 },
	{ "orangered", 0xff4500 }, { "orchid", 0xda70d6 },
	{ "palegoldenrod", 0xeee8aa }, { "palegreen", 0x98fb98 },
	{ "paleturquoise", 0xafeeee }, { "palevioletred", 0xdb7093 },
	{ "papayawhip", 0xffefd5 }, { "peachpuff", 0xffdab9 },
	{ "peru", 0xcd853f }, { "pink", 0xffc0cb }, { "plum", 0xdda0dd },
	{ "powderblue", 0xb0e0e6 }, { "purple", 0x800080 }, { "red", 0xff0000 },
	{ "rosybrown", 0xbc8f8f }, { "royalblue", 0x4169e1 },
	{ "saddlebrown", 0x8b4513 }, { "salmon", 0xfa8072 },
	{ "sandybrown", 0xf4a460 }, { "seagreen", 0x2e8b57 },
	{ "seashell", 0xfff5ee }, { "sienna", 0xa0522d },
	{ "silver", 0xc0c0c0 }, { "skyblue", 0x87ceeb },
	{ "slateblue", 0x6a5acd }, { "slategray", 0x708090 },
	{ "slategrey", 0x708090 }, { "snow", 0xfffafa },
	{ "springgreen", 0x00ff7f }, { "steelblue", 0x4682b4 },
	{ "tan", 0xd2b48c }, { "teal", 0x008080 }, { "thistle", 0xd8bfd8 },
	{ "tomato", 0xff6347 }, { "turquoise", 0x40e0d0 },
	{ "violet", 0xee82ee }, { "wheat", 0xf5deb3 }, { "white", 0xffffff },
	{ "whitesmoke", 0xf5f5f5 }, { "yellow", 0xffff00 },
	{ "yellowgreen", 0x9acd32 } };

static int
color_cmp(const void *k, const void *e)
{
	return strcmp(k, ((const struct color_name *)e)->name);
}

/* "#" + hex: HTML.pm's reading (non-hex dropped, 4-5 digits cut to 3,
   more than 6 to 6, 1-3 padded with 0 and doubled) */
static int
hex_color(const char *v, size_t n)
{
	char   d[8];
	size_t i, k = 0;

	for (i = 0; i < n && k < 6; i++)
		if (isxdigit((unsigned char)v[i]))
			d[k++] = (char)ascii_lower((unsigned char)v[i]);
	if (k == 0)
		return C_EMPTY;
	if (k == 4 || k == 5)
		k = 3;
	while (k % 3 != 0)
		d[k++] = '0';
	if (k == 3) {
		d[4] = d[5] = d[2];
		d[2] = d[3] = d[1];
		d[1] = d[0];
	}
	return hex2(d) << 16 | hex2(d + 2) << 8 | hex2(d + 4);
}

/* the numbers of "rgb(n, n, n)" or "rgb(n%, n%, n%)"; 0 if not so */
static int
rgb_numbers(const char *v, size_t n, long c[3])
{
	const char *p = v, *e = v + n, *q;
	int	    k, pct = -1;

	for (q = v; q + 4 <= e; q++)
		if (memcmp(q, "rgb(", 4) == 0)
			break;
	if (q + 4 > e)
		return 0;
	p = q + 4;
	for (k = 0; k < 3; k++) {
		if (k > 0) {
			if (p >= e || *p != ',')
				return 0;
			p++;
			while (p < e && isspace((unsigned char)*p))
				p++;
		}
		if (p >= e || !isdigit((unsigned char)*p))
			return 0;
		for (c[k] = 0; p < e && isdigit((unsigned char)*p); p++)
			c[k] = c[k] < 100000 ? c[k] * 10 + (*p - '0') : c[k];
		if (pct == -1)
			pct = p < e && *p == '%';
		if (pct) {
			if (p >= e || *p != '%')
				return 0;
			p++;
			c[k] = (long)((double)c[k] / 100 * 255);
		}
	}
	while (p < e && isspace((unsigned char)*p))
		p++;
	return p < e && *p == ')';
}

/*
 * A colour as HTML.pm's name_to_rgb reads it: 0xrrggbb, C_INVALID or
 * C_EMPTY. Names are CSS keywords; "#..." is hex however written;
 * rgb() is decimal or percent (each number written in hex and read back
 * as the hex above, so numbers over 255 come out odd as there); a bare
 * "rrggbb" is invalid.
 */
static int
sa_color(const char *v, size_t n)
{
	char			 lc[64], hx[40];
	const struct color_name *cn;
	size_t			 i;
	long			 c[3];
	int			 hexonly = 1;

	while (n > 0 && isspace((unsigned char)*v)) {
		v++;
		n--;
	}
	while (n > 0 && isspace((unsigned char)v[n - 1]))
		n--;
	if (n < sizeof(lc)) {
		for (i = 0; i < n; i++)
			lc[i] = (char)ascii_lower((unsigned char)v[i]);
		lc[n] = '\0';
		cn = bsearch(lc, color_names, nitems(color_names),
		    sizeof(color_names[0]), color_cmp);
		if (cn != NULL)
			return cn->rgb;
	}
	for (i = 0; i < n; i++)
		if (!(v[i] == '#' || isdigit((unsigned char)v[i]) ||
			(ascii_lower((unsigned char)v[i]) >= 'a' &&
			    ascii_lower((unsigned char)v[i]) <= 'f')))
			hexonly = 0;
	if (!hexonly) {
		char low[256];

		if (n >= sizeof(low))
			return C_INVALID;
		for (i = 0; i < n; i++)
			low[i] = (char)ascii_lower((unsigned char)v[i]);
		if (!rgb_numbers(low, n, c))
			return C_INVALID;
		snprintf(hx, sizeof(hx), "#%s%lx%s%lx%s%lx",
		    c[0] < 16 ? "0" : "", c[0], c[1] < 16 ? "0" : "", c[1],
		    c[2] < 16 ? "0" : "", c[2]);
		return hex_color(hx + 1, strlen(hx + 1));
	}
	if (n == 0 || v[0] != '#')
		return C_INVALID;
	return hex_color(v + 1, n - 1);
}

/* The first valid colour of the bottom layer of a CSS background
   value (HTML.pm's parse_css_background), C_INVALID if none. */
static int
css_background(const char *v, size_t n)
{
	size_t i, st, depth = 0;
	char   q = 0;
	int    c;

	/* the last layer: after the last top-level comma */
	st = 0;
	for (i = 0; i < n; i++) {
		if (q) {
			q = v[i] == q ? 0 : q;
			continue;
		}
		if (v[i] == '"' || v[i] == '\'')
			q = v[i];
		else if (v[i] == '(')
			depth++;
		else if (v[i] == ')' && depth > 0)
			depth--;
		else if (v[i] == ',' && depth == 0)
			st = i + 1;
	}
	for (i = st; i < n;) {
		size_t b;

		while (i < n && v[i] == ' ')
			i++;
		b = i;
		depth = 0;
		q = 0;
		while (i < n && (q || depth > 0 || v[i] != ' ')) {
			if (q)
				q = v[i] == q ? 0 : q;
			else if (v[i] == '"' || v[i] == '\'')
				q = v[i];
			else if (v[i] == '(')
				depth++;
			else if (v[i] == ')' && depth > 0 && --depth == 0) {
				i++;
				break;
			}
			i++;
		}
		if (i > b && (c = sa_color(v + b, i - b)) != C_INVALID)
			return c;
	}
	return C_INVALID;
}

/* text in this level's colours is (nearly) invisible to HTML.pm */
static int
low_contrast(const struct level *l)
{
	double r, g, b;

	if (l->fg == l->bg)
		return 1;
	if (l->fg < 0 || l->bg < 0)
		return 0;
	r = 0.2126 * (((l->fg >> 16) & 255) - ((l->bg >> 16) & 255));
	g = 0.7152 * (((l->fg >> 8) & 255) - ((l->bg >> 8) & 255));
	b = 0.0722 * ((l->fg & 255) - (l->bg & 255));
	return r * r + g * g + b * b < 144.0;
}

/* A CSS font-size that renders unreadably small (under 4px). */
static int
tiny_css_size(const char *v, size_t n)
{
	double x = 0, scale = 1;
	size_t i = 0;
	int    digits = 0;

	while (i < n && (v[i] == ' ' || v[i] == '\t'))
		i++;
	for (; i < n && v[i] >= '0' && v[i] <= '9'; i++, digits++)
		x = x * 10 + (v[i] - '0');
	if (i < n && v[i] == '.')
		for (i++; i < n && v[i] >= '0' && v[i] <= '9'; i++, digits++)
			x += (v[i] - '0') * (scale /= 10);
	if (digits == 0)
		return 0;
	if (x == 0)
		return 1;
	if (i + 2 <= n &&
	    (ascii_strncasecmp(v + i, "em", 2) == 0 ||
		ascii_strncasecmp(v + i, "ex", 2) == 0))
		return x * 16 < 4;
	if (i < n && v[i] == '%')
		return x * 16 / 100 < 4;
	return x < 4; /* px, pt, or no unit */
}

/* Apply one style="" attribute to a level. */
static void
apply_style(struct level *l, const char *s)
{
	const char *p = s, *colon, *semi, *v;
	size_t	    pn, vn;

	while (*p != '\0') {
		semi = strchr(p, ';');
		if (semi == NULL)
			semi = p + strlen(p);
		colon = memchr(p, ':', (size_t)(semi - p));
		if (colon != NULL) {
			while (
			    *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
				p++;
			pn = colon > p ? (size_t)(colon - p) : 0;
			while (
			    pn > 0 && (p[pn - 1] == ' ' || p[pn - 1] == '\t'))
				pn--;
			v = colon + 1;
			vn = (size_t)(semi - v);
			if (pn == 9 &&
			    ascii_strncasecmp(p, "font-size", 9) == 0)
				l->tiny = tiny_css_size(v, vn);
			else if (pn == 7 &&
			    ascii_strncasecmp(p, "display", 7) == 0) {
				while (vn > 0 && (*v == ' ' || *v == '\t')) {
					v++;
					vn--;
				}
				if (vn >= 4 &&
				    ascii_strncasecmp(v, "none", 4) == 0)
					l->hidden = 1;
			} else if (pn == 10 &&
			    ascii_strncasecmp(p, "visibility", 10) == 0) {
				while (vn > 0 && (*v == ' ' || *v == '\t')) {
					v++;
					vn--;
				}
				if (vn >= 6 &&
				    ascii_strncasecmp(v, "hidden", 6) == 0)
					l->hidden = 1;
			}
		}
		p = *semi != '\0' ? semi + 1 : semi;
	}
}

/* A CSS color value as HTML.pm's text_style reads it */
static int
css_color(const char *v, size_t n)
{
	char   lc[256];
	size_t i, k = 0;
	long   c[3] = { 0, 0, 0 };
	int    j = 0;

	while (n > 0 && isspace((unsigned char)*v)) {
		v++;
		n--;
	}
	while (n > 0 && isspace((unsigned char)v[n - 1]))
		n--;
	if (n >= sizeof(lc))
		return C_INVALID;
	for (i = 0; i < n; i++)
		lc[i] = (char)ascii_lower((unsigned char)v[i]);
	lc[n] = '\0';
	/* "\s*!\s*important" at the end */
	if (n >= 9 && memcmp(lc + n - 9, "important", 9) == 0) {
		k = n - 9;
		while (k > 0 && isspace((unsigned char)lc[k - 1]))
			k--;
		if (k > 0 && lc[k - 1] == '!') {
			k--;
			while (k > 0 && isspace((unsigned char)lc[k - 1]))
				k--;
			n = k;
			lc[n] = '\0';
		}
	}
	if (strstr(lc, "rgb") != NULL) {
		/* its digits and commas: the first three numbers */
		for (i = 0; i < n && j < 3; i++)
			if (lc[i] == ',')
				j++;
			else if (isdigit((unsigned char)lc[i]) && c[j] <= 255)
				c[j] = c[j] * 10 + (lc[i] - '0');
		for (j = 0; j < 3; j++)
			if (c[j] > 255)
				c[j] = 255;
		return (int)(c[0] << 16 | c[1] << 8 | c[2]);
	}
	if (strcmp(lc, "inherit") == 0)
		return C_EMPTY - 100; /* no change */
	if (strcmp(lc, "transparent") == 0)
		return C_TRANSP;
	return sa_color(lc, n);
}

/*
 * The colours of a style="" attribute, for the elements whose style
 * HTML.pm reads: "color:" and "background-color:" (no space before the
 * colon), "background:" (its bottom layer's first colour); transparent
 * is the parent's background, transparent text the new background.
 */
static void
style_colors(struct level *l, const char *s)
{
	const char *p = s, *semi, *v;
	int	    parent_bg = l->bg, c;
	size_t	    vn;

	while (*p != '\0') {
		semi = strchr(p, ';');
		if (semi == NULL)
			semi = p + strlen(p);
		while (p < semi && isspace((unsigned char)*p))
			p++;
		v = NULL;
		if (semi - p > 17 &&
		    ascii_strncasecmp(p, "background-color:", 17) == 0)
			v = p + 17;
		else if (semi - p > 6 && ascii_strncasecmp(p, "color:", 6) == 0)
			v = p + 6;
		if (v != NULL) {
			vn = (size_t)(semi - v);
			c = css_color(v, vn);
			if (strspn(v, " \t\r\n") >= vn || c == C_EMPTY - 100)
				;
			else if (p[0] == 'b' || p[0] == 'B')
				l->bg = c;
			else
				l->fg = c;
		} else if (semi - p > 11 &&
		    strncmp(p, "background:", 11) == 0) {
			char   lc[512];
			size_t i, n = (size_t)(semi - p - 11);

			if (n < sizeof(lc)) {
				for (i = 0; i < n; i++)
					lc[i] = (char)ascii_lower(
					    (unsigned char)p[11 + i]);
				while (
				    n > 0 && isspace((unsigned char)lc[n - 1]))
					n--;
				i = strspn(lc, " \t");
				if (i < n &&
				    (c = css_background(lc + i, n - i)) !=
					C_INVALID)
					l->bg = c;
			}
		}
		p = *semi != '\0' ? semi + 1 : semi;
	}
	if (l->bg == C_TRANSP)
		l->bg = parent_bg;
	if (l->fg == C_TRANSP)
		l->fg = l->bg;
}

/* ------------------------------------------------------------ text */

static int
is_ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

static int
is_letter(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static void
block_break(struct hstate *h)
{
	h->pending_nl = 1;
	h->inv_nl = 1;
	h->last_alpha = 0;
	h->split = 0;
}

/* A run of invisible text: appended to inv, white space collapsed. */
static void
invisible_text(struct hstate *h, const char *s, size_t n)
{
	struct mv_buf *o = h->inv;
	size_t	       i;

	mv_buf_reserve(o, n + 2);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] == 0xa0) {
			i++;
			c = ' ';
		}
		if (is_ws(c)) {
			h->inv_space = o->len > 0;
			continue;
		}
		if (h->inv_nl && o->len > 0)
			o->p[o->len++] = '\n';
		else if (h->inv_space && o->len > 0)
			o->p[o->len++] = ' ';
		h->inv_nl = h->inv_space = 0;
		o->p[o->len++] = (char)c;
		if (o->len + (n - i) + 2 >= o->cap)
			mv_buf_reserve(o, n - i + 2);
	}
	o->p[o->len] = '\0';
}

static void
anchor_text(struct hstate *h, const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n && h->atextlen < ATEXT_MAX; i++) {
		if (is_ws((unsigned char)s[i])) {
			h->aspace = h->atextlen > 0;
			continue;
		}
		if (h->aspace && h->atextlen + 1 < ATEXT_MAX)
			h->atext[h->atextlen++] = ' ';
		h->aspace = 0;
		h->atext[h->atextlen++] = s[i];
	}
}

/* anything but white space and NBSP */
static int
has_text(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if ((unsigned char)s[i] == 0xc2 && i + 1 < n &&
		    (unsigned char)s[i + 1] == 0xa0)
			i++;
		else if (!is_ws((unsigned char)s[i]) && s[i] != '\v')
			return 1;
	}
	return 0;
}

static void
render(struct hstate *h, const char *s, size_t n)
{
	struct level  *l = top(h);
	struct mv_buf *o = h->out;
	size_t	       i;
	int	       visible = 0, invis = 0;

	if (l->skip)
		return;
	/* HTML.pm's font tests read all text, shown or not */
	if (has_text(s, n)) {
		if (low_contrast(l))
			invis = 1, h->c->font_low_contrast++;
		else if (l->fg == C_INVALID || l->bg == C_INVALID)
			invis = 1, h->c->font_invalid_color++;
	}
	if (l->hidden || l->tiny)
		invis = 1;
	if (invis)
		invisible_text(h, s, n);
	if (l->hidden)
		return;
	if (h->in_a)
		anchor_text(h, s, n);
	if (invis) {
		/* not rendered, but still text for the counters */
		for (i = 0; i < n &&
		     (is_ws((unsigned char)s[i]) ||
			 (unsigned char)s[i] == 0xc2 ||
			 (unsigned char)s[i] == 0xa0);
		     i++)
			;
		if (i == n)
			return;
		if (h->split && h->last_alpha && s[i] >= 'a' && s[i] <= 'z' &&
		    !h->pending_space && !h->pending_nl && i == 0)
			h->c->obfuscation++;
		h->last_alpha = s[n - 1] >= 'a' && s[n - 1] <= 'z';
		h->split = 0;
		if (l->tiny)
			h->c->font_tiny++;
		h->inv_shown += n - i;
		return;
	}
	mv_buf_reserve(o, n + 2);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		int	      nbsp =
		    c == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] == 0xa0;

		/* NBSP renders as a space; rules want it as one. */
		if (nbsp)
			i++;
		if (nbsp || is_ws(c)) {
			if (o->len > 0 && o->p[o->len - 1] != '\n')
				h->pending_space = 1;
			h->last_alpha = 0;
			h->split = 0;
			continue;
		}
		if (!visible) {
			visible = 1;
			if (h->split && h->last_alpha && c >= 'a' && c <= 'z' &&
			    !h->pending_space && !h->pending_nl)
				h->c->obfuscation++;
		}
		if (h->pending_nl) {
			if (o->len > 0 && o->p[o->len - 1] != '\n')
				o->p[o->len++] = '\n';
		} else if (h->pending_space)
			o->p[o->len++] = ' ';
		h->pending_nl = h->pending_space = 0;
		o->p[o->len++] = (char)c;
		/* Reserve kept room for at most 2 extra bytes per run. */
		if (o->len + (n - i) + 2 >= o->cap)
			mv_buf_reserve(o, n - i + 2);
	}
	o->p[o->len] = '\0';
	if (visible) {
		h->last_alpha = s[n - 1] >= 'a' && s[n - 1] <= 'z';
		h->split = 0;
		if (l->tiny)
			h->c->font_tiny++;
	}
}

/* ------------------------------------------------------------ anchors */

static void
anchor_end(struct hstate *h)
{
	char hhost[256], hdom[256], tdom[256];

	if (!h->in_a)
		return;
	h->in_a = 0;
	mv_uri_add(h->b, h->href, strlen(h->href), MV_URI_HTML | MV_URI_ANCHOR,
	    h->atext, h->atextlen);
	h->atext[h->atextlen] = '\0';
	if (h->atextlen > 0 &&
	    mv_uri_text_domain(h->atext, h->atextlen, tdom, sizeof(tdom)) ==
		0 &&
	    mv_uri_host(h->href, strlen(h->href), hhost, sizeof(hhost), hdom,
		sizeof(hdom)) == 0 &&
	    ascii_strcasecmp(tdom, hdom) != 0)
		h->c->anchors_text_url++;
}

/* meta http-equiv=refresh content="5; url=http://..." */
static void
meta_refresh(struct hstate *h, const char *content)
{
	const char *p = content;

	for (; *p != '\0'; p++)
		if (ascii_strncasecmp(p, "url", 3) == 0) {
			p += 3;
			while (*p == ' ')
				p++;
			if (*p != '=')
				continue;
			p++;
			while (*p == ' ' || *p == '\'' || *p == '"')
				p++;
			mv_uri_add(
			    h->b, p, strcspn(p, "'\""), MV_URI_HTML, NULL, 0);
			return;
		}
}

/* ------------------------------------------------------------ structure */

/*
 * libxml2 (2.9) builds a tree as it parses, and mail HTML upsets it:
 *  - it drops all that follows the end of the top-level element (a
 *    notice before <html>, a stray </div> after a table, a list footer
 *    after </html>), so the document goes inside an element of its own,
 *    WRAPPER, that nothing in the document can end: a document's tags
 *    named like it are renamed (MASK_PREFIX doubled);
 *  - it drops a misplaced html, head or body tag with its attributes (a
 *    second <body text=...>, a <body> after content: no line break), so
 *    these three are renamed too, as elements of no meaning to it, as
 *    SpamAssassin's HTML::Parser (a tokenizer) sees them.
 * unmask() gives the renamed ones their names back.
 */
#define MASK_PREFIX "moat-"
#define WRAPPER	    MASK_PREFIX "root"

static int
structure_tag(const char *s, size_t n)
{
	return n == 4 &&
	    (ascii_strncasecmp(s, "html", 4) == 0 ||
		ascii_strncasecmp(s, "head", 4) == 0 ||
		ascii_strncasecmp(s, "body", 4) == 0);
}

/*
 * html[0..n) into out with MASK_PREFIX before the name of every start or
 * end tag named html, head or body (any case, then white space, "/", ">"
 * or the end) or whose name starts with MASK_PREFIX. The output is at
 * most twice n bytes (a renamed tag is 5 bytes or more).
 */
static void
mask_structure(const char *html, size_t n, struct mv_buf *out)
{
	const size_t plen = sizeof(MASK_PREFIX) - 1;
	const char  *p = html, *end = html + n, *lt, *name;
	size_t	     k;

	out->len = 0;
	mv_buf_reserve(out, n + 64);
	while ((lt = memchr(p, '<', (size_t)(end - p))) != NULL) {
		name = lt + 1;
		if (name < end && *name == '/')
			name++;
		for (k = 0; name + k < end && k < 5 &&
		     is_letter((unsigned char)name[k]);
		     k++)
			;
		mv_buf_add(out, p, (size_t)(name - p));
		if ((structure_tag(name, k) &&
			(name + k == end || name[k] == '>' || name[k] == '/' ||
			    is_ws((unsigned char)name[k]))) ||
		    ((size_t)(end - name) >= plen &&
			ascii_strncasecmp(name, MASK_PREFIX, plen) == 0))
			mv_buf_add(out, MASK_PREFIX, plen);
		p = name;
	}
	mv_buf_add(out, p, (size_t)(end - p));
}

/* A renamed html, head or body: its name again. */
static const char *
unmask(const char *name)
{
	const size_t plen = sizeof(MASK_PREFIX) - 1;

	if (strncmp(name, MASK_PREFIX, plen) == 0 &&
	    structure_tag(name + plen, strlen(name + plen)))
		return name + plen;
	return name;
}

/* ------------------------------------------------------------ SAX */

static int
is_uri_attr(const char *a)
{
	static const char *const names[] = { "href", "src", "action",
		"background", "data", "formaction", "poster", "lowsrc",
		"dynsrc" };
	size_t			 i;

	for (i = 0; i < nitems(names); i++)
		if (strcmp(a, names[i]) == 0)
			return 1;
	return 0;
}

static unsigned
number(const char *v)
{
	unsigned long x = strtoul(v, NULL, 10);

	return x > 10000 ? 10000 : (unsigned)x;
}

/* elements whose style="" colours HTML.pm reads */
static int
sa_style_elem(const char *name)
{
	static const char *const e[] = { "table", "td", "th", "tr", "span", "p",
		"div", "a" };
	size_t			 i;

	for (i = 0; i < nitems(e); i++)
		if (strcmp(name, e[i]) == 0)
			return 1;
	return 0;
}

static void
sax_start(void *ctx, const xmlChar *xname, const xmlChar **atts)
{
	struct hstate	 *h = ctx;
	const char	 *name = unmask((const char *)xname), *a, *v;
	const struct tag *t = tag_find(name);
	unsigned	  kind = t != NULL ? t->kind : 0;
	struct level	  l = *top(h);
	unsigned	  w = 0, ht = 0;
	const char	 *equiv = NULL, *content = NULL;
	int		  is_a = strcmp(name, "a") == 0;
	size_t		  i;

	if (h->synthetic && strcmp((const char *)xname, WRAPPER) == 0) {
		/* not the document's: a level of its own, not counted */
		h->synthetic = 0;
		l.name = fnv1a(FNV1A_INIT, WRAPPER, sizeof(WRAPPER) - 1);
		h->stack[h->depth++] = l;
		return;
	}
	h->c->tags++;
	if (t == NULL)
		h->c->bad_tags++;
	if (kind & K_BLOCK)
		block_break(h);
	else if (kind & K_CELL) {
		h->pending_space = h->out->len > 0;
		h->last_alpha = 0;
	} else if (kind & K_INLINE)
		h->split = 1;
	else
		h->last_alpha = 0;
	if (kind & K_SKIP)
		l.skip = 1;
	l.name = fnv1a(FNV1A_INIT, name, strlen(name));

	if (strcmp(name, "br") == 0) {
		/* A line break; runs of them leave one empty line. */
		if (!l.skip && !l.hidden && h->out->len > 0 &&
		    !(h->out->len >= 2 && h->out->p[h->out->len - 1] == '\n' &&
			h->out->p[h->out->len - 2] == '\n'))
			mv_buf_addc(h->out, '\n');
		h->pending_nl = h->pending_space = 0;
		h->last_alpha = 0;
	} else if (strcmp(name, "img") == 0)
		h->c->images++;
	else if (strcmp(name, "script") == 0)
		h->c->scripts++;
	else if (strcmp(name, "iframe") == 0)
		h->c->iframes++;
	else if (strcmp(name, "form") == 0)
		h->c->forms++;
	else if (strcmp(name, "embed") == 0 || strcmp(name, "object") == 0 ||
	    strcmp(name, "applet") == 0)
		h->c->embeds++;
	else if (strcmp(name, "title") == 0)
		h->c->title = 1;
	else if (is_a)
		anchor_end(h); /* an <a> inside an <a> closes it */

	for (i = 0; atts != NULL && atts[i] != NULL; i += 2) {
		a = (const char *)atts[i];
		v = atts[i + 1] != NULL ? (const char *)atts[i + 1] : "";
		if (is_a && strcmp(a, "href") == 0) {
			h->c->anchors++;
			h->in_a = 1;
			strfmt(h->href, sizeof(h->href), "%s", v);
			h->atextlen = 0;
			h->aspace = 0;
		} else if (is_uri_attr(a))
			mv_uri_add(h->b, v, strlen(v), MV_URI_HTML, NULL, 0);
		else if (strcmp(a, "style") == 0) {
			apply_style(&l, v);
			if (sa_style_elem(name))
				style_colors(&l, v);
		} else if ((strcmp(a, "color") == 0 &&
			       (strcmp(name, "font") == 0 ||
				   strcmp(name, "basefont") == 0)) ||
		    (strcmp(a, "text") == 0 && strcmp(name, "body") == 0))
			l.fg = sa_color(v, strlen(v));
		else if (strcmp(a, "size") == 0 && strcmp(name, "font") == 0) {
			long s = strtol(v, NULL, 10);

			/* 1..7, or relative to 3 with a sign. */
			if (*v == '-' || *v == '+')
				s += 3;
			l.tiny = s <= 1;
		} else if (strcmp(a, "hidden") == 0)
			l.hidden = 1;
		else if (strcmp(a, "width") == 0)
			w = number(v);
		else if (strcmp(a, "height") == 0)
			ht = number(v);
		else if (strcmp(a, "http-equiv") == 0)
			equiv = v;
		else if (strcmp(a, "content") == 0)
			content = v;
	}
	if (strcmp(name, "img") == 0)
		h->c->image_area += (uint64_t)w * ht;
	if (equiv != NULL && content != NULL &&
	    ascii_strcasecmp(equiv, "refresh") == 0)
		meta_refresh(h, content);

	if (h->depth < STACK_MAX)
		h->stack[h->depth++] = l;
	else
		h->overflow++;
}

static void
sax_end(void *ctx, const xmlChar *xname)
{
	struct hstate	 *h = ctx;
	const char	 *name = unmask((const char *)xname);
	const struct tag *t = tag_find(name);
	uint32_t	  hn = fnv1a(FNV1A_INIT, name, strlen(name));
	size_t		  i;

	if (t != NULL && (t->kind & K_BLOCK))
		block_break(h);
	else if (t != NULL && (t->kind & K_CELL))
		h->pending_space = h->out->len > 0;
	else if (t != NULL && (t->kind & K_INLINE))
		h->split = 1;
	if (strcmp(name, "a") == 0)
		anchor_end(h);
	if (h->overflow > 0) {
		h->overflow--;
		return;
	}
	/* libxml2 balances its events; this only guards against surprises. */
	for (i = h->depth; i > 0 && h->depth - i < 8; i--)
		if (h->stack[i - 1].name == hn) {
			h->depth = i - 1;
			return;
		}
}

static void
sax_text(void *ctx, const xmlChar *ch, int len)
{
	if (len > 0)
		render(ctx, (const char *)ch, (size_t)len);
}

static void
sax_comment(void *ctx, const xmlChar *value)
{
	struct hstate *h = ctx;

	h->c->comments++;
	h->split = 1;
}

static void
sax_ignore(void *ctx, const xmlChar *value, int len)
{
}

static const htmlSAXHandler sax = {
	.startElement = sax_start,
	.endElement = sax_end,
	.characters = sax_text,
	.ignorableWhitespace = sax_text,
	.comment = sax_comment,
	.cdataBlock = sax_ignore,
};

void
mv_html_global_init(void)
{
	xmlInitParser();
}

/* Numeric references to ASCII letters and digits: &#118; &#x76; */
static unsigned
entity_letters(const char *s, size_t n)
{
	unsigned    count = 0;
	const char *p = s, *end = s + n;
	unsigned    v;
	int	    hex, digits;

	while ((p = memchr(p, '&', (size_t)(end - p))) != NULL) {
		p++;
		if (p >= end || *p != '#')
			continue;
		p++;
		hex = p < end && (*p == 'x' || *p == 'X');
		p += hex;
		for (v = 0, digits = 0; p < end && digits < 8; p++, digits++) {
			int c = ascii_lower((unsigned char)*p), d;

			if (c >= '0' && c <= '9')
				d = c - '0';
			else if (hex && c >= 'a' && c <= 'f')
				d = c - 'a' + 10;
			else
				break;
			v = v * (hex ? 16 : 10) + (unsigned)d;
		}
		if (digits > 0 && v < 128 &&
		    ((v >= '0' && v <= '9') || is_letter((unsigned char)v)))
			count++;
	}
	return count;
}

void
mv_html_render(struct mv_build *b, const char *html, size_t n,
    struct mv_buf *out, struct mv_buf *inv)
{
	struct hstate	 *h;
	htmlParserCtxtPtr ctxt;
	struct mv_buf	  m = { NULL, 0, 0 };
	size_t		  off = 0, k;

	out->len = 0;
	mv_buf_reserve(out, n + 16);
	out->p[0] = '\0';
	h = xcalloc(1, sizeof(*h));
	h->b = b;
	h->c = &b->v->html;
	h->out = out;
	inv->len = 0;
	mv_buf_reserve(inv, 16);
	inv->p[0] = '\0';
	h->inv = inv;
	h->c->parts++;
	h->c->raw += n;
	h->c->obfuscation += entity_letters(html, n);

	ctxt = htmlCreatePushParserCtxt(
	    (htmlSAXHandlerPtr)&sax, h, NULL, 0, NULL, XML_CHAR_ENCODING_UTF8);
	if (ctxt != NULL) {
		htmlCtxtUseOptions(ctxt,
		    HTML_PARSE_RECOVER | HTML_PARSE_NONET | HTML_PARSE_NOERROR |
			HTML_PARSE_NOWARNING | HTML_PARSE_NOIMPLIED |
			HTML_PARSE_NODEFDTD | HTML_PARSE_IGNORE_ENC);
		/* libxml2 (2.9) loses all that follows a <head> or <title>
		   after top-level content ("junk <html><head>...", a
		   <font>notice</font> before the <!DOCTYPE>), and all that
		   follows the end of the top-level element: the document
		   goes inside the WRAPPER, not counted */
		for (k = 0; k < n && is_ws((unsigned char)html[k]); k++)
			;
		if (k < n) {
			h->synthetic = 1;
			htmlParseChunk(
			    ctxt, "<" WRAPPER ">", (int)sizeof(WRAPPER) + 1, 0);
		}
		mask_structure(html, n, &m);
		do {
			k = m.len - off < FEED_CHUNK ? m.len - off : FEED_CHUNK;
			htmlParseChunk(
			    ctxt, m.p + off, (int)k, off + k == m.len);
			off += k;
		} while (off < m.len);
		htmlFreeParserCtxt(ctxt);
		mv_buf_free(&m);
	}
	anchor_end(h);
	while (out->len > 0 &&
	    (out->p[out->len - 1] == '\n' || out->p[out->len - 1] == ' '))
		out->len--;
	out->p[out->len] = '\0';
	/* the text counted as before: all but the hidden */
	h->c->text += out->len + h->inv_shown;
	free(h);
}
