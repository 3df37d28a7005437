/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to the SQLite backend (store_sqlite.c: the connection, the
 * schema and its migrations, these helpers and the backend's ops table;
 * sqlite_items.c, sqlite_runs.c, sqlite_keys.c and sqlite_retention.c:
 * the queries by resource). The Postgres backend has its own (pg.h); what both implement
 * is the seam in internal.h.
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

/* What struct store_db is for this backend (internal.h). */
struct sql_db {
	sqlite3 *db;
	char *path; /* for messages */
	pthread_mutex_t lock;
};

/* An errno for a SQLite result code. */
int sql_errno(int rc);
/* Sets err from the connection's error (or rc), "store: <db>: <what>: ...". */
int sql_fail(struct sql_db *d, int rc, struct cdn_err *err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

void sql_stmt_freep(sqlite3_stmt **st);
#define _cleanup_stmt_ _cleanup_(sql_stmt_freep)

/* The connection, locked for this thread until the cleanup unlocks it. */
struct sql_db *sql_lock(struct store *s);
void sql_unlockp(struct sql_db **d);
#define _cleanup_unlock_ _cleanup_(sql_unlockp)

int sql_prep(struct sql_db *d, const char *sql, sqlite3_stmt **st, struct cdn_err *err);

/* Binds in order, keeping the first failure for one check at the end. */
struct binder {
	sqlite3_stmt *st;
	int rc;
};

void sql_b_text(struct binder *b, int i, const char *v);
void sql_b_int(struct binder *b, int i, int64_t v);
void sql_b_blob(struct binder *b, int i, const void *v, size_t len);

/* SQLITE_ROW, SQLITE_DONE or a negative errno. */
int sql_step(struct sql_db *d, sqlite3_stmt *st, struct cdn_err *err, const char *what);

/* A write transaction that rolls back unless committed. */
struct txn {
	struct sql_db *d;
	bool open;
};

void sql_txn_endp(struct txn *t);
#define _cleanup_txn_ _cleanup_(sql_txn_endp)
/* BEGIN IMMEDIATE: the write lock now, so nothing inside fails on a lock. */
int sql_txn_begin(struct txn *t, struct cdn_err *err);
int sql_txn_commit(struct txn *t, struct cdn_err *err);

/* The current row of st, for the readers of internal.h. */
struct store_row sql_row(sqlite3_stmt *st);

/* The queries (sqlite_*.c), as the ops table names them. */
int sqlite_item_put(struct store *s, const struct store_item *item, unsigned *version,
		    bool *created, struct cdn_err *err);
int sqlite_item_get(struct store *s, enum store_kind kind, const char *ws, const char *name,
		    unsigned version, struct store_item *out, struct cdn_err *err);
int sqlite_item_list(struct store *s, enum store_kind kind, const char *ws,
		     struct store_item **out, size_t *n, struct cdn_err *err);
int sqlite_grant_add(struct store *s, const char *ws, const char *agent, const char *capability,
		     struct cdn_err *err);
bool sqlite_grant_has(struct store *s, const char *ws, const char *agent,
		      const char *capability);
int sqlite_secret_put(struct store *s, const char *ws, const char *name, const uint8_t *blob,
		      size_t len, size_t plain_len, struct cdn_err *err);
int sqlite_secret_get(struct store *s, const char *ws, const char *name, uint8_t **blob,
		      size_t *len, struct cdn_err *err);
int sqlite_secret_delete(struct store *s, const char *ws, const char *name, struct cdn_err *err);
int sqlite_secret_list(struct store *s, const char *ws, struct store_secret_info **out,
		       size_t *n, struct cdn_err *err);
int sqlite_wskey_get(struct store *s, const char *ws, uint8_t **blob, size_t *len,
		     struct cdn_err *err);
int sqlite_wskey_put(struct store *s, const char *ws, const uint8_t *blob, size_t len,
		     struct cdn_err *err);
int sqlite_run_create(struct store *s, const struct store_run *r, struct cdn_err *err);
int sqlite_run_update(struct store *s, const struct store_run *r, struct cdn_err *err);
int sqlite_run_anchor(struct store *s, const char *id, const char *head, uint64_t records,
		      struct cdn_err *err);
int sqlite_run_get(struct store *s, const char *id, struct store_run *out, struct cdn_err *err);
int sqlite_run_usage(struct store *s, const char *ws, int64_t from_ms, int64_t to_ms,
		     enum store_usage_by by,
		     int (*fn)(void *ctx, const char *key, const char *status,
			       const int64_t v[STORE_USAGE_COLS]),
		     void *ctx, struct cdn_err *err);
int sqlite_schedule_create(struct store *s, const struct store_schedule *sc,
		       struct cdn_err *err);
int sqlite_schedule_get(struct store *s, const char *ws, const char *name,
		    struct store_schedule *out, struct cdn_err *err);
int sqlite_schedule_list(struct store *s, const char *ws, int64_t due_ms,
		struct store_schedule **out, size_t *n, struct cdn_err *err);
int sqlite_schedule_delete(struct store *s, const char *ws, const char *name,
		       struct cdn_err *err);
int sqlite_schedule_pause(struct store *s, const char *ws, const char *name, bool paused,
		      int64_t next_ms, struct cdn_err *err);
int sqlite_schedule_claim(struct store *s, const char *ws, const char *name, int64_t due,
		      int64_t next, struct cdn_err *err);
int sqlite_schedule_record(struct store *s, const char *ws, const char *name, int64_t when_ms,
		       const char *run_id, const char *skip_why, struct cdn_err *err);
int sqlite_service_create(struct store *s, const struct store_service *sv, struct cdn_err *err);
int sqlite_service_get(struct store *s, const char *ws, const char *name, struct store_service *out,
		   struct cdn_err *err);
int sqlite_service_list(struct store *s, const char *ws, struct store_service **out, size_t *n,
		    struct cdn_err *err);
int sqlite_service_delete(struct store *s, const char *ws, const char *name, int64_t gen,
			struct cdn_err *err);
int sqlite_service_update(struct store *s, const struct store_service *sv, struct cdn_err *err);
int sqlite_run_list(struct store *s, const struct store_run_query *q, struct store_run **out,
		    size_t *n, struct cdn_err *err);
int sqlite_run_claim(struct store *s, const struct store_run *r, struct cdn_err *err);
int sqlite_runs_unfinished(struct store *s, struct store_recover_candidate **out, size_t *n,
			   struct cdn_err *err);
int sqlite_run_mark_dead(struct store *s, const struct store_recover_candidate *c,
			 int64_t now_ms, struct cdn_err *err);
/* With d locked (inside a transaction or not): a new run record; what a
 * changed-nothing UPDATE of run id met (ENOENT, or ESTALE for a lost run). */
int sqlite_run_insert(struct sql_db *d, const struct store_run *r, struct cdn_err *err);
int sqlite_run_unchanged(struct sql_db *d, const char *id, struct cdn_err *err);
int sqlite_run_lease_claim(struct store *s, const char *worker, const char *labels,
			   int64_t until_ms, struct store_run *out, struct cdn_err *err);
int sqlite_lease_renew(struct store *s, const char *worker, int64_t now_ms, int64_t until_ms,
		       char (**ids)[STORE_RUN_ID_MAX + 1], size_t *n, struct cdn_err *err);
int sqlite_leases_expired(struct store *s, int64_t now_ms, struct store_lease_candidate **out,
			  size_t *n, struct cdn_err *err);
int sqlite_run_mark_lost(struct store *s, const struct store_lease_candidate *c,
			 const char *reason, int64_t now_ms, const struct store_run *retry,
			 struct cdn_err *err);
int sqlite_runs_queued(struct store *s, const char *ws, uint64_t *total, uint64_t *in_ws,
		       struct cdn_err *err);
int sqlite_run_cancel_queued(struct store *s, const char *id, const char *why, int64_t now_ms,
			     struct cdn_err *err);
int sqlite_key_put(struct store *s, const struct store_key *k, struct cdn_err *err);
int sqlite_key_by_hash(struct store *s, const char *hash, struct store_key *out,
		       struct cdn_err *err);
int sqlite_key_list(struct store *s, const char *ws, struct store_key **out, size_t *n,
		    struct cdn_err *err);
int sqlite_key_revoke(struct store *s, const char *ws, const char *id, struct cdn_err *err);
int sqlite_key_touch(struct store *s, const char *id, int64_t now, struct cdn_err *err);
int sqlite_retention_get(struct store *s, const char *ws, struct store_retention *out,
			 struct cdn_err *err);
int sqlite_retention_put(struct store *s, const char *ws, const struct store_retention *r,
			unsigned set,
			 struct cdn_err *err);
int sqlite_run_marks_get(struct store *s, const char *id, struct store_run_marks *out,
			 struct cdn_err *err);
int sqlite_run_hold(struct store *s, const char *ws, const char *id, const char *reason,
		    const char *by, int64_t now_ms, struct cdn_err *err);
int sqlite_run_release(struct store *s, const char *ws, const char *id, struct cdn_err *err);
int sqlite_run_mark_pruned(struct store *s, const char *id, enum store_retain k,
			   int64_t when_ms, struct cdn_err *err);
int sqlite_prune_due(struct store *s, const char *ws, enum store_retain k, int64_t cutoff_ms,
		     size_t max, char (*ids)[STORE_RUN_ID_MAX + 1], size_t *n,
		     struct cdn_err *err);
int sqlite_prune_workspaces(struct store *s, char (**wss)[STORE_MAX_NAME + 1], size_t *n,
			    struct cdn_err *err);
int sqlite_item_trees(struct store *s, char (**trees)[STORE_HASH_HEX + 1], size_t *n,
		      struct cdn_err *err);
int sqlite_run_delete(struct store *s, const char *id, struct cdn_err *err);
int sqlite_blob_in_runs(struct store *s, const char *hex, const char *skip_id, bool *used,
			struct cdn_err *err);
int sqlite_txn_begin(struct store *s, struct cdn_err *err);
int sqlite_txn_end(struct store *s, bool commit, struct cdn_err *err);
int sqlite_table_read(struct store *s, const struct store_table *t,
		int (*row)(void *ctx, const struct store_cell *cells), void *ctx,
		struct cdn_err *err);
int sqlite_table_insert(struct store *s, const struct store_table *t,
		const struct store_cell *cells, struct cdn_err *err);

#endif
