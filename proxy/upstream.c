/*
 * upstream.c - SMTP client state machine toward the upstream MTA.
 *
 * RFC 5321 §3-4 (client side), RFC 2920 (pipelining: commands are written
 * back to back only when the upstream advertised PIPELINING), Postfix
 * XCLIENT_README (XCLIENT, then EHLO again) and XFORWARD_README (before
 * each MAIL).
 *
 * Ownership: the session owns its upstream; queued callbacks belong to the
 * session and are never called after upstream_free(). The connection is
 * used only on the owning loop's thread.
 *
 * Response injection: a reply that arrives while no command is waiting for
 * one is a protocol error and kills the connection, so an upstream can
 * never make moat answer a command it has not yet sent.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "escape.h"
#include "log.h"
#include "loop.h"
#include "smtp_parse.h"
#include "spool.h"
#include "tls.h"
#include "upstream.h"
#include "util.h"

#define UP_QUEUE_MAX 64
#define UP_KEEPALIVE 60 /* NOOP interval while the client sends */

enum up_state { UP_S_NEW = 0, UP_S_OPENING, UP_S_READY, UP_S_DEAD };

enum exp_kind {
	EXP_USER = 0, /* hand the reply to the caller */
	EXP_GREETING,
	EXP_EHLO,
	EXP_HELO,
	EXP_XCLIENT,
	EXP_XCLIENT_EHLO,
	EXP_XFORWARD,
	EXP_DATA,  /* 354 starts the content */
	EXP_FINAL, /* reply to the final dot */
	EXP_NOOP,  /* keepalive */
	EXP_QUIT,
	EXP_STARTTLS
};

struct expect {
	enum exp_kind kind;
	char	     *line;   /* to send; NULL once sent/none */
	int	      secret; /* SASL: never logged, wiped when freed */
	upstream_cb   cb;
	void	     *arg;
};

static void q_line_free(struct expect *);

struct upstream {
	struct loop	      *loop;
	const struct config   *cf;
	uint64_t	       sid;
	struct bufferevent    *bev;
	enum up_state	       state;
	struct capa	       capa;
	struct upstream_client client;
	int		       use_xforward;
	int		       ehlo;	/* capa is from an EHLO reply */
	int		       opening; /* open_cb not called yet */
	int		       quitting;
	SSL		      *ssl;	  /* owned by bev */
	int		       tls_start; /* 220 to STARTTLS: switch now */
	int		       tls_done;  /* handshake verified */

	struct expect q[UP_QUEUE_MAX];
	size_t	      qhead, qlen; /* ring */
	size_t	      nsent;	   /* sent, awaiting reply */

	struct smtp_reply reply; /* being accumulated */

	upstream_cb open_cb;
	void	   *open_arg;

	struct spool	*spool;	 /* sent after the 354 */
	struct evbuffer *prefix; /* new header section, or NULL */
	size_t		 spool_off;

	struct event	*keepalive;
	struct upstream *orphan_next, **orphan_prev;
	struct upstream *pool_next, **pool_prev; /* parked */
	int		 busy;			 /* inside callbacks */
	int		 freed;			 /* free when !busy */
};

static const char *const up_errors[UP_ECOUNT] = { "ok",
	"connection refused or unreachable", "upstream refused the session",
	"upstream timed out", "upstream closed the connection",
	"upstream protocol error", "spool read error",
	"upstream TLS unavailable or failed" };

static struct tls_client *up_tls;

void
upstream_set_tls(struct tls_client *tc)
{
	up_tls = tc;
}

const char *
up_strerror(enum up_error e)
{
	return e < UP_ECOUNT ? up_errors[e] : "unknown";
}

static void up_read_cb(struct bufferevent *, void *);
static void up_write_cb(struct bufferevent *, void *);
static void up_event_cb(struct bufferevent *, short, void *);
static void up_fail(struct upstream *, enum up_error);
static void up_flush_queue(struct upstream *);

struct upstream *
upstream_new(struct loop *l, const struct config *cf, uint64_t sid)
{
	struct upstream *up = xcalloc(1, sizeof(*up));

	up->loop = l;
	up->cf = cf;
	up->sid = sid;
	reply_init(&up->reply);
	return up;
}

/*
 * Connections that were sent QUIT belong to nobody; they free themselves on
 * the 221, a close or a 10 s timeout, and the loop frees the rest when it
 * stops. One list per loop thread.
 */
static __thread struct upstream *orphans;

/*
 * Idle connections parked for the next session on the same loop (as
 * Postfix's smtp client caches connections): they save the connect,
 * greeting, EHLO and QUIT of every session. One list per loop thread.
 */
static __thread struct upstream *pool;
static __thread size_t		 pool_n;

