/*
 * moat_quarantine.c - `moat quarantine list|show|release|delete`: the
 * administrator's side of the quarantine store (proxy/quarantine.h).
 *
 * release re-injects the stored message to the upstream (or --to) with
 * its original envelope through tools/smtp_client.c, and deletes it only
 * once every recipient was accepted and the server took the message.
 *
 * Everything read from the store is attacker-influenced (HELO, sender,
 * recipients, evidence details, message headers). The .meta values are
 * sanitised when written and again when read (quarantine.c); message
 * headers shown by `show` have their control bytes and invalid UTF-8
 * escaped, so nothing can drive the administrator's terminal. Only
 * `show --raw` copies bytes as they are (for redirection). JSON strings
 * are escaped per RFC 8259 §7, invalid UTF-8 replaced by U+FFFD.
 *
 * Single-threaded; blocking.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "config.h"
#include "escape.h"
#include "moat.h"
#include "quarantine.h"
#include "smtp_client.h"
#include "util.h"

static void
qusage(void)
{
	fprintf(stderr,
	    "usage: moat quarantine list [--json]\n"
	    "       moat quarantine show ID [--headers | --raw]\n"
	    "       moat quarantine release ID [--to address:port] [--keep]\n"
	    "       moat quarantine delete ID ...\n");
}

/* "2023-11-14T22:13:20Z" */
static void
iso_date(time_t t, char *out, size_t outsz)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, outsz, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Bytes of the character at s: 1 for ASCII, 0 if not valid UTF-8. */
static size_t
char_len(const unsigned char *s, size_t n)
{
	return s[0] < 0x80 ? 1 : utf8_seq(s, n);
}

/* ------------------------------------------------------------- JSON */

void
json_str(FILE *f, const char *s)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t		     n, i = 0, l;

	if (s == NULL) {
		fputs("null", f);
		return;
	}
	n = strlen(s);
	fputc('"', f);
	while (i < n) {
		if (u[i] == '"' || u[i] == '\\') {
			fputc('\\', f);
			fputc(u[i++], f);
		} else if (u[i] < 0x20 || u[i] == 0x7f) {
			fprintf(f, "\\u%04x", u[i++]);
		} else if ((l = char_len(u + i, n - i)) == 0) {
			fputs("\\ufffd", f);
			i++;
		} else {
			fwrite(u + i, 1, l, f);
			i += l;
		}
	}
	fputc('"', f);
}

/* A number; JSON has no NaN or infinity: null. */
static void
json_num(FILE *f, double v)
{
	if (isfinite(v))
		fprintf(f, "%.2f", v);
	else
		fputs("null", f);
}

/* "SYMBOL SCORE FILTER DETAIL" as a JSON object. */
static void
json_evidence(FILE *f, const char *line)
{
	char  *s = xstrdup(line), *f1, *f2, *f3, *rest = s;
	double score;

	f1 = strsep(&rest, " ");
	f2 = rest ? strsep(&rest, " ") : NULL;
	f3 = rest ? strsep(&rest, " ") : NULL;
	score = f2 ? strtod(f2, NULL) : 0;
	fputs("{\"symbol\": ", f);
	json_str(f, f1);
	fputs(", \"score\": ", f);
	json_num(f, score);
	fputs(", \"filter\": ", f);
	json_str(f, f3 ? f3 : "");
	fputs(", \"detail\": ", f);
	json_str(f, rest ? rest : "");
	fputc('}', f);
	free(s);
}

