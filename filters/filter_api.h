/*
 * filter_api.h - the plugin interface of moat's milter-style filters
 * (STYLE.md §9; filters/README.md has a walk-through and an example).
 *
 * A filter is a struct filter_ops: a name, the stages it wants, and
 * callbacks. Stages come in milter order (CONNECT, HELO, MAIL, RCPT once
 * per recipient, DATA, HEADER once per field, EOH, BODY in chunks, EOM),
 * plus two notifications without a verdict: reset (the transaction ended)
 * and close (the session ended).
 *
 * Threading. Every callback runs on the session's event-loop thread and
 * must not block. A stage answers at once (CONTINUE, ACCEPT, REJECT,
 * TEMPFAIL, DISCARD, ERROR) or later: it returns PENDING, and then calls
 * filter_complete() exactly once with the token it was given, on the same
 * loop thread. Blocking work (library calls, file I/O) goes to the worker
 * pool through filter_work(), whose done callback runs back on the loop
 * thread. If the client leaves or the stage times out first, cancel() is
 * called with the cookie the stage set; the filter must not complete that
 * call afterwards (a completion that arrives anyway finds no matching call
 * and is dropped).
 *
 * Evidence. A filter reports what it found with filter_evidence(): a
 * symbol, a score and a detail. It does not decide the SMTP outcome: the
 * policy engine does, from all the evidence (policies/policy.h). A filter
 * may still short-circuit: ACCEPT skips the remaining filters for the
 * message (an allow list), REJECT/TEMPFAIL/DISCARD end the transaction
 * (at RCPT: refuse that recipient only).
 *
 * Header changes (filter_header_*) are accepted at EOM only, as in milter.
 *
 * Failure. A stage returning ERROR, or timing out, gets the filter's
 * configured failure policy (on_error = continue | tempfail | reject;
 * default tempfail).
 *
 * Shared objects. An external filter is a shared object exporting
 *	const struct filter_ops *moat_filter(unsigned abi_version);
 * which returns NULL if it was built for another ABI; ops->abi must equal
 * FILTER_ABI_VERSION. The ABI changes whenever this header changes
 * incompatibly. Version 2 appended the client's reverse DNS to struct
 * filter_env (client_name, client_name_status, client_ptr), default rules
 * to struct filter_ops (rules) and filter_auth_results(): a filter built
 * for it must not run on a moatd without them.
 */
#ifndef MOAT_FILTER_API_H
#define MOAT_FILTER_API_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define FILTER_ABI_VERSION 2

struct loop;
struct filter_conf;

enum filter_stage {
	FILTER_STAGE_CONNECT = 0,
	FILTER_STAGE_HELO,
	FILTER_STAGE_MAIL,
	FILTER_STAGE_RCPT,   /* once per recipient */
	FILTER_STAGE_DATA,   /* DATA/first BDAT accepted, before 354 */
	FILTER_STAGE_HEADER, /* once per header field */
	FILTER_STAGE_EOH,
	FILTER_STAGE_BODY, /* chunks of CRLF content, dot-unstuffed */
	FILTER_STAGE_EOM,  /* whole message received */
	FILTER_STAGE_COUNT /* must stay last */
};

#define FILTER_STAGE_BIT(s) (1u << (s))
#define FILTER_STAGES_ALL   ((1u << FILTER_STAGE_COUNT) - 1)

enum filter_verdict {
	FILTER_CONTINUE = 0, /* no objection; next filter */
	FILTER_ACCEPT,	     /* skip the remaining filters for this message */
	FILTER_REJECT,	     /* 5xx; at RCPT for that recipient only */
	FILTER_TEMPFAIL,     /* 4xx */
	FILTER_DISCARD,	     /* 250 to the client, never forwarded */
	FILTER_PENDING,	     /* filter_complete() follows */
	FILTER_ERROR	     /* the filter failed: its on_error applies */
};

/* What happens when a filter errors or times out. */
enum filter_on_error {
	FILTER_ON_ERROR_TEMPFAIL = 0, /* 451 4.3.0 (default) */
	FILTER_ON_ERROR_CONTINUE,     /* go on without it */
	FILTER_ON_ERROR_REJECT	      /* 550 5.7.1 */
};

struct filter_reply {
	int  code;	/* 0: the policy's default for the verdict */
	char enh[16];	/* "5.7.1"; "" for the default */
	char text[256]; /* single line, sanitised by the session */
};

