/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Postgres queries for workers' leases (store.h, docs/deploy.md): claim
 * the oldest queued run a worker's labels cover, renew a worker's leases,
 * and expire the ones that ran out. Any number of workers and API nodes
 * share the database:
 *   - a claim is one statement whose inner SELECT takes the row with FOR
 *     UPDATE SKIP LOCKED, so concurrent workers each get a different run
 *     (or none) without waiting on each other;
 *   - expiry marks a run only where the row still holds the owner and
 *     lease it judged, so of several nodes expiring at once one marks it
 *     (the others' UPDATE waits for the row lock, then finds it changed),
 *     and the retry it queues is in the same transaction.
 * Labels are text in their canonical form, compared as jsonb (`<@`).
 * Every statement is constant text; values are always parameters.
 */
#define _GNU_SOURCE
#include "store/pg.h"

#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cleanup.h"

int pg_run_lease_claim(struct store *s, const char *worker, const char *labels,
		       int64_t until_ms, struct store_run *out, struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, worker);
	pg_p_int(&p, until_ms);
	pg_p_text(&p, labels[0] ? labels : "{}");
	_cleanup_pgres_ PGresult *res = NULL;
	int r = pg_exec(d,
			"UPDATE runs SET lease_owner = $1, lease_until_ms = $2 WHERE id = ("
			" SELECT id FROM runs WHERE " STORE_QUEUED
			" AND (labels = '' OR labels::jsonb <@ $3::jsonb)"
			" ORDER BY created_ms, id FOR UPDATE SKIP LOCKED LIMIT 1)"
			" RETURNING " STORE_RUN_COLUMNS,
			&p, false, &res, err, "lease a run");
	if (r < 0)
		return r;
	if (PQntuples(res) == 0)
		return 0;
	struct store_row row = pg_row(res, 0);
	if ((r = store_row_run(&row, out)) < 0)
		return store_row_fail(d->shown, "run", r, err);
	return 1;
}

int pg_lease_renew(struct store *s, const char *worker, int64_t now_ms, int64_t until_ms,
		   char (**ids)[STORE_RUN_ID_MAX + 1], size_t *n, struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, worker);
	pg_p_int(&p, now_ms);
	pg_p_int(&p, until_ms);
	_cleanup_pgres_ PGresult *res = NULL;
	/* Only a lease that has not run out: one that has is the expiry's,
	 * whether or not a node has marked its run yet. */
	int r = pg_exec(d,
			"UPDATE runs SET lease_until_ms = $3 WHERE lease_owner = $1"
			" AND status IN ('created', 'running') AND lease_until_ms >= $2"
			" RETURNING id",
			&p, false, &res, err, "renew the leases of %s", worker);
	if (r < 0)
		return r;
	int rows = PQntuples(res);
	char(*v)[STORE_RUN_ID_MAX + 1] = calloc(rows ? (size_t)rows : 1, sizeof(*v));
	if (!v)
		return cdn_err_set(err, ENOMEM, "store: renew leases");
	for (int i = 0; i < rows; i++)
		snprintf(v[i], sizeof(v[i]), "%s", PQgetvalue(res, i, 0));
	*ids = v;
	*n = (size_t)rows;
	return 0;
}

int pg_leases_expired(struct store *s, int64_t now_ms, struct store_lease_candidate **out,
		      size_t *n, struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_int(&p, now_ms);
	_cleanup_pgres_ PGresult *res = NULL;
	int r = pg_exec(d,
			"SELECT id, lease_owner, lease_until_ms FROM runs"
			" WHERE status IN ('created', 'running') AND lease_owner <> ''"
			" AND lease_until_ms < $1 ORDER BY lease_until_ms, id LIMIT 1000",
			&p, false, &res, err, "list expired leases");
	if (r < 0)
		return r;
	int rows = PQntuples(res);
	struct store_lease_candidate *v = calloc(rows ? (size_t)rows : 1, sizeof(*v));
	if (!v)
		return cdn_err_set(err, ENOMEM, "store: expire leases");
	size_t count = 0;
	for (int i = 0; i < rows; i++) {
		struct store_lease_candidate *c = &v[count];
		const char *id = PQgetvalue(res, i, 0), *owner = PQgetvalue(res, i, 1);
		char *end;
		c->until_ms = strtoll(PQgetvalue(res, i, 2), &end, 10);
		if (strlen(id) > STORE_RUN_ID_MAX || strlen(owner) > STORE_WORKER_ID_MAX || *end)
			continue;
		snprintf(c->id, sizeof(c->id), "%s", id);
		snprintf(c->owner, sizeof(c->owner), "%s", owner);
		count++;
	}
	*out = v;
	*n = count;
	return 0;
}

