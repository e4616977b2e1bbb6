/*
 * sa_engine.c - runs a loaded SpamAssassin-format ruleset over one
 * message, giving each rule type the text SpamAssassin 4.0 gives it
 * (Mail::SpamAssassin::Message, PerMsgStatus, Plugin::Check):
 *   header   the named header's instances, decoded and unfolded (":raw":
 *            as received), each ending in "\n", joined; "ALL" every
 *            field as "Name: value\n"; ToCc, MESSAGEID, EnvelopeFrom,
 *            X-Spam-Relays-*; ":addr" ":name" ":first" ":last"; an absent
 *            header is "" unless [if-unset: ...] says otherwise
 *   mimeheader  each MIME part's header of that name
 *   body     the decoded Subject, then the rendered text parts with
 *            whitespace runs collapsed and blank lines as paragraph ends,
 *            as lines of at most 2048 bytes (each regex line by line)
 *   rawbody  the decoded text parts, tags kept, in 2-4 KiB chunks
 *   full     the message as received
 *   uri      each URI found, and "http://" + it when it had no scheme
 * then the eval rules, the caller's external hits, and the metas in
 * dependency order. "tflags multiple" counts every match (up to maxhits).
 *
 * Threading: the ruleset is only read; all per-message state is in the
 * caller's scratch. Bounded: PCRE2 match and JIT stack limits make a
 * pathological regex fail instead of running away; the texts are bounded
 * by the view.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sa_int.h"
#include "sa_received.h"
#include "sa_scratch.h"
#include "util.h"

#define SA_LINE_MAX    2048 /* SpamAssassin's MAX_BODY_LINE_LENGTH */
#define SA_MATCH_LIMIT 200000
#define SA_JIT_STACK   (512 * 1024)
#define SA_HCACHE      512 /* header values cached per message */

/* ------------------------------------------------------------- arena */

static void *
arena_alloc(struct sa_scratch *sc, size_t n)
{
	struct sa_block *b = sc->blocks;
	void		*p;

	n = (n + 7) & ~(size_t)7;
	if (b == NULL || b->used + n > b->size) {
		size_t sz = n > 65536 ? n : 65536;

		b = xmalloc(sizeof(*b) + sz);
		b->size = sz;
		b->used = 0;
		b->next = sc->blocks;
		sc->blocks = b;
	}
	p = b->data + b->used;
	b->used += n;
	return p;
}

void *
sa_scratch_alloc(struct sa_scratch *sc, size_t n)
{
	return arena_alloc(sc, n);
}

static void
arena_reset(struct sa_scratch *sc)
{
	struct sa_block *b, *next;

	/* keep the newest block, drop the rest */
	for (b = sc->blocks; b != NULL; b = next) {
		next = b->next;
		if (b != sc->blocks)
			free(b);
	}
	if (sc->blocks != NULL) {
		sc->blocks->next = NULL;
		sc->blocks->used = 0;
	}
}

