/*
 * authlimit.h - failed AUTH attempts per client, over all of moatd's
 * threads: an IPv4 address, or an IPv6 /64 (one subscriber's network; an
 * attacker with a /64 has 2^64 addresses to rotate through), within a
 * fixed window. A bounded table: 64 shards of 256 clients, the oldest
 * entry of a shard making room when it is full. Thread-safe; touched only
 * on AUTH.
 */
#ifndef MOAT_AUTHLIMIT_H
#define MOAT_AUTHLIMIT_H

#include <sys/socket.h>
#include <time.h>

/* 1 when `max` failures were counted within the last `window` seconds. */
int authlimit_blocked(
    const struct sockaddr *, long max, long window, time_t now);
/* Count one failure; returns the client's count within the window. */
long authlimit_fail(const struct sockaddr *, long window, time_t now);

#endif
