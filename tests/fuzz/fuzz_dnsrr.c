/*
 * fuzz_dnsrr.c - libFuzzer target for proxy/dnsrr.c.
 *
 * The first input byte picks a type, the rest is RDATA: the decoded text
 * must fit the buffer, be NUL-terminated at the returned length, and for
 * names hold only printable characters and at most 253 of them; A/AAAA
 * decode only from 4/16 octets. The whole input, as a string, goes to
 * dns_name_valid and dns_reverse_name (whose output must be NUL-terminated
 * and end in ".arpa"); the whole input, as a DNS message, to
 * dns_answer_ttl (positive and negative), whose result must be -1 or a
 * TTL of at most 2^31 - 1 (its reads are checked by ASan). A broken
 * invariant calls abort().
 *
 *	clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE \
 *	    -Iproxy tests/fuzz/fuzz_dnsrr.c proxy/dnsrr.c -o fuzz_dnsrr
 *
 * Single-threaded; no state survives between inputs.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dnsrr.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int types[] = { DNS_T_A, DNS_T_NS, DNS_T_CNAME, DNS_T_PTR,
		DNS_T_MX, DNS_T_TXT, DNS_T_AAAA, 99 };
	char		 out[300], small[8], *s;
	unsigned	 pref;
	long		 n;
	size_t		 i;
	int		 type;

	if (size == 0)
		return 0;
	type = types[data[0] % (sizeof(types) / sizeof(types[0]))];
	n = dns_rdata_text(type, data + 1, size - 1, out, sizeof(out), &pref);
	if (n >= 0) {
		CHECK((size_t)n < sizeof(out) && out[n] == '\0');
		if (type == DNS_T_A)
			CHECK(size - 1 == 4);
		if (type == DNS_T_AAAA)
			CHECK(size - 1 == 16);
		if (type == DNS_T_TXT)
			CHECK((size_t)n < size - 1);
		if (type == DNS_T_PTR || type == DNS_T_NS ||
		    type == DNS_T_CNAME || type == DNS_T_MX) {
			CHECK(n <= 253);
			for (i = 0; i < (size_t)n; i++)
				CHECK(out[i] > 0x20 && out[i] < 0x7f);
		}
	}
	n = dns_rdata_text(
	    type, data + 1, size - 1, small, sizeof(small), &pref);
	CHECK(n < (long)sizeof(small));

	s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	(void)dns_name_valid(s);
	if (dns_reverse_name(s, out, sizeof(out)) == 0) {
		size_t l = strlen(out);

		CHECK(l > 5 && strcmp(out + l - 5, ".arpa") == 0);
	}
	free(s);
	n = dns_answer_ttl(data, size, 0);
	CHECK(n >= -1 && n <= 0x7fffffffL);
	n = dns_answer_ttl(data, size, 1);
	CHECK(n >= -1 && n <= 0x7fffffffL);
	return 0;
}
