/*
 * scand_engine.c - moat-scand's libclamav engine: the first load and every
 * reload run on one loader thread, beside the engine in use, so the I/O
 * loop never waits for a load and scans never stop during a reload.
 *
 * The current engine is a pointer under mu. A scan takes it with
 * engine_get(), which adds a libclamav reference (cl_engine_addref) under
 * mu, and drops it with engine_put() (cl_engine_free). A successful reload
 * swaps the pointer under mu and drops the loader's reference to the old
 * engine, so the old one is freed by whichever of its scans ends last.
 * A failed reload keeps the old engine. Reload requests coalesce: one
 * arriving during a load makes exactly one more load after it.
 *
 * Threads: engine_init() before any thread; engine_reload(), engine_get(),
 * engine_put(), engine_state() from any thread; the loader thread owns the
 * engine under construction until it publishes it.
 */
#include <clamav.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "scand.h"

static pthread_mutex_t	 mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	 cv = PTHREAD_COND_INITIALIZER;
static pthread_t	 loader;
static int		 loader_started;
static struct cl_engine *cur;		  /* under mu; one reference is ours */
static uint64_t		 cur_sigs;	  /* under mu */
static uint64_t		 cur_gen;	  /* under mu; 0 until the first load */
static int		 wanted;	  /* under mu: a load is asked for */
static int		 loading;	  /* under mu */
static int		 stopping;	  /* under mu */
static char		 load_error[200]; /* under mu: why there is no engine */

/* libclamav's own messages go to our log (warnings and errors). */
static void
clamav_msg(enum cl_msg sev, const char *full, const char *msg, void *ctx)
{
	char   esc[600];
	size_t n;
	char   line[300];

	if (sev == CL_MSG_INFO_VERBOSE)
		return;
	n = strlen(msg);
	if (n >= sizeof(line))
		n = sizeof(line) - 1;
	memcpy(line, msg, n);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	line[n] = '\0';
	slog("event=clamav level=%s msg=\"%s\"",
	    sev == CL_MSG_ERROR ? "error" : "warning",
	    slog_esc(line, esc, sizeof(esc)));
}

int
engine_init(void)
{
	cl_error_t rc;

	cl_set_clcb_msg(clamav_msg);
	if ((rc = cl_init(CL_INIT_DEFAULT)) != CL_SUCCESS) {
		slog("event=fatal error=\"cl_init: %s\"", cl_strerror(rc));
		return -1;
	}
	return 0;
}

static uint64_t
ms_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (uint64_t)(t1.tv_sec - t0->tv_sec) * 1000 +
	    (uint64_t)((t1.tv_nsec - t0->tv_nsec) / 1000000);
}

/* Build and compile a new engine; NULL with err set on failure. */
static struct cl_engine *
load(unsigned *sigs, char *err, size_t errsz)
{
	const struct scand_opts *o = &scand_opts;
	struct cl_engine	*e;
	cl_error_t		 rc;

	*sigs = 0;
	if ((e = cl_engine_new()) == NULL) {
		snprintf(err, errsz, "cl_engine_new failed");
		return NULL;
	}
	if ((rc = cl_engine_set_num(e, CL_ENGINE_MAX_SCANSIZE,
		 (long long)o->max_scansize)) != CL_SUCCESS ||
	    (rc = cl_engine_set_num(e, CL_ENGINE_MAX_FILESIZE,
		 (long long)o->max_filesize)) != CL_SUCCESS ||
	    (rc = cl_engine_set_num(
		 e, CL_ENGINE_MAX_RECURSION, o->max_recursion)) != CL_SUCCESS ||
	    (rc = cl_engine_set_num(e, CL_ENGINE_MAX_FILES, o->max_files)) !=
		CL_SUCCESS ||
	    (rc = cl_engine_set_num(
		 e, CL_ENGINE_MAX_SCANTIME, o->max_scantime)) != CL_SUCCESS ||
	    (o->tmpdir != NULL &&
		(rc = cl_engine_set_str(e, CL_ENGINE_TMPDIR, o->tmpdir)) !=
		    CL_SUCCESS)) {
		snprintf(err, errsz, "engine settings: %s", cl_strerror(rc));
		goto fail;
	}
	scan_setup_engine(e);
	if ((rc = cl_load(o->dbpath, e, sigs, CL_DB_STDOPT)) != CL_SUCCESS) {
		snprintf(err, errsz, "cl_load: %s", cl_strerror(rc));
		goto fail;
	}
	if ((rc = cl_engine_compile(e)) != CL_SUCCESS) {
		snprintf(err, errsz, "cl_engine_compile: %s", cl_strerror(rc));
		goto fail;
	}
	return e;
fail:
	cl_engine_free(e);
	return NULL;
}

