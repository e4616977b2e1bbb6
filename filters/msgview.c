/*
 * msgview.c - the decoded view of one message (see msgview.h): the MIME
 * walk. Header blocks (RFC 5322 §2.2, §3.6) and multipart bodies
 * (RFC 2046 §5.1.1: delimiter and close-delimiter lines) are split here,
 * over the caller's bytes without copying; message/rfc822 bodies are
 * walked as entities of their own (their header is their part's header).
 * GMime 3 does what needs its knowledge: Content-Type and
 * Content-Disposition parameters (RFC 2045 §5, RFC 2231 continuations
 * and charsets, RFC 2047 words in loose mode), RFC 2047 header words
 * (decode_header), transfer decoders and charset conversion
 * (msgview_text.c). HTML goes to msgview_html.c, URIs to msgview_uri.c.
 *
 * Why not GMime's own parser: it checks every line that starts with "--"
 * against its whole stack of open boundaries (up to 1024 levels), so a
 * few MB of hostile nesting cost seconds; and for message/rfc822 it builds
 * a GMimeMessage, which parses address headers (where GMime 3.2 leaks on
 * malformed input). Here a multipart only looks for its own delimiters
 * inside the range its parent already cut, and never deeper than
 * limits.depth: a byte is scanned at most depth + 1 times.
 *
 * Lenient like the parsers mail is written for: a header ends at the
 * first line that is no field (the body starts there), a multipart
 * without its boundary is text, a missing close delimiter ends the last
 * part at the end of its parent, and a multipart whose boundary never
 * appears has its whole body kept as one text/plain part. Each of these,
 * and the problems GMime reports in the fields it parses, count in
 * mime_errors.
 *
 * Ownership and threading: a view owns one arena (msgview_arena.c) that
 * holds every string and array; GMime objects and scratch buffers live
 * only during msgview_new(). Views are built on any thread; the GMime,
 * libxml2 and PSL set-up runs once (pthread_once).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <gmime/gmime.h>

#include "msgview.h"
#include "msgview_int.h"
#include "util.h"

#define DEPTH_CAP 200 /* whatever the caller asks, the walk recurses */

struct view {
	struct msgview	pub; /* first: msgview_free() casts back */
	struct mv_arena arena;
};

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void
global_init(void)
{
	g_mime_init();
	mv_html_global_init();
	mv_uri_global_init();
}

void
msgview_global_init(void)
{
	pthread_once(&once, global_init);
}

/* ------------------------------------------------------------ lines */

/* The line at s[0..n): its content length (no CR LF) and full length. */
static size_t
line_at(const char *s, size_t n, size_t *full)
{
	const char *nl = memchr(s, '\n', n);
	size_t	    l = nl != NULL ? (size_t)(nl - s) : n;

	*full = nl != NULL ? l + 1 : n;
	return l > 0 && s[l - 1] == '\r' ? l - 1 : l;
}

/* ------------------------------------------------------------ headers */

/*
 * A header field name (RFC 5322 §3.6.8: printable ASCII but ':'), then
 * optional WSP and the colon; the value's offset, or 0 if not a field.
 */
static size_t
field_name(const char *s, size_t l, size_t *namelen)
{
	size_t i = 0, n;

	while (i < l && (unsigned char)s[i] > 32 && (unsigned char)s[i] < 127 &&
	    s[i] != ':')
		i++;
	n = i;
	while (i < l && (s[i] == ' ' || s[i] == '\t'))
		i++;
	if (n == 0 || i >= l || s[i] != ':')
		return 0;
	*namelen = n;
	return i + 1;
}

