/*
 * test_quarantine.c - unit tests for proxy/quarantine.c: storing from a
 * memory spool and from a file spool, with and without a prefix and a
 * spool offset; dot-unstuffing (a "." line, a message whose last line is
 * "." itself, the terminator dropped, an empty message); the exact .meta
 * text and its sanitising of attacker-controlled values; read-back; list
 * order; delete; id validation; the directory created when missing;
 * failures leave nothing behind.
 *
 * Hermetic: everything happens in a fresh temporary directory, removed at
 * the end. Single-threaded.
 */

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tap.h"
#include "evidence.h"
#include "quarantine.h"
#include "spool.h"

static char top[256];

/* ----------------------------------------------------------- helpers */

static char *
slurp(const char *path, size_t *len)
{
	FILE  *f = fopen(path, "rb");
	char  *p;
	long   n;
	size_t got;

	*len = 0;
	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	p = malloc((size_t)n + 1);
	got = fread(p, 1, (size_t)n, f);
	fclose(f);
	p[got] = '\0';
	*len = got;
	return p;
}

static char *
file_in(const char *dir, const char *id, const char *ext, size_t *len)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s%s", dir, id, ext);
	return slurp(path, len);
}

/* Number of directory entries (without . and ..), and of hidden ones. */
static int
count_entries(const char *dir, int *hidden)
{
	DIR	      *d = opendir(dir);
	struct dirent *de;
	int	       n = 0;

	*hidden = 0;
	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		n++;
		if (de->d_name[0] == '.')
			(*hidden)++;
	}
	closedir(d);
	return n;
}

/* Dot-stuff plain text (CRLF lines) and add the terminator. */
static char *
stuff(const char *plain, size_t len, size_t *outlen)
{
	char  *out = malloc(len * 2 + 4);
	size_t i, n = 0;
	int    bol = 1;

	for (i = 0; i < len; i++) {
		if (bol && plain[i] == '.')
			out[n++] = '.';
		out[n++] = plain[i];
		bol = plain[i] == '\n';
	}
	memcpy(out + n, ".\r\n", 3);
	*outlen = n + 3;
	return out;
}

static const char *const rcpts2[] = { "bob@example.test",
	"carol@example.test" };

static struct qmeta
meta_basic(time_t t)
{
	struct qmeta m;

	memset(&m, 0, sizeof(m));
	m.time = t;
	m.sid = "0000000000000001";
	m.client_addr = "192.0.2.1";
	m.helo = "client.example.test";
	m.sender = "alice@example.test";
	m.rcpts = rcpts2;
	m.nrcpts = 2;
	m.score = 12.345;
	m.action = "quarantine";
	m.reason = "score 12.35 >= 10";
	return m;
}

/*
 * Store `wire` (with prefix and spool offset) from a memory spool
 * (threshold large) or a file spool (threshold 0) and compare the .eml
 * with `want`.
 */
static void
roundtrip(const char *name, int file, const char *prefix, size_t prefixlen,
    const char *wire, size_t wirelen, size_t off, const char *want,
    size_t wantlen)
{
	struct spool sp;
	struct qmeta m = meta_basic(1700000000);
	char	     id[QUARANTINE_ID_MAX], err[256] = "";
	char	    *got;
	size_t	     gotlen, i, step;
	int	     rc;

	spool_init(&sp, top, file ? 0 : 64 * 1024 * 1024);
	/* Odd-sized writes: memory spools get several chains. */
	step = wirelen > 10000 ? 7777 : wirelen;
	for (i = 0; i < wirelen; i += step)
		spool_write(
		    &sp, wire + i, wirelen - i < step ? wirelen - i : step);
	ok((sp.fd != -1) == file, "%s: spool is in %s", name,
	    file ? "a file" : "memory");
	rc = quarantine_store(top, &m, prefix, prefixlen, &sp, off, id,
	    sizeof(id), err, sizeof(err));
	if (!ok(rc == 0, "%s: stored", name))
		printf("#   %s\n", err);
	got = file_in(top, id, ".eml", &gotlen);
	is_mem(got ? got : "", gotlen, want, wantlen, "%s: .eml content", name);
	free(got);
	quarantine_delete(top, id, err, sizeof(err));
	spool_free(&sp);
}

