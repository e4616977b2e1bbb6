/*
 * rdns.h - the client's reverse DNS, forward-confirmed: the PTR records of
 * its address (RFC 1035 §3.5 in-addr.arpa, RFC 3596 §2.5 ip6.arpa), then
 * the A or AAAA records of each PTR name (at most RDNS_NAMES_MAX, as RFC
 * 7208 §4.6.4 bounds SPF's ptr); a name is confirmed when one of its
 * addresses is the client's. What Postfix calls the verified client name;
 * the statuses keep its distinction between "unknown" for good (550 in
 * reject_unknown_client_hostname) and for now (450).
 *
 * Through moat's resolver (resolver.h) only: asynchronous, on the loop
 * thread that started it. All the forward lookups run in parallel, and the
 * whole lookup has one deadline, dns_timeout: past it the result is
 * TEMPFAIL. Loopback clients are not looked up: they are "localhost".
 *
 * The struct lives in its owner (the session); rdns_cancel() must be called
 * before the owner is freed if a lookup may be running (it is harmless
 * otherwise). The done callback runs at most once, never from rdns_start().
 */
#ifndef MOAT_RDNS_H
#define MOAT_RDNS_H

#include <stdint.h>
#include <sys/socket.h>

#include "filter_api.h"

#define RDNS_NAMES_MAX 10

struct loop;
struct event;
struct dns_query;
struct rdns;

/* One forward lookup: the A/AAAA records of one PTR name. */
struct rdns_fwd {
	struct rdns	 *r;
	struct dns_query *q; /* NULL once answered */
	char		  name[256];
	int		  state; /* RDNS_F_* (rdns.c) */
};

struct rdns {
	struct loop	       *loop;
	int			family; /* AF_INET or AF_INET6 */
	unsigned char		addr[16];
	struct dns_query       *ptr_q;
	struct rdns_fwd	       *fwd;   /* while running: nfwd of them */
	size_t			nfwd;  /* PTR names checked */
	struct event	       *timer; /* the whole lookup's deadline */
	int			running;
	uint64_t		t_start;
	enum filter_client_name status;
	const char	       *why; /* TEMPFAIL: "timeout", "servfail"... */
	char			name[256]; /* confirmed name */
	char			ptr[256];  /* first PTR name */
	void (*done)(void *arg);
	void *arg;
};

/*
 * Start the lookup of sa's name. Returns 1 when it runs (done(arg) will
 * follow, on this loop's thread), 0 when the result is known already
 * (loopback, an address that cannot be looked up, the resolver not
 * running: r->status says which).
 */
int rdns_start(struct rdns *, struct loop *, const struct sockaddr *,
    long timeout_ms, void (*done)(void *arg), void *arg);
/* Stop a running lookup; done will not be called. */
void rdns_cancel(struct rdns *);

/* "verified", "none", "mismatch", "tempfail", "unchecked". */
const char *rdns_status_name(enum filter_client_name);

#endif
