/*
 * runtime.h - one generation of moatd's configuration with everything
 * built from it: the policy (rules, lists, groups), the filter chain and
 * the TLS certificates.
 *
 * A session takes a reference to the current runtime when it is accepted
 * and keeps it to the end, so a reload (SIGHUP) never changes the rules
 * under a session in flight: new sessions get the new runtime, the old one
 * is freed when its last session ends.
 *
 * Threading: runtime_build() runs on the configuration thread: the main
 * thread at start-up and for moatd -t, the reload thread at a reload
 * (reload.h), never two at once in a process, never on an event loop.
 * runtime_install() on the main thread. runtime_current_acquire() and
 * runtime_release() may be called from any thread; the last release frees
 * the runtime (filters' fini()) on a worker when the pool runs, else on
 * the caller's thread. A runtime is read-only once built.
 */
#ifndef MOAT_RUNTIME_H
#define MOAT_RUNTIME_H

#include <stdatomic.h>

struct config;
struct chain;
struct policy;
struct tls_server;

struct runtime {
	atomic_uint	   refs;
	unsigned	   generation;
	struct config	  *cf;
	struct policy	  *policy;
	struct chain	  *chain;
	struct tls_server *tls; /* client-leg certificates, or NULL */
};

/*
 * Build a runtime from a loaded configuration; blocking (list files,
 * filter initialisation, certificates): the configuration thread only.
 * On success the runtime owns cf; on failure (reported with
 * config_report()) NULL, and cf is untouched.
 */
struct runtime *runtime_build(struct config *);
/* The same with server certificates already loaded (start-up reads them
 * before dropping privileges); takes tls over, also on failure. */
struct runtime *runtime_build_with(struct config *, struct tls_server *tls);
/* Make rt the current one (takes over the caller's reference). */
void runtime_install(struct runtime *);
/* The current runtime, with a reference for the caller. */
struct runtime *runtime_current_acquire(void);
/* One more reference to rt (a job that outlives its session); rt. */
struct runtime *runtime_acquire(struct runtime *);
void		runtime_release(struct runtime *);

#endif
