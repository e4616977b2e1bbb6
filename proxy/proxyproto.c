/*
 * proxyproto.c - HAProxy PROXY protocol header parser, versions 1 and 2
 * (haproxy doc/proxy-protocol.txt: §2.1 the human-readable header format,
 * §2.2 the binary header format, §2.2.x TLVs).
 *
 * The parser is incremental in the simplest way: the caller passes every
 * byte received so far, from the start of the connection, and the parser
 * starts over each time. It answers PP_NEED_MORE only while the bytes seen
 * are a prefix of some valid header, and PP_ERROR as soon as they are not,
 * so a client that is not a proxy (or a proxy that sends garbage) is
 * refused without waiting for a timeout. It never reads beyond the end of
 * the header, nor beyond PP_V1_MAX / PP_V2_MAX bytes.
 *
 * What is accepted is deliberately strict:
 *   v1: "PROXY" SP ("TCP4" | "TCP6") SP src SP dst SP sport SP dport CRLF,
 *       single spaces only, IPv4 as a dotted quad of decimal octets without
 *       leading zeros, IPv6 as inet_pton(3) accepts it, ports 0-65535
 *       without leading zeros; or "PROXY UNKNOWN" followed by CRLF or by
 *       SP and printable ASCII up to CRLF (ignored, as §2.1 requires).
 *   v2: the 12-byte signature, version 2, command LOCAL (the whole block is
 *       skipped and the family ignored, as §2.2 requires) or PROXY with
 *       TCP over IPv4 or IPv6 (addresses used), AF_UNSPEC or AF_UNIX over
 *       STREAM (addresses ignored: "local"). UDP and every unlisted
 *       family/protocol byte are errors. The TLVs after the addresses are
 *       not interpreted, but their framing must fill the block exactly.
 *
 * Pure code: no I/O, no allocation, no global state except constant
 * tables; safe from any thread. The input is borrowed for the call only;
 * *out is written only on PP_OK.
 */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

#include "proxyproto.h"

static const unsigned char pp2_sig[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
	0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };

#define PP2_VERSION	    0x20
#define PP2_CMD_LOCAL	    0x00
#define PP2_CMD_PROXY	    0x01
#define PP2_FAM_UNSPEC	    0x00 /* AF_UNSPEC, UNSPEC */
#define PP2_FAM_TCP4	    0x11 /* AF_INET, STREAM */
#define PP2_FAM_TCP6	    0x21 /* AF_INET6, STREAM */
#define PP2_FAM_UNIX_STREAM 0x31 /* AF_UNIX, STREAM */
#define PP2_ADDRLEN_INET    12
#define PP2_ADDRLEN_INET6   36
#define PP2_ADDRLEN_UNIX    216
#define PP2_TLV_HDRLEN	    3

#define V1_ADDR4_MAX 15 /* 255.255.255.255 */
#define V1_ADDR6_MAX 45 /* INET6_ADDRSTRLEN - 1 */
#define V1_PORT_MAX  5

/* The v1 input seen so far, bounded by PP_V1_MAX. */
struct v1_cursor {
	const unsigned char *buf;
	size_t		     len; /* bytes usable: <= PP_V1_MAX */
	size_t		     pos;
	int		     full; /* len reached PP_V1_MAX */
};

/* Running out of input: more may come, unless the line is already too long. */
static enum pp_result
v1_end(const struct v1_cursor *c)
{
	return c->full ? PP_ERROR : PP_NEED_MORE;
}

static int
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static int
is_v4char(int c)
{
	return is_digit(c) || c == '.';
}

static int
is_v6char(int c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') ||
	    (c >= 'A' && c <= 'F') || c == ':' || c == '.';
}

static int
is_protochar(int c)
{
	return (c >= 'A' && c <= 'Z') || is_digit(c);
}

/*
 * Read a token of bytes satisfying ok(), at most max of them, starting at
 * the cursor. Returns 1 when a byte outside the set follows (the token is
 * complete; that byte is not consumed), 0 when the input ends first, -1
 * when the token is longer than max.
 */
static int
v1_token(
    struct v1_cursor *c, int (*ok)(int), size_t max, size_t *start, size_t *n)
{
	*start = c->pos;
	while (c->pos < c->len && ok(c->buf[c->pos])) {
		c->pos++;
		if (c->pos - *start > max)
			return -1;
	}
	*n = c->pos - *start;
	return c->pos < c->len;
}

