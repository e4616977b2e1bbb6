/*
 * config.c - moat.conf(5): read with libconfuse, every limit from one table
 * with default and bounds, every error reported as "file:line: reason".
 *
 * Runs at start-up on the main thread and at a reload on the reload thread
 * (proxy/reload.c), never on an event loop: it may block (file I/O, host
 * name resolution). The resulting struct config is immutable.
 *
 * Threading: config_load() calls are serialised by load_mtx, since
 * libconfuse's lexer keeps process-wide state. The error count and where
 * errors go (stderr or the log) are per thread, so that the reload
 * thread's reports, including those of runtime_build() made on the same
 * thread, never leak into another thread's. The option table is built
 * once (pthread_once) and read-only afterwards. getpwnam_r(), not
 * getpwnam(): no static buffer shared with other threads.
 */
#include <arpa/inet.h>
#include <confuse.h>
#include <errno.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config.h"
#include "dkim_sign.h"
#include "from_field.h"
#include "escape.h"
#include "tls.h"
#include "log.h"
#include "util.h"

#define KIB 1024L
#define MIB (1024L * 1024)
#define GIB (1024L * 1024 * 1024)

const struct limit_def limit_defs[LIM_COUNT] = {
	[LIM_MAX_CONNECTIONS] = { "max_connections", UNIT_COUNT, 10000, 1,
	    1000000, "client connections in total" },
	[LIM_MAX_CONNECTIONS_PER_IP] = { "max_connections_per_ip", UNIT_COUNT,
	    50, 1, 1000000, "client connections per address" },
	[LIM_MAX_LINE_LENGTH] = { "max_line_length", UNIT_BYTES, 2048, 512,
	    64 * KIB, "command line length, CRLF included" },
	[LIM_MAX_ERRORS] = { "max_errors", UNIT_COUNT, 20, 1, 1000,
	    "errors per session before 421 and close" },
	[LIM_MAX_JUNK_COMMANDS] = { "max_junk_commands", UNIT_COUNT, 100, 1,
	    100000, "NOOP/RSET/VRFY/HELP/EXPN per session" },
	[LIM_MAX_RECIPIENTS] = { "max_recipients", UNIT_COUNT, 1000, 1, 100000,
	    "recipients per message" },
	[LIM_MAX_MESSAGES_PER_SESSION] = { "max_messages_per_session",
	    UNIT_COUNT, 1000, 1, 1000000, "transactions per session" },
	[LIM_MAX_MESSAGE_SIZE] = { "max_message_size", UNIT_BYTES, 50 * MIB,
	    1 * KIB, 4 * GIB, "message size in bytes (SIZE)" },
	[LIM_MAX_HEADER_COUNT] = { "max_header_count", UNIT_COUNT, 1000, 16,
	    100000, "header fields per message" },
	[LIM_MAX_HEADER_SIZE] = { "max_header_size", UNIT_BYTES, 64 * KIB,
	    1 * KIB, 1 * MIB, "bytes per header field, folded" },
	[LIM_MAX_RECEIVED_HEADERS] = { "max_received_headers", UNIT_COUNT, 100,
	    10, 1000, "Received: fields (mail loop detection)" },
	[LIM_SPOOL_MEMORY] = { "spool_memory_threshold", UNIT_BYTES, 256 * KIB,
	    0, 64 * MIB,
	    "message bytes held in memory before spooling to a file" },
	[LIM_PROXY_PROTOCOL_TIMEOUT] = { "proxy_protocol_timeout", UNIT_SECONDS,
	    10, 1, 300, "wait for a PROXY protocol header" },
	[LIM_COMMAND_TIMEOUT] = { "command_timeout", UNIT_SECONDS, 300, 1, 3600,
	    "wait for a whole command line (RFC 5321 4.5.3.2.7)" },
	[LIM_DATA_TIMEOUT] = { "data_timeout", UNIT_SECONDS, 180, 1, 3600,
	    "wait for each block of DATA (RFC 5321 4.5.3.2.5)" },
	[LIM_DATA_TOTAL_TIMEOUT] = { "data_total_timeout", UNIT_SECONDS, 3600,
	    10, 86400, "whole DATA/BDAT transfer of one message" },
	[LIM_UPSTREAM_CONNECT_TIMEOUT] = { "upstream_connect_timeout",
	    UNIT_SECONDS, 30, 1, 600, "connect and 220 greeting" },
	[LIM_UPSTREAM_COMMAND_TIMEOUT] = { "upstream_command_timeout",
	    UNIT_SECONDS, 300, 1, 3600, "each reply of the upstream" },
	[LIM_UPSTREAM_DATA_TIMEOUT] = { "upstream_data_timeout", UNIT_SECONDS,
	    600, 1, 3600,
	    "upstream reply to the final dot (RFC 5321 4.5.3.2.6)" },
	[LIM_UPSTREAM_PROBE_INTERVAL] = { "upstream_probe_interval",
	    UNIT_SECONDS, 60, 1, 86400,
	    "refresh of the upstream's capabilities" },
	[LIM_UPSTREAM_POOL_SIZE] = { "upstream_pool_size", UNIT_COUNT, 16, 0,
	    10000,
	    "idle upstream connections kept per thread for reuse; 0 = none" },
	[LIM_UPSTREAM_POOL_IDLE] = { "upstream_pool_idle", UNIT_SECONDS, 10, 1,
	    300, "how long an idle upstream connection is kept" },
	[LIM_FILTER_TIMEOUT] = { "filter_timeout", UNIT_MSEC, 30000, 10, 600000,
	    "default wait for one filter stage" },
	[LIM_DRAIN_TIMEOUT] = { "drain_timeout", UNIT_SECONDS, 30, 0, 3600,
	    "on SIGTERM, time sessions get to finish" },
	[LIM_LISTEN_BACKLOG] = { "listen_backlog", UNIT_COUNT, 4096, 16, 65535,
	    "listen(2) backlog" },
	[LIM_THREADS] = { "threads", UNIT_COUNT, 0, 0, 256,
	    "event-loop threads; 0 = one per core" },
	[LIM_WORKER_THREADS] = { "worker_threads", UNIT_COUNT, 4, 1, 256,
	    "threads for blocking work (filters, quarantine, DKIM signing)" },
	[LIM_WORKER_QUEUE] = { "worker_queue", UNIT_COUNT, 10000, 16, 1000000,
	    "jobs waiting for a worker before new ones are refused" },
	[LIM_TLS_HANDSHAKE_TIMEOUT] = { "tls_handshake_timeout", UNIT_SECONDS,
	    30, 1, 600, "a TLS handshake, client or upstream side" },
	[LIM_TLS_SESSION_LIFETIME] = { "tls_session_lifetime", UNIT_SECONDS,
	    3600, 0, 86400, "TLS session resumption (tickets); 0 = none" },
	[LIM_MAX_AUTH_FAILURES] = { "max_auth_failures", UNIT_COUNT, 3, 1, 100,
	    "failed AUTH per session; the next AUTH gets 421 and close" },
	[LIM_AUTH_FAILURES_PER_IP] = { "auth_failures_per_ip", UNIT_COUNT, 20,
	    1, 1000000,
	    "failed AUTH per client (IPv4 address, IPv6 /64) in the window" },
	[LIM_AUTH_FAILURE_WINDOW] = { "auth_failure_window", UNIT_SECONDS, 600,
	    1, 86400, "window of auth_failures_per_ip" },
	[LIM_DNS_TIMEOUT] = { "dns_timeout", UNIT_MSEC, 5000, 100, 60000,
	    "one DNS lookup, all retries included" },
	[LIM_DNS_MAX_QUERIES] = { "dns_max_queries", UNIT_COUNT, 10000, 16,
	    1000000, "DNS lookups in flight, whole process" },
	[LIM_DNS_CACHE_SIZE] = { "dns_cache_size", UNIT_BYTES, 32 * MIB,
	    1 * MIB, 4 * GIB, "DNS cache (messages and records)" },
	[LIM_DNS_THREAD_CACHE_SIZE] = { "dns_thread_cache_size", UNIT_BYTES,
	    4 * MIB, 0, 1 * GIB,
	    "answers kept by each event-loop thread; 0 = none" },
	[LIM_DNS_THREAD_CACHE_MIN_TTL] = { "dns_thread_cache_min_ttl",
	    UNIT_SECONDS, 0, 0, 3600,
	    "shortest time an answer is kept by a thread (its TTL raised)" },
	[LIM_DNS_THREAD_CACHE_MAX_TTL] = { "dns_thread_cache_max_ttl",
	    UNIT_SECONDS, 3600, 1, 86400,
	    "longest time an answer is kept by a thread (its TTL lowered)" },
};

