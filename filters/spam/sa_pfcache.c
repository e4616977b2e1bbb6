/*
 * sa_pfcache.c - the on-disk cache of the rule engine's compiled
 * Hyperscan databases (sa_prefilter.c): compiling Debian's ruleset takes
 * about 2 s, at every start and every reload; with the cache a start or
 * reload with unchanged rules deserialises them instead.
 *
 * One file per set of patterns, "sa-prefilter-<key>.hsdb" in the cache
 * directory. The key is a 128-bit SipHash (two fixed keys) of everything
 * the compiled result depends on: this format's version, Hyperscan's
 * version and the CPU features it compiles for, the chunk size, and per
 * rule type every pattern with its flags, in order. Any change of rules
 * is a new key, hence a new file; files unused for PFC_MAX_AGE are
 * removed when a new one is written. The file:
 *
 *   "MOATPF01" key[16] u64 payload_len
 *   payload: per rule type: u32 ndbs, per database: u32 n, u32 pos[n]
 *            (the patterns' positions in the type's pattern list,
 *            increasing), u64 size, the serialised database
 *   check[16]: the same SipHash of all the bytes before it
 *
 * A serialised Hyperscan database is code for Hyperscan's interpreter and
 * it does not defend against a crafted one, so a file is read only when
 * it is a regular file owned by this user or root and writable by nobody
 * else, in a directory writable by nobody else; then the check, the
 * bounds of every count and position, and Hyperscan's own checks
 * (version, platform) must all pass. Anything else is a miss: the rules
 * are compiled as without a cache. Writing is best effort (a temporary
 * file renamed into place, so a reader never sees half a file) and never
 * fails the load.
 *
 * Configuration time only, one thread (the loader's). Several processes
 * may share a directory: they write whole files under one name.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sa_int.h"
#include "siphash.h"
#include "util.h"

#ifdef HAVE_HYPERSCAN
#include "sa_prefilter.h"

#define PFC_MAGIC	"MOATPF01"
#define PFC_PREFIX	"sa-prefilter-"
#define PFC_SUFFIX	".hsdb"
#define PFC_MAX_BYTES	(512u * 1024 * 1024)
#define PFC_MAX_AGE	(30 * 24 * 3600) /* unused files go */
#define PFC_TMP_MAX_AGE 3600		 /* a writer that died */

static const struct sipkey pfc_k0 = { 0x6d6f61742d706663ull,
	0x3a6b65792d6f6e65ull };
static const struct sipkey pfc_k1 = { 0x6d6f61742d706663ull,
	0x3a6b65792d74776full };

struct buf {
	unsigned char *p;
	size_t	       len, cap;
};

