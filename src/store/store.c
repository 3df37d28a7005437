/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store's state directory: where it is, opening it (ownership and
 * modes checked on the fd), the temp directory's cleanup, atomic files
 * and the layout of the paths the other modules keep in it
 * (docs/state.md). Blobs are in blobs.c, trees in trees.c and checkout.c,
 * the checks every backend shares in checks.c, the dispatch to a backend in
 * store_db.c, and SQL in sqlite*.c (SQLite) and pg*.c (Postgres).
 *
 * Every path below the state directory is resolved from directory fds
 * opened once in store_open, with O_NOFOLLOW on each step, so a symlink
 * that appears in the directory later cannot redirect a write.
 */
#define _GNU_SOURCE
#include "store/fs.h"
#include "store/s3.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/file.h"
#include "base/hash.h"
#include "base/random.h"
#include "base/text.h"


/* ---------------------------------------------------------------- helpers */

/* 0 when hash is a sha256 in hex; else EINVAL, quoting it as what it is not. */
int store_hash_check(const char *hash, const char *what, struct cdn_err *err)
{
	if (cdn_sha256_hex_str_ok(hash))
		return 0;
	char shown[SHOWN_MAX];
	return cdn_err_msg(err, EINVAL, "store: \"%s\" is not %s",
			   cdn_printable_str(shown, sizeof(shown), hash, 0), what);
}

