/*
 * sasl.c - SASL mechanism names, base64 and claimed identities for the
 * AUTH relay; see sasl.h. References per mechanism: PLAIN RFC 4616 §2,
 * LOGIN draft-murchison-sasl-login §2, CRAM-MD5 RFC 2195 §2, DIGEST-MD5
 * RFC 2831 §2.1.2, SCRAM RFC 5802 §7, OAUTHBEARER RFC 7628 §3.1, XOAUTH2
 * (Google's "user=...^Aauth=..."), EXTERNAL RFC 4422 App. A, ANONYMOUS
 * RFC 4505.
 *
 * Pure code, any thread.
 */
#include <string.h>
#include <strings.h>

#include "sasl.h"

/* Largest decoded response looked into: the first one of an exchange. */
#define DECODED_MAX (SASL_LINE_MAX / 4 * 3)

int
sasl_mech_valid(const char *name, size_t len)
{
	size_t i;

	if (len == 0 || len > SASL_MECH_MAX)
		return 0;
	for (i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			(c >= '0' && c <= '9') || c == '-' || c == '_'))
			return 0;
	}
	return 1;
}

int
sasl_mech_in(const char *list, const char *mech, size_t len)
{
	const char *p = list, *e;

	while (*p != '\0') {
		while (*p == ' ')
			p++;
		for (e = p; *e != '\0' && *e != ' '; e++)
			;
		if ((size_t)(e - p) == len && len > 0 &&
		    strncasecmp(p, mech, len) == 0)
			return 1;
		p = e;
	}
	return 0;
}

int
sasl_mech_list(const char *in, char *out, size_t outsz)
{
	const char *p = in, *e;
	size_t	    pos = 0, len, i;
	int	    n = 0;

	if (outsz == 0)
		return 0;
	out[0] = '\0';
	while (*p != '\0') {
		while (*p == ' ')
			p++;
		for (e = p; *e != '\0' && *e != ' '; e++)
			;
		len = (size_t)(e - p);
		if (sasl_mech_valid(p, len) && !sasl_mech_in(out, p, len) &&
		    pos + (pos > 0) + len < outsz) {
			if (pos > 0)
				out[pos++] = ' ';
			for (i = 0; i < len; i++)
				out[pos++] = (p[i] >= 'a' && p[i] <= 'z')
				    ? (char)(p[i] - 'a' + 'A')
				    : p[i];
			out[pos] = '\0';
			n++;
		}
		p = e;
	}
	return n;
}

static int
b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

long
sasl_b64_decode(const char *in, size_t len, unsigned char *out, size_t outsz)
{
	size_t	 i, o = 0, pad = 0;
	unsigned acc;
	int	 v[4], k;

	if (len % 4 != 0)
		return -1;
	for (i = 0; i < len; i += 4) {
		for (k = 0; k < 4; k++) {
			unsigned char c = (unsigned char)in[i + k];

			if (c == '=' && i + 4 == len && k >= 2 &&
			    (k == 3 || in[i + 3] == '=')) {
				v[k] = 0;
				pad++;
			} else if ((v[k] = b64_value(c)) == -1)
				return -1;
		}
		acc = (unsigned)v[0] << 18 | (unsigned)v[1] << 12 |
		    (unsigned)v[2] << 6 | (unsigned)v[3];
		if (o + 3 - pad > outsz)
			return -1;
		out[o++] = (unsigned char)(acc >> 16);
		if (pad < 2)
			out[o++] = (unsigned char)(acc >> 8);
		if (pad < 1)
			out[o++] = (unsigned char)acc;
	}
	return (long)o;
}

void
sasl_id_init(struct sasl_id *sid, const char *mech, size_t len)
{
	size_t i;

	memset(sid, 0, sizeof(*sid));
	if (len > SASL_MECH_MAX)
		len = SASL_MECH_MAX;
	for (i = 0; i < len; i++)
		sid->mech[i] = (mech[i] >= 'a' && mech[i] <= 'z')
		    ? (char)(mech[i] - 'a' + 'A')
		    : mech[i];
	if (strcmp(sid->mech, "ANONYMOUS") == 0) {
		strcpy(sid->id, "anonymous");
		sid->have = 1;
	}
}

/* Take an identity: control characters become '?', length is bounded. */
static void
id_set(struct sasl_id *sid, const unsigned char *p, size_t len)
{
	size_t i;

	if (len == 0)
		return;
	if (len > sizeof(sid->id) - 1)
		len = sizeof(sid->id) - 1;
	for (i = 0; i < len; i++)
		sid->id[i] = (p[i] < 0x20 || p[i] == 0x7f) ? '?' : (char)p[i];
	sid->id[len] = '\0';
	sid->have = 1;
}

/* SCRAM saslname (RFC 5802 §5.1): "=2C" is ',' and "=3D" is '='. */
static void
id_set_saslname(struct sasl_id *sid, const unsigned char *p, size_t len)
{
	unsigned char buf[SASL_ID_MAX];
	size_t	      i, o = 0;

	for (i = 0; i < len && o < sizeof(buf); i++) {
		if (p[i] == '=' && i + 2 < len && p[i + 1] == '2' &&
		    (p[i + 2] == 'C' || p[i + 2] == 'c')) {
			buf[o++] = ',';
			i += 2;
		} else if (p[i] == '=' && i + 2 < len && p[i + 1] == '3' &&
		    (p[i + 2] == 'D' || p[i + 2] == 'd')) {
			buf[o++] = '=';
			i += 2;
		} else
			buf[o++] = p[i];
	}
	id_set(sid, buf, o);
}

