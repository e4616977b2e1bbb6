/*
 * dnscache.c - the per-thread cache of decoded DNS answers; see
 * dnscache.h.
 *
 * A chained hash table over the questions and a doubly linked LRU list;
 * each entry is one allocation: the entry, the question, the records and
 * their wire and decoded bytes. The table never grows: its bucket count
 * is fixed from max_bytes at creation (chains stay short because the
 * entry count is bounded by the bytes).
 *
 * Threading: none; one thread owns a cache and the entries it hands out.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "dnscache.h"
#include "util.h"

#define NAME_MAX_LEN 256 /* a name the resolver accepts is shorter */

struct dnscache_entry {
	struct dnscache_entry *hnext;	 /* hash chain */
	TAILQ_ENTRY(dnscache_entry) lru; /* first: the newest */
	unsigned	   refs;	 /* the cache's own included */
	uint32_t	   hash;
	int		   type;
	uint64_t	   expires_ms;
	size_t		   size;
	enum dns_status	   status;
	int		   rcode, secure;
	size_t		   n;
	struct dns_record *rr;
	char		  *name;
};

struct dnscache {
	size_t			max_bytes;
	unsigned		min_ttl, max_ttl;
	struct dnscache_entry **table;
	size_t			nbuckets; /* a power of two */
	TAILQ_HEAD(dnscache_lru, dnscache_entry) lru;
	struct dnscache_stats st;
};

/* The key: case folded, without a final dot (but "." stays). */
static size_t
key_name(const char *name, char *out)
{
	size_t n = strnlen(name, NAME_MAX_LEN), i;

	if (n > 1 && name[n - 1] == '.')
		n--;
	for (i = 0; i < n; i++)
		out[i] = (char)ascii_lower((unsigned char)name[i]);
	out[n] = '\0';
	return n;
}

static uint32_t
key_hash(const char *key, size_t len, int type)
{
	uint16_t t = (uint16_t)type;

	return fnv1a(fnv1a(FNV1A_INIT, key, len), &t, sizeof(t));
}

struct dnscache *
dnscache_new(size_t max_bytes, unsigned min_ttl, unsigned max_ttl)
{
	struct dnscache *c = xcalloc(1, sizeof(*c));
	size_t		 want = max_bytes / 512; /* ~ entries, typical size */

	c->max_bytes = max_bytes;
	c->min_ttl = min_ttl;
	c->max_ttl = max_ttl < min_ttl ? min_ttl : max_ttl;
	if (want > DNSCACHE_MAX_ENTRIES)
		want = DNSCACHE_MAX_ENTRIES;
	c->nbuckets = 64;
	while (c->nbuckets < want)
		c->nbuckets <<= 1;
	c->table = xcalloc(c->nbuckets, sizeof(*c->table));
	TAILQ_INIT(&c->lru);
	return c;
}

static void
entry_unlink(struct dnscache *c, struct dnscache_entry *e)
{
	struct dnscache_entry **pp = &c->table[e->hash & (c->nbuckets - 1)];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	TAILQ_REMOVE(&c->lru, e, lru);
	c->st.entries--;
	c->st.bytes -= e->size;
	dnscache_unref(e); /* the cache's reference */
}

void
dnscache_unref(struct dnscache_entry *e)
{
	if (e != NULL && --e->refs == 0)
		free(e);
}

void
dnscache_free(struct dnscache *c)
{
	if (c == NULL)
		return;
	while (!TAILQ_EMPTY(&c->lru))
		entry_unlink(c, TAILQ_FIRST(&c->lru));
	free(c->table);
	free(c);
}

static struct dnscache_entry *
find(struct dnscache *c, const char *key, uint32_t h, int type)
{
	struct dnscache_entry *e;

	for (e = c->table[h & (c->nbuckets - 1)]; e != NULL; e = e->hnext)
		if (e->hash == h && e->type == type &&
		    strcmp(e->name, key) == 0)
			return e;
	return NULL;
}

struct dnscache_entry *
dnscache_get(struct dnscache *c, const char *name, int type, uint64_t now_ms)
{
	struct dnscache_entry *e;
	char		       key[NAME_MAX_LEN + 1];
	size_t		       len = key_name(name, key);
	uint32_t	       h = key_hash(key, len, type);

	if ((e = find(c, key, h, type)) != NULL && now_ms >= e->expires_ms) {
		entry_unlink(c, e);
		c->st.expired++;
		e = NULL;
	}
	if (e == NULL) {
		c->st.misses++;
		return NULL;
	}
	c->st.hits++;
	if (e != TAILQ_FIRST(&c->lru)) { /* most recently used */
		TAILQ_REMOVE(&c->lru, e, lru);
		TAILQ_INSERT_HEAD(&c->lru, e, lru);
	}
	e->refs++;
	return e;
}

