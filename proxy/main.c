/*
 * main.c - moatd(8): command line, configuration, listening sockets,
 * event-loop threads, the upstream prober and signal handling.
 *
 * The main thread binds every socket, then starts one event-loop thread per
 * core (or `threads`), each of which owns the sessions it accepts. The main
 * thread keeps its own loop for signals, the DNS resolver, the scanner's
 * supervision and the upstream probe, so nothing on it may block: SIGHUP
 * builds the new configuration on a reload thread (reload.c) and only
 * swaps it in here. SIGTERM and SIGINT drain: listeners close, sessions
 * without a transaction are told 421 at once, and whatever is left after
 * drain_timeout gets 421 (never a 250 that was not earned, invariant 1).
 */
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chain.h"
#include "config.h"
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "probe.h"
#include "reload.h"
#include "resolver.h"
#include "runas.h"
#include "runtime.h"
#include "scanner.h"
#include "session.h"
#include "tls.h"
#include "upstream.h"
#include "util.h"
#include "workers.h"

static void
usage(void)
{
	fprintf(stderr,
	    "usage: moatd [-dfhLt] [-c file] [-l address:port]... "
	    "[-u host:port]\n"
	    "  -c file   configuration file (default: built-in defaults)\n"
	    "  -l addr   listen on addr:port (repeatable; replaces the "
	    "file's listeners)\n"
	    "  -u addr   upstream MTA host:port\n"
	    "  -f        stay in the foreground, log to stderr\n"
	    "  -d        debug logging\n"
	    "  -t        check the configuration and exit\n"
	    "  -L        list every limit with default and bounds\n");
	exit(2);
}

struct mainctx {
	const char		      *file; /* absolute, for reloads */
	const struct config_overrides *ov;
	const struct config	      *boot; /* restart-only settings */
	struct loop		     **loops;
	unsigned		       nloops;
	struct loop		      *mainloop;
	struct listener_set	      *lset;
	int			       draining;
};

/* The resolver's settings: read once, by resolver_init() at start-up. */
static int
dns_same(const struct config *a, const struct config *b)
{
	static const int lims[] = { LIM_DNS_TIMEOUT, LIM_DNS_MAX_QUERIES,
		LIM_DNS_CACHE_SIZE, LIM_DNS_THREAD_CACHE_SIZE,
		LIM_DNS_THREAD_CACHE_MIN_TTL, LIM_DNS_THREAD_CACHE_MAX_TTL };
	size_t		 i;

	if (a->dns.nforwarders != b->dns.nforwarders ||
	    (a->dns.trust_anchor == NULL) != (b->dns.trust_anchor == NULL) ||
	    (a->dns.trust_anchor != NULL &&
		strcmp(a->dns.trust_anchor, b->dns.trust_anchor) != 0))
		return 0;
	for (i = 0; i < a->dns.nforwarders; i++)
		if (strcmp(a->dns.forwarders[i], b->dns.forwarders[i]) != 0)
			return 0;
	for (i = 0; i < nitems(lims); i++)
		if (a->limits[lims[i]] != b->limits[lims[i]])
			return 0;
	return 1;
}

/* Settings that only a restart can change; a reload warns about them. */
static void
restart_only(const struct config *boot, const struct config *cf)
{
	size_t i;
	int    same = boot->nlisteners == cf->nlisteners;

	for (i = 0; same && i < cf->nlisteners; i++)
		same = strcmp(boot->listeners[i].spec, cf->listeners[i].spec) ==
			0 &&
		    boot->listeners[i].proxy_protocol ==
			cf->listeners[i].proxy_protocol;
	if (!same)
		log_warn("event=reload-ignored setting=listen "
			 "msg=\"needs a restart\"");
	if (strcmp(boot->upstream_spec, cf->upstream_spec) != 0 ||
	    boot->xclient != cf->xclient)
		log_warn("event=reload-ignored setting=upstream "
			 "msg=\"needs a restart\"");
	if (strcmp(boot->user, cf->user) != 0 ||
	    LIMIT(boot, THREADS) != LIMIT(cf, THREADS) ||
	    LIMIT(boot, WORKER_THREADS) != LIMIT(cf, WORKER_THREADS))
		log_warn("event=reload-ignored setting=user,threads "
			 "msg=\"needs a restart\"");
	if (!dns_same(boot, cf))
		log_warn("event=reload-ignored setting=dns "
			 "msg=\"needs a restart\"");
}

/*
 * SIGHUP, the main loop's part (reload.c read and built everything on
 * its thread): swap the new runtime in for new sessions. Sessions in
 * flight keep the generation they started with; nothing is dropped.
 */
