/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "base/openat2.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <unistd.h>

#define RESOLVE_KNOWN                                                                              \
	(RESOLVE_BENEATH | RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |         \
	 RESOLVE_NO_XDEV)
#define MAX_LINKS 40 /* the kernel's limit on symlinks in one lookup */

/* 0: not known yet; -1: ENOSYS seen, use the fallback only. */
static int openat2_missing;

int cdn_openat2(int dirfd, const char *path, int flags, mode_t mode, uint64_t resolve)
{
	if (!__atomic_load_n(&openat2_missing, __ATOMIC_RELAXED)) {
		struct open_how how = { .flags = (uint64_t)flags,
					.mode = mode,
					.resolve = resolve };
		int fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
		if (fd >= 0)
			return fd;
		if (errno == ENOSYS)
			__atomic_store_n(&openat2_missing, -1, __ATOMIC_RELAXED);
		else if (errno != EPERM && errno != EINVAL)
			return -1; /* the kernel's answer, ELOOP and EXDEV included */
	}
	return cdn_openat2_emulated(dirfd, path, flags, mode, resolve);
}

/* ------------------------------------------------------------- fallback */

/* Where an fd is: its device, and its mount when statx can say. */
struct place {
	dev_t dev;
	uint64_t mnt;
	bool has_mnt;
};

static int place_of(int fd, struct place *p)
{
	struct statx sx;
	if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_TYPE | STATX_MNT_ID, &sx) ==
	    0) {
		p->dev = makedev(sx.stx_dev_major, sx.stx_dev_minor);
		p->has_mnt = sx.stx_mask & STATX_MNT_ID;
		p->mnt = sx.stx_mnt_id;
		return 0;
	}
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -1;
	p->dev = st.st_dev;
	p->has_mnt = false;
	return 0;
}

static bool same_place(const struct place *a, const struct place *b)
{
	if (a->dev != b->dev)
		return false;
	return !(a->has_mnt && b->has_mnt) || a->mnt == b->mnt;
}

struct walk {
	int root; /* the directory resolution may not leave */
	int cur;  /* the directory the next component is looked up in */
	uint64_t resolve;
	struct place root_place;
	/* What is left to resolve, and the components already walked from
	 * root to cur (real directories, '/'-separated, no symlinks). */
	char rest[PATH_MAX];
	char done[PATH_MAX];
	int links;
};

static int fail(int e)
{
	errno = e;
	return -1;
}

/* Replaces w->rest with head + tail (tail may point into w->rest). */
static int set_rest(struct walk *w, const char *head, size_t hl, const char *tail)
{
	size_t tl = strlen(tail);
	if (hl + tl >= sizeof(w->rest))
		return fail(ENAMETOOLONG);
	memmove(w->rest + hl, tail, tl + 1);
	memcpy(w->rest, head, hl);
	return 0;
}

