/*
 * reload.h - SIGHUP: the configuration is read and the new runtime built
 * (config_load(), runtime_build(): files, lists, filter init, TLS
 * certificates; seconds for a large SpamAssassin ruleset) on a reload
 * thread, so that the main loop (DNS for every session, the scanner's
 * supervision, the upstream probe) never waits for it. Only the swap runs
 * on the main loop: the built runtime comes back there and is given to the
 * apply function (restart-only warnings, runtime_install(),
 * scanner_apply(), the log line).
 *
 * One reload at a time. A SIGHUP during a reload is remembered
 * (event=reload-queued) and makes exactly one more reload once the
 * running one is done, since the file may have changed again; any number
 * of them during one reload make that one reload (merged=yes).
 *
 * Shutdown: reload_stop() when draining starts (nothing is applied from
 * then on; a reload still running is abandoned), reload_shutdown() after
 * the main loop has ended: it waits for the reload thread, if any, and
 * frees what it built.
 *
 * Threading: every function here is for the main thread. The reload
 * thread only runs config_load() and runtime_build(), and hands the result
 * back with loop_post() on the main loop; the state lives in static
 * storage, so a post that arrives after reload_shutdown() finds nothing
 * to do. At most one configuration is built at a time in the process
 * (start-up, then one reload thread after another): the rule that
 * config.c, the filters' init() and scanner_config() rely on.
 */
#ifndef MOAT_RELOAD_H
#define MOAT_RELOAD_H

struct config_overrides;
struct loop;
struct runtime;

/*
 * Apply a newly built runtime (main thread): takes rt over, installs it
 * and returns its generation.
 */
typedef unsigned (*reload_apply_fn)(struct runtime *rt, void *arg);

/*
 * Once, at start-up, after the main loop exists. file (absolute) and ov
 * must live until reload_shutdown(); the reload thread only reads them.
 */
void reload_setup(struct loop *mainloop, const char *file,
    const struct config_overrides *ov, reload_apply_fn apply, void *arg);
/* SIGHUP: start a reload, or queue one behind the running one. */
void reload_request(void);
/* Draining starts: no reload is started or applied any more. */
void reload_stop(void);
/* After the main loop: join the reload thread, free its result. */
void reload_shutdown(void);

#endif
