/*
 * dkim_filter.c - the built-in "dkim" filter: verification of every
 * DKIM-Signature (RFC 6376 §6) of inbound mail on libopendkim, with the
 * keys (§3.6.2) fetched through moat's resolver without blocking.
 *
 * The header fields go to libopendkim as they arrive (HEADER). At EOH,
 * dkim_eoh() wants the keys: our key-lookup callback answers from the
 * keys this message has been given, and for a key it does not have yet
 * returns DKIM_CBSTAT_TRYAGAIN; the filter then asks the resolver for the
 * keys of every signature it will verify, all at once, answers PENDING,
 * and calls dkim_eoh() again when the last answer is in (libopendkim's
 * re-entry point, LIBRARIES.md §3.3). The body (BODY) is hashed as it is
 * walked; dkim_eom() at EOM is CPU only.
 *
 * Keys are decoded once per thread: libopendkim's decoding of each key
 * (OpenSSL 3's d2i_PUBKEY_bio, the costliest step of a verification) is
 * answered from dkim_keycache.c's per-thread table of parsed keys, keyed
 * by the key's exact octets, while this filter calls dkim_eoh() and
 * dkim_eom() (key_cache entries per thread, default 1024; 0 = off). Every
 * signature is still verified on every message.
 *
 * Bounds: at most max_signatures (default 5) signatures are verified, the
 * rest ignored before any key is asked for (the prescreen callback); RSA
 * keys under min_key_bits (1024, RFC 8301 §3.2) fail; each key lookup is
 * bounded by dns_timeout.
 *
 * Results (RFC 8601 §2.7.1), one piece of evidence and one dkim= clause of
 * Authentication-Results per signature: pass; fail (the signature or body
 * hash does not match, expired, key too small); neutral (the signature
 * cannot be processed: syntax); temperror (the key lookup failed for now);
 * permerror (no key, a revoked or unusable key). Unsigned mail: DKIM_NONE.
 * A signature whose l= leaves part of the body unsigned also gets
 * DKIM_PARTIAL_BODY. ed25519-sha256 (RFC 8463) is verified as any other.
 *
 * Authenticated sessions (outbound mail) are not verified.
 *
 * Threading: the session's loop thread. libopendkim's library handle is
 * shared, set up at init and read-only afterwards; a DKIM handle is one
 * message's. A pending EOH owns its queries; cancel() cancels them.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <opendkim/dkim.h>

#include "dkim_keycache.h"
#include "filter_api.h"
#include "filter_opts.h"
#include "log.h"
#include "resolver.h"
#include "util.h"

#define DKIM_KEYS_MAX	  16   /* keys asked for per message */
#define DKIM_KEY_TEXT_MAX 8192 /* a 16384-bit RSA key is under 3 KB */

enum dkim_res {
	DR_PASS,
	DR_FAIL,
	DR_NEUTRAL,
	DR_TEMPERROR,
	DR_PERMERROR,
	DR_NONE
};

static const char *const res_names[] = { "pass", "fail", "neutral", "temperror",
	"permerror", "none" };
static const char *const res_symbols[] = { "DKIM_PASS", "DKIM_FAIL",
	"DKIM_NEUTRAL", "DKIM_TEMPERROR", "DKIM_PERMERROR", "DKIM_NONE" };
static const double	 default_scores[] = { -0.1, 1.0, 0.5, 0, 0.5, 0 };

struct dkim_conf {
	DKIM_LIB *lib;
	unsigned  max_signatures;
	double	  score[6];
	double	  partial_score;
};

struct dkim_key {
	char		name[256];
	enum dns_status status;
	char	       *text;
};

struct dkim_msg;

struct dkim_q {
	struct dkim_msg	 *m;
	size_t		  idx;
	struct dns_query *q;
};

