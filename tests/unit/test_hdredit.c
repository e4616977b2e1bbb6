/*
 * test_hdredit.c - unit tests for proxy/hdredit.c: field names, value
 * sanitising and folding (RFC 5322 §2.2, §2.2.3, §2.1.1), milter-style
 * header edits on wire-form header sections (RFC 5321 §4.5.2
 * dot-stuffing), Authentication-Results authserv-id matching, deletion and
 * building (RFC 8601 §2.2, §5), and the header-injection invariant.
 *
 * Hermetic, single-threaded.
 */
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hdredit.h"
#include "tap.h"

#define S(lit) (lit), (sizeof(lit) - 1)

static char result[65536];

/* hdr_format into result ("(null)" for NULL). */
static const char *
fmt(const char *name, const char *value, size_t maxlen)
{
	char *s = hdr_format(name, value, maxlen);

	snprintf(result, sizeof(result), "%s", s ? s : "(null)");
	free(s);
	return result;
}

static const char *
fmtn(const char *name, const char *value, size_t vlen, size_t maxlen)
{
	char *s = hdr_formatn(name, value, vlen, maxlen);

	snprintf(result, sizeof(result), "%s", s ? s : "(null)");
	free(s);
	return result;
}

/* hdr_edits_apply on a C string into result; returns its return. */
static int
apply(const struct hdr_edits *e, const char *hdr)
{
	struct evbuffer *out = evbuffer_new();
	size_t		 n;
	int		 r;

	if (out == NULL)
		abort();
	r = hdr_edits_apply(e, hdr, strlen(hdr), out);
	n = evbuffer_get_length(out);
	if (n >= sizeof(result))
		abort();
	evbuffer_remove(out, result, n);
	result[n] = '\0';
	evbuffer_free(out);
	return r;
}

static int
name_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '-';
}

/* Is the line p[0..n) (no CRLF) a line of orig? */
static int
orig_line(const char *orig, const char *p, size_t n)
{
	const char *l = orig, *e;

	if (orig == NULL)
		return 0;
	for (;;) {
		e = strstr(l, "\r\n");
		if ((size_t)((e ? e : l + strlen(l)) - l) == n &&
		    memcmp(l, p, n) == 0)
			return 1;
		if (e == NULL)
			return 0;
		l = e + 2;
	}
}

/*
 * The injection invariant over out[0..len): no NUL, no bare CR or LF;
 * every line that is not a line of orig starts with TAB followed by a
 * non-whitespace byte (a continuation of ours), or with a valid name and
 * a colon (a field start; so also never with '.'). Every CRLF is thus
 * followed by TAB or ends a field that starts with a name and a colon.
 */
static int
injection_safe(const char *out, size_t len, const char *orig)
{
	size_t i, s, k;

	for (i = 0; i < len; i++) {
		if (out[i] == '\0')
			return 0;
		if (out[i] == '\r' && (i + 1 >= len || out[i + 1] != '\n'))
			return 0;
		if (out[i] == '\n' && (i == 0 || out[i - 1] != '\r'))
			return 0;
	}
	for (s = 0; s < len; s = i + 2) {
		for (i = s;
		     i + 1 < len && !(out[i] == '\r' && out[i + 1] == '\n');
		     i++)
			;
		if (i + 1 >= len)
			i = len;
		if (orig_line(orig, out + s, i - s))
			continue;
		if (out[s] == '\t') {
			if (i - s < 2 || out[s + 1] == ' ' ||
			    out[s + 1] == '\t')
				return 0;
			continue;
		}
		for (k = s; k < i && name_char((unsigned char)out[k]); k++)
			;
		if (k == s || k >= i || out[k] != ':' || out[s] == '-')
			return 0;
	}
	return 1;
}

/* Longest line of s, in octets, CRLF excluded. */
static size_t
max_line(const char *s)
{
	size_t	    m = 0, n;
	const char *e;

	for (;;) {
		e = strstr(s, "\r\n");
		n = e ? (size_t)(e - s) : strlen(s);
		if (n > m)
			m = n;
		if (e == NULL)
			return m;
		s = e + 2;
	}
}

/* s with every "\r\n\t" replaced by " " (unfolded for comparison). */
static const char *
unfold(const char *s)
{
	static char u[65536];
	size_t	    i = 0;

	while (*s != '\0' && i + 1 < sizeof(u)) {
		if (s[0] == '\r' && s[1] == '\n' && s[2] == '\t') {
			u[i++] = ' ';
			s += 3;
		} else
			u[i++] = *s++;
	}
	u[i] = '\0';
	return u;
}

static int
valid_utf8(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	int		     k, i;

	while (*p) {
		if (*p < 0x80) {
			p++;
			continue;
		}
		k = *p >= 0xf0 ? 4 : *p >= 0xe0 ? 3 : *p >= 0xc2 ? 2 : 0;
		if (k == 0 || *p > 0xf4)
			return 0;
		for (i = 1; i < k; i++)
			if ((p[i] & 0xc0) != 0x80)
				return 0;
		p += k;
	}
	return 1;
}

