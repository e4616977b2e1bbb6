/*
 * dmarc_eval.c - the pieces of one DMARC evaluation (RFC 7489); see
 * dmarc_eval.h for what each does and why.
 *
 * Globals: the PSL context, loaded by the first dmarc_eval_init() that
 * succeeds (a filter's init: start-up on the main thread, or a reload on
 * the reload thread while loop threads evaluate with an older runtime)
 * and kept, read-only, for the life of the process. It is published with
 * a release store and read with acquire loads; init_mtx keeps two loads
 * from racing.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpsl.h>
#include <opendmarc/dmarc.h>

#include "dmarc_eval.h"
#include "from_field.h"
#include "util.h"

static _Atomic(psl_ctx_t *) psl;
static pthread_mutex_t	    init_mtx = PTHREAD_MUTEX_INITIALIZER;

int
dmarc_eval_init(void)
{
	psl_ctx_t *p;

	pthread_mutex_lock(&init_mtx);
	if ((p = atomic_load_explicit(&psl, memory_order_acquire)) == NULL &&
	    (p = psl_latest(NULL)) != NULL)
		atomic_store_explicit(&psl, p, memory_order_release);
	pthread_mutex_unlock(&init_mtx);
	return p != NULL ? 0 : -1;
}

void
dmarc_eval_fini(void)
{
	/* Kept for the life of the process: a reload reuses them. */
}

const char *
dmarc_res_name(enum dmarc_res r)
{
	static const char *const n[] = { "none", "pass", "fail", "temperror",
		"permerror" };

	return (unsigned)r < nitems(n) ? n[r] : "?";
}

const char *
dmarc_pol_name(enum dmarc_pol p)
{
	static const char *const n[] = { "unset", "none", "quarantine",
		"reject" };

	return (unsigned)p < nitems(n) ? n[p] : "?";
}

/* ---------------------------------------------------------- From */

/* ---------------------------------------------------------- domains */

void
dmarc_org_domain(const char *domain, char *out, size_t outlen)
{
	const psl_ctx_t *p = atomic_load_explicit(&psl, memory_order_acquire);
	const char *r = p != NULL ? psl_registrable_domain(p, domain) : NULL;

	snprintf(out, outlen, "%s", r != NULL ? r : domain);
}

int
dmarc_aligned(const char *a, const char *b, int strict)
{
	char oa[DMARC_DOMAIN_MAX], ob[DMARC_DOMAIN_MAX];
	char la[DMARC_DOMAIN_MAX], lb[DMARC_DOMAIN_MAX];

	if (a == NULL || b == NULL || *a == '\0' || *b == '\0')
		return 0;
	domain_lower(la, sizeof(la), a);
	domain_lower(lb, sizeof(lb), b);
	if (strcmp(la, lb) == 0)
		return 1;
	if (strict)
		return 0;
	dmarc_org_domain(la, oa, sizeof(oa));
	dmarc_org_domain(lb, ob, sizeof(ob));
	return strcmp(oa, ob) == 0;
}

/* ---------------------------------------------------------- the record */

/* "v=DMARC1" then end, ';' or white space (§6.4: v must come first). */
static int
is_dmarc(const char *t)
{
	while (*t == ' ' || *t == '\t')
		t++;
	if (t[0] != 'v')
		return 0;
	t++;
	while (*t == ' ' || *t == '\t')
		t++;
	if (*t++ != '=')
		return 0;
	while (*t == ' ' || *t == '\t')
		t++;
	if (strncmp(t, "DMARC1", 6) != 0)
		return 0;
	t += 6;
	while (*t == ' ' || *t == '\t')
		t++;
	return *t == '\0' || *t == ';';
}

int
dmarc_record_pick(const char *const *txt, size_t n)
{
	size_t i;
	int    found = -1;

	for (i = 0; i < n; i++)
		if (txt[i] != NULL && is_dmarc(txt[i])) {
			if (found >= 0)
				return -2;
			found = (int)i;
		}
	return found;
}

