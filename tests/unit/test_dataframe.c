/*
 * test_dataframe.c - unit tests for proxy/dataframe.c: DATA framing and
 * dot-unstuffing (RFC 5321 §4.1.1.4, §4.5.2), BDAT content (RFC 3030),
 * the bare CR / bare LF / NUL policies, and the re-dot-stuffing encoder.
 *
 * Besides hand-written cases, every input is checked against a slow,
 * obviously-correct reference model (ref_frame) and against a strict
 * "upstream" that splits the re-stuffed wire at CR LF "." CR LF: moat must
 * never send more than one message for one message received (invariant 2,
 * no SMTP smuggling). Single-threaded test program.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dataframe.h"
#include "tap.h"

#define S(lit) (lit), (sizeof(lit) - 1)
#define is_lit(got, gotlen, lit, ...)                                          \
	is_mem((got), gotlen, (lit), sizeof(lit) - 1, __VA_ARGS__)

/* A growing byte buffer that also counts emit calls. */
struct sink {
	char	   *buf;
	size_t	    len;
	size_t	    cap;
	int	    calls;
	const char *lo; /* input range, to count in-place spans */
	const char *hi;
	int	    inplace;
};

struct res {
	struct sink out;
	size_t	    consumed;
	unsigned    flags;
	int	    done;
	size_t	    bytes_out;
};

static void
sink_add(struct sink *s, const char *p, size_t n)
{
	if (s->len + n + 1 > s->cap) {
		s->cap = (s->len + n + 1) * 2 + 64;
		s->buf = realloc(s->buf, s->cap);
		if (s->buf == NULL)
			abort();
	}
	memcpy(s->buf + s->len, p, n);
	s->len += n;
	s->buf[s->len] = '\0';
}

static void
sink_emit(void *arg, const char *p, size_t n)
{
	struct sink *s = arg;

	s->calls++;
	if (n == 0)
		s->calls += 1000; /* empty spans are a bug */
	if (s->lo != NULL && p >= s->lo && p + n <= s->hi)
		s->inplace++;
	sink_add(s, p, n);
}

static void
sink_free(struct sink *s)
{
	free(s->buf);
	memset(s, 0, sizeof(*s));
}

static void
res_free(struct res *r)
{
	sink_free(&r->out);
}

/*
 * Feed in[0..len) in pieces: cuts[] lists increasing cut offsets (ncuts of
 * them). In DATA mode feeding stops once the framer is done. When the data
 * does not end the message, dataframe_finish() is called if fin.
 */
static void
frame_cuts(enum df_mode mode, enum df_policy bare, enum df_policy nul,
    const char *in, size_t len, const size_t *cuts, size_t ncuts, int fin,
    struct res *r)
{
	struct dataframe df;
	size_t		 pos = 0, next, c, i, n;

	memset(r, 0, sizeof(*r));
	r->out.lo = in;
	r->out.hi = in + len;
	dataframe_init(&df, mode, bare, nul, sink_emit, &r->out);
	for (i = 0; i <= ncuts && pos < len; i++) {
		next = i < ncuts ? cuts[i] : len;
		if (next <= pos)
			continue;
		n = next - pos;
		c = dataframe_feed(&df, in + pos, n);
		if (c > n)
			abort();
		pos += c;
		if (c < n) {
			if (!df.done)
				r->consumed = (size_t)-1; /* must not */
			break;
		}
	}
	if (r->consumed != (size_t)-1)
		r->consumed = pos;
	if (!df.done && fin)
		dataframe_finish(&df);
	r->flags = df.flags;
	r->done = df.done;
	r->bytes_out = df.bytes_out;
}

static void
frame(enum df_mode mode, enum df_policy bare, enum df_policy nul,
    const char *in, size_t len, size_t chunk, int fin, struct res *r)
{
	size_t *cuts, n = 0, k;

	if (chunk == 0) {
		frame_cuts(mode, bare, nul, in, len, NULL, 0, fin, r);
		return;
	}
	cuts = calloc(len / chunk + 1, sizeof(*cuts));
	if (cuts == NULL)
		abort();
	for (k = chunk; k < len; k += chunk)
		cuts[n++] = k;
	frame_cuts(mode, bare, nul, in, len, cuts, n, fin, r);
	free(cuts);
}

static void
data(const char *in, size_t len, enum df_policy pol, struct res *r)
{
	frame(DF_MODE_DATA, pol, pol, in, len, 0, 0, r);
}

/*
 * The reference model, written from the rules rather than for speed:
 * 1. DATA: the end is the first ".\r\n" at offset j with j == 0 or
 *    in[j-2..j) == "\r\n"; everything before j is the raw content.
 * 2. Lines end at a real CR LF; under DF_NORMALIZE also at a bare CR or
 *    bare LF. NUL (and, under DF_REJECT, bare CR/LF) are invisible.
 * 3. DATA: a line starting with "." loses it when the line has more
 *    (raw) bytes; a line that is just "." is kept as content.
 * 4. An unterminated last line (only when fin): its text, then CR LF if the
 *    content is non-empty and does not end with CR LF.
 */
