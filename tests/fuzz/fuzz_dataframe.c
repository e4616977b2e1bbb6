/*
 * fuzz_dataframe.c - libFuzzer target for proxy/dataframe.c (DATA/BDAT
 * framing, RFC 5321 §4.1.1.4, §4.5.2; RFC 3030) and proxy/headers.c
 * (RFC 5322 §2.2), which parses the framer's output.
 *
 * Input: byte 0 picks the mode and the policies, byte 1 seeds the chunk
 * sizes (0: one chunk), byte 2 the header parser's limits; the rest is the
 * client's byte stream. Invariants checked (abort() on violation):
 *
 *  - consumed <= len; in DATA mode the framer stops exactly after the
 *    first CR LF "." CR LF of the stream (taken to start with CR LF), and
 *    consumes everything when there is none;
 *  - the content never holds a NUL, a bare CR or a bare LF; bytes_out is
 *    its length; NUL in the consumed input <=> DF_F_NUL;
 *  - DATA: the content re-stuffed by dotstuff is a wire form with exactly
 *    one line ".", the last one, and no bare CR/LF/NUL; framing that wire
 *    again gives back the same content, clean (round trip);
 *  - the header parser, fed the content as it is emitted, stays within its
 *    limits and accounts for every byte.
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -Iproxy
 *   -D_GNU_SOURCE tests/fuzz/fuzz_dataframe.c proxy/dataframe.c
 *   proxy/headers.c
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dataframe.h"
#include "headers.h"
#include "fuzz.h"

struct buf {
	char  *p;
	size_t len;
	size_t cap;
};

static void
buf_add(struct buf *b, const char *p, size_t n)
{
	CHECK(b->len + n <= b->cap);
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

/* What the framer's emit callback feeds: content buffer, header parser. */
struct ctx {
	struct buf	content;
	struct hdrparse hp;
	size_t		hdr_in; /* bytes fed to hp */
	size_t		hdr_ret;
	size_t		max_field;
};

static void
on_field(void *arg, const char *name, size_t namelen, const char *value,
    size_t valuelen)
{
	struct ctx *c = arg;
	size_t	    i;

	CHECK(namelen > 0);
	for (i = 0; i < namelen; i++)
		CHECK((unsigned char)name[i] >= 33 &&
		    (unsigned char)name[i] <= 126 && name[i] != ':');
	CHECK(
	    name >= c->hp.buf && value + valuelen <= c->hp.buf + c->max_field);
	CHECK(value > name + namelen - 1 && value[-1] == ':');
	CHECK(c->hp.count <= c->hp.max_count);
}

static void
on_content(void *arg, const char *p, size_t n)
{
	struct ctx *c = arg;
	size_t	    r;

	CHECK(n > 0);
	buf_add(&c->content, p, n);
	if (!c->hp.in_body) {
		r = hdrparse_feed(&c->hp, p, n);
		CHECK(r <= n);
		CHECK(r == n || c->hp.in_body);
		c->hdr_in += n;
		c->hdr_ret += r;
	} else
		CHECK(hdrparse_feed(&c->hp, p, n) == 0);
}

static void
on_wire(void *arg, const char *p, size_t n)
{
	CHECK(n > 0);
	buf_add(arg, p, n);
}

/* No NUL, bare CR or bare LF. */
static void
check_canonical(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		CHECK(p[i] != '\0');
		if (p[i] == '\r')
			CHECK(i + 1 < n && p[i + 1] == '\n');
		if (p[i] == '\n')
			CHECK(i > 0 && p[i - 1] == '\r');
	}
}

/* Offset just past the first terminator of the stream, or 0 if none. */
static size_t
first_end(const char *p, size_t n)
{
	size_t j;

	for (j = 0; j + 3 <= n; j++)
		if (p[j] == '.' && p[j + 1] == '\r' && p[j + 2] == '\n' &&
		    (j == 0 ||
			(j >= 2 && p[j - 2] == '\r' && p[j - 1] == '\n')))
			return j + 3;
	return 0;
}

