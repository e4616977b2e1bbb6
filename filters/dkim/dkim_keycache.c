/*
 * dkim_keycache.c - parsed DKIM public keys per thread, reached through
 * an interposed d2i_PUBKEY_bio(); see dkim_keycache.h for why.
 *
 * The table: a fixed array of hash chains over the DER octets and an LRU
 * list; an entry holds the octets, how many of them OpenSSL consumed from
 * the BIO, and one reference to the EVP_PKEY. A hit consumes as many
 * octets from the caller's BIO and returns a new reference; libopendkim
 * frees it (EVP_PKEY_free) after the signature is checked. A key is only
 * ever used by the thread that decoded it, so the legacy RSA object that
 * OpenSSL caches inside the EVP_PKEY for EVP_PKEY_get1_RSA() (and its
 * Montgomery context) is reused too, never shared between threads.
 *
 * Only the plain form is cached: a memory BIO (libopendkim's
 * BIO_new_mem_buf), no object to reuse (a == NULL), a successful decode.
 * Everything else goes to OpenSSL unchanged.
 *
 * Threading: thread-local tables; the bound is an atomic that
 * dkim_keycache_init() sets (at start, and again at a reload).
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "dkim_keycache.h"
#include "util.h"

#define KC_BUCKETS 256

typedef EVP_PKEY *(*d2i_pubkey_bio_fn)(BIO *, EVP_PKEY **);

struct kc_entry {
	struct kc_entry *hnext;
	TAILQ_ENTRY(kc_entry) lru;
	uint32_t      hash;
	size_t	      len, consumed;
	EVP_PKEY     *pkey;
	unsigned char der[];
};

struct kc {
	struct kc_entry *table[KC_BUCKETS];
	TAILQ_HEAD(kc_lru, kc_entry) lru; /* first: most recent */
	struct dkim_keycache_stats st;
	size_t			   bytes; /* DER octets kept */
};

static d2i_pubkey_bio_fn   real_d2i;
static atomic_size_t	   kc_max = 1024; /* a reload may change it */
static pthread_once_t	   kc_once = PTHREAD_ONCE_INIT;
static pthread_key_t	   kc_key;
static __thread struct kc *kc;
static __thread int	   kc_armed;

static void kc_free(void *);

static void
kc_setup(void)
{
	/* OpenSSL's own: the next definition after this executable's. */
	real_d2i = (d2i_pubkey_bio_fn)dlvsym(
	    RTLD_NEXT, "d2i_PUBKEY_bio", "OPENSSL_3.0.0");
	if (real_d2i == NULL)
		real_d2i =
		    (d2i_pubkey_bio_fn)dlsym(RTLD_NEXT, "d2i_PUBKEY_bio");
	pthread_key_create(&kc_key, kc_free);
}

/*
 * Without OpenSSL's function (never seen; a static build would have no
 * RTLD_NEXT), decode what the BIO holds with d2i_PUBKEY.
 */
static EVP_PKEY *
fallback_d2i(BIO *bp, EVP_PKEY **a)
{
	unsigned char	     buf[DKIM_KEYCACHE_DER_MAX * 4];
	const unsigned char *p = buf;
	int		     n, len = 0;

	while (len < (int)sizeof(buf) &&
	    (n = BIO_read(bp, buf + len, (int)sizeof(buf) - len)) > 0)
		len += n;
	return len > 0 ? d2i_PUBKEY(a, &p, len) : NULL;
}

static EVP_PKEY *
real(BIO *bp, EVP_PKEY **a)
{
	pthread_once(&kc_once, kc_setup);
	return real_d2i != NULL ? real_d2i(bp, a) : fallback_d2i(bp, a);
}

static void
kc_free(void *arg)
{
	struct kc	*c = arg;
	struct kc_entry *e;

	if (c == NULL)
		return;
	while ((e = TAILQ_FIRST(&c->lru)) != NULL) {
		TAILQ_REMOVE(&c->lru, e, lru);
		EVP_PKEY_free(e->pkey);
		free(e);
	}
	free(c);
}

static void
evict(struct kc *c, struct kc_entry *e)
{
	struct kc_entry **pp = &c->table[e->hash % KC_BUCKETS];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	TAILQ_REMOVE(&c->lru, e, lru);
	EVP_PKEY_free(e->pkey);
	c->bytes -= e->len;
	free(e);
	c->st.entries--;
}

