/*
 * test_proxyproto.c - unit tests for proxy/proxyproto.c (HAProxy PROXY
 * protocol v1 and v2, haproxy doc/proxy-protocol.txt).
 *
 * Hermetic, single-threaded. Every input is also parsed from a heap copy
 * of exactly its length, so ASan reports any read past the given length.
 */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "proxyproto.h"

#define BOTH (PP_V1 | PP_V2)

/* Parse len bytes from an exact-size heap copy. */
static enum pp_result
parse(const void *data, size_t len, int versions, struct pp_info *info,
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

static enum pp_result
parse_str(const char *s, struct pp_info *info, size_t *consumed)
{
	return parse(s, strlen(s), BOTH, info, consumed);
}

/* Every proper prefix of data[0..len) gives PP_NEED_MORE. */
static int
prefixes_need_more(const void *data, size_t len, int versions)
{
	struct pp_info info;
	size_t	       i, consumed;

	for (i = 0; i < len; i++) {
		if (parse(data, i, versions, &info, &consumed) !=
		    PP_NEED_MORE) {
			printf("# prefix of %zu bytes not NEED_MORE\n", i);
			return 0;
		}
	}
	return 1;
}

/* "a.b.c.d:port" or "[v6]:port" of a parsed sockaddr. */
static const char *
addrstr(
    const struct sockaddr_storage *ss, socklen_t len, char *buf, size_t bufsz)
{
	char			   a[INET6_ADDRSTRLEN];
	const struct sockaddr_in  *sin;
	const struct sockaddr_in6 *sin6;

	if (ss->ss_family == AF_INET && len == sizeof(*sin)) {
		sin = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &sin->sin_addr, a, sizeof(a));
		snprintf(buf, bufsz, "%s:%u", a, ntohs(sin->sin_port));
	} else if (ss->ss_family == AF_INET6 && len == sizeof(*sin6)) {
		sin6 = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &sin6->sin6_addr, a, sizeof(a));
		snprintf(buf, bufsz, "[%s]:%u", a, ntohs(sin6->sin6_port));
	} else
		snprintf(buf, bufsz, "family %d len %u", ss->ss_family,
		    (unsigned int)len);
	return buf;
}

