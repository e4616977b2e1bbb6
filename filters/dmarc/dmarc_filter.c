/*
 * dmarc_filter.c - the built-in "dmarc" filter: RFC 7489 DMARC of inbound
 * mail, on the SPF and DKIM results of the same transaction.
 *
 * HEADER counts the From fields and keeps the first. At EOH the author
 * domain is taken from it (from_field.c: exactly one mailbox, or the
 * message can never pass), and policy discovery starts (§6.6.3): the TXT
 * records of _dmarc.<From domain>, then, when that has no DMARC record,
 * of _dmarc.<Organizational Domain>, through moat's resolver. The lookup
 * runs while the body arrives, beside the dkim filter's key lookups. At
 * EOM the spf= and dkim= clauses that the spf and dkim filters (earlier in
 * the chain, which moatd -t checks) reported are read back
 * (filter_auth_results()), and alignment and the policy are evaluated. If
 * discovery is still running, EOM waits for it (PENDING).
 *
 * Evidence: DMARC_PASS, DMARC_FAIL (with the policy and the disposition),
 * DMARC_NONE (no policy published), DMARC_TEMPERROR (the lookup failed for
 * now), DMARC_PERMERROR (the record is unusable), DMARC_BAD_FROM (zero or
 * several From fields or addresses, or an unparsable one: never a pass).
 * For a failing message the disposition the domain asks for, after pct
 * sampling (§6.6.4), is DMARC_REJECT or DMARC_QUARANTINE. The filter's
 * default rules (used where the configuration has no rule of the symbol,
 * per group or global) are: DMARC_REJECT and DMARC_BAD_FROM reject with
 * 550 5.7.1; DMARC_QUARANTINE adds the spam headers (the "spam folder"
 * disposition; a rule can make it moat's quarantine). A temperror is let
 * through unless temperror = tempfail (451 4.7.0).
 *
 * Authentication-Results: dmarc=<result> (p=<policy> dis=<disposition>)
 * header.from=<domain> (RFC 7489 §11.2, RFC 8601).
 *
 * Aggregate-report data (§7.2): with report_log = FILE, every message
 * evaluated against a published policy appends one JSON line (time,
 * source IP, header From, envelope domains, the SPF and DKIM results, the
 * policy and the disposition). The write runs on the worker pool.
 *
 * Not checked: authenticated sessions (outbound), and loopback clients
 * unless check_loopback = yes, as the spf filter.
 *
 * Threading: the session's loop thread; the report write on the pool with
 * its own copy of the line. A message owns its query; cancel() and reset
 * stop it.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "dmarc_eval.h"
#include "filter_api.h"
#include "filter_opts.h"
#include "from_field.h"
#include "resolver.h"
#include "util.h"

enum {
	SC_PASS,
	SC_FAIL,
	SC_NONE,
	SC_TEMPERROR,
	SC_PERMERROR,
	SC_BAD_FROM,
	SC_COUNT
};

static const char *const score_names[SC_COUNT] = { "pass", "fail", "none",
	"temperror", "permerror", "bad_from" };
static const double	 default_scores[SC_COUNT] = { -0.1, 1.0, 0, 0, 0, 0 };

struct dmarc_conf {
	int    check_loopback;
	int    tempfail;   /* temperror -> 451 */
	char  *report_log; /* NULL: none */
	double score[SC_COUNT];
};

enum discovery {
	DISC_IDLE = 0, /* not started (no usable From) */
	DISC_ASKING,
	DISC_DONE
};

/* One message. */
struct dmarc_msg {
	const struct dmarc_conf *conf;
	struct loop		*loop;
	unsigned		 nfrom;
	char			*from;	   /* the first From value */
	const char		*bad_from; /* why the From is unusable */
	int			 started;  /* EOH seen */
	char			 from_domain[DMARC_DOMAIN_MAX];
	char			 org_domain[DMARC_DOMAIN_MAX];
	/* for the report line, kept from EOH */
	char client[64], env_from[DMARC_DOMAIN_MAX], helo[DMARC_DOMAIN_MAX];
	/* policy discovery */
	enum discovery	  disc;
	int		  at_org; /* asking, or found at, the org domain */
	struct dns_query *q;
	enum dns_status	  dns; /* a failed lookup's status */
	char		 *record;
	char		  policy_domain[DMARC_DOMAIN_MAX];
	const char	 *none_why; /* no policy: why */
	/* an EOM waiting for discovery */
	int		    eom_waiting;
	struct filter_token token;
};

