/*
 * chain.c - the filter chain runner (milter semantics, STYLE.md §9.3).
 *
 * CONTINUE moves to the next filter; ACCEPT skips the remaining filters
 * for the rest of the message (for the whole session when it comes at
 * CONNECT or HELO, as in milter); REJECT, TEMPFAIL and
 * DISCARD end the stage and become the session's answer; PENDING parks the
 * run until filter_complete() or the filter's timeout. ERROR and timeouts
 * get the filter's on_error: continue (logged, FILTER_ERROR evidence),
 * tempfail (451 4.3.0, the default) or reject (550 5.7.1).
 *
 * Threading: the chain is shared read-only (counters are atomics); a
 * chain_run lives on its session's loop thread. Completions, evidence and
 * header changes are looked up by (session id, call number), so anything
 * arriving for a gone session or an older call is dropped without
 * touching freed memory.
 */
#include <dlfcn.h>
#include <errno.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chain.h"
#include "config.h"
#include "evidence.h"
#include "hdredit.h"
#include "log.h"
#include "loop.h"
#include "policy.h"
#include "spool.h"
#include "util.h"
#include "workers.h"

static const char *const stage_names[FILTER_STAGE_COUNT] = { "connect", "helo",
	"mail", "rcpt", "data", "header", "eoh", "body", "eom" };

const char *
filter_stage_name(enum filter_stage st)
{
	return (unsigned)st < FILTER_STAGE_COUNT ? stage_names[st] : "?";
}

static const char *const on_error_names[] = { "tempfail", "continue",
	"reject" };

struct filter_inst {
	const struct filter_ops	 *ops;
	const struct filter_conf *conf;
	char			  name[32];
	void			 *ctx;
	void			 *dl; /* shared object handle */
	long			  timeout_ms;
	int			  on_error;
	atomic_ulong		  calls, errors, timeouts, usec;
};

struct chain {
	struct filter_inst f[FILTERS_MAX_CHAIN];
	size_t		   n;
	uint32_t	   stages;
};

static chain_lookup_fn lookup;

void
chain_set_lookup(chain_lookup_fn fn)
{
	lookup = fn;
}

/* ------------------------------------------------- configuration */

static const struct {
	const struct filter_ops *ops;
	void (*dirs)(const struct filter_conf *, filter_dir_fn, void *);
} builtin[] = {
	{ &testfilter_ops, NULL },
	{ &spffilter_ops, NULL },
	{ &dkimfilter_ops, NULL },
	{ &dmarcfilter_ops, dmarcfilter_dirs },
	{ &avfilter_ops, NULL },
	{ &spamfilter_ops, spamfilter_dirs },
};

void
chain_state_dirs(const struct config *cf, filter_dir_fn dir, void *arg)
{
	size_t i, j;

	for (i = 0; i < cf->nfilters; i++) {
		if (cf->filters[i].load != NULL)
			continue;
		for (j = 0; j < nitems(builtin); j++)
			if (strcmp(builtin[j].ops->name, cf->filters[i].type) ==
				0 &&
			    builtin[j].dirs != NULL)
				builtin[j].dirs(&cf->filters[i], dir, arg);
	}
}

