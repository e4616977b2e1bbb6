/*
 * session_auth.c - the AUTH relay (RFC 4954): moat advertises the
 * upstream's SASL mechanisms and passes the exchange through verbatim on
 * the session's own upstream connection, so the upstream MTA (Postfix
 * with Dovecot or Cyrus SASL, Exchange, ...) remains the one that checks
 * credentials and decides what an authenticated client may do.
 *
 * What moat keeps: that the client authenticated, the mechanism and the
 * identity it claimed (sasl.c); never the credentials: AUTH lines and
 * responses are wiped after use and appear in no log, trace field or
 * quarantine record. An upstream connection that has carried AUTH is
 * never parked for reuse (it is that client's), and a session whose
 * authenticated connection is lost is closed rather than continued on a
 * new, unauthenticated one. Failures are limited per session
 * (max_auth_failures) and per client network (authlimit.h).
 *
 * Offered (RFC 4954 §3) on EHLO when the listener allows it (`auth`: tls
 * by default, so credentials never cross plaintext) and the probed
 * upstream offers AUTH; refused with 503 after HELO, inside a
 * transaction or once authenticated, 504 for a mechanism the upstream
 * does not offer, 538 when TLS is needed first (RFC 4954 §6).
 *
 * Threading: the session's loop thread, like the rest of the session.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "authlimit.h"
#include "config.h"
#include "escape.h"
#include "log.h"
#include "loop.h"
#include "probe.h"
#include "sasl.h"
#include "session_int.h"
#include "smtp_parse.h"
#include "upstream.h"
#include "util.h"

static void auth_send(struct session *);

/* AUTH is allowed on this listener in this session's state. */
static int
auth_allowed(const struct session *s)
{
	return s->lc->auth == LAUTH_ALWAYS ||
	    (s->lc->auth == LAUTH_TLS && s->ssl != NULL && s->tls != NULL);
}

/* Mechanisms this session may offer ("" for none): the probed
 * upstream's, when the listener allows AUTH here. */
const char *
session_auth_offer(const struct session *s, char *buf, size_t len)
{
	const struct upstream_state *us = loop_upstream(s->loop);

	buf[0] = '\0';
	if (!auth_allowed(s) || !us->known || !us->up ||
	    !(us->capa.flags & CAPA_AUTH))
		return buf;
	sasl_mech_list(us->capa.auth, buf, len);
	return buf;
}

/* Is this line secret (AUTH or a SASL response)? Then it is wiped. */
int
session_auth_secret(const struct session *s, const char *line)
{
	return s->auth_state == AUTH_CLIENT ||
	    (strncasecmp(line, "AUTH", 4) == 0 &&
		(line[4] == ' ' || line[4] == '\0'));
}

/* The longest line the next read may take: AUTH and SASL responses
 * get RFC 4954 §4's 12288 octets. */
size_t
session_auth_line_max(struct session *s, size_t max)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	unsigned char	*p;

	if (max >= SASL_LINE_MAX + 2)
		return max;
	if (s->auth_state == AUTH_CLIENT)
		return SASL_LINE_MAX + 2;
	if (!(s->advertised & CAPA_AUTH) || evbuffer_get_length(in) < 5 ||
	    (p = evbuffer_pullup(in, 5)) == NULL)
		return max;
	if (strncasecmp((const char *)p, "AUTH ", 5) == 0)
		return SASL_LINE_MAX + 2;
	return max;
}

static void
auth_clear(struct session *s)
{
	if (s->auth_line != NULL) {
		explicit_bzero(s->auth_line, strlen(s->auth_line));
		free(s->auth_line);
		s->auth_line = NULL;
	}
	free(s->auth_sid);
	s->auth_sid = NULL;
	s->auth_state = AUTH_NONE;
}

void
session_auth_free(struct session *s)
{
	auth_clear(s);
	free(s->auth_user);
	s->auth_user = NULL;
	s->env.auth = NULL;
}

static void
auth_log(struct session *s, const char *result, int code)
{
	char id[SASL_ID_MAX * 4 + 8];

	log_escape(s->auth_sid->id, strlen(s->auth_sid->id), id, sizeof(id));
	log_info("event=auth sid=%016llx client=%s mechanism=%s result=%s "
		 "code=%d user=\"%s\" failures=%u",
	    (unsigned long long)s->sid, s->addr, s->auth_sid->mech, result,
	    code, id, s->auth_failures);
}

