/*
 * smtp_client.h - a small blocking SMTP client for the moat tool: one
 * message, one connection, commands in lock-step (no PIPELINING), every
 * wait bounded by a timeout. It re-injects quarantined messages, so it
 * sends the message as it is, with its original envelope.
 *
 * Not for moatd: it blocks. Each struct smtp_client is used by one thread;
 * the functions keep no global state.
 */
#ifndef MOAT_SMTP_CLIENT_H
#define MOAT_SMTP_CLIENT_H

#include <stddef.h>
#include <sys/socket.h>

#include "reply.h"

/* RFC 5321 §4.5.3.2 timeouts (seconds); connecting: 30 s. */
#define SMTPC_TIMEOUT_CONNECT 30
#define SMTPC_TIMEOUT_REPLY   300 /* greeting, EHLO, MAIL, RCPT */
#define SMTPC_TIMEOUT_DATA    120 /* reply to DATA */
#define SMTPC_TIMEOUT_BLOCK   180 /* each write of the content */
#define SMTPC_TIMEOUT_FINAL   600 /* reply to the final dot */
#define SMTPC_TIMEOUT_QUIT    30

struct smtp_client;

/* Connect; NULL with the reason in err. */
struct smtp_client *smtpc_connect(
    const struct sockaddr *, socklen_t, int timeout, char *err, size_t errlen);
/*
 * Read one complete (possibly multi-line) reply within timeout seconds.
 * 0, or -1 (connection error, timeout, malformed or oversized reply; see
 * smtpc_error).
 */
int smtpc_reply(struct smtp_client *, struct smtp_reply *, int timeout);
/*
 * Send one command line (CRLF added; a line containing CR or LF is
 * refused) and read its reply. 0 or -1 as smtpc_reply.
 */
int smtpc_command(struct smtp_client *, struct smtp_reply *, int timeout,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* The last error of this client, "" if none. */
const char *smtpc_error(const struct smtp_client *);
void	    smtpc_close(struct smtp_client *);

/* ------------------------------------------------------------ message */

struct smtp_envelope {
	const char	  *helo;   /* our name for EHLO/HELO */
	const char	  *sender; /* mailbox; "" = null sender */
	const char *const *rcpts;
	size_t		   nrcpts;
};

struct smtp_result {
	int    delivered; /* the final dot got 2xx */
	size_t accepted;  /* recipients accepted */
	char **refused;	  /* nrcpts entries: NULL, or the refusal (malloc'd) */
	size_t nrcpts;
	/* Where it ended: "connect", "greeting", "EHLO", "HELO", "MAIL",
	 * "RCPT", "DATA", "end of data", or "" when delivered. */
	const char *stage;
	/* The deciding reply (the final dot's, or the failure's), every line
	 * with its code, lines joined with "\n", controls replaced; or the
	 * local error. last points to its last line. */
	char	    reply[REPLY_TEXT_MAX];
	const char *last;
	char	    warning[256]; /* e.g. 8-bit content without 8BITMIME */
};

/*
 * Deliver the message read from fd (a plain RFC 5322 message; bare LF and
 * bare CR are sent as CRLF, lines are dot-stuffed, a missing final line
 * end is added) to the server at addr: greeting, EHLO (HELO if refused),
 * MAIL FROM with SMTPUTF8 when an address is not ASCII (required of the
 * server), BODY=8BITMIME when the content has 8-bit bytes and the server
 * offers it, SIZE when offered, RCPT TO each recipient, DATA, content,
 * QUIT. fd must be seekable (it is read twice). Returns 0 when the
 * message was delivered to at least one recipient (res->accepted <
 * res->nrcpts when some were refused), -1 otherwise. smtp_result_free()
 * in both cases.
 */
int  smtp_send_message(const struct sockaddr *, socklen_t,
     const struct smtp_envelope *, int fd, struct smtp_result *);
void smtp_result_free(struct smtp_result *);

#endif
