/*
 * fuzz_proxyproto.c - libFuzzer target for the pure parsers moat runs on
 * the first bytes of a connection and on upstream replies:
 *   proxyproto_parse() (PROXY protocol v1/v2), with consistency checks
 *   between results on prefixes and version masks;
 *   reply_add_line() / reply_format() / reply_enhanced() / capa_parse() /
 *   capa_ehlo_reply() on the input split into lines;
 *   log_escape() / text_sanitize() with small output buffers.
 *
 * Every output buffer is a heap block of exactly the size passed, so ASan
 * catches any write past it. A broken invariant calls abort().
 *
 *	clang -g -O1 -fsanitize=fuzzer,address,undefined -Iproxy -D_GNU_SOURCE \
 *	    tests/fuzz/fuzz_proxyproto.c proxy/proxyproto.c proxy/reply.c \
 *	    proxy/escape.c -o fuzz_proxyproto
 *	./fuzz_proxyproto tests/fuzz/corpus/proxyproto
 *
 * Single-threaded; no state survives between inputs.
 */

#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "escape.h"
#include "proxyproto.h"
#include "reply.h"
#include "fuzz.h"

/* Parse from an exact-size heap copy of the first len bytes. */
static enum pp_result
pp(const uint8_t *data, size_t len, int versions, struct pp_info *info,
    size_t *consumed)
{
	unsigned char *copy;
	enum pp_result r;

	copy = malloc(len > 0 ? len : 1);
	if (len > 0)
		memcpy(copy, data, len);
	r = proxyproto_parse(copy, len, versions, info, consumed);
	free(copy);
	return r;
}

static void
check_info(const struct pp_info *info)
{
	if (info->local) {
		CHECK(info->srclen == 0 && info->dstlen == 0);
		return;
	}
	CHECK(info->src.ss_family == info->dst.ss_family);
	if (info->src.ss_family == AF_INET)
		CHECK(info->srclen == sizeof(struct sockaddr_in) &&
		    info->dstlen == sizeof(struct sockaddr_in));
	else
		CHECK(info->src.ss_family == AF_INET6 &&
		    info->srclen == sizeof(struct sockaddr_in6) &&
		    info->dstlen == sizeof(struct sockaddr_in6));
}

static void
fuzz_pp(const uint8_t *data, size_t size)
{
	static const int masks[] = { PP_V1, PP_V2, PP_V1 | PP_V2 };
	struct pp_info	 info, info2;
	enum pp_result	 r, r2, rboth;
	size_t		 consumed, consumed2, cboth, half;
	size_t		 i;

	rboth = pp(data, size, PP_V1 | PP_V2, &info, &cboth);
	for (i = 0; i < sizeof(masks) / sizeof(masks[0]); i++) {
		r = pp(data, size, masks[i], &info, &consumed);
		switch (r) {
		case PP_OK:
			check_info(&info);
			CHECK(consumed > 0 && consumed <= size);
			CHECK(consumed <= PP_V1_MAX || consumed <= PP_V2_MAX);
			if (data[0] == 'P')
				CHECK(consumed <= PP_V1_MAX);
			/* Same answer on exactly the header... */
			r2 = pp(data, consumed, masks[i], &info2, &consumed2);
			CHECK(r2 == PP_OK && consumed2 == consumed);
			CHECK(info2.local == info.local &&
			    info2.srclen == info.srclen &&
			    memcmp(&info2.src, &info.src, info.srclen) == 0 &&
			    memcmp(&info2.dst, &info.dst, info.dstlen) == 0);
			/* ...and one byte short of it, more is needed. */
			r2 = pp(
			    data, consumed - 1, masks[i], &info2, &consumed2);
			CHECK(r2 == PP_NEED_MORE && consumed2 == 0);
			/* Allowing more versions changes nothing. */
			CHECK(rboth == PP_OK && cboth == consumed);
			break;
		case PP_NEED_MORE:
			CHECK(consumed == 0);
			CHECK(size < PP_V2_MAX);
			if (size > 0 && data[0] == 'P')
				CHECK(size < PP_V1_MAX);
			CHECK(rboth == PP_NEED_MORE);
			break;
		case PP_ERROR:
			CHECK(consumed == 0);
			break;
		default:
			abort();
		}

		/* A prefix that is already wrong never becomes right. */
		half = size / 2;
		r2 = pp(data, half, masks[i], &info2, &consumed2);
		if (r2 == PP_ERROR)
			CHECK(r == PP_ERROR);
		if (r2 == PP_OK)
			CHECK(r == PP_OK && consumed == consumed2);
		if (r == PP_NEED_MORE)
			CHECK(r2 == PP_NEED_MORE);
	}
}

