/*
 * sa_prefilter.c - a Hyperscan prefilter in front of PCRE2 for the rule
 * types that scan long texts (body, rawbody, uri, full): all regexes of
 * one type are compiled into one Hyperscan database in prefilter mode
 * (HS_FLAG_PREFILTER: a superset of the PCRE2 matches; lookarounds and
 * back references are approximated), each text is scanned once, and
 * PCRE2 only runs the rules Hyperscan reported. A rule Hyperscan cannot
 * take (pattern syntax, matches the empty string) always runs with PCRE2.
 *
 * Each line (body), chunk (rawbody), URI or message (full) is scanned on
 * its own, as PCRE2 sees it, so anchors keep their meaning.
 *
 * Without Hyperscan (not built with it, or the CPU lacks SSSE3) every
 * rule runs with PCRE2; results are the same, only slower.
 *
 * Compiling Debian's ruleset takes about 2 s, so the compiled databases
 * are kept in a cache directory when the loader is given one
 * (sa_pfcache.c) and taken from there when the same patterns, flags,
 * Hyperscan version and CPU come again: a restart or a reload with
 * unchanged rules starts in a fraction of that.
 *
 * Threading: the databases are built at load and then read-only; the
 * Hyperscan scratch lives in the caller's struct sa_scratch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sa_int.h"
#include "sa_scratch.h"
#include "util.h"

#ifdef HAVE_HYPERSCAN
#include <hs.h>

#include "sa_prefilter.h"

/*
 * Patterns per database and the longest pattern taken: Hyperscan's
 * compile time grows faster than linearly with both, and Debian's set
 * in one database took 20 s to compile; in chunks of 100 without the
 * few huge ones (ReplaceTags expansions of 2-200 KB, which PCRE2 runs
 * always) it takes about 2 s.
 */
static unsigned pf_serial;

static int
prefiltered_type(int t)
{
	return t == SA_BODY || t == SA_RAWBODY || t == SA_URI || t == SA_FULL;
}

static unsigned
hs_flags(const struct sa_rule *r)
{
	unsigned f = HS_FLAG_PREFILTER | HS_FLAG_SINGLEMATCH;

	if (r->reopts & PCRE2_CASELESS)
		f |= HS_FLAG_CASELESS;
	if (r->reopts & PCRE2_DOTALL)
		f |= HS_FLAG_DOTALL;
	if (r->reopts & PCRE2_MULTILINE)
		f |= HS_FLAG_MULTILINE;
	return f;
}

/*
 * Loosen counted repeats for the prefilter: "{m,n}", "{m}" and "{m,}"
 * become "{min(m,PF_REPEAT),}". That only adds matches (a superset, as a
 * prefilter may) and spares Hyperscan the state blow-up of wide bounded
 * repeats (".{0,300}"), which made compiling Debian's ruleset take a
 * minute. Escapes and character classes are skipped over.
 */
#define PF_REPEAT 2

static char *
loosen_repeats(const char *src)
{
	size_t n = strlen(src), i = 0, k = 0;
	char  *out = xmalloc(n + 16);
	int    cls = 0;

	while (i < n) {
		char c = src[i];

		if (c == '\\' && i + 1 < n) {
			out[k++] = src[i++];
			out[k++] = src[i++];
			continue;
		}
		if (cls) {
			if (c == ']')
				cls = 0;
			out[k++] = src[i++];
			continue;
		}
		if (c == '[') {
			cls = 1;
			out[k++] = src[i++];
			/* "[]" and "[^]": the ']' is a literal */
			if (i < n && src[i] == '^')
				out[k++] = src[i++];
			if (i < n && src[i] == ']')
				out[k++] = src[i++];
			continue;
		}
		if (c == '{' && i + 1 < n && src[i + 1] >= '0' &&
		    src[i + 1] <= '9') {
			size_t	      j = i + 1;
			unsigned long m = 0;

			while (j < n && src[j] >= '0' && src[j] <= '9') {
				if (m < 100000)
					m = m * 10 +
					    (unsigned long)(src[j] - '0');
				j++;
			}
			if (j < n && src[j] == ',') {
				j++;
				while (j < n && src[j] >= '0' && src[j] <= '9')
					j++;
			}
			if (j < n && src[j] == '}') {
				k += (size_t)sprintf(out + k, "{%lu,}",
				    m < PF_REPEAT ? m : PF_REPEAT);
				i = j + 1;
				continue;
			}
		}
		out[k++] = src[i++];
	}
	out[k] = '\0';
	return out;
}

/* The pattern as Hyperscan gets it (allocated). */
static char *
hs_pattern(const struct sa_rule *r)
{
	const char *src = r->inline_pat ? r->inline_pat : r->pattern;
	char	   *l = loosen_repeats(src), *p;
	size_t	    n = strlen(l);

	if (!(r->reopts & PCRE2_EXTENDED))
		return l;
	p = xmalloc(n + 5);
	memcpy(p, "(?x)", 4);
	memcpy(p + 4, l, n + 1);
	free(l);
	return p;
}

/* Compile patterns [first, first+n) of c into one database; a pattern
   the compiler refuses is dropped (runs with PCRE2) and the rest
   retried. */
