/*
 * sa_conf.c - the loader for SpamAssassin rule files (the configuration
 * language of Mail::SpamAssassin::Conf 4.0 as far as rules go): files and
 * directories (*.cf in lexical order), comments ("#", "\#" a literal),
 * ifplugin/if/else/endif with a fixed set of plugins moat implements,
 * require_version, the rule definitions (header, mimeheader, body,
 * rawbody, full, uri, meta, eval: forms), score, describe, tflags,
 * priority, the ReplaceTags plugin's replace_* directives, and the list
 * directives evals and other modules read. Unknown directives are
 * counted and ignored, like SpamAssassin's many non-rule settings.
 *
 * After the last file the ruleset is finished: tags replaced, regexes
 * compiled (an error names file:line and PCRE2's reason), metas compiled
 * and ordered (cycles rejected), scores of the chosen set applied and
 * the rules to run chosen. The result is immutable.
 *
 * Bounded: at most SA_MAX_FILE bytes per file, SA_MAX_LINE per line
 * (longer lines are an error), SA_MAX_RULES rules, SA_MAX_COND nested
 * conditionals. Single-threaded (the loading thread).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sa_int.h"
#include "util.h"

#define SA_MAX_FILE   (32u << 20)
#define SA_MAX_LINE   65536u
#define SA_MAX_RULES  200000u
#define SA_MAX_COND   64
#define SA_MAX_ERRORS 100
#define SA_MAX_LIST   1000000u
#define SA_VERSION    4.000001 /* the SpamAssassin version we read for */
/* bit 31 of a rule's line: defined in a strict (user's own) file */
#define SA_LINE_STRICT 0x80000000u

/*
 * Plugins whose rules moat can run: the eval collections (their evals
 * moat does not implement are skipped one by one and counted), the
 * authentication results it takes from its own filters, the DNS list
 * plugins whose definitions it hands to its DNSBL module, and the
 * syntax plugins (MIMEHeader, ReplaceTags). Everything else (Razor2,
 * Pyzor, DCC, AWL, TxRep, TextCat, ImageInfo, AntiVirus, ...) is absent,
 * so "if !plugin(...)" fallbacks apply.
 */
static const char *const plugins[] = {
	"Check",
	"ReplaceTags",
	"MIMEHeader",
	"Bayes",
	"SPF",
	"DKIM",
	"DMARC",
	"FreeMail",
	"HeaderEval",
	"MIMEEval",
	"HTMLEval",
	"BodyEval",
	"RelayEval",
	"URIEval",
	"WLBLEval",
	"DNSEval",
	"URIDNSBL",
	"AskDNS",
};

/* can() features: Conf's feature_* moat honours (not capture_rules). */
static const char *const features[] = {
	"Mail::SpamAssassin::Conf::feature_originating_ip_headers",
	"Mail::SpamAssassin::Conf::feature_dns_local_ports_permit_avoid",
	"Mail::SpamAssassin::Conf::feature_bayes_auto_learn_on_error",
	"Mail::SpamAssassin::Conf::feature_uri_host_listed",
	"Mail::SpamAssassin::Conf::feature_yesno_takes_args",
	"Mail::SpamAssassin::Conf::feature_bug6558_free",
	"Mail::SpamAssassin::Conf::feature_edns",
	"Mail::SpamAssassin::Conf::feature_dns_query_restriction",
	"Mail::SpamAssassin::Conf::feature_registryboundaries",
	"Mail::SpamAssassin::Conf::feature_dns_block_rule",
	"Mail::SpamAssassin::Conf::feature_compile_regexp",
	"Mail::SpamAssassin::Conf::feature_blocklist_welcomelist",
	"Mail::SpamAssassin::Conf::feature_welcomelist_blocklist",
	"Mail::SpamAssassin::Conf::feature_header_address_parser",
	"Mail::SpamAssassin::Conf::feature_local_tests_only",
	"Mail::SpamAssassin::Conf::feature_header_first_last",
	"Mail::SpamAssassin::Conf::feature_header_match_many",
	"Mail::SpamAssassin::Conf::has_tflags_nosubject",
	"Mail::SpamAssassin::Conf::has_tflags_nolog",
	"Mail::SpamAssassin::Conf::perl_min_version_5010000",
	"Mail::SpamAssassin::Plugin::MIMEHeader::has_all_header",
	"Mail::SpamAssassin::Plugin::MIMEHeader::has_tflags_multiple",
};

/* Directives whose arguments are kept as named lists. */
static const char *const listdirs[] = {
	"freemail_domains",
	"freemail_whitelist",
	"freemail_welcomelist",
	"freemail_import_whitelist_auth",
	"util_rb_tld",
	"util_rb_2tld",
	"util_rb_3tld",
	"url_shortener",
	"bayes_ignore_header",
	"bayes_ignore_from",
	"bayes_ignore_to",
	"uridnsbl_skip_domain",
	"redirector_pattern",
	"originating_ip_headers",
	"trusted_networks",
	"internal_networks",
	"msa_networks",
	"welcomelist_from",
	"whitelist_from",
	"blocklist_from",
	"blacklist_from",
	"def_welcomelist_auth",
	"def_whitelist_auth",
	"welcomelist_auth",
	"whitelist_auth",
	"def_welcomelist_from_dkim",
	"def_whitelist_from_dkim",
	"def_welcomelist_from_spf",
	"def_whitelist_from_spf",
	"welcomelist_to",
	"whitelist_to",
	"more_spam_to",
	"all_spam_to",
	"adsp_override",
	"dns_block_rule",
	"uridnsbl_skip_domains",
	"ok_locales",
	"ok_languages",
};

struct loader {
	struct sa_ruleset *rs;
	const char	  *file;
	unsigned	   line;
	int		   strict;
	int		   refused;
	char		  *err;
	size_t		   errlen;
	int		   no_prefilter;
	const char	  *cache_dir;
	int		   no_lazy;
	int		   cond[SA_MAX_COND]; /* is this level active */
	int		   ncond;
};

static int
active(const struct loader *l)
{
	return l->ncond == 0 || l->cond[l->ncond - 1];
}

/* Keep the first SA_MAX_ERRORS error messages for sa_ruleset_errors(). */
static void
keep_error(struct sa_ruleset *rs, const char *fmt, const char *file,
    unsigned line, const char *a, const char *b)
{
	char msg[600];

	if (rs->nerrors >= SA_MAX_ERRORS)
		return;
	strfmt(msg, sizeof(msg), fmt, file, line, a, b);
	rs->errors = xrealloc(rs->errors, (rs->nerrors + 1) * sizeof(char *));
	rs->errors[rs->nerrors++] = xstrdup(msg);
}

/* Record an error at the current line: first one kept in err. */
static void
lerror(struct loader *l, const char *fmt, const char *why)
{
	char msg[512];

	strfmt(msg, sizeof(msg), fmt, why);
	l->rs->stats.errors++;
	keep_error(l->rs, "%s:%u: %s", l->file, l->line, msg, "");
	if (l->err != NULL && l->errlen > 0 && l->err[0] == '\0')
		strfmt(l->err, l->errlen, "%s:%u: %s", l->file, l->line, msg);
	if (l->strict)
		l->refused = 1;
}

/* Errors found after loading name the rule's file:line. */
static void
rerror(struct loader *l, const struct sa_rule *r, int strict, const char *why)
{
	l->rs->stats.errors++;
	keep_error(l->rs, "%s:%u: %s: %s", r->file, r->line & ~SA_LINE_STRICT,
	    r->name, why);
	if (l->err != NULL && l->errlen > 0 && l->err[0] == '\0')
		strfmt(l->err, l->errlen, "%s:%u: %s: %s", r->file,
		    r->line & ~SA_LINE_STRICT, r->name, why);
	if (strict)
		l->refused = 1;
}

/* ---------------------------------------------------------------- rules */

static uint32_t
hname(const char *s)
{
	return fnv1a(FNV1A_INIT, s, strlen(s));
}

