/*
 * policy.c - compiles the policy configuration (rules, lists, groups) and
 * turns evidence into an action (see policy.h).
 *
 * Each group gets one rule table, built at compile time: the group's own
 * rules, then the global rules, then the rules implied by lists (a list's
 * action on its symbol), then the default rules of the chain's filters
 * (filter_ops.rules), the first definition of a symbol winning. Groups
 * inherit unset thresholds from the group named "default", which inherits
 * from the built-in defaults (add_header 6, reject 15, as rspamd's).
 *
 * Threading: built on the configuration thread (main at start-up, the
 * reload thread at a reload; no process-wide state), then read-only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chain.h"
#include "evidence.h"
#include "filter_api.h"
#include "hdredit.h"
#include "lists.h"
#include "policy.h"
#include "util.h"

struct prule {
	const char	  *symbol;
	enum policy_action action;
	const char	  *reply; /* "550 5.7.1 text" or NULL */
};

struct policy_group {
	const struct group_conf *gc; /* NULL: the built-in default */
	const char		*name;
	struct list		*rcpts;
	int			 authenticated;
	uint32_t		 mask;
	double			 threshold[ACT_COUNT];
	int			 early_reject;
	const char		*subject_tag;
	const char		*reply[ACT_COUNT];
	struct prule		*rules;
	size_t			 nrules;
};

struct policy {
	const struct config *cf;
	struct policy_list  *lists;
	size_t		     nlists;
	struct policy_group *groups; /* the default last */
	size_t		     ngroups;
};

static const double builtin_threshold[ACT_COUNT] = {
	[ACT_NONE] = SCORE_OFF,
	[ACT_ADD_HEADER] = 6,
	[ACT_QUARANTINE] = SCORE_OFF,
	[ACT_DISCARD] = SCORE_OFF,
	[ACT_TEMPFAIL] = SCORE_OFF,
	[ACT_REJECT] = 15,
	[ACT_ACCEPT] = SCORE_OFF,
};

static void
list_err(void *arg, const char *file, int line, const char *reason)
{
	*(int *)arg += 1;
	config_report(file, line, "%s", reason);
}

static struct list *
list_build(enum list_kind kind, char *const *entries, size_t n,
    char *const *files, size_t nfiles, const char *cfile, int line,
    const char *what, int *bad)
{
	struct list *l = list_new(kind);
	char	     err[256];
	size_t	     i;

	for (i = 0; i < n; i++)
		if (list_add(l, entries[i], err, sizeof(err)) == -1) {
			config_report(cfile, line, "%s: %s", what, err);
			*bad += 1;
		}
	for (i = 0; i < nfiles; i++)
		list_load_file(l, files[i], list_err, bad);
	list_finish(l);
	return l;
}

static void
rules_add(struct policy_group *g, const char *symbol, enum policy_action a,
    const char *reply)
{
	size_t i;

	for (i = 0; i < g->nrules; i++)
		if (strcmp(g->rules[i].symbol, symbol) == 0)
			return; /* an earlier definition wins */
	g->rules = xrealloc(g->rules, (g->nrules + 1) * sizeof(*g->rules));
	g->rules[g->nrules].symbol = symbol;
	g->rules[g->nrules].action = a;
	g->rules[g->nrules].reply = reply;
	g->nrules++;
}

static void
group_rules(struct policy *p, struct policy_group *g)
{
	const struct config *cf = p->cf;
	size_t		     i;

	if (g->gc != NULL)
		for (i = 0; i < g->gc->nrules; i++)
			rules_add(g, g->gc->rules[i].symbol,
			    g->gc->rules[i].action, g->gc->rules[i].reply);
	for (i = 0; i < cf->nrules; i++)
		rules_add(g, cf->rules[i].symbol, cf->rules[i].action,
		    cf->rules[i].reply);
	for (i = 0; i < cf->nlists; i++)
		if (cf->lists[i].action != ACT_NONE)
			rules_add(g, cf->lists[i].symbol, cf->lists[i].action,
			    cf->lists[i].reply);
}

