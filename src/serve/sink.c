/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The evidence sink (serve --evidence-sink, docs/evidence.md): each run's
 * signed evidence pack exported when the run ends, into
 * DIR/WORKSPACE/RUN.evidence.tar.gz, by a thread of its own so that a
 * large pack never holds up the dispatcher. The directory is checked at
 * start as the config file is: a directory that another user can change
 * is refused, since the packs are the record of what ran, and everything
 * below it is reached from the descriptor opened then. A pack is written
 * in the state's tmp/, copied beside its name and linked into place, so
 * a reader never sees half of one and none is ever replaced.
 *
 * The sink may be S3 instead (s3://BUCKET/PREFIX): the pack goes to
 * PREFIX/WORKSPACE/RUN.evidence.tar.gz with its sha256 beside it
 * (store/s3.h), written once and never replaced. The bucket is read at
 * start, so a sink that cannot be reached stops the server from starting
 * rather than losing every pack after.
 */
#define _GNU_SOURCE
#include "serve/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/file.h"
#include "evidence/evidence.h"
#include "store/s3.h"

#define SINK_QUEUE 1024

struct sink {
	char dir[PATH_MAX]; /* the directory, or the S3 location as shown */
	int dirfd;
	struct s3 *s3;	    /* an S3 sink; NULL for a directory */
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool started, stop;
	/* Run ids waiting, a ring. */
	char (*q)[STORE_RUN_ID_MAX + 1];
	size_t head, n;
	uint64_t exported, failed, dropped;
};

/* A directory only this user (or root) can change: its owner, no group or
 * world write, and not a symlink. */
static int dir_ok(int fd, const char *what, const char *path, struct cdn_err *err)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return cdn_err_set(err, errno, "%s %s", what, path);
	if (!S_ISDIR(st.st_mode))
		return cdn_err_msg(err, ENOTDIR, "%s %s: not a directory", what, path);
	if ((st.st_uid != 0 && st.st_uid != geteuid()) || (st.st_mode & (S_IWGRP | S_IWOTH)))
		return cdn_err_msg(err, EPERM,
				   "%s %s: refusing a directory that another user can change (it "
				   "must belong to root or to this user, without group or world "
				   "write)",
				   what, path);
	return 0;
}

int sink_check(const char *url, char *dir, size_t cap, struct cdn_err *err)
{
	const char *p = url;
	if (!strncmp(url, "s3://", 5)) {
		struct s3_loc loc;
		if (cap)
			dir[0] = '\0';
		return s3_url_parse(url, &loc, err);
	}
	if (!strncmp(url, "file://", 7))
		p = url + 7;
	else if (strstr(url, "://"))
		return cdn_err_msg(err, EINVAL,
				   "%s: not a directory (file:///PATH or /PATH) or an S3 location "
				   "(s3://BUCKET/PREFIX)",
				   url);
	if (p[0] != '/')
		return cdn_err_msg(err, EINVAL, "%s: not an absolute path", url);
	if (strlen(p) >= cap || strlen(p) > PATH_MAX - STORE_MAX_NAME - STORE_RUN_ID_MAX - 40)
		return cdn_err_msg(err, ENAMETOOLONG, "%s: the path is too long", url);
	snprintf(dir, cap, "%s", p);
	return 0;
}

static void *sink_main(void *arg);

