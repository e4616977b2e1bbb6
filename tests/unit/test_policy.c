/*
 * test_policy.c - unit tests for the filter chain runner (filters/chain.c)
 * and the policy engine (policies/policy.c, policies/evidence.c).
 *
 * The chain runs as in moatd: a real loop (proxy/loop.c), driven on this
 * thread with EVLOOP_ONCE, the worker pool for filter_work(), and the
 * built-in "test" and lists filters configured from moat.conf text. The
 * checks cover filter order, synchronous and asynchronous stages, the
 * per-filter timeout and on_error, ERROR verdicts, cancellation and late
 * completions, ACCEPT for the message and for the session, group masks,
 * the services filters call (evidence, header changes, A-R clauses,
 * filter_work) inside and outside a call; then group selection,
 * thresholds, rules and replies, the headers moat writes, and the
 * evidence set's bounds and sanitising.
 *
 * Timing: asynchronous stages wait for real timers (tens of ms); checks
 * only assume that a timer does not fire early and that 500 ms is more
 * than 50 ms, never an upper bound on scheduling.
 */
#include <event2/event.h>
#include <event2/thread.h>
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "chain.h"
#include "config.h"
#include "evidence.h"
#include "hdredit.h"
#include "log.h"
#include "loop.h"
#include "policy.h"
#include "runtime.h"
#include "util.h"
#include "workers.h"

static const char *const conf_head = "user = \"\"\n"
				     "spool_directory = \"/tmp\"\n"
				     "hostname = \"mx.test\"\n";

/* ------------------------------------------------------------ harness */

/* One session's worth of chain state, as moatd's session keeps it. */
struct h {
	struct runtime	   *rt;
	struct chain_run    run;
	struct evidence_set ev;
	struct hdr_edits    edits;
	char		   *ar[AR_CLAUSES_MAX];
	size_t		    nar;
	struct filter_env   env;
	struct sockaddr_in  sin;
	int		    ndone; /* done callbacks since the last stage() */
	enum filter_verdict v;	   /* ... and the verdict of the last one */
	struct filter_reply reply;
};

static struct loop *L;
static struct h	   *cur; /* the run filter_complete() & co. find */
static uint64_t	    next_sid = 1000;
static pthread_t    main_thread;

static struct chain_run *
lookup_cb(struct loop *l, uint64_t sid)
{
	return cur != NULL && l == L && sid == cur->run.sid ? &cur->run : NULL;
}

static struct config *
conf_load(const char *body)
{
	char	       path[] = "/tmp/moat-test-policy.XXXXXX";
	struct config *cf;
	int	       fd = mkstemp(path);
	FILE	      *f = fdopen(fd, "w");

	fputs(conf_head, f);
	fputs(body, f);
	fclose(f);
	cf = config_load(path, NULL);
	unlink(path);
	return cf;
}

/* The runtime (policy + chain) of a configuration, or NULL. */
static struct runtime *
rt_build(const char *body)
{
	struct config  *cf = conf_load(body);
	struct runtime *rt;

	if (cf == NULL)
		return NULL;
	if ((rt = runtime_build(cf)) == NULL)
		config_free(cf);
	return rt;
}

static int
h_open(struct h *h, const char *body)
{
	memset(h, 0, sizeof(*h));
	if ((h->rt = rt_build(body)) == NULL)
		return -1;
	chain_run_init(&h->run, h->rt->chain, L, next_sid++);
	evidence_init(&h->ev);
	hdr_edits_init(&h->edits);
	h->sin.sin_family = AF_INET;
	inet_pton(AF_INET, "198.51.100.7", &h->sin.sin_addr);
	h->env.sid = h->run.sid;
	h->env.client_addr = "198.51.100.7";
	h->env.client_sa = (const struct sockaddr *)&h->sin;
	h->env.helo = "client.example";
	h->env.mail_from = "sender@example.net";
	h->env.rcpt = "rcpt@example.com";
	h->env.size = 100;
	cur = h;
	return 0;
}

static void
h_close(struct h *h)
{
	size_t i;

	chain_run_free(&h->run);
	evidence_free(&h->ev);
	hdr_edits_free(&h->edits);
	for (i = 0; i < h->nar; i++)
		free(h->ar[i]);
	runtime_release(h->rt);
	if (cur == h)
		cur = NULL;
}

static void
done_cb(void *arg, enum filter_verdict v, const struct filter_reply *r)
{
	struct h *h = arg;

	h->ndone++;
	h->v = v;
	h->reply = *r;
}

/* Start a stage; returns what chain_run_stage returned. */
static enum filter_verdict
stage(struct h *h, enum filter_stage st)
{
	h->run.sink.ev = &h->ev;
	h->run.sink.edits = st == FILTER_STAGE_EOM ? &h->edits : NULL;
	h->run.sink.ar = h->ar;
	h->run.sink.nar = &h->nar;
	h->ndone = 0;
	return chain_run_stage(&h->run, st, &h->env, done_cb, h);
}

static int timer_fired;

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	timer_fired = 1;
}

/* Run the loop until *flag is set or ms have passed; 1 if the flag is. */
static int
run_until(volatile int *flag, long ms)
{
	struct event  *t = evtimer_new(loop_base(L), timer_cb, NULL);
	struct timeval tv = tv_msec(ms);

	timer_fired = 0;
	evtimer_add(t, &tv);
	while ((flag == NULL || !*flag) && !timer_fired)
		event_base_loop(loop_base(L), EVLOOP_ONCE);
	event_free(t);
	return flag != NULL && *flag;
}

static void
spin(long ms)
{
	run_until(NULL, ms);
}

/* The run's current call, as the filter that got it sees its token. */
static struct filter_token
token_of(struct h *h)
{
	struct filter_token t = { L, h->run.sid, h->run.call };

	return t;
}

/* Index of the first evidence with that symbol, or -1. */
static int
ev_index(const struct evidence_set *es, const char *symbol)
{
	size_t i;

	for (i = 0; i < es->n; i++)
		if (strcmp(es->v[i].symbol, symbol) == 0)
			return (int)i;
	return -1;
}

static int
has_ev(const struct h *h, const char *symbol)
{
	return ev_index(&h->ev, symbol) >= 0;
}

static double
ms_since(uint64_t t0)
{
	return (double)(now_usec() - t0) / 1000.0;
}

/* ------------------------------------------------------ chain: order */

