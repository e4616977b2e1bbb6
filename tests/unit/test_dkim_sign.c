/*
 * test_dkim_sign.c - unit tests for proxy/dkim_sign.c: the From domain
 * parser (display names, comments, quoted strings, obs-route; lists,
 * groups, domain literals and junk refused), the choice of signers (the
 * most specific domain, subdomains, case, a suffix that is no parent),
 * key loading (RSA, Ed25519, too small, no key, group-readable), and
 * signing round trips checked by libopendkim's verifier with the keys in
 * a key file (LIBRARIES.md §3.5): a memory and a file spool in wire form
 * (dot-stuffed lines un-stuffed), a header prefix with an offset, and the
 * signature's lines all ending in CRLF.
 *
 * Hermetic: keys made with OpenSSL in a temporary directory, removed at
 * the end. Single-threaded.
 */

#include <event2/buffer.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <opendkim/dkim.h>

#include "tap.h"
#include "dkim_sign.h"
#include "from_field.h"
#include "spool.h"

static char top[256];

static void
from_is(const char *value, const char *want)
{
	char	    out[256], name[256];
	size_t	    i;
	const char *why;
	int	    rc =
	    from_field_domain(value, strlen(value), out, sizeof(out), &why);

	/* The test point's name on one line. */
	for (i = 0; value[i] != '\0' && i + 1 < sizeof(name); i++)
		name[i] = value[i] == '\r' || value[i] == '\n' ? '~' : value[i];
	name[i] = '\0';
	if (want == NULL)
		ok(rc == -1, "From \"%s\": refused", name);
	else if (!ok(rc == 0 && strcmp(out, want) == 0, "From \"%s\": %s", name,
		     want))
		printf("#   rc %d, got \"%s\"\n", rc, rc == 0 ? out : "");
}

static void
test_from(void)
{
	from_is("alice@example.com", "example.com");
	from_is(" Alice <alice@Example.COM>", "example.com");
	from_is("\"Doe, John\" <john@example.com>", "example.com");
	from_is("\"a@evil.test\" <john@example.com>", "example.com");
	from_is("john@example.com (John <x@evil.test>, y)", "example.com");
	from_is(
	    "(c) John (nested (comment)) <john @ example.com >", "example.com");
	from_is("\"john doe\"@example.com", "example.com");
	from_is("<@relay.test:john@example.com>", NULL); /* obs-route */
	from_is("=?utf-8?q?J=C3=B6rg?=\r\n <jorg@sub.example.com>",
	    "sub.example.com");
	from_is("a@example.com, b@example.com", NULL);
	from_is("A <a@example.com>, B <b@example.com>", NULL);
	from_is("group: a@example.com;", NULL);
	from_is("undisclosed-recipients:;", NULL);
	from_is("john@[192.0.2.1]", NULL);
	from_is("john", NULL);
	from_is("@example.com", NULL);
	from_is("john@", NULL);
	from_is("john@exa mple.com", NULL);
	from_is("john@example..com", NULL);
	from_is("john@.example.com", NULL);
	from_is("John <john@example.com", NULL);
	from_is("John <john@example.com> trailing", NULL);
	from_is("\"unterminated <john@example.com>", NULL);
	from_is("john@example.com (unterminated", NULL);
	from_is("", NULL);
}

/* ------------------------------------------------------------- keys */

static char *
write_key(const char *name, EVP_PKEY *pk, mode_t mode)
{
	static char path[8][512];
	static int  n;
	char	   *p = path[n++ % 8];
	FILE	   *f;
	BIO	   *b;

	snprintf(p, 512, "%s/%s", top, name);
	f = fopen(p, "w");
	b = BIO_new_fp(f, BIO_NOCLOSE);
	/* RSA as PKCS#1 ("BEGIN RSA PRIVATE KEY"), Ed25519 as PKCS#8. */
	if (EVP_PKEY_get_base_id(pk) == EVP_PKEY_RSA)
		PEM_write_bio_PrivateKey_traditional(
		    b, pk, NULL, NULL, 0, NULL, NULL);
	else
		PEM_write_bio_PrivateKey(b, pk, NULL, NULL, 0, NULL, NULL);
	BIO_free(b);
	fclose(f);
	chmod(p, mode);
	return p;
}