static void
test_v1_valid(void)
{
	static const char tcp4[] =
	    "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
	static const char tcp6[] = "PROXY TCP6 2001:db8::1 ::1 65535 25\r\n";
	/* The worst case from the spec: exactly 107 bytes. */
	static const char unk_max[] =
	    "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
	struct pp_info info;
	size_t	       consumed;
	char	       buf[128], a[80];

	is_int(parse_str(tcp4, &info, &consumed), PP_OK, "v1 TCP4");
	is_int(consumed, strlen(tcp4), "v1 TCP4 consumed");
	is_int(info.local, 0, "v1 TCP4 not local");
	is_str(addrstr(&info.src, info.srclen, a, sizeof(a)),
	    "192.168.0.1:56324", "v1 TCP4 source");
	is_str(addrstr(&info.dst, info.dstlen, a, sizeof(a)),
	    "192.168.0.11:443", "v1 TCP4 destination");
	is_int(((struct sockaddr_in *)&info.src)->sin_port, htons(56324),
	    "v1 port in network order");
	ok(prefixes_need_more(tcp4, strlen(tcp4), BOTH),
	    "v1 TCP4: every prefix NEED_MORE");
	ok(prefixes_need_more(tcp4, strlen(tcp4), PP_V1),
	    "v1 TCP4: every prefix NEED_MORE (v1 only)");

	/* SMTP bytes after the header are not consumed. */
	snprintf(buf, sizeof(buf), "%sEHLO x\r\n", tcp4);
	is_int(parse_str(buf, &info, &consumed), PP_OK, "v1 + trailing data");
	is_int(consumed, strlen(tcp4), "trailing data not consumed");

	is_int(parse_str(tcp6, &info, &consumed), PP_OK, "v1 TCP6");
	is_int(consumed, strlen(tcp6), "v1 TCP6 consumed");
	is_str(addrstr(&info.src, info.srclen, a, sizeof(a)),
	    "[2001:db8::1]:65535", "v1 TCP6 source");
	is_str(addrstr(&info.dst, info.dstlen, a, sizeof(a)), "[::1]:25",
	    "v1 TCP6 destination");
	ok(prefixes_need_more(tcp6, strlen(tcp6), BOTH),
	    "v1 TCP6: every prefix NEED_MORE");

	is_int(
	    parse_str("PROXY TCP6 ::ffff:192.0.2.1 "
		      "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 0 1\r\n",
		&info, &consumed),
	    PP_OK, "v1 TCP6 with embedded IPv4, 45-char address");
	is_str(addrstr(&info.src, info.srclen, a, sizeof(a)),
	    "[::ffff:192.0.2.1]:0", "v1 port 0, v4-mapped source");

	is_int(parse_str("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n",
		   &info, &consumed),
	    PP_OK, "v1 TCP4 extremes");
	is_str(addrstr(&info.dst, info.dstlen, a, sizeof(a)),
	    "255.255.255.255:65535", "v1 TCP4 extreme destination");

	is_int(parse_str("PROXY UNKNOWN\r\n", &info, &consumed), PP_OK,
	    "v1 UNKNOWN");
	ok(info.local == 1 && info.srclen == 0 && info.dstlen == 0,
	    "v1 UNKNOWN is local");
	is_int(consumed, 15, "v1 UNKNOWN consumed");

	memset(buf, 0, sizeof(buf));
	memcpy(buf, "PROXY UNKNOWN ", 14);
	memset(buf + 14, 'f', PP_V1_MAX - 16);
	memcpy(buf + PP_V1_MAX - 2, "\r\n", 2);
	is_int(parse_str(buf, &info, &consumed), PP_OK,
	    "v1 UNKNOWN of exactly PP_V1_MAX bytes");
	is_int(consumed, PP_V1_MAX, "consumed PP_V1_MAX");
	ok(prefixes_need_more(buf, PP_V1_MAX, BOTH),
	    "v1 UNKNOWN max: every prefix NEED_MORE");
	is_int(parse_str(unk_max, &info, &consumed), PP_OK,
	    "v1 UNKNOWN with ignored addresses");
	is_int(consumed, PP_V1_MAX, "spec worst case is PP_V1_MAX bytes");
	ok(info.local, "v1 UNKNOWN with addresses is local");
}