static void
test_name_ok(void)
{
	char long76[80], long77[80];

	memset(long76, 'a', 76);
	long76[76] = '\0';
	memset(long77, 'a', 77);
	long77[77] = '\0';
	ok(hdr_name_ok("Subject"), "Subject is a name");
	ok(hdr_name_ok("X-Spam-Status"), "X-Spam-Status is a name");
	ok(hdr_name_ok("a"), "one char");
	ok(hdr_name_ok("9X"), "digit first");
	ok(hdr_name_ok("X-"), "trailing hyphen");
	ok(hdr_name_ok(long76), "76 chars");
	ok(!hdr_name_ok(long77), "77 chars refused");
	ok(!hdr_name_ok(""), "empty refused");
	ok(!hdr_name_ok(NULL), "NULL refused");
	ok(!hdr_name_ok("-X"), "leading hyphen refused");
	ok(!hdr_name_ok("X Y"), "space refused");
	ok(!hdr_name_ok("X:Y"), "colon refused");
	ok(!hdr_name_ok("X\r\nY"), "CRLF refused");
	ok(!hdr_name_ok(".X"), "leading dot refused");
	ok(!hdr_name_ok("X_Y"), "underscore refused");
	ok(!hdr_name_ok("X\tY"), "TAB refused");
	ok(!hdr_name_ok("\xc3\x84rger"), "8-bit refused");
}

static void
test_format_basic(void)
{
	is_str(fmt("Subject", "hello", 100), "Subject: hello\r\n", "simple");
	is_str(fmt("X", "", 100), "X:\r\n", "empty value");
	is_str(fmt("X", NULL, 100), "X:\r\n", "NULL value");
	is_str(fmt("X Y", "v", 100), "(null)", "invalid name gives NULL");
	is_str(fmt("", "v", 100), "(null)", "empty name gives NULL");
	is_str(fmt("X", "  a b  ", 100), "X: a b\r\n", "trimmed");
	is_str(fmt("X", "a  b\tc", 100), "X: a  b\tc\r\n",
	    "original whitespace kept");
	is_str(fmt("X", "\t\t", 100), "X:\r\n", "whitespace only");
	is_str(fmt("x-test", "v", 100), "x-test: v\r\n", "name case kept");
}

static void
test_format_sanitize(void)
{
	is_str(fmt("X", "a\rb", 100), "X: a b\r\n", "CR");
	is_str(fmt("X", "a\nb", 100), "X: a b\r\n", "LF");
	is_str(fmt("X", "a\r\nb", 100), "X: a b\r\n", "CRLF collapses");
	is_str(fmt("X", "a \r\n\tb", 100), "X: a b\r\n",
	    "run with a replaced byte collapses");
	is_str(fmt("X", "a\r\nBcc: evil@example.com", 100),
	    "X: a Bcc: evil@example.com\r\n", "field injection defused");
	is_str(fmt("X", "a\r\n\r\nbody", 100), "X: a body\r\n",
	    "body injection defused");
	is_str(fmt("X", "a\r\n", 100), "X: a\r\n", "trailing CRLF trimmed");
	is_str(fmt("X", "\r\na", 100), "X: a\r\n", "leading CRLF trimmed");
	is_str(fmtn("X", S("a\0b"), 100), "X: a b\r\n", "NUL");
	is_str(fmtn("X", S("\0\0a\0"), 100), "X: a\r\n", "NULs at the ends");
	is_str(fmt("X", "a\x01\x1b[31mb", 100), "X: a [31mb\r\n",
	    "other controls");
	is_str(fmt("X",
		   "a\x7f"
		   "b",
		   100),
	    "X: a b\r\n", "DEL");
	is_str(fmt("X", "\x01\x02\x7f", 100), "X:\r\n", "controls only");
	is_str(fmt("X",
		   "a\x0b\x0c"
		   "b",
		   100),
	    "X: a b\r\n", "VT FF");
}

static void
test_format_utf8(void)
{
	is_str(
	    fmt("X", "caf\xc3\xa9", 100), "X: caf\xc3\xa9\r\n", "2-byte kept");
	is_str(fmt("X", "\xe6\x97\xa5\xe6\x9c\xac", 100),
	    "X: \xe6\x97\xa5\xe6\x9c\xac\r\n", "3-byte kept");
	is_str(fmt("X", "\xf0\x9f\x98\x80", 100), "X: \xf0\x9f\x98\x80\r\n",
	    "4-byte kept");
	is_str(fmt("X", "\xf4\x8f\xbf\xbf", 100), "X: \xf4\x8f\xbf\xbf\r\n",
	    "U+10FFFF kept");
	is_str(fmt("X",
		   "a\x80"
		   "b",
		   100),
	    "X: a?b\r\n", "lone continuation byte");
	is_str(fmt("X", "\xc3(", 100), "X: ?(\r\n", "broken 2-byte");
	is_str(fmt("X", "\xc0\xaf", 100), "X: ??\r\n", "overlong 2-byte");
	is_str(fmt("X", "\xe0\x80\xaf", 100), "X: ???\r\n", "overlong 3-byte");
	is_str(fmt("X", "\xed\xa0\x80", 100), "X: ???\r\n", "surrogate");
	is_str(
	    fmt("X", "\xf4\x90\x80\x80", 100), "X: ????\r\n", "above U+10FFFF");
	is_str(fmt("X", "a\xe2\x82", 100), "X: a??\r\n", "truncated sequence");
	is_str(fmt("X", "\xff\xfe", 100), "X: ??\r\n", "0xff 0xfe");
	is_str(fmt("X", "\xc2\x85", 100), "X: \xc2\x85\r\n",
	    "U+0085 (valid UTF-8) kept");
}

