/*
 * dmarc_eval.h - the pieces of one DMARC evaluation (RFC 7489), apart from
 * DNS and the filter plumbing, so each can be tested alone:
 *
 *   - the choice of the one DMARC record among a name's TXT records
 *     (§6.6.3) and its parsing (libopendmarc's parser);
 *   - the Organizational Domain (§3.2) from the Public Suffix List
 *     (libpsl with Debian's publicsuffix data);
 *   - the SPF and DKIM results of the transaction, read from the
 *     Authentication-Results clauses that moat's spf and dkim filters
 *     reported (RFC 8601 method=result ptype.property=value);
 *   - identifier alignment (§3.1, relaxed and strict) and the policy that
 *     applies (§6.6.2-§6.6.4: p or sp, pct sampling).
 *
 * Why alignment is not libopendmarc's: its relaxed check treats a domain
 * that is a suffix of the other as aligned without consulting the PSL
 * (d=co.uk "aligns" with example.co.uk), and it keeps one DKIM result per
 * message where RFC 7489 §4.2 wants any aligned pass.
 *
 * Pure code on caller-owned memory; the PSL context is read-only and may
 * be shared by threads; dmarc_eval_init() from a filter's init (the
 * configuration thread; safe while other threads evaluate).
 */
#ifndef MOAT_DMARC_EVAL_H
#define MOAT_DMARC_EVAL_H

#include <stddef.h>

#define DMARC_DOMAIN_MAX 256 /* a domain name and its NUL */
#define DMARC_DKIM_MAX	 16  /* DKIM results looked at */
#define DMARC_RECORD_MAX 2048
#define DMARC_RUA_MAX	 512

struct psl_ctx_st;

enum dmarc_res {
	DMARC_RES_NONE = 0, /* no policy published */
	DMARC_RES_PASS,
	DMARC_RES_FAIL,
	DMARC_RES_TEMPERROR,
	DMARC_RES_PERMERROR
};

enum dmarc_pol {
	DMARC_POL_UNSET = 0,
	DMARC_POL_NONE,
	DMARC_POL_QUARANTINE,
	DMARC_POL_REJECT
};

struct dmarc_record {
	enum dmarc_pol p, sp; /* sp UNSET: as p */
	int	       pct;   /* 0-100 */
	int	       adkim_strict, aspf_strict;
	char	       rua[DMARC_RUA_MAX]; /* comma-separated URIs, or "" */
};

/* The results of the transaction's authentication filters. */
struct dmarc_auth {
	int    spf;	       /* -1 none, else 1 pass, 0 other */
	char   spf_result[16]; /* as reported: "pass", "fail", ... */
	char   spf_domain[DMARC_DOMAIN_MAX]; /* MAIL FROM or HELO domain */
	int    spf_helo;		     /* the HELO identity was checked */
	size_t ndkim;
	struct {
		char domain[DMARC_DOMAIN_MAX];
		char selector[64];
		char result[16];
		int  pass;
	} dkim[DMARC_DKIM_MAX];
};

struct dmarc_outcome {
	enum dmarc_res res;
	enum dmarc_pol policy;	    /* published policy that applies */
	enum dmarc_pol disposition; /* after pct sampling */
	int	       spf_aligned, dkim_aligned;
	const char    *dkim_domain; /* the aligned passing d=, or NULL */
};

/* Load the Public Suffix List (once; later calls reuse it); -1 if it cannot
 * be had. Any thread: a filter's init runs on the configuration thread. */
int  dmarc_eval_init(void);
void dmarc_eval_fini(void);

/*
 * The Organizational Domain of a (lower-case) domain: its registrable
 * part under the PSL, or the domain itself when it is a public suffix.
 */
void dmarc_org_domain(const char *domain, char *out, size_t outlen);

/*
 * Among a name's TXT records (n strings), the one that starts with
 * "v=DMARC1": returns its index, -1 when there is none, -2 when there are
 * several (both: no policy, §6.6.3).
 */
int dmarc_record_pick(const char *const *txt, size_t n);

/* Parse a DMARC record. 0, or -1 with *why set (no policy then). */
int dmarc_record_parse(const char *domain, const char *txt,
    struct dmarc_record *, const char		     **why);

/* Read the spf= and dkim= clauses of Authentication-Results. */
void dmarc_auth_read(const char *const *clauses, size_t n, struct dmarc_auth *);

/* Are a and b aligned (§3.1.1/§3.1.2)? */
int dmarc_aligned(const char *a, const char *b, int strict);

/*
 * Evaluate with the record found (rec NULL: none published). at_org: the
 * record is the Organizational Domain's, not the From domain's (then sp
 * applies, §6.6.3). sample is a number in 0-99 drawn for pct.
 */
void dmarc_evaluate(const char *from_domain, const struct dmarc_record *rec,
    int at_org, const struct dmarc_auth *, unsigned sample,
    struct dmarc_outcome *);

const char *dmarc_res_name(enum dmarc_res);
const char *dmarc_pol_name(enum dmarc_pol);

#endif