/* Identifies one pending call; plain value, copy it freely. */
struct filter_token {
	struct loop *loop;
	uint64_t     sid;
	uint64_t     call;
};

/*
 * The client's reverse DNS, looked up when the session starts (moat.conf
 * reverse_dns): its PTR names (at most 10), each confirmed when its A or
 * AAAA records lead back to the client address (forward-confirmed
 * reverse DNS, as Postfix and RFC 7208 §5.5 do). Known at every stage
 * from CONNECT on, unless UNCHECKED.
 */
enum filter_client_name {
	FILTER_NAME_UNCHECKED = 0, /* not looked up (reverse_dns = no) */
	FILTER_NAME_VERIFIED,	   /* client_name confirmed (or localhost) */
	FILTER_NAME_NONE,	   /* no PTR record (NXDOMAIN, NODATA) */
	FILTER_NAME_MISMATCH,	   /* PTR names, none confirmed */
	FILTER_NAME_TEMPFAIL	   /* timeout, SERVFAIL: may pass later */
};

/* What a stage sees. Borrowed: valid only during the callback. */
struct filter_env {
	uint64_t	       sid;
	const char	      *client_addr; /* numeric */
	int		       client_port;
	const struct sockaddr *client_sa;
	const char	      *helo;	  /* NULL before HELO/EHLO */
	const char	      *auth;	  /* authenticated identity, or NULL */
	const char	      *mail_from; /* MAIL and later; "" = null sender */
	const char	      *rcpt;	  /* RCPT: the recipient being added */
	const char *const     *rcpts;	  /* DATA and later: accepted ones */
	size_t		       nrcpts;
	const char	      *hdr_name;  /* HEADER */
	const char	      *hdr_value; /* HEADER: raw, folding kept */
	const char	      *body;	  /* BODY */
	size_t		       bodylen;
	size_t		       size;  /* EOM: content bytes */
	const char	      *group; /* policy group, RCPT and later */
	/* ABI 2: the client's reverse DNS (enum filter_client_name). */
	const char *client_name; /* confirmed name (VERIFIED), else NULL */
	int	    client_name_status;
	const char *client_ptr; /* first PTR name, confirmed or not, or NULL */
};

struct filter_call {
	enum filter_stage	 stage;
	const struct filter_env *env;
	struct filter_token	 token;
	void			*cookie; /* set by a PENDING filter */
	/*
	 * Per-session storage for this filter: kept from stage to stage,
	 * handed to close() at the end of the session.
	 */
	void **session_data;
};

/*
 * A rule a filter proposes for its own evidence, used where the
 * configuration has none for the symbol (neither the group's rules nor the
 * global ones): for example the dmarc filter's DMARC_REJECT -> reject.
 */
struct filter_rule {
	const char *symbol;
	const char *action; /* "reject", "quarantine", "add_header", ... */
	const char *reply;  /* "550 5.7.1 text", or NULL for the default */
};

struct filter_ops {
	unsigned    abi; /* FILTER_ABI_VERSION */
	const char *name;
	uint32_t    stages; /* FILTER_STAGE_BIT()s it wants */
	/*
	 * init: configuration time, on the configuration thread: the main
	 * thread at start-up (and moatd -t), a reload thread at a reload
	 * (SIGHUP), while the loops keep serving sessions with the previous
	 * instance of the same filter; never two configurations at once.
	 * It may block (files, compiles) but must not touch an event loop:
	 * no events on a loop's base, no resolver queries, no loop_post().
	 * State shared with other instances (library set-up, process-wide
	 * tables) must be safe against those loops and against fini() of
	 * an older instance, which runs on whichever thread drops the last
	 * reference to its runtime (usually a worker), possibly during the
	 * init of a newer one. Options come from the filter's section
	 * (filter_conf_get()); errors are reported with filter_conf_error()
	 * and make init return -1.
	 * options, if set, lists every option name the filter knows (NULL
	 * terminated); others are refused by moatd -t.
	 */
	const char *const *options;
	int (*init)(const struct filter_conf *, void **ctx);
	void (*fini)(void *ctx);
	/* Loop thread. reply may be filled for REJECT/TEMPFAIL. */
	enum filter_verdict (*stage)(
	    void *ctx, struct filter_call *, struct filter_reply *);
	void (*cancel)(void *ctx, void *cookie);
	/* Notifications (loop thread); both optional. */
	void (*reset)(void *ctx, void **session_data);
	void (*close)(void *ctx, void **session_data);
	/* Default rules, ended by a NULL symbol; optional. */
	const struct filter_rule *rules;
};

