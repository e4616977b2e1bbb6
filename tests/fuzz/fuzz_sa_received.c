/*
 * fuzz_sa_received.c - libFuzzer target for filters/spam/sa_received.c.
 *
 * The input is split on NUL bytes into up to 50 Received field values:
 * each is parsed alone (a relay's fields must be NUL-terminated within
 * their arrays), then the whole list is walked as a trail, with and
 * without a session relay and configured networks, and written as
 * pseudo-header text into a small and a large buffer (NUL-terminated,
 * length as returned). A broken invariant calls abort().
 *
 *	bash tests/fuzz/run.sh
 *
 * Single-threaded; no state survives between inputs.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "sa_received.h"
#include "fuzz.h"

static void
check_relay(const struct sa_relay *r)
{
	CHECK(memchr(r->ip, '\0', sizeof(r->ip)) != NULL);
	CHECK(memchr(r->rdns, '\0', sizeof(r->rdns)) != NULL);
	CHECK(memchr(r->helo, '\0', sizeof(r->helo)) != NULL);
	CHECK(memchr(r->by, '\0', sizeof(r->by)) != NULL);
	CHECK(memchr(r->ident, '\0', sizeof(r->ident)) != NULL);
	CHECK(memchr(r->envfrom, '\0', sizeof(r->envfrom)) != NULL);
	CHECK(memchr(r->id, '\0', sizeof(r->id)) != NULL);
	CHECK(memchr(r->auth, '\0', sizeof(r->auth)) != NULL);
	/* flagged characters never survive in the address */
	CHECK(strpbrk(r->ip, " []()<>|#") == NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct sa_relays rs;
	const char	       *f[50];
	size_t			l[50], nf = 0, i, n;
	const char	       *p = (const char *)data, *e = p + size;
	struct sa_relay		r, sess;
	struct sa_trust		t;
	struct cidr		net;
	char			small[200], large[65536];

	while (p <= e && nf < 50) {
		const char *z = memchr(p, '\0', (size_t)(e - p));

		if (z == NULL)
			z = e;
		f[nf] = p;
		l[nf++] = (size_t)(z - p);
		p = z + 1;
	}
	for (i = 0; i < nf; i++)
		if (sa_received_parse(f[i], l[i], &r) == SA_RCVD_RELAY)
			check_relay(&r);
	memset(&t, 0, sizeof(t));
	sa_relays_build(&rs, NULL, 1, f, l, nf, &t);
	CHECK(rs.n <= SA_RELAYS_MAX && rs.ntrusted <= rs.n &&
	    rs.ninternal <= rs.ntrusted);
	for (i = 0; i < rs.n; i++)
		check_relay(&rs.r[i]);
	n = sa_relays_text(&rs, 0, rs.n, small, sizeof(small));
	CHECK(n < sizeof(small) && strlen(small) == n);
	n = sa_relays_text(&rs, rs.ntrusted, rs.n, large, sizeof(large));
	CHECK(n < sizeof(large) && strlen(large) == n);

	memset(&sess, 0, sizeof(sess));
	memcpy(sess.ip, "10.0.0.1", 9);
	if (cidr_parse("0.0.0.0/1", &net) == 0) {
		t.nets = &net;
		t.nnets = 1;
		t.configured = 1;
	}
	sa_relays_build(&rs, &sess, size & 1, f, l, nf, &t);
	/* a fetcher line in the trusted area may drop the session relay too */
	CHECK(rs.n <= SA_RELAYS_MAX && rs.ntrusted <= rs.n);
	CHECK(!(size & 1) ? rs.ntrusted == 0 : 1);
	return 0;
}
