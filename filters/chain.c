/*
 * chain.c - the filter chain runner (milter semantics, STYLE.md §9.3).
 *
 * CONTINUE moves to the next filter; ACCEPT ends the chain for the rest of
 * the message; REJECT, TEMPFAIL and DISCARD end it and become the session's
 * reply; PENDING parks the run until filter_complete() or the filter's
 * timeout (which cancels the call and answers TEMPFAIL, "451 4.3.0").
 *
 * Threading: a chain_run lives on its session's loop thread; completions
 * are looked up by (session id, call number), so a completion for a gone
 * session or an older call is dropped without touching freed memory.
 */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "chain.h"
#include "config.h"
#include "log.h"
#include "loop.h"
#include "util.h"

static const char *const stage_names[FILTER_STAGE_COUNT] = { "connect", "helo",
	"mail", "rcpt", "data", "header", "eoh", "body", "eom" };

struct filter_inst {
	const struct filter_ops	 *ops;
	const struct filter_conf *conf;
	void			 *ctx;
	long			  timeout_ms;
};

struct chain {
	struct filter_inst f[FILTERS_MAX];
	size_t		   n;
	uint32_t	   stages;
};

struct chain *
chain_new(const struct config *cf)
{
	struct chain	   *c = xcalloc(1, sizeof(*c));
	struct filter_inst *fi;
	size_t		    i;

	for (i = 0; i < cf->nfilters; i++) {
		fi = &c->f[c->n];
		fi->ops = &testfilter_ops; /* the only one so far */
		fi->conf = &cf->filters[i];
		fi->timeout_ms = cf->filters[i].timeout_ms > 0
		    ? cf->filters[i].timeout_ms
		    : LIMIT(cf, FILTER_TIMEOUT);
		if (fi->ops->init != NULL &&
		    fi->ops->init(fi->conf, &fi->ctx) == -1) {
			log_err("event=filter-init-failed filter=%s",
			    fi->ops->name);
			chain_free(c);
			return NULL;
		}
		c->stages |= fi->ops->stages;
		c->n++;
	}
	return c;
}

void
chain_free(struct chain *c)
{
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < c->n; i++)
		if (c->f[i].ops->fini != NULL)
			c->f[i].ops->fini(c->f[i].ctx);
	free(c);
}

int
chain_wants(const struct chain *c, enum filter_stage st)
{
	return c != NULL && (c->stages & FILTER_STAGE_BIT(st)) != 0;
}

void
chain_run_init(
    struct chain_run *r, const struct chain *c, struct loop *l, uint64_t sid)
{
	memset(r, 0, sizeof(*r));
	r->chain = c;
	r->loop = l;
	r->sid = sid;
}

static void chain_timeout_cb(evutil_socket_t, short, void *);

/* Run filters from r->next on; returns a final verdict or PENDING. */
static enum filter_verdict
chain_step(struct chain_run *r)
{
	const struct filter_inst *fi;
	struct filter_call	  call;
	enum filter_verdict	  v;
	struct timeval		  tv;

	while (r->next < r->chain->n) {
		fi = &r->chain->f[r->next];
		if ((fi->ops->stages & FILTER_STAGE_BIT(r->stage)) == 0) {
			r->next++;
			continue;
		}
		memset(&call, 0, sizeof(call));
		call.stage = r->stage;
		call.env = r->env;
		call.token.loop = r->loop;
		call.token.sid = r->sid;
		call.token.call = ++r->call;
		memset(&r->reply, 0, sizeof(r->reply));
		v = fi->ops->stage(fi->ctx, &call, &r->reply);
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
		r->next++;
		if (v == FILTER_CONTINUE)
			continue;
		if (v == FILTER_ACCEPT) {
			r->accepted = 1;
			return FILTER_CONTINUE;
		}
		log_info("event=filter-verdict sid=%016llx filter=%s stage=%s "
			 "verdict=%s",
		    (unsigned long long)r->sid, fi->ops->name,
		    stage_names[r->stage],
		    v == FILTER_REJECT	       ? "reject"
			: v == FILTER_TEMPFAIL ? "tempfail"
					       : "discard");
		return v;
	}
	return FILTER_CONTINUE;
}

enum filter_verdict
chain_run_stage(struct chain_run *r, enum filter_stage st,
    const struct filter_env *env, chain_done_fn done, void *arg)
{
	if (r->chain == NULL || r->accepted || !chain_wants(r->chain, st))
		return FILTER_CONTINUE;
	r->stage = st;
	r->env = env;
	r->next = 0;
	r->done = done;
	r->arg = arg;
	return chain_step(r);
}

static void
chain_finish(struct chain_run *r, enum filter_verdict v)
{
	r->pending = 0;
	r->cookie = NULL;
	if (r->timer != NULL)
		evtimer_del(r->timer);
	if (v == FILTER_CONTINUE || v == FILTER_ACCEPT) {
		if (v == FILTER_ACCEPT) {
			r->accepted = 1;
			v = FILTER_CONTINUE;
		} else {
			r->next++;
			v = chain_step(r);
			if (v == FILTER_PENDING)
				return;
		}
	} else
		r->next++;
	r->done(r->arg, v, &r->reply);
}

void
filter_complete(const struct filter_token *t, enum filter_verdict v,
    const struct filter_reply *reply)
{
	struct chain_run *r = session_chain_run(t->loop, t->sid);

	if (r == NULL || !r->pending || r->call != t->call) {
		log_debug("event=filter-late sid=%016llx call=%llu",
		    (unsigned long long)t->sid, (unsigned long long)t->call);
		return;
	}
	if (v == FILTER_PENDING)
		v = FILTER_TEMPFAIL;
	if (reply != NULL)
		r->reply = *reply;
	else
		memset(&r->reply, 0, sizeof(r->reply));
	chain_finish(r, v);
}

static void
chain_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct chain_run	 *r = arg;
	const struct filter_inst *fi = &r->chain->f[r->next];

	log_warn("event=filter-timeout sid=%016llx filter=%s stage=%s",
	    (unsigned long long)r->sid, fi->ops->name, stage_names[r->stage]);
	if (fi->ops->cancel != NULL)
		fi->ops->cancel(fi->ctx, r->cookie);
	r->call++; /* a completion after this is late */
	memset(&r->reply, 0, sizeof(r->reply));
	r->reply.code = 451;
	strcpy(r->reply.enh, "4.3.0");
	snprintf(r->reply.text, sizeof(r->reply.text),
	    "Filter %s timed out, try again later", fi->ops->name);
	chain_finish(r, FILTER_TEMPFAIL);
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
	r->accepted = 0;
}

void
chain_run_free(struct chain_run *r)
{
	chain_run_cancel(r);
	if (r->timer != NULL) {
		event_free(r->timer);
		r->timer = NULL;
	}
}
