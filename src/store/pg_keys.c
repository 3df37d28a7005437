/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Postgres queries for API keys: stored by hash only, listed, revoked and
 * touched. Values are always parameters.
 */
#define _GNU_SOURCE
#include "store/pg.h"

#include <errno.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/cleanup.h"

int pg_key_put(struct store *s, const struct store_key *k, struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, k->id);
	pg_p_text(&p, k->workspace);
	pg_p_text(&p, k->name);
	pg_p_text(&p, k->role);
	pg_p_text(&p, k->hash);
	pg_p_int(&p, k->created > 0 ? k->created : (int64_t)time(NULL));
	_cleanup_pgres_ PGresult *res = NULL;
	int r = pg_exec(d,
			"INSERT INTO api_keys (" STORE_KEY_COLUMNS ")"
			" VALUES ($1, $2, $3, $4, $5, $6, 0, 0)",
			&p, false, &res, err, "insert key %s", k->id);
	if (r == -EEXIST)
		return cdn_err_msg(err, EEXIST, "store: key %s exists already", k->id);
	return r;
}

int pg_key_by_hash(struct store *s, const char *hash, struct store_key *out,
		   struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, hash);
	_cleanup_pgres_ PGresult *res = NULL;
	int r = pg_exec(d, "SELECT " STORE_KEY_COLUMNS " FROM api_keys WHERE hash = $1", &p, false,
			&res, err, "find a key");
	if (r < 0)
		return r;
	if (PQntuples(res) == 0)
		return cdn_err_msg(err, ENOENT, "no such key");
	struct store_row row = pg_row(res, 0);
	if (store_row_key(&row, out) < 0)
		return store_row_fail(d->shown, "key", -EIO, err);
	return 0;
}

int pg_key_list(struct store *s, const char *ws, struct store_key **out, size_t *n,
		struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	/* NULL: every workspace. */
	pg_p_text(&p, ws);
	_cleanup_pgres_ PGresult *res = NULL;
	int r = pg_exec(d,
			"SELECT " STORE_KEY_COLUMNS " FROM api_keys"
			" WHERE $1::text IS NULL OR workspace = $1 ORDER BY created, id",
			&p, false, &res, err, "list keys");
	if (r < 0)
		return r;
	int rows = PQntuples(res);
	_cleanup_free_ struct store_key *v = calloc(rows ? (size_t)rows : 1, sizeof(*v));
	if (!v)
		return cdn_err_set(err, ENOMEM, "store: list keys");
	for (int i = 0; i < rows; i++) {
		struct store_row row = pg_row(res, i);
		if (store_row_key(&row, &v[i]) < 0)
			return store_row_fail(d->shown, "key", -EIO, err);
	}
	*out = cdn_steal(&v);
	*n = (size_t)rows;
	return 0;
}

int pg_key_revoke(struct store *s, const char *ws, const char *id, struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, ws);
	pg_p_text(&p, id);
	_cleanup_pgres_ PGresult *res = NULL;
	int r = pg_exec(d, "UPDATE api_keys SET revoked = 1 WHERE workspace = $1 AND id = $2", &p,
			false, &res, err, "revoke key %s", id);
	if (r < 0)
		return r;
	if (pg_changed(res) == 0)
		return cdn_err_msg(err, ENOENT, "no key %s in workspace %s", id, ws);
	return 0;
}

int pg_key_touch(struct store *s, const char *id, int64_t now, struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, id);
	pg_p_int(&p, now);
	_cleanup_pgres_ PGresult *res = NULL;
	return pg_exec(d, "UPDATE api_keys SET last_used = $2 WHERE id = $1", &p, false, &res, err,
		       "note the use of key %s", id);
}
