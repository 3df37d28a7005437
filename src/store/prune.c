/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Pruning by age (docs/retention.md). For each workspace, the ages that
 * apply (the workspace's own, else the operator's default, within the
 * operator's bounds) say which finished, unheld runs lose what: their
 * record and everything (records), their output (files), their artifacts
 * and the artifacts' blobs that nothing kept still names (artifacts), or
 * what an evidence pack is built from (evidence).
 *
 * Files go first, then the mark in the database: a pass cut short leaves
 * a run whose files are gone but not yet marked, which the next pass
 * marks (removing what is already gone succeeds).
 *
 * An artifact's blob is removed only when no kept run's result and no
 * registered item's tree names it, and when it was not used in the last
 * blob_grace_ms: a writer that finds a blob stored already marks it used
 * (store_blob_present sets its mtime), so a run or a registration that is
 * about to name it keeps it. The blob is first renamed out of blobs/ and
 * its mtime read again, so a writer that marked it between the check and
 * the removal gets it back (or, finding it gone, stores it again).
 *
 * A blob that nothing names any more but that was used within the grace
 * period is kept for now and written down in gc/ (an empty file named by
 * its hash): the run that named it is marked or gone, so nothing else
 * would bring it back to a later pass. Each pass starts with gc/, and an
 * entry goes once its blob is removed, gone, or named again.
 */
#define _GNU_SOURCE
#include "store/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/file.h"
#include "base/hash.h"

#define PRUNE_BATCH 500
#define BLOB_GRACE_MS (60 * 60 * 1000)
#define GC_DIR "gc"
#define GC_SCAN_MAX 1000000 /* entries of gc/ looked at in one pass */

/* What became of a blob pruning looked at. */
enum blob_fate { BLOB_REMOVED, BLOB_NAMED, BLOB_RECENT, BLOB_ABSENT };

/* What each kind removes from runs/<id>/ (records: the whole directory),
 * NULL-terminated. */
static const char *const files_of[RETAIN_N][4] = {
	[RETAIN_FILES] = { "stdout", "stderr", "steps.json" },
	[RETAIN_ARTIFACTS] = { "artifacts" },
	[RETAIN_EVIDENCE] = { "events.ndjson", "audit.jsonl" },
};

struct pruner {
	struct store *s;
	const struct prune_opts *o;
	struct prune_report *rep;
	int runs_fd;
	int gc_fd; /* gc/, opened (made) on first need; -1 */
	int64_t now_ms;
	int64_t grace_ms;
	/* The blobs registered trees name, sorted; loaded on first need. */
	char (*tree_blobs)[STORE_HASH_HEX + 1];
	size_t n_tree_blobs;
	bool trees_loaded;
	/* A dry run removes nothing, so a run due as a record would be due
	 * again for each kind: the runs reported already. */
	char (*seen)[STORE_RUN_ID_MAX + 1];
	size_t n_seen, cap_seen;
	int first_err;
	struct cdn_err *err;
};

/* Bytes under name (a file, or a directory's files), for the report. */
static uint64_t du_at(int dfd, const char *name, unsigned depth)
{
	struct stat st;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	if (!S_ISDIR(st.st_mode))
		return S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
	if (depth >= RM_DEPTH_MAX)
		return 0;
	_cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	char **names;
	size_t n;
	if (fd < 0 || cdn_dir_names(fd, SIZE_MAX, NULL, &names, &n) < 0)
		return 0;
	uint64_t sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += du_at(fd, names[i], depth + 1);
	cdn_names_free(names, n);
	return sum;
}

static int64_t mtime_ms(const struct stat *st)
{
	return (int64_t)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000;
}

static int hex_cmp(const void *a, const void *b)
{
	return memcmp(a, b, STORE_HASH_HEX);
}

static int add_hex(struct pruner *p, size_t *cap, const char *hex)
{
	if (p->n_tree_blobs == *cap) {
		size_t nc = *cap ? *cap * 2 : 256;
		void *nv = realloc(p->tree_blobs, nc * sizeof(*p->tree_blobs));
		if (!nv)
			return -ENOMEM;
		p->tree_blobs = nv;
		*cap = nc;
	}
	memcpy(p->tree_blobs[p->n_tree_blobs], hex, STORE_HASH_HEX);
	p->tree_blobs[p->n_tree_blobs++][STORE_HASH_HEX] = '\0';
	return 0;
}

/* Every blob a registered item's tree names: its listing and its files
 * ("<mode> <sha256> <size> <path>" lines). */
static int load_tree_blobs(struct pruner *p)
{
	if (p->trees_loaded)
		return 0;
	char(*trees)[STORE_HASH_HEX + 1];
	size_t n, cap = 0;
	int r = store_item_trees(p->s, &trees, &n, p->err);
	if (r < 0)
		return r;
	for (size_t i = 0; r == 0 && i < n; i++) {
		if ((r = add_hex(p, &cap, trees[i])) < 0)
			break;
		char *listing;
		size_t len;
		if ((r = store_tree_listing(p->s, trees[i], &listing, &len, p->err)) < 0)
			break;
		for (char *line = listing; r == 0 && line < listing + len;) {
			char *nl = memchr(line, '\n', (size_t)(listing + len - line));
			size_t ll = nl ? (size_t)(nl - line) : (size_t)(listing + len - line);
			if (ll > 5 + STORE_HASH_HEX && (line[0] == '0') && line[4] == ' ')
				r = add_hex(p, &cap, line + 5);
			line += ll + 1;
		}
		free(listing);
	}
	free(trees);
	if (r == -ENOMEM)
		return cdn_err_set(p->err, ENOMEM, "prune: the trees' blobs");
	if (r < 0)
		return r;
	qsort(p->tree_blobs, p->n_tree_blobs, sizeof(*p->tree_blobs), hex_cmp);
	p->trees_loaded = true;
	return 0;
}

/* The artifacts' blobs a run's result names. */
static int run_artifact_blobs(struct pruner *p, const char *id, json_t **out)
{
	*out = NULL;
	struct store_run rec;
	int r = store_run_get(p->s, id, &rec, p->err);
	if (r < 0)
		return r;
	json_t *res = rec.result_json ? json_loads(rec.result_json, 0, NULL) : NULL;
	store_run_clear(&rec);
	json_t *arts = res ? json_object_get(res, "artifacts") : NULL;
	if (json_is_array(arts))
		*out = json_incref(arts);
	json_decref(res);
	return 0;
}

/* Removes the blob hex unless something still uses it (above); *fate
 * says what became of it. */
static int blob_collect(struct pruner *p, const char *hex, const char *run_id,
			enum blob_fate *fate)
{
	*fate = BLOB_NAMED;
	if (!cdn_sha256_hex_str_ok(hex))
		return 0;
	bool used;
	int r = store_blob_in_runs(p->s, hex, run_id, &used, p->err);
	if (r < 0 || used)
		return r;
	if ((r = load_tree_blobs(p)) < 0)
		return r;
	if (bsearch(hex, p->tree_blobs, p->n_tree_blobs, sizeof(*p->tree_blobs), hex_cmp))
		return 0;
	char rel[STORE_HASH_HEX + 2] = { hex[0], hex[1], '/' };
	memcpy(rel + 3, hex + 2, STORE_HASH_HEX - 2 + 1);
	struct stat st;
	int64_t cutoff = p->now_ms - p->grace_ms;
	*fate = BLOB_ABSENT;
	if (fstatat(p->s->blobs_fd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : cdn_err_set(p->err, errno, "prune: blob %s", hex);
	if (!S_ISREG(st.st_mode))
		return 0;
	*fate = BLOB_RECENT;
	if (mtime_ms(&st) >= cutoff)
		return 0;
	*fate = BLOB_REMOVED;
	if (p->o->dry_run) {
		p->rep->blobs++;
		p->rep->bytes += (uint64_t)st.st_size;
		return 0;
	}
	char tmp[TMP_NAME_MAX];
	if ((r = store_tmp_name("gc", tmp, sizeof(tmp))) < 0)
		return cdn_err_set(p->err, -r, "prune: blob %s", hex);
	if (renameat(p->s->blobs_fd, rel, p->s->tmp_fd, tmp) < 0) {
		*fate = BLOB_ABSENT;
		return errno == ENOENT ? 0 : cdn_err_set(p->err, errno, "prune: blob %s", hex);
	}
	if (fstatat(p->s->tmp_fd, tmp, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    mtime_ms(&st) >= cutoff) {
		/* Used meanwhile: put it back, unless stored again already. */
		*fate = BLOB_RECENT;
		if (renameat2(p->s->tmp_fd, tmp, p->s->blobs_fd, rel, RENAME_NOREPLACE) == 0)
			return 0;
	}
	(void)unlinkat(p->s->tmp_fd, tmp, 0);
	*fate = BLOB_REMOVED;
	p->rep->blobs++;
	p->rep->bytes += (uint64_t)st.st_size;
	return 0;
}

/* gc/, made when missing: the blobs to look at again. */
static int gc_dir(struct pruner *p, bool make)
{
	if (p->gc_fd >= 0)
		return 0;
	if (make && mkdirat(p->s->dirfd, GC_DIR, STORE_DIR_MODE) < 0 && errno != EEXIST)
		return cdn_err_set(p->err, errno, "prune: make %s/%s", p->s->dir, GC_DIR);
	p->gc_fd = openat(p->s->dirfd, GC_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (p->gc_fd < 0 && (make || errno != ENOENT))
		return cdn_err_set(p->err, errno, "prune: open %s/%s", p->s->dir, GC_DIR);
	return 0;
}

/* A blob kept only for its grace period: looked at again by a later pass. */
static int gc_remember(struct pruner *p, const char *hex)
{
	if (p->o->dry_run)
		return 0;
	int r = gc_dir(p, true);
	if (r < 0)
		return r;
	int fd = openat(p->gc_fd, hex, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return cdn_err_set(p->err, errno, "prune: write %s/%s/%s", p->s->dir, GC_DIR, hex);
	close(fd);
	return 0;
}

/* The blobs earlier passes kept for their grace period: each is removed
 * now if nothing names it and its grace is over, and its entry goes
 * unless it is still in its grace period. */
static int gc_revisit(struct pruner *p)
{
	int r = gc_dir(p, false);
	if (r < 0 || p->gc_fd < 0)
		return r;
	char **names;
	size_t n;
	bool more; /* the rest waits for the next pass */
	if ((r = cdn_dir_names(p->gc_fd, GC_SCAN_MAX, &more, &names, &n)) < 0)
		return cdn_err_set(p->err, -r, "prune: read %s/%s", p->s->dir, GC_DIR);
	for (size_t i = 0; r == 0 && i < n; i++) {
		enum blob_fate fate = BLOB_ABSENT;
		if (cdn_sha256_hex_str_ok(names[i]) && (r = blob_collect(p, names[i], NULL, &fate)) < 0)
			break;
		if (fate != BLOB_RECENT && !p->o->dry_run)
			(void)unlinkat(p->gc_fd, names[i], 0);
	}
	cdn_names_free(names, n);
	return r;
}

static int collect_artifacts(struct pruner *p, const char *id, json_t *arts)
{
	size_t i;
	json_t *a;
	int r = 0;
	json_array_foreach(arts, i, a)
	{
		const char *hex = json_string_value(json_object_get(a, "sha256"));
		enum blob_fate fate;
		if (hex && (r = blob_collect(p, hex, id, &fate)) < 0)
			break;
		if (hex && fate == BLOB_RECENT && (r = gc_remember(p, hex)) < 0)
			break;
	}
	return r;
}

static bool dry_seen(struct pruner *p, const char *id)
{
	for (size_t i = 0; i < p->n_seen; i++)
		if (!strcmp(p->seen[i], id))
			return true;
	if (p->n_seen == p->cap_seen) {
		size_t nc = p->cap_seen ? p->cap_seen * 2 : 64;
		void *nv = realloc(p->seen, nc * sizeof(*p->seen));
		if (!nv)
			return false;
		p->seen = nv;
		p->cap_seen = nc;
	}
	snprintf(p->seen[p->n_seen++], sizeof(*p->seen), "%s", id);
	return false;
}

static int prune_run(struct pruner *p, const char *ws, const char *id, enum store_retain k)
{
	struct cdn_err *err = p->err;
	int r = 0;
	if (p->o->dry_run && k != RETAIN_RECORDS && dry_seen(p, id))
		return 0; /* due as a record: nothing else of it counts */
	if (p->o->dry_run && k == RETAIN_RECORDS)
		(void)dry_seen(p, id);
	json_t *arts = NULL;
	if (k == RETAIN_RECORDS || k == RETAIN_ARTIFACTS) {
		struct store_run_marks m;
		if ((r = store_run_marks_get(p->s, id, &m, err)) < 0)
			return r;
		if (!m.pruned_ms[RETAIN_ARTIFACTS] && (r = run_artifact_blobs(p, id, &arts)) < 0)
			return r;
	}
	/* The database claims what goes first, in the one statement that
	 * checks the run is not held (a hold placed while this pass was
	 * under way wins); only then are files removed. A removal that fails
	 * after the claim leaves files behind, never a held run's gone. */
	if (!p->o->dry_run) {
		r = k == RETAIN_RECORDS ? store_run_delete(p->s, id, err)
					: store_run_mark_pruned(p->s, id, k, p->now_ms, err);
		if (r == -EBUSY) {
			json_decref(arts);
			return 0; /* held since it was listed: kept */
		}
	}
	if (r == 0 && k == RETAIN_RECORDS) {
		p->rep->bytes += p->runs_fd >= 0 ? du_at(p->runs_fd, id, 0) : 0;
		if (!p->o->dry_run && p->runs_fd >= 0 && (r = store_rm_rf_at(p->runs_fd, id, 0)) < 0)
			r = cdn_err_set(err, -r, "prune: remove %s/runs/%s", p->s->dir, id);
	} else if (r == 0) {
		_cleanup_close_ int dfd =
		    p->runs_fd < 0 ? (errno = ENOENT, -1)
				   : openat(p->runs_fd, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		for (size_t i = 0; dfd >= 0 && r == 0 && i < 3 && files_of[k][i]; i++) {
			p->rep->bytes += du_at(dfd, files_of[k][i], 0);
			if (!p->o->dry_run && (r = store_rm_rf_at(dfd, files_of[k][i], 0)) < 0)
				r = cdn_err_set(err, -r, "prune: remove %s/runs/%s/%s", p->s->dir,
						id, files_of[k][i]);
		}
		if (r == 0 && dfd < 0 && errno != ENOENT)
			r = cdn_err_set(err, errno, "prune: open %s/runs/%s", p->s->dir, id);
	}
	/* The same files on S3, when they were uploaded there: their objects
	 * go too (the whole run's with its record). */
	if (r == 0 && !p->o->dry_run &&
	    (r = store_run_files_prune(p->s, id, k == RETAIN_RECORDS ? NULL : files_of[k],
				       err)) < 0)
		cdn_err_wrap(err, "prune: run %s on S3", id);
	/* The record or the artifacts are gone: their blobs may be too. */
	if (r == 0 && arts)
		r = collect_artifacts(p, id, arts);
	json_decref(arts);
	if (r == 0) {
		p->rep->runs[k]++;
		if (p->o->on_pruned)
			p->o->on_pruned(p->o->ctx, ws, id, k);
	}
	return r;
}

/* One workspace: records first (they take everything), then each kind. */
static int prune_ws(struct pruner *p, const char *ws, const struct store_retention *op)
{
	struct store_retention wr;
	int r = store_retention_get(p->s, ws, &wr, p->err);
	if (r < 0)
		return r;
	int64_t age[RETAIN_N];
	store_retention_effective(op, &wr, age);
	static const enum store_retain order[] = { RETAIN_RECORDS, RETAIN_EVIDENCE,
						   RETAIN_ARTIFACTS, RETAIN_FILES };
	for (size_t o = 0; o < CDN_ARRAY_SIZE(order); o++) {
		enum store_retain k = order[o];
		if (!age[k])
			continue;
		int64_t cutoff = p->now_ms - age[k] * 1000;
		for (;;) {
			char(*ids)[STORE_RUN_ID_MAX + 1];
			size_t n;
			/* A dry run marks nothing: one batch, as large as allowed. */
			size_t batch = p->o->dry_run ? 10000 : PRUNE_BATCH;
			if ((r = store_prune_due(p->s, ws, k, cutoff, batch, &ids, &n, p->err)) < 0)
				return r;
			size_t done = 0;
			for (size_t i = 0; i < n; i++) {
				struct cdn_err e1 = { 0 };
				struct cdn_err *keep = p->err;
				if (p->first_err)
					p->err = &e1;
				int e = prune_run(p, ws, ids[i], k);
				p->err = keep;
				if (e < 0) {
					p->rep->failed++;
					if (!p->first_err)
						p->first_err = e;
				} else {
					done++;
				}
			}
			free(ids);
			/* Stop when the batch was the last, or when nothing in it could
			 * be pruned (it would come back the same). */
			if (p->o->dry_run || n < batch || done == 0)
				break;
		}
	}
	return 0;
}

int store_prune(struct store *s, const struct prune_opts *o, struct prune_report *rep,
		struct cdn_err *err)
{
	*rep = (struct prune_report){ 0 };
	struct pruner p = {
		.s = s,
		.o = o,
		.rep = rep,
		.now_ms = o->now_ms ? o->now_ms : cdn_wall_ms(),
		.grace_ms = o->blob_grace_ms >= 0 ? o->blob_grace_ms : BLOB_GRACE_MS,
		.gc_fd = -1,
		.err = err,
	};
	int r;
	if (o->workspace && (r = store_name_check("workspace", o->workspace, err)) < 0)
		return r;
	struct store_retention op;
	if ((r = store_retention_get(s, "", &op, err)) < 0)
		return r;
	p.runs_fd = openat(s->dirfd, STORE_RUNS_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (p.runs_fd < 0 && errno != ENOENT)
		return cdn_err_set(err, errno, "prune: open %s/runs", s->dir);
	char(*wss)[STORE_MAX_NAME + 1] = NULL;
	size_t n = 0;
	/* Blobs earlier passes kept for their grace period first: they
	 * belong to no workspace any more. */
	if (!o->workspace && (r = gc_revisit(&p)) < 0)
		goto out;
	/* Live rows (store.h, "Reaching a run on another host") of runs that
	 * no longer run: left by a run that died, or a database that failed
	 * its end. */
	if (!o->workspace && !o->dry_run && s->ops->run_live_sweep &&
	    (r = s->ops->run_live_sweep(s, err)) < 0)
		goto out;
	if (!o->workspace && (r = store_prune_workspaces(s, &wss, &n, err)) < 0)
		goto out;
	if (o->workspace)
		r = prune_ws(&p, o->workspace, &op);
	for (size_t i = 0; r == 0 && i < n; i++)
		r = prune_ws(&p, wss[i], &op);
	if (r == 0 && p.first_err)
		r = p.first_err; /* err holds its message */
out:
	free(wss);
	free(p.tree_blobs);
	free(p.seen);
	if (p.runs_fd >= 0)
		close(p.runs_fd);
	if (p.gc_fd >= 0)
		close(p.gc_fd);
	return r;
}
