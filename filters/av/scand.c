/*
 * scand.c - moat-scand, moat's isolated virus scanner process: libclamav
 * runs here, never inside moatd. moatd starts it (fork+exec, always in
 * the foreground), supervises it, and hands it messages as descriptors
 * over SOCK_SEQPACKET socketpairs; the protocol is filters/av/scanproto.h.
 *
 * Where it is: installed as $(libexecdir)/moat/moat-scand; in the build
 * tree it is ./moat-scand at the top of the build directory.
 *
 * Command line:
 *
 *	moat-scand -d DBPATH -n N [-t THREADS] [-T TMPDIR] [-u USER] [-f]
 *	    [-o key=value ...]
 *
 *	-d DBPATH  ClamAV database file or directory (required)
 *	-n N       request descriptors: fds 3 .. 3+N-1, each one end of a
 *	           SOCK_SEQPACKET socketpair (required, 1..1024)
 *	-t N       scan threads (default: online CPUs; 1..256)
 *	-T DIR     libclamav's temporary directory, created 0700 if missing
 *	           (default: libclamav's, $TMPDIR or /tmp)
 *	-u USER    user to run as when started as root (refused without it)
 *	-f         foreground (the only mode; accepted for clarity)
 *	-o max_scansize=SIZE   (default 100M)   bytes, K/M/G suffixes
 *	-o max_filesize=SIZE   (default 50M: moatd's max_message_size; a
 *	                       message larger than this is not scanned:
 *	                       incomplete)
 *	-o max_recursion=N     (default 16)
 *	-o max_files=N         (default 10000)
 *	-o max_scantime=MS     (default 30000)
 *	-o heuristics=yes|no   (default yes) general heuristics, encrypted
 *	                       archives/documents, broken executables, macros
 *	-o sandbox=yes|no|log  (default yes) seccomp: kill / off / log only
 *	-o queue_max=N         (default 64) requests waiting for a thread;
 *	                       beyond it a SCAN is answered busy at once
 *	-o files=yes|no        (default yes) report "file" lines
 *	-o selftest_forbidden=yes   tests only: call socket() once the
 *	                       sandbox is on (sandbox=yes: the process dies)
 *
 * Exit status: 0 after SIGTERM/SIGINT or when moatd closed every request
 * descriptor; 2 for a usage or start-up error. It dies with moatd
 * (PR_SET_PDEATHSIG). Log: one line per event on stderr,
 * "moat-scand[PID]: event=NAME key=value ...", untrusted text escaped and
 * quoted; moatd passes the lines through to its log.
 *
 * Protocol behaviour. A PING is answered at once by the I/O thread:
 * status clean with "engine <signatures> <generation>" once an engine is
 * loaded, notready (with an error line saying why) before. A SCAN carries
 * exactly one descriptor (SCM_RIGHTS); it is answered notready until the
 * first engine is loaded, busy when queue_max requests already wait, and
 * otherwise queued for a scan thread, which answers clean / infected /
 * incomplete / error (scand_scan.c). Replies come back in completion
 * order, matched by id. A malformed request (size, magic, version, op,
 * flags, missing descriptor) is answered error; extra descriptors are
 * closed; truncated packets (MSG_TRUNC, MSG_CTRUNC) are refused.
 *
 * Engine. Loaded by a loader thread (scand_engine.c), so PINGs are
 * answered during the load. A database that fails to load at start-up
 * does not end the process: it logs event=load_failed, answers notready
 * with the reason, and loads again on SIGHUP or a change in the database
 * directory. SIGHUP, or an inotify event in the database directory
 * (IN_CLOSE_WRITE, IN_MOVED_TO, IN_MOVED_FROM, IN_DELETE, IN_CREATE of a
 * name that is not hidden, "tmp.*", "*.tmp" or "*~"; debounced: 1 s after
 * the last event, at most 5 s after the first), loads a new engine beside
 * the old one; scans keep using the old one until the swap, and the old
 * engine is freed when its last scan ends. A failed reload keeps the old
 * engine (event=reload_failed engine=kept).
 *
 * Sandbox (scand_sandbox.c). Started as root it needs -u USER and
 * switches to it first. Then: PR_SET_PDEATHSIG(SIGKILL),
 * PR_SET_NO_NEW_PRIVS, not dumpable, RLIMIT_CORE 0, and (sandbox=yes) a
 * seccomp allowlist that kills the process on anything else: no execve,
 * no fork, no sockets of its own, no ptrace. The filter is installed by
 * the main thread before the loader and scan threads start.
 *
 * SIGTERM: stop reading requests, answer those still queued with error
 * "shutting down", let running scans finish (at most max_scantime + 5 s),
 * exit 0.
 *
 * Threads: the main thread owns the poll loop, the request descriptors'
 * reading side and the queue's producer side; scan threads consume the
 * queue; one loader thread builds engines. A reply is sent whole with one
 * sendmsg under its channel's lock. Signals are blocked in every thread and
 * read from a signalfd.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "escape.h"
#include "scand.h"

#define FIRST_FD     3
#define SEND_WAIT_MS 5000
#define DEBOUNCE_MS  1000
#define DEBOUNCE_MAX 5000
#define RECV_BURST   32
#define DRAIN_MARGIN 5000

/* ------------------------------------------------------------------ log */

