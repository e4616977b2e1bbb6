/*
 * session_policy.c - where a session meets the policy engine: early
 * decisions after each filter stage, the final decision at the end of the
 * message, the headers moat writes (Authentication-Results, RFC 8601;
 * spam status; subject tag), the header rewrite, and quarantine.
 *
 * Evidence from CONNECT and HELO is kept in the session and copied into
 * each transaction; from MAIL on it goes to the transaction. Evidence a
 * refused recipient brought is dropped with it.
 *
 * DKIM signing of authenticated mail (dkim_sign.c) happens here too, last
 * of all header changes, so the signature covers exactly what the
 * upstream receives below moat's Received field.
 *
 * Threading: the session's loop thread; the quarantine write and the DKIM
 * signing run on the worker pool with their own copy of everything they
 * need (the spool is moved into the job, the runtime referenced), so a
 * client that leaves meanwhile cannot pull memory from under them.
 */
#include <event2/buffer.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "dkim_sign.h"
#include "from_field.h"
#include "escape.h"
#include "log.h"
#include "loop.h"
#include "quarantine.h"
#include "runtime.h"
#include "session_int.h"
#include "upstream.h"
#include "util.h"
#include "workers.h"

#define HDR_REWRITE_MAX (1024 * 1024) /* header section we rewrite */

static const struct policy *
pol(const struct session *s)
{
	return s->rt->policy;
}

const struct policy_group *
sp_group(struct session *s)
{
	if (s->tx != NULL && s->tx->group != NULL)
		return s->tx->group;
	return policy_group_for(pol(s), NULL, s->env.auth != NULL);
}

void
sp_stage_check(struct session *s, enum filter_stage st, enum filter_verdict *v,
    struct filter_reply *fr)
{
	struct evidence_set	  *es = s->chain.sink.ev;
	const struct policy_group *g;
	struct policy_decision	   d;

	if (*v == FILTER_DISCARD && st <= FILTER_STAGE_HELO) {
		s->discard_all |= 1u << st;
		*v = FILTER_CONTINUE;
		return;
	}
	if (*v != FILTER_CONTINUE || es == NULL)
		return;
	g = st == FILTER_STAGE_RCPT && s->rgroup != NULL ? s->rgroup
							 : sp_group(s);
	if (!policy_early(pol(s), g, es, s->ev_from, st, &d))
		return;
	log_info("event=policy sid=%016llx stage=%s group=%s action=%s "
		 "reason=\"%s\"",
	    (unsigned long long)s->sid, filter_stage_name(st),
	    policy_group_name(g), policy_action_name(d.action), d.reason);
	switch (d.action) {
	case ACT_ACCEPT:
		s->chain.accepted = ~0u;
		if (st <= FILTER_STAGE_HELO)
			s->chain.session_accepted |= 1u << st;
		if (s->tx != NULL)
			s->tx->allow = 1;
		break;
	case ACT_DISCARD:
		if (st <= FILTER_STAGE_HELO)
			s->discard_all |= 1u << st;
		else if (s->tx != NULL)
			s->tx->discard = 1;
		break;
	case ACT_REJECT:
	case ACT_TEMPFAIL:
		*v = d.action == ACT_REJECT ? FILTER_REJECT : FILTER_TEMPFAIL;
		memset(fr, 0, sizeof(*fr));
		fr->code = d.code;
		snprintf(fr->enh, sizeof(fr->enh), "%s", d.enh);
		snprintf(fr->text, sizeof(fr->text), "%s", d.text);
		if (s->tx != NULL)
			s->tx->decision = d;
		break;
	default:
		break;
	}
}

/*
 * A new HELO/EHLO (or the reset after STARTTLS) replaces the old one: an
 * accept or discard decided at HELO goes with it; one decided at CONNECT
 * stays.
 */
void
sp_helo_forget(struct session *s)
{
	s->discard_all &= ~(1u << FILTER_STAGE_HELO);
	s->chain.session_accepted &= ~(1u << FILTER_STAGE_HELO);
	if (!s->chain.session_accepted)
		s->chain.accepted = 0;
}

