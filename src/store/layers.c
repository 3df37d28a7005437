/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Dependency layers (docs/deps.md): <dir>/deps/<key>/, a read-only
 * directory built once, in a sandbox, for a lockfile, runtime and
 * platform, and bound into every later run that needs it. The key is
 * the caller's (src/run/deps.c); the store keeps the directories: it
 * seals what a build left in a scratch directory, renames it in whole,
 * lists and removes them. Nothing here is in the database: a layer is
 * found by its name, and `cordon deps gc` decides which are still used.
 */
#define _GNU_SOURCE
#include "store/fs.h"
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/file.h"
#include "base/hash.h"

#define LAYERS_DIR "deps"

static int layers_fd(struct store *s, struct cdn_err *err)
{
	if (mkdirat(s->dirfd, LAYERS_DIR, STORE_DIR_MODE) < 0 && errno != EEXIST)
		return cdn_err_set(err, errno, "store: mkdir %s/" LAYERS_DIR, s->dir);
	/* O_NOFOLLOW: a symlink planted as deps/ would send layers elsewhere. */
	int fd = openat(s->dirfd, LAYERS_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return cdn_err_set(err, errno == ELOOP ? ENOTDIR : errno,
				   "store: open %s/" LAYERS_DIR " (it must be a real directory)",
				   s->dir);
	/* The state directory is private; the layers must be readable by the
	 * sandboxes' users, which reach them by a bind, not by this path. */
	return fd;
}

/* deps/, for a key checked first: it becomes a name in that directory. */
static int layer_dir(struct store *s, const char *key, struct cdn_err *err)
{
	int r = store_hash_check(key, "layer key", err);
	return r < 0 ? r : layers_fd(s, err);
}

int store_layer_path(struct store *s, const char *key, char *path, size_t cap, bool *exists,
		     struct cdn_err *err)
{
	_cleanup_close_ int dfd = layer_dir(s, key, err);
	if (dfd < 0)
		return dfd;
	if ((size_t)snprintf(path, cap, "%s/" LAYERS_DIR "/%s", s->dir, key) >= cap)
		return cdn_err_set(err, ENAMETOOLONG, "store: layer %s", key);
	struct stat st;
	*exists = fstatat(dfd, key, &st, AT_SYMLINK_NOFOLLOW) == 0;
	if (*exists && !S_ISDIR(st.st_mode))
		return cdn_err_msg(err, ENOTDIR, "store: %s is not a directory", path);
	return 0;
}

static int layer_lock_at(int dfd, const char *key, int how, int *fd, struct cdn_err *err)
{
	char name[STORE_HASH_HEX + 8];
	snprintf(name, sizeof(name), "%s.lock", key);
	for (;;) {
		_cleanup_close_ int lfd = openat(dfd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
						 0600);
		if (lfd < 0)
			return cdn_err_set(err, errno, "store: layer lock %s", name);
		int r;
		while ((r = flock(lfd, how)) < 0 && errno == EINTR)
			;
		if (r < 0 && errno == EWOULDBLOCK)
			return cdn_err_msg(err, EBUSY, "store: layer %.12s is in use", key);
		if (r < 0)
			return cdn_err_set(err, errno, "store: layer lock %s", name);
		/* A gc unlinks the name while it holds the file: a lock on a
		 * file no longer named locks nothing anyone else will see. */
		struct stat a, b;
		if (fstat(lfd, &a) == 0 && fstatat(dfd, name, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
		    a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
			*fd = cdn_steal_fd(&lfd);
			return 0;
		}
	}
}

int store_layer_lock(struct store *s, const char *key, int how, int *fd, struct cdn_err *err)
{
	_cleanup_close_ int dfd = layer_dir(s, key, err);
	*fd = -1;
	if (dfd < 0)
		return dfd;
	return layer_lock_at(dfd, key, how, fd, err);
}

/*
 * What a build left is the sandbox's: it is made ours and read-only
 * before any run sees it. Entries are reached by fd with O_NOFOLLOW and
 * symlinks are never followed (a link to /etc/shadow stays a link, which
 * resolves inside the next sandbox's root, not the host's). FIFOs,
 * sockets and devices are removed: a socket bound into a run could be
 * connected to whatever serves it on the host. Counts files and bytes.
 */
static int seal_at(int dfd, const char *name, unsigned depth, uint64_t *files, uint64_t *bytes)
{
	struct stat st;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	bool root = geteuid() == 0;
	if (S_ISLNK(st.st_mode)) {
		if (root && fchownat(dfd, name, 0, 0, AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
		(*files)++;
		return 0;
	}
	if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
		return unlinkat(dfd, name, 0) < 0 ? -errno : 0;
	if (S_ISREG(st.st_mode)) {
		(*files)++;
		*bytes += (uint64_t)st.st_size;
		/* Ours, then read-only; the exec bit kept (.bin scripts, .so).
		 * The sandbox that wrote it is gone: nothing swaps it meanwhile. */
		if (root && fchownat(dfd, name, 0, 0, AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
		mode_t m = (st.st_mode & 0111) ? 0555 : 0444;
		return fchmodat(dfd, name, m, 0) < 0 ? -errno : 0;
	}
	_cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (depth >= RM_DEPTH_MAX)
		return -ELOOP;
	(*files)++;
	/* Writable by us while its entries are sealed, read-only after. */
	if (fchmod(fd, 0700) < 0)
		return -errno;
	char **names;
	size_t n;
	int r = cdn_dir_names(fd, SIZE_MAX, NULL, &names, &n);
	for (size_t i = 0; r == 0 && i < n; i++)
		r = seal_at(fd, names[i], depth + 1, files, bytes);
	cdn_names_free(names, n);
	if (r == 0 && root && fchown(fd, 0, 0) < 0)
		r = -errno;
	if (r == 0 && fchmod(fd, 0555) < 0)
		r = -errno;
	return r;
}

int store_layer_install(struct store *s, const char *scratch, const char *key, const char *meta,
			struct store_layer_info *info, struct cdn_err *err)
{
	int r = store_hash_check(key, "layer key", err);
	if (r < 0)
		return r;
	const char *name = strrchr(scratch, '/');
	name = name ? name + 1 : scratch;
	if (strncmp(name, "u.", 2) != 0 || strchr(name, '/'))
		return cdn_err_msg(err, EINVAL, "store: %s is not a scratch directory", scratch);
	_cleanup_close_ int dfd = layers_fd(s, err);
	if (dfd < 0)
		return dfd;
	_cleanup_close_ int sfd = openat(s->tmp_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
							  O_CLOEXEC);
	if (sfd < 0)
		return cdn_err_set(err, errno, "store: open %s", scratch);
	/* layer.json is ours: whatever the build left under that name goes. */
	if (store_rm_rf_at(sfd, STORE_LAYER_META, 0) < 0)
		return cdn_err_msg(err, EIO, "store: %s: cannot replace " STORE_LAYER_META, scratch);
	_cleanup_close_ int mfd = openat(sfd, STORE_LAYER_META,
					 O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0444);
	if (mfd < 0 || cdn_write_all(mfd, meta, strlen(meta)) < 0 || fsync(mfd) < 0)
		return cdn_err_set(err, errno ? errno : EIO, "store: %s/" STORE_LAYER_META,
				   scratch);
	memset(info, 0, sizeof(*info));
	snprintf(info->key, sizeof(info->key), "%s", key);
	if ((r = seal_at(s->tmp_fd, name, 0, &info->files, &info->bytes)) < 0)
		return cdn_err_set(err, -r, "store: sealing the layer in %s", scratch);
	if (renameat(s->tmp_fd, name, dfd, key) < 0) {
		/* Another build of the same key won: its layer is as good. */
		if (errno == EEXIST || errno == ENOTEMPTY) {
			(void)store_rm_rf_at(s->tmp_fd, name, 0);
			return 0;
		}
		return cdn_err_set(err, errno, "store: rename the layer into %s/" LAYERS_DIR "/%s",
				   s->dir, key);
	}
	if (fsync(dfd) < 0)
		return cdn_err_set(err, errno, "store: fsync %s/" LAYERS_DIR, s->dir);
	info->installed = true;
	return 0;
}

int store_layer_list(struct store *s, char (**keys)[STORE_HASH_HEX + 1], size_t *n,
		     struct cdn_err *err)
{
	*keys = NULL;
	*n = 0;
	_cleanup_close_ int dfd = layers_fd(s, err);
	if (dfd < 0)
		return dfd;
	char **names;
	size_t nn;
	int r = cdn_dir_names(dfd, SIZE_MAX, NULL, &names, &nn);
	if (r < 0)
		return cdn_err_set(err, -r, "store: list %s/" LAYERS_DIR, s->dir);
	*keys = calloc(nn + 1, sizeof(**keys));
	for (size_t i = 0; *keys && i < nn; i++) {
		struct stat st;
		/* Lock files and anything not a layer's name are not layers. */
		if (!cdn_sha256_hex_str_ok(names[i]) ||
		    fstatat(dfd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
			continue;
		snprintf((*keys)[(*n)++], STORE_HASH_HEX + 1, "%s", names[i]);
	}
	cdn_names_free(names, nn);
	if (!*keys)
		return cdn_err_set(err, ENOMEM, "store: layers");
	return 0;
}

int store_layer_remove(struct store *s, const char *key, bool dry, struct cdn_err *err)
{
	int r = 0;
	_cleanup_close_ int dfd = layer_dir(s, key, err);
	if (dfd < 0)
		return dfd;
	/* Not while a run has it bound (a shared lock for the run's life)
	 * or a build of it is under way: removing it would take the
	 * packages from under a running agent. */
	_cleanup_close_ int lfd = -1;
	if ((r = layer_lock_at(dfd, key, LOCK_EX | LOCK_NB, &lfd, err)) < 0 || dry)
		return r;
	/* Out of the way in one rename, so no run finds half a layer. */
	char tmp[TMP_NAME_MAX];
	if ((r = store_tmp_name("u", tmp, sizeof(tmp))) < 0)
		return cdn_err_set(err, -r, "store: layer %s", key);
	if (renameat(dfd, key, s->tmp_fd, tmp) < 0)
		return cdn_err_set(err, errno, "store: remove layer %s", key);
	char lock[STORE_HASH_HEX + 8];
	snprintf(lock, sizeof(lock), "%s.lock", key);
	(void)unlinkat(dfd, lock, 0);
	if ((r = store_rm_rf_at(s->tmp_fd, tmp, 0)) < 0)
		return cdn_err_set(err, -r, "store: remove layer %s", key);
	return 0;
}
