/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Postgres queries for run records: create, update, anchor, get, list,
 * claim, and the two steps of crash recovery (store_db.c judges which
 * supervisors are gone). Every statement is constant text; values are
 * always parameters, and the arguments were checked by store_db.c.
 */
#define _GNU_SOURCE
#include "store/pg.h"

#include <errno.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#include "base/cleanup.h"
#include "base/clock.h"

int pg_run_create(struct store *s, const struct store_run *r, struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	return pg_run_insert(d, r, err);
}

int pg_run_insert(struct pg_db *d, const struct store_run *r, struct cdn_err *err)
{
	struct pg_params p = { 0 };
	pg_p_text(&p, r->id);
	pg_p_text(&p, r->workspace);
	pg_p_text(&p, r->agent);
	pg_p_int(&p, r->agent_version);
	pg_p_text(&p, r->agent_hash);
	pg_p_text(&p, store_run_status_name(r->status));
	pg_p_int(&p, r->exit_code);
	pg_p_text(&p, r->caller);
	pg_p_int(&p, r->created_ms > 0 ? r->created_ms : cdn_wall_ms());
	pg_p_int(&p, r->started_ms);
	pg_p_int(&p, r->finished_ms);
	pg_p_int(&p, r->supervisor_pid);
	pg_p_text(&p, r->supervisor_boot);
	pg_p_text(&p, r->input_json);
	pg_p_text(&p, r->result_json);
	pg_p_text(&p, r->error);
	pg_p_int(&p, store_supervisor_start(r));
	pg_p_text(&p, r->lease_owner);
	pg_p_int(&p, r->lease_until_ms);
	pg_p_text(&p, r->labels);
	pg_p_int(&p, r->attempt ? r->attempt : 1);
	pg_p_text(&p, r->retry_of);
	pg_p_int(&p, r->retry_max);
	_cleanup_pgres_ PGresult *res = NULL;
	int e = pg_exec(d,
			"INSERT INTO runs (" STORE_RUN_COLUMNS ") VALUES ($1, $2, $3, $4, $5, $6,"
			" $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, '', 0, '', '', $18, $19,"
			" $20, $21, $22, $23)",
			&p, false, &res, err, "insert run %s", r->id);
	if (e == -EEXIST)
		return cdn_err_msg(err, EEXIST, "store: run %s exists already", r->id);
	if (e < 0 || r->status != RUN_CREATED || r->supervisor_pid != 0 || r->lease_owner[0])
		return e;
	/* Queued for a worker: wake the ones that LISTEN (delivered when the
	 * transaction commits, if there is one). A missed notification costs
	 * a worker's poll interval, never the run. */
	_cleanup_pgres_ PGresult *nres = NULL;
	(void)pg_exec(d, "NOTIFY " STORE_QUEUE_CHANNEL, NULL, false, &nres, NULL,
		      "notify run %s", r->id);
	return 0;
}

/* An UPDATE of one run: ENOENT (with msg) when it changed nothing. */
static int update_one(struct pg_db *d, const char *sql, const struct pg_params *p,
		      struct cdn_err *err, const char *what, const char *id, const char *missing)
{
	_cleanup_pgres_ PGresult *res = NULL;
	int e = pg_exec(d, sql, p, false, &res, err, "%s %s", what, id);
	if (e < 0)
		return e;
	if (pg_changed(res) == 0)
		return cdn_err_msg(err, ENOENT, "%s", missing);
	return 0;
}

int pg_run_update(struct store *s, const struct store_run *r, struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, r->id);
	pg_p_text(&p, store_run_status_name(r->status));
	pg_p_int(&p, r->exit_code);
	pg_p_int(&p, r->started_ms);
	pg_p_int(&p, r->finished_ms);
	pg_p_text(&p, r->result_json);
	pg_p_text(&p, r->error);
	pg_p_text(&p, r->stdout_sha256);
	pg_p_text(&p, r->stderr_sha256);
	_cleanup_pgres_ PGresult *res = NULL;
	int e = pg_exec(d,
			"UPDATE runs SET status = $2, exit_code = $3, started_ms = $4,"
			" finished_ms = $5, result_json = $6, error = $7, stdout_sha256 = $8,"
			" stderr_sha256 = $9 WHERE id = $1 AND status <> 'lost'",
			&p, false, &res, err, "update run %s", r->id);
	if (e < 0)
		return e;
	if (pg_changed(res) > 0)
		return 0;
	/* Which of the two: gone, or lost. */
	struct pg_params q = { 0 };
	pg_p_text(&q, r->id);
	_cleanup_pgres_ PGresult *st = NULL;
	if ((e = pg_exec(d, "SELECT status FROM runs WHERE id = $1", &q, false, &st, err,
			 "read run %s", r->id)) < 0)
		return e;
	if (PQntuples(st) == 0)
		return cdn_err_msg(err, ENOENT, "no run %s", r->id);
	return cdn_err_msg(err, ESTALE, "%s", STORE_LOST_UPDATE);
}

