/*
 * resolver.h - moat's one DNS resolver: every lookup of moat (SPF, DKIM
 * keys, DMARC records, the client's reverse name, blocklists) goes through
 * it. libunbound underneath: full recursion from the root by default (no
 * resolver service needed, and blocklists answer, which they refuse to
 * public resolvers), or the configured forwarders (RFC 1035 §7, RFC 4033
 * validation when a trust anchor is given). Asynchronous, with one shared
 * cache for the whole process, and bounded: a deadline per query
 * (dns_timeout), a cap on queries in flight (dns_max_queries), a cap on
 * the records of one answer (DNS_MAX_RECORDS), the cache's size
 * (dns_cache_size). Each loop thread also keeps the answers it got in a
 * small cache of its own (dnscache.h, dns_thread_cache_size), answered
 * without leaving the thread.
 *
 * Threading: resolver_init() and resolver_shutdown() on the main thread,
 * which then runs libunbound's result pipe in its event loop.
 * resolver_query() and resolver_cancel() on any loop thread; the callback
 * runs on the loop thread that asked, exactly once unless the query was
 * cancelled first, and never from inside resolver_query() (a cached
 * answer too comes from the loop). resolver_thread_done() on each loop
 * thread as it ends (after its loop), before resolver_shutdown().
 */
#ifndef MOAT_RESOLVER_H
#define MOAT_RESOLVER_H

#include <stddef.h>
#include <stdint.h>

#include "dnsrr.h"

struct config;
struct loop;
struct dns_query;

#define DNS_MAX_RECORDS 256

struct dns_record {
	const unsigned char *rdata; /* wire form, as received */
	size_t		     rdlen;
	/*
	 * Decoded: TXT its character-strings joined (RFC 7208 §3.3; may
	 * hold NULs, see textlen), A/AAAA the numeric address, MX/PTR/NS/
	 * CNAME the name without the final dot; NULL if undecodable.
	 */
	const char *text;
	size_t	    textlen;
	unsigned    pref; /* MX preference */
};

struct dns_answer {
	enum dns_status status;
	int		rcode;	/* DNS RCODE */
	int		secure; /* DNSSEC validated */
	unsigned	ttl;
	const char     *why; /* DNS_BOGUS / DNS_ERROR reason, or NULL */
	size_t		n;
	const struct dns_record *rr;
};

/* The answer is valid during the call only. */
typedef void (*dns_cb)(void *arg, const struct dns_answer *);

/* 0, or -1 with the reason in err (a bad forwarder or trust anchor). */
int resolver_init(
    const struct config *, struct loop *mainloop, char *err, size_t errlen);
void resolver_shutdown(void);
/* One log line saying how it resolves (moatd's start). */
void resolver_log_start(const struct config *);
/* One log line of the thread caches' counters (moatd's stop, after the
 * loop threads ended). */
void resolver_log_stop(void);
/* Free this thread's cache (its counters go to resolver_log_stop). */
void resolver_thread_done(void);

/*
 * Ask for name/type; cb(arg, answer) later on this loop's thread. NULL
 * only when the resolver is not running (then cb is not called).
 */
struct dns_query *resolver_query(
    struct loop *, const char *name, int type, dns_cb cb, void *arg);
/* Forget a query whose callback has not run; cb will not be called. */
void resolver_cancel(struct dns_query *);

#endif
