/*
 * test_dnscache.c - proxy/dnscache.c, the per-thread answer cache: hits
 * give back exactly the answer stored, TTLs (expiry, what is left, the
 * min/max clamps), negative answers, what is never kept, the key (case,
 * final dot, type), the bounds (bytes, entries, one big answer) and LRU
 * eviction, references that outlive eviction and the cache; and
 * proxy/dnsrr.c's dns_answer_ttl on DNS messages (RFC 1035 §4.1, RFC 2308
 * §5). The clock is the test's.
 */
#include <stdlib.h>
#include <string.h>

#include "dnscache.h"
#include "dnsrr.h"
#include "tap.h"

/* ---------------------------------------------------------- messages */

struct msg {
	unsigned char b[1024];
	size_t	      n;
};

static void
put8(struct msg *m, unsigned v)
{
	m->b[m->n++] = (unsigned char)v;
}

static void
put16(struct msg *m, unsigned v)
{
	put8(m, v >> 8);
	put8(m, v & 255);
}

static void
put32(struct msg *m, unsigned long v)
{
	put16(m, (unsigned)(v >> 16));
	put16(m, (unsigned)(v & 0xffff));
}

static void
putname(struct msg *m, const char *name)
{
	while (*name != '\0') {
		const char *dot = strchr(name, '.');
		size_t	    l = dot ? (size_t)(dot - name) : strlen(name);

		put8(m, (unsigned)l);
		memcpy(m->b + m->n, name, l);
		m->n += l;
		name += l + (dot != NULL);
	}
	put8(m, 0);
}

static void
header(struct msg *m, unsigned rcode, unsigned an, unsigned ns)
{
	m->n = 0;
	put16(m, 0x1234);
	put16(m, 0x8180 | rcode);
	put16(m, 1);
	put16(m, an);
	put16(m, ns);
	put16(m, 0);
	putname(m, "www.example.test");
	put16(m, 16);
	put16(m, 1);
}

/* An RR whose owner is a pointer to the question's name (offset 12). */
static void
rr(struct msg *m, unsigned type, unsigned long ttl, const char *rdata,
    size_t rdlen)
{
	put16(m, 0xc00c);
	put16(m, type);
	put16(m, 1);
	put32(m, ttl);
	put16(m, (unsigned)rdlen);
	memcpy(m->b + m->n, rdata, rdlen);
	m->n += rdlen;
}

static void
soa(struct msg *m, unsigned long ttl, unsigned long minimum)
{
	size_t len_at;

	put16(m, 0xc00c);
	put16(m, 6);
	put16(m, 1);
	put32(m, ttl);
	len_at = m->n;
	put16(m, 0);
	putname(m, "ns.example.test");
	put16(m, 0xc00c); /* RNAME compressed */
	put32(m, 2026112401);
	put32(m, 3600);
	put32(m, 600);
	put32(m, 86400);
	put32(m, minimum);
	m->b[len_at] = (unsigned char)((m->n - len_at - 2) >> 8);
	m->b[len_at + 1] = (unsigned char)((m->n - len_at - 2) & 255);
}

static void
test_ttl(void)
{
	struct msg m;

	header(&m, 0, 2, 0);
	rr(&m, 5, 300, "\3www\4next\0", 10); /* CNAME */
	rr(&m, 16, 900, "\3abc", 4);
	is_int(dns_answer_ttl(m.b, m.n, 0), 300,
	    "positive: the smallest TTL of the answer section (CNAME too)");
	header(&m, 0, 1, 1);
	rr(&m, 16, 7200, "\3abc", 4);
	soa(&m, 60, 30);
	is_int(dns_answer_ttl(m.b, m.n, 0), 7200,
	    "positive: the authority section does not count");
	header(&m, 3, 0, 1);
	soa(&m, 3600, 900);
	is_int(dns_answer_ttl(m.b, m.n, 1), 900,
	    "NXDOMAIN: min(SOA TTL, MINIMUM) = MINIMUM (RFC 2308 5)");
	header(&m, 0, 0, 1);
	soa(&m, 120, 900);
	is_int(dns_answer_ttl(m.b, m.n, 1), 120,
	    "NODATA: min(SOA TTL, MINIMUM) = the SOA's TTL");
	header(&m, 3, 0, 0);
	is_int(dns_answer_ttl(m.b, m.n, 1), -1,
	    "negative without SOA: not cacheable");
	header(&m, 3, 0, 1);
	rr(&m, 2, 3600, "\2ns\0", 4);
	is_int(dns_answer_ttl(m.b, m.n, 1), -1,
	    "negative with only an NS in authority: not cacheable");
	header(&m, 0, 1, 0);
	rr(&m, 16, 0x80000001UL, "\3abc", 4);
	is_int(dns_answer_ttl(m.b, m.n, 0), 0,
	    "a TTL with the top bit set counts as 0 (RFC 2181 8)");
	header(&m, 0, 1, 0);
	rr(&m, 16, 300, "\3abc", 4);
	is_int(dns_answer_ttl(m.b, m.n - 1, 0), -1, "truncated message: -1");
	is_int(dns_answer_ttl(m.b, 11, 0), -1, "shorter than a header: -1");
	is_int(dns_answer_ttl(NULL, 0, 0), -1, "no message: -1");
	header(&m, 0, 1, 0);
	m.b[12] = 0xc0; /* the question's name: a pointer to itself */
	m.b[13] = 12;
	is_int(dns_answer_ttl(m.b, m.n, 0) >= -1, 1,
	    "a looping pointer is only skipped, never followed");
}

