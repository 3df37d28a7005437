/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Whole tables of the SQLite backend, for moving a store to another
 * backend or from one (migrate.c): a transaction across calls, every row
 * of a table in key order, and rows inserted as read. Table and column
 * names are constants of migrate.c; values are always bound.
 */
#define _GNU_SOURCE
#include "store/sqlite.h"

#include <errno.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cleanup.h"

int sqlite_txn_begin(struct store *s, struct cdn_err *err)
{
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	/* IMMEDIATE: the write lock now, so nothing changes the store while
	 * it is read or written whole. */
	int rc = sqlite3_exec(d->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : sql_fail(d, rc, err, "begin");
}

int sqlite_txn_end(struct store *s, bool commit, struct cdn_err *err)
{
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	int rc = sqlite3_exec(d->db, commit ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : sql_fail(d, rc, err, commit ? "commit" : "roll back");
}

int sqlite_table_read(struct store *s, const struct store_table *t,
		      int (*row)(void *ctx, const struct store_cell *cells), void *ctx,
		      struct cdn_err *err)
{
	char sql[2048];
	if (store_table_sql(t, false, false, sql, sizeof(sql)) < 0)
		return cdn_err_msg(err, E2BIG, "store: read %s: too many columns", t->name);
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = sql_prep(d, sql, &st, err);
	if (r < 0)
		return r;
	struct store_cell cells[STORE_TABLE_MAX_COLS];
	while ((r = sql_step(d, st, err, t->name)) == SQLITE_ROW) {
		for (unsigned i = 0; i < t->ncols; i++) {
			const unsigned char *v = sqlite3_column_text(st, (int)i);
			int n = sqlite3_column_bytes(st, (int)i);
			if (!v && sqlite3_column_type(st, (int)i) != SQLITE_NULL)
				return cdn_err_set(err, ENOMEM, "store: read %s", t->name);
			cells[i] = (struct store_cell){ (const char *)v, v ? (size_t)n : 0 };
		}
		if ((r = row(ctx, cells)) != 0)
			return r;
	}
	return r < 0 ? r : 0;
}

int sqlite_table_insert(struct store *s, const struct store_table *t,
			const struct store_cell *cells, struct cdn_err *err)
{
	char sql[2048];
	if (store_table_sql(t, true, false, sql, sizeof(sql)) < 0)
		return cdn_err_msg(err, E2BIG, "store: write %s: too many columns", t->name);
	_cleanup_unlock_ struct sql_db *d = sql_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = sql_prep(d, sql, &st, err);
	if (r < 0)
		return r;
	int rc = SQLITE_OK;
	for (unsigned i = 0; i < t->ncols && rc == SQLITE_OK; i++) {
		const struct store_cell *c = &cells[i];
		if (!c->v) {
			rc = sqlite3_bind_null(st, (int)i + 1);
		} else if ((t->bytes >> i) & 1) {
			size_t n = 0;
			_cleanup_free_ unsigned char *bin = malloc(c->len / 2 + 1);
			if (!bin)
				return cdn_err_set(err, ENOMEM, "store: write %s", t->name);
			if (c->len % 2 ||
			    sodium_hex2bin(bin, c->len / 2 + 1, c->v, c->len, NULL, &n, NULL) != 0 ||
			    n != c->len / 2)
				return cdn_err_msg(err, EINVAL, "store: write %s: column %s is not hex",
						   t->name, t->cols[i]);
			rc = sqlite3_bind_blob(st, (int)i + 1, bin, (int)n, SQLITE_TRANSIENT);
		} else {
			rc = sqlite3_bind_text(st, (int)i + 1, c->v, (int)c->len, SQLITE_TRANSIENT);
		}
	}
	if (rc != SQLITE_OK)
		return sql_fail(d, rc, err, "bind");
	r = sql_step(d, st, err, t->name);
	return r < 0 ? r : 0;
}
