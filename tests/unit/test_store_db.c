/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store's choice of backend (SQLite, or Postgres by a URL) and how a
 * database URL shows in messages: never with its password. The queries
 * themselves are test_store.c's, which runs against both backends
 * (tests/pg/with-postgres); the tests here that need a server skip
 * without CORDON_DATABASE_URL.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "store/store.h"
#include "db_fixture.h"

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static int setup(void **state)
{
	char *dir = strdup("/tmp/cordon-test-store-db-XXXXXX");
	if (!dir || !mkdtemp(dir))
		return -1;
	*state = dir;
	return db_fixture_reset();
}

static int teardown(void **state)
{
	nftw(*state, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(*state);
	return 0;
}

static void expect_shown(const char *url, const char *want)
{
	char out[256];
	assert_string_equal(store_database_shown(url, out, sizeof(out)), want);
}

static void test_shown_without_password(void **state)
{
	(void)state;
	expect_shown("postgresql://cordon:hunter2@db.example:5432/cordon",
		     "postgresql://cordon:***@db.example:5432/cordon");
	/* An '@' in the password, as it is written unencoded by some. */
	expect_shown("postgres://u:p@ss@db/x", "postgres://u:***@db/x");
	expect_shown("postgresql://u@db/x?sslmode=require", "postgresql://u@db/x?sslmode=require");
	expect_shown("postgresql:///cordon?host=/tmp/s&password=hunter2&user=u",
		     "postgresql:///cordon?host=/tmp/s&password=***&user=u");
	expect_shown("postgresql://u:a@db/x?password=b", "postgresql://u:***@db/x?password=***");
	expect_shown("postgresql://db/x", "postgresql://db/x");
	/* Control characters are shown escaped, never raw. */
	char out[256];
	store_database_shown("postgresql://db/x\n\x1b[2J", out, sizeof(out));
	assert_null(strchr(out, '\n'));
	assert_null(strchr(out, '\x1b'));
	/* Cut short, still terminated. */
	store_database_shown("postgresql://u:hunter2@db/x", out, 16);
	assert_int_equal(strlen(out), 15);
	assert_null(strstr(out, "hunter2"));
}

/* Neither message below may hold the password: the URL is bad or the
 * server is not there, and each names what failed. */
static void expect_open_fails(const char *dir, const char *url, int want, const char *says)
{
	struct cdn_err err = { 0 };
	struct store *s = NULL;
	int r = store_open_db(dir, url, &s, &err);
	assert_null(s);
	if (want)
		assert_int_equal(r, -want);
	else
		assert_true(r < 0);
	if (!strstr(err.msg, says))
		fail_msg("\"%s\" does not say \"%s\"", err.msg, says);
	if (strstr(err.msg, "hunter2"))
		fail_msg("the password shows in \"%s\"", err.msg);
}

static void test_open_refusals(void **state)
{
	const char *dir = *state;
	expect_open_fails(dir, "mysql://u:hunter2@db/x", EINVAL,
			  "\"mysql://u:***@db/x\": not a postgresql:// or postgres:// URL");
	/* libpq quotes a URL it cannot parse, password and all. */
	expect_open_fails(dir, "postgresql://u:hunter2@[::1/x", EINVAL, "not a valid URL");
	expect_open_fails(dir, "postgresql://u:hunter2@/x?host=/nonexistent/sock&connect_timeout=2",
			  ECONNREFUSED, "store: postgres postgresql://u:***@/x?host=");
	expect_open_fails(dir, "postgresql:///x?host=/nonexistent/sock&password=hunter2", 0,
			  "password=***");
	/* Nothing of SQLite's was made on the way. */
	char p[256];
	snprintf(p, sizeof(p), "%s/cordon.db", dir);
	assert_int_equal(access(p, F_OK), -1);
}

/* One binary, both backends: the URL (or none) picks per store. */
static void test_both_backends(void **state)
{
	const char *dir = *state;
	if (!db_fixture_pg())
		skip();
	struct cdn_err err = { 0 };
	struct store *pg = NULL, *lite = NULL;
	char sub[256];
	snprintf(sub, sizeof(sub), "%s/lite", dir);
	assert_int_equal(store_open(dir, &pg, &err), 0);
	assert_int_equal(store_open_db(sub, NULL, &lite, &err), 0);
	assert_string_equal(store_backend(pg), "postgres");
	assert_string_equal(store_backend(lite), "sqlite");
	assert_int_equal(store_grant_add(pg, "default", "bot", "web", &err), 0);
	assert_true(store_grant_has(pg, "default", "bot", "web"));
	assert_false(store_grant_has(lite, "default", "bot", "web"));
	char n[16];
	assert_true(db_fixture_pg_scalar("SELECT count(*) FROM grants", n, sizeof(n)));
	assert_string_equal(n, "1");
	char p[256];
	snprintf(p, sizeof(p), "%s/cordon.db", dir);
	assert_int_equal(access(p, F_OK), -1);
	store_close(pg);
	store_close(lite);
}

/* A connection the server dropped is made again on the next call. */
static void test_reconnect(void **state)
{
	const char *dir = *state;
	if (!db_fixture_pg())
		skip();
	struct cdn_err err = { 0 };
	struct store *s = NULL;
	assert_int_equal(store_open(dir, &s, &err), 0);
	assert_true(db_fixture_pg_exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
				       " WHERE application_name = 'cordon'"));
	/* The first statement finds the connection broken: it fails, and
	 * the next one connects again. */
	int r = store_grant_add(s, "default", "bot", "web", &err);
	if (r < 0)
		assert_int_equal(store_grant_add(s, "default", "bot", "web", &err), 0);
	assert_true(store_grant_has(s, "default", "bot", "web"));
	store_close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shown_without_password),
		cmocka_unit_test_setup_teardown(test_open_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_both_backends, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reconnect, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