void
dnscache_answer(
    const struct dnscache_entry *e, uint64_t now_ms, struct dns_answer *a)
{
	memset(a, 0, sizeof(*a));
	a->status = e->status;
	a->rcode = e->rcode;
	a->secure = e->secure;
	a->ttl = now_ms < e->expires_ms
	    ? (unsigned)((e->expires_ms - now_ms + 999) / 1000)
	    : 0;
	a->n = e->n;
	a->rr = e->n > 0 ? e->rr : NULL;
}

/*
 * Keep a copy of a (checked, clamped) for key/type until expires_ms;
 * the new entry, which only the cache references, or NULL if too big.
 */
static struct dnscache_entry *
store(struct dnscache *c, const char *key, size_t len, uint32_t h, int type,
    const struct dns_answer *a, uint64_t expires_ms)
{
	struct dnscache_entry *e, *old;
	char		      *p;
	size_t		       size, i;

	size = sizeof(*e) + len + 1 + a->n * sizeof(struct dns_record);
	for (i = 0; i < a->n; i++)
		size += a->rr[i].rdlen +
		    (a->rr[i].text != NULL ? a->rr[i].textlen + 1 : 0);
	if (size > c->max_bytes / 8)
		return NULL;
	if ((old = find(c, key, h, type)) != NULL)
		entry_unlink(c, old);
	while (!TAILQ_EMPTY(&c->lru) &&
	    (c->st.bytes + size > c->max_bytes ||
		c->st.entries >= DNSCACHE_MAX_ENTRIES)) {
		entry_unlink(c, TAILQ_LAST(&c->lru, dnscache_lru));
		c->st.evicted++;
	}

	e = xmalloc(size);
	memset(e, 0, sizeof(*e));
	e->refs = 1;
	e->hash = h;
	e->type = type;
	e->expires_ms = expires_ms;
	e->size = size;
	e->status = a->status;
	e->rcode = a->rcode;
	e->secure = a->secure;
	e->n = a->n;
	e->rr = (struct dns_record *)(e + 1);
	p = (char *)(e->rr + a->n);
	for (i = 0; i < a->n; i++) {
		struct dns_record *r = &e->rr[i];

		r->pref = a->rr[i].pref;
		r->rdlen = a->rr[i].rdlen;
		memcpy(p, a->rr[i].rdata, r->rdlen);
		r->rdata = (const unsigned char *)p;
		p += r->rdlen;
		if (a->rr[i].text != NULL) {
			memcpy(p, a->rr[i].text, a->rr[i].textlen);
			p[a->rr[i].textlen] = '\0';
			r->text = p;
			r->textlen = a->rr[i].textlen;
			p += r->textlen + 1;
		} else {
			r->text = NULL;
			r->textlen = 0;
		}
	}
	memcpy(p, key, len + 1);
	e->name = p;

	e->hnext = c->table[h & (c->nbuckets - 1)];
	c->table[h & (c->nbuckets - 1)] = e;
	TAILQ_INSERT_HEAD(&c->lru, e, lru);
	c->st.entries++;
	c->st.bytes += size;
	c->st.stored++;
	return e;
}

int
dnscache_put(struct dnscache *c, const char *name, int type,
    const struct dns_answer *a, unsigned ttl, uint64_t now_ms)
{
	char   key[NAME_MAX_LEN + 1];
	size_t len;

	if (c->max_bytes == 0 || ttl == 0 ||
	    (a->status != DNS_OK && a->status != DNS_NXDOMAIN &&
		a->status != DNS_NODATA) ||
	    (a->status == DNS_OK && a->n == 0) ||
	    (a->status != DNS_OK && a->n != 0) || a->n > DNS_MAX_RECORDS)
		return -1;
	if (ttl < c->min_ttl)
		ttl = c->min_ttl;
	if (ttl > c->max_ttl)
		ttl = c->max_ttl;
	len = key_name(name, key);
	return store(c, key, len, key_hash(key, len, type), type, a,
		   now_ms + (uint64_t)ttl * 1000) != NULL
	    ? 0
	    : -1;
}

struct dnscache_entry *
dnscache_copy(
    struct dnscache *dst, const struct dnscache_entry *src, uint64_t now_ms)
{
	struct dnscache_entry *e;
	struct dns_answer      a;

	if (dst->max_bytes == 0 || now_ms >= src->expires_ms)
		return NULL;
	dnscache_answer(src, now_ms, &a);
	e = store(dst, src->name, strlen(src->name), src->hash, src->type, &a,
	    src->expires_ms);
	if (e != NULL)
		e->refs++;
	return e;
}

void
dnscache_stats(const struct dnscache *c, struct dnscache_stats *st)
{
	*st = c->st;
}