static void
test_format_fold(void)
{
	char	    v[4096], want[8192];
	char	   *s;
	size_t	    i;
	const char *p;
	int	    good;

	/* "X: " + 75 chars = 78: one line. */
	memset(v, 'a', 70);
	memcpy(v + 70, " bbbb", 5);
	v[75] = '\0';
	fmt("X", v, 8192);
	is_int(max_line(result), 78, "78 fits on one line");
	ok(strstr(result, "\r\n\t") == NULL, "no fold at 78");
	/* One more: folds before the last word. */
	memcpy(v + 70, " bbbbb", 6);
	v[76] = '\0';
	fmt("X", v, 8192);
	snprintf(want, sizeof(want), "X: %.70s\r\n\tbbbbb\r\n", v);
	is_str(result, want, "79 folds before the last word");

	/* Many words: every line <= 78, unfolding restores the value. */
	for (i = 0, v[0] = '\0'; i < 60; i++)
		strcat(v, i % 3 ? "word " : "longerword ");
	v[strlen(v) - 1] = '\0';
	s = hdr_format("Subject", v, 8192);
	ok(max_line(s) <= 78, "many words: lines <= 78");
	ok(strstr(s, "\r\n\t") != NULL, "many words: folded");
	snprintf(want, sizeof(want), "Subject: %s\r\n", v);
	is_str(unfold(s), want, "unfolding restores the value");
	ok(injection_safe(s, strlen(s), NULL), "folded output is safe");
	free(s);

	/* Multiple spaces at the fold point are replaced by the fold. */
	memset(v, 'a', 74);
	memcpy(v + 74, "    b", 6);
	fmt("X", v, 8192);
	snprintf(want, sizeof(want), "X: %.74s\r\n\tb\r\n", v);
	is_str(result, want, "run at the fold point dropped");

	/* A long word stays whole on its own line. */
	memset(v, 'w', 100);
	v[100] = '\0';
	snprintf(want, sizeof(want), "a %s b", v);
	fmt("X", want, 8192);
	snprintf(v + 200, 300, "X: a\r\n\t%.100s\r\n\tb\r\n", v);
	is_str(result, v + 200, "long word on its own line");
	memset(v, 'w', 100);
	v[100] = '\0';
	fmt("X", v, 8192);
	snprintf(want, sizeof(want), "X: %s\r\n", v);
	is_str(result, want, "long first word stays on the first line");

	/* 998 hard cap: a 2500-byte word is split. */
	memset(v, 'z', 2500);
	v[2500] = '\0';
	s = hdr_format("X", v, 8192);
	is_int(max_line(s), 998, "2500-byte word: lines capped at 998");
	ok(strncmp(s, "X: zzz", 6) == 0 && strstr(s, "\r\n\tzzz") != NULL,
	    "split with CRLF TAB");
	for (p = s, i = 0; *p; p++)
		i += *p == 'z';
	is_int(i, 2500, "no byte lost in the split");
	ok(injection_safe(s, strlen(s), NULL), "split output is safe");
	free(s);

	/* The split falls on a UTF-8 boundary. */
	for (i = 0; i < 1200; i++)
		memcpy(v + 2 * i, "\xc3\xa9", 2);
	v[2400] = '\0';
	s = hdr_format("X", v, 8192);
	ok(max_line(s) <= 998, "UTF-8 word: lines capped");
	good = 1;
	for (p = s; (p = strstr(p, "\r\n")) != NULL; p += 2)
		if (((unsigned char)p[-1] & 0xc0) == 0xc0)
			good = 0;
	ok(good && valid_utf8(s), "UTF-8 word: split between characters");
	free(s);

	/* A 998-byte line exactly: "X: " + 995. */
	memset(v, 'y', 995);
	v[995] = '\0';
	s = hdr_format("X", v, 8192);
	ok(max_line(s) == 998 && strstr(s, "\r\n\t") == NULL,
	    "998 exactly: not split");
	free(s);
	memset(v, 'y', 996);
	v[996] = '\0';
	s = hdr_format("X", v, 8192);
	ok(max_line(s) == 998 && strcmp(s + strlen(s) - 4, "\ty\r\n") == 0,
	    "999: last byte on a continuation line");
	free(s);
}