static void
build_db(struct sa_pf *pf, int t, const struct pf_coll *c, unsigned first,
    unsigned n)
{
	hs_compile_error_t *cerr;
	hs_database_t	   *db = NULL;
	const char	  **pats = xcalloc(n + 1, sizeof(*pats));
	unsigned	   *flags = xcalloc(n + 1, sizeof(*flags));
	unsigned	   *ids = xcalloc(n + 1, sizeof(*ids)), i;
	uint32_t	   *pos = xcalloc(n + 1, sizeof(*pos));

	for (i = 0; i < n; i++) {
		ids[i] = i;
		pos[i] = first + i;
		pats[i] = c->pats[first + i];
		flags[i] = c->flags[first + i];
	}
	while (n > 0) {
		cerr = NULL;
		if (hs_compile_multi(pats, flags, ids, n, HS_MODE_BLOCK, NULL,
			&db, &cerr) == HS_SUCCESS)
			break;
		db = NULL;
		if (cerr == NULL || cerr->expression < 0 ||
		    (unsigned)cerr->expression >= n) {
			if (cerr != NULL)
				hs_free_compile_error(cerr);
			break;
		}
		i = (unsigned)cerr->expression;
		hs_free_compile_error(cerr);
		memmove(pats + i, pats + i + 1, (n - i - 1) * sizeof(*pats));
		memmove(flags + i, flags + i + 1, (n - i - 1) * sizeof(*flags));
		memmove(pos + i, pos + i + 1, (n - i - 1) * sizeof(*pos));
		n--;
	}
	free(ids);
	free(pats);
	free(flags);
	if (db == NULL) {
		free(pos);
		return;
	}
	sa_pf_add_db(pf, t, c, db, pos, n);
}

void
sa_pf_add_db(struct sa_pf *pf, int t, const struct pf_coll *c,
    hs_database_t *db, uint32_t *pos, unsigned n)
{
	struct pf_db *d;
	unsigned      i;

	pf->dbs[t] = xrealloc(pf->dbs[t], (pf->ndbs[t] + 1) * sizeof(*d));
	d = &pf->dbs[t][pf->ndbs[t]++];
	d->db = db;
	d->pos = pos;
	d->n = n;
	d->rule_of = xcalloc(n + 1, sizeof(uint32_t));
	for (i = 0; i < n; i++)
		d->rule_of[i] = c->rule_of[pos[i]];
}

void
sa_pf_clear(struct sa_pf *pf)
{
	size_t i;
	int    t;

	for (t = 0; t < SA_NTYPES; t++) {
		for (i = 0; i < pf->ndbs[t]; i++) {
			hs_free_database(pf->dbs[t][i].db);
			free(pf->dbs[t][i].pos);
			free(pf->dbs[t][i].rule_of);
		}
		free(pf->dbs[t]);
		pf->dbs[t] = NULL;
		pf->ndbs[t] = 0;
	}
}

/* The patterns of type t Hyperscan can take, in rule order. */
static void
collect_type(struct sa_ruleset *rs, int t, struct pf_coll *c)
{
	hs_compile_error_t *cerr;
	hs_expr_info_t	   *info;
	size_t		    k;

	c->pats = xcalloc(rs->norder[t] + 1, sizeof(*c->pats));
	c->flags = xcalloc(rs->norder[t] + 1, sizeof(*c->flags));
	c->rule_of = xcalloc(rs->norder[t] + 1, sizeof(*c->rule_of));
	c->n = 0;
	for (k = 0; k < rs->norder[t]; k++) {
		struct sa_rule *r = rs->rules[rs->order[t][k]];
		char	       *p;

		r->pf = 0;
		if (r->re == NULL)
			continue;
		p = hs_pattern(r);
		info = NULL;
		cerr = NULL;
		if (strlen(p) > PF_MAXLEN ||
		    hs_expression_info(p, hs_flags(r), &info, &cerr) !=
			HS_SUCCESS ||
		    info == NULL || info->min_width == 0) {
			if (cerr != NULL)
				hs_free_compile_error(cerr);
			free(info);
			free(p);
			continue;
		}
		free(info);
		c->pats[c->n] = p;
		c->flags[c->n] = hs_flags(r);
		c->rule_of[c->n] = rs->order[t][k];
		c->n++;
	}
}

static void
coll_free(struct pf_coll *c)
{
	unsigned i;

	for (i = 0; i < c->n; i++)
		free(c->pats[i]);
	free(c->pats);
	free(c->flags);
	free(c->rule_of);
}