/* "sel._domainkey.dom v=DKIM1; k=...; p=..." for the key file. */
static void
key_line(FILE *f, const char *sel, const char *dom, EVP_PKEY *pk)
{
	unsigned char raw[32], *der = NULL;
	unsigned char b64[2048];
	size_t	      rl = sizeof(raw);
	int	      dl;

	if (EVP_PKEY_get_base_id(pk) == EVP_PKEY_ED25519) {
		EVP_PKEY_get_raw_public_key(pk, raw, &rl);
		EVP_EncodeBlock(b64, raw, (int)rl);
		fprintf(f, "%s._domainkey.%s v=DKIM1; k=ed25519; p=%s\n", sel,
		    dom, b64);
		return;
	}
	dl = i2d_PUBKEY(pk, &der);
	EVP_EncodeBlock(b64, der, dl);
	OPENSSL_free(der);
	fprintf(f, "%s._domainkey.%s v=DKIM1; k=rsa; p=%s\n", sel, dom, b64);
}

static struct dkim_signer *
signer(const char *dom, const char *sel, const char *key)
{
	char		    err[512];
	int		    go;
	struct dkim_signer *sg =
	    dkim_signer_new(dom, sel, key, NULL, NULL, &go, err, sizeof(err));

	if (sg == NULL)
		printf("# %s\n", err);
	return sg;
}

static void
test_keys(EVP_PKEY *rsa, EVP_PKEY *ed, EVP_PKEY *small)
{
	char		    err[512], path[512];
	int		    go;
	struct dkim_signer *sg;
	FILE		   *f;

	sg = dkim_signer_new("Example.COM", "s", write_key("r.pem", rsa, 0600),
	    NULL, NULL, &go, err, sizeof(err));
	ok(sg != NULL && go == 0, "RSA 2048 key (PKCS#1 PEM) taken");
	if (sg != NULL) {
		is_str(dkim_signer_algorithm(sg), "rsa-sha256", "rsa-sha256");
		is_str(dkim_signer_domain(sg), "example.com", "domain lower");
	}
	dkim_signer_free(sg);
	sg = dkim_signer_new("example.com", "s", write_key("e.pem", ed, 0640),
	    NULL, NULL, &go, err, sizeof(err));
	ok(sg != NULL && go == 1, "Ed25519 key taken; group-readable noticed");
	if (sg != NULL)
		is_str(dkim_signer_algorithm(sg), "ed25519-sha256",
		    "ed25519-sha256");
	dkim_signer_free(sg);
	sg = dkim_signer_new("example.com", "s",
	    write_key("small.pem", small, 0600), NULL, NULL, &go, err,
	    sizeof(err));
	ok(sg == NULL && strstr(err, "512 bits") != NULL, "RSA 512 refused: %s",
	    err);
	snprintf(path, sizeof(path), "%s/junk.pem", top);
	f = fopen(path, "w");
	fputs("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
	    f);
	fclose(f);
	sg = dkim_signer_new(
	    "example.com", "s", path, NULL, NULL, &go, err, sizeof(err));
	ok(sg == NULL && strstr(err, "not an unencrypted PEM") != NULL,
	    "junk refused: %s", err);
	snprintf(path, sizeof(path), "%s/none.pem", top);
	sg = dkim_signer_new(
	    "example.com", "s", path, NULL, NULL, &go, err, sizeof(err));
	ok(sg == NULL && strstr(err, "No such file") != NULL,
	    "missing file refused: %s", err);
}

