/*
 * fuzz_msgview.c - libFuzzer target for the decoded message view
 * (filters/msgview*.c): GMime's parser, the walk, transfer and charset
 * decoding, the HTML renderer and URI extraction on hostile input.
 *
 * The first input byte picks small or default limits (so the truncation
 * paths run too); the rest is the message. Checked: the view exists;
 * parts[0] is the message at depth 0; every part's parent comes before it
 * and is one level up; depth, part, URI and header counts stay within the
 * limits; every text, raw text, decoded header value and file name is
 * valid UTF-8 of its stated length, invisible text only in HTML parts;
 * URIs are unique, hosts lower case; msgview_header() finds each field
 * of the message header. A broken
 * invariant calls abort(); leaks are LeakSanitizer's to find.
 *
 *	see tests/fuzz/run.sh (it adds filters/msgview*.c, GMime, libxml2)
 *
 * Single-threaded; no state survives between inputs but the libraries'
 * one-time set-up.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "msgview.h"
#include "msgview_int.h"
#include "util.h"
#include "fuzz.h"

static void
check_text(const char *s, size_t n)
{
	if (s == NULL)
		return;
	CHECK(strlen(s) == n);
	CHECK(mv_utf8_valid(s, n));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct msgview_limits lim = { 0 }, *lp = NULL;
	struct msgview	     *v;
	size_t		      i, j;

	if (size == 0)
		return 0;
	if (data[0] & 1) {
		lim.parts = 1 + (data[0] >> 1) % 8;
		lim.depth = 1 + (data[0] >> 4) % 4;
		lim.part_decoded = 1 + data[0] * 3u;
		lim.decoded = 1 + data[0] * 5u;
		lim.uris = 1 + (data[0] >> 2) % 5;
		lim.headers = 1 + (data[0] >> 3) % 7;
		lp = &lim;
	} else {
		lim.parts = 256;
		lim.depth = 20;
		lim.uris = 1024;
		lim.headers = 1000;
	}
	msgview_global_init();
	v = msgview_new((const char *)data + 1, size - 1, lp);
	CHECK(v != NULL);
	CHECK(v->size == size - 1 && v->hdrsize <= v->size);
	CHECK(v->nparts >= 1 && v->nparts <= lim.parts);
	CHECK(v->nuris <= lim.uris);
	CHECK(v->nheaders <= lim.headers);
	CHECK(v->parts[0].depth == 0 && v->parts[0].parent == 0);
	CHECK(v->headers == v->parts[0].headers);
	for (i = 0; i < v->nparts; i++) {
		const struct mv_part *p = &v->parts[i];

		CHECK(p->type != NULL);
		CHECK(p->depth <= lim.depth);
		CHECK(p->nheaders <= lim.headers);
		if (i > 0) {
			CHECK(p->parent < i);
			CHECK(p->depth == v->parts[p->parent].depth + 1);
		}
		check_text(p->text, p->textlen);
		check_text(p->raw_text, p->raw_textlen);
		check_text(p->invisible, p->invisiblelen);
		CHECK(p->invisible == NULL || (p->flags & MV_PART_HTML));
		CHECK(!(p->flags & MV_PART_HTML) || p->text == NULL ||
		    p->invisible != NULL);
		if (p->filename != NULL)
			check_text(p->filename, strlen(p->filename));
		CHECK((p->text == NULL) == (p->raw_text == NULL));
		CHECK(!(p->flags & MV_PART_TEXT) || p->text != NULL);
		for (j = 0; j < p->nheaders; j++) {
			CHECK(p->headers[j].name != NULL &&
			    p->headers[j].raw != NULL);
			check_text(p->headers[j].decoded,
			    strlen(p->headers[j].decoded));
		}
	}
	for (i = 0; i < v->nheaders; i++)
		CHECK(msgview_header(v, v->headers[i].name, 0) != NULL);
	for (i = 0; i < v->nuris; i++) {
		const struct mv_uri *u = &v->uris[i];

		CHECK(u->uri != NULL && *u->uri != '\0');
		CHECK((u->host == NULL) == (u->domain == NULL));
		if (u->host != NULL)
			for (j = 0; u->host[j] != '\0'; j++)
				CHECK(
				    !(u->host[j] >= 'A' && u->host[j] <= 'Z'));
		for (j = 0; j < i && v->nuris <= 64; j++)
			CHECK(strcmp(u->uri, v->uris[j].uri) != 0);
	}
	/* Rendering adds at most one break or space per text run. */
	CHECK(v->html.text <= 2 * v->html.raw);
	msgview_free(v);
	return 0;
}
