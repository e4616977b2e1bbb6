/*
 * msgview_html.c - an HTML part reduced to the text a reader sees, with
 * libxml2's HTML parser in SAX mode (recovering, no network, no DTD, no
 * implied elements, the document's own charset hints ignored: the input
 * is already UTF-8). What is rendered: character data outside script,
 * style and template and outside elements hidden by CSS (display:none,
 * visibility:hidden) or the hidden attribute; entities decoded by
 * libxml2; block elements (HTML Living Standard §15.3) become line
 * breaks, table cells a space; white space collapsed as a browser does.
 *
 * Also collected: URIs of link-bearing attributes (href, src, action,
 * background, data, formaction, poster, lowsrc, dynsrc, and meta refresh
 * URLs), each <a href> with its anchor text, and the struct mv_html
 * counters. Two counters are heuristics:
 *  - font_low_contrast: a run of visible text whose colour (font color,
 *    CSS color, body text) is within COLOR_NEAR (sum of the RGB channel
 *    differences) of the background colour in effect (bgcolor, CSS
 *    background(-color), default white on black text);
 *  - obfuscation: a word split by inline tags or a comment with nothing
 *    between the letters ("v<b></b>iagra", "v<!-- -->iagra"), plus each
 *    numeric character reference that stands for an ASCII letter or
 *    digit ("&#118;iagra").
 *
 * Bounded: the element stack keeps STACK_MAX levels (deeper ones are
 * counted, not tracked); anchor texts and hrefs are cut at fixed sizes;
 * the rendering is at most the input's size plus one byte per tag.
 * Thread-safe: the SAX handler table is constant, all state is per call;
 * libxml2 itself is set up once by mv_html_global_init().
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/HTMLparser.h>
#include <libxml/parser.h>

#include "msgview_int.h"
#include "util.h"

#define STACK_MAX  256
#define HREF_MAX   2048
#define ATEXT_MAX  512
#define COLOR_NEAR 40
#define FEED_CHUNK (1u << 20)
#define DEFAULT_FG 0x000000
#define DEFAULT_BG 0xffffff

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

	struct level stack[STACK_MAX];
	size_t	     depth;    /* levels in stack */
	size_t	     overflow; /* levels past STACK_MAX */

	int pending_nl, pending_space;
	int last_alpha; /* the last rendered byte was a letter */
	int split;	/* an inline tag or comment since it */

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

/* A CSS / HTML colour: #rgb, #rrggbb, rrggbb, rgb(r,g,b), a few names. */
static int
parse_color(const char *v, size_t n)
{
	static const struct {
		const char *name;
		int	    rgb;
	} names[] = { { "black", 0x000000 }, { "white", 0xffffff },
		{ "red", 0xff0000 }, { "green", 0x008000 },
		{ "blue", 0x0000ff }, { "yellow", 0xffff00 },
		{ "gray", 0x808080 }, { "grey", 0x808080 },
		{ "silver", 0xc0c0c0 }, { "maroon", 0x800000 },
		{ "purple", 0x800080 }, { "fuchsia", 0xff00ff },
		{ "lime", 0x00ff00 }, { "olive", 0x808000 },
		{ "navy", 0x000080 }, { "teal", 0x008080 },
		{ "aqua", 0x00ffff }, { "orange", 0xffa500 },
		{ "whitesmoke", 0xf5f5f5 }, { "snow", 0xfffafa },
		{ "ivory", 0xfffff0 }, { "lightgrey", 0xd3d3d3 },
		{ "lightgray", 0xd3d3d3 }, { "gainsboro", 0xdcdcdc } };
	char   buf[8];
	size_t i;
	int    r, g, bl;

	while (n > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		n--;
	}
	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	if (n > 0 && *v == '#') {
		v++;
		n--;
	}
	if (n == 3) {
		for (i = 0; i < 3; i++) {
			buf[2 * i] = v[i];
			buf[2 * i + 1] = v[i];
		}
		v = buf;
		n = 6;
	}
	if (n == 6 && (r = hex2(v)) >= 0 && (g = hex2(v + 2)) >= 0 &&
	    (bl = hex2(v + 4)) >= 0)
		return r << 16 | g << 8 | bl;
	if (n > 4 && ascii_strncasecmp(v, "rgb(", 4) == 0) {
		unsigned c[3] = { 0, 0, 0 }, k = 0;

		for (i = 4; i < n && k < 3; i++) {
			if (v[i] >= '0' && v[i] <= '9')
				c[k] = c[k] * 10 + (unsigned)(v[i] - '0');
			else if (v[i] == ',')
				k++;
			if (c[k < 3 ? k : 2] > 255)
				c[k < 3 ? k : 2] = 255;
		}
		return (int)(c[0] << 16 | c[1] << 8 | c[2]);
	}
	for (i = 0; i < nitems(names); i++)
		if (strlen(names[i].name) == n &&
		    ascii_strncasecmp(v, names[i].name, n) == 0)
			return names[i].rgb;
	return -1;
}

