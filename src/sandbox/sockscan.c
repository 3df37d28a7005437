/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unix sockets inside a bind.
 *
 * A pathname unix socket in a tree bound into the sandbox stays
 * connectable from inside: connect(2) needs write permission on the
 * socket inode, which a read-only mount does not take away, and Landlock
 * up to ABI 7 has no right for it. A socket in a bound directory (a
 * Docker or ssh-agent socket in a home directory, a database's socket in a
 * data directory) would be a door out of the sandbox to whatever serves
 * it. So a bound tree is searched for sockets before the sandbox is made,
 * and one that holds any is refused, unless the operator allowed it
 * (--allow-sockets). The search is bounded; a tree too large to search is
 * refused too, with the same way out.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sandbox/internal.h"

#define SCAN_MAX_ENTRIES 200000
#define SCAN_MAX_DEPTH 64

struct scan {
	const char *root;
	size_t seen;
	char found[SANDBOX_PATH_MAX];
	bool too_big;
};

/* Walks dirfd (taken); 1 when a socket is found (s->found), 0 when none,
 * negative on an error. Never follows a link. */
static int walk(struct scan *s, int dirfd, const char *rel, int depth)
{
	DIR *d = fdopendir(dirfd);
	if (!d) {
		close(dirfd);
		return -errno;
	}
	int r = 0;
	struct dirent *de;
	while (r == 0 && (errno = 0, de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (++s->seen > SCAN_MAX_ENTRIES || depth > SCAN_MAX_DEPTH) {
			s->too_big = true;
			r = 1;
			break;
		}
		unsigned char type = de->d_type;
		if (type == DT_UNKNOWN) {
			struct stat st;
			if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
				continue;
			type = S_ISSOCK(st.st_mode) ? DT_SOCK : S_ISDIR(st.st_mode) ? DT_DIR : DT_REG;
		}
		if (type == DT_SOCK) {
			snprintf(s->found, sizeof(s->found), "%s/%s%s%s", s->root, rel, *rel ? "/" : "",
				 de->d_name);
			r = 1;
		} else if (type == DT_DIR) {
			int sub = openat(dirfd, de->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
			if (sub < 0)
				continue; /* unreadable here: unreadable in the sandbox too */
			char next[SANDBOX_PATH_MAX];
			snprintf(next, sizeof(next), "%s%s%s", rel, *rel ? "/" : "", de->d_name);
			r = walk(s, sub, next, depth + 1);
		}
	}
	closedir(d);
	return r;
}

int sb_check_no_sockets(const char *path, struct cdn_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return 0; /* the mount step reports a missing source */
	struct stat st;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return 0;
	}
	if (S_ISSOCK(st.st_mode)) {
		close(fd);
		return cdn_err_msg(err, EPERM,
				   "%s is a unix socket: binding it would let the sandbox connect to "
				   "whatever serves it (--allow-sockets allows it)",
				   path);
	}
	if (!S_ISDIR(st.st_mode)) {
		close(fd);
		return 0;
	}
	struct scan s = { .root = path };
	int r = walk(&s, fd, "", 0);
	if (r < 0)
		return cdn_err_set(err, -r, "check %s for unix sockets", path);
	if (s.too_big)
		return cdn_err_msg(err, E2BIG,
				   "%s has more than %d entries to check for unix sockets; bind a "
				   "smaller tree, or pass --allow-sockets if sockets in it may be "
				   "reached",
				   path, SCAN_MAX_ENTRIES);
	if (r == 1)
		return cdn_err_msg(err, EPERM,
				   "%s holds the unix socket %s: the sandbox could connect to whatever "
				   "serves it; bind a tree without sockets, or pass --allow-sockets",
				   path, s.found);
	return 0;
}
