/*
 * test_escape.c - unit tests for proxy/escape.c (log_escape for key="value"
 * log fields, text_sanitize for SMTP reply text and header values).
 *
 * Hermetic, single-threaded. Output buffers are heap blocks of exactly
 * outsz bytes, so ASan reports any write past outsz.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "escape.h"

static char result[1024];

/* log_escape into an exact-size heap buffer; result holds the output. */
static size_t
esc(const char *in, size_t len, size_t outsz)
{
	char  *out;
	size_t n;

	out = malloc(outsz > 0 ? outsz : 1);
	memset(out, 'Z', outsz > 0 ? outsz : 1);
	n = log_escape(in, len, out, outsz);
	if (outsz > 0)
		snprintf(result, sizeof(result), "%s", out);
	else
		snprintf(result, sizeof(result), "%s",
		    out[0] == 'Z' ? "(untouched)" : "(written)");
	free(out);
	return n;
}

static size_t
san(const char *in, size_t len, size_t outsz)
{
	char  *out;
	size_t n;

	out = malloc(outsz > 0 ? outsz : 1);
	memset(out, 'Z', outsz > 0 ? outsz : 1);
	n = text_sanitize(in, len, out, outsz);
	if (outsz > 0)
		snprintf(result, sizeof(result), "%s", out);
	else
		snprintf(result, sizeof(result), "%s",
		    out[0] == 'Z' ? "(untouched)" : "(written)");
	free(out);
	return n;
}

static void
test_log_escape(void)
{
	is_int(esc("hello world", 11, 64), 11, "plain length");
	is_str(result, "hello world", "plain text copied");
	is_int(esc("", 0, 64), 0, "empty input");
	is_str(result, "", "empty output");
	esc("a\"b\\c", 5, 64);
	is_str(result, "a\\\"b\\\\c", "quote and backslash escaped");
	esc("\r\n\t\0", 4, 64);
	is_str(result, "\\x0d\\x0a\\x09\\x00", "controls as \\xHH");
	esc("\x7f\x80\xff", 3, 64);
	is_str(result, "\\x7f\\x80\\xff", "DEL and 8-bit as \\xHH");
	esc("caf\xc3\xa9", 5, 64);
	is_str(result, "caf\\xc3\\xa9", "UTF-8 escaped byte by byte");
	esc(" ~", 2, 64);
	is_str(result, " ~", "0x20 and 0x7e kept");
	esc("ab\0cd", 2, 64);
	is_str(result, "ab", "only len bytes read");
	esc("MAIL FROM:<a@b>\r\nRCPT", 21, 64);
	is_str(
	    result, "MAIL FROM:<a@b>\\x0d\\x0aRCPT", "log injection defused");

	/* Exact fit vs truncation. */
	is_int(esc("abcdefg", 7, 8), 7, "exact fit length");
	is_str(result, "abcdefg", "exact fit not truncated");
	is_int(esc("abcdefgh", 8, 8), 7, "truncated length");
	is_str(result, "abcd...", "truncated with ...");
	esc("ab\x01"
	    "cd",
	    5, 8);
	is_str(result, "ab...", "escape not split");
	esc("\x01\x02", 2, 9);
	is_str(result, "\\x01\\x02", "two escapes fit exactly");
	esc("\x01\x02\x03", 3, 9);
	is_str(result, "\\x01...", "third escape truncated");
	esc("\"\"\"\"", 4, 8);
	is_str(result, "\\\"\\\"...", "\\\" pairs not split");
	esc("a\"", 2, 4);
	is_str(result, "a\\\"", "escape fits exactly at the end");
	esc("a\"b", 3, 4);
	is_str(result, "...", "nothing but ... fits");

	/* Tiny buffers. */
	is_int(esc("abc", 3, 0), 0, "outsz 0 returns 0");
	is_str(result, "(untouched)", "outsz 0 writes nothing");
	is_int(esc("abc", 3, 1), 0, "outsz 1");
	is_str(result, "", "outsz 1 gives empty string");
	esc("abc", 3, 2);
	is_str(result, ".", "outsz 2: one dot");
	esc("abc", 3, 3);
	is_str(result, "..", "outsz 3: two dots");
	esc("ab", 2, 3);
	is_str(result, "ab", "outsz 3: fitting input kept");
	esc("abcd", 4, 4);
	is_str(result, "...", "outsz 4: dots only");
	esc("", 0, 1);
	is_str(result, "", "empty input, outsz 1");
}

