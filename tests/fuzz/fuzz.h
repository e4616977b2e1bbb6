/*
 * fuzz.h - what every libFuzzer target here shares: the entry point's
 * prototype and CHECK(), an assertion that aborts (libFuzzer reports an
 * abort as a crash, with the input) and, unlike assert(), is never
 * compiled out.
 */
#ifndef MOAT_FUZZ_H
#define MOAT_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond))                                                   \
			abort();                                               \
	} while (0)

#endif
