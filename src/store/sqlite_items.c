/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SQLite queries for the registry (items: agents, capabilities, envs; and
 * grants) and the vault's rows (secrets, workspace keys). Values are
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


/* --------------------------------------------------------------- registry */

static int item_read_fail(struct sql_db *d, int r, struct cdn_err *err)
{
	return store_row_fail(d->path, "item", r, err);
}

int sqlite_item_put(struct store *s, const struct store_item *item, unsigned *version,
		    bool *created, struct cdn_err *err)
{
	int r;
	const char *kind = store_kind_name(item->kind);
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_txn_ struct txn t = { .d = d };
	if ((r = sql_txn_begin(&t, err)) < 0)
		return r;
	int64_t latest = 0;
	{
		_cleanup_stmt_ sqlite3_stmt *st = NULL;
		if ((r = sql_prep(d,
			      "SELECT version, hash FROM items WHERE kind = ?1 AND workspace = ?2"
			      " AND name = ?3 ORDER BY version DESC LIMIT 1",
			      &st, err)) < 0)
			return r;
		struct binder b = { st, SQLITE_OK };
		sql_b_text(&b, 1, kind);
		sql_b_text(&b, 2, item->workspace);
		sql_b_text(&b, 3, item->name);
		if (b.rc != SQLITE_OK)
			return sql_fail(d, b.rc, err, "bind");
		if ((r = sql_step(d, st, err, "read the latest version")) < 0)
			return r;
		if (r == SQLITE_ROW) {
			latest = sqlite3_column_int64(st, 0);
			const char *hash = (const char *)sqlite3_column_text(st, 1);
			/* Same content: the version that holds it stands. */
			if (hash && !strcmp(hash, item->hash)) {
				if (version)
					*version = (unsigned)latest;
				if (created)
					*created = false;
				return sql_txn_commit(&t, err);
			}
		}
	}
	if (latest >= UINT32_MAX)
		return cdn_err_msg(err, EOVERFLOW, "store: %s %s: too many versions", kind,
				   item->name);
	_cleanup_stmt_ sqlite3_stmt *ins = NULL;
	if ((r = sql_prep(d,
		      "INSERT INTO items (kind, workspace, name, version, hash, tree, doc, created)"
		      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
		      &ins, err)) < 0)
		return r;
	struct binder b = { ins, SQLITE_OK };
	sql_b_text(&b, 1, kind);
	sql_b_text(&b, 2, item->workspace);
	sql_b_text(&b, 3, item->name);
	sql_b_int(&b, 4, latest + 1);
	sql_b_text(&b, 5, item->hash);
	sql_b_text(&b, 6, item->tree);
	sql_b_text(&b, 7, item->doc);
	sql_b_int(&b, 8, item->created > 0 ? item->created : (int64_t)time(NULL));
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	if ((r = sql_step(d, ins, err, "insert an item")) < 0)
		return r;
	if ((r = sql_txn_commit(&t, err)) < 0)
		return r;
	if (version)
		*version = (unsigned)(latest + 1);
	if (created)
		*created = true;
	return 0;
}

int sqlite_item_get(struct store *s, enum store_kind kind, const char *ws, const char *name,
		    unsigned version, struct store_item *out, struct cdn_err *err)
{
	const char *kn = store_kind_name(kind);
	int r;
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if ((r = sql_prep(d,
		      version ? "SELECT " STORE_ITEM_COLUMNS
				" FROM items WHERE kind = ?1 AND workspace = ?2 AND name = ?3"
				" AND version = ?4"
			      : "SELECT " STORE_ITEM_COLUMNS
				" FROM items WHERE kind = ?1 AND workspace = ?2 AND name = ?3"
				" ORDER BY version DESC LIMIT 1",
		      &st, err)) < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, kn);
	sql_b_text(&b, 2, ws);
	sql_b_text(&b, 3, name);
	if (version)
		sql_b_int(&b, 4, version);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	if ((r = sql_step(d, st, err, "read an item")) < 0)
		return r;
	if (r == SQLITE_DONE) {
		if (version)
			return cdn_err_msg(err, ENOENT, "no %s %s version %u in workspace %s", kn, name,
					   version, ws);
		return cdn_err_msg(err, ENOENT, "no %s %s in workspace %s", kn, name, ws);
	}
	struct store_row row = sql_row(st);
	if ((r = store_row_item(&row, out)) < 0)
		return item_read_fail(d, r, err);
	return 0;
}