static const struct filter_ops *
filter_load(const struct filter_conf *fc, void **dl)
{
	const struct filter_ops *(*entry)(unsigned);
	const struct filter_ops *ops;
	size_t			 i;

	*dl = NULL;
	if (fc->load == NULL) {
		for (i = 0; i < nitems(builtin); i++)
			if (strcmp(builtin[i].ops->name, fc->type) == 0)
				return builtin[i].ops;
		config_report(
		    fc->file, fc->line, "unknown filter \"%s\"", fc->type);
		return NULL;
	}
	if ((*dl = dlopen(fc->load, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		config_report(fc->file, fc->line, "filter \"%s\": %s", fc->name,
		    dlerror());
		return NULL;
	}
	*(void **)&entry = dlsym(*dl, "moat_filter");
	if (entry == NULL) {
		config_report(fc->file, fc->line,
		    "filter \"%s\": %s exports no moat_filter()", fc->name,
		    fc->load);
		goto fail;
	}
	ops = entry(FILTER_ABI_VERSION);
	if (ops == NULL) {
		config_report(fc->file, fc->line,
		    "filter \"%s\": %s: moat_filter() refused filter ABI %u",
		    fc->name, fc->load, FILTER_ABI_VERSION);
		goto fail;
	}
	if (ops->abi != FILTER_ABI_VERSION) {
		config_report(fc->file, fc->line,
		    "filter \"%s\": %s was built for filter ABI %u, moatd has "
		    "%u",
		    fc->name, fc->load, ops->abi, FILTER_ABI_VERSION);
		goto fail;
	}
	if (ops->name == NULL || ops->stage == NULL) {
		config_report(fc->file, fc->line,
		    "filter \"%s\": incomplete filter_ops", fc->name);
		goto fail;
	}
	return ops;
fail:
	dlclose(*dl);
	*dl = NULL;
	return NULL;
}

/* Every option of the section must be one the filter knows. */
static int
filter_check_options(const struct filter_ops *ops, const struct filter_conf *fc)
{
	size_t i, k;
	int    bad = 0;

	for (i = 0; i < fc->nopts; i++) {
		for (k = 0; ops->options != NULL && ops->options[k] != NULL;
		     k++)
			if (strcmp(ops->options[k], fc->keys[i]) == 0)
				break;
		if (ops->options == NULL || ops->options[k] == NULL) {
			config_report(fc->file, fc->line,
			    "filter \"%s\": unknown option \"%s\"", fc->name,
			    fc->keys[i]);
			bad = 1;
		}
	}
	return bad ? -1 : 0;
}

/*
 * A filter that reads other filters' results (dmarc reads spf's and
 * dkim's Authentication-Results clauses) must run after them.
 */
static int
check_order(const struct chain *c)
{
	size_t i, j;
	int    bad = 0;

	for (i = 0; i < c->n; i++) {
		if (c->f[i].ops != &dmarcfilter_ops)
			continue;
		for (j = i + 1; j < c->n; j++)
			if (c->f[j].ops == &spffilter_ops ||
			    c->f[j].ops == &dkimfilter_ops) {
				config_report(c->f[i].conf->file,
				    c->f[i].conf->line,
				    "filter \"%s\" reads the results of filter "
				    "\"%s\": list it after that one",
				    c->f[i].name, c->f[j].name);
				bad = 1;
			}
	}
	return bad;
}

struct chain *
chain_new(const struct config *cf, const struct policy *pol)
{
	struct chain	   *c = xcalloc(1, sizeof(*c));
	struct filter_inst *fi;
	size_t		    i;
	int		    bad = 0;

	if (pol != NULL && policy_has_lists(pol)) {
		fi = &c->f[c->n++];
		fi->ops = &listsfilter_ops;
		snprintf(fi->name, sizeof(fi->name), "lists");
		fi->ctx = (void *)pol; /* no init: the policy owns the lists */
		fi->timeout_ms = LIMIT(cf, FILTER_TIMEOUT);
		c->stages |= fi->ops->stages;
	}
	for (i = 0; i < cf->nfilters; i++) {
		const struct filter_conf *fc = &cf->filters[i];

		fi = &c->f[c->n];
		fi->conf = fc;
		snprintf(fi->name, sizeof(fi->name), "%s", fc->name);
		if ((fi->ops = filter_load(fc, &fi->dl)) == NULL ||
		    filter_check_options(fi->ops, fc) == -1) {
			bad = 1;
			if (fi->dl != NULL)
				dlclose(fi->dl);
			fi->dl = NULL;
			continue;
		}
		fi->timeout_ms = fc->timeout_ms > 0 ? fc->timeout_ms
						    : LIMIT(cf, FILTER_TIMEOUT);
		fi->on_error = fc->on_error;
		if (fi->ops->init != NULL &&
		    fi->ops->init(fc, &fi->ctx) == -1) {
			config_report(fc->file, fc->line,
			    "filter \"%s\": initialisation failed", fc->name);
			if (fi->dl != NULL)
				dlclose(fi->dl);
			fi->dl = NULL;
			bad = 1;
			continue;
		}
		c->stages |= fi->ops->stages;
		c->n++;
	}
	bad |= check_order(c);
	if (bad) {
		chain_free(c);
		return NULL;
	}
	return c;
}

void
chain_free(struct chain *c)
{
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < c->n; i++) {
		if (c->f[i].conf != NULL && c->f[i].ops->fini != NULL)
			c->f[i].ops->fini(c->f[i].ctx);
		if (c->f[i].dl != NULL)
			dlclose(c->f[i].dl);
	}
	free(c);
}

int
chain_wants(const struct chain *c, enum filter_stage st)
{
	return c != NULL && (c->stages & FILTER_STAGE_BIT(st)) != 0;
}

size_t
chain_size(const struct chain *c)
{
	return c != NULL ? c->n : 0;
}

const char *
chain_filter_name(const struct chain *c, size_t i)
{
	return c->f[i].name;
}

const struct filter_rule *
chain_filter_rules(const struct chain *c, size_t i)
{
	return c->f[i].ops->rules;
}

int
chain_find(const struct chain *c, const char *name)
{
	size_t i;

	for (i = 0; c != NULL && i < c->n; i++)
		if (strcmp(c->f[i].name, name) == 0)
			return (int)i;
	return -1;
}

void
chain_log_stats(const struct chain *c)
{
	size_t i;

	for (i = 0; c != NULL && i < c->n; i++)
		log_info("event=filter-stats filter=%s calls=%lu errors=%lu "
			 "timeouts=%lu time_ms=%lu",
		    c->f[i].name, atomic_load(&c->f[i].calls),
		    atomic_load(&c->f[i].errors),
		    atomic_load(&c->f[i].timeouts),
		    atomic_load(&c->f[i].usec) / 1000);
}

/* ------------------------------------------------------- running */

void
chain_run_init(
    struct chain_run *r, const struct chain *c, struct loop *l, uint64_t sid)
{
	memset(r, 0, sizeof(*r));
	r->chain = c;
	r->loop = l;
	r->sid = sid;
	r->mask = ~0u;
}

static void chain_timeout_cb(evutil_socket_t, short, void *);

static int
filter_runs(const struct chain_run *r, size_t i)
{
	const struct filter_inst *fi = &r->chain->f[i];

	if ((fi->ops->stages & FILTER_STAGE_BIT(r->stage)) == 0)
		return 0;
	if (r->accepted & (1u << i))
		return 0;
	if (r->stage >= FILTER_STAGE_RCPT && !(r->mask & (1u << i)))
		return 0;
	return 1;
}

static void
call_time(struct chain_run *r, struct filter_inst *fi)
{
	uint64_t d = now_usec() - r->t_call;

	r->usec[r->next] += d;
	atomic_fetch_add(&fi->usec, (unsigned long)d);
}

/*
 * A filter failed (ERROR verdict or timeout): apply its on_error. Returns
 * CONTINUE (go on), TEMPFAIL or REJECT, with run->reply set.
 */
static enum filter_verdict
filter_failed(struct chain_run *r, struct filter_inst *fi, const char *why)
{
	atomic_fetch_add(
	    strcmp(why, "timeout") == 0 ? &fi->timeouts : &fi->errors, 1);
	log_warn("event=filter-%s sid=%016llx filter=%s stage=%s "
		 "on_error=%s",
	    strcmp(why, "timeout") == 0 ? "timeout" : "error",
	    (unsigned long long)r->sid, fi->name, stage_names[r->stage],
	    on_error_names[fi->on_error]);
	memset(&r->reply, 0, sizeof(r->reply));
	switch (fi->on_error) {
	case FILTER_ON_ERROR_CONTINUE:
		if (r->sink.ev != NULL)
			evidence_add(r->sink.ev, fi->name, "FILTER_ERROR", 0,
			    why, (int)r->stage);
		return FILTER_CONTINUE;
	case FILTER_ON_ERROR_REJECT:
		r->reply.code = 550;
		strcpy(r->reply.enh, "5.7.1");
		snprintf(r->reply.text, sizeof(r->reply.text),
		    "Message refused (filter %s failed)", fi->name);
		return FILTER_REJECT;
	default:
		r->reply.code = 451;
		strcpy(r->reply.enh, "4.3.0");
		snprintf(r->reply.text, sizeof(r->reply.text),
		    "Filter %s %s, try again later", fi->name,
		    strcmp(why, "timeout") == 0 ? "timed out" : "failed");
		return FILTER_TEMPFAIL;
	}
}

/*
 * One filter's answer (r->next is that filter). Returns CONTINUE to go on
 * with the next filter, or a final verdict.
 */
static enum filter_verdict
chain_answer(struct chain_run *r, enum filter_verdict v)
{
	struct filter_inst *fi = (struct filter_inst *)&r->chain->f[r->next];

	if (v == FILTER_ERROR || v == FILTER_PENDING)
		v = filter_failed(r, fi, "error");
	r->next++;
	switch (v) {
	case FILTER_CONTINUE:
		return FILTER_CONTINUE;
	case FILTER_ACCEPT:
		/* This and every later filter are done for the message. */
		r->accepted = ~0u;
		if (r->stage <= FILTER_STAGE_HELO)
			r->session_accepted |= 1u << r->stage;
		r->decided_by = fi->name;
		log_info("event=filter-verdict sid=%016llx filter=%s stage=%s "
			 "verdict=accept",
		    (unsigned long long)r->sid, fi->name,
		    stage_names[r->stage]);
		r->next = r->chain->n;
		return FILTER_ACCEPT;
	default:
		r->decided_by = fi->name;
		log_info("event=filter-verdict sid=%016llx filter=%s stage=%s "
			 "verdict=%s",
		    (unsigned long long)r->sid, fi->name, stage_names[r->stage],
		    v == FILTER_REJECT	       ? "reject"
			: v == FILTER_TEMPFAIL ? "tempfail"
					       : "discard");
		return v;
	}
}

/* Run filters from r->next on; returns a final verdict or PENDING. */
static enum filter_verdict
chain_step(struct chain_run *r)
{
	struct filter_inst *fi;
	struct filter_call  call;
	enum filter_verdict v;
	struct timeval	    tv;

	while (r->next < r->chain->n) {
		fi = (struct filter_inst *)&r->chain->f[r->next];
		if (!filter_runs(r, r->next)) {
			r->next++;
			continue;
		}
		memset(&call, 0, sizeof(call));
		call.stage = r->stage;
		call.env = r->env;
		call.token.loop = r->loop;
		call.token.sid = r->sid;
		call.token.call = ++r->call;
		call.session_data = &r->session_data[r->next];
		memset(&r->reply, 0, sizeof(r->reply));
		atomic_fetch_add(&fi->calls, 1);
		r->t_call = now_usec();
		r->in_call = 1;
		v = fi->ops->stage(fi->ctx, &call, &r->reply);
		r->in_call = 0;
		if (v == FILTER_PENDING) {
			r->pending = 1;
			r->cookie = call.cookie;
			if (r->timer == NULL)
				r->timer = evtimer_new(
				    loop_base(r->loop), chain_timeout_cb, r);
			tv = tv_msec(fi->timeout_ms);
			evtimer_add(r->timer, &tv);
			return FILTER_PENDING;
		}
		call_time(r, fi);
		v = chain_answer(r, v);
		if (v == FILTER_ACCEPT)
			return FILTER_CONTINUE;
		if (v != FILTER_CONTINUE)
			return v;
	}
	return FILTER_CONTINUE;
}

enum filter_verdict
chain_run_stage(struct chain_run *r, enum filter_stage st,
    const struct filter_env *env, chain_done_fn done, void *arg)
{
	if (r->chain == NULL || !chain_wants(r->chain, st))
		return FILTER_CONTINUE;
	r->stage = st;
	r->env = env;
	r->next = 0;
	r->done = done;
	r->arg = arg;
	r->decided_by = NULL;
	return chain_step(r);
}

/* A pending call ended with v: go on, and tell the session at the end. */
static void
chain_resume(struct chain_run *r, enum filter_verdict v)
{
	r->pending = 0;
	r->cookie = NULL;
	if (r->timer != NULL)
		evtimer_del(r->timer);
	v = chain_answer(r, v);
	if (v == FILTER_ACCEPT)
		v = FILTER_CONTINUE;
	else if (v == FILTER_CONTINUE) {
		v = chain_step(r);
		if (v == FILTER_PENDING)
			return;
	}
	r->done(r->arg, v, &r->reply);
}

static struct chain_run *
run_of(const struct filter_token *t)
{
	struct chain_run *r;

	if (lookup == NULL || t == NULL || t->loop == NULL)
		return NULL;
	r = lookup(t->loop, t->sid);
	if (r == NULL || r->call != t->call || (!r->pending && !r->in_call))
		return NULL;
	return r;
}

void
filter_complete(const struct filter_token *t, enum filter_verdict v,
    const struct filter_reply *reply)
{
	struct chain_run *r = run_of(t);

	if (r == NULL || !r->pending) {
		log_debug("event=filter-late sid=%016llx call=%llu",
		    (unsigned long long)t->sid, (unsigned long long)t->call);
		return;
	}
	if (reply != NULL)
		r->reply = *reply;
	else
		memset(&r->reply, 0, sizeof(r->reply));
	call_time(r, (struct filter_inst *)&r->chain->f[r->next]);
	chain_resume(r, v);
}

static void
chain_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct chain_run   *r = arg;
	struct filter_inst *fi = (struct filter_inst *)&r->chain->f[r->next];
	enum filter_verdict v;

	if (fi->ops->cancel != NULL)
		fi->ops->cancel(fi->ctx, r->cookie);
	r->call++; /* a completion after this is late */
	call_time(r, fi);
	v = filter_failed(r, fi, "timeout");
	r->pending = 0;
	r->cookie = NULL;
	r->next++;
	if (v == FILTER_CONTINUE) {
		v = chain_step(r);
		if (v == FILTER_PENDING)
			return;
	} else
		r->decided_by = fi->name;
	r->done(r->arg, v, &r->reply);
}