static struct kc *
table(void)
{
	if (kc == NULL) {
		pthread_once(&kc_once, kc_setup);
		kc = xcalloc(1, sizeof(*kc));
		TAILQ_INIT(&kc->lru);
		pthread_setspecific(kc_key, kc); /* freed at thread exit */
	}
	return kc;
}

/* Read n octets off the BIO, as OpenSSL's decode of them would. */
static void
consume(BIO *bp, size_t n)
{
	unsigned char buf[512];
	int	      r;

	while (n > 0) {
		r = BIO_read(
		    bp, buf, n < sizeof(buf) ? (int)n : (int)sizeof(buf));
		if (r <= 0)
			break;
		n -= (size_t)r;
	}
}

/*
 * The interposed OpenSSL function (openssl/x509.h): the same contract,
 * the same result for the same octets.
 */
EVP_PKEY *
d2i_PUBKEY_bio(BIO *bp, EVP_PKEY **a)
{
	struct kc	*c;
	struct kc_entry *e, **bucket;
	char		*data;
	long		 len, left;
	uint32_t	 h;
	EVP_PKEY	*pk;
	size_t max = atomic_load_explicit(&kc_max, memory_order_relaxed);

	if (!kc_armed || max == 0 || a != NULL || bp == NULL ||
	    BIO_method_type(bp) != BIO_TYPE_MEM)
		return real(bp, a);
	len = BIO_get_mem_data(bp, &data);
	if (len <= 0 || len > DKIM_KEYCACHE_DER_MAX)
		return real(bp, a);
	c = table();
	h = fnv1a(FNV1A_INIT, data, (size_t)len);
	bucket = &c->table[h % KC_BUCKETS];
	for (e = *bucket; e != NULL; e = e->hnext)
		if (e->hash == h && e->len == (size_t)len &&
		    memcmp(e->der, data, (size_t)len) == 0)
			break;
	if (e != NULL) {
		if (EVP_PKEY_up_ref(e->pkey) != 1)
			return real(bp, a);
		c->st.hits++;
		TAILQ_REMOVE(&c->lru, e, lru);
		TAILQ_INSERT_HEAD(&c->lru, e, lru);
		consume(bp, e->consumed);
		return e->pkey;
	}
	c->st.misses++;
	e = xmalloc(sizeof(*e) + (size_t)len);
	memcpy(e->der, data, (size_t)len);
	if ((pk = real(bp, NULL)) == NULL || EVP_PKEY_up_ref(pk) != 1) {
		free(e);
		return pk; /* OpenSSL's error stays queued for the caller */
	}
	left = BIO_get_mem_data(bp, &data);
	e->hash = h;
	e->len = (size_t)len;
	e->consumed = left >= 0 && left <= len ? (size_t)(len - left) : 0;
	e->pkey = pk; /* the reference taken above */
	while ((c->st.entries >= max ||
		   c->bytes + (size_t)len > DKIM_KEYCACHE_BYTES) &&
	    !TAILQ_EMPTY(&c->lru)) {
		evict(c, TAILQ_LAST(&c->lru, kc_lru));
		c->st.evicted++;
	}
	e->hnext = *bucket;
	*bucket = e;
	TAILQ_INSERT_HEAD(&c->lru, e, lru);
	c->st.entries++;
	c->bytes += e->len;
	return pk;
}

int
dkim_keycache_init(size_t max)
{
	atomic_store(&kc_max, max);
	pthread_once(&kc_once, kc_setup);
	if (real_d2i == NULL)
		return -1;
	/* libopendkim binds to the first definition in the global scope:
	 * ours only if the executable exports it (-rdynamic, or the link
	 * of libopendkim's reference). */
	if (dlsym(RTLD_DEFAULT, "d2i_PUBKEY_bio") != (void *)d2i_PUBKEY_bio)
		return -1;
	return 0;
}

int
dkim_keycache_arm(int on)
{
	int was = kc_armed;

	kc_armed = on;
	return was;
}

void
dkim_keycache_stats(struct dkim_keycache_stats *st)
{
	if (kc != NULL)
		*st = kc->st;
	else
		memset(st, 0, sizeof(*st));
}

void
dkim_keycache_thread_done(void)
{
	if (kc == NULL)
		return;
	pthread_setspecific(kc_key, NULL);
	kc_free(kc);
	kc = NULL;
}
