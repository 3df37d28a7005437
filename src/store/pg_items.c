/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Postgres queries for the registry (items: agents, capabilities, envs;
 * and grants) and the vault's rows (secrets, workspace keys). Values are
 * always parameters; the arguments were checked by store_db.c.
 */
#define _GNU_SOURCE
#include "store/pg.h"

#include <errno.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/cleanup.h"

/* The advisory lock class of a new item version (pg_advisory_xact_lock's
 * first key; the second is a hash of what is versioned). */
#define PG_ITEM_LOCK 0x63646e01

/* --------------------------------------------------------------- registry */

int pg_item_put(struct store *s, const struct store_item *item, unsigned *version, bool *created,
		struct cdn_err *err)
{
	const char *kind = store_kind_name(item->kind);
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	_cleanup_pg_txn_ struct pg_txn t = { .d = d };
	int r = pg_txn_begin(&t, err);
	if (r < 0)
		return r;
	struct pg_params key = { 0 };
	pg_p_text(&key, kind);
	pg_p_text(&key, item->workspace);
	pg_p_text(&key, item->name);
	{
		/* Reading the latest version and adding the next is one step
		 * for every process: the lock waits for another writer of the
		 * same name (a hash collision only makes two names wait). */
		_cleanup_pgres_ PGresult *res = NULL;
		struct pg_params p = key;
		pg_p_int(&p, PG_ITEM_LOCK);
		if ((r = pg_exec(d,
				 "SELECT pg_advisory_xact_lock($4::integer,"
				 " hashtext($1::text || '/' || $2::text || '/' || $3::text))",
				 &p, false, &res, err, "lock %s %s", kind, item->name)) < 0)
			return r;
	}
	int64_t latest = 0;
	{
		_cleanup_pgres_ PGresult *res = NULL;
		if ((r = pg_exec(d,
				 "SELECT version, hash FROM items WHERE kind = $1 AND workspace = $2"
				 " AND name = $3 ORDER BY version DESC LIMIT 1",
				 &key, false, &res, err, "read the latest version")) < 0)
			return r;
		if (PQntuples(res) == 1) {
			struct store_row row = pg_row(res, 0);
			if (!row.int64(&row, 0, &latest) || latest < 1)
				return store_row_fail(d->shown, "item", -EIO, err);
			/* Same content: the version that holds it stands. */
			if (!strcmp(PQgetvalue(res, 0, 1), item->hash)) {
				if (version)
					*version = (unsigned)latest;
				if (created)
					*created = false;
				return pg_txn_commit(&t, err);
			}
		}
	}
	if (latest >= UINT32_MAX)
		return cdn_err_msg(err, EOVERFLOW, "store: %s %s: too many versions", kind,
				   item->name);
	struct pg_params p = key;
	pg_p_int(&p, latest + 1);
	pg_p_text(&p, item->hash);
	pg_p_text(&p, item->tree);
	pg_p_text(&p, item->doc);
	pg_p_int(&p, item->created > 0 ? item->created : (int64_t)time(NULL));
	_cleanup_pgres_ PGresult *res = NULL;
	if ((r = pg_exec(d,
			 "INSERT INTO items (" STORE_ITEM_COLUMNS ")"
			 " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
			 &p, false, &res, err, "insert %s %s", kind, item->name)) < 0 ||
	    (r = pg_txn_commit(&t, err)) < 0)
		return r;
	if (version)
		*version = (unsigned)(latest + 1);
	if (created)
		*created = true;
	return 0;
}

