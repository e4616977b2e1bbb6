/*
 * test_headers.c - unit tests for proxy/headers.c, the incremental RFC 5322
 * header section parser (§2.2 fields, §2.2.3 folding, §4.5.3 WSP before
 * the colon): field boundaries, the end of the header section (empty line
 * or first non-field line), limits, Received: counting, and chunk
 * boundaries at every position. Single-threaded test program.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "headers.h"
#include "tap.h"

#define S(lit) (lit), (sizeof(lit) - 1)
#define is_lit(got, gotlen, lit, ...)                                          \
	is_mem((got), (gotlen), (lit), sizeof(lit) - 1, __VA_ARGS__)

/* Fields as "name=value;" (raw value, CR LFs kept). */
struct rec {
	char   out[8192];
	size_t len;
	int    calls;
};

static void
rec_add(struct rec *r, const char *p, size_t n)
{
	if (r->len + n >= sizeof(r->out))
		abort();
	memcpy(r->out + r->len, p, n);
	r->len += n;
	r->out[r->len] = '\0';
}

static void
rec_field(void *arg, const char *name, size_t namelen, const char *value,
    size_t valuelen)
{
	struct rec *r = arg;

	r->calls++;
	rec_add(r, name, namelen);
	rec_add(r, "=", 1);
	rec_add(r, value, valuelen);
	rec_add(r, ";", 1);
}

struct hres {
	struct rec     rec;
	char	       body[8192];
	size_t	       bodylen;
	size_t	       hdrlen; /* sum of the returns, minus the push-back */
	size_t	       count;
	size_t	       received;
	size_t	       bytes;
	int	       in_body;
	enum hdr_error error;
};

static void
body_add(struct hres *r, const char *p, size_t n)
{
	if (r->bodylen + n > sizeof(r->body))
		abort();
	memcpy(r->body + r->bodylen, p, n);
	r->bodylen += n;
}

/*
 * Parse in[0..len) cut at cuts[0..ncuts), then finish. Bytes past the
 * header section (and any push-back left in buf) are collected as body.
 */
static void
parse_cuts(const char *in, size_t len, size_t max_field, size_t max_count,
    const size_t *cuts, size_t ncuts, struct hres *r)
{
	struct hdrparse h;
	char	       *buf = malloc(max_field ? max_field : 1);
	size_t		pos = 0, next, n, ret, i;

	if (buf == NULL)
		abort();
	memset(r, 0, sizeof(*r));
	hdrparse_init(&h, buf, max_field, max_count, rec_field, &r->rec);
	for (i = 0; i <= ncuts; i++) {
		next = i < ncuts ? cuts[i] : len;
		if (next < pos)
			continue;
		n = next - pos;
		if (h.in_body) {
			body_add(r, in + pos, n);
		} else {
			ret = hdrparse_feed(&h, in + pos, n);
			r->hdrlen += ret;
			if (ret < n && !h.in_body)
				r->hdrlen = (size_t)-1; /* contract broken */
			if (h.in_body) {
				/* Push-back, then the rest of the chunk. */
				body_add(r, h.buf, h.len);
				r->hdrlen -= h.len;
				body_add(r, in + pos + ret, n - ret);
			}
		}
		pos = next;
	}
	if (!h.in_body) {
		hdrparse_finish(&h);
		body_add(r, h.buf, h.len);
		r->hdrlen -= h.len;
	}
	r->count = h.count;
	r->received = h.received;
	r->bytes = h.bytes;
	r->in_body = h.in_body;
	r->error = h.error;
	free(buf);
}

static void
parse(const char *in, size_t len, size_t max_field, size_t max_count,
    struct hres *r)
{
	parse_cuts(in, len, max_field, max_count, NULL, 0, r);
}

/*
 * After an error the parser buffers nothing, so a body line that began in
 * an earlier chunk cannot be given back: the header/body split is then
 * exact only when fed whole (the message is refused anyway).
 */
static int
hres_eq(const struct hres *a, const struct hres *b)
{
	if (a->error != HDR_OK || b->error != HDR_OK)
		return a->error == b->error && a->rec.len == b->rec.len &&
		    memcmp(a->rec.out, b->rec.out, a->rec.len) == 0 &&
		    a->count == b->count && a->received == b->received &&
		    a->in_body == b->in_body;
	return a->rec.len == b->rec.len &&
	    memcmp(a->rec.out, b->rec.out, a->rec.len) == 0 &&
	    a->bodylen == b->bodylen &&
	    memcmp(a->body, b->body, a->bodylen) == 0 &&
	    a->hdrlen == b->hdrlen && a->count == b->count &&
	    a->received == b->received && a->bytes == b->bytes &&
	    a->in_body == b->in_body && a->error == b->error;
}

