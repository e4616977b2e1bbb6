/*
 * msgview_uri.c - the URIs of a message: found in text (RFC 3986 absolute
 * URIs with the schemes mail carries, schemeless "www." hosts, bare
 * RFC 5321 addresses as mailto:) and given by the HTML renderer
 * (attributes), kept unique by string in first-found order, each with its
 * host normalised (percent-decoded, lower case, no final dot, IDNA 2008
 * A-labels through libidn2 with UTS #46 mapping, the decimal, octal, hex
 * and short IPv4 forms inet_aton() accepts as a dotted quad, IPv6 as
 * inet_ntop() writes it) and its registrable domain from the Public
 * Suffix List (libpsl).
 *
 * Bounded: limits.uris entries, URI strings cut at URI_MAX bytes, anchor
 * texts at TEXT_MAX, hosts at 253 bytes. Globals: the PSL context, loaded
 * once by mv_uri_global_init() and read-only afterwards (libpsl lookups
 * are thread-safe); everything else is per builder.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <idn2.h>
#include <libpsl.h>

#include "msgview_int.h"
#include "util.h"

#define URI_MAX	 2048 /* bytes of a URI kept */
#define TEXT_MAX 512  /* bytes of an anchor text kept */
#define HOST_MAX 256

static const psl_ctx_t *psl;

void
mv_uri_global_init(void)
{
	psl = psl_latest(NULL);
	if (psl == NULL)
		psl = psl_builtin();
}