static unsigned
reload_apply(struct runtime *rt, void *arg)
{
	struct mainctx *m = arg;

	restart_only(m->boot, rt->cf);
	runtime_install(rt);
	scanner_apply(m->mainloop, m->loops, m->nloops, 1);
	return rt->generation;
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct mainctx *m = arg;
	unsigned	i;

	if (sig == SIGHUP) {
		reload_request();
		return;
	}
	if (m->draining) {
		log_info("event=shutdown-now");
		exit(0);
	}
	m->draining = 1;
	log_info("event=shutdown signal=%d", (int)sig);
	reload_stop();
	listeners_close(m->lset, m->loops, m->nloops);
	for (i = 0; i < m->nloops; i++)
		loop_post(m->loops[i], session_drain_loop, NULL);
	event_base_loopbreak(loop_base(m->mainloop));
}

/*
 * The privileged part of a start (and of moatd -t, which does the same):
 * the directories moat writes made for `user`, the private keys read
 * while still root (ARCHITECTURE.md; a reload reads them as `user`),
 * then root given up for good. 0, or -1 (reported).
 */
static int
become_user(const struct config *cf, struct tls_server **tls)
{
	runas_prepare_dirs(cf);
	if (tls_server_build(cf, tls) == -1)
		return -1;
	runas_drop(cf, RUNAS_DAEMON);
	return 0;
}

/* One descriptor per client and per upstream connection: use them all. */
static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void
daemonize(void)
{
	int fd;

	switch (fork()) {
	case -1:
		fatal("fork: %s", strerror(errno));
	case 0:
		break;
	default:
		_exit(0);
	}
	if (setsid() == -1)
		fatal("setsid: %s", strerror(errno));
	if ((fd = open("/dev/null", O_RDWR)) != -1) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > 2)
			close(fd);
	}
	if (chdir("/") == -1)
		fatal("chdir: %s", strerror(errno));
}

