/*
 * spf_filter.c - the built-in "spf" filter: RFC 7208 checks of the HELO
 * identity (§2.3) and the MAIL FROM identity (§2.4) at MAIL, so that a
 * policy can refuse before DATA; the Received-SPF field (§9.1) and the
 * spf= clause of Authentication-Results (RFC 8601 §2.7.2) at EOM.
 *
 * Evaluation is spf_eval.c's; this file feeds it from moat's resolver.
 * Each evaluation is run, the records it missed are asked for all at
 * once, and it runs again when the last answer is in; nothing waits, on
 * any thread. The two identities are evaluated side by side. A HELO
 * result is kept for the session (a client sending several messages asks
 * once), forgotten when the name changes.
 *
 * Evidence: SPF_<RESULT> for the MAIL FROM identity (for the null sender
 * that is postmaster@HELO, §2.4), SPF_HELO_<RESULT> for the HELO
 * identity, with a score per result from the options. A temperror of the
 * MAIL FROM identity is, by default (temperror = tempfail), answered
 * 451 4.4.3 (§8.6, RFC 7372 codes); everything else is the policy's to
 * decide (rule "SPF_FAIL" { action = "reject" ... }).
 *
 * Not checked: authenticated sessions (their mail is outbound), and
 * loopback clients unless check_loopback = yes (local submission).
 *
 * Threading: the session's loop thread only. A call owns its evaluations
 * and its queries; cancel() (client gone, stage timed out) cancels the
 * queries and frees everything.
 */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "addr.h"
#include "filter_api.h"
#include "filter_opts.h"
#include "resolver.h"
#include "spf_eval.h"
#include "util.h"

struct spf_conf {
	char   receiver[256];
	int    helo;	       /* check the HELO identity */
	int    tempfail;       /* temperror of MAIL FROM -> 451 4.4.3 */
	int    check_loopback; /* evaluate loopback clients too */
	int    received_spf;   /* write Received-SPF */
	double score[7];       /* by enum spf_verdict, MAIL FROM */
	double helo_score[7];
};

/* One evaluation being driven. */
struct spf_job {
	struct spf_call *call;
	struct spf_eval *e;
	/* the queries of this round, by index of e->missing */
	struct spf_q *sq[SPF_MISSING_MAX];
	size_t	      pending;
	int	      done;
};

struct spf_call {
	const struct spf_conf *conf;
	struct spf_sess	      *ss;
	struct filter_token    token;
	struct spf_job	       job[2]; /* [0] MAIL FROM, [1] HELO */
	int		       njobs;
	int		       in_stage; /* stage() is still running */
	enum filter_verdict    verdict;	 /* when it finished in stage() */
	struct filter_reply    reply;
	/* copies of the stage's environment */
	struct sockaddr_storage client;
	char			client_addr[64];
	char			helo[256];
	char		       *mail_from;
};

/* What a session remembers. */
struct spf_sess {
	char		*helo; /* the HELO name checked, or NULL */
	enum spf_verdict helo_result;
	char		 helo_detail[200];
	char		*received; /* this transaction's Received-SPF value */
	struct spf_call *call;	   /* in flight */
};

static const char *const spf_options[] = { "receiver", "helo", "temperror",
	"check_loopback", "received_spf", "score_none", "score_neutral",
	"score_pass", "score_fail", "score_softfail", "score_temperror",
	"score_permerror", "helo_score_none", "helo_score_neutral",
	"helo_score_pass", "helo_score_fail", "helo_score_softfail",
	"helo_score_temperror", "helo_score_permerror", NULL };

/* Defaults, by enum spf_verdict: none neutral pass fail softfail
 * temperror permerror (SpamAssassin's weights, roughly). */
static const double default_score[7] = { 0, 0, -0.1, 1.0, 0.7, 0, 0.5 };
static const double default_helo_score[7] = { 0, 0, 0, 0.5, 0.3, 0, 0.2 };

static const char *const upper_names[] = { "NONE", "NEUTRAL", "PASS", "FAIL",
	"SOFTFAIL", "TEMPERROR", "PERMERROR" };

/* ---------------------------------------------------------- configuration */

