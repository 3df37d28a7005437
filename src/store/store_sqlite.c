/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store's metadata in SQLite: every SQL statement of cordon is in this
 * file, so a Postgres backend replaces this file alone (docs/state.md has
 * the schema).
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
#include "store/internal.h"

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
#define RUN_LIST_MAX 1000
#define RECOVER_ERROR "the supervisor died (crash or kill) before the run finished"

struct store_db {
	sqlite3 *db;
	char *path; /* for messages */
	pthread_mutex_t lock;
};

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
};

#define SCHEMA_VERSION ((int)CDN_ARRAY_SIZE(schema_steps))

/* ---------------------------------------------------------------- helpers */

static int sql_errno(int rc)
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

static int sql_fail(struct store_db *d, int rc, struct cdn_err *err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int sql_fail(struct store_db *d, int rc, struct cdn_err *err, const char *fmt, ...)
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

static void stmt_freep(sqlite3_stmt **st)
{
	if (*st)
		sqlite3_finalize(*st);
}

#define _cleanup_stmt_ _cleanup_(stmt_freep)

static void db_unlockp(struct store_db **d)
{
	if (*d)
		pthread_mutex_unlock(&(*d)->lock);
}

#define _cleanup_unlock_ _cleanup_(db_unlockp)

static struct store_db *db_lock(struct store *s)
{
	pthread_mutex_lock(&s->db->lock);
	return s->db;
}

static int prep(struct store_db *d, const char *sql, sqlite3_stmt **st, struct cdn_err *err)
{
	int rc = sqlite3_prepare_v2(d->db, sql, -1, st, NULL);
	return rc == SQLITE_OK ? 0 : sql_fail(d, rc, err, "prepare");
}

/* Binds in order, keeping the first failure for one check at the end. */
struct binder {
	sqlite3_stmt *st;
	int rc;
};

static void b_text(struct binder *b, int i, const char *v)
{
	if (b->rc == SQLITE_OK)
		b->rc = v ? sqlite3_bind_text(b->st, i, v, -1, SQLITE_STATIC)
			  : sqlite3_bind_null(b->st, i);
}

static void b_int(struct binder *b, int i, int64_t v)
{
	if (b->rc == SQLITE_OK)
		b->rc = sqlite3_bind_int64(b->st, i, v);
}

static void b_blob(struct binder *b, int i, const void *v, size_t len)
{
	if (b->rc == SQLITE_OK)
		b->rc = sqlite3_bind_blob(b->st, i, v, (int)len, SQLITE_STATIC);
}

/* SQLITE_ROW, SQLITE_DONE or a negative errno. */
static int step(struct store_db *d, sqlite3_stmt *st, struct cdn_err *err, const char *what)
{
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		return rc;
	return sql_fail(d, rc, err, "%s", what);
}

/* A write transaction that rolls back unless committed. */
struct txn {
	struct store_db *d;
	bool open;
};

static void txn_endp(struct txn *t)
{
	if (t->open)
		sqlite3_exec(t->d->db, "ROLLBACK", NULL, NULL, NULL);
}

#define _cleanup_txn_ _cleanup_(txn_endp)

static int txn_begin(struct txn *t, struct cdn_err *err)
{
	/* IMMEDIATE takes the write lock now (waiting up to the busy timeout),
	 * so no statement inside can fail for a lock later. */
	int rc = sqlite3_exec(t->d->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return sql_fail(t->d, rc, err, "begin");
	t->open = true;
	return 0;
}

static int txn_commit(struct txn *t, struct cdn_err *err)
{
	int rc = sqlite3_exec(t->d->db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return sql_fail(t->d, rc, err, "commit");
	t->open = false;
	return 0;
}

/* Copies a text column into a fixed field; false when it does not fit. */
static bool col_copy(sqlite3_stmt *st, int i, char *out, size_t cap)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	size_t n = (size_t)sqlite3_column_bytes(st, i);
	if (!t) {
		out[0] = '\0';
		return true;
	}
	if (n >= cap || memchr(t, '\0', n))
		return false;
	memcpy(out, t, n + 1);
	return true;
}

/* A malloc'd copy of a text column (NULL stays NULL); false on ENOMEM. */
static bool col_dup(sqlite3_stmt *st, int i, char **out)
{
	*out = NULL;
	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		return true;
	const unsigned char *t = sqlite3_column_text(st, i);
	if (!t)
		return false;
	*out = strdup((const char *)t);
	return *out != NULL;
}

static int pragma_int(struct store_db *d, const char *sql, int *out, struct cdn_err *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = prep(d, sql, &st, err);
	if (r < 0 || (r = step(d, st, err, sql)) < 0)
		return r;
	*out = r == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
	return 0;
}

/* ------------------------------------------------------------------- open */

static int migrate(struct store_db *d, struct cdn_err *err)
{
	/* In one write transaction: two processes opening a new store at
	 * once take turns, and the second finds the schema made. */
	_cleanup_txn_ struct txn t = { .d = d };
	int r = txn_begin(&t, err);
	int version = 0;
	if (r < 0 || (r = pragma_int(d, "PRAGMA user_version", &version, err)) < 0)
		return r;
	if (version > SCHEMA_VERSION)
		return cdn_err_set(err, EPROTO,
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
			return cdn_err_set(err, EPROTO, "store: schema step %d does not set its "
					   "version", v + 1);
	}
	return txn_commit(&t, err);
}

static int configure(struct store_db *d, struct cdn_err *err)
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
		int r = prep(d, modes[i], &st, err);
		if (r < 0 || (r = step(d, st, err, "journal_mode")) < 0)
			return r;
		const char *m = r == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
		snprintf(mode, sizeof(mode), "%s", m ? m : "");
	}
	if (strcmp(mode, "wal") != 0)
		return cdn_err_set(err, EIO, "store: %s: the database refused WAL mode (\"%s\")",
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

static void db_freep(struct store_db **d)
{
	if (*d)
		store_db_close(*d);
}

int store_db_open(struct store *s, struct store_db **out, struct cdn_err *err)
{
	*out = NULL;
	_cleanup_(db_freep) struct store_db *d = calloc(1, sizeof(*d));
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
	*out = cdn_steal(&d);
	return 0;
}

void store_db_close(struct store_db *d)
{
	if (!d)
		return;
	if (d->db)
		sqlite3_close(d->db);
	pthread_mutex_destroy(&d->lock);
	free(d->path);
	free(d);
}

/* --------------------------------------------------------------- registry */

static int item_read(sqlite3_stmt *st, struct store_item *out)
{
	/* Columns: kind, workspace, name, version, hash, tree, doc, created */
	const char *kind = (const char *)sqlite3_column_text(st, 0);
	memset(out, 0, sizeof(*out));
	if (!kind)
		return -EIO;
	if (!strcmp(kind, "agent"))
		out->kind = STORE_AGENT;
	else if (!strcmp(kind, "capability"))
		out->kind = STORE_CAPABILITY;
	else if (!strcmp(kind, "env"))
		out->kind = STORE_ENV;
	else
		return -EIO;
	int64_t version = sqlite3_column_int64(st, 3);
	if (version < 1 || version > UINT32_MAX)
		return -EIO;
	out->version = (unsigned)version;
	if (!col_copy(st, 1, out->workspace, sizeof(out->workspace)) ||
	    !col_copy(st, 2, out->name, sizeof(out->name)) ||
	    !col_copy(st, 4, out->hash, sizeof(out->hash)) ||
	    !col_copy(st, 5, out->tree, sizeof(out->tree)))
		return -EIO;
	if (!col_dup(st, 6, &out->doc))
		return -ENOMEM;
	out->created = sqlite3_column_int64(st, 7);
	return 0;
}

static int item_read_fail(struct store_db *d, int r, struct cdn_err *err)
{
	if (r == -ENOMEM)
		return cdn_err_set(err, ENOMEM, "store: %s: read an item", d->path);
	return cdn_err_set(err, EIO, "store: %s: an item row is malformed", d->path);
}

int store_item_put(struct store *s, const struct store_item *item, unsigned *version, bool *created,
		   struct cdn_err *err)
{
	int r = store_item_check(item, err);
	if (r < 0)
		return r;
	const char *kind = store_kind_name(item->kind);
	_cleanup_unlock_ struct store_db *d = db_lock(s);
	_cleanup_txn_ struct txn t = { .d = d };
	if ((r = txn_begin(&t, err)) < 0)
		return r;
	int64_t latest = 0;
	{
		_cleanup_stmt_ sqlite3_stmt *st = NULL;
		if ((r = prep(d,
			      "SELECT version, hash FROM items WHERE kind = ?1 AND workspace = ?2"
			      " AND name = ?3 ORDER BY version DESC LIMIT 1",
			      &st, err)) < 0)
			return r;
		struct binder b = { st, SQLITE_OK };
		b_text(&b, 1, kind);
		b_text(&b, 2, item->workspace);
		b_text(&b, 3, item->name);
		if (b.rc != SQLITE_OK)
			return sql_fail(d, b.rc, err, "bind");
		if ((r = step(d, st, err, "read the latest version")) < 0)
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
				return txn_commit(&t, err);
			}
		}
	}
	if (latest >= UINT32_MAX)
		return cdn_err_set(err, EOVERFLOW, "store: %s %s: too many versions", kind,
				   item->name);
	_cleanup_stmt_ sqlite3_stmt *ins = NULL;
	if ((r = prep(d,
		      "INSERT INTO items (kind, workspace, name, version, hash, tree, doc, created)"
		      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
		      &ins, err)) < 0)
		return r;
	struct binder b = { ins, SQLITE_OK };
	b_text(&b, 1, kind);
	b_text(&b, 2, item->workspace);
	b_text(&b, 3, item->name);
	b_int(&b, 4, latest + 1);
	b_text(&b, 5, item->hash);
	b_text(&b, 6, item->tree);
	b_text(&b, 7, item->doc);
	b_int(&b, 8, item->created > 0 ? item->created : (int64_t)time(NULL));
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	if ((r = step(d, ins, err, "insert an item")) < 0)
		return r;
	if ((r = txn_commit(&t, err)) < 0)
		return r;
	if (version)
		*version = (unsigned)(latest + 1);
	if (created)
		*created = true;
	return 0;
}

