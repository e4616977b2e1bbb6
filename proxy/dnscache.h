/*
 * dnscache.h - a small cache of decoded DNS answers, one per event-loop
 * thread, in front of the resolver (resolver.c): an answer the thread has
 * seen is answered again without a round trip through libunbound's pipes
 * and threads.
 *
 * Keyed by the question (the name, ASCII case folded and without a final
 * dot, and the type). Holds answers with records (DNS_OK) and negative
 * answers (DNS_NXDOMAIN, DNS_NODATA), each for the TTL the caller gives
 * (dns_answer_ttl(): the answer's smallest TTL, or RFC 2308's SOA-derived
 * one), raised to min_ttl and lowered to max_ttl; a TTL of 0 is not kept.
 * Nothing else is kept: not SERVFAIL or other temporary failures, not
 * timeouts, not DNSSEC-bogus answers, not errors.
 *
 * Bounded: at most max_bytes of entries (every byte of an entry counted:
 * the question, the records' wire and decoded forms, the bookkeeping) and
 * at most DNSCACHE_MAX_ENTRIES entries; an answer bigger than an eighth of
 * max_bytes is not kept. The least recently used entries make room.
 *
 * An entry found is referenced: it stays valid, even if it expires or is
 * evicted meanwhile, until dnscache_unref(). Entries may outlive their
 * cache (dnscache_free() only drops the cache's references).
 *
 * Pure code: no I/O, no clock (the caller passes now, in milliseconds of
 * a monotonic clock), no locks: a cache is one thread's, or the caller
 * locks it (resolver.c's shared second level).
 */
#ifndef MOAT_DNSCACHE_H
#define MOAT_DNSCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "resolver.h"

#define DNSCACHE_MAX_ENTRIES 65536

struct dnscache;
struct dnscache_entry;

struct dnscache_stats {
	unsigned long long hits, misses, stored, evicted, expired;
	size_t		   entries, bytes;
};

/* max_bytes 0: a cache that keeps nothing. */
struct dnscache *dnscache_new(
    size_t max_bytes, unsigned min_ttl, unsigned max_ttl);
void dnscache_free(struct dnscache *);

/*
 * The live entry for name/type, referenced, or NULL (a miss; an expired
 * entry found is dropped).
 */
struct dnscache_entry *dnscache_get(
    struct dnscache *, const char *name, int type, uint64_t now_ms);

/*
 * Fill *a from the entry: the same status, rcode, secure flag and records
 * (wire and decoded) as the answer stored, pointing into the entry; ttl
 * is what is left of the stored TTL at now_ms.
 */
void dnscache_answer(
    const struct dnscache_entry *, uint64_t now_ms, struct dns_answer *a);
void dnscache_unref(struct dnscache_entry *);

/*
 * Keep a copy of the answer to name/type for ttl seconds (clamped as
 * above). 0 when kept, -1 when it is not for caching (status, TTL 0,
 * size). A live entry of the same question is replaced.
 */
int dnscache_put(struct dnscache *, const char *name, int type,
    const struct dns_answer *, unsigned ttl, uint64_t now_ms);

/*
 * Keep a copy of another cache's live entry (same question, answer and
 * expiry: no clamp again) in dst; the new entry, referenced, or NULL
 * (expired, or too big for dst). The caller makes sure src's owner does
 * not touch it meanwhile.
 */
struct dnscache_entry *dnscache_copy(
    struct dnscache *dst, const struct dnscache_entry *src, uint64_t now_ms);

void dnscache_stats(const struct dnscache *, struct dnscache_stats *);

#endif
