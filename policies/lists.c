/*
 * lists.c - allow/deny lists: client networks, HELO names, sender and
 * recipient addresses (see lists.h for the entry forms).
 *
 * Names live in one open-addressing hash set per list (linear probing,
 * load factor at most 1/2). A key is a tag byte saying what the entry is
 * (exact name or address, domain, subdomain suffix, local part) followed
 * by the lowercased text, kept in one growing arena. Keys are hashed with
 * SipHash-2-4 under a random per-list key: lookups hash strings chosen by
 * the client, and a fixed hash would let a client aim every lookup at one
 * probe chain. Lookups lowercase while hashing and comparing, so they need
 * no copy and no length limit; a candidate longer than the longest stored
 * key of its kind is skipped without hashing it.
 *
 * Addresses are kept as (network, prefix length) pairs while the list is
 * built. list_finish() sorts them, drops duplicates (list_explain searches
 * that array) and merges them into disjoint, non-adjacent [lo, hi] ranges
 * for a binary search: one array for IPv4, one for IPv6 (as two 64-bit
 * halves). IPv4-mapped IPv6 addresses, on either side, are IPv4.
 *
 * Threading: built on one thread; read-only after list_finish(), so any
 * number of threads may match concurrently without locks.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "lists.h"
#include "siphash.h"
#include "util.h"

/* A domain has at most 127 labels (RFC 1035 2.3.4: 255 octets). */
#define SUFFIX_LABELS_MAX 127
/* Bytes of an entry quoted in an error message. */
#define QUOTE_MAX 64

enum key_tag {
	TAG_EXACT = 0, /* HELO name or literal; whole mail address */
	TAG_DOMAIN,    /* mail domain, exactly */
	TAG_SUFFIX,    /* ".example.com", stored without the dot */
	TAG_LOCAL,     /* "user@", stored without the @ */
	TAG_COUNT      /* must stay last */
};

struct slot {
	uint64_t h;
	size_t	 off; /* in the arena: tag byte, then the lowercased key */
	uint32_t len; /* bytes at off, tag included; 0 = free slot */
};

struct u128 {
	uint64_t hi, lo;
};

struct net4 {
	uint32_t net;
	int	 plen;
};

struct net6 {
	struct u128 net;
	int	    plen;
};

struct range4 {
	uint32_t lo, hi;
};

struct range6 {
	struct u128 lo, hi;
};

struct list {
	enum list_kind kind;
	int	       finished;
	uint64_t       k0, k1; /* SipHash key */

	/* Names. */
	struct slot *tab;
	size_t	     cap, nkeys; /* cap is 0 or a power of two */
	char	    *arena;
	size_t	     alen, acap;
	size_t	     maxlen[TAG_COUNT]; /* longest key of each tag */
	int	     has_null;		/* "<>" */

	/* Addresses: entries, then (after list_finish) merged ranges. */
	struct net4   *n4;
	size_t	       nn4, cap4;
	struct net6   *n6;
	size_t	       nn6, cap6;
	struct range4 *r4;
	size_t	       nr4;
	struct range6 *r6;
	size_t	       nr6;
	uint64_t       plens4;	  /* bit p: some entry is a /p */
	uint64_t       plens6[3]; /* same for 0..128 */
};

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/*
 * The entry in double quotes, safe to log: at most QUOTE_MAX bytes, '"',
 * '\\', controls and 8-bit bytes as \xHH, "..." when cut.
 */
static const char *
quote(const char *e, size_t len, char *out, size_t outsz)
{
	static const char hex[] = "0123456789abcdef";
	size_t		  i, o = 0;
	unsigned char	  c;

	out[o++] = '"';
	for (i = 0; i < len && i < QUOTE_MAX && o + 5 < outsz; i++) {
		c = (unsigned char)e[i];
		if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		} else
			out[o++] = (char)c;
	}
	out[o++] = '"';
	out[o] = '\0';
	if (i < len && o + 4 <= outsz)
		memcpy(out + o, "...", 4);
	return out;
}

#define QUOTE_BUF (QUOTE_MAX * 4 + 8)

/* ---------------------------------------------------------------- hash */

/*
 * SipHash-2-4 of the message tag || lowercase(p[0..len)): entries are
 * short, so the message is built on the stack (on the heap past that).
 */
