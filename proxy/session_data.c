/*
 * session_data.c - message content: DATA (RFC 5321 §4.1.1.4) and BDAT
 * (RFC 3030) reception into the spool through the anti-smuggling framer,
 * header limits (RFC 5322 §2.2; Received: loop detection, RFC 5321
 * §6.3), the content filter stages (HEADER, EOH, BODY, EOM), and the hand
 * over to the upstream.
 *
 * Invariant 1 lives here: the client gets 250 for its message only when
 * the upstream answered 2xx to the final dot of exactly that content;
 * every failure before that is a 4xx, so the client keeps the message.
 *
 * Threading: the session's loop thread only. Content spans passed to the
 * BODY stage are valid during the callback only.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "escape.h"
#include "log.h"
#include "loop.h"
#include "session_int.h"
#include "upstream.h"
#include "util.h"

static void pump(struct session *);

/* Framer output: limits, header parsing, spool. */
static void
content_emit(void *arg, const char *p, size_t n)
{
	struct session	    *s = arg;
	struct tx	    *tx = s->tx;
	const struct config *cf = s->cf;

	if (tx->failed != TXF_NONE)
		return;
	tx->size += n;
	if (tx->size > s->max_size) {
		tx->failed = TXF_SIZE;
		return;
	}
	if (!tx->hp.in_body) {
		hdrparse_feed(&tx->hp, p, n);
		if (tx->hp.error != HDR_OK) {
			tx->failed = TXF_HEADER;
			return;
		}
		if (tx->hp.received > (size_t)LIMIT(cf, MAX_RECEIVED_HEADERS)) {
			tx->failed = TXF_HOPS;
			return;
		}
	}
	/* Stored re-dot-stuffed: the spool is what the upstream gets. */
	dotstuff_feed(&tx->ds, p, n);
}

static void
spool_emit(void *arg, const char *p, size_t n)
{
	struct tx *tx = arg;

	if (tx->failed == TXF_NONE && spool_write(&tx->spool, p, n) == -1)
		tx->failed = TXF_SPOOL;
}

/* Each header field as it arrives: what the policy needs to know. */
static void
hdr_seen(void *arg, const char *name, size_t namelen, const char *value,
    size_t valuelen)
{
	sp_header_seen(arg, name, namelen, value, valuelen);
}

void
data_begin(struct session *s)
{
	struct tx	    *tx = s->tx;
	const struct config *cf = s->cf;
	struct timeval	     tv = tv_sec(LIMIT(cf, DATA_TOTAL_TIMEOUT));

	tx->t_data = now_usec();
	spool_init(&tx->spool, cf->spool_dir, (size_t)LIMIT(cf, SPOOL_MEMORY));
	tx->hdrbuf = xmalloc((size_t)LIMIT(cf, MAX_HEADER_SIZE));
	hdrparse_init(&tx->hp, tx->hdrbuf, (size_t)LIMIT(cf, MAX_HEADER_SIZE),
	    (size_t)LIMIT(cf, MAX_HEADER_COUNT), hdr_seen, s);
	dotstuff_init(&tx->ds, spool_emit, tx);
	dataframe_init(&tx->df, tx->bdat ? DF_MODE_BDAT : DF_MODE_DATA,
	    cf->bare_newline == BARE_NORMALIZE ? DF_NORMALIZE : DF_REJECT,
	    cf->nul_byte == BARE_NORMALIZE ? DF_NORMALIZE : DF_REJECT,
	    content_emit, s);
	/* The whole transfer has a deadline; each read its own timeout. */
	evtimer_add(s->timer, &tv);
	session_set_read_timeout(s, LIMIT(cf, DATA_TIMEOUT));
	upstream_keepalive(s->up, 1);
	if (tx->bdat) {
		s->state = S_BDAT;
		return;
	}
	s->state = S_DATA;
	session_reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
}

/* Feed what the client sent; 0 when more input is needed. */
int
data_feed(struct session *s)
{
	struct evbuffer	     *in = bufferevent_get_input(s->bev);
	struct evbuffer_iovec v;
	size_t		      used;

	while (evbuffer_get_length(in) > 0) {
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		used = dataframe_feed(&s->tx->df, v.iov_base, v.iov_len);
		evbuffer_drain(in, used);
		if (s->tx->df.done) {
			data_end(s);
			return 1;
		}
	}
	return 0;
}

/*
 * The framer records what it saw under either policy; the content is
 * refused only for what the configuration says to refuse.
 */
static int
df_refused(const struct session *s)
{
	unsigned f = s->tx->df.flags;

	return ((f & (DF_F_BARE_LF | DF_F_BARE_CR)) &&
		   s->cf->bare_newline == BARE_REJECT) ||
	    ((f & DF_F_NUL) && s->cf->nul_byte == BARE_REJECT);
}

