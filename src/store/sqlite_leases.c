/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SQLite queries for workers' leases (store.h, docs/deploy.md): claim the
 * oldest queued run a worker's labels cover, renew a worker's leases, and
 * expire the ones that ran out. SQLite serves one host, so these matter
 * for workers beside serve on that host; the claim and the expiry each
 * run in one BEGIN IMMEDIATE transaction, which holds the write lock from
 * its first statement: two workers never take one run, and two nodes
 * never mark one run lost twice. Values are always bound parameters.
 */
#define _GNU_SOURCE
#include "store/sqlite.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cleanup.h"

/* A run's labels are a subset of the worker's (?2) when none of its
 * labels lacks an equal one among the worker's. */
#define LABELS_COVERED                                                                     \
	"NOT EXISTS (SELECT 1 FROM json_each(CASE WHEN labels = '' THEN '{}' ELSE labels END)" \
	" j WHERE NOT EXISTS (SELECT 1 FROM json_each(?2) w"                              \
	" WHERE w.key = j.key AND w.value = j.value))"

int sqlite_run_lease_claim(struct store *s, const char *worker, const char *labels,
			   int64_t until_ms, struct store_run *out, struct cdn_err *err)
{
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_txn_ struct txn t = { .d = d };
	int r = sql_txn_begin(&t, err);
	if (r < 0)
		return r;
	char id[STORE_RUN_ID_MAX + 1] = "";
	{
		_cleanup_stmt_ sqlite3_stmt *st = NULL;
		if ((r = sql_prep(d,
				  "SELECT id FROM runs WHERE " STORE_QUEUED " AND " LABELS_COVERED
				  " ORDER BY created_ms, id LIMIT 1",
				  &st, err)) < 0)
			return r;
		struct binder b = { st, SQLITE_OK };
		sql_b_text(&b, 2, labels[0] ? labels : "{}");
		if (b.rc != SQLITE_OK)
			return sql_fail(d, b.rc, err, "bind");
		if ((r = sql_step(d, st, err, "find a queued run")) < 0)
			return r;
		if (r == SQLITE_DONE)
			return 0;
		const char *v = (const char *)sqlite3_column_text(st, 0);
		snprintf(id, sizeof(id), "%s", v ? v : "");
	}
	{
		_cleanup_stmt_ sqlite3_stmt *st = NULL;
		if ((r = sql_prep(d,
				  "UPDATE runs SET lease_owner = ?2, lease_until_ms = ?3"
				  " WHERE id = ?1 AND " STORE_QUEUED
				  " RETURNING " STORE_RUN_COLUMNS,
				  &st, err)) < 0)
			return r;
		struct binder b = { st, SQLITE_OK };
		sql_b_text(&b, 1, id);
		sql_b_text(&b, 2, worker);
		sql_b_int(&b, 3, until_ms);
		if (b.rc != SQLITE_OK)
			return sql_fail(d, b.rc, err, "bind");
		if ((r = sql_step(d, st, err, "lease a run")) < 0)
			return r;
		if (r == SQLITE_DONE)
			return 0;
		struct store_row row = sql_row(st);
		if ((r = store_row_run(&row, out)) < 0)
			return store_row_fail(d->path, "run", r, err);
		/* RETURNING's row is final only once the statement is done. */
		if ((r = sql_step(d, st, err, "lease a run")) < 0) {
			store_run_clear(out);
			return r;
		}
	}
	if ((r = sql_txn_commit(&t, err)) < 0) {
		store_run_clear(out);
		return r;
	}
	return 1;
}

int sqlite_lease_renew(struct store *s, const char *worker, int64_t now_ms, int64_t until_ms,
		       char (**ids)[STORE_RUN_ID_MAX + 1], size_t *n, struct cdn_err *err)
{
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	/* Only a lease that has not run out: one that has is the expiry's,
	 * whether or not a node has marked its run yet. */
	int r = sql_prep(d,
			 "UPDATE runs SET lease_until_ms = ?3 WHERE lease_owner = ?1"
			 " AND status IN ('created', 'running') AND lease_until_ms >= ?2"
			 " RETURNING id",
			 &st, err);
	if (r < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, worker);
	sql_b_int(&b, 2, now_ms);
	sql_b_int(&b, 3, until_ms);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	_cleanup_free_ char(*v)[STORE_RUN_ID_MAX + 1] = NULL;
	size_t count = 0, cap = 0;
	while ((r = sql_step(d, st, err, "renew leases")) == SQLITE_ROW) {
		if (count == cap) {
			size_t nc = cap ? cap * 2 : 16;
			char(*nv)[STORE_RUN_ID_MAX + 1] = realloc(v, nc * sizeof(*nv));
			if (!nv)
				return cdn_err_set(err, ENOMEM, "store: renew leases");
			v = nv;
			cap = nc;
		}
		const char *id = (const char *)sqlite3_column_text(st, 0);
		snprintf(v[count++], sizeof(v[0]), "%s", id ? id : "");
	}
	if (r < 0)
		return r;
	*ids = cdn_steal(&v);
	*n = count;
	return 0;
}