static uint64_t
key_hash(const struct list *l, int tag, const char *p, size_t len)
{
	struct sipkey k = { l->k0, l->k1 };
	unsigned char stackbuf[512], *m = stackbuf;
	uint64_t      h;
	size_t	      i;

	if (len + 1 > sizeof(stackbuf))
		m = xmalloc(len + 1);
	m[0] = (unsigned char)tag;
	for (i = 0; i < len; i++)
		m[i + 1] = (unsigned char)ascii_lower((unsigned char)p[i]);
	h = siphash24(&k, m, len + 1);
	if (m != stackbuf)
		free(m);
	return h;
}

static uint64_t
mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/*
 * A fresh SipHash key. getrandom(2) blocks only until the kernel pool is
 * first initialised; if it is unavailable, clocks and the pid give a key
 * that is at least not known in advance.
 */
static void
random_key(struct list *l)
{
	unsigned char	k[16];
	struct timespec ts;
	size_t		got = 0;
	ssize_t		n;
	uint64_t	x;

	while (got < sizeof(k)) {
		n = getrandom(k + got, sizeof(k) - got, 0);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			break;
		}
		got += (size_t)n;
	}
	if (got == sizeof(k)) {
		memcpy(&l->k0, k, 8);
		memcpy(&l->k1, k + 8, 8);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	x = mix64((uint64_t)ts.tv_sec ^ ((uint64_t)ts.tv_nsec << 20));
	clock_gettime(CLOCK_MONOTONIC, &ts);
	x = mix64(x ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32));
	l->k0 = x;
	l->k1 = mix64(x ^ (uint64_t)(uintptr_t)l);
}

/* ------------------------------------------------------------ hash set */

static int
key_eq(const struct list *l, const struct slot *s, uint64_t h, int tag,
    const char *p, size_t len)
{
	const char *k;
	size_t	    i;

	if (s->h != h || s->len != len + 1)
		return 0;
	k = l->arena + s->off;
	if ((unsigned char)k[0] != tag)
		return 0;
	for (i = 0; i < len; i++)
		if (k[i + 1] != (char)ascii_lower((unsigned char)p[i]))
			return 0;
	return 1;
}

/* The slot holding tag+key (any case), or NULL. */
static const struct slot *
key_find(const struct list *l, int tag, const char *p, size_t len)
{
	const struct slot *s;
	uint64_t	   h;
	size_t		   i;

	if (l->nkeys == 0 || len == 0 || len > l->maxlen[tag])
		return NULL;
	h = key_hash(l, tag, p, len);
	for (i = h & (l->cap - 1);; i = (i + 1) & (l->cap - 1)) {
		s = &l->tab[i];
		if (s->len == 0)
			return NULL;
		if (key_eq(l, s, h, tag, p, len))
			return s;
	}
}

static void
tab_grow(struct list *l)
{
	struct slot *old = l->tab;
	size_t	     oldcap = l->cap, i, j;

	l->cap = oldcap ? oldcap * 2 : 64;
	l->tab = xcalloc(l->cap, sizeof(*l->tab));
	for (i = 0; i < oldcap; i++) {
		if (old[i].len == 0)
			continue;
		for (j = old[i].h & (l->cap - 1); l->tab[j].len != 0;
		     j = (j + 1) & (l->cap - 1))
			;
		l->tab[j] = old[i];
	}
	free(old);
}

/* Add tag+lowercase(key) unless it is already there. */
static void
key_insert(struct list *l, int tag, const char *p, size_t len)
{
	struct slot *s;
	uint64_t     h;
	size_t	     i, k;

	if ((l->nkeys + 1) * 2 > l->cap)
		tab_grow(l);
	h = key_hash(l, tag, p, len);
	for (i = h & (l->cap - 1);; i = (i + 1) & (l->cap - 1)) {
		s = &l->tab[i];
		if (s->len == 0)
			break;
		if (key_eq(l, s, h, tag, p, len))
			return;
	}
	if (l->alen + len + 1 > l->acap) {
		l->acap = l->acap ? l->acap * 2 : 4096;
		while (l->alen + len + 1 > l->acap)
			l->acap *= 2;
		l->arena = xrealloc(l->arena, l->acap);
	}
	s->h = h;
	s->off = l->alen;
	s->len = (uint32_t)(len + 1);
	l->arena[l->alen++] = (char)tag;
	for (k = 0; k < len; k++)
		l->arena[l->alen++] = (char)ascii_lower((unsigned char)p[k]);
	l->nkeys++;
	if (len > l->maxlen[tag])
		l->maxlen[tag] = len;
}

