/*
 * fuzz_lists.c - libFuzzer target for policies/lists.c.
 *
 * The input, split into lines, is added to one list of each kind (every
 * line to every list), and loaded again from a memfd through
 * list_load_file(). Then, for every line:
 *   - it is looked up as a name and as a numeric address in every list;
 *   - if a list accepted it, names derived from it must match (the entry
 *     itself, a subdomain, an address at the domain, ...);
 *   - every match must be explained, and the explanation, added to a
 *     fresh list of the same kind, must match the same thing again;
 *   - client lists must agree with a linear scan of the accepted networks
 *     on the entry's first and last address and their neighbours.
 * Both loads must give lists of the same size. A broken invariant calls
 * abort().
 *
 *	clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE \
 *	    -Iproxy -Ipolicies tests/fuzz/fuzz_lists.c policies/lists.c \
 *	    proxy/util.c proxy/log.c -levent -o fuzz_lists
 *	./fuzz_lists tests/fuzz/corpus/lists
 *
 * Single-threaded; no state survives between inputs.
 */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lists.h"
#include "fuzz.h"

#define MAX_LINES 64

/* An accepted client entry, parsed independently of lists.c. */
struct net {
	int	      v4; /* IPv4, or IPv4-mapped with a prefix >= 96 */
	unsigned char a[16];
	int	      plen; /* in the 128-bit space */
};

