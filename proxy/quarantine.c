/*
 * quarantine.c - the quarantine store (format and guarantees: see
 * quarantine.h).
 *
 * Crash safety follows the usual write-fsync-rename-fsync(dir) sequence,
 * done twice so that the .eml's name is durable before the .meta's: after
 * a crash the directory holds, at worst, a temporary file (".<id>.eml.tmp",
 * ignored and never reused: ids are random) or an .eml without its .meta
 * (invisible; quarantine_delete removes it).
 *
 * The message is written from the spool's canonical wire form (RFC 5321
 * §4.5.2 transparency): one leading '.' is removed from every line, and
 * the end-of-data line ".\r\n" is not written. Nothing else is changed.
 *
 * Reentrant and blocking: worker threads and the moat tool only.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "evidence.h"
#include "escape.h"
#include "quarantine.h"
#include "spool.h"
#include "util.h"

#define OUTBUF_SIZE (64 * 1024)

static void errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int
quarantine_id_valid(const char *id)
{
	size_t i;

	if (id == NULL || id[0] == '\0')
		return 0;
	for (i = 0; id[i] != '\0'; i++) {
		if (i + 1 >= QUARANTINE_ID_MAX)
			return 0;
		if (!((id[i] >= '0' && id[i] <= '9') ||
			(id[i] >= 'A' && id[i] <= 'Z') ||
			(id[i] >= 'a' && id[i] <= 'z') || id[i] == '-'))
			return 0;
	}
	return 1;
}

/* ------------------------------------------------------------ buffers */

struct buf {
	char  *p;
	size_t len, cap;
};

static void
buf_add(struct buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		while (b->len + n + 1 > b->cap)
			b->cap = b->cap ? b->cap * 2 : 1024;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

static void buf_fmt(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
buf_fmt(struct buf *b, const char *fmt, ...)
{
	char	tmp[64], *big;
	va_list ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(tmp)) {
		buf_add(b, tmp, (size_t)n);
		return;
	}
	/* Rare (a huge %f): format again into a block of the right size. */
	big = xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	buf_add(b, big, (size_t)n);
	free(big);
}

/* Bytes of the character at s: 1 for ASCII, 0 if not valid UTF-8. */
static size_t
char_len(const unsigned char *s, size_t n)
{
	return s[0] < 0x80 ? 1 : utf8_seq(s, n);
}

/*
 * Append s sanitised for a .meta value: controls and DEL become spaces
 * (so do spaces too when `word`: SYMBOL and FILTER fields, with '_'),
 * invalid UTF-8 bytes become '?'.
 */
static void
buf_clean(struct buf *b, const char *s, int word)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t		     n = strlen(s), i = 0, l;
	char		     c;

	while (i < n) {
		if ((l = char_len(u + i, n - i)) > 1) {
			buf_add(b, s + i, l);
			i += l;
			continue;
		}
		if (l == 0)
			c = '?';
		else if (u[i] < 0x20 || u[i] == 0x7f)
			c = ' ';
		else
			c = s[i];
		if (word && c == ' ')
			c = '_';
		buf_add(b, &c, 1);
		i++;
	}
}

static void
buf_kv(struct buf *b, const char *key, const char *value)
{
	buf_str(b, key);
	buf_str(b, ": ");
	buf_clean(b, value, 0);
	buf_str(b, "\n");
}

/* "<mailbox>" */
static void
buf_kv_path(struct buf *b, const char *key, const char *mailbox)
{
	buf_str(b, key);
	buf_str(b, ": <");
	buf_clean(b, mailbox, 0);
	buf_str(b, ">\n");
}

/* ---------------------------------------------------------- file I/O */

static int
fsync_dir(const char *dir)
{
	int fd, rc;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/* Dot-unstuffing writer: one leading '.' per line is dropped. */
struct unstuff {
	int    fd;
	int    bol; /* at the beginning of a line */
	size_t len;
	char   out[OUTBUF_SIZE];
};

static int
unstuff_flush(struct unstuff *u)
{
	if (u->len > 0 && write_full(u->fd, u->out, u->len) == -1)
		return -1;
	u->len = 0;
	return 0;
}

static int
unstuff_feed(struct unstuff *u, const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (u->bol && p[i] == '.') {
			u->bol = 0;
			continue;
		}
		if (u->len == sizeof(u->out) && unstuff_flush(u) == -1)
			return -1;
		u->out[u->len++] = p[i];
		u->bol = p[i] == '\n';
	}
	return 0;
}