/* The entry a slot stands for, in its normalised written form. */
static void
slot_format(
    const struct list *l, const struct slot *s, char *buf, size_t buflen)
{
	const char *k = l->arena + s->off;
	int	    tag = (unsigned char)k[0];

	if (buf == NULL || buflen == 0)
		return;
	snprintf(buf, buflen, "%s%.*s%s", tag == TAG_SUFFIX ? "." : "",
	    (int)(s->len - 1), k + 1, tag == TAG_LOCAL ? "@" : "");
}

/* ------------------------------------------------------- name entries */

/*
 * A domain or HELO name: one trailing dot dropped (*lenp shortened), no
 * empty label, at most SUFFIX_LABELS_MAX labels (the subdomain walk stops
 * there, so it must find every subdomain entry). Mail domains also refuse
 * characters that have no place in a domain outside an address literal;
 * HELO names, which clients fill with anything (bare IPv6 addresses
 * too), only refuse quotes, brackets and angle brackets. A "[...]"
 * literal is taken as it is. Returns NULL or the reason.
 */
static const char *
check_domain(const char *d, size_t *lenp, int helo)
{
	const char *bad = helo ? "\"\\<>[]" : "\"\\<>@()[],;:";
	size_t	    len = *lenp, i, labels = 1;

	if (len > 0 && d[0] == '[') {
		if (len < 3 || d[len - 1] != ']')
			return "address literal without a closing ]";
		for (i = 1; i < len - 1; i++)
			if (strchr("[]\\\"", d[i]) != NULL)
				return "bad character in address literal";
		return NULL;
	}
	if (len > 0 && d[len - 1] == '.')
		len--;
	if (len == 0)
		return "empty domain";
	for (i = 0; i < len; i++) {
		if (strchr(bad, d[i]) != NULL)
			return "bad character in domain";
		if (d[i] != '.')
			continue;
		if (i == 0 || d[i - 1] == '.')
			return "empty label in domain";
		if (++labels > SUFFIX_LABELS_MAX)
			return "more than 127 labels";
	}
	if (d[len - 1] == '.')
		return "empty label in domain";
	*lenp = len;
	return NULL;
}

/* A local part: one whole quoted string, or plain characters. */
static const char *
check_local(const char *p, size_t len)
{
	size_t i;

	if (p[0] == '"') {
		for (i = 1; i < len; i++) {
			if (p[i] == '\\')
				i++;
			else if (p[i] == '"')
				break;
		}
		if (i != len - 1)
			return "a quoted local part must be quoted whole";
		return NULL;
	}
	for (i = 0; i < len; i++)
		if (strchr("\"\\<>@ ", p[i]) != NULL)
			return "bad character in local part";
	return NULL;
}

/*
 * The @ between local part and domain: the last one outside a quoted
 * string. If the quotes do not balance, the last @ of all (a lookup must
 * not lose the domain of "\"x@example.com"). *unbalanced says which.
 */
static const char *
find_at(const char *s, size_t len, int *unbalanced)
{
	const char *at = NULL, *last = NULL;
	size_t	    i;
	int	    inq = 0;

	for (i = 0; i < len; i++) {
		if (s[i] == '@')
			last = s + i;
		if (inq) {
			if (s[i] == '\\' && i + 1 < len) {
				i++;
				if (s[i] == '@')
					last = s + i;
			} else if (s[i] == '"')
				inq = 0;
		} else if (s[i] == '"')
			inq = 1;
		else if (s[i] == '@')
			at = s + i;
	}
	if (unbalanced != NULL)
		*unbalanced = inq;
	return inq ? last : at;
}

static int
add_helo(struct list *l, const char *e, size_t len, char *err, size_t errlen)
{
	char	    q[QUOTE_BUF];
	const char *why, *name = e;
	size_t	    n = len;
	int	    tag = TAG_EXACT;

	if (e[0] == '.' && len > 1 && e[1] != '[') {
		tag = TAG_SUFFIX;
		name++;
		n--;
	}
	if ((why = check_domain(name, &n, 1)) != NULL) {
		seterr(err, errlen, "%s: %s", quote(e, len, q, sizeof(q)), why);
		return -1;
	}
	key_insert(l, tag, name, n);
	return 0;
}

