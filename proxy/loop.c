/*
 * loop.c - event-loop threads with a cross-thread job queue and a session
 * registry keyed by session id.
 *
 * Ownership: a loop owns its event_base, its job queue and its registry.
 * Only loop_post() may be called from other threads (the queue is mutexed
 * and the base woken with event_active on a user event, which is safe
 * because evthread_use_pthreads() is called before any base exists).
 */
#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "loop.h"
#include "resolver.h"
#include "tls.h"
#include "upstream.h"
#include "util.h"

struct job {
	struct job *next;
	loop_fn	    fn;
	void	   *arg;
};

struct slot {
	uint64_t sid; /* 0 = empty, UINT64_MAX = deleted */
	void	*session;
};

struct loop {
	unsigned	      index;
	const struct config  *cf;
	struct event_base    *base;
	pthread_t	      thread;
	pthread_mutex_t	      mtx;
	struct job	     *jobs, **jobs_tail;
	struct event	     *wake;
	uint64_t	      next_sid;
	struct slot	     *slots;
	size_t		      nslots, nused, ndeleted;
	struct upstream_state upstream;
};

static void
loop_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct loop *l = arg;
	struct job  *j, *next;

	pthread_mutex_lock(&l->mtx);
	j = l->jobs;
	l->jobs = NULL;
	l->jobs_tail = &l->jobs;
	pthread_mutex_unlock(&l->mtx);
	for (; j != NULL; j = next) {
		next = j->next;
		j->fn(l, j->arg);
		free(j);
	}
}

struct loop *
loop_new(unsigned index, const struct config *cf)
{
	struct loop	    *l = xcalloc(1, sizeof(*l));
	struct event_config *ec;

	l->index = index;
	l->cf = cf;
	/*
	 * The base keeps its lock: loop_post() activates an event from other
	 * threads, which libevent allows only on a locked, notifiable base.
	 * Uncontended, the lock costs next to nothing.
	 */
	if ((ec = event_config_new()) == NULL)
		fatal("event_config_new");
	/* Batch epoll_ctl changes per loop iteration (we never dup fds,
	 * the changelist's one caveat). */
	event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	if ((l->base = event_base_new_with_config(ec)) == NULL)
		fatal("event_base_new");
	event_config_free(ec);
	pthread_mutex_init(&l->mtx, NULL);
	l->jobs_tail = &l->jobs;
	l->wake = event_new(l->base, -1, EV_PERSIST, loop_wake_cb, l);
	evthread_make_base_notifiable(l->base);
	/* Session ids: the loop index in the top bits keeps them unique. */
	l->next_sid = ((uint64_t)index << 48) | 1;
	l->nslots = 1024;
	l->slots = xcalloc(l->nslots, sizeof(*l->slots));
	return l;
}

static void *
loop_main(void *arg)
{
	struct loop *l = arg;

	log_thread_start(l->base);
	event_base_loop(l->base, EVLOOP_NO_EXIT_ON_EMPTY);
	upstream_reap_orphans();
	/* Bufferevents freed in the last pass (an upstream connection closed
	 * with its session, the orphans just reaped) finish freeing in a
	 * deferred callback: give it its turn before the base goes. */
	event_base_loop(l->base, EVLOOP_NONBLOCK);
	resolver_thread_done();
	tls_client_thread_done();
	log_thread_stop();
	return NULL;
}

int
loop_start(struct loop *l)
{
	return pthread_create(&l->thread, NULL, loop_main, l) == 0 ? 0 : -1;
}

void
loop_join(struct loop *l)
{
	pthread_join(l->thread, NULL);
}

void
loop_free(struct loop *l)
{
	struct job *j;

	while ((j = l->jobs) != NULL) {
		l->jobs = j->next;
		free(j);
	}
	event_free(l->wake);
	event_base_free(l->base);
	pthread_mutex_destroy(&l->mtx);
	free(l->slots);
	free(l);
}

unsigned
loop_index(const struct loop *l)
{
	return l->index;
}