static const char *const dmarc_filter_options[] = { "check_loopback",
	"temperror", "report_log", "score_pass", "score_fail", "score_none",
	"score_temperror", "score_permerror", "score_bad_from", NULL };

static const struct filter_rule dmarc_rules[] = {
	{ "DMARC_REJECT", "reject",
	    "550 5.7.1 Rejected by the DMARC policy of the From domain" },
	{ "DMARC_QUARANTINE", "add_header", NULL },
	{ "DMARC_BAD_FROM", "reject",
	    "550 5.7.1 The From field must hold exactly one valid address" },
	{ NULL, NULL, NULL }
};

/* ---------------------------------------------------------- configuration */

static int
dmarc_init_filter(const struct filter_conf *fc, void **ctx)
{
	struct dmarc_conf *c = xcalloc(1, sizeof(*c));
	const char	  *v;
	char		   key[64];
	int		   bad = 0, i;

	bad |= filter_opt_bool(fc, "check_loopback", 0, &c->check_loopback);
	if ((v = filter_conf_get(fc, "temperror")) != NULL) {
		if (strcmp(v, "tempfail") == 0)
			c->tempfail = 1;
		else if (strcmp(v, "continue") != 0) {
			filter_conf_error(fc,
			    "temperror: \"%s\" is not tempfail or continue", v);
			bad = 1;
		}
	}
	if ((v = filter_conf_get(fc, "report_log")) != NULL) {
		if (v[0] != '/') {
			filter_conf_error(fc,
			    "report_log: \"%s\" is not an absolute path", v);
			bad = 1;
		} else
			c->report_log = xstrdup(v);
	}
	for (i = 0; i < SC_COUNT; i++) {
		c->score[i] = default_scores[i];
		snprintf(key, sizeof(key), "score_%s", score_names[i]);
		bad |= filter_opt_num(
		    fc, key, -1000, 1000, "a number (a score)", &c->score[i]);
	}
	if (!bad && dmarc_eval_init() == -1) {
		filter_conf_error(fc, "cannot load the Public Suffix List");
		bad = 1;
	}
	if (bad) {
		free(c->report_log);
		free(c);
		return -1;
	}
	*ctx = c;
	return 0;
}

static void
dmarc_fini_filter(void *ctx)
{
	struct dmarc_conf *c = ctx;

	free(c->report_log);
	free(c);
}

/* ---------------------------------------------------------- discovery */

static void finish_async(struct dmarc_msg *);

static void
disc_done(struct dmarc_msg *m)
{
	m->disc = DISC_DONE;
	if (m->eom_waiting)
		finish_async(m);
}

static void ask(struct dmarc_msg *, const char *domain);

static void
policy_answer(void *arg, const struct dns_answer *a)
{
	struct dmarc_msg *m = arg;
	const char	 *txt[32];
	size_t		  i, n = 0;
	int		  idx = -1;

	m->q = NULL;
	if (a->status == DNS_OK) {
		for (i = 0; i < a->n && n < nitems(txt); i++)
			if (a->rr[i].text != NULL &&
			    strlen(a->rr[i].text) == a->rr[i].textlen)
				txt[n++] = a->rr[i].text;
		idx = dmarc_record_pick(txt, n);
		if (idx >= 0) {
			m->record = xstrdup(txt[idx]);
			disc_done(m);
			return;
		}
		if (idx == -2) { /* §6.6.3 step 5: no policy */
			m->none_why = "several DMARC records";
			disc_done(m);
			return;
		}
	} else if (a->status != DNS_NXDOMAIN && a->status != DNS_NODATA) {
		m->dns = a->status;
		disc_done(m);
		return;
	}
	/* no record here: the Organizational Domain's (§6.6.3 step 3) */
	if (!m->at_org && strcmp(m->org_domain, m->from_domain) != 0) {
		m->at_org = 1;
		ask(m, m->org_domain);
		return;
	}
	m->none_why = "no DMARC record";
	disc_done(m);
}

static void
ask(struct dmarc_msg *m, const char *domain)
{
	char name[300];

	snprintf(m->policy_domain, sizeof(m->policy_domain), "%s", domain);
	if (snprintf(name, sizeof(name), "_dmarc.%s", domain) > 253) {
		m->none_why = "domain name too long";
		disc_done(m);
		return;
	}
	m->disc = DISC_ASKING;
	if ((m->q = resolver_query(
		 m->loop, name, DNS_T_TXT, policy_answer, m)) == NULL) {
		m->dns = DNS_ERROR;
		disc_done(m);
	}
}

