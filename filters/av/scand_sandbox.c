/*
 * scand_sandbox.c - moat-scand's confinement: leave root for -u USER,
 * forbid new privileges and core dumps, and a seccomp allowlist
 * (libseccomp) installed by the main thread before it starts any other
 * thread, so every thread inherits it.
 *
 * The allowlist was found with strace -f over the whole test_scand.py
 * (every clamav-testfiles sample, nested archives, mail, temporary files,
 * reloads, SIGTERM). Seen after start-up: mmap munmap mprotect madvise
 * brk futex set_robust_list rseq clone (after clone3 -> ENOSYS) exit
 * exit_group getpid getrandom clock_gettime rt_sigprocmask read write
 * pread64 lseek close fcntl openat newfstatat getdents64 mkdir chmod
 * unlink rmdir recvmsg sendto poll. The rest of the list is margin of the
 * same harmless kinds for parsers and glibc paths the tests do not reach
 * (mremap for realloc, sysinfo for qsort, ftruncate, dup, the older
 * open/stat/unlink forms, tgkill of itself for abort()): a call missing
 * here kills the scanner in the middle of a mail, and that mail would
 * keep failing. Threads are created with clone carrying CLONE_THREAD
 * only; clone3 answers ENOSYS so glibc falls back to clone, whose flags a
 * filter can see. Everything else (execve/execveat, fork, socket,
 * connect, bind, listen, accept, ptrace, process_vm_*, mount, kexec, bpf,
 * setuid & co, prctl, ioctl ...) kills the whole process
 * (SCMP_ACT_KILL_PROCESS), or is only logged in sandbox=log mode.
 * An AddressSanitizer build also allows prctl, ptrace, wait4 and clone
 * without CLONE_THREAD, which LeakSanitizer's exit-time check needs.
 *
 * Not thread-safe: called from main() before threads exist.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "scand.h"

int
sandbox_drop_user(const char *user, const char *tmpdir)
{
	struct passwd *pw;

	if (geteuid() != 0 && getuid() != 0) {
		if (user != NULL)
			slog("event=warning msg=\"not root: -u %s ignored\"",
			    user);
		return 0;
	}
	if (user == NULL) {
		slog("event=fatal error=\"running as root: give -u USER\"");
		return -1;
	}
	errno = 0;
	if ((pw = getpwnam(user)) == NULL) {
		slog("event=fatal error=\"unknown user %s\"", user);
		return -1;
	}
	if (pw->pw_uid == 0) {
		slog("event=fatal error=\"-u %s is root\"", user);
		return -1;
	}
	if (tmpdir != NULL && chown(tmpdir, pw->pw_uid, pw->pw_gid) == -1) {
		slog("event=fatal error=\"chown %s: %s\"", tmpdir,
		    strerror(errno));
		return -1;
	}
	if (setgroups(1, &pw->pw_gid) == -1 ||
	    setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) == -1 ||
	    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) == -1) {
		slog("event=fatal error=\"dropping to %s: %s\"", user,
		    strerror(errno));
		return -1;
	}
	if (setuid(0) != -1) {
		slog("event=fatal error=\"could regain root\"");
		return -1;
	}
	return 0;
}

int
sandbox_harden(void)
{
	struct rlimit rl = { 0, 0 };

	if (setrlimit(RLIMIT_CORE, &rl) == -1) {
		slog("event=fatal error=\"RLIMIT_CORE: %s\"", strerror(errno));
		return -1;
	}
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == -1 ||
	    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1) {
		slog("event=fatal error=\"prctl: %s\"", strerror(errno));
		return -1;
	}
	return 0;
}

/* System calls allowed without conditions. */
/* clang-format off */
static const char *const allowed[] = {
	/* memory */
	"brk", "mmap", "munmap", "mremap", "mprotect", "madvise",
	/* threads and synchronisation */
	"futex", "set_robust_list", "get_robust_list", "rseq", "gettid",
	"sched_yield", "sched_getaffinity", "exit", "exit_group",
	"nanosleep", "clock_nanosleep",
	/* signals (the signalfd is made before the sandbox) */
	"rt_sigprocmask", "rt_sigreturn", "rt_sigaction", "sigaltstack",
	/* time, identity */
	"clock_gettime", "clock_getres", "gettimeofday", "time", "getpid",
	"getppid", "getuid", "geteuid", "getgid", "getegid", "getrandom",
	"uname", "sysinfo", "getrusage", "getrlimit", "prlimit64",
	/* descriptors and I/O */
	"read", "write", "readv", "writev", "pread64", "pwrite64", "lseek",
	"close", "dup", "dup2", "dup3", "fcntl", "poll", "ppoll",
	"recvmsg", "sendmsg", "recvfrom", "sendto",
	/* files: database reloads and libclamav's temporary files */
	"openat", "open", "newfstatat", "fstat", "stat", "lstat", "statx",
	"access", "faccessat", "faccessat2", "getdents64", "getdents",
	"readlink", "readlinkat", "getcwd", "unlink", "unlinkat", "mkdir",
	"mkdirat", "rmdir", "ftruncate", "fsync", "fdatasync", "rename",
	"renameat", "renameat2", "chmod", "fchmod", "fchmodat", "umask",
	"fadvise64", "statfs", "fstatfs",
};
/* clang-format on */

static int
add_rule(scmp_filter_ctx ctx, const char *name)
{
	int nr = seccomp_syscall_resolve_name(name);

	if (nr == __NR_SCMP_ERROR)
		return 0; /* not on this architecture */
	return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
}

int
sandbox_seccomp(enum sandbox_mode mode)
{
	scmp_filter_ctx ctx;
	size_t		i;
	int		rc = 0;

	if (mode == SANDBOX_OFF)
		return 0;
	ctx = seccomp_init(
	    mode == SANDBOX_LOG ? SCMP_ACT_LOG : SCMP_ACT_KILL_PROCESS);
	if (ctx == NULL) {
		slog("event=fatal error=\"seccomp_init failed\"");
		return -1;
	}
	for (i = 0; rc == 0 && i < sizeof(allowed) / sizeof(allowed[0]); i++)
		rc = add_rule(ctx, allowed[i]);
	/* Threads only: clone must carry CLONE_THREAD (no fork). */
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
		    SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
	/* clone3's flags are behind a pointer: glibc falls back to clone. */
	if (rc == 0)
		rc = seccomp_rule_add(
		    ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
#ifdef __SANITIZE_ADDRESS__
	/* Sanitizer builds only: LeakSanitizer's check at exit stops the
	 * threads from a helper it clones and ptraces them. */
	if (rc == 0)
		rc = add_rule(ctx, "prctl");
	if (rc == 0)
		rc = add_rule(ctx, "ptrace");
	if (rc == 0)
		rc = add_rule(ctx, "wait4");
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
		    SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0));
#endif
	/* abort() and raise() signal the process itself. */
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
		    SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid()));
	if (rc == 0)
		rc = seccomp_load(ctx);
	seccomp_release(ctx);
	if (rc != 0) {
		slog("event=fatal error=\"seccomp: %s\"", strerror(-rc));
		return -1;
	}
	return 0;
}
