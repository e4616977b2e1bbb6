/*
 * rdns.c - the client's forward-confirmed reverse DNS; see rdns.h.
 *
 * PTR first; its answer starts one A/AAAA query per usable name, all in
 * parallel. The result is decided in PTR order: the first name whose
 * addresses include the client's wins, once every name before it has
 * answered (so the same records give the same name whatever order the
 * answers arrive in). One timer bounds the whole lookup.
 *
 * Queries are the resolver's: their callbacks carry pointers into the
 * struct rdns, which is safe because every query still outstanding is
 * cancelled (resolver_cancel: no callback afterwards) when the lookup
 * ends or its owner goes away. Loop thread only. The per-name state
 * exists during the forward lookups only (an idle session keeps just the
 * result).
 */
#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "loop.h"
#include "rdns.h"
#include "resolver.h"
#include "util.h"

enum {
	RDNS_F_PENDING = 0,
	RDNS_F_MATCH,	/* an address record is the client's */
	RDNS_F_NOMATCH, /* answered, none is */
	RDNS_F_TEMP	/* no answer for now */
};

const char *
rdns_status_name(enum filter_client_name st)
{
	switch (st) {
	case FILTER_NAME_VERIFIED:
		return "verified";
	case FILTER_NAME_NONE:
		return "none";
	case FILTER_NAME_MISMATCH:
		return "mismatch";
	case FILTER_NAME_TEMPFAIL:
		return "tempfail";
	default:
		return "unchecked";
	}
}

/*
 * A host name worth confirming: LDH labels (and '_', which real PTR
 * records carry), 1-63 octets each, at most 253 in all, and not numeric
 * in its last label (a PTR "192.0.2.1" must not pass for a name, as
 * Postfix's valid_hostname() says).
 */
static int
hostname_ok(const char *s)
{
	size_t i, label = 0, len = strlen(s);
	int    digits = 1;

	if (len == 0 || len > 253)
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (label == 0)
				return 0;
			label = 0;
			digits = 1;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			(c >= '0' && c <= '9') || c == '-' || c == '_'))
			return 0;
		if (c < '0' || c > '9')
			digits = 0;
		if (++label > 63)
			return 0;
	}
	return label > 0 && !digits;
}

/* Forget every query still out and the deadline. */
static void
rdns_stop(struct rdns *r)
{
	size_t i;

	resolver_cancel(r->ptr_q);
	r->ptr_q = NULL;
	for (i = 0; r->fwd != NULL && i < r->nfwd; i++)
		resolver_cancel(r->fwd[i].q);
	free(r->fwd);
	r->fwd = NULL;
	if (r->timer != NULL)
		event_free(r->timer);
	r->timer = NULL;
	r->running = 0;
}

/* The result is known: stop, then tell the owner (r is not used after). */
static void
rdns_finish(struct rdns *r, enum filter_client_name st, const char *name,
    const char *why)
{
	if (name != NULL) /* before rdns_stop(): it may be in r->fwd */
		snprintf(r->name, sizeof(r->name), "%s", name);
	rdns_stop(r);
	r->status = st;
	r->why = why;
	r->done(r->arg);
}

/* Decide if the answers so far allow it (PTR order, see above). */
static void
rdns_check(struct rdns *r)
{
	size_t i;
	int    temp = 0;

	for (i = 0; i < r->nfwd; i++) {
		switch (r->fwd[i].state) {
		case RDNS_F_PENDING:
			return;
		case RDNS_F_MATCH:
			rdns_finish(
			    r, FILTER_NAME_VERIFIED, r->fwd[i].name, NULL);
			return;
		case RDNS_F_TEMP:
			temp = 1;
			break;
		}
	}
	/* A name not confirmed for now might be tomorrow: 4xx, not 5xx. */
	if (temp)
		rdns_finish(r, FILTER_NAME_TEMPFAIL, NULL, "forward lookup");
	else
		rdns_finish(r, FILTER_NAME_MISMATCH, NULL, NULL);
}

static void
fwd_answer(void *arg, const struct dns_answer *a)
{
	struct rdns_fwd *f = arg;
	struct rdns	*r = f->r;
	size_t		 i, alen = r->family == AF_INET ? 4 : 16;

	f->q = NULL; /* answered: the resolver frees it */
	switch (a->status) {
	case DNS_OK:
		f->state = RDNS_F_NOMATCH;
		for (i = 0; i < a->n; i++)
			if (a->rr[i].rdlen == alen &&
			    memcmp(a->rr[i].rdata, r->addr, alen) == 0)
				f->state = RDNS_F_MATCH;
		break;
	case DNS_NXDOMAIN:
	case DNS_NODATA:
		f->state = RDNS_F_NOMATCH;
		break;
	default:
		f->state = RDNS_F_TEMP;
	}
	rdns_check(r);
}

