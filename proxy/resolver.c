/*
 * resolver.c - the DNS resolver on libunbound; see resolver.h.
 *
 * One ub_ctx for the process, asynchronous with libunbound's own worker
 * thread (ub_ctx_async(ctx, 1)) and one shared cache. Its result pipe
 * (ub_fd) is watched by the main loop, where ub_process() runs the
 * completion callbacks; each posts the decoded answer to the loop that
 * asked (loop_post). The asking loop owns the query: its deadline timer,
 * its cancellation, the delivery. A query is freed on that loop only,
 * after delivery, or at cancel time when ub_cancel() guarantees that no
 * completion is coming; otherwise the completion's job frees it.
 *
 * In front of it, each loop thread keeps a small cache of the answers
 * it was given (dnscache.c, dns_thread_cache_size): a question asked
 * again while its answer lives is answered on the asking thread itself,
 * with no pipe, no other thread, no lock and no libunbound call. When a
 * thread's own cache misses, a second level shared by the threads (one
 * more table of that size, under a mutex: taken only on those misses,
 * never on a hit) is asked before libunbound, and the answer copied into
 * the thread's; so a domain one thread has seen is a hit for the others
 * too. Every answer from libunbound goes into both levels. The answer is
 * still delivered later, from the loop (an event made active), never
 * from inside resolver_query(). Only answers and RFC 2308 negative
 * answers (with their SOA) are kept, for their TTL within the configured
 * bounds; failures, timeouts and bogus answers never are.
 *
 * Record decoding is dnsrr.c's.
 */
#include <arpa/inet.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unbound.h>

#include "config.h"
#include "dnscache.h"
#include "log.h"
#include "loop.h"
#include "resolver.h"
#include "util.h"

#define DNS_TEXT_MAX (64 * 1024) /* decoded text of one answer */

struct dns_query {
	struct loop  *loop;
	dns_cb	      cb;
	void	     *arg;
	struct event *timer;
	int	      async_id;
	int	      done; /* delivered (or timed out) */
	int	      cancelled;
	const char   *refused; /* refusal_job's reason */
	char	      name[256];
	int	      type;
	/* answered from the thread's cache: delivered by hits_cb */
	struct dnscache_entry *hit;
	struct dns_query      *hnext;
};

/* A loop thread's cache, and its answers waiting to be delivered. */
struct tcache {
	struct dnscache	  *dc;
	struct event_base *base;
	struct event	  *ev;
	struct dns_query  *hits, **hits_tail;
};

/* A completion travelling from the main loop to the asking loop. */
struct dns_delivery {
	struct dns_query *q;
	int		  err;
	struct ub_result *res;
};

static struct ub_ctx	      *ctx;
static struct event	      *ub_event;
static atomic_long	       in_flight;
static long		       max_queries;
static long		       timeout_ms;
static size_t		       tcache_bytes;
static unsigned		       tcache_min_ttl, tcache_max_ttl;
static __thread struct tcache *tc;
/* the second level, shared: only under shared_mtx */
static struct dnscache *shared;
static pthread_mutex_t	shared_mtx = PTHREAD_MUTEX_INITIALIZER;
/* the threads' cache counters, added up as each thread ends */
static atomic_ullong tc_hits, tc_misses, tc_stored, tc_evicted, tc_expired;
static atomic_ullong shared_hits;

static uint64_t
now_ms(void)
{
	return now_usec() / 1000;
}

/* ---------------------------------------------------------- delivery */

static void
query_free(struct dns_query *q)
{
	if (q->timer != NULL)
		event_free(q->timer);
	dnscache_unref(q->hit);
	free(q);
	atomic_fetch_sub(&in_flight, 1);
}

static void
deliver_simple(struct dns_query *q, enum dns_status st, const char *why)
{
	struct dns_answer a;

	memset(&a, 0, sizeof(a));
	a.status = st;
	a.why = why;
	q->done = 1;
	q->cb(q->arg, &a);
}

