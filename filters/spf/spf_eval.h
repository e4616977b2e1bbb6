/*
 * spf_eval.h - one SPF evaluation: RFC 7208 check_host() (§4-§7),
 * restartable so that it never waits for DNS.
 *
 * The evaluation answers every DNS question from the records it has been
 * given. A record it does not have yet is a "miss": the run stops, the
 * caller fetches the missing records however it likes (moat's
 * asynchronous resolver in the filter, a test zone in the conformance
 * test) and runs the evaluation again. Each run replays the same answers,
 * so it gets at least one step further, and the first run without a miss
 * gives the result. Questions that do not depend on each other (the
 * address records of an mx mechanism's hosts, of a ptr's names) are
 * missed together, so they are fetched in parallel. An evaluation asks at
 * most SPF_EVAL_MAX_QUERIES distinct questions and keeps at most
 * SPF_EVAL_MAX_BYTES of their records (beyond: permerror); the RFC's limits
 * keep a real one far below that.
 *
 * Why not libspf2: it passes 143 of the 203 cases of the RFC 7208 test
 * suite, rejects valid records (any /0 prefix), accepts invalid ones,
 * expands explanations wrongly, and its macro compiler carries an
 * unpatched integer underflow (CVE-2023-42118). Correcting it from outside
 * needs a strict record parser and a macro expander of our own, and with
 * those the evaluation itself is the smaller part. filters/spf/
 * CONFORMANCE.md has the suite's results.
 *
 * Pure code: no I/O, no locks, no globals except the receiver name set
 * once; an evaluation belongs to one thread at a time.
 */
#ifndef MOAT_SPF_EVAL_H
#define MOAT_SPF_EVAL_H

#include <stddef.h>
#include <sys/socket.h>

#include "dnsrr.h"

#define SPF_EVAL_MAX_QUERIES 200
#define SPF_EVAL_MAX_BYTES   (256 * 1024) /* record text kept */
#define SPF_DNS_TERMS_MAX    10		  /* RFC 7208 §4.6.4 */
#define SPF_VOID_LOOKUPS_MAX 2		  /* §4.6.4 */
#define SPF_MX_MAX	     10		  /* §4.6.4 */
#define SPF_PTR_MAX	     10		  /* §4.6.4, §5.5 */
#define SPF_MISSING_MAX	     16		  /* questions missed by one run */

enum spf_verdict {
	SPF_V_NONE = 0,
	SPF_V_NEUTRAL,
	SPF_V_PASS,
	SPF_V_FAIL,
	SPF_V_SOFTFAIL,
	SPF_V_TEMPERROR,
	SPF_V_PERMERROR
};

enum spf_identity {
	SPF_ID_MAILFROM = 0, /* RFC 7208 §2.4 */
	SPF_ID_HELO	     /* §2.3 */
};

/* One record of an answer, decoded as resolver.h's dns_record.text. */
struct spf_rr {
	char  *text;
	size_t len;
};

struct spf_answer {
	char		name[256];
	int		type;
	enum dns_status status;
	size_t		n;
	struct spf_rr  *rr;
};

struct spf_question {
	char name[256];
	int  type;
};

struct spf_eval {
	/* Input (spf_eval_new). */
	struct sockaddr_storage client; /* IPv4-mapped IPv6 made IPv4 */
	enum spf_identity	identity;
	char		       *helo;
	char		       *sender; /* as checked: postmaster@ added */
	char		       *receiver;
	long			now;
	/* The records given so far. */
	struct spf_answer *answers;
	size_t		   nanswers;
	size_t		   bytes;   /* record text kept */
	int		   too_big; /* an answer went past SPF_EVAL_MAX_BYTES */
	/* The questions the last run could not answer. */
	struct spf_question missing[SPF_MISSING_MAX];
	size_t		    nmissing;
	/* Counts of the last run. */
	unsigned terms; /* DNS-querying terms evaluated */
	unsigned voids;
	unsigned runs;
	/* Result, once spf_eval_run() returned 1. */
	enum spf_verdict result;
	char		*domain;	/* the domain checked */
	char		*explanation;	/* fail: the domain's exp= text */
	char		 mechanism[64]; /* the matching term, or "" */
	char		 problem[160];	/* why temperror/permerror/none */
};

/*
 * A new evaluation. client is AF_INET or AF_INET6; helo and sender may be
 * NULL or "" (the null sender: the HELO identity is checked, §2.4);
 * receiver names this host in explanations (%{r}).
 */
struct spf_eval *spf_eval_new(const struct sockaddr *client, enum spf_identity,
    const char *helo, const char *sender, const char *receiver);
void		 spf_eval_free(struct spf_eval *);

/*
 * Run: 1 when the result is known, 0 when records are missing (listed in
 * e->missing; give each with spf_eval_answer() and run again).
 */
int spf_eval_run(struct spf_eval *);

/* Give the answer to a question; rr may be NULL when n is 0. */
void spf_eval_answer(struct spf_eval *, const char *name, int type,
    enum dns_status, const struct spf_rr *rr, size_t n);

const char *spf_verdict_name(enum spf_verdict);

/*
 * RFC 7208 §12 syntax of one record ("v=spf1 ..."): 0 if valid, else -1
 * with the reason in why. Exposed for the fuzz target and unit tests.
 */
int spf_record_check(const char *record, size_t len, char *why, size_t whylen);

#endif
