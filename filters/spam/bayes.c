/*
 * bayes.c - the Bayesian classifier over moat's store: token hashing and
 * per-message deduplication, learn/relearn/forget as guarded atomic store
 * batches, and Robinson/Fisher chi-squared classification (the formulas
 * and the store layout are in bayes.h).
 *
 * Thread-safe: a struct bayes is read-only after bayes_open(); each call
 * keeps its state on its own stack and heap and blocks on the store.
 */
#include <sys/random.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bayes.h"
#include "msgview.h"
#include "siphash.h"
#include "store.h"
#include "util.h"

#define RETRIES 16

struct bayes {
	struct store	    *st;
	struct store_table  *tok, *seen, *meta;
	struct sipkey	     key;
	unsigned	     min_spam, min_ham;
	size_t		     max_tokens;
	struct bayes_tokopts tok_opts;
	char		   **ignore, **local; /* copies behind tok_opts */
};

static const char KEY_TOTALS[] = "totals";
static const char KEY_HASHKEY[] = "hashkey";

/* ------------------------------------------------------ arithmetic */

double
bayes_token_prob(uint64_t s, uint64_t h, uint64_t ns, uint64_t nh)
{
	double p, n;

	if (s + h == 0 || ns == 0 || nh == 0)
		return -1;
	p = ((double)s * (double)nh) /
	    ((double)h * (double)ns + (double)s * (double)nh);
	n = (double)s + (double)h;
	return (BAYES_FW_S * BAYES_FW_X + n * p) / (BAYES_FW_S + n);
}

double
bayes_chi2q(double x2, unsigned halfv)
{
	double	 m = x2 / 2.0, sum, term;
	unsigned i;

	sum = term = exp(-m);
	for (i = 1; i < halfv; i++) {
		term *= m / i;
		sum += term;
	}
	return sum < 1.0 ? sum : 1.0;
}

double
bayes_combine(uint64_t ns, uint64_t nh, const double *probs, size_t n)
{
	double lS, lH, S, H, tot = (double)ns + (double)nh;
	size_t i;

	if (n == 0 || ns == 0 || nh == 0)
		return 0.5;
	/* Sums of logarithms: SA's products rescaled with frexp(). */
	lS = log((double)ns / tot);
	lH = log((double)nh / tot);
	for (i = 0; i < n; i++) {
		lS += log(1.0 - probs[i]);
		lH += log(probs[i]);
	}
	S = 1.0 - bayes_chi2q(-2.0 * lS, (unsigned)n);
	H = 1.0 - bayes_chi2q(-2.0 * lH, (unsigned)n);
	return ((S - H) + 1.0) / 2.0;
}

/* ------------------------------------------------------ set-up */

static char **
copy_list(const char *const *l, size_t n)
{
	char **c = xcalloc(n + 1, sizeof(*c));
	size_t i;

	for (i = 0; i < n; i++)
		c[i] = xstrdup(l[i]);
	return c;
}

static void
free_list(char **l)
{
	size_t i;

	for (i = 0; l != NULL && l[i] != NULL; i++)
		free(l[i]);
	free(l);
}

/* The hashing key: made once per store, kept in meta. */
static int
load_key(struct bayes *b, char *err, size_t errlen)
{
	const void	*k = KEY_HASHKEY;
	size_t		 kl = sizeof(KEY_HASHKEY) - 1;
	struct store_rec r;
	struct store_op	 op[2];
	int		 i, rc;

	for (i = 0; i < RETRIES; i++) {
		if (store_get(b->meta, &k, &kl, 1, &r, err, errlen) == -1)
			return -1;
		if (r.found) {
			memcpy(&b->key.k0, &r.v[0], 8);
			memcpy(&b->key.k1, &r.v[1], 8);
			return 0;
		}
		memset(op, 0, sizeof(op));
		op[0].table = op[1].table = b->meta;
		op[0].key = op[1].key = k;
		op[0].keylen = op[1].keylen = kl;
		op[0].kind = STORE_CHECK;
		op[0].flags = STORE_F_ABSENT;
		op[1].kind = STORE_SET;
		if (getrandom(&op[1].v[0], 16, 0) != 16) {
			strfmt(err, errlen, "getrandom: %s", strerror(errno));
			return -1;
		}
		op[1].v[2] = 1; /* never all zeros */
		if ((rc = store_apply(b->st, op, 2, err, errlen)) == -1)
			return -1;
		/* Made (or lost the race to another process): re-read. */
	}
	strfmt(err, errlen, "cannot set up the hashing key");
	return -1;
}