/* Keep a value JSON- and log-safe: printable ASCII but '"' and '\\'. */
static void
safe(char *out, size_t outlen, const char *in)
{
	size_t o = 0;

	for (; in != NULL && *in != '\0' && o + 1 < outlen; in++)
		out[o++] =
		    (*in > 0x20 && *in < 0x7f && *in != '"' && *in != '\\')
		    ? *in
		    : '?';
	out[o] = '\0';
}

/* EOH: the author domain, and discovery begins. */
static void
start(struct dmarc_msg *m, const struct filter_env *env)
{
	const char *at =
	    env->mail_from != NULL ? strrchr(env->mail_from, '@') : NULL;

	m->started = 1;
	safe(m->client, sizeof(m->client), env->client_addr);
	safe(m->env_from, sizeof(m->env_from), at != NULL ? at + 1 : "");
	safe(m->helo, sizeof(m->helo), env->helo);
	if (m->nfrom == 0)
		m->bad_from = "no From field";
	else if (m->nfrom > 1)
		m->bad_from = "several From fields";
	else /* sets bad_from when it fails */
		from_field_domain(m->from, strlen(m->from), m->from_domain,
		    sizeof(m->from_domain), &m->bad_from);
	if (m->bad_from != NULL)
		return;
	dmarc_org_domain(m->from_domain, m->org_domain, sizeof(m->org_domain));
	ask(m, m->from_domain);
}

/* ---------------------------------------------------------- results */

struct report_job {
	char *path;
	char *line;
};

static void
report_write(void *arg)
{
	struct report_job *j = arg;
	int		   fd;

	fd = open(j->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd == -1 || write_full(fd, j->line, strlen(j->line)) == -1) {
		free(j->line); /* done() logs nothing: the filter is gone */
		j->line = NULL;
	}
	if (fd != -1)
		close(fd);
}

static void
report_done(const struct filter_token *t, void *arg)
{
	struct report_job *j = arg;

	if (j->line == NULL)
		filter_evidence(t, "DMARC_REPORT_FAILED", 0,
		    "cannot append to %s", j->path);
	free(j->path);
	free(j->line);
	free(j);
	filter_complete(t, FILTER_CONTINUE, NULL);
}

/* One JSON line of aggregate-report data (RFC 7489 §7.2, Appendix C). */
static char *
report_line(const struct dmarc_msg *m, const struct dmarc_record *rec,
    const struct dmarc_auth *a, const struct dmarc_outcome *o)
{
	char   buf[4096], v1[300], v2[300], v3[80];
	size_t n = 0, i;

#define ADD(...)                                                               \
	do {                                                                   \
		if (n < sizeof(buf))                                           \
			n += (size_t)snprintf(                                 \
			    buf + n, sizeof(buf) - n, __VA_ARGS__);            \
	} while (0)
	ADD("{\"time\":%lld,\"source_ip\":\"%s\",\"header_from\":\"%s\","
	    "\"envelope_from\":\"%s\",\"helo\":\"%s\",",
	    (long long)time(NULL), m->client, m->from_domain, m->env_from,
	    m->helo);
	safe(v1, sizeof(v1), rec->rua);
	ADD("\"policy_domain\":\"%s\",\"p\":\"%s\",\"sp\":\"%s\","
	    "\"pct\":%d,\"adkim\":\"%c\",\"aspf\":\"%c\",\"rua\":\"%s\",",
	    m->policy_domain, dmarc_pol_name(rec->p),
	    dmarc_pol_name(rec->sp != DMARC_POL_UNSET ? rec->sp : rec->p),
	    rec->pct, rec->adkim_strict ? 's' : 'r',
	    rec->aspf_strict ? 's' : 'r', v1);
	ADD("\"result\":\"%s\",\"disposition\":\"%s\",\"dkim_aligned\":%s,"
	    "\"spf_aligned\":%s,",
	    dmarc_res_name(o->res), dmarc_pol_name(o->disposition),
	    o->dkim_aligned ? "true" : "false",
	    o->spf_aligned ? "true" : "false");
	safe(v1, sizeof(v1), a->spf_domain);
	safe(v3, sizeof(v3), a->spf_result);
	ADD("\"spf\":{\"domain\":\"%s\",\"scope\":\"%s\",\"result\":\"%s\"},"
	    "\"dkim\":[",
	    v1, a->spf_helo ? "helo" : "mfrom", a->spf == -1 ? "none" : v3);
	for (i = 0; i < a->ndkim; i++) {
		safe(v1, sizeof(v1), a->dkim[i].domain);
		safe(v2, sizeof(v2), a->dkim[i].selector);
		safe(v3, sizeof(v3), a->dkim[i].result);
		ADD("%s{\"domain\":\"%s\",\"selector\":\"%s\",\"result\":\"%"
		    "s\"}",
		    i ? "," : "", v1, v2, v3);
	}
	ADD("]}\n");
#undef ADD
	if (n >= sizeof(buf))
		return NULL; /* cannot happen with the bounds above */
	return xstrdup(buf);
}