ssize_t store_read_some(int fd, void *buf, size_t len)
{
	for (;;) {
		ssize_t n = read(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 ? -errno : n;
	}
}

/* Empties the directory fd down to RM_DEPTH_MAX levels; a directory
 * deeper than that is renamed into top (the tree's root, emptied by the
 * caller's next pass) and counted in *hoisted, so the stack stays bounded
 * and no depth is too deep to remove. */
static int rm_level(int top, int fd, unsigned depth, unsigned *hoisted)
{
	char **names;
	size_t n;
	int r = cdn_dir_names(fd, SIZE_MAX, NULL, &names, &n);
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		int e = 0;
		if (fstatat(fd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
			e = errno == ENOENT ? 0 : -errno;
		} else if (!S_ISDIR(st.st_mode)) {
			e = unlinkat(fd, names[i], 0) < 0 && errno != ENOENT ? -errno : 0;
		} else {
			_cleanup_close_ int sub = openat(fd, names[i], O_RDONLY | O_DIRECTORY |
									O_NOFOLLOW | O_CLOEXEC);
			/* A checkout's directories may be read-only for us; entries
			 * cannot leave (nor it move) a directory we cannot write. */
			if (sub >= 0 && (st.st_mode & 0700) != 0700)
				(void)fchmod(sub, 0700);
			char up[TMP_NAME_MAX];
			if (sub < 0) {
				e = -errno;
			} else if (depth + 1 >= RM_DEPTH_MAX) {
				e = store_tmp_name("d", up, sizeof(up));
				if (e == 0 && renameat(fd, names[i], top, up) < 0)
					e = -errno;
				if (e == 0)
					(*hoisted)++;
			} else {
				e = rm_level(top, sub, depth + 1, hoisted);
				if (unlinkat(fd, names[i], AT_REMOVEDIR) < 0 && errno != ENOENT &&
				    e == 0)
					e = -errno;
			}
		}
		if (e < 0 && r == 0)
			r = e;
	}
	cdn_names_free(names, n);
	return r;
}

/* Removes name (a file or a whole directory) under dfd without following
 * symlinks, however deep. Best effort: the first error is returned, the
 * rest goes on. */
int store_rm_rf_at(int dfd, const char *name, unsigned depth)
{
	(void)depth;
	struct stat st;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(dfd, name, 0) < 0 && errno != ENOENT ? -errno : 0;
	_cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if ((st.st_mode & 0700) != 0700)
		(void)fchmod(fd, 0700);
	int r;
	unsigned hoisted;
	/* Each pass removes RM_DEPTH_MAX levels of what it holds, so passes
	 * end; one that hoists nothing has emptied the tree (or failed). */
	do {
		hoisted = 0;
		r = rm_level(fd, fd, 0, &hoisted);
	} while (r == 0 && hoisted);
	if (unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT && r == 0)
		r = -errno;
	return r;
}

/* Temp names carry their writer's pid ("t.<pid>.<random>") so that a store
 * opened by another process can tell a stale file from a live one. */
int store_tmp_name(const char *kind, char *out, size_t cap)
{
	char prefix[32];
	snprintf(prefix, sizeof(prefix), "%s.%d.", kind, (int)getpid());
	return cdn_random_id(prefix, TMP_RAND_BYTES, out, cap);
}

static int tmp_owner(const char *name)
{
	const char *dot = strchr(name, '.');
	if (!dot)
		return 0;
	char *end;
	long pid = strtol(dot + 1, &end, 10);
	return (*end == '.' && pid > 0 && pid <= INT_MAX) ? (int)pid : 0;
}

/* ---------------------------------------------------------- default dir */

int store_default_dir(char *out, size_t cap, struct cdn_err *err)
{
	char shown[SHOWN_MAX];
	const char *v = getenv("CORDON_STATE");
	int n;
	if (v && *v) {
		if (v[0] != '/') {
			cdn_printable_str(shown, sizeof(shown), v, 0);
			return cdn_err_msg(err, EINVAL,
					   "store: CORDON_STATE=%s is not an absolute path", shown);
		}
		n = snprintf(out, cap, "%s", v);
	} else if (geteuid() == 0) {
		n = snprintf(out, cap, "%s", STORE_SYSTEM_DIR);
	} else if ((v = getenv("XDG_STATE_HOME")) && v[0] == '/') {
		/* The XDG spec says a relative XDG_STATE_HOME is ignored. */
		n = snprintf(out, cap, "%s/cordon", v);
	} else {
		v = getenv("HOME");
		if (!v || v[0] != '/')
			return cdn_err_set(err, ENOENT,
					   "store: no state directory: set CORDON_STATE, or HOME "
					   "to an absolute path");
		n = snprintf(out, cap, "%s/.local/state/cordon", v);
	}
	if (n < 0 || (size_t)n >= cap)
		return cdn_err_set(err, ENAMETOOLONG, "store: the state directory's path");
	return 0;
}

/* ------------------------------------------------------------------- open */

static int mkdir_p(char *path, struct cdn_err *err)
{
	/* Parents are made 0700 too, as the XDG spec asks for state dirs. */
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		int r = mkdir(path, STORE_DIR_MODE);
		int e = errno;
		*p = '/';
		if (r < 0 && e != EEXIST) {
			*p = '\0';
			cdn_err_set(err, e, "store: mkdir %s", path);
			*p = '/';
			return -e;
		}
	}
	if (mkdir(path, STORE_DIR_MODE) < 0 && errno != EEXIST)
		return cdn_err_set(err, errno, "store: mkdir %s", path);
	return 0;
}

static int open_subdir(int dfd, const char *dir, const char *name, int *out, struct cdn_err *err)
{
	if (mkdirat(dfd, name, STORE_DIR_MODE) < 0 && errno != EEXIST)
		return cdn_err_set(err, errno, "store: mkdir %s/%s", dir, name);
	/* O_NOFOLLOW: a symlink planted as blobs/ would send writes elsewhere. */
	*out = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (*out < 0)
		return cdn_err_set(err, errno == ELOOP ? ENOTDIR : errno,
				   "store: open %s/%s (it must be a real directory)", dir, name);
	return 0;
}