static void
test_v1_invalid(void)
{
	static const char *bad[] = {
		/* IPv4 */
		"PROXY TCP4 256.1.1.1 1.1.1.1 1 2\r\n",
		"PROXY TCP4 1.1.1.1 1.1.1.300 1 2\r\n",
		"PROXY TCP4 1.1.1 1.1.1.1 1 2\r\n",
		"PROXY TCP4 1.1.1.1.1 1.1.1.1 1 2\r\n",
		"PROXY TCP4 01.1.1.1 1.1.1.1 1 2\r\n",
		"PROXY TCP4 1.1.1.00 1.1.1.1 1 2\r\n",
		"PROXY TCP4 1..1.1 1.1.1.1 1 2\r\n",
		"PROXY TCP4 .1.1.1 1.1.1.1 1 2\r\n",
		"PROXY TCP4 1.1.1.1. 1.1.1.1 1 2\r\n",
		"PROXY TCP4 1.1.1.1000 1.1.1.1 1 2\r\n",
		"PROXY TCP4 a.b.c.d 1.1.1.1 1 2\r\n",
		"PROXY TCP4 1.1.1.1/24 1.1.1.1 1 2\r\n",
		"PROXY TCP4 ::1 ::1 1 2\r\n",
		"PROXY TCP4 0x7f.1.1.1 1.1.1.1 1 2\r\n",
		/* IPv6 */
		"PROXY TCP6 1.2.3.4 1.2.3.4 1 2\r\n",
		"PROXY TCP6 :::1 ::1 1 2\r\n",
		"PROXY TCP6 1::2::3 ::1 1 2\r\n",
		"PROXY TCP6 2001:db8::g ::1 1 2\r\n",
		"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",
		"PROXY TCP6 [::1] ::1 1 2\r\n",
		"PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n",
		"PROXY TCP6 12345::1 ::1 1 2\r\n",
		/* ports */
		"PROXY TCP4 1.1.1.1 1.1.1.1 65536 2\r\n",
		"PROXY TCP4 1.1.1.1 1.1.1.1 1 99999\r\n",
		"PROXY TCP4 1.1.1.1 1.1.1.1 01 2\r\n",
		"PROXY TCP4 1.1.1.1 1.1.1.1 1 00\r\n",
		"PROXY TCP4 1.1.1.1 1.1.1.1 -1 2\r\n",
		"PROXY TCP4 1.1.1.1 1.1.1.1 +1 2\r\n",
		"PROXY TCP4 1.1.1.1 1.1.1.1 1 0x19\r\n",
		"PROXY TCP4 1.1.1.1 1.1.1.1 123456 2\r\n",
		"PROXY TCP4 1.1.1.1 1.1.1.1 1\r\n",
		"PROXY TCP4 1.1.1.1 1.1.1.1 1 2 3\r\n",
		/* framing and spaces */
		"PROXY TCP4 1.1.1.1 1.1.1.1 1 2\n",
		"PROXY TCP4 1.1.1.1 1.1.1.1 1 2\r\r\n",
		"PROXY TCP4 1.1.1.1 1.1.1.1 1 2\rX",
		"PROXY TCP4 1.1.1.1 1.1.1.1 1 2 \r\n",
		"PROXY  TCP4 1.1.1.1 1.1.1.1 1 2\r\n",
		"PROXY TCP4  1.1.1.1 1.1.1.1 1 2\r\n",
		"PROXY TCP4 1.1.1.1  1.1.1.1 1 2\r\n",
		"PROXY TCP4 1.1.1.1 1.1.1.1  1 2\r\n",
		"PROXY TCP4 1.1.1.1 1.1.1.1 1  2\r\n",
		"PROXY\tTCP4 1.1.1.1 1.1.1.1 1 2\r\n",
		"PROXY TCP4\t1.1.1.1 1.1.1.1 1 2\r\n",
		" PROXY TCP4 1.1.1.1 1.1.1.1 1 2\r\n",
		"proxy tcp4 1.1.1.1 1.1.1.1 1 2\r\n",
		"PROXY tcp4 1.1.1.1 1.1.1.1 1 2\r\n",
		"PROXY TCP5 1.1.1.1 1.1.1.1 1 2\r\n",
		"PROXY UDP4 1.1.1.1 1.1.1.1 1 2\r\n",
		"PROXYTCP4 1.1.1.1 1.1.1.1 1 2\r\n",
		"PROXY TCP4\r\n",
		"PROXY TCP4 1.1.1.1\r\n",
		"PROXY TCP4 1.1.1.1 1.1.1.1\r\n",
		"PROXY\r\n",
		"PROXY \r\n",
		"PROXY TCP\r\n",
		/* UNKNOWN */
		"PROXY UNKNOWN\n",
		"PROXY UNKNOWNX\r\n",
		"PROXY UNKNOWN\x01\r\n",
		"PROXY UNKNOWN x\ty\r\n",
		"PROXY UNKNOWN x\x80y\r\n",
		"PROXY UNKNOWN x\ry\r\n",
		/* not PROXY at all */
		"EHLO example.com\r\n",
		"GET / HTTP/1.0\r\n",
		"PROXZ TCP4",
		"\r\nX",
	};
	static const char nul_in_unknown[] = "PROXY UNKNOWN a\0b\r\n";
	struct pp_info	  info;
	size_t		  i, consumed;
	char		  buf[300];

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		is_int(parse_str(bad[i], &info, &consumed), PP_ERROR,
		    "v1 malformed #%zu: %.*s", i, (int)strcspn(bad[i], "\r\n"),
		    bad[i]);
	is_int(parse(nul_in_unknown, sizeof(nul_in_unknown) - 1, BOTH, &info,
		   &consumed),
	    PP_ERROR, "v1 UNKNOWN with NUL");

	/* Errors found before the line is complete. */
	is_int(parse_str("PROXY TCP4 256", &info, &consumed), PP_ERROR,
	    "early: octet 256");
	is_int(parse_str("PROXY TCP4 1.2.3.4 5.6.7.8 0", &info, &consumed),
	    PP_NEED_MORE, "port 0 may be complete");
	is_int(parse_str("PROXY TCP4 1.2.3.4 5.6.7.8 01", &info, &consumed),
	    PP_ERROR, "early: leading zero in port");
	is_int(parse_str("PROXY TCP4 1.2.3.4 5.6.7.8 65536", &info, &consumed),
	    PP_ERROR, "early: port 65536");
	is_int(parse_str("PROXY TCP6 ::::", &info, &consumed), PP_ERROR,
	    "early: ':::'");
	is_int(parse_str("PROXY X", &info, &consumed), PP_ERROR,
	    "early: unknown protocol");
	is_int(parse_str("PROXY UNK", &info, &consumed), PP_NEED_MORE,
	    "prefix of UNKNOWN");
	is_int(parse_str("PRO", &info, &consumed), PP_NEED_MORE,
	    "prefix of PROXY");
	is_int(parse_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r", &info, &consumed),
	    PP_NEED_MORE, "waiting for LF");
	is_int(parse_str("PROXY TCP4 1.1.1.1 1.1.1.1 1 2 ", &info, &consumed),
	    PP_ERROR, "early: space after dport");

	/* Too long: no CRLF within PP_V1_MAX bytes. */
	memcpy(buf, "PROXY UNKNOWN ", 14);
	memset(buf + 14, 'a', sizeof(buf) - 14);
	is_int(parse(buf, PP_V1_MAX - 1, BOTH, &info, &consumed), PP_NEED_MORE,
	    "UNKNOWN, 106 bytes, no CRLF yet");
	is_int(parse(buf, PP_V1_MAX, BOTH, &info, &consumed), PP_ERROR,
	    "UNKNOWN, 107 bytes without CRLF");
	is_int(parse(buf, sizeof(buf), BOTH, &info, &consumed), PP_ERROR,
	    "UNKNOWN, 300 bytes without CRLF");
	memcpy(buf + PP_V1_MAX - 1, "\r\n", 2);
	is_int(parse(buf, PP_V1_MAX + 1, BOTH, &info, &consumed), PP_ERROR,
	    "UNKNOWN line of 108 bytes");
	memcpy(buf + PP_V1_MAX - 1, "a\r", 2);
	is_int(parse(buf, PP_V1_MAX, BOTH, &info, &consumed), PP_ERROR,
	    "CR as byte 107, LF beyond the limit");
}