int sqlite_item_list(struct store *s, enum store_kind kind, const char *ws,
		     struct store_item **out, size_t *n, struct cdn_err *err)
{
	const char *kn = store_kind_name(kind);
	int r;
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if ((r = sql_prep(d,
		      "SELECT i.kind, i.workspace, i.name, i.version, i.hash, i.tree, i.doc,"
		      " i.created FROM items i WHERE i.kind = ?1 AND i.workspace = ?2"
		      " AND i.version = (SELECT MAX(l.version) FROM items l WHERE"
		      " l.kind = i.kind AND l.workspace = i.workspace AND l.name = i.name)"
		      " ORDER BY i.name",
		      &st, err)) < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, kn);
	sql_b_text(&b, 2, ws);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	struct store_item *v = NULL;
	size_t count = 0, cap = 0;
	while ((r = sql_step(d, st, err, "list items")) == SQLITE_ROW) {
		if (count == cap) {
			size_t nc = cap ? cap * 2 : 16;
			struct store_item *nv = realloc(v, nc * sizeof(*nv));
			if (!nv) {
				r = cdn_err_set(err, ENOMEM, "store: list items");
				break;
			}
			v = nv;
			cap = nc;
		}
		struct store_row row = sql_row(st);
		if ((r = store_row_item(&row, &v[count])) < 0) {
			store_item_clear(&v[count]);
			r = item_read_fail(d, r, err);
			break;
		}
		count++;
	}
	if (r < 0) {
		store_items_free(v, count);
		return r;
	}
	*out = v;
	*n = count;
	return 0;
}

int sqlite_grant_add(struct store *s, const char *ws, const char *agent, const char *capability,
		     struct cdn_err *err)
{
	int r;
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	/* A grant given twice is one grant. */
	if ((r = sql_prep(d,
		      "INSERT INTO grants (workspace, agent, capability, created)"
		      " VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
		      &st, err)) < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, ws);
	sql_b_text(&b, 2, agent);
	sql_b_text(&b, 3, capability);
	sql_b_int(&b, 4, (int64_t)time(NULL));
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	r = sql_step(d, st, err, "add a grant");
	return r < 0 ? r : 0;
}

bool sqlite_grant_has(struct store *s, const char *ws, const char *agent, const char *capability)
{
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (sql_prep(d,
		 "SELECT 1 FROM grants WHERE workspace = ?1 AND agent = ?2 AND capability = ?3",
		 &st, NULL) < 0)
		return false;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, ws);
	sql_b_text(&b, 2, agent);
	sql_b_text(&b, 3, capability);
	/* Any failure reads as "not granted": fail closed. */
	return b.rc == SQLITE_OK && sql_step(d, st, NULL, "read a grant") == SQLITE_ROW;
}

/* ---------------------------------------------------------------- secrets */

int sqlite_secret_put(struct store *s, const char *ws, const char *name, const uint8_t *blob,
		      size_t len, size_t plain_len, struct cdn_err *err)
{
	int r;
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	/* Replacing a value keeps its creation time. */
	if ((r = sql_prep(d,
		      "INSERT INTO secrets (workspace, name, ciphertext, plain_len, created,"
		      " updated) VALUES (?1, ?2, ?3, ?4, ?5, ?5)"
		      " ON CONFLICT (workspace, name) DO UPDATE SET"
		      " ciphertext = excluded.ciphertext, plain_len = excluded.plain_len,"
		      " updated = excluded.updated",
		      &st, err)) < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, ws);
	sql_b_text(&b, 2, name);
	sql_b_blob(&b, 3, blob, len);
	sql_b_int(&b, 4, (int64_t)plain_len);
	sql_b_int(&b, 5, (int64_t)time(NULL));
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	r = sql_step(d, st, err, "write a secret");
	return r < 0 ? r : 0;
}