int
sa_rule_index(const struct sa_ruleset *rs, const char *name)
{
	size_t	 i;
	uint32_t v;

	if (rs->hashcap == 0)
		return -1;
	for (i = hname(name) & (rs->hashcap - 1);;
	     i = (i + 1) & (rs->hashcap - 1)) {
		v = rs->hash[i];
		if (v == 0)
			return -1;
		if (strcmp(rs->rules[v - 1]->name, name) == 0)
			return (int)(v - 1);
	}
}

struct sa_rule *
sa_rule_find(const struct sa_ruleset *rs, const char *name)
{
	int i = sa_rule_index(rs, name);

	return i < 0 ? NULL : rs->rules[i];
}

static void
hash_insert(struct sa_ruleset *rs, size_t idx)
{
	size_t i;

	for (i = hname(rs->rules[idx]->name) & (rs->hashcap - 1);
	     rs->hash[i] != 0; i = (i + 1) & (rs->hashcap - 1))
		;
	rs->hash[i] = (uint32_t)idx + 1;
}

static struct sa_rule *
rule_get(struct loader *l, const char *name)
{
	struct sa_ruleset *rs = l->rs;
	struct sa_rule	  *r;
	size_t		   i;

	if ((r = sa_rule_find(rs, name)) != NULL)
		return r;
	if (rs->nrules >= SA_MAX_RULES)
		return NULL;
	if ((rs->nrules + 1) * 2 > rs->hashcap) {
		rs->hashcap = rs->hashcap ? rs->hashcap * 2 : 1024;
		free(rs->hash);
		rs->hash = xcalloc(rs->hashcap, sizeof(*rs->hash));
		for (i = 0; i < rs->nrules; i++)
			hash_insert(rs, i);
	}
	if (rs->nrules == rs->cap) {
		rs->cap = rs->cap ? rs->cap * 2 : 512;
		rs->rules = xrealloc(rs->rules, rs->cap * sizeof(*rs->rules));
	}
	r = xcalloc(1, sizeof(*r));
	r->name = xstrdup(name);
	r->sub = strncmp(name, "__", 2) == 0;
	r->file = l->file;
	r->line = l->line | (l->strict ? SA_LINE_STRICT : 0);
	rs->rules[rs->nrules] = r;
	hash_insert(rs, rs->nrules);
	rs->nrules++;
	return r;
}

/* Forget a rule's previous definition (a later one replaces it). */
static void
rule_undefine(struct sa_rule *r)
{
	free(r->pattern);
	r->pattern = NULL;
	free(r->orig);
	r->orig = NULL;
	free(r->inline_pat);
	r->inline_pat = NULL;
	r->pf = 0;
	if (r->re != NULL)
		pcre2_code_free(r->re);
	r->re = NULL;
	free(r->hdr);
	r->hdr = NULL;
	free(r->unset);
	r->unset = NULL;
	free(r->metasrc);
	r->metasrc = NULL;
	free(r->code);
	r->code = NULL;
	r->ncode = 0;
	free(r->evalname);
	r->evalname = NULL;
	sa_eval_args_free(&r->args);
	r->ev = NULL;
	r->neg = r->exists = 0;
	r->hmods = 0;
	r->reopts = 0;
	r->is_net = 0;
	r->defined = 0;
}

static void
rule_free(struct sa_rule *r)
{
	rule_undefine(r);
	free(r->name);
	free(r->describe);
	free(r);
}

static int
valid_name(const char *s)
{
	if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		*s == '_'))
		return 0;
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
			(*s >= '0' && *s <= '9') || *s == '_'))
			return 0;
	return 1;
}

/* ---------------------------------------------------------------- lists */

struct sa_list *
sa_list_get(const struct sa_ruleset *rs, const char *name)
{
	size_t i;

	for (i = 0; i < rs->nlists; i++)
		if (strcmp(rs->lists[i].name, name) == 0)
			return &rs->lists[i];
	return NULL;
}

static struct sa_list *
list_make(struct sa_ruleset *rs, const char *name)
{
	struct sa_list *li;

	if ((li = sa_list_get(rs, name)) != NULL)
		return li;
	rs->lists = xrealloc(rs->lists, (rs->nlists + 1) * sizeof(*rs->lists));
	li = &rs->lists[rs->nlists++];
	memset(li, 0, sizeof(*li));
	li->name = xstrdup(name);
	return li;
}

static void
list_add(struct sa_ruleset *rs, const char *name, const char *val, int lower)
{
	struct sa_list *li = list_make(rs, name);
	char	       *v, *c;

	if (li->n >= SA_MAX_LIST)
		return;
	if (li->n == li->cap) {
		li->cap = li->cap ? li->cap * 2 : 16;
		li->v = xrealloc(li->v, li->cap * sizeof(*li->v));
	}
	v = xstrdup(val);
	if (lower)
		for (c = v; *c != '\0'; c++)
			*c = (char)ascii_lower((unsigned char)*c);
	li->v[li->n++] = v;
}

static void
list_clear(struct sa_ruleset *rs, const char *name)
{
	struct sa_list *li = sa_list_get(rs, name);
	size_t		i;

	if (li == NULL)
		return;
	for (i = 0; i < li->n; i++)
		free(li->v[i]);
	li->n = 0;
}

const char *const *
sa_ruleset_list(const struct sa_ruleset *rs, const char *name, size_t *n)
{
	struct sa_list *li = sa_list_get(rs, name);

	*n = li ? li->n : 0;
	return li && li->n ? (const char *const *)li->v : NULL;
}

/* a "*.example.com" or "example.*" style entry */
static int
list_wildcard(const char *p)
{
	size_t pl = strlen(p);

	return pl > 1 && (p[0] == '*' || p[pl - 1] == '*');
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The lookup tables of every list (at the end of the load). */
static void
lists_index(struct sa_ruleset *rs)
{
	size_t i, k;

	for (i = 0; i < rs->nlists; i++) {
		struct sa_list *li = &rs->lists[i];

		free(li->plain);
		free(li->wild);
		li->plain = xcalloc(li->n + 1, sizeof(char *));
		li->wild = xcalloc(li->n + 1, sizeof(char *));
		li->nplain = li->nwild = 0;
		for (k = 0; k < li->n; k++)
			if (list_wildcard(li->v[k]))
				li->wild[li->nwild++] = li->v[k];
			else
				li->plain[li->nplain++] = li->v[k];
		qsort(li->plain, li->nplain, sizeof(char *), cmp_str);
	}
}

/* Is domain (lower case) in the list; "*" globs as SpamAssassin's. */
int
sa_list_has_domain(
    const struct sa_ruleset *rs, const char *list, const char *domain)
{
	struct sa_list *li = sa_list_get(rs, list);
	size_t		i;

	if (li == NULL || domain == NULL)
		return 0;
	if (bsearch(&domain, li->plain, li->nplain, sizeof(char *), cmp_str) !=
	    NULL)
		return 1;
	for (i = 0; i < li->nwild; i++) {
		const char *p = li->wild[i];
		size_t	    pl = strlen(p), dl = strlen(domain);

		if (strcmp(p, domain) == 0)
			return 1;
		/* "*.example.com" and "example.*" style wildcards */
		if (p[0] == '*' && pl > 1 && dl >= pl - 1 &&
		    strcmp(domain + dl - (pl - 1), p + 1) == 0)
			return 1;
		if (pl > 1 && p[pl - 1] == '*' && dl >= pl - 1 &&
		    strncmp(domain, p, pl - 1) == 0)
			return 1;
	}
	return 0;
}

/* ------------------------------------------------------------ conditions */

struct cexpr {
	const char *p;
	int	    err;
};

static double cond_or(struct cexpr *);

static void
cws(struct cexpr *c)
{
	while (*c->p == ' ' || *c->p == '\t')
		c->p++;
}

static int
known(const char *const *tab, size_t n, const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strlen(tab[i]) == len && strncmp(tab[i], s, len) == 0)
			return 1;
	return 0;
}

