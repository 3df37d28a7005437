/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store's files: the state directory, atomic writes, content-addressed
 * blobs and directory trees (docs/state.md). Everything SQL is in
 * store_sqlite.c.
 *
 * Every path below the state directory is resolved from directory fds
 * opened once in store_open, with O_NOFOLLOW on each step, so a symlink
 * that appears in the directory later cannot redirect a write.
 */
#define _GNU_SOURCE
#include "store/internal.h"

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

#define STORE_SYSTEM_DIR "/var/lib/cordon"
#define STORE_DIR_MODE 0700
#define STORE_DB_MODE 0600
#define BLOB_MODE 0444
#define CHECKOUT_DIR_MODE 0755
#define IO_CHUNK (64 * 1024)
#define TMP_RAND_BYTES 8
#define TMP_NAME_MAX 64
/* A temp file whose writer still lives is kept; one older than this is
 * removed even so (its pid was reused after a reboot). */
#define TMP_STALE_S (24 * 60 * 60)
#define TMP_SCAN_MAX 100000
#define TREE_DEFAULT_MAX_FILES 10000
#define TREE_DEFAULT_MAX_BYTES (256ull << 20)
#define TREE_DEFAULT_MAX_DEPTH 32
#define TREE_PATH_MAX 4096	      /* bytes of one path in a listing */
#define TREE_LISTING_MAX (64u << 20) /* bytes of a listing read back */
#define TREE_SIZE_DIGITS 20	      /* a uint64_t in decimal */
#define TREE_LINK_HOPS 40	      /* links followed resolving one link: the kernel's */
#define RM_DEPTH_MAX 256
#define OPEN_LOCK_WAIT_MS 10000 /* a store_open waits this long for another */
#define OPEN_LOCK_STEP_MS 10
#define SHOWN_MAX 160 /* bytes of a path or name quoted in a message */

/* ---------------------------------------------------------------- helpers */

/* 0 when hash is a sha256 in hex; else EINVAL, quoting it as what it is not. */
static int hash_check(const char *hash, const char *what, struct cdn_err *err)
{
	if (cdn_sha256_hex_str_ok(hash))
		return 0;
	char shown[SHOWN_MAX];
	return cdn_err_msg(err, EINVAL, "store: \"%s\" is not %s",
			   cdn_printable_str(shown, sizeof(shown), hash, 0), what);
}

static ssize_t read_some(int fd, void *buf, size_t len)
{
	for (;;) {
		ssize_t n = read(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 ? -errno : n;
	}
}

/* The names in a directory, without "." and "..": -E2BIG past max. */
static int list_dir(int dfd, size_t max, char ***names, size_t *n)
{
	*names = NULL;
	*n = 0;
	/* A fresh open, not dup(): readdir must not move the caller's offset. */
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	_cleanup_closedir_ DIR *d = fdopendir(fd);
	if (!d) {
		int e = errno;
		close(fd);
		return -e;
	}
	char **v = NULL;
	size_t count = 0, cap = 0;
	int r = 0;
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (!de) {
			r = errno ? -errno : 0;
			break;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (count >= max) {
			r = -E2BIG;
			break;
		}
		if (count == cap) {
			size_t nc = cap ? cap * 2 : 32;
			char **nv = realloc(v, nc * sizeof(*nv));
			if (!nv) {
				r = -ENOMEM;
				break;
			}
			v = nv;
			cap = nc;
		}
		if (!(v[count] = strdup(de->d_name))) {
			r = -ENOMEM;
			break;
		}
		count++;
	}
	if (r < 0) {
		for (size_t i = 0; i < count; i++)
			free(v[i]);
		free(v);
		return r;
	}
	*names = v;
	*n = count;
	return 0;
}

static void names_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Removes name (a file or a whole directory) under dfd without following
 * symlinks. Best effort: the first error is returned, the rest goes on. */
static int rm_rf_at(int dfd, const char *name, unsigned depth)
{
	struct stat st;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(dfd, name, 0) < 0 && errno != ENOENT ? -errno : 0;
	if (depth >= RM_DEPTH_MAX)
		return -ELOOP;
	_cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* A checkout's directories may be read-only for us; entries cannot
	 * leave a directory we cannot write. */
	if ((st.st_mode & 0700) != 0700)
		(void)fchmod(fd, 0700);
	char **names;
	size_t n;
	int r = list_dir(fd, SIZE_MAX, &names, &n);
	for (size_t i = 0; i < n; i++) {
		int e = rm_rf_at(fd, names[i], depth + 1);
		if (e < 0 && r == 0)
			r = e;
	}
	names_free(names, n);
	if (unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT && r == 0)
		r = -errno;
	return r;
}

/* Temp names carry their writer's pid ("t.<pid>.<random>") so that a store
 * opened by another process can tell a stale file from a live one. */
static int tmp_name(const char *kind, char *out, size_t cap)
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

/* ------------------------------------------------------------------ names */

/*
 * The one shape of every identifier the store keeps: a letter or digit,
 * then letters, digits, '.', '_' and '-' (no "/", no ".." component, no
 * leading dot or dash: each becomes a path or a key, and an option). Upper
 * case only where `upper`: agent and workspace names are lower case, so
 * that two spellings are never two names.
 */
static bool ident_ok(const char *s, size_t len, size_t max, bool upper)
{
	if (len == 0 || len > max)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			  (upper && c >= 'A' && c <= 'Z') ||
			  (i > 0 && (c == '.' || c == '_' || c == '-'));
		if (!ok)
			return false;
	}
	return true;
}

bool store_name_ok(const char *name)
{
	return name && ident_ok(name, strnlen(name, STORE_MAX_NAME + 1), STORE_MAX_NAME, false);
}

bool store_secret_name_ok(const char *name)
{
	return name && ident_ok(name, strnlen(name, STORE_MAX_NAME + 1), STORE_MAX_NAME, true);
}

bool store_run_id_ok(const char *id)
{
	return id && ident_ok(id, strnlen(id, STORE_RUN_ID_MAX + 1), STORE_RUN_ID_MAX, true);
}

static int name_check(const char *what, const char *name, bool upper, struct cdn_err *err)
{
	char shown[STORE_MAX_NAME + 8];
	size_t len = name ? strnlen(name, STORE_MAX_NAME + 1) : 0;
	if (len == 0)
		return cdn_err_msg(err, EINVAL, "%s name is empty", what);
	cdn_printable_str(shown, sizeof(shown), name, 0);
	if (len > STORE_MAX_NAME)
		return cdn_err_msg(err, EINVAL, "%s name \"%s...\" is longer than %d characters",
				   what, shown, STORE_MAX_NAME);
	if (!ident_ok(name, len, STORE_MAX_NAME, upper))
		return cdn_err_msg(err, EINVAL,
				   "%s name \"%s\": use %s, digits, '.', '_' and '-', "
				   "starting with a letter or digit",
				   what, shown, upper ? "letters" : "lowercase letters");
	return 0;
}

int store_name_check(const char *what, const char *name, struct cdn_err *err)
{
	return name_check(what ? what : "a", name, false, err);
}

int store_secret_name_check(const char *name, struct cdn_err *err)
{
	return name_check("secret", name, true, err);
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
	int r = list_dir(s->tmp_fd, TMP_SCAN_MAX, &names, &n);
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
			(void)rm_rf_at(s->tmp_fd, names[i], 0);
	}
	names_free(names, n);
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
		return cdn_err_set(err, EINVAL, "store: %s/%s is not a regular file", s->dir,
				   STORE_DB_FILE);
	if (st.st_uid != geteuid())
		return cdn_err_set(err, EPERM, "store: %s/%s is owned by uid %u, not by uid %u",
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
			return cdn_err_set(err, EBUSY, "store: lock %s: another process has been "
					   "opening the store for %d s", s->dir,
					   OPEN_LOCK_WAIT_MS / 1000);
		struct timespec ts = { 0, OPEN_LOCK_STEP_MS * 1000000L };
		nanosleep(&ts, NULL);
	}
}

