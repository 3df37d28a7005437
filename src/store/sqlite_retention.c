/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SQLite queries for retention (docs/retention.md): the operator's and
 * each workspace's ages, a run's hold and what of it was pruned
 * (run_marks), the runs due for pruning, and deleting a record. Values
 * are always bound parameters; the only SQL text chosen at run time is one
 * of a few constant strings picked by kind.
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
#include "base/hash.h"

#define FINAL_STATUS "status NOT IN ('created', 'running')"

/* ------------------------------------------------------------- the ages */

int store_retention_get(struct store *s, const char *ws, struct store_retention *out,
			struct cdn_err *err)
{
	memset(out, 0, sizeof(*out));
	int r;
	if (*ws && (r = store_name_check("workspace", ws, err)) < 0)
		return r;
	_cleanup_unlock_ struct store_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if ((r = sql_prep(d,
			  "SELECT records_s, files_s, artifacts_s, evidence_s, records_max_s,"
			  " files_max_s, artifacts_max_s, evidence_max_s"
			  " FROM retention WHERE workspace = ?1",
			  &st, err)) < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, ws);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	if ((r = sql_step(d, st, err, "read retention")) < 0)
		return r;
	if (r == SQLITE_DONE)
		return 0;
	for (int k = 0; k < RETAIN_N; k++) {
		out->age_s[k] = sqlite3_column_int64(st, k);
		out->max_s[k] = sqlite3_column_int64(st, RETAIN_N + k);
	}
	return store_retention_check(ws, out, err);
}

int store_retention_put(struct store *s, const char *ws, const struct store_retention *rt,
			struct cdn_err *err)
{
	int r;
	if ((*ws && (r = store_name_check("workspace", ws, err)) < 0) ||
	    (r = store_retention_check(ws, rt, err)) < 0)
		return r;
	bool empty = true;
	for (int k = 0; k < RETAIN_N; k++)
		empty = empty && !rt->age_s[k] && !rt->max_s[k];
	_cleanup_unlock_ struct store_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if ((r = sql_prep(d,
			  empty ? "DELETE FROM retention WHERE workspace = ?1"
				: "INSERT INTO retention (workspace, records_s, files_s, artifacts_s,"
				  " evidence_s, records_max_s, files_max_s, artifacts_max_s,"
				  " evidence_max_s, updated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7,"
				  " ?8, ?9, ?10) ON CONFLICT (workspace) DO UPDATE SET"
				  " records_s = ?2, files_s = ?3, artifacts_s = ?4, evidence_s = ?5,"
				  " records_max_s = ?6, files_max_s = ?7, artifacts_max_s = ?8,"
				  " evidence_max_s = ?9, updated = ?10",
			  &st, err)) < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, ws);
	if (!empty) {
		for (int k = 0; k < RETAIN_N; k++) {
			sql_b_int(&b, 2 + k, rt->age_s[k]);
			sql_b_int(&b, 2 + RETAIN_N + k, rt->max_s[k]);
		}
		sql_b_int(&b, 10, cdn_wall_ms() / 1000);
	}
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	r = sql_step(d, st, err, "write retention");
	return r < 0 ? r : 0;
}

/* ------------------------------------------------------ holds and marks */

/* The column of run_marks that records when kind k was pruned. */
static const char *pruned_column(enum store_retain k)
{
	switch (k) {
	case RETAIN_FILES: return "files_pruned_ms";
	case RETAIN_ARTIFACTS: return "artifacts_pruned_ms";
	case RETAIN_EVIDENCE: return "evidence_pruned_ms";
	case RETAIN_RECORDS:
	case RETAIN_N: break;
	}
	return NULL;
}

int store_run_marks_get(struct store *s, const char *id, struct store_run_marks *out,
			struct cdn_err *err)
{
	memset(out, 0, sizeof(*out));
	int r = store_run_id_check(id, err);
	if (r < 0)
		return r;
	_cleanup_unlock_ struct store_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if ((r = sql_prep(d,
			  "SELECT m.hold_reason, m.hold_by, m.hold_ms, m.files_pruned_ms,"
			  " m.artifacts_pruned_ms, m.evidence_pruned_ms, m.run_id IS NOT NULL"
			  " FROM runs LEFT JOIN run_marks m ON m.run_id = runs.id WHERE runs.id = ?1",
			  &st, err)) < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, id);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	if ((r = sql_step(d, st, err, "read a run's marks")) < 0)
		return r;
	if (r == SQLITE_DONE)
		return cdn_err_msg(err, ENOENT, "no run %s", id);
	if (!sqlite3_column_int(st, 6))
		return 0;
	if (!sql_col_copy(st, 0, out->hold_reason, sizeof(out->hold_reason)) ||
	    !sql_col_copy(st, 1, out->hold_by, sizeof(out->hold_by)))
		return cdn_err_msg(err, EIO, "store: %s: the marks of run %s are malformed", d->path,
				   id);
	out->hold_ms = sqlite3_column_int64(st, 2);
	out->pruned_ms[RETAIN_FILES] = sqlite3_column_int64(st, 3);
	out->pruned_ms[RETAIN_ARTIFACTS] = sqlite3_column_int64(st, 4);
	out->pruned_ms[RETAIN_EVIDENCE] = sqlite3_column_int64(st, 5);
	return 0;
}

