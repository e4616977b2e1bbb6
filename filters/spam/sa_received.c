/*
 * sa_received.c - Received trace fields (RFC 5321 section 4.4; RFC 5322
 * section 3.6.7) as relays, with the outcome SpamAssassin 4.0's
 * Message::Metadata::Received gives: which MTA wrote the field (Postfix,
 * Sendmail, Exim, qmail and qpsmtpd, Microsoft SMTPSVC and Exchange,
 * Courier, Lotus, webmail HTTP hops, POP/IMAP fetchers, ...) decides
 * which name is the HELO and which the reverse DNS the MTA looked up.
 *
 * The field is normalised (whitespace runs to one space, the trailing
 * date and ';' dropped), then read as
 *	from W1 (group) [group] ... by BY tail
 * and the shape of the groups ("name [ip]", "[ip] helo=x", "HELO x",
 * "ident@ip", ...) plus the MTA's signature in the tail pick the roles.
 * Local handovers (no TCP client) are skipped; a network hop whose
 * address cannot be found is counted as unparseable, as SpamAssassin
 * does (UNPARSEABLE_RELAY).
 *
 * Then the trust walk: the session's client, then each relay newest
 * first, is trusted while it is in trusted_networks (or authenticated);
 * without configured networks, while it is private or authenticated.
 * Internal = trusted here (moat has no separate internal_networks).
 *
 * Ownership and threading: no state; callers own every buffer. Bounded:
 * fields cut at SA_RCVD_MAXLEN, at most SA_RELAYS_MAX relays, every scan
 * linear in the field's length (the loops over " with " and " id " are
 * bounded by it).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "addr.h"
#include "sa_received.h"
#include "util.h"

/* ------------------------------------------------------------ helpers */

static int
is_sp(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
	    c == '\v';
}

static int
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static int
is_word(int c)
{
	return is_digit(c) || (c >= 'a' && c <= 'z') ||
	    (c >= 'A' && c <= 'Z') || c == '_';
}