/* Expect one literal byte. */
static enum pp_result
v1_expect(struct v1_cursor *c, unsigned char want)
{
	if (c->pos == c->len)
		return v1_end(c);
	if (c->buf[c->pos] != want)
		return PP_ERROR;
	c->pos++;
	return PP_OK;
}

/*
 * Check s[0..n) as a dotted quad of decimal octets 0-255 without leading
 * zeros. When complete is 0, only check that it can still become one
 * (a prefix); when 1, it must be one, and *a receives it.
 */
static int
v1_check_v4(const unsigned char *s, size_t n, int complete, struct in_addr *a)
{
	unsigned char octets[4];
	size_t	      i, parts, digits;
	unsigned int  v;

	parts = 0;
	digits = 0;
	v = 0;
	for (i = 0; i <= n; i++) {
		if (i == n || s[i] == '.') {
			/* An empty part is only fine at the very end of a
			 * prefix. */
			if (digits == 0 && (complete || i < n))
				return -1;
			if (digits > 0)
				octets[parts] = (unsigned char)v;
			if (i < n && ++parts == 4)
				return -1;
			digits = 0;
			v = 0;
			continue;
		}
		if (digits == 1 && v == 0)
			return -1; /* leading zero */
		v = v * 10 + (unsigned int)(s[i] - '0');
		if (++digits > 3 || v > 255)
			return -1;
	}
	if (!complete)
		return 0;
	if (parts != 3)
		return -1;
	memcpy(&a->s_addr, octets, 4);
	return 0;
}

/*
 * IPv6: a prefix is only checked for what can never be repaired (":::" or
 * a second "::"); the complete token goes to inet_pton(3), which is not
 * locale-dependent.
 */
static int
v1_check_v6(const unsigned char *s, size_t n, int complete, struct in6_addr *a)
{
	char   tmp[V1_ADDR6_MAX + 1];
	size_t i, dcolons;

	dcolons = 0;
	for (i = 1; i < n; i++) {
		if (s[i] == ':' && s[i - 1] == ':') {
			if (i >= 2 && s[i - 2] == ':')
				return -1;
			if (++dcolons > 1)
				return -1;
		}
	}
	if (!complete)
		return 0;
	if (n == 0 || n > V1_ADDR6_MAX)
		return -1;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	return inet_pton(AF_INET6, tmp, a) == 1 ? 0 : -1;
}

/* One address token, followed by SP. */
static enum pp_result
v1_addr(
    struct v1_cursor *c, int v6, struct sockaddr_storage *ss, socklen_t *sslen)
{
	struct sockaddr_in  sin;
	struct sockaddr_in6 sin6;
	size_t		    start, n;
	int		    r;

	r = v1_token(c, v6 ? is_v6char : is_v4char,
	    v6 ? V1_ADDR6_MAX : V1_ADDR4_MAX, &start, &n);
	if (r == -1)
		return PP_ERROR;
	if (r == 0) {
		if ((v6 ? v1_check_v6(c->buf + start, n, 0, NULL)
			: v1_check_v4(c->buf + start, n, 0, NULL)) == -1)
			return PP_ERROR;
		return v1_end(c);
	}
	if (v6) {
		memset(&sin6, 0, sizeof(sin6));
		sin6.sin6_family = AF_INET6;
		if (v1_check_v6(c->buf + start, n, 1, &sin6.sin6_addr) == -1)
			return PP_ERROR;
		memcpy(ss, &sin6, sizeof(sin6));
		*sslen = sizeof(sin6);
	} else {
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		if (v1_check_v4(c->buf + start, n, 1, &sin.sin_addr) == -1)
			return PP_ERROR;
		memcpy(ss, &sin, sizeof(sin));
		*sslen = sizeof(sin);
	}
	return v1_expect(c, ' ');
}

/* A port 0-65535 without leading zeros, followed by the byte term. */
static enum pp_result
v1_port(struct v1_cursor *c, unsigned char term, uint16_t *port)
{
	size_t	      start, n, i;
	unsigned long v;
	int	      r;

	r = v1_token(c, is_digit, V1_PORT_MAX, &start, &n);
	if (r == -1)
		return PP_ERROR;
	v = 0;
	for (i = 0; i < n; i++) {
		if (i == 1 && v == 0)
			return PP_ERROR; /* leading zero */
		v = v * 10 + (unsigned long)(c->buf[start + i] - '0');
	}
	if (v > 65535)
		return PP_ERROR;
	if (r == 0)
		return v1_end(c);
	if (n == 0)
		return PP_ERROR;
	*port = (uint16_t)v;
	return v1_expect(c, term);
}