static void
test_unstuff(void)
{
	const char *w1 = "Subject: a\r\n\r\n..x\r\nplain\r\n...\r\n.\r\n";
	const char *p1 = "Subject: a\r\n\r\n.x\r\nplain\r\n..\r\n";
	const char *w3 = "Subject: c\r\n\r\nlast line is a dot\r\n..\r\n.\r\n";
	const char *p3 = "Subject: c\r\n\r\nlast line is a dot\r\n.\r\n";
	const char *w4 = "X-Old: 1\r\nSubject: d\r\n\r\n..body\r\n.\r\n";
	const char *pre = "X-Spam: yes\r\n.X-Dot: stuffed\r\n";
	const char *p4 = "X-Spam: yes\r\nX-Dot: stuffed\r\nSubject: d\r\n\r\n"
			 ".body\r\n";
	size_t	    off4 = strlen("X-Old: 1\r\n");
	char	   *plain, *wire;
	size_t	    plen = 0, wlen, i;
	int	    f;

	for (f = 0; f <= 1; f++) {
		const char *k = f ? "file" : "mem";
		char	    nm[64];

		snprintf(nm, sizeof(nm), "%s, dots", k);
		roundtrip(nm, f, NULL, 0, w1, strlen(w1), 0, p1, strlen(p1));
		snprintf(nm, sizeof(nm), "%s, last line \".\"", k);
		roundtrip(nm, f, NULL, 0, w3, strlen(w3), 0, p3, strlen(p3));
		snprintf(nm, sizeof(nm), "%s, prefix and offset", k);
		roundtrip(nm, f, pre, strlen(pre), w4, strlen(w4), off4, p4,
		    strlen(p4));
		snprintf(nm, sizeof(nm), "%s, prefix only", k);
		roundtrip(
		    nm, f, "X-A: b\r\n", 8, ".\r\n", 3, 0, "X-A: b\r\n", 8);
		snprintf(nm, sizeof(nm), "%s, empty message", k);
		roundtrip(nm, f, NULL, 0, ".\r\n", 3, 0, "", 0);
	}

	/* Large: > SPOOL_SPAN_MAX, lines with dots at every position. */
	plain = malloc(400000);
	memcpy(plain, "Subject: big\r\n\r\n", 16);
	plen = 16;
	for (i = 0; plen < 390000; i++) {
		if (i % 3 == 0)
			plain[plen++] = '.';
		if (i % 7 == 0)
			plain[plen++] = '.';
		plen += (size_t)sprintf(
		    plain + plen, "line %zu %s\r\n", i, i % 5 ? "x" : "..");
	}
	wire = stuff(plain, plen, &wlen);
	roundtrip("mem, large", 0, NULL, 0, wire, wlen, 0, plain, plen);
	roundtrip("file, large", 1, NULL, 0, wire, wlen, 0, plain, plen);
	free(wire);
	free(plain);
}

static void
test_store_failures(void)
{
	struct spool sp;
	struct qmeta m = meta_basic(1700000000);
	char	     id[QUARANTINE_ID_MAX], err[256] = "", dir[512];
	int	     hidden;

	snprintf(dir, sizeof(dir), "%s/fail", top);
	spool_init(&sp, top, 1024);
	spool_write(&sp, "Subject: x\r\n\r\nno terminator\r\n", 30);
	ok(quarantine_store(dir, &m, NULL, 0, &sp, 0, id, sizeof(id), err,
	       sizeof(err)) == -1,
	    "a spool without \".\\r\\n\" is refused");
	ok(strstr(err, "end") != NULL, "... with a reason (%s)", err);
	is_int(count_entries(dir, &hidden), 0, "... and nothing left behind");
	spool_free(&sp);

	spool_init(&sp, top, 1024);
	spool_write(&sp, "Subject: x\r\n\r\nbody.\r\n", 21);
	ok(quarantine_store(dir, &m, NULL, 0, &sp, 0, id, sizeof(id), err,
	       sizeof(err)) == -1,
	    "a final \".\" not at the start of a line is refused");
	is_int(count_entries(dir, &hidden), 0, "... and nothing left behind");
	ok(quarantine_store(dir, &m, NULL, 0, &sp, 22, id, sizeof(id), err,
	       sizeof(err)) == -1,
	    "an offset past the end is refused");
	spool_free(&sp);

	spool_init(&sp, top, 1024);
	spool_write(&sp, "Subject: x\r\n\r\nbody\r\n.\r\n", 22);
	sp.error = EIO; /* a write failed earlier */
	ok(quarantine_store(dir, &m, NULL, 0, &sp, 0, id, sizeof(id), err,
	       sizeof(err)) == -1 &&
		strstr(err, "incomplete") != NULL,
	    "a spool with a write error is refused (%s)", err);
	is_int(count_entries(dir, &hidden), 0, "... and nothing left behind");
	sp.error = 0;
	spool_free(&sp);

	snprintf(dir, sizeof(dir), "%s/no/such/parent", top);
	spool_init(&sp, top, 1024);
	spool_write(&sp, ".\r\n", 3);
	ok(quarantine_store(dir, &m, NULL, 0, &sp, 0, id, sizeof(id), err,
	       sizeof(err)) == -1,
	    "only one directory level is created");
	ok(strstr(err, "mkdir") != NULL, "... mkdir named (%s)", err);
	ok(quarantine_store(
	       top, &m, NULL, 0, &sp, 0, id, 10, err, sizeof(err)) == -1,
	    "an id buffer too small is refused");
	spool_free(&sp);
}