static int
is_alpha(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static int
is_alnum(int c)
{
	return is_alpha(c) || is_digit(c);
}

static int
hexval(int c)
{
	if (is_digit(c))
		return c - '0';
	c = ascii_lower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int
prefix(const char *s, size_t n, const char *p)
{
	size_t l = strlen(p);

	return n >= l && ascii_strncasecmp(s, p, l) == 0;
}

/* ------------------------------------------------------------ hosts */

/* One inet_aton() number: decimal, 0-octal or 0x-hex; -1 if not. */
static int
aton_part(const char *s, size_t n, unsigned long long *v)
{
	unsigned long long x = 0;
	size_t		   i = 0;
	int		   base = 10, d;

	if (n == 0 || !is_digit(s[0]))
		return -1;
	if (n > 1 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		i = 2;
	} else if (n > 1 && s[0] == '0') {
		base = 8;
		i = 1;
	}
	for (; i < n; i++) {
		d = hexval((unsigned char)s[i]);
		if (d < 0 || d >= base)
			return -1;
		x = x * (unsigned)base + (unsigned)d;
		if (x > 0xffffffffull)
			return -1;
	}
	*v = x;
	return 0;
}

/* An IPv4 address in any form inet_aton() takes, as a dotted quad. */
static int
ipv4_obfuscated(const char *h, char *out, size_t outlen)
{
	unsigned long long part[4], addr;
	const char	  *p = h, *dot;
	size_t		   n = 0, i;

	for (;;) {
		if (n == 4)
			return -1;
		dot = strchr(p, '.');
		if (aton_part(p, dot != NULL ? (size_t)(dot - p) : strlen(p),
			&part[n++]) != 0)
			return -1;
		if (dot == NULL)
			break;
		p = dot + 1;
	}
	/* a.b.c.d; a.b.(16 bits); a.(24 bits); (32 bits). */
	for (i = 0; i + 1 < n; i++)
		if (part[i] > 255)
			return -1;
	if (part[n - 1] > (0xffffffffull >> (8 * (n - 1))))
		return -1;
	addr = part[n - 1];
	for (i = 0; i + 1 < n; i++)
		addr |= part[i] << (8 * (3 - i));
	strfmt(out, outlen, "%u.%u.%u.%u", (unsigned)(addr >> 24) & 255,
	    (unsigned)(addr >> 16) & 255, (unsigned)(addr >> 8) & 255,
	    (unsigned)addr & 255);
	return 0;
}

/* ASCII host name: LDH (and '_') labels of 1-63, 253 in all. */
static int
ascii_host_ok(const char *h)
{
	size_t label = 0, n = 0;

	for (; *h != '\0'; h++, n++) {
		if (*h == '.') {
			if (label == 0)
				return 0;
			label = 0;
			continue;
		}
		if (!is_alnum(*h) && *h != '-' && *h != '_')
			return 0;
		if (++label > 63)
			return 0;
	}
	return n > 0 && n <= 253;
}

/* Normalise host[0..n) into out (HOST_MAX); 0 or -1. */
static int
host_normalise(const char *h, size_t n, char *out, size_t outlen)
{
	char		buf[HOST_MAX], *a = NULL;
	size_t		i, l = 0;
	int		hi, lo, nonascii = 0;
	struct in6_addr a6;

	for (i = 0; i < n; i++) {
		char c = h[i];

		if (c == '%' && i + 2 < n && (hi = hexval(h[i + 1])) >= 0 &&
		    (lo = hexval(h[i + 2])) >= 0) {
			c = (char)(hi * 16 + lo);
			i += 2;
		}
		if (l + 1 >= sizeof(buf) || c == '\0')
			return -1;
		if ((unsigned char)c >= 0x80)
			nonascii = 1;
		buf[l++] = (char)ascii_lower((unsigned char)c);
	}
	buf[l] = '\0';
	if (l > 2 && buf[0] == '[' && buf[l - 1] == ']') {
		buf[l - 1] = '\0';
		if (inet_pton(AF_INET6, buf + 1, &a6) == 1 &&
		    inet_ntop(AF_INET6, &a6, out, (socklen_t)outlen) != NULL)
			return 0;
		return ipv4_obfuscated(buf + 1, out, outlen);
	}
	while (l > 0 && buf[l - 1] == '.')
		buf[--l] = '\0';
	if (l == 0)
		return -1;
	if (ipv4_obfuscated(buf, out, outlen) == 0)
		return 0;
	if (nonascii) {
		if (idn2_lookup_u8((const uint8_t *)buf, (uint8_t **)&a,
			IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL) != IDN2_OK &&
		    idn2_lookup_u8((const uint8_t *)buf, (uint8_t **)&a,
			IDN2_NFC_INPUT | IDN2_TRANSITIONAL) != IDN2_OK)
			return -1;
		l = strlen(a);
		while (l > 0 && a[l - 1] == '.')
			a[--l] = '\0';
		if (l + 1 > outlen || !ascii_host_ok(a)) {
			idn2_free(a);
			return -1;
		}
		for (i = 0; i <= l; i++)
			out[i] = (char)ascii_lower((unsigned char)a[i]);
		idn2_free(a);
		return 0;
	}
	if (l + 1 > outlen || !ascii_host_ok(buf))
		return -1;
	memcpy(out, buf, l + 1);
	return 0;
}

static void
registrable(const char *host, char *dom, size_t domlen)
{
	const char    *r = NULL;
	struct in_addr a4;

	if (strchr(host, ':') == NULL && inet_pton(AF_INET, host, &a4) != 1 &&
	    psl != NULL)
		r = psl_registrable_domain(psl, host);
	strfmt(dom, domlen, "%s", r != NULL ? r : host);
}

int
mv_uri_host(const char *u, size_t n, char *host, size_t hostlen, char *dom,
    size_t domlen)
{
	const char *end = u + n, *a, *e, *at, *colon;
	size_t	    i;

	while (u < end && (*u == ' ' || *u == '\t'))
		u++;
	n = (size_t)(end - u);
	if (prefix(u, n, "mailto:")) {
		a = u + 7;
		for (e = a; e < end && *e != '?' && *e != '>' && *e != ',' &&
		     *e != ';' && *e != ' ';
		     e++)
			;
		at = NULL;
		for (i = 0; a + i < e; i++)
			if (a[i] == '@')
				at = a + i;
		if (at == NULL)
			return -1;
		a = at + 1;
	} else {
		/* scheme ":" ["//"] authority, or "//" authority, or
		   a schemeless host. */
		for (i = 0;
		     i < n && (is_alnum(u[i]) || u[i] == '+' || u[i] == '-');
		     i++)
			;
		if (i > 0 && i < n && u[i] == ':' && is_alpha(u[0])) {
			a = u + i + 1;
			while (a < end && (*a == '/' || *a == '\\'))
				a++;
		} else if (n >= 2 && (u[0] == '/' || u[0] == '\\') &&
		    (u[1] == '/' || u[1] == '\\'))
			a = u + 2;
		else
			a = u;
		for (e = a; e < end && *e != '/' && *e != '?' && *e != '#' &&
		     *e != '\\' && (unsigned char)*e > ' ';
		     e++)
			;
		for (at = e; at > a; at--)
			if (at[-1] == '@')
				break;
		a = at;
		if (a < e && *a == '[') {
			colon = memchr(a, ']', (size_t)(e - a));
			if (colon != NULL)
				e = colon + 1;
		} else {
			for (colon = e; colon > a; colon--)
				if (colon[-1] == ':') {
					e = colon - 1;
					break;
				}
		}
	}
	if (a >= end || host_normalise(a, (size_t)(e - a), host, hostlen) != 0)
		return -1;
	registrable(host, dom, domlen);
	return 0;
}

/* ------------------------------------------------------------ the set */

static uint32_t
uri_hash(const char *s, size_t n)
{
	return fnv1a(FNV1A_INIT, s, n);
}

static void
uhash_grow(struct mv_build *b)
{
	size_t	  cap = b->uhashcap != 0 ? b->uhashcap * 2 : 64, i, j;
	uint32_t *t = xcalloc(cap, sizeof(*t));

	for (i = 0; i < b->nuris; i++) {
		const char *u = b->uris[i].uri;

		j = uri_hash(u, strlen(u)) & (cap - 1);
		while (t[j] != 0)
			j = (j + 1) & (cap - 1);
		t[j] = (uint32_t)i + 1;
	}
	free(b->uhash);
	b->uhash = t;
	b->uhashcap = cap;
}

/* Trim, drop CR/LF/TAB inside (browsers do), cut at URI_MAX. */
static size_t
uri_clean(const char *u, size_t n, char *out)
{
	size_t i, l = 0;

	while (n > 0 && (unsigned char)u[0] <= ' ') {
		u++;
		n--;
	}
	while (n > 0 && (unsigned char)u[n - 1] <= ' ')
		n--;
	for (i = 0; i < n && l < URI_MAX; i++)
		if (u[i] != '\r' && u[i] != '\n' && u[i] != '\t' && u[i] != 0)
			out[l++] = u[i];
	out[l] = '\0';
	return l;
}

static int
uri_wanted(const char *u, size_t n, unsigned *flags)
{
	if (prefix(u, n, "mailto:")) {
		*flags |= MV_URI_MAILTO;
		return 1;
	}
	return prefix(u, n, "http:") || prefix(u, n, "https:") ||
	    prefix(u, n, "ftp:") || prefix(u, n, "//") ||
	    prefix(u, n, "www.") || prefix(u, n, "ftp.");
}

void
mv_uri_add(struct mv_build *b, const char *uri, size_t len, unsigned flags,
    const char *text, size_t textlen)
{
	char	       u[URI_MAX + 1], host[HOST_MAX], dom[HOST_MAX];
	struct mv_uri *e;
	size_t	       n, j;
	uint32_t       h;

	n = uri_clean(uri, len, u);
	if (n == 0 || !uri_wanted(u, n, &flags))
		return;
	if (b->uhashcap == 0)
		uhash_grow(b);
	h = uri_hash(u, n);
	for (j = h & (b->uhashcap - 1); b->uhash[j] != 0;
	     j = (j + 1) & (b->uhashcap - 1)) {
		e = &b->uris[b->uhash[j] - 1];
		if (strcmp(e->uri, u) == 0) {
			e->flags |= flags;
			if (e->text == NULL && text != NULL)
				e->text = mv_strndup(b->arena, text,
				    textlen < TEXT_MAX ? textlen : TEXT_MAX);
			return;
		}
	}
	if (b->nuris >= b->lim.uris) {
		b->v->truncated |= MV_TRUNC_URIS;
		return;
	}
	if (b->nuris == b->uriscap) {
		b->uriscap = b->uriscap != 0 ? b->uriscap * 2 : 32;
		b->uris = xrealloc(b->uris, b->uriscap * sizeof(*b->uris));
	}
	e = &b->uris[b->nuris];
	memset(e, 0, sizeof(*e));
	e->uri = mv_strndup(b->arena, u, n);
	e->flags = flags;
	if (text != NULL)
		e->text = mv_strndup(
		    b->arena, text, textlen < TEXT_MAX ? textlen : TEXT_MAX);
	if (mv_uri_host(u, n, host, sizeof(host), dom, sizeof(dom)) == 0) {
		e->host = mv_strndup(b->arena, host, strlen(host));
		e->domain = strcmp(host, dom) == 0
		    ? e->host
		    : mv_strndup(b->arena, dom, strlen(dom));
	}
	b->nuris++;
	b->uhash[j] = (uint32_t)b->nuris;
	if (b->nuris * 2 >= b->uhashcap)
		uhash_grow(b);
}

/* ------------------------------------------------------------ text */

typedef int (*found_fn)(void *arg, const char *u, size_t n, unsigned fl);

/* Bytes that end a URI in text. */
static int
uri_stop(unsigned char c)
{
	return c <= ' ' || c == 0x7f || c == '"' || c == '<' || c == '>' ||
	    c == '`' || c == '{' || c == '}' || c == '|' || c == '^' ||
	    c == '\\';
}

/* End of the URI starting at s[i]: stop bytes, NBSP, trailing marks. */
static size_t
uri_end(const char *s, size_t i, size_t n)
{
	size_t e = i, open = 0, close = 0;

	while (e < n && !uri_stop((unsigned char)s[e]) &&
	    !((unsigned char)s[e] == 0xc2 && e + 1 < n &&
		(unsigned char)s[e + 1] == 0xa0))
		e++;
	for (size_t k = i; k < e; k++) {
		open += s[k] == '(';
		close += s[k] == ')';
	}
	while (e > i) {
		char c = s[e - 1];

		if (c == ')' && close > open)
			close--;
		else if (!strchr(".,;:!?'*[]", c))
			break;
		e--;
	}
	return e;
}

static int
local_char(int c)
{
	return is_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' ||
	    c == '-';
}

static int
domain_char(int c)
{
	return is_alnum(c) || c == '.' || c == '-';
}

/* An address around the '@' at s[at]; composes "mailto:..." into out. */
static size_t
bare_address(const char *s, size_t at, size_t n, char *out, size_t *endp)
{
	size_t st = at, e = at + 1, lastdot = 0, l;

	while (st > 0 && at - st < 64 && local_char((unsigned char)s[st - 1]))
		st--;
	while (st < at && s[st] == '.')
		st++;
	if (st == at)
		return 0;
	while (e < n && e - at < 254 && domain_char((unsigned char)s[e]))
		e++;
	while (e > at + 1 && (s[e - 1] == '.' || s[e - 1] == '-'))
		e--;
	for (l = at + 1; l < e; l++)
		if (s[l] == '.')
			lastdot = l;
	if (lastdot == 0 || e - lastdot < 3 || !is_alnum(s[at + 1]))
		return 0;
	for (l = lastdot + 1; l < e; l++)
		if (!is_alpha(s[l]) && !(l > lastdot + 2 && is_alnum(s[l])))
			return 0;
	memcpy(out, "mailto:", 7);
	memcpy(out + 7, s + st, e - st);
	*endp = e;
	return 7 + e - st;
}

/* Scheme letters just before s[i] (a ':'); their start or i. */
static size_t
scheme_start(const char *s, size_t i)
{
	size_t st = i;

	while (st > 0 && i - st < 10 && is_alpha(s[st - 1]))
		st--;
	return st;
}

static void
scan(const char *s, size_t n, unsigned flags, found_fn fn, void *arg)
{
	char   addr[7 + 64 + 1 + 256];
	size_t i = 0, st, e, l;

	while (i < n) {
		unsigned char c = (unsigned char)s[i];

		if (c == ':' && i > 0) {
			st = scheme_start(s, i);
			l = i - st;
			if (st > 0 && is_alnum(s[st - 1]))
				l = 0;
			if (((l == 4 && prefix(s + st, 4, "http")) ||
				(l == 5 && prefix(s + st, 5, "https")) ||
				(l == 3 && prefix(s + st, 3, "ftp"))) &&
			    i + 2 < n && s[i + 1] == '/' && s[i + 2] == '/') {
				e = uri_end(s, i + 3, n);
				if (e > i + 3 && fn(arg, s + st, e - st, flags))
					return;
				i = e > i ? e : i + 1;
				continue;
			}
			if (l == 6 && prefix(s + st, 6, "mailto")) {
				e = uri_end(s, i + 1, n);
				if (e > i + 1 &&
				    fn(arg, s + st, e - st,
					flags | MV_URI_MAILTO))
					return;
				i = e > i ? e : i + 1;
				continue;
			}
		} else if ((c == 'w' || c == 'W') && i + 4 < n &&
		    prefix(s + i, n - i, "www.") && is_alnum(s[i + 4]) &&
		    (i == 0 ||
			(!is_alnum(s[i - 1]) && s[i - 1] != '.' &&
			    s[i - 1] != '/' && s[i - 1] != '@' &&
			    s[i - 1] != '-'))) {
			e = uri_end(s, i, n);
			if (fn(arg, s + i, e - i, flags))
				return;
			i = e;
			continue;
		} else if (c == '@') {
			l = bare_address(s, i, n, addr, &e);
			if (l > 0) {
				if (fn(arg, addr, l, flags | MV_URI_MAILTO))
					return;
				i = e;
				continue;
			}
		}
		i++;
	}
}

static int
found_add(void *arg, const char *u, size_t n, unsigned fl)
{
	mv_uri_add(arg, u, n, fl, NULL, 0);
	return 0;
}

void
mv_uri_scan_text(
    struct mv_build *b, const char *text, size_t len, unsigned flags)
{
	scan(text, len, flags, found_add, b);
}

struct first {
	char  *out;
	size_t outlen;
	int    ok;
};

static int
found_first(void *arg, const char *u, size_t n, unsigned fl)
{
	struct first *f = arg;
	char	      host[HOST_MAX];

	f->ok = mv_uri_host(u, n, host, sizeof(host), f->out, f->outlen) == 0;
	return 1;
}

int
mv_uri_text_domain(const char *text, size_t len, char *out, size_t outlen)
{
	struct first f = { out, outlen, 0 };
	char	     host[HOST_MAX];
	size_t	     i, dots = 0;

	scan(text, len, 0, found_first, &f);
	if (f.ok)
		return 0;
	/* A bare "example.com" shown as the link text. */
	while (len > 0 && (unsigned char)*text <= ' ') {
		text++;
		len--;
	}
	while (len > 0 && (unsigned char)text[len - 1] <= ' ')
		len--;
	if (len == 0 || len >= HOST_MAX)
		return -1;
	for (i = 0; i < len; i++) {
		if (text[i] == '.')
			dots++;
		else if (!domain_char((unsigned char)text[i]))
			break;
	}
	if (dots == 0 || (i < len && text[i] != '/'))
		return -1;
	if (!is_alpha(text[i - 1]))
		return -1;
	return mv_uri_host(text, len, host, sizeof(host), out, outlen);
}
