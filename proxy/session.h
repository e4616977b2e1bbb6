/*
 * session.h - one client connection: the SMTP server side of moat.
 *
 * A session is created by its loop's listener and lives on that loop's
 * thread until it closes; nothing else holds a pointer to it (completions
 * find it by id through the loop's registry).
 */
#ifndef MOAT_SESSION_H
#define MOAT_SESSION_H

#include <stdint.h>
#include <sys/socket.h>

struct loop;
struct listener_conf;
struct chain;

void session_accept(struct loop *, int fd, const struct sockaddr *, int salen,
    const struct listener_conf *);

/* Filter completions find a session's chain run through this. */
struct chain_run *session_chain_run(struct loop *, uint64_t sid);

/* SIGTERM: stop taking new transactions; after drain_timeout, 421 all.
 * Runs on the loop's thread (post it). */
void session_drain_loop(struct loop *, void *arg);

#endif
