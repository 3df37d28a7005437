/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Postgres queries for run controls (store.h, "Reaching a run on another
 * host"): a running run publishes what waits for a human, any node
 * decides or cancels, the run takes and answers. A decision is one
 * UPDATE that only an open row of the caller's workspace matches, so two
 * nodes deciding at once decide once; its NOTIFY goes out with it, on the
 * run's own channel ("cordon_run_" and the run's id). Every statement is
 * constant text; values are always parameters.
 */
#define _GNU_SOURCE
#include "store/pg.h"

#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cleanup.h"

/* The text of column col of row i, cut to cap - 1 bytes ("" for NULL). */
static void col_text(const PGresult *res, int i, int col, char *out, size_t cap)
{
	snprintf(out, cap, "%s", PQgetisnull(res, i, col) ? "" : PQgetvalue(res, i, col));
}

static int64_t col_int(const PGresult *res, int i, int col)
{
	return PQgetisnull(res, i, col) ? 0 : strtoll(PQgetvalue(res, i, col), NULL, 10);
}

int pg_control_publish(struct store *s, const char *run_id, const char *ws, const char *id,
		       const char *entry, int64_t created_ms, int64_t deadline_ms,
		       struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, id);
	pg_p_text(&p, run_id);
	pg_p_text(&p, ws);
	pg_p_text(&p, entry);
	pg_p_int(&p, created_ms);
	pg_p_int(&p, deadline_ms);
	_cleanup_pgres_ PGresult *res = NULL;
	return pg_exec(d,
		       "INSERT INTO run_controls (id, run_id, workspace, kind, entry, created_ms,"
		       " deadline_ms) VALUES ($1, $2, $3, 'approval', $4, $5, $6)",
		       &p, false, &res, err, "publish approval %s", id);
}

int pg_control_close(struct store *s, const char *run_id, const char *id, struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, id);
	pg_p_text(&p, run_id);
	_cleanup_pgres_ PGresult *res = NULL;
	/* Undecided: nobody waits for its outcome, the row goes (an agent
	 * that opens and drops held requests leaves nothing behind).
	 * Decided: kept, closed, for the node that waits for the outcome,
	 * until the run ends. */
	int r = pg_exec(d,
			"DELETE FROM run_controls WHERE id = $1 AND run_id = $2 AND decision IS NULL",
			&p, false, &res, err, "close approval %s", id);
	if (r < 0 || pg_changed(res) > 0)
		return r;
	_cleanup_pgres_ PGresult *res2 = NULL;
	return pg_exec(d, "UPDATE run_controls SET closed = true WHERE id = $1 AND run_id = $2", &p,
		       false, &res2, err, "close approval %s", id);
}

int pg_controls_list(struct store *s, const char *ws, struct store_control **out, size_t *n,
		     struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, ws);
	_cleanup_pgres_ PGresult *res = NULL;
	int r = pg_exec(d,
			"SELECT c.id, c.run_id, c.entry, c.created_ms, c.deadline_ms"
			" FROM run_controls c JOIN runs r ON r.id = c.run_id"
			" WHERE c.workspace = $1 AND c.kind = 'approval' AND c.decision IS NULL"
			" AND NOT c.closed AND r.status = 'running'"
			" ORDER BY c.created_ms, c.id LIMIT 4096",
			&p, false, &res, err, "list approvals");
	if (r < 0)
		return r;
	int rows = PQntuples(res);
	struct store_control *v = rows ? calloc((size_t)rows, sizeof(*v)) : NULL;
	if (rows && !v)
		return cdn_err_set(err, ENOMEM, "store: list approvals");
	for (int i = 0; i < rows; i++) {
		col_text(res, i, 0, v[i].id, sizeof(v[i].id));
		col_text(res, i, 1, v[i].run_id, sizeof(v[i].run_id));
		v[i].created_ms = col_int(res, i, 3);
		v[i].deadline_ms = col_int(res, i, 4);
		if (!(v[i].entry = strdup(PQgetvalue(res, i, 2)))) {
			store_controls_free(v, (size_t)rows);
			return cdn_err_set(err, ENOMEM, "store: list approvals");
		}
	}
	*out = v;
	*n = (size_t)rows;
	return 0;
}

