/*
 * tap.h - a minimal TAP producer for moat's unit tests.
 *
 * Each unit test is one program; every check is one TAP test point, so the
 * automake TAP driver (and .ci/run) counts individual checks, not programs.
 * Single-threaded; header-only on purpose (one test program, one copy).
 *
 *	ok(cond, "what was checked %d", n);
 *	is_int(got, want, "name");
 *	is_str(got, want, "name");
 *	return tap_done();
 */
#ifndef MOAT_TAP_H
#define MOAT_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_n, tap_failed;

static inline int
tap_vok(int cond, const char *fmt, va_list ap)
{
	tap_n++;
	if (!cond)
		tap_failed++;
	printf("%s %d - ", cond ? "ok" : "not ok", tap_n);
	vprintf(fmt, ap);
	printf("\n");
	fflush(stdout);
	return cond;
}

static inline int
ok(int cond, const char *fmt, ...)
{
	va_list ap;
	int	r;

	va_start(ap, fmt);
	r = tap_vok(cond, fmt, ap);
	va_end(ap);
	return r;
}

#define is_int(got, want, ...)                                                 \
	do {                                                                   \
		long long g_ = (long long)(got), w_ = (long long)(want);       \
		if (!ok(g_ == w_, __VA_ARGS__))                                \
			printf("#   got %lld, want %lld\n", g_, w_);           \
	} while (0)

#define is_str(got, want, ...)                                                 \
	do {                                                                   \
		const char *g_ = (got), *w_ = (want);                          \
		int	    eq_ = (g_ == NULL && w_ == NULL) ||                \
		    (g_ != NULL && w_ != NULL && strcmp(g_, w_) == 0);         \
		if (!ok(eq_, __VA_ARGS__))                                     \
			printf("#   got \"%s\", want \"%s\"\n",                \
			    g_ ? g_ : "(null)", w_ ? w_ : "(null)");           \
	} while (0)

#define is_mem(got, gotlen, want, wantlen, ...)                                \
	do {                                                                   \
		size_t gl_ = (gotlen), wl_ = (wantlen);                        \
		if (!ok(gl_ == wl_ && memcmp((got), (want), gl_) == 0,         \
			__VA_ARGS__))                                          \
			printf(                                                \
			    "#   got %zu bytes, want %zu bytes\n", gl_, wl_);  \
	} while (0)

static inline int
tap_done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

#endif
