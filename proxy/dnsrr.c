/*
 * dnsrr.c - DNS record types and RDATA decoding; see dnsrr.h.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "dnsrr.h"
#include "util.h"

static const struct {
	int	    type;
	const char *name;
} types[] = {
	{ DNS_T_A, "A" },
	{ DNS_T_NS, "NS" },
	{ DNS_T_CNAME, "CNAME" },
	{ DNS_T_PTR, "PTR" },
	{ DNS_T_MX, "MX" },
	{ DNS_T_TXT, "TXT" },
	{ DNS_T_AAAA, "AAAA" },
};

const char *
dns_type_name(int type)
{
	size_t i;

	for (i = 0; i < nitems(types); i++)
		if (types[i].type == type)
			return types[i].name;
	return NULL;
}

int
dns_type_parse(const char *name)
{
	size_t i;

	for (i = 0; i < nitems(types); i++)
		if (strcasecmp(types[i].name, name) == 0)
			return types[i].type;
	return -1;
}

const char *
dns_status_name(enum dns_status st)
{
	static const char *const names[] = { "ok", "nodata", "nxdomain",
		"tempfail", "timeout", "bogus", "error" };

	return (size_t)st < nitems(names) ? names[st] : "?";
}

/* ----------------------------------------------------------- decoding */

/* An uncompressed wire name (as libunbound hands rdata) to dotted text;
 * labels with a dot or a control character are refused. */
static long
name_text(
    const unsigned char *p, size_t len, size_t *used, char *out, size_t outsz)
{
	size_t i = 0, o = 0, l, k;

	while (i < len) {
		l = p[i++];
		if (l == 0) {
			if (o == 0) {
				if (outsz < 2)
					return -1;
				out[o++] = '.'; /* the root */
			}
			out[o] = '\0';
			*used = i;
			return (long)o;
		}
		if (l > 63 || i + l > len || o + l + 2 > outsz ||
		    o + (o > 0) + l > 253)
			return -1;
		if (o > 0)
			out[o++] = '.';
		for (k = 0; k < l; k++) {
			unsigned char c = p[i + k];

			if (c <= 0x20 || c == '.' || c >= 0x7f)
				return -1;
			out[o++] = (char)c;
		}
		i += l;
	}
	return -1; /* no terminating root label */
}

long
dns_rdata_text(int type, const unsigned char *rd, size_t len, char *out,
    size_t outsz, unsigned *pref)
{
	size_t used, i, o;
	long   n;

	if (outsz == 0)
		return -1;
	*pref = 0;
	switch (type) {
	case DNS_T_A:
		if (len != 4 ||
		    inet_ntop(AF_INET, rd, out, (socklen_t)outsz) == NULL)
			return -1;
		return (long)strlen(out);
	case DNS_T_AAAA:
		if (len != 16 ||
		    inet_ntop(AF_INET6, rd, out, (socklen_t)outsz) == NULL)
			return -1;
		return (long)strlen(out);
	case DNS_T_MX:
		if (len < 3)
			return -1;
		*pref = (unsigned)rd[0] << 8 | rd[1];
		n = name_text(rd + 2, len - 2, &used, out, outsz);
		return n >= 0 && used == len - 2 ? n : -1;
	case DNS_T_PTR:
	case DNS_T_NS:
	case DNS_T_CNAME:
		n = name_text(rd, len, &used, out, outsz);
		return n >= 0 && used == len ? n : -1;
	case DNS_T_TXT:
		/* One or more <character-string>s, joined. */
		if (len == 0)
			return -1;
		for (i = 0, o = 0; i < len;) {
			size_t l = rd[i++];

			if (i + l > len || o + l + 1 > outsz)
				return -1;
			memcpy(out + o, rd + i, l);
			o += l;
			i += l;
		}
		out[o] = '\0';
		return (long)o;
	default:
		return -1;
	}
}

