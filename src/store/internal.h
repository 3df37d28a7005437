/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to src/store/: what store.c (files) and store_sqlite.c (SQL)
 * share. A Postgres backend replaces store_sqlite.c and implements the
 * same store_db_* functions plus the SQL half of store.h.
 */
#ifndef CORDON_STORE_INTERNAL_H
#define CORDON_STORE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

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

/* Opens <dir>/cordon.db (already created 0600 by store.c) and brings its
 * schema up to date. */
int store_db_open(struct store *s, struct store_db **out, struct cdn_err *err);
void store_db_close(struct store_db *db);

/* Checks that are not SQL, shared by every backend. */
const char *store_kind_name(enum store_kind kind);

int store_item_check(const struct store_item *it, struct cdn_err *err);
int store_run_check(const struct store_run *r, struct cdn_err *err);

#endif