static void
put(struct buf *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 4096;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void
put32(struct buf *b, uint32_t v)
{
	put(b, &v, sizeof(v));
}

static void
put64(struct buf *b, uint64_t v)
{
	put(b, &v, sizeof(v));
}

static void
hash128(const void *p, size_t n, unsigned char out[16])
{
	uint64_t a = siphash24(&pfc_k0, p, n), c = siphash24(&pfc_k1, p, n);

	memcpy(out, &a, 8);
	memcpy(out + 8, &c, 8);
}

/* The key of these pattern lists with this Hyperscan on this CPU. */
static int
cache_key(const struct pf_coll *coll, unsigned char key[16])
{
	hs_platform_info_t plat;
	struct buf	   b = { 0 };
	const char	  *v = hs_version();
	unsigned	   i;
	int		   t;

	memset(&plat, 0, sizeof(plat));
	if (hs_populate_platform(&plat) != HS_SUCCESS)
		return -1;
	put(&b, PFC_MAGIC, 8);
	put(&b, v, strlen(v) + 1);
	put64(&b, plat.tune);
	put64(&b, plat.cpu_features);
	put32(&b, PF_CHUNK);
	for (t = 0; t < SA_NTYPES; t++) {
		put32(&b, (uint32_t)t);
		put32(&b, coll[t].n);
		for (i = 0; i < coll[t].n; i++) {
			size_t n = strlen(coll[t].pats[i]);

			put32(&b, coll[t].flags[i]);
			put32(&b, (uint32_t)n);
			put(&b, coll[t].pats[i], n);
		}
	}
	hash128(b.p, b.len, key);
	free(b.p);
	return 0;
}

static void
file_name(const char *dir, const unsigned char key[16], char *out, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	char		  k[33];
	unsigned	  i;

	for (i = 0; i < 16; i++) {
		k[2 * i] = hex[key[i] >> 4];
		k[2 * i + 1] = hex[key[i] & 15];
	}
	k[32] = '\0';
	snprintf(out, n, "%s/" PFC_PREFIX "%s" PFC_SUFFIX, dir, k);
}

/* Owned by us or root, writable by nobody else. */
static int
trusted(const struct stat *st)
{
	return (st->st_uid == geteuid() || st->st_uid == 0) &&
	    (st->st_mode & (S_IWGRP | S_IWOTH)) == 0;
}

/* ------------------------------------------------------------- load */

struct rd {
	const unsigned char *p;
	size_t		     len, off;
};

static int
get(struct rd *r, void *out, size_t n)
{
	if (n > r->len - r->off)
		return -1;
	memcpy(out, r->p + r->off, n);
	r->off += n;
	return 0;
}

static int
parse(struct rd *r, const struct pf_coll *coll, struct sa_pf *pf)
{
	uint32_t ndbs, n, i, *pos;
	uint64_t size;
	int	 t;

	for (t = 0; t < SA_NTYPES; t++) {
		if (get(r, &ndbs, 4) < 0 || ndbs > coll[t].n)
			return -1;
		while (ndbs-- > 0) {
			hs_database_t *db = NULL;

			if (get(r, &n, 4) < 0 || n == 0 || n > coll[t].n ||
			    (size_t)n * 4 > r->len - r->off)
				return -1;
			pos = xcalloc(n, sizeof(*pos));
			if (get(r, pos, (size_t)n * 4) < 0)
				goto bad;
			for (i = 0; i < n; i++)
				if (pos[i] >= coll[t].n ||
				    (i > 0 && pos[i] <= pos[i - 1]))
					goto bad;
			if (get(r, &size, 8) < 0 || size == 0 ||
			    size > r->len - r->off)
				goto bad;
			if (hs_deserialize_database((const char *)r->p + r->off,
				(size_t)size, &db) != HS_SUCCESS)
				goto bad;
			r->off += (size_t)size;
			sa_pf_add_db(pf, t, &coll[t], db, pos, n);
			continue;
bad:
			free(pos);
			return -1;
		}
	}
	return r->off == r->len ? 0 : -1;
}

int
sa_pfcache_load(const char *dir, const struct pf_coll *coll, struct sa_pf *pf)
{
	unsigned char  key[16], fkey[16], check[16];
	char	       path[4096];
	struct stat    st;
	unsigned char *data = NULL;
	struct rd      r;
	uint64_t       plen;
	ssize_t	       got;
	size_t	       have = 0;
	int	       fd, rc = -1;

	if (cache_key(coll, key) < 0 || stat(dir, &st) == -1 ||
	    !S_ISDIR(st.st_mode) || !trusted(&st))
		return -1;
	file_name(dir, key, path, sizeof(path));
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1)
		return -1;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) || !trusted(&st) ||
	    st.st_size < 8 + 16 + 8 + 16 || st.st_size > PFC_MAX_BYTES)
		goto out;
	data = xmalloc((size_t)st.st_size);
	while (have < (size_t)st.st_size) {
		got = read(fd, data + have, (size_t)st.st_size - have);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			goto out;
		have += (size_t)got;
	}
	hash128(data, have - 16, check);
	memcpy(&plen, data + 8 + 16, 8);
	if (memcmp(data, PFC_MAGIC, 8) != 0 ||
	    memcmp(data + have - 16, check, 16) != 0 ||
	    plen != have - (8 + 16 + 8 + 16))
		goto out;
	memcpy(fkey, data + 8, 16);
	if (memcmp(fkey, key, 16) != 0)
		goto out;
	r.p = data + 8 + 16 + 8;
	r.len = (size_t)plen;
	r.off = 0;
	if (parse(&r, coll, pf) < 0) {
		sa_pf_clear(pf);
		goto out;
	}
	/* Recently used: kept by the clean-up of old files. */
	(void)futimens(fd, NULL);
	rc = 0;