int store_run_hold(struct store *s, const char *ws, const char *id, const char *reason,
		   const char *by, struct cdn_err *err)
{
	int r;
	if ((r = store_name_check("workspace", ws, err)) < 0 ||
	    (r = store_run_id_check(id, err)) < 0 || (r = store_hold_check(reason, by, err)) < 0)
		return r;
	_cleanup_unlock_ struct store_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	/* The run must exist in ws: the insert's SELECT gives no row if not. */
	if ((r = sql_prep(d,
			  "INSERT INTO run_marks (run_id, hold_reason, hold_by, hold_ms)"
			  " SELECT id, ?3, ?4, ?5 FROM runs WHERE id = ?1 AND workspace = ?2"
			  " ON CONFLICT (run_id) DO UPDATE SET hold_reason = ?3, hold_by = ?4,"
			  " hold_ms = ?5",
			  &st, err)) < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, id);
	sql_b_text(&b, 2, ws);
	sql_b_text(&b, 3, reason);
	sql_b_text(&b, 4, by);
	sql_b_int(&b, 5, cdn_wall_ms());
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	if ((r = sql_step(d, st, err, "hold a run")) < 0)
		return r;
	if (sqlite3_changes(d->db) == 0)
		return cdn_err_msg(err, ENOENT, "no run %s in workspace %s", id, ws);
	return 0;
}

int store_run_release(struct store *s, const char *ws, const char *id, struct cdn_err *err)
{
	int r;
	if ((r = store_name_check("workspace", ws, err)) < 0 ||
	    (r = store_run_id_check(id, err)) < 0)
		return r;
	_cleanup_unlock_ struct store_db *d = sql_lock(s);
	{
		_cleanup_stmt_ sqlite3_stmt *st = NULL;
		if ((r = sql_prep(d, "SELECT 1 FROM runs WHERE id = ?1 AND workspace = ?2", &st,
				  err)) < 0)
			return r;
		struct binder b = { st, SQLITE_OK };
		sql_b_text(&b, 1, id);
		sql_b_text(&b, 2, ws);
		if (b.rc != SQLITE_OK)
			return sql_fail(d, b.rc, err, "bind");
		if ((r = sql_step(d, st, err, "find a run")) < 0)
			return r;
		if (r == SQLITE_DONE)
			return cdn_err_msg(err, ENOENT, "no run %s in workspace %s", id, ws);
	}
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if ((r = sql_prep(d,
			  "UPDATE run_marks SET hold_reason = '', hold_by = '', hold_ms = 0"
			  " WHERE run_id = ?1",
			  &st, err)) < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, id);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	r = sql_step(d, st, err, "release a run");
	return r < 0 ? r : 0;
}

int store_run_mark_pruned(struct store *s, const char *id, enum store_retain k, int64_t when_ms,
			  struct cdn_err *err)
{
	const char *col = pruned_column(k);
	if (!col)
		return cdn_err_msg(err, EINVAL, "store: a record is deleted, not marked pruned");
	int r = store_run_id_check(id, err);
	if (r < 0)
		return r;
	/* col is one of three constants. */
	char sql[256];
	snprintf(sql, sizeof(sql),
		 "INSERT INTO run_marks (run_id, %s) VALUES (?1, ?2)"
		 " ON CONFLICT (run_id) DO UPDATE SET %s = ?2",
		 col, col);
	_cleanup_unlock_ struct store_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if ((r = sql_prep(d, sql, &st, err)) < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, id);
	sql_b_int(&b, 2, when_ms);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	r = sql_step(d, st, err, "mark a run pruned");
	return r < 0 ? r : 0;
}

/* ------------------------------------------------------------- pruning */

int store_prune_due(struct store *s, const char *ws, enum store_retain k, int64_t cutoff_ms,
		    size_t max, char (**ids)[STORE_RUN_ID_MAX + 1], size_t *n, struct cdn_err *err)
{
	*ids = NULL;
	*n = 0;
	int r = store_name_check("workspace", ws, err);
	if (r < 0)
		return r;
	if (k < 0 || k >= RETAIN_N || max < 1 || max > 10000)
		return cdn_err_msg(err, EINVAL, "store: prune: bad arguments");
	const char *col = pruned_column(k);
	char sql[512];
	/* col is one of three constants, or none for records. */
	snprintf(sql, sizeof(sql),
		 "SELECT runs.id FROM runs LEFT JOIN run_marks m ON m.run_id = runs.id"
		 " WHERE runs.workspace = ?1 AND " FINAL_STATUS " AND runs.finished_ms > 0"
		 " AND runs.finished_ms < ?2 AND COALESCE(m.hold_ms, 0) = 0%s%s%s"
		 " ORDER BY runs.finished_ms, runs.id LIMIT ?3",
		 col ? " AND COALESCE(m." : "", col ? col : "", col ? ", 0) = 0" : "");
	_cleanup_free_ char(*out)[STORE_RUN_ID_MAX + 1] = calloc(max, sizeof(*out));
	if (!out)
		return cdn_err_set(err, ENOMEM, "store: prune");
	_cleanup_unlock_ struct store_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if ((r = sql_prep(d, sql, &st, err)) < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, ws);
	sql_b_int(&b, 2, cutoff_ms);
	sql_b_int(&b, 3, (int64_t)max);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	size_t got = 0;
	while ((r = sql_step(d, st, err, "list runs to prune")) == SQLITE_ROW) {
		if (got == max || !sql_col_copy(st, 0, out[got], sizeof(out[got])))
			return cdn_err_msg(err, EIO, "store: %s: a run id is malformed", d->path);
		got++;
	}
	if (r < 0)
		return r;
	*ids = out;
	out = NULL;
	*n = got;
	return 0;
}

