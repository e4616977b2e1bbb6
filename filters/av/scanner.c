/*
 * scanner.c - the supervisor of moat-scand and the loops' connections to
 * it (scanner.h has the life cycle and the contract).
 *
 * Threading and ownership. The supervisor state (S) belongs to the main
 * thread: configuration, fork/exec, SIGCHLD, restarts, the relay of the
 * scanner's stderr to moatd's log. The one exception is S.pending, the
 * settings the antivirus filters of the runtime being built asked for:
 * it belongs to the configuration thread from scanner_config_begin() until
 * that runtime is handed to the main thread (a reload: reload.c's
 * loop_post, which orders the writes before the main loop's reads), and
 * to the main thread from then on, which moves it to S.cur in
 * scanner_apply(). One runtime is built at a time (reload.h), and nothing
 * on the main loop reads S.pending while one is built. Each loop thread owns
 * its struct sloop (connections, requests, timers); the main thread reaches it
 * only by loop_post() (a new connection), and a loop reaches the main thread
 * the same way (a scan timed out: kill the scanner). The sloop array is made
 * once, by the first scanner_apply() on the main thread, before any loop
 * receives a connection, and lives until scanner_shutdown().
 *
 * The scanner is another process that parses hostile input with
 * libclamav: a reply that does not parse, or one too long, is taken as a
 * compromised or broken scanner, which is killed and restarted.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"
#include "scanner.h"
#include "scanproto.h"
#include "util.h"

#define BACKOFF_MIN_MS	 500
#define BACKOFF_MAX_MS	 30000
#define HEALTHY_AFTER_MS 60000
#define RETIRED_MAX	 8
#define STDERR_LINE_MAX	 2048

/* ------------------------------------------------ configuration */

struct spec {
	int	 set;
	char	*path, *database, *tmpdir;
	unsigned threads;
	char	*opts[16];
};

static void
spec_clear(struct spec *s)
{
	size_t i;

	free(s->path);
	free(s->database);
	free(s->tmpdir);
	for (i = 0; i < nitems(s->opts); i++)
		free(s->opts[i]);
	memset(s, 0, sizeof(*s));
}

static void
spec_copy(struct spec *d, const struct scanner_spec *s)
{
	size_t i;

	spec_clear(d);
	d->set = 1;
	d->path = xstrdup(s->path);
	d->database = xstrdup(s->database);
	d->tmpdir = s->tmpdir != NULL ? xstrdup(s->tmpdir) : NULL;
	d->threads = s->threads;
	for (i = 0; i + 1 < nitems(d->opts) && s->opts[i] != NULL; i++)
		d->opts[i] = xstrdup(s->opts[i]);
}

