/*
 * spam_filter.c - filter "spam": one score for a message from content
 * rules in SpamAssassin's format (sa_rules.h), the Bayesian classifier
 * (bayes.h), DNS blocklists (dnsbl.h) and what the other filters found
 * (SPF, DKIM, DMARC results become the facts SpamAssassin's eval rules
 * read). Every rule that fires is reported as evidence (symbol, score,
 * description); the policy sums the evidence and compares it with the
 * group's thresholds.
 *
 * At EOM: the spooled message (filter_message_fd) is mapped and
 * un-stuffed on a worker, its decoded view built once (msgview.h),
 * classified, and, without DNS lists, scored there too. With DNS lists
 * the worker's view comes back to the loop, which asks every list at once
 * (client address, HELO, MAIL FROM domain, From domains, URI domains)
 * within one budget, then a second worker job scores with the list hits.
 * Optional autolearn feeds clear verdicts back to the classifier.
 *
 * Rule names reported by SPF/DKIM/DMARC filters themselves (SPF_FAIL ...)
 * keep those filters' scores: the same name from the rules is reported
 * with score 0 so that nothing counts twice (metas still see it).
 *
 * Ownership and threading: the configuration (struct spam_conf: ruleset,
 * lists, store, classifier) is built by init on the configuration thread
 * (main at start-up, the reload thread at a reload), then read-only and
 * reference-counted: each job holds a reference, so a reload that
 * finishes the filter while jobs run frees nothing under them. A job belongs to
 * one call on one loop thread; its worker parts touch only the job. PCRE2
 * scratch space is per worker thread.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "addr.h"
#include "bayes.h"
#include "chain.h"
#include "dataframe.h"
#include "dmarc_eval.h"
#include "dnsbl.h"
#include "dnsrr.h"
#include "evidence.h"
#include "filter_api.h"
#include "filter_opts.h"
#include "from_field.h"
#include "log.h"
#include "msgview.h"
#include "sa_rules.h"
#include "spam_conf.h"
#include "store.h"
#include "util.h"

#define SPAM_EXT_MAX	 256 /* DNS list hits passed to the rules */
#define SPAM_DETAIL_MAX	 200
#define SPAM_TRUSTED_MAX 64

struct spam_conf {
	_Atomic unsigned       refs;
	struct sa_ruleset     *rules;
	struct dnsbl_defs     *dnsbl; /* NULL: DNS lists off */
	struct store	      *store; /* NULL: no classifier */
	struct bayes	      *bayes;
	struct spam_bayes_conf bayes_conf; /* bayes's options point here */
	struct msgview_limits  limits;
	size_t		       max_size;
	unsigned	       dns_budget_ms;
	size_t		       dns_max_queries;
	int		       autolearn;
	double		       autolearn_spam, autolearn_ham;
	struct cidr	       trusted[SPAM_TRUSTED_MAX];
	size_t		       ntrusted;
	int		       trusted_configured; /* set by the operator */
};

static const char *const spam_options[] = { "rules", "sa_rules",
	"default_rules", "bayes", "bayes_db", "bayes_min_spam", "bayes_min_ham",
	"autolearn", "autolearn_spam", "autolearn_ham", "dns_lists",
	"dns_budget", "dns_max_queries", "max_size", "max_parts", "max_depth",
	"max_decoded", "max_uris", "trusted_networks", "bayes_ignore_header",
	"rules_cache", NULL };

/* A rule that fired, copied out of the scratch for the loop thread. */
struct spam_hit {
	const char *name;     /* in the ruleset (the job holds the conf) */
	const char *describe; /* likewise */
	double	    score;
	unsigned    count;
};

enum job_phase { PH_VIEW = 0, PH_DNS, PH_SCORE, PH_DONE };

struct spam_job {
	struct spam_conf   *c;
	struct filter_token token;
	_Atomic int	    cancelled;
	enum job_phase	    phase;