static enum dmarc_pol
pol_of(int p)
{
	switch (p) {
	case DMARC_RECORD_P_NONE:
		return DMARC_POL_NONE;
	case DMARC_RECORD_P_QUARANTINE:
		return DMARC_POL_QUARANTINE;
	case DMARC_RECORD_P_REJECT:
		return DMARC_POL_REJECT;
	default:
		return DMARC_POL_UNSET;
	}
}

int
dmarc_record_parse(const char *domain, const char *txt, struct dmarc_record *r,
    const char **why)
{
	DMARC_POLICY_T	  *pctx;
	OPENDMARC_STATUS_T st;
	u_char		 **uris;
	int		   v, rc = -1;

	memset(r, 0, sizeof(*r));
	if (strlen(txt) >= DMARC_RECORD_MAX) {
		*why = "record too long";
		return -1;
	}
	if ((pctx = opendmarc_policy_connect_init((u_char *)"0.0.0.0", 0)) ==
	    NULL) {
		*why = "out of memory";
		return -1;
	}
	st =
	    opendmarc_policy_parse_dmarc(pctx, (u_char *)domain, (u_char *)txt);
	/* No buffer: with one, libopendmarc checks each URI's external
	 * destination with a blocking DNS query (§7.1). */
	uris = opendmarc_policy_fetch_rua(pctx, NULL, 0, 1);
	if (uris != NULL) {
		size_t i, o = 0;

		for (i = 0; uris[i] != NULL && o + 1 < sizeof(r->rua); i++)
			o += (size_t)snprintf(r->rua + o, sizeof(r->rua) - o,
			    "%s%s", i ? "," : "", (const char *)uris[i]);
	}
	switch (st) {
	case DMARC_PARSE_OKAY:
		break;
	case DMARC_PARSE_ERROR_NO_REQUIRED_P:
		/* §6.6.3: no valid p= but a valid rua=: as p=none */
		if (r->rua[0] != '\0') {
			r->p = DMARC_POL_NONE;
			r->pct = 100;
			rc = 0;
			goto out;
		}
		*why = "no p= tag";
		goto out;
	case DMARC_PARSE_ERROR_BAD_VERSION:
		*why = "bad v= tag";
		goto out;
	default:
		*why = "invalid tag value";
		goto out;
	}
	opendmarc_policy_fetch_p(pctx, &v);
	r->p = pol_of(v);
	opendmarc_policy_fetch_sp(pctx, &v);
	r->sp = pol_of(v);
	opendmarc_policy_fetch_pct(pctx, &v);
	r->pct = v < 0 || v > 100 ? 100 : v;
	opendmarc_policy_fetch_adkim(pctx, &v);
	r->adkim_strict = v == DMARC_RECORD_A_STRICT;
	opendmarc_policy_fetch_aspf(pctx, &v);
	r->aspf_strict = v == DMARC_RECORD_A_STRICT;
	rc = r->p != DMARC_POL_UNSET ? 0 : -1;
	if (rc == -1)
		*why = "no p= tag";
out:
	opendmarc_policy_connect_shutdown(pctx);
	return rc;
}

/* ---------------------------------------------------------- A-R clauses */

/* Next token of a clause: skips white space and (nested) comments. */
static const char *
ar_token(const char *p, char *tok, size_t len)
{
	size_t o = 0;
	int    depth;

	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == ';')
			p++;
		if (*p != '(')
			break;
		for (depth = 0; *p != '\0'; p++) {
			if (*p == '\\' && p[1] != '\0')
				p++;
			else if (*p == '(')
				depth++;
			else if (*p == ')' && --depth == 0) {
				p++;
				break;
			}
		}
	}
	while (
	    *p != '\0' && *p != ' ' && *p != '\t' && *p != '(' && *p != ';') {
		if (o + 1 < len)
			tok[o++] = *p;
		p++;
	}
	tok[o] = '\0';
	return o > 0 ? p : NULL;
}

/* The domain of "local@domain" or "domain". */
static void
domain_of(const char *v, char *out, size_t outlen)
{
	const char *at = strrchr(v, '@');

	domain_lower(out, outlen, at != NULL ? at + 1 : v);
}

