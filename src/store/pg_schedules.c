/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Postgres queries for schedules (store.h, docs/schedules.md). A claim is
 * one UPDATE whose WHERE repeats the fire time read, so of several nodes
 * exactly one moves it on. Every statement is constant text; values are
 * always parameters.
 */
#define _GNU_SOURCE
#include "store/pg.h"

#include <errno.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#include "base/cleanup.h"

int pg_schedule_create(struct store *s, const struct store_schedule *sc, struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, sc->workspace);
	pg_p_text(&p, sc->name);
	pg_p_text(&p, sc->agent);
	pg_p_text(&p, sc->cron);
	pg_p_text(&p, sc->tz);
	pg_p_text(&p, sc->input_json);
	pg_p_text(&p, store_overlap_name(sc->overlap));
	pg_p_text(&p, store_catchup_name(sc->catchup));
	pg_p_int(&p, sc->paused);
	pg_p_text(&p, sc->created_by);
	pg_p_int(&p, sc->created_ms);
	pg_p_int(&p, sc->anchor_ms);
	pg_p_int(&p, sc->next_ms);
	_cleanup_pgres_ PGresult *res = NULL;
	return pg_exec(d,
		       "INSERT INTO schedules (workspace, name, agent, cron, tz, input_json,"
		       " overlap, catchup, paused, created_by, created_ms, anchor_ms, next_ms)"
		       " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
		       &p, false, &res, err, "create schedule %s", sc->name);
}

static int rows(struct pg_db *d, PGresult *res, struct store_schedule **out, size_t *n,
		struct cdn_err *err)
{
	int count = PQntuples(res);
	struct store_schedule *v = count ? calloc((size_t)count, sizeof(*v)) : NULL;
	if (count && !v)
		return cdn_err_set(err, ENOMEM, "store: schedules");
	for (int i = 0; i < count; i++) {
		struct store_row row = pg_row(res, i);
		int r = store_row_schedule(&row, &v[i]);
		if (r < 0) {
			store_schedules_free(v, (size_t)i + 1);
			return store_row_fail(d->shown, "schedule", r, err);
		}
	}
	*out = v;
	*n = (size_t)count;
	return 0;
}

int pg_schedule_get(struct store *s, const char *ws, const char *name, struct store_schedule *out,
		    struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, ws);
	pg_p_text(&p, name);
	_cleanup_pgres_ PGresult *res = NULL;
	int r = pg_exec(d,
			"SELECT " STORE_SCHEDULE_COLUMNS
			" FROM schedules WHERE workspace = $1 AND name = $2",
			&p, false, &res, err, "read schedule %s", name);
	if (r < 0)
		return r;
	if (PQntuples(res) == 0)
		return cdn_err_msg(err, ENOENT, "no schedule %s in workspace %s", name, ws);
	struct store_schedule *v = NULL;
	size_t n = 0;
	if ((r = rows(d, res, &v, &n, err)) < 0)
		return r;
	if (!v || n == 0) {
		free(v);
		return cdn_err_msg(err, ENOENT, "no schedule %s in workspace %s", name, ws);
	}
	*out = v[0];
	free(v);
	return 0;
}

int pg_schedule_list(struct store *s, const char *ws, int64_t due_ms,
		     struct store_schedule **out, size_t *n, struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, ws);
	pg_p_int(&p, due_ms);
	_cleanup_pgres_ PGresult *res = NULL;
	int r = pg_exec(d,
			"SELECT " STORE_SCHEDULE_COLUMNS " FROM schedules"
			" WHERE ($1::text IS NULL OR workspace = $1) AND ($2::bigint = 0 OR"
			" (paused = 0 AND next_ms > 0 AND next_ms <= $2::bigint))"
			" ORDER BY CASE WHEN $2::bigint = 0 THEN 0 ELSE next_ms END, workspace, name"
			" LIMIT 10000",
			&p, false, &res, err, "list schedules");
	return r < 0 ? r : rows(d, res, out, n, err);
}

/* One UPDATE or DELETE; the rows it changed. */
static int change(struct store *s, const char *sql, const char *what, struct cdn_err *err,
		  struct pg_params *p)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	_cleanup_pgres_ PGresult *res = NULL;
	int r = pg_exec(d, sql, p, false, &res, err, "%s", what);
	return r < 0 ? r : (int)pg_changed(res);
}

int pg_schedule_delete(struct store *s, const char *ws, const char *name, struct cdn_err *err)
{
	struct pg_params p = { 0 };
	pg_p_text(&p, ws);
	pg_p_text(&p, name);
	int r = change(s, "DELETE FROM schedules WHERE workspace = $1 AND name = $2",
		       "remove schedule", err, &p);
	return r == 0 ? cdn_err_msg(err, ENOENT, "no schedule %s in workspace %s", name, ws)
		      : r < 0 ? r : 0;
}

int pg_schedule_pause(struct store *s, const char *ws, const char *name, bool paused,
		      int64_t next_ms, struct cdn_err *err)
{
	struct pg_params p = { 0 };
	pg_p_text(&p, ws);
	pg_p_text(&p, name);
	pg_p_int(&p, paused);
	pg_p_int(&p, next_ms);
	int r = change(s,
		       "UPDATE schedules SET paused = $3::bigint, next_ms = CASE WHEN"
		       " $3::bigint = 1 THEN next_ms ELSE $4::bigint END"
		       " WHERE workspace = $1 AND name = $2",
		       "pause schedule", err, &p);
	return r == 0 ? cdn_err_msg(err, ENOENT, "no schedule %s in workspace %s", name, ws)
		      : r < 0 ? r : 0;
}

int pg_schedule_claim(struct store *s, const char *ws, const char *name, int64_t due,
		      int64_t next, struct cdn_err *err)
{
	struct pg_params p = { 0 };
	pg_p_text(&p, ws);
	pg_p_text(&p, name);
	pg_p_int(&p, due);
	pg_p_int(&p, next);
	int r = change(s,
		       "UPDATE schedules SET next_ms = $4::bigint WHERE workspace = $1"
		       " AND name = $2 AND next_ms = $3::bigint AND paused = 0",
		       "claim schedule", err, &p);
	return r < 0 ? r : r > 0 ? 1 : 0;
}

int pg_schedule_record(struct store *s, const char *ws, const char *name, int64_t when_ms,
		       const char *run_id, const char *skip_why, struct cdn_err *err)
{
	struct pg_params p = { 0 };
	pg_p_text(&p, ws);
	pg_p_text(&p, name);
	pg_p_int(&p, when_ms);
	pg_p_text(&p, run_id ? run_id : skip_why);
	int r = change(s,
		       run_id ? "UPDATE schedules SET fired = fired + 1, last_fire_ms = $3,"
				" last_run = $4 WHERE workspace = $1 AND name = $2"
			      : "UPDATE schedules SET skipped = skipped + 1, last_skip_ms = $3,"
				" last_skip = $4 WHERE workspace = $1 AND name = $2",
		       "record schedule", err, &p);
	return r < 0 ? r : 0;
}