static void
test_order(void)
{
	struct h	       h;
	enum filter_verdict    v;
	const struct evidence *e;

	if (!ok(h_open(&h,
		    "list \"vip\" { type = \"sender\" entries = "
		    "{\"vip@example.net\"} symbol = \"VIP_SENDER\" "
		    "score = -1 }\n"
		    "filter \"a\" { type = \"test\" evidence = "
		    "\"mail:SYM_A:1,rcpt:A_RCPT:0.5\" }\n"
		    "filter \"b\" { type = \"test\" evidence = "
		    "\"mail:SYM_B:2\" }\n") == 0,
		"order: configuration builds"))
		return;
	is_int(chain_size(h.rt->chain), 3, "order: lists + two filters");
	is_str(
	    chain_filter_name(h.rt->chain, 0), "lists", "order: lists first");
	is_str(chain_filter_name(h.rt->chain, 1), "a", "order: a second");
	is_str(chain_filter_name(h.rt->chain, 2), "b", "order: b third");
	is_int(chain_find(h.rt->chain, "b"), 2, "order: chain_find");
	is_int(chain_find(h.rt->chain, "nope"), -1, "order: chain_find miss");

	h.env.mail_from = "vip@example.net";
	v = stage(&h, FILTER_STAGE_MAIL);
	is_int(v, FILTER_CONTINUE, "order: sync MAIL answers at once");
	is_int(h.ndone, 0, "order: sync stage does not call done");
	is_int(h.ev.n, 3, "order: three pieces of evidence");
	if (h.ev.n == 3) {
		is_str(h.ev.v[0].symbol, "VIP_SENDER", "order: list first");
		is_str(h.ev.v[0].filter, "lists", "order: by the lists filter");
		is_str(h.ev.v[1].symbol, "SYM_A", "order: a's second");
		is_str(h.ev.v[1].filter, "a", "order: by a");
		is_str(h.ev.v[2].symbol, "SYM_B", "order: b's third");
		is_str(h.ev.v[2].filter, "b", "order: by b");
		is_int(h.ev.v[1].stage, FILTER_STAGE_MAIL, "order: stage kept");
		is_str(h.ev.v[1].detail, "test filter at mail",
		    "order: printf-style detail");
		ok(h.ev.v[0].detail != NULL &&
			strstr(h.ev.v[0].detail, "vip@example.net") != NULL,
		    "order: list evidence names the entry");
	}
	ok(h.ev.total > 1.999 && h.ev.total < 2.001, "order: total is the sum");

	/* Another sender: no list evidence, the filters still in order. */
	evidence_free(&h.ev);
	h.env.mail_from = "other@example.net";
	stage(&h, FILTER_STAGE_MAIL);
	is_int(h.ev.n, 2, "order: no list hit, two entries");
	ok(h.ev.n == 2 && strcmp(h.ev.v[0].symbol, "SYM_A") == 0,
	    "order: a before b without a list hit");
	stage(&h, FILTER_STAGE_RCPT);
	ok((e = evidence_find(&h.ev, "A_RCPT")) != NULL &&
		e->stage == FILTER_STAGE_RCPT && e->score == 0.5,
	    "order: RCPT evidence with its stage and score");
	h_close(&h);

	/* A chain of the lists filter only wants the envelope stages. */
	if (!ok(h_open(&h,
		    "list \"c\" { type = \"client\" entries = "
		    "{\"192.0.2.0/24\"} }\n") == 0,
		"order: lists-only configuration builds"))
		return;
	ok(chain_wants(h.rt->chain, FILTER_STAGE_CONNECT) &&
		chain_wants(h.rt->chain, FILTER_STAGE_RCPT),
	    "order: lists want CONNECT and RCPT");
	ok(!chain_wants(h.rt->chain, FILTER_STAGE_DATA) &&
		!chain_wants(h.rt->chain, FILTER_STAGE_EOM),
	    "order: lists do not want DATA or EOM");
	is_int(stage(&h, FILTER_STAGE_EOM), FILTER_CONTINUE,
	    "order: unwanted stage is CONTINUE");
	inet_pton(AF_INET, "192.0.2.9", &h.sin.sin_addr);
	stage(&h, FILTER_STAGE_CONNECT);
	ok(has_ev(&h, "LIST_C"), "order: default list symbol LIST_<NAME>");
	h_close(&h);

	/* Without filters and lists: an empty chain wants nothing. */
	if (ok(h_open(&h, "") == 0, "order: empty configuration builds")) {
		is_int(chain_size(h.rt->chain), 0, "order: empty chain");
		ok(!chain_wants(h.rt->chain, FILTER_STAGE_CONNECT),
		    "order: empty chain wants nothing");
		is_int(stage(&h, FILTER_STAGE_MAIL), FILTER_CONTINUE,
		    "order: empty chain continues");
		h_close(&h);
	}

	/* Configuration errors are found when the chain is built. */
	ok(rt_build("filter \"x\" { type = \"no-such\" }\n") == NULL,
	    "order: unknown filter type refused");
	ok(rt_build("filter \"x\" { type = \"test\" colour = \"red\" }\n") ==
		NULL,
	    "order: unknown filter option refused");
	ok(rt_build("filter \"x\" { type = \"test\" delay_stage = \"later\" "
		    "}\n") == NULL,
	    "order: filter init failure refused");
	ok(rt_build("filter \"x\" { load = \"/nonexistent/x.so\" }\n") == NULL,
	    "order: missing shared object refused");
}

/* ----------------------------------------------- chain: verdicts, async */

static void
test_verdicts(void)
{
	struct h h;

	if (!ok(h_open(&h,
		    "filter \"a\" { type = \"test\" reject_rcpt = "
		    "\"bad@example.com\" tempfail_stage = \"helo\" "
		    "reject_stage = \"eoh\" evidence = \"eoh:A_EOH:1\" "
		    "}\n"
		    "filter \"b\" { type = \"test\" evidence = "
		    "\"rcpt:B_RCPT:1,helo:B_HELO:1,eoh:B_EOH:1\" }\n") == 0,
		"verdicts: configuration builds"))
		return;
	h.env.rcpt = "BAD@example.com";
	is_int(stage(&h, FILTER_STAGE_RCPT), FILTER_REJECT,
	    "verdicts: reject_rcpt rejects (case-insensitive)");
	is_int(h.run.reply.code, 550, "verdicts: reject reply code");
	is_str(h.run.reply.text, "Recipient refused by test filter",
	    "verdicts: filter's reply text");
	is_str(h.run.decided_by, "a", "verdicts: decided_by names a");
	ok(!has_ev(&h, "B_RCPT"), "verdicts: b not called after a reject");
	h.env.rcpt = "good@example.com";
	is_int(stage(&h, FILTER_STAGE_RCPT), FILTER_CONTINUE,
	    "verdicts: other recipient continues");
	ok(h.run.decided_by == NULL, "verdicts: decided_by cleared");
	ok(has_ev(&h, "B_RCPT"), "verdicts: b called for it");

	is_int(stage(&h, FILTER_STAGE_HELO), FILTER_TEMPFAIL,
	    "verdicts: tempfail_stage");
	ok(h.run.reply.code == 451 && strcmp(h.run.reply.enh, "4.7.1") == 0,
	    "verdicts: tempfail reply 451 4.7.1");
	ok(!has_ev(&h, "B_HELO"), "verdicts: b not called after tempfail");

	is_int(stage(&h, FILTER_STAGE_EOH), FILTER_REJECT,
	    "verdicts: reject_stage");
	ok(has_ev(&h, "A_EOH") && !has_ev(&h, "B_EOH"),
	    "verdicts: evidence before the reject kept, b skipped");
	ok(strstr(h.run.reply.text, "eoh") != NULL,
	    "verdicts: reply names the stage");
	h_close(&h);
}

static void
test_async(void)
{
	struct h h;
	uint64_t t0;

	if (!ok(h_open(&h,
		    "filter \"d\" { type = \"test\" delay_stage = "
		    "\"rcpt\" delay_ms = 30 evidence = "
		    "\"rcpt:D_RCPT:1\" }\n"
		    "filter \"e\" { type = \"test\" evidence = "
		    "\"rcpt:E_RCPT:1,mail:E_MAIL:1\" }\n") == 0,
		"async: configuration builds"))
		return;
	is_int(stage(&h, FILTER_STAGE_MAIL), FILTER_CONTINUE,
	    "async: MAIL is synchronous");
	ok(has_ev(&h, "E_MAIL") && h.ndone == 0,
	    "async: sync stage ran e, no done");

	t0 = now_usec();
	is_int(stage(&h, FILTER_STAGE_RCPT), FILTER_PENDING,
	    "async: delayed RCPT is PENDING");
	ok(h.run.pending, "async: run marked pending");
	ok(has_ev(&h, "D_RCPT") && !has_ev(&h, "E_RCPT"),
	    "async: e waits for d");
	is_int(h.ndone, 0, "async: done not called yet");
	ok(run_until(&h.ndone, 2000), "async: done called");
	is_int(h.v, FILTER_CONTINUE, "async: done with CONTINUE");
	ok(ms_since(t0) >= 25, "async: not before the delay");
	ok(has_ev(&h, "E_RCPT"), "async: e ran after d completed");
	ok(!h.run.pending, "async: no longer pending");
	ok(h.run.usec[0] >= 25000, "async: d's time counted for the tx");
	spin(60);
	is_int(h.ndone, 1, "async: done called exactly once");
	h_close(&h);
}

/* ---------------------------------------------- chain: failure policy */

static void
test_timeout(void)
{
	static const char *const oe[] = { "tempfail", "continue", "reject" };
	char			 conf[512];
	struct h		 h;
	struct filter_token	 tok;
	const struct evidence	*e;
	uint64_t		 t0;
	int			 i;

	for (i = 0; i < 3; i++) {
		snprintf(conf, sizeof(conf),
		    "filter \"slow\" { type = \"test\" timeout = 50ms "
		    "on_error = %s delay_stage = \"mail\" delay_ms = 500 }\n"
		    "filter \"next\" { type = \"test\" evidence = "
		    "\"mail:NEXT_MAIL:1\" }\n",
		    oe[i]);
		if (!ok(h_open(&h, conf) == 0, "timeout/%s: builds", oe[i]))
			continue;
		t0 = now_usec();
		is_int(stage(&h, FILTER_STAGE_MAIL), FILTER_PENDING,
		    "timeout/%s: pending", oe[i]);
		tok = token_of(&h);
		ok(run_until(&h.ndone, 3000), "timeout/%s: done called", oe[i]);
		ok(ms_since(t0) >= 45 && ms_since(t0) < 450,
		    "timeout/%s: after the timeout, before the delay", oe[i]);
		switch (i) {
		case 0:
			is_int(
			    h.v, FILTER_TEMPFAIL, "timeout/tempfail: TEMPFAIL");
			ok(h.reply.code == 451 &&
				strcmp(h.reply.enh, "4.3.0") == 0,
			    "timeout/tempfail: 451 4.3.0");
			ok(strstr(h.reply.text, "timed out") != NULL &&
				strstr(h.reply.text, "slow") != NULL,
			    "timeout/tempfail: text names filter, timed out");
			is_str(h.run.decided_by, "slow",
			    "timeout/tempfail: decided_by");
			ok(!has_ev(&h, "NEXT_MAIL"),
			    "timeout/tempfail: next filter not run");
			break;
		case 1:
			is_int(
			    h.v, FILTER_CONTINUE, "timeout/continue: CONTINUE");
			e = evidence_find(&h.ev, "FILTER_ERROR");
			ok(e != NULL && strcmp(e->filter, "slow") == 0 &&
				e->score == 0,
			    "timeout/continue: FILTER_ERROR by slow, score 0");
			ok(e != NULL && e->detail != NULL &&
				strcmp(e->detail, "timeout") == 0,
			    "timeout/continue: detail \"timeout\"");
			ok(has_ev(&h, "NEXT_MAIL"),
			    "timeout/continue: next filter ran");
			break;
		default:
			is_int(h.v, FILTER_REJECT, "timeout/reject: REJECT");
			ok(h.reply.code == 550 &&
				strcmp(h.reply.enh, "5.7.1") == 0,
			    "timeout/reject: 550 5.7.1");
			break;
		}
		/* A completion after the timeout is dropped. */
		filter_complete(&tok, FILTER_REJECT, NULL);
		is_int(filter_evidence(&tok, "LATE", 1, NULL), -1,
		    "timeout/%s: late evidence refused", oe[i]);
		spin(100);
		is_int(h.ndone, 1, "timeout/%s: done once, late ones dropped",
		    oe[i]);
		ok(!has_ev(&h, "LATE"), "timeout/%s: no late evidence", oe[i]);
		h_close(&h);
	}
}

