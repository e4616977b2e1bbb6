/*
 * session.c - the SMTP server side of moat: connection set-up (admission,
 * PROXY protocol, CONNECT stage, greeting), the command table and the
 * session/transaction state machine (RFC 5321 §3-4, §4.1.4 command order;
 * RFC 2920 pipelining; RFC 1869/6152/6531/3461/1870 parameters).
 *
 * Threading: everything here runs on the session's loop thread. A session
 * is freed only from a top-level libevent callback of its own (event,
 * write-drained, timer), never while one of its handlers is on the stack.
 *
 * Flow control: at most one command is in progress (waiting for a filter
 * or the upstream), except a group of pipelined RCPTs, which go to the
 * upstream together (replies behind them are held: rq, held). Pipelined
 * commands stay in the input buffer, bounded by INPUT_HIGH, and are taken
 * in order, so replies leave in order.
 *
 * I/O: reads are our own (session_recv: one readv per arrival, no
 * FIONREAD); replies collect in the bufferevent's output and one pass
 * writes them straight to the socket (session_flush), the write event
 * being used only when the kernel is full. A TLS session (issue 3) must not
 * use either shortcut.
 */
#include <errno.h>
#include <sys/uio.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "escape.h"
#include "connlimit.h"
#include "log.h"
#include "loop.h"
#include "probe.h"
#include "proxyproto.h"
#include "runtime.h"
#include "session.h"
#include "session_int.h"
#include "smtp_parse.h"
#include "upstream.h"
#include "util.h"

static __thread int loop_draining;

static void session_recv(evutil_socket_t, short, void *);
static void session_admit(struct session *);

struct chain_run *
session_chain_run(struct loop *l, uint64_t sid)
{
	struct session *s = loop_find(l, sid);

	return s ? &s->chain : NULL;
}

/* ------------------------------------------------------------ replies */

void
session_reply(
    struct session *s, int code, const char *enh, const char *fmt, ...)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);
	char		 text[512];
	va_list		 ap;

	/* Behind pipelined RCPTs still awaiting the upstream, a local reply
	 * waits its turn (replies leave in command order). */
	if (s->rq_len > 0 && s->state == S_CMD) {
		if (s->held == NULL && (s->held = evbuffer_new()) == NULL)
			fatal("evbuffer_new");
		out = s->held;
	}
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (enh != NULL && *enh != '\0')
		evbuffer_add_printf(out, "%d %s %s\r\n", code, enh, text);
	else
		evbuffer_add_printf(out, "%d %s\r\n", code, text);
	if (s->tx != NULL && code / 100 != 2 && code / 100 != 3)
		snprintf(s->tx->final, sizeof(s->tx->final), "%d %.100s", code,
		    text);
}

/* Relay an upstream reply, as it is, to the client. */
void
session_relay(struct session *s, const struct smtp_reply *r)
{
	char buf[REPLY_TEXT_MAX + 2 * REPLY_LINES_MAX];
	int  n;

	if ((n = reply_format(r, buf, sizeof(buf))) == -1) {
		session_reply(s, 451, "4.3.0", "Upstream reply too long");
		return;
	}
	evbuffer_add(bufferevent_get_output(s->bev), buf, (size_t)n);
}

/* Count an error; past the limit, say 421 and close (Postfix's hard
 * error limit). */
void
session_error(struct session *s)
{
	if (++s->nerrors >= (unsigned)LIMIT(s->cf, MAX_ERRORS)) {
		log_info("event=too-many-errors sid=%016llx client=%s "
			 "errors=%u",
		    (unsigned long long)s->sid, s->addr, s->nerrors);
		session_reply(s, 421, "4.7.0", "%s Error: too many errors",
		    s->cf->hostname);
		session_close(s);
	}
}

/* Map a filter verdict to the client's reply, with defaults. */
void
session_filter_reply(struct session *s, enum filter_verdict v,
    const struct filter_reply *fr, int defcode, const char *defenh,
    const char *deftext)
{
	char	    text[256];
	int	    code = defcode;
	const char *enh = defenh;

	if (v == FILTER_TEMPFAIL && defcode / 100 != 4) {
		code = 451;
		enh = "4.7.1";
	}
	if (fr != NULL && fr->code != 0 && fr->code / 100 == code / 100) {
		code = fr->code;
		if (fr->enh[0] != '\0' && fr->enh[0] == '0' + code / 100)
			enh = fr->enh;
	}
	if (fr != NULL && fr->text[0] != '\0')
		text_sanitize(fr->text, strlen(fr->text), text, sizeof(text));
	else
		snprintf(text, sizeof(text), "%s", deftext);
	session_reply(s, code, enh, "%s", text);
}

/* ----------------------------------------------------- flow control */

void
session_set_timer(struct session *s, long sec)
{
	struct timeval tv = tv_sec(sec);

	evtimer_add(s->timer, &tv);
}

void
session_arm_command_deadline(struct session *s)
{
	session_set_timer(s, LIMIT(s->cf, COMMAND_TIMEOUT));
}

/* A command goes asynchronous: stop taking input, stop its clock. */
void
session_wait(struct session *s)
{
	s->waiting = 1;
	evtimer_del(s->timer);
}

/* The command in progress has answered: take the next one. */
void
session_resume(struct session *s)
{
	s->waiting = 0;
	if (s->state == S_CMD)
		session_arm_command_deadline(s);
	session_process(s);
}

/*
 * Write what the last pass produced straight to the socket, in one
 * writev. Only when the kernel cannot take it all does the bufferevent's
 * write event get enabled (and disabled again once drained): replies cost
 * no epoll_ctl calls in the common case, as in HAProxy.
 */
void
session_flush(struct session *s)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);

	if (evbuffer_get_length(out) == 0)
		return;
	if (s->ssl != NULL) {
		/* The TLS bufferevent writes by itself once enabled. */
		bufferevent_enable(s->bev, EV_WRITE);
		return;
	}
	if (!(bufferevent_get_enabled(s->bev) & EV_WRITE)) {
		/* As bufferevent_writecb() does: the bufferevent keeps the
		 * front of its output frozen except around writes. */
		evbuffer_unfreeze(out, 1);
		evbuffer_write(out, bufferevent_getfd(s->bev));
		evbuffer_freeze(out, 1);
	}
	/* A write error is found and reported by the bufferevent. */
	if (evbuffer_get_length(out) > 0)
		bufferevent_enable(s->bev, EV_WRITE);
}

void
session_close(struct session *s)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);

	if (s->state == S_CLOSING)
		return;
	s->state = S_CLOSING;
	chain_run_cancel(&s->chain);
	rdns_cancel(&s->rdns);
	if (s->held != NULL)
		evbuffer_add_buffer(out, s->held);
	event_del(s->rev);
	if (s->ssl != NULL)
		bufferevent_disable(s->bev, EV_READ);
	/* Flush, then free from the write callback (or the timer). Never
	 * free here: a handler may be on the stack. */
	session_flush(s);
	session_set_timer(s, evbuffer_get_length(out) == 0 ? 0 : 10);
}

static void chain_done_cb(
    void *, enum filter_verdict, const struct filter_reply *);

/*
 * Run a filter stage; cont() gets the verdict, now or later. While a stage
 * is pending the session reads no further commands.
 */
void
session_filter(struct session *s, enum filter_stage st,
    void (*cont)(
	struct session *, enum filter_verdict, const struct filter_reply *))
{
	enum filter_verdict v;

	/*
	 * Filters see the client's name from CONNECT on: a stage waits for
	 * the lookup under way. The CONNECT stage waits only when a filter
	 * wants it (it holds the greeting); without one, the greeting goes
	 * out at once and the next stage (HELO, MAIL ...) waits instead.
	 * DATA always comes through here, so the Received field too has the
	 * answer.
	 */
	if (s->rdns.running &&
	    (st != FILTER_STAGE_CONNECT || chain_wants(s->chain.chain, st))) {
		s->rdns_parked = 1;
		s->rdns_stage = st;
		s->rdns_cont = cont;
		session_wait(s);
		return;
	}
	s->env.helo = s->helo;
	s->env.mail_from = s->tx ? s->tx->sender : NULL;
	s->chain.sink.ev = s->tx ? &s->tx->ev : &s->sev;
	s->chain.sink.edits = NULL;
	s->chain.sink.spool = NULL;
	s->chain.sink.ar = s->tx ? s->tx->ar : NULL;
	s->chain.sink.nar = s->tx ? &s->tx->nar : NULL;
	s->ev_from = s->chain.sink.ev->n;
	v = chain_run_stage(&s->chain, st, &s->env, chain_done_cb, s);
	if (v == FILTER_PENDING) {
		s->cont = cont;
		session_wait(s);
		return;
	}
	sp_stage_check(s, st, &v, &s->chain.reply);
	cont(s, v, &s->chain.reply);
}

