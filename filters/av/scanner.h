/*
 * scanner.h - moat-scand as moatd sees it: one scanner process for the
 * whole daemon, started, watched and restarted by the main thread, and one
 * connection to it per loop thread over which the antivirus filter sends
 * messages to scan (filters/av/scanproto.h).
 *
 * Life cycle:
 *	scanner_config_begin()	before building a runtime (start, reload)
 *	scanner_config()	from the antivirus filter's init
 *		(both on the configuration thread: the main thread at
 *		start-up, the reload thread at a reload; they only fill the
 *		pending settings, which nothing else reads meanwhile)
 *	scanner_apply()		main thread, after the runtime it was built
 *				with is handed over and installed: starts the
 *				scanner, restarts it with a changed
 *				configuration, stops it when no filter wants
 *				it, or on a plain reload tells it (SIGHUP) to
 *				reload its signatures
 *	scanner_shutdown()	at exit (main thread, after the reload thread
 *				is joined)
 * A scanner that exits or is killed is restarted after a back-off (0.5 s
 * doubling to 30 s). A restart or a new configuration hands every loop a
 * new connection; scans in flight on the old one finish there (the old
 * process exits when all its connections are closed) or fail when it died.
 *
 * Scans (loop threads): scanner_scan() sends the message descriptor and
 * calls done once, on the same loop thread and never from inside
 * scanner_scan(), unless scanner_cancel() comes first. A scan that gets no
 * answer within its timeout fails, and the scanner is then taken for hung:
 * it is killed (SIGKILL) and restarted.
 */
#ifndef MOAT_SCANNER_H
#define MOAT_SCANNER_H

#include <stddef.h>

struct loop;
struct scan_reply;

struct scanner_spec {
	const char *path;     /* moat-scand */
	const char *database; /* -d */
	const char *tmpdir;   /* -T */
	unsigned    threads;  /* -t, 0: the scanner's default */
	const char *opts[16]; /* -o key=value, NULL-terminated */
};

void scanner_config_begin(void);
/* 0, or -1 with err set (a second, different scanner configuration). */
int  scanner_config(const struct scanner_spec *, char *err, size_t errlen);
void scanner_apply(
    struct loop *mainloop, struct loop **loops, unsigned n, int reload);
void scanner_shutdown(void);

/* reply is NULL when the scan failed; err then says why. */
typedef void (*scanner_done_fn)(
    void *arg, const struct scan_reply *reply, const char *err);

struct scanner_req;
/*
 * Send fd (always closed by this call) holding len bytes; flags are
 * SCAN_F_*. NULL with err set when it cannot be sent (no scanner, queue
 * full); done is then not called.
 */
struct scanner_req *scanner_scan(struct loop *, int fd, size_t len,
    unsigned flags, unsigned timeout_ms, scanner_done_fn done, void *arg,
    const char **err);
void		    scanner_cancel(struct scanner_req *);

#endif
