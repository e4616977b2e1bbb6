/*
 * probe.c - periodic upstream capability probe.
 *
 * Connects like a session would (greeting, EHLO; never XCLIENT), records
 * the capabilities and whether the upstream answered, and posts a copy to
 * every loop (loop_set_upstream on the loop's own thread), so sessions read
 * them without locks. Everything here runs on the main loop's thread,
 * except probe_kick(), which only posts.
 */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "loop.h"
#include "probe.h"
#include "upstream.h"
#include "util.h"

#define PROBE_RETRY_DOWN 5 /* seconds between probes while down */

struct probe {
	struct loop	    *main;
	struct loop	   **loops;
	unsigned	     nloops;
	const struct config *cf;
	struct event	    *timer;
	struct upstream	    *up;
	int		     last_up;
	int		     known;
};

struct probe *the_probe;

static void
publish_on_loop(struct loop *l, void *arg)
{
	struct upstream_state *st = arg;

	loop_set_upstream(l, st);
	free(st);
}

static void
probe_publish(struct probe *p, int up, const struct capa *capa)
{
	struct upstream_state st, *copy;
	unsigned	      i;

	memset(&st, 0, sizeof(st));
	st.known = 1;
	st.up = up;
	if (capa != NULL)
		st.capa = *capa;
	for (i = 0; i < p->nloops; i++) {
		copy = xmalloc(sizeof(*copy));
		*copy = st;
		loop_post(p->loops[i], publish_on_loop, copy);
	}
	if (!p->known || p->last_up != up)
		log_info("event=upstream-%s upstream=%s size=%llu "
			 "pipelining=%d xclient=%d xforward=%d",
		    up ? "up" : "down", p->cf->upstream_spec,
		    capa ? (unsigned long long)capa->size : 0ULL,
		    capa ? !!(capa->flags & CAPA_PIPELINING) : 0,
		    capa ? !!(capa->flags & CAPA_XCLIENT) : 0,
		    capa ? !!(capa->flags & CAPA_XFORWARD) : 0);
	p->known = 1;
	p->last_up = up;
}

static void
probe_schedule(struct probe *p)
{
	struct timeval tv;
	long	       iv = LIMIT(p->cf, UPSTREAM_PROBE_INTERVAL);

	if (!p->last_up && iv > PROBE_RETRY_DOWN)
		iv = PROBE_RETRY_DOWN;
	tv = tv_sec(iv);
	evtimer_add(p->timer, &tv);
}

static void
probe_done(void *arg, const struct smtp_reply *r, enum up_error err)
{
	struct probe	*p = arg;
	struct upstream *up = p->up;

	p->up = NULL;
	if (err == UP_OK) {
		probe_publish(p, 1, upstream_capa(up));
		upstream_quit(up);
	} else {
		log_warn("event=upstream-probe-failed upstream=%s error=\"%s\"",
		    p->cf->upstream_spec, up_strerror(err));
		probe_publish(p, 0, NULL);
		upstream_free(up);
	}
	probe_schedule(p);
}

static void
probe_run(evutil_socket_t fd, short what, void *arg)
{
	struct probe	      *p = arg;
	struct upstream_client c;

	if (p->up != NULL)
		return;
	memset(&c, 0, sizeof(c));
	strcpy(c.addr, "127.0.0.1");
	c.esmtp = 1;
	c.probe = 1;
	p->up = upstream_new(p->main, p->cf, 0);
	upstream_open(p->up, &c, probe_done, p);
}

struct probe *
probe_start(struct loop *mainloop, struct loop **loops, unsigned nloops,
    const struct config *cf)
{
	struct probe *p = xcalloc(1, sizeof(*p));

	p->main = mainloop;
	p->loops = loops;
	p->nloops = nloops;
	p->cf = cf;
	p->last_up = 1;
	p->timer = evtimer_new(loop_base(mainloop), probe_run, p);
	probe_run(-1, 0, p);
	return p;
}

static void
kick_on_main(struct loop *l, void *arg)
{
	struct probe *p = arg;

	if (p->up == NULL) {
		evtimer_del(p->timer);
		probe_run(-1, 0, p);
	}
}

void
probe_kick(struct probe *p)
{
	if (p != NULL)
		loop_post(p->main, kick_on_main, p);
}

void
probe_stop(struct probe *p)
{
	if (p == NULL)
		return;
	event_free(p->timer);
	upstream_free(p->up);
	free(p);
}