int store_item_get(struct store *s, enum store_kind kind, const char *ws, const char *name,
		   unsigned version, struct store_item *out, struct cdn_err *err)
{
	memset(out, 0, sizeof(*out));
	const char *kn = store_kind_name(kind);
	if (!kn)
		return cdn_err_msg(err, EINVAL, "store: unknown item kind %d", (int)kind);
	int r = store_name_check("workspace", ws, err);
	if (r < 0 || (r = store_name_check(kn, name, err)) < 0)
		return r;
	_cleanup_unlock_ struct store_db *d = db_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if ((r = prep(d,
		      version ? "SELECT kind, workspace, name, version, hash, tree, doc, created"
				" FROM items WHERE kind = ?1 AND workspace = ?2 AND name = ?3"
				" AND version = ?4"
			      : "SELECT kind, workspace, name, version, hash, tree, doc, created"
				" FROM items WHERE kind = ?1 AND workspace = ?2 AND name = ?3"
				" ORDER BY version DESC LIMIT 1",
		      &st, err)) < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	b_text(&b, 1, kn);
	b_text(&b, 2, ws);
	b_text(&b, 3, name);
	if (version)
		b_int(&b, 4, version);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	if ((r = step(d, st, err, "read an item")) < 0)
		return r;
	if (r == SQLITE_DONE) {
		if (version)
			return cdn_err_set(err, ENOENT, "%s %s version %u (workspace %s)", kn, name,
					   version, ws);
		return cdn_err_set(err, ENOENT, "%s %s (workspace %s)", kn, name, ws);
	}
	if ((r = item_read(st, out)) < 0)
		return item_read_fail(d, r, err);
	return 0;
}

void store_item_clear(struct store_item *it)
{
	if (!it)
		return;
	free(it->doc);
	it->doc = NULL;
}

void store_items_free(struct store_item *items, size_t n)
{
	for (size_t i = 0; items && i < n; i++)
		store_item_clear(&items[i]);
	free(items);
}

int store_item_list(struct store *s, enum store_kind kind, const char *ws, struct store_item **out,
		    size_t *n, struct cdn_err *err)
{
	*out = NULL;
	*n = 0;
	const char *kn = store_kind_name(kind);
	if (!kn)
		return cdn_err_msg(err, EINVAL, "store: unknown item kind %d", (int)kind);
	int r = store_name_check("workspace", ws, err);
	if (r < 0)
		return r;
	_cleanup_unlock_ struct store_db *d = db_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if ((r = prep(d,
		      "SELECT i.kind, i.workspace, i.name, i.version, i.hash, i.tree, i.doc,"
		      " i.created FROM items i WHERE i.kind = ?1 AND i.workspace = ?2"
		      " AND i.version = (SELECT MAX(l.version) FROM items l WHERE"
		      " l.kind = i.kind AND l.workspace = i.workspace AND l.name = i.name)"
		      " ORDER BY i.name",
		      &st, err)) < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	b_text(&b, 1, kn);
	b_text(&b, 2, ws);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	struct store_item *v = NULL;
	size_t count = 0, cap = 0;
	while ((r = step(d, st, err, "list items")) == SQLITE_ROW) {
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
		if ((r = item_read(st, &v[count])) < 0) {
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

int store_grant_add(struct store *s, const char *ws, const char *agent, const char *capability,
		    struct cdn_err *err)
{
	int r = store_name_check("workspace", ws, err);
	if (r < 0 || (r = store_name_check("agent", agent, err)) < 0 ||
	    (r = store_name_check("capability", capability, err)) < 0)
		return r;
	_cleanup_unlock_ struct store_db *d = db_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	/* A grant given twice is one grant. */
	if ((r = prep(d,
		      "INSERT INTO grants (workspace, agent, capability, created)"
		      " VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
		      &st, err)) < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	b_text(&b, 1, ws);
	b_text(&b, 2, agent);
	b_text(&b, 3, capability);
	b_int(&b, 4, (int64_t)time(NULL));
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	r = step(d, st, err, "add a grant");
	return r < 0 ? r : 0;
}

bool store_grant_has(struct store *s, const char *ws, const char *agent, const char *capability)
{
	if (store_name_check("workspace", ws, NULL) < 0 ||
	    store_name_check("agent", agent, NULL) < 0 ||
	    store_name_check("capability", capability, NULL) < 0)
		return false;
	_cleanup_unlock_ struct store_db *d = db_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if (prep(d,
		 "SELECT 1 FROM grants WHERE workspace = ?1 AND agent = ?2 AND capability = ?3",
		 &st, NULL) < 0)
		return false;
	struct binder b = { st, SQLITE_OK };
	b_text(&b, 1, ws);
	b_text(&b, 2, agent);
	b_text(&b, 3, capability);
	/* Any failure reads as "not granted": fail closed. */
	return b.rc == SQLITE_OK && step(d, st, NULL, "read a grant") == SQLITE_ROW;
}

/* ---------------------------------------------------------------- secrets */

static int blob_arg_check(const char *what, const char *ws, const uint8_t *blob, size_t len,
			  struct cdn_err *err)
{
	if (!blob || len == 0)
		return cdn_err_msg(err, EINVAL, "store: %s (workspace %s): empty", what, ws);
	if (len > STORE_MAX_SECRET_BLOB)
		return cdn_err_set(err, E2BIG, "store: %s (workspace %s): over %d bytes", what, ws,
				   STORE_MAX_SECRET_BLOB);
	return 0;
}

/* A malloc'd copy of a blob column; -EIO when it is empty or over the bound. */
static int col_blob(sqlite3_stmt *st, int i, uint8_t **blob, size_t *len)
{
	const void *p = sqlite3_column_blob(st, i);
	int n = sqlite3_column_bytes(st, i);
	if (!p || n <= 0 || n > STORE_MAX_SECRET_BLOB)
		return -EIO;
	*blob = malloc((size_t)n);
	if (!*blob)
		return -ENOMEM;
	memcpy(*blob, p, (size_t)n);
	*len = (size_t)n;
	return 0;
}

int store_secret_put(struct store *s, const char *ws, const char *name, const uint8_t *blob,
		     size_t len, size_t plain_len, struct cdn_err *err)
{
	int r = store_name_check("workspace", ws, err);
	if (r < 0 || (r = store_secret_name_check(name, err)) < 0 ||
	    (r = blob_arg_check("secret", ws, blob, len, err)) < 0)
		return r;
	if (plain_len > (size_t)INT64_MAX)
		return cdn_err_msg(err, EINVAL, "store: secret %s: bad length", name);
	_cleanup_unlock_ struct store_db *d = db_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	/* Replacing a value keeps its creation time. */
	if ((r = prep(d,
		      "INSERT INTO secrets (workspace, name, ciphertext, plain_len, created,"
		      " updated) VALUES (?1, ?2, ?3, ?4, ?5, ?5)"
		      " ON CONFLICT (workspace, name) DO UPDATE SET"
		      " ciphertext = excluded.ciphertext, plain_len = excluded.plain_len,"
		      " updated = excluded.updated",
		      &st, err)) < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	b_text(&b, 1, ws);
	b_text(&b, 2, name);
	b_blob(&b, 3, blob, len);
	b_int(&b, 4, (int64_t)plain_len);
	b_int(&b, 5, (int64_t)time(NULL));
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	r = step(d, st, err, "write a secret");
	return r < 0 ? r : 0;
}

int store_secret_get(struct store *s, const char *ws, const char *name, uint8_t **blob,
		     size_t *len, struct cdn_err *err)
{
	*blob = NULL;
	*len = 0;
	int r = store_name_check("workspace", ws, err);
	if (r < 0 || (r = store_secret_name_check(name, err)) < 0)
		return r;
	_cleanup_unlock_ struct store_db *d = db_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if ((r = prep(d, "SELECT ciphertext FROM secrets WHERE workspace = ?1 AND name = ?2", &st,
		      err)) < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	b_text(&b, 1, ws);
	b_text(&b, 2, name);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	if ((r = step(d, st, err, "read a secret")) < 0)
		return r;
	if (r == SQLITE_DONE)
		return cdn_err_set(err, ENOENT, "secret %s (workspace %s)", name, ws);
	if ((r = col_blob(st, 0, blob, len)) < 0)
		return cdn_err_set(err, -r, "store: %s: secret %s (workspace %s)", d->path, name,
				   ws);
	return 0;
}

int store_secret_delete(struct store *s, const char *ws, const char *name, struct cdn_err *err)
{
	int r = store_name_check("workspace", ws, err);
	if (r < 0 || (r = store_secret_name_check(name, err)) < 0)
		return r;
	_cleanup_unlock_ struct store_db *d = db_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if ((r = prep(d, "DELETE FROM secrets WHERE workspace = ?1 AND name = ?2", &st, err)) < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	b_text(&b, 1, ws);
	b_text(&b, 2, name);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	if ((r = step(d, st, err, "delete a secret")) < 0)
		return r;
	if (sqlite3_changes(d->db) == 0)
		return cdn_err_set(err, ENOENT, "secret %s (workspace %s)", name, ws);
	return 0;
}

int store_secret_list(struct store *s, const char *ws, struct store_secret_info **out, size_t *n,
		      struct cdn_err *err)
{
	*out = NULL;
	*n = 0;
	int r = store_name_check("workspace", ws, err);
	if (r < 0)
		return r;
	_cleanup_unlock_ struct store_db *d = db_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if ((r = prep(d,
		      "SELECT name, created, updated, plain_len FROM secrets WHERE workspace = ?1"
		      " ORDER BY name",
		      &st, err)) < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	b_text(&b, 1, ws);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	_cleanup_free_ struct store_secret_info *v = NULL;
	size_t count = 0, cap = 0;
	while ((r = step(d, st, err, "list secrets")) == SQLITE_ROW) {
		if (count == cap) {
			size_t nc = cap ? cap * 2 : 16;
			struct store_secret_info *nv = realloc(v, nc * sizeof(*nv));
			if (!nv)
				return cdn_err_set(err, ENOMEM, "store: list secrets");
			v = nv;
			cap = nc;
		}
		struct store_secret_info *e = &v[count];
		memset(e, 0, sizeof(*e));
		if (!col_copy(st, 0, e->name, sizeof(e->name)))
			return cdn_err_set(err, EIO, "store: %s: a secret row is malformed",
					   d->path);
		e->created = sqlite3_column_int64(st, 1);
		e->updated = sqlite3_column_int64(st, 2);
		e->size = (size_t)sqlite3_column_int64(st, 3);
		count++;
	}
	if (r < 0)
		return r;
	*out = cdn_steal(&v);
	*n = count;
	return 0;
}

int store_wskey_get(struct store *s, const char *ws, uint8_t **blob, size_t *len,
		    struct cdn_err *err)
{
	*blob = NULL;
	*len = 0;
	int r = store_name_check("workspace", ws, err);
	if (r < 0)
		return r;
	_cleanup_unlock_ struct store_db *d = db_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if ((r = prep(d, "SELECT wrapped FROM workspace_keys WHERE workspace = ?1", &st, err)) < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	b_text(&b, 1, ws);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	if ((r = step(d, st, err, "read a workspace key")) < 0)
		return r;
	if (r == SQLITE_DONE)
		return cdn_err_set(err, ENOENT, "workspace %s has no key yet", ws);
	if ((r = col_blob(st, 0, blob, len)) < 0)
		return cdn_err_set(err, -r, "store: %s: the key of workspace %s", d->path, ws);
	return 0;
}

int store_wskey_put(struct store *s, const char *ws, const uint8_t *blob, size_t len,
		    struct cdn_err *err)
{
	int r = store_name_check("workspace", ws, err);
	if (r < 0 || (r = blob_arg_check("workspace key", ws, blob, len, err)) < 0)
		return r;
	_cleanup_unlock_ struct store_db *d = db_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	/* No upsert: replacing a key would orphan every secret sealed with it. */
	if ((r = prep(d,
		      "INSERT INTO workspace_keys (workspace, wrapped, created)"
		      " VALUES (?1, ?2, ?3)",
		      &st, err)) < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	b_text(&b, 1, ws);
	b_blob(&b, 2, blob, len);
	b_int(&b, 3, (int64_t)time(NULL));
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	int rc = sqlite3_step(st);
	if ((rc & 0xff) == SQLITE_CONSTRAINT)
		return cdn_err_set(err, EEXIST, "store: workspace %s has a key already", ws);
	if (rc != SQLITE_DONE)
		return sql_fail(d, rc, err, "write the key of workspace %s", ws);
	return 0;
}

/* ------------------------------------------------------------------- runs */

#define RUN_COLUMNS                                                                        \
	"id, workspace, agent, agent_version, agent_hash, status, exit_code, caller,"     \
	" created_ms, started_ms, finished_ms, supervisor_pid, supervisor_boot, input_json," \
	" result_json, error, supervisor_start, audit_head, audit_records, stdout_sha256,"  \
	" stderr_sha256"

/* A list shows records, not their input and result (up to 1 MiB each). */
#define RUN_LIST_COLUMNS                                                                   \
	"id, workspace, agent, agent_version, agent_hash, status, exit_code, caller,"     \
	" created_ms, started_ms, finished_ms, supervisor_pid, supervisor_boot, NULL,"     \
	" NULL, error, supervisor_start, audit_head, audit_records, stdout_sha256,"         \
	" stderr_sha256"

static int run_read(sqlite3_stmt *st, struct store_run *out)
{
	memset(out, 0, sizeof(*out));
	int64_t version = sqlite3_column_int64(st, 3);
	int64_t pid = sqlite3_column_int64(st, 11);
	int64_t code = sqlite3_column_int64(st, 6);
	if (!col_copy(st, 0, out->id, sizeof(out->id)) ||
	    !col_copy(st, 1, out->workspace, sizeof(out->workspace)) ||
	    !col_copy(st, 2, out->agent, sizeof(out->agent)) ||
	    !col_copy(st, 4, out->agent_hash, sizeof(out->agent_hash)) ||
	    !col_copy(st, 7, out->caller, sizeof(out->caller)) ||
	    !col_copy(st, 12, out->supervisor_boot, sizeof(out->supervisor_boot)) ||
	    !col_copy(st, 15, out->error, sizeof(out->error)) ||
	    !col_copy(st, 17, out->audit_head, sizeof(out->audit_head)) ||
	    !col_copy(st, 19, out->stdout_sha256, sizeof(out->stdout_sha256)) ||
	    !col_copy(st, 20, out->stderr_sha256, sizeof(out->stderr_sha256)) || version < 0 ||
	    version > UINT32_MAX || pid < INT32_MIN || pid > INT32_MAX || code < INT32_MIN ||
	    code > INT32_MAX)
		return -EIO;
	if (store_run_status_parse((const char *)sqlite3_column_text(st, 5), &out->status) < 0)
		return -EIO;
	out->agent_version = (unsigned)version;
	out->exit_code = (int)code;
	out->created_ms = sqlite3_column_int64(st, 8);
	out->started_ms = sqlite3_column_int64(st, 9);
	out->finished_ms = sqlite3_column_int64(st, 10);
	out->supervisor_pid = (int)pid;
	out->supervisor_start = (uint64_t)sqlite3_column_int64(st, 16);
	int64_t records = sqlite3_column_int64(st, 18);
	out->audit_records = records > 0 ? (uint64_t)records : 0;
	if (!col_dup(st, 13, &out->input_json) || !col_dup(st, 14, &out->result_json)) {
		store_run_clear(out);
		return -ENOMEM;
	}
	return 0;
}

/* What a new record or claim stores: the start time of the process that
 * supervisor_pid names now (never a value carried over from a record). */
static int64_t supervisor_start(const struct store_run *r)
{
	uint64_t v = cdn_proc_start(r->supervisor_pid);
	return v <= INT64_MAX ? (int64_t)v : 0;
}

static int run_read_fail(struct store_db *d, int r, struct cdn_err *err)
{
	if (r == -ENOMEM)
		return cdn_err_set(err, ENOMEM, "store: %s: read a run", d->path);
	return cdn_err_set(err, EIO, "store: %s: a run row is malformed", d->path);
}

int store_run_create(struct store *s, const struct store_run *r, struct cdn_err *err)
{
	int e = store_run_check(r, err);
	if (e < 0)
		return e;
	_cleanup_unlock_ struct store_db *d = db_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if ((e = prep(d,
		      "INSERT INTO runs (" RUN_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8,"
		      " ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, '', 0, '', '')",
		      &st, err)) < 0)
		return e;
	struct binder b = { st, SQLITE_OK };
	b_text(&b, 1, r->id);
	b_text(&b, 2, r->workspace);
	b_text(&b, 3, r->agent);
	b_int(&b, 4, r->agent_version);
	b_text(&b, 5, r->agent_hash);
	b_text(&b, 6, store_run_status_name(r->status));
	b_int(&b, 7, r->exit_code);
	b_text(&b, 8, r->caller);
	b_int(&b, 9, r->created_ms > 0 ? r->created_ms : cdn_wall_ms());
	b_int(&b, 10, r->started_ms);
	b_int(&b, 11, r->finished_ms);
	b_int(&b, 12, r->supervisor_pid);
	b_text(&b, 13, r->supervisor_boot);
	b_text(&b, 14, r->input_json);
	b_text(&b, 15, r->result_json);
	b_text(&b, 16, r->error);
	b_int(&b, 17, supervisor_start(r));
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	int rc = sqlite3_step(st);
	if ((rc & 0xff) == SQLITE_CONSTRAINT)
		return cdn_err_set(err, EEXIST, "store: run %s exists already", r->id);
	if (rc != SQLITE_DONE)
		return sql_fail(d, rc, err, "insert run %s", r->id);
	return 0;
}

int store_run_update(struct store *s, const struct store_run *r, struct cdn_err *err)
{
	int e = store_run_check(r, err);
	if (e < 0)
		return e;
	_cleanup_unlock_ struct store_db *d = db_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if ((e = prep(d,
		      "UPDATE runs SET status = ?2, exit_code = ?3, started_ms = ?4,"
		      " finished_ms = ?5, result_json = ?6, error = ?7, stdout_sha256 = ?8,"
		      " stderr_sha256 = ?9 WHERE id = ?1",
		      &st, err)) < 0)
		return e;
	struct binder b = { st, SQLITE_OK };
	b_text(&b, 1, r->id);
	b_text(&b, 2, store_run_status_name(r->status));
	b_int(&b, 3, r->exit_code);
	b_int(&b, 4, r->started_ms);
	b_int(&b, 5, r->finished_ms);
	b_text(&b, 6, r->result_json);
	b_text(&b, 7, r->error);
	b_text(&b, 8, r->stdout_sha256);
	b_text(&b, 9, r->stderr_sha256);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	if ((e = step(d, st, err, "update a run")) < 0)
		return e;
	if (sqlite3_changes(d->db) == 0)
		return cdn_err_set(err, ENOENT, "run %s", r->id);
	return 0;
}

int store_run_anchor(struct store *s, const char *id, const char *head, uint64_t records,
		     struct cdn_err *err)
{
	if (!cdn_sha256_hex_str_ok(head) || records > INT64_MAX)
		return cdn_err_msg(err, EINVAL, "store: an audit head is a sha256");
	_cleanup_unlock_ struct store_db *d = db_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int e = prep(d, "UPDATE runs SET audit_head = ?2, audit_records = ?3 WHERE id = ?1", &st, err);
	if (e < 0)
		return e;
	struct binder b = { st, SQLITE_OK };
	b_text(&b, 1, id);
	b_text(&b, 2, head);
	b_int(&b, 3, (int64_t)records);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	if ((e = step(d, st, err, "anchor a run's audit log")) < 0)
		return e;
	if (sqlite3_changes(d->db) == 0)
		return cdn_err_set(err, ENOENT, "run %s", id);
	return 0;
}

int store_run_get(struct store *s, const char *id, struct store_run *out, struct cdn_err *err)
{
	memset(out, 0, sizeof(*out));
	int r = store_run_id_check(id, err);
	if (r < 0)
		return r;
	_cleanup_unlock_ struct store_db *d = db_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if ((r = prep(d, "SELECT " RUN_COLUMNS " FROM runs WHERE id = ?1", &st, err)) < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	b_text(&b, 1, id);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	if ((r = step(d, st, err, "read a run")) < 0)
		return r;
	if (r == SQLITE_DONE)
		return cdn_err_set(err, ENOENT, "run %s", id);
	if ((r = run_read(st, out)) < 0)
		return run_read_fail(d, r, err);
	return 0;
}

void store_run_clear(struct store_run *r)
{
	if (!r)
		return;
	free(r->input_json);
	free(r->result_json);
	r->input_json = r->result_json = NULL;
}

void store_runs_free(struct store_run *runs, size_t n)
{
	for (size_t i = 0; runs && i < n; i++)
		store_run_clear(&runs[i]);
	free(runs);
}

int store_run_list(struct store *s, const struct store_run_query *q, struct store_run **out,
		   size_t *n, struct cdn_err *err)
{
	*out = NULL;
	*n = 0;
	int r = store_name_check("workspace", q->workspace, err);
	if (r < 0 || (q->agent && (r = store_name_check("agent", q->agent, err)) < 0))
		return r;
	if (q->status != -1 && (q->status < RUN_CREATED || q->status > RUN_CANCELLED))
		return cdn_err_msg(err, EINVAL, "store: list runs: unknown status %d", q->status);
	if (q->limit < 1 || q->limit > RUN_LIST_MAX)
		return cdn_err_msg(err, EINVAL, "store: list runs: the limit must be 1 to %d",
				   RUN_LIST_MAX);
	if (q->before_id && (r = store_run_id_check(q->before_id, err)) < 0)
		return r;

	/* Keyset paging on the index order (created_ms DESC, id DESC): the
	 * next page starts strictly after the last row seen, so pages neither
	 * skip nor repeat rows while new runs arrive. Only constant fragments
	 * are joined here; every value is bound. */
	char sql[1024];
	snprintf(sql, sizeof(sql), "SELECT %s FROM runs WHERE workspace = ?1%s%s%s"
		 " ORDER BY created_ms DESC, id DESC LIMIT ?6",
		 RUN_LIST_COLUMNS, q->agent ? " AND agent = ?2" : "",
		 q->status != -1 ? " AND status = ?3" : "",
		 !q->before_ms	 ? ""
		 : q->before_id ? " AND (created_ms, id) < (?4, ?5)"
				 : " AND created_ms < ?4");
	_cleanup_unlock_ struct store_db *d = db_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if ((r = prep(d, sql, &st, err)) < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	b_text(&b, 1, q->workspace);
	b_text(&b, 2, q->agent);
	b_text(&b, 3, q->status != -1 ? store_run_status_name(q->status) : NULL);
	b_int(&b, 4, q->before_ms);
	b_text(&b, 5, q->before_id);
	b_int(&b, 6, (int64_t)q->limit);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	struct store_run *v = calloc(q->limit, sizeof(*v));
	if (!v)
		return cdn_err_set(err, ENOMEM, "store: list runs");
	size_t count = 0;
	while (count < q->limit && (r = step(d, st, err, "list runs")) == SQLITE_ROW) {
		if ((r = run_read(st, &v[count])) < 0) {
			r = run_read_fail(d, r, err);
			break;
		}
		count++;
	}
	if (r < 0) {
		store_runs_free(v, count);
		return r;
	}
	*out = v;
	*n = count;
	return 0;
}

struct recover_candidate {
	char id[STORE_RUN_ID_MAX + 1];
	int64_t pid; /* as stored, for the UPDATE's WHERE */
	char boot[STORE_BOOT_ID_MAX];
	int64_t start;
};

int store_runs_recover(struct store *s, struct cdn_err *err)
{
	char boot[STORE_BOOT_ID_MAX];
	int r = cdn_boot_id(boot, sizeof(boot), err);
	if (r < 0)
		return r;
	_cleanup_unlock_ struct store_db *d = db_lock(s);
	_cleanup_free_ struct recover_candidate *v = NULL;
	size_t count = 0, cap = 0;
	{
		_cleanup_stmt_ sqlite3_stmt *st = NULL;
		if ((r = prep(d,
			      "SELECT id, supervisor_pid, supervisor_boot, supervisor_start FROM runs"
			      " WHERE status IN ('created', 'running')",
			      &st, err)) < 0)
			return r;
		while ((r = step(d, st, err, "list unfinished runs")) == SQLITE_ROW) {
			if (count == cap) {
				size_t nc = cap ? cap * 2 : 16;
				struct recover_candidate *nv = realloc(v, nc * sizeof(*nv));
				if (!nv)
					return cdn_err_set(err, ENOMEM, "store: recover runs");
				v = nv;
				cap = nc;
			}
			struct recover_candidate *c = &v[count];
			c->pid = sqlite3_column_int64(st, 1);
			c->start = sqlite3_column_int64(st, 3);
			/* A field that does not fit cannot name a live supervisor;
			 * the UPDATE below then matches nothing and the run stays
			 * as it is. */
			if (!col_copy(st, 0, c->id, sizeof(c->id)) ||
			    !col_copy(st, 2, c->boot, sizeof(c->boot)))
				continue;
			count++;
		}
		if (r < 0)
			return r;
	}
	int recovered = 0;
	for (size_t i = 0; i < count; i++) {
		const struct recover_candidate *c = &v[i];
		int pid = c->pid > 0 && c->pid <= INT32_MAX ? (int)c->pid : 0;
		if (cdn_supervisor_alive(pid, c->boot, boot,
					   c->start > 0 ? (uint64_t)c->start : 0))
			continue;
		_cleanup_stmt_ sqlite3_stmt *st = NULL;
		/* The WHERE repeats what was judged, so a run that finished
		 * or was taken over in the meantime is left alone. */
		if ((r = prep(d,
			      "UPDATE runs SET status = 'error', error = ?2, finished_ms = ?3,"
			      " exit_code = 125"
			      " WHERE id = ?1 AND status IN ('created', 'running')"
			      " AND supervisor_pid = ?4 AND supervisor_boot = ?5"
			      " AND supervisor_start = ?6",
			      &st, err)) < 0)
			return r;
		struct binder b = { st, SQLITE_OK };
		b_text(&b, 1, c->id);
		b_text(&b, 2, RECOVER_ERROR);
		b_int(&b, 3, cdn_wall_ms());
		b_int(&b, 4, c->pid);
		b_text(&b, 5, c->boot);
		b_int(&b, 6, c->start);
		if (b.rc != SQLITE_OK)
			return sql_fail(d, b.rc, err, "bind");
		if ((r = step(d, st, err, "mark a run as failed")) < 0)
			return r;
		recovered += sqlite3_changes(d->db);
	}
	return recovered;
}

/* --------------------------------------------------------------- api keys */

#define KEY_COLUMNS "id, workspace, name, role, hash, created, last_used, revoked"

static int key_read(sqlite3_stmt *st, struct store_key *k)
{
	memset(k, 0, sizeof(*k));
	if (!col_copy(st, 0, k->id, sizeof(k->id)) ||
	    !col_copy(st, 1, k->workspace, sizeof(k->workspace)) ||
	    !col_copy(st, 2, k->name, sizeof(k->name)) ||
	    !col_copy(st, 3, k->role, sizeof(k->role)) ||
	    !col_copy(st, 4, k->hash, sizeof(k->hash)))
		return -EIO;
	k->created = sqlite3_column_int64(st, 5);
	k->last_used = sqlite3_column_int64(st, 6);
	k->revoked = sqlite3_column_int64(st, 7) != 0;
	return 0;
}

int store_key_put(struct store *s, const struct store_key *k, struct cdn_err *err)
{
	int r = store_name_check("workspace", k->workspace, err);
	if (r < 0)
		return r;
	if (strcmp(k->role, "owner") != 0 && strcmp(k->role, "member") != 0)
		return cdn_err_msg(err, EINVAL, "key role must be owner or member, not '%s'",
				   k->role);
	if (!cdn_sha256_hex_str_ok(k->hash))
		return cdn_err_msg(err, EINVAL, "key hash is not a sha256");
	_cleanup_unlock_ struct store_db *d = db_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if ((r = prep(d, "INSERT INTO api_keys (" KEY_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, 0)",
		      &st, err)) < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	b_text(&b, 1, k->id);
	b_text(&b, 2, k->workspace);
	b_text(&b, 3, k->name);
	b_text(&b, 4, k->role);
	b_text(&b, 5, k->hash);
	b_int(&b, 6, k->created > 0 ? k->created : (int64_t)time(NULL));
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	int rc = sqlite3_step(st);
	if ((rc & 0xff) == SQLITE_CONSTRAINT)
		return cdn_err_set(err, EEXIST, "store: key %s exists already", k->id);
	if (rc != SQLITE_DONE)
		return sql_fail(d, rc, err, "insert key %s", k->id);
	return 0;
}

int store_key_by_hash(struct store *s, const char *hash, struct store_key *out,
		      struct cdn_err *err)
{
	_cleanup_unlock_ struct store_db *d = db_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = prep(d, "SELECT " KEY_COLUMNS " FROM api_keys WHERE hash = ?1", &st, err);
	if (r < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	b_text(&b, 1, hash);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	r = step(d, st, err, "find a key");
	if (r < 0)
		return r;
	if (r != SQLITE_ROW)
		return cdn_err_set(err, ENOENT, "no such key");
	if (key_read(st, out) < 0)
		return cdn_err_set(err, EIO, "store: %s: a key row is malformed", d->path);
	return 0;
}

int store_key_list(struct store *s, const char *ws, struct store_key **out, size_t *n,
		   struct cdn_err *err)
{
	*out = NULL;
	*n = 0;
	_cleanup_unlock_ struct store_db *d = db_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = prep(d,
		     ws ? "SELECT " KEY_COLUMNS " FROM api_keys WHERE workspace = ?1 ORDER BY created, id"
			: "SELECT " KEY_COLUMNS " FROM api_keys ORDER BY created, id",
		     &st, err);
	if (r < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	if (ws)
		b_text(&b, 1, ws);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	_cleanup_free_ struct store_key *v = NULL;
	size_t count = 0, cap = 0;
	while ((r = step(d, st, err, "list keys")) == SQLITE_ROW) {
		if (count == cap) {
			size_t nc = cap ? cap * 2 : 8;
			struct store_key *nv = realloc(v, nc * sizeof(*nv));
			if (!nv)
				return cdn_err_set(err, ENOMEM, "store: list keys");
			v = nv;
			cap = nc;
		}
		if (key_read(st, &v[count]) < 0)
			return cdn_err_set(err, EIO, "store: %s: a key row is malformed", d->path);
		count++;
	}
	if (r < 0)
		return r;
	*out = cdn_steal(&v);
	*n = count;
	return 0;
}

int store_key_revoke(struct store *s, const char *ws, const char *id, struct cdn_err *err)
{
	_cleanup_unlock_ struct store_db *d = db_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = prep(d, "UPDATE api_keys SET revoked = 1 WHERE workspace = ?1 AND id = ?2", &st,
		     err);
	if (r < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	b_text(&b, 1, ws);
	b_text(&b, 2, id);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	if ((r = step(d, st, err, "revoke a key")) < 0)
		return r;
	if (sqlite3_changes(d->db) == 0)
		return cdn_err_set(err, ENOENT, "no key %s in workspace %s", id, ws);
	return 0;
}

int store_key_touch(struct store *s, const char *id, int64_t now, struct cdn_err *err)
{
	_cleanup_unlock_ struct store_db *d = db_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r = prep(d, "UPDATE api_keys SET last_used = ?2 WHERE id = ?1", &st, err);
	if (r < 0)
		return r;
	struct binder b = { st, SQLITE_OK };
	b_text(&b, 1, id);
	b_int(&b, 2, now);
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	r = step(d, st, err, "note a key's use");
	return r < 0 ? r : 0;
}

int store_run_claim(struct store *s, const struct store_run *r, struct cdn_err *err)
{
	int e = store_run_check(r, err);
	if (e < 0)
		return e;
	_cleanup_unlock_ struct store_db *d = db_lock(s);
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	if ((e = prep(d,
		      "UPDATE runs SET agent = ?2, agent_version = ?3, agent_hash = ?4,"
		      " supervisor_pid = ?5, supervisor_boot = ?6, input_json = ?7,"
		      " supervisor_start = ?9"
		      " WHERE id = ?1 AND workspace = ?8 AND status = 'created'",
		      &st, err)) < 0)
		return e;
	struct binder b = { st, SQLITE_OK };
	b_text(&b, 1, r->id);
	b_text(&b, 2, r->agent);
	b_int(&b, 3, r->agent_version);
	b_text(&b, 4, r->agent_hash);
	b_int(&b, 5, r->supervisor_pid);
	b_text(&b, 6, r->supervisor_boot);
	b_text(&b, 7, r->input_json);
	b_text(&b, 8, r->workspace);
	b_int(&b, 9, supervisor_start(r));
	if (b.rc != SQLITE_OK)
		return sql_fail(d, b.rc, err, "bind");
	if ((e = step(d, st, err, "claim a run")) < 0)
		return e;
	if (sqlite3_changes(d->db) == 0)
		return cdn_err_msg(err, ENOENT, "run %s is not waiting to start in workspace %s",
				   r->id, r->workspace);
	return 0;
}