/* A failed attempt: count it for the session and the client's network. */
static void
auth_failed(struct session *s, int code)
{
	long n;

	s->auth_failures++;
	n = authlimit_fail((const struct sockaddr *)&s->peer,
	    LIMIT(s->cf, AUTH_FAILURE_WINDOW), time(NULL));
	auth_log(s, "fail", code);
	if (n == LIMIT(s->cf, AUTH_FAILURES_PER_IP))
		log_warn("event=auth-limit sid=%016llx client=%s "
			 "failures=%ld window=%lds",
		    (unsigned long long)s->sid, s->addr, n,
		    LIMIT(s->cf, AUTH_FAILURE_WINDOW));
	auth_clear(s);
}

/* The reply to "*" sent on the client's behalf: nobody waits for it. */
static void
auth_cancel_reply(void *arg, const struct smtp_reply *r, enum up_error err)
{
	(void)arg;
	(void)r;
	(void)err;
}

/*
 * The client's response could not be taken (a bad line, already
 * answered by read_command): end the exchange on the upstream too.
 */
void
session_auth_abort(struct session *s)
{
	if (s->auth_state != AUTH_CLIENT)
		return;
	if (s->up != NULL && upstream_alive(s->up))
		upstream_command(s->up, "*", auth_cancel_reply, NULL);
	auth_failed(s, 500);
}

static void
auth_reply(void *arg, const struct smtp_reply *r, enum up_error err)
{
	struct session *s = arg;

	if (err != UP_OK) {
		log_warn("event=auth-upstream-failed sid=%016llx client=%s "
			 "error=\"%s\"",
		    (unsigned long long)s->sid, s->addr, up_strerror(err));
		session_drop_upstream(s);
		auth_clear(s);
		session_reply(s, 454, "4.7.0",
		    "Temporary authentication failure, try again later");
	} else if (r->code == 334) {
		/* A challenge: the next line is the client's response. */
		s->auth_state = AUTH_CLIENT;
		session_relay(s, r);
	} else if (r->code == 235) {
		s->auth_user =
		    xstrdup(s->auth_sid->have ? s->auth_sid->id : "");
		s->env.auth = s->auth_user;
		auth_log(s, "ok", r->code);
		auth_clear(s);
		session_relay(s, r);
	} else if (r->code / 100 == 4 || r->code / 100 == 5) {
		session_relay(s, r);
		auth_failed(s, r->code);
		if (r->code == 421) {
			session_drop_upstream(s);
			session_close(s);
			return;
		}
	} else {
		/* 2xx other than 235, 3xx other than 334: not SASL. */
		log_warn("event=auth-upstream-failed sid=%016llx client=%s "
			 "error=\"unexpected reply %d\"",
		    (unsigned long long)s->sid, s->addr, r->code);
		session_drop_upstream(s);
		auth_clear(s);
		session_reply(s, 454, "4.7.0",
		    "Temporary authentication failure, try again later");
	}
	session_resume(s);
}

/* The upstream connection AUTH waited for is open (or failed). */
void
session_auth_upstream_ready(struct session *s, enum up_error err)
{
	if (err != UP_OK) {
		auth_clear(s);
		session_reply(s, 454, "4.7.0",
		    "Temporary authentication failure, try again later");
		session_resume(s);
		return;
	}
	auth_send(s);
}

static void
auth_send(struct session *s)
{
	const struct capa *c = upstream_capa(s->up);

	/* The probe said AUTH with this mechanism; the connection itself
	 * must agree (the upstream may have changed since). */
	if (!(c->flags & CAPA_AUTH) ||
	    !sasl_mech_in(
		c->auth, s->auth_sid->mech, strlen(s->auth_sid->mech))) {
		log_warn("event=upstream-capa-mismatch sid=%016llx what=AUTH",
		    (unsigned long long)s->sid);
		probe_kick(the_probe);
		auth_clear(s);
		session_reply(s, 454, "4.7.0",
		    "Temporary authentication failure, try again later");
		session_resume(s);
		return;
	}
	/* From now on this connection is the client's: never pooled. */
	s->up_authed = 1;
	s->auth_state = AUTH_UPSTREAM;
	session_upstream_rset(s);
	upstream_command_secret(s->up, s->auth_line, auth_reply, s);
	explicit_bzero(s->auth_line, strlen(s->auth_line));
	free(s->auth_line);
	s->auth_line = NULL;
}

