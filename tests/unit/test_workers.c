/*
 * test_workers.c - unit tests for proxy/workers.c: argument checks, jobs
 * without a loop, FIFO order, the queue bound, done callbacks on a real
 * loop thread (proxy/loop.c), and the shutdown order of workers.h (jobs
 * still in flight when their loop has stopped get their done callback from
 * workers_stop on the main thread).
 *
 * Deterministic: no sleeps and no timing assertions; jobs that must stay
 * in a worker are held at a gate (mutex + condition variable) that the
 * test opens. Meant to run under ASan and TSan alike. The checks run on
 * the main thread; other threads only record into shared counters under
 * a mutex.
 */

#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "config.h"
#include "loop.h"
#include "util.h"
#include "workers.h"

static pthread_mutex_t mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t  cond = PTHREAD_COND_INITIALIZER;

/* Counters and the gate, all under mtx. */
static int gate_open; /* blocking jobs may finish */
static int started;   /* blocking jobs that reached the gate */
static int nwork, ndone;
static int bad_work_thread, bad_done_thread;
static int order[64], norder;

static pthread_t main_thread, loop_thread;

struct job {
	int	  seq;
	int	  block; /* wait at the gate */
	pthread_t work_thread;
	int	  done_target; /* ndone at which done stops the loop */
};

static struct job static_job;

static int
is_worker_thread(void)
{
	char name[32];

	if (pthread_getname_np(pthread_self(), name, sizeof(name)) != 0)
		return 0;
	return strcmp(name, "moat-worker") == 0;
}

static void
work_fn(void *arg)
{
	struct job *j = arg;

	pthread_mutex_lock(&mtx);
	j->work_thread = pthread_self();
	if (!is_worker_thread())
		bad_work_thread++;
	if (j->block) {
		started++;
		pthread_cond_broadcast(&cond);
		while (!gate_open)
			pthread_cond_wait(&cond, &mtx);
	}
	nwork++;
	if ((size_t)norder < nitems(order))
		order[norder++] = j->seq;
	pthread_mutex_unlock(&mtx);
}

/* l == NULL: runs on the worker that ran work_fn, right after it. */
static void
done_noloop(struct loop *l, void *arg)
{
	struct job *j = arg;

	pthread_mutex_lock(&mtx);
	if (l != NULL || !pthread_equal(j->work_thread, pthread_self()))
		bad_done_thread++;
	ndone++;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&mtx);
	free(j);
}

/* With a loop: on the loop's thread; the last one stops the loop. */
static void
done_loop(struct loop *l, void *arg)
{
	struct job *j = arg;
	int	    stop;

	pthread_mutex_lock(&mtx);
	if (l == NULL || !pthread_equal(pthread_self(), loop_thread))
		bad_done_thread++;
	stop = ++ndone == j->done_target;
	pthread_mutex_unlock(&mtx);
	if (stop)
		event_base_loopbreak(loop_base(l));
	free(j);
}

/* After the loop is joined: from workers_stop, on the main thread. */
static void
done_late(struct loop *l, void *arg)
{
	pthread_mutex_lock(&mtx);
	if (l == NULL || !pthread_equal(pthread_self(), main_thread))
		bad_done_thread++;
	ndone++;
	pthread_mutex_unlock(&mtx);
	free(arg);
}

static void
record_loop_thread(struct loop *l, void *arg)
{
	pthread_mutex_lock(&mtx);
	loop_thread = pthread_self();
	started++;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&mtx);
}

static void
break_loop(struct loop *l, void *arg)
{
	event_base_loopbreak(loop_base(l));
}

static struct job *
job_new(int seq, int block)
{
	struct job *j = calloc(1, sizeof(*j));

	j->seq = seq;
	j->block = block;
	return j;
}

static void
reset(void)
{
	pthread_mutex_lock(&mtx);
	gate_open = started = nwork = ndone = norder = 0;
	bad_work_thread = bad_done_thread = 0;
	pthread_mutex_unlock(&mtx);
}

static void
wait_started(int n)
{
	pthread_mutex_lock(&mtx);
	while (started < n)
		pthread_cond_wait(&cond, &mtx);
	pthread_mutex_unlock(&mtx);
}

static void
open_gate(void)
{
	pthread_mutex_lock(&mtx);
	gate_open = 1;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&mtx);
}

static int
get(int *p)
{
	int v;

	pthread_mutex_lock(&mtx);
	v = *p;
	pthread_mutex_unlock(&mtx);
	return v;
}

static void
test_args(void)
{
	struct job *j = job_new(0, 0);

	errno = 0;
	ok(workers_start(0, 10) == -1 && errno == EINVAL,
	    "start with 0 threads: EINVAL");
	ok(worker_submit(NULL, work_fn, done_noloop, j) == -1,
	    "submit before start refused");
	workers_stop(); /* no-op */
	ok(1, "stop before start is a no-op");
	is_int(workers_start(2, 10), 0, "start 2 threads");
	errno = 0;
	ok(workers_start(2, 10) == -1 && errno == EBUSY, "second start: EBUSY");
	workers_stop();
	ok(worker_submit(NULL, work_fn, done_noloop, j) == -1,
	    "submit after stop refused");
	free(j);
}