void
chain_run_cancel(struct chain_run *r)
{
	const struct filter_inst *fi;

	if (!r->pending)
		return;
	fi = &r->chain->f[r->next];
	if (fi->ops->cancel != NULL)
		fi->ops->cancel(fi->ctx, r->cookie);
	r->pending = 0;
	r->cookie = NULL;
	r->call++;
	if (r->timer != NULL)
		evtimer_del(r->timer);
}

void
chain_run_reset(struct chain_run *r)
{
	size_t i;

	if (!r->session_accepted)
		r->accepted = 0;
	r->mask = ~0u;
	memset(r->usec, 0, sizeof(r->usec));
	for (i = 0; r->chain != NULL && i < r->chain->n; i++)
		if (r->chain->f[i].ops->reset != NULL)
			r->chain->f[i].ops->reset(
			    r->chain->f[i].ctx, &r->session_data[i]);
}

void
chain_run_free(struct chain_run *r)
{
	size_t i;

	chain_run_cancel(r);
	for (i = 0; r->chain != NULL && i < r->chain->n; i++)
		if (r->chain->f[i].ops->close != NULL)
			r->chain->f[i].ops->close(
			    r->chain->f[i].ctx, &r->session_data[i]);
	if (r->timer != NULL) {
		event_free(r->timer);
		r->timer = NULL;
	}
}