static void
test_match(const char *key)
{
	struct dkim_signer	 *v[4];
	const struct dkim_signer *out[4];
	size_t			  n;

	v[0] = signer("example.com", "a", key);
	v[1] = signer("sub.example.com", "b", key);
	v[2] = signer("example.com", "c", key);
	v[3] = signer("other.test", "d", key);
	n = dkim_signers_match(v, 4, "example.com", out, 4);
	ok(n == 2 && out[0] == v[0] && out[1] == v[2],
	    "example.com: both of its sections, in order");
	n = dkim_signers_match(v, 4, "x.sub.example.com", out, 4);
	ok(n == 1 && out[0] == v[1], "x.sub.example.com: the most specific");
	n = dkim_signers_match(v, 4, "mail.example.com", out, 4);
	ok(n == 2 && out[0] == v[0], "mail.example.com: the parent's");
	n = dkim_signers_match(v, 4, "EXAMPLE.com", out, 4);
	is_int(n, 2, "case-insensitive");
	n = dkim_signers_match(v, 4, "notexample.com", out, 4);
	is_int(n, 0, "notexample.com: a suffix, not a subdomain");
	n = dkim_signers_match(v, 4, "example.com", out, 1);
	is_int(n, 1, "bounded by max");
	for (n = 0; n < 4; n++)
		dkim_signer_free(v[n]);
}

/* ---------------------------------------------------------- signing */

/* libopendkim verifies msg (content, CRLF, not stuffed): passes. */
static int
verify(const char *keyfile, const char *msg, size_t len)
{
	DKIM_LIB      *lib = dkim_init(NULL, NULL);
	dkim_query_t   q = DKIM_QUERY_FILE;
	DKIM	      *d;
	DKIM_STAT      st;
	DKIM_SIGINFO **sigs;
	int	       nsigs, i, good = 0;
	const char    *p = msg, *end = msg + len, *e;
	_Bool	       tk;

	dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYMETHOD, &q, sizeof(q));
	dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYINFO, (void *)keyfile,
	    strlen(keyfile));
	d = dkim_verify(lib, (const u_char *)"t", NULL, &st);
	/* Fields: up to a CRLF not followed by WSP. */
	while (p < end && !(p[0] == '\r' && p[1] == '\n')) {
		for (e = p; e + 2 < end; e++)
			if (e[0] == '\r' && e[1] == '\n' && e[2] != ' ' &&
			    e[2] != '\t')
				break;
		dkim_header(d, (u_char *)p, (size_t)(e - p));
		p = e + 2;
	}
	p += 2;
	st = dkim_eoh(d);
	if (p < end)
		dkim_body(d, (u_char *)p, (size_t)(end - p));
	st = dkim_eom(d, &tk);
	if (dkim_getsiglist(d, &sigs, &nsigs) == DKIM_STAT_OK)
		for (i = 0; i < nsigs; i++)
			if (DKIM_SIG_CHECK(sigs[i]))
				good++;
	dkim_free(d);
	dkim_close(lib);
	return good;
}

/* Every line ends in CRLF; no lone CR or LF. */
static int
crlf_only(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (p[i] == '\r' && (i + 1 >= n || p[i + 1] != '\n'))
			return 0;
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			return 0;
	}
	return n >= 2 && p[n - 2] == '\r' && p[n - 1] == '\n';
}

static void
round_trip(const char *name, const struct dkim_signer *const *sg, size_t n,
    const char *keyfile, const char *prefix, const char *wire, size_t off,
    const char *content, size_t threshold)
{
	struct evbuffer *pre = NULL, *sigs = evbuffer_new(), *all;
	struct spool	 sp;
	char		 err[256];
	int		 rc;
	size_t		 sl;
	const char	*s;

	spool_init(&sp, top, threshold);
	spool_write(&sp, wire, strlen(wire));
	if (prefix != NULL) {
		pre = evbuffer_new();
		evbuffer_add(pre, prefix, strlen(prefix));
	}
	rc = dkim_sign_message(
	    sg, n, "test", pre, &sp, off, sigs, err, sizeof(err));
	if (!ok(rc == 0, "%s: signed", name))
		printf("#   %d %s\n", rc, err);
	evbuffer_add(sigs, "", 1); /* NUL for strstr; not counted */
	sl = evbuffer_get_length(sigs) - 1;
	s = (const char *)evbuffer_pullup(sigs, -1);
	ok(crlf_only(s, sl), "%s: the fields' lines end in CRLF", name);
	ok(sl > 0 && strstr(s, "; l=") == NULL && strstr(s, "\tl=") == NULL,
	    "%s: no l=", name);
	all = evbuffer_new();
	evbuffer_add(all, s, sl);
	evbuffer_add(all, content, strlen(content));
	is_int(verify(keyfile, (const char *)evbuffer_pullup(all, -1),
		   evbuffer_get_length(all)),
	    (long long)n, "%s: %zu signature(s) verify", name, n);
	evbuffer_free(all);
	evbuffer_free(sigs);
	if (pre != NULL)
		evbuffer_free(pre);
	spool_free(&sp);
}