static void
chain_done_cb(void *arg, enum filter_verdict v, const struct filter_reply *r)
{
	struct session *s = arg;
	void (*cont)(struct session *, enum filter_verdict,
	    const struct filter_reply *) = s->cont;

	struct filter_reply reply = *r;

	s->cont = NULL;
	s->waiting = 0;
	sp_stage_check(s, s->chain.stage, &v, &reply);
	cont(s, v, &reply);
	if (!s->waiting && s->state != S_CLOSING)
		session_resume(s);
}

/* ------------------------------------------------------ reverse DNS */

/* The name is known (or will not be): filters and logs get it. */
static void
rdns_known(struct session *s)
{
	const struct rdns *r = &s->rdns;

	s->env.client_name_status = (int)r->status;
	s->env.client_name = r->status == FILTER_NAME_VERIFIED ? r->name : NULL;
	s->env.client_ptr = r->ptr[0] != '\0' ? r->ptr : NULL;
}

static void
rdns_log(struct session *s)
{
	const struct rdns *r = &s->rdns;

	log_info("event=rdns sid=%016llx client=%s status=%s name=%s ptr=%s "
		 "names=%zu%s%s ms=%llu",
	    (unsigned long long)s->sid, s->addr, rdns_status_name(r->status),
	    s->env.client_name ? s->env.client_name : "unknown",
	    r->ptr[0] != '\0' ? r->ptr : "-", r->nfwd,
	    r->why != NULL ? " why=" : "", r->why != NULL ? r->why : "",
	    (unsigned long long)((now_usec() - r->t_start) / 1000));
}

/* The lookup ended: a stage waiting for it runs now. */
static void
rdns_done(void *arg)
{
	struct session *s = arg;

	rdns_known(s);
	rdns_log(s);
	if (!s->rdns_parked || s->state == S_CLOSING)
		return;
	s->rdns_parked = 0;
	s->waiting = 0;
	session_filter(s, s->rdns_stage, s->rdns_cont);
	if (!s->waiting && s->state != S_CLOSING)
		session_resume(s);
}

/*
 * Start the lookup of the client's name, at admission (the address is
 * final: after any PROXY header), so that it runs while the greeting
 * goes out and the client answers it (or while implicit TLS shakes
 * hands). reverse_dns = no: no name, not even for loopback.
 */
static void
session_rdns_start(struct session *s)
{
	if (!s->cf->reverse_dns)
		return;
	if (rdns_start(&s->rdns, s->loop, (struct sockaddr *)&s->peer,
		LIMIT(s->cf, DNS_TIMEOUT), rdns_done, s) == 1)
		return;
	rdns_known(s);
	if (s->rdns.status == FILTER_NAME_TEMPFAIL)
		rdns_log(s);
}

/* " client_name=NAME rdns=STATUS" for the transaction line. */
static void
rdns_log_fields(const struct session *s, char *buf, size_t len)
{
	snprintf(buf, len, " client_name=%s rdns=%s",
	    s->env.client_name ? s->env.client_name : "unknown",
	    s->rdns.running ? "pending" : rdns_status_name(s->rdns.status));
}

/* ------------------------------------------------------- transactions */

void
tx_free(struct session *s)
{
	struct tx *tx = s->tx;
	size_t	   i;

	if (tx == NULL)
		return;
	for (i = 0; i < tx->nrcpts; i++)
		free(tx->rcpts[i]);
	free(tx->rcpts);
	free(tx->sender);
	free(tx->mail_line);
	free(tx->hdrbuf);
	free(tx->pf_name);
	free(tx->pf_value);
	free(tx->pump_buf);
	spool_free(&tx->spool);
	sp_tx_free(tx);
	free(tx);
	s->tx = NULL;
	chain_run_reset(&s->chain);
}

/* One summary line per transaction. */
void
tx_log(struct session *s, const char *verdict)
{
	struct tx *tx = s->tx;
	char	   helo[300], from[600], rcpt[600], final[300], pol[2048];
	char	   tls[600], auth[1100] = "", name[300];
	uint64_t   now = now_usec();

	if (tx == NULL)
		return;
	if (s->env.auth != NULL) {
		memcpy(auth, " auth=\"", 7);
		log_escape(s->env.auth, strlen(s->env.auth), auth + 7,
		    sizeof(auth) - 8);
		strcat(auth, "\"");
	}
	sp_log_fields(s, pol, sizeof(pol));
	session_tls_log_fields(s, tls, sizeof(tls));
	rdns_log_fields(s, name, sizeof(name));
	log_escape(s->helo ? s->helo : "", s->helo ? strlen(s->helo) : 0, helo,
	    sizeof(helo));
	log_escape(tx->sender, strlen(tx->sender), from, sizeof(from));
	log_escape(tx->nrcpts ? tx->rcpts[0] : "",
	    tx->nrcpts ? strlen(tx->rcpts[0]) : 0, rcpt, sizeof(rcpt));
	log_escape(tx->final, strlen(tx->final), final, sizeof(final));
	log_info("event=tx sid=%016llx tx=%u client=%s%s helo=\"%s\" "
		 "from=\"%s\" rcpts=%zu rcpt=\"%s\"%s refused=%zu size=%zu "
		 "verdict=%s reply=\"%s\"%s%s%s data_ms=%llu total_ms=%llu",
	    (unsigned long long)s->sid, tx->num, s->addr, name, helo, from,
	    tx->nrcpts, rcpt, tx->nrcpts > 1 ? ",..." : "", tx->rcpt_refused,
	    tx->size, verdict, final, tls, auth, pol,
	    tx->t_data ? (unsigned long long)((now - tx->t_data) / 1000) : 0ULL,
	    (unsigned long long)((now - tx->t_start) / 1000));
}

/* Forget the upstream connection (after an error). */
void
session_drop_upstream(struct session *s)
{
	upstream_free(s->up);
	s->up = NULL;
	s->up_opening = 0;
	s->up_dirty = 0;
	s->up_authed = 0;
}

/*
 * Done with the upstream connection: an idle one outside a transaction is
 * kept for the next session on this loop, any other gets QUIT (or is
 * closed mid-message). No callback of it reaches the session afterwards.
 */
void
session_release_upstream(struct session *s)
{
	if (s->up == NULL)
		return;
	if (s->up_opening || s->up_dirty || s->up_authed || loop_draining ||
	    (s->tx != NULL && s->tx->mail_ok) || !upstream_park(s->up))
		upstream_quit(s->up);
	s->up = NULL;
	s->up_opening = 0;
	s->up_dirty = 0;
	s->up_authed = 0;
}

/* ----------------------------------------------------------- commands */

struct smtp_cmd {
	enum smtp_verb verb;
	unsigned       flags;
	void (*fn)(struct session *, const struct smtp_command *);
};

#define CMD_F_JUNK   0x01 /* counts toward max_junk_commands */
#define CMD_F_NOARGS 0x02 /* takes no arguments (501 otherwise) */

static void cmd_helo(struct session *, const struct smtp_command *);
static void cmd_mail(struct session *, const struct smtp_command *);
static void cmd_rcpt(struct session *, const struct smtp_command *);
static void cmd_data(struct session *, const struct smtp_command *);
static void cmd_bdat(struct session *, const struct smtp_command *);
static void cmd_rset(struct session *, const struct smtp_command *);
static void cmd_noop(struct session *, const struct smtp_command *);
static void cmd_quit(struct session *, const struct smtp_command *);
static void cmd_help(struct session *, const struct smtp_command *);
static void cmd_vrfy(struct session *, const struct smtp_command *);
static void cmd_unimpl(struct session *, const struct smtp_command *);

/* The protocol as data (STYLE.md §8.1). */
static const struct smtp_cmd cmd_table[] = {
	{ SMTP_VERB_HELO, 0, cmd_helo },
	{ SMTP_VERB_EHLO, 0, cmd_helo },
	{ SMTP_VERB_MAIL, 0, cmd_mail },
	{ SMTP_VERB_RCPT, 0, cmd_rcpt },
	{ SMTP_VERB_DATA, CMD_F_NOARGS, cmd_data },
	{ SMTP_VERB_BDAT, 0, cmd_bdat },
	{ SMTP_VERB_RSET, CMD_F_NOARGS | CMD_F_JUNK, cmd_rset },
	{ SMTP_VERB_NOOP, CMD_F_JUNK, cmd_noop },
	{ SMTP_VERB_QUIT, CMD_F_NOARGS, cmd_quit },
	{ SMTP_VERB_HELP, CMD_F_JUNK, cmd_help },
	{ SMTP_VERB_VRFY, CMD_F_JUNK, cmd_vrfy },
	{ SMTP_VERB_EXPN, CMD_F_JUNK, cmd_unimpl },
	{ SMTP_VERB_ETRN, 0, cmd_unimpl },
	{ SMTP_VERB_STARTTLS, 0, cmd_starttls },
	{ SMTP_VERB_AUTH, 0, cmd_auth },
};