static void
json_entry(FILE *f, const struct qentry *q)
{
	char   date[32];
	size_t i;

	iso_date(q->time, date, sizeof(date));
	fputs("  {\"id\": ", f);
	json_str(f, q->id);
	fprintf(f, ", \"time\": %lld, \"date\": ", (long long)q->time);
	json_str(f, date);
	fputs(", \"sid\": ", f);
	json_str(f, q->sid);
	fputs(", \"client\": ", f);
	json_str(f, q->client);
	fputs(", \"helo\": ", f);
	json_str(f, q->helo);
	fputs(", \"sender\": ", f);
	json_str(f, q->sender);
	fputs(", \"rcpts\": [", f);
	for (i = 0; i < q->nrcpts; i++) {
		if (i > 0)
			fputs(", ", f);
		json_str(f, q->rcpts[i]);
	}
	fputs("], \"auth\": ", f);
	json_str(f, q->auth);
	fputs(", \"score\": ", f);
	json_num(f, q->score);
	fputs(", \"action\": ", f);
	json_str(f, q->action);
	fputs(", \"reason\": ", f);
	json_str(f, q->reason);
	fputs(", \"evidence\": [", f);
	for (i = 0; i < q->nevidence; i++) {
		if (i > 0)
			fputs(", ", f);
		json_evidence(f, q->evidence[i]);
	}
	fputs("]}", f);
}

/* ------------------------------------------------------------- list */

static int
q_list(struct config *cf, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' }, { NULL, 0, NULL, 0 }
	};
	struct qentry q;
	char	      err[512], date[32], **ids;
	long	      n, i;
	int	      json = 0, ch, rc = MOAT_EXIT_OK, first = 1;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch != 'j') {
			qusage();
			return MOAT_EXIT_USAGE;
		}
		json = 1;
	}
	if (optind != argc) {
		qusage();
		return MOAT_EXIT_USAGE;
	}
	if ((n = quarantine_list(cf->quarantine_dir, &ids, err, sizeof(err))) ==
	    -1) {
		fprintf(stderr, "moat: %s\n", err);
		return MOAT_EXIT_FAIL;
	}
	if (json)
		fputs("[", stdout);
	for (i = 0; i < n; i++) {
		if (quarantine_read(cf->quarantine_dir, ids[i], &q, err,
			sizeof(err)) == -1) {
			fprintf(stderr, "moat: %s\n", err);
			rc = MOAT_EXIT_FAIL;
			continue;
		}
		if (json) {
			fputs(first ? "\n" : ",\n", stdout);
			json_entry(stdout, &q);
			first = 0;
		} else {
			iso_date(q.time, date, sizeof(date));
			printf("%s  %s  %s  <%s>  ", q.id, date, q.client,
			    q.sender);
			if (q.nrcpts == 0)
				printf("-");
			else
				printf("<%s>", q.rcpts[0]);
			if (q.nrcpts > 1)
				printf(" (+%zu)", q.nrcpts - 1);
			printf("  %.2f  %s\n", q.score, q.reason);
		}
		qentry_free(&q);
	}
	if (json)
		fputs(first ? "]\n" : "\n]\n", stdout);
	for (i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	return rc;
}

/* ------------------------------------------------------------- show */

static void
print_meta(const struct qentry *q, long long size)
{
	char   date[32];
	size_t i;

	iso_date(q->time, date, sizeof(date));
	printf("id: %s\n", q->id);
	printf("date: %s\n", date);
	printf("sid: %s\n", q->sid);
	printf("client: %s\n", q->client);
	if (q->helo != NULL)
		printf("helo: %s\n", q->helo);
	printf("sender: <%s>\n", q->sender);
	for (i = 0; i < q->nrcpts; i++)
		printf("rcpt: <%s>\n", q->rcpts[i]);
	if (q->auth != NULL)
		printf("auth: %s\n", q->auth);
	printf("score: %.2f\n", q->score);
	printf("action: %s\n", q->action);
	printf("reason: %s\n", q->reason);
	for (i = 0; i < q->nevidence; i++)
		printf("evidence: %s\n", q->evidence[i]);
	if (size >= 0)
		printf("size: %lld\n", size);
}

/*
 * Untrusted text for a terminal: HTAB kept; other controls, DEL, C1
 * controls (U+0080-U+009F) and invalid UTF-8 as \xHH.
 */
static void
print_escaped(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t		     i = 0, l;

	while (i < n) {
		if (u[i] == '\t') {
			putchar('\t');
			i++;
		} else if (u[i] < 0x20 || u[i] == 0x7f ||
		    (l = char_len(u + i, n - i)) == 0 ||
		    (l == 2 && u[i] == 0xc2 && u[i + 1] < 0xa0)) {
			printf("\\x%02x", u[i++]);
		} else {
			fwrite(u + i, 1, l, stdout);
			i += l;
		}
	}
}