static int
add_mailbox(struct list *l, const char *e, size_t len, char *err, size_t errlen)
{
	char	    q[QUOTE_BUF];
	const char *at, *why, *dom;
	size_t	    llen, dlen;
	int	    unbalanced;

	if (len == 2 && e[0] == '<' && e[1] == '>') {
		l->has_null = 1;
		return 0;
	}
	quote(e, len, q, sizeof(q));
	if (e[0] == '<' && e[len - 1] == '>') {
		seterr(err, errlen, "%s: write the address without <>", q);
		return -1;
	}
	at = find_at(e, len, &unbalanced);
	if (unbalanced) {
		seterr(err, errlen, "%s: unterminated quoted string", q);
		return -1;
	}
	if (at == NULL) {
		dom = e;
		dlen = len;
		if (e[0] == '.') {
			dom++;
			dlen--;
		}
		if ((why = check_domain(dom, &dlen, 0)) != NULL) {
			seterr(err, errlen, "%s: %s", q, why);
			return -1;
		}
		key_insert(l, dom == e ? TAG_DOMAIN : TAG_SUFFIX, dom, dlen);
		return 0;
	}
	llen = (size_t)(at - e);
	dom = at + 1;
	dlen = len - llen - 1;
	if (llen == 0) {
		seterr(err, errlen,
		    "%s: write the domain without @ for a whole domain", q);
		return -1;
	}
	if ((why = check_local(e, llen)) != NULL) {
		seterr(err, errlen, "%s: %s", q, why);
		return -1;
	}
	if (dlen == 0) {
		key_insert(l, TAG_LOCAL, e, llen);
		return 0;
	}
	if ((why = check_domain(dom, &dlen, 0)) != NULL) {
		seterr(err, errlen, "%s: %s", q, why);
		return -1;
	}
	/* The key is the entry itself, less a trailing dot. */
	key_insert(l, TAG_EXACT, e, llen + 1 + dlen);
	return 0;
}

/* --------------------------------------------------- address entries */

static struct u128
u128_from(const unsigned char b[16])
{
	struct u128 v = { 0, 0 };
	int	    i;

	for (i = 0; i < 8; i++) {
		v.hi = (v.hi << 8) | b[i];
		v.lo = (v.lo << 8) | b[i + 8];
	}
	return v;
}

static void
u128_to(struct u128 v, unsigned char b[16])
{
	int i;

	for (i = 7; i >= 0; i--) {
		b[i] = (unsigned char)v.hi;
		b[i + 8] = (unsigned char)v.lo;
		v.hi >>= 8;
		v.lo >>= 8;
	}
}

static int
u128_cmp(struct u128 a, struct u128 b)
{
	if (a.hi != b.hi)
		return a.hi < b.hi ? -1 : 1;
	if (a.lo != b.lo)
		return a.lo < b.lo ? -1 : 1;
	return 0;
}

static uint32_t
mask4(int plen)
{
	return plen == 0 ? 0 : UINT32_MAX << (32 - plen);
}

static struct u128
mask6(int plen)
{
	struct u128 m = { 0, 0 };

	if (plen > 64) {
		m.hi = UINT64_MAX;
		m.lo = UINT64_MAX << (128 - plen);
	} else if (plen > 0)
		m.hi = UINT64_MAX << (64 - plen);
	return m;
}

static int
is_v4mapped(const unsigned char b[16])
{
	static const unsigned char pfx[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0xff, 0xff };

	return memcmp(b, pfx, sizeof(pfx)) == 0;
}

static void
add_net4(struct list *l, uint32_t a, int plen)
{
	if (l->nn4 == l->cap4) {
		l->cap4 = l->cap4 ? l->cap4 * 2 : 16;
		l->n4 = xrealloc(l->n4, l->cap4 * sizeof(*l->n4));
	}
	l->n4[l->nn4].net = a & mask4(plen);
	l->n4[l->nn4].plen = plen;
	l->nn4++;
	l->plens4 |= (uint64_t)1 << plen;
}

static void
add_net6(struct list *l, struct u128 a, int plen)
{
	struct u128 m = mask6(plen);

	if (l->nn6 == l->cap6) {
		l->cap6 = l->cap6 ? l->cap6 * 2 : 16;
		l->n6 = xrealloc(l->n6, l->cap6 * sizeof(*l->n6));
	}
	l->n6[l->nn6].net.hi = a.hi & m.hi;
	l->n6[l->nn6].net.lo = a.lo & m.lo;
	l->n6[l->nn6].plen = plen;
	l->nn6++;
	l->plens6[plen / 64] |= (uint64_t)1 << (plen % 64);
}

/*
 * "addr" or "addr/len", numeric only (inet_pton: no host names, no short
 * forms like "10.1", no zone ids).
 */