int
dns_reverse_name(const char *addr, char *out, size_t outlen)
{
	unsigned char b[16];
	size_t	      o = 0;
	int	      i, n;

	if (inet_pton(AF_INET, addr, b) == 1) {
		n = snprintf(out, outlen, "%u.%u.%u.%u.in-addr.arpa", b[3],
		    b[2], b[1], b[0]);
		return n > 0 && (size_t)n < outlen ? 0 : -1;
	}
	if (inet_pton(AF_INET6, addr, b) != 1 || outlen < 16 * 4 + 9)
		return -1;
	for (i = 15; i >= 0; i--) {
		static const char hex[] = "0123456789abcdef";

		out[o++] = hex[b[i] & 15];
		out[o++] = '.';
		out[o++] = hex[b[i] >> 4];
		out[o++] = '.';
	}
	memcpy(out + o, "ip6.arpa", 9);
	return 0;
}

int
dns_name_valid(const char *name)
{
	size_t len = strlen(name), i, label = 0;

	if (len == 0 || len > 253 + (name[len - 1] == '.'))
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c == '.') {
			if (label == 0 && !(i == 0 && len == 1))
				return 0;
			label = 0;
		} else if (c <= 0x20 || c >= 0x7f || ++label > 63)
			return 0;
	}
	return 1;
}

/* ----------------------------------------------------------- message TTLs */

/* Skip a possibly compressed name at *i; 0, or -1 if it runs off. */
static int
skip_name(const unsigned char *m, size_t len, size_t *i)
{
	size_t hops = 0;

	while (*i < len && hops++ < 128) {
		unsigned l = m[*i];

		if (l == 0) {
			*i += 1;
			return 0;
		}
		if ((l & 0xc0) == 0xc0) { /* a pointer ends the name here */
			if (*i + 2 > len)
				return -1;
			*i += 2;
			return 0;
		}
		if (l & 0xc0)
			return -1; /* reserved label types */
		*i += 1 + l;
	}
	return -1;
}

static unsigned long
get32(const unsigned char *p)
{
	return (unsigned long)p[0] << 24 | (unsigned long)p[1] << 16 |
	    (unsigned long)p[2] << 8 | p[3];
}

long
dns_answer_ttl(const unsigned char *m, size_t len, int negative)
{
	size_t	      i = 12, k, qd, an, ns;
	long	      best = -1;
	unsigned long ttl;

	if (m == NULL || len < 12)
		return -1;
	qd = (size_t)m[4] << 8 | m[5];
	an = (size_t)m[6] << 8 | m[7];
	ns = (size_t)m[8] << 8 | m[9];
	for (k = 0; k < qd; k++) {
		if (skip_name(m, len, &i) == -1 || i + 4 > len)
			return -1;
		i += 4;
	}
	for (k = 0; k < an + ns; k++) {
		unsigned type;
		size_t	 rdlen;

		if (skip_name(m, len, &i) == -1 || i + 10 > len)
			return -1;
		type = (unsigned)m[i] << 8 | m[i + 1];
		ttl = get32(m + i + 4);
		rdlen = (size_t)m[i + 8] << 8 | m[i + 9];
		i += 10;
		if (i + rdlen > len)
			return -1;
		if (ttl > 0x7fffffffUL) /* RFC 2181 §8: treat as zero */
			ttl = 0;
		if (!negative && k < an) {
			if (best == -1 || (long)ttl < best)
				best = (long)ttl;
		} else if (negative && k >= an && type == 6 /* SOA */) {
			size_t	      j = i;
			unsigned long min;

			/* MNAME, RNAME, then five 32-bit fields; MINIMUM last
			 */
			if (skip_name(m, i + rdlen, &j) == -1 ||
			    skip_name(m, i + rdlen, &j) == -1 ||
			    j + 20 != i + rdlen)
				return -1;
			min = get32(m + j + 16);
			if (min > 0x7fffffffUL)
				min = 0;
			return (long)(ttl < min ? ttl : min);
		}
		i += rdlen;
	}
	return negative ? -1 : best;
}
