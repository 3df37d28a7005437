/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Postgres queries for services (store.h, docs/services.md). An update is
 * one UPDATE whose WHERE repeats the run and start time read, so of several
 * nodes exactly one starts a service, and one counts each end. Every
 * statement is constant text; values are always parameters.
 */
#define _GNU_SOURCE
#include "store/pg.h"

#include <errno.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#include "base/cleanup.h"

int pg_service_create(struct store *s, const struct store_service *sv, struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, sv->workspace);
	pg_p_text(&p, sv->name);
	pg_p_text(&p, sv->agent);
	pg_p_text(&p, sv->input_json);
	pg_p_text(&p, sv->env_json);
	pg_p_text(&p, sv->secrets_json);
	pg_p_int(&p, sv->paused);
	pg_p_text(&p, sv->created_by);
	pg_p_int(&p, sv->created_ms);
	_cleanup_pgres_ PGresult *res = NULL;
	return pg_exec(d,
		       "INSERT INTO services (workspace, name, agent, input_json, env_json,"
		       " secrets_json, paused, created_by, created_ms)"
		       " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
		       &p, false, &res, err, "create service %s", sv->name);
}

static int rows(struct pg_db *d, PGresult *res, struct store_service **out, size_t *n,
		struct cdn_err *err)
{
	int count = PQntuples(res);
	struct store_service *v = count ? calloc((size_t)count, sizeof(*v)) : NULL;
	if (count && !v)
		return cdn_err_set(err, ENOMEM, "store: services");
	for (int i = 0; i < count; i++) {
		struct store_row row = pg_row(res, i);
		int r = store_row_service(&row, &v[i]);
		if (r < 0) {
			store_services_free(v, (size_t)i + 1);
			return store_row_fail(d->shown, "service", r, err);
		}
	}
	*out = v;
	*n = (size_t)count;
	return 0;
}

int pg_service_get(struct store *s, const char *ws, const char *name, struct store_service *out,
		   struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, ws);
	pg_p_text(&p, name);
	_cleanup_pgres_ PGresult *res = NULL;
	int r = pg_exec(d,
			"SELECT " STORE_SERVICE_COLUMNS
			" FROM services WHERE workspace = $1 AND name = $2",
			&p, false, &res, err, "read service %s", name);
	if (r < 0)
		return r;
	struct store_service *v = NULL;
	size_t n = 0;
	if ((r = rows(d, res, &v, &n, err)) < 0)
		return r;
	if (!v || n == 0) {
		free(v);
		return cdn_err_msg(err, ENOENT, "no service %s in workspace %s", name, ws);
	}
	*out = v[0];
	free(v);
	return 0;
}

int pg_service_list(struct store *s, const char *ws, struct store_service **out, size_t *n,
		    struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, ws);
	_cleanup_pgres_ PGresult *res = NULL;
	int r = pg_exec(d,
			"SELECT " STORE_SERVICE_COLUMNS " FROM services"
			" WHERE ($1::text IS NULL OR workspace = $1) ORDER BY workspace, name"
			" LIMIT 100000",
			&p, false, &res, err, "list services");
	return r < 0 ? r : rows(d, res, out, n, err);
}

int pg_service_delete(struct store *s, const char *ws, const char *name, int64_t gen,
		      struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, ws);
	pg_p_text(&p, name);
	pg_p_int(&p, gen);
	_cleanup_pgres_ PGresult *res = NULL;
	int r = pg_exec(d,
			"DELETE FROM services WHERE workspace = $1 AND name = $2 AND gen = $3::bigint",
			&p, false, &res, err, "remove service %s", name);
	if (r < 0)
		return r;
	return pg_changed(res) ? 1 : 0;
}

int pg_service_update(struct store *s, const struct store_service *sv, struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, sv->workspace);
	pg_p_text(&p, sv->name);
	pg_p_int(&p, sv->gen);
	pg_p_int(&p, sv->paused);
	pg_p_text(&p, sv->pause_reason);
	pg_p_text(&p, sv->current_run);
	pg_p_int(&p, sv->next_ms);
	pg_p_int(&p, (int64_t)sv->starts);
	pg_p_int(&p, (int64_t)sv->exits);
	pg_p_text(&p, sv->exit_times);
	pg_p_text(&p, sv->last_exit);
	pg_p_int(&p, sv->last_exit_ms);
	pg_p_text(&p, sv->last_run);
	_cleanup_pgres_ PGresult *res = NULL;
	int r = pg_exec(d,
			"UPDATE services SET paused = $4::bigint, pause_reason = $5,"
			" current_run = $6, next_ms = $7::bigint, starts = $8::bigint,"
			" exits = $9::bigint, exit_times = $10, last_exit = $11,"
			" last_exit_ms = $12::bigint, last_run = $13, gen = gen + 1"
			" WHERE workspace = $1 AND name = $2 AND gen = $3::bigint",
			&p, false, &res, err, "update service %s", sv->name);
	return r < 0 ? r : pg_changed(res) ? 1 : 0;
}