void
sp_tx_begin(struct session *s)
{
	struct tx *tx = s->tx;

	evidence_init(&tx->ev);
	evidence_copy(&tx->ev, &s->sev);
	hdr_edits_init(&tx->edits);
	if (s->discard_all)
		tx->discard = 1;
}

void
sp_tx_free(struct tx *tx)
{
	size_t i;

	evidence_free(&tx->ev);
	hdr_edits_free(&tx->edits);
	for (i = 0; i < tx->nar; i++)
		free(tx->ar[i]);
	free(tx->seen.subject);
}

void
sp_header_seen(struct session *s, const char *name, size_t namelen,
    const char *value, size_t valuelen)
{
	struct tx  *tx = s->tx;
	const char *why;

	policy_header_seen(s->cf, &tx->seen, name, namelen, value, valuelen);
	/* The From domain picks the signer (sign_wanted) */
	if (s->env.auth != NULL && s->cf->ndkim_signers > 0 && namelen == 4 &&
	    ascii_strncasecmp(name, "From", 4) == 0 && tx->nfrom++ == 0 &&
	    from_field_domain(value, valuelen, tx->from_domain,
		sizeof(tx->from_domain), &why) == -1)
		tx->from_domain[0] = '\0';
}

/*
 * The new header section (wire form) and the spool offset where the
 * original continues; prefix NULL when nothing changes.
 */
static void
field_ignore(void *arg, const char *name, size_t namelen, const char *value,
    size_t valuelen)
{
}

/* Only the fields added on top, for a header section too large to edit. */
static struct evbuffer *
top_fields_only(struct session *s)
{
	struct evbuffer *out = evbuffer_new();
	struct hdr_edits tops;
	size_t		 i;

	log_warn("event=header-rewrite-skipped sid=%016llx "
		 "reason=\"header section over %d bytes\"",
	    (unsigned long long)s->sid, HDR_REWRITE_MAX);
	hdr_edits_init(&tops);
	for (i = 0; i < s->tx->edits.n; i++)
		if (s->tx->edits.v[i].op == HDR_ADD_TOP)
			hdr_edit_add(&tops, s->tx->edits.v[i].name,
			    s->tx->edits.v[i].value);
	if (out != NULL)
		hdr_edits_apply(&tops, "", 0, out);
	hdr_edits_free(&tops);
	return out;
}

/*
 * The new header section (wire form) and the spool offset where the
 * original continues; prefix NULL when nothing changes. The section ends
 * where the session's parser said it ends (an empty line, or the first
 * line that is neither a field nor a continuation, as in Postfix), so
 * appended fields can never land below a line the MTA reads as body.
 * One pass over the spool: the bytes read are kept for the rewrite.
 */
static int
rewrite_headers(struct session *s, struct evbuffer **prefix, size_t *off)
{
	struct tx	*tx = s->tx;
	size_t		 end = tx->spool.len >= 3 ? tx->spool.len - 3 : 0;
	size_t		 have = 0, hlen = 0;
	char		*fbuf;
	const char	*p;
	ssize_t		 n;
	struct hdrparse	 hp;
	struct evbuffer *raw;
	int		 rc = -1;

	*prefix = NULL;
	*off = 0;
	if (tx->edits.n == 0)
		return 0;
	if ((raw = evbuffer_new()) == NULL)
		return -1;
	fbuf = xmalloc((size_t)LIMIT(s->cf, MAX_HEADER_SIZE));
	hdrparse_init(&hp, fbuf, (size_t)LIMIT(s->cf, MAX_HEADER_SIZE),
	    (size_t)LIMIT(s->cf, MAX_HEADER_COUNT), field_ignore, NULL);
	/* Dot-stuffing never turns a field line into a non-field one or
	 * back, so the wire form has the same header section. */
	while (have < end && !hp.in_body && have < HDR_REWRITE_MAX) {
		if ((n = spool_span(&tx->spool, have, end - have, &p)) <= 0)
			goto out;
		hlen += hdrparse_feed(&hp, p, (size_t)n);
		evbuffer_add(raw, p, (size_t)n);
		have += (size_t)n;
	}
	if (!hp.in_body && have < end) {
		*prefix = top_fields_only(s);
		rc = *prefix != NULL ? 0 : -1;
		goto out;
	}
	if (!hp.in_body)
		hlen = end; /* headers only, no body */
	if ((*prefix = evbuffer_new()) == NULL ||
	    hdr_edits_apply(&tx->edits,
		hlen ? (const char *)evbuffer_pullup(raw, (ev_ssize_t)hlen)
		     : "",
		hlen, *prefix) == -1) {
		if (*prefix != NULL)
			evbuffer_free(*prefix);
		*prefix = NULL;
		goto out;
	}
	*off = hlen;
	rc = 0;
out:
	free(fbuf);
	evbuffer_free(raw);
	return rc;
}