static void
test_format_truncate(void)
{
	char	    v[20000];
	const char *p;
	size_t	    n;

	is_str(fmt("X", "hello world", 5), "X: hello\r\n", "cut at maxlen");
	is_str(fmt("X", "hello world", 6), "X: hello\r\n",
	    "trailing space after the cut trimmed");
	is_str(fmt("X", "hello world", 11), "X: hello world\r\n",
	    "maxlen = length: whole");
	is_str(fmt("X", "hello", 0), "X:\r\n", "maxlen 0: empty");
	is_str(fmt("X", "caf\xc3\xa9", 4), "X: caf\r\n",
	    "cut inside a 2-byte char backs off");
	is_str(fmt("X", "caf\xc3\xa9", 5), "X: caf\xc3\xa9\r\n",
	    "cut after the char keeps it");
	is_str(fmt("X", "\xf0\x9f\x98\x80", 3), "X:\r\n",
	    "cut inside a 4-byte char: nothing");
	is_str(fmt("X", "a\r\n\r\nbcd", 3), "X: a b\r\n",
	    "cut applies to the sanitised value");
	is_str(fmt("X", "\xff\xffz", 2), "X: ??\r\n",
	    "'?' replacements count as one byte");
	memset(v, 'q', sizeof(v) - 1);
	v[sizeof(v) - 1] = '\0';
	fmt("X", v, HDR_VALUE_MAX);
	for (p = result, n = 0; *p != '\0'; p++)
		n += *p == 'q';
	is_int(n, HDR_VALUE_MAX, "long value cut to HDR_VALUE_MAX");
	ok(max_line(result) <= HDR_LINE_MAX, "long value: lines capped");
}

static void
test_section_end(void)
{
	is_int(hdr_section_end(S("\r\nbody")), 2, "empty header section");
	is_int(hdr_section_end(S("A: b\r\n\r\nbody")), 8, "after \\r\\n\\r\\n");
	is_int(hdr_section_end(S("A: b\r\n\r\n")), 8, "at the end");
	is_int(hdr_section_end(S("A: b\r\nC: d\r\n")), -1, "no empty line");
	is_int(hdr_section_end(S("A: b\n\nbody")), -1, "bare LF ignored");
	is_int(
	    hdr_section_end(S("A: b\r\n\n\r\n")), -1, "CRLF LF CRLF ignored");
	is_int(hdr_section_end(S("A: b\r\n\r")), -1, "partial");
	is_int(hdr_section_end("", 0), -1, "empty input");
	is_int(hdr_section_end(S("\r")), -1, "lone CR");
	is_int(hdr_section_end("A: b\r\n\r\n", 7), -1, "bounded by len");
}

static void
test_edits_basic(void)
{
	struct hdr_edits e;

	hdr_edits_init(&e);
	is_int(hdr_edit_add(&e, "Bad Name", "v"), -1, "add: bad name");
	is_int(hdr_edit_append(&e, ".X", "v"), -1, "append: bad name");
	is_int(hdr_edit_change(&e, "X:", 1, "v"), -1, "change: bad name");
	is_int(hdr_edit_delete_ar(&e, ""), -1, "delete_ar: empty id");
	is_int(hdr_edit_delete_ar(&e, NULL), -1, "delete_ar: NULL id");
	is_int(e.n, 0, "nothing recorded");
	is_int(apply(&e, "A: b\r\n..x\r\n\tc\r\n\r\n"), 0, "no edits");
	is_str(result, "A: b\r\n..x\r\n\tc\r\n\r\n", "no edits: identical");
	is_int(hdr_edit_add(&e, "X-A", "1"), 0, "add ok");
	is_int(hdr_edit_append(&e, "X-B", NULL), 0, "append ok");
	is_int(hdr_edit_change(&e, "X-C", 0, NULL), 0, "change ok");
	is_int(hdr_edit_delete_ar(&e, "mx.example.com"), 0, "delete_ar ok");
	is_int(e.n, 4, "four recorded");
	ok(e.v[0].op == HDR_ADD_TOP && e.v[1].op == HDR_APPEND &&
		e.v[2].op == HDR_CHANGE && e.v[3].op == HDR_DELETE_AR_ID,
	    "ops recorded");
	is_str(e.v[1].value, "", "NULL append value taken as empty");
	hdr_edits_free(&e);
	is_int(e.n, 0, "free resets");
	ok(e.v == NULL, "free resets the vector");
}

static const char H1[] = "Received: from a\r\n"
			 "\tby b\r\n"
			 "Subject: one\r\n"
			 "To: x@example.com\r\n"
			 "subject: two\r\n"
			 "\t two more\r\n"
			 "SUBJECT: three\r\n"
			 "\r\n";