/* Build the answer from libunbound's result and call back. */
static void
deliver_result(struct dns_query *q, int err, struct ub_result *res)
{
	struct dns_answer  a;
	struct dns_record *rr = NULL;
	char		  *text = NULL;
	size_t		   n = 0, used = 0, i, cap = 0;
	long		   len, ttl;

	memset(&a, 0, sizeof(a));
	if (err != 0 || res == NULL) {
		a.status = DNS_TEMPFAIL;
		a.why = ub_strerror(err);
		goto out;
	}
	a.rcode = res->rcode;
	a.secure = res->secure;
	a.ttl = res->ttl > 0 ? (unsigned)res->ttl : 0;
	if (res->bogus) {
		a.status = DNS_BOGUS;
		a.why = res->why_bogus != NULL ? res->why_bogus
					       : "DNSSEC validation failed";
		goto out;
	}
	if (res->nxdomain || res->rcode == 3) {
		a.status = DNS_NXDOMAIN;
		goto out;
	}
	if (res->rcode != 0) {
		a.status = DNS_TEMPFAIL; /* SERVFAIL, REFUSED, ... */
		goto out;
	}
	if (!res->havedata) {
		a.status = DNS_NODATA;
		goto out;
	}
	while (res->data[n] != NULL)
		n++;
	if (n > DNS_MAX_RECORDS) {
		a.status = DNS_ERROR;
		a.why = "too many records";
		goto out;
	}
	rr = xcalloc(n, sizeof(*rr));
	/* A record's text is at most its RDATA, or an address (< 48). */
	for (i = 0; i < n && cap < DNS_TEXT_MAX; i++)
		cap += (size_t)res->len[i] + 48;
	if (cap > DNS_TEXT_MAX)
		cap = DNS_TEXT_MAX;
	text = xmalloc(cap);
	for (i = 0; i < n; i++) {
		rr[i].rdata = (const unsigned char *)res->data[i];
		rr[i].rdlen = (size_t)res->len[i];
		len = dns_rdata_text(q->type, rr[i].rdata, rr[i].rdlen,
		    text + used, cap - used, &rr[i].pref);
		if (len >= 0) {
			rr[i].text = text + used;
			rr[i].textlen = (size_t)len;
			used += (size_t)len + 1;
		}
	}
	a.status = DNS_OK;
	a.n = n;
	a.rr = rr;
out:
	/* Keep it for the next asker on this thread (RFC 2308 for the
	 * negative ones: only with their SOA, for its TTL). */
	if (tc != NULL && res != NULL && err == 0 &&
	    (a.status == DNS_OK || a.status == DNS_NXDOMAIN ||
		a.status == DNS_NODATA)) {
		ttl = dns_answer_ttl(res->answer_packet,
		    res->answer_len > 0 ? (size_t)res->answer_len : 0,
		    a.status != DNS_OK);
		if (ttl > 0) {
			uint64_t now = now_ms();

			dnscache_put(
			    tc->dc, q->name, q->type, &a, (unsigned)ttl, now);
			pthread_mutex_lock(&shared_mtx);
			dnscache_put(
			    shared, q->name, q->type, &a, (unsigned)ttl, now);
			pthread_mutex_unlock(&shared_mtx);
		}
	}
	q->done = 1;
	q->cb(q->arg, &a);
	free(rr);
	free(text);
}

/* On the asking loop: the completion arrives. */
static void
delivery_job(struct loop *l, void *arg)
{
	struct dns_delivery *d = arg;
	struct dns_query    *q = d->q;

	(void)l;
	if (!q->done && !q->cancelled) {
		evtimer_del(q->timer);
		deliver_result(q, d->err, d->res);
	}
	if (d->res != NULL)
		ub_resolve_free(d->res);
	free(d);
	query_free(q);
}