static _Thread_local int config_errors;
static pthread_mutex_t	 load_mtx = PTHREAD_MUTEX_INITIALIZER;

static void config_verror(const char *, int, const char *, va_list);

static void
config_errfunc(cfg_t *cfg, const char *fmt, va_list ap)
{
	/* Filter sections take free-form options (CFGF_KEYSTRVAL). */
	if (cfg != NULL && (cfg->flags & CFGF_KEYSTRVAL) &&
	    strncmp(fmt, "no such option", 14) == 0)
		return;
	config_verror(cfg != NULL ? cfg->filename : NULL,
	    cfg != NULL ? cfg->line : 0, fmt, ap);
}

static _Thread_local int errors_to_log;

void
config_errors_to_log(int on)
{
	errors_to_log = on;
}

static void
config_verror(const char *file, int line, const char *fmt, va_list ap)
{
	char msg[1024], esc[2048];

	config_errors++;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (errors_to_log) {
		log_escape(msg, strlen(msg), esc, sizeof(esc));
		if (file != NULL)
			log_err("event=config-error file=%s line=%d msg=\"%s\"",
			    file, line, esc);
		else
			log_err("event=config-error msg=\"%s\"", esc);
		return;
	}
	fprintf(stderr, "moatd: ");
	if (file != NULL)
		fprintf(stderr, "%s:%d: ", file, line);
	fprintf(stderr, "%s\n", msg);
}

static void
config_error(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	config_verror(file, line, fmt, ap);
	va_end(ap);
}