static int
add_client(struct list *l, const char *e, size_t len, char *err, size_t errlen)
{
	char	       buf[LIST_ENTRY_MAX + 1], q[QUOTE_BUF], *slash;
	unsigned char  a6[16];
	struct in_addr a4;
	size_t	       n;
	int	       plen = -1;

	memcpy(buf, e, len);
	buf[len] = '\0';
	if ((slash = strchr(buf, '/')) != NULL) {
		*slash++ = '\0';
		n = strlen(slash);
		if (n == 0 || n > 3 || strspn(slash, "0123456789") != n)
			goto bad;
		plen = atoi(slash);
	}
	if (inet_pton(AF_INET, buf, &a4) == 1) {
		if (plen > 32) {
			seterr(err, errlen, "%s: prefix length must be 0 to 32",
			    quote(e, len, q, sizeof(q)));
			return -1;
		}
		add_net4(l, ntohl(a4.s_addr), plen == -1 ? 32 : plen);
		return 0;
	}
	if (inet_pton(AF_INET6, buf, a6) == 1) {
		if (plen > 128) {
			seterr(err, errlen,
			    "%s: prefix length must be 0 to 128",
			    quote(e, len, q, sizeof(q)));
			return -1;
		}
		if (plen == -1)
			plen = 128;
		if (is_v4mapped(a6) && plen >= 96) {
			add_net4(l,
			    (uint32_t)a6[12] << 24 | (uint32_t)a6[13] << 16 |
				(uint32_t)a6[14] << 8 | a6[15],
			    plen - 96);
			return 0;
		}
		add_net6(l, u128_from(a6), plen);
		return 0;
	}
bad:
	seterr(err, errlen, "%s is not an address or address/prefix",
	    quote(e, len, q, sizeof(q)));
	return -1;
}

/* ------------------------------------------------------------- public */

struct list *
list_new(enum list_kind kind)
{
	struct list *l;

	if ((int)kind < 0 || kind >= LIST_KIND_COUNT)
		fatal("list_new: bad list kind %d", (int)kind);
	l = xcalloc(1, sizeof(*l));
	l->kind = kind;
	random_key(l);
	return l;
}

int
list_add(struct list *l, const char *entry, char *err, size_t errlen)
{
	char	      q[QUOTE_BUF];
	size_t	      len, i;
	unsigned char c;
	int	      mailbox, inq = 0;

	if (l->finished)
		fatal("list_add after list_finish");
	if (entry == NULL || entry[0] == '\0') {
		seterr(err, errlen, "empty entry");
		return -1;
	}
	len = strnlen(entry, LIST_ENTRY_MAX + 1);
	if (len > LIST_ENTRY_MAX) {
		seterr(err, errlen, "%s is longer than %d bytes",
		    quote(entry, len, q, sizeof(q)), LIST_ENTRY_MAX);
		return -1;
	}
	/* No controls at all; a space only inside a quoted local part. */
	mailbox = l->kind == LIST_SENDER || l->kind == LIST_RECIPIENT;
	for (i = 0; i < len; i++) {
		c = (unsigned char)entry[i];
		if (c < 0x20 || c == 0x7f)
			goto space;
	}
	for (i = 0; i < len; i++) {
		c = (unsigned char)entry[i];
		if (c == ' ' && !inq)
			goto space;
		if (!mailbox)
			continue;
		if (inq && c == '\\')
			i++;
		else if (c == '"')
			inq = !inq;
	}
	switch (l->kind) {
	case LIST_CLIENT:
		return add_client(l, entry, len, err, errlen);
	case LIST_HELO:
		return add_helo(l, entry, len, err, errlen);
	case LIST_SENDER:
	case LIST_RECIPIENT:
		return add_mailbox(l, entry, len, err, errlen);
	default:
		fatal("list_add: bad list kind %d", (int)l->kind);
	}
space:
	seterr(err, errlen, "%s contains whitespace or a control character",
	    quote(entry, len, q, sizeof(q)));
	return -1;
}

/*
 * Length of the line before its comment: '#' at the start or after a
 * space or tab, outside a quoted string when quotes count.
 */
static size_t
uncomment(const char *s, size_t len, int quotes)
{
	size_t i;
	int    inq = 0;

	for (i = 0; i < len; i++) {
		if (inq) {
			if (s[i] == '\\')
				i++;
			else if (s[i] == '"')
				inq = 0;
		} else if (s[i] == '"' && quotes)
			inq = 1;
		else if (s[i] == '#' &&
		    (i == 0 || s[i - 1] == ' ' || s[i - 1] == '\t'))
			return i;
	}
	return len;
}

