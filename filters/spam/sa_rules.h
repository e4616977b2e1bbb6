/*
 * sa_rules.h - SpamAssassin-format rules in moat: the loader for rule
 * files written for SpamAssassin 4.0 (Mail::SpamAssassin::Conf syntax:
 * header, mimeheader, body, rawbody, full, uri, meta, score, describe,
 * tflags, priority, ifplugin/if/else/endif, replace_* tags, list
 * directives) and the engine that runs a loaded ruleset over one message.
 *
 * Ownership and threading: a ruleset is built by sa_ruleset_load() on one
 * thread, then immutable; any number of threads may evaluate it at once,
 * each with its own scratch (sa_scratch_new(), one per thread or per call;
 * a scratch is never shared between threads at the same time). A reload
 * loads a new ruleset and frees the old one after the last evaluation on
 * it returned. The result of sa_eval() lives in the scratch until the
 * next sa_eval() on it or sa_scratch_free().
 */
#ifndef MOAT_SA_RULES_H
#define MOAT_SA_RULES_H

#include <stddef.h>
#include <stdint.h>

#include "msgview.h"

struct sa_ruleset;
struct sa_scratch;
struct cidr;

/* Rule types, as counted in struct sa_stats. */
enum sa_rtype {
	SA_HEADER = 0,
	SA_MIMEHEADER,
	SA_BODY,
	SA_RAWBODY,
	SA_FULL,
	SA_URI,
	SA_META,
	SA_NTYPES
};

struct sa_load_opts {
	/*
	 * SpamAssassin score set: 0 no Bayes no net, 1 net, 2 Bayes without
	 * net (moat's default), 3 Bayes and net (DNS lists on). -1 = 2.
	 */
	int scoreset;
	/*
	 * paths[strict_from..n) are the user's own files: any error in them
	 * (a regex that does not compile, a meta cycle, a bad line) refuses
	 * the whole configuration. Errors in paths[0..strict_from) (the
	 * distribution's ruleset) drop the rule and are counted.
	 * SIZE_MAX-like large values = nothing strict.
	 */
	size_t strict_from;
	/*
	 * 1 = no Hyperscan prefilter (same results, slower evaluation,
	 * much faster load: compiling Debian's set for it takes ~2 s).
	 */
	int no_prefilter;
	/*
	 * A directory for the compiled prefilter databases (NULL: none),
	 * reused by a later load of the same rules. Files there are only
	 * trusted when owned by this user or root and writable by no one
	 * else, in a directory writable by no one else.
	 */
	const char *cache_dir;
	/*
	 * 1 = run every rule (by default the costly body/rawbody regexes
	 * that only metas read run only when a meta's outcome depends on
	 * them; the results are the same).
	 */
	int no_lazy;
};

/* What a load found, for `moatd -t`. */
struct sa_stats {
	unsigned files, lines;
	unsigned rules[SA_NTYPES];  /* active rules by type (evals included) */
	unsigned evals_implemented; /* eval: rules moat runs natively */
	unsigned evals_skipped;	    /* eval: rules moat does not implement */
	unsigned net_rules;	    /* DNS list rules, left to the caller */
	unsigned plugin_disabled;   /* lines inside a false ifplugin/if */
	unsigned unknown_directives;
	unsigned redefined;	   /* a later definition replaced a rule */
	unsigned errors;	   /* rules dropped for an error */
	unsigned regex_translated; /* Perl-only syntax rewritten for PCRE2 */
	unsigned zero_score;	   /* scored 0 in the chosen set: not run
				      unless a meta needs them */
	unsigned prefiltered;	   /* regexes behind the Hyperscan
				      prefilter (body/rawbody/uri/full) */
	unsigned lazy;		   /* regexes run only when a meta needs
				      them */
	unsigned prefilter_cached; /* 1: the prefilter's databases came from
				      the cache directory */
};

/*
 * Load rule files and directories (a directory = its *.cf files in
 * lexical order) in the given order. NULL on a refused configuration,
 * with "file:line: reason" in err. A non-NULL ruleset may still have
 * dropped rules: err then holds the first such error (or "").
 */