/* ------------------------------------------ services for filters */

int
filter_evidence(const struct filter_token *t, const char *symbol, double score,
    const char *fmt, ...)
{
	struct chain_run *r = run_of(t);
	char		  detail[EVIDENCE_DETAIL_MAX];
	va_list		  ap;

	if (r == NULL || r->sink.ev == NULL)
		return -1;
	detail[0] = '\0';
	if (fmt != NULL) {
		va_start(ap, fmt);
		vsnprintf(detail, sizeof(detail), fmt, ap);
		va_end(ap);
	}
	return evidence_add(r->sink.ev, r->chain->f[r->next].name, symbol,
		   score, detail, (int)r->stage) != NULL
	    ? 0
	    : -1;
}

int
filter_auth_result(const struct filter_token *t, const char *clause)
{
	struct chain_run *r = run_of(t);

	if (r == NULL || r->sink.ar == NULL || *r->sink.nar >= AR_CLAUSES_MAX)
		return -1;
	r->sink.ar[(*r->sink.nar)++] = xstrdup(clause);
	return 0;
}

const struct evidence_set *
chain_evidence(const struct filter_token *t)
{
	struct chain_run *r = run_of(t);

	return r != NULL ? r->sink.ev : NULL;
}

const char *const *
filter_auth_results(const struct filter_token *t, size_t *n)
{
	struct chain_run *r = run_of(t);

	*n = 0;
	if (r == NULL || r->sink.ar == NULL)
		return NULL;
	*n = *r->sink.nar;
	return (const char *const *)r->sink.ar;
}