static int
plugin_present(const char *s, size_t len)
{
	static const char pfx[] = "Mail::SpamAssassin::Plugin::";

	while (len > 0 && (*s == ' ' || *s == '\t'))
		s++, len--;
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	if (len > sizeof(pfx) - 1 && strncmp(s, pfx, sizeof(pfx) - 1) == 0) {
		s += sizeof(pfx) - 1;
		len -= sizeof(pfx) - 1;
	}
	return known(plugins, nitems(plugins), s, len);
}

/*
 * can(Mail::SpamAssassin::Plugin::P::has_E): plugin P is present and
 * moat runs its eval E natively (has_check_for_spf_errors: the SPF
 * permerror/temperror evals).
 */
static int
plugin_can(const char *s, size_t len)
{
	static const char	 pfx[] = "Mail::SpamAssassin::Plugin::";
	const struct sa_evaldef *ev;
	const char		*sep = NULL;
	char			 name[128];
	size_t			 i;

	while (len > 0 && (*s == ' ' || *s == '\t'))
		s++, len--;
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	if (len <= sizeof(pfx) - 1 || strncmp(s, pfx, sizeof(pfx) - 1) != 0)
		return 0;
	for (i = sizeof(pfx) - 1; i + 1 < len; i++)
		if (s[i] == ':' && s[i + 1] == ':')
			sep = s + i;
	if (sep == NULL || !plugin_present(s, (size_t)(sep - s)))
		return 0;
	sep += 2;
	len -= (size_t)(sep - s);
	if (len <= 4 || strncmp(sep, "has_", 4) != 0 || len - 4 >= sizeof(name))
		return 0;
	memcpy(name, sep + 4, len - 4);
	name[len - 4] = '\0';
	if (strcmp(name, "check_for_spf_errors") == 0)
		return 1;
	ev = sa_eval_lookup(name);
	return ev != NULL && ev->fn != NULL;
}

/* "(name)" after can/plugin: the name's span */
static int
cond_call(struct cexpr *c, const char **s, size_t *len)
{
	cws(c);
	if (*c->p != '(') {
		c->err = 1;
		return -1;
	}
	c->p++;
	cws(c);
	*s = c->p;
	while (*c->p != '\0' && *c->p != ')')
		c->p++;
	if (*c->p != ')') {
		c->err = 1;
		return -1;
	}
	*len = (size_t)(c->p - *s);
	while (*len > 0 && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
		(*len)--;
	c->p++;
	return 0;
}

static double
cond_primary(struct cexpr *c, int depth)
{
	const char *s;
	size_t	    len;
	double	    v;
	char	   *end;

	cws(c);
	if (depth > 32) {
		c->err = 1;
		return 0;
	}
	if (*c->p == '!') {
		c->p++;
		return cond_primary(c, depth + 1) != 0 ? 0 : 1;
	}
	if (*c->p == '(') {
		c->p++;
		v = cond_or(c);
		cws(c);
		if (*c->p != ')')
			c->err = 1;
		else
			c->p++;
		return v;
	}
	if (strncmp(c->p, "version", 7) == 0) {
		c->p += 7;
		return SA_VERSION;
	}
	if (strncmp(c->p, "local_tests_only", 16) == 0) {
		c->p += 16;
		return 1;
	}
	if (strncmp(c->p, "perl_version", 12) == 0) {
		c->p += 12;
		return 5.036;
	}
	if (strncmp(c->p, "can", 3) == 0) {
		c->p += 3;
		if (cond_call(c, &s, &len) < 0)
			return 0;
		return known(features, nitems(features), s, len) ||
		    plugin_can(s, len);
	}
	if (strncmp(c->p, "plugin", 6) == 0) {
		c->p += 6;
		if (cond_call(c, &s, &len) < 0)
			return 0;
		return plugin_present(s, len);
	}
	v = strtod(c->p, &end);
	if (end == c->p) {
		c->err = 1;
		return 0;
	}
	c->p = end;
	return v;
}

static double
cond_cmp(struct cexpr *c)
{
	double a = cond_primary(c, 0), b;

	for (;;) {
		cws(c);
		if (strncmp(c->p, ">=", 2) == 0) {
			c->p += 2;
			b = cond_primary(c, 0);
			a = a >= b - 1e-9;
		} else if (strncmp(c->p, "<=", 2) == 0) {
			c->p += 2;
			b = cond_primary(c, 0);
			a = a <= b + 1e-9;
		} else if (strncmp(c->p, "==", 2) == 0) {
			c->p += 2;
			b = cond_primary(c, 0);
			a = a == b;
		} else if (strncmp(c->p, "!=", 2) == 0) {
			c->p += 2;
			b = cond_primary(c, 0);
			a = a != b;
		} else if (*c->p == '>') {
			c->p++;
			b = cond_primary(c, 0);
			a = a > b;
		} else if (*c->p == '<') {
			c->p++;
			b = cond_primary(c, 0);
			a = a < b;
		} else
			return a;
		if (c->err)
			return 0;
	}
}

static double
cond_and(struct cexpr *c)
{
	double a = cond_cmp(c), b;

	for (;;) {
		cws(c);
		if (strncmp(c->p, "&&", 2) != 0 || c->err)
			return a;
		c->p += 2;
		b = cond_cmp(c);
		a = a != 0 && b != 0;
	}
}

static double
cond_or(struct cexpr *c)
{
	double a = cond_and(c), b;

	for (;;) {
		cws(c);
		if (strncmp(c->p, "||", 2) != 0 || c->err)
			return a;
		c->p += 2;
		b = cond_and(c);
		a = a != 0 || b != 0;
	}
}

/* if-expression: 1, 0, or -1 when it cannot be read */
static int
cond_eval(const char *s)
{
	struct cexpr c = { s, 0 };
	double	     v = cond_or(&c);

	cws(&c);
	if (c.err || *c.p != '\0')
		return -1;
	return v != 0;
}

/* ---------------------------------------------------------- directives */

/* Split off the first word of *p (NUL-terminated in place). */
const char *
sa_header_mods(char *name, unsigned *mods)
{
	static const struct {
		const char *name;
		unsigned    bit;
	} known[] = { { "raw", SA_HM_RAW }, { "addr", SA_HM_ADDR },
		{ "name", SA_HM_NAME }, { "first", SA_HM_FIRST },
		{ "last", SA_HM_LAST }, { "host", SA_HM_HOST },
		{ "domain", SA_HM_DOMAIN } };
	char  *m;
	size_t i;

	*mods = 0;
	while ((m = strrchr(name, ':')) != NULL && m != name) {
		*m++ = '\0';
		for (i = 0; i < nitems(known); i++)
			if (strcmp(m, known[i].name) == 0)
				break;
		if (i == nitems(known))
			return m;
		*mods |= known[i].bit;
	}
	return NULL;
}

static char *
word(char **p)
{
	char *s = *p, *w;

	while (*s == ' ' || *s == '\t')
		s++;
	if (*s == '\0') {
		*p = s;
		return NULL;
	}
	w = s;
	while (*s != '\0' && *s != ' ' && *s != '\t')
		s++;
	if (*s != '\0')
		*s++ = '\0';
	while (*s == ' ' || *s == '\t')
		s++;
	*p = s;
	return w;
}

static struct sa_rule *
named_rule(struct loader *l, char **rest)
{
	char	       *name = word(rest);
	struct sa_rule *r;

	if (name == NULL || !valid_name(name)) {
		lerror(l, "%s", "missing or invalid rule name");
		return NULL;
	}
	if ((r = rule_get(l, name)) == NULL)
		lerror(l, "%s", "too many rules");
	return r;
}

/*
 * The rule a definition line names, emptied for its new definition (a
 * later definition replaces an earlier one; what a failed definition
 * left goes too), with its type and where it is defined. NULL after
 * reporting a bad name.
 */
static struct sa_rule *
rule_begin(struct loader *l, char **rest, enum sa_rtype type)
{
	struct sa_rule *r = named_rule(l, rest);

	if (r == NULL)
		return NULL;
	if (r->defined)
		l->rs->stats.redefined++;
	rule_undefine(r);
	r->type = type;
	r->file = l->file;
	r->line = l->line | (l->strict ? SA_LINE_STRICT : 0);
	return r;
}

static void
kv_set(struct sa_kv **tab, size_t *n, const char *k, const char *v)
{
	size_t i;

	for (i = 0; i < *n; i++)
		if (strcmp((*tab)[i].k, k) == 0) {
			free((*tab)[i].v);
			(*tab)[i].v = xstrdup(v);
			return;
		}
	*tab = xrealloc(*tab, (*n + 1) * sizeof(**tab));
	(*tab)[*n].k = xstrdup(k);
	(*tab)[*n].v = xstrdup(v);
	(*n)++;
}

static const char *
kv_get(const struct sa_kv *tab, size_t n, const char *k)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(tab[i].k, k) == 0)
			return tab[i].v;
	return NULL;
}