static void
session_command(struct session *s, char *line)
{
	struct smtp_command    cmd;
	const struct smtp_cmd *c = NULL;
	char		       esc[128];
	size_t		       i;
	int		       rc;

	rc = smtp_parse_command(line, &cmd);
	if (rc == SMTP_PARSE_OK)
		for (i = 0; i < nitems(cmd_table); i++)
			if (cmd_table[i].verb == cmd.verb) {
				c = &cmd_table[i];
				break;
			}
	if (rc != SMTP_PARSE_OK &&
	    (cmd.verb == SMTP_VERB_MAIL || cmd.verb == SMTP_VERB_RCPT)) {
		session_reply(s, 501, "5.5.4", "Syntax: %s",
		    cmd.verb == SMTP_VERB_MAIL ? "MAIL FROM:<address>"
					       : "RCPT TO:<address>");
		session_error(s);
		return;
	}
	if (c == NULL) {
		log_escape(line, strlen(line) > 40 ? 40 : strlen(line), esc,
		    sizeof(esc));
		log_info("event=unknown-command sid=%016llx client=%s "
			 "line=\"%s\"",
		    (unsigned long long)s->sid, s->addr, esc);
		session_reply(s, 500, "5.5.2", "Error: command not recognized");
		session_error(s);
		return;
	}
	if ((c->flags & CMD_F_NOARGS) && cmd.args[0] != '\0') {
		session_reply(
		    s, 501, "5.5.4", "Syntax: %s", smtp_verb_name(c->verb));
		session_error(s);
		return;
	}
	if ((c->flags & CMD_F_JUNK) &&
	    ++s->njunk > (unsigned)LIMIT(s->cf, MAX_JUNK_COMMANDS)) {
		session_reply(s, 421, "4.7.0", "%s Error: too many commands",
		    s->cf->hostname);
		session_close(s);
		return;
	}
	if (loop_draining && s->tx == NULL && c->verb != SMTP_VERB_QUIT) {
		session_reply(s, 421, "4.3.2", "%s Service shutting down",
		    s->cf->hostname);
		session_close(s);
		return;
	}
	c->fn(s, &cmd);
}

static void
helo_cont(
    struct session *s, enum filter_verdict v, const struct filter_reply *fr)
{
	const struct upstream_state *us = loop_upstream(s->loop);
	struct capa		     none;
	char			     buf[2048], mechs[CAPA_AUTH_MAX];
	int			     n;

	if (v != FILTER_CONTINUE) {
		free(s->helo);
		s->helo = NULL;
		evidence_truncate(&s->sev, s->sev_connect);
		session_filter_reply(
		    s, v, fr, 550, "5.7.1", "HELO/EHLO refused");
		return;
	}
	if (!s->esmtp) {
		s->advertised = 0;
		session_reply(s, 250, NULL, "%s", s->cf->hostname);
		upstream_start(s);
		return;
	}
	memset(&none, 0, sizeof(none));
	n = capa_ehlo_reply(us->known && us->up ? &us->capa : &none,
	    s->cf->hostname, (uint64_t)LIMIT(s->cf, MAX_MESSAGE_SIZE),
	    (s->cf->chunking ? CAPA_CHUNKING : 0) |
		(session_tls_offered(s) ? CAPA_STARTTLS : 0) | CAPA_AUTH,
	    session_auth_offer(s, mechs, sizeof(mechs)), &s->advertised, buf,
	    sizeof(buf));
	if (n == -1) {
		session_reply(s, 451, "4.3.0", "Internal error");
		return;
	}
	s->max_size = (uint64_t)LIMIT(s->cf, MAX_MESSAGE_SIZE);
	if (us->known && us->up && us->capa.size != 0 &&
	    us->capa.size < s->max_size)
		s->max_size = us->capa.size;
	evbuffer_add(bufferevent_get_output(s->bev), buf, (size_t)n);
	upstream_start(s);
}

static void
cmd_helo(struct session *s, const struct smtp_command *cmd)
{
	int ehlo = cmd->verb == SMTP_VERB_EHLO;

	if (cmd->args[0] == '\0') {
		session_reply(s, 501, "5.5.4", "Syntax: %s hostname",
		    ehlo ? "EHLO" : "HELO");
		session_error(s);
		return;
	}
	if (smtp_valid_helo(cmd->args) != 0) {
		session_reply(s, 501, "5.5.2", "%s: invalid hostname",
		    ehlo ? "EHLO" : "HELO");
		session_error(s);
		return;
	}
	/* RFC 5321 §4.1.4: EHLO/HELO reset any transaction (the
	 * upstream's too: RSET before the next MAIL). */
	if (s->tx != NULL) {
		if (s->tx->mail_ok)
			s->up_dirty = 1;
		tx_log(s, "reset");
		tx_free(s);
	}
	free(s->helo);
	s->helo = xstrdup(cmd->args);
	s->esmtp = ehlo;
	/* A new HELO replaces what the previous one brought. */
	evidence_truncate(&s->sev, s->sev_connect);
	sp_helo_forget(s);
	session_filter(s, FILTER_STAGE_HELO, helo_cont);
}

/* --- MAIL */

static void
upstream_failed_reply(struct session *s, enum up_error err)
{
	switch (err) {
	case UP_ETIMEOUT:
		session_reply(
		    s, 451, "4.4.2", "Upstream timed out, try again later");
		break;
	case UP_ECONNECT:
	case UP_EGREETING:
		session_reply(
		    s, 451, "4.4.1", "Upstream unavailable, try again later");
		break;
	case UP_ETLS:
		session_reply(s, 451, "4.7.5",
		    "Upstream TLS not available, try again later");
		break;
	default:
		session_reply(s, 451, "4.4.2",
		    "Upstream connection lost, try again later");
	}
}

/*
 * Check the transaction's parameters against what the real upstream
 * connection offers (the EHLO we advertised came from the probe). A
 * mismatch must not promise what the upstream refuses: tempfail and
 * re-probe.
 */
static int
mail_capa_mismatch(struct session *s)
{
	const struct capa *c = upstream_capa(s->up);
	uint32_t	   need =
	    s->advertised & (CAPA_8BITMIME | CAPA_SMTPUTF8 | CAPA_DSN);

	return (c->flags & need) != need;
}

static void
mail_reply(void *arg, const struct smtp_reply *r, enum up_error err)
{
	struct session *s = arg;

	if (err != UP_OK) {
		upstream_failed_reply(s, err);
		session_drop_upstream(s);
		tx_free(s);
	} else if (r->code / 100 == 2) {
		s->tx->mail_ok = 1;
		session_relay(s, r);
	} else if (r->code / 100 == 4 || r->code / 100 == 5) {
		session_relay(s, r);
		tx_free(s);
		if (r->code == 421) {
			session_drop_upstream(s);
			session_close(s);
			return;
		}
	} else {
		session_reply(s, 451, "4.3.0", "Unexpected upstream reply");
		session_drop_upstream(s);
		tx_free(s);
	}
	session_resume(s);
}

/* The RSET that precedes a MAIL: the MAIL's own reply tells the client. */
static void
rset_quiet(void *arg, const struct smtp_reply *r, enum up_error err)
{
	struct session *s = arg;

	if (err == UP_OK && r->code / 100 != 2)
		log_warn("event=upstream-rset-refused sid=%016llx code=%d",
		    (unsigned long long)s->sid, r->code);
}

/* An upstream transaction left open (the client reset it): RSET it before
 * the next MAIL or AUTH. */
void
session_upstream_rset(struct session *s)
{
	if (s->up_dirty) {
		upstream_command(s->up, "RSET", rset_quiet, s);
		s->up_dirty = 0;
	}
}

static void
mail_send(struct session *s)
{
	if (mail_capa_mismatch(s)) {
		log_warn("event=upstream-capa-mismatch sid=%016llx",
		    (unsigned long long)s->sid);
		probe_kick(the_probe);
		session_reply(s, 451, "4.3.0",
		    "Upstream capabilities changed, try again later");
		tx_free(s);
		session_resume(s);
		return;
	}
	session_upstream_rset(s);
	upstream_command(s->up, s->tx->mail_line, mail_reply, s);
}

/*
 * The upstream handshake (connect, greeting, EHLO, XCLIENT, EHLO) ends.
 * It was started after HELO/EHLO so that it overlaps the client's next
 * round trip; MAIL may be waiting for it.
 */
static void
upstream_open_done(void *arg, const struct smtp_reply *r, enum up_error err)
{
	struct session *s = arg;
	int		waiting = s->mail_waiting;
	int		auth = s->auth_state == AUTH_OPENING;

	s->up_opening = 0;
	s->mail_waiting = 0;
	if (err != UP_OK) {
		log_warn("event=upstream-connect-failed sid=%016llx "
			 "upstream=%s error=\"%s\"",
		    (unsigned long long)s->sid, s->cf->upstream_spec,
		    up_strerror(err));
		if (err == UP_ECONNECT)
			probe_kick(the_probe);
		session_drop_upstream(s);
		if (auth) {
			session_auth_upstream_ready(s, err);
			return;
		}
		if (!waiting)
			return; /* MAIL will try again */
		upstream_failed_reply(s, err);
		tx_free(s);
		session_resume(s);
		return;
	}
	if (auth)
		session_auth_upstream_ready(s, err);
	else if (waiting)
		mail_send(s);
}

