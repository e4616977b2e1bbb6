/*
 * av_filter.c - the built-in "antivirus" filter: every message scanned by
 * ClamAV at EOM, in moat's isolated scanner process (backend = scanner,
 * the default: moat-scand, filters/av/scanner.c) or by a clamd the site
 * already runs (backend = clamd: INSTREAM, filters/av/clamd.c); plus an
 * attachment policy by file name extension and detected type, inside
 * archives too (scanner backend: ClamAV reports every object it unpacks).
 *
 * Evidence (the policy decides; default rules below):
 *	VIRUS		 signature names            -> reject 554 5.7.1
 *	AV_INCOMPLETE	 a scan limit was hit        -> tempfail 451 4.7.0
 *	AV_ENCRYPTED, AV_BROKEN, AV_MACROS, AV_PHISHING, AV_HEURISTIC
 *			 ClamAV heuristics, scored only
 *	ATTACHMENT_BLOCKED  block_extensions / block_types -> reject 554 5.7.1
 *	ATTACHMENT_SUSPECT  suspect_extensions / suspect_types, scored
 * A scan that fails (scanner down, restarting, overloaded, timed out,
 * database not loaded yet) is a filter error: on_error applies (default
 * tempfail 451 4.3.0), so no message passes unscanned unless the site
 * says on_error = continue. With scanned_header = NAME, clean mail gets
 * "NAME: clean (moat, ClamAV)".
 *
 * Threading: the session's loop thread. A message owns its scan (cookie);
 * cancel() drops it, and a late answer finds no request.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clamd.h"
#include "config.h"
#include "filter_api.h"
#include "filter_opts.h"
#include "log.h"
#include "scanner.h"
#include "scanproto.h"
#include "util.h"

#ifndef MOAT_SCAND_PATH
#define MOAT_SCAND_PATH "/usr/local/libexec/moat/moat-scand"
#endif

enum backend { BE_SCANNER = 0, BE_CLAMD };

enum av_score {
	SC_VIRUS = 0,
	SC_INCOMPLETE,
	SC_ENCRYPTED,
	SC_BROKEN,
	SC_MACROS,
	SC_PHISHING,
	SC_HEURISTIC,
	SC_BLOCKED,
	SC_SUSPECT,
	SC_COUNT
};
static const char *const score_names[SC_COUNT] = { "virus", "incomplete",
	"encrypted", "broken", "macros", "phishing", "heuristic", "blocked",
	"suspect" };
static const char *const score_symbols[SC_COUNT] = { "VIRUS", "AV_INCOMPLETE",
	"AV_ENCRYPTED", "AV_BROKEN", "AV_MACROS", "AV_PHISHING", "AV_HEURISTIC",
	"ATTACHMENT_BLOCKED", "ATTACHMENT_SUSPECT" };
static const double default_scores[SC_COUNT] = { 10, 0, 1, 2, 1, 2, 1, 10, 2 };

#define LIST_MAX 128

struct wordlist {
	char  *w[LIST_MAX];
	size_t n;
};

struct av_conf {
	enum backend	  backend;
	struct clamd_addr clamd;
	unsigned	  timeout_ms;	   /* the filter's stage timeout */
	unsigned	  scan_timeout_ms; /* a little less: the scan's own */
	char		 *scanned_header;
	struct wordlist	  block_ext, block_type, suspect_ext, suspect_type;
	double		  score[SC_COUNT];
	char		  name[64];
};

struct av_scan {
	struct av_conf	   *c;
	struct filter_token token;
	struct scanner_req *sreq;
	struct clamd_req   *creq;
};

static const char *const av_options[] = { "backend", "database", "scanner",
	"tmpdir", "scan_threads", "max_scansize", "max_filesize",
	"max_recursion", "max_files", "max_scantime", "heuristics", "sandbox",
	"queue_max", "clamd", "scanned_header", "block_extensions",
	"block_types", "suspect_extensions", "suspect_types", "score_virus",
	"score_incomplete", "score_encrypted", "score_broken", "score_macros",
	"score_phishing", "score_heuristic", "score_blocked", "score_suspect",
	NULL };