void
slog(const char *fmt, ...)
{
	char	line[2048];
	va_list ap;
	int	n, m;

	n = snprintf(line, sizeof(line), "moat-scand[%d]: ", (int)getpid());
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += m;
	if ((size_t)n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, (size_t)n);
}

const char *
slog_esc(const char *s, char *out, size_t outsz)
{
	log_escape(s, strlen(s), out, outsz);
	return out;
}

/* ------------------------------------------------------------- channels */

struct channel {
	int		fd;
	int		open; /* main thread only */
	pthread_mutex_t lock; /* serialises replies */
};

static struct channel *chans;
static unsigned	       nchans, nopen;

/* Send one reply whole; waits (bounded) while the socket is full. */
static void
send_reply(struct channel *ch, const struct scan_reply *r)
{
	char	      buf[SCAN_REPLY_MAX];
	size_t	      n = scan_reply_format(r, buf, sizeof(buf));
	struct pollfd pfd = { ch->fd, POLLOUT, 0 };
	ssize_t	      w;

	pthread_mutex_lock(&ch->lock);
	for (;;) {
		w = send(ch->fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w >= 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != ENOBUFS)
			break;
		if (poll(&pfd, 1, SEND_WAIT_MS) <= 0) {
			errno = ETIMEDOUT;
			break;
		}
	}
	pthread_mutex_unlock(&ch->lock);
	if (w != (ssize_t)n && errno != EPIPE && errno != ECONNRESET)
		slog("event=reply_lost fd=%d id=%llu error=\"%s\"", ch->fd,
		    (unsigned long long)r->id, strerror(errno));
}

/* ---------------------------------------------------------------- queue */

struct job {
	struct channel	   *ch;
	struct scan_request req;
	int		    fd;
};

static pthread_mutex_t qmu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t  qcv = PTHREAD_COND_INITIALIZER;	 /* work or stop */
static pthread_cond_t  qidle = PTHREAD_COND_INITIALIZER; /* a scan ended */
static struct job     *queue;		     /* ring of queue_max, under qmu */
static unsigned	       qhead, qlen, running; /* under qmu */
static int	       qstop;		     /* under qmu */
static pthread_t      *workers;

