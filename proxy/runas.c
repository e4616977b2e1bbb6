/*
 * runas.c - the directories moat writes made for moat.conf's `user`, then
 * root given up (see runas.h).
 *
 * A directory is walked from "/" one component at a time with openat():
 * existing components are the administrator's and are followed as they
 * are (symlinks included); a missing one is made with mkdirat() in the
 * directory opened before it and opened again with O_NOFOLLOW, so what is
 * handed to the user with fchown() is the directory made, even if
 * something changed the path meanwhile. The user gets the new directories
 * only after the whole path exists (bottom up), so it cannot replace a
 * part of it while root still works there.
 *
 * Threading: main thread, before other threads start.
 */
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chain.h"
#include "config.h"
#include "log.h"
#include "runas.h"
#include "util.h"

#define MAX_DEPTH 64 /* path components */

static int
as_root(const struct config *cf)
{
	return getuid() == 0 && cf->user[0] != '\0';
}

/* Can uid:gid write in (and search) the directory fd refers to? */
static int
user_can_write(const struct stat *sb, uid_t uid, gid_t gid)
{
	if (sb->st_uid == uid)
		return (sb->st_mode & S_IWUSR) && (sb->st_mode & S_IXUSR);
	if (sb->st_gid == gid)
		return (sb->st_mode & S_IWGRP) && (sb->st_mode & S_IXGRP);
	return (sb->st_mode & S_IWOTH) && (sb->st_mode & S_IXOTH);
}

static void
make_dir(const char *path, uid_t uid, gid_t gid, const char *user)
{
	char	    buf[PATH_MAX], *comp, *save = NULL;
	int	    fd, nfd, made[MAX_DEPTH];
	size_t	    nmade = 0, depth = 0, i;
	struct stat sb;
	const char *why = NULL;

	if (path[0] != '/' || strlen(path) >= sizeof(buf))
		return;
	memcpy(buf, path, strlen(path) + 1);
	if (strstr(buf, "/./") != NULL || strstr(buf, "/../") != NULL ||
	    (strlen(buf) >= 2 && strcmp(buf + strlen(buf) - 2, "/.") == 0) ||
	    (strlen(buf) >= 3 && strcmp(buf + strlen(buf) - 3, "/..") == 0)) {
		why = "not a plain absolute path";
		fd = -1;
		goto out;
	}
	if ((fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		why = strerror(errno);
		goto out;
	}
	for (comp = strtok_r(buf, "/", &save); comp != NULL;
	     comp = strtok_r(NULL, "/", &save)) {
		if (++depth > MAX_DEPTH) {
			why = "too deep";
			break;
		}
		nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (nfd == -1 && errno == ENOENT) {
			if (mkdirat(fd, comp, 0750) == -1 && errno != EEXIST) {
				why = strerror(errno);
				break;
			}
			nfd = openat(fd, comp,
			    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (nfd != -1)
				made[nmade++] = dup(nfd);
		}
		if (nfd == -1) {
			why = strerror(errno);
			break;
		}
		close(fd);
		fd = nfd;
	}
	/* Bottom up: the deepest first. Also after a failure further
	   down: root works here no more, and what it made is the user's
	   (a root-owned 0750 parent would shut the user out for good). */
	for (i = nmade; i-- > 0;)
		if ((made[i] == -1 || fchown(made[i], uid, gid) == -1) &&
		    why == NULL)
			why = made[i] == -1 ? "dup" : strerror(errno);
	if (why == NULL && nmade > 0)
		log_info("event=state-dir path=%s user=%s created=%zu", path,
		    user, nmade);
	else if (why == NULL && fstat(fd, &sb) == 0 &&
	    !user_can_write(&sb, uid, gid))
		log_warn("event=state-dir path=%s user=%s owner=%u mode=%04o "
			 "msg=\"the user cannot write here: chown it to the "
			 "user\"",
		    path, user, (unsigned)sb.st_uid,
		    (unsigned)(sb.st_mode & 07777));
	for (i = 0; i < nmade; i++)
		if (made[i] != -1)
			close(made[i]);
out:
	if (fd != -1)
		close(fd);
	if (why != NULL)
		log_warn("event=state-dir path=%s user=%s error=\"%s\"", path,
		    user, why);
}

void
runas_prepare_dir(void *cfp, const char *dir)
{
	const struct config *cf = cfp;

	if (as_root(cf))
		make_dir(dir, cf->uid, cf->gid, cf->user);
}

void
runas_prepare_dirs(const struct config *cf)
{
	runas_prepare_dir((void *)(uintptr_t)cf, cf->quarantine_dir);
	chain_state_dirs(cf, runas_prepare_dir, (void *)(uintptr_t)cf);
}

/* Keep CAP_DAC_READ_SEARCH alone, effective (after setuid with
   PR_SET_KEEPCAPS, the permitted set still has it). */
static int
keep_read_search(void)
{
	struct __user_cap_header_struct hdr;
	struct __user_cap_data_struct	data[2];
	unsigned			bit = CAP_DAC_READ_SEARCH;

	memset(&hdr, 0, sizeof(hdr));
	memset(data, 0, sizeof(data));
	hdr.version = _LINUX_CAPABILITY_VERSION_3;
	data[bit / 32].effective = data[bit / 32].permitted = 1u << (bit % 32);
	return (int)syscall(SYS_capset, &hdr, data);
}

void
runas_drop(const struct config *cf, enum runas_mode mode)
{
	if (!as_root(cf))
		return;
	if (mode == RUNAS_READ_ANY && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) == -1)
		fatal("prctl(PR_SET_KEEPCAPS): %s", strerror(errno));
	if (setgroups(0, NULL) == -1 || setgid(cf->gid) == -1 ||
	    setuid(cf->uid) == -1)
		fatal(
		    "dropping privileges to %s: %s", cf->user, strerror(errno));
	if (mode == RUNAS_READ_ANY) {
		if (keep_read_search() == -1)
			fatal("capset: %s", strerror(errno));
		(void)prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
	}
	if (setuid(0) != -1)
		fatal("could regain root after dropping privileges");
}