static void
pool_unlink(struct upstream *up)
{
	if (up->pool_prev == NULL)
		return;
	if ((*up->pool_prev = up->pool_next) != NULL)
		up->pool_next->pool_prev = up->pool_prev;
	up->pool_prev = NULL;
	up->pool_next = NULL;
	pool_n--;
}

void
upstream_reap_orphans(void)
{
	while (orphans != NULL)
		upstream_free(orphans);
	while (pool != NULL)
		upstream_free(pool);
}

static void
up_really_free(struct upstream *up)
{
	size_t i;

	if (up->orphan_prev != NULL) {
		if ((*up->orphan_prev = up->orphan_next) != NULL)
			up->orphan_next->orphan_prev = up->orphan_prev;
	}
	pool_unlink(up);
	/* A verified connection's TLS session stays resumable even without a
	 * close_notify exchange (OpenSSL spoils it otherwise): SMTP ends the
	 * connection itself, with QUIT. */
	if (up->ssl != NULL && up->tls_done)
		SSL_set_shutdown(
		    up->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
	if (up->prefix != NULL)
		evbuffer_free(up->prefix);

	for (i = 0; i < up->qlen; i++)
		q_line_free(&up->q[(up->qhead + i) % UP_QUEUE_MAX]);
	if (up->keepalive != NULL)
		event_free(up->keepalive);
	if (up->bev != NULL)
		bufferevent_free(up->bev);
	free(up);
}

void
upstream_free(struct upstream *up)
{
	if (up == NULL)
		return;
	if (up->busy) {
		up->freed = 1;
		up->state = UP_S_DEAD;
		return;
	}
	up_really_free(up);
}

const struct capa *
upstream_capa(const struct upstream *up)
{
	return &up->capa;
}

int
upstream_alive(const struct upstream *up)
{
	return up->state == UP_S_READY;
}

static void
set_read_timeout(struct upstream *up, long sec)
{
	struct timeval r = tv_sec(sec), w = tv_sec(sec);

	bufferevent_set_timeouts(up->bev, &r, &w);
}

/* Free a queued line; a secret one is wiped first. */
static void
q_line_free(struct expect *e)
{
	if (e->line != NULL && e->secret)
		explicit_bzero(e->line, strlen(e->line));
	free(e->line);
	e->line = NULL;
}

static struct expect *
q_push(struct upstream *up, enum exp_kind kind, const char *line,
    upstream_cb cb, void *arg)
{
	struct expect *e;

	if (up->qlen == UP_QUEUE_MAX)
		fatal("upstream queue overflow"); /* a session bug */
	e = &up->q[(up->qhead + up->qlen) % UP_QUEUE_MAX];
	up->qlen++;
	e->kind = kind;
	e->line = line ? xstrdup(line) : NULL;
	e->secret = 0;
	e->cb = cb;
	e->arg = arg;
	return e;
}

/* Write the output now; enable the write event only if the kernel is full
 * (see session_flush). */
static void
up_flush_out(struct upstream *up)
{
	struct evbuffer *out = bufferevent_get_output(up->bev);

	if (evbuffer_get_length(out) == 0)
		return;
	if (up->ssl != NULL) {
		bufferevent_enable(up->bev, EV_WRITE);
		return;
	}
	if (!(bufferevent_get_enabled(up->bev) & EV_WRITE)) {
		evbuffer_unfreeze(out, 1); /* see session_flush() */
		evbuffer_write(out, bufferevent_getfd(up->bev));
		evbuffer_freeze(out, 1);
	}
	if (evbuffer_get_length(out) > 0)
		bufferevent_enable(up->bev, EV_WRITE);
}

/* Write queued commands: all of them when pipelining, else one. */
static void
up_flush_queue(struct upstream *up)
{
	struct evbuffer *out;
	struct expect	*e;
	int		 pipelining =
	    (up->capa.flags & CAPA_PIPELINING) != 0 && up->state == UP_S_READY;

	if (up->state == UP_S_DEAD || up->bev == NULL)
		return;
	out = bufferevent_get_output(up->bev);
	if (up->nsent < up->qlen && up->state == UP_S_READY)
		set_read_timeout(up, LIMIT(up->cf, UPSTREAM_COMMAND_TIMEOUT));
	while (up->nsent < up->qlen) {
		if (up->nsent > 0 && !pipelining)
			break;
		e = &up->q[(up->qhead + up->nsent) % UP_QUEUE_MAX];
		/* The final reply is awaited only once 354 came. */
		if (e->kind == EXP_FINAL)
			break;
		if (e->line != NULL) {
			evbuffer_add(out, e->line, strlen(e->line));
			evbuffer_add(out, "\r\n", 2);
			log_debug(
			    "event=upstream-send sid=%016llx line=\"%.300s\"",
			    (unsigned long long)up->sid,
			    e->secret ? "(SASL)" : e->line);
			q_line_free(e);
		}
		up->nsent++;
		/* DATA must end a pipelined group (RFC 2920 §3.1). */
		if (e->kind == EXP_DATA || e->kind == EXP_QUIT)
			break;
	}
	up_flush_out(up);
}

static void
up_send(struct upstream *up, enum exp_kind kind, const char *line,
    upstream_cb cb, void *arg)
{
	q_push(up, kind, line, cb, arg);
	up_flush_queue(up);
}

static void
up_ready(struct upstream *up, const struct smtp_reply *r)
{
	up->state = UP_S_READY;
	up->opening = 0;
	/* Nothing awaited yet: no clock (up_flush_queue starts it). */
	bufferevent_set_timeouts(up->bev, NULL, NULL);
	up->busy++;
	up->open_cb(up->open_arg, r, UP_OK);
	up->busy--;
}

/*
 * The NAME attribute: the client's verified name, or [UNAVAILABLE]; for
 * XCLIENT, [TEMPUNAVAIL] when the lookup failed for now (XCLIENT_README:
 * the upstream's reject_unknown_client_hostname then answers 450 or 550
 * as if it had looked the name up itself). XFORWARD only logs it.
 */
static const char *
client_name(const struct upstream *up, int xclient, char *buf, size_t len)
{
	if (up->client.name[0] != '\0' &&
	    smtp_xtext_encode(up->client.name, buf, len) != -1)
		return buf;
	return xclient && up->client.name_temp ? "[TEMPUNAVAIL]"
					       : "[UNAVAILABLE]";
}

static void
up_send_xclient(struct upstream *up)
{
	char   line[2048], val[800], attrs[CAPA_XATTR_MAX + 2];
	size_t n;

	snprintf(attrs, sizeof(attrs), " %s ", up->capa.xclient);
	n = (size_t)snprintf(line, sizeof(line), "XCLIENT");
#define HAS(a) (strstr(attrs, " " a " ") != NULL)
	if (HAS("ADDR")) {
		if (strchr(up->client.addr, ':') != NULL)
			snprintf(val, sizeof(val), "IPV6:%s", up->client.addr);
		else
			snprintf(val, sizeof(val), "%s", up->client.addr);
		n += snprintf(line + n, sizeof(line) - n, " ADDR=%s", val);
	}
	if (HAS("PORT"))
		n += snprintf(
		    line + n, sizeof(line) - n, " PORT=%d", up->client.port);
	if (HAS("NAME"))
		n += snprintf(line + n, sizeof(line) - n, " NAME=%s",
		    client_name(up, 1, val, sizeof(val)));
	if (HAS("PROTO"))
		n += snprintf(line + n, sizeof(line) - n, " PROTO=%s",
		    up->client.esmtp ? "ESMTP" : "SMTP");
	if (HAS("HELO")) {
		if (up->client.helo[0] == '\0')
			strcpy(val, "[UNAVAILABLE]");
		else if (smtp_xtext_encode(up->client.helo, val, sizeof(val)) ==
		    -1)
			strcpy(val, "[UNAVAILABLE]");
		n += snprintf(line + n, sizeof(line) - n, " HELO=%s", val);
	}
#undef HAS
	up_send(up, EXP_XCLIENT, line, NULL, NULL);
}

/*
 * XCLIENT is worth using only when it can carry the client address
 * (smtp-sink, for one, offers just NAME and HELO); otherwise XFORWARD.
 */
static int
xclient_has_addr(const struct capa *c)
{
	char attrs[CAPA_XATTR_MAX + 2];

	if (!(c->flags & CAPA_XCLIENT))
		return 0;
	snprintf(attrs, sizeof(attrs), " %s ", c->xclient);
	return strstr(attrs, " ADDR ") != NULL;
}

/* Replies to the handshake commands. */
static void
up_internal_reply(
    struct upstream *up, enum exp_kind kind, const struct smtp_reply *r)
{
	char line[512];

	switch (kind) {
	case EXP_GREETING:
		if (r->code != 220) {
			up->state = UP_S_DEAD;
			up->opening = 0;
			up->busy++;
			up->open_cb(up->open_arg, r, UP_EGREETING);
			up->busy--;
			return;
		}
		snprintf(line, sizeof(line), "EHLO %s", up->cf->hostname);
		up_send(up, EXP_EHLO, line, NULL, NULL);
		return;
	case EXP_EHLO:
	case EXP_XCLIENT_EHLO:
		if (r->code / 100 != 2) {
			if (kind == EXP_EHLO && r->code / 100 == 5) {
				snprintf(line, sizeof(line), "HELO %s",
				    up->cf->hostname);
				up_send(up, EXP_HELO, line, NULL, NULL);
				return;
			}
			up_fail(up, UP_EPROTO);
			return;
		}
		memset(&up->capa, 0, sizeof(up->capa));
		capa_parse(r, &up->capa);
		up->ehlo = 1;
		if (kind == EXP_EHLO && up_tls != NULL && !up->tls_done) {
			if (up->capa.flags & CAPA_STARTTLS) {
				up_send(
				    up, EXP_STARTTLS, "STARTTLS", NULL, NULL);
				return;
			}
			if (up->cf->tls.up_mode == UTLS_REQUIRED) {
				log_warn("event=upstream-tls-failed "
					 "sid=%016llx reason=\"STARTTLS not "
					 "offered\"",
				    (unsigned long long)up->sid);
				up_fail(up, UP_ETLS);
				return;
			}
		}
		if (kind == EXP_EHLO && up->cf->xclient == XCLIENT_AUTO &&
		    !up->client.probe && xclient_has_addr(&up->capa)) {
			up_send_xclient(up);
			return;
		}
		if (kind == EXP_EHLO && up->cf->xclient != XCLIENT_OFF &&
		    (up->capa.flags & CAPA_XFORWARD))
			up->use_xforward = 1;
		up_ready(up, r);
		return;
	case EXP_HELO:
		if (r->code / 100 != 2) {
			up_fail(up, UP_EPROTO);
			return;
		}
		memset(&up->capa, 0, sizeof(up->capa));
		up->ehlo = 0; /* not reusable: capabilities unknown */
		up_ready(up, r);
		return;
	case EXP_XCLIENT:
		/* 220 (XCLIENT_README), or 250 from older implementations. */
		if (r->code / 100 != 2) {
			/* Not authorised: carry on without (transparency
			 * lost, mail not). */
			log_warn("event=xclient-refused sid=%016llx code=%d "
				 "text=\"%.100s\"",
			    (unsigned long long)up->sid, r->code,
			    reply_line_text(r, 0));
			if (up->cf->xclient != XCLIENT_OFF &&
			    (up->capa.flags & CAPA_XFORWARD))
				up->use_xforward = 1;
			up_ready(up, r);
			return;
		}
		/*
		 * XCLIENT reset the upstream's session to the client's: greet
		 * with the client's own HELO name, or the upstream's EHLO
		 * would replace it (Received:, HELO restrictions).
		 */
		snprintf(line, sizeof(line), "%s %s",
		    up->client.esmtp ? "EHLO" : "HELO",
		    up->client.helo[0] != '\0' ? up->client.helo
					       : up->cf->hostname);
		/* A HELO client can use no extension: HELO keeps the
		 * upstream's view (protocol SMTP) exact. */
		up_send(up, up->client.esmtp ? EXP_XCLIENT_EHLO : EXP_HELO,
		    line, NULL, NULL);
		return;
	case EXP_XFORWARD:
		if (r->code / 100 != 2)
			log_warn("event=xforward-refused sid=%016llx code=%d",
			    (unsigned long long)up->sid, r->code);
		return;
	case EXP_NOOP:
		if (r->code / 100 != 2)
			up_fail(up, UP_EPROTO);
		return;
	case EXP_QUIT:
		up->state = UP_S_DEAD;
		return;
	case EXP_STARTTLS:
		if (r->code == 220) {
			up->tls_start = 1; /* up_read_cb switches */
			return;
		}
		log_warn("event=upstream-tls-failed sid=%016llx "
			 "reason=\"STARTTLS answered %d\"",
		    (unsigned long long)up->sid, r->code);
		if (up->cf->tls.up_mode == UTLS_REQUIRED) {
			up_fail(up, UP_ETLS);
			return;
		}
		/* Opportunistic: carry on in plaintext, as after EHLO. */
		up->tls_done = 1;
		if (up->cf->xclient == XCLIENT_AUTO && !up->client.probe &&
		    xclient_has_addr(&up->capa)) {
			up_send_xclient(up);
			return;
		}
		if (up->cf->xclient != XCLIENT_OFF &&
		    (up->capa.flags & CAPA_XFORWARD))
			up->use_xforward = 1;
		up_ready(up, r);
		return;
	default:
		return;
	}
}

/*
 * The upstream said 220 to STARTTLS. Whatever it sent after that came
 * before the handshake and is no answer to anything: discard it
 * (response injection). Then the same descriptor continues under TLS.
 */
static void
up_tls_begin(struct upstream *up)
{
	struct evbuffer	   *in = bufferevent_get_input(up->bev);
	struct bufferevent *bev;
	size_t		    extra = evbuffer_get_length(in);
	SSL		   *ssl;

	up->tls_start = 0;
	if (extra > 0) {
		log_warn("event=upstream-tls-injection sid=%016llx bytes=%zu",
		    (unsigned long long)up->sid, extra);
		evbuffer_drain(in, extra);
	}
	if ((ssl = tls_client_ssl(up_tls)) == NULL ||
	    (bev = tls_bev_switch(up->bev, ssl, 0)) == NULL)
		goto fail;
	up->bev = bev;
	up->ssl = ssl;
	bufferevent_setcb(bev, up_read_cb, up_write_cb, up_event_cb, up);
	set_read_timeout(up, LIMIT(up->cf, TLS_HANDSHAKE_TIMEOUT));
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	return;
fail:
	log_warn("event=upstream-tls-failed sid=%016llx reason=\"setup\"",
	    (unsigned long long)up->sid);
	up_fail(up, UP_ETLS);
}

/* The handshake with the upstream is done: check it, then EHLO again. */
static void
up_tls_connected(struct upstream *up)
{
	struct tls_facts f;
	char		 why[256], line[300];

	if (tls_client_verify(up_tls, up->ssl, why, sizeof(why)) == -1) {
		log_warn("event=upstream-tls-failed sid=%016llx reason=\"%s\"",
		    (unsigned long long)up->sid, why);
		up_fail(up, UP_ETLS);
		return;
	}
	tls_facts_get(up->ssl, &f);
	log_info("event=upstream-tls sid=%016llx version=%s cipher=%s "
		 "resumed=%s",
	    (unsigned long long)up->sid, f.version, f.cipher,
	    f.resumed ? "yes" : "no");
	up->tls_done = 1;
	/* RFC 3207 §4.2: forget the capabilities; ask again. */
	memset(&up->capa, 0, sizeof(up->capa));
	set_read_timeout(up, LIMIT(up->cf, UPSTREAM_COMMAND_TIMEOUT));
	snprintf(line, sizeof(line), "EHLO %s", up->cf->hostname);
	up_send(up, EXP_EHLO, line, NULL, NULL);
}

static void
up_dispatch(struct upstream *up, const struct smtp_reply *r)
{
	struct expect e;

	if (up->nsent == 0) {
		log_warn("event=upstream-unsolicited sid=%016llx code=%d",
		    (unsigned long long)up->sid, r->code);
		up_fail(up, UP_EPROTO);
		return;
	}
	e = up->q[up->qhead];
	up->qhead = (up->qhead + 1) % UP_QUEUE_MAX;
	up->qlen--;
	up->nsent--;
	switch (e.kind) {
	case EXP_USER:
		up->busy++;
		e.cb(e.arg, r, UP_OK);
		up->busy--;
		break;
	case EXP_DATA:
		if (r->code / 100 == 2 ||
		    (r->code != 354 && r->code / 100 == 3)) {
			/* "250" to DATA: the content was never sent, so this
			 * can never become the client's 250 (invariant 1). */
			log_warn("event=upstream-bad-data-reply sid=%016llx "
				 "code=%d",
			    (unsigned long long)up->sid, r->code);
			up_fail(up, UP_EPROTO);
			break;
		}
		if (r->code != 354) {
			/* A 4xx/5xx refusal: the final-reply expectation
			 * queued behind DATA is the caller's: hand it this. */
			struct expect *f = &up->q[up->qhead];

			up->qhead = (up->qhead + 1) % UP_QUEUE_MAX;
			up->qlen--;
			up->busy++;
			f->cb(f->arg, r, UP_OK);
			up->busy--;
			break;
		}
		/* Anything after the 354 came before our content: no answer
		 * to it can be trusted (response injection). */
		if (evbuffer_get_length(bufferevent_get_input(up->bev)) > 0) {
			log_warn("event=upstream-early-reply sid=%016llx",
			    (unsigned long long)up->sid);
			up_fail(up, UP_EPROTO);
			break;
		}
		/*
		 * The spool holds the canonical wire form, terminator
		 * included: hand it to the socket without a copy. The final
		 * reply is awaited from now on; the write side has the data
		 * timeout, the read side the final-reply timeout.
		 */
		up->nsent++;
		if (up->prefix != NULL) {
			evbuffer_add_buffer(
			    bufferevent_get_output(up->bev), up->prefix);
			evbuffer_free(up->prefix);
			up->prefix = NULL;
		}
		if (spool_move_to(up->spool, bufferevent_get_output(up->bev),
			up->spool_off) == -1) {
			up_fail(up, UP_ESPOOL);
			break;
		}
		up->spool = NULL;
		up_flush_out(up);
		{
			struct timeval rt = tv_sec(LIMIT(
					   up->cf, UPSTREAM_DATA_TIMEOUT)),
				       wt = tv_sec(LIMIT(up->cf, DATA_TIMEOUT));

			bufferevent_set_timeouts(up->bev, &rt, &wt);
		}
		break;
	case EXP_FINAL:
		/*
		 * A reply before the last content byte left is no answer to
		 * this message (a 250 "early" would lose mail): protocol
		 * error, the client gets 451.
		 */
		if (evbuffer_get_length(bufferevent_get_output(up->bev)) > 0) {
			log_warn("event=upstream-early-reply sid=%016llx "
				 "code=%d",
			    (unsigned long long)up->sid, r->code);
			/* e is already dequeued: report through it. */
			up->state = UP_S_DEAD;
			up->busy++;
			e.cb(e.arg, NULL, UP_EPROTO);
			up->busy--;
			if (!up->freed)
				up_fail(up, UP_EPROTO);
			break;
		}
		up->busy++;
		e.cb(e.arg, r, UP_OK);
		up->busy--;
		break;
	default:
		up_internal_reply(up, e.kind, r);
		break;
	}
	if (!up->freed) {
		up_flush_queue(up);
		/* Idle: nothing awaited, no clock (the session decides how
		 * long a connection may sit; see upstream_keepalive). */
		if (up->qlen == 0 && up->state == UP_S_READY)
			bufferevent_set_timeouts(up->bev, NULL, NULL);
	}
}

static void
up_read_cb(struct bufferevent *bev, void *arg)
{
	struct upstream	   *up = arg;
	struct evbuffer	   *in = bufferevent_get_input(bev);
	struct evbuffer_ptr eol;
	size_t		    eol_len, len;
	char		    line[REPLY_LINE_MAX + 2];
	enum reply_status   st;

	if (up->quitting) {
		/* The 221 (or anything): done. */
		up_really_free(up);
		return;
	}
	if (up->pool_prev != NULL) {
		/* Nobody asked: a 421 on its idle timeout, say. */
		up_fail(up, UP_EPROTO);
		return;
	}
	up->busy++;
	while (!up->freed && up->state != UP_S_DEAD) {
		eol =
		    evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
		if (eol.pos == -1) {
			if (evbuffer_get_length(in) > REPLY_LINE_MAX) {
				up_fail(up, UP_EPROTO);
				break;
			}
			break;
		}
		len = (size_t)eol.pos;
		if (len > REPLY_LINE_MAX) {
			up_fail(up, UP_EPROTO);
			break;
		}
		evbuffer_remove(in, line, len);
		evbuffer_drain(in, eol_len);
		line[len] = '\0';
		st = reply_add_line(&up->reply, line, len);
		if (st == REPLY_ERROR) {
			log_warn("event=upstream-bad-reply sid=%016llx "
				 "line=\"%.80s\"",
			    (unsigned long long)up->sid, line);
			up_fail(up, UP_EPROTO);
			break;
		}
		if (st == REPLY_DONE) {
			struct smtp_reply *r = xmalloc(sizeof(*r));

			*r = up->reply;
			reply_init(&up->reply);
			up_dispatch(up, r);
			free(r);
			if (up->tls_start && !up->freed &&
			    up->state != UP_S_DEAD) {
				up_tls_begin(
				    up); /* in belongs to the old bev */
				break;
			}
		}
	}
	up->busy--;
	if (up->freed && up->busy == 0)
		up_really_free(up);
}

/* The output has drained (low watermark 0): back to direct writes. */
static void
up_write_cb(struct bufferevent *bev, void *arg)
{
	struct upstream *up = arg;

	if (up->ssl == NULL)
		bufferevent_disable(bev, EV_WRITE);
}

static void
up_fail(struct upstream *up, enum up_error err)
{
	struct expect e;

	if (up->pool_prev != NULL) {
		/* A parked connection closed, timed out or spoke: drop it. */
		log_debug("event=upstream-pool-drop sid=%016llx error=\"%s\"",
		    (unsigned long long)up->sid, up_strerror(err));
		up->state = UP_S_DEAD;
		if (up->busy)
			up->freed = 1;
		else
			up_really_free(up);
		return;
	}
	if (up->state == UP_S_DEAD && up->qlen == 0)
		return;
	if (!up->quitting)
		log_info("event=upstream-error sid=%016llx error=\"%s\"",
		    (unsigned long long)up->sid, up_strerror(err));
	up->state = UP_S_DEAD;
	if (up->bev != NULL)
		bufferevent_disable(up->bev, EV_READ | EV_WRITE);
	up->busy++;
	if (up->opening) {
		up->opening = 0;
		up->open_cb(up->open_arg, NULL, err);
	}
	while (up->qlen > 0 && !up->freed) {
		e = up->q[up->qhead];
		up->qhead = (up->qhead + 1) % UP_QUEUE_MAX;
		up->qlen--;
		q_line_free(&e);
		if ((e.kind == EXP_USER || e.kind == EXP_FINAL) && e.cb)
			e.cb(e.arg, NULL, err);
	}
	up->nsent = 0;
	up->busy--;
}

static void
up_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct upstream *up = arg;
	enum up_error	 err;

	if (what & BEV_EVENT_CONNECTED) {
		int on = 1;

		if (up->ssl != NULL) {
			up->busy++;
			up_tls_connected(up);
			up->busy--;
			if (up->freed && up->busy == 0)
				up_really_free(up);
			return;
		}
		setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY,
		    &on, sizeof(on));
		return;
	}
	if (up->quitting) {
		up_really_free(up);
		return;
	}
	if (up->ssl != NULL && !up->tls_done) {
		char e[512];

		tls_bev_errors(bev, e, sizeof(e));
		log_warn("event=upstream-tls-failed sid=%016llx "
			 "reason=\"handshake: %s\"",
		    (unsigned long long)up->sid,
		    e[0] ? e
			 : (what & BEV_EVENT_TIMEOUT ? "timeout" : "closed"));
		err = UP_ETLS;
	} else if (what & BEV_EVENT_TIMEOUT)
		err = UP_ETIMEOUT;
	else if (up->opening && up->qlen > 0 &&
	    up->q[up->qhead].kind == EXP_GREETING && (what & BEV_EVENT_ERROR))
		err = UP_ECONNECT;
	else
		err = UP_ECLOSED;
	if (up->pool_prev != NULL) {
		up_fail(up, err); /* frees it */
		return;
	}
	up->busy++;
	up_fail(up, err);
	up->busy--;
	if (up->freed && up->busy == 0)
		up_really_free(up);
}