/*
 * The evaluation at EOM, discovery done: evidence, the A-R clause, and
 * the report line. PENDING when the report write was started (its done
 * completes the call), else the verdict.
 */
static enum filter_verdict
finish(struct dmarc_msg *m, const struct filter_token *t,
    struct filter_reply *reply)
{
	const struct dmarc_conf *c = m->conf;
	struct dmarc_record	 rec;
	struct dmarc_auth	 a;
	struct dmarc_outcome	 o;
	const char *const	*ar, *why = NULL;
	size_t			 nar;
	char			 clause[400];
	struct report_job	*j;

	if (m->bad_from != NULL) {
		filter_evidence(t, "DMARC_BAD_FROM", c->score[SC_BAD_FROM],
		    "%s", m->bad_from);
		snprintf(clause, sizeof(clause), "dmarc=permerror (%s)",
		    m->bad_from);
		filter_auth_result(t, clause);
		return FILTER_CONTINUE;
	}
	if (m->dns != DNS_OK) {
		filter_evidence(t, "DMARC_TEMPERROR", c->score[SC_TEMPERROR],
		    "header.from=%s policy lookup of %s failed (%s)",
		    m->from_domain, m->policy_domain,
		    m->dns == DNS_TIMEOUT ? "timeout" : "DNS error");
		snprintf(clause, sizeof(clause),
		    "dmarc=temperror header.from=%s", m->from_domain);
		filter_auth_result(t, clause);
		if (!c->tempfail)
			return FILTER_CONTINUE;
		reply->code = 451;
		snprintf(reply->enh, sizeof(reply->enh), "4.7.0");
		strfmt(reply->text, sizeof(reply->text),
		    "DMARC policy of %s not available, try again later",
		    m->from_domain);
		return FILTER_TEMPFAIL;
	}
	if (m->record == NULL) {
		filter_evidence(t, "DMARC_NONE", c->score[SC_NONE],
		    "header.from=%s %s", m->from_domain,
		    m->none_why != NULL ? m->none_why : "no DMARC record");
		snprintf(clause, sizeof(clause), "dmarc=none header.from=%s",
		    m->from_domain);
		filter_auth_result(t, clause);
		return FILTER_CONTINUE;
	}
	if (dmarc_record_parse(m->policy_domain, m->record, &rec, &why) == -1) {
		filter_evidence(t, "DMARC_PERMERROR", c->score[SC_PERMERROR],
		    "header.from=%s record of %s: %s", m->from_domain,
		    m->policy_domain, why);
		snprintf(clause, sizeof(clause),
		    "dmarc=permerror (%s) header.from=%s", why, m->from_domain);
		filter_auth_result(t, clause);
		return FILTER_CONTINUE;
	}
	ar = filter_auth_results(t, &nar);
	dmarc_auth_read(ar, nar, &a);
	/* The pct sample (§6.6.4) matters only below 100: no random
	 * number (a getrandom(2) call each) for the usual record. */
	dmarc_evaluate(m->from_domain, &rec, m->at_org, &a,
	    rec.pct < 100 ? arc4random_uniform(100) : 0, &o);
	if (o.res == DMARC_RES_PASS)
		filter_evidence(t, "DMARC_PASS", c->score[SC_PASS],
		    "header.from=%s p=%s aligned=%s%s%s", m->from_domain,
		    dmarc_pol_name(o.policy), o.dkim_aligned ? "dkim" : "",
		    o.dkim_aligned && o.spf_aligned ? "," : "",
		    o.spf_aligned ? "spf" : "");
	else {
		filter_evidence(t, "DMARC_FAIL", c->score[SC_FAIL],
		    "header.from=%s p=%s disposition=%s pct=%d", m->from_domain,
		    dmarc_pol_name(o.policy), dmarc_pol_name(o.disposition),
		    rec.pct);
		if (o.disposition == DMARC_POL_REJECT)
			filter_evidence(t, "DMARC_REJECT", 0,
			    "header.from=%s p=%s", m->from_domain,
			    dmarc_pol_name(o.policy));
		else if (o.disposition == DMARC_POL_QUARANTINE)
			filter_evidence(t, "DMARC_QUARANTINE", 0,
			    "header.from=%s p=%s", m->from_domain,
			    dmarc_pol_name(o.policy));
	}
	snprintf(clause, sizeof(clause),
	    "dmarc=%s (p=%s dis=%s) header.from=%s", dmarc_res_name(o.res),
	    dmarc_pol_name(o.policy), dmarc_pol_name(o.disposition),
	    m->from_domain);
	filter_auth_result(t, clause);
	if (c->report_log == NULL)
		return FILTER_CONTINUE;
	j = xcalloc(1, sizeof(*j));
	j->path = xstrdup(c->report_log);
	if ((j->line = report_line(m, &rec, &a, &o)) == NULL ||
	    filter_work(t, report_write, report_done, j) == -1) {
		filter_evidence(t, "DMARC_REPORT_FAILED", 0,
		    "report line not written (busy)");
		free(j->line);
		free(j->path);
		free(j);
		return FILTER_CONTINUE;
	}
	return FILTER_PENDING;
}