static void
ptr_answer(void *arg, const struct dns_answer *a)
{
	struct rdns *r = arg;
	size_t	     i, j;
	int	     type = r->family == AF_INET ? DNS_T_A : DNS_T_AAAA;

	r->ptr_q = NULL;
	switch (a->status) {
	case DNS_OK:
		break;
	case DNS_NXDOMAIN:
	case DNS_NODATA:
		rdns_finish(r, FILTER_NAME_NONE, NULL, NULL);
		return;
	default:
		rdns_finish(r, FILTER_NAME_TEMPFAIL, NULL,
		    a->status == DNS_TIMEOUT ? "timeout"
					     : dns_status_name(a->status));
		return;
	}
	r->fwd = xcalloc(RDNS_NAMES_MAX, sizeof(*r->fwd));
	for (i = 0; i < a->n && r->nfwd < RDNS_NAMES_MAX; i++) {
		const char *name = a->rr[i].text;

		if (name == NULL || !hostname_ok(name))
			continue;
		for (j = 0; j < r->nfwd; j++)
			if (ascii_strcasecmp(r->fwd[j].name, name) == 0)
				break;
		if (j < r->nfwd)
			continue; /* the same name twice */
		if (r->nfwd == 0)
			snprintf(r->ptr, sizeof(r->ptr), "%s", name);
		r->fwd[r->nfwd].r = r;
		r->fwd[r->nfwd].state = RDNS_F_PENDING;
		snprintf(
		    r->fwd[r->nfwd].name, sizeof(r->fwd->name), "%s", name);
		r->nfwd++;
	}
	if (r->nfwd == 0) {
		/* PTR records, but no usable host name among them. */
		rdns_finish(r, FILTER_NAME_MISMATCH, NULL, NULL);
		return;
	}
	/* Callbacks never run from resolver_query(): all are out before
	 * the first answer can arrive. */
	for (i = 0; i < r->nfwd; i++)
		if ((r->fwd[i].q = resolver_query(r->loop, r->fwd[i].name, type,
			 fwd_answer, &r->fwd[i])) == NULL)
			r->fwd[i].state = RDNS_F_TEMP;
	rdns_check(r);
}

/* dns_timeout for the whole lookup: a name confirmed already stands
 * (the ones before it in PTR order did not answer), else TEMPFAIL. */
static void
rdns_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct rdns *r = arg;
	size_t	     i;

	(void)fd;
	(void)what;
	for (i = 0; i < r->nfwd; i++)
		if (r->fwd[i].state == RDNS_F_MATCH) {
			rdns_finish(
			    r, FILTER_NAME_VERIFIED, r->fwd[i].name, NULL);
			return;
		}
	rdns_finish(r, FILTER_NAME_TEMPFAIL, NULL, "timeout");
}

int
rdns_start(struct rdns *r, struct loop *l, const struct sockaddr *sa,
    long timeout_ms, void (*done)(void *arg), void *arg)
{
	char	       text[INET6_ADDRSTRLEN], rev[80];
	struct timeval tv = tv_msec(timeout_ms);

	memset(r, 0, sizeof(*r));
	r->loop = l;
	r->done = done;
	r->arg = arg;
	r->t_start = now_usec();
	r->status = FILTER_NAME_UNCHECKED;
	if (sa->sa_family == AF_INET) {
		r->family = AF_INET;
		memcpy(r->addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a6 =
		    &((const struct sockaddr_in6 *)sa)->sin6_addr;

		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			r->family = AF_INET;
			memcpy(r->addr, a6->s6_addr + 12, 4);
		} else {
			r->family = AF_INET6;
			memcpy(r->addr, a6->s6_addr, 16);
		}
	} else
		return 0; /* not an IP client: unchecked */
	if (addr_is_loopback(sa)) {
		r->status = FILTER_NAME_VERIFIED;
		snprintf(r->name, sizeof(r->name), "localhost");
		return 0;
	}
	if (inet_ntop(r->family, r->addr, text, sizeof(text)) == NULL ||
	    dns_reverse_name(text, rev, sizeof(rev)) == -1)
		return 0;
	if ((r->ptr_q = resolver_query(l, rev, DNS_T_PTR, ptr_answer, r)) ==
	    NULL) {
		r->status = FILTER_NAME_TEMPFAIL;
		r->why = "no resolver";
		return 0;
	}
	r->timer = evtimer_new(loop_base(l), rdns_deadline, r);
	evtimer_add(r->timer, &tv);
	r->running = 1;
	return 1;
}

void
rdns_cancel(struct rdns *r)
{
	if (r->running)
		rdns_stop(r);
}
