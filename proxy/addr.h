/*
 * addr.h - socket addresses: "host:port" / "[v6]:port" parsing (at
 * configuration time only: host names go through getaddrinfo, which may
 * block, so never call addr_parse from an event loop), numeric formatting,
 * and CIDR networks for trusted-source lists. Thread-safe.
 */
#ifndef MOAT_ADDR_H
#define MOAT_ADDR_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct sockaddr_storage;

#define ADDR_STRLEN (INET6_ADDRSTRLEN + 8)

/* Returns 0 and fills ss/len, or -1 with a reason in err. */
int addr_parse(const char *spec, struct sockaddr_storage *ss, socklen_t *len,
    char *err, size_t errsz);

/* Numeric address only ("192.0.2.1", "2001:db8::1"); IPv4-mapped IPv6
 * addresses are shown as IPv4. */
void addr_ntop(const struct sockaddr *, char *buf, size_t bufsz);
int  addr_port(const struct sockaddr *);

/* 127.0.0.0/8, ::1, or an IPv4-mapped 127.x address. */
int addr_is_loopback(const struct sockaddr *);

/* Turn an IPv4-mapped IPv6 address into a plain AF_INET one, in place. */
void addr_unmap(struct sockaddr_storage *, socklen_t *);

/*
 * A 16-byte key for per-client tables: the IPv6 address, IPv4 as its
 * IPv4-mapped form (so both spellings of one address agree); and its
 * FNV-1a hash.
 */
void	 addr_key(const struct sockaddr *, unsigned char key[16]);
uint32_t addr_key_hash(const unsigned char key[16]);

struct cidr {
	int	      family;
	unsigned char addr[16];
	int	      bits;
};

int cidr_parse(const char *spec, struct cidr *);
int cidr_match(const struct cidr *, const struct sockaddr *);

#endif
