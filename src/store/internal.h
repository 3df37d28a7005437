/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to src/store/: the seam between the file side (store.c,
 * blobs.c, trees.c, checkout.c; their own shared pieces are in fs.h) and
 * the metadata backends. Each backend fills a struct store_db_ops: SQLite
 * (store_sqlite.c and the sqlite_*.c files beside it) and Postgres
 * (pg_store.c and the pg_*.c files). store_db.c is the SQL half of
 * store.h: it checks every argument once (with checks.c), then calls the
 * store's backend, which turns its rows into structs with the shared
 * readers below.
 */
#ifndef CORDON_STORE_INTERNAL_H
#define CORDON_STORE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define STORE_DB_FILE "cordon.db"

/* A table as migration copies it: its name, columns, key order, and
 * which columns hold bytes (bit i: column i). Names are constants of
 * migrate.c, never input. */
#define STORE_TABLE_MAX_COLS 32
struct store_table {
	const char *name;
	const char *const *cols;
	unsigned ncols;
	const char *order;
	uint32_t bytes;
};

/* The statement that reads t whole in key order, bytes as lowercase hex,
 * or (insert) that inserts a row of it from parameters in that form, in
 * SQLite's or Postgres's dialect (migrate.c). -E2BIG when it does not fit. */
int store_table_sql(const struct store_table *t, bool insert, bool pg, char *out, size_t cap);

/* A value as text (bytes as lowercase hex); v NULL is SQL NULL. */
struct store_cell {
	const char *v;
	size_t len;
};

/* A backend's connection: each backend has its own struct behind it. */
struct store_db;
struct store_lease_candidate;
struct store_db_ops;

/* An unfinished run, as recovery judges it. */
struct store_recover_candidate {
	char id[STORE_RUN_ID_MAX + 1];
	int64_t pid; /* as stored, for the UPDATE's WHERE */
	char boot[STORE_BOOT_ID_MAX];
	int64_t start;
};

struct store {
	char *dir;    /* as given to store_open, for messages and store_dir() */
	int dirfd;    /* the state directory; every path below is resolved from it */
	int blobs_fd; /* <dir>/blobs */
	int trees_fd; /* <dir>/trees */
	int tmp_fd;   /* <dir>/tmp */
	const struct store_db_ops *ops;
	struct store_db *db;
	/* Blobs and finished runs' files written through to S3, and read back
	 * from it on a local miss (remote.c); NULL: the state directory only. */
	struct s3 *remote;
};

/* ------------------------------------------------------- the backend seam */

/* The sums of a usage row, in this order: count, wall_ms, cpu_ms,
 * mem_peak_bytes (a max), egress allowed, blocked, allowed bytes,
 * blocked bytes, artifact bytes. */
#define STORE_USAGE_COLS 9

/*
 * What a backend does. Arguments are checked by store_db.c before any of
 * these is called (names, hashes, sizes, the run query's bounds), so a
 * backend only runs its queries. Each returns what the store.h function
 * of the same name returns.
 */
struct store_db_ops {
	const char *name; /* "sqlite", "postgres": for messages */
	/* Connects (SQLite: <dir>/cordon.db, already created 0600 by store.c,
	 * under the state directory's flock; Postgres: database, a URL) and
	 * brings the schema up to date. */
	int (*open)(struct store *s, const char *database, struct store_db **out,
		    struct cdn_err *err);
	void (*close)(struct store_db *db);

	int (*item_put)(struct store *s, const struct store_item *item, unsigned *version,
			bool *created, struct cdn_err *err);
	int (*item_get)(struct store *s, enum store_kind kind, const char *ws, const char *name,
			unsigned version, struct store_item *out, struct cdn_err *err);
	int (*item_list)(struct store *s, enum store_kind kind, const char *ws,
			 struct store_item **out, size_t *n, struct cdn_err *err);
	int (*grant_add)(struct store *s, const char *ws, const char *agent,
			 const char *capability, struct cdn_err *err);
	bool (*grant_has)(struct store *s, const char *ws, const char *agent,
			  const char *capability);

	int (*secret_put)(struct store *s, const char *ws, const char *name, const uint8_t *blob,
			  size_t len, size_t plain_len, struct cdn_err *err);
	int (*secret_get)(struct store *s, const char *ws, const char *name, uint8_t **blob,
			  size_t *len, struct cdn_err *err);
	int (*secret_delete)(struct store *s, const char *ws, const char *name,
			     struct cdn_err *err);
	int (*secret_list)(struct store *s, const char *ws, struct store_secret_info **out,
			   size_t *n, struct cdn_err *err);
	int (*wskey_get)(struct store *s, const char *ws, uint8_t **blob, size_t *len,
			 struct cdn_err *err);
	int (*wskey_put)(struct store *s, const char *ws, const uint8_t *blob, size_t len,
			 struct cdn_err *err);

