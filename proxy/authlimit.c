/*
 * authlimit.c - failed AUTH attempts per client; see authlimit.h.
 *
 * Each shard is a small array searched linearly under its mutex: AUTH
 * failures are rare next to everything else a session does, and a fixed
 * array bounds the memory whatever the number of clients.
 */
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "addr.h"
#include "authlimit.h"

#define SHARDS	  64
#define PER_SHARD 256

struct authent {
	unsigned char key[16];
	time_t	      start; /* window start; 0 = free */
	long	      count;
};

struct shard {
	pthread_mutex_t mtx;
	struct authent	e[PER_SHARD];
};

static struct shard shards[SHARDS] = {
	[0 ... SHARDS - 1] = { PTHREAD_MUTEX_INITIALIZER, { { { 0 }, 0, 0 } } }
};

/* addr_key, with any IPv6 address but an IPv4-mapped one cut to its /64. */
static void
client_key(const struct sockaddr *sa, unsigned char key[16])
{
	addr_key(sa, key);
	if (sa->sa_family == AF_INET6 &&
	    !IN6_IS_ADDR_V4MAPPED(
		&((const struct sockaddr_in6 *)sa)->sin6_addr))
		memset(key + 8, 0, 8);
}

static struct shard *
shard_of(const unsigned char key[16])
{
	return &shards[addr_key_hash(key) % SHARDS];
}

/* The client's live entry, or NULL. Shard locked. */
static struct authent *
lookup(struct shard *sh, const unsigned char key[16], long window, time_t now)
{
	size_t i;

	for (i = 0; i < PER_SHARD; i++)
		if (sh->e[i].start != 0 && memcmp(sh->e[i].key, key, 16) == 0) {
			if (now - sh->e[i].start >= window) {
				sh->e[i].start = 0; /* window over */
				return NULL;
			}
			return &sh->e[i];
		}
	return NULL;
}

int
authlimit_blocked(const struct sockaddr *sa, long max, long window, time_t now)
{
	unsigned char	key[16];
	struct shard   *sh;
	struct authent *e;
	int		blocked;

	client_key(sa, key);
	sh = shard_of(key);
	pthread_mutex_lock(&sh->mtx);
	e = lookup(sh, key, window, now);
	blocked = e != NULL && e->count >= max;
	pthread_mutex_unlock(&sh->mtx);
	return blocked;
}

long
authlimit_fail(const struct sockaddr *sa, long window, time_t now)
{
	unsigned char	key[16];
	struct shard   *sh;
	struct authent *e, *victim;
	long		count;
	size_t		i;

	client_key(sa, key);
	sh = shard_of(key);
	pthread_mutex_lock(&sh->mtx);
	if ((e = lookup(sh, key, window, now)) == NULL) {
		/* A free or expired slot, else the oldest window. */
		victim = &sh->e[0];
		for (i = 0; i < PER_SHARD; i++) {
			e = &sh->e[i];
			if (e->start == 0 || now - e->start >= window) {
				victim = e;
				break;
			}
			if (e->start < victim->start)
				victim = e;
		}
		e = victim;
		memcpy(e->key, key, 16);
		e->start = now > 0 ? now : 1;
		e->count = 0;
	}
	count = ++e->count;
	pthread_mutex_unlock(&sh->mtx);
	return count;
}