	/* In: the message and what the session knows. */
	int		fd;
	size_t		len;
	char	       *map; /* MAP_PRIVATE, un-stuffed in place */
	size_t		maplen;
	const char     *raw;
	size_t		rawlen;
	struct sa_facts facts;
	char	       *mail_from, *helo, *client_ip, *client_rdns;
	char	      **rcpts;
	size_t		nrcpts;
	int		scored_auth[3]; /* spf, dkim, dmarc filters reported */
	int		trusted;	/* the client is this site's */

	/* Work. */
	struct msgview	   *view;
	struct bayes_result br;
	struct dnsbl_run   *dns;
	char		  **ext;
	size_t		    next;

	/* Out. */
	struct spam_hit *hits;
	size_t		 nhits;
	double		 score;
	int		 failed;
	char		 err[256];
	uint64_t	 usec_view, usec_rules, usec_bayes;
	const char	*learned; /* "spam", "ham" or NULL */
};

static pthread_key_t  scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void
scratch_free(void *p)
{
	sa_scratch_free(p);
}

static void
scratch_init(void)
{
	if (pthread_key_create(&scratch_key, scratch_free) != 0)
		fatal("pthread_key_create");
}

/* This thread's PCRE2 scratch for the rule engine. */
static struct sa_scratch *
thread_scratch(void)
{
	struct sa_scratch *s;

	pthread_once(&scratch_once, scratch_init);
	if ((s = pthread_getspecific(scratch_key)) == NULL) {
		s = sa_scratch_new();
		pthread_setspecific(scratch_key, s);
	}
	return s;
}

/* ----------------------------------------------------- configuration */

static struct spam_conf *
conf_ref(struct spam_conf *c)
{
	atomic_fetch_add(&c->refs, 1);
	return c;
}

static void
conf_unref(struct spam_conf *c)
{
	if (c == NULL || atomic_fetch_sub(&c->refs, 1) != 1)
		return;
	bayes_free(c->bayes);
	store_close(c->store);
	spam_bayes_conf_free(&c->bayes_conf);
	dnsbl_defs_free(c->dnsbl);
	sa_ruleset_free(c->rules);
	free(c);
}

/* SpamAssassin's DNS list rules into dnsbl definitions. */
static int
load_lists(const struct filter_conf *fc, struct spam_conf *c)
{
	const struct sa_netrule *nr;
	size_t			 n, i;
	char			 err[256];
	int			 rc, qtype;
	unsigned		 skipped = 0;

	c->dnsbl = dnsbl_defs_new();
	nr = sa_ruleset_netrules(c->rules, &n);
	for (i = 0; i < n; i++) {
		enum dnsbl_source src;

		qtype = nr[i].type != NULL &&
			ascii_strcasecmp(nr[i].type, "TXT") == 0
		    ? DNS_T_TXT
		    : DNS_T_A;
		switch (nr[i].kind) {
		case SA_NET_RBL:
		case SA_NET_RBL_TXT:
			src = DNSBL_CLIENT_IP;
			if (nr[i].kind == SA_NET_RBL_TXT)
				qtype = DNS_T_TXT;
			break;
		case SA_NET_RBL_ENVFROM:
			src = DNSBL_ENVFROM;
			break;
		case SA_NET_RBL_FROM_HOST:
			src = DNSBL_FROM_HOST;
			break;
		case SA_NET_RBL_FROM_DOMAIN:
			src = DNSBL_FROM_DOMAIN;
			break;
		case SA_NET_URIRHSSUB:
		case SA_NET_URIRHSBL:
			src = DNSBL_URI_DOMAIN;
			break;
		case SA_NET_RBL_SUB:
			if (nr[i].set == NULL)
				continue;
			if (dnsbl_add_sub(c->dnsbl, nr[i].rule, nr[i].set,
				nr[i].subtest, err, sizeof(err)) == -1) {
				filter_conf_error(fc, "DNS list rule %s", err);
				return -1;
			}
			continue;
		default:
			skipped++;
			continue;
		}
		if (nr[i].zone == NULL)
			continue;
		if (ascii_strcasecmp(nr[i].eval, "check_rbl_helo") == 0)
			src = DNSBL_HELO;
		rc = dnsbl_add(c->dnsbl, nr[i].rule, src, nr[i].set, nr[i].zone,
		    qtype, nr[i].subtest, err, sizeof(err));
		if (rc == -1) {
			filter_conf_error(fc, "DNS list rule %s", err);
			return -1;
		}
	}
	if (skipped > 0)
		log_debug("event=spam-lists skipped=%u (kinds moat does not "
			  "ask)",
		    skipped);
	return 0;
}