struct bayes *
bayes_open(
    struct store *st, const struct bayes_opts *o, char *err, size_t errlen)
{
	struct bayes *b = xcalloc(1, sizeof(*b));
	const char *pfx = o != NULL && o->prefix != NULL ? o->prefix : "bayes";
	char	    name[STORE_NAME_MAX + 1];

	b->st = st;
	if (strlen(pfx) > STORE_NAME_MAX - 7) {
		strfmt(err, errlen, "bayes table prefix too long");
		goto fail;
	}
	strfmt(name, sizeof(name), "%s.tokens", pfx);
	if ((b->tok = store_table(st, name, err, errlen)) == NULL)
		goto fail;
	strfmt(name, sizeof(name), "%s.seen", pfx);
	if ((b->seen = store_table(st, name, err, errlen)) == NULL)
		goto fail;
	strfmt(name, sizeof(name), "%s.meta", pfx);
	if ((b->meta = store_table(st, name, err, errlen)) == NULL)
		goto fail;
	b->min_spam = o != NULL && o->min_spam ? o->min_spam : BAYES_MIN_SPAM;
	b->min_ham = o != NULL && o->min_ham ? o->min_ham : BAYES_MIN_HAM;
	b->max_tokens =
	    o != NULL && o->max_tokens ? o->max_tokens : BAYES_MAX_TOKENS;
	if (o != NULL) {
		b->ignore = copy_list(o->tok.ignore_headers, o->tok.nignore);
		b->local = copy_list(o->tok.local_hosts, o->tok.nlocal);
		b->tok_opts.nignore = o->tok.nignore;
		b->tok_opts.nlocal = o->tok.nlocal;
		b->tok_opts.ignore_headers = (const char *const *)b->ignore;
		b->tok_opts.local_hosts = (const char *const *)b->local;
	}
	if (load_key(b, err, errlen) == -1)
		goto fail;
	return b;
fail:
	bayes_free(b);
	return NULL;
}

struct bayes *
bayes_free(struct bayes *b)
{
	if (b == NULL)
		return NULL;
	free_list(b->ignore);
	free_list(b->local);
	free(b);
	return NULL;
}

/* ------------------------------------------------------ tokens */

/* The unique token hashes of one message (open addressing, 0 = empty). */
struct toks {
	const struct bayes *b;
	uint64_t	   *slot;
	size_t		    cap, n;
	int		    full;
};

static void
toks_insert(struct toks *t, uint64_t h)
{
	size_t i;

	for (i = h & (t->cap - 1); t->slot[i] != 0; i = (i + 1) & (t->cap - 1))
		if (t->slot[i] == h)
			return;
	t->slot[i] = h;
	t->n++;
}

static int
tok_cb(void *arg, const char *tok, size_t len)
{
	struct toks *t = arg;
	uint64_t    *old;
	size_t	     oldcap, i;
	uint64_t     h = siphash24(&t->b->key, tok, len);

	if (h == 0)
		h = 1;
	if (2 * (t->n + 1) > t->cap) {
		old = t->slot;
		oldcap = t->cap;
		t->cap = oldcap ? oldcap * 2 : 1024;
		t->slot = xcalloc(t->cap, sizeof(*t->slot));
		t->n = 0;
		for (i = 0; i < oldcap; i++)
			if (old[i] != 0)
				toks_insert(t, old[i]);
		free(old);
	}
	toks_insert(t, h);
	if (t->n >= t->b->max_tokens) {
		t->full = 1;
		return 1;
	}
	return 0;
}

/* The message's unique tokens, packed at the front of t->slot. */
static void
tokens(const struct bayes *b, const struct msgview *mv, struct toks *t)
{
	size_t i, j;

	memset(t, 0, sizeof(*t));
	t->b = b;
	bayes_tokenize(mv, &b->tok_opts, tok_cb, t);
	for (i = j = 0; i < t->cap; i++)
		if (t->slot[i] != 0)
			t->slot[j++] = t->slot[i];
}

/* ------------------------------------------------------ identity */

static void
id_add(uint64_t **a, size_t *n, size_t *cap, uint64_t h)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		*a = xrealloc(*a, *cap * sizeof(**a));
	}
	(*a)[(*n)++] = h;
}