/* ---------------------------------------------------------- metadata */

static void
test_meta(void)
{
	struct evidence	    ev[3];
	struct evidence_set es;
	struct spool	    sp;
	struct qmeta	    m = meta_basic(1700000000);
	struct qentry	    q;
	const char *const   evil_rcpts[] = { "bob@example.test",
		  "x\r\nevidence: FAKE 100.00 x@example.test" };
	char   id[QUARANTINE_ID_MAX], err[256] = "", want[2048], *meta;
	char   dir[512];
	size_t len;
	int    rc, hidden;

	snprintf(dir, sizeof(dir), "%s/meta", top);
	memset(ev, 0, sizeof(ev));
	memset(&es, 0, sizeof(es));
	snprintf(ev[0].filter, sizeof(ev[0].filter), "spam");
	snprintf(ev[0].symbol, sizeof(ev[0].symbol), "BAYES_99");
	ev[0].score = 5.5;
	ev[0].detail = "token \"viagra\"\r\nreason: injected";
	snprintf(ev[1].filter, sizeof(ev[1].filter), "my filter");
	snprintf(ev[1].symbol, sizeof(ev[1].symbol), "NO_DETAIL");
	ev[1].score = -1;
	ev[1].detail = NULL;
	snprintf(ev[2].filter, sizeof(ev[2].filter), "dkim");
	snprintf(ev[2].symbol, sizeof(ev[2].symbol), "EMPTY_DETAIL");
	ev[2].score = 0.004;
	ev[2].detail = "";
	es.v = ev;
	es.n = 3;

	m.helo = "evil\r\nrcpt: <injected@example.test>";
	m.sender = "a\nb@example.test";
	m.rcpts = evil_rcpts;
	m.auth = "alice\x1b[31m";
	m.reason = "caf\xc3\xa9 \xff\xfe bad utf-8, \xe2\x82 cut";
	m.evidence = &es;

	spool_init(&sp, top, 1024);
	spool_write(&sp, "Subject: m\r\n\r\nx\r\n.\r\n", 20);
	rc = quarantine_store(
	    dir, &m, NULL, 0, &sp, 0, id, sizeof(id), err, sizeof(err));
	spool_free(&sp);
	if (!ok(rc == 0, "stored with hostile metadata"))
		printf("#   %s\n", err);
	ok(strncmp(id, "20231114T221320-", 16) == 0 && strlen(id) == 32 &&
		strspn(id + 16, "0123456789abcdef") == 16,
	    "id is UTC time + 16 hex (%s)", id);
	meta = file_in(dir, id, ".meta", &len);
	snprintf(want, sizeof(want),
	    "id: %s\n"
	    "time: 1700000000\n"
	    "date: Tue, 14 Nov 2023 22:13:20 +0000\n"
	    "sid: 0000000000000001\n"
	    "client: 192.0.2.1\n"
	    "helo: evil  rcpt: <injected@example.test>\n"
	    "sender: <a b@example.test>\n"
	    "rcpt: <bob@example.test>\n"
	    "rcpt: <x  evidence: FAKE 100.00 x@example.test>\n"
	    "auth: alice [31m\n"
	    "score: 12.35\n"
	    "action: quarantine\n"
	    "reason: caf\xc3\xa9 ?? bad utf-8, ?? cut\n"
	    "evidence: BAYES_99 5.50 spam token \"viagra\"  reason: injected\n"
	    "evidence: NO_DETAIL -1.00 my_filter\n"
	    "evidence: EMPTY_DETAIL 0.00 dkim\n",
	    id);
	is_str(meta, want, "the .meta text, sanitised");
	free(meta);
	is_int(count_entries(dir, &hidden), 2, "one .eml and one .meta");
	is_int(hidden, 0, "no temporary file left");

	rc = quarantine_read(dir, id, &q, err, sizeof(err));
	if (!ok(rc == 0, "read back"))
		printf("#   %s\n", err);
	is_str(q.id, id, "id");
	is_int(q.time, 1700000000, "time");
	is_str(q.sid, "0000000000000001", "sid");
	is_str(q.client, "192.0.2.1", "client");
	is_str(q.helo, "evil  rcpt: <injected@example.test>", "helo");
	is_str(q.sender, "a b@example.test", "sender without <>");
	is_int(q.nrcpts, 2, "two rcpts");
	if (q.nrcpts == 2) {
		is_str(q.rcpts[0], "bob@example.test", "rcpt 0");
		is_str(q.rcpts[1], "x  evidence: FAKE 100.00 x@example.test",
		    "rcpt 1");
	}
	is_str(q.auth, "alice [31m", "auth");
	ok(q.score > 12.349 && q.score < 12.351, "score");
	is_str(q.action, "quarantine", "action");
	is_str(q.reason, "caf\xc3\xa9 ?? bad utf-8, ?? cut", "reason");
	is_int(q.nevidence, 3, "three evidence lines");
	if (q.nevidence == 3) {
		is_str(q.evidence[0],
		    "BAYES_99 5.50 spam token \"viagra\"  reason: injected",
		    "evidence 0");
		is_str(
		    q.evidence[1], "NO_DETAIL -1.00 my_filter", "evidence 1");
	}
	qentry_free(&q);
	quarantine_delete(dir, id, err, sizeof(err));

	/* Null sender, no helo, no auth, no evidence, no rcpts. */
	m = meta_basic(1700000000);
	m.sender = "";
	m.helo = NULL;
	m.nrcpts = 0;
	spool_init(&sp, top, 1024);
	spool_write(&sp, ".\r\n", 3);
	quarantine_store(
	    dir, &m, NULL, 0, &sp, 0, id, sizeof(id), err, sizeof(err));
	spool_free(&sp);
	meta = file_in(dir, id, ".meta", &len);
	ok(meta != NULL && strstr(meta, "\nsender: <>\n") != NULL &&
		strstr(meta, "helo:") == NULL &&
		strstr(meta, "auth:") == NULL &&
		strstr(meta, "evidence:") == NULL,
	    "null sender written <>, absent helo/auth/evidence not written");
	free(meta);
	rc = quarantine_read(dir, id, &q, err, sizeof(err));
	ok(rc == 0 && q.sender != NULL && q.sender[0] == '\0' &&
		q.helo == NULL && q.auth == NULL && q.nrcpts == 0 &&
		q.nevidence == 0,
	    "read back: null sender \"\", helo and auth NULL");
	qentry_free(&q);
	quarantine_delete(dir, id, err, sizeof(err));
}