/* ------------------------------------------------------ quarantine */

struct qjob {
	struct loop	   *loop;
	uint64_t	    sid;
	char		   *dir;
	struct spool	    spool; /* moved from the transaction */
	struct evbuffer	   *prefix;
	size_t		    off;
	struct evidence_set ev;
	char		    sidhex[20];
	char		   *client, *helo, *sender, *auth, *reason;
	char		  **rcpts;
	size_t		    nrcpts;
	double		    score;
	int		    rc;
	char		    id[64];
	char		    err[256];
};

static void
qjob_work(void *arg)
{
	struct qjob *j = arg;
	struct qmeta m;
	const char  *pre = NULL;
	size_t	     prelen = 0;

	memset(&m, 0, sizeof(m));
	m.time = time(NULL);
	m.sid = j->sidhex;
	m.client_addr = j->client;
	m.helo = j->helo;
	m.sender = j->sender;
	m.rcpts = (const char *const *)j->rcpts;
	m.nrcpts = j->nrcpts;
	m.auth = j->auth;
	m.score = j->score;
	m.action = "quarantine";
	m.reason = j->reason;
	m.evidence = &j->ev;
	if (j->prefix != NULL) {
		prelen = evbuffer_get_length(j->prefix);
		pre = (const char *)evbuffer_pullup(j->prefix, -1);
	}
	j->rc = quarantine_store(j->dir, &m, pre, prelen, &j->spool, j->off,
	    j->id, sizeof(j->id), j->err, sizeof(j->err));
}

static void
qjob_free(struct qjob *j)
{
	size_t i;

	spool_free(&j->spool);
	if (j->prefix != NULL)
		evbuffer_free(j->prefix);
	evidence_free(&j->ev);
	free(j->dir);
	free(j->client);
	free(j->helo);
	free(j->sender);
	free(j->auth);
	free(j->reason);
	for (i = 0; i < j->nrcpts; i++)
		free(j->rcpts[i]);
	free(j->rcpts);
	free(j);
}

static void
qjob_done(struct loop *l, void *arg)
{
	struct qjob    *j = arg;
	struct session *s = loop_find(l, j->sid);

	if (j->rc == 0)
		log_info("event=quarantined sid=%016llx id=%s",
		    (unsigned long long)j->sid, j->id);
	else
		log_err("event=quarantine-failed sid=%016llx error=\"%s\"",
		    (unsigned long long)j->sid, j->err);
	if (s == NULL || s->tx == NULL || !s->tx->quarantining) {
		/* The client left: it never got a 250, so it keeps the
		 * message; the stored copy (if any) stays for review. */
		qjob_free(j);
		return;
	}
	s->tx->quarantining = 0;
	if (j->rc == 0) {
		snprintf(s->tx->qid, sizeof(s->tx->qid), "%s", j->id);
		session_reply(s, 250, "2.0.0", "Ok: queued as %s", j->id);
		tx_abandon(s, "quarantined");
	} else {
		session_reply(s, 451, "4.3.0",
		    "Local error storing the message, try again later");
		tx_abandon(s, "tempfail");
	}
	qjob_free(j);
}

