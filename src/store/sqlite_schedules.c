/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SQLite queries for schedules (store.h, docs/schedules.md). Every
 * statement is constant text; values are always bound.
 */
#define _GNU_SOURCE
#include "store/sqlite.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "base/cleanup.h"

int sqlite_schedule_create(struct store *s, const struct store_schedule *sc,
			   struct cdn_err *err)
{
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = sql_prep(d,
			 "INSERT INTO schedules (workspace, name, agent, cron, tz, input_json,"
			 " overlap, catchup, paused, created_by, created_ms, anchor_ms, next_ms)"
			 " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
			 &st, err);
	if (r < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, sc->workspace);
	sql_b_text(&b, 2, sc->name);
	sql_b_text(&b, 3, sc->agent);
	sql_b_text(&b, 4, sc->cron);
	sql_b_text(&b, 5, sc->tz);
	sql_b_text(&b, 6, sc->input_json);
	sql_b_text(&b, 7, store_overlap_name(sc->overlap));
	sql_b_text(&b, 8, store_catchup_name(sc->catchup));
	sql_b_int(&b, 9, sc->paused);
	sql_b_text(&b, 10, sc->created_by);
	sql_b_int(&b, 11, sc->created_ms);
	sql_b_int(&b, 12, sc->anchor_ms);
	sql_b_int(&b, 13, sc->next_ms);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	r = sql_step(d, st, err, "create schedule");
	return r < 0 ? r : 0;
}

int sqlite_schedule_get(struct store *s, const char *ws, const char *name,
			struct store_schedule *out, struct cdn_err *err)
{
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = sql_prep(d,
			 "SELECT " STORE_SCHEDULE_COLUMNS
			 " FROM schedules WHERE workspace = ?1 AND name = ?2",
			 &st, err);
	if (r < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, ws);
	sql_b_text(&b, 2, name);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	if ((r = sql_step(d, st, err, "read schedule")) < 0)
		return r;
	if (r != SQLITE_ROW)
		return cdn_err_msg(err, ENOENT, "no schedule %s in workspace %s", name, ws);
	struct store_row row = sql_row(st);
	if ((r = store_row_schedule(&row, out)) < 0)
		return cdn_err_set(err, -r, "store: schedule %s", name);
	return 0;
}

int sqlite_schedule_list(struct store *s, const char *ws, int64_t due_ms,
			 struct store_schedule **out, size_t *n, struct cdn_err *err)
{
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = sql_prep(d,
			 "SELECT " STORE_SCHEDULE_COLUMNS " FROM schedules"
			 " WHERE (?1 IS NULL OR workspace = ?1) AND (?2 = 0 OR (paused = 0"
			 " AND next_ms > 0 AND next_ms <= ?2))"
			 " ORDER BY CASE WHEN ?2 = 0 THEN 0 ELSE next_ms END, workspace, name"
			 " LIMIT 10000",
			 &st, err);
	if (r < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, ws);
	sql_b_int(&b, 2, due_ms);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	struct store_schedule *v = NULL;
	size_t count = 0, cap = 0;
	while ((r = sql_step(d, st, err, "list schedules")) == SQLITE_ROW) {
		if (count == cap) {
			size_t nc = cap ? cap * 2 : 16;
			struct store_schedule *nv = realloc(v, nc * sizeof(*nv));
			if (!nv) {
				r = cdn_err_set(err, ENOMEM, "store: list schedules");
				break;
			}
			v = nv;
			cap = nc;
		}
		struct store_row row = sql_row(st);
		if ((r = store_row_schedule(&row, &v[count])) < 0) {
			store_schedule_clear(&v[count]);
			r = cdn_err_set(err, -r, "store: list schedules");
			break;
		}
		count++;
	}
	if (r < 0) {
		store_schedules_free(v, count);
		return r;
	}
	*out = v;
	*n = count;
	return 0;
}

/* One UPDATE or DELETE with up to five values; the rows it changed. */
static int change(struct store *s, const char *sql, const char *what, struct cdn_err *err,
		  const char *t1, const char *t2, int64_t i3, int64_t i4, const char *t5)
{
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = sql_prep(d, sql, &st, err);
	if (r < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, t1);
	sql_b_text(&b, 2, t2);
	if (sqlite3_bind_parameter_count(st) >= 3)
		sql_b_int(&b, 3, i3);
	if (sqlite3_bind_parameter_count(st) >= 4)
		sql_b_int(&b, 4, i4);
	if (sqlite3_bind_parameter_count(st) >= 5)
		sql_b_text(&b, 5, t5);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	if ((r = sql_step(d, st, err, what)) < 0)
		return r;
	return sqlite3_changes(d->db);
}

int sqlite_schedule_delete(struct store *s, const char *ws, const char *name,
			   struct cdn_err *err)
{
	int r = change(s, "DELETE FROM schedules WHERE workspace = ?1 AND name = ?2",
		       "remove schedule", err, ws, name, 0, 0, NULL);
	return r == 0 ? cdn_err_msg(err, ENOENT, "no schedule %s in workspace %s", name, ws)
		      : r < 0 ? r : 0;
}

int sqlite_schedule_pause(struct store *s, const char *ws, const char *name, bool paused,
			  int64_t next_ms, struct cdn_err *err)
{
	int r = change(s,
		       "UPDATE schedules SET paused = ?3, next_ms = CASE WHEN ?3 = 1 THEN next_ms"
		       " ELSE ?4 END WHERE workspace = ?1 AND name = ?2",
		       "pause schedule", err, ws, name, paused, next_ms, NULL);
	return r == 0 ? cdn_err_msg(err, ENOENT, "no schedule %s in workspace %s", name, ws)
		      : r < 0 ? r : 0;
}

int sqlite_schedule_claim(struct store *s, const char *ws, const char *name, int64_t due,
			  int64_t next, struct cdn_err *err)
{
	int r = change(s,
		       "UPDATE schedules SET next_ms = ?4 WHERE workspace = ?1 AND name = ?2"
		       " AND next_ms = ?3 AND paused = 0",
		       "claim schedule", err, ws, name, due, next, NULL);
	return r < 0 ? r : r > 0 ? 1 : 0;
}

int sqlite_schedule_record(struct store *s, const char *ws, const char *name, int64_t when_ms,
			   const char *run_id, const char *skip_why, struct cdn_err *err)
{
	int r = run_id ? change(s,
				"UPDATE schedules SET fired = fired + 1, last_fire_ms = ?3,"
				" last_run = ?5 WHERE workspace = ?1 AND name = ?2",
				"record schedule", err, ws, name, when_ms, 0, run_id)
		       : change(s,
				"UPDATE schedules SET skipped = skipped + 1, last_skip_ms = ?3,"
				" last_skip = ?5 WHERE workspace = ?1 AND name = ?2",
				"record schedule", err, ws, name, when_ms, 0, skip_why);
	return r < 0 ? r : 0;
}
