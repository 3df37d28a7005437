/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store's metadata in SQLite, the default backend: the connection, the
 * schema and its migrations, the helpers the queries share (sqlite.h) and
 * the backend's ops table (internal.h). The queries are in sqlite_items.c,
 * sqlite_runs.c and sqlite_keys.c; the Postgres backend is pg_*.c
 * (docs/state.md has the schema).
 *
 * One connection per struct store, guarded by a mutex so that one store
 * may serve several threads. Several processes may share the database:
 * WAL lets readers run beside the one writer, writes take the write lock
 * at BEGIN IMMEDIATE (so a transaction never fails half-way on a lock), and
 * a busy timeout makes a process wait its turn instead of failing.
 *
 * Values are always bound parameters; the only SQL text built at run time
 * (store_run_list) is assembled from constant fragments.
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

#define BUSY_TIMEOUT_MS 5000


/*
 * The schema, one step per version: step i brings user_version from i to
 * i + 1 and sets it. A later cordon appends steps; it never edits one.
 */
static const char *const schema_steps[] = {
	/* 1 */
	"CREATE TABLE items ("
	" kind TEXT NOT NULL CHECK (kind IN ('agent', 'capability', 'env')),"
	" workspace TEXT NOT NULL,"
	" name TEXT NOT NULL,"
	" version INTEGER NOT NULL CHECK (version >= 1),"
	" hash TEXT NOT NULL,"
	" tree TEXT NOT NULL DEFAULT '',"
	" doc TEXT,"
	" created INTEGER NOT NULL,"
	" PRIMARY KEY (kind, workspace, name, version));"
	"CREATE TABLE grants ("
	" workspace TEXT NOT NULL,"
	" agent TEXT NOT NULL,"
	" capability TEXT NOT NULL,"
	" created INTEGER NOT NULL,"
	" PRIMARY KEY (workspace, agent, capability));"
	"CREATE TABLE workspace_keys ("
	" workspace TEXT PRIMARY KEY,"
	" wrapped BLOB NOT NULL,"
	" created INTEGER NOT NULL);"
	"CREATE TABLE secrets ("
	" workspace TEXT NOT NULL,"
	" name TEXT NOT NULL,"
	" ciphertext BLOB NOT NULL,"
	" plain_len INTEGER NOT NULL CHECK (plain_len >= 0),"
	" created INTEGER NOT NULL,"
	" updated INTEGER NOT NULL,"
	" PRIMARY KEY (workspace, name));"
	"CREATE TABLE runs ("
	" id TEXT PRIMARY KEY,"
	" workspace TEXT NOT NULL,"
	" agent TEXT NOT NULL,"
	" agent_version INTEGER NOT NULL,"
	" agent_hash TEXT NOT NULL,"
	" status TEXT NOT NULL CHECK (status IN ('created', 'running', 'succeeded', 'failed',"
	"  'timeout', 'oom', 'killed', 'error', 'cancelled')),"
	" exit_code INTEGER NOT NULL,"
	" caller TEXT NOT NULL,"
	" created_ms INTEGER NOT NULL,"
	" started_ms INTEGER NOT NULL,"
	" finished_ms INTEGER NOT NULL,"
	" supervisor_pid INTEGER NOT NULL,"
	" supervisor_boot TEXT NOT NULL,"
	" input_json TEXT,"
	" result_json TEXT,"
	" error TEXT NOT NULL);"
	/* Newest first per workspace, ties broken by id: the paging order. */
	"CREATE INDEX runs_by_workspace ON runs (workspace, created_ms DESC, id DESC);"
	/* Recovery looks only at unfinished runs, a handful among many. */
	"CREATE INDEX runs_unfinished ON runs (status) WHERE status IN ('created', 'running');"
	"PRAGMA user_version = 1;",
	/* 2: API keys, stored as sha256 hashes. */
	"CREATE TABLE api_keys ("
	" id TEXT PRIMARY KEY,"
	" workspace TEXT NOT NULL,"
	" name TEXT NOT NULL,"
	" role TEXT NOT NULL CHECK (role IN ('owner', 'member')),"
	" hash TEXT NOT NULL UNIQUE,"
	" created INTEGER NOT NULL,"
	" last_used INTEGER NOT NULL DEFAULT 0,"
	" revoked INTEGER NOT NULL DEFAULT 0);"
	"PRAGMA user_version = 2;",
	/* 3: the run list's filters page through an index too. */
	"CREATE INDEX runs_by_agent ON runs (workspace, agent, created_ms DESC, id DESC);"
	"CREATE INDEX runs_by_status ON runs (workspace, status, created_ms DESC, id DESC);"
	"PRAGMA user_version = 3;",
	/* 4: the supervisor's start time, so recovery tells a reused pid. */
	("ALTER TABLE runs ADD COLUMN supervisor_start INTEGER NOT NULL DEFAULT 0;"
	 "PRAGMA user_version = 4;"),
	/* 5: the audit chain's head as lines are written (so a log cut short
	 * after its run died is told from a whole one), and the sha256 of the
	 * run's stdout and stderr when it ended (evidence checks them). */
	("ALTER TABLE runs ADD COLUMN audit_head TEXT NOT NULL DEFAULT '';"
	 "ALTER TABLE runs ADD COLUMN audit_records INTEGER NOT NULL DEFAULT 0;"
	 "ALTER TABLE runs ADD COLUMN stdout_sha256 TEXT NOT NULL DEFAULT '';"
	 "ALTER TABLE runs ADD COLUMN stderr_sha256 TEXT NOT NULL DEFAULT '';"
	 "PRAGMA user_version = 5;"),
	/* 6: retention (docs/retention.md): the operator's ages and bounds
	 * (workspace '') and each workspace's ages, in seconds, 0 for unset;
	 * a run's hold and when each kind of what it left was pruned; and
	 * finished runs by age, what pruning reads. */
	("CREATE TABLE retention ("
	 " workspace TEXT PRIMARY KEY,"
	 " records_s INTEGER NOT NULL DEFAULT 0 CHECK (records_s >= 0),"
	 " files_s INTEGER NOT NULL DEFAULT 0 CHECK (files_s >= 0),"
	 " artifacts_s INTEGER NOT NULL DEFAULT 0 CHECK (artifacts_s >= 0),"
	 " evidence_s INTEGER NOT NULL DEFAULT 0 CHECK (evidence_s >= 0),"
	 " records_max_s INTEGER NOT NULL DEFAULT 0 CHECK (records_max_s >= 0),"
	 " files_max_s INTEGER NOT NULL DEFAULT 0 CHECK (files_max_s >= 0),"
	 " artifacts_max_s INTEGER NOT NULL DEFAULT 0 CHECK (artifacts_max_s >= 0),"
	 " evidence_max_s INTEGER NOT NULL DEFAULT 0 CHECK (evidence_max_s >= 0),"
	 " updated INTEGER NOT NULL);"
	 "CREATE TABLE run_marks ("
	 " run_id TEXT PRIMARY KEY,"
	 " hold_reason TEXT NOT NULL DEFAULT '',"
	 " hold_by TEXT NOT NULL DEFAULT '',"
	 " hold_ms INTEGER NOT NULL DEFAULT 0,"
	 " files_pruned_ms INTEGER NOT NULL DEFAULT 0,"
	 " artifacts_pruned_ms INTEGER NOT NULL DEFAULT 0,"
	 " evidence_pruned_ms INTEGER NOT NULL DEFAULT 0);"
	 "CREATE INDEX runs_finished ON runs (workspace, finished_ms, id)"
	 " WHERE status NOT IN ('created', 'running');"
	 "PRAGMA user_version = 6;"),
	/* 7: workers and leases (docs/deploy.md). The status "lost" needs a
	 * new CHECK, which SQLite cannot alter: the table is made again and
	 * its rows copied (https://sqlite.org/lang_altertable.html, the
	 * twelve steps; no view, trigger or foreign key names runs). */
	("CREATE TABLE runs_new ("
	 " id TEXT PRIMARY KEY,"
	 " workspace TEXT NOT NULL,"
	 " agent TEXT NOT NULL,"
	 " agent_version INTEGER NOT NULL,"
	 " agent_hash TEXT NOT NULL,"
	 " status TEXT NOT NULL CHECK (status IN ('created', 'running', 'succeeded', 'failed',"
	 "  'timeout', 'oom', 'killed', 'error', 'cancelled', 'lost')),"
	 " exit_code INTEGER NOT NULL,"
	 " caller TEXT NOT NULL,"
	 " created_ms INTEGER NOT NULL,"
	 " started_ms INTEGER NOT NULL,"
	 " finished_ms INTEGER NOT NULL,"
	 " supervisor_pid INTEGER NOT NULL,"
	 " supervisor_boot TEXT NOT NULL,"
	 " input_json TEXT,"
	 " result_json TEXT,"
	 " error TEXT NOT NULL,"
	 " supervisor_start INTEGER NOT NULL DEFAULT 0,"
	 " audit_head TEXT NOT NULL DEFAULT '',"
	 " audit_records INTEGER NOT NULL DEFAULT 0,"
	 " stdout_sha256 TEXT NOT NULL DEFAULT '',"
	 " stderr_sha256 TEXT NOT NULL DEFAULT '',"
	 " lease_owner TEXT NOT NULL DEFAULT '',"
	 " lease_until_ms INTEGER NOT NULL DEFAULT 0,"
	 " labels TEXT NOT NULL DEFAULT '',"
	 " attempt INTEGER NOT NULL DEFAULT 1 CHECK (attempt >= 1),"
	 " retry_of TEXT NOT NULL DEFAULT '',"
	 " retry_max INTEGER NOT NULL DEFAULT 0 CHECK (retry_max >= 0));"
	 "INSERT INTO runs_new (id, workspace, agent, agent_version, agent_hash, status,"
	 " exit_code, caller, created_ms, started_ms, finished_ms, supervisor_pid,"
	 " supervisor_boot, input_json, result_json, error, supervisor_start, audit_head,"
	 " audit_records, stdout_sha256, stderr_sha256)"
	 " SELECT id, workspace, agent, agent_version, agent_hash, status, exit_code, caller,"
	 " created_ms, started_ms, finished_ms, supervisor_pid, supervisor_boot, input_json,"
	 " result_json, error, supervisor_start, audit_head, audit_records, stdout_sha256,"
	 " stderr_sha256 FROM runs;"
	 "DROP TABLE runs;"
	 "ALTER TABLE runs_new RENAME TO runs;"
	 "CREATE INDEX runs_by_workspace ON runs (workspace, created_ms DESC, id DESC);"
	 "CREATE INDEX runs_unfinished ON runs (status) WHERE status IN ('created', 'running');"
	 "CREATE INDEX runs_by_agent ON runs (workspace, agent, created_ms DESC, id DESC);"
	 "CREATE INDEX runs_by_status ON runs (workspace, status, created_ms DESC, id DESC);"
	 "CREATE INDEX runs_finished ON runs (workspace, finished_ms, id)"
	 " WHERE status NOT IN ('created', 'running');"
	 /* What workers take, oldest first. */
	 "CREATE INDEX runs_queued ON runs (created_ms, id)"
	 " WHERE status = 'created' AND supervisor_pid = 0 AND lease_owner = '';"
	 "PRAGMA user_version = 7;"),
	/* 8: schedules (docs/schedules.md). */
	("CREATE TABLE schedules ("
	 " workspace TEXT NOT NULL,"
	 " name TEXT NOT NULL,"
	 " agent TEXT NOT NULL,"
	 " cron TEXT NOT NULL,"
	 " tz TEXT NOT NULL,"
	 " input_json TEXT,"
	 " overlap TEXT NOT NULL CHECK (overlap IN ('forbid', 'allow', 'replace')),"
	 " catchup TEXT NOT NULL CHECK (catchup IN ('skip', 'once')),"
	 " paused INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),"
	 " created_by TEXT NOT NULL,"
	 " created_ms INTEGER NOT NULL,"
	 " anchor_ms INTEGER NOT NULL,"
	 " next_ms INTEGER NOT NULL,"
	 " fired INTEGER NOT NULL DEFAULT 0,"
	 " skipped INTEGER NOT NULL DEFAULT 0,"
	 " last_run TEXT NOT NULL DEFAULT '',"
	 " last_fire_ms INTEGER NOT NULL DEFAULT 0,"
	 " last_skip_ms INTEGER NOT NULL DEFAULT 0,"
	 " last_skip TEXT NOT NULL DEFAULT '',"
	 " PRIMARY KEY (workspace, name));"
	 "CREATE INDEX schedules_due ON schedules (next_ms) WHERE paused = 0 AND next_ms > 0;"
	 "PRAGMA user_version = 8;"),
	/* 9: services (docs/services.md). */
	("CREATE TABLE services ("
	 " workspace TEXT NOT NULL,"
	 " name TEXT NOT NULL,"
	 " agent TEXT NOT NULL,"
	 " input_json TEXT,"
	 " env_json TEXT,"
	 " secrets_json TEXT,"
	 " paused INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),"
	 " pause_reason TEXT NOT NULL DEFAULT '',"
	 " created_by TEXT NOT NULL,"
	 " created_ms INTEGER NOT NULL,"
	 " current_run TEXT NOT NULL DEFAULT '',"
	 " next_ms INTEGER NOT NULL DEFAULT 0,"
	 " starts INTEGER NOT NULL DEFAULT 0,"
	 " exits INTEGER NOT NULL DEFAULT 0,"
	 " exit_times TEXT NOT NULL DEFAULT '',"
	 " last_exit TEXT NOT NULL DEFAULT '',"
	 " last_run TEXT NOT NULL DEFAULT '',"
	 " gen INTEGER NOT NULL DEFAULT 0,"
	 " last_exit_ms INTEGER NOT NULL DEFAULT 0,"
	 " PRIMARY KEY (workspace, name));"
	 "PRAGMA user_version = 9;"),
};

