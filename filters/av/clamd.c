/*
 * clamd.c - INSTREAM scans by a clamd (clamd.h has the contract).
 *
 * The message is read from its descriptor in blocks with pread on the loop
 * thread (page-cache reads, as the spool's own), un-stuffed by the same
 * framer that reads DATA from clients (dataframe.c), and written as
 * INSTREAM chunks only while the connection's output is short (a
 * watermark), so a slow clamd costs no memory. clamd answers once, after
 * the zero-length chunk, or early when the stream is over its
 * StreamMaxLength ("INSTREAM size limit exceeded"): that is a limit, the
 * scan is incomplete, never clean.
 *
 * Ownership: a request owns its connection, descriptor and timer; done is
 * called after all of them are released.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "clamd.h"
#include "dataframe.h"
#include "loop.h"
#include "scanproto.h"
#include "util.h"

#define BLOCK	  (64 * 1024)
#define OUT_LOW	  (256 * 1024)
#define REPLY_MAX 4096

struct clamd_req {
	struct bufferevent *bev;
	struct event	   *timer;
	int		    fd;
	size_t		    len, off;
	int		    sent_end;
	struct dataframe    df;
	struct evbuffer	   *chunk;
	char		   *block;
	scanner_done_fn	    done;
	void		   *arg;
};

int
clamd_addr_parse(const char *s, struct clamd_addr *a, char *err, size_t errlen)
{
	struct sockaddr_un *un = (struct sockaddr_un *)&a->sa;
	struct addrinfo	    hints, *res = NULL;
	char		    host[128];
	const char	   *port, *path = NULL;
	int		    rc;

	memset(a, 0, sizeof(*a));
	snprintf(a->spec, sizeof(a->spec), "%s", s);
	if (strncmp(s, "unix:", 5) == 0)
		path = s + 5;
	else if (s[0] == '/')
		path = s;
	if (path != NULL) {
		if (strlen(path) >= sizeof(un->sun_path)) {
			snprintf(err, errlen, "\"%s\": path too long", path);
			return -1;
		}
		un->sun_family = AF_UNIX;
		strcpy(un->sun_path, path);
		a->salen = sizeof(*un);
		return 0;
	}
	if (s[0] == '[') {
		const char *e = strchr(s, ']');

		if (e == NULL || e[1] != ':' ||
		    (size_t)(e - s - 1) >= sizeof(host))
			goto bad;
		memcpy(host, s + 1, (size_t)(e - s - 1));
		host[e - s - 1] = '\0';
		port = e + 2;
	} else {
		const char *c = strrchr(s, ':');

		if (c == NULL || (size_t)(c - s) >= sizeof(host) || c == s)
			goto bad;
		memcpy(host, s, (size_t)(c - s));
		host[c - s] = '\0';
		port = c + 1;
	}
	if (*port == '\0')
		goto bad;
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
		snprintf(err, errlen, "\"%s\": %s", s, gai_strerror(rc));
		return -1;
	}
	memcpy(&a->sa, res->ai_addr, res->ai_addrlen);
	a->salen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
bad:
	snprintf(err, errlen,
	    "\"%s\" is not unix:/path, /path, host:port or [address]:port", s);
	return -1;
}

/* ---------------------------------------------------------- replies */

static void
classify(struct scan_reply *r, const char *name, size_t n)
{
	char(*slot)[SCAN_NAME_MAX + 1];
	unsigned *count;

	if (n > SCAN_NAME_MAX)
		n = SCAN_NAME_MAX;
	if (n >= 27 && strncmp(name, "Heuristics.Limits.Exceeded", 26) == 0) {
		slot = r->limit;
		count = &r->nlimit;
	} else if (n > 11 && strncmp(name, "Heuristics.", 11) == 0) {
		slot = r->heur;
		count = &r->nheur;
	} else {
		slot = r->virus;
		count = &r->nvirus;
	}
	if (*count >= SCAN_NAMES_MAX)
		return;
	memcpy(slot[*count], name, n);
	slot[*count][n] = '\0';
	(*count)++;
}

int
clamd_reply_parse(const char *p, size_t n, struct scan_reply *r)
{
	const char *name;
	size_t	    i;

	memset(r, 0, sizeof(*r));
	while (n > 0 && (p[n - 1] == '\0' || p[n - 1] == '\n'))
		n--;
	for (i = 0; i < n; i++)
		if ((unsigned char)p[i] < 0x20 || (unsigned char)p[i] > 0x7e)
			return -1;
	if (n >= 8 && memcmp(p, "stream: ", 8) == 0) {
		name = p + 8;
		n -= 8;
		if (n == 2 && memcmp(name, "OK", 2) == 0) {
			r->status = SCAN_CLEAN;
			return 0;
		}
		if (n > 6 && memcmp(name + n - 6, " FOUND", 6) == 0) {
			n -= 6;
			if (n == 0 || memchr(name, ' ', n) != NULL)
				return -1;
			classify(r, name, n);
			r->status = r->nvirus > 0 ? SCAN_INFECTED
			    : r->nlimit > 0	  ? SCAN_INCOMPLETE
						  : SCAN_CLEAN;
			return 0;
		}
		if (n > 6 && memcmp(name + n - 6, " ERROR", 6) == 0)
			goto error;
		return -1;
	}
	if (n > 6 && memcmp(p + n - 6, " ERROR", 6) == 0) {
		name = p;
error:
		if (memmem(name, n, "size limit exceeded", 19) != NULL) {
			r->status = SCAN_INCOMPLETE;
			snprintf(r->limit[0], sizeof(r->limit[0]),
			    "clamd.StreamMaxLength");
			r->nlimit = 1;
			return 0;
		}
		r->status = SCAN_ERROR;
		snprintf(r->error, sizeof(r->error), "clamd: %.*s",
		    (int)(n > 200 ? 200 : n), name);
		return 0;
	}
	return -1;
}

