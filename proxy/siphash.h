/*
 * siphash.h - SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast
 * short-input PRF", 2012): a keyed 64-bit hash for tables whose keys an
 * attacker chooses (classifier tokens: without the key, nobody can aim
 * two tokens at one counter).
 *
 * Pure function; thread-safe.
 */
#ifndef MOAT_SIPHASH_H
#define MOAT_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

/* The 128-bit key as two little-endian 64-bit halves (k0 = bytes 0..7). */
struct sipkey {
	uint64_t k0, k1;
};

uint64_t siphash24(const struct sipkey *, const void *, size_t);

#endif
