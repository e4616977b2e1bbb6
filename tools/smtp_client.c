/*
 * smtp_client.c - blocking SMTP client for the moat tool (see
 * smtp_client.h).
 *
 * RFC 5321 §3.3 (the mail transaction), §4.1.1.1 (EHLO, and HELO when
 * EHLO is refused), §4.2 (replies; multi-line replies are parsed by
 * reply.c), §4.5.2 (transparency: dot-stuffing), §4.5.3.2 (timeouts);
 * RFC 6152 (BODY=8BITMIME), RFC 6531 §3.4 (SMTPUTF8 on MAIL), RFC 1870
 * (SIZE).
 *
 * The socket is non-blocking and every wait goes through poll() with a
 * deadline, so a silent server costs at most the timeout. Writes use
 * MSG_NOSIGNAL: a server that hangs up is an error, not a SIGPIPE.
 * Command lines never contain CR or LF (refused before sending), so
 * nothing read from a .meta file can inject a command.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "escape.h"
#include "reply.h"
#include "smtp_client.h"
#include "util.h"

#define WBUF_SIZE (64 * 1024)

struct smtp_client {
	int    fd;
	size_t rpos, rlen;		 /* unread bytes: rbuf[rpos, rlen) */
	char   rbuf[REPLY_LINE_MAX + 2]; /* one line and its CRLF */
	size_t wlen;
	char   wbuf[WBUF_SIZE];
	char   err[256];
};

static void cerr(struct smtp_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
cerr(struct smtp_client *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
}

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for events on fd until deadline: 1 ready, 0 timeout, -1 error. */
static int
wait_fd(int fd, short events, long long deadline)
{
	struct pollfd pfd;
	long long     left;
	int	      r;

	for (;;) {
		left = deadline - now_ms();
		if (left <= 0)
			return 0;
		pfd.fd = fd;
		pfd.events = events;
		pfd.revents = 0;
		r = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
		if (r == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r > 0)
			return 1;
	}
}

struct smtp_client *
smtpc_connect(const struct sockaddr *sa, socklen_t salen, int timeout,
    char *err, size_t errlen)
{
	struct smtp_client *c;
	socklen_t	    sl = sizeof(int);
	int		    fd, soerr = 0, r;

	fd = socket(
	    sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return NULL;
	}
	if (connect(fd, sa, salen) == -1) {
		if (errno != EINPROGRESS) {
			snprintf(err, errlen, "%s", strerror(errno));
			close(fd);
			return NULL;
		}
		r = wait_fd(fd, POLLOUT, now_ms() + timeout * 1000LL);
		if (r == 0) {
			snprintf(err, errlen, "timed out after %d s", timeout);
			close(fd);
			return NULL;
		}
		if (r == -1 ||
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == -1 ||
		    soerr != 0) {
			snprintf(
			    err, errlen, "%s", strerror(soerr ? soerr : errno));
			close(fd);
			return NULL;
		}
	}
	c = xcalloc(1, sizeof(*c));
	c->fd = fd;
	return c;
}

void
smtpc_close(struct smtp_client *c)
{
	if (c == NULL)
		return;
	close(c->fd);
	free(c);
}

const char *
smtpc_error(const struct smtp_client *c)
{
	return c->err;
}

/*
 * One line, without its CRLF (a bare LF ends a line too), in place in
 * rbuf; valid until the next read.
 */
static int
read_line(struct smtp_client *c, char **line, size_t *len, long long deadline)
{
	char   *nl;
	ssize_t n;
	int	r;

	for (;;) {
		nl = memchr(c->rbuf + c->rpos, '\n', c->rlen - c->rpos);
		if (nl != NULL) {
			*line = c->rbuf + c->rpos;
			*len = (size_t)(nl - *line);
			c->rpos = (size_t)(nl - c->rbuf) + 1;
			if (*len > 0 && (*line)[*len - 1] == '\r')
				(*len)--;
			return 0;
		}
		if (c->rpos > 0) {
			memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
			c->rlen -= c->rpos;
			c->rpos = 0;
		}
		if (c->rlen == sizeof(c->rbuf)) {
			cerr(c, "reply line longer than %d bytes",
			    REPLY_LINE_MAX);
			return -1;
		}
		r = wait_fd(c->fd, POLLIN, deadline);
		if (r == 0) {
			cerr(c, "timed out waiting for a reply");
			return -1;
		}
		if (r == -1) {
			cerr(c, "poll: %s", strerror(errno));
			return -1;
		}
		n = recv(
		    c->fd, c->rbuf + c->rlen, sizeof(c->rbuf) - c->rlen, 0);
		if (n == -1) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			cerr(c, "read: %s", strerror(errno));
			return -1;
		}
		if (n == 0) {
			cerr(c, "connection closed by the server");
			return -1;
		}
		c->rlen += (size_t)n;
	}
}