void
sa_prefilter_build(struct sa_ruleset *rs, const char *cache_dir)
{
	struct pf_coll coll[SA_NTYPES];
	struct sa_pf  *pf;
	unsigned       i;
	size_t	       k;
	int	       t;

	if (hs_valid_platform() != HS_SUCCESS)
		return;
	memset(coll, 0, sizeof(coll));
	for (t = 0; t < SA_NTYPES; t++)
		if (prefiltered_type(t) && rs->norder[t] > 0)
			collect_type(rs, t, &coll[t]);
	pf = xcalloc(1, sizeof(*pf));
	pf->serial = __atomic_add_fetch(&pf_serial, 1, __ATOMIC_RELAXED);
	if (cache_dir != NULL && sa_pfcache_load(cache_dir, coll, pf) == 0)
		rs->stats.prefilter_cached = 1;
	else {
		for (t = 0; t < SA_NTYPES; t++)
			for (i = 0; i < coll[t].n; i += PF_CHUNK)
				build_db(pf, t, &coll[t], i,
				    coll[t].n - i < PF_CHUNK ? coll[t].n - i
							     : PF_CHUNK);
		if (cache_dir != NULL)
			sa_pfcache_save(cache_dir, coll, pf);
	}
	for (t = 0; t < SA_NTYPES; t++) {
		for (k = 0; k < pf->ndbs[t]; k++)
			for (i = 0; i < pf->dbs[t][k].n; i++)
				rs->rules[pf->dbs[t][k].rule_of[i]]->pf = 1;
		for (k = 0; k < pf->ndbs[t]; k++)
			rs->stats.prefiltered += pf->dbs[t][k].n;
		coll_free(&coll[t]);
	}
	rs->pf = pf;
}

void
sa_prefilter_free(struct sa_ruleset *rs)
{
	if (rs->pf == NULL)
		return;
	sa_pf_clear(rs->pf);
	free(rs->pf);
	rs->pf = NULL;
}

/* Make the scratch fit this ruleset's databases; 0 or -1. */
int
sa_prefilter_prepare(const struct sa_ruleset *rs, struct sa_scratch *sc)
{
	int t;

	if (rs->pf == NULL)
		return -1;
	if (sc->hs_serial == rs->pf->serial && sc->hs != NULL)
		return 0;
	for (t = 0; t < SA_NTYPES; t++) {
		size_t i;

		for (i = 0; i < rs->pf->ndbs[t]; i++)
			if (hs_alloc_scratch(rs->pf->dbs[t][i].db,
				(hs_scratch_t **)&sc->hs) != HS_SUCCESS)
				return -1;
	}
	sc->hs_serial = rs->pf->serial;
	return 0;
}

struct hsctx {
	const uint32_t *rule_of;
	unsigned char  *cand;
	uint32_t       *first, *last;
	uint32_t	unit;
};

static int
on_match(unsigned int id, unsigned long long from, unsigned long long to,
    unsigned int fl, void *arg)
{
	struct hsctx *h = arg;
	uint32_t      r = h->rule_of[id];

	(void)from;
	(void)to;
	(void)fl;
	if (!(h->cand[r >> 3] & (1u << (r & 7)))) {
		h->cand[r >> 3] |= (unsigned char)(1u << (r & 7));
		h->first[r] = h->unit;
	}
	h->last[r] = h->unit;
	return 0;
}

/* Mark in sc->cand the rules of type t that may match s[0..n), text
   `unit` of that type's (units scanned in increasing order), and note
   the unit in sc->cand_first/cand_last. */
int
sa_prefilter_scan(const struct sa_ruleset *rs, struct sa_scratch *sc, int t,
    const char *s, size_t n, uint32_t unit)
{
	struct hsctx h;
	size_t	     i;

	if (rs->pf == NULL || rs->pf->ndbs[t] == 0 || sc->hs == NULL ||
	    n > 0xffffffffu)
		return -1;
	h.cand = sc->cand;
	h.first = sc->cand_first;
	h.last = sc->cand_last;
	h.unit = unit;
	for (i = 0; i < rs->pf->ndbs[t]; i++) {
		h.rule_of = rs->pf->dbs[t][i].rule_of;
		if (hs_scan(rs->pf->dbs[t][i].db, s, (unsigned)n, 0, sc->hs,
			on_match, &h) != HS_SUCCESS)
			return -1;
	}
	return 0;
}

int
sa_prefilter_has(const struct sa_ruleset *rs, int t)
{
	return rs->pf != NULL && rs->pf->ndbs[t] > 0;
}

void
sa_prefilter_scratch_free(struct sa_scratch *sc)
{
	if (sc->hs != NULL)
		hs_free_scratch(sc->hs);
	sc->hs = NULL;
}

#else /* !HAVE_HYPERSCAN */

void
sa_prefilter_build(struct sa_ruleset *rs, const char *cache_dir)
{
	(void)rs;
	(void)cache_dir;
}

void
sa_prefilter_free(struct sa_ruleset *rs)
{
	(void)rs;
}

int
sa_prefilter_prepare(const struct sa_ruleset *rs, struct sa_scratch *sc)
{
	(void)rs;
	(void)sc;
	return -1;
}

int
sa_prefilter_scan(const struct sa_ruleset *rs, struct sa_scratch *sc, int t,
    const char *s, size_t n, uint32_t unit)
{
	(void)unit;
	(void)rs;
	(void)sc;
	(void)t;
	(void)s;
	(void)n;
	return -1;
}

int
sa_prefilter_has(const struct sa_ruleset *rs, int t)
{
	(void)rs;
	(void)t;
	return 0;
}

void
sa_prefilter_scratch_free(struct sa_scratch *sc)
{
	(void)sc;
}

#endif
