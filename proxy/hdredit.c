/*
 * hdredit.c - rewriting the header section of a message at end of data:
 * milter-style add/change/delete of fields (RFC 5322 §2.2 fields, §2.2.3
 * folding, §2.1.1 line lengths), removal of Authentication-Results that
 * claim our authserv-id (RFC 8601 §2.2, §5), and the values we write
 * ourselves (Authentication-Results, spam status).
 *
 * Input and output are in wire form (RFC 5321 §4.5.2: CRLF lines, a line
 * starting with '.' has an extra '.'). Original bytes that we do not touch
 * are copied as they are, dot-stuffing included; what we write never
 * starts a line with '.' (names cannot, continuation lines start with
 * TAB), so it needs no stuffing.
 *
 * Every value we write may hold attacker-controlled text (a sender
 * address, a virus name); hdr_format() is the one place it becomes header
 * bytes, and it lets no CR, LF or NUL through: a value can never end its
 * field or start a new one.
 *
 * Work is linear in the input, except the field names, which are sorted
 * once (O(f log f)) so that edits find their occurrence without a scan,
 * and the Authentication-Results deletions, tested per A-R field.
 *
 * Pure: no I/O, no global state; thread-safe. Arguments are copied or
 * borrowed for the call; results are malloc'd and owned by the caller.
 */
#include <event2/buffer.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "escape.h"
#include "hdredit.h"
#include "util.h"

#define AR_NAME "Authentication-Results"

/* A growing NUL-terminated string. */
struct sbuf {
	char  *p;
	size_t len, cap;
};

static void
sb_add(struct sbuf *b, const void *p, size_t n)
{
	size_t need, cap;

	if (n > SIZE_MAX - b->len - 1)
		fatal("hdredit: string too long");
	need = b->len + n + 1;
	if (need > b->cap) {
		cap = b->cap ? b->cap : 128;
		while (cap < need)
			cap = cap > SIZE_MAX / 2 ? need : cap * 2;
		b->p = xrealloc(b->p, cap);
		b->cap = cap;
	}
	if (n > 0)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
sb_str(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

static int
is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

int
hdr_name_ok(const char *name)
{
	size_t	      n;
	unsigned char c;

	if (name == NULL || name[0] == '-')
		return 0;
	for (n = 0; name[n] != '\0'; n++) {
		c = (unsigned char)name[n];
		if (n >= HDR_NAME_MAX)
			return 0;
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			(c >= '0' && c <= '9') || c == '-'))
			return 0;
	}
	return n > 0;
}

/*
 * Sanitise in[0..len) into out (room for len bytes): controls but HTAB,
 * and DEL, become a space; a whitespace run holding such a space becomes
 * one space; leading and trailing whitespace goes; 8-bit bytes outside
 * valid UTF-8 become '?'. The output is never longer than the input and
 * holds no byte < 0x20 but HTAB, no DEL. Returns its length.
 */
static size_t
sanitize(const char *in, size_t len, char *out)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t		     i, o, run, k;
	int		     inrun, repl;
	unsigned char	     c;

	i = o = run = 0;
	inrun = repl = 0;
	while (i < len) {
		c = s[i];
		if (c < 0x20 || c == 0x7f || c == ' ') {
			i++;
			if (o == 0)
				continue; /* leading whitespace */
			if (!inrun) {
				inrun = 1;
				repl = 0;
				run = o;
			}
			if (c == ' ' || c == '\t')
				out[o++] = (char)c;
			else {
				out[o++] = ' ';
				repl = 1;
			}
			continue;
		}
		if (inrun) {
			if (repl) {
				o = run;
				out[o++] = ' ';
			}
			inrun = 0;
		}
		if (c < 0x80) {
			out[o++] = (char)c;
			i++;
		} else if ((k = utf8_seq(s + i, len - i)) == 0) {
			out[o++] = '?';
			i++;
		} else {
			memcpy(out + o, s + i, k);
			o += k;
			i += k;
		}
	}
	if (inrun)
		o = run; /* trailing whitespace */
	return o;
}