static void
test_error(void)
{
	static const char *const oe[] = { "tempfail", "continue", "reject" };
	static const enum filter_verdict want[] = { FILTER_TEMPFAIL,
		FILTER_CONTINUE, FILTER_REJECT };
	static const int		 code[] = { 451, 0, 550 };
	char				 conf[512];
	struct h			 h;
	int				 i;

	for (i = 0; i < 3; i++) {
		snprintf(conf, sizeof(conf),
		    "filter \"bad\" { type = \"test\" on_error = %s "
		    "error_stage = \"helo\" }\n"
		    "filter \"next\" { type = \"test\" evidence = "
		    "\"helo:NEXT_HELO:1\" }\n",
		    oe[i]);
		if (!ok(h_open(&h, conf) == 0, "error/%s: builds", oe[i]))
			continue;
		is_int(stage(&h, FILTER_STAGE_HELO), want[i],
		    "error/%s: verdict", oe[i]);
		is_int(
		    h.run.reply.code, code[i], "error/%s: reply code", oe[i]);
		is_int(h.ndone, 0, "error/%s: synchronous", oe[i]);
		if (i == 1) {
			const struct evidence *e =
			    evidence_find(&h.ev, "FILTER_ERROR");

			ok(e != NULL && e->detail != NULL &&
				strcmp(e->detail, "error") == 0 &&
				strcmp(e->filter, "bad") == 0,
			    "error/continue: FILTER_ERROR \"error\" by bad");
			ok(has_ev(&h, "NEXT_HELO"), "error/continue: next ran");
		} else {
			ok(strstr(h.run.reply.text, "bad") != NULL,
			    "error/%s: reply names the filter", oe[i]);
			ok(!has_ev(&h, "NEXT_HELO"), "error/%s: next not run",
			    oe[i]);
		}
		h_close(&h);
	}
}

/* --------------------------------------- chain: cancel, late completion */

struct wresult {
	int		    nwork, ndone;
	int		    work_on_worker, done_on_main;
	int		    evidence_rc, header_rc;
	int		    cancelled;
	enum filter_verdict verdict;
};

static struct wresult  wr;
static pthread_mutex_t wmtx = PTHREAD_MUTEX_INITIALIZER;

struct wjob {
	unsigned sum;
	int	 complete; /* call filter_complete from done */
};

static void
wjob_work(void *arg)
{
	struct wjob *j = arg;
	unsigned     i;

	for (i = 0; i < 1000; i++)
		j->sum += i;
	pthread_mutex_lock(&wmtx);
	wr.nwork++;
	wr.work_on_worker = !pthread_equal(pthread_self(), main_thread);
	pthread_mutex_unlock(&wmtx);
}

static void
wjob_done(const struct filter_token *t, void *arg)
{
	struct wjob *j = arg;

	wr.ndone++;
	wr.done_on_main = pthread_equal(pthread_self(), main_thread);
	wr.evidence_rc = filter_evidence(t, "WORK_SUM", 0.25, "sum %u", j->sum);
	wr.header_rc = filter_header_add(t, "X-Work", "done");
	if (j->complete)
		filter_complete(t, wr.verdict, NULL);
	free(j);
}

static void
test_cancel(void)
{
	struct h	    h;
	struct filter_token tok;
	struct filter_reply fr;

	if (!ok(h_open(&h,
		    "filter \"d\" { type = \"test\" timeout = 150ms "
		    "delay_stage = \"data\" delay_ms = 60 evidence = "
		    "\"data:D_DATA:1\" }\n") == 0,
		"cancel: configuration builds"))
		return;
	is_int(stage(&h, FILTER_STAGE_DATA), FILTER_PENDING,
	    "cancel: DATA pending");
	tok = token_of(&h);
	is_int(filter_evidence(&tok, "WHILE_PENDING", 1, "x"), 0,
	    "cancel: evidence accepted while pending");
	chain_run_cancel(&h.run);
	ok(!h.run.pending, "cancel: no longer pending");
	spin(250); /* past the delay and the chain's timeout */
	is_int(h.ndone, 0, "cancel: done never called");
	filter_complete(&tok, FILTER_REJECT, NULL);
	is_int(h.ndone, 0, "cancel: late filter_complete dropped");
	is_int(filter_evidence(&tok, "LATE", 1, NULL), -1,
	    "cancel: late evidence refused");
	chain_run_cancel(&h.run); /* harmless when nothing is pending */
	ok(!h.run.pending, "cancel: second cancel is a no-op");

	/* The same stage runs normally afterwards. */
	is_int(stage(&h, FILTER_STAGE_DATA), FILTER_PENDING,
	    "cancel: DATA pending again");
	ok(run_until(&h.ndone, 2000) && h.v == FILTER_CONTINUE,
	    "cancel: later run completes");

	/*
	 * Someone else completes the pending call first (as a filter
	 * would from its own callback): the filter's timer, firing later
	 * with the same token, is dropped.
	 */
	is_int(stage(&h, FILTER_STAGE_DATA), FILTER_PENDING,
	    "cancel: DATA pending a third time");
	tok = token_of(&h);
	memset(&fr, 0, sizeof(fr));
	fr.code = 554;
	strcpy(fr.enh, "5.7.0");
	strcpy(fr.text, "Custom refusal");
	filter_complete(&tok, FILTER_REJECT, &fr);
	is_int(h.ndone, 1, "cancel: completion calls done at once");
	is_int(h.v, FILTER_REJECT, "cancel: with the completed verdict");
	ok(h.reply.code == 554 && strcmp(h.reply.text, "Custom refusal") == 0,
	    "cancel: and the completion's reply");
	is_str(h.run.decided_by, "d", "cancel: decided_by the pending filter");
	spin(120);
	is_int(h.ndone, 1, "cancel: the filter's own late completion dropped");
	h_close(&h);
}