/*
 * The message's identity in the seen table: its Message-ID, or lacking
 * one its header fields and text (hashed piece by piece, then the list of
 * hashes).
 */
static uint64_t
message_id(const struct bayes *b, const struct msgview *mv)
{
	const struct mv_header *h = NULL;
	uint64_t	       *a = NULL, id;
	size_t			n = 0, cap = 0, i, s, e;
	char		       *buf;

	for (i = 0; i < mv->nheaders && h == NULL; i++)
		if (ascii_strcasecmp(mv->headers[i].name, "Message-ID") == 0)
			h = &mv->headers[i];
	if (h != NULL) {
		for (s = 0; h->decoded[s] == ' ' || h->decoded[s] == '\t'; s++)
			;
		for (e = strlen(h->decoded); e > s &&
		     (h->decoded[e - 1] == ' ' || h->decoded[e - 1] == '\t');
		     e--)
			;
		if (e > s) {
			buf = xmalloc(e - s + 4);
			memcpy(buf, "mid:", 4);
			memcpy(buf + 4, h->decoded + s, e - s);
			id = siphash24(&b->key, buf, e - s + 4);
			free(buf);
			return id;
		}
	}
	id_add(&a, &n, &cap, siphash24(&b->key, "hb:", 3));
	for (i = 0; i < mv->nheaders; i++) {
		id_add(&a, &n, &cap,
		    siphash24(&b->key, mv->headers[i].name,
			strlen(mv->headers[i].name)));
		id_add(&a, &n, &cap,
		    siphash24(&b->key, mv->headers[i].raw,
			strlen(mv->headers[i].raw)));
	}
	for (i = 0; i < mv->nparts; i++)
		if (mv->parts[i].text != NULL)
			id_add(&a, &n, &cap,
			    siphash24(&b->key, mv->parts[i].text,
				mv->parts[i].textlen));
	id = siphash24(&b->key, a, n * sizeof(*a));
	free(a);
	return id;
}

/* ------------------------------------------------------ learning */

static int64_t
now_sec(void)
{
	return (int64_t)time(NULL);
}

/*
 * One guarded batch: the seen record must still be `seen` (or absent);
 * tokens and totals move by dspam/dham; the seen record becomes `cls`
 * (0: deleted).
 */
static int
move(struct bayes *b, const struct toks *t, uint64_t id,
    const struct store_rec *seen, int dspam, int dham, int cls, char *err,
    size_t errlen)
{
	struct store_op *ops = xcalloc(t->n + 3, sizeof(*ops));
	int64_t		 now = now_sec();
	size_t		 i, n = 0;
	int		 rc;

	ops[n].table = b->seen;
	ops[n].key = &id;
	ops[n].keylen = sizeof(id);
	ops[n].kind = STORE_CHECK;
	if (seen->found)
		memcpy(ops[n].v, seen->v, sizeof(ops[n].v));
	else
		ops[n].flags = STORE_F_ABSENT;
	n++;
	for (i = 0; i < t->n; i++, n++) {
		ops[n].table = b->tok;
		ops[n].key = &t->slot[i];
		ops[n].keylen = sizeof(t->slot[i]);
		ops[n].kind = STORE_ADD;
		ops[n].flags = STORE_F_CLAMP | STORE_F_DROP_ZERO;
		ops[n].maxmask = 1u << 2;
		ops[n].v[0] = dspam;
		ops[n].v[1] = dham;
		ops[n].v[2] = dspam > 0 || dham > 0 ? now : 0;
	}
	ops[n].table = b->meta;
	ops[n].key = KEY_TOTALS;
	ops[n].keylen = sizeof(KEY_TOTALS) - 1;
	ops[n].kind = STORE_ADD;
	ops[n].flags = STORE_F_CLAMP;
	ops[n].v[0] = dspam;
	ops[n].v[1] = dham;
	n++;
	ops[n].table = b->seen;
	ops[n].key = &id;
	ops[n].keylen = sizeof(id);
	if (cls != 0) {
		ops[n].kind = STORE_SET;
		ops[n].v[0] = cls;
		ops[n].v[1] = now;
	} else
		ops[n].kind = STORE_DEL;
	n++;
	rc = store_apply(b->st, ops, n, err, errlen);
	free(ops);
	return rc;
}

