/*
 * spam_conf.h - what a `filter "spam"` section says about its rule files
 * and its classifier, read in one place for the two programs that need
 * it: moatd's spam filter (spam_filter.c) and `moat learn`
 * (tools/moat_learn.c), so that learning and scoring open the same store
 * and cut messages into the same tokens.
 *
 * Configuration time only (the filter's init, the tool's start), one
 * thread. Errors are reported with filter_conf_error().
 */
#ifndef MOAT_SPAM_CONF_H
#define MOAT_SPAM_CONF_H

#include <stddef.h>

#include "bayes.h"

struct filter_conf;
struct sa_ruleset;

#define SPAM_BAYES_DB  "/var/lib/moat/bayes.lmdb"
#define SPAM_RULES_CACHE "/var/cache/moat" /* compiled prefilter databases */
#define SPAM_PATHS_MAX 64			/* per option */
#define SPAM_RULES_MAX (2 * SPAM_PATHS_MAX + 1) /* in all */

/*
 * The rule files in load order: moat's spam.cf (default_rules: yes, no,
 * or another file), sa_rules, rules. paths[0..*strict_from) are lenient,
 * the rest (the site's own) strict. paths holds SPAM_RULES_MAX; the
 * strings are the caller's (spam_paths_free). 0, or -1 after reporting.
 */
int spam_rule_paths(
    const struct filter_conf *, char **paths, size_t *n, size_t *strict_from);
void spam_paths_free(char **paths, size_t n);

/*
 * The classifier of a section (fc may be NULL: the defaults): its store
 * (bayes_db), the training it needs before it votes (bayes_min_spam,
 * bayes_min_ham), and the header fields its tokens leave out: the
 * `bayes_ignore_header` lines of the rule files (rs, may be NULL), then
 * the section's bayes_ignore_header option. The options point into fc,
 * rs and sc itself: all three outlive their use.
 */
struct spam_bayes_conf {
	const char	 *db;
	struct bayes_opts opts;
	const char	**ignore; /* opts.tok.ignore_headers */
	char		**own;	  /* the option's words */
	size_t		  nown;
};
int  spam_bayes_conf(const struct filter_conf *, const struct sa_ruleset *,
     struct spam_bayes_conf *);
void spam_bayes_conf_free(struct spam_bayes_conf *);

#endif