static void tmp_clean(struct store *s)
{
	char **names;
	size_t n;
	/* Best effort: a leftover file costs space, not correctness. */
	int r = cdn_dir_names(s->tmp_fd, TMP_SCAN_MAX, NULL, &names, &n);
	if (r < 0 && r != -E2BIG)
		return;
	time_t now = time(NULL);
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		if (fstatat(s->tmp_fd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		/* Names not of our making (no pid) go only when stale. */
		int pid = tmp_owner(names[i]);
		bool dead = pid > 0 && kill(pid, 0) < 0 && errno == ESRCH;
		if (dead || now - st.st_mtime > TMP_STALE_S)
			(void)store_rm_rf_at(s->tmp_fd, names[i], 0);
	}
	cdn_names_free(names, n);
}

static void store_closep(struct store **s)
{
	if (*s)
		store_close(*s);
}

static int db_file_prepare(struct store *s, struct cdn_err *err)
{
	/* Made here, not by SQLite, so that it is 0600 from the first byte
	 * whatever the umask; SQLite gives -wal and -shm the same mode. */
	int fd = openat(s->dirfd, STORE_DB_FILE,
			O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, STORE_DB_MODE);
	if (fd >= 0)
		close(fd);
	else if (errno != EEXIST)
		return cdn_err_set(err, errno, "store: create %s/%s", s->dir, STORE_DB_FILE);
	/* An existing file is checked without opening it: close() of any fd
	 * on a file drops every POSIX lock this process holds on it, and
	 * another store open in this process may be holding SQLite's. */
	struct stat st;
	if (fstatat(s->dirfd, STORE_DB_FILE, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return cdn_err_set(err, errno, "store: stat %s/%s", s->dir, STORE_DB_FILE);
	if (!S_ISREG(st.st_mode))
		return cdn_err_msg(err, EINVAL, "store: %s/%s is not a regular file", s->dir,
				   STORE_DB_FILE);
	if (st.st_uid != geteuid())
		return cdn_err_msg(err, EPERM, "store: %s/%s is owned by uid %u, not by uid %u",
				   s->dir, STORE_DB_FILE, (unsigned)st.st_uid, (unsigned)geteuid());
	if ((st.st_mode & 07777) != STORE_DB_MODE &&
	    fchmodat(s->dirfd, STORE_DB_FILE, STORE_DB_MODE, 0) < 0)
		return cdn_err_set(err, errno, "store: chmod %s/%s", s->dir, STORE_DB_FILE);
	return 0;
}

/*
 * Opening the database is serialised between processes with a flock on the
 * state directory: the first open turns a new file into WAL mode, which
 * needs the database to itself, and SQLite answers "locked" at once rather
 * than waiting when others are opening it at that moment. flock is
 * separate from SQLite's POSIX locks, and the lock goes with the fd.
 */
static int open_lock(struct store *s, bool take, struct cdn_err *err)
{
	if (!take) {
		(void)flock(s->dirfd, LOCK_UN);
		return 0;
	}
	for (int waited = 0;; waited += OPEN_LOCK_STEP_MS) {
		if (flock(s->dirfd, LOCK_EX | LOCK_NB) == 0)
			return 0;
		if (errno != EWOULDBLOCK && errno != EINTR)
			return cdn_err_set(err, errno, "store: lock %s", s->dir);
		if (waited >= OPEN_LOCK_WAIT_MS)
			return cdn_err_msg(err, EBUSY, "store: lock %s: another process has been "
					   "opening the store for %d s", s->dir,
					   OPEN_LOCK_WAIT_MS / 1000);
		struct timespec ts = { 0, OPEN_LOCK_STEP_MS * 1000000L };
		nanosleep(&ts, NULL);
	}
}

int store_open(const char *dir, struct store **out, struct cdn_err *err)
{
	return store_open_db(dir, store_default_database(), out, err);
}

const char *store_backend(const struct store *s)
{
	return s->ops->name;
}

int store_open_db(const char *dir, const char *database, struct store **out,
		  struct cdn_err *err)
{
	*out = NULL;
	if (!dir || !*dir)
		return cdn_err_msg(err, EINVAL, "store: no state directory given");
	const struct store_db_ops *ops;
	int r = store_db_pick(database, &ops, err);
	if (r < 0)
		return r;
	if (sodium_init() < 0)
		return cdn_err_msg(err, EIO, "store: libsodium failed to initialise");
	_cleanup_(store_closep) struct store *s = calloc(1, sizeof(*s));
	if (!s)
		return cdn_err_set(err, ENOMEM, "store: open %s", dir);
	s->dirfd = s->blobs_fd = s->trees_fd = s->tmp_fd = -1;
	if (!(s->dir = strdup(dir)))
		return cdn_err_set(err, ENOMEM, "store: open %s", dir);
	for (size_t n = strlen(s->dir); n > 1 && s->dir[n - 1] == '/'; n--)
		s->dir[n - 1] = '\0';

	if ((r = mkdir_p(s->dir, err)) < 0)
		return r;
	struct stat st;
	if (lstat(s->dir, &st) < 0)
		return cdn_err_set(err, errno, "store: stat %s", s->dir);
	if (S_ISLNK(st.st_mode))
		return cdn_err_msg(err, ELOOP,
				   "store: %s is a symlink; refusing it (whoever can change the "
				   "link chooses where cordon keeps its state): give the real path",
				   s->dir);
	s->dirfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (s->dirfd < 0)
		return cdn_err_set(err, errno, "store: open %s", s->dir);
	/* Checked on the fd: that is the directory used from now on. */
	if (fstat(s->dirfd, &st) < 0)
		return cdn_err_set(err, errno, "store: stat %s", s->dir);
	if (st.st_uid != geteuid())
		return cdn_err_msg(err, EPERM,
				   "store: %s is owned by uid %u, not by this user (uid %u): "
				   "refusing a state directory another user controls",
				   s->dir, (unsigned)st.st_uid, (unsigned)geteuid());
	if (st.st_mode & 022)
		return cdn_err_msg(err, EPERM,
				   "store: %s is writable by group or others (mode %04o), who "
				   "could replace blobs and records: chmod 700 it",
				   s->dir, (unsigned)(st.st_mode & 07777));
	_cleanup_close_ int runs_fd = -1;
	if ((r = open_subdir(s->dirfd, s->dir, "blobs", &s->blobs_fd, err)) < 0 ||
	    (r = open_subdir(s->dirfd, s->dir, "trees", &s->trees_fd, err)) < 0 ||
	    (r = open_subdir(s->dirfd, s->dir, "runs", &runs_fd, err)) < 0 ||
	    (r = open_subdir(s->dirfd, s->dir, "tmp", &s->tmp_fd, err)) < 0)
		return r;
	tmp_clean(s);
	s->ops = ops;
	if (ops != &store_sqlite_ops) {
		/* A server database serialises its own migrations. */
		if ((r = ops->open(s, database, &s->db, err)) < 0 ||
		    (r = store_blobs_attach(s, store_default_blobs(), err)) < 0)
			return r;
		*out = cdn_steal(&s);
		return 0;
	}
	if ((r = open_lock(s, true, err)) < 0)
		return r;
	if ((r = db_file_prepare(s, err)) == 0)
		r = ops->open(s, NULL, &s->db, err);
	open_lock(s, false, NULL);
	if (r < 0 || (r = store_blobs_attach(s, store_default_blobs(), err)) < 0)
		return r;
	*out = cdn_steal(&s);
	return 0;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	if (s->db)
		s->ops->close(s->db);
	s3_close(s->remote);
	int fds[] = { s->dirfd, s->blobs_fd, s->trees_fd, s->tmp_fd };
	for (size_t i = 0; i < CDN_ARRAY_SIZE(fds); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(s->dir);
	free(s);
}

const char *store_dir(const struct store *s)
{
	return s->dir;
}

/* ---------------------------------------------------------- atomic files */


void store_atomic_release(struct atomic_file *af)
{
	if (af->live)
		(void)unlinkat(af->tmp_dirfd, af->tmpname, 0);
	af->live = false;
	if (af->fd >= 0)
		close(af->fd);
	if (af->dst_dirfd >= 0)
		close(af->dst_dirfd);
	af->fd = af->dst_dirfd = -1;
}


static int make_tmp(int dirfd, const char *kind, char *name, size_t cap, int *fd)
{
	/* The random part makes a clash unlikely; O_EXCL makes it harmless. */
	for (int tries = 0;; tries++) {
		int r = store_tmp_name(kind, name, cap);
		if (r < 0)
			return r;
		*fd = openat(dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (*fd >= 0)
			return 0;
		if (errno != EEXIST || tries >= 3)
			return -errno;
	}
}

/*
 * Starts a temp file for af->dst_dirfd (set by the caller; -1 when not known
 * yet, as for a blob before its hash). rename(2) works within one
 * filesystem only, so a target elsewhere gets its temp file beside it.
 */
int store_atomic_begin(struct store *s, struct atomic_file *af, const char *shown,
			struct cdn_err *err)
{
	af->tmp_dirfd = s->tmp_fd;
	const char *kind = "t";
	if (af->dst_dirfd >= 0) {
		struct stat a, b;
		if (fstat(af->dst_dirfd, &a) < 0 || fstat(s->tmp_fd, &b) < 0)
			return cdn_err_set(err, errno, "store: stat the directory of %s", shown);
		if (a.st_dev != b.st_dev) {
			af->tmp_dirfd = af->dst_dirfd;
			kind = ".cordon-tmp";
		}
	}
	int r = make_tmp(af->tmp_dirfd, kind, af->tmpname, sizeof(af->tmpname), &af->fd);
	if (r < 0)
		return cdn_err_set(err, r, "store: temp file for %s", shown);
	af->live = true;
	return 0;
}

static int copy_range(int in, int out)
{
	_cleanup_free_ char *buf = malloc(IO_CHUNK);
	if (!buf)
		return -ENOMEM;
	off_t off = 0;
	for (;;) {
		ssize_t n = pread(in, buf, IO_CHUNK, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		int r = cdn_write_all(out, buf, (size_t)n);
		if (r < 0)
			return r;
		off += n;
	}
}

/* rename(2) said EXDEV although the devices matched (a bind mount): copy
 * the temp file beside the target and rename that. */
static int atomic_move_beside(struct atomic_file *af, unsigned mode, const char *shown,
			      struct cdn_err *err)
{
	char name[TMP_NAME_MAX];
	_cleanup_close_ int out = -1;
	int r = make_tmp(af->dst_dirfd, ".cordon-tmp", name, sizeof(name), &out);
	if (r < 0)
		return cdn_err_set(err, r, "store: temp file for %s", shown);
	if ((r = copy_range(af->fd, out)) < 0 || (fchmod(out, mode) < 0 && (r = -errno)) ||
	    (fsync(out) < 0 && (r = -errno)) ||
	    (renameat(af->dst_dirfd, name, af->dst_dirfd, af->base) < 0 && (r = -errno))) {
		(void)unlinkat(af->dst_dirfd, name, 0);
		return cdn_err_set(err, r, "store: write %s", shown);
	}
	(void)unlinkat(af->tmp_dirfd, af->tmpname, 0);
	af->live = false;
	return 0;
}

int store_atomic_commit(struct atomic_file *af, unsigned mode, const char *shown,
			 struct cdn_err *err)
{
	if (fchmod(af->fd, mode) < 0 || fsync(af->fd) < 0)
		return cdn_err_set(err, errno, "store: write %s", shown);
	if (renameat(af->tmp_dirfd, af->tmpname, af->dst_dirfd, af->base) < 0) {
		if (errno != EXDEV || af->tmp_dirfd == af->dst_dirfd)
			return cdn_err_set(err, errno, "store: rename into %s", shown);
		int r = atomic_move_beside(af, mode, shown, err);
		if (r < 0)
			return r;
	}
	af->live = false;
	/* The rename itself is durable only once its directory is synced. */
	if (fsync(af->dst_dirfd) < 0)
		return cdn_err_set(err, errno, "store: fsync the directory of %s", shown);
	return 0;
}

/* The target's directory (relative paths from the store) and base name. */
int store_open_target(struct store *s, const char *path, struct atomic_file *af,
		       struct cdn_err *err)
{
	char shown[SHOWN_MAX];
	cdn_printable_str(shown, sizeof(shown), path, 0);
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	if (!*base || !strcmp(base, ".") || !strcmp(base, ".."))
		return cdn_err_msg(err, EINVAL, "store: %s is not a file path", shown);
	if (strlen(base) > NAME_MAX)
		return cdn_err_set(err, ENAMETOOLONG, "store: %s", shown);
	int at = path[0] == '/' ? AT_FDCWD : s->dirfd;
	if (!slash) {
		af->dst_dirfd = openat(s->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	} else if (slash == path) {
		af->dst_dirfd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	} else {
		size_t plen = (size_t)(slash - path);
		_cleanup_free_ char *parent = strndup(path, plen);
		if (!parent)
			return cdn_err_set(err, ENOMEM, "store: %s", shown);
		af->dst_dirfd = openat(at, parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (af->dst_dirfd < 0)
		return cdn_err_set(err, errno, "store: open the directory of %s", shown);
	memcpy(af->base, base, strlen(base) + 1);
	return 0;
}

/* ----------------------------------------------------------------- layout */

/* dir (or nothing, relative) + each part, joined by '/'. */
static int layout_path(const struct store *s, char *out, size_t cap, struct cdn_err *err,
		       const char *a, const char *b, const char *c)
{
	int n = snprintf(out, cap, "%s%s%s%s%s%s%s", s ? s->dir : "", s ? "/" : "", a, b ? "/" : "",
			 b ? b : "", c ? "/" : "", c ? c : "");
	if (n < 0 || (size_t)n >= cap)
		return cdn_err_set(err, ENAMETOOLONG, "store: the path of %s", a);
	return 0;
}

int store_run_file(const struct store *s, const char *run_id, const char *file, char *out,
		   size_t cap, struct cdn_err *err)
{
	int r = store_run_id_check(run_id, err);
	if (r < 0)
		return r;
	return layout_path(s, out, cap, err, STORE_RUNS_DIR, run_id, file);
}

int store_policy_path(const struct store *s, const char *ws, char *out, size_t cap,
		      struct cdn_err *err)
{
	int r = store_name_check("workspace", ws, err);
	if (r < 0)
		return r;
	char file[STORE_MAX_NAME + sizeof(".yaml")];
	snprintf(file, sizeof(file), "%s.yaml", ws);
	return layout_path(s, out, cap, err, STORE_POLICIES_DIR, file, NULL);
}

int store_operator_policy_path(const struct store *s, char *out, size_t cap, struct cdn_err *err)
{
	return layout_path(s, out, cap, err, STORE_OPERATOR_POLICY, NULL, NULL);
}

int store_tmp_path(const struct store *s, const char *name, char *out, size_t cap,
		   struct cdn_err *err)
{
	if (!*name || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
		return cdn_err_msg(err, EINVAL, "store: '%s' is not a name for tmp/", name);
	return layout_path(s, out, cap, err, STORE_TMP_DIR, name, NULL);
}

int store_policy_put(struct store *s, const char *ws, const void *data, size_t len,
		     struct cdn_err *err)
{
	char path[PATH_MAX];
	int r = store_policy_path(s, ws, path, sizeof(path), err);
	if (r < 0)
		return r;
	/* Made on the first use, not when the store opens: a state that no
	 * workspace policy was ever given stays as it was. Failing here is
	 * the server's fault, never the request's. */
	if (mkdirat(s->dirfd, STORE_POLICIES_DIR, STORE_DIR_MODE) < 0 && errno != EEXIST)
		return cdn_err_kind_msg(err, CDN_ERR_INTERNAL, errno, "cannot create STATE/%s: %s",
					STORE_POLICIES_DIR, strerror(errno));
	return store_write_atomic(s, path, data, len, 0600, err);
}

int store_write_atomic(struct store *s, const char *path, const void *data, size_t len,
		       unsigned mode, struct cdn_err *err)
{
	if (!path || !*path)
		return cdn_err_msg(err, EINVAL, "store: write: no path");
	if (mode & ~07777u)
		return cdn_err_msg(err, EINVAL, "store: write %s: mode %o is not a file mode", path,
				   mode);
	char shown[SHOWN_MAX];
	cdn_printable_str(shown, sizeof(shown), path, 0);
	_cleanup_atomic_ struct atomic_file af = ATOMIC_FILE_INIT;
	int r = store_open_target(s, path, &af, err);
	if (r < 0 || (r = store_atomic_begin(s, &af, shown, err)) < 0)
		return r;
	if ((r = cdn_write_all(af.fd, data, len)) < 0)
		return cdn_err_set(err, r, "store: write %s", shown);
	return store_atomic_commit(&af, mode, shown, err);
}

