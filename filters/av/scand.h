/*
 * scand.h - what the parts of moat-scand (scand.c: process, I/O and queue;
 * scand_opts.c: command line; scand_engine.c: the libclamav engine and its
 * reloads; scand_scan.c: one scan; scand_sandbox.c: privileges and
 * seccomp) share. See scand.c for the program's description.
 *
 * The options are filled once by main() before any thread starts and are
 * read-only afterwards. slog() is thread-safe (one write(2) per line).
 */
#ifndef MOAT_SCAND_H
#define MOAT_SCAND_H

#include <stddef.h>
#include <stdint.h>

#include "scanproto.h"

struct cl_engine;

enum sandbox_mode {
	SANDBOX_OFF = 0,
	SANDBOX_KILL, /* seccomp: a forbidden call kills the process */
	SANDBOX_LOG   /* seccomp: forbidden calls are only logged (audit) */
};

struct scand_opts {
	const char	 *dbpath;
	const char	 *tmpdir;
	const char	 *user;
	unsigned	  nfds;
	unsigned	  threads;
	unsigned	  queue_max;
	uint64_t	  max_scansize;
	uint64_t	  max_filesize;
	unsigned	  max_recursion;
	unsigned	  max_files;
	unsigned	  max_scantime; /* ms */
	int		  heuristics;
	int		  files;
	enum sandbox_mode sandbox;
	int		  selftest_forbidden;
};

extern struct scand_opts scand_opts;

/* "moat-scand[pid]: " + the formatted text + "\n", to stderr. */
void slog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Escape untrusted text for a key="..." log field (into out). */
const char *slog_esc(const char *s, char *out, size_t outsz);

/* scand_opts.c: fill scand_opts from the command line (exit 2 if bad) */
void parse_args(int argc, char **argv);

/* scand_engine.c */
int  engine_init(void);		     /* before any thread: cl_init & co. */
int  engine_start(void);	     /* the loader thread; first load */
void engine_reload(const char *why); /* coalesced */
/* The current engine with a reference, or NULL (loading/failed: why). */
struct cl_engine *engine_get(
    uint64_t *sigs, uint64_t *gen, char *why, size_t whysz);
void engine_put(struct cl_engine *);
/* For PING: 1 ready (sigs, gen set), 0 not ready (why set). */
int  engine_state(uint64_t *sigs, uint64_t *gen, char *why, size_t whysz);
int  engine_ready(void); /* an engine is loaded */
int  engine_busy(void);	 /* a load is running */
void engine_stop(void);	 /* join the loader, drop the engine */

/* scand_scan.c */
void scan_setup_engine(struct cl_engine *); /* callbacks, before compile */
/* Scan the request's descriptor (closed by the caller) into r. */
void scan_message(int fd, const struct scan_request *, struct scan_reply *r);

/* scand_sandbox.c */
int sandbox_drop_user(const char *user, const char *tmpdir);
int sandbox_harden(void); /* no_new_privs, no core dumps */
int sandbox_seccomp(enum sandbox_mode);

#endif