int pg_control_decide(struct store *s, const char *ws, const char *id, bool approve,
		      const char *by, int64_t now_ms, char *run_id, struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, id);
	pg_p_text(&p, ws);
	pg_p_text(&p, approve ? "approve" : "reject");
	pg_p_text(&p, by);
	pg_p_int(&p, now_ms);
	_cleanup_pgres_ PGresult *res = NULL;
	/* The run must still run: a row its run left behind is nobody's to
	 * decide. */
	int r = pg_exec(d,
			"WITH d AS (UPDATE run_controls c SET decision = $3, decided_by = $4,"
			" decided_ms = $5 FROM runs r WHERE c.id = $1 AND c.workspace = $2"
			" AND c.kind = 'approval' AND c.decision IS NULL AND NOT c.closed"
			" AND r.id = c.run_id AND r.status = 'running' RETURNING c.run_id)"
			" SELECT run_id, pg_notify('cordon_run_' || run_id, '') FROM d",
			&p, false, &res, err, "decide approval %s", id);
	if (r < 0)
		return r;
	if (PQntuples(res) == 0)
		return 0;
	col_text(res, 0, 0, run_id, STORE_RUN_ID_MAX + 1);
	return 1;
}

int pg_control_cancel(struct store *s, const char *ws, const char *run_id, const char *by,
		      int64_t now_ms, char *id, struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, id);
	pg_p_text(&p, run_id);
	pg_p_text(&p, ws);
	pg_p_text(&p, by);
	pg_p_int(&p, now_ms);
	_cleanup_pgres_ PGresult *res = NULL;
	int r = pg_exec(d,
			"WITH c AS (INSERT INTO run_controls (id, run_id, workspace, kind, entry,"
			" created_ms, deadline_ms, decision, decided_by, decided_ms)"
			" SELECT $1, id, workspace, 'cancel', '', $5, 0, 'cancel', $4, $5"
			" FROM runs WHERE id = $2 AND workspace = $3 AND status = 'running'"
			" RETURNING run_id)"
			" SELECT run_id, pg_notify('cordon_run_' || run_id, '') FROM c",
			&p, false, &res, err, "cancel run %s", run_id);
	if (r < 0)
		return r;
	return PQntuples(res) > 0 ? 1 : 0;
}

int pg_controls_take(struct store *s, const char *run_id, struct store_control **out, size_t *n,
		     struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, run_id);
	_cleanup_pgres_ PGresult *res = NULL;
	int r = pg_exec(d,
			"SELECT id, kind, decision, decided_by FROM run_controls"
			" WHERE run_id = $1 AND decision IS NOT NULL AND outcome IS NULL"
			" ORDER BY decided_ms, id LIMIT 256",
			&p, false, &res, err, "read run %s's controls", run_id);
	if (r < 0)
		return r;
	int rows = PQntuples(res);
	struct store_control *v = rows ? calloc((size_t)rows, sizeof(*v)) : NULL;
	if (rows && !v)
		return cdn_err_set(err, ENOMEM, "store: read run %s's controls", run_id);
	for (int i = 0; i < rows; i++) {
		col_text(res, i, 0, v[i].id, sizeof(v[i].id));
		snprintf(v[i].run_id, sizeof(v[i].run_id), "%s", run_id);
		v[i].cancel = strcmp(PQgetvalue(res, i, 1), "cancel") == 0;
		v[i].approve = strcmp(PQgetvalue(res, i, 2), "approve") == 0;
		col_text(res, i, 3, v[i].by, sizeof(v[i].by));
	}
	*out = v;
	*n = (size_t)rows;
	return 0;
}

int pg_control_done(struct store *s, const char *id, const char *outcome, struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, id);
	pg_p_text(&p, outcome);
	_cleanup_pgres_ PGresult *res = NULL;
	return pg_exec(d,
		       "UPDATE run_controls SET outcome = $2 WHERE id = $1 AND outcome IS NULL", &p,
		       false, &res, err, "answer control %s", id);
}