static void
ref_emit_line(struct sink *o, int mode, enum df_policy bare, const char *t,
    size_t n, int term)
{
	size_t i = 0;

	if (mode == DF_MODE_DATA && n > 1 && t[0] == '.')
		i = 1;
	for (; i < n; i++) {
		if (t[i] == '\0')
			continue;
		if (bare == DF_REJECT && (t[i] == '\r' || t[i] == '\n'))
			continue;
		sink_add(o, t + i, 1);
	}
	if (term)
		sink_add(o, "\r\n", 2);
}

static void
ref_frame(enum df_mode mode, enum df_policy bare, const char *in, size_t len,
    int fin, struct res *r)
{
	size_t end = len, j, i, ls;
	int    found = 0;

	memset(r, 0, sizeof(*r));
	r->consumed = len;
	if (mode == DF_MODE_DATA) {
		for (j = 0; j + 3 <= len; j++) {
			if (in[j] == '.' && in[j + 1] == '\r' &&
			    in[j + 2] == '\n' &&
			    (j == 0 ||
				(j >= 2 && in[j - 2] == '\r' &&
				    in[j - 1] == '\n'))) {
				found = 1;
				end = j;
				r->consumed = j + 3;
				break;
			}
		}
	}
	for (i = 0; i < r->consumed; i++) {
		if (in[i] == '\0')
			r->flags |= DF_F_NUL;
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
			r->flags |= DF_F_BARE_LF;
		if (in[i] == '\r' && (i + 1 < len ? in[i + 1] != '\n' : fin))
			r->flags |= DF_F_BARE_CR;
	}
	r->done = found || fin;
	ls = 0;
	for (i = 0; i < end; i++) {
		if (in[i] == '\r' && i + 1 < end && in[i + 1] == '\n') {
			ref_emit_line(&r->out, mode, bare, in + ls, i - ls, 1);
			i++;
			ls = i + 1;
		} else if (bare == DF_NORMALIZE &&
		    (in[i] == '\n' ||
			(in[i] == '\r' && (i + 1 < end || fin)))) {
			ref_emit_line(&r->out, mode, bare, in + ls, i - ls, 1);
			ls = i + 1;
		}
	}
	if (!found && fin) {
		ref_emit_line(&r->out, mode, bare, in + ls, end - ls, 0);
		if (r->out.len > 0 &&
		    (r->out.len < 2 ||
			memcmp(r->out.buf + r->out.len - 2, "\r\n", 2) != 0))
			sink_add(&r->out, "\r\n", 2);
	}
	r->bytes_out = r->out.len;
}

/* Content -> wire through the encoder under test, fed in `chunk` pieces. */
static void
restuff(const char *c, size_t n, size_t chunk, struct sink *w)
{
	struct dotstuff ds;
	size_t		k, m;

	memset(w, 0, sizeof(*w));
	dotstuff_init(&ds, sink_emit, w);
	if (chunk == 0)
		chunk = n ? n : 1;
	for (k = 0; k < n; k += m) {
		m = n - k < chunk ? n - k : chunk;
		dotstuff_feed(&ds, c + k, m);
	}
	dotstuff_end(&ds);
}

/*
 * The strict upstream: number of CR LF "." CR LF terminators in the wire
 * (which starts at beginning of line), and whether the first one is at the
 * very end. Also refuses any bare CR, bare LF or NUL: then a lenient
 * upstream could frame differently.
 */
static int
upstream_ok(const char *w, size_t n)
{
	size_t i, terms = 0, first = (size_t)-1;

	for (i = 0; i < n; i++) {
		if (w[i] == '\0')
			return 0;
		if (w[i] == '\r' && (i + 1 >= n || w[i + 1] != '\n'))
			return 0;
		if (w[i] == '\n' && (i == 0 || w[i - 1] != '\r'))
			return 0;
		/* A line that is exactly "." starting at i. */
		if (w[i] == '.' && (i == 0 || w[i - 1] == '\n') && i + 2 < n &&
		    w[i + 1] == '\r' && w[i + 2] == '\n') {
			terms++;
			if (first == (size_t)-1)
				first = i;
		}
	}
	return terms == 1 && first + 3 == n;
}

static int
res_eq(const struct res *a, const struct res *b)
{
	return a->out.len == b->out.len &&
	    memcmp(a->out.buf ? a->out.buf : "", b->out.buf ? b->out.buf : "",
		a->out.len) == 0 &&
	    a->consumed == b->consumed && a->flags == b->flags &&
	    a->done == b->done && a->bytes_out == b->bytes_out;
}

static void
dump(const char *what, const char *p, size_t n)
{
	size_t i;

	printf("#   %s (%zu): \"", what, n);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c >= 0x20 && c < 0x7f && c != '\\')
			putchar(c);
		else
			printf("\\x%02x", c);
	}
	printf("\"\n");
}

static void
diag(const char *in, size_t len, const struct res *got, const struct res *want)
{
	dump("input", in, len);
	dump("got", got->out.buf ? got->out.buf : "", got->out.len);
	dump("want", want->out.buf ? want->out.buf : "", want->out.len);
	printf("#   consumed %zu/%zu flags %#x/%#x done %d/%d bytes_out %zu\n",
	    got->consumed, want->consumed, got->flags, want->flags, got->done,
	    want->done, got->bytes_out);
}