int pg_item_get(struct store *s, enum store_kind kind, const char *ws, const char *name,
		unsigned version, struct store_item *out, struct cdn_err *err)
{
	const char *kn = store_kind_name(kind);
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, kn);
	pg_p_text(&p, ws);
	pg_p_text(&p, name);
	/* $4 = 0: the latest. */
	pg_p_int(&p, version);
	_cleanup_pgres_ PGresult *res = NULL;
	int r = pg_exec(d,
			"SELECT " STORE_ITEM_COLUMNS " FROM items WHERE kind = $1"
			" AND workspace = $2 AND name = $3 AND ($4 = 0 OR version = $4)"
			" ORDER BY version DESC LIMIT 1",
			&p, false, &res, err, "read %s %s", kn, name);
	if (r < 0)
		return r;
	if (PQntuples(res) == 0) {
		if (version)
			return cdn_err_msg(err, ENOENT, "no %s %s version %u in workspace %s", kn, name,
					   version, ws);
		return cdn_err_msg(err, ENOENT, "no %s %s in workspace %s", kn, name, ws);
	}
	struct store_row row = pg_row(res, 0);
	if ((r = store_row_item(&row, out)) < 0)
		return store_row_fail(d->shown, "item", r, err);
	return 0;
}

int pg_item_list(struct store *s, enum store_kind kind, const char *ws, struct store_item **out,
		 size_t *n, struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, store_kind_name(kind));
	pg_p_text(&p, ws);
	_cleanup_pgres_ PGresult *res = NULL;
	int r = pg_exec(d,
			"SELECT DISTINCT ON (name) " STORE_ITEM_COLUMNS " FROM items"
			" WHERE kind = $1 AND workspace = $2 ORDER BY name, version DESC",
			&p, false, &res, err, "list items");
	if (r < 0)
		return r;
	int rows = PQntuples(res);
	struct store_item *v = calloc(rows ? (size_t)rows : 1, sizeof(*v));
	if (!v)
		return cdn_err_set(err, ENOMEM, "store: list items");
	for (int i = 0; i < rows; i++) {
		struct store_row row = pg_row(res, i);
		if ((r = store_row_item(&row, &v[i])) < 0) {
			store_items_free(v, (size_t)i);
			return store_row_fail(d->shown, "item", r, err);
		}
	}
	*out = v;
	*n = (size_t)rows;
	return 0;
}

int pg_grant_add(struct store *s, const char *ws, const char *agent, const char *capability,
		 struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, ws);
	pg_p_text(&p, agent);
	pg_p_text(&p, capability);
	pg_p_int(&p, (int64_t)time(NULL));
	_cleanup_pgres_ PGresult *res = NULL;
	/* A grant given twice is one grant. */
	return pg_exec(d,
		       "INSERT INTO grants (workspace, agent, capability, created)"
		       " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
		       &p, false, &res, err, "add a grant");
}

bool pg_grant_has(struct store *s, const char *ws, const char *agent, const char *capability)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, ws);
	pg_p_text(&p, agent);
	pg_p_text(&p, capability);
	_cleanup_pgres_ PGresult *res = NULL;
	/* Any failure reads as "not granted": fail closed. */
	return pg_exec(d,
		       "SELECT 1 FROM grants WHERE workspace = $1 AND agent = $2"
		       " AND capability = $3",
		       &p, false, &res, NULL, "read a grant") == 0 &&
	       PQntuples(res) == 1;
}

/* ---------------------------------------------------------------- secrets */

int pg_secret_put(struct store *s, const char *ws, const char *name, const uint8_t *blob,
		  size_t len, size_t plain_len, struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, ws);
	pg_p_text(&p, name);
	pg_p_bytes(&p, blob, len);
	pg_p_int(&p, (int64_t)plain_len);
	pg_p_int(&p, (int64_t)time(NULL));
	_cleanup_pgres_ PGresult *res = NULL;
	/* Replacing a value keeps its creation time. */
	return pg_exec(d,
		       "INSERT INTO secrets (workspace, name, ciphertext, plain_len, created,"
		       " updated) VALUES ($1, $2, $3, $4, $5, $5)"
		       " ON CONFLICT (workspace, name) DO UPDATE SET"
		       " ciphertext = excluded.ciphertext, plain_len = excluded.plain_len,"
		       " updated = excluded.updated",
		       &p, false, &res, err, "write secret %s", name);
}

