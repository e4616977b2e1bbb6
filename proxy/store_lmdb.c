/*
 * store_lmdb.c - the embedded backend of store.h: one LMDB file (LMDB
 * 0.9, liblmdb) with one named database per table.
 *
 * Layout: the location "lmdb:PATH" (or PATH) is the data file itself and
 * PATH-lock its lock file (MDB_NOSUBDIR), both created 0640 if absent. A
 * record is its counters as native-endian int64s with trailing zeros left
 * out (a token {spam, ham, atime} takes 24 bytes); the file is not
 * portable between architectures.
 *
 * LMDB's rules and how they are kept here:
 *   - one MDB_env per file per process: environments are shared through a
 *     process-wide registry keyed by (device, inode), reference counted;
 *     a child after fork() does not inherit them (the pid is checked);
 *   - MDB_NOTLS: read transactions are not tied to threads, so any thread
 *     may run any number of them (worker pools);
 *   - readers never block on the writer (MVCC); write transactions are
 *     serialised by LMDB's own lock across threads and processes, and one
 *     store_apply() is one short write transaction over operations built
 *     in memory beforehand;
 *   - map size: starts at store_opts.map_init; on MDB_MAP_FULL the batch
 *     is aborted, the map doubled (up to map_max) and the batch retried.
 *     mdb_env_set_mapsize() needs no transaction of this process alive, so
 *     every transaction holds `resize` shared and a resize holds it
 *     exclusively. Growth by another process shows as MDB_MAP_RESIZED,
 *     answered by adopting the new size (mdb_env_set_mapsize(env, 0));
 *   - stale reader slots of crashed processes: mdb_reader_check() at open
 *     and whenever the reader table is full;
 *   - table handles (MDB_dbi) are opened once per environment, in their
 *     own write transaction under a mutex, and shared afterwards.
 *
 * Thread-safe (see store.h).
 */
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"
#include "util.h"

#define MAP_INIT_DEFAULT ((size_t)64 << 20)
#define MAP_MAX_DEFAULT	 ((size_t)16 << 30)
#define MAX_READERS	 1024
#define RETRIES		 64

struct store_table {
	struct lenv *le;
	MDB_dbi	     dbi;
	char	     name[STORE_NAME_MAX + 1];
};

/* One LMDB environment: one per file per process. */
struct lenv {
	struct lenv	  *next;
	dev_t		   dev;
	ino_t		   ino;
	pid_t		   pid;
	int		   refs;
	MDB_env		  *env;
	size_t		   map_max;
	pthread_rwlock_t   resize; /* transactions: shared; resize: exclusive */
	pthread_mutex_t	   tlock;  /* tables[] */
	struct store_table tables[STORE_TABLES_MAX];
	size_t		   ntables;
};