/*
 * Append one word (no whitespace) at column *col, splitting it with
 * CRLF TAB only where its line would pass HDR_LINE_MAX octets; splits
 * fall on UTF-8 boundaries.
 */
static void
put_word(struct sbuf *b, const char *w, size_t wlen, size_t *col)
{
	size_t k;

	while (wlen > HDR_LINE_MAX - *col) {
		k = HDR_LINE_MAX - *col;
		while (k > 0 && ((unsigned char)w[k] & 0xc0) == 0x80)
			k--;
		if (k == 0)
			k = HDR_LINE_MAX - *col;
		sb_add(b, w, k);
		sb_str(b, "\r\n\t");
		*col = 1;
		w += k;
		wlen -= k;
	}
	sb_add(b, w, wlen);
	*col += wlen;
}

char *
hdr_formatn(const char *name, const char *value, size_t vlen, size_t maxlen)
{
	struct sbuf b = { NULL, 0, 0 };
	char	   *s;
	size_t	    slen, i, rs, re, ws, col;

	if (!hdr_name_ok(name))
		return NULL;
	if (value == NULL)
		vlen = 0;
	s = xmalloc(vlen + 1);
	slen = sanitize(value, vlen, s);
	if (slen > maxlen) {
		/* s is valid UTF-8: back off a cut inside a sequence. */
		slen = maxlen;
		while (slen > 0 && ((unsigned char)s[slen] & 0xc0) == 0x80)
			slen--;
		while (slen > 0 && is_wsp((unsigned char)s[slen - 1]))
			slen--;
	}

	sb_str(&b, name);
	sb_add(&b, ":", 1);
	col = b.len;
	/* Words and the whitespace runs between them; s has no leading or
	 * trailing whitespace. */
	for (i = 0; i < slen;) {
		rs = i;
		while (i < slen && is_wsp((unsigned char)s[i]))
			i++;
		re = i;
		ws = i;
		while (i < slen && !is_wsp((unsigned char)s[i]))
			i++;
		if (ws == 0) {
			sb_add(&b, " ", 1);
			col++;
		} else if (col + (re - rs) + (i - ws) <= HDR_FOLD_COL) {
			sb_add(&b, s + rs, re - rs);
			col += re - rs;
		} else {
			/* Fold: CRLF TAB stands for the run (RFC 5322
			 * §2.2.3 unfolding leaves the TAB). */
			sb_str(&b, "\r\n\t");
			col = 1;
		}
		put_word(&b, s + ws, i - ws, &col);
	}
	sb_add(&b, "\r\n", 2);
	free(s);
	return b.p;
}

char *
hdr_format(const char *name, const char *value, size_t maxlen)
{
	return hdr_formatn(
	    name, value, value != NULL ? strlen(value) : 0, maxlen);
}

void
hdr_edits_init(struct hdr_edits *e)
{
	e->v = NULL;
	e->n = e->cap = 0;
}

static void
edit_push(struct hdr_edits *e, enum hdr_edit_op op, const char *name,
    unsigned index, const char *value)
{
	struct hdr_edit *x;

	if (e->n == e->cap) {
		if (e->cap > SIZE_MAX / 2 / sizeof(*e->v))
			fatal("hdredit: too many edits");
		e->cap = e->cap ? e->cap * 2 : 8;
		e->v = xrealloc(e->v, e->cap * sizeof(*e->v));
	}
	x = &e->v[e->n++];
	x->op = op;
	x->name = name != NULL ? xstrdup(name) : NULL;
	x->index = index;
	x->value = value != NULL ? xstrdup(value) : NULL;
}

int
hdr_edit_add(struct hdr_edits *e, const char *name, const char *value)
{
	if (!hdr_name_ok(name))
		return -1;
	edit_push(e, HDR_ADD_TOP, name, 0, value != NULL ? value : "");
	return 0;
}