/* A problem that does not stop the configuration from being used. */
static void __attribute__((format(printf, 3, 4)))
config_warn(const char *file, int line, const char *fmt, ...)
{
	char	msg[1024], esc[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (errors_to_log) {
		log_escape(msg, strlen(msg), esc, sizeof(esc));
		log_warn("event=config-warning file=%s line=%d msg=\"%s\"",
		    file != NULL ? file : "(config)", line, esc);
		return;
	}
	fprintf(stderr, "moatd: %s:%d: warning: %s\n",
	    file != NULL ? file : "(config)", line, msg);
}

void
config_report(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	config_verror(file, line, fmt, ap);
	va_end(ap);
}

static const char *const action_words[ACT_COUNT] = { "none", "add_header",
	"quarantine", "discard", "tempfail", "reject", "accept" };

int
policy_action_parse(const char *s)
{
	int i;

	for (i = 0; i < ACT_COUNT; i++)
		if (strcmp(s, action_words[i]) == 0)
			return i;
	return -1;
}

const char *
policy_action_name(enum policy_action a)
{
	return (unsigned)a < ACT_COUNT ? action_words[a] : "?";
}

int
limit_parse_value(enum limit_unit unit, const char *s, long *out)
{
	char *end;
	long  v, mul = 1;

	errno = 0;
	if (*s < '0' || *s > '9')
		return -1;
	v = strtol(s, &end, 10);
	if (errno != 0)
		return -1;
	switch (unit) {
	case UNIT_COUNT:
		break;
	case UNIT_BYTES:
		if (*end == 'k' || *end == 'K')
			mul = KIB, end++;
		else if (*end == 'm' || *end == 'M')
			mul = MIB, end++;
		else if (*end == 'g' || *end == 'G')
			mul = GIB, end++;
		break;
	case UNIT_SECONDS:
		if (*end == 's')
			end++;
		else if (*end == 'm')
			mul = 60, end++;
		else if (*end == 'h')
			mul = 3600, end++;
		break;
	case UNIT_MSEC:
		if (strcmp(end, "ms") == 0)
			end += 2;
		else if (*end == 's')
			mul = 1000, end++;
		else if (*end == 'm')
			mul = 60000, end++;
		break;
	}
	if (*end != '\0' || v > (1L << 50) / mul)
		return -1;
	*out = v * mul;
	return 0;
}

static const struct limit_def *
limit_by_name(const char *name)
{
	size_t i;

	for (i = 0; i < LIM_COUNT; i++)
		if (strcmp(limit_defs[i].name, name) == 0)
			return &limit_defs[i];
	return NULL;
}

/* libconfuse value callback for every limit: units and bounds. */
static int
limit_cb(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	const struct limit_def *d = limit_by_name(opt->name);
	long			v;

	if (d == NULL)
		return -1;
	/*
	 * Errors are counted, not returned: libconfuse stops at the first
	 * failed value, and moatd -t should list every one.
	 */
	if (limit_parse_value(d->unit, value, &v) == -1) {
		cfg_error(cfg, "%s: invalid value \"%s\"", d->name, value);
		v = d->def;
	} else if (v < d->min || v > d->max) {
		cfg_error(cfg, "%s: %ld is out of range [%ld, %ld]", d->name, v,
		    d->min, d->max);
		v = d->def;
	}
	*(long *)result = v;
	return 0;
}

static int
keyword(const char *v, const char *const *words, int n)
{
	int i;

	for (i = 0; i < n; i++)
		if (strcmp(v, words[i]) == 0)
			return i;
	return -1;
}

static const char *const xclient_words[] = { "auto", "xforward", "off" };
static const char *const bare_words[] = { "reject", "normalize" };
static const char *const pp_words[] = { "off", "v1", "v2", "any" };
/* Indexed like enum listener_tls, starttls_injection, received_mode,
 * upstream_tls_mode. */
static const char *const ltls_words[] = { "off", "starttls", "required",
	"implicit" };
static const char *const lauth_words[] = { "off", "tls", "always" };
static const char *const inject_words[] = { "close", "refuse" };
static const char *const received_words[] = { "tls", "always", "never" };
static const char *const utls_words[] = { "none", "opportunistic", "required" };
static const char *const tlsver_words[] = { "TLSv1", "TLSv1.1", "TLSv1.2",
	"TLSv1.3" };
static const int	 tlsver_values[] = { 0x0301, 0x0302, 0x0303, 0x0304 };
static const char *const on_error_words[] = { "tempfail", "continue",
	"reject" };
static const char *const list_words[] = { "client", "helo", "sender",
	"recipient" };

#define KEYWORD(v, words) keyword((v), (words), (int)nitems(words))

/* Every option whose value is one of a fixed set of words, by its path in
 * the schema: one validator serves them all. */
static const struct {
	const char	  *path;
	const char *const *words;
	int		   n;
} keyword_opts[] = {
#define KW(path, words)                                                        \
	{                                                                      \
		path, words, (int)nitems(words)                                \
	}
	KW("xclient", xclient_words),
	KW("bare_newline", bare_words),
	KW("nul_byte", bare_words),
	KW("listen|proxy_protocol", pp_words),
	KW("listen|tls", ltls_words),
	KW("listen|auth", lauth_words),
	KW("tls_min_version", tlsver_words),
	KW("upstream_tls_min_version", tlsver_words),
	KW("starttls_injection", inject_words),
	KW("received_header", received_words),
	KW("upstream_tls", utls_words),
	KW("filter|on_error", on_error_words),
	KW("list|type", list_words),
	KW("rule|action", action_words),
	KW("list|action", action_words),
	KW("group|rule|action", action_words),
#undef KW
};

static int
validate_keyword(cfg_t *cfg, cfg_opt_t *opt, const char *const *w, int n)
{
	const char *v = cfg_opt_getnstr(opt, 0);
	char	    list[128] = "";
	int	    i;

	if (v == NULL || keyword(v, w, n) != -1)
		return 0;
	for (i = 0; i < n; i++) {
		strcat(list, i ? ", " : "");
		strcat(list, w[i]);
	}
	cfg_error(cfg, "%s: \"%s\" is not one of %s", opt->name, v, list);
	return 0; /* counted; parsing goes on to find more */
}

static int
validate_words(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *last;
	size_t	    i;

	for (i = 0; i < nitems(keyword_opts); i++) {
		last = strrchr(keyword_opts[i].path, '|');
		last = last != NULL ? last + 1 : keyword_opts[i].path;
		if (strcmp(last, opt->name) == 0)
			return validate_keyword(
			    cfg, opt, keyword_opts[i].words, keyword_opts[i].n);
	}
	return 0;
}

static int
validate_tls_list(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *v = cfg_opt_getnstr(opt, 0);
	int	    kind = strcmp(opt->name, "tls_ciphers") == 0 ? 0
		    : strcmp(opt->name, "tls_ciphersuites") == 0 ? 1
								 : 2;

	if (v != NULL && *v != '\0' && !tls_list_ok(kind, v))
		cfg_error(cfg, "%s \"%s\": %s", opt->name, v,
		    kind == 0	    ? "no usable cipher"
			: kind == 1 ? "no usable cipher suite"
				    : "unknown group");
	return 0;
}

/* "SHA256:hex" or plain hex, colons allowed: 32 bytes. */
static int
pin_parse(const char *s, unsigned char out[32])
{
	size_t n = 0;
	int    hi = -1, v;

	if (strncasecmp(s, "sha256:", 7) == 0)
		s += 7;
	for (; *s != '\0'; s++) {
		if (*s == ':')
			continue;
		if (*s >= '0' && *s <= '9')
			v = *s - '0';
		else if ((*s | 0x20) >= 'a' && (*s | 0x20) <= 'f')
			v = (*s | 0x20) - 'a' + 10;
		else
			return -1;
		if (hi == -1) {
			hi = v;
			continue;
		}
		if (n == 32)
			return -1;
		out[n++] = (unsigned char)(hi << 4 | v);
		hi = -1;
	}
	return n == 32 && hi == -1 ? 0 : -1;
}

static int
validate_pins(cfg_t *cfg, cfg_opt_t *opt)
{
	unsigned char pin[32];
	unsigned      i;

	if (cfg_opt_size(opt) > TLS_PINS_MAX)
		cfg_error(cfg, "%s: at most %d fingerprints", opt->name,
		    TLS_PINS_MAX);
	for (i = 0; i < cfg_opt_size(opt); i++)
		if (pin_parse(cfg_opt_getnstr(opt, i), pin) == -1)
			cfg_error(cfg,
			    "%s: \"%s\" is not a SHA-256 fingerprint (64 hex "
			    "digits)",
			    opt->name, cfg_opt_getnstr(opt, i));
	return 0;
}

static int
validate_addr(cfg_t *cfg, cfg_opt_t *opt)
{
	struct sockaddr_storage ss;
	socklen_t		len;
	char			err[256];
	const char	       *v = cfg_opt_getnstr(opt, 0);

	if (v == NULL || addr_parse(v, &ss, &len, err, sizeof(err)) == 0)
		return 0;
	cfg_error(cfg, "%s: %s", opt->name, err);
	return 0;
}

static int
validate_cidrs(cfg_t *cfg, cfg_opt_t *opt)
{
	struct cidr c;
	unsigned    i;

	if (cfg_opt_size(opt) > LISTENER_TRUSTED_MAX) {
		cfg_error(cfg, "%s: more than %d entries", opt->name,
		    LISTENER_TRUSTED_MAX);
		return 0;
	}
	for (i = 0; i < cfg_opt_size(opt); i++)
		if (cidr_parse(cfg_opt_getnstr(opt, i), &c) == -1) {
			cfg_error(cfg, "%s: \"%s\" is not an address/prefix",
			    opt->name, cfg_opt_getnstr(opt, i));
			return 0;
		}
	return 0;
}

/* "550 5.7.1 text": a 4xx/5xx code, an optional matching enhanced code. */
int
config_reply_parse(
    const char *s, int *code, char *enh, size_t enhlen, const char **text)
{
	int  c, n = 0;
	char e[16] = "";

	if (sscanf(s, "%3d%n", &c, &n) != 1 || n != 3 || c < 400 || c > 599 ||
	    (s[3] != ' ' && s[3] != '\0'))
		return -1;
	s += 3;
	while (*s == ' ')
		s++;
	if ((*s == '4' || *s == '5') && s[1] == '.') {
		if (sscanf(s, "%15[0-9.]%n", e, &n) != 1 ||
		    e[0] != '0' + c / 100)
			return -1;
		s += n;
		while (*s == ' ')
			s++;
	}
	if (enh != NULL)
		snprintf(enh, enhlen, "%s", e);
	*code = c;
	if (text != NULL)
		*text = s;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return -1;
	return 0;
}

static int
validate_reply(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *v = cfg_opt_getnstr(opt, 0);
	int	    code;

	if (v != NULL && *v != '\0' &&
	    config_reply_parse(v, &code, NULL, 0, NULL) == -1)
		cfg_error(cfg,
		    "%s: \"%s\" is not a reply like \"550 5.7.1 Text\"",
		    opt->name, v);
	return 0;
}

static cfg_opt_t listen_opts[] = { CFG_STR("proxy_protocol", "off", CFGF_NONE),
	CFG_STR_LIST("proxy_trusted", "{}", CFGF_NONE),
	CFG_STR("tls", "starttls", CFGF_NONE),
	CFG_STR("auth", "tls", CFGF_NONE), CFG_END() };

static cfg_opt_t cert_opts[] = { CFG_STR("certificate", NULL, CFGF_NONE),
	CFG_STR("key", NULL, CFGF_NONE), CFG_END() };

/* Common options; the filter's own come as free-form strings. */
static cfg_opt_t filter_opts[] = { CFG_STR("type", NULL, CFGF_NONE),
	CFG_STR("load", NULL, CFGF_NONE), CFG_STR("timeout", NULL, CFGF_NONE),
	CFG_STR("on_error", "tempfail", CFGF_NONE), CFG_END() };

static cfg_opt_t rule_opts[] = { CFG_STR("action", "none", CFGF_NONE),
	CFG_STR("reply", NULL, CFGF_NONE), CFG_END() };

static cfg_opt_t list_opts[] = { CFG_STR("type", "client", CFGF_NONE),
	CFG_STR_LIST("entries", "{}", CFGF_NONE),
	CFG_STR_LIST("file", "{}", CFGF_NONE),
	CFG_STR("symbol", NULL, CFGF_NONE), CFG_FLOAT("score", 0, CFGF_NONE),
	CFG_STR("action", "none", CFGF_NONE), CFG_STR("reply", NULL, CFGF_NONE),
	CFG_END() };

static cfg_opt_t group_opts[] = { CFG_STR_LIST("recipients", "{}", CFGF_NONE),
	CFG_STR_LIST("recipients_file", "{}", CFGF_NONE),
	CFG_BOOL("authenticated", cfg_false, CFGF_NONE),
	CFG_STR_LIST("filters", NULL, CFGF_NODEFAULT),
	CFG_FLOAT("add_header_score", SCORE_OFF, CFGF_NONE),
	CFG_FLOAT("quarantine_score", SCORE_OFF, CFGF_NONE),
	CFG_FLOAT("discard_score", SCORE_OFF, CFGF_NONE),
	CFG_FLOAT("tempfail_score", SCORE_OFF, CFGF_NONE),
	CFG_FLOAT("reject_score", SCORE_OFF, CFGF_NONE),
	CFG_BOOL("early_reject", cfg_false, CFGF_NONE),
	CFG_STR("subject_tag", "", CFGF_NONE),
	CFG_STR("reject_reply", NULL, CFGF_NONE),
	CFG_STR("tempfail_reply", NULL, CFGF_NONE),
	CFG_SEC(
	    "rule", rule_opts, CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
	CFG_END() };

/*
 * The title is the signing domain, unless `domain` is set: libconfuse
 * merges sections of the same title, so a second signature for one
 * domain (another selector, another algorithm) needs a title of its own.
 */
static cfg_opt_t dkim_sign_opts[] = { CFG_STR("domain", NULL, CFGF_NONE),
	CFG_STR("selector", NULL, CFGF_NONE), CFG_STR("key", NULL, CFGF_NONE),
	CFG_STR_LIST("headers", NULL, CFGF_NODEFAULT),
	CFG_STR_LIST("oversign", "{From}", CFGF_NONE), CFG_END() };

static cfg_opt_t      opts[LIM_COUNT + 72];
static pthread_once_t opts_once = PTHREAD_ONCE_INIT;

static void
opts_init(void)
{
	cfg_opt_t base[] = {
		CFG_STR("hostname", NULL, CFGF_NONE),
		CFG_STR("banner", "ESMTP", CFGF_NONE),
		CFG_STR("upstream", "127.0.0.1:25", CFGF_NONE),
		CFG_STR("xclient", "auto", CFGF_NONE),
		CFG_STR("bare_newline", "reject", CFGF_NONE),
		CFG_STR("nul_byte", "reject", CFGF_NONE),
		CFG_BOOL("chunking", cfg_true, CFGF_NONE),
		CFG_BOOL("helo_required", cfg_false, CFGF_NONE),
		CFG_BOOL("reverse_dns", cfg_true, CFGF_NONE),
		CFG_STR("spool_directory", "/var/tmp", CFGF_NONE),
		CFG_STR("quarantine_directory", "/var/lib/moat/quarantine",
		    CFGF_NONE),
		CFG_STR("user", "nobody", CFGF_NONE),
		CFG_SEC("listen", listen_opts, CFGF_MULTI | CFGF_TITLE),
		CFG_SEC("filter", filter_opts,
		    CFGF_MULTI | CFGF_TITLE | CFGF_KEYSTRVAL |
			CFGF_NO_TITLE_DUPES),
		CFG_SEC("rule", rule_opts,
		    CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
		CFG_SEC("list", list_opts,
		    CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
		CFG_SEC("group", group_opts,
		    CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
		CFG_STR("authserv_id", NULL, CFGF_NONE),
		CFG_BOOL("authentication_results", cfg_true, CFGF_NONE),
		CFG_STR("spam_status_header", "X-Spam-Status", CFGF_NONE),
		CFG_STR("spam_score_header", "X-Spam-Score", CFGF_NONE),
		CFG_BOOL("spam_headers_always", cfg_false, CFGF_NONE),
		CFG_SEC("dkim_sign", dkim_sign_opts,
		    CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
		CFG_SEC("tls_certificate", cert_opts,
		    CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
		CFG_STR("tls_min_version", "TLSv1.2", CFGF_NONE),
		CFG_STR("tls_ciphers", "", CFGF_NONE),
		CFG_STR("tls_ciphersuites", "", CFGF_NONE),
		CFG_STR("tls_groups", "", CFGF_NONE),
		CFG_BOOL("tls_session_tickets", cfg_true, CFGF_NONE),
		CFG_BOOL("tls_ask_client_certificate", cfg_false, CFGF_NONE),
		CFG_STR("starttls_injection", "close", CFGF_NONE),
		CFG_STR("received_header", "tls", CFGF_NONE),
		CFG_STR("upstream_tls", "none", CFGF_NONE),
		CFG_STR("upstream_tls_ca_file", NULL, CFGF_NONE),
		CFG_STR("upstream_tls_name", NULL, CFGF_NONE),
		CFG_STR_LIST("upstream_tls_fingerprint", "{}", CFGF_NONE),
		CFG_STR("upstream_tls_min_version", "TLSv1.2", CFGF_NONE),
		CFG_STR_LIST("dns_forwarders", "{}", CFGF_NONE),
		CFG_STR("dns_trust_anchor", NULL, CFGF_NONE),
		CFG_FUNC("include", cfg_include),
	};
	size_t i, n = 0;

	for (i = 0; i < nitems(base); i++)
		opts[n++] = base[i];
	for (i = 0; i < LIM_COUNT; i++) {
		cfg_opt_t o = CFG_INT_CB(
		    limit_defs[i].name, limit_defs[i].def, CFGF_NONE, limit_cb);
		opts[n++] = o;
	}
	opts[n] = (cfg_opt_t)CFG_END();
}

static cfg_t *
config_schema(void)
{
	size_t i;
	cfg_t *cfg;

	pthread_once(&opts_once, opts_init);
	cfg = cfg_init(opts, CFGF_NONE);
	cfg_set_error_function(cfg, config_errfunc);
	for (i = 0; i < nitems(keyword_opts); i++)
		cfg_set_validate_func(
		    cfg, keyword_opts[i].path, validate_words);
	cfg_set_validate_func(cfg, "upstream", validate_addr);
	cfg_set_validate_func(cfg, "listen|proxy_trusted", validate_cidrs);
	cfg_set_validate_func(cfg, "tls_ciphers", validate_tls_list);
	cfg_set_validate_func(cfg, "tls_ciphersuites", validate_tls_list);
	cfg_set_validate_func(cfg, "tls_groups", validate_tls_list);
	cfg_set_validate_func(cfg, "upstream_tls_fingerprint", validate_pins);
	cfg_set_validate_func(cfg, "rule|reply", validate_reply);
	cfg_set_validate_func(cfg, "list|reply", validate_reply);
	cfg_set_validate_func(cfg, "group|rule|reply", validate_reply);
	cfg_set_validate_func(cfg, "group|reject_reply", validate_reply);
	cfg_set_validate_func(cfg, "group|tempfail_reply", validate_reply);
	return cfg;
}

static int
listener_add(struct config *cf, const char *spec, cfg_t *sec, const char *file)
{
	struct listener_conf *l;
	char		      err[256];
	unsigned	      i;

	cf->listeners = xrealloc(
	    cf->listeners, (cf->nlisteners + 1) * sizeof(*cf->listeners));
	l = &cf->listeners[cf->nlisteners];
	memset(l, 0, sizeof(*l));
	l->spec = xstrdup(spec);
	if (addr_parse(spec, &l->ss, &l->sslen, err, sizeof(err)) == -1) {
		config_error(
		    file, sec ? sec->line : 0, "listen \"%s\": %s", spec, err);
		return -1;
	}
	cf->nlisteners++;
	l->tls = LTLS_STARTTLS;
	l->auth = LAUTH_TLS;
	if (sec == NULL)
		return 0;
	l->tls = KEYWORD(cfg_getstr(sec, "tls"), ltls_words);
	l->auth = KEYWORD(cfg_getstr(sec, "auth"), lauth_words);
	l->line = sec->line;
	l->proxy_protocol =
	    KEYWORD(cfg_getstr(sec, "proxy_protocol"), pp_words);
	for (i = 0; i < cfg_size(sec, "proxy_trusted"); i++)
		cidr_parse(cfg_getnstr(sec, "proxy_trusted", i),
		    &l->trusted[l->ntrusted++]);
	if (l->proxy_protocol != PROXY_PROTO_OFF && l->ntrusted == 0) {
		config_error(file, sec->line,
		    "listen \"%s\": proxy_protocol needs proxy_trusted "
		    "addresses",
		    spec);
		return -1;
	}
	return 0;
}

static char **
strlist(cfg_t *sec, const char *name, size_t *n)
{
	char **v;
	size_t i;

	*n = cfg_size(sec, name);
	if (*n == 0)
		return NULL;
	v = xcalloc(*n, sizeof(*v));
	for (i = 0; i < *n; i++)
		v[i] = xstrdup(cfg_getnstr(sec, name, i));
	return v;
}

static void
strlist_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void
filter_add(struct config *cf, cfg_t *sec, const char *file)
{
	struct filter_conf *fc;
	cfg_opt_t	   *opt;
	const char	   *v;
	unsigned	    j;

	if (cf->nfilters == FILTERS_MAX) {
		config_error(
		    file, sec->line, "more than %d filters", FILTERS_MAX);
		return;
	}
	fc = &cf->filters[cf->nfilters++];
	fc->name = xstrdup(cfg_title(sec));
	v = cfg_getstr(sec, "type");
	fc->type = xstrdup(v != NULL ? v : fc->name);
	v = cfg_getstr(sec, "load");
	fc->load = v != NULL ? xstrdup(v) : NULL;
	fc->file = xstrdup(file != NULL ? file : "(config)");
	fc->line = sec->line;
	fc->on_error = KEYWORD(cfg_getstr(sec, "on_error"), on_error_words);
	fc->timeout_ms = 0;
	v = cfg_getstr(sec, "timeout");
	if (v != NULL &&
	    (limit_parse_value(UNIT_MSEC, v, &fc->timeout_ms) == -1 ||
		fc->timeout_ms < 1 || fc->timeout_ms > 3600000))
		config_error(file, sec->line,
		    "filter \"%s\": timeout \"%s\" is not a duration "
		    "(1ms to 1h)",
		    fc->name, v);
	/* The free-form options: every string option not in filter_opts. */
	for (j = 0; j < cfg_num(sec); j++) {
		opt = cfg_getnopt(sec, j);
		if (!(opt->flags & CFGF_MODIFIED) || opt->type != CFGT_STR ||
		    strcmp(opt->name, "type") == 0 ||
		    strcmp(opt->name, "load") == 0 ||
		    strcmp(opt->name, "timeout") == 0 ||
		    strcmp(opt->name, "on_error") == 0)
			continue;
		fc->keys = xrealloc(fc->keys, (fc->nopts + 1) * sizeof(char *));
		fc->values =
		    xrealloc(fc->values, (fc->nopts + 1) * sizeof(char *));
		fc->keys[fc->nopts] = xstrdup(opt->name);
		fc->values[fc->nopts] = xstrdup(cfg_opt_getnstr(opt, 0));
		fc->nopts++;
	}
}

static void
filter_conf_free(struct filter_conf *fc)
{
	free(fc->name);
	free(fc->type);
	free(fc->load);
	free(fc->file);
	strlist_free(fc->keys, fc->nopts);
	strlist_free(fc->values, fc->nopts);
}

static char *
optstr(cfg_t *sec, const char *name)
{
	const char *v = cfg_getstr(sec, name);

	return v != NULL && *v != '\0' ? xstrdup(v) : NULL;
}

static void
rules_load(cfg_t *sec, struct rule_conf **out, size_t *nout)
{
	struct rule_conf *r;
	cfg_t		 *rs;
	size_t		  i, n = cfg_size(sec, "rule");

	*out = n ? xcalloc(n, sizeof(**out)) : NULL;
	*nout = n;
	for (i = 0; i < n; i++) {
		rs = cfg_getnsec(sec, "rule", i);
		r = &(*out)[i];
		r->symbol = xstrdup(cfg_title(rs));
		r->action = policy_action_parse(cfg_getstr(rs, "action"));
		r->reply = optstr(rs, "reply");
		r->line = rs->line;
	}
}

static void
rules_free(struct rule_conf *r, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(r[i].symbol);
		free(r[i].reply);
	}
	free(r);
}

static const char *const threshold_opts[ACT_COUNT] = { NULL, "add_header_score",
	"quarantine_score", "discard_score", "tempfail_score", "reject_score",
	NULL };

static void
policy_conf_load(struct config *cf, cfg_t *cfg, const char *file)
{
	struct group_conf *g;
	struct list_conf  *l;
	cfg_t		  *sec;
	const char	  *v;
	size_t		   i, k;
	char		  *p;

	v = cfg_getstr(cfg, "authserv_id");
	cf->authserv_id = xstrdup(v != NULL && *v ? v : cf->hostname);
	cf->auth_results = cfg_getbool(cfg, "authentication_results");
	cf->spam_status_header = optstr(cfg, "spam_status_header");
	cf->spam_score_header = optstr(cfg, "spam_score_header");
	cf->spam_headers_always = cfg_getbool(cfg, "spam_headers_always");
	rules_load(cfg, &cf->rules, &cf->nrules);

	cf->nlists = cfg_size(cfg, "list");
	cf->lists = cf->nlists ? xcalloc(cf->nlists, sizeof(*cf->lists)) : NULL;
	for (i = 0; i < cf->nlists; i++) {
		sec = cfg_getnsec(cfg, "list", i);
		l = &cf->lists[i];
		l->name = xstrdup(cfg_title(sec));
		l->kind = KEYWORD(cfg_getstr(sec, "type"), list_words);
		l->entries = strlist(sec, "entries", &l->nentries);
		l->files = strlist(sec, "file", &l->nfiles);
		l->symbol = optstr(sec, "symbol");
		if (l->symbol == NULL) {
			/* LIST_ + the name, upper case, [A-Z0-9_] */
			l->symbol = xmalloc(strlen(l->name) + 6);
			p = l->symbol + sprintf(l->symbol, "LIST_");
			for (v = l->name; *v; v++)
				*p++ = (*v >= 'a' && *v <= 'z') ? *v - 32
				    : ((*v >= 'A' && *v <= 'Z') ||
					  (*v >= '0' && *v <= '9'))
				    ? *v
				    : '_';
			*p = '\0';
		}
		l->score = cfg_getfloat(sec, "score");
		l->action = policy_action_parse(cfg_getstr(sec, "action"));
		l->reply = optstr(sec, "reply");
		l->line = sec->line;
		if (l->nentries == 0 && l->nfiles == 0)
			config_error(file, sec->line,
			    "list \"%s\": neither entries nor file", l->name);
	}

	cf->ngroups = cfg_size(cfg, "group");
	cf->groups =
	    cf->ngroups ? xcalloc(cf->ngroups, sizeof(*cf->groups)) : NULL;
	for (i = 0; i < cf->ngroups; i++) {
		sec = cfg_getnsec(cfg, "group", i);
		g = &cf->groups[i];
		g->name = xstrdup(cfg_title(sec));
		g->line = sec->line;
		g->recipients = strlist(sec, "recipients", &g->nrecipients);
		g->recipient_files =
		    strlist(sec, "recipients_file", &g->nrecipient_files);
		g->authenticated = cfg_getbool(sec, "authenticated");
		if (cfg_size(sec, "filters") > 0 ||
		    (cfg_getopt(sec, "filters")->flags & CFGF_MODIFIED)) {
			g->filters = strlist(sec, "filters", &g->nfilters);
			if (g->filters == NULL) /* filters = {}: none */
				g->filters = xcalloc(1, sizeof(char *));
		}
		for (k = 0; k < ACT_COUNT; k++)
			g->threshold[k] = threshold_opts[k] != NULL
			    ? cfg_getfloat(sec, threshold_opts[k])
			    : SCORE_OFF;
		g->early_reject = cfg_getbool(sec, "early_reject");
		g->subject_tag = optstr(sec, "subject_tag");
		g->reply[ACT_REJECT] = optstr(sec, "reject_reply");
		g->reply[ACT_TEMPFAIL] = optstr(sec, "tempfail_reply");
		rules_load(sec, &g->rules, &g->nrules);
		if (g->filters != NULL)
			for (k = 0; k < g->nfilters; k++) {
				size_t f;

				for (f = 0; f < cf->nfilters; f++)
					if (strcmp(cf->filters[f].name,
						g->filters[k]) == 0)
						break;
				if (f == cf->nfilters &&
				    strcmp(g->filters[k], "lists") != 0)
					config_error(file, sec->line,
					    "group \"%s\": no filter \"%s\"",
					    g->name, g->filters[k]);
			}
	}
}

static void
policy_conf_free(struct config *cf)
{
	size_t i, k;

	free(cf->authserv_id);
	free(cf->spam_status_header);
	free(cf->spam_score_header);
	rules_free(cf->rules, cf->nrules);
	for (i = 0; i < cf->nlists; i++) {
		free(cf->lists[i].name);
		strlist_free(cf->lists[i].entries, cf->lists[i].nentries);
		strlist_free(cf->lists[i].files, cf->lists[i].nfiles);
		free(cf->lists[i].symbol);
		free(cf->lists[i].reply);
	}
	free(cf->lists);
	for (i = 0; i < cf->ngroups; i++) {
		struct group_conf *g = &cf->groups[i];

		free(g->name);
		strlist_free(g->recipients, g->nrecipients);
		strlist_free(g->recipient_files, g->nrecipient_files);
		strlist_free(g->filters, g->nfilters);
		free(g->subject_tag);
		for (k = 0; k < ACT_COUNT; k++)
			free(g->reply[k]);
		rules_free(g->rules, g->nrules);
	}
	free(cf->groups);
}

static void
tls_conf_load(struct config *cf, cfg_t *cfg, const char *file)
{
	struct tls_conf *t = &cf->tls;
	cfg_t		*sec;
	const char	*s;
	size_t		 i;

	if (cfg_size(cfg, "tls_certificate") > TLS_CERTS_MAX)
		config_error(file, 0, "at most %d tls_certificate sections",
		    TLS_CERTS_MAX);
	for (i = 0; i < cfg_size(cfg, "tls_certificate") && i < TLS_CERTS_MAX;
	     i++) {
		struct tls_cert_conf *c = &t->certs[t->ncerts++];

		sec = cfg_getnsec(cfg, "tls_certificate", i);
		c->name = xstrdup(cfg_title(sec));
		c->line = sec->line;
		if ((s = cfg_getstr(sec, "certificate")) == NULL ||
		    *s == '\0') {
			config_error(file, sec->line,
			    "tls_certificate \"%s\": certificate is required",
			    c->name);
			continue;
		}
		c->cert = xstrdup(s);
		s = cfg_getstr(sec, "key");
		c->key = xstrdup(s != NULL && *s != '\0' ? s : c->cert);
	}
	t->min_version = tlsver_values[KEYWORD(
	    cfg_getstr(cfg, "tls_min_version"), tlsver_words)];
	t->ciphers = xstrdup(cfg_getstr(cfg, "tls_ciphers"));
	t->ciphersuites = xstrdup(cfg_getstr(cfg, "tls_ciphersuites"));
	t->groups = xstrdup(cfg_getstr(cfg, "tls_groups"));
	t->tickets = cfg_getbool(cfg, "tls_session_tickets");
	t->ask_ccert = cfg_getbool(cfg, "tls_ask_client_certificate");
	t->injection =
	    KEYWORD(cfg_getstr(cfg, "starttls_injection"), inject_words);
	t->received =
	    KEYWORD(cfg_getstr(cfg, "received_header"), received_words);
	t->up_mode = KEYWORD(cfg_getstr(cfg, "upstream_tls"), utls_words);
	if ((s = cfg_getstr(cfg, "upstream_tls_ca_file")) != NULL && *s != '\0')
		t->up_ca_file = xstrdup(s);
	if ((s = cfg_getstr(cfg, "upstream_tls_name")) != NULL && *s != '\0')
		t->up_name = xstrdup(s);
	for (i = 0;
	     i < cfg_size(cfg, "upstream_tls_fingerprint") && i < TLS_PINS_MAX;
	     i++)
		if (pin_parse(cfg_getnstr(cfg, "upstream_tls_fingerprint", i),
			t->up_pins[t->up_npins]) == 0)
			t->up_npins++;
	t->up_min_version = tlsver_values[KEYWORD(
	    cfg_getstr(cfg, "upstream_tls_min_version"), tlsver_words)];
	for (i = 0; i < cf->nlisteners; i++)
		if ((cf->listeners[i].tls == LTLS_REQUIRED ||
			cf->listeners[i].tls == LTLS_IMPLICIT) &&
		    t->ncerts == 0)
			config_error(file, cf->listeners[i].line,
			    "listen \"%s\": tls = \"%s\" needs a "
			    "tls_certificate",
			    cf->listeners[i].spec,
			    ltls_words[cf->listeners[i].tls]);
}

static void
dns_conf_load(struct config *cf, cfg_t *cfg, const char *file)
{
	struct dns_conf *d = &cf->dns;
	const char	*s;
	size_t		 i;

	if (cfg_size(cfg, "dns_forwarders") > DNS_FORWARDERS_MAX)
		config_error(
		    file, 0, "dns_forwarders: at most %d", DNS_FORWARDERS_MAX);
	for (i = 0; i < cfg_size(cfg, "dns_forwarders") &&
	     d->nforwarders < DNS_FORWARDERS_MAX;
	     i++) {
		/* unbound's form: an address, optionally "@port". */
		char	      a[64], *at, *end;
		unsigned char buf[16];
		long	      port = 53;

		s = cfg_getnstr(cfg, "dns_forwarders", i);
		snprintf(a, sizeof(a), "%s", s);
		if ((at = strchr(a, '@')) != NULL) {
			*at = '\0';
			port = strtol(at + 1, &end, 10);
			if (*end != '\0' || end == at + 1)
				port = 0;
		}
		if ((inet_pton(AF_INET, a, buf) != 1 &&
			inet_pton(AF_INET6, a, buf) != 1) ||
		    port < 1 || port > 65535) {
			config_error(file, 0,
			    "dns_forwarders \"%s\": not an address[@port]", s);
			continue;
		}
		d->forwarders[d->nforwarders++] = xstrdup(s);
	}
	if ((s = cfg_getstr(cfg, "dns_trust_anchor")) != NULL && *s != '\0') {
		if (access(s, R_OK) != 0)
			config_error(file, 0, "dns_trust_anchor \"%s\": %s", s,
			    strerror(errno));
		d->trust_anchor = xstrdup(s);
	}
}

/* Letters, digits, '-', '_' and dots between labels (RFC 6376 §3.1). */
static int
selector_ok(const char *s)
{
	size_t i, label = 0;

	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] == '.') {
			if (label == 0)
				return 0;
			label = 0;
		} else if (((s[i] >= 'a' && s[i] <= 'z') ||
			       (s[i] >= 'A' && s[i] <= 'Z') ||
			       (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
			       s[i] == '_') &&
		    ++label <= 63)
			continue;
		else
			return 0;
	}
	return label > 0;
}

/* A field name (RFC 5322 §3.6.8): printable ASCII but ':'. */
static int
field_name_ok(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if (*s <= ' ' || *s > '~' || *s == ':')
			return 0;
	return 1;
}

/* A header name list of a dkim_sign section, NULL-terminated; NULL if
 * the option is not set. */
static char **
dkim_sign_names(
    cfg_t *sec, const char *opt, const char *dom, const char *file, int *bad)
{
	char	  **v;
	size_t	    i, n = cfg_size(sec, opt);
	const char *s;

	if (n == 0 && !(cfg_getopt(sec, opt)->flags & CFGF_MODIFIED) &&
	    strcmp(opt, "headers") == 0)
		return NULL;
	if (n > DKIM_SIGN_HEADERS_MAX) {
		config_error(file, sec->line,
		    "dkim_sign \"%s\": %s: at most %d "
		    "names",
		    dom, opt, DKIM_SIGN_HEADERS_MAX);
		*bad = 1;
		return NULL;
	}
	v = xcalloc(n + 1, sizeof(*v));
	for (i = 0; i < n; i++) {
		s = cfg_getnstr(sec, opt, i);
		if (!field_name_ok(s)) {
			config_error(file, sec->line,
			    "dkim_sign \"%s\": %s: \"%s\" is not a header "
			    "field name",
			    dom, opt, s);
			*bad = 1;
		}
		v[i] = xstrdup(s);
	}
	return v;
}

/*
 * dkim_sign sections: the keys are read and checked here, so that
 * moatd -t, a start and a reload refuse a key that cannot sign.
 */
static void
dkim_sign_load(struct config *cf, cfg_t *cfg, const char *file,
    const struct config *keys_from)
{
	struct dkim_signer *sg;
	cfg_t		   *sec;
	const char	   *dom, *sel, *key;
	char		    err[512], dbuf[FROM_DOMAIN_MAX], probe[300];
	const char	   *why;
	char		  **hdrs, **over;
	size_t		    i, j, same, n = cfg_size(cfg, "dkim_sign");
	int		    bad, group_other;

	if (n > DKIM_SIGNERS_MAX) {
		config_error(
		    file, 0, "at most %d dkim_sign sections", DKIM_SIGNERS_MAX);
		return;
	}
	cf->dkim_signers = n ? xcalloc(n, sizeof(*cf->dkim_signers)) : NULL;
	for (i = 0; i < n; i++) {
		sec = cfg_getnsec(cfg, "dkim_sign", i);
		dom = cfg_getstr(sec, "domain");
		if (dom == NULL || *dom == '\0')
			dom = cfg_title(sec);
		sel = cfg_getstr(sec, "selector");
		key = cfg_getstr(sec, "key");
		bad = 0;
		/* The domain must be what a From address could carry. */
		snprintf(probe, sizeof(probe), "x@%s", dom);
		if (strlen(dom) > DKIM_DOMAIN_MAX ||
		    from_field_domain(
			probe, strlen(probe), dbuf, sizeof(dbuf), &why) == -1) {
			config_error(file, sec->line,
			    "dkim_sign \"%s\": not a domain name", dom);
			continue;
		}
		if (sel == NULL || !selector_ok(sel)) {
			config_error(file, sec->line,
			    "dkim_sign \"%s\": selector %s%s%s", dom,
			    sel == NULL ? "is required" : "\"",
			    sel == NULL ? "" : sel,
			    sel == NULL ? "" : "\" is not a selector");
			continue;
		}
		if (key == NULL || *key == '\0') {
			config_error(file, sec->line,
			    "dkim_sign \"%s\": key is required", dom);
			continue;
		}
		for (j = same = 0; j < cf->ndkim_signers; j++) {
			if (strcmp(dkim_signer_domain(cf->dkim_signers[j]),
				dbuf) != 0)
				continue;
			same++;
			if (strcmp(dkim_signer_selector(cf->dkim_signers[j]),
				sel) == 0) {
				config_error(file, sec->line,
				    "dkim_sign \"%s\": selector \"%s\" "
				    "configured twice",
				    dom, sel);
				bad = 1;
			}
		}
		if (same >= DKIM_SIGN_MAX) {
			config_error(file, sec->line,
			    "dkim_sign \"%s\": at most %d sections "
			    "(signatures) "
			    "per domain",
			    dom, DKIM_SIGN_MAX);
			bad = 1;
		}
		hdrs = dkim_sign_names(sec, "headers", dom, file, &bad);
		over = dkim_sign_names(sec, "oversign", dom, file, &bad);
		sg = NULL;
		group_other = 0;
		for (j = 0; keys_from != NULL && j < keys_from->ndkim_signers;
		     j++)
			if (strcmp(
				dkim_signer_keyfile(keys_from->dkim_signers[j]),
				key) == 0)
				break;
		if (bad)
			;
		else if (keys_from != NULL && j < keys_from->ndkim_signers)
			sg = dkim_signer_new_key_of(keys_from->dkim_signers[j],
			    dbuf, sel, (const char *const *)hdrs,
			    (const char *const *)over, err, sizeof(err));
		else
			sg = dkim_signer_new(dbuf, sel, key,
			    (const char *const *)hdrs,
			    (const char *const *)over, &group_other, err,
			    sizeof(err));
		if (!bad && sg == NULL)
			config_error(
			    file, sec->line, "dkim_sign \"%s\": %s", dom, err);
		else if (sg != NULL && group_other)
			config_warn(file, sec->line,
			    "dkim_sign \"%s\": key \"%s\" can be read by "
			    "group or others",
			    dom, key);
		if (sg != NULL)
			cf->dkim_signers[cf->ndkim_signers++] = sg;
		for (j = 0; hdrs != NULL && hdrs[j] != NULL; j++)
			free(hdrs[j]);
		free(hdrs);
		for (j = 0; over != NULL && over[j] != NULL; j++)
			free(over[j]);
		free(over);
	}
}

static void
dns_conf_free(struct dns_conf *d)
{
	size_t i;

	for (i = 0; i < d->nforwarders; i++)
		free(d->forwarders[i]);
	free(d->trust_anchor);
}

static void
tls_conf_free(struct tls_conf *t)
{
	size_t i;

	for (i = 0; i < t->ncerts; i++) {
		free(t->certs[i].name);
		free(t->certs[i].cert);
		free(t->certs[i].key);
	}
	free(t->ciphers);
	free(t->ciphersuites);
	free(t->groups);
	free(t->up_ca_file);
	free(t->up_name);
}

static struct config *
config_load_locked(const char *file, const struct config_overrides *ov)
{
	struct config *cf;
	char	       host[256], err[256];
	cfg_t	      *cfg, *sec;
	const char    *s;
	size_t	       i;
	int	       rc;

	config_errors = 0;
	cfg = config_schema();
	if (file != NULL) {
		rc = cfg_parse(cfg, file);
		if (rc == CFG_FILE_ERROR) {
			config_error(NULL, 0, "%s: %s", file, strerror(errno));
			cfg_free(cfg);
			return NULL;
		}
		if (rc != CFG_SUCCESS || config_errors) {
			cfg_free(cfg);
			return NULL;
		}
	}
	cf = xcalloc(1, sizeof(*cf));
	cf->file = file ? xstrdup(file) : NULL;
	if ((s = cfg_getstr(cfg, "hostname")) == NULL || *s == '\0') {
		if (gethostname(host, sizeof(host)) == -1)
			strcpy(host, "localhost");
		host[sizeof(host) - 1] = '\0';
		s = host;
	}
	cf->hostname = xstrdup(s);
	cf->banner = xstrdup(cfg_getstr(cfg, "banner"));
	cf->xclient = KEYWORD(cfg_getstr(cfg, "xclient"), xclient_words);
	cf->bare_newline = KEYWORD(cfg_getstr(cfg, "bare_newline"), bare_words);
	cf->nul_byte = KEYWORD(cfg_getstr(cfg, "nul_byte"), bare_words);
	cf->chunking = cfg_getbool(cfg, "chunking");
	cf->helo_required = cfg_getbool(cfg, "helo_required");
	cf->reverse_dns = cfg_getbool(cfg, "reverse_dns");
	cf->spool_dir = xstrdup(cfg_getstr(cfg, "spool_directory"));
	cf->quarantine_dir = xstrdup(cfg_getstr(cfg, "quarantine_directory"));
	for (i = 0; i < LIM_COUNT; i++)
		cf->limits[i] = cfg_getint(cfg, limit_defs[i].name);

	if (ov != NULL && ov->nlisten > 0) {
		for (i = 0; i < ov->nlisten; i++)
			listener_add(cf, ov->listen[i], NULL, NULL);
	} else if (cfg_size(cfg, "listen") == 0) {
		listener_add(cf, "127.0.0.1:10025", NULL, NULL);
	} else {
		for (i = 0; i < cfg_size(cfg, "listen"); i++) {
			sec = cfg_getnsec(cfg, "listen", i);
			listener_add(cf, cfg_title(sec), sec, file);
		}
	}

	s = (ov != NULL && ov->upstream != NULL) ? ov->upstream
						 : cfg_getstr(cfg, "upstream");
	cf->upstream_spec = xstrdup(s);
	if (addr_parse(s, &cf->upstream, &cf->upstream_len, err, sizeof(err)) ==
	    -1)
		config_error(NULL, 0, "upstream \"%s\": %s", s, err);

	tls_conf_load(cf, cfg, file);
	dns_conf_load(cf, cfg, file);
	for (i = 0; i < cfg_size(cfg, "filter"); i++)
		filter_add(cf, cfg_getnsec(cfg, "filter", i), file);
	policy_conf_load(cf, cfg, file);
	dkim_sign_load(cf, cfg, file, ov != NULL ? ov->keys_from : NULL);
	cf->user = xstrdup(cfg_getstr(cfg, "user"));
	if (cf->user[0] != '\0' && getuid() == 0) {
		struct passwd pwbuf, *pw = NULL;
		char	      buf[4096];

		if (getpwnam_r(cf->user, &pwbuf, buf, sizeof(buf), &pw) != 0 ||
		    pw == NULL)
			config_error(
			    file, 0, "user \"%s\": no such user", cf->user);
		else {
			cf->uid = pw->pw_uid;
			cf->gid = pw->pw_gid;
		}
	}
	if (access(cf->spool_dir, W_OK | X_OK) == -1)
		config_error(file, 0, "spool_directory \"%s\": %s",
		    cf->spool_dir, strerror(errno));

	cfg_free(cfg);
	if (config_errors) {
		config_free(cf);
		return NULL;
	}
	return cf;
}

struct config *
config_load(const char *file, const struct config_overrides *ov)
{
	struct config *cf;

	pthread_mutex_lock(&load_mtx);
	cf = config_load_locked(file, ov);
	pthread_mutex_unlock(&load_mtx);
	return cf;
}

void
config_free(struct config *cf)
{
	size_t i;

	if (cf == NULL)
		return;
	for (i = 0; i < cf->nlisteners; i++)
		free(cf->listeners[i].spec);
	free(cf->listeners);
	for (i = 0; i < cf->nfilters; i++)
		filter_conf_free(&cf->filters[i]);
	policy_conf_free(cf);
	tls_conf_free(&cf->tls);
	dns_conf_free(&cf->dns);
	for (i = 0; i < cf->ndkim_signers; i++)
		dkim_signer_free(cf->dkim_signers[i]);
	free(cf->dkim_signers);
	free(cf->file);
	free(cf->hostname);
	free(cf->banner);
	free(cf->upstream_spec);
	free(cf->spool_dir);
	free(cf->quarantine_dir);
	free(cf->user);
	free(cf);
}

void
config_print_limits(void)
{
	static const char *const units[] = { "", " bytes", " s", " ms" };
	size_t			 i;

	for (i = 0; i < LIM_COUNT; i++)
		printf("%-28s %10ld%-6s [%ld, %ld]  %s\n", limit_defs[i].name,
		    limit_defs[i].def, units[limit_defs[i].unit],
		    limit_defs[i].min, limit_defs[i].max, limit_defs[i].doc);
}