struct store {
	struct lenv *le;
	char	    *location;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct lenv    *registry;

static void
seterr(char *err, size_t errlen, const char *what, int rc)
{
	if (err != NULL && errlen > 0)
		strfmt(err, errlen, "%s: %s", what, mdb_strerror(rc));
}

static const char *
lmdb_path(const char *location)
{
	if (strncmp(location, "lmdb:", 5) == 0)
		return location + 5;
	return location;
}

/* ------------------------------------------------------ environments */

static void
lenv_free(struct lenv *le)
{
	if (le->env != NULL)
		mdb_env_close(le->env);
	pthread_rwlock_destroy(&le->resize);
	pthread_mutex_destroy(&le->tlock);
	free(le);
}

/*
 * A new environment handle for le, opened on path with flags: 0, or the
 * LMDB error (reported in err; le->env is then NULL: LMDB allows nothing
 * but closing a handle whose open failed).
 */
static int
lenv_env_open(struct lenv *le, const char *path, size_t init, unsigned flags,
    char *err, size_t errlen)
{
	int rc;

	if ((rc = mdb_env_create(&le->env)) != 0) {
		le->env = NULL;
		seterr(err, errlen, "mdb_env_create", rc);
		return rc;
	}
	if ((rc = mdb_env_set_maxdbs(le->env, STORE_TABLES_MAX)) != 0 ||
	    (rc = mdb_env_set_maxreaders(le->env, MAX_READERS)) != 0 ||
	    (rc = mdb_env_set_mapsize(le->env, init)) != 0)
		seterr(err, errlen, "lmdb set-up", rc);
	else if ((rc = mdb_env_open(le->env, path, flags, 0640)) != 0)
		seterr(err, errlen, path, rc);
	if (rc != 0) {
		mdb_env_close(le->env);
		le->env = NULL;
	}
	return rc;
}

static struct lenv *
lenv_open(
    const char *path, const struct store_opts *o, char *err, size_t errlen)
{
	pthread_rwlockattr_t ra;
	struct lenv	    *le;
	struct stat	     st;
	size_t		     init, max;
	int		     rc, fd, dead;

	/* The file must exist to be identified; create it empty if not. */
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640)) == -1) {
		int why = errno; /* not made: say why, not that it is absent */

		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
			strfmt(err, errlen, "%s: %s", path,
			    strerror(errno == ENOENT ? why : errno));
			return NULL;
		}
	}
	if (fstat(fd, &st) == -1) {
		strfmt(err, errlen, "%s: %s", path, strerror(errno));
		close(fd);
		return NULL;
	}
	close(fd);
	for (le = registry; le != NULL; le = le->next)
		if (le->dev == st.st_dev && le->ino == st.st_ino &&
		    le->pid == getpid()) {
			le->refs++;
			return le;
		}

	init = o != NULL && o->map_init > 0 ? o->map_init : MAP_INIT_DEFAULT;
	max = o != NULL && o->map_max > 0 ? o->map_max : MAP_MAX_DEFAULT;
	if (init > max)
		init = max;
	le = xcalloc(1, sizeof(*le));
	le->dev = st.st_dev;
	le->ino = st.st_ino;
	le->pid = getpid();
	le->refs = 1;
	le->map_max = max;
	pthread_rwlockattr_init(&ra);
	/* A waiting resize must not starve behind a stream of readers. */
	pthread_rwlockattr_setkind_np(
	    &ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&le->resize, &ra);
	pthread_rwlockattr_destroy(&ra);
	pthread_mutex_init(&le->tlock, NULL);
	rc = lenv_env_open(le, path, init,
	    MDB_NOSUBDIR | MDB_NOTLS |
		(o != NULL && o->nosync ? MDB_NOSYNC : 0),
	    err, errlen);
	if (rc == EACCES) /* a fresh handle: a failed one is only closed */
		rc = lenv_env_open(le, path, init,
		    MDB_NOSUBDIR | MDB_NOTLS | MDB_RDONLY, err, errlen);
	if (rc != 0)
		goto fail;
	/* A bigger map made by another process wins. */
	mdb_env_set_mapsize(le->env, 0);
	mdb_reader_check(le->env, &dead);
	le->next = registry;
	registry = le;
	return le;
fail:
	lenv_free(le);
	return NULL;
}

static void
lenv_release(struct lenv *le)
{
	struct lenv **pp;

	if (--le->refs > 0)
		return;
	for (pp = &registry; *pp != NULL; pp = &(*pp)->next)
		if (*pp == le) {
			*pp = le->next;
			break;
		}
	lenv_free(le);
}

/*
 * Begin a transaction holding `resize` shared (release with txn_end()).
 * Absorbs MDB_MAP_RESIZED (another process grew the map) and a reader
 * table full of dead processes' slots.
 */
static int
txn_begin(struct lenv *le, unsigned flags, MDB_txn **txn)
{
	int rc, dead, i;

	for (i = 0; i < RETRIES; i++) {
		pthread_rwlock_rdlock(&le->resize);
		rc = mdb_txn_begin(le->env, NULL, flags, txn);
		if (rc == 0)
			return 0;
		pthread_rwlock_unlock(&le->resize);
		if (rc == MDB_MAP_RESIZED) {
			pthread_rwlock_wrlock(&le->resize);
			rc = mdb_env_set_mapsize(le->env, 0);
			pthread_rwlock_unlock(&le->resize);
			if (rc != 0)
				return rc;
			continue;
		}
		if (rc == MDB_READERS_FULL &&
		    mdb_reader_check(le->env, &dead) == 0 && dead > 0)
			continue;
		return rc;
	}
	return MDB_MAP_RESIZED;
}

static void
txn_end(struct lenv *le, MDB_txn *txn)
{
	if (txn != NULL)
		mdb_txn_abort(txn);
	pthread_rwlock_unlock(&le->resize);
}

/*
 * The map was full at size `seen`: double it, up to map_max, unless a
 * concurrent thread already did. 0, or MDB_MAP_FULL at the ceiling.
 */
static int
grow(struct lenv *le, size_t seen)
{
	MDB_envinfo info;
	size_t	    want;
	int	    rc = 0;

	pthread_rwlock_wrlock(&le->resize);
	mdb_env_info(le->env, &info);
	if (info.me_mapsize <= seen) {
		if (seen >= le->map_max)
			rc = MDB_MAP_FULL;
		else {
			want = seen > le->map_max / 2 ? le->map_max : seen * 2;
			rc = mdb_env_set_mapsize(le->env, want);
		}
	}
	pthread_rwlock_unlock(&le->resize);
	return rc;
}