/* Open the upstream connection unless it is open or opening. */
void
upstream_start(struct session *s)
{
	struct upstream_client c;

	if (s->up_opening || (s->up != NULL && upstream_alive(s->up)))
		return;
	/* An authenticated session goes on only on the connection that
	 * carried AUTH (session_auth_lost). */
	if (s->env.auth != NULL)
		return;
	session_drop_upstream(s);
	memset(&c, 0, sizeof(c));
	snprintf(c.addr, sizeof(c.addr), "%s", s->addr);
	c.port = s->port;
	snprintf(c.helo, sizeof(c.helo), "%s", s->helo ? s->helo : "");
	c.esmtp = s->esmtp;
	/* Every filter stage waits for the lookup, so it has ended here. */
	snprintf(c.name, sizeof(c.name), "%s",
	    s->env.client_name != NULL ? s->env.client_name : "");
	c.name_temp = s->rdns.running ||
	    s->env.client_name_status == FILTER_NAME_TEMPFAIL;
	s->up_opening = 1;
	if ((s->up = upstream_unpark(s->sid)) != NULL) {
		log_debug("event=upstream-reuse sid=%016llx",
		    (unsigned long long)s->sid);
		upstream_reuse(s->up, &c, upstream_open_done, s);
		return;
	}
	/* Upstream settings are the process's (restart-only): a pooled
	 * connection may outlive this session's configuration. */
	s->up = upstream_new(s->loop, loop_config(s->loop), s->sid);
	upstream_open(s->up, &c, upstream_open_done, s);
}

static void
mail_cont(
    struct session *s, enum filter_verdict v, const struct filter_reply *fr)
{
	if (v != FILTER_CONTINUE) {
		session_filter_reply(s, v, fr, 550, "5.7.1", "Sender refused");
		tx_free(s);
		return;
	}
	if (session_auth_lost(s)) {
		tx_free(s);
		return;
	}
	session_wait(s);
	if (s->up != NULL && upstream_alive(s->up) && !s->up_opening) {
		mail_send(s);
		return;
	}
	s->mail_waiting = 1;
	upstream_start(s); /* may fail at once and resume */
}

/*
 * Validate ESMTP parameters of MAIL or RCPT and append the ones we relay
 * to line. Returns 0, or -1 after replying.
 */
static int
params_check(struct session *s, int mail, char *rest, struct tx *tx, char *line,
    size_t linesz)
{
	struct smtp_param p[SMTP_PARAMS_MAX];
	size_t		  n, i, len;
	uint64_t	  size;
	int		  rc, ok;

	rc = smtp_parse_params(rest, p, SMTP_PARAMS_MAX, &n);
	if (rc != SMTP_PARSE_OK) {
		session_reply(s, 555, "5.5.4", "Malformed parameters");
		return -1;
	}
	if (n > 0 && !s->esmtp) {
		session_reply(
		    s, 555, "5.5.4", "Parameters need EHLO (RFC 1869)");
		return -1;
	}
	for (i = 0; i < n; i++) {
		const char *k = p[i].key, *v = p[i].value;

		ok = 0;
		if (mail && ascii_strcasecmp(k, "SIZE") == 0) {
			if (v == NULL || smtp_param_size(v, &size) == -1) {
				session_reply(
				    s, 501, "5.5.4", "Bad SIZE parameter");
				return -1;
			}
			if (size > s->max_size) {
				session_reply(s, 552, "5.3.4",
				    "Message size exceeds fixed limit");
				return -1;
			}
			ok = 1;
		} else if (mail && ascii_strcasecmp(k, "BODY") == 0) {
			ok = v != NULL && smtp_param_body(v) == 0 &&
			    (ascii_strcasecmp(v, "7BIT") == 0 ||
				(ascii_strcasecmp(v, "8BITMIME") == 0 &&
				    (s->advertised & CAPA_8BITMIME)));
		} else if (mail && ascii_strcasecmp(k, "SMTPUTF8") == 0) {
			ok = v == NULL && (s->advertised & CAPA_SMTPUTF8);
			tx->smtputf8 = ok;
		} else if (mail && ascii_strcasecmp(k, "RET") == 0) {
			ok = v != NULL && (s->advertised & CAPA_DSN) &&
			    smtp_param_ret(v) == 0;
		} else if (mail && ascii_strcasecmp(k, "AUTH") == 0) {
			/* RFC 4954 §5: relayed as it is when the upstream
			 * does AUTH ("<>" or an xtext identity). */
			ok = v != NULL &&
			    (loop_upstream(s->loop)->capa.flags & CAPA_AUTH) &&
			    (strcmp(v, "<>") == 0 ||
				smtp_valid_xtext(v, 500) == 0);
		} else if (mail && ascii_strcasecmp(k, "ENVID") == 0) {
			ok = v != NULL && (s->advertised & CAPA_DSN) &&
			    smtp_valid_xtext(v, 100) == 0;
		} else if (!mail && ascii_strcasecmp(k, "NOTIFY") == 0) {
			ok = v != NULL && (s->advertised & CAPA_DSN) &&
			    smtp_param_notify(v) == 0;
		} else if (!mail && ascii_strcasecmp(k, "ORCPT") == 0) {
			ok = v != NULL && (s->advertised & CAPA_DSN) &&
			    smtp_param_orcpt(v) == 0;
		}
		if (!ok) {
			char esc[64];

			log_escape(k, strlen(k), esc, sizeof(esc));
			session_reply(
			    s, 555, "5.5.4", "Unsupported option: %s", esc);
			return -1;
		}
		len = strlen(line);
		if (v != NULL)
			snprintf(line + len, linesz - len, " %s=%s", k, v);
		else
			snprintf(line + len, linesz - len, " %s", k);
	}
	return 0;
}

/*
 * Parse the path of MAIL or RCPT; on error reply 553 (enh: 5.1.7 for the
 * sender, 5.1.3 for a recipient) and count the error. 0 or -1.
 */
static int
path_or_reply(struct session *s, const char *args, unsigned flags,
    const char *enh, const char *what, struct smtp_path *path)
{
	switch (smtp_parse_path(args, flags, path)) {
	case SMTP_PARSE_OK:
		return 0;
	case SMTP_PARSE_ETOOLONG:
		session_reply(s, 553, enh, "The %s address is too long", what);
		break;
	default:
		session_reply(s, 553, enh, "Bad %s address syntax", what);
		break;
	}
	session_error(s);
	return -1;
}

static void
cmd_mail(struct session *s, const struct smtp_command *cmd)
{
	struct smtp_path path;
	char		 rest[1024], line[2048];
	struct tx	*tx;

	if (s->tx != NULL) {
		session_reply(s, 503, "5.5.1", "Error: nested MAIL command");
		session_error(s);
		return;
	}
	if (s->lc->tls == LTLS_REQUIRED && s->ssl == NULL) {
		session_reply(
		    s, 530, "5.7.0", "Must issue a STARTTLS command first");
		session_error(s);
		return;
	}
	if (s->helo == NULL && s->cf->helo_required) {
		session_reply(s, 503, "5.5.1", "Error: send HELO/EHLO first");
		session_error(s);
		return;
	}
	if (s->nmessages >= (unsigned)LIMIT(s->cf, MAX_MESSAGES_PER_SESSION)) {
		session_reply(s, 421, "4.7.0",
		    "%s Error: too many messages in this session",
		    s->cf->hostname);
		session_close(s);
		return;
	}
	if (s->helo == NULL)
		s->max_size = (uint64_t)LIMIT(s->cf, MAX_MESSAGE_SIZE);
	if (path_or_reply(s, cmd->args, SMTP_PATH_F_NULL_OK, "5.1.7", "sender",
		&path) == -1)
		return;
	tx = xcalloc(1, sizeof(*tx));
	/* A valid (empty) spool from the start: tx_free() frees it
	 * whether or not the transaction reached DATA. */
	spool_init(
	    &tx->spool, s->cf->spool_dir, (size_t)LIMIT(s->cf, SPOOL_MEMORY));
	snprintf(line, sizeof(line), "MAIL FROM:<%s>", path.mailbox);
	snprintf(rest, sizeof(rest), "%s", path.rest);
	if (params_check(s, 1, rest, tx, line, sizeof(line)) == -1) {
		free(tx);
		session_error(s);
		return;
	}
	if (path.utf8 && !tx->smtputf8) {
		free(tx);
		session_reply(s, 553, "5.6.7",
		    "Must declare SMTPUTF8 to send UTF8 addresses");
		session_error(s);
		return;
	}
	tx->num = ++s->ntx;
	tx->sender = xstrdup(path.mailbox);
	tx->mail_line = xstrdup(line);
	tx->t_start = now_usec();
	s->tx = tx;
	sp_tx_begin(s);
	session_filter(s, FILTER_STAGE_MAIL, mail_cont);
}

/* --- RCPT */

