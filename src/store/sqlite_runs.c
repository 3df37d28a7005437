/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SQLite queries for run records: create, update, anchor, get, list,
 * claim, and crash recovery (a run whose supervisor died is closed as an
 * error, never re-run). The only SQL text built at run time
 * (store_run_list) is assembled from constant fragments; values are
 * always bound parameters.
 */
#define _GNU_SOURCE
#include "store/sqlite.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/cleanup.h"
#include "base/clock.h"
#include "base/hash.h"
#include "base/proc.h"

#define RUN_COLUMNS STORE_RUN_COLUMNS
#define RUN_LIST_COLUMNS STORE_RUN_LIST_COLUMNS

static int run_read(sqlite3_stmt *st, struct store_run *out)
{
	struct store_row row = sql_row(st);
	return store_row_run(&row, out);
}

static int run_read_fail(struct sql_db *d, int r, struct cdn_err *err)
{
	return store_row_fail(d->path, "run", r, err);
}

int sqlite_run_create(struct store *s, const struct store_run *r, struct cdn_err *err)
{
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	return sqlite_run_insert(d, r, err);
}

/* Whether an UPDATE of run id that changed nothing found it gone or lost. */
int sqlite_run_unchanged(struct sql_db *d, const char *id, struct cdn_err *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = sql_prep(d, "SELECT status FROM runs WHERE id = ?1", &st, err);
	if (r < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, id);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	if ((r = sql_step(d, st, err, "read a run")) < 0)
		return r;
	if (r == SQLITE_DONE)
		return cdn_err_msg(err, ENOENT, "no run %s", id);
	return cdn_err_msg(err, ESTALE, "%s", STORE_LOST_UPDATE);
}

int sqlite_run_insert(struct sql_db *d, const struct store_run *r, struct cdn_err *err)
{
	int e;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if ((e = sql_prep(d,
		      "INSERT INTO runs (" RUN_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8,"
		      " ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, '', 0, '', '', ?18, ?19, ?20,"
		      " ?21, ?22, ?23)",
		      &st, err)) < 0)
		return e;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, r->id);
	sql_b_text(&b, 2, r->workspace);
	sql_b_text(&b, 3, r->agent);
	sql_b_int(&b, 4, r->agent_version);
	sql_b_text(&b, 5, r->agent_hash);
	sql_b_text(&b, 6, store_run_status_name(r->status));
	sql_b_int(&b, 7, r->exit_code);
	sql_b_text(&b, 8, r->caller);
	sql_b_int(&b, 9, r->created_ms > 0 ? r->created_ms : cdn_wall_ms());
	sql_b_int(&b, 10, r->started_ms);
	sql_b_int(&b, 11, r->finished_ms);
	sql_b_int(&b, 12, r->supervisor_pid);
	sql_b_text(&b, 13, r->supervisor_boot);
	sql_b_text(&b, 14, r->input_json);
	sql_b_text(&b, 15, r->result_json);
	sql_b_text(&b, 16, r->error);
	sql_b_int(&b, 17, store_supervisor_start(r));
	sql_b_text(&b, 18, r->lease_owner);
	sql_b_int(&b, 19, r->lease_until_ms);
	sql_b_text(&b, 20, r->labels);
	sql_b_int(&b, 21, r->attempt ? r->attempt : 1);
	sql_b_text(&b, 22, r->retry_of);
	sql_b_int(&b, 23, r->retry_max);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	int rc = sqlite3_step(st);
	if ((rc & 0xff) == SQLITE_CONSTRAINT)
		return cdn_err_msg(err, EEXIST, "store: run %s exists already", r->id);
	if (rc != SQLITE_DONE)
		return sql_fail(d, rc, err, "insert run %s", r->id);
	return 0;
}

int sqlite_run_update(struct store *s, const struct store_run *r, struct cdn_err *err)
{
	int e;
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if ((e = sql_prep(d,
		      "UPDATE runs SET status = ?2, exit_code = ?3, started_ms = ?4,"
		      " finished_ms = ?5, result_json = ?6, error = ?7, stdout_sha256 = ?8,"
		      " stderr_sha256 = ?9 WHERE id = ?1 AND status <> 'lost'",
		      &st, err)) < 0)
		return e;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, r->id);
	sql_b_text(&b, 2, store_run_status_name(r->status));
	sql_b_int(&b, 3, r->exit_code);
	sql_b_int(&b, 4, r->started_ms);
	sql_b_int(&b, 5, r->finished_ms);
	sql_b_text(&b, 6, r->result_json);
	sql_b_text(&b, 7, r->error);
	sql_b_text(&b, 8, r->stdout_sha256);
	sql_b_text(&b, 9, r->stderr_sha256);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	if ((e = sql_step(d, st, err, "update a run")) < 0)
		return e;
	if (sqlite3_changes(d->db) == 0)
		return sqlite_run_unchanged(d, r->id, err);
	return 0;
}