static int
spf_init(const struct filter_conf *fc, void **ctx)
{
	struct spf_conf *c = xcalloc(1, sizeof(*c));
	const char	*v;
	char		 key[64];
	int		 bad = 0, i;

	if ((v = filter_conf_get(fc, "receiver")) != NULL)
		snprintf(c->receiver, sizeof(c->receiver), "%s", v);
	else if (gethostname(c->receiver, sizeof(c->receiver) - 1) != 0)
		snprintf(c->receiver, sizeof(c->receiver), "unknown");
	bad |= filter_opt_bool(fc, "helo", 1, &c->helo);
	bad |= filter_opt_bool(fc, "check_loopback", 0, &c->check_loopback);
	bad |= filter_opt_bool(fc, "received_spf", 1, &c->received_spf);
	c->tempfail = 1;
	if ((v = filter_conf_get(fc, "temperror")) != NULL) {
		if (strcmp(v, "tempfail") == 0)
			c->tempfail = 1;
		else if (strcmp(v, "continue") == 0)
			c->tempfail = 0;
		else {
			filter_conf_error(fc,
			    "temperror: \"%s\" is not tempfail or continue", v);
			bad = -1;
		}
	}
	for (i = 0; i < 7; i++) {
		c->score[i] = default_score[i];
		c->helo_score[i] = default_helo_score[i];
		snprintf(key, sizeof(key), "score_%s",
		    spf_verdict_name((enum spf_verdict)i));
		bad |= filter_opt_num(
		    fc, key, -1000, 1000, "a score", &c->score[i]);
		snprintf(key, sizeof(key), "helo_score_%s",
		    spf_verdict_name((enum spf_verdict)i));
		bad |= filter_opt_num(
		    fc, key, -1000, 1000, "a score", &c->helo_score[i]);
	}
	if (bad) {
		free(c);
		return -1;
	}
	*ctx = c;
	return 0;
}

static void
spf_fini(void *ctx)
{
	free(ctx);
}

/* ---------------------------------------------------------- results */

/* "mechanism=..." or "problem=..." for details and headers. */
static void
describe(const struct spf_eval *e, char *out, size_t outlen)
{
	if (e->mechanism[0] != '\0')
		strfmt(out, outlen, "domain=%s mechanism=%s", e->domain,
		    e->mechanism);
	else if (e->problem[0] != '\0')
		strfmt(out, outlen, "domain=%s problem=\"%s\"", e->domain,
		    e->problem);
	else
		strfmt(out, outlen, "domain=%s", e->domain);
}

/* A value for a Received-SPF key: dot-atom as is, else quoted. */
static void
kv_value(char *out, size_t outlen, const char *v)
{
	size_t i, o = 0;
	int    atom = *v != '\0';

	for (i = 0; v[i] != '\0'; i++)
		if (!(v[i] > 0x20 && v[i] < 0x7f &&
			strchr("()<>[]:;@\\,\"", v[i]) == NULL))
			atom = 0;
	if (atom) {
		strfmt(out, outlen, "%s", v);
		return;
	}
	if (outlen < 3)
		return;
	out[o++] = '"';
	for (i = 0; v[i] != '\0' && o + 3 < outlen; i++) {
		if (v[i] < 0x20 || v[i] == 0x7f)
			continue;
		if (v[i] == '"' || v[i] == '\\')
			out[o++] = '\\';
		out[o++] = v[i];
	}
	out[o++] = '"';
	out[o] = '\0';
}

