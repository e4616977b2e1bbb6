/*
 * sa_testview.h - hand-built message views (filters/msgview.h) for the
 * rule engine's unit tests and benchmark, without the MIME walk: headers
 * and text parts from arrays (tv_header, tv_part, tv_uri), or a crude
 * reading of a raw message (tv_from_raw: header fields unfolded, one
 * level of multipart, no transfer or RFC 2047 decoding, HTML tags
 * stripped for the rendered text, http(s) URLs found by a scan). Enough
 * to time the rules on real messages; not a MIME parser.
 *
 * Header-only, single-threaded; a view lives until tv_free().
 */
#ifndef MOAT_SA_TESTVIEW_H
#define MOAT_SA_TESTVIEW_H

#include <stdlib.h>
#include <string.h>

#include "msgview.h"

#define TV_MAXH 400
#define TV_MAXP 32
#define TV_MAXU 256
#define TV_MAXS 2048

struct tv {
	struct msgview	 mv;
	struct mv_header h[TV_MAXH];
	struct mv_header ph[TV_MAXH]; /* MIME part headers */
	size_t		 nph;
	struct mv_part	 p[TV_MAXP];
	struct mv_uri	 u[TV_MAXU];
	char		*strs[TV_MAXS]; /* owned strings */
	size_t		 nstrs;
};

static inline char *
tv_keep(struct tv *t, char *s)
{
	if (t->nstrs < TV_MAXS)
		t->strs[t->nstrs++] = s;
	return s;
}

static inline char *
tv_dup(struct tv *t, const char *s, size_t n)
{
	char *d = malloc(n + 1);

	memcpy(d, s, n);
	d[n] = '\0';
	return tv_keep(t, d);
}

static inline void
tv_init(struct tv *t)
{
	memset(t, 0, sizeof(*t));
	t->mv.headers = t->h;
	t->mv.parts = t->p;
	t->mv.uris = t->u;
	/* parts[0] is the message */
	t->p[0].type = "text/plain";
	t->p[0].headers = t->h;
	t->mv.nparts = 1;
}

static inline void
tv_free(struct tv *t)
{
	size_t i;

	for (i = 0; i < t->nstrs; i++)
		free(t->strs[i]);
	t->nstrs = 0;
}

/* A header field into arr[*cnt]; decoded = raw unfolded unless given. */
static inline void
tv_addh(struct tv *t, struct mv_header *arr, size_t *cnt, const char *name,
    const char *raw, const char *dec)
{
	struct mv_header *h;

	if (*cnt >= TV_MAXH)
		return;
	h = &arr[(*cnt)++];
	h->name = name;
	h->raw = raw;
	if (dec == NULL) {
		char  *d = tv_dup(t, raw, strlen(raw)), *w = d;
		size_t i;

		for (i = 0; raw[i] != '\0'; i++) {
			if (raw[i] == '\r' || raw[i] == '\n')
				continue;
			*w++ = raw[i];
		}
		*w = '\0';
		dec = d;
	}
	h->decoded = dec;
}

static inline void
tv_header2(struct tv *t, const char *name, const char *raw, const char *dec)
{
	tv_addh(t, t->h, &t->mv.nheaders, name, raw, dec);
	t->p[0].nheaders = t->mv.nheaders;
}

static inline void
tv_header(struct tv *t, const char *name, const char *value)
{
	tv_header2(t, name, value, value);
}

/*
 * A leaf part: text is the rendering, raw the decoded body (tags kept);
 * raw NULL = text. For the first leaf of a single-part message call
 * with t->mv.nparts == 1: it then describes parts[0] itself.
 */
static inline struct mv_part *
tv_part(
    struct tv *t, const char *type, const char *text, const char *raw, int self)
{
	struct mv_part *p;

