/*
 * probe.h - learns the upstream's EHLO capabilities at start and every
 * upstream_probe_interval (every 5 s while it is unreachable), and
 * publishes them to every loop. Runs on the main thread's loop.
 */
#ifndef MOAT_PROBE_H
#define MOAT_PROBE_H

struct loop;
struct config;
struct probe;

struct probe *probe_start(struct loop *mainloop, struct loop **loops,
    unsigned nloops, const struct config *);
/* Ask for an early probe (any thread: posts to the main loop). */
void probe_kick(struct probe *);
void probe_stop(struct probe *);

extern struct probe *the_probe;

#endif