void
upstream_open(struct upstream *up, const struct upstream_client *client,
    upstream_cb cb, void *arg)
{
	const struct config *cf = up->cf;

	up->client = *client;
	up->open_cb = cb;
	up->open_arg = arg;
	up->opening = 1;
	up->state = UP_S_OPENING;
	up->bev = bufferevent_socket_new(loop_base(up->loop), -1,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (up->bev == NULL)
		fatal("bufferevent_socket_new");
	bufferevent_setcb(up->bev, up_read_cb, up_write_cb, up_event_cb, up);
	/* The message goes out in large writes (default: 16 KiB each). */
	bufferevent_set_max_single_write(up->bev, 256 * 1024);
	set_read_timeout(up, LIMIT(cf, UPSTREAM_CONNECT_TIMEOUT));
	q_push(up, EXP_GREETING, NULL, NULL, NULL);
	up->nsent = 1;
	/* EV_WRITE stays off: the connect itself is watched by libevent, and
	 * later writes go out directly (up_flush_out). */
	bufferevent_disable(up->bev, EV_WRITE);
	bufferevent_enable(up->bev, EV_READ);
	if (bufferevent_socket_connect(up->bev,
		(const struct sockaddr *)&cf->upstream,
		(int)cf->upstream_len) == -1) {
		up->busy++;
		up_fail(up, UP_ECONNECT);
		up->busy--;
		if (up->freed && up->busy == 0)
			up_really_free(up);
	}
}

/* A command for a dead connection fails at once (1). */
static int
up_refuse_dead(struct upstream *up, upstream_cb cb, void *arg)
{
	if (up->state != UP_S_DEAD)
		return 0;
	up->busy++;
	cb(arg, NULL, UP_ECLOSED);
	up->busy--;
	return 1;
}

void
upstream_command(
    struct upstream *up, const char *line, upstream_cb cb, void *arg)
{
	char   buf[1024], helo[600], name[600];
	size_t n;

	if (up_refuse_dead(up, cb, arg))
		return;
	if (up->use_xforward &&
	    ascii_strncasecmp(line, "MAIL FROM:", 10) == 0) {
		n = (size_t)snprintf(buf, sizeof(buf),
		    "XFORWARD NAME=%s ADDR=%s%s PORT=%d PROTO=%s",
		    client_name(up, 0, name, sizeof(name)),
		    strchr(up->client.addr, ':') ? "IPV6:" : "",
		    up->client.addr, up->client.port,
		    up->client.esmtp ? "ESMTP" : "SMTP");
		if (up->client.helo[0] != '\0' &&
		    smtp_xtext_encode(up->client.helo, helo, sizeof(helo)) !=
			-1 &&
		    n + strlen(helo) + 6 < 512)
			snprintf(buf + n, sizeof(buf) - n, " HELO=%s", helo);
		up_send(up, EXP_XFORWARD, buf, NULL, NULL);
	}
	up_send(up, EXP_USER, line, cb, arg);
}

void
upstream_command_secret(
    struct upstream *up, const char *line, upstream_cb cb, void *arg)
{
	if (up_refuse_dead(up, cb, arg))
		return;
	q_push(up, EXP_USER, line, cb, arg)->secret = 1;
	up_flush_queue(up);
}

void
upstream_send_message(struct upstream *up, struct evbuffer *prefix,
    struct spool *sp, size_t off, upstream_cb cb, void *arg)
{
	if (up->prefix != NULL)
		evbuffer_free(up->prefix);
	up->prefix = prefix;
	up->spool_off = off;
	if (up->state == UP_S_DEAD) {
		up->busy++;
		cb(arg, NULL, UP_ECLOSED);
		up->busy--;
		return;
	}
	up->spool = sp;
	q_push(up, EXP_DATA, "DATA", NULL, NULL);
	q_push(up, EXP_FINAL, NULL, cb, arg);
	up_flush_queue(up);
}

void
upstream_quit(struct upstream *up)
{
	if (up == NULL)
		return;
	/*
	 * Mid-message (content being written, or a reply outstanding), a
	 * QUIT would land inside the content: close instead, so the upstream
	 * discards the partial message.
	 */
	if (up->state == UP_S_DEAD || up->bev == NULL || up->busy ||
	    up->nsent > 0) {
		upstream_free(up);
		return;
	}
	/* Pending replies are no longer anybody's business. */
	while (up->qlen > 0) {
		q_line_free(&up->q[up->qhead]);
		up->qhead = (up->qhead + 1) % UP_QUEUE_MAX;
		up->qlen--;
	}
	up->nsent = 0;
	up->quitting = 1;
	up->state = UP_S_DEAD;
	if ((up->orphan_next = orphans) != NULL)
		orphans->orphan_prev = &up->orphan_next;
	up->orphan_prev = &orphans;
	orphans = up;
	evbuffer_drain(bufferevent_get_input(up->bev),
	    evbuffer_get_length(bufferevent_get_input(up->bev)));
	evbuffer_add_printf(bufferevent_get_output(up->bev), "QUIT\r\n");
	set_read_timeout(up, 10);
	bufferevent_enable(up->bev, EV_READ);
	up_flush_out(up);
}

static void
up_keepalive_cb(evutil_socket_t fd, short what, void *arg)
{
	struct upstream *up = arg;

	if (up->state == UP_S_READY && up->qlen == 0)
		up_send(up, EXP_NOOP, "NOOP", NULL, NULL);
}

void
upstream_keepalive(struct upstream *up, int on)
{
	struct timeval tv = tv_sec(UP_KEEPALIVE);

	if (up == NULL || up->state == UP_S_DEAD)
		return;
	if (up->keepalive == NULL)
		up->keepalive = event_new(
		    loop_base(up->loop), -1, EV_PERSIST, up_keepalive_cb, up);
	if (on)
		event_add(up->keepalive, &tv);
	else
		event_del(up->keepalive);
}

int
upstream_park(struct upstream *up)
{
	struct timeval idle = tv_sec(LIMIT(up->cf, UPSTREAM_POOL_IDLE));

	if (up->state != UP_S_READY || !up->ehlo || up->qlen != 0 ||
	    up->nsent != 0 || up->busy || up->freed || up->quitting ||
	    up->client.probe ||
	    pool_n >= (size_t)LIMIT(up->cf, UPSTREAM_POOL_SIZE) ||
	    evbuffer_get_length(bufferevent_get_output(up->bev)) != 0 ||
	    evbuffer_get_length(bufferevent_get_input(up->bev)) != 0)
		return 0;
	upstream_keepalive(up, 0);
	up->open_cb = NULL;
	up->open_arg = NULL;
	/* Idle: the pool's clock, read side only. */
	bufferevent_set_timeouts(up->bev, &idle, NULL);
	if ((up->pool_next = pool) != NULL)
		pool->pool_prev = &up->pool_next;
	up->pool_prev = &pool;
	pool = up;
	pool_n++;
	return 1;
}

struct upstream *
upstream_unpark(uint64_t sid)
{
	struct upstream *up = pool; /* the most recently used */

	if (up == NULL)
		return NULL;
	pool_unlink(up);
	up->sid = sid;
	bufferevent_set_timeouts(up->bev, NULL, NULL);
	return up;
}

void
upstream_reuse(struct upstream *up, const struct upstream_client *client,
    upstream_cb cb, void *arg)
{
	up->client = *client;
	up->open_cb = cb;
	up->open_arg = arg;
	up->use_xforward = 0;
	if (up->cf->xclient == XCLIENT_AUTO && xclient_has_addr(&up->capa)) {
		/* A new client on this connection: say who (Postfix allows
		 * XCLIENT outside a transaction), then greet as it did. */
		up->opening = 1;
		up->state = UP_S_OPENING;
		up_send_xclient(up);
		return;
	}
	if (up->cf->xclient != XCLIENT_OFF && (up->capa.flags & CAPA_XFORWARD))
		up->use_xforward = 1;
	up_ready(up, NULL);
}
