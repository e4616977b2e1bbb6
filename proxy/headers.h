/*
 * headers.h - incremental RFC 5322 header section parser (RFC 5322 §2.2,
 * §2.2.3 folding, §3.6) over canonical message content (CRLF lines,
 * dot-unstuffed, as dataframe.c emits it), in arbitrary chunks.
 *
 * It finds the field boundaries, hands each complete field to a callback
 * (name, and the raw value after the colon including folding CRLFs but not
 * the final CRLF), counts fields, Received: fields and bytes, and stops at
 * the end of the header section: the empty line, or (as Postfix does) the
 * first line that is neither a field ("name:" with printable, non-space,
 * non-colon name chars) nor a continuation line (starts with SP or HTAB);
 * that line belongs to the body.
 *
 * Bounded: one field may not exceed the caller's buffer (max_field), the
 * number of fields max_count; overflow sets `error` and the parser then
 * skips to the end of the header section without calling back (the session
 * answers 552 at end of data). Pure: no I/O, no allocation; the buffer is
 * the caller's. One parser per transaction; not thread-safe.
 */
#ifndef MOAT_HEADERS_H
#define MOAT_HEADERS_H

#include <stddef.h>

enum hdr_error { HDR_OK = 0, HDR_E_FIELD_TOO_LONG, HDR_E_TOO_MANY };

typedef void (*hdr_field_fn)(void *arg, const char *name, size_t namelen,
    const char *value, size_t valuelen);

struct hdrparse {
	char	      *buf; /* caller's, max_field bytes */
	size_t	       max_field;
	size_t	       max_count;
	size_t	       len;	 /* bytes of the current field */
	size_t	       count;	 /* fields seen */
	size_t	       received; /* Received: fields seen */
	size_t	       bytes;	 /* header section bytes consumed */
	int	       in_body;	 /* end of header section reached */
	enum hdr_error error;
	int	       state; /* private */
	hdr_field_fn   field;
	void	      *arg;
};

void hdrparse_init(struct hdrparse *, char *buf, size_t max_field,
    size_t max_count, hdr_field_fn field, void *arg);

/*
 * Feed content bytes. Returns how many bytes belong to the header section
 * (including the empty separator line, if any). When that is less than n,
 * in_body is set and p[ret..n) is body. Once in_body is set, returns 0.
 */
size_t hdrparse_feed(struct hdrparse *, const char *p, size_t n);

/*
 * End of content: a pending field is delivered and in_body is set (a
 * message may consist of headers only).
 */
void hdrparse_finish(struct hdrparse *);

#endif