static struct hdr_edits *
edits_of(const struct filter_token *t)
{
	struct chain_run *r = run_of(t);

	if (r == NULL || r->stage != FILTER_STAGE_EOM ||
	    r->sink.edits == NULL ||
	    r->sink.edits->n >= FILTER_HEADER_EDITS_MAX)
		return NULL;
	return r->sink.edits;
}

int
filter_header_add(
    const struct filter_token *t, const char *name, const char *value)
{
	struct hdr_edits *e = edits_of(t);

	return e != NULL ? hdr_edit_add(e, name, value) : -1;
}

int
filter_header_append(
    const struct filter_token *t, const char *name, const char *value)
{
	struct hdr_edits *e = edits_of(t);

	return e != NULL ? hdr_edit_append(e, name, value) : -1;
}

int
filter_header_change(const struct filter_token *t, const char *name,
    unsigned index, const char *value)
{
	struct hdr_edits *e = edits_of(t);

	return e != NULL ? hdr_edit_change(e, name, index, value) : -1;
}

int
filter_message_fd(const struct filter_token *t, size_t *len)
{
	struct chain_run *r = run_of(t);

	*len = 0;
	if (r == NULL || r->stage != FILTER_STAGE_EOM ||
	    r->sink.spool == NULL) {
		errno = EINVAL;
		return -1;
	}
	*len = r->sink.spool->len;
	return spool_reader_fd(r->sink.spool);
}

