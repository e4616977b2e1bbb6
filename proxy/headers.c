/*
 * headers.c - incremental RFC 5322 header section parser (RFC 5322 §2.2
 * header fields, §2.2.3 long header fields/folding, §3.6 field
 * definitions, §4.5.3 obs-optional: white space before the colon).
 *
 * Input is canonical content (CR LF lines, dot-unstuffed: the output of
 * dataframe.c) in chunks cut anywhere. Lines are classified at their
 * first bytes:
 *
 *  - a field line: one or more name characters (%d33-57 / %d59-126), then
 *    optional WSP (obsolete syntax; stripped from the name), then ":";
 *  - a continuation line: starts with SP or HTAB; it belongs to the field
 *    above it (folding), or, as the very first line of the content, it is
 *    the start of the body (as Postfix does: there is no field to fold);
 *  - the empty line: ends the header section and belongs to it;
 *  - anything else (no colon, a space inside the name, a control, an
 *    8-bit byte, a ":" with an empty name, ...): ends the header section
 *    and is the first line of the body.
 *
 * A field is complete when the next line turns out not to be a
 * continuation (or at hdrparse_finish()). The callback then gets the name
 * (without the obsolete WSP) and the raw value: everything after the colon
 * up to, not including, the field's final CR LF, folding CR LFs kept.
 * Both point into the caller's buffer and are valid during the call only.
 *
 * Limits: a field (name, colon, value, folding CR LFs; not the final CR LF)
 * longer than max_field gives HDR_E_FIELD_TOO_LONG; a field after
 * max_count fields gives HDR_E_TOO_MANY. A field's name is checked as it is
 * read, so a first line of more than max_field name characters with no
 * colon yet is also "too long" (we cannot buffer it to find out). After an
 * error no callback is made; the lines are still classified so the parser
 * finds the end of the header section, and count/received stop where the
 * error occurred. count and received count a field when its colon is seen.
 *
 * Chunk boundary inside the line that ends the header section: the bytes
 * of such a line that arrived in earlier chunks were already returned as
 * header bytes (the return value cannot take them back). In that case,
 * when in_body gets set, those bytes are left in buf[0..len) and `bytes`
 * is corrected: the body starts with buf[0..len) and continues at
 * p[ret..n). Otherwise len is 0 once in_body is set. (Not possible after an
 * error: nothing is buffered then.)
 *
 * Input that is not canonical (a CR not followed by LF, a bare LF) is
 * outside the contract; it is handled without harm: a CR not followed by LF
 * is part of the value, a CR at the start of a line not followed by LF ends
 * the header section, a bare LF is part of the value.
 *
 * Threading and ownership: pure, no I/O, no allocation. The buffer is
 * borrowed from the caller and must outlive the parser. One parser per
 * transaction, serialised by its owner.
 */
#include <string.h>
#include <strings.h>

#include "headers.h"

enum hdr_state {
	HS_BOL = 0, /* beginning of a line */
	HS_CR0,	    /* CR at beginning of line: the empty line? */
	HS_NAME,    /* in the field name */
	HS_NAMEWSP, /* WSP after the name, before the colon */
	HS_VALUE,   /* after the colon or in a continuation line */
	HS_CR,	    /* CR in a value line */
	HS_BODY	    /* end of the header section reached */
		    /* HS_COUNT */
};

static int
hdr_namechar(unsigned char c)
{
	return c >= 33 && c <= 126 && c != ':';
}

static int
hdr_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* Record an error: no more buffering or callbacks. */
static void
hdr_fail(struct hdrparse *h, enum hdr_error e)
{
	if (h->error == HDR_OK)
		h->error = e;
	h->len = 0;
}

/* Append n bytes of the current field; fails the parser on overflow. */
static void
hdr_put(struct hdrparse *h, const char *p, size_t n)
{
	if (h->error != HDR_OK)
		return;
	if (n > h->max_field - h->len) {
		hdr_fail(h, HDR_E_FIELD_TOO_LONG);
		return;
	}
	if (n > 0)
		memcpy(h->buf + h->len, p, n);
	h->len += n;
}

/*
 * Deliver the complete field in buf[0..len): the name is up to the first
 * colon with trailing WSP removed, the value follows the colon.
 */
static void
hdr_deliver(struct hdrparse *h)
{
	const char *colon;
	size_t	    namelen, len = h->len;

	h->len = 0;
	if (h->error != HDR_OK || len == 0)
		return;
	colon = memchr(h->buf, ':', len);
	if (colon == NULL)
		return; /* cannot happen: a field has its colon */
	namelen = (size_t)(colon - h->buf);
	while (namelen > 0 && hdr_wsp((unsigned char)h->buf[namelen - 1]))
		namelen--;
	if (h->field != NULL)
		h->field(h->arg, h->buf, namelen, colon + 1,
		    len - (size_t)(colon + 1 - h->buf));
}

/*
 * The colon of a new field was just buffered: count it (and Received:),
 * or fail when it is one too many.
 */
