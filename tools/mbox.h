/*
 * mbox.h - splitting an mbox (RFC 4155, the "mboxrd" quoting) into its
 * messages, for moat learn.
 *
 * Pure functions over a buffer the caller owns (typically a mapped
 * file); no allocation; thread-safe.
 */
#ifndef MOAT_MBOX_H
#define MOAT_MBOX_H

#include <stddef.h>

struct mbox_iter {
	const char *p, *end;
};

/*
 * Is line[0..len) (without its line end) a "From " separator line:
 * "From ", a sender, and an asctime-like date (a hh:mm time and a
 * four-digit year)? Body lines that merely start with "From " are not.
 */
int mbox_from_line(const char *line, size_t len);

/* Does the buffer start with a separator line (is it an mbox)? */
int mbox_is_mbox(const char *buf, size_t len);

void mbox_init(struct mbox_iter *, const char *buf, size_t len);

/*
 * The next message: *msg points into the buffer after its separator
 * line, *len bytes up to the next separator (the empty line in front of
 * it excluded), still quoted. 1, or 0 at the end. Text before the first
 * separator counts as a message only if it is not blank.
 */
int mbox_next(struct mbox_iter *, const char **msg, size_t *len);

/*
 * Undo mboxrd quoting: a line of one or more '>' and then "From " loses
 * one '>'. out must hold len bytes (the result is never longer); returns
 * the result's length. in and out may not overlap.
 */
size_t mbox_unquote(const char *in, size_t len, char *out);

#endif