/* spool[off, end) through the unstuffer; -1 with err. */
static int
unstuff_spool(struct unstuff *u, struct spool *sp, size_t off, size_t end,
    char *err, size_t errlen)
{
	const char *p;
	ssize_t	    r;

	while (off < end) {
		r = spool_span(sp, off, end - off, &p);
		if (r <= 0) {
			errf(err, errlen, "spool read at %zu failed", off);
			return -1;
		}
		if (unstuff_feed(u, p, (size_t)r) == -1) {
			errf(err, errlen, "write: %s", strerror(errno));
			return -1;
		}
		off += (size_t)r;
	}
	return 0;
}

/* The last 3 bytes of the spool are ".\r\n"? */
static int
spool_has_eod(struct spool *sp, size_t spool_off)
{
	char	    tail[3];
	const char *p;
	size_t	    off, got = 0;
	ssize_t	    r;

	if (sp->len < spool_off + 3)
		return 0;
	off = sp->len - 3;
	while (got < 3) {
		r = spool_span(sp, off + got, 3 - got, &p);
		if (r <= 0)
			return 0;
		memcpy(tail + got, p, (size_t)r);
		got += (size_t)r;
	}
	return memcmp(tail, ".\r\n", 3) == 0;
}

/* Create dir/name exclusively (mode 0640). */
static int
open_new(const char *dir, const char *name, char *path, size_t pathsz)
{
	snprintf(path, pathsz, "%s/%s", dir, name);
	return open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
}

static int
write_eml(int fd, const char *prefix, size_t prefixlen, struct spool *sp,
    size_t spool_off, char *err, size_t errlen)
{
	struct unstuff *u = xmalloc(sizeof(*u));
	int		rc = -1;

	u->fd = fd;
	u->bol = 1;
	u->len = 0;
	if (sp->error) {
		errf(err, errlen, "the spool is incomplete: %s",
		    strerror(sp->error));
		goto out;
	}
	if (!spool_has_eod(sp, spool_off)) {
		errf(err, errlen, "message does not end with \".\\r\\n\"");
		goto out;
	}
	if (prefixlen > 0 && unstuff_feed(u, prefix, prefixlen) == -1) {
		errf(err, errlen, "write: %s", strerror(errno));
		goto out;
	}
	if (unstuff_spool(u, sp, spool_off, sp->len - 3, err, errlen) == -1)
		goto out;
	if (!u->bol) {
		/* The final "." was not at the start of a line. */
		errf(
		    err, errlen, "message does not end with \"\\r\\n.\\r\\n\"");
		goto out;
	}
	if (unstuff_flush(u) == -1) {
		errf(err, errlen, "write: %s", strerror(errno));
		goto out;
	}
	rc = 0;
out:
	free(u);
	return rc;
}

static const char *const wdays[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri",
	"Sat" };
static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

