/*
 * connlimit.h - process-wide connection admission: total and per client
 * address (per exact address, as Postfix's anvil counts). Called at accept and
 * close only; a sharded mutex table keeps this off the per-message path.
 * Thread-safe.
 */
#ifndef MOAT_CONNLIMIT_H
#define MOAT_CONNLIMIT_H

#include <sys/socket.h>

enum admit_result {
	ADMIT_OK = 0,
	ADMIT_TOTAL, /* max_connections reached */
	ADMIT_PER_IP /* max_connections_per_ip reached */
};

enum admit_result conn_admit(
    const struct sockaddr *, long max_total, long max_per_ip);
void conn_release(const struct sockaddr *);

#endif
