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
 * Record decoding is dnsrr.c's.
 */
#include <arpa/inet.h>
#include <event2/event.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unbound.h>

#include "config.h"
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
};

/* A completion travelling from the main loop to the asking loop. */
struct dns_delivery {
	struct dns_query *q;
	int		  err;
	struct ub_result *res;
};

static struct ub_ctx *ctx;
static struct event  *ub_event;
static atomic_long    in_flight;
static long	      max_queries;
static long	      timeout_ms;

/* ---------------------------------------------------------- delivery */

static void
query_free(struct dns_query *q)
{
	if (q->timer != NULL)
		event_free(q->timer);
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
	size_t		   n = 0, used = 0, i;
	long		   len;

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
	text = xmalloc(DNS_TEXT_MAX);
	for (i = 0; i < n; i++) {
		rr[i].rdata = (const unsigned char *)res->data[i];
		rr[i].rdlen = (size_t)res->len[i];
		len = dns_rdata_text(q->type, rr[i].rdata, rr[i].rdlen,
		    text + used, DNS_TEXT_MAX - used, &rr[i].pref);
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

struct dns_query *
resolver_query(struct loop *l, const char *name, int type, dns_cb cb, void *arg)
{
	struct dns_query *q;
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
	else if (atomic_load(&in_flight) > max_queries) {
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
		 "timeout_ms=%ld cache=%ld",
	    cf->dns.nforwarders ? "forward" : "recursive", cf->dns.nforwarders,
	    cf->dns.trust_anchor ? "yes" : "no", LIMIT(cf, DNS_TIMEOUT),
	    LIMIT(cf, DNS_CACHE_SIZE));
}

void
resolver_shutdown(void)
{
	if (ub_event != NULL)
		event_free(ub_event);
	ub_event = NULL;
	if (ctx != NULL)
		ub_ctx_delete(ctx);
	ctx = NULL;
}
