/*
 * log.c - key=value event logging to syslog(LOG_MAIL) or stderr.
 *
 * The target is chosen once at start-up, before threads exist; after that
 * the module is read-only and safe from every thread (one write per line).
 */
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static enum log_target log_target = LOG_TARGET_STDERR;
static int	       log_debug_on;
static int	       log_max_prio = LOG_DEBUG;
static int	       log_pid;

#define LOG_BATCH 16384

struct log_batch {
	struct event *flush;
	size_t	      len;
	char	      buf[LOG_BATCH];
};

static __thread struct log_batch *batch;

static void
batch_write(void)
{
	if (batch != NULL && batch->len > 0) {
		(void)!write(STDERR_FILENO, batch->buf, batch->len);
		batch->len = 0;
	}
}

static void
batch_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	batch_write();
}

void
log_thread_start(struct event_base *base)
{
	if (log_target != LOG_TARGET_STDERR || batch != NULL)
		return;
	batch = calloc(1, sizeof(*batch));
	if (batch != NULL)
		batch->flush = event_new(base, -1, 0, batch_flush_cb, NULL);
}

void
log_thread_stop(void)
{
	if (batch == NULL)
		return;
	batch_write();
	event_free(batch->flush);
	free(batch);
	batch = NULL;
}

void
log_init(enum log_target target, int debug)
{
	log_target = target;
	log_debug_on = debug;
	log_pid = (int)getpid();
	if (target == LOG_TARGET_SYSLOG)
		openlog("moatd", LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void
log_set_max_prio(int prio)
{
	log_max_prio = prio;
}

int
log_debug_enabled(void)
{
	return log_debug_on;
}

void
log_msg(int prio, const char *fmt, ...)
{
	static const char *const names[] = { "emerg", "alert", "crit", "err",
		"warning", "notice", "info", "debug" };
	char			 line[8192];
	struct timespec		 ts;
	struct tm		 tm;
	va_list			 ap;
	int			 n, m;

	if (prio > log_max_prio)
		return;
	va_start(ap, fmt);
	if (log_target == LOG_TARGET_SYSLOG) {
		vsyslog(prio, fmt, ap);
		va_end(ap);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line),
	    "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ moatd[%d] %s: ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	    tm.tm_sec, ts.tv_nsec / 1000000, log_pid, names[prio & 7]);
	m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += m;
	if ((size_t)n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	if (batch == NULL || prio <= LOG_WARNING) {
		batch_write(); /* keep the order */
		(void)!write(STDERR_FILENO, line, n);
		return;
	}
	if (batch->len + (size_t)n > sizeof(batch->buf))
		batch_write();
	if (batch->len == 0)
		event_active(batch->flush, EV_TIMEOUT, 1);
	memcpy(batch->buf + batch->len, line, (size_t)n);
	batch->len += (size_t)n;
}