/* Answer the RCPTs still in flight after the upstream connection died. */
static void
rcpt_pipe_abort(struct session *s, int code, const char *enh, const char *text)
{
	char *rcpt;

	while (s->rq_len > 0) {
		rcpt = s->rq[s->rq_head];
		s->rq_head = (s->rq_head + 1) % RCPT_PIPE_MAX;
		s->rq_len--;
		free(rcpt);
		evbuffer_add_printf(bufferevent_get_output(s->bev),
		    "%d %s %s\r\n", code, enh, text);
	}
}

/* The upstream's reply to the oldest RCPT in flight. */
static void
rcpt_reply(void *arg, const struct smtp_reply *r, enum up_error err)
{
	struct session *s = arg;
	struct tx      *tx = s->tx;
	char	       *rcpt = s->rq[s->rq_head];

	s->rq_head = (s->rq_head + 1) % RCPT_PIPE_MAX;
	s->rq_len--;
	if (err != UP_OK) {
		upstream_failed_reply(s, err);
		tx_log(s, "tempfail");
		session_drop_upstream(s);
		tx_free(s);
		/* Their callbacks died with the connection. */
		rcpt_pipe_abort(s, 451, "4.4.2",
		    "Upstream connection lost, try again later");
	} else if (r->code / 100 == 2) {
		if (tx->nrcpts == tx->rcpts_cap) {
			tx->rcpts_cap = tx->rcpts_cap ? tx->rcpts_cap * 2 : 4;
			tx->rcpts = xrealloc(
			    tx->rcpts, tx->rcpts_cap * sizeof(*tx->rcpts));
		}
		tx->rcpts[tx->nrcpts++] = rcpt;
		rcpt = NULL;
		session_relay(s, r);
	} else if (r->code / 100 == 4 || r->code / 100 == 5) {
		tx->rcpt_refused++;
		session_relay(s, r);
		if (r->code == 421) {
			session_drop_upstream(s);
			tx_free(s);
			rcpt_pipe_abort(
			    s, 421, "4.4.2", "Upstream closed the connection");
			free(rcpt);
			session_close(s);
			return;
		}
	} else {
		session_reply(s, 451, "4.3.0", "Unexpected upstream reply");
		session_drop_upstream(s);
		tx_free(s);
		rcpt_pipe_abort(s, 451, "4.3.0", "Unexpected upstream reply");
	}
	free(rcpt);
	if (s->rq_len > 0)
		return;
	/* The group is answered: replies held behind it go out now. */
	if (s->held != NULL && evbuffer_get_length(s->held) > 0)
		evbuffer_add_buffer(bufferevent_get_output(s->bev), s->held);
	if (s->rq_waiting) {
		s->rq_waiting = 0;
		session_resume(s);
	} else
		session_flush(s);
}

/* Is the next complete command line in the input an RCPT? */
static int
next_is_rcpt(struct session *s)
{
	struct evbuffer	   *in = bufferevent_get_input(s->bev);
	struct evbuffer_ptr lf;
	unsigned char	   *p;

	if (evbuffer_get_length(in) < 9)
		return 0;
	lf = evbuffer_search(in, "\n", 1, NULL);
	if (lf.pos == -1)
		return 0;
	p = evbuffer_pullup(in, 5);
	return p != NULL && ascii_strncasecmp((const char *)p, "RCPT ", 5) == 0;
}

static void
rcpt_cont(
    struct session *s, enum filter_verdict v, const struct filter_reply *fr)
{
	char *line;

	if (v == FILTER_DISCARD) {
		/* Milter semantics: the whole message is discarded. */
		s->tx->discard = 1;
		v = FILTER_CONTINUE;
	}
	if (v != FILTER_CONTINUE) {
		s->tx->rcpt_refused++;
		/* What this recipient brought goes with it. */
		evidence_truncate(&s->tx->ev, s->ev_from);
		session_filter_reply(
		    s, v, fr, 550, "5.7.1", "Recipient refused");
		free((char *)s->env.rcpt);
		s->env.rcpt = NULL;
		free(s->rcpt_line);
		s->rcpt_line = NULL;
		return;
	}
	/* The first recipient fixes the transaction's policy group. */
	if (s->tx->group == NULL)
		s->tx->group = s->rgroup;
	line = s->rcpt_line;
	s->rcpt_line = NULL;
	s->rq[(s->rq_head + s->rq_len) % RCPT_PIPE_MAX] = (char *)s->env.rcpt;
	s->rq_len++;
	s->env.rcpt = NULL;
	/*
	 * RFC 2920: with the upstream's PIPELINING, an RCPT followed by
	 * another in the client's input goes out without waiting; the
	 * session stops at the group's end and resumes when all are
	 * answered.
	 */
	if (!((upstream_capa(s->up)->flags & CAPA_PIPELINING) &&
		s->rq_len < RCPT_PIPE_MAX && next_is_rcpt(s))) {
		session_wait(s);
		s->rq_waiting = 1;
	}
	upstream_command(s->up, line, rcpt_reply, s);
	free(line);
}

static void
cmd_rcpt(struct session *s, const struct smtp_command *cmd)
{
	struct smtp_path path;
	char		 rest[1024], line[2048];
	struct tx	*tx = s->tx;

	if (tx == NULL || !tx->mail_ok) {
		session_reply(s, 503, "5.5.1", "Error: need MAIL command");
		session_error(s);
		return;
	}
	if (tx->nrcpts + s->rq_len >= (size_t)LIMIT(s->cf, MAX_RECIPIENTS)) {
		session_reply(s, 452, "4.5.3", "Error: too many recipients");
		return;
	}
	if (path_or_reply(s, cmd->args, SMTP_PATH_F_POSTMASTER, "5.1.3",
		"recipient", &path) == -1)
		return;
	if (path.utf8 && !tx->smtputf8) {
		session_reply(s, 553, "5.6.7",
		    "Must declare SMTPUTF8 to send UTF8 addresses");
		session_error(s);
		return;
	}
	snprintf(line, sizeof(line), "RCPT TO:<%s>", path.mailbox);
	snprintf(rest, sizeof(rest), "%s", path.rest);
	if (params_check(s, 0, rest, tx, line, sizeof(line)) == -1) {
		session_error(s);
		return;
	}
	if (s->up == NULL || !upstream_alive(s->up)) {
		session_reply(s, 451, "4.4.2",
		    "Upstream connection lost, try again later");
		tx_free(s);
		return;
	}
	/*
	 * One policy per message: a recipient of another group than the
	 * first one is deferred (RFC 5321 §4.5.3.1.10) and the client sends
	 * it in a transaction of its own.
	 */
	s->rgroup =
	    policy_group_for(s->rt->policy, path.mailbox, s->env.auth != NULL);
	if (tx->group != NULL && s->rgroup != tx->group) {
		log_info("event=group-split sid=%016llx rcpt_group=%s "
			 "tx_group=%s",
		    (unsigned long long)s->sid, policy_group_name(s->rgroup),
		    policy_group_name(tx->group));
		session_reply(s, 452, "4.5.3",
		    "Recipient has another policy, send it in a separate "
		    "transaction");
		return;
	}
	s->chain.mask = policy_group_mask(s->rgroup);
	s->env.group = policy_group_name(s->rgroup);
	s->env.rcpt = xstrdup(path.mailbox);
	free(s->rcpt_line);
	s->rcpt_line = xstrdup(line);
	session_filter(s, FILTER_STAGE_RCPT, rcpt_cont);
}

/* --- DATA, BDAT */

static void
data_cont(
    struct session *s, enum filter_verdict v, const struct filter_reply *fr)
{
	if (v != FILTER_CONTINUE && v != FILTER_DISCARD) {
		session_filter_reply(s, v, fr, 554, "5.7.1", "Message refused");
		return;
	}
	if (v == FILTER_DISCARD)
		s->tx->discard = 1;
	data_begin(s);
}

static int
data_check(struct session *s)
{
	if (s->tx == NULL || !s->tx->mail_ok) {
		session_reply(s, 503, "5.5.1", "Error: need MAIL command");
		session_error(s);
		return -1;
	}
	if (s->tx->nrcpts == 0) {
		session_reply(s, 554, "5.5.1", "Error: no valid recipients");
		session_error(s);
		return -1;
	}
	if (s->up == NULL || !upstream_alive(s->up)) {
		session_reply(s, 451, "4.4.2",
		    "Upstream connection lost, try again later");
		tx_free(s);
		return -1;
	}
	return 0;
}

static void
cmd_data(struct session *s, const struct smtp_command *cmd)
{
	if (s->tx != NULL && s->tx->bdat) {
		session_reply(
		    s, 503, "5.5.1", "Error: DATA after BDAT is not allowed");
		session_error(s);
		return;
	}
	if (data_check(s) == -1)
		return;
	s->env.rcpts = (const char *const *)s->tx->rcpts;
	s->env.nrcpts = s->tx->nrcpts;
	session_filter(s, FILTER_STAGE_DATA, data_cont);
}