static int
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' ||
	    c == '\f';
}

int
list_load_file(struct list *l, const char *path,
    void (*errf)(void *arg, const char *file, int line, const char *reason),
    void *arg)
{
	FILE   *fp;
	char   *line = NULL, *s, err[512];
	size_t	cap = 0, len;
	ssize_t n;
	int	lineno = 0, errors = 0, saved, quotes;

	if (l->finished)
		fatal("list_load_file after list_finish");
	if ((fp = fopen(path, "re")) == NULL) {
		if (errf != NULL)
			errf(arg, path, 0, strerror(errno));
		return 1;
	}
	quotes = l->kind == LIST_SENDER || l->kind == LIST_RECIPIENT;
	errno = 0;
	while ((n = getline(&line, &cap, fp)) != -1) {
		if (lineno < INT_MAX)
			lineno++;
		s = line;
		len = (size_t)n;
		if (lineno == 1 && len >= 3 &&
		    memcmp(s, "\xef\xbb\xbf", 3) == 0) {
			s += 3;
			len -= 3;
		}
		if (memchr(s, '\0', len) != NULL) {
			if (errf != NULL)
				errf(arg, path, lineno,
				    "line contains a NUL byte");
			errors++;
			continue;
		}
		while (len > 0 && is_space(s[0])) {
			s++;
			len--;
		}
		len = uncomment(s, len, quotes);
		while (len > 0 && is_space(s[len - 1]))
			len--;
		if (len == 0)
			continue;
		s[len] = '\0';
		if (list_add(l, s, err, sizeof(err)) == -1) {
			if (errf != NULL)
				errf(arg, path, lineno, err);
			errors++;
		}
		errno = 0;
	}
	saved = errno;
	if (ferror(fp)) {
		if (errf != NULL)
			errf(arg, path, 0, strerror(saved != 0 ? saved : EIO));
		errors++;
	}
	free(line);
	fclose(fp);
	return errors;
}

static int
cmp_net4(const void *a, const void *b)
{
	const struct net4 *x = a, *y = b;

	if (x->net != y->net)
		return x->net < y->net ? -1 : 1;
	return (x->plen > y->plen) - (x->plen < y->plen);
}

static int
cmp_net6(const void *a, const void *b)
{
	const struct net6 *x = a, *y = b;
	int		   c;

	if ((c = u128_cmp(x->net, y->net)) != 0)
		return c;
	return (x->plen > y->plen) - (x->plen < y->plen);
}

/*
 * Sorted by network then prefix length, prefixes are nested or disjoint,
 * so one pass merges them: a range absorbs the next one when it overlaps
 * or touches it.
 */
static void
finish4(struct list *l)
{
	size_t	 i, u = 0;
	uint32_t lo, hi;

	if (l->nn4 == 0)
		return;
	qsort(l->n4, l->nn4, sizeof(*l->n4), cmp_net4);
	for (i = 1; i < l->nn4; i++)
		if (cmp_net4(&l->n4[i], &l->n4[u]) != 0)
			l->n4[++u] = l->n4[i];
	l->nn4 = u + 1;
	l->r4 = xcalloc(l->nn4, sizeof(*l->r4));
	for (i = 0; i < l->nn4; i++) {
		lo = l->n4[i].net;
		hi = lo | ~mask4(l->n4[i].plen);
		if (l->nr4 > 0 &&
		    (lo <= l->r4[l->nr4 - 1].hi ||
			lo - 1 == l->r4[l->nr4 - 1].hi)) {
			if (hi > l->r4[l->nr4 - 1].hi)
				l->r4[l->nr4 - 1].hi = hi;
			continue;
		}
		l->r4[l->nr4].lo = lo;
		l->r4[l->nr4].hi = hi;
		l->nr4++;
	}
}

