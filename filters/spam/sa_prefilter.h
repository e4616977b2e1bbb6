/*
 * sa_prefilter.h - what sa_prefilter.c (the Hyperscan prefilter) and
 * sa_pfcache.c (its on-disk cache of compiled databases) share. Private
 * to those two files; built only with Hyperscan.
 *
 * Ownership: a struct sa_pf belongs to its ruleset (rs->pf), is built on
 * the loading thread and read-only afterwards.
 */
#ifndef MOAT_SA_PREFILTER_H
#define MOAT_SA_PREFILTER_H

#include <hs.h>
#include <stdint.h>

#include "sa_rules.h"

/*
 * Patterns per database and the longest pattern taken: Hyperscan's
 * compile time grows faster than linearly with both, and Debian's set
 * in one database took 20 s to compile; in chunks of 100 without the
 * few huge ones (ReplaceTags expansions of 2-200 KB, which PCRE2 runs
 * always) it takes about 2 s.
 */
#define PF_CHUNK  100
#define PF_MAXLEN 2000

/* The patterns of one rule type Hyperscan may take, in rule order. */
struct pf_coll {
	char	**pats;	   /* as Hyperscan gets them */
	unsigned *flags;   /* HS_FLAG_* */
	uint32_t *rule_of; /* position -> rule index */
	unsigned  n;
};

struct pf_db {
	hs_database_t *db;
	uint32_t      *pos;	/* Hyperscan id -> position in pf_coll */
	uint32_t      *rule_of; /* Hyperscan id -> rule index */
	unsigned       n;
};

struct sa_pf {
	struct pf_db *dbs[SA_NTYPES];
	size_t	      ndbs[SA_NTYPES];
	unsigned      serial;
};

/* Append a database of n patterns (pos[] taken over) to pf's type t. */
void sa_pf_add_db(struct sa_pf *, int t, const struct pf_coll *,
    hs_database_t *, uint32_t *pos, unsigned n);

/* Free every database of pf (pf itself stays, empty). */
void sa_pf_clear(struct sa_pf *);

/*
 * The cache (sa_pfcache.c). load: 0 when pf now holds the databases
 * compiled earlier for exactly these collections, -1 (pf untouched) when
 * there are none or they cannot be trusted. save: best effort, silent.
 */
int  sa_pfcache_load(const char *dir, const struct pf_coll *, struct sa_pf *);
void sa_pfcache_save(
    const char *dir, const struct pf_coll *, const struct sa_pf *);

#endif
