/*
 * dnsrr.h - DNS record types and RDATA decoding for the resolver
 * (resolver.h): RFC 1035 §3.3 (names, TXT character-strings, MX), §3.4.1
 * (A), §3.5 (in-addr.arpa), RFC 3596 (AAAA, ip6.arpa).
 *
 * Pure code: no I/O, no allocation; any thread. Fuzzed (fuzz_dnsrr.c).
 */
#ifndef MOAT_DNSRR_H
#define MOAT_DNSRR_H

#include <stddef.h>

/* RR types moat asks for (RFC 1035 §3.2.2, RFC 3596). */
#define DNS_T_A	    1
#define DNS_T_NS    2
#define DNS_T_CNAME 5
#define DNS_T_PTR   12
#define DNS_T_MX    15
#define DNS_T_TXT   16
#define DNS_T_AAAA  28

enum dns_status {
	DNS_OK = 0,   /* records in the answer */
	DNS_NODATA,   /* the name exists, no record of the type */
	DNS_NXDOMAIN, /* the name does not exist */
	DNS_TEMPFAIL, /* SERVFAIL, refused, network: try again later */
	DNS_TIMEOUT,  /* no answer within dns_timeout */
	DNS_BOGUS,    /* DNSSEC validation failed */
	DNS_ERROR     /* a bad name, too many queries, too big an answer */
};

const char *dns_status_name(enum dns_status);
/* The name of a type moat knows ("TXT"), or NULL; and back (-1). */
const char *dns_type_name(int type);
int	    dns_type_parse(const char *name);

/*
 * Decode one record's RDATA as dns_record.text describes; returns the text
 * length (out NUL-terminated), or -1 when it is malformed for its type or
 * does not fit. Pure; any thread.
 */
long dns_rdata_text(int type, const unsigned char *rd, size_t len, char *out,
    size_t outsz, unsigned *pref);

/*
 * The reverse-lookup name of an address (RFC 1035 §3.5, RFC 3596 §2.5),
 * e.g. "7.2.0.192.in-addr.arpa"; -1 if the address is not numeric.
 */
int dns_reverse_name(const char *addr, char *out, size_t outlen);

/*
 * 1 if name can be asked: 1-253 octets (a final dot aside), labels of
 * 1-63 printable ASCII octets without spaces, or "." alone.
 */
int dns_name_valid(const char *name);

/*
 * How long an answer may be kept, in seconds, from its wire form (a DNS
 * message, RFC 1035 §4.1, compression allowed): for an answer with
 * records (negative == 0) the smallest TTL in the answer section (a CNAME
 * chain's included); for NXDOMAIN or NODATA (negative == 1) RFC 2308 §5:
 * the smaller of the TTL of the authority section's SOA and its MINIMUM
 * field. -1 when the message is malformed, or negative and without SOA
 * (RFC 2308: such an answer is not cached). Pure; any thread.
 */
long dns_answer_ttl(const unsigned char *msg, size_t len, int negative);

#endif
