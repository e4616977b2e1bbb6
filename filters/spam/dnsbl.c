/*
 * dnsbl.c - DNS blocklist lookups (RFC 5782) for the spam filter; see
 * dnsbl.h for what is asked and how answers become rule names.
 *
 * Ownership and threading: struct dnsbl_defs is built on one thread and
 * read-only afterwards (its PCRE2 codes are only read; match data is made
 * per answer). A struct dnsbl_run and its queries live on the loop thread
 * that created it; resolver callbacks and the budget timer run there too.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <pcre2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dnsbl.h"
#include "dnsrr.h"
#include "log.h"
#include "loop.h"
#include "resolver.h"
#include "util.h"

#define QNAME_MAX 254 /* RFC 1035 §3.1: 253 octets and the NUL */

enum subtest_kind { ST_ANY = 0, ST_EQ, ST_MASK, ST_RE };

struct subtest {
	enum subtest_kind kind;
	char		 *eq;
	uint32_t	  mask;
	pcre2_code	 *re;
};

struct dnsbl_rule {
	char		 *symbol;
	enum dnsbl_source src;
	char		 *set;
	char		 *zone;
	int		  qtype;
	struct subtest	  st;
};

struct dnsbl_sub {
	char	      *symbol;
	char	      *set;
	struct subtest st;
};

struct dnsbl_defs {
	struct dnsbl_rule *rules;
	size_t		   nrules;
	struct dnsbl_sub  *subs;
	size_t		   nsubs;
	unsigned	   wants; /* 1 << source */
};

struct dnsbl_q {
	struct dnsbl_run *run;
	struct dns_query *q; /* NULL once answered or cancelled */
	char		  name[QNAME_MAX];
	int		  qtype;
	size_t		 *rules; /* indexes into defs->rules */
	size_t		  nrules;
	int		  answered;
};

struct dnsbl_run {
	struct loop		*loop;
	const struct dnsbl_defs *defs;
	unsigned		 budget_ms;
	size_t			 max_queries;
	struct dnsbl_q	       **qs;
	size_t			 nqs;
	size_t			 outstanding;
	size_t			 answered;
	struct dnsbl_hit	*hits;
	size_t			 nhits;
	struct event		*timer; /* the budget, then the callback */
	int			 expired;
	void (*cb)(void *);
	void *arg;
};

/* ------------------------------------------------------------ helpers */

static int
v4_private(const unsigned char *a)
{
	return a[0] == 0 || a[0] == 10 ||
	    (a[0] == 172 && (a[1] & 0xf0) == 16) ||
	    (a[0] == 192 && a[1] == 168) || (a[0] == 169 && a[1] == 254) ||
	    (a[0] == 100 && (a[1] & 0xc0) == 64) || a[0] >= 224;
}

int
dnsbl_ip_qname(const char *ip, const char *zone, char *out, size_t len)
{
	struct in_addr	     v4;
	struct in6_addr	     v6;
	const unsigned char *a;
	char		     buf[QNAME_MAX];
	size_t		     i, n = 0;
	int		     r;

	if (inet_pton(AF_INET, ip, &v4) == 1) {
		a = (const unsigned char *)&v4;
	} else if (inet_pton(AF_INET6, ip, &v6) == 1) {
		a = v6.s6_addr;
		if (IN6_IS_ADDR_V4MAPPED(&v6))
			a += 12;
		else {
			if (IN6_IS_ADDR_UNSPECIFIED(&v6) ||
			    IN6_IS_ADDR_LINKLOCAL(&v6) ||
			    (a[0] & 0xfe) == 0xfc || a[0] == 0xff)
				return -1;
			for (i = 16; i-- > 0;) {
				r = snprintf(buf + n, sizeof(buf) - n, "%x.%x.",
				    a[i] & 0xf, a[i] >> 4);
				n += (size_t)r;
			}
			goto zone;
		}
	} else
		return -1;
	if (v4_private(a))
		return -1;
	n = (size_t)snprintf(
	    buf, sizeof(buf), "%u.%u.%u.%u.", a[3], a[2], a[1], a[0]);
zone:
	r = snprintf(out, len, "%s%s", buf, zone);
	if (r < 0 || (size_t)r >= len || (size_t)r >= QNAME_MAX)
		return -1;
	return 0;
}

