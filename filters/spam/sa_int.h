/*
 * sa_int.h - internals shared by the SpamAssassin-format rule loader
 * (sa_conf.c, sa_regex.c, sa_meta.c, sa_net.c), the eval functions
 * (sa_eval.c) and the engine (sa_engine.c). Not a public interface.
 *
 * Ownership: everything hanging off a struct sa_ruleset is owned by it
 * and freed by sa_ruleset_free(); after load it is read-only. The
 * per-message state (struct sa_scratch, struct sa_ctx) belongs to the
 * calling thread.
 */
#ifndef MOAT_SA_INT_H
#define MOAT_SA_INT_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdint.h>

#include "sa_rules.h"

/* tflags */
#define SA_TF_MULTIPLE	      0x0001u
#define SA_TF_NICE	      0x0002u
#define SA_TF_NET	      0x0004u
#define SA_TF_LEARN	      0x0008u
#define SA_TF_USERCONF	      0x0010u
#define SA_TF_NOAUTOLEARN     0x0020u
#define SA_TF_AUTOLEARN_FORCE 0x0040u
#define SA_TF_PUBLISH	      0x0080u
#define SA_TF_NOSUBJECT	      0x0100u /* body rule does not see the Subject */
#define SA_TF_NOTRIM	      0x0200u
#define SA_TF_DOMAINS_ONLY    0x0400u

/* header modifiers */
#define SA_HM_RAW    0x01u
#define SA_HM_ADDR   0x02u
#define SA_HM_NAME   0x04u
#define SA_HM_FIRST  0x08u
#define SA_HM_LAST   0x10u
#define SA_HM_HOST   0x20u
#define SA_HM_DOMAIN 0x40u

/*
 * sa_conf.c: take the modifiers off "Name:mod:mod" (in place) into
 * *mods (SA_HM_*): NULL, or the first modifier not known.
 */
const char *sa_header_mods(char *name, unsigned *mods);

#define SA_MAXARGS     8
#define SA_MAXHITS_CAP 1000u /* "multiple" never counts past this */

struct sa_rule;
struct sa_ctx;

struct sa_evalargs {
	unsigned n;
	char	*s[SA_MAXARGS]; /* unquoted */
};

/*
 * An eval function: > 0 = the rule fired (that many times), 0 = not.
 * It reads the message through ctx and never fails; it must be bounded
 * in time by the (bounded) view. Add one by writing the function in
 * sa_eval.c and one row in its table.
 */
typedef int (*sa_evalfn)(
    struct sa_ctx *, const struct sa_rule *, const struct sa_evalargs *);

struct sa_evaldef {
	const char *name;
	sa_evalfn   fn; /* NULL: known, left to the DNS list module */
	unsigned    minargs, maxargs;
};

/* meta byte code, evaluated on a small stack */
enum sa_mopcode {
	MOP_RULE, /* push value of rule arg */
	MOP_ZERO, /* an undefined rule: push 0 */
	MOP_NUM,  /* push num */
	MOP_NOT,
	MOP_NEG,
	MOP_MUL,
	MOP_DIV,
	MOP_ADD,
	MOP_SUB,
	MOP_LT,
	MOP_LE,
	MOP_GT,
	MOP_GE,
	MOP_EQ,
	MOP_NE,
	MOP_AND,
	MOP_OR
};

struct sa_mop {
	enum sa_mopcode op;
	uint32_t	arg; /* rule index */
	double		num;
};

#define SA_META_MAXCODE	 512
#define SA_META_MAXSTACK 64

struct sa_rule {
	char	     *name;
	char	     *describe;
	const char   *file; /* interned in the ruleset */
	unsigned      line;
	int	      defined;
	enum sa_rtype type;
	unsigned      tflags;
	unsigned      maxhits;
	int	      priority;
	int	      scored; /* a score line was seen */
	double	      score[4];
	double	      sc;     /* score in the chosen set */
	double	      sc_nb;  /* in that set without Bayes (set & 1) */
	int	      run;    /* evaluated at all */
	int	      sub;    /* "__" rule: never reported */
	int	      is_net; /* left to the caller (external hits) */

	/* regex rules */
	char *pattern;	  /* PCRE2 source after translation */
	char *orig;	  /* before ReplaceTags, if it applied */
	char *inline_pat; /* tags inline when `pattern` calls
			     subroutines (for Hyperscan) */
	int pf;		  /* in the Hyperscan prefilter */
	int lazy;	  /* costly, read only by metas: run only when a
			     meta's outcome depends on it */
	uint32_t    reopts;
	pcre2_code *re;
	int	    jit; /* re was JIT-compiled: pcre2_jit_match() */

	/* header and mimeheader */
	char	*hdr;
	unsigned hmods;
	char	*unset;
	int	 neg;
	int	 exists;

	/* eval: rules */
	const struct sa_evaldef *ev;
	struct sa_evalargs	 args;
	char			*evalname;

	/* meta */
	char	      *metasrc;
	struct sa_mop *code;
	unsigned       ncode;
};

struct sa_list {
	char  *name;
	char **v;
	size_t n, cap;
	/* for sa_list_has_domain(), built when the load finishes (entries
	   of v, not owned): the plain ones sorted, the wildcards */
	char **plain, **wild;
	size_t nplain, nwild;
};

struct sa_kv {
	char *k, *v;
};

struct sa_ruleset {
	struct sa_rule **rules;
	size_t		 nrules, cap;
	uint32_t	*hash; /* open addressing: index + 1, 0 = empty */
	size_t		 hashcap;