/* ------------------------------------------------- list, delete, ids */

static void
store_at(const char *dir, time_t t, char *id)
{
	struct spool sp;
	struct qmeta m = meta_basic(t);
	char	     err[256];

	spool_init(&sp, top, 1024);
	spool_write(&sp, "Subject: l\r\n\r\n.\r\n", 17);
	if (quarantine_store(dir, &m, NULL, 0, &sp, 0, id, QUARANTINE_ID_MAX,
		err, sizeof(err)) == -1)
		printf("# store: %s\n", err);
	spool_free(&sp);
}

static void
touch(const char *dir, const char *name, const char *text)
{
	char  path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((f = fopen(path, "w")) != NULL) {
		fputs(text, f);
		fclose(f);
	}
}

static void
test_list_delete(void)
{
	char dir[512], a[QUARANTINE_ID_MAX], b[QUARANTINE_ID_MAX],
	    c[QUARANTINE_ID_MAX], err[256] = "", **ids;
	struct stat   st;
	struct qentry q;
	long	      n, i;
	char	     *p;
	size_t	      len;

	snprintf(dir, sizeof(dir), "%s/q-new", top);
	umask(022);
	n = quarantine_list(dir, &ids, err, sizeof(err));
	is_int(n, 0, "missing directory lists as empty");
	free(ids);

	store_at(dir, 1700000300, c); /* newest first */
	ok(stat(dir, &st) == 0 && S_ISDIR(st.st_mode) &&
		(st.st_mode & 0777) == 0750,
	    "missing directory created with mode 0750");
	store_at(dir, 1700000100, a);
	store_at(dir, 1700000200, b);
	touch(dir, ".hidden.meta", "id: .hidden\n");
	touch(dir, "bad name.meta", "id: bad name\n");
	touch(dir, ".x.meta.tmp", "");
	touch(dir, "README", "");
	touch(dir, "orphan.eml", "Subject: orphan\r\n");

	n = quarantine_list(dir, &ids, err, sizeof(err));
	is_int(n, 3, "three messages listed (other files ignored)");
	if (n == 3) {
		is_str(ids[0], a, "oldest first");
		is_str(ids[1], b, "then the middle one");
		is_str(ids[2], c, "newest last");
	}
	for (i = 0; i < n; i++)
		free(ids[i]);
	free(ids);

	p = quarantine_eml_path(dir, b);
	ok(p != NULL && strlen(p) == strlen(dir) + 1 + strlen(b) + 4 &&
		strncmp(p, dir, strlen(dir)) == 0 &&
		strcmp(p + strlen(p) - 4, ".eml") == 0,
	    "eml path");
	free(p);

	is_int(quarantine_delete(dir, b, err, sizeof(err)), 0, "delete");
	ok(file_in(dir, b, ".eml", &len) == NULL &&
		file_in(dir, b, ".meta", &len) == NULL,
	    "both files gone");
	ok(quarantine_delete(dir, b, err, sizeof(err)) == -1 &&
		strstr(err, "no such message") != NULL,
	    "deleting again fails: %s", err);
	ok(quarantine_read(dir, b, &q, err, sizeof(err)) == -1 &&
		strstr(err, "no such message") != NULL,
	    "reading a deleted message fails: %s", err);
	qentry_free(&q);
	is_int(quarantine_delete(dir, "orphan", err, sizeof(err)), 0,
	    "an .eml without .meta can be deleted");
	n = quarantine_list(dir, &ids, err, sizeof(err));
	is_int(n, 2, "two left");
	if (n == 2) {
		is_str(ids[0], a, "first");
		is_str(ids[1], c, "second");
	}
	for (i = 0; i < n; i++)
		free(ids[i]);
	free(ids);

	/* A .meta whose id does not match its name. */
	touch(dir, "mismatch.meta",
	    "id: other\ntime: 1\nsender: <>\nrcpt: <a@b>\n");
	ok(quarantine_read(dir, "mismatch", &q, err, sizeof(err)) == -1,
	    "id inside the file must match: %s", err);
	touch(dir, "partial.meta", "id: partial\nsender: <>\n");
	ok(quarantine_read(dir, "partial", &q, err, sizeof(err)) == -1,
	    "incomplete metadata refused: %s", err);
}

