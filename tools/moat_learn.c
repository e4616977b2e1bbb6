/*
 * moat_learn.c - `moat learn`: train the Bayesian classifier
 * (filters/spam/bayes.h) from messages on disk, or show what it knows.
 *
 *	moat learn --spam|--ham|--forget [--db LOCATION] FILE|DIR ...
 *	moat learn --stats [--db LOCATION]
 *	moat learn --classify [--db LOCATION] FILE|DIR ...
 *	moat learn --explain [--db LOCATION] FILE|DIR ...
 *
 * A FILE is one message, or an mbox (RFC 4155, mboxrd quoting) when it
 * starts with a "From " separator line, each message of it learned; a DIR
 * means every regular file directly in it (not recursive, in name order,
 * dot files skipped). Each message is decoded (msgview_new) and learned
 * once (bayes.h: relearning as the other class moves it, --forget removes
 * it). At the end one line of counts: learned, relearned, already known
 * (or forgotten, not known), failed. --classify changes nothing: it
 * prints each message's P(spam) (or "-" when the classifier does not
 * vote) and how many fell below 0.1, between, and above 0.9. --explain
 * prints each token of each message with its spam and ham counts and
 * f(w), '*' before those strong enough to count, then P(spam).
 *
 * The store: --db LOCATION, else the option bayes_db of the configuration's
 * spam filter section (the first `filter` whose type is "spam"), else
 * DEFAULT_DB. That section's bayes_ignore_header (names separated by
 * spaces or commas) is honoured, and the configuration's hostname counts
 * as a local host (its Received fields are not tokens), as in moatd.
 *
 * Exit status: 0 all messages handled, 1 some failed (unreadable, store
 * error), 2 usage. Single-threaded; moatd may learn into the same store
 * at the same time (store.h).
 */
#include <sys/mman.h>
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bayes.h"
#include "config.h"
#include "filter_api.h"
#include "filter_opts.h"
#include "mbox.h"
#include "moat.h"
#include "msgview.h"
#include "sa_rules.h"
#include "spam_conf.h"
#include "runas.h"
#include "store.h"
#include "util.h"

#define FILE_MAX    ((off_t)4 << 30) /* an mbox may be big */
#define MESSAGE_MAX ((size_t)64 << 20)

enum mode {
	M_NONE = 0,
	M_SPAM,
	M_HAM,
	M_FORGET,
	M_STATS,
	M_CLASSIFY,
	M_EXPLAIN
};

struct learn {
	enum mode     mode;
	struct bayes *b;
	unsigned long n[5]; /* by enum bayes_outcome */
	unsigned long failed;
	unsigned long low, mid, high, novote; /* --classify */
	uint64_t      usec;		      /* time in the classifier */
};

static void
learn_usage(FILE *f)
{
	fprintf(f,
	    "usage: moat learn --spam|--ham|--forget [--db LOCATION] "
	    "FILE|DIR ...\n"
	    "       moat learn --stats [--db LOCATION]\n"
	    "       moat learn --classify [--db LOCATION] FILE|DIR ...\n"
	    "       moat learn --explain [--db LOCATION] FILE|DIR ...\n");
}

/* --explain: one token a line, the significant ones marked. */
static void
explain_cb(void *arg, const char *tok, uint64_t s, uint64_t h, double p)
{
	(void)arg;
	if (p < 0)
		printf("  -      %6s %6s  %s\n", "", "", tok);
	else
		printf("  %c%.3f %6llu %6llu  %s\n",
		    fabs(p - 0.5) >= BAYES_MIN_PROB_STRENGTH ? '*' : ' ', p,
		    (unsigned long long)s, (unsigned long long)h, tok);
}