static const char *
decode_header(struct mv_build *b, const char *raw, size_t n)
{
	size_t i;
	int    plain = 1;
	char  *d;

	for (i = 0; i < n && plain; i++)
		if ((unsigned char)raw[i] >= 0x80 || raw[i] == '\r' ||
		    raw[i] == '\n' || raw[i] == '\0' ||
		    (raw[i] == '=' && i + 1 < n && raw[i + 1] == '?'))
			plain = 0;
	if (plain)
		return raw; /* shares the raw copy */

	/* Unfold (RFC 5322 §2.2.3): drop the line ends, keep the WSP. */
	b->tmp.len = 0;
	mv_buf_reserve(&b->tmp, n);
	for (i = 0; i < n; i++)
		if (raw[i] != '\r' && raw[i] != '\n')
			b->tmp.p[b->tmp.len++] = raw[i];
	b->tmp.p[b->tmp.len] = '\0';
	b->utf.len = 0;
	if (memchr(b->tmp.p, '\0', b->tmp.len) == NULL) {
		d = g_mime_utils_header_decode_text(b->gmime_opts, b->tmp.p);
		mv_utf8_clean(d, strlen(d), &b->utf, 0);
		g_free(d);
	} else
		mv_utf8_clean(b->tmp.p, b->tmp.len, &b->utf, 1);
	return mv_strndup(b->arena, b->utf.p, b->utf.len);
}

/* The Content-* fields of one header block, as raw values. */
struct content {
	const char *type, *disp, *cte;
	size_t	    typelen, displen, ctelen;
};

static int
name_is(const char *s, size_t n, const char *name)
{
	return strlen(name) == n && ascii_strncasecmp(s, name, n) == 0;
}

/*
 * Parse the header block at s[0..n) (RFC 5322 §2.2, §3.6): fields with
 * their folding, ended by an empty line, by the end, or by a line that is
 * no field (then the body starts on it: RFC 5322 §3.5 requires the empty
 * line, mail without it exists). Keeps at most limits.headers fields in
 * the arena; the Content-* fields are found among all of them. Returns the
 * offset of the body.
 */
static size_t
header_block(struct mv_build *b, const char *s, size_t n,
    const struct mv_header **out, size_t *nout, struct content *ct)
{
	size_t		  p = 0, full, l, e, vo, nl, kept = 0, cap = 0;
	struct mv_header *h = NULL, *nh;
	const char	 *val;

	memset(ct, 0, sizeof(*ct));
	*out = NULL;
	*nout = 0;
	while (p < n) {
		l = line_at(s + p, n - p, &full);
		if (l == 0) {
			p += full; /* the empty line */
			break;
		}
		if ((vo = field_name(s + p, l, &nl)) == 0) {
			b->v->mime_errors++; /* no empty line before the body */
			break;
		}
		/* The field runs on over lines that start with WSP. */
		e = p + full;
		while (e < n && (s[e] == ' ' || s[e] == '\t')) {
			line_at(s + e, n - e, &full);
			e += full;
		}
		val = s + p + vo;
		while (val < s + e && (*val == ' ' || *val == '\t'))
			val++;
		l = (size_t)(s + e - val);
		while (l > 0 && (val[l - 1] == '\n' || val[l - 1] == '\r'))
			l--;
		if (ct->type == NULL && name_is(s + p, nl, "Content-Type")) {
			ct->type = val;
			ct->typelen = l;
		} else if (ct->disp == NULL &&
		    name_is(s + p, nl, "Content-Disposition")) {
			ct->disp = val;
			ct->displen = l;
		} else if (ct->cte == NULL &&
		    name_is(s + p, nl, "Content-Transfer-Encoding")) {
			ct->cte = val;
			ct->ctelen = l;
		}
		if (kept < b->lim.headers) {
			if (kept == cap) {
				/* Arena arrays: doubling wastes at most 2x. */
				cap = cap != 0 ? cap * 2 : 16;
				if (cap > b->lim.headers)
					cap = b->lim.headers;
				nh = mv_alloc(b->arena, cap * sizeof(*nh));
				if (kept > 0)
					memcpy(nh, h, kept * sizeof(*nh));
				h = nh;
			}
			h[kept].name = mv_strndup(b->arena, s + p, nl);
			h[kept].raw = mv_strndup(b->arena, val, l);
			h[kept].decoded = decode_header(b, h[kept].raw, l);
			kept++;
		} else
			b->v->truncated |= MV_TRUNC_HEADERS;
		p = e;
	}
	*out = h;
	*nout = kept;
	return p < n ? p : n;
}

/* ------------------------------------------------------------ parts */