int
main(int argc, char **argv)
{
	struct config_overrides ov;
	struct config	       *cf, *rcf;
	struct runtime	       *rt;
	struct tls_server      *tls;
	struct tls_client      *up_tls;
	struct mainctx		m;
	char		       *absfile = NULL;
	struct event	       *sigs[4];
	const char	       *file = NULL;
	int			ch, foreground = 0, debug = 0, check = 0;
	unsigned		i;
	long			n;

	memset(&ov, 0, sizeof(ov));
	memset(&m, 0, sizeof(m));
	while ((ch = getopt(argc, argv, "c:dfhl:Ltu:")) != -1) {
		switch (ch) {
		case 'c':
			file = optarg;
			break;
		case 'd':
			debug = 1;
			break;
		case 'f':
			foreground = 1;
			break;
		case 'l':
			if (ov.nlisten == nitems(ov.listen)) {
				fprintf(stderr, "moatd: too many -l\n");
				return 2;
			}
			ov.listen[ov.nlisten++] = optarg;
			break;
		case 'L':
			config_print_limits();
			return 0;
		case 't':
			check = 1;
			break;
		case 'u':
			ov.upstream = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();

	if ((cf = config_load(file, &ov)) == NULL)
		return 1;
	if (tls_client_build(cf, &up_tls) == -1) {
		config_free(cf);
		return 1;
	}
	if (check) {
		/* Everything a start would build: lists, filters. */
		tls_client_free(up_tls);
		{
			struct loop *l = loop_new(0, cf);
			char	     err[512];

			if (resolver_init(cf, l, err, sizeof(err)) == -1) {
				fprintf(stderr, "moatd: %s\n", err);
				loop_free(l);
				config_free(cf);
				return 1;
			}
			resolver_shutdown();
			loop_free(l);
		}
		/* As a start: the rest is built as `user` (files it
		 * cannot read fail here as they would there). */
		if (become_user(cf, &tls) == -1) {
			config_free(cf);
			return 1;
		}
		if ((rt = runtime_build_with(cf, tls)) == NULL) {
			config_free(cf);
			return 1;
		}
		runtime_release(rt);
		scanner_shutdown();
		printf(
		    "moatd: configuration %s OK\n", file ? file : "(defaults)");
		return 0;
	}
	if (file != NULL && (absfile = realpath(file, NULL)) == NULL)
		fatal("%s: %s", file, strerror(errno));
	log_init(foreground ? LOG_TARGET_STDERR : LOG_TARGET_SYSLOG, debug);
	if (evthread_use_pthreads() == -1)
		fatal("evthread_use_pthreads");
	signal(SIGPIPE, SIG_IGN);

	n = LIMIT(cf, THREADS);
	if (n == 0)
		n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		n = 1;
	m.nloops = (unsigned)n;
	raise_nofile();
	if ((m.lset = listeners_bind(cf, m.nloops)) == NULL)
		return 1;
	if (become_user(cf, &tls) == -1)
		return 1;
	/*
	 * The sessions' configuration is a runtime of its own (reloadable);
	 * cf stays as the process's: listeners, threads, upstream.
	 */
	ov.keys_from = cf; /* DKIM keys: those read while privileged */
	rcf = config_load(absfile, &ov);
	ov.keys_from = NULL; /* a reload reads them as `user` */
	if (rcf == NULL) {
		tls_server_free(tls);
		return 1;
	}
	if ((rt = runtime_build_with(rcf, tls)) == NULL)
		return 1;
	runtime_install(rt);
	upstream_set_tls(up_tls); /* the process's, like the upstream */
	chain_set_lookup(session_chain_run);
	if (workers_start((unsigned)LIMIT(cf, WORKER_THREADS),
		(size_t)LIMIT(cf, WORKER_QUEUE)) == -1)
		fatal("cannot start the worker threads");
	m.file = absfile;
	m.ov = &ov;
	m.boot = cf;
	if (!foreground) {
		daemonize();
		log_init(LOG_TARGET_SYSLOG, debug); /* the new pid */
	}

	m.loops = xcalloc(m.nloops, sizeof(*m.loops));
	for (i = 0; i < m.nloops; i++) {
		m.loops[i] = loop_new(i, cf);
		listeners_attach(m.lset, i, m.loops[i]);
	}
	m.mainloop = loop_new(m.nloops, cf);
	{
		char err[512];

		if (resolver_init(cf, m.mainloop, err, sizeof(err)) == -1)
			fatal("resolver: %s", err);
	}
	resolver_log_start(cf);
	for (i = 0; i < m.nloops; i++)
		if (loop_start(m.loops[i]) == -1)
			fatal("pthread_create");

	sigs[0] = evsignal_new(loop_base(m.mainloop), SIGTERM, on_signal, &m);
	sigs[1] = evsignal_new(loop_base(m.mainloop), SIGINT, on_signal, &m);
	sigs[2] = evsignal_new(loop_base(m.mainloop), SIGHUP, on_signal, &m);
	for (i = 0; i < 3; i++)
		evsignal_add(sigs[i], NULL);
	reload_setup(m.mainloop, m.file, m.ov, reload_apply, &m);

	scanner_apply(m.mainloop, m.loops, m.nloops, 0);
	the_probe = probe_start(m.mainloop, m.loops, m.nloops, cf);
	log_info("event=start version=%s threads=%u upstream=%s listeners=%zu "
		 "uid=%d",
	    PACKAGE_VERSION, m.nloops, cf->upstream_spec, cf->nlisteners,
	    (int)getuid());
	for (i = 0; i < cf->nlisteners; i++)
		log_info("event=listen address=%s proxy_protocol=%d",
		    cf->listeners[i].spec,
		    (int)cf->listeners[i].proxy_protocol);

	event_base_loop(loop_base(m.mainloop), EVLOOP_NO_EXIT_ON_EMPTY);

	/* Draining: a second signal exits at once; a SIGHUP is ignored. */
	for (i = 0; i < 3; i++)
		evsignal_del(sigs[i]);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGHUP, SIG_IGN);
	/* A reload still running: wait for it, free what it built (the
	 * loops drain meanwhile). */
	reload_shutdown();
	for (i = 0; i < m.nloops; i++)
		loop_join(m.loops[i]);
	workers_stop();
	scanner_shutdown();
	probe_stop(the_probe);
	the_probe = NULL;
	upstream_reap_orphans(); /* the probe's, on this thread */
	resolver_log_stop();
	resolver_shutdown();
	event_base_loop(
	    loop_base(m.mainloop), EVLOOP_NONBLOCK); /* see loop.c */
	tls_client_thread_done();
	listeners_free(m.lset);
	for (i = 0; i < 3; i++)
		event_free(sigs[i]);
	for (i = 0; i < m.nloops; i++)
		loop_free(m.loops[i]);
	loop_free(m.mainloop);
	free(m.loops);
	/* The current generation; older ones went with their sessions. */
	{
		struct runtime *cur = runtime_current_acquire();

		runtime_release(cur);
		runtime_release(cur);
	}
	config_free(cf);
	free(absfile);
	log_info("event=stopped");
	return 0;
}
