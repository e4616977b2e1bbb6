/*
 * chain.h - runs the configured filters, in order, for one stage of one
 * session, synchronously where every filter answers at once and
 * asynchronously (with a per-filter timeout) where one answers PENDING.
 *
 * The filter list (struct chain) is built at start-up and read-only after;
 * a struct chain_run belongs to one session and lives on its loop thread.
 */
#ifndef MOAT_CHAIN_H
#define MOAT_CHAIN_H

#include "filter_api.h"

struct config;
struct event;

struct chain;

struct chain *chain_new(const struct config *);
void	      chain_free(struct chain *);
/* Any filter interested in the stage? (cheap; lets the session skip work) */
int chain_wants(const struct chain *, enum filter_stage);

typedef void (*chain_done_fn)(
    void *arg, enum filter_verdict, const struct filter_reply *);

struct chain_run {
	const struct chain	*chain;
	struct loop		*loop;
	uint64_t		 sid;
	uint64_t		 call; /* number of the pending call */
	size_t			 next; /* filter to run next */
	enum filter_stage	 stage;
	const struct filter_env *env;
	void			*cookie;
	struct event		*timer;
	chain_done_fn		 done;
	void			*arg;
	int			 pending;
	int			 accepted; /* ACCEPT seen: skip for this tx */
	struct filter_reply	 reply;
};

void chain_run_init(
    struct chain_run *, const struct chain *, struct loop *, uint64_t sid);
/*
 * Run a stage. env must stay valid until done is called. Returns the
 * verdict when every filter answered at once (done is then not called), or
 * FILTER_PENDING (done will be called exactly once, unless
 * chain_run_cancel() comes first). On REJECT/TEMPFAIL the filter's reply,
 * if any, is in run->reply (code 0 when none).
 */
enum filter_verdict chain_run_stage(struct chain_run *, enum filter_stage,
    const struct filter_env *, chain_done_fn done, void *arg);
/* Cancel a pending stage (client gone, session torn down). */
void chain_run_cancel(struct chain_run *);
/* New transaction: forget ACCEPT. */
void chain_run_reset(struct chain_run *);
void chain_run_free(struct chain_run *);

/* Used by filter_complete(): the session's run for (loop, sid). */
struct chain_run *session_chain_run(struct loop *, uint64_t sid);

#endif
