/*
 * test_dkim_keycache.c - filters/dkim/dkim_keycache.c: the interposed
 * d2i_PUBKEY_bio() is the one libopendkim calls; unarmed it only passes
 * through; armed, the second decode of the same octets is a hit giving
 * the same key and consuming the BIO as OpenSSL does; other octets,
 * undecodable ones, reuse objects (a != NULL) are OpenSSL's; the entry
 * bound and LRU; a thread of its own has a table of its own; and through
 * libopendkim: signatures verified with a cached key still pass, and a
 * tampered message still fails with it.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <opendkim/dkim.h>

#include "dkim_keycache.h"
#include "tap.h"

static unsigned char *
der_of(EVP_PKEY *pk, int *len)
{
	unsigned char *der = NULL;

	*len = i2d_PUBKEY(pk, &der);
	return der;
}

static EVP_PKEY *
decode(const unsigned char *der, int len, int *left)
{
	BIO	 *b = BIO_new_mem_buf(der, len);
	EVP_PKEY *pk = d2i_PUBKEY_bio(b, NULL);

	*left = (int)BIO_pending(b);
	BIO_free(b);
	return pk;
}

static struct dkim_keycache_stats
stats(void)
{
	struct dkim_keycache_stats st;

	dkim_keycache_stats(&st);
	return st;
}

static void *
other_thread(void *arg)
{
	const unsigned char *der = arg;
	EVP_PKEY	    *pk;
	int		     left, *miss = malloc(sizeof(int));

	dkim_keycache_arm(1);
	pk = decode(der + sizeof(int), *(const int *)der, &left);
	*miss = stats().misses == 1 && stats().hits == 0 && pk != NULL;
	EVP_PKEY_free(pk);
	return miss; /* the table is freed as the thread exits */
}