	int (*run_create)(struct store *s, const struct store_run *r, struct cdn_err *err);
	int (*run_update)(struct store *s, const struct store_run *r, struct cdn_err *err);
	int (*run_anchor)(struct store *s, const char *id, const char *head, uint64_t records,
			  struct cdn_err *err);
	int (*run_get)(struct store *s, const char *id, struct store_run *out,
		       struct cdn_err *err);
	int (*run_list)(struct store *s, const struct store_run_query *q, struct store_run **out,
			size_t *n, struct cdn_err *err);
	int (*run_claim)(struct store *s, const struct store_run *r, struct cdn_err *err);
	/* Crash recovery in two steps, so that store_db.c judges which
	 * supervisors are gone: the runs still created or running, then one
	 * such run marked as failed, only if its record still names the same
	 * supervisor and is unfinished (1 when it was, else 0). */
	int (*runs_unfinished)(struct store *s, struct store_recover_candidate **out, size_t *n,
			       struct cdn_err *err);
	int (*run_mark_dead)(struct store *s, const struct store_recover_candidate *c,
			     int64_t now_ms, struct cdn_err *err);
	/* Workers' leases (store.h): claim returns 1 with *out, or 0; renew
	 * gives the ids renewed (calloc'd, NULL when none); expiry in two
	 * steps, as recovery: the runs whose lease ran out before now_ms,
	 * then one such run marked lost with reason, only if it still has
	 * the same owner and lease and is unfinished, and, in the same
	 * transaction, retry (when not NULL) created (1 when it was marked,
	 * else 0). */
	int (*run_lease_claim)(struct store *s, const char *worker, const char *labels,
			       int64_t until_ms, struct store_run *out, struct cdn_err *err);
	int (*lease_renew)(struct store *s, const char *worker, int64_t now_ms, int64_t until_ms,
			   char (**ids)[STORE_RUN_ID_MAX + 1], size_t *n, struct cdn_err *err);
	int (*leases_expired)(struct store *s, int64_t now_ms,
			      struct store_lease_candidate **out, size_t *n, struct cdn_err *err);
	int (*run_mark_lost)(struct store *s, const struct store_lease_candidate *c,
			     const char *reason, int64_t now_ms, const struct store_run *retry,
			     struct cdn_err *err);
	int (*runs_queued)(struct store *s, const char *ws, uint64_t *total, uint64_t *in_ws,
			   struct cdn_err *err);
	int (*run_cancel_queued)(struct store *s, const char *id, const char *why,
				 int64_t now_ms, struct cdn_err *err);
	/* NULL where the backend has no notifications (SQLite). LISTEN on
	 * a channel (STORE_QUEUE_CHANNEL, or a run's), on a connection of
	 * its own. */
	int (*listen)(struct store *s, const char *channel, int *fd, struct cdn_err *err);
	bool (*queue_notified)(struct store *s, bool *broken);
	void (*unlisten)(struct store *s);
	/* Run controls (store.h); NULL where the backend has none (SQLite). */
	int (*control_publish)(struct store *s, const char *run_id, const char *ws,
			       const char *id, const char *entry, int64_t created_ms,
			       int64_t deadline_ms, struct cdn_err *err);
	int (*control_close)(struct store *s, const char *run_id, const char *id,
			     struct cdn_err *err);
	int (*controls_list)(struct store *s, const char *ws, struct store_control **out,
			     size_t *n, struct cdn_err *err);
	int (*control_decide)(struct store *s, const char *ws, const char *id, bool approve,
			      const char *by, int64_t now_ms, char *run_id, struct cdn_err *err);
	int (*control_cancel)(struct store *s, const char *ws, const char *run_id, const char *by,
			      int64_t now_ms, char *id, struct cdn_err *err);
	int (*controls_take)(struct store *s, const char *run_id, struct store_control **out,
			     size_t *n, struct cdn_err *err);
	int (*control_done)(struct store *s, const char *id, const char *outcome,
			    struct cdn_err *err);
	int (*control_outcome)(struct store *s, const char *id, char *out, size_t cap,
			       struct cdn_err *err);
	int (*run_live_clear)(struct store *s, const char *run_id, struct cdn_err *err);
	int (*run_live_sweep)(struct store *s, struct cdn_err *err);
	/* batch: a JSON array of [seq, line] pairs. */
	int (*run_events_put)(struct store *s, const char *run_id, const char *batch,
			      struct cdn_err *err);
	int (*run_events_read)(struct store *s, const char *run_id, uint64_t after, unsigned max,
			       struct store_event_line **out, size_t *n, struct cdn_err *err);

