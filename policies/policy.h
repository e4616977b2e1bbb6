/*
 * policy.h - the policy engine: evidence in, one action out.
 *
 * A policy is compiled from the configuration (rules, lists, groups) and
 * is read-only afterwards, shared by every thread. It answers:
 *   - which policy group a recipient belongs to (by address, domain or
 *     subdomain; authenticated sessions use the groups marked
 *     authenticated), and which filters that group runs;
 *   - early, after each stage: does a rule on the new evidence decide now
 *     (accept, reject, tempfail, discard)?
 *   - at the end of the message: rules plus score thresholds give the
 *     action (the most severe one reached), with its SMTP reply.
 *
 * Severity, mildest first: none < add_header < quarantine < discard <
 * tempfail < reject. `accept` is an allow decision: it stops filtering and
 * forwards the message as it is; it is only ever taken from a rule.
 */
#ifndef MOAT_POLICY_H
#define MOAT_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct chain;
struct evidence_set;
struct list;
struct sockaddr;

struct policy;
struct policy_group;

struct policy_decision {
	enum policy_action action;
	int		   code;
	char		   enh[16];
	char		   text[256];
	char		   reason[128]; /* "rule VIRUS", "score 16.0 >= 15.0" */
	double		   score;
};

/* Compile. Problems are reported with config_report(); NULL then. */
struct policy *policy_new(const struct config *);
/* Compute each group's filter mask against the chain built for it. */
void policy_bind_chain(struct policy *, const struct chain *);
void policy_free(struct policy *);

const struct policy_group *policy_group_for(
    const struct policy *, const char *rcpt, int authenticated);
const char *policy_group_name(const struct policy_group *);
uint32_t    policy_group_mask(const struct policy_group *);
/* The lowest spam threshold in use (for "required=" in X-Spam-Status). */
double	    policy_group_required(const struct policy_group *);
const char *policy_group_subject_tag(const struct policy_group *);

/*
 * After a stage: look at evidence from index `from` on. The first entry
 * whose rule has a final action (accept, reject, tempfail, discard) decides
 * and 1 is returned with d filled (reply defaults depend on the stage).
 * With early_reject, a total score at or above the reject threshold
 * decides too. 0: nothing decided yet.
 */
int policy_early(const struct policy *, const struct policy_group *,
    struct evidence_set *, size_t from, int stage, struct policy_decision *);

/* End of message: every rule and every threshold; the most severe wins. */
void policy_final(const struct policy *, const struct policy_group *,
    struct evidence_set *, struct policy_decision *);

/* ---- the headers moat writes at the end of a message */

/* What the policy needs to know of the incoming header. */
struct policy_seen {
	int   our_ar;	/* an Authentication-Results with our authserv-id */
	int   spam_hdr; /* a field with one of our spam header names */
	char *subject;	/* the first Subject:, unfolded (owned) */
};
struct hdr_edits;
/* Called for every header field of the message as received. */
void policy_header_seen(const struct config *, struct policy_seen *,
    const char *name, size_t namelen, const char *value, size_t valuelen);
/*
 * Add moat's own header changes for decision d to edits: remove forged
 * Authentication-Results (our authserv-id) and add ours from the filters'
 * clauses (RFC 8601); spam status and score (replacing incoming ones of
 * the same names) when the action is add_header or quarantine, or always
 * if configured; the group's subject tag with add_header.
 */
void policy_headers(const struct config *, const struct policy_group *,
    const struct policy_decision *, const struct evidence_set *,
    const char *const *ar, size_t nar, const struct policy_seen *,
    struct hdr_edits *);

/* ---- lists, for the lists filter (policies/listsfilter.c) */
int    policy_has_lists(const struct policy *);
size_t policy_nlists(const struct policy *);
struct policy_list {
	const struct list *list;
	int		   kind; /* enum list_kind */
	const char	  *name;
	const char	  *symbol;
	double		   score;
	enum policy_action action;
};
const struct policy_list *policy_list_at(const struct policy *, size_t);

#endif
