/*
 * smtp_parse.c - strict, bounded parsing of SMTP command lines, paths and
 * ESMTP parameters.
 *
 * Implements: the command split of RFC 5321 §4.1.1 ("MAIL FROM:",
 * "RCPT TO:"); the Reverse-path / Forward-path grammar of §4.1.2 with
 * source routes (accepted and dropped, appendix C), Dot-string and
 * Quoted-string local parts, domains and the address literals of §4.1.3;
 * the size limits of §4.5.3.1; the SMTPUTF8 additions of RFC 6531 §3.3
 * (UTF-8 in atext, qtextSMTP, U-labels and esmtp-value); and the values of
 * SIZE (RFC 1870), BODY (RFC 6152, RFC 3030), RET, NOTIFY, ORCPT and
 * xtext (RFC 3461 §4).
 *
 * Boundedness: the path scanners stop at the RFC limits (local part 64,
 * domain 255, path 256 octets), so smtp_parse_path() looks at a few hundred
 * octets at most whatever the line length; the other functions are linear
 * in the caller's line, which the line reader has already bounded.
 *
 * Threading and ownership: pure functions with no allocation, no global
 * state (const tables only) and no locale-dependent calls (the ASCII
 * character classes below are our own), so they are safe from any thread.
 * Results live in caller-provided structs or point into the caller's line,
 * which must outlive them; smtp_parse_params() writes NULs into its buffer.
 */

#include <arpa/inet.h>
#include <netinet/in.h>

#include <stddef.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "escape.h"
#include "smtp_parse.h"

#define LABEL_MAX      63  /* RFC 1035 §2.3.4 */
#define ORCPT_ADDR_MAX 500 /* RFC 3461 §4.2, before xtext encoding */
#define XTEXT_LEN_MAX  ((size_t)INT_MAX)

static const char *const verb_names[SMTP_VERB_COUNT] = {
	[SMTP_VERB_UNKNOWN] = "UNKNOWN",
	[SMTP_VERB_HELO] = "HELO",
	[SMTP_VERB_EHLO] = "EHLO",
	[SMTP_VERB_MAIL] = "MAIL",
	[SMTP_VERB_RCPT] = "RCPT",
	[SMTP_VERB_DATA] = "DATA",
	[SMTP_VERB_BDAT] = "BDAT",
	[SMTP_VERB_RSET] = "RSET",
	[SMTP_VERB_NOOP] = "NOOP",
	[SMTP_VERB_QUIT] = "QUIT",
	[SMTP_VERB_HELP] = "HELP",
	[SMTP_VERB_VRFY] = "VRFY",
	[SMTP_VERB_EXPN] = "EXPN",
	[SMTP_VERB_ETRN] = "ETRN",
	[SMTP_VERB_STARTTLS] = "STARTTLS",
	[SMTP_VERB_AUTH] = "AUTH",
	[SMTP_VERB_XCLIENT] = "XCLIENT",
	[SMTP_VERB_XFORWARD] = "XFORWARD",
};

/* ASCII character classes; deliberately not <ctype.h> (locale). */

static int
is_alpha(unsigned char c)
{
	return ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'));
}

static int
is_digit(unsigned char c)
{
	return (c >= '0' && c <= '9');
}

static int
is_alnum(unsigned char c)
{
	return (is_alpha(c) || is_digit(c));
}

/* RFC 3461 §4: hexchar uses upper-case hex digits only. */
static int
is_hexup(unsigned char c)
{
	return (is_digit(c) || (c >= 'A' && c <= 'F'));
}

/* RFC 5322 §3.2.3 atext, ASCII part. */
static int
is_atext(unsigned char c)
{
	if (is_alnum(c))
		return (1);
	switch (c) {
	case '!':
	case '#':
	case '$':
	case '%':
	case '&':
	case '\'':
	case '*':
	case '+':
	case '-':
	case '/':
	case '=':
	case '?':
	case '^':
	case '_':
	case '`':
	case '{':
	case '|':
	case '}':
	case '~':
		return (1);
	}
	return (0);
}

/* What may appear in a domain name as we scan for its end. */
static int
is_domchar(unsigned char c)
{
	return (is_alnum(c) || c == '-' || c == '.' || c >= 0x80);
}

