/*
 * util.c - never-failing allocation, fatal(), monotonic clock, ASCII
 * comparisons. Thread-safe.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

void *
xmalloc(size_t n)
{
	void *p;

	if ((p = malloc(n ? n : 1)) == NULL)
		fatal("malloc %zu: out of memory", n);
	return p;
}

void *
xcalloc(size_t n, size_t sz)
{
	void *p;

	if ((p = calloc(n ? n : 1, sz ? sz : 1)) == NULL)
		fatal("calloc %zu*%zu: out of memory", n, sz);
	return p;
}

void *
xrealloc(void *o, size_t n)
{
	void *p;

	if ((p = realloc(o, n ? n : 1)) == NULL)
		fatal("realloc %zu: out of memory", n);
	return p;
}

char *
xstrdup(const char *s)
{
	char *p;

	if ((p = strdup(s)) == NULL)
		fatal("strdup: out of memory");
	return p;
}

char *
xstrndup(const char *s, size_t n)
{
	char *p;

	if ((p = strndup(s, n)) == NULL)
		fatal("strndup: out of memory");
	return p;
}

void
strfmt(char *out, size_t outlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(out, outlen, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	char	buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_msg(LOG_CRIT, "event=fatal msg=\"%s\"", buf);
	abort();
}

uint64_t
now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

int
ascii_strncasecmp(const char *a, const char *b, size_t n)
{
	int ca, cb;

	for (; n > 0; n--, a++, b++) {
		ca = ascii_lower((unsigned char)*a);
		cb = ascii_lower((unsigned char)*b);
		if (ca != cb)
			return ca - cb;
		if (ca == '\0')
			return 0;
	}
	return 0;
}

int
ascii_strcasecmp(const char *a, const char *b)
{
	return ascii_strncasecmp(a, b, (size_t)-1);
}

int
write_full(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	ssize_t	    w;

	while (n > 0) {
		w = write(fd, p, n);
		if (w == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}