#define SCHEMA_VERSION ((int)CDN_ARRAY_SIZE(schema_steps))

/* ---------------------------------------------------------------- helpers */

int sql_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED: return EBUSY;
	case SQLITE_NOMEM: return ENOMEM;
	case SQLITE_READONLY: return EROFS;
	case SQLITE_FULL: return ENOSPC;
	case SQLITE_PERM:
	case SQLITE_AUTH: return EACCES;
	case SQLITE_CONSTRAINT: return EEXIST;
	case SQLITE_TOOBIG: return E2BIG;
	case SQLITE_CANTOPEN: return ENOENT;
	default: return EIO;
	}
}

int sql_fail(struct sql_db *d, int rc, struct cdn_err *err, const char *fmt, ...)
{
	char what[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	/* The extended code tells IOERR_SHORT_READ from IOERR_FSYNC... */
	return cdn_err_msg(err, sql_errno(rc), "store: %s: %s: %s (sqlite %d)", d->path, what,
			   d->db ? sqlite3_errmsg(d->db) : sqlite3_errstr(rc),
			   d->db ? sqlite3_extended_errcode(d->db) : rc);
}

void sql_stmt_freep(sqlite3_stmt **st)
{
	if (*st)
		sqlite3_finalize(*st);
}


void sql_unlockp(struct sql_db **d)
{
	if (*d)
		pthread_mutex_unlock(&(*d)->lock);
}


struct sql_db *sql_lock(struct store *s)
{
	struct sql_db *d = (struct sql_db *)s->db;
	pthread_mutex_lock(&d->lock);
	return d;
}

int sql_prep(struct sql_db *d, const char *sql, sqlite3_stmt **st, struct cdn_err *err)
{
	int rc = sqlite3_prepare_v2(d->db, sql, -1, st, NULL);
	return rc == SQLITE_OK ? 0 : sql_fail(d, rc, err, "prepare");
}


void sql_b_text(struct binder *b, int i, const char *v)
{
	if (b->rc == SQLITE_OK)
		b->rc = v ? sqlite3_bind_text(b->st, i, v, -1, SQLITE_STATIC)
			  : sqlite3_bind_null(b->st, i);
}

void sql_b_int(struct binder *b, int i, int64_t v)
{
	if (b->rc == SQLITE_OK)
		b->rc = sqlite3_bind_int64(b->st, i, v);
}

void sql_b_blob(struct binder *b, int i, const void *v, size_t len)
{
	if (b->rc == SQLITE_OK)
		b->rc = sqlite3_bind_blob(b->st, i, v, (int)len, SQLITE_STATIC);
}

/* SQLITE_ROW, SQLITE_DONE or a negative errno. */
int sql_step(struct sql_db *d, sqlite3_stmt *st, struct cdn_err *err, const char *what)
{
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		return rc;
	return sql_fail(d, rc, err, "%s", what);
}


void sql_txn_endp(struct txn *t)
{
	if (t->open)
		sqlite3_exec(t->d->db, "ROLLBACK", NULL, NULL, NULL);
}


int sql_txn_begin(struct txn *t, struct cdn_err *err)
{
	/* IMMEDIATE takes the write lock now (waiting up to the busy timeout),
	 * so no statement inside can fail for a lock later. */
	int rc = sqlite3_exec(t->d->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return sql_fail(t->d, rc, err, "begin");
	t->open = true;
	return 0;
}

int sql_txn_commit(struct txn *t, struct cdn_err *err)
{
	int rc = sqlite3_exec(t->d->db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return sql_fail(t->d, rc, err, "commit");
	t->open = false;
	return 0;
}

static const char *row_text(const struct store_row *row, int col, size_t *len)
{
	sqlite3_stmt *st = (sqlite3_stmt *)row->ctx;
	int type = sqlite3_column_type(st, col);
	if (type == SQLITE_NULL)
		return NULL;
	/* Blobs as stored; anything else as its text. */
	const void *p = type == SQLITE_BLOB ? sqlite3_column_blob(st, col)
					    : (const void *)sqlite3_column_text(st, col);
	*len = (size_t)sqlite3_column_bytes(st, col);
	return p ? p : "";
}

static bool row_int64(const struct store_row *row, int col, int64_t *out)
{
	sqlite3_stmt *st = (sqlite3_stmt *)row->ctx;
	*out = sqlite3_column_int64(st, col);
	return sqlite3_column_type(st, col) == SQLITE_INTEGER;
}

struct store_row sql_row(sqlite3_stmt *st)
{
	return (struct store_row){ .ctx = st, .text = row_text, .int64 = row_int64 };
}

static int pragma_int(struct sql_db *d, const char *sql, int *out, struct cdn_err *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = sql_prep(d, sql, &st, err);
	if (r < 0 || (r = sql_step(d, st, err, sql)) < 0)
		return r;
	*out = r == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
	return 0;
}

/* ------------------------------------------------------------------- open */

static int migrate(struct sql_db *d, struct cdn_err *err)
{
	/* In one write transaction: two processes opening a new store at
	 * once take turns, and the second finds the schema made. */
	_cleanup_txn_ struct txn t = { .d = d };
	int r = sql_txn_begin(&t, err);
	int version = 0;
	if (r < 0 || (r = pragma_int(d, "PRAGMA user_version", &version, err)) < 0)
		return r;
	if (version > SCHEMA_VERSION)
		return cdn_err_msg(err, EPROTO,
				   "store: %s: schema version %d is newer than this cordon knows "
				   "(%d): upgrade cordon",
				   d->path, version, SCHEMA_VERSION);
	for (int v = version; v < SCHEMA_VERSION; v++) {
		int rc = sqlite3_exec(d->db, schema_steps[v], NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			return sql_fail(d, rc, err, "schema version %d", v + 1);
		int now = 0;
		if ((r = pragma_int(d, "PRAGMA user_version", &now, err)) < 0)
			return r;
		if (now != v + 1)
			return cdn_err_msg(err, EPROTO, "store: schema step %d does not set its "
					   "version", v + 1);
	}
	return sql_txn_commit(&t, err);
}

static int configure(struct sql_db *d, struct cdn_err *err)
{
	int rc = sqlite3_busy_timeout(d->db, BUSY_TIMEOUT_MS);
	if (rc != SQLITE_OK)
		return sql_fail(d, rc, err, "busy timeout");
	/* Defensive: no writable_schema tricks, no schema-borne functions
	 * running with our privileges if the file was tampered with. */
	sqlite3_db_config(d->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	sqlite3_db_config(d->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);

	/* WAL is a property of the file: set once, by the first open (which
	 * store.c serialises), and only read afterwards, since setting it
	 * needs the database to itself. */
	static const char *const modes[] = { "PRAGMA journal_mode", "PRAGMA journal_mode = WAL" };
	char mode[16] = "";
	for (size_t i = 0; i < CDN_ARRAY_SIZE(modes) && strcmp(mode, "wal") != 0; i++) {
		_cleanup_stmt_ sqlite3_stmt *st = NULL;
		int r = sql_prep(d, modes[i], &st, err);
		if (r < 0 || (r = sql_step(d, st, err, "journal_mode")) < 0)
			return r;
		const char *m = r == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
		snprintf(mode, sizeof(mode), "%s", m ? m : "");
	}
	if (strcmp(mode, "wal") != 0)
		return cdn_err_msg(err, EIO, "store: %s: the database refused WAL mode (\"%s\")",
				   d->path, mode);
	/* NORMAL is safe with WAL: a crash never corrupts the database; a
	 * power cut may lose the last commits (docs/state.md). */
	static const char *const pragmas[] = {
		"PRAGMA synchronous = NORMAL",
		"PRAGMA foreign_keys = ON",
	};
	for (size_t i = 0; i < CDN_ARRAY_SIZE(pragmas); i++) {
		rc = sqlite3_exec(d->db, pragmas[i], NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			return sql_fail(d, rc, err, "%s", pragmas[i]);
	}
	return 0;
}

static void sqlite_close(struct store_db *db)
{
	struct sql_db *d = (struct sql_db *)db;
	if (!d)
		return;
	if (d->db)
		sqlite3_close(d->db);
	pthread_mutex_destroy(&d->lock);
	free(d->path);
	free(d);
}

static void db_freep(struct sql_db **d)
{
	if (*d)
		sqlite_close((struct store_db *)*d);
}

static int sqlite_open(struct store *s, const char *database, struct store_db **out,
		       struct cdn_err *err)
{
	(void)database;
	*out = NULL;
	_cleanup_(db_freep) struct sql_db *d = calloc(1, sizeof(*d));
	if (!d)
		return cdn_err_set(err, ENOMEM, "store: open the database");
	pthread_mutex_init(&d->lock, NULL);
	if (asprintf(&d->path, "%s/%s", s->dir, STORE_DB_FILE) < 0) {
		d->path = NULL;
		return cdn_err_set(err, ENOMEM, "store: open the database");
	}
	/* NOFOLLOW: the file was checked by store.c; a symlink swapped in
	 * since must not be opened. */
	int rc = sqlite3_open_v2(d->path, &d->db,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOFOLLOW |
					 SQLITE_OPEN_FULLMUTEX,
				 NULL);
	if (rc != SQLITE_OK)
		return sql_fail(d, rc, err, "open");
	sqlite3_extended_result_codes(d->db, 1);
	int r = configure(d, err);
	if (r < 0 || (r = migrate(d, err)) < 0)
		return r;
	*out = (struct store_db *)cdn_steal(&d);
	return 0;
}

const struct store_db_ops store_sqlite_ops = {
	.name = "sqlite",
	.open = sqlite_open,
	.close = sqlite_close,
	.item_put = sqlite_item_put,
	.item_get = sqlite_item_get,
	.item_list = sqlite_item_list,
	.grant_add = sqlite_grant_add,
	.grant_has = sqlite_grant_has,
	.secret_put = sqlite_secret_put,
	.secret_get = sqlite_secret_get,
	.secret_delete = sqlite_secret_delete,
	.secret_list = sqlite_secret_list,
	.wskey_get = sqlite_wskey_get,
	.wskey_put = sqlite_wskey_put,
	.run_create = sqlite_run_create,
	.run_update = sqlite_run_update,
	.run_anchor = sqlite_run_anchor,
	.run_get = sqlite_run_get,
	.run_list = sqlite_run_list,
	.schedule_create = sqlite_schedule_create,
	.schedule_get = sqlite_schedule_get,
	.schedule_list = sqlite_schedule_list,
	.schedule_delete = sqlite_schedule_delete,
	.schedule_pause = sqlite_schedule_pause,
	.schedule_claim = sqlite_schedule_claim,
	.schedule_record = sqlite_schedule_record,
	.service_create = sqlite_service_create,
	.service_get = sqlite_service_get,
	.service_list = sqlite_service_list,
	.service_delete = sqlite_service_delete,
	.service_update = sqlite_service_update,
	.run_usage = sqlite_run_usage,
	.run_claim = sqlite_run_claim,
	.run_lease_claim = sqlite_run_lease_claim,
	.lease_renew = sqlite_lease_renew,
	.leases_expired = sqlite_leases_expired,
	.run_mark_lost = sqlite_run_mark_lost,
	.runs_queued = sqlite_runs_queued,
	.run_cancel_queued = sqlite_run_cancel_queued,
	.runs_unfinished = sqlite_runs_unfinished,
	.run_mark_dead = sqlite_run_mark_dead,
	.key_put = sqlite_key_put,
	.key_by_hash = sqlite_key_by_hash,
	.key_list = sqlite_key_list,
	.key_revoke = sqlite_key_revoke,
	.key_touch = sqlite_key_touch,
	.retention_get = sqlite_retention_get,
	.retention_put = sqlite_retention_put,
	.run_marks_get = sqlite_run_marks_get,
	.run_hold = sqlite_run_hold,
	.run_release = sqlite_run_release,
	.run_mark_pruned = sqlite_run_mark_pruned,
	.prune_due = sqlite_prune_due,
	.prune_workspaces = sqlite_prune_workspaces,
	.item_trees = sqlite_item_trees,
	.run_delete = sqlite_run_delete,
	.blob_in_runs = sqlite_blob_in_runs,
	.txn_begin = sqlite_txn_begin,
	.txn_end = sqlite_txn_end,
	.table_read = sqlite_table_read,
	.table_insert = sqlite_table_insert,
};
