/*
 * clamd.h - the antivirus filter's clamd backend: one connection per
 * message to a clamd the site runs (Unix or TCP socket), the message
 * streamed with INSTREAM (clamd's documented command: "zINSTREAM\0", then
 * chunks of a 4-byte network-order length and data, then a zero length),
 * dot-stuffing undone on the way so clamd sees the RFC 5322 message.
 *
 * Threading: loop thread only. clamd_scan() calls done exactly once, on
 * the same loop thread and never from inside clamd_scan(), unless
 * clamd_cancel() comes first. The reply handed to done is valid only
 * during the call.
 */
#ifndef MOAT_CLAMD_H
#define MOAT_CLAMD_H

#include <stddef.h>
#include <sys/socket.h>

#include "scanner.h" /* scanner_done_fn */

struct loop;

struct clamd_addr {
	struct sockaddr_storage sa;
	socklen_t		salen;
	char			spec[160]; /* as configured, for logs */
};

/*
 * "unix:/path", "/path", "host:port", "[v6]:port" (a host name is
 * resolved now, at configuration time). 0, or -1 with err set.
 */
int clamd_addr_parse(const char *, struct clamd_addr *, char *err, size_t);

struct clamd_req;
/* fd (always closed, now or when the scan ends) holds len bytes of wire
 * form. NULL with err set if the scan cannot start. */
struct clamd_req *clamd_scan(struct loop *, const struct clamd_addr *, int fd,
    size_t len, unsigned timeout_ms, scanner_done_fn done, void *arg,
    const char **err);
void		  clamd_cancel(struct clamd_req *);

/*
 * Turn one clamd reply ("stream: OK", "stream: NAME FOUND", "... ERROR")
 * into r (status, names). Exposed for the unit test. 0, or -1 when the
 * reply is not one of those.
 */
struct scan_reply;
int clamd_reply_parse(const char *, size_t, struct scan_reply *r);

#endif
