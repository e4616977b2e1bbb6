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

struct listener_conf {
	char		       *spec; /* as written */
	struct sockaddr_storage ss;
	socklen_t		sslen;
	enum proxy_proto_mode	proxy_protocol;
	struct cidr		trusted[LISTENER_TRUSTED_MAX];
	size_t			ntrusted;
};

enum xclient_mode {
	XCLIENT_AUTO = 0, /* use XCLIENT if offered, else XFORWARD */
	XCLIENT_XFORWARD, /* only XFORWARD */
	XCLIENT_OFF
};

enum bare_policy { BARE_REJECT = 0, BARE_NORMALIZE };

#define FILTERS_MAX 16

struct filter_conf {
	char *name; /* section title: which filter */
	/* Test filter options (filters/testfilter.c). */
	char *delay_stage;
	long  delay_ms;
	char *reject_rcpt;
	char *tempfail_stage;
	char *reject_stage;
	long  timeout_ms;
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
	char		       *spool_dir;
	char		       *user; /* "" = keep the current user */
	uid_t			uid;
	gid_t			gid;
	struct filter_conf	filters[FILTERS_MAX];
	size_t			nfilters;
	long			limits[LIM_COUNT];
};

#define LIMIT(cf, id) ((cf)->limits[LIM_##id])

/*
 * Overrides from the command line, applied after the file is read.
 */
struct config_overrides {
	const char *listen[16];
	size_t	    nlisten;
	const char *upstream;
};

/*
 * Read file (NULL: defaults only), apply overrides, validate everything.
 * On failure prints every problem as "file:line: reason" to stderr and
 * returns NULL. Blocking (file I/O, name resolution): start-up/reload only.
 */
struct config *config_load(const char *file, const struct config_overrides *);
void	       config_free(struct config *);

/* Parse a value with the unit suffixes of `unit`; -1 on syntax error. */
int limit_parse_value(enum limit_unit unit, const char *s, long *out);

/* Print every limit with its default and bounds (moatd -L). */
void config_print_limits(void);

#endif