static unsigned char
to_lower(unsigned char c)
{
	return ((c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c);
}

/* Does s[0..len) equal word, ASCII case-insensitively? */
static int
casematch(const char *s, size_t len, const char *word)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (word[i] == '\0' ||
		    to_lower((unsigned char)s[i]) !=
			to_lower((unsigned char)word[i]))
			return (0);
	return (word[len] == '\0');
}

/*
 * If s starts with prefix (ASCII case-insensitively), return the prefix
 * length, else 0. Never reads past a NUL in s.
 */
static size_t
caseprefix(const char *s, const char *prefix)
{
	size_t i;

	for (i = 0; prefix[i] != '\0'; i++)
		if (to_lower((unsigned char)s[i]) !=
		    to_lower((unsigned char)prefix[i]))
			return (0);
	return (i);
}

/*
 * Length of the run of domain characters at s, at most SMTP_DOMAIN_MAX + 1
 * (enough for the caller to tell "too long").
 */
static size_t
domain_span(const char *s)
{
	size_t i;

	for (i = 0; i <= SMTP_DOMAIN_MAX && is_domchar((unsigned char)s[i]);
	     i++)
		;
	return (i);
}

/*
 * Check that s[0..len) is a Domain (RFC 5321 §4.1.2): sub-domains joined by
 * single dots, each 1-63 octets of letters, digits, hyphens and (RFC 6531
 * U-labels) well-formed UTF-8, neither starting nor ending with a hyphen.
 * No trailing dot. Sets *utf8 when non-ASCII is present.
 * Returns 0, SMTP_PARSE_ETOOLONG (over 255 octets) or SMTP_PARSE_EADDR.
 */
static int
check_domain(const char *s, size_t len, int *utf8)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t		     i = 0, label = 0, n;

	if (len == 0)
		return (SMTP_PARSE_EADDR);
	if (len > SMTP_DOMAIN_MAX)
		return (SMTP_PARSE_ETOOLONG);
	while (i < len) {
		if (u[i] == '.') {
			if (label == 0 || u[i - 1] == '-')
				return (SMTP_PARSE_EADDR);
			label = 0;
			i++;
			continue;
		}
		if (u[i] == '-') {
			if (label == 0)
				return (SMTP_PARSE_EADDR);
			n = 1;
		} else if (is_alnum(u[i]))
			n = 1;
		else if (u[i] >= 0x80) {
			if ((n = utf8_seq(u + i, len - i)) == 0)
				return (SMTP_PARSE_EADDR);
			*utf8 = 1;
		} else
			return (SMTP_PARSE_EADDR);
		label += n;
		i += n;
		if (label > LABEL_MAX)
			return (SMTP_PARSE_EADDR);
	}
	if (label == 0 || u[len - 1] == '-')
		return (SMTP_PARSE_EADDR);
	return (0);
}

/* IPv4-address-literal = Snum 3("." Snum), Snum = 1*3DIGIT <= 255. */
static int
check_ipv4(const char *s, size_t len)
{
	size_t	 i = 0, part, digits;
	unsigned v;

	for (part = 0; part < 4; part++) {
		if (part > 0) {
			if (i >= len || s[i] != '.')
				return (SMTP_PARSE_EADDR);
			i++;
		}
		v = 0;
		for (digits = 0;
		     i < len && digits < 3 && is_digit((unsigned char)s[i]);
		     digits++, i++)
			v = v * 10 + (unsigned)(s[i] - '0');
		if (digits == 0 || v > 255)
			return (SMTP_PARSE_EADDR);
	}
	return (i == len ? 0 : SMTP_PARSE_EADDR);
}

/*
 * The inside of an address literal (RFC 5321 §4.1.3), s[0..len), whose
 * octets the caller has already checked to be dcontent: an IPv4 dotted
 * quad, "IPv6:" and an address inet_pton() accepts, or a
 * General-address-literal: Standardized-tag (Ldh-str) ":" 1*dcontent.
 */