static int
str_eq(const char *a, const char *b)
{
	return (a == NULL && b == NULL) ||
	    (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static int
spec_eq(const struct spec *a, const struct spec *b)
{
	size_t i;

	if (a->set != b->set)
		return 0;
	if (!a->set)
		return 1;
	if (!str_eq(a->path, b->path) || !str_eq(a->database, b->database) ||
	    !str_eq(a->tmpdir, b->tmpdir) || a->threads != b->threads)
		return 0;
	for (i = 0; i < nitems(a->opts); i++)
		if (!str_eq(a->opts[i], b->opts[i]))
			return 0;
	return 1;
}

/* ------------------------------------------------- per loop */

struct sconn;

struct scanner_req {
	struct sconn   *c;
	uint64_t	id;
	struct event   *timer;
	scanner_done_fn done;
	void	       *arg;
	TAILQ_ENTRY(scanner_req) link;
};

struct sloop;

struct sconn {
	struct sloop *sl;
	int	      fd;
	uint64_t      gen; /* the scanner process it talks to */
	int	      retired;
	struct event *rev;
	TAILQ_HEAD(, scanner_req) reqs;
	unsigned nreqs;
	LIST_ENTRY(sconn) link;
};

struct sloop {
	struct sconn *cur;
	LIST_HEAD(, sconn) conns;
	uint64_t	   next_id;
	char		  *pkt;	  /* SCAN_REPLY_MAX + 1 */
	struct scan_reply *reply; /* parsed, valid during done() */
};

/* ------------------------------------------------- supervisor */

static struct {
	struct spec	    pending, cur;
	struct loop	   *main;
	struct loop	  **loops;
	unsigned	    n;
	struct sloop	   *sl;
	struct event	   *sigchld, *restart;
	pid_t		    pid;
	uint64_t	    gen;
	uint64_t	    started_ms;
	unsigned	    backoff_ms;
	int		    stopping;
	pid_t		    retired[RETIRED_MAX];
	struct bufferevent *err;
} S;

static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void
scanner_config_begin(void)
{
	spec_clear(&S.pending);
}

int
scanner_config(const struct scanner_spec *s, char *err, size_t errlen)
{
	struct spec t;

	memset(&t, 0, sizeof(t));
	spec_copy(&t, s);
	if (S.pending.set && !spec_eq(&t, &S.pending)) {
		snprintf(err, errlen,
		    "every antivirus filter with backend = scanner must have "
		    "the same scanner settings (there is one scanner process)");
		spec_clear(&t);
		return -1;
	}
	spec_clear(&S.pending);
	S.pending = t;
	return 0;
}

/* ---- the loops' side */

static void conn_read_cb(evutil_socket_t, short, void *);

static void
conn_close(struct sconn *c)
{
	if (c->sl->cur == c)
		c->sl->cur = NULL;
	LIST_REMOVE(c, link);
	if (c->rev != NULL)
		event_free(c->rev);
	close(c->fd);
	free(c);
}

static void
req_free(struct scanner_req *r)
{
	struct sconn *c = r->c;

	TAILQ_REMOVE(&c->reqs, r, link);
	c->nreqs--;
	event_free(r->timer);
	free(r);
}

/* Fail every request of c and close it. */
static void
conn_fail(struct sconn *c, const char *why)
{
	struct scanner_req *r;
	scanner_done_fn	    done;
	void		   *arg;

	/* Detach first: a done callback may start another scan. */
	if (c->sl->cur == c)
		c->sl->cur = NULL;
	c->retired = 1;
	while ((r = TAILQ_FIRST(&c->reqs)) != NULL) {
		done = r->done;
		arg = r->arg;
		req_free(r);
		done(arg, NULL, why);
	}
	conn_close(c);
}

static void
conn_idle_check(struct sconn *c)
{
	if (c->retired && c->nreqs == 0)
		conn_close(c);
}

struct install {
	int	 fd;
	uint64_t gen;
};

static void
install_cb(struct loop *l, void *arg)
{
	struct install *in = arg;
	struct sloop   *sl = &S.sl[loop_index(l)];
	struct sconn   *c = xcalloc(1, sizeof(*c)), *old = sl->cur;

	c->sl = sl;
	c->fd = in->fd;
	c->gen = in->gen;
	TAILQ_INIT(&c->reqs);
	c->rev = event_new(
	    loop_base(l), c->fd, EV_READ | EV_PERSIST, conn_read_cb, c);
	event_add(c->rev, NULL);
	LIST_INSERT_HEAD(&sl->conns, c, link);
	sl->cur = c;
	free(in);
	if (old != NULL) {
		old->retired = 1;
		conn_idle_check(old);
	}
}

/* Close the current connection of a loop (no scanner wanted any more). */
static void
retire_cb(struct loop *l, void *arg)
{
	struct sloop *sl = &S.sl[loop_index(l)];
	struct sconn *c = sl->cur;

	if (c == NULL)
		return;
	sl->cur = NULL;
	c->retired = 1;
	conn_idle_check(c);
}

static void kill_cb(struct loop *, void *);

/* Ask the main thread to kill scanner generation gen. */
static void
report_broken(struct sconn *c, const char *why)
{
	log_warn("event=scanner-broken generation=%llu reason=\"%s\"",
	    (unsigned long long)c->gen, why);
	loop_post(S.main, kill_cb, (void *)(uintptr_t)c->gen);
}

static void
req_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct scanner_req *r = arg;
	struct sconn	   *c = r->c;
	scanner_done_fn	    done = r->done;
	void		   *a = r->arg;

	req_free(r);
	report_broken(c, "a scan got no answer in time");
	done(a, NULL, "the scanner did not answer in time");
	conn_idle_check(c);
}

static void
conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sconn	   *c = arg;
	struct sloop	   *sl = c->sl;
	struct scanner_req *r;
	struct msghdr	    mh;
	struct iovec	    iov;
	const char	   *why;
	scanner_done_fn	    done;
	void		   *a;
	ssize_t		    n;
	int		    i;

	for (i = 0; i < 64; i++) {
		memset(&mh, 0, sizeof(mh));
		iov.iov_base = sl->pkt;
		iov.iov_len = SCAN_REPLY_MAX + 1;
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n == -1 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			conn_fail(c,
			    n == 0 ? "the scanner went away"
				   : "the scanner connection failed");
			return;
		}
		if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0 ||
		    n > SCAN_REPLY_MAX) {
			report_broken(c, "oversized reply");
			conn_fail(c, "the scanner sent an invalid reply");
			return;
		}
		if (scan_reply_parse(sl->pkt, (size_t)n, sl->reply, &why) ==
		    -1) {
			report_broken(c, why);
			conn_fail(c, "the scanner sent an invalid reply");
			return;
		}
		TAILQ_FOREACH(r, &c->reqs, link)
		if (r->id == sl->reply->id)
			break;
		if (r == NULL) /* cancelled meanwhile */
			continue;
		done = r->done;
		a = r->arg;
		req_free(r);
		done(a, sl->reply, NULL);
		if (c->retired && c->nreqs == 0) {
			conn_close(c);
			return;
		}
	}
}

