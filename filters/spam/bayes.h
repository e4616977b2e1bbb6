/*
 * bayes.h - the Bayesian spam classifier: learning (bayes_learn,
 * bayes_forget) and classification (bayes_classify) of decoded messages
 * against token counts kept in moat's store (proxy/store.h).
 *
 * Arithmetic as SpamAssassin 4's Bayes with its chi-squared combiner
 * (Mail::SpamAssassin::Bayes::CombineChi), i.e. Gary Robinson's "A
 * statistical approach to the spam problem" (2003):
 *   p(w)  = s(w)*Nh / (s(w)*Nh + h(w)*Ns)   token spamminess from its spam
 *           and ham counts s, h and the messages learned Ns, Nh;
 *   f(w)  = (S*X + n*p(w)) / (S + n), n = s + h, S = 0.030, X = 0.538
 *           (Robinson's correction for rarely seen tokens);
 *   tokens with |f(w) - 0.5| < 0.346 are ignored, the 150 strongest kept;
 *   H = C^-1(-2 ln(Nh/N * prod f(w)), 2k), S = C^-1(-2 ln(Ns/N *
 *   prod(1 - f(w))), 2k) with C^-1 the inverse chi-square function and
 *   k the tokens kept, N = Ns + Nh (SA scales both products by the class
 *   priors);
 *   the probability of spam is (1 + H - S) / 2.
 * The classifier votes only after min_spam spam and min_ham ham messages
 * were learned (SA's bayes_min_spam_num/bayes_min_ham_num, 200 each).
 *
 * Store layout, tables "<prefix>.tokens", "<prefix>.seen", "<prefix>.meta"
 * (prefix "bayes"; another prefix gives another user its own classifier):
 *   tokens: key = SipHash-2-4 of the token string (8 bytes, native order)
 *           under a random key made at first use and kept in meta
 *           ("hashkey"); value {spam count, ham count, last learned (unix
 *           seconds, for a later expiry)}. A 64-bit hash makes collisions
 *           negligible (SA keeps 40 bits of SHA-1), and the secret key
 *           keeps senders from aiming tokens at chosen counters.
 *   seen:   key = the message's identity: SipHash of "mid:" + its
 *           Message-ID, or without one of "hb:" + every header field and
 *           the decoded text; value {class, when}. Learning is once per
 *           message; learning as the other class moves the counts;
 *           forgetting removes them.
 *   meta:   "totals" {spam messages, ham messages}; "hashkey" {k0, k1}.
 * Each learn/forget is one atomic store batch guarded by the message's
 * seen record (STORE_CHECK), so concurrent learners (moatd's autolearn,
 * moat learn) never count a message twice.
 *
 * Ownership and threading: a struct bayes borrows its store (which must
 * outlive it), is immutable after bayes_open() and may be used by any
 * number of threads at once. Every call blocks on the store: run it on a
 * worker thread.
 */
#ifndef MOAT_BAYES_H
#define MOAT_BAYES_H

#include <stddef.h>
#include <stdint.h>

#include "bayes_tok.h"

struct msgview;
struct store;

/* SpamAssassin's constants (CombineChi.pm, Plugin/Bayes.pm). */
#define BAYES_FW_S		0.030
#define BAYES_FW_X		0.538
#define BAYES_MIN_PROB_STRENGTH 0.346
#define BAYES_N_SIGNIFICANT	150
#define BAYES_MIN_SPAM		200
#define BAYES_MIN_HAM		200
#define BAYES_MAX_TOKENS	20000 /* unique tokens per message */

struct bayes_opts {
	const char	    *prefix;   /* table name prefix (default "bayes") */
	unsigned	     min_spam; /* 0 = BAYES_MIN_SPAM */
	unsigned	     min_ham;  /* 0 = BAYES_MIN_HAM */
	size_t		     max_tokens; /* 0 = BAYES_MAX_TOKENS */
	struct bayes_tokopts tok;	 /* copied */
};

enum bayes_class {
	BAYES_SPAM = 1,
	BAYES_HAM = 2,
};

/* What bayes_learn / bayes_forget did (or -1 on a store error). */
enum bayes_outcome {
	BAYES_LEARNED = 0, /* counted */
	BAYES_RELEARNED,   /* was counted as the other class; moved */
	BAYES_KNOWN,	   /* already counted as this class: nothing done */
	BAYES_FORGOTTEN,   /* removed */
	BAYES_UNKNOWN,	   /* forget: never learned */
};

struct bayes_result {
	double	 prob;	/* P(spam) in [0,1]; 0.5 when !voted */
	int	 voted; /* 1: trained enough and some token was useful */
	int	 ready; /* 1: trained enough (min_spam and min_ham) */
	uint64_t nspam; /* messages learned */
	uint64_t nham;
	unsigned ntokens; /* unique tokens of the message */
	unsigned nknown;  /* of them, in the store */
	unsigned nused;	  /* significant tokens combined */
};

struct bayes;

/*
 * Bind a classifier to a store (borrowed). opts may be NULL. NULL with a
 * reason in err.
 */
struct bayes *bayes_open(
    struct store *, const struct bayes_opts *, char *err, size_t errlen);
/* NULL is fine; returns NULL. */
struct bayes *bayes_free(struct bayes *);

/* Learn the message as `cls`: an enum bayes_outcome, or -1 (err). */
int bayes_learn(struct bayes *, const struct msgview *, enum bayes_class cls,
    char *err, size_t errlen);

/* Undo a learn: BAYES_FORGOTTEN, BAYES_UNKNOWN, or -1 (err). */
int bayes_forget(
    struct bayes *, const struct msgview *, char *err, size_t errlen);

/* Classify: 0 (see result->voted), or -1 (err). */
int bayes_classify(struct bayes *, const struct msgview *,
    struct bayes_result *, char *err, size_t errlen);

/*
 * What the classifier knows of each unique token of the message: cb(arg,
 * token, spam count, ham count, f(w) or -1 when unknown), in the order the
 * tokenizer found them. For people (moat learn --explain), not for speed.
 * 0 or -1 (err).
 */
int bayes_explain(struct bayes *, const struct msgview *,
    void (*cb)(void *arg, const char *tok, uint64_t s, uint64_t h, double p),
    void *arg, char *err, size_t errlen);

/* Messages learned and distinct tokens stored; 0 or -1 (err). */
int bayes_stats(struct bayes *, uint64_t *nspam, uint64_t *nham,
    uint64_t *ntokens, char *err, size_t errlen);

/* ---- the arithmetic, exposed for tests ---- */

/* f(w) for a token seen s times in spam and h in ham; -1 if s + h == 0
   or nspam or nham is 0. */
double bayes_token_prob(uint64_t s, uint64_t h, uint64_t nspam, uint64_t nham);

/* The inverse chi-square with 2*halfv degrees of freedom at x2 (SA's
   chi2q). */
double bayes_chi2q(double x2, unsigned halfv);

/* Fisher/Robinson combination of n token probabilities in (0,1). */
double bayes_combine(
    uint64_t nspam, uint64_t nham, const double *probs, size_t n);

#endif