	/* Schedules (store.h). */
	int (*schedule_create)(struct store *s, const struct store_schedule *sc,
			       struct cdn_err *err);
	int (*schedule_get)(struct store *s, const char *ws, const char *name,
			    struct store_schedule *out, struct cdn_err *err);
	int (*schedule_list)(struct store *s, const char *ws, int64_t due_ms,
			     struct store_schedule **out, size_t *n, struct cdn_err *err);
	int (*schedule_delete)(struct store *s, const char *ws, const char *name,
			       struct cdn_err *err);
	int (*schedule_pause)(struct store *s, const char *ws, const char *name, bool paused,
			      int64_t next_ms, struct cdn_err *err);
	int (*schedule_claim)(struct store *s, const char *ws, const char *name, int64_t due,
			      int64_t next, struct cdn_err *err);
	int (*schedule_record)(struct store *s, const char *ws, const char *name, int64_t when_ms,
			       const char *run_id, const char *skip_why, struct cdn_err *err);
	/* Services (store.h). */
	int (*service_create)(struct store *s, const struct store_service *sv,
			      struct cdn_err *err);
	int (*service_get)(struct store *s, const char *ws, const char *name,
			   struct store_service *out, struct cdn_err *err);
	int (*service_list)(struct store *s, const char *ws, struct store_service **out,
			    size_t *n, struct cdn_err *err);
	/* 1 when removed at generation gen, 0 when it changed or is gone. */
	int (*service_delete)(struct store *s, const char *ws, const char *name, int64_t gen,
			      struct cdn_err *err);
	int (*service_update)(struct store *s, const struct store_service *sv,
			      struct cdn_err *err);
	/* Usage (store.h): one row per (group key, status) with its sums,
	 * handed to fn in key order; fn returns < 0 to stop. */
	int (*run_usage)(struct store *s, const char *ws, int64_t from_ms, int64_t to_ms,
			 enum store_usage_by by,
			 int (*fn)(void *ctx, const char *key, const char *status,
				   const int64_t v[STORE_USAGE_COLS]),
			 void *ctx, struct cdn_err *err);

	int (*key_put)(struct store *s, const struct store_key *k, struct cdn_err *err);
	int (*key_by_hash)(struct store *s, const char *hash, struct store_key *out,
			   struct cdn_err *err);
	int (*key_list)(struct store *s, const char *ws, struct store_key **out, size_t *n,
			struct cdn_err *err);
	int (*key_revoke)(struct store *s, const char *ws, const char *id, struct cdn_err *err);
	int (*key_touch)(struct store *s, const char *id, int64_t now, struct cdn_err *err);

	/* Retention (store.h). run_hold and run_release give -ENOENT when
	 * there is no run id in ws; run_marks_get when there is no run id. */
	int (*retention_get)(struct store *s, const char *ws, struct store_retention *out,
			     struct cdn_err *err);
	int (*retention_put)(struct store *s, const char *ws, const struct store_retention *r,
			     unsigned set,
			     struct cdn_err *err);
	int (*run_marks_get)(struct store *s, const char *id, struct store_run_marks *out,
			     struct cdn_err *err);
	int (*run_hold)(struct store *s, const char *ws, const char *id, const char *reason,
			const char *by, int64_t now_ms, struct cdn_err *err);
	int (*run_release)(struct store *s, const char *ws, const char *id, struct cdn_err *err);
	int (*run_mark_pruned)(struct store *s, const char *id, enum store_retain k,
			       int64_t when_ms, struct cdn_err *err);
	int (*prune_due)(struct store *s, const char *ws, enum store_retain k, int64_t cutoff_ms,
			 size_t max, char (*ids)[STORE_RUN_ID_MAX + 1], size_t *n,
			 struct cdn_err *err);
	/* Each list is a calloc'd array of fixed fields, NULL when empty. */
	int (*prune_workspaces)(struct store *s, char (**wss)[STORE_MAX_NAME + 1], size_t *n,
				struct cdn_err *err);
	int (*item_trees)(struct store *s, char (**trees)[STORE_HASH_HEX + 1], size_t *n,
			  struct cdn_err *err);
	int (*run_delete)(struct store *s, const char *id, struct cdn_err *err);
	int (*blob_in_runs)(struct store *s, const char *hex, const char *skip_id, bool *used,
			    struct cdn_err *err);