int
smtpc_reply(struct smtp_client *c, struct smtp_reply *r, int timeout)
{
	long long	  deadline = now_ms() + timeout * 1000LL;
	char		 *line, shown[128];
	size_t		  len;
	enum reply_status st;

	reply_init(r);
	for (;;) {
		if (read_line(c, &line, &len, deadline) == -1)
			return -1;
		st = reply_add_line(r, line, len);
		if (st == REPLY_DONE)
			return 0;
		if (st == REPLY_ERROR) {
			log_escape(line, len, shown, sizeof(shown));
			cerr(c, "malformed reply \"%s\"", shown);
			return -1;
		}
	}
}

static int
write_all(struct smtp_client *c, const char *p, size_t n, int timeout)
{
	long long deadline = now_ms() + timeout * 1000LL;
	ssize_t	  w;
	int	  r;

	while (n > 0) {
		w = send(c->fd, p, n, MSG_NOSIGNAL);
		if (w == -1) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN) {
				cerr(c, "write: %s", strerror(errno));
				return -1;
			}
			r = wait_fd(c->fd, POLLOUT, deadline);
			if (r <= 0) {
				cerr(c, "write: %s",
				    r == 0 ? "timed out" : strerror(errno));
				return -1;
			}
			continue;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int
smtpc_command(struct smtp_client *c, struct smtp_reply *r, int timeout,
    const char *fmt, ...)
{
	char	line[2048];
	va_list ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) - 2) {
		cerr(c, "command too long");
		return -1;
	}
	if (strpbrk(line, "\r\n") != NULL) {
		cerr(c, "command contains a line break");
		return -1;
	}
	memcpy(line + n, "\r\n", 2);
	if (write_all(c, line, (size_t)n + 2, SMTPC_TIMEOUT_BLOCK) == -1)
		return -1;
	return smtpc_reply(c, r, timeout);
}

/* ------------------------------------------------------------ message */

static int
wflush(struct smtp_client *c)
{
	if (c->wlen > 0 &&
	    write_all(c, c->wbuf, c->wlen, SMTPC_TIMEOUT_BLOCK) == -1)
		return -1;
	c->wlen = 0;
	return 0;
}

static int
wput(struct smtp_client *c, const char *p, size_t n)
{
	if (c->wlen + n > sizeof(c->wbuf) && wflush(c) == -1)
		return -1;
	memcpy(c->wbuf + c->wlen, p, n);
	c->wlen += n;
	return 0;
}

/*
 * The content in wire form: CRLF line ends (bare LF and bare CR become
 * CRLF), one '.' added in front of each line starting with '.', a last
 * line without line end completed, then ".\r\n".
 */
static int
send_content(struct smtp_client *c, int fd)
{
	char	buf[16384];
	ssize_t n, i;
	int	bol = 1, cr = 0;

	if (lseek(fd, 0, SEEK_SET) == -1) {
		cerr(c, "seek: %s", strerror(errno));
		return -1;
	}
	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n == -1) {
			if (errno == EINTR)
				continue;
			cerr(c, "read message: %s", strerror(errno));
			return -1;
		}
		if (n == 0)
			break;
		for (i = 0; i < n; i++) {
			if (cr) {
				cr = 0;
				if (wput(c, "\r\n", 2) == -1)
					return -1;
				bol = 1;
				if (buf[i] == '\n')
					continue;
			}
			if (buf[i] == '\r') {
				cr = 1;
				continue;
			}
			if (buf[i] == '\n') {
				if (wput(c, "\r\n", 2) == -1)
					return -1;
				bol = 1;
				continue;
			}
			if (bol && buf[i] == '.' && wput(c, ".", 1) == -1)
				return -1;
			if (wput(c, buf + i, 1) == -1)
				return -1;
			bol = 0;
		}
	}
	if ((cr || !bol) && wput(c, "\r\n", 2) == -1)
		return -1;
	if (wput(c, ".\r\n", 3) == -1)
		return -1;
	return wflush(c);
}

