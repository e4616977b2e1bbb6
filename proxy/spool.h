/*
 * spool.h - one message, in the canonical wire form moat sends upstream
 * (CRLF lines, dot-stuffed, ending with ".\r\n"): held in memory up to a
 * threshold, then in an unlinked temporary file (nothing to clean up after
 * a crash).
 *
 * Owned by one transaction on one loop thread. Readers get spans by
 * offset; a span is valid until the next spool call.
 */
#ifndef MOAT_SPOOL_H
#define MOAT_SPOOL_H

#include <stddef.h>
#include <sys/types.h>

struct evbuffer;

struct spool {
	struct evbuffer *mem;
	int		 fd; /* -1 while in memory */
	size_t		 len;
	size_t		 threshold;
	const char	*dir;	/* borrowed from the config */
	char		*rbuf;	/* read buffer for file spans */
	int		 error; /* errno of a failed write */
};

void spool_init(struct spool *, const char *dir, size_t threshold);
/* 0, or -1 (errno in spool->error; the transaction must tempfail). */
int spool_write(struct spool *, const char *, size_t);
/*
 * A contiguous span of content starting at off, at most max bytes.
 * Returns its length (0 at the end) or -1 on a read error.
 */
ssize_t spool_span(struct spool *, size_t off, size_t max, const char **p);
/*
 * Append the content from byte off on to out without copying it: memory
 * chains are moved (the spool's memory is consumed), a file is added as a
 * file segment (sent with sendfile). 0, or -1 on error.
 */
int  spool_move_to(struct spool *, struct evbuffer *out, size_t off);
/*
 * A new descriptor (close-on-exec, owned by the caller) from which another
 * process can read the content from offset 0 for spool->len bytes, and
 * through which it cannot change it: a file spool is reopened read-only
 * through /proc/self/fd; a memory spool is copied into a memfd that is
 * then sealed against writes, growth and shrinking. -1 with errno set.
 */
int  spool_reader_fd(struct spool *);
void spool_free(struct spool *);

#define SPOOL_SPAN_MAX (64 * 1024)

#endif