struct policy *
policy_new(const struct config *cf)
{
	struct policy		*p = xcalloc(1, sizeof(*p));
	const struct group_conf *gc, *defgc = NULL;
	struct policy_group	*g;
	struct list_conf	*lc;
	size_t			 i, k;
	int			 bad = 0;
	char			 what[160];

	p->cf = cf;
	p->nlists = cf->nlists;
	p->lists = p->nlists ? xcalloc(p->nlists, sizeof(*p->lists)) : NULL;
	for (i = 0; i < cf->nlists; i++) {
		lc = &cf->lists[i];
		snprintf(what, sizeof(what), "list \"%s\"", lc->name);
		p->lists[i].list =
		    list_build(lc->kind, lc->entries, lc->nentries, lc->files,
			lc->nfiles, cf->file, lc->line, what, &bad);
		p->lists[i].kind = lc->kind;
		p->lists[i].name = lc->name;
		p->lists[i].symbol = lc->symbol;
		p->lists[i].score = lc->score;
		p->lists[i].action = lc->action;
	}

	for (i = 0; i < cf->ngroups; i++)
		if (strcmp(cf->groups[i].name, "default") == 0)
			defgc = &cf->groups[i];
	/* Groups in configuration order, "default" last. */
	p->groups = xcalloc(cf->ngroups + 1, sizeof(*p->groups));
	for (i = 0; i <= cf->ngroups; i++) {
		if (i < cf->ngroups) {
			gc = &cf->groups[i];
			if (gc == defgc)
				continue;
		} else
			gc = defgc;
		g = &p->groups[p->ngroups++];
		g->gc = gc;
		g->name = gc != NULL ? gc->name : "default";
		g->mask = ~0u;
		for (k = 0; k < ACT_COUNT; k++) {
			g->threshold[k] = builtin_threshold[k];
			if (defgc != NULL && defgc->threshold[k] != SCORE_OFF)
				g->threshold[k] = defgc->threshold[k];
			if (gc != NULL && gc->threshold[k] != SCORE_OFF)
				g->threshold[k] = gc->threshold[k];
			g->reply[k] = gc != NULL && gc->reply[k] != NULL
			    ? gc->reply[k]
			    : (defgc != NULL ? defgc->reply[k] : NULL);
		}
		if (gc != NULL) {
			g->authenticated = gc->authenticated;
			g->early_reject = gc->early_reject;
			g->subject_tag = gc->subject_tag;
			snprintf(what, sizeof(what), "group \"%s\" recipients",
			    gc->name);
			if (gc != defgc &&
			    (gc->nrecipients > 0 || gc->nrecipient_files > 0))
				g->rcpts = list_build(LIST_RECIPIENT,
				    gc->recipients, gc->nrecipients,
				    gc->recipient_files, gc->nrecipient_files,
				    cf->file, gc->line, what, &bad);
			else if (gc != defgc && !gc->authenticated) {
				config_report(cf->file, gc->line,
				    "group \"%s\": no recipients (only the "
				    "default group and authenticated groups "
				    "may match everything)",
				    gc->name);
				bad++;
			}
		}
		group_rules(p, g);
	}
	if (bad) {
		policy_free(p);
		return NULL;
	}
	return p;
}

/* The rules the chain's filters propose, after every configured one. */
static void
filter_rules(struct policy_group *g, const struct chain *c)
{
	const struct filter_rule *r;
	size_t			  i;
	int			  a;

	for (i = 0; i < chain_size(c); i++)
		for (r = chain_filter_rules(c, i); r != NULL && r->symbol; r++)
			if ((a = policy_action_parse(r->action)) >= 0)
				rules_add(g, r->symbol, (enum policy_action)a,
				    r->reply);
}

void
policy_bind_chain(struct policy *p, const struct chain *c)
{
	struct policy_group *g;
	size_t		     i, k;
	int		     idx;

	for (i = 0; i < p->ngroups; i++) {
		g = &p->groups[i];
		filter_rules(g, c);
		if (g->gc == NULL || g->gc->filters == NULL)
			continue;
		g->mask = 0;
		for (k = 0; k < g->gc->nfilters; k++)
			if ((idx = chain_find(c, g->gc->filters[k])) >= 0)
				g->mask |= 1u << idx;
	}
}