/* Whole feed vs byte by byte vs every split point. */
static int
splits_agree(const char *in, size_t len, size_t max_field, size_t max_count)
{
	struct hres *whole = malloc(sizeof(*whole)),
		    *got = malloc(sizeof(*got));
	size_t *cuts = calloc(len + 1, sizeof(*cuts)), k;
	int	good = 1;

	if (whole == NULL || got == NULL || cuts == NULL)
		abort();
	parse(in, len, max_field, max_count, whole);
	/* The parts always add up to the input. */
	if (whole->hdrlen + whole->bodylen != len ||
	    whole->bytes != whole->hdrlen ||
	    memcmp(whole->body, in + whole->hdrlen, whole->bodylen) != 0) {
		printf("# whole: header %zu + body %zu != %zu\n", whole->hdrlen,
		    whole->bodylen, len);
		good = 0;
	}
	for (k = 0; k + 1 < len; k++)
		cuts[k] = k + 1;
	parse_cuts(in, len, max_field, max_count, cuts, len ? len - 1 : 0, got);
	if (!hres_eq(whole, got)) {
		printf("# byte by byte differs: %s | %s\n", whole->rec.out,
		    got->rec.out);
		good = 0;
	}
	for (k = 1; good && k < len; k++) {
		parse_cuts(in, len, max_field, max_count, &k, 1, got);
		if (!hres_eq(whole, got)) {
			printf("# split at %zu differs: %s | %s (hdr %zu/%zu)"
			       "\n",
			    k, whole->rec.out, got->rec.out, whole->hdrlen,
			    got->hdrlen);
			good = 0;
		}
	}
	free(whole);
	free(got);
	free(cuts);
	return good;
}

/* ------------------------------------------------------------------ */

static void
test_simple(void)
{
	static const char msg[] = "From: a@example.org\r\n"
				  "To: b@example.org\r\n"
				  "Subject: hi\r\n"
				  "\r\n"
				  "body\r\n";
	struct hres	  r;

	parse(S(msg), 1000, 100, &r);
	is_str(r.rec.out, "From= a@example.org;To= b@example.org;Subject= hi;",
	    "simple: three fields, raw values");
	is_int(
	    r.hdrlen, sizeof(msg) - 1 - 6, "simple: header incl. blank line");
	is_lit(r.body, r.bodylen, "body\r\n", "simple: body");
	ok(r.in_body && r.error == HDR_OK, "simple: in body, no error");
	is_int(r.count, 3, "simple: count");
	is_int(r.received, 0, "simple: no Received");
	is_int(r.bytes, sizeof(msg) - 1 - 6, "simple: bytes");
	ok(splits_agree(S(msg), 1000, 100), "simple: every split agrees");
}

static void
test_folding(void)
{
	static const char msg[] = "Subject: a\r\n b\r\n\tc\r\n"
				  "X-Empty:\r\n"
				  "X-Colon: a:b: c\r\n"
				  "X-Fold:\r\n  indented\r\n"
				  "\r\n";
	struct hres	  r;

	parse(S(msg), 1000, 100, &r);
	is_str(r.rec.out,
	    "Subject= a\r\n b\r\n\tc;X-Empty=;X-Colon= a:b: c;"
	    "X-Fold=\r\n  indented;",
	    "folding: CR LF kept inside values, final CR LF not");
	is_int(r.count, 4, "folding: four fields");
	is_int(r.bodylen, 0, "folding: no body");
	ok(splits_agree(S(msg), 1000, 100), "folding: every split agrees");
}

static void
test_wsp_colon(void)
{
	static const char msg[] = "Subject : x\r\n"
				  "Foo\t \t:y\r\n"
				  "X-Odd!#$%&'*+-.^_`{|}~: z\r\n"
				  "\r\n";
	struct hres	  r;

	parse(S(msg), 1000, 100, &r);
	is_str(r.rec.out, "Subject= x;Foo=y;X-Odd!#$%&'*+-.^_`{|}~= z;",
	    "obs WSP before colon stripped from the name");
	is_int(r.count, 3, "wsp: count");
	ok(splits_agree(S(msg), 1000, 100), "wsp: every split agrees");
}