/* One message being verified. */
struct dkim_msg {
	const struct dkim_conf *conf;
	DKIM		       *d;
	int			active; /* verifying (signatures seen) */
	int			nosig;
	DKIM_STAT		eoh;
	struct dkim_key		keys[DKIM_KEYS_MAX];
	size_t			nkeys;
	/* the pending EOH */
	struct filter_token token;
	struct dkim_q	   *q[DKIM_KEYS_MAX];
	size_t		    pending;
};

static const char *const dkim_filter_options[] = { "max_signatures",
	"min_key_bits", "key_cache", "score_pass", "score_fail",
	"score_neutral", "score_temperror", "score_permerror", "score_none",
	"score_partial_body", NULL };

/* ---------------------------------------------------------- keys */

static struct dkim_key *
key_find(struct dkim_msg *m, const char *name)
{
	size_t i;

	for (i = 0; i < m->nkeys; i++)
		if (ascii_strcasecmp(m->keys[i].name, name) == 0)
			return &m->keys[i];
	return NULL;
}

/* The key's name (§3.6.2.1): selector._domainkey.domain. */
static int
key_name(DKIM_SIGINFO *sig, char *out, size_t outlen)
{
	const char *s = (const char *)dkim_sig_getselector(sig);
	const char *d = (const char *)dkim_sig_getdomain(sig);
	int	    n;

	if (s == NULL || d == NULL || *s == '\0' || *d == '\0')
		return -1;
	n = snprintf(out, outlen, "%s._domainkey.%s", s, d);
	return n > 0 && (size_t)n < outlen ? 0 : -1;
}

/* Remember that the key is wanted (no status yet). */
static void
key_want(struct dkim_msg *m, const char *name)
{
	struct dkim_key *k;

	if (key_find(m, name) != NULL || m->nkeys >= DKIM_KEYS_MAX)
		return;
	k = &m->keys[m->nkeys++];
	memset(k, 0, sizeof(*k));
	snprintf(k->name, sizeof(k->name), "%s", name);
	k->status = (enum dns_status) - 1; /* asked, no answer */
}

/* libopendkim asks for a key (inside dkim_eoh). */
static DKIM_CBSTAT
key_lookup(DKIM *d, DKIM_SIGINFO *sig, u_char *buf, size_t buflen)
{
	struct dkim_msg *m = dkim_get_user_context(d);
	struct dkim_key *k;
	char		 name[256];

	if (m == NULL || key_name(sig, name, sizeof(name)) != 0)
		return DKIM_CBSTAT_NOTFOUND;
	if ((k = key_find(m, name)) == NULL || (int)k->status == -1) {
		key_want(m, name);
		return key_find(m, name) != NULL ? DKIM_CBSTAT_TRYAGAIN
						 : DKIM_CBSTAT_ERROR;
	}
	switch (k->status) {
	case DNS_OK:
		if (k->text == NULL || strlen(k->text) >= buflen)
			return DKIM_CBSTAT_ERROR;
		memcpy(buf, k->text, strlen(k->text) + 1);
		return DKIM_CBSTAT_CONTINUE;
	case DNS_NXDOMAIN:
	case DNS_NODATA:
		return DKIM_CBSTAT_NOTFOUND;
	default:
		return DKIM_CBSTAT_ERROR;
	}
}

/* Verify at most max_signatures; ignore the rest before any lookup. */
static DKIM_CBSTAT
prescreen(DKIM *d, DKIM_SIGINFO **sigs, int nsigs)
{
	struct dkim_msg *m = dkim_get_user_context(d);
	int		 i;

	for (i = 0; m != NULL && i < nsigs; i++)
		if ((unsigned)i >= m->conf->max_signatures)
			dkim_sig_ignore(sigs[i]);
	return DKIM_CBSTAT_CONTINUE;
}

/* ---------------------------------------------------------- configuration */