static void *
worker_main(void *arg)
{
	struct scan_reply *r = malloc(sizeof(*r));
	struct job	   j;

	if (r == NULL) {
		slog("event=fatal error=\"out of memory\"");
		abort();
	}
	pthread_mutex_lock(&qmu);
	for (;;) {
		while (qlen == 0 && !qstop)
			pthread_cond_wait(&qcv, &qmu);
		if (qlen == 0)
			break;
		j = queue[qhead];
		qhead = (qhead + 1) % scand_opts.queue_max;
		qlen--;
		running++;
		pthread_mutex_unlock(&qmu);

		scan_message(j.fd, &j.req, r);
		close(j.fd);
		send_reply(j.ch, r);

		pthread_mutex_lock(&qmu);
		running--;
		pthread_cond_broadcast(&qidle);
	}
	pthread_mutex_unlock(&qmu);
	free(r);
	return NULL;
}

/* Queue a job; -1 when the queue is full. */
static int
enqueue(const struct job *j)
{
	int rc = -1;

	pthread_mutex_lock(&qmu);
	if (qlen < scand_opts.queue_max && !qstop) {
		queue[(qhead + qlen) % scand_opts.queue_max] = *j;
		qlen++;
		pthread_cond_signal(&qcv);
		rc = 0;
	}
	pthread_mutex_unlock(&qmu);
	return rc;
}

/* -------------------------------------------------------------- requests */

static struct scan_reply reply; /* main thread's */

static void
answer(struct channel *ch, uint64_t id, enum scan_status st, const char *err)
{
	char why[sizeof(reply.error)];

	memset(&reply, 0, sizeof(reply));
	reply.id = id;
	reply.status = st;
	(void)engine_state(
	    &reply.signatures, &reply.generation, why, sizeof(why));
	snprintf(
	    reply.error, sizeof(reply.error), "%s", err != NULL ? err : why);
	send_reply(ch, &reply);
}

static void
answer_ping(struct channel *ch, uint64_t id)
{
	memset(&reply, 0, sizeof(reply));
	reply.id = id;
	reply.status = engine_state(&reply.signatures, &reply.generation,
			   reply.error, sizeof(reply.error))
	    ? SCAN_CLEAN
	    : SCAN_NOTREADY;
	send_reply(ch, &reply);
}

/*
 * Read one packet from ch. Returns 1 if one was handled, 0 when there is
 * nothing more to read, -1 when the channel is finished (EOF or error).
 */
static int
recv_one(struct channel *ch)
{
	union {
		char	       buf[CMSG_SPACE(8 * sizeof(int))];
		struct cmsghdr align;
	} cm;
	char		    data[sizeof(struct scan_request) + 1];
	struct iovec	    iov = { data, sizeof(data) };
	struct msghdr	    msg = { 0 };
	struct cmsghdr	   *c;
	struct scan_request req;
	struct job	    j;
	ssize_t		    n;
	int		    fd = -1, nfds = 0, k;
	uint64_t	    id = 0;

	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cm.buf;
	msg.msg_controllen = sizeof(cm.buf);
	n = recvmsg(ch->fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n == -1)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	if (n == 0 && msg.msg_controllen == 0)
		return -1;
	for (c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
		int *fds = (int *)CMSG_DATA(c), cnt;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		cnt = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (k = 0; k < cnt; k++) {
			if (nfds++ == 0)
				fd = fds[k];
			else
				close(fds[k]);
		}
	}
	if ((size_t)n >= offsetof(struct scan_request, length))
		memcpy(
		    &id, data + offsetof(struct scan_request, id), sizeof(id));
	if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ||
	    scan_request_check(data, (size_t)n, &req) < 0) {
		slog("event=bad_request fd=%d bytes=%zd descriptors=%d%s",
		    ch->fd, n, nfds,
		    (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
			? " truncated=yes"
			: "");
		if (fd >= 0)
			close(fd);
		answer(ch, id, SCAN_ERROR, "bad request");
		return 1;
	}
	if (nfds > 1)
		slog("event=bad_request fd=%d id=%llu descriptors=%d "
		     "msg=\"extra descriptors closed\"",
		    ch->fd, (unsigned long long)req.id, nfds);
	if (req.op == SCAN_OP_PING) {
		if (fd >= 0)
			close(fd);
		answer_ping(ch, req.id);
		return 1;
	}
	if (fd < 0) {
		answer(ch, req.id, SCAN_ERROR, "SCAN without a descriptor");
		return 1;
	}
	if (!engine_ready()) {
		close(fd);
		answer(ch, req.id, SCAN_NOTREADY, NULL);
		return 1;
	}
	j.ch = ch;
	j.req = req;
	j.fd = fd;
	if (enqueue(&j) < 0) {
		close(fd);
		answer(ch, req.id, SCAN_BUSY, "queue full");
	}
	return 1;
}

