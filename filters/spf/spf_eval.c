/*
 * spf_eval.c - RFC 7208 check_host(), restartable; see spf_eval.h.
 *
 * A run evaluates from the start: record selection (§4.4, §4.5), the
 * record's syntax as a whole before any term (§4.6, ABNF of §12),
 * mechanisms left to right (§5), redirect (§6.1), the explanation of a
 * fail (§6.2), macros (§7), the processing limits (§4.6.4). Any question
 * whose answer is not known yet makes the run return R_MISS, which every
 * level passes up unchanged.
 *
 * Records are parsed in place: terms point into the answer's text, which
 * lives as long as the evaluation.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "spf_eval.h"
#include "util.h"

#define R_MISS	      100 /* beside enum spf_verdict: records missing */
#define R_FOUND	      101 /* get_record(): there is one */
#define SPF_TERMS_MAX 512 /* terms in one record */
#define EXPAND_MAX    4096

enum mech { M_ALL, M_INCLUDE, M_A, M_MX, M_PTR, M_IP4, M_IP6, M_EXISTS };

struct term {
	char	      qual; /* + - ~ ? */
	enum mech     m;
	const char   *spec; /* domain-spec, or NULL */
	size_t	      speclen;
	int	      c4, c6; /* prefix lengths */
	unsigned char net[16];
	const char   *text; /* for the result's "mechanism" */
	size_t	      textlen;
};

struct record {
	struct term *t;
	size_t	     n;
	const char  *redirect, *exp;
	size_t	     redirectlen, explen;
};

struct run {
	struct spf_eval *e;
	int		 v6; /* the client is IPv6 */
	unsigned char	 ip[16];
	unsigned	 terms, voids;
	int		 overflow;
};

static const char *const verdict_names[] = { "none", "neutral", "pass", "fail",
	"softfail", "temperror", "permerror" };

const char *
spf_verdict_name(enum spf_verdict v)
{
	return (size_t)v < nitems(verdict_names) ? verdict_names[v] : "?";
}

/* ================================================================ syntax */