int sqlite_leases_expired(struct store *s, int64_t now_ms, struct store_lease_candidate **out,
			  size_t *n, struct cdn_err *err)
{
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = sql_prep(d,
			 "SELECT id, lease_owner, lease_until_ms FROM runs"
			 " WHERE status IN ('created', 'running') AND lease_owner <> ''"
			 " AND lease_until_ms < ?1 ORDER BY lease_until_ms, id LIMIT 1000",
			 &st, err);
	if (r < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	sql_b_int(&b, 1, now_ms);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	_cleanup_free_ struct store_lease_candidate *v = NULL;
	size_t count = 0, cap = 0;
	while ((r = sql_step(d, st, err, "list expired leases")) == SQLITE_ROW) {
		if (count == cap) {
			size_t nc = cap ? cap * 2 : 16;
			struct store_lease_candidate *nv = realloc(v, nc * sizeof(*nv));
			if (!nv)
				return cdn_err_set(err, ENOMEM, "store: expire leases");
			v = nv;
			cap = nc;
		}
		const char *id = (const char *)sqlite3_column_text(st, 0);
		const char *owner = (const char *)sqlite3_column_text(st, 1);
		struct store_lease_candidate *c = &v[count];
		if (!id || !owner || strlen(id) > STORE_RUN_ID_MAX ||
		    strlen(owner) > STORE_WORKER_ID_MAX)
			continue;
		snprintf(c->id, sizeof(c->id), "%s", id);
		snprintf(c->owner, sizeof(c->owner), "%s", owner);
		c->until_ms = sqlite3_column_int64(st, 2);
		count++;
	}
	if (r < 0)
		return r;
	*out = cdn_steal(&v);
	*n = count;
	return 0;
}

int sqlite_run_mark_lost(struct store *s, const struct store_lease_candidate *c,
			 const char *reason, int64_t now_ms, const struct store_run *retry,
			 struct cdn_err *err)
{
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_txn_ struct txn t = { .d = d };
	int r = sql_txn_begin(&t, err);
	if (r < 0)
		return r;
	{
		_cleanup_stmt_ sqlite3_stmt *st = NULL;
		/* The WHERE repeats what was judged: a run renewed, finished or
		 * marked by another node in the meantime is left alone. */
		if ((r = sql_prep(d,
				  "UPDATE runs SET status = 'lost', error = ?4, finished_ms = ?5,"
				  " exit_code = 125 WHERE id = ?1 AND lease_owner = ?2"
				  " AND lease_until_ms = ?3 AND status IN ('created', 'running')",
				  &st, err)) < 0)
			return r;
		struct binder b = { st, SQLITE_OK };
		sql_b_text(&b, 1, c->id);
		sql_b_text(&b, 2, c->owner);
		sql_b_int(&b, 3, c->until_ms);
		sql_b_text(&b, 4, reason);
		sql_b_int(&b, 5, now_ms);
		if (b.rc != SQLITE_OK)
			return sql_fail(d, b.rc, err, "bind");
		if ((r = sql_step(d, st, err, "mark a run lost")) < 0)
			return r;
		if (sqlite3_changes(d->db) == 0)
			return 0;
	}
	if (retry && (r = sqlite_run_insert(d, retry, err)) < 0)
		return r;
	if ((r = sql_txn_commit(&t, err)) < 0)
		return r;
	return 1;
}

int sqlite_runs_queued(struct store *s, const char *ws, uint64_t *total, uint64_t *in_ws,
		       struct cdn_err *err)
{
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = sql_prep(d,
			 "SELECT count(*), coalesce(sum(workspace = ?1), 0) FROM runs"
			 " WHERE " STORE_QUEUED,
			 &st, err);
	if (r < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, ws);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	if ((r = sql_step(d, st, err, "count queued runs")) < 0)
		return r;
	*total = r == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
	*in_ws = r == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 1) : 0;
	return 0;
}

int sqlite_run_cancel_queued(struct store *s, const char *id, const char *why, int64_t now_ms,
			     struct cdn_err *err)
{
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = sql_prep(d,
			 "UPDATE runs SET status = 'cancelled', error = ?2, finished_ms = ?3"
			 " WHERE id = ?1 AND " STORE_QUEUED,
			 &st, err);
	if (r < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, id);
	sql_b_text(&b, 2, why);
	sql_b_int(&b, 3, now_ms);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	if ((r = sql_step(d, st, err, "cancel a queued run")) < 0)
		return r;
	return sqlite3_changes(d->db) > 0 ? 1 : 0;
}