static void
test_no_blank_line(void)
{
	static const char msg[] = "A: 1\r\nB: 2\r\n cont\r\n";
	struct hres	  r;
	struct hdrparse	  h;
	struct rec	  rec;
	char		  buf[64];

	parse(S(msg), 1000, 100, &r);
	is_str(r.rec.out, "A= 1;B= 2\r\n cont;",
	    "headers only: last field delivered at finish");
	ok(r.in_body && r.bodylen == 0 && r.hdrlen == sizeof(msg) - 1,
	    "headers only: all header, in body after finish");
	ok(splits_agree(S(msg), 1000, 100), "headers only: every split");

	memset(&rec, 0, sizeof(rec));
	hdrparse_init(&h, buf, sizeof(buf), 10, rec_field, &rec);
	is_int(hdrparse_feed(&h, S("A: 1\r\nB: 2")), 10,
	    "no CR LF at all: consumed");
	is_int(rec.calls, 1, "pending field not delivered before finish");
	hdrparse_finish(&h);
	is_str(rec.out, "A= 1;B= 2;", "finish delivers the pending field");
	ok(h.in_body, "finish sets in_body");
	is_int(hdrparse_feed(&h, S("X: y\r\n")), 0, "feed after end: 0");

	memset(&rec, 0, sizeof(rec));
	hdrparse_init(&h, buf, sizeof(buf), 10, rec_field, &rec);
	hdrparse_finish(&h);
	ok(h.in_body && rec.calls == 0 && h.count == 0,
	    "empty content: no fields");
}

static void
test_body_start(void)
{
	struct hres	   r;
	static const char  a[] = "A: 1\r\nThis is body\r\nB: 2\r\n";
	static const char *notfield[] = {
		"Hello world\r\n",
		" folded: first\r\n",
		"\tX: y\r\n",
		":novalue\r\n",
		"Sub ject: x\r\n",
		("S\xc3\xbc"
		 "bject: x\r\n"),
		"From foo@example.org Mon Jan  1 00:00:00 2024\r\n",
		"NoColonHere\r\n",
		"Bad\x01Name: x\r\n",
		"Subject \x7f: x\r\n",
	};
	size_t i;
	int    good = 1;

	parse(S(a), 1000, 100, &r);
	is_str(r.rec.out, "A= 1;", "non-field line ends the header section");
	is_int(r.hdrlen, 6, "non-field line is not header");
	is_lit(r.body, r.bodylen, "This is body\r\nB: 2\r\n",
	    "non-field line and the rest are body");
	is_int(r.count, 1, "later field-looking lines are body");
	ok(splits_agree(S(a), 1000, 100), "body start: every split");

	for (i = 0; i < sizeof(notfield) / sizeof(notfield[0]); i++) {
		size_t n = strlen(notfield[i]);

		parse(notfield[i], n, 1000, 100, &r);
		if (!ok(r.in_body && r.hdrlen == 0 && r.rec.calls == 0 &&
			    r.count == 0 && r.bodylen == n,
			"first line %zu is body (no headers)", i))
			printf(
			    "#   hdrlen %zu calls %d\n", r.hdrlen, r.rec.calls);
		good &= splits_agree(notfield[i], n, 1000, 100);
	}
	ok(good, "first-line body starts: every split");

	parse(S("\r\nA: 1\r\n"), 1000, 100, &r);
	ok(r.hdrlen == 2 && r.rec.calls == 0 && r.bodylen == 6,
	    "empty first line: no headers, separator is header section");
}

/* A line that ends the section and began in an earlier chunk. */
static void
test_pushback(void)
{
	struct hdrparse h;
	struct rec	rec;
	char		buf[64];
	size_t		ret;

	memset(&rec, 0, sizeof(rec));
	hdrparse_init(&h, buf, sizeof(buf), 10, rec_field, &rec);
	ret = hdrparse_feed(&h, S("A: 1\r\nBody"));
	is_int(ret, 10, "undecided line: all consumed");
	ret = hdrparse_feed(&h, S(" text\r\n"));
	is_int(ret, 0, "decided as body in the next chunk");
	ok(h.in_body, "in_body set");
	is_lit(h.buf, h.len, "Body", "earlier part of the line kept in buf");
	is_int(h.bytes, 6, "bytes corrected to the header section");
	is_str(rec.out, "A= 1;", "the field before it delivered");
}

