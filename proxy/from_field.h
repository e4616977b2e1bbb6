/*
 * from_field.h - the author domain of a From header field (RFC 5322
 * §3.6.2, §3.4): exactly one mailbox, or an error. See from_field.c.
 */
#ifndef MOAT_FROM_FIELD_H
#define MOAT_FROM_FIELD_H

#include <stddef.h>

#define FROM_FIELD_MAX	4096 /* a longer field is refused */
#define FROM_DOMAIN_MAX 256  /* a domain name and its NUL */

/*
 * The domain of the one mailbox in a From field's value (fieldlen
 * octets, folding kept or not): lower case, A-labels, no final dot, two or
 * more LDH labels, into dom. 0, or -1 with *why set (a static string
 * naming the problem: "From field with several addresses", ...).
 */
/* A domain name copied in lower case, final dots dropped, cut to outlen. */
void domain_lower(char *out, size_t outlen, const char *in);

int from_field_domain(const char *field, size_t fieldlen, char *dom, size_t len,
    const char **why);

#endif