static void
bdat_first_cont(
    struct session *s, enum filter_verdict v, const struct filter_reply *fr)
{
	if (v != FILTER_CONTINUE && v != FILTER_DISCARD) {
		/* The chunk must still be read (RFC 3030 §2). */
		session_filter_reply(s, v, fr, 554, "5.7.1", "Message refused");
		tx_log(s, v == FILTER_TEMPFAIL ? "tempfail" : "reject");
		tx_free(s);
		s->bdat_discard = 1;
		s->state = S_BDAT;
		return;
	}
	if (v == FILTER_DISCARD)
		s->tx->discard = 1;
	data_begin(s);
}

static void
cmd_bdat(struct session *s, const struct smtp_command *cmd)
{
	char	 buf[64], *last;
	uint64_t size;
	size_t	 n;

	n = strlen(cmd->args);
	if (!(s->advertised & CAPA_CHUNKING) || n == 0 || n >= sizeof(buf)) {
		/* Without a size we cannot find the next command. */
		session_reply(s, n == 0 || n >= sizeof(buf) ? 501 : 502,
		    "5.5.4", "Syntax: BDAT count [LAST]");
		session_close(s);
		return;
	}
	memcpy(buf, cmd->args, n + 1);
	last = strchr(buf, ' ');
	if (last != NULL) {
		*last++ = '\0';
		while (*last == ' ')
			last++;
	}
	if (smtp_param_size(buf, &size) == -1 ||
	    (last != NULL && ascii_strcasecmp(last, "LAST") != 0)) {
		session_reply(s, 501, "5.5.4", "Syntax: BDAT count [LAST]");
		session_close(s);
		return;
	}
	s->bdat_left = (size_t)size;
	s->bdat_size = (size_t)size;
	s->bdat_last = last != NULL;
	s->bdat_discard = 0;
	if (s->tx != NULL && s->tx->bdat) {
		/* A later chunk of a transaction under way. */
		s->state = S_BDAT;
		return;
	}
	if (data_check(s) == -1) {
		s->bdat_discard = 1;
		s->state = S_BDAT;
		return;
	}
	s->tx->bdat = 1;
	session_filter(s, FILTER_STAGE_DATA, bdat_first_cont);
}

/* --- the rest */

static void
rset_reply(void *arg, const struct smtp_reply *r, enum up_error err)
{
	struct session *s = arg;

	if (err != UP_OK || r->code / 100 != 2)
		session_drop_upstream(s);
	session_reply(s, 250, "2.0.0", "Ok");
	session_resume(s);
}

static void
cmd_rset(struct session *s, const struct smtp_command *cmd)
{
	int upstream_tx = s->tx != NULL && s->tx->mail_ok;

	if (s->tx != NULL) {
		tx_log(s, "reset");
		tx_free(s);
	}
	if (upstream_tx && s->up != NULL && upstream_alive(s->up)) {
		session_wait(s);
		upstream_command(s->up, "RSET", rset_reply, s);
		return;
	}
	session_reply(s, 250, "2.0.0", "Ok");
}

static void
cmd_noop(struct session *s, const struct smtp_command *cmd)
{
	session_reply(s, 250, "2.0.0", "Ok");
}

static void
cmd_quit(struct session *s, const struct smtp_command *cmd)
{
	session_reply(s, 221, "2.0.0", "Bye");
	session_close(s);
}

static void
cmd_help(struct session *s, const struct smtp_command *cmd)
{
	session_reply(s, 214, "2.0.0",
	    "Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP "
	    "VRFY");
}

static void
cmd_vrfy(struct session *s, const struct smtp_command *cmd)
{
	if (cmd->args[0] == '\0') {
		session_reply(s, 501, "5.5.4", "Syntax: VRFY address");
		session_error(s);
		return;
	}
	/* RFC 5321 §3.5.3: no user enumeration through moat. */
	session_reply(s, 252, "2.5.2",
	    "Cannot VRFY user, but will accept message and attempt delivery");
}

static void
cmd_unimpl(struct session *s, const struct smtp_command *cmd)
{
	session_reply(s, 502, "5.5.1", "Error: command not implemented");
	session_error(s);
}

/* -------------------------------------------------------------- input */

/*
 * Take one command line out of the input. Returns 1 with a line, 0 when
 * none is complete yet, -1 after a reply when the line was refused.
 *
 * Under bare_newline = reject a line ends only at CR LF, so a bare LF or
 * CR is inside the line and the whole line is refused: nothing after a
 * bare LF can run as a command of its own (invariant 2). Under normalize
 * a bare LF ends a line and stray CRs are dropped. NULs follow nul_byte.
 * max_line_length bounds every line, complete or not.
 */
static int
read_command(struct session *s, char **linep)
{
	struct evbuffer	   *in = bufferevent_get_input(s->bev);
	size_t		    max, len, eol, i, j;
	int		    strict = s->cf->bare_newline == BARE_REJECT;
	struct evbuffer_ptr p;
	char		   *line;
	int		    bare = 0, nul = 0;

	max = session_auth_line_max(s, (size_t)LIMIT(s->cf, MAX_LINE_LENGTH));
	p = evbuffer_search(in, strict ? "\r\n" : "\n", strict ? 2 : 1, NULL);
	if (p.pos == -1) {
		if (evbuffer_get_length(in) >= max) {
			/* Keep the last byte: it may be the CR of a CRLF. */
			evbuffer_drain(in, evbuffer_get_length(in) - 1);
			if (!s->skip_line) {
				s->skip_line = 1;
				session_reply(
				    s, 500, "5.5.6", "Error: line too long");
				session_error(s);
				return -1;
			}
		}
		return 0;
	}
	eol = strict ? 2 : 1;
	len = (size_t)p.pos + eol;
	if (s->skip_line) {
		/* The tail of a line already refused. */
		evbuffer_drain(in, len);
		s->skip_line = 0;
		return -1;
	}
	if (len > max) {
		evbuffer_drain(in, len);
		session_reply(s, 500, "5.5.6", "Error: line too long");
		session_error(s);
		return -1;
	}
	line = xmalloc(len + 1);
	evbuffer_remove(in, line, len);
	len -= eol;
	if (!strict && len > 0 && line[len - 1] == '\r')
		len--;
	else if (!strict)
		bare = 1; /* ended by a bare LF */
	line[len] = '\0';
	for (i = 0; i < len; i++) {
		if (line[i] == '\r' || line[i] == '\n')
			bare = 1;
		else if (line[i] == '\0')
			nul = 1;
	}
	if ((bare && strict) || (nul && s->cf->nul_byte == BARE_REJECT)) {
		log_info("event=bare-newline sid=%016llx client=%s "
			 "where=command",
		    (unsigned long long)s->sid, s->addr);
		session_reply(
		    s, 500, "5.5.2", "Error: bare CR, LF or NUL in command");
		free(line);
		session_error(s);
		return -1;
	}
	if (bare || nul) {
		for (i = j = 0; i < len; i++)
			if (line[i] != '\r' && line[i] != '\0')
				line[j++] = line[i];
		line[j] = '\0';
	}
	*linep = line;
	return 1;
}

void
session_process(struct session *s)
{
	char *line;
	int   rc;

	if (s->in_process) {
		s->again = 1;
		return;
	}
	s->in_process = 1;
	do {
		s->again = 0;
		while (!s->waiting && s->state != S_CLOSING &&
		    s->state != S_PROXY && s->state != S_CONNECT &&
		    s->state != S_TLS) {
			if (evbuffer_get_length(
				bufferevent_get_output(s->bev)) > OUTPUT_HIGH) {
				/* Write what the kernel takes; if it still does
				 * not fit, the client is not reading its
				 * replies: wait for the write callback. */
				session_flush(s);
				if (evbuffer_get_length(bufferevent_get_output(
					s->bev)) > OUTPUT_HIGH) {
					s->output_full = 1;
					break;
				}
			}
			if (s->state == S_DATA) {
				if (data_feed(s) == 0)
					break;
				continue;
			}
			if (s->state == S_BDAT) {
				if (bdat_feed(s) == 0)
					break;
				continue;
			}
			if (s->rq_len > 0 &&
			    (!next_is_rcpt(s) ||
				(s->held != NULL &&
				    evbuffer_get_length(s->held) > 0))) {
				/* Wait for the pipelined RCPTs' replies. */
				s->waiting = 1;
				s->rq_waiting = 1;
				evtimer_del(s->timer);
				break;
			}
			rc = read_command(s, &line);
			if (rc == 0)
				break;
			if (rc == -1 && s->auth_state == AUTH_CLIENT)
				session_auth_abort(s);
			if (rc == 1) {
				int secret = session_auth_secret(s, line);

				if (s->auth_state == AUTH_CLIENT)
					session_auth_response(s, line);
				else
					session_command(s, line);
				if (secret)
					explicit_bzero(line, strlen(line));
				free(line);
				/* The next command gets a full command_timeout
				 * (unless this one went asynchronous). */
				if (!s->waiting && s->state == S_CMD)
					session_arm_command_deadline(s);
			}
		}
	} while (s->again);
	s->in_process = 0;
	if (s->read_paused && s->state != S_CLOSING &&
	    evbuffer_get_length(bufferevent_get_input(s->bev)) <
		INPUT_HIGH / 2) {
		s->read_paused = 0;
		session_set_read_timeout(s, s->read_timeout);
	}
	session_flush(s);
	/* STARTTLS answered: the handshake begins once the 220 is out. */
	if (s->state == S_TLS && s->ssl == NULL &&
	    evbuffer_get_length(bufferevent_get_output(s->bev)) == 0 &&
	    session_tls_start(s) == -1)
		session_free(s);
}

