/*
 * moat.h - the moat administration tool: shared declarations of its
 * commands (tools/moat_*.c), dispatched by tools/moat.c.
 *
 * Each command gets its own argv, argv[0] being the command's name
 * ("quarantine", "scan"), and returns the tool's exit status. The tool is
 * single-threaded and may block; it never runs inside moatd.
 */
#ifndef MOAT_TOOL_H
#define MOAT_TOOL_H

#include <stddef.h>
#include <stdio.h>

struct config;

/*
 * A JSON string for s ("null" for NULL): quotes, backslashes and controls
 * escaped, invalid UTF-8 as U+FFFD (moat_quarantine.c).
 */
void json_str(FILE *, const char *s);

/* Exit statuses shared by every command (moat scan adds its own). */
#define MOAT_EXIT_OK	0
#define MOAT_EXIT_FAIL	1 /* the operation failed */
#define MOAT_EXIT_USAGE 2

/* Default configuration file, used if it exists (else built-in defaults). */
#define MOAT_DEFAULT_CONF SYSCONFDIR "/moat/moat.conf"

/*
 * Load the configuration the way every command does: conffile, or NULL
 * for the built-in defaults. NULL after printing the errors to stderr.
 */
struct config *moat_config(const char *conffile);

/*
 * The regular files of directory dir (not dot files), as "dir/name",
 * sorted by name, appended to (*v)[*n] (the caller frees them and *v).
 * 0, or -1 (errno set) if it cannot be read. For commands that take
 * directories of messages (scan, learn).
 */
int moat_dir_files(const char *dir, char ***v, size_t *n);

/* moat quarantine list|show|release|delete (moat_quarantine.c). */
int cmd_quarantine(struct config *, int argc, char **argv);

/*
 * moat scan (moat_scan.c). conffile is -c's argument, else
 * MOAT_DEFAULT_CONF if that file exists, else NULL (built-in defaults).
 */
int cmd_scan(const char *conffile, int argc, char **argv);

/* moat dns (moat_dns.c): one lookup through moat's resolver. */
int cmd_dns(const char *conffile, int argc, char **argv);

/*
 * moat learn (moat_learn.c): train the Bayesian classifier, or --stats.
 * conffile as for cmd_scan.
 */
int cmd_learn(const char *conffile, int argc, char **argv);

#endif