/* 8-bit bytes anywhere in the file? Its size in *size. -1 on error. */
static int
scan_file(int fd, int *eightbit, long long *size, char *err, size_t errlen)
{
	char	buf[16384];
	ssize_t n, i;
	off_t	off = 0;

	*eightbit = 0;
	for (;;) {
		n = pread(fd, buf, sizeof(buf), off);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			snprintf(
			    err, errlen, "read message: %s", strerror(errno));
			return -1;
		}
		if (n == 0)
			break;
		for (i = 0; i < n && !*eightbit; i++)
			if ((unsigned char)buf[i] >= 0x80)
				*eightbit = 1;
		off += n;
	}
	*size = (long long)off;
	return 0;
}

static int
is_ascii(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return 0;
	return 1;
}

/* The reply's lines into res->reply (sanitised), res->last. */
static void
keep_reply(struct smtp_result *res, const struct smtp_reply *r)
{
	size_t i, n = 0, line;

	res->reply[0] = '\0';
	res->last = res->reply;
	for (i = 0; i < r->nlines && n + 2 < sizeof(res->reply); i++) {
		if (i > 0)
			res->reply[n++] = '\n';
		line = n;
		n += text_sanitize(r->text + r->off[i],
		    strlen(r->text + r->off[i]), res->reply + n,
		    sizeof(res->reply) - n);
		res->last = res->reply + line;
	}
}

static void
keep_error(struct smtp_result *res, const char *msg)
{
	snprintf(res->reply, sizeof(res->reply), "%s", msg);
	res->last = res->reply;
}

static char *
reply_oneline(const struct smtp_reply *r)
{
	struct smtp_result tmp;
	char		  *p;

	keep_reply(&tmp, r);
	for (p = tmp.reply; *p != '\0'; p++)
		if (*p == '\n')
			*p = ' ';
	return xstrdup(tmp.reply);
}

void
smtp_result_free(struct smtp_result *res)
{
	size_t i;

	for (i = 0; res->refused != NULL && i < res->nrcpts; i++)
		free(res->refused[i]);
	free(res->refused);
	res->refused = NULL;
}