static int
is_hex(int c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* copy n bytes into a fixed field, NUL-terminated, truncated */
static void
setf(char *dst, size_t cap, const char *s, size_t n)
{
	if (n >= cap)
		n = cap - 1;
	memcpy(dst, s, n);
	dst[n] = '\0';
}

static const char *
memstr(const char *s, size_t n, const char *pat)
{
	size_t m = strlen(pat), i;

	if (m == 0 || m > n)
		return NULL;
	for (i = 0; i + m <= n; i++)
		if (s[i] == pat[0] && memcmp(s + i, pat, m) == 0)
			return s + i;
	return NULL;
}

static const char *
memcasestr(const char *s, size_t n, const char *pat)
{
	size_t m = strlen(pat), i;

	if (m == 0 || m > n)
		return NULL;
	for (i = 0; i + m <= n; i++)
		if (ascii_strncasecmp(s + i, pat, m) == 0)
			return s + i;
	return NULL;
}

static int
prefix(const char *s, const char *e, const char *p)
{
	size_t n = strlen(p);

	return (size_t)(e - s) >= n && memcmp(s, p, n) == 0;
}

/* end of the \S+ token at s */
static const char *
tok_end(const char *s, const char *e)
{
	while (s < e && *s != ' ')
		s++;
	return s;
}

/*
 * Length of an IPv4 (dotted quad, octets 0-255, not followed by a word
 * character) or IPv6 (hex and ':' with at least two ':', optionally an
 * "IPv6:" prefix and a dotted-quad tail) address at s, or 0.
 */
static size_t
ip4_len(const char *s, const char *e)
{
	const char *p = s;
	int	    k;

	if (p > s && is_word(p[-1]))
		return 0;
	for (k = 0; k < 4; k++) {
		unsigned v = 0, nd = 0;

		while (p < e && is_digit(*p) && nd < 4) {
			v = v * 10 + (unsigned)(*p - '0');
			p++;
			nd++;
		}
		if (nd == 0 || nd > 3 || v > 255)
			return 0;
		if (k < 3) {
			if (p >= e || *p != '.')
				return 0;
			p++;
		}
	}
	if (p < e && is_word(*p))
		return 0;
	return (size_t)(p - s);
}

static size_t
ip_len(const char *s, const char *e)
{
	const char *p = s;
	size_t	    n4, colons = 0;

	if ((n4 = ip4_len(s, e)) > 0)
		return n4;
	if (e - p >= 5 && ascii_strncasecmp(p, "IPv6:", 5) == 0)
		p += 5;
	{
		const char *q = p;

		while (q < e && (is_hex(*q) || *q == ':' || *q == '.')) {
			if (*q == ':')
				colons++;
			q++;
		}
		if (colons < 2 || q == p || (q < e && is_word(*q)))
			return 0;
		while (q > p && q[-1] == '.')
			q--;
		return (size_t)(q - s);
	}
}

int
sa_ip_private(const char *ip)
{
	unsigned a, b;
	char	 lc[8];
	size_t	 i;

	if (ip4_len(ip, ip + strlen(ip)) > 0) {
		a = (unsigned)atoi(ip);
		b = (unsigned)atoi(strchr(ip, '.') + 1);
		return a == 10 || a == 127 || (a == 169 && b == 254) ||
		    (a == 172 && b >= 16 && b <= 31) ||
		    (a == 192 && b == 168) || (a == 100 && b >= 64 && b <= 127);
	}
	if (ascii_strncasecmp(ip, "IPv6:", 5) == 0)
		ip += 5;
	if (strcmp(ip, "::1") == 0)
		return 1;
	for (i = 0; i < sizeof(lc) - 1 && ip[i] != '\0'; i++)
		lc[i] = (char)ascii_lower((unsigned char)ip[i]);
	lc[i] = '\0';
	/* fe80::/10 link local, fc00::/7 unique local, ::ffff:private */
	if (lc[0] == 'f' && (lc[1] == 'c' || lc[1] == 'd') && is_hex(lc[2]))
		return strchr(ip, ':') != NULL;
	if (strncmp(lc, "fe8", 3) == 0 || strncmp(lc, "fe9", 3) == 0 ||
	    strncmp(lc, "fea", 3) == 0 || strncmp(lc, "feb", 3) == 0)
		return strchr(ip, ':') != NULL;
	return 0;
}

static int
is_localhost(const char *s, const char *e)
{
	size_t n = (size_t)(e - s);

	return (n == 9 && ascii_strncasecmp(s, "localhost", 9) == 0) ||
	    (n == 21 &&
		ascii_strncasecmp(s, "localhost.localdomain", 21) == 0) ||
	    (n == 9 && memcmp(s, "127.0.0.1", 9) == 0) ||
	    (n == 3 && memcmp(s, "::1", 3) == 0);
}

/* ----------------------------------------------------- normalisation */

static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
static const char *const days[] = { "Mon", "Tue", "Wed", "Thu", "Fri", "Sat",
	"Sun" };

static int
all_digits(const char *s, const char *e)
{
	if (s == e)
		return 0;
	for (; s < e; s++)
		if (!is_digit(*s))
			return 0;
	return 1;
}

/*
 * Drop a trailing "[; ]+[Day, ]D Mon YYYY HH:MM[:SS] ZONE" (the zone one
 * token: "-0500 (EST)" stays, as in SpamAssassin).
 */
static size_t
strip_date(const char *b, size_t n)
{
	const char *e = b + n, *t[6];
	const char *p = e;
	int	    k, i, ok = 0;

	/* the last five tokens, backwards: zone, time, year, mon, day */
	for (k = 0; k < 5; k++) {
		const char *te = p;

		while (p > b && p[-1] != ' ')
			p--;
		if (p == te)
			return n;
		t[k] = p;
		if (p == b)
			return n;
		p--; /* the space */
		t[k + 1] = p;
	}
	/* t[1] time: \d+:\d+(:\d+)? */
	{
		const char *s = t[1], *te = t[0] - 1, *c1, *c2;

		c1 = memchr(s, ':', (size_t)(te - s));
		if (c1 == NULL || !all_digits(s, c1))
			return n;
		c2 = memchr(c1 + 1, ':', (size_t)(te - c1 - 1));
		if (c2 == NULL
			? !all_digits(c1 + 1, te)
			: !all_digits(c1 + 1, c2) || !all_digits(c2 + 1, te))
			return n;
	}
	if (!all_digits(t[2], t[1] - 1))
		return n;
	for (i = 0; i < 12; i++)
		if (t[2] - 1 - t[3] == 3 && memcmp(t[3], months[i], 3) == 0)
			ok = 1;
	if (!ok || !all_digits(t[4], t[3] - 1))
		return n;
	p = t[4];
	/* optional "Day, " */
	if (p - b >= 6 && p[-1] == ' ' && p[-2] == ',') {
		for (i = 0; i < 7; i++)
			if (memcmp(p - 5, days[i], 3) == 0) {
				p -= 5;
				break;
			}
	}
	if (p == b || (p[-1] != ' ' && p[-1] != ';'))
		return n;
	while (p > b && (p[-1] == ' ' || p[-1] == ';'))
		p--;
	return (size_t)(p - b);
}

/* whitespace runs to one space, trimmed, trailing " ;" runs dropped */
static size_t
normalise(const char *v, size_t len, char *b, size_t cap)
{
	size_t i, n = 0;
	int    sp = 0;

	for (i = 0; i < len && n + 1 < cap; i++) {
		unsigned char c = (unsigned char)v[i];

		if (is_sp(c)) {
			sp = 1;
			continue;
		}
		if (sp && n > 0)
			b[n++] = ' ';
		sp = 0;
		if (n + 1 < cap)
			b[n++] = c == '\0' ? ' ' : (char)c;
	}
	for (;;) {
		if (n > 0 && b[n - 1] == ';') {
			n--;
			if (n > 0 && b[n - 1] == ' ')
				n--;
		} else
			break;
	}
	b[n] = '\0';
	return n;
}

/* ----------------------------------------------------------- groups */

#define NGROUPS 6

struct grp {
	const char *s, *e; /* inside the delimiters */
	char	    open;  /* '(' or '[' */
};

struct shape {
	const char *w1, *w1e; /* first token (may be empty) */
	struct grp  g[NGROUPS];
	size_t	    ng;
	const char *after; /* after the last group */
	const char *by;	   /* " by " after the groups, or NULL */
	const char *byh, *byhe;
	const char *tail; /* after the by host */
};

/* a balanced group at p ('(' nests, '[' up to ']'); end or NULL */
static const char *
group_end(const char *p, const char *e)
{
	int depth = 0;

	if (*p == '[') {
		const char *q = memchr(p, ']', (size_t)(e - p));

		return q != NULL ? q + 1 : NULL;
	}
	for (; p < e; p++) {
		if (*p == '(')
			depth++;
		else if (*p == ')' && --depth == 0)
			return p + 1;
	}
	return NULL;
}

static void
read_shape(const char *s, const char *e, struct shape *sh)
{
	const char *p = s, *q;

	memset(sh, 0, sizeof(*sh));
	sh->w1 = s;
	if (p < e && *p != '(')
		p = tok_end(p, e);
	sh->w1e = p;
	while (sh->ng < NGROUPS && p < e) {
		const char *o = p;

		/* a group right at the start (no first word), or after a
		   space */
		if (p == s && *p == '(')
			o = p;
		else if (*p == ' ' && p + 1 < e && (p[1] == '(' || p[1] == '['))
			o = p + 1;
		else
			break;
		q = group_end(o, e);
		if (q == NULL)
			break;
		sh->g[sh->ng].open = *o;
		sh->g[sh->ng].s = o + 1;
		sh->g[sh->ng].e = q - 1;
		sh->ng++;
		p = q;
	}
	sh->after = p;
	if (prefix(p, e, " by "))
		sh->by = p;
	else
		sh->by = memstr(p, (size_t)(e - p), " by ");
	if (sh->by != NULL) {
		sh->byh = sh->by + 4;
		sh->byhe = tok_end(sh->byh, e);
		sh->tail = sh->byhe;
	}
}

/* the content of a '(' group */
enum gkind {
	G_OTHER,
	G_RDNS_IP,   /* "R [ip]..." */
	G_RDNS_IPNS, /* "R[ip]" */
	G_BRIP,	     /* "[ip]..." */
	G_BAREIP,    /* "ip", "ident@ip", "ident@[ip]" */
	G_HELO,	     /* "HELO x" / "EHLO x" */
};

struct ginfo {
	enum gkind  k;
	const char *r, *re;	/* R, or the HELO text */
	const char *ip, *ipe;	/* the address */
	const char *id, *ide;	/* ident before '@' */
	const char *rest, *end; /* after the address's ']' */
	int	    brackets;
};

static void
read_group(const struct grp *g, struct ginfo *gi)
{
	const char *s = g->s, *e = g->e, *p, *at;
	size_t	    n;

	memset(gi, 0, sizeof(*gi));
	gi->k = G_OTHER;
	gi->end = e;
	if (g->open != '(')
		return;
	if (prefix(s, e, "HELO ") || prefix(s, e, "EHLO ")) {
		gi->k = G_HELO;
		gi->r = s + 5;
		gi->re = e;
		return;
	}
	if (s < e && *s == '[') {
		if ((n = ip_len(s + 1, e)) > 0) {
			p = s + 1 + n;
			/* "[ip.port]" / "[ip:port]" */
			if (p < e && (*p == '.' || *p == ':') && p + 1 < e &&
			    is_digit(p[1])) {
				const char *q = p + 1;

				while (q < e && is_digit(*q))
					q++;
				if (q < e && *q == ']')
					p = q;
			}
			if (p < e && *p == ']') {
				gi->k = G_BRIP;
				gi->ip = s + 1;
				gi->ipe = s + 1 + n;
				gi->rest = p + 1;
				gi->brackets = 1;
			}
		}
		return;
	}
	/* "ident@ip" / "ident@[ip]" / "ip" */
	at = memchr(s, '@', (size_t)(e - s));
	p = s;
	if (at != NULL && memchr(s, ' ', (size_t)(at - s)) == NULL)
		p = at + 1;
	if (p < e) {
		int br = *p == '[';

		if ((n = ip_len(p + br, e)) > 0 &&
		    (br ? (p + br + n < e && p[br + n] == ']' &&
			      p + br + n + 1 == e)
			: p + n == e)) {
			gi->k = G_BAREIP;
			gi->ip = p + br;
			gi->ipe = p + br + n;
			gi->brackets = br;
			if (p != s) {
				gi->id = s;
				gi->ide = p - 1;
			}
			gi->rest = e;
			return;
		}
	}
	/* "R [ip]..." or "R[ip]..." */
	p = s;
	while (p < e && *p != ' ' && *p != '[')
		p++;
	if (p == s || p >= e)
		return;
	{
		const char *b = *p == ' ' ? p + 1 : p;

		if (b < e && *b == '[' && (n = ip_len(b + 1, e)) > 0 &&
		    b + 1 + n < e && b[1 + n] == ']') {
			gi->k = *p == ' ' ? G_RDNS_IP : G_RDNS_IPNS;
			gi->r = s;
			gi->re = p;
			gi->ip = b + 1;
			gi->ipe = b + 1 + n;
			gi->rest = b + 2 + n;
			gi->brackets = 1;
		}
	}
}

/* "helo=x" / "ident=x" inside a group */
static int
sub_value(const char *s, const char *e, const char *key, char *out, size_t cap)
{
	const char *p = memstr(s, (size_t)(e - s), key);
	const char *q;

	if (p == NULL)
		return 0;
	p += strlen(key);
	q = p;
	while (q < e && *q != ' ')
		q++;
	setf(out, cap, p, (size_t)(q - p));
	return 1;
}

/* --------------------------------------------------------- the parse */

struct pstate {
	struct sa_relay *r;
	const char	*ip, *ipe;
	int		 looked;
};

static void
set_ip(struct pstate *st, const char *s, const char *e)
{
	st->ip = s;
	st->ipe = e;
}

static void
rdns_from(struct sa_relay *r, const char *s, const char *e)
{
	/* "IDENT:x@host" / "x@host": the ident is not the name */
	const char *at = memchr(s, '@', (size_t)(e - s));

	if (at != NULL) {
		const char *id = s;

		if (prefix(s, at, "IDENT:"))
			id += 6;
		setf(r->ident, sizeof(r->ident), id, (size_t)(at - id));
		s = at + 1;
	}
	setf(r->rdns, sizeof(r->rdns), s, (size_t)(e - s));
}

static int
with_proto_auth(const char *b, const char *e, char *out, size_t cap)
{
	static const char *const protos[] = { "ESMTPA", "ESMTPSA", "LMTPA",
		"LMTPSA", "UTF8SMTPA", "UTF8SMTPSA", "UTF8LMTPA", "UTF8LMTPSA",
		"ASMTP", "HTTP", "HTTPS", "HTTPU" };
	const char		*p = b;
	size_t			 i;

	while ((p = memcasestr(p, (size_t)(e - p), " with ")) != NULL) {
		const char *w = p + 6, *we = w;

		while (we < e && *we != ' ' && *we != ';')
			we++;
		for (i = 0; i < nitems(protos); i++)
			if ((size_t)(we - w) == strlen(protos[i]) &&
			    ascii_strncasecmp(w, protos[i], (size_t)(we - w)) ==
				0) {
				setf(out, cap, w, (size_t)(we - w));
				return 1;
			}
		p = w;
	}
	return 0;
}

static void
find_auth(const char *b, const char *e, struct sa_relay *r)
{
	const char *p;

	if (memstr(b, (size_t)(e - b), " by ") == NULL)
		return;
	if (with_proto_auth(b, e, r->auth, sizeof(r->auth)))
		return;
	if ((p = memstr(b, (size_t)(e - b), " (AUTH: ")) != NULL && p > b &&
	    (p[-1] == ')' || p[-1] == ']')) {
		static const char *const m[] = { "LOGIN", "PLAIN", "DIGEST-MD5",
			"CRAM-MD5" };
		size_t			 i;

		for (i = 0; i < nitems(m); i++)
			if (prefix(p + 8, e, m[i]) &&
			    p[8 + strlen(m[i])] == ' ') {
				strfmt(r->auth, sizeof(r->auth), "%s", m[i]);
				return;
			}
	}
	if ((p = memstr(b, (size_t)(e - b), "authenticated")) != NULL) {
		const char *by = memstr(p, (size_t)(e - p), " by ");
		const char *br = memstr(b, (size_t)(p - b), "])");
		const char *br2 = memstr(b, (size_t)(p - b), ")]");
		const char *op = memchr(b, '(', (size_t)(p - b));

		if (by != NULL && op != NULL && (br != NULL || br2 != NULL) &&
		    memchr(p, ')', (size_t)(by - p)) != NULL) {
			strfmt(r->auth, sizeof(r->auth), "Sendmail");
			return;
		}
	}
	if ((p = memstr(b, (size_t)(e - b), ") (Authenticated sender: ")) !=
	    NULL) {
		const char *q = memstr(p, (size_t)(e - p), ") by ");

		if (q != NULL) {
			const char *h = tok_end(q + 5, e), *c;

			if (prefix(h, e, " (") &&
			    (c = memchr(h + 2, ')', (size_t)(e - h - 2))) !=
				NULL &&
			    prefix(c, e, ") with ")) {
				if ((size_t)(c - h - 2) == 7 &&
				    memcmp(h + 2, "Postfix", 7) == 0)
					strfmt(r->auth, sizeof(r->auth),
					    "Postfix");
				else
					strfmt(r->auth, sizeof(r->auth),
					    "Postfix (%.*s)", (int)(c - h - 2),
					    h + 2);
				return;
			}
		}
	}
	if (memstr(b, (size_t)(e - b), "CommuniGate Pro ") != NULL &&
	    memstr(b, (size_t)(e - b), " (account ") != NULL) {
		strfmt(r->auth, sizeof(r->auth), "Communigate");
		return;
	}
	if (memstr(b, (size_t)(e - b),
		" with Microsoft Exchange Server HTTP-DAV") != NULL) {
		strfmt(r->auth, sizeof(r->auth), "HTTP-DAV");
		return;
	}
	if ((p = memcasestr(b, (size_t)(e - b), " (via HTTP")) != NULL) {
		const char *q = p + 10;

		if (q < e && *q != ')')
			q++;
		if (q < e && *q == ')' &&
		    (q + 1 == e || q[1] == ' ' || q[1] == ';'))
			setf(r->auth, sizeof(r->auth), p + 6,
			    (size_t)(q - p - 6));
	}
}

static const char helo_chars[] = "-ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqr"
				 "stuvwxyz0123456789.^+_&:=?!@%*$\\/";

static void
find_helo(const char *b, const char *e, struct sa_relay *r)
{
	const char *p = b;
	size_t	    n;

	while ((p = memstr(p, (size_t)(e - p), "helo=")) != NULL) {
		if (p == b || !is_word(p[-1])) {
			const char *q = p + 5;

			while (q < e && strchr(helo_chars, *q) != NULL)
				q++;
			if (q > p + 5) {
				setf(r->helo, sizeof(r->helo), p + 5,
				    (size_t)(q - p - 5));
				return;
			}
		}
		p += 5;
	}
	for (p = b; p + 5 < e; p++) {
		if ((p == b || !is_word(p[-1])) &&
		    (prefix(p, e, "HELO ") || prefix(p, e, "EHLO "))) {
			const char *q = p + 5;

			while (q < e && strchr(helo_chars, *q) != NULL)
				q++;
			if ((n = (size_t)(q - p - 5)) > 0) {
				setf(r->helo, sizeof(r->helo), p + 5, n);
				return;
			}
		}
	}
}

static void
find_envfrom(const char *b, const char *e, struct sa_relay *r)
{
	static const char *const keys[] = { "return-path: ", "return-path ",
		"envelope-sender ", "envelope-sender=", "envelope-from ",
		"envelope-from=" };
	const char		*best = NULL, *p;
	size_t			 i, klen = 0;

	for (i = 0; i < nitems(keys); i++)
		if ((p = memcasestr(b, (size_t)(e - b), keys[i])) != NULL &&
		    (best == NULL || p < best)) {
			best = p;
			klen = strlen(keys[i]);
		}
	if (best == NULL)
		return;
	p = best + klen;
	{
		const char *q = tok_end(p, e), *s = p;

		/* (\S+)\b: up to the last word character */
		while (q > p && !is_word(q[-1]))
			q--;
		if (q == p)
			return;
		while (s < q && (*s == '<' || *s == ' '))
			s++;
		setf(r->envfrom, sizeof(r->envfrom), s, (size_t)(q - s));
	}
}

/* Skip rules: local handovers SpamAssassin ignores. 1 = skip. */
static int
local_handover(const struct shape *sh, const char *s, const char *e)
{
	const char *w1e = sh->w1e;

	if (sh->ng > 0 && sh->g[0].open == '(') {
		const char *gs = sh->g[0].s, *ge = sh->g[0].e;
		const char *at = memchr(gs, '@', (size_t)(ge - gs));

		/* "x (user@localhost) ...", "x (localhost) ..." */
		if (is_localhost(at ? at + 1 : gs, ge) &&
		    memchr(gs, ' ', (size_t)(ge - gs)) == NULL)
			return 1;
		/* "x (user@host [localhost]) " */
		if (at != NULL && ge - gs > 2 && ge[-1] == ']') {
			const char *ob = memchr(gs, '[', (size_t)(ge - gs));

			if (ob != NULL && is_localhost(ob + 1, ge - 1))
				return 1;
		}
		if (prefix(gs, ge, "unverified") && ge - gs == 10 &&
		    sh->by == sh->after)
			return 1;
	}
	if (is_localhost(sh->w1, w1e) && sh->ng > 0 && sh->g[0].open == '(') {
		const char *gs = sh->g[0].s, *ge = sh->g[0].e, *x = gs;

		while (x < ge && *x != ' ' && *x != '[' && *x != ')')
			x++;
		if (is_localhost(memchr(gs, '@', (size_t)(x - gs))
			    ? (const char *)memchr(gs, '@', (size_t)(x - gs)) +
				1
			    : gs,
			x))
			return 1;
	}
	if (memchr(sh->w1, '@', (size_t)(w1e - sh->w1)) != NULL &&
	    sh->by == w1e)
		return 1;
	if (prefix(s, e, "Unknown/Local ("))
		return 1;
	if (prefix(s, e, "(AUTH: "))
		return 1;
	if (memstr(s, (size_t)(e - s), "(LSMTP for") != NULL)
		return 1;
	if (tok_end(s, e) < e && prefix(tok_end(s, e), e, " by ")) {
		/* "x by y with|via|for|(" (x any token, "([])" too) */
		const char *t = tok_end(tok_end(s, e) + 4, e);

		if (prefix(t, e, " with ") || prefix(t, e, " via ") ||
		    prefix(t, e, " for ") || prefix(t, e, " ("))
			return 1;
	}
	if (sh->ng == 0 && w1e < e) {
		/* "x with|via|for y by", "x (unverified) by", "x y by z
		   with local-esmtp", "x id y" */
		const char *t = w1e + 1, *te = tok_end(t, e);

		if ((prefix(t, e, "with ") || prefix(t, e, "via ") ||
			prefix(t, e, "for ")) &&
		    te < e && prefix(tok_end(te + 1, e), e, " by"))
			return 1;
		if (prefix(t, e, "id ") && tok_end(t + 3, e) == e)
			return 1;
		if (prefix(te, e, " by ")) {
			const char *h = tok_end(te + 4, e);

			if (prefix(h, e, " with local-smtp ") ||
			    prefix(h, e, " with local-esmtp "))
				return 1;
		}
	}
	return 0;
}

/* the qmail shape's protocol: "with (.* )?(SMTP|QMQP)" not then " id " */
static int
qmail_proto(const char *t, const char *e)
{
	const char *w = memstr(t, (size_t)(e - t), " with ");
	const char *p;

	if (w == NULL)
		return 0;
	for (p = w + 6; p < e; p = tok_end(p, e) + 1) {
		if ((prefix(p, e, "SMTP") || prefix(p, e, "QMQP")) &&
		    !prefix(p + 4, e, " id "))
			return 1;
		if (tok_end(p, e) >= e)
			break;
	}
	return 0;
}

/* " with (Microsoft SMTP Server|mapi id) [(...) ]N.N.N.N( |$)" */
static int
ms_smtp_server(const char *s, const char *e)
{
	static const char *const keys[] = { " with Microsoft SMTP Server ",
		" with mapi id " };
	size_t			 i;

	for (i = 0; i < nitems(keys); i++) {
		const char *p = memstr(s, (size_t)(e - s), keys[i]);
		int	    k;

		if (p == NULL)
			continue;
		p += strlen(keys[i]);
		if (p < e && *p == '(') {
			const char *c = memchr(p, ')', (size_t)(e - p));

			if (c == NULL || c + 1 >= e || c[1] != ' ')
				continue;
			p = c + 2;
		}
		for (k = 0; k < 4; k++) {
			if (p >= e || !is_digit(*p))
				break;
			while (p < e && is_digit(*p))
				p++;
			if (k < 3) {
				if (p >= e || *p != '.')
					break;
				p++;
			}
		}
		if (k == 4 && (p == e || *p == ' '))
			return 1;
	}
	return 0;
}

static enum sa_rcvd_kind
parse_from(const char *s, const char *e, struct pstate *st)
{
	struct sa_relay *r = st->r;
	struct shape	 sh;
	struct ginfo	 g0, g1;
	const char	*w1 = s, *w1e;
	size_t		 n;

	read_shape(s, e, &sh);
	w1e = sh.w1e;
	memset(&g0, 0, sizeof(g0));
	memset(&g1, 0, sizeof(g1));
	if (sh.ng > 0)
		read_group(&sh.g[0], &g0);
	if (sh.ng > 1)
		read_group(&sh.g[1], &g1);
	find_envfrom(s, e, r);

	/* webmail: SquirrelMail / NaSMail */
	if (memstr(s, (size_t)(e - s), " (SquirrelMail authenticated user ") ||
	    memstr(s, (size_t)(e - s), " (NaSMail authenticated user ")) {
		const char *p;

		for (p = s; p < e; p++)
			if ((n = ip4_len(p, e)) > 0 &&
			    (p == s || !is_word(p[-1]))) {
				set_ip(st, p, p + n);
				return SA_RCVD_RELAY;
			}
	}
	if (memstr(s, (size_t)(e - s), " SMTPSVC")) {
		/* Microsoft SMTPSVC never records the rDNS */
		if (g0.k == G_BRIP && sh.by != NULL &&
		    prefix(sh.tail, e, " with Microsoft SMTPSVC")) {
			setf(r->helo, sizeof(r->helo), w1, (size_t)(w1e - w1));
			set_ip(st, g0.ip, g0.ipe);
			return SA_RCVD_RELAY;
		}
		if (prefix(s, e, "mail pickup service by "))
			return SA_RCVD_SKIP;
	} else if (ms_smtp_server(s, e)) {
		if (w1e > w1 &&
		    (g0.k == G_BRIP || (g0.k == G_BAREIP && g0.id == NULL))) {
			setf(r->helo, sizeof(r->helo), w1, (size_t)(w1e - w1));
			set_ip(st, g0.ip, g0.ipe);
			r->id[0] = '\0';
			return SA_RCVD_RELAY;
		}
	} else if (memstr(s, (size_t)(e - s), "Exim")) {
		const char *l = memstr(s, (size_t)(e - s), " with local");

		if (l != NULL && (l[11] == ' ' || l[11] == '-'))
			return SA_RCVD_SKIP;
		if (w1 < w1e && *w1 == '[' && sh.ng > 0 &&
		    sh.g[0].open == '(' && (n = ip_len(w1 + 1, w1e)) > 0 &&
		    w1[1 + n] == ']' && sh.by == sh.after) {
			set_ip(st, w1 + 1, w1 + 1 + n);
			sub_value(sh.g[0].s, sh.g[0].e, "helo=", r->helo,
			    sizeof(r->helo));
			sub_value(sh.g[0].s, sh.g[0].e, "ident=", r->ident,
			    sizeof(r->ident));
			return SA_RCVD_RELAY;
		}
		if (g0.k == G_BRIP && w1e > w1) {
			setf(r->rdns, sizeof(r->rdns), w1, (size_t)(w1e - w1));
			setf(r->helo, sizeof(r->helo), w1, (size_t)(w1e - w1));
			set_ip(st, g0.ip, g0.ipe);
			sub_value(
			    g0.rest, g0.end, "helo=", r->helo, sizeof(r->helo));
			sub_value(g0.rest, g0.end, "ident=", r->ident,
			    sizeof(r->ident));
			return SA_RCVD_RELAY;
		}
		if (sh.ng > 0 && sh.g[0].open == '[' && w1e > w1 &&
		    (n = ip_len(sh.g[0].s, sh.g[0].e)) > 0 &&
		    sh.g[0].s + n == sh.g[0].e) {
			setf(r->rdns, sizeof(r->rdns), w1, (size_t)(w1e - w1));
			setf(r->helo, sizeof(r->helo), w1, (size_t)(w1e - w1));
			set_ip(st, sh.g[0].s, sh.g[0].e);
			return SA_RCVD_RELAY;
		}
	} else if (memstr(s, (size_t)(e - s), " (Postfix) with")) {
		if ((g0.k == G_RDNS_IP || g0.k == G_RDNS_IPNS) &&
		    g0.rest == g0.end && sh.by == sh.after) {
			st->looked = 1;
			setf(r->helo, sizeof(r->helo), w1, (size_t)(w1e - w1));
			setf(r->rdns, sizeof(r->rdns), g0.r,
			    (size_t)(g0.re - g0.r));
			set_ip(st, g0.ip, g0.ipe);
			return SA_RCVD_RELAY;
		}
	} else if (memstr(s, (size_t)(e - s), " (Lotus Domino ")) {
		if (g0.k == G_BRIP && g0.rest == g0.end) {
			setf(r->helo, sizeof(r->helo), w1, (size_t)(w1e - w1));
			set_ip(st, g0.ip, g0.ipe);
			return SA_RCVD_RELAY;
		}
	}
	/* webmail faking a numeric HELO */
	if (memstr(s, (size_t)(e - s), " with HTTP") && g0.k == G_BRIP &&
	    (n = ip_len(w1, w1e)) > 0 && w1 + n == w1e) {
		set_ip(st, w1, w1e);
		return SA_RCVD_RELAY;
	}
	/* Sendmail and most others: "helo (rdns [ip] ...) by x (" */
	if (g0.k == G_RDNS_IP && w1e > w1 && sh.by != NULL &&
	    (prefix(sh.tail, e, " (") ||
		(prefix(sh.tail, e, " with ") &&
		    prefix(tok_end(sh.tail + 6, e), e, " ("))) &&
	    !(memstr(s, (size_t)(e - s), "(qmail-") &&
		memstr(sh.tail, (size_t)(e - sh.tail), ") with "))) {
		st->looked = 1;
		setf(r->helo, sizeof(r->helo), w1, (size_t)(w1e - w1));
		rdns_from(r, g0.r, g0.re);
		set_ip(st, g0.ip, g0.ipe);
		return SA_RCVD_RELAY;
	}
	/* Exim without its name: "rdns ([ip] helo=x) by y with" */
	if (g0.k == G_BRIP && w1e > w1 && prefix(g0.rest, g0.end, " helo=") &&
	    memchr(g0.rest + 1, ' ', (size_t)(g0.end - g0.rest - 1)) == NULL &&
	    sh.by == sh.after && prefix(sh.tail, e, " with ")) {
		setf(r->rdns, sizeof(r->rdns), w1, (size_t)(w1e - w1));
		setf(r->helo, sizeof(r->helo), g0.rest + 6,
		    (size_t)(g0.end - g0.rest - 6));
		set_ip(st, g0.ip, g0.ipe);
		return SA_RCVD_RELAY;
	}
	if (g0.k == G_RDNS_IPNS && w1e > w1 && sh.by == sh.after &&
	    g0.rest == g0.end) {
		/* "helo (<unknown.domain>[ip])", "helo (rdns[ip])" */
		setf(r->helo, sizeof(r->helo), w1, (size_t)(w1e - w1));
		set_ip(st, g0.ip, g0.ipe);
		if (*g0.r != '<') {
			st->looked = 1;
			setf(r->rdns, sizeof(r->rdns), g0.r,
			    (size_t)(g0.re - g0.r));
		}
		return SA_RCVD_RELAY;
	}
	/* "helo (ident@[ip]...) by x (" */
	if (g0.k == G_BAREIP && g0.brackets && g0.id != NULL && w1e > w1 &&
	    sh.by != NULL && prefix(sh.tail, e, " (")) {
		st->looked = 1;
		setf(r->helo, sizeof(r->helo), w1, (size_t)(w1e - w1));
		setf(r->ident, sizeof(r->ident), g0.id,
		    (size_t)(g0.ide - g0.id));
		set_ip(st, g0.ip, g0.ipe);
		return SA_RCVD_RELAY;
	}
	/* Hotmail's web front ends */
	if (sh.by != NULL && sh.byhe - sh.byh > 17 &&
	    memcmp(sh.byhe - 17, ".hotmail.msn.com", 16) == 0) {
		if ((n = ip_len(w1, w1e)) > 0 && w1 + n == w1e)
			set_ip(st, w1, w1e);
		return SA_RCVD_RELAY;
	}
	/* qpsmtpd / LMTP / GMX: "rdns (HELO h) (ip) by x" */
	if (g0.k == G_HELO && w1e > w1 && sh.ng >= 2 && sh.by == sh.after &&
	    memchr(g0.r, ' ', (size_t)(g0.re - g0.r)) == NULL &&
	    ((g1.k == G_BAREIP && !g1.brackets && g1.id == NULL &&
		 memstr(sh.tail, (size_t)(e - sh.tail), " (qpsmtpd/")) ||
		(sh.g[1].open == '[' && sh.ng == 2 &&
		    (n = ip_len(sh.g[1].s, sh.g[1].e)) > 0 &&
		    sh.g[1].s + n == sh.g[1].e))) {
		setf(r->rdns, sizeof(r->rdns), w1, (size_t)(w1e - w1));
		setf(r->helo, sizeof(r->helo), g0.r, (size_t)(g0.re - g0.r));
		if (g1.k == G_BAREIP)
			set_ip(st, g1.ip, g1.ipe);
		else
			set_ip(st, sh.g[1].s, sh.g[1].e);
		return SA_RCVD_RELAY;
	}
	/* qmail: "rdns|unknown [(HELO h)] ([ident@]ip) [(envelope-sender
	   <x>)] by x ... with [...] SMTP|QMQP" */
	{
		const struct ginfo *hg = NULL, *ig = NULL;
		struct ginfo	    g2;
		size_t		    k = 0;

		if (g0.k == G_HELO &&
		    memchr(g0.r, ' ', (size_t)(g0.re - g0.r)) == NULL) {
			hg = &g0;
			k = 1;
		}
		if (k < sh.ng) {
			const struct ginfo *c = k == 0 ? &g0 : &g1;

			if (c->k == G_BAREIP ||
			    (c->k == G_BRIP && c->rest == c->end))
				ig = c;
		}
		if (ig != NULL && w1e > w1 && sh.by != NULL) {
			k++;
			if (k < sh.ng && sh.ng == k + 1) {
				read_group(&sh.g[k], &g2);
				if (!prefix(sh.g[k].s, sh.g[k].e,
					"envelope-sender <"))
					ig = NULL;
				k++;
			}
			if (ig != NULL && sh.ng == k && sh.by == sh.after &&
			    qmail_proto(sh.tail, e)) {
				setf(r->rdns, sizeof(r->rdns), w1,
				    (size_t)(w1e - w1));
				if (hg != NULL)
					setf(r->helo, sizeof(r->helo), hg->r,
					    (size_t)(hg->re - hg->r));
				else
					setf(r->helo, sizeof(r->helo), w1,
					    (size_t)(w1e - w1));
				if (ig->id != NULL)
					setf(r->ident, sizeof(r->ident), ig->id,
					    (size_t)(ig->ide - ig->id));
				set_ip(st, ig->ip, ig->ipe);
				if (strcmp(r->rdns, "unknown") != 0)
					st->looked = 1;
				else
					r->rdns[0] = '\0';
				return SA_RCVD_RELAY;
			}
		}
	}
	/* "[ip] by x via HTTP", "[ip] by x ...", "([ip]) by x" */
	if (w1 < w1e && *w1 == '[' && sh.ng == 0 &&
	    (n = ip_len(w1 + 1, w1e)) > 0 && w1[1 + n] == ']' &&
	    w1 + n + 2 == w1e && sh.by == w1e && sh.tail < e) {
		set_ip(st, w1 + 1, w1 + 1 + n);
		return SA_RCVD_RELAY;
	}
	if (w1e == w1 && sh.ng >= 1 && sh.by != NULL) {
		if ((g0.k == G_BRIP && g0.rest == g0.end) ||
		    (g0.k == G_BAREIP && g0.id == NULL)) {
			if (sh.by == sh.after && sh.tail < e) {
				set_ip(st, g0.ip, g0.ipe);
				return SA_RCVD_RELAY;
			}
		}
		if (g0.k == G_RDNS_IP && g0.rest == g0.end &&
		    sh.by == sh.after && sh.tail < e) {
			/* "(helo [ip]) by x" */
			setf(r->helo, sizeof(r->helo), g0.r,
			    (size_t)(g0.re - g0.r));
			set_ip(st, g0.ip, g0.ipe);
			return SA_RCVD_RELAY;
		}
	}
	/* sendmail without a name: "helo ([ip]) by x (" */
	if (g0.k == G_BRIP && g0.rest == g0.end && w1e > w1 &&
	    sh.by == sh.after && prefix(sh.tail, e, " (")) {
		st->looked = 1;
		setf(r->helo, sizeof(r->helo), w1, (size_t)(w1e - w1));
		set_ip(st, g0.ip, g0.ipe);
		return SA_RCVD_RELAY;
	}
	/* "helo (rdns [ip]) ... by x" */
	if (g0.k == G_RDNS_IP && g0.rest == g0.end && w1e > w1 &&
	    sh.by != NULL) {
		if ((size_t)(g0.re - g0.r) != 10 ||
		    memcmp(g0.r, "softdnserr", 10) != 0) {
			st->looked = 1;
			setf(r->rdns, sizeof(r->rdns), g0.r,
			    (size_t)(g0.re - g0.r));
		}
		setf(r->helo, sizeof(r->helo), w1, (size_t)(w1e - w1));
		set_ip(st, g0.ip, g0.ipe);
		return SA_RCVD_RELAY;
	}
	/* "helo ([ip][.:port]) ... by x " */
	if (g0.k == G_BRIP && g0.rest == g0.end && w1e > w1 && sh.by != NULL &&
	    sh.tail < e) {
		st->looked = 1;
		setf(r->helo, sizeof(r->helo), w1, (size_t)(w1e - w1));
		set_ip(st, g0.ip, g0.ipe);
		return SA_RCVD_RELAY;
	}
	if (memstr(s, (size_t)(e - s), "with POP3") ||
	    memstr(s, (size_t)(e - s), "with IMAP"))
		return SA_RCVD_FETCHER;
	/* qmail-ish: "rdns (HELO h) ([ident@][ip]) ... by x " */
	if (g0.k == G_HELO && g1.k == G_BAREIP && w1e > w1 && sh.by != NULL &&
	    sh.tail < e && memchr(g0.r, ')', (size_t)(g0.re - g0.r)) == NULL) {
		st->looked = 1;
		setf(r->rdns, sizeof(r->rdns), w1, (size_t)(w1e - w1));
		setf(r->helo, sizeof(r->helo), g0.r, (size_t)(g0.re - g0.r));
		if (g1.id != NULL)
			setf(r->ident, sizeof(r->ident), g1.id,
			    (size_t)(g1.ide - g1.id));
		set_ip(st, g1.ip, g1.ipe);
		return SA_RCVD_RELAY;
	}
	if (g0.k == G_BAREIP && w1e > w1 && sh.by != NULL && sh.tail < e) {
		st->looked = 1;
		setf(r->rdns, sizeof(r->rdns), w1, (size_t)(w1e - w1));
		setf(r->helo, sizeof(r->helo), w1, (size_t)(w1e - w1));
		if (g0.id != NULL)
			setf(r->ident, sizeof(r->ident), g0.id,
			    (size_t)(g0.ide - g0.id));
		set_ip(st, g0.ip, g0.ipe);
		return SA_RCVD_RELAY;
	}
	/* "rdns (HELO h) ([ident@]ip with login) by x with" */
	if (g0.k == G_HELO && sh.ng == 2 && sh.g[1].open == '(' && w1e > w1 &&
	    sh.by == sh.after && prefix(sh.tail, e, " with ") &&
	    tok_end(g0.r, g0.re) == g0.re) {
		const char *gs = sh.g[1].s, *ge = sh.g[1].e, *ip = gs;
		const char *at = memchr(gs, '@', (size_t)(ge - gs));

		if (at != NULL && memchr(gs, ' ', (size_t)(at - gs)) == NULL)
			ip = at + 1;
		else
			at = NULL;
		if ((n = ip_len(ip, ge)) > 0) {
			st->looked = 1;
			setf(r->rdns, sizeof(r->rdns), w1, (size_t)(w1e - w1));
			setf(r->helo, sizeof(r->helo), g0.r,
			    (size_t)(g0.re - g0.r));
			if (at != NULL)
				setf(r->ident, sizeof(r->ident), gs,
				    (size_t)(at - gs));
			set_ip(st, ip, ip + n);
			return SA_RCVD_RELAY;
		}
	}
	/* "name(ip) by x" (smap, csmap) */
	{
		const char *op = memchr(w1, '(', (size_t)(w1e - w1));

		if (op != NULL && op > w1 && w1e[-1] == ')' &&
		    (n = ip_len(op + 1, w1e - 1)) > 0 &&
		    op + 1 + n == w1e - 1 && sh.by == w1e) {
			st->looked = 1;
			setf(r->rdns, sizeof(r->rdns), w1, (size_t)(op - w1));
			set_ip(st, op + 1, op + 1 + n);
			return SA_RCVD_RELAY;
		}
	}
	/* "[ip] ([account x ]HELO h) by x (" */
	if (w1 < w1e && *w1 == '[' && sh.ng >= 1 && sh.by == sh.after &&
	    (n = ip_len(w1 + 1, w1e)) > 0 && w1[1 + n] == ']') {
		const char *gs = sh.g[0].s, *ge = sh.g[0].e;
		const char *h = memstr(gs, (size_t)(ge - gs), "HELO ");

		if (h == NULL)
			h = memstr(gs, (size_t)(ge - gs), "EHLO ");
		if (h != NULL && tok_end(h + 5, ge) == ge) {
			setf(r->helo, sizeof(r->helo), h + 5,
			    (size_t)(ge - h - 5));
			set_ip(st, w1 + 1, w1 + 1 + n);
			return SA_RCVD_RELAY;
		}
		if (sh.g[0].open == '(' && sh.ng == 1) {
			/* "[ip] (helo=x ident=y) by" */
			set_ip(st, w1 + 1, w1 + 1 + n);
			sub_value(gs, ge, "helo=", r->helo, sizeof(r->helo));
			sub_value(gs, ge, "ident=", r->ident, sizeof(r->ident));
			return SA_RCVD_RELAY;
		}
	}
	/* "ip by x with", "ip (HELO h) by", "ip (text) by x with" */
	if ((n = ip_len(w1, w1e)) > 0 && w1 + n == w1e && sh.by == sh.after) {
		if (sh.ng == 0 && prefix(sh.tail, e, " with ")) {
			set_ip(st, w1, w1e);
			return SA_RCVD_RELAY;
		}
		if (g0.k == G_HELO) {
			setf(r->helo, sizeof(r->helo), g0.r,
			    (size_t)(g0.re - g0.r));
			set_ip(st, w1, w1e);
			return SA_RCVD_RELAY;
		}
		if (sh.ng == 1 && sh.g[0].open == '(' &&
		    ((*sh.g[0].s | 0x20) >= 'a' &&
			(*sh.g[0].s | 0x20) <= 'z') &&
		    prefix(sh.tail, e, " with ")) {
			set_ip(st, w1, w1e);
			return SA_RCVD_RELAY;
		}
	}
	/* "helo [ip] by x" */
	if (sh.ng == 1 && sh.g[0].open == '[' && w1e > w1 &&
	    sh.by == sh.after && (n = ip_len(sh.g[0].s, sh.g[0].e)) > 0 &&
	    sh.g[0].s + n == sh.g[0].e && sh.tail < e) {
		setf(r->helo, sizeof(r->helo), w1, (size_t)(w1e - w1));
		set_ip(st, sh.g[0].s, sh.g[0].e);
		return SA_RCVD_RELAY;
	}
	/* Yahoo authenticated SMTP: "helo (user@ip with login) by" */
	if (sh.ng >= 1 && sh.g[0].open == '(' && w1e > w1) {
		const char *gs = sh.g[0].s, *ge = sh.g[0].e;
		const char *at = memchr(gs, '@', (size_t)(ge - gs));

		if (at != NULL && (n = ip_len(at + 1, ge)) > 0 &&
		    prefix(at + 1 + n, ge, " with login") &&
		    sh.byhe - sh.byh > 10 &&
		    memcmp(sh.byhe - 10, ".yahoo.com", 10) == 0) {
			setf(r->helo, sizeof(r->helo), w1, (size_t)(w1e - w1));
			set_ip(st, at + 1, at + 1 + n);
			return SA_RCVD_RELAY;
		}
	}
	if (local_handover(&sh, s, e))
		return SA_RCVD_SKIP;
	if (r->helo[0] == '\0' && w1e > w1) {
		const char *p = w1e;

		/* ^(\S+)[^-A-Za-z0-9.] */
		if (w1e == e) {
			while (p > w1 &&
			    (is_word(p[-1]) || p[-1] == '-' || p[-1] == '.'))
				p--;
			if (p > w1)
				p--;
		}
		if (p > w1)
			setf(r->helo, sizeof(r->helo), w1, (size_t)(p - w1));
	}
	return SA_RCVD_UNPARSEABLE; /* the caller's fallback decides */
}

/* SpamAssassin's invalid-character flagging */
static void
flag_chars(char *s)
{
	for (; *s != '\0'; s++)
		if (is_sp((unsigned char)*s) || *s == '#' || *s == '[' ||
		    *s == ']' || *s == '(' || *s == ')' || *s == '<' ||
		    *s == '>' || *s == '|')
			*s = '!';
}

static void
finish(struct pstate *st)
{
	struct sa_relay *r = st->r;
	char		 ip[sizeof(r->ip)];
	size_t		 n;
	char		*p;

	setf(ip, sizeof(ip), st->ip ? st->ip : "",
	    st->ip ? (size_t)(st->ipe - st->ip) : 0);
	p = ip;
	if (ascii_strncasecmp(p, "IPv6:", 5) == 0)
		p += 5;
	if ((n = strcspn(p, "%")) < strlen(p))
		p[n] = '\0';
	if (ascii_strncasecmp(p, "::ffff:", 7) == 0 &&
	    ip4_len(p + 7, p + strlen(p)) == strlen(p + 7))
		p += 7;
	memmove(r->ip, p, strlen(p) + 1);
	n = strlen(r->rdns);
	while (n > 0 && r->rdns[n - 1] == '.')
		r->rdns[--n] = '\0';
	if (ascii_strcasecmp(r->rdns, "unknown") == 0 || r->rdns[0] == '[')
		r->rdns[0] = '\0';
	n = strlen(r->by);
	if (n > 0 && r->by[n - 1] == ';')
		r->by[n - 1] = '\0';
	flag_chars(r->ip);
	flag_chars(r->rdns);
	flag_chars(r->helo);
	flag_chars(r->by);
	flag_chars(r->ident);
	flag_chars(r->envfrom);
	r->no_reverse_dns = r->rdns[0] == '\0' && st->looked;
	r->ip_private = sa_ip_private(r->ip);
}

enum sa_rcvd_kind
sa_received_parse(const char *value, size_t len, struct sa_relay *r)
{
	char		  b[SA_RCVD_MAXLEN + 1];
	const char	 *e, *p, *s;
	size_t		  n;
	struct pstate	  st;
	enum sa_rcvd_kind k = SA_RCVD_UNPARSEABLE;

	memset(r, 0, sizeof(*r));
	memset(&st, 0, sizeof(st));
	st.r = r;
	n = normalise(value, len, b, sizeof(b));
	e = b + n;
	if (!(ascii_strncasecmp(b, "from ", 5) == 0 ||
		ascii_strncasecmp(b, "(from ", 6) == 0))
		return SA_RCVD_SKIP;
	if (memstr(b, n, "with local for") != NULL)
		return SA_RCVD_SKIP;
	/* "from x by y; date": no TCP hop described */
	if (ascii_strncasecmp(b, "from ", 5) == 0) {
		const char *w = b + 5, *we = tok_end(w, e);

		if (we + 4 <= e && ascii_strncasecmp(we, " by ", 4) == 0) {
			const char *h = we + 4, *he = h;

			while (he < e && *he != ' ' && *he != ';')
				he++;
			if (he > h &&
			    (prefix(he, e, ";") || prefix(he, e, " ;")) &&
			    !(*w == '[' && we[-1] == ']' &&
				strspn(w + 1, "0123456789.") ==
				    (size_t)(we - w - 2)))
				return SA_RCVD_SKIP;
		}
	}
	n = strip_date(b, n);
	b[n] = '\0';
	e = b + n;
	/* ")by " -> ") by " is only cosmetic for the by search below */
	for (p = b; (p = memstr(p, (size_t)(e - p), " id ")) != NULL; p += 4) {
		const char *q = p + 4, *qe;

		if (q < e && *q == '<')
			q++;
		qe = q;
		while (qe < e && *qe != ' ' && *qe != '<' && *qe != '>' &&
		    *qe != ';')
			qe++;
		if (qe - q >= 3) {
			setf(r->id, sizeof(r->id), q, (size_t)(qe - q));
			break;
		}
	}
	find_helo(b, e, r);
	if ((p = memstr(b, n, " by ")) != NULL ||
	    (p = memstr(b, n, ")by ")) != NULL) {
		p += 4;
		setf(r->by, sizeof(r->by), p, (size_t)(tok_end(p, e) - p));
	}
	find_auth(b, e, r);
	if (prefix(b, e, "from X-Originating-IP: ")) {
		/* the line sa_relays_build() makes of an originating-IP
		   header: an address, no by */
		s = b + 23;
		if ((n = ip_len(s, e)) > 0 && s + n == e) {
			set_ip(&st, s, e);
			r->by[0] = r->helo[0] = r->id[0] = '\0';
			finish(&st);
			return SA_RCVD_RELAY;
		}
	}
	if (prefix(b, e, "from ")) {
		s = b + 5;
		k = parse_from(s, e, &st);
		if (k == SA_RCVD_SKIP || k == SA_RCVD_FETCHER)
			return k;
	} else if (prefix(b, e, "(from ")) {
		/* "(from user@localhost) by x", sendmail -t and jqueuemail
		   submissions: no network hop */
		const char *c = memchr(b, ')', n);

		s = b + 6;
		if (c != NULL && prefix(c, e, ") by ") &&
		    memchr(s, ' ', (size_t)(c - s)) == NULL &&
		    memchr(s, '@', (size_t)(c - s)) != NULL &&
		    (memstr(s, (size_t)(c - s), "@localhost") != NULL ||
			memstr(c, (size_t)(e - c), "(jqueuemail)") != NULL))
			return SA_RCVD_SKIP;
	} else
		s = b;
	if (k == SA_RCVD_RELAY) {
		finish(&st);
		return SA_RCVD_RELAY;
	}
	/* fall-through: the first "[ip]" anywhere, and a by */
	for (p = s; p < e && st.ip == NULL; p++)
		if (*p == '[' && (n = ip_len(p + 1, e)) > 0 && p + 1 + n < e &&
		    p[1 + n] == ']')
			set_ip(&st, p + 1, p + 1 + n);
	if (st.ip != NULL && r->by[0] != '\0') {
		finish(&st);
		return SA_RCVD_RELAY;
	}
	memset(r, 0, sizeof(*r));
	return SA_RCVD_UNPARSEABLE;
}

size_t
sa_originating_line(const char *v, size_t len, char *buf, size_t cap)
{
	const char *p, *e = v + len;
	size_t	    n;

	for (p = v; p < e; p++) {
		if (p > v && (is_word(p[-1]) || (is_hex(*p) && p[-1] == ':')))
			continue;
		if ((n = ip_len(p, e)) > 0) {
			int w = snprintf(
			    buf, cap, "from X-Originating-IP: %.*s", (int)n, p);

			return w > 0 && (size_t)w < cap ? (size_t)w : 0;
		}
	}
	return 0;
}

/* -------------------------------------------------------- trust path */

static int
in_nets(const struct sa_trust *t, const char *ip)
{
	struct sockaddr_in  s4;
	struct sockaddr_in6 s6;
	size_t		    i;

	memset(&s4, 0, sizeof(s4));
	memset(&s6, 0, sizeof(s6));
	if (inet_pton(AF_INET, ip, &s4.sin_addr) == 1) {
		s4.sin_family = AF_INET;
		if ((ntohl(s4.sin_addr.s_addr) >> 24) == 127)
			return 1;
		for (i = 0; t != NULL && i < t->nnets; i++)
			if (cidr_match(&t->nets[i], (struct sockaddr *)&s4))
				return 1;
		return 0;
	}
	if (inet_pton(AF_INET6, ip, &s6.sin6_addr) == 1) {
		s6.sin6_family = AF_INET6;
		if (IN6_IS_ADDR_LOOPBACK(&s6.sin6_addr))
			return 1;
		for (i = 0; t != NULL && i < t->nnets; i++)
			if (cidr_match(&t->nets[i], (struct sockaddr *)&s6))
				return 1;
	}
	return 0;
}

void
sa_relays_build(struct sa_relays *rs, const struct sa_relay *session,
    int session_trusted, const char *const *fields, const size_t *lens,
    size_t nfields, const struct sa_trust *t)
{
	int    in_trusted = 1, in_internal = 1;
	size_t i;

	rs->n = rs->ntrusted = rs->ninternal = 0;
	rs->unparseable = 0;
	rs->untrusted_field = -1;
	rs->last_trusted_field = rs->last_internal_field = -1;
	if (session != NULL) {
		rs->r[0] = *session;
		rs->r[0].ip_private = sa_ip_private(session->ip);
		flag_chars(rs->r[0].rdns);
		flag_chars(rs->r[0].helo);
		flag_chars(rs->r[0].envfrom);
		if (!session_trusted)
			in_trusted = in_internal = 0;
		rs->r[0].trusted = rs->r[0].internal =
		    (unsigned char)in_trusted;
		rs->n = 1;
		rs->ntrusted = rs->ninternal = (size_t)in_trusted;
	}
	for (i = 0; i < nfields && rs->n < SA_RELAYS_MAX; i++) {
		struct sa_relay	 *r = &rs->r[rs->n];
		enum sa_rcvd_kind k;

		k = sa_received_parse(fields[i], lens[i], r);
		if (k != SA_RCVD_RELAY) {
			rs->last_trusted_field += in_trusted;
			rs->last_internal_field += in_internal;
		}
		if (k == SA_RCVD_FETCHER) {
			/* a fetch inside the trusted area restarts the
			   trail: what was before describes our side */
			if (in_trusted) {
				rs->n = rs->ntrusted = rs->ninternal = 0;
				rs->untrusted_field = -1;
			}
			continue;
		}
		if (k == SA_RCVD_UNPARSEABLE)
			rs->unparseable++;
		if (k != SA_RCVD_RELAY)
			continue;
		if (in_trusted) {
			if (t == NULL || !t->configured) {
				if (!r->ip_private && r->auth[0] == '\0')
					in_trusted = in_internal = 0;
			} else if (r->auth[0] == '\0' && !in_nets(t, r->ip))
				in_trusted = in_internal = 0;
		}
		r->trusted = (unsigned char)in_trusted;
		r->internal = (unsigned char)in_internal;
		rs->last_trusted_field += in_trusted;
		rs->last_internal_field += in_internal;
		if (in_trusted)
			rs->ntrusted++;
		else if (rs->untrusted_field < 0)
			rs->untrusted_field = (long)i;
		if (in_internal)
			rs->ninternal++;
		rs->n++;
	}
}

size_t
sa_relays_text(
    const struct sa_relays *rs, size_t from, size_t to, char *buf, size_t cap)
{
	size_t i, n = 0;

	if (cap == 0)
		return 0;
	buf[0] = '\0';
	for (i = from; i < to && i < rs->n; i++) {
		const struct sa_relay *r = &rs->r[i];
		int		       w;

		w = snprintf(buf + n, cap - n,
		    "%s[ ip=%s rdns=%s helo=%s by=%s ident=%s envfrom=%s "
		    "intl=%d id=%s auth=%s msa=%d ]",
		    n > 0 ? " " : "", r->ip, r->rdns, r->helo, r->by, r->ident,
		    r->envfrom, r->internal, r->id, r->auth, r->msa);
		if (w < 0 || (size_t)w >= cap - n) {
			buf[n] = '\0';
			break;
		}
		n += (size_t)w;
	}
	return n;
}