static void
test_apply_add_append(void)
{
	struct hdr_edits e;

	hdr_edits_init(&e);
	hdr_edit_add(&e, "X-First", "1");
	hdr_edit_add(&e, "X-Second", "2");
	hdr_edit_append(&e, "X-Last", "3");
	hdr_edit_append(&e, "X-Laster", "4");
	apply(&e, "A: b\r\n\r\n");
	is_str(result,
	    "X-First: 1\r\nX-Second: 2\r\nA: b\r\nX-Last: 3\r\n"
	    "X-Laster: 4\r\n\r\n",
	    "add on top in order, append before the empty line");
	ok(injection_safe(result, strlen(result), "A: b\r\n\r\n"),
	    "add/append output safe");
	apply(&e, "A: b\r\n");
	is_str(result,
	    "X-First: 1\r\nX-Second: 2\r\nA: b\r\nX-Last: 3\r\nX-Laster: 4\r\n",
	    "no empty line: none added");
	apply(&e, "");
	is_str(result,
	    "X-First: 1\r\nX-Second: 2\r\nX-Last: 3\r\nX-Laster: 4\r\n",
	    "empty header section");
	apply(&e, "\r\n");
	is_str(result,
	    "X-First: 1\r\nX-Second: 2\r\nX-Last: 3\r\nX-Laster: 4\r\n\r\n",
	    "only the empty line");
	apply(&e, "A: b\r\n\r\nbody\r\n.. dot\r\n");
	is_str(result,
	    "X-First: 1\r\nX-Second: 2\r\nA: b\r\nX-Last: 3\r\nX-Laster: 4\r\n"
	    "\r\nbody\r\n.. dot\r\n",
	    "what follows the empty line is copied");
	apply(&e, "A: b");
	is_str(result,
	    "X-First: 1\r\nX-Second: 2\r\nA: b\r\nX-Last: 3\r\nX-Laster: 4\r\n",
	    "last line without CRLF gets one before appended fields");
	apply(&e, " body first\r\nA: b\r\n\r\n");
	is_str(result,
	    "X-First: 1\r\nX-Second: 2\r\nX-Last: 3\r\nX-Laster: 4\r\n"
	    "\r\n body first\r\nA: b\r\n\r\n",
	    "leading WSP line: it starts the body, separated");
	hdr_edits_free(&e);

	hdr_edits_init(&e);
	hdr_edit_add(&e, "X-Spam", "a\r\nBcc: victim@example.com");
	apply(&e, "A: b");
	is_str(result, "X-Spam: a Bcc: victim@example.com\r\nA: b",
	    "no append: missing final CRLF left alone");
	hdr_edits_free(&e);
}

static void
test_apply_change(void)
{
	struct hdr_edits e;

	hdr_edits_init(&e);
	hdr_edit_change(&e, "Subject", 1, "new");
	apply(&e, H1);
	is_str(result,
	    "Received: from a\r\n\tby b\r\nSubject: new\r\nTo: "
	    "x@example.com\r\n"
	    "subject: two\r\n\t two more\r\nSUBJECT: three\r\n\r\n",
	    "change 1st occurrence");
	hdr_edits_free(&e);

	hdr_edits_init(&e);
	hdr_edit_change(&e, "SUBJECT", 2, "new");
	apply(&e, H1);
	is_str(result,
	    "Received: from a\r\n\tby b\r\nSubject: one\r\nTo: "
	    "x@example.com\r\n"
	    "SUBJECT: new\r\nSUBJECT: three\r\n\r\n",
	    "change 2nd occurrence, case-insensitive; folded field replaced "
	    "whole; name as in the edit");
	hdr_edits_free(&e);

	hdr_edits_init(&e);
	hdr_edit_change(&e, "subject", 0, "all");
	apply(&e, H1);
	is_str(result,
	    "Received: from a\r\n\tby b\r\nsubject: all\r\nTo: "
	    "x@example.com\r\n"
	    "subject: all\r\nsubject: all\r\n\r\n",
	    "change every occurrence");
	hdr_edits_free(&e);

	hdr_edits_init(&e);
	hdr_edit_change(&e, "Subject", 4, "x");
	hdr_edit_change(&e, "Cc", 1, "x");
	hdr_edit_change(&e, "Cc", 0, NULL);
	apply(&e, H1);
	is_str(result, H1, "change of a missing occurrence does nothing");
	hdr_edits_free(&e);

	hdr_edits_init(&e);
	hdr_edit_change(&e, "Received", 1, NULL);
	hdr_edit_change(&e, "subject", 2, NULL);
	apply(&e, H1);
	is_str(result,
	    "Subject: one\r\nTo: x@example.com\r\nSUBJECT: three\r\n\r\n",
	    "delete folded fields with their continuation lines");
	hdr_edits_free(&e);

	hdr_edits_init(&e);
	hdr_edit_change(&e, "Subject", 0, NULL);
	hdr_edit_change(&e, "To", 1, NULL);
	hdr_edit_change(&e, "Received", 1, NULL);
	apply(&e, H1);
	is_str(result, "\r\n", "delete all: only the empty line left");
	hdr_edits_free(&e);

	hdr_edits_init(&e);
	hdr_edit_change(&e, "To", 1, "changed");
	hdr_edit_change(&e, "To", 1, NULL);
	hdr_edit_change(&e, "Subject", 1, NULL);
	hdr_edit_change(&e, "Subject", 1, "back");
	hdr_edit_change(&e, "Subject", 3, "three-a");
	hdr_edit_change(&e, "Subject", 0, "every");
	hdr_edit_change(&e, "Subject", 3, "three-b");
	apply(&e, H1);
	is_str(result,
	    "Received: from a\r\n\tby b\r\nSubject: every\r\n"
	    "Subject: every\r\nSubject: three-b\r\n\r\n",
	    "edits of the same field apply in order");
	hdr_edits_free(&e);

	hdr_edits_init(&e);
	hdr_edit_change(&e, "Subject", 1, "x");
	hdr_edit_add(&e, "Subject", "added");
	hdr_edit_change(&e, "Subject", 2, NULL);
	apply(&e, "Subject: a\r\nSubject: b\r\n\r\n");
	is_str(result, "Subject: added\r\nSubject: x\r\n\r\n",
	    "occurrences count original fields only");
	hdr_edits_free(&e);

	hdr_edits_init(&e);
	hdr_edit_change(&e, "Subject", 1, "x\r\n.\r\nMAIL FROM:<a@b>");
	apply(&e, "Subject : a\r\n\r\n");
	is_str(result, "Subject: x . MAIL FROM:<a@b>\r\n\r\n",
	    "WSP before the colon; new value sanitised");
	ok(injection_safe(result, strlen(result), "Subject : a\r\n\r\n"),
	    "changed value output safe");
	hdr_edits_free(&e);

	hdr_edits_init(&e);
	hdr_edit_change(&e, "A", 1, "new");
	apply(&e, "A: b");
	is_str(result, "A: new\r\n", "changed last line gets its CRLF");
	hdr_edits_free(&e);
}