static int
learn_or_forget(struct bayes *b, const struct msgview *mv, int cls, char *err,
    size_t errlen)
{
	struct toks	 t;
	struct store_rec seen;
	uint64_t	 id = message_id(b, mv);
	const void	*k = &id;
	size_t		 kl = sizeof(id);
	int		 rc = -1, i, out = -1, was;

	tokens(b, mv, &t);
	for (i = 0; i < RETRIES; i++) {
		if (store_get(b->seen, &k, &kl, 1, &seen, err, errlen) == -1)
			goto done;
		was = seen.found ? (int)seen.v[0] : 0;
		if (cls == 0) { /* forget */
			if (was != BAYES_SPAM && was != BAYES_HAM) {
				out = BAYES_UNKNOWN;
				goto done;
			}
			rc = move(b, &t, id, &seen, was == BAYES_SPAM ? -1 : 0,
			    was == BAYES_HAM ? -1 : 0, 0, err, errlen);
			out = BAYES_FORGOTTEN;
		} else if (was == cls) {
			out = BAYES_KNOWN;
			goto done;
		} else if (was == BAYES_SPAM || was == BAYES_HAM) {
			rc = move(b, &t, id, &seen, cls == BAYES_SPAM ? 1 : -1,
			    cls == BAYES_HAM ? 1 : -1, cls, err, errlen);
			out = BAYES_RELEARNED;
		} else {
			rc = move(b, &t, id, &seen, cls == BAYES_SPAM,
			    cls == BAYES_HAM, cls, err, errlen);
			out = BAYES_LEARNED;
		}
		if (rc != STORE_CONFLICT)
			break;
	}
	if (rc == STORE_CONFLICT)
		strfmt(err, errlen, "the message kept changing under us");
	if (rc != 0)
		out = -1;
done:
	free(t.slot);
	return out;
}

int
bayes_learn(struct bayes *b, const struct msgview *mv, enum bayes_class cls,
    char *err, size_t errlen)
{
	if (cls != BAYES_SPAM && cls != BAYES_HAM) {
		strfmt(err, errlen, "bad class");
		return -1;
	}
	return learn_or_forget(b, mv, (int)cls, err, errlen);
}

int
bayes_forget(
    struct bayes *b, const struct msgview *mv, char *err, size_t errlen)
{
	return learn_or_forget(b, mv, 0, err, errlen);
}

/* ------------------------------------------------------ classifying */

static int
totals(struct bayes *b, uint64_t *ns, uint64_t *nh, char *err, size_t errlen)
{
	const void	*k = KEY_TOTALS;
	size_t		 kl = sizeof(KEY_TOTALS) - 1;
	struct store_rec r;

	if (store_get(b->meta, &k, &kl, 1, &r, err, errlen) == -1)
		return -1;
	*ns = r.v[0] > 0 ? (uint64_t)r.v[0] : 0;
	*nh = r.v[1] > 0 ? (uint64_t)r.v[1] : 0;
	return 0;
}

static int
by_strength(const void *a, const void *b)
{
	double x = fabs(*(const double *)a - 0.5);
	double y = fabs(*(const double *)b - 0.5);

	return x < y ? 1 : x > y ? -1 : 0;
}

int
bayes_classify(struct bayes *b, const struct msgview *mv,
    struct bayes_result *res, char *err, size_t errlen)
{
	struct toks	  t;
	struct store_rec *recs = NULL;
	const void	**keys = NULL;
	size_t		 *lens = NULL, i, n = 0;
	double		 *probs = NULL, p;
	int		  rc = -1;