struct scanner_req *
scanner_scan(struct loop *l, int fd, size_t len, unsigned flags,
    unsigned timeout_ms, scanner_done_fn done, void *arg, const char **err)
{
	struct sloop	   *sl;
	struct sconn	   *c;
	struct scanner_req *r;
	struct scan_request q;
	struct msghdr	    mh;
	struct iovec	    iov;
	struct cmsghdr	   *cm;
	union {
		char	       buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct timeval tv;

	if (S.sl == NULL || (c = S.sl[loop_index(l)].cur) == NULL) {
		close(fd);
		*err = "the scanner is not running";
		return NULL;
	}
	sl = c->sl;
	scan_request_init(&q, SCAN_OP_SCAN, ++sl->next_id, len, flags);
	memset(&mh, 0, sizeof(mh));
	iov.iov_base = &q;
	iov.iov_len = sizeof(q);
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	memset(&ctl, 0, sizeof(ctl));
	mh.msg_control = ctl.buf;
	mh.msg_controllen = sizeof(ctl.buf);
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	if (sendmsg(c->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) == -1) {
		*err = errno == EAGAIN ? "the scanner is overloaded"
				       : "the scanner connection failed";
		close(fd);
		return NULL;
	}
	close(fd);
	r = xcalloc(1, sizeof(*r));
	r->c = c;
	r->id = q.id;
	r->done = done;
	r->arg = arg;
	r->timer = evtimer_new(loop_base(l), req_timeout_cb, r);
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	evtimer_add(r->timer, &tv);
	TAILQ_INSERT_TAIL(&c->reqs, r, link);
	c->nreqs++;
	return r;
}

void
scanner_cancel(struct scanner_req *r)
{
	struct sconn *c;

	if (r == NULL)
		return;
	c = r->c;
	req_free(r);
	conn_idle_check(c);
}

/* ---- the main thread's side */

static void
stderr_read_cb(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	char		*line, *p;
	size_t		 n;

	while ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF)) != NULL) {
		for (p = line; *p != '\0'; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '"')
				*p = '?';
		if (n > 0)
			log_info("event=scanner-log line=\"%.*s\"",
			    STDERR_LINE_MAX, line);
		free(line);
	}
	/* A line that never ends is cut, not buffered without bound. */
	if (evbuffer_get_length(in) > STDERR_LINE_MAX)
		evbuffer_drain(in, evbuffer_get_length(in));
}

static void
stderr_event_cb(struct bufferevent *bev, short what, void *arg)
{
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		bufferevent_free(bev);
		if (S.err == bev)
			S.err = NULL;
	}
}

