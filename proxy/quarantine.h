/*
 * quarantine.h - the quarantine store: one directory, two files per
 * message, <id>.eml (the plain RFC 5322 message, CRLF line ends) and
 * <id>.meta (UTF-8 text, one "key: value" per line, see below).
 * moatd stores; the moat tool lists, reads, releases and deletes.
 *
 * A message is visible once its .meta exists, and a visible .meta always
 * has its .eml: both are written under temporary names starting with '.',
 * fsync'd, renamed (.eml first, directory fsync'd, then .meta, directory
 * fsync'd again). Listing and reading ignore everything else in the
 * directory.
 *
 * .meta keys, in this order (helo and auth absent when unknown; rcpt and
 * evidence repeated):
 *	id        YYYYMMDDTHHMMSS-<16 hex> (UTC time of the message)
 *	time      seconds since the epoch
 *	date      RFC 5322 date, UTC
 *	sid       session id (hex)
 *	client    client address
 *	helo      HELO/EHLO argument
 *	sender    <mailbox>, or <> for the null sender
 *	rcpt      <mailbox>
 *	auth      authenticated identity
 *	score     %.2f
 *	action    e.g. quarantine
 *	reason    one line
 *	evidence  SYMBOL SCORE FILTER DETAIL (detail may be empty; then
 *	          the line ends after FILTER)
 * Every value is sanitised: CR, LF, NUL and other controls (and DEL)
 * become spaces, bytes that are not valid UTF-8 become '?', so a value
 * can never start a new line or a new key. In evidence lines, SYMBOL and
 * FILTER have their spaces replaced by '_' (an empty one is written "-").
 *
 * Threading: every function is reentrant (no global state) and blocking
 * (file I/O, fsync): in moatd, call them on a worker thread (workers.h).
 * quarantine_store() reads the spool, which must not be touched by its
 * owner meanwhile. Strings in a struct qentry are malloc'd and owned by
 * it; qentry_free() frees them.
 */
#ifndef MOAT_QUARANTINE_H
#define MOAT_QUARANTINE_H

#include <stddef.h>
#include <time.h>

struct spool;
struct evidence_set;

#define QUARANTINE_ID_MAX 64 /* including the NUL */

struct qmeta {
	time_t		   time;
	const char	  *sid; /* session id, hex */
	const char	  *client_addr;
	const char	  *helo;   /* may be NULL */
	const char	  *sender; /* mailbox, "" = null sender */
	const char *const *rcpts;
	size_t		   nrcpts;
	const char	  *auth; /* authenticated identity or NULL */
	double		   score;
	const char	  *action; /* "quarantine" */
	const char	  *reason; /* one line, e.g. "score 12.3 >= 10" */
	const struct evidence_set *evidence; /* may be NULL */
};

/*
 * Store a message. prefix/prefixlen (may be NULL/0) is wire-form header
 * text to put in front (dot-stuffed, CRLF), then the spool's content from
 * byte spool_off on (spool.h: canonical wire form, dot-stuffed, ending with
 * ".\r\n"). The .eml holds the plain message: dot-stuffing undone, the
 * final ".\r\n" dropped, CRLF kept. The directory is created (mode 0750)
 * if missing (one level). The id is made from meta->time (now if 0) and 8
 * random bytes, and written to idbuf (idlen >= QUARANTINE_ID_MAX is
 * enough). Returns 0, or -1 with the reason in err; on failure nothing is
 * left behind (temporary files are removed).
 */
int quarantine_store(const char *dir, const struct qmeta *, const char *prefix,
    size_t prefixlen, struct spool *sp, size_t spool_off, char *idbuf,
    size_t idlen, char *err, size_t errlen);

/*
 * One message's metadata as read back. sender and rcpts are bare mailboxes
 * ("" = null sender); helo and auth are NULL when absent; the other
 * strings are never NULL. evidence holds the lines' values as written
 * ("SYMBOL SCORE FILTER DETAIL").
 */
struct qentry {
	char   id[QUARANTINE_ID_MAX];
	time_t time;
	char  *sid, *client, *helo, *sender, **rcpts;
	size_t nrcpts;
	char  *auth;
	double score;
	char  *action, *reason;
	char **evidence;
	size_t nevidence;
};

/* 1 if id is a possible message id ([0-9A-Za-z-]+, bounded), else 0. */
int quarantine_id_valid(const char *id);

/*
 * Read <dir>/<id>.meta (the id is validated first: only [0-9A-Za-z-], so no
 * path traversal; the file's id must match). Unknown keys are ignored.
 * Returns 0, or -1 with the reason in err (q is then empty: qentry_free
 * is still safe).
 */
int quarantine_read(
    const char *dir, const char *id, struct qentry *, char *err, size_t errlen);
void qentry_free(struct qentry *);

/*
 * Ids of the visible messages (those with a .meta), sorted oldest first
 * (the id starts with the UTC time). Returns the count and sets *ids to
 * a malloc'd array of malloc'd strings (free each, then the array), or -1
 * with the reason in err. A missing directory is an empty quarantine.
 */
long quarantine_list(const char *dir, char ***ids, char *err, size_t errlen);

/*
 * Delete a message: the .meta first (it disappears at once), then the
 * .eml. -1 with err if the id is invalid or no such message exists.
 */
int quarantine_delete(
    const char *dir, const char *id, char *err, size_t errlen);

/* "<dir>/<id>.eml", malloc'd; NULL if the id is invalid. */
char *quarantine_eml_path(const char *dir, const char *id);

#endif
