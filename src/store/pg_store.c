/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store's metadata in Postgres, chosen by a postgresql:// URL
 * (docs/state.md): the connection, the schema and its migrations, the
 * helpers the queries share (pg.h) and the backend's ops table
 * (internal.h). The queries are in pg_items.c, pg_runs.c and pg_keys.c.
 *
 * One connection per struct store, guarded by a mutex so that one store
 * may serve several threads, as SQLite's is. Several processes share the
 * database: each statement is atomic on its own, and the few
 * read-then-write steps (a new item version) take a transaction-scoped
 * advisory lock on what they change.
 *
 * Every value is a parameter sent apart from the statement's text
 * (PQexecParams); the only text run without parameters is the schema's
 * constant steps. The URL's password never reaches a message: messages
 * name the database by store_database_shown(), and libpq's own message is
 * scrubbed of the password before it is shown.
 */
#define _GNU_SOURCE
#include "store/pg.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cleanup.h"
#include "base/text.h"

#define PG_CONNECT_TIMEOUT_S "10"
/* The advisory lock that serialises migrations between processes:
 * "cordon" in ASCII, then 1. */
#define PG_MIGRATE_LOCK INT64_C(0x636f72646f6e0001)
#define PG_MSG_MAX 512

/*
 * The schema, one step per version: step i brings schema_version from i
 * to i + 1. A later cordon appends steps; it never edits one. Version 1
 * holds what SQLite's schema reached at its version 5; identifiers sort
 * bytewise (COLLATE "C"), as SQLite sorts them, whatever the database's
 * locale, so that lists and the run list's paging order are the same on
 * both backends.
 */
