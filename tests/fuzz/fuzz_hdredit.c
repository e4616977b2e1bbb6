/*
 * fuzz_hdredit.c - libFuzzer target for proxy/hdredit.c: header edits on
 * wire-form header sections (RFC 5322 §2.2, RFC 5321 §4.5.2), value
 * formatting and folding, Authentication-Results matching and building
 * (RFC 8601).
 *
 * Input: byte 0 gives the number of edits n (0..8), then 2 bytes per edit
 * (op and value choice; name and index choice); the rest is the header
 * section, up to the first "\0\0", then NUL-separated strings used as
 * values, ids and (sometimes) names. Invariants checked (abort() on
 * violation):
 *
 *  - an edit is refused exactly when its name (or A-R id) is invalid;
 *  - hdr_edits_apply: every output line is a line of the input, byte for
 *    byte, or a line of ours: "Name:" with a valid name, or TAB and a
 *    non-whitespace byte, with no CR, LF or NUL in it; the empty line
 *    appears only from the input (or as the separator before a body-first
 *    input); the input's empty line and what follows end the output; no
 *    edits gives the input back;
 *  - hdr_format(n): one field, ends with CRLF, no bare CR/LF, no NUL, no
 *    control but TAB, lines <= 998, continuation lines TAB + non-WSP,
 *    valid UTF-8, at most maxlen value bytes;
 *  - ar_build: no control but TAB, quotes and comments closed, carries
 *    its id when the id is a plain token;
 *  - hdr_section_end: the first "\r\n\r\n" (or a leading "\r\n").
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE
 *   -Iproxy tests/fuzz/fuzz_hdredit.c proxy/hdredit.c proxy/util.c
 *   proxy/log.c -levent_core
 */
#include <event2/buffer.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hdredit.h"
#include "fuzz.h"

#define MAXSEG 8

static const char *const names[] = { "Subject", "Authentication-Results",
	"received", "X-Test", "FROM", "Foo", "authentication-results", "A" };

struct line {
	const char *p;
	size_t	    n;
};

static int
line_cmp(const void *x, const void *y)
{
	const struct line *a = x, *b = y;
	size_t		   n = a->n < b->n ? a->n : b->n;
	int		   r;

	if (n > 0 && (r = memcmp(a->p, b->p, n)) != 0)
		return r;
	return a->n < b->n ? -1 : a->n > b->n;
}

/* Lines of p[0..len) split at CRLF (the last one may lack it). */
static struct line *
split_lines(const char *p, size_t len, size_t *nl)
{
	struct line *v;
	size_t	     i, s, n = 0;

	v = malloc((len / 2 + 2) * sizeof(*v));
	CHECK(v != NULL);
	for (s = 0; s < len; s = i + 2) {
		for (i = s; i + 1 < len && !(p[i] == '\r' && p[i + 1] == '\n');
		     i++)
			;
		if (i + 1 >= len)
			i = len;
		v[n].p = p + s;
		v[n].n = i - s;
		n++;
	}
	*nl = n;
	return v;
}

static int
name_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '-';
}

static int
wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* A line we wrote: "Name:..." or TAB + non-WSP, no CR/LF/NUL. */
static int
our_line(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] == '\r' || p[i] == '\n' || p[i] == '\0')
			return 0;
	if (n >= 2 && p[0] == '\t')
		return !wsp((unsigned char)p[1]);
	for (i = 0; i < n && name_char((unsigned char)p[i]); i++)
		;
	return i > 0 && i < n && p[i] == ':' && p[0] != '-';
}

static int
valid_utf8(const unsigned char *p, size_t n)
{
	size_t i = 0, k, j;

	while (i < n) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		if (p[i] >= 0xc2 && p[i] <= 0xdf)
			k = 2;
		else if (p[i] >= 0xe0 && p[i] <= 0xef)
			k = 3;
		else if (p[i] >= 0xf0 && p[i] <= 0xf4)
			k = 4;
		else
			return 0;
		if (i + k > n)
			return 0;
		for (j = 1; j < k; j++)
			if ((p[i + j] & 0xc0) != 0x80)
				return 0;
		i += k;
	}
	return 1;
}

