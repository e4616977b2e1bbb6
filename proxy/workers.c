/*
 * workers.c - the blocking-work pool: one mutex, one condition variable,
 * a FIFO of jobs (singly linked, bounded by queue_max) and n threads.
 *
 * A job's life: worker_submit() allocates it and appends it to the queue;
 * a worker takes it, runs work() without the lock, then either runs done()
 * itself (no loop) or puts the job on the `posted` list and hands it to
 * the loop with loop_post(). On the loop thread, job_posted() takes it off
 * that list and runs done(). The posted list exists for shutdown only:
 * whatever is still on it after the loops and the workers are joined was
 * never going to run, and workers_stop() runs it (see workers.h).
 *
 * Every field of the pool is protected by pool.mtx; the job's own fields
 * are written before it is queued and then only read, under the hand-off
 * of the mutex (queue) or of loop_post's own mutex (posted).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

#include "loop.h"
#include "util.h"
#include "workers.h"

struct job {
	struct job  *next;  /* queue, or posted list */
	struct job **prevp; /* posted list: the pointer to this job */
	struct loop *l;	    /* NULL: done runs on the worker */
	void (*work)(void *);
	void (*done)(struct loop *, void *);
	void *arg;
};

static struct pool {
	pthread_mutex_t	   mtx;
	pthread_cond_t	   cond;
	pthread_t	  *threads;
	unsigned	   nthreads;
	int		   accepting; /* worker_submit takes jobs */
	int		   stopping;  /* threads exit once the queue is empty */
	struct job	  *head, **tail;
	size_t		   queued, queue_max;
	struct job	  *posted; /* done posted to a loop, not yet run */
	unsigned long long ndone, nrejected;
} pool = {
	.mtx = PTHREAD_MUTEX_INITIALIZER,
	.cond = PTHREAD_COND_INITIALIZER,
	.tail = &pool.head,
};

/* On the loop's thread (or in workers_stop, the loops joined). */
static void
job_posted(struct loop *l, void *arg)
{
	struct job *j = arg;

	pthread_mutex_lock(&pool.mtx);
	*j->prevp = j->next;
	if (j->next != NULL)
		j->next->prevp = j->prevp;
	pthread_mutex_unlock(&pool.mtx);
	if (j->done != NULL)
		j->done(l, j->arg);
	free(j);
}

static void *
worker_main(void *unused)
{
	struct job *j;

	for (;;) {
		pthread_mutex_lock(&pool.mtx);
		while (pool.head == NULL && !pool.stopping)
			pthread_cond_wait(&pool.cond, &pool.mtx);
		if ((j = pool.head) == NULL) {
			/* Stopping, and nothing left to do. */
			pthread_mutex_unlock(&pool.mtx);
			return NULL;
		}
		if ((pool.head = j->next) == NULL)
			pool.tail = &pool.head;
		pool.queued--;
		pthread_mutex_unlock(&pool.mtx);

		j->work(j->arg);

		pthread_mutex_lock(&pool.mtx);
		pool.ndone++;
		if (j->l != NULL) {
			/* On the list before the loop can see it. */
			j->next = pool.posted;
			j->prevp = &pool.posted;
			if (pool.posted != NULL)
				pool.posted->prevp = &j->next;
			pool.posted = j;
		}
		pthread_mutex_unlock(&pool.mtx);

		if (j->l != NULL) {
			loop_post(j->l, job_posted, j);
		} else {
			if (j->done != NULL)
				j->done(NULL, j->arg);
			free(j);
		}
	}
}

/* Let the threads finish the queue, then join them (no lock held). */
static void
pool_join(void)
{
	unsigned i;

	pthread_mutex_lock(&pool.mtx);
	pool.accepting = 0;
	pool.stopping = 1;
	pthread_cond_broadcast(&pool.cond);
	pthread_mutex_unlock(&pool.mtx);
	for (i = 0; i < pool.nthreads; i++)
		pthread_join(pool.threads[i], NULL);
	free(pool.threads);
	pthread_mutex_lock(&pool.mtx);
	pool.threads = NULL;
	pool.nthreads = 0;
	pool.stopping = 0;
	pthread_mutex_unlock(&pool.mtx);
}

int
workers_start(unsigned n, size_t queue_max)
{
	sigset_t all, old;
	unsigned i;
	int	 rc = 0;

	if (n == 0) {
		errno = EINVAL;
		return -1;
	}
	pthread_mutex_lock(&pool.mtx);
	if (pool.threads != NULL) {
		pthread_mutex_unlock(&pool.mtx);
		errno = EBUSY;
		return -1;
	}
	pool.threads = xcalloc(n, sizeof(*pool.threads));
	pool.queue_max = queue_max;
	pool.accepting = 1;
	pool.stopping = 0;
	pthread_mutex_unlock(&pool.mtx);

	/* Workers inherit a full signal mask: signals go to the loops. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (i = 0; i < n; i++) {
		rc = pthread_create(&pool.threads[i], NULL, worker_main, NULL);
		if (rc != 0)
			break;
		pthread_setname_np(pool.threads[i], "moat-worker");
		pool.nthreads = i + 1;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		pool_join();
		errno = rc;
		return -1;
	}
	return 0;
}

void
workers_stop(void)
{
	struct job *j;

	pthread_mutex_lock(&pool.mtx);
	if (pool.threads == NULL) {
		pthread_mutex_unlock(&pool.mtx);
		return;
	}
	pthread_mutex_unlock(&pool.mtx);
	pool_join();
	/*
	 * The loops are joined (workers.h): what is still posted will never
	 * run there. Run it here; job_posted() unlinks it.
	 */
	for (;;) {
		pthread_mutex_lock(&pool.mtx);
		j = pool.posted;
		pthread_mutex_unlock(&pool.mtx);
		if (j == NULL)
			break;
		job_posted(j->l, j);
	}
}

int
worker_submit(struct loop *l, void (*work)(void *),
    void (*done)(struct loop *, void *), void *arg)
{
	struct job *j = xmalloc(sizeof(*j));

	j->next = NULL;
	j->prevp = NULL;
	j->l = l;
	j->work = work;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&pool.mtx);
	if (!pool.accepting ||
	    (pool.queue_max > 0 && pool.queued >= pool.queue_max)) {
		if (pool.accepting)
			pool.nrejected++;
		pthread_mutex_unlock(&pool.mtx);
		free(j);
		return -1;
	}
	*pool.tail = j;
	pool.tail = &j->next;
	pool.queued++;
	pthread_cond_signal(&pool.cond);
	pthread_mutex_unlock(&pool.mtx);
	return 0;
}

void
workers_stats(
    size_t *queued, unsigned long long *done, unsigned long long *rejected)
{
	pthread_mutex_lock(&pool.mtx);
	if (queued != NULL)
		*queued = pool.queued;
	if (done != NULL)
		*done = pool.ndone;
	if (rejected != NULL)
		*rejected = pool.nrejected;
	pthread_mutex_unlock(&pool.mtx);
}
