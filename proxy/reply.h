/*
 * reply.h - SMTP reply parsing (RFC 5321 §4.2, multi-line replies §4.2.1;
 * enhanced status codes RFC 3463/2034) and EHLO capability handling
 * (RFC 5321 §4.1.1.1, RFC 1869), including the intersection that decides
 * what moat advertises to its clients.
 *
 * Pure code: no I/O, no allocation, no globals; safe from any thread.
 * A struct smtp_reply owns its text in a fixed buffer (bounded by
 * REPLY_TEXT_MAX and REPLY_LINES_MAX); an oversized reply is an error, so an
 * upstream cannot make moat buffer without bound.
 */
#ifndef MOAT_REPLY_H
#define MOAT_REPLY_H

#include <stddef.h>
#include <stdint.h>

#define REPLY_LINE_MAX	1024 /* bytes per line, without CRLF */
#define REPLY_LINES_MAX 64
#define REPLY_TEXT_MAX	8192 /* all lines together */

enum reply_status {
	REPLY_MORE = 0, /* a continuation line was added; feed more */
	REPLY_DONE,	/* the last line was added; reply complete */
	REPLY_ERROR	/* malformed, inconsistent code, or too big */
};

struct smtp_reply {
	int    code; /* 200..599 */
	size_t nlines;
	/* Lines without CRLF, each NUL-terminated, back to back in text;
	 * line i starts at text + off[i]; each line keeps "250-" / "250 ". */
	uint16_t off[REPLY_LINES_MAX];
	char	 text[REPLY_TEXT_MAX];
	size_t	 len; /* bytes used in text */
};

void reply_init(struct smtp_reply *);

/*
 * Add one line (without CRLF; need not be NUL-terminated). Requires three
 * digits, first 2-5, then ' ' (last line), '-' (continuation) or end of line
 * (treated as last line). All lines of a reply must carry the same code.
 */
enum reply_status reply_add_line(
    struct smtp_reply *, const char *line, size_t len);

/* Line i's text after "NNN-" / "NNN " ("" if none). */
const char *reply_line_text(const struct smtp_reply *, size_t i);

/*
 * Write the whole reply in wire form (each line + CRLF) into out; returns
 * bytes written or -1 if it does not fit.
 */
int reply_format(const struct smtp_reply *, char *out, size_t outsz);

/*
 * Extract the enhanced status code ("2.1.0") at the start of line 0's
 * text, if present and its class digit matches the reply's first digit.
 * Returns 0 and fills enh (>= 16 bytes) or -1.
 */
int reply_enhanced(const struct smtp_reply *, char *enh, size_t enhsz);

/* EHLO keywords moat understands (RFC names). */
#define CAPA_PIPELINING		 0x0001
#define CAPA_SIZE		 0x0002
#define CAPA_8BITMIME		 0x0004
#define CAPA_SMTPUTF8		 0x0008
#define CAPA_DSN		 0x0010
#define CAPA_ENHANCEDSTATUSCODES 0x0020
#define CAPA_CHUNKING		 0x0040
#define CAPA_BINARYMIME		 0x0080
#define CAPA_STARTTLS		 0x0100
#define CAPA_AUTH		 0x0200
#define CAPA_XCLIENT		 0x0400
#define CAPA_XFORWARD		 0x0800
#define CAPA_VRFY		 0x1000 /* not an EHLO keyword; reserved */

#define CAPA_AUTH_MAX  256
#define CAPA_XATTR_MAX 256

struct capa {
	uint32_t flags;			   /* CAPA_* */
	uint64_t size;			   /* SIZE value; 0 = no limit given */
	char	 auth[CAPA_AUTH_MAX];	   /* mechanisms, space separated */
	char	 xclient[CAPA_XATTR_MAX];  /* XCLIENT attributes */
	char	 xforward[CAPA_XATTR_MAX]; /* XFORWARD attributes */
};

/*
 * Parse an EHLO reply (code 250; line 0 is the greeting and is skipped).
 * Keywords are case-insensitive; unknown keywords are ignored; "AUTH=LOGIN"
 * (old form) counts as AUTH. Returns 0, or -1 if the reply is not a 250.
 */
int capa_parse(const struct smtp_reply *, struct capa *);

/*
 * Build moat's own EHLO reply to a client into out (wire form, CRLF line
 * ends, "250-" continuation, "250 " last line). First line:
 * "250-<hostname>" (or "250 <hostname>" when nothing follows).
 * Advertised, in this order:
 *   PIPELINING            always (moat implements it toward the client)
 *   SIZE n                n = smaller non-zero of own_size and up->size
 *   8BITMIME              if up has it
 *   SMTPUTF8              if up has it
 *   DSN                   if up has it
 *   ENHANCEDSTATUSCODES   if up has it
 *   CHUNKING              if `own` has CAPA_CHUNKING (moat provides it)
 *   STARTTLS              if `own` has CAPA_STARTTLS (moat's own TLS)
 *   AUTH mechs            if `own` has CAPA_AUTH and auth is not empty
 * Never XCLIENT, XFORWARD, BINARYMIME (not implemented).
 * `advertised` receives the CAPA_* set actually advertised.
 * Returns bytes written, or -1 if out is too small.
 */
int capa_ehlo_reply(const struct capa *up, const char *hostname,
    uint64_t own_size, uint32_t own, const char *auth, uint32_t *advertised,
    char *out, size_t outsz);

#endif