static void
test_apply_dots_malformed(void)
{
	struct hdr_edits e;
	const char	 h[] = "..Foo: stuffed\r\n"
			       "Foo: bar\r\n"
			       "\t.cont\r\n"
			       "\t..cont2\r\n"
			       "..x\r\n"
			       "garbage line\r\n"
			       "\tgarbage continued\r\n"
			       "Foo: baz\r\n"
			       ": empty name\r\n"
			       "\r\n";

	hdr_edits_init(&e);
	hdr_edit_change(&e, "Foo", 2, "new");
	hdr_edit_add(&e, "X-Top", "t");
	hdr_edit_append(&e, "X-End", "e");
	apply(&e, h);
	is_str(result,
	    "X-Top: t\r\n..Foo: stuffed\r\nFoo: bar\r\n\t.cont\r\n\t..cont2\r\n"
	    "..x\r\ngarbage line\r\n\tgarbage continued\r\nFoo: new\r\n"
	    ": empty name\r\nX-End: e\r\n\r\n",
	    "dot-stuffed and malformed lines kept; \"..Foo\" is not Foo");
	ok(injection_safe(result, strlen(result), h),
	    "no new line starts with '.'");
	hdr_edits_free(&e);

	hdr_edits_init(&e);
	hdr_edit_change(&e, "Foo", 1, NULL);
	apply(&e, h);
	is_str(result,
	    "..Foo: stuffed\r\n..x\r\ngarbage line\r\n\tgarbage continued\r\n"
	    "Foo: baz\r\n: empty name\r\n\r\n",
	    "delete takes the dot-stuffed continuation lines along");
	hdr_edits_free(&e);

	hdr_edits_init(&e);
	hdr_edit_change(&e, "Foo", 0, "v");
	apply(&e, "Foo: a\r\nFoo\r\nFoo:b\r\n\r\n");
	is_str(result, "Foo: v\r\nFoo\r\nFoo: v\r\n\r\n",
	    "a name without colon is no occurrence");
	hdr_edits_free(&e);

	hdr_edits_init(&e);
	hdr_edit_change(&e, "A", 1, NULL);
	apply(&e, "A: 1\nB: 2\r\nC: 3\r\n\r\n");
	is_str(result, "C: 3\r\n\r\n", "only CRLF ends a line");
	hdr_edits_free(&e);
}

static const char ARH[] =
    "Authentication-Results: mx.example.com; spf=pass\r\n"
    "Authentication-Results: other.example; dkim=pass\r\n"
    "Authentication-Results: (mx.example.com) other.example; dkim=fail\r\n"
    "Authentication-Results: (a comment) mx.example.com; dmarc=pass\r\n"
    "authentication-results: \"mx.example.com\"; arc=pass\r\n"
    "Authentication-Results: mx.example.com.evil; spf=pass\r\n"
    "Authentication-Results:\r\n"
    "\tMX.Example.COM;\r\n"
    "\tspf=pass\r\n"
    "Authentication-Results : mx.example.com 1; spf=pass\r\n"
    "X-Authentication-Results: mx.example.com; spf=pass\r\n"
    "Subject: mx.example.com; spf=pass\r\n"
    "\r\n";