static void
test_sign(EVP_PKEY *rsa, EVP_PKEY *ed)
{
	char			  keyfile[512];
	FILE			 *f;
	struct dkim_signer	 *r, *e;
	const struct dkim_signer *both[2];
	const char		 *wire = "From: Alice <alice@example.com>\r\n"
					 "Subject: hi\r\n\tfolded\r\n"
					 "To: bob@example.net\r\n\r\n"
					 "..dots\r\n.\r\n..\r\nend\r\n\r\n.\r\n";
	const char *content = "From: Alice <alice@example.com>\r\n"
			      "Subject: hi\r\n\tfolded\r\n"
			      "To: bob@example.net\r\n\r\n"
			      ".dots\r\n\r\n.\r\nend\r\n\r\n";
	const char *hdronly = "From: a@example.com\r\nSubject: x\r\n.\r\n";

	snprintf(keyfile, sizeof(keyfile), "%s/keys", top);
	f = fopen(keyfile, "w");
	key_line(f, "r", "example.com", rsa);
	key_line(f, "e", "example.com", ed);
	fclose(f);
	r = signer("example.com", "r", write_key("r.pem", rsa, 0600));
	e = signer("example.com", "e", write_key("e.pem", ed, 0600));
	if (!ok(r != NULL && e != NULL, "signers built"))
		return;
	both[0] = r;
	both[1] = e;
	round_trip("rsa, memory spool", both, 1, keyfile, NULL, wire, 0,
	    content, 1 << 20);
	round_trip("ed25519, file spool", both + 1, 1, keyfile, NULL, wire, 0,
	    content, 0);
	round_trip("both", both, 2, keyfile, NULL, wire, 0, content, 1 << 20);
	/* A rewritten header section in front of the original body. */
	round_trip("prefix + offset", both, 2, keyfile,
	    "X-Added: 1\r\nFrom: Alice <alice@example.com>\r\n\r\n", wire,
	    strstr(wire, "\r\n\r\n") - wire + 4,
	    "X-Added: 1\r\nFrom: Alice <alice@example.com>\r\n\r\n"
	    ".dots\r\n\r\n.\r\nend\r\n\r\n",
	    0);
	round_trip("header section only", both, 1, keyfile, NULL, hdronly, 0,
	    "From: a@example.com\r\nSubject: x\r\n\r\n", 1 << 20);
	{
		struct spool	 sp;
		struct evbuffer *sigs = evbuffer_new();
		char		 err[256];
		const char	*bad = "From: a@example.com\r\nnot a field\r\n"
				       "\r\nbody\r\n.\r\n";

		spool_init(&sp, top, 1 << 20);
		spool_write(&sp, bad, strlen(bad));
		is_int(dkim_sign_message(
			   both, 1, "t", NULL, &sp, 0, sigs, err, sizeof(err)),
		    1, "a header line that is no field: not signable (%s)",
		    err);
		spool_free(&sp);
		evbuffer_free(sigs);
	}
	dkim_signer_free(r);
	dkim_signer_free(e);
}

static int
rm(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(p);
}

int
main(void)
{
	EVP_PKEY *rsa, *ed, *small;

	snprintf(top, sizeof(top), "/tmp/moat-dkim-sign.XXXXXX");
	if (mkdtemp(top) == NULL)
		return 1;
	rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)512);
	ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	test_from();
	test_keys(rsa, ed, small);
	test_match(write_key("m.pem", ed, 0600));
	test_sign(rsa, ed);
	is_int(dkim_sign_ed_leaks(), 0,
	    "libopendkim's Ed25519 state freed after every signature");
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(small);
	EVP_PKEY_free(ed);
	nftw(top, rm, 8, FTW_DEPTH | FTW_PHYS);
	return tap_done();
}