/* 64 characters: one more than an id may have. */
#define LONG_ID                                                                \
	"0123456789012345678901234567890123456789012345678901234567890123"

static void
test_bad_ids(void)
{
	static const char *const bad[] = { "../x", "", "a/b", "a.b", "..",
		"x y", "a\nb", LONG_ID };
	struct qentry		 q;
	char			 err[256], **ids;
	size_t			 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		ok(quarantine_read(top, bad[i], &q, err, sizeof(err)) == -1 &&
			strstr(err, "invalid") != NULL,
		    "read refuses id #%zu", i);
		ok(quarantine_delete(top, bad[i], err, sizeof(err)) == -1,
		    "delete refuses id #%zu", i);
		ok(quarantine_eml_path(top, bad[i]) == NULL,
		    "eml path refuses id #%zu", i);
	}
	ok(quarantine_id_valid("20231114T221320-0123456789abcdef"),
	    "a real id is valid");
	ok(quarantine_id_valid(LONG_ID + 1), "63 characters are valid");
	ok(!quarantine_id_valid(NULL), "NULL id invalid");
	ok(quarantine_list("/proc/self/fd/0/x", &ids, err, sizeof(err)) == -1,
	    "listing a non-directory fails: %s", err);
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

int
main(void)
{
	snprintf(top, sizeof(top), "%s/test_quarantine.XXXXXX",
	    getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(top) == NULL) {
		perror("mkdtemp");
		return 99;
	}
	test_unstuff();
	test_store_failures();
	test_meta();
	test_list_delete();
	test_bad_ids();
	nftw(top, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return tap_done();
}