static void
check_format(const char *name, const char *v, size_t vlen, size_t maxlen)
{
	char  *s = hdr_formatn(name, v, vlen, maxlen);
	size_t len, i, nlen, col, content;

	if (!hdr_name_ok(name)) {
		CHECK(s == NULL);
		return;
	}
	CHECK(s != NULL);
	len = strlen(s);
	nlen = strlen(name);
	CHECK(len >= nlen + 3 && memcmp(s, name, nlen) == 0 && s[nlen] == ':');
	CHECK(s[len - 2] == '\r' && s[len - 1] == '\n');
	CHECK(valid_utf8((const unsigned char *)s, len));
	content = len - nlen - 3;
	if (content > 0) {
		CHECK(s[nlen + 1] == ' ' && !wsp((unsigned char)s[nlen + 2]));
		content--;
	}
	for (i = col = 0; i < len; i++, col++) {
		CHECK(s[i] != '\n' || (i > 0 && s[i - 1] == '\r'));
		CHECK(s[i] == '\t' || s[i] == '\r' || s[i] == '\n' ||
		    ((unsigned char)s[i] >= 0x20 && s[i] != 0x7f));
		if (s[i] == '\r') {
			CHECK(s[i + 1] == '\n');
			CHECK(col <= 998);
			if (i + 2 < len) {
				/* a continuation line of ours */
				CHECK(s[i + 2] == '\t' && i + 3 < len &&
				    !wsp((unsigned char)s[i + 3]) &&
				    s[i + 3] != '\r');
				content -= 3;
			}
			col = (size_t)-1;
			i++;
		}
	}
	CHECK(content <= maxlen);
	CHECK(content <= vlen);
	free(s);
}