static void
quarantine_start(struct session *s, struct evbuffer *prefix, size_t off)
{
	struct tx   *tx = s->tx;
	struct qjob *j = xcalloc(1, sizeof(*j));
	size_t	     i;

	j->loop = s->loop;
	j->sid = s->sid;
	snprintf(j->sidhex, sizeof(j->sidhex), "%016llx",
	    (unsigned long long)s->sid);
	j->dir = xstrdup(s->cf->quarantine_dir);
	j->spool = tx->spool;
	spool_init(&tx->spool, s->cf->spool_dir, 0);
	j->prefix = prefix;
	j->off = off;
	evidence_init(&j->ev);
	evidence_copy(&j->ev, &tx->ev);
	j->client = xstrdup(s->addr);
	j->helo = s->helo != NULL ? xstrdup(s->helo) : NULL;
	j->sender = xstrdup(tx->sender);
	j->auth = s->env.auth != NULL ? xstrdup(s->env.auth) : NULL;
	j->reason = xstrdup(tx->decision.reason);
	j->score = tx->ev.total;
	j->nrcpts = tx->nrcpts;
	j->rcpts = xcalloc(tx->nrcpts + 1, sizeof(char *));
	for (i = 0; i < tx->nrcpts; i++)
		j->rcpts[i] = xstrdup(tx->rcpts[i]);
	tx->quarantining = 1;
	s->waiting = 1;
	if (worker_submit(s->loop, qjob_work, qjob_done, j) == -1) {
		/* Pool full: the spool goes back, the client retries. */
		tx->quarantining = 0;
		spool_free(&tx->spool);
		tx->spool = j->spool;
		memset(&j->spool, 0, sizeof(j->spool));
		j->spool.fd = -1;
		qjob_free(j);
		session_reply(
		    s, 451, "4.3.0", "Local resources busy, try again later");
		tx_abandon(s, "tempfail");
	}
}

/* ------------------------------------------------------- DKIM signing */

struct sjob {
	uint64_t		  sid;
	unsigned		  txnum;
	struct runtime		 *rt; /* referenced: keeps the signers */
	const struct dkim_signer *signers[DKIM_SIGN_MAX];
	size_t			  n;
	struct spool		  spool; /* moved from the transaction */
	struct evbuffer		 *prefix;
	size_t			  off;
	struct evbuffer		 *sigs;
	char			  id[20];
	int			  rc;
	char			  err[256];
};

static void
sjob_work(void *arg)
{
	struct sjob *j = arg;

	j->rc = dkim_sign_message(j->signers, j->n, j->id, j->prefix, &j->spool,
	    j->off, j->sigs, j->err, sizeof(j->err));
}

static void
sjob_free(struct sjob *j)
{
	spool_free(&j->spool);
	if (j->prefix != NULL)
		evbuffer_free(j->prefix);
	if (j->sigs != NULL)
		evbuffer_free(j->sigs);
	runtime_release(j->rt);
	free(j);
}

/* The spool goes back to the transaction. */
static void
sjob_return_spool(struct sjob *j, struct tx *tx)
{
	spool_free(&tx->spool);
	tx->spool = j->spool;
	memset(&j->spool, 0, sizeof(j->spool));
	j->spool.fd = -1;
}

