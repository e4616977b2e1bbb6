/*
 * bayes_tok.h - the Bayesian classifier's tokenizer: the words of one
 * decoded message (struct msgview) as the strings the classifier counts.
 *
 * Pure function of the view and the options; no allocation survives the
 * call; thread-safe (the view is read-only).
 */
#ifndef MOAT_BAYES_TOK_H
#define MOAT_BAYES_TOK_H

#include <stddef.h>

struct msgview;

struct bayes_tokopts {
	/* Header fields never tokenized (bayes_ignore_header), ASCII
	   case-insensitive names; on top of the built-in list. */
	const char *const *ignore_headers;
	size_t		   nignore;
	/* This site's host names: a Received field whose "by" host is one
	   of them only says where the message arrived, and is skipped. */
	const char *const *local_hosts;
	size_t		   nlocal;
};

/*
 * Bounds on the tokens emitted per region, as SpamAssassin's: body text
 * (Subject first), URIs, header fields. Tokens are at most
 * BAYES_TOKEN_MAX bytes (longer ones are cut short).
 */
#define BAYES_BODY_TOKENS   50000
#define BAYES_URI_TOKENS    10000
#define BAYES_HEADER_TOKENS 10000
#define BAYES_TOKEN_MAX	    200

/*
 * Call cb(arg, token, len) for each token of the view, duplicates
 * included, token not NUL-terminated and valid only during the call. The
 * callback returns nonzero to stop early. opts may be NULL.
 */
void bayes_tokenize(const struct msgview *, const struct bayes_tokopts *,
    int (*cb)(void *arg, const char *tok, size_t len), void *arg);

#endif