/* "eval:name(args)" at s: sets up r; 0 or -1 (error reported) */
static int
define_eval(struct loader *l, struct sa_rule *r, const char *s)
{
	char	    name[128], why[256];
	const char *p = s + 5, *open;
	size_t	    len;

	open = strchr(p, '(');
	len = open ? (size_t)(open - p) : strlen(p);
	while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
		len--;
	if (len == 0 || len >= sizeof(name)) {
		lerror(l, "%s", "bad eval: function name");
		return -1;
	}
	memcpy(name, p, len);
	name[len] = '\0';
	r->evalname = xstrdup(name);
	if (open != NULL &&
	    sa_eval_parse_args(open, &r->args, why, sizeof(why)) < 0) {
		lerror(l, "%s", why);
		return -1;
	}
	r->ev = sa_eval_lookup(name);
	/* another argument count than moat's function takes: skipped */
	if (r->ev != NULL &&
	    (r->args.n < r->ev->minargs || r->args.n > r->ev->maxargs))
		r->ev = NULL;
	return 0;
}

/* An "eval:NAME(args)" definition: 1 when rest is one (r defined, or
   the error reported), 0 when it is not. */
static int
rule_eval_def(struct loader *l, struct sa_rule *r, const char *rest)
{
	if (strncmp(rest, "eval:", 5) != 0)
		return 0;
	if (define_eval(l, r, rest) == 0)
		r->defined = 1;
	return 1;
}

/* The rule's regular expression at *p; *p is left after it and any
   blanks. 0, or -1 reported. */
static int
rule_regex(struct loader *l, struct sa_rule *r, const char **p)
{
	char why[256];

	if (sa_regex_parse(p, &r->pattern, &r->reopts, NULL, why, sizeof(why)) <
	    0) {
		lerror(l, "%s", why);
		return -1;
	}
	while (**p == ' ' || **p == '\t')
		(*p)++;
	return 0;
}

/* A definition found wrong after its regex: reported, the regex
   dropped, the rule left undefined. */
static void
rule_bad_tail(struct loader *l, struct sa_rule *r, const char *what)
{
	lerror(l, "%s", what);
	free(r->pattern);
	r->pattern = NULL;
}

/* The end of a regex definition: nothing may follow. */
static void
rule_end(struct loader *l, struct sa_rule *r, const char *p)
{
	if (*p != '\0')
		rule_bad_tail(l, r, "text after the regular expression");
	else
		r->defined = 1;
}

static void
define_regex_rule(struct loader *l, enum sa_rtype type, char *rest)
{
	struct sa_rule *r = rule_begin(l, &rest, type);
	const char     *p = rest;

	if (r == NULL || rule_eval_def(l, r, rest) || rule_regex(l, r, &p) < 0)
		return;
	rule_end(l, r, p);
}

/* header NAME Header[:mods] =~ /re/ [if-unset: X] | exists:H | eval: */
static void
define_header_rule(struct loader *l, enum sa_rtype type, char *rest)
{
	struct sa_rule *r = rule_begin(l, &rest, type);
	char	       *h, *op;
	const char     *p, *m;

	if (r == NULL || rule_eval_def(l, r, rest))
		return;
	if (strncmp(rest, "exists:", 7) == 0) {
		h = rest + 7;
		if (*h == '\0' || strchr(h, ' ') != NULL) {
			lerror(l, "%s", "bad exists: header name");
			return;
		}
		r->exists = 1;
		r->hdr = xstrdup(h);
		r->defined = 1;
		return;
	}
	h = word(&rest);
	op = word(&rest);
	if (h == NULL || op == NULL ||
	    (strcmp(op, "=~") != 0 && strcmp(op, "!~") != 0)) {
		lerror(l, "%s", "expected: header NAME Header =~ /regex/");
		return;
	}
	r->neg = op[0] == '!';
	if ((m = sa_header_mods(h, &r->hmods)) != NULL) {
		lerror(l, "unknown header modifier ':%s'", m);
		return;
	}
	r->hdr = xstrdup(h);
	p = rest;
	if (rule_regex(l, r, &p) < 0)
		return;
	if (strncmp(p, "[if-unset:", 10) == 0) {
		const char *v = p + 10, *e = strrchr(p, ']');

		while (*v == ' ' || *v == '\t')
			v++;
		if (e == NULL || e < v) {
			rule_bad_tail(l, r, "bad [if-unset: ...]");
			return;
		}
		r->unset = xstrndup(v, (size_t)(e - v));
		p = e + 1;
		while (*p == ' ' || *p == '\t')
			p++;
	}
	rule_end(l, r, p);
}

static void
define_meta(struct loader *l, char *rest)
{
	struct sa_rule *r = rule_begin(l, &rest, SA_META);

	if (r == NULL)
		return;
	if (*rest == '\0') {
		lerror(l, "%s", "empty meta expression");
		return;
	}
	r->metasrc = xstrdup(rest);
	r->defined = 1;
}

static void
set_score(struct loader *l, char *rest)
{
	struct sa_rule *r = named_rule(l, &rest);
	double		v[4];
	char	       *w, *end;
	int		n = 0, rel = 0, i;

	if (r == NULL)
		return;
	while (n < 4 && (w = word(&rest)) != NULL) {
		size_t wl = strlen(w);

		if (w[0] == '(' && wl > 2 && w[wl - 1] == ')') {
			rel = 1;
			w[wl - 1] = '\0';
			w++;
		}
		v[n] = strtod(w, &end);
		if (end == w || *end != '\0') {
			lerror(l, "%s", "bad score");
			return;
		}
		n++;
	}
	if ((n != 1 && n != 4) || *rest != '\0') {
		lerror(l, "%s", "score wants 1 or 4 numbers");
		return;
	}
	for (i = 0; i < 4; i++) {
		double x = v[n == 1 ? 0 : i];

		r->score[i] = rel && r->scored ? r->score[i] + x : x;
	}
	r->scored = 1;
}

static void
set_tflags(struct loader *l, char *rest)
{
	struct sa_rule *r = named_rule(l, &rest);
	char	       *w;

	if (r == NULL)
		return;
	/* a later tflags line replaces the earlier one, as in SA */
	r->tflags = 0;
	r->maxhits = 0;
	while ((w = word(&rest)) != NULL) {
		if (strcmp(w, "multiple") == 0)
			r->tflags |= SA_TF_MULTIPLE;
		else if (strncmp(w, "maxhits=", 8) == 0)
			r->maxhits = (unsigned)strtoul(w + 8, NULL, 10);
		else if (strcmp(w, "nice") == 0)
			r->tflags |= SA_TF_NICE;
		else if (strcmp(w, "net") == 0)
			r->tflags |= SA_TF_NET;
		else if (strcmp(w, "learn") == 0)
			r->tflags |= SA_TF_LEARN;
		else if (strcmp(w, "userconf") == 0)
			r->tflags |= SA_TF_USERCONF;
		else if (strcmp(w, "noautolearn") == 0)
			r->tflags |= SA_TF_NOAUTOLEARN;
		else if (strcmp(w, "autolearn_force") == 0)
			r->tflags |= SA_TF_AUTOLEARN_FORCE;
		else if (strcmp(w, "publish") == 0)
			r->tflags |= SA_TF_PUBLISH;
		else if (strcmp(w, "nosubject") == 0)
			r->tflags |= SA_TF_NOSUBJECT;
		else if (strcmp(w, "notrim") == 0)
			r->tflags |= SA_TF_NOTRIM;
		else if (strcmp(w, "domains_only") == 0)
			r->tflags |= SA_TF_DOMAINS_ONLY;
		/* a, nolog, noawl, ips_only, range=, concat, ...: parsed,
		   nothing moat does depends on them */
	}
	if (r->maxhits > SA_MAXHITS_CAP)
		r->maxhits = SA_MAXHITS_CAP;
}