static void
test_hook(EVP_PKEY *rsa, EVP_PKEY *rsa2)
{
	unsigned char *der, *der2, junk[300], withtail[2048];
	int	       len, len2, left, left2, i;
	EVP_PKEY      *a, *b, *c, *reuse = NULL;
	BIO	      *bio;

	der = der_of(rsa, &len);
	der2 = der_of(rsa2, &len2);
	is_int(dkim_keycache_init(128), 0,
	    "the executable's d2i_PUBKEY_bio is the one in effect");

	a = decode(der, len, &left);
	b = decode(der, len, &left);
	ok(a != NULL && b != NULL && a != b && stats().misses == 0 &&
		stats().hits == 0,
	    "unarmed: OpenSSL's decode every time, nothing kept");
	EVP_PKEY_free(a);
	EVP_PKEY_free(b);

	dkim_keycache_arm(1);
	a = decode(der, len, &left);
	is_int(stats().misses, 1, "armed: the first decode is a miss");
	b = decode(der, len, &left2);
	is_int(stats().hits, 1, "the second, of the same octets, a hit");
	ok(a == b, "... giving the same key, another reference");
	ok(EVP_PKEY_eq(b, rsa) == 1, "... equal to the key encoded");
	is_int(left2, left, "... the BIO consumed as OpenSSL consumes it");
	EVP_PKEY_free(a);
	EVP_PKEY_free(b); /* the cache's reference keeps it */
	b = decode(der, len, &left);
	ok(b != NULL && EVP_PKEY_eq(b, rsa) == 1,
	    "the key lives on in the cache after the callers freed theirs");
	EVP_PKEY_free(b);

	memcpy(withtail, der, (size_t)len);
	memcpy(withtail + len, "trailing", 8);
	a = decode(withtail, len + 8, &left);
	b = decode(withtail, len + 8, &left2);
	ok(a == b && left == 8 && left2 == 8,
	    "octets after the key: a key of their own, the tail left unread");
	EVP_PKEY_free(a);
	EVP_PKEY_free(b);

	c = decode(der2, len2, &left);
	ok(c != NULL && EVP_PKEY_eq(c, rsa2) == 1 && stats().misses == 3,
	    "other octets: a miss and the other key");
	EVP_PKEY_free(c);

	for (i = 0; i < (int)sizeof(junk); i++)
		junk[i] = (unsigned char)(i * 7);
	a = decode(junk, sizeof(junk), &left);
	b = decode(junk, sizeof(junk), &left);
	ok(a == NULL && b == NULL && stats().entries == 3,
	    "undecodable octets: NULL both times, nothing kept");

	bio = BIO_new_mem_buf(der, len);
	a = d2i_PUBKEY_bio(bio, &reuse);
	BIO_free(bio);
	ok(a != NULL && a == reuse && stats().entries == 3,
	    "a reuse object (a != NULL): OpenSSL's, not kept");
	EVP_PKEY_free(a);

	{
		pthread_t      th;
		void	      *r;
		unsigned char *arg = malloc(sizeof(int) + (size_t)len);

		memcpy(arg, &len, sizeof(int));
		memcpy(arg + sizeof(int), der, (size_t)len);
		pthread_create(&th, NULL, other_thread, arg);
		pthread_join(th, &r);
		ok(*(int *)r, "another thread: a table of its own (a miss)");
		free(r);
		free(arg);
	}

	dkim_keycache_thread_done();
	is_int(stats().entries, 0, "thread_done empties the table");
	dkim_keycache_init(2);
	EVP_PKEY_free(decode(der, len, &left));
	EVP_PKEY_free(decode(der, len, &left)); /* a hit: der is recent */
	EVP_PKEY_free(decode(der2, len2, &left));
	EVP_PKEY_free(decode(withtail, len + 8, &left));
	ok(stats().entries == 2 && stats().evicted == 1,
	    "bound: 2 entries, the least recently used evicted");
	EVP_PKEY_free(decode(der2, len2, &left));
	ok(stats().hits == 2, "... the recent one still hits");
	EVP_PKEY_free(decode(der, len, &left));
	ok(stats().misses == 4, "... the evicted one misses");
	dkim_keycache_thread_done();
	dkim_keycache_init(100000);
	{
		/* the same key followed by 3000 distinct octets: distinct
		 * entries of ~3.3 KB, so the bytes bound comes first */
		static unsigned char big[4096];
		size_t		     most = 0;

		memcpy(big, der, (size_t)len);
		for (i = 0; i < 400; i++) {
			memset(big + len, 0, 3000);
			snprintf((char *)big + len, 16, "%d", i);
			EVP_PKEY_free(decode(big, len + 3000, &left));
			if (stats().entries > most)
				most = stats().entries;
		}
		ok(most * (size_t)(len + 3000) <= DKIM_KEYCACHE_BYTES &&
			most > 250 && stats().evicted > 0,
		    "bytes bound: %zu entries of %d octets at most (1 MiB)",
		    most, len + 3000);
	}
	dkim_keycache_thread_done();
	dkim_keycache_init(0);
	EVP_PKEY_free(decode(der, len, &left));
	EVP_PKEY_free(decode(der, len, &left));
	ok(stats().hits == 0 && stats().misses == 0,
	    "key_cache 0: nothing cached");
	dkim_keycache_init(128);
	dkim_keycache_arm(0);
	OPENSSL_free(der);
	OPENSSL_free(der2);
}

/* ---------------------------------------------------------- libopendkim */

static char keyrec[4096];

static DKIM_CBSTAT
lookup(DKIM *d, DKIM_SIGINFO *sig, u_char *buf, size_t buflen)
{
	(void)d;
	(void)sig;
	if (strlen(keyrec) >= buflen)
		return DKIM_CBSTAT_ERROR;
	strcpy((char *)buf, keyrec);
	return DKIM_CBSTAT_CONTINUE;
}

static const char hdrs[] = "From: a@example.test\r\n"
			   "To: b@example.test\r\n"
			   "Subject: cached keys\r\n";
static const char body[] = "a body line\r\nanother\r\n";

static void
feed(DKIM *d, const char *sighdr, const char *h, const char *b)
{
	const char *p = h, *e;
	char	    line[4096];

	if (sighdr != NULL) {
		snprintf(line, sizeof(line), "DKIM-Signature: %s", sighdr);
		dkim_header(d, (u_char *)line, strlen(line));
	}
	for (; (e = strstr(p, "\r\n")) != NULL; p = e + 2)
		dkim_header(d, (u_char *)p, (size_t)(e - p));
	dkim_eoh(d);
	dkim_body(d, (u_char *)b, strlen(b));
}