static int
opt_size(const struct filter_conf *fc, const char *key, double lo, double hi,
    size_t *out)
{
	double v = (double)*out;

	if (filter_opt_num(fc, key, lo, hi, "a number in range", &v) == -1)
		return -1;
	*out = (size_t)v;
	return 0;
}

/*
 * trusted_networks: clients that are this site's own (local injection,
 * internal relays). The relay rules (HELO, reverse DNS) and the IP lists
 * judge the client that handed the message to this site, which is
 * unknown for these: they are left out. Default: loopback.
 */
static int
trusted_parse(const struct filter_conf *fc, struct spam_conf *c)
{
	char  *list[SPAM_TRUSTED_MAX];
	size_t n = 0, i;
	int    bad = 0;

	c->trusted_configured = filter_conf_get(fc, "trusted_networks") != NULL;
	if (filter_opt_words(fc, "trusted_networks", "127.0.0.0/8 ::1", list,
		SPAM_TRUSTED_MAX, &n) == -1)
		bad = 1;
	for (i = 0; i < n; i++) {
		if (cidr_parse(list[i], &c->trusted[c->ntrusted]) == -1) {
			filter_conf_error(fc,
			    "trusted_networks: \"%s\" is not an address or "
			    "CIDR block",
			    list[i]);
			bad = 1;
		} else
			c->ntrusted++;
	}
	spam_paths_free(list, n);
	return bad;
}

static int
client_trusted(const struct spam_conf *c, const struct filter_env *env)
{
	size_t i;

	if (env->auth != NULL)
		return 1;
	for (i = 0; env->client_sa != NULL && i < c->ntrusted; i++)
		if (cidr_match(&c->trusted[i], env->client_sa))
			return 1;
	return 0;
}