static int
check_literal(const char *s, size_t len)
{
	char		buf[INET6_ADDRSTRLEN];
	struct in6_addr a6;
	const char     *colon;
	size_t		taglen, i;

	if ((colon = memchr(s, ':', len)) == NULL)
		return (check_ipv4(s, len));
	taglen = (size_t)(colon - s);
	if (casematch(s, taglen, "IPv6")) {
		len -= taglen + 1;
		if (len == 0 || len >= sizeof(buf))
			return (SMTP_PARSE_EADDR);
		memcpy(buf, colon + 1, len);
		buf[len] = '\0';
		if (inet_pton(AF_INET6, buf, &a6) != 1)
			return (SMTP_PARSE_EADDR);
		return (0);
	}
	/* Ldh-str = *( ALPHA / DIGIT / "-" ) Let-dig */
	if (taglen == 0 || !is_alnum((unsigned char)s[taglen - 1]))
		return (SMTP_PARSE_EADDR);
	for (i = 0; i < taglen; i++)
		if (!is_alnum((unsigned char)s[i]) && s[i] != '-')
			return (SMTP_PARSE_EADDR);
	if (taglen + 1 == len)
		return (SMTP_PARSE_EADDR); /* 1*dcontent */
	return (0);
}

/*
 * Scan an address literal at s (s[0] == '['), through the closing ']',
 * into *lenp. Refuses octets outside dcontent (%d33-90 / %d94-126) and
 * literals longer than a domain may be.
 */
static int
scan_literal(const char *s, size_t *lenp)
{
	unsigned char c;
	size_t	      i;

	for (i = 1; s[i] != ']'; i++) {
		c = (unsigned char)s[i];
		if (c < 33 || c > 126 || c == '[' || c == '\\')
			return (SMTP_PARSE_EADDR);
		/* The ']' could at best be at i + 1: total i + 2 octets. */
		if (i + 2 > SMTP_DOMAIN_MAX)
			return (SMTP_PARSE_ETOOLONG);
	}
	*lenp = i + 1;
	return (check_literal(s + 1, i - 1));
}

/*
 * Scan a Local-part at s into *lenp (RFC 5321 §4.1.2, RFC 6531 §3.3):
 * a Dot-string (atext or UTF-8 atoms joined by single dots) or a
 * Quoted-string (qtextSMTP, UTF-8, quoted-pairSMTP; kept as written,
 * quotes included). The scan stops once the part exceeds 64 octets.
 */
static int
scan_localpart(const char *s, size_t *lenp, int *utf8)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t		     i, n;

	if (u[0] == '"') {
		for (i = 1;;) {
			/* The closing quote would make it i + 1 octets. */
			if (i + 1 > SMTP_LOCALPART_MAX)
				return (SMTP_PARSE_ETOOLONG);
			if (u[i] == '"')
				break;
			if (u[i] == '\\') {
				if (u[i + 1] < 32 || u[i + 1] > 126)
					return (SMTP_PARSE_EADDR);
				i += 2;
			} else if (u[i] >= 32 && u[i] <= 126)
				i++;
			else if (u[i] >= 0x80 &&
			    (n = utf8_seq(u + i, SIZE_MAX)) != 0) {
				*utf8 = 1;
				i += n;
			} else
				return (SMTP_PARSE_EADDR);
		}
		*lenp = i + 1;
		return (0);
	}

	for (i = 0;;) {
		if (is_atext(u[i]))
			i++;
		else if (u[i] == '.') {
			if (i == 0 || u[i - 1] == '.')
				return (SMTP_PARSE_EADDR);
			i++;
		} else if (u[i] >= 0x80) {
			if ((n = utf8_seq(u + i, SIZE_MAX)) == 0)
				return (SMTP_PARSE_EADDR);
			*utf8 = 1;
			i += n;
		} else
			break;
		if (i > SMTP_LOCALPART_MAX)
			return (SMTP_PARSE_ETOOLONG);
	}
	if (i == 0 || u[i - 1] == '.')
		return (SMTP_PARSE_EADDR);
	*lenp = i;
	return (0);
}

/*
 * Verb: the first word, up to a space or the end of the line. A known verb
 * glued to anything else ("MAILX", "NOOP\t") is no verb of ours.
 */