int sink_start(struct server *sv, struct cdn_err *err)
{
	if (!sv->cfg.evidence_sink)
		return 0;
	struct sink *k = calloc(1, sizeof(*k));
	if (!k || !(k->q = calloc(SINK_QUEUE, sizeof(*k->q)))) {
		free(k);
		return cdn_err_set(err, ENOMEM, "evidence sink");
	}
	k->dirfd = -1;
	int r = sink_check(sv->cfg.evidence_sink, k->dir, sizeof(k->dir), err);
	if (r == 0 && !k->dir[0]) {
		/* S3: the bucket read once now, so that a sink that cannot be
		 * reached (endpoint, bucket, credentials) fails the start. */
		r = s3_open(sv->cfg.evidence_sink, &k->s3, err);
		if (r == 0)
			r = s3_check(k->s3, err);
		if (r == 0)
			snprintf(k->dir, sizeof(k->dir), "%s", s3_shown(k->s3));
		if (r < 0)
			cdn_err_wrap(err, "evidence sink");
	} else if (r == 0) {
		k->dirfd = open(k->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		r = k->dirfd < 0 ? cdn_err_set(err, errno, "evidence sink %s", k->dir)
				 : dir_ok(k->dirfd, "evidence sink", k->dir, err);
	}
	pthread_mutex_init(&k->mu, NULL);
	pthread_cond_init(&k->cv, NULL);
	sv->sink = k;
	if (r < 0)
		return r;
	if (pthread_create(&k->thread, NULL, sink_main, sv) != 0)
		return cdn_err_set(err, EAGAIN, "the evidence sink's thread");
	k->started = true;
	return 0;
}

void sink_run_ended(struct server *sv, const struct store_run *r)
{
	struct sink *k = sv->sink;
	/* A run that never started (cancelled in the queue) left nothing to
	 * prove. */
	if (!k || !k->started || !r->started_ms)
		return;
	pthread_mutex_lock(&k->mu);
	if (k->n == SINK_QUEUE) {
		k->dropped++;
		fprintf(stderr,
			"cordon serve: evidence sink: %d packs waiting; run %s is not exported "
			"(cordon evidence export %s)\n",
			SINK_QUEUE, r->id, r->id);
	} else {
		snprintf(k->q[(k->head + k->n) % SINK_QUEUE], sizeof(k->q[0]), "%s", r->id);
		k->n++;
		pthread_cond_signal(&k->cv);
	}
	pthread_mutex_unlock(&k->mu);
}

/* DIR/WS, made 0750 when new, opened below the directory checked at
 * start (never by path: an ancestor someone else can change does not
 * matter); -1, said why, when it is not ours. */
static int ws_dir(struct sink *k, const char *ws)
{
	if (mkdirat(k->dirfd, ws, 0750) < 0 && errno != EEXIST) {
		fprintf(stderr, "cordon serve: evidence sink: %s/%s: %s\n", k->dir, ws,
			strerror(errno));
		return -1;
	}
	int fd = openat(k->dirfd, ws, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct cdn_err err = { 0 };
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", k->dir, ws);
	if (fd < 0 || dir_ok(fd, "evidence sink", path, &err) < 0) {
		fprintf(stderr, "cordon serve: evidence sink: %s: %s\n", path,
			fd < 0 ? strerror(errno) : err.msg);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* in's bytes into out, from the start. */
static int copy_all(int in, int out)
{
	for (;;) {
		ssize_t n = copy_file_range(in, NULL, out, NULL, 1 << 20, 0);
		if (n == 0)
			return 0;
		if (n > 0)
			continue;
		if (errno == EINTR)
			continue;
		if (errno != EXDEV && errno != ENOSYS && errno != EINVAL && errno != EOPNOTSUPP)
			return -errno;
		break; /* no copy_file_range here: plain reads and writes */
	}
	char buf[65536];
	for (;;) {
		ssize_t n = read(in, buf, sizeof(buf));
		if (n == 0)
			return 0;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		int r = cdn_write_all(out, buf, (size_t)n);
		if (r < 0)
			return r;
	}
}

/* The pack at staged (in the state's tmp/) published as name in wsfd:
 * a temp file there, synced, then linkat, which never replaces a file. */
static int publish(int wsfd, const char *staged, const char *name)
{
	_cleanup_close_ int in = open(staged, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (in < 0)
		return -errno;
	char tmp[64];
	_cleanup_close_ int out = -1;
	for (int i = 0; i < 16 && out < 0; i++) {
		snprintf(tmp, sizeof(tmp), ".cordon-sink.%d.%08x", (int)getpid(),
			 (unsigned)random());
		out = openat(wsfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			     0640);
		if (out < 0 && errno != EEXIST)
			return -errno;
	}
	if (out < 0)
		return -EEXIST;
	int r = copy_all(in, out);
	if (r == 0 && fsync(out) < 0)
		r = -errno;
	if (r == 0 && linkat(wsfd, tmp, wsfd, name, 0) < 0)
		r = -errno;
	(void)unlinkat(wsfd, tmp, 0);
	if (r == 0 && fsync(wsfd) < 0)
		r = -errno;
	return r;
}

/* The pack at staged put as PREFIX/WS/NAME, once: a pack there already
 * with other bytes is not replaced (EEXIST). */
static int publish_s3(struct sink *k, const char *staged, const char *ws, const char *name,
		      struct cdn_err *err)
{
	char rel[STORE_MAX_NAME + STORE_RUN_ID_MAX + 40], key[S3_KEY_MAX + 1];
	snprintf(rel, sizeof(rel), "%s/%s", ws, name);
	int r = s3_key(s3_loc(k->s3), rel, key, sizeof(key), err);
	if (r < 0)
		return r;
	_cleanup_close_ int fd = open(staged, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return cdn_err_set(err, errno, "the staged pack");
	return s3_put_fd(k->s3, key, fd, NULL, S3_PUT_ONCE, NULL, err);
}

static void export_one(struct server *sv, struct sink *k, const char *id)
{
	struct cdn_err err = { 0 };
	struct store_run r;
	if (store_run_get(sv->s, id, &r, &err) < 0) {
		fprintf(stderr, "cordon serve: evidence sink: run %s: %s\n", id, err.msg);
		k->failed++;
		return;
	}
	char ws[STORE_MAX_NAME + 1];
	snprintf(ws, sizeof(ws), "%s", r.workspace);
	store_run_clear(&r);
	_cleanup_close_ int wsfd = k->s3 ? -1 : ws_dir(k, ws);
	if (!k->s3 && wsfd < 0) {
		k->failed++;
		return;
	}
	struct evidence_key *key = NULL;
	if (evidence_key_load(sv->state, true, &key, &err) < 0) {
		fprintf(stderr, "cordon serve: evidence sink: the key: %s\n", err.msg);
		k->failed++;
		return;
	}
	/* Written first in the state's own tmp/, which only this user can
	 * change, then copied into the sink relative to wsfd. */
	char staged[PATH_MAX], tmpl[STORE_RUN_ID_MAX + 32], name[STORE_RUN_ID_MAX + 32];
	snprintf(tmpl, sizeof(tmpl), "sink-%s.XXXXXX", id);
	snprintf(name, sizeof(name), "%s.evidence.tar.gz", id);
	int tfd = store_tmp_path(sv->s, tmpl, staged, sizeof(staged), NULL) < 0
			  ? -1
			  : mkostemp(staged, O_CLOEXEC);
	if (tfd < 0) {
		fprintf(stderr, "cordon serve: evidence sink: run %s: stage the pack: %s\n", id,
			strerror(errno));
		evidence_key_free(key);
		k->failed++;
		return;
	}
	close(tfd);
	struct evidence_export_opts o = { .run_id = id, .workspace = ws, .out_path = staged,
					  .force = true, .key = key };
	struct evidence_export_info info;
	int e = evidence_export(sv->s, &o, &info, &err);
	evidence_key_free(key);
	if (e == 0 && k->s3)
		e = publish_s3(k, staged, ws, name, &err);
	else if (e == 0 && (e = publish(wsfd, staged, name)) < 0)
		snprintf(err.msg, sizeof(err.msg), "%s/%s/%s: %s", k->dir, ws, name, strerror(-e));
	(void)unlink(staged);
	if (e < 0) {
		fprintf(stderr, "cordon serve: evidence sink: run %s: %s\n", id, err.msg);
		k->failed++;
		return;
	}
	k->exported++;
}

static void *sink_main(void *arg)
{
	struct server *sv = arg;
	struct sink *k = sv->sink;
	pthread_mutex_lock(&k->mu);
	for (;;) {
		while (!k->n && !k->stop)
			pthread_cond_wait(&k->cv, &k->mu);
		if (!k->n)
			break; /* stopping, and nothing left */
		char id[STORE_RUN_ID_MAX + 1];
		memcpy(id, k->q[k->head], sizeof(id));
		k->head = (k->head + 1) % SINK_QUEUE;
		k->n--;
		pthread_mutex_unlock(&k->mu);
		export_one(sv, k, id);
		pthread_mutex_lock(&k->mu);
	}
	pthread_mutex_unlock(&k->mu);
	return NULL;
}

void sink_stop(struct server *sv)
{
	struct sink *k = sv->sink;
	if (!k)
		return;
	if (k->started) {
		/* The packs of runs that ended are written before the server
		 * exits: they are the record. */
		pthread_mutex_lock(&k->mu);
		k->stop = true;
		pthread_cond_signal(&k->cv);
		pthread_mutex_unlock(&k->mu);
		pthread_join(k->thread, NULL);
		fprintf(stderr,
			"cordon serve: evidence sink %s: %" PRIu64 " packs exported, %" PRIu64
			" failed, %" PRIu64 " dropped\n",
			k->dir, k->exported, k->failed, k->dropped);
	}
	if (k->dirfd >= 0)
		close(k->dirfd);
	s3_close(k->s3);
	pthread_mutex_destroy(&k->mu);
	pthread_cond_destroy(&k->cv);
	free(k->q);
	free(k);
	sv->sink = NULL;
}