static int
spam_init(const struct filter_conf *fc, void **ctx)
{
	struct spam_conf   *c = xcalloc(1, sizeof(*c));
	struct sa_load_opts lo;
	char		   *paths[SPAM_RULES_MAX];
	size_t		    np = 0, strict_from;
	char		    err[512];
	const char	   *v;
	int		    bad = 0, bayes_on = 1, dns = 0;
	double		    d;

	atomic_init(&c->refs, 1);
	c->max_size = 4 * 1024 * 1024;
	c->dns_budget_ms = 3000;
	c->dns_max_queries = 100;
	c->autolearn_spam = 12.0;
	c->autolearn_ham = 0.1;

	bad |= spam_rule_paths(fc, paths, &np, &strict_from) != 0;
	bad |= filter_opt_bool(fc, "bayes", 1, &bayes_on) != 0;
	bad |= filter_opt_bool(fc, "dns_lists", 0, &dns) != 0;
	bad |= filter_opt_bool(fc, "autolearn", 0, &c->autolearn) != 0;
	bad |= filter_opt_num(fc, "autolearn_spam", -1000, 1000, "a score",
		   &c->autolearn_spam) != 0;
	bad |= filter_opt_num(fc, "autolearn_ham", -1000, 1000, "a score",
		   &c->autolearn_ham) != 0;
	d = c->dns_budget_ms / 1000.0;
	bad |= filter_opt_num(
		   fc, "dns_budget", 0.1, 60, "seconds (0.1-60)", &d) != 0;
	c->dns_budget_ms = (unsigned)(d * 1000);
	bad |= opt_size(fc, "dns_max_queries", 1, 1000, &c->dns_max_queries);
	bad |=
	    opt_size(fc, "max_size", 1024, 1024.0 * 1024 * 1024, &c->max_size);
	bad |= opt_size(fc, "max_parts", 1, 100000, &c->limits.parts);
	bad |= opt_size(fc, "max_depth", 1, 100, &c->limits.depth);
	bad |= opt_size(
	    fc, "max_decoded", 1024, 1024.0 * 1024 * 1024, &c->limits.decoded);
	bad |= opt_size(fc, "max_uris", 1, 100000, &c->limits.uris);
	bad |= trusted_parse(fc, c);
	if (bad)
		goto fail;

	memset(&lo, 0, sizeof(lo));
	lo.scoreset = (bayes_on ? 2 : 0) + (dns ? 1 : 0);
	lo.strict_from = strict_from;
	if ((v = filter_conf_get(fc, "rules_cache")) == NULL)
		v = SPAM_RULES_CACHE;
	if (strcmp(v, "no") == 0)
		v = NULL;
	else if (v[0] != '/') {
		filter_conf_error(
		    fc, "rules_cache: an absolute directory path, or \"no\"");
		goto fail;
	}
	lo.cache_dir = v;
	err[0] = '\0';
	c->rules = sa_ruleset_load(
	    (const char *const *)paths, np, &lo, err, sizeof(err));
	if (c->rules == NULL) {
		filter_conf_error(fc, "%s", err);
		goto fail;
	}
	if (err[0] != '\0')
		log_info("event=spam-rules-dropped first=\"%s\"", err);
	{
		const struct sa_stats *st = sa_ruleset_stats(c->rules);

		log_info("event=spam-rules files=%u header=%u body=%u "
			 "rawbody=%u full=%u uri=%u meta=%u mimeheader=%u "
			 "evals=%u evals_skipped=%u net=%u errors=%u "
			 "prefiltered=%u prefilter_cache=%s",
		    st->files, st->rules[SA_HEADER], st->rules[SA_BODY],
		    st->rules[SA_RAWBODY], st->rules[SA_FULL],
		    st->rules[SA_URI], st->rules[SA_META],
		    st->rules[SA_MIMEHEADER], st->evals_implemented,
		    st->evals_skipped, st->net_rules, st->errors,
		    st->prefiltered,
		    lo.cache_dir == NULL       ? "off"
			: st->prefilter_cached ? "hit"
					       : "miss");
	}
	if (dns && load_lists(fc, c) == -1)
		goto fail;

	if (bayes_on) {
		if (spam_bayes_conf(fc, c->rules, &c->bayes_conf) == -1)
			goto fail;
		v = c->bayes_conf.db;
		if ((c->store = store_open(v, NULL, err, sizeof(err))) ==
		    NULL) {
			filter_conf_error(fc, "bayes_db %s: %s", v, err);
			goto fail;
		}
		if ((c->bayes = bayes_open(c->store, &c->bayes_conf.opts, err,
			 sizeof(err))) == NULL) {
			filter_conf_error(fc, "bayes_db %s: %s", v, err);
			goto fail;
		}
	}
	spam_paths_free(paths, np);
	msgview_global_init();
	*ctx = c;
	return 0;
fail:
	spam_paths_free(paths, np);
	conf_unref(c);
	return -1;
}

static void
spam_fini(void *ctx)
{
	conf_unref(ctx);
}

/* --------------------------------------------------------------- jobs */

static void
job_free(struct spam_job *j)
{
	size_t i;

	if (j->map != NULL)
		munmap(j->map, j->maplen);
	if (j->fd != -1)
		close(j->fd);
	msgview_free(j->view);
	dnsbl_run_free(j->dns);
	for (i = 0; i < j->next; i++)
		free(j->ext[i]);
	free(j->ext);
	for (i = 0; i < j->nrcpts; i++)
		free(j->rcpts[i]);
	free(j->rcpts);
	free(j->mail_from);
	free(j->helo);
	free(j->client_ip);
	free(j->client_rdns);
	free(j->hits);
	conf_unref(j->c);
	free(j);
}

static uint64_t
since(uint64_t t0)
{
	return now_usec() - t0;
}