/* A raw header value, unfolded and NUL-terminated, in b->tmp. */
static const char *
unfolded(struct mv_build *b, const char *v, size_t n)
{
	size_t i;

	b->tmp.len = 0;
	mv_buf_reserve(&b->tmp, n);
	for (i = 0; i < n; i++)
		if (v[i] != '\r' && v[i] != '\n' && v[i] != '\0')
			b->tmp.p[b->tmp.len++] = v[i];
	b->tmp.p[b->tmp.len] = '\0';
	return b->tmp.p;
}

static char *
lower_dup(struct mv_build *b, const char *s, size_t l)
{
	size_t i;
	char  *r;

	while (l > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		l--;
	}
	while (l > 0 &&
	    (s[l - 1] == ' ' || s[l - 1] == '\t' || s[l - 1] == '\r' ||
		s[l - 1] == '\n'))
		l--;
	r = mv_strndup(b->arena, s, l);
	for (i = 0; i < l; i++)
		r[i] = (char)ascii_lower((unsigned char)r[i]);
	return r;
}

static struct mv_part *
new_part(struct mv_build *b, unsigned depth, size_t parent)
{
	struct mv_part *p;

	if (b->nparts >= b->lim.parts) {
		b->v->truncated |= MV_TRUNC_PARTS;
		return NULL;
	}
	if (b->nparts == b->partscap) {
		b->partscap = b->partscap != 0 ? b->partscap * 2 : 8;
		b->parts = xrealloc(b->parts, b->partscap * sizeof(*b->parts));
	}
	p = &b->parts[b->nparts++];
	memset(p, 0, sizeof(*p));
	p->depth = depth;
	p->parent = (unsigned)parent;
	p->type = "text/plain";
	return p;
}

/*
 * The text of a text leaf (raw bytes still transfer-encoded): decoded
 * within the budgets, converted to UTF-8, HTML rendered, URIs found.
 */
static void
text_leaf(
    struct mv_build *b, size_t idx, int enc, const char *raw, size_t rawlen)
{
	struct mv_part *p = &b->parts[idx];
	size_t		keep, size;
	int		cut, html = (p->flags & MV_PART_HTML) != 0;
	const char     *rt;
	unsigned	flags;

	keep = b->lim.decoded > b->decoded ? b->lim.decoded - b->decoded : 0;
	if (keep > b->lim.part_decoded)
		keep = b->lim.part_decoded;
	size = mv_decode(enc, raw, rawlen, &b->dec, keep, &cut);
	if (cut)
		b->v->truncated |= MV_TRUNC_DECODED;
	b->decoded += b->dec.len;
	flags = mv_to_utf8(p->charset, b->dec.p, b->dec.len, &b->utf, &b->tmp);
	rt = mv_strndup(b->arena, b->utf.p, b->utf.len);
	p->size = size;
	p->flags |= flags | MV_PART_TEXT;
	p->raw_text = rt;
	p->raw_textlen = b->utf.len;
	if (!html) {
		p->text = rt;
		p->textlen = b->utf.len;
		mv_uri_scan_text(b, rt, b->utf.len, MV_URI_TEXT);
		return;
	}
	mv_html_render(b, b->utf.p, b->utf.len, &b->html, &b->inv);
	p = &b->parts[idx];
	p->text = mv_strndup(b->arena, b->html.p, b->html.len);
	p->textlen = b->html.len;
	p->invisible = mv_strndup(b->arena, b->inv.p, b->inv.len);
	p->invisiblelen = b->inv.len;
	mv_uri_scan_text(b, p->text, p->textlen, MV_URI_TEXT);
	mv_uri_scan_text(b, p->invisible, p->invisiblelen, MV_URI_TEXT);
}

static void entity(
    struct mv_build *, const char *, size_t, unsigned, size_t, const char *);

/*
 * A delimiter line of `bnd` (RFC 2046 §5.1.1): "--" boundary, then "--"
 * for the close delimiter, then transport padding. 0 no, 1 delimiter,
 * 2 close delimiter.
 */