static const char *const schema_steps[] = {
	/* 1 */
	"CREATE TABLE items ("
	" kind TEXT NOT NULL CHECK (kind IN ('agent', 'capability', 'env')),"
	" workspace TEXT COLLATE \"C\" NOT NULL,"
	" name TEXT COLLATE \"C\" NOT NULL,"
	" version BIGINT NOT NULL CHECK (version >= 1),"
	" hash TEXT NOT NULL,"
	" tree TEXT NOT NULL DEFAULT '',"
	" doc TEXT,"
	" created BIGINT NOT NULL,"
	" PRIMARY KEY (kind, workspace, name, version));"
	"CREATE TABLE grants ("
	" workspace TEXT COLLATE \"C\" NOT NULL,"
	" agent TEXT COLLATE \"C\" NOT NULL,"
	" capability TEXT COLLATE \"C\" NOT NULL,"
	" created BIGINT NOT NULL,"
	" PRIMARY KEY (workspace, agent, capability));"
	"CREATE TABLE workspace_keys ("
	" workspace TEXT COLLATE \"C\" PRIMARY KEY,"
	" wrapped BYTEA NOT NULL,"
	" created BIGINT NOT NULL);"
	"CREATE TABLE secrets ("
	" workspace TEXT COLLATE \"C\" NOT NULL,"
	" name TEXT COLLATE \"C\" NOT NULL,"
	" ciphertext BYTEA NOT NULL,"
	" plain_len BIGINT NOT NULL CHECK (plain_len >= 0),"
	" created BIGINT NOT NULL,"
	" updated BIGINT NOT NULL,"
	" PRIMARY KEY (workspace, name));"
	"CREATE TABLE runs ("
	" id TEXT COLLATE \"C\" PRIMARY KEY,"
	" workspace TEXT COLLATE \"C\" NOT NULL,"
	" agent TEXT COLLATE \"C\" NOT NULL,"
	" agent_version BIGINT NOT NULL,"
	" agent_hash TEXT NOT NULL,"
	" status TEXT NOT NULL CHECK (status IN ('created', 'running', 'succeeded', 'failed',"
	"  'timeout', 'oom', 'killed', 'error', 'cancelled')),"
	" exit_code BIGINT NOT NULL,"
	" caller TEXT NOT NULL,"
	" created_ms BIGINT NOT NULL,"
	" started_ms BIGINT NOT NULL,"
	" finished_ms BIGINT NOT NULL,"
	" supervisor_pid BIGINT NOT NULL,"
	" supervisor_boot TEXT NOT NULL,"
	" input_json TEXT,"
	" result_json TEXT,"
	" error TEXT NOT NULL,"
	" supervisor_start BIGINT NOT NULL DEFAULT 0,"
	" audit_head TEXT NOT NULL DEFAULT '',"
	" audit_records BIGINT NOT NULL DEFAULT 0,"
	" stdout_sha256 TEXT NOT NULL DEFAULT '',"
	" stderr_sha256 TEXT NOT NULL DEFAULT '');"
	/* Newest first per workspace, ties broken by id: the paging order;
	 * and the same under the run list's filters. */
	"CREATE INDEX runs_by_workspace ON runs (workspace, created_ms DESC, id DESC);"
	"CREATE INDEX runs_by_agent ON runs (workspace, agent, created_ms DESC, id DESC);"
	"CREATE INDEX runs_by_status ON runs (workspace, status, created_ms DESC, id DESC);"
	/* Recovery looks only at unfinished runs, a handful among many. */
	"CREATE INDEX runs_unfinished ON runs (status) WHERE status IN ('created', 'running');"
	"CREATE TABLE api_keys ("
	" id TEXT COLLATE \"C\" PRIMARY KEY,"
	" workspace TEXT COLLATE \"C\" NOT NULL,"
	" name TEXT NOT NULL,"
	" role TEXT NOT NULL CHECK (role IN ('owner', 'member')),"
	" hash TEXT NOT NULL UNIQUE,"
	" created BIGINT NOT NULL,"
	" last_used BIGINT NOT NULL DEFAULT 0,"
	" revoked BIGINT NOT NULL DEFAULT 0);",
	/* 2: retention, as SQLite's version 6 (docs/retention.md). */
	"CREATE TABLE retention ("
	" workspace TEXT COLLATE \"C\" PRIMARY KEY,"
	" records_s BIGINT NOT NULL DEFAULT 0 CHECK (records_s >= 0),"
	" files_s BIGINT NOT NULL DEFAULT 0 CHECK (files_s >= 0),"
	" artifacts_s BIGINT NOT NULL DEFAULT 0 CHECK (artifacts_s >= 0),"
	" evidence_s BIGINT NOT NULL DEFAULT 0 CHECK (evidence_s >= 0),"
	" records_max_s BIGINT NOT NULL DEFAULT 0 CHECK (records_max_s >= 0),"
	" files_max_s BIGINT NOT NULL DEFAULT 0 CHECK (files_max_s >= 0),"
	" artifacts_max_s BIGINT NOT NULL DEFAULT 0 CHECK (artifacts_max_s >= 0),"
	" evidence_max_s BIGINT NOT NULL DEFAULT 0 CHECK (evidence_max_s >= 0),"
	" updated BIGINT NOT NULL);"
	"CREATE TABLE run_marks ("
	" run_id TEXT COLLATE \"C\" PRIMARY KEY,"
	" hold_reason TEXT NOT NULL DEFAULT '',"
	" hold_by TEXT NOT NULL DEFAULT '',"
	" hold_ms BIGINT NOT NULL DEFAULT 0,"
	" files_pruned_ms BIGINT NOT NULL DEFAULT 0,"
	" artifacts_pruned_ms BIGINT NOT NULL DEFAULT 0,"
	" evidence_pruned_ms BIGINT NOT NULL DEFAULT 0);"
	"CREATE INDEX runs_finished ON runs (workspace, finished_ms, id)"
	" WHERE status NOT IN ('created', 'running');",
	/* 3: workers and leases, as SQLite's version 7 (docs/deploy.md).
	 * Labels are text in the canonical form (store_labels_parse), read as
	 * jsonb where a claim compares them, so that a copy between backends
	 * keeps them byte for byte. */
	"ALTER TABLE runs DROP CONSTRAINT runs_status_check;"
	"ALTER TABLE runs ADD CONSTRAINT runs_status_check CHECK (status IN ('created',"
	" 'running', 'succeeded', 'failed', 'timeout', 'oom', 'killed', 'error', 'cancelled',"
	" 'lost'));"
	"ALTER TABLE runs ADD COLUMN lease_owner TEXT COLLATE \"C\" NOT NULL DEFAULT '',"
	" ADD COLUMN lease_until_ms BIGINT NOT NULL DEFAULT 0,"
	" ADD COLUMN labels TEXT NOT NULL DEFAULT '',"
	" ADD COLUMN attempt BIGINT NOT NULL DEFAULT 1 CHECK (attempt >= 1),"
	" ADD COLUMN retry_of TEXT COLLATE \"C\" NOT NULL DEFAULT '',"
	" ADD COLUMN retry_max BIGINT NOT NULL DEFAULT 0 CHECK (retry_max >= 0);"
	/* What workers take, oldest first; and leases by owner. */
	"CREATE INDEX runs_queued ON runs (created_ms, id)"
	" WHERE status = 'created' AND supervisor_pid = 0 AND lease_owner = '';"
	"CREATE INDEX runs_leased ON runs (lease_owner, lease_until_ms)"
	" WHERE status IN ('created', 'running') AND lease_owner <> '';",
	/* 4: run controls and live events, Postgres's alone (store.h,
	 * "Reaching a run on another host"): what a running run's control
	 * socket and events file carry on one host, for API nodes on others.
	 * Rows live as long as their run runs; nothing in them is kept or
	 * copied. */
	"CREATE TABLE run_controls ("
	" id TEXT COLLATE \"C\" PRIMARY KEY,"
	" run_id TEXT COLLATE \"C\" NOT NULL,"
	" workspace TEXT COLLATE \"C\" NOT NULL,"
	" kind TEXT NOT NULL CHECK (kind IN ('approval', 'cancel')),"
	" entry TEXT NOT NULL,"
	" created_ms BIGINT NOT NULL,"
	" deadline_ms BIGINT NOT NULL,"
	" closed BOOLEAN NOT NULL DEFAULT false,"
	" decision TEXT CHECK (decision IN ('approve', 'reject', 'cancel')),"
	" decided_by TEXT,"
	" decided_ms BIGINT,"
	" outcome TEXT);"
	"CREATE INDEX run_controls_by_run ON run_controls (run_id);"
	/* A running run's events, as it writes them, for followers on other
	 * hosts; gone when its files are on S3. */
	"CREATE TABLE run_events ("
	" run_id TEXT COLLATE \"C\" NOT NULL,"
	" seq BIGINT NOT NULL,"
	" line TEXT NOT NULL,"
	" PRIMARY KEY (run_id, seq));"
	"CREATE INDEX run_controls_open ON run_controls (workspace, created_ms, id)"
	" WHERE kind = 'approval' AND decision IS NULL AND NOT closed;",
	/* 5: schedules, as SQLite's version 8 (docs/schedules.md). */
	"CREATE TABLE schedules ("
	" workspace TEXT COLLATE \"C\" NOT NULL,"
	" name TEXT COLLATE \"C\" NOT NULL,"
	" agent TEXT NOT NULL,"
	" cron TEXT NOT NULL,"
	" tz TEXT NOT NULL,"
	" input_json TEXT,"
	" overlap TEXT NOT NULL CHECK (overlap IN ('forbid', 'allow', 'replace')),"
	" catchup TEXT NOT NULL CHECK (catchup IN ('skip', 'once')),"
	" paused BIGINT NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),"
	" created_by TEXT NOT NULL,"
	" created_ms BIGINT NOT NULL,"
	" anchor_ms BIGINT NOT NULL,"
	" next_ms BIGINT NOT NULL,"
	" fired BIGINT NOT NULL DEFAULT 0,"
	" skipped BIGINT NOT NULL DEFAULT 0,"
	" last_run TEXT NOT NULL DEFAULT '',"
	" last_fire_ms BIGINT NOT NULL DEFAULT 0,"
	" last_skip_ms BIGINT NOT NULL DEFAULT 0,"
	" last_skip TEXT NOT NULL DEFAULT '',"
	" PRIMARY KEY (workspace, name));"
	"CREATE INDEX schedules_due ON schedules (next_ms) WHERE paused = 0 AND next_ms > 0;"
	/* Usage reads results as jsonb: one a redaction left unparsable
	 * (or holding \\u0000, which jsonb refuses) counts as none, as
	 * SQLite's json_valid makes it, rather than failing the query. */
	"CREATE FUNCTION cordon_jsonb(t text) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE STRICT"
	" AS $f$ BEGIN RETURN t::jsonb; EXCEPTION WHEN others THEN RETURN NULL; END $f$;",
	/* 6: services, as SQLite's version 9 (docs/services.md). */
	"CREATE TABLE services ("
	" workspace TEXT COLLATE \"C\" NOT NULL,"
	" name TEXT COLLATE \"C\" NOT NULL,"
	" agent TEXT NOT NULL,"
	" input_json TEXT,"
	" env_json TEXT,"
	" secrets_json TEXT,"
	" paused BIGINT NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),"
	" pause_reason TEXT NOT NULL DEFAULT '',"
	" created_by TEXT NOT NULL,"
	" created_ms BIGINT NOT NULL,"
	" current_run TEXT NOT NULL DEFAULT '',"
	" next_ms BIGINT NOT NULL DEFAULT 0,"
	" starts BIGINT NOT NULL DEFAULT 0,"
	" exits BIGINT NOT NULL DEFAULT 0,"
	" exit_times TEXT NOT NULL DEFAULT '',"
	" last_exit TEXT NOT NULL DEFAULT '',"
	" last_run TEXT NOT NULL DEFAULT '',"
	" gen BIGINT NOT NULL DEFAULT 0,"
	" last_exit_ms BIGINT NOT NULL DEFAULT 0,"
	" PRIMARY KEY (workspace, name));",
};