void
session_set_read_timeout(struct session *s, long sec)
{
	struct timeval tv = tv_sec(sec);

	s->read_timeout = sec;
	if (s->ssl != NULL) {
		struct timeval wt = tv_sec(LIMIT(s->cf, COMMAND_TIMEOUT));

		bufferevent_set_timeouts(s->bev, sec ? &tv : NULL, &wt);
		return;
	}
	if (!s->read_paused && s->state != S_CLOSING)
		event_add(s->rev, sec ? &tv : NULL);
}

/*
 * How much to read of a PROXY header in front of implicit TLS: exactly
 * the header, never a byte of the ClientHello behind it (OpenSSL reads
 * that from the socket itself). The bytes are looked at with MSG_PEEK:
 * while the header is incomplete, everything there is part of it; once
 * it is complete, just the rest of it. 0: nothing to read yet.
 */
static size_t
proxy_header_want(struct session *s, int fd)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	unsigned char	 buf[PP_V2_MAX];
	size_t		 have = evbuffer_get_length(in), consumed;
	struct pp_info	 pi;
	ssize_t		 r;
	int		 versions = PP_V1 | PP_V2;

	if (have >= sizeof(buf))
		return 1; /* the parser refuses it */
	if (have > 0)
		evbuffer_copyout(in, buf, have);
	do
		r = recv(fd, buf + have, sizeof(buf) - have, MSG_PEEK);
	while (r == -1 && errno == EINTR);
	if (r <= 0)
		return r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)
		    ? 1 /* let the read find EOF or the error */
		    : 0;
	if (s->lc->proxy_protocol == PROXY_PROTO_V1)
		versions = PP_V1;
	else if (s->lc->proxy_protocol == PROXY_PROTO_V2)
		versions = PP_V2;
	switch (
	    proxyproto_parse(buf, have + (size_t)r, versions, &pi, &consumed)) {
	case PP_OK:
		return consumed - have;
	default: /* all of it is the header, or refused once read */
		return (size_t)r;
	}
}

/*
 * Reads, without libevent's evbuffer_read(): that one asks FIONREAD and
 * then reads at most 4 KiB per call (libevent 2.1), which made a 100 KB
 * message cost some 70 system calls. One readv into reserved space: 64 KiB
 * while content flows, 4 KiB for commands. Input above INPUT_HIGH pauses
 * reading until the session has consumed it (session_process).
 */
static void
session_recv(evutil_socket_t fd, short what, void *arg)
{
	struct session	     *s = arg;
	struct evbuffer	     *in = bufferevent_get_input(s->bev);
	struct evbuffer_iovec v[2];
	size_t		      want, left;
	ssize_t		      r;
	int		      n, i;

	if (what & EV_TIMEOUT) {
		session_event_cb(
		    s->bev, BEV_EVENT_READING | BEV_EVENT_TIMEOUT, s);
		return;
	}
	if (evbuffer_get_length(in) >= INPUT_HIGH) {
		event_del(s->rev);
		s->read_paused = 1;
		return;
	}
	want = (s->state == S_DATA || s->state == S_BDAT) ? 65536 : 4096;
	if (s->state == S_PROXY && s->lc->tls == LTLS_IMPLICIT &&
	    (want = proxy_header_want(s, fd)) == 0)
		return;
	/* The bufferevent keeps the input's end frozen: thaw around us. */
	evbuffer_unfreeze(in, 0);
	n = evbuffer_reserve_space(in, (ev_ssize_t)want, v, 2);
	if (n <= 0) {
		evbuffer_freeze(in, 0);
		return;
	}
	/* The space may be larger than asked: read no more than want. */
	for (i = 0, left = want; i < n; i++) {
		if (v[i].iov_len > left)
			v[i].iov_len = left;
		left -= v[i].iov_len;
	}
	do
		r = readv(fd, (struct iovec *)v, n);
	while (r == -1 && errno == EINTR);
	if (r > 0) {
		for (i = 0, left = (size_t)r; i < n; i++) {
			if (v[i].iov_len > left)
				v[i].iov_len = left;
			left -= v[i].iov_len;
		}
		evbuffer_commit_space(in, v, n);
	}
	evbuffer_freeze(in, 0);
	if (r == 0) {
		session_event_cb(s->bev, BEV_EVENT_READING | BEV_EVENT_EOF, s);
		return;
	}
	if (r == -1) {
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			session_event_cb(
			    s->bev, BEV_EVENT_READING | BEV_EVENT_ERROR, s);
		return;
	}
	session_read_cb(s->bev, s);
}

void
session_read_cb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	if (s->state == S_PROXY) {
		struct evbuffer *in = bufferevent_get_input(bev);
		struct pp_info	 pi;
		size_t		 consumed, len = evbuffer_get_length(in);
		unsigned char	*p;
		int		 versions;
		enum pp_result	 r;

		versions = s->lc->proxy_protocol == PROXY_PROTO_V1 ? PP_V1
		    : s->lc->proxy_protocol == PROXY_PROTO_V2	   ? PP_V2
							      : PP_V1 | PP_V2;
		if (len > PP_V2_MAX)
			len = PP_V2_MAX;
		p = evbuffer_pullup(in, (ssize_t)len);
		r = proxyproto_parse(p, len, versions, &pi, &consumed);
		if (r == PP_NEED_MORE)
			return;
		if (r == PP_ERROR) {
			log_warn("event=proxy-protocol-error sid=%016llx "
				 "peer=%s",
			    (unsigned long long)s->sid, s->addr);
			session_free(s);
			return;
		}
		evbuffer_drain(in, consumed);
		if (!pi.local) {
			char old[ADDR_STRLEN];

			snprintf(old, sizeof(old), "%s", s->addr);
			memcpy(&s->peer, &pi.src, pi.srclen);
			s->peerlen = pi.srclen;
			addr_unmap(&s->peer, &s->peerlen);
			addr_ntop((struct sockaddr *)&s->peer, s->addr,
			    sizeof(s->addr));
			s->port = addr_port((struct sockaddr *)&s->peer);
			log_info("event=proxy sid=%016llx via=%s client=%s "
				 "port=%d",
			    (unsigned long long)s->sid, old, s->addr, s->port);
		}
		evtimer_del(s->timer);
		session_admit(s);
		/* Commands pipelined behind the header are waiting. */
		session_process(s);
		return;
	}
	session_process(s);
}

void
session_write_cb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	/* Called once the output is empty (low watermark 0). */
	if (s->state == S_CLOSING) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
			session_free(s);
		return;
	}
	if (s->state == S_TLS) {
		/* The 220 to STARTTLS is out (or a handshake write). */
		if (s->ssl == NULL && session_tls_start(s) == -1)
			session_free(s);
		return;
	}
	if (s->ssl == NULL)
		bufferevent_disable(bev, EV_WRITE);
	if (s->output_full) {
		s->output_full = 0;
		session_process(s);
	}
}

void
session_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;

	if (s->state == S_TLS && s->ssl != NULL) {
		session_tls_event(s, what);
		return;
	}
	if (what & BEV_EVENT_CONNECTED)
		return;
	const char *why = (what & BEV_EVENT_EOF) ? "eof"
	    : (what & BEV_EVENT_TIMEOUT)	 ? "timeout"
						 : "error";

	if (s->state != S_CLOSING) {
		log_info("event=client-gone sid=%016llx client=%s reason=%s "
			 "state=%d tx=%s",
		    (unsigned long long)s->sid, s->addr, why, (int)s->state,
		    s->tx ? "open" : "none");
		if (what & BEV_EVENT_TIMEOUT) {
			/* Best effort: tell the client why. */
			session_reply(s, 421, "4.4.2",
			    "%s Error: timeout exceeded", s->cf->hostname);
			if (s->tx != NULL)
				tx_log(s, "timeout");
			tx_free(s);
			session_close(s);
			return;
		}
		if (s->tx != NULL)
			tx_log(s, "client-gone");
	}
	session_free(s);
}

static void
session_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	if (s->state == S_TLS) {
		session_tls_timeout(s);
		return;
	}
	if (s->state == S_CLOSING || s->state == S_PROXY) {
		if (s->state == S_PROXY)
			log_warn("event=proxy-protocol-timeout sid=%016llx "
				 "peer=%s",
			    (unsigned long long)s->sid, s->addr);
		session_free(s);
		return;
	}
	log_info("event=timeout sid=%016llx client=%s state=%d",
	    (unsigned long long)s->sid, s->addr, (int)s->state);
	session_reply(
	    s, 421, "4.4.2", "%s Error: timeout exceeded", s->cf->hostname);
	if (s->tx != NULL)
		tx_log(s, "timeout");
	session_close(s);
}

