/*
 * connlimit.c - connection counting for admission control.
 *
 * A global atomic total and a per-address count in 64 mutex-protected
 * shards (chained hash tables, entries freed when their count drops to
 * zero). Thread-safe; touched once at accept and once at close.
 */
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "connlimit.h"
#include "util.h"

#define SHARDS	64
#define BUCKETS 256

struct ipent {
	struct ipent *next;
	unsigned char key[16];
	long	      count;
};

struct shard {
	pthread_mutex_t mtx;
	struct ipent   *b[BUCKETS];
};

static struct shard shards[SHARDS] = { [0 ... SHARDS - 1] = {
					   PTHREAD_MUTEX_INITIALIZER, { 0 } } };
static atomic_long  total;

enum admit_result
conn_admit(const struct sockaddr *sa, long max_total, long max_per_ip)
{
	unsigned char	  key[16];
	uint32_t	  h;
	struct shard	 *sh;
	struct ipent	 *e;
	enum admit_result r = ADMIT_OK;

	if (atomic_fetch_add(&total, 1) + 1 > max_total) {
		atomic_fetch_sub(&total, 1);
		return ADMIT_TOTAL;
	}
	addr_key(sa, key);
	h = addr_key_hash(key);
	sh = &shards[h % SHARDS];
	pthread_mutex_lock(&sh->mtx);
	for (e = sh->b[(h / SHARDS) % BUCKETS]; e != NULL; e = e->next)
		if (memcmp(e->key, key, 16) == 0)
			break;
	if (e == NULL) {
		e = xcalloc(1, sizeof(*e));
		memcpy(e->key, key, 16);
		e->next = sh->b[(h / SHARDS) % BUCKETS];
		sh->b[(h / SHARDS) % BUCKETS] = e;
	}
	if (e->count >= max_per_ip)
		r = ADMIT_PER_IP;
	else
		e->count++;
	pthread_mutex_unlock(&sh->mtx);
	if (r != ADMIT_OK)
		atomic_fetch_sub(&total, 1);
	return r;
}

void
conn_release(const struct sockaddr *sa)
{
	unsigned char  key[16];
	uint32_t       h;
	struct shard  *sh;
	struct ipent **pe, *e;

	addr_key(sa, key);
	h = addr_key_hash(key);
	sh = &shards[h % SHARDS];
	pthread_mutex_lock(&sh->mtx);
	for (pe = &sh->b[(h / SHARDS) % BUCKETS]; (e = *pe) != NULL;
	     pe = &e->next)
		if (memcmp(e->key, key, 16) == 0)
			break;
	if (e != NULL && --e->count <= 0) {
		*pe = e->next;
		free(e);
	}
	pthread_mutex_unlock(&sh->mtx);
	atomic_fetch_sub(&total, 1);
}
