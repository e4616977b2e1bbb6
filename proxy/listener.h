/*
 * listener.h - listening sockets. The main thread creates and binds every
 * socket before privileges are dropped (one socket per listener per loop,
 * SO_REUSEPORT, so the kernel spreads connections over the loops without
 * a shared accept lock); each loop then accepts on its own sockets.
 */
#ifndef MOAT_LISTENER_H
#define MOAT_LISTENER_H

struct config;
struct loop;
struct listener_set;

/* Bind cf's listeners, nloops sockets each. NULL + message on failure. */
struct listener_set *listeners_bind(const struct config *, unsigned nloops);

/* Start accepting on loop i's sockets (called on any thread before the
 * loop runs). */
void listeners_attach(struct listener_set *, unsigned i, struct loop *);

/* Stop accepting everywhere (loop threads: posts to each loop). */
void listeners_close(
    struct listener_set *, struct loop **loops, unsigned nloops);

/* After the loops have stopped. */
void listeners_free(struct listener_set *);

#endif