void
policy_free(struct policy *p)
{
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; i < p->nlists; i++)
		list_free((struct list *)p->lists[i].list);
	free(p->lists);
	for (i = 0; i < p->ngroups; i++) {
		list_free(p->groups[i].rcpts);
		free(p->groups[i].rules);
	}
	free(p->groups);
	free(p);
}

const struct policy_group *
policy_group_for(const struct policy *p, const char *rcpt, int authenticated)
{
	const struct policy_group *g;
	size_t			   i;
	int			   pass;

	/* Authenticated sessions try the authenticated groups first. */
	for (pass = authenticated ? 0 : 1; pass < 2; pass++)
		for (i = 0; i + 1 < p->ngroups; i++) {
			g = &p->groups[i];
			if (g->authenticated != (pass == 0))
				continue;
			if (g->rcpts == NULL)
				return g; /* authenticated, no list: all */
			if (rcpt != NULL && list_match_name(g->rcpts, rcpt))
				return g;
		}
	return &p->groups[p->ngroups - 1];
}

const char *
policy_group_name(const struct policy_group *g)
{
	return g->name;
}

uint32_t
policy_group_mask(const struct policy_group *g)
{
	return g->mask;
}

double
policy_group_required(const struct policy_group *g)
{
	double r = SCORE_OFF;
	int    a;

	for (a = ACT_ADD_HEADER; a <= ACT_REJECT; a++)
		if (g->threshold[a] < r)
			r = g->threshold[a];
	return r;
}

const char *
policy_group_subject_tag(const struct policy_group *g)
{
	return g->subject_tag;
}

static const struct prule *
rule_for(const struct policy_group *g, const char *symbol, int *idx)
{
	size_t i;

	for (i = 0; i < g->nrules; i++)
		if (strcmp(g->rules[i].symbol, symbol) == 0) {
			*idx = (int)i;
			return &g->rules[i];
		}
	return NULL;
}

static int
is_final(enum policy_action a)
{
	return a == ACT_ACCEPT || a == ACT_REJECT || a == ACT_TEMPFAIL ||
	    a == ACT_DISCARD;
}

/*
 * A configured reply text, with "%{detail}" replaced by the detail of the
 * evidence that fired the rule ("Virus found: %{detail}" names the
 * virus). Details are sanitised when recorded; the session sanitises the
 * whole reply again.
 */
static void
reply_text(char *out, size_t size, const char *text, const char *detail)
{
	static const char var[] = "%{detail}";
	const char	 *v;
	size_t		  n = 0;
	int		  k;

	out[0] = '\0';
	while ((v = strstr(text, var)) != NULL && n < size) {
		k = snprintf(out + n, size - n, "%.*s%s", (int)(v - text), text,
		    detail != NULL ? detail : "");
		n = k < 0 ? size : n + (size_t)k;
		text = v + sizeof(var) - 1;
	}
	if (n < size)
		snprintf(out + n, size - n, "%s", text);
}

/* The reply for an action: configured (rule, then group) or default. */
static void
decision_reply(const struct policy_group *g, const char *rule_reply,
    const char *detail, int stage, int spam, struct policy_decision *d)
{
	const char *conf =
	    rule_reply != NULL ? rule_reply : g->reply[d->action];
	const char *text;

	d->code = 0;
	d->enh[0] = d->text[0] = '\0';
	if (conf != NULL &&
	    config_reply_parse(conf, &d->code, d->enh, sizeof(d->enh), &text) ==
		0 &&
	    ((d->action == ACT_REJECT && d->code / 100 == 5) ||
		(d->action == ACT_TEMPFAIL && d->code / 100 == 4))) {
		reply_text(d->text, sizeof(d->text), text, detail);
		return;
	}
	switch (d->action) {
	case ACT_REJECT:
		d->code = stage == FILTER_STAGE_CONNECT ? 554 : 550;
		strcpy(d->enh, "5.7.1");
		snprintf(d->text, sizeof(d->text), "%s",
		    stage <= FILTER_STAGE_HELO	     ? "Access denied"
			: stage == FILTER_STAGE_MAIL ? "Sender address rejected"
			: stage == FILTER_STAGE_RCPT
			? "Recipient address rejected"
			: spam ? "Message rejected as spam"
			       : "Message rejected");
		break;
	case ACT_TEMPFAIL:
		d->code = stage == FILTER_STAGE_CONNECT ? 421 : 451;
		strcpy(d->enh, "4.7.1");
		snprintf(d->text, sizeof(d->text), "Try again later");
		break;
	default:
		d->code = 250;
		strcpy(d->enh, "2.0.0");
		break;
	}
}