int
bdat_feed(struct session *s)
{
	struct evbuffer	     *in = bufferevent_get_input(s->bev);
	struct evbuffer_iovec v;
	size_t		      n;

	while (s->bdat_left > 0 && evbuffer_get_length(in) > 0) {
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		n = v.iov_len < s->bdat_left ? v.iov_len : s->bdat_left;
		if (!s->bdat_discard)
			dataframe_feed(&s->tx->df, v.iov_base, n);
		evbuffer_drain(in, n);
		s->bdat_left -= n;
	}
	if (s->bdat_left > 0)
		return 0;
	/* The chunk is complete. */
	if (s->bdat_discard) {
		s->bdat_discard = 0;
		s->state = S_CMD;
		session_arm_command_deadline(s);
		return 1;
	}
	if (df_refused(s))
		s->tx->failed = TXF_BARE;
	if (s->bdat_last) {
		dataframe_finish(&s->tx->df);
		data_end(s);
		return 1;
	}
	s->state = S_CMD;
	if (s->tx->failed != TXF_NONE) {
		/* Fail the transaction now; later chunks get 503. */
		data_end(s);
		return 1;
	}
	session_reply(s, 250, "2.0.0", "Ok: %zu octets received", s->bdat_size);
	session_arm_command_deadline(s);
	return 1;
}

/* ----------------------------------------------------- end of message */

static void
after_reset(void *arg, const struct smtp_reply *r, enum up_error err)
{
	struct session *s = arg;

	if (err != UP_OK || r->code / 100 != 2)
		session_drop_upstream(s);
	session_resume(s);
}

/* The transaction ends without forwarding: reset the upstream's side. */
void
tx_abandon(struct session *s, const char *verdict)
{
	tx_log(s, verdict);
	tx_free(s);
	if (s->up != NULL && upstream_alive(s->up)) {
		s->waiting = 1;
		upstream_command(s->up, "RSET", after_reset, s);
		return;
	}
	session_resume(s);
}

static void
final_reply(void *arg, const struct smtp_reply *r, enum up_error err)
{
	struct session *s = arg;
	struct tx      *tx = s->tx;
	const char     *verdict;

	if (err != UP_OK) {
		/* No 250 from the upstream: the client keeps the message. */
		session_reply(s, 451, "4.4.2",
		    "Upstream failed (%s), try again later", up_strerror(err));
		verdict = "tempfail";
		session_drop_upstream(s);
	} else if (r->code / 100 == 2 || r->code / 100 == 4 ||
	    r->code / 100 == 5) {
		session_relay(s, r);
		snprintf(tx->final, sizeof(tx->final), "%s",
		    r->text + r->off[r->nlines - 1]);
		verdict = r->code / 100 == 2 ? "accepted"
		    : r->code / 100 == 4     ? "tempfail"
					     : "rejected";
		if (r->code == 421) {
			tx_log(s, verdict);
			tx_free(s);
			session_drop_upstream(s);
			session_close(s);
			return;
		}
	} else {
		session_reply(s, 451, "4.3.0", "Unexpected upstream reply");
		verdict = "tempfail";
		session_drop_upstream(s);
	}
	tx_log(s, verdict);
	tx_free(s);
	session_resume(s);
}

static void
eom_cont(
    struct session *s, enum filter_verdict v, const struct filter_reply *fr)
{
	struct tx *tx = s->tx;

	if (v == FILTER_REJECT || v == FILTER_TEMPFAIL) {
		if (tx->decision.action == ACT_NONE) {
			tx->decision.action =
			    v == FILTER_REJECT ? ACT_REJECT : ACT_TEMPFAIL;
			snprintf(tx->decision.reason,
			    sizeof(tx->decision.reason), "filter %s",
			    s->chain.decided_by ? s->chain.decided_by : "?");
		}
		session_filter_reply(s, v, fr, 554, "5.7.1", "Message refused");
		tx_abandon(s, v == FILTER_REJECT ? "rejected" : "tempfail");
		return;
	}
	if (v == FILTER_DISCARD || tx->discard) {
		/* The one exception to invariant 1: explicit and logged. */
		tx->decision.action = ACT_DISCARD;
		session_reply(s, 250, "2.0.0", "Ok: discarded");
		tx_abandon(s, "discarded");
		return;
	}
	sp_eom(s);
}

/* Hand the message to the upstream: prefix (or NULL), then the spool. */
void
tx_forward(struct session *s, struct evbuffer *prefix, size_t off)
{
	s->waiting = 1;
	upstream_send_message(
	    s->up, prefix, &s->tx->spool, off, final_reply, s);
}