static int
is_listdir(const char *d)
{
	return known(listdirs, nitems(listdirs), d, strlen(d)) ||
	    strncmp(d, "bayes_stopword_", 15) == 0;
}

static void
add_list_words(struct loader *l, const char *dir, char *rest)
{
	int lower = strcmp(dir, "redirector_pattern") != 0 &&
	    strncmp(dir, "bayes_stopword_", 15) != 0;
	char *w;

	if (!lower) {
		list_add(l->rs, dir, rest, 0);
		return;
	}
	while ((w = word(&rest)) != NULL)
		list_add(l->rs, dir, w, 1);
}

static void
directive(struct loader *l, char *line)
{
	struct sa_ruleset *rs = l->rs;
	char		  *rest = line, *d;
	int		   v;

	d = word(&rest);
	if (d == NULL)
		return;
	/* conditionals first: they apply even inside inactive blocks */
	if (strcmp(d, "ifplugin") == 0 || strcmp(d, "if") == 0) {
		if (l->ncond >= SA_MAX_COND) {
			lerror(l, "%s", "conditionals nested too deep");
			return;
		}
		if (d[1] == 'f' && d[2] == 'p')
			v = plugin_present(rest, strlen(rest));
		else if ((v = cond_eval(rest)) < 0) {
			lerror(l, "%s", "cannot read the if expression");
			v = 0;
		}
		l->cond[l->ncond] = active(l) && v;
		l->ncond++;
		return;
	}
	if (strcmp(d, "else") == 0) {
		if (l->ncond == 0) {
			lerror(l, "%s", "else without if");
			return;
		}
		l->cond[l->ncond - 1] = !l->cond[l->ncond - 1] &&
		    (l->ncond == 1 || l->cond[l->ncond - 2]);
		return;
	}
	if (strcmp(d, "endif") == 0) {
		if (l->ncond == 0)
			lerror(l, "%s", "endif without if");
		else
			l->ncond--;
		return;
	}
	if (!active(l)) {
		if (strcmp(d, "header") == 0 || strcmp(d, "body") == 0 ||
		    strcmp(d, "rawbody") == 0 || strcmp(d, "full") == 0 ||
		    strcmp(d, "uri") == 0 || strcmp(d, "meta") == 0 ||
		    strcmp(d, "mimeheader") == 0 || strcmp(d, "askdns") == 0 ||
		    strncmp(d, "urirhs", 6) == 0 ||
		    strncmp(d, "uridns", 6) == 0)
			rs->stats.plugin_disabled++;
		return;
	}
	if (strcmp(d, "header") == 0)
		define_header_rule(l, SA_HEADER, rest);
	else if (strcmp(d, "mimeheader") == 0)
		define_header_rule(l, SA_MIMEHEADER, rest);
	else if (strcmp(d, "body") == 0)
		define_regex_rule(l, SA_BODY, rest);
	else if (strcmp(d, "rawbody") == 0)
		define_regex_rule(l, SA_RAWBODY, rest);
	else if (strcmp(d, "full") == 0)
		define_regex_rule(l, SA_FULL, rest);
	else if (strcmp(d, "uri") == 0)
		define_regex_rule(l, SA_URI, rest);
	else if (strcmp(d, "meta") == 0)
		define_meta(l, rest);
	else if (strcmp(d, "score") == 0)
		set_score(l, rest);
	else if (strcmp(d, "describe") == 0) {
		struct sa_rule *r = named_rule(l, &rest);

		if (r != NULL) {
			free(r->describe);
			r->describe = xstrdup(rest);
		}
	} else if (strcmp(d, "tflags") == 0)
		set_tflags(l, rest);
	else if (strcmp(d, "priority") == 0) {
		struct sa_rule *r = named_rule(l, &rest);

		if (r != NULL)
			r->priority = (int)strtol(rest, NULL, 10);
	} else if (strcmp(d, "require_version") == 0) {
		double want = strtod(rest, NULL);

		/* SA refuses a file written for another version; we read
		   files for 3.x and 4.0 alike and only note a mismatch */
		if (want > SA_VERSION + 1e-9)
			lerror(l, "require_version %s: newer than 4.0.1", rest);
	} else if (strcmp(d, "replace_tag") == 0 ||
	    strcmp(d, "replace_pre") == 0 || strcmp(d, "replace_post") == 0 ||
	    strcmp(d, "replace_inter") == 0) {
		char *k = word(&rest);

		if (k == NULL || *rest == '\0') {
			lerror(l, "%s", "replace_*: name and value wanted");
			return;
		}
		if (d[8] == 't')
			kv_set(&rs->tags, &rs->ntags, k, rest);
		else if (d[9] == 'r')
			kv_set(&rs->pre, &rs->npre, k, rest);
		else if (d[9] == 'o')
			kv_set(&rs->post, &rs->npost, k, rest);
		else
			kv_set(&rs->inter, &rs->ninter, k, rest);
	} else if (strcmp(d, "replace_rules") == 0) {
		char *w;

		while ((w = word(&rest)) != NULL) {
			rs->replace_rules = xrealloc(rs->replace_rules,
			    (rs->nreplace + 1) * sizeof(char *));
			rs->replace_rules[rs->nreplace++] = xstrdup(w);
		}
	} else if (strcmp(d, "replace_start") == 0 ||
	    strcmp(d, "replace_end") == 0) {
		char **t = d[8] == 's' ? &rs->replace_start : &rs->replace_end;

		if (*rest == '\0') {
			lerror(l, "%s", "replace_start/end: value wanted");
			return;
		}
		free(*t);
		*t = xstrdup(rest);
	} else if (strcmp(d, "enlist_uri_host") == 0 ||
	    strcmp(d, "enlist_addrlist") == 0) {
		char name[160], *close;

		if (rest[0] != '(' || (close = strchr(rest, ')')) == NULL ||
		    (size_t)(close - rest) > 100) {
			lerror(l, "%s", "enlist_*: (LISTNAME) wanted");
			return;
		}
		*close = '\0';
		strfmt(name, sizeof(name), "%s:%s", d, rest + 1);
		add_list_words(l, name, close + 1);
	} else if (strcmp(d, "clear_util_rb") == 0) {
		list_clear(rs, "util_rb_tld");
		list_clear(rs, "util_rb_2tld");
		list_clear(rs, "util_rb_3tld");
	} else if (strcmp(d, "clear_originating_ip_headers") == 0)
		list_clear(rs, "originating_ip_headers");
	else if (strcmp(d, "urirhssub") == 0 || strcmp(d, "urirhsbl") == 0 ||
	    strcmp(d, "uridnsbl") == 0 || strcmp(d, "uridnssub") == 0 ||
	    strcmp(d, "askdns") == 0) {
		char		buf[1024], *tmp = rest;
		struct sa_rule *r;

		strfmt(buf, sizeof(buf), "%s", rest);
		if ((r = rule_begin(
			 l, &tmp, d[0] == 'a' ? SA_HEADER : SA_URI)) == NULL)
			return;
		r->is_net = 1;
		r->evalname = xstrdup(d);
		r->defined = 1;
		sa_net_add_directive(rs, d, buf);
	} else if (is_listdir(d))
		add_list_words(l, d, rest);
	else if (strcmp(d, "lang") == 0 || strcmp(d, "test") == 0 ||
	    strcmp(d, "loadplugin") == 0 || strcmp(d, "tryplugin") == 0)
		; /* other languages, rule self-tests: not used */
	else
		rs->stats.unknown_directives++;
}

