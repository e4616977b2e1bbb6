/*
 * msgview.c - the decoded view of one message (see msgview.h): the MIME
 * walk. GMime 3's parser (persistent mode, over msgview_stream.c, so
 * nothing is copied) gives the structure of RFC 2045/2046 entities and
 * message/rfc822 parts, their Content-Type and Content-Disposition
 * parameters (RFC 2231, RFC 2047 in loose mode) and transfer encodings;
 * this file walks it depth-first within the limits, takes every header
 * field's raw value from the message bytes (at the offset GMime records),
 * decodes RFC 2047 words (RFC 2047 §6, GMime in loose mode), and hands
 * text leaves to msgview_text.c, msgview_html.c and msgview_uri.c.
 *
 * GMime never parses an address header here: the top level is built with
 * g_mime_parser_construct_part() (no GMimeMessage), and header values are
 * read raw and decoded as unstructured text.
 *
 * A part whose boundary never appears (a multipart with no children)
 * keeps its text: the body GMime saw as the preamble becomes a text/plain
 * child. Structure problems GMime reports (malformed multiparts, invalid
 * header names or content types, parts without headers or content,
 * nesting overflow) are counted in mime_errors.
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
#include "msgview_stream.h"
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

/* ------------------------------------------------------------ headers */

/* End of the field that continues from line start s (folding kept). */
static size_t
field_end(const char *msg, size_t len, size_t s)
{
	const char *nl;
	size_t	    e;

	for (;;) {
		nl = memchr(msg + s, '\n', len - s);
		if (nl == NULL)
			return len;
		e = (size_t)(nl - msg);
		if (e + 1 < len && (msg[e + 1] == ' ' || msg[e + 1] == '\t')) {
			s = e + 1;
			continue;
		}
		return e > 0 && msg[e - 1] == '\r' ? e - 1 : e;
	}
}