/* filter_work() from a pending call; starts the worker pool. */
static void
test_work(void)
{
	struct h	    h;
	struct filter_token tok;
	struct wjob	   *j;

	if (!ok(h_open(&h,
		    "filter \"w\" { type = \"test\" timeout = 5s "
		    "delay_stage = \"data\" delay_ms = 400 }\n") == 0,
		"work: configuration builds"))
		return;
	/* Before the pool runs: -1, and arg still ours. */
	is_int(
	    stage(&h, FILTER_STAGE_DATA), FILTER_PENDING, "work: DATA pending");
	tok = token_of(&h);
	j = xcalloc(1, sizeof(*j));
	is_int(filter_work(&tok, wjob_work, wjob_done, j), -1,
	    "work: refused without a pool");
	free(j);
	chain_run_cancel(&h.run);
	if (!ok(workers_start(2, 100) == 0, "work: pool started")) {
		h_close(&h);
		return;
	}

	/* A job completes the pending call from its done callback. */
	is_int(stage(&h, FILTER_STAGE_DATA), FILTER_PENDING,
	    "work: DATA pending again");
	tok = token_of(&h);
	memset(&wr, 0, sizeof(wr));
	wr.verdict = FILTER_TEMPFAIL;
	j = xcalloc(1, sizeof(*j));
	j->complete = 1;
	is_int(
	    filter_work(&tok, wjob_work, wjob_done, j), 0, "work: submitted");
	ok(run_until(&h.ndone, 2000), "work: done called");
	is_int(wr.nwork, 1, "work: work ran once");
	ok(wr.work_on_worker, "work: work on a worker thread");
	ok(wr.done_on_main, "work: done on the loop thread");
	is_int(wr.evidence_rc, 0, "work: evidence from done accepted");
	is_int(wr.header_rc, -1, "work: header change outside EOM refused");
	ok(evidence_find(&h.ev, "WORK_SUM") != NULL &&
		strcmp(evidence_find(&h.ev, "WORK_SUM")->detail,
		    "sum 499500") == 0,
	    "work: evidence detail from the job");
	ok(evidence_find(&h.ev, "WORK_SUM") != NULL &&
		strcmp(evidence_find(&h.ev, "WORK_SUM")->filter, "w") == 0,
	    "work: evidence credited to the filter");
	is_int(h.v, FILTER_TEMPFAIL, "work: completion verdict");
	is_int(h.reply.code, 0, "work: NULL reply gives code 0");
	spin(450); /* the test filter's own timer fires: dropped */
	is_int(h.ndone, 1, "work: the timer's completion dropped");

	/* A job whose call was cancelled: done still runs, frees arg. */
	is_int(stage(&h, FILTER_STAGE_DATA), FILTER_PENDING,
	    "work: pending for the cancel case");
	tok = token_of(&h);
	memset(&wr, 0, sizeof(wr));
	wr.verdict = FILTER_REJECT;
	j = xcalloc(1, sizeof(*j));
	j->complete = 1;
	is_int(filter_work(&tok, wjob_work, wjob_done, j), 0,
	    "work: submitted again");
	chain_run_cancel(&h.run);
	ok(run_until(&wr.ndone, 2000), "work: done runs after cancel");
	is_int(wr.evidence_rc, -1, "work: evidence after cancel refused");
	is_int(h.ndone, 0, "work: completion after cancel dropped");
	h_close(&h);
}

/* ------------------------------------------------- chain: accept, mask */

static void
test_accept(void)
{
	static const char *conf =
	    "list \"vip\" { type = \"client\" entries = {\"192.0.2.0/24\"} "
	    "action = \"accept\" }\n"
	    "list \"friend\" { type = \"sender\" entries = "
	    "{\"friend@example.org\"} action = \"accept\" }\n"
	    "filter \"t\" { type = \"test\" evidence = "
	    "\"connect:T_CONNECT:1,mail:T_MAIL:1,rcpt:T_RCPT:1,eom:T_EOM:1\" "
	    "}\n";
	struct h h;

	/* At CONNECT: the whole session. */
	if (!ok(h_open(&h, conf) == 0, "accept: configuration builds"))
		return;
	inet_pton(AF_INET, "192.0.2.5", &h.sin.sin_addr);
	is_int(stage(&h, FILTER_STAGE_CONNECT), FILTER_CONTINUE,
	    "accept: ACCEPT reported as CONTINUE");
	ok(has_ev(&h, "LIST_VIP") && !has_ev(&h, "T_CONNECT"),
	    "accept: list matched, later filter skipped");
	ok(h.run.session_accepted, "accept: at CONNECT for the session");
	is_str(h.run.decided_by, "lists", "accept: decided_by lists");
	stage(&h, FILTER_STAGE_MAIL);
	ok(!has_ev(&h, "T_MAIL"), "accept: MAIL skipped");
	chain_run_reset(&h.run);
	ok(h.run.accepted != 0, "accept: reset keeps a session ACCEPT");
	stage(&h, FILTER_STAGE_MAIL);
	stage(&h, FILTER_STAGE_EOM);
	ok(!has_ev(&h, "T_MAIL") && !has_ev(&h, "T_EOM"),
	    "accept: next transaction skipped too");
	h_close(&h);

	/* At MAIL: this message only. */
	if (!ok(h_open(&h, conf) == 0, "accept: builds again"))
		return;
	stage(&h, FILTER_STAGE_CONNECT);
	ok(has_ev(&h, "T_CONNECT"), "accept: other client filtered");
	h.env.mail_from = "Friend@Example.org";
	stage(&h, FILTER_STAGE_MAIL);
	ok(has_ev(&h, "LIST_FRIEND") && !has_ev(&h, "T_MAIL"),
	    "accept: sender list accepts at MAIL");
	ok(!h.run.session_accepted, "accept: not for the session");
	stage(&h, FILTER_STAGE_RCPT);
	stage(&h, FILTER_STAGE_EOM);
	ok(!has_ev(&h, "T_RCPT") && !has_ev(&h, "T_EOM"),
	    "accept: rest of the message skipped");
	chain_run_reset(&h.run);
	is_int(h.run.accepted, 0, "accept: reset forgets a MAIL ACCEPT");
	evidence_free(&h.ev);
	h.env.mail_from = "stranger@example.org";
	stage(&h, FILTER_STAGE_MAIL);
	stage(&h, FILTER_STAGE_RCPT);
	ok(has_ev(&h, "T_MAIL") && has_ev(&h, "T_RCPT"),
	    "accept: next message filtered again");
	h_close(&h);
}

static void
test_mask(void)
{
	struct h		   h;
	const struct policy_group *g;
	int			   a, b;

	if (!ok(h_open(&h,
		    "list \"l\" { type = \"client\" entries = "
		    "{\"203.0.113.1\"} }\n"
		    "filter \"a\" { type = \"test\" evidence = "
		    "\"mail:A_MAIL:1,rcpt:A_RCPT:1,eom:A_EOM:1\" }\n"
		    "filter \"b\" { type = \"test\" evidence = "
		    "\"mail:B_MAIL:1,rcpt:B_RCPT:1,eom:B_EOM:1\" }\n"
		    "group \"onlyb\" { recipients = {\"b@example.com\"} "
		    "filters = {\"b\"} }\n"
		    "group \"lb\" { recipients = {\"lb@example.com\"} "
		    "filters = {\"lists\", \"b\"} }\n"
		    "group \"none\" { recipients = {\"n@example.com\"} "
		    "filters = {} }\n") == 0,
		"mask: configuration builds"))
		return;
	a = chain_find(h.rt->chain, "a");
	b = chain_find(h.rt->chain, "b");
	g = policy_group_for(h.rt->policy, "b@example.com", 0);
	is_str(policy_group_name(g), "onlyb", "mask: group found");
	is_int(policy_group_mask(g), 1u << b, "mask: only b");
	g = policy_group_for(h.rt->policy, "lb@example.com", 0);
	is_int(
	    policy_group_mask(g), (1u << 0) | (1u << b), "mask: lists and b");
	g = policy_group_for(h.rt->policy, "n@example.com", 0);
	is_int(policy_group_mask(g), 0, "mask: filters = {} runs none");
	g = policy_group_for(h.rt->policy, "x@example.com", 0);
	is_int(policy_group_mask(g), ~0u, "mask: default runs all");

	h.run.mask = 1u << b; /* a is not for this group */
	stage(&h, FILTER_STAGE_MAIL);
	ok(has_ev(&h, "A_MAIL") && has_ev(&h, "B_MAIL"),
	    "mask: MAIL runs every filter");
	stage(&h, FILTER_STAGE_RCPT);
	ok(!has_ev(&h, "A_RCPT") && has_ev(&h, "B_RCPT"), "mask: RCPT skips a");
	stage(&h, FILTER_STAGE_EOM);
	ok(!has_ev(&h, "A_EOM") && has_ev(&h, "B_EOM"), "mask: EOM skips a");
	chain_run_reset(&h.run);
	is_int(h.run.mask, ~0u, "mask: reset restores the full mask");
	evidence_free(&h.ev);
	stage(&h, FILTER_STAGE_RCPT);
	ok(has_ev(&h, "A_RCPT"), "mask: a runs again after reset");
	(void)a;
	h_close(&h);
}

/* ------------------------------------------- chain: services for filters */