static void
retire_pid(pid_t pid)
{
	size_t i;

	for (i = 0; i < RETIRED_MAX; i++)
		if (S.retired[i] == 0) {
			S.retired[i] = pid;
			return;
		}
	/* No room: it must not linger. */
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static int
spawn(void)
{
	int(*sv)[2], ep[2] = { -1, -1 }, devnull, lo, i, k;
	char	    *argv[64], nbuf[16], tbuf[16];
	struct loop *l;
	pid_t	     pid;
	unsigned     n = S.n;
	size_t	     j;

	sv = xcalloc(n, sizeof(*sv));
	for (i = 0; i < (int)n; i++)
		sv[i][0] = sv[i][1] = -1;
	for (i = 0; i < (int)n; i++)
		if (socketpair(
			AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv[i]) == -1)
			goto fail;
	if (pipe2(ep, O_CLOEXEC) == -1)
		goto fail;
	if ((devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) == -1)
		goto fail;
	k = 0;
	argv[k++] = S.cur.path;
	argv[k++] = "-d";
	argv[k++] = S.cur.database;
	snprintf(nbuf, sizeof(nbuf), "%u", n);
	argv[k++] = "-n";
	argv[k++] = nbuf;
	if (S.cur.threads > 0) {
		snprintf(tbuf, sizeof(tbuf), "%u", S.cur.threads);
		argv[k++] = "-t";
		argv[k++] = tbuf;
	}
	if (S.cur.tmpdir != NULL) {
		argv[k++] = "-T";
		argv[k++] = S.cur.tmpdir;
	}
	for (j = 0; j < nitems(S.cur.opts) && S.cur.opts[j] != NULL; j++) {
		argv[k++] = "-o";
		argv[k++] = S.cur.opts[j];
	}
	argv[k] = NULL;

	pid = fork();
	if (pid == -1) {
		close(devnull);
		goto fail;
	}
	if (pid == 0) {
		/* Child of a threaded process: async-signal-safe calls only. */
		sigset_t none;

		lo = 3 + (int)n;
		for (i = 0; i < (int)n; i++)
			if ((sv[i][1] = fcntl(sv[i][1], F_DUPFD, lo)) == -1)
				_exit(126);
		if ((ep[1] = fcntl(ep[1], F_DUPFD, lo)) == -1 ||
		    (devnull = fcntl(devnull, F_DUPFD, lo)) == -1)
			_exit(126);
		if (dup2(devnull, 0) == -1 || dup2(ep[1], 1) == -1 ||
		    dup2(ep[1], 2) == -1)
			_exit(126);
		for (i = 0; i < (int)n; i++)
			if (dup2(sv[i][1], 3 + i) == -1)
				_exit(126);
		if (syscall(SYS_close_range, (unsigned)lo, ~0u, 0) == -1)
			for (i = lo; i < 65536; i++)
				close(i);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGCHLD, SIG_DFL);
		execv(argv[0], argv);
		_exit(127);
	}
	close(devnull);
	close(ep[1]);
	S.pid = pid;
	S.gen++;
	S.started_ms = mono_ms();
	if (S.err != NULL)
		bufferevent_free(S.err);
	evutil_make_socket_nonblocking(ep[0]);
	S.err = bufferevent_socket_new(
	    loop_base(S.main), ep[0], BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(S.err, stderr_read_cb, NULL, stderr_event_cb, NULL);
	bufferevent_enable(S.err, EV_READ);
	for (i = 0; i < (int)n; i++) {
		struct install *in = xmalloc(sizeof(*in));
		int		sz = 1 << 20;

		close(sv[i][1]);
		setsockopt(sv[i][0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
		evutil_make_socket_nonblocking(sv[i][0]);
		in->fd = sv[i][0];
		in->gen = S.gen;
		l = S.loops[i];
		loop_post(l, install_cb, in);
	}
	free(sv);
	log_info("event=scanner-start pid=%d generation=%llu path=%s "
		 "database=%s",
	    (int)pid, (unsigned long long)S.gen, S.cur.path, S.cur.database);
	return 0;
fail:
	log_err("event=scanner-start-failed error=\"%s\"", strerror(errno));
	for (i = 0; i < (int)n; i++) {
		if (sv[i][0] != -1)
			close(sv[i][0]);
		if (sv[i][1] != -1)
			close(sv[i][1]);
	}
	if (ep[0] != -1) {
		close(ep[0]);
		close(ep[1]);
	}
	free(sv);
	return -1;
}

static void
schedule_restart(void)
{
	struct timeval tv;

	if (S.stopping || !S.cur.set)
		return;
	if (mono_ms() - S.started_ms >= HEALTHY_AFTER_MS)
		S.backoff_ms = BACKOFF_MIN_MS;
	tv.tv_sec = S.backoff_ms / 1000;
	tv.tv_usec = (S.backoff_ms % 1000) * 1000;
	log_info("event=scanner-restart-scheduled in_ms=%u", S.backoff_ms);
	evtimer_add(S.restart, &tv);
	S.backoff_ms = S.backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
							 : S.backoff_ms * 2;
}

static void
restart_cb(evutil_socket_t fd, short what, void *arg)
{
	if (S.pid == 0 && S.cur.set && !S.stopping && spawn() == -1)
		schedule_restart();
}

static void
log_exit(pid_t pid, int st, const char *which)
{
	if (WIFSIGNALED(st))
		log_warn("event=scanner-exit pid=%d which=%s signal=%d",
		    (int)pid, which, WTERMSIG(st));
	else
		log_info("event=scanner-exit pid=%d which=%s status=%d",
		    (int)pid, which, WEXITSTATUS(st));
}

static void
sigchld_cb(evutil_socket_t sig, short what, void *arg)
{
	size_t i;
	int    st;

	for (i = 0; i < RETIRED_MAX; i++)
		if (S.retired[i] != 0 &&
		    waitpid(S.retired[i], &st, WNOHANG) == S.retired[i]) {
			log_exit(S.retired[i], st, "retired");
			S.retired[i] = 0;
		}
	if (S.pid != 0 && waitpid(S.pid, &st, WNOHANG) == S.pid) {
		log_exit(S.pid, st, "current");
		S.pid = 0;
		schedule_restart();
	}
}

static void
kill_cb(struct loop *l, void *arg)
{
	uint64_t gen = (uint64_t)(uintptr_t)arg;

	if (S.pid != 0 && gen == S.gen) {
		log_warn("event=scanner-kill pid=%d generation=%llu",
		    (int)S.pid, (unsigned long long)gen);
		kill(S.pid, SIGKILL);
	}
}

static void
stop_current(void)
{
	unsigned i;

	if (S.pid != 0) {
		/* Loops close their connections when their scans are done;
		 * the scanner exits when every connection is closed. */
		retire_pid(S.pid);
		S.pid = 0;
	}
	for (i = 0; i < S.n; i++)
		loop_post(S.loops[i], retire_cb, NULL);
}

void
scanner_apply(
    struct loop *mainloop, struct loop **loops, unsigned n, int reload)
{
	unsigned i;

	if (S.main == NULL) {
		if (!S.pending.set)
			return; /* never wanted: no state at all */
		S.main = mainloop;
		S.loops = loops;
		S.n = n;
		S.sl = xcalloc(n, sizeof(*S.sl));
		for (i = 0; i < n; i++) {
			LIST_INIT(&S.sl[i].conns);
			S.sl[i].pkt = xmalloc(SCAN_REPLY_MAX + 1);
			S.sl[i].reply = xmalloc(sizeof(*S.sl[i].reply));
		}
		S.sigchld = evsignal_new(
		    loop_base(mainloop), SIGCHLD, sigchld_cb, NULL);
		evsignal_add(S.sigchld, NULL);
		S.restart = evtimer_new(loop_base(mainloop), restart_cb, NULL);
		S.backoff_ms = BACKOFF_MIN_MS;
	}
	if (spec_eq(&S.pending, &S.cur)) {
		if (reload && S.pid != 0) {
			log_info("event=scanner-reload pid=%d", (int)S.pid);
			kill(S.pid, SIGHUP);
		}
		return;
	}
	stop_current();
	evtimer_del(S.restart);
	spec_clear(&S.cur);
	S.cur = S.pending;
	memset(&S.pending, 0, sizeof(S.pending));
	S.backoff_ms = BACKOFF_MIN_MS;
	if (S.cur.set && spawn() == -1)
		schedule_restart();
}

void
scanner_shutdown(void)
{
	struct sconn *c;
	unsigned      i;
	size_t	      k;
	int	      tries;

	if (S.main == NULL) {
		spec_clear(&S.cur);
		spec_clear(&S.pending);
		return;
	}
	S.stopping = 1;
	if (S.pid != 0)
		retire_pid(S.pid);
	S.pid = 0;
	/* The loops are joined: their connections can go without callbacks
	 * (the sessions are gone). Closing them ends the scanner. */
	for (i = 0; i < S.n; i++) {
		while ((c = LIST_FIRST(&S.sl[i].conns)) != NULL) {
			while (!TAILQ_EMPTY(&c->reqs))
				req_free(TAILQ_FIRST(&c->reqs));
			conn_close(c);
		}
		free(S.sl[i].pkt);
		free(S.sl[i].reply);
	}
	for (k = 0; k < RETIRED_MAX; k++)
		if (S.retired[k] != 0)
			kill(S.retired[k], SIGTERM);
	for (tries = 0; tries < 50; tries++) {
		int left = 0;

		for (k = 0; k < RETIRED_MAX; k++)
			if (S.retired[k] != 0) {
				if (waitpid(S.retired[k], NULL, WNOHANG) == 0)
					left++;
				else
					S.retired[k] = 0;
			}
		if (left == 0)
			break;
		usleep(100000);
	}
	for (k = 0; k < RETIRED_MAX; k++)
		if (S.retired[k] != 0) {
			kill(S.retired[k], SIGKILL);
			waitpid(S.retired[k], NULL, 0);
			S.retired[k] = 0;
		}
	if (S.err != NULL)
		bufferevent_free(S.err);
	event_free(S.sigchld);
	event_free(S.restart);
	free(S.sl);
	spec_clear(&S.cur);
	spec_clear(&S.pending);
	memset(&S, 0, sizeof(S));
}
