/*
 * log.h - one key=value line per event, to syslog (mail facility) or to
 * stderr in the foreground.
 *
 * Callers format "event=... key=value" themselves and escape every
 * untrusted string with log_escape() (escape.h) and quote it. Thread-safe:
 * each line is written with one write()/syslog() call.
 */
#ifndef MOAT_LOG_H
#define MOAT_LOG_H

#include <syslog.h>

enum log_target { LOG_TARGET_SYSLOG = 0, LOG_TARGET_STDERR };

void log_init(enum log_target, int debug);
/* Drop messages less important than prio (the moat tool: warnings). */
void log_set_max_prio(int prio);

struct event_base;
/*
 * Event-loop threads batch their stderr lines: what a loop iteration logs
 * goes out in one write() at its end (warnings and worse at once).
 * log_thread_start() on the loop's thread before its loop runs,
 * log_thread_stop() after.
 */
void log_thread_start(struct event_base *);
void log_thread_stop(void);
void log_msg(int prio, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int log_debug_enabled(void);

#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_err(...)  log_msg(LOG_ERR, __VA_ARGS__)
#define log_debug(...)                                                         \
	do {                                                                   \
		if (log_debug_enabled())                                       \
			log_msg(LOG_DEBUG, __VA_ARGS__);                       \
	} while (0)

#endif
