/*
 * test_lists.c - unit tests for policies/lists.c: every entry form of the
 * four list kinds, normalisation (case, trailing dots, IPv4-mapped IPv6),
 * prefix boundaries, merging of overlapping and adjacent networks, bad
 * entries, file loading, list_explain, and 100,000-entry lists.
 *
 * Hermetic: temporary files come from mkstemp in $TMPDIR (or /tmp) and
 * are removed. Random data comes from a fixed-seed generator, so every run
 * checks the same lists. Single-threaded.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "tap.h"
#include "lists.h"

static char err[512];
static char why[512];

/* A numeric address as a sockaddr (static storage, one at a time). */
static const struct sockaddr *
sa(const char *text)
{
	static struct sockaddr_storage ss;
	struct sockaddr_in	      *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6	      *s6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, text, &s4->sin_addr) == 1)
		s4->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, text, &s6->sin6_addr) == 1)
		s6->sin6_family = AF_INET6;
	else {
		printf("# bad test address %s\n", text);
		abort();
	}
	return (const struct sockaddr *)&ss;
}

static int
add(struct list *l, const char *entry)
{
	err[0] = '\0';
	return list_add(l, entry, err, sizeof(err));
}

/* Add entries that must all be accepted; NULL-terminated. */
static int
add_all(struct list *l, const char *const *entries)
{
	int bad = 0;

	for (; *entries != NULL; entries++)
		if (add(l, *entries) != 0) {
			printf("# refused %s: %s\n", *entries, err);
			bad++;
		}
	return bad;
}

static int
m_addr(const struct list *l, const char *text)
{
	return list_match_addr(l, sa(text));
}

static const char *
ex_addr(const struct list *l, const char *text)
{
	why[0] = '\0';
	if (!list_explain(l, NULL, sa(text), why, sizeof(why)))
		return "(no match)";
	return why;
}

static const char *
ex_name(const struct list *l, const char *name)
{
	why[0] = '\0';
	if (!list_explain(l, name, NULL, why, sizeof(why)))
		return "(no match)";
	return why;
}

/* The entry is refused and the reason contains what. */
static void
refused(struct list *l, const char *entry, const char *what, const char *desc)
{
	int r = add(l, entry);

	if (!ok(r == -1 && strstr(err, what) != NULL, "refused: %s", desc))
		printf("#   rc %d, err \"%s\", want \"%s\"\n", r, err, what);
}

/* xorshift64*: deterministic test data. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t
rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

static double
ms_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1e3 +
	    (t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* ------------------------------------------------------------ clients */