int store_open(const char *dir, struct store **out, struct cdn_err *err)
{
	*out = NULL;
	if (!dir || !*dir)
		return cdn_err_msg(err, EINVAL, "store: no state directory given");
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

	int r = mkdir_p(s->dir, err);
	if (r < 0)
		return r;
	struct stat st;
	if (lstat(s->dir, &st) < 0)
		return cdn_err_set(err, errno, "store: stat %s", s->dir);
	if (S_ISLNK(st.st_mode))
		return cdn_err_set(err, ELOOP,
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
		return cdn_err_set(err, EPERM,
				   "store: %s is owned by uid %u, not by this user (uid %u): "
				   "refusing a state directory another user controls",
				   s->dir, (unsigned)st.st_uid, (unsigned)geteuid());
	if (st.st_mode & 022)
		return cdn_err_set(err, EPERM,
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
	if ((r = open_lock(s, true, err)) < 0)
		return r;
	if ((r = db_file_prepare(s, err)) == 0)
		r = store_db_open(s, &s->db, err);
	open_lock(s, false, NULL);
	if (r < 0)
		return r;
	*out = cdn_steal(&s);
	return 0;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	if (s->db)
		store_db_close(s->db);
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

struct atomic_file {
	int fd;	       /* the temp file, O_RDWR */
	int tmp_dirfd; /* where it is: the store's tmp/ (borrowed) or dst_dirfd */
	int dst_dirfd; /* the target's directory (owned) */
	char tmpname[TMP_NAME_MAX];
	char base[NAME_MAX + 1];
	bool live; /* the temp file exists and goes unless committed */
};

#define ATOMIC_FILE_INIT { .fd = -1, .tmp_dirfd = -1, .dst_dirfd = -1 }

static void atomic_file_release(struct atomic_file *af)
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

#define _cleanup_atomic_ _cleanup_(atomic_file_release)

static int make_tmp(int dirfd, const char *kind, char *name, size_t cap, int *fd)
{
	/* The random part makes a clash unlikely; O_EXCL makes it harmless. */
	for (int tries = 0;; tries++) {
		int r = tmp_name(kind, name, cap);
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
static int atomic_begin(struct store *s, struct atomic_file *af, const char *shown,
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

static int atomic_commit(struct atomic_file *af, unsigned mode, const char *shown,
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
static int open_target(struct store *s, const char *path, struct atomic_file *af,
		       struct cdn_err *err)
{
	char shown[SHOWN_MAX];
	cdn_printable_str(shown, sizeof(shown), path, 0);
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	if (!*base || !strcmp(base, ".") || !strcmp(base, ".."))
		return cdn_err_set(err, EINVAL, "store: %s is not a file path", shown);
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
	int r = open_target(s, path, &af, err);
	if (r < 0 || (r = atomic_begin(s, &af, shown, err)) < 0)
		return r;
	if ((r = cdn_write_all(af.fd, data, len)) < 0)
		return cdn_err_set(err, r, "store: write %s", shown);
	return atomic_commit(&af, mode, shown, err);
}

/* ------------------------------------------------------------------ blobs */

/* "ab/cdef...": the blob's path under blobs/. */
static void blob_rel(const char *hex, char out[STORE_HASH_HEX + 2])
{
	out[0] = hex[0];
	out[1] = hex[1];
	out[2] = '/';
	memcpy(out + 3, hex + 2, STORE_HASH_HEX - 2 + 1);
}

static bool blob_present(struct store *s, const char *hex, int64_t size)
{
	char rel[STORE_HASH_HEX + 2];
	struct stat st;
	blob_rel(hex, rel);
	return fstatat(s->blobs_fd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
	       (size < 0 || st.st_size == size);
}

/* Puts a finished temp file holding the bytes of hex in its place. */
static int blob_commit(struct store *s, struct atomic_file *af, const char *hex, uint64_t size,
		       struct cdn_err *err)
{
	/* Content addressing: a blob already there with this size holds these
	 * bytes (it was synced before its rename), so this copy is dropped.
	 * One of another size is damaged, and is replaced. */
	if (blob_present(s, hex, (int64_t)size)) {
		atomic_file_release(af);
		return 0;
	}
	char sub[3] = { hex[0], hex[1], '\0' };
	if (mkdirat(s->blobs_fd, sub, STORE_DIR_MODE) < 0 && errno != EEXIST)
		return cdn_err_set(err, errno, "store: mkdir %s/blobs/%s", s->dir, sub);
	af->dst_dirfd = openat(s->blobs_fd, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (af->dst_dirfd < 0)
		return cdn_err_set(err, errno, "store: open %s/blobs/%s", s->dir, sub);
	memcpy(af->base, hex + 2, STORE_HASH_HEX - 2 + 1);
	char shown[SHOWN_MAX];
	snprintf(shown, sizeof(shown), "blob %s", hex);
	return atomic_commit(af, BLOB_MODE, shown, err);
}

int store_blob_put(struct store *s, const void *data, size_t len, char hex[STORE_HASH_HEX + 1],
		   struct cdn_err *err)
{
	cdn_sha256_hex(data, len, hex);
	if (blob_present(s, hex, (int64_t)len))
		return 0;
	_cleanup_atomic_ struct atomic_file af = ATOMIC_FILE_INIT;
	int r = atomic_begin(s, &af, "a blob", err);
	if (r < 0)
		return r;
	if ((r = cdn_write_all(af.fd, data, len)) < 0)
		return cdn_err_set(err, r, "store: write a blob in %s/tmp", s->dir);
	return blob_commit(s, &af, hex, len, err);
}

/*
 * Reads fd to its end into its sha256 and size, at most max bytes (E2BIG
 * past that: one byte more is read to know). Each chunk also goes to
 * copy_fd when that is not -1: a blob being stored (s names its place in
 * a message then).
 */
static int hash_stream(const struct store *s, int fd, uint64_t max, int copy_fd,
		       char hex[STORE_HASH_HEX + 1], uint64_t *size, struct cdn_err *err)
{
	bool copy = copy_fd >= 0;
	_cleanup_free_ unsigned char *buf = malloc(IO_CHUNK);
	if (!buf)
		return cdn_err_set(err, ENOMEM, copy ? "store: blob" : "store: hash");
	crypto_hash_sha256_state st;
	crypto_hash_sha256_init(&st);
	uint64_t total = 0;
	for (;;) {
		size_t want = IO_CHUNK;
		uint64_t room = max - total;
		/* One byte past the limit is enough to know it is over. */
		if (room < IO_CHUNK)
			want = (size_t)room + 1;
		ssize_t n = read_some(fd, buf, want);
		if (n < 0)
			return cdn_err_set(err, (int)n,
					   copy ? "store: read into a blob" : "store: read");
		if (n == 0)
			break;
		total += (uint64_t)n;
		if (total > max)
			return cdn_err_set(err, E2BIG, "store: more than %llu bytes",
					   (unsigned long long)max);
		crypto_hash_sha256_update(&st, buf, (unsigned long long)n);
		int r = copy ? cdn_write_all(copy_fd, buf, (size_t)n) : 0;
		if (r < 0)
			return cdn_err_set(err, r, "store: write a blob in %s/tmp", s->dir);
	}
	unsigned char d[crypto_hash_sha256_BYTES];
	crypto_hash_sha256_final(&st, d);
	cdn_digest_hex(d, hex);
	*size = total;
	return 0;
}

int store_blob_put_fd(struct store *s, int fd, uint64_t max, char hex[STORE_HASH_HEX + 1],
		      uint64_t *size, struct cdn_err *err)
{
	_cleanup_atomic_ struct atomic_file af = ATOMIC_FILE_INIT;
	int r = atomic_begin(s, &af, "a blob", err);
	if (r < 0)
		return r;
	uint64_t total;
	if ((r = hash_stream(s, fd, max, af.fd, hex, &total, err)) < 0)
		return r;
	if (size)
		*size = total;
	return blob_commit(s, &af, hex, total, err);
}

/*
 * Blobs written for one tree, made durable together. Storing each blob on
 * its own costs two fsyncs (the file, then its directory after the
 * rename): 8,000 journal commits for a 4,000-file node_modules, most of
 * the 13 s registering one took. A batch keeps the order that makes a
 * blob trustworthy, a blob's bytes on disk before its name appears
 * (blob_commit relies on it), with two flushes in all: every staged temp
 * file is written, then one syncfs, then every rename, then one syncfs
 * before the tree's listing, the only thing that refers to them, is
 * stored.
 */
struct blob_staged {
	char tmp[TMP_NAME_MAX]; /* in tmp/; "" once renamed or removed */
	char hex[STORE_HASH_HEX + 1];
	uint64_t size;
};

struct blob_batch {
	struct blob_staged *v;
	size_t n, cap;
	int mode; /* 0 unknown, 1 batched, -1 one at a time (tmp/ and blobs/ differ) */
};

static void blob_batch_abort(struct store *s, struct blob_batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		if (b->v[i].tmp[0])
			(void)unlinkat(s->tmp_fd, b->v[i].tmp, 0);
	free(b->v);
	*b = (struct blob_batch){ 0 };
}

/* store_blob_put_fd, but the blob is only staged until blob_batch_commit. */
static int blob_batch_put_fd(struct store *s, struct blob_batch *b, int fd, uint64_t max,
			     char hex[STORE_HASH_HEX + 1], uint64_t *size, struct cdn_err *err)
{
	if (b->mode == 0) {
		struct stat a, c;
		if (fstat(s->tmp_fd, &a) < 0 || fstat(s->blobs_fd, &c) < 0)
			return cdn_err_set(err, errno, "store: stat %s/tmp", s->dir);
		b->mode = a.st_dev == c.st_dev ? 1 : -1;
	}
	if (b->mode < 0)
		return store_blob_put_fd(s, fd, max, hex, size, err);
	_cleanup_atomic_ struct atomic_file af = ATOMIC_FILE_INIT;
	int r = atomic_begin(s, &af, "a blob", err);
	if (r < 0)
		return r;
	if ((r = hash_stream(s, fd, max, af.fd, hex, size, err)) < 0)
		return r;
	if (blob_present(s, hex, (int64_t)*size))
		return 0; /* the temp file goes with af */
	if (fchmod(af.fd, BLOB_MODE) < 0)
		return cdn_err_set(err, errno, "store: write a blob in %s/tmp", s->dir);
	if (b->n == b->cap) {
		size_t nc = b->cap ? b->cap * 2 : 64;
		struct blob_staged *nv = realloc(b->v, nc * sizeof(*nv));
		if (!nv)
			return cdn_err_set(err, ENOMEM, "store: blob");
		b->v = nv;
		b->cap = nc;
	}
	struct blob_staged *e = &b->v[b->n++];
	memcpy(e->tmp, af.tmpname, sizeof(e->tmp));
	memcpy(e->hex, hex, sizeof(e->hex));
	e->size = *size;
	af.live = false; /* the batch owns the temp file now */
	return 0;
}

static int blob_batch_commit(struct store *s, struct blob_batch *b, struct cdn_err *err)
{
	int r = 0;
	if (b->n && syncfs(s->tmp_fd) < 0)
		r = cdn_err_set(err, errno, "store: sync %s/tmp", s->dir);
	for (size_t i = 0; r == 0 && i < b->n; i++) {
		struct blob_staged *e = &b->v[i];
		/* Present already (twice in this tree, or stored meanwhile by
		 * another process): this copy is not needed. */
		if (blob_present(s, e->hex, (int64_t)e->size)) {
			(void)unlinkat(s->tmp_fd, e->tmp, 0);
			e->tmp[0] = '\0';
			continue;
		}
		char sub[3] = { e->hex[0], e->hex[1], '\0' }, rel[STORE_HASH_HEX + 2];
		blob_rel(e->hex, rel);
		/* The fan-out directory is made when the rename says it is
		 * missing: a mkdir per blob would mostly fail with EEXIST. */
		int rn = renameat(s->tmp_fd, e->tmp, s->blobs_fd, rel);
		if (rn < 0 && errno == ENOENT) {
			if (mkdirat(s->blobs_fd, sub, STORE_DIR_MODE) < 0 && errno != EEXIST) {
				r = cdn_err_set(err, errno, "store: mkdir %s/blobs/%s", s->dir, sub);
				break;
			}
			rn = renameat(s->tmp_fd, e->tmp, s->blobs_fd, rel);
		}
		if (rn < 0) {
			r = cdn_err_set(err, errno, "store: rename blob %s into %s/blobs", e->hex,
					s->dir);
			break;
		}
		e->tmp[0] = '\0';
	}
	/* The renames (and new fan-out directories) durable before the listing
	 * that names these blobs is stored. */
	if (r == 0 && b->n && syncfs(s->blobs_fd) < 0)
		r = cdn_err_set(err, errno, "store: sync %s/blobs", s->dir);
	blob_batch_abort(s, b);
	return r;
}

int store_blob_path(struct store *s, const char *hex, char *out, size_t cap, struct cdn_err *err)
{
	int r = hash_check(hex, "a sha256 (64 lowercase hex)", err);
	if (r < 0)
		return r;
	if (!blob_present(s, hex, -1))
		return cdn_err_set(err, ENOENT, "store: blob %s", hex);
	int n = snprintf(out, cap, "%s/blobs/%.2s/%s", s->dir, hex, hex + 2);
	if (n < 0 || (size_t)n >= cap)
		return cdn_err_set(err, ENAMETOOLONG, "store: blob %s", hex);
	return 0;
}

static int blob_open(struct store *s, const char *hex, int *fd, struct stat *st,
		     struct cdn_err *err)
{
	char rel[STORE_HASH_HEX + 2];
	blob_rel(hex, rel);
	*fd = openat(s->blobs_fd, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (*fd < 0)
		return cdn_err_set(err, errno, "store: blob %s", hex);
	int e = fstat(*fd, st) < 0 ? errno : S_ISREG(st->st_mode) ? 0 : EINVAL;
	if (e) {
		close(*fd);
		*fd = -1;
		return cdn_err_set(err, e, "store: blob %s is not a readable regular file", hex);
	}
	return 0;
}

/* Copies a blob into out, checking that the bytes still hash to its name. */
static int blob_copy_checked(struct store *s, const char *hex, int out, struct cdn_err *err)
{
	_cleanup_close_ int in = -1;
	struct stat st;
	int r = blob_open(s, hex, &in, &st, err);
	if (r < 0)
		return r;
	_cleanup_free_ unsigned char *buf = malloc(IO_CHUNK);
	if (!buf)
		return cdn_err_set(err, ENOMEM, "store: blob %s", hex);
	crypto_hash_sha256_state hs;
	crypto_hash_sha256_init(&hs);
	for (;;) {
		ssize_t n = read_some(in, buf, IO_CHUNK);
		if (n < 0)
			return cdn_err_set(err, (int)n, "store: read blob %s", hex);
		if (n == 0)
			break;
		crypto_hash_sha256_update(&hs, buf, (unsigned long long)n);
		if ((r = cdn_write_all(out, buf, (size_t)n)) < 0)
			return cdn_err_set(err, r, "store: copy blob %s", hex);
	}
	unsigned char d[crypto_hash_sha256_BYTES];
	char got[STORE_HASH_HEX + 1];
	crypto_hash_sha256_final(&hs, d);
	cdn_digest_hex(d, got);
	if (strcmp(got, hex) != 0)
		return cdn_err_set(err, EIO,
				   "store: blob %s/blobs/%.2s/%s does not match its hash (damaged "
				   "on disk)",
				   s->dir, hex, hex + 2);
	return 0;
}

int store_blob_export(struct store *s, const char *hex, const char *path, unsigned mode,
		      struct cdn_err *err)
{
	int r = hash_check(hex, "a sha256 (64 lowercase hex)", err);
	if (r < 0)
		return r;
	if (!path || !*path)
		return cdn_err_msg(err, EINVAL, "store: export blob %s: no path", hex);
	if (mode & ~07777u)
		return cdn_err_msg(err, EINVAL, "store: export blob %s: mode %o is not a file mode",
				   hex, mode);
	char shown[SHOWN_MAX];
	cdn_printable_str(shown, sizeof(shown), path, 0);
	_cleanup_atomic_ struct atomic_file af = ATOMIC_FILE_INIT;
	r = open_target(s, path, &af, err);
	if (r < 0 || (r = atomic_begin(s, &af, shown, err)) < 0 ||
	    (r = blob_copy_checked(s, hex, af.fd, err)) < 0)
		return r;
	return atomic_commit(&af, mode, shown, err);
}

/* ------------------------------------------------------------------ trees */

/*
 * What a name in a tree may be. '\n' would let a name forge a line of the
 * listing; other control bytes (C0, DEL, C1) could drive a terminal when a
 * listing is shown; and listings travel in JSON (API, evidence packs),
 * which must be UTF-8, so a name that is not valid UTF-8 (including
 * overlong forms and surrogates) would be shown as something other than
 * what was hashed. '/' and '\0' cannot come from the kernel, but a listing
 * read back is checked with the same rule.
 */
static bool tree_name_ok(const char *name, size_t len)
{
	if (len == 0 || len > NAME_MAX)
		return false;
	if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
		return false;
	const unsigned char *p = (const unsigned char *)name, *end = p + len;
	while (p < end) {
		unsigned c = *p;
		if (c < 0x20 || c == 0x7f || c == '/')
			return false;
		if (c < 0x80) {
			p++;
			continue;
		}
		size_t more;
		unsigned cp;
		if (c >= 0xc2 && c <= 0xdf) {
			more = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			more = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			more = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if ((size_t)(end - p) <= more)
			return false;
		for (size_t i = 1; i <= more; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		if ((more == 2 && cp < 0x800) || (more == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp <= 0x9f)
			return false;
		p += more + 1;
	}
	return true;
}

/* A relative '/'-separated path of valid names, as a listing holds. */
static bool tree_path_ok(const char *path, size_t len)
{
	if (len == 0 || len > TREE_PATH_MAX)
		return false;
	size_t start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && path[i] != '/')
			continue;
		if (!tree_name_ok(path + start, i - start))
			return false;
		start = i + 1;
	}
	return true;
}

/*
 * A symlink's target as a tree may hold it: relative, '/'-separated, each
 * component ".", ".." or a valid name, none empty (no "a//b", no trailing
 * '/': one link, one spelling). Where it leads is checked separately
 * (tree_links_check), once every entry is known.
 */
static bool tree_target_ok(const char *t, size_t len)
{
	if (len == 0 || len > TREE_PATH_MAX || t[0] == '/')
		return false;
	size_t start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && t[i] != '/')
			continue;
		size_t n = i - start;
		bool dots = (n == 1 && t[start] == '.') ||
			    (n == 2 && t[start] == '.' && t[start + 1] == '.');
		if (!dots && !tree_name_ok(t + start, n))
			return false;
		start = i + 1;
	}
	return true;
}

/* An entry as the link check sees it, whether walked or read back. */
struct tree_node {
	const char *path;
	char kind; /* 'f' file, 'd' directory, 'l' symlink */
	const char *target;
};

static ssize_t tree_node_find(const struct tree_node *v, size_t n, const char *path)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(v[mid].path, path);
		if (c == 0)
			return (ssize_t)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* Drops the last component of a resolved path ("" is the tree's root). */
static void path_up(char *cur)
{
	char *slash = strrchr(cur, '/');
	if (slash)
		*slash = '\0';
	else
		cur[0] = '\0';
}

/*
 * Resolves link v[i] the way the kernel would inside a copy of the tree
 * mounted anywhere, following links to links, and says why not when it
 * cannot be kept:
 *  - a ".." above the tree's root leaves the tree (directly, through a
 *    chain of ".." or through another link): inside the sandbox it would
 *    reach the host's /agent's parent, or on the host the store itself;
 *  - a component that names nothing in the tree, or goes on below a
 *    file: a dangling link. Refused too, so that every kept link resolves
 *    to an entry of the same tree on every machine, and "inside" is a fact
 *    checked on the whole path, not a guess about parts that are missing;
 *  - more than TREE_LINK_HOPS links on the way: a loop.
 * v is sorted by path. Returns NULL when the link is kept.
 */
static const char *tree_link_why(const struct tree_node *v, size_t n, size_t i)
{
	char cur[TREE_PATH_MAX + 1], rest[2 * TREE_PATH_MAX + 2], tmp[2 * TREE_PATH_MAX + 2];
	snprintf(cur, sizeof(cur), "%s", v[i].path);
	path_up(cur);
	snprintf(rest, sizeof(rest), "%s", v[i].target);
	unsigned hops = 0;
	while (rest[0]) {
		char *slash = strchr(rest, '/');
		size_t len = slash ? (size_t)(slash - rest) : strlen(rest);
		char name[NAME_MAX + 1];
		memcpy(name, rest, len);
		name[len] = '\0';
		memmove(rest, slash ? slash + 1 : rest + len, strlen(slash ? slash + 1 : rest + len) + 1);
		if (!strcmp(name, "."))
			continue;
		if (!strcmp(name, "..")) {
			if (!cur[0])
				return "its target leaves the tree";
			path_up(cur);
			continue;
		}
		size_t cl = strlen(cur);
		if (cl + 1 + len > TREE_PATH_MAX)
			return "its target resolves to too long a path";
		if (cl)
			cur[cl++] = '/';
		memcpy(cur + cl, name, len + 1);
		ssize_t k = tree_node_find(v, n, cur);
		if (k < 0)
			return "its target is not in the tree (a dangling link)";
		if (v[k].kind == 'f' && rest[0])
			return "its target goes on below a file (a dangling link)";
		if (v[k].kind != 'l')
			continue;
		if (++hops > TREE_LINK_HOPS)
			return "its target is a loop of links";
		/* v[k]'s target is relative to v[k]'s directory, and what is
		 * left of this one comes after it. */
		path_up(cur);
		int m = snprintf(tmp, sizeof(tmp), "%s%s%s", v[k].target, rest[0] ? "/" : "", rest);
		if (m < 0 || (size_t)m >= sizeof(rest))
			return "its target resolves to too long a path";
		memcpy(rest, tmp, (size_t)m + 1);
	}
	return NULL;
}

/* Every link of v (sorted by path) checked; the first refused is named. */
static int tree_links_check(const struct tree_node *v, size_t n, const char **bad,
			    const char **why)
{
	for (size_t i = 0; i < n; i++) {
		if (v[i].kind != 'l')
			continue;
		const char *w = tree_link_why(v, n, i);
		if (w) {
			*bad = v[i].path;
			*why = w;
			return -EINVAL;
		}
	}
	return 0;
}

struct tree_entry {
	char *path;
	bool dir;
	char *target;  /* a symlink's, or NULL */
	unsigned mode; /* 0644 or 0755 */
	uint64_t size;
	char hash[STORE_HASH_HEX + 1];
};

struct tree_walk {
	struct store *s;
	char root[SHOWN_MAX]; /* printable, for messages */
	struct tree_limits lim;
	struct tree_entry *v;
	size_t n, cap;
	uint64_t bytes;
	struct blob_batch batch; /* the files' blobs, with a store */
	struct cdn_err *err;
};

static void tree_entries_free(struct tree_entry *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].path);
		free(v[i].target);
	}
	free(v);
}

static int tree_fail(struct tree_walk *w, int code, const char *path, const char *why)
{
	char shown[SHOWN_MAX];
	cdn_printable_str(shown, sizeof(shown), path, 0);
	return cdn_err_set(w->err, code, "tree %s: %s: %s", w->root, shown, why);
}

static int tree_add(struct tree_walk *w, char **path, bool dir, unsigned mode, uint64_t size,
		    const char *hash)
{
	if (w->n >= w->lim.max_files)
		return tree_fail(w, E2BIG, *path,
				 "over the limit of entries (files and directories)");
	if (w->n == w->cap) {
		size_t nc = w->cap ? w->cap * 2 : 64;
		struct tree_entry *nv = realloc(w->v, nc * sizeof(*nv));
		if (!nv)
			return cdn_err_set(w->err, ENOMEM, "tree %s", w->root);
		w->v = nv;
		w->cap = nc;
	}
	struct tree_entry *e = &w->v[w->n++];
	e->path = cdn_steal(path);
	e->target = NULL;
	e->dir = dir;
	e->mode = mode;
	e->size = size;
	snprintf(e->hash, sizeof(e->hash), "%s", hash ? hash : "");
	return 0;
}

static int tree_walk_dir(struct tree_walk *w, int dfd, const char *prefix, unsigned depth);

static int tree_walk_file(struct tree_walk *w, int dfd, const char *name, char **path,
			  const struct stat *lst)
{
	/* O_NONBLOCK: if a fifo was swapped in after the fstatat, opening it
	 * must not hang; the fstat below then refuses it. */
	_cleanup_close_ int fd =
		openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return tree_fail(w, errno, *path, "open");
	struct stat st;
	if (fstat(fd, &st) < 0)
		return tree_fail(w, errno, *path, "stat");
	if (!S_ISREG(st.st_mode) || st.st_ino != lst->st_ino || st.st_dev != lst->st_dev)
		return tree_fail(w, EAGAIN, *path, "changed while being read");
	char hash[STORE_HASH_HEX + 1];
	uint64_t size = 0;
	int r = w->s ? blob_batch_put_fd(w->s, &w->batch, fd, w->lim.max_bytes - w->bytes, hash,
					 &size, w->err)
		     : hash_stream(NULL, fd, w->lim.max_bytes - w->bytes, -1, hash, &size, w->err);
	if (r == -E2BIG) {
		char why[96];
		snprintf(why, sizeof(why), "the files add up to more than %llu bytes",
			 (unsigned long long)w->lim.max_bytes);
		return tree_fail(w, E2BIG, *path, why);
	}
	if (r < 0) {
		char shown[SHOWN_MAX];
		cdn_printable_str(shown, sizeof(shown), *path, 0);
		return cdn_err_wrap(w->err, "tree %s: %s", w->root, shown);
	}
	w->bytes += size;
	/* Only the execute bit survives: owners, umasks and the rest differ
	 * between machines and would change the hash of the same tree. */
	return tree_add(w, path, false, (st.st_mode & 0111) ? 0755 : 0644, size, hash);
}

/*
 * A symlink is recorded, never followed: its target's text goes into the
 * listing, and where it leads is checked once the whole tree is known
 * (tree_links_check). An absolute target is refused here: it would name
 * the host's file on the host and the sandbox's inside it, a different
 * file on every machine.
 */
static int tree_walk_link(struct tree_walk *w, int dfd, const char *name, char **path,
			  const struct stat *lst)
{
	char buf[TREE_PATH_MAX + 2];
	ssize_t n = readlinkat(dfd, name, buf, sizeof(buf) - 1);
	if (n < 0)
		return tree_fail(w, errno == EINVAL ? EAGAIN : errno, *path,
				 errno == EINVAL ? "changed while being read" : "readlink");
	if ((uint64_t)n != (uint64_t)lst->st_size && lst->st_size != 0)
		return tree_fail(w, EAGAIN, *path, "changed while being read");
	buf[n] = '\0';
	if (buf[0] == '/')
		return tree_fail(w, EINVAL, *path,
				 "is a symlink with an absolute target; a tree's links must be "
				 "relative and stay inside it");
	if (!tree_target_ok(buf, (size_t)n))
		return tree_fail(w, EINVAL, *path,
				 "is a symlink whose target is too long, holds an empty component "
				 "or a name that is not UTF-8 or holds control characters");
	char *target = strdup(buf);
	if (!target)
		return cdn_err_set(w->err, ENOMEM, "tree %s", w->root);
	int r = tree_add(w, path, false, 0, 0, NULL);
	if (r < 0) {
		free(target);
		return r;
	}
	w->v[w->n - 1].target = target;
	return 0;
}

static int tree_walk_one(struct tree_walk *w, int dfd, const char *prefix, const char *name,
			 unsigned depth)
{
	_cleanup_free_ char *path = NULL;
	if (asprintf(&path, "%s%s%s", prefix ? prefix : "", prefix ? "/" : "", name) < 0) {
		path = NULL;
		return cdn_err_set(w->err, ENOMEM, "tree %s", w->root);
	}
	if (strlen(path) > TREE_PATH_MAX)
		return tree_fail(w, ENAMETOOLONG, path, "the path is too long");
	if (!tree_name_ok(name, strlen(name)))
		return tree_fail(w, EINVAL, path,
				 "the name is not UTF-8 or holds control characters (a newline "
				 "would forge a line of the tree's listing)");
	if (depth > w->lim.max_depth) {
		char why[64];
		snprintf(why, sizeof(why), "deeper than %u levels", w->lim.max_depth);
		return tree_fail(w, E2BIG, path, why);
	}
	struct stat st;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return tree_fail(w, errno, path, "stat");
	if (S_ISREG(st.st_mode))
		return tree_walk_file(w, dfd, name, &path, &st);
	if (S_ISLNK(st.st_mode))
		return tree_walk_link(w, dfd, name, &path, &st);
	const char *what = S_ISFIFO(st.st_mode)	 ? "fifo"
			   : S_ISSOCK(st.st_mode) ? "socket"
			   : S_ISDIR(st.st_mode)  ? NULL
						  : "device";
	if (what) {
		char why[80];
		snprintf(why, sizeof(why), "is a %s; trees hold files and directories only", what);
		return tree_fail(w, EINVAL, path, why);
	}
	_cleanup_close_ int cfd =
		openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (cfd < 0)
		return tree_fail(w, errno == ELOOP ? EAGAIN : errno, path, "open");
	struct stat cst;
	if (fstat(cfd, &cst) < 0)
		return tree_fail(w, errno, path, "stat");
	if (cst.st_ino != st.st_ino || cst.st_dev != st.st_dev)
		return tree_fail(w, EAGAIN, path, "changed while being read");
	/* The entry owns the path; it stays put when the array grows. */
	const char *kept = path;
	int r = tree_add(w, &path, true, 0, 0, NULL);
	if (r < 0)
		return r;
	return tree_walk_dir(w, cfd, kept, depth + 1);
}

static int tree_walk_dir(struct tree_walk *w, int dfd, const char *prefix, unsigned depth)
{
	char **names;
	size_t n;
	int r = list_dir(dfd, (size_t)(w->lim.max_files - w->n), &names, &n);
	if (r == -E2BIG)
		return tree_fail(w, E2BIG, prefix ? prefix : ".",
				 "over the limit of entries (files and directories)");
	if (r < 0)
		return tree_fail(w, -r, prefix ? prefix : ".", "read the directory");
	for (size_t i = 0; r == 0 && i < n; i++)
		r = tree_walk_one(w, dfd, prefix, names[i], depth);
	names_free(names, n);
	return r;
}

static int tree_entry_cmp(const void *a, const void *b)
{
	/* strcmp compares as unsigned char: raw byte order. */
	return strcmp(((const struct tree_entry *)a)->path, ((const struct tree_entry *)b)->path);
}

/* The walked tree's links (w->v sorted), checked as a listing's are. */
static int tree_walk_links_check(struct tree_walk *w)
{
	size_t links = 0;
	for (size_t i = 0; i < w->n; i++)
		links += w->v[i].target != NULL;
	if (!links)
		return 0;
	_cleanup_free_ struct tree_node *v = calloc(w->n, sizeof(*v));
	if (!v)
		return cdn_err_set(w->err, ENOMEM, "tree %s", w->root);
	for (size_t i = 0; i < w->n; i++)
		v[i] = (struct tree_node){ .path = w->v[i].path,
					   .kind = w->v[i].dir	   ? 'd'
						   : w->v[i].target ? 'l'
								    : 'f',
					   .target = w->v[i].target };
	const char *bad = NULL, *why = NULL;
	if (tree_links_check(v, w->n, &bad, &why) == 0)
		return 0;
	char shown[SHOWN_MAX], target[SHOWN_MAX];
	cdn_printable_str(shown, sizeof(shown), bad, 0);
	cdn_printable_str(target, sizeof(target), v[tree_node_find(v, w->n, bad)].target, 0);
	return cdn_err_set(w->err, EINVAL, "tree %s: %s: is a symlink to '%s' and %s", w->root,
			   shown, target, why);
}

int store_tree_import(struct store *s, const char *dir, const struct tree_limits *lim,
		      char hash[STORE_HASH_HEX + 1], struct cdn_err *err)
{
	struct tree_walk w = { .s = s, .err = err };
	cdn_printable_str(w.root, sizeof(w.root), dir, 0);
	w.lim.max_files = lim && lim->max_files ? lim->max_files : TREE_DEFAULT_MAX_FILES;
	w.lim.max_bytes = lim && lim->max_bytes ? lim->max_bytes : TREE_DEFAULT_MAX_BYTES;
	w.lim.max_depth = lim && lim->max_depth ? lim->max_depth : TREE_DEFAULT_MAX_DEPTH;

	/* The root may be a symlink: the caller named it. Below it, nothing
	 * is followed. */
	_cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return cdn_err_set(err, errno, "tree %s", w.root);
	int r = tree_walk_dir(&w, fd, NULL, 1);
	_cleanup_free_ char *listing = NULL;
	size_t len = 0;
	if (r == 0) {
		qsort(w.v, w.n, sizeof(*w.v), tree_entry_cmp);
		r = tree_walk_links_check(&w);
	}
	if (r == 0) {
		size_t cap = 1;
		for (size_t i = 0; i < w.n; i++)
			cap += strlen(w.v[i].path) + STORE_HASH_HEX + TREE_SIZE_DIGITS + 16 +
			       (w.v[i].target ? strlen(w.v[i].target) : 0);
		if (!(listing = malloc(cap)))
			r = cdn_err_set(err, ENOMEM, "tree %s", w.root);
		for (size_t i = 0; r == 0 && i < w.n; i++) {
			const struct tree_entry *e = &w.v[i];
			int n = e->dir	  ? snprintf(listing + len, cap - len, "dir %s\n", e->path)
				: e->target ? snprintf(listing + len, cap - len, "link %zu %s %s\n",
						       strlen(e->target), e->target, e->path)
					    : snprintf(listing + len, cap - len, "%04o %s %llu %s\n",
						       e->mode, e->hash, (unsigned long long)e->size,
						       e->path);
			len += (size_t)n;
		}
	}
	tree_entries_free(w.v, w.n);
	if (r == 0 && s)
		r = blob_batch_commit(s, &w.batch, err);
	if (s)
		blob_batch_abort(s, &w.batch);
	if (r < 0)
		return r;
	/* The listing is a blob like any other: its hash is the tree's. */
	if (!s) {
		cdn_sha256_hex(listing ? listing : "", len, hash);
		return 0;
	}
	r = store_blob_put(s, listing ? listing : "", len, hash, err);
	return r < 0 ? cdn_err_wrap(err, "tree %s", w.root) : 0;
}

int store_tree_hash(const char *dir, const struct tree_limits *lim, char hash[STORE_HASH_HEX + 1],
		    struct cdn_err *err)
{
	return store_tree_import(NULL, dir, lim, hash, err);
}

int store_tree_listing(struct store *s, const char *hash, char **listing, size_t *len,
		       struct cdn_err *err)
{
	*listing = NULL;
	*len = 0;
	int r = hash_check(hash, "a tree hash (64 lowercase hex digits)", err);
	if (r < 0)
		return r;
	_cleanup_close_ int fd = -1;
	struct stat st;
	r = blob_open(s, hash, &fd, &st, err);
	if (r == -ENOENT)
		return cdn_err_set(err, ENOENT, "store: tree %s is not stored", hash);
	if (r < 0)
		return r;
	if (st.st_size > TREE_LISTING_MAX)
		return cdn_err_set(err, E2BIG, "store: tree %s: the listing is over %u bytes", hash,
				   TREE_LISTING_MAX);
	_cleanup_free_ char *buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return cdn_err_set(err, ENOMEM, "store: tree %s", hash);
	size_t got = 0;
	for (;;) {
		/* Read one byte past the size seen: a blob never grows. */
		ssize_t n = read_some(fd, buf + got, (size_t)st.st_size + 1 - got);
		if (n < 0)
			return cdn_err_set(err, (int)n, "store: read tree %s", hash);
		if (n == 0)
			break;
		got += (size_t)n;
		if (got > (size_t)st.st_size)
			return cdn_err_set(err, EIO, "store: tree %s changed while being read",
					   hash);
	}
	char actual[STORE_HASH_HEX + 1];
	cdn_sha256_hex(buf, got, actual);
	if (strcmp(actual, hash) != 0)
		return cdn_err_set(err, EIO, "store: tree %s: the listing does not match its hash "
				   "(damaged on disk)", hash);
	buf[got] = '\0';
	*len = got;
	*listing = cdn_steal(&buf);
	return 0;
}

/* One line of a listing read back, pointing into the (modified) buffer. */
struct listing_entry {
	const char *path;
	bool dir;
	const char *target; /* a symlink's, NUL-terminated in the buffer; or NULL */
	unsigned mode;
	uint64_t size;
	const char *hash; /* NUL-terminated in the buffer */
};

static bool parse_size(const char *p, size_t n, uint64_t *out)
{
	/* Canonical decimal only: "0" or no leading zero, so one tree has one
	 * listing. */
	if (n == 0 || n > TREE_SIZE_DIGITS || (n > 1 && p[0] == '0'))
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		unsigned dgt = (unsigned)(p[i] - '0');
		if (v > (UINT64_MAX - dgt) / 10)
			return false;
		v = v * 10 + dgt;
	}
	*out = v;
	return true;
}

/* Parses one line (without its '\n', NUL-terminated in place). */
static bool parse_line(char *line, size_t len, struct listing_entry *e)
{
	memset(e, 0, sizeof(*e));
	if (len > 4 && !memcmp(line, "dir ", 4)) {
		e->dir = true;
		e->path = line + 4;
		return tree_path_ok(e->path, len - 4);
	}
	/* "link <target length> <target> <path>": the length, because a
	 * target and a path may both hold spaces. */
	if (len > 5 && !memcmp(line, "link ", 5)) {
		char *num = line + 5;
		char *sp = memchr(num, ' ', len - 5);
		uint64_t tl;
		if (!sp || !parse_size(num, (size_t)(sp - num), &tl) || tl == 0 ||
		    tl > TREE_PATH_MAX)
			return false;
		char *t = sp + 1;
		size_t left = len - (size_t)(t - line);
		if (left < tl + 2 || t[tl] != ' ')
			return false;
		t[tl] = '\0';
		if (!tree_target_ok(t, (size_t)tl))
			return false;
		e->target = t;
		e->path = t + tl + 1;
		return tree_path_ok(e->path, left - (size_t)tl - 1);
	}
	/* "<mode> <hash> <size> <path>" */
	if (len < 5 + STORE_HASH_HEX + 1 + 1 + 1 + 1)
		return false;
	if (!memcmp(line, "0644 ", 5))
		e->mode = 0644;
	else if (!memcmp(line, "0755 ", 5))
		e->mode = 0755;
	else
		return false;
	char *h = line + 5;
	if (h[STORE_HASH_HEX] != ' ')
		return false;
	h[STORE_HASH_HEX] = '\0';
	if (!cdn_sha256_hex_str_ok(h))
		return false;
	e->hash = h;
	char *sz = h + STORE_HASH_HEX + 1;
	char *sp = memchr(sz, ' ', len - (size_t)(sz - line));
	if (!sp || !parse_size(sz, (size_t)(sp - sz), &e->size))
		return false;
	e->path = sp + 1;
	return tree_path_ok(e->path, len - (size_t)(e->path - line));
}

static bool listing_has_dir(const struct listing_entry *v, size_t n, const char *path, size_t len)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strncmp(v[mid].path, path, len);
		if (c == 0 && v[mid].path[len] != '\0')
			c = 1;
		if (c == 0)
			return v[mid].dir;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

static int listing_links_check(const struct listing_entry *e, size_t n, const char *hash,
			       struct cdn_err *err)
{
	size_t links = 0;
	for (size_t i = 0; i < n; i++)
		links += e[i].target != NULL;
	if (!links)
		return 0;
	_cleanup_free_ struct tree_node *v = calloc(n, sizeof(*v));
	if (!v)
		return cdn_err_set(err, ENOMEM, "store: tree %s", hash);
	for (size_t i = 0; i < n; i++)
		v[i] = (struct tree_node){ .path = e[i].path,
					   .kind = e[i].dir ? 'd' : e[i].target ? 'l' : 'f',
					   .target = e[i].target };
	const char *bad = NULL, *why = NULL;
	if (tree_links_check(v, n, &bad, &why) == 0)
		return 0;
	char shown[SHOWN_MAX];
	cdn_printable_str(shown, sizeof(shown), bad, 0);
	return cdn_err_set(err, EIO, "store: tree %s: the listing's symlink %s: %s", hash, shown,
			   why);
}

/* Splits a listing into entries, checking every rule the writer follows:
 * the checkout below trusts nothing that was not checked here. */
static int listing_parse(char *buf, size_t len, struct listing_entry **out, size_t *n,
			 const char *hash, struct cdn_err *err)
{
	size_t lines = 0;
	for (size_t i = 0; i < len; i++)
		lines += buf[i] == '\n';
	if (len && buf[len - 1] != '\n')
		return cdn_err_set(err, EIO, "store: tree %s: the listing does not end with a "
				   "newline", hash);
	struct listing_entry *v = calloc(lines ? lines : 1, sizeof(*v));
	if (!v)
		return cdn_err_set(err, ENOMEM, "store: tree %s", hash);
	size_t count = 0;
	char *p = buf;
	while (p < buf + len) {
		char *nl = memchr(p, '\n', (size_t)(buf + len - p));
		*nl = '\0';
		struct listing_entry *e = &v[count];
		bool ok = parse_line(p, (size_t)(nl - p), e);
		/* Sorted strictly: no duplicates, one order. */
		if (ok && count && strcmp(v[count - 1].path, e->path) >= 0)
			ok = false;
		const char *slash = ok ? strrchr(e->path, '/') : NULL;
		if (ok && slash && !listing_has_dir(v, count, e->path, (size_t)(slash - e->path)))
			ok = false;
		if (!ok) {
			free(v);
			return cdn_err_set(err, EIO, "store: tree %s: line %zu of the listing is "
					   "malformed", hash, count + 1);
		}
		count++;
		p = nl + 1;
	}
	/* The links of a listing read back are held to the import's rules:
	 * a listing written by hand (or damaged) must not make a checkout
	 * whose links lead out of it. */
	int r = listing_links_check(v, count, hash, err);
	if (r < 0) {
		free(v);
		return r;
	}
	*out = v;
	*n = count;
	return 0;
}

/* Opens the directory that holds path inside root; *base is its last name. */
static int open_parent_in(int root, const char *path, int *out, const char **base)
{
	char buf[TREE_PATH_MAX + 1];
	snprintf(buf, sizeof(buf), "%s", path);
	const char *slash = strrchr(path, '/');
	*base = slash ? slash + 1 : path;
	int fd = openat(root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (!slash) {
		*out = fd;
		return 0;
	}
	buf[slash - path] = '\0';
	char *save = NULL;
	for (char *c = strtok_r(buf, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		int next = openat(fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int e = errno;
		close(fd);
		if (next < 0)
			return -e;
		fd = next;
	}
	*out = fd;
	return 0;
}

static int checkout_fill(struct store *s, int root, const struct listing_entry *v, size_t n,
			 const char *hash, struct cdn_err *err)
{
	/* The directory of the last entry stays open: entries of one
	 * directory mostly come together, and opening each parent again from
	 * the root cost most of a large checkout's system calls. */
	_cleanup_close_ int pfd = -1;
	size_t plen = 0;
	const char *ppath = NULL;
	for (size_t i = 0; i < n; i++) {
		const struct listing_entry *e = &v[i];
		char shown[SHOWN_MAX];
		cdn_printable_str(shown, sizeof(shown), e->path, 0);
		const char *slash = strrchr(e->path, '/');
		size_t len = slash ? (size_t)(slash - e->path) : 0;
		const char *base = slash ? slash + 1 : e->path;
		if (pfd < 0 || len != plen || (len && memcmp(ppath, e->path, len) != 0)) {
			if (pfd >= 0)
				close(pfd);
			pfd = -1;
			int r = open_parent_in(root, e->path, &pfd, &base);
			if (r < 0)
				return cdn_err_set(err, r, "store: checkout %s: %s", hash, shown);
			ppath = e->path;
			plen = len;
		}
		int r;
		if (e->dir) {
			/* 0755 leaves the owner able to fill it; the mode is set
			 * again because mkdir obeys the umask. */
			if (mkdirat(pfd, base, CHECKOUT_DIR_MODE) < 0 ||
			    fchmodat(pfd, base, CHECKOUT_DIR_MODE, 0) < 0)
				return cdn_err_set(err, errno, "store: checkout %s: mkdir %s", hash,
						   shown);
			continue;
		}
		if (e->target) {
			/* The link as it was, relative: checked to resolve inside
			 * the tree, so it does wherever the checkout is bound. */
			if (symlinkat(e->target, pfd, base) < 0)
				return cdn_err_set(err, errno, "store: checkout %s: symlink %s",
						   hash, shown);
			continue;
		}
		int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
		_cleanup_close_ int out = openat(pfd, base, flags, 0600);
		if (out < 0)
			return cdn_err_set(err, errno, "store: checkout %s: create %s", hash,
					   shown);
		if ((r = blob_copy_checked(s, e->hash, out, err)) < 0)
			return cdn_err_wrap(err, "checkout %s: %s", hash, shown);
		struct stat st;
		if (fstat(out, &st) < 0 || (uint64_t)st.st_size != e->size)
			return cdn_err_set(err, EIO, "store: checkout %s: %s: the blob's size is "
					   "not the listing's", hash, shown);
		/* Read-only copies: a sandbox bind of the checkout must not be
		 * able to change what the next run gets. */
		if (fchmod(out, e->mode == 0755 ? 0555 : 0444) < 0)
			return cdn_err_set(err, errno, "store: checkout %s: chmod %s", hash, shown);
	}
	return 0;
}

int store_tree_file_read(struct store *s, const char *hash, const char *path, size_t max,
			 char **out, size_t *len, struct cdn_err *err)
{
	*out = NULL;
	*len = 0;
	_cleanup_free_ char *listing = NULL;
	size_t n;
	int r = store_tree_listing(s, hash, &listing, &n, err);
	if (r < 0)
		return r;
	_cleanup_free_ struct listing_entry *v = NULL;
	size_t count = 0;
	if ((r = listing_parse(listing, n, &v, &count, hash, err)) < 0)
		return r;
	const struct listing_entry *e = NULL;
	for (size_t i = 0; i < count && !e; i++)
		if (strcmp(v[i].path, path) == 0)
			e = &v[i];
	char shown[SHOWN_MAX];
	cdn_printable_str(shown, sizeof(shown), path, 0);
	/* A link is not followed, even inside the tree: the caller asked for
	 * the file at this path, as an O_NOFOLLOW open of a checkout would. */
	if (!e || e->dir || e->target)
		return cdn_err_set(err, !e ? ENOENT : e->dir ? EISDIR : ELOOP,
				   "store: tree %s: %s is %s", hash, shown,
				   !e ? "not in it" : e->dir ? "a directory" : "a symlink");
	if (e->size > max)
		return cdn_err_set(err, EFBIG, "store: tree %s: %s: more than %zu bytes", hash,
				   shown, max);
	_cleanup_close_ int fd = -1;
	struct stat st;
	if ((r = blob_open(s, e->hash, &fd, &st, err)) < 0)
		return cdn_err_wrap(err, "tree %s: %s", hash, shown);
	r = cdn_read_fd(fd, max, out, len);
	if (r < 0)
		return cdn_err_set(err, -r, "store: tree %s: read %s", hash, shown);
	/* Checked as a checkout's copy is: a blob damaged on disk is an
	 * error, never other bytes handed on. */
	char got[STORE_HASH_HEX + 1];
	cdn_sha256_hex(*out, *len, got);
	if (strcmp(got, e->hash) != 0) {
		free(*out);
		*out = NULL;
		return cdn_err_set(err, EIO, "store: blob %s/blobs/%.2s/%s does not match its hash "
				   "(damaged on disk)", s->dir, e->hash, e->hash + 2);
	}
	if (*len != e->size) {
		free(*out);
		*out = NULL;
		return cdn_err_set(err, EIO, "store: tree %s: %s: the blob's size is not the "
				   "listing's", hash, shown);
	}
	return 0;
}

int store_tree_checkout(struct store *s, const char *hash, char *path, size_t cap,
			struct cdn_err *err)
{
	int r = hash_check(hash, "a tree hash (64 lowercase hex digits)", err);
	if (r < 0)
		return r;
	int n = snprintf(path, cap, "%s/trees/%s", s->dir, hash);
	if (n < 0 || (size_t)n >= cap)
		return cdn_err_set(err, ENAMETOOLONG, "store: checkout %s", hash);
	struct stat st;
	/* Checkouts appear only whole (rename of a synced directory), so one
	 * that exists is complete. */
	if (fstatat(s->trees_fd, hash, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
		return 0;

	_cleanup_free_ char *listing = NULL;
	size_t len;
	r = store_tree_listing(s, hash, &listing, &len, err);
	if (r < 0)
		return r;
	_cleanup_free_ struct listing_entry *v = NULL;
	size_t count = 0;
	if ((r = listing_parse(listing, len, &v, &count, hash, err)) < 0)
		return r;

	char name[TMP_NAME_MAX];
	if ((r = tmp_name("c", name, sizeof(name))) < 0)
		return cdn_err_set(err, r, "store: checkout %s", hash);
	if (mkdirat(s->tmp_fd, name, 0700) < 0)
		return cdn_err_set(err, errno, "store: checkout %s: mkdir %s/tmp/%s", hash, s->dir,
				   name);
	_cleanup_close_ int root =
		openat(s->tmp_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (root < 0)
		r = cdn_err_set(err, errno, "store: checkout %s: open %s/tmp/%s", hash, s->dir,
				name);
	if (r == 0)
		r = checkout_fill(s, root, v, count, hash, err);
	if (r == 0 && fchmod(root, CHECKOUT_DIR_MODE) < 0)
		r = cdn_err_set(err, errno, "store: checkout %s: chmod", hash);
	/* One syncfs rather than an fsync per file: everything written must be
	 * on disk before the rename makes the checkout visible. */
	if (r == 0 && syncfs(root) < 0)
		r = cdn_err_set(err, errno, "store: checkout %s: sync", hash);
	if (r == 0 && renameat(s->tmp_fd, name, s->trees_fd, hash) < 0) {
		/* Another process made it first: theirs is as good as ours. */
		if (errno != EEXIST && errno != ENOTEMPTY)
			r = cdn_err_set(err, errno, "store: checkout %s: rename into %s/trees",
					hash, s->dir);
	} else if (r == 0) {
		name[0] = '\0';
		if (fsync(s->trees_fd) < 0)
			r = cdn_err_set(err, errno, "store: checkout %s: fsync %s/trees", hash,
					s->dir);
	}
	if (name[0])
		(void)rm_rf_at(s->tmp_fd, name, 0);
	return r;
}

int store_scratch_dir(struct store *s, char *path, size_t cap, int *fd, struct cdn_err *err)
{
	char name[TMP_NAME_MAX];
	int r = tmp_name("u", name, sizeof(name));
	if (r < 0)
		return cdn_err_set(err, r, "store: scratch directory");
	if ((size_t)snprintf(path, cap, "%s/tmp/%s", s->dir, name) >= cap)
		return cdn_err_set(err, ENAMETOOLONG, "store: scratch directory");
	if (mkdirat(s->tmp_fd, name, 0700) < 0)
		return cdn_err_set(err, errno, "store: mkdir %s", path);
	*fd = openat(s->tmp_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (*fd < 0) {
		r = cdn_err_set(err, errno, "store: open %s", path);
		(void)unlinkat(s->tmp_fd, name, AT_REMOVEDIR);
		return r;
	}
	return 0;
}

void store_scratch_remove(struct store *s, const char *path)
{
	/* Only a direct child of tmp/, by its name: never a path elsewhere. */
	const char *name = strrchr(path, '/');
	name = name ? name + 1 : path;
	if (strncmp(name, "u.", 2) == 0 && !strchr(name, '/'))
		(void)rm_rf_at(s->tmp_fd, name, 0);
}

/* ------------------------------------------------- checks shared with SQL */

const char *store_kind_name(enum store_kind kind)
{
	switch (kind) {
	case STORE_AGENT: return "agent";
	case STORE_CAPABILITY: return "capability";
	case STORE_ENV: return "env";
	}
	return NULL;
}

int store_item_check(const struct store_item *it, struct cdn_err *err)
{
	const char *kind = store_kind_name(it->kind);
	if (!kind)
		return cdn_err_msg(err, EINVAL, "store: unknown item kind %d", (int)it->kind);
	int r = store_name_check("workspace", it->workspace, err);
	if (r < 0 || (r = store_name_check(kind, it->name, err)) < 0)
		return r;
	if (!cdn_sha256_hex_str_ok(it->hash))
		return cdn_err_msg(err, EINVAL, "store: %s %s: the content hash is not a sha256",
				   kind, it->name);
	bool want_tree = it->kind != STORE_ENV;
	if (want_tree && !cdn_sha256_hex_str_ok(it->tree))
		return cdn_err_msg(err, EINVAL, "store: %s %s: the tree is not a sha256", kind,
				   it->name);
	if (!want_tree && it->tree[0])
		return cdn_err_msg(err, EINVAL, "store: env %s: an env has no tree", it->name);
	if (it->doc && strnlen(it->doc, STORE_MAX_MANIFEST + 1) > STORE_MAX_MANIFEST)
		return cdn_err_set(err, E2BIG, "store: %s %s: the document is over %d bytes", kind,
				   it->name, STORE_MAX_MANIFEST);
	return 0;
}

int store_run_id_check(const char *id, struct cdn_err *err)
{
	char shown[STORE_RUN_ID_MAX + 8];
	cdn_printable_str(shown, sizeof(shown), id, 0);
	if (!store_run_id_ok(id))
		return cdn_err_msg(err, EINVAL,
				   "store: run id \"%s\": use letters, digits, '.', '_' and '-', "
				   "starting with a letter or digit, at most %d",
				   shown, STORE_RUN_ID_MAX);
	return 0;
}

static bool bounded(const char *field, size_t size)
{
	return memchr(field, '\0', size) != NULL;
}

int store_run_check(const struct store_run *r, struct cdn_err *err)
{
	int e = store_run_id_check(r->id, err);
	if (e < 0 || (e = store_name_check("workspace", r->workspace, err)) < 0 ||
	    (e = store_name_check("agent", r->agent, err)) < 0)
		return e;
	if (r->agent_hash[0] && !cdn_sha256_hex_str_ok(r->agent_hash))
		return cdn_err_msg(err, EINVAL, "store: run %s: the agent hash is not a sha256",
				   r->id);
	if ((unsigned)r->status > RUN_CANCELLED)
		return cdn_err_msg(err, EINVAL, "store: run %s: unknown status %d", r->id,
				   (int)r->status);
	if (!bounded(r->caller, sizeof(r->caller)) ||
	    !bounded(r->supervisor_boot, sizeof(r->supervisor_boot)) ||
	    !bounded(r->error, sizeof(r->error)))
		return cdn_err_msg(err, EINVAL, "store: run %s: a text field is not terminated",
				   r->id);
	if (r->input_json && strnlen(r->input_json, STORE_MAX_RUN_JSON + 1) > STORE_MAX_RUN_JSON)
		return cdn_err_set(err, E2BIG, "store: run %s: the input is over %d bytes", r->id,
				   STORE_MAX_RUN_JSON);
	if (r->result_json &&
	    strnlen(r->result_json, STORE_MAX_RUN_JSON + 1) > STORE_MAX_RUN_JSON)
		return cdn_err_set(err, E2BIG, "store: run %s: the result is over %d bytes", r->id,
				   STORE_MAX_RUN_JSON);
	return 0;
}

/* ------------------------------------------------------------------- runs */

static const char *const status_names[] = {
	[RUN_CREATED] = "created",   [RUN_RUNNING] = "running", [RUN_SUCCEEDED] = "succeeded",
	[RUN_FAILED] = "failed",     [RUN_TIMEOUT] = "timeout", [RUN_OOM] = "oom",
	[RUN_KILLED] = "killed",     [RUN_ERROR] = "error",	[RUN_CANCELLED] = "cancelled",
};

const char *store_run_status_name(enum store_run_status st)
{
	return (unsigned)st < CDN_ARRAY_SIZE(status_names) ? status_names[st] : "unknown";
}

int store_run_status_parse(const char *name, enum store_run_status *st)
{
	for (size_t i = 0; name && i < CDN_ARRAY_SIZE(status_names); i++)
		if (!strcmp(name, status_names[i])) {
			*st = (enum store_run_status)i;
			return 0;
		}
	return -EINVAL;
}

bool store_run_status_final(enum store_run_status st)
{
	return st != RUN_CREATED && st != RUN_RUNNING;
}
