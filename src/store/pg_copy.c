/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Whole tables of the Postgres backend, for moving a store to it or from
 * it (migrate.c): a transaction across calls, every row of a table in key
 * order, and rows inserted as read. Table and column names are constants
 * of migrate.c; every value is a parameter.
 */
#define _GNU_SOURCE
#include "store/pg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cleanup.h"

int pg_txn_begin_all(struct store *s, struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	_cleanup_pgres_ PGresult *res = NULL;
	/* One snapshot for everything read, and every write or none. */
	return pg_exec(d, "BEGIN ISOLATION LEVEL REPEATABLE READ", NULL, false, &res, err,
		       "begin");
}

int pg_txn_end_all(struct store *s, bool commit, struct cdn_err *err)
{
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	_cleanup_pgres_ PGresult *res = NULL;
	return pg_exec(d, commit ? "COMMIT" : "ROLLBACK", NULL, false, &res, err,
		       commit ? "commit" : "roll back");
}

int pg_table_read(struct store *s, const struct store_table *t,
		  int (*row)(void *ctx, const struct store_cell *cells), void *ctx,
		  struct cdn_err *err)
{
	char sql[2048];
	if (store_table_sql(t, false, true, sql, sizeof(sql)) < 0)
		return cdn_err_msg(err, E2BIG, "store: read %s: too many columns", t->name);
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	_cleanup_pgres_ PGresult *res = NULL;
	int r = pg_exec(d, sql, NULL, false, &res, err, "read %s", t->name);
	if (r < 0)
		return r;
	if ((unsigned)PQnfields(res) != t->ncols)
		return cdn_err_msg(err, EIO, "store: postgres %s: %s: %d columns", d->shown, t->name,
				   PQnfields(res));
	struct store_cell cells[STORE_TABLE_MAX_COLS];
	for (int i = 0; i < PQntuples(res); i++) {
		for (unsigned c = 0; c < t->ncols; c++)
			cells[c] = PQgetisnull(res, i, (int)c)
					   ? (struct store_cell){ NULL, 0 }
					   : (struct store_cell){ PQgetvalue(res, i, (int)c),
								  (size_t)PQgetlength(res, i, (int)c) };
		if ((r = row(ctx, cells)) != 0)
			return r;
	}
	return 0;
}

int pg_table_insert(struct store *s, const struct store_table *t, const struct store_cell *cells,
		    struct cdn_err *err)
{
	char sql[2048];
	if (store_table_sql(t, true, true, sql, sizeof(sql)) < 0 || t->ncols > PG_MAX_PARAMS)
		return cdn_err_msg(err, E2BIG, "store: write %s: too many columns", t->name);
	/* Text parameters are NUL-terminated C strings: copy each cell. */
	_cleanup_free_ char *buf = NULL;
	size_t total = 0;
	for (unsigned i = 0; i < t->ncols; i++) {
		if (cells[i].v && memchr(cells[i].v, '\0', cells[i].len))
			return cdn_err_msg(err, EINVAL, "store: write %s: column %s holds a NUL",
					   t->name, t->cols[i]);
		total += cells[i].len + 1;
	}
	if (!(buf = malloc(total ? total : 1)))
		return cdn_err_set(err, ENOMEM, "store: write %s", t->name);
	struct pg_params p = { 0 };
	size_t off = 0;
	for (unsigned i = 0; i < t->ncols; i++) {
		if (!cells[i].v) {
			pg_p_text(&p, NULL);
			continue;
		}
		memcpy(buf + off, cells[i].v, cells[i].len);
		buf[off + cells[i].len] = '\0';
		pg_p_text(&p, buf + off);
		off += cells[i].len + 1;
	}
	_cleanup_pg_unlock_ struct pg_db *d = pg_lock(s);
	_cleanup_pgres_ PGresult *res = NULL;
	return pg_exec(d, sql, &p, false, &res, err, "write %s", t->name);
}