/* ---- configuration (init only) */

/* The value of option `key` in the filter's section, or NULL. */
const char *filter_conf_get(const struct filter_conf *, const char *key);
/* The section's title (instance name). */
const char *filter_conf_name(const struct filter_conf *);
/* Report a configuration error as "file:line: filter NAME: ...". */
void filter_conf_error(const struct filter_conf *, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- from a stage or a pending call (loop thread) */

/*
 * Complete a PENDING call. reply may be NULL. Safe to call for a session
 * that no longer exists or a call that timed out (dropped, logged).
 */
void filter_complete(const struct filter_token *, enum filter_verdict,
    const struct filter_reply *);

/*
 * Report evidence for the current call: symbol [A-Za-z0-9_.-], at most 63
 * characters; detail is printf-style, sanitised and cut at 255 bytes.
 * Returns 0, or -1 when the call is not current (late) or the set is full.
 */
int filter_evidence(const struct filter_token *, const char *symbol,
    double score, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * A method clause for Authentication-Results (RFC 8601), for example
 * "spf=pass smtp.mailfrom=example.org". MAIL and later (a transaction must
 * exist: a CONNECT/HELO result is reported at MAIL); written at EOM.
 */
int filter_auth_result(const struct filter_token *, const char *clause);

/*
 * The Authentication-Results clauses reported so far in this transaction
 * (by this and earlier filters, and at earlier stages): *n of them, valid
 * during the call. MAIL and later; NULL with *n = 0 otherwise. A filter
 * that builds on others' results (DMARC on SPF and DKIM) reads them here.
 */
const char *const *filter_auth_results(const struct filter_token *, size_t *n);

/*
 * Header changes, EOM only (-1 otherwise or if the name is invalid).
 * add: a new field at the top; append: at the end of the header;
 * change: the index-th (1-based) field of that name, value NULL deletes.
 * Values are sanitised and folded by moat. At most
 * FILTER_HEADER_EDITS_MAX changes per message (all filters together).
 */
#define FILTER_HEADER_EDITS_MAX 256
int filter_header_add(
    const struct filter_token *, const char *name, const char *value);
int filter_header_append(
    const struct filter_token *, const char *name, const char *value);
int filter_header_change(const struct filter_token *, const char *name,
    unsigned index, const char *value);

/*
 * EOM only: a descriptor of the message as received, to hand to another
 * process (an antivirus scanner) or to read from the worker pool. It is
 * readable from offset 0 for *len bytes, read-only, close-on-exec and
 * owned by the caller, who closes it. The content is in SMTP wire form:
 * CRLF lines, dot-stuffed, ending with ".\r\n"; undoing the stuffing
 * gives the RFC 5322 message. Header changes made by filters are not in
 * it. -1 outside EOM or on error (errno set).
 */
int filter_message_fd(const struct filter_token *, size_t *len);

/*
 * Run work(arg) on the worker pool, then done(token, arg) on the call's
 * loop thread. done always runs (even if the call was cancelled meanwhile:
 * free arg there; filter_complete() then does nothing). Returns 0, or -1
 * if the pool is full (answer ERROR or TEMPFAIL then).
 */
int filter_work(const struct filter_token *, void (*work)(void *arg),
    void (*done)(const struct filter_token *, void *arg), void *arg);

/* Built-in filters (filters/chain.c lists them). */
extern const struct filter_ops testfilter_ops;
extern const struct filter_ops listsfilter_ops;
extern const struct filter_ops spffilter_ops;
extern const struct filter_ops dkimfilter_ops;
extern const struct filter_ops dmarcfilter_ops;
extern const struct filter_ops avfilter_ops;
extern const struct filter_ops spamfilter_ops;

/*
 * Built-in filters that write files say where, so that moatd can make the
 * directories for its user while still root (proxy/runas.c): dir(arg,
 * path) once per directory the filter configured as fc writes in. Called
 * before init(), on options not yet checked: paths that are not absolute
 * are left out (init() refuses them).
 */
typedef void (*filter_dir_fn)(void *arg, const char *dir);
void spamfilter_dirs(const struct filter_conf *, filter_dir_fn, void *arg);
void dmarcfilter_dirs(const struct filter_conf *, filter_dir_fn, void *arg);

#endif
