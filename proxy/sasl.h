/*
 * sasl.h - the little of SASL (RFC 4422) moat needs to relay SMTP AUTH
 * (RFC 4954) without taking part in it: mechanism names (RFC 4422 §3.1),
 * the base64 of the exchange (RFC 4648 §4), and the identity a client
 * claims in each common mechanism, so that the log and the policy can say
 * who authenticated while the credentials themselves are never kept.
 *
 * Pure functions, no I/O, no allocation; any thread. Every buffer that
 * held decoded client data is wiped before it goes out of scope.
 */
#ifndef MOAT_SASL_H
#define MOAT_SASL_H

#include <stddef.h>

#define SASL_MECH_MAX 20  /* RFC 4422 §3.1 */
#define SASL_ID_MAX   256 /* identities longer than this are cut */
/* RFC 4954 §4: an AUTH line or a response may be 12288 octets long. */
#define SASL_LINE_MAX 12288

/* 1 if name[0..len) is a mechanism name: 1-20 of A-Z 0-9 - _ (any case). */
int sasl_mech_valid(const char *name, size_t len);

/*
 * The mechanisms of an upstream's AUTH capability as moat may advertise
 * them: valid names only, upper-cased, duplicates dropped, space
 * separated. out is always NUL-terminated; returns how many.
 */
int sasl_mech_list(const char *in, char *out, size_t outsz);

/* 1 if `mech` (len bytes) is a word of the space-separated list. */
int sasl_mech_in(const char *list, const char *mech, size_t len);

/*
 * Decode base64 (padding required, no white space). Returns the decoded
 * length, or -1 when `in` is not base64 or out is too small. "" decodes
 * to nothing; "=" (RFC 4954's empty initial response) is handled by the
 * caller.
 */
long sasl_b64_decode(
    const char *in, size_t len, unsigned char *out, size_t outsz);

/*
 * The identity claimed in one exchange, fed every client response in
 * order (the initial response first when there was one), still in base64
 * as it came; "*" (cancel) is ignored. Known mechanisms: PLAIN (the
 * authorization identity if given, else the authentication identity),
 * LOGIN, CRAM-MD5, DIGEST-MD5, SCRAM-*, XOAUTH2, OAUTHBEARER, EXTERNAL,
 * ANONYMOUS ("anonymous"). Others (GSSAPI, NTLM, ...) leave it empty.
 * The identity is sanitised to printable characters (UTF-8 kept).
 */
struct sasl_id {
	char	 mech[SASL_MECH_MAX + 1];
	unsigned responses; /* client responses seen */
	int	 have;
	char	 id[SASL_ID_MAX];
};

void sasl_id_init(struct sasl_id *, const char *mech, size_t len);
void sasl_id_feed(struct sasl_id *, const char *b64, size_t len);

#endif
