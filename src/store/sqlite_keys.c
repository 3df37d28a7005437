/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SQLite queries for API keys: stored by hash only, listed, revoked and
 * touched. Values are always bound parameters.
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


/* --------------------------------------------------------------- api keys */

#define KEY_COLUMNS STORE_KEY_COLUMNS

static int key_read(sqlite3_stmt *st, struct store_key *k)
{
	struct store_row row = sql_row(st);
	return store_row_key(&row, k);
}

int sqlite_key_put(struct store *s, const struct store_key *k, struct cdn_err *err)
{
	int r;
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if ((r = sql_prep(d, "INSERT INTO api_keys (" KEY_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, 0)",
		      &st, err)) < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, k->id);
	sql_b_text(&b, 2, k->workspace);
	sql_b_text(&b, 3, k->name);
	sql_b_text(&b, 4, k->role);
	sql_b_text(&b, 5, k->hash);
	sql_b_int(&b, 6, k->created > 0 ? k->created : (int64_t)time(NULL));
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	int rc = sqlite3_step(st);
	if ((rc & 0xff) == SQLITE_CONSTRAINT)
		return cdn_err_msg(err, EEXIST, "store: key %s exists already", k->id);
	if (rc != SQLITE_DONE)
		return sql_fail(d, rc, err, "insert key %s", k->id);
	return 0;
}

int sqlite_key_by_hash(struct store *s, const char *hash, struct store_key *out,
		       struct cdn_err *err)
{
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = sql_prep(d, "SELECT " KEY_COLUMNS " FROM api_keys WHERE hash = ?1", &st, err);
	if (r < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, hash);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	r = sql_step(d, st, err, "find a key");
	if (r < 0)
		return r;
	if (r != SQLITE_ROW)
		return cdn_err_msg(err, ENOENT, "no such key");
	if (key_read(st, out) < 0)
		return cdn_err_msg(err, EIO, "store: %s: a key row is malformed", d->path);
	return 0;
}

int sqlite_key_list(struct store *s, const char *ws, struct store_key **out, size_t *n,
		    struct cdn_err *err)
{
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = sql_prep(d,
		     ws ? "SELECT " KEY_COLUMNS " FROM api_keys WHERE workspace = ?1 ORDER BY created, id"
			: "SELECT " KEY_COLUMNS " FROM api_keys ORDER BY created, id",
		     &st, err);
	if (r < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	if (ws)
		sql_b_text(&b, 1, ws);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	_cleanup_free_ struct store_key *v = NULL;
	size_t count = 0, cap = 0;
	while ((r = sql_step(d, st, err, "list keys")) == SQLITE_ROW) {
		if (count == cap) {
			size_t nc = cap ? cap * 2 : 8;
			struct store_key *nv = realloc(v, nc * sizeof(*nv));
			if (!nv)
				return cdn_err_set(err, ENOMEM, "store: list keys");
			v = nv;
			cap = nc;
		}
		if (key_read(st, &v[count]) < 0)
			return cdn_err_msg(err, EIO, "store: %s: a key row is malformed", d->path);
		count++;
	}
	if (r < 0)
		return r;
	*out = cdn_steal(&v);
	*n = count;
	return 0;
}

int sqlite_key_revoke(struct store *s, const char *ws, const char *id, struct cdn_err *err)
{
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = sql_prep(d, "UPDATE api_keys SET revoked = 1 WHERE workspace = ?1 AND id = ?2", &st,
		     err);
	if (r < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, ws);
	sql_b_text(&b, 2, id);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	if ((r = sql_step(d, st, err, "revoke a key")) < 0)
		return r;
	if (sqlite3_changes(d->db) == 0)
		return cdn_err_msg(err, ENOENT, "no key %s in workspace %s", id, ws);
	return 0;
}

int sqlite_key_touch(struct store *s, const char *id, int64_t now, struct cdn_err *err)
{
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = sql_prep(d, "UPDATE api_keys SET last_used = ?2 WHERE id = ?1", &st, err);
	if (r < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, id);
	sql_b_int(&b, 2, now);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	r = sql_step(d, st, err, "note a key's use");
	return r < 0 ? r : 0;
}