static int
delimiter(const char *l, size_t n, const char *bnd, size_t bl)
{
	size_t i;

	if (n < bl + 2 || l[0] != '-' || l[1] != '-' ||
	    memcmp(l + 2, bnd, bl) != 0)
		return 0;
	i = bl + 2;
	if (n - i >= 2 && l[i] == '-' && l[i + 1] == '-')
		return 2;
	for (; i < n; i++)
		if (l[i] != ' ' && l[i] != '\t')
			return 0;
	return 1;
}

/* A child body part s[0..n) ending before the delimiter's line end. */
static void
child(struct mv_build *b, const char *s, const char *e, unsigned depth,
    size_t parent, const char *deftype)
{
	if (e > s && e[-1] == '\n')
		e--;
	if (e > s && e[-1] == '\r')
		e--;
	entity(b, s, e > s ? (size_t)(e - s) : 0, depth, parent, deftype);
}

/*
 * Split a multipart body (RFC 2046 §5.1.1) and walk its parts. Only
 * this multipart's own delimiters are looked for: its range was already
 * cut at the enclosing ones, so every byte is scanned once per level.
 */
static void
multipart(struct mv_build *b, size_t idx, const char *s, size_t n,
    const char *bnd, unsigned depth, int digest)
{
	const char *deftype = digest ? "message/rfc822" : "text/plain";
	const char *start = NULL;
	size_t	    p = 0, l, full, bl = strlen(bnd), found = 0;
	int	    d = 0;

	if (depth + 1 > b->lim.depth) {
		b->v->truncated |= MV_TRUNC_DEPTH;
		return;
	}
	while (p < n && b->nparts < b->lim.parts) {
		l = line_at(s + p, n - p, &full);
		if (l >= bl + 2 && s[p] == '-' &&
		    (d = delimiter(s + p, l, bnd, bl)) != 0) {
			if (start != NULL)
				child(b, start, s + p, depth + 1, idx, deftype);
			found++;
			start = s + p + full;
			if (d == 2)
				break;
		}
		p += full;
	}
	if (b->nparts >= b->lim.parts) {
		if (p < n)
			b->v->truncated |= MV_TRUNC_PARTS;
		return;
	}
	if (found == 0) {
		/* The boundary never came: the body is text. */
		struct mv_part *c;

		b->v->mime_errors++;
		if ((c = new_part(b, depth + 1, idx)) != NULL) {
			c->rawsize = n;
			text_leaf(b, b->nparts - 1, GMIME_CONTENT_ENCODING_8BIT,
			    s, n);
		}
		return;
	}
	if (d != 2) {
		b->v->mime_errors++; /* no close delimiter */
		if (start != NULL && start < s + n)
			entity(b, start, (size_t)(s + n - start), depth + 1,
			    idx, deftype);
	}
}

static int
is_text_type(const char *type)
{
	/* multipart/(*) here is one we could not split: its body is text. */
	return strncmp(type, "text/", 5) == 0 ||
	    strncmp(type, "multipart/", 10) == 0;
}

/*
 * One entity (RFC 2045 §2.4) at s[0..n): a header block and a body; the
 * whole message, a body part, or an encapsulated message/rfc822.
 */