	/* Whole tables, for moving a store to another backend (migrate.c). A
	 * transaction spans the calls between txn_begin and txn_end; reading
	 * gives every row in the table's key order, bytes columns as
	 * lowercase hex; inserting takes cells in the same form. */
	int (*txn_begin)(struct store *s, struct cdn_err *err);
	int (*txn_end)(struct store *s, bool commit, struct cdn_err *err);
	int (*table_read)(struct store *s, const struct store_table *t,
			  int (*row)(void *ctx, const struct store_cell *cells), void *ctx,
			  struct cdn_err *err);
	int (*table_insert)(struct store *s, const struct store_table *t,
			    const struct store_cell *cells, struct cdn_err *err);
};

extern const struct store_db_ops store_sqlite_ops;
extern const struct store_db_ops store_pg_ops;

/* The backend a database URL names: NULL or "" is SQLite in the state
 * directory; postgresql:// and postgres:// are Postgres. EINVAL for
 * anything else (the message shows the URL without its password). */
int store_db_pick(const char *database, const struct store_db_ops **ops, struct cdn_err *err);

/* ---------------------------------------------- rows, read by every backend */

/*
 * One result row, as a backend exposes it, for the readers below: the
 * column lists (STORE_*_COLUMNS) fix the order, so the conversion to a
 * struct and its checks (lengths, ranges, names) are written once.
 */
struct store_row {
	const void *ctx; /* the backend's statement or result */
	int row;	 /* its row number, where the backend needs one */
	/* The column's text and its length, or NULL for SQL NULL. */
	const char *(*text)(const struct store_row *row, int col, size_t *len);
	/* false when the column is not an integer. */
	bool (*int64)(const struct store_row *row, int col, int64_t *out);
};

#define STORE_ITEM_COLUMNS "kind, workspace, name, version, hash, tree, doc, created"

#define STORE_RUN_COLUMNS                                                                  \
	"id, workspace, agent, agent_version, agent_hash, status, exit_code, caller,"     \
	" created_ms, started_ms, finished_ms, supervisor_pid, supervisor_boot, input_json," \
	" result_json, error, supervisor_start, audit_head, audit_records, stdout_sha256,"  \
	" stderr_sha256, lease_owner, lease_until_ms, labels, attempt, retry_of, retry_max"

/* A list shows records, not their input and result (up to 1 MiB each). */
#define STORE_RUN_LIST_COLUMNS                                                             \
	"id, workspace, agent, agent_version, agent_hash, status, exit_code, caller,"     \
	" created_ms, started_ms, finished_ms, supervisor_pid, supervisor_boot, NULL,"     \
	" NULL, error, supervisor_start, audit_head, audit_records, stdout_sha256,"         \
	" stderr_sha256, lease_owner, lease_until_ms, labels, attempt, retry_of, retry_max"

#define STORE_KEY_COLUMNS "id, workspace, name, role, hash, created, last_used, revoked"

#define STORE_SECRET_INFO_COLUMNS "name, created, updated, plain_len"
#define STORE_CANDIDATE_COLUMNS "id, supervisor_pid, supervisor_boot, supervisor_start"

#define STORE_RETENTION_COLUMNS                                                            \
	"records_s, files_s, artifacts_s, evidence_s, records_max_s, files_max_s,"       \
	" artifacts_max_s, evidence_max_s"
/* From runs LEFT JOIN run_marks m: the last is whether the run has marks. */
#define STORE_MARKS_COLUMNS                                                                \
	"m.hold_reason, m.hold_by, m.hold_ms, m.files_pruned_ms, m.artifacts_pruned_ms,"  \
	" m.evidence_pruned_ms, CASE WHEN m.run_id IS NULL THEN 0 ELSE 1 END"
/* Runs whose state is final: the only ones pruning touches. */
#define STORE_FINAL_STATUS "status NOT IN ('created', 'running')"
/* The column of run_marks that says when kind k was pruned; NULL for
 * RETAIN_RECORDS (a pruned record is deleted). */
const char *store_pruned_column(enum store_retain k);

/* Runs whose liveness crash recovery judges by their supervisor process:
 * neither under a worker's lease (judged by the lease) nor queued for a
 * worker (created, with no supervisor yet: supervisor_pid 0). */
#define STORE_SUPERVISED "lease_owner = '' AND (status <> 'created' OR supervisor_pid <> 0)"
/* The channel a run queued for a worker is announced on (Postgres). */
#define STORE_QUEUE_CHANNEL "cordon_runs"
/* Runs waiting for a worker (store_run_lease_claim). */
#define STORE_QUEUED "status = 'created' AND supervisor_pid = 0 AND lease_owner = ''"
#define STORE_LOST_UPDATE                                                                  \
	"the run was marked lost (its worker's lease ran out) and keeps that status; "    \
	"its result is not recorded"

