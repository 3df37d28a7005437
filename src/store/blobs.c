/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Content-addressed blobs: blobs/ab/cdef..., named by their sha256,
 * immutable (0444), written through a temp file and renamed into place,
 * and checked against their name whenever they are copied out
 * (docs/state.md, Blobs).
 */
#define _GNU_SOURCE
#include "store/fs.h"

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


/* ------------------------------------------------------------------ blobs */

/* "ab/cdef...": the blob's path under blobs/. */
static void blob_rel(const char *hex, char out[STORE_HASH_HEX + 2])
{
	out[0] = hex[0];
	out[1] = hex[1];
	out[2] = '/';
	memcpy(out + 3, hex + 2, STORE_HASH_HEX - 2 + 1);
}

bool store_blob_present(struct store *s, const char *hex, int64_t size)
{
	char rel[STORE_HASH_HEX + 2];
	struct stat st;
	blob_rel(hex, rel);
	if (fstatat(s->blobs_fd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode) ||
	    (size >= 0 && st.st_size != size))
		return false;
	/* The caller is about to name this blob instead of storing it: mark
	 * it used, so that pruning (prune.c) spares it. Gone meanwhile (pruned
	 * just now): not present, the caller stores it again. */
	if (utimensat(s->blobs_fd, rel, NULL, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT)
		return false;
	return true;
}

/* Puts a finished temp file holding the bytes of hex in its place. */
int store_blob_commit(struct store *s, struct atomic_file *af, const char *hex, uint64_t size,
		      struct cdn_err *err)
{
	/* Content addressing: a blob already there with this size holds these
	 * bytes (it was synced before its rename), so this copy is dropped.
	 * One of another size is damaged, and is replaced. */
	if (store_blob_present(s, hex, (int64_t)size)) {
		store_atomic_release(af);
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
	return store_atomic_commit(af, BLOB_MODE, shown, err);
}

int store_blob_put(struct store *s, const void *data, size_t len, char hex[STORE_HASH_HEX + 1],
		   struct cdn_err *err)
{
	cdn_sha256_hex(data, len, hex);
	/* Stored here already; with S3, the write-through is checked again
	 * (a HEAD): an earlier one may have failed after the local write. */
	if (store_blob_present(s, hex, (int64_t)len))
		return store_remote_blob_push(s, hex, err);
	_cleanup_atomic_ struct atomic_file af = ATOMIC_FILE_INIT;
	int r = store_atomic_begin(s, &af, "a blob", err);
	if (r < 0)
		return r;
	if ((r = cdn_write_all(af.fd, data, len)) < 0)
		return cdn_err_set(err, r, "store: write a blob in %s/tmp", s->dir);
	if ((r = store_blob_commit(s, &af, hex, len, err)) < 0)
		return r;
	return store_remote_blob_push(s, hex, err);
}

/*
 * Reads fd to its end into its sha256 and size, at most max bytes (E2BIG
 * past that: one byte more is read to know). Each chunk also goes to
 * copy_fd when that is not -1: a blob being stored (s names its place in
 * a message then).
 */
int store_hash_stream(const struct store *s, int fd, uint64_t max, int copy_fd,
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
		ssize_t n = store_read_some(fd, buf, want);
		if (n < 0)
			return cdn_err_set(err, (int)n,
					   copy ? "store: read into a blob" : "store: read");
		if (n == 0)
			break;
		total += (uint64_t)n;
		if (total > max)
			return cdn_err_msg(err, E2BIG, "store: more than %llu bytes",
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
	int r = store_atomic_begin(s, &af, "a blob", err);
	if (r < 0)
		return r;
	uint64_t total = 0;
	if ((r = store_hash_stream(s, fd, max, af.fd, hex, &total, err)) < 0)
		return r;
	if (size)
		*size = total;
	if ((r = store_blob_commit(s, &af, hex, total, err)) < 0)
		return r;
	return store_remote_blob_push(s, hex, err);
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

void store_blob_batch_abort(struct store *s, struct blob_batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		if (b->v[i].tmp[0])
			(void)unlinkat(s->tmp_fd, b->v[i].tmp, 0);
	free(b->v);
	free(b->present);
	*b = (struct blob_batch){ 0 };
}

/* store_blob_put_fd, but the blob is only staged until store_blob_batch_commit. */
int store_blob_batch_put_fd(struct store *s, struct blob_batch *b, int fd, uint64_t max,
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
	int r = store_atomic_begin(s, &af, "a blob", err);
	if (r < 0)
		return r;
	if ((r = store_hash_stream(s, fd, max, af.fd, hex, size, err)) < 0)
		return r;
	if (store_blob_present(s, hex, (int64_t)*size)) {
		/* The temp file goes with af; S3 is asked at commit. */
		if (!s->remote)
			return 0;
		if (b->npresent == b->cappresent) {
			size_t nc = b->cappresent ? b->cappresent * 2 : 64;
			void *nv = realloc(b->present, nc * sizeof(*b->present));
			if (!nv)
				return cdn_err_set(err, ENOMEM, "store: blob");
			b->present = nv;
			b->cappresent = nc;
		}
		memcpy(b->present[b->npresent++], hex, STORE_HASH_HEX + 1);
		return 0;
	}
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

int store_blob_batch_commit(struct store *s, struct blob_batch *b, struct cdn_err *err)
{
	int r = 0;
	if (b->n && syncfs(s->tmp_fd) < 0)
		r = cdn_err_set(err, errno, "store: sync %s/tmp", s->dir);
	for (size_t i = 0; r == 0 && i < b->n; i++) {
		struct blob_staged *e = &b->v[i];
		/* Present already (twice in this tree, or stored meanwhile by
		 * another process): this copy is not needed. */
		if (store_blob_present(s, e->hex, (int64_t)e->size)) {
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
	/* Written through to S3 once durable here, before the listing that
	 * names them is stored (and pushed) itself. */
	for (size_t i = 0; r == 0 && i < b->n; i++)
		r = store_remote_blob_push(s, b->v[i].hex, err);
	for (size_t i = 0; r == 0 && !b->skip_present && i < b->npresent; i++)
		r = store_remote_blob_push(s, b->present[i], err);
	store_blob_batch_abort(s, b);
	return r;
}

int store_blob_path(struct store *s, const char *hex, char *out, size_t cap, struct cdn_err *err)
{
	int r = store_hash_check(hex, "a sha256 (64 lowercase hex)", err);
	if (r < 0)
		return r;
	if (!store_blob_present(s, hex, -1) &&
	    (!s->remote || (r = store_remote_blob_fetch(s, hex, err)) < 0))
		return s->remote ? r : cdn_err_set(err, ENOENT, "store: blob %s", hex);
	int n = snprintf(out, cap, "%s/blobs/%.2s/%s", s->dir, hex, hex + 2);
	if (n < 0 || (size_t)n >= cap)
		return cdn_err_set(err, ENAMETOOLONG, "store: blob %s", hex);
	return 0;
}

int store_blob_open(struct store *s, const char *hex, int *fd, struct stat *st,
		     struct cdn_err *err)
{
	char rel[STORE_HASH_HEX + 2];
	blob_rel(hex, rel);
	*fd = openat(s->blobs_fd, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	/* Not here: fetched from S3 (checked against its name) when the
	 * state directory is a cache of it. */
	if (*fd < 0 && errno == ENOENT && s->remote) {
		int r = store_remote_blob_fetch(s, hex, err);
		if (r < 0)
			return r;
		*fd = openat(s->blobs_fd, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	}
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
int store_blob_copy_checked(struct store *s, const char *hex, int out, struct cdn_err *err)
{
	_cleanup_close_ int in = -1;
	struct stat st;
	int r = store_blob_open(s, hex, &in, &st, err);
	if (r < 0)
		return r;
	_cleanup_free_ unsigned char *buf = malloc(IO_CHUNK);
	if (!buf)
		return cdn_err_set(err, ENOMEM, "store: blob %s", hex);
	crypto_hash_sha256_state hs;
	crypto_hash_sha256_init(&hs);
	for (;;) {
		ssize_t n = store_read_some(in, buf, IO_CHUNK);
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
		return cdn_err_msg(err, EIO,
				   "store: blob %s/blobs/%.2s/%s does not match its hash (damaged "
				   "on disk)",
				   s->dir, hex, hex + 2);
	return 0;
}

int store_blob_export(struct store *s, const char *hex, const char *path, unsigned mode,
		      struct cdn_err *err)
{
	int r = store_hash_check(hex, "a sha256 (64 lowercase hex)", err);
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
	r = store_open_target(s, path, &af, err);
	if (r < 0 || (r = store_atomic_begin(s, &af, shown, err)) < 0 ||
	    (r = store_blob_copy_checked(s, hex, af.fd, err)) < 0)
		return r;
	return store_atomic_commit(&af, mode, shown, err);
}