static int
dkim_init_filter(const struct filter_conf *fc, void **ctx)
{
	struct dkim_conf *c = xcalloc(1, sizeof(*c));
	double		  max = 5, bits = 1024, kcache = 1024;
	unsigned	  flags, minbits;
	char		  key[64];
	int		  bad = 0, i;

	bad |= filter_opt_num(
	    fc, "max_signatures", 1, 50, "a number from 1 to 50", &max);
	bad |= filter_opt_num(fc, "min_key_bits", 1024, 16384,
	    "a number from 1024 to 16384", &bits);
	bad |= filter_opt_num(
	    fc, "key_cache", 0, 100000, "a number from 0 to 100000", &kcache);
	for (i = 0; i < 6; i++) {
		c->score[i] = default_scores[i];
		snprintf(key, sizeof(key), "score_%s", res_names[i]);
		bad |= filter_opt_num(
		    fc, key, -1000, 1000, "a number (a score)", &c->score[i]);
	}
	c->partial_score = 1.0;
	bad |= filter_opt_num(fc, "score_partial_body", -1000, 1000,
	    "a number (a score)", &c->partial_score);
	if (bad) {
		free(c);
		return -1;
	}
	c->max_signatures = (unsigned)max;
	if ((c->lib = dkim_init(NULL, NULL)) == NULL) {
		filter_conf_error(fc, "libopendkim: dkim_init failed");
		free(c);
		return -1;
	}
	/* Keep handles of bad signatures, to report them. */
	flags = DKIM_LIBFLAGS_BADSIGHANDLES;
	minbits = (unsigned)bits;
	dkim_options(
	    c->lib, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags, sizeof(flags));
	dkim_options(c->lib, DKIM_OP_SETOPT, DKIM_OPTS_MINKEYBITS, &minbits,
	    sizeof(minbits));
	dkim_set_key_lookup(c->lib, key_lookup);
	dkim_set_prescreen(c->lib, prescreen);
	if (dkim_keycache_init((size_t)kcache) == -1 && kcache > 0)
		log_warn("event=dkim-key-cache state=off reason=\"cannot "
			 "interpose d2i_PUBKEY_bio\"");
	*ctx = c;
	return 0;
}

static void
dkim_fini_filter(void *ctx)
{
	struct dkim_conf *c = ctx;

	dkim_close(c->lib);
	free(c);
}

/* ---------------------------------------------------------- messages */

/* Stop asking for keys (the EOH waiting for them is abandoned). */
static void
cancel_queries(struct dkim_msg *m)
{
	size_t i;

	for (i = 0; i < DKIM_KEYS_MAX; i++)
		if (m->q[i] != NULL) {
			resolver_cancel(m->q[i]->q);
			free(m->q[i]);
			m->q[i] = NULL;
		}
	m->pending = 0;
}

static void
msg_free(struct dkim_msg *m)
{
	size_t i;

	if (m == NULL)
		return;
	cancel_queries(m);
	for (i = 0; i < m->nkeys; i++)
		free(m->keys[i].text);
	if (m->d != NULL)
		dkim_free(m->d);
	free(m);
}

static struct dkim_msg *
msg_get(const struct dkim_conf *c, struct filter_call *fc)
{
	struct dkim_msg *m = *fc->session_data;
	DKIM_STAT	 st;
	char		 id[32];

	if (m != NULL)
		return m;
	m = xcalloc(1, sizeof(*m));
	m->conf = c;
	snprintf(id, sizeof(id), "%016llx", (unsigned long long)fc->env->sid);
	m->d = dkim_verify(c->lib, (const u_char *)id, NULL, &st);
	if (m->d != NULL) {
		dkim_set_user_context(m->d, m);
		m->active = 1;
	}
	*fc->session_data = m;
	return m;
}

static void eoh_continue(struct dkim_msg *);

