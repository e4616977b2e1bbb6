/*
 * testfilter.c - a filter for the test suite (enabled only by a
 * `filter "test" { ... }` section): it delays a stage, rejects a chosen
 * recipient, and tempfails or rejects a chosen stage, so the tests can
 * drive every path of the chain (async completion, timeout, cancellation,
 * per-recipient rejection, content-stage verdicts).
 *
 * Options (moat.conf(5)): delay_stage + delay_ms, reject_rcpt,
 * tempfail_stage, reject_stage, error_stage (answers ERROR), evidence
 * ("stage:SYMBOL:score,..."), header_evidence = yes (evidence from an
 * "X-Moat-Test: SYMBOL=score ..." field of the message), add_header
 * ("Name: value", added at EOM), echo_client_name = yes (what the CONNECT
 * stage saw of the client's reverse DNS, added at EOM as
 * "X-Moat-Test-Client: status=... name=... ptr=..."), work_ms (at
 * delay_stage, hold a worker of the pool that long instead of a timer:
 * fills the pool for the tests of its full-queue paths), init_ms (init
 * sleeps that long, at most 60 s: a slow reload, as a large ruleset
 * compile makes one, for the tests of the reload thread).
 *
 * Threading: ctx is read-only after init; each pending delay is a timer on
 * the calling session's loop, owned by that call (freed on completion or
 * cancel).
 */
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chain.h"
#include "config.h"
#include "filter_opts.h"
#include "loop.h"
#include "util.h"

struct tf_evidence {
	int    stage;
	char   symbol[64];
	double score;
};

struct testfilter {
	int		   delay_stage; /* -1: none */
	long		   delay_ms;
	long		   work_ms; /* delay_stage on the worker pool */
	int		   tempfail_stage;
	int		   reject_stage;
	int		   error_stage;
	char		  *reject_rcpt;
	char		  *add_header; /* "Name: value" at EOM */
	int		   header_evidence;
	int		   echo_client_name;
	struct tf_evidence ev[16];
	size_t		   nev;
};

struct tf_pending {
	struct event	   *ev;
	struct filter_token token;
};

static const char *const tf_options[] = { "delay_stage", "delay_ms",
	"reject_rcpt", "tempfail_stage", "reject_stage", "error_stage",
	"evidence", "add_header", "header_evidence", "echo_client_name",
	"work_ms", "init_ms", NULL };

static int
stage_by_name(const char *s)
{
	int i;

	if (s == NULL || *s == '\0')
		return -1;
	for (i = 0; i < FILTER_STAGE_COUNT; i++)
		if (strcmp(s, filter_stage_name(i)) == 0)
			return i;
	return -2;
}

static int
tf_stage_opt(const struct filter_conf *fc, const char *key, int *out)
{
	if ((*out = stage_by_name(filter_conf_get(fc, key))) == -2) {
		filter_conf_error(fc, "%s: \"%s\" is not a stage", key,
		    filter_conf_get(fc, key));
		return -1;
	}
	return 0;
}

/* "stage:SYMBOL:score,..." */
static int
tf_parse_evidence(struct testfilter *tf, const struct filter_conf *fc)
{
	const char *v = filter_conf_get(fc, "evidence");
	char	    st[16], sym[64];
	double	    score;
	int	    n;

	while (v != NULL && *v != '\0') {
		if (tf->nev == nitems(tf->ev) ||
		    sscanf(v, "%15[a-z]:%63[A-Za-z0-9_]:%lf%n", st, sym, &score,
			&n) != 3 ||
		    stage_by_name(st) < 0) {
			filter_conf_error(
			    fc, "evidence: cannot parse \"%s\"", v);
			return -1;
		}
		tf->ev[tf->nev].stage = stage_by_name(st);
		snprintf(tf->ev[tf->nev].symbol, sizeof(tf->ev[0].symbol), "%s",
		    sym);
		tf->ev[tf->nev].score = score;
		tf->nev++;
		v += n;
		if (*v == ',')
			v++;
	}
	return 0;
}