/* The header section of the message (up to the first empty line). */
static int
print_headers(FILE *f)
{
	char   *line = NULL;
	size_t	cap = 0, len;
	ssize_t n;

	while ((n = getline(&line, &cap, f)) > 0) {
		len = (size_t)n;
		if (line[len - 1] == '\n')
			len--;
		if (len > 0 && line[len - 1] == '\r')
			len--;
		if (len == 0)
			break;
		print_escaped(line, len);
		putchar('\n');
	}
	free(line);
	return ferror(f) ? -1 : 0;
}

static int
copy_raw(FILE *f)
{
	char   buf[65536];
	size_t n;

	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		if (fwrite(buf, 1, n, stdout) != n)
			return -1;
	return ferror(f) ? -1 : 0;
}

static int
q_show(struct config *cf, int argc, char **argv)
{
	static const struct option opts[] = { { "headers", no_argument, NULL,
						  'H' },
		{ "raw", no_argument, NULL, 'r' }, { NULL, 0, NULL, 0 } };
	struct qentry		   q;
	char			   err[512], *path;
	FILE			  *f;
	long long		   size = -1;
	int			   raw = 0, ch, rc;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 'H')
			raw = 0;
		else if (ch == 'r')
			raw = 1;
		else {
			qusage();
			return MOAT_EXIT_USAGE;
		}
	}
	if (optind + 1 != argc) {
		qusage();
		return MOAT_EXIT_USAGE;
	}
	if (quarantine_read(
		cf->quarantine_dir, argv[optind], &q, err, sizeof(err)) == -1) {
		fprintf(stderr, "moat: %s\n", err);
		return MOAT_EXIT_FAIL;
	}
	path = quarantine_eml_path(cf->quarantine_dir, q.id);
	if ((f = fopen(path, "rb")) == NULL) {
		fprintf(stderr, "moat: %s: %s\n", path, strerror(errno));
		free(path);
		qentry_free(&q);
		return MOAT_EXIT_FAIL;
	}
	if (fseek(f, 0, SEEK_END) == 0) {
		size = ftell(f);
		rewind(f);
	}
	if (raw) {
		rc = copy_raw(f);
	} else {
		print_meta(&q, size);
		putchar('\n');
		rc = print_headers(f);
	}
	if (rc == -1)
		fprintf(stderr, "moat: %s: read error\n", path);
	fclose(f);
	free(path);
	qentry_free(&q);
	if (fflush(stdout) == EOF)
		rc = -1;
	return rc == 0 ? MOAT_EXIT_OK : MOAT_EXIT_FAIL;
}

/* ---------------------------------------------------------- release */