static void
test_ar_delete(void)
{
	struct hdr_edits e;

	hdr_edits_init(&e);
	hdr_edit_delete_ar(&e, "mx.example.com");
	apply(&e, ARH);
	is_str(result,
	    "Authentication-Results: other.example; dkim=pass\r\n"
	    "Authentication-Results: (mx.example.com) other.example; "
	    "dkim=fail\r\n"
	    "Authentication-Results: mx.example.com.evil; spf=pass\r\n"
	    "X-Authentication-Results: mx.example.com; spf=pass\r\n"
	    "Subject: mx.example.com; spf=pass\r\n"
	    "\r\n",
	    "our A-R deleted (plain, after comment, quoted, folded, any case, "
	    "with version); others, id in a comment, longer id, other "
	    "fields kept");
	hdr_edits_free(&e);

	hdr_edits_init(&e);
	hdr_edit_delete_ar(&e, "other.example");
	apply(&e, ARH);
	ok(strstr(result, "other.example; dkim=pass") == NULL &&
		strstr(result, "(mx.example.com) other.example") == NULL,
	    "other id: its two fields deleted");
	ok(strstr(result, "Authentication-Results: mx.example.com; spf=pass") !=
		NULL,
	    "other id: ours kept");
	hdr_edits_free(&e);

	hdr_edits_init(&e);
	hdr_edit_delete_ar(&e, "mx.example");
	apply(&e, ARH);
	is_str(result, ARH, "a prefix of the id matches nothing");
	hdr_edits_free(&e);

	/* Order with changes. */
	hdr_edits_init(&e);
	hdr_edit_change(&e, "Authentication-Results", 2, "mx.example.com; x=y");
	hdr_edit_delete_ar(&e, "mx.example.com");
	hdr_edit_delete_ar(&e, "mx.example.com");
	hdr_edit_change(&e, "Authentication-Results", 1, "mine; spf=none");
	apply(&e,
	    "Authentication-Results: mx.example.com; spf=fail\r\n"
	    "Authentication-Results: b.example; spf=fail\r\n"
	    "Authentication-Results: c.example; spf=fail\r\n\r\n");
	is_str(result,
	    "Authentication-Results: mine; spf=none\r\n"
	    "Authentication-Results: c.example; spf=fail\r\n\r\n",
	    "deletion tests the value as changed so far; a later change "
	    "wins");
	hdr_edits_free(&e);
}

static void
test_ar_has(void)
{
	const char *id = "mx.example.com";

	ok(ar_has_authserv_id(S("mx.example.com; spf=pass"), id), "plain");
	ok(ar_has_authserv_id(S(" mx.example.com"), id), "no results");
	ok(ar_has_authserv_id(S("\r\n\t mx.example.com;"), id), "folded");
	ok(ar_has_authserv_id(S("(x) (y (z)) mx.example.com;"), id),
	    "nested comments skipped");
	ok(ar_has_authserv_id(S("(a \\) b) mx.example.com;"), id),
	    "quoted-pair in comment");
	ok(ar_has_authserv_id(S("\"mx.example.com\"; spf=pass"), id),
	    "quoted-string");
	ok(ar_has_authserv_id(S("\"mx.exam\\ple.com\";"), id),
	    "quoted-pair in quoted-string");
	ok(ar_has_authserv_id(S("\"mx.example.com"), id),
	    "unterminated quoted-string still counts");
	ok(ar_has_authserv_id(S("mx.example.com(c);"), id),
	    "comment right after the id");
	ok(ar_has_authserv_id(S("MX.EXAMPLE.COM;"), id), "case-insensitive");
	ok(!ar_has_authserv_id(S("mx.example.com.evil;"), id), "longer id");
	ok(!ar_has_authserv_id(S("mx.example.co;"), id), "shorter id");
	ok(!ar_has_authserv_id(S("\"mx.example.com.\";"), id),
	    "longer quoted id");
	ok(!ar_has_authserv_id(S("(mx.example.com) x;"), id), "id in comment");
	ok(!ar_has_authserv_id(S("(mx.example.com;"), id),
	    "unterminated comment");
	ok(!ar_has_authserv_id(S(""), id), "empty value");
	ok(!ar_has_authserv_id(S(";mx.example.com"), id), "empty id first");
	ok(!ar_has_authserv_id("mx.example.com", 5, id), "bounded by len");
	ok(!ar_has_authserv_id(S("mx.example.com"), ""), "empty id");
	ok(!ar_has_authserv_id(S("mx.example.com"), NULL), "NULL id");
}

