/*
 * test_dnsbl.c - the query names of filters/spam/dnsbl.c (RFC 5782 §2.1
 * IPv4, §2.4 IPv6 nibbles, §2.2 domain lists) and the definitions'
 * checks. The lookups themselves run against a real DNS server in
 * tests/integration/test_spam.py.
 */
#include <stdio.h>
#include <string.h>

#include "dnsbl.h"
#include "dnsrr.h"
#include "tap.h"

static void
qname(const char *ip, const char *want)
{
	char out[300];
	int  rc = dnsbl_ip_qname(ip, "bl.example", out, sizeof(out));

	if (want == NULL)
		is_int(rc, -1, "%s: not asked", ip);
	else
		is_str(rc == 0 ? out : "(refused)", want, "%s", ip);
}

static void
dname(const char *name, const char *want)
{
	char out[300];
	int  rc = dnsbl_name_qname(name, "rhs.example", out, sizeof(out));

	if (want == NULL)
		is_int(rc, -1, "name \"%s\": not asked", name);
	else
		is_str(rc == 0 ? out : "(refused)", want, "name %s", name);
}

int
main(void)
{
	struct dnsbl_defs *d;
	char		   err[256], big[300];

	/* RFC 5782 §2.1: the octets reversed. */
	qname("192.0.2.99", "99.2.0.192.bl.example");
	qname("127.0.0.2", "2.0.0.127.bl.example"); /* the test entry */
	qname("::ffff:192.0.2.1", "1.2.0.192.bl.example");
	/* §2.4: 32 nibbles, least significant first. */
	qname("2001:db8::1",
	    "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"
	    ".bl.example");
	/* Private, link-local, unspecified, multicast: never asked. */
	qname("10.1.2.3", NULL);
	qname("172.16.0.1", NULL);
	qname("172.31.255.255", NULL);
	qname("172.32.0.1", "1.0.32.172.bl.example");
	qname("192.168.1.1", NULL);
	qname("169.254.1.1", NULL);
	qname("100.64.0.1", NULL);
	qname("0.0.0.0", NULL);
	qname("224.0.0.1", NULL);
	qname("fe80::1", NULL);
	qname("fd00::1", NULL);
	qname("::", NULL);
	qname("not an address", NULL);
	qname("1.2.3", NULL);

	dname("Example.COM", "example.com.rhs.example");
	dname("mail.example.com.", "mail.example.com.rhs.example");
	dname("localhost", NULL); /* one label */
	dname("-bad.example", NULL);
	dname("bad-.example", NULL);
	dname("a..b", NULL);
	dname("sp ace.example", NULL);
	dname("[192.0.2.1]", NULL);
	dname("", NULL);
	memset(big, 'a', 70);
	strcpy(big + 70, ".example");
	dname(big, NULL); /* a label over 63 */

	d = dnsbl_defs_new();
	is_int(dnsbl_add(d, "RCVD_IN_X", DNSBL_CLIENT_IP, "x", "bl.example.",
		   DNS_T_A, "127.0.0.2", err, sizeof(err)),
	    0, "an exact-address subtest");
	is_int(dnsbl_add(d, "URIBL_X", DNSBL_URI_DOMAIN, NULL, "uri.example",
		   DNS_T_A, "2", err, sizeof(err)),
	    0, "a bit mask subtest");
	is_int(dnsbl_add_sub(d, "RCVD_IN_X_SUB", "x", "^127\\.0\\.0\\.[45]$",
		   err, sizeof(err)),
	    0, "a regex subtest");
	is_int(dnsbl_add_sub(d, "BAD", "x", "^127(", err, sizeof(err)), -1,
	    "an invalid regex is refused");
	ok(strstr(err, "BAD") == NULL && strstr(err, "offset") != NULL,
	    "... with PCRE2's reason and offset: %s", err);
	is_int(dnsbl_add(d, "Z", DNSBL_HELO, NULL, ".", DNS_T_A, NULL, err,
		   sizeof(err)),
	    -1, "an empty zone is refused");
	is_int(dnsbl_add(d, "Z", DNSBL_HELO, NULL, "z.example", DNS_T_MX,
		   NULL, err, sizeof(err)),
	    -1, "a query type other than A/TXT is refused");
	is_int((int)dnsbl_defs_count(d), 3, "three definitions");
	ok(dnsbl_defs_wants(d, DNSBL_CLIENT_IP) &&
		dnsbl_defs_wants(d, DNSBL_URI_DOMAIN) &&
		!dnsbl_defs_wants(d, DNSBL_ENVFROM),
	    "wants: client address and URI domains, not the envelope");
	dnsbl_defs_free(d);
	return tap_done();
}