static void
test_noloop(void)
{
	int		   i, n = 1000, refused = 0;
	size_t		   queued;
	unsigned long long done0, done1, rej;

	reset();
	workers_stats(NULL, &done0, NULL);
	is_int(workers_start(4, 0), 0, "start 4 threads, no queue bound");
	for (i = 0; i < n; i++)
		if (worker_submit(NULL, work_fn, done_noloop, job_new(i, 0)) ==
		    -1)
			refused++;
	is_int(refused, 0, "%d jobs submitted", n);
	workers_stop();
	is_int(get(&nwork), n, "every work ran");
	is_int(get(&ndone), n, "every done ran");
	is_int(get(&bad_work_thread), 0, "work ran on moat-worker threads");
	is_int(get(&bad_done_thread), 0,
	    "done (no loop) ran on the work's thread, with l == NULL");
	workers_stats(&queued, &done1, &rej);
	is_int(queued, 0, "queue empty after stop");
	is_int(done1 - done0, n, "completed counter");
	is_int(rej, 0, "nothing rejected");

	/* done may be NULL (then nothing frees the job: a static one). */
	reset();
	is_int(workers_start(1, 0), 0, "restart after stop");
	ok(worker_submit(NULL, work_fn, NULL, &static_job) == 0,
	    "submit with done == NULL");
	workers_stop();
	is_int(get(&nwork), 1, "its work ran");
}

/* struct job instances of test_fifo/test_bound are freed by done. */
static void
test_fifo(void)
{
	int i, inorder = 1;

	reset();
	is_int(workers_start(1, 0), 0, "one thread");
	/* Hold the thread so every job is queued before any runs. */
	worker_submit(NULL, work_fn, done_noloop, job_new(-1, 1));
	wait_started(1);
	for (i = 0; i < 20; i++)
		worker_submit(NULL, work_fn, done_noloop, job_new(i, 0));
	open_gate();
	workers_stop();
	is_int(get(&norder), 21, "21 jobs ran");
	pthread_mutex_lock(&mtx);
	for (i = 0; i < 20; i++)
		if (order[i + 1] != i)
			inorder = 0;
	pthread_mutex_unlock(&mtx);
	ok(inorder, "one thread runs jobs in submission order");
}

static void
test_bound(void)
{
	size_t		   queued;
	unsigned long long rej0, rej1;

	reset();
	workers_stats(NULL, NULL, &rej0);
	is_int(workers_start(1, 2), 0, "one thread, queue_max 2");
	ok(worker_submit(NULL, work_fn, done_noloop, job_new(0, 1)) == 0,
	    "blocking job taken");
	wait_started(1); /* it left the queue */
	ok(worker_submit(NULL, work_fn, done_noloop, job_new(1, 0)) == 0,
	    "queued job 1");
	ok(worker_submit(NULL, work_fn, done_noloop, job_new(2, 0)) == 0,
	    "queued job 2");
	{
		struct job *j = job_new(3, 0);

		ok(worker_submit(NULL, work_fn, done_noloop, j) == -1,
		    "third queued job refused: queue full");
		free(j); /* refused: still ours */
	}
	workers_stats(&queued, NULL, &rej1);
	is_int(queued, 2, "stats: 2 queued");
	is_int(rej1 - rej0, 1, "stats: 1 rejected");
	open_gate();
	workers_stop();
	is_int(get(&nwork), 3, "the 3 accepted jobs ran");
	is_int(get(&ndone), 3, "their done callbacks ran");
}

static void
test_loop(struct config *cf)
{
	struct loop *l;
	struct job  *j;
	int	     i, n = 200;

	reset();
	main_thread = pthread_self();
	l = loop_new(0, cf);
	ok(l != NULL, "loop_new");
	is_int(loop_start(l), 0, "loop_start");
	loop_post(l, record_loop_thread, NULL);
	wait_started(1);
	is_int(workers_start(3, 0), 0, "start 3 threads");
	for (i = 0; i < n; i++) {
		j = job_new(i, 0);
		j->done_target = n;
		if (worker_submit(l, work_fn, done_loop, j) == -1)
			free(j);
	}
	loop_join(l); /* the last done stops the loop */
	is_int(get(&nwork), n, "every work ran");
	is_int(get(&ndone), n, "every done ran");
	is_int(get(&bad_work_thread), 0, "work on moat-worker threads");
	is_int(get(&bad_done_thread), 0, "done on the loop's thread");
	workers_stop();
	is_int(get(&ndone), n, "stop after the loop: nothing left to run");
	loop_free(l);

	/* The loop stops while jobs are in flight (shutdown order). */
	reset();
	l = loop_new(1, cf);
	loop_start(l);
	is_int(workers_start(2, 0), 0, "restart for the late-done case");
	for (i = 0; i < 4; i++)
		ok(worker_submit(l, work_fn, done_late, job_new(i, 1)) == 0,
		    "submit blocking job %d", i);
	wait_started(2); /* two in the workers, two queued */
	loop_post(l, break_loop, NULL);
	loop_join(l);
	is_int(get(&ndone), 0, "loop gone before any done ran");
	open_gate();
	workers_stop();
	is_int(get(&nwork), 4, "queued work finished by workers_stop");
	is_int(get(&ndone), 4, "late done callbacks run by workers_stop");
	is_int(get(&bad_done_thread), 0, "... on the main thread, with l");
	loop_free(l);
}

int
main(void)
{
	struct config cf;

	if (evthread_use_pthreads() == -1)
		return 99;
	memset(&cf, 0, sizeof(cf));
	test_args();
	test_noloop();
	test_fifo();
	test_bound();
	test_loop(&cf);
	libevent_global_shutdown();
	return tap_done();
}