/* One message: decode, learn or forget, count. */
static void
one(struct learn *l, const char *what, const char *msg, size_t len)
{
	struct bayes_result res;
	struct msgview	   *mv;
	char		    err[256];
	uint64_t	    t0;
	int		    rc;

	if (len > MESSAGE_MAX) {
		fprintf(stderr, "moat: learn: %s: larger than %zu bytes\n",
		    what, MESSAGE_MAX);
		l->failed++;
		return;
	}
	if ((mv = msgview_new(msg, len, NULL)) == NULL) {
		fprintf(stderr, "moat: learn: %s: out of memory\n", what);
		l->failed++;
		return;
	}
	t0 = now_usec();
	if (l->mode == M_EXPLAIN) {
		printf("%s\n", what);
		rc =
		    bayes_explain(l->b, mv, explain_cb, NULL, err, sizeof(err));
		if (rc == 0) {
			rc = bayes_classify(l->b, mv, &res, err, sizeof(err));
			if (rc == 0 && res.voted)
				printf("  P(spam) %.4f from %u tokens of %u "
				       "(%u known)\n",
				    res.prob, res.nused, res.ntokens,
				    res.nknown);
			else if (rc == 0)
				printf("  no vote\n");
		}
	} else if (l->mode == M_CLASSIFY) {
		rc = bayes_classify(l->b, mv, &res, err, sizeof(err));
		if (rc == 0) {
			if (!res.voted) {
				l->novote++;
				printf("%s -\n", what);
			} else {
				printf("%s %.4f\n", what, res.prob);
				if (res.prob < 0.1)
					l->low++;
				else if (res.prob > 0.9)
					l->high++;
				else
					l->mid++;
			}
		}
	} else if (l->mode == M_FORGET)
		rc = bayes_forget(l->b, mv, err, sizeof(err));
	else
		rc = bayes_learn(l->b, mv,
		    l->mode == M_SPAM ? BAYES_SPAM : BAYES_HAM, err,
		    sizeof(err));
	l->usec += now_usec() - t0;
	msgview_free(mv);
	if (rc < 0 || rc >= (int)nitems(l->n)) {
		fprintf(stderr, "moat: learn: %s: %s\n", what, err);
		l->failed++;
		return;
	}
	l->n[rc]++;
}

static void
file(struct learn *l, const char *path)
{
	struct mbox_iter it;
	struct stat	 st;
	const char	*msg;
	char		*map, *buf, what[600];
	size_t		 len, k = 0;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 ||
	    fstat(fd, &st) == -1) {
		fprintf(stderr, "moat: learn: %s: %s\n", path, strerror(errno));
		if (fd != -1)
			close(fd);
		l->failed++;
		return;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > FILE_MAX) {
		fprintf(stderr, "moat: learn: %s: %s\n", path,
		    S_ISREG(st.st_mode) ? "too large" : "not a regular file");
		close(fd);
		l->failed++;
		return;
	}
	if (st.st_size == 0) {
		close(fd);
		fprintf(stderr, "moat: learn: %s: empty\n", path);
		l->failed++;
		return;
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (map == MAP_FAILED) {
		fprintf(stderr, "moat: learn: %s: %s\n", path, strerror(errno));
		l->failed++;
		return;
	}
	if (!mbox_is_mbox(map, (size_t)st.st_size))
		one(l, path, map, (size_t)st.st_size);
	else {
		mbox_init(&it, map, (size_t)st.st_size);
		while (mbox_next(&it, &msg, &len)) {
			k++;
			strfmt(what, sizeof(what), "%s: message %zu", path, k);
			if (len > MESSAGE_MAX) {
				one(l, what, msg, len); /* reports it */
				continue;
			}
			buf = xmalloc(len + 1);
			one(l, what, buf, mbox_unquote(msg, len, buf));
			free(buf);
		}
	}
	munmap(map, (size_t)st.st_size);
}

static void
directory(struct learn *l, const char *path)
{
	char **files = NULL;
	size_t n = 0, i;

	if (moat_dir_files(path, &files, &n) == -1) {
		fprintf(stderr, "moat: learn: %s: %s\n", path, strerror(errno));
		l->failed++;
		return;
	}
	for (i = 0; i < n; i++) {
		file(l, files[i]);
		free(files[i]);
	}
	free(files);
}

