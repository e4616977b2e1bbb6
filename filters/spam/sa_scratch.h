/*
 * sa_scratch.h - the per-thread evaluation state of the SpamAssassin-
 * format rule engine (sa_engine.c, read by eval functions through
 * struct sa_ctx). Owned by one thread at a time; reused across messages
 * (buffers keep their capacity, the arena keeps one block).
 */
#ifndef MOAT_SA_SCRATCH_H
#define MOAT_SA_SCRATCH_H

#include "sa_int.h"

struct sa_block {
	struct sa_block *next;
	size_t		 size, used;
	char		 data[];
};

struct sa_buf {
	char  *s;
	size_t len, cap;
};

/* Append s[0..n) to b, keeping it NUL-terminated (sa_engine.c). */
void sa_buf_add(struct sa_buf *b, const char *s, size_t n);

struct sa_span {
	size_t off, len;
};

struct sa_spans {
	struct sa_span *v;
	size_t		n, cap;
};

struct sa_hcache {
	unsigned    gen; /* valid when == scratch gen */
	uint32_t    hash;
	unsigned    mods;
	const char *name;
	const char *value; /* NULL: header absent */
	size_t	    len;
};

/* sa_html.c: HTML facts of one message (built on first use) */
enum { SA_HT_COMMENT, SA_HT_ANCHOR, SA_HT_TITLE, SA_HT_KINDS };

struct sa_htag {
	unsigned part; /* index in the view's parts */
	char	 name[32];
	int	 inside; /* start tags - end tags, never below 0 */
};

struct sa_hstrs {
	struct sa_buf	b; /* the strings, each NUL-ended */
	struct sa_span *v;
	size_t		n, cap;
};

struct sa_html {
	unsigned	gen; /* valid when == scratch gen */
	struct sa_htag *tags;
	size_t		ntags, tagcap;
	struct sa_hstrs strs[SA_HT_KINDS];
	unsigned	closed_extra; /* end tags with none open */
	unsigned	events;	      /* start and end tags */
	unsigned	nparts;
};

const struct sa_html *sa_html_facts(struct sa_ctx *);
void		      sa_html_free(struct sa_html *);

/* lazy rules: a meta being made exact, and its next operation */
struct sa_resolve {
	uint32_t rule;
	unsigned k;
};

struct sa_scratch {
	pcre2_match_data    *md;
	pcre2_match_context *mc;
	pcre2_jit_stack	    *js;

	double *values; /* per rule: hit count / meta value */
	size_t	nvalues;

	struct sa_hit *hits;
	size_t	       nhits, hitcap;

	struct sa_block *blocks; /* per-message arena */
	struct sa_buf	 tmp;

	struct sa_buf	body; /* subject + rendered text, collapsed */
	struct sa_spans bodyl;
	size_t		body_subject_lines;
	int		body_built;
	struct sa_buf	raw; /* decoded text parts, tags kept */
	struct sa_spans rawl;
	int		raw_built;

	struct sa_hcache *hcache;
	unsigned	  gen;

	void	      *hs; /* hs_scratch_t */
	unsigned       hs_serial;
	unsigned char *cand; /* prefilter: bit per rule that may match */
	size_t	       ncand;
	/* per rule with its cand bit set: the first and last line (chunk,
	   URI) Hyperscan reported it on */
	uint32_t *cand_first, *cand_last;
	size_t	  ncandlines;

	unsigned long budget; /* usec per sa_eval(), 0 = none */

	double		  *lo, *hi; /* lazy rules: meta value intervals */
	struct sa_resolve *rstack;
	size_t		   nlazybuf;

	struct sa_html html;

	uint64_t	 *prof; /* per rule: nanoseconds spent (profiling on) */
	size_t		  nprof;
	struct sa_relays *relays; /* the relay trail, built on demand */
	unsigned	  relays_gen;
	long long	  date_diff; /* Date minus Received, on demand */
	unsigned	  date_diff_gen;
};

/* n bytes from the per-message arena (freed at the next sa_eval()). */
void *sa_scratch_alloc(struct sa_scratch *, size_t n);

/* The relay trail of this message (sa_received.h); built on demand. */
const struct sa_relays *sa_relays(struct sa_ctx *);

/* The body text rules see (subject line first); built on demand. */
const char *sa_body_text(struct sa_ctx *, size_t *len);

#endif
