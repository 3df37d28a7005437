/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SQLite queries for retention (docs/retention.md): the operator's and
 * each workspace's ages, a run's hold and what of it was pruned
 * (run_marks), the runs due for pruning, and deleting a record. Values
 * are always bound parameters; the only SQL text chosen at run time is one
 * of a few constant column names picked by kind. Arguments were checked
 * by store_db.c.
 */
#define _GNU_SOURCE
#include "store/sqlite.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cleanup.h"
#include "base/clock.h"

/* Binds text parameters 1..n and reports a failure to bind. */
static int bind_texts(struct sql_db *d, sqlite3_stmt *st, struct cdn_err *err, size_t n,
		      const char *const *v)
{
	struct binder b = { st, SQLITE_OK };
	for (size_t i = 0; i < n; i++)
		sql_b_text(&b, (int)i + 1, v[i]);
	return b.rc == SQLITE_OK ? 0 : sql_fail(d, b.rc, err, "bind");
}

/* Column 0's text into a fixed field; false when it is NULL or does not
 * fit. */
static bool col0_copy(sqlite3_stmt *st, char *out, size_t cap)
{
	const unsigned char *t = sqlite3_column_text(st, 0);
	int n = sqlite3_column_bytes(st, 0);
	if (!t || n < 0 || (size_t)n >= cap || memchr(t, '\0', (size_t)n))
		return false;
	memcpy(out, t, (size_t)n);
	out[n] = '\0';
	return true;
}

/* ------------------------------------------------------------- the ages */

int sqlite_retention_get(struct store *s, const char *ws, struct store_retention *out,
			 struct cdn_err *err)
{
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r;
	if ((r = sql_prep(d, "SELECT " STORE_RETENTION_COLUMNS " FROM retention WHERE workspace = ?1",
			  &st, err)) < 0 ||
	    (r = bind_texts(d, st, err, 1, &ws)) < 0 ||
	    (r = sql_step(d, st, err, "read retention")) < 0)
		return r;
	if (r == SQLITE_DONE)
		return 0;
	struct store_row row = sql_row(st);
	if ((r = store_row_retention(&row, ws, out)) < 0)
		return store_row_fail(d->path, "retention", r, err);
	return 0;
}

int sqlite_retention_put(struct store *s, const char *ws, const struct store_retention *rt,
			 unsigned set, struct cdn_err *err)
{
	char sets[STORE_RETENTION_SET_MAX], sql[STORE_RETENTION_SET_MAX + 256];
	if (store_retention_set_sql(set, sets, sizeof(sets)) < 0)
		return cdn_err_msg(err, ENAMETOOLONG, "store: retention statement");
	snprintf(sql, sizeof(sql),
		 "INSERT INTO retention (workspace, " STORE_RETENTION_COLUMNS
		 ", updated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
		 " ON CONFLICT (workspace) DO UPDATE SET %s",
		 sets);
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	int r;
	{
		_cleanup_stmt_ sqlite3_stmt *st = NULL;
		if ((r = sql_prep(d, sql, &st, err)) < 0)
			return r;
		struct binder b = { st, SQLITE_OK };
		sql_b_text(&b, 1, ws);
		for (int k = 0; k < RETAIN_N; k++) {
			sql_b_int(&b, 2 + k, rt->age_s[k]);
			sql_b_int(&b, 2 + RETAIN_N + k, rt->max_s[k]);
		}
		sql_b_int(&b, 10, cdn_wall_ms() / 1000);
		if (b.rc != SQLITE_OK)
			return sql_fail(d, b.rc, err, "bind");
		if ((r = sql_step(d, st, err, "write retention")) < 0)
			return r;
	}
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	const char *v[] = { ws };
	if ((r = sql_prep(d, "DELETE FROM retention WHERE workspace = ?1 AND " STORE_RETENTION_EMPTY,
			  &st, err)) < 0 ||
	    (r = bind_texts(d, st, err, 1, v)) < 0 ||
	    (r = sql_step(d, st, err, "write retention")) < 0)
		return r;
	return 0;
}

/* ------------------------------------------------------ holds and marks */

int sqlite_run_marks_get(struct store *s, const char *id, struct store_run_marks *out,
			 struct cdn_err *err)
{
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r;
	if ((r = sql_prep(d,
			  "SELECT " STORE_MARKS_COLUMNS " FROM runs LEFT JOIN run_marks m"
			  " ON m.run_id = runs.id WHERE runs.id = ?1",
			  &st, err)) < 0 ||
	    (r = bind_texts(d, st, err, 1, &id)) < 0 ||
	    (r = sql_step(d, st, err, "read a run's marks")) < 0)
		return r;
	if (r == SQLITE_DONE)
		return cdn_err_msg(err, ENOENT, "no run %s", id);
	struct store_row row = sql_row(st);
	if ((r = store_row_marks(&row, out)) < 0)
		return store_row_fail(d->path, "run_marks", r, err);
	return 0;
}