int
hdr_edit_append(struct hdr_edits *e, const char *name, const char *value)
{
	if (!hdr_name_ok(name))
		return -1;
	edit_push(e, HDR_APPEND, name, 0, value != NULL ? value : "");
	return 0;
}

int
hdr_edit_change(
    struct hdr_edits *e, const char *name, unsigned index, const char *value)
{
	if (!hdr_name_ok(name))
		return -1;
	edit_push(e, HDR_CHANGE, name, index, value);
	return 0;
}

int
hdr_edit_delete_ar(struct hdr_edits *e, const char *authserv_id)
{
	if (authserv_id == NULL || authserv_id[0] == '\0')
		return -1;
	edit_push(e, HDR_DELETE_AR_ID, NULL, 0, authserv_id);
	return 0;
}

void
hdr_edits_free(struct hdr_edits *e)
{
	size_t i;

	for (i = 0; i < e->n; i++) {
		free(e->v[i].name);
		free(e->v[i].value);
	}
	free(e->v);
	hdr_edits_init(e);
}

long
hdr_section_end(const char *msg, size_t len)
{
	const char *p;

	if (len >= 2 && msg[0] == '\r' && msg[1] == '\n')
		return 2;
	if ((p = memmem(msg, len, "\r\n\r\n", 4)) == NULL)
		return -1;
	return (long)(p - msg) + 4;
}

/* One original field: its first line and its continuation lines. */
struct fld {
	const char *p;	  /* first byte */
	size_t	    len;  /* whole field, final CRLF included if present */
	const char *name; /* NULL: malformed, copied as it is */
	size_t	    nlen; /* name without WSP before the colon */
	const char *val;  /* raw value after the colon */
	size_t	    vlen; /* up to, not including, the final CRLF */
	struct fld *grp;  /* first field (in sort order) of this name */
	size_t	    chg;  /* 1 + last HDR_CHANGE of this occurrence */
	size_t	    gchg; /* on grp: 1 + last HDR_CHANGE with index 0 */
	int	    crlf; /* ends with CRLF */
};

/* RFC 5322 §3.6.8 ftext. */
static int
name_char(unsigned char c)
{
	return c >= 33 && c <= 126 && c != ':';
}

static int
name_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t i, n;
	int    ca, cb;

	n = alen < blen ? alen : blen;
	for (i = 0; i < n; i++) {
		ca = ascii_lower((unsigned char)a[i]);
		cb = ascii_lower((unsigned char)b[i]);
		if (ca != cb)
			return ca - cb;
	}
	return alen < blen ? -1 : alen > blen;
}

/* By name (case-insensitive), then by position: occurrences in order. */
static int
fld_cmp(const void *x, const void *y)
{
	const struct fld *a = *(const struct fld *const *)x;
	const struct fld *b = *(const struct fld *const *)y;
	int		  r;

	if ((r = name_cmp(a->name, a->nlen, b->name, b->nlen)) != 0)
		return r;
	return a < b ? -1 : a > b;
}

static int
fld_cmp_name_eq(const struct fld *a, const struct fld *b)
{
	return name_cmp(a->name, a->nlen, b->name, b->nlen) == 0;
}

/* Index in ord of the first field named name, or nord if none. */
static size_t
find_name(struct fld *const *ord, size_t nord, const char *name)
{
	size_t lo, hi, mid, nlen;

	nlen = strlen(name);
	lo = 0;
	hi = nord;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (name_cmp(ord[mid]->name, ord[mid]->nlen, name, nlen) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < nord &&
	    name_cmp(ord[lo]->name, ord[lo]->nlen, name, nlen) == 0)
		return lo;
	return nord;
}

/* Offset just past the CRLF ending the line at pos, or len. */
static size_t
next_line(const char *p, size_t len, size_t pos)
{
	const char *e;

	if ((e = memmem(p + pos, len - pos, "\r\n", 2)) == NULL)
		return len;
	return (size_t)(e - p) + 2;
}