	/* rules to run, by type, in priority order; metas topologically */
	uint32_t *order[SA_NTYPES];
	size_t	  norder[SA_NTYPES];
	uint32_t *evals; /* eval rules of any type, run after regexes */
	size_t	  nevals;
	uint32_t *lazy; /* regex rules run only when a meta needs them */
	size_t	  nlazy;

	struct sa_list *lists;
	size_t		nlists;

	struct sa_netrule *net;
	size_t		   nnet, netcap;

	char **files;
	size_t nfiles;

	/* ReplaceTags */
	struct sa_kv *tags, *pre, *post, *inter;
	size_t	      ntags, npre, npost, ninter;
	char	    **replace_rules;
	size_t	      nreplace;
	char	     *replace_start, *replace_end;

	struct sa_pf *pf; /* Hyperscan databases, or NULL */

	char **errors; /* "file:line: reason", the first SA_MAX_ERRORS */
	size_t nerrors;

	int		scoreset;
	struct sa_stats stats;
};

/* Per-message evaluation state handed to eval functions. */
struct sa_ctx {
	const struct sa_ruleset *rs;
	struct sa_scratch	*sc;
	const struct msgview	*mv;
	const char		*raw;
	size_t			 rawlen;
	const struct sa_facts	*facts;
	pcre2_match_data	*md;
	int			 nb; /* score with sa_rule.sc_nb */
};

/* A rule's score in the set this evaluation uses. */
static inline double
sa_score(const struct sa_ctx *c, const struct sa_rule *r)
{
	return c->nb ? r->sc_nb : r->sc;
}

/* sa_freemail.c: FreeMail.pm's address test, check_freemail_header
   (field "Name" for its addresses, or "Name:mod"; regex may be NULL) and
   check_freemail_replyto ('replyto': reply = 0, 'reply': 1) */
int sa_freemail_is(struct sa_ctx *, const char *addr);
int sa_freemail_header(struct sa_ctx *, const char *field, const char *regex);
int sa_freemail_replyto(struct sa_ctx *, int reply);

/* sa_eval.c: a pattern made from a rule argument or message data,
   compiled for one use (no JIT); NULL if it does not compile. */
pcre2_code *sa_compile_once(const char *pat, uint32_t opts);

/* sa_conf.c */
struct sa_rule *sa_rule_find(const struct sa_ruleset *, const char *name);
int		sa_rule_index(const struct sa_ruleset *, const char *name);
struct sa_list *sa_list_get(const struct sa_ruleset *, const char *name);
int		sa_list_has_domain(
		const struct sa_ruleset *, const char *list, const char *domain);

/* sa_regex.c: parse "/re/flags" or "m{re}flags" at *p; 0 or -1 */
int sa_regex_parse(const char **p, char **pattern, uint32_t *opts,
    unsigned *translated, char *why, size_t whylen);
/* compile with JIT; NULL with the reason in why */
pcre2_code *sa_regex_compile(
    const char *pattern, uint32_t opts, int *code, char *why, size_t whylen);

/* sa_meta.c */
int sa_meta_compile(
    struct sa_ruleset *, struct sa_rule *, char *why, size_t whylen);
/* order metas by dependency; marks rules in cycles; 0 or count of bad */
size_t sa_meta_order(
    struct sa_ruleset *, char *why, size_t whylen, struct sa_rule **bad);
double sa_meta_value(const struct sa_rule *, const double *values);
void   sa_meta_interval(const struct sa_rule *, const double *lo,
      const double *hi, double *rlo, double *rhi);

/* sa_eval.c */
const struct sa_evaldef *sa_eval_lookup(const char *name);
int			 sa_eval_parse_args(
			 const char *s, struct sa_evalargs *, char *why, size_t whylen);
void sa_eval_args_free(struct sa_evalargs *);
/* sa_eval_relay.c: the relay evals (RelayEval, forged Received) */
const struct sa_evaldef *sa_eval_relay_lookup(const char *name);

/* sa_net.c: the DNS list definitions */
int  sa_net_is_eval(const char *evalname);
void sa_net_add_eval(struct sa_ruleset *, struct sa_rule *);
void sa_net_add_directive(
    struct sa_ruleset *, const char *directive, const char *args);
void sa_net_free(struct sa_ruleset *);

/* sa_prefilter.c */
struct sa_scratch;
void sa_prefilter_build(struct sa_ruleset *, const char *cache_dir);
void sa_prefilter_free(struct sa_ruleset *);
int  sa_prefilter_prepare(const struct sa_ruleset *, struct sa_scratch *);
int  sa_prefilter_scan(const struct sa_ruleset *, struct sa_scratch *, int t,
     const char *s, size_t n, uint32_t unit);
int  sa_prefilter_has(const struct sa_ruleset *, int t);
void sa_prefilter_scratch_free(struct sa_scratch *);

/* sa_engine.c helpers for evals */
const char *sa_get_header(
    struct sa_ctx *, const char *name, unsigned mods, size_t *len);
struct mv_header;
/* one decoded header value as SpamAssassin shows it (folds one space,
   trimmed), in the message's arena */
const char *sa_header_value(struct sa_ctx *, const struct mv_header *);

/* sa_date.c: parse_rfc822_date's reading of a date (seconds since the
   epoch, -1 if none), and the date-like run HeaderEval takes out of a
   Received field (1 and its [start, end) or 0) */
long long sa_date_parse(const char *date, size_t len);
int sa_received_date(const char *s, size_t len, size_t *start, size_t *end);

#endif
