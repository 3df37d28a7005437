/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Postgres queries for retention (docs/retention.md), the same as
 * sqlite_retention.c's: the ages, a run's hold and what of it was
 * pruned, the runs due for pruning, and deleting a record. Every value is
 * a parameter; the only SQL text chosen at run time is one of a few
 * constant column names picked by kind. Arguments were checked by
 * store_db.c.
 */
#define _GNU_SOURCE
#include "store/pg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cleanup.h"
#include "base/clock.h"

/* ------------------------------------------------------------- the ages */

int pg_retention_get(struct store *s, const char *ws, struct store_retention *out,
		     struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, ws);
	_cleanup_pgres_ PGresult *res = NULL;
	int r = pg_exec(d, "SELECT " STORE_RETENTION_COLUMNS " FROM retention WHERE workspace = $1",
			&p, false, &res, err, "read retention");
	if (r < 0 || PQntuples(res) == 0)
		return r;
	struct store_row row = pg_row(res, 0);
	if ((r = store_row_retention(&row, ws, out)) < 0)
		return store_row_fail(d->shown, "retention", r, err);
	return 0;
}

int pg_retention_put(struct store *s, const char *ws, const struct store_retention *rt,
		     unsigned set, struct cdn_err *err)
{
	char sets[STORE_RETENTION_SET_MAX], sql[STORE_RETENTION_SET_MAX + 256];
	if (store_retention_set_sql(set, sets, sizeof(sets)) < 0)
		return cdn_err_msg(err, ENAMETOOLONG, "store: retention statement");
	snprintf(sql, sizeof(sql),
		 "INSERT INTO retention (workspace, " STORE_RETENTION_COLUMNS
		 ", updated) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
		 " ON CONFLICT (workspace) DO UPDATE SET %s",
		 sets);
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, ws);
	for (int k = 0; k < RETAIN_N; k++)
		pg_p_int(&p, rt->age_s[k]);
	for (int k = 0; k < RETAIN_N; k++)
		pg_p_int(&p, rt->max_s[k]);
	pg_p_int(&p, cdn_wall_ms() / 1000);
	int r;
	{
		_cleanup_pgres_ PGresult *res = NULL;
		if ((r = pg_exec(d, sql, &p, false, &res, err, "write retention")) < 0)
			return r;
	}
	struct pg_params q = { 0 };
	pg_p_text(&q, ws);
	_cleanup_pgres_ PGresult *res = NULL;
	return pg_exec(d, "DELETE FROM retention WHERE workspace = $1 AND " STORE_RETENTION_EMPTY,
		       &q, false, &res, err, "write retention");
}

/* ------------------------------------------------------ holds and marks */

int pg_run_marks_get(struct store *s, const char *id, struct store_run_marks *out,
		     struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, id);
	_cleanup_pgres_ PGresult *res = NULL;
	int r = pg_exec(d,
			"SELECT " STORE_MARKS_COLUMNS " FROM runs LEFT JOIN run_marks m"
			" ON m.run_id = runs.id WHERE runs.id = $1",
			&p, false, &res, err, "read the marks of run %s", id);
	if (r < 0)
		return r;
	if (PQntuples(res) == 0)
		return cdn_err_msg(err, ENOENT, "no run %s", id);
	struct store_row row = pg_row(res, 0);
	if ((r = store_row_marks(&row, out)) < 0)
		return store_row_fail(d->shown, "run_marks", r, err);
	return 0;
}

int pg_run_hold(struct store *s, const char *ws, const char *id, const char *reason,
		const char *by, int64_t now_ms, struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, id);
	pg_p_text(&p, ws);
	pg_p_text(&p, reason);
	pg_p_text(&p, by);
	pg_p_int(&p, now_ms);
	_cleanup_pgres_ PGresult *res = NULL;
	/* The run must exist in ws: the insert's SELECT gives no row if not. */
	int r = pg_exec(d,
			"INSERT INTO run_marks (run_id, hold_reason, hold_by, hold_ms)"
			" SELECT id, $3, $4, $5 FROM runs WHERE id = $1 AND workspace = $2"
			" ON CONFLICT (run_id) DO UPDATE SET hold_reason = $3, hold_by = $4,"
			" hold_ms = $5",
			&p, false, &res, err, "hold run %s", id);
	if (r < 0)
		return r;
	if (pg_changed(res) == 0)
		return cdn_err_msg(err, ENOENT, "no run %s in workspace %s", id, ws);
	return 0;
}