/* On the main loop, from ub_process(): hand the result to its loop. */
static void
ub_done(void *arg, int err, struct ub_result *res)
{
	struct dns_query    *q = arg;
	struct dns_delivery *d = xmalloc(sizeof(*d));

	d->q = q;
	d->err = err;
	d->res = res;
	loop_post(q->loop, delivery_job, d);
}

static void
ub_readable(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	ub_process(ctx);
}

/* The deadline: answer "timeout" now; the late result, if any, is
 * dropped by delivery_job. */
static void
query_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct dns_query *q = arg;

	(void)fd;
	(void)what;
	log_info("event=dns-timeout name=\"%s\" type=%s", q->name,
	    dns_type_name(q->type) ? dns_type_name(q->type) : "?");
	deliver_simple(q, DNS_TIMEOUT, "no answer in time");
	if (ub_cancel(ctx, q->async_id) == 0)
		query_free(q);
}

/* An immediate refusal still answers asynchronously, like any other. */
static void
refusal_job(struct loop *l, void *arg)
{
	struct dns_query *q = arg;

	(void)l;
	if (!q->cancelled)
		deliver_simple(q, DNS_ERROR, q->refused);
	query_free(q);
}

/* On the loop: deliver the answers found in the cache. */
static void
hits_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tcache	 *t = arg;
	struct dns_query *q, *next;
	struct dns_answer a;
	uint64_t	  now = now_ms();

	(void)fd;
	(void)what;
	/* Answers asked for by these callbacks wait for the next round. */
	q = t->hits;
	t->hits = NULL;
	t->hits_tail = &t->hits;
	for (; q != NULL; q = next) {
		next = q->hnext;
		if (!q->cancelled) {
			dnscache_answer(q->hit, now, &a);
			q->done = 1;
			q->cb(q->arg, &a);
		}
		query_free(q);
	}
}

/*
 * The thread's cache missed: the shared level's entry, copied into the
 * thread's and referenced there, or NULL.
 */
static struct dnscache_entry *
shared_get(struct tcache *t, const char *name, int type, uint64_t now)
{
	struct dnscache_entry *se, *e = NULL;

	pthread_mutex_lock(&shared_mtx);
	if ((se = dnscache_get(shared, name, type, now)) != NULL) {
		e = dnscache_copy(t->dc, se, now);
		dnscache_unref(se);
	}
	pthread_mutex_unlock(&shared_mtx);
	if (e != NULL)
		atomic_fetch_add(&shared_hits, 1);
	return e;
}

/* This thread's cache, made at its first question; NULL if disabled or
 * if the thread asks for another loop (not done). */
static struct tcache *
tcache_get(struct loop *l)
{
	struct event_base *base = loop_base(l);

	if (tcache_bytes == 0)
		return NULL;
	if (tc == NULL) {
		tc = xcalloc(1, sizeof(*tc));
		tc->dc =
		    dnscache_new(tcache_bytes, tcache_min_ttl, tcache_max_ttl);
		tc->base = base;
		tc->ev = event_new(base, -1, 0, hits_cb, tc);
		tc->hits_tail = &tc->hits;
	}
	return tc->base == base ? tc : NULL;
}

void
resolver_thread_done(void)
{
	struct dnscache_stats st;
	struct dns_query     *q, *next;

	if (tc == NULL)
		return;
	for (q = tc->hits; q != NULL; q = next) { /* nobody waits now */
		next = q->hnext;
		query_free(q);
	}
	dnscache_stats(tc->dc, &st);
	atomic_fetch_add(&tc_hits, st.hits);
	atomic_fetch_add(&tc_misses, st.misses);
	atomic_fetch_add(&tc_stored, st.stored);
	atomic_fetch_add(&tc_evicted, st.evicted);
	atomic_fetch_add(&tc_expired, st.expired);
	dnscache_free(tc->dc);
	event_free(tc->ev);
	free(tc);
	tc = NULL;
}

