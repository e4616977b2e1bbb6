/*
 * moat.c - the moat administration tool: global options, the command
 * table, and configuration loading shared by the commands.
 *
 *	moat [-c file] command [arguments]
 *
 * The configuration is moatd's (moat.conf(5)): -c file, else
 * SYSCONFDIR/moat/moat.conf if it exists, else the built-in defaults.
 * Exit statuses: 0 ok, 1 the operation failed, 2 usage (moat scan has its
 * own above 2, see moat(1)). Single-threaded.
 */
#include <sys/stat.h>
#include <dirent.h>
#include <errno.h>
#include <event2/thread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "moat.h"
#include "util.h"

static int cmd_help(const char *, int, char **);
static int run_quarantine(const char *, int, char **);

static const struct command {
	const char *name;
	int (*run)(const char *conffile, int argc, char **argv);
} commands[] = {
	{ "quarantine", run_quarantine },
	{ "scan", cmd_scan },
	{ "dns", cmd_dns },
	{ "learn", cmd_learn },
	{ "help", cmd_help },
};

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: moat [-c file] command [arguments]\n"
	    "\n"
	    "  quarantine list [--json]\n"
	    "  quarantine show ID [--headers | --raw]\n"
	    "  quarantine release ID [--to address:port] [--keep]\n"
	    "  quarantine delete ID ...\n"
	    "  scan [options] [file | -]        (see moat(1))\n"
	    "  dns [--json] name [type] | -x address\n"
	    "  learn --spam|--ham|--forget [--db location] file|dir ...\n"
	    "  learn --stats | --classify [--db location] [file|dir ...]\n"
	    "  help\n"
	    "\n"
	    "-c file: configuration (default %s if it exists)\n",
	    MOAT_DEFAULT_CONF);
}

static int
cmd_help(const char *conffile, int argc, char **argv)
{
	usage(stdout);
	return MOAT_EXIT_OK;
}

struct config *
moat_config(const char *conffile)
{
	return config_load(conffile, NULL);
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
moat_dir_files(const char *dir, char ***v, size_t *n)
{
	struct stat    st;
	DIR	      *d;
	struct dirent *e;
	size_t	       first = *n;
	char	       buf[4096];

	if ((d = opendir(dir)) == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(buf, sizeof(buf), "%s/%s", dir, e->d_name);
		if (stat(buf, &st) == -1 || !S_ISREG(st.st_mode))
			continue;
		*v = xrealloc(*v, (*n + 1) * sizeof(**v));
		(*v)[(*n)++] = xstrdup(buf);
	}
	closedir(d);
	qsort(*v + first, *n - first, sizeof(**v), name_cmp);
	return 0;
}

static int
run_quarantine(const char *conffile, int argc, char **argv)
{
	struct config *cf;
	int	       rc;

	if ((cf = moat_config(conffile)) == NULL)
		return MOAT_EXIT_FAIL;
	rc = cmd_quarantine(cf, argc, argv);
	config_free(cf);
	return rc;
}

int
main(int argc, char **argv)
{
	const char *conffile = NULL;
	size_t	    i;
	int	    ch;

	log_init(LOG_TARGET_STDERR, 0);
	log_set_max_prio(LOG_WARNING);
	/* Worker threads wake the scan's event loop (loop_post). */
	if (evthread_use_pthreads() == -1) {
		fprintf(stderr, "moat: evthread_use_pthreads failed\n");
		return MOAT_EXIT_FAIL;
	}
	signal(SIGPIPE, SIG_IGN);
	/* '+': options end at the command; its own come after it. */
	while ((ch = getopt(argc, argv, "+c:h")) != -1) {
		switch (ch) {
		case 'c':
			conffile = optarg;
			break;
		case 'h':
			usage(stdout);
			return MOAT_EXIT_OK;
		default:
			usage(stderr);
			return MOAT_EXIT_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1) {
		usage(stderr);
		return MOAT_EXIT_USAGE;
	}
	if (conffile == NULL && access(MOAT_DEFAULT_CONF, F_OK) == 0)
		conffile = MOAT_DEFAULT_CONF;
	for (i = 0; i < nitems(commands); i++)
		if (strcmp(argv[0], commands[i].name) == 0) {
			optind = 0; /* the command parses its own options */
			return commands[i].run(conffile, argc, argv);
		}
	fprintf(stderr, "moat: unknown command \"%s\"\n", argv[0]);
	usage(stderr);
	return MOAT_EXIT_USAGE;
}