static const struct filter_rule av_rules[] = {
	{ "VIRUS", "reject", "554 5.7.1 Virus found: %{detail}" },
	{ "AV_INCOMPLETE", "tempfail",
	    "451 4.7.0 The message could not be scanned completely, try "
	    "again later" },
	{ "ATTACHMENT_BLOCKED", "reject",
	    "554 5.7.1 Attachment not allowed: %{detail}" },
	{ NULL, NULL, NULL }
};

/* ---------------------------------------------------------- configuration */

static void
wordlist_free(struct wordlist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->w[i]);
	l->n = 0;
}

/* "exe, scr com" -> lower-case words; a leading '.' is dropped. */
static int
wordlist_parse(const struct filter_conf *fc, const char *key, int types,
    struct wordlist *l)
{
	size_t first = l->n, i, k;
	char  *w;

	if (filter_opt_words(fc, key, NULL, l->w, LIST_MAX, &l->n) == -1)
		return -1;
	for (i = first; i < l->n; i++) {
		w = l->w[i];
		if (!types && *w == '.')
			memmove(w, w + 1, strlen(w));
		if (*w == '\0' || strlen(w) > 31) {
			filter_conf_error(fc, "%s: bad entry \"%s\"", key, w);
			return -1;
		}
		for (k = 0; w[k] != '\0'; k++)
			w[k] = types ? (char)toupper((unsigned char)w[k])
				     : (char)tolower((unsigned char)w[k]);
		if (types && strncmp(w, "CL_TYPE_", 8) == 0)
			memmove(w, w + 8, strlen(w + 8) + 1);
	}
	return 0;
}

static int
wordlist_has(const struct wordlist *l, const char *w)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (strcmp(l->w[i], w) == 0)
			return 1;
	return 0;
}

static int
has_attachment_policy(const struct av_conf *c)
{
	return c->block_ext.n + c->block_type.n + c->suspect_ext.n +
	    c->suspect_type.n >
	    0;
}

/* The limits passed on to moat-scand as -o key=value, checked here. */
static const struct scan_limit {
	const char     *key;
	enum limit_unit unit;
	long		min, max, def; /* def < 0: from the filter's timeout */
} scan_limits[] = {
	{ "max_scantime", UNIT_MSEC, 100, 3600000, -1 },
	{ "max_scansize", UNIT_BYTES, 1024, 4L << 30, 100L << 20 },
	{ "max_filesize", UNIT_BYTES, 1024, 4L << 30, 50L << 20 },
	{ "max_recursion", UNIT_COUNT, 1, 64, 16 },
	{ "max_files", UNIT_COUNT, 1, 1000000, 10000 },
	{ "queue_max", UNIT_COUNT, 1, 1000000, 1024 },
};

/* Every -o for moat-scand, into opt[]; the number of them, or -1. */
static int
scanner_opts(
    const struct filter_conf *fc, const struct av_conf *c, char opt[][64])
{
	const struct scan_limit *l;
	const char		*v;
	long			 n;
	size_t			 i;
	int			 bad = 0, k = 0, b;

	for (i = 0; i < nitems(scan_limits); i++) {
		l = &scan_limits[i];
		/* A scan must end (libclamav's limit) before the filter
		 * times out. */
		n = l->def >= 0 ? l->def : (long)c->timeout_ms * 2 / 3;
		v = filter_conf_get(fc, l->key);
		if (v != NULL &&
		    (limit_parse_value(l->unit, v, &n) == -1 || n < l->min ||
			n > l->max)) {
			filter_conf_error(fc,
			    "%s: \"%s\" is out of range or malformed", l->key,
			    v);
			bad = 1;
		} else if (l->def < 0 && n + 1000 > (long)c->timeout_ms) {
			filter_conf_error(fc,
			    "%s (%ld ms) must be at least 1 s below the "
			    "filter's timeout (%u ms)",
			    l->key, n, c->timeout_ms);
			bad = 1;
		}
		snprintf(opt[k++], 64, "%s=%ld", l->key, n);
	}
	bad |= filter_opt_bool(fc, "heuristics", 1, &b) != 0;
	snprintf(opt[k++], 64, "heuristics=%s", b ? "yes" : "no");
	if ((v = filter_conf_get(fc, "sandbox")) == NULL)
		v = "yes";
	if (strcmp(v, "yes") != 0 && strcmp(v, "no") != 0 &&
	    strcmp(v, "log") != 0) {
		filter_conf_error(
		    fc, "sandbox: \"%s\" is not yes, no or log", v);
		bad = 1;
	}
	snprintf(opt[k++], 64, "sandbox=%s", v);
	/* Attachment policy needs the list of unpacked objects. */
	snprintf(
	    opt[k++], 64, "files=%s", has_attachment_policy(c) ? "yes" : "no");
	return bad ? -1 : k;
}