/*
 * One input under one policy pair, many ways: whole, byte by byte, every
 * two-piece split, and random pieces; all must equal the reference. For
 * DATA, the re-stuffed output must also be exactly one message upstream.
 * Returns 1 when all agree (diagnostics printed for the first failure).
 */
static int
check_all(enum df_mode mode, enum df_policy bare, enum df_policy nul,
    const char *in, size_t len, int splits)
{
	struct res  want, got;
	struct sink w;
	size_t	    k, cut[1];
	int	    good = 1;

	ref_frame(mode, bare, in, len, 1, &want);
	/* The model needs no NUL policy: NUL is dropped and flagged both ways.
	 */
	frame(mode, bare, nul, in, len, 0, 1, &got);
	if (!res_eq(&got, &want)) {
		printf("# whole feed differs (mode %d bare %d nul %d)\n", mode,
		    bare, nul);
		diag(in, len, &got, &want);
		good = 0;
	}
	res_free(&got);
	if (good) {
		frame(mode, bare, nul, in, len, 1, 1, &got);
		if (!res_eq(&got, &want)) {
			printf("# byte-by-byte differs\n");
			diag(in, len, &got, &want);
			good = 0;
		}
		res_free(&got);
	}
	for (k = 1; good && splits && k < len; k++) {
		cut[0] = k;
		frame_cuts(mode, bare, nul, in, len, cut, 1, 1, &got);
		if (!res_eq(&got, &want)) {
			printf("# split at %zu differs\n", k);
			diag(in, len, &got, &want);
			good = 0;
		}
		res_free(&got);
	}
	if (good && mode == DF_MODE_DATA) {
		restuff(want.out.buf, want.out.len, 0, &w);
		if (!upstream_ok(w.buf, w.len)) {
			printf("# upstream would not see one message\n");
			dump("input", in, len);
			dump("wire", w.buf, w.len);
			good = 0;
		}
		sink_free(&w);
	}
	res_free(&want);
	return good;
}

/* ------------------------------------------------------------------ */

static void
test_plain(void)
{
	static const char msg[] = "From: a@example.org\r\n"
				  "Subject: hi\r\n"
				  "\r\n"
				  "Hello,\r\n"
				  "world.\r\n"
				  ".\r\n";
	struct res	  r;

	data(S(msg), DF_REJECT, &r);
	is_int(r.consumed, sizeof(msg) - 1, "plain: all consumed");
	ok(r.done, "plain: done");
	is_int(r.flags, 0, "plain: no flags");
	is_mem(r.out.buf, r.out.len, msg, sizeof(msg) - 4,
	    "plain: content is the message without the terminator");
	is_int(r.bytes_out, sizeof(msg) - 4, "plain: bytes_out");
	is_int(r.out.calls, 1, "plain: one span");
	is_int(r.out.inplace, 1, "plain: the span points into the input");
	res_free(&r);

	data(S(".\r\n"), DF_REJECT, &r);
	ok(r.done && r.consumed == 3 && r.out.len == 0,
	    "empty message: \".\\r\\n\" first is the end");
	is_int(r.out.calls, 0, "empty message: nothing emitted");
	res_free(&r);

	data(S("\r\n.\r\n"), DF_REJECT, &r);
	ok(r.done && r.consumed == 5, "one empty line, then end");
	is_lit(r.out.buf, r.out.len, "\r\n", "one empty line content");
	res_free(&r);

	data(S("a\r\nb"), DF_REJECT, &r);
	ok(!r.done && r.consumed == 4, "no end yet: all consumed, not done");
	is_lit(r.out.buf, r.out.len, "a\r\nb", "no end yet: content so far");
	res_free(&r);

	data(S("a\r"), DF_REJECT, &r);
	is_lit(r.out.buf, r.out.len, "a", "trailing CR is held back");
	res_free(&r);
}

static void
test_unstuff(void)
{
	static const char wire[] = "..\r\n"
				   ".x\r\n"
				   "...\r\n"
				   "a.\r\n"
				   " .\r\n"
				   "..\r\n"
				   ".\r\n";
	/* The same with only the needed stuffing (".x" needs none). */
	static const char canon[] = "..\r\n"
				    "x\r\n"
				    "...\r\n"
				    "a.\r\n"
				    " .\r\n"
				    "..\r\n"
				    ".\r\n";
	static const char content[] = ".\r\n"
				      "x\r\n"
				      "..\r\n"
				      "a.\r\n"
				      " .\r\n"
				      ".\r\n";
	struct res	  r;
	struct sink	  w;

	data(S(wire), DF_REJECT, &r);
	ok(r.done && r.consumed == sizeof(wire) - 1, "stuffed: framed");
	is_lit(r.out.buf, r.out.len, content, "stuffed: unstuffed");
	is_int(r.flags, 0, "stuffed: no flags");
	ok(r.out.calls <= 8, "stuffed: few spans (%d)", r.out.calls);
	restuff(r.out.buf, r.out.len, 0, &w);
	is_lit(w.buf, w.len, canon, "round trip gives the canonical wire");
	sink_free(&w);
	restuff(r.out.buf, r.out.len, 1, &w);
	is_lit(w.buf, w.len, canon, "round trip, encoder fed bytewise");
	sink_free(&w);
	res_free(&r);

	data(S(".\r\n.\r\n"), DF_REJECT, &r);
	ok(r.done && r.consumed == 3 && r.out.len == 0,
	    "first \".\" line ends, rest not consumed");
	res_free(&r);
}

