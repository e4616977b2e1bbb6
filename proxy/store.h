/*
 * store.h - moat's key/value state store: the one small interface behind
 * which the classifier's tokens, greylisting, rate limits and reputation
 * live (ARCHITECTURE.md, "State").
 *
 * The model is deliberately small so that a networked backend (Redis) can
 * implement it with plain commands later:
 *
 *   - a store holds named tables (a namespace per user of the store:
 *     "bayes.tokens", "grey", ...);
 *   - a record is a key (1..STORE_KEY_MAX bytes) and a vector of
 *     STORE_NVAL signed 64-bit counters; an absent record reads as all
 *     zeros (found = 0);
 *   - reads are batches (store_get: many keys of one table, one round
 *     trip; Redis: MGET/pipelined HMGET);
 *   - writes are batches of operations applied atomically, all or
 *     nothing, across tables (store_apply; Redis: MULTI/EXEC or one Lua
 *     script): signed deltas added to counters, maxima, plain sets,
 *     deletions, and STORE_CHECK guards for optimistic concurrency (a
 *     batch whose guard fails changes nothing and returns STORE_CONFLICT;
 *     the caller re-reads and retries).
 *
 * Backends: "lmdb:PATH" (or a bare PATH): one LMDB file PATH plus its
 * lock file PATH-lock, shared by every moatd thread and any number of
 * processes (moat learn) at once; see store_lmdb.c. "redis:" is reserved.
 *
 * Ownership and threading: a struct store is thread-safe; every function
 * may be called from any thread at once. Reads never wait for writers
 * (MVCC); writes are serialised by the backend and kept short (no I/O but
 * the store's own inside a write). store_get and store_apply block (disk,
 * later network): call them from a worker thread, never from an event
 * loop thread. Do not carry a store across fork(): open it in the child.
 */
#ifndef MOAT_STORE_H
#define MOAT_STORE_H

#include <stddef.h>
#include <stdint.h>

#define STORE_NVAL	 4   /* counters per record */
#define STORE_KEY_MAX	 256 /* bytes */
#define STORE_NAME_MAX	 64  /* table name bytes */
#define STORE_TABLES_MAX 64

/* store_apply: a STORE_CHECK guard failed; nothing was changed. */
#define STORE_CONFLICT 1

struct store;
struct store_table;

struct store_opts {
	size_t map_init; /* LMDB map size to start with (default 64 MiB) */
	size_t map_max;	 /* the map may grow up to this (default 16 GiB) */
	int    nosync;	 /* don't fsync each write batch (LMDB MDB_NOSYNC:
			    a crash may lose the last batches, never
			    corrupt the file) */
};

/* One record read by store_get. */
struct store_rec {
	int64_t v[STORE_NVAL];
	int	found;
};

enum store_opkind {
	STORE_ADD = 0, /* v[i] += op.v[i] (or max, see maxmask) */
	STORE_SET,     /* the record becomes op.v */
	STORE_DEL,     /* the record goes (absent is fine) */
	STORE_CHECK,   /* guard: the record must equal op.v now (absent
			  reads as zeros), else STORE_CONFLICT */
};

/* store_op.flags */
#define STORE_F_CLAMP 0x01u /* ADD: a counter never goes below 0 */
#define STORE_F_DROP_ZERO                                                      \
	0x02u		     /* ADD: delete the record when all its            \
				non-max counters are 0 afterwards */
#define STORE_F_ABSENT 0x04u /* CHECK: the record must be absent */

struct store_op {
	struct store_table *table;
	const void	   *key;
	size_t		    keylen;
	enum store_opkind   kind;
	unsigned	    flags;   /* STORE_F_* */
	unsigned	    maxmask; /* ADD: bit i set = v[i] becomes
					max(v[i], op.v[i]) (timestamps) */
	int64_t v[STORE_NVAL];
};

/*
 * Open the store at `location` ("lmdb:/var/lib/moat/moat.lmdb" or a
 * path), creating the file if needed. opts may be NULL. Opening the same
 * file twice in one process shares one backend environment (LMDB allows
 * only one per process). NULL with a reason in err on failure.
 */
struct store *store_open(
    const char *location, const struct store_opts *, char *err, size_t errlen);

/* Close; tables of it become invalid. NULL is fine. Returns NULL. */
struct store *store_close(struct store *);

/*
 * The table `name` (1..STORE_NAME_MAX bytes), created if needed.
 * Borrowed: valid until store_close(). NULL with a reason in err.
 */
struct store_table *store_table(
    struct store *, const char *name, char *err, size_t errlen);

/*
 * Read n records of one table: out[i] for keys[i] (keylens[i] bytes).
 * One consistent snapshot. 0, or -1 with a reason in err.
 */
int store_get(struct store_table *, const void *const *keys,
    const size_t *keylens, size_t n, struct store_rec *out, char *err,
    size_t errlen);

/*
 * Apply n operations atomically (in order, all or none). 0,
 * STORE_CONFLICT when a guard failed (nothing applied), or -1 with a
 * reason in err (nothing applied).
 */
int store_apply(struct store *, const struct store_op *, size_t n, char *err,
    size_t errlen);

/*
 * Make every applied batch durable now (for stores opened with nosync).
 * 0, or -1 with a reason in err.
 */
int store_sync(struct store *, char *err, size_t errlen);

/* Records in a table (approximate for networked backends); -1 on error. */
long long store_count(struct store_table *);

/* The location it was opened with, for messages. */
const char *store_location(const struct store *);

#endif