static void
entity(struct mv_build *b, const char *s, size_t n, unsigned depth,
    size_t parent, const char *deftype)
{
	GMimeContentType	*gct = NULL;
	GMimeContentDisposition *gcd = NULL;
	struct content		 ct;
	struct mv_part		*p;
	const char		*v, *mt, *st, *body, *bnd = NULL;
	size_t			 idx, off, bodylen, l1;
	char			*type;
	int			 enc = GMIME_CONTENT_ENCODING_DEFAULT;

	if ((p = new_part(b, depth, parent)) == NULL)
		return;
	idx = b->nparts - 1;
	off = header_block(b, s, n, &p->headers, &p->nheaders, &ct);
	if (depth == 0)
		b->v->hdrsize = off;
	body = s + off;
	bodylen = n - off;
	p->type = deftype;
	if (ct.type != NULL) {
		gct = g_mime_content_type_parse(
		    b->gmime_opts, unfolded(b, ct.type, ct.typelen));
		mt = g_mime_content_type_get_media_type(gct);
		st = g_mime_content_type_get_media_subtype(gct);
		mt = mt != NULL && *mt != '\0' ? mt : "application";
		st = st != NULL && *st != '\0' ? st : "octet-stream";
		l1 = strlen(mt);
		type = mv_alloc(b->arena, l1 + strlen(st) + 2);
		memcpy(type, mt, l1);
		type[l1] = '/';
		strcpy(type + l1 + 1, st);
		p->type = lower_dup(b, type, strlen(type));
		if ((v = g_mime_content_type_get_parameter(gct, "charset")) !=
		    NULL)
			p->charset = lower_dup(b, v, strlen(v));
		bnd = g_mime_content_type_get_parameter(gct, "boundary");
	}
	if (ct.cte != NULL) {
		p->encoding = lower_dup(b, ct.cte, ct.ctelen);
		enc = (int)g_mime_content_encoding_from_string(p->encoding);
		if (enc == GMIME_CONTENT_ENCODING_DEFAULT)
			p->flags |= MV_PART_BAD_CTE;
	}
	if (ct.disp != NULL) {
		gcd = g_mime_content_disposition_parse(
		    b->gmime_opts, unfolded(b, ct.disp, ct.displen));
		if (g_mime_content_disposition_is_attachment(gcd))
			p->flags |= MV_PART_ATTACHMENT;
		v = g_mime_content_disposition_get_parameter(gcd, "filename");
	} else
		v = NULL;
	if (v == NULL && gct != NULL)
		v = g_mime_content_type_get_parameter(gct, "name");
	if (v != NULL) {
		b->utf.len = 0;
		mv_utf8_clean(v, strlen(v), &b->utf, 1);
		p->filename = mv_strndup(b->arena, b->utf.p, b->utf.len);
		if (strncmp(p->type, "text/", 5) != 0)
			p->flags |= MV_PART_ATTACHMENT;
	}
	if (strcmp(p->type, "text/html") == 0)
		p->flags |= MV_PART_HTML;

	if (strncmp(p->type, "multipart/", 10) == 0 && bnd != NULL &&
	    *bnd != '\0') {
		p->flags |= MV_PART_MULTIPART;
		/* The boundary string lives in gct until it is unreferenced. */
		multipart(b, idx, body, bodylen, bnd, depth,
		    strcmp(p->type, "multipart/digest") == 0);
	} else if (strcmp(p->type, "message/rfc822") == 0 ||
	    strcmp(p->type, "message/global") == 0) {
		p->flags |= MV_PART_MESSAGE;
		p->rawsize = bodylen;
		p->size = bodylen;
		if (depth + 1 > b->lim.depth)
			b->v->truncated |= MV_TRUNC_DEPTH;
		else
			entity(b, body, bodylen, depth + 1, idx, "text/plain");
	} else {
		if (strncmp(p->type, "multipart/", 10) == 0)
			b->v->mime_errors++; /* no boundary parameter */
		p->rawsize = bodylen;
		if (is_text_type(p->type))
			text_leaf(b, idx, enc, body, bodylen);
		else
			p->size = mv_decoded_size(enc, body, bodylen, &b->dec);
	}
	if (gct != NULL)
		g_object_unref(gct);
	if (gcd != NULL)
		g_object_unref(gcd);
}

/* ------------------------------------------------------------ view */

static void
on_warning(
    gint64 offset, GMimeParserWarning code, const gchar *item, gpointer arg)
{
	struct mv_build *b = arg;

	switch (code) {
	case GMIME_WARN_INVALID_CONTENT_TYPE:
	case GMIME_WARN_INVALID_PARAMETER:
	case GMIME_WARN_MALFORMED_MULTIPART:
	case GMIME_WARN_TRUNCATED_MESSAGE:
	case GMIME_WARN_MALFORMED_MESSAGE:
	case GMIME_CRIT_INVALID_HEADER_NAME:
	case GMIME_CRIT_CONFLICTING_PARAMETER:
	case GMIME_CRIT_MULTIPART_WITHOUT_BOUNDARY:
	case GMIME_CRIT_NESTING_OVERFLOW:
	case GMIME_WARN_PART_WITHOUT_CONTENT:
	case GMIME_CRIT_PART_WITHOUT_HEADERS_OR_CONTENT:
		b->v->mime_errors++;
		break;
	case GMIME_CRIT_CONFLICTING_HEADER:
		/* GMime says so of any repeated field (Received too). */
		if (item != NULL && ascii_strncasecmp(item, "Content-", 8) == 0)
			b->v->mime_errors++;
		break;
	default:
		break;
	}
}