void
cmd_auth(struct session *s, const struct smtp_command *cmd)
{
	const char *mech = cmd->args, *resp;
	size_t	    mlen, i;
	char	    mechs[CAPA_AUTH_MAX];

	if (!(s->advertised & CAPA_AUTH)) {
		if (s->esmtp && s->lc->auth == LAUTH_TLS && s->ssl == NULL &&
		    session_tls_offered(s) &&
		    (loop_upstream(s->loop)->capa.flags & CAPA_AUTH))
			session_reply(s, 538, "5.7.11",
			    "Encryption required for requested "
			    "authentication mechanism");
		else
			session_reply(s, 503, "5.5.1",
			    "Error: authentication not enabled");
		session_error(s);
		return;
	}
	if (s->env.auth != NULL) {
		session_reply(s, 503, "5.5.1", "Error: already authenticated");
		session_error(s);
		return;
	}
	if (s->tx != NULL) {
		session_reply(
		    s, 503, "5.5.1", "Error: MAIL transaction in progress");
		session_error(s);
		return;
	}
	for (mlen = 0; mech[mlen] != '\0' && mech[mlen] != ' '; mlen++)
		;
	resp = mech[mlen] == ' ' ? mech + mlen + 1 : NULL;
	if (!sasl_mech_valid(mech, mlen)) {
		session_reply(s, 501, "5.5.4", "Syntax: AUTH mechanism");
		session_error(s);
		return;
	}
	session_auth_offer(s, mechs, sizeof(mechs));
	if (!sasl_mech_in(mechs, mech, mlen)) {
		session_reply(
		    s, 504, "5.5.4", "Unrecognized authentication type");
		session_error(s);
		return;
	}
	if (resp != NULL) {
		/* RFC 4954 §4: base64 or "=" (empty), nothing after it. */
		if (resp[0] == '\0' || strchr(resp, ' ') != NULL) {
			session_reply(
			    s, 501, "5.5.2", "Cannot decode response");
			session_error(s);
			return;
		}
	}
	if (s->auth_failures >= (unsigned)LIMIT(s->cf, MAX_AUTH_FAILURES)) {
		log_info("event=auth-limit sid=%016llx client=%s "
			 "scope=session failures=%u",
		    (unsigned long long)s->sid, s->addr, s->auth_failures);
		session_reply(s, 421, "4.7.0",
		    "%s Error: too many failed authentications",
		    s->cf->hostname);
		session_close(s);
		return;
	}
	if (authlimit_blocked((const struct sockaddr *)&s->peer,
		LIMIT(s->cf, AUTH_FAILURES_PER_IP),
		LIMIT(s->cf, AUTH_FAILURE_WINDOW), time(NULL))) {
		log_info("event=auth-limit sid=%016llx client=%s scope=client",
		    (unsigned long long)s->sid, s->addr);
		session_reply(s, 454, "4.7.0",
		    "Too many failed authentications from your address, "
		    "try again later");
		session_error(s);
		return;
	}

	s->auth_sid = xcalloc(1, sizeof(*s->auth_sid));
	sasl_id_init(s->auth_sid, mech, mlen);
	if (resp != NULL)
		sasl_id_feed(s->auth_sid, resp, strlen(resp));
	/* Relayed as the client wrote it, the mechanism name upper-cased. */
	i = strlen("AUTH ") + mlen + (resp ? 1 + strlen(resp) : 0) + 1;
	s->auth_line = xmalloc(i);
	snprintf(s->auth_line, i, "AUTH %s%s%s", s->auth_sid->mech,
	    resp ? " " : "", resp ? resp : "");
	session_wait(s);
	if (s->up != NULL && upstream_alive(s->up) && !s->up_opening) {
		auth_send(s);
		return;
	}
	s->auth_state = AUTH_OPENING;
	upstream_start(s); /* may fail at once and resume */
}

/* A line while a challenge is out: the client's response, relayed. */
void
session_auth_response(struct session *s, const char *line)
{
	sasl_id_feed(s->auth_sid, line, strlen(line));
	s->auth_state = AUTH_UPSTREAM;
	session_wait(s);
	if (s->up == NULL) {
		auth_reply(s, NULL, UP_ECLOSED);
		return;
	}
	upstream_command_secret(s->up, line, auth_reply, s);
}

/*
 * MAIL in an authenticated session needs the connection that carried
 * AUTH. When it is gone, say so and close: the client reconnects and
 * authenticates again. Returns 1 when it closed.
 */
int
session_auth_lost(struct session *s)
{
	if (s->env.auth == NULL || (s->up != NULL && upstream_alive(s->up)))
		return 0;
	log_info("event=auth-upstream-lost sid=%016llx client=%s",
	    (unsigned long long)s->sid, s->addr);
	session_reply(s, 421, "4.4.2",
	    "%s Upstream connection lost, authenticate again", s->cf->hostname);
	session_close(s);
	return 1;
}