static void
test_client_forms(void)
{
	static const char *const entries[] = { "192.0.2.1", "198.51.100.0/24",
		"2001:db8::/32", "::ffff:203.0.113.5", "10.1.2.3/8", NULL };
	struct list		*l = list_new(LIST_CLIENT);

	is_int(list_kind(l), LIST_CLIENT, "kind is LIST_CLIENT");
	is_int(add_all(l, entries), 0, "client entries accepted");
	list_finish(l);
	is_int(list_size(l), 5, "five client entries");

	ok(m_addr(l, "192.0.2.1"), "single IPv4 address");
	ok(!m_addr(l, "192.0.2.0"), "address below a /32");
	ok(!m_addr(l, "192.0.2.2"), "address above a /32");
	ok(m_addr(l, "198.51.100.0"), "first address of a /24");
	ok(m_addr(l, "198.51.100.255"), "last address of a /24");
	ok(!m_addr(l, "198.51.99.255"), "one below a /24");
	ok(!m_addr(l, "198.51.101.0"), "one beyond a /24");
	ok(m_addr(l, "10.0.0.0"),
	    "host bits masked: 10.1.2.3/8 holds 10.0.0.0");
	ok(m_addr(l, "10.255.255.255"), "host bits masked: last of 10/8");
	ok(!m_addr(l, "11.0.0.0"), "one beyond 10/8");
	ok(!m_addr(l, "9.255.255.255"), "one below 10/8");
	ok(m_addr(l, "203.0.113.5"), "v4-mapped entry matches plain IPv4");
	ok(m_addr(l, "::ffff:192.0.2.1"),
	    "v4-mapped client matches IPv4 entry");
	ok(m_addr(l, "::ffff:203.0.113.5"), "v4-mapped on both sides");
	ok(!m_addr(l, "::ffff:192.0.2.2"), "v4-mapped client outside");
	ok(!m_addr(l, "::192.0.2.1"), "v4-compatible address is IPv6");
	ok(m_addr(l, "2001:db8::"), "first address of an IPv6 /32");
	ok(m_addr(l, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"),
	    "last address of an IPv6 /32");
	ok(!m_addr(l, "2001:db9::"), "one beyond an IPv6 /32");
	ok(!m_addr(l, "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff"),
	    "one below an IPv6 /32");

	is_str(ex_addr(l, "192.0.2.1"), "192.0.2.1", "explain a /32");
	is_str(ex_addr(l, "10.9.9.9"), "10.0.0.0/8", "explain shows the mask");
	is_str(ex_addr(l, "::ffff:203.0.113.5"), "203.0.113.5",
	    "explain a mapped entry as IPv4");
	is_str(ex_addr(l, "2001:db8::5"), "2001:db8::/32", "explain IPv6");
	is_str(ex_addr(l, "192.0.2.9"), "(no match)", "explain no match");
	list_free(l);
}

static void
test_client_prefixes(void)
{
	struct list *l;

	l = list_new(LIST_CLIENT);
	ok(add(l, "0.0.0.0/0") == 0, "IPv4 /0 accepted");
	list_finish(l);
	ok(m_addr(l, "0.0.0.0") && m_addr(l, "255.255.255.255") &&
		m_addr(l, "::ffff:192.0.2.1"),
	    "IPv4 /0 holds every IPv4 address, mapped ones too");
	ok(!m_addr(l, "2001:db8::1") && !m_addr(l, "::"),
	    "IPv4 /0 holds no IPv6 address");
	is_str(ex_addr(l, "1.2.3.4"), "0.0.0.0/0", "explain /0");
	list_free(l);

	l = list_new(LIST_CLIENT);
	ok(add(l, "::/0") == 0, "IPv6 /0 accepted");
	list_finish(l);
	ok(m_addr(l, "::") && m_addr(l, "2001:db8::1") &&
		m_addr(l, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
	    "IPv6 /0 holds every IPv6 address");
	ok(!m_addr(l, "192.0.2.1") && !m_addr(l, "::ffff:192.0.2.1"),
	    "IPv6 /0 holds no IPv4 address, mapped or not");
	list_free(l);

	l = list_new(LIST_CLIENT);
	ok(add(l, "192.0.2.255/32") == 0 && add(l, "0.0.0.0/32") == 0 &&
		add(l, "255.255.255.255") == 0 &&
		add(l, "2001:db8::1/128") == 0 &&
		add(l, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff") == 0 &&
		add(l, "::") == 0,
	    "/32 and /128 entries accepted");
	list_finish(l);
	ok(m_addr(l, "192.0.2.255") && !m_addr(l, "192.0.2.254") &&
		!m_addr(l, "192.0.3.0"),
	    "/32 holds one address");
	ok(m_addr(l, "0.0.0.0") && !m_addr(l, "0.0.0.1"), "lowest IPv4");
	ok(m_addr(l, "255.255.255.255") && !m_addr(l, "255.255.255.254"),
	    "highest IPv4");
	ok(m_addr(l, "2001:db8::1") && !m_addr(l, "2001:db8::") &&
		!m_addr(l, "2001:db8::2"),
	    "/128 holds one address");
	ok(m_addr(l, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff") &&
		!m_addr(l, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"),
	    "highest IPv6");
	ok(m_addr(l, "::") && !m_addr(l, "::1"), "lowest IPv6");
	is_str(ex_addr(l, "2001:db8::1"), "2001:db8::1", "explain a /128");
	list_free(l);

	l = list_new(LIST_CLIENT);
	ok(add(l, "::ffff:192.0.2.0/120") == 0 &&
		add(l, "::ffff:0:0/64") == 0 &&
		add(l, "2001:db8:1:2::/64") == 0 &&
		add(l, "2001:db8:0:0:8000::/65") == 0 &&
		add(l, "0.0.0.0/1") == 0,
	    "odd prefixes accepted");
	list_finish(l);
	ok(m_addr(l, "192.0.2.77") && !m_addr(l, "192.0.3.0"),
	    "mapped /120 is an IPv4 /24");
	is_str(ex_addr(l, "192.0.2.77"), "192.0.2.0/24",
	    "explain mapped /120 as IPv4 /24");
	ok(m_addr(l, "::1") && !m_addr(l, "200.1.2.3"),
	    "mapped prefix shorter than 96 stays IPv6");
	ok(m_addr(l, "2001:db8:1:2:ffff:ffff:ffff:ffff") &&
		!m_addr(l, "2001:db8:1:3::") &&
		!m_addr(l, "2001:db8:1:1:ffff:ffff:ffff:ffff"),
	    "IPv6 /64 boundaries");
	ok(m_addr(l, "2001:db8::8000:0:0:0") &&
		m_addr(l, "2001:db8::ffff:ffff:ffff:ffff") &&
		!m_addr(l, "2001:db8::7fff:ffff:ffff:ffff") &&
		!m_addr(l, "2001:db8:0:1::"),
	    "IPv6 /65 boundaries");
	ok(m_addr(l, "0.0.0.0") && m_addr(l, "127.255.255.255") &&
		!m_addr(l, "128.0.0.0"),
	    "IPv4 /1 boundaries");
	list_free(l);

	l = list_new(LIST_CLIENT);
	ok(add(l, "::ffff:0:0/96") == 0, "mapped /96 accepted");
	list_finish(l);
	ok(m_addr(l, "1.2.3.4") && !m_addr(l, "2001:db8::1"),
	    "mapped /96 is IPv4 /0");
	list_free(l);
}

static void
test_client_merge(void)
{
	static const char *const entries[] = { "10.0.0.0/8", "10.1.0.0/16",
		"10.1.2.3", "10.0.0.0/8", "10.5.5.5/8", "192.0.2.0/25",
		"192.0.2.128/25", "255.255.255.255", "255.255.255.254/31",
		"2001:db8::/33", "2001:db8:8000::/33", "2001:db8::1", NULL };
	struct list		*l = list_new(LIST_CLIENT);

	is_int(add_all(l, entries), 0, "overlapping entries accepted");
	list_finish(l);
	is_int(list_size(l), 10, "duplicates counted once");
	ok(m_addr(l, "10.0.0.0") && m_addr(l, "10.1.2.3") &&
		m_addr(l, "10.255.255.255") && !m_addr(l, "11.0.0.0"),
	    "nested networks");
	is_str(ex_addr(l, "10.1.2.3"), "10.1.2.3", "explain: longest prefix");
	is_str(ex_addr(l, "10.1.9.9"), "10.1.0.0/16", "explain: the /16");
	is_str(ex_addr(l, "10.9.9.9"), "10.0.0.0/8", "explain: the /8");
	ok(m_addr(l, "192.0.2.127") && m_addr(l, "192.0.2.128"),
	    "adjacent /25s: both sides of the seam");
	ok(m_addr(l, "192.0.2.0") && m_addr(l, "192.0.2.255") &&
		!m_addr(l, "192.0.1.255") && !m_addr(l, "192.0.3.0"),
	    "adjacent /25s: outer boundaries");
	is_str(ex_addr(l, "192.0.2.200"), "192.0.2.128/25",
	    "explain after merging");
	ok(m_addr(l, "255.255.255.254") && m_addr(l, "255.255.255.255") &&
		!m_addr(l, "255.255.255.253"),
	    "ranges at the top of IPv4");
	ok(m_addr(l, "2001:db8:7fff:ffff:ffff:ffff:ffff:ffff") &&
		m_addr(l, "2001:db8:8000::") && !m_addr(l, "2001:db9::") &&
		!m_addr(l, "2001:db7::"),
	    "adjacent IPv6 /33s");
	is_str(ex_addr(l, "2001:db8::1"), "2001:db8::1",
	    "IPv6 explain: longest prefix");
	is_str(ex_addr(l, "2001:db8:8000::1"), "2001:db8:8000::/33",
	    "IPv6 explain: second /33");
	list_free(l);
}

/* Random networks against a linear scan of every entry. */
static void
test_client_brute(void)
{
	enum { N = 3000, PROBES = 30000 };
	struct {
		int	      v6;
		unsigned char a[16];
		int	      plen;
	} *e = calloc(N, sizeof(*e));
	struct list  *l = list_new(LIST_CLIENT);
	char	      text[INET6_ADDRSTRLEN + 8], buf[INET6_ADDRSTRLEN];
	unsigned char p[16];
	int	      i, j, k, want, bad = 0, badx = 0, refusedn = 0;
	int	      bits, full, best;

	for (i = 0; i < N; i++) {
		uint64_t r = rng();

		e[i].v6 = r & 1;
		memset(e[i].a, 0, 16);
		if (e[i].v6) {
			/* Cluster in 2001:db8::/32 so networks overlap. */
			e[i].a[0] = 0x20;
			e[i].a[1] = 0x01;
			e[i].a[2] = 0x0d;
			e[i].a[3] = 0xb8;
			for (k = 4; k < 16; k++)
				e[i].a[k] = (unsigned char)(rng() & 0x3);
			e[i].plen = 32 + (int)(rng() % 97);
		} else {
			e[i].a[0] = 10;
			for (k = 1; k < 4; k++)
				e[i].a[k] = (unsigned char)(rng() & 0x7);
			e[i].plen = 8 + (int)(rng() % 25);
		}
		inet_ntop(
		    e[i].v6 ? AF_INET6 : AF_INET, e[i].a, buf, sizeof(buf));
		snprintf(text, sizeof(text), "%s/%d", buf, e[i].plen);
		if (add(l, text) != 0)
			refusedn++;
	}
	list_finish(l);
	is_int(refusedn, 0, "brute force: random networks accepted");
	for (j = 0; j < PROBES; j++) {
		int v6 = rng() & 1;

		memset(p, 0, 16);
		if (v6) {
			p[0] = 0x20;
			p[1] = 0x01;
			p[2] = 0x0d;
			p[3] = (rng() & 7) == 0 ? 0xb9 : 0xb8;
			for (k = 4; k < 16; k++)
				p[k] = (unsigned char)(rng() & 0x3);
		} else {
			p[0] = (rng() & 7) == 0 ? 11 : 10;
			for (k = 1; k < 4; k++)
				p[k] = (unsigned char)(rng() & 0x7);
		}
		want = 0;
		best = -1;
		for (i = 0; i < N; i++) {
			if (e[i].v6 != v6)
				continue;
			bits = e[i].plen;
			full = bits / 8;
			if (memcmp(e[i].a, p, full) != 0)
				continue;
			if (bits % 8 != 0 &&
			    ((e[i].a[full] ^ p[full]) &
				(0xff << (8 - bits % 8)) & 0xff) != 0)
				continue;
			want = 1;
			if (bits > best)
				best = bits;
		}
		inet_ntop(v6 ? AF_INET6 : AF_INET, p, buf, sizeof(buf));
		if (m_addr(l, buf) != want) {
			if (bad++ < 5)
				printf(
				    "# %s: got %d want %d\n", buf, !want, want);
		}
		if (want) {
			const char *x = ex_addr(l, buf), *slash;

			slash = strchr(x, '/');
			k = slash ? atoi(slash + 1) : (v6 ? 128 : 32);
			if (k != best && badx++ < 5)
				printf("# explain %s: %s, want /%d\n", buf, x,
				    best);
		}
	}
	is_int(
	    bad, 0, "brute force: %d probes agree with a linear scan", PROBES);
	is_int(badx, 0, "brute force: explain gives the longest prefix");
	free(e);
	list_free(l);
}

static void
test_client_bad(void)
{
	struct list *l = list_new(LIST_CLIENT);
	char	     big[600];

	is_int(add(l, "10.0.0.300"), -1, "bad octet refused");
	is_str(err, "\"10.0.0.300\" is not an address or address/prefix",
	    "bad octet reason");
	refused(l, "10.0.0.0/33", "prefix length must be 0 to 32", "/33");
	refused(l, "2001:db8::/129", "prefix length must be 0 to 128", "/129");
	refused(l, "::ffff:10.0.0.0/129", "0 to 128", "mapped /129");
	refused(l, "10.0.0.0/", "not an address", "empty prefix");
	refused(l, "10.0.0.0/-1", "not an address", "negative prefix");
	refused(l, "10.0.0.0/2a", "not an address", "prefix with a letter");
	refused(l, "10.0.0.0/0024", "not an address", "four-digit prefix");
	refused(l, "10.0.0.0/8/8", "not an address", "two slashes");
	refused(l, "/24", "not an address", "prefix alone");
	refused(l, "10.1", "not an address", "short IPv4 form");
	refused(l, "example.com", "not an address", "host name");
	refused(l, "fe80::1%eth0", "not an address", "zone id");
	refused(l, "[2001:db8::1]", "not an address", "brackets");
	refused(l, "", "empty entry", "empty");
	refused(l, " 10.0.0.1", "whitespace", "leading space");
	refused(l, "10.0.0.1\n", "control character", "newline");
	refused(l, "10.0.0.1\r", "control character", "carriage return");
	refused(l,
	    "10.0.\x01"
	    "0.1",
	    "\\x01", "control shown as \\x01");
	ok(strchr(err, '\x01') == NULL, "no raw control byte in the reason");
	memset(big, '1', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	refused(l, big, "longer than 512 bytes", "600-byte entry");
	ok(strlen(err) < 120, "long entry cut in the reason");
	memset(big, '1', 512);
	big[512] = '\0';
	refused(l, big, "not an address", "512 bytes is not too long");
	is_int(list_add(l, "10.0.0.300", NULL, 0), -1, "NULL err buffer");
	list_finish(l);
	is_int(list_size(l), 0, "nothing added by bad entries");
	ok(!m_addr(l, "10.0.0.0"), "empty list matches nothing");
	list_free(l);
}

static void
test_client_misc(void)
{
	struct list	  *c = list_new(LIST_CLIENT), *h = list_new(LIST_HELO);
	struct sockaddr_un un;

	add(c, "0.0.0.0/0");
	add(c, "::/0");
	add(h, "mx.example.com");
	list_finish(c);
	list_finish(h);
	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	ok(!list_match_addr(c, (struct sockaddr *)&un),
	    "AF_UNIX never matches");
	ok(!list_match_addr(c, NULL), "NULL address never matches");
	ok(!list_match_addr(h, sa("192.0.2.1")), "match_addr on a HELO list");
	ok(!list_match_name(c, "192.0.2.1"), "match_name on a client list");
	ok(!list_explain(c, "192.0.2.1", NULL, why, sizeof(why)),
	    "explain on a client list needs the sockaddr");
	ok(!list_match_name(h, NULL), "NULL name never matches");
	why[0] = 'Z';
	ok(list_explain(c, NULL, sa("1.2.3.4"), why, 0) && why[0] == 'Z',
	    "explain with buflen 0 matches, writes nothing");
	ok(list_explain(c, NULL, sa("192.0.2.1"), why, 5) &&
		strcmp(why, "0.0.") == 0,
	    "explain truncates to buflen");
	ok(list_explain(c, NULL, sa("192.0.2.1"), NULL, 0),
	    "explain with a NULL buffer");
	list_finish(c);
	ok(m_addr(c, "192.0.2.1"), "list_finish twice is harmless");
	list_free(c);
	list_free(h);
	list_free(NULL);
}

/* --------------------------------------------------------------- HELO */

static void
test_helo(void)
{
	static const char *const entries[] = { "mx.example.com", ".example.net",
		"[192.0.2.1]", "[IPv6:2001:DB8::1]", "Mail.Example.ORG.",
		"2001:db8::25", "a#b", NULL };
	struct list		*l = list_new(LIST_HELO);
	char			 big[400];
	int			 i;

	is_int(list_kind(l), LIST_HELO, "kind is LIST_HELO");
	is_int(add_all(l, entries), 0, "HELO entries accepted");
	list_finish(l);
	is_int(list_size(l), 7, "seven HELO entries");
	ok(list_match_name(l, "mx.example.com"), "exact HELO name");
	ok(list_match_name(l, "MX.Example.COM"), "HELO name, other case");
	ok(list_match_name(l, "mx.example.com."), "HELO name, trailing dot");
	ok(!list_match_name(l, "a.mx.example.com"), "exact is not a suffix");
	ok(!list_match_name(l, "example.com"), "exact is not a parent");
	ok(!list_match_name(l, "mx.example.com.."), "only one dot ignored");
	ok(list_match_name(l, "x.example.net"), "subdomain entry, one below");
	ok(list_match_name(l, "a.b.c.example.net"), "subdomain, deep");
	ok(list_match_name(l, "X.EXAMPLE.NET."), "subdomain, case and dot");
	ok(!list_match_name(l, "example.net"), "subdomain entry: not itself");
	ok(!list_match_name(l, "example.net."), "not itself, trailing dot");
	ok(!list_match_name(l, "xexample.net"), "suffix on a label boundary");
	ok(list_match_name(l, "[192.0.2.1]"), "address literal");
	ok(!list_match_name(l, "192.0.2.1"), "literal needs brackets");
	ok(!list_match_name(l, "[192.0.2.10]"), "other literal");
	ok(list_match_name(l, "[ipv6:2001:db8::1]"), "IPv6 literal, case");
	ok(!list_match_name(l, "[IPv6:2001:db8::0:1]"),
	    "literals compared as text");
	ok(list_match_name(l, "mail.example.org"), "entry with trailing dot");
	ok(list_match_name(l, "2001:DB8::25"), "bare IPv6 HELO name");
	ok(list_match_name(l, "A#B"), "'#' is part of an entry");
	ok(!list_match_name(l, ""), "empty HELO");
	ok(!list_match_name(l, "."), "HELO \".\"");

	is_str(ex_name(l, "a.b.example.net"), ".example.net",
	    "explain a subdomain match");
	is_str(ex_name(l, "MX.example.com."), "mx.example.com",
	    "explain an exact match, normalised");
	is_str(ex_name(l, "Mail.example.org"), "mail.example.org",
	    "explain strips the entry's trailing dot");
	is_str(ex_name(l, "[IPv6:2001:db8::1]"), "[ipv6:2001:db8::1]",
	    "explain a literal, lowercased");
	is_str(ex_name(l, "nope.example.com"), "(no match)", "explain miss");
	list_free(l);

	l = list_new(LIST_HELO);
	add(l, ".com");
	add(l, ".example.com");
	add(l, "example.com");
	list_finish(l);
	is_str(ex_name(l, "a.b.example.com"), ".example.com",
	    "explain the longest subdomain entry");
	is_str(ex_name(l, "example.com"), "example.com",
	    "exact wins over a subdomain entry");
	is_str(ex_name(l, "example.org.com"), ".com", "top-level suffix");
	list_free(l);

	/* 127 labels: the most a domain has, and what the walk covers. */
	l = list_new(LIST_HELO);
	strcpy(big, ".");
	for (i = 0; i < 126; i++)
		strcat(big, "a.");
	strcat(big, "com");
	ok(add(l, big) == 0, "subdomain entry with 127 labels accepted");
	list_finish(l);
	big[0] = 'x';
	memmove(big + 2, big + 1, strlen(big));
	big[1] = '.';
	ok(list_match_name(l, big), "name 128 labels deep matches it");
	list_free(l);
	l = list_new(LIST_HELO);
	strcpy(big, ".");
	for (i = 0; i < 127; i++)
		strcat(big, "a.");
	strcat(big, "com");
	refused(l, big, "more than 127 labels", "128 labels");
	list_free(l);

	l = list_new(LIST_HELO);
	refused(l, "mx..example.com", "empty label", "HELO empty label");
	refused(l, ".", "empty domain", "HELO \".\"");
	refused(l, "..example.com", "empty label", "HELO \"..x\"");
	refused(l, "[192.0.2.1", "closing ]", "unclosed literal");
	refused(l, ".[192.0.2.1]", "empty label", "subdomain of a literal");
	refused(l, "mx example.com", "whitespace", "HELO with a space");
	refused(l, "mx\texample.com", "control", "HELO with a tab");
	refused(l, "<mx.example.com>", "bad character", "HELO in <>");
	refused(l, "mx.example.com..", "empty label", "two trailing dots");
	list_free(l);
}

/* ---------------------------------------------------- sender/recipient */

static void
test_sender(void)
{
	static const char *const entries[] = { "User@Example.com",
		"example.net", ".example.org", "postmaster@", "<>",
		"\"a b\"@example.com", "abuse@example.edu.", "[192.0.2.1]",
		"\"x@y\"@example.com", "\"q@r\"@", NULL };
	struct list		*l = list_new(LIST_SENDER);

	is_int(list_kind(l), LIST_SENDER, "kind is LIST_SENDER");
	is_int(add_all(l, entries), 0, "sender entries accepted");
	list_finish(l);
	is_int(list_size(l), 10, "ten sender entries");

	ok(list_match_name(l, "user@example.com"), "exact address");
	ok(list_match_name(l, "USER@EXAMPLE.COM"), "exact address, upper case");
	ok(list_match_name(l, "user@example.com."), "exact, trailing dot");
	ok(!list_match_name(l, "other@example.com"), "other local part");
	ok(!list_match_name(l, "user@sub.example.com"), "exact, subdomain");
	ok(!list_match_name(l, "user@example.co"), "exact, shorter domain");
	ok(list_match_name(l, "anyone@example.net"), "domain entry");
	ok(list_match_name(l, "Anyone@EXAMPLE.NET."), "domain, case and dot");
	ok(!list_match_name(l, "x@sub.example.net"), "domain: not subdomains");
	ok(list_match_name(l, "x@sub.example.org"), "subdomain entry");
	ok(list_match_name(l, "x@a.b.example.org"), "subdomain entry, deep");
	ok(!list_match_name(l, "x@example.org"), "subdomain: not the domain");
	ok(!list_match_name(l, "x@xexample.org"), "subdomain: label boundary");
	ok(list_match_name(l, "postmaster@anywhere.test"), "local part entry");
	ok(list_match_name(l, "PostMaster@anywhere.test"), "local part, case");
	ok(list_match_name(l, "postmaster"), "no @: a local part");
	ok(!list_match_name(l, "user"), "no @: not an exact address");
	ok(!list_match_name(l, "example.net"), "no @: not a domain");
	ok(list_match_name(l, ""), "null sender");
	ok(!list_match_name(l, "<>"), "\"<>\" is not the null sender");
	ok(list_match_name(l, "\"A B\"@example.com"), "quoted local part");
	ok(!list_match_name(l, "\"a  b\"@example.com"),
	    "quoted compared as is");
	ok(!list_match_name(l, "a b@example.com"), "quotes are part of it");
	ok(list_match_name(l, "abuse@example.edu"), "entry's dot dropped");
	ok(list_match_name(l, "x@[192.0.2.1]"), "address literal domain");
	ok(list_match_name(l, "\"X@Y\"@example.com"), "@ inside quotes");
	ok(list_match_name(l, "\"q@r\"@x.test"), "quoted local part entry");
	ok(list_match_name(l, "\"q@r\""), "quoted local part, no domain");
	ok(!list_match_name(l, "user@"), "\"user@\" is not user@example.com");

	is_str(ex_name(l, ""), "<>", "explain the null sender");
	is_str(ex_name(l, "USER@example.com."), "user@example.com",
	    "explain an exact address");
	is_str(ex_name(l, "x@a.b.example.org"), ".example.org",
	    "explain a subdomain");
	is_str(ex_name(l, "postmaster@x.test"), "postmaster@",
	    "explain a local part");
	is_str(
	    ex_name(l, "Any@Example.NET"), "example.net", "explain a domain");
	is_str(ex_name(l, "\"A B\"@example.com"), "\"a b\"@example.com",
	    "explain a quoted address");
	list_free(l);

	/* Most specific first, and a list without "<>". */
	l = list_new(LIST_SENDER);
	add(l, "user@");
	add(l, ".com");
	add(l, "example.com");
	add(l, "user@example.com");
	add(l, ".example.com");
	list_finish(l);
	is_str(ex_name(l, "user@example.com"), "user@example.com",
	    "exact address first");
	is_str(
	    ex_name(l, "other@example.com"), "example.com", "then the domain");
	is_str(ex_name(l, "user@a.example.com"), ".example.com",
	    "then the longest subdomain entry");
	is_str(ex_name(l, "user@example.org"), "user@", "then the local part");
	ok(!list_match_name(l, ""), "no \"<>\" entry: null sender misses");
	list_free(l);
}

/* Lookups that try to slip past a domain entry. */
static void
test_sender_evasion(void)
{
	struct list *l = list_new(LIST_SENDER);
	char	    *name;
	size_t	     i, n;

	add(l, "example.com");
	add(l, ".example.org");
	list_finish(l);
	ok(list_match_name(l, "\"x@example.com"),
	    "unbalanced quote keeps the domain");
	ok(list_match_name(l, "a\"@\"b@example.com"), "quoted @ then domain");

	name = malloc(5000);
	memset(name, 'a', 4000);
	strcpy(name + 4000, "@example.com");
	ok(list_match_name(l, name), "4000-byte local part");
	memcpy(name, "x@", 2);
	for (n = 2, i = 0; i < 400; i++) {
		memcpy(name + n, "a.", 2);
		n += 2;
	}
	strcpy(name + n, "example.org");
	ok(list_match_name(l, name), "400 labels below .example.org");
	memset(name, 'b', 3000);
	strcpy(name + 3000, ".example.org");
	ok(list_match_name(l, name) == 0, "long name without @: local part");
	free(name);
	list_free(l);
}

static void
test_sender_bad(void)
{
	struct list *l = list_new(LIST_SENDER);

	refused(l, "@example.com", "without @", "\"@domain\"");
	refused(l, "<user@example.com>", "without <>", "\"<address>\"");
	refused(l, "\"unterminated@example.com", "unterminated", "open quote");
	refused(l, "a b@example.com", "whitespace", "space outside quotes");
	refused(l, "user@exa mple.com", "whitespace", "space in domain");
	refused(l, "user@\"a b\"", "bad character", "quoted domain");
	refused(l, "user@@example.com", "local part", "two @");
	refused(l, "user@.example.com", "empty label", "\"user@.domain\"");
	refused(l, "..example.com", "empty label", "\"..domain\"");
	refused(l, "example..com", "empty label", "empty label");
	refused(l, "user@example.com..", "empty label", "two trailing dots");
	refused(l, ".", "empty domain", "\".\"");
	refused(l, "@", "without @", "\"@\"");
	refused(l, "a\"b\"@x.test", "local part", "quote inside a local part");
	refused(l, "\"a\"b@x.test", "quoted whole", "quote then more");
	refused(l, "\"a\\\"@x.test", "unterminated", "escaped closing quote");
	refused(l, "\"a\tb\"@x.test", "control", "tab inside quotes");
	refused(l, "\"a\\\x01\"@x.test", "control", "escaped control char");
	refused(l, "user@[192.0.2.1", "closing ]", "unclosed literal");
	refused(l, "user@exa(mple).com", "bad character", "comment in domain");
	refused(l, "<>x", "bad character", "\"<>\" plus more");
	list_finish(l);
	is_int(list_size(l), 0, "nothing added by bad sender entries");
	list_free(l);
}

static void
test_recipient(void)
{
	struct list *l = list_new(LIST_RECIPIENT);

	is_int(list_kind(l), LIST_RECIPIENT, "kind is LIST_RECIPIENT");
	ok(add(l, "Sales@Example.COM") == 0 && add(l, "example.net") == 0 &&
		add(l, ".example.org") == 0 && add(l, "abuse@") == 0,
	    "recipient entries accepted");
	ok(add(l, "sales@example.com.") == 0 && add(l, "EXAMPLE.NET") == 0,
	    "duplicate entries accepted");
	list_finish(l);
	is_int(list_size(l), 4, "duplicates counted once");
	ok(list_match_name(l, "sales@example.com") &&
		list_match_name(l, "x@example.net") &&
		list_match_name(l, "x@y.example.org") &&
		list_match_name(l, "abuse@z.test") &&
		list_match_name(l, "abuse"),
	    "recipient forms match");
	ok(!list_match_name(l, "x@example.com") &&
		!list_match_name(l, "x@example.org") && !list_match_name(l, ""),
	    "recipient misses");
	list_free(l);
}

/* --------------------------------------------------------------- files */

struct errs {
	int  n;
	int  line[16];
	char reason[16][256];
};

static void
collect(void *arg, const char *file, int line, const char *reason)
{
	struct errs *e = arg;

	if (e->n < 16) {
		e->line[e->n] = line;
		snprintf(e->reason[e->n], sizeof(e->reason[0]), "%s", reason);
	}
	e->n++;
}

/* Write len bytes to a new temporary file; its path goes to path. */
static void
tmpfile_with(char *path, size_t pathsz, const char *data, size_t len)
{
	const char *dir = getenv("TMPDIR");
	int	    fd;

	snprintf(path, pathsz, "%s/test_lists.XXXXXX", dir ? dir : "/tmp");
	if ((fd = mkstemp(path)) == -1 ||
	    write(fd, data, len) != (ssize_t)len || close(fd) == -1) {
		printf("# %s: %s\n", path, strerror(errno));
		abort();
	}
}

static void
test_file_client(void)
{
	static const char data[] = "\xef\xbb\xbf# client list\n"
				   "\n"
				   "  192.0.2.1  \r\n"
				   "10.0.0.0/8 # trailing comment\r\n"
				   "bogus\n"
				   "2001:db8::/32\t#tab then comment\n"
				   "300.1.1.1\n"
				   "   # indented comment\n"
				   "\t\r\n"
				   "192.0.2.9\0junk\n"
				   "198.51.100.7";
	char		  path[256];
	struct errs	  e;
	struct list	 *l = list_new(LIST_CLIENT);
	int		  rc;

	memset(&e, 0, sizeof(e));
	tmpfile_with(path, sizeof(path), data, sizeof(data) - 1);
	rc = list_load_file(l, path, collect, &e);
	is_int(rc, 3, "client file: three bad lines");
	is_int(e.n, 3, "client file: three reports");
	is_int(e.line[0], 5, "first bad line number");
	is_str(e.reason[0], "\"bogus\" is not an address or address/prefix",
	    "first bad line reason");
	is_int(e.line[1], 7, "second bad line number");
	is_int(e.line[2], 10, "NUL line number");
	ok(strstr(e.reason[2], "NUL") != NULL, "NUL line reason");
	list_finish(l);
	is_int(list_size(l), 4, "client file: four entries");
	ok(m_addr(l, "192.0.2.1"), "file: trimmed line with CRLF");
	ok(m_addr(l, "10.200.0.1"), "file: entry before a comment");
	ok(m_addr(l, "2001:db8::99"), "file: entry before a tab comment");
	ok(m_addr(l, "198.51.100.7"), "file: last line without newline");
	ok(!m_addr(l, "192.0.2.9"), "file: NUL line not added");
	unlink(path);
	list_free(l);
}

static void
test_file_names(void)
{
	static const char helo[] = "mx.example.com\n"
				   "a#b # comment\n"
				   "#only comment\n"
				   ".example.net # comment\n"
				   "bad..name\n";
	static const char sender[] = "\"a #b\"@example.com # comment\r\n"
				     "<>\n"
				     "example.org\n"
				     "\"open # quote@example.com\n";
	char		  path[256];
	struct errs	  e;
	struct list	 *l;

	memset(&e, 0, sizeof(e));
	l = list_new(LIST_HELO);
	tmpfile_with(path, sizeof(path), helo, sizeof(helo) - 1);
	is_int(list_load_file(l, path, collect, &e), 1, "HELO file: one error");
	is_int(e.line[0], 5, "HELO file: bad line number");
	ok(strstr(e.reason[0], "empty label") != NULL, "HELO file: reason");
	list_finish(l);
	is_int(list_size(l), 3, "HELO file: three entries");
	ok(list_match_name(l, "a#b"), "HELO file: '#' inside a word kept");
	ok(list_match_name(l, "x.example.net"), "HELO file: suffix entry");
	unlink(path);
	list_free(l);

	memset(&e, 0, sizeof(e));
	l = list_new(LIST_SENDER);
	tmpfile_with(path, sizeof(path), sender, sizeof(sender) - 1);
	is_int(list_load_file(l, path, collect, &e), 1, "sender file: 1 error");
	is_int(e.line[0], 4, "sender file: unterminated quote line");
	list_finish(l);
	ok(list_match_name(l, "\"A #B\"@example.com"),
	    "sender file: '#' inside quotes kept");
	ok(list_match_name(l, "") && list_match_name(l, "x@example.org"),
	    "sender file: null sender and domain");
	unlink(path);
	list_free(l);
}

static void
test_file_errors(void)
{
	struct errs  e;
	struct list *l = list_new(LIST_CLIENT);
	char	     path[256];
	const char  *dir = getenv("TMPDIR");

	memset(&e, 0, sizeof(e));
	is_int(list_load_file(l, "/nonexistent/moat/list", collect, &e), 1,
	    "missing file: one error");
	is_int(e.line[0], 0, "missing file: line 0");
	is_str(e.reason[0], strerror(ENOENT), "missing file: strerror");
	memset(&e, 0, sizeof(e));
	snprintf(path, sizeof(path), "%s", dir ? dir : "/tmp");
	ok(list_load_file(l, path, collect, &e) >= 1 && e.line[0] == 0,
	    "a directory is reported with line 0");
	is_int(list_load_file(l, "/nonexistent/moat/list", NULL, NULL), 1,
	    "NULL errf still counts");
	tmpfile_with(path, sizeof(path), "", 0);
	is_int(list_load_file(l, path, collect, &e), 0, "empty file is fine");
	unlink(path);
	list_finish(l);
	is_int(list_size(l), 0, "no entries");
	list_free(l);
}

/* ----------------------------------------------------------- big lists */

static void
test_big(void)
{
	enum { N = 100000, SAMPLE = 20000 };
	struct list    *c = list_new(LIST_CLIENT), *s = list_new(LIST_SENDER);
	struct list    *h = list_new(LIST_HELO);
	uint32_t       *v4 = malloc(N * sizeof(*v4));
	uint64_t       *v6 = malloc(N / 10 * sizeof(*v6));
	uint32_t       *dom = malloc(N * sizeof(*dom));
	char		text[128], buf[INET6_ADDRSTRLEN];
	unsigned char	b6[16];
	struct in_addr	in;
	struct timespec t0;
	int		i, refusedn = 0, miss = 0, fp = 0;

	/* Even IPv4 addresses and 2001:db8::<even>; probes use odd ones. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < N; i++) {
		v4[i] = (uint32_t)rng() & ~(uint32_t)1;
		in.s_addr = htonl(v4[i]);
		inet_ntop(AF_INET, &in, buf, sizeof(buf));
		snprintf(text, sizeof(text), "%s/32", buf);
		refusedn += add(c, text) != 0;
		if (i < N / 10) {
			v6[i] = rng() & ~(uint64_t)1;
			snprintf(text, sizeof(text), "2001:db8::%x:%x:%x:%x",
			    (unsigned)(v6[i] >> 48) & 0xffff,
			    (unsigned)(v6[i] >> 32) & 0xffff,
			    (unsigned)(v6[i] >> 16) & 0xffff,
			    (unsigned)v6[i] & 0xffff);
			refusedn += add(c, text) != 0;
		}
	}
	list_finish(c);
	printf("# %d IPv4 + %d IPv6 entries loaded in %.1f ms\n", N, N / 10,
	    ms_since(&t0));
	is_int(refusedn, 0, "big client list: all accepted");
	ok(list_size(c) > N && list_size(c) <= N + N / 10,
	    "big client list: size %zu", list_size(c));
	for (i = 0; i < N; i++) {
		struct sockaddr_in s4;

		memset(&s4, 0, sizeof(s4));
		s4.sin_family = AF_INET;
		s4.sin_addr.s_addr = htonl(v4[i]);
		miss += !list_match_addr(c, (struct sockaddr *)&s4);
		if (i < SAMPLE) {
			s4.sin_addr.s_addr = htonl(v4[i] | 1);
			fp += list_match_addr(c, (struct sockaddr *)&s4);
		}
	}
	is_int(miss, 0, "big client list: every IPv4 entry matches");
	is_int(fp, 0, "big client list: odd IPv4 neighbours miss");
	miss = fp = 0;
	for (i = 0; i < N / 10; i++) {
		struct sockaddr_in6 s6;
		int		    k;

		memset(&s6, 0, sizeof(s6));
		s6.sin6_family = AF_INET6;
		memset(b6, 0, 16);
		b6[0] = 0x20;
		b6[1] = 0x01;
		b6[2] = 0x0d;
		b6[3] = 0xb8;
		for (k = 0; k < 8; k++)
			b6[15 - k] = (unsigned char)(v6[i] >> (8 * k));
		memcpy(&s6.sin6_addr, b6, 16);
		miss += !list_match_addr(c, (struct sockaddr *)&s6);
		s6.sin6_addr.s6_addr[15] |= 1;
		fp += list_match_addr(c, (struct sockaddr *)&s6);
	}
	is_int(miss, 0, "big client list: every IPv6 entry matches");
	is_int(fp, 0, "big client list: odd IPv6 neighbours miss");

	/* Domains, subdomain entries and addresses; HELO names. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	refusedn = 0;
	for (i = 0; i < N; i++) {
		dom[i] = (uint32_t)rng();
		snprintf(text, sizeof(text), "d%08x-%d.example", dom[i], i);
		refusedn += add(s, text) != 0;
		snprintf(text, sizeof(text), ".s%08x-%d.example", dom[i], i);
		refusedn += add(s, text) != 0;
		snprintf(text, sizeof(text), "u%d@a%08x.example", i, dom[i]);
		refusedn += add(s, text) != 0;
		snprintf(text, sizeof(text), "h%08x-%d.Example.", dom[i], i);
		refusedn += add(h, text) != 0;
	}
	list_finish(s);
	list_finish(h);
	printf("# %d sender + %d HELO entries loaded in %.1f ms\n", 3 * N, N,
	    ms_since(&t0));
	is_int(refusedn, 0, "big name lists: all accepted");
	is_int(list_size(s), 3 * N, "big sender list size");
	is_int(list_size(h), N, "big HELO list size");
	miss = fp = 0;
	for (i = 0; i < N; i++) {
		snprintf(text, sizeof(text), "x@D%08x-%d.example", dom[i], i);
		miss += !list_match_name(s, text);
		snprintf(
		    text, sizeof(text), "x@y.s%08x-%d.example.", dom[i], i);
		miss += !list_match_name(s, text);
		snprintf(text, sizeof(text), "U%d@a%08x.example", i, dom[i]);
		miss += !list_match_name(s, text);
		snprintf(text, sizeof(text), "h%08x-%d.example", dom[i], i);
		miss += !list_match_name(h, text);
		if (i >= SAMPLE)
			continue;
		snprintf(text, sizeof(text), "x@e%08x-%d.example", dom[i], i);
		fp += list_match_name(s, text);
		snprintf(text, sizeof(text), "x@s%08x-%d.example", dom[i], i);
		fp += list_match_name(s, text);
		snprintf(
		    text, sizeof(text), "u%d@a%08x.example", i + 1, dom[i]);
		fp += list_match_name(s, text);
		snprintf(text, sizeof(text), "x.h%08x-%d.example", dom[i], i);
		fp += list_match_name(h, text);
	}
	is_int(miss, 0, "big name lists: every entry matches");
	is_int(fp, 0, "big name lists: non-entries miss");
	snprintf(text, sizeof(text), "x@a.b.s%08x-%d.example", dom[7], 7);
	snprintf(buf, sizeof(buf), ".s%08x-%d.example", dom[7], 7);
	is_str(ex_name(s, text), buf, "big list explain");
	free(v4);
	free(v6);
	free(dom);
	list_free(c);
	list_free(s);
	list_free(h);
}

int
main(void)
{
	test_client_forms();
	test_client_prefixes();
	test_client_merge();
	test_client_brute();
	test_client_bad();
	test_client_misc();
	test_helo();
	test_sender();
	test_sender_evasion();
	test_sender_bad();
	test_recipient();
	test_file_client();
	test_file_names();
	test_file_errors();
	test_big();
	return tap_done();
}