static void
key_answer(void *arg, const struct dns_answer *a)
{
	struct dkim_q	*q = arg;
	struct dkim_msg *m = q->m;
	struct dkim_key *k = &m->keys[q->idx];
	size_t		 i, len = 0;

	m->q[q->idx] = NULL;
	free(q);
	k->status = a->status;
	if (a->status == DNS_OK) {
		/* One TXT record is the key (RFC 6376 §3.6.2.2); with
		 * several, the first that looks like one. */
		for (i = 0; i < a->n; i++)
			if (a->rr[i].text != NULL &&
			    strlen(a->rr[i].text) == a->rr[i].textlen &&
			    a->rr[i].textlen <= DKIM_KEY_TEXT_MAX) {
				len = a->rr[i].textlen;
				k->text = xmalloc(len + 1);
				memcpy(k->text, a->rr[i].text, len + 1);
				break;
			}
		if (k->text == NULL)
			k->status = DNS_NODATA;
	}
	if (--m->pending == 0)
		eoh_continue(m);
}

/*
 * dkim_eoh() wants keys: ask for every wanted key not asked yet. Returns
 * the number of queries started.
 */
static size_t
ask_keys(struct dkim_msg *m, struct loop *loop)
{
	DKIM_SIGINFO **sigs;
	int	       nsigs, i;
	size_t	       k, started = 0;
	char	       name[256];

	/* every signature to be verified, not only the first (prefetch) */
	if (dkim_getsiglist(m->d, &sigs, &nsigs) == DKIM_STAT_OK)
		for (i = 0; i < nsigs; i++)
			if (!(dkim_sig_getflags(sigs[i]) &
				DKIM_SIGFLAG_IGNORE) &&
			    key_name(sigs[i], name, sizeof(name)) == 0)
				key_want(m, name);
	for (k = 0; k < m->nkeys; k++) {
		struct dkim_q *q;

		if ((int)m->keys[k].status != -1 || m->q[k] != NULL)
			continue;
		q = xcalloc(1, sizeof(*q));
		q->m = m;
		q->idx = k;
		m->q[k] = q;
		m->pending++;
		q->q = resolver_query(
		    loop, m->keys[k].name, DNS_T_TXT, key_answer, q);
		if (q->q == NULL) {
			m->q[k] = NULL;
			free(q);
			m->pending--;
			m->keys[k].status = DNS_TEMPFAIL;
			continue;
		}
		started++;
	}
	return started;
}

/* Run dkim_eoh() (again); 1 when it is done, 0 when keys are asked. */
static int
eoh_step(struct dkim_msg *m, struct loop *loop)
{
	int rounds;

	for (rounds = 0; rounds < DKIM_KEYS_MAX + 1; rounds++) {
		int armed = dkim_keycache_arm(1);

		m->eoh = dkim_eoh(m->d);
		dkim_keycache_arm(armed);
		if (m->eoh != DKIM_STAT_CBTRYAGAIN)
			break;
		if (ask_keys(m, loop) > 0)
			return 0;
		/* nothing new to ask (bounds): the wanted keys fail */
		for (size_t k = 0; k < m->nkeys; k++)
			if ((int)m->keys[k].status == -1)
				m->keys[k].status = DNS_ERROR;
	}
	if (m->eoh == DKIM_STAT_NOSIG)
		m->nosig = 1;
	/* other errors (a key that failed) are reported at EOM, per
	 * signature */
	return 1;
}

static void
eoh_continue(struct dkim_msg *m)
{
	if (eoh_step(m, m->token.loop))
		filter_complete(&m->token, FILTER_CONTINUE, NULL);
}

/* ---------------------------------------------------------- results */

