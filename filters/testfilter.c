/*
 * testfilter.c - a filter for the test suite (enabled only by a
 * `filter "test" { ... }` section): it delays a stage, rejects a chosen
 * recipient, and tempfails or rejects a chosen stage, so the tests can
 * drive every path of the chain (async completion, timeout, cancellation,
 * per-recipient rejection, content-stage verdicts).
 *
 * Options (moat.conf(5)): delay_stage + delay_ms, reject_rcpt,
 * tempfail_stage, reject_stage, timeout_ms.
 *
 * Threading: ctx is read-only after init; each pending delay is a timer on
 * the calling session's loop, owned by that call (freed on completion or
 * cancel).
 */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "chain.h"
#include "config.h"
#include "loop.h"
#include "util.h"

static const char *const names[FILTER_STAGE_COUNT] = { "connect", "helo",
	"mail", "rcpt", "data", "header", "eoh", "body", "eom" };

struct testfilter {
	int   delay_stage; /* -1: none */
	long  delay_ms;
	int   tempfail_stage;
	int   reject_stage;
	char *reject_rcpt;
};

struct tf_pending {
	struct event	   *ev;
	struct filter_token token;
};

static int
stage_by_name(const char *s)
{
	int i;

	for (i = 0; i < FILTER_STAGE_COUNT; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

static int
tf_init(const struct filter_conf *fc, void **ctx)
{
	struct testfilter *tf = xcalloc(1, sizeof(*tf));

	tf->delay_stage = stage_by_name(fc->delay_stage);
	tf->delay_ms = fc->delay_ms;
	tf->tempfail_stage = stage_by_name(fc->tempfail_stage);
	tf->reject_stage = stage_by_name(fc->reject_stage);
	tf->reject_rcpt = xstrdup(fc->reject_rcpt);
	*ctx = tf;
	return 0;
}

static void
tf_fini(void *ctx)
{
	struct testfilter *tf = ctx;

	free(tf->reject_rcpt);
	free(tf);
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

static enum filter_verdict
tf_stage(void *ctx, struct filter_call *call, struct filter_reply *reply)
{
	struct testfilter *tf = ctx;
	struct tf_pending *p;
	struct timeval	   tv;

	if ((int)call->stage == tf->reject_stage) {
		reply->code = 550;
		strcpy(reply->enh, "5.7.1");
		snprintf(reply->text, sizeof(reply->text),
		    "Rejected by test filter at %s", names[call->stage]);
		return FILTER_REJECT;
	}
	if ((int)call->stage == tf->tempfail_stage) {
		reply->code = 451;
		strcpy(reply->enh, "4.7.1");
		snprintf(reply->text, sizeof(reply->text),
		    "Deferred by test filter at %s", names[call->stage]);
		return FILTER_TEMPFAIL;
	}
	if (call->stage == FILTER_STAGE_RCPT && tf->reject_rcpt[0] != '\0' &&
	    ascii_strcasecmp(call->env->rcpt, tf->reject_rcpt) == 0) {
		reply->code = 550;
		strcpy(reply->enh, "5.7.1");
		strcpy(reply->text, "Recipient refused by test filter");
		return FILTER_REJECT;
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
	struct tf_pending *p = cookie;

	if (p == NULL)
		return;
	event_free(p->ev);
	free(p);
}

const struct filter_ops testfilter_ops = {
	.name = "test",
	.stages = 0x1ff, /* every stage */
	.init = tf_init,
	.fini = tf_fini,
	.stage = tf_stage,
	.cancel = tf_cancel,
};