/* ------------------------------------------------------ public API */

struct store *
store_open(
    const char *location, const struct store_opts *o, char *err, size_t errlen)
{
	struct store *st;
	struct lenv  *le;
	const char   *path;

	if (strncmp(location, "redis:", 6) == 0) {
		strfmt(err, errlen, "%s: the redis backend is not implemented",
		    location);
		return NULL;
	}
	path = lmdb_path(location);
	if (*path == '\0') {
		strfmt(err, errlen, "%s: no path", location);
		return NULL;
	}
	pthread_mutex_lock(&registry_lock);
	le = lenv_open(path, o, err, errlen);
	pthread_mutex_unlock(&registry_lock);
	if (le == NULL)
		return NULL;
	st = xcalloc(1, sizeof(*st));
	st->le = le;
	st->location = xstrdup(location);
	return st;
}

struct store *
store_close(struct store *st)
{
	if (st == NULL)
		return NULL;
	pthread_mutex_lock(&registry_lock);
	lenv_release(st->le);
	pthread_mutex_unlock(&registry_lock);
	free(st->location);
	free(st);
	return NULL;
}

const char *
store_location(const struct store *st)
{
	return st->location;
}

struct store_table *
store_table(struct store *st, const char *name, char *err, size_t errlen)
{
	struct lenv	   *le = st->le;
	struct store_table *t = NULL;
	MDB_txn		   *txn;
	MDB_dbi		    dbi;
	size_t		    i;
	int		    rc, ro;

	if (*name == '\0' || strlen(name) > STORE_NAME_MAX) {
		strfmt(err, errlen, "bad table name");
		return NULL;
	}
	pthread_mutex_lock(&le->tlock);
	for (i = 0; i < le->ntables; i++)
		if (strcmp(le->tables[i].name, name) == 0) {
			t = &le->tables[i];
			goto out;
		}
	if (le->ntables == STORE_TABLES_MAX) {
		strfmt(err, errlen, "%s: too many tables", name);
		goto out;
	}
	/* Create it if we may write, else only find it. */
	ro = 0;
	if ((rc = txn_begin(le, 0, &txn)) == EACCES) {
		ro = 1;
		rc = txn_begin(le, MDB_RDONLY, &txn);
	}
	if (rc != 0) {
		seterr(err, errlen, name, rc);
		goto out;
	}
	if ((rc = mdb_dbi_open(txn, name, ro ? 0 : MDB_CREATE, &dbi)) == 0)
		rc = mdb_txn_commit(txn);
	else
		mdb_txn_abort(txn);
	txn_end(le, NULL);
	if (rc != 0) {
		seterr(err, errlen, name, rc);
		goto out;
	}
	t = &le->tables[le->ntables++];
	t->le = le;
	t->dbi = dbi;
	memcpy(t->name, name, strlen(name) + 1);
out:
	pthread_mutex_unlock(&le->tlock);
	return t;
}

static void
decode(const MDB_val *d, int64_t v[STORE_NVAL])
{
	size_t n = d->mv_size / sizeof(int64_t);

	memset(v, 0, STORE_NVAL * sizeof(int64_t));
	if (n > STORE_NVAL)
		n = STORE_NVAL;
	memcpy(v, d->mv_data, n * sizeof(int64_t));
}

int
store_get(struct store_table *t, const void *const *keys, const size_t *keylens,
    size_t n, struct store_rec *out, char *err, size_t errlen)
{
	MDB_txn *txn;
	MDB_val	 k, d;
	size_t	 i;
	int	 rc;

	if ((rc = txn_begin(t->le, MDB_RDONLY, &txn)) != 0) {
		seterr(err, errlen, "store read", rc);
		return -1;
	}
	for (i = 0; i < n; i++) {
		out[i].found = 0;
		memset(out[i].v, 0, sizeof(out[i].v));
		if (keylens[i] == 0 || keylens[i] > STORE_KEY_MAX)
			continue;
		k.mv_data = (void *)keys[i];
		k.mv_size = keylens[i];
		rc = mdb_get(txn, t->dbi, &k, &d);
		if (rc == MDB_NOTFOUND)
			continue;
		if (rc != 0) {
			txn_end(t->le, txn);
			seterr(err, errlen, "store read", rc);
			return -1;
		}
		decode(&d, out[i].v);
		out[i].found = 1;
	}
	txn_end(t->le, txn);
	return 0;
}

