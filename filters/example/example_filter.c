/*
 * example_filter.c - a minimal external moat filter, built as a shared
 * object (filters/README.md walks through it).
 *
 *	cc -shared -fPIC -Wall -Wextra -I/usr/include/moat -o example.so
 *example_filter.c
 *
 *	filter "example" {
 *		load = "/usr/local/lib/moat/example.so"
 *		word = "viagra"		# required
 *		score = 5		# optional, default 5
 *	}
 *
 * What it does:
 *   HEADER  if the Subject contains `word` (ASCII case-insensitive), it
 *           reports the evidence EXAMPLE_WORD with `score`; the policy's
 *           rules and thresholds decide what that means.
 *   EOM     it adds "X-Example-Filter: checked", then runs a trivial job
 *           on the worker pool (a checksum of the message number) and
 *           answers PENDING; the job's done callback completes the call.
 *
 * Per-session state (call->session_data): how many messages this session
 * has sent through EOM, and whether the current message already had a
 * matching Subject (cleared by reset() at the end of each transaction).
 * close() frees it.
 *
 * Threading: every callback runs on the session's loop thread, except
 * job_work(), which runs on a worker thread and touches nothing but its
 * job. The instance (struct example) is read-only after init.
 *
 * The filter API functions (filter_evidence() & co.) are not linked into
 * the object: they resolve from moatd, which exports them, when the
 * object is loaded.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "filter_api.h"

#define EXAMPLE_DEFAULT_SCORE 5.0

/* One per `filter` section; read-only after init. */
struct example {
	char  *word;
	size_t wordlen;
	double score;
};

/* One per session, created at the first stage that needs it. */
struct example_session {
	unsigned long messages; /* messages that reached EOM */
	int	      reported; /* EXAMPLE_WORD already reported for this one */
};

/* One per EOM call; owned by the worker pool from filter_work() to done. */
struct example_job {
	unsigned long messages;	 /* input */
	uint32_t      sum;	 /* output, written by job_work */
	int	      cancelled; /* set by cancel(); loop thread only */
};

static const char *const example_options[] = { "word", "score", NULL };

/* ------------------------------------------------------ configuration */

static int
example_init(const struct filter_conf *fc, void **ctx)
{
	struct example *ex;
	const char     *word = filter_conf_get(fc, "word");
	const char     *score = filter_conf_get(fc, "score");
	char	       *end;
	double		s = EXAMPLE_DEFAULT_SCORE;

	if (word == NULL || *word == '\0') {
		filter_conf_error(fc, "option \"word\" is required");
		return -1;
	}
	if (score != NULL) {
		errno = 0;
		s = strtod(score, &end);
		if (errno != 0 || end == score || *end != '\0' || s != s) {
			filter_conf_error(
			    fc, "score: \"%s\" is not a number", score);
			return -1;
		}
	}
	if ((ex = calloc(1, sizeof(*ex))) == NULL ||
	    (ex->word = strdup(word)) == NULL) {
		free(ex);
		filter_conf_error(fc, "out of memory");
		return -1;
	}
	ex->wordlen = strlen(word);
	ex->score = s;
	*ctx = ex;
	return 0;
}

static void
example_fini(void *ctx)
{
	struct example *ex = ctx;

	free(ex->word);
	free(ex);
}

/* ------------------------------------------------------------- stages */

static int
lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* Does s contain w (ASCII case-insensitive)? Locale-independent. */
static int
contains(const char *s, const char *w, size_t wlen)
{
	size_t i;

	for (; *s != '\0'; s++) {
		for (i = 0; i < wlen && s[i] != '\0'; i++)
			if (lower((unsigned char)s[i]) !=
			    lower((unsigned char)w[i]))
				break;
		if (i == wlen)
			return 1;
	}
	return 0;
}

static struct example_session *
session_of(struct filter_call *call)
{
	if (*call->session_data == NULL)
		*call->session_data = calloc(1, sizeof(struct example_session));
	return *call->session_data;
}

