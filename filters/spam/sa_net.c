/*
 * sa_net.c - the DNS list definitions of a SpamAssassin ruleset, kept as
 * data for moat's DNSBL module: DNSEval's check_rbl* evals (client IP,
 * envelope and From domains), URIDNSBL's urirhssub/urirhsbl/uridnsbl/
 * uridnssub directives and AskDNS's askdns. moat never issues these
 * queries here; the module that does hands the rule names that fired
 * back to sa_eval() as external hits.
 *
 * Load-time only (single thread); the table is read-only afterwards.
 */
#include <stdlib.h>
#include <string.h>

#include "sa_int.h"
#include "util.h"

static const struct {
	const char     *name;
	enum sa_netkind kind;
} netevals[] = {
	{ "check_rbl", SA_NET_RBL },
	{ "check_rbl_txt", SA_NET_RBL_TXT },
	{ "check_rbl_sub", SA_NET_RBL_SUB },
	{ "check_rbl_results_for", SA_NET_RBL_SUB },
	{ "check_rbl_envfrom", SA_NET_RBL_ENVFROM },
	{ "check_rbl_from_host", SA_NET_RBL_FROM_HOST },
	{ "check_rbl_from_domain", SA_NET_RBL_FROM_DOMAIN },
	{ "check_rbl_headers", SA_NET_RBL_HEADER },
	{ "check_rbl_ns_from", SA_NET_RBL_HEADER },
	{ "check_rbl_rcvd", SA_NET_RBL_HEADER },
	{ "check_rbl_accreditor", SA_NET_RBL },
	{ "check_dns_sender", SA_NET_OTHER },
	{ "check_uridnsbl", SA_NET_OTHER },
	{ "check_hashbl_emails", SA_NET_OTHER },
	{ "check_hashbl_uris", SA_NET_OTHER },
	{ "check_hashbl_bodyre", SA_NET_OTHER },
	{ "check_hashbl_attachments", SA_NET_OTHER },
	{ "check_hashbl_tag", SA_NET_OTHER },
};

int
sa_net_is_eval(const char *evalname)
{
	size_t i;

	for (i = 0; i < nitems(netevals); i++)
		if (strcmp(netevals[i].name, evalname) == 0)
			return 1;
	return 0;
}

static struct sa_netrule *
net_new(struct sa_ruleset *rs)
{
	struct sa_netrule *n;

	if (rs->nnet == rs->netcap) {
		rs->netcap = rs->netcap ? rs->netcap * 2 : 32;
		rs->net = xrealloc(rs->net, rs->netcap * sizeof(*rs->net));
	}
	n = &rs->net[rs->nnet++];
	memset(n, 0, sizeof(*n));
	return n;
}

static char *
dup_or_null(const char *s)
{
	return s != NULL && *s != '\0' ? xstrdup(s) : NULL;
}

void
sa_net_add_eval(struct sa_ruleset *rs, struct sa_rule *r)
{
	struct sa_netrule *n;
	size_t		   i;

	for (i = 0; i < nitems(netevals); i++)
		if (strcmp(netevals[i].name, r->evalname) == 0)
			break;
	n = net_new(rs);
	n->rule = r->name;
	/* not in the table: a "tflags net" rule with another eval */
	n->kind = i < nitems(netevals) ? netevals[i].kind : SA_NET_OTHER;
	n->eval = xstrdup(r->evalname);
	if (n->kind == SA_NET_OTHER)
		return;
	n->set = dup_or_null(r->args.n > 0 ? r->args.s[0] : NULL);
	if (n->kind == SA_NET_RBL_SUB)
		n->subtest = dup_or_null(r->args.n > 1 ? r->args.s[1] : NULL);
	else {
		n->zone = dup_or_null(r->args.n > 1 ? r->args.s[1] : NULL);
		n->subtest = dup_or_null(r->args.n > 2 ? r->args.s[2] : NULL);
	}
	n->type = xstrdup(n->kind == SA_NET_RBL_TXT ? "TXT" : "A");
}

/* urirhssub NAME zone type sub / urirhsbl NAME zone type / askdns ... */
void
sa_net_add_directive(
    struct sa_ruleset *rs, const char *directive, const char *args)
{
	struct sa_netrule *n;
	struct sa_rule	  *r;
	char		  *copy = xstrdup(args), *w[5], *p = copy;
	int		   nw = 0;

	while (nw < 5 && p != NULL && *p != '\0') {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		w[nw++] = p;
		p += strcspn(p, " \t");
		if (*p != '\0')
			*p++ = '\0';
	}
	if (nw < 1 || (r = sa_rule_find(rs, w[0])) == NULL) {
		free(copy);
		return;
	}
	n = net_new(rs);
	n->rule = r->name;
	n->eval = xstrdup(directive);
	if (strcmp(directive, "urirhssub") == 0)
		n->kind = SA_NET_URIRHSSUB;
	else if (strcmp(directive, "urirhsbl") == 0)
		n->kind = SA_NET_URIRHSBL;
	else if (strcmp(directive, "uridnsbl") == 0)
		n->kind = SA_NET_URIDNSBL;
	else if (strcmp(directive, "uridnssub") == 0)
		n->kind = SA_NET_URIDNSSUB;
	else
		n->kind = SA_NET_ASKDNS;
	n->zone = dup_or_null(nw > 1 ? w[1] : NULL);
	n->type = dup_or_null(nw > 2 ? w[2] : NULL);
	n->subtest = dup_or_null(nw > 3 ? w[3] : NULL);
	free(copy);
}

void
sa_net_free(struct sa_ruleset *rs)
{
	size_t i;

	for (i = 0; i < rs->nnet; i++) {
		free((char *)rs->net[i].eval);
		free((char *)rs->net[i].set);
		free((char *)rs->net[i].zone);
		free((char *)rs->net[i].type);
		free((char *)rs->net[i].subtest);
	}
	free(rs->net);
	rs->net = NULL;
	rs->nnet = 0;
}

const struct sa_netrule *
sa_ruleset_netrules(const struct sa_ruleset *rs, size_t *n)
{
	*n = rs->nnet;
	return rs->net;
}