static void
finish6(struct list *l)
{
	struct u128 lo, hi, m, *last;
	size_t	    i, u = 0;

	if (l->nn6 == 0)
		return;
	qsort(l->n6, l->nn6, sizeof(*l->n6), cmp_net6);
	for (i = 1; i < l->nn6; i++)
		if (cmp_net6(&l->n6[i], &l->n6[u]) != 0)
			l->n6[++u] = l->n6[i];
	l->nn6 = u + 1;
	l->r6 = xcalloc(l->nn6, sizeof(*l->r6));
	for (i = 0; i < l->nn6; i++) {
		lo = l->n6[i].net;
		m = mask6(l->n6[i].plen);
		hi.hi = lo.hi | ~m.hi;
		hi.lo = lo.lo | ~m.lo;
		if (l->nr6 > 0) {
			last = &l->r6[l->nr6 - 1].hi;
			/* lo - 1, to see whether the ranges touch; lo > 0. */
			m.hi = lo.lo == 0 ? lo.hi - 1 : lo.hi;
			m.lo = lo.lo - 1;
			if (u128_cmp(lo, *last) <= 0 ||
			    u128_cmp(m, *last) == 0) {
				if (u128_cmp(hi, *last) > 0)
					*last = hi;
				continue;
			}
		}
		l->r6[l->nr6].lo = lo;
		l->r6[l->nr6].hi = hi;
		l->nr6++;
	}
}

void
list_finish(struct list *l)
{
	if (l->finished)
		return;
	finish4(l);
	finish6(l);
	l->finished = 1;
}