int sqlite_run_hold(struct store *s, const char *ws, const char *id, const char *reason,
		    const char *by, int64_t now_ms, struct cdn_err *err)
{
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	/* The run must exist in ws: the insert's SELECT gives no row if not. */
	int r = sql_prep(d,
			 "INSERT INTO run_marks (run_id, hold_reason, hold_by, hold_ms)"
			 " SELECT id, ?3, ?4, ?5 FROM runs WHERE id = ?1 AND workspace = ?2"
			 " ON CONFLICT (run_id) DO UPDATE SET hold_reason = ?3, hold_by = ?4,"
			 " hold_ms = ?5",
			 &st, err);
	if (r < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, id);
	sql_b_text(&b, 2, ws);
	sql_b_text(&b, 3, reason);
	sql_b_text(&b, 4, by);
	sql_b_int(&b, 5, now_ms);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	if ((r = sql_step(d, st, err, "hold a run")) < 0)
		return r;
	if (sqlite3_changes(d->db) == 0)
		return cdn_err_msg(err, ENOENT, "no run %s in workspace %s", id, ws);
	return 0;
}

int sqlite_run_release(struct store *s, const char *ws, const char *id, struct cdn_err *err)
{
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	int r;
	{
		_cleanup_stmt_ sqlite3_stmt *st = NULL;
		const char *v[] = { id, ws };
		if ((r = sql_prep(d, "SELECT 1 FROM runs WHERE id = ?1 AND workspace = ?2", &st,
				  err)) < 0 ||
		    (r = bind_texts(d, st, err, 2, v)) < 0 ||
		    (r = sql_step(d, st, err, "find a run")) < 0)
			return r;
		if (r == SQLITE_DONE)
			return cdn_err_msg(err, ENOENT, "no run %s in workspace %s", id, ws);
	}
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if ((r = sql_prep(d,
			  "UPDATE run_marks SET hold_reason = '', hold_by = '', hold_ms = 0"
			  " WHERE run_id = ?1",
			  &st, err)) < 0 ||
	    (r = bind_texts(d, st, err, 1, &id)) < 0)
		return r;
	r = sql_step(d, st, err, "release a run");
	return r < 0 ? r : 0;
}

int sqlite_run_mark_pruned(struct store *s, const char *id, enum store_retain k,
			   int64_t when_ms, struct cdn_err *err)
{
	const char *col = store_pruned_column(k);
	/* col is one of three constants. */
	char sql[256];
	snprintf(sql, sizeof(sql),
		 "INSERT INTO run_marks (run_id, %s) VALUES (?1, ?2)"
		 " ON CONFLICT (run_id) DO UPDATE SET %s = ?2 WHERE run_marks.hold_ms = 0",
		 col, col);
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = sql_prep(d, sql, &st, err);
	if (r < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, id);
	sql_b_int(&b, 2, when_ms);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	if ((r = sql_step(d, st, err, "mark a run pruned")) < 0)
		return r;
	/* The one statement that claims the kind, and only an unheld run's. */
	if (sqlite3_changes(d->db) == 0)
		return cdn_err_msg(err, EBUSY, "run %s is held", id);
	return 0;
}

/* ------------------------------------------------------------- pruning */

int sqlite_prune_due(struct store *s, const char *ws, enum store_retain k, int64_t cutoff_ms,
		     size_t max, char (*ids)[STORE_RUN_ID_MAX + 1], size_t *n,
		     struct cdn_err *err)
{
	const char *col = store_pruned_column(k);
	char sql[512];
	/* col is one of three constants, or none for records. */
	snprintf(sql, sizeof(sql),
		 "SELECT runs.id FROM runs LEFT JOIN run_marks m ON m.run_id = runs.id"
		 " WHERE runs.workspace = ?1 AND " STORE_FINAL_STATUS " AND runs.finished_ms > 0"
		 " AND runs.finished_ms < ?2 AND COALESCE(m.hold_ms, 0) = 0%s%s%s"
		 " ORDER BY runs.finished_ms, runs.id LIMIT ?3",
		 col ? " AND COALESCE(m." : "", col ? col : "", col ? ", 0) = 0" : "");
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = sql_prep(d, sql, &st, err);
	if (r < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, ws);
	sql_b_int(&b, 2, cutoff_ms);
	sql_b_int(&b, 3, (int64_t)max);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	size_t got = 0;
	while ((r = sql_step(d, st, err, "list runs to prune")) == SQLITE_ROW) {
		if (got == max || !col0_copy(st, ids[got], sizeof(ids[got])))
			return cdn_err_msg(err, EIO, "store: %s: a run id is malformed", d->path);
		got++;
	}
	if (r < 0)
		return r;
	*n = got;
	return 0;
}

