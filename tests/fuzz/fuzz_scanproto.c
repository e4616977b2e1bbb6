/*
 * fuzz_scanproto.c - libFuzzer target for filters/av/scanproto.c, the
 * parser moatd runs on what its (possibly compromised) scanner process
 * says.
 *
 * The first byte picks a mode:
 *  0: the rest is a reply: scan_reply_parse must not crash; an accepted
 *     reply must hold only bounded, printable names (no space), file names
 *     without NUL, counts within the limits and a status that agrees with
 *     the names; formatting it again must give a reply the parser accepts
 *     and that parses to the same values.
 *  1: the rest fills a struct scan_reply (names of any bytes, any sizes):
 *     scan_reply_format's output must always be accepted by the parser
 *     and fit SCAN_REPLY_MAX.
 *  2: the rest is a request: scan_request_check must accept only a
 *     well-formed one.
 * A broken invariant calls abort().
 *
 *	clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE \
 *	    -Ifilters/av tests/fuzz/fuzz_scanproto.c filters/av/scanproto.c
 *
 * Single-threaded; no state survives between inputs.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scanproto.h"
#include "fuzz.h"

static struct scan_reply r1, r2;
static char		 buf[SCAN_REPLY_MAX];

static void
check_name(const char *s, size_t max)
{
	size_t n = strlen(s), i;

	CHECK(n >= 1 && n <= max);
	for (i = 0; i < n; i++)
		CHECK(s[i] > 0x20 && s[i] < 0x7f);
}

static void
check_reply(const struct scan_reply *r)
{
	unsigned i;

	CHECK(r->status >= SCAN_CLEAN && r->status <= SCAN_NOTREADY);
	CHECK(r->nvirus <= SCAN_NAMES_MAX && r->nheur <= SCAN_NAMES_MAX &&
	    r->nlimit <= SCAN_NAMES_MAX && r->nfiles <= SCAN_FILES_MAX);
	for (i = 0; i < r->nvirus; i++)
		check_name(r->virus[i], SCAN_NAME_MAX);
	for (i = 0; i < r->nheur; i++)
		check_name(r->heur[i], SCAN_NAME_MAX);
	for (i = 0; i < r->nlimit; i++)
		check_name(r->limit[i], SCAN_NAME_MAX);
	for (i = 0; i < r->nfiles; i++) {
		check_name(r->files[i].type, SCAN_TYPE_MAX);
		CHECK(strlen(r->files[i].name) <= SCAN_FNAME_MAX);
		CHECK(r->files[i].has_name == (r->files[i].name[0] != '\0'));
	}
	CHECK(strlen(r->error) < sizeof(r->error));
	CHECK((r->status == SCAN_INFECTED) == (r->nvirus > 0));
	if (r->status == SCAN_INCOMPLETE)
		CHECK(r->nlimit > 0);
	if (r->status == SCAN_CLEAN)
		CHECK(r->nlimit == 0);
}

static void
same(const struct scan_reply *a, const struct scan_reply *b)
{
	unsigned i;

	CHECK(a->id == b->id && a->status == b->status && a->usec == b->usec);
	CHECK(a->signatures == b->signatures && a->generation == b->generation);
	CHECK(a->nvirus == b->nvirus && a->nheur == b->nheur &&
	    a->nlimit == b->nlimit);
	CHECK(memcmp(a->virus, b->virus, sizeof(a->virus)) == 0);
	CHECK(memcmp(a->heur, b->heur, sizeof(a->heur)) == 0);
	CHECK(memcmp(a->limit, b->limit, sizeof(a->limit)) == 0);
	CHECK(strcmp(a->error, b->error) == 0);
	/* The formatter may leave out file lines that do not fit; it counts
	 * them, so the total (saturating) is kept. */
	CHECK(b->nfiles <= a->nfiles);
	for (i = 0; i < b->nfiles; i++)
		CHECK(memcmp(&a->files[i], &b->files[i], sizeof(a->files[i])) ==
		    0);
	if (a->files_dropped < 0xffffff00u)
		CHECK(a->nfiles + a->files_dropped ==
		    b->nfiles + b->files_dropped);
}

