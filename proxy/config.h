/*
 * config.h - moatd's configuration: one file read by libconfuse, validated
 * as a whole, with every limit in one table (name, default, bounds).
 *
 * A struct config is built once (start-up) and then read-only: every
 * thread may read it without locks. A reload builds a new one.
 */
#ifndef MOAT_CONFIG_H
#define MOAT_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "addr.h"

enum limit_id {
	LIM_MAX_CONNECTIONS = 0,
	LIM_MAX_CONNECTIONS_PER_IP,
	LIM_MAX_LINE_LENGTH,
	LIM_MAX_ERRORS,
	LIM_MAX_JUNK_COMMANDS,
	LIM_MAX_RECIPIENTS,
	LIM_MAX_MESSAGES_PER_SESSION,
	LIM_MAX_MESSAGE_SIZE,
	LIM_MAX_HEADER_COUNT,
	LIM_MAX_HEADER_SIZE,
	LIM_MAX_RECEIVED_HEADERS,
	LIM_SPOOL_MEMORY,
	LIM_PROXY_PROTOCOL_TIMEOUT,
	LIM_COMMAND_TIMEOUT,
	LIM_DATA_TIMEOUT,
	LIM_DATA_TOTAL_TIMEOUT,
	LIM_UPSTREAM_CONNECT_TIMEOUT,
	LIM_UPSTREAM_COMMAND_TIMEOUT,
	LIM_UPSTREAM_DATA_TIMEOUT,
	LIM_UPSTREAM_PROBE_INTERVAL,
	LIM_UPSTREAM_POOL_SIZE,
	LIM_UPSTREAM_POOL_IDLE,
	LIM_FILTER_TIMEOUT,
	LIM_DRAIN_TIMEOUT,
	LIM_LISTEN_BACKLOG,
	LIM_THREADS,
	LIM_WORKER_THREADS,
	LIM_WORKER_QUEUE,
	LIM_TLS_HANDSHAKE_TIMEOUT,
	LIM_TLS_SESSION_LIFETIME,
	LIM_MAX_AUTH_FAILURES,
	LIM_AUTH_FAILURES_PER_IP,
	LIM_AUTH_FAILURE_WINDOW,
	LIM_DNS_TIMEOUT,
	LIM_DNS_MAX_QUERIES,
	LIM_DNS_CACHE_SIZE,
	LIM_DNS_THREAD_CACHE_SIZE,
	LIM_DNS_THREAD_CACHE_MIN_TTL,
	LIM_DNS_THREAD_CACHE_MAX_TTL,
	LIM_COUNT /* must stay last */
};

enum limit_unit {
	UNIT_COUNT = 0,
	UNIT_BYTES,   /* accepts k, M, G suffixes (powers of 1024) */
	UNIT_SECONDS, /* accepts s, m, h suffixes */
	UNIT_MSEC     /* accepts ms, s, m suffixes */
};

struct limit_def {
	const char     *name;
	enum limit_unit unit;
	long		def, min, max;
	const char     *doc;
};

extern const struct limit_def limit_defs[LIM_COUNT];

enum proxy_proto_mode {
	PROXY_PROTO_OFF = 0,
	PROXY_PROTO_V1,
	PROXY_PROTO_V2,
	PROXY_PROTO_ANY
};

#define LISTENER_TRUSTED_MAX 64

/* Client-side TLS of a listener. */
enum listener_tls {
	LTLS_OFF = 0,
	LTLS_STARTTLS, /* offered when a certificate is configured */
	LTLS_REQUIRED, /* STARTTLS before MAIL (and AUTH) */
	LTLS_IMPLICIT  /* TLS from the first byte (RFC 8314) */
};

/* AUTH relay on a listener (RFC 4954): offered when the upstream does. */
enum listener_auth {
	LAUTH_OFF = 0,
	LAUTH_TLS,   /* only inside TLS (RFC 4954 §4's advice) */
	LAUTH_ALWAYS /* also in plaintext (a trusted network) */
};

#define DNS_FORWARDERS_MAX 8