/* Back to the root: cur becomes the root, done empty. */
static int restart(struct walk *w)
{
	int fd = fcntl(w->root, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	close(w->cur);
	w->cur = fd;
	w->done[0] = '\0';
	return 0;
}

/* "..": under RESOLVE_BENEATH above the root is EXDEV, under
 * RESOLVE_IN_ROOT the root's parent is the root. Otherwise the walk starts
 * again from the root along done minus its last component: nothing is
 * looked up through the kernel's "..", so a directory moved away while it
 * is walked cannot lead outside. */
static int dot_dot(struct walk *w, const char *tail)
{
	if (!w->done[0])
		return (w->resolve & RESOLVE_BENEATH) ? fail(EXDEV) : set_rest(w, "", 0, tail);
	char *slash = strrchr(w->done, '/');
	size_t keep = slash ? (size_t)(slash - w->done) : 0;
	char head[PATH_MAX];
	memcpy(head, w->done, keep);
	if (set_rest(w, head, keep, tail) < 0)
		return -1;
	return restart(w);
}

/* link (an O_PATH fd on a symlink) is followed: its target goes in front
 * of what is left, tail. */
static int follow(struct walk *w, int link, const char *tail)
{
	if (w->resolve & RESOLVE_NO_SYMLINKS)
		return fail(ELOOP);
	if (++w->links > MAX_LINKS)
		return fail(ELOOP);
	char target[PATH_MAX];
	ssize_t n = readlinkat(link, "", target, sizeof(target));
	if (n < 0)
		return -1;
	if ((size_t)n >= sizeof(target))
		return fail(ENAMETOOLONG);
	if (n == 0)
		return fail(ENOENT);
	target[n] = '\0';
	/*
	 * A magic link (/proc/PID/fd/N, exe, cwd, root, ns/...) is not a
	 * path: the kernel jumps to the object itself, which can be anywhere.
	 * Under RESOLVE_BENEATH and RESOLVE_IN_ROOT it refuses them (EXDEV;
	 * ELOOP with RESOLVE_NO_MAGICLINKS), and so does this walk. They are
	 * procfs's links whose text is absolute or "type:[id]"; procfs's
	 * plain links (/proc/self, /proc/mounts) are relative.
	 */
	struct statfs sf;
	if (fstatfs(link, &sf) < 0)
		return -1;
	if (sf.f_type == PROC_SUPER_MAGIC && (target[0] == '/' || strstr(target, ":[")))
		return fail((w->resolve & RESOLVE_NO_MAGICLINKS) ? ELOOP : EXDEV);
	if (target[0] == '/') {
		if (w->resolve & RESOLVE_BENEATH)
			return fail(EXDEV);
		if (restart(w) < 0)
			return -1;
	}
	return set_rest(w, target, (size_t)n, tail);
}

/* Descends into name (not the last component). */
static int descend(struct walk *w, const char *name, size_t len, const char *tail)
{
	int fd = openat(w->cur, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return fail(e);
	}
	int r = 0;
	struct place p;
	if (S_ISLNK(st.st_mode))
		r = follow(w, fd, tail);
	else if (!S_ISDIR(st.st_mode))
		r = fail(ENOTDIR);
	else if ((w->resolve & RESOLVE_NO_XDEV) && place_of(fd, &p) < 0)
		r = -1;
	else if ((w->resolve & RESOLVE_NO_XDEV) && !same_place(&p, &w->root_place))
		r = fail(EXDEV);
	else if (strlen(w->done) + 1 + len >= sizeof(w->done))
		r = fail(ENAMETOOLONG);
	if (r < 0 || S_ISLNK(st.st_mode)) {
		int e = errno;
		close(fd);
		return r < 0 ? fail(e) : 0;
	}
	size_t dl = strlen(w->done);
	if (dl)
		w->done[dl++] = '/';
	memcpy(w->done + dl, name, len);
	w->done[dl + len] = '\0';
	memmove(w->rest, tail, strlen(tail) + 1);
	close(w->cur);
	w->cur = fd;
	return 0;
}

/*
 * Opens the last component, name, in cur: 1 when done (*out set), 0 when
 * it was a symlink that was followed (the walk goes on), -1 on error.
 */
static int open_last(struct walk *w, const char *name, int flags, mode_t mode, int *out)
{
	bool link_itself = (flags & O_PATH) && (flags & O_NOFOLLOW);
	int fd = openat(w->cur, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (fd >= 0 && fstat(fd, &st) == 0 && S_ISLNK(st.st_mode) && !link_itself) {
		int r = -1;
		if ((w->resolve & RESOLVE_NO_SYMLINKS) || (flags & O_NOFOLLOW))
			errno = ELOOP;
		else
			r = follow(w, fd, "");
		int e = errno;
		close(fd);
		return r < 0 ? fail(e) : 0;
	}
	if (fd >= 0)
		close(fd);
	/* O_NOFOLLOW always: a link swapped in since the look above is
	 * refused, never followed by the kernel. */
	fd = openat(w->cur, name, flags | O_NOFOLLOW, mode);
	if (fd < 0)
		return -1;
	struct place p;
	int e = 0;
	if ((flags & O_PATH) && !link_itself) {
		/* O_PATH | O_NOFOLLOW opens a link itself: that is not what
		 * was asked for. */
		if (fstat(fd, &st) < 0)
			e = errno;
		else if (S_ISLNK(st.st_mode))
			e = ELOOP;
	}
	if (!e && (w->resolve & RESOLVE_NO_XDEV)) {
		if (place_of(fd, &p) < 0)
			e = errno;
		else if (!same_place(&p, &w->root_place))
			e = EXDEV;
	}
	if (e) {
		close(fd);
		return fail(e);
	}
	*out = fd;
	return 1;
}

static int walk(struct walk *w, int flags, mode_t mode)
{
	for (;;) {
		char *s = w->rest;
		if (s[0] == '/') {
			/* Separators. (An absolute symlink target, or an
			 * absolute path under RESOLVE_IN_ROOT, has made cur the
			 * root already.) */
			while (*s == '/')
				s++;
			memmove(w->rest, s, strlen(s) + 1);
			s = w->rest;
		}
		if (!*s) {
			/* Nothing left: the object is cur itself ("", ".", "a/"). */
			int fd = openat(w->cur, ".", flags | O_NOFOLLOW, mode);
			if (fd >= 0)
				return fd;
			return -1;
		}
		char *slash = strchr(s, '/');
		size_t len = slash ? (size_t)(slash - s) : strlen(s);
		if (len > NAME_MAX)
			return fail(ENAMETOOLONG);
		char name[NAME_MAX + 1];
		memcpy(name, s, len);
		name[len] = '\0';
		const char *tail = s + len; /* "" or "/..." */
		int r;
		if (strcmp(name, ".") == 0) {
			r = set_rest(w, "", 0, tail);
		} else if (strcmp(name, "..") == 0) {
			r = dot_dot(w, tail);
		} else if (slash) {
			r = descend(w, name, len, tail);
		} else {
			int fd = -1;
			r = open_last(w, name, flags, mode, &fd);
			if (r > 0)
				return fd;
		}
		if (r < 0)
			return -1;
	}
}

int cdn_openat2_emulated(int dirfd, const char *path, int flags, mode_t mode, uint64_t resolve)
{
	bool in_root = resolve & RESOLVE_IN_ROOT, beneath = resolve & RESOLVE_BENEATH;
	if ((resolve & ~(uint64_t)RESOLVE_KNOWN) || in_root == beneath)
		return fail(EINVAL);
	size_t len = strlen(path);
	if (len == 0)
		return fail(ENOENT);
	if (len >= PATH_MAX)
		return fail(ENAMETOOLONG);
	if (path[0] == '/' && beneath)
		return fail(EXDEV);

	struct walk w = { .resolve = resolve, .cur = -1 };
	w.root = openat(dirfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (w.root < 0)
		return -1;
	int fd = -1;
	if (place_of(w.root, &w.root_place) == 0 &&
	    (w.cur = fcntl(w.root, F_DUPFD_CLOEXEC, 0)) >= 0) {
		memcpy(w.rest, path, len + 1);
		fd = walk(&w, flags, mode);
	}
	int e = errno;
	if (w.cur >= 0)
		close(w.cur);
	close(w.root);
	errno = e;
	return fd;
}
