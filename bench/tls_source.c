/*
 * tls_source: a small SMTP load generator for bench/tls.sh, like Postfix's
 * "smtp-source -s S -m M -l SIZE" (one message per connection) but able to
 * speak STARTTLS (RFC 3207), implicit TLS (RFC 8314) and to resume TLS
 * sessions, so that plaintext and TLS numbers come from the same client.
 *
 *   cc -O2 -Wall -Wextra bench/tls_source.c -o tls_source -lssl -lcrypto -lpthread
 *
 *   tls_source [-P | -I | -H] [-r] [-2 | -3] [-s sessions] [-m messages]
 *              [-d seconds] [-l size] [-n sni] [-e helo] [-f from] [-t to]
 *              host:port
 *
 *   (default)  STARTTLS: connect, 220, EHLO, STARTTLS, handshake, EHLO,
 *              MAIL, RCPT, DATA, headers and SIZE bytes of body in CR LF
 *              lines, ".", QUIT
 *   -P         plaintext: the same without STARTTLS and the second EHLO
 *   -I         implicit TLS: the handshake right after connect, then the
 *              plaintext dialogue inside TLS
 *   -H         handshakes only: implicit TLS, read the 220 greeting (so that
 *              TLS 1.3 session tickets have arrived), close; no mail
 *   -r         resume: every connection of a thread offers the session of
 *              that thread's previous connection (SSL_get1_session /
 *              SSL_set_session; tickets or session IDs)
 *   -2 / -3    TLS 1.2 only / TLS 1.3 only (default: whatever both speak)
 *   -s S       concurrent sessions, one thread each (default 1)
 *   -m M       messages (or handshakes with -H) in total (default 100)
 *   -d SECS    run for SECS seconds instead of -m
 *   -l SIZE    body bytes per message (default 1024)
 *   -n SNI     server name sent in the handshake (default mx.example.test)
 *   -M DIR     send the messages in DIR's files (header and body, LF or
 *              CR LF lines) instead of generated ones, message i the
 *              (i mod n)-th file in name order; a file NAME.eml is sent
 *              with MAIL FROM:<NAME> (bench/auth.sh: DKIM-signed mail
 *              from many domains)
 *   -L         also print the median and 99th percentile of the time of
 *              a whole transaction (connect to the 250 after the dot)
 *
 * Every reply code is checked. The certificate is not verified (benchmark).
 * Prints one line:
 *   accepted=N failed=F errors=E tls=T resumed=R secs=S rate=N/S
 *   (with -L also p50_ms=X p99_ms=Y)
 * accepted: messages answered 250 after the dot (handshakes with -H);
 * failed: messages (handshakes) that were not; errors: other protocol
 * errors (a QUIT not answered 221); tls: handshakes completed; resumed: of
 * which resumed. The first few failures are described on stderr. Exit
 * status 1 when anything failed, 2 on usage errors.
 */

#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

enum mode { M_STARTTLS, M_PLAIN, M_IMPLICIT, M_HANDSHAKE };

static enum mode mode = M_STARTTLS;
static int resume;
static int sessions = 1;
static long messages = 100;
static double duration;			/* > 0: run for this long instead */
static long size = 1024;
static const char *sni = "mx.example.test";
static const char *helo = "tls-source.example.org";
static const char *from = "bench@example.org";
static const char *to = "sink@example.test";
static struct addrinfo *target;
static SSL_CTX *ctx;

static char *body;			/* SIZE bytes of CR LF lines */
static size_t body_len;

struct file_msg {			/* -M: one message from a file */
	char *sender;
	char *data;			/* wire form, dot-stuffed, CR LF */
	size_t len;
};
static struct file_msg *fmsgs;
static size_t nfmsgs;

static int latency;			/* -L */
static double *lat;			/* per message, seconds; -1 unset */
static long nlat;

static long next_msg;			/* atomic: messages handed out */
static double t_end;			/* with -d: monotonic end time */
static long n_accepted, n_failed, n_errors, n_tls, n_resumed;	/* atomic */
static int n_reported;			/* atomic: failures described */