static enum pp_result
v1_crlf(struct v1_cursor *c)
{
	enum pp_result r;

	if ((r = v1_expect(c, '\r')) != PP_OK)
		return r;
	return v1_expect(c, '\n');
}

static enum pp_result
pp_v1(
    const unsigned char *buf, size_t len, struct pp_info *out, size_t *consumed)
{
	static const char *const protos[] = { "TCP4", "TCP6", "UNKNOWN" };
	static const char	 magic[] = "PROXY ";
	struct v1_cursor	 c;
	struct pp_info		 info;
	enum pp_result		 r;
	uint16_t		 sport, dport;
	size_t			 start, n, i;
	int			 proto, tr, v6;

	c.buf = buf;
	c.len = len < PP_V1_MAX ? len : PP_V1_MAX;
	c.full = len >= PP_V1_MAX;
	c.pos = 0;
	memset(&info, 0, sizeof(info));

	for (i = 0; magic[i] != '\0'; i++)
		if ((r = v1_expect(&c, (unsigned char)magic[i])) != PP_OK)
			return r;

	/* The protocol: all three start with a letter and contain no SP. */
	tr = v1_token(&c, is_protochar, 7, &start, &n);
	if (tr == -1)
		return PP_ERROR;
	for (proto = 0; proto < 3; proto++) {
		if (tr == 0 ? n <= strlen(protos[proto])
			    : n == strlen(protos[proto])) {
			if (memcmp(buf + start, protos[proto], n) == 0)
				break;
		}
	}
	if (proto == 3)
		return PP_ERROR;
	if (tr == 0)
		return v1_end(&c);

	if (proto == 2) {
		/* UNKNOWN: CRLF, or SP and anything printable up to CRLF. */
		if (c.buf[c.pos] == ' ') {
			c.pos++;
			while (c.pos < c.len && c.buf[c.pos] >= 0x20 &&
			    c.buf[c.pos] < 0x7f)
				c.pos++;
		}
		if ((r = v1_crlf(&c)) != PP_OK)
			return r;
		info.local = 1;
		goto done;
	}

	v6 = proto == 1;
	if ((r = v1_expect(&c, ' ')) != PP_OK)
		return r;
	if ((r = v1_addr(&c, v6, &info.src, &info.srclen)) != PP_OK)
		return r;
	if ((r = v1_addr(&c, v6, &info.dst, &info.dstlen)) != PP_OK)
		return r;
	if ((r = v1_port(&c, ' ', &sport)) != PP_OK)
		return r;
	if ((r = v1_port(&c, '\r', &dport)) != PP_OK)
		return r;
	if ((r = v1_expect(&c, '\n')) != PP_OK)
		return r;
	if (v6) {
		((struct sockaddr_in6 *)&info.src)->sin6_port = htons(sport);
		((struct sockaddr_in6 *)&info.dst)->sin6_port = htons(dport);
	} else {
		((struct sockaddr_in *)&info.src)->sin_port = htons(sport);
		((struct sockaddr_in *)&info.dst)->sin_port = htons(dport);
	}

done:
	if (out != NULL)
		*out = info;
	if (consumed != NULL)
		*consumed = c.pos;
	return PP_OK;
}

/*
 * The TLV area must be a sequence of type(1) length(2) value(length) that
 * ends exactly at the end of the block; the values are not interpreted.
 */
static int
v2_check_tlvs(const unsigned char *p, size_t n)
{
	size_t off, tlen;

	off = 0;
	while (off < n) {
		if (n - off < PP2_TLV_HDRLEN)
			return -1;
		tlen = ((size_t)p[off + 1] << 8) | p[off + 2];
		off += PP2_TLV_HDRLEN;
		if (tlen > n - off)
			return -1;
		off += tlen;
	}
	return 0;
}

