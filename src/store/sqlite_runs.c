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

#define RUN_LIST_MAX 1000
#define RECOVER_ERROR "the supervisor died (crash or kill) before the run finished"

/* ------------------------------------------------------------------- runs */

#define RUN_COLUMNS                                                                        \
	"id, workspace, agent, agent_version, agent_hash, status, exit_code, caller,"     \
	" created_ms, started_ms, finished_ms, supervisor_pid, supervisor_boot, input_json," \
	" result_json, error, supervisor_start, audit_head, audit_records, stdout_sha256,"  \
	" stderr_sha256"

/* A list shows records, not their input and result (up to 1 MiB each). */
#define RUN_LIST_COLUMNS                                                                   \
	"id, workspace, agent, agent_version, agent_hash, status, exit_code, caller,"     \
	" created_ms, started_ms, finished_ms, supervisor_pid, supervisor_boot, NULL,"     \
	" NULL, error, supervisor_start, audit_head, audit_records, stdout_sha256,"         \
	" stderr_sha256"

static int run_read(sqlite3_stmt *st, struct store_run *out)
{
	memset(out, 0, sizeof(*out));
	int64_t version = sqlite3_column_int64(st, 3);
	int64_t pid = sqlite3_column_int64(st, 11);
	int64_t code = sqlite3_column_int64(st, 6);
	if (!sql_col_copy(st, 0, out->id, sizeof(out->id)) ||
	    !sql_col_copy(st, 1, out->workspace, sizeof(out->workspace)) ||
	    !sql_col_copy(st, 2, out->agent, sizeof(out->agent)) ||
	    !sql_col_copy(st, 4, out->agent_hash, sizeof(out->agent_hash)) ||
	    !sql_col_copy(st, 7, out->caller, sizeof(out->caller)) ||
	    !sql_col_copy(st, 12, out->supervisor_boot, sizeof(out->supervisor_boot)) ||
	    !sql_col_copy(st, 15, out->error, sizeof(out->error)) ||
	    !sql_col_copy(st, 17, out->audit_head, sizeof(out->audit_head)) ||
	    !sql_col_copy(st, 19, out->stdout_sha256, sizeof(out->stdout_sha256)) ||
	    !sql_col_copy(st, 20, out->stderr_sha256, sizeof(out->stderr_sha256)) || version < 0 ||
	    version > UINT32_MAX || pid < INT32_MIN || pid > INT32_MAX || code < INT32_MIN ||
	    code > INT32_MAX)
		return -EIO;
	if (store_run_status_parse((const char *)sqlite3_column_text(st, 5), &out->status) < 0)
		return -EIO;
	out->agent_version = (unsigned)version;
	out->exit_code = (int)code;
	out->created_ms = sqlite3_column_int64(st, 8);
	out->started_ms = sqlite3_column_int64(st, 9);
	out->finished_ms = sqlite3_column_int64(st, 10);
	out->supervisor_pid = (int)pid;
	out->supervisor_start = (uint64_t)sqlite3_column_int64(st, 16);
	int64_t records = sqlite3_column_int64(st, 18);
	out->audit_records = records > 0 ? (uint64_t)records : 0;
	if (!sql_col_dup(st, 13, &out->input_json) || !sql_col_dup(st, 14, &out->result_json)) {
		store_run_clear(out);
		return -ENOMEM;
	}
	return 0;
}

/* What a new record or claim stores: the start time of the process that
 * supervisor_pid names now (never a value carried over from a record). */
static int64_t supervisor_start(const struct store_run *r)
{
	uint64_t v = cdn_proc_start(r->supervisor_pid);
	return v <= INT64_MAX ? (int64_t)v : 0;
}

static int run_read_fail(struct store_db *d, int r, struct cdn_err *err)
{
	if (r == -ENOMEM)
		return cdn_err_set(err, ENOMEM, "store: %s: read a run", d->path);
	return cdn_err_msg(err, EIO, "store: %s: a run row is malformed", d->path);
}

