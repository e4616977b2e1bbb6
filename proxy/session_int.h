/*
 * session_int.h - the session and transaction structures, shared by
 * session.c (commands) and session_data.c (DATA/BDAT content, end of
 * message). Not for other modules.
 *
 * Ownership: a session owns its bufferevent, its upstream connection, its
 * transaction and its chain run; a transaction owns its strings, recipient
 * list, framer state and spool, all freed in tx_free() (one place).
 */
#ifndef MOAT_SESSION_INT_H
#define MOAT_SESSION_INT_H

#include <stdint.h>
#include <sys/socket.h>

#include "addr.h"
#include "chain.h"
#include "dataframe.h"
#include "evidence.h"
#include "hdredit.h"
#include "headers.h"
#include "policy.h"
#include "rdns.h"
#include "reply.h"
#include "spool.h"
#include "upstream.h"

struct bufferevent;
struct event;
struct evbuffer;
struct smtp_command;
struct tls_facts;
struct sasl_id;
typedef struct ssl_st SSL;

#define INPUT_HIGH  (128 * 1024) /* read high-water mark */
#define OUTPUT_HIGH (64 * 1024)	 /* stop taking commands above this */

#define RCPT_PIPE_MAX 32 /* RCPTs in flight toward the upstream */
struct upstream;
struct config;
struct listener_conf;
struct runtime;

enum session_state {
	S_PROXY = 0, /* waiting for a PROXY protocol header */
	S_CONNECT,   /* CONNECT stage, before the greeting */
	S_CMD,	     /* reading commands */
	S_DATA,	     /* reading DATA content */
	S_BDAT,	     /* reading a BDAT chunk */
	S_TLS,	     /* 220 to STARTTLS going out, or the TLS handshake */
	S_CLOSING    /* last reply being flushed */
};

/* The AUTH relay (session_auth.c). */
enum auth_state {
	AUTH_NONE = 0,
	AUTH_OPENING,  /* AUTH waits for the upstream connection */
	AUTH_UPSTREAM, /* a line is out, the upstream's reply awaited */
	AUTH_CLIENT    /* a 334 is out, the client's response awaited */
};

enum tx_failure {
	TXF_NONE = 0,
	TXF_BARE, /* bare CR / LF / NUL under "reject" */
	TXF_SIZE,
	TXF_HEADER, /* a header field too long / too many */
	TXF_HOPS,   /* too many Received: */
	TXF_SPOOL   /* local I/O error */
};

struct tx {
	unsigned num;
	char	*sender;    /* mailbox, "" for <> */
	char	*mail_line; /* as sent to the upstream */
	int	 mail_ok;   /* the upstream accepted MAIL */
	int	 smtputf8;
	char   **rcpts;
	size_t	 nrcpts, rcpts_cap;
	size_t	 rcpt_refused;

	/* Content. */
	int		 bdat; /* using BDAT */
	struct dataframe df;
	struct hdrparse	 hp;
	char		*hdrbuf;
	struct dotstuff	 ds;	/* content -> wire form */
	struct spool	 spool; /* wire form, as sent upstream */
	size_t		 size;	/* content bytes */
	enum tx_failure	 failed;
	int		 discard;
	size_t		 pump_off; /* wire offset given to filters */
	int		 pump_hdr_done;
	int		 pump_bol;	     /* decoder at beginning of line */
	char		*pump_buf;	     /* decoded (unstuffed) content */
	char		*pf_name, *pf_value; /* field for HEADER stage */
	int		 pf_ready;

	/* Policy. */
	struct evidence_set	   ev;
	const struct policy_group *group; /* fixed by the first recipient */
	struct hdr_edits	   edits;
	char			  *ar[AR_CLAUSES_MAX];
	size_t			   nar;
	struct policy_seen	   seen;  /* header facts for the policy */
	int			   allow; /* an allow rule fired */
	struct policy_decision	   decision;
	char			   qid[64]; /* quarantine id */
	int			   quarantining;
	/* DKIM signing (session_policy.c, dkim_sign.c). */
	unsigned nfrom;		   /* From fields seen */
	char	 from_domain[256]; /* of the first; "" if unparsable */
	int	 signing;	   /* a signing job has the spool */
	char	 dkim[160];	   /* signatures made, for the log */

	uint64_t t_start, t_data;
	char	 verdict[16];
	char	 final[128]; /* reply given, for the log */
};

struct session {
	uint64_t		    sid;
	struct loop		   *loop;
	const struct config	   *cf;
	const struct listener_conf *lc;
	struct bufferevent	   *bev;
	enum session_state	    state;
	SSL			   *ssl; /* client-leg TLS; the bev owns it */
	struct tls_facts	   *tls; /* after the handshake, else NULL */

	struct sockaddr_storage peer;
	socklen_t		peerlen;
	char			addr[ADDR_STRLEN];
	int			port;
	int			admitted;

	char	*helo;
	int	 esmtp;
	uint32_t advertised; /* CAPA_* offered in EHLO */
	uint64_t max_size;   /* SIZE offered */

	unsigned nerrors, njunk, nmessages, ntx;
	int	 waiting;    /* command in progress */
	int	 in_process; /* session_process() on stack */
	int	 again;
	int	 skip_line; /* discarding a too-long line */
	int	 output_full;

