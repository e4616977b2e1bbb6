/*
 * dkim_keycache.h - parsed DKIM public keys, kept per thread, for the
 * dkim filter's verifications by libopendkim.
 *
 * libopendkim decodes a signature's key from its DER octets (the key
 * record's p=, RFC 6376 §3.6.1) with OpenSSL's d2i_PUBKEY_bio() for every
 * signature it verifies, and OpenSSL 3's provider decoders make that the
 * costliest step of a verification, several times the RSA operation
 * itself. libopendkim's API has no way to hand it a key already parsed.
 * So this module defines d2i_PUBKEY_bio() in the executable: the dynamic
 * linker binds libopendkim's reference to the executable's definition
 * before libcrypto's (ELF symbol interposition). While the calling thread
 * is armed (dkim_keycache_arm(), around the filter's dkim_eoh() and
 * dkim_eom() calls) a key whose exact DER octets were decoded before on
 * this thread is answered with that EVP_PKEY (a new reference); any other
 * call, and every call on an unarmed thread, goes to OpenSSL's own
 * d2i_PUBKEY_bio(). The octets are the whole key, so a key changed in DNS
 * is a different entry, and nothing needs to expire; every signature is
 * still verified (RSA or Ed25519) on every message.
 *
 * Bounds: at most max entries per thread, and DKIM_KEYCACHE_BYTES of DER
 * octets (a parsed key takes about ten times its octets: some 3 KB for
 * an RSA-2048 key, whose DER is 294 octets, once used); the least
 * recently used make room. Keys of more than DKIM_KEYCACHE_DER_MAX octets
 * are not kept.
 *
 * Threading: each thread its own table (thread-local); a thread's table
 * is freed when the thread exits, or by dkim_keycache_thread_done().
 */
#ifndef MOAT_DKIM_KEYCACHE_H
#define MOAT_DKIM_KEYCACHE_H

#include <stddef.h>

#define DKIM_KEYCACHE_DER_MAX 4096 /* a 16384-bit RSA key is ~2.1 KB */
#define DKIM_KEYCACHE_BYTES   (1024 * 1024)

struct dkim_keycache_stats {
	unsigned long long hits, misses, evicted;
	size_t		   entries;
};

/*
 * 0, or -1 when OpenSSL's d2i_PUBKEY_bio cannot be found (then nothing
 * is ever cached) or the interposition is not in effect (libopendkim
 * would call OpenSSL directly; harmless, but the cache is useless).
 * max: entries per thread, 0 = cache nothing; each dkim filter's
 * initialisation calls it (at start, and at a reload: the last call's max
 * wins, tables above it shrink as they next take a key). Any thread.
 */
int dkim_keycache_init(size_t max);

/* Arm (1) or disarm (0) the calling thread; returns the previous state. */
int dkim_keycache_arm(int on);

/* The calling thread's counters. */
void dkim_keycache_stats(struct dkim_keycache_stats *);

/* Free the calling thread's table now (threads that exit need not). */
void dkim_keycache_thread_done(void);

#endif