static void av_fini_filter(void *ctx);

static int
init_scanner(const struct filter_conf *fc, struct av_conf *c)
{
	char		    opt[12][64];
	struct scanner_spec sp;
	char		    err[256];
	double		    threads = 0;
	int		    bad = 0, k, i;

	memset(&sp, 0, sizeof(sp));
	sp.path = filter_conf_get(fc, "scanner");
	if (sp.path == NULL)
		sp.path = MOAT_SCAND_PATH;
	if (access(sp.path, X_OK) == -1) {
		filter_conf_error(
		    fc, "scanner: %s: %s", sp.path, strerror(errno));
		bad = 1;
	}
	sp.database = filter_conf_get(fc, "database");
	if (sp.database == NULL)
		sp.database = "/var/lib/clamav";
	if (access(sp.database, R_OK) == -1) {
		filter_conf_error(
		    fc, "database: %s: %s", sp.database, strerror(errno));
		bad = 1;
	}
	sp.tmpdir = filter_conf_get(fc, "tmpdir");
	bad |= filter_opt_num(
	    fc, "scan_threads", 0, 256, "a number of threads", &threads);
	sp.threads = (unsigned)threads;
	if ((k = scanner_opts(fc, c, opt)) == -1 || bad)
		return -1;
	for (i = 0; i < k; i++)
		sp.opts[i] = opt[i];
	sp.opts[k] = NULL;
	if (scanner_config(&sp, err, sizeof(err)) == -1) {
		filter_conf_error(fc, "%s", err);
		return -1;
	}
	return 0;
}

static int
av_init_filter(const struct filter_conf *fc, void **ctx)
{
	struct av_conf *c = xcalloc(1, sizeof(*c));
	const char     *v;
	char		key[64], err[256];
	int		bad = 0, i;

	snprintf(c->name, sizeof(c->name), "%s", filter_conf_name(fc));
	c->timeout_ms = fc->timeout_ms > 0 ? (unsigned)fc->timeout_ms : 30000;
	/* Our timer fires first, so a hung scanner is seen as such (killed)
	 * rather than as a cancelled call. */
	c->scan_timeout_ms =
	    c->timeout_ms > 2000 ? c->timeout_ms - 500 : c->timeout_ms;
	if ((v = filter_conf_get(fc, "backend")) != NULL) {
		if (strcmp(v, "clamd") == 0)
			c->backend = BE_CLAMD;
		else if (strcmp(v, "scanner") != 0) {
			filter_conf_error(
			    fc, "backend: \"%s\" is not scanner or clamd", v);
			bad = 1;
		}
	}
	bad |= wordlist_parse(fc, "block_extensions", 0, &c->block_ext) != 0;
	bad |= wordlist_parse(fc, "block_types", 1, &c->block_type) != 0;
	bad |=
	    wordlist_parse(fc, "suspect_extensions", 0, &c->suspect_ext) != 0;
	bad |= wordlist_parse(fc, "suspect_types", 1, &c->suspect_type) != 0;
	for (i = 0; i < SC_COUNT; i++) {
		c->score[i] = default_scores[i];
		snprintf(key, sizeof(key), "score_%s", score_names[i]);
		bad |= filter_opt_num(
		    fc, key, -1000, 1000, "a number (a score)", &c->score[i]);
	}
	if ((v = filter_conf_get(fc, "scanned_header")) != NULL && *v != '\0')
		c->scanned_header = xstrdup(v);
	if (c->backend == BE_CLAMD) {
		if ((v = filter_conf_get(fc, "clamd")) == NULL)
			v = "unix:/run/clamav/clamd.ctl";
		if (clamd_addr_parse(v, &c->clamd, err, sizeof(err)) == -1) {
			filter_conf_error(fc, "clamd: %s", err);
			bad = 1;
		}
		if (has_attachment_policy(c)) {
			filter_conf_error(fc,
			    "the attachment policy (block_*, suspect_*) needs "
			    "backend = scanner: clamd does not report what it "
			    "unpacked");
			bad = 1;
		}
	} else if (!bad)
		bad |= init_scanner(fc, c) != 0;
	if (bad) {
		av_fini_filter(c);
		return -1;
	}
	*ctx = c;
	return 0;
}