/* The spam filter's section of the configuration, or NULL. */
static const struct filter_conf *
spam_section(const struct config *cf)
{
	size_t i;

	for (i = 0; cf != NULL && i < cf->nfilters; i++)
		if (strcmp(cf->filters[i].type, "spam") == 0)
			return &cf->filters[i];
	return NULL;
}

/*
 * The rule files of the spam section, for their bayes_ignore_header
 * lines (the filter leaves those header fields out of its tokens, so
 * learning must too). Loaded without the Hyperscan prefilter: only their
 * lists are read. NULL, with a warning, if they do not load: learning
 * then goes on with the section's own bayes_ignore_header.
 */
static struct sa_ruleset *
spam_rules(const struct filter_conf *fc)
{
	struct sa_load_opts lo;
	struct sa_ruleset  *rs;
	char		   *paths[SPAM_RULES_MAX], err[512];
	size_t		    n = 0, strict_from;

	if (spam_rule_paths(fc, paths, &n, &strict_from) == -1) {
		spam_paths_free(paths, n);
		return NULL;
	}
	memset(&lo, 0, sizeof(lo));
	lo.scoreset = 2;
	lo.strict_from = n; /* nothing refused here: moatd -t does that */
	lo.no_prefilter = 1;
	rs = sa_ruleset_load(
	    (const char *const *)paths, n, &lo, err, sizeof(err));
	if (rs == NULL)
		fprintf(stderr,
		    "moat: learn: warning: the spam rules do not load (%s); "
		    "their bayes_ignore_header lines are not used\n",
		    err);
	spam_paths_free(paths, n);
	return rs;
}