void
sa_buf_add(struct sa_buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->s = xrealloc(b->s, b->cap);
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static void
span_add(struct sa_spans *sp, size_t off, size_t len)
{
	if (sp->n == sp->cap) {
		sp->cap = sp->cap ? sp->cap * 2 : 64;
		sp->v = xrealloc(sp->v, sp->cap * sizeof(*sp->v));
	}
	sp->v[sp->n].off = off;
	sp->v[sp->n].len = len;
	sp->n++;
}

/* ----------------------------------------------------------- scratch */

static uint64_t
now_usec_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void
sa_scratch_set_budget(struct sa_scratch *sc, unsigned long usec)
{
	sc->budget = usec;
}

void
sa_scratch_profile(struct sa_scratch *sc, int on)
{
	free(sc->prof);
	sc->prof = on ? xcalloc(1, sizeof(*sc->prof)) : NULL;
	sc->nprof = on ? 1 : 0;
}

const uint64_t *
sa_scratch_profile_ns(const struct sa_scratch *sc, size_t *n)
{
	*n = sc->nprof;
	return sc->prof;
}

struct sa_scratch *
sa_scratch_new(void)
{
	struct sa_scratch *sc = xcalloc(1, sizeof(*sc));

	sc->md = pcre2_match_data_create(32, NULL);
	sc->mc = pcre2_match_context_create(NULL);
	sc->js = pcre2_jit_stack_create(32 * 1024, SA_JIT_STACK, NULL);
	if (sc->md == NULL || sc->mc == NULL)
		fatal("pcre2: out of memory");
	pcre2_set_match_limit(sc->mc, SA_MATCH_LIMIT);
	pcre2_set_depth_limit(sc->mc, 10000);
	if (sc->js != NULL)
		pcre2_jit_stack_assign(sc->mc, NULL, sc->js);
	sc->hcache = xcalloc(SA_HCACHE, sizeof(*sc->hcache));
	sc->budget = SA_EVAL_BUDGET_USEC;
	return sc;
}

void
sa_scratch_free(struct sa_scratch *sc)
{
	struct sa_block *b, *next;

	if (sc == NULL)
		return;
	pcre2_match_data_free(sc->md);
	pcre2_match_context_free(sc->mc);
	if (sc->js != NULL)
		pcre2_jit_stack_free(sc->js);
	for (b = sc->blocks; b != NULL; b = next) {
		next = b->next;
		free(b);
	}
	free(sc->values);
	free(sc->hits);
	free(sc->body.s);
	free(sc->bodyl.v);
	free(sc->raw.s);
	free(sc->rawl.v);
	free(sc->tmp.s);
	sa_html_free(&sc->html);
	free(sc->hcache);
	free(sc->prof);
	free(sc->relays);
	free(sc->cand);
	free(sc->cand_first);
	free(sc->cand_last);
	free(sc->lo);
	free(sc->hi);
	free(sc->rstack);
	sa_prefilter_scratch_free(sc);
	free(sc);
}

/* ----------------------------------------------------------- matching */

/* Count matches of r in s[0..n) (1 at most unless "multiple"). */
static unsigned
match_count(struct sa_ctx *c, const struct sa_rule *r, const char *s, size_t n,
    unsigned want)
{
	PCRE2_SIZE *ov;
	size_t	    off = 0;
	unsigned    hits = 0;
	int	    rc;

	while (hits < want && off <= n) {
		/* the JIT's own entry skips pcre2_match()'s checks */
		rc = r->jit ? pcre2_jit_match(r->re, (PCRE2_SPTR)s, n, off, 0,
				  c->md, c->sc->mc)
			    : pcre2_match(r->re, (PCRE2_SPTR)s, n, off, 0,
				  c->md, c->sc->mc);
		if (rc < 0)
			break;
		hits++;
		ov = pcre2_get_ovector_pointer(c->md);
		off = ov[1] > ov[0] ? ov[1] : ov[0] + 1;
	}
	return hits;
}

static unsigned
rule_want(const struct sa_rule *r)
{
	if (!(r->tflags & SA_TF_MULTIPLE))
		return 1;
	return r->maxhits ? r->maxhits : SA_MAXHITS_CAP;
}

/* ------------------------------------------------------------ headers */

static void
tmp_reset(struct sa_scratch *sc)
{
	sc->tmp.len = 0;
	if (sc->tmp.s != NULL)
		sc->tmp.s[0] = '\0';
}

/* Add one header value (+ "\n") to tmp. */
static void
add_value(struct sa_scratch *sc, const char *v)
{
	size_t n = strlen(v);

	sa_buf_add(&sc->tmp, v, n);
	if (n == 0 || v[n - 1] != '\n')
		sa_buf_add(&sc->tmp, "\n", 1);
}

/* a raw value whose decoding only unfolds: ASCII, no encoded words */
static int
plain_raw(const char *v)
{
	for (; *v != '\0'; v++)
		if ((unsigned char)*v >= 0x80 || (v[0] == '=' && v[1] == '?'))
			return 0;
	return 1;
}

/*
 * One header value as SpamAssassin presents it (Message::Node::header):
 * each fold (line end and the whitespace after it) one space; decoded
 * values also trimmed at both ends. moat's decoded value keeps a fold's
 * whitespace, so a folded plain value is rebuilt from the raw one.
 */
static void
add_sa_value(struct sa_scratch *sc, const struct mv_header *h, int raw)
{
	const char *v = raw ? h->raw : h->decoded, *p, *e;

	if (!raw && strchr(h->raw, '\n') != NULL && plain_raw(h->raw))
		v = h->raw;
	else if (v == h->decoded && strchr(h->raw, '\n') == NULL) {
		/* nothing folded: only the trim */
		p = v;
		e = v + strlen(v);
		while (p < e && isspace((unsigned char)*p))
			p++;
		while (e > p && isspace((unsigned char)e[-1]))
			e--;
		sa_buf_add(&sc->tmp, p, (size_t)(e - p));
		sa_buf_add(&sc->tmp, "\n", 1);
		return;
	}
	p = v;
	if (!raw)
		while (isspace((unsigned char)*p))
			p++;
	e = p + strlen(p);
	if (!raw)
		while (e > p && isspace((unsigned char)e[-1]))
			e--;
	while (p < e) {
		const char *q = p;

		while (q < e && *q != '\r' && *q != '\n')
			q++;
		sa_buf_add(&sc->tmp, p, (size_t)(q - p));
		if (q == e)
			break;
		/* \r?\n\s+ -> one space; a bare line end is dropped */
		p = q;
		while (p < e && (*p == '\r' || *p == '\n'))
			p++;
		if (p < e && isspace((unsigned char)*p)) {
			while (p < e && isspace((unsigned char)*p))
				p++;
			sa_buf_add(&sc->tmp, " ", 1);
		}
	}
	sa_buf_add(&sc->tmp, "\n", 1);
}

/* the SpamAssassin presentation of one decoded header value, in the
   message's arena */
const char *
sa_header_value(struct sa_ctx *c, const struct mv_header *h)
{
	struct sa_scratch *sc = c->sc;
	char		  *v;

	tmp_reset(sc);
	add_sa_value(sc, h, 0);
	sc->tmp.s[--sc->tmp.len] = '\0'; /* the "\n" */
	v = arena_alloc(sc, sc->tmp.len + 1);
	memcpy(v, sc->tmp.s, sc->tmp.len + 1);
	return v;
}

/*
 * Addresses (or display names) of an address-list header value, one per
 * line. A small RFC 5322 reader: comma-separated mailboxes, groups,
 * quoted strings, comments, angle addresses.
 */
static void
add_addrs(struct sa_scratch *sc, const char *v, int names)
{
	const char *p = v;

	while (*p != '\0') {
		const char *s = p, *lt = NULL, *gt = NULL, *e;
		int	    q = 0, depth = 0;

		/* one mailbox up to a comma outside quotes/comments/<> */
		for (e = p; *e != '\0'; e++) {
			if (*e == '\\' && e[1] != '\0') {
				e++;
				continue;
			}
			if (q) {
				q = *e != '"';
				continue;
			}
			if (*e == '"')
				q = 1;
			else if (*e == '(')
				depth++;
			else if (*e == ')' && depth > 0)
				depth--;
			else if (depth == 0 && *e == '<' && lt == NULL)
				lt = e;
			else if (depth == 0 && *e == '>' && lt != NULL &&
			    gt == NULL)
				gt = e;
			else if (depth == 0 && (*e == ',' || *e == ';') &&
			    (lt == NULL || gt != NULL))
				break;
			else if (depth == 0 && *e == ':' && lt == NULL)
				s = e + 1; /* group name */
		}
		p = *e != '\0' ? e + 1 : e;
		if (names) {
			const char *a = s, *b = lt ? lt : e;
			char	   *out = arena_alloc(sc, (size_t)(b - a) + 1);
			size_t	    k = 0;

			if (lt == NULL) {
				/* "addr (Name)": the comment is the name */
				const char *o = memchr(s, '(', (size_t)(e - s));
				const char *cl =
				    o ? memchr(o, ')', (size_t)(e - o)) : NULL;

				if (o == NULL || cl == NULL)
					continue;
				a = o + 1;
				b = cl;
			}
			for (; a < b; a++)
				if (*a != '"' && *a != '\\' && *a != '\r' &&
				    *a != '\n' &&
				    !(k == 0 && isspace((unsigned char)*a)))
					out[k++] = *a;
			while (k > 0 && isspace((unsigned char)out[k - 1]))
				k--;
			if (k == 0)
				continue;
			if (sc->tmp.len > 0)
				sa_buf_add(&sc->tmp, "\n", 1);
			sa_buf_add(&sc->tmp, out, k);
		} else {
			const char *a, *b;

			if (lt != NULL && gt != NULL) {
				a = lt + 1;
				b = gt;
			} else {
				a = s;
				b = e;
				/* drop a trailing comment */
				const char *o = memchr(a, '(', (size_t)(b - a));
				if (o != NULL)
					b = o;
			}
			while (a < b && isspace((unsigned char)*a))
				a++;
			while (b > a && isspace((unsigned char)b[-1]))
				b--;
			if (b == a || memchr(a, '@', (size_t)(b - a)) == NULL)
				if (b == a)
					continue;
			if (sc->tmp.len > 0)
				sa_buf_add(&sc->tmp, "\n", 1);
			sa_buf_add(&sc->tmp, a, (size_t)(b - a));
		}
	}
}

static int
hname_eq(const char *a, const char *b)
{
	return ascii_strcasecmp(a, b) == 0;
}

/*
 * The relay trail: the session's client (unless a trusted loopback
 * client: a local injection or `moat scan`, which SpamAssassin would not
 * see), then the Received fields newest first, then the originating-IP
 * headers (originating_ip_headers of the ruleset).
 */
const struct sa_relays *
sa_relays(struct sa_ctx *c)
{
	static const char *const deforig[] = { "X-Yahoo-Post-IP",
		"X-Originating-IP", "X-Apparently-From", "X-SenderIP",
		"X-AOL-IP" };
	struct sa_scratch	*sc = c->sc;
	const struct msgview	*mv = c->mv;
	const struct sa_facts	*f = c->facts;
	const char		*fields[SA_RELAYS_MAX + 8];
	size_t			 lens[SA_RELAYS_MAX + 8], nf = 0, i, j, no;
	char			 orig[8][128];
	const char *const	*oh;
	struct sa_relay		 sess, *sp = NULL;
	struct sa_trust		 t;

	if (sc->relays != NULL && sc->relays_gen == sc->gen)
		return sc->relays;
	if (sc->relays == NULL)
		sc->relays = xcalloc(1, sizeof(*sc->relays));
	for (i = 0; i < mv->nheaders && nf < SA_RELAYS_MAX; i++)
		if (ascii_strcasecmp(mv->headers[i].name, "Received") == 0) {
			fields[nf] = mv->headers[i].raw;
			lens[nf++] = strlen(mv->headers[i].raw);
		}
	oh = sa_ruleset_list(c->rs, "originating_ip_headers", &no);
	if (oh == NULL) {
		oh = deforig;
		no = nitems(deforig);
	}
	for (j = 0; j < no && j < nitems(orig); j++)
		for (i = 0; i < mv->nheaders; i++)
			if (ascii_strcasecmp(mv->headers[i].name, oh[j]) == 0) {
				const char *v = mv->headers[i].raw;
				size_t	    n = sa_originating_line(
					 v, strlen(v), orig[j], sizeof(orig[j]));

				if (n > 0) {
					fields[nf] = orig[j];
					lens[nf++] = n;
				}
				break;
			}
	if (f != NULL && f->client_ip != NULL && f->client_ip[0] != '\0' &&
	    !(f->client_trusted && sa_ip_private(f->client_ip) &&
		(strncmp(f->client_ip, "127.", 4) == 0 ||
		    strcmp(f->client_ip, "::1") == 0))) {
		memset(&sess, 0, sizeof(sess));
		strfmt(sess.ip, sizeof(sess.ip), "%s", f->client_ip);
		strfmt(sess.rdns, sizeof(sess.rdns), "%s",
		    f->client_rdns ? f->client_rdns : "");
		strfmt(
		    sess.helo, sizeof(sess.helo), "%s", f->helo ? f->helo : "");
		strfmt(sess.envfrom, sizeof(sess.envfrom), "%s",
		    f->mail_from ? f->mail_from : "");
		strfmt(sess.auth, sizeof(sess.auth), "%s",
		    f->authenticated ? "ESMTPA" : "");
		sess.no_reverse_dns = sess.rdns[0] == '\0';
		sp = &sess;
	}
	memset(&t, 0, sizeof(t));
	if (f != NULL) {
		t.nets = f->trusted_nets;
		t.nnets = f->ntrusted_nets;
		t.configured = f->trusted_configured;
	}
	sa_relays_build(sc->relays, sp,
	    sp != NULL && (f->client_trusted || f->authenticated), fields, lens,
	    nf, &t);
	sc->relays_gen = sc->gen;
	return sc->relays;
}

/* X-Spam-Relays-* : relays [from, to) joined as SpamAssassin does */
static void
add_relays(struct sa_ctx *c, int trusted, int internal)
{
	const struct sa_relays *rs = sa_relays(c);
	size_t			i, from, to;
	char			line[2048];

	if (internal) {
		from = trusted ? 0 : rs->ninternal;
		to = trusted ? rs->ninternal : rs->n;
	} else {
		from = trusted ? 0 : rs->ntrusted;
		to = trusted ? rs->ntrusted : rs->n;
	}
	for (i = from; i < to; i++) {
		size_t n = sa_relays_text(rs, i, i + 1, line, sizeof(line));

		if (i > from)
			sa_buf_add(&c->sc->tmp, " ", 1);
		sa_buf_add(&c->sc->tmp, line, n);
	}
	if (to > from)
		sa_buf_add(&c->sc->tmp, "\n", 1);
}

/*
 * The value a header rule sees, or NULL when the header is absent.
 * Cached per message by (name, modifiers).
 */
const char *
sa_get_header(struct sa_ctx *c, const char *name, unsigned mods, size_t *len)
{
	struct sa_scratch    *sc = c->sc;
	const struct msgview *mv = c->mv;
	struct sa_hcache     *e;
	uint32_t	      h;
	size_t		      i, k, first, last, found = 0;
	int		      raw = (mods & SA_HM_RAW) != 0;
	char		     *v;

	h = fnv1a(FNV1A_INIT, &mods, sizeof(mods));
	for (i = 0; name[i] != '\0'; i++) {
		unsigned char ch =
		    (unsigned char)ascii_lower((unsigned char)name[i]);
		h = fnv1a(h, &ch, 1);
	}
	for (k = 0; k < SA_HCACHE; k++) {
		e = &sc->hcache[(h + k) & (SA_HCACHE - 1)];
		if (e->gen != sc->gen)
			break;
		/* exact: "MESSAGEID" and "ALL" are case-sensitive */
		if (e->hash == h && e->mods == mods &&
		    strcmp(e->name, name) == 0) {
			*len = e->len;
			return e->value;
		}
	}
	if (k == SA_HCACHE)
		e = NULL;
	tmp_reset(sc);
	if (strcmp(name, "ALL") == 0) {
		for (i = 0; i < mv->nheaders; i++) {
			sa_buf_add(&sc->tmp, mv->headers[i].name,
			    strlen(mv->headers[i].name));
			sa_buf_add(&sc->tmp, ": ", 2);
			add_sa_value(sc, &mv->headers[i], raw);
		}
		found = mv->nheaders;
	} else if (strncmp(name, "ALL-", 4) == 0 &&
	    (strcmp(name + 4, "TRUSTED") == 0 ||
		strcmp(name + 4, "INTERNAL") == 0 ||
		strcmp(name + 4, "UNTRUSTED") == 0 ||
		strcmp(name + 4, "EXTERNAL") == 0)) {
		/* the fields added inside (TRUSTED/INTERNAL: down to and
		   with the last trusted relay's Received) or outside (from
		   that Received on) */
		const struct sa_relays *rs = sa_relays(c);
		int			in = name[4] == 'T' || name[4] == 'I';
		long lastf = (name[4] == 'T' || name[4] == 'U')
		    ? rs->last_trusted_field
		    : rs->last_internal_field;
		long cur = -1, bound = lastf + 1;

		for (i = 0; i < mv->nheaders; i++) {
			int rcvd = ascii_strcasecmp(
				       mv->headers[i].name, "Received") == 0;

			if (rcvd)
				cur++;
			if (in ? cur > bound : cur < bound)
				continue;
			sa_buf_add(&sc->tmp, mv->headers[i].name,
			    strlen(mv->headers[i].name));
			sa_buf_add(&sc->tmp, ": ", 2);
			add_value(sc,
			    raw ? mv->headers[i].raw : mv->headers[i].decoded);
			found++;
			if (in && rcvd && cur == bound)
				break;
		}
	} else if (hname_eq(name, "EnvelopeFrom")) {
		if (c->facts != NULL && c->facts->mail_from != NULL) {
			add_value(sc, c->facts->mail_from);
			found = 1;
		}
	} else if (ascii_strncasecmp(name, "X-Spam-Relays-", 14) == 0 &&
	    (hname_eq(name + 14, "Untrusted") ||
		hname_eq(name + 14, "External") ||
		hname_eq(name + 14, "Trusted") ||
		hname_eq(name + 14, "Internal"))) {
		add_relays(c,
		    hname_eq(name + 14, "Trusted") ||
			hname_eq(name + 14, "Internal"),
		    hname_eq(name + 14, "Internal") ||
			hname_eq(name + 14, "External"));
		found = sc->tmp.len > 0;
	} else {
		static const char *const msgid[] = { "X-Message-Id",
			"Resent-Message-Id", "X-Original-Message-ID",
			"Message-Id" };
		static const char *const tocc[] = { "To", "Cc" };
		const char *const	*names = &name;
		size_t			 nnames = 1, j;
		const char		*vals[1024];
		const struct mv_header	*hv[1024];
		size_t			 nv = 0;

		if (strcmp(name, "MESSAGEID") == 0) {
			names = msgid;
			nnames = nitems(msgid);
		} else if (hname_eq(name, "ToCc")) {
			names = tocc;
			nnames = nitems(tocc);
		}
		for (j = 0; j < nnames; j++)
			for (i = 0; i < mv->nheaders && nv < nitems(vals); i++)
				if (hname_eq(mv->headers[i].name, names[j])) {
					const char *s = raw ||
						(mods &
						    (SA_HM_ADDR | SA_HM_NAME))
					    ? mv->headers[i].raw
					    : mv->headers[i].decoded;

					if (nnames > 1 && names == msgid &&
					    *s == '\0')
						continue;
					hv[nv] = &mv->headers[i];
					vals[nv++] = s;
				}
		first = 0;
		last = nv;
		if (nv > 0 && (mods & SA_HM_FIRST))
			last = 1;
		else if (nv > 0 && (mods & SA_HM_LAST))
			first = nv - 1;
		for (i = first; i < last; i++) {
			if (mods & (SA_HM_ADDR | SA_HM_NAME)) {
				/* :addr/:name read the decoded value for
				   names unless :raw, the raw for addresses */
				const char *s = vals[i];

				if ((mods & SA_HM_NAME) && !raw) {
					const struct mv_header *hh;
					size_t			idx;

					for (idx = 0; idx < mv->nheaders;
					     idx++) {
						hh = &mv->headers[idx];
						if (hh->raw == s) {
							s = hh->decoded;
							break;
						}
					}
				}
				add_addrs(sc, s, (mods & SA_HM_NAME) != 0);
			} else
				add_sa_value(sc, hv[i], raw);
		}
		found = nv;
		if (mods & (SA_HM_ADDR | SA_HM_NAME))
			found = sc->tmp.len > 0;
	}
	if (!found) {
		v = NULL;
		*len = 0;
	} else {
		v = arena_alloc(sc, sc->tmp.len + 1);
		memcpy(v, sc->tmp.s ? sc->tmp.s : "", sc->tmp.len);
		v[sc->tmp.len] = '\0';
		*len = sc->tmp.len;
	}
	if (e != NULL) {
		size_t nl = strlen(name);
		char  *nm = arena_alloc(sc, nl + 1);

		memcpy(nm, name, nl + 1);
		e->gen = sc->gen;
		e->hash = h;
		e->mods = mods;
		e->name = nm;
		e->value = v;
		e->len = *len;
	}
	return v;
}

static unsigned
run_header(struct sa_ctx *c, const struct sa_rule *r)
{
	const char *v;
	size_t	    len;
	unsigned    n;

	v = sa_get_header(c, r->hdr, r->hmods, &len);
	if (r->exists)
		return v != NULL;
	if (v == NULL) {
		v = r->unset ? r->unset : "";
		len = strlen(v);
	}
	n = match_count(c, r, v, len, r->neg ? 1 : rule_want(r));
	return r->neg ? n == 0 : n;
}

static unsigned
run_mimeheader(struct sa_ctx *c, const struct sa_rule *r)
{
	const struct msgview *mv = c->mv;
	size_t		      i, j;
	unsigned	      n = 0, want = rule_want(r);

	for (i = 0; i < mv->nparts && n < want; i++) {
		const struct mv_part *p = &mv->parts[i];

		for (j = 0; j < p->nheaders; j++) {
			const char *v;

			if (!hname_eq(p->headers[j].name, r->hdr))
				continue;
			v = (r->hmods & SA_HM_RAW) ? p->headers[j].raw
						   : p->headers[j].decoded;
			n += match_count(c, r, v, strlen(v), want - n);
			break;
		}
	}
	if (r->neg)
		return n == 0;
	return n;
}

/* -------------------------------------------------------------- texts */

/*
 * Append t to the body text, collapsing whitespace as SpamAssassin does:
 * a whitespace run holding two or more newlines is a paragraph end
 * ("\n", with a space kept on a side that had other whitespace), any
 * other run one space.
 */
static void
body_append(struct sa_buf *b, const char *t, size_t n)
{
	size_t i = 0, j, nl, firstnl, lastnl;

	while (i < n) {
		if (!(t[i] == ' ' || t[i] == '\t' || t[i] == '\n' ||
			t[i] == '\r' || t[i] == '\f' || t[i] == '\v')) {
			j = i;
			while (j < n &&
			    !(t[j] == ' ' || t[j] == '\t' || t[j] == '\n' ||
				t[j] == '\r' || t[j] == '\f' || t[j] == '\v'))
				j++;
			sa_buf_add(b, t + i, j - i);
			i = j;
			continue;
		}
		nl = 0;
		firstnl = lastnl = 0;
		for (j = i; j < n &&
		     (t[j] == ' ' || t[j] == '\t' || t[j] == '\n' ||
			 t[j] == '\r' || t[j] == '\f' || t[j] == '\v');
		     j++)
			if (t[j] == '\n') {
				if (nl++ == 0)
					firstnl = j;
				lastnl = j;
			}
		if (nl >= 2) {
			if (firstnl > i)
				sa_buf_add(b, " ", 1);
			sa_buf_add(b, "\n", 1);
			if (lastnl + 1 < j)
				sa_buf_add(b, " ", 1);
		} else
			sa_buf_add(b, " ", 1);
		i = j;
	}
}

/* Lines of s as split_into_array_of_short_lines: at "\n", <= 2048. */
static void
split_lines(struct sa_spans *sp, const char *s, size_t base, size_t n)
{
	size_t i = 0, e, len, k;

	while (i < n) {
		const char *nl = memchr(s + i, '\n', n - i);

		e = nl ? (size_t)(nl - s) + 1 : n;
		while (e - i > SA_LINE_MAX) {
			/* last space within the first 2048 bytes + 1 */
			len = 0;
			for (k = i + SA_LINE_MAX; k > i; k--)
				if (s[k] == ' ') {
					len = k - i + 1;
					break;
				}
			if (len == 0)
				len = SA_LINE_MAX;
			span_add(sp, base + i, len);
			i += len;
		}
		span_add(sp, base + i, e - i);
		i = e;
	}
}

/* split_into_array_of_short_paragraphs: chunks of 2048..4096 bytes */
static void
split_paragraphs(struct sa_spans *sp, const char *s, size_t base, size_t n)
{
	size_t ofs = 0, j;

	if (n <= SA_LINE_MAX) {
		span_add(sp, base, n);
		return;
	}
	for (; n - ofs > 2 * SA_LINE_MAX; ofs = j + 1) {
		const char *q;
		int	    found = 0;
		const char  seps[] = "\n> ";
		size_t	    si;

		for (si = 0; si < 3 && !found; si++) {
			q = memchr(s + ofs + SA_LINE_MAX, seps[si],
			    n - ofs - SA_LINE_MAX);
			if (q != NULL &&
			    (size_t)(q - s) - ofs + 1 <= 2 * SA_LINE_MAX) {
				j = (size_t)(q - s);
				found = 1;
			}
		}
		if (!found)
			j = ofs + SA_LINE_MAX;
		span_add(sp, base + ofs, j - ofs + 1);
	}
	if (ofs < n)
		span_add(sp, base + ofs, n - ofs);
}

static void
build_body(struct sa_ctx *c)
{
	struct sa_scratch      *sc = c->sc;
	const struct msgview   *mv = c->mv;
	const struct mv_header *subj = NULL;
	size_t			i, subjlen;

	sc->body.len = 0;
	sc->bodyl.n = 0;
	for (i = 0; i < mv->nheaders; i++)
		if (hname_eq(mv->headers[i].name, "Subject")) {
			subj = &mv->headers[i];
			break;
		}
	if (subj != NULL && subj->decoded[0] != '\0') {
		sa_buf_add(&sc->body, subj->decoded, strlen(subj->decoded));
		sa_buf_add(&sc->body, "\n", 1);
	} else
		sa_buf_add(&sc->body, "\n", 1);
	subjlen = sc->body.len;
	for (i = 0; i < mv->nparts; i++) {
		const struct mv_part *p = &mv->parts[i];

		if (p->text == NULL || (p->flags & MV_PART_MULTIPART))
			continue;
		if (sc->body.len > subjlen)
			sa_buf_add(&sc->body, "\n", 1);
		body_append(&sc->body, p->text, p->textlen);
		/* SpamAssassin's body rules read all the rendering, the
		   invisible text too (here after the visible) */
		if (p->invisiblelen > 0) {
			sa_buf_add(&sc->body, "\n", 1);
			body_append(&sc->body, p->invisible, p->invisiblelen);
		}
	}
	/* the subject is its own line(s), then the text */
	split_lines(&sc->bodyl, sc->body.s, 0, subjlen);
	sc->body_subject_lines = sc->bodyl.n;
	split_lines(
	    &sc->bodyl, sc->body.s + subjlen, subjlen, sc->body.len - subjlen);
	sc->body_built = 1;
}

static void
build_rawbody(struct sa_ctx *c)
{
	struct sa_scratch    *sc = c->sc;
	const struct msgview *mv = c->mv;
	size_t		      i, base;

	sc->raw.len = 0;
	sc->rawl.n = 0;
	sa_buf_add(&sc->raw, "", 0);
	for (i = 0; i < mv->nparts; i++) {
		const struct mv_part *p = &mv->parts[i];

		if (p->raw_text == NULL || (p->flags & MV_PART_MULTIPART) ||
		    strcmp(p->type, "text/calendar") == 0)
			continue;
		base = sc->raw.len;
		sa_buf_add(&sc->raw, p->raw_text, p->raw_textlen);
		split_paragraphs(
		    &sc->rawl, sc->raw.s + base, base, p->raw_textlen);
	}
	sc->raw_built = 1;
}

const char *
sa_body_text(struct sa_ctx *c, size_t *len)
{
	if (!c->sc->body_built)
		build_body(c);
	*len = c->sc->body.len;
	return c->sc->body.s;
}

/* Matches of r in lines [from, to) of b. */
static unsigned
run_lines(struct sa_ctx *c, const struct sa_rule *r, const struct sa_buf *b,
    const struct sa_spans *sp, size_t from, size_t to)
{
	unsigned want = rule_want(r), n = 0;
	size_t	 i;

	if (to > sp->n)
		to = sp->n;
	for (i = from; i < to && n < want; i++)
		n += match_count(
		    c, r, b->s + sp->v[i].off, sp->v[i].len, want - n);
	return n;
}

static int
hexd(int ch)
{
	return isxdigit(ch) ? (isdigit(ch) ? ch - '0' : (ch | 0x20) - 'a' + 10)
			    : -1;
}

/*
 * The %-unescaped form SpamAssassin's uri_list_canonicalize adds for a
 * URI with %HH escapes (Util::url_encode): printable escapes %21-%7E
 * decoded, other bytes and '"', '%', '<', '>' escaped; its length in
 * buf, or 0 when there is none or it is the same.
 */
static size_t
uri_unescaped(const char *u, size_t ul, char *buf, size_t len)
{
	size_t i, k = 0;
	int    any = 0;

	for (i = 0; i + 2 < ul && !any; i++)
		any = u[i] == '%' && hexd((unsigned char)u[i + 1]) >= 0 &&
		    hexd((unsigned char)u[i + 2]) >= 0;
	if (!any)
		return 0;
	for (i = 0; i < ul; i++) {
		unsigned char ch = (unsigned char)u[i];
		int	      h1, h2;

		if (k + 4 >= len)
			return 0;
		if (ch == '%' && i + 2 < ul &&
		    (h1 = hexd((unsigned char)u[i + 1])) >= 0 &&
		    (h2 = hexd((unsigned char)u[i + 2])) >= 0) {
			int v = h1 * 16 + h2;

			if (h1 >= 2 && h1 <= 7 && v != 0x20 && v != 0x7f)
				buf[k++] = (char)v;
			else {
				memcpy(buf + k, u + i, 3);
				k += 3;
			}
			i += 2;
		} else if (ch <= 0x20 || ch >= 0x7f || ch == '"' || ch == '%' ||
		    ch == '<' || ch == '>') {
			snprintf(buf + k, 4, "%%%02x", ch);
			k += 3;
		} else
			buf[k++] = (char)ch;
	}
	buf[k] = '\0';
	return k == ul && memcmp(buf, u, ul) == 0 ? 0 : k;
}

/*
 * The forms of one URI uri rules see: as found; with "http://" when it
 * has no scheme; %-unescaped (of the latter). Up to 3 into forms.
 */
static size_t
uri_forms(const struct mv_uri *m, char *buf, size_t buflen, const char **forms,
    size_t *lens)
{
	const char *u = m->uri;
	size_t	    ul = strlen(u), n = 0, half = buflen / 2, k;

	forms[n] = u;
	lens[n++] = ul;
	if (strstr(u, "://") == NULL && !(m->flags & MV_URI_MAILTO) &&
	    ul + 8 < half) {
		memcpy(buf, "http://", 7);
		memcpy(buf + 7, u, ul + 1);
		forms[n] = buf;
		lens[n++] = ul + 7;
	}
	if (!(m->flags & MV_URI_MAILTO) &&
	    (k = uri_unescaped(
		 forms[n - 1], lens[n - 1], buf + half, buflen - half)) > 0) {
		forms[n] = buf + half;
		lens[n++] = k;
	}
	return n;
}

static unsigned
run_uri(struct sa_ctx *c, const struct sa_rule *r)
{
	const struct msgview *mv = c->mv;
	unsigned	      want = rule_want(r), n = 0;
	size_t		      i, j, nf, lens[3];
	const char	     *forms[3];
	char		      buf[8192];

	for (i = 0; i < mv->nuris && n < want; i++) {
		nf = uri_forms(&mv->uris[i], buf, sizeof(buf), forms, lens);
		for (j = 0; j < nf && n < want; j++)
			n += match_count(c, r, forms[j], lens[j], want - n);
	}
	return n;
}

/* -------------------------------------------------------- prefilter */

/*
 * Scan the texts of type t with the Hyperscan prefilter: 1 when the
 * candidate bits in sc->cand are valid for the type's rules, else 0
 * (every rule then runs with PCRE2).
 */
static int
prefilter(struct sa_ctx *c, int t)
{
	const struct sa_ruleset *rs = c->rs;
	struct sa_scratch	*sc = c->sc;
	const struct sa_buf	*b = NULL;
	const struct sa_spans	*sp = NULL;
	size_t			 i;
	char			 buf[8192];

	if (!sa_prefilter_has(rs, t) || sa_prefilter_prepare(rs, sc) < 0)
		return 0;
	switch (t) {
	case SA_BODY:
		b = &sc->body;
		sp = &sc->bodyl;
		break;
	case SA_RAWBODY:
		b = &sc->raw;
		sp = &sc->rawl;
		break;
	case SA_FULL:
		return sa_prefilter_scan(rs, sc, t, c->raw, c->rawlen, 0) == 0;
	case SA_URI:
		for (i = 0; i < c->mv->nuris; i++) {
			const char *forms[3];
			size_t	    lens[3], j,
			    nf = uri_forms(
				&c->mv->uris[i], buf, sizeof(buf), forms, lens);

			for (j = 0; j < nf; j++)
				if (sa_prefilter_scan(rs, sc, t, forms[j],
					lens[j], (uint32_t)i) < 0)
					return 0;
		}
		return 1;
	default:
		return 0;
	}
	for (i = 0; i < sp->n; i++)
		if (sa_prefilter_scan(rs, sc, t, b->s + sp->v[i].off,
			sp->v[i].len, (uint32_t)i) < 0)
			return 0;
	return 1;
}

/*
 * A prefiltered rule can only match in the lines Hyperscan reported it
 * on (each line is scanned on its own, as PCRE2 sees it): narrow [from,
 * to) to the first and last of them.
 */
static void
pf_lines(const struct sa_scratch *sc, int prefiltered, uint32_t ri,
    size_t *from, size_t *to)
{
	if (!prefiltered)
		return;
	if (*from < sc->cand_first[ri])
		*from = sc->cand_first[ri];
	if (*to > (size_t)sc->cand_last[ri] + 1)
		*to = (size_t)sc->cand_last[ri] + 1;
}

/* -------------------------------------------------------- lazy rules */

static unsigned
run_regex_rule(struct sa_ctx *c, const struct sa_rule *r)
{
	struct sa_scratch *sc = c->sc;

	if (r->type == SA_BODY)
		return run_lines(c, r, &sc->body, &sc->bodyl,
		    (r->tflags & SA_TF_NOSUBJECT) ? sc->body_subject_lines : 0,
		    sc->bodyl.n);
	return run_lines(c, r, &sc->raw, &sc->rawl, 0, sc->rawl.n);
}

/* A meta's interval from its inputs' intervals, mapped as got_hit()
   maps its value: a true value below 1 counts as 1. */
static void
meta_interval(const struct sa_ruleset *rs, uint32_t m, double *lo, double *hi)
{
	double l, h;

	sa_meta_interval(rs->rules[m], lo, hi, &l, &h);
	if (l > 0) {
		lo[m] = l;
		hi[m] = h;
	} else if (h < 0)
		lo[m] = hi[m] = 1;
	else if (l == 0 && h == 0)
		lo[m] = hi[m] = 0;
	else {
		lo[m] = 0;
		hi[m] = h > 1 ? h : 1;
	}
}

/*
 * Make rule `root`'s value exact (lo == hi): its unknown inputs one at a
 * time, depth first (an explicit stack: metas are acyclic, so each is on
 * it at most once), the meta's interval narrowed after each, stopping as
 * soon as it is exact. An input that decides the meta on its own (a false
 * operand of &&) thus spares running the others. Returns the rules run.
 */
static unsigned
resolve(struct sa_ctx *c, uint32_t root, uint64_t deadline, int *timed_out)
{
	const struct sa_ruleset *rs = c->rs;
	struct sa_scratch	*sc = c->sc;
	double			*lo = sc->lo, *hi = sc->hi;
	struct sa_resolve	*st = sc->rstack;
	size_t			 sp = 0;
	unsigned		 ran = 0;

	st[sp].rule = root;
	st[sp++].k = 0;
	while (sp > 0) {
		struct sa_resolve    *t = &st[sp - 1];
		const struct sa_rule *r = rs->rules[t->rule];
		uint32_t	      x;

		if (lo[t->rule] == hi[t->rule] || t->k >= r->ncode) {
			/* exact, or every input tried: back to the reader */
			if (--sp > 0)
				meta_interval(rs, st[sp - 1].rule, lo, hi);
			continue;
		}
		if (r->code[t->k].op != MOP_RULE) {
			t->k++;
			continue;
		}
		x = r->code[t->k++].arg;
		if (lo[x] == hi[x])
			continue;
		if (rs->rules[x]->type == SA_META) {
			/* its inputs may have been made exact meanwhile */
			meta_interval(rs, x, lo, hi);
			if (lo[x] == hi[x])
				meta_interval(rs, t->rule, lo, hi);
			else {
				st[sp].rule = x;
				st[sp++].k = 0;
			}
			continue;
		}
		if (!rs->rules[x]->lazy || *timed_out)
			continue;
		if (deadline != 0 && now_usec() > deadline) {
			*timed_out = 1;
			continue;
		}
		{
			uint64_t t0 = sc->prof ? now_usec_ns() : 0;

			sc->values[x] = run_regex_rule(c, rs->rules[x]);
			if (sc->prof != NULL)
				sc->prof[x] += now_usec_ns() - t0;
		}
		lo[x] = hi[x] = sc->values[x];
		ran++;
		meta_interval(rs, t->rule, lo, hi);
	}
	return ran;
}

/*
 * The lazy rules (costly regexes only metas read) run only where a
 * reported meta's outcome depends on them: the metas are first evaluated
 * over intervals, each unknown rule anywhere in [0, its most hits]; a
 * reported meta whose truth is then undecided is made exact (resolve()),
 * down the dependency order. A rule nobody asked for stays 0, which lies
 * inside every interval used, so every reported meta comes out as if all
 * rules had run. Returns the rules run.
 */
static unsigned
run_lazy(struct sa_ctx *c, uint64_t deadline, int *timed_out)
{
	const struct sa_ruleset *rs = c->rs;
	struct sa_scratch	*sc = c->sc;
	double			*lo, *hi;
	size_t			 i, n = rs->nrules;
	unsigned		 ran = 0;

	if (sc->nlazybuf < n) {
		free(sc->lo);
		free(sc->hi);
		free(sc->rstack);
		sc->lo = xcalloc(n, sizeof(*sc->lo));
		sc->hi = xcalloc(n, sizeof(*sc->hi));
		sc->rstack = xcalloc(n, sizeof(*sc->rstack));
		sc->nlazybuf = n;
	}
	lo = sc->lo;
	hi = sc->hi;
	memcpy(lo, sc->values, n * sizeof(*lo));
	memcpy(hi, sc->values, n * sizeof(*hi));
	for (i = 0; i < rs->nlazy; i++)
		hi[rs->lazy[i]] = rule_want(rs->rules[rs->lazy[i]]);
	for (i = 0; i < rs->norder[SA_META]; i++)
		meta_interval(rs, rs->order[SA_META][i], lo, hi);
	for (i = rs->norder[SA_META]; i-- > 0;) {
		uint32_t	      m = rs->order[SA_META][i];
		const struct sa_rule *r = rs->rules[m];

		if (r->sub || sa_score(c, r) == 0 || lo[m] > 0 || hi[m] == 0)
			continue;
		/* inputs made exact since the first pass may decide it */
		meta_interval(rs, m, lo, hi);
		if (lo[m] > 0 || hi[m] == 0)
			continue;
		ran += resolve(c, m, deadline, timed_out);
	}
	return ran;
}

/* ---------------------------------------------------------------- eval */

static void
add_hit(struct sa_scratch *sc, const struct sa_rule *r, double score,
    unsigned count)
{
	if (sc->nhits == sc->hitcap) {
		sc->hitcap = sc->hitcap ? sc->hitcap * 2 : 32;
		sc->hits = xrealloc(sc->hits, sc->hitcap * sizeof(*sc->hits));
	}
	sc->hits[sc->nhits].name = r->name;
	sc->hits[sc->nhits].describe = r->describe ? r->describe : "";
	sc->hits[sc->nhits].score = score;
	sc->hits[sc->nhits].count = count;
	sc->nhits++;
}

static int
cmp_hit(const void *a, const void *b)
{
	return strcmp(
	    ((const struct sa_hit *)a)->name, ((const struct sa_hit *)b)->name);
}

int
sa_eval(const struct sa_ruleset *rs, struct sa_scratch *sc,
    const struct msgview *mv, const char *raw, size_t rawlen,
    const struct sa_facts *facts, const char *const *ext, size_t next,
    struct sa_result *res)
{
	struct sa_ctx c;
	size_t	      i, k, from, to;
	unsigned      n, ran = 0;
	double	      total = 0, learn = 0;
	uint64_t      tprev, deadline = 0;
	int	      usepf, timed_out = 0;

	memset(&c, 0, sizeof(c));
	c.rs = rs;
	c.sc = sc;
	c.mv = mv;
	c.raw = raw ? raw : "";
	c.rawlen = raw ? rawlen : 0;
	c.facts = facts;
	c.md = sc->md;
	c.nb = (rs->scoreset & 2) && facts != NULL && facts->bayes_unready;
	if (sc->nvalues < rs->nrules) {
		free(sc->values);
		sc->values = xcalloc(rs->nrules, sizeof(*sc->values));
		sc->nvalues = rs->nrules;
	} else if (rs->nrules > 0)
		memset(sc->values, 0, rs->nrules * sizeof(*sc->values));
	arena_reset(sc);
	sc->gen++;
	if (sc->gen == 0) {
		memset(sc->hcache, 0, SA_HCACHE * sizeof(*sc->hcache));
		sc->gen = 1;
		sc->relays_gen = 0;
		sc->date_diff_gen = 0;
	}
	sc->body_built = sc->raw_built = 0;
	sc->nhits = 0;
	if (sc->budget != 0)
		deadline = now_usec() + sc->budget;
	if (sc->prof != NULL && sc->nprof < rs->nrules) {
		free(sc->prof);
		sc->prof = xcalloc(rs->nrules, sizeof(*sc->prof));
		sc->nprof = rs->nrules;
	}
	tprev = sc->prof ? now_usec_ns() : 0;
	if (rs->pf != NULL) {
		if (sc->ncand < (rs->nrules + 7) / 8) {
			free(sc->cand);
			sc->ncand = (rs->nrules + 7) / 8;
			sc->cand = xmalloc(sc->ncand);
		}
		if (sc->ncandlines < rs->nrules) {
			free(sc->cand_first);
			free(sc->cand_last);
			sc->ncandlines = rs->nrules;
			sc->cand_first = xcalloc(rs->nrules, sizeof(uint32_t));
			sc->cand_last = xcalloc(rs->nrules, sizeof(uint32_t));
		}
		memset(sc->cand, 0, (rs->nrules + 7) / 8);
	}

	for (k = 0; k < SA_NTYPES && !timed_out; k++) {
		if (k == SA_META)
			continue;
		if (k == SA_BODY && rs->norder[k] > 0)
			build_body(&c);
		if (k == SA_RAWBODY && rs->norder[k] > 0)
			build_rawbody(&c);
		usepf = rs->norder[k] > 0 && prefilter(&c, (int)k);
		for (i = 0; i < rs->norder[k] && !timed_out; i++) {
			uint32_t	      ri = rs->order[k][i];
			const struct sa_rule *r = rs->rules[ri];

			/* a clock read every 16 rules */
			if (deadline != 0 && (i & 15) == 0 &&
			    now_usec() > deadline) {
				timed_out = 1;
				break;
			}
			if (usepf && r->pf &&
			    !(sc->cand[ri >> 3] & (1u << (ri & 7)))) {
				sc->values[ri] = 0;
				continue;
			}
			if (r->lazy) /* later, if a meta needs it */
				continue;
			switch (k) {
			case SA_HEADER:
				n = run_header(&c, r);
				break;
			case SA_MIMEHEADER:
				n = run_mimeheader(&c, r);
				break;
			case SA_BODY:
				from = (r->tflags & SA_TF_NOSUBJECT)
				    ? sc->body_subject_lines
				    : 0;
				to = sc->bodyl.n;
				pf_lines(sc, usepf && r->pf, ri, &from, &to);
				n = run_lines(
				    &c, r, &sc->body, &sc->bodyl, from, to);
				break;
			case SA_RAWBODY:
				from = 0;
				to = sc->rawl.n;
				pf_lines(sc, usepf && r->pf, ri, &from, &to);
				n = run_lines(
				    &c, r, &sc->raw, &sc->rawl, from, to);
				break;
			case SA_FULL:
				n = match_count(
				    &c, r, c.raw, c.rawlen, rule_want(r));
				break;
			default:
				n = run_uri(&c, r);
				break;
			}
			ran++;
			sc->values[rs->order[k][i]] = n;
			if (sc->prof != NULL) {
				uint64_t now = now_usec_ns();

				sc->prof[rs->order[k][i]] += now - tprev;
				tprev = now;
			}
		}
	}
	for (i = 0; i < rs->nevals && !timed_out; i++) {
		const struct sa_rule *r = rs->rules[rs->evals[i]];
		int		      v = r->ev->fn(&c, r, &r->args);

		ran++;
		sc->values[rs->evals[i]] = v > 0 ? v : 0;
		if (sc->prof != NULL) {
			uint64_t now = now_usec_ns();

			sc->prof[rs->evals[i]] += now - tprev;
			tprev = now;
		}
	}
	for (i = 0; i < next; i++) {
		int idx = ext[i] ? sa_rule_index(rs, ext[i]) : -1;

		if (idx >= 0 && rs->rules[idx]->defined && sc->values[idx] == 0)
			sc->values[idx] = 1;
	}
	if (rs->nlazy > 0 && !timed_out)
		ran += run_lazy(&c, deadline, &timed_out);
	for (i = 0; i < rs->norder[SA_META]; i++) {
		uint32_t ri = rs->order[SA_META][i];

		double v = sa_meta_value(rs->rules[ri], sc->values);

		/* as got_hit(): a true value below 1 counts as 1 */
		sc->values[ri] = v == 0 ? 0 : v > 0 ? v : 1;
		ran++;
	}
	for (i = 0; i < rs->nrules; i++) {
		const struct sa_rule *r = rs->rules[i];

		double score = sa_score(&c, r);

		if (sc->values[i] == 0 || r->sub || !r->defined)
			continue;
		/* SpamAssassin's autolearn points: the set without Bayes,
		   not the rules it excludes (BAYES_* are "learn") */
		if (!(r->tflags &
			(SA_TF_LEARN | SA_TF_NOAUTOLEARN | SA_TF_USERCONF)))
			learn += r->sc_nb;
		if (score == 0)
			continue;
		add_hit(sc, r, score,
		    sc->values[i] >= SA_MAXHITS_CAP ? SA_MAXHITS_CAP
			: sc->values[i] >= 1	    ? (unsigned)sc->values[i]
						    : 1);
		total += score;
	}
	if (sc->nhits > 1)
		qsort(sc->hits, sc->nhits, sizeof(*sc->hits), cmp_hit);
	res->hits = sc->hits;
	res->nhits = sc->nhits;
	res->score = total;
	res->learn_points = learn;
	res->rules_run = ran;
	res->timed_out = timed_out;
	return 0;
}