/* The Received-SPF value (RFC 7208 §9.1) of an evaluation. */
static char *
received_spf(const struct spf_call *call, const struct spf_eval *e)
{
	const struct spf_conf *c = call->conf;
	char		       from[600], helo[300], extra[400], *out;
	char		       comment[400];

	kv_value(from, sizeof(from), call->mail_from);
	kv_value(helo, sizeof(helo), call->helo);
	switch (e->result) {
	case SPF_V_PASS:
		strfmt(comment, sizeof(comment),
		    "%s: domain of %s designates %s as permitted sender",
		    c->receiver, e->sender, call->client_addr);
		break;
	case SPF_V_FAIL:
	case SPF_V_SOFTFAIL:
		strfmt(comment, sizeof(comment),
		    "%s: domain of %s does not designate %s as permitted "
		    "sender",
		    c->receiver, e->sender, call->client_addr);
		break;
	case SPF_V_NEUTRAL:
		strfmt(comment, sizeof(comment),
		    "%s: %s is neither permitted nor denied by domain of %s",
		    c->receiver, call->client_addr, e->sender);
		break;
	default:
		strfmt(comment, sizeof(comment), "%s: %s", c->receiver,
		    e->problem[0] ? e->problem : "no SPF record");
	}
	for (char *p = comment; *p != '\0'; p++)
		if (*p == '(' || *p == ')' || *p == '\\')
			*p = ' ';
	extra[0] = '\0';
	if (e->mechanism[0] != '\0') {
		char m[200];

		kv_value(m, sizeof(m), e->mechanism);
		snprintf(extra, sizeof(extra), " mechanism=%s;", m);
	} else if (e->problem[0] != '\0') {
		char p[300];

		kv_value(p, sizeof(p), e->problem);
		snprintf(extra, sizeof(extra), " problem=%s;", p);
	}
	if (asprintf(&out,
		"%s (%s) client-ip=%s; envelope-from=%s; helo=%s; "
		"receiver=%s; identity=%s;%s",
		spf_verdict_name(e->result), comment, call->client_addr, from,
		helo, c->receiver,
		e->identity == SPF_ID_HELO ? "helo" : "mailfrom", extra) < 0)
		return NULL;
	out[strlen(out) - 1] = '\0'; /* the last ';' */
	return out;
}

/* ---------------------------------------------------------- driving */

static void job_drive(struct spf_job *);
static void call_finish(struct spf_call *);

static void
call_free(struct spf_call *call)
{
	int i;

	for (i = 0; i < call->njobs; i++)
		spf_eval_free(call->job[i].e);
	free(call->mail_from);
	free(call);
}

/*
 * The resolver wants presentation format: octets other than letters,
 * digits, '-', '_' and '.' (a macro may put spaces in a name) escaped.
 */
static void
query_name(const char *in, char *out, size_t outlen)
{
	size_t o = 0;

	for (; *in != '\0' && o + 5 < outlen; in++) {
		unsigned char c = (unsigned char)*in;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.')
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, outlen - o, "\\%03u", c);
	}
	out[o] = '\0';
}

/* One question of a round; its name and type are job->e->missing[idx],
 * which stays put until the next run. */
struct spf_q {
	struct spf_job	 *job;
	size_t		  idx;
	struct dns_query *q;
};

static void
job_answer(void *arg, const struct dns_answer *a)
{
	struct spf_q   *sq = arg;
	struct spf_job *job = sq->job;
	struct spf_rr	rr[DNS_MAX_RECORDS];
	size_t		i, n = 0;

	for (i = 0; a->status == DNS_OK && i < a->n; i++) {
		rr[n].text = (char *)a->rr[i].text;
		rr[n].len = a->rr[i].textlen;
		n++;
	}
	spf_eval_answer(job->e, job->e->missing[sq->idx].name,
	    job->e->missing[sq->idx].type, a->status, rr, n);
	job->sq[sq->idx] = NULL;
	free(sq);
	if (--job->pending == 0)
		job_drive(job);
}

static void
job_drive(struct spf_job *job)
{
	struct spf_eval *e = job->e;
	size_t		 i;
	char		 qname[1100];

	if (spf_eval_run(e)) {
		job->done = 1;
		call_finish(job->call);
		return;
	}
	job->pending = e->nmissing;
	for (i = 0; i < e->nmissing; i++) {
		struct spf_q *sq = xcalloc(1, sizeof(*sq));

		sq->job = job;
		sq->idx = i;
		query_name(e->missing[i].name, qname, sizeof(qname));
		sq->q = resolver_query(job->call->token.loop, qname,
		    e->missing[i].type, job_answer, sq);
		if (sq->q == NULL) {
			/* the resolver is not running: a temporary error */
			spf_eval_answer(e, e->missing[i].name,
			    e->missing[i].type, DNS_TEMPFAIL, NULL, 0);
			free(sq);
			job->pending--;
		} else
			job->sq[i] = sq;
	}
	if (job->pending == 0)
		job_drive(job); /* every question answered at once */
}

