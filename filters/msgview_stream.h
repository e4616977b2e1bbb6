/*
 * msgview_stream.h - a read-only GMimeStream over a caller's buffer (no
 * copy); see msgview_stream.c. One thread per stream.
 */
#ifndef MOAT_MSGVIEW_STREAM_H
#define MOAT_MSGVIEW_STREAM_H

#include <stddef.h>

#include <gmime/gmime.h>

/* A stream over buf[0..len); buf must outlive it and its substreams. */
GMimeStream *mv_stream_new(const char *buf, size_t len);

/*
 * The bytes a stream (or substream) made by mv_stream_new() over `buf`
 * covers: 0 with *p and *n set, or -1 for any other stream.
 */
int mv_stream_span(GMimeStream *, const char *buf, const char **p, size_t *n);

#endif