static int
color_near(int a, int b)
{
	int d = abs(((a >> 16) & 255) - ((b >> 16) & 255)) +
	    abs(((a >> 8) & 255) - ((b >> 8) & 255)) +
	    abs((a & 255) - (b & 255));

	return d < COLOR_NEAR;
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
	int	    c;

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
			if (pn == 5 && ascii_strncasecmp(p, "color", 5) == 0) {
				if ((c = parse_color(v, vn)) >= 0)
					l->fg = c;
			} else if ((pn == 16 &&
				       ascii_strncasecmp(
					   p, "background-color", 16) == 0) ||
			    (pn == 10 &&
				ascii_strncasecmp(p, "background", 10) == 0)) {
				if ((c = parse_color(v, vn)) >= 0)
					l->bg = c;
			} else if (pn == 9 &&
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
	h->last_alpha = 0;
	h->split = 0;
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

static void
render(struct hstate *h, const char *s, size_t n)
{
	struct level  *l = top(h);
	struct mv_buf *o = h->out;
	size_t	       i;
	int	       visible = 0;

	if (l->skip || l->hidden)
		return;
	if (h->in_a)
		anchor_text(h, s, n);
	mv_buf_reserve(o, n + 2);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (is_ws(c)) {
			if (o->len > 0 && o->p[o->len - 1] != '\n')
				h->pending_space = 1;
			h->last_alpha = 0;
			h->split = 0;
			continue;
		}
		if (!visible) {
			visible = 1;
			if (h->split && h->last_alpha && is_letter(c) &&
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
		h->last_alpha = is_letter((unsigned char)s[n - 1]);
		h->split = 0;
		if (l->tiny)
			h->c->font_tiny++;
		if (color_near(l->fg, l->bg))
			h->c->font_low_contrast++;
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

static void
sax_start(void *ctx, const xmlChar *xname, const xmlChar **atts)
{
	struct hstate	 *h = ctx;
	const char	 *name = (const char *)xname, *a, *v;
	const struct tag *t = tag_find(name);
	unsigned	  kind = t != NULL ? t->kind : 0;
	struct level	  l = *top(h);
	unsigned	  w = 0, ht = 0;
	const char	 *equiv = NULL, *content = NULL;
	int		  c, is_a = strcmp(name, "a") == 0;
	size_t		  i;

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
		else if (strcmp(a, "style") == 0)
			apply_style(&l, v);
		else if (strcmp(a, "bgcolor") == 0) {
			if ((c = parse_color(v, strlen(v))) >= 0)
				l.bg = c;
		} else if (strcmp(a, "color") == 0 &&
		    strcmp(name, "font") == 0) {
			if ((c = parse_color(v, strlen(v))) >= 0)
				l.fg = c;
		} else if (strcmp(a, "text") == 0 &&
		    strcmp(name, "body") == 0) {
			if ((c = parse_color(v, strlen(v))) >= 0)
				l.fg = c;
		} else if (strcmp(a, "size") == 0 &&
		    strcmp(name, "font") == 0) {
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
	const char	 *name = (const char *)xname;
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
mv_html_render(
    struct mv_build *b, const char *html, size_t n, struct mv_buf *out)
{
	struct hstate	 *h;
	htmlParserCtxtPtr ctxt;
	size_t		  off = 0, k;

	out->len = 0;
	mv_buf_reserve(out, n + 16);
	out->p[0] = '\0';
	h = xcalloc(1, sizeof(*h));
	h->b = b;
	h->c = &b->v->html;
	h->out = out;
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
		do {
			k = n - off < FEED_CHUNK ? n - off : FEED_CHUNK;
			htmlParseChunk(ctxt, html + off, (int)k, off + k == n);
			off += k;
		} while (off < n);
		htmlFreeParserCtxt(ctxt);
	}
	anchor_end(h);
	while (out->len > 0 &&
	    (out->p[out->len - 1] == '\n' || out->p[out->len - 1] == ' '))
		out->len--;
	out->p[out->len] = '\0';
	h->c->text += out->len;
	free(h);
}