int sqlite_run_anchor(struct store *s, const char *id, const char *head, uint64_t records,
		      struct cdn_err *err)
{
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int e = sql_prep(d, "UPDATE runs SET audit_head = ?2, audit_records = ?3 WHERE id = ?1", &st, err);
	if (e < 0)
		return e;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, id);
	sql_b_text(&b, 2, head);
	sql_b_int(&b, 3, (int64_t)records);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	if ((e = sql_step(d, st, err, "anchor a run's audit log")) < 0)
		return e;
	if (sqlite3_changes(d->db) == 0)
		return cdn_err_msg(err, ENOENT, "no run %s", id);
	return 0;
}

int sqlite_run_get(struct store *s, const char *id, struct store_run *out, struct cdn_err *err)
{
	int r;
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if ((r = sql_prep(d, "SELECT " RUN_COLUMNS " FROM runs WHERE id = ?1", &st, err)) < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, id);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	if ((r = sql_step(d, st, err, "read a run")) < 0)
		return r;
	if (r == SQLITE_DONE)
		return cdn_err_msg(err, ENOENT, "no run %s", id);
	if ((r = run_read(st, out)) < 0)
		return run_read_fail(d, r, err);
	return 0;
}

int sqlite_run_list(struct store *s, const struct store_run_query *q, struct store_run **out,
		    size_t *n, struct cdn_err *err)
{
	int r;

	/* Keyset paging on the index order (created_ms DESC, id DESC): the
	 * next page starts strictly after the last row seen, so pages neither
	 * skip nor repeat rows while new runs arrive. Only constant fragments
	 * are joined here; every value is bound. */
	char sql[1024];
	snprintf(sql, sizeof(sql), "SELECT %s FROM runs WHERE workspace = ?1%s%s%s"
		 " ORDER BY created_ms DESC, id DESC LIMIT ?6",
		 RUN_LIST_COLUMNS, q->agent ? " AND agent = ?2" : "",
		 q->status != -1 ? " AND status = ?3" : "",
		 !q->before_ms	 ? ""
		 : q->before_id ? " AND (created_ms, id) < (?4, ?5)"
				 : " AND created_ms < ?4");
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if ((r = sql_prep(d, sql, &st, err)) < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, q->workspace);
	sql_b_text(&b, 2, q->agent);
	sql_b_text(&b, 3, q->status != -1 ? store_run_status_name(q->status) : NULL);
	sql_b_int(&b, 4, q->before_ms);
	sql_b_text(&b, 5, q->before_id);
	sql_b_int(&b, 6, (int64_t)q->limit);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	struct store_run *v = calloc(q->limit, sizeof(*v));
	if (!v)
		return cdn_err_set(err, ENOMEM, "store: list runs");
	size_t count = 0;
	while (count < q->limit && (r = sql_step(d, st, err, "list runs")) == SQLITE_ROW) {
		if ((r = run_read(st, &v[count])) < 0) {
			r = run_read_fail(d, r, err);
			break;
		}
		count++;
	}
	if (r < 0) {
		store_runs_free(v, count);
		return r;
	}
	*out = v;
	*n = count;
	return 0;
}

int sqlite_runs_unfinished(struct store *s, struct store_recover_candidate **out, size_t *n,
			   struct cdn_err *err)
{
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_free_ struct store_recover_candidate *v = NULL;
	size_t count = 0, cap = 0;
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = sql_prep(d,
			 "SELECT " STORE_CANDIDATE_COLUMNS " FROM runs"
			 " WHERE status IN ('created', 'running') AND " STORE_SUPERVISED,
			 &st, err);
	if (r < 0)
		return r;
	while ((r = sql_step(d, st, err, "list unfinished runs")) == SQLITE_ROW) {
		if (count == cap) {
			size_t nc = cap ? cap * 2 : 16;
			struct store_recover_candidate *nv = realloc(v, nc * sizeof(*nv));
			if (!nv)
				return cdn_err_set(err, ENOMEM, "store: recover runs");
			v = nv;
			cap = nc;
		}
		struct store_row row = sql_row(st);
		if (store_row_candidate(&row, &v[count]) == 0)
			count++;
	}
	if (r < 0)
		return r;
	*out = cdn_steal(&v);
	*n = count;
	return 0;
}

int sqlite_run_mark_dead(struct store *s, const struct store_recover_candidate *c,
			 int64_t now_ms, struct cdn_err *err)
{
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	/* The WHERE repeats what was judged, so a run that finished or was
	 * taken over in the meantime is left alone. */
	int r = sql_prep(d,
			 "UPDATE runs SET status = 'error', error = ?2, finished_ms = ?3,"
			 " exit_code = 125"
			 " WHERE id = ?1 AND status IN ('created', 'running')"
			 " AND supervisor_pid = ?4 AND supervisor_boot = ?5"
			 " AND supervisor_start = ?6",
			 &st, err);
	if (r < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, c->id);
	sql_b_text(&b, 2, STORE_RECOVER_ERROR);
	sql_b_int(&b, 3, now_ms);
	sql_b_int(&b, 4, c->pid);
	sql_b_text(&b, 5, c->boot);
	sql_b_int(&b, 6, c->start);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	if ((r = sql_step(d, st, err, "mark a run as failed")) < 0)
		return r;
	return sqlite3_changes(d->db) > 0 ? 1 : 0;
}