#define SCHEMA_VERSION ((int)CDN_ARRAY_SIZE(schema_steps))

/* ---------------------------------------------------------------- helpers */

/* Replaces every occurrence of secret in msg by "***". */
static void scrub(char *msg, size_t cap, const char *secret)
{
	size_t n = secret ? strlen(secret) : 0;
	if (n == 0)
		return;
	for (char *p = strstr(msg, secret); p; p = strstr(p + 3, secret)) {
		size_t tail = strlen(p + n);
		if ((size_t)(p - msg) + 3 + tail >= cap)
			break;
		memmove(p + 3, p + n, tail + 1);
		memcpy(p, "***", 3);
	}
}

/*
 * A message of libpq's, made safe to show: on one line, with the URL's
 * password taken out (libpq quotes a URL it cannot parse whole, password
 * and all), both as written in the URL and as decoded from it.
 */
static void pg_message(const char *url, const char *raw, char *out, size_t cap)
{
	char buf[PG_MSG_MAX];
	snprintf(buf, sizeof(buf), "%s", raw ? raw : "unknown error");
	for (size_t n = strlen(buf); n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '); n--)
		buf[n - 1] = '\0';
	for (char *p = buf; *p; p++)
		if (*p == '\n' || *p == '\t')
			*p = ' ';
	PQconninfoOption *opts = url ? PQconninfoParse(url, NULL) : NULL;
	for (PQconninfoOption *o = opts; o && o->keyword; o++)
		if (!strcmp(o->keyword, "password"))
			scrub(buf, sizeof(buf), o->val);
	PQconninfoFree(opts);
	/* As written: between "user:" and '@', and after password=. */
	const char *auth = url ? strstr(url, "://") : NULL;
	if (auth) {
		auth += 3;
		const char *end = auth + strcspn(auth, "/?#");
		const char *at = NULL;
		for (const char *q = auth; q < end; q++)
			if (*q == '@')
				at = q;
		const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
		if (colon) {
			_cleanup_free_ char *pw = strndup(colon + 1, (size_t)(at - colon - 1));
			scrub(buf, sizeof(buf), pw);
		}
		for (const char *q = strstr(auth, "password="); q; q = strstr(q + 1, "password=")) {
			_cleanup_free_ char *pw = strndup(q + 9, strcspn(q + 9, "&#"));
			scrub(buf, sizeof(buf), pw);
		}
	}
	cdn_printable_str(out, cap, buf, 0);
}

void pg_clearp(PGresult **res)
{
	if (*res)
		PQclear(*res);
}

struct pg_db *pg_lock(struct store *s)
{
	struct pg_db *d = (struct pg_db *)s->db;
	pthread_mutex_lock(&d->lock);
	/* A server restart or a dropped connection: one attempt to connect
	 * again; if it fails, the statement reports the broken connection. */
	if (PQstatus(d->conn) != CONNECTION_OK)
		PQreset(d->conn);
	return d;
}

void pg_unlockp(struct pg_db **d)
{
	if (*d)
		pthread_mutex_unlock(&(*d)->lock);
}

static void param(struct pg_params *p, const char *v, int len, int format)
{
	/* More parameters than PG_MAX_PARAMS is a bug in a query here. */
	if (p->n >= PG_MAX_PARAMS)
		abort();
	p->values[p->n] = v;
	p->lengths[p->n] = len;
	p->formats[p->n] = format;
	p->n++;
}

void pg_p_text(struct pg_params *p, const char *v)
{
	param(p, v, 0, 0);
}

void pg_p_int(struct pg_params *p, int64_t v)
{
	if (p->n >= PG_MAX_PARAMS)
		abort();
	snprintf(p->ints[p->n], sizeof(p->ints[p->n]), "%" PRId64, v);
	param(p, p->ints[p->n], 0, 0);
}

void pg_p_bytes(struct pg_params *p, const void *v, size_t len)
{
	param(p, v, (int)len, 1);
}

static int sqlstate_errno(const char *state)
{
	if (!state)
		return EIO;
	if (!strcmp(state, "23505"))
		return EEXIST; /* unique_violation */
	if (!strcmp(state, "40001") || !strcmp(state, "40P01") || !strcmp(state, "55P03"))
		return EBUSY; /* serialization failure, deadlock, lock not available */
	if (!strcmp(state, "53100"))
		return ENOSPC; /* disk_full */
	if (!strcmp(state, "53200"))
		return ENOMEM;
	if (!strncmp(state, "28", 2) || !strcmp(state, "42501"))
		return EACCES; /* authorization, insufficient privilege */
	if (!strncmp(state, "08", 2))
		return ECONNRESET;
	return EIO;
}

int pg_exec(struct pg_db *d, const char *sql, const struct pg_params *p, bool binary,
	    PGresult **res, struct cdn_err *err, const char *what, ...)
{
	*res = PQexecParams(d->conn, sql, p ? p->n : 0, NULL, p ? p->values : NULL,
			    p ? p->lengths : NULL, p ? p->formats : NULL, binary ? 1 : 0);
	ExecStatusType st = PQresultStatus(*res);
	if (*res && (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK))
		return 0;
	/* The primary message only: the detail may quote a row's values. */
	const char *sqlstate = *res ? PQresultErrorField(*res, PG_DIAG_SQLSTATE) : NULL;
	/* A copy: the result, and the field in it, is freed below. */
	char statebuf[8] = "";
	if (sqlstate)
		snprintf(statebuf, sizeof(statebuf), "%s", sqlstate);
	const char *state = sqlstate ? statebuf : NULL;
	const char *primary = *res ? PQresultErrorField(*res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	char msg[PG_MSG_MAX], doing[256];
	pg_message(d->url, primary ? primary : PQerrorMessage(d->conn), msg, sizeof(msg));
	va_list ap;
	va_start(ap, what);
	vsnprintf(doing, sizeof(doing), what, ap);
	va_end(ap);
	int e = sqlstate_errno(state);
	if (!state && PQstatus(d->conn) != CONNECTION_OK)
		e = ECONNRESET;
	PQclear(*res);
	*res = NULL;
	return cdn_err_msg(err, e, "store: postgres %s: %s: %s%s%s%s", d->shown, doing, msg,
			   state ? " (SQLSTATE " : "", state ? state : "", state ? ")" : "");
}

int64_t pg_changed(const PGresult *res)
{
	const char *n = PQcmdTuples((PGresult *)res);
	return n && *n ? strtoll(n, NULL, 10) : 0;
}

static const char *row_text(const struct store_row *row, int col, size_t *len)
{
	const PGresult *res = row->ctx;
	if (col >= PQnfields(res) || PQgetisnull(res, row->row, col))
		return NULL;
	*len = (size_t)PQgetlength(res, row->row, col);
	return PQgetvalue(res, row->row, col);
}

static bool row_int64(const struct store_row *row, int col, int64_t *out)
{
	size_t len = 0;
	const char *t = row_text(row, col, &len);
	if (!t || !len || PQfformat(row->ctx, col) != 0)
		return false;
	char *end;
	errno = 0;
	long long v = strtoll(t, &end, 10);
	if (errno || end != t + len)
		return false;
	*out = v;
	return true;
}

struct store_row pg_row(const PGresult *res, int i)
{
	return (struct store_row){ .ctx = res, .row = i, .text = row_text, .int64 = row_int64 };
}

void pg_txn_endp(struct pg_txn *t)
{
	if (t->open)
		PQclear(PQexec(t->d->conn, "ROLLBACK"));
}

int pg_txn_begin(struct pg_txn *t, struct cdn_err *err)
{
	_cleanup_pgres_ PGresult *res = NULL;
	int r = pg_exec(t->d, "BEGIN", NULL, false, &res, err, "begin");
	if (r == 0)
		t->open = true;
	return r;
}

int pg_txn_commit(struct pg_txn *t, struct cdn_err *err)
{
	_cleanup_pgres_ PGresult *res = NULL;
	int r = pg_exec(t->d, "COMMIT", NULL, false, &res, err, "commit");
	if (r == 0)
		t->open = false;
	return r;
}

/* ------------------------------------------------------------------- open */

/*
 * In one transaction, under an advisory lock held until it ends: two
 * processes starting against a new database take turns, and the second
 * finds the schema made. A step that fails rolls back with the rest.
 */
static int migrate(struct pg_db *d, struct cdn_err *err)
{
	_cleanup_pg_txn_ struct pg_txn t = { .d = d };
	int r = pg_txn_begin(&t, err);
	if (r < 0)
		return r;
	{
		_cleanup_pgres_ PGresult *res = NULL;
		struct pg_params p = { 0 };
		pg_p_int(&p, PG_MIGRATE_LOCK);
		if ((r = pg_exec(d, "SELECT pg_advisory_xact_lock($1)", &p, false, &res, err,
				 "lock the schema")) < 0)
			return r;
	}
	{
		_cleanup_pgres_ PGresult *res = NULL;
		if ((r = pg_exec(d, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
				 NULL, false, &res, err, "create schema_version")) < 0)
			return r;
	}
	int64_t version = 0;
	{
		_cleanup_pgres_ PGresult *res = NULL;
		if ((r = pg_exec(d, "SELECT version FROM schema_version", NULL, false, &res, err,
				 "read the schema version")) < 0)
			return r;
		struct store_row row = pg_row(res, 0);
		if (PQntuples(res) > 1 || (PQntuples(res) == 1 && !row.int64(&row, 0, &version)))
			return cdn_err_msg(err, EPROTO, "store: postgres %s: schema_version holds "
					   "other than one version", d->shown);
		if (PQntuples(res) == 0) {
			_cleanup_pgres_ PGresult *ins = NULL;
			if ((r = pg_exec(d, "INSERT INTO schema_version (version) VALUES (0)", NULL,
					 false, &ins, err, "start the schema version")) < 0)
				return r;
		}
	}
	if (version > SCHEMA_VERSION)
		return cdn_err_msg(err, EPROTO,
				   "store: postgres %s: schema version %" PRId64 " is newer than "
				   "this cordon knows (%d): upgrade cordon",
				   d->shown, version, SCHEMA_VERSION);
	for (int v = (int)version; v < SCHEMA_VERSION; v++) {
		/* Constant DDL, several statements: the simple query protocol. */
		_cleanup_pgres_ PGresult *res = PQexec(d->conn, schema_steps[v]);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			char msg[PG_MSG_MAX];
			pg_message(d->url, PQerrorMessage(d->conn), msg, sizeof(msg));
			return cdn_err_msg(err, EIO, "store: postgres %s: schema version %d: %s",
					   d->shown, v + 1, msg);
		}
		_cleanup_pgres_ PGresult *up = NULL;
		struct pg_params p = { 0 };
		pg_p_int(&p, v + 1);
		if ((r = pg_exec(d, "UPDATE schema_version SET version = $1", &p, false, &up, err,
				 "set schema version %d", v + 1)) < 0)
			return r;
	}
	return pg_txn_commit(&t, err);
}

/* libpq prints the server's notices on stderr unless told otherwise:
 * cordon's output is its own ("relation ... already exists, skipping"
 * from every open is noise). */
static void ignore_notice(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

int pg_connect(const struct pg_db *d, PGconn **out, struct cdn_err *err)
{
	/* Defaults first: what the URL says overrides them. Over TCP, a
	 * server that vanished (no RST: a host down, a partition) is noticed
	 * within about 30 s, by keepalives on an idle connection and by
	 * tcp_user_timeout on a busy one, rather than the kernel's minutes:
	 * a run's supervisor waits on its statements. */
	const char *const keys[] = { "connect_timeout", "application_name", "client_encoding",
				     "keepalives", "keepalives_idle", "keepalives_interval",
				     "keepalives_count", "tcp_user_timeout", "dbname", NULL };
	const char *const vals[] = { PG_CONNECT_TIMEOUT_S, "cordon", "UTF8", "1", "10", "5", "3",
				     "30000", d->url, NULL };
	PGconn *c = PQconnectdbParams(keys, vals, 1);
	*out = c;
	if (!c)
		return cdn_err_set(err, ENOMEM, "store: postgres %s: connect", d->shown);
	if (PQstatus(c) != CONNECTION_OK) {
		char msg[PG_MSG_MAX];
		pg_message(d->url, PQerrorMessage(c), msg, sizeof(msg));
		return cdn_err_msg(err, ECONNREFUSED, "store: postgres %s: connect: %s", d->shown,
				   msg);
	}
	PQsetNoticeProcessor(c, ignore_notice, NULL);
	return 0;
}

static void pg_close(struct store_db *db)
{
	struct pg_db *d = (struct pg_db *)db;
	if (!d)
		return;
	if (d->conn)
		PQfinish(d->conn);
	if (d->listen)
		PQfinish(d->listen);
	pthread_mutex_destroy(&d->lock);
	if (d->url)
		explicit_bzero(d->url, strlen(d->url));
	free(d->url);
	free(d->shown);
	free(d);
}

static void db_freep(struct pg_db **d)
{
	if (*d)
		pg_close((struct store_db *)*d);
}

static int pg_open(struct store *s, const char *database, struct store_db **out,
		   struct cdn_err *err)
{
	(void)s;
	*out = NULL;
	char shown[256];
	store_database_shown(database, shown, sizeof(shown));
	_cleanup_(db_freep) struct pg_db *d = calloc(1, sizeof(*d));
	if (!d || !(d->url = strdup(database)) || !(d->shown = strdup(shown)))
		return cdn_err_set(err, ENOMEM, "store: postgres %s: connect", shown);
	pthread_mutex_init(&d->lock, NULL);
	/* A URL libpq cannot parse: its message would quote the URL. */
	char *perr = NULL;
	PQconninfoOption *opts = PQconninfoParse(database, &perr);
	if (!opts) {
		char msg[PG_MSG_MAX];
		pg_message(database, perr, msg, sizeof(msg));
		PQfreemem(perr);
		return cdn_err_msg(err, EINVAL, "store: postgres %s: not a valid URL: %s", shown,
				   msg);
	}
	PQconninfoFree(opts);
	int r = pg_connect(d, &d->conn, err);
	if (r < 0)
		return r;
	r = migrate(d, err);
	if (r < 0)
		return r;
	*out = (struct store_db *)cdn_steal(&d);
	return 0;
}

const struct store_db_ops store_pg_ops = {
	.name = "postgres",
	.open = pg_open,
	.close = pg_close,
	.item_put = pg_item_put,
	.item_get = pg_item_get,
	.item_list = pg_item_list,
	.grant_add = pg_grant_add,
	.grant_has = pg_grant_has,
	.secret_put = pg_secret_put,
	.secret_get = pg_secret_get,
	.secret_delete = pg_secret_delete,
	.secret_list = pg_secret_list,
	.wskey_get = pg_wskey_get,
	.wskey_put = pg_wskey_put,
	.run_create = pg_run_create,
	.run_update = pg_run_update,
	.run_anchor = pg_run_anchor,
	.run_get = pg_run_get,
	.run_list = pg_run_list,
	.schedule_create = pg_schedule_create,
	.schedule_get = pg_schedule_get,
	.schedule_list = pg_schedule_list,
	.schedule_delete = pg_schedule_delete,
	.schedule_pause = pg_schedule_pause,
	.schedule_claim = pg_schedule_claim,
	.schedule_record = pg_schedule_record,
	.service_create = pg_service_create,
	.service_get = pg_service_get,
	.service_list = pg_service_list,
	.service_delete = pg_service_delete,
	.service_update = pg_service_update,
	.run_usage = pg_run_usage,
	.run_claim = pg_run_claim,
	.run_lease_claim = pg_run_lease_claim,
	.lease_renew = pg_lease_renew,
	.leases_expired = pg_leases_expired,
	.run_mark_lost = pg_run_mark_lost,
	.runs_queued = pg_runs_queued,
	.run_cancel_queued = pg_run_cancel_queued,
	.listen = pg_listen,
	.queue_notified = pg_queue_notified,
	.unlisten = pg_unlisten,
	.control_publish = pg_control_publish,
	.control_close = pg_control_close,
	.controls_list = pg_controls_list,
	.control_decide = pg_control_decide,
	.control_cancel = pg_control_cancel,
	.controls_take = pg_controls_take,
	.control_done = pg_control_done,
	.control_outcome = pg_control_outcome,
	.run_live_clear = pg_run_live_clear,
	.run_live_sweep = pg_run_live_sweep,
	.run_events_put = pg_run_events_put,
	.run_events_read = pg_run_events_read,
	.runs_unfinished = pg_runs_unfinished,
	.run_mark_dead = pg_run_mark_dead,
	.key_put = pg_key_put,
	.key_by_hash = pg_key_by_hash,
	.key_list = pg_key_list,
	.key_revoke = pg_key_revoke,
	.key_touch = pg_key_touch,
	.retention_get = pg_retention_get,
	.retention_put = pg_retention_put,
	.run_marks_get = pg_run_marks_get,
	.run_hold = pg_run_hold,
	.run_release = pg_run_release,
	.run_mark_pruned = pg_run_mark_pruned,
	.prune_due = pg_prune_due,
	.prune_workspaces = pg_prune_workspaces,
	.item_trees = pg_item_trees,
	.run_delete = pg_run_delete,
	.blob_in_runs = pg_blob_in_runs,
	.txn_begin = pg_txn_begin_all,
	.txn_end = pg_txn_end_all,
	.table_read = pg_table_read,
	.table_insert = pg_table_insert,
};