	if (self)
		p = &t->p[0];
	else {
		if (t->mv.nparts >= TV_MAXP)
			return NULL;
		p = &t->p[t->mv.nparts++];
		p->depth = 1;
		p->parent = 0;
		t->p[0].flags |= MV_PART_MULTIPART;
	}
	p->type = type;
	p->text = text;
	p->textlen = text ? strlen(text) : 0;
	p->raw_text = raw ? raw : text;
	p->raw_textlen = p->raw_text ? strlen(p->raw_text) : 0;
	p->size = p->textlen;
	p->flags |= MV_PART_TEXT;
	if (strcmp(type, "text/html") == 0) {
		p->flags |= MV_PART_HTML;
		t->mv.html.parts++;
		t->mv.html.raw += p->raw_textlen;
		t->mv.html.text += p->textlen;
	}
	return p;
}

static inline void
tv_uri(struct tv *t, const char *uri, const char *host, unsigned flags)
{
	struct mv_uri *u;

	if (t->mv.nuris >= TV_MAXU)
		return;
	u = &t->u[t->mv.nuris++];
	u->uri = uri;
	u->host = host;
	u->domain = host;
	u->flags = flags;
}

/* ------------------------------------------------ crude raw reading */

static inline const char *
tv_memmem(const char *h, size_t hl, const char *n)
{
	return memmem(h, hl, n, strlen(n));
}

/* Parse header fields from s[0..n); returns the body offset. */
static inline size_t
tv_headers(struct tv *t, const char *s, size_t n, int top,
    const struct mv_header **hs, size_t *nh)
{
	struct mv_header *arr = top ? t->h : t->ph;
	size_t		 *cnt = top ? &t->mv.nheaders : &t->nph;
	size_t		  i = 0, start = *cnt;

	if (top && n > 5 && memcmp(s, "From ", 5) == 0) {
		const char *nl = memchr(s, '\n', n);
		i = nl ? (size_t)(nl - s) + 1 : n;
	}
	while (i < n && s[i] != '\n' &&
	    !(s[i] == '\r' && i + 1 < n && s[i + 1] == '\n')) {
		size_t b = i, colon, e;

		while (i < n) {
			const char *nl = memchr(s + i, '\n', n - i);

			i = nl ? (size_t)(nl - s) + 1 : n;
			if (i >= n || (s[i] != ' ' && s[i] != '\t'))
				break;
		}
		e = i;
		for (colon = b; colon < e && s[colon] != ':'; colon++)
			;
		if (colon == e || *cnt >= TV_MAXH)
			continue;
		{
			size_t vs = colon + 1, ve = e;
			char  *name = tv_dup(t, s + b, colon - b);
			char  *raw;

			if (vs < ve && (s[vs] == ' ' || s[vs] == '\t'))
				vs++;
			while (
			    ve > vs && (s[ve - 1] == '\n' || s[ve - 1] == '\r'))
				ve--;
			raw = tv_dup(t, s + vs, ve - vs);
			tv_addh(t, arr, cnt, name, raw, NULL);
		}
	}
	if (i < n && s[i] == '\r')
		i++;
	if (i < n)
		i++;
	*hs = arr + start;
	*nh = *cnt - start;
	return i;
}

/* Rendering of HTML for the test view: tags dropped, "&nbsp;" a space. */
static inline char *
tv_strip_tags(struct tv *t, const char *s, size_t n)
{
	char  *o = malloc(n + 1);
	size_t i, k = 0;
	int    in = 0;

	for (i = 0; i < n; i++) {
		if (s[i] == '<')
			in = 1;
		else if (s[i] == '>' && in) {
			in = 0;
			o[k++] = ' ';
		} else if (!in)
			o[k++] = s[i];
	}
	o[k] = '\0';
	t->mv.html.tags++;
	return tv_keep(t, o);
}