static void
test_services(void)
{
	struct h	    h;
	struct filter_token tok, bad;

	if (!ok(h_open(&h,
		    "filter \"d\" { type = \"test\" delay_stage = "
		    "\"eom\" delay_ms = 40 }\n"
		    "filter \"h\" { type = \"test\" add_header = "
		    "\"X-Test: hello\" delay_stage = \"rcpt\" "
		    "delay_ms = 40 }\n") == 0,
		"services: configuration builds"))
		return;
	/* Outside any call. */
	stage(&h, FILTER_STAGE_MAIL);
	tok = token_of(&h);
	is_int(filter_evidence(&tok, "OUTSIDE", 1, NULL), -1,
	    "services: evidence outside a call refused");
	is_int(filter_auth_result(&tok, "spf=pass"), -1,
	    "services: A-R clause outside a call refused");
	bad = tok;
	bad.loop = NULL;
	is_int(filter_evidence(&bad, "X", 1, NULL), -1,
	    "services: token without loop refused");
	bad = tok;
	bad.sid = 1;
	is_int(filter_header_add(&bad, "X-A", "b"), -1,
	    "services: unknown session refused");

	/* Pending at RCPT: evidence yes, header changes no. */
	is_int(stage(&h, FILTER_STAGE_RCPT), FILTER_PENDING,
	    "services: RCPT pending in h");
	tok = token_of(&h);
	h.run.sink.edits = &h.edits; /* the chain itself must refuse */
	is_int(filter_evidence(&tok, "PENDING_RCPT", 2, "%s-%d", "x", 7), 0,
	    "services: evidence while pending");
	is_str(evidence_find(&h.ev, "PENDING_RCPT")->filter, "h",
	    "services: credited to the pending filter");
	is_int(filter_header_add(&tok, "X-A", "b"), -1,
	    "services: header add outside EOM refused");
	is_int(filter_header_append(&tok, "X-A", "b"), -1,
	    "services: header append outside EOM refused");
	is_int(filter_header_change(&tok, "Subject", 1, "x"), -1,
	    "services: header change outside EOM refused");
	is_int(filter_auth_result(&tok, "spf=pass smtp.mailfrom=a.example"), 0,
	    "services: A-R clause at RCPT accepted");
	is_int(h.nar, 1, "services: clause stored");
	is_int(h.edits.n, 0, "services: no edit recorded before EOM");
	is_str(evidence_find(&h.ev, "PENDING_RCPT")->detail, "x-7",
	    "services: detail formatted");
	run_until(&h.ndone, 2000);

	/* Pending at EOM: header changes land in the sink. */
	is_int(stage(&h, FILTER_STAGE_EOM), FILTER_PENDING,
	    "services: EOM pending in d");
	tok = token_of(&h);
	is_int(filter_header_add(&tok, "X-Added", "one"), 0,
	    "services: header add at EOM");
	is_int(filter_header_append(&tok, "X-Appended", "two"), 0,
	    "services: header append at EOM");
	is_int(filter_header_change(&tok, "Subject", 1, NULL), 0,
	    "services: header delete at EOM");
	is_int(filter_header_add(&tok, "Bad Name", "x"), -1,
	    "services: invalid header name refused");
	ok(run_until(&h.ndone, 2000), "services: EOM completes");
	is_int(h.edits.n, 4, "services: four edits (three + filter h's)");
	if (h.edits.n == 4) {
		ok(h.edits.v[0].op == HDR_ADD_TOP &&
			strcmp(h.edits.v[0].name, "X-Added") == 0,
		    "services: add recorded");
		ok(h.edits.v[1].op == HDR_APPEND, "services: append recorded");
		ok(h.edits.v[2].op == HDR_CHANGE && h.edits.v[2].value == NULL,
		    "services: delete recorded");
		ok(strcmp(h.edits.v[3].name, "X-Test") == 0 &&
			strstr(h.edits.v[3].value, "hello") != NULL,
		    "services: test filter's add_header at EOM");
	}
	is_int(filter_header_add(&tok, "X-Late", "x"), -1,
	    "services: header add after the call refused");
	h_close(&h);
}

/* ----------------------------------------------------------- policy */

static const char *const policy_conf =
    "rule \"VIRUS\" { action = \"reject\" reply = \"554 5.7.0 Virus found\" "
    "}\n"
    "rule \"BLOCK\" { action = \"reject\" }\n"
    "rule \"DEFER\" { action = \"tempfail\" }\n"
    "rule \"ODD\" { action = \"tempfail\" reply = \"550 5.7.1 Wrong class\" "
    "}\n"
    "rule \"DROP\" { action = \"discard\" }\n"
    "rule \"SPAMMY\" { action = \"add_header\" }\n"
    "rule \"QUAR\" { action = \"quarantine\" }\n"
    "rule \"GOOD\" { action = \"accept\" }\n"
    "rule \"NAMED\" { action = \"reject\" "
    "reply = \"554 5.7.1 Found: %{detail} (%{detail}) %{other}\" }\n"
    "group \"default\" { add_header_score = 5 reject_score = 20 "
    "subject_tag = \"[SPAM]\" }\n"
    "group \"boss\" { recipients = {\"ceo@example.com\"} authenticated = "
    "true }\n"
    "group \"outbound\" { authenticated = true reject_score = 10 "
    "rule \"VIRUS\" { action = \"discard\" } }\n"
    "group \"sales\" { recipients = {\"sales@example.com\", "
    "\"example.net\", \".example.org\"} quarantine_score = 8 }\n"
    "group \"strict\" { recipients = {\"strict@example.com\"} "
    "early_reject = true reject_score = 7 }\n"
    "group \"polite\" { recipients = {\"polite@example.com\"} "
    "reject_reply = \"550 5.7.9 Go away\" "
    "tempfail_reply = \"450 4.7.9 Later\" }\n";

static struct runtime *prt;

static const struct policy_group *
grp(const char *rcpt, int auth)
{
	return policy_group_for(prt->policy, rcpt, auth);
}

static const char *
gname(const char *rcpt, int auth)
{
	return policy_group_name(grp(rcpt, auth));
}

/* es := the given symbol/score pairs, ended by NULL. */
static void
ev_fill(struct evidence_set *es, ...)
{
	va_list	    ap;
	const char *s;

	evidence_free(es);
	va_start(ap, es);
	while ((s = va_arg(ap, const char *)) != NULL)
		evidence_add(
		    es, "t", s, va_arg(ap, double), NULL, FILTER_STAGE_EOM);
	va_end(ap);
}

static void
test_groups(void)
{
	is_str(gname("sales@example.com", 0), "sales", "group: exact address");
	is_str(gname("SALES@Example.COM", 0), "sales",
	    "group: address case-insensitive");
	is_str(gname("anyone@example.net", 0), "sales", "group: domain");
	is_str(gname("x@deep.sub.example.org", 0), "sales", "group: subdomain");
	is_str(gname("x@example.org", 0), "default",
	    "group: .domain does not match the domain itself");
	is_str(gname("other@example.com", 0), "default",
	    "group: default fallback");
	is_str(gname(NULL, 0), "default", "group: no recipient: default");
	is_str(gname("strict@example.com", 0), "strict", "group: strict");
	is_str(gname("ceo@example.com", 0), "default",
	    "group: authenticated group not for unauthenticated sessions");
	is_str(gname("ceo@example.com", 1), "boss",
	    "group: authenticated group with recipients");
	is_str(gname("sales@example.com", 1), "outbound",
	    "group: authenticated groups first");
	is_str(gname("anyone@anywhere.example", 1), "outbound",
	    "group: authenticated without recipients matches all");
	is_str(
	    gname(NULL, 1), "outbound", "group: authenticated, no recipient");

	/* Thresholds: own, else "default"'s, else built-in. */
	ok(policy_group_required(grp("sales@example.com", 0)) == 5,
	    "group: sales inherits add_header 5 from default");
	ok(policy_group_required(grp("strict@example.com", 0)) == 5,
	    "group: strict required = lowest threshold");
	is_str(policy_group_subject_tag(grp("x@example.com", 0)), "[SPAM]",
	    "group: default subject tag");
	ok(policy_group_subject_tag(grp("sales@example.com", 0)) == NULL,
	    "group: subject tag not inherited");

	/* Configuration errors. */
	ok(rt_build("group \"g\" { }\n") == NULL,
	    "group: non-default group without recipients refused");
	ok(rt_build("group \"g\" { recipients = {\"a b@c\"} }\n") == NULL,
	    "group: bad recipient entry refused");
}