/* Worker: map, un-stuff, build the view, classify. */
static void
job_view(void *arg)
{
	struct spam_job *j = arg;
	uint64_t	 t0 = now_usec();
	long long	 n;

	if (j->cancelled)
		return;
	j->maplen = j->len;
	j->map = mmap(
	    NULL, j->maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE, j->fd, 0);
	if (j->map == MAP_FAILED) {
		j->map = NULL;
		j->failed = 1;
		strfmt(j->err, sizeof(j->err), "mmap: %s", strerror(errno));
		return;
	}
	close(j->fd);
	j->fd = -1;
	if ((n = dataframe_unstuff(j->map, j->maplen)) < 0) {
		j->failed = 1;
		strfmt(j->err, sizeof(j->err), "spool is not a DATA stream");
		return;
	}
	j->raw = j->map;
	j->rawlen = (size_t)n;
	if ((j->view = msgview_new(j->raw, j->rawlen, &j->c->limits)) == NULL) {
		j->failed = 1;
		strfmt(j->err, sizeof(j->err), "out of memory");
		return;
	}
	j->usec_view = since(t0);
	if (j->c->bayes != NULL) {
		t0 = now_usec();
		if (bayes_classify(j->c->bayes, j->view, &j->br, j->err,
			sizeof(j->err)) == -1) {
			/* The classifier is one voice: go on without it. */
			log_warn(
			    "event=spam-bayes-failed error=\"%s\"", j->err);
			j->err[0] = '\0';
			memset(&j->br, 0, sizeof(j->br));
		}
		j->facts.has_bayes = j->br.voted;
		j->facts.bayes = j->br.prob;
		j->facts.bayes_unready = !j->br.ready;
		j->usec_bayes = since(t0);
	}
}

static int
hit_cmp(const void *a, const void *b)
{
	const struct spam_hit *x = a, *y = b;
	double		       ax = x->score < 0 ? -x->score : x->score;
	double		       ay = y->score < 0 ? -y->score : y->score;

	return ax < ay ? 1 : ax > ay ? -1 : strcmp(x->name, y->name);
}

/* Worker: run the rules (with the DNS list hits), autolearn. */
static void
job_score(void *arg)
{
	struct spam_job	  *j = arg;
	struct sa_result   res;
	struct sa_scratch *s;
	uint64_t	   t0 = now_usec();
	size_t		   i;

	if (j->cancelled || j->failed)
		return;
	s = thread_scratch();
	if (sa_eval(j->c->rules, s, j->view, j->raw, j->rawlen, &j->facts,
		(const char *const *)j->ext, j->next, &res) == -1) {
		j->failed = 1;
		strfmt(j->err, sizeof(j->err), "rule engine out of memory");
		return;
	}
	j->hits = xcalloc(res.nhits ? res.nhits : 1, sizeof(*j->hits));
	for (i = 0; i < res.nhits; i++) {
		j->hits[i].name = res.hits[i].name;
		j->hits[i].describe = res.hits[i].describe;
		j->hits[i].score = res.hits[i].score;
		j->hits[i].count = res.hits[i].count;
	}
	j->nhits = res.nhits;
	j->score = res.score;
	qsort(j->hits, j->nhits, sizeof(*j->hits), hit_cmp);
	j->usec_rules = since(t0);

	if (j->c->autolearn && j->c->bayes != NULL) {
		enum bayes_class cls = 0;
		char		 err[200];

		if (res.learn_points >= j->c->autolearn_spam)
			cls = BAYES_SPAM;
		else if (res.learn_points <= j->c->autolearn_ham)
			cls = BAYES_HAM;
		if (cls != 0 &&
		    bayes_learn(j->c->bayes, j->view, cls, err, sizeof(err)) >=
			0)
			j->learned = cls == BAYES_SPAM ? "spam" : "ham";
	}
}

/* Which of spf, dkim, dmarc a rule name belongs to (-1: none). */
static int
auth_family(const char *name)
{
	if (strncmp(name, "SPF_", 4) == 0)
		return 0;
	if (strncmp(name, "DKIM_", 5) == 0)
		return 1;
	if (strncmp(name, "DMARC_", 6) == 0)
		return 2;
	return -1;
}

