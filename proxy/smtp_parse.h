/*
 * smtp_parse.h - strict, bounded parsing of SMTP command lines, paths and
 * ESMTP parameters (RFC 5321 §4.1.1-4.1.3, §4.5.3.1; RFC 6531 SMTPUTF8;
 * RFC 1870 SIZE; RFC 6152 8BITMIME; RFC 3030 BINARYMIME/BDAT; RFC 3461 DSN;
 * RFC 4954 AUTH=).
 *
 * Pure functions: no I/O, no allocation, no global state; safe from any
 * thread. Every output lives in caller-provided storage or points into the
 * caller's line, which must outlive the result. Inputs are NUL-terminated
 * lines without their CRLF; the caller has already refused bare CR, LF and
 * NUL in them.
 */
#ifndef MOAT_SMTP_PARSE_H
#define MOAT_SMTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define SMTP_LOCALPART_MAX 64  /* RFC 5321 §4.5.3.1.1 */
#define SMTP_DOMAIN_MAX	   255 /* RFC 5321 §4.5.3.1.2 */
#define SMTP_PATH_MAX	   256 /* RFC 5321 §4.5.3.1.3, with <> */
#define SMTP_PARAMS_MAX	   16  /* ESMTP parameters per command */

enum smtp_verb {
	SMTP_VERB_UNKNOWN = 0,
	SMTP_VERB_HELO,
	SMTP_VERB_EHLO,
	SMTP_VERB_MAIL,
	SMTP_VERB_RCPT,
	SMTP_VERB_DATA,
	SMTP_VERB_BDAT,
	SMTP_VERB_RSET,
	SMTP_VERB_NOOP,
	SMTP_VERB_QUIT,
	SMTP_VERB_HELP,
	SMTP_VERB_VRFY,
	SMTP_VERB_EXPN,
	SMTP_VERB_ETRN,
	SMTP_VERB_STARTTLS,
	SMTP_VERB_AUTH,
	SMTP_VERB_XCLIENT,
	SMTP_VERB_XFORWARD,
	SMTP_VERB_COUNT /* must stay last */
};

struct smtp_command {
	enum smtp_verb verb;
	/*
	 * Points into the line: the text after the verb and one space
	 * ("" when there is none). For MAIL and RCPT, the text after
	 * "FROM:" / "TO:" (the "FROM:"/"TO:" keyword itself is matched
	 * case-insensitively and is required, else SMTP_PARSE_ESYNTAX).
	 */
	const char *args;
	int	    has_args; /* the verb was followed by a space */
};

enum smtp_parse_error {
	SMTP_PARSE_OK = 0,
	SMTP_PARSE_ESYNTAX,  /* 501 5.5.2 / 5.5.4 */
	SMTP_PARSE_ETOOLONG, /* 501 5.5.4 / 553 5.1.3 path too long */
	SMTP_PARSE_EADDR,    /* 553 5.1.3 bad address syntax */
	SMTP_PARSE_EPARAM,   /* 555 5.5.4 malformed or duplicate parameter */
	SMTP_PARSE_ETOOMANY, /* 555 5.5.4 too many parameters */
	SMTP_PARSE_ECOUNT    /* must stay last */
};

/*
 * Split a command line into verb and arguments. The verb is matched
 * case-insensitively and must be followed by end of line or exactly one
 * space (extra spaces are tolerated before arguments, as Postfix does).
 * "MAIL FROM:" and "RCPT TO:" may have spaces neither inside the keyword
 * nor between the keyword and the colon. Unknown verbs give
 * SMTP_VERB_UNKNOWN with SMTP_PARSE_OK.
 */
int smtp_parse_command(const char *line, struct smtp_command *out);

/* Canonical upper-case name of a verb ("MAIL"); "UNKNOWN" for unknown. */
const char *smtp_verb_name(enum smtp_verb);

struct smtp_path {
	/*
	 * The mailbox exactly as the client wrote it, without the angle
	 * brackets and without any source route; "" for the null path <>.
	 * Quoted local parts keep their quotes and escapes.
	 */
	char	    mailbox[SMTP_PATH_MAX + 1];
	const char *domain;  /* into mailbox, after '@'; NULL if none */
	int	    is_null; /* <> */
	int	    utf8;    /* contains non-ASCII (needs SMTPUTF8) */
	/* Points into the argument: the text after '>' and spaces. */
	const char *rest;
};

#define SMTP_PATH_F_NULL_OK    0x01 /* accept <> (MAIL FROM) */
#define SMTP_PATH_F_POSTMASTER 0x02 /* accept <postmaster> (RCPT TO) */
#define SMTP_PATH_F_NOBRACKETS 0x04 /* accept a bare address w/o <> */

/*
 * Parse a Reverse-path or Forward-path (RFC 5321 §4.1.2): optional single
 * space, "<", optional source route "@a,@b:" (accepted and dropped, §C),
 * Mailbox, ">". Local-part is Dot-string or Quoted-string (with
 * quoted-pairs); the domain is a dotted sequence of sub-domains (LDH, no
 * leading/trailing hyphen) or an address literal ([IPv4], [IPv6:...],
 * [tag:content]). UTF-8 (valid, shortest-form sequences only) is accepted
 * in local-part and domain and sets out->utf8; the caller refuses it when
 * SMTPUTF8 was not given. Length limits as defined above.
 */
int smtp_parse_path(const char *arg, unsigned flags, struct smtp_path *out);

struct smtp_param {
	const char *key;   /* into the caller's buffer */
	const char *value; /* NULL when the parameter has none */
};

/*
 * Tokenise "KEY[=VALUE] KEY[=VALUE]..." in place (writes NULs into buf).
 * esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-"); esmtp-value =
 * 1*(%d33-60 / %d62-126 / UTF-8 non-ASCII). Empty buf gives *n = 0.
 * Duplicate keys (case-insensitive) are SMTP_PARSE_EPARAM.
 */
int smtp_parse_params(
    char *buf, struct smtp_param *params, size_t max, size_t *n);

/* Checks of the known parameters' values; 0 when valid, -1 when not. */
int smtp_param_size(const char *value, uint64_t *size); /* 1*20DIGIT */
int smtp_param_body(const char *value);	  /* 7BIT/8BITMIME/BINARYMIME */
int smtp_param_ret(const char *value);	  /* FULL / HDRS */
int smtp_param_notify(const char *value); /* NEVER / SUCCESS,FAILURE,DELAY */
int smtp_param_orcpt(const char *value);  /* addr-type ";" xtext */
int smtp_valid_xtext(const char *value, size_t maxlen); /* RFC 3461 §4 */

/*
 * The EHLO/HELO argument: a domain (as in paths, UTF-8 allowed) or an
 * address literal. Postfix-like leniency: a single trailing dot is
 * accepted. Returns 0 when valid.
 */
int smtp_valid_helo(const char *arg);

/*
 * Encode s as xtext (RFC 3461 §4: '+', '=', CTLs, SP and non-ASCII
 * become "+HH") into out (size outsz, NUL-terminated). Returns the length
 * written, or -1 when it does not fit.
 */
int smtp_xtext_encode(const char *s, char *out, size_t outsz);

#endif