/* Strip a comment ('#' not after '\'), unescape "\#", trim. */
static char *
clean_line(char *s)
{
	char *p, *w, *e;

	for (p = s; *p != '\0'; p++)
		if (*p == '#' && (p == s || p[-1] != '\\')) {
			*p = '\0';
			break;
		}
	for (p = w = s; *p != '\0'; p++) {
		if (p[0] == '\\' && p[1] == '#')
			continue;
		*w++ = *p;
	}
	*w = '\0';
	while (*s == ' ' || *s == '\t' || *s == '\r')
		s++;
	e = s + strlen(s);
	while (e > s &&
	    (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
		*--e = '\0';
	return s;
}

static void
load_text(struct loader *l, const char *text, size_t len)
{
	const char *p = text, *end = text + len, *nl;
	char	   *buf = xmalloc(SA_MAX_LINE + 1), *s;
	size_t	    ll;

	l->line = 0;
	l->ncond = 0;
	while (p < end && !l->refused) {
		nl = memchr(p, '\n', (size_t)(end - p));
		ll = nl ? (size_t)(nl - p) : (size_t)(end - p);
		l->line++;
		l->rs->stats.lines++;
		if (ll > SA_MAX_LINE) {
			lerror(l, "%s", "line too long");
		} else {
			memcpy(buf, p, ll);
			buf[ll] = '\0';
			/* a NUL inside a line ends it, as in a C string */
			s = clean_line(buf);
			if (*s != '\0')
				directive(l, s);
		}
		p = nl ? nl + 1 : end;
	}
	if (l->ncond != 0 && !l->refused)
		lerror(l, "%s", "if/ifplugin without endif at end of file");
	free(buf);
}

static const char *
intern_file(struct sa_ruleset *rs, const char *path)
{
	rs->files = xrealloc(rs->files, (rs->nfiles + 1) * sizeof(char *));
	rs->files[rs->nfiles] = xstrdup(path);
	return rs->files[rs->nfiles++];
}

static int
load_file(struct loader *l, const char *path)
{
	struct stat st;
	char	   *text;
	ssize_t	    r;
	size_t	    got = 0;
	int	    fd;

	l->file = intern_file(l->rs, path);
	l->line = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		lerror(l, "%s", strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (size_t)st.st_size > SA_MAX_FILE) {
		lerror(l, "%s", "not a regular file of at most 32 MiB");
		close(fd);
		return -1;
	}
	text = xmalloc((size_t)st.st_size + 1);
	while (got < (size_t)st.st_size) {
		r = read(fd, text + got, (size_t)st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	l->rs->stats.files++;
	load_text(l, text, got);
	free(text);
	return 0;
}

static int
cmpstr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
load_path(struct loader *l, const char *path)
{
	struct stat    st;
	DIR	      *d;
	struct dirent *de;
	char	     **names = NULL, full[4096];
	size_t	       n = 0, i, nl;

	if (stat(path, &st) < 0) {
		l->file = intern_file(l->rs, path);
		l->line = 0;
		lerror(l, "%s", strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return load_file(l, path);
	if ((d = opendir(path)) == NULL) {
		l->file = intern_file(l->rs, path);
		lerror(l, "%s", strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL && n < 10000) {
		nl = strlen(de->d_name);
		if (nl < 4 || strcmp(de->d_name + nl - 3, ".cf") != 0 ||
		    de->d_name[0] == '.')
			continue;
		names = xrealloc(names, (n + 1) * sizeof(*names));
		names[n++] = xstrdup(de->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmpstr);
	for (i = 0; i < n && !l->refused; i++) {
		strfmt(full, sizeof(full), "%s/%s", path, names[i]);
		if (stat(full, &st) == 0 && S_ISREG(st.st_mode))
			load_file(l, full);
	}
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return 0;
}

/* --------------------------------------------------------- ReplaceTags */

struct sbuf {
	char  *s;
	size_t n, cap;
	int    over; /* SA_MAX_EXPAND reached: the text is cut */
};

/* A pattern after ReplaceTags is at most this long (Debian's: 224 KB). */
#define SA_MAX_EXPAND (4u << 20)

static void
sb_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->n + n > SA_MAX_EXPAND) {
		b->over = 1;
		return;
	}
	if (b->n + n + 1 > b->cap) {
		b->cap = (b->n + n + 1) * 2;
		b->s = xrealloc(b->s, b->cap);
	}
	memcpy(b->s + b->n, s, n);
	b->n += n;
	b->s[b->n] = '\0';
}

/*
 * Remove the first "<word NAME>" (word = pre/post/inter) from re;
 * return NAME (allocated) or NULL.
 */
static char *
take_directive(char *re, const char *word_, const char *st, const char *en)
{
	size_t sl = strlen(st), el = strlen(en), wl = strlen(word_);
	char   key[64], *p, *e, *name;

	/* Perl's s/<pre (.+?)>//: the first "<pre " with an end after at
	   least one character; if the first has none, no later one has */
	if (sl + wl + 1 >= sizeof(key))
		return NULL;
	strfmt(key, sizeof(key), "%s%s ", st, word_);
	if ((p = strstr(re, key)) == NULL || p[sl + wl + 1] == '\0')
		return NULL;
	if ((e = strstr(p + sl + wl + 2, en)) == NULL)
		return NULL;
	name = xstrndup(p + sl + wl + 1, (size_t)(e - (p + sl + wl + 1)));
	memmove(p, e + el, strlen(e + el) + 1);
	return name;
}

/*
 * SpamAssassin's ReplaceTags on one pattern: split into text and "<...>"
 * pieces, add the pre/post/inter strings, replace known tags; again while
 * a replacement brought new tags (at most 6 passes).
 */
/*
 * Subroutine mode (used != NULL): a tag becomes a call "(?&satN)" of a
 * group defined once in front, "(?(DEFINE)(?<satN>value)...)", so that
 * patterns whose inline expansion exceeds PCRE2's compiled-size limit
 * (64 KiB with Debian's link size) still compile; used[N] marks tags.
 */
static char *
replace_tags(
    const struct sa_ruleset *rs, const char *pattern, unsigned char *used)
{
	const char *st = rs->replace_start ? rs->replace_start : "<";
	const char *en = rs->replace_end ? rs->replace_end : ">";
	char	   *re = xstrdup(pattern);
	int	    pass, again;

	for (pass = 0; pass < 6; pass++) {
		char	   *pre_n, *post_n, *inter_n;
		const char *pre, *post, *inter, *p, *q;
		struct sbuf out = { NULL, 0, 0, 0 };

		again = 0;
		pre_n = take_directive(re, "pre", st, en);
		post_n = take_directive(re, "post", st, en);
		inter_n = take_directive(re, "inter", st, en);
		pre = pre_n ? kv_get(rs->pre, rs->npre, pre_n) : NULL;
		post = post_n ? kv_get(rs->post, rs->npost, post_n) : NULL;
		inter = inter_n ? kv_get(rs->inter, rs->ninter, inter_n) : NULL;
		sb_add(&out, "", 0);
		/* pieces: text up to the next "<x>" with no < > inside x */
		for (p = re;;) {
			const char *t = NULL, *te = NULL;
			char	    tag[256];

			for (q = p; *q != '\0'; q++) {
				const char *c;

				if (strncmp(q, st, strlen(st)) != 0)
					continue;
				c = q + strlen(st);
				while (*c != '\0' &&
				    strncmp(c, en, strlen(en)) != 0 &&
				    strncmp(c, st, strlen(st)) != 0)
					c++;
				if (*c != '\0' &&
				    strncmp(c, en, strlen(en)) == 0 &&
				    c > q + strlen(st)) {
					t = q;
					te = c + strlen(en);
					break;
				}
			}
			/* the text piece before the tag (maybe empty) */
			if (t == NULL) {
				sb_add(&out, p, strlen(p));
				break;
			}
			if (t == p) {
				/* an empty text piece: Perl's split keeps
				   leading and inner empty fields */
				if (inter)
					sb_add(&out, inter, strlen(inter));
			} else
				sb_add(&out, p, (size_t)(t - p));
			/* the tag piece */
			if (pre)
				sb_add(&out, pre, strlen(pre));
			if ((size_t)(te - t) - strlen(st) - strlen(en) <
			    sizeof(tag)) {
				const char *rep;
				size_t	    tl =
				    (size_t)(te - t) - strlen(st) - strlen(en);

				memcpy(tag, t + strlen(st), tl);
				tag[tl] = '\0';
				rep = kv_get(rs->tags, rs->ntags, tag);
				if (rep != NULL && *rep != '\0' && used) {
					char   call[32];
					size_t ti;

					for (ti = 0;
					     strcmp(rs->tags[ti].k, tag) != 0;
					     ti++)
						;
					used[ti] = 1;
					strfmt(call, sizeof(call), "(?&sat%zu)",
					    ti);
					sb_add(&out, call, strlen(call));
				} else if (rep != NULL && *rep != '\0') {
					sb_add(&out, rep, strlen(rep));
					if (strstr(rep, st) != NULL)
						again = 1;
				} else
					sb_add(&out, t, (size_t)(te - t));
			} else
				sb_add(&out, t, (size_t)(te - t));
			if (post)
				sb_add(&out, post, strlen(post));
			p = te;
		}
		free(pre_n);
		free(post_n);
		free(inter_n);
		free(re);
		re = out.s;
		if (out.over) {
			free(re);
			return NULL;
		}
		if (!again)
			break;
	}
	return re;
}

/* The pattern in subroutine mode, DEFINE groups in front. */
static char *
replace_tags_subr(const struct sa_ruleset *rs, const char *pattern)
{
	unsigned char *used = xcalloc(rs->ntags + 1, 1);
	unsigned char *done = xcalloc(rs->ntags + 1, 1);
	struct sbuf    def = { NULL, 0, 0, 0 };
	char	      *body, *v, name[40];
	size_t	       i;
	int	       more = 1;

	body = replace_tags(rs, pattern, used);
	if (body == NULL) {
		free(used);
		free(done);
		return NULL;
	}
	sb_add(&def, "(?(DEFINE)", 10);
	while (more) {
		more = 0;
		for (i = 0; i < rs->ntags; i++) {
			if (!used[i] || done[i])
				continue;
			done[i] = 1;
			more = 1;
			/* a value's own tags are calls too (no pre/post) */
			v = replace_tags(rs, rs->tags[i].v, used);
			strfmt(name, sizeof(name), "(?<sat%zu>", i);
			sb_add(&def, name, strlen(name));
			if (v != NULL)
				sb_add(&def, v, strlen(v));
			else
				def.over = 1;
			sb_add(&def, ")", 1);
			free(v);
		}
	}
	sb_add(&def, ")", 1);
	sb_add(&def, body, strlen(body));
	free(body);
	free(used);
	free(done);
	if (def.over) {
		free(def.s);
		return NULL;
	}
	return def.s;
}

/* --------------------------------------------------------------- finish */

static int
cmp_prio(const void *a, const void *b, void *arg)
{
	const struct sa_ruleset *rs = arg;
	const struct sa_rule	*x = rs->rules[*(const uint32_t *)a];
	const struct sa_rule	*y = rs->rules[*(const uint32_t *)b];

	if (x->priority != y->priority)
		return x->priority < y->priority ? -1 : 1;
	return *(const uint32_t *)a < *(const uint32_t *)b ? -1 : 1;
}

static void
finish(struct loader *l, size_t nstrict_files)
{
	struct sa_ruleset *rs = l->rs;
	struct sa_rule	  *bad;
	uint32_t	  *work;
	size_t		   i, nw, k;
	char		   why[512];
	int		   changed;

	(void)nstrict_files;
	/* ReplaceTags */
	for (i = 0; i < rs->nreplace; i++) {
		struct sa_rule *r = sa_rule_find(rs, rs->replace_rules[i]);
		char	       *n;

		/* once per rule, however often replace_rules names it */
		if (r == NULL || !r->defined || r->pattern == NULL ||
		    r->orig != NULL)
			continue;
		n = replace_tags(rs, r->pattern, NULL);
		if (n == NULL) {
			rerror(l, r, r->line & SA_LINE_STRICT,
			    "ReplaceTags: expansion too large");
			r->defined = 0;
			continue;
		}
		r->orig = r->pattern;
		r->pattern = n;
	}
	/* scores, regexes */
	for (i = 0; i < rs->nrules; i++) {
		struct sa_rule *r = rs->rules[i];
		int		strict = l->strict;

		if (!r->defined)
			continue;
		if (!r->scored) {
			double d = strncmp(r->name, "T_", 2) == 0 ? 0.01 : 1.0;

			if (r->tflags & SA_TF_NICE)
				d = -d;
			r->score[0] = r->score[1] = r->score[2] = r->score[3] =
			    d;
		}
		r->sc = r->score[rs->scoreset];
		r->sc_nb = r->score[rs->scoreset & 1];
		(void)strict;
		if (r->pattern != NULL) {
			int    code;
			size_t jitsize = 0;

			r->re = sa_regex_compile(
			    r->pattern, r->reopts, &code, why, sizeof(why));
			if (r->re == NULL &&
			    code == PCRE2_ERROR_PATTERN_TOO_LARGE &&
			    r->orig != NULL) {
				char *sp = replace_tags_subr(rs, r->orig);

				if (sp != NULL) {
					free(r->inline_pat);
					r->inline_pat = r->pattern;
					r->pattern = sp;
					r->re = sa_regex_compile(r->pattern,
					    r->reopts, &code, why, sizeof(why));
					if (r->re != NULL)
						rs->stats.regex_translated++;
				}
			}
			if (r->re == NULL) {
				rerror(l, r, r->line & SA_LINE_STRICT, why);
				r->defined = 0;
				continue;
			}
			r->jit = pcre2_pattern_info(r->re, PCRE2_INFO_JITSIZE,
				     &jitsize) == 0 &&
			    jitsize > 0;
		}
		if (r->evalname != NULL && !r->is_net) {
			if (sa_net_is_eval(r->evalname)) {
				r->is_net = 1;
				sa_net_add_eval(rs, r);
			} else if (r->ev == NULL || r->ev->fn == NULL) {
				rs->stats.evals_skipped++;
				r->ev = NULL;
			} else
				rs->stats.evals_implemented++;
		}
		if ((r->tflags & SA_TF_NET) && !r->is_net &&
		    r->evalname != NULL && r->ev == NULL) {
			/* a network test moat does not run itself */
			r->is_net = 1;
			rs->stats.evals_skipped--;
			sa_net_add_eval(rs, r);
		}
	}
	/* metas */
	for (i = 0; i < rs->nrules; i++) {
		struct sa_rule *r = rs->rules[i];

		if (!r->defined || r->type != SA_META)
			continue;
		if (sa_meta_compile(rs, r, why, sizeof(why)) < 0) {
			rerror(l, r, r->line & SA_LINE_STRICT, why);
			r->defined = 0;
			continue;
		}
		r->run = 1;
	}
	why[0] = '\0';
	if (sa_meta_order(rs, why, sizeof(why), &bad) > 0) {
		rerror(l, bad, bad->line & SA_LINE_STRICT, why);
		for (i = 0; i < rs->nrules; i++) {
			struct sa_rule *r = rs->rules[i];

			if (r->defined && r->type == SA_META && !r->run) {
				free(r->code);
				r->code = NULL;
				r->ncode = 0;
				r->defined = 0;
			}
		}
	}
	/* which rules run: scored, or "__", or needed by a running meta */
	work = xcalloc(rs->nrules ? rs->nrules : 1, sizeof(*work));
	nw = 0;
	for (i = 0; i < rs->nrules; i++) {
		struct sa_rule *r = rs->rules[i];
		int		usable = r->defined && !r->is_net &&
		    (r->type == SA_META
			    ? r->code != NULL
			    : (r->re != NULL || r->ev != NULL || r->exists));

		r->run = usable &&
		    (r->sc != 0 || r->sc_nb != 0 || (r->sub && !r->scored));
		if (r->defined && r->sc == 0 && r->sc_nb == 0 && !r->sub)
			rs->stats.zero_score++;
		if (r->run && r->type == SA_META)
			work[nw++] = (uint32_t)i;
	}
	while (nw > 0) {
		struct sa_rule *m = rs->rules[work[--nw]];

		for (k = 0; k < m->ncode; k++) {
			struct sa_rule *d;

			if (m->code[k].op != MOP_RULE)
				continue;
			d = rs->rules[m->code[k].arg];
			if (d->run || d->is_net || !d->defined)
				continue;
			if (d->type == SA_META
				? d->code == NULL
				: (d->re == NULL && d->ev == NULL &&
				      !d->exists))
				continue;
			d->run = 1;
			if (d->type == SA_META)
				work[nw++] = m->code[k].arg;
		}
	}
	free(work);
	/* run lists, stats */
	changed = 0;
	for (k = 0; k < SA_NTYPES; k++) {
		if (k == SA_META)
			continue;
		rs->order[k] =
		    xcalloc(rs->nrules ? rs->nrules : 1, sizeof(uint32_t));
		rs->norder[k] = 0;
	}
	rs->evals = xcalloc(rs->nrules ? rs->nrules : 1, sizeof(uint32_t));
	for (i = 0; i < rs->nrules; i++) {
		struct sa_rule *r = rs->rules[i];

		if (!r->defined)
			continue;
		rs->stats.rules[r->type]++;
		if (r->is_net)
			rs->stats.net_rules++;
		if (!r->run || r->type == SA_META)
			continue;
		if (r->ev != NULL)
			rs->evals[rs->nevals++] = (uint32_t)i;
		else
			rs->order[r->type][rs->norder[r->type]++] = (uint32_t)i;
		changed = 1;
	}
	(void)changed;
	for (k = 0; k < SA_NTYPES; k++)
		if (k != SA_META && rs->norder[k] > 1)
			qsort_r(rs->order[k], rs->norder[k], sizeof(uint32_t),
			    cmp_prio, rs);
	/* drop metas that do not run from the meta order */
	for (i = k = 0; i < rs->norder[SA_META]; i++)
		if (rs->rules[rs->order[SA_META][i]]->run)
			rs->order[SA_META][k++] = rs->order[SA_META][i];
	rs->norder[SA_META] = k;
	lists_index(rs);
	if (!l->no_prefilter)
		sa_prefilter_build(rs, l->cache_dir);
	/*
	 * Lazy: body and rawbody regexes outside the prefilter (the costly
	 * ones) whose only effect is through metas (never reported).
	 */
	rs->lazy = xcalloc(rs->nrules ? rs->nrules : 1, sizeof(uint32_t));
	for (k = SA_BODY; k <= SA_RAWBODY; k++)
		for (i = 0; i < rs->norder[k]; i++) {
			struct sa_rule *r = rs->rules[rs->order[k][i]];

			if (r->re != NULL && !r->pf &&
			    (r->sub || (r->sc == 0 && r->sc_nb == 0)) &&
			    !l->no_lazy) {
				r->lazy = 1;
				rs->lazy[rs->nlazy++] = rs->order[k][i];
			}
		}
	rs->stats.lazy = (unsigned)rs->nlazy;
}

static struct sa_ruleset *
ruleset_new(const struct sa_load_opts *opts)
{
	struct sa_ruleset *rs = xcalloc(1, sizeof(*rs));

	rs->scoreset = opts && opts->scoreset >= 0 && opts->scoreset <= 3
	    ? opts->scoreset
	    : 2;
	return rs;
}

static struct sa_ruleset *
done(struct loader *l)
{
	size_t i;

	finish(l, 0);
	for (i = 0; i < l->rs->nrules; i++)
		l->rs->rules[i]->line &= ~SA_LINE_STRICT;
	if (l->refused) {
		sa_ruleset_free(l->rs);
		return NULL;
	}
	return l->rs;
}

struct sa_ruleset *
sa_ruleset_load(const char *const *paths, size_t n,
    const struct sa_load_opts *opts, char *err, size_t errlen)
{
	struct loader l;
	size_t	      i;

	memset(&l, 0, sizeof(l));
	l.rs = ruleset_new(opts);
	l.no_prefilter = opts != NULL && opts->no_prefilter;
	l.cache_dir = opts != NULL ? opts->cache_dir : NULL;
	l.no_lazy = opts != NULL && opts->no_lazy;
	l.err = err;
	l.errlen = errlen;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	for (i = 0; i < n && !l.refused; i++) {
		l.strict = opts != NULL && i >= opts->strict_from;
		load_path(&l, paths[i]);
	}
	l.strict = 0;
	return done(&l);
}

struct sa_ruleset *
sa_ruleset_load_string(const char *text, size_t len, const char *name,
    const struct sa_load_opts *opts, int strict, char *err, size_t errlen)
{
	struct loader l;

	memset(&l, 0, sizeof(l));
	l.rs = ruleset_new(opts);
	l.no_prefilter = opts != NULL && opts->no_prefilter;
	l.cache_dir = opts != NULL ? opts->cache_dir : NULL;
	l.no_lazy = opts != NULL && opts->no_lazy;
	l.err = err;
	l.errlen = errlen;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	l.strict = strict;
	l.file = intern_file(l.rs, name ? name : "(string)");
	load_text(&l, text, len);
	l.strict = 0;
	return done(&l);
}

void
sa_ruleset_free(struct sa_ruleset *rs)
{
	size_t i, k;

	if (rs == NULL)
		return;
	for (i = 0; i < rs->nrules; i++)
		rule_free(rs->rules[i]);
	free(rs->rules);
	free(rs->hash);
	for (k = 0; k < SA_NTYPES; k++)
		free(rs->order[k]);
	free(rs->evals);
	free(rs->lazy);
	for (i = 0; i < rs->nlists; i++) {
		for (k = 0; k < rs->lists[i].n; k++)
			free(rs->lists[i].v[k]);
		free(rs->lists[i].v);
		free(rs->lists[i].plain);
		free(rs->lists[i].wild);
		free(rs->lists[i].name);
	}
	free(rs->lists);
	sa_net_free(rs);
	sa_prefilter_free(rs);
	for (i = 0; i < rs->nfiles; i++)
		free(rs->files[i]);
	free(rs->files);
#define FREEKV(t, n)                                                           \
	do {                                                                   \
		for (i = 0; i < (n); i++) {                                    \
			free((t)[i].k);                                        \
			free((t)[i].v);                                        \
		}                                                              \
		free(t);                                                       \
	} while (0)
	FREEKV(rs->tags, rs->ntags);
	FREEKV(rs->pre, rs->npre);
	FREEKV(rs->post, rs->npost);
	FREEKV(rs->inter, rs->ninter);
#undef FREEKV
	for (i = 0; i < rs->nreplace; i++)
		free(rs->replace_rules[i]);
	free(rs->replace_rules);
	free(rs->replace_start);
	free(rs->replace_end);
	for (i = 0; i < rs->nerrors; i++)
		free(rs->errors[i]);
	free(rs->errors);
	free(rs);
}

const char *const *
sa_ruleset_errors(const struct sa_ruleset *rs, size_t *n)
{
	*n = rs->nerrors;
	return (const char *const *)rs->errors;
}

const struct sa_stats *
sa_ruleset_stats(const struct sa_ruleset *rs)
{
	return &rs->stats;
}

int
sa_rule_info(const struct sa_ruleset *rs, const char *name,
    const char **describe, double *score)
{
	struct sa_rule *r = sa_rule_find(rs, name);

	if (r == NULL || !r->defined)
		return -1;
	if (describe != NULL)
		*describe = r->describe ? r->describe : "";
	if (score != NULL)
		*score = r->sc;
	return 0;
}

const char *
sa_rule_name(const struct sa_ruleset *rs, size_t idx)
{
	return idx < rs->nrules ? rs->rules[idx]->name : NULL;
}
