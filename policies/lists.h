/*
 * lists.h - allow/deny lists for the policy engine: client addresses
 * (IPv4/IPv6 addresses and CIDR networks), HELO names, sender and
 * recipient addresses/domains.
 *
 * Entries come from the configuration (list_add, one by one) or from files
 * (list_load_file, one per line). A list is built once, at configuration
 * time and on one thread; list_finish() then freezes it. A finished list is
 * read-only: every thread may match against it without locks. Adding to a
 * finished list, or matching an unfinished one, is a bug and fatal().
 *
 * Sizes: no limit but memory. Names are kept in a hash set (SipHash-2-4
 * with a random key per list, because lookups use strings chosen by the
 * client), so a lookup costs O(1) per candidate key and at most 127
 * candidates for the subdomain walk. Addresses become sorted, merged
 * ranges searched in O(log n).
 *
 * Ownership: the list owns everything it stores; entry strings passed in
 * are copied. Names are compared ASCII-case-insensitively; other bytes
 * (UTF-8) exactly.
 */
#ifndef MOAT_LISTS_H
#define MOAT_LISTS_H

#include <stddef.h>
#include <sys/socket.h>

/* Longest entry accepted by list_add, in bytes. */
#define LIST_ENTRY_MAX 512

enum list_kind {
	LIST_CLIENT = 0,
	LIST_HELO,
	LIST_SENDER,
	LIST_RECIPIENT,
	LIST_KIND_COUNT /* must stay last */
};

struct list;

struct list *list_new(enum list_kind);
/*
 * Add one entry. 0, or -1 with a reason in err (e.g. "\"10.0.0.300\" is not
 * an address or address/prefix"); the entry is quoted in the reason with
 * control and 8-bit bytes shown as \xHH, so the reason is safe to log.
 *
 * LIST_CLIENT: "192.0.2.1", "192.0.2.0/24", "2001:db8::/32",
 * "::ffff:192.0.2.1" (IPv4-mapped entries, with a prefix of at least 96
 * if any, are stored as IPv4). Host bits set beyond the prefix are
 * accepted and masked (Postfix does the same); prefixes out of range are
 * refused. Other IPv6 entries never match IPv4 clients, even "::/0".
 *
 * LIST_HELO: "mx.example.com" matches that name exactly (case-insensitive,
 * a trailing dot ignored on both sides); ".example.com" matches any name
 * strictly below example.com; "[192.0.2.1]" address literals match
 * literally (case-insensitive).
 *
 * LIST_SENDER / LIST_RECIPIENT: "user@example.com" exact address
 * (case-insensitive on the whole address, as Postfix lowercases keys);
 * "example.com" any address at exactly that domain; ".example.com" any
 * address in a subdomain of example.com; "user@" that local part at any
 * domain; "<>" the null sender (matched by the empty string ""). A trailing
 * dot on a domain is ignored on both sides.
 * Quoted local parts ("a b"@x) are compared as given (after lowercasing);
 * a space is allowed inside the quotes only. An address with no @ passed
 * to list_match_name is treated as a local part only ("postmaster"
 * matches "postmaster@" entries).
 *
 * Errors: empty entries, entries with whitespace (outside a quoted local
 * part) or control characters, entries longer than LIST_ENTRY_MAX bytes,
 * empty domain labels ("a..b"), "<address>" and "@domain" forms.
 */
int list_add(struct list *, const char *entry, char *err, size_t errlen);
/*
 * Read entries from a file: one per line, leading/trailing whitespace
 * trimmed, '#' starts a comment (whole line or after whitespace, outside a
 * quoted local part), blank lines ignored, CRLF tolerated, a UTF-8 BOM on
 * the first line skipped. Every bad line is reported through
 * errf(arg, path, lineno, reason) (errf may be NULL); a file that cannot be
 * opened or read is reported with lineno 0 and strerror. Returns the number
 * of errors (0 = fine). Good lines are added even when others are bad.
 */
int list_load_file(struct list *, const char *path,
    void (*errf)(void *arg, const char *file, int line, const char *reason),
    void *arg);
/* Call once after the last add/load: builds the lookup structures. */
void list_finish(struct list *);
/*
 * After list_finish only; thread-safe (read-only). 1 if it matches, 0 if
 * not, and 0 when the list is of the wrong kind or the argument is NULL.
 */
/* LIST_CLIENT; AF_INET, AF_INET6 (v4-mapped treated as v4) */
int list_match_addr(const struct list *, const struct sockaddr *);
/* the other kinds; the address without <> */
int list_match_name(const struct list *, const char *name);
/*
 * Which entry matched, for logs: copies the matching entry (as it was
 * normalised) into buf (truncated to buflen, always terminated if buflen >
 * 0); returns 1 if matched. Uses sa for LIST_CLIENT, name otherwise. When
 * several entries match, the most specific one is shown: for addresses the
 * longest prefix; for names the null sender, then the exact name or
 * address, the domain, the longest matching subdomain entry, the local
 * part. Normalised forms: "192.0.2.0/24" ("192.0.2.1" for a /32,
 * "2001:db8::1" for a /128), "mx.example.com", ".example.com",
 * "user@example.com", "user@", "<>".
 */
int list_explain(const struct list *, const char *name,
    const struct sockaddr *sa, char *buf, size_t buflen);
/* Distinct entries (duplicates counted once; for LIST_CLIENT exact after
 * list_finish, before it every accepted entry counts). */
size_t	       list_size(const struct list *);
enum list_kind list_kind(const struct list *);
void	       list_free(struct list *);

#endif