static enum dkim_res
classify(struct dkim_msg *m, DKIM_SIGINFO *sig, const char **why)
{
	struct dkim_key *k;
	char		 name[256];

	*why = NULL;
	if (DKIM_SIG_CHECK(sig))
		return DR_PASS;
	if (dkim_sig_getbh(sig) == DKIM_SIGBH_MISMATCH)
		*why = "body hash mismatch";
	/* Our key lookup's own outcome, where the library has none. */
	if (key_name(sig, name, sizeof(name)) == 0 &&
	    (k = key_find(m, name)) != NULL && (int)k->status != -1 &&
	    k->status != DNS_OK && k->status != DNS_NXDOMAIN &&
	    k->status != DNS_NODATA) {
		*why = k->status == DNS_TIMEOUT ? "key lookup timed out"
						: "key lookup failed";
		return DR_TEMPERROR;
	}
	if (*why == NULL)
		*why = dkim_sig_geterrorstr(dkim_sig_geterror(sig));
	if (*why == NULL)
		*why = "not verified";
	switch (dkim_sig_geterror(sig)) {
	case DKIM_SIGERROR_KEYFAIL:
		return DR_TEMPERROR;
	case DKIM_SIGERROR_NOKEY:
	case DKIM_SIGERROR_KEYREVOKED:
	case DKIM_SIGERROR_KEYDECODE:
	case DKIM_SIGERROR_DNSSYNTAX:
	case DKIM_SIGERROR_MULTIREPLY:
	case DKIM_SIGERROR_KEYVERSION:
	case DKIM_SIGERROR_KEYUNKNOWNHASH:
	case DKIM_SIGERROR_KEYHASHMISMATCH:
	case DKIM_SIGERROR_NOTEMAILKEY:
	case DKIM_SIGERROR_KEYTYPEMISSING:
	case DKIM_SIGERROR_KEYTYPEUNKNOWN:
		return DR_PERMERROR;
	case DKIM_SIGERROR_OK: /* processed, not passed: bad body hash */
	case DKIM_SIGERROR_BADSIG:
	case DKIM_SIGERROR_EXPIRED:
	case DKIM_SIGERROR_FUTURE:
	case DKIM_SIGERROR_KEYTOOSMALL:
	case DKIM_SIGERROR_SUBDOMAIN:
	case DKIM_SIGERROR_TOOLARGE_L:
		return DR_FAIL;
	default:
		return DR_NEUTRAL; /* syntax (RFC 8601 §2.7.1) */
	}
}

/* The first 8 characters of b= (RFC 6008 header.b). */
static void
b_prefix(DKIM_SIGINFO *sig, char *out, size_t outlen)
{
	const char *b =
	    (const char *)dkim_sig_gettagvalue(sig, false, (u_char *)"b");
	size_t o = 0;

	for (; b != NULL && *b != '\0' && o + 1 < outlen && o < 8; b++)
		if (*b != ' ' && *b != '\t' && *b != '\r' && *b != '\n')
			out[o++] = *b;
	out[o] = '\0';
}

static void
report(struct dkim_msg *m, const struct filter_token *t)
{
	const struct dkim_conf *c = m->conf;
	DKIM_SIGINFO	      **sigs;
	int			nsigs, i, reported = 0;
	char			clause[400], b[16], why[80];

	if (m->nosig || m->d == NULL ||
	    dkim_getsiglist(m->d, &sigs, &nsigs) != DKIM_STAT_OK ||
	    nsigs == 0) {
		filter_evidence(
		    t, "DKIM_NONE", c->score[DR_NONE], "no signature");
		filter_auth_result(t, "dkim=none");
		return;
	}
	for (i = 0; i < nsigs; i++) {
		DKIM_SIGINFO *sig = sigs[i];
		const char   *d = (const char *)dkim_sig_getdomain(sig);
		const char   *s = (const char *)dkim_sig_getselector(sig);
		enum dkim_res r;
		const char   *reason;
		unsigned int  bits = 0;
		ssize_t	      msglen = -1, canonlen = -1, signlen = -1;

		if (dkim_sig_getflags(sig) & DKIM_SIGFLAG_IGNORE)
			continue;
		r = classify(m, sig, &reason);
		dkim_sig_getkeysize(sig, &bits);
		b_prefix(sig, b, sizeof(b));
		why[0] = '\0';
		if (r != DR_PASS)
			snprintf(why, sizeof(why), " (%s)", reason);
		filter_evidence(t, res_symbols[r], c->score[r],
		    "d=%s s=%s b=%s a=%s bits=%u%s", d ? d : "", s ? s : "", b,
		    dkim_sig_getalgorithm(sig)
			? (const char *)dkim_sig_getalgorithm(sig)
			: "?",
		    bits, why);
		snprintf(clause, sizeof(clause),
		    "dkim=%s%s header.d=%s header.s=%s header.b=%s",
		    res_names[r], why, d ? d : "", s ? s : "", b);
		filter_auth_result(t, clause);
		if (dkim_sig_getcanonlen(m->d, sig, &msglen, &canonlen,
			&signlen) == DKIM_STAT_OK &&
		    signlen >= 0 && msglen > signlen)
			filter_evidence(t, "DKIM_PARTIAL_BODY",
			    c->partial_score,
			    "d=%s l=%zd of %zd body octets signed", d ? d : "",
			    signlen, msglen);
		reported++;
	}
	if (reported == 0) {
		filter_evidence(
		    t, "DKIM_NONE", c->score[DR_NONE], "no signature verified");
		filter_auth_result(t, "dkim=none");
	}
}

