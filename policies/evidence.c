/*
 * evidence.c - the evidence a transaction collected (see evidence.h).
 *
 * Symbols are restricted to [A-Za-z0-9_.-] (anything else becomes '_'),
 * details to printable single lines, so both are safe in log lines,
 * headers and the quarantine metadata without further escaping.
 * Single owner, no locking.
 */
#include <stdlib.h>
#include <string.h>

#include "evidence.h"
#include "util.h"

void
evidence_init(struct evidence_set *es)
{
	memset(es, 0, sizeof(*es));
}

static void
copy_symbol(char *dst, size_t dstlen, const char *s)
{
	size_t i;

	for (i = 0; s != NULL && s[i] != '\0' && i + 1 < dstlen; i++) {
		unsigned char c = (unsigned char)s[i];

		dst[i] = ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			     (c >= '0' && c <= '9') || c == '_' || c == '.' ||
			     c == '-')
		    ? (char)c
		    : '_';
	}
	if (i == 0 && dstlen > 1)
		dst[i++] = '_';
	dst[i] = '\0';
}

/* Printable ASCII and UTF-8 bytes kept; controls become spaces. */
static char *
clean_detail(const char *d)
{
	size_t n, i;
	char  *out;

	if (d == NULL || *d == '\0')
		return NULL;
	n = strnlen(d, EVIDENCE_DETAIL_MAX - 1);
	out = xmalloc(n + 1);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)d[i];

		out[i] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
	}
	out[n] = '\0';
	return out;
}

struct evidence *
evidence_add(struct evidence_set *es, const char *filter, const char *symbol,
    double score, const char *detail, int stage)
{
	struct evidence *e;

	if (es->n == EVIDENCE_MAX) {
		es->dropped++;
		return NULL;
	}
	if (es->n == es->cap) {
		es->cap = es->cap ? es->cap * 2 : 8;
		es->v = xrealloc(es->v, es->cap * sizeof(*es->v));
	}
	e = &es->v[es->n++];
	memset(e, 0, sizeof(*e));
	copy_symbol(e->filter, sizeof(e->filter), filter);
	copy_symbol(e->symbol, sizeof(e->symbol), symbol);
	if (score != score) /* NaN */
		score = 0;
	e->score = score;
	e->detail = clean_detail(detail);
	e->stage = stage;
	e->rule = -1;
	es->total += score;
	return e;
}

void
evidence_copy(struct evidence_set *dst, const struct evidence_set *src)
{
	size_t		 i;
	struct evidence *e;

	for (i = 0; i < src->n; i++) {
		e = evidence_add(dst, src->v[i].filter, src->v[i].symbol,
		    src->v[i].score, src->v[i].detail, src->v[i].stage);
		if (e != NULL)
			e->rule = src->v[i].rule;
	}
	dst->dropped += src->dropped;
}

void
evidence_truncate(struct evidence_set *es, size_t n)
{
	while (es->n > n) {
		es->n--;
		es->total -= es->v[es->n].score;
		free(es->v[es->n].detail);
	}
}

const struct evidence *
evidence_find(const struct evidence_set *es, const char *symbol)
{
	size_t i;

	for (i = 0; i < es->n; i++)
		if (strcmp(es->v[i].symbol, symbol) == 0)
			return &es->v[i];
	return NULL;
}

void
evidence_free(struct evidence_set *es)
{
	evidence_truncate(es, 0);
	free(es->v);
	memset(es, 0, sizeof(*es));
}