int pg_run_release(struct store *s, const char *ws, const char *id, struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, id);
	pg_p_text(&p, ws);
	_cleanup_pgres_ PGresult *res = NULL;
	/* One statement: whether the run is in ws, and its hold cleared. */
	int r = pg_exec(d,
			"WITH run AS (SELECT id FROM runs WHERE id = $1 AND workspace = $2),"
			" upd AS (UPDATE run_marks SET hold_reason = '', hold_by = '', hold_ms = 0"
			" WHERE run_id IN (SELECT id FROM run) RETURNING run_id)"
			" SELECT count(*) FROM run",
			&p, false, &res, err, "release run %s", id);
	if (r < 0)
		return r;
	if (PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 0), "1") != 0)
		return cdn_err_msg(err, ENOENT, "no run %s in workspace %s", id, ws);
	return 0;
}

int pg_run_mark_pruned(struct store *s, const char *id, enum store_retain k, int64_t when_ms,
		       struct cdn_err *err)
{
	const char *col = store_pruned_column(k);
	/* col is one of three constants. */
	char sql[256];
	snprintf(sql, sizeof(sql),
		 "INSERT INTO run_marks (run_id, %s) VALUES ($1, $2)"
		 " ON CONFLICT (run_id) DO UPDATE SET %s = $2 WHERE run_marks.hold_ms = 0",
		 col, col);
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, id);
	pg_p_int(&p, when_ms);
	_cleanup_pgres_ PGresult *res = NULL;
	int r = pg_exec(d, sql, &p, false, &res, err, "mark run %s pruned", id);
	if (r < 0)
		return r;
	/* The one statement that claims the kind, and only an unheld run's. */
	if (pg_changed(res) == 0)
		return cdn_err_msg(err, EBUSY, "run %s is held", id);
	return 0;
}

/* ------------------------------------------------------------- pruning */

/* Column 0 of every row of res into a calloc'd array of width-byte
 * fields (NULL when there is none). */
static int copy_names(struct pg_db *d, const PGresult *res, size_t width, size_t max, char **out,
		      size_t *n, struct cdn_err *err, const char *what)
{
	int rows = PQntuples(res);
	if ((size_t)rows > max)
		return cdn_err_msg(err, E2BIG, "store: %s: more than %zu", what, max);
	if (rows == 0)
		return 0;
	_cleanup_free_ char *v = calloc((size_t)rows, width);
	if (!v)
		return cdn_err_set(err, ENOMEM, "store: %s", what);
	for (int i = 0; i < rows; i++) {
		size_t len = (size_t)PQgetlength(res, i, 0);
		const char *t = PQgetvalue(res, i, 0);
		if (PQgetisnull(res, i, 0) || len >= width || memchr(t, '\0', len))
			return cdn_err_msg(err, EIO, "store: postgres %s: %s: a value is malformed",
					   d->shown, what);
		memcpy(v + (size_t)i * width, t, len);
	}
	*out = v;
	v = NULL;
	*n = (size_t)rows;
	return 0;
}