int pg_run_anchor(struct store *s, const char *id, const char *head, uint64_t records,
		  struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, id);
	pg_p_text(&p, head);
	pg_p_int(&p, (int64_t)records);
	char missing[64 + STORE_RUN_ID_MAX];
	snprintf(missing, sizeof(missing), "no run %s", id);
	return update_one(d, "UPDATE runs SET audit_head = $2, audit_records = $3 WHERE id = $1",
			  &p, err, "anchor the audit log of run", id, missing);
}

int pg_run_claim(struct store *s, const struct store_run *r, struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, r->id);
	pg_p_text(&p, r->agent);
	pg_p_int(&p, r->agent_version);
	pg_p_text(&p, r->agent_hash);
	pg_p_int(&p, r->supervisor_pid);
	pg_p_text(&p, r->supervisor_boot);
	pg_p_text(&p, r->input_json);
	pg_p_text(&p, r->workspace);
	pg_p_int(&p, store_supervisor_start(r));
	pg_p_text(&p, r->lease_owner);
	pg_p_int(&p, cdn_wall_ms());
	char why[256];
	return update_one(d,
			  "UPDATE runs SET agent = $2, agent_version = $3, agent_hash = $4,"
			  " supervisor_pid = $5, supervisor_boot = $6, input_json = $7,"
			  " supervisor_start = $9"
			  " WHERE id = $1 AND workspace = $8 AND status = 'created'"
			  " AND lease_owner = $10 AND (lease_owner = '' OR lease_until_ms > $11)",
			  &p, err, "claim run", r->id, store_claim_refused(r, why, sizeof(why)));
}

int pg_run_get(struct store *s, const char *id, struct store_run *out, struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, id);
	_cleanup_pgres_ PGresult *res = NULL;
	int r = pg_exec(d, "SELECT " STORE_RUN_COLUMNS " FROM runs WHERE id = $1", &p, false,
			&res, err, "read run %s", id);
	if (r < 0)
		return r;
	if (PQntuples(res) == 0)
		return cdn_err_msg(err, ENOENT, "no run %s", id);
	struct store_row row = pg_row(res, 0);
	if ((r = store_row_run(&row, out)) < 0)
		return store_row_fail(d->shown, "run", r, err);
	return 0;
}

int pg_run_list(struct store *s, const struct store_run_query *q, struct store_run **out,
		size_t *n, struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, q->workspace);
	pg_p_text(&p, q->agent);
	pg_p_text(&p, q->status != -1 ? store_run_status_name(q->status) : NULL);
	pg_p_int(&p, q->before_ms);
	pg_p_text(&p, q->before_id);
	pg_p_int(&p, (int64_t)q->limit);
	/* Keyset paging on the index order (created_ms DESC, id DESC): the
	 * next page starts strictly after the last row seen, so pages neither
	 * skip nor repeat rows while new runs arrive. One constant statement:
	 * an absent filter is a NULL (or 0) parameter, and the planner, which
	 * plans an unnamed statement with its values, drops its condition. */
	_cleanup_pgres_ PGresult *res = NULL;
	int r = pg_exec(d,
			"SELECT " STORE_RUN_LIST_COLUMNS " FROM runs WHERE workspace = $1"
			" AND ($2::text IS NULL OR agent = $2)"
			" AND ($3::text IS NULL OR status = $3)"
			" AND ($4::bigint = 0"
			"  OR ($5::text IS NULL AND created_ms < $4)"
			"  OR ($5::text IS NOT NULL AND (created_ms, id) < ($4, $5)))"
			" ORDER BY created_ms DESC, id DESC LIMIT $6",
			&p, false, &res, err, "list runs");
	if (r < 0)
		return r;
	int rows = PQntuples(res);
	struct store_run *v = calloc(rows ? (size_t)rows : 1, sizeof(*v));
	if (!v)
		return cdn_err_set(err, ENOMEM, "store: list runs");
	for (int i = 0; i < rows; i++) {
		struct store_row row = pg_row(res, i);
		if ((r = store_row_run(&row, &v[i])) < 0) {
			store_runs_free(v, (size_t)i);
			return store_row_fail(d->shown, "run", r, err);
		}
	}
	*out = v;
	*n = (size_t)rows;
	return 0;
}

int pg_runs_unfinished(struct store *s, struct store_recover_candidate **out, size_t *n,
		       struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	_cleanup_pgres_ PGresult *res = NULL;
	int r = pg_exec(d,
			"SELECT " STORE_CANDIDATE_COLUMNS " FROM runs"
			" WHERE status IN ('created', 'running') AND " STORE_SUPERVISED,
			NULL, false, &res, err, "list unfinished runs");
	if (r < 0)
		return r;
	int rows = PQntuples(res);
	struct store_recover_candidate *v = calloc(rows ? (size_t)rows : 1, sizeof(*v));
	if (!v)
		return cdn_err_set(err, ENOMEM, "store: recover runs");
	size_t count = 0;
	for (int i = 0; i < rows; i++) {
		struct store_row row = pg_row(res, i);
		if (store_row_candidate(&row, &v[count]) == 0)
			count++;
	}
	*out = v;
	*n = count;
	return 0;
}