out:
	free(data);
	close(fd);
	return rc;
}

/* ------------------------------------------------------------- save */

/* Remove cache files unused for long and temporary files of writers
   that died; `keep` is the file just written. */
static void
clean_dir(const char *dir, const char *keep)
{
	struct dirent *de;
	struct stat    st;
	char	       path[4096];
	time_t	       now = time(NULL);
	DIR	      *d;

	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		const char *nm = de->d_name;
		size_t	    l = strlen(nm), sl = strlen(PFC_SUFFIX);
		int	    tmp = nm[0] == '.';
		long	    age;

		if (strncmp(nm + tmp, PFC_PREFIX, strlen(PFC_PREFIX)) != 0)
			continue;
		if (!tmp && (l < sl || strcmp(nm + l - sl, PFC_SUFFIX) != 0))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, nm);
		if (strcmp(path, keep) == 0 || lstat(path, &st) == -1 ||
		    !S_ISREG(st.st_mode))
			continue;
		age = (long)(now - st.st_mtime);
		if (age > (tmp ? PFC_TMP_MAX_AGE : PFC_MAX_AGE))
			(void)unlink(path);
	}
	closedir(d);
}

void
sa_pfcache_save(
    const char *dir, const struct pf_coll *coll, const struct sa_pf *pf)
{
	unsigned char key[16], check[16];
	char	      path[4096], tmp[4096];
	struct buf    b = { 0 };
	struct stat   st;
	size_t	      i, off;
	uint64_t      plen;
	int	      t, fd;

	if (cache_key(coll, key) < 0)
		return;
	if (mkdir(dir, 0755) == -1 && errno != EEXIST)
		return;
	if (stat(dir, &st) == -1 || !S_ISDIR(st.st_mode) || !trusted(&st))
		return;
	put(&b, PFC_MAGIC, 8);
	put(&b, key, 16);
	put64(&b, 0); /* payload length, filled in below */
	for (t = 0; t < SA_NTYPES; t++) {
		put32(&b, (uint32_t)pf->ndbs[t]);
		for (i = 0; i < pf->ndbs[t]; i++) {
			const struct pf_db *d = &pf->dbs[t][i];
			char		   *ser = NULL;
			size_t		    len = 0;

			if (hs_serialize_database(d->db, &ser, &len) !=
			    HS_SUCCESS) {
				free(b.p);
				return;
			}
			put32(&b, d->n);
			put(&b, d->pos, (size_t)d->n * 4);
			put64(&b, len);
			put(&b, ser, len);
			free(ser);
		}
	}
	plen = b.len - (8 + 16 + 8);
	memcpy(b.p + 8 + 16, &plen, 8);
	hash128(b.p, b.len, check);
	put(&b, check, 16);

	file_name(dir, key, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s/." PFC_PREFIX "XXXXXX", dir);
	if ((fd = mkstemp(tmp)) == -1) {
		free(b.p);
		return;
	}
	(void)fchmod(fd, 0644);
	for (off = 0; off < b.len;) {
		ssize_t w = write(fd, b.p + off, b.len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	if (close(fd) == 0 && off == b.len && rename(tmp, path) == 0)
		clean_dir(dir, path);
	else
		(void)unlink(tmp);
	free(b.p);
}

#endif /* HAVE_HYPERSCAN */