/* The raw value of a header GMime found at `off`, from the message. */
static int
raw_from_message(struct mv_build *b, gint64 off, const char *name,
    const char **val, size_t *vlen)
{
	size_t nl = strlen(name), p, e;

	if (off < 0 || (uint64_t)off >= b->len || b->len - (size_t)off < nl + 1)
		return -1;
	p = (size_t)off;
	if (memcmp(b->msg + p, name, nl) != 0)
		return -1;
	p += nl;
	while (p < b->len && (b->msg[p] == ' ' || b->msg[p] == '\t'))
		p++;
	if (p >= b->len || b->msg[p] != ':')
		return -1;
	p++;
	e = field_end(b->msg, b->len, p);
	while (p < e && (b->msg[p] == ' ' || b->msg[p] == '\t'))
		p++;
	*val = b->msg + p;
	*vlen = e - p;
	return 0;
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

static gint64
hdr_off(GMimeHeaderList *l, int i)
{
	return g_mime_header_get_offset(g_mime_header_list_get_header_at(l, i));
}

/*
 * Copy the fields of one or two header lists (a message/rfc822 part's
 * message and its top part share the header block) in message order.
 */
static void
copy_headers(struct mv_build *b, GMimeHeaderList *l1, GMimeHeaderList *l2,
    const struct mv_header **out, size_t *nout)
{
	int    n1 = l1 != NULL ? g_mime_header_list_get_count(l1) : 0;
	int    n2 = l2 != NULL ? g_mime_header_list_get_count(l2) : 0;
	int    i1 = 0, i2 = 0;
	size_t n = (size_t)n1 + (size_t)n2, k = 0, vlen;
	struct mv_header *h;
	GMimeHeader	 *gh;
	const char	 *name, *val;

	*out = NULL;
	*nout = 0;
	if (n == 0)
		return;
	if (n > b->lim.headers) {
		b->v->truncated |= MV_TRUNC_HEADERS;
		n = b->lim.headers;
	}
	h = mv_alloc(b->arena, n * sizeof(*h));
	for (k = 0; k < n; k++) {
		if (i2 >= n2 || (i1 < n1 && hdr_off(l1, i1) <= hdr_off(l2, i2)))
			gh = g_mime_header_list_get_header_at(l1, i1++);
		else
			gh = g_mime_header_list_get_header_at(l2, i2++);
		name = g_mime_header_get_name(gh);
		h[k].name = mv_strndup(b->arena, name, strlen(name));
		if (raw_from_message(b, g_mime_header_get_offset(gh), name,
			&val, &vlen) != 0) {
			val = g_mime_header_get_raw_value(gh);
			if (val == NULL)
				val = "";
			while (*val == ' ' || *val == '\t')
				val++;
			vlen = strlen(val);
			while (vlen > 0 &&
			    (val[vlen - 1] == '\n' || val[vlen - 1] == '\r'))
				vlen--;
		}
		h[k].raw = mv_strndup(b->arena, val, vlen);
		h[k].decoded = decode_header(b, h[k].raw, vlen);
	}
	*out = h;
	*nout = n;
}

/* ------------------------------------------------------------ parts */

static char *
lower_dup(struct mv_build *b, const char *s)
{
	size_t l, i;
	char  *r;

	while (*s == ' ' || *s == '\t')
		s++;
	l = strlen(s);
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
 * `idx` is the part's index: b->parts may move while HTML is rendered.
 */
static void
text_leaf(
    struct mv_build *b, size_t idx, int enc, const char *raw, size_t rawlen)
{
	struct mv_part *p = &b->parts[idx];
	size_t		keep, size;
	int		cut, html = (p->flags & MV_PART_HTML) != 0;
	const char     *cs = p->charset, *rt;
	unsigned	flags;

	keep = b->lim.decoded > b->decoded ? b->lim.decoded - b->decoded : 0;
	if (keep > b->lim.part_decoded)
		keep = b->lim.part_decoded;
	size = mv_decode(enc, raw, rawlen, &b->dec, keep, &cut);
	if (cut)
		b->v->truncated |= MV_TRUNC_DECODED;
	b->decoded += b->dec.len;
	flags = mv_to_utf8(cs, b->dec.p, b->dec.len, &b->utf, &b->tmp);
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
	mv_html_render(b, b->utf.p, b->utf.len, &b->html);
	p = &b->parts[idx];
	p->text = mv_strndup(b->arena, b->html.p, b->html.len);
	p->textlen = b->html.len;
	mv_uri_scan_text(b, p->text, p->textlen, MV_URI_TEXT);
}

static int
is_text_type(const char *type)
{
	return strncmp(type, "text/", 5) == 0 ||
	    /* a multipart GMime could not split: its body is all there is */
	    strncmp(type, "multipart/", 10) == 0;
}

static void
leaf(struct mv_build *b, GMimeObject *o, size_t idx)
{
	GMimePart	 *part;
	GMimeDataWrapper *w;
	GMimeStream	 *s;
	const char	 *raw;
	size_t		  rawlen;
	int		  enc;

	if (!GMIME_IS_PART(o))
		return;
	part = (GMimePart *)o;
	enc = (int)g_mime_part_get_content_encoding(part);
	if (b->parts[idx].encoding != NULL &&
	    enc == GMIME_CONTENT_ENCODING_DEFAULT)
		b->parts[idx].flags |= MV_PART_BAD_CTE;
	w = g_mime_part_get_content(part);
	s = w != NULL ? g_mime_data_wrapper_get_stream(w) : NULL;
	if (s == NULL || mv_stream_span(s, b->msg, &raw, &rawlen) != 0) {
		/* Content GMime holds elsewhere (not expected): none. */
		if (s != NULL)
			b->v->mime_errors++;
		raw = "";
		rawlen = 0;
	}
	b->parts[idx].rawsize = rawlen;
	if (!is_text_type(b->parts[idx].type)) {
		b->parts[idx].size = mv_decoded_size(enc, raw, rawlen, &b->dec);
		return;
	}
	text_leaf(b, idx, enc, raw, rawlen);
}

static void walk(
    struct mv_build *, GMimeObject *, GMimeHeaderList *, unsigned, size_t);

/* A multipart whose boundary never came: its preamble as text/plain. */
static void
orphan_text(
    struct mv_build *b, GMimeMultipart *mp, unsigned depth, size_t parent)
{
	const char     *pro = g_mime_multipart_get_prologue(mp);
	struct mv_part *p;
	char	       *copy;

	if (pro == NULL || *pro == '\0')
		return;
	if (depth > b->lim.depth) {
		b->v->truncated |= MV_TRUNC_DEPTH;
		return;
	}
	if ((p = new_part(b, depth, parent)) == NULL)
		return;
	p->rawsize = strlen(pro);
	/* The prologue is GMime's copy; keep our own while decoding. */
	copy = xstrndup(pro, p->rawsize);
	text_leaf(
	    b, b->nparts - 1, GMIME_CONTENT_ENCODING_8BIT, copy, p->rawsize);
	free(copy);
}

static void
walk(struct mv_build *b, GMimeObject *o, GMimeHeaderList *msghdr,
    unsigned depth, size_t parent)
{
	GMimeContentType	*ct = g_mime_object_get_content_type(o);
	GMimeContentDisposition *cd;
	struct mv_part		*p;
	const char		*v, *mt, *st;
	size_t			 idx, l1;
	char			*type, *q;
	int			 i, n;

	if ((p = new_part(b, depth, parent)) == NULL)
		return;
	idx = b->nparts - 1;
	if (ct != NULL) {
		mt = g_mime_content_type_get_media_type(ct);
		st = g_mime_content_type_get_media_subtype(ct);
		mt = mt != NULL ? mt : "application";
		st = st != NULL ? st : "octet-stream";
		l1 = strlen(mt);
		type = mv_alloc(b->arena, l1 + strlen(st) + 2);
		memcpy(type, mt, l1);
		type[l1] = '/';
		strcpy(type + l1 + 1, st);
		for (q = type; *q != '\0'; q++)
			*q = (char)ascii_lower((unsigned char)*q);
		p->type = type;
		if ((v = g_mime_content_type_get_parameter(ct, "charset")) !=
		    NULL)
			p->charset = lower_dup(b, v);
	}
	if ((v = g_mime_object_get_header(o, "Content-Transfer-Encoding")) !=
	    NULL)
		p->encoding = lower_dup(b, v);
	if (strcmp(p->type, "text/html") == 0)
		p->flags |= MV_PART_HTML;
	if (GMIME_IS_PART(o) &&
	    (v = g_mime_part_get_filename((GMimePart *)o)) != NULL) {
		b->utf.len = 0;
		mv_utf8_clean(v, strlen(v), &b->utf, 1);
		p->filename = mv_strndup(b->arena, b->utf.p, b->utf.len);
	}
	cd = g_mime_object_get_content_disposition(o);
	if ((cd != NULL && g_mime_content_disposition_is_attachment(cd)) ||
	    (p->filename != NULL && strncmp(p->type, "text/", 5) != 0))
		p->flags |= MV_PART_ATTACHMENT;
	copy_headers(b,
	    msghdr != NULL ? msghdr : g_mime_object_get_header_list(o),
	    msghdr != NULL ? g_mime_object_get_header_list(o) : NULL,
	    &p->headers, &p->nheaders);

	if (GMIME_IS_MULTIPART(o)) {
		GMimeMultipart *mp = (GMimeMultipart *)o;

		p->flags |= MV_PART_MULTIPART;
		n = g_mime_multipart_get_count(mp);
		if (n == 0) {
			b->v->mime_errors++;
			orphan_text(b, mp, depth + 1, idx);
			return;
		}
		if (depth + 1 > b->lim.depth) {
			b->v->truncated |= MV_TRUNC_DEPTH;
			return;
		}
		for (i = 0; i < n; i++)
			walk(b, g_mime_multipart_get_part(mp, i), NULL,
			    depth + 1, idx);
	} else if (GMIME_IS_MESSAGE_PART(o)) {
		GMimeMessage *m;
		GMimeObject  *top;

		p->flags |= MV_PART_MESSAGE;
		m = g_mime_message_part_get_message((GMimeMessagePart *)o);
		top = m != NULL ? g_mime_message_get_mime_part(m) : NULL;
		if (top == NULL)
			return;
		if (depth + 1 > b->lim.depth) {
			b->v->truncated |= MV_TRUNC_DEPTH;
			return;
		}
		walk(b, top, g_mime_object_get_header_list((GMimeObject *)m),
		    depth + 1, idx);
	} else
		leaf(b, o, idx);
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

/* Bytes of the header with its empty line (all of it if none). */
static size_t
header_size(const char *msg, size_t len)
{
	size_t	    p = 0;
	const char *nl;

	while (p < len) {
		if (msg[p] == '\n')
			return p + 1;
		if (msg[p] == '\r' && p + 1 < len && msg[p + 1] == '\n')
			return p + 2;
		nl = memchr(msg + p, '\n', len - p);
		if (nl == NULL)
			break;
		p = (size_t)(nl - msg) + 1;
	}
	return len;
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
	GMimeStream	   *stream;
	GMimeParser	   *parser;
	GMimeObject	   *root;

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
	v->hdrsize = header_size(b.msg, b.len);

	opts = g_mime_parser_options_new();
	g_mime_parser_options_set_rfc2047_compliance_mode(
	    opts, GMIME_RFC_COMPLIANCE_LOOSE);
	g_mime_parser_options_set_parameter_compliance_mode(
	    opts, GMIME_RFC_COMPLIANCE_LOOSE);
	g_mime_parser_options_set_fallback_charsets(opts, fallback);
	g_mime_parser_options_set_warning_callback(opts, on_warning, &b);
	b.gmime_opts = opts;

	stream = mv_stream_new(b.msg, b.len);
	parser = g_mime_parser_new_with_stream(stream);
	g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
	g_mime_parser_set_persist_stream(parser, TRUE);
	root = g_mime_parser_construct_part(parser, opts);
	if (root != NULL) {
		walk(&b, root, NULL, 0, 0);
		g_object_unref(root);
	}
	g_object_unref(parser);
	g_object_unref(stream);
	if (b.nparts == 0)
		(void)new_part(&b, 0, 0); /* an empty message: one empty part */

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