/* Loop: report, complete. */
static void
job_report(struct spam_job *j)
{
	const struct filter_token *t = &j->token;
	size_t			   i;
	double			   total = 0;
	int			   fam;

	if (j->failed) {
		log_warn("event=spam-failed sid=%016llx error=\"%s\"",
		    (unsigned long long)t->sid, j->err);
		filter_complete(t, FILTER_ERROR, NULL);
		return;
	}
	for (i = 0; i < j->nhits; i++) {
		double score = j->hits[i].score;

		fam = auth_family(j->hits[i].name);
		if (fam >= 0 && j->scored_auth[fam])
			score = 0; /* that filter scored it already */
		total += score;
		if (j->hits[i].count > 1)
			filter_evidence(t, j->hits[i].name, score, "%s (%u)",
			    j->hits[i].describe, j->hits[i].count);
		else
			filter_evidence(t, j->hits[i].name, score, "%s",
			    j->hits[i].describe);
	}
	log_info("event=spam sid=%016llx score=%.2f rules=%zu "
		 "bayes=%s%.3f lists=%zu view_ms=%.2f bayes_ms=%.2f "
		 "rules_ms=%.2f%s%s",
	    (unsigned long long)t->sid, total, j->nhits,
	    j->facts.has_bayes ? "" : "none/", j->br.prob, j->next,
	    j->usec_view / 1000.0, j->usec_bayes / 1000.0,
	    j->usec_rules / 1000.0, j->learned ? " autolearn=" : "",
	    j->learned ? j->learned : "");
	filter_complete(t, FILTER_CONTINUE, NULL);
}

static void
score_done(const struct filter_token *t, void *arg)
{
	struct spam_job *j = arg;

	(void)t;
	if (!j->cancelled)
		job_report(j);
	job_free(j);
}

static void
dns_done(void *arg)
{
	struct spam_job	       *j = arg;
	const struct dnsbl_hit *h;
	size_t			n, i;

	h = dnsbl_run_hits(j->dns, &n);
	for (i = 0; i < n && j->next < SPAM_EXT_MAX; i++) {
		j->ext = xrealloc(j->ext, (j->next + 1) * sizeof(*j->ext));
		j->ext[j->next++] = xstrdup(h[i].symbol);
		log_info("event=spam-list-hit sid=%016llx rule=%s answer=%s",
		    (unsigned long long)j->token.sid, h[i].symbol, h[i].detail);
	}
	j->phase = PH_SCORE;
	if (filter_work(&j->token, job_score, score_done, j) == -1) {
		strfmt(j->err, sizeof(j->err), "worker queue full");
		j->failed = 1;
		job_report(j);
		job_free(j);
	}
}

/* Ask the lists about everything the message names. */
static void
start_lists(struct spam_job *j)
{
	const struct mv_header *h;
	size_t			i;
	char			dom[256];
	const char	       *why, *at;

	j->dns = dnsbl_run_new(j->token.loop, j->c->dnsbl, j->c->dns_budget_ms,
	    j->c->dns_max_queries);
	if (!j->trusted) {
		dnsbl_run_add(j->dns, DNSBL_CLIENT_IP, j->client_ip);
		dnsbl_run_add(j->dns, DNSBL_HELO, j->helo);
	}
	if (j->mail_from != NULL && (at = strrchr(j->mail_from, '@')) != NULL)
		dnsbl_run_add(j->dns, DNSBL_ENVFROM, at + 1);
	for (i = 0; (h = msgview_header(j->view, "From", i)) != NULL && i < 4;
	     i++)
		if (from_field_domain(
			h->raw, strlen(h->raw), dom, sizeof(dom), &why) == 0) {
			dnsbl_run_add(j->dns, DNSBL_FROM_HOST, dom);
			dnsbl_run_add(j->dns, DNSBL_FROM_DOMAIN, dom);
		}
	for (i = 0; i < j->view->nuris; i++)
		if (j->view->uris[i].domain != NULL)
			dnsbl_run_add(
			    j->dns, DNSBL_URI_DOMAIN, j->view->uris[i].domain);
	j->phase = PH_DNS;
	dnsbl_run_wait(j->dns, dns_done, j);
}

