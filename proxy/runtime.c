/*
 * runtime.c - configuration generations and their reference counts (see
 * runtime.h). The current pointer is guarded by a mutex (taken once per
 * accepted session and once per reload); the counts are atomics. The last
 * reference to a generation hands its freeing to the worker pool.
 */
#include <pthread.h>
#include <stdlib.h>

#include "chain.h"
#include "config.h"
#include "log.h"
#include "policy.h"
#include "runtime.h"
#include "scanner.h"
#include "tls.h"
#include "util.h"
#include "workers.h"

static pthread_mutex_t current_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct runtime *current;
static unsigned	       generations;

struct runtime *
runtime_build(struct config *cf)
{
	struct tls_server *tls;

	/* Certificates first: a broken one keeps the running generation. */
	if (tls_server_build(cf, &tls) == -1)
		return NULL;
	return runtime_build_with(cf, tls);
}

struct runtime *
runtime_build_with(struct config *cf, struct tls_server *tls)
{
	struct runtime *rt;
	struct policy  *pol;
	struct chain   *chain;

	if ((pol = policy_new(cf)) == NULL) {
		tls_server_free(tls);
		return NULL;
	}
	scanner_config_begin(); /* the antivirus filters' init says again */
	if ((chain = chain_new(cf, pol)) == NULL) {
		policy_free(pol);
		tls_server_free(tls);
		return NULL;
	}
	policy_bind_chain(pol, chain);
	rt = xcalloc(1, sizeof(*rt));
	atomic_init(&rt->refs, 1);
	rt->cf = cf;
	rt->policy = pol;
	rt->chain = chain;
	rt->tls = tls;
	return rt;
}

static void
runtime_free(struct runtime *rt)
{
	if (rt->generation > 0) { /* it served sessions */
		log_info("event=config-retired generation=%u", rt->generation);
		chain_log_stats(rt->chain);
	}
	chain_free(rt->chain);
	policy_free(rt->policy);
	tls_server_free(rt->tls);
	config_free(rt->cf);
	free(rt);
}

void
runtime_install(struct runtime *rt)
{
	struct runtime *old;

	pthread_mutex_lock(&current_mtx);
	rt->generation = ++generations;
	old = current;
	current = rt;
	pthread_mutex_unlock(&current_mtx);
	if (old != NULL)
		runtime_release(old);
}

struct runtime *
runtime_current_acquire(void)
{
	struct runtime *rt;

	pthread_mutex_lock(&current_mtx);
	rt = current;
	if (rt != NULL)
		atomic_fetch_add(&rt->refs, 1);
	pthread_mutex_unlock(&current_mtx);
	return rt;
}

static void
runtime_free_job(void *arg)
{
	runtime_free(arg);
}

struct runtime *
runtime_acquire(struct runtime *rt)
{
	atomic_fetch_add(&rt->refs, 1);
	return rt;
}

void
runtime_release(struct runtime *rt)
{
	if (rt == NULL || atomic_fetch_sub(&rt->refs, 1) != 1)
		return;
	/*
	 * The last reference often goes with a session, on a loop thread:
	 * filter fini(), dlclose() and large lists are no work for a loop.
	 * Without a running pool (start-up, shutdown, tools) free here.
	 */
	if (worker_submit(NULL, runtime_free_job, NULL, rt) == -1)
		runtime_free(rt);
}
