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

/*
 * Patterns per database and the longest pattern taken: Hyperscan's
 * compile time grows faster than linearly with both, and Debian's set
 * in one database took 20 s to compile; in chunks of 100 without the
 * few huge ones (ReplaceTags expansions of 2-200 KB, which PCRE2 runs
 * always) it takes about 2 s.
 */
#define PF_CHUNK  100
#define PF_MAXLEN 2000

struct pf_db {
	hs_database_t *db;
	uint32_t      *rule_of; /* Hyperscan id -> rule index */
};

struct sa_pf {
	struct pf_db *dbs[SA_NTYPES];
	size_t	      ndbs[SA_NTYPES];
	unsigned      serial;
};

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

/* Compile pats[0..n) into one database; a pattern the compiler refuses
   is dropped (runs with PCRE2) and the rest retried. */
static void
build_db(struct sa_ruleset *rs, struct sa_pf *pf, int t, char **pats,
    unsigned *flags, uint32_t *rule_of, unsigned n)
{
	hs_compile_error_t *cerr;
	hs_database_t	   *db = NULL;
	unsigned	   *ids = xcalloc(n + 1, sizeof(*ids)), i;
	struct pf_db	   *d;

	for (i = 0; i < n; i++)
		ids[i] = i;
	while (n > 0) {
		cerr = NULL;
		if (hs_compile_multi((const char *const *)pats, flags, ids, n,
			HS_MODE_BLOCK, NULL, &db, &cerr) == HS_SUCCESS)
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
		memmove(rule_of + i, rule_of + i + 1,
		    (n - i - 1) * sizeof(*rule_of));
		n--;
	}
	free(ids);
	if (db == NULL)
		return;
	pf->dbs[t] = xrealloc(pf->dbs[t], (pf->ndbs[t] + 1) * sizeof(*d));
	d = &pf->dbs[t][pf->ndbs[t]++];
	d->db = db;
	d->rule_of = xcalloc(n + 1, sizeof(uint32_t));
	memcpy(d->rule_of, rule_of, n * sizeof(uint32_t));
	for (i = 0; i < n; i++)
		rs->rules[rule_of[i]]->pf = 1;
	rs->stats.prefiltered += n;
}

static void
build_type(struct sa_ruleset *rs, struct sa_pf *pf, int t)
{
	char		  **pats;
	unsigned	   *flags, n = 0, i;
	uint32_t	   *rule_of;
	size_t		    k;
	hs_compile_error_t *cerr;
	hs_expr_info_t	   *info;

	pats = xcalloc(rs->norder[t] + 1, sizeof(*pats));
	flags = xcalloc(rs->norder[t] + 1, sizeof(*flags));
	rule_of = xcalloc(rs->norder[t] + 1, sizeof(*rule_of));
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
		pats[n] = p;
		flags[n] = hs_flags(r);
		rule_of[n] = rs->order[t][k];
		n++;
	}
	for (i = 0; i < n; i += PF_CHUNK)
		build_db(rs, pf, t, pats + i, flags + i, rule_of + i,
		    n - i < PF_CHUNK ? n - i : PF_CHUNK);
	for (i = 0; i < n; i++)
		free(pats[i]);
	free(pats);
	free(flags);
	free(rule_of);
}

void
sa_prefilter_build(struct sa_ruleset *rs)
{
	struct sa_pf *pf;
	int	      t;

	if (hs_valid_platform() != HS_SUCCESS)
		return;
	pf = xcalloc(1, sizeof(*pf));
	pf->serial = __atomic_add_fetch(&pf_serial, 1, __ATOMIC_RELAXED);
	for (t = 0; t < SA_NTYPES; t++)
		if (prefiltered_type(t) && rs->norder[t] > 0)
			build_type(rs, pf, t);
	rs->pf = pf;
}

void
sa_prefilter_free(struct sa_ruleset *rs)
{
	int t;

	if (rs->pf == NULL)
		return;
	for (t = 0; t < SA_NTYPES; t++) {
		size_t i;

		for (i = 0; i < rs->pf->ndbs[t]; i++) {
			hs_free_database(rs->pf->dbs[t][i].db);
			free(rs->pf->dbs[t][i].rule_of);
		}
		free(rs->pf->dbs[t]);
	}
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
sa_prefilter_build(struct sa_ruleset *rs)
{
	(void)rs;
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