/* The client address as IPv4 (returns 4) or IPv6 (6), or 0. */
static int
sa_key(const struct sockaddr *sa, uint32_t *a4, struct u128 *a6)
{
	const struct sockaddr_in6 *s6;
	const unsigned char	  *b;

	if (sa == NULL)
		return 0;
	if (sa->sa_family == AF_INET) {
		*a4 = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
		return 4;
	}
	if (sa->sa_family != AF_INET6)
		return 0;
	s6 = (const struct sockaddr_in6 *)sa;
	b = s6->sin6_addr.s6_addr;
	if (is_v4mapped(b)) {
		*a4 = (uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 |
		    (uint32_t)b[14] << 8 | b[15];
		return 4;
	}
	*a6 = u128_from(b);
	return 6;
}

static int
match4(const struct list *l, uint32_t a)
{
	size_t lo = 0, hi = l->nr4, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (l->r4[mid].lo <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo > 0 && a <= l->r4[lo - 1].hi;
}

static int
match6(const struct list *l, struct u128 a)
{
	size_t lo = 0, hi = l->nr6, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (u128_cmp(l->r6[mid].lo, a) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo > 0 && u128_cmp(a, l->r6[lo - 1].hi) <= 0;
}

int
list_match_addr(const struct list *l, const struct sockaddr *sa)
{
	struct u128 a6;
	uint32_t    a4;

	if (l == NULL || l->kind != LIST_CLIENT)
		return 0;
	if (!l->finished)
		fatal("list_match_addr before list_finish");
	switch (sa_key(sa, &a4, &a6)) {
	case 4:
		return match4(l, a4);
	case 6:
		return match6(l, a6);
	default:
		return 0;
	}
}

/*
 * Subdomain entries for domain d: the suffixes after each dot, shortest
 * first, no longer than the longest such entry and at most
 * SUFFIX_LABELS_MAX of them. The first match, or the longest if asked.
 */
static const struct slot *
suffix_walk(const struct list *l, const char *d, size_t n, int longest)
{
	const struct slot *best = NULL, *s;
	size_t		   i, labels = 0;

	if (n == 0 || d[0] == '[' || l->maxlen[TAG_SUFFIX] == 0)
		return NULL;
	for (i = n; i-- > 0;) {
		if (n - i - 1 > l->maxlen[TAG_SUFFIX])
			break;
		if (d[i] != '.')
			continue;
		if ((s = key_find(l, TAG_SUFFIX, d + i + 1, n - i - 1)) !=
		    NULL) {
			best = s;
			if (!longest)
				break;
		}
		if (++labels >= SUFFIX_LABELS_MAX)
			break;
	}
	return best;
}

/*
 * The entry matching a HELO name or mail address, the most specific one
 * when explaining (buf != NULL). Returns 1 if one matched.
 */
static int
name_lookup(const struct list *l, const char *name, char *buf, size_t buflen)
{
	const struct slot *s;
	const char	  *at, *dom;
	size_t		   len, llen, dlen;
	int		   explain = buf != NULL;

	len = strlen(name);
	if (l->kind == LIST_HELO) {
		if (len > 0 && name[len - 1] == '.')
			len--;
		if ((s = key_find(l, TAG_EXACT, name, len)) == NULL &&
		    (s = suffix_walk(l, name, len, explain)) == NULL)
			return 0;
		slot_format(l, s, buf, buflen);
		return 1;
	}
	if (len == 0) {
		if (l->has_null && explain && buflen > 0)
			snprintf(buf, buflen, "<>");
		return l->has_null;
	}
	if ((at = find_at(name, len, NULL)) == NULL) {
		if ((s = key_find(l, TAG_LOCAL, name, len)) == NULL)
			return 0;
		slot_format(l, s, buf, buflen);
		return 1;
	}
	llen = (size_t)(at - name);
	dom = at + 1;
	dlen = len - llen - 1;
	if (dlen > 0 && dom[dlen - 1] == '.')
		dlen--;
	if ((dlen == 0 || llen == 0 ||
		(s = key_find(l, TAG_EXACT, name, llen + 1 + dlen)) == NULL) &&
	    (s = key_find(l, TAG_DOMAIN, dom, dlen)) == NULL &&
	    (s = suffix_walk(l, dom, dlen, explain)) == NULL &&
	    (s = key_find(l, TAG_LOCAL, name, llen)) == NULL)
		return 0;
	slot_format(l, s, buf, buflen);
	return 1;
}

int
list_match_name(const struct list *l, const char *name)
{
	if (l == NULL || name == NULL || l->kind == LIST_CLIENT)
		return 0;
	if (!l->finished)
		fatal("list_match_name before list_finish");
	return name_lookup(l, name, NULL, 0);
}

static int
bsearch4(const struct list *l, uint32_t net, int plen)
{
	struct net4 k = { net, plen };

	return bsearch(&k, l->n4, l->nn4, sizeof(*l->n4), cmp_net4) != NULL;
}

static int
bsearch6(const struct list *l, struct u128 net, int plen)
{
	struct net6 k = { net, plen };

	return bsearch(&k, l->n6, l->nn6, sizeof(*l->n6), cmp_net6) != NULL;
}

/* The longest prefix entry holding the address, written out. */
static int
addr_explain(
    const struct list *l, const struct sockaddr *sa, char *buf, size_t buflen)
{
	char	       tmp[INET6_ADDRSTRLEN];
	unsigned char  b[16];
	struct u128    a6, m, net;
	struct in_addr in;
	uint32_t       a4;
	int	       p, fam;

	switch ((fam = sa_key(sa, &a4, &a6))) {
	case 4:
		if (!match4(l, a4))
			return 0;
		for (p = 32; p >= 0; p--) {
			if (!((l->plens4 >> p) & 1) ||
			    !bsearch4(l, a4 & mask4(p), p))
				continue;
			in.s_addr = htonl(a4 & mask4(p));
			inet_ntop(AF_INET, &in, tmp, sizeof(tmp));
			break;
		}
		break;
	case 6:
		if (!match6(l, a6))
			return 0;
		for (p = 128; p >= 0; p--) {
			if (!((l->plens6[p / 64] >> (p % 64)) & 1))
				continue;
			m = mask6(p);
			net.hi = a6.hi & m.hi;
			net.lo = a6.lo & m.lo;
			if (!bsearch6(l, net, p))
				continue;
			u128_to(net, b);
			inet_ntop(AF_INET6, b, tmp, sizeof(tmp));
			break;
		}
		break;
	default:
		return 0;
	}
	if (p < 0) /* cannot happen: a range is made of entries */
		return 0;
	if (buf != NULL && buflen > 0) {
		if (p == (fam == 4 ? 32 : 128))
			snprintf(buf, buflen, "%s", tmp);
		else
			snprintf(buf, buflen, "%s/%d", tmp, p);
	}
	return 1;
}

int
list_explain(const struct list *l, const char *name, const struct sockaddr *sa,
    char *buf, size_t buflen)
{
	if (l == NULL)
		return 0;
	if (!l->finished)
		fatal("list_explain before list_finish");
	if (l->kind == LIST_CLIENT)
		return addr_explain(l, sa, buf, buflen);
	if (name == NULL)
		return 0;
	if (buf == NULL || buflen == 0)
		return name_lookup(l, name, NULL, 0);
	return name_lookup(l, name, buf, buflen);
}

size_t
list_size(const struct list *l)
{
	if (l->kind == LIST_CLIENT)
		return l->nn4 + l->nn6;
	return l->nkeys + (l->has_null ? 1 : 0);
}

enum list_kind
list_kind(const struct list *l)
{
	return l->kind;
}

void
list_free(struct list *l)
{
	if (l == NULL)
		return;
	free(l->tab);
	free(l->arena);
	free(l->n4);
	free(l->n6);
	free(l->r4);
	free(l->r6);
	free(l);
}
