/*
 * session_tls.c - TLS on the client leg of a session: STARTTLS (RFC 3207)
 * and implicit TLS (RFC 8314 §3.3), the injection guard, the state reset
 * after the handshake, and where the handshake's facts go (the log, the
 * transaction line, the Received trace field of RFC 5321 §4.4 with the
 * RFC 3848 protocol names).
 *
 * The plaintext session reads with its own readv (session_recv) and
 * writes with evbuffer_write (session_flush). TLS replaces the socket
 * bufferevent by an OpenSSL one on the same descriptor: from then on the
 * bufferevent reads (bounded by a read watermark) and writes, and the
 * session's own read event is never added again (session.c tests
 * s->ssl). No byte read in plaintext ever reaches the TLS side or back:
 * STARTTLS is refused when anything follows it in the input, and the old
 * bufferevent's buffers are empty when it is freed.
 *
 * Threading: the session's loop thread only, like the rest of the session.
 */
#include <openssl/ssl.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "log.h"
#include "loop.h"
#include "runtime.h"
#include "session_int.h"
#include "smtp_parse.h"
#include "tls.h"
#include "util.h"

/* Counted for the operator (log lines carry each case). */
static _Atomic unsigned long starttls_injections;

int
session_tls_offered(const struct session *s)
{
	return s->ssl == NULL && s->rt->tls != NULL &&
	    (s->lc->tls == LTLS_STARTTLS || s->lc->tls == LTLS_REQUIRED);
}

void
cmd_starttls(struct session *s, const struct smtp_command *cmd)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	size_t		 extra;

	if (cmd->args[0] != '\0') {
		session_reply(s, 501, "5.5.4", "Syntax: STARTTLS");
		session_error(s);
		return;
	}
	if (s->ssl != NULL) {
		session_reply(s, 554, "5.5.1", "Error: TLS already active");
		session_error(s);
		return;
	}
	if (!session_tls_offered(s)) {
		session_reply(
		    s, 502, "5.5.1", "Error: command not implemented");
		session_error(s);
		return;
	}
	if (s->tx != NULL) {
		session_reply(
		    s, 503, "5.5.1", "Error: MAIL transaction in progress");
		session_error(s);
		return;
	}
	/*
	 * CVE-2011-0411: whatever the client sent after STARTTLS in the
	 * same flight was sent in plaintext and must not run inside the TLS
	 * session (nor at all): drop it, then refuse or close.
	 */
	if ((extra = evbuffer_get_length(in)) > 0) {
		unsigned long n = ++starttls_injections;

		evbuffer_drain(in, extra);
		log_warn("event=starttls-injection sid=%016llx client=%s "
			 "bytes=%zu action=%s count=%lu",
		    (unsigned long long)s->sid, s->addr, extra,
		    s->cf->tls.injection == INJECT_CLOSE ? "close" : "refuse",
		    n);
		if (s->cf->tls.injection == INJECT_CLOSE) {
			session_reply(s, 421, "4.7.0",
			    "%s Error: command pipelined after STARTTLS",
			    s->cf->hostname);
			session_close(s);
			return;
		}
		session_reply(s, 554, "5.5.1",
		    "Error: command pipelined after STARTTLS, TLS refused");
		session_error(s);
		return;
	}
	session_reply(s, 220, "2.0.0", "Ready to start TLS");
	/* Not one more plaintext byte: the handshake starts once the 220
	 * is on the wire (session_process / session_write_cb). */
	event_del(s->rev);
	s->state = S_TLS;
}