struct sa_ruleset *sa_ruleset_load(const char *const *paths, size_t n,
    const struct sa_load_opts *opts, char *err, size_t errlen);
/* The same from a string (tests, fuzzing); `name` is used in errors. */
struct sa_ruleset     *sa_ruleset_load_string(const char *text, size_t len,
	const char *name, const struct sa_load_opts *opts, int strict, char *err,
	size_t errlen);
void		       sa_ruleset_free(struct sa_ruleset *);
const struct sa_stats *sa_ruleset_stats(const struct sa_ruleset *);
/* "file:line: reason" of the first 100 errors (dropped rules). */
const char *const *sa_ruleset_errors(const struct sa_ruleset *, size_t *n);

/*
 * A named list from the configuration (freemail_domains, util_rb_tld,
 * util_rb_2tld, util_rb_3tld, url_shortener, bayes_ignore_header,
 * uridnsbl_skip_domain, enlist_uri_host:LISTNAME, ...), lower-cased, in
 * order of appearance, duplicates kept. NULL and *n = 0 when empty.
 */
const char *const *sa_ruleset_list(
    const struct sa_ruleset *, const char *name, size_t *n);

/*
 * DNS list definitions found in the rules, for a DNSBL module to issue
 * the queries; the hits it finds come back to sa_eval() as external hits
 * by rule name.
 */
enum sa_netkind {
	SA_NET_RBL,	    /* check_rbl(set, zone[, subtest]) client IPs */
	SA_NET_RBL_TXT,	    /* check_rbl_txt(set, zone[, subtest]) */
	SA_NET_RBL_SUB,	    /* check_rbl_sub(set, subtest): answer of set */
	SA_NET_RBL_ENVFROM, /* check_rbl_envfrom(set, zone): envelope domain */
	SA_NET_RBL_FROM_HOST,	/* check_rbl_from_host(set, zone) */
	SA_NET_RBL_FROM_DOMAIN, /* check_rbl_from_domain(set, zone) */
	SA_NET_RBL_HEADER,	/* check_rbl_headers / check_rbl_ns_from ... */
	SA_NET_URIRHSSUB,	/* urirhssub rule zone type subtest */
	SA_NET_URIRHSBL,	/* urirhsbl rule zone type */
	SA_NET_URIDNSBL,	/* uridnsbl rule zone type (NS IPs) */
	SA_NET_URIDNSSUB,	/* uridnssub rule zone type subtest */
	SA_NET_ASKDNS,		/* askdns rule query type subtest */
	SA_NET_OTHER /* tflags net, other eval (check_dns_sender ...) */
};

struct sa_netrule {
	const char     *rule; /* the rule its answer fires */
	enum sa_netkind kind;
	const char     *eval;	 /* eval function name, or the directive */
	const char     *set;	 /* check_rbl* set name, else NULL */
	const char     *zone;	 /* zone or query template, or NULL */
	const char     *type;	 /* "A", "TXT", ... or NULL */
	const char     *subtest; /* return-code test as written, or NULL */
};
const struct sa_netrule *sa_ruleset_netrules(
    const struct sa_ruleset *, size_t *n);

/* Results of other moat filters the eval rules read. */
enum sa_authres {
	SA_AUTH_NONE = 0, /* not checked / no record */
	SA_AUTH_PASS,
	SA_AUTH_FAIL,
	SA_AUTH_SOFTFAIL,
	SA_AUTH_NEUTRAL,
	SA_AUTH_TEMPERROR,
	SA_AUTH_PERMERROR
};

enum sa_dmarc_policy {
	SA_DMARC_POLICY_NONE = 0, /* no record */
	SA_DMARC_POLICY_P_NONE,	  /* p=none */
	SA_DMARC_POLICY_QUARANTINE,
	SA_DMARC_POLICY_REJECT
};