int pg_control_outcome(struct store *s, const char *id, char *out, size_t cap,
		       struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, id);
	_cleanup_pgres_ PGresult *res = NULL;
	int r = pg_exec(d, "SELECT outcome FROM run_controls WHERE id = $1", &p, false, &res, err,
			"read control %s", id);
	if (r < 0)
		return r;
	if (PQntuples(res) == 0)
		return -ENOENT;
	if (PQgetisnull(res, 0, 0))
		return 0;
	col_text(res, 0, 0, out, cap);
	return 1;
}

int pg_run_live_clear(struct store *s, const char *run_id, struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, run_id);
	_cleanup_pgres_ PGresult *res = NULL;
	int r = pg_exec(d, "DELETE FROM run_controls WHERE run_id = $1", &p, false, &res, err,
			"clear run %s's controls", run_id);
	if (r < 0)
		return r;
	_cleanup_pgres_ PGresult *res2 = NULL;
	return pg_exec(d, "DELETE FROM run_events WHERE run_id = $1", &p, false, &res2, err,
		       "clear run %s's events", run_id);
}

int pg_run_live_sweep(struct store *s, struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	static const char *const sqls[] = {
		"DELETE FROM run_controls c WHERE NOT EXISTS (SELECT 1 FROM runs r"
		" WHERE r.id = c.run_id AND r.status = 'running')",
		"DELETE FROM run_events e WHERE NOT EXISTS (SELECT 1 FROM runs r"
		" WHERE r.id = e.run_id AND r.status = 'running')",
	};
	for (size_t i = 0; i < CDN_ARRAY_SIZE(sqls); i++) {
		_cleanup_pgres_ PGresult *res = NULL;
		int r = pg_exec(d, sqls[i], NULL, false, &res, err, "sweep live rows");
		if (r < 0)
			return r;
	}
	return 0;
}

/* ------------------------------------------------------------ live events */

int pg_run_events_put(struct store *s, const char *run_id, const char *batch,
		      struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, run_id);
	pg_p_text(&p, batch);
	_cleanup_pgres_ PGresult *res = NULL;
	/* One statement a batch; a batch sent again (a retry) adds nothing. */
	return pg_exec(d,
		       "INSERT INTO run_events (run_id, seq, line)"
		       " SELECT $1, (e->>0)::bigint, e->>1 FROM json_array_elements($2::json) e"
		       " ON CONFLICT DO NOTHING",
		       &p, false, &res, err, "write run %s's events", run_id);
}

int pg_run_events_read(struct store *s, const char *run_id, uint64_t after, unsigned max,
		       struct store_event_line **out, size_t *n, struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, run_id);
	pg_p_int(&p, (int64_t)after);
	pg_p_int(&p, max);
	_cleanup_pgres_ PGresult *res = NULL;
	int r = pg_exec(d,
			"SELECT seq, line FROM run_events WHERE run_id = $1 AND seq > $2"
			" ORDER BY seq LIMIT $3",
			&p, false, &res, err, "read run %s's events", run_id);
	if (r < 0)
		return r;
	int rows = PQntuples(res);
	struct store_event_line *v = rows ? calloc((size_t)rows, sizeof(*v)) : NULL;
	if (rows && !v)
		return cdn_err_set(err, ENOMEM, "store: read run %s's events", run_id);
	for (int i = 0; i < rows; i++) {
		v[i].seq = (uint64_t)col_int(res, i, 0);
		v[i].len = (size_t)PQgetlength(res, i, 1);
		if (!(v[i].line = malloc(v[i].len + 1))) {
			store_event_lines_free(v, (size_t)rows);
			return cdn_err_set(err, ENOMEM, "store: read run %s's events", run_id);
		}
		memcpy(v[i].line, PQgetvalue(res, i, 1), v[i].len + 1);
	}
	*out = v;
	*n = (size_t)rows;
	return 0;
}