int sqlite_run_claim(struct store *s, const struct store_run *r, struct cdn_err *err)
{
	int e;
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if ((e = sql_prep(d,
		      "UPDATE runs SET agent = ?2, agent_version = ?3, agent_hash = ?4,"
		      " supervisor_pid = ?5, supervisor_boot = ?6, input_json = ?7,"
		      " supervisor_start = ?9"
		      " WHERE id = ?1 AND workspace = ?8 AND status = 'created'"
		      " AND lease_owner = ?10 AND (lease_owner = '' OR lease_until_ms > ?11)",
		      &st, err)) < 0)
		return e;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, r->id);
	sql_b_text(&b, 2, r->agent);
	sql_b_int(&b, 3, r->agent_version);
	sql_b_text(&b, 4, r->agent_hash);
	sql_b_int(&b, 5, r->supervisor_pid);
	sql_b_text(&b, 6, r->supervisor_boot);
	sql_b_text(&b, 7, r->input_json);
	sql_b_text(&b, 8, r->workspace);
	sql_b_int(&b, 9, store_supervisor_start(r));
	sql_b_text(&b, 10, r->lease_owner);
	sql_b_int(&b, 11, cdn_wall_ms());
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	if ((e = sql_step(d, st, err, "claim a run")) < 0)
		return e;
	char why[256];
	if (sqlite3_changes(d->db) == 0)
		return cdn_err_msg(err, ENOENT, "%s", store_claim_refused(r, why, sizeof(why)));
	return 0;
}


/* Usage (store.h): sums by group and status, over the runs created in the
 * window. A result that is not JSON (none is written so) counts as none. */
int sqlite_run_usage(struct store *s, const char *ws, int64_t from_ms, int64_t to_ms,
		     enum store_usage_by by,
		     int (*fn)(void *ctx, const char *key, const char *status,
			       const int64_t v[STORE_USAGE_COLS]),
		     void *ctx, struct cdn_err *err)
{
#define NUM(path) "coalesce(CAST(json_extract(rj, '" path "') AS INTEGER), 0)"
	static const char *const keys[] = {
		[USAGE_BY_NONE] = "''",
		[USAGE_BY_AGENT] = "agent",
		[USAGE_BY_DAY] = "strftime('%Y-%m-%d', created_ms / 1000, 'unixepoch')",
		[USAGE_BY_CALLER] = "caller",
	};
	char sql[2048];
	snprintf(sql, sizeof(sql),
		 "SELECT k, status, count(*),"
		 " sum(CASE WHEN started_ms > 0 AND finished_ms >= started_ms"
		 "  THEN finished_ms - started_ms ELSE 0 END),"
		 " sum(" NUM("$.resources.cpu_ms") "), max(" NUM("$.resources.mem_peak_bytes") "),"
		 " sum(" NUM("$.egress.allowed") "), sum(" NUM("$.egress.blocked") "),"
		 " sum(" NUM("$.egress.allowed_bytes") "), sum(" NUM("$.egress.blocked_bytes") "),"
		 " sum(coalesce((SELECT sum(CAST(json_extract(a.value, '$.size') AS INTEGER))"
		 "  FROM json_each(rj, '$.artifacts') a"
		 "  WHERE json_type(rj, '$.artifacts') = 'array'), 0))"
		 " FROM (SELECT %s AS k, status, started_ms, finished_ms,"
		 "  CASE WHEN json_valid(result_json) THEN result_json END AS rj FROM runs"
		 "  WHERE workspace = ?1 AND created_ms >= ?2 AND created_ms < ?3)"
		 " GROUP BY k, status ORDER BY k, status",
		 keys[by]);
#undef NUM
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = sql_prep(d, sql, &st, err);
	if (r < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, ws);
	sql_b_int(&b, 2, from_ms);
	sql_b_int(&b, 3, to_ms);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	while ((r = sql_step(d, st, err, "sum usage")) == SQLITE_ROW) {
		int64_t v[STORE_USAGE_COLS];
		for (int i = 0; i < STORE_USAGE_COLS; i++)
			v[i] = sqlite3_column_int64(st, 2 + i);
		const char *key = (const char *)sqlite3_column_text(st, 0);
		const char *status = (const char *)sqlite3_column_text(st, 1);
		if ((r = fn(ctx, key ? key : "", status ? status : "", v)) < 0)
			return r;
	}
	return r < 0 ? r : 0;
}
