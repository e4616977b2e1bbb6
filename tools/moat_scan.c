/*
 * moat_scan.c - `moat scan`: run the configured filter chain and policy on
 * one message, as moatd would for a client with the given envelope, and
 * say what was found and what moatd would do ("why was this mail
 * rejected?"). Nothing is sent anywhere.
 *
 * The stages run in milter order (CONNECT, HELO, MAIL, RCPT per
 * recipient, DATA, HEADER per field, EOH, BODY, EOM) through the same
 * chain runner and policy engine as moatd, with the same early decisions:
 * a refusal at MAIL stops there, as it would in a session. Recipients of
 * another policy group than the first are reported as deferred (452).
 *
 * Single-threaded apart from the worker pool; the chain's asynchronous
 * completions run on this process's own event loop.
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <arpa/inet.h>
#include <sys/stat.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chain.h"
#include "config.h"
#include "dataframe.h"
#include "evidence.h"
#include "hdredit.h"
#include "headers.h"
#include "loop.h"
#include "moat.h"
#include "policy.h"
#include "runtime.h"
#include "spool.h"
#include "scanner.h"
#include "runas.h"
#include "util.h"
#include "workers.h"

/* Exit statuses: the action. */
#define SCAN_EXIT_TEMPFAIL   3
#define SCAN_EXIT_REJECT     4
#define SCAN_EXIT_DISCARD    5
#define SCAN_EXIT_QUARANTINE 6
#define SCAN_EXIT_ADD_HEADER 7

#define SCAN_SID 1
#define MSG_MAX	 (256L * 1024 * 1024)

struct field {
	char *name, *value;
};

struct rcpt_result {
	const char *addr;
	const char *group;
	char	    reply[600]; /* "" = accepted */
};

struct scan {
	struct runtime		  *rt;
	struct loop		  *loop;
	struct chain_run	   run;
	struct filter_env	   env;
	struct sockaddr_storage	   ss;
	struct evidence_set	   ev;
	struct hdr_edits	   edits;
	char			  *ar[AR_CLAUSES_MAX];
	size_t			   nar;
	struct policy_seen	   seen;
	const struct policy_group *group, *rgroup;

	/* The message, canonical (CRLF), as the client would send it. */
	struct spool spool; /* the same in wire form (dot-stuffed), for
			       filter_message_fd() */
	char	     *msg;
	size_t	      len, hdrlen;
	struct field *fields;
	size_t	      nfields;

	const char	  **rcpts; /* asked for */
	size_t		    nrcpts;
	struct rcpt_result *rr;
	const char	  **accepted;
	size_t		    naccepted;

	/* Where we are. */
	enum filter_stage stage;
	size_t		  idx; /* recipient, field or body offset */
	size_t		  ev_from;
	int		  done;
	int		  pending;

	/* The outcome. */
	int		       decided; /* before the end */
	int		       allow;	/* an accept rule fired */
	char		       decided_at[16];
	char		       decided_by[40];
	struct policy_decision d;
};

static struct scan *the_scan;

static struct chain_run *
scan_lookup(struct loop *l, uint64_t sid)
{
	return the_scan != NULL && sid == SCAN_SID ? &the_scan->run : NULL;
}

/* ------------------------------------------------------ the message */

static void
field_cb(void *arg, const char *name, size_t namelen, const char *value,
    size_t valuelen)
{
	struct scan *sc = arg;

	sc->fields =
	    xrealloc(sc->fields, (sc->nfields + 1) * sizeof(*sc->fields));
	sc->fields[sc->nfields].name = xstrndup(name, namelen);
	sc->fields[sc->nfields].value = xstrndup(value, valuelen);
	sc->nfields++;
	policy_header_seen(
	    sc->rt->cf, &sc->seen, name, namelen, value, valuelen);
}

static void
scan_spool_emit(void *arg, const char *p, size_t n)
{
	(void)spool_write(arg, p, n);
}