/* Worker thread: blocking work would go here. Touches only the job. */
static void
job_work(void *arg)
{
	struct example_job *job = arg;
	unsigned long	    n = job->messages;
	uint32_t	    h = 2166136261u; /* FNV-1a of the number's bytes */
	size_t		    i;

	for (i = 0; i < sizeof(n); i++) {
		h ^= (uint32_t)(n & 0xff);
		h *= 16777619u;
		n >>= 8;
	}
	job->sum = h;
}

/* Loop thread, always called once per job: complete, unless cancelled. */
static void
job_done(const struct filter_token *token, void *arg)
{
	struct example_job *job = arg;

	if (!job->cancelled)
		filter_complete(token, FILTER_CONTINUE, NULL);
	free(job);
}

static enum filter_verdict
example_eom(struct filter_call *call, struct example_session *s)
{
	struct example_job *job;

	s->messages++;
	filter_header_add(&call->token, "X-Example-Filter", "checked");
	if ((job = calloc(1, sizeof(*job))) == NULL)
		return FILTER_ERROR;
	job->messages = s->messages;
	if (filter_work(&call->token, job_work, job_done, job) == -1) {
		free(job); /* the pool did not take it */
		return FILTER_ERROR;
	}
	call->cookie = job; /* for cancel() */
	return FILTER_PENDING;
}

static enum filter_verdict
example_stage(void *ctx, struct filter_call *call, struct filter_reply *reply)
{
	const struct example   *ex = ctx;
	struct example_session *s = session_of(call);

	(void)reply; /* only for REJECT/TEMPFAIL verdicts, unused here */
	if (s == NULL)
		return FILTER_ERROR; /* out of memory: on_error applies */
	switch (call->stage) {
	case FILTER_STAGE_HEADER:
		if (!s->reported &&
		    strcasecmp(call->env->hdr_name, "Subject") == 0 &&
		    contains(call->env->hdr_value, ex->word, ex->wordlen)) {
			filter_evidence(&call->token, "EXAMPLE_WORD", ex->score,
			    "Subject contains \"%s\" (message %lu of the "
			    "session)",
			    ex->word, s->messages + 1);
			s->reported = 1;
		}
		return FILTER_CONTINUE;
	case FILTER_STAGE_EOM:
		return example_eom(call, s);
	default:
		return FILTER_CONTINUE;
	}
}

/*
 * The call timed out or the session went away. The job is still with the
 * pool and job_done() will run: it must not complete the call, and it
 * frees the job, so this only marks it.
 */
static void
example_cancel(void *ctx, void *cookie)
{
	struct example_job *job = cookie;

	(void)ctx;
	if (job != NULL)
		job->cancelled = 1;
}

/* End of a transaction (RSET, new MAIL, message done). */
static void
example_reset(void *ctx, void **session_data)
{
	struct example_session *s = *session_data;

	(void)ctx;
	if (s != NULL)
		s->reported = 0;
}

/* End of the session. */
static void
example_close(void *ctx, void **session_data)
{
	(void)ctx;
	free(*session_data);
	*session_data = NULL;
}

static const struct filter_ops example_ops = {
	.abi = FILTER_ABI_VERSION,
	.name = "example",
	.stages = FILTER_STAGE_BIT(FILTER_STAGE_HEADER) |
	    FILTER_STAGE_BIT(FILTER_STAGE_EOM),
	.options = example_options,
	.init = example_init,
	.fini = example_fini,
	.stage = example_stage,
	.cancel = example_cancel,
	.reset = example_reset,
	.close = example_close,
};

/* The entry point moatd looks up after dlopen(). */
const struct filter_ops *moat_filter(unsigned abi);

const struct filter_ops *
moat_filter(unsigned abi)
{
	return abi == FILTER_ABI_VERSION ? &example_ops : NULL;
}
