/*
 * sa_received.h - the relays a message passed, from its Received fields
 * (RFC 5321 section 4.4 trace fields, as real MTAs write them), with the
 * outcome of SpamAssassin 4.0's Message::Metadata::Received: each relay's
 * ip, rdns, helo, by, ident, envfrom, id and auth; which relays are
 * trusted / internal (trusted_networks, or SpamAssassin's inference when
 * none are configured); and the X-Spam-Relays-* pseudo-header text
 * ("[ ip=... rdns=... helo=... by=... ident=... envfrom=... intl=0|1
 * id=... auth=... msa=0|1 ]" per relay, newest first).
 *
 * Ownership and threading: pure functions over caller-owned memory; a
 * struct sa_relays is filled by one thread (the rule engine keeps one
 * per scratch). Bounded: at most SA_RELAYS_MAX relays, each field cut at
 * SA_RCVD_MAXLEN bytes before parsing, every output field truncated to
 * its array.
 */
#ifndef MOAT_SA_RECEIVED_H
#define MOAT_SA_RECEIVED_H

#include <stddef.h>

struct cidr;

#define SA_RELAYS_MAX  40   /* relays kept per message (session + fields) */
#define SA_RCVD_MAXLEN 2048 /* a longer Received field is cut */

struct sa_relay {
	char	      ip[64];
	char	      rdns[128];
	char	      helo[128];
	char	      by[128];
	char	      ident[64];
	char	      envfrom[256];
	char	      id[96];
	char	      auth[64];
	unsigned char no_reverse_dns; /* the MTA looked, found no name */
	unsigned char ip_private;     /* 10/8, 127/8, 192.168/16, ... */
	unsigned char trusted, internal, msa;
};

enum sa_rcvd_kind {
	SA_RCVD_RELAY,	     /* *out filled */
	SA_RCVD_SKIP,	     /* a local handover, nothing to record */
	SA_RCVD_FETCHER,     /* a POP/IMAP fetch: skip, restart the trail */
	SA_RCVD_UNPARSEABLE, /* a network handover not understood */
};

/* Parse one Received field's value (unfolded or not). */
enum sa_rcvd_kind sa_received_parse(
    const char *value, size_t len, struct sa_relay *out);

/* 1 if the text is an IPv4 or IPv6 address in SpamAssassin's private
   ranges (IP_PRIVATE: 10/8, 127/8, 169.254/16, 172.16/12, 192.168/16,
   100.64/10, ::1, fe80::/10, fc00::/7, ...). */
int sa_ip_private(const char *ip);

/*
 * SpamAssassin's originating_ip_headers (X-Originating-IP & co): the
 * first address in the value becomes the Received-like line "from
 * X-Originating-IP: ADDR" in buf, to be walked after the Received
 * fields. Its length, or 0 when the value holds no address.
 */
size_t sa_originating_line(const char *v, size_t len, char *buf, size_t cap);

struct sa_trust {
	const struct cidr *nets; /* trusted_networks (loopback is implied) */
	size_t		   nnets;
	int		   configured; /* 0: infer (SpamAssassin's rules without
					  trusted_networks: private or authenticated
					  relays are trusted up to the first other) */
};

struct sa_relays {
	struct sa_relay r[SA_RELAYS_MAX]; /* newest first */
	size_t		n;
	size_t		ntrusted;	    /* r[0..ntrusted) are trusted */
	size_t		ninternal;	    /* r[0..ninternal) are internal */
	unsigned	unparseable;	    /* fields not understood */
	long		last_trusted_field; /* SpamAssassin's
					       last_trusted_relay_index:
					       Received fields (0-based) in
					       the trusted area, -1 none */
	long last_internal_field;	    /* the same, internal */
	long untrusted_field;		    /* index in `fields` of the first
					       untrusted relay's Received field
					       (its date is SpamAssassin's
					       "last external" time), or -1 */
};

/*
 * Build the relay trail: `session` (the SMTP client of this session, or
 * NULL) is the newest relay, trusted when session_trusted; then the
 * Received fields, newest first, are walked with SpamAssassin's trust
 * rules. `fields[i]` need not be NUL-terminated.
 */
void sa_relays_build(struct sa_relays *, const struct sa_relay *session,
    int session_trusted, const char *const *fields, const size_t *lens,
    size_t nfields, const struct sa_trust *);

/*
 * The pseudo-header text of relays [from, to) as SpamAssassin joins
 * them ("" when empty); truncated to fit, NUL-terminated. Returns the
 * length.
 */
size_t sa_relays_text(
    const struct sa_relays *, size_t from, size_t to, char *buf, size_t cap);

#endif
