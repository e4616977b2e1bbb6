/*
 * filter_opts.c - typed options of built-in filters; see filter_opts.h.
 */
#include <stdlib.h>
#include <string.h>

#include "filter_api.h"
#include "filter_opts.h"
#include "util.h"

int
filter_opt_bool(
    const struct filter_conf *fc, const char *key, int def, int *out)
{
	const char *v = filter_conf_get(fc, key);

	*out = def;
	if (v == NULL)
		return 0;
	if (strcmp(v, "yes") == 0 || strcmp(v, "true") == 0)
		*out = 1;
	else if (strcmp(v, "no") == 0 || strcmp(v, "false") == 0)
		*out = 0;
	else {
		filter_conf_error(fc, "%s: \"%s\" is not yes or no", key, v);
		return -1;
	}
	return 0;
}

int
filter_opt_num(const struct filter_conf *fc, const char *key, double lo,
    double hi, const char *what, double *out)
{
	const char *v = filter_conf_get(fc, key);
	char	   *end;
	double	    d;

	if (v == NULL)
		return 0;
	d = strtod(v, &end);
	if (end == v || *end != '\0' || !(d >= lo && d <= hi)) {
		filter_conf_error(fc, "%s: \"%s\" is not %s", key, v, what);
		return -1;
	}
	*out = d;
	return 0;
}

int
filter_opt_words(const struct filter_conf *fc, const char *key, const char *def,
    char **out, size_t max, size_t *n)
{
	const char *v = filter_conf_get(fc, key), *p, *e;

	if (v == NULL)
		v = def;
	for (p = v; p != NULL && *p != '\0'; p = e) {
		while (*p == ' ' || *p == ',' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		for (e = p; *e != '\0' && *e != ' ' && *e != ',' && *e != '\t';
		     e++)
			;
		if (*n == max) {
			filter_conf_error(
			    fc, "%s: more than %zu entries", key, max);
			return -1;
		}
		out[(*n)++] = xstrndup(p, (size_t)(e - p));
	}
	return 0;
}

void
filter_dir_of(const char *file, filter_dir_fn dir, void *arg)
{
	const char *slash;
	char	   *d;

	if (strncmp(file, "lmdb:", 5) == 0)
		file += 5;
	if (file[0] != '/' || (slash = strrchr(file, '/')) == file)
		return;
	d = xstrndup(file, (size_t)(slash - file));
	dir(arg, d);
	free(d);
}