static void
test_too_long(void)
{
	static const char ok16[] = "Subject: 1234567\r\nA: b\r\n\r\nbody";
	static const char long17[] = "Subject: 12345678\r\nA: b\r\n\r\nbody";
	static const char fold[] = "A: b\r\nSubject: 12\r\n 345\r\nC: d\r\n"
				   "\r\nbody";
	static const char name[] = "VeryLongFieldName: x\r\n\r\nbody";
	struct hres	  r;

	parse(S(ok16), 16, 100, &r);
	ok(r.error == HDR_OK, "field of exactly max_field is fine");
	is_str(r.rec.out, "Subject= 1234567;A= b;", "max_field: delivered");

	parse(S(long17), 16, 100, &r);
	is_int(r.error, HDR_E_FIELD_TOO_LONG, "max_field + 1: too long");
	is_int(r.rec.calls, 0, "too long: no callback, none after either");
	ok(r.in_body && r.hdrlen == sizeof(long17) - 5,
	    "too long: still finds the end of the header section");
	is_lit(r.body, r.bodylen, "body", "too long: body intact");
	ok(splits_agree(S(long17), 16, 100), "too long: every split");

	parse(S(fold), 17, 100, &r);
	is_int(r.error, HDR_OK, "folded field of 17 with CR LF: ok at 17");
	parse(S(fold), 16, 100, &r);
	ok(r.error == HDR_E_FIELD_TOO_LONG && r.rec.calls == 1,
	    "folding counts toward max_field; fields before are delivered");
	is_str(r.rec.out, "A= b;", "too long folded: only the first field");
	ok(splits_agree(S(fold), 16, 100), "too long folded: every split");

	parse(S(name), 8, 100, &r);
	ok(r.error == HDR_E_FIELD_TOO_LONG && r.in_body &&
		r.hdrlen == sizeof(name) - 5,
	    "a name longer than max_field is too long");
	ok(splits_agree(S(name), 8, 100), "long name: every split");
}

static void
test_too_many(void)
{
	static const char msg[] = "A: 1\r\nB: 2\r\nC: 3\r\n more\r\nD: 4\r\n"
				  "\r\nbody\r\n";
	struct hres	  r;

	parse(S(msg), 100, 2, &r);
	is_int(r.error, HDR_E_TOO_MANY, "third field is one too many");
	is_str(r.rec.out, "A= 1;B= 2;", "first two delivered");
	is_int(r.count, 2, "count stops at the limit");
	ok(r.in_body && r.hdrlen == sizeof(msg) - 7,
	    "too many: header section end found");
	ok(splits_agree(S(msg), 100, 2), "too many: every split");

	parse(S(msg), 100, 4, &r);
	ok(r.error == HDR_OK && r.count == 4, "exactly max_count is fine");

	parse(S(msg), 100, 0, &r);
	ok(r.error == HDR_E_TOO_MANY && r.rec.calls == 0 && r.in_body,
	    "max_count 0: the first field is too many");
	ok(splits_agree(S(msg), 100, 0), "max_count 0: every split");
}

static void
test_received(void)
{
	static const char msg[] = "Received: from a\r\n by b\r\n"
				  "received: x\r\n"
				  "RECEIVED : y\r\n"
				  "Received-SPF: pass\r\n"
				  "X-Received: z\r\n"
				  "Receive: q\r\n"
				  "ReceivedX: q\r\n"
				  "\r\n";
	struct hres	  r;

	parse(S(msg), 100, 100, &r);
	is_int(r.received, 3, "Received: counted case-insensitively, exact");
	is_int(r.count, 7, "all fields counted");
	ok(splits_agree(S(msg), 100, 100), "received: every split");
}

static void
test_null_callback(void)
{
	struct hdrparse h;
	char		buf[32];

	hdrparse_init(&h, buf, sizeof(buf), 10, NULL, NULL);
	is_int(hdrparse_feed(&h, S("A: 1\r\nReceived: x\r\n\r\nb")), 21,
	    "NULL callback: parses and counts");
	ok(h.in_body && h.count == 2 && h.received == 1,
	    "NULL callback: counts");
}

/* Random messages: every split agrees with the whole feed. */
static void
test_random(void)
{
	static const char *pieces[] = { "A: 1\r\n", "Received: x\r\n",
		" cont\r\n", "\tmore\r\n", "\r\n", "body\r\n", "X :y\r\n",
		"no colon\r\n", "Long-Field-Name: ", "abc", ":", " ", "\r\n" };
	char		   msg[256];
	size_t		   len;
	int		   i, good = 1;

	srand(4242);
	for (i = 0; i < 400 && good; i++) {
		len = 0;
		while (len < 200 && rand() % 12 != 0) {
			const char *pc = pieces[rand() % 13];

			memcpy(msg + len, pc, strlen(pc));
			len += strlen(pc);
		}
		good &= splits_agree(
		    msg, len, (size_t)(rand() % 40), (size_t)(rand() % 6));
	}
	ok(good, "random messages: splits agree, parts add up");
}

int
main(void)
{
	test_simple();
	test_folding();
	test_wsp_colon();
	test_no_blank_line();
	test_body_start();
	test_pushback();
	test_too_long();
	test_too_many();
	test_received();
	test_null_callback();
	test_random();
	return tap_done();
}