/* -------------------------------------------------- connection set-up */

static void
connect_cont(
    struct session *s, enum filter_verdict v, const struct filter_reply *fr)
{
	s->waiting = 0;
	s->sev_connect = s->sev.n; /* what HELO evidence is added to */
	if (v == FILTER_CONTINUE) {
		s->state = S_CMD;
		session_reply(
		    s, 220, NULL, "%s %s", s->cf->hostname, s->cf->banner);
		session_arm_command_deadline(s);
		return;
	}
	/* RFC 5321 §3.1: 554 instead of the greeting; we then close. */
	session_filter_reply(s, v, fr, v == FILTER_TEMPFAIL ? 421 : 554,
	    v == FILTER_TEMPFAIL ? "4.7.0" : "5.7.1", "Connection refused");
	session_close(s);
}

void
session_greet(struct session *s)
{
	const struct upstream_state *us = loop_upstream(s->loop);

	if (us->known && !us->up) {
		log_info("event=reject-upstream-down sid=%016llx client=%s",
		    (unsigned long long)s->sid, s->addr);
		session_reply(s, 421, "4.3.2",
		    "%s Service not available, try again later",
		    s->cf->hostname);
		session_close(s);
		return;
	}
	s->state = S_CONNECT;
	s->env.client_addr = s->addr;
	s->env.client_port = s->port;
	session_filter(s, FILTER_STAGE_CONNECT, connect_cont);
}

/* Connection limits on the real client address, then the greeting. */
static void
session_admit(struct session *s)
{
	const struct config *cf = s->cf;
	enum admit_result    ar;

	ar = conn_admit((struct sockaddr *)&s->peer, LIMIT(cf, MAX_CONNECTIONS),
	    LIMIT(cf, MAX_CONNECTIONS_PER_IP));
	if (ar != ADMIT_OK) {
		log_info("event=reject-connection-limit sid=%016llx client=%s "
			 "limit=%s",
		    (unsigned long long)s->sid, s->addr,
		    ar == ADMIT_TOTAL ? "max_connections"
				      : "max_connections_per_ip");
		/* A TLS client would take a plaintext 421 for garbage. */
		if (s->lc->tls != LTLS_IMPLICIT)
			session_reply(s, 421, "4.7.0",
			    "%s Error: too many connections", cf->hostname);
		session_close(s);
		return;
	}
	s->admitted = 1;
	session_rdns_start(s);
	if (s->lc->tls == LTLS_IMPLICIT) {
		/* RFC 8314 §3.3: TLS first; the greeting comes inside. */
		if (session_tls_start(s) == -1)
			session_close(s); /* frees from the timer */
		return;
	}
	session_greet(s);
}

void
session_accept(struct loop *l, int fd, const struct sockaddr *sa, int salen,
    const struct listener_conf *lc)
{
	struct runtime	    *rt = runtime_current_acquire();
	const struct config *cf = rt->cf;
	struct session	    *s = xcalloc(1, sizeof(*s));
	size_t		     i;

	s->rt = rt;
	s->sid = loop_new_sid(l);
	s->loop = l;
	s->cf = cf;
	s->lc = lc;
	s->t_connect = now_usec();
	memcpy(&s->peer, sa, (size_t)salen);
	s->peerlen = (socklen_t)salen;
	addr_unmap(&s->peer, &s->peerlen);
	addr_ntop((struct sockaddr *)&s->peer, s->addr, sizeof(s->addr));
	s->port = addr_port((struct sockaddr *)&s->peer);
	s->env.sid = s->sid;
	s->env.client_addr = s->addr;
	s->env.client_port = s->port;
	s->env.client_sa = (const struct sockaddr *)&s->peer;
	evidence_init(&s->sev);
	s->max_size = (uint64_t)LIMIT(cf, MAX_MESSAGE_SIZE);
	s->bev = bufferevent_socket_new(
	    loop_base(l), fd, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (s->bev == NULL) {
		close(fd);
		runtime_release(rt);
		free(s);
		return;
	}
	s->timer = evtimer_new(loop_base(l), session_timer_cb, s);
	chain_run_init(&s->chain, rt->chain, l, s->sid);
	loop_register(l, s->sid, s);
	bufferevent_setcb(
	    s->bev, session_read_cb, session_write_cb, session_event_cb, s);

	{
		struct timeval wt = tv_sec(LIMIT(cf, COMMAND_TIMEOUT));

		bufferevent_set_timeouts(s->bev, NULL, &wt);
	}
	/*
	 * The bufferevent only writes (and only when the kernel is full, see
	 * session_flush); reads are session_recv's. New bufferevents start
	 * with EV_WRITE enabled.
	 */
	bufferevent_disable(s->bev, EV_READ | EV_WRITE);
	s->rev =
	    event_new(loop_base(l), fd, EV_READ | EV_PERSIST, session_recv, s);
	event_add(s->rev, NULL);

	log_info("event=connect sid=%016llx client=%s port=%d listener=%s",
	    (unsigned long long)s->sid, s->addr, s->port, lc->spec);

	if (lc->proxy_protocol != PROXY_PROTO_OFF) {
		int trusted = 0;

		for (i = 0; i < lc->ntrusted; i++)
			if (cidr_match(
				&lc->trusted[i], (struct sockaddr *)&s->peer))
				trusted = 1;
		if (!trusted) {
			log_warn("event=proxy-untrusted sid=%016llx peer=%s",
			    (unsigned long long)s->sid, s->addr);
			session_free(s);
			return;
		}
		s->state = S_PROXY;
		session_set_timer(s, LIMIT(cf, PROXY_PROTOCOL_TIMEOUT));
		return;
	}
	session_admit(s);
	session_flush(s);
}

void
session_free(struct session *s)
{
	uint64_t now = now_usec();

	log_info("event=disconnect sid=%016llx client=%s messages=%u "
		 "errors=%u duration_ms=%llu",
	    (unsigned long long)s->sid, s->addr, s->nmessages, s->nerrors,
	    (unsigned long long)((now - s->t_connect) / 1000));
	chain_run_cancel(&s->chain);
	rdns_cancel(&s->rdns);
	session_release_upstream(s);
	tx_free(s);
	session_auth_free(s);
	chain_run_free(&s->chain);
	evidence_free(&s->sev);
	free((char *)s->env.rcpt);
	free(s->rcpt_line);
	while (s->rq_len > 0) {
		free(s->rq[s->rq_head]);
		s->rq_head = (s->rq_head + 1) % RCPT_PIPE_MAX;
		s->rq_len--;
	}
	if (s->held != NULL)
		evbuffer_free(s->held);
	if (s->admitted)
		conn_release((struct sockaddr *)&s->peer);
	loop_unregister(s->loop, s->sid);
	event_free(s->timer);
	event_free(s->rev); /* before the fd closes with the bev */
	if (s->tls != NULL) {
		/* close_notify, best effort; SMTP ends with QUIT anyway. */
		SSL_shutdown(s->ssl);
		ERR_clear_error();
		free(s->tls);
	}
	bufferevent_free(s->bev);
	free(s->helo);
	runtime_release(s->rt);
	free(s);
}

/* ------------------------------------------------------------ draining */

static void
drain_one(void *arg)
{
	struct session *s = arg;

	if (s->state == S_CLOSING)
		return;
	session_reply(
	    s, 421, "4.3.2", "%s Service shutting down", s->cf->hostname);
	if (s->tx != NULL)
		tx_log(s, "shutdown");
	tx_free(s);
	session_close(s);
}

/* Sessions between transactions have nothing to finish: 421 now. */
static void
drain_idle(void *arg)
{
	struct session *s = arg;

	if (s->state == S_CMD && s->tx == NULL && !s->waiting &&
	    s->rq_len == 0 &&
	    evbuffer_get_length(bufferevent_get_input(s->bev)) == 0)
		drain_one(s);
}

static void
drain_check(evutil_socket_t fd, short what, void *arg)
{
	struct loop   *l = arg;
	struct timeval tick = tv_msec(100);

	if (loop_nsessions(l) == 0)
		event_base_loopbreak(loop_base(l));
	else
		event_base_once(
		    loop_base(l), -1, EV_TIMEOUT, drain_check, l, &tick);
}

static void
drain_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct loop *l = arg;

	loop_foreach(l, drain_one);
}

void
session_drain_loop(struct loop *l, void *arg)
{
	const struct config *cf = loop_config(l);
	struct timeval	     tv = tv_sec(LIMIT(cf, DRAIN_TIMEOUT));

	/* Idle sessions are told 421 now; one that finishes a transaction
	 * during the drain gets 421 at its next command; the rest have
	 * drain_timeout. One-shot events: libevent frees them, fired or
	 * not, with the base. */
	loop_draining = 1;
	loop_foreach(l, drain_idle);
	event_base_once(loop_base(l), -1, EV_TIMEOUT, drain_deadline, l, &tv);
	drain_check(-1, 0, l);
}
