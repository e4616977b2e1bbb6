/*
 * test_sasl.c - proxy/sasl.c (mechanism names, base64, the identity
 * claimed per mechanism) and proxy/authlimit.c (failures per client).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "authlimit.h"
#include "sasl.h"
#include "tap.h"

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Encode for the tests (moat itself never encodes). */
static void
b64(const char *in, size_t len, char *out)
{
	size_t	 i;
	unsigned v;

	for (i = 0; i + 2 < len; i += 3) {
		v = (unsigned char)in[i] << 16 | (unsigned char)in[i + 1] << 8 |
		    (unsigned char)in[i + 2];
		*out++ = b64chars[v >> 18];
		*out++ = b64chars[(v >> 12) & 63];
		*out++ = b64chars[(v >> 6) & 63];
		*out++ = b64chars[v & 63];
	}
	if (len - i == 1) {
		v = (unsigned char)in[i] << 16;
		*out++ = b64chars[v >> 18];
		*out++ = b64chars[(v >> 12) & 63];
		*out++ = '=';
		*out++ = '=';
	} else if (len - i == 2) {
		v = (unsigned char)in[i] << 16 | (unsigned char)in[i + 1] << 8;
		*out++ = b64chars[v >> 18];
		*out++ = b64chars[(v >> 12) & 63];
		*out++ = b64chars[(v >> 6) & 63];
		*out++ = '=';
	}
	*out = '\0';
}

/* Feed responses (raw, encoded here) and return the identity. */
static const char *
id_of(struct sasl_id *sid, const char *mech, int n, const char *const *raw,
    const size_t *lens)
{
	char enc[4096];
	int  i;

	sasl_id_init(sid, mech, strlen(mech));
	for (i = 0; i < n; i++) {
		if (lens[i] == (size_t)-1) { /* as it is: "*" or "=" */
			sasl_id_feed(sid, raw[i], strlen(raw[i]));
			continue;
		}
		b64(raw[i], lens[i], enc);
		sasl_id_feed(sid, enc, strlen(enc));
	}
	return sid->have ? sid->id : NULL;
}

#define ID1(mech, s)                                                           \
	id_of(&sid, mech, 1, (const char *const[]){ s },                       \
	    (const size_t[]){ sizeof(s) - 1 })

static void
test_mechs(void)
{
	char out[256];

	ok(sasl_mech_valid("PLAIN", 5), "PLAIN is a name");
	ok(sasl_mech_valid("SCRAM-SHA-256", 13), "SCRAM-SHA-256");
	ok(sasl_mech_valid("x_oauth2", 8), "lower case and _ accepted");
	ok(!sasl_mech_valid("", 0), "empty refused");
	ok(!sasl_mech_valid("PL@IN", 5), "@ refused");
	ok(!sasl_mech_valid("ABCDEFGHIJKLMNOPQRSTU", 21),
	    "21 characters refused");
	ok(sasl_mech_valid("ABCDEFGHIJKLMNOPQRST", 20),
	    "20 characters accepted");
	is_int(sasl_mech_list(
		   "plain LOGIN  bad/name PLAIN x-y\r", out, sizeof(out)),
	    2, "list: two valid, distinct");
	is_str(
	    out, "PLAIN LOGIN", "list: upper-cased, deduplicated, bad dropped");
	is_int(sasl_mech_list("PLAIN LOGIN CRAM-MD5", out, 12), 2,
	    "list: what fits");
	is_str(out, "PLAIN LOGIN", "list: cut at a word");
	ok(sasl_mech_in("PLAIN LOGIN", "login", 5), "in: case-insensitive");
	ok(!sasl_mech_in("PLAIN LOGIN", "LOG", 3), "in: whole words only");
	ok(!sasl_mech_in("", "PLAIN", 5), "in: empty list");
}