int pg_run_mark_lost(struct store *s, const struct store_lease_candidate *c, const char *reason,
		     int64_t now_ms, const struct store_run *retry, struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	_cleanup_(pg_txn_endp) struct pg_txn t = { .d = d };
	int r = pg_txn_begin(&t, err);
	if (r < 0)
		return r;
	struct pg_params p = { 0 };
	pg_p_text(&p, c->id);
	pg_p_text(&p, c->owner);
	pg_p_int(&p, c->until_ms);
	pg_p_text(&p, reason);
	pg_p_int(&p, now_ms);
	{
		_cleanup_pgres_ PGresult *res = NULL;
		/* The WHERE repeats what was judged: a run renewed, finished or
		 * marked by another node in the meantime is left alone. */
		if ((r = pg_exec(d,
				 "UPDATE runs SET status = 'lost', error = $4, finished_ms = $5,"
				 " exit_code = 125 WHERE id = $1 AND lease_owner = $2"
				 " AND lease_until_ms = $3 AND status IN ('created', 'running')",
				 &p, false, &res, err, "mark run %s lost", c->id)) < 0)
			return r;
		if (pg_changed(res) == 0)
			return 0;
	}
	if (retry && (r = pg_run_insert(d, retry, err)) < 0)
		return r;
	if ((r = pg_txn_commit(&t, err)) < 0)
		return r;
	return 1;
}

int pg_runs_queued(struct store *s, const char *ws, uint64_t *total, uint64_t *in_ws,
		   struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, ws);
	_cleanup_pgres_ PGresult *res = NULL;
	int r = pg_exec(d,
			"SELECT count(*), count(*) FILTER (WHERE workspace = $1) FROM runs"
			" WHERE " STORE_QUEUED,
			&p, false, &res, err, "count queued runs");
	if (r < 0)
		return r;
	*total = PQntuples(res) ? strtoull(PQgetvalue(res, 0, 0), NULL, 10) : 0;
	*in_ws = PQntuples(res) ? strtoull(PQgetvalue(res, 0, 1), NULL, 10) : 0;
	return 0;
}

int pg_listen(struct store *s, const char *channel, int *fd, struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	if (d->listen) {
		PQfinish(d->listen);
		d->listen = NULL;
	}
	PGconn *c = NULL;
	int r = pg_connect(d, &c, err);
	if (r == 0) {
		char *name = PQescapeIdentifier(c, channel, strlen(channel));
		char sql[160];
		snprintf(sql, sizeof(sql), "LISTEN %s", name ? name : "");
		PQfreemem(name);
		PGresult *res = name ? PQexec(c, sql) : NULL;
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			r = cdn_err_msg(err, EIO, "store: postgres %s: LISTEN: %s", d->shown,
					PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
						?: "failed");
		PQclear(res);
	}
	if (r < 0 || PQsetnonblocking(c, 1) != 0 || PQsocket(c) < 0) {
		if (c)
			PQfinish(c);
		return r < 0 ? r : cdn_err_msg(err, EIO, "store: postgres %s: LISTEN", d->shown);
	}
	d->listen = c;
	*fd = PQsocket(c);
	return 0;
}

void pg_unlisten(struct store *s)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	if (d->listen)
		PQfinish(d->listen);
	d->listen = NULL;
}

bool pg_queue_notified(struct store *s, bool *broken)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	*broken = !d->listen || !PQconsumeInput(d->listen) || PQstatus(d->listen) != CONNECTION_OK;
	if (*broken) {
		if (d->listen)
			PQfinish(d->listen);
		d->listen = NULL;
		return true;
	}
	bool any = false;
	PGnotify *n;
	while ((n = PQnotifies(d->listen))) {
		any = true;
		PQfreemem(n);
	}
	return any;
}

int pg_run_cancel_queued(struct store *s, const char *id, const char *why, int64_t now_ms,
			 struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, id);
	pg_p_text(&p, why);
	pg_p_int(&p, now_ms);
	_cleanup_pgres_ PGresult *res = NULL;
	int r = pg_exec(d,
			"UPDATE runs SET status = 'cancelled', error = $2, finished_ms = $3"
			" WHERE id = $1 AND " STORE_QUEUED,
			&p, false, &res, err, "cancel run %s", id);
	if (r < 0)
		return r;
	return pg_changed(res) > 0 ? 1 : 0;
}