/* --- content stages, run over the spooled message */

/* The field the header walk just completed, copied (the parser reuses
 * its buffer within the same feed). */
static void
pump_field_cb(void *arg, const char *name, size_t namelen, const char *value,
    size_t valuelen)
{
	struct tx *tx = ((struct session *)arg)->tx;

	free(tx->pf_name);
	free(tx->pf_value);
	tx->pf_name = xstrndup(name, namelen);
	tx->pf_value = xstrndup(value, valuelen);
	tx->pf_ready = 1;
}

static void
pump_cont(
    struct session *s, enum filter_verdict v, const struct filter_reply *fr)
{
	if (v != FILTER_CONTINUE) {
		eom_cont(s, v, fr);
		return;
	}
	pump(s);
}

static void pump_done_cb(
    void *, enum filter_verdict, const struct filter_reply *);

/* Run a content stage; 1 if pump() must stop (pending or decided). */
static int
pump_call(struct session *s, enum filter_stage st)
{
	enum filter_verdict v;

	s->chain.sink.ev = &s->tx->ev;
	s->chain.sink.edits = st == FILTER_STAGE_EOM ? &s->tx->edits : NULL;
	s->chain.sink.spool = st == FILTER_STAGE_EOM ? &s->tx->spool : NULL;
	s->chain.sink.ar = s->tx->ar;
	s->chain.sink.nar = &s->tx->nar;
	s->ev_from = s->tx->ev.n;
	v = chain_run_stage(&s->chain, st, &s->env, pump_done_cb, s);
	if (v == FILTER_PENDING) {
		s->waiting = 1;
		return 1;
	}
	sp_stage_check(s, st, &v, &s->chain.reply);
	if (v != FILTER_CONTINUE) {
		eom_cont(s, v, &s->chain.reply);
		return 1;
	}
	return 0;
}

static void
pump_done_cb(void *arg, enum filter_verdict v, const struct filter_reply *r)
{
	struct session	   *s = arg;
	struct filter_reply reply = *r;

	s->waiting = 0;
	sp_stage_check(s, s->chain.stage, &v, &reply);
	r = &reply;
	/* The EOM stage is the last: its answer decides, never re-run. */
	if (s->chain.stage == FILTER_STAGE_EOM)
		eom_cont(s, v, r);
	else
		pump_cont(s, v, r);
}

/*
 * Undo the dot-stuffing of a wire span into tx->pump_buf (the filters see
 * content, RFC 5321 §4.5.2). Returns the decoded length.
 */
static size_t
pump_decode(struct tx *tx, const char *p, size_t n)
{
	size_t i, k = 0;

	if (tx->pump_buf == NULL)
		tx->pump_buf = xmalloc(SPOOL_SPAN_MAX);
	for (i = 0; i < n; i++) {
		if (tx->pump_bol && p[i] == '.') {
			tx->pump_bol = 0;
			continue;
		}
		tx->pump_bol = p[i] == '\n';
		tx->pump_buf[k++] = p[i];
	}
	return k;
}

/*
 * The content stages, run over the spooled message at its end: HEADER per
 * field, EOH, BODY in chunks, EOM. Any stage may go asynchronous; pump()
 * is re-entered where it stopped.
 */