/* Replace the socket bufferevent by a TLS one; the handshake begins. */
int
session_tls_start(struct session *s)
{
	struct bufferevent *bev;
	SSL		   *ssl;
	char		    err[256];

	s->state = S_TLS;
	event_del(s->rev);
	if ((ssl = tls_server_ssl(s->rt->tls)) == NULL ||
	    (bev = tls_bev_switch(s->bev, ssl, 1)) == NULL)
		goto fail;
	s->bev = bev;
	s->ssl = ssl;
	s->read_paused = 0;
	bufferevent_setcb(
	    bev, session_read_cb, session_write_cb, session_event_cb, s);
	bufferevent_setwatermark(bev, EV_READ, 0, INPUT_HIGH);
	bufferevent_set_timeouts(bev, NULL, NULL);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	session_set_timer(s, LIMIT(s->cf, TLS_HANDSHAKE_TIMEOUT));
	return 0;
fail:
	tls_errors(err, sizeof(err));
	log_warn("event=tls-error sid=%016llx client=%s stage=setup "
		 "reason=\"%s\"",
	    (unsigned long long)s->sid, s->addr, err);
	return -1;
}

/* The handshake finished (BEV_EVENT_CONNECTED). */
static void
session_tls_done(struct session *s)
{
	struct tls_facts *f = xcalloc(1, sizeof(*f));
	struct timeval	  wt = tv_sec(LIMIT(s->cf, COMMAND_TIMEOUT));

	evtimer_del(s->timer);
	tls_facts_get(s->ssl, f);
	free(s->tls);
	s->tls = f;
	log_info("event=tls sid=%016llx client=%s version=%s cipher=%s "
		 "bits=%d sni=\"%s\" resumed=%s%s%s%s%s",
	    (unsigned long long)s->sid, s->addr, f->version, f->cipher, f->bits,
	    f->sni, f->resumed ? "yes" : "no",
	    f->ccert ? " client_cert=\"" : "", f->ccert ? f->ccert_subject : "",
	    f->ccert ? "\" client_cert_sha256=" : "",
	    f->ccert ? f->ccert_fp : "");
	bufferevent_set_timeouts(s->bev, NULL, &wt);
	if (s->lc->tls == LTLS_IMPLICIT) {
		/* Implicit TLS (its only handshake): the session starts now. */
		session_set_read_timeout(s, 0);
		session_greet(s);
		session_flush(s);
		return;
	}
	/*
	 * RFC 3207 §4.2: discard all knowledge obtained from the client
	 * before the handshake; it must say EHLO again. The upstream
	 * connection was told the old HELO (XCLIENT): it goes back to the
	 * pool, and the next EHLO introduces the client afresh.
	 */
	free(s->helo);
	s->helo = NULL;
	s->esmtp = 0;
	s->advertised = 0;
	s->max_size = (uint64_t)LIMIT(s->cf, MAX_MESSAGE_SIZE);
	evidence_truncate(&s->sev, s->sev_connect);
	sp_helo_forget(s);
	session_auth_free(s); /* AUTH before TLS (auth = always) too */
	session_release_upstream(s);
	s->state = S_CMD;
	session_set_read_timeout(s, 0);
	session_arm_command_deadline(s);
	session_process(s);
}

/* A bufferevent event while the handshake is under way. */
void
session_tls_event(struct session *s, short what)
{
	char err[512];

	if (what & BEV_EVENT_CONNECTED) {
		session_tls_done(s);
		return;
	}
	tls_bev_errors(s->bev, err, sizeof(err));
	if (err[0] == '\0')
		snprintf(err, sizeof(err), "%s",
		    (what & BEV_EVENT_EOF) ? "connection closed" : "I/O error");
	log_info("event=tls-error sid=%016llx client=%s stage=handshake "
		 "reason=\"%s\"",
	    (unsigned long long)s->sid, s->addr, err);
	session_free(s);
}

void
session_tls_timeout(struct session *s)
{
	log_info("event=tls-timeout sid=%016llx client=%s",
	    (unsigned long long)s->sid, s->addr);
	session_free(s);
}

