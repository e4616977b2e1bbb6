/*
 * from_field.c - the author domain of a From header field (RFC 5322
 * §3.6.2): a strict parser of the mailbox-list grammar (§3.4, with the
 * comments and folding of §3.2.2 and the obsolete phrase of §4.1) that
 * accepts exactly one mailbox with a host-name domain and refuses
 * everything else: no address, several (a list, two angle addresses), a
 * group, an address literal, obs-route, anything unparsable. DMARC needs
 * this refusal (a message whose author cannot be named must never pass:
 * the CVE-2019-16378 class), and DKIM signing picks its signer by it.
 *
 * Why not a library: GMime 3.2.13's address parser, the obvious one,
 * leaks memory on malformed input such as "Joe >joe@example.com>" (found
 * by tests/fuzz/fuzz_dmarc.c), and every remote sender chooses this field.
 *
 * A UTF-8 domain (RFC 6532) is turned into A-labels with libidn2.
 *
 * Pure; thread-safe; bounded (FROM_FIELD_MAX octets, FROM_TOKENS_MAX
 * tokens, comments nested FROM_COMMENT_MAX deep).
 */
#include <idn2.h>
#include <stdlib.h>
#include <string.h>

#include "from_field.h"

static int
ldh(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

/* A host name of two or more LDH labels (lower case), at most 253. */
static int
valid_domain(const char *d)
{
	size_t	    label = 0, labels = 1, len = strlen(d);
	const char *p;

	if (len == 0 || len > 253)
		return 0;
	for (p = d; *p != '\0'; p++) {
		if (*p == '.') {
			if (label == 0 || p[-1] == '-')
				return 0;
			label = 0;
			labels++;
			continue;
		}
		if (!ldh(*p) || (label == 0 && *p == '-') || ++label > 63)
			return 0;
	}
	return label > 0 && p[-1] != '-' && labels >= 2;
}

void
domain_lower(char *out, size_t outlen, const char *in)
{
	size_t i;

	for (i = 0; in[i] != '\0' && i + 1 < outlen; i++)
		out[i] =
		    (in[i] >= 'A' && in[i] <= 'Z') ? in[i] - 'A' + 'a' : in[i];
	out[i] = '\0';
	while (i > 0 && out[i - 1] == '.')
		out[--i] = '\0';
}

/*
 * The From field's tokens (RFC 5322 §3.2): CFWS (comments nest, §3.2.2)
 * is skipped between them, as the obsolete syntax (§4) allows.
 */
enum ftok { FT_ATOM, FT_QUOTED, FT_LITERAL, FT_SPECIAL };

struct ftoken {
	enum ftok   type;
	const char *p; /* atom: its text; special: the character */
	size_t	    len;
};

#define FROM_TOKENS_MAX	 128
#define FROM_COMMENT_MAX 32 /* nesting depth */

static int
atext(unsigned char c)
{
	/* RFC 5322 §3.2.3, and UTF-8 (RFC 6532 §3.2) */
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') ||
	    (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL) ||
	    c >= 0x80;
}

/* Skip CFWS; -1 for an unterminated or too deeply nested comment. */
static int
skip_cfws(const char **pp)
{
	const char *p = *pp;
	int	    depth = 0;

	for (; *p != '\0'; p++) {
		if (depth == 0 &&
		    (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
			continue;
		if (*p == '(') {
			if (++depth > FROM_COMMENT_MAX)
				return -1;
			continue;
		}
		if (depth == 0)
			break;
		if (*p == '\\' && p[1] != '\0')
			p++;
		else if (*p == ')')
			depth--;
	}
	*pp = p;
	return depth == 0 ? 0 : -1;
}

/* Split into tokens; the count, or -1 when it cannot be tokenised. */
static int
from_tokens(const char *p, struct ftoken *t, size_t max)
{
	size_t n = 0;
	char   close;

	for (;;) {
		if (skip_cfws(&p) == -1)
			return -1;
		if (*p == '\0')
			return (int)n;
		if (n == max)
			return -1;
		t[n].p = p;
		if (*p == '"' || *p == '[') {
			t[n].type = *p == '"' ? FT_QUOTED : FT_LITERAL;
			close = *p == '"' ? '"' : ']';
			for (p++; *p != close; p++) {
				if (*p == '\0' || (close == ']' && *p == '['))
					return -1;
				if (*p == '\\' && close == '"' && p[1] != '\0')
					p++;
			}
			p++;
		} else if (atext((unsigned char)*p)) {
			t[n].type = FT_ATOM;
			while (atext((unsigned char)*p))
				p++;
		} else if (strchr("<>@.,:;", *p) != NULL) {
			t[n].type = FT_SPECIAL;
			p++;
		} else
			return -1; /* a control, ')', '\\' or ']' out of place
				    */
		t[n].len = (size_t)(p - t[n].p);
		n++;
	}
}

static int
special(const struct ftoken *t, char c)
{
	return t->type == FT_SPECIAL && *t->p == c;
}

/*
 * addr-spec (§3.4.1) in t[0..n): local-part "@" domain, the domain a
 * dot-atom (a domain-literal names no domain). The domain is copied.
 */
static int
addr_spec(
    const struct ftoken *t, size_t n, char *dom, size_t len, const char **why)
{
	size_t i, at, o = 0;

	for (at = 0; at < n && !special(&t[at], '@'); at++)
		;
	if (at == n) {
		*why = "From address without a domain";
		return -1;
	}
	/* local-part: word *("." word), words atoms or quoted strings */
	for (i = 0; i < at; i++)
		if ((i % 2 == 0) !=
			(t[i].type == FT_ATOM || t[i].type == FT_QUOTED) ||
		    (i % 2 == 1 && !special(&t[i], '.')))
			break;
	if (at == 0 || i < at || at % 2 == 0) {
		*why = "From field cannot be parsed";
		return -1;
	}
	if (at + 1 < n && t[at + 1].type == FT_LITERAL) {
		*why = "From address with an address literal";
		return -1;
	}
	for (i = at + 1; i < n; i++) {
		int want_atom = (i - at) % 2 == 1;

		if (want_atom ? t[i].type != FT_ATOM : !special(&t[i], '.')) {
			*why = "From field cannot be parsed";
			return -1;
		}
		if (o + t[i].len + 1 > len) {
			*why = "From address domain too long";
			return -1;
		}
		memcpy(dom + o, t[i].p, t[i].len);
		o += t[i].len;
	}
	dom[o] = '\0';
	if (i == at + 1 || (n - at) % 2 == 1) { /* empty, or ends in '.' */
		*why = "From field cannot be parsed";
		return -1;
	}
	return 0;
}

/* A UTF-8 domain (RFC 6532) to its A-labels (IDNA2008). */
static int
to_ascii(char *dom, size_t len)
{
	char  *out = NULL;
	size_t i;

	for (i = 0; dom[i] != '\0'; i++)
		if ((unsigned char)dom[i] >= 0x80)
			break;
	if (dom[i] == '\0')
		return 0;
	if (idn2_to_ascii_8z(dom, &out, IDN2_NONTRANSITIONAL) != IDN2_OK ||
	    strlen(out) >= len) {
		free(out);
		return -1;
	}
	memcpy(dom, out, strlen(out) + 1);
	idn2_free(out);
	return 0;
}

int
from_field_domain(
    const char *field, size_t fieldlen, char *dom, size_t len, const char **why)
{
	struct ftoken t[FROM_TOKENS_MAX];
	char	      raw[FROM_DOMAIN_MAX], value[FROM_FIELD_MAX + 1];
	int	      n, i, lt = -1;

	dom[0] = '\0';
	if (fieldlen > FROM_FIELD_MAX) {
		*why = "From field too long";
		return -1;
	}
	memcpy(value, field, fieldlen);
	value[fieldlen] = '\0';
	if (strlen(value) != fieldlen) {
		*why = "From field cannot be parsed"; /* a NUL in it */
		return -1;
	}
	if ((n = from_tokens(value, t, FROM_TOKENS_MAX)) <= 0) {
		*why = n == 0 ? "From field without an address"
			      : "From field cannot be parsed";
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (special(&t[i], ',')) {
			*why = "From field with several addresses";
			return -1;
		}
		if (special(&t[i], ':') || special(&t[i], ';')) {
			*why = "From field is a group";
			return -1;
		}
		if (special(&t[i], '<')) {
			if (lt >= 0) {
				*why = "From field with several addresses";
				return -1;
			}
			lt = i;
		}
	}
	if (lt >= 0) {
		/* name-addr: [phrase] "<" addr-spec ">" (§3.4); the phrase
		 * may hold '.' (obs-phrase, §4.1), nothing else special */
		for (i = 0; i < lt; i++)
			if (t[i].type == FT_SPECIAL && !special(&t[i], '.'))
				break;
		if (i < lt || !special(&t[n - 1], '>')) {
			*why = "From field cannot be parsed";
			return -1;
		}
		if (addr_spec(t + lt + 1, (size_t)(n - lt - 2), raw,
			sizeof(raw), why) == -1)
			return -1;
	} else if (addr_spec(t, (size_t)n, raw, sizeof(raw), why) == -1)
		return -1;
	if (to_ascii(raw, sizeof(raw)) == -1) {
		*why = "From address domain is not a valid IDN";
		return -1;
	}
	domain_lower(dom, len, raw);
	if (!valid_domain(dom)) {
		*why = "From address domain is not a valid domain name";
		dom[0] = '\0';
		return -1;
	}
	return 0;
}