int pg_run_mark_dead(struct store *s, const struct store_recover_candidate *c, int64_t now_ms,
		     struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, c->id);
	pg_p_text(&p, STORE_RECOVER_ERROR);
	pg_p_int(&p, now_ms);
	pg_p_int(&p, c->pid);
	pg_p_text(&p, c->boot);
	pg_p_int(&p, c->start);
	_cleanup_pgres_ PGresult *res = NULL;
	/* The WHERE repeats what was judged, so a run that finished or was
	 * taken over in the meantime is left alone. */
	int r = pg_exec(d,
			"UPDATE runs SET status = 'error', error = $2, finished_ms = $3,"
			" exit_code = 125"
			" WHERE id = $1 AND status IN ('created', 'running')"
			" AND supervisor_pid = $4 AND supervisor_boot = $5"
			" AND supervisor_start = $6",
			&p, false, &res, err, "mark run %s as failed", c->id);
	if (r < 0)
		return r;
	if (pg_changed(res) == 0)
		return 0;
	/* What it published for other hosts goes with it (best effort: a
	 * prune pass sweeps what is left). */
	struct pg_params q = { 0 };
	pg_p_text(&q, c->id);
	for (int i = 0; i < 2; i++) {
		_cleanup_pgres_ PGresult *dres = NULL;
		(void)pg_exec(d,
			      i == 0 ? "DELETE FROM run_controls WHERE run_id = $1"
				     : "DELETE FROM run_events WHERE run_id = $1",
			      &q, false, &dres, NULL, "clear run %s's live rows", c->id);
	}
	return 1;
}

/* Usage (store.h): sums by group and status, over the runs created in the
 * window. Only JSON numbers count (anything else is 0). */
int pg_run_usage(struct store *s, const char *ws, int64_t from_ms, int64_t to_ms,
		 enum store_usage_by by,
		 int (*fn)(void *ctx, const char *key, const char *status,
			   const int64_t v[STORE_USAGE_COLS]),
		 void *ctx, struct cdn_err *err)
{
#define NUM(j, path)                                                                        \
	"CASE WHEN jsonb_typeof(" j " #> '" path "') = 'number' THEN trunc((" j " #>> '" path \
	"')::numeric) ELSE 0 END"
	static const char *const keys[] = {
		[USAGE_BY_NONE] = "''",
		[USAGE_BY_AGENT] = "agent",
		[USAGE_BY_DAY] = ("to_char(to_timestamp(created_ms / 1000.0) AT TIME ZONE 'UTC',"
				  " 'YYYY-MM-DD')"),
		[USAGE_BY_CALLER] = "caller",
	};
	char sql[2560];
	snprintf(sql, sizeof(sql),
		 "SELECT k, status, count(*),"
		 " sum(CASE WHEN started_ms > 0 AND finished_ms >= started_ms"
		 "  THEN finished_ms - started_ms ELSE 0 END)::bigint,"
		 " sum(" NUM("rj", "{resources,cpu_ms}") ")::bigint,"
		 " max(" NUM("rj", "{resources,mem_peak_bytes}") ")::bigint,"
		 " sum(" NUM("rj", "{egress,allowed}") ")::bigint,"
		 " sum(" NUM("rj", "{egress,blocked}") ")::bigint,"
		 " sum(" NUM("rj", "{egress,allowed_bytes}") ")::bigint,"
		 " sum(" NUM("rj", "{egress,blocked_bytes}") ")::bigint,"
		 " sum((SELECT coalesce(sum(" NUM("a", "{size}") "), 0)"
		 "  FROM jsonb_array_elements(CASE WHEN jsonb_typeof(rj -> 'artifacts') = 'array'"
		 "  THEN rj -> 'artifacts' ELSE '[]'::jsonb END) a))::bigint"
		 " FROM (SELECT %s AS k, status, started_ms, finished_ms,"
		 "  cordon_jsonb(result_json) AS rj"
		 "  FROM runs WHERE workspace = $1 AND created_ms >= $2 AND created_ms < $3) u"
		 " GROUP BY k, status ORDER BY k, status",
		 keys[by]);
#undef NUM
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, ws);
	pg_p_int(&p, from_ms);
	pg_p_int(&p, to_ms);
	_cleanup_pgres_ PGresult *res = NULL;
	int r = pg_exec(d, sql, &p, false, &res, err, "sum usage");
	if (r < 0)
		return r;
	for (int i = 0; i < PQntuples(res); i++) {
		int64_t v[STORE_USAGE_COLS];
		for (int c = 0; c < STORE_USAGE_COLS; c++)
			v[c] = PQgetisnull(res, i, 2 + c) ? 0
							  : strtoll(PQgetvalue(res, i, 2 + c), NULL, 10);
		if ((r = fn(ctx, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), v)) < 0)
			return r;
	}
	return 0;
}