static enum pp_result
pp_v2(
    const unsigned char *buf, size_t len, struct pp_info *out, size_t *consumed)
{
	struct pp_info	    info;
	struct sockaddr_in  sin;
	struct sockaddr_in6 sin6;
	size_t		    i, addrlen, total;
	unsigned char	    cmd, fam;

	for (i = 0; i < sizeof(pp2_sig) && i < len; i++)
		if (buf[i] != pp2_sig[i])
			return PP_ERROR;
	if (len <= sizeof(pp2_sig))
		return PP_NEED_MORE;

	if ((buf[12] & 0xF0) != PP2_VERSION)
		return PP_ERROR;
	cmd = buf[12] & 0x0F;
	if (cmd != PP2_CMD_LOCAL && cmd != PP2_CMD_PROXY)
		return PP_ERROR;
	if (len < 14)
		return PP_NEED_MORE;

	/* LOCAL: §2.2 says the family is to be ignored, with the block. */
	fam = buf[13];
	addrlen = 0;
	if (cmd == PP2_CMD_PROXY) {
		switch (fam) {
		case PP2_FAM_UNSPEC:
			addrlen = 0;
			break;
		case PP2_FAM_TCP4:
			addrlen = PP2_ADDRLEN_INET;
			break;
		case PP2_FAM_TCP6:
			addrlen = PP2_ADDRLEN_INET6;
			break;
		case PP2_FAM_UNIX_STREAM:
			addrlen = PP2_ADDRLEN_UNIX;
			break;
		default:
			/* UDP, AF_UNIX datagrams, unassigned values. */
			return PP_ERROR;
		}
	}
	if (len < 16)
		return PP_NEED_MORE;

	total = 16 + (((size_t)buf[14] << 8) | buf[15]);
	if (total > PP_V2_MAX || total - 16 < addrlen)
		return PP_ERROR;
	if (len < total)
		return PP_NEED_MORE;

	memset(&info, 0, sizeof(info));
	if (cmd == PP2_CMD_LOCAL || fam == PP2_FAM_UNSPEC) {
		/* Nothing in the block is meaningful to us. */
		info.local = 1;
		goto done;
	}
	if (v2_check_tlvs(buf + 16 + addrlen, total - 16 - addrlen) == -1)
		return PP_ERROR;

	switch (fam) {
	case PP2_FAM_TCP4:
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		memcpy(&sin.sin_addr, buf + 16, 4);
		memcpy(&sin.sin_port, buf + 24, 2); /* network order */
		memcpy(&info.src, &sin, sizeof(sin));
		memcpy(&sin.sin_addr, buf + 20, 4);
		memcpy(&sin.sin_port, buf + 26, 2);
		memcpy(&info.dst, &sin, sizeof(sin));
		info.srclen = info.dstlen = sizeof(sin);
		break;
	case PP2_FAM_TCP6:
		memset(&sin6, 0, sizeof(sin6));
		sin6.sin6_family = AF_INET6;
		memcpy(&sin6.sin6_addr, buf + 16, 16);
		memcpy(&sin6.sin6_port, buf + 48, 2);
		memcpy(&info.src, &sin6, sizeof(sin6));
		memcpy(&sin6.sin6_addr, buf + 32, 16);
		memcpy(&sin6.sin6_port, buf + 50, 2);
		memcpy(&info.dst, &sin6, sizeof(sin6));
		info.srclen = info.dstlen = sizeof(sin6);
		break;
	default:
		/* AF_UNIX: the socket's own addresses are kept. */
		info.local = 1;
		break;
	}

done:
	if (out != NULL)
		*out = info;
	if (consumed != NULL)
		*consumed = total;
	return PP_OK;
}

/*
 * The first byte decides the version: 'P' can only start v1, CR only v2.
 * A version not in `versions` is an error as soon as it is recognised.
 */
enum pp_result
proxyproto_parse(const unsigned char *buf, size_t len, int versions,
    struct pp_info *out, size_t *consumed)
{
	if (consumed != NULL)
		*consumed = 0;
	if ((versions & (PP_V1 | PP_V2)) == 0)
		return PP_ERROR;
	if (len == 0)
		return PP_NEED_MORE;
	if (buf[0] == 'P')
		return (versions & PP_V1) ? pp_v1(buf, len, out, consumed)
					  : PP_ERROR;
	if (buf[0] == pp2_sig[0])
		return (versions & PP_V2) ? pp_v2(buf, len, out, consumed)
					  : PP_ERROR;
	return PP_ERROR;
}
