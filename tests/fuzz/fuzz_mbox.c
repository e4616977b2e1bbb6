/*
 * fuzz_mbox.c - libFuzzer target for tools/mbox.c.
 *
 * The input is an mbox: every message mbox_next() returns must lie inside
 * the input, after the previous one, and not be empty; mbox_unquote() must
 *never make a message longer, and must leave a message without ">From " as it
 *is. A broken invariant calls abort().
 *
 *	clang -g -O1 -fsanitize=fuzzer,address,undefined -Itools \
 *	    tests/fuzz/fuzz_mbox.c tools/mbox.c -o fuzz_mbox
 *
 * Single-threaded; no state survives between inputs.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mbox.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char	*buf = (const char *)data, *msg, *prev_end = buf;
	struct mbox_iter it;
	size_t		 len, n, count = 0;
	char		*out;

	(void)mbox_is_mbox(buf, size);
	mbox_init(&it, buf, size);
	while (mbox_next(&it, &msg, &len)) {
		CHECK(msg >= prev_end && msg + len <= buf + size);
		CHECK(len > 0);
		prev_end = msg + len;
		out = malloc(len + 1);
		n = mbox_unquote(msg, len, out);
		CHECK(n <= len);
		if (memmem(msg, len, ">From ", 6) == NULL)
			CHECK(n == len && memcmp(out, msg, n) == 0);
		free(out);
		CHECK(++count <= size);
	}
	return 0;
}
