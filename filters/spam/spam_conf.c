/*
 * spam_conf.c - the rule files and the classifier of a spam filter
 * section; see spam_conf.h.
 */
#include <stdlib.h>
#include <string.h>

#include "filter_api.h"
#include "filter_opts.h"
#include "sa_rules.h"
#include "spam_conf.h"
#include "util.h"

#ifndef MOAT_SPAM_RULES
#define MOAT_SPAM_RULES "/usr/local/share/moat/spam.cf"
#endif

#define IGNORE_MAX 1024 /* bayes_ignore_header words of the option */

int
spam_rule_paths(
    const struct filter_conf *fc, char **paths, size_t *n, size_t *strict_from)
{
	const char *v = filter_conf_get(fc, "default_rules");
	int	    bad = 0;

	/*
	 * moat's own rules first, then the distribution's (both lenient; a
	 * rule defined in both is the distribution's: SpamAssassin's own
	 * definitions of GTUBE, MISSING_DATE ... win when its ruleset is
	 * loaded), then the site's (strict).
	 */
	*n = 0;
	if (v == NULL || strcmp(v, "yes") == 0 || strcmp(v, "true") == 0)
		paths[(*n)++] = xstrdup(MOAT_SPAM_RULES);
	else if (v[0] == '/')
		paths[(*n)++] = xstrdup(v);
	else if (strcmp(v, "no") != 0 && strcmp(v, "false") != 0) {
		filter_conf_error(fc, "default_rules: yes, no or a path");
		bad = 1;
	}
	bad |= filter_opt_words(
		   fc, "sa_rules", NULL, paths, *n + SPAM_PATHS_MAX, n) != 0;
	*strict_from = *n;
	bad |= filter_opt_words(fc, "rules", NULL, paths,
		   *strict_from + SPAM_PATHS_MAX, n) != 0;
	return bad ? -1 : 0;
}

void
spam_paths_free(char **paths, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(paths[i]);
}

int
spam_bayes_conf(const struct filter_conf *fc, const struct sa_ruleset *rs,
    struct spam_bayes_conf *sc)
{
	const char *const *lines = NULL;
	size_t		   nlines = 0, i;
	double		   ms = BAYES_MIN_SPAM, mh = BAYES_MIN_HAM;
	int		   bad = 0;

	memset(sc, 0, sizeof(*sc));
	sc->db = fc != NULL ? filter_conf_get(fc, "bayes_db") : NULL;
	if (sc->db == NULL)
		sc->db = SPAM_BAYES_DB;
	if (fc != NULL) {
		bad |= filter_opt_num(
			   fc, "bayes_min_spam", 1, 1e9, "a number", &ms) != 0;
		bad |= filter_opt_num(
			   fc, "bayes_min_ham", 1, 1e9, "a number", &mh) != 0;
		sc->own = xcalloc(IGNORE_MAX, sizeof(char *));
		bad |= filter_opt_words(fc, "bayes_ignore_header", NULL,
			   sc->own, IGNORE_MAX, &sc->nown) != 0;
	}
	if (rs != NULL)
		lines = sa_ruleset_list(rs, "bayes_ignore_header", &nlines);
	sc->ignore = xcalloc(nlines + sc->nown + 1, sizeof(char *));
	for (i = 0; i < nlines; i++)
		sc->ignore[i] = lines[i];
	for (i = 0; i < sc->nown; i++)
		sc->ignore[nlines + i] = sc->own[i];
	sc->opts.min_spam = (unsigned)ms;
	sc->opts.min_ham = (unsigned)mh;
	sc->opts.tok.ignore_headers = sc->ignore;
	sc->opts.tok.nignore = nlines + sc->nown;
	return bad ? -1 : 0;
}

void
spam_bayes_conf_free(struct spam_bayes_conf *sc)
{
	spam_paths_free(sc->own, sc->nown);
	free(sc->own);
	free(sc->ignore);
	memset(sc, 0, sizeof(*sc));
}