static void
test_splits(void)
{
	static const char msg[] = "a\r\n..b\r\nc\r\n.\r\n";
	static const char want[] = "a\r\n.b\r\nc\r\n";
	struct res	  r;
	size_t		  k, j, cut[2];
	int		  good = 1;

	frame(DF_MODE_DATA, DF_REJECT, DF_REJECT, S(msg), 1, 0, &r);
	ok(r.done && r.consumed == sizeof(msg) - 1 &&
		r.out.len == sizeof(want) - 1 &&
		memcmp(r.out.buf, want, r.out.len) == 0,
	    "byte by byte");
	res_free(&r);
	for (k = 1; k < sizeof(msg) - 1; k++) {
		for (j = k + 1; j < sizeof(msg) - 1; j++) {
			cut[0] = k;
			cut[1] = j;
			frame_cuts(DF_MODE_DATA, DF_REJECT, DF_REJECT, S(msg),
			    cut, 2, 0, &r);
			if (!r.done || r.consumed != sizeof(msg) - 1 ||
			    r.out.len != sizeof(want) - 1 ||
			    memcmp(r.out.buf, want, r.out.len) != 0) {
				printf("# cut %zu,%zu\n", k, j);
				good = 0;
			}
			res_free(&r);
		}
	}
	ok(good, "every pair of split points gives the same result");
	ok(check_all(DF_MODE_DATA, DF_REJECT, DF_REJECT, S(msg), 1),
	    "every split point matches the model (reject)");
	ok(check_all(DF_MODE_DATA, DF_NORMALIZE, DF_NORMALIZE, S(msg), 1),
	    "every split point matches the model (normalize)");
}

static void
test_pipelined(void)
{
	static const char in[] =
	    "x\r\n.\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n";
	struct res r;
	size_t	   k, cut[1];
	int	   good = 1;

	data(S(in), DF_REJECT, &r);
	is_int(r.consumed, 6, "pipelined: stops right after the terminator");
	is_lit(r.out.buf, r.out.len, "x\r\n", "pipelined: content");
	res_free(&r);
	for (k = 1; k < sizeof(in) - 1; k++) {
		cut[0] = k;
		frame_cuts(DF_MODE_DATA, DF_NORMALIZE, DF_NORMALIZE, S(in), cut,
		    1, 0, &r);
		if (r.consumed != 6 || !r.done)
			good = 0;
		res_free(&r);
	}
	ok(good, "pipelined: every split stops at 6");
	frame(DF_MODE_DATA, DF_REJECT, DF_REJECT, S(in), 4, 0, &r);
	is_int(r.consumed, 6, "pipelined: 4-byte pieces stop at 6");
	res_free(&r);
	{
		struct dataframe df;
		struct sink	 s;

		memset(&s, 0, sizeof(s));
		dataframe_init(
		    &df, DF_MODE_DATA, DF_REJECT, DF_REJECT, sink_emit, &s);
		is_int(dataframe_feed(&df, S(".\r\n")), 3, "done after 3");
		is_int(dataframe_feed(&df, S("more")), 0,
		    "feed after done consumes nothing");
		is_int(s.len, 0, "nothing emitted after done");
		sink_free(&s);
	}
}

/*
 * The smuggling corpus: "MSG1" + variant + "MAIL FROM...DATA\r\nevil" +
 * "\r\n.\r\n" + "QUIT\r\n". The variant must never end the data: the framer
 * ends at the genuine terminator, just before QUIT.
 */
struct smuggle {
	const char *v;
	size_t	    len;
	unsigned    flags; /* what must be flagged */
};

#define V(lit, f)                                                              \
	{                                                                      \
		(lit), sizeof(lit) - 1, (f)                                    \
	}

static const struct smuggle smuggles[] = {
	V("\n.\n", DF_F_BARE_LF), V("\n.\r\n", DF_F_BARE_LF),
	V("\r\n.\n", DF_F_BARE_LF), V("\r.\r", DF_F_BARE_CR),
	V("\r.\r\n", DF_F_BARE_CR), V("\r\n.\r", DF_F_BARE_CR),
	V("\n.\r", DF_F_BARE_LF | DF_F_BARE_CR),
	V("\r.\n", DF_F_BARE_CR | DF_F_BARE_LF), V("\r\n\x00.\r\n", DF_F_NUL),
	V("\r\n.\x00\r\n", DF_F_NUL), V("\r\n.\r\r\n", DF_F_BARE_CR),
	V("\r\n.\n\r\n", DF_F_BARE_LF), V("\r\n\r.\r\n", DF_F_BARE_CR),
	V("\r\n\n.\r\n", DF_F_BARE_LF),
	V("\n\r.\r\n", DF_F_BARE_LF | DF_F_BARE_CR),
	V("\r\n.\r\x00\n", DF_F_BARE_CR | DF_F_NUL | DF_F_BARE_LF),
	V("\r\n.\x00\n", DF_F_NUL | DF_F_BARE_LF),
	V("\r\n\x00.\n", DF_F_NUL | DF_F_BARE_LF), V("\n\n.\n\n", DF_F_BARE_LF),
	V("\r\r.\r\r", DF_F_BARE_CR), V("\r\n.\r\r", DF_F_BARE_CR),
	V("\r\n. \r\n", 0), /* a content line " " (stuffed ". ") */
	V("x.\r\n", 0),	    /* "." not at beginning of line */
	V("\r\nx.\r\n", 0), V("\r\n..\r\n", 0), /* a stuffed "." line */
};