static void
test_final(void)
{
	struct evidence_set    es;
	struct policy_decision d;
	struct runtime	      *brt;

	evidence_init(&es);
#define FINAL(rcpt, auth) policy_final(prt->policy, grp(rcpt, auth), &es, &d)

	ev_fill(&es, "HAM", 1.0, NULL);
	FINAL("x@example.com", 0);
	is_int(d.action, ACT_NONE, "final: low score: none");
	is_int(d.code, 250, "final: none replies 250");
	ok(d.score == 1.0, "final: score reported");
	is_int(es.v[0].rule, -1, "final: no rule for HAM");

	ev_fill(&es, "X", 6.5, NULL);
	FINAL("x@example.com", 0);
	is_int(d.action, ACT_ADD_HEADER, "final: default add_header 5");
	is_str(d.reason, "score 6.50 >= 5.00", "final: score reason");
	FINAL("sales@example.com", 0);
	is_int(d.action, ACT_ADD_HEADER, "final: sales inherits add_header");
	ev_fill(&es, "X", 9.0, NULL);
	FINAL("sales@example.com", 0);
	is_int(d.action, ACT_QUARANTINE, "final: sales quarantine 8");
	FINAL("x@example.com", 0);
	is_int(d.action, ACT_ADD_HEADER, "final: default has no quarantine");
	ev_fill(&es, "X", 21.0, NULL);
	FINAL("sales@example.com", 0);
	is_int(d.action, ACT_REJECT, "final: sales inherits reject 20");
	ok(d.code == 550 && strcmp(d.enh, "5.7.1") == 0 &&
		strcmp(d.text, "Message rejected as spam") == 0,
	    "final: spam reject reply");
	ev_fill(&es, "X", 11.0, NULL);
	FINAL("a@b.example", 1);
	is_int(d.action, ACT_REJECT, "final: outbound reject 10");
	FINAL("polite@example.com", 0);
	is_int(d.action, ACT_ADD_HEADER, "final: polite below 20");

	/* Rules: the most severe wins, rules and scores together. */
	ev_fill(&es, "SPAMMY", 0.0, "QUAR", 0.0, NULL);
	FINAL("x@example.com", 0);
	is_int(d.action, ACT_QUARANTINE, "final: quarantine over add_header");
	is_str(d.reason, "rule QUAR", "final: rule reason");
	ok(es.v[0].rule >= 0 && es.v[1].rule >= 0,
	    "final: matched evidence records its rule");
	ev_fill(&es, "SPAMMY", 25.0, NULL);
	FINAL("x@example.com", 0);
	is_int(d.action, ACT_REJECT, "final: score reject over rule");
	ok(strncmp(d.reason, "score", 5) == 0, "final: reason is the score");
	ev_fill(&es, "QUAR", 0.0, "DEFER", 0.0, "SPAMMY", 0.0, NULL);
	FINAL("x@example.com", 0);
	is_int(d.action, ACT_TEMPFAIL, "final: tempfail over quarantine");
	ok(d.code == 451 && strcmp(d.enh, "4.7.1") == 0,
	    "final: default tempfail reply");
	ev_fill(&es, "DROP", 0.0, NULL);
	FINAL("x@example.com", 0);
	is_int(d.action, ACT_DISCARD, "final: discard rule");
	ev_fill(&es, "SPAMMY", 1.0, "VIRUS", 1.0, NULL);
	FINAL("x@example.com", 0);
	is_int(d.action, ACT_REJECT, "final: VIRUS rejects");
	ok(d.code == 554 && strcmp(d.enh, "5.7.0") == 0 &&
		strcmp(d.text, "Virus found") == 0,
	    "final: the rule's reply");
	FINAL("polite@example.com", 0);
	is_int(d.code, 554, "final: rule reply before group reply");
	ev_fill(&es, "BLOCK", 0.0, NULL);
	FINAL("polite@example.com", 0);
	ok(d.code == 550 && strcmp(d.enh, "5.7.9") == 0 &&
		strcmp(d.text, "Go away") == 0,
	    "final: group reject_reply");
	ev_fill(&es, "DEFER", 0.0, NULL);
	FINAL("polite@example.com", 0);
	ok(d.code == 450 && strcmp(d.text, "Later") == 0,
	    "final: group tempfail_reply");
	ev_fill(&es, "ODD", 0.0, NULL);
	FINAL("x@example.com", 0);
	ok(d.action == ACT_TEMPFAIL && d.code == 451,
	    "final: a 5xx reply on a tempfail rule is not used");
	ev_fill(&es, "VIRUS", 0.0, NULL);
	FINAL("a@b.example", 1);
	is_int(d.action, ACT_DISCARD, "final: group rule before global rule");

	/* A rule's reply quotes the detail of the evidence that fired it. */
	evidence_free(&es);
	evidence_add(&es, "t", "SPAMMY", 0, "not this", FILTER_STAGE_EOM);
	evidence_add(&es, "t", "NAMED", 0, "Eicar-Test", FILTER_STAGE_EOM);
	FINAL("x@example.com", 0);
	is_str(d.text, "Found: Eicar-Test (Eicar-Test) %{other}",
	    "final: %{detail} in a rule reply is the evidence's detail");
	evidence_free(&es);
	evidence_add(&es, "t", "NAMED", 0, NULL, FILTER_STAGE_EOM);
	FINAL("x@example.com", 0);
	is_str(d.text, "Found:  () %{other}",
	    "final: %{detail} of evidence without detail is empty");
	evidence_free(&es);
	evidence_add(&es, "t", "NAMED", 0, "early", FILTER_STAGE_MAIL);
	ok(policy_early(prt->policy, grp("x@example.com", 0), &es, 0,
	       FILTER_STAGE_MAIL, &d) == 1 &&
		strcmp(d.text, "Found: early (early) %{other}") == 0,
	    "early: %{detail} in a rule reply");

	/* accept wins over everything, in any order. */
	ev_fill(&es, "VIRUS", 0.0, "GOOD", 0.0, NULL);
	FINAL("x@example.com", 0);
	is_int(d.action, ACT_ACCEPT, "final: accept after a reject rule");
	is_str(d.reason, "rule GOOD", "final: accept reason");
	ev_fill(&es, "GOOD", 0.0, "VIRUS", 0.0, "X", 100.0, NULL);
	FINAL("x@example.com", 0);
	is_int(d.action, ACT_ACCEPT, "final: accept over rules and score");

	/* Built-in thresholds without a "default" group: 6 and 15. */
	brt = rt_build("rule \"R\" { action = \"add_header\" }\n");
	if (ok(brt != NULL, "final: built-in thresholds config builds")) {
		const struct policy_group *g =
		    policy_group_for(brt->policy, "a@b.example", 0);

		is_str(policy_group_name(g), "default",
		    "final: built-in default group");
		ev_fill(&es, "X", 5.9, NULL);
		policy_final(brt->policy, g, &es, &d);
		is_int(d.action, ACT_NONE, "final: built-in: 5.9 none");
		ev_fill(&es, "X", 6.0, NULL);
		policy_final(brt->policy, g, &es, &d);
		is_int(
		    d.action, ACT_ADD_HEADER, "final: built-in: 6 add_header");
		ev_fill(&es, "X", 15.0, NULL);
		policy_final(brt->policy, g, &es, &d);
		is_int(d.action, ACT_REJECT, "final: built-in: 15 reject");
		ok(policy_group_required(g) == 6, "final: built-in required 6");
		runtime_release(brt);
	}
#undef FINAL
	evidence_free(&es);
}

static void
test_early(void)
{
	struct evidence_set    es;
	struct policy_decision d;
	int		       r;

	evidence_init(&es);
#define EARLY(rcpt, from, st)                                                  \
	policy_early(prt->policy, grp(rcpt, 0), &es, from, st, &d)

	ev_fill(&es, "BLOCK", 0.0, NULL);
	is_int(EARLY(NULL, 0, FILTER_STAGE_CONNECT), 1,
	    "early: final rule decides");
	is_int(d.action, ACT_REJECT, "early: reject");
	ok(d.code == 554 && strcmp(d.enh, "5.7.1") == 0,
	    "early: 554 5.7.1 at CONNECT");
	is_str(d.reason, "rule BLOCK", "early: reason names the rule");
	EARLY(NULL, 0, FILTER_STAGE_HELO);
	ok(d.code == 550 && strcmp(d.text, "Access denied") == 0,
	    "early: 550 Access denied at HELO");
	EARLY(NULL, 0, FILTER_STAGE_MAIL);
	ok(d.code == 550 && strcmp(d.enh, "5.7.1") == 0 &&
		strcmp(d.text, "Sender address rejected") == 0,
	    "early: Sender address rejected at MAIL");
	EARLY("x@example.com", 0, FILTER_STAGE_RCPT);
	ok(d.code == 550 && strcmp(d.text, "Recipient address rejected") == 0,
	    "early: Recipient address rejected at RCPT");
	EARLY("x@example.com", 0, FILTER_STAGE_EOH);
	is_str(d.text, "Message rejected", "early: Message rejected later");
	EARLY("polite@example.com", 0, FILTER_STAGE_MAIL);
	ok(d.code == 550 && strcmp(d.enh, "5.7.9") == 0 &&
		strcmp(d.text, "Go away") == 0,
	    "early: group reject_reply used");
	is_int(EARLY(NULL, 1, FILTER_STAGE_MAIL), 0,
	    "early: evidence before `from` not looked at");

	ev_fill(&es, "VIRUS", 0.0, NULL);
	EARLY("polite@example.com", 0, FILTER_STAGE_RCPT);
	ok(d.code == 554 && strcmp(d.text, "Virus found") == 0,
	    "early: rule reply used");

	ev_fill(&es, "DEFER", 0.0, NULL);
	EARLY(NULL, 0, FILTER_STAGE_CONNECT);
	ok(d.action == ACT_TEMPFAIL && d.code == 421,
	    "early: tempfail at CONNECT is 421");
	EARLY(NULL, 0, FILTER_STAGE_MAIL);
	ok(d.code == 451 && strcmp(d.enh, "4.7.1") == 0,
	    "early: tempfail at MAIL is 451 4.7.1");

	ev_fill(&es, "GOOD", 0.0, NULL);
	ok(EARLY(NULL, 0, FILTER_STAGE_MAIL) == 1 && d.action == ACT_ACCEPT,
	    "early: accept rule decides");
	ev_fill(&es, "DROP", 0.0, NULL);
	ok(EARLY(NULL, 0, FILTER_STAGE_DATA) == 1 && d.action == ACT_DISCARD,
	    "early: discard rule decides");

	ev_fill(&es, "SPAMMY", 3.0, "QUAR", 3.0, NULL);
	is_int(EARLY("x@example.com", 0, FILTER_STAGE_RCPT), 0,
	    "early: add_header/quarantine rules do not decide");
	ok(es.v[0].rule >= 0 && es.v[1].rule >= 0,
	    "early: but the rules are recorded");
	ev_fill(&es, "SPAMMY", 0.0, "BLOCK", 0.0, NULL);
	ok(EARLY("x@example.com", 0, FILTER_STAGE_RCPT) == 1 &&
		strcmp(d.reason, "rule BLOCK") == 0,
	    "early: a final rule after a non-final one decides");

	/* The early_reject threshold: before DATA only. */
	ev_fill(&es, "X", 8.0, NULL);
	r = EARLY("strict@example.com", 0, FILTER_STAGE_RCPT);
	ok(r == 1 && d.action == ACT_REJECT, "early: score >= 7 at RCPT");
	is_str(d.reason, "score 8.00 >= 7.00", "early: score reason");
	is_int(d.code, 550, "early: score reject code");
	ok(EARLY("strict@example.com", 0, FILTER_STAGE_MAIL) == 1,
	    "early: score at MAIL");
	is_int(EARLY("strict@example.com", 0, FILTER_STAGE_DATA), 0,
	    "early: score not at DATA");
	is_int(EARLY("strict@example.com", 0, FILTER_STAGE_EOM), 0,
	    "early: score not at EOM");
	ev_fill(&es, "X", 6.9, NULL);
	is_int(EARLY("strict@example.com", 0, FILTER_STAGE_RCPT), 0,
	    "early: below the threshold");
	ev_fill(&es, "X", 100.0, NULL);
	is_int(EARLY("x@example.com", 0, FILTER_STAGE_RCPT), 0,
	    "early: no early_reject in the default group");
#undef EARLY
	evidence_free(&es);
}

