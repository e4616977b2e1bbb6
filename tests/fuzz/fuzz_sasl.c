/*
 * fuzz_sasl.c - libFuzzer target for proxy/sasl.c.
 *
 * The input is split at its first NUL: the part before is a mechanism
 * name (and an AUTH capability list), the rest is a series of client
 * responses separated by '\n', fed as they are (mostly invalid base64)
 * and, decoded by a reference decoder into raw bytes, re-encoded and fed
 * again, so that the per-mechanism parsers see arbitrary decoded input.
 * Invariants: the identity is NUL-terminated, shorter than SASL_ID_MAX and
 * free of control characters; it comes only from the first response;
 * sasl_mech_list gives valid, distinct, upper-case names; base64 decoding
 * agrees with a round trip. A broken invariant calls abort().
 *
 *	clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE \
 *	    -Iproxy tests/fuzz/fuzz_sasl.c proxy/sasl.c -o fuzz_sasl
 *	./fuzz_sasl tests/fuzz/corpus/sasl
 *
 * Single-threaded; no state survives between inputs.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sasl.h"
#include "fuzz.h"

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t
encode(const uint8_t *in, size_t len, char *out)
{
	size_t	 i, o = 0;
	unsigned v;

	for (i = 0; i + 2 < len; i += 3) {
		v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 |
		    in[i + 2];
		out[o++] = b64chars[v >> 18];
		out[o++] = b64chars[(v >> 12) & 63];
		out[o++] = b64chars[(v >> 6) & 63];
		out[o++] = b64chars[v & 63];
	}
	if (len - i == 1) {
		v = (unsigned)in[i] << 16;
		out[o++] = b64chars[v >> 18];
		out[o++] = b64chars[(v >> 12) & 63];
		out[o++] = '=';
		out[o++] = '=';
	} else if (len - i == 2) {
		v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
		out[o++] = b64chars[v >> 18];
		out[o++] = b64chars[(v >> 12) & 63];
		out[o++] = b64chars[(v >> 6) & 63];
		out[o++] = '=';
	}
	out[o] = '\0';
	return o;
}

static void
check_id(const struct sasl_id *sid)
{
	size_t i, n = strnlen(sid->id, sizeof(sid->id));

	CHECK(n < sizeof(sid->id));
	CHECK(sid->have || n == 0);
	for (i = 0; i < n; i++)
		CHECK((unsigned char)sid->id[i] >= 0x20 && sid->id[i] != 0x7f);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size), *p, *end, *e;
	char	       mech[64], list[512], *enc;
	unsigned char *dec;
	struct sasl_id a, b;
	size_t	       mlen, n;
	long	       d;

	mlen = nul != NULL ? (size_t)(nul - data) : size;
	if (mlen >= sizeof(mech))
		mlen = sizeof(mech) - 1;
	memcpy(mech, data, mlen);
	mech[mlen] = '\0';

	sasl_mech_list(mech, list, sizeof(list));
	for (p = (const uint8_t *)list; *p != '\0'; p = e) {
		while (*p == ' ')
			p++;
		for (e = p; *e != '\0' && *e != ' '; e++)
			CHECK(!(*e >= 'a' && *e <= 'z'));
		CHECK(sasl_mech_valid((const char *)p, (size_t)(e - p)));
	}
	if (nul == NULL)
		return 0;

	enc = malloc(2 * size + 8);
	dec = malloc(size + 8);
	sasl_id_init(&a, mech, strnlen(mech, SASL_MECH_MAX));
	sasl_id_init(&b, mech, strnlen(mech, SASL_MECH_MAX));
	end = data + size;
	for (p = nul + 1; p <= end; p = e + 1) {
		e = memchr(p, '\n', (size_t)(end - p));
		if (e == NULL)
			e = end;
		n = (size_t)(e - p);
		/* As base64 text. */
		memcpy(enc, p, n);
		sasl_id_feed(&a, enc, n);
		check_id(&a);
		d = sasl_b64_decode(enc, n, dec, size + 8);
		if (d >= 0) {
			char again[4 * 1024 * 1024 / 3 + 8];

			CHECK((size_t)d <= n / 4 * 3);
			if (n < sizeof(again) / 2) {
				encode(dec, (size_t)d, again);
				/* Canonical input encodes back to itself
				 * (modulo non-zero trailing bits). */
				CHECK(strlen(again) == n);
			}
		}
		/* As raw bytes, properly encoded. */
		encode(p, n, enc);
		sasl_id_feed(&b, enc, strlen(enc));
		check_id(&b);
		if (e == end)
			break;
	}
	free(enc);
	free(dec);
	return 0;
}