#define MAX_REPORTED 5
#define IO_TIMEOUT 30

struct conn {
	int fd;
	SSL *ssl;
	size_t off, len;		/* unread bytes: buf[off..len) */
	char buf[16384];
	char line[1024];		/* the last reply line, for errors */
};

static double
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
report(long msg, const char *fmt, ...)
{
	va_list ap;

	if (__atomic_fetch_add(&n_reported, 1, __ATOMIC_RELAXED) >= MAX_REPORTED)
		return;
	va_start(ap, fmt);
	fprintf(stderr, "tls_source: message %ld: ", msg);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static const char *
ssl_err(void)
{
	static __thread char s[256];
	unsigned long e = ERR_get_error();

	if (e == 0)
		return errno ? strerror(errno) : "connection closed";
	ERR_error_string_n(e, s, sizeof s);
	ERR_clear_error();
	return s;
}

/* Some bytes into c->buf; 0 on EOF or error. */
static int
fill(struct conn *c)
{
	ssize_t n;

	if (c->off > 0) {
		memmove(c->buf, c->buf + c->off, c->len - c->off);
		c->len -= c->off;
		c->off = 0;
	}
	if (c->len == sizeof c->buf)
		return 0;
	for (;;) {
		errno = 0;
		if (c->ssl) {
			n = SSL_read(c->ssl, c->buf + c->len, sizeof c->buf - c->len);
			if (n <= 0)
				return 0;
		} else {
			n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return 0;
		}
		c->len += n;
		return 1;
	}
}

static int
write_all(struct conn *c, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w;

		errno = 0;
		if (c->ssl) {
			w = SSL_write(c->ssl, p, n > 1 << 30 ? 1 << 30 : (int)n);
			if (w <= 0)
				return 0;
		} else {
			w = send(c->fd, p, n, MSG_NOSIGNAL);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				return 0;
		}
		p += w;
		n -= w;
	}
	return 1;
}

/* The code of one complete (possibly multiline) reply; -1 on I/O error
 * or garbage. The last line is left in c->line. */
static int
reply(struct conn *c)
{
	for (;;) {
		char *nl;
		size_t ll;

		while ((nl = memchr(c->buf + c->off, '\n', c->len - c->off)) == NULL)
			if (!fill(c)) {
				snprintf(c->line, sizeof c->line, "(read: %s)", ssl_err());
				return -1;
			}
		ll = nl - (c->buf + c->off);
		if (ll > 0 && nl[-1] == '\r')
			ll--;
		snprintf(c->line, sizeof c->line, "%.*s", (int)ll, c->buf + c->off);
		c->off = nl + 1 - c->buf;
		if (ll < 3 || c->line[0] < '1' || c->line[0] > '5' ||
		    c->line[1] < '0' || c->line[1] > '9' || c->line[2] < '0' || c->line[2] > '9')
			return -1;
		if (ll == 3 || c->line[3] == ' ')
			return atoi(c->line);
		if (c->line[3] != '-')
			return -1;
	}
}

/* Send a command (NULL: none) and expect a reply code. */
static int
step(struct conn *c, long msg, const char *what, const char *cmd, int want)
{
	int code;

	if (cmd && !write_all(c, cmd, strlen(cmd))) {
		report(msg, "%s: write: %s", what, ssl_err());
		return 0;
	}
	code = reply(c);
	if (code != want) {
		report(msg, "%s: expected %d, got \"%s\"", what, want, c->line);
		return 0;
	}
	return 1;
}

static int
handshake(struct conn *c, long msg, SSL_SESSION **saved)
{
	c->ssl = SSL_new(ctx);
	if (c->ssl == NULL || !SSL_set_fd(c->ssl, c->fd) ||
	    !SSL_set_tlsext_host_name(c->ssl, sni)) {
		report(msg, "TLS setup: %s", ssl_err());
		return 0;
	}
	if (resume && *saved)
		SSL_set_session(c->ssl, *saved);
	errno = 0;
	if (SSL_connect(c->ssl) != 1) {
		report(msg, "TLS handshake: %s", ssl_err());
		return 0;
	}
	__atomic_fetch_add(&n_tls, 1, __ATOMIC_RELAXED);
	if (SSL_session_reused(c->ssl))
		__atomic_fetch_add(&n_resumed, 1, __ATOMIC_RELAXED);
	return 1;
}

