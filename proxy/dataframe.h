/*
 * dataframe.h - SMTP DATA and BDAT framing (RFC 5321 §4.1.1.4, §4.5.2;
 * RFC 3030 §2-3), and the reverse: canonical re-dot-stuffing toward the
 * upstream.
 *
 * This is the module that enforces invariant 2 (no smuggling). Input is the
 * raw byte stream from the client; output is canonical content: CRLF line
 * ends only, dot-unstuffed. The only end of DATA is CR LF "." CR LF where
 * both line ends are real CR LF (the data starts at beginning of line).
 * A bare LF, a bare CR or a NUL is either refused (recorded in flags; the
 * framer keeps consuming to the real end so the session stays in sync and
 * can answer 5xx) or normalised (bare LF and bare CR become CRLF, NUL is
 * dropped). A "." line ended by a bare LF or bare CR never ends the data.
 *
 * Pure state machine: no I/O, no allocation. Output goes to an emit
 * callback in spans that point into the input (or into constant strings),
 * valid only during the call. One framer per transaction; not thread-safe.
 */
#ifndef MOAT_DATAFRAME_H
#define MOAT_DATAFRAME_H

#include <stddef.h>

enum df_mode {
	DF_MODE_DATA = 0, /* dot-unstuff, end at CRLF.CRLF */
	DF_MODE_BDAT	  /* no dot handling; caller says where it ends */
};

enum df_policy {
	DF_REJECT = 0, /* record the fault, emit nothing for it */
	DF_NORMALIZE   /* bare CR/LF -> CRLF; NUL dropped */
};

#define DF_F_BARE_LF 0x01 /* saw LF not preceded by CR */
#define DF_F_BARE_CR 0x02 /* saw CR not followed by LF */
#define DF_F_NUL     0x04 /* saw NUL */

typedef void (*df_emit_fn)(void *arg, const char *p, size_t n);

struct dataframe {
	enum df_mode   mode;
	enum df_policy bare_policy; /* bare CR and bare LF */
	enum df_policy nul_policy;
	unsigned       flags;	  /* DF_F_*, what was seen */
	int	       done;	  /* end of data seen (DATA mode) */
	int	       state;	  /* private */
	size_t	       bytes_out; /* content bytes emitted so far */
	df_emit_fn     emit;
	void	      *arg;
};

void dataframe_init(struct dataframe *, enum df_mode, enum df_policy bare,
    enum df_policy nul, df_emit_fn emit, void *arg);

/*
 * Consume bytes. In DATA mode stops right after the terminating
 * CRLF.CRLF and returns the number of bytes consumed (the rest belongs to
 * the next command). In BDAT mode consumes everything. Under DF_REJECT
 * offending bytes set flags and content is still emitted without them, so
 * the caller may stop storing once flags != 0.
 */
size_t dataframe_feed(struct dataframe *, const char *in, size_t len);

/*
 * BDAT LAST: flush pending state (a trailing CR is a bare CR) and, when the
 * content does not end in CRLF (and is not empty), emit a final CRLF so the
 * message can be relayed with DATA. Sets done.
 */
void dataframe_finish(struct dataframe *);

/*
 * Re-dot-stuffing encoder for the upstream: content (CRLF lines, no
 * stuffing, as produced above) in, wire bytes out. dotstuff_feed doubles a
 * '.' at the beginning of every line; dotstuff_end emits the terminating
 * ".\r\n" (content produced by the framer always ends with CRLF or is
 * empty; if not, dotstuff_end first emits CRLF).
 */
struct dotstuff {
	int	   bol; /* at beginning of line */
	int	   cr;	/* last byte was CR */
	df_emit_fn emit;
	void	  *arg;
};

/*
 * Undo SMTP dot-stuffing of [p, p+len) in place (RFC 5321 §4.5.2) and drop
 * the final ".\r\n". Returns the content length, or -1 when the content
 * does not end with exactly one end-of-data line. Any thread.
 */
long long dataframe_unstuff(char *p, size_t len);

void dotstuff_init(struct dotstuff *, df_emit_fn emit, void *arg);
void dotstuff_feed(struct dotstuff *, const char *p, size_t n);
void dotstuff_end(struct dotstuff *);

#endif