static void
view_done(const struct filter_token *t, void *arg)
{
	struct spam_job *j = arg;

	(void)t;
	if (j->cancelled) {
		job_free(j);
		return;
	}
	if (j->failed || j->c->dnsbl == NULL) {
		/* Without lists the worker scored already (job_view_score). */
		job_report(j);
		job_free(j);
		return;
	}
	start_lists(j);
}

/* Worker: view and score in one go (no DNS lists). */
static void
job_view_score(void *arg)
{
	struct spam_job *j = arg;

	job_view(arg);
	if (!j->failed)
		job_score(arg);
}

/* -------------------------------------------------------------- stage */

static enum sa_authres
auth_of(const struct evidence_set *ev, const char *prefix, int *seen)
{
	static const struct {
		const char     *suffix;
		enum sa_authres r;
	} map[] = { { "PASS", SA_AUTH_PASS }, { "FAIL", SA_AUTH_FAIL },
		{ "SOFTFAIL", SA_AUTH_SOFTFAIL },
		{ "NEUTRAL", SA_AUTH_NEUTRAL },
		{ "TEMPERROR", SA_AUTH_TEMPERROR },
		{ "PERMERROR", SA_AUTH_PERMERROR }, { "NONE", SA_AUTH_NONE } };
	size_t i, k, pl = strlen(prefix);

	for (i = 0; ev != NULL && i < ev->n; i++) {
		if (strncmp(ev->v[i].symbol, prefix, pl) != 0)
			continue;
		for (k = 0; k < sizeof(map) / sizeof(map[0]); k++)
			if (strcmp(ev->v[i].symbol + pl, map[k].suffix) == 0) {
				*seen = 1;
				return map[k].r;
			}
	}
	return SA_AUTH_NONE;
}

/* The facts the eval rules read, from the envelope and the evidence. */
static void
job_facts(struct spam_job *j, const struct filter_call *call)
{
	const struct filter_env	  *env = call->env;
	const struct evidence_set *ev = chain_evidence(&call->token);
	const char *const	  *ar;
	struct dmarc_auth	   a;
	size_t			   nar, i;
	int			   seen = 0;

	j->mail_from = xstrdup(env->mail_from != NULL ? env->mail_from : "");
	j->helo = env->helo != NULL ? xstrdup(env->helo) : NULL;
	j->client_ip =
	    xstrdup(env->client_addr != NULL ? env->client_addr : "");
	j->client_rdns =
	    env->client_name != NULL ? xstrdup(env->client_name) : NULL;
	j->rcpts = xcalloc(env->nrcpts ? env->nrcpts : 1, sizeof(char *));
	for (i = 0; i < env->nrcpts; i++)
		j->rcpts[i] = xstrdup(env->rcpts[i]);
	j->nrcpts = env->nrcpts;
	j->facts.mail_from = j->mail_from;
	j->facts.helo = j->helo;
	j->facts.client_ip = j->client_ip;
	j->facts.client_rdns = j->client_rdns;
	if (client_trusted(j->c, env)) {
		j->trusted = 1;
		j->facts.client_trusted = 1;
	}
	j->facts.trusted_nets = j->c->trusted;
	j->facts.ntrusted_nets = j->c->ntrusted;
	j->facts.trusted_configured = j->c->trusted_configured;
	j->facts.rcpts = (const char *const *)j->rcpts;
	j->facts.nrcpts = j->nrcpts;
	j->facts.authenticated = env->auth != NULL;

	j->facts.spf_mailfrom = auth_of(ev, "SPF_", &j->facts.spf_checked);
	j->facts.spf_helo =
	    auth_of(ev, "SPF_HELO_", &j->facts.spf_helo_checked);
	j->scored_auth[0] = j->facts.spf_checked || j->facts.spf_helo_checked;
	seen = 0;
	if (auth_of(ev, "DMARC_", &seen) == SA_AUTH_PASS)
		j->facts.dmarc = SA_AUTH_PASS;
	else if (seen)
		j->facts.dmarc = evidence_find(ev, "DMARC_FAIL") != NULL
		    ? SA_AUTH_FAIL
		    : SA_AUTH_NONE;
	j->scored_auth[2] = seen;
	if (evidence_find(ev, "DMARC_REJECT") != NULL)
		j->facts.dmarc_policy = SA_DMARC_POLICY_REJECT;
	else if (evidence_find(ev, "DMARC_QUARANTINE") != NULL)
		j->facts.dmarc_policy = SA_DMARC_POLICY_QUARANTINE;
	seen = 0;
	(void)auth_of(ev, "DKIM_", &seen);
	j->scored_auth[1] = seen;
	j->facts.dkim_checked = seen; /* the DKIM filter reports every
					 message, DKIM_NONE when unsigned */
	ar = filter_auth_results(&call->token, &nar);
	dmarc_auth_read(ar, nar, &a);
	for (i = 0; i < a.ndkim; i++) {
		j->facts.dkim_signed = 1;
		if (a.dkim[i].pass)
			j->facts.dkim_valid = 1;
	}
	/* The author domain's own signature: the rule engine compares d=
	 * with From itself when it needs to; DMARC's DKIM alignment is the
	 * next best thing moat knows here. */
	if (j->facts.dkim_valid && j->facts.dmarc == SA_AUTH_PASS)
		j->facts.dkim_valid_author = 1;
}