/* The resolver (resolver.h); restart-only, like the upstream. */
struct dns_conf {
	char *forwarders[DNS_FORWARDERS_MAX]; /* "addr[@port]"; none: recurse */
	size_t nforwarders;
	char  *trust_anchor; /* DNSSEC root anchor file, or NULL */
};

struct listener_conf {
	char		       *spec; /* as written */
	struct sockaddr_storage ss;
	socklen_t		sslen;
	enum proxy_proto_mode	proxy_protocol;
	struct cidr		trusted[LISTENER_TRUSTED_MAX];
	size_t			ntrusted;
	enum listener_tls	tls;
	enum listener_auth	auth;
	int			line;
};

#define TLS_CERTS_MAX 16

/* A `tls_certificate "NAME" { ... }` section. */
struct tls_cert_conf {
	char *name;
	char *cert; /* PEM: leaf, then chain */
	char *key;  /* PEM private key (the cert file by default) */
	int   line;
};

enum starttls_injection { INJECT_CLOSE = 0, INJECT_REFUSE };
enum received_mode { RECEIVED_TLS = 0, RECEIVED_ALWAYS, RECEIVED_NEVER };
enum upstream_tls_mode { UTLS_NONE = 0, UTLS_OPPORTUNISTIC, UTLS_REQUIRED };

#define TLS_PINS_MAX 8

struct tls_conf {
	/* Server side (toward clients). */
	struct tls_cert_conf	certs[TLS_CERTS_MAX];
	size_t			ncerts;
	int			min_version; /* TLS1_x_VERSION */
	char		       *ciphers;     /* "" = OpenSSL's default */
	char		       *ciphersuites;
	char		       *groups;
	int			tickets;
	int			ask_ccert;
	enum starttls_injection injection;
	enum received_mode	received;
	/* Client side (toward the upstream). */
	enum upstream_tls_mode up_mode;
	char		      *up_ca_file; /* verify the chain; NULL: no */
	char		      *up_name;	   /* expected name (and SNI) */
	unsigned char	       up_pins[TLS_PINS_MAX][32]; /* SHA-256 */
	size_t		       up_npins;
	int		       up_min_version;
};

enum xclient_mode {
	XCLIENT_AUTO = 0, /* use XCLIENT if offered, else XFORWARD */
	XCLIENT_XFORWARD, /* only XFORWARD */
	XCLIENT_OFF
};

enum bare_policy { BARE_REJECT = 0, BARE_NORMALIZE };

#define FILTERS_MAX 16

/* A `filter "NAME" { ... }` section; options are free-form key = value. */
struct filter_conf {
	char  *name; /* section title: the instance's name */
	char  *type; /* which filter (default: the name) */
	char  *load; /* shared object, or NULL for a built-in one */
	long   timeout_ms;
	int    on_error; /* enum filter_on_error */
	char **keys, **values;
	size_t nopts;
	char  *file; /* where it was defined, for messages */
	int    line;
};

/* Policy actions, mildest first (policies/policy.h). */
enum policy_action {
	ACT_NONE = 0,	/* no action: forward as it is */
	ACT_ADD_HEADER, /* forward, with spam headers (and subject tag) */
	ACT_QUARANTINE, /* keep it in the quarantine; 250 to the client */
	ACT_DISCARD,	/* 250 to the client, dropped */
	ACT_TEMPFAIL,	/* 4xx */
	ACT_REJECT,	/* 5xx */
	ACT_ACCEPT,	/* allow: stop filtering, forward */
	ACT_COUNT	/* must stay last */
};

struct rule_conf {
	char		  *symbol;
	enum policy_action action;
	char		  *reply; /* "550 5.7.1 text", or NULL */
	int		   line;
};

enum list_kind_conf { LISTK_CLIENT = 0, LISTK_HELO, LISTK_SENDER, LISTK_RCPT };

struct list_conf {
	char		  *name;
	int		   kind; /* enum list_kind (policies/lists.h) */
	char		 **entries;
	size_t		   nentries;
	char		 **files;
	size_t		   nfiles;
	char		  *symbol;
	double		   score;
	enum policy_action action;
	char		  *reply;
	int		   line;
};

/* A `dkim_sign "DOMAIN" { ... }` section (proxy/dkim_sign.h). */
struct dkim_signer;
#define DKIM_SIGNERS_MAX 64