/* Exercise everything that works on a complete (or failed) reply. */
static void
use_reply(const struct smtp_reply *r, size_t outsz)
{
	struct capa	  c, again;
	struct smtp_reply r2;
	char		  enh[16], *out;
	const char	 *p, *e;
	uint32_t	  adv;
	size_t		  i;
	int		  n;

	for (i = 0; i <= r->nlines; i++)
		(void)strlen(reply_line_text(r, i));

	out = malloc(outsz);
	n = reply_format(r, out, outsz);
	if (n >= 0) {
		CHECK((size_t)n == r->len + r->nlines);
		CHECK((size_t)n < outsz && out[n] == '\0');
	} else
		CHECK(r->len + r->nlines + 1 > outsz);
	free(out);

	if (reply_enhanced(r, enh, sizeof(enh)) == 0)
		CHECK(strlen(enh) >= 5 && strlen(enh) <= 9 &&
		    enh[0] == '0' + r->code / 100);

	if (capa_parse(r, &c) == -1)
		return;
	CHECK(r->code == 250);
	CHECK(strlen(c.auth) < sizeof(c.auth));
	CHECK(strlen(c.xclient) < sizeof(c.xclient));
	CHECK(strlen(c.xforward) < sizeof(c.xforward));

	/* moat's reply from these capabilities must parse back to them. */
	out = malloc(outsz);
	/* moat's own STARTTLS and AUTH (with the upstream's mechanisms, as
	 * the AUTH relay will) on some inputs. */
	n = capa_ehlo_reply(&c, "mx.moat.example", c.size / 4,
	    ((c.size & 1) ? CAPA_CHUNKING : 0) |
		((c.size & 2) ? CAPA_STARTTLS | CAPA_AUTH : 0),
	    c.auth, &adv, out, outsz);
	if (n >= 0) {
		CHECK((size_t)n < outsz && out[n] == '\0');
		CHECK((adv &
			  ~(uint32_t)(CAPA_PIPELINING | CAPA_SIZE |
			      CAPA_8BITMIME | CAPA_SMTPUTF8 | CAPA_DSN |
			      CAPA_ENHANCEDSTATUSCODES | CAPA_CHUNKING |
			      CAPA_STARTTLS | CAPA_AUTH)) == 0);
		reply_init(&r2);
		for (p = out; *p != '\0'; p = e + 2) {
			e = strstr(p, "\r\n");
			CHECK(e != NULL);
			if (reply_add_line(&r2, p, (size_t)(e - p)) ==
			    REPLY_ERROR)
				abort();
		}
		CHECK(capa_parse(&r2, &again) == 0);
		CHECK(again.flags == adv);
		CHECK(!(adv & CAPA_AUTH) || strcmp(again.auth, c.auth) == 0);
	} else
		CHECK(adv == 0);
	free(out);
}

static void
fuzz_reply(const uint8_t *data, size_t size)
{
	struct smtp_reply *r;
	enum reply_status  st;
	size_t		   start, end, len, outsz;

	r = malloc(sizeof(*r));
	reply_init(r);
	outsz = 1 + (size > 0 ? data[0] : 0) * 40;
	for (start = 0; start < size; start = end + 1) {
		for (end = start; end < size && data[end] != '\n'; end++)
			;
		len = end - start;
		if (len > 0 && data[start + len - 1] == '\r')
			len--;
		st = reply_add_line(r, (const char *)data + start, len);
		CHECK(r->len <= REPLY_TEXT_MAX && r->nlines <= REPLY_LINES_MAX);
		if (st == REPLY_MORE)
			continue;
		use_reply(r, outsz);
		reply_init(r);
	}
	if (r->nlines > 0)
		use_reply(r, outsz);
	free(r);
}

static void
fuzz_escape(const uint8_t *data, size_t size)
{
	char  *out;
	size_t outsz, n, k;

	for (outsz = 0; outsz < 24; outsz++) {
		out = malloc(outsz > 0 ? outsz : 1);
		n = log_escape((const char *)data, size, out, outsz);
		if (outsz == 0)
			CHECK(n == 0);
		else {
			CHECK(n < outsz && strlen(out) == n);
			for (k = 0; k < n; k++)
				CHECK(out[k] >= 0x20 && out[k] <= 0x7e);
		}
		n = text_sanitize((const char *)data, size, out, outsz);
		if (outsz == 0)
			CHECK(n == 0);
		else {
			CHECK(n < outsz && n <= size && out[n] == '\0');
			for (k = 0; k < n; k++)
				CHECK(out[k] != '\r' && out[k] != '\n' &&
				    out[k] != '\0');
		}
		free(out);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_pp(data, size);
	fuzz_reply(data, size);
	fuzz_escape(data, size);
	return 0;
}