/* 1 pass, 0 fail, -1 no verdict; the cache armed as the filter arms it */
static int
verify(DKIM_LIB *lib, const char *sighdr, const char *h, const char *b)
{
	DKIM	     *d;
	DKIM_STAT     st;
	DKIM_SIGINFO *sig;
	int	      r;

	dkim_keycache_arm(1);
	d = dkim_verify(lib, (const u_char *)"v", NULL, &st);
	feed(d, sighdr, h, b);
	dkim_eom(d, NULL);
	sig = dkim_getsignature(d);
	r = sig == NULL ? -1 : DKIM_SIG_CHECK(sig) ? 1 : 0;
	dkim_free(d);
	dkim_keycache_arm(0);
	return r;
}

static void
test_libopendkim(EVP_PKEY *rsa, EVP_PKEY *rsa2)
{
	DKIM_LIB	  *lib = dkim_init(NULL, NULL);
	DKIM		  *d;
	DKIM_STAT	   st;
	BIO		  *mem = BIO_new(BIO_s_mem());
	char		  *pem, sighdr[4096], b64[2048];
	unsigned char	  *der;
	long		   plen;
	int		   len, i, pass = 0;
	unsigned long long hits0;

	PEM_write_bio_PrivateKey(mem, rsa, NULL, NULL, 0, NULL, NULL);
	plen = BIO_get_mem_data(mem, &pem);
	pem = strndup(pem, (size_t)plen);
	d = dkim_sign(lib, (const u_char *)"s", NULL, (u_char *)pem,
	    (const u_char *)"sel", (const u_char *)"example.test",
	    DKIM_CANON_RELAXED, DKIM_CANON_RELAXED, DKIM_SIGN_RSASHA256, -1,
	    &st);
	feed(d, NULL, hdrs, body);
	dkim_eom(d, NULL);
	dkim_getsighdr(d, (u_char *)sighdr, sizeof(sighdr), 16);
	dkim_free(d);
	der = der_of(rsa, &len);
	EVP_EncodeBlock((unsigned char *)b64, der, len);
	OPENSSL_free(der);
	snprintf(keyrec, sizeof(keyrec), "v=DKIM1; k=rsa; p=%s", b64);
	dkim_set_key_lookup(lib, lookup);

	dkim_keycache_thread_done();
	for (i = 0; i < 3; i++)
		pass += verify(lib, sighdr, hdrs, body) == 1;
	is_int(pass, 3, "libopendkim: a signature passes 3 times in a row");
	ok(stats().misses == 1 && stats().hits >= 2,
	    "... the key decoded once, then from the cache (%llu hits)",
	    stats().hits);
	hits0 = stats().hits;
	is_int(verify(lib, sighdr, hdrs, "a body line\r\ntampered\r\n"), 0,
	    "a tampered body fails with the cached key");
	is_int(verify(lib, sighdr,
		   "From: a@example.test\r\nTo: c@example.test\r\n"
		   "Subject: cached keys\r\n",
		   body),
	    0, "a tampered header fails with the cached key");
	ok(stats().hits > hits0, "... both verified with the cached key");
	der = der_of(rsa2, &len);
	EVP_EncodeBlock((unsigned char *)b64, der, len);
	OPENSSL_free(der);
	snprintf(keyrec, sizeof(keyrec), "v=DKIM1; k=rsa; p=%s", b64);
	is_int(verify(lib, sighdr, hdrs, body), 0,
	    "the selector's key changed in DNS: another key, the signature "
	    "fails");
	dkim_keycache_thread_done();
	is_int(verify(lib, sighdr, hdrs, body), 0, "... and the same uncached");
	dkim_keycache_thread_done();
	free(pem);
	BIO_free(mem);
	dkim_close(lib);
}

int
main(void)
{
	EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	EVP_PKEY *rsa2 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);

	test_hook(rsa, rsa2);
	test_libopendkim(rsa, rsa2);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(rsa2);
	return tap_done();
}