/* ---------------------------------------------------- policy: headers */

static const struct hdr_edit *
edit_find(const struct hdr_edits *e, enum hdr_edit_op op, const char *name)
{
	size_t i;

	for (i = 0; i < e->n; i++)
		if (e->v[i].op == op &&
		    (name == NULL ||
			(e->v[i].name != NULL &&
			    strcmp(e->v[i].name, name) == 0)))
			return &e->v[i];
	return NULL;
}

static void
test_headers(void)
{
	const struct config	  *cf = prt->cf;
	const struct policy_group *g = grp("x@example.com", 0);
	const struct policy_group *gs = grp("sales@example.com", 0);
	struct policy_decision	   d;
	struct policy_seen	   seen;
	struct evidence_set	   es;
	struct hdr_edits	   e;
	const struct hdr_edit	  *x;
	const char *ar[] = { "spf=pass smtp.mailfrom=a.example", "dkim=none" };
	struct runtime *rt2;

	evidence_init(&es);
	ev_fill(&es, "SPAMMY", 6.5, "OTHER", 0.0, NULL);
	memset(&seen, 0, sizeof(seen));
	memset(&d, 0, sizeof(d));

	/* No action: A-R only. */
	hdr_edits_init(&e);
	d.action = ACT_NONE;
	seen.our_ar = 1;
	policy_headers(cf, g, &d, &es, ar, 2, &seen, &e);
	x = edit_find(&e, HDR_DELETE_AR_ID, NULL);
	ok(x != NULL && strcmp(x->value, "mx.test") == 0,
	    "headers: forged A-R with our id removed");
	x = edit_find(&e, HDR_ADD_TOP, "Authentication-Results");
	ok(x != NULL, "headers: A-R added");
	is_str(x != NULL ? x->value : NULL,
	    "mx.test; spf=pass smtp.mailfrom=a.example; dkim=none",
	    "headers: A-R value with the clauses");
	ok(edit_find(&e, HDR_ADD_TOP, "X-Spam-Status") == NULL,
	    "headers: no spam headers without add_header");
	ok(edit_find(&e, HDR_CHANGE, "Subject") == NULL &&
		edit_find(&e, HDR_APPEND, "Subject") == NULL,
	    "headers: no subject tag without add_header");
	hdr_edits_free(&e);

	seen.our_ar = 0;
	policy_headers(cf, g, &d, &es, ar, 0, &seen, &e);
	is_int(e.n, 0, "headers: nothing without clauses or forged A-R");
	hdr_edits_free(&e);

	/* add_header: spam headers, subject tag on the existing Subject. */
	d.action = ACT_ADD_HEADER;
	seen.subject = xstrdup("Hello");
	policy_headers(cf, g, &d, &es, NULL, 0, &seen, &e);
	x = edit_find(&e, HDR_ADD_TOP, "X-Spam-Status");
	is_str(x != NULL ? x->value : NULL,
	    "Yes, score=6.50 required=5.00 tests=SPAMMY,OTHER",
	    "headers: X-Spam-Status");
	x = edit_find(&e, HDR_ADD_TOP, "X-Spam-Score");
	is_str(x != NULL ? x->value : NULL, "6.50", "headers: X-Spam-Score");
	x = edit_find(&e, HDR_CHANGE, "Subject");
	ok(x != NULL && x->index == 1, "headers: first Subject changed");
	is_str(x != NULL ? x->value : NULL, "[SPAM] Hello",
	    "headers: subject tagged");
	ok(edit_find(&e, HDR_CHANGE, "X-Spam-Status") == NULL,
	    "headers: no incoming spam header, none removed");
	hdr_edits_free(&e);

	/* ... without a Subject: one is appended; incoming spam removed. */
	free(seen.subject);
	seen.subject = NULL;
	seen.spam_hdr = 1;
	policy_headers(cf, g, &d, &es, NULL, 0, &seen, &e);
	x = edit_find(&e, HDR_APPEND, "Subject");
	is_str(x != NULL ? x->value : NULL, "[SPAM]",
	    "headers: Subject appended with the tag");
	x = edit_find(&e, HDR_CHANGE, "X-Spam-Status");
	ok(x != NULL && x->index == 0 && x->value == NULL,
	    "headers: incoming X-Spam-Status deleted (every one)");
	ok(edit_find(&e, HDR_CHANGE, "X-Spam-Score") != NULL,
	    "headers: incoming X-Spam-Score deleted");
	hdr_edits_free(&e);
	seen.spam_hdr = 0;

	/* Group without a tag: spam headers, no subject change. */
	policy_headers(cf, gs, &d, &es, NULL, 0, &seen, &e);
	ok(edit_find(&e, HDR_ADD_TOP, "X-Spam-Status") != NULL &&
		edit_find(&e, HDR_APPEND, "Subject") == NULL,
	    "headers: no tag in a group without subject_tag");
	hdr_edits_free(&e);

	/* quarantine: spam headers, no tag. */
	d.action = ACT_QUARANTINE;
	policy_headers(cf, g, &d, &es, NULL, 0, &seen, &e);
	x = edit_find(&e, HDR_ADD_TOP, "X-Spam-Status");
	ok(x != NULL && strncmp(x->value, "Yes,", 4) == 0,
	    "headers: quarantine marks Yes");
	ok(edit_find(&e, HDR_APPEND, "Subject") == NULL,
	    "headers: quarantine does not tag the subject");
	hdr_edits_free(&e);

	/* accept: none of the spam headers, even with a forged A-R. */
	d.action = ACT_ACCEPT;
	seen.spam_hdr = 1;
	seen.our_ar = 1;
	policy_headers(cf, g, &d, &es, NULL, 0, &seen, &e);
	ok(edit_find(&e, HDR_ADD_TOP, "X-Spam-Status") == NULL &&
		edit_find(&e, HDR_CHANGE, "X-Spam-Status") == NULL &&
		edit_find(&e, HDR_APPEND, "Subject") == NULL,
	    "headers: accept adds no spam headers, no tag");
	ok(edit_find(&e, HDR_DELETE_AR_ID, NULL) != NULL,
	    "headers: accept still removes a forged A-R");
	hdr_edits_free(&e);
	seen.spam_hdr = seen.our_ar = 0;

	/* spam_headers_always, authentication_results = no. */
	rt2 = rt_build("spam_headers_always = true\n"
		       "authentication_results = false\n"
		       "spam_score_header = \"\"\n");
	if (ok(rt2 != NULL, "headers: second configuration builds")) {
		const struct policy_group *g2 =
		    policy_group_for(rt2->policy, NULL, 0);

		d.action = ACT_NONE;
		seen.our_ar = 1;
		policy_headers(rt2->cf, g2, &d, &es, ar, 2, &seen, &e);
		x = edit_find(&e, HDR_ADD_TOP, "X-Spam-Status");
		is_str(x != NULL ? x->value : NULL,
		    "No, score=6.50 required=6.00 tests=SPAMMY,OTHER",
		    "headers: spam_headers_always writes No");
		ok(edit_find(&e, HDR_ADD_TOP, "X-Spam-Score") == NULL,
		    "headers: empty spam_score_header writes none");
		ok(edit_find(&e, HDR_ADD_TOP, "Authentication-Results") ==
			    NULL &&
			edit_find(&e, HDR_DELETE_AR_ID, NULL) == NULL,
		    "headers: authentication_results = false: no A-R edits");
		hdr_edits_free(&e);
		d.action = ACT_ACCEPT;
		policy_headers(rt2->cf, g2, &d, &es, ar, 2, &seen, &e);
		is_int(e.n, 0,
		    "headers: accept writes nothing, even spam_headers_always");
		hdr_edits_free(&e);
		seen.our_ar = 0;
		runtime_release(rt2);
	}
	evidence_free(&es);
}