static enum filter_verdict
spam_stage(void *ctx, struct filter_call *call, struct filter_reply *reply)
{
	struct spam_conf *c = ctx;
	struct spam_job	 *j;
	size_t		  len;
	int		  fd;

	(void)reply;
	if (call->stage != FILTER_STAGE_EOM)
		return FILTER_CONTINUE;
	if ((fd = filter_message_fd(&call->token, &len)) == -1) {
		log_warn("event=spam-failed sid=%016llx error=\"no message "
			 "descriptor: %s\"",
		    (unsigned long long)call->token.sid, strerror(errno));
		return FILTER_ERROR;
	}
	if (len > c->max_size) {
		close(fd);
		filter_evidence(&call->token, "SPAM_SKIPPED", 0,
		    "message of %zu bytes, larger than max_size %zu", len,
		    c->max_size);
		return FILTER_CONTINUE;
	}
	j = xcalloc(1, sizeof(*j));
	j->c = conf_ref(c);
	j->token = call->token;
	j->fd = fd;
	j->len = len;
	job_facts(j, call);
	if (filter_work(&call->token,
		c->dnsbl != NULL ? job_view : job_view_score, view_done,
		j) == -1) {
		job_free(j);
		return FILTER_ERROR; /* worker queue full: on_error */
	}
	call->cookie = j;
	return FILTER_PENDING;
}

/*
 * The call was cancelled (client gone, timeout). A job on a worker or
 * queued for one sees the flag and is freed by its done callback; one
 * waiting for DNS answers is the loop's alone: free it now.
 */
static void
spam_cancel(void *ctx, void *cookie)
{
	struct spam_job *j = cookie;

	(void)ctx;
	if (j == NULL)
		return;
	j->cancelled = 1;
	if (j->phase == PH_DNS)
		job_free(j); /* dnsbl_run_free forgets its callback */
}

void
spamfilter_dirs(const struct filter_conf *fc, filter_dir_fn dir, void *arg)
{
	const char *v;

	if ((v = filter_conf_get(fc, "rules_cache")) == NULL)
		v = SPAM_RULES_CACHE;
	if (v[0] == '/')
		dir(arg, v);
	if ((v = filter_conf_get(fc, "bayes_db")) == NULL)
		v = SPAM_BAYES_DB;
	filter_dir_of(v, dir, arg);
}

const struct filter_ops spamfilter_ops = {
	.abi = FILTER_ABI_VERSION,
	.name = "spam",
	.options = spam_options,
	.stages = FILTER_STAGE_BIT(FILTER_STAGE_EOM),
	.init = spam_init,
	.fini = spam_fini,
	.stage = spam_stage,
	.cancel = spam_cancel,
};