struct dns_query *
resolver_query(struct loop *l, const char *name, int type, dns_cb cb, void *arg)
{
	struct dns_query *q;
	struct tcache	 *t;
	struct timeval	  tv;

	if (ctx == NULL)
		return NULL;
	q = xcalloc(1, sizeof(*q));
	q->loop = l;
	q->cb = cb;
	q->arg = arg;
	q->type = type;
	snprintf(q->name, sizeof(q->name), "%s", name);
	atomic_fetch_add(&in_flight, 1);
	q->async_id = -1; /* not (yet) libunbound's */
	if (!dns_name_valid(name))
		q->refused = "bad name";
	else if ((t = tcache_get(l)) != NULL &&
	    ((q->hit = dnscache_get(t->dc, q->name, type, now_ms())) != NULL ||
		(q->hit = shared_get(t, q->name, type, now_ms())) != NULL)) {
		*t->hits_tail = q;
		t->hits_tail = &q->hnext;
		event_active(t->ev, EV_TIMEOUT, 0);
		return q;
	} else if (atomic_load(&in_flight) > max_queries) {
		q->refused = "too many queries in flight";
		log_warn("event=dns-overload in_flight=%ld",
		    (long)atomic_load(&in_flight));
	} else {
		q->timer = evtimer_new(loop_base(l), query_timeout, q);
		if (ub_resolve_async(
			ctx, q->name, type, 1, q, ub_done, &q->async_id) != 0) {
			q->async_id = -1;
			q->refused = "resolver failure";
		}
	}
	if (q->refused != NULL) {
		loop_post(l, refusal_job, q);
		return q;
	}
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	evtimer_add(q->timer, &tv);
	return q;
}

void
resolver_cancel(struct dns_query *q)
{
	if (q == NULL || q->cancelled)
		return;
	q->cancelled = 1;
	if (q->done)
		return; /* timed out: the late completion frees it */
	if (q->timer != NULL)
		evtimer_del(q->timer);
	if (q->async_id >= 0 && ub_cancel(ctx, q->async_id) == 0)
		query_free(q);
	/* else a completion or refusal job is on its way and frees it */
}

