/*
 * workers.h - a fixed pool of threads for blocking work (library calls
 * that block, file writes with fsync): nothing of that kind may run on an
 * event-loop thread.
 *
 * A job is work(arg) on a worker thread, then done(loop, arg) on the
 * submitting loop's thread, delivered with loop_post(). The pool never
 * touches arg: the submitter owns it, hands it to work() and gets it back
 * in done(), which must free it. Between submit and done, arg must not be
 * used by anyone else; in particular, a session that submitted a job and
 * closed meanwhile must not free arg itself: done() finds the session by
 * id (loop_find) and frees arg whether or not the session is still there.
 *
 * Threading: workers_start() and workers_stop() are for the main thread
 * only (start-up, shutdown); worker_submit() and workers_stats() may be
 * called from any thread. The queue is bounded: a full queue is an
 * environment error the caller turns into a tempfail.
 *
 * Shutdown order (the part that must be exact):
 *
 *	every loop_join()  ->  workers_stop()  ->  every loop_free()
 *
 * Loops stop on their own (the drain ends when their last session is
 * gone), possibly while jobs they submitted are still queued or running.
 * The done callbacks of such jobs are posted to a loop that no longer
 * runs them. workers_stop() therefore finishes every queued job, joins the
 * workers, and then calls, on the calling (main) thread, every done
 * callback that was posted but has not run: the loop threads are joined,
 * so this cannot race with them, and the loops still exist, so done() can
 * still use loop_find() and friends (it must not expect a loop_post() it
 * makes to run). Calling workers_stop() before the loops are joined would
 * let those callbacks race with their loop; calling it after loop_free()
 * would make workers post to freed loops.
 */
#ifndef MOAT_WORKERS_H
#define MOAT_WORKERS_H

#include <stddef.h>

struct loop;

/*
 * Start n (>= 1) threads named "moat-worker" with all signals blocked.
 * queue_max bounds the jobs waiting for a thread (0: no bound). Returns 0,
 * or -1 (errno set: EINVAL for n == 0, EBUSY if already started, or
 * pthread_create's error, in which case no thread is left running).
 */
int workers_start(unsigned n, size_t queue_max);

/*
 * Refuse new jobs, finish the queued ones, join the threads, then run the
 * done callbacks their loops did not run (see the shutdown order above).
 * Afterwards workers_start() may be called again. No-op if not started.
 */
void workers_stop(void);

/*
 * Run work(arg) on a worker thread, then done(l, arg) on l's thread
 * (through loop_post). If l is NULL, done(NULL, arg) runs on the worker
 * thread right after work (for tools without loops); done may be NULL.
 * Callable from any thread; never blocks beyond a short mutex hold.
 * Returns 0, or -1 when the queue is full or the pool is not running
 * (not started, or stopping): the job is not taken, arg still belongs to
 * the caller, and the caller must fail the operation (e.g. tempfail).
 */
int worker_submit(struct loop *l, void (*work)(void *arg),
    void (*done)(struct loop *, void *arg), void *arg);

/*
 * Jobs waiting for a thread now, jobs completed (work done) and jobs
 * refused because the queue was full, since the first workers_start().
 * Any pointer may be NULL.
 */
void workers_stats(
    size_t *queued, unsigned long long *done, unsigned long long *rejected);

#endif
