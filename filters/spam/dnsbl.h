/*
 * dnsbl.h - DNS blocklist lookups for the spam filter: the client's
 * address against IP lists (RFC 5782 §2.1 IPv4, §2.4 IPv6 nibbles), the
 * HELO name, the envelope sender's domain and the From domains against
 * domain lists (RHSBL, RFC 5782 §2.2), the domains of the message's URIs
 * against URI lists (URIBL) — each answer tested against the list's
 * return codes (an exact address, a bit mask on 127.0.0.0/8 answers, or a
 * regular expression, as SpamAssassin's check_rbl / check_rbl_sub /
 * urirhssub subtests) and turned into rule names ("external hits" for the
 * rule engine).
 *
 * The lists come from the rule files, in SpamAssassin's syntax
 * (header X eval:check_rbl('set', 'zone.', 'subtest'), urirhssub ...);
 * the spam filter turns those into struct dnsbl_defs with dnsbl_add*().
 * Nothing is enabled unless a rule file names it and the filter's
 * dns_lists option is on.
 *
 * All queries of one message go out at once through moat's resolver
 * (proxy/resolver.h) and share one time budget: dnsbl_run_wait()'s
 * callback comes when every query answered or the budget ran out,
 * whichever is first; what did not answer by then does not fire.
 * Identical queries are asked once. Answers outside 127.0.0.0/8 are
 * ignored (RFC 5782 §2.1: a list answers within it); Spamhaus' and
 * URIBL's "refused" codes (127.255.255.x, 127.0.0.1 from a URI list) make
 * the list count as unusable for this message and are logged.
 *
 * Ownership and threading: a dnsbl_defs is built once (filter init) and
 * read-only afterwards, shared by all threads. A dnsbl_run belongs to one
 * message on one loop thread: create, add, wait and free it there.
 */
#ifndef MOAT_DNSBL_H
#define MOAT_DNSBL_H

#include <stddef.h>

struct loop;
struct dnsbl_defs;
struct dnsbl_run;

/* What a list is asked about. */
enum dnsbl_source {
	DNSBL_CLIENT_IP = 0, /* the connecting client's address */
	DNSBL_HELO,	     /* the HELO/EHLO name */
	DNSBL_ENVFROM,	     /* the MAIL FROM domain */
	DNSBL_FROM_HOST,     /* the domain part of each From address */
	DNSBL_FROM_DOMAIN,   /* the registrable domain of each From address */
	DNSBL_URI_DOMAIN,    /* the registrable domain of each URI host */
	DNSBL_SOURCE_COUNT
};

struct dnsbl_defs *dnsbl_defs_new(void);
void		   dnsbl_defs_free(struct dnsbl_defs *);

/*
 * A query rule: `symbol` fires when `zone` answers for the source and the
 * answer passes `subtest` (NULL: any 127.0.0.0/8 answer, or any TXT).
 * set names the query for check_rbl_sub rules (NULL: the symbol). qtype
 * is DNS_T_A or DNS_T_TXT. Subtests: "127.0.0.2" (equal), "12" (bit mask
 * over the whole address), anything else a PCRE2 pattern matched against
 * the answer's text. Returns 0, or -1 with the reason in err.
 */
int dnsbl_add(struct dnsbl_defs *, const char *symbol, enum dnsbl_source,
    const char *set, const char *zone, int qtype, const char *subtest,
    char *err, size_t errlen);
/* check_rbl_sub: symbol fires when an answer of `set` passes subtest. */
int    dnsbl_add_sub(struct dnsbl_defs *, const char *symbol, const char *set,
       const char *subtest, char *err, size_t errlen);
size_t dnsbl_defs_count(const struct dnsbl_defs *);
/* Does any rule ask about this source? (Skip collecting it if not.) */
int dnsbl_defs_wants(const struct dnsbl_defs *, enum dnsbl_source);

/* One message's lookups; max_queries bounds them (further ones dropped). */
struct dnsbl_run *dnsbl_run_new(struct loop *, const struct dnsbl_defs *,
    unsigned budget_ms, size_t max_queries);
/*
 * Ask every list about this source value (an address for
 * DNSBL_CLIENT_IP; a host or domain name otherwise). Values that cannot
 * be asked (private and link-local addresses, names that are not host
 * names) are ignored. The budget clock starts at the first query.
 */
void dnsbl_run_add(struct dnsbl_run *, enum dnsbl_source, const char *value);
/* cb once, on this loop thread, never from inside this call. */
void dnsbl_run_wait(struct dnsbl_run *, void (*cb)(void *arg), void *arg);

struct dnsbl_hit {
	const char *symbol;
	char	    detail[160]; /* "2.0.0.127.zen.example=127.0.0.2" */
};
/* The rules that fired so far (each symbol once). */
const struct dnsbl_hit *dnsbl_run_hits(const struct dnsbl_run *, size_t *n);
/* Queries asked, answered, timed out (for the log line). */
void dnsbl_run_counts(const struct dnsbl_run *, size_t *asked, size_t *answered,
    size_t *unanswered);
/* Cancel what is still asked, forget the callback, free. */
void dnsbl_run_free(struct dnsbl_run *);

/* ---- pure helpers, exposed for the unit tests */

/*
 * The query name for address `ip` (IPv4 dotted quad, IPv6 in any form;
 * IPv4-mapped IPv6 as IPv4) under zone: "4.3.2.1.zone" or 32 nibbles.
 * 0, or -1 if ip is no address, is private/link-local/unspecified, or the
 * name does not fit.
 */
int dnsbl_ip_qname(const char *ip, const char *zone, char *out, size_t len);
/* "name.zone", lower case, if name is a host name (RFC 1123); 0 or -1. */
int dnsbl_name_qname(const char *name, const char *zone, char *out, size_t len);

#endif
