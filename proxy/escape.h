/*
 * escape.h - make untrusted bytes safe for log lines and header values,
 * and validate UTF-8.
 *
 * Pure; thread-safe.
 */
#ifndef MOAT_ESCAPE_H
#define MOAT_ESCAPE_H

#include <stddef.h>

/*
 * Escape len bytes of in for a key="value" log field: printable ASCII
 * (0x20-0x7e) except '"' and '\\' is copied; '"' and '\\' become \" and
 * \\; everything else (controls, DEL, bytes >= 0x80) becomes \xHH. Output
 * is always NUL-terminated (outsz >= 1); if it would not fit, it is cut at
 * a whole escape sequence and ends with "..." . Returns strlen(out).
 */
size_t log_escape(const char *in, size_t len, char *out, size_t outsz);

/*
 * Copy text for use inside an SMTP reply or a header value: CR, LF, NUL and
 * other controls except HTAB are replaced by a space; the result is cut to
 * outsz-1 bytes. Returns strlen(out).
 */
size_t text_sanitize(const char *in, size_t len, char *out, size_t outsz);

/*
 * Length of the valid multi-byte UTF-8 sequence at s (at most avail
 * bytes), or 0 for ASCII and for anything invalid (RFC 3629 §4: no
 * overlong forms, no surrogates, nothing above U+10FFFF, not truncated).
 * Stops at the first bad octet, so it never reads past a NUL.
 */
size_t utf8_seq(const unsigned char *s, size_t avail);

#endif