struct event_base *
loop_base(struct loop *l)
{
	return l->base;
}

const struct config *
loop_config(struct loop *l)
{
	return l->cf;
}

void
loop_post(struct loop *l, loop_fn fn, void *arg)
{
	struct job *j = xmalloc(sizeof(*j));

	j->next = NULL;
	j->fn = fn;
	j->arg = arg;
	pthread_mutex_lock(&l->mtx);
	*l->jobs_tail = j;
	l->jobs_tail = &j->next;
	pthread_mutex_unlock(&l->mtx);
	event_active(l->wake, EV_READ, 0);
}

uint64_t
loop_new_sid(struct loop *l)
{
	return l->next_sid++;
}

/* Open addressing, linear probing; ids are never 0 nor UINT64_MAX. */
static size_t
slot_hash(uint64_t sid, size_t n)
{
	sid ^= sid >> 33;
	sid *= 0xff51afd7ed558ccdULL;
	sid ^= sid >> 33;
	return (size_t)sid & (n - 1);
}

static void
slots_grow(struct loop *l)
{
	struct slot *old = l->slots;
	size_t	     oldn = l->nslots, i, h;

	if ((l->nused + l->ndeleted + 1) * 2 < l->nslots)
		return;
	if (l->nused * 4 >= l->nslots)
		l->nslots *= 2;
	l->slots = xcalloc(l->nslots, sizeof(*l->slots));
	l->ndeleted = 0;
	for (i = 0; i < oldn; i++) {
		if (old[i].sid == 0 || old[i].sid == UINT64_MAX)
			continue;
		h = slot_hash(old[i].sid, l->nslots);
		while (l->slots[h].sid != 0)
			h = (h + 1) & (l->nslots - 1);
		l->slots[h] = old[i];
	}
	free(old);
}

void
loop_register(struct loop *l, uint64_t sid, void *session)
{
	size_t h;

	slots_grow(l);
	h = slot_hash(sid, l->nslots);
	while (l->slots[h].sid != 0 && l->slots[h].sid != UINT64_MAX)
		h = (h + 1) & (l->nslots - 1);
	if (l->slots[h].sid == UINT64_MAX)
		l->ndeleted--;
	l->slots[h].sid = sid;
	l->slots[h].session = session;
	l->nused++;
}

static struct slot *
slot_find(struct loop *l, uint64_t sid)
{
	size_t h = slot_hash(sid, l->nslots);

	while (l->slots[h].sid != 0) {
		if (l->slots[h].sid == sid)
			return &l->slots[h];
		h = (h + 1) & (l->nslots - 1);
	}
	return NULL;
}

void
loop_unregister(struct loop *l, uint64_t sid)
{
	struct slot *s = slot_find(l, sid);

	if (s == NULL)
		return;
	s->sid = UINT64_MAX;
	s->session = NULL;
	l->nused--;
	l->ndeleted++;
}

void *
loop_find(struct loop *l, uint64_t sid)
{
	struct slot *s;

	if (sid == 0 || sid == UINT64_MAX)
		return NULL;
	s = slot_find(l, sid);
	return s ? s->session : NULL;
}

size_t
loop_nsessions(struct loop *l)
{
	return l->nused;
}

void
loop_foreach(struct loop *l, void (*fn)(void *))
{
	size_t	     i, n = l->nslots;
	struct slot *snap;
	size_t	     k = 0;

	/* Snapshot: fn may unregister (and the table may not grow). */
	snap = xcalloc(l->nused + 1, sizeof(*snap));
	for (i = 0; i < n; i++)
		if (l->slots[i].sid != 0 && l->slots[i].sid != UINT64_MAX)
			snap[k++] = l->slots[i];
	for (i = 0; i < k; i++)
		if (loop_find(l, snap[i].sid) == snap[i].session)
			fn(snap[i].session);
	free(snap);
}

const struct upstream_state *
loop_upstream(struct loop *l)
{
	return &l->upstream;
}

void
loop_set_upstream(struct loop *l, const struct upstream_state *st)
{
	l->upstream = *st;
}