int
smtp_parse_command(const char *line, struct smtp_command *out)
{
	const char *p;
	size_t	    len, kwlen;
	int	    v;

	out->verb = SMTP_VERB_UNKNOWN;
	out->has_args = 0;
	for (len = 0; line[len] != '\0' && line[len] != ' '; len++)
		;
	for (v = 1; v < SMTP_VERB_COUNT; v++)
		if (casematch(line, len, verb_names[v])) {
			out->verb = (enum smtp_verb)v;
			break;
		}
	p = line + len;
	if (*p == ' ') {
		out->has_args = 1;
		while (*p == ' ')
			p++;
	}
	out->args = p;

	/*
	 * RFC 5321 §4.1.1.2/3: "MAIL FROM:" and "RCPT TO:" are one keyword,
	 * no space before the colon. On failure verb and args stay set so
	 * the caller can name the command in its 501 reply.
	 */
	if (out->verb == SMTP_VERB_MAIL || out->verb == SMTP_VERB_RCPT) {
		kwlen = caseprefix(
		    p, out->verb == SMTP_VERB_MAIL ? "FROM:" : "TO:");
		if (kwlen == 0)
			return (SMTP_PARSE_ESYNTAX);
		out->args = p + kwlen;
	}
	return (SMTP_PARSE_OK);
}

const char *
smtp_verb_name(enum smtp_verb verb)
{
	if ((unsigned)verb >= SMTP_VERB_COUNT || verb_names[verb] == NULL)
		return ("UNKNOWN");
	return (verb_names[verb]);
}

/*
 * Errors: SMTP_PARSE_ESYNTAX when the shape is wrong (no "<", more than one
 * leading space, text glued to ">"); SMTP_PARSE_EADDR when what is inside
 * the brackets is not a mailbox we accept; SMTP_PARSE_ETOOLONG when a part
 * or the whole path (from "<" to ">", source route included; a bare
 * address counts as if bracketed) is over its limit. On error out->mailbox
 * is "" and out->domain and out->rest are NULL. Non-ASCII in a dropped
 * source route still sets out->utf8: the client sent it, after all.
 */
int
smtp_parse_path(const char *arg, unsigned flags, struct smtp_path *out)
{
	const char *p, *start, *mb;
	size_t	    loclen, domlen, mblen, pathlen;
	int	    bare, r;

	out->mailbox[0] = '\0';
	out->domain = NULL;
	out->is_null = 0;
	out->utf8 = 0;
	out->rest = NULL;

	p = arg;
	if (*p == ' ')
		p++;
	start = p;
	if (*p == '<') {
		bare = 0;
		p++;
	} else if ((flags & SMTP_PATH_F_NOBRACKETS) && *p != '\0' && *p != ' ')
		bare = 1;
	else
		return (SMTP_PARSE_ESYNTAX);

	if (!bare && *p == '>') {
		if (!(flags & SMTP_PATH_F_NULL_OK))
			return (SMTP_PARSE_EADDR);
		out->is_null = 1;
		p++;
		goto rest;
	}

	/* RFC 5321 §4.1.1.3: "<Postmaster>", no domain, any case. */
	if (caseprefix(p, "postmaster") != 0 &&
	    (bare ? (p[10] == '\0' || p[10] == ' ') : p[10] == '>')) {
		if (!(flags & SMTP_PATH_F_POSTMASTER))
			return (SMTP_PARSE_EADDR);
		memcpy(out->mailbox, p, 10);
		out->mailbox[10] = '\0';
		p += bare ? 10 : 11;
		goto rest;
	}

	/* A-d-l = At-domain *( "," At-domain ) ":"; dropped (appendix C). */
	if (!bare && *p == '@') {
		for (;;) {
			p++;
			domlen = domain_span(p);
			if ((r = check_domain(p, domlen, &out->utf8)) != 0)
				return (r);
			p += domlen;
			if ((size_t)(p - start) > SMTP_PATH_MAX)
				return (SMTP_PARSE_ETOOLONG);
			if (*p == ':') {
				p++;
				break;
			}
			if (*p != ',' || p[1] != '@')
				return (SMTP_PARSE_EADDR);
			p++;
		}
	}

	mb = p;
	if ((r = scan_localpart(p, &loclen, &out->utf8)) != 0)
		return (r);
	p += loclen;
	if (*p != '@')
		return (SMTP_PARSE_EADDR);
	p++;
	if (*p == '[')
		r = scan_literal(p, &domlen);
	else {
		domlen = domain_span(p);
		r = check_domain(p, domlen, &out->utf8);
	}
	if (r != 0)
		return (r);
	p += domlen;
	mblen = (size_t)(p - mb);

	if (bare) {
		if (*p != '\0' && *p != ' ')
			return (SMTP_PARSE_EADDR);
		pathlen = (size_t)(p - start) + 2;
	} else {
		if (*p != '>')
			return (SMTP_PARSE_EADDR);
		p++;
		pathlen = (size_t)(p - start);
	}
	if (pathlen > SMTP_PATH_MAX)
		return (SMTP_PARSE_ETOOLONG);
	/* mblen <= pathlen - 2 < sizeof(out->mailbox) */
	memcpy(out->mailbox, mb, mblen);
	out->mailbox[mblen] = '\0';
	out->domain = out->mailbox + loclen + 1;

rest:
	if (*p == ' ') {
		while (*p == ' ')
			p++;
	} else if (*p != '\0') {
		out->mailbox[0] = '\0';
		out->domain = NULL;
		out->is_null = 0;
		return (SMTP_PARSE_ESYNTAX);
	}
	out->rest = p;
	return (SMTP_PARSE_OK);
}

