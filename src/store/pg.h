/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to the Postgres backend (pg_store.c: the connection, the schema
 * and its migrations, these helpers and the backend's ops table;
 * pg_items.c, pg_runs.c, pg_keys.c and pg_retention.c: the queries by
 * resource). What it
 * implements is the seam in internal.h, as the SQLite backend (sqlite.h)
 * does.
 */
#ifndef CORDON_STORE_PG_H
#define CORDON_STORE_PG_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/cleanup.h"
#include "store/internal.h"

/* What struct store_db is for this backend (internal.h). */
struct pg_db {
	PGconn *conn;
	PGconn *listen; /* LISTENs on a channel (pg_listen); NULL */
	char *url;   /* as given, to connect again after the connection broke */
	char *shown; /* the URL without its password: the only form in messages */
	pthread_mutex_t lock;
};

/* The connection, locked for this thread until the cleanup unlocks it.
 * A connection found broken is reset first (the server restarted). */
struct pg_db *pg_lock(struct store *s);
void pg_unlockp(struct pg_db **d);
#define _cleanup_pg_unlock_ _cleanup_(pg_unlockp)

void pg_clearp(PGresult **res);
#define _cleanup_pgres_ _cleanup_(pg_clearp)

/* A statement's parameters, always sent apart from its text. */
#define PG_MAX_PARAMS 32
struct pg_params {
	int n;
	const char *values[PG_MAX_PARAMS];
	int lengths[PG_MAX_PARAMS];
	int formats[PG_MAX_PARAMS]; /* 0 text, 1 binary (bytea) */
	char ints[PG_MAX_PARAMS][24];
};

/* Appends parameter $n+1: text (NULL is SQL NULL), an integer, bytes. */
void pg_p_text(struct pg_params *p, const char *v);
void pg_p_int(struct pg_params *p, int64_t v);
void pg_p_bytes(struct pg_params *p, const void *v, size_t len);

/*
 * Runs one statement with its parameters (p may be NULL), results in text
 * or, with binary, binary form (for bytea columns). 0 with *res set (free
 * it with pg_clearp), or a negative errno with err saying "store:
 * postgres <url>: <what>: <server's message>": EEXIST for a unique
 * violation, EBUSY for a serialization failure or deadlock, EIO else.
 */
int pg_exec(struct pg_db *d, const char *sql, const struct pg_params *p, bool binary,
	    PGresult **res, struct cdn_err *err, const char *what, ...)
	__attribute__((format(printf, 7, 8)));

/* The rows an INSERT, UPDATE or DELETE changed. */
int64_t pg_changed(const PGresult *res);

/* Row i of res, for the readers of internal.h. */
struct store_row pg_row(const PGresult *res, int i);

/* A transaction that rolls back unless committed. */
struct pg_txn {
	struct pg_db *d;
	bool open;
};
void pg_txn_endp(struct pg_txn *t);
#define _cleanup_pg_txn_ _cleanup_(pg_txn_endp)
int pg_txn_begin(struct pg_txn *t, struct cdn_err *err);
int pg_txn_commit(struct pg_txn *t, struct cdn_err *err);

/* The queries (pg_*.c), as the ops table names them. */
int pg_item_put(struct store *s, const struct store_item *item, unsigned *version, bool *created,
		struct cdn_err *err);
int pg_item_get(struct store *s, enum store_kind kind, const char *ws, const char *name,
		unsigned version, struct store_item *out, struct cdn_err *err);
int pg_item_list(struct store *s, enum store_kind kind, const char *ws, struct store_item **out,
		 size_t *n, struct cdn_err *err);
int pg_grant_add(struct store *s, const char *ws, const char *agent, const char *capability,
		 struct cdn_err *err);
bool pg_grant_has(struct store *s, const char *ws, const char *agent, const char *capability);
int pg_secret_put(struct store *s, const char *ws, const char *name, const uint8_t *blob,
		  size_t len, size_t plain_len, struct cdn_err *err);
int pg_secret_get(struct store *s, const char *ws, const char *name, uint8_t **blob, size_t *len,
		  struct cdn_err *err);
int pg_secret_delete(struct store *s, const char *ws, const char *name, struct cdn_err *err);
int pg_secret_list(struct store *s, const char *ws, struct store_secret_info **out, size_t *n,
		   struct cdn_err *err);