/* RFC 5322 §3.3 date-time, UTC, locale-independent. */
static void
rfc5322_date(time_t t, char *out, size_t outsz)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(out, outsz, "%s, %d %s %04d %02d:%02d:%02d +0000",
	    wdays[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
	    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static void
meta_format(struct buf *b, const char *id, time_t t, const struct qmeta *m)
{
	const struct evidence *e;
	char		       date[64];
	size_t		       i;

	rfc5322_date(t, date, sizeof(date));
	buf_kv(b, "id", id);
	buf_fmt(b, "time: %lld\n", (long long)t);
	buf_kv(b, "date", date);
	buf_kv(b, "sid", m->sid ? m->sid : "");
	buf_kv(b, "client", m->client_addr ? m->client_addr : "");
	if (m->helo != NULL)
		buf_kv(b, "helo", m->helo);
	buf_kv_path(b, "sender", m->sender ? m->sender : "");
	for (i = 0; i < m->nrcpts; i++)
		buf_kv_path(b, "rcpt", m->rcpts[i]);
	if (m->auth != NULL)
		buf_kv(b, "auth", m->auth);
	buf_fmt(b, "score: %.2f\n", m->score);
	buf_kv(b, "action", m->action ? m->action : "quarantine");
	buf_kv(b, "reason", m->reason ? m->reason : "");
	for (i = 0; m->evidence != NULL && i < m->evidence->n; i++) {
		e = &m->evidence->v[i];
		buf_str(b, "evidence: ");
		buf_clean(b, e->symbol[0] ? e->symbol : "-", 1);
		buf_fmt(b, " %.2f ", e->score);
		buf_clean(b, e->filter[0] ? e->filter : "-", 1);
		if (e->detail != NULL && e->detail[0] != '\0') {
			buf_str(b, " ");
			buf_clean(b, e->detail, 0);
		}
		buf_str(b, "\n");
	}
}

static int
make_id(time_t t, char *idbuf, size_t idlen)
{
	unsigned char rnd[8];
	struct tm     tm;
	char	      ts[32];
	ssize_t	      r;
	size_t	      got = 0;

	while (got < sizeof(rnd)) {
		r = getrandom(rnd + got, sizeof(rnd) - got, 0);
		if (r == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		got += (size_t)r;
	}
	gmtime_r(&t, &tm);
	strftime(ts, sizeof(ts), "%Y%m%dT%H%M%S", &tm);
	if ((size_t)snprintf(idbuf, idlen,
		"%s-%02x%02x%02x%02x%02x%02x%02x%02x", ts, rnd[0], rnd[1],
		rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]) >= idlen) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/* fsync, close, rename; fd is closed in every case. */
static int
commit_file(
    int fd, const char *tmp, const char *final, char *err, size_t errlen)
{
	if (fsync(fd) == -1) {
		errf(err, errlen, "fsync %s: %s", tmp, strerror(errno));
		close(fd);
		return -1;
	}
	if (close(fd) == -1) {
		errf(err, errlen, "close %s: %s", tmp, strerror(errno));
		return -1;
	}
	if (rename(tmp, final) == -1) {
		errf(err, errlen, "rename %s: %s", final, strerror(errno));
		return -1;
	}
	return 0;
}

int
quarantine_store(const char *dir, const struct qmeta *m, const char *prefix,
    size_t prefixlen, struct spool *sp, size_t spool_off, char *idbuf,
    size_t idlen, char *err, size_t errlen)
{
	char	   name[QUARANTINE_ID_MAX + 16];
	char	  *etmp, *efinal, *mtmp, *mfinal;
	struct buf b = { NULL, 0, 0 };
	size_t	   pathsz = strlen(dir) + sizeof(name) + 2;
	time_t	   t = m->time ? m->time : time(NULL);
	int	   fd = -1, rc = -1, eml_visible = 0;

	etmp = xmalloc(pathsz);
	efinal = xmalloc(pathsz);
	mtmp = xmalloc(pathsz);
	mfinal = xmalloc(pathsz);
	etmp[0] = mtmp[0] = '\0';

	if (mkdir(dir, 0750) == -1 && errno != EEXIST) {
		errf(err, errlen, "mkdir %s: %s", dir, strerror(errno));
		goto out;
	}
	if (make_id(t, idbuf, idlen) == -1) {
		errf(err, errlen, "message id: %s", strerror(errno));
		goto out;
	}
	snprintf(efinal, pathsz, "%s/%s.eml", dir, idbuf);
	snprintf(mfinal, pathsz, "%s/%s.meta", dir, idbuf);

	/* The message. */
	snprintf(name, sizeof(name), ".%s.eml.tmp", idbuf);
	if ((fd = open_new(dir, name, etmp, pathsz)) == -1) {
		errf(err, errlen, "create %s: %s", etmp, strerror(errno));
		etmp[0] = '\0';
		goto out;
	}
	if (write_eml(fd, prefix, prefixlen, sp, spool_off, err, errlen) ==
	    -1) {
		close(fd);
		goto out;
	}
	if (commit_file(fd, etmp, efinal, err, errlen) == -1)
		goto out;
	etmp[0] = '\0';
	eml_visible = 1;
	if (fsync_dir(dir) == -1) {
		errf(err, errlen, "fsync %s: %s", dir, strerror(errno));
		goto out;
	}

	/* Its metadata, which makes it visible. */
	meta_format(&b, idbuf, t, m);
	snprintf(name, sizeof(name), ".%s.meta.tmp", idbuf);
	if ((fd = open_new(dir, name, mtmp, pathsz)) == -1) {
		errf(err, errlen, "create %s: %s", mtmp, strerror(errno));
		mtmp[0] = '\0';
		goto out;
	}
	if (write_full(fd, b.p, b.len) == -1) {
		errf(err, errlen, "write %s: %s", mtmp, strerror(errno));
		close(fd);
		goto out;
	}
	if (commit_file(fd, mtmp, mfinal, err, errlen) == -1)
		goto out;
	mtmp[0] = '\0';
	if (fsync_dir(dir) == -1) {
		/* Visible, maybe not durable: still a failure to report. */
		errf(err, errlen, "fsync %s: %s", dir, strerror(errno));
		unlink(mfinal);
		goto out;
	}
	rc = 0;
out:
	if (rc == -1) {
		if (etmp[0] != '\0')
			unlink(etmp);
		if (mtmp[0] != '\0')
			unlink(mtmp);
		if (eml_visible)
			unlink(efinal);
	}
	free(b.p);
	free(etmp);
	free(efinal);
	free(mtmp);
	free(mfinal);
	return rc;
}

/* ------------------------------------------------------------ reading */

static char *
meta_path(const char *dir, const char *id, const char *ext)
{
	size_t n = strlen(dir) + strlen(id) + strlen(ext) + 2;
	char  *p = xmalloc(n);

	snprintf(p, n, "%s/%s%s", dir, id, ext);
	return p;
}

char *
quarantine_eml_path(const char *dir, const char *id)
{
	if (!quarantine_id_valid(id))
		return NULL;
	return meta_path(dir, id, ".eml");
}

/*
 * A value as read, sanitised again like a written one (a defence against
 * edited files: the tool prints these values to a terminal).
 */
static char *
value_dup(const char *v)
{
	struct buf b = { NULL, 0, 0 };

	buf_add(&b, "", 0);
	buf_clean(&b, v, 0);
	return b.p;
}

/* "<x>" -> "x" (a value without brackets is taken as it is). */
static char *
path_dup(const char *v)
{
	size_t n = strlen(v);

	if (n >= 2 && v[0] == '<' && v[n - 1] == '>') {
		char *s = xstrndup(v + 1, n - 2), *r = value_dup(s);

		free(s);
		return r;
	}
	return value_dup(v);
}

static void
push(char ***v, size_t *n, char *s)
{
	*v = xrealloc(*v, (*n + 1) * sizeof(**v));
	(*v)[(*n)++] = s;
}

static void
set(char **field, char *value)
{
	free(*field);
	*field = value;
}

int
quarantine_read(
    const char *dir, const char *id, struct qentry *q, char *err, size_t errlen)
{
	char	 *path, *line = NULL, *key, *val, *end;
	size_t	  cap = 0, len;
	ssize_t	  r;
	FILE	 *f;
	int	  have_id = 0, have_time = 0, have_sender = 0, rc = -1;
	long long ll;

	memset(q, 0, sizeof(*q));
	if (!quarantine_id_valid(id)) {
		errf(err, errlen, "invalid message id");
		return -1;
	}
	path = meta_path(dir, id, ".meta");
	if ((f = fopen(path, "re")) == NULL) {
		if (errno == ENOENT)
			errf(err, errlen, "%s: no such message", id);
		else
			errf(err, errlen, "%s: %s", path, strerror(errno));
		free(path);
		return -1;
	}
	while ((r = getline(&line, &cap, f)) != -1) {
		len = (size_t)r;
		while (
		    len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (len == 0)
			continue;
		if ((val = strchr(line, ':')) == NULL)
			continue;
		*val++ = '\0';
		if (*val == ' ')
			val++;
		key = line;
		if (strcmp(key, "id") == 0) {
			if (strcmp(val, id) != 0) {
				errf(err, errlen, "%s: id \"%s\" in the file",
				    id, val);
				goto out;
			}
			snprintf(q->id, sizeof(q->id), "%s", id);
			have_id = 1;
		} else if (strcmp(key, "time") == 0) {
			errno = 0;
			ll = strtoll(val, &end, 10);
			if (errno != 0 || end == val || *end != '\0') {
				errf(err, errlen, "%s: bad time \"%s\"", id,
				    val);
				goto out;
			}
			q->time = (time_t)ll;
			have_time = 1;
		} else if (strcmp(key, "sid") == 0)
			set(&q->sid, value_dup(val));
		else if (strcmp(key, "client") == 0)
			set(&q->client, value_dup(val));
		else if (strcmp(key, "helo") == 0)
			set(&q->helo, value_dup(val));
		else if (strcmp(key, "sender") == 0) {
			set(&q->sender, path_dup(val));
			have_sender = 1;
		} else if (strcmp(key, "rcpt") == 0)
			push(&q->rcpts, &q->nrcpts, path_dup(val));
		else if (strcmp(key, "auth") == 0)
			set(&q->auth, value_dup(val));
		else if (strcmp(key, "score") == 0)
			q->score = strtod(val, NULL);
		else if (strcmp(key, "action") == 0)
			set(&q->action, value_dup(val));
		else if (strcmp(key, "reason") == 0)
			set(&q->reason, value_dup(val));
		else if (strcmp(key, "evidence") == 0)
			push(&q->evidence, &q->nevidence, value_dup(val));
	}
	if (ferror(f)) {
		errf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!have_id || !have_time || !have_sender) {
		errf(err, errlen, "%s: incomplete metadata (id, time, sender)",
		    id);
		goto out;
	}
	if (q->sid == NULL)
		q->sid = xstrdup("");
	if (q->client == NULL)
		q->client = xstrdup("");
	if (q->action == NULL)
		q->action = xstrdup("");
	if (q->reason == NULL)
		q->reason = xstrdup("");
	rc = 0;
out:
	free(line);
	fclose(f);
	free(path);
	if (rc == -1)
		qentry_free(q);
	return rc;
}

void
qentry_free(struct qentry *q)
{
	size_t i;

	free(q->sid);
	free(q->client);
	free(q->helo);
	free(q->sender);
	for (i = 0; i < q->nrcpts; i++)
		free(q->rcpts[i]);
	free(q->rcpts);
	free(q->auth);
	free(q->action);
	free(q->reason);
	for (i = 0; i < q->nevidence; i++)
		free(q->evidence[i]);
	free(q->evidence);
	memset(q, 0, sizeof(*q));
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

long
quarantine_list(const char *dir, char ***ids, char *err, size_t errlen)
{
	DIR	      *d;
	struct dirent *de;
	char	     **v = NULL, *id;
	size_t	       n = 0, len;

	*ids = NULL;
	if ((d = opendir(dir)) == NULL) {
		if (errno == ENOENT) {
			*ids = xcalloc(1, sizeof(**ids));
			return 0;
		}
		errf(err, errlen, "%s: %s", dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		if (len <= 5 || strcmp(de->d_name + len - 5, ".meta") != 0)
			continue;
		id = xstrndup(de->d_name, len - 5);
		if (!quarantine_id_valid(id)) {
			free(id);
			continue;
		}
		push(&v, &n, id);
	}
	closedir(d);
	if (n > 0)
		qsort(v, n, sizeof(*v), cmp_str);
	else
		v = xcalloc(1, sizeof(*v));
	*ids = v;
	return (long)n;
}

int
quarantine_delete(const char *dir, const char *id, char *err, size_t errlen)
{
	char *meta, *eml;
	int   rc = -1;

	if (!quarantine_id_valid(id)) {
		errf(err, errlen, "invalid message id");
		return -1;
	}
	meta = meta_path(dir, id, ".meta");
	eml = meta_path(dir, id, ".eml");
	if (unlink(meta) == -1) {
		if (errno != ENOENT) {
			errf(err, errlen, "%s: %s", meta, strerror(errno));
			goto out;
		}
		/* No .meta: an invisible leftover .eml is removed, if any. */
		if (unlink(eml) == -1) {
			if (errno == ENOENT)
				errf(err, errlen, "%s: no such message", id);
			else
				errf(err, errlen, "%s: %s", eml,
				    strerror(errno));
			goto out;
		}
	} else if (unlink(eml) == -1 && errno != ENOENT) {
		errf(err, errlen, "%s: %s", eml, strerror(errno));
		goto out;
	}
	(void)fsync_dir(dir);
	rc = 0;
out:
	free(meta);
	free(eml);
	return rc;
}