int
smtp_send_message(const struct sockaddr *sa, socklen_t salen,
    const struct smtp_envelope *env, int fd, struct smtp_result *res)
{
	struct smtp_client *c;
	struct smtp_reply  *r = xmalloc(sizeof(*r));
	struct capa	    capa;
	char		    err[256], params[128];
	long long	    size;
	size_t		    i;
	int		    eightbit, utf8, rc = -1, quit = 1;

	memset(res, 0, sizeof(*res));
	memset(&capa, 0, sizeof(capa));
	res->nrcpts = env->nrcpts;
	res->refused = xcalloc(env->nrcpts ? env->nrcpts : 1, sizeof(char *));
	res->stage = "";
	res->last = res->reply;
	if (env->nrcpts == 0) {
		keep_error(res, "no recipients");
		free(r);
		return -1;
	}
	if (scan_file(fd, &eightbit, &size, err, sizeof(err)) == -1) {
		keep_error(res, err);
		free(r);
		return -1;
	}
	utf8 = !is_ascii(env->sender);
	for (i = 0; i < env->nrcpts; i++)
		if (!is_ascii(env->rcpts[i]))
			utf8 = 1;

	res->stage = "connect";
	if ((c = smtpc_connect(
		 sa, salen, SMTPC_TIMEOUT_CONNECT, err, sizeof(err))) == NULL) {
		keep_error(res, err);
		free(r);
		return -1;
	}

#define FAIL_IO()                                                              \
	do {                                                                   \
		keep_error(res, smtpc_error(c));                               \
		quit = 0;                                                      \
		goto out;                                                      \
	} while (0)
#define FAIL_REPLY()                                                           \
	do {                                                                   \
		keep_reply(res, r);                                            \
		goto out;                                                      \
	} while (0)

	res->stage = "greeting";
	if (smtpc_reply(c, r, SMTPC_TIMEOUT_REPLY) == -1)
		FAIL_IO();
	if (r->code != 220)
		FAIL_REPLY();

	res->stage = "EHLO";
	if (smtpc_command(c, r, SMTPC_TIMEOUT_REPLY, "EHLO %s", env->helo) ==
	    -1)
		FAIL_IO();
	if (r->code == 250) {
		capa_parse(r, &capa);
	} else if (r->code == 421) {
		FAIL_REPLY();
	} else {
		/* RFC 5321 §4.1.1.1: an old server; HELO, no extensions. */
		res->stage = "HELO";
		if (smtpc_command(
			c, r, SMTPC_TIMEOUT_REPLY, "HELO %s", env->helo) == -1)
			FAIL_IO();
		if (r->code / 100 != 2)
			FAIL_REPLY();
	}

	res->stage = "MAIL";
	params[0] = '\0';
	if (utf8) {
		if (!(capa.flags & CAPA_SMTPUTF8)) {
			keep_error(res,
			    "the server does not offer SMTPUTF8, "
			    "needed for non-ASCII addresses");
			goto out;
		}
		strcat(params, " SMTPUTF8");
	}
	if (eightbit) {
		if (capa.flags & CAPA_8BITMIME)
			strcat(params, " BODY=8BITMIME");
		else
			snprintf(res->warning, sizeof(res->warning),
			    "8-bit content sent to a server that does not "
			    "offer 8BITMIME");
	}
	if (capa.flags & CAPA_SIZE)
		snprintf(params + strlen(params),
		    sizeof(params) - strlen(params), " SIZE=%lld", size);
	if (smtpc_command(c, r, SMTPC_TIMEOUT_REPLY, "MAIL FROM:<%s>%s",
		env->sender, params) == -1)
		FAIL_IO();
	if (r->code / 100 != 2)
		FAIL_REPLY();

	res->stage = "RCPT";
	for (i = 0; i < env->nrcpts; i++) {
		if (smtpc_command(c, r, SMTPC_TIMEOUT_REPLY, "RCPT TO:<%s>",
			env->rcpts[i]) == -1)
			FAIL_IO();
		if (r->code / 100 == 2)
			res->accepted++;
		else if (r->code == 421)
			FAIL_REPLY(); /* closing the connection */
		else
			res->refused[i] = reply_oneline(r);
	}
	if (res->accepted == 0)
		FAIL_REPLY(); /* the last refusal */

	res->stage = "DATA";
	if (smtpc_command(c, r, SMTPC_TIMEOUT_DATA, "DATA") == -1)
		FAIL_IO();
	if (r->code != 354)
		FAIL_REPLY();

	res->stage = "end of data";
	if (send_content(c, fd) == -1)
		FAIL_IO();
	if (smtpc_reply(c, r, SMTPC_TIMEOUT_FINAL) == -1) {
		char msg[320];

		/* The server may have taken it: say so. */
		snprintf(msg, sizeof(msg),
		    "%s (after the end of data: the message may have been "
		    "delivered)",
		    smtpc_error(c));
		keep_error(res, msg);
		quit = 0;
		goto out;
	}
	if (r->code / 100 != 2)
		FAIL_REPLY();
	keep_reply(res, r);
	res->delivered = 1;
	res->stage = "";
	rc = 0;
out:
	if (quit) {
		struct smtp_reply *q = xmalloc(sizeof(*q));

		(void)smtpc_command(c, q, SMTPC_TIMEOUT_QUIT, "QUIT");
		free(q);
	}
	smtpc_close(c);
	free(r);
	return rc;
#undef FAIL_IO
#undef FAIL_REPLY
}