/* A run whose lease ran out, as expiry judges it. */
struct store_lease_candidate {
	char id[STORE_RUN_ID_MAX + 1];
	char owner[STORE_WORKER_ID_MAX + 1];
	int64_t until_ms; /* as stored, for the UPDATE's WHERE */
};

#define STORE_RUN_LIST_MAX 1000
#define STORE_RECOVER_ERROR "the supervisor died (crash or kill) before the run finished"

/* 0; -EIO when the row is malformed, -ENOMEM. */
int store_row_item(const struct store_row *row, struct store_item *out);
/* The index of name in names[0..n) (a name table of an enum), or -EINVAL. */
int store_name_pick(const char *const *names, size_t n, const char *name);
/* Text that goes back to people (the CLI, the dashboard): printable UTF-8,
 * no control character, shorter than cap; the error names owner and what. */
int store_text_check(const char *owner, const char *what, const char *v, size_t cap,
		     struct cdn_err *err);
/* agent is NAME or NAME@VERSION of an agent registered in ws (a schedule's
 * or a service's): 0, -ENOENT when it is not, -EINVAL when malformed. */
int store_agent_ref_check(struct store *s, const char *ws, const char *owner, const char *agent,
			  struct cdn_err *err);
int store_row_run(const struct store_row *row, struct store_run *out);
int store_row_key(const struct store_row *row, struct store_key *out);
#define STORE_SCHEDULE_COLUMNS                                                               \
	"workspace, name, agent, cron, tz, input_json, overlap, catchup, paused, created_by," \
	" created_ms, anchor_ms, next_ms, fired, skipped, last_run, last_fire_ms,"          \
	" last_skip_ms, last_skip"
int store_row_schedule(const struct store_row *row, struct store_schedule *out);
#define STORE_SERVICE_COLUMNS                                                                \
	"workspace, name, agent, input_json, env_json, secrets_json, paused, pause_reason,"  \
	" created_by, created_ms, current_run, next_ms, starts, exits, exit_times,"          \
	" last_exit, last_exit_ms, last_run, gen"
int store_row_service(const struct store_row *row, struct store_service *out);
int store_row_secret_info(const struct store_row *row, struct store_secret_info *out);
/* Columns: id, supervisor_pid, supervisor_boot, supervisor_start. */
int store_row_candidate(const struct store_row *row, struct store_recover_candidate *out);
/* "records_s = excluded.records_s, ..., updated = excluded.updated": the
 * SET of an upsert that changes only the fields set names (both dialects). */
#define STORE_RETENTION_SET_MAX 512
int store_retention_set_sql(unsigned set, char *out, size_t cap);
/* A retention row all zeros is no row. */
#define STORE_RETENTION_EMPTY                                                                \
	"records_s = 0 AND files_s = 0 AND artifacts_s = 0 AND evidence_s = 0 AND"        \
	" records_max_s = 0 AND files_max_s = 0 AND artifacts_max_s = 0 AND evidence_max_s = 0"
/* STORE_RETENTION_COLUMNS of ws's row, checked as a put would be. */
int store_row_retention(const struct store_row *row, const char *ws, struct store_retention *out);
/* STORE_MARKS_COLUMNS; all zeros when the run has none. */
int store_row_marks(const struct store_row *row, struct store_run_marks *out);
/* A malloc'd copy of a ciphertext or wrapped key column; -EIO when it is
 * empty or over STORE_MAX_SECRET_BLOB. */
int store_row_blob(const struct store_row *row, int col, uint8_t **blob, size_t *len);

/* The message for a reader's failure: "store: <where>: a <what> row is
 * malformed", or ENOMEM. */
int store_row_fail(const char *where, const char *what, int r, struct cdn_err *err);

/* What a new record or claim stores as supervisor_start: the start time of
 * the process that supervisor_pid names now (never a value carried over
 * from a record). */
int64_t store_supervisor_start(const struct store_run *r);

/* ------------------------------------- checks every backend makes (checks.c) */

const char *store_kind_name(enum store_kind kind);

int store_item_check(const struct store_item *it, struct cdn_err *err);
int store_run_check(const struct store_run *r, struct cdn_err *err);
/* Ages in 0..STORE_AGE_MAX_S; max_s only in the operator's (ws ""). */
int store_retention_check(const char *ws, const struct store_retention *r, struct cdn_err *err);
/* A hold's reason (1..255 bytes) and who (under 128), printable UTF-8. */
int store_hold_check(const char *reason, const char *by, struct cdn_err *err);

#endif