/* Rows of one text column into a calloc'd array of fixed fields. */
static int list_names(struct store_db *d, sqlite3_stmt *st, size_t width, size_t max, char **out,
		      size_t *n, struct cdn_err *err, const char *what)
{
	*out = NULL;
	*n = 0;
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
		if (!sql_col_copy(st, 0, v + got * width, width))
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

int store_prune_workspaces(struct store *s, char (**wss)[STORE_MAX_NAME + 1], size_t *n,
			   struct cdn_err *err)
{
	_cleanup_unlock_ struct store_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = sql_prep(d,
			 "SELECT DISTINCT workspace FROM runs UNION"
			 " SELECT workspace FROM retention WHERE workspace != '' ORDER BY 1",
			 &st, err);
	if (r < 0)
		return r;
	return list_names(d, st, sizeof(**wss), 1000000, (char **)wss, n, err, "list workspaces");
}

int store_item_trees(struct store *s, char (**trees)[STORE_HASH_HEX + 1], size_t *n,
		     struct cdn_err *err)
{
	_cleanup_unlock_ struct store_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = sql_prep(d, "SELECT DISTINCT tree FROM items WHERE tree != '' ORDER BY 1", &st, err);
	if (r < 0)
		return r;
	return list_names(d, st, sizeof(**trees), 10000000, (char **)trees, n, err,
			  "list the items' trees");
}

int store_run_delete(struct store *s, const char *id, struct cdn_err *err)
{
	int r = store_run_id_check(id, err);
	if (r < 0)
		return r;
	_cleanup_unlock_ struct store_db *d = sql_lock(s);
	_cleanup_txn_ struct txn t = { d, false };
	if ((r = sql_txn_begin(&t, err)) < 0)
		return r;
	static const char *const sqls[] = { "DELETE FROM run_marks WHERE run_id = ?1",
					    "DELETE FROM runs WHERE id = ?1 AND " FINAL_STATUS };
	for (size_t i = 0; i < CDN_ARRAY_SIZE(sqls); i++) {
		_cleanup_stmt_ sqlite3_stmt *st = NULL;
		if ((r = sql_prep(d, sqls[i], &st, err)) < 0)
			return r;
		struct binder b = { st, SQLITE_OK };
		sql_b_text(&b, 1, id);
		if (b.rc != SQLITE_OK)
			return sql_fail(d, b.rc, err, "bind");
		if ((r = sql_step(d, st, err, "delete a run")) < 0)
			return r;
		if (i == 1 && sqlite3_changes(d->db) == 0)
			return cdn_err_msg(err, ENOENT, "no finished run %s", id);
	}
	return sql_txn_commit(&t, err);
}

int store_blob_in_runs(struct store *s, const char *hex, const char *skip_id, bool *used,
		       struct cdn_err *err)
{
	*used = true;
	if (!cdn_sha256_hex_str_ok(hex))
		return cdn_err_msg(err, EINVAL, "store: a blob's name is not a sha256");
	int r;
	_cleanup_unlock_ struct store_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	/* instr, not LIKE: a hash holds no wildcard, but instr needs no
	 * escaping to stay right. Unfinished runs count too: their result is
	 * not written yet, store_oldest_unfinished covers them. */
	if ((r = sql_prep(d,
			  "SELECT 1 FROM runs LEFT JOIN run_marks m ON m.run_id = runs.id"
			  " WHERE runs.id != ?2 AND COALESCE(m.artifacts_pruned_ms, 0) = 0"
			  " AND instr(runs.result_json, ?1) > 0 LIMIT 1",
			  &st, err)) < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, hex);
	sql_b_text(&b, 2, skip_id ? skip_id : "");
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	if ((r = sql_step(d, st, err, "look for a blob's users")) < 0)
		return r;
	*used = r == SQLITE_ROW;
	return 0;
}

int store_oldest_unfinished(struct store *s, int64_t *created_ms, struct cdn_err *err)
{
	*created_ms = 0;
	_cleanup_unlock_ struct store_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = sql_prep(d,
			 "SELECT MIN(created_ms) FROM runs WHERE status IN ('created', 'running')",
			 &st, err);
	if (r < 0)
		return r;
	if ((r = sql_step(d, st, err, "find the oldest unfinished run")) < 0)
		return r;
	if (r == SQLITE_ROW)
		*created_ms = sqlite3_column_int64(st, 0);
	return 0;
}