static void
av_fini_filter(void *ctx)
{
	struct av_conf *c = ctx;

	wordlist_free(&c->block_ext);
	wordlist_free(&c->block_type);
	wordlist_free(&c->suspect_ext);
	wordlist_free(&c->suspect_type);
	free(c->scanned_header);
	free(c);
}

/* ---------------------------------------------------------- results */

/* Which heuristic a "Heuristics.*" name is. */
static enum av_score
heuristic_kind(const char *name)
{
	if (strncmp(name, "Heuristics.Encrypted.", 21) == 0)
		return SC_ENCRYPTED;
	if (strncmp(name, "Heuristics.Broken.", 18) == 0)
		return SC_BROKEN;
	if (strstr(name, "Macros") != NULL)
		return SC_MACROS;
	if (strncmp(name, "Heuristics.Phishing.", 20) == 0)
		return SC_PHISHING;
	return SC_HEURISTIC;
}

static void
names_join(
    char *out, size_t outlen, const char names[][SCAN_NAME_MAX + 1], unsigned n)
{
	size_t	 o = 0;
	unsigned i;

	out[0] = '\0';
	for (i = 0; i < n && o + 1 < outlen; i++)
		o += (size_t)snprintf(
		    out + o, outlen - o, "%s%s", i > 0 ? " " : "", names[i]);
}

/* The extension of a file name: after the last '.', lower-case. */
static int
extension_of(const char *name, char *ext, size_t extlen)
{
	size_t	    len = strlen(name), i;
	const char *dot;

	/* Windows ignores trailing dots and spaces: "x.exe. " is x.exe. */
	while (len > 0 && (name[len - 1] == '.' || name[len - 1] == ' '))
		len--;
	for (dot = NULL, i = 0; i < len; i++)
		if (name[i] == '.')
			dot = name + i;
		else if (name[i] == '/' || name[i] == '\\')
			dot = NULL;
	if (dot == NULL || (size_t)(name + len - dot - 1) >= extlen ||
	    name + len - dot - 1 == 0)
		return -1;
	for (i = 0; dot + 1 + i < name + len; i++)
		ext[i] = (char)tolower((unsigned char)dot[1 + i]);
	ext[i] = '\0';
	return 0;
}

/* ATTACHMENT_* evidence from the objects ClamAV looked at. */
static void
attachments(struct av_scan *s, const struct scan_reply *r)
{
	const struct av_conf *c = s->c;
	char		      ext[32];
	unsigned	      i, blocked = 0, suspect = 0;
	int		      has_ext;

	for (i = 0; i < r->nfiles; i++) {
		const struct scan_file *f = &r->files[i];

		if (f->depth == 0)
			continue; /* the message itself */
		has_ext =
		    f->has_name && extension_of(f->name, ext, sizeof(ext)) == 0;
		if ((has_ext && wordlist_has(&c->block_ext, ext)) ||
		    wordlist_has(&c->block_type, f->type)) {
			if (blocked++ < 4)
				filter_evidence(&s->token,
				    score_symbols[SC_BLOCKED],
				    blocked == 1 ? c->score[SC_BLOCKED] : 0,
				    "%s (%s)", f->has_name ? f->name : "-",
				    f->type);
		} else if ((has_ext && wordlist_has(&c->suspect_ext, ext)) ||
		    wordlist_has(&c->suspect_type, f->type)) {
			if (suspect++ < 4)
				filter_evidence(&s->token,
				    score_symbols[SC_SUSPECT],
				    suspect == 1 ? c->score[SC_SUSPECT] : 0,
				    "%s (%s)", f->has_name ? f->name : "-",
				    f->type);
		}
	}
}