/* Keep this connection's session for the thread's next connection. Called
 * once replies have been read, so that TLS 1.3 tickets have arrived. */
static void
save_session(struct conn *c, SSL_SESSION **saved)
{
	SSL_SESSION *s;

	if (!resume || c->ssl == NULL)
		return;
	s = SSL_get1_session(c->ssl);
	if (s == NULL)
		return;
	if (!SSL_SESSION_is_resumable(s)) {
		SSL_SESSION_free(s);
		return;
	}
	if (*saved)
		SSL_SESSION_free(*saved);
	*saved = s;
}

static int
dial(long msg)
{
	struct timeval tv = { IO_TIMEOUT, 0 };
	int one = 1;
	int fd;

	fd = socket(target->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		report(msg, "socket: %s", strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(fd, target->ai_addr, target->ai_addrlen) < 0) {
		report(msg, "connect: %s", strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* One connection: one message (or one handshake with -H). */
static void
one(long msg, SSL_SESSION **saved)
{
	struct conn *c;
	char cmd[1100], hdr[1024];
	int ok = 0, hl;

	double t0 = mono();
	const struct file_msg *fm = nfmsgs ? &fmsgs[msg % nfmsgs] : NULL;

	c = calloc(1, sizeof *c);
	if (c == NULL) {
		report(msg, "out of memory");
		__atomic_fetch_add(&n_failed, 1, __ATOMIC_RELAXED);
		return;
	}
	c->fd = dial(msg);
	if (c->fd < 0)
		goto out;
	if ((mode == M_IMPLICIT || mode == M_HANDSHAKE) && !handshake(c, msg, saved))
		goto out;
	if (!step(c, msg, "greeting", NULL, 220))
		goto out;
	if (mode == M_HANDSHAKE) {
		save_session(c, saved);
		ok = 1;
		goto out;
	}
	snprintf(cmd, sizeof cmd, "EHLO %s\r\n", helo);
	if (!step(c, msg, "EHLO", cmd, 250))
		goto out;
	if (mode == M_STARTTLS) {
		if (!step(c, msg, "STARTTLS", "STARTTLS\r\n", 220))
			goto out;
		if (c->off != c->len) {
			report(msg, "STARTTLS: %zu bytes after the 220", c->len - c->off);
			goto out;
		}
		c->off = c->len = 0;
		if (!handshake(c, msg, saved))
			goto out;
		if (!step(c, msg, "EHLO after STARTTLS", cmd, 250))
			goto out;
	}
	snprintf(cmd, sizeof cmd, "MAIL FROM:<%s>\r\n", fm ? fm->sender : from);
	if (!step(c, msg, "MAIL", cmd, 250))
		goto out;
	snprintf(cmd, sizeof cmd, "RCPT TO:<%s>\r\n", to);
	if (!step(c, msg, "RCPT", cmd, 250))
		goto out;
	if (!step(c, msg, "DATA", "DATA\r\n", 354))
		goto out;
	if (fm) {
		if (!write_all(c, fm->data, fm->len) || !write_all(c, ".\r\n", 3)) {
			report(msg, "message content: write: %s", ssl_err());
			goto out;
		}
	} else {
		char date[64];
		time_t now = time(NULL);
		struct tm tm;

		strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000",
			 gmtime_r(&now, &tm));
		hl = snprintf(hdr, sizeof hdr,
			      "From: <%s>\r\nTo: <%s>\r\nSubject: tls_source %ld\r\n"
			      "Date: %s\r\nMessage-ID: <%ld.%ld.%ld@%s>\r\n\r\n",
			      from, to, msg, date, msg, (long)now, (long)getpid(), helo);
		if (!write_all(c, hdr, hl) || !write_all(c, body, body_len) ||
		    !write_all(c, ".\r\n", 3)) {
			report(msg, "message content: write: %s", ssl_err());
			goto out;
		}
	}
	if (!step(c, msg, "end of data", NULL, 250))
		goto out;
	ok = 1;
	if (latency && msg < nlat)
		lat[msg] = mono() - t0;
	if (!step(c, msg, "QUIT", "QUIT\r\n", 221))
		__atomic_fetch_add(&n_errors, 1, __ATOMIC_RELAXED);
	else
		save_session(c, saved);
out:
	__atomic_fetch_add(ok ? &n_accepted : &n_failed, 1, __ATOMIC_RELAXED);
	if (c->ssl) {
		if (ok)
			SSL_shutdown(c->ssl);	/* close_notify, not waiting */
		SSL_free(c->ssl);
	}
	ERR_clear_error();
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

static void *
worker(void *arg)
{
	SSL_SESSION *saved = NULL;

	(void)arg;
	for (;;) {
		long msg = __atomic_fetch_add(&next_msg, 1, __ATOMIC_RELAXED);

		if (duration > 0 ? mono() >= t_end : msg >= messages)
			break;
		one(msg, &saved);
	}
	if (saved)
		SSL_SESSION_free(saved);
	ERR_clear_error();
	return NULL;
}

static int
by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

/* -M: every regular file of dir, dot-stuffed, CR LF lines. */
static int
load_messages(const char *dir)
{
	struct dirent **ents;
	int n, i;

	if ((n = scandir(dir, &ents, NULL, by_name)) < 0) {
		fprintf(stderr, "tls_source: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	fmsgs = calloc(n ? n : 1, sizeof *fmsgs);
	for (i = 0; i < n; i++) {
		char path[4096], *name = ents[i]->d_name, *dot;
		FILE *f;
		int ch, bol = 1;
		size_t cap = 4096;
		struct file_msg *m = &fmsgs[nfmsgs];

		if (name[0] == '.' || (dot = strstr(name, ".eml")) == NULL) {
			free(ents[i]);
			continue;
		}
		snprintf(path, sizeof path, "%s/%s", dir, name);
		if ((f = fopen(path, "rb")) == NULL) {
			fprintf(stderr, "tls_source: %s: %s\n", path, strerror(errno));
			return -1;
		}
		m->sender = strndup(name, dot - name);
		m->data = malloc(cap);
		while ((ch = getc(f)) != EOF) {
			if (m->len + 4 > cap)
				m->data = realloc(m->data, cap *= 2);
			if (bol && ch == '.')
				m->data[m->len++] = '.';
			if (ch == '\n' && (m->len == 0 || m->data[m->len - 1] != '\r'))
				m->data[m->len++] = '\r';
			m->data[m->len++] = ch;
			bol = ch == '\n';
		}
		if (m->len > 0 && m->data[m->len - 1] != '\n') {
			m->data[m->len++] = '\r';
			m->data[m->len++] = '\n';
		}
		fclose(f);
		free(ents[i]);
		nfmsgs++;
	}
	free(ents);
	if (nfmsgs == 0) {
		fprintf(stderr, "tls_source: no NAME.eml files in %s\n", dir);
		return -1;
	}
	return 0;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Percentile q (0..1) of the transactions timed; -1 if none. */
static double
percentile(double q)
{
	static double *v;
	static long n = -1;
	long i;

	if (n < 0) {
		v = malloc((nlat ? nlat : 1) * sizeof *v);
		for (i = 0, n = 0; i < nlat; i++)
			if (lat[i] >= 0)
				v[n++] = lat[i];
		qsort(v, n, sizeof *v, cmp_double);
	}
	if (n == 0)
		return -1;
	i = (long)(q * (n - 1) + 0.5);
	return v[i];
}

static void
usage(void)
{
	fprintf(stderr, "usage: tls_source [-P | -I | -H] [-r] [-2 | -3] [-s sessions] "
		"[-m messages] [-d seconds] [-l size] [-n sni] [-e helo] [-f from] "
		"[-t to] [-M dir] [-L] host:port\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct addrinfo hints;
	pthread_t *th;
	char *host, *port;
	double t0, secs;
	int ch, maxv = 0, i, e;
	size_t p;

	while ((ch = getopt(argc, argv, "PIHr23s:m:d:l:n:e:f:t:M:L")) != -1) {
		switch (ch) {
		case 'P': mode = M_PLAIN; break;
		case 'I': mode = M_IMPLICIT; break;
		case 'H': mode = M_HANDSHAKE; break;
		case 'r': resume = 1; break;
		case '2': maxv = TLS1_2_VERSION; break;
		case '3': maxv = TLS1_3_VERSION; break;
		case 's': sessions = atoi(optarg); break;
		case 'm': messages = atol(optarg); break;
		case 'd': duration = atof(optarg); break;
		case 'l': size = atol(optarg); break;
		case 'n': sni = optarg; break;
		case 'e': helo = optarg; break;
		case 'f': from = optarg; break;
		case 't': to = optarg; break;
		case 'M': if (load_messages(optarg) == -1) return 2; break;
		case 'L': latency = 1; break;
		default: usage();
		}
	}
	if (optind != argc - 1 || sessions < 1 || sessions > 10000 ||
	    messages < 0 || size < 0 || duration < 0)
		usage();
	host = argv[optind];
	port = strrchr(host, ':');
	if (port == NULL)
		usage();
	*port++ = '\0';
	if (host[0] == '[' && port - host > 2 && port[-2] == ']') {
		port[-2] = '\0';
		host++;
	}
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	if ((e = getaddrinfo(host, port, &hints, &target)) != 0) {
		fprintf(stderr, "tls_source: %s:%s: %s\n", host, port, gai_strerror(e));
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);

	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL) {
		fprintf(stderr, "tls_source: SSL_CTX_new: %s\n", ssl_err());
		return 2;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_min_proto_version(ctx, maxv ? maxv : TLS1_2_VERSION);
	if (maxv)
		SSL_CTX_set_max_proto_version(ctx, maxv);

	/* The body: CR LF lines of at most 78 characters, SIZE bytes. */
	body = malloc(size + 2);
	if (body == NULL)
		return 2;
	for (p = 0; p < (size_t)size; ) {
		size_t n = (size_t)size - p, k;

		if (n > 80)
			n = 80;
		if (n < 2) {		/* a lone byte: make the last line one longer */
			body[p++] = 'x';
			continue;
		}
		for (k = 0; k < n - 2; k++)
			body[p + k] = 'a' + (p / 80 + k) % 26;
		body[p + n - 2] = '\r';
		body[p + n - 1] = '\n';
		p += n;
	}
	body_len = size;
	if (body_len > 0 && body[body_len - 1] != '\n') {	/* SIZE = 80k + 1 */
		body[body_len++] = '\r';
		body[body_len++] = '\n';
	}

	th = calloc(sessions, sizeof *th);
	if (th == NULL)
		return 2;
	if (latency) {
		nlat = duration > 0 ? 1000000 : messages;
		lat = malloc((nlat ? nlat : 1) * sizeof *lat);
		if (lat == NULL)
			return 2;
		for (i = 0; i < nlat; i++)
			lat[i] = -1;
	}
	t0 = mono();
	t_end = t0 + duration;
	for (i = 0; i < sessions; i++)
		if ((e = pthread_create(&th[i], NULL, worker, NULL)) != 0) {
			fprintf(stderr, "tls_source: pthread_create: %s\n", strerror(e));
			return 2;
		}
	for (i = 0; i < sessions; i++)
		pthread_join(th[i], NULL);
	secs = mono() - t0;

	printf("accepted=%ld failed=%ld errors=%ld tls=%ld resumed=%ld secs=%.3f rate=%.1f",
	       n_accepted, n_failed, n_errors, n_tls, n_resumed, secs,
	       secs > 0 ? n_accepted / secs : 0.0);
	if (latency)
		printf(" p50_ms=%.3f p99_ms=%.3f", percentile(0.5) * 1000,
		       percentile(0.99) * 1000);
	printf("\n");
	SSL_CTX_free(ctx);
	freeaddrinfo(target);
	free(body);
	free(th);
	return n_failed || n_errors ? 1 : 0;
}