/*
 * RFC 5321 §4.1.2 Mail-parameters / Rcpt-parameters, split on runs of
 * spaces. Refuses a key not matching esmtp-keyword, "KEY=" with an empty
 * value, value octets outside esmtp-value (controls, "=", DEL, malformed
 * UTF-8), a duplicate key, and more than max parameters. On error *n is 0
 * and buf may be partly tokenised.
 */
int
smtp_parse_params(char *buf, struct smtp_param *params, size_t max, size_t *n)
{
	unsigned char *p = (unsigned char *)buf;
	const char    *key, *value;
	size_t	       cnt = 0, i, len, keylen;

	*n = 0;
	for (;;) {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		key = (const char *)p;
		if (!is_alnum(*p))
			return (SMTP_PARSE_EPARAM);
		while (is_alnum(*p) || *p == '-')
			p++;
		value = NULL;
		if (*p == '=') {
			*p++ = '\0';
			value = (const char *)p;
			while (*p != '\0' && *p != ' ') {
				if (*p >= 33 && *p <= 126 && *p != '=')
					p++;
				else if (*p >= 0x80 &&
				    (len = utf8_seq(p, SIZE_MAX)) != 0)
					p += len;
				else
					return (SMTP_PARSE_EPARAM);
			}
			if ((const char *)p == value)
				return (SMTP_PARSE_EPARAM);
		}
		if (*p == ' ')
			*p++ = '\0';
		else if (*p != '\0')
			return (SMTP_PARSE_EPARAM);

		keylen = strlen(key);
		for (i = 0; i < cnt; i++)
			if (casematch(key, keylen, params[i].key))
				return (SMTP_PARSE_EPARAM);
		if (cnt >= max)
			return (SMTP_PARSE_ETOOMANY);
		params[cnt].key = key;
		params[cnt].value = value;
		cnt++;
	}
	*n = cnt;
	return (SMTP_PARSE_OK);
}