static void
test_ar_build(void)
{
	const char *one[] = { "spf=pass smtp.mailfrom=example.com" };
	const char *several[] = { "spf=pass smtp.mailfrom=a.example",
		"dkim=pass header.d=a.example",
		"dmarc=pass header.from=a.example" };
	const char *hostile[] = { "spf=pass\r\nX-Evil: 1",
		"spf=fail; dkim=pass header.d=paypal.com", ";dkim=pass", "",
		"   ", NULL, "\r\n", "smtp.mailfrom=\"a;b\" (c;d) x=y",
		"x=\"open", "y=(open (nested", "z=\"esc\\", "w=(esc\\",
		"v=\"a\\\"; still quoted" };
	const char *empties[] = { "", ";", " ; x" };
	char	   *s, *f;

	s = ar_build("mx.example.com", NULL, 0);
	is_str(s, "mx.example.com; none", "no results: none");
	free(s);
	s = ar_build("mx.example.com", one, 1);
	is_str(s, "mx.example.com; spf=pass smtp.mailfrom=example.com",
	    "one result");
	free(s);
	s = ar_build("mx.example.com", several, 3);
	is_str(s,
	    "mx.example.com; spf=pass smtp.mailfrom=a.example; "
	    "dkim=pass header.d=a.example; dmarc=pass header.from=a.example",
	    "several results");
	ok(ar_has_authserv_id(s, strlen(s), "mx.example.com"),
	    "built value carries our id");
	f = hdr_format("Authentication-Results", s, HDR_VALUE_MAX);
	ok(f != NULL && max_line(f) <= 78 && strstr(f, "\r\n\t") != NULL,
	    "formatted A-R folds");
	ok(f != NULL && injection_safe(f, strlen(f), NULL),
	    "formatted A-R safe");
	free(f);
	free(s);
	s = ar_build(
	    "mx.example.com", hostile, sizeof(hostile) / sizeof(*hostile));
	is_str(s,
	    "mx.example.com; spf=pass X-Evil: 1; spf=fail; "
	    "smtp.mailfrom=\"a;b\" (c;d) x=y; x=\"open\"; y=(open (nested)); "
	    "z=\"esc\"; w=(esc); v=\"a\\\"; still quoted\"",
	    "hostile clauses: CRLF, top-level ';', empties, open quotes and "
	    "comments");
	ok(strchr(s, '\r') == NULL && strchr(s, '\n') == NULL,
	    "hostile: no CR or LF");
	free(s);
	s = ar_build("mx.example.com", empties, 3);
	is_str(s, "mx.example.com; none", "only empty clauses: none");
	free(s);
	s = ar_build("mx.example.com\r\nX-Evil: 1;x", NULL, 0);
	is_str(s, "mx.example.com X-Evil: 1; none", "id sanitised and cut");
	free(s);
	ok(ar_build(NULL, one, 1) == NULL, "NULL id");
	ok(ar_build("", one, 1) == NULL, "empty id");
	ok(ar_build(" \r\n", one, 1) == NULL, "blank id");
}

/* Hostile strings through every writing path. */
static void
test_injection(void)
{
	static const char *const bad[] = { "a\r\nBcc: victim@example.com",
		"a\nX-Evil: 1", "a\rX-Evil: 1", "\r\n\r\nbody",
		"x\r\n.\r\nMAIL FROM:<a@b>", "\r\n.Dot: 1", "\n\tcont",
		"\x01\x02\x7f\x1b", "\xff\xc3\r\n\xe2\x82", "a\r\n \r\n b",
		"\t\r\n\t", ".leading dot", "\r\n", "", "a;b\r\nc", "(((((",
		"\"\"\"\\" };
	const size_t		 maxl[] = { 0, 1, 2, 5, 80, 998, 8192 };
	const char		 orig[] = "From: a@example.com\r\n"
					  "Subject: s\r\n"
					  "\r\n";
	struct hdr_edits	 e;
	char			*s;
	size_t			 i, j;
	int			 good_fmt = 1, good_apply = 1, good_ar = 1;

	for (i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		for (j = 0; j < sizeof(maxl) / sizeof(*maxl); j++) {
			s = hdr_format("X-Virus", bad[i], maxl[j]);
			if (s == NULL || !injection_safe(s, strlen(s), NULL) ||
			    strcmp(s + strlen(s) - 2, "\r\n") != 0)
				good_fmt = 0;
			free(s);
		}
		hdr_edits_init(&e);
		hdr_edit_add(&e, "X-Virus", bad[i]);
		hdr_edit_append(&e, "X-Sender", bad[i]);
		hdr_edit_change(&e, "Subject", 1, bad[i]);
		hdr_edit_change(&e, "From", 0, bad[i]);
		apply(&e, orig);
		if (!injection_safe(result, strlen(result), orig))
			good_apply = 0;
		if (strcmp(result + strlen(result) - 4, "\r\n\r\n") != 0)
			good_apply = 0;
		hdr_edits_free(&e);

		s = ar_build(bad[i], bad, sizeof(bad) / sizeof(*bad));
		if (s != NULL) {
			if (strpbrk(s, "\r\n") != NULL)
				good_ar = 0;
			free(s);
		}
	}
	ok(good_fmt, "hdr_format: hostile values stay inside their field");
	ok(good_apply,
	    "hdr_edits_apply: hostile values stay inside their "
	    "fields, empty line kept at the end");
	ok(good_ar, "ar_build: no CR or LF");

	/* The invariant helper itself must catch an injection. */
	ok(!injection_safe(S("X: a\r\nBcc: b\r\n.x\r\n"), NULL),
	    "checker: a '.' line is caught");
	ok(!injection_safe(S("X: a\r\n b\r\n"), NULL),
	    "checker: a SP continuation of ours is caught");
	ok(!injection_safe(S("X: a\nb\r\n"), NULL), "checker: bare LF caught");
}

int
main(void)
{
	test_name_ok();
	test_format_basic();
	test_format_sanitize();
	test_format_utf8();
	test_format_fold();
	test_format_truncate();
	test_section_end();
	test_edits_basic();
	test_apply_add_append();
	test_apply_change();
	test_apply_dots_malformed();
	test_ar_delete();
	test_ar_has();
	test_ar_build();
	test_injection();
	return tap_done();
}