static int64_t
sat_add(int64_t a, int64_t b)
{
	int64_t r;

	if (__builtin_add_overflow(a, b, &r))
		return b > 0 ? INT64_MAX : INT64_MIN;
	return r;
}

/* One operation inside the write transaction; MDB_* or 0 (conflict: 1). */
static int
apply_one(MDB_txn *txn, const struct store_op *op)
{
	int64_t v[STORE_NVAL];
	MDB_val k, d;
	size_t	i, len;
	int	rc, found, live;

	if (op->keylen == 0 || op->keylen > STORE_KEY_MAX)
		return MDB_BAD_VALSIZE;
	k.mv_data = (void *)op->key;
	k.mv_size = op->keylen;
	if (op->kind == STORE_DEL) {
		rc = mdb_del(txn, op->table->dbi, &k, NULL);
		return rc == MDB_NOTFOUND ? 0 : rc;
	}
	memset(v, 0, sizeof(v));
	found = 0;
	if (op->kind != STORE_SET) {
		rc = mdb_get(txn, op->table->dbi, &k, &d);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return rc;
		if ((found = rc == 0))
			decode(&d, v);
	}
	if (op->kind == STORE_CHECK) {
		if (op->flags & STORE_F_ABSENT)
			return found ? STORE_CONFLICT : 0;
		return memcmp(v, op->v, sizeof(v)) == 0 ? 0 : STORE_CONFLICT;
	}
	if (op->kind == STORE_SET)
		memcpy(v, op->v, sizeof(v));
	else {
		live = 0;
		for (i = 0; i < STORE_NVAL; i++) {
			if (op->maxmask & (1u << i)) {
				if (op->v[i] > v[i])
					v[i] = op->v[i];
				continue;
			}
			v[i] = sat_add(v[i], op->v[i]);
			if ((op->flags & STORE_F_CLAMP) && v[i] < 0)
				v[i] = 0;
			live |= v[i] != 0;
		}
		if ((op->flags & STORE_F_DROP_ZERO) && !live) {
			if (!found)
				return 0;
			return mdb_del(txn, op->table->dbi, &k, NULL);
		}
	}
	for (len = STORE_NVAL; len > 1 && v[len - 1] == 0; len--)
		;
	d.mv_data = v;
	d.mv_size = len * sizeof(int64_t);
	return mdb_put(txn, op->table->dbi, &k, &d, 0);
}

int
store_apply(struct store *st, const struct store_op *ops, size_t n, char *err,
    size_t errlen)
{
	struct lenv *le = st->le;
	MDB_envinfo  info;
	MDB_txn	    *txn;
	size_t	     i;
	int	     rc, attempt;

	for (i = 0; i < n; i++)
		if (ops[i].table == NULL || ops[i].table->le != le) {
			strfmt(err, errlen, "operation on a foreign table");
			return -1;
		}
	for (attempt = 0; attempt < RETRIES; attempt++) {
		if ((rc = txn_begin(le, 0, &txn)) != 0)
			break;
		for (i = 0, rc = 0; i < n && rc == 0; i++)
			rc = apply_one(txn, &ops[i]);
		if (rc == 0) {
			rc = mdb_txn_commit(txn);
			txn = NULL;
		}
		if (rc == MDB_MAP_FULL) {
			mdb_env_info(le->env, &info);
			txn_end(le, txn);
			if ((rc = grow(le, info.me_mapsize)) != 0)
				break;
			continue;
		}
		txn_end(le, txn);
		if (rc == STORE_CONFLICT)
			return STORE_CONFLICT;
		break;
	}
	if (rc != 0) {
		seterr(err, errlen, "store write", rc);
		return -1;
	}
	return 0;
}

long long
store_count(struct store_table *t)
{
	MDB_txn *txn;
	MDB_stat ms;
	int	 rc;

	if (txn_begin(t->le, MDB_RDONLY, &txn) != 0)
		return -1;
	rc = mdb_stat(txn, t->dbi, &ms);
	txn_end(t->le, txn);
	return rc == 0 ? (long long)ms.ms_entries : -1;
}

int
store_sync(struct store *st, char *err, size_t errlen)
{
	int rc;

	pthread_rwlock_rdlock(&st->le->resize);
	rc = mdb_env_sync(st->le->env, 1);
	pthread_rwlock_unlock(&st->le->resize);
	if (rc != 0 && rc != EACCES && rc != EINVAL) {
		seterr(err, errlen, "store sync", rc);
		return -1;
	}
	return 0;
}