int store_run_create(struct store *s, const struct store_run *r, struct cdn_err *err)
{
	int e = store_run_check(r, err);
	if (e < 0)
		return e;
	_cleanup_unlock_ struct store_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if ((e = sql_prep(d,
		      "INSERT INTO runs (" RUN_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8,"
		      " ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, '', 0, '', '')",
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
	sql_b_int(&b, 17, supervisor_start(r));
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	int rc = sqlite3_step(st);
	if ((rc & 0xff) == SQLITE_CONSTRAINT)
		return cdn_err_msg(err, EEXIST, "store: run %s exists already", r->id);
	if (rc != SQLITE_DONE)
		return sql_fail(d, rc, err, "insert run %s", r->id);
	return 0;
}

int store_run_update(struct store *s, const struct store_run *r, struct cdn_err *err)
{
	int e = store_run_check(r, err);
	if (e < 0)
		return e;
	_cleanup_unlock_ struct store_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if ((e = sql_prep(d,
		      "UPDATE runs SET status = ?2, exit_code = ?3, started_ms = ?4,"
		      " finished_ms = ?5, result_json = ?6, error = ?7, stdout_sha256 = ?8,"
		      " stderr_sha256 = ?9 WHERE id = ?1",
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
		return cdn_err_msg(err, ENOENT, "no run %s", r->id);
	return 0;
}

int store_run_anchor(struct store *s, const char *id, const char *head, uint64_t records,
		     struct cdn_err *err)
{
	if (!cdn_sha256_hex_str_ok(head) || records > INT64_MAX)
		return cdn_err_msg(err, EINVAL, "store: an audit head is a sha256");
	_cleanup_unlock_ struct store_db *d = sql_lock(s);
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

int store_run_get(struct store *s, const char *id, struct store_run *out, struct cdn_err *err)
{
	memset(out, 0, sizeof(*out));
	int r = store_run_id_check(id, err);
	if (r < 0)
		return r;
	_cleanup_unlock_ struct store_db *d = sql_lock(s);
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

void store_run_clear(struct store_run *r)
{
	if (!r)
		return;
	free(r->input_json);
	free(r->result_json);
	r->input_json = r->result_json = NULL;
}

void store_runs_free(struct store_run *runs, size_t n)
{
	for (size_t i = 0; runs && i < n; i++)
		store_run_clear(&runs[i]);
	free(runs);
}

int store_run_list(struct store *s, const struct store_run_query *q, struct store_run **out,
		   size_t *n, struct cdn_err *err)
{
	*out = NULL;
	*n = 0;
	int r = store_name_check("workspace", q->workspace, err);
	if (r < 0 || (q->agent && (r = store_name_check("agent", q->agent, err)) < 0))
		return r;
	if (q->status != -1 && (q->status < RUN_CREATED || q->status > RUN_CANCELLED))
		return cdn_err_msg(err, EINVAL, "store: list runs: unknown status %d", q->status);
	if (q->limit < 1 || q->limit > RUN_LIST_MAX)
		return cdn_err_msg(err, EINVAL, "store: list runs: the limit must be 1 to %d",
				   RUN_LIST_MAX);
	if (q->before_id && (r = store_run_id_check(q->before_id, err)) < 0)
		return r;

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
	_cleanup_unlock_ struct store_db *d = sql_lock(s);
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

struct recover_candidate {
	char id[STORE_RUN_ID_MAX + 1];
	int64_t pid; /* as stored, for the UPDATE's WHERE */
	char boot[STORE_BOOT_ID_MAX];
	int64_t start;
};

int store_runs_recover(struct store *s, struct cdn_err *err)
{
	char boot[STORE_BOOT_ID_MAX];
	int r = cdn_boot_id(boot, sizeof(boot), err);
	if (r < 0)
		return r;
	_cleanup_unlock_ struct store_db *d = sql_lock(s);
	_cleanup_free_ struct recover_candidate *v = NULL;
	size_t count = 0, cap = 0;
	{
		_cleanup_stmt_ sqlite3_stmt *st = NULL;
		if ((r = sql_prep(d,
			      "SELECT id, supervisor_pid, supervisor_boot, supervisor_start FROM runs"
			      " WHERE status IN ('created', 'running')",
			      &st, err)) < 0)
			return r;
		while ((r = sql_step(d, st, err, "list unfinished runs")) == SQLITE_ROW) {
			if (count == cap) {
				size_t nc = cap ? cap * 2 : 16;
				struct recover_candidate *nv = realloc(v, nc * sizeof(*nv));
				if (!nv)
					return cdn_err_set(err, ENOMEM, "store: recover runs");
				v = nv;
				cap = nc;
			}
			struct recover_candidate *c = &v[count];
			c->pid = sqlite3_column_int64(st, 1);
			c->start = sqlite3_column_int64(st, 3);
			/* A field that does not fit cannot name a live supervisor;
			 * the UPDATE below then matches nothing and the run stays
			 * as it is. */
			if (!sql_col_copy(st, 0, c->id, sizeof(c->id)) ||
			    !sql_col_copy(st, 2, c->boot, sizeof(c->boot)))
				continue;
			count++;
		}
		if (r < 0)
			return r;
	}
	int recovered = 0;
	for (size_t i = 0; i < count; i++) {
		const struct recover_candidate *c = &v[i];
		int pid = c->pid > 0 && c->pid <= INT32_MAX ? (int)c->pid : 0;
		if (cdn_supervisor_alive(pid, c->boot, boot,
					   c->start > 0 ? (uint64_t)c->start : 0))
			continue;
		_cleanup_stmt_ sqlite3_stmt *st = NULL;
		/* The WHERE repeats what was judged, so a run that finished
		 * or was taken over in the meantime is left alone. */
		if ((r = sql_prep(d,
			      "UPDATE runs SET status = 'error', error = ?2, finished_ms = ?3,"
			      " exit_code = 125"
			      " WHERE id = ?1 AND status IN ('created', 'running')"
			      " AND supervisor_pid = ?4 AND supervisor_boot = ?5"
			      " AND supervisor_start = ?6",
			      &st, err)) < 0)
			return r;
		struct binder b = { st, SQLITE_OK };
		sql_b_text(&b, 1, c->id);
		sql_b_text(&b, 2, RECOVER_ERROR);
		sql_b_int(&b, 3, cdn_wall_ms());
		sql_b_int(&b, 4, c->pid);
		sql_b_text(&b, 5, c->boot);
		sql_b_int(&b, 6, c->start);
		if (b.rc != SQLITE_OK)
			return sql_fail(d, b.rc, err, "bind");
		if ((r = sql_step(d, st, err, "mark a run as failed")) < 0)
			return r;
		recovered += sqlite3_changes(d->db);
	}
	return recovered;
}

int store_run_claim(struct store *s, const struct store_run *r, struct cdn_err *err)
{
	int e = store_run_check(r, err);
	if (e < 0)
		return e;
	_cleanup_unlock_ struct store_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if ((e = sql_prep(d,
		      "UPDATE runs SET agent = ?2, agent_version = ?3, agent_hash = ?4,"
		      " supervisor_pid = ?5, supervisor_boot = ?6, input_json = ?7,"
		      " supervisor_start = ?9"
		      " WHERE id = ?1 AND workspace = ?8 AND status = 'created'",
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
	sql_b_int(&b, 9, supervisor_start(r));
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	if ((e = sql_step(d, st, err, "claim a run")) < 0)
		return e;
	if (sqlite3_changes(d->db) == 0)
		return cdn_err_msg(err, ENOENT, "run %s is not waiting to start in workspace %s",
				   r->id, r->workspace);
	return 0;
}