static int
tf_init(const struct filter_conf *fc, void **ctx)
{
	struct testfilter *tf = xcalloc(1, sizeof(*tf));
	const char	  *v;
	double		   init_ms = 0;
	int		   bad = 0;

	bad |= tf_stage_opt(fc, "delay_stage", &tf->delay_stage);
	bad |= tf_stage_opt(fc, "tempfail_stage", &tf->tempfail_stage);
	bad |= tf_stage_opt(fc, "reject_stage", &tf->reject_stage);
	bad |= tf_stage_opt(fc, "error_stage", &tf->error_stage);
	v = filter_conf_get(fc, "delay_ms");
	tf->delay_ms = v != NULL ? atol(v) : 0;
	v = filter_conf_get(fc, "work_ms");
	tf->work_ms = v != NULL ? atol(v) : 0;
	v = filter_conf_get(fc, "reject_rcpt");
	tf->reject_rcpt = xstrdup(v != NULL ? v : "");
	v = filter_conf_get(fc, "add_header");
	tf->add_header = v != NULL ? xstrdup(v) : NULL;
	v = filter_conf_get(fc, "header_evidence");
	tf->header_evidence = v != NULL && strcmp(v, "yes") == 0;
	v = filter_conf_get(fc, "echo_client_name");
	tf->echo_client_name = v != NULL && strcmp(v, "yes") == 0;
	bad |= tf_parse_evidence(tf, fc);
	if (filter_opt_num(
		fc, "init_ms", 0, 60000, "0 to 60000 ms", &init_ms) == -1)
		bad = 1;
	else if (init_ms > 0) {
		/* Checked after the sleep: a slow init that fails. */
		struct timespec ts = { (time_t)(init_ms / 1000),
			(long)((long)init_ms % 1000) * 1000000L };

		while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
			;
	}
	*ctx = tf;
	if (bad) {
		free(tf->reject_rcpt);
		free(tf->add_header);
		free(tf);
		return -1;
	}
	return 0;
}

static void
tf_fini(void *ctx)
{
	struct testfilter *tf = ctx;

	free(tf->reject_rcpt);
	free(tf->add_header);
	free(tf);
}