/* ---------------------------------------------------------- the filter */

static enum filter_verdict
dkim_stage(void *ctx, struct filter_call *fc, struct filter_reply *reply)
{
	const struct dkim_conf	*c = ctx;
	const struct filter_env *env = fc->env;
	struct dkim_msg		*m;
	char			*line;
	size_t			 nl, vl;

	(void)reply;
	if (env->auth != NULL)
		return FILTER_CONTINUE; /* outbound */
	m = msg_get(c, fc);
	switch (fc->stage) {
	case FILTER_STAGE_HEADER:
		if (!m->active || env->hdr_name == NULL)
			break;
		nl = strlen(env->hdr_name);
		vl = env->hdr_value ? strlen(env->hdr_value) : 0;
		line = xmalloc(nl + vl + 2);
		memcpy(line, env->hdr_name, nl);
		line[nl] = ':';
		memcpy(line + nl + 1, env->hdr_value ? env->hdr_value : "", vl);
		line[nl + 1 + vl] = '\0';
		if (dkim_header(m->d, (u_char *)line, nl + 1 + vl) !=
		    DKIM_STAT_OK)
			m->active = 0;
		free(line);
		break;
	case FILTER_STAGE_EOH:
		if (!m->active)
			break;
		m->token = fc->token;
		if (eoh_step(m, fc->token.loop))
			break;
		fc->cookie = m;
		return FILTER_PENDING;
	case FILTER_STAGE_BODY:
		if (m->active && !m->nosig && env->bodylen > 0)
			dkim_body(m->d, (u_char *)env->body, env->bodylen);
		break;
	case FILTER_STAGE_EOM:
		if (m->active && !m->nosig) {
			int armed = dkim_keycache_arm(1);

			dkim_eom(m->d, NULL);
			dkim_keycache_arm(armed);
		}
		report(m, &fc->token);
		break;
	default:
		break;
	}
	return FILTER_CONTINUE;
}

/* An EOH that waited for keys is abandoned: stop asking. */
static void
dkim_cancel(void *ctx, void *cookie)
{
	struct dkim_msg *m = cookie;

	(void)ctx;
	cancel_queries(m);
	m->active = 0;
}

/* The transaction ended: the next message starts afresh. */
static void
dkim_reset(void *ctx, void **session_data)
{
	(void)ctx;
	msg_free(*session_data);
	*session_data = NULL;
}

const struct filter_ops dkimfilter_ops = {
	.abi = FILTER_ABI_VERSION,
	.name = "dkim",
	.stages = FILTER_STAGE_BIT(FILTER_STAGE_HEADER) |
	    FILTER_STAGE_BIT(FILTER_STAGE_EOH) |
	    FILTER_STAGE_BIT(FILTER_STAGE_BODY) |
	    FILTER_STAGE_BIT(FILTER_STAGE_EOM),
	.options = dkim_filter_options,
	.init = dkim_init_filter,
	.fini = dkim_fini_filter,
	.stage = dkim_stage,
	.cancel = dkim_cancel,
	.reset = dkim_reset,
	.close = dkim_reset,
};