/* Name and value of a field, per RFC 5322 §3.6.8 and §4.5.3 (obsolete
 * WSP before the colon). */
static void
fld_parse(struct fld *f)
{
	size_t i, j, end;

	f->crlf =
	    f->len >= 2 && f->p[f->len - 2] == '\r' && f->p[f->len - 1] == '\n';
	end = f->crlf ? f->len - 2 : f->len;
	for (i = 0; i < end && name_char((unsigned char)f->p[i]); i++)
		;
	for (j = i; j < end && is_wsp((unsigned char)f->p[j]); j++)
		;
	if (i == 0 || j >= end || f->p[j] != ':')
		return; /* malformed */
	f->name = f->p;
	f->nlen = i;
	f->val = f->p + j + 1;
	f->vlen = end - (j + 1);
}

static int
out_add(struct evbuffer *out, const char *p, size_t n)
{
	if (n == 0)
		return 0;
	return evbuffer_add(out, p, n) == 0 ? 0 : -1;
}

/* Format and write the added fields of one kind. */
static int
put_new(const struct hdr_edits *e, enum hdr_edit_op op, struct evbuffer *out,
    int *wrote)
{
	char  *s;
	size_t i;
	int    r;

	for (i = 0; i < e->n; i++) {
		if (e->v[i].op != op)
			continue;
		if ((s = hdr_format(
			 e->v[i].name, e->v[i].value, HDR_VALUE_MAX)) == NULL)
			continue; /* cannot happen: checked when added */
		r = out_add(out, s, strlen(s));
		free(s);
		if (r == -1)
			return -1;
		*wrote = 1;
	}
	return 0;
}

/*
 * Final fate of an original field: 0 keep as it is, 1 replaced by
 * *val (edit *e), -1 deleted. ar_del lists the HDR_DELETE_AR_ID edits in
 * order; those made before the last change of the field do not see its
 * final value and are skipped.
 */
static int
fld_fate(const struct hdr_edits *ed, const struct fld *f, int is_ar,
    const size_t *ar_del, size_t nar, const struct hdr_edit **e)
{
	const char *v;
	size_t	    c, i, vlen;

	c = f->chg > f->grp->gchg ? f->chg : f->grp->gchg;
	*e = NULL;
	if (c > 0) {
		*e = &ed->v[c - 1];
		if ((*e)->value == NULL)
			return -1;
	}
	if (is_ar) {
		v = *e ? (*e)->value : f->val;
		vlen = *e ? strlen(v) : f->vlen;
		for (i = 0; i < nar; i++)
			if (ar_del[i] >= c &&
			    ar_has_authserv_id(v, vlen, ed->v[ar_del[i]].value))
				return -1;
	}
	return *e ? 1 : 0;
}

int
hdr_edits_apply(const struct hdr_edits *ed, const char *hdr, size_t len,
    struct evbuffer *out)
{
	struct fld	      *f = NULL, **ord = NULL, *x;
	const struct hdr_edit *e;
	size_t		       nf = 0, capf = 0, nord, pos, start, i, k, g;
	size_t		      *ar_del = NULL, nar = 0, argrp;
	char		      *s;
	int r = -1, wrote = 0, fate, last_crlf = 1, body_first;

	/*
	 * Split into fields. A message whose first line starts with WSP has
	 * nothing to continue: as headers.c and Postfix read it, its header
	 * section is empty and that line starts the body; an empty line is
	 * then put between our fields and it, else it would fold into them.
	 */
	pos = 0;
	body_first = len > 0 && is_wsp((unsigned char)hdr[0]);
	if (!body_first) {
		while (pos < len &&
		    !(len - pos >= 2 && hdr[pos] == '\r' &&
			hdr[pos + 1] == '\n')) {
			start = pos;
			pos = next_line(hdr, len, pos);
			while (pos < len && is_wsp((unsigned char)hdr[pos]))
				pos = next_line(hdr, len, pos);
			if (nf == capf) {
				capf = capf ? capf * 2 : 32;
				f = xrealloc(f, capf * sizeof(*f));
			}
			memset(&f[nf], 0, sizeof(f[nf]));
			f[nf].p = hdr + start;
			f[nf].len = pos - start;
			fld_parse(&f[nf]);
			nf++;
		}
	}