/* Numeric address (optionally /prefix) as 16 bytes and a v4 flag. */
static int
parse_net(const char *s, struct net *n)
{
	char	       buf[600], *slash;
	struct in_addr in;
	int	       plen = -1, i;

	if (strlen(s) >= sizeof(buf))
		return -1;
	strcpy(buf, s);
	if ((slash = strchr(buf, '/')) != NULL) {
		*slash++ = '\0';
		plen = atoi(slash);
	}
	memset(n, 0, sizeof(*n));
	if (inet_pton(AF_INET, buf, &in) == 1) {
		n->a[10] = n->a[11] = 0xff;
		memcpy(n->a + 12, &in, 4);
		n->v4 = 1;
		n->plen = 96 + (plen == -1 ? 32 : plen);
	} else if (inet_pton(AF_INET6, buf, n->a) == 1) {
		n->plen = plen == -1 ? 128 : plen;
		n->v4 = memcmp(n->a, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0 &&
		    n->plen >= 96;
	} else
		return -1;
	for (i = n->plen; i < 128; i++)
		n->a[i / 8] &= (unsigned char)~(0x80 >> (i % 8));
	return 0;
}

static int
net_has(const struct net *n, const unsigned char a[16], int v4)
{
	int i;

	if (n->v4 != v4)
		return 0;
	for (i = 0; i < n->plen; i++)
		if (((n->a[i / 8] ^ a[i / 8]) & (0x80 >> (i % 8))) != 0)
			return 0;
	return 1;
}

static const struct sockaddr *
to_sa(const unsigned char a[16], struct sockaddr_in6 *s6)
{
	memset(s6, 0, sizeof(*s6));
	s6->sin6_family = AF_INET6;
	memcpy(&s6->sin6_addr, a, 16);
	return (const struct sockaddr *)s6;
}

/* The explanation of a match must itself match the same thing. */
static void
check_explain(enum list_kind kind, const struct list *l, const char *name,
    const struct sockaddr *sa)
{
	struct list *again;
	char	     why[600], err[512];

	why[0] = '\0';
	CHECK(list_explain(l, name, sa, why, sizeof(why)) == 1);
	CHECK(why[0] != '\0' && strlen(why) <= 520);
	again = list_new(kind);
	CHECK(list_add(again, why, err, sizeof(err)) == 0);
	list_finish(again);
	if (kind == LIST_CLIENT)
		CHECK(list_match_addr(again, sa) == 1);
	else
		CHECK(list_match_name(again, name) == 1);
	list_free(again);
}

static void
probe_name(enum list_kind kind, const struct list *l, const char *name)
{
	int m = list_match_name(l, name);

	CHECK(m == 0 || m == 1);
	CHECK(list_explain(l, name, NULL, NULL, 0) == m);
	if (m)
		check_explain(kind, l, name, NULL);
}

/*
 * Input list_load_file reads exactly as list_add does, line by line: no
 * comments, no whitespace to trim, no NUL, no BOM, not too many lines.
 */
static int
plain_input(const uint8_t *data, size_t size)
{
	size_t i, lines = 0;

	if (size >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0)
		return 0;
	for (i = 0; i < size; i++) {
		if (data[i] == '\n')
			lines++;
		else if (data[i] == '#' || data[i] == '\0' || data[i] == ' ' ||
		    data[i] == '\t' || data[i] == '\r' || data[i] == '\v' ||
		    data[i] == '\f')
			return 0;
	}
	return lines < MAX_LINES;
}

/* Names an accepted name entry must match. */
static void
derived_names(enum list_kind kind, const struct list *l, const char *e)
{
	char   name[1200];
	size_t len = strlen(e);

	if (kind == LIST_HELO) {
		if (e[0] == '.')
			snprintf(name, sizeof(name), "x%s", e);
		else
			snprintf(name, sizeof(name), "%s", e);
		CHECK(list_match_name(l, name) == 1);
		probe_name(kind, l, name);
		return;
	}
	if (strcmp(e, "<>") == 0)
		snprintf(name, sizeof(name), "%s", "");
	else if (e[len - 1] == '@')
		snprintf(name, sizeof(name), "%sExample.ORG", e);
	else if (strchr(e, '@') != NULL)
		snprintf(name, sizeof(name), "%s", e);
	else if (e[0] == '.')
		snprintf(name, sizeof(name), "u@x%s", e);
	else
		snprintf(name, sizeof(name), "u@%s", e);
	CHECK(list_match_name(l, name) == 1);
	probe_name(kind, l, name);
}

static int
load_memfd(struct list *l, const uint8_t *data, size_t size)
{
	char path[64];
	int  fd, n;

	if ((fd = memfd_create("fuzz_lists", 0)) == -1)
		return -1;
	if (size > 0 && write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return -1;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = list_load_file(l, path, NULL, NULL);
	close(fd);
	return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct list	   *l[LIST_KIND_COUNT], *f[LIST_KIND_COUNT];
	char		   *line[MAX_LINES], err[512];
	int		    accepted[LIST_KIND_COUNT][MAX_LINES];
	struct net	    nets[MAX_LINES], probe;
	struct sockaddr_in6 s6;
	unsigned char	    a[16];
	size_t		    start, end, nlines = 0, i, j, nnets = 0;
	int		    k, m, want, d, bit, ferrs[LIST_KIND_COUNT], plain;
	int		    bad;

	if (size > 16384)
		return 0;
	for (start = 0; start < size && nlines < MAX_LINES; start = end + 1) {
		for (end = start; end < size && data[end] != '\n'; end++)
			;
		line[nlines] = strndup((const char *)data + start, end - start);
		CHECK(line[nlines] != NULL);
		nlines++;
	}

	for (k = 0; k < LIST_KIND_COUNT; k++) {
		l[k] = list_new((enum list_kind)k);
		CHECK(list_kind(l[k]) == (enum list_kind)k);
		for (i = 0; i < nlines; i++) {
			err[0] = '\0';
			accepted[k][i] =
			    list_add(l[k], line[i], err, sizeof(err)) == 0;
			if (!accepted[k][i])
				CHECK(err[0] != '\0' &&
				    strchr(err, '\n') == NULL &&
				    strchr(err, '\r') == NULL);
		}
		list_finish(l[k]);
		f[k] = list_new((enum list_kind)k);
		ferrs[k] = load_memfd(f[k], data, size);
		list_finish(f[k]);
	}

	/* A plain file loads the same entries and refuses the same lines
	 * (less the blank ones, which a file may have). */
	plain = plain_input(data, size) && ferrs[0] != -1;
	for (k = 0; plain && k < LIST_KIND_COUNT; k++) {
		for (bad = 0, i = 0; i < nlines; i++)
			bad += !accepted[k][i] && line[i][0] != '\0';
		CHECK(ferrs[k] == bad);
		CHECK(list_size(f[k]) == list_size(l[k]));
	}

	for (i = 0; i < nlines; i++) {
		if (!accepted[LIST_CLIENT][i])
			continue;
		CHECK(parse_net(line[i], &nets[nnets]) == 0);
		nnets++;
	}
	CHECK(list_size(l[LIST_CLIENT]) <= nnets);

	for (i = 0; i < nlines; i++) {
		for (k = 0; k < LIST_KIND_COUNT; k++) {
			if (k == LIST_CLIENT) {
				CHECK(list_match_name(l[k], line[i]) == 0);
				continue;
			}
			probe_name((enum list_kind)k, l[k], line[i]);
			probe_name((enum list_kind)k, f[k], line[i]);
			if (plain)
				CHECK(list_match_name(l[k], line[i]) ==
				    list_match_name(f[k], line[i]));
			if (accepted[k][i])
				derived_names((enum list_kind)k, l[k], line[i]);
		}
	}

	/* Client list against a linear scan, at and around each network. */
	for (j = 0; j < nnets; j++) {
		for (d = 0; d < 4; d++) {
			memcpy(a, nets[j].a, 16);
			for (bit = nets[j].plen; d >= 2 && bit < 128; bit++)
				a[bit / 8] |=
				    (unsigned char)(0x80 >> (bit % 8));
			/* d = 0: first, 1: first - 1, 2: last, 3: last + 1 */
			if (d == 1 || d == 3) {
				for (k = 15; k >= 0; k--) {
					a[k] = (unsigned char)(a[k] +
					    (d == 1 ? -1 : 1));
					if (a[k] != (d == 1 ? 0xff : 0x00))
						break;
				}
			}
			memset(&probe, 0, sizeof(probe));
			probe.v4 =
			    memcmp(a, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0;
			want = 0;
			for (i = 0; i < nnets; i++)
				want |= net_has(&nets[i], a, probe.v4);
			m = list_match_addr(l[LIST_CLIENT], to_sa(a, &s6));
			CHECK(m == want);
			if (plain)
				CHECK(list_match_addr(
					  f[LIST_CLIENT], to_sa(a, &s6)) == m);
			if (m)
				check_explain(LIST_CLIENT, l[LIST_CLIENT], NULL,
				    to_sa(a, &s6));
			for (k = LIST_HELO; k < LIST_KIND_COUNT; k++)
				CHECK(
				    list_match_addr(l[k], to_sa(a, &s6)) == 0);
		}
	}

	for (k = 0; k < LIST_KIND_COUNT; k++) {
		list_free(l[k]);
		list_free(f[k]);
	}
	for (i = 0; i < nlines; i++)
		free(line[i]);
	return 0;
}
