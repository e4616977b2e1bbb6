/*
 * escape.h - make untrusted bytes safe for log lines and header values.
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

#endif
