/*
 * listener.c - bound sockets and per-loop evconnlistener objects.
 *
 * Ownership: the listener_set owns the fds until listeners_attach hands
 * each to an evconnlistener (LEV_OPT_CLOSE_ON_FREE) owned by that loop.
 * evconnlisteners are only touched on their loop's thread.
 * On EMFILE/ENFILE the listener pauses one second instead of spinning.
 */
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "escape.h"
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "session.h"
#include "util.h"

struct lsock {
	struct listener_set	   *set;
	const struct listener_conf *lc;
	struct loop		   *loop;
	int			    fd;
	struct evconnlistener	   *evl;
	struct event		   *pause;
};

struct listener_set {
	unsigned      nloops, nlisteners;
	struct lsock *socks; /* [listener][loop] */
};

/*
 * Each loop thread gets its own socket on the port (SO_REUSEPORT), which
 * would also let another process of the same user bind the port and take
 * a share of the connections unnoticed (a second moatd by mistake). A
 * plain bind first, without SO_REUSEPORT, fails when anyone listens there.
 * Start-up only: moatd binds its listeners once.
 */
static int
address_taken(const struct listener_conf *lc)
{
	int fd, on = 1, taken;

	fd = socket(lc->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return 0; /* the real socket() will say why */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (lc->ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
	taken = bind(fd, (const struct sockaddr *)&lc->ss, lc->sslen) == -1 &&
	    errno == EADDRINUSE;
	close(fd);
	return taken;
}

struct listener_set *
listeners_bind(const struct config *cf, unsigned nloops)
{
	struct listener_set	   *set = xcalloc(1, sizeof(*set));
	const struct listener_conf *lc;
	struct lsock		   *ls;
	unsigned		    i, j;
	int			    fd, on = 1;

	set->nloops = nloops;
	set->nlisteners = cf->nlisteners;
	set->socks = xcalloc(cf->nlisteners * nloops, sizeof(*set->socks));
	for (i = 0; i < cf->nlisteners; i++) {
		lc = &cf->listeners[i];
		if (address_taken(lc)) {
			errno = EADDRINUSE;
			goto fail;
		}
		for (j = 0; j < nloops; j++) {
			ls = &set->socks[i * nloops + j];
			ls->set = set;
			ls->lc = lc;
			fd = socket(lc->ss.ss_family,
			    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
			if (fd == -1)
				goto fail;
			ls->fd = fd;
			setsockopt(
			    fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
			setsockopt(
			    fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on));
			if (lc->ss.ss_family == AF_INET6)
				setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on,
				    sizeof(on));
			if (bind(fd, (const struct sockaddr *)&lc->ss,
				lc->sslen) == -1 ||
			    listen(fd, (int)LIMIT(cf, LISTEN_BACKLOG)) == -1)
				goto fail;
		}
	}
	return set;
fail:
	fprintf(stderr, "moatd: listen %s: %s\n", lc->spec, strerror(errno));
	for (i = 0; i < cf->nlisteners * nloops; i++)
		if (set->socks[i].fd > 0)
			close(set->socks[i].fd);
	free(set->socks);
	free(set);
	return NULL;
}

static void
accept_cb(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct lsock *ls = arg;
	int	      on = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	session_accept(ls->loop, fd, sa, salen, ls->lc);
}

static void
resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lsock *ls = arg;

	if (ls->evl != NULL)
		evconnlistener_enable(ls->evl);
}

static void
accept_error_cb(struct evconnlistener *evl, void *arg)
{
	struct lsock  *ls = arg;
	struct timeval tv = tv_sec(1);
	int	       e = EVUTIL_SOCKET_ERROR();

	log_warn("event=accept-error listener=%s error=\"%s\"", ls->lc->spec,
	    strerror(e));
	if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
		evconnlistener_disable(evl);
		evtimer_add(ls->pause, &tv);
	}
}

void
listeners_attach(struct listener_set *set, unsigned i, struct loop *l)
{
	struct lsock *ls;
	unsigned      k;

	for (k = 0; k < set->nlisteners; k++) {
		ls = &set->socks[k * set->nloops + i];
		ls->loop = l;
		ls->evl = evconnlistener_new(loop_base(l), accept_cb, ls,
		    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, ls->fd);
		if (ls->evl == NULL)
			fatal("evconnlistener_new");
		evconnlistener_set_error_cb(ls->evl, accept_error_cb);
		ls->pause = evtimer_new(loop_base(l), resume_cb, ls);
	}
}

struct close_job {
	struct listener_set *set;
	unsigned	     i;
};

static void
close_on_loop(struct loop *l, void *arg)
{
	struct close_job *cj = arg;
	struct lsock	 *ls;
	unsigned	  k;

	for (k = 0; k < cj->set->nlisteners; k++) {
		ls = &cj->set->socks[k * cj->set->nloops + cj->i];
		if (ls->evl != NULL) {
			evconnlistener_free(ls->evl);
			ls->evl = NULL;
		}
		if (ls->pause != NULL) {
			event_free(ls->pause);
			ls->pause = NULL;
		}
	}
	free(cj);
}

void
listeners_close(struct listener_set *set, struct loop **loops, unsigned nloops)
{
	struct close_job *cj;
	unsigned	  i;

	for (i = 0; i < nloops; i++) {
		cj = xmalloc(sizeof(*cj));
		cj->set = set;
		cj->i = i;
		loop_post(loops[i], close_on_loop, cj);
	}
}

void
listeners_free(struct listener_set *set)
{
	unsigned i;

	if (set == NULL)
		return;
	for (i = 0; i < set->nlisteners * set->nloops; i++) {
		if (set->socks[i].evl != NULL)
			evconnlistener_free(set->socks[i].evl);
		if (set->socks[i].pause != NULL)
			event_free(set->socks[i].pause);
	}
	free(set->socks);
	free(set);
}