/* X-Moat-Test: SYMBOL=score SYMBOL=score ... */
static void
tf_header_evidence(const struct filter_call *call)
{
	const char *v = call->env->hdr_value;
	char	    sym[64];
	double	    score;
	int	    n;

	if (ascii_strcasecmp(call->env->hdr_name, "X-Moat-Test") != 0)
		return;
	while (*v != '\0') {
		while (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n')
			v++;
		if (sscanf(v, "%63[A-Za-z0-9_]=%lf%n", sym, &score, &n) != 2)
			break;
		filter_evidence(&call->token, sym, score, "from X-Moat-Test");
		v += n;
	}
}

/* What CONNECT saw of the client's name, kept for EOM. */
static void
tf_echo_client_name(const struct filter_call *call)
{
	static const char *const st[] = { "unchecked", "verified", "none",
		"mismatch", "tempfail" };
	const struct filter_env *env = call->env;
	int			 n = env->client_name_status;
	char			 buf[600];

	if (call->stage == FILTER_STAGE_CONNECT) {
		snprintf(buf, sizeof(buf), "status=%s name=%s ptr=%s",
		    n >= 0 && (size_t)n < nitems(st) ? st[n] : "?",
		    env->client_name ? env->client_name : "-",
		    env->client_ptr ? env->client_ptr : "-");
		free(*call->session_data);
		*call->session_data = xstrdup(buf);
	} else if (call->stage == FILTER_STAGE_EOM &&
	    *call->session_data != NULL)
		filter_header_add(
		    &call->token, "X-Moat-Test-Client", *call->session_data);
}

static void
tf_close(void *ctx, void **session_data)
{
	(void)ctx;
	free(*session_data);
	*session_data = NULL;
}

static void
tf_delay_done(evutil_socket_t fd, short what, void *arg)
{
	struct tf_pending  *p = arg;
	struct filter_token t = p->token;

	event_free(p->ev);
	free(p);
	filter_complete(&t, FILTER_CONTINUE, NULL);
}

/* A job holding a worker; its call's cancel makes it end early. */
struct tf_job {
	_Atomic int cancelled;
	long	    ms;
};

static void
tf_work(void *arg)
{
	struct tf_job  *j = arg;
	struct timespec ts = { 0, 10 * 1000000L };
	long		left;

	for (left = j->ms; left > 0 && !j->cancelled; left -= 10)
		nanosleep(&ts, NULL);
}

static void
tf_work_done(const struct filter_token *t, void *arg)
{
	struct tf_job *j = arg;
	int	       cancelled = j->cancelled;

	free(j);
	if (!cancelled)
		filter_complete(t, FILTER_CONTINUE, NULL);
}

static enum filter_verdict
tf_stage(void *ctx, struct filter_call *call, struct filter_reply *reply)
{
	struct testfilter *tf = ctx;
	struct tf_pending *p;
	struct timeval	   tv;
	size_t		   i;
	char		   name[80];
	const char	  *colon;

	for (i = 0; i < tf->nev; i++)
		if (tf->ev[i].stage == (int)call->stage)
			filter_evidence(&call->token, tf->ev[i].symbol,
			    tf->ev[i].score, "test filter at %s",
			    filter_stage_name(call->stage));
	if (tf->header_evidence && call->stage == FILTER_STAGE_HEADER)
		tf_header_evidence(call);
	if (tf->echo_client_name)
		tf_echo_client_name(call);
	if (call->stage == FILTER_STAGE_EOM && tf->add_header != NULL &&
	    (colon = strchr(tf->add_header, ':')) != NULL &&
	    (size_t)(colon - tf->add_header) < sizeof(name)) {
		snprintf(name, sizeof(name), "%.*s",
		    (int)(colon - tf->add_header), tf->add_header);
		filter_header_add(&call->token, name, colon + 1);
	}
	if ((int)call->stage == tf->error_stage)
		return FILTER_ERROR;
	if ((int)call->stage == tf->reject_stage) {
		reply->code = 550;
		strcpy(reply->enh, "5.7.1");
		snprintf(reply->text, sizeof(reply->text),
		    "Rejected by test filter at %s",
		    filter_stage_name(call->stage));
		return FILTER_REJECT;
	}
	if ((int)call->stage == tf->tempfail_stage) {
		reply->code = 451;
		strcpy(reply->enh, "4.7.1");
		snprintf(reply->text, sizeof(reply->text),
		    "Deferred by test filter at %s",
		    filter_stage_name(call->stage));
		return FILTER_TEMPFAIL;
	}
	if (call->stage == FILTER_STAGE_RCPT && tf->reject_rcpt[0] != '\0' &&
	    ascii_strcasecmp(call->env->rcpt, tf->reject_rcpt) == 0) {
		reply->code = 550;
		strcpy(reply->enh, "5.7.1");
		strcpy(reply->text, "Recipient refused by test filter");
		return FILTER_REJECT;
	}
	if ((int)call->stage == tf->delay_stage && tf->work_ms > 0) {
		struct tf_job *j = xcalloc(1, sizeof(*j));

		j->ms = tf->work_ms;
		if (filter_work(&call->token, tf_work, tf_work_done, j) == 0) {
			call->cookie = j;
			return FILTER_PENDING;
		}
		free(j);
		return FILTER_ERROR; /* the pool is full */
	}
	if ((int)call->stage == tf->delay_stage) {
		p = xcalloc(1, sizeof(*p));
		p->token = call->token;
		p->ev =
		    evtimer_new(loop_base(call->token.loop), tf_delay_done, p);
		tv = tv_msec(tf->delay_ms);
		evtimer_add(p->ev, &tv);
		call->cookie = p;
		return FILTER_PENDING;
	}
	return FILTER_CONTINUE;
}

static void
tf_cancel(void *ctx, void *cookie)
{
	struct testfilter *tf = ctx;
	struct tf_pending *p = cookie;

	if (p == NULL)
		return;
	if (tf->work_ms > 0) { /* a tf_job: done frees it */
		((struct tf_job *)cookie)->cancelled = 1;
		return;
	}
	event_free(p->ev);
	free(p);
}

const struct filter_ops testfilter_ops = {
	.abi = FILTER_ABI_VERSION,
	.name = "test",
	.options = tf_options,
	.stages = 0x1ff, /* every stage */
	.init = tf_init,
	.fini = tf_fini,
	.stage = tf_stage,
	.cancel = tf_cancel,
	.close = tf_close,
};