static void *
loader_main(void *arg)
{
	struct cl_engine *e, *old;
	struct timespec	  t0;
	unsigned	  sigs;
	uint64_t	  gen;
	char		  err[sizeof(load_error)], esc[2 * sizeof(err)];
	int		  first;

	pthread_mutex_lock(&mu);
	for (;;) {
		while (!wanted && !stopping)
			pthread_cond_wait(&cv, &mu);
		if (stopping)
			break;
		wanted = 0;
		loading = 1;
		first = cur == NULL;
		pthread_mutex_unlock(&mu);

		clock_gettime(CLOCK_MONOTONIC, &t0);
		err[0] = '\0';
		e = load(&sigs, err, sizeof(err));

		pthread_mutex_lock(&mu);
		loading = 0;
		old = NULL;
		if (e != NULL) {
			old = cur;
			cur = e;
			cur_sigs = sigs;
			gen = ++cur_gen;
			load_error[0] = '\0';
		} else {
			gen = cur_gen;
			if (cur == NULL)
				snprintf(load_error, sizeof(load_error),
				    "database failed to load: %s", err);
		}
		pthread_cond_broadcast(&cv);
		pthread_mutex_unlock(&mu);

		if (old != NULL)
			cl_engine_free(old); /* freed after its last scan */
		if (e != NULL)
			slog("event=%s signatures=%u generation=%llu ms=%llu",
			    first ? "loaded" : "reloaded", sigs,
			    (unsigned long long)gen,
			    (unsigned long long)ms_since(&t0));
		else
			slog("event=%s error=\"%s\" generation=%llu ms=%llu%s",
			    first ? "load_failed" : "reload_failed",
			    slog_esc(err, esc, sizeof(esc)),
			    (unsigned long long)gen,
			    (unsigned long long)ms_since(&t0),
			    first ? " engine=none" : " engine=kept");
		pthread_mutex_lock(&mu);
	}
	pthread_mutex_unlock(&mu);
	return NULL;
}

int
engine_start(void)
{
	int rc;

	pthread_mutex_lock(&mu);
	wanted = 1;
	snprintf(load_error, sizeof(load_error), "engine loading");
	pthread_mutex_unlock(&mu);
	if ((rc = pthread_create(&loader, NULL, loader_main, NULL)) != 0) {
		slog("event=fatal error=\"loader thread: %s\"", strerror(rc));
		return -1;
	}
	loader_started = 1;
	return 0;
}

void
engine_reload(const char *why)
{
	pthread_mutex_lock(&mu);
	slog("event=reload reason=%s%s", why, loading ? " queued=yes" : "");
	wanted = 1;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

struct cl_engine *
engine_get(uint64_t *sigs, uint64_t *gen, char *why, size_t whysz)
{
	struct cl_engine *e;

	pthread_mutex_lock(&mu);
	if ((e = cur) != NULL) {
		cl_engine_addref(e);
		*sigs = cur_sigs;
		*gen = cur_gen;
	} else
		snprintf(
		    why, whysz, "%s", loading ? "engine loading" : load_error);
	pthread_mutex_unlock(&mu);
	return e;
}

void
engine_put(struct cl_engine *e)
{
	cl_engine_free(e);
}

int
engine_state(uint64_t *sigs, uint64_t *gen, char *why, size_t whysz)
{
	int ready;

	pthread_mutex_lock(&mu);
	ready = cur != NULL;
	*sigs = cur_sigs;
	*gen = cur_gen;
	if (!ready)
		snprintf(
		    why, whysz, "%s", loading ? "engine loading" : load_error);
	pthread_mutex_unlock(&mu);
	return ready;
}

int
engine_ready(void)
{
	int r;

	pthread_mutex_lock(&mu);
	r = cur != NULL;
	pthread_mutex_unlock(&mu);
	return r;
}

int
engine_busy(void)
{
	int b;

	pthread_mutex_lock(&mu);
	b = loading;
	pthread_mutex_unlock(&mu);
	return b;
}

void
engine_stop(void)
{
	struct cl_engine *e;

	pthread_mutex_lock(&mu);
	stopping = 1;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
	if (loader_started)
		pthread_join(loader, NULL);
	pthread_mutex_lock(&mu);
	e = cur;
	cur = NULL;
	pthread_mutex_unlock(&mu);
	if (e != NULL)
		cl_engine_free(e);
}