static int
q_release(struct config *cf, int argc, char **argv)
{
	static const struct option opts[] = { { "to", required_argument, NULL,
						  't' },
		{ "keep", no_argument, NULL, 'k' }, { NULL, 0, NULL, 0 } };
	struct sockaddr_storage	   ss;
	socklen_t		   sslen;
	struct smtp_envelope	   env;
	struct smtp_result	   res;
	struct qentry		   q;
	const char		  *to = NULL;
	char			   err[512], dest[ADDR_STRLEN], *path;
	size_t			   i;
	int			   keep = 0, ch, fd, rc;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 't')
			to = optarg;
		else if (ch == 'k')
			keep = 1;
		else {
			qusage();
			return MOAT_EXIT_USAGE;
		}
	}
	if (optind + 1 != argc) {
		qusage();
		return MOAT_EXIT_USAGE;
	}
	if (to != NULL) {
		if (addr_parse(to, &ss, &sslen, err, sizeof(err)) == -1) {
			fprintf(stderr, "moat: --to \"%s\": %s\n", to, err);
			return MOAT_EXIT_USAGE;
		}
	} else {
		ss = cf->upstream;
		sslen = cf->upstream_len;
	}
	if (quarantine_read(
		cf->quarantine_dir, argv[optind], &q, err, sizeof(err)) == -1) {
		fprintf(stderr, "moat: %s\n", err);
		return MOAT_EXIT_FAIL;
	}
	path = quarantine_eml_path(cf->quarantine_dir, q.id);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		fprintf(stderr, "moat: %s: %s\n", path, strerror(errno));
		free(path);
		qentry_free(&q);
		return MOAT_EXIT_FAIL;
	}
	env.helo = cf->hostname;
	env.sender = q.sender;
	env.rcpts = (const char *const *)q.rcpts;
	env.nrcpts = q.nrcpts;
	rc = smtp_send_message((struct sockaddr *)&ss, sslen, &env, fd, &res);
	close(fd);
	free(path);

	if (res.warning[0] != '\0')
		fprintf(stderr, "moat: %s: warning: %s\n", q.id, res.warning);
	for (i = 0; i < res.nrcpts; i++)
		if (res.refused[i] != NULL)
			fprintf(stderr,
			    "moat: %s: recipient <%s> refused: %s\n", q.id,
			    q.rcpts[i], res.refused[i]);
	if (rc == -1) {
		addr_ntop((struct sockaddr *)&ss, dest, sizeof(dest));
		fprintf(stderr,
		    "moat: release %s to %s%s%s:%d failed%s%s: %s\n", q.id,
		    ss.ss_family == AF_INET6 ? "[" : "", dest,
		    ss.ss_family == AF_INET6 ? "]" : "",
		    addr_port((struct sockaddr *)&ss),
		    res.stage[0] ? " at " : "", res.stage, res.reply);
		rc = MOAT_EXIT_FAIL;
	} else if (res.accepted < res.nrcpts) {
		/* Delivered to some: keep it, nothing is lost for the rest. */
		printf("released %s to %zu of %zu recipients: %s\n", q.id,
		    res.accepted, res.nrcpts, res.last);
		fprintf(stderr,
		    "moat: %s kept in the quarantine: %zu "
		    "recipient(s) refused\n",
		    q.id, res.nrcpts - res.accepted);
		rc = MOAT_EXIT_FAIL;
	} else {
		printf("released %s: %s\n", q.id, res.last);
		rc = MOAT_EXIT_OK;
		if (!keep &&
		    quarantine_delete(
			cf->quarantine_dir, q.id, err, sizeof(err)) == -1) {
			fprintf(stderr, "moat: released, but not deleted: %s\n",
			    err);
			rc = MOAT_EXIT_FAIL;
		}
	}
	smtp_result_free(&res);
	qentry_free(&q);
	return rc;
}

/* ----------------------------------------------------------- delete */

static int
q_delete(struct config *cf, int argc, char **argv)
{
	static const struct option opts[] = { { NULL, 0, NULL, 0 } };
	char			   err[512];
	int			   i, rc = MOAT_EXIT_OK;

	if (getopt_long(argc, argv, "", opts, NULL) != -1 || optind >= argc) {
		qusage();
		return MOAT_EXIT_USAGE;
	}
	for (i = optind; i < argc; i++) {
		if (quarantine_delete(
			cf->quarantine_dir, argv[i], err, sizeof(err)) == -1) {
			fprintf(stderr, "moat: %s\n", err);
			rc = MOAT_EXIT_FAIL;
		} else
			printf("deleted %s\n", argv[i]);
	}
	return rc;
}

int
cmd_quarantine(struct config *cf, int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(struct config *, int, char **);
	} subs[] = {
		{ "list", q_list },
		{ "show", q_show },
		{ "release", q_release },
		{ "delete", q_delete },
	};
	size_t i;

	if (argc < 2) {
		qusage();
		return MOAT_EXIT_USAGE;
	}
	for (i = 0; i < nitems(subs); i++)
		if (strcmp(argv[1], subs[i].name) == 0) {
			optind = 0; /* argv[1] is the subcommand's argv[0] */
			return subs[i].fn(cf, argc - 1, argv + 1);
		}
	fprintf(stderr, "moat: quarantine: unknown command \"%s\"\n", argv[1]);
	qusage();
	return MOAT_EXIT_USAGE;
}