static struct evbuffer *with_received(struct session *, struct evbuffer *);
static void app(char *buf, size_t len, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
sjob_done(struct loop *l, void *arg)
{
	struct sjob	*j = arg;
	struct session	*s = loop_find(l, j->sid);
	struct tx	*tx;
	struct evbuffer *prefix;
	size_t		 i, n;

	if (s == NULL || (tx = s->tx) == NULL || !tx->signing ||
	    tx->num != j->txnum) {
		/* The client left: it never got a 250 and keeps the mail. */
		log_info("event=dkim-sign-abandoned sid=%016llx "
			 "reason=\"session gone\"",
		    (unsigned long long)j->sid);
		sjob_free(j);
		return;
	}
	tx->signing = 0;
	sjob_return_spool(j, tx);
	if (j->rc == -1) {
		log_err("event=dkim-sign-failed sid=%016llx error=\"%s\"",
		    (unsigned long long)s->sid, j->err);
		session_reply(s, 451, "4.3.0",
		    "Local error signing the message, try again later");
		tx_abandon(s, "tempfail");
		sjob_free(j);
		return;
	}
	if (j->rc == 1) {
		log_warn("event=dkim-sign-skipped sid=%016llx reason=\"%s\"",
		    (unsigned long long)s->sid, j->err);
	} else {
		for (i = n = 0; i < j->n; i++) {
			log_info("event=dkim-signed sid=%016llx domain=%s "
				 "selector=%s algorithm=%s",
			    (unsigned long long)s->sid,
			    dkim_signer_domain(j->signers[i]),
			    dkim_signer_selector(j->signers[i]),
			    dkim_signer_algorithm(j->signers[i]));
			app(tx->dkim, sizeof(tx->dkim), &n, "%s%s/%s",
			    i ? "," : "", dkim_signer_domain(j->signers[i]),
			    dkim_signer_selector(j->signers[i]));
		}
		/* The signatures on top of the header section they sign. */
		if (j->prefix != NULL) {
			evbuffer_add_buffer(j->sigs, j->prefix);
			evbuffer_free(j->prefix);
		}
		j->prefix = j->sigs;
		j->sigs = NULL;
	}
	prefix = with_received(s, j->prefix);
	j->prefix = NULL;
	tx_forward(s, prefix, j->off);
	sjob_free(j);
}

/*
 * The signers this transaction wants: authenticated, one From whose
 * domain is (under) a configured signing domain. 0: none, forward as is.
 */
static size_t
sign_wanted(struct session *s, const struct dkim_signer **out)
{
	const struct config *cf = s->cf;
	struct tx	    *tx = s->tx;
	const char	    *why = NULL;
	size_t		     n;

	if (s->env.auth == NULL || cf->ndkim_signers == 0)
		return 0;
	if (tx->nfrom == 0)
		why = "no From field";
	else if (tx->nfrom > 1)
		why = "several From fields";
	else if (tx->from_domain[0] == '\0')
		why = "From is not one mailbox with a domain";
	if (why != NULL) {
		log_info("event=dkim-sign-skipped sid=%016llx reason=\"%s\"",
		    (unsigned long long)s->sid, why);
		return 0;
	}
	n = dkim_signers_match(cf->dkim_signers, cf->ndkim_signers,
	    tx->from_domain, out, DKIM_SIGN_MAX);
	if (n == 0)
		log_debug("event=dkim-sign-skipped sid=%016llx "
			  "reason=\"no dkim_sign for %s\"",
		    (unsigned long long)s->sid, tx->from_domain);
	return n;
}

/*
 * Sign on the worker pool: the job takes the spool and the header prefix
 * (NULL: none) and gives them back in sjob_done(), which forwards.
 */
static void
sign_start(struct session *s, const struct dkim_signer *const *signers,
    size_t n, struct evbuffer *prefix, size_t off)
{
	struct tx   *tx = s->tx;
	struct sjob *j = xcalloc(1, sizeof(*j));

	j->sid = s->sid;
	j->txnum = tx->num;
	j->rt = runtime_acquire(s->rt);
	memcpy(j->signers, signers, n * sizeof(*signers));
	j->n = n;
	snprintf(j->id, sizeof(j->id), "%016llx", (unsigned long long)s->sid);
	j->spool = tx->spool;
	spool_init(&tx->spool, s->cf->spool_dir, 0);
	j->prefix = prefix;
	j->off = off;
	if ((j->sigs = evbuffer_new()) == NULL)
		fatal("evbuffer_new");
	tx->signing = 1;
	s->waiting = 1;
	if (worker_submit(s->loop, sjob_work, sjob_done, j) == -1) {
		/* Pool full: the client retries; never unsigned. */
		tx->signing = 0;
		sjob_return_spool(j, tx);
		sjob_free(j);
		log_warn("event=dkim-sign-failed sid=%016llx "
			 "error=\"worker queue full\"",
		    (unsigned long long)s->sid);
		session_reply(
		    s, 451, "4.3.0", "Local resources busy, try again later");
		tx_abandon(s, "tempfail");
	}
}

/* ------------------------------------------------------------- EOM */

/* moat's Received field (session_tls.c) in front of the header section. */
static struct evbuffer *
with_received(struct session *s, struct evbuffer *prefix)
{
	struct evbuffer *r = evbuffer_new();

	if (r == NULL)
		return prefix;
	if (session_received(s, r) == -1) {
		evbuffer_free(r);
		return prefix;
	}
	if (prefix != NULL) {
		evbuffer_add_buffer(r, prefix);
		evbuffer_free(prefix);
	}
	return r;
}

void
sp_eom(struct session *s)
{
	struct tx		 *tx = s->tx;
	struct policy_decision	 *d = &tx->decision;
	const struct dkim_signer *signers[DKIM_SIGN_MAX];
	struct evbuffer		 *prefix;
	size_t			  off, nsign;

	policy_final(pol(s), sp_group(s), &tx->ev, d);
	if (tx->allow)
		d->action = ACT_ACCEPT;
	switch (d->action) {
	case ACT_REJECT:
	case ACT_TEMPFAIL:
		session_reply(s, d->code, d->enh, "%s", d->text);
		tx_abandon(
		    s, d->action == ACT_REJECT ? "rejected" : "tempfail");
		return;
	case ACT_DISCARD:
		session_reply(s, 250, "2.0.0", "Ok: discarded");
		tx_abandon(s, "discarded");
		return;
	default:
		break;
	}
	policy_headers(s->cf, sp_group(s), d, &tx->ev,
	    (const char *const *)tx->ar, tx->nar, &tx->seen, &tx->edits);
	if (rewrite_headers(s, &prefix, &off) == -1) {
		session_reply(s, 451, "4.3.0",
		    "Local error reading the message, try again later");
		tx_abandon(s, "tempfail");
		return;
	}
	if (d->action != ACT_QUARANTINE &&
	    (nsign = sign_wanted(s, signers)) > 0) {
		sign_start(s, signers, nsign, prefix, off);
		return;
	}
	prefix = with_received(s, prefix);
	if (d->action == ACT_QUARANTINE) {
		quarantine_start(s, prefix, off);
		return;
	}
	tx_forward(s, prefix, off);
}

static void __attribute__((format(printf, 4, 5)))
app(char *buf, size_t len, size_t *n, const char *fmt, ...)
{
	va_list ap;
	int	w;

	if (*n + 1 >= len)
		return;
	va_start(ap, fmt);
	w = vsnprintf(buf + *n, len - *n, fmt, ap);
	va_end(ap);
	if (w > 0)
		*n += (size_t)w < len - *n ? (size_t)w : len - *n - 1;
}

void
sp_log_fields(struct session *s, char *buf, size_t len)
{
	struct tx  *tx = s->tx;
	size_t	    i, n = 0;
	const char *g = tx->group != NULL ? policy_group_name(tx->group)
					  : policy_group_name(sp_group(s));

	buf[0] = '\0';
	app(buf, len, &n, " group=%s score=%.2f action=%s", g, tx->ev.total,
	    policy_action_name(tx->decision.action));
	if (tx->decision.reason[0] != '\0')
		app(buf, len, &n, " reason=\"%s\"", tx->decision.reason);
	if (tx->qid[0] != '\0')
		app(buf, len, &n, " quarantine=%s", tx->qid);
	if (tx->dkim[0] != '\0')
		app(buf, len, &n, " dkim_signed=%s", tx->dkim);
	app(buf, len, &n, " evidence=\"");
	for (i = 0; i < tx->ev.n; i++)
		app(buf, len, &n, "%s%s(%s:%.2f)", i ? " " : "",
		    tx->ev.v[i].symbol, tx->ev.v[i].filter, tx->ev.v[i].score);
	app(buf, len, &n, "\" filter_ms=\"");
	for (i = 0; i < chain_size(s->chain.chain); i++)
		app(buf, len, &n, "%s%s:%.1f", i ? " " : "",
		    chain_filter_name(s->chain.chain, i),
		    (double)s->chain.usec[i] / 1000.0);
	app(buf, len, &n, "\"");
}
