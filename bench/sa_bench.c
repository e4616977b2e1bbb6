/*
 * sa_bench.c - time the SpamAssassin-format rule engine (filters/spam/)
 * over directories of raw messages: loads the given rule paths (default
 * Debian's /usr/share/spamassassin), builds a crude view of each message
 * (tests/unit/sa_testview.h: no MIME decoding) and reports the time
 * sa_eval() takes per message, the mean score and how many messages
 * reach 5 points. Not a test; single-threaded.
 *
 *	bench/sa_bench [-m] [-n] [-l] [-c] [-r rules]... dir...
 *
 * -m: real views (msgview_new(), the MIME walk) instead of the crude
 * test view; the view time is then the MIME walk's.
 * -n: without the Hyperscan prefilter; -l: every rule runs (no lazy
 * rules); -c: also load the rules with neither and check every message
 * gets the same hits both ways (the prefilter must never lose a match,
 * the lazy rules never change a reported rule).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sa_rules.h"
#include "util.h"
#include "../tests/unit/sa_testview.h"

static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long  n;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	*len = fread(buf, 1, (size_t)n, f);
	buf[*len] = '\0';
	fclose(f);
	return buf;
}

int
main(int argc, char **argv)
{
	const char	   *rules[16];
	size_t		    nrules = 0, i;
	int		    a;
	char		    err[1024];
	struct sa_load_opts o = { .scoreset = 2, .strict_from = 100 };
	struct sa_ruleset  *rs;
	struct sa_scratch  *sc;
	uint64_t	    t0;

	struct sa_ruleset *ref = NULL;
	struct sa_scratch *rsc = NULL;
	int		   compare = 0, real = 0;
	size_t		   mismatches = 0;

	for (a = 1; a < argc; a++) {
		if (strcmp(argv[a], "-n") == 0)
			o.no_prefilter = 1;
		else if (strcmp(argv[a], "-l") == 0)
			o.no_lazy = 1;
		else if (strcmp(argv[a], "-c") == 0)
			compare = 1;
		else if (strcmp(argv[a], "-m") == 0)
			real = 1;
		else if (strcmp(argv[a], "-r") == 0 && a + 1 < argc &&
		    nrules < 16)
			rules[nrules++] = argv[++a];
		else
			break;
	}
	if (nrules == 0)
		rules[nrules++] = "/usr/share/spamassassin";
	t0 = now_usec();
	rs = sa_ruleset_load(rules, nrules, &o, err, sizeof(err));
	if (rs == NULL) {
		fprintf(stderr, "refused: %s\n", err);
		return 1;
	}
	printf("load: %.1f ms\n", (now_usec() - t0) / 1000.0);
	if (compare) {
		struct sa_load_opts o2 = o;

		o2.no_prefilter = 1;
		o2.no_lazy = 1;
		ref = sa_ruleset_load(rules, nrules, &o2, err, sizeof(err));
		rsc = sa_scratch_new();
		if (ref == NULL)
			return 1;
	}
	msgview_global_init();
	sc = sa_scratch_new();
	if (getenv("SA_BENCH_PROFILE"))
		sa_scratch_profile(sc, 1);
	for (; a < argc; a++) {
		struct dirent **ents;
		int		n = scandir(argv[a], &ents, NULL, alphasort);
		uint64_t	teval = 0, tview = 0, worst = 0;
		size_t		msgs = 0, spam = 0;
		double		total = 0;

		for (i = 0; i < (size_t)(n > 0 ? n : 0); i++) {
			char		      path[4096];
			char		     *raw;
			size_t		      len;
			struct tv	     *t = malloc(sizeof(*t));
			struct sa_result      res;
			uint64_t	      t1, t2, t3;
			const struct msgview *mv;

			snprintf(path, sizeof(path), "%s/%s", argv[a],
			    ents[i]->d_name);
			if (ents[i]->d_name[0] == '.' ||
			    strstr(ents[i]->d_name, ".json") != NULL ||
			    (raw = slurp(path, &len)) == NULL) {
				free(t);
				free(ents[i]);
				continue;
			}
			t1 = now_usec();
			if (real) {
				const char *b = raw;
				size_t	    bl = len;

				/* an mbox From_ line is not part of it */
				if (bl > 5 && memcmp(b, "From ", 5) == 0) {
					const char *nl = memchr(b, '\n', bl);

					if (nl != NULL) {
						bl -= (size_t)(nl + 1 - b);
						b = nl + 1;
					}
				}
				mv = msgview_new(b, bl, NULL);
			} else {
				tv_from_raw(t, raw, len);
				mv = &t->mv;
			}
			t2 = now_usec();
			sa_eval(rs, sc, mv, raw, len, NULL, NULL, 0, &res);
			t3 = now_usec();
			tview += t2 - t1;
			teval += t3 - t2;
			if (t3 - t2 > worst)
				worst = t3 - t2;
			msgs++;
			if (ref != NULL) {
				struct sa_result r2;
				size_t		 k;
				int		 same;

				sa_eval(
				    ref, rsc, mv, raw, len, NULL, NULL, 0, &r2);
				same = r2.nhits == res.nhits;
				for (k = 0; same && k < res.nhits; k++)
					same = strcmp(r2.hits[k].name,
						   res.hits[k].name) == 0 &&
					    r2.hits[k].count ==
						res.hits[k].count;
				if (!same) {
					mismatches++;
					printf("MISMATCH %s\n", path);
				}
			}
			total += res.score;
			spam += res.score >= 5;
			if (getenv("SA_BENCH_VERBOSE")) {
				size_t k;

				printf("%s %.2f", ents[i]->d_name, res.score);
				for (k = 0; k < res.nhits; k++)
					printf(" %s", res.hits[k].name);
				printf("\n");
			}
			if (real)
				msgview_free((struct msgview *)mv);
			else
				tv_free(t);
			free(t);
			free(raw);
			free(ents[i]);
		}
		free(ents);
		if (msgs == 0)
			continue;
		printf("%s: %zu msgs, eval %.3f ms/msg (worst %.1f ms), "
		       "%.0f msgs/s; view %.3f ms/msg; mean score %.2f, "
		       ">= 5: %zu (%.1f%%)\n",
		    argv[a], msgs, teval / 1000.0 / msgs, worst / 1000.0,
		    msgs / (teval / 1e6), tview / 1000.0 / msgs, total / msgs,
		    spam, 100.0 * spam / msgs);
	}
	if (getenv("SA_BENCH_PROFILE")) {
		size_t		np;
		const uint64_t *ns = sa_scratch_profile_ns(sc, &np);

		for (i = 0; i < np; i++)
			if (ns[i] > 0)
				printf("prof %.3f ms %s\n", ns[i] / 1e6,
				    sa_rule_name(rs, i));
	}
	if (ref != NULL) {
		printf("prefilter check: %zu mismatches\n", mismatches);
		sa_scratch_free(rsc);
		sa_ruleset_free(ref);
	}
	sa_scratch_free(sc);
	sa_ruleset_free(rs);
	return mismatches != 0;
}