struct filter_job {
	struct filter_token token;
	void (*work)(void *);
	void (*done)(const struct filter_token *, void *);
	void *arg;
};

static void
filter_job_work(void *arg)
{
	struct filter_job *j = arg;

	j->work(j->arg);
}

static void
filter_job_done(struct loop *l, void *arg)
{
	struct filter_job *j = arg;

	j->done(&j->token, j->arg);
	free(j);
}

int
filter_work(const struct filter_token *t, void (*work)(void *),
    void (*done)(const struct filter_token *, void *), void *arg)
{
	struct filter_job *j = xmalloc(sizeof(*j));

	j->token = *t;
	j->work = work;
	j->done = done;
	j->arg = arg;
	if (worker_submit(t->loop, filter_job_work, filter_job_done, j) == -1) {
		free(j);
		return -1;
	}
	return 0;
}

/* ----------------------------------------- configuration access */

const char *
filter_conf_get(const struct filter_conf *fc, const char *key)
{
	size_t i;

	for (i = 0; fc != NULL && i < fc->nopts; i++)
		if (strcmp(fc->keys[i], key) == 0)
			return fc->values[i];
	return NULL;
}

const char *
filter_conf_name(const struct filter_conf *fc)
{
	return fc->name;
}

void
filter_conf_error(const struct filter_conf *fc, const char *fmt, ...)
{
	char	buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	config_report(fc->file, fc->line, "filter \"%s\": %s", fc->name, buf);
}