	/* Group the named fields; a group's members in order of position. */
	ord = xcalloc(nf ? nf : 1, sizeof(*ord));
	for (i = nord = 0; i < nf; i++)
		if (f[i].name != NULL)
			ord[nord++] = &f[i];
	qsort(ord, nord, sizeof(*ord), fld_cmp);
	for (i = 0; i < nord; i = g) {
		for (g = i; g < nord && fld_cmp_name_eq(ord[i], ord[g]); g++)
			ord[g]->grp = ord[i];
	}

	/* Record each change on the occurrence it targets. */
	ar_del = xcalloc(ed->n ? ed->n : 1, sizeof(*ar_del));
	for (i = 0; i < ed->n; i++) {
		e = &ed->v[i];
		if (e->op == HDR_DELETE_AR_ID) {
			ar_del[nar++] = i;
			continue;
		}
		if (e->op != HDR_CHANGE ||
		    (g = find_name(ord, nord, e->name)) == nord)
			continue;
		if (e->index == 0)
			ord[g]->gchg = i + 1;
		else if ((k = e->index - 1) < nord - g &&
		    ord[g + k]->grp == ord[g])
			ord[g + k]->chg = i + 1;
	}
	argrp = find_name(ord, nord, AR_NAME);

	if (put_new(ed, HDR_ADD_TOP, out, &wrote) == -1)
		goto done;
	for (i = 0; i < nf; i++) {
		x = &f[i];
		fate = 0;
		if (x->name != NULL)
			fate = fld_fate(ed, x,
			    argrp < nord && x->grp == ord[argrp], ar_del, nar,
			    &e);
		if (fate == 0) {
			if (out_add(out, x->p, x->len) == -1)
				goto done;
			last_crlf = x->crlf;
		} else if (fate == 1) {
			s = hdr_format(e->name, e->value, HDR_VALUE_MAX);
			if (s == NULL)
				continue; /* cannot happen: name checked */
			fate = out_add(out, s, strlen(s));
			free(s);
			if (fate == -1)
				goto done;
			last_crlf = 1;
		}
	}
	for (i = 0; i < ed->n; i++)
		if (ed->v[i].op == HDR_APPEND)
			break;
	if (i < ed->n && !last_crlf && out_add(out, "\r\n", 2) == -1)
		goto done;
	if (put_new(ed, HDR_APPEND, out, &wrote) == -1)
		goto done;
	/* The empty line and what follows it, or a body-first message. */
	if (body_first && wrote && out_add(out, "\r\n", 2) == -1)
		goto done;
	if (out_add(out, hdr + pos, len - pos) == -1)
		goto done;
	r = 0;
done:
	free(ar_del);
	free(ord);
	free(f);
	return r;
}