static void
test_b64(void)
{
	unsigned char out[16];

	is_int(sasl_b64_decode("", 0, out, sizeof(out)), 0, "b64: empty");
	is_int(sasl_b64_decode("YQ==", 4, out, sizeof(out)), 1, "b64: YQ==");
	ok(out[0] == 'a', "b64: a");
	is_int(sasl_b64_decode("YWI=", 4, out, sizeof(out)), 2, "b64: YWI=");
	is_int(sasl_b64_decode("YWJj", 4, out, sizeof(out)), 3, "b64: YWJj");
	is_int(sasl_b64_decode("YWJ", 3, out, sizeof(out)), -1,
	    "b64: length not a multiple of 4");
	is_int(sasl_b64_decode("Y===", 4, out, sizeof(out)), -1,
	    "b64: three pads");
	is_int(sasl_b64_decode("YQ==YWJj", 8, out, sizeof(out)), -1,
	    "b64: padding in the middle");
	is_int(sasl_b64_decode("YW=j", 4, out, sizeof(out)), -1,
	    "b64: pad then data");
	is_int(sasl_b64_decode("YW J", 4, out, sizeof(out)), -1, "b64: space");
	is_int(sasl_b64_decode("YWJjYWJj", 8, out, 5), -1, "b64: too small");
}

static void
test_ids(void)
{
	struct sasl_id sid;
	const char    *r;

	is_str(ID1("PLAIN", "\0alice\0secret"), "alice", "PLAIN authcid");
	is_str(ID1("plain", "boss\0alice\0secret"), "boss",
	    "PLAIN authzid wins; mechanism case-insensitive");
	is_str(ID1("PLAIN", "alice\0secret"), NULL,
	    "PLAIN with one NUL: nothing (never the password)");
	is_str(ID1("PLAIN", "secret"), NULL, "PLAIN without NUL: nothing");
	is_str(ID1("LOGIN", "bob@example.test"), "bob@example.test", "LOGIN");
	r = id_of(&sid, "LOGIN", 2, (const char *const[]){ "", "pw" },
	    (const size_t[]){ 0, 2 });
	is_str(r, NULL,
	    "LOGIN: an empty first response, the password is "
	    "not taken");
	r = id_of(&sid, "LOGIN", 2, (const char *const[]){ "*", "pw" },
	    (const size_t[]){ (size_t)-1, 2 });
	is_str(r, "pw", "LOGIN: '*' is not a response (cancel)");
	r = id_of(&sid, "LOGIN", 2, (const char *const[]){ "!!", "pw" },
	    (const size_t[]){ (size_t)-1, 2 });
	is_str(r, NULL, "LOGIN: undecodable first response, second ignored");
	is_str(ID1("CRAM-MD5", "joe user 0123456789abcdef"), "joe user",
	    "CRAM-MD5: up to the last space");
	is_str(ID1("CRAM-MD5", "nospace"), NULL, "CRAM-MD5 without digest");
	is_str(ID1("DIGEST-MD5",
		   "realm=\"x\",username=\"al\\\"ice\",nonce="
		   "\"a,b\",response=abc"),
	    "al\"ice", "DIGEST-MD5 username, quoted-pair");
	is_str(ID1("DIGEST-MD5", "username=\"u\",authzid=\"boss\""), "boss",
	    "DIGEST-MD5 authzid wins");
	is_str(ID1("DIGEST-MD5", "nonce=\"username=evil\",username=u"), "u",
	    "DIGEST-MD5: a key inside a quoted value is not a key");
	is_str(ID1("SCRAM-SHA-256", "n,,n=us=2Cer=3D,r=abc"),
	    "us,er=", "SCRAM saslname decoded");
	is_str(ID1("SCRAM-SHA-1", "y,a=boss,n=user,r=abc"), "boss",
	    "SCRAM authzid wins");
	is_str(ID1("SCRAM-SHA-1", "n,,r=abc"), NULL, "SCRAM without n=");
	is_str(ID1("OAUTHBEARER", "n,a=user@example.com,\1auth=Bearer x\1\1"),
	    "user@example.com", "OAUTHBEARER a=");
	is_str(ID1("XOAUTH2", "user=me@example.com\1auth=Bearer tok\1\1"),
	    "me@example.com", "XOAUTH2 user= (the token is not taken)");
	is_str(ID1("EXTERNAL", "me"), "me", "EXTERNAL authzid");
	r = id_of(&sid, "EXTERNAL", 1, (const char *const[]){ "=" },
	    (const size_t[]){ (size_t)-1 });
	is_str(r, NULL, "EXTERNAL empty: nothing");
	is_str(ID1("ANONYMOUS", "trace"), "anonymous", "ANONYMOUS");
	is_str(ID1("GSSAPI", "\x60\x82tok"), NULL, "GSSAPI: no identity");
	is_str(ID1("LOGIN", "a\r\nb\x7f"), "a??b?", "controls become ?");
	{
		char big[600];

		memset(big, 'x', sizeof(big));
		big[0] = '\0';
		r = id_of(&sid, "PLAIN", 1, (const char *const[]){ big },
		    (const size_t[]){ 599 });
		is_str(r, NULL, "PLAIN: no second NUL in 600 bytes");
		big[590] = '\0';
		r = id_of(&sid, "PLAIN", 1, (const char *const[]){ big },
		    (const size_t[]){ 599 });
		ok(r != NULL && strlen(r) == SASL_ID_MAX - 1,
		    "a long identity is cut to %d", SASL_ID_MAX - 1);
	}
}