void
dmarc_auth_read(const char *const *clauses, size_t n, struct dmarc_auth *a)
{
	char	    tok[300], method[16], result[16];
	const char *p, *eq;
	size_t	    i;

	memset(a, 0, sizeof(*a));
	a->spf = -1;
	for (i = 0; i < n; i++) {
		if ((p = ar_token(clauses[i], tok, sizeof(tok))) == NULL ||
		    (eq = strchr(tok, '=')) == NULL ||
		    (size_t)(eq - tok) >= sizeof(method))
			continue;
		snprintf(method, sizeof(method), "%.*s", (int)(eq - tok), tok);
		domain_lower(result, sizeof(result), eq + 1);
		if (strcmp(method, "spf") == 0) {
			/* the first spf= is the transaction's MAIL FROM one */
			if (a->spf != -1)
				continue;
			a->spf = strcmp(result, "pass") == 0;
			snprintf(
			    a->spf_result, sizeof(a->spf_result), "%s", result);
			while ((p = ar_token(p, tok, sizeof(tok))) != NULL) {
				if (strncmp(tok, "smtp.mailfrom=", 14) == 0)
					domain_of(tok + 14, a->spf_domain,
					    sizeof(a->spf_domain));
				else if (strncmp(tok, "smtp.helo=", 10) == 0) {
					domain_of(tok + 10, a->spf_domain,
					    sizeof(a->spf_domain));
					a->spf_helo = 1;
				}
			}
		} else if (strcmp(method, "dkim") == 0 &&
		    a->ndkim < DMARC_DKIM_MAX) {
			size_t k = a->ndkim++;

			a->dkim[k].pass = strcmp(result, "pass") == 0;
			snprintf(a->dkim[k].result, sizeof(a->dkim[k].result),
			    "%s", result);
			while ((p = ar_token(p, tok, sizeof(tok))) != NULL) {
				if (strncmp(tok, "header.d=", 9) == 0)
					domain_lower(a->dkim[k].domain,
					    sizeof(a->dkim[k].domain), tok + 9);
				else if (strncmp(tok, "header.s=", 9) == 0)
					snprintf(a->dkim[k].selector,
					    sizeof(a->dkim[k].selector),
					    "%.63s", tok + 9);
			}
		}
	}
}

/* ---------------------------------------------------------- evaluation */

void
dmarc_evaluate(const char *from, const struct dmarc_record *rec, int at_org,
    const struct dmarc_auth *a, unsigned sample, struct dmarc_outcome *o)
{
	size_t i;

	memset(o, 0, sizeof(*o));
	if (rec == NULL) {
		o->res = DMARC_RES_NONE;
		return;
	}
	/* §4.2: any aligned pass of either mechanism */
	o->spf_aligned =
	    a->spf == 1 && dmarc_aligned(a->spf_domain, from, rec->aspf_strict);
	for (i = 0; i < a->ndkim && !o->dkim_aligned; i++)
		if (a->dkim[i].pass &&
		    dmarc_aligned(a->dkim[i].domain, from, rec->adkim_strict)) {
			o->dkim_aligned = 1;
			o->dkim_domain = a->dkim[i].domain;
		}
	o->policy = at_org && rec->sp != DMARC_POL_UNSET ? rec->sp : rec->p;
	if (o->spf_aligned || o->dkim_aligned) {
		o->res = DMARC_RES_PASS;
		o->disposition = DMARC_POL_NONE;
		return;
	}
	o->res = DMARC_RES_FAIL;
	o->disposition = o->policy;
	/* §6.6.4: a message outside the pct sample gets the next milder
	 * policy (reject -> quarantine -> none) */
	if (sample >= (unsigned)rec->pct) {
		if (o->disposition == DMARC_POL_REJECT)
			o->disposition = DMARC_POL_QUARANTINE;
		else if (o->disposition == DMARC_POL_QUARANTINE)
			o->disposition = DMARC_POL_NONE;
	}
}
