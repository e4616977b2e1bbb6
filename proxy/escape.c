/*
 * escape.c - make untrusted bytes safe for log lines (key="value" fields,
 * in the spirit of vis(3)/strnvis as OpenSMTPD uses it) and for SMTP reply
 * text and header values (RFC 5321 §4.2 textstring has no CR/LF; RFC 5322
 * §2.2 header bodies likewise, HTAB allowed).
 *
 * Pure code: no I/O, no allocation, no global state; safe from any thread.
 * Input is borrowed for the call; output goes to caller storage, never
 * written past outsz, and NUL-terminated whenever outsz >= 1.
 */

#include "escape.h"

static const char hexdigits[] = "0123456789abcdef";

/*
 * The escape for one byte into e (at most 4 bytes, not NUL-terminated);
 * returns its length.
 */
static size_t
escape_byte(unsigned char c, char e[4])
{
	if (c == '"' || c == '\\') {
		e[0] = '\\';
		e[1] = (char)c;
		return 2;
	}
	if (c >= 0x20 && c <= 0x7e) {
		e[0] = (char)c;
		return 1;
	}
	e[0] = '\\';
	e[1] = 'x';
	e[2] = hexdigits[c >> 4];
	e[3] = hexdigits[c & 0x0f];
	return 4;
}

/*
 * Escapes are written whole or not at all. While they fit, `cut` tracks
 * the last escape boundary that still leaves room for "..." and the NUL;
 * when one does not fit, the output goes back to `cut` and gets "...".
 * With outsz < 4 there is no room for a whole "...": as many dots as fit
 * mark the truncation.
 */
size_t
log_escape(const char *in, size_t len, char *out, size_t outsz)
{
	char   e[4];
	size_t i, j, n, pos, cut, room;

	if (outsz == 0)
		return 0;
	room = outsz - 1; /* bytes available before the NUL */
	pos = 0;
	cut = 0;
	for (i = 0; i < len; i++) {
		n = escape_byte((unsigned char)in[i], e);
		if (n > room - pos) {
			pos = cut;
			for (j = 0; j < 3 && pos < room; j++)
				out[pos++] = '.';
			break;
		}
		for (j = 0; j < n; j++)
			out[pos++] = e[j];
		if (room >= 3 && pos <= room - 3)
			cut = pos;
	}
	out[pos] = '\0';
	return pos;
}

/*
 * Keeps HTAB, printable ASCII and every byte >= 0x80 (UTF-8 text, RFC
 * 6531/6532) as they are; other bytes below 0x20 and DEL become a space.
 * The cut is by bytes and may split a UTF-8 sequence.
 */
size_t
text_sanitize(const char *in, size_t len, char *out, size_t outsz)
{
	size_t	      i;
	unsigned char c;

	if (outsz == 0)
		return 0;
	for (i = 0; i < len && i < outsz - 1; i++) {
		c = (unsigned char)in[i];
		out[i] = ((c < 0x20 && c != '\t') || c == 0x7f) ? ' ' : (char)c;
	}
	out[i] = '\0';
	return i;
}

/*
 * Length of the well-formed UTF-8 sequence of one non-ASCII character at s,
 * looking at most avail octets (RFC 3629 §4); 0 when it is ill-formed: a
 * stray continuation byte, an overlong form (C0, C1, E0 80-9F, F0 80-8F),
 * a surrogate (ED A0-BF), beyond U+10FFFF (F4 90-BF, F5-FF) or truncated.
 * Stops at the first bad octet, so never reads past a NUL.
 */
size_t
utf8_seq(const unsigned char *s, size_t avail)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t	      len, i;

	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		if (s[0] == 0xe0)
			lo = 0xa0;
		else if (s[0] == 0xed)
			hi = 0x9f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		if (s[0] == 0xf0)
			lo = 0x90;
		else if (s[0] == 0xf4)
			hi = 0x8f;
	} else
		return (0);
	if (avail < len)
		return (0);
	if (s[1] < lo || s[1] > hi)
		return (0);
	for (i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return (0);
	return (len);
}