static void
test_authlimit(void)
{
	struct sockaddr_in  a4, b4;
	struct sockaddr_in6 a6, b6, m6;
	int		    i;

	memset(&a4, 0, sizeof(a4));
	a4.sin_family = AF_INET;
	inet_pton(AF_INET, "192.0.2.1", &a4.sin_addr);
	b4 = a4;
	inet_pton(AF_INET, "192.0.2.2", &b4.sin_addr);
	memset(&a6, 0, sizeof(a6));
	a6.sin6_family = AF_INET6;
	inet_pton(AF_INET6, "2001:db8:1:2::1", &a6.sin6_addr);
	b6 = a6;
	inet_pton(AF_INET6, "2001:db8:1:2:ffff::9", &b6.sin6_addr);
	m6 = a6;
	inet_pton(AF_INET6, "::ffff:192.0.2.1", &m6.sin6_addr);

	ok(!authlimit_blocked((struct sockaddr *)&a4, 3, 60, 1000),
	    "fresh address not blocked");
	for (i = 0; i < 3; i++)
		authlimit_fail((struct sockaddr *)&a4, 60, 1000 + i);
	ok(authlimit_blocked((struct sockaddr *)&a4, 3, 60, 1005),
	    "3 failures: blocked");
	ok(!authlimit_blocked((struct sockaddr *)&a4, 4, 60, 1005),
	    "below a higher max: not blocked");
	ok(!authlimit_blocked((struct sockaddr *)&b4, 3, 60, 1005),
	    "another IPv4 address is not");
	ok(authlimit_blocked((struct sockaddr *)&m6, 3, 60, 1005),
	    "the same address IPv4-mapped is");
	ok(!authlimit_blocked((struct sockaddr *)&a4, 3, 60, 1060),
	    "window over: not blocked");
	is_int(authlimit_fail((struct sockaddr *)&a4, 60, 1061), 1,
	    "a new window counts from 1");
	authlimit_fail((struct sockaddr *)&a6, 60, 2000);
	is_int(authlimit_fail((struct sockaddr *)&b6, 60, 2000), 2,
	    "IPv6: the same /64 shares a count");
	/* Many clients: the table stays bounded and keeps working. */
	for (i = 0; i < 100000; i++) {
		b4.sin_addr.s_addr = htonl(0x0a000000u + (unsigned)i);
		authlimit_fail((struct sockaddr *)&b4, 600, 3000);
	}
	is_int(authlimit_fail((struct sockaddr *)&b4, 600, 3000), 2,
	    "after 100000 clients the last one is still counted");
}

int
main(void)
{
	test_mechs();
	test_b64();
	test_ids();
	test_authlimit();
	return tap_done();
}