int
policy_early(const struct policy *p, const struct policy_group *g,
    struct evidence_set *es, size_t from, int stage, struct policy_decision *d)
{
	const struct prule *r;
	size_t		    i;
	int		    idx;

	memset(d, 0, sizeof(*d));
	d->score = es->total;
	for (i = from; i < es->n; i++) {
		if ((r = rule_for(g, es->v[i].symbol, &idx)) == NULL)
			continue;
		es->v[i].rule = idx;
		if (!is_final(r->action))
			continue;
		d->action = r->action;
		snprintf(d->reason, sizeof(d->reason), "rule %s", r->symbol);
		decision_reply(g, r->reply, es->v[i].detail, stage, 0, d);
		return 1;
	}
	if (g->early_reject && stage < FILTER_STAGE_DATA &&
	    es->total >= g->threshold[ACT_REJECT]) {
		d->action = ACT_REJECT;
		snprintf(d->reason, sizeof(d->reason), "score %.2f >= %.2f",
		    es->total, g->threshold[ACT_REJECT]);
		decision_reply(g, NULL, NULL, stage, 1, d);
		return 1;
	}
	return 0;
}

void
policy_final(const struct policy *p, const struct policy_group *g,
    struct evidence_set *es, struct policy_decision *d)
{
	const struct prule *r, *best = NULL;
	const char	   *detail = NULL;
	size_t		    i;
	int		    idx, a;

	memset(d, 0, sizeof(*d));
	d->score = es->total;
	d->action = ACT_NONE;
	for (i = 0; i < es->n; i++) {
		if ((r = rule_for(g, es->v[i].symbol, &idx)) == NULL)
			continue;
		es->v[i].rule = idx;
		if (r->action == ACT_ACCEPT) {
			/* An allow rule: forwarded as it is. */
			d->action = ACT_ACCEPT;
			snprintf(
			    d->reason, sizeof(d->reason), "rule %s", r->symbol);
			decision_reply(g, NULL, NULL, FILTER_STAGE_EOM, 0, d);
			return;
		}
		if (r->action > d->action) {
			d->action = r->action;
			best = r;
			detail = es->v[i].detail;
		}
	}
	if (best != NULL)
		snprintf(d->reason, sizeof(d->reason), "rule %s", best->symbol);
	for (a = ACT_REJECT; a > ACT_NONE; a--)
		if (g->threshold[a] != SCORE_OFF &&
		    es->total >= g->threshold[a])
			break;
	if (a > (int)d->action) {
		d->action = a;
		best = NULL;
		snprintf(d->reason, sizeof(d->reason), "score %.2f >= %.2f",
		    es->total, g->threshold[a]);
	}
	decision_reply(g, best != NULL ? best->reply : NULL, detail,
	    FILTER_STAGE_EOM, best == NULL, d);
}

int
policy_has_lists(const struct policy *p)
{
	return p->nlists > 0;
}

size_t
policy_nlists(const struct policy *p)
{
	return p->nlists;
}

const struct policy_list *
policy_list_at(const struct policy *p, size_t i)
{
	return &p->lists[i];
}

/* ----------------------------------------------------- headers */