/* ---------------------------------------------------------- the cache */

static struct dns_answer
answer(enum dns_status st, struct dns_record *r, size_t n)
{
	struct dns_answer a;

	memset(&a, 0, sizeof(a));
	a.status = st;
	a.rcode = st == DNS_NXDOMAIN ? 3 : 0;
	a.rr = n ? r : NULL;
	a.n = n;
	return a;
}

static int
same(const struct dns_answer *x, const struct dns_answer *y)
{
	size_t i;

	if (x->status != y->status || x->rcode != y->rcode ||
	    x->secure != y->secure || x->n != y->n || x->why != y->why)
		return 0;
	for (i = 0; i < x->n; i++) {
		const struct dns_record *a = &x->rr[i], *b = &y->rr[i];

		if (a->rdlen != b->rdlen ||
		    memcmp(a->rdata, b->rdata, a->rdlen) != 0 ||
		    a->pref != b->pref ||
		    (a->text == NULL) != (b->text == NULL))
			return 0;
		if (a->text != NULL &&
		    (a->textlen != b->textlen ||
			memcmp(a->text, b->text, a->textlen + 1) != 0))
			return 0;
	}
	return 1;
}

/* A TXT answer of about size bytes for the bound tests. */
static void
put_sized(struct dnscache *c, const char *name, size_t size, uint64_t now)
{
	static char	  buf[8192];
	struct dns_record r;
	struct dns_answer a;

	memset(buf, 'x', size);
	buf[size] = '\0';
	memset(&r, 0, sizeof(r));
	r.rdata = (const unsigned char *)buf;
	r.rdlen = size;
	a = answer(DNS_OK, &r, 1);
	dnscache_put(c, name, DNS_T_TXT, &a, 600, now);
}

static int
has(struct dnscache *c, const char *name, int type, uint64_t now)
{
	struct dnscache_entry *e = dnscache_get(c, name, type, now);

	dnscache_unref(e);
	return e != NULL;
}

