/*
 * scand_opts.c - moat-scand's command line (see scand.c for what each
 * option means): getopt, -o key=value, bounds and defaults. A bad option
 * prints a line and exits 2.
 *
 * Runs once in main() before any thread; scand_opts is read-only after.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "scand.h"

#define MAX_CHANNELS 1024

struct scand_opts scand_opts = {
	.threads = 0,
	.queue_max = 64,
	.max_scansize = 100ull << 20,
	.max_filesize = 50ull << 20,
	.max_recursion = 16,
	.max_files = 10000,
	.max_scantime = 30000,
	.heuristics = 1,
	.files = 1,
	.sandbox = SANDBOX_KILL,
};

static void
usage(void)
{
	fprintf(stderr,
	    "usage: moat-scand -d DBPATH -n N [-t THREADS] [-T TMPDIR] "
	    "[-u USER] [-f] [-o key=value ...]\n");
	exit(2);
}

/* A number with an optional K/M/G suffix, within [lo, hi]. */
static int
parse_size(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char		  *end;
	unsigned long long v;
	unsigned	   shift = 0;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	if (*end == 'K' || *end == 'k')
		shift = 10;
	else if (*end == 'M' || *end == 'm')
		shift = 20;
	else if (*end == 'G' || *end == 'g')
		shift = 30;
	if (shift != 0)
		end++;
	if (*end != '\0' || v > (hi >> shift) || (v << shift) < lo)
		return -1;
	*out = v << shift;
	return 0;
}

static int
parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
	uint64_t v;

	if (strpbrk(s, "KkMmGg") != NULL || parse_size(s, lo, hi, &v) < 0)
		return -1;
	*out = (unsigned)v;
	return 0;
}

static int
parse_bool(const char *s, int *out)
{
	if (strcmp(s, "yes") == 0)
		*out = 1;
	else if (strcmp(s, "no") == 0)
		*out = 0;
	else
		return -1;
	return 0;
}

static int
set_option(char *kv)
{
	struct scand_opts *o = &scand_opts;
	char		  *v = strchr(kv, '=');
	int		   rc = -1;

	if (v == NULL)
		return -1;
	*v++ = '\0';
	if (strcmp(kv, "max_scansize") == 0)
		rc = parse_size(v, 1, 4ull << 30, &o->max_scansize);
	else if (strcmp(kv, "max_filesize") == 0)
		rc = parse_size(v, 1, 4ull << 30, &o->max_filesize);
	else if (strcmp(kv, "max_recursion") == 0)
		rc = parse_uint(v, 1, 100, &o->max_recursion);
	else if (strcmp(kv, "max_files") == 0)
		rc = parse_uint(v, 1, 1000000, &o->max_files);
	else if (strcmp(kv, "max_scantime") == 0)
		rc = parse_uint(v, 1, 3600000, &o->max_scantime);
	else if (strcmp(kv, "queue_max") == 0)
		rc = parse_uint(v, 1, 100000, &o->queue_max);
	else if (strcmp(kv, "heuristics") == 0)
		rc = parse_bool(v, &o->heuristics);
	else if (strcmp(kv, "files") == 0)
		rc = parse_bool(v, &o->files);
	else if (strcmp(kv, "selftest_forbidden") == 0)
		rc = parse_bool(v, &o->selftest_forbidden);
	else if (strcmp(kv, "sandbox") == 0) {
		rc = 0;
		if (strcmp(v, "yes") == 0)
			o->sandbox = SANDBOX_KILL;
		else if (strcmp(v, "no") == 0)
			o->sandbox = SANDBOX_OFF;
		else if (strcmp(v, "log") == 0)
			o->sandbox = SANDBOX_LOG;
		else
			rc = -1;
	}
	if (rc < 0)
		fprintf(stderr, "moat-scand: bad option -o %s=%s\n", kv, v);
	return rc;
}

void
parse_args(int argc, char **argv)
{
	struct scand_opts *o = &scand_opts;
	int		   ch;
	long		   cpus;

	while ((ch = getopt(argc, argv, "d:n:t:T:u:fo:")) != -1) {
		switch (ch) {
		case 'd':
			o->dbpath = optarg;
			break;
		case 'n':
			if (parse_uint(optarg, 1, MAX_CHANNELS, &o->nfds) < 0)
				usage();
			break;
		case 't':
			if (parse_uint(optarg, 1, 256, &o->threads) < 0)
				usage();
			break;
		case 'T':
			o->tmpdir = optarg;
			break;
		case 'u':
			o->user = optarg;
			break;
		case 'f':
			break;
		case 'o':
			if (set_option(optarg) < 0)
				usage();
			break;
		default:
			usage();
		}
	}
	if (optind != argc || o->dbpath == NULL || o->nfds == 0)
		usage();
	if (o->threads == 0) {
		cpus = sysconf(_SC_NPROCESSORS_ONLN);
		o->threads = cpus < 1 ? 1 : cpus > 256 ? 256 : (unsigned)cpus;
	}
}