static void
check_ar_build(const char *id, const char *const *res, size_t n)
{
	char  *s = ar_build(id, res, n);
	size_t i, depth = 0;
	int    quote = 0, plain = 1;

	for (i = 0; id[i] != '\0'; i++)
		if ((unsigned char)id[i] <= 0x20 ||
		    (unsigned char)id[i] >= 0x7f ||
		    strchr("()<>@,;:\\\"/[]?=", id[i]) != NULL)
			plain = 0;
	if (s == NULL) {
		CHECK(!plain || id[0] == '\0');
		return;
	}
	for (i = 0; s[i] != '\0'; i++) {
		CHECK((unsigned char)s[i] >= 0x20 || s[i] == '\t');
		CHECK(s[i] != 0x7f);
		if ((quote || depth > 0) && s[i] == '\\') {
			CHECK(s[i + 1] != '\0');
			i++;
		} else if (quote) {
			quote = s[i] != '"';
		} else if (s[i] == '(')
			depth++;
		else if (depth > 0)
			depth -= s[i] == ')';
		else if (s[i] == '"')
			quote = 1;
	}
	CHECK(!quote && depth == 0);
	if (plain && id[0] != '\0')
		CHECK(ar_has_authserv_id(s, strlen(s), id));
	free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hdr_edits    e;
	struct evbuffer	   *out;
	struct line	   *in_l, *out_l;
	const char	   *hdr, *sep, *seg[MAXSEG], *name, *value;
	char		   *vals, *o;
	size_t		    n, i, hlen, vlen, nseg, nin, nout, olen, rest;
	unsigned	    op, arg;
	long		    end;
	int		    r, body_first;
	static const size_t maxl[] = { 0, 1, 7, 78, 1000, HDR_VALUE_MAX };

	if (size < 1)
		return 0;
	n = data[0] % 9;
	if (size < 1 + 2 * n)
		return 0;
	hdr = (const char *)data + 1 + 2 * n;
	hlen = size - 1 - 2 * n;
	sep = memmem(hdr, hlen, "\0\0", 2);
	vlen = 0;
	if (sep != NULL) {
		vlen = hlen - (size_t)(sep - hdr) - 2;
		hlen = (size_t)(sep - hdr);
	}
	vals = malloc(vlen + 1);
	CHECK(vals != NULL);
	if (vlen > 0)
		memcpy(vals, sep + 2, vlen);
	vals[vlen] = '\0';
	for (nseg = 0, i = 0; nseg < MAXSEG && i <= vlen; nseg++) {
		seg[nseg] = vals + i;
		i += strlen(vals + i) + 1;
	}

	/* hdr_section_end: the first empty line. */
	end = hdr_section_end(hdr, hlen);
	if (hlen >= 2 && hdr[0] == '\r' && hdr[1] == '\n')
		CHECK(end == 2);
	else if (end == -1)
		CHECK(memmem(hdr, hlen, "\r\n\r\n", 4) == NULL);
	else
		CHECK(end >= 4 && (size_t)end <= hlen &&
		    memcmp(hdr + end - 4, "\r\n\r\n", 4) == 0 &&
		    memmem(hdr, (size_t)end - 1, "\r\n\r\n", 4) == NULL);

	hdr_edits_init(&e);
	for (i = 0; i < n; i++) {
		op = data[1 + 2 * i];
		arg = data[2 + 2 * i];
		name = (arg & 0x80) ? seg[((arg >> 3) & 7) % nseg]
				    : names[arg & 7];
		value = (op & 0x80) ? NULL : seg[(op >> 2) % nseg];
		switch (op & 3) {
		case 0:
			r = hdr_edit_add(&e, name, value);
			CHECK((r == 0) == hdr_name_ok(name));
			break;
		case 1:
			r = hdr_edit_append(&e, name, value);
			CHECK((r == 0) == hdr_name_ok(name));
			break;
		case 2:
			r = hdr_edit_change(&e, name, (arg >> 4) & 3, value);
			CHECK((r == 0) == hdr_name_ok(name));
			break;
		default:
			value = (op & 0x80) ? "mx.example.com"
					    : seg[(op >> 2) % nseg];
			r = hdr_edit_delete_ar(&e, value);
			CHECK((r == 0) == (value[0] != '\0'));
			break;
		}
	}

	out = evbuffer_new();
	CHECK(out != NULL);
	CHECK(hdr_edits_apply(&e, hdr, hlen, out) == 0);
	olen = evbuffer_get_length(out);
	o = (char *)evbuffer_pullup(out, -1);
	CHECK(olen == 0 || o != NULL);
	if (e.n == 0)
		CHECK(olen == hlen && (hlen == 0 || memcmp(o, hdr, hlen) == 0));

	/* Every output line: the input's, or ours. */
	in_l = split_lines(hdr, hlen, &nin);
	qsort(in_l, nin, sizeof(*in_l), line_cmp);
	out_l = split_lines(o, olen, &nout);
	body_first = hlen > 0 && wsp((unsigned char)hdr[0]);
	for (i = 0; i < nout; i++) {
		if (bsearch(&out_l[i], in_l, nin, sizeof(*in_l), line_cmp))
			continue;
		if (out_l[i].n == 0 && body_first)
			continue;
		CHECK(our_line(out_l[i].p, out_l[i].n));
	}
	/* The empty line and what follows it end the output. */
	if (end >= 2 && !body_first) {
		rest = hlen - (size_t)end + 2;
		CHECK(olen >= rest &&
		    memcmp(o + olen - rest, hdr + end - 2, rest) == 0);
	}
	free(in_l);
	free(out_l);
	evbuffer_free(out);
	hdr_edits_free(&e);

	/* Formatting of every value, and of the raw values region. */
	for (i = 0; i < nseg; i++) {
		check_format(names[i % 8], seg[i], strlen(seg[i]),
		    maxl[i % (sizeof(maxl) / sizeof(*maxl))]);
		check_format(seg[i], "v", 1, 10);
		(void)ar_has_authserv_id(hdr, hlen, seg[i]);
		(void)ar_has_authserv_id(
		    seg[i], strlen(seg[i]), "mx.example.com");
	}
	check_format("X-Raw", vals, vlen, n * 100);
	check_format("X-Hdr", hdr, hlen, HDR_VALUE_MAX);
	check_ar_build(seg[0], seg + 1, nseg - 1);
	check_ar_build("mx.example.com", seg, nseg);
	free(vals);
	return 0;
}
