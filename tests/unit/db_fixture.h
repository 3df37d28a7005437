/* SPDX-License-Identifier: Apache-2.0 */
/*
 * For the unit tests that run against both store backends (test_store,
 * test_vault): with CORDON_DATABASE_URL set (tests/pg/with-postgres sets
 * it), store_open keeps the metadata in that Postgres database, which the
 * tests share; db_fixture_reset() empties it before each test, as a new
 * state directory empties SQLite's. db_fixture_exec() runs a statement of
 * the test's own on whichever database the store in a state directory
 * uses (to age a record as another process would have left it).
 */
#ifndef CORDON_TEST_DB_FIXTURE_H
#define CORDON_TEST_DB_FIXTURE_H

#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

__attribute__((unused)) static bool db_fixture_pg(void)
{
	return store_default_database() != NULL;
}

/* Runs sql (several statements may be given) on the Postgres database
 * named by CORDON_DATABASE_URL; false, saying why on stderr, on failure. */
__attribute__((unused)) static bool db_fixture_pg_exec(const char *sql)
{
	PGconn *c = PQconnectdb(store_default_database());
	bool ok = PQstatus(c) == CONNECTION_OK;
	if (ok) {
		PGresult *res = PQexec(c, sql);
		ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;
		PQclear(res);
	}
	if (!ok)
		fprintf(stderr, "db_fixture: %s: %s\n", sql, PQerrorMessage(c));
	PQfinish(c);
	return ok;
}

/* The first column of the first row sql gives, as text, in out ("" when
 * no row); false on failure. */
__attribute__((unused)) static bool db_fixture_pg_scalar(const char *sql, char *out, size_t cap)
{
	PGconn *c = PQconnectdb(store_default_database());
	bool ok = PQstatus(c) == CONNECTION_OK;
	out[0] = '\0';
	if (ok) {
		PGresult *res = PQexec(c, sql);
		ok = PQresultStatus(res) == PGRES_TUPLES_OK;
		if (ok && PQntuples(res) > 0)
			snprintf(out, cap, "%s", PQgetvalue(res, 0, 0));
		PQclear(res);
	}
	if (!ok)
		fprintf(stderr, "db_fixture: %s: %s\n", sql, PQerrorMessage(c));
	PQfinish(c);
	return ok;
}

/* Postgres: every table of cordon's goes, so that the next store_open
 * makes the schema anew (and the processes that open it first race to).
 * SQLite: nothing to do (each test has its own directory). */
__attribute__((unused)) static int db_fixture_drop(void)
{
	if (!db_fixture_pg())
		return 0;
	/* Less noise than the NOTICE of each table DROP SCHEMA CASCADE drops. */
	return db_fixture_pg_exec("SET client_min_messages = warning;"
				  "DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;")
		       ? 0
		       : -1;
}

/* Postgres: the rows of cordon's tables go, where the schema exists (a
 * quicker start than making it anew for each test). */
__attribute__((unused)) static int db_fixture_reset(void)
{
	if (!db_fixture_pg())
		return 0;
	char v[8];
	if (!db_fixture_pg_scalar("SELECT to_regclass('public.runs') IS NOT NULL", v, sizeof(v)))
		return -1;
	if (strcmp(v, "t") != 0)
		return db_fixture_drop();
	return db_fixture_pg_exec("TRUNCATE items, grants, workspace_keys, secrets, runs, api_keys, retention, run_marks, run_controls, run_events, schedules")
		       ? 0
		       : -1;
}

/* sql on the store of state: its cordon.db, or the Postgres database. */
__attribute__((unused)) static bool db_fixture_exec(const char *state, const char *sql)
{
	if (db_fixture_pg())
		return db_fixture_pg_exec(sql);
	char p[512];
	snprintf(p, sizeof(p), "%s/cordon.db", state);
	sqlite3 *db;
	if (sqlite3_open(p, &db) != SQLITE_OK)
		return false;
	sqlite3_busy_timeout(db, 5000);
	bool ok = sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK;
	sqlite3_close(db);
	return ok;
}

#endif
