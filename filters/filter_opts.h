/*
 * filter_opts.h - reading the typed options of built-in filters from their
 * section (filter_conf_get()), with the errors moatd -t reports.
 *
 * Configuration time only (a filter's init), on the configuration thread.
 */
#ifndef MOAT_FILTER_OPTS_H
#define MOAT_FILTER_OPTS_H

#include <stddef.h>

struct filter_conf;
typedef void (*filter_dir_fn)(void *arg, const char *dir);

/*
 * yes/true or no/false; *out = def when the option is absent. 0, or -1
 * after reporting the error.
 */
int filter_opt_bool(
    const struct filter_conf *, const char *key, int def, int *out);

/*
 * A number in [lo, hi]; *out untouched when absent. The error says the
 * value "is not <what>". 0 or -1.
 */
int filter_opt_num(const struct filter_conf *, const char *key, double lo,
    double hi, const char *what, double *out);

/*
 * A list option, "a, b c": words separated by spaces, tabs or commas, each
 * newly allocated (the caller frees them) and appended to out[*n]; def
 * (may be NULL) when the option is absent. More than max words in all is
 * an error. 0, or -1 after reporting it.
 */
int filter_opt_words(const struct filter_conf *, const char *key,
    const char *def, char **out, size_t max, size_t *n);

/*
 * For a filter's dirs hook (filter_api.h): dir(arg, the directory of
 * FILE), FILE an absolute path ("lmdb:" before it is skipped); nothing for
 * another path.
 */
void filter_dir_of(const char *file, filter_dir_fn, void *arg);

#endif