int pg_prune_due(struct store *s, const char *ws, enum store_retain k, int64_t cutoff_ms,
		 size_t max, char (*ids)[STORE_RUN_ID_MAX + 1], size_t *n, struct cdn_err *err)
{
	const char *col = store_pruned_column(k);
	char sql[512];
	/* col is one of three constants, or none for records. */
	snprintf(sql, sizeof(sql),
		 "SELECT runs.id FROM runs LEFT JOIN run_marks m ON m.run_id = runs.id"
		 " WHERE runs.workspace = $1 AND " STORE_FINAL_STATUS " AND runs.finished_ms > 0"
		 " AND runs.finished_ms < $2 AND COALESCE(m.hold_ms, 0) = 0%s%s%s"
		 " ORDER BY runs.finished_ms, runs.id LIMIT $3",
		 col ? " AND COALESCE(m." : "", col ? col : "", col ? ", 0) = 0" : "");
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, ws);
	pg_p_int(&p, cutoff_ms);
	pg_p_int(&p, (int64_t)max);
	_cleanup_pgres_ PGresult *res = NULL;
	int r = pg_exec(d, sql, &p, false, &res, err, "list runs to prune");
	if (r < 0)
		return r;
	_cleanup_free_ char *v = NULL;
	size_t got = 0;
	if ((r = copy_names(d, res, sizeof(*ids), max, &v, &got, err, "list runs to prune")) < 0)
		return r;
	if (got)
		memcpy(ids, v, got * sizeof(*ids));
	*n = got;
	return 0;
}

int pg_prune_workspaces(struct store *s, char (**wss)[STORE_MAX_NAME + 1], size_t *n,
			struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	_cleanup_pgres_ PGresult *res = NULL;
	int r = pg_exec(d,
			"SELECT DISTINCT workspace FROM runs UNION"
			" SELECT workspace FROM retention WHERE workspace != '' ORDER BY 1",
			NULL, false, &res, err, "list workspaces");
	return r < 0 ? r
		     : copy_names(d, res, sizeof(**wss), 1000000, (char **)wss, n, err,
				  "list workspaces");
}

int pg_item_trees(struct store *s, char (**trees)[STORE_HASH_HEX + 1], size_t *n,
		  struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	_cleanup_pgres_ PGresult *res = NULL;
	int r = pg_exec(d, "SELECT DISTINCT tree FROM items WHERE tree != '' ORDER BY 1", NULL,
			false, &res, err, "list the items' trees");
	return r < 0 ? r
		     : copy_names(d, res, sizeof(**trees), 10000000, (char **)trees, n, err,
				  "list the items' trees");
}

int pg_run_delete(struct store *s, const char *id, struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	_cleanup_pg_txn_ struct pg_txn t = { .d = d };
	int r;
	if ((r = pg_txn_begin(&t, err)) < 0)
		return r;
	/* The record goes only when it is finished and not held, decided by
	 * the statement that deletes it; then its marks. */
	static const char *const sqls[] = {
		"DELETE FROM runs WHERE id = $1 AND " STORE_FINAL_STATUS
		" AND NOT EXISTS (SELECT 1 FROM run_marks WHERE run_id = $1 AND hold_ms > 0)",
		"DELETE FROM run_marks WHERE run_id = $1",
		"DELETE FROM run_controls WHERE run_id = $1",
		"DELETE FROM run_events WHERE run_id = $1",
	};
	for (size_t i = 0; i < CDN_ARRAY_SIZE(sqls); i++) {
		struct pg_params p = { 0 };
		pg_p_text(&p, id);
		_cleanup_pgres_ PGresult *res = NULL;
		if ((r = pg_exec(d, sqls[i], &p, false, &res, err, "delete run %s", id)) < 0)
			return r;
		if (i == 0 && pg_changed(res) == 0)
			return cdn_err_msg(err, EBUSY, "run %s is held, or not a finished run", id);
	}
	return pg_txn_commit(&t, err);
}

int pg_blob_in_runs(struct store *s, const char *hex, const char *skip_id, bool *used,
		    struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, hex);
	pg_p_text(&p, skip_id);
	_cleanup_pgres_ PGresult *res = NULL;
	/* strpos, not LIKE: no escaping to get right. A run not finished has
	 * no result yet: the blobs it stores are kept by the grace period. */
	int r = pg_exec(d,
			"SELECT 1 FROM runs LEFT JOIN run_marks m ON m.run_id = runs.id"
			" WHERE runs.id != $2 AND COALESCE(m.artifacts_pruned_ms, 0) = 0"
			" AND strpos(runs.result_json, $1) > 0 LIMIT 1",
			&p, false, &res, err, "look for a blob's users");
	if (r < 0)
		return r;
	*used = PQntuples(res) > 0;
	return 0;
}