/* ------------------------------------------------------------- start-up */

static int
open_channels(void)
{
	unsigned  i;
	int	  type;
	socklen_t len;

	chans = calloc(scand_opts.nfds, sizeof(*chans));
	if (chans == NULL)
		return -1;
	for (i = 0; i < scand_opts.nfds; i++) {
		struct channel *ch = &chans[i];

		ch->fd = FIRST_FD + (int)i;
		len = sizeof(type);
		if (getsockopt(ch->fd, SOL_SOCKET, SO_TYPE, &type, &len) ==
			-1 ||
		    type != SOCK_SEQPACKET) {
			slog("event=fatal error=\"fd %d is not a "
			     "SOCK_SEQPACKET socket\"",
			    ch->fd);
			return -1;
		}
		(void)fcntl(ch->fd, F_SETFD, FD_CLOEXEC);
		pthread_mutex_init(&ch->lock, NULL);
		ch->open = 1;
	}
	nchans = nopen = scand_opts.nfds;
	/* Nothing else inherited stays open. */
	(void)close_range(FIRST_FD + scand_opts.nfds, ~0u, 0);
	return 0;
}

static int
make_tmpdir(const char *dir)
{
	struct stat st;

	if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
		slog(
		    "event=fatal error=\"mkdir %s: %s\"", dir, strerror(errno));
		return -1;
	}
	if (stat(dir, &st) == -1 || !S_ISDIR(st.st_mode)) {
		slog("event=fatal error=\"%s is not a directory\"", dir);
		return -1;
	}
	return 0;
}