static void
report(struct spf_call *call, const struct spf_eval *e, int helo)
{
	const struct spf_conf *c = call->conf;
	char		       sym[32], detail[300];

	describe(e, detail, sizeof(detail));
	snprintf(sym, sizeof(sym), "SPF_%s%s", helo ? "HELO_" : "",
	    upper_names[e->result]);
	filter_evidence(&call->token, sym,
	    helo ? c->helo_score[e->result] : c->score[e->result],
	    "identity=%s %s", helo ? "helo" : "mailfrom", detail);
}

/* The HELO result remembered from an earlier transaction. */
static void
report_cached_helo(struct spf_call *call)
{
	const struct spf_sess *ss = call->ss;
	char		       sym[32];

	snprintf(sym, sizeof(sym), "SPF_HELO_%s", upper_names[ss->helo_result]);
	filter_evidence(&call->token, sym,
	    call->conf->helo_score[ss->helo_result], "%s", ss->helo_detail);
}

static void
call_finish(struct spf_call *call)
{
	struct spf_sess	      *ss = call->ss;
	const struct spf_eval *mf;
	struct filter_reply    reply;
	struct filter_token    token = call->token;
	enum filter_verdict    v = FILTER_CONTINUE;
	char		       detail[300], clause[600];
	int		       i;

	for (i = 0; i < call->njobs; i++)
		if (!call->job[i].done)
			return;
	mf = call->job[0].e;
	report(call, mf, 0);
	if (call->njobs > 1) {
		const struct spf_eval *he = call->job[1].e;

		report(call, he, 1);
		free(ss->helo);
		ss->helo = xstrdup(call->helo);
		ss->helo_result = he->result;
		describe(he, detail, sizeof(detail));
		strfmt(ss->helo_detail, sizeof(ss->helo_detail),
		    "identity=helo %s", detail);
	} else if (ss->helo != NULL && mf->identity != SPF_ID_HELO &&
	    strcmp(ss->helo, call->helo) == 0)
		report_cached_helo(call);
	/* Authentication-Results (RFC 8601 §2.7.2) */
	snprintf(clause, sizeof(clause), "spf=%s smtp.%s=%s",
	    spf_verdict_name(mf->result),
	    mf->identity == SPF_ID_HELO ? "helo" : "mailfrom",
	    mf->identity == SPF_ID_HELO ? call->helo : mf->sender);
	filter_auth_result(&call->token, clause);
	free(ss->received);
	ss->received = call->conf->received_spf ? received_spf(call, mf) : NULL;
	memset(&reply, 0, sizeof(reply));
	if (call->in_stage) /* spf_stage() answers */
		memset(&call->reply, 0, sizeof(call->reply));
	if (mf->result == SPF_V_TEMPERROR && call->conf->tempfail) {
		v = FILTER_TEMPFAIL;
		reply.code = 451;
		snprintf(reply.enh, sizeof(reply.enh), "4.4.3");
		snprintf(reply.text, sizeof(reply.text),
		    "SPF: temporary DNS error for %s, try again later",
		    mf->domain);
	}
	ss->call = NULL;
	if (call->in_stage) {
		call->verdict = v;
		call->reply = reply;
		return;
	}
	call_free(call);
	filter_complete(&token, v, v == FILTER_CONTINUE ? NULL : &reply);
}

/* ---------------------------------------------------------- the filter */

static struct spf_sess *
sess(struct filter_call *fc)
{
	if (*fc->session_data == NULL)
		*fc->session_data = xcalloc(1, sizeof(struct spf_sess));
	return *fc->session_data;
}

static void
job_start(struct spf_call *call, int i, enum spf_identity id)
{
	struct spf_job *job = &call->job[i];

	job->call = call;
	job->e = spf_eval_new((const struct sockaddr *)&call->client, id,
	    call->helo, call->mail_from, call->conf->receiver);
	call->njobs = i + 1;
}

