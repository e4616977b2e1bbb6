/*
 * addr.c - address parsing/formatting and CIDR matching.
 *
 * addr_parse() may resolve host names (blocking getaddrinfo) and is for
 * configuration loading only. Everything else is pure and thread-safe.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "util.h"

int
addr_parse(const char *spec, struct sockaddr_storage *ss, socklen_t *len,
    char *err, size_t errsz)
{
	char		host[256], *end;
	const char     *p, *port;
	struct addrinfo hints, *res;
	long		pn;
	size_t		hl;
	int		rc;

	if (spec[0] == '[') {
		if ((p = strchr(spec, ']')) == NULL || p[1] != ':') {
			snprintf(err, errsz, "expected [address]:port");
			return -1;
		}
		hl = p - spec - 1;
		spec++;
		port = p + 2;
	} else {
		if ((p = strrchr(spec, ':')) == NULL) {
			snprintf(err, errsz, "expected address:port");
			return -1;
		}
		if (memchr(spec, ':', p - spec) != NULL) {
			snprintf(err, errsz,
			    "IPv6 addresses must be written [address]:port");
			return -1;
		}
		hl = p - spec;
		port = p + 1;
	}
	if (hl == 0 || hl >= sizeof(host)) {
		snprintf(err, errsz, "bad host");
		return -1;
	}
	memcpy(host, spec, hl);
	host[hl] = '\0';
	pn = strtol(port, &end, 10);
	if (*port == '\0' || *end != '\0' || pn < 1 || pn > 65535) {
		snprintf(err, errsz, "bad port \"%s\"", port);
		return -1;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
		snprintf(err, errsz, "%s: %s", host, gai_strerror(rc));
		return -1;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

void
addr_ntop(const struct sockaddr *sa, char *buf, size_t bufsz)
{
	const struct sockaddr_in6 *s6;

	buf[0] = '\0';
	switch (sa->sa_family) {
	case AF_INET:
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
		    buf, bufsz);
		break;
	case AF_INET6:
		s6 = (const struct sockaddr_in6 *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
			inet_ntop(
			    AF_INET, &s6->sin6_addr.s6_addr[12], buf, bufsz);
		else
			inet_ntop(AF_INET6, &s6->sin6_addr, buf, bufsz);
		break;
	case AF_UNIX:
		snprintf(buf, bufsz, "local");
		break;
	default:
		snprintf(buf, bufsz, "unknown");
	}
}

int
addr_port(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)sa)->sin_port);
	if (sa->sa_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	return 0;
}

int
addr_is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)
				  ->sin_addr.s_addr) >>
			   24) == 127;
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a =
		    &((const struct sockaddr_in6 *)sa)->sin6_addr;

		return IN6_IS_ADDR_LOOPBACK(a) ||
		    (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	return 0;
}

void
addr_unmap(struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in6 s6;
	struct sockaddr_in *s4;

	if (ss->ss_family != AF_INET6)
		return;
	memcpy(&s6, ss, sizeof(s6));
	if (!IN6_IS_ADDR_V4MAPPED(&s6.sin6_addr))
		return;
	s4 = (struct sockaddr_in *)ss;
	memset(ss, 0, sizeof(*ss));
	s4->sin_family = AF_INET;
	s4->sin_port = s6.sin6_port;
	memcpy(&s4->sin_addr, &s6.sin6_addr.s6_addr[12], 4);
	*len = sizeof(*s4);
}

int
cidr_parse(const char *spec, struct cidr *c)
{
	char buf[64], *slash, *end;
	long bits;
	int  max;

	if (strlen(spec) >= sizeof(buf))
		return -1;
	strcpy(buf, spec);
	memset(c, 0, sizeof(*c));
	if ((slash = strchr(buf, '/')) != NULL)
		*slash++ = '\0';
	if (inet_pton(AF_INET, buf, c->addr) == 1) {
		c->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, buf, c->addr) == 1) {
		c->family = AF_INET6;
		max = 128;
	} else
		return -1;
	bits = max;
	if (slash != NULL) {
		bits = strtol(slash, &end, 10);
		if (*slash == '\0' || *end != '\0' || bits < 0 || bits > max)
			return -1;
	}
	c->bits = (int)bits;
	return 0;
}

static int
prefix_eq(const unsigned char *a, const unsigned char *b, int bits)
{
	int	      bytes = bits / 8, rem = bits % 8;
	unsigned char mask;

	if (memcmp(a, b, bytes) != 0)
		return 0;
	if (rem == 0)
		return 1;
	mask = (unsigned char)(0xff << (8 - rem));
	return (a[bytes] & mask) == (b[bytes] & mask);
}

int
cidr_match(const struct cidr *c, const struct sockaddr *sa)
{
	const struct sockaddr_in6 *s6;

	if (sa->sa_family == AF_INET) {
		if (c->family != AF_INET)
			return 0;
		return prefix_eq(c->addr,
		    (const unsigned char *)&((const struct sockaddr_in *)sa)
			->sin_addr,
		    c->bits);
	}
	if (sa->sa_family == AF_INET6) {
		s6 = (const struct sockaddr_in6 *)sa;
		if (c->family == AF_INET)
			return IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) &&
			    prefix_eq(
				c->addr, &s6->sin6_addr.s6_addr[12], c->bits);
		return prefix_eq(c->addr, s6->sin6_addr.s6_addr, c->bits);
	}
	return 0;
}

void
addr_key(const struct sockaddr *sa, unsigned char key[16])
{
	memset(key, 0, 16);
	if (sa->sa_family == AF_INET) {
		key[10] = key[11] = 0xff;
		memcpy(
		    key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6)
		memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
}

uint32_t
addr_key_hash(const unsigned char key[16])
{
	return fnv1a(FNV1A_INIT, key, 16);
}