int sqlite_secret_get(struct store *s, const char *ws, const char *name, uint8_t **blob,
		      size_t *len, struct cdn_err *err)
{
	int r;
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if ((r = sql_prep(d, "SELECT ciphertext FROM secrets WHERE workspace = ?1 AND name = ?2", &st,
		      err)) < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, ws);
	sql_b_text(&b, 2, name);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	if ((r = sql_step(d, st, err, "read a secret")) < 0)
		return r;
	if (r == SQLITE_DONE)
		return cdn_err_msg(err, ENOENT, "secret %s is not set in workspace %s", name, ws);
	struct store_row row = sql_row(st);
	if ((r = store_row_blob(&row, 0, blob, len)) < 0)
		return cdn_err_set(err, -r, "store: %s: secret %s (workspace %s)", d->path, name,
				   ws);
	return 0;
}

int sqlite_secret_delete(struct store *s, const char *ws, const char *name, struct cdn_err *err)
{
	int r;
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if ((r = sql_prep(d, "DELETE FROM secrets WHERE workspace = ?1 AND name = ?2", &st, err)) < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, ws);
	sql_b_text(&b, 2, name);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	if ((r = sql_step(d, st, err, "delete a secret")) < 0)
		return r;
	if (sqlite3_changes(d->db) == 0)
		return cdn_err_msg(err, ENOENT, "secret %s is not set in workspace %s", name, ws);
	return 0;
}

int sqlite_secret_list(struct store *s, const char *ws, struct store_secret_info **out,
		       size_t *n, struct cdn_err *err)
{
	int r;
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if ((r = sql_prep(d,
		      "SELECT " STORE_SECRET_INFO_COLUMNS " FROM secrets WHERE workspace = ?1"
		      " ORDER BY name",
		      &st, err)) < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, ws);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	_cleanup_free_ struct store_secret_info *v = NULL;
	size_t count = 0, cap = 0;
	while ((r = sql_step(d, st, err, "list secrets")) == SQLITE_ROW) {
		if (count == cap) {
			size_t nc = cap ? cap * 2 : 16;
			struct store_secret_info *nv = realloc(v, nc * sizeof(*nv));
			if (!nv)
				return cdn_err_set(err, ENOMEM, "store: list secrets");
			v = nv;
			cap = nc;
		}
		struct store_row row = sql_row(st);
		if ((r = store_row_secret_info(&row, &v[count])) < 0)
			return store_row_fail(d->path, "secret", r, err);
		count++;
	}
	if (r < 0)
		return r;
	*out = cdn_steal(&v);
	*n = count;
	return 0;
}

int sqlite_wskey_get(struct store *s, const char *ws, uint8_t **blob, size_t *len,
		     struct cdn_err *err)
{
	int r;
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if ((r = sql_prep(d, "SELECT wrapped FROM workspace_keys WHERE workspace = ?1", &st, err)) < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, ws);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	if ((r = sql_step(d, st, err, "read a workspace key")) < 0)
		return r;
	if (r == SQLITE_DONE)
		return cdn_err_msg(err, ENOENT, "workspace %s has no key yet", ws);
	struct store_row row = sql_row(st);
	if ((r = store_row_blob(&row, 0, blob, len)) < 0)
		return cdn_err_set(err, -r, "store: %s: the key of workspace %s", d->path, ws);
	return 0;
}

int sqlite_wskey_put(struct store *s, const char *ws, const uint8_t *blob, size_t len,
		     struct cdn_err *err)
{
	int r;
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	/* No upsert: replacing a key would orphan every secret sealed with it. */
	if ((r = sql_prep(d,
		      "INSERT INTO workspace_keys (workspace, wrapped, created)"
		      " VALUES (?1, ?2, ?3)",
		      &st, err)) < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	sql_b_text(&b, 1, ws);
	sql_b_blob(&b, 2, blob, len);
	sql_b_int(&b, 3, (int64_t)time(NULL));
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	int rc = sqlite3_step(st);
	if ((rc & 0xff) == SQLITE_CONSTRAINT)
		return cdn_err_msg(err, EEXIST, "store: workspace %s has a key already", ws);
	if (rc != SQLITE_DONE)
		return sql_fail(d, rc, err, "write the key of workspace %s", ws);
	return 0;
}

