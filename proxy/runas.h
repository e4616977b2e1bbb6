/*
 * runas.h - running as moat.conf's `user`: the directories moat writes
 * are made for that user while still root, then root is given up.
 *
 * Nothing of moat writes its state (Bayes store, rules cache, quarantine,
 * report logs) as root: files root made are unusable by the daemon later,
 * and root writing in a directory the user can change is a way for that
 * user to make root write through a symlink.
 *
 * Threading: main thread, before any other thread starts (capabilities
 * are per thread).
 */
#ifndef MOAT_RUNAS_H
#define MOAT_RUNAS_H

struct config;

/*
 * When root and `user` is set: make every missing directory that the
 * quarantine and the built-in filters of cf write in (and its missing
 * parents), mode 0750, owned by the user; existing directories are not
 * changed, but one the user cannot write in is logged (event=state-dir).
 * Otherwise nothing. Problems are logged, never fatal: the part that
 * needs the directory says so again when it is used.
 */
void runas_prepare_dirs(const struct config *);
/*
 * The same for one directory; cf is the const struct config *, in the
 * shape of a filter_dir_fn (filter_api.h), so that filter_dir_of() can
 * hand it a store named on a command line.
 */
void runas_prepare_dir(void *cf, const char *dir);

enum runas_mode {
	RUNAS_DAEMON = 0, /* nothing of root kept */
	RUNAS_READ_ANY,	  /* keep reading any file (CAP_DAC_READ_SEARCH):
			     tools whose input is root's (moat learn DIR) */
};

/*
 * When root and `user` is set: become the user (groups cleared), keeping
 * what mode says; never able to become root again. Fatal on failure.
 * Otherwise nothing.
 */
void runas_drop(const struct config *, enum runas_mode);

#endif