int pg_wskey_get(struct store *s, const char *ws, uint8_t **blob, size_t *len,
		 struct cdn_err *err);
int pg_wskey_put(struct store *s, const char *ws, const uint8_t *blob, size_t len,
		 struct cdn_err *err);
int pg_run_create(struct store *s, const struct store_run *r, struct cdn_err *err);
int pg_run_update(struct store *s, const struct store_run *r, struct cdn_err *err);
int pg_run_anchor(struct store *s, const char *id, const char *head, uint64_t records,
		  struct cdn_err *err);
int pg_run_get(struct store *s, const char *id, struct store_run *out, struct cdn_err *err);
int pg_run_usage(struct store *s, const char *ws, int64_t from_ms, int64_t to_ms,
		 enum store_usage_by by,
		 int (*fn)(void *ctx, const char *key, const char *status,
			   const int64_t v[STORE_USAGE_COLS]),
		 void *ctx, struct cdn_err *err);
int pg_schedule_create(struct store *s, const struct store_schedule *sc,
		       struct cdn_err *err);
int pg_schedule_get(struct store *s, const char *ws, const char *name,
		    struct store_schedule *out, struct cdn_err *err);
int pg_schedule_list(struct store *s, const char *ws, int64_t due_ms,
		struct store_schedule **out, size_t *n, struct cdn_err *err);
int pg_schedule_delete(struct store *s, const char *ws, const char *name,
		       struct cdn_err *err);
int pg_schedule_pause(struct store *s, const char *ws, const char *name, bool paused,
		      int64_t next_ms, struct cdn_err *err);
int pg_schedule_claim(struct store *s, const char *ws, const char *name, int64_t due,
		      int64_t next, struct cdn_err *err);
int pg_schedule_record(struct store *s, const char *ws, const char *name, int64_t when_ms,
		       const char *run_id, const char *skip_why, struct cdn_err *err);
int pg_service_create(struct store *s, const struct store_service *sv, struct cdn_err *err);
int pg_service_get(struct store *s, const char *ws, const char *name, struct store_service *out,
		   struct cdn_err *err);
int pg_service_list(struct store *s, const char *ws, struct store_service **out, size_t *n,
		    struct cdn_err *err);
int pg_service_delete(struct store *s, const char *ws, const char *name, int64_t gen,
			struct cdn_err *err);
int pg_service_update(struct store *s, const struct store_service *sv, struct cdn_err *err);
int pg_run_list(struct store *s, const struct store_run_query *q, struct store_run **out,
		size_t *n, struct cdn_err *err);
int pg_run_claim(struct store *s, const struct store_run *r, struct cdn_err *err);
int pg_runs_unfinished(struct store *s, struct store_recover_candidate **out, size_t *n,
		       struct cdn_err *err);
int pg_run_mark_dead(struct store *s, const struct store_recover_candidate *c, int64_t now_ms,
		     struct cdn_err *err);
/* A new connection to d's database, as the store's own is made (*out set
 * even on failure: PQfinish it). */
int pg_connect(const struct pg_db *d, PGconn **out, struct cdn_err *err);
/* LISTEN on channel (an identifier, quoted here) on d->listen, a
 * connection of its own (another channel's is closed first). */
int pg_listen(struct store *s, const char *channel, int *fd, struct cdn_err *err);
bool pg_queue_notified(struct store *s, bool *broken);
void pg_unlisten(struct store *s);
/* With d locked (inside a transaction or not): a new run record. */
int pg_run_insert(struct pg_db *d, const struct store_run *r, struct cdn_err *err);
int pg_run_lease_claim(struct store *s, const char *worker, const char *labels,
		       int64_t until_ms, struct store_run *out, struct cdn_err *err);
int pg_lease_renew(struct store *s, const char *worker, int64_t now_ms, int64_t until_ms,
		   char (**ids)[STORE_RUN_ID_MAX + 1], size_t *n, struct cdn_err *err);
int pg_leases_expired(struct store *s, int64_t now_ms, struct store_lease_candidate **out,
		      size_t *n, struct cdn_err *err);
int pg_run_mark_lost(struct store *s, const struct store_lease_candidate *c, const char *reason,
		     int64_t now_ms, const struct store_run *retry, struct cdn_err *err);