static enum filter_verdict
verdict(struct av_scan *s, const struct scan_reply *r, const char *err)
{
	const struct av_conf *c = s->c;
	char		      names[SCAN_NAMES_MAX * (SCAN_NAME_MAX + 1)];
	unsigned	      i, seen = 0;
	enum av_score	      k;

	if (r == NULL || r->status == SCAN_ERROR || r->status == SCAN_BUSY ||
	    r->status == SCAN_NOTREADY) {
		log_warn("event=av-failed filter=%s reason=\"%s\"", c->name,
		    r == NULL	      ? err
			: r->error[0] ? r->error
				      : scan_status_name(r->status));
		return FILTER_ERROR;
	}
	if (r->nvirus > 0) {
		names_join(names, sizeof(names), r->virus, r->nvirus);
		filter_evidence(&s->token, score_symbols[SC_VIRUS],
		    c->score[SC_VIRUS], "%s", names);
	}
	if (r->nlimit > 0) {
		names_join(names, sizeof(names), r->limit, r->nlimit);
		filter_evidence(&s->token, score_symbols[SC_INCOMPLETE],
		    c->score[SC_INCOMPLETE], "%s", names);
	} else if (r->status == SCAN_INCOMPLETE)
		filter_evidence(&s->token, score_symbols[SC_INCOMPLETE],
		    c->score[SC_INCOMPLETE], "scan limit reached");
	/* One evidence per kind of heuristic, scored once. */
	for (i = 0; i < r->nheur; i++) {
		k = heuristic_kind(r->heur[i]);
		if (seen & (1u << k))
			continue;
		seen |= 1u << k;
		filter_evidence(
		    &s->token, score_symbols[k], c->score[k], "%s", r->heur[i]);
	}
	attachments(s, r);
	if (c->scanned_header != NULL && r->status == SCAN_CLEAN &&
	    r->nvirus == 0)
		filter_header_add(
		    &s->token, c->scanned_header, "clean (moat, ClamAV)");
	return FILTER_CONTINUE;
}

static void
scan_done(void *arg, const struct scan_reply *r, const char *err)
{
	struct av_scan	   *s = arg;
	enum filter_verdict v;

	s->sreq = NULL;
	s->creq = NULL;
	v = verdict(s, r, err);
	filter_complete(&s->token, v, NULL);
	free(s);
}

/* ---------------------------------------------------------- stages */

static enum filter_verdict
av_stage(void *ctx, struct filter_call *call, struct filter_reply *reply)
{
	struct av_conf *c = ctx;
	struct av_scan *s;
	const char     *err = NULL;
	size_t		len;
	int		fd;

	if (call->stage != FILTER_STAGE_EOM)
		return FILTER_CONTINUE;
	if ((fd = filter_message_fd(&call->token, &len)) == -1) {
		log_warn("event=av-failed filter=%s reason=\"message: %s\"",
		    c->name, strerror(errno));
		return FILTER_ERROR;
	}
	s = xcalloc(1, sizeof(*s));
	s->c = c;
	s->token = call->token;
	if (c->backend == BE_SCANNER)
		s->sreq = scanner_scan(call->token.loop, fd, len,
		    SCAN_F_DOTSTUFFED, c->scan_timeout_ms, scan_done, s, &err);
	else
		s->creq = clamd_scan(call->token.loop, &c->clamd, fd, len,
		    c->scan_timeout_ms, scan_done, s, &err);
	if (s->sreq == NULL && s->creq == NULL) {
		log_warn("event=av-failed filter=%s reason=\"%s\"", c->name,
		    err != NULL ? err : "?");
		free(s);
		return FILTER_ERROR;
	}
	call->cookie = s;
	return FILTER_PENDING;
}

static void
av_cancel(void *ctx, void *cookie)
{
	struct av_scan *s = cookie;

	if (s == NULL)
		return;
	if (s->sreq != NULL)
		scanner_cancel(s->sreq);
	if (s->creq != NULL)
		clamd_cancel(s->creq);
	free(s);
}

const struct filter_ops avfilter_ops = {
	.abi = FILTER_ABI_VERSION,
	.name = "antivirus",
	.stages = FILTER_STAGE_BIT(FILTER_STAGE_EOM),
	.options = av_options,
	.init = av_init_filter,
	.fini = av_fini_filter,
	.stage = av_stage,
	.cancel = av_cancel,
	.rules = av_rules,
};
