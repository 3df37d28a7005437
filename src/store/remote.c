/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The blob backend seam (store.h, "Blobs on S3"): with an S3 location
 * attached, the state directory is a cache. Blobs are written through
 * (blobs.c calls store_remote_blob_push once a blob is durable here) and
 * fetched on a miss (store_blob_open, store_blob_path); a finished run's
 * files are pushed with an index that names each with its sha256, and
 * pulled back whole by a reader that does not have them. Every byte read
 * from S3 is checked before it is used: a blob against its name, a run
 * file against the index, the index against the sha256 stored with it.
 * Nothing here is called by other modules but through store.h.
 */
#define _GNU_SOURCE
#include "store/fs.h"
#include "store/s3.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/file.h"
#include "base/hash.h"

#define REMOTE_BLOB_MAX	     (1ull << 30)   /* bytes of one blob fetched */
#define REMOTE_RUN_FILE_MAX  (256ull << 20) /* bytes of one run file fetched */
#define REMOTE_INDEX_MAX     (1u << 20)	    /* bytes of a run's index */
#define REMOTE_RUN_FILES_MAX 256	    /* files of one run */
#define REMOTE_INDEX	     "index.json"
#define RUN_FILE_MODE	     0600

const char *store_default_blobs(void)
{
	const char *v = getenv("CORDON_BLOBS");
	return v && *v ? v : NULL;
}

int store_blobs_attach(struct store *s, const char *url, struct cdn_err *err)
{
	if (!url || !*url)
		return 0;
	struct s3 *c = NULL;
	int r = s3_open(url, &c, err);
	if (r < 0)
		return cdn_err_wrap(err, "blobs");
	s3_close(s->remote);
	s->remote = c;
	return 0;
}

int store_blobs_check(struct store *s, struct cdn_err *err)
{
	return s->remote ? s3_check(s->remote, err) : 0;
}

const char *store_blobs_shown(const struct store *s)
{
	return s->remote ? s3_shown(s->remote) : NULL;
}

static int blob_key(struct store *s, const char *hex, char key[S3_KEY_MAX + 1], struct cdn_err *err)
{
	char rel[STORE_HASH_HEX + 16];
	snprintf(rel, sizeof(rel), "blobs/%.2s/%s", hex, hex + 2);
	return s3_key(s3_loc(s->remote), rel, key, S3_KEY_MAX + 1, err);
}