static void
test_smuggling(void)
{
	static const char pre[] = "Subject: t\r\n\r\nMSG1";
	static const char post[] = "MAIL FROM:<evil@example>\r\n"
				   "RCPT TO:<victim@example>\r\n"
				   "DATA\r\n"
				   "From: ceo@example\r\n\r\nevil";
	static const char term[] = "\r\n.\r\n";
	static const char next[] = "QUIT\r\n";
	char		  in[512];
	size_t		  i, len, want;
	struct res	  r;
	struct sink	  w;
	enum df_policy	  pol;
	int		  good;

	for (i = 0; i < sizeof(smuggles) / sizeof(smuggles[0]); i++) {
		len = 0;
		memcpy(in + len, pre, sizeof(pre) - 1);
		len += sizeof(pre) - 1;
		memcpy(in + len, smuggles[i].v, smuggles[i].len);
		len += smuggles[i].len;
		memcpy(in + len, post, sizeof(post) - 1);
		len += sizeof(post) - 1;
		memcpy(in + len, term, sizeof(term) - 1);
		len += sizeof(term) - 1;
		want = len;
		memcpy(in + len, next, sizeof(next) - 1);
		len += sizeof(next) - 1;

		/* Reject: no early end, the right flags, in sync. */
		data(in, len, DF_REJECT, &r);
		good = r.done && r.consumed == want;
		if (!ok(good && r.flags == smuggles[i].flags,
			"reject: variant %zu ends only at the real end, "
			"flags %#x",
			i, smuggles[i].flags)) {
			dump("variant", smuggles[i].v, smuggles[i].len);
			printf("#   consumed %zu want %zu flags %#x\n",
			    r.consumed, want, r.flags);
		}
		res_free(&r);

		/* Normalize: same framing; upstream sees one message. */
		for (pol = DF_REJECT; pol <= DF_NORMALIZE; pol++) {
			data(in, len, pol, &r);
			restuff(r.out.buf, r.out.len, 0, &w);
			if (!ok(r.done && r.consumed == want &&
				    upstream_ok(w.buf, w.len),
				"%s: variant %zu: upstream sees one message",
				pol == DF_REJECT ? "reject" : "normalize", i)) {
				dump("variant", smuggles[i].v, smuggles[i].len);
				dump("wire", w.buf, w.len);
			}
			sink_free(&w);
			res_free(&r);
		}

		/* Every split point, every policy pair, against the model. */
		good =
		    check_all(DF_MODE_DATA, DF_REJECT, DF_REJECT, in, len, 1) &&
		    check_all(
			DF_MODE_DATA, DF_NORMALIZE, DF_NORMALIZE, in, len, 1) &&
		    check_all(
			DF_MODE_DATA, DF_NORMALIZE, DF_REJECT, in, len, 1) &&
		    check_all(
			DF_MODE_DATA, DF_REJECT, DF_NORMALIZE, in, len, 1);
		ok(good, "variant %zu: all splits and policies match model", i);
	}
}

/* Normalised outputs of a few variants, spelled out. */
static void
test_normalize_content(void)
{
	struct res r;

	data(S("a\n.\nb\r\n.\r\n"), DF_NORMALIZE, &r);
	is_lit(r.out.buf, r.out.len, "a\r\n.\r\nb\r\n",
	    "\"\\n.\\n\": a content line \".\"");
	is_int(r.flags, DF_F_BARE_LF, "\"\\n.\\n\": bare LF flagged");
	res_free(&r);

	data(S("a\r\n.\nb\r\n.\r\n"), DF_NORMALIZE, &r);
	is_lit(r.out.buf, r.out.len, "a\r\n.\r\nb\r\n",
	    "\"\\r\\n.\\n\": content \".\"");
	res_free(&r);

	data(S("a\n.\r\nb\r\n.\r\n"), DF_NORMALIZE, &r);
	is_lit(r.out.buf, r.out.len, "a\r\n.\r\nb\r\n",
	    "\"\\n.\\r\\n\": content \".\" (line began after a bare LF)");
	res_free(&r);

	data(S("a\n..x\r\n.\r\n"), DF_NORMALIZE, &r);
	is_lit(r.out.buf, r.out.len, "a\r\n.x\r\n",
	    "unstuffing applies after a normalised bare LF");
	res_free(&r);

	data(S("a\rb\r\r\n.\r\n"), DF_NORMALIZE, &r);
	is_lit(r.out.buf, r.out.len, "a\r\nb\r\n\r\n",
	    "bare CR -> CRLF, CR CR LF -> two line ends");
	is_int(r.flags, DF_F_BARE_CR, "bare CR flagged");
	ok(r.done && r.consumed == 9,
	    "\"\\r\\r\\n.\\r\\n\" is a genuine end after a bare CR");
	res_free(&r);

	data(S("a\0b\r\n\0.\r\n.\0\r\n.\r\n"), DF_NORMALIZE, &r);
	is_lit(r.out.buf, r.out.len, "ab\r\n.\r\n\r\n",
	    "NUL dropped; \"\\0.\" is the line \".\"; \".\\0\" is unstuffed");
	is_int(r.flags, DF_F_NUL, "NUL flagged");
	res_free(&r);

	data(S("a\nb\r\n.\r\n"), DF_REJECT, &r);
	is_lit(r.out.buf, r.out.len, "ab\r\n", "reject: bare LF emits nothing");
	is_int(r.flags, DF_F_BARE_LF, "reject: flagged");
	res_free(&r);

	frame(DF_MODE_DATA, DF_REJECT, DF_NORMALIZE, S("a\0\nb\r\n.\r\n"), 0, 0,
	    &r);
	ok(r.flags == (DF_F_NUL | DF_F_BARE_LF) && r.out.len == 4,
	    "separate policies: NUL dropped, bare LF refused");
	res_free(&r);

	frame(DF_MODE_DATA, DF_NORMALIZE, DF_REJECT, S("a\0\nb\r\n.\r\n"), 0, 0,
	    &r);
	is_lit(r.out.buf, r.out.len, "a\r\nb\r\n",
	    "separate policies: bare LF normalised, NUL refused");
	res_free(&r);
}