int
resolver_init(
    const struct config *cf, struct loop *mainloop, char *err, size_t errlen)
{
	char   size[32];
	size_t i;
	int    rc, loopback = 0;

	max_queries = LIMIT(cf, DNS_MAX_QUERIES);
	timeout_ms = LIMIT(cf, DNS_TIMEOUT);
	tcache_bytes = (size_t)LIMIT(cf, DNS_THREAD_CACHE_SIZE);
	tcache_min_ttl = (unsigned)LIMIT(cf, DNS_THREAD_CACHE_MIN_TTL);
	tcache_max_ttl = (unsigned)LIMIT(cf, DNS_THREAD_CACHE_MAX_TTL);
	if ((ctx = ub_ctx_create()) == NULL) {
		snprintf(err, errlen, "ub_ctx_create failed");
		return -1;
	}
#define SET(opt, val)                                                          \
	do {                                                                   \
		if ((rc = ub_ctx_set_option(ctx, opt, val)) != 0) {            \
			snprintf(err, errlen, "%s %s: %s", opt, val,           \
			    ub_strerror(rc));                                  \
			goto fail;                                             \
		}                                                              \
	} while (0)
	snprintf(size, sizeof(size), "%ld", LIMIT(cf, DNS_CACHE_SIZE) / 3);
	SET("msg-cache-size:", size);
	snprintf(size, sizeof(size), "%ld", LIMIT(cf, DNS_CACHE_SIZE) / 3 * 2);
	SET("rrset-cache-size:", size);
	for (i = 0; i < cf->dns.nforwarders; i++) {
		const char *f = cf->dns.forwarders[i];

		if (strncmp(f, "127.", 4) == 0 || strncmp(f, "::1", 3) == 0)
			loopback = 1;
		if ((rc = ub_ctx_set_fwd(ctx, f)) != 0) {
			snprintf(err, errlen, "dns_forwarders \"%s\": %s", f,
			    ub_strerror(rc));
			goto fail;
		}
	}
	/* unbound never asks localhost unless told to (a forwarder on
	 * loopback is a local resolver, or a test's server). */
	if (loopback)
		SET("do-not-query-localhost:", "no");
	/*
	 * unbound answers some names itself (RFC 6761 "test.", "invalid.",
	 * the RFC 1918 and documentation reverse zones, RFC 6303). With
	 * forwarders, the site's resolver is the one that knows: it may
	 * serve internal reverse zones, or a test's records.
	 */
	if (cf->dns.nforwarders > 0) {
		static const char *const zones[] = { "test.", "invalid.",
			"home.arpa.", "2.0.192.in-addr.arpa.",
			"100.51.198.in-addr.arpa.", "113.0.203.in-addr.arpa.",
			"8.b.d.0.1.0.0.2.ip6.arpa." };
		char			 z[64];

		SET("unblock-lan-zones:", "yes");
		SET("insecure-lan-zones:", "yes");
		for (i = 0; i < nitems(zones); i++) {
			snprintf(z, sizeof(z), "%s transparent", zones[i]);
			SET("local-zone:", z);
		}
	}
	if (cf->dns.trust_anchor != NULL &&
	    (rc = ub_ctx_add_ta_file(ctx, cf->dns.trust_anchor)) != 0) {
		snprintf(err, errlen, "dns_trust_anchor \"%s\": %s",
		    cf->dns.trust_anchor, ub_strerror(rc));
		goto fail;
	}
#undef SET
	if ((rc = ub_ctx_async(ctx, 1)) != 0) {
		snprintf(err, errlen, "ub_ctx_async: %s", ub_strerror(rc));
		goto fail;
	}
	ub_event = event_new(loop_base(mainloop), ub_fd(ctx),
	    EV_READ | EV_PERSIST, ub_readable, NULL);
	event_add(ub_event, NULL);
	shared = dnscache_new(tcache_bytes, tcache_min_ttl, tcache_max_ttl);
	return 0;
fail:
	ub_ctx_delete(ctx);
	ctx = NULL;
	return -1;
}

void
resolver_log_start(const struct config *cf)
{
	log_info("event=dns-start mode=%s forwarders=%zu dnssec=%s "
		 "timeout_ms=%ld cache=%ld thread_cache=%ld",
	    cf->dns.nforwarders ? "forward" : "recursive", cf->dns.nforwarders,
	    cf->dns.trust_anchor ? "yes" : "no", LIMIT(cf, DNS_TIMEOUT),
	    LIMIT(cf, DNS_CACHE_SIZE), LIMIT(cf, DNS_THREAD_CACHE_SIZE));
}

void
resolver_log_stop(void)
{
	log_info("event=dns-stop thread_cache_hits=%llu "
		 "thread_cache_misses=%llu thread_cache_stored=%llu "
		 "thread_cache_evicted=%llu thread_cache_expired=%llu "
		 "shared_cache_hits=%llu",
	    (unsigned long long)atomic_load(&tc_hits),
	    (unsigned long long)atomic_load(&tc_misses),
	    (unsigned long long)atomic_load(&tc_stored),
	    (unsigned long long)atomic_load(&tc_evicted),
	    (unsigned long long)atomic_load(&tc_expired),
	    (unsigned long long)atomic_load(&shared_hits));
}

void
resolver_shutdown(void)
{
	resolver_thread_done(); /* the calling thread's, if it asked */
	if (ub_event != NULL)
		event_free(ub_event);
	ub_event = NULL;
	if (ctx != NULL)
		ub_ctx_delete(ctx);
	ctx = NULL;
	dnscache_free(shared);
	shared = NULL;
}
