/*
 * chain.h - the filter chain: the configured filters, built once per
 * configuration (start-up, reload), and the per-session runner that calls
 * them stage by stage, in order, synchronously where every filter answers
 * at once and asynchronously (with a per-filter timeout) where one answers
 * PENDING.
 *
 * A struct chain is read-only after chain_new() and shared by every loop
 * thread (its counters are atomics). A struct chain_run belongs to one
 * session (or one `moat scan`) and lives on its loop thread.
 */
#ifndef MOAT_CHAIN_H
#define MOAT_CHAIN_H

#include "filter_api.h"

struct config;
struct event;
struct evidence_set;
struct hdr_edits;
struct policy;

#define FILTERS_MAX_CHAIN 17 /* configured filters + the lists filter */
#define AR_CLAUSES_MAX	  16

struct chain;

/*
 * Build the chain of cf's filters (the lists filter first when the policy
 * has lists). Errors are reported with config_report(); NULL then.
 * Configuration thread (runtime.h): it runs the filters' init(), which may
 * block. chain_free() runs their fini(), on whichever thread drops the
 * last reference to the runtime (usually a worker).
 */
struct chain *chain_new(const struct config *, const struct policy *);
void	      chain_free(struct chain *);
/*
 * The directories cf's built-in filters write in (filter_api.h,
 * filter_dir_fn): dir(arg, path) for each, before any filter is built.
 */
void chain_state_dirs(const struct config *, filter_dir_fn, void *arg);
/* Any filter interested in the stage? (cheap; lets the session skip work) */
int	    chain_wants(const struct chain *, enum filter_stage);
size_t	    chain_size(const struct chain *);
const char *chain_filter_name(const struct chain *, size_t);
/* Index of the filter named `name`, or -1. */
int chain_find(const struct chain *, const char *name);
/* The default rules filter i proposes (filter_ops.rules), or NULL. */
const struct filter_rule *chain_filter_rules(const struct chain *, size_t);
/* "connect", "helo", ... "eom" (for logs, output and options). */
const char *filter_stage_name(enum filter_stage);
/* Log every filter's counters (calls, errors, timeouts, time). */
void chain_log_stats(const struct chain *);

typedef void (*chain_done_fn)(
    void *arg, enum filter_verdict, const struct filter_reply *);

/* Where a run's filters report to (owned by the session / transaction). */
struct chain_sink {
	struct evidence_set *ev;
	struct hdr_edits    *edits; /* EOM only, else NULL */
	struct spool	    *spool; /* EOM only, else NULL */
	char		   **ar;    /* Authentication-Results clauses */
	size_t		    *nar;
};

struct chain_run {
	const struct chain	*chain;
	struct loop		*loop;
	uint64_t		 sid;
	uint64_t		 call; /* number of the current call */
	size_t			 next; /* filter to run next */
	enum filter_stage	 stage;
	const struct filter_env *env;
	void			*cookie;
	struct event		*timer;
	chain_done_fn		 done;
	void			*arg;
	int			 pending;
	int			 in_call;  /* inside a stage callback */
	uint32_t		 accepted; /* ACCEPT seen: skip for this tx */
	unsigned session_accepted;	   /* ... at CONNECT/HELO: 1 << stage */
	uint32_t mask;			   /* filters that run from RCPT on */
	uint64_t t_call;
	uint64_t usec[FILTERS_MAX_CHAIN]; /* this tx */
	void	*session_data[FILTERS_MAX_CHAIN];
	struct chain_sink   sink;
	struct filter_reply reply;
	const char	   *decided_by; /* filter of the last verdict */
};

void chain_run_init(
    struct chain_run *, const struct chain *, struct loop *, uint64_t sid);
/*
 * Run a stage. env must stay valid until done is called. Returns the
 * verdict when every filter answered at once (done is then not called), or
 * FILTER_PENDING (done will be called exactly once, unless
 * chain_run_cancel() comes first). On REJECT/TEMPFAIL the filter's reply,
 * if any, is in run->reply (code 0 when none). Never returns ERROR: the
 * failing filter's on_error is applied.
 */
enum filter_verdict chain_run_stage(struct chain_run *, enum filter_stage,
    const struct filter_env *, chain_done_fn done, void *arg);
/* Cancel a pending stage (client gone, session torn down). */
void chain_run_cancel(struct chain_run *);
/* New transaction: forget ACCEPT and times; tell the filters. */
void chain_run_reset(struct chain_run *);
/* End of session: cancel, tell the filters, free. */
void chain_run_free(struct chain_run *);

/*
 * How filter_complete() & co. find the run of (loop, sid): moatd's
 * sessions register theirs, `moat scan` its own.
 */
typedef struct chain_run *(*chain_lookup_fn)(struct loop *, uint64_t sid);
void chain_set_lookup(chain_lookup_fn);

/*
 * For built-in filters only (not part of the filter ABI): the evidence
 * of the transaction so far, during a call (the loop thread); NULL
 * outside one. The spam filter reads what the other filters found.
 */
const struct evidence_set *chain_evidence(const struct filter_token *);

#endif