static void
set_limits(struct msgview_limits *l, const struct msgview_limits *in)
{
	static const struct msgview_limits def = { 256, 20, 1u << 20, 4u << 20,
		1024, 1000 };

	*l = in != NULL ? *in : def;
	l->parts = l->parts != 0 ? l->parts : def.parts;
	l->depth = l->depth != 0 ? l->depth : def.depth;
	if (l->depth > DEPTH_CAP)
		l->depth = DEPTH_CAP;
	l->part_decoded =
	    l->part_decoded != 0 ? l->part_decoded : def.part_decoded;
	l->decoded = l->decoded != 0 ? l->decoded : def.decoded;
	l->uris = l->uris != 0 ? l->uris : def.uris;
	if (l->uris > UINT32_MAX / 4)
		l->uris = UINT32_MAX / 4;
	l->headers = l->headers != 0 ? l->headers : def.headers;
}

struct msgview *
msgview_new(const char *msg, size_t len, const struct msgview_limits *limits)
{
	static const char  *fallback[] = { "UTF-8", "windows-1252", NULL };
	struct view	   *w;
	struct msgview	   *v;
	struct mv_build	    b;
	GMimeParserOptions *opts;

	msgview_global_init();
	w = xcalloc(1, sizeof(*w));
	v = &w->pub;
	memset(&b, 0, sizeof(b));
	b.v = v;
	b.arena = &w->arena;
	b.msg = msg != NULL ? msg : "";
	b.len = msg != NULL ? len : 0;
	set_limits(&b.lim, limits);
	v->size = b.len;

	opts = g_mime_parser_options_new();
	g_mime_parser_options_set_rfc2047_compliance_mode(
	    opts, GMIME_RFC_COMPLIANCE_LOOSE);
	g_mime_parser_options_set_parameter_compliance_mode(
	    opts, GMIME_RFC_COMPLIANCE_LOOSE);
	g_mime_parser_options_set_fallback_charsets(opts, fallback);
	g_mime_parser_options_set_warning_callback(opts, on_warning, &b);
	b.gmime_opts = opts;

	entity(&b, b.msg, b.len, 0, 0, "text/plain");

	v->nparts = b.nparts;
	v->parts = mv_alloc(b.arena, b.nparts * sizeof(*b.parts));
	memcpy((void *)v->parts, b.parts, b.nparts * sizeof(*b.parts));
	v->headers = v->parts[0].headers;
	v->nheaders = v->parts[0].nheaders;
	v->nuris = b.nuris;
	if (b.nuris > 0) {
		v->uris = mv_alloc(b.arena, b.nuris * sizeof(*b.uris));
		memcpy((void *)v->uris, b.uris, b.nuris * sizeof(*b.uris));
	}

	g_mime_parser_options_free(opts);
	free(b.parts);
	free(b.uris);
	free(b.uhash);
	mv_buf_free(&b.dec);
	mv_buf_free(&b.utf);
	mv_buf_free(&b.html);
	mv_buf_free(&b.inv);
	mv_buf_free(&b.tmp);
	return v;
}

void
msgview_free(struct msgview *v)
{
	struct view *w = (struct view *)v;

	if (v == NULL)
		return;
	mv_arena_free(&w->arena);
	free(w);
}

const struct mv_header *
msgview_header(const struct msgview *v, const char *name, size_t idx)
{
	size_t i;

	for (i = 0; i < v->nheaders; i++)
		if (ascii_strcasecmp(v->headers[i].name, name) == 0 &&
		    idx-- == 0)
			return &v->headers[i];
	return NULL;
}
