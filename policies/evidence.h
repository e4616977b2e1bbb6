/*
 * evidence.h - what filters found about one message: a list of symbols,
 * each with a score, the filter that reported it, the stage, and a
 * human-readable detail. The policy engine (policy.h) turns a set of
 * evidence into one action; the transaction log line, the quarantine
 * metadata and `moat scan` print it.
 *
 * Ownership: an evidence_set belongs to one transaction (or, for the
 * CONNECT and HELO stages, to the session, and is copied into each
 * transaction); it owns its detail strings. Bounded: at most
 * EVIDENCE_MAX entries, further ones are counted in `dropped`.
 * Not thread-safe: one owner at a time (a worker may read it while the
 * session waits for that worker).
 */
#ifndef MOAT_EVIDENCE_H
#define MOAT_EVIDENCE_H

#include <stddef.h>

#define EVIDENCE_MAX	    256
#define EVIDENCE_SYMBOL_MAX 64
#define EVIDENCE_DETAIL_MAX 256

struct evidence {
	char   filter[32];		    /* reporting filter's name */
	char   symbol[EVIDENCE_SYMBOL_MAX]; /* [A-Za-z0-9_.-]+ */
	double score;
	char  *detail; /* sanitised single line, or NULL */
	int    stage;  /* enum filter_stage */
	int    rule;   /* index of the policy rule it triggered, or -1 */
};

struct evidence_set {
	struct evidence *v;
	size_t		 n, cap;
	size_t		 dropped;
	double		 total; /* sum of the scores */
};

void evidence_init(struct evidence_set *);
/* Copies and sanitises everything; returns the entry or NULL if full. */
struct evidence *evidence_add(struct evidence_set *, const char *filter,
    const char *symbol, double score, const char *detail, int stage);
/* Append copies of every entry of src. */
void evidence_copy(struct evidence_set *dst, const struct evidence_set *src);
/* Drop the entries from index n on (undo a recipient's evidence). */
void		       evidence_truncate(struct evidence_set *, size_t n);
const struct evidence *evidence_find(
    const struct evidence_set *, const char *symbol);
void evidence_free(struct evidence_set *);

#endif
