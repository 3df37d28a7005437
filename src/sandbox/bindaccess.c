/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Can the sandbox's user use what is bound in?
 *
 * As root, the sandbox's user is an unprivileged host uid (BASE + uid),
 * and a bound directory that only its owner may read fails inside the
 * sandbox with a bare "Permission denied", long after the options were
 * given. So each bind is checked up front, from that uid's point of view:
 * a process switched to it asks the kernel (faccessat2 on the bound inode
 * itself, by fd, so the path's ancestors, which the sandbox never walks,
 * do not count; ACLs do). A refusal names the path, the uid and the fix.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "sandbox/internal.h"

/* 0: allowed; an errno: refused (EACCES, EROFS...); -1: cannot tell. */
static int access_as(int fd, int mode, uid_t uid, gid_t gid)
{
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 ||
		    setresuid(uid, uid, uid) < 0)
			_exit(255);
		if (faccessat(fd, "", mode, AT_EMPTY_PATH | AT_EACCESS) == 0)
			_exit(0);
		/* Kernels without faccessat2 cannot answer for an fd. */
		_exit(errno == ENOSYS || errno == EINVAL ? 255 : (errno & 0x7f));
	}
	int st = 0;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (!WIFEXITED(st) || WEXITSTATUS(st) == 255)
		return -1;
	return WEXITSTATUS(st);
}

int sb_check_bind_access(const char *path, bool rw, const char *what, uid_t uid, gid_t gid,
			 struct cdn_err *err)
{
	_cleanup_close_ int fd = open(path, O_PATH | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return cdn_err_set(err, errno, "%s %s", what, path);
	bool dir = S_ISDIR(st.st_mode);
	int mode = R_OK | (dir ? X_OK : 0) | (rw ? W_OK : 0);
	/* Rootless, the sandbox's user is the caller, who opened it already;
	 * only the rights still need asking. */
	int r = geteuid() == 0 ? access_as(fd, mode, uid, gid)
			       : (faccessat(fd, "", mode, AT_EMPTY_PATH | AT_EACCESS) == 0 ? 0 : errno);
	if (r <= 0 || r == ENOSYS || r == EINVAL)
		return 0;
	const char *need = rw ? (dir ? "read, write and enter" : "read and write")
			      : (dir ? "read and enter" : "read");
	if (r == EROFS)
		return cdn_err_msg(err, EROFS, "%s %s: it is on a read-only filesystem, so it cannot "
					      "be bound read-write",
				   what, path);
	if (geteuid() != 0)
		return cdn_err_msg(err, r,
				   "%s %s: you cannot %s it (owner %u:%u, mode %04o); fix its "
				   "permissions, or choose another directory",
				   what, path, need, (unsigned)st.st_uid, (unsigned)st.st_gid,
				   (unsigned)(st.st_mode & 07777));
	return cdn_err_msg(err, r,
			   "%s %s: the sandbox's user (host uid %u) cannot %s it (owner %u:%u, "
			   "mode %04o). Give that uid access (chmod or chown, or: setfacl -m "
			   "u:%u:%s %s), or run cordon as the user who owns it (rootless mode, "
			   "docs/exec.md)",
			   what, path, (unsigned)uid, need, (unsigned)st.st_uid, (unsigned)st.st_gid,
			   (unsigned)(st.st_mode & 07777), (unsigned)uid,
			   rw ? (dir ? "rwx" : "rw") : (dir ? "rx" : "r"), path);
}