static size_t
next_chunk(unsigned *seed, size_t left)
{
	size_t n;

	if (*seed == 0)
		return left;
	*seed = *seed * 1103515245u + 12345u;
	n = 1 + (*seed >> 16) % ((*seed >> 8) % 2 ? 7 : 300);
	return n < left ? n : left;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctx	 c;
	struct buf	 wire, again;
	struct dataframe df, df2;
	struct dotstuff	 ds;
	const char	*in;
	size_t		 len, pos, n, r, want, i, lines;
	unsigned	 seed;
	int		 data_mode;
	char		 hbuf[512];

	if (size < 3)
		return 0;
	data_mode = !(data[0] & 1);
	seed = data[1];
	in = (const char *)data + 3;
	len = size - 3;

	memset(&c, 0, sizeof(c));
	c.content.cap = 2 * len + 8;
	c.content.p = malloc(c.content.cap);
	CHECK(c.content.p != NULL);
	c.max_field = 1 + (data[2] & 0x1f) * 16;
	hdrparse_init(&c.hp, hbuf, c.max_field, data[2] >> 5, on_field, &c);

	dataframe_init(&df, data_mode ? DF_MODE_DATA : DF_MODE_BDAT,
	    (data[0] & 2) ? DF_NORMALIZE : DF_REJECT,
	    (data[0] & 4) ? DF_NORMALIZE : DF_REJECT, on_content, &c);
	for (pos = 0; pos < len && !df.done; pos += r) {
		n = next_chunk(&seed, len - pos);
		r = dataframe_feed(&df, in + pos, n);
		CHECK(r <= n);
		if (r < n)
			CHECK(df.done && data_mode);
	}
	CHECK(pos <= len);

	/* Framing: exactly at the first real terminator, or all of it. */
	want = data_mode ? first_end(in, len) : 0;
	if (want != 0)
		CHECK(df.done && pos == want);
	else
		CHECK(!df.done && pos == len);
	if (!df.done)
		dataframe_finish(&df);
	CHECK(df.done);
	if (!data_mode)
		CHECK(dataframe_feed(&df, in, len) == 0);

	check_canonical(c.content.p, c.content.len);
	CHECK(df.bytes_out == c.content.len);
	CHECK(c.content.len == 0 || (c.content.p[c.content.len - 1] == '\n'));
	CHECK(!(df.flags & DF_F_NUL) == !memchr(in, '\0', pos));
	for (i = 0; i < pos; i++)
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
			CHECK(df.flags & DF_F_BARE_LF);

	/* Header parser: bounded, and every byte accounted for. */
	hdrparse_finish(&c.hp);
	CHECK(c.hp.in_body);
	CHECK(c.hp.count <= c.hp.max_count);
	CHECK(c.hp.received <= c.hp.count);
	CHECK(c.hp.len <= c.max_field);
	CHECK(c.hdr_ret <= c.hdr_in);
	CHECK(c.hp.bytes + c.hp.len == c.hdr_ret);

	if (data_mode) {
		/* Re-stuff: one message, canonical, for any upstream. */
		wire.cap = 2 * c.content.len + 8;
		wire.len = 0;
		wire.p = malloc(wire.cap);
		CHECK(wire.p != NULL);
		dotstuff_init(&ds, on_wire, &wire);
		seed = data[1];
		for (pos = 0; pos < c.content.len; pos += n) {
			n = next_chunk(&seed, c.content.len - pos);
			dotstuff_feed(&ds, c.content.p + pos, n);
		}
		dotstuff_end(&ds);
		check_canonical(wire.p, wire.len);
		lines = 0;
		for (i = 0; i + 3 <= wire.len; i++)
			if (wire.p[i] == '.' && wire.p[i + 1] == '\r' &&
			    (i == 0 || wire.p[i - 1] == '\n'))
				lines++;
		CHECK(lines == 1);
		CHECK(first_end(wire.p, wire.len) == wire.len);

		/* Round trip: the wire frames back to the same content. */
		again.cap = c.content.len + 8;
		again.len = 0;
		again.p = malloc(again.cap);
		CHECK(again.p != NULL);
		dataframe_init(
		    &df2, DF_MODE_DATA, DF_REJECT, DF_REJECT, on_wire, &again);
		CHECK(dataframe_feed(&df2, wire.p, wire.len) == wire.len);
		CHECK(df2.done && df2.flags == 0);
		CHECK(again.len == c.content.len &&
		    memcmp(again.p, c.content.p, again.len) == 0);
		free(again.p);
		free(wire.p);
	}
	free(c.content.p);
	return 0;
}