/* Length of one byte's escape, as documented in escape.h. */
static size_t
esclen(unsigned char c)
{
	if (c == '"' || c == '\\')
		return 2;
	return (c >= 0x20 && c <= 0x7e) ? 1 : 4;
}

/* Properties over many inputs and every small outsz. */
static void
test_log_escape_props(void)
{
	char	 in[64], full[300], *out;
	size_t	 len, fl, outsz, n, k, pre, b;
	uint32_t seed;
	int	 good_len, good_chars, good_trunc, good_prefix, good_bounds;
	int	 iter;

	seed = 12345;
	good_len = good_chars = good_trunc = good_prefix = good_bounds = 1;
	for (iter = 0; iter < 500; iter++) {
		len = (size_t)iter % sizeof(in);
		for (k = 0; k < len; k++) {
			seed = seed * 1103515245 + 12345;
			/* Mostly printable, some specials. */
			in[k] = (char)((seed >> 16) % 5 == 0
				? (seed >> 8) & 0xff
				: 'a' + (seed >> 16) % 26);
		}
		fl = log_escape(in, len, full, sizeof(full));
		for (outsz = 1; outsz < 80; outsz++) {
			out = malloc(outsz);
			n = log_escape(in, len, out, outsz);
			if (n != strlen(out))
				good_len = 0;
			if (n >= outsz)
				good_bounds = 0;
			for (k = 0; k < n; k++)
				if ((unsigned char)out[k] < 0x20 ||
				    (unsigned char)out[k] > 0x7e)
					good_chars = 0;
			if (fl < outsz) {
				/* Fits: identical to the full escape. */
				if (strcmp(out, full) != 0)
					good_prefix = 0;
			} else if (outsz >= 4) {
				/* Cut: "..." after a prefix of whole escapes,
				 * as long as possible. */
				if (n < 3 || strcmp(out + n - 3, "...") != 0)
					good_trunc = 0;
				pre = n - 3;
				if (memcmp(out, full, pre) != 0)
					good_prefix = 0;
				/* At a boundary between whole escapes. */
				for (k = 0, b = 0; k < len && b < pre; k++)
					b += esclen((unsigned char)in[k]);
				if (b != pre)
					good_trunc = 0;
				/* As long as possible: the next escape (at
				 * most 4 bytes) would not have fit. */
				if (n + 4 < outsz)
					good_trunc = 0;
			}
			free(out);
		}
	}
	ok(good_len, "return value is strlen(out)");
	ok(good_bounds, "output always shorter than outsz");
	ok(good_chars, "output always printable ASCII");
	ok(good_prefix, "output is a prefix of the full escape");
	ok(good_trunc, "truncation ends with ... at an escape boundary");
}

static void
test_text_sanitize(void)
{
	is_int(san("hello", 5, 64), 5, "sanitize plain length");
	is_str(result, "hello", "sanitize plain");
	san("a\r\nb", 4, 64);
	is_str(result, "a  b", "CR LF become spaces");
	san("a\tb", 3, 64);
	is_str(result, "a\tb", "HTAB kept");
	san("a\0b", 3, 64);
	is_str(result, "a b", "NUL becomes space");
	san("\x01\x1f\x7f", 3, 64);
	is_str(result, "   ", "other controls and DEL become spaces");
	san("caf\xc3\xa9 \"x\\y\"", 11, 64);
	is_str(result, "caf\xc3\xa9 \"x\\y\"", "UTF-8, quotes, backslash kept");
	is_int(san("abcdef", 6, 4), 3, "cut length");
	is_str(result, "abc", "cut to outsz-1 bytes");
	is_int(san("abc", 3, 4), 3, "exact fit");
	is_str(result, "abc", "exact fit kept");
	is_int(san("abc", 3, 1), 0, "outsz 1");
	is_str(result, "", "outsz 1 gives empty string");
	is_int(san("abc", 3, 0), 0, "outsz 0 returns 0");
	is_str(result, "(untouched)", "outsz 0 writes nothing");
	is_int(san("", 0, 8), 0, "empty input");
	is_int(san("ab\0cd", 2, 8), 2, "only len bytes read");
}

int
main(void)
{
	test_log_escape();
	test_log_escape_props();
	test_text_sanitize();
	return tap_done();
}
