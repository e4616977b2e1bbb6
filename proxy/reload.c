/*
 * reload.c - SIGHUP's configuration reload on a thread of its own (see
 * reload.h for the contract).
 *
 * One thread per reload, created with every signal blocked (signals are
 * the main loop's) and joined by the main thread: by reload_done(), which
 * the thread's last act (loop_post) triggers, or by reload_shutdown().
 *
 * Ownership of the state R: mainloop, file, ov, apply and arg are set once
 * before any thread exists and only read afterwards; th, busy, again,
 * stopping and t0 are the main thread's; result is the reload thread's
 * until its loop_post() (whose queue lock orders the write before the
 * main loop runs reload_done()) or its end (pthread_join() in
 * reload_shutdown()), the main thread's after; cancel is set by the main
 * thread and read by the reload thread between its two steps (a shutdown
 * skips building a runtime nobody will use). R is static, so a post
 * handled after reload_shutdown() (the main loop's last pass) finds
 * busy == 0 and does nothing.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "loop.h"
#include "reload.h"
#include "runtime.h"
#include "util.h"

/* A ruleset compile recurses; as deep as the main thread may go (8 MiB
 * by default), with room for sanitizer builds. */
#define RELOAD_STACK ((size_t)16 << 20)

static struct {
	struct loop		      *mainloop;
	const char		      *file;
	const struct config_overrides *ov;
	reload_apply_fn		       apply;
	void			      *arg;

	pthread_t th;
	int	  busy;	 /* a thread was started and not joined yet */
	int	  again; /* a SIGHUP came during the running reload */
	int	  stopping;
	uint64_t  t0;

	struct runtime *result; /* NULL: failed */
	atomic_int	cancel;
} R;

static void reload_done(struct loop *, void *);

/* The reload thread: the blocking part. */
static void *
reload_main(void *unused)
{
	struct config  *cf;
	struct runtime *rt = NULL;

	(void)unused;
	config_errors_to_log(1); /* per thread: this one's go to the log */
	cf = config_load(R.file, R.ov);
	if (cf != NULL && atomic_load(&R.cancel)) {
		config_free(cf); /* shutting down: nobody would use it */
		cf = NULL;
	}
	if (cf != NULL && (rt = runtime_build(cf)) == NULL)
		config_free(cf); /* runtime_build() leaves it on failure */
	R.result = rt;
	loop_post(R.mainloop, reload_done, NULL); /* its last act */
	return NULL;
}

static void
reload_start(void)
{
	pthread_attr_t attr;
	sigset_t       all, old;
	int	       rc;

	log_info("event=reload file=%s", R.file ? R.file : "(defaults)");
	atomic_store(&R.cancel, 0);
	R.t0 = now_usec();
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, RELOAD_STACK);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&R.th, &attr, reload_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		log_err("event=reload-failed msg=\"cannot start the reload "
			"thread: %s; still running the previous "
			"configuration\"",
		    strerror(rc));
		return;
	}
	R.busy = 1;
}

/* Main loop: the reload thread is done (or about to return). */
static void
reload_done(struct loop *l, void *unused)
{
	struct runtime *rt;
	unsigned long	ms;
	unsigned	gen;

	(void)l;
	(void)unused;
	/* Not busy: reload_shutdown() joined it. Busy: it posted as its
	   last act, so the join is immediate. */
	if (!R.busy)
		return;
	pthread_join(R.th, NULL);
	rt = R.result;
	R.result = NULL;
	R.busy = 0;
	ms = (unsigned long)((now_usec() - R.t0) / 1000);
	if (R.stopping) {
		log_info("event=reload-abandoned ms=%lu msg=\"shutting down: "
			 "not applied\"",
		    ms);
		runtime_release(rt);
		return;
	}
	if (rt == NULL)
		log_err("event=reload-failed ms=%lu msg=\"configuration not "
			"applied; still running the previous one\"",
		    ms);
	else {
		gen = R.apply(rt, R.arg);
		log_info("event=reloaded generation=%u ms=%lu", gen, ms);
	}
	if (R.again) {
		R.again = 0;
		reload_start();
	}
}

void
reload_setup(struct loop *mainloop, const char *file,
    const struct config_overrides *ov, reload_apply_fn apply, void *arg)
{
	R.mainloop = mainloop;
	R.file = file;
	R.ov = ov;
	R.apply = apply;
	R.arg = arg;
}

void
reload_request(void)
{
	if (R.stopping) {
		log_info("event=reload-ignored msg=\"shutting down\"");
		return;
	}
	if (R.busy) {
		log_info("event=reload-queued merged=%s msg=\"a reload is "
			 "running; one more follows it\"",
		    R.again ? "yes" : "no");
		R.again = 1;
		return;
	}
	reload_start();
}

void
reload_stop(void)
{
	R.stopping = 1;
	R.again = 0;
	if (R.busy)
		atomic_store(&R.cancel, 1);
}

void
reload_shutdown(void)
{
	struct runtime *rt;

	R.stopping = 1;
	R.again = 0;
	if (!R.busy)
		return;
	atomic_store(&R.cancel, 1);
	log_info("event=reload-wait msg=\"waiting for the reload thread\"");
	pthread_join(R.th, NULL);
	R.busy = 0;
	rt = R.result;
	R.result = NULL;
	log_info("event=reload-abandoned ms=%lu msg=\"shutting down: not "
		 "applied\"",
	    (unsigned long)((now_usec() - R.t0) / 1000));
	runtime_release(rt);
}