	memset(res, 0, sizeof(*res));
	res->prob = 0.5;
	if (totals(b, &res->nspam, &res->nham, err, errlen) == -1)
		return -1;
	if (res->nspam < b->min_spam || res->nham < b->min_ham)
		return 0;
	res->ready = 1;
	tokens(b, mv, &t);
	res->ntokens = (unsigned)t.n;
	if (t.n == 0) {
		free(t.slot);
		return 0;
	}
	keys = xcalloc(t.n, sizeof(*keys));
	lens = xcalloc(t.n, sizeof(*lens));
	recs = xcalloc(t.n, sizeof(*recs));
	probs = xcalloc(t.n, sizeof(*probs));
	for (i = 0; i < t.n; i++) {
		keys[i] = &t.slot[i];
		lens[i] = sizeof(t.slot[i]);
	}
	if (store_get(b->tok, keys, lens, t.n, recs, err, errlen) == -1)
		goto done;
	for (i = 0; i < t.n; i++) {
		if (!recs[i].found)
			continue;
		res->nknown++;
		p = bayes_token_prob(
		    recs[i].v[0] > 0 ? (uint64_t)recs[i].v[0] : 0,
		    recs[i].v[1] > 0 ? (uint64_t)recs[i].v[1] : 0, res->nspam,
		    res->nham);
		if (p >= 0 && fabs(p - 0.5) >= BAYES_MIN_PROB_STRENGTH)
			probs[n++] = p;
	}
	qsort(probs, n, sizeof(*probs), by_strength);
	if (n > BAYES_N_SIGNIFICANT)
		n = BAYES_N_SIGNIFICANT;
	res->nused = (unsigned)n;
	if (n > 0) {
		res->prob = bayes_combine(res->nspam, res->nham, probs, n);
		res->voted = 1;
	}
	rc = 0;
done:
	free(keys);
	free(lens);
	free(recs);
	free(probs);
	free(t.slot);
	return rc;
}

/* ------------------------------------------------------ explaining */

struct named {
	struct toks t;	 /* the hashes, as tokens() makes them */
	char	  **str; /* the first string seen per hash */
	uint64_t   *h;
	size_t	    n, cap;
};

static int
named_cb(void *arg, const char *tok, size_t len)
{
	struct named *nm = arg;
	uint64_t      h = siphash24(&nm->t.b->key, tok, len);
	size_t	      before = nm->t.n;
	int	      rc;

	if (h == 0)
		h = 1;
	rc = tok_cb(&nm->t, tok, len);
	if (nm->t.n > before) { /* a new token */
		if (nm->n == nm->cap) {
			nm->cap = nm->cap ? nm->cap * 2 : 256;
			nm->str = xrealloc(nm->str, nm->cap * sizeof(*nm->str));
			nm->h = xrealloc(nm->h, nm->cap * sizeof(*nm->h));
		}
		nm->str[nm->n] = xmalloc(len + 1);
		memcpy(nm->str[nm->n], tok, len);
		nm->str[nm->n][len] = '\0';
		nm->h[nm->n++] = h;
	}
	return rc;
}

int
bayes_explain(struct bayes *b, const struct msgview		       *mv,
    void (*cb)(void *, const char *, uint64_t, uint64_t, double), void *arg,
    char *err, size_t errlen)
{
	struct named	  nm;
	struct store_rec *recs;
	const void	**keys;
	size_t		 *lens, i;
	uint64_t	  ns, nh;
	int		  rc = -1;

	if (totals(b, &ns, &nh, err, errlen) == -1)
		return -1;
	memset(&nm, 0, sizeof(nm));
	nm.t.b = b;
	bayes_tokenize(mv, &b->tok_opts, named_cb, &nm);
	keys = xcalloc(nm.n + 1, sizeof(*keys));
	lens = xcalloc(nm.n + 1, sizeof(*lens));
	recs = xcalloc(nm.n + 1, sizeof(*recs));
	for (i = 0; i < nm.n; i++) {
		keys[i] = &nm.h[i];
		lens[i] = sizeof(nm.h[i]);
	}
	if (nm.n > 0 &&
	    store_get(b->tok, keys, lens, nm.n, recs, err, errlen) == -1)
		goto done;
	for (i = 0; i < nm.n; i++) {
		uint64_t s = recs[i].found && recs[i].v[0] > 0
		    ? (uint64_t)recs[i].v[0]
		    : 0;
		uint64_t h = recs[i].found && recs[i].v[1] > 0
		    ? (uint64_t)recs[i].v[1]
		    : 0;

		cb(arg, nm.str[i], s, h, bayes_token_prob(s, h, ns, nh));
	}
	rc = 0;
done:
	for (i = 0; i < nm.n; i++)
		free(nm.str[i]);
	free(nm.str);
	free(nm.h);
	free(nm.t.slot);
	free(keys);
	free(lens);
	free(recs);
	return rc;
}

int
bayes_stats(struct bayes *b, uint64_t *ns, uint64_t *nh, uint64_t *ntok,
    char *err, size_t errlen)
{
	long long c;

	if (totals(b, ns, nh, err, errlen) == -1)
		return -1;
	if ((c = store_count(b->tok)) < 0) {
		strfmt(err, errlen, "cannot count tokens");
		return -1;
	}
	*ntok = (uint64_t)c;
	return 0;
}