static void
hdr_newfield(struct hdrparse *h)
{
	const char *colon;
	size_t	    namelen;

	if (h->error != HDR_OK)
		return;
	if (h->count >= h->max_count) {
		hdr_fail(h, HDR_E_TOO_MANY);
		return;
	}
	h->count++;
	colon = memchr(h->buf, ':', h->len);
	namelen = colon != NULL ? (size_t)(colon - h->buf) : 0;
	while (namelen > 0 && hdr_wsp((unsigned char)h->buf[namelen - 1]))
		namelen--;
	if (namelen == 8 && strncasecmp(h->buf, "Received", 8) == 0)
		h->received++;
}

void
hdrparse_init(struct hdrparse *h, char *buf, size_t max_field, size_t max_count,
    hdr_field_fn field, void *arg)
{
	memset(h, 0, sizeof(*h));
	h->buf = buf;
	h->max_field = buf != NULL ? max_field : 0;
	h->max_count = max_count;
	h->field = field;
	h->arg = arg;
	h->state = HS_BOL;
}

/*
 * The line that started at lstart (NULL: in an earlier chunk) is body.
 * Returns the header bytes of this chunk, sets in_body and keeps the
 * earlier-chunk part of the line in buf[0..len) (see the file comment).
 */
static size_t
hdr_body(struct hdrparse *h, const char *in, const char *p, const char *lstart)
{
	size_t ret, early;

	h->state = HS_BODY;
	h->in_body = 1;
	if (lstart != NULL || h->error != HDR_OK) {
		ret = lstart != NULL ? (size_t)(lstart - in) : 0;
		h->len = 0;
	} else {
		/* buf holds the whole line so far, this chunk's part last. */
		ret = 0;
		early = (size_t)(p - in);
		h->len = h->len > early ? h->len - early : 0;
		h->bytes -= h->len;
	}
	h->bytes += ret;
	return ret;
}

size_t
hdrparse_feed(struct hdrparse *h, const char *in, size_t n)
{
	const char   *p = in, *end = in + n, *lstart = NULL, *cr;
	unsigned char c;

	if (h->in_body)
		return 0;
	while (p < end) {
		c = (unsigned char)*p;
		switch (h->state) {
		case HS_BOL:
			lstart = p;
			if (hdr_wsp(c)) {
				/* Continuation; as the first line: body. */
				if (h->count == 0 && h->error == HDR_OK)
					return hdr_body(h, in, p, lstart);
				hdr_put(h, "\r\n", 2);
				h->state = HS_VALUE;
				break;
			}
			hdr_deliver(h);
			if (c == '\r') {
				/* Kept only for a possible push-back. */
				if (h->error == HDR_OK && h->len < h->max_field)
					h->buf[h->len++] = '\r';
				h->state = HS_CR0;
				p++;
			} else if (hdr_namechar(c)) {
				h->state = HS_NAME;
			} else
				return hdr_body(h, in, p, lstart);
			break;
		case HS_CR0:
			if (c == '\n') {
				/* The empty line ends the section. */
				p++;
				h->state = HS_BODY;
				h->in_body = 1;
				h->len = 0;
				h->bytes += (size_t)(p - in);
				return (size_t)(p - in);
			}
			return hdr_body(h, in, p, lstart);
		case HS_NAME:
			if (hdr_namechar(c)) {
				hdr_put(h, p, 1);
				p++;
			} else if (c == ':' || hdr_wsp(c)) {
				hdr_put(h, p, 1);
				p++;
				if (c == ':') {
					hdr_newfield(h);
					h->state = HS_VALUE;
				} else
					h->state = HS_NAMEWSP;
			} else
				return hdr_body(h, in, p, lstart);
			break;
		case HS_NAMEWSP:
			if (hdr_wsp(c) || c == ':') {
				hdr_put(h, p, 1);
				p++;
				if (c == ':') {
					hdr_newfield(h);
					h->state = HS_VALUE;
				}
			} else
				return hdr_body(h, in, p, lstart);
			break;
		case HS_VALUE:
			cr = memchr(p, '\r', (size_t)(end - p));
			if (cr == NULL)
				cr = end;
			hdr_put(h, p, (size_t)(cr - p));
			p = cr;
			if (p < end) {
				h->state = HS_CR;
				p++;
			}
			break;
		case HS_CR:
			if (c == '\n') {
				h->state = HS_BOL;
				p++;
			} else {
				/* Not canonical: the CR is value. */
				hdr_put(h, "\r", 1);
				h->state = HS_VALUE;
			}
			break;
		default:
			return 0;
		}
	}
	h->bytes += n;
	return n;
}

void
hdrparse_finish(struct hdrparse *h)
{
	if (h->in_body)
		return;
	switch (h->state) {
	case HS_BOL:
	case HS_VALUE:
	case HS_CR:
		/* A pending CR without LF is dropped with the final CR LF. */
		hdr_deliver(h);
		h->len = 0;
		break;
	default:
		/*
		 * A line started but never became a field (HS_NAME, ...):
		 * body, and already returned as header bytes.
		 */
		if (h->error == HDR_OK)
			h->bytes -= h->len < h->bytes ? h->len : h->bytes;
		else
			h->len = 0;
		break;
	}
	h->state = HS_BODY;
	h->in_body = 1;
}