int store_remote_blob_push(struct store *s, const char *hex, struct cdn_err *err)
{
	if (!s->remote)
		return 0;
	char key[S3_KEY_MAX + 1], rel[STORE_HASH_HEX + 2];
	int r = blob_key(s, hex, key, err);
	if (r < 0)
		return r;
	snprintf(rel, sizeof(rel), "%.2s/%s", hex, hex + 2);
	_cleanup_close_ int fd = openat(s->blobs_fd, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return cdn_err_set(err, errno, "store: blob %s", hex);
	/* Content-addressed: the file must hash to its name, and one there
	 * already with that sha256 is kept. */
	return s3_put_fd(s->remote, key, fd, hex, S3_PUT_REPLACE, NULL, err);
}

bool store_remote_blob_known(struct store *s, const char *hex)
{
	char key[S3_KEY_MAX + 1];
	struct s3_head h;
	return s->remote && blob_key(s, hex, key, NULL) == 0 &&
	       s3_head(s->remote, key, &h, NULL) == 0 && !strcmp(h.sha256, hex);
}

int store_remote_blob_fetch(struct store *s, const char *hex, struct cdn_err *err)
{
	if (!s->remote)
		return cdn_err_set(err, ENOENT, "store: blob %s", hex);
	char key[S3_KEY_MAX + 1];
	int r = blob_key(s, hex, key, err);
	if (r < 0)
		return r;
	_cleanup_atomic_ struct atomic_file af = ATOMIC_FILE_INIT;
	if ((r = store_atomic_begin(s, &af, "a blob", err)) < 0)
		return r;
	if ((r = s3_get_fd(s->remote, key, af.fd, REMOTE_BLOB_MAX, hex, NULL, err)) < 0)
		return r;
	struct stat st;
	if (fstat(af.fd, &st) < 0)
		return cdn_err_set(err, errno, "store: blob %s", hex);
	return store_blob_commit(s, &af, hex, (uint64_t)st.st_size, err);
}

/* ------------------------------------------------------------- run files */

/* A run file's name as the index may hold it: "NAME" or "artifacts/NAME",
 * each of [A-Za-z0-9._-] and not starting with '.', so that a tampered
 * index cannot name a path outside runs/<id>/. */
static bool run_name_ok(const char *name)
{
	const char *base = name;
	if (!strncmp(name, "artifacts/", 10))
		base = name + 10;
	size_t n = strlen(base);
	if (n == 0 || n > 255 || base[0] == '.')
		return false;
	return strspn(base, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
	       n;
}

static int run_key(struct store *s, const char *id, const char *name, char key[S3_KEY_MAX + 1],
		   struct cdn_err *err)
{
	char rel[STORE_RUN_ID_MAX + 300];
	snprintf(rel, sizeof(rel), "runs/%s/%s", id, name);
	return s3_key(s3_loc(s->remote), rel, key, S3_KEY_MAX + 1, err);
}

/* Puts runs/<id>/<name> (an open fd) and adds it to the index. */
static int push_one(struct store *s, const char *id, const char *name, int fd, json_t *files,
		    struct cdn_err *err)
{
	char key[S3_KEY_MAX + 1], hex[STORE_HASH_HEX + 1];
	struct stat st;
	int r = run_key(s, id, name, key, err);
	if (r < 0)
		return r;
	if (fstat(fd, &st) < 0 || lseek(fd, 0, SEEK_SET) < 0 || cdn_sha256_fd(fd, hex) < 0)
		return cdn_err_set(err, errno, "store: run %s: read %s", id, name);
	if ((r = s3_put_fd(s->remote, key, fd, hex, S3_PUT_REPLACE, NULL, err)) < 0)
		return r;
	json_array_append_new(files, json_pack("{s:s, s:s, s:I}", "name", name, "sha256", hex,
					       "size", (json_int_t)st.st_size));
	return 0;
}

/* The regular files of dfd (prefix "" or "artifacts/"), in name order;
 * a directory named artifacts is walked once. */
static int push_dir(struct store *s, const char *id, int dfd, const char *prefix, json_t *files,
		    struct cdn_err *err)
{
	char **names = NULL;
	size_t n = 0;
	bool more = false;
	int r = cdn_dir_names(dfd, REMOTE_RUN_FILES_MAX, &more, &names, &n);
	if (r < 0)
		return cdn_err_set(err, -r, "store: run %s: list its files", id);
	for (size_t i = 0; r == 0 && i < n; i++) {
		char name[300];
		snprintf(name, sizeof(name), "%s%s", prefix, names[i]);
		struct stat st;
		if (fstatat(dfd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISDIR(st.st_mode) && !prefix[0] && !strcmp(names[i], "artifacts")) {
			_cleanup_close_ int sub =
			    openat(dfd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0)
				r = push_dir(s, id, sub, "artifacts/", files, err);
			continue;
		}
		/* Sockets (the run's control socket) and anything not a plain
		 * file with a name a reader may take are not run files. */
		if (!S_ISREG(st.st_mode) || !run_name_ok(name))
			continue;
		_cleanup_close_ int fd = openat(dfd, names[i], O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			r = cdn_err_set(err, errno, "store: run %s: open %s", id, name);
		else
			r = push_one(s, id, name, fd, files, err);
	}
	cdn_names_free(names, n);
	if (r == 0 && more)
		r = cdn_err_msg(err, E2BIG, "store: run %s has more than %d files", id,
				REMOTE_RUN_FILES_MAX);
	return r;
}

int store_run_files_push(struct store *s, const char *id, struct cdn_err *err)
{
	if (!s->remote)
		return 0;
	char dir[PATH_MAX];
	int r = store_run_file(NULL, id, NULL, dir, sizeof(dir), err);
	if (r < 0)
		return r;
	_cleanup_close_ int dfd =
	    openat(s->dirfd, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return cdn_err_set(err, errno, "store: %s/%s", s->dir, dir);
	json_t *idx = json_pack("{s:s, s:[]}", "run_id", id, "files");
	if (!idx)
		return cdn_err_set(err, ENOMEM, "store: run %s", id);
	r = push_dir(s, id, dfd, "", json_object_get(idx, "files"), err);
	/* The index last: a reader that finds it finds every file it names. */
	char *text = r == 0 ? json_dumps(idx, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(idx);
	if (r < 0)
		return r;
	if (!text)
		return cdn_err_set(err, ENOMEM, "store: run %s: its index", id);
	_cleanup_atomic_ struct atomic_file af = ATOMIC_FILE_INIT;
	char key[S3_KEY_MAX + 1];
	if ((r = store_atomic_begin(s, &af, "a run's index", err)) == 0 &&
	    (r = cdn_write_all(af.fd, text, strlen(text))) < 0)
		r = cdn_err_set(err, r, "store: run %s: write its index", id);
	free(text);
	if (r == 0 && (r = run_key(s, id, REMOTE_INDEX, key, err)) == 0)
		r = s3_put_fd(s->remote, key, af.fd, NULL, S3_PUT_REPLACE, NULL, err);
	return r;
}

int store_run_files_drop(struct store *s, const char *id, struct cdn_err *err)
{
	if (!s->remote)
		return 0;
	int r = store_run_id_check(id, err);
	if (r < 0)
		return r;
	_cleanup_close_ int runs =
	    openat(s->dirfd, "runs", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (runs < 0)
		return errno == ENOENT ? 0 : cdn_err_set(err, errno, "store: %s/runs", s->dir);
	if ((r = store_rm_rf_at(runs, id, 0)) < 0 && r != -ENOENT)
		return cdn_err_set(err, -r, "store: remove %s/runs/%s", s->dir, id);
	return 0;
}

/* GET key into a new file name in dfd, checked against hex (or the sha256
 * stored with it when hex is NULL). */
static int pull_one(struct store *s, const char *key, int dfd, const char *name, uint64_t max,
		    const char *hex, struct cdn_err *err)
{
	_cleanup_close_ int fd =
	    openat(dfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, RUN_FILE_MODE);
	if (fd < 0)
		return cdn_err_set(err, errno, "store: fetch %s", name);
	int r = s3_get_fd(s->remote, key, fd, max, hex, NULL, err);
	if (r == 0 && fsync(fd) < 0)
		r = cdn_err_set(err, errno, "store: fetch %s", name);
	return r;
}

int store_run_files_pull(struct store *s, const char *id, struct cdn_err *err)
{
	char dir[PATH_MAX], key[S3_KEY_MAX + 1], scratch[PATH_MAX];
	int r = store_run_file(NULL, id, NULL, dir, sizeof(dir), err);
	struct stat st;
	if (r < 0 || !s->remote || fstatat(s->dirfd, dir, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return r;
	/* Built whole in a scratch directory, then renamed into place, so a
	 * reader sees every file of the run or none. */
	_cleanup_close_ int sfd = -1;
	if ((r = store_scratch_dir(s, scratch, sizeof(scratch), &sfd, err)) < 0)
		return r;
	if ((r = run_key(s, id, REMOTE_INDEX, key, err)) < 0 ||
	    (r = pull_one(s, key, sfd, REMOTE_INDEX, REMOTE_INDEX_MAX, NULL, err)) < 0) {
		store_scratch_remove(s, scratch);
		return r;
	}
	_cleanup_close_ int ifd = openat(sfd, REMOTE_INDEX, O_RDONLY | O_CLOEXEC);
	json_error_t je;
	json_t *idx = ifd < 0 ? NULL : json_loadfd(ifd, 0, &je);
	json_t *files = json_object_get(idx, "files");
	const char *rid = json_string_value(json_object_get(idx, "run_id"));
	if (!json_is_array(files) || !rid || strcmp(rid, id) != 0 ||
	    json_array_size(files) > REMOTE_RUN_FILES_MAX)
		r = cdn_err_msg(err, EIO, "store: run %s: its index on %s is not one cordon wrote",
				id, s3_shown(s->remote));
	(void)unlinkat(sfd, REMOTE_INDEX, 0);
	size_t i;
	json_t *f;
	json_array_foreach(files, i, f)
	{
		if (r < 0)
			break;
		const char *name = json_string_value(json_object_get(f, "name"));
		const char *hex = json_string_value(json_object_get(f, "sha256"));
		if (!name || !hex || !run_name_ok(name) || !cdn_sha256_hex_str_ok(hex)) {
			r = cdn_err_msg(err, EIO, "store: run %s: its index names a file badly",
					id);
			break;
		}
		if (!strncmp(name, "artifacts/", 10) && mkdirat(sfd, "artifacts", 0700) < 0 &&
		    errno != EEXIST) {
			r = cdn_err_set(err, errno, "store: run %s: artifacts/", id);
			break;
		}
		if ((r = run_key(s, id, name, key, err)) == 0)
			r = pull_one(s, key, sfd, name, REMOTE_RUN_FILE_MAX, hex, err);
	}
	json_decref(idx);
	if (r == 0 && (fsync(sfd) < 0 || syncfs(sfd) < 0))
		r = cdn_err_set(err, errno, "store: run %s", id);
	if (r == 0 && renameat(AT_FDCWD, scratch, s->dirfd, dir) < 0 && errno != EEXIST &&
	    errno != ENOTEMPTY)
		r = cdn_err_set(err, errno, "store: run %s: put its files in place", id);
	if (r == 0 && fchmod(sfd, 0700) < 0)
		r = cdn_err_set(err, errno, "store: run %s", id);
	/* Moved: nothing is left at scratch; not moved: it goes. */
	store_scratch_remove(s, scratch);
	return r;
}

/* Whether run file name goes with one of names ("artifacts" takes
 * everything under artifacts/); names NULL: every file. */
static bool prune_names(const char *name, const char *const *names)
{
	if (!names)
		return true;
	for (size_t i = 0; names[i]; i++) {
		size_t l = strlen(names[i]);
		if (!strcmp(name, names[i]) || (!strncmp(name, names[i], l) && name[l] == '/'))
			return true;
	}
	return false;
}

int store_run_files_prune(struct store *s, const char *id, const char *const *names,
			  struct cdn_err *err)
{
	if (!s->remote)
		return 0;
	char key[S3_KEY_MAX + 1], scratch[PATH_MAX];
	int r = run_key(s, id, REMOTE_INDEX, key, err);
	if (r < 0)
		return r;
	_cleanup_close_ int sfd = -1;
	if ((r = store_scratch_dir(s, scratch, sizeof(scratch), &sfd, err)) < 0)
		return r;
	r = pull_one(s, key, sfd, REMOTE_INDEX, REMOTE_INDEX_MAX, NULL, err);
	if (r == -ENOENT) {
		/* Never pushed (a run that did not end here), or pruned whole. */
		store_scratch_remove(s, scratch);
		cdn_err_clear(err);
		return 0;
	}
	json_t *idx = NULL;
	if (r == 0) {
		_cleanup_close_ int ifd = openat(sfd, REMOTE_INDEX, O_RDONLY | O_CLOEXEC);
		json_error_t je;
		idx = ifd < 0 ? NULL : json_loadfd(ifd, 0, &je);
	}
	store_scratch_remove(s, scratch);
	if (r < 0)
		return r;
	json_t *files = json_object_get(idx, "files");
	const char *rid = json_string_value(json_object_get(idx, "run_id"));
	if (!json_is_array(files) || !rid || strcmp(rid, id) != 0 ||
	    json_array_size(files) > REMOTE_RUN_FILES_MAX) {
		json_decref(idx);
		return cdn_err_msg(err, EIO, "store: run %s: its index on %s is not one cordon wrote",
				   id, s3_shown(s->remote));
	}
	/* The index first (without what goes, or gone), so that no reader
	 * finds it naming an object already deleted; then the objects. */
	json_t *kept = json_array(), *gone = json_array();
	size_t i;
	json_t *f;
	json_array_foreach(files, i, f)
	{
		const char *name = json_string_value(json_object_get(f, "name"));
		if (!name || !run_name_ok(name)) {
			r = cdn_err_msg(err, EIO, "store: run %s: its index names a file badly", id);
			break;
		}
		json_array_append(prune_names(name, names) ? gone : kept, f);
	}
	if (r == 0 && !names)
		r = s3_delete(s->remote, key, err);
	else if (r == 0 && json_array_size(gone)) {
		json_object_set(idx, "files", kept);
		char *text = json_dumps(idx, JSON_COMPACT | JSON_SORT_KEYS);
		_cleanup_atomic_ struct atomic_file af = ATOMIC_FILE_INIT;
		if (!text)
			r = cdn_err_set(err, ENOMEM, "store: run %s: its index", id);
		else if ((r = store_atomic_begin(s, &af, "a run's index", err)) == 0 &&
			 (r = cdn_write_all(af.fd, text, strlen(text))) < 0)
			r = cdn_err_set(err, r, "store: run %s: write its index", id);
		free(text);
		if (r == 0)
			r = s3_put_fd(s->remote, key, af.fd, NULL, S3_PUT_REPLACE, NULL, err);
	}
	json_array_foreach(gone, i, f)
	{
		char okey[S3_KEY_MAX + 1];
		if (r == 0 && (r = run_key(s, id, json_string_value(json_object_get(f, "name")),
					   okey, err)) == 0)
			r = s3_delete(s->remote, okey, err);
	}
	json_decref(kept);
	json_decref(gone);
	json_decref(idx);
	return r;
}

/* ---------------------------------------------------------------- migrate */

/* Every blob of blobs/ put, then read back whole and checked. */
static int migrate_blobs(struct store *s, struct s3 *c, int scratch, struct store_blobs_report *rep,
			 struct cdn_err *err)
{
	char **subs = NULL;
	size_t ns = 0;
	bool more = false;
	int r = cdn_dir_names(s->blobs_fd, 256, &more, &subs, &ns);
	if (r < 0)
		return cdn_err_set(err, -r, "store: list %s/blobs", s->dir);
	for (size_t i = 0; r == 0 && i < ns; i++) {
		/* The fan-out directories only ("ab"); the full name is checked
		 * below. */
		if (strlen(subs[i]) != 2)
			continue;
		_cleanup_close_ int dfd =
		    openat(s->blobs_fd, subs[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		char **names = NULL;
		size_t n = 0;
		if (dfd < 0 || (r = cdn_dir_names(dfd, 1u << 24, &more, &names, &n)) < 0) {
			r = cdn_err_set(err, dfd < 0 ? errno : -r, "store: list %s/blobs/%s",
					s->dir, subs[i]);
			break;
		}
		for (size_t j = 0; r == 0 && j < n; j++) {
			char hex[STORE_HASH_HEX + 1], key[S3_KEY_MAX + 1];
			if (strlen(names[j]) != STORE_HASH_HEX - 2)
				continue;
			snprintf(hex, sizeof(hex), "%s%s", subs[i], names[j]);
			if (!cdn_sha256_hex_str_ok(hex))
				continue;
			_cleanup_close_ int fd =
			    openat(dfd, names[j], O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
			struct stat st;
			if (fd < 0 || fstat(fd, &st) < 0) {
				r = cdn_err_set(err, errno, "store: blob %s", hex);
				break;
			}
			bool sent = false;
			if ((r = s3_key(s3_loc(c), "blobs", key, sizeof(key), err)) < 0)
				break;
			snprintf(key + strlen(key), sizeof(key) - strlen(key), "/%.2s/%s", hex,
				 hex + 2);
			/* A damaged local blob is refused here (it does not hash to
			 * its name) rather than copied. */
			if ((r = s3_put_fd(c, key, fd, hex, S3_PUT_REPLACE, &sent, err)) < 0 ||
			    (r = s3_get_fd(c, key, scratch, REMOTE_BLOB_MAX, hex, NULL, err)) < 0)
				break;
			rep->blobs++;
			rep->blob_bytes += (uint64_t)st.st_size;
			rep->sent += sent;
		}
		cdn_names_free(names, n);
	}
	cdn_names_free(subs, ns);
	return r;
}

/* Run id's files as S3 holds them now against its files here: every one
 * in the index, with the sha256 of the local file, read back whole. */
static int verify_run(struct store *s, struct s3 *c, const char *id, int rfd, int scratch,
		      struct store_blobs_report *rep, struct cdn_err *err)
{
	char key[S3_KEY_MAX + 1];
	int r = run_key(s, id, REMOTE_INDEX, key, err);
	if (r < 0 || (r = s3_get_fd(c, key, scratch, REMOTE_INDEX_MAX, NULL, NULL, err)) < 0)
		return r;
	json_error_t je;
	(void)lseek(scratch, 0, SEEK_SET);
	json_t *idx = json_loadfd(scratch, JSON_DISABLE_EOF_CHECK, &je);
	json_t *files = json_object_get(idx, "files"), *f;
	size_t i;
	if (!json_is_array(files))
		r = cdn_err_msg(err, EIO, "store: run %s: its index on %s is not one cordon wrote",
				id, s3_shown(c));
	json_array_foreach(files, i, f)
	{
		const char *name = json_string_value(json_object_get(f, "name"));
		const char *hex = json_string_value(json_object_get(f, "sha256"));
		char here[STORE_HASH_HEX + 1];
		if (r < 0)
			break;
		_cleanup_close_ int fd = name && run_name_ok(name)
					     ? openat(rfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
					     : -1;
		if (fd < 0 || !hex || cdn_sha256_fd(fd, here) < 0 || strcmp(here, hex) != 0) {
			r = cdn_err_msg(err, EIO,
					"store: run %s: %s on %s is not the file here (changed "
					"during the copy?)",
					id, name ? name : "a file", s3_shown(c));
			break;
		}
		if ((r = run_key(s, id, name, key, err)) == 0)
			r = s3_get_fd(c, key, scratch, REMOTE_RUN_FILE_MAX, hex, NULL, err);
		rep->run_files += r == 0;
	}
	json_decref(idx);
	return r;
}

/* Every run directory's files pushed (as a finished run's are), then
 * checked. */
static int migrate_runs(struct store *s, struct s3 *c, int scratch, struct store_blobs_report *rep,
			struct cdn_err *err)
{
	_cleanup_close_ int runs =
	    openat(s->dirfd, STORE_RUNS_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (runs < 0)
		return cdn_err_set(err, errno, "store: %s/%s", s->dir, STORE_RUNS_DIR);
	char **ids = NULL;
	size_t n = 0;
	bool more = false;
	int r = cdn_dir_names(runs, 1u << 24, &more, &ids, &n);
	if (r < 0)
		return cdn_err_set(err, -r, "store: list %s/%s", s->dir, STORE_RUNS_DIR);
	struct s3 *keep = s->remote;
	s->remote = c; /* store_run_files_push writes to the location migrated to */
	for (size_t i = 0; r == 0 && i < n; i++) {
		if (!store_run_id_ok(ids[i]))
			continue;
		_cleanup_close_ int rfd =
		    openat(runs, ids[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (rfd < 0)
			continue;
		if ((r = store_run_files_push(s, ids[i], err)) == 0 &&
		    (r = verify_run(s, c, ids[i], rfd, scratch, rep, err)) == 0)
			rep->runs++;
	}
	s->remote = keep;
	cdn_names_free(ids, n);
	return r;
}

int store_migrate_blobs(struct store *s, const char *url, struct store_blobs_report *rep,
			struct cdn_err *err)
{
	memset(rep, 0, sizeof(*rep));
	struct s3 *c = NULL;
	int r = s3_open(url, &c, err);
	if (r < 0)
		return r;
	if ((r = s3_check(c, err)) < 0) {
		s3_close(c);
		return r;
	}
	/* One scratch file for every object read back, in tmp/. */
	char path[PATH_MAX];
	_cleanup_close_ int scratch = -1;
	if ((r = store_tmp_path(s, "verify.XXXXXX", path, sizeof(path), err)) == 0) {
		scratch = mkostemp(path, O_CLOEXEC);
		if (scratch < 0)
			r = cdn_err_set(err, errno, "store: %s", path);
		else
			(void)unlink(path);
	}
	if (r == 0)
		r = migrate_blobs(s, c, scratch, rep, err);
	if (r == 0)
		r = migrate_runs(s, c, scratch, rep, err);
	s3_close(c);
	return r;
}