/* Take n bytes from the input as a C string (NUL ends it early). */
static void
take(const uint8_t **p, size_t *left, char *out, size_t outsz, size_t n)
{
	if (n > *left)
		n = *left;
	if (n > outsz - 1)
		n = outsz - 1;
	memcpy(out, *p, n);
	out[n] = '\0';
	*p += n;
	*left -= n;
}

static void
fill(const uint8_t *p, size_t left, struct scan_reply *r)
{
	static const enum scan_status other[] = { SCAN_CLEAN, SCAN_ERROR,
		SCAN_BUSY, SCAN_NOTREADY };
	unsigned		      i, k;
	size_t			      n;

	memset(r, 0, sizeof(*r));
	if (left < 8)
		return;
	memcpy(&r->id, p, 8);
	p += 8;
	left -= 8;
	for (i = 0; left > 1 && i < 3 * (SCAN_NAMES_MAX + 2); i++) {
		k = p[0] % 4;
		n = p[1];

		p += 2;
		left -= 2;
		if (k == 0 && r->nvirus < SCAN_NAMES_MAX)
			take(&p, &left, r->virus[r->nvirus++],
			    SCAN_NAME_MAX + 1, n);
		else if (k == 1 && r->nheur < SCAN_NAMES_MAX)
			take(&p, &left, r->heur[r->nheur++], SCAN_NAME_MAX + 1,
			    n);
		else if (k == 2 && r->nlimit < SCAN_NAMES_MAX)
			take(&p, &left, r->limit[r->nlimit++],
			    SCAN_NAME_MAX + 1, n);
		else if (k == 3 && r->nfiles < SCAN_FILES_MAX) {
			struct scan_file *f = &r->files[r->nfiles++];

			f->depth = n;
			f->size = (uint64_t)n << 20;
			take(&p, &left, f->type, sizeof(f->type), n % 40);
			take(&p, &left, f->name, sizeof(f->name), n * 2);
			f->has_name = f->name[0] != '\0';
		} else
			break;
	}
	take(&p, &left, r->error, sizeof(r->error), left);
	r->files_dropped = (unsigned)(r->id >> 40);
	/* The status the scanner derives from the names. */
	if (r->nvirus > 0)
		r->status = SCAN_INFECTED;
	else if (r->nlimit > 0)
		r->status = SCAN_INCOMPLETE;
	else
		r->status = other[r->id % 4];
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct scan_request req;
	size_t		    n;

	if (size == 0)
		return 0;
	switch (data[0] % 3) {
	case 0:
		if (scan_reply_parse(
			(const char *)data + 1, size - 1, &r1, NULL) < 0)
			return 0;
		check_reply(&r1);
		n = scan_reply_format(&r1, buf, sizeof(buf));
		CHECK(n > 0 && n <= SCAN_REPLY_MAX);
		CHECK(scan_reply_parse(buf, n, &r2, NULL) == 0);
		same(&r1, &r2);
		break;
	case 1:
		fill(data + 1, size - 1, &r1);
		n = scan_reply_format(&r1, buf, sizeof(buf));
		CHECK(n > 0 && n <= SCAN_REPLY_MAX);
		CHECK(scan_reply_parse(buf, n, &r2, NULL) == 0);
		check_reply(&r2);
		CHECK(r2.id == r1.id && r2.status == r1.status);
		break;
	case 2:
		if (scan_request_check(data + 1, size - 1, &req) == 0)
			CHECK(size - 1 == sizeof(req) &&
			    req.magic == SCAN_MAGIC &&
			    req.version == SCAN_PROTO_VERSION &&
			    (req.op == SCAN_OP_SCAN || req.op == SCAN_OP_PING));
		break;
	}
	return 0;
}