/* " tls=TLSv1.3 cipher=..." for the transaction line ("" in plaintext). */
void
session_tls_log_fields(const struct session *s, char *buf, size_t len)
{
	const struct tls_facts *f = s->tls;

	if (f == NULL) {
		snprintf(buf, len, " tls=no");
		return;
	}
	snprintf(buf, len, " tls=%s cipher=%s%s%s%s%s", f->version, f->cipher,
	    f->ccert ? " client_cert=\"" : "", f->ccert ? f->ccert_subject : "",
	    f->ccert ? "\" client_cert_sha256=" : "",
	    f->ccert ? f->ccert_fp : "");
}

/* Characters of a HELO name that may stand in a Received field as is. */
static void
received_word(const char *in, char *out, size_t len)
{
	size_t i;

	for (i = 0; in[i] != '\0' && i + 1 < len; i++) {
		unsigned char c = (unsigned char)in[i];

		out[i] = ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			     (c >= '0' && c <= '9') || c == '.' || c == '-' ||
			     c == '_' || c == ':' || c == '[' || c == ']')
		    ? (char)c
		    : '?';
	}
	out[i] = '\0';
}

/* A comment's text: no parentheses, backslashes or controls. */
static void
comment_text(const char *in, char *out, size_t len)
{
	size_t i;

	for (i = 0; in[i] != '\0' && i + 1 < len; i++) {
		unsigned char c = (unsigned char)in[i];

		out[i] =
		    (c < 0x20 || c >= 0x7f || c == '(' || c == ')' || c == '\\')
		    ? '?'
		    : (char)c;
	}
	out[i] = '\0';
}

/*
 * The Received field moat puts on top of the message (RFC 5321 §4.4), so
 * that the upstream and the recipient see how the message reached moat,
 * TLS included (XCLIENT has no room for it), and the client's name as
 * DNS confirmed it (a host name: no escaping needed). Appended to out in
 * wire form; 0, or -1 when the configuration says none.
 */
int
session_received(const struct session *s, struct evbuffer *out)
{
	const struct tls_facts *f = s->tls;
	char			helo[256], subj[256], date[64], lit[80];
	const char	       *proto;
	struct tm		tm;
	time_t			now = time(NULL);

	if (s->cf->tls.received == RECEIVED_NEVER ||
	    (s->cf->tls.received == RECEIVED_TLS && f == NULL))
		return -1;
	received_word(s->helo != NULL ? s->helo : "", helo, sizeof(helo));
	if (s->peer.ss_family == AF_INET6)
		snprintf(lit, sizeof(lit), "[IPv6:%s]", s->addr);
	else
		snprintf(lit, sizeof(lit), "[%s]", s->addr);
	proto = s->env.auth != NULL ? (f != NULL ? "ESMTPSA" : "ESMTPA")
	    : f != NULL		    ? "ESMTPS"
	    : s->esmtp		    ? "ESMTP"
				    : "SMTP";
	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	/* Postfix's form: "from HELO (NAME [ADDR])", the name confirmed by
	 * DNS (rdns.h) or "unknown". */
	evbuffer_add_printf(out, "Received: from %s (%s %s)\r\n",
	    helo[0] != '\0' ? helo : lit,
	    s->env.client_name != NULL ? s->env.client_name : "unknown", lit);
	if (f != NULL) {
		evbuffer_add_printf(out,
		    "\t(using %s with cipher %s (%d/%d bits))\r\n", f->version,
		    f->cipher, f->bits, f->alg_bits);
		if (f->ccert) {
			comment_text(f->ccert_subject, subj, sizeof(subj));
			evbuffer_add_printf(out,
			    "\t(client certificate: %s, SHA256 %s)\r\n", subj,
			    f->ccert_fp);
		}
	}
	evbuffer_add_printf(out, "\tby %s (moat) with %s id %016llx.%u;\r\n",
	    s->cf->hostname, proto, (unsigned long long)s->sid,
	    s->tx != NULL ? s->tx->num : 0);
	evbuffer_add_printf(out, "\t%s\r\n", date);
	return 0;
}