static inline void
tv_scan_uris(struct tv *t, const char *s, size_t n)
{
	size_t i;

	for (i = 0; i + 8 < n && t->mv.nuris < TV_MAXU; i++) {
		size_t e, hs, he;

		if (!(s[i] == 'h' &&
			(memcmp(s + i, "http://", 7) == 0 ||
			    memcmp(s + i, "https://", 8) == 0)))
			continue;
		for (e = i; e < n && s[e] > ' ' && s[e] != '"' &&
		     s[e] != '\'' && s[e] != '<' && s[e] != '>';
		     e++)
			;
		hs = i + (s[i + 4] == 's' ? 8 : 7);
		for (he = hs;
		     he < e && s[he] != '/' && s[he] != ':' && s[he] != '?';
		     he++)
			;
		tv_uri(t, tv_dup(t, s + i, e - i), tv_dup(t, s + hs, he - hs),
		    MV_URI_TEXT);
		i = e;
	}
}

static inline void
tv_leaf(struct tv *t, const char *s, size_t n, const struct mv_header *hs,
    size_t nh, int self)
{
	const char *ct = "text/plain";
	size_t	    i;
	char	   *body = tv_dup(t, s, n);

	for (i = 0; i < nh; i++)
		if (strcasecmp(hs[i].name, "Content-Type") == 0) {
			if (strncasecmp(hs[i].decoded, "text/html", 9) == 0)
				ct = "text/html";
			else if (strncasecmp(hs[i].decoded, "text/", 5) != 0)
				ct = NULL;
		}
	tv_scan_uris(t, s, n);
	if (ct == NULL)
		return;
	{
		struct mv_part *p = strcmp(ct, "text/html") == 0
		    ? tv_part(t, ct, tv_strip_tags(t, s, n), body, self)
		    : tv_part(t, ct, body, body, self);

		if (p != NULL && !self) {
			p->headers = hs;
			p->nheaders = nh;
		}
	}
}

static inline void
tv_from_raw(struct tv *t, const char *s, size_t n)
{
	const struct mv_header *hs;
	size_t			nh, body, i;
	const char	       *b = NULL;
	char			bnd[200];

	tv_init(t);
	t->mv.size = n;
	body = tv_headers(t, s, n, 1, &hs, &nh);
	t->mv.hdrsize = body;
	for (i = 0; i < nh; i++) {
		if (strcasecmp(hs[i].name, "Content-Type") == 0 &&
		    strncasecmp(hs[i].decoded, "multipart/", 10) == 0 &&
		    (b = strcasestr(hs[i].decoded, "boundary=")) != NULL)
			break;
		b = NULL;
	}
	if (b == NULL) {
		tv_leaf(t, s + body, n - body, hs, nh, 1);
		return;
	}
	b += 9;
	{
		size_t k = 0;
		char   q = *b == '"' ? *b++ : 0;

		bnd[k++] = '-';
		bnd[k++] = '-';
		while (*b && k < sizeof(bnd) - 1 &&
		    (q ? *b != q : (*b != ';' && *b != ' ' && *b != '\t')))
			bnd[k++] = *b++;
		bnd[k] = '\0';
	}
	t->p[0].type = "multipart/mixed";
	t->p[0].flags = MV_PART_MULTIPART;
	{
		const char *p = s + body, *end = s + n, *q;

		p = tv_memmem(p, (size_t)(end - p), bnd);
		while (p != NULL) {
			const struct mv_header *ph;
			size_t			pnh, pb;
			const char *nl = memchr(p, '\n', (size_t)(end - p));

			if (nl == NULL)
				break;
			p = nl + 1;
			q = tv_memmem(p, (size_t)(end - p), bnd);
			if (q == NULL)
				q = end;
			pb = tv_headers(t, p, (size_t)(q - p), 0, &ph, &pnh);
			tv_leaf(t, p + pb, (size_t)(q - p) - pb, ph, pnh, 0);
			if (q == end || t->mv.nparts >= TV_MAXP)
				break;
			p = q;
		}
	}
	t->p[0].headers = t->h;
	t->p[0].nheaders = nh;
}

#endif
