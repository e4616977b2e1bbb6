/*
 * test_dnsrr.c - proxy/dnsrr.c: RDATA decoding per type, reverse names,
 * name validity.
 */
#include <string.h>

#include "dnsrr.h"
#include "tap.h"

static const char *
text(int type, const char *rd, size_t len, unsigned *pref)
{
	static char out[512];

	return dns_rdata_text(type, (const unsigned char *)rd, len, out,
		   sizeof(out), pref) >= 0
	    ? out
	    : NULL;
}

int
main(void)
{
	unsigned pref = 0;
	char	 out[128];

	is_str(text(DNS_T_A, "\xc0\x00\x02\x19", 4, &pref), "192.0.2.25", "A");
	is_str(text(DNS_T_A, "\xc0\x00\x02", 3, &pref), NULL, "A of 3 octets");
	is_str(text(DNS_T_AAAA, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x25",
		   16, &pref),
	    "2001:db8::25", "AAAA");
	is_str(text(DNS_T_TXT,
		   "\x03"
		   "abc"
		   "\x02"
		   "de",
		   7, &pref),
	    "abcde", "TXT: strings joined");
	is_str(text(DNS_T_TXT,
		   "\x05"
		   "abc",
		   4, &pref),
	    NULL, "TXT: a string running past the end");
	is_str(text(DNS_T_TXT, "\x00", 1, &pref), "", "TXT: one empty string");
	is_str(text(DNS_T_MX,
		   "\x00\x0a\x02mx\x07"
		   "example\x04test\x00",
		   19, &pref),
	    "mx.example.test", "MX name");
	is_int(pref, 10, "MX preference");
	is_str(text(DNS_T_MX, "\x00\x0a\x00", 3, &pref), ".",
	    "MX: null MX (RFC 7505)");
	is_str(text(DNS_T_PTR,
		   "\x02mx\x07"
		   "example\x04test",
		   16, &pref),
	    NULL, "PTR without the root label");
	is_str(text(DNS_T_PTR,
		   "\x02mx\x07"
		   "example\x04test\x00\x00",
		   19, &pref),
	    NULL, "PTR with trailing bytes");
	is_str(text(DNS_T_PTR,
		   "\x03"
		   "a.b\x00",
		   5, &pref),
	    NULL, "PTR: a dot inside a label");
	is_str(text(DNS_T_PTR,
		   "\x03"
		   "a\nb\x00",
		   5, &pref),
	    NULL, "PTR: a control character");
	is_str(text(DNS_T_PTR,
		   "\x40"
		   "a",
		   2, &pref),
	    NULL, "PTR: a label over 63");
	is_str(text(99, "x", 1, &pref), NULL, "unknown type");

	ok(dns_reverse_name("192.0.2.25", out, sizeof(out)) == 0 &&
		strcmp(out, "25.2.0.192.in-addr.arpa") == 0,
	    "reverse IPv4");
	ok(dns_reverse_name("2001:db8::25", out, sizeof(out)) == 0 &&
		strcmp(out,
		    "5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
		    "8.b.d.0.1.0.0.2.ip6.arpa") == 0,
	    "reverse IPv6");
	ok(dns_reverse_name("mx.example.test", out, sizeof(out)) == -1,
	    "reverse of a name: -1");
	ok(dns_reverse_name("2001:db8::25", out, 40) == -1,
	    "reverse IPv6 into a small buffer: -1");

	ok(dns_name_valid("example.test"), "valid name");
	ok(dns_name_valid("example.test."), "valid with the final dot");
	ok(dns_name_valid("."), "the root");
	ok(!dns_name_valid(""), "empty");
	ok(!dns_name_valid("a..b"), "empty label");
	ok(!dns_name_valid(".a"), "leading dot");
	ok(!dns_name_valid("a b"), "space");
	{
		char long_label[80], long_name[300];

		memset(long_label, 'x', 64);
		long_label[64] = '\0';
		ok(!dns_name_valid(long_label), "64-octet label");
		memset(long_name, 'a', sizeof(long_name));
		for (size_t i = 10; i < 254; i += 10)
			long_name[i] = '.';
		long_name[254] = '\0';
		ok(!dns_name_valid(long_name), "254 octets");
		long_name[253] = '\0';
		ok(dns_name_valid(long_name), "253 octets");
	}
	is_int(dns_type_parse("txt"), DNS_T_TXT, "type by name");
	is_str(dns_type_name(DNS_T_AAAA), "AAAA", "type name");
	return tap_done();
}