static enum filter_verdict
spf_stage(void *ctx, struct filter_call *fc, struct filter_reply *reply)
{
	const struct spf_conf	*c = ctx;
	const struct filter_env *env = fc->env;
	struct spf_sess		*ss;
	struct spf_call		*call;
	size_t			 salen;
	int			 i, helo_too;

	if (fc->stage == FILTER_STAGE_EOM) {
		ss = *fc->session_data;
		if (ss != NULL && ss->received != NULL)
			filter_header_add(
			    &fc->token, "Received-SPF", ss->received);
		return FILTER_CONTINUE;
	}
	if (fc->stage != FILTER_STAGE_MAIL || env->auth != NULL ||
	    env->client_sa == NULL ||
	    (env->client_sa->sa_family != AF_INET &&
		env->client_sa->sa_family != AF_INET6) ||
	    (!c->check_loopback && addr_is_loopback(env->client_sa)))
		return FILTER_CONTINUE;
	ss = sess(fc);
	free(ss->received);
	ss->received = NULL;
	call = xcalloc(1, sizeof(*call));
	call->conf = c;
	call->ss = ss;
	call->token = fc->token;
	salen = env->client_sa->sa_family == AF_INET6
	    ? sizeof(struct sockaddr_in6)
	    : sizeof(struct sockaddr_in);
	memcpy(&call->client, env->client_sa, salen);
	snprintf(call->client_addr, sizeof(call->client_addr), "%s",
	    env->client_addr);
	snprintf(call->helo, sizeof(call->helo), "%s",
	    env->helo != NULL ? env->helo : "");
	call->mail_from = xstrdup(env->mail_from != NULL ? env->mail_from : "");
	job_start(
	    call, 0, *call->mail_from == '\0' ? SPF_ID_HELO : SPF_ID_MAILFROM);
	/* The HELO identity besides, unless it is the same check or known. */
	helo_too = c->helo && *call->mail_from != '\0' && *call->helo != '\0' &&
	    (ss->helo == NULL || strcmp(ss->helo, call->helo) != 0);
	if (helo_too)
		job_start(call, 1, SPF_ID_HELO);
	ss->call = call;
	call->in_stage = 1;
	for (i = 0; i < call->njobs; i++)
		job_drive(&call->job[i]);
	call->in_stage = 0;
	if (ss->call == NULL) { /* finished without asking anything */
		enum filter_verdict v = call->verdict;

		*reply = call->reply;
		call_free(call);
		return v;
	}
	fc->cookie = call;
	return FILTER_PENDING;
}

static void
call_cancel(struct spf_call *call)
{
	int    i;
	size_t k;

	for (i = 0; i < call->njobs; i++)
		for (k = 0; k < SPF_MISSING_MAX; k++)
			if (call->job[i].sq[k] != NULL) {
				resolver_cancel(call->job[i].sq[k]->q);
				free(call->job[i].sq[k]);
			}
	call->ss->call = NULL;
	call_free(call);
}

static void
spf_cancel(void *ctx, void *cookie)
{
	(void)ctx;
	if (cookie != NULL)
		call_cancel(cookie);
}

/* The transaction ended: its Received-SPF goes with it. */
static void
spf_reset(void *ctx, void **session_data)
{
	struct spf_sess *ss = *session_data;

	(void)ctx;
	if (ss == NULL)
		return;
	free(ss->received);
	ss->received = NULL;
}

static void
spf_close(void *ctx, void **session_data)
{
	struct spf_sess *ss = *session_data;

	(void)ctx;
	if (ss == NULL)
		return;
	if (ss->call != NULL)
		call_cancel(ss->call);
	free(ss->helo);
	free(ss->received);
	free(ss);
	*session_data = NULL;
}

const struct filter_ops spffilter_ops = {
	.abi = FILTER_ABI_VERSION,
	.name = "spf",
	.stages = FILTER_STAGE_BIT(FILTER_STAGE_MAIL) |
	    FILTER_STAGE_BIT(FILTER_STAGE_EOM),
	.options = spf_options,
	.init = spf_init,
	.fini = spf_fini,
	.stage = spf_stage,
	.cancel = spf_cancel,
	.reset = spf_reset,
	.close = spf_close,
};