/* The one bytea column of sql's single row, in binary form: the bytes
 * themselves. */
static int read_blob(struct pg_db *d, const char *sql, const struct pg_params *p,
		     uint8_t **blob, size_t *len, struct cdn_err *err, const char *what)
{
	_cleanup_pgres_ PGresult *res = NULL;
	int r = pg_exec(d, sql, p, true, &res, err, "read %s", what);
	if (r < 0)
		return r;
	if (PQntuples(res) == 0)
		return -ENOENT;
	struct store_row row = pg_row(res, 0);
	if ((r = store_row_blob(&row, 0, blob, len)) < 0)
		return cdn_err_set(err, -r, "store: postgres %s: %s", d->shown, what);
	return 0;
}

int pg_secret_get(struct store *s, const char *ws, const char *name, uint8_t **blob, size_t *len,
		  struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, ws);
	pg_p_text(&p, name);
	int r = read_blob(d, "SELECT ciphertext FROM secrets WHERE workspace = $1 AND name = $2",
			  &p, blob, len, err, "a secret");
	if (r == -ENOENT)
		return cdn_err_msg(err, ENOENT, "secret %s is not set in workspace %s", name, ws);
	return r;
}

int pg_secret_delete(struct store *s, const char *ws, const char *name, struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, ws);
	pg_p_text(&p, name);
	_cleanup_pgres_ PGresult *res = NULL;
	int r = pg_exec(d, "DELETE FROM secrets WHERE workspace = $1 AND name = $2", &p, false,
			&res, err, "delete secret %s", name);
	if (r < 0)
		return r;
	if (pg_changed(res) == 0)
		return cdn_err_msg(err, ENOENT, "secret %s is not set in workspace %s", name, ws);
	return 0;
}

int pg_secret_list(struct store *s, const char *ws, struct store_secret_info **out, size_t *n,
		   struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, ws);
	_cleanup_pgres_ PGresult *res = NULL;
	int r = pg_exec(d,
			"SELECT " STORE_SECRET_INFO_COLUMNS " FROM secrets WHERE workspace = $1"
			" ORDER BY name",
			&p, false, &res, err, "list secrets");
	if (r < 0)
		return r;
	int rows = PQntuples(res);
	_cleanup_free_ struct store_secret_info *v = calloc(rows ? (size_t)rows : 1, sizeof(*v));
	if (!v)
		return cdn_err_set(err, ENOMEM, "store: list secrets");
	for (int i = 0; i < rows; i++) {
		struct store_row row = pg_row(res, i);
		if ((r = store_row_secret_info(&row, &v[i])) < 0)
			return store_row_fail(d->shown, "secret", r, err);
	}
	*out = cdn_steal(&v);
	*n = (size_t)rows;
	return 0;
}

int pg_wskey_get(struct store *s, const char *ws, uint8_t **blob, size_t *len,
		 struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, ws);
	int r = read_blob(d, "SELECT wrapped FROM workspace_keys WHERE workspace = $1", &p, blob,
			  len, err, "a workspace key");
	if (r == -ENOENT)
		return cdn_err_msg(err, ENOENT, "workspace %s has no key yet", ws);
	return r;
}

int pg_wskey_put(struct store *s, const char *ws, const uint8_t *blob, size_t len,
		 struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	struct pg_params p = { 0 };
	pg_p_text(&p, ws);
	pg_p_bytes(&p, blob, len);
	pg_p_int(&p, (int64_t)time(NULL));
	_cleanup_pgres_ PGresult *res = NULL;
	/* No upsert: replacing a key would orphan every secret sealed with it. */
	int r = pg_exec(d,
			"INSERT INTO workspace_keys (workspace, wrapped, created)"
			" VALUES ($1, $2, $3)",
			&p, false, &res, err, "write the key of workspace %s", ws);
	if (r == -EEXIST)
		return cdn_err_msg(err, EEXIST, "store: workspace %s has a key already", ws);
	return r;
}