static int
is_alnum(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

static int
is_alpha(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int
is_delim(int c)
{
	return c != '\0' && strchr(".-+,/_=", c) != NULL;
}

static int
word_is(const char *s, size_t len, const char *w)
{
	return strlen(w) == len && ascii_strncasecmp(s, w, len) == 0;
}

/*
 * macro-string (§7.1), or explain-string when exp is set (spaces and the
 * letters c, r, t allowed). *end_macro: the offset just past the last
 * macro-expand, for domain-end. 0 or -1.
 */
static int
macro_string_ok(const char *s, size_t len, int exp, size_t *end_macro)
{
	size_t i = 0;

	if (end_macro != NULL)
		*end_macro = 0;
	while (i < len) {
		unsigned char c = (unsigned char)s[i];

		if (c == '%') {
			if (i + 1 >= len)
				return -1;
			c = (unsigned char)s[i + 1];
			if (c == '%' || c == '_' || c == '-') {
				i += 2;
			} else if (c == '{') {
				size_t j = i + 2, d0, k;

				if (j >= len || s[j] == '\0' ||
				    !strchr(exp ? "slodiphvcrtSLODIPHVCRT"
						: "slodiphvSLODIPHV",
					s[j]))
					return -1;
				j++;
				d0 = j;
				while (j < len && s[j] >= '0' && s[j] <= '9')
					j++;
				for (k = d0; k < j && s[k] == '0'; k++)
					;
				if (j > d0 && k == j)
					return -1; /* a zero DIGIT (§7.3) */
				if (j < len && (s[j] == 'r' || s[j] == 'R'))
					j++;
				while (j < len && is_delim(s[j]))
					j++;
				if (j >= len || s[j] != '}')
					return -1;
				i = j + 1;
			} else
				return -1;
			if (end_macro != NULL)
				*end_macro = i;
		} else if ((c >= 0x21 && c <= 0x7e) || (exp && c == ' ')) {
			i++;
		} else
			return -1;
	}
	return 0;
}

/* toplabel (§7.1). */
static int
toplabel_ok(const char *s, size_t len)
{
	size_t i;
	int    alpha = 0, hyphen = 0;

	if (len == 0)
		return 0;
	for (i = 0; i < len; i++) {
		if (s[i] == '-')
			hyphen = 1;
		else if (!is_alnum(s[i]))
			return 0;
		else if (is_alpha(s[i]))
			alpha = 1;
	}
	if (hyphen)
		return is_alnum(s[0]) && is_alnum(s[len - 1]);
	return alpha;
}

/* domain-spec = macro-string domain-end (§7.1). */
static int
domain_spec_ok(const char *s, size_t len)
{
	size_t end_macro, tail, dot;

	if (len == 0 || macro_string_ok(s, len, 0, &end_macro) != 0)
		return 0;
	if (end_macro == len)
		return 1; /* ends with a macro-expand */
	tail = len;
	if (s[tail - 1] == '.')
		tail--;
	for (dot = tail; dot > end_macro && s[dot - 1] != '.'; dot--)
		;
	if (dot == end_macro)
		return 0; /* no "." toplabel after the last macro */
	return toplabel_ok(s + dot, tail - dot);
}

/* ip4-network: four qnums, no leading zeros (§12). */
static int
ip4_parse(const char *s, size_t len, unsigned char out[4])
{
	size_t i = 0;
	int    k;

	for (k = 0; k < 4; k++) {
		size_t	 d0 = i;
		unsigned v = 0;

		while (i < len && s[i] >= '0' && s[i] <= '9' && i - d0 < 3)
			v = v * 10 + (unsigned)(s[i++] - '0');
		if (i == d0 || v > 255 || (i - d0 > 1 && s[d0] == '0'))
			return 0;
		out[k] = (unsigned char)v;
		if (k < 3 && (i >= len || s[i++] != '.'))
			return 0;
	}
	return i == len;
}

static int
ip6_parse(const char *s, size_t len, unsigned char out[16])
{
	char buf[64];

	if (len == 0 || len >= sizeof(buf))
		return 0;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return inet_pton(AF_INET6, buf, out) == 1;
}

/* "/" ("0" / %x31-39 0*ND) with a maximum; -1 if malformed. */
static int
cidr_parse(const char *s, size_t len, int max)
{
	size_t i;
	int    v = 0;

	if (len == 0 || len > 3 || (len > 1 && s[0] == '0'))
		return -1;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v <= max ? v : -1;
}

/*
 * Split a trailing dual-cidr-length off a/mx arguments: "spec/24//64".
 * Returns 0 or -1; *speclen is what remains before it.
 */
static int
dual_cidr(const char *s, size_t len, size_t *speclen, int *c4, int *c6)
{
	size_t i = len;

	*c4 = 32;
	*c6 = 128;
	/* "//N" at the end */
	while (i > 0 && s[i - 1] >= '0' && s[i - 1] <= '9')
		i--;
	if (i >= 2 && i < len && s[i - 1] == '/' && s[i - 2] == '/') {
		if ((*c6 = cidr_parse(s + i, len - i, 128)) < 0)
			return -1;
		len = i - 2;
		i = len;
		while (i > 0 && s[i - 1] >= '0' && s[i - 1] <= '9')
			i--;
	}
	/* "/N" at the (new) end */
	if (i >= 1 && i < len && s[i - 1] == '/') {
		if ((*c4 = cidr_parse(s + i, len - i, 32)) < 0)
			return -1;
		len = i - 1;
	} else if (len > 0 && s[len - 1] == '/')
		return -1;
	*speclen = len;
	return 0;
}

static const struct {
	const char *name;
	enum mech   m;
} mechs[] = { { "all", M_ALL }, { "include", M_INCLUDE }, { "a", M_A },
	{ "mx", M_MX }, { "ptr", M_PTR }, { "ip4", M_IP4 }, { "ip6", M_IP6 },
	{ "exists", M_EXISTS } };

static int
term_parse(const char *s, size_t len, struct term *t, char *why, size_t wl)
{
	size_t i, nl, argl = 0, speclen;
	int    has_arg;

	memset(t, 0, sizeof(*t));
	t->text = s;
	t->textlen = len;
	t->qual = '+';
	if (len > 0 && strchr("+-~?", s[0])) {
		t->qual = s[0];
		s++;
		len--;
	}
	for (nl = 0; nl < len && s[nl] != ':' && s[nl] != '/'; nl++)
		;
	for (i = 0; i < nitems(mechs); i++)
		if (word_is(s, nl, mechs[i].name))
			break;
	if (i == nitems(mechs)) {
		snprintf(why, wl, "unknown mechanism \"%.*s\"", (int)len, s);
		return -1;
	}
	t->m = mechs[i].m;
	has_arg = nl < len && s[nl] == ':';
	const char *arg = s + nl + (has_arg ? 1 : 0);
	argl = len - nl - (has_arg ? 1 : 0);

	switch (t->m) {
	case M_ALL:
		if (nl != len)
			goto bad;
		return 0;
	case M_INCLUDE:
	case M_EXISTS:
		if (!has_arg || !domain_spec_ok(arg, argl))
			goto bad;
		t->spec = arg;
		t->speclen = argl;
		return 0;
	case M_PTR:
		if (nl == len)
			return 0;
		if (!has_arg || !domain_spec_ok(arg, argl))
			goto bad;
		t->spec = arg;
		t->speclen = argl;
		return 0;
	case M_A:
	case M_MX:
		if (!has_arg) { /* only a cidr may follow */
			if (dual_cidr(s + nl, len - nl, &speclen, &t->c4,
				&t->c6) != 0 ||
			    speclen != 0)
				goto bad;
			return 0;
		}
		if (dual_cidr(arg, argl, &speclen, &t->c4, &t->c6) != 0 ||
		    !domain_spec_ok(arg, speclen))
			goto bad;
		t->spec = arg;
		t->speclen = speclen;
		return 0;
	case M_IP4:
	case M_IP6: {
		const char *slash;
		size_t	    netl;

		if (!has_arg)
			goto bad;
		slash = memchr(arg, '/', argl);
		netl = slash ? (size_t)(slash - arg) : argl;
		if (t->m == M_IP4) {
			if (!ip4_parse(arg, netl, t->net))
				goto bad;
			t->c4 = 32;
			if (slash &&
			    (t->c4 = cidr_parse(
				 slash + 1, argl - netl - 1, 32)) < 0)
				goto bad;
		} else {
			if (!ip6_parse(arg, netl, t->net))
				goto bad;
			t->c6 = 128;
			if (slash &&
			    (t->c6 = cidr_parse(
				 slash + 1, argl - netl - 1, 128)) < 0)
				goto bad;
		}
		return 0;
	}
	}
bad:
	snprintf(why, wl, "bad term \"%.*s\"", (int)t->textlen, t->text);
	return -1;
}

/* Parse a whole record (§4.6: any syntax error makes it permerror). */
static int
record_parse(
    const char *s, size_t len, struct record *rec, char *why, size_t wl)
{
	size_t i = 0, j, cap = 0;

	memset(rec, 0, sizeof(*rec));
	if (len < 6 || ascii_strncasecmp(s, "v=spf1", 6) != 0 ||
	    (len > 6 && s[6] != ' ')) {
		snprintf(why, wl, "not an SPF record");
		return -1;
	}
	for (i = 6; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e) {
			snprintf(why, wl, "bad character 0x%02x in record",
			    (unsigned char)s[i]);
			return -1;
		}
	i = 6;
	while (i < len) {
		const char *tok;
		size_t	    tl, nl;

		while (i < len && s[i] == ' ')
			i++;
		if (i >= len)
			break;
		for (j = i; j < len && s[j] != ' '; j++)
			;
		tok = s + i;
		tl = j - i;
		i = j;
		/* modifier: name "=" (§12) */
		for (nl = 0; nl < tl &&
		     (is_alnum(tok[nl]) || strchr("-_.", tok[nl]) != NULL);
		     nl++)
			;
		if (nl > 0 && nl < tl && tok[nl] == '=' && is_alpha(tok[0])) {
			const char *v = tok + nl + 1;
			size_t	    vl = tl - nl - 1;

			if (word_is(tok, nl, "redirect") ||
			    word_is(tok, nl, "exp")) {
				int red = word_is(tok, nl, "redirect");

				if ((red ? rec->redirect : rec->exp) != NULL) {
					snprintf(why, wl, "%s twice",
					    red ? "redirect" : "exp");
					goto fail;
				}
				if (!domain_spec_ok(v, vl)) {
					snprintf(
					    why, wl, "bad %.*s", (int)tl, tok);
					goto fail;
				}
				if (red) {
					rec->redirect = v;
					rec->redirectlen = vl;
				} else {
					rec->exp = v;
					rec->explen = vl;
				}
			} else if (macro_string_ok(v, vl, 0, NULL) != 0) {
				snprintf(
				    why, wl, "bad modifier %.*s", (int)tl, tok);
				goto fail;
			}
			continue;
		}
		if (rec->n >= SPF_TERMS_MAX) {
			snprintf(why, wl, "more than %d terms", SPF_TERMS_MAX);
			goto fail;
		}
		if (rec->n == cap) {
			cap = cap ? cap * 2 : 16;
			rec->t = xrealloc(rec->t, cap * sizeof(*rec->t));
		}
		if (term_parse(tok, tl, &rec->t[rec->n], why, wl) != 0)
			goto fail;
		rec->n++;
	}
	return 0;
fail:
	free(rec->t);
	rec->t = NULL;
	return -1;
}

int
spf_record_check(const char *record, size_t len, char *why, size_t whylen)
{
	struct record rec;

	if (memchr(record, '\0', len) != NULL) {
		snprintf(why, whylen, "NUL in record");
		return -1;
	}
	if (record_parse(record, len, &rec, why, whylen) != 0)
		return -1;
	free(rec.t);
	return 0;
}

/* ================================================================ answers */

/* Lower case, no final dot; 0 if it does not fit. */
static int
name_key(const char *in, char *out, size_t outlen)
{
	size_t n = strlen(in), i;

	while (n > 0 && in[n - 1] == '.')
		n--;
	if (n >= outlen)
		return 0;
	for (i = 0; i < n; i++)
		out[i] = (char)ascii_lower((unsigned char)in[i]);
	out[n] = '\0';
	return 1;
}

static struct spf_answer *
answer_find(struct spf_eval *e, const char *key, int type)
{
	size_t i;

	for (i = 0; i < e->nanswers; i++)
		if (e->answers[i].type == type &&
		    strcmp(e->answers[i].name, key) == 0)
			return &e->answers[i];
	return NULL;
}

void
spf_eval_answer(struct spf_eval *e, const char *name, int type,
    enum dns_status st, const struct spf_rr *rr, size_t n)
{
	struct spf_answer *a;
	char		   key[256];
	size_t		   i, total;

	if (!name_key(name, key, sizeof(key)) || answer_find(e, key, type) ||
	    e->nanswers >= SPF_EVAL_MAX_QUERIES)
		return;
	e->answers =
	    xrealloc(e->answers, (e->nanswers + 1) * sizeof(*e->answers));
	a = &e->answers[e->nanswers++];
	memset(a, 0, sizeof(*a));
	memcpy(a->name, key, strlen(key) + 1);
	a->type = type;
	a->status = st;
	if (st != DNS_OK || n == 0)
		return;
	for (i = 0, total = 0; i < n; i++)
		total += rr[i].text != NULL ? rr[i].len + 1 : 0;
	if (total > SPF_EVAL_MAX_BYTES - e->bytes) {
		a->status = DNS_ERROR; /* kept out; the run says why */
		e->too_big = 1;
		return;
	}
	e->bytes += total;
	a->rr = xcalloc(n, sizeof(*a->rr));
	for (i = 0; i < n; i++) {
		if (rr[i].text == NULL)
			continue; /* undecodable: as if absent */
		a->rr[a->n].text = xmalloc(rr[i].len + 1);
		memcpy(a->rr[a->n].text, rr[i].text, rr[i].len);
		a->rr[a->n].text[rr[i].len] = '\0';
		a->rr[a->n].len = rr[i].len;
		a->n++;
	}
}

static const struct spf_answer nxdomain = { .status = DNS_NXDOMAIN };

/*
 * Can the name be asked? 1-253 octets, labels of 1-63 printable ASCII
 * octets. Unlike dns_name_valid(), a space is allowed: macros put them in
 * names (%_), and DNS labels may hold any octet (RFC 2181 §11); the
 * filter escapes them for the resolver.
 */
static int
name_askable(const char *n)
{
	size_t len = strlen(n), label = 0, i;

	if (len == 0 || len > 253)
		return 0;
	for (i = 0; i < len; i++) {
		if (n[i] == '.') {
			if (label == 0)
				return 0;
			label = 0;
		} else if ((unsigned char)n[i] < 0x20 ||
		    (unsigned char)n[i] > 0x7e || ++label > 63)
			return 0;
	}
	return label > 0;
}

/* The answer, or NULL when it is missing (then asked for). */
static const struct spf_answer *
lookup(struct run *r, const char *name, int type)
{
	struct spf_eval	  *e = r->e;
	struct spf_answer *a;
	char		   key[256];
	size_t		   i;

	if (!name_key(name, key, sizeof(key)) || !name_askable(key))
		return &nxdomain; /* cannot exist */
	if ((a = answer_find(e, key, type)) != NULL)
		return a;
	for (i = 0; i < e->nmissing; i++)
		if (e->missing[i].type == type &&
		    strcmp(e->missing[i].name, key) == 0)
			return NULL;
	if (e->nanswers + e->nmissing >= SPF_EVAL_MAX_QUERIES)
		r->overflow = 1;
	else if (e->nmissing < nitems(e->missing)) {
		memcpy(e->missing[e->nmissing].name, key, strlen(key) + 1);
		e->missing[e->nmissing++].type = type;
	}
	return NULL;
}

static int
answer_void(const struct spf_answer *a)
{
	return a->status == DNS_NODATA || a->status == DNS_NXDOMAIN ||
	    (a->status == DNS_OK && a->n == 0);
}

static int
answer_temp(const struct spf_answer *a)
{
	return a->status == DNS_TEMPFAIL || a->status == DNS_TIMEOUT ||
	    a->status == DNS_BOGUS || a->status == DNS_ERROR;
}

/* ================================================================ macros */

struct buf {
	char  *p;
	size_t len, cap;
	int    full;
};

static void
put(struct buf *b, const char *s, size_t n)
{
	if (b->len + n >= b->cap) {
		b->full = 1;
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/* Append value transformed (§7.3) and, for an upper-case letter, URL
 * escaped (§7.3, RFC 3986 unreserved kept). */
static void
put_macro(struct buf *b, const char *val, unsigned keep, int rev,
    const char *delims, size_t ndelims, int upper)
{
	const char *part[128];
	size_t	    plen[128], np = 0, i, first;
	const char *p = val, *q;
	char	    dl[16];
	struct buf  tmp;
	char	    tbuf[EXPAND_MAX];

	if (ndelims == 0)
		snprintf(dl, sizeof(dl), ".");
	else
		snprintf(dl, sizeof(dl), "%.*s", (int)ndelims, delims);
	for (;;) {
		for (q = p; *q != '\0' && strchr(dl, *q) == NULL; q++)
			;
		if (np < nitems(part)) {
			part[np] = p;
			plen[np++] = (size_t)(q - p);
		}
		if (*q == '\0')
			break;
		p = q + 1;
	}
	if (rev)
		for (i = 0; i < np / 2; i++) {
			const char *tp = part[i];
			size_t	    tl = plen[i];

			part[i] = part[np - 1 - i];
			plen[i] = plen[np - 1 - i];
			part[np - 1 - i] = tp;
			plen[np - 1 - i] = tl;
		}
	first = keep > 0 && keep < np ? np - keep : 0;
	tmp.p = tbuf;
	tmp.len = 0;
	tmp.cap = sizeof(tbuf);
	tmp.full = 0;
	tbuf[0] = '\0';
	for (i = first; i < np; i++) {
		if (i > first)
			put(&tmp, ".", 1);
		put(&tmp, part[i], plen[i]);
	}
	if (tmp.full)
		b->full = 1;
	if (!upper) {
		put(b, tbuf, tmp.len);
		return;
	}
	for (i = 0; i < tmp.len; i++) {
		unsigned char c = (unsigned char)tbuf[i];
		char	      hex[4];

		if (is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~')
			put(b, (const char *)&c, 1);
		else {
			snprintf(hex, sizeof(hex), "%%%02X", c);
			put(b, hex, 3);
		}
	}
}

static int check_host(
    struct run *, const char *domain, int depth, char **explanation);

/*
 * %{p} (§7.3): a validated name of the client, preferring the domain
 * itself, then one of its subdomains; "unknown" when there is none.
 * R_MISS when records are missing, else 0.
 */
static int validated_name(
    struct run *r, const char *domain, char *out, size_t outlen);

/* Expand a macro-string; 0, -1 (too long) or R_MISS. */
static int
expand(struct run *r, const char *s, size_t len, const char *domain, int exp,
    struct buf *b)
{
	struct spf_eval *e = r->e;
	size_t		 i = 0;
	char		 val[EXPAND_MAX], pname[256];
	const char	*at;

	b->len = 0;
	b->full = 0;
	b->p[0] = '\0';
	while (i < len) {
		if (s[i] != '%') {
			put(b, s + i, 1);
			i++;
			continue;
		}
		if (s[i + 1] == '%' || s[i + 1] == '_' || s[i + 1] == '-') {
			put(b,
			    s[i + 1] == '%'	  ? "%"
				: s[i + 1] == '_' ? " "
						  : "%20",
			    s[i + 1] == '-' ? 3 : 1);
			i += 2;
			continue;
		}
		/* "%{" letter digits [r] delimiters "}", checked already */
		char	 letter = s[i + 2];
		int	 upper = letter >= 'A' && letter <= 'Z';
		unsigned keep = 0;
		int	 rev = 0;
		size_t	 j = i + 3, d0;

		while (j < len && s[j] >= '0' && s[j] <= '9') {
			if (keep < 1000)
				keep = keep * 10 + (unsigned)(s[j] - '0');
			j++;
		}
		if (j < len && (s[j] == 'r' || s[j] == 'R')) {
			rev = 1;
			j++;
		}
		d0 = j;
		while (j < len && s[j] != '}')
			j++;
		switch (ascii_lower(letter)) {
		case 's':
			snprintf(val, sizeof(val), "%s", e->sender);
			break;
		case 'l':
			at = strrchr(e->sender, '@');
			snprintf(val, sizeof(val), "%.*s",
			    (int)(at ? at - e->sender : 0), e->sender);
			break;
		case 'o':
			at = strrchr(e->sender, '@');
			snprintf(val, sizeof(val), "%s", at ? at + 1 : "");
			break;
		case 'd':
			snprintf(val, sizeof(val), "%s", domain);
			break;
		case 'i':
			if (!r->v6)
				snprintf(val, sizeof(val), "%u.%u.%u.%u",
				    r->ip[0], r->ip[1], r->ip[2], r->ip[3]);
			else {
				size_t k, o = 0;

				for (k = 0; k < 16; k++)
					o += (size_t)snprintf(val + o,
					    sizeof(val) - o, "%s%x.%x",
					    k ? "." : "", r->ip[k] >> 4,
					    r->ip[k] & 15);
			}
			break;
		case 'p': {
			int rc =
			    validated_name(r, domain, pname, sizeof(pname));

			if (rc != 0)
				return rc;
			snprintf(val, sizeof(val), "%s", pname);
			break;
		}
		case 'v':
			snprintf(
			    val, sizeof(val), "%s", r->v6 ? "ip6" : "in-addr");
			break;
		case 'h':
			snprintf(val, sizeof(val), "%s", e->helo);
			break;
		case 'c':
			inet_ntop(r->v6 ? AF_INET6 : AF_INET, r->ip, val,
			    sizeof(val));
			break;
		case 'r':
			snprintf(val, sizeof(val), "%s",
			    e->receiver ? e->receiver : "unknown");
			break;
		case 't':
			snprintf(val, sizeof(val), "%ld", e->now);
			break;
		default:
			val[0] = '\0';
		}
		(void)exp;
		put_macro(b, val, keep, rev, s + d0, j - d0, upper);
		i = j + 1;
	}
	return b->full ? -1 : 0;
}

/*
 * Expand a domain-spec for a query: truncated from the left to 253
 * octets (§7.3). 0, -1 or R_MISS.
 */
static int
expand_domain(struct run *r, const char *s, size_t len, const char *domain,
    char *out, size_t outlen)
{
	char	    tmp[EXPAND_MAX];
	struct buf  b = { tmp, 0, sizeof(tmp), 0 };
	const char *p;
	int	    rc;

	if ((rc = expand(r, s, len, domain, 0, &b)) != 0)
		return rc;
	p = tmp;
	while (b.len - (size_t)(p - tmp) > 253) {
		const char *dot = strchr(p, '.');

		if (dot == NULL)
			break;
		p = dot + 1;
	}
	strfmt(out, outlen, "%s", p);
	return 0;
}

/* ================================================================ matching */

static int
prefix_match(const unsigned char *a, const unsigned char *b, int bits)
{
	int whole = bits / 8, rest = bits % 8;

	if (memcmp(a, b, (size_t)whole) != 0)
		return 0;
	if (rest == 0)
		return 1;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));

	return (a[whole] & mask) == (b[whole] & mask);
}

/* Does an address record (text) match the client within the prefix? */
static int
addr_match(struct run *r, const char *text, int c4, int c6)
{
	unsigned char a[16];

	if (!r->v6)
		return inet_pton(AF_INET, text, a) == 1 &&
		    prefix_match(a, r->ip, c4);
	return inet_pton(AF_INET6, text, a) == 1 && prefix_match(a, r->ip, c6);
}

static int
addr_type(const struct run *r)
{
	return r->v6 ? DNS_T_AAAA : DNS_T_A;
}

/* Count a term that queries DNS (§4.6.4); 0 or SPF_V_PERMERROR. */
static int
count_term(struct run *r)
{
	if (++r->terms > SPF_DNS_TERMS_MAX) {
		strfmt(r->e->problem, sizeof(r->e->problem),
		    "more than %d DNS-querying terms", SPF_DNS_TERMS_MAX);
		return SPF_V_PERMERROR;
	}
	return 0;
}

static int
count_void(struct run *r)
{
	if (++r->voids > SPF_VOID_LOOKUPS_MAX) {
		strfmt(r->e->problem, sizeof(r->e->problem),
		    "more than %d void lookups", SPF_VOID_LOOKUPS_MAX);
		return SPF_V_PERMERROR;
	}
	return 0;
}

static int
temperror(struct run *r, const char *name, const struct spf_answer *a)
{
	strfmt(r->e->problem, sizeof(r->e->problem), "DNS %s for %s",
	    dns_status_name(a->status), name);
	return SPF_V_TEMPERROR;
}

/*
 * The names of the client's PTR records whose address records lead back
 * to it (§5.5), at most SPF_PTR_MAX asked. R_MISS or 0; *n set.
 */
static int
validated_names(struct run *r, char names[][256], size_t *n)
{
	const struct spf_answer *ptr, *a;
	char			 rev[128], ip[64];
	size_t			 i, k;
	int			 miss = 0;

	*n = 0;
	inet_ntop(r->v6 ? AF_INET6 : AF_INET, r->ip, ip, sizeof(ip));
	if (dns_reverse_name(ip, rev, sizeof(rev)) != 0)
		return 0;
	if ((ptr = lookup(r, rev, DNS_T_PTR)) == NULL)
		return R_MISS;
	if (ptr->status != DNS_OK)
		return 0;
	for (i = 0; i < ptr->n && i < SPF_PTR_MAX; i++) {
		if ((a = lookup(r, ptr->rr[i].text, addr_type(r))) == NULL) {
			miss = 1;
			continue;
		}
		if (a->status != DNS_OK)
			continue;
		for (k = 0; k < a->n; k++)
			if (addr_match(r, a->rr[k].text, 32, 128)) {
				strfmt(
				    names[(*n)++], 256, "%s", ptr->rr[i].text);
				break;
			}
	}
	return miss ? R_MISS : 0;
}

static int
name_under(const char *name, const char *domain)
{
	size_t nl = strlen(name), dl = strlen(domain);

	while (nl > 0 && name[nl - 1] == '.')
		nl--;
	while (dl > 0 && domain[dl - 1] == '.')
		dl--;
	if (nl == dl)
		return ascii_strncasecmp(name, domain, nl) == 0;
	return nl > dl && name[nl - dl - 1] == '.' &&
	    ascii_strncasecmp(name + nl - dl, domain, dl) == 0;
}

static int
validated_name(struct run *r, const char *domain, char *out, size_t outlen)
{
	char   names[SPF_PTR_MAX][256];
	size_t n, i;
	int    rc;

	if ((rc = validated_names(r, names, &n)) != 0)
		return rc;
	snprintf(out, outlen, "unknown");
	for (i = 0; i < n; i++)
		if (ascii_strcasecmp(names[i], domain) == 0) {
			snprintf(out, outlen, "%s", names[i]);
			return 0;
		}
	for (i = 0; i < n; i++)
		if (name_under(names[i], domain)) {
			snprintf(out, outlen, "%s", names[i]);
			return 0;
		}
	if (n > 0)
		snprintf(out, outlen, "%s", names[0]);
	return 0;
}

/* ================================================================ check_host
 */

/*
 * The record of a domain (§4.4, §4.5): R_FOUND with *rec pointing into
 * the answer, or SPF_V_NONE, R_MISS, TEMPERROR, PERMERROR.
 */
static int
get_record(struct run *r, const char *domain, const struct spf_rr **rec)
{
	const struct spf_answer *a;
	size_t			 i, found = 0;

	if ((a = lookup(r, domain, DNS_T_TXT)) == NULL)
		return R_MISS;
	if (answer_temp(a))
		return temperror(r, domain, a);
	if (a->status != DNS_OK) {
		strfmt(r->e->problem, sizeof(r->e->problem),
		    "no SPF record for %s", domain);
		return SPF_V_NONE;
	}
	for (i = 0; i < a->n; i++) {
		const char *t = a->rr[i].text;

		if (a->rr[i].len >= 6 &&
		    ascii_strncasecmp(t, "v=spf1", 6) == 0 &&
		    (a->rr[i].len == 6 || t[6] == ' ')) {
			*rec = &a->rr[i];
			found++;
		}
	}
	if (found == 0) {
		strfmt(r->e->problem, sizeof(r->e->problem),
		    "no SPF record for %s", domain);
		return SPF_V_NONE;
	}
	if (found > 1) {
		strfmt(r->e->problem, sizeof(r->e->problem),
		    "several SPF records for %s", domain);
		return SPF_V_PERMERROR;
	}
	return R_FOUND;
}

/* The explanation of a fail (§6.2); NULL when there is none. */
static int
explain(struct run *r, const struct record *rec, const char *domain, char **out)
{
	const struct spf_answer *a;
	char			 name[256], text[EXPAND_MAX];
	struct buf		 b = { text, 0, sizeof(text), 0 };
	int			 rc;

	*out = NULL;
	rc =
	    expand_domain(r, rec->exp, rec->explen, domain, name, sizeof(name));
	if (rc == R_MISS)
		return R_MISS;
	if (rc != 0)
		return 0;
	if ((a = lookup(r, name, DNS_T_TXT)) == NULL)
		return R_MISS;
	if (a->status != DNS_OK || a->n != 1 ||
	    memchr(a->rr[0].text, '\0', a->rr[0].len) != NULL ||
	    macro_string_ok(a->rr[0].text, a->rr[0].len, 1, NULL) != 0)
		return 0;
	if ((rc = expand(r, a->rr[0].text, a->rr[0].len, domain, 1, &b)) ==
	    R_MISS)
		return R_MISS;
	if (rc == 0)
		*out = xstrdup(text);
	return 0;
}

static int
qualifier_verdict(char q)
{
	switch (q) {
	case '-':
		return SPF_V_FAIL;
	case '~':
		return SPF_V_SOFTFAIL;
	case '?':
		return SPF_V_NEUTRAL;
	default:
		return SPF_V_PASS;
	}
}

/* One mechanism: 1 match, 0 no match, or a verdict/R_MISS (+ 100 + v). */
#define MATCH	 1
#define NO_MATCH 0
#define STOP(v)	 (1000 + (v))

static int
mechanism(struct run *r, const struct term *t, const char *domain, int depth)
{
	const struct spf_answer *a, *h;
	char			 target[256];
	size_t			 i, k;
	int			 rc, miss;

	if (t->m == M_ALL)
		return MATCH;
	if (t->m == M_IP4)
		return !r->v6 && prefix_match(t->net, r->ip, t->c4);
	if (t->m == M_IP6)
		return r->v6 && prefix_match(t->net, r->ip, t->c6);
	if ((rc = count_term(r)) != 0)
		return STOP(rc);
	if (t->spec != NULL) {
		rc = expand_domain(
		    r, t->spec, t->speclen, domain, target, sizeof(target));
		if (rc == R_MISS)
			return STOP(R_MISS);
		if (rc != 0) {
			strfmt(r->e->problem, sizeof(r->e->problem),
			    "macro expansion too long");
			return STOP(SPF_V_PERMERROR);
		}
	} else
		snprintf(target, sizeof(target), "%s", domain);

	switch (t->m) {
	case M_INCLUDE: {
		char *unused = NULL;

		rc = check_host(r, target, depth + 1, &unused);
		free(unused);
		switch (rc) {
		case SPF_V_PASS:
			return MATCH;
		case SPF_V_FAIL:
		case SPF_V_SOFTFAIL:
		case SPF_V_NEUTRAL:
			return NO_MATCH;
		case SPF_V_TEMPERROR:
		case R_MISS:
			return STOP(rc);
		default: /* none, permerror (§5.2) */
			if (rc == SPF_V_NONE)
				strfmt(r->e->problem, sizeof(r->e->problem),
				    "include:%s has no SPF record", target);
			return STOP(SPF_V_PERMERROR);
		}
	}
	case M_A:
	case M_EXISTS:
		a = lookup(
		    r, target, t->m == M_EXISTS ? DNS_T_A : addr_type(r));
		if (a == NULL)
			return STOP(R_MISS);
		if (answer_temp(a))
			return STOP(temperror(r, target, a));
		if (answer_void(a))
			return (rc = count_void(r)) != 0 ? STOP(rc) : NO_MATCH;
		if (t->m == M_EXISTS)
			return MATCH;
		for (i = 0; i < a->n; i++)
			if (addr_match(r, a->rr[i].text, t->c4, t->c6))
				return MATCH;
		return NO_MATCH;
	case M_MX:
		if ((a = lookup(r, target, DNS_T_MX)) == NULL)
			return STOP(R_MISS);
		if (answer_temp(a))
			return STOP(temperror(r, target, a));
		if (answer_void(a))
			return (rc = count_void(r)) != 0 ? STOP(rc) : NO_MATCH;
		if (a->n > SPF_MX_MAX) {
			strfmt(r->e->problem, sizeof(r->e->problem),
			    "more than %d MX records for %s", SPF_MX_MAX,
			    target);
			return STOP(SPF_V_PERMERROR);
		}
		miss = 0;
		for (i = 0; i < a->n; i++) {
			if (a->rr[i].text[0] == '\0')
				continue; /* null MX (RFC 7505) */
			if ((h = lookup(r, a->rr[i].text, addr_type(r))) ==
			    NULL) {
				miss = 1;
				continue;
			}
			if (answer_temp(h))
				return STOP(temperror(r, a->rr[i].text, h));
			for (k = 0; h->status == DNS_OK && k < h->n; k++)
				if (!miss &&
				    addr_match(r, h->rr[k].text, t->c4, t->c6))
					return MATCH;
		}
		return miss ? STOP(R_MISS) : NO_MATCH;
	case M_PTR: {
		char   names[SPF_PTR_MAX][256];
		size_t n;
		char   rev[128], ip[64];

		inet_ntop(r->v6 ? AF_INET6 : AF_INET, r->ip, ip, sizeof(ip));
		if (dns_reverse_name(ip, rev, sizeof(rev)) == 0 &&
		    (a = lookup(r, rev, DNS_T_PTR)) != NULL && answer_void(a) &&
		    (rc = count_void(r)) != 0)
			return STOP(rc);
		if ((rc = validated_names(r, names, &n)) != 0)
			return STOP(rc);
		for (i = 0; i < n; i++)
			if (name_under(names[i], target))
				return MATCH;
		return NO_MATCH;
	}
	default:
		return NO_MATCH;
	}
}

static int
check_host(struct run *r, const char *domain, int depth, char **explanation)
{
	const struct spf_rr *text;
	struct record	     rec;
	size_t		     i;
	int		     rc;
	char		     why[160];

	*explanation = NULL;
	if (depth > 2 * SPF_DNS_TERMS_MAX) /* cannot happen: terms count */
		return SPF_V_PERMERROR;
	if ((rc = get_record(r, domain, &text)) != R_FOUND)
		return rc;
	if (memchr(text->text, '\0', text->len) != NULL ||
	    record_parse(text->text, text->len, &rec, why, sizeof(why)) != 0) {
		if (memchr(text->text, '\0', text->len) != NULL)
			snprintf(why, sizeof(why), "NUL in record");
		strfmt(r->e->problem, sizeof(r->e->problem), "%s: %s", domain,
		    why);
		return SPF_V_PERMERROR;
	}
	for (i = 0; i < rec.n; i++) {
		rc = mechanism(r, &rec.t[i], domain, depth);
		if (rc == NO_MATCH)
			continue;
		if (rc >= 1000) {
			rc -= 1000;
			goto out;
		}
		rc = qualifier_verdict(rec.t[i].qual);
		if (depth == 0)
			snprintf(r->e->mechanism, sizeof(r->e->mechanism),
			    "%.*s", (int)rec.t[i].textlen, rec.t[i].text);
		if (rc == SPF_V_FAIL && rec.exp != NULL &&
		    explain(r, &rec, domain, explanation) == R_MISS)
			rc = R_MISS;
		goto out;
	}
	if (rec.redirect != NULL) {
		char target[256];

		if ((rc = count_term(r)) != 0)
			goto out;
		rc = expand_domain(r, rec.redirect, rec.redirectlen, domain,
		    target, sizeof(target));
		if (rc == R_MISS)
			goto out;
		if (rc != 0) {
			rc = SPF_V_PERMERROR;
			goto out;
		}
		free(rec.t);
		rc = check_host(r, target, depth, explanation);
		if (rc == SPF_V_NONE) {
			strfmt(r->e->problem, sizeof(r->e->problem),
			    "redirect=%s has no SPF record", target);
			return SPF_V_PERMERROR;
		}
		return rc;
	}
	rc = SPF_V_NEUTRAL; /* §4.7 */
out:
	free(rec.t);
	return rc;
}

/* ================================================================ evaluations
 */

/*
 * RFC 7208 §4.3: a domain that is malformed (an empty label, a label over
 * 63 octets, over 253 octets in all) or has a single label is not
 * checked: the result is "none".
 */
static int
domain_checkable(const char *d)
{
	size_t len = strlen(d), label = 0, labels = 1, i;

	if (len > 0 && d[len - 1] == '.')
		len--;
	if (len == 0 || len > 253)
		return 0;
	for (i = 0; i < len; i++) {
		if (d[i] == '.') {
			if (label == 0)
				return 0;
			label = 0;
			labels++;
		} else if (++label > 63)
			return 0;
	}
	return label > 0 && labels >= 2;
}

struct spf_eval *
spf_eval_new(const struct sockaddr *client, enum spf_identity id,
    const char *helo, const char *sender, const char *receiver)
{
	struct spf_eval *e = xcalloc(1, sizeof(*e));

	if (client->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 =
		    (const struct sockaddr_in6 *)client;

		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			struct sockaddr_in *s4 =
			    (struct sockaddr_in *)&e->client;

			s4->sin_family = AF_INET;
			memcpy(&s4->sin_addr, &s6->sin6_addr.s6_addr[12], 4);
		} else
			memcpy(&e->client, s6, sizeof(*s6));
	} else
		memcpy(&e->client, client, sizeof(struct sockaddr_in));
	e->identity = id;
	e->helo = xstrdup(helo != NULL ? helo : "");
	if (id == SPF_ID_HELO || sender == NULL || *sender == '\0') {
		/* §2.3, §2.4: postmaster@ the HELO name */
		e->identity = SPF_ID_HELO;
		e->sender = xmalloc(strlen(e->helo) + sizeof("postmaster@"));
		sprintf(e->sender, "postmaster@%s", e->helo);
	} else if (strchr(sender, '@') == NULL || sender[0] == '@') {
		/* §4.3: no local-part: "postmaster" */
		const char *d = sender[0] == '@' ? sender + 1 : sender;

		e->sender = xmalloc(strlen(d) + sizeof("postmaster@"));
		sprintf(e->sender, "postmaster@%s", d);
	} else
		e->sender = xstrdup(sender);
	e->receiver = xstrdup(receiver != NULL ? receiver : "unknown");
	return e;
}

static void
clear_result(struct spf_eval *e)
{
	free(e->domain);
	free(e->explanation);
	e->domain = e->explanation = NULL;
	e->mechanism[0] = '\0';
	e->problem[0] = '\0';
}

void
spf_eval_free(struct spf_eval *e)
{
	size_t i, j;

	if (e == NULL)
		return;
	for (i = 0; i < e->nanswers; i++) {
		for (j = 0; j < e->answers[i].n; j++)
			free(e->answers[i].rr[j].text);
		free(e->answers[i].rr);
	}
	free(e->answers);
	clear_result(e);
	free(e->helo);
	free(e->sender);
	free(e->receiver);
	free(e);
}

int
spf_eval_run(struct spf_eval *e)
{
	struct run  r;
	const char *dom;
	int	    rc;

	clear_result(e);
	e->nmissing = 0;
	e->runs++;
	if (e->now == 0)
		e->now = (long)time(NULL); /* %{t}: seconds since the epoch */
	memset(&r, 0, sizeof(r));
	r.e = e;
	if (e->client.ss_family == AF_INET6) {
		r.v6 = 1;
		memcpy(
		    r.ip, &((struct sockaddr_in6 *)&e->client)->sin6_addr, 16);
	} else
		memcpy(r.ip, &((struct sockaddr_in *)&e->client)->sin_addr, 4);
	dom = strrchr(e->sender, '@') + 1;
	e->domain = xstrdup(dom);
	if (!domain_checkable(dom)) {
		e->result = SPF_V_NONE;
		snprintf(
		    e->problem, sizeof(e->problem), "domain not checkable");
		return 1;
	}
	rc = check_host(&r, e->domain, 0, &e->explanation);
	e->terms = r.terms;
	e->voids = r.voids;
	if (r.overflow || e->too_big) {
		free(e->explanation);
		e->explanation = NULL;
		e->result = SPF_V_PERMERROR;
		snprintf(e->problem, sizeof(e->problem), "%s",
		    r.overflow ? "too many DNS lookups"
			       : "DNS answers too large");
		return 1;
	}
	if (rc == R_MISS) {
		free(e->explanation);
		e->explanation = NULL;
		return 0;
	}
	e->result = (enum spf_verdict)rc;
	if (e->result != SPF_V_TEMPERROR && e->result != SPF_V_PERMERROR &&
	    e->result != SPF_V_NONE)
		e->problem[0] = '\0';
	return 1;
}
