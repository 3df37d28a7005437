/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SQLite queries for services (store.h, docs/services.md). Every statement
 * is constant text; values are always bound.
 */
#define _GNU_SOURCE
#include "store/sqlite.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "base/cleanup.h"

int sqlite_service_create(struct store *s, const struct store_service *sv, struct cdn_err *err)
{
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = sql_prep(d,
			 "INSERT INTO services (workspace, name, agent, input_json, env_json,"
			 " secrets_json, paused, created_by, created_ms)"
			 " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
			 &st, err);
	if (r < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, sv->workspace);
	sql_b_text(&b, 2, sv->name);
	sql_b_text(&b, 3, sv->agent);
	sql_b_text(&b, 4, sv->input_json);
	sql_b_text(&b, 5, sv->env_json);
	sql_b_text(&b, 6, sv->secrets_json);
	sql_b_int(&b, 7, sv->paused);
	sql_b_text(&b, 8, sv->created_by);
	sql_b_int(&b, 9, sv->created_ms);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	r = sql_step(d, st, err, "create service");
	return r < 0 ? r : 0;
}

static int read_rows(struct sql_db *d, sqlite3_stmt *st, struct store_service **out, size_t *n,
		     struct cdn_err *err)
{
	struct store_service *v = NULL;
	size_t count = 0, cap = 0;
	int r;
	while ((r = sql_step(d, st, err, "read services")) == SQLITE_ROW) {
		if (count == cap) {
			size_t nc = cap ? cap * 2 : 16;
			struct store_service *nv = realloc(v, nc * sizeof(*nv));
			if (!nv) {
				r = cdn_err_set(err, ENOMEM, "store: services");
				break;
			}
			v = nv;
			cap = nc;
		}
		struct store_row row = sql_row(st);
		if ((r = store_row_service(&row, &v[count])) < 0) {
			r = cdn_err_set(err, -r, "store: services");
			break;
		}
		count++;
	}
	if (r < 0) {
		store_services_free(v, count);
		return r;
	}
	*out = v;
	*n = count;
	return 0;
}

int sqlite_service_get(struct store *s, const char *ws, const char *name,
		       struct store_service *out, struct cdn_err *err)
{
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = sql_prep(d,
			 "SELECT " STORE_SERVICE_COLUMNS
			 " FROM services WHERE workspace = ?1 AND name = ?2",
			 &st, err);
	if (r < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, ws);
	sql_b_text(&b, 2, name);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	struct store_service *v = NULL;
	size_t n = 0;
	if ((r = read_rows(d, st, &v, &n, err)) < 0)
		return r;
	if (n == 0) {
		free(v);
		return cdn_err_msg(err, ENOENT, "no service %s in workspace %s", name, ws);
	}
	*out = v[0];
	free(v);
	return 0;
}

int sqlite_service_list(struct store *s, const char *ws, struct store_service **out, size_t *n,
			struct cdn_err *err)
{
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = sql_prep(d,
			 "SELECT " STORE_SERVICE_COLUMNS " FROM services"
			 " WHERE (?1 IS NULL OR workspace = ?1) ORDER BY workspace, name"
			 " LIMIT 100000",
			 &st, err);
	if (r < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, ws);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	return read_rows(d, st, out, n, err);
}

int sqlite_service_delete(struct store *s, const char *ws, const char *name, int64_t gen,
			  struct cdn_err *err)
{
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = sql_prep(d, "DELETE FROM services WHERE workspace = ?1 AND name = ?2 AND gen = ?3",
			 &st, err);
	if (r < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, ws);
	sql_b_text(&b, 2, name);
	sql_b_int(&b, 3, gen);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	if ((r = sql_step(d, st, err, "remove service")) < 0)
		return r;
	return sqlite3_changes(d->db) ? 1 : 0;
}

int sqlite_service_update(struct store *s, const struct store_service *sv, struct cdn_err *err)
{
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = sql_prep(d,
			 "UPDATE services SET paused = ?4, pause_reason = ?5, current_run = ?6,"
			 " next_ms = ?7, starts = ?8, exits = ?9, exit_times = ?10,"
			 " last_exit = ?11, last_exit_ms = ?12, last_run = ?13, gen = gen + 1"
			 " WHERE workspace = ?1 AND name = ?2 AND gen = ?3",
			 &st, err);
	if (r < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, sv->workspace);
	sql_b_text(&b, 2, sv->name);
	sql_b_int(&b, 3, sv->gen);
	sql_b_int(&b, 4, sv->paused);
	sql_b_text(&b, 5, sv->pause_reason);
	sql_b_text(&b, 6, sv->current_run);
	sql_b_int(&b, 7, sv->next_ms);
	sql_b_int(&b, 8, (int64_t)sv->starts);
	sql_b_int(&b, 9, (int64_t)sv->exits);
	sql_b_text(&b, 10, sv->exit_times);
	sql_b_text(&b, 11, sv->last_exit);
	sql_b_int(&b, 12, sv->last_exit_ms);
	sql_b_text(&b, 13, sv->last_run);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	if ((r = sql_step(d, st, err, "update service")) < 0)
		return r;
	return sqlite3_changes(d->db) ? 1 : 0;
}