/* RFC 1123 §2.1 host name: labels of letters, digits, hyphens, 1-63. */
static int
hostname_ok(const char *s)
{
	size_t label = 0, n = 0;
	int    labels = 0;

	for (; *s != '\0'; s++, n++) {
		unsigned char c = (unsigned char)*s;

		if (c == '.') {
			if (label == 0 || s[-1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			(c >= '0' && c <= '9') || c == '-' || c == '_'))
			return 0;
		if (c == '-' && label == 0)
			return 0;
		if (label++ == 0)
			labels++;
		if (label > 63)
			return 0;
	}
	return n > 0 && n <= 253 && labels >= 2 && label > 0;
}

int
dnsbl_name_qname(const char *name, const char *zone, char *out, size_t len)
{
	size_t n = strlen(name), i;
	int    r;

	if (n > 0 && name[n - 1] == '.')
		n--;
	if (n == 0 || n >= QNAME_MAX)
		return -1;
	{
		char tmp[QNAME_MAX];

		memcpy(tmp, name, n);
		tmp[n] = '\0';
		if (!hostname_ok(tmp))
			return -1;
		r = snprintf(out, len, "%s.%s", tmp, zone);
	}
	if (r < 0 || (size_t)r >= len || (size_t)r >= QNAME_MAX)
		return -1;
	for (i = 0; out[i] != '\0'; i++)
		out[i] = (char)ascii_lower((unsigned char)out[i]);
	return 0;
}

static int
subtest_compile(struct subtest *st, const char *s, char *err, size_t errlen)
{
	struct in_addr a;
	int	       e;
	PCRE2_SIZE     off;
	const char    *p;

	memset(st, 0, sizeof(*st));
	if (s == NULL || *s == '\0')
		return 0;
	for (p = s; *p >= '0' && *p <= '9'; p++)
		;
	if (*p == '\0' && p - s <= 10) {
		st->kind = ST_MASK;
		st->mask = (uint32_t)strtoul(s, NULL, 10);
		return 0;
	}
	if (inet_pton(AF_INET, s, &a) == 1) {
		st->kind = ST_EQ;
		st->eq = xstrdup(s);
		return 0;
	}
	st->re = pcre2_compile(
	    (PCRE2_SPTR)s, PCRE2_ZERO_TERMINATED, 0, &e, &off, NULL);
	if (st->re == NULL) {
		PCRE2_UCHAR msg[120];

		pcre2_get_error_message(e, msg, sizeof(msg));
		strfmt(err, errlen, "subtest /%s/: %s at offset %zu", s,
		    (const char *)msg, (size_t)off);
		return -1;
	}
	st->kind = ST_RE;
	return 0;
}

static void
subtest_free(struct subtest *st)
{
	free(st->eq);
	if (st->re != NULL)
		pcre2_code_free(st->re);
}

/* text: the answer (an address for A, the string for TXT). */
static int
subtest_pass(const struct subtest *st, const char *text, int is_a)
{
	struct in_addr	  a;
	pcre2_match_data *md;
	int		  r;

	switch (st->kind) {
	case ST_ANY:
		return 1;
	case ST_EQ:
		return strcmp(st->eq, text) == 0;
	case ST_MASK:
		return is_a && inet_pton(AF_INET, text, &a) == 1 &&
		    (ntohl(a.s_addr) & st->mask) != 0;
	case ST_RE:
		if ((md = pcre2_match_data_create_from_pattern(st->re, NULL)) ==
		    NULL)
			return 0;
		r = pcre2_match(
		    st->re, (PCRE2_SPTR)text, strlen(text), 0, 0, md, NULL);
		pcre2_match_data_free(md);
		return r >= 0;
	}
	return 0;
}

/* --------------------------------------------------------------- defs */

struct dnsbl_defs *
dnsbl_defs_new(void)
{
	return xcalloc(1, sizeof(struct dnsbl_defs));
}

void
dnsbl_defs_free(struct dnsbl_defs *d)
{
	size_t i;

	if (d == NULL)
		return;
	for (i = 0; i < d->nrules; i++) {
		free(d->rules[i].symbol);
		free(d->rules[i].set);
		free(d->rules[i].zone);
		subtest_free(&d->rules[i].st);
	}
	for (i = 0; i < d->nsubs; i++) {
		free(d->subs[i].symbol);
		free(d->subs[i].set);
		subtest_free(&d->subs[i].st);
	}
	free(d->rules);
	free(d->subs);
	free(d);
}

int
dnsbl_add(struct dnsbl_defs *d, const char *symbol, enum dnsbl_source src,
    const char *set, const char *zone, int qtype, const char *subtest,
    char *err, size_t errlen)
{
	struct dnsbl_rule r;
	size_t		  zl;

	if (src >= DNSBL_SOURCE_COUNT ||
	    (qtype != DNS_T_A && qtype != DNS_T_TXT)) {
		strfmt(err, errlen, "%s: unsupported list type", symbol);
		return -1;
	}
	zl = strlen(zone);
	while (zl > 0 && zone[zl - 1] == '.')
		zl--;
	if (zl == 0 || zl > 200) {
		strfmt(err, errlen, "%s: bad zone \"%s\"", symbol, zone);
		return -1;
	}
	memset(&r, 0, sizeof(r));
	if (subtest_compile(&r.st, subtest, err, errlen) == -1)
		return -1;
	r.symbol = xstrdup(symbol);
	r.src = src;
	r.set = xstrdup(set != NULL ? set : symbol);
	r.zone = xstrndup(zone, zl);
	r.qtype = qtype;
	d->rules = xrealloc(d->rules, (d->nrules + 1) * sizeof(*d->rules));
	d->rules[d->nrules++] = r;
	d->wants |= 1u << src;
	return 0;
}

int
dnsbl_add_sub(struct dnsbl_defs *d, const char *symbol, const char *set,
    const char *subtest, char *err, size_t errlen)
{
	struct dnsbl_sub s;

	memset(&s, 0, sizeof(s));
	if (subtest_compile(&s.st, subtest, err, errlen) == -1)
		return -1;
	s.symbol = xstrdup(symbol);
	s.set = xstrdup(set);
	d->subs = xrealloc(d->subs, (d->nsubs + 1) * sizeof(*d->subs));
	d->subs[d->nsubs++] = s;
	return 0;
}

size_t
dnsbl_defs_count(const struct dnsbl_defs *d)
{
	return d == NULL ? 0 : d->nrules + d->nsubs;
}

int
dnsbl_defs_wants(const struct dnsbl_defs *d, enum dnsbl_source s)
{
	return d != NULL && (d->wants & (1u << s)) != 0;
}

/* ---------------------------------------------------------------- run */

struct dnsbl_run *
dnsbl_run_new(struct loop *l, const struct dnsbl_defs *d, unsigned budget_ms,
    size_t max_queries)
{
	struct dnsbl_run *r = xcalloc(1, sizeof(*r));

	r->loop = l;
	r->defs = d;
	r->budget_ms = budget_ms;
	r->max_queries = max_queries;
	return r;
}

static void run_expire(evutil_socket_t, short, void *);

static void
run_maybe_done(struct dnsbl_run *r)
{
	struct timeval tv = { 0, 0 };

	if (r->cb == NULL || (r->outstanding > 0 && !r->expired))
		return;
	/*
	 * From the loop, never from inside a caller's call: the budget
	 * timer, made due now (it cancels nothing when all answered).
	 */
	if (r->timer != NULL)
		evtimer_del(r->timer);
	else
		r->timer = evtimer_new(loop_base(r->loop), run_expire, r);
	evtimer_add(r->timer, &tv);
}

static void
add_hit(struct dnsbl_run *r, const char *symbol, const char *q, const char *a)
{
	size_t i;

	for (i = 0; i < r->nhits; i++)
		if (strcmp(r->hits[i].symbol, symbol) == 0)
			return;
	r->hits = xrealloc(r->hits, (r->nhits + 1) * sizeof(*r->hits));
	r->hits[r->nhits].symbol = symbol;
	snprintf(
	    r->hits[r->nhits].detail, sizeof(r->hits[0].detail), "%s=%s", q, a);
	r->nhits++;
}

/* 127.255.255.0/24 (Spamhaus: error codes), 127.0.0.1 from a URI list. */
static int
refused_code(const char *text, enum dnsbl_source src)
{
	return strncmp(text, "127.255.255.", 12) == 0 ||
	    (src == DNSBL_URI_DOMAIN && strcmp(text, "127.0.0.1") == 0);
}

static void
q_answer(void *arg, const struct dns_answer *a)
{
	struct dnsbl_q		*q = arg;
	struct dnsbl_run	*r = q->run;
	const struct dnsbl_defs *d = r->defs;
	size_t			 i, k, j;

	q->q = NULL;
	q->answered = 1;
	r->outstanding--;
	r->answered++;
	if (a->status != DNS_OK) {
		if (a->status != DNS_NXDOMAIN && a->status != DNS_NODATA)
			log_debug("event=dnsbl-error query=%s status=%s",
			    q->name, dns_status_name(a->status));
		run_maybe_done(r);
		return;
	}
	for (k = 0; k < a->n; k++) {
		const char *text = a->rr[k].text;
		int	    is_a = q->qtype == DNS_T_A;

		if (text == NULL)
			continue;
		if (is_a && strncmp(text, "127.", 4) != 0)
			continue; /* RFC 5782 §2.1: not an answer */
		for (i = 0; i < q->nrules; i++) {
			const struct dnsbl_rule *rule = &d->rules[q->rules[i]];

			if (is_a && refused_code(text, rule->src)) {
				log_info("event=dnsbl-refused zone=%s "
					 "answer=%s",
				    rule->zone, text);
				break;
			}
			if (subtest_pass(&rule->st, text, is_a))
				add_hit(r, rule->symbol, q->name, text);
			for (j = 0; j < d->nsubs; j++)
				if (strcmp(d->subs[j].set, rule->set) == 0 &&
				    subtest_pass(&d->subs[j].st, text, is_a))
					add_hit(r, d->subs[j].symbol, q->name,
					    text);
		}
	}
	run_maybe_done(r);
}

/* The budget ran out, or everything answered: cancel the rest, call. */
static void
run_expire(evutil_socket_t fd, short what, void *arg)
{
	struct dnsbl_run *r = arg;
	void (*cb)(void *) = r->cb;
	size_t i;

	(void)fd;
	(void)what;
	r->expired = 1;
	for (i = 0; i < r->nqs; i++)
		if (r->qs[i]->q != NULL) {
			resolver_cancel(r->qs[i]->q);
			r->qs[i]->q = NULL;
		}
	r->outstanding = 0;
	if (cb != NULL) {
		r->cb = NULL;
		cb(r->arg);
	}
}

static void
ask(struct dnsbl_run *r, size_t rule, const char *name)
{
	const struct dnsbl_rule *ru = &r->defs->rules[rule];
	struct dnsbl_q		*q;
	struct timeval		 tv;
	size_t			 i;

	for (i = 0; i < r->nqs; i++) {
		q = r->qs[i];
		if (q->qtype == ru->qtype && strcmp(q->name, name) == 0) {
			q->rules = xrealloc(
			    q->rules, (q->nrules + 1) * sizeof(*q->rules));
			q->rules[q->nrules++] = rule;
			return;
		}
	}
	if (r->nqs >= r->max_queries || r->expired)
		return;
	q = xcalloc(1, sizeof(*q));
	q->run = r;
	q->qtype = ru->qtype;
	snprintf(q->name, sizeof(q->name), "%s", name);
	q->rules = xmalloc(sizeof(*q->rules));
	q->rules[q->nrules++] = rule;
	r->qs = xrealloc(r->qs, (r->nqs + 1) * sizeof(*r->qs));
	r->qs[r->nqs++] = q;
	if (r->timer == NULL) { /* the budget starts with the first query */
		r->timer = evtimer_new(loop_base(r->loop), run_expire, r);
		tv = tv_msec(r->budget_ms);
		evtimer_add(r->timer, &tv);
	}
	q->q = resolver_query(r->loop, q->name, q->qtype, q_answer, q);
	if (q->q != NULL)
		r->outstanding++;
	else
		q->answered = 1; /* no resolver: as if no answer */
}

void
dnsbl_run_add(struct dnsbl_run *r, enum dnsbl_source src, const char *value)
{
	const struct dnsbl_defs *d = r->defs;
	char			 name[QNAME_MAX];
	size_t			 i;
	int			 rc;

	if (value == NULL || *value == '\0' || !dnsbl_defs_wants(d, src))
		return;
	for (i = 0; i < d->nrules; i++) {
		if (d->rules[i].src != src)
			continue;
		if (src == DNSBL_CLIENT_IP)
			rc = dnsbl_ip_qname(
			    value, d->rules[i].zone, name, sizeof(name));
		else
			rc = dnsbl_name_qname(
			    value, d->rules[i].zone, name, sizeof(name));
		if (rc == 0)
			ask(r, i, name);
	}
}

void
dnsbl_run_wait(struct dnsbl_run *r, void (*cb)(void *), void *arg)
{
	r->cb = cb;
	r->arg = arg;
	if (r->outstanding == 0 || r->expired)
		run_maybe_done(r);
	/* else: the last answer or the budget timer calls it */
}

const struct dnsbl_hit *
dnsbl_run_hits(const struct dnsbl_run *r, size_t *n)
{
	*n = r->nhits;
	return r->hits;
}

void
dnsbl_run_counts(const struct dnsbl_run *r, size_t *asked, size_t *answered,
    size_t *unanswered)
{
	size_t i, un = 0;

	for (i = 0; i < r->nqs; i++)
		if (!r->qs[i]->answered)
			un++;
	*asked = r->nqs;
	*answered = r->answered;
	*unanswered = un;
}

void
dnsbl_run_free(struct dnsbl_run *r)
{
	size_t i;

	if (r == NULL)
		return;
	for (i = 0; i < r->nqs; i++) {
		if (r->qs[i]->q != NULL)
			resolver_cancel(r->qs[i]->q);
		free(r->qs[i]->rules);
		free(r->qs[i]);
	}
	if (r->timer != NULL)
		event_free(r->timer);
	free(r->qs);
	free(r->hits);
	free(r);
}