int
cmd_learn(const char *conffile, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "spam", no_argument, NULL, 's' },
		{ "ham", no_argument, NULL, 'h' },
		{ "forget", no_argument, NULL, 'f' },
		{ "stats", no_argument, NULL, 'S' },
		{ "classify", no_argument, NULL, 'C' },
		{ "explain", no_argument, NULL, 'E' },
		{ "db", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'H' },
		{ NULL, 0, NULL, 0 },
	};
	struct learn		  l;
	struct config		 *cf = NULL;
	const struct filter_conf *fc;
	struct store		 *st = NULL;
	struct store_opts	  so;
	struct bayes_opts	  bo;
	const char		 *db = NULL, *local[1];
	char			  err[512];
	struct sa_ruleset	 *rs = NULL;
	struct spam_bayes_conf	  bc;
	uint64_t		  ns, nh, nt;
	int			  ch, i, rc = MOAT_EXIT_FAIL;
	struct stat		  sb;

	memset(&l, 0, sizeof(l));
	memset(&bc, 0, sizeof(bc));
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		enum mode m = M_NONE;

		switch (ch) {
		case 's':
			m = M_SPAM;
			break;
		case 'h':
			m = M_HAM;
			break;
		case 'f':
			m = M_FORGET;
			break;
		case 'S':
			m = M_STATS;
			break;
		case 'C':
			m = M_CLASSIFY;
			break;
		case 'E':
			m = M_EXPLAIN;
			break;
		case 'd':
			db = optarg;
			continue;
		case 'H':
			learn_usage(stdout);
			return MOAT_EXIT_OK;
		default:
			learn_usage(stderr);
			return MOAT_EXIT_USAGE;
		}
		if (l.mode != M_NONE && l.mode != m) {
			fprintf(stderr,
			    "moat: learn: one of --spam, --ham, "
			    "--forget, --stats, --classify, --explain\n");
			return MOAT_EXIT_USAGE;
		}
		l.mode = m;
	}
	if (l.mode == M_NONE || (l.mode == M_STATS) != (optind == argc)) {
		learn_usage(stderr);
		return MOAT_EXIT_USAGE;
	}

	if ((cf = moat_config(conffile)) == NULL)
		return MOAT_EXIT_FAIL;
	/* The store is moatd's: made and written as its user (runas.h). */
	runas_prepare_dirs(cf);
	if (db != NULL && l.mode != M_STATS && l.mode != M_CLASSIFY &&
	    l.mode != M_EXPLAIN)
		filter_dir_of(db, runas_prepare_dir, cf);
	runas_drop(cf, RUNAS_READ_ANY);
	if ((fc = spam_section(cf)) != NULL)
		rs = spam_rules(fc);
	if (spam_bayes_conf(fc, rs, &bc) == -1)
		goto out;
	bo = bc.opts;
	if (db == NULL)
		db = bc.db;
	if (cf->hostname != NULL) {
		local[0] = cf->hostname;
		bo.tok.local_hosts = local;
		bo.tok.nlocal = 1;
	}
	/* Statistics and classification never create a store. */
	if ((l.mode == M_STATS || l.mode == M_CLASSIFY ||
		l.mode == M_EXPLAIN) &&
	    stat(strncmp(db, "lmdb:", 5) == 0 ? db + 5 : db, &sb) == -1) {
		fprintf(stderr, "moat: learn: %s: %s\n", db, strerror(errno));
		goto out;
	}
	memset(&so, 0, sizeof(so));
	so.nosync = 1; /* one sync at the end (store_sync) */
	if ((st = store_open(db, &so, err, sizeof(err))) == NULL) {
		fprintf(stderr, "moat: learn: %s\n", err);
		goto out;
	}
	if ((l.b = bayes_open(st, &bo, err, sizeof(err))) == NULL) {
		fprintf(stderr, "moat: learn: %s: %s\n", db, err);
		goto out;
	}
	if (l.mode != M_STATS) {
		msgview_global_init();
		for (i = optind; i < argc; i++) {
			if (stat(argv[i], &sb) == 0 && S_ISDIR(sb.st_mode))
				directory(&l, argv[i]);
			else
				file(&l, argv[i]);
		}
		if (store_sync(st, err, sizeof(err)) == -1) {
			fprintf(stderr, "moat: learn: %s\n", err);
			l.failed++;
		}
		if (l.mode == M_CLASSIFY)
			printf("below 0.1: %lu, between: %lu, above 0.9: %lu, "
			       "no vote: %lu, failed %lu (%.2f ms per "
			       "message in the classifier)\n",
			    l.low, l.mid, l.high, l.novote, l.failed,
			    l.usec / 1000.0 /
				(double)(l.low + l.mid + l.high + l.novote +
				    (l.low + l.mid + l.high + l.novote == 0)));
		else if (l.mode == M_EXPLAIN)
			;
		else if (l.mode == M_FORGET)
			printf("forgotten %lu, not known %lu, failed %lu\n",
			    l.n[BAYES_FORGOTTEN], l.n[BAYES_UNKNOWN], l.failed);
		else
			printf("%s: learned %lu, relearned %lu, already known "
			       "%lu, failed %lu\n",
			    l.mode == M_SPAM ? "spam" : "ham",
			    l.n[BAYES_LEARNED], l.n[BAYES_RELEARNED],
			    l.n[BAYES_KNOWN], l.failed);
	}
	if (bayes_stats(l.b, &ns, &nh, &nt, err, sizeof(err)) == -1) {
		fprintf(stderr, "moat: learn: %s\n", err);
		goto out;
	}
	printf("nspam %llu\nnham %llu\ntokens %llu\n", (unsigned long long)ns,
	    (unsigned long long)nh, (unsigned long long)nt);
	rc = l.failed > 0 ? MOAT_EXIT_FAIL : MOAT_EXIT_OK;
out:
	bayes_free(l.b);
	store_close(st);
	spam_bayes_conf_free(&bc);
	sa_ruleset_free(rs);
	config_free(cf);
	return rc;
}