static void
test_cr_across_feeds(void)
{
	struct dataframe df;
	struct sink	 s;

	memset(&s, 0, sizeof(s));
	dataframe_init(&df, DF_MODE_DATA, DF_REJECT, DF_REJECT, sink_emit, &s);
	is_int(dataframe_feed(&df, S("abc\r")), 4, "CR at end consumed");
	is_lit(s.buf, s.len, "abc", "CR not emitted yet");
	is_int(dataframe_feed(&df, S("\n.")), 2, "LF, dot consumed");
	is_lit(s.buf, s.len, "abc\r\n", "CR LF emitted");
	is_int(dataframe_feed(&df, S("\r")), 1, "dot CR");
	is_int(dataframe_feed(&df, S("\nNOOP\r\n")), 1,
	    "LF ends the data, NOOP left");
	ok(df.done && df.flags == 0, "done, clean");
	sink_free(&s);

	memset(&s, 0, sizeof(s));
	dataframe_init(&df, DF_MODE_DATA, DF_REJECT, DF_REJECT, sink_emit, &s);
	dataframe_feed(&df, S("abc\r"));
	dataframe_feed(&df, S("x\r\n.\r\n"));
	ok(df.done && df.flags == DF_F_BARE_CR, "CR then x: bare CR");
	is_lit(s.buf, s.len, "abcx\r\n", "reject: bare CR dropped");
	sink_free(&s);
}

static void
test_bdat(void)
{
	struct dataframe  df;
	struct sink	  s;
	struct res	  r;
	static const char nasty[] = "a\r\n.\r\n\r\n.\r\rb\n\0c\r";
	enum df_policy	  b, n;
	int		  good = 1;

	memset(&s, 0, sizeof(s));
	dataframe_init(&df, DF_MODE_BDAT, DF_REJECT, DF_REJECT, sink_emit, &s);
	is_int(dataframe_feed(&df, S("x\r\n.\r\n..\r\nabc\r")), 14,
	    "bdat: consumes everything");
	ok(!df.done, "bdat: no end detection");
	is_int(dataframe_feed(&df, S("\ndef")), 4, "bdat: second chunk");
	is_lit(s.buf, s.len, "x\r\n.\r\n..\r\nabc\r\ndef",
	    "bdat: no dot handling, CR LF across chunks");
	dataframe_finish(&df);
	is_lit(s.buf, s.len, "x\r\n.\r\n..\r\nabc\r\ndef\r\n",
	    "bdat finish: CR LF appended");
	ok(df.done && df.flags == 0, "bdat finish: done, clean");
	is_int(df.bytes_out, s.len, "bdat: bytes_out");
	is_int(dataframe_feed(&df, S("x")), 0, "bdat: nothing after finish");
	sink_free(&s);

	frame(DF_MODE_BDAT, DF_REJECT, DF_REJECT, S("abc\r"), 0, 1, &r);
	is_lit(r.out.buf, r.out.len, "abc\r\n",
	    "bdat reject: trailing CR is bare, CR LF appended");
	is_int(r.flags, DF_F_BARE_CR, "bdat reject: bare CR flagged");
	res_free(&r);

	frame(DF_MODE_BDAT, DF_NORMALIZE, DF_NORMALIZE, S("abc\r"), 0, 1, &r);
	is_lit(r.out.buf, r.out.len, "abc\r\n",
	    "bdat normalize: trailing CR becomes CR LF");
	is_int(r.flags, DF_F_BARE_CR, "bdat normalize: flagged");
	res_free(&r);

	frame(DF_MODE_BDAT, DF_REJECT, DF_REJECT, S("abc\r\n"), 0, 1, &r);
	is_lit(r.out.buf, r.out.len, "abc\r\n",
	    "bdat: content ending in CR LF is left alone");
	res_free(&r);

	frame(DF_MODE_BDAT, DF_REJECT, DF_REJECT, S(""), 0, 1, &r);
	ok(r.out.len == 0 && r.done, "bdat: empty stays empty");
	res_free(&r);

	frame(DF_MODE_BDAT, DF_REJECT, DF_REJECT, S("a\r\n\n"), 0, 1, &r);
	is_lit(r.out.buf, r.out.len, "a\r\n",
	    "bdat reject: dropped bare LF does not add a line");
	res_free(&r);

	frame(
	    DF_MODE_BDAT, DF_NORMALIZE, DF_NORMALIZE, S("a\nb\rc\0"), 0, 1, &r);
	is_lit(r.out.buf, r.out.len, "a\r\nb\r\nc\r\n",
	    "bdat normalize: bare LF, bare CR, NUL");
	res_free(&r);

	frame(DF_MODE_BDAT, DF_NORMALIZE, DF_NORMALIZE, S("a\r\r\n"), 1, 1, &r);
	is_lit(r.out.buf, r.out.len, "a\r\n\r\n",
	    "bdat normalize bytewise: CR CR LF");
	res_free(&r);

	for (b = DF_REJECT; b <= DF_NORMALIZE; b++)
		for (n = DF_REJECT; n <= DF_NORMALIZE; n++)
			good &= check_all(DF_MODE_BDAT, b, n, S(nasty), 1);
	ok(good, "bdat: every split point matches the model");
}

