/*
 * loop.h - event-loop threads. Each loop owns one event_base and the
 * sessions accepted on it, from accept to close; no other thread touches
 * them. Other threads reach a loop only through loop_post(), which runs a
 * function on the loop's thread.
 *
 * Sessions are registered by 64-bit id so that late, asynchronous
 * completions (filters, workers) find their session by id, never through a
 * stale pointer (loop_find returns NULL for a session that is gone).
 */
#ifndef MOAT_LOOP_H
#define MOAT_LOOP_H

#include <stddef.h>
#include <stdint.h>

#include "reply.h"

struct event_base;
struct config;
struct loop;

typedef void (*loop_fn)(struct loop *, void *arg);

struct loop *loop_new(unsigned index, const struct config *);
int	     loop_start(struct loop *); /* spawn its thread */
void	     loop_join(struct loop *);
void	     loop_free(struct loop *);

struct event_base   *loop_base(struct loop *);
/* The index given to loop_new (session loops 0..n-1, the main loop n). */
unsigned	     loop_index(const struct loop *);
const struct config *loop_config(struct loop *);

/* Run fn(loop, arg) on the loop's thread; callable from any thread. */
void loop_post(struct loop *, loop_fn fn, void *arg);

/* Session registry (loop thread only). */
uint64_t loop_new_sid(struct loop *);
void	 loop_register(struct loop *, uint64_t sid, void *session);
void	 loop_unregister(struct loop *, uint64_t sid);
void	*loop_find(struct loop *, uint64_t sid);
size_t	 loop_nsessions(struct loop *);
/* Call fn for every registered session (fn may unregister it). */
void loop_foreach(struct loop *, void (*fn)(void *session));

/*
 * The upstream's capabilities as last probed (loop thread only; updated
 * by loop_post from the prober). up == 0 while the upstream is unreachable.
 */
struct upstream_state {
	int	    known; /* a probe has completed */
	int	    up;
	struct capa capa;
};
const struct upstream_state *loop_upstream(struct loop *);
void loop_set_upstream(struct loop *, const struct upstream_state *);

#endif