/* Read the file; bare LF line ends become CRLF, as a client sends them. */
static int
read_message(struct scan *sc, const char *path)
{
	FILE		*f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	struct evbuffer *b;
	char		 buf[65536];
	size_t		 n, i, start, total = 0;
	int		 cr = 0;
	char		*hbuf;
	struct hdrparse	 hp;
	struct dotstuff	 ds;

	if (f == NULL) {
		fprintf(stderr, "moat: scan: %s: %s\n", path, strerror(errno));
		return -1;
	}
	b = evbuffer_new();
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
		/* Copy runs; a CR goes in front of each bare LF. */
		for (i = start = 0; i < n; i++) {
			if (buf[i] == '\n' &&
			    !(i > 0 ? buf[i - 1] == '\r' : cr)) {
				evbuffer_add(b, buf + start, i - start);
				evbuffer_add(b, "\r", 1);
				start = i;
			}
		}
		evbuffer_add(b, buf + start, n - start);
		cr = buf[n - 1] == '\r';
		if ((total += n) > MSG_MAX) {
			fprintf(stderr,
			    "moat: scan: %s: larger than %ld bytes\n", path,
			    MSG_MAX);
			evbuffer_free(b);
			if (f != stdin)
				fclose(f);
			return -1;
		}
	}
	if (f != stdin)
		fclose(f);
	sc->len = evbuffer_get_length(b);
	if (sc->len >= 2 &&
	    memcmp(evbuffer_pullup(b, -1) + sc->len - 2, "\r\n", 2) != 0) {
		evbuffer_add(b, "\r\n", 2);
		sc->len += 2;
	}
	sc->msg = xmalloc(sc->len + 1);
	evbuffer_remove(b, sc->msg, sc->len);
	sc->msg[sc->len] = '\0';
	evbuffer_free(b);
	/* A file cut from an mbox may begin with its "From " line. */
	if (sc->len > 5 && memcmp(sc->msg, "From ", 5) == 0) {
		char *eol = memchr(sc->msg, '\n', sc->len);

		if (eol != NULL) {
			sc->len -= (size_t)(eol + 1 - sc->msg);
			memmove(sc->msg, eol + 1, sc->len + 1);
		}
	}

	/* The wire form, as moatd spools it (memory only). */
	spool_init(&sc->spool, NULL, (size_t)-1);
	dotstuff_init(&ds, scan_spool_emit, &sc->spool);
	dotstuff_feed(&ds, sc->msg, sc->len);
	dotstuff_end(&ds);
	if (sc->spool.error != 0) {
		fprintf(stderr, "moat: scan: %s: spooling: %s\n", path,
		    strerror(sc->spool.error));
		return -1;
	}

	hbuf = xmalloc((size_t)LIMIT(sc->rt->cf, MAX_HEADER_SIZE));
	hdrparse_init(&hp, hbuf, (size_t)LIMIT(sc->rt->cf, MAX_HEADER_SIZE),
	    (size_t)LIMIT(sc->rt->cf, MAX_HEADER_COUNT), field_cb, sc);
	sc->hdrlen = hdrparse_feed(&hp, sc->msg, sc->len);
	if (!hp.in_body)
		hdrparse_finish(&hp);
	free(hbuf);
	if (hp.error != HDR_OK) {
		fprintf(stderr,
		    "moat: scan: %s: header field too long or too many "
		    "fields (moatd would answer 552)\n",
		    path);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------ the stages */

static void scan_next(struct scan *);

static void
set_decision(struct scan *sc, enum policy_action a, int code, const char *enh,
    const char *text, const char *reason)
{
	sc->decided = 1;
	snprintf(sc->decided_at, sizeof(sc->decided_at), "%s",
	    filter_stage_name(sc->stage));
	sc->d.action = a;
	sc->d.code = code;
	snprintf(sc->d.enh, sizeof(sc->d.enh), "%s", enh);
	snprintf(sc->d.text, sizeof(sc->d.text), "%s", text);
	snprintf(sc->d.reason, sizeof(sc->d.reason), "%s", reason);
}

/* A stage's outcome: the filters' verdict, then the policy's rules. */
static void
scan_after(
    struct scan *sc, enum filter_verdict v, const struct filter_reply *fr)
{
	const struct policy_group *g;
	struct policy_decision	   d;
	char			   reason[128];
	int			   rcpt = sc->stage == FILTER_STAGE_RCPT;

	if (v == FILTER_CONTINUE) {
		g = rcpt
		    ? sc->rgroup
		    : (sc->group != NULL ? sc->group
					 : policy_group_for(sc->rt->policy,
					       NULL, sc->env.auth != NULL));
		if (policy_early(sc->rt->policy, g, &sc->ev, sc->ev_from,
			(int)sc->stage, &d)) {
			if (d.action == ACT_REJECT)
				v = FILTER_REJECT;
			else if (d.action == ACT_TEMPFAIL)
				v = FILTER_TEMPFAIL;
			else if (d.action == ACT_DISCARD) {
				set_decision(sc, ACT_DISCARD, 250, "2.0.0",
				    "Ok: discarded", d.reason);
				sc->decided = 0;
				return;
			} else if (d.action == ACT_ACCEPT) {
				sc->run.accepted = ~0u;
				sc->allow = 1;
			}
			if (v != FILTER_CONTINUE) {
				if (rcpt) {
					snprintf(sc->rr[sc->idx].reply,
					    sizeof(sc->rr[0].reply),
					    "%d %s %s (%s)", d.code, d.enh,
					    d.text, d.reason);
					evidence_truncate(&sc->ev, sc->ev_from);
					return;
				}
				set_decision(sc, d.action, d.code, d.enh,
				    d.text, d.reason);
				return;
			}
		}
		return;
	}
	if (v == FILTER_DISCARD && sc->stage != FILTER_STAGE_EOM &&
	    sc->stage > FILTER_STAGE_HELO) {
		/* Milter: the message is discarded, the stages go on. */
		set_decision(
		    sc, ACT_DISCARD, 250, "2.0.0", "Ok: discarded", "filter");
		sc->decided = 0;
		return;
	}
	snprintf(reason, sizeof(reason), "filter %s",
	    sc->run.decided_by ? sc->run.decided_by : "?");
	if (rcpt && (v == FILTER_REJECT || v == FILTER_TEMPFAIL)) {
		snprintf(sc->rr[sc->idx].reply, sizeof(sc->rr[0].reply),
		    "%d %s %s (%s)",
		    fr->code		     ? fr->code
			: v == FILTER_REJECT ? 550
					     : 451,
		    fr->enh[0]		     ? fr->enh
			: v == FILTER_REJECT ? "5.7.1"
					     : "4.7.1",
		    fr->text[0] ? fr->text : "Recipient refused", reason);
		evidence_truncate(&sc->ev, sc->ev_from);
		return;
	}
	if (v == FILTER_REJECT)
		set_decision(sc, ACT_REJECT, fr->code ? fr->code : 550,
		    fr->enh[0] ? fr->enh : "5.7.1",
		    fr->text[0] ? fr->text : "Message refused", reason);
	else if (v == FILTER_TEMPFAIL)
		set_decision(sc, ACT_TEMPFAIL, fr->code ? fr->code : 451,
		    fr->enh[0] ? fr->enh : "4.7.1",
		    fr->text[0] ? fr->text : "Try again later", reason);
	else if (v == FILTER_DISCARD)
		set_decision(
		    sc, ACT_DISCARD, 250, "2.0.0", "Ok: discarded", reason);
}

static void
scan_done_cb(void *arg, enum filter_verdict v, const struct filter_reply *r)
{
	struct scan *sc = arg;

	sc->pending = 0;
	scan_after(sc, v, r);
	scan_next(sc);
}

/* Run one stage; 1 if it went asynchronous. */
static int
scan_stage(struct scan *sc, enum filter_stage st)
{
	enum filter_verdict v;

	sc->stage = st;
	sc->run.sink.ev = &sc->ev;
	sc->run.sink.edits = st == FILTER_STAGE_EOM ? &sc->edits : NULL;
	sc->run.sink.ar = sc->ar;
	sc->run.sink.nar = &sc->nar;
	sc->run.sink.spool = st == FILTER_STAGE_EOM ? &sc->spool : NULL;
	sc->ev_from = sc->ev.n;
	v = chain_run_stage(&sc->run, st, &sc->env, scan_done_cb, sc);
	if (v == FILTER_PENDING) {
		sc->pending = 1;
		return 1;
	}
	scan_after(sc, v, &sc->run.reply);
	return 0;
}

/* The state machine: returns when a stage is pending or all is done. */
static void
scan_next(struct scan *sc)
{
	size_t n;

	while (!sc->decided && !sc->done) {
		switch (sc->stage) {
		case FILTER_STAGE_CONNECT:
			if (sc->idx++ == 0) {
				if (scan_stage(sc, FILTER_STAGE_CONNECT))
					return;
				sc->idx = 1;
				continue;
			}
			sc->stage = FILTER_STAGE_HELO;
			sc->idx = 0;
			if (scan_stage(sc, FILTER_STAGE_HELO))
				return;
			continue;
		case FILTER_STAGE_HELO:
			sc->stage = FILTER_STAGE_MAIL;
			if (scan_stage(sc, FILTER_STAGE_MAIL))
				return;
			continue;
		case FILTER_STAGE_MAIL:
			sc->stage = FILTER_STAGE_RCPT;
			sc->idx = 0;
			goto rcpt;
		case FILTER_STAGE_RCPT:
			/* The recipient just run: accepted? */
			if (sc->rr[sc->idx].reply[0] == '\0') {
				if (sc->group == NULL)
					sc->group = sc->rgroup;
				sc->accepted[sc->naccepted++] =
				    sc->rcpts[sc->idx];
			}
			sc->idx++;
rcpt:
			while (sc->idx < sc->nrcpts) {
				sc->rgroup = policy_group_for(sc->rt->policy,
				    sc->rcpts[sc->idx], sc->env.auth != NULL);
				sc->rr[sc->idx].addr = sc->rcpts[sc->idx];
				sc->rr[sc->idx].group =
				    policy_group_name(sc->rgroup);
				if (sc->group != NULL &&
				    sc->rgroup != sc->group) {
					snprintf(sc->rr[sc->idx].reply,
					    sizeof(sc->rr[0].reply),
					    "452 4.5.3 Recipient has another "
					    "policy, send it in a separate "
					    "transaction");
					sc->idx++;
					continue;
				}
				sc->run.mask = policy_group_mask(sc->rgroup);
				sc->env.group = policy_group_name(sc->rgroup);
				sc->env.rcpt = sc->rcpts[sc->idx];
				sc->stage = FILTER_STAGE_RCPT;
				if (scan_stage(sc, FILTER_STAGE_RCPT))
					return;
				break;
			}
			if (sc->idx < sc->nrcpts)
				continue; /* the RCPT stage just ran */
			sc->env.rcpt = NULL;
			if (sc->naccepted == 0) {
				sc->stage = FILTER_STAGE_RCPT;
				set_decision(sc, ACT_REJECT, 554, "5.5.1",
				    "Error: no valid recipients",
				    "every recipient refused");
				return;
			}
			sc->run.mask = policy_group_mask(sc->group);
			sc->env.rcpts = sc->accepted;
			sc->env.nrcpts = sc->naccepted;
			sc->idx = 0;
			if (scan_stage(sc, FILTER_STAGE_DATA))
				return;
			continue;
		case FILTER_STAGE_DATA:
			sc->idx = 0;
			/* FALLTHROUGH */
		case FILTER_STAGE_HEADER:
			if (sc->stage == FILTER_STAGE_HEADER)
				sc->idx++;
			if (sc->idx < sc->nfields) {
				sc->env.hdr_name = sc->fields[sc->idx].name;
				sc->env.hdr_value = sc->fields[sc->idx].value;
				if (scan_stage(sc, FILTER_STAGE_HEADER))
					return;
				continue;
			}
			sc->env.hdr_name = sc->env.hdr_value = NULL;
			sc->idx = sc->hdrlen;
			if (scan_stage(sc, FILTER_STAGE_EOH))
				return;
			continue;
		case FILTER_STAGE_EOH:
		case FILTER_STAGE_BODY:
			if (sc->stage == FILTER_STAGE_BODY)
				sc->idx += sc->env.bodylen;
			if (sc->idx < sc->len &&
			    chain_wants(sc->rt->chain, FILTER_STAGE_BODY)) {
				n = sc->len - sc->idx;
				if (n > 65536)
					n = 65536;
				sc->env.body = sc->msg + sc->idx;
				sc->env.bodylen = n;
				if (scan_stage(sc, FILTER_STAGE_BODY))
					return;
				continue;
			}
			sc->env.body = NULL;
			sc->env.bodylen = 0;
			sc->env.size = sc->len;
			if (scan_stage(sc, FILTER_STAGE_EOM))
				return;
			continue;
		case FILTER_STAGE_EOM:
		default:
			sc->done = 1;
			break;
		}
	}
	sc->done = 1;
	event_base_loopbreak(loop_base(sc->loop));
}

/* ---------------------------------------------------------- output */

static int
exit_for(enum policy_action a)
{
	switch (a) {
	case ACT_TEMPFAIL:
		return SCAN_EXIT_TEMPFAIL;
	case ACT_REJECT:
		return SCAN_EXIT_REJECT;
	case ACT_DISCARD:
		return SCAN_EXIT_DISCARD;
	case ACT_QUARANTINE:
		return SCAN_EXIT_QUARANTINE;
	case ACT_ADD_HEADER:
		return SCAN_EXIT_ADD_HEADER;
	default:
		return MOAT_EXIT_OK;
	}
}

/* The header fields moat would write (new or changed), one per line. */
static char *
header_changes(struct scan *sc)
{
	struct evbuffer *b = evbuffer_new();
	size_t		 i, n;
	char		*f, *out;

	for (i = 0; i < sc->edits.n; i++) {
		const struct hdr_edit *e = &sc->edits.v[i];

		switch (e->op) {
		case HDR_DELETE_AR_ID:
			evbuffer_add_printf(b,
			    "(removed: Authentication-Results claiming "
			    "\"%s\")\n",
			    e->value);
			break;
		case HDR_CHANGE:
			if (e->value == NULL) {
				evbuffer_add_printf(
				    b, "(removed: %s)\n", e->name);
				break;
			}
			/* FALLTHROUGH */
		default:
			if ((f = hdr_format(e->name, e->value, 8192)) != NULL) {
				evbuffer_add(b, f, strlen(f));
				free(f);
			}
		}
	}
	n = evbuffer_get_length(b);
	out = xmalloc(n + 1);
	evbuffer_remove(b, out, n);
	out[n] = '\0';
	evbuffer_free(b);
	/* CRLF -> LF for the terminal. */
	for (i = n = 0; out[i]; i++)
		if (out[i] != '\r')
			out[n++] = out[i];
	out[n] = '\0';
	return out;
}

static void
print_text(struct scan *sc, const char *hdrs)
{
	size_t i;

	printf("envelope: client=%s helo=%s from=<%s>%s%s\n",
	    sc->env.client_addr, sc->env.helo ? sc->env.helo : "-",
	    sc->env.mail_from, sc->env.auth ? " auth=" : "",
	    sc->env.auth ? sc->env.auth : "");
	for (i = 0; i < sc->nrcpts; i++)
		if (sc->rr[i].addr != NULL)
			printf("rcpt: <%s> group=%s %s\n", sc->rr[i].addr,
			    sc->rr[i].group,
			    sc->rr[i].reply[0] ? sc->rr[i].reply : "accepted");
	printf("evidence:\n");
	if (sc->ev.n == 0)
		printf("  (none)\n");
	for (i = 0; i < sc->ev.n; i++)
		printf("  %-24s %7.2f  %-10s %-7s %s\n", sc->ev.v[i].symbol,
		    sc->ev.v[i].score, sc->ev.v[i].filter,
		    filter_stage_name(sc->ev.v[i].stage),
		    sc->ev.v[i].detail ? sc->ev.v[i].detail : "");
	printf("filters:");
	for (i = 0; i < chain_size(sc->rt->chain); i++)
		printf(" %s(%.1fms)", chain_filter_name(sc->rt->chain, i),
		    (double)sc->run.usec[i] / 1000.0);
	printf("\nscore: %.2f\n", sc->ev.total);
	printf("group: %s\n",
	    sc->group ? policy_group_name(sc->group) : "default");
	printf("action: %s%s%s\n", policy_action_name(sc->d.action),
	    sc->decided ? " at " : "", sc->decided ? sc->decided_at : "");
	if (sc->d.reason[0])
		printf("reason: %s\n", sc->d.reason);
	if (sc->d.action == ACT_REJECT || sc->d.action == ACT_TEMPFAIL ||
	    sc->d.action == ACT_DISCARD)
		printf("reply: %d %s %s\n", sc->d.code, sc->d.enh, sc->d.text);
	if (hdrs[0] != '\0')
		printf("headers:\n%s", hdrs);
}

static void
print_json(struct scan *sc, const char *hdrs, const char *file)
{
	size_t i;

	printf("{");
	if (file != NULL) {
		printf("\"file\":");
		json_str(stdout, file);
		printf(",");
	}
	printf("\"envelope\":{\"client\":");
	json_str(stdout, sc->env.client_addr);
	printf(",\"helo\":");
	json_str(stdout, sc->env.helo);
	printf(",\"from\":");
	json_str(stdout, sc->env.mail_from);
	printf(",\"auth\":");
	if (sc->env.auth)
		json_str(stdout, sc->env.auth);
	else
		printf("null");
	printf("},\"recipients\":[");
	for (i = 0; i < sc->nrcpts; i++) {
		printf("%s{\"address\":", i ? "," : "");
		json_str(stdout, sc->rcpts[i]);
		printf(",\"group\":");
		json_str(stdout, sc->rr[i].group);
		printf(",\"accepted\":%s,\"reply\":",
		    sc->rr[i].addr != NULL && sc->rr[i].reply[0] == '\0'
			? "true"
			: "false");
		json_str(stdout, sc->rr[i].reply);
		printf("}");
	}
	printf("],\"evidence\":[");
	for (i = 0; i < sc->ev.n; i++) {
		printf("%s{\"symbol\":", i ? "," : "");
		json_str(stdout, sc->ev.v[i].symbol);
		printf(",\"score\":%.4g,\"filter\":", sc->ev.v[i].score);
		json_str(stdout, sc->ev.v[i].filter);
		printf(",\"stage\":\"%s\",\"detail\":",
		    filter_stage_name(sc->ev.v[i].stage));
		json_str(stdout, sc->ev.v[i].detail ? sc->ev.v[i].detail : "");
		printf("}");
	}
	printf("],\"filters\":[");
	for (i = 0; i < chain_size(sc->rt->chain); i++) {
		printf("%s{\"name\":", i ? "," : "");
		json_str(stdout, chain_filter_name(sc->rt->chain, i));
		printf(",\"ms\":%.3f}", (double)sc->run.usec[i] / 1000.0);
	}
	printf("],\"score\":%.4g,\"group\":", sc->ev.total);
	json_str(stdout, sc->group ? policy_group_name(sc->group) : "default");
	printf(",\"action\":\"%s\",\"stage\":\"%s\",\"reason\":",
	    policy_action_name(sc->d.action),
	    sc->decided ? sc->decided_at : "eom");
	json_str(stdout, sc->d.reason);
	printf(",\"reply\":");
	if (sc->d.action == ACT_REJECT || sc->d.action == ACT_TEMPFAIL ||
	    sc->d.action == ACT_DISCARD) {
		char r[400];

		snprintf(r, sizeof(r), "%d %s %s", sc->d.code, sc->d.enh,
		    sc->d.text);
		json_str(stdout, r);
	} else
		printf("null");
	printf(",\"headers\":");
	json_str(stdout, hdrs);
	printf(",\"exit\":%d}\n", exit_for(sc->d.action));
}

/* ------------------------------------------------------------ main */

static void
scan_usage(void)
{
	fprintf(stderr,
	    "usage: moat scan [--ip ADDR] [--helo NAME] [--from ADDR] "
	    "--rcpt ADDR [--rcpt ADDR]... [--auth ID] [--json] "
	    "[FILE|DIR|-]...\n"
	    "exit: 0 accept, 3 tempfail, 4 reject, 5 discard, 6 quarantine, "
	    "7 add_header, 1 error, 2 usage (several messages: 0 all "
	    "scanned, 1 not)\n");
}

static void
scan_free(struct scan *sc)
{
	size_t i;

	chain_run_free(&sc->run);
	evidence_free(&sc->ev);
	hdr_edits_free(&sc->edits);
	for (i = 0; i < sc->nar; i++)
		free(sc->ar[i]);
	for (i = 0; i < sc->nfields; i++) {
		free(sc->fields[i].name);
		free(sc->fields[i].value);
	}
	free(sc->fields);
	free(sc->seen.subject);
	spool_free(&sc->spool);
	free(sc->msg);
	free(sc->rr);
	free(sc->accepted);
}

/* What every message of one run shares. */
struct scan_opts {
	struct runtime	       *rt;
	struct loop	       *loop;
	struct sockaddr_storage ss;
	const char	       *ip, *helo, *from, *auth;
	const char	      **rcpts;
	size_t			nrcpts;
	int			json;
	int			many; /* several messages: name each */
	int			from_given;
};

/* the first address of sc->fields[i]'s value into out; 0 or -1 */
static int
field_addr(const struct scan *sc, size_t i, char *out, size_t len)
{
	const char *v = sc->fields[i].value, *lt, *gt, *s, *e;

	if ((lt = strchr(v, '<')) != NULL && (gt = strchr(lt, '>')) != NULL) {
		s = lt + 1;
		e = gt;
	} else {
		s = v + strspn(v, " \t\r\n");
		e = s + strcspn(s, " \t\r\n");
	}
	if ((size_t)(e - s) >= len)
		return -1;
	snprintf(out, len, "%.*s", (int)(e - s), s);
	return strpbrk(out, " \t\r\n<>") == NULL ? 0 : -1;
}

/*
 * The envelope sender a delivered message carries, guessed as
 * SpamAssassin does when it is not told (PerMsgStatus
 * get_envelope_from, without its Received parsing): none when an
 * X-Sender field and a fetchmail Received say the fields may be stale;
 * else the first X-Envelope-From, Envelope-Sender or Return-Path field
 * (RFC 5321 §4.4) that no Received field precedes. "" for <>; 0, or -1
 * if there is none.
 */
static int
return_path(const struct scan *sc, char *out, size_t len)
{
	static const char *const names[] = { "X-Envelope-From",
		"Envelope-Sender", "Return-Path" };
	size_t			 i, j, firstrcvd = sc->nfields;
	int			 xsender = 0, fetchmail = 0;

	for (i = 0; i < sc->nfields; i++) {
		if (ascii_strcasecmp(sc->fields[i].name, "Received") == 0) {
			if (firstrcvd == sc->nfields)
				firstrcvd = i;
			if (strstr(sc->fields[i].value, "(fetchmail") != NULL)
				fetchmail = 1;
		} else if (ascii_strcasecmp(sc->fields[i].name, "X-Sender") ==
			0 &&
		    strchr(sc->fields[i].value, '@') != NULL)
			xsender = 1;
	}
	if (xsender && fetchmail)
		return -1;
	for (j = 0; j < nitems(names); j++)
		for (i = 0; i < sc->nfields; i++) {
			if (ascii_strcasecmp(sc->fields[i].name, names[j]) != 0)
				continue;
			if (i > firstrcvd && j == 0) /* relayed on */
				return -1;
			if (i > firstrcvd) /* maybe a list's */
				break;
			return field_addr(sc, i, out, len);
		}
	return -1;
}

/* One message: its exit status (the action), or -1 if it was not read. */
static int
scan_message(const struct scan_opts *o, const char *path)
{
	struct scan sc;
	char	   *hdrs;
	int	    rc;
	char	    rp[1024];

	memset(&sc, 0, sizeof(sc));
	sc.rt = o->rt;
	sc.loop = o->loop;
	sc.ss = o->ss;
	sc.rcpts = o->rcpts;
	sc.nrcpts = o->nrcpts;
	if (read_message(&sc, path) == -1) {
		scan_free(&sc);
		return -1;
	}
	the_scan = &sc;
	chain_run_init(&sc.run, sc.rt->chain, sc.loop, SCAN_SID);
	evidence_init(&sc.ev);
	hdr_edits_init(&sc.edits);
	sc.rr = xcalloc(sc.nrcpts, sizeof(*sc.rr));
	sc.accepted = xcalloc(sc.nrcpts, sizeof(char *));
	sc.env.sid = SCAN_SID;
	sc.env.client_addr = o->ip;
	sc.env.client_sa = (const struct sockaddr *)&sc.ss;
	sc.env.helo = o->helo;
	sc.env.auth = o->auth;
	sc.env.mail_from = o->from;
	if (o->from_given == 0 && return_path(&sc, rp, sizeof(rp)) == 0)
		sc.env.mail_from = rp; /* a delivered message's envelope */
	sc.stage = FILTER_STAGE_CONNECT;

	scan_next(&sc);
	while (!sc.done && !sc.decided)
		event_base_loop(loop_base(sc.loop), EVLOOP_ONCE);

	if (!sc.decided && sc.d.action != ACT_DISCARD) {
		policy_final(sc.rt->policy,
		    sc.group ? sc.group
			     : policy_group_for(
				   sc.rt->policy, NULL, o->auth != NULL),
		    &sc.ev, &sc.d);
		if (sc.allow) /* as moatd's sp_eom */
			sc.d.action = ACT_ACCEPT;
	}
	if (!sc.decided && sc.d.action != ACT_REJECT &&
	    sc.d.action != ACT_TEMPFAIL && sc.d.action != ACT_DISCARD)
		policy_headers(sc.rt->cf,
		    sc.group ? sc.group
			     : policy_group_for(
				   sc.rt->policy, NULL, o->auth != NULL),
		    &sc.d, &sc.ev, (const char *const *)sc.ar, sc.nar, &sc.seen,
		    &sc.edits);
	hdrs = header_changes(&sc);
	if (o->json)
		print_json(&sc, hdrs, o->many ? path : NULL);
	else {
		if (o->many)
			printf("== %s\n", path);
		print_text(&sc, hdrs);
	}
	fflush(stdout);
	free(hdrs);
	rc = exit_for(sc.d.action);
	scan_free(&sc);
	the_scan = NULL;
	return rc;
}

/*
 * The messages a path names: itself, or a directory's regular files
 * (not dot files), sorted by name. Appended to *v; *dir set for a
 * directory.
 */
static int
expand_path(const char *path, char ***v, size_t *n, int *dir)
{
	struct stat st;

	if (strcmp(path, "-") == 0 || stat(path, &st) == -1 ||
	    !S_ISDIR(st.st_mode)) {
		*v = xrealloc(*v, (*n + 1) * sizeof(**v));
		(*v)[(*n)++] = xstrdup(path);
		return 0;
	}
	*dir = 1;
	if (moat_dir_files(path, v, n) == -1) {
		fprintf(stderr, "moat: scan: %s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}

int
cmd_scan(const char *conffile, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "ip", required_argument, NULL, 'i' },
		{ "helo", required_argument, NULL, 'h' },
		{ "from", required_argument, NULL, 'f' },
		{ "rcpt", required_argument, NULL, 'r' },
		{ "auth", required_argument, NULL, 'a' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'H' },
		{ NULL, 0, NULL, 0 },
	};
	struct scan_opts o;
	struct config	*cf;
	char	       **paths = NULL;
	size_t		 npaths = 0, i, failed = 0;
	int		 ch, rc = 0, r;
	struct in_addr	 a4;
	struct in6_addr	 a6;
	static char	 f[1024];

	memset(&o, 0, sizeof(o));
	o.ip = "127.0.0.1";
	o.helo = "localhost";
	optind = 1;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'i':
			o.ip = optarg;
			break;
		case 'h':
			o.helo = optarg;
			break;
		case 'f':
			o.from = optarg;
			break;
		case 'r':
			o.rcpts =
			    xrealloc(o.rcpts, (o.nrcpts + 1) * sizeof(char *));
			o.rcpts[o.nrcpts++] = optarg;
			break;
		case 'a':
			o.auth = optarg;
			break;
		case 'j':
			o.json = 1;
			break;
		default:
			scan_usage();
			free(o.rcpts);
			return MOAT_EXIT_USAGE;
		}
	}
	if (o.nrcpts == 0) {
		scan_usage();
		free(o.rcpts);
		return MOAT_EXIT_USAGE;
	}
	o.from_given = o.from != NULL;
	if (o.from == NULL)
		o.from = "";
	else if (*o.from == '<') { /* accept <a@b> as well */
		const char *in = o.from + 1;

		snprintf(f, sizeof(f), "%.*s", (int)strcspn(in, ">"), in);
		o.from = f;
	}
	if (inet_pton(AF_INET, o.ip, &a4) == 1) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&o.ss;

		s4->sin_family = AF_INET;
		s4->sin_addr = a4;
	} else if (inet_pton(AF_INET6, o.ip, &a6) == 1) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&o.ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_addr = a6;
	} else {
		fprintf(
		    stderr, "moat: scan: --ip %s is not an address\n", o.ip);
		free(o.rcpts);
		return MOAT_EXIT_USAGE;
	}
	if (optind == argc)
		expand_path("-", &paths, &npaths, &o.many);
	o.many |= argc - optind > 1;
	for (; optind < argc; optind++)
		if (expand_path(argv[optind], &paths, &npaths, &o.many) == -1)
			failed++;

	if ((cf = config_load(conffile, NULL)) == NULL) {
		rc = MOAT_EXIT_FAIL;
		goto out;
	}
	/* The filters' stores and caches are moatd's (runas.h). */
	runas_prepare_dirs(cf);
	runas_drop(cf, RUNAS_READ_ANY);
	if ((o.rt = runtime_build(cf)) == NULL) {
		config_free(cf);
		rc = MOAT_EXIT_FAIL;
		goto out;
	}
	if (workers_start((unsigned)LIMIT(cf, WORKER_THREADS),
		(size_t)LIMIT(cf, WORKER_QUEUE)) == -1) {
		fprintf(stderr, "moat: scan: cannot start worker threads\n");
		runtime_release(o.rt);
		scanner_shutdown();
		rc = MOAT_EXIT_FAIL;
		goto out;
	}
	o.loop = loop_new(0, cf);
	chain_set_lookup(scan_lookup);
	for (i = 0; i < npaths; i++) {
		r = scan_message(&o, paths[i]);
		if (r == -1)
			failed++;
		else
			rc = r;
	}
	/* Several messages: 0 when every one was scanned, else 1. */
	if (o.many)
		rc = failed > 0 ? MOAT_EXIT_FAIL : 0;
	else if (failed > 0)
		rc = MOAT_EXIT_FAIL;
	workers_stop();
	loop_free(o.loop);
	runtime_release(o.rt);
	scanner_shutdown();
out:
	for (i = 0; i < npaths; i++)
		free(paths[i]);
	free(paths);
	free(o.rcpts);
	return rc;
}
