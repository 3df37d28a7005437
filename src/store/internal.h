/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to src/store/: the seam between the file side (store.c,
 * blobs.c, trees.c, checkout.c; their own shared pieces are in fs.h) and
 * the metadata backend. The SQLite backend is store_sqlite.c and the
 * sqlite_*.c files beside it; a Postgres backend implements the same
 * store_db_* functions and the SQL half of store.h, and uses the checks
 * below (checks.c) as SQLite's does.
 */
#ifndef CORDON_STORE_INTERNAL_H
#define CORDON_STORE_INTERNAL_H

#include "store/store.h"

#define STORE_DB_FILE "cordon.db"

struct store_db;

struct store {
	char *dir;    /* as given to store_open, for messages and store_dir() */
	int dirfd;    /* the state directory; every path below is resolved from it */
	int blobs_fd; /* <dir>/blobs */
	int trees_fd; /* <dir>/trees */
	int tmp_fd;   /* <dir>/tmp */
	struct store_db *db;
};

/* ------------------------------------------------------- the backend seam */

/* Opens <dir>/cordon.db (already created 0600 by store.c) and brings its
 * schema up to date. */
int store_db_open(struct store *s, struct store_db **out, struct cdn_err *err);
void store_db_close(struct store_db *db);

/* ------------------------------------- checks every backend makes (checks.c) */

const char *store_kind_name(enum store_kind kind);

int store_item_check(const struct store_item *it, struct cdn_err *err);
int store_run_check(const struct store_run *r, struct cdn_err *err);
/* Ages in 0..STORE_AGE_MAX_S; max_s only in the operator's (ws ""). */
int store_retention_check(const char *ws, const struct store_retention *r, struct cdn_err *err);
/* A hold's reason (1..255 bytes) and who (under 128), printable UTF-8. */
int store_hold_check(const char *reason, const char *by, struct cdn_err *err);

#endif