#define SCORE_OFF 1e9 /* a threshold that is not set */

struct group_conf {
	char		 *name;
	char		**recipients;
	size_t		  nrecipients;
	char		**recipient_files;
	size_t		  nrecipient_files;
	int		  authenticated; /* for authenticated (outbound) mail */
	char		**filters;	 /* NULL: every filter */
	size_t		  nfilters;
	double		  threshold[ACT_COUNT]; /* SCORE_OFF: not used */
	int		  early_reject;
	char		 *subject_tag;
	char		 *reply[ACT_COUNT]; /* NULL: the default */
	struct rule_conf *rules;
	size_t		  nrules;
	int		  line;
};

struct config {
	char		       *file; /* NULL: built-in defaults */
	char		       *hostname;
	char		       *banner; /* text after "220 hostname " */
	struct listener_conf   *listeners;
	size_t			nlisteners;
	char		       *upstream_spec;
	struct sockaddr_storage upstream;
	socklen_t		upstream_len;
	enum xclient_mode	xclient;
	enum bare_policy	bare_newline;
	enum bare_policy	nul_byte;
	int			chunking; /* offer CHUNKING to clients */
	int			helo_required;
	int			reverse_dns; /* look the client's name up */
	char		       *spool_dir;
	char		       *quarantine_dir;
	char		       *user; /* "" = keep the current user */
	uid_t			uid;
	gid_t			gid;
	struct filter_conf	filters[FILTERS_MAX];
	size_t			nfilters;
	/* Policy (policies/policy.h compiles it). */
	char		  *authserv_id;
	int		   auth_results; /* add Authentication-Results */
	char		  *spam_status_header;
	char		  *spam_score_header;
	int		   spam_headers_always;
	struct rule_conf  *rules;
	size_t		   nrules;
	struct list_conf  *lists;
	size_t		   nlists;
	struct group_conf *groups;
	size_t		   ngroups;
	struct tls_conf	   tls;
	struct dns_conf	   dns;
	/* DKIM signing of authenticated mail, in configuration order. */
	struct dkim_signer **dkim_signers;
	size_t		     ndkim_signers;
	long		     limits[LIM_COUNT];
};

#define LIMIT(cf, id) ((cf)->limits[LIM_##id])

/*
 * Overrides from the command line, applied after the file is read.
 */
struct config_overrides {
	const char *listen[16];
	size_t	    nlisten;
	const char *upstream;
	/* Start-up: take the DKIM signing keys of the same files from this
	 * configuration (read before privileges were dropped). */
	const struct config *keys_from;
};

/*
 * Read file (NULL: defaults only), apply overrides, validate everything.
 * On failure prints every problem as "file:line: reason" to stderr (or
 * the log, see config_errors_to_log()) and returns NULL. Blocking (file
 * I/O, name resolution): start-up (main thread) or reload (the reload
 * thread) only, never on an event loop. Calls are serialised (libconfuse's
 * parser has process-wide state); the result is immutable and may be read
 * from any thread.
 */
struct config *config_load(const char *file, const struct config_overrides *);
void	       config_free(struct config *);

/*
 * Send the calling thread's configuration errors to the log instead of
 * stderr (the reload thread of a daemon). Per thread, like the error
 * count config_load() keeps: config_load() and runtime_build() report on
 * the thread that runs them.
 */
void config_errors_to_log(int);
/* Report a problem found after parsing, as "moatd: file:line: ..."
 * (configuration thread: inside config_load() or runtime_build()). */
void config_report(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "550 5.7.1 Text" -> code, enhanced code ("" if none), text. 0 or -1. */
int config_reply_parse(
    const char *, int *code, char *enh, size_t enhlen, const char **text);
/* Action keyword <-> enum; -1 if unknown. */
int	    policy_action_parse(const char *);
const char *policy_action_name(enum policy_action);

/* Parse a value with the unit suffixes of `unit`; -1 on syntax error. */
int limit_parse_value(enum limit_unit unit, const char *s, long *out);

/* Print every limit with its default and bounds (moatd -L). */
void config_print_limits(void);

#endif