static void
test_dotstuff(void)
{
	struct sink w;

	restuff(S(""), 0, &w);
	is_lit(w.buf, w.len, ".\r\n", "dotstuff: empty content");
	sink_free(&w);
	restuff(S(".x\r\n.\r\n..\r\nx.\r\n"), 0, &w);
	is_lit(w.buf, w.len, "..x\r\n..\r\n...\r\nx.\r\n.\r\n",
	    "dotstuff: leading dots doubled");
	ok(w.calls <= 8, "dotstuff: spans (%d calls)", w.calls);
	sink_free(&w);
	restuff(S("a\r\n.b\r\n"), 3, &w);
	is_lit(w.buf, w.len, "a\r\n..b\r\n.\r\n",
	    "dotstuff: chunk boundary before the dot");
	sink_free(&w);
	restuff(S("abc"), 0, &w);
	is_lit(w.buf, w.len, "abc\r\n.\r\n", "dotstuff: CR LF completed");
	sink_free(&w);
	restuff(S("abc\r"), 0, &w);
	is_lit(w.buf, w.len, "abc\r\n.\r\n", "dotstuff: CR completed");
	sink_free(&w);
	restuff(S("a\n.\n"), 0, &w);
	is_lit(w.buf, w.len, "a\n..\n\r\n.\r\n",
	    "dotstuff: non-canonical input: dot after LF doubled, real end");
	sink_free(&w);
}

/*
 * Round trip from the other side: any canonical content, stuffed by the
 * encoder and framed, comes back unchanged.
 */
static void
test_roundtrip_random(void)
{
	static const char *pieces[] = { ".", "..", "a", " ", "\r\n", ".\r\n",
		"x.y", "\r\n.\r\n" };
	char		   content[256];
	struct sink	   w;
	struct res	   r;
	size_t		   len, k;
	int		   i, good = 1;

	srand(12345);
	for (i = 0; i < 3000 && good; i++) {
		len = 0;
		while (len < 200 && rand() % 16 != 0) {
			const char *pc = pieces[rand() % 8];

			memcpy(content + len, pc, strlen(pc));
			len += strlen(pc);
		}
		/* Canonical: ends with CR LF, or is empty. */
		if (len > 0 &&
		    (len < 2 || content[len - 2] != '\r' ||
			content[len - 1] != '\n')) {
			content[len++] = '\r';
			content[len++] = '\n';
		}
		restuff(content, len, (size_t)(rand() % 7), &w);
		k = (size_t)(rand() % 9);
		frame(
		    DF_MODE_DATA, DF_REJECT, DF_REJECT, w.buf, w.len, k, 0, &r);
		if (!r.done || r.consumed != w.len || r.flags != 0 ||
		    r.out.len != len ||
		    (len > 0 && memcmp(r.out.buf, content, len) != 0) ||
		    !upstream_ok(w.buf, w.len)) {
			dump("content", content, len);
			dump("wire", w.buf, w.len);
			good = 0;
		}
		sink_free(&w);
		res_free(&r);
	}
	ok(good, "random canonical content survives stuff + frame");
}

/*
 * Exhaustive: every string up to 7 bytes over { CR, LF, ".", NUL, "a" },
 * both modes, all four policy pairs, fed whole and bytewise, against the
 * reference model and the strict upstream.
 */
