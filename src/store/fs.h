/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to the store's file side (store.c, blobs.c, trees.c,
 * checkout.c): the bounds, atomic files, blob internals and tree rules
 * they share. Nothing here is SQL: the backend seam is internal.h.
 */
#ifndef CORDON_STORE_FS_H
#define CORDON_STORE_FS_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "base/cleanup.h"
#include "store/internal.h"

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
/* Bytes compared or copied resolving all of a tree's links: a node_modules
 * with 10,000 links needs a few tens of millions. */
#define TREE_LINK_WORK_MAX (1ull << 28)
#define RM_DEPTH_MAX 256
#define OPEN_LOCK_WAIT_MS 10000 /* a store_open waits this long for another */
#define OPEN_LOCK_STEP_MS 10
#define SHOWN_MAX 160 /* bytes of a path or name quoted in a message */

/* ------------------------------------------------------------- helpers */

/* 0 when hash is a sha256 in hex; else EINVAL, quoting it as what it is not. */
int store_hash_check(const char *hash, const char *what, struct cdn_err *err);
/* read(2) retried on EINTR: bytes, 0 at the end, or -errno. */
ssize_t store_read_some(int fd, void *buf, size_t len);
/* The names in a directory, without "." and "..": -E2BIG past max. */
/* Removes name (a file or a whole directory) under dfd without following
 * symlinks, at any depth (depth is unused). Best effort: the first error
 * is returned, the rest goes on. */
int store_rm_rf_at(int dfd, const char *name, unsigned depth);
/* "<kind>.<pid>.<random>": a temp name whose writer can be told apart. */
int store_tmp_name(const char *kind, char *out, size_t cap);

/* -------------------------------------------------------- atomic files */

struct atomic_file {
	int fd;	       /* the temp file, O_RDWR */
	int tmp_dirfd; /* where it is: the store's tmp/ (borrowed) or dst_dirfd */
	int dst_dirfd; /* the target's directory (owned) */
	char tmpname[TMP_NAME_MAX];
	char base[NAME_MAX + 1];
	bool live; /* the temp file exists and goes unless committed */
};

#define ATOMIC_FILE_INIT { .fd = -1, .tmp_dirfd = -1, .dst_dirfd = -1 }

void store_atomic_release(struct atomic_file *af);
#define _cleanup_atomic_ _cleanup_(store_atomic_release)
/* A temp file for af->dst_dirfd (-1 when not known yet, as for a blob
 * before its hash): in tmp/, or beside the target on another file system. */
int store_atomic_begin(struct store *s, struct atomic_file *af, const char *shown,
		       struct cdn_err *err);
/* fchmod, fsync, rename into place, fsync of the directory. */
int store_atomic_commit(struct atomic_file *af, unsigned mode, const char *shown,
			struct cdn_err *err);
/* The target's directory (relative paths from the store) and base name. */
int store_open_target(struct store *s, const char *path, struct atomic_file *af,
		      struct cdn_err *err);

/* --------------------------------------------------------------- blobs */

/* Whether blob hex is stored (with that size, unless size < 0); if so its
 * mtime is set to now: writers call this before naming a stored blob
 * instead of storing it, and pruning spares a blob used recently. */
bool store_blob_present(struct store *s, const char *hex, int64_t size);
int store_blob_open(struct store *s, const char *hex, int *fd, struct stat *st,
		    struct cdn_err *err);
/* Copies a blob into out, checking that the bytes still hash to its name. */
int store_blob_copy_checked(struct store *s, const char *hex, int out, struct cdn_err *err);
/* Reads fd to its end into its sha256 and size, at most max bytes (E2BIG
 * past that); each chunk also to copy_fd when it is not -1. */
int store_hash_stream(const struct store *s, int fd, uint64_t max, int copy_fd,
		      char hex[STORE_HASH_HEX + 1], uint64_t *size, struct cdn_err *err);

/* Puts the finished temp file af, holding the bytes of hex, in its place
 * (kept when that blob is there already). */
int store_blob_commit(struct store *s, struct atomic_file *af, const char *hex, uint64_t size,
		      struct cdn_err *err);
/* remote.c: blob hex written to S3 (0 at once without S3), and fetched
 * from it into blobs/, checked against its name (-ENOENT when S3 has
 * none either). */
int store_remote_blob_push(struct store *s, const char *hex, struct cdn_err *err);
int store_remote_blob_fetch(struct store *s, const char *hex, struct cdn_err *err);
/* Whether S3 holds blob hex, with that sha256 stored (false without S3,
 * or when it cannot be asked). */
bool store_remote_blob_known(struct store *s, const char *hex);

/* A tree's blobs, made durable together (blobs.c says how). */
struct blob_staged {
	char tmp[TMP_NAME_MAX]; /* in tmp/; "" once renamed or removed */
	char hex[STORE_HASH_HEX + 1];
	uint64_t size;
};

struct blob_batch {
	struct blob_staged *v;
	size_t n, cap;
	int mode; /* 0 unknown, 1 batched, -1 one at a time (tmp/ and blobs/ differ) */
	/* With S3: the blobs found stored here already, which S3 may still
	 * lack (an earlier write-through failed), pushed at commit unless
	 * skip_present says S3 has them all. */
	char (*present)[STORE_HASH_HEX + 1];
	size_t npresent, cappresent;
	bool skip_present;
};

/* store_blob_put_fd, but only staged until store_blob_batch_commit. */
int store_blob_batch_put_fd(struct store *s, struct blob_batch *b, int fd, uint64_t max,
			    char hex[STORE_HASH_HEX + 1], uint64_t *size, struct cdn_err *err);
/* One flush, the renames, one flush; then the batch is empty. */
int store_blob_batch_commit(struct store *s, struct blob_batch *b, struct cdn_err *err);
/* Removes what is still staged; the batch is empty after. */
void store_blob_batch_abort(struct store *s, struct blob_batch *b);

/* --------------------------------------------------------------- trees */

/* A relative '/'-separated path of valid names, as a listing holds. */
bool store_tree_path_ok(const char *path, size_t len);
/* A symlink's target as a tree may hold it (its text, not where it leads). */
bool store_tree_target_ok(const char *t, size_t len);

/* An entry as the link check sees it, whether walked or read back. */
struct tree_node {
	const char *path;
	char kind; /* 'f' file, 'd' directory, 'l' symlink */
	const char *target;
};

/* Every link of v (sorted by path) resolved inside the tree; the first
 * refused is named in *bad, and *why says why (-EINVAL). */
int store_tree_links_check(const struct tree_node *v, size_t n, const char **bad,
			   const char **why);

#endif