/* Build a v2 header: signature, ver_cmd, fam, len, then body. */
static size_t
v2(unsigned char *out, unsigned char ver_cmd, unsigned char fam,
    const void *body, size_t bodylen)
{
	static const unsigned char sig[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00,
		0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };

	memcpy(out, sig, 12);
	out[12] = ver_cmd;
	out[13] = fam;
	out[14] = (unsigned char)(bodylen >> 8);
	out[15] = (unsigned char)bodylen;
	if (bodylen > 0)
		memcpy(out + 16, body, bodylen);
	return 16 + bodylen;
}

static void
test_v2(void)
{
	/* 192.0.2.1:12345 -> 198.51.100.2:25 */
	static const unsigned char a4[12] = { 192, 0, 2, 1, 198, 51, 100, 2,
		0x30, 0x39, 0x00, 0x19 };
	unsigned char		   a6[36], body[1100], h[1200], h2[1200];
	struct pp_info		   info;
	size_t			   n, i, consumed;
	char			   a[80];
	int			   allerr;

	n = v2(h, 0x21, 0x11, a4, sizeof(a4));
	is_int(parse(h, n, BOTH, &info, &consumed), PP_OK, "v2 PROXY TCP4");
	is_int(consumed, 28, "v2 TCP4 consumed");
	is_int(info.local, 0, "v2 TCP4 not local");
	is_str(addrstr(&info.src, info.srclen, a, sizeof(a)), "192.0.2.1:12345",
	    "v2 TCP4 source");
	is_str(addrstr(&info.dst, info.dstlen, a, sizeof(a)), "198.51.100.2:25",
	    "v2 TCP4 destination");
	is_int(((struct sockaddr_in *)&info.src)->sin_port, htons(12345),
	    "v2 port kept in network order");
	ok(prefixes_need_more(h, n, BOTH), "v2 TCP4: every prefix NEED_MORE");
	ok(prefixes_need_more(h, n, PP_V2),
	    "v2 TCP4: every prefix NEED_MORE (v2 only)");
	memcpy(h + n, "EHLO x\r\n", 8);
	is_int(parse(h, n + 8, BOTH, &info, &consumed), PP_OK,
	    "v2 + trailing data");
	is_int(consumed, 28, "v2 trailing data not consumed");

	/* IPv6 2001:db8::1:443 -> 2001:db8::2:587 */
	memset(a6, 0, sizeof(a6));
	a6[0] = 0x20, a6[1] = 0x01, a6[2] = 0x0d, a6[3] = 0xb8, a6[15] = 1;
	a6[16] = 0x20, a6[17] = 0x01, a6[18] = 0x0d, a6[19] = 0xb8;
	a6[31] = 2;
	a6[32] = 0x01, a6[33] = 0xbb, a6[34] = 0x02, a6[35] = 0x4b;
	n = v2(h, 0x21, 0x21, a6, sizeof(a6));
	is_int(parse(h, n, BOTH, &info, &consumed), PP_OK, "v2 PROXY TCP6");
	is_int(consumed, 52, "v2 TCP6 consumed");
	is_str(addrstr(&info.src, info.srclen, a, sizeof(a)),
	    "[2001:db8::1]:443", "v2 TCP6 source");
	is_str(addrstr(&info.dst, info.dstlen, a, sizeof(a)),
	    "[2001:db8::2]:587", "v2 TCP6 destination");
	ok(prefixes_need_more(h, n, BOTH), "v2 TCP6: every prefix NEED_MORE");

	/* TLVs: ALPN "smtp", AUTHORITY, NOOP padding, empty TLV. */
	memcpy(body, a4, 12);
	n = 12;
	memcpy(body + n, "\x01\x00\x04smtp", 7);
	n += 7;
	memcpy(body + n, "\x02\x00\x0bmx.example.", 14);
	n += 14;
	memcpy(body + n, "\x04\x00\x03\0\0\0", 6);
	n += 6;
	memcpy(body + n, "\xee\x00\x00", 3);
	n += 3;
	i = v2(h, 0x21, 0x11, body, n);
	is_int(parse(h, i, BOTH, &info, &consumed), PP_OK, "v2 with TLVs");
	is_int(consumed, i, "v2 TLVs consumed");
	is_str(addrstr(&info.src, info.srclen, a, sizeof(a)), "192.0.2.1:12345",
	    "v2 TLVs: source still right");
	ok(prefixes_need_more(h, i, BOTH), "v2 TLVs: every prefix NEED_MORE");

	/* Broken TLV framing. */
	i = v2(h, 0x21, 0x11, body, 12 + 2);
	is_int(parse(h, i, BOTH, &info, &consumed), PP_ERROR,
	    "v2 TLV header cut short");
	memcpy(body + 12, "\x01\x00\x05smtp", 7);
	i = v2(h, 0x21, 0x11, body, 12 + 7);
	is_int(parse(h, i, BOTH, &info, &consumed), PP_ERROR,
	    "v2 TLV longer than the block");

	/* The largest accepted header: 16 + 1024 bytes. */
	memset(body, 0, sizeof(body));
	memcpy(body, a4, 12);
	body[12] = 0x04; /* NOOP */
	body[13] = (1024 - 15) >> 8;
	body[14] = (1024 - 15) & 0xff;
	i = v2(h, 0x21, 0x11, body, 1024);
	is_int(i, PP_V2_MAX, "max header size");
	is_int(parse(h, i, BOTH, &info, &consumed), PP_OK,
	    "v2 of PP_V2_MAX bytes");
	is_int(consumed, PP_V2_MAX, "v2 max consumed");
	ok(prefixes_need_more(h, i, BOTH), "v2 max: every prefix NEED_MORE");
	body[14]++;
	i = v2(h, 0x21, 0x11, body, 1025);
	is_int(parse(h, 16, BOTH, &info, &consumed), PP_ERROR,
	    "v2 longer than PP_V2_MAX refused from its 16 bytes");
	is_int(parse(h, i, BOTH, &info, &consumed), PP_ERROR,
	    "v2 longer than PP_V2_MAX refused");
	h[14] = 0xff, h[15] = 0xff;
	is_int(parse(h, 16, BOTH, &info, &consumed), PP_ERROR,
	    "v2 length 65535 refused");

	/* LOCAL: family and block ignored. */
	n = v2(h, 0x20, 0x00, NULL, 0);
	is_int(parse(h, n, BOTH, &info, &consumed), PP_OK, "v2 LOCAL");
	ok(info.local == 1 && info.srclen == 0 && consumed == 16,
	    "v2 LOCAL is local, 16 bytes");
	n = v2(h, 0x20, 0x11, a4, sizeof(a4));
	is_int(parse(h, n, BOTH, &info, &consumed), PP_OK,
	    "v2 LOCAL with TCP4 block");
	ok(info.local == 1 && info.srclen == 0 && consumed == 28,
	    "v2 LOCAL addresses ignored");
	n = v2(h, 0x20, 0x12, a4, 3);
	is_int(parse(h, n, BOTH, &info, &consumed), PP_OK,
	    "v2 LOCAL: family byte ignored");

	/* PROXY with AF_UNSPEC / AF_UNIX: local. */
	n = v2(h, 0x21, 0x00, NULL, 0);
	is_int(
	    parse(h, n, BOTH, &info, &consumed), PP_OK, "v2 PROXY AF_UNSPEC");
	ok(info.local == 1 && consumed == 16, "v2 AF_UNSPEC is local");
	n = v2(h, 0x21, 0x00, "junk", 4);
	is_int(parse(h, n, BOTH, &info, &consumed), PP_OK,
	    "v2 PROXY AF_UNSPEC with a block");
	is_int(consumed, 20, "v2 AF_UNSPEC block skipped");
	memset(body, 0, sizeof(body));
	memcpy(body, "/run/a.sock", 11);
	memcpy(body + 108, "/run/b.sock", 11);
	n = v2(h, 0x21, 0x31, body, 216);
	is_int(parse(h, n, BOTH, &info, &consumed), PP_OK,
	    "v2 PROXY AF_UNIX stream");
	ok(info.local == 1 && consumed == 232, "v2 AF_UNIX is local");
	n = v2(h, 0x21, 0x31, body, 215);
	is_int(parse(h, n, BOTH, &info, &consumed), PP_ERROR,
	    "v2 AF_UNIX block too short");

	/* UDP and unassigned family bytes. */
	n = v2(h, 0x21, 0x12, a4, sizeof(a4));
	is_int(parse(h, n, BOTH, &info, &consumed), PP_ERROR, "v2 UDP4");
	is_int(parse(h, 14, BOTH, &info, &consumed), PP_ERROR,
	    "v2 UDP4 refused from its 14 bytes");
	n = v2(h, 0x21, 0x22, a6, sizeof(a6));
	is_int(parse(h, n, BOTH, &info, &consumed), PP_ERROR, "v2 UDP6");
	n = v2(h, 0x21, 0x32, body, 216);
	is_int(
	    parse(h, n, BOTH, &info, &consumed), PP_ERROR, "v2 AF_UNIX dgram");
	n = v2(h, 0x21, 0x10, a4, sizeof(a4));
	is_int(parse(h, n, BOTH, &info, &consumed), PP_ERROR,
	    "v2 AF_INET, UNSPEC transport");
	n = v2(h, 0x21, 0x13, a4, sizeof(a4));
	is_int(parse(h, n, BOTH, &info, &consumed), PP_ERROR, "v2 transport 3");
	n = v2(h, 0x21, 0x41, a4, sizeof(a4));
	is_int(parse(h, n, BOTH, &info, &consumed), PP_ERROR, "v2 family 4");
	n = v2(h, 0x21, 0x01, NULL, 0);
	is_int(parse(h, n, BOTH, &info, &consumed), PP_ERROR,
	    "v2 AF_UNSPEC over STREAM (not a listed value)");

	/* Address blocks too short for the family. */
	n = v2(h, 0x21, 0x11, a4, 11);
	is_int(parse(h, 16, BOTH, &info, &consumed), PP_ERROR,
	    "v2 TCP4 length 11 refused from 16 bytes");
	is_int(
	    parse(h, n, BOTH, &info, &consumed), PP_ERROR, "v2 TCP4 length 11");
	n = v2(h, 0x21, 0x21, a6, 35);
	is_int(
	    parse(h, n, BOTH, &info, &consumed), PP_ERROR, "v2 TCP6 length 35");
	n = v2(h, 0x21, 0x21, a4, 12);
	is_int(parse(h, n, BOTH, &info, &consumed), PP_ERROR,
	    "v2 TCP6 with a TCP4-sized block");

	/* Version and command. */
	n = v2(h, 0x11, 0x11, a4, sizeof(a4));
	is_int(parse(h, n, BOTH, &info, &consumed), PP_ERROR, "v2 version 1");
	is_int(parse(h, 13, BOTH, &info, &consumed), PP_ERROR,
	    "v2 version 1 refused from 13 bytes");
	n = v2(h, 0x31, 0x11, a4, sizeof(a4));
	is_int(parse(h, n, BOTH, &info, &consumed), PP_ERROR, "v2 version 3");
	n = v2(h, 0x01, 0x11, a4, sizeof(a4));
	is_int(parse(h, n, BOTH, &info, &consumed), PP_ERROR, "v2 version 0");
	n = v2(h, 0x22, 0x11, a4, sizeof(a4));
	is_int(parse(h, n, BOTH, &info, &consumed), PP_ERROR, "v2 command 2");
	n = v2(h, 0x2f, 0x11, a4, sizeof(a4));
	is_int(parse(h, n, BOTH, &info, &consumed), PP_ERROR, "v2 command 15");

	/* Bad signature: refused as soon as the wrong byte is seen. */
	n = v2(h, 0x21, 0x11, a4, sizeof(a4));
	allerr = 1;
	for (i = 0; i < 12; i++) {
		memcpy(h2, h, n);
		h2[i] ^= 0x20;
		if (parse(h2, i + 1, BOTH, &info, &consumed) != PP_ERROR ||
		    parse(h2, n, BOTH, &info, &consumed) != PP_ERROR)
			allerr = 0;
	}
	ok(allerr, "v2 signature: every corrupted byte refused at once");
	is_int(parse("\r\n\r\n\0\r\nQUIT\n", 12, PP_V2, &info, &consumed),
	    PP_NEED_MORE, "v2 signature alone: NEED_MORE");
	is_int(parse("\r\n\r\n\r\n", 6, BOTH, &info, &consumed), PP_ERROR,
	    "CRLFCRLF then CR is not the signature");
	is_int(parse("\r\n", 2, BOTH, &info, &consumed), PP_NEED_MORE,
	    "CRLF could start the v2 signature");
}

