/*
 * upstream.h - moat's SMTP client toward the upstream MTA (RFC 5321 client
 * side, RFC 2920 pipelining, Postfix XCLIENT and XFORWARD).
 *
 * One struct upstream is one connection, owned by one session on that
 * session's loop thread. Commands are queued with a callback each; replies
 * come back in order. Commands are written back to back when the upstream
 * offers PIPELINING, else one at a time. Any failure (connect, timeout,
 * close, malformed or unsolicited reply) kills the connection: every
 * queued callback gets the error, in order, and the owner must then free
 * it. Freeing it from inside a callback is allowed.
 */
#ifndef MOAT_UPSTREAM_H
#define MOAT_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>

#include "reply.h"

struct loop;
struct config;
struct spool;
struct evbuffer;
struct upstream;

enum up_error {
	UP_OK = 0,
	UP_ECONNECT,  /* could not connect */
	UP_EGREETING, /* greeted with something other than 220 */
	UP_ETIMEOUT,
	UP_ECLOSED, /* closed the connection / I/O error */
	UP_EPROTO,  /* malformed, oversized or unsolicited reply */
	UP_ESPOOL,  /* could not read the spooled message */
	UP_ETLS,    /* TLS required and not available, or failed/unverified */
	UP_ECOUNT   /* must stay last */
};

const char *up_strerror(enum up_error);

/* What XCLIENT/XFORWARD tell the upstream about the real client. */
struct upstream_client {
	char addr[64]; /* numeric */
	int  port;
	char helo[256]; /* "" before HELO */
	int  esmtp;	/* EHLO (ESMTP) or HELO (SMTP) */
	int  probe;	/* capability probe: no XCLIENT */
	char name[256]; /* the client's verified name, "" if none */
	int  name_temp; /* none for now: the lookup failed (TEMPUNAVAIL) */
};

/*
 * reply is NULL when err != UP_OK (then the connection is dead), except
 * for UP_EGREETING where it holds the greeting.
 */
typedef void (*upstream_cb)(
    void *arg, const struct smtp_reply *reply, enum up_error err);

struct upstream *upstream_new(
    struct loop *, const struct config *, uint64_t sid);

/*
 * The TLS context toward the upstream (upstream_tls, tls.h), or NULL for
 * none; set once at start-up before any loop runs, owned by the caller.
 * With it, upstream_open() sends STARTTLS after the first EHLO when
 * offered, discards anything the upstream sent after its 220 (response
 * injection), verifies the certificate as configured and says EHLO again;
 * with upstream_tls = required a missing STARTTLS, a 454 or a failed
 * handshake or verification ends the open with UP_ETLS.
 */
struct tls_client;
void upstream_set_tls(struct tls_client *);
void upstream_free(struct upstream *);

/*
 * Connect, read the 220 greeting, EHLO (HELO if EHLO is refused), and
 * XCLIENT + EHLO again when the upstream offers XCLIENT and the
 * configuration allows; cb gets the final EHLO reply.
 */
void upstream_open(
    struct upstream *, const struct upstream_client *, upstream_cb, void *arg);
const struct capa *upstream_capa(const struct upstream *);
int		   upstream_alive(const struct upstream *);

/* Queue one command line (no CRLF). */
void upstream_command(
    struct upstream *, const char *line, upstream_cb, void *arg);
/* The same for an AUTH line or SASL response: never logged, and the
 * copy is wiped once written. */
void upstream_command_secret(
    struct upstream *, const char *line, upstream_cb, void *arg);

/*
 * DATA, then (on 354) prefix (a rewritten header section in wire form, or
 * NULL; owned by the upstream from now on) and the spool from byte off on:
 * it holds the canonical wire form, dot-stuffed and terminated (moved to
 * the socket without a copy). cb gets the DATA reply if it is not 354,
 * else the reply to the final dot.
 */
void upstream_send_message(struct upstream *, struct evbuffer *prefix,
    struct spool *, size_t off, upstream_cb, void *arg);

/*
 * While the client sends a long message the upstream connection is idle:
 * keep it from timing out with a NOOP now and then.
 */
void upstream_keepalive(struct upstream *, int on);

/* Send QUIT and let the connection close by itself; frees `up`. */
void upstream_quit(struct upstream *);
/*
 * Connection reuse. upstream_park() keeps an idle connection (no command
 * outstanding, no transaction open: the caller guarantees the latter) for
 * the next session of this loop, up to upstream_pool_size for
 * upstream_pool_idle; returns 0 when it cannot (then quit it).
 * upstream_unpark() takes one (or NULL); upstream_reuse() introduces the
 * new client (XCLIENT + EHLO where used) and calls cb like upstream_open(),
 * possibly at once.
 */
int		 upstream_park(struct upstream *);
struct upstream *upstream_unpark(uint64_t sid);
void		 upstream_reuse(
		struct upstream *, const struct upstream_client *, upstream_cb, void *arg);

/* Free this thread's connections still waiting for their 221 or parked. */
void upstream_reap_orphans(void);

#endif
