/*
 * dkim_sign.h - DKIM signing of authenticated (outbound) mail (RFC 6376
 * §5, RFC 8463) on libopendkim: one signer per `dkim_sign` section of the
 * configuration, and the signing of one message as a worker-pool job.
 *
 * A signer is built at configuration time (key read and checked, a
 * libopendkim library handle with the section's header lists) and is
 * read-only afterwards: any thread may sign with it. It belongs to the
 * configuration that built it.
 */
#ifndef MOAT_DKIM_SIGN_H
#define MOAT_DKIM_SIGN_H

#include <stddef.h>

struct dkim_signer;
struct evbuffer;
struct spool;

#define DKIM_SIGN_MAX	      4	 /* signatures on one message */
#define DKIM_SIGN_HEADERS_MAX 64 /* names in headers / oversign */
#define DKIM_DOMAIN_MAX	      253

/*
 * Read and check the private key in keyfile (PEM; RSA of at least 1024
 * bits, or Ed25519) and build a signer for d=domain, s=selector. headers
 * and oversign are NULL-terminated lists of field names (headers NULL:
 * the default list). *group_other is set when the key file can be read
 * by group or others (the caller warns). Returns NULL with the reason in
 * err. Blocking (file I/O): configuration time only.
 */
struct dkim_signer *dkim_signer_new(const char *domain, const char *selector,
    const char *keyfile, const char *const *headers,
    const char *const *oversign, int *group_other, char *err, size_t errlen);
/*
 * The same with the key of `from` (already read and checked, from the
 * same file: start-up reads keys before dropping privileges and builds
 * the sessions' configuration afterwards).
 */
struct dkim_signer *dkim_signer_new_key_of(const struct dkim_signer *from,
    const char *domain, const char *selector, const char *const *headers,
    const char *const *oversign, char *err, size_t errlen);
void		    dkim_signer_free(struct dkim_signer *);

const char *dkim_signer_domain(const struct dkim_signer *);
const char *dkim_signer_selector(const struct dkim_signer *);
const char *dkim_signer_algorithm(const struct dkim_signer *);
const char *dkim_signer_keyfile(const struct dkim_signer *);

/* The default `headers` list, NULL-terminated. */
extern const char *const dkim_sign_default_headers[];

/*
 * The signers for a From domain: those of the longest configured domain
 * that is the From domain or a parent of it (case-insensitive), in
 * configuration order, at most max. Returns how many were stored.
 */
size_t dkim_signers_match(struct dkim_signer *const *v, size_t n,
    const char *from_domain, const struct dkim_signer **out, size_t max);

/*
 * Sign the message the upstream will receive: the header section in
 * prefix (wire form; NULL: none) followed by spool from byte off on,
 * without the final ".\r\n", dot-unstuffed. With each signer, one
 * DKIM-Signature field (CRLF line ends) is appended to sigs, in the
 * signers' order. Returns 0 (signed), 1 (the message has no header
 * section libopendkim could sign: not signed, why in err) or -1 (an
 * error: err says which). Any thread; the caller owns every argument
 * exclusively for the duration of the call.
 */
int dkim_sign_message(const struct dkim_signer *const *signers, size_t n,
    const char *id, struct evbuffer *prefix, struct spool *spool, size_t off,
    struct evbuffer *sigs, char *err, size_t errlen);

/*
 * Ed25519 signatures whose libopendkim state could not be freed (see the
 * leak note in dkim_sign.c); 0 with the library version it was written
 * for.
 */
unsigned long dkim_sign_ed_leaks(void);

#endif
