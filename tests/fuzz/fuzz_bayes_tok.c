/*
 * fuzz_bayes_tok.c - libFuzzer target for the Bayesian classifier's
 * tokenizer (filters/spam/bayes_tok.c).
 *
 * The input becomes a hand-built message view: up to six header fields
 * (name and value split at NUL bytes; the names include those the
 * tokenizer treats specially, chosen by the first byte), a body text and
 * a URI, which is also the part's invisible text when the first byte has
 * bit 0x10. Every token must be 1..BAYES_TOKEN_MAX bytes, and the number
 * of tokens stays within the per-region caps. A broken invariant calls
 * abort(); ASan checks every read.
 *
 * Single-threaded; no state survives between inputs.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bayes_tok.h"
#include "msgview.h"
#include "fuzz.h"

static int
cb(void *arg, const char *tok, size_t len)
{
	CHECK(len > 0 && len <= BAYES_TOKEN_MAX);
	CHECK(tok[0] != '\0' || len > 0);
	(*(size_t *)arg)++;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = { "Received", "From", "To",
		"Message-ID", "Content-Type", "Subject", "X-Mailer",
		"DKIM-Signature", "MIME-Version", "Cc" };
	static const char *const local[] = { "mx.example.test" };
	struct bayes_tokopts	 o = { NULL, 0, local, 1 };
	struct mv_header	 h[6];
	struct mv_part		 p;
	struct mv_uri		 u;
	struct msgview		 mv;
	char			*copy, *s, *e, *f[8];
	size_t			 nf = 0, i, count = 0;

	if (size == 0)
		return 0;
	copy = malloc(size + 1);
	memcpy(copy, data + 1, size - 1);
	copy[size - 1] = '\0';
	/* Fields separated by NUL bytes. */
	for (s = copy, e = copy + size - 1; nf < 8 && s <= e;) {
		f[nf++] = s;
		s += strlen(s) + 1;
	}
	memset(&mv, 0, sizeof(mv));
	memset(&p, 0, sizeof(p));
	memset(&u, 0, sizeof(u));
	for (i = 0; i < 6 && i + 2 < nf; i++) {
		h[i].name = names[(data[0] + i) % 10];
		h[i].raw = h[i].decoded = f[i + 2];
	}
	mv.headers = h;
	mv.nheaders = i;
	p.type = "text/plain";
	p.flags = MV_PART_TEXT;
	p.text = p.raw_text = f[0];
	p.textlen = p.raw_textlen = strlen(f[0]);
	mv.parts = &p;
	mv.nparts = 1;
	if (nf > 1) {
		u.uri = f[1];
		mv.uris = &u;
		mv.nuris = 1;
		if (data[0] & 0x10) {
			p.invisible = f[1];
			p.invisiblelen = strlen(f[1]);
		}
	}
	bayes_tokenize(&mv, &o, cb, &count);
	CHECK(count <= 2 * BAYES_BODY_TOKENS + BAYES_URI_TOKENS +
		BAYES_HEADER_TOKENS + 16);
	free(copy);
	return 0;
}