static void
test_exhaustive(void)
{
	static const char alpha[] = { '\r', '\n', '.', '\0', 'a' };
	char		  in[8];
	size_t		  len, i, total = 0;
	unsigned long	  idx, lim, v;
	enum df_mode	  m;
	enum df_policy	  b, n;
	int		  good = 1;

	for (len = 0; len <= 7 && good; len++) {
		lim = 1;
		for (i = 0; i < len; i++)
			lim *= 5;
		for (idx = 0; idx < lim && good; idx++) {
			v = idx;
			for (i = 0; i < len; i++) {
				in[i] = alpha[v % 5];
				v /= 5;
			}
			for (m = DF_MODE_DATA; m <= DF_MODE_BDAT; m++)
				for (b = DF_REJECT; b <= DF_NORMALIZE; b++)
					for (n = DF_REJECT; n <= DF_NORMALIZE;
					     n++)
						good &= check_all(
						    m, b, n, in, len, len <= 5);
			total++;
		}
	}
	ok(good, "exhaustive: %zu inputs x 2 modes x 4 policies agree", total);
}

/* Longer random inputs biased toward the dangerous bytes. */
static void
test_random(void)
{
	static const char alpha[] = "\r\n.\0a\r\n.";
	char		  in[300];
	size_t		  len, i;
	int		  k, good = 1;
	enum df_policy	  b;

	srand(777);
	for (k = 0; k < 4000 && good; k++) {
		len = (size_t)(rand() % 300);
		for (i = 0; i < len; i++)
			in[i] = alpha[rand() % 8];
		b = rand() % 2 ? DF_REJECT : DF_NORMALIZE;
		good &= check_all(rand() % 4 ? DF_MODE_DATA : DF_MODE_BDAT, b,
		    b, in, len, k < 200);
	}
	ok(good, "random inputs agree with the model");
}

/*
 * dataframe_unstuff() works in place, and never writes the bytes before
 * the first stuffed dot: moat-scand maps the spool copy-on-write, where
 * such a write would copy every page. The first page is made read-only;
 * a write there ends the test with SIGSEGV.
 */
static void
test_unstuff_inplace(void)
{
	char	  a[] = "Subject: x\r\n\r\nno dots here\r\n.\r\n";
	char	  b[] = "a\r\n..b\r\n...\r\nc\r\n.\r\n";
	char	  c[] = "a\r\nb\r\n";
	char	  d[] = "a\r\n.\r\nb";
	char	 *m;
	size_t	  pg, i;
	long long n;

	n = dataframe_unstuff(a, sizeof(a) - 1);
	is_lit(a, n < 0 ? 0 : (size_t)n, "Subject: x\r\n\r\nno dots here\r\n",
	    "unstuff in place: nothing stuffed");
	n = dataframe_unstuff(b, sizeof(b) - 1);
	is_lit(b, n < 0 ? 0 : (size_t)n, "a\r\n.b\r\n..\r\nc\r\n",
	    "unstuff in place: stuffed dots removed");
	ok(dataframe_unstuff(c, sizeof(c) - 1) == -1,
	    "unstuff in place: no end of data is an error");
	ok(dataframe_unstuff(d, sizeof(d) - 1) == -1,
	    "unstuff in place: bytes after the end of data are an error");

	pg = (size_t)sysconf(_SC_PAGESIZE);
	m = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) {
		ok(0, "mmap");
		return;
	}
	memset(m, 'x', 2 * pg);
	for (i = 78; i < pg; i += 80)
		memcpy(m + i, "\r\n", 2);
	memcpy(m + pg + 10, "\r\n..z\r\n.\r\n", 10);
	mprotect(m, pg, PROT_READ);
	n = dataframe_unstuff(m, pg + 20);
	ok(n == (long long)pg + 16 && memcmp(m + pg + 10, "\r\n.z\r\n", 6) == 0,
	    "unstuff in place: the page before the first stuffed dot is not "
	    "written");
	munmap(m, 2 * pg);
}

/* Performance shape: a big clean message is emitted in one span. */
static void
test_spans(void)
{
	size_t	   n = 1 << 20, i;
	char	  *big = malloc(n + 3);
	struct res r;

	if (big == NULL)
		abort();
	for (i = 0; i < n; i++)
		big[i] = (i % 78 == 76) ? '\r'
		    : (i % 78 == 77)	? '\n'
					: (char)('A' + i % 26);
	memcpy(big + n - 2, "\r\n", 2);
	memcpy(big + n, ".\r\n", 3);
	data(big, n + 3, DF_REJECT, &r);
	ok(r.done && r.consumed == n + 3 && r.out.len == n,
	    "1 MiB message framed");
	is_int(r.out.calls, 1, "1 MiB message: one emit call");
	res_free(&r);

	for (i = 0; i < n; i++)
		big[i] = (i % 2) ? 'a' : '\n';
	frame(DF_MODE_BDAT, DF_NORMALIZE, DF_NORMALIZE, big, n, 0, 1, &r);
	is_int(r.out.len, n / 2 * 3 + 2, "512 Ki bare LFs normalised");
	res_free(&r);
	free(big);
}

int
main(void)
{
	test_plain();
	test_unstuff();
	test_unstuff_inplace();
	test_splits();
	test_pipelined();
	test_smuggling();
	test_normalize_content();
	test_cr_across_feeds();
	test_bdat();
	test_dotstuff();
	test_roundtrip_random();
	test_exhaustive();
	test_random();
	test_spans();
	return tap_done();
}
