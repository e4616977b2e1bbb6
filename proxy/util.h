/*
 * util.h - allocation that never returns NULL, fatal errors, small helpers.
 *
 * xmalloc & co. abort the process on exhaustion (as OpenSMTPD's and
 * Postfix's do): a daemon that cannot allocate a few bytes cannot keep its
 * promises, and per-session memory is bounded by limits elsewhere.
 * Thread-safe.
 */
#ifndef MOAT_UTIL_H
#define MOAT_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

#define nitems(a) (sizeof(a) / sizeof((a)[0]))

void *xmalloc(size_t);
void *xcalloc(size_t, size_t);
void *xrealloc(void *, size_t);
char *xstrdup(const char *);
char *xstrndup(const char *, size_t);

void fatal(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));

/*
 * snprintf whose cutting is intended (bounded messages and details): the
 * compiler's truncation warnings stay meaningful for the other calls.
 */
void strfmt(char *out, size_t outlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* write(2) all of buf, retrying on EINTR and short writes; 0 or -1. */
int write_full(int fd, const void *buf, size_t n);

/* Monotonic time in microseconds. */
uint64_t now_usec(void);

static inline struct timeval
tv_sec(long sec)
{
	struct timeval tv = { sec, 0 };
	return tv;
}

static inline struct timeval
tv_msec(long ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	return tv;
}

/* ASCII-only helpers, independent of the locale. */
static inline int
ascii_lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

int ascii_strncasecmp(const char *, const char *, size_t);
int ascii_strcasecmp(const char *, const char *);

/* FNV-1a over n bytes, continuing from h (start with FNV1A_INIT). */
#define FNV1A_INIT 2166136261u
static inline uint32_t
fnv1a(uint32_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	while (n-- > 0)
		h = (h ^ *b++) * 16777619u;
	return h;
}

#endif