void
policy_header_seen(const struct config *cf, struct policy_seen *seen,
    const char *name, size_t namelen, const char *value, size_t valuelen)
{
	size_t i, k;

#define IS(n)                                                                  \
	(n != NULL && strlen(n) == namelen &&                                  \
	    ascii_strncasecmp(name, n, namelen) == 0)
	if (IS("Authentication-Results") &&
	    ar_has_authserv_id(value, valuelen, cf->authserv_id))
		seen->our_ar = 1;
	if (IS(cf->spam_status_header) || IS(cf->spam_score_header))
		seen->spam_hdr = 1;
	if (IS("Subject") && seen->subject == NULL) {
		/* Unfolded (bounded by max_header_size), leading blanks
		 * dropped; hdr_format folds it again. */
		seen->subject = xmalloc(valuelen + 1);
		for (i = 0;
		     i < valuelen && (value[i] == ' ' || value[i] == '\t');)
			i++;
		for (k = 0; i < valuelen; i++)
			if (value[i] != '\r' && value[i] != '\n')
				seen->subject[k++] = value[i];
		seen->subject[k] = '\0';
	}
#undef IS
}

/* "A,B,C" for the spam status header. */
static void
tests_list(const struct evidence_set *es, char *buf, size_t len)
{
	size_t i, n = 0;
	int    w;

	buf[0] = '\0';
	for (i = 0; i < es->n && n < len; i++) {
		w = snprintf(
		    buf + n, len - n, "%s%s", n ? "," : "", es->v[i].symbol);
		if (w < 0 || (size_t)w >= len - n) {
			buf[n] = '\0';
			break;
		}
		n += (size_t)w;
	}
}

void
policy_headers(const struct config *cf, const struct policy_group *g,
    const struct policy_decision *d, const struct evidence_set *ev,
    const char *const *ar, size_t nar, const struct policy_seen *seen,
    struct hdr_edits *edits)
{
	enum policy_action a = d->action;
	char		  *v, tests[700], status[900];
	const char	  *tag, *yes;
	double		   req;

	if (cf->auth_results) {
		if (seen->our_ar)
			hdr_edit_delete_ar(edits, cf->authserv_id);
		if (nar > 0) {
			v = ar_build(cf->authserv_id, ar, nar);
			hdr_edit_add(edits, "Authentication-Results", v);
			free(v);
		}
	}
	if (a == ACT_ACCEPT)
		return;
	if (a == ACT_ADD_HEADER || a == ACT_QUARANTINE ||
	    cf->spam_headers_always) {
		req = policy_group_required(g);
		yes = a == ACT_ADD_HEADER || a == ACT_QUARANTINE ? "Yes" : "No";
		tests_list(ev, tests, sizeof(tests));
		if (seen->spam_hdr) {
			if (cf->spam_status_header != NULL)
				hdr_edit_change(
				    edits, cf->spam_status_header, 0, NULL);
			if (cf->spam_score_header != NULL)
				hdr_edit_change(
				    edits, cf->spam_score_header, 0, NULL);
		}
		if (cf->spam_status_header != NULL) {
			if (req < SCORE_OFF)
				snprintf(status, sizeof(status),
				    "%s, score=%.2f required=%.2f tests=%s",
				    yes, ev->total, req, tests);
			else
				snprintf(status, sizeof(status),
				    "%s, score=%.2f tests=%s", yes, ev->total,
				    tests);
			hdr_edit_add(edits, cf->spam_status_header, status);
		}
		if (cf->spam_score_header != NULL) {
			snprintf(status, sizeof(status), "%.2f", ev->total);
			hdr_edit_add(edits, cf->spam_score_header, status);
		}
	}
	tag = policy_group_subject_tag(g);
	if (a == ACT_ADD_HEADER && tag != NULL && *tag != '\0') {
		if (seen->subject != NULL) {
			v = xmalloc(strlen(tag) + strlen(seen->subject) + 2);
			sprintf(v, "%s %s", tag, seen->subject);
			hdr_edit_change(edits, "Subject", 1, v);
			free(v);
		} else
			hdr_edit_append(edits, "Subject", tag);
	}
}