static void
pump(struct session *s)
{
	struct tx *tx = s->tx;
	int want_hdr = chain_wants(s->chain.chain, FILTER_STAGE_HEADER) ||
	    chain_wants(s->chain.chain, FILTER_STAGE_EOH) ||
	    chain_wants(s->chain.chain, FILTER_STAGE_BODY);
	size_t	    end = tx->spool.len >= 3 ? tx->spool.len - 3 : 0, k, dn;
	const char *p, *lf;
	ssize_t	    n;

	s->env.mail_from = tx->sender;
	s->env.rcpt = NULL;
	while (want_hdr && !tx->pump_hdr_done) {
		if (tx->pf_ready) {
			tx->pf_ready = 0;
			s->env.hdr_name = tx->pf_name;
			s->env.hdr_value = tx->pf_value;
			if (pump_call(s, FILTER_STAGE_HEADER))
				return;
			continue;
		}
		if (tx->hp.in_body) {
			tx->pump_hdr_done = 1;
			s->env.hdr_name = s->env.hdr_value = NULL;
			if (pump_call(s, FILTER_STAGE_EOH))
				return;
			break;
		}
		n = spool_span(
		    &tx->spool, tx->pump_off, end - tx->pump_off, &p);
		if (n == -1) {
			tx->failed = TXF_SPOOL;
			break;
		}
		if (n == 0) {
			hdrparse_finish(&tx->hp);
			continue;
		}
		/* One line at a time: at most one field per feed. */
		if ((lf = memchr(p, '\n', (size_t)n)) != NULL)
			n = lf - p + 1;
		dn = pump_decode(tx, p, (size_t)n);
		k = hdrparse_feed(&tx->hp, tx->pump_buf, dn);
		/* A line that starts the body stays for the BODY stage. */
		if (!tx->hp.in_body || k == dn)
			tx->pump_off += (size_t)n;
		else
			tx->pump_bol = 1;
	}
	while (chain_wants(s->chain.chain, FILTER_STAGE_BODY) &&
	    tx->pump_off < end && tx->failed == TXF_NONE) {
		n = spool_span(
		    &tx->spool, tx->pump_off, end - tx->pump_off, &p);
		if (n <= 0) {
			tx->failed = TXF_SPOOL;
			break;
		}
		tx->pump_off += (size_t)n;
		s->env.body = tx->pump_buf;
		s->env.bodylen = pump_decode(tx, p, (size_t)n);
		if (pump_call(s, FILTER_STAGE_BODY))
			return;
	}
	s->env.body = NULL;
	s->env.bodylen = 0;
	if (tx->failed != TXF_NONE) {
		session_reply(s, 451, "4.3.0",
		    "Local error reading the message, try again later");
		tx_abandon(s, "tempfail");
		return;
	}
	s->env.size = tx->size;
	if (pump_call(s, FILTER_STAGE_EOM))
		return;
	eom_cont(s, FILTER_CONTINUE, NULL);
}

void
data_end(struct session *s)
{
	struct tx *tx = s->tx;
	int	   want;

	s->state = S_CMD;
	session_set_read_timeout(s, 0);
	evtimer_del(s->timer);
	upstream_keepalive(s->up, 0);
	s->nmessages++;
	if (tx->failed == TXF_NONE && df_refused(s))
		tx->failed = TXF_BARE;
	if (tx->failed == TXF_BARE)
		log_info("event=bare-newline sid=%016llx client=%s where=data "
			 "flags=%u",
		    (unsigned long long)s->sid, s->addr, tx->df.flags);
	if (tx->failed == TXF_NONE) {
		hdrparse_finish(&tx->hp);
		if (tx->hp.error != HDR_OK)
			tx->failed = TXF_HEADER;
	}
	switch (tx->failed) {
	case TXF_NONE:
		break;
	case TXF_BARE:
		session_reply(s, 550, "5.6.0",
		    "Message refused: bare CR, LF or NUL characters "
		    "(see RFC 5321 section 2.3.8)");
		tx_abandon(s, "rejected");
		return;
	case TXF_SIZE:
		session_reply(
		    s, 552, "5.3.4", "Message size exceeds fixed limit");
		tx_abandon(s, "rejected");
		return;
	case TXF_HEADER:
		session_reply(s, 552, "5.3.4",
		    "Message header too large or too many header fields");
		tx_abandon(s, "rejected");
		return;
	case TXF_HOPS:
		session_reply(
		    s, 554, "5.4.6", "Too many hops (mail loop detected)");
		tx_abandon(s, "rejected");
		return;
	case TXF_SPOOL:
		log_warn("event=spool-error sid=%016llx error=\"%s\"",
		    (unsigned long long)s->sid, strerror(tx->spool.error));
		session_reply(s, 451, "4.3.0",
		    "Local error storing the message, try again later");
		tx_abandon(s, "tempfail");
		return;
	}
	dotstuff_end(&tx->ds); /* the terminator, into the spool */
	if (tx->failed == TXF_SPOOL) {
		session_reply(s, 451, "4.3.0",
		    "Local error storing the message, try again later");
		tx_abandon(s, "tempfail");
		return;
	}
	if (s->up == NULL || !upstream_alive(s->up)) {
		session_reply(s, 451, "4.4.2",
		    "Upstream connection lost, try again later");
		tx_abandon(s, "tempfail");
		return;
	}
	/* Content stages walk the spool with a fresh header parser. */
	want = chain_wants(s->chain.chain, FILTER_STAGE_HEADER) ||
	    chain_wants(s->chain.chain, FILTER_STAGE_EOH) ||
	    chain_wants(s->chain.chain, FILTER_STAGE_BODY);
	if (want)
		hdrparse_init(&tx->hp, tx->hdrbuf,
		    (size_t)LIMIT(s->cf, MAX_HEADER_SIZE),
		    (size_t)LIMIT(s->cf, MAX_HEADER_COUNT), pump_field_cb, s);
	tx->pump_off = 0;
	tx->pump_hdr_done = 0;
	tx->pump_bol = 1;
	pump(s);
}