static void
test_versions(void)
{
	static const char	   v1h[] = "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n";
	static const unsigned char a4[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0,
		2 };
	unsigned char		   h[64];
	struct pp_info		   info;
	size_t			   n, consumed;

	n = v2(h, 0x21, 0x11, a4, sizeof(a4));
	is_int(parse(v1h, strlen(v1h), PP_V1, &info, &consumed), PP_OK,
	    "v1 allowed");
	is_int(parse(v1h, strlen(v1h), PP_V2, &info, &consumed), PP_ERROR,
	    "v1 not allowed");
	is_int(parse(v1h, 1, PP_V2, &info, &consumed), PP_ERROR,
	    "v1 not allowed, refused from 'P'");
	is_int(parse(h, n, PP_V2, &info, &consumed), PP_OK, "v2 allowed");
	is_int(
	    parse(h, n, PP_V1, &info, &consumed), PP_ERROR, "v2 not allowed");
	is_int(parse(h, 1, PP_V1, &info, &consumed), PP_ERROR,
	    "v2 not allowed, refused from CR");
	is_int(parse(v1h, strlen(v1h), 0, &info, &consumed), PP_ERROR,
	    "no version allowed");
	is_int(
	    parse("", 0, BOTH, &info, &consumed), PP_NEED_MORE, "empty input");
	consumed = 99;
	(void)parse(h, 5, BOTH, &info, &consumed);
	is_int(consumed, 0, "consumed is 0 unless PP_OK");
	is_int(proxyproto_parse(
		   (const unsigned char *)v1h, strlen(v1h), BOTH, NULL, NULL),
	    PP_OK, "NULL out and consumed tolerated");
}

int
main(void)
{
	test_v1_valid();
	test_v1_invalid();
	test_v2();
	test_versions();
	return tap_done();
}