/* RFC 1870: size-value = 1*20DIGIT; it must also fit in 64 bits. */
int
smtp_param_size(const char *value, uint64_t *size)
{
	uint64_t v = 0;
	unsigned d;
	size_t	 i;

	if (value == NULL)
		return (-1);
	for (i = 0; value[i] != '\0'; i++) {
		if (i >= 20 || !is_digit((unsigned char)value[i]))
			return (-1);
		d = (unsigned)(value[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return (-1);
		v = v * 10 + d;
	}
	if (i == 0)
		return (-1);
	if (size != NULL)
		*size = v;
	return (0);
}

/* RFC 6152 §2 (7BIT, 8BITMIME), RFC 3030 §3 (BINARYMIME). */
int
smtp_param_body(const char *value)
{
	if (value == NULL)
		return (-1);
	if (casematch(value, strlen(value), "7BIT") ||
	    casematch(value, strlen(value), "8BITMIME") ||
	    casematch(value, strlen(value), "BINARYMIME"))
		return (0);
	return (-1);
}

/* RFC 3461 §4.3: ret-value = "FULL" / "HDRS". */
int
smtp_param_ret(const char *value)
{
	if (value == NULL)
		return (-1);
	if (casematch(value, strlen(value), "FULL") ||
	    casematch(value, strlen(value), "HDRS"))
		return (0);
	return (-1);
}

/*
 * RFC 3461 §4.1: "NEVER" alone, or a comma-separated list of SUCCESS,
 * FAILURE and DELAY, each at most once. Empty items are refused.
 */
int
smtp_param_notify(const char *value)
{
	static const char *const kw[] = { "SUCCESS", "FAILURE", "DELAY" };
	const char		*p, *e;
	unsigned		 seen = 0;
	size_t			 k;

	if (value == NULL)
		return (-1);
	if (casematch(value, strlen(value), "NEVER"))
		return (0);
	for (p = value;; p = e + 1) {
		for (e = p; *e != '\0' && *e != ','; e++)
			;
		for (k = 0; k < sizeof(kw) / sizeof(kw[0]); k++)
			if (casematch(p, (size_t)(e - p), kw[k]))
				break;
		if (k == sizeof(kw) / sizeof(kw[0]) || (seen & (1u << k)))
			return (-1);
		seen |= 1u << k;
		if (*e == '\0')
			return (0);
	}
}

/*
 * RFC 3461 §4.2: original-recipient-address = addr-type ";" xtext, with
 * addr-type an atom (ASCII atext) and a non-empty xtext of at most 500
 * octets once decoded.
 */
int
smtp_param_orcpt(const char *value)
{
	size_t i;

	if (value == NULL)
		return (-1);
	for (i = 0; is_atext((unsigned char)value[i]); i++)
		;
	if (i == 0 || value[i] != ';' || value[i + 1] == '\0')
		return (-1);
	return (smtp_valid_xtext(value + i + 1, ORCPT_ADDR_MAX));
}

/*
 * RFC 3461 §4: xtext = *( xchar / hexchar ), xchar = %d33-42 / %d44-60 /
 * %d62-126, hexchar = "+" 2(upper-case HEXDIG). maxlen bounds the decoded
 * length (RFC 3461 limits ENVID to 100 and the ORCPT address to 500
 * octets before encoding). The empty string is valid xtext.
 */
int
smtp_valid_xtext(const char *value, size_t maxlen)
{
	const unsigned char *u = (const unsigned char *)value;
	size_t		     i, dec;

	if (value == NULL)
		return (-1);
	for (i = 0, dec = 0; u[i] != '\0'; dec++) {
		if (dec >= maxlen)
			return (-1);
		if (u[i] == '+') {
			if (!is_hexup(u[i + 1]) || !is_hexup(u[i + 2]))
				return (-1);
			i += 3;
		} else if (u[i] >= 33 && u[i] <= 126 && u[i] != '=')
			i++;
		else
			return (-1);
	}
	return (0);
}

/*
 * RFC 5321 §4.1.1.1: Domain / address-literal. Leniency as Postfix: one
 * trailing dot after a domain. Literal and domain limits as in paths.
 */
int
smtp_valid_helo(const char *arg)
{
	size_t len;
	int    utf8 = 0;

	if (arg == NULL || arg[0] == '\0')
		return (-1);
	if (arg[0] == '[') {
		if (scan_literal(arg, &len) != 0 || arg[len] != '\0')
			return (-1);
		return (0);
	}
	len = domain_span(arg);
	if (arg[len] != '\0')
		return (-1);
	if (len > 1 && arg[len - 1] == '.')
		len--;
	return (check_domain(arg, len, &utf8) == 0 ? 0 : -1);
}

int
smtp_xtext_encode(const char *s, char *out, size_t outsz)
{
	static const char    hex[] = "0123456789ABCDEF";
	const unsigned char *u;
	size_t		     o = 0;

	if (outsz == 0)
		return (-1);
	for (u = (const unsigned char *)s; *u != '\0'; u++) {
		if (*u > 32 && *u < 127 && *u != '+' && *u != '=') {
			if (outsz - o < 2)
				goto toolong;
			out[o++] = (char)*u;
		} else {
			if (outsz - o < 4)
				goto toolong;
			out[o++] = '+';
			out[o++] = hex[*u >> 4];
			out[o++] = hex[*u & 0x0f];
		}
	}
	if (o > XTEXT_LEN_MAX)
		goto toolong;
	out[o] = '\0';
	return ((int)o);

toolong:
	out[0] = '\0';
	return (-1);
}