int pg_runs_queued(struct store *s, const char *ws, uint64_t *total, uint64_t *in_ws,
		   struct cdn_err *err);
int pg_run_cancel_queued(struct store *s, const char *id, const char *why, int64_t now_ms,
			 struct cdn_err *err);
int pg_control_publish(struct store *s, const char *run_id, const char *ws, const char *id,
		       const char *entry, int64_t created_ms, int64_t deadline_ms,
		       struct cdn_err *err);
int pg_control_close(struct store *s, const char *run_id, const char *id, struct cdn_err *err);
int pg_controls_list(struct store *s, const char *ws, struct store_control **out, size_t *n,
		     struct cdn_err *err);
int pg_control_decide(struct store *s, const char *ws, const char *id, bool approve,
		      const char *by, int64_t now_ms, char *run_id, struct cdn_err *err);
int pg_control_cancel(struct store *s, const char *ws, const char *run_id, const char *by,
		      int64_t now_ms, char *id, struct cdn_err *err);
int pg_controls_take(struct store *s, const char *run_id, struct store_control **out, size_t *n,
		     struct cdn_err *err);
int pg_control_done(struct store *s, const char *id, const char *outcome, struct cdn_err *err);
int pg_control_outcome(struct store *s, const char *id, char *out, size_t cap,
		       struct cdn_err *err);
int pg_run_live_clear(struct store *s, const char *run_id, struct cdn_err *err);
int pg_run_live_sweep(struct store *s, struct cdn_err *err);
int pg_run_events_put(struct store *s, const char *run_id, const char *batch,
		      struct cdn_err *err);
int pg_run_events_read(struct store *s, const char *run_id, uint64_t after, unsigned max,
		       struct store_event_line **out, size_t *n, struct cdn_err *err);
int pg_key_put(struct store *s, const struct store_key *k, struct cdn_err *err);
int pg_key_by_hash(struct store *s, const char *hash, struct store_key *out,
		   struct cdn_err *err);
int pg_key_list(struct store *s, const char *ws, struct store_key **out, size_t *n,
		struct cdn_err *err);
int pg_key_revoke(struct store *s, const char *ws, const char *id, struct cdn_err *err);
int pg_key_touch(struct store *s, const char *id, int64_t now, struct cdn_err *err);
int pg_retention_get(struct store *s, const char *ws, struct store_retention *out,
			 struct cdn_err *err);
int pg_retention_put(struct store *s, const char *ws, const struct store_retention *r,
			unsigned set,
			 struct cdn_err *err);
int pg_run_marks_get(struct store *s, const char *id, struct store_run_marks *out,
			 struct cdn_err *err);
int pg_run_hold(struct store *s, const char *ws, const char *id, const char *reason,
		    const char *by, int64_t now_ms, struct cdn_err *err);
int pg_run_release(struct store *s, const char *ws, const char *id, struct cdn_err *err);
int pg_run_mark_pruned(struct store *s, const char *id, enum store_retain k,
			   int64_t when_ms, struct cdn_err *err);
int pg_prune_due(struct store *s, const char *ws, enum store_retain k, int64_t cutoff_ms,
		     size_t max, char (*ids)[STORE_RUN_ID_MAX + 1], size_t *n,
		     struct cdn_err *err);
int pg_prune_workspaces(struct store *s, char (**wss)[STORE_MAX_NAME + 1], size_t *n,
			    struct cdn_err *err);
int pg_item_trees(struct store *s, char (**trees)[STORE_HASH_HEX + 1], size_t *n,
		      struct cdn_err *err);
int pg_run_delete(struct store *s, const char *id, struct cdn_err *err);
int pg_blob_in_runs(struct store *s, const char *hex, const char *skip_id, bool *used,
			struct cdn_err *err);
int pg_txn_begin_all(struct store *s, struct cdn_err *err);
int pg_txn_end_all(struct store *s, bool commit, struct cdn_err *err);
int pg_table_read(struct store *s, const struct store_table *t,
		int (*row)(void *ctx, const struct store_cell *cells), void *ctx,
		struct cdn_err *err);
int pg_table_insert(struct store *s, const struct store_table *t,
		const struct store_cell *cells, struct cdn_err *err);

#endif