static void
test_cache(void)
{
	struct dnscache	      *c = dnscache_new(64 * 1024, 0, 3600);
	struct dnscache_entry *e, *e2;
	struct dnscache_stats  st;
	struct dns_record      r[3];
	struct dns_answer      a, got;
	char		       name[64];
	int		       i, n;
	uint64_t	       t0 = 1000000;

	memset(r, 0, sizeof(r));
	r[0].rdata = (const unsigned char *)"\x0av=spf1 -all";
	r[0].rdlen = 13;
	r[0].text = "v=spf1 -all";
	r[0].textlen = 11;
	r[1].rdata = (const unsigned char *)"\x04two\0x";
	r[1].rdlen = 5;
	r[1].text = "two\0x"; /* a NUL inside, kept */
	r[1].textlen = 5;
	r[2].rdata = (const unsigned char *)"\xff";
	r[2].rdlen = 1;
	r[2].text = NULL; /* undecodable: stays NULL */
	a = answer(DNS_OK, r, 3);
	a.secure = 1;
	a.ttl = 300;

	ok(dnscache_get(c, "example.test", DNS_T_TXT, t0) == NULL,
	    "empty: a miss");
	is_int(dnscache_put(c, "example.test", DNS_T_TXT, &a, 300, t0), 0,
	    "an answer with records is kept");
	e = dnscache_get(c, "example.test", DNS_T_TXT, t0 + 10);
	ok(e != NULL, "then a hit");
	dnscache_answer(e, t0 + 10, &got);
	ok(same(&got, &a),
	    "the cached answer is the stored one: status, rcode, secure, "
	    "records' wire and text forms, order");
	ok(got.rr != a.rr && got.rr[0].rdata != a.rr[0].rdata &&
		got.rr[0].text != a.rr[0].text,
	    "... a copy, not the caller's memory");
	is_int(got.ttl, 300, "TTL: all of it right after");
	dnscache_answer(e, t0 + 120500, &got);
	is_int(got.ttl, 180, "TTL: what is left after 120.5 s (rounded up)");
	dnscache_unref(e);
	ok(has(c, "EXAMPLE.Test.", DNS_T_TXT, t0 + 1000),
	    "key: case folded, final dot ignored");
	ok(!has(c, "example.test", DNS_T_A, t0 + 1000),
	    "key: the type is part of it");
	ok(!has(c, "www.example.test", DNS_T_TXT, t0 + 1000),
	    "key: another name misses");
	ok(has(c, "example.test", DNS_T_TXT, t0 + 299999),
	    "alive until its TTL runs out");
	ok(!has(c, "example.test", DNS_T_TXT, t0 + 300000),
	    "expired at its TTL: a miss");
	dnscache_stats(c, &st);
	is_int(st.expired, 1, "... counted as expired");
	is_int(st.entries, 0, "... and dropped");

	/* Negative answers (RFC 2308) */
	a = answer(DNS_NXDOMAIN, NULL, 0);
	is_int(dnscache_put(c, "gone.example.test", DNS_T_TXT, &a, 60, t0), 0,
	    "NXDOMAIN is kept");
	e = dnscache_get(c, "gone.example.test", DNS_T_TXT, t0);
	ok(e != NULL, "NXDOMAIN: a hit");
	dnscache_answer(e, t0, &got);
	ok(got.status == DNS_NXDOMAIN && got.rcode == 3 && got.n == 0 &&
		got.rr == NULL,
	    "NXDOMAIN: status, rcode 3, no records");
	dnscache_unref(e);
	ok(!has(c, "gone.example.test", DNS_T_TXT, t0 + 60000),
	    "NXDOMAIN: gone after its SOA-derived TTL");
	a = answer(DNS_NODATA, NULL, 0);
	dnscache_put(c, "mx.example.test", DNS_T_TXT, &a, 60, t0);
	e = dnscache_get(c, "mx.example.test", DNS_T_TXT, t0);
	dnscache_answer(e, t0, &got);
	ok(e != NULL && got.status == DNS_NODATA, "NODATA is kept");
	dnscache_unref(e);

	/* Never kept */
	{
		static const enum dns_status never[] = { DNS_TEMPFAIL,
			DNS_TIMEOUT, DNS_BOGUS, DNS_ERROR };
		static const char *const     names[] = { "SERVFAIL (tempfail)",
			    "a timeout", "a bogus answer", "an error" };

		for (i = 0; i < 4; i++) {
			a = answer(never[i], NULL, 0);
			is_int(dnscache_put(c, "fail.example.test", DNS_T_TXT,
				   &a, 300, t0),
			    -1, "not kept: %s", names[i]);
		}
		ok(!has(c, "fail.example.test", DNS_T_TXT, t0),
		    "... and not found");
	}
	a = answer(DNS_OK, r, 1);
	is_int(dnscache_put(c, "zero.example.test", DNS_T_TXT, &a, 0, t0), -1,
	    "TTL 0: not kept");
	a = answer(DNS_OK, NULL, 0);
	is_int(dnscache_put(c, "empty.example.test", DNS_T_TXT, &a, 60, t0), -1,
	    "DNS_OK without records: not kept");

	/* Replacing */
	a = answer(DNS_OK, r, 1);
	dnscache_put(c, "re.example.test", DNS_T_TXT, &a, 60, t0);
	e = dnscache_get(c, "re.example.test", DNS_T_TXT, t0);
	a = answer(DNS_OK, r + 1, 1);
	dnscache_put(c, "RE.example.test", DNS_T_TXT, &a, 60, t0);
	e2 = dnscache_get(c, "re.example.test", DNS_T_TXT, t0);
	dnscache_answer(e2, t0, &got);
	ok(same(&got, &a), "a new answer replaces the old one");
	dnscache_answer(e, t0, &got);
	ok(got.n == 1 && got.rr[0].textlen == 11 &&
		memcmp(got.rr[0].text, "v=spf1 -all", 12) == 0,
	    "the replaced entry stays valid while referenced");
	dnscache_unref(e);
	dnscache_unref(e2);
	dnscache_stats(c, &st);
	is_int(st.entries, 2,
	    "entries counted: the NODATA and the replacement (the expired "
	    "NXDOMAIN and the replaced entry are out)");
	dnscache_free(c);

	/* Clamps */
	c = dnscache_new(64 * 1024, 30, 120);
	a = answer(DNS_OK, r, 1);
	dnscache_put(c, "short.example.test", DNS_T_TXT, &a, 5, t0);
	ok(has(c, "short.example.test", DNS_T_TXT, t0 + 29000),
	    "min_ttl: a 5 s TTL kept 30 s");
	ok(!has(c, "short.example.test", DNS_T_TXT, t0 + 30000),
	    "min_ttl: ... not longer");
	dnscache_put(c, "long.example.test", DNS_T_TXT, &a, 86400, t0);
	e = dnscache_get(c, "long.example.test", DNS_T_TXT, t0);
	dnscache_answer(e, t0, &got);
	is_int(got.ttl, 120, "max_ttl: a day's TTL cut to 120 s");
	dnscache_unref(e);
	ok(!has(c, "long.example.test", DNS_T_TXT, t0 + 120000),
	    "max_ttl: expired after 120 s");
	dnscache_free(c);

	/* Bounds and LRU */
	c = dnscache_new(16 * 1024, 0, 3600);
	for (i = 0; i < 40; i++) {
		snprintf(name, sizeof(name), "d%02d.test", i);
		put_sized(c, name, 500, t0);
		if (i >= 1)
			(void)has(c, "d00.test", DNS_T_TXT, t0); /* kept hot */
	}
	dnscache_stats(c, &st);
	ok(st.bytes <= 16 * 1024, "bytes bound held (%zu of 16384)", st.bytes);
	ok(st.evicted > 0, "entries were evicted (%llu)", st.evicted);
	ok(has(c, "d00.test", DNS_T_TXT, t0),
	    "the most recently used survives");
	ok(!has(c, "d01.test", DNS_T_TXT, t0), "the least recently used went");
	ok(has(c, "d39.test", DNS_T_TXT, t0), "the newest is there");
	put_sized(c, "big.test", 2100, t0);
	ok(!has(c, "big.test", DNS_T_TXT, t0),
	    "an answer over an eighth of the cache is not kept");
	e = dnscache_get(c, "d39.test", DNS_T_TXT, t0);
	dnscache_free(c);
	dnscache_answer(e, t0, &got);
	ok(got.n == 1 && got.rr[0].rdlen == 500,
	    "an entry referenced outlives its cache");
	dnscache_unref(e);

	c = dnscache_new(1024UL * 1024 * 1024, 0, 3600);
	for (i = 0, n = 0; i < DNSCACHE_MAX_ENTRIES + 10; i++) {
		snprintf(name, sizeof(name), "n%d.test", i);
		put_sized(c, name, 1, t0);
	}
	dnscache_stats(c, &st);
	is_int(st.entries, DNSCACHE_MAX_ENTRIES, "entries bound held");
	ok(!has(c, "n0.test", DNS_T_TXT, t0) &&
		has(c, "n65545.test", DNS_T_TXT, t0),
	    "... the oldest made room");
	dnscache_free(c);

	c = dnscache_new(0, 0, 3600);
	a = answer(DNS_OK, r, 1);
	is_int(dnscache_put(c, "x.test", DNS_T_TXT, &a, 60, t0), -1,
	    "size 0: keeps nothing");
	dnscache_free(c);

	/* Copies between caches (the resolver's shared level) */
	{
		struct dnscache *src = dnscache_new(64 * 1024, 0, 3600);
		struct dnscache *dst = dnscache_new(64 * 1024, 600, 3600);

		a = answer(DNS_OK, r, 3);
		a.secure = 1;
		dnscache_put(src, "Copy.Example.Test.", DNS_T_TXT, &a, 100, t0);
		e = dnscache_get(src, "copy.example.test", DNS_T_TXT, t0);
		e2 = dnscache_copy(dst, e, t0 + 40000);
		ok(e2 != NULL, "copy: stored in the other cache, referenced");
		dnscache_answer(e2, t0 + 40000, &got);
		ok(same(&got, &a), "copy: the same answer");
		is_int(got.ttl, 60,
		    "copy: the source's expiry, no clamp again (min_ttl 600)");
		dnscache_unref(e2);
		ok(has(dst, "COPY.example.test", DNS_T_TXT, t0 + 99999) &&
			!has(dst, "copy.example.test", DNS_T_TXT, t0 + 100000),
		    "copy: found under the same key, gone at the same time");
		ok(dnscache_copy(dst, e, t0 + 100000) == NULL,
		    "copy: an expired entry is not copied");
		dnscache_unref(e);
		dnscache_free(src);
		dnscache_free(dst);
	}
	(void)n;
}

int
main(void)
{
	test_ttl();
	test_cache();
	return tap_done();
}
