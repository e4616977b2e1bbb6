/*
 * filter_api.h - the interface between moat's SMTP sessions and its
 * milter-style filters (see ../shared/STYLE.md §9).
 *
 * Stages come in milter order. A filter's stage callback runs on the
 * session's event-loop thread and must not block; it answers at once
 * (CONTINUE, ACCEPT, REJECT, TEMPFAIL, DISCARD) or later (PENDING, then
 * exactly one filter_complete() with the token it was given, on the same
 * loop thread). If the client leaves or the stage times out first, the
 * filter's cancel() is called with the cookie it set, and the filter must
 * not complete that call afterwards; a completion that arrives anyway (for
 * example from another thread, through loop_post) finds no session with
 * that id and call number and is dropped.
 *
 * Issue 4 grows this into the full plugin API (evidence, header edits,
 * worker pool, shared objects); this is the core's hook-point contract.
 */
#ifndef MOAT_FILTER_API_H
#define MOAT_FILTER_API_H

#include <stddef.h>
#include <stdint.h>

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

enum filter_verdict {
	FILTER_CONTINUE = 0, /* no objection; next filter */
	FILTER_ACCEPT,	     /* skip the remaining filters for this message */
	FILTER_REJECT,	     /* 5xx; at RCPT for that recipient only */
	FILTER_TEMPFAIL,     /* 4xx */
	FILTER_DISCARD,	     /* 250 to the client, never forwarded */
	FILTER_PENDING	     /* filter_complete() follows */
};

struct filter_reply {
	int  code;	/* 0: the session's default for the verdict */
	char enh[16];	/* "5.7.1"; "" for the default */
	char text[256]; /* single line, sanitised by the session */
};

/* Identifies one pending call; plain value, copy it freely. */
struct filter_token {
	struct loop *loop;
	uint64_t     sid;
	uint64_t     call;
};

/* What a stage sees. Borrowed: valid only during the callback. */
struct filter_env {
	uint64_t    sid;
	const char *client_addr;
	int	    client_port;
	const char *helo;      /* NULL before HELO/EHLO */
	const char *mail_from; /* MAIL and later; "" = null sender */
	const char *rcpt;      /* RCPT: the recipient being added */
	const char *hdr_name;  /* HEADER */
	const char *hdr_value; /* HEADER: raw, folding kept */
	const char *body;      /* BODY */
	size_t	    bodylen;
	size_t	    size; /* EOM: content bytes */
};

struct filter_call {
	enum filter_stage	 stage;
	const struct filter_env *env;
	struct filter_token	 token;
	void			*cookie; /* set by a PENDING filter */
};

struct filter_ops {
	const char *name;
	uint32_t    stages; /* FILTER_STAGE_BIT()s it wants */
	/* Configuration time, main thread. */
	int (*init)(const struct filter_conf *, void **ctx);
	void (*fini)(void *ctx);
	/* Loop thread. reply may be filled for REJECT/TEMPFAIL. */
	enum filter_verdict (*stage)(
	    void *ctx, struct filter_call *, struct filter_reply *);
	void (*cancel)(void *ctx, void *cookie);
};

/*
 * Complete a PENDING call (loop thread of token->loop only). reply may be
 * NULL. Safe to call for a session that no longer exists.
 */
void filter_complete(const struct filter_token *, enum filter_verdict,
    const struct filter_reply *);

extern const struct filter_ops testfilter_ops;

#endif