static void
test_seen(void)
{
	const struct config *cf = prt->cf;
	struct policy_seen   s;

#define SEEN(n, v) policy_header_seen(cf, &s, n, strlen(n), v, strlen(v))
	memset(&s, 0, sizeof(s));
	SEEN("Authentication-Results", " other.test; spf=pass");
	is_int(s.our_ar, 0, "seen: A-R of another id ignored");
	SEEN("Authentication-Results", " mx.test.evil; spf=pass");
	is_int(s.our_ar, 0, "seen: an id with our id as prefix ignored");
	SEEN("authentication-results", " (comment) MX.TEST; spf=pass");
	is_int(s.our_ar, 1, "seen: A-R with our id (any case, comment)");
	is_int(s.spam_hdr, 0, "seen: no spam header yet");
	SEEN("X-Spam-Flag", "YES");
	is_int(s.spam_hdr, 0, "seen: other X-Spam field ignored");
	SEEN("x-spam-STATUS", "Yes");
	is_int(s.spam_hdr, 1, "seen: spam status name case-insensitive");
	memset(&s, 0, sizeof(s));
	SEEN("X-SPAM-SCORE", "3");
	is_int(s.spam_hdr, 1, "seen: spam score header");
	/* Only namelen bytes of the name count. */
	policy_header_seen(cf, &s, "SubjectX", 7, " Hi", 3);
	is_str(s.subject, "Hi", "seen: name compared by its length");
	free(s.subject);
	memset(&s, 0, sizeof(s));
	SEEN("SUBJECT", " \tFirst line\r\n\tsecond\r\n third");
	is_str(s.subject, "First line\tsecond third",
	    "seen: Subject unfolded, leading blanks dropped");
	SEEN("Subject", "another");
	is_str(s.subject, "First line\tsecond third",
	    "seen: the first Subject kept");
	free(s.subject);
	memset(&s, 0, sizeof(s));
	SEEN("Subjects", "x");
	ok(s.subject == NULL, "seen: longer name is not Subject");
	SEEN("Subject", "");
	is_str(s.subject, "", "seen: empty Subject");
	free(s.subject);
#undef SEEN
}

/* ------------------------------------------------------------ evidence */

static void
test_evidence(void)
{
	struct evidence_set es, dst;
	struct evidence	   *e;
	char		    big[400];
	size_t		    i;
	double		    sum;

	evidence_init(&es);
	e = evidence_add(&es, "my filter", "a b/c", 1.5, "x\ty\nz\x7f!", 2);
	is_str(e->symbol, "a_b_c", "evidence: symbol sanitised");
	is_str(e->filter, "my_filter", "evidence: filter name sanitised");
	is_str(e->detail, "x y z !", "evidence: controls become spaces");
	is_int(e->stage, 2, "evidence: stage");
	is_int(e->rule, -1, "evidence: no rule yet");
	e = evidence_add(&es, "f", "Ok.Sym-1_x", 0, "", 0);
	is_str(e->symbol, "Ok.Sym-1_x", "evidence: allowed characters kept");
	ok(e->detail == NULL, "evidence: empty detail is NULL");
	e = evidence_add(&es, "f", "", 0, NULL, 0);
	is_str(e->symbol, "_", "evidence: empty symbol becomes _");
	memset(big, 'S', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	e = evidence_add(&es, "f", big, 0, big, 0);
	is_int(strlen(e->symbol), EVIDENCE_SYMBOL_MAX - 1,
	    "evidence: long symbol cut");
	is_int(strlen(e->detail), EVIDENCE_DETAIL_MAX - 1,
	    "evidence: long detail cut");
	e = evidence_add(&es, "f", "NAN", NAN, NULL, 0);
	ok(e->score == 0, "evidence: NaN score counted as 0");
	e = evidence_add(&es, "f", "UTF8", 0, "caf\xc3\xa9", 0);
	is_str(e->detail, "caf\xc3\xa9", "evidence: UTF-8 detail kept");
	ok(es.total == 1.5, "evidence: total");
	ok(evidence_find(&es, "a_b_c") != NULL &&
		evidence_find(&es, "a b/c") == NULL,
	    "evidence: find by the sanitised symbol");
	evidence_free(&es);
	is_int(es.n, 0, "evidence: free empties");

	/* The bound. */
	sum = 0;
	for (i = 0; i < EVIDENCE_MAX + 6; i++) {
		char sym[16];

		snprintf(sym, sizeof(sym), "S%zu", i);
		e = evidence_add(&es, "f", sym, 1.0, "d", 0);
		if (i < EVIDENCE_MAX)
			sum += 1.0;
		if (i == EVIDENCE_MAX - 1)
			ok(e != NULL, "evidence: the last one fits");
		if (i == EVIDENCE_MAX)
			ok(e == NULL, "evidence: one more is refused");
	}
	is_int(es.n, EVIDENCE_MAX, "evidence: at most EVIDENCE_MAX");
	is_int(es.dropped, 6, "evidence: the rest counted as dropped");
	ok(es.total == sum, "evidence: dropped scores not in the total");

	/* Truncate. */
	evidence_truncate(&es, 10);
	is_int(es.n, 10, "evidence: truncated");
	ok(es.total == 10.0, "evidence: total follows the truncation");
	evidence_truncate(&es, 20);
	is_int(es.n, 10, "evidence: truncating to more is a no-op");

	/* Copy. */
	es.v[3].rule = 7;
	evidence_init(&dst);
	evidence_add(&dst, "g", "FIRST", 2.0, NULL, 1);
	evidence_copy(&dst, &es);
	is_int(dst.n, 11, "evidence: copy appends");
	is_str(dst.v[1].symbol, "S0", "evidence: copy keeps order");
	is_int(dst.v[4].rule, 7, "evidence: copy keeps the rule");
	ok(dst.v[1].detail != es.v[0].detail &&
		strcmp(dst.v[1].detail, "d") == 0,
	    "evidence: copy owns its details");
	ok(dst.total == 12.0, "evidence: copy adds the scores");
	is_int(dst.dropped, 6, "evidence: copy carries dropped");
	evidence_free(&es);
	is_str(dst.v[1].detail, "d", "evidence: copy survives the source");
	evidence_free(&dst);
}

int
main(void)
{
	struct config *cf;

	main_thread = pthread_self();
	log_init(LOG_TARGET_STDERR, 0);
	log_set_max_prio(LOG_ERR); /* the chain warns on every failure */
	if (evthread_use_pthreads() == -1) {
		printf("Bail out! evthread_use_pthreads\n");
		return 1;
	}
	if ((cf = conf_load("")) == NULL) {
		printf("Bail out! cannot load an empty configuration\n");
		return 1;
	}
	L = loop_new(0, cf);
	chain_set_lookup(lookup_cb);

	test_order();
	test_verdicts();
	test_async();
	test_timeout();
	test_error();
	test_cancel();
	test_work(); /* starts the worker pool */
	test_accept();
	test_mask();
	test_services();

	if ((prt = rt_build(policy_conf)) == NULL) {
		ok(0, "policy: configuration builds");
	} else {
		test_groups();
		test_final();
		test_early();
		test_headers();
		test_seen();
		runtime_release(prt);
	}
	test_evidence();

	/* Shutdown order of workers.h: the loop is not running, so stop
	 * the pool (running leftover done callbacks) before freeing it. */
	workers_stop();
	loop_free(L);
	config_free(cf);
	return tap_done();
}