/* RFC 2045 §5.1 token characters; 8-bit bytes too (RFC 8616). */
static int
token_char(unsigned char c)
{
	return c > 0x20 && c != 0x7f && strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

/*
 * Skip CFWS (RFC 5322 §3.2.2) from *i: WSP, the CR LF of folding, and
 * comments, which nest and may hold quoted-pairs. 0 if a comment is left
 * open.
 */
static int
skip_cfws(const char *v, size_t len, size_t *i)
{
	size_t depth;

	for (;;) {
		while (*i < len &&
		    (is_wsp((unsigned char)v[*i]) || v[*i] == '\r' ||
			v[*i] == '\n'))
			(*i)++;
		if (*i >= len || v[*i] != '(')
			return 1;
		depth = 0;
		while (*i < len) {
			if (v[*i] == '\\') {
				*i += *i + 1 < len ? 2 : 1;
				continue;
			}
			if (v[*i] == '(')
				depth++;
			else if (v[*i] == ')' && --depth == 0) {
				(*i)++;
				break;
			}
			(*i)++;
		}
		if (depth > 0)
			return 0;
	}
}

int
ar_has_authserv_id(const char *value, size_t len, const char *id)
{
	size_t i, k, idlen, start;

	if (value == NULL || id == NULL || id[0] == '\0')
		return 0;
	idlen = strlen(id);
	i = 0;
	if (!skip_cfws(value, len, &i) || i >= len)
		return 0;
	if (value[i] == '"') {
		/* quoted-string: compare its content, quoted-pairs undone,
		 * folding CR LF dropped. An unterminated one still counts. */
		for (i++, k = 0; i < len && value[i] != '"'; i++) {
			if (value[i] == '\r' || value[i] == '\n')
				continue;
			if (value[i] == '\\' && i + 1 < len)
				i++;
			if (k >= idlen ||
			    ascii_lower((unsigned char)value[i]) !=
				ascii_lower((unsigned char)id[k]))
				return 0;
			k++;
		}
		return k == idlen;
	}
	for (start = i; i < len && token_char((unsigned char)value[i]); i++)
		;
	return i - start == idlen &&
	    name_cmp(value + start, idlen, id, idlen) == 0;
}

/*
 * One method clause (or the id) for ar_build, malloc'd in *out: sanitised
 * as a header value, cut at the first ';' outside comments and
 * quoted-strings (so it cannot add a clause of its own), with an open
 * quoted-string or comment closed (so it cannot swallow the clauses after
 * it). Returns its length; 0 for nothing left.
 */
static size_t
ar_clause(const char *in, char **out)
{
	char  *s;
	size_t len, i, depth;
	int    quote, esc;

	len = strlen(in);
	if (len > (SIZE_MAX - 2) / 2)
		fatal("hdredit: clause too long");
	s = xmalloc(2 * len + 2); /* room to close every open comment */
	len = sanitize(in, len, s);
	depth = 0;
	quote = esc = 0;
	for (i = 0; i < len; i++) {
		if (esc) {
			esc = 0;
			continue;
		}
		if (s[i] == '\\' && (quote || depth > 0))
			esc = 1;
		else if (quote) {
			if (s[i] == '"')
				quote = 0;
		} else if (s[i] == '(')
			depth++;
		else if (depth > 0) {
			if (s[i] == ')')
				depth--;
		} else if (s[i] == '"')
			quote = 1;
		else if (s[i] == ';')
			break;
	}
	len = i;
	if (esc)
		len--; /* a lone backslash would quote our closing char */
	/* Trim at the top level only: inside, the WSP may be quoted. */
	while (!quote && depth == 0 && len > 0 &&
	    is_wsp((unsigned char)s[len - 1]))
		len--;
	if (quote)
		s[len++] = '"';
	while (depth-- > 0)
		s[len++] = ')';
	s[len] = '\0';
	*out = s;
	return len;
}

char *
ar_build(const char *authserv_id, const char *const *results, size_t n)
{
	struct sbuf b = { NULL, 0, 0 };
	char	   *c;
	size_t	    i, clen, added;

	if (authserv_id == NULL)
		return NULL;
	if ((clen = ar_clause(authserv_id, &c)) == 0) {
		free(c);
		return NULL;
	}
	sb_add(&b, c, clen);
	free(c);
	for (i = added = 0; i < n; i++) {
		if (results[i] == NULL)
			continue;
		if ((clen = ar_clause(results[i], &c)) > 0) {
			sb_add(&b, "; ", 2);
			sb_add(&b, c, clen);
			added++;
		}
		free(c);
	}
	if (added == 0)
		sb_str(&b, "; none");
	return b.p;
}