/* Rows of one text column into a calloc'd array of fixed fields. */
static int list_names(struct sql_db *d, sqlite3_stmt *st, size_t width, size_t max, char **out,
		      size_t *n, struct cdn_err *err, const char *what)
{
	size_t cap = 0, got = 0;
	_cleanup_free_ char *v = NULL;
	int r;
	while ((r = sql_step(d, st, err, what)) == SQLITE_ROW) {
		if (got == max)
			return cdn_err_msg(err, E2BIG, "store: %s: more than %zu", what, max);
		if (got == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			char *nv = realloc(v, ncap * width);
			if (!nv)
				return cdn_err_set(err, ENOMEM, "store: %s", what);
			v = nv;
			cap = ncap;
		}
		if (!col0_copy(st, v + got * width, width))
			return cdn_err_msg(err, EIO, "store: %s: %s: a value is malformed", d->path,
					   what);
		got++;
	}
	if (r < 0)
		return r;
	*out = v;
	v = NULL;
	*n = got;
	return 0;
}

int sqlite_prune_workspaces(struct store *s, char (**wss)[STORE_MAX_NAME + 1], size_t *n,
			    struct cdn_err *err)
{
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = sql_prep(d,
			 "SELECT DISTINCT workspace FROM runs UNION"
			 " SELECT workspace FROM retention WHERE workspace != '' ORDER BY 1",
			 &st, err);
	if (r < 0)
		return r;
	return list_names(d, st, sizeof(**wss), 1000000, (char **)wss, n, err, "list workspaces");
}

int sqlite_item_trees(struct store *s, char (**trees)[STORE_HASH_HEX + 1], size_t *n,
		      struct cdn_err *err)
{
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = sql_prep(d, "SELECT DISTINCT tree FROM items WHERE tree != '' ORDER BY 1", &st, err);
	if (r < 0)
		return r;
	return list_names(d, st, sizeof(**trees), 10000000, (char **)trees, n, err,
			  "list the items' trees");
}

int sqlite_run_delete(struct store *s, const char *id, struct cdn_err *err)
{
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_txn_ struct txn t = { d, false };
	int r;
	if ((r = sql_txn_begin(&t, err)) < 0)
		return r;
	/* The record goes only when it is finished and not held, decided by
	 * the statement that deletes it; then its marks. */
	static const char *const sqls[] = {
		"DELETE FROM runs WHERE id = ?1 AND " STORE_FINAL_STATUS
		" AND NOT EXISTS (SELECT 1 FROM run_marks WHERE run_id = ?1 AND hold_ms > 0)",
		"DELETE FROM run_marks WHERE run_id = ?1"
	};
	for (size_t i = 0; i < CDN_ARRAY_SIZE(sqls); i++) {
		_cleanup_stmt_ sqlite3_stmt *st = NULL;
		if ((r = sql_prep(d, sqls[i], &st, err)) < 0 ||
		    (r = bind_texts(d, st, err, 1, &id)) < 0 ||
		    (r = sql_step(d, st, err, "delete a run")) < 0)
			return r;
		if (i == 0 && sqlite3_changes(d->db) == 0)
			return cdn_err_msg(err, EBUSY, "run %s is held, or not a finished run", id);
	}
	return sql_txn_commit(&t, err);
}

int sqlite_blob_in_runs(struct store *s, const char *hex, const char *skip_id, bool *used,
			struct cdn_err *err)
{
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	/* instr, not LIKE: a hash holds no wildcard, but instr needs no
	 * escaping to stay right. A run not finished has no result yet: the
	 * blobs it stores are kept by the grace period (prune.c). */
	const char *v[] = { hex, skip_id };
	int r;
	if ((r = sql_prep(d,
			  "SELECT 1 FROM runs LEFT JOIN run_marks m ON m.run_id = runs.id"
			  " WHERE runs.id != ?2 AND COALESCE(m.artifacts_pruned_ms, 0) = 0"
			  " AND instr(runs.result_json, ?1) > 0 LIMIT 1",
			  &st, err)) < 0 ||
	    (r = bind_texts(d, st, err, 2, v)) < 0 ||
	    (r = sql_step(d, st, err, "look for a blob's users")) < 0)
		return r;
	*used = r == SQLITE_ROW;
	return 0;
}