/* The directory to watch: DBPATH, or the one holding the DBPATH file. */
static int
watch_db(void)
{
	struct stat st;
	char	    dir[PATH_MAX];
	char	   *slash;
	int	    fd;

	snprintf(dir, sizeof(dir), "%s", scand_opts.dbpath);
	if (stat(dir, &st) == 0 && !S_ISDIR(st.st_mode)) {
		if ((slash = strrchr(dir, '/')) == NULL)
			strcpy(dir, ".");
		else if (slash == dir)
			dir[1] = '\0';
		else
			*slash = '\0';
	}
	if ((fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) == -1)
		return -1;
	if (inotify_add_watch(fd, dir,
		IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE |
		    IN_CREATE) == -1) {
		slog("event=warning msg=\"no inotify watch on %s: %s\"", dir,
		    strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static int
start_workers(void)
{
	unsigned i;
	int	 rc;

	queue = calloc(scand_opts.queue_max, sizeof(*queue));
	workers = calloc(scand_opts.threads, sizeof(*workers));
	if (queue == NULL || workers == NULL)
		return -1;
	for (i = 0; i < scand_opts.threads; i++)
		if ((rc = pthread_create(
			 &workers[i], NULL, worker_main, NULL)) != 0) {
			slog("event=fatal error=\"scan thread: %s\"",
			    strerror(rc));
			return -1;
		}
	return 0;
}

/* --------------------------------------------------------------- loop */

static int64_t
now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Stop: answer what waits, let running scans end (bounded). */
static int
shutdown_scans(const char *why)
{
	struct timespec dl;
	struct job	j;
	int		rc = 0;

	pthread_mutex_lock(&qmu);
	qstop = 1;
	while (qlen > 0) {
		j = queue[qhead];
		qhead = (qhead + 1) % scand_opts.queue_max;
		qlen--;
		pthread_mutex_unlock(&qmu);
		close(j.fd);
		answer(j.ch, j.req.id, SCAN_ERROR, "shutting down");
		pthread_mutex_lock(&qmu);
	}
	pthread_cond_broadcast(&qcv);
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += (scand_opts.max_scantime + DRAIN_MARGIN) / 1000;
	while (running > 0 && rc == 0)
		rc = pthread_cond_timedwait(&qidle, &qmu, &dl);
	rc = running > 0 ? -1 : 0;
	pthread_mutex_unlock(&qmu);
	if (rc < 0)
		slog("event=stop reason=%s scans_abandoned=yes", why);
	return rc;
}

/*
 * Drain the inotify descriptor; 1 if an event names a file that may be a
 * database: not hidden, not a temporary ("tmp.*", "*.tmp", "*~", as
 * freshclam and editors make them).
 */
static int
db_changed(int infd, char *buf, size_t size)
{
	const struct inotify_event *ev;
	ssize_t			    n;
	size_t			    off, len;
	int			    changed = 0;

	while ((n = read(infd, buf, size)) > 0) {
		for (off = 0; off + sizeof(*ev) <= (size_t)n;
		     off += sizeof(*ev) + ev->len) {
			ev = (const struct inotify_event *)(buf + off);
			if (ev->mask & IN_Q_OVERFLOW || ev->len == 0) {
				changed = 1;
				continue;
			}
			len = strlen(ev->name);
			if (ev->name[0] == '.' ||
			    strncmp(ev->name, "tmp.", 4) == 0 ||
			    (len >= 4 &&
				strcmp(ev->name + len - 4, ".tmp") == 0) ||
			    ev->name[len - 1] == '~')
				continue;
			changed = 1;
		}
	}
	return changed;
}

static void
io_loop(int sigfd, int infd)
{
	struct pollfd	       *pfd;
	struct signalfd_siginfo si;
	char			ibuf[4096]
	    __attribute__((aligned(__alignof__(struct inotify_event))));
	int64_t	    first_ev = 0, last_ev = 0, now;
	const char *why = "eof";
	unsigned    i, np;
	int	    timeout, k, r = 0;

	pfd = calloc(nchans + 2, sizeof(*pfd));
	if (pfd == NULL)
		return;
	for (;;) {
		np = 0;
		pfd[np++] = (struct pollfd){ sigfd, POLLIN, 0 };
		pfd[np++] = (struct pollfd){ infd, POLLIN, 0 };
		for (i = 0; i < nchans; i++)
			pfd[np++] =
			    (struct pollfd){ chans[i].open ? chans[i].fd : -1,
				    POLLIN, 0 };
		timeout = -1;
		if (first_ev != 0) {
			int64_t due = last_ev + DEBOUNCE_MS;

			if (due > first_ev + DEBOUNCE_MAX)
				due = first_ev + DEBOUNCE_MAX;
			timeout = (int)(due - now_ms());
			if (timeout < 0)
				timeout = 0;
		}
		if (poll(pfd, np, timeout) == -1 && errno != EINTR)
			break;
		if (pfd[0].revents & POLLIN) {
			if (read(sigfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGHUP)
					engine_reload("sighup");
				else {
					why = si.ssi_signo == SIGTERM
					    ? "sigterm"
					    : "sigint";
					break;
				}
			}
		}
		if (infd >= 0 && (pfd[1].revents & POLLIN)) {
			if (db_changed(infd, ibuf, sizeof(ibuf))) {
				last_ev = now_ms();
				if (first_ev == 0)
					first_ev = last_ev;
			}
		}
		now = now_ms();
		if (first_ev != 0 &&
		    (now >= last_ev + DEBOUNCE_MS ||
			now >= first_ev + DEBOUNCE_MAX)) {
			first_ev = last_ev = 0;
			engine_reload("dbchange");
		}
		for (i = 0; i < nchans; i++) {
			struct channel *ch = &chans[i];

			if (!ch->open || pfd[2 + i].revents == 0)
				continue;
			for (k = 0; k < RECV_BURST; k++)
				if ((r = recv_one(ch)) <= 0)
					break;
			if (r < 0) {
				/* Kept open until exit: a scan may still
				 * answer on it. */
				ch->open = 0;
				nopen--;
			}
		}
		if (nopen == 0)
			break;
	}
	free(pfd);
	slog("event=stopping reason=%s", why);
	(void)shutdown_scans(why);
}

int
main(int argc, char **argv)
{
	pid_t	 parent = getppid();
	sigset_t ss;
	int	 sigfd, infd;
	unsigned i;
	int	 clean;

	parse_args(argc, argv);
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	if (getppid() != parent) /* moatd went before the prctl */
		return 0;
	if (open_channels() < 0) /* closes other inherited fds */
		return 2;
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&ss);
	sigaddset(&ss, SIGHUP);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	if (pthread_sigmask(SIG_BLOCK, &ss, NULL) != 0 ||
	    (sigfd = signalfd(-1, &ss, SFD_NONBLOCK | SFD_CLOEXEC)) == -1) {
		slog("event=fatal error=\"signalfd: %s\"", strerror(errno));
		return 2;
	}
	if (scand_opts.tmpdir != NULL && make_tmpdir(scand_opts.tmpdir) < 0)
		return 2;
	if (sandbox_drop_user(scand_opts.user, scand_opts.tmpdir) < 0)
		return 2;
	/* The parent's death signal is reset by a change of credentials. */
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	if (sandbox_harden() < 0 || engine_init() < 0)
		return 2;
	infd = watch_db();
	if (sandbox_seccomp(scand_opts.sandbox) < 0)
		return 2;
	slog("event=start channels=%u threads=%u queue_max=%u db=\"%s\" "
	     "sandbox=%s heuristics=%s max_scansize=%llu max_filesize=%llu "
	     "max_recursion=%u max_files=%u max_scantime=%u",
	    nchans, scand_opts.threads, scand_opts.queue_max, scand_opts.dbpath,
	    scand_opts.sandbox == SANDBOX_KILL	    ? "yes"
		: scand_opts.sandbox == SANDBOX_LOG ? "log"
						    : "no",
	    scand_opts.heuristics ? "yes" : "no",
	    (unsigned long long)scand_opts.max_scansize,
	    (unsigned long long)scand_opts.max_filesize,
	    scand_opts.max_recursion, scand_opts.max_files,
	    scand_opts.max_scantime);
	if (scand_opts.selftest_forbidden) {
		/* Test hook: a forbidden call must end the process here. */
		int s = socket(AF_INET, SOCK_STREAM, 0);

		slog("event=selftest socket=%d", s);
	}
	if (engine_start() < 0 || start_workers() < 0)
		return 2;

	io_loop(sigfd, infd);

	clean = !engine_busy();
	pthread_mutex_lock(&qmu);
	clean = clean && running == 0;
	pthread_mutex_unlock(&qmu);
	if (!clean) {
		/* A scan or a load still runs: do not wait for it. */
		slog("event=exit status=0 wait=abandoned");
		_exit(0);
	}
	for (i = 0; i < scand_opts.threads; i++)
		pthread_join(workers[i], NULL);
	engine_stop();
	slog("event=exit status=0");
	free(queue);
	free(workers);
	for (i = 0; i < nchans; i++) {
		close(chans[i].fd);
		pthread_mutex_destroy(&chans[i].lock);
	}
	free(chans);
	close(sigfd);
	if (infd >= 0)
		close(infd);
	return 0;
}
