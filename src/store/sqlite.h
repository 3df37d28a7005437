/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to the SQLite backend (store_sqlite.c: the connection, the
 * schema and its migrations, and these helpers; sqlite_items.c,
 * sqlite_runs.c and sqlite_keys.c: the queries by resource). A Postgres
 * backend has its own; what both implement is the seam in internal.h.
 */
#ifndef CORDON_STORE_SQLITE_H
#define CORDON_STORE_SQLITE_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/cleanup.h"
#include "store/internal.h"

struct store_db {
	sqlite3 *db;
	char *path; /* for messages */
	pthread_mutex_t lock;
};

/* An errno for a SQLite result code. */
int sql_errno(int rc);
/* Sets err from the connection's error (or rc), "store: <db>: <what>: ...". */
int sql_fail(struct store_db *d, int rc, struct cdn_err *err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

void sql_stmt_freep(sqlite3_stmt **st);
#define _cleanup_stmt_ _cleanup_(sql_stmt_freep)

/* The connection, locked for this thread until the cleanup unlocks it. */
struct store_db *sql_lock(struct store *s);
void sql_unlockp(struct store_db **d);
#define _cleanup_unlock_ _cleanup_(sql_unlockp)

int sql_prep(struct store_db *d, const char *sql, sqlite3_stmt **st, struct cdn_err *err);

/* Binds in order, keeping the first failure for one check at the end. */
struct binder {
	sqlite3_stmt *st;
	int rc;
};

void sql_b_text(struct binder *b, int i, const char *v);
void sql_b_int(struct binder *b, int i, int64_t v);
void sql_b_blob(struct binder *b, int i, const void *v, size_t len);

/* SQLITE_ROW, SQLITE_DONE or a negative errno. */
int sql_step(struct store_db *d, sqlite3_stmt *st, struct cdn_err *err, const char *what);

/* A write transaction that rolls back unless committed. */
struct txn {
	struct store_db *d;
	bool open;
};

void sql_txn_endp(struct txn *t);
#define _cleanup_txn_ _cleanup_(sql_txn_endp)
/* BEGIN IMMEDIATE: the write lock now, so nothing inside fails on a lock. */
int sql_txn_begin(struct txn *t, struct cdn_err *err);
int sql_txn_commit(struct txn *t, struct cdn_err *err);

/* Copies a text column into a fixed field; false when it does not fit. */
bool sql_col_copy(sqlite3_stmt *st, int i, char *out, size_t cap);
/* A malloc'd copy of a text column (NULL stays NULL); false on ENOMEM. */
bool sql_col_dup(sqlite3_stmt *st, int i, char **out);

#endif