struct sa_facts {
	const char	    *mail_from; /* envelope, without <>; "" = null */
	const char *const   *rcpts;
	size_t		     nrcpts;
	const char	    *helo;
	const char	    *client_ip;	  /* text form */
	const char	    *client_rdns; /* verified name, or NULL */
	int		     authenticated;
	enum sa_authres	     spf_mailfrom, spf_helo;
	int		     spf_checked, spf_helo_checked; /* SPF ran */
	int		     dkim_checked; /* a DKIM verifier ran (its result
					      is dependable) */
	int		     dkim_signed;	/* any signature present */
	int		     dkim_valid;	/* at least one verifies */
	int		     dkim_valid_author; /* one from the From domain */
	enum sa_authres	     dmarc;		/* PASS / FAIL / NONE */
	enum sa_dmarc_policy dmarc_policy;
	int		     has_bayes;
	double		     bayes; /* spam probability 0..1 if has_bayes */
	int		     bayes_unready; /* see sa_eval() */
	/*
	 * The relay trail (X-Spam-Relays-*): the session's client is the
	 * newest relay, trusted when client_trusted (moat's
	 * trusted_networks or an authenticated session); then the
	 * Received fields are walked with trusted_nets (loopback always
	 * trusted). trusted_configured = 0: SpamAssassin's inference
	 * instead (private or authenticated relays up to the first other).
	 * A trusted loopback client (local injection, `moat scan`) adds no
	 * relay of its own.
	 */
	int		   client_trusted;
	const struct cidr *trusted_nets;
	size_t		   ntrusted_nets;
	int		   trusted_configured;
};

struct sa_hit {
	const char *name;
	const char *describe; /* English, or "" */
	double	    score;    /* in the chosen score set */
	unsigned    count;    /* matches (tflags multiple), else 1 */
};

struct sa_result {
	const struct sa_hit *hits; /* scored rules that fired, "__" never */
	size_t		     nhits;
	double		     score;
	double		     learn_points; /* see sa_eval() */
	unsigned	     rules_run;	   /* rules evaluated (for timing) */
	int		     timed_out; /* the budget ran out: the rules
					    not run yet counted as no hit */
};

struct sa_scratch *sa_scratch_new(void);
void		   sa_scratch_free(struct sa_scratch *);

/*
 * Time budget of one sa_eval() in microseconds (default
 * SA_EVAL_BUDGET_USEC; 0 = none). Checked between rules: past it, the
 * remaining regex and eval rules count as no hit, metas still run, and
 * the result says timed_out.
 */
#define SA_EVAL_BUDGET_USEC 1000000u
void sa_scratch_set_budget(struct sa_scratch *, unsigned long usec);

/*
 * Run the ruleset over one message: its view, its raw bytes (for `full`
 * rules), the facts (may be NULL) and the rules the caller already
 * decided fired (DNS lists; unknown names are ignored). The result lives
 * in the scratch. 0, or -1 if the scratch could not grow (never for
 * bounded inputs).
 *
 * Score sets: a ruleset loaded for a set with Bayes (2, 3) scores a
 * message whose facts say bayes_unready (the classifier has not learned
 * enough to vote, or failed) with the set without it (0, 1), as
 * SpamAssassin uses 2/3 only once Bayes is_scan_available(). The
 * result's learn_points are SpamAssassin's autolearn points: the scores
 * of the rules that fired in the set without Bayes, less those flagged
 * learn, noautolearn or userconf.
 */
int sa_eval(const struct sa_ruleset *, struct sa_scratch *,
    const struct msgview *, const char *raw, size_t rawlen,
    const struct sa_facts *, const char *const *ext_hits, size_t next,
    struct sa_result *);

/*
 * Profiling (moat scan, benchmarks): when on, sa_eval() adds the time
 * each regex rule took to a per-rule counter, indexed like
 * sa_rule_name(); off by default (it costs a clock read per rule).
 */
void		sa_scratch_profile(struct sa_scratch *, int on);
const uint64_t *sa_scratch_profile_ns(const struct sa_scratch *, size_t *n);
const char     *sa_rule_name(const struct sa_ruleset *, size_t idx);

/* A rule by name for `moat scan` (describe, score): -1 if unknown. */
int sa_rule_info(const struct sa_ruleset *, const char *name,
    const char **describe, double *score);

#endif