/* Discovery ended while EOM waited. */
static void
finish_async(struct dmarc_msg *m)
{
	struct filter_reply reply;
	enum filter_verdict v;

	m->eom_waiting = 0;
	memset(&reply, 0, sizeof(reply));
	v = finish(m, &m->token, &reply);
	if (v != FILTER_PENDING)
		filter_complete(&m->token, v, &reply);
}

/* ---------------------------------------------------------- the filter */

static void
msg_free(struct dmarc_msg *m)
{
	if (m == NULL)
		return;
	if (m->q != NULL)
		resolver_cancel(m->q);
	free(m->from);
	free(m->record);
	free(m);
}

static enum filter_verdict
dmarc_stage(void *ctx, struct filter_call *fc, struct filter_reply *reply)
{
	const struct dmarc_conf *c = ctx;
	const struct filter_env *env = fc->env;
	struct dmarc_msg	*m = *fc->session_data;
	enum filter_verdict	 v;

	if (env->auth != NULL ||
	    (!c->check_loopback && addr_is_loopback(env->client_sa)))
		return FILTER_CONTINUE;
	if (m == NULL) {
		m = xcalloc(1, sizeof(*m));
		m->conf = c;
		m->loop = fc->token.loop;
		*fc->session_data = m;
	}
	switch (fc->stage) {
	case FILTER_STAGE_HEADER:
		if (env->hdr_name != NULL &&
		    ascii_strcasecmp(env->hdr_name, "From") == 0 &&
		    m->nfrom++ == 0)
			m->from = xstrndup(env->hdr_value ? env->hdr_value : "",
			    FROM_FIELD_MAX + 1);
		break;
	case FILTER_STAGE_EOH:
		start(m, env);
		break;
	case FILTER_STAGE_EOM:
		if (!m->started)
			start(m, env);
		if (m->disc == DISC_ASKING) {
			m->eom_waiting = 1;
			m->token = fc->token;
			fc->cookie = m;
			return FILTER_PENDING;
		}
		if ((v = finish(m, &fc->token, reply)) == FILTER_PENDING)
			fc->cookie = m;
		return v;
	default:
		break;
	}
	return FILTER_CONTINUE;
}

/* An EOM that waited is abandoned (client gone, timeout). */
static void
dmarc_cancel(void *ctx, void *cookie)
{
	struct dmarc_msg *m = cookie;

	(void)ctx;
	m->eom_waiting = 0;
	if (m->q != NULL) {
		resolver_cancel(m->q);
		m->q = NULL;
	}
}

static void
dmarc_reset(void *ctx, void **session_data)
{
	(void)ctx;
	msg_free(*session_data);
	*session_data = NULL;
}

void
dmarcfilter_dirs(const struct filter_conf *fc, filter_dir_fn dir, void *arg)
{
	const char *v = filter_conf_get(fc, "report_log");

	if (v != NULL)
		filter_dir_of(v, dir, arg);
}

const struct filter_ops dmarcfilter_ops = {
	.abi = FILTER_ABI_VERSION,
	.name = "dmarc",
	.stages = FILTER_STAGE_BIT(FILTER_STAGE_HEADER) |
	    FILTER_STAGE_BIT(FILTER_STAGE_EOH) |
	    FILTER_STAGE_BIT(FILTER_STAGE_EOM),
	.options = dmarc_filter_options,
	.init = dmarc_init_filter,
	.fini = dmarc_fini_filter,
	.stage = dmarc_stage,
	.cancel = dmarc_cancel,
	.reset = dmarc_reset,
	.close = dmarc_reset,
	.rules = dmarc_rules,
};