	struct event	*timer;	       /* deadline / PROXY wait */
	struct event	*rev;	       /* our own reads (session_recv) */
	long		 read_timeout; /* seconds; 0 = none */
	int		 read_paused;  /* input at its high-water mark */
	struct upstream *up;
	int		 up_opening;   /* handshake under way */
	int		 mail_waiting; /* MAIL waits for it */
	int		 up_dirty;     /* upstream tx open: RSET first */
	/* RCPTs pipelined to the upstream, oldest first (RFC 2920). */
	char		   *rq[RCPT_PIPE_MAX];
	size_t		    rq_head, rq_len;
	int		    rq_waiting; /* resume when rq drains */
	struct evbuffer	   *held;	/* local replies behind rq */
	struct tx	   *tx;
	struct runtime	   *rt;	     /* configuration generation, referenced */
	struct evidence_set sev;     /* CONNECT and HELO evidence */
	size_t		    ev_from; /* evidence index where a stage began */
	size_t		    sev_connect;   /* CONNECT's share of sev */
	const struct policy_group *rgroup; /* group of the RCPT under way */
	unsigned	  discard_all; /* DISCARD at CONNECT/HELO: 1 << stage */
	struct chain_run  chain;
	struct filter_env env;
	char		 *rcpt_line; /* RCPT waiting for filters */
	void (*cont)(
	    struct session *, enum filter_verdict, const struct filter_reply *);

	/* AUTH relay (session_auth.c). */
	enum auth_state auth_state;
	char	       *auth_line; /* AUTH waiting for the connection */
	struct sasl_id *auth_sid;  /* identity claimed in this exchange */
	char	       *auth_user; /* authenticated identity (env.auth) */
	unsigned	auth_failures;
	int		up_authed; /* s->up carried AUTH: never pooled */

	size_t bdat_left; /* bytes of this chunk to read */
	int    bdat_last;
	size_t bdat_size;
	int    bdat_discard; /* reading a refused chunk */

	/*
	 * The client's name (rdns.h), looked up from admission on. A filter
	 * stage that comes before the answer waits for it (rdns_parked),
	 * bounded by the lookup's own deadline.
	 */
	struct rdns	  rdns;
	int		  rdns_parked;
	enum filter_stage rdns_stage;
	void (*rdns_cont)(
	    struct session *, enum filter_verdict, const struct filter_reply *);

	uint64_t t_connect;
};

/* session.c */
void session_read_cb(struct bufferevent *, void *);
void session_write_cb(struct bufferevent *, void *);
void session_event_cb(struct bufferevent *, short, void *);
void session_free(struct session *);
void session_process(struct session *);
void session_greet(struct session *);
void session_set_timer(struct session *, long sec);
void session_reply(struct session *, int code, const char *enh, const char *fmt,
    ...) __attribute__((format(printf, 4, 5)));
void session_relay(struct session *, const struct smtp_reply *);
void session_error(struct session *);
void session_close(struct session *);
void session_flush(struct session *);
void session_set_read_timeout(struct session *, long sec);
void session_wait(struct session *);
void session_resume(struct session *);
void session_arm_command_deadline(struct session *);
void session_filter(struct session *, enum filter_stage,
    void (*cont)(
	struct session *, enum filter_verdict, const struct filter_reply *));
void session_filter_reply(struct session *, enum filter_verdict,
    const struct filter_reply *, int defcode, const char *defenh,
    const char *deftext);
void tx_free(struct session *);
void tx_log(struct session *, const char *verdict);
void session_drop_upstream(struct session *);
void session_release_upstream(struct session *);
void session_upstream_rset(struct session *);
void upstream_start(struct session *);

/* session_policy.c */
void sp_stage_check(struct session *, enum filter_stage, enum filter_verdict *,
    struct filter_reply *);
const struct policy_group *sp_group(struct session *);
void			   sp_tx_begin(struct session *);
void			   sp_helo_forget(struct session *);
void			   sp_tx_free(struct tx *);
void sp_header_seen(struct session *, const char *name, size_t namelen,
    const char *value, size_t valuelen);
/* End of message, the chain said CONTINUE: decide and act. */
void sp_eom(struct session *);
void sp_log_fields(struct session *, char *buf, size_t len);

/* session_tls.c */
int  session_tls_offered(const struct session *);
void cmd_starttls(struct session *, const struct smtp_command *);
int  session_tls_start(struct session *);
void session_tls_event(struct session *, short what);
void session_tls_timeout(struct session *);
void session_tls_log_fields(const struct session *, char *buf, size_t len);
int  session_received(const struct session *, struct evbuffer *out);

/* session_auth.c */
const char *session_auth_offer(const struct session *, char *buf, size_t len);
void	    cmd_auth(struct session *, const struct smtp_command *);
void	    session_auth_response(struct session *, const char *line);
void	    session_auth_abort(struct session *);
int	    session_auth_secret(const struct session *, const char *line);
size_t	    session_auth_line_max(struct session *, size_t max);
void	    session_auth_upstream_ready(struct session *, enum up_error);
int	    session_auth_lost(struct session *);
void	    session_auth_free(struct session *);

/* session_data.c */
void tx_abandon(struct session *, const char *verdict);
void tx_forward(struct session *, struct evbuffer *prefix, size_t off);
void data_begin(struct session *);
int  data_feed(struct session *);
int  bdat_feed(struct session *);
void data_end(struct session *);

#endif