/* Length of the field starting at p, up to the delimiter or the end. */
static size_t
field(const unsigned char *p, const unsigned char *end, unsigned char delim)
{
	const unsigned char *q = memchr(p, delim, (size_t)(end - p));

	return q != NULL ? (size_t)(q - p) : (size_t)(end - p);
}

/* GS2 header (RFC 5801 §4): cbind-flag "," [ "a=" authzid ] ",". */
static const unsigned char *
gs2_header(
    struct sasl_id *sid, const unsigned char *p, const unsigned char *end)
{
	size_t n = field(p, end, ',');

	if (p + n >= end)
		return NULL;
	p += n + 1;
	n = field(p, end, ',');
	if (p + n >= end)
		return NULL;
	if (n > 2 && p[0] == 'a' && p[1] == '=')
		id_set_saslname(sid, p + 2, n - 2);
	return p + n + 1;
}

/* DIGEST-MD5 digest-response: the value of key="..." (or key=token). */
static void
digest_value(
    struct sasl_id *sid, const unsigned char *d, size_t len, const char *key)
{
	unsigned char	     buf[SASL_ID_MAX];
	const unsigned char *p = d, *end = d + len;
	size_t		     klen = strlen(key), o;

	while (p < end) {
		while (p < end && (*p == ' ' || *p == ',' || *p == '\t'))
			p++;
		if ((size_t)(end - p) > klen &&
		    strncasecmp((const char *)p, key, klen) == 0 &&
		    p[klen] == '=') {
			p += klen + 1;
			o = 0;
			if (p < end && *p == '"') {
				for (p++; p < end && *p != '"'; p++) {
					if (*p == '\\' && p + 1 < end)
						p++;
					if (o < sizeof(buf))
						buf[o++] = *p;
				}
			} else
				for (; p < end && *p != ','; p++)
					if (o < sizeof(buf))
						buf[o++] = *p;
			id_set(sid, buf, o);
			return;
		}
		/* Skip this directive, quoted commas included. */
		while (p < end && *p != ',') {
			if (*p++ == '"')
				while (p < end && *p != '"') {
					if (*p == '\\' && p + 1 < end)
						p++;
					p++;
				}
			if (p < end && *p == '"')
				p++;
		}
	}
}

static void
id_from(struct sasl_id *sid, const unsigned char *d, size_t n)
{
	const unsigned char *end = d + n, *p, *q;
	const char	    *m = sid->mech;
	size_t		     len;

	if (strcmp(m, "PLAIN") == 0) {
		/* [authzid] NUL authcid NUL passwd */
		len = field(d, end, '\0');
		if (d + len >= end)
			return;
		p = d + len + 1;
		q = memchr(p, '\0', (size_t)(end - p));
		if (q == NULL)
			return;
		if (len > 0)
			id_set(sid, d, len);
		else
			id_set(sid, p, (size_t)(q - p));
	} else if (strcmp(m, "LOGIN") == 0 || strcmp(m, "EXTERNAL") == 0) {
		id_set(sid, d, n);
	} else if (strcmp(m, "CRAM-MD5") == 0) {
		/* user SP digest: the user may contain spaces */
		for (q = end; q > d && q[-1] != ' '; q--)
			;
		if (q > d)
			id_set(sid, d, (size_t)(q - 1 - d));
	} else if (strcmp(m, "DIGEST-MD5") == 0) {
		digest_value(sid, d, n, "authzid");
		if (!sid->have)
			digest_value(sid, d, n, "username");
	} else if (strncmp(m, "SCRAM-", 6) == 0) {
		if ((p = gs2_header(sid, d, end)) == NULL || sid->have)
			return;
		/* client-first-message-bare: "n=" saslname "," ... */
		if (end - p > 2 && p[0] == 'n' && p[1] == '=')
			id_set_saslname(sid, p + 2, field(p + 2, end, ','));
	} else if (strcmp(m, "OAUTHBEARER") == 0) {
		(void)gs2_header(sid, d, end);
	} else if (strcmp(m, "XOAUTH2") == 0) {
		if (n > 5 && memcmp(d, "user=", 5) == 0)
			id_set(sid, d + 5, field(d + 5, end, 0x01));
	}
}

void
sasl_id_feed(struct sasl_id *sid, const char *b64, size_t len)
{
	unsigned char d[DECODED_MAX];
	long	      n;

	if (len == 1 && b64[0] == '*')
		return;
	/* The identity is in the first response for every mechanism known
	 * here (DIGEST-MD5 and CRAM-MD5 have no initial response: theirs is
	 * the answer to the server's challenge). Strictly the first: LOGIN's
	 * second is the password, even when the first said nothing. */
	if (++sid->responses != 1 || sid->have)
		return;
	if (len == 1 && b64[0] == '=')
		len = 0; /* empty initial response */
	if ((n = sasl_b64_decode(b64, len, d, sizeof(d))) <= 0)
		return;
	id_from(sid, d, (size_t)n);
	explicit_bzero(d, (size_t)n);
}