/* ---------------------------------------------------------- a scan */

static void
req_free(struct clamd_req *q)
{
	if (q->bev != NULL)
		bufferevent_free(q->bev);
	if (q->timer != NULL)
		event_free(q->timer);
	if (q->fd != -1)
		close(q->fd);
	if (q->chunk != NULL)
		evbuffer_free(q->chunk);
	free(q->block);
	free(q);
}

static void
finish(struct clamd_req *q, const struct scan_reply *r, const char *why)
{
	scanner_done_fn done = q->done;
	void	       *arg = q->arg;

	req_free(q);
	done(arg, r, why);
}

static void
fail(struct clamd_req *q, const char *why)
{
	finish(q, NULL, why);
}

static void
chunk_emit(void *arg, const char *p, size_t n)
{
	struct clamd_req *q = arg;

	evbuffer_add(q->chunk, p, n);
}

/* Queue chunks until the output holds OUT_LOW bytes or the end is sent. */
static int
fill(struct clamd_req *q)
{
	struct evbuffer *out = bufferevent_get_output(q->bev);
	uint32_t	 be;
	size_t		 want;
	ssize_t		 n;

	while (!q->sent_end && evbuffer_get_length(out) < OUT_LOW) {
		if (q->off < q->len && !q->df.done) {
			want =
			    q->len - q->off < BLOCK ? q->len - q->off : BLOCK;
			do
				n = pread(q->fd, q->block, want, (off_t)q->off);
			while (n == -1 && errno == EINTR);
			if (n <= 0)
				return -1;
			q->off += (size_t)n;
			dataframe_feed(&q->df, q->block, (size_t)n);
			if (evbuffer_get_length(q->chunk) > 0) {
				be = htonl(
				    (uint32_t)evbuffer_get_length(q->chunk));
				evbuffer_add(out, &be, 4);
				evbuffer_add_buffer(out, q->chunk);
			}
			continue;
		}
		be = 0;
		evbuffer_add(out, &be, 4);
		q->sent_end = 1;
		close(q->fd);
		q->fd = -1;
	}
	return 0;
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct clamd_req   *q = arg;
	struct evbuffer	   *in = bufferevent_get_input(bev);
	struct evbuffer_ptr nul;
	struct scan_reply  *r;
	size_t		    n;
	char		   *p;

	nul = evbuffer_search(in, "", 1, NULL);
	if (nul.pos == -1) {
		if (evbuffer_get_length(in) > REPLY_MAX)
			fail(q, "clamd sent an overlong reply");
		return;
	}
	n = (size_t)nul.pos;
	p = (char *)evbuffer_pullup(in, (ev_ssize_t)n + 1);
	r = xmalloc(sizeof(*r));
	if (clamd_reply_parse(p, n, r) == -1) {
		free(r);
		fail(q, "clamd sent a reply moat does not understand");
		return;
	}
	finish(q, r, NULL);
	free(r);
}

static void
write_cb(struct bufferevent *bev, void *arg)
{
	struct clamd_req *q = arg;

	if (fill(q) == -1)
		fail(q, "cannot read the message");
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct clamd_req *q = arg;

	if (what & BEV_EVENT_CONNECTED) {
		if (fill(q) == -1)
			fail(q, "cannot read the message");
		return;
	}
	if (what & BEV_EVENT_EOF) {
		/* A reply without its NUL, then EOF: take what came. */
		struct evbuffer *in = bufferevent_get_input(bev);

		if (evbuffer_get_length(in) > 0 &&
		    evbuffer_get_length(in) <= REPLY_MAX) {
			evbuffer_add(in, "", 1);
			read_cb(bev, q);
			return;
		}
		fail(q, "clamd closed the connection without an answer");
		return;
	}
	fail(q,
	    (what & BEV_EVENT_TIMEOUT) ? "clamd timed out"
				       : "clamd connection failed");
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	fail(arg, "clamd did not answer in time");
}

struct clamd_req *
clamd_scan(struct loop *l, const struct clamd_addr *a, int fd, size_t len,
    unsigned timeout_ms, scanner_done_fn done, void *arg, const char **err)
{
	struct clamd_req *q = xcalloc(1, sizeof(*q));
	struct timeval	  tv;

	q->fd = fd;
	q->len = len;
	q->done = done;
	q->arg = arg;
	q->chunk = evbuffer_new();
	q->block = xmalloc(BLOCK);
	dataframe_init(
	    &q->df, DF_MODE_DATA, DF_NORMALIZE, DF_NORMALIZE, chunk_emit, q);
	q->bev =
	    bufferevent_socket_new(loop_base(l), -1, BEV_OPT_CLOSE_ON_FREE);
	if (q->bev == NULL || q->chunk == NULL) {
		*err = "out of memory";
		req_free(q);
		return NULL;
	}
	bufferevent_setcb(q->bev, read_cb, write_cb, event_cb, q);
	/* The command goes first, whenever the first callback comes. */
	evbuffer_add(bufferevent_get_output(q->bev), "zINSTREAM", 10);
	bufferevent_setwatermark(q->bev, EV_WRITE, OUT_LOW / 2, 0);
	if (bufferevent_socket_connect(
		q->bev, (struct sockaddr *)&a->sa, (int)a->salen) == -1) {
		*err = "cannot connect to clamd";
		req_free(q);
		return NULL;
	}
	bufferevent_enable(q->bev, EV_READ | EV_WRITE);
	q->timer = evtimer_new(loop_base(l), timer_cb, q);
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	evtimer_add(q->timer, &tv);
	return q;
}

void
clamd_cancel(struct clamd_req *q)
{
	if (q != NULL)
		req_free(q);
}
