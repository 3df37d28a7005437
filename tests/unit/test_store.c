/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"
#include "base/hash.h"
#include "db_fixture.h"
#include "base/proc.h"

#define HASH_ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define HASH_HELLO "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
#define HASH_EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define HASH_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HASH_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define HASH_C "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

/* The tree built by make_tree(), as the header defines its listing. */
static const char expected_listing[] =
	"0644 5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03 6 a.txt\n"
	"dir bin\n"
	"0755 299001868fb8c02fd431c336c6d058f5558c5dff5b5af5e6fe04b870a6a9cbba 18 bin/run.sh\n"
	"dir empty\n"
	"dir sub\n"
	"dir sub/deep\n"
	"0644 44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a 2 sub/deep/x.json\n"
	"0644 2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881 1 \xc3\xa9.md\n";
#define EXPECTED_TREE "21c60caeca5b07014a4fcba8d6bfea05ae1f5a340a367609f058722f65cffcca"

struct fx {
	char tmp[64];
	char state[128];
	struct store *s;
};

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static void rm_rf(const char *path)
{
	nftw(path, rm_entry, 32, FTW_DEPTH | FTW_PHYS);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	snprintf(f->tmp, sizeof(f->tmp), "/tmp/cordon-test-store-XXXXXX");
	if (!mkdtemp(f->tmp))
		return -1;
	snprintf(f->state, sizeof(f->state), "%s/state", f->tmp);
	struct cdn_err err = { 0 };
	if (db_fixture_reset() < 0)
		return -1;
	if (store_open(f->state, &f->s, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	store_close(f->s);
	rm_rf(f->tmp);
	free(f);
	return 0;
}

static void write_file(const char *path, const char *data, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, strlen(data)), (ssize_t)strlen(data));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static char *read_file(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	if (!fp)
		return NULL;
	char *buf = NULL;
	size_t cap = 0;
	FILE *mem = open_memstream(&buf, &cap);
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
		fwrite(chunk, 1, n, mem);
	fclose(fp);
	fclose(mem);
	if (len)
		*len = cap;
	return buf;
}

/* Reads path (following links, as a program in the sandbox would). */
static ssize_t read_small_file(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, cap);
	close(fd);
	return n;
}

static size_t count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return (size_t)-1;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static mode_t mode_of(const char *path)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return (mode_t)-1;
	return st.st_mode & 07777;
}

/* ------------------------------------------------------------------- open */

static void test_open_layout(void **state)
{
	struct fx *f = *state;
	char p[256];
	assert_string_equal(store_dir(f->s), f->state);
	assert_int_equal(mode_of(f->state), 0700);
	const char *subs[] = { "blobs", "trees", "runs", "tmp" };
	for (size_t i = 0; i < 4; i++) {
		snprintf(p, sizeof(p), "%s/%s", f->state, subs[i]);
		struct stat st;
		assert_int_equal(lstat(p, &st), 0);
		assert_true(S_ISDIR(st.st_mode));
	}
	if (db_fixture_pg()) {
		/* The metadata is in Postgres, and nothing of it in the state. */
		assert_string_equal(store_backend(f->s), "postgres");
		snprintf(p, sizeof(p), "%s/cordon.db", f->state);
		assert_int_equal(access(p, F_OK), -1);
		char v[32];
		assert_true(db_fixture_pg_scalar("SELECT version FROM schema_version", v, sizeof(v)));
		assert_string_equal(v, "6");
		assert_true(db_fixture_pg_scalar(
		    "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename IN"
		    " ('items', 'grants', 'secrets', 'workspace_keys', 'runs', 'api_keys',"
		    " 'retention', 'run_marks', 'run_controls', 'run_events', 'schedules',"
		    " 'services')",
		    v, sizeof(v)));
		assert_string_equal(v, "12");
		return;
	}
	assert_string_equal(store_backend(f->s), "sqlite");
	snprintf(p, sizeof(p), "%s/cordon.db", f->state);
	assert_int_equal(mode_of(p), 0600);
	snprintf(p, sizeof(p), "%s/cordon.db-wal", f->state);
	assert_int_equal(mode_of(p), 0600);

	/* The schema, seen from outside. */
	sqlite3 *db;
	snprintf(p, sizeof(p), "%s/cordon.db", f->state);
	assert_int_equal(sqlite3_open_v2(p, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 9);
	sqlite3_finalize(st);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	const char *tables[] = { "items", "grants", "secrets", "workspace_keys", "runs",
				 "runs_by_workspace" };
	for (size_t i = 0; i < 6; i++) {
		const char *sql = "SELECT 1 FROM sqlite_master WHERE name = ?1";
		assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
		sqlite3_bind_text(st, 1, tables[i], -1, SQLITE_STATIC);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
}

/* The layout's paths, from the one place that names them. */
static void test_layout_paths(void **state)
{
	struct fx *f = *state;
	struct cdn_err err = { 0 };
	char p[512], want[512];
	assert_int_equal(store_run_file(NULL, "run_1", NULL, p, sizeof(p), &err), 0);
	assert_string_equal(p, "runs/run_1");
	assert_int_equal(store_run_file(NULL, "run_1", "events.ndjson", p, sizeof(p), &err), 0);
	assert_string_equal(p, "runs/run_1/events.ndjson");
	assert_int_equal(store_run_file(f->s, "run_1", "artifacts/a.txt", p, sizeof(p), &err), 0);
	snprintf(want, sizeof(want), "%s/runs/run_1/artifacts/a.txt", f->state);
	assert_string_equal(p, want);
	/* Never a path from a name that could climb out. */
	assert_int_equal(store_run_file(f->s, "..", "x", p, sizeof(p), &err), -EINVAL);
	assert_int_equal(store_run_file(f->s, "a/../../b", NULL, p, sizeof(p), &err), -EINVAL);
	assert_int_equal(store_policy_path(f->s, "../team", p, sizeof(p), &err), -EINVAL);
	assert_int_equal(store_tmp_path(f->s, "../x", p, sizeof(p), &err), -EINVAL);
	assert_int_equal(store_tmp_path(f->s, "..", p, sizeof(p), &err), -EINVAL);
	assert_int_equal(store_run_file(f->s, "run_1", "events.ndjson", p, 8, &err), -ENAMETOOLONG);

	assert_int_equal(store_policy_path(NULL, "team", p, sizeof(p), &err), 0);
	assert_string_equal(p, "policies/team.yaml");
	assert_int_equal(store_operator_policy_path(f->s, p, sizeof(p), &err), 0);
	snprintf(want, sizeof(want), "%s/policy.yaml", f->state);
	assert_string_equal(p, want);
	assert_int_equal(store_tmp_path(f->s, "upload.XXXXXX", p, sizeof(p), &err), 0);
	snprintf(want, sizeof(want), "%s/tmp/upload.XXXXXX", f->state);
	assert_string_equal(p, want);

	/* policies/ is made on the first write, private; the file is 0600. */
	snprintf(want, sizeof(want), "%s/policies", f->state);
	assert_int_equal(mode_of(want), (mode_t)-1);
	assert_int_equal(store_policy_put(f->s, "team", "domains: []\n", 12, &err), 0);
	assert_int_equal(mode_of(want), 0700);
	assert_int_equal(store_policy_path(f->s, "team", p, sizeof(p), &err), 0);
	assert_int_equal(mode_of(p), 0600);
	size_t len;
	char *got = read_file(p, &len);
	assert_non_null(got);
	assert_memory_equal(got, "domains: []\n", 12);
	free(got);
	assert_int_equal(store_policy_put(f->s, "team", "x", 1, &err), 0); /* replaced */
	assert_int_equal(store_policy_put(f->s, "Team", "x", 1, &err), -EINVAL);
}

static void test_reopen_keeps_data(void **state)
{
	struct fx *f = *state;
	struct cdn_err err = { 0 };
	assert_int_equal(store_grant_add(f->s, "default", "bot", "web", &err), 0);
	store_close(f->s);
	f->s = NULL;
	/* A trailing slash is the same directory. */
	char dir[160];
	snprintf(dir, sizeof(dir), "%s/", f->state);
	assert_int_equal(store_open(dir, &f->s, &err), 0);
	assert_string_equal(store_dir(f->s), f->state);
	assert_true(store_grant_has(f->s, "default", "bot", "web"));

	/* A second handle on the same store, as a second process would. */
	struct store *s2;
	assert_int_equal(store_open(f->state, &s2, &err), 0);
	assert_int_equal(store_grant_add(s2, "default", "bot", "mail", &err), 0);
	assert_true(store_grant_has(f->s, "default", "bot", "mail"));
	store_close(s2);
}

static void test_open_refusals(void **state)
{
	struct fx *f = *state;
	struct cdn_err err = { 0 };
	struct store *s = NULL;
	char link[160], p[160];

	snprintf(link, sizeof(link), "%s/link", f->tmp);
	assert_int_equal(symlink(f->state, link), 0);
	assert_true(store_open(link, &s, &err) < 0);
	assert_null(s);
	assert_non_null(strstr(err.msg, "symlink"));

	snprintf(p, sizeof(p), "%s/shared", f->tmp);
	assert_int_equal(mkdir(p, 0700), 0);
	assert_int_equal(chmod(p, 0770), 0);
	assert_int_equal(store_open(p, &s, &err), -EPERM);
	assert_non_null(strstr(err.msg, "writable by group or others"));

	if (geteuid() == 0) {
		snprintf(p, sizeof(p), "%s/theirs", f->tmp);
		assert_int_equal(mkdir(p, 0700), 0);
		assert_int_equal(chown(p, 65534, 65534), 0);
		assert_int_equal(store_open(p, &s, &err), -EPERM);
		assert_non_null(strstr(err.msg, "owned by uid 65534"));
	}

	snprintf(p, sizeof(p), "%s/file", f->tmp);
	write_file(p, "x", 0600);
	assert_true(store_open(p, &s, &err) < 0);
	assert_true(store_open("", &s, &err) < 0);

	/* A schema from a later cordon is not touched. */
	snprintf(p, sizeof(p), "%s/later", f->tmp);
	assert_int_equal(store_open(p, &s, &err), 0);
	store_close(s);
	assert_true(db_fixture_exec(p, db_fixture_pg() ? "UPDATE schema_version SET version = 99"
						       : "PRAGMA user_version = 99"));
	s = NULL;
	assert_true(store_open(p, &s, &err) < 0);
	assert_null(s);
	assert_non_null(strstr(err.msg, "newer"));
	/* The tests after this one share a Postgres database. */
	assert_int_equal(db_fixture_drop(), 0);
}

static void test_tmp_cleanup(void **state)
{
	struct fx *f = *state;
	struct cdn_err err = { 0 };
	char p[256];
	/* pid 999999999 is past any pid_max: that writer is gone. */
	snprintf(p, sizeof(p), "%s/tmp/t.999999999.00ff", f->state);
	write_file(p, "stale", 0600);
	snprintf(p, sizeof(p), "%s/tmp/c.999999999.00ff", f->state);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/tmp/c.999999999.00ff/inner", f->state);
	write_file(p, "x", 0400);
	snprintf(p, sizeof(p), "%s/tmp/t.%d.00ff", f->state, (int)getpid());
	write_file(p, "live", 0600);
	snprintf(p, sizeof(p), "%s/tmp/foreign", f->state);
	write_file(p, "fresh", 0600);
	snprintf(p, sizeof(p), "%s/tmp/old", f->state);
	write_file(p, "old", 0600);
	struct timeval tv[2] = { { time(NULL) - 3 * 86400, 0 }, { time(NULL) - 3 * 86400, 0 } };
	assert_int_equal(utimes(p, tv), 0);

	store_close(f->s);
	f->s = NULL;
	assert_int_equal(store_open(f->state, &f->s, &err), 0);
	snprintf(p, sizeof(p), "%s/tmp", f->state);
	assert_int_equal(count_entries(p), 2);
	snprintf(p, sizeof(p), "%s/tmp/t.%d.00ff", f->state, (int)getpid());
	assert_int_equal(access(p, F_OK), 0);
	snprintf(p, sizeof(p), "%s/tmp/foreign", f->state);
	assert_int_equal(access(p, F_OK), 0);
}

/* Runs fn in a child that is not root, when we are: the default dir
 * depends on the uid. The child's exit status is fn's result. */
static int as_user(int (*fn)(void))
{
	if (geteuid() != 0)
		return fn();
	pid_t pid = fork();
	if (pid == 0) {
		if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0)
			_exit(100);
		_exit(fn());
	}
	int st;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 101;
}

static int user_default_dirs(void)
{
	char out[256];
	struct cdn_err err = { 0 };
	unsetenv("CORDON_STATE");
	setenv("XDG_STATE_HOME", "/xdg/state", 1);
	setenv("HOME", "/home/u", 1);
	if (store_default_dir(out, sizeof(out), &err) < 0 || strcmp(out, "/xdg/state/cordon"))
		return 1;
	/* A relative XDG_STATE_HOME is ignored, as the spec says. */
	setenv("XDG_STATE_HOME", "relative", 1);
	if (store_default_dir(out, sizeof(out), &err) < 0 ||
	    strcmp(out, "/home/u/.local/state/cordon"))
		return 2;
	unsetenv("XDG_STATE_HOME");
	if (store_default_dir(out, sizeof(out), &err) < 0 ||
	    strcmp(out, "/home/u/.local/state/cordon"))
		return 3;
	unsetenv("HOME");
	if (store_default_dir(out, sizeof(out), &err) != -ENOENT)
		return 4;
	setenv("CORDON_STATE", "/srv/cordon", 1);
	if (store_default_dir(out, sizeof(out), &err) < 0 || strcmp(out, "/srv/cordon"))
		return 5;
	return 0;
}

static void test_default_dir(void **state)
{
	(void)state;
	char out[256], small[8];
	struct cdn_err err = { 0 };
	char *saved[3];
	const char *names[3] = { "CORDON_STATE", "XDG_STATE_HOME", "HOME" };
	for (int i = 0; i < 3; i++)
		saved[i] = getenv(names[i]) ? strdup(getenv(names[i])) : NULL;

	setenv("CORDON_STATE", "/opt/state", 1);
	assert_int_equal(store_default_dir(out, sizeof(out), &err), 0);
	assert_string_equal(out, "/opt/state");
	assert_int_equal(store_default_dir(small, sizeof(small), &err), -ENAMETOOLONG);
	setenv("CORDON_STATE", "relative/state", 1);
	assert_true(store_default_dir(out, sizeof(out), &err) < 0);
	assert_non_null(strstr(err.msg, "not an absolute path"));
	setenv("CORDON_STATE", "", 1);
	setenv("XDG_STATE_HOME", "/xdg", 1);
	assert_int_equal(store_default_dir(out, sizeof(out), &err), 0);
	assert_string_equal(out, geteuid() == 0 ? "/var/lib/cordon" : "/xdg/cordon");
	assert_int_equal(as_user(user_default_dirs), 0);

	for (int i = 0; i < 3; i++) {
		if (saved[i])
			setenv(names[i], saved[i], 1);
		else
			unsetenv(names[i]);
		free(saved[i]);
	}
}

static void test_name_checks(void **state)
{
	(void)state;
	struct cdn_err err = { 0 };
	const char *good[] = { "a", "0", "my-agent.v2", "x_y",
			       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" };
	const char *bad[] = { "", "A", "-a", ".a", "_a", "a b", "a/b", "é", "a\n",
			      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" };
	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++) {
		assert_int_equal(store_name_check("agent", good[i], &err), 0);
		assert_true(store_name_ok(good[i]));
		assert_true(store_secret_name_ok(good[i]));
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		assert_int_equal(store_name_check("agent", bad[i], &err), -EINVAL);
		assert_false(store_name_ok(bad[i]));
	}
	assert_false(store_name_ok(NULL));
	assert_false(store_secret_name_ok(NULL));
	assert_true(store_secret_name_ok("OPENAI_API_KEY"));
	assert_false(store_secret_name_ok("_KEY"));
	/* Run ids: the secret names' shape, at most 40. */
	assert_true(store_run_id_ok("r_20240501_abc.x-1"));
	assert_true(store_run_id_ok("Aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa9"));
	assert_false(store_run_id_ok("Aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa9"));
	assert_false(store_run_id_ok("-r"));
	assert_false(store_run_id_ok("_r"));
	assert_false(store_run_id_ok(".."));
	assert_false(store_run_id_ok("a/b"));
	assert_false(store_run_id_ok(""));
	assert_false(store_run_id_ok(NULL));
	assert_int_equal(store_run_id_check("-r", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "run id \"-r\""));
	assert_true(store_name_check("agent", NULL, &err) < 0);
	assert_int_equal(store_name_check("capability", "Web", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "capability name \"Web\""));
	assert_int_equal(store_secret_name_check("OPENAI_API_KEY", &err), 0);
	assert_int_equal(store_secret_name_check("token.v2-x", &err), 0);
	assert_int_equal(store_secret_name_check("_KEY", &err), -EINVAL);
	assert_int_equal(store_secret_name_check("MY KEY", &err), -EINVAL);
	assert_int_equal(store_secret_name_check("", &err), -EINVAL);
}

static void test_write_atomic(void **state)
{
	struct fx *f = *state;
	struct cdn_err err = { 0 };
	char p[256];
	assert_int_equal(store_write_atomic(f->s, "runs/r.json", "{}", 2, 0640, &err), 0);
	snprintf(p, sizeof(p), "%s/runs/r.json", f->state);
	size_t len;
	char *got = read_file(p, &len);
	assert_non_null(got);
	assert_int_equal(len, 2);
	assert_memory_equal(got, "{}", 2);
	free(got);
	assert_int_equal(mode_of(p), 0640);

	/* Replacing: the new bytes, the new mode, no temp file left. */
	assert_int_equal(store_write_atomic(f->s, p, "{\"a\":1}", 7, 0600, &err), 0);
	got = read_file(p, &len);
	assert_int_equal(len, 7);
	assert_memory_equal(got, "{\"a\":1}", 7);
	free(got);
	assert_int_equal(mode_of(p), 0600);
	snprintf(p, sizeof(p), "%s/tmp", f->state);
	assert_int_equal(count_entries(p), 0);

	/* An absolute path outside the store; an empty file. */
	snprintf(p, sizeof(p), "%s/outside.txt", f->tmp);
	assert_int_equal(store_write_atomic(f->s, p, "", 0, 0644, &err), 0);
	assert_int_equal(mode_of(p), 0644);

	snprintf(p, sizeof(p), "%s/missing/x", f->tmp);
	assert_int_equal(store_write_atomic(f->s, p, "x", 1, 0644, &err), -ENOENT);
	assert_true(store_write_atomic(f->s, "runs/", "x", 1, 0644, &err) < 0);
	assert_true(store_write_atomic(f->s, "runs/x", "x", 1, 01000000, &err) < 0);

	/* Another filesystem, when there is one: the temp file goes beside. */
	struct stat a, b;
	if (stat("/dev/shm", &a) == 0 && stat(f->state, &b) == 0 && a.st_dev != b.st_dev &&
	    access("/dev/shm", W_OK) == 0) {
		snprintf(p, sizeof(p), "/dev/shm/cordon-test-%d", (int)getpid());
		assert_int_equal(store_write_atomic(f->s, p, "shm", 3, 0600, &err), 0);
		got = read_file(p, &len);
		assert_int_equal(len, 3);
		free(got);
		unlink(p);
	}
}

/* ------------------------------------------------------------------ blobs */

static void test_blobs(void **state)
{
	struct fx *f = *state;
	struct cdn_err err = { 0 };
	char hex[STORE_HASH_HEX + 1], path[256];
	assert_int_equal(store_blob_put(f->s, "abc", 3, hex, &err), 0);
	assert_string_equal(hex, HASH_ABC);
	assert_int_equal(store_blob_path(f->s, hex, path, sizeof(path), &err), 0);
	char want[256];
	snprintf(want, sizeof(want), "%s/blobs/ba/%s", f->state, &HASH_ABC[2]);
	assert_string_equal(path, want);
	assert_int_equal(mode_of(path), 0444);
	size_t len;
	char *got = read_file(path, &len);
	assert_int_equal(len, 3);
	assert_memory_equal(got, "abc", 3);
	free(got);

	/* Dedup: the same bytes are the same file. */
	struct stat st1, st2;
	assert_int_equal(stat(path, &st1), 0);
	assert_int_equal(store_blob_put(f->s, "abc", 3, hex, &err), 0);
	assert_int_equal(stat(path, &st2), 0);
	assert_int_equal(st1.st_ino, st2.st_ino);
	snprintf(path, sizeof(path), "%s/blobs/ba", f->state);
	assert_int_equal(count_entries(path), 1);

	/* The empty blob is a blob. */
	assert_int_equal(store_blob_put(f->s, "", 0, hex, &err), 0);
	assert_string_equal(hex, HASH_EMPTY);

	assert_int_equal(store_blob_path(f->s, HASH_A, path, sizeof(path), &err), -ENOENT);
	assert_int_equal(store_blob_path(f->s, "../../etc/passwd", path, sizeof(path), &err),
			 -EINVAL);
	assert_int_equal(store_blob_path(f->s, "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB"
					       "410FF61F20015AD",
					 path, sizeof(path), &err),
			 -EINVAL);
	char tiny[8];
	assert_int_equal(store_blob_path(f->s, HASH_ABC, tiny, sizeof(tiny), &err), -ENAMETOOLONG);
	snprintf(path, sizeof(path), "%s/tmp", f->state);
	assert_int_equal(count_entries(path), 0);
}

static void test_blob_put_fd(void **state)
{
	struct fx *f = *state;
	struct cdn_err err = { 0 };
	char p[256], hex[STORE_HASH_HEX + 1], hex2[STORE_HASH_HEX + 1];
	enum { N = 200000 };
	char *data = malloc(N);
	for (size_t i = 0; i < N; i++)
		data[i] = (char)(i * 7 + i / 251);
	snprintf(p, sizeof(p), "%s/big", f->tmp);
	int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_int_equal(write(fd, data, N), N);

	uint64_t size = 0;
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(store_blob_put_fd(f->s, fd, N, hex, &size, &err), 0);
	assert_int_equal(size, N);
	assert_int_equal(store_blob_put(f->s, data, N, hex2, &err), 0);
	assert_string_equal(hex, hex2);
	unsigned char d[32];
	char dh[65];
	crypto_hash_sha256(d, (unsigned char *)data, N);
	sodium_bin2hex(dh, sizeof(dh), d, sizeof(d));
	assert_string_equal(hex, dh);

	/* One byte over the limit is refused, and leaves nothing behind. */
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(store_blob_put_fd(f->s, fd, N - 1, hex, &size, &err), -E2BIG);
	snprintf(p, sizeof(p), "%s/tmp", f->state);
	assert_int_equal(count_entries(p), 0);

	/* A pipe streams as well. */
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	assert_int_equal(write(pfd[1], "abc", 3), 3);
	close(pfd[1]);
	assert_int_equal(store_blob_put_fd(f->s, pfd[0], 3, hex, &size, &err), 0);
	assert_string_equal(hex, HASH_ABC);
	assert_int_equal(size, 3);
	close(pfd[0]);
	close(fd);
	free(data);
}

static void test_blob_export(void **state)
{
	struct fx *f = *state;
	struct cdn_err err = { 0 };
	char hex[STORE_HASH_HEX + 1], p[256], blob[256];
	assert_int_equal(store_blob_put(f->s, "hello\n", 6, hex, &err), 0);
	snprintf(p, sizeof(p), "%s/copy.txt", f->tmp);
	assert_int_equal(store_blob_export(f->s, hex, p, 0644, &err), 0);
	size_t len;
	char *got = read_file(p, &len);
	assert_int_equal(len, 6);
	assert_memory_equal(got, "hello\n", 6);
	free(got);
	assert_int_equal(mode_of(p), 0644);
	assert_int_equal(store_blob_export(f->s, HASH_A, p, 0644, &err), -ENOENT);

	/* A blob changed on disk is caught, and the target is not replaced. */
	assert_int_equal(store_blob_path(f->s, hex, blob, sizeof(blob), &err), 0);
	assert_int_equal(chmod(blob, 0644), 0);
	write_file(blob, "HELLO\n", 0444);
	assert_int_equal(store_blob_export(f->s, hex, p, 0644, &err), -EIO);
	assert_non_null(strstr(err.msg, "does not match its hash"));
	got = read_file(p, &len);
	assert_memory_equal(got, "hello\n", 6);
	free(got);
	/* Putting the bytes again repairs nothing of the same size: a damaged
	 * blob of another size is replaced. */
	assert_int_equal(chmod(blob, 0644), 0);
	write_file(blob, "HELLO, WORLD\n", 0444);
	assert_int_equal(store_blob_put(f->s, "hello\n", 6, hex, &err), 0);
	assert_int_equal(store_blob_export(f->s, hex, p, 0644, &err), 0);
}

/* ------------------------------------------------------------------ trees */

static void make_tree(const char *root)
{
	char p[512];
	assert_int_equal(mkdir(root, 0755), 0);
	snprintf(p, sizeof(p), "%s/a.txt", root);
	write_file(p, "hello\n", 0640);
	snprintf(p, sizeof(p), "%s/bin", root);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/bin/run.sh", root);
	write_file(p, "#!/bin/sh\necho hi\n", 0700);
	snprintf(p, sizeof(p), "%s/empty", root);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/sub", root);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/sub/deep", root);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/sub/deep/x.json", root);
	write_file(p, "{}", 0600);
	snprintf(p, sizeof(p), "%s/\xc3\xa9.md", root);
	write_file(p, "x", 0644);
}

static void import_ok(struct fx *f, const char *dir, char hash[STORE_HASH_HEX + 1])
{
	struct cdn_err err = { 0 };
	int r = store_tree_import(f->s, dir, NULL, hash, &err);
	if (r < 0)
		fprintf(stderr, "%s\n", err.msg);
	assert_int_equal(r, 0);
}

static void test_tree_import(void **state)
{
	struct fx *f = *state;
	struct cdn_err err = { 0 };
	char root[256], hash[STORE_HASH_HEX + 1], hash2[STORE_HASH_HEX + 1], p[512];
	snprintf(root, sizeof(root), "%s/agent", f->tmp);
	make_tree(root);
	import_ok(f, root, hash);
	assert_string_equal(hash, EXPECTED_TREE);

	char *listing;
	size_t len;
	assert_int_equal(store_tree_listing(f->s, hash, &listing, &len, &err), 0);
	assert_int_equal(len, strlen(expected_listing));
	assert_memory_equal(listing, expected_listing, len);
	free(listing);
	unsigned char d[32];
	char dh[65];
	crypto_hash_sha256(d, (const unsigned char *)expected_listing, strlen(expected_listing));
	sodium_bin2hex(dh, sizeof(dh), d, sizeof(d));
	assert_string_equal(dh, EXPECTED_TREE);

	/* Elsewhere, later, with other timestamps: the same hash. */
	char copy[256];
	snprintf(copy, sizeof(copy), "%s/copy", f->tmp);
	make_tree(copy);
	import_ok(f, copy, hash2);
	assert_string_equal(hash2, EXPECTED_TREE);

	/* Each change changes it: bytes, execute bit, a name, an empty dir. */
	snprintf(p, sizeof(p), "%s/a.txt", copy);
	write_file(p, "hellO\n", 0640);
	import_ok(f, copy, hash2);
	assert_string_not_equal(hash2, EXPECTED_TREE);
	write_file(p, "hello\n", 0640);
	import_ok(f, copy, hash2);
	assert_string_equal(hash2, EXPECTED_TREE);
	/* Other mode bits do not count; the execute bit does. */
	assert_int_equal(chmod(p, 0600), 0);
	import_ok(f, copy, hash2);
	assert_string_equal(hash2, EXPECTED_TREE);
	assert_int_equal(chmod(p, 0610), 0);
	import_ok(f, copy, hash2);
	assert_string_not_equal(hash2, EXPECTED_TREE);
	assert_int_equal(chmod(p, 0644), 0);
	char p2[512];
	snprintf(p2, sizeof(p2), "%s/b.txt", copy);
	assert_int_equal(rename(p, p2), 0);
	import_ok(f, copy, hash2);
	assert_string_not_equal(hash2, EXPECTED_TREE);
	assert_int_equal(rename(p2, p), 0);
	snprintf(p, sizeof(p), "%s/empty/more", copy);
	assert_int_equal(mkdir(p, 0755), 0);
	import_ok(f, copy, hash2);
	assert_string_not_equal(hash2, EXPECTED_TREE);
	assert_int_equal(rmdir(p), 0);
	import_ok(f, copy, hash2);
	assert_string_equal(hash2, EXPECTED_TREE);

	/* An empty directory is the empty listing. */
	snprintf(p, sizeof(p), "%s/void", f->tmp);
	assert_int_equal(mkdir(p, 0755), 0);
	import_ok(f, p, hash2);
	assert_string_equal(hash2, HASH_EMPTY);

	assert_int_equal(store_tree_listing(f->s, HASH_A, &listing, &len, &err), -ENOENT);
	snprintf(p, sizeof(p), "%s/nope", f->tmp);
	assert_int_equal(store_tree_import(f->s, p, NULL, hash2, &err), -ENOENT);
}

static void expect_refused(struct fx *f, const char *dir, const struct tree_limits *lim,
			   const char *why)
{
	struct cdn_err err = { 0 };
	char hash[STORE_HASH_HEX + 1];
	assert_true(store_tree_import(f->s, dir, lim, hash, &err) < 0);
	if (!strstr(err.msg, why))
		fail_msg("\"%s\" does not say \"%s\"", err.msg, why);
}

static void test_tree_refusals(void **state)
{
	struct fx *f = *state;
	char root[256], p[512];
	snprintf(root, sizeof(root), "%s/agent", f->tmp);
	make_tree(root);


	snprintf(p, sizeof(p), "%s/fifo", root);
	assert_int_equal(mkfifo(p, 0600), 0);
	expect_refused(f, root, NULL, "fifo: is a fifo");
	unlink(p);

	snprintf(p, sizeof(p), "%s/two\nlines", root);
	write_file(p, "x", 0644);
	expect_refused(f, root, NULL, "control characters");
	unlink(p);
	snprintf(p, sizeof(p), "%s/latin1-\xe9", root);
	write_file(p, "x", 0644);
	expect_refused(f, root, NULL, "not UTF-8");
	unlink(p);
	snprintf(p, sizeof(p), "%s/overlong-\xc0\xaf", root);
	write_file(p, "x", 0644);
	expect_refused(f, root, NULL, "not UTF-8");
	unlink(p);

	/* 8 entries, 27 bytes, 3 levels. */
	struct tree_limits lim = { .max_files = 7 };
	expect_refused(f, root, &lim, "over the limit of entries");
	lim = (struct tree_limits){ .max_bytes = 26 };
	expect_refused(f, root, &lim, "more than 26 bytes");
	lim = (struct tree_limits){ .max_depth = 2 };
	expect_refused(f, root, &lim, "sub/deep/x.json: deeper than 2 levels");
	char hash[STORE_HASH_HEX + 1];
	struct cdn_err err = { 0 };
	lim = (struct tree_limits){ .max_files = 8, .max_bytes = 27, .max_depth = 3 };
	assert_int_equal(store_tree_import(f->s, root, &lim, hash, &err), 0);
	assert_string_equal(hash, EXPECTED_TREE);

	/* The root itself may be a symlink: the caller named it. */
	snprintf(p, sizeof(p), "%s/agent-link", f->tmp);
	assert_int_equal(symlink(root, p), 0);
	import_ok(f, p, hash);
	assert_string_equal(hash, EXPECTED_TREE);
}

static void test_tree_checkout(void **state)
{
	struct fx *f = *state;
	struct cdn_err err = { 0 };
	char root[256], hash[STORE_HASH_HEX + 1], again[STORE_HASH_HEX + 1], out[512], p[600];
	snprintf(root, sizeof(root), "%s/agent", f->tmp);
	make_tree(root);
	import_ok(f, root, hash);
	assert_int_equal(store_tree_checkout(f->s, hash, out, sizeof(out), &err), 0);
	snprintf(p, sizeof(p), "%s/trees/%s", f->state, hash);
	assert_string_equal(out, p);

	/* The checkout is the same tree. */
	import_ok(f, out, again);
	assert_string_equal(again, hash);
	assert_int_equal(mode_of(out), 0755);
	snprintf(p, sizeof(p), "%s/a.txt", out);
	assert_int_equal(mode_of(p), 0444);
	snprintf(p, sizeof(p), "%s/bin/run.sh", out);
	assert_int_equal(mode_of(p), 0555);
	snprintf(p, sizeof(p), "%s/bin", out);
	assert_int_equal(mode_of(p), 0755);
	snprintf(p, sizeof(p), "%s/empty", out);
	assert_int_equal(count_entries(p), 0);
	snprintf(p, sizeof(p), "%s/sub/deep/x.json", out);
	size_t len;
	char *got = read_file(p, &len);
	assert_int_equal(len, 2);
	assert_memory_equal(got, "{}", 2);
	free(got);

	/* Made once: a second call returns the same directory as it is. */
	struct stat st1, st2;
	assert_int_equal(stat(out, &st1), 0);
	assert_int_equal(store_tree_checkout(f->s, hash, out, sizeof(out), &err), 0);
	assert_int_equal(stat(out, &st2), 0);
	assert_int_equal(st1.st_ino, st2.st_ino);
	snprintf(p, sizeof(p), "%s/tmp", f->state);
	assert_int_equal(count_entries(p), 0);

	assert_int_equal(store_tree_checkout(f->s, HASH_A, out, sizeof(out), &err), -ENOENT);
	assert_int_equal(store_tree_checkout(f->s, "x", out, sizeof(out), &err), -EINVAL);
}

static void test_tree_checkout_damaged(void **state)
{
	struct fx *f = *state;
	struct cdn_err err = { 0 };
	char root[256], hash[STORE_HASH_HEX + 1], out[512], blob[256], p[512];
	snprintf(root, sizeof(root), "%s/agent", f->tmp);
	make_tree(root);
	import_ok(f, root, hash);
	/* A file's blob damaged on disk (same size): the checkout fails and
	 * leaves nothing, rather than handing out other bytes. */
	assert_int_equal(store_blob_path(f->s, HASH_HELLO, blob, sizeof(blob), &err), 0);
	assert_int_equal(chmod(blob, 0644), 0);
	write_file(blob, "HELLO\n", 0444);
	assert_int_equal(store_tree_checkout(f->s, hash, out, sizeof(out), &err), -EIO);
	snprintf(p, sizeof(p), "%s/trees", f->state);
	assert_int_equal(count_entries(p), 0);
	snprintf(p, sizeof(p), "%s/tmp", f->state);
	assert_int_equal(count_entries(p), 0);

	/* A listing that is not canonical is refused even with a good hash. */
	const char *bad[] = {
		"dir b\ndir a\n",			     /* not sorted */
		"dir a\ndir a\n",			     /* duplicate */
		"0644 " HASH_ABC " 3 x/y\n",		     /* parent not listed */
		"dir ..\n",				     /* escapes */
		"dir a//b\n",				     /* empty component */
		"0600 " HASH_ABC " 3 a\n",		     /* mode */
		"0644 " HASH_ABC " 03 a\n",		     /* size not canonical */
		"0644 " HASH_ABC " 3 /etc/passwd\n",	     /* absolute */
		"dir a",				     /* no newline */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		char h[STORE_HASH_HEX + 1];
		assert_int_equal(store_blob_put(f->s, bad[i], strlen(bad[i]), h, &err), 0);
		assert_int_equal(store_tree_checkout(f->s, h, out, sizeof(out), &err), -EIO);
	}
	snprintf(p, sizeof(p), "%s/trees", f->state);
	assert_int_equal(count_entries(p), 0);
}

/* ------------------------------------------------------------ tree links */

static void link_at(const char *root, const char *path, const char *target)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", root, path);
	if (symlink(target, p) != 0)
		fail_msg("symlink %s -> %s: %s", p, target, strerror(errno));
}

static void unlink_at(const char *root, const char *path)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", root, path);
	assert_int_equal(unlink(p), 0);
}

/* Links that stay inside the tree are kept: node_modules/.bin, a venv's
 * lib64 and bin/python, a link to a link, a link to the root. */
static void test_tree_links(void **state)
{
	struct fx *f = *state;
	struct cdn_err err = { 0 };
	char root[256], hash[STORE_HASH_HEX + 1], hash2[STORE_HASH_HEX + 1], out[512], p[512];
	snprintf(root, sizeof(root), "%s/agent", f->tmp);
	make_tree(root);
	link_at(root, "bin/run", "run.sh");		/* same directory */
	link_at(root, "sub/deep/up", "../../a.txt");	/* up and back */
	link_at(root, "sub/deep/twice", "up");		/* a link to a link */
	link_at(root, "sub/lib64", "deep");		/* a directory */
	link_at(root, "sub/via", "lib64/x.json");	/* through a link to a directory */
	link_at(root, "sub/root", "..");		/* the tree's root itself */
	link_at(root, "sub/odd", "./deep/../deep/x.json");
	/* Inside only because ".." goes up from where lib64 leads (sub/deep),
	 * not from the link: the text alone reads as leaving. */
	link_at(root, "back", "sub/lib64/../../a.txt");
	import_ok(f, root, hash);
	assert_string_not_equal(hash, EXPECTED_TREE);

	char *listing;
	size_t len;
	assert_int_equal(store_tree_listing(f->s, hash, &listing, &len, &err), 0);
	assert_non_null(strstr(listing, "\nlink 6 run.sh bin/run\n"));
	assert_non_null(strstr(listing, "\nlink 11 ../../a.txt sub/deep/up\n"));
	assert_non_null(strstr(listing, "\nlink 4 deep sub/lib64\n"));
	assert_non_null(strstr(listing, "\nlink 2 .. sub/root\n"));
	free(listing);

	/* The target is hashed: another target, another tree. */
	unlink_at(root, "sub/via");
	link_at(root, "sub/via", "deep/x.json");
	import_ok(f, root, hash2);
	assert_string_not_equal(hash, hash2);
	/* A target with a space, and a path with one: the length keeps them
	 * apart. */
	link_at(root, "a b", "sub/deep/x.json");
	snprintf(p, sizeof(p), "%s/x y.txt", root);
	write_file(p, "z", 0644);
	link_at(root, "c", "x y.txt");
	import_ok(f, root, hash2);

	/* The checkout holds the same links, not copies of their targets. */
	assert_int_equal(store_tree_checkout(f->s, hash2, out, sizeof(out), &err), 0);
	char buf[64];
	snprintf(p, sizeof(p), "%s/sub/deep/up", out);
	ssize_t n = readlink(p, buf, sizeof(buf) - 1);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_string_equal(buf, "../../a.txt");
	snprintf(p, sizeof(p), "%s/sub/deep/twice", out);
	assert_int_equal(read_small_file(p, buf, sizeof(buf)), 6);
	assert_memory_equal(buf, "hello\n", 6);
	snprintf(p, sizeof(p), "%s/c", out);
	assert_int_equal(read_small_file(p, buf, sizeof(buf)), 1);
	/* A checkout imported again is the same tree. */
	char again[STORE_HASH_HEX + 1];
	import_ok(f, out, again);
	assert_string_equal(again, hash2);
}

/* Links that leave the tree, or lead nowhere, are refused by name. */
static void test_tree_link_refusals(void **state)
{
	struct fx *f = *state;
	char root[256];
	snprintf(root, sizeof(root), "%s/agent", f->tmp);
	make_tree(root);
	static const struct {
		const char *path, *target, *why;
	} bad[] = {
		{ "sub/passwd", "/etc/passwd", "sub/passwd: is a symlink with an absolute target" },
		{ "sub/dirlink", "/etc", "sub/dirlink: is a symlink with an absolute target" },
		{ "sub/deep/p", "../../../etc/passwd", "sub/deep/p: is a symlink to "
						       "'../../../etc/passwd' and its target "
						       "leaves the tree" },
		{ "sub/deep/p", "../../../../../../../../etc/passwd", "leaves the tree" },
		{ "esc", "..", "esc: is a symlink to '..' and its target leaves the tree" },
		{ "sub/x", "deep/../../..", "leaves the tree" },
		{ "sub/nope", "missing", "sub/nope: is a symlink to 'missing' and its target is "
					 "not in the tree (a dangling link)" },
		{ "sub/below", "../a.txt/x", "goes on below a file" },
		{ "self", "self", "a loop of links" },
		{ "sub/e", "deep//x.json", "empty component" },
		{ "sub/e", "deep/", "empty component" },
		{ "sub/e", "deep/\n", "control characters" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		link_at(root, bad[i].path, bad[i].target);
		expect_refused(f, root, NULL, bad[i].why);
		unlink_at(root, bad[i].path);
	}

	/* Through another link: "up/.." reads as "sub" when taken by its
	 * letters, but up is the tree's root, and its parent is outside. */
	link_at(root, "sub/up", "..");
	link_at(root, "sub/out", "up/../etc/passwd");
	expect_refused(f, root, NULL, "sub/out: is a symlink to 'up/../etc/passwd' and its target "
				      "leaves the tree");
	unlink_at(root, "sub/out");
	/* A link to a directory, then ".." from inside it: the kernel goes up
	 * from the directory the link names, not from the link. */
	link_at(root, "rootdir", "sub/up");
	link_at(root, "sub/deep/d", "../../rootdir/..");
	expect_refused(f, root, NULL, "sub/deep/d: is a symlink");
	unlink_at(root, "sub/deep/d");
	/* A loop of two. */
	link_at(root, "l1", "l2");
	link_at(root, "l2", "l1");
	expect_refused(f, root, NULL, "a loop of links");
	unlink_at(root, "l1");
	unlink_at(root, "l2");
	/* The links left (sub/up, rootdir) stay inside: accepted. */
	char hash[STORE_HASH_HEX + 1];
	import_ok(f, root, hash);
}

/* A tree's blobs are stored together (one flush, then the renames): the
 * same bytes twice in one tree, bytes stored already, and a tree refused
 * after its files were read all leave tmp/ empty, and only a stored tree
 * leaves blobs behind. */
static void test_tree_blobs_batched(void **state)
{
	struct fx *f = *state;
	struct cdn_err err = { 0 };
	char root[256], p[512], hash[STORE_HASH_HEX + 1], blob[512];
	snprintf(root, sizeof(root), "%s/agent", f->tmp);
	make_tree(root);
	snprintf(p, sizeof(p), "%s/again.txt", root);
	write_file(p, "hello\n", 0644); /* a.txt's bytes */
	snprintf(p, sizeof(p), "%s/fresh.txt", root);
	write_file(p, "only here\n", 0644);
	/* Refused once the walk is over: every file has been read by then. */
	link_at(root, "bad", "nothing");
	expect_refused(f, root, NULL, "bad: is a symlink");
	snprintf(p, sizeof(p), "%s/tmp", f->state);
	assert_int_equal(count_entries(p), 0);
	char fresh[STORE_HASH_HEX + 1];
	cdn_sha256_hex("only here\n", 10, fresh);
	assert_int_equal(store_blob_path(f->s, fresh, blob, sizeof(blob), &err), -ENOENT);

	unlink_at(root, "bad");
	assert_int_equal(store_blob_put(f->s, "x", 1, hash, &err), 0); /* stored already */
	import_ok(f, root, hash);
	assert_int_equal(count_entries(p), 0);
	assert_int_equal(store_blob_path(f->s, fresh, blob, sizeof(blob), &err), 0);
	assert_int_equal(mode_of(blob), 0444);
	assert_int_equal(store_blob_path(f->s, HASH_HELLO, blob, sizeof(blob), &err), 0);
	char out[512];
	assert_int_equal(store_tree_checkout(f->s, hash, out, sizeof(out), &err), 0);
	snprintf(p, sizeof(p), "%s/again.txt", out);
	char buf[16];
	assert_int_equal(read_small_file(p, buf, sizeof(buf)), 6);
}

/* One file of a stored tree, read from its blob without a checkout. */
static void test_tree_file_read(void **state)
{
	struct fx *f = *state;
	struct cdn_err err = { 0 };
	char root[256], hash[STORE_HASH_HEX + 1], blob[512], p[512];
	snprintf(root, sizeof(root), "%s/agent", f->tmp);
	make_tree(root);
	link_at(root, "link.txt", "a.txt");
	import_ok(f, root, hash);
	char *buf = NULL;
	size_t len = 0;
	assert_int_equal(store_tree_file_read(f->s, hash, "a.txt", 64, &buf, &len, &err), 0);
	assert_int_equal(len, 6);
	assert_string_equal(buf, "hello\n");
	free(buf);
	assert_int_equal(store_tree_file_read(f->s, hash, "sub/deep/x.json", 64, &buf, &len, &err),
			 0);
	assert_string_equal(buf, "{}");
	free(buf);
	assert_int_equal(store_tree_file_read(f->s, hash, "nope", 64, &buf, &len, &err), -ENOENT);
	assert_int_equal(store_tree_file_read(f->s, hash, "sub", 64, &buf, &len, &err), -EISDIR);
	assert_int_equal(store_tree_file_read(f->s, hash, "link.txt", 64, &buf, &len, &err),
			 -ELOOP);
	assert_int_equal(store_tree_file_read(f->s, hash, "a.txt", 5, &buf, &len, &err), -EFBIG);
	assert_null(buf);
	/* No checkout was made to read them. */
	snprintf(p, sizeof(p), "%s/trees", f->state);
	assert_int_equal(count_entries(p), 0);
	/* A damaged blob is an error, not other bytes. */
	assert_int_equal(store_blob_path(f->s, HASH_HELLO, blob, sizeof(blob), &err), 0);
	assert_int_equal(chmod(blob, 0644), 0);
	write_file(blob, "HELLO\n", 0444);
	assert_int_equal(store_tree_file_read(f->s, hash, "a.txt", 64, &buf, &len, &err), -EIO);
	assert_null(buf);
}

/* A listing read back is held to the same rules: one written by hand
 * cannot make a checkout whose links lead out. */
static void test_tree_link_listing(void **state)
{
	struct fx *f = *state;
	struct cdn_err err = { 0 };
	char out[512], h[STORE_HASH_HEX + 1], p[512];
	const char *bad[] = {
		"link 11 /etc/passwd a\n",		/* absolute */
		"link 5 ../.. a\n",			/* leaves */
		"dir a\nlink 2 .. a/b\nlink 8 a/b/../x c\n", /* leaves through a link */
		"link 1 b a\n",				/* dangling */
		"link 1 b a\nlink 1 a b\n",		/* loop */
		"link 2 a b\n",				/* length is not the target's */
		"link 03 abc a\n",			/* length not canonical */
		"link 0  a\n",				/* empty target */
		"link 1 x a\nlink 1 a x/y\n",		/* below a link */
		"0644 " HASH_ABC " 3 f\nlink 1 f g/h\n",	/* parent not listed */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		assert_int_equal(store_blob_put(f->s, bad[i], strlen(bad[i]), h, &err), 0);
		if (store_tree_checkout(f->s, h, out, sizeof(out), &err) != -EIO)
			fail_msg("listing %zu was not refused", i);
	}
	/* Links crafted to make the check slow (lookups of a long path, again
	 * and again) hit the bound on the whole tree's work, in well under a
	 * second. */
	char *big = NULL;
	size_t big_len = 0;
	FILE *mem = open_memstream(&big, &big_len);
	char deep[4096] = "";
	for (int lvl = 0; lvl < 15; lvl++) {
		size_t dl = strlen(deep);
		snprintf(deep + dl, sizeof(deep) - dl, "%s%c%0249d", dl ? "/" : "", 'a' + lvl, 0);
		fprintf(mem, "dir %s\n", deep);
	}
	char target[4096] = "";
	while (strlen(target) + 5 < 4000)
		strcat(target, "x/../");
	strcat(target, "x");
	for (int k = 0; k < 40; k++)
		fprintf(mem, "link %zu %s %s/l%02d\n", strlen(target), target, deep, k);
	fprintf(mem, "dir %s/x\n", deep);
	fclose(mem);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(store_blob_put(f->s, big, big_len, h, &err), 0);
	assert_int_equal(store_tree_checkout(f->s, h, out, sizeof(out), &err), -EIO);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_non_null(strstr(err.msg, "takes too long"));
	assert_true(t1.tv_sec - t0.tv_sec < 5);
	free(big);
	snprintf(p, sizeof(p), "%s/trees", f->state);
	assert_int_equal(count_entries(p), 0);
	/* And a good one is checked out with its link. */
	const char *good = "0644 " HASH_ABC " 3 f\nlink 1 f g\n";
	assert_int_equal(store_blob_put(f->s, "abc", 3, h, &err), 0);
	assert_int_equal(store_blob_put(f->s, good, strlen(good), h, &err), 0);
	assert_int_equal(store_tree_checkout(f->s, h, out, sizeof(out), &err), 0);
	char buf[8];
	snprintf(p, sizeof(p), "%s/g", out);
	assert_int_equal(read_small_file(p, buf, sizeof(buf)), 3);
	struct stat st;
	assert_int_equal(lstat(p, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
}

/* --------------------------------------------------------------- registry */

static struct store_item item(enum store_kind kind, const char *name, const char *hash,
			      const char *doc)
{
	struct store_item it = { .kind = kind };
	snprintf(it.workspace, sizeof(it.workspace), "default");
	snprintf(it.name, sizeof(it.name), "%s", name);
	snprintf(it.hash, sizeof(it.hash), "%s", hash);
	if (kind != STORE_ENV)
		snprintf(it.tree, sizeof(it.tree), "%s", HASH_C);
	it.doc = (char *)doc;
	return it;
}

static void test_items(void **state)
{
	struct fx *f = *state;
	struct cdn_err err = { 0 };
	unsigned v;
	bool created;
	struct store_item it = item(STORE_AGENT, "bot", HASH_A, "{\"name\":\"bot\"}");
	assert_int_equal(store_item_put(f->s, &it, &v, &created, &err), 0);
	assert_int_equal(v, 1);
	assert_true(created);
	assert_int_equal(store_item_put(f->s, &it, &v, &created, &err), 0);
	assert_int_equal(v, 1);
	assert_false(created);
	it = item(STORE_AGENT, "bot", HASH_B, "{\"v\":2}");
	assert_int_equal(store_item_put(f->s, &it, &v, &created, &err), 0);
	assert_int_equal(v, 2);
	assert_true(created);
	/* Going back to earlier content is a new version: only the latest
	 * is compared. */
	it = item(STORE_AGENT, "bot", HASH_A, NULL);
	assert_int_equal(store_item_put(f->s, &it, &v, &created, &err), 0);
	assert_int_equal(v, 3);
	assert_true(created);

	struct store_item got;
	assert_int_equal(store_item_get(f->s, STORE_AGENT, "default", "bot", 0, &got, &err), 0);
	assert_int_equal(got.version, 3);
	assert_string_equal(got.hash, HASH_A);
	assert_string_equal(got.tree, HASH_C);
	assert_null(got.doc);
	assert_true(got.created > 0);
	store_item_clear(&got);
	assert_int_equal(store_item_get(f->s, STORE_AGENT, "default", "bot", 2, &got, &err), 0);
	assert_int_equal(got.kind, STORE_AGENT);
	assert_string_equal(got.workspace, "default");
	assert_string_equal(got.name, "bot");
	assert_string_equal(got.hash, HASH_B);
	assert_string_equal(got.doc, "{\"v\":2}");
	store_item_clear(&got);
	assert_int_equal(store_item_get(f->s, STORE_AGENT, "default", "bot", 9, &got, &err),
			 -ENOENT);
	assert_int_equal(store_item_get(f->s, STORE_AGENT, "other", "bot", 0, &got, &err),
			 -ENOENT);
	assert_int_equal(store_item_get(f->s, STORE_CAPABILITY, "default", "bot", 0, &got, &err),
			 -ENOENT);

	/* Kinds and workspaces are separate namespaces. */
	it = item(STORE_CAPABILITY, "bot", HASH_C, NULL);
	assert_int_equal(store_item_put(f->s, &it, &v, &created, &err), 0);
	assert_int_equal(v, 1);
	it = item(STORE_AGENT, "alpha", HASH_B, NULL);
	assert_int_equal(store_item_put(f->s, &it, &v, &created, &err), 0);
	it = item(STORE_AGENT, "zeta", HASH_B, NULL);
	assert_int_equal(store_item_put(f->s, &it, &v, &created, &err), 0);
	snprintf(it.workspace, sizeof(it.workspace), "team2");
	assert_int_equal(store_item_put(f->s, &it, &v, &created, &err), 0);
	assert_int_equal(v, 1);

	struct store_item *list;
	size_t n;
	assert_int_equal(store_item_list(f->s, STORE_AGENT, "default", &list, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_string_equal(list[0].name, "alpha");
	assert_string_equal(list[1].name, "bot");
	assert_int_equal(list[1].version, 3);
	assert_string_equal(list[2].name, "zeta");
	store_items_free(list, n);
	assert_int_equal(store_item_list(f->s, STORE_ENV, "default", &list, &n, &err), 0);
	assert_int_equal(n, 0);
	store_items_free(list, n);

	/* Envs: a document, no tree. */
	it = item(STORE_ENV, "prod", HASH_A, "{\"REGION\":\"eu\"}");
	assert_int_equal(store_item_put(f->s, &it, &v, &created, &err), 0);
	assert_int_equal(store_item_get(f->s, STORE_ENV, "default", "prod", 0, &got, &err), 0);
	assert_string_equal(got.tree, "");
	assert_string_equal(got.doc, "{\"REGION\":\"eu\"}");
	store_item_clear(&got);

	/* Refusals. */
	it = item(STORE_ENV, "prod", HASH_B, NULL);
	snprintf(it.tree, sizeof(it.tree), "%s", HASH_C);
	assert_int_equal(store_item_put(f->s, &it, &v, &created, &err), -EINVAL);
	it = item(STORE_AGENT, "bot", HASH_B, NULL);
	it.tree[0] = '\0';
	assert_int_equal(store_item_put(f->s, &it, &v, &created, &err), -EINVAL);
	it = item(STORE_AGENT, "Bot", HASH_B, NULL);
	assert_int_equal(store_item_put(f->s, &it, &v, &created, &err), -EINVAL);
	it = item(STORE_AGENT, "bot", "nothex", NULL);
	assert_int_equal(store_item_put(f->s, &it, &v, &created, &err), -EINVAL);
	char *huge = malloc(STORE_MAX_MANIFEST + 2);
	memset(huge, 'x', STORE_MAX_MANIFEST + 1);
	huge[STORE_MAX_MANIFEST + 1] = '\0';
	it = item(STORE_AGENT, "bot", HASH_B, huge);
	assert_int_equal(store_item_put(f->s, &it, &v, &created, &err), -E2BIG);
	free(huge);
	assert_int_equal(store_item_get(f->s, STORE_AGENT, "default", "bot", 0, &got, &err), 0);
	assert_int_equal(got.version, 3);
	store_item_clear(&got);
}

static void test_grants(void **state)
{
	struct fx *f = *state;
	struct cdn_err err = { 0 };
	assert_false(store_grant_has(f->s, "default", "bot", "web"));
	assert_int_equal(store_grant_add(f->s, "default", "bot", "web", &err), 0);
	assert_int_equal(store_grant_add(f->s, "default", "bot", "web", &err), 0);
	assert_true(store_grant_has(f->s, "default", "bot", "web"));
	assert_false(store_grant_has(f->s, "default", "bot", "mail"));
	assert_false(store_grant_has(f->s, "default", "other", "web"));
	assert_false(store_grant_has(f->s, "team", "bot", "web"));
	assert_false(store_grant_has(f->s, "default", "bot", "web' OR '1'='1"));
	assert_int_equal(store_grant_add(f->s, "default", "bot", "Web", &err), -EINVAL);
	assert_int_equal(store_grant_add(f->s, "", "bot", "web", &err), -EINVAL);
}

/* ---------------------------------------------------------------- secrets */

static void test_secrets(void **state)
{
	struct fx *f = *state;
	struct cdn_err err = { 0 };
	const uint8_t c1[] = { 1, 2, 3, 0, 5 }, c2[] = { 9, 9 };
	uint8_t *blob;
	size_t len;
	assert_int_equal(store_secret_get(f->s, "default", "OPENAI_API_KEY", &blob, &len, &err),
			 -ENOENT);
	assert_int_equal(store_secret_put(f->s, "default", "OPENAI_API_KEY", c1, sizeof(c1), 3,
					  &err),
			 0);
	assert_int_equal(store_secret_put(f->s, "default", "A_TOKEN", c2, sizeof(c2), 1, &err), 0);
	assert_int_equal(store_secret_get(f->s, "default", "OPENAI_API_KEY", &blob, &len, &err), 0);
	assert_int_equal(len, sizeof(c1));
	assert_memory_equal(blob, c1, sizeof(c1));
	free(blob);

	/* Replacing keeps the creation time. */
	struct store_secret_info *list;
	size_t n;
	assert_int_equal(store_secret_put(f->s, "default", "OPENAI_API_KEY", c2, sizeof(c2), 42,
					  &err),
			 0);
	assert_int_equal(store_secret_get(f->s, "default", "OPENAI_API_KEY", &blob, &len, &err), 0);
	assert_int_equal(len, sizeof(c2));
	free(blob);
	assert_int_equal(store_secret_list(f->s, "default", &list, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].name, "A_TOKEN");
	assert_int_equal(list[0].size, 1);
	assert_string_equal(list[1].name, "OPENAI_API_KEY");
	assert_int_equal(list[1].size, 42);
	assert_true(list[1].created > 0 && list[1].created <= list[1].updated);
	free(list);
	assert_int_equal(store_secret_list(f->s, "team", &list, &n, &err), 0);
	assert_int_equal(n, 0);
	free(list);

	assert_int_equal(store_secret_delete(f->s, "default", "A_TOKEN", &err), 0);
	assert_int_equal(store_secret_delete(f->s, "default", "A_TOKEN", &err), -ENOENT);
	assert_int_equal(store_secret_get(f->s, "default", "A_TOKEN", &blob, &len, &err), -ENOENT);

	assert_int_equal(store_secret_put(f->s, "default", "BAD NAME", c1, 1, 1, &err), -EINVAL);
	assert_int_equal(store_secret_put(f->s, "default", "EMPTY", c1, 0, 0, &err), -EINVAL);
	uint8_t *big = calloc(1, STORE_MAX_SECRET_BLOB + 1);
	assert_int_equal(store_secret_put(f->s, "default", "BIG", big, STORE_MAX_SECRET_BLOB + 1, 1,
					  &err),
			 -E2BIG);
	free(big);
}

static void test_wskeys(void **state)
{
	struct fx *f = *state;
	struct cdn_err err = { 0 };
	const uint8_t k1[] = { 0xde, 0xad, 0xbe, 0xef }, k2[] = { 1 };
	uint8_t *blob;
	size_t len;
	assert_int_equal(store_wskey_get(f->s, "default", &blob, &len, &err), -ENOENT);
	assert_int_equal(store_wskey_put(f->s, "default", k1, sizeof(k1), &err), 0);
	assert_int_equal(store_wskey_get(f->s, "default", &blob, &len, &err), 0);
	assert_int_equal(len, sizeof(k1));
	assert_memory_equal(blob, k1, sizeof(k1));
	free(blob);
	/* Never replaced: secrets sealed with the first would be lost. */
	assert_int_equal(store_wskey_put(f->s, "default", k2, sizeof(k2), &err), -EEXIST);
	assert_int_equal(store_wskey_get(f->s, "default", &blob, &len, &err), 0);
	assert_memory_equal(blob, k1, sizeof(k1));
	free(blob);
	assert_int_equal(store_wskey_put(f->s, "team", k2, sizeof(k2), &err), 0);
	assert_int_equal(store_wskey_put(f->s, "Team", k2, sizeof(k2), &err), -EINVAL);
}

/* ------------------------------------------------------------------- runs */

static struct store_run run(const char *id, const char *agent, int64_t created_ms,
			    enum store_run_status st)
{
	struct store_run r = { .status = st, .exit_code = -1, .created_ms = created_ms };
	snprintf(r.id, sizeof(r.id), "%s", id);
	snprintf(r.workspace, sizeof(r.workspace), "default");
	snprintf(r.agent, sizeof(r.agent), "%s", agent);
	snprintf(r.caller, sizeof(r.caller), "cli:root");
	return r;
}

static void test_runs_crud(void **state)
{
	struct fx *f = *state;
	struct cdn_err err = { 0 };
	struct store_run r = run("r-1", "bot", 1700000000123, RUN_CREATED);
	r.agent_version = 4;
	snprintf(r.agent_hash, sizeof(r.agent_hash), "%s", HASH_A);
	r.supervisor_pid = 1234;
	snprintf(r.supervisor_boot, sizeof(r.supervisor_boot), "boot-x");
	r.input_json = "{\"q\":1}";
	assert_int_equal(store_run_create(f->s, &r, &err), 0);
	assert_int_equal(store_run_create(f->s, &r, &err), -EEXIST);

	struct store_run got;
	assert_int_equal(store_run_get(f->s, "r-1", &got, &err), 0);
	assert_string_equal(got.id, "r-1");
	assert_string_equal(got.workspace, "default");
	assert_string_equal(got.agent, "bot");
	assert_int_equal(got.agent_version, 4);
	assert_string_equal(got.agent_hash, HASH_A);
	assert_int_equal(got.status, RUN_CREATED);
	assert_int_equal(got.exit_code, -1);
	assert_string_equal(got.caller, "cli:root");
	assert_int_equal(got.created_ms, 1700000000123);
	assert_int_equal(got.started_ms, 0);
	assert_int_equal(got.supervisor_pid, 1234);
	assert_string_equal(got.supervisor_boot, "boot-x");
	assert_string_equal(got.input_json, "{\"q\":1}");
	assert_null(got.result_json);
	assert_string_equal(got.error, "");
	store_run_clear(&got);

	r.status = RUN_SUCCEEDED;
	r.exit_code = 0;
	r.started_ms = 1700000000200;
	r.finished_ms = 1700000000900;
	r.result_json = "{\"status\":\"succeeded\"}";
	r.input_json = "{\"ignored\":true}";
	assert_int_equal(store_run_update(f->s, &r, &err), 0);
	assert_int_equal(store_run_get(f->s, "r-1", &got, &err), 0);
	assert_int_equal(got.status, RUN_SUCCEEDED);
	assert_int_equal(got.exit_code, 0);
	assert_int_equal(got.started_ms, 1700000000200);
	assert_int_equal(got.finished_ms, 1700000000900);
	assert_string_equal(got.result_json, "{\"status\":\"succeeded\"}");
	assert_string_equal(got.input_json, "{\"q\":1}");
	store_run_clear(&got);

	struct store_run missing = run("r-404", "bot", 1, RUN_FAILED);
	assert_int_equal(store_run_update(f->s, &missing, &err), -ENOENT);
	assert_int_equal(store_run_get(f->s, "r-404", &got, &err), -ENOENT);
	assert_int_equal(store_run_get(f->s, "../x", &got, &err), -EINVAL);
	struct store_run badid = run("-x", "bot", 1, RUN_FAILED);
	assert_int_equal(store_run_create(f->s, &badid, &err), -EINVAL);
	struct store_run badst = run("r-2", "bot", 1, RUN_FAILED);
	badst.status = (enum store_run_status)42;
	assert_int_equal(store_run_create(f->s, &badst, &err), -EINVAL);

	/* created_ms 0: now. */
	struct store_run now = run("r-now", "bot", 0, RUN_CREATED);
	int64_t before = (int64_t)time(NULL) * 1000 - 1000;
	assert_int_equal(store_run_create(f->s, &now, &err), 0);
	assert_int_equal(store_run_get(f->s, "r-now", &got, &err), 0);
	assert_true(got.created_ms >= before);
	store_run_clear(&got);

	enum store_run_status st;
	for (int i = RUN_CREATED; i <= RUN_CANCELLED; i++) {
		assert_int_equal(store_run_status_parse(store_run_status_name(i), &st), 0);
		assert_int_equal(st, i);
		assert_int_equal(store_run_status_final(i), i != RUN_CREATED && i != RUN_RUNNING);
	}
	assert_string_equal(store_run_status_name(RUN_OOM), "oom");
	assert_int_equal(store_run_status_parse("bogus", &st), -EINVAL);
}

static void expect_page(struct fx *f, const struct store_run_query *q, const char *ids)
{
	struct cdn_err err = { 0 };
	struct store_run *v;
	size_t n;
	assert_int_equal(store_run_list(f->s, q, &v, &n, &err), 0);
	char got[256] = "";
	for (size_t i = 0; i < n; i++) {
		strcat(got, i ? "," : "");
		strcat(got, v[i].id);
	}
	assert_string_equal(got, ids);
	store_runs_free(v, n);
}

static void test_run_claim(void **state)
{
	struct fx *f = *state;
	struct cdn_err err = { 0 };
	struct store_run r = run("q-1", "bot", 1000, RUN_CREATED);
	r.supervisor_pid = 1;
	assert_int_equal(store_run_create(f->s, &r, &err), 0);
	struct store_run c = run("q-1", "bot", 1000, RUN_CREATED);
	snprintf(c.agent_hash, sizeof(c.agent_hash), "%s", HASH_A);
	c.agent_version = 3;
	c.supervisor_pid = (int)getpid();
	/* as a claimer that copied the queued record would carry it */
	c.supervisor_start = cdn_proc_start(1);
	snprintf(c.supervisor_boot, sizeof(c.supervisor_boot), "boot-y");
	c.input_json = "{\"a\":2}";
	/* Another workspace cannot take it. */
	snprintf(c.workspace, sizeof(c.workspace), "other");
	assert_int_equal(store_run_claim(f->s, &c, &err), -ENOENT);
	snprintf(c.workspace, sizeof(c.workspace), "default");
	assert_int_equal(store_run_claim(f->s, &c, &err), 0);
	struct store_run got;
	assert_int_equal(store_run_get(f->s, "q-1", &got, &err), 0);
	assert_int_equal(got.supervisor_pid, (int)getpid());
	/* the claimer's own start time, not the one it carried */
	assert_int_equal(got.supervisor_start, cdn_proc_start((int)getpid()));
	assert_true(got.supervisor_start != cdn_proc_start(1));
	assert_int_equal(got.agent_version, 3);
	assert_string_equal(got.agent_hash, HASH_A);
	assert_string_equal(got.input_json, "{\"a\":2}");
	assert_int_equal(got.created_ms, 1000);
	store_run_clear(&got);
	/* Once it runs, nobody else claims it. */
	c.status = RUN_RUNNING;
	assert_int_equal(store_run_update(f->s, &c, &err), 0);
	assert_int_equal(store_run_claim(f->s, &c, &err), -ENOENT);
	assert_int_equal(store_run_claim(f->s, &(struct store_run){ .id = "nope",
								 .workspace = "default",
								 .agent = "bot" },
					 &err),
			 -ENOENT);
}

static void test_api_keys(void **state)
{
	struct fx *f = *state;
	struct cdn_err err = { 0 };
	struct store_key k = { .id = "cdn_live_abc", .workspace = "default", .name = "first",
			       .role = "owner", .created = 100 };
	snprintf(k.hash, sizeof(k.hash), "%s", HASH_A);
	assert_int_equal(store_key_put(f->s, &k, &err), 0);
	assert_int_equal(store_key_put(f->s, &k, &err), -EEXIST);
	struct store_key m = { .id = "cdn_live_def", .workspace = "team", .name = "ci",
			       .role = "member" };
	snprintf(m.hash, sizeof(m.hash), "%s", HASH_B);
	assert_int_equal(store_key_put(f->s, &m, &err), 0);
	struct store_key bad = m;
	snprintf(bad.id, sizeof(bad.id), "x");
	snprintf(bad.role, sizeof(bad.role), "admin");
	assert_true(store_key_put(f->s, &bad, &err) < 0);

	struct store_key got;
	assert_int_equal(store_key_by_hash(f->s, HASH_B, &got, &err), 0);
	assert_string_equal(got.id, "cdn_live_def");
	assert_string_equal(got.workspace, "team");
	assert_string_equal(got.role, "member");
	assert_false(got.revoked);
	assert_int_equal(store_key_by_hash(f->s, HASH_C, &got, &err), -ENOENT);

	struct store_key *list;
	size_t n;
	assert_int_equal(store_key_list(f->s, "default", &list, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(list[0].id, "cdn_live_abc");
	free(list);
	assert_int_equal(store_key_list(f->s, NULL, &list, &n, &err), 0);
	assert_int_equal(n, 2);
	free(list);

	/* Revoking is per workspace. */
	assert_int_equal(store_key_revoke(f->s, "default", "cdn_live_def", &err), -ENOENT);
	assert_int_equal(store_key_revoke(f->s, "team", "cdn_live_def", &err), 0);
	assert_int_equal(store_key_by_hash(f->s, HASH_B, &got, &err), 0);
	assert_true(got.revoked);
	assert_int_equal(store_key_touch(f->s, "cdn_live_abc", 555, &err), 0);
	assert_int_equal(store_key_by_hash(f->s, HASH_A, &got, &err), 0);
	assert_int_equal(got.last_used, 555);
}

static void test_runs_list(void **state)
{
	struct fx *f = *state;
	struct cdn_err err = { 0 };
	struct store_run rs[] = {
		run("a", "bot", 1000, RUN_SUCCEEDED), run("b", "bot", 2000, RUN_FAILED),
		run("c", "other", 2000, RUN_SUCCEEDED), run("d", "bot", 2000, RUN_SUCCEEDED),
		run("e", "bot", 3000, RUN_RUNNING),
	};
	for (size_t i = 0; i < 5; i++)
		assert_int_equal(store_run_create(f->s, &rs[i], &err), 0);
	struct store_run t2 = run("z", "bot", 5000, RUN_SUCCEEDED);
	snprintf(t2.workspace, sizeof(t2.workspace), "team2");
	assert_int_equal(store_run_create(f->s, &t2, &err), 0);

	struct store_run_query q = { .workspace = "default", .status = -1, .limit = 100 };
	expect_page(f, &q, "e,d,c,b,a");
	/* Keyset paging, two at a time, through equal created_ms. */
	q.limit = 2;
	expect_page(f, &q, "e,d");
	q.before_ms = 2000;
	q.before_id = "d";
	expect_page(f, &q, "c,b");
	q.before_id = "b";
	expect_page(f, &q, "a");
	q.before_ms = 1000;
	q.before_id = "a";
	expect_page(f, &q, "");
	/* Without an id, strictly before the time. */
	q.before_ms = 2000;
	q.before_id = NULL;
	expect_page(f, &q, "a");

	q = (struct store_run_query){ .workspace = "default", .agent = "bot", .status = -1,
				      .limit = 10 };
	expect_page(f, &q, "e,d,b,a");
	q.status = RUN_SUCCEEDED;
	expect_page(f, &q, "d,a");
	q.agent = NULL;
	expect_page(f, &q, "d,c,a");
	q = (struct store_run_query){ .workspace = "team2", .status = -1, .limit = 10 };
	expect_page(f, &q, "z");

	struct store_run *v;
	size_t n;
	q.limit = 0;
	assert_int_equal(store_run_list(f->s, &q, &v, &n, &err), -EINVAL);
	q.limit = 1001;
	assert_int_equal(store_run_list(f->s, &q, &v, &n, &err), -EINVAL);
	q.limit = 1;
	q.status = 77;
	assert_int_equal(store_run_list(f->s, &q, &v, &n, &err), -EINVAL);
	q.status = -1;
	q.workspace = NULL;
	assert_int_equal(store_run_list(f->s, &q, &v, &n, &err), -EINVAL);
}

/* A child that looks like a cordon supervisor (or not) until killed. */
static pid_t spawn_child(const char *comm)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		/* Gone with the test, even when an assertion ends it early. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		prctl(PR_SET_NAME, comm);
		if (write(p[1], "x", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(p[1]);
	char c;
	assert_int_equal(read(p[0], &c, 1), 1);
	close(p[0]);
	return pid;
}

static void kill_child(pid_t pid, bool reap)
{
	kill(pid, SIGKILL);
	if (reap) {
		waitpid(pid, NULL, 0);
	} else {
		/* Wait until it is a zombie, without reaping it. */
		siginfo_t si;
		waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT);
	}
}

static void create_supervised(struct fx *f, const char *id, enum store_run_status st, int pid,
			      const char *boot)
{
	struct cdn_err err = { 0 };
	struct store_run r = run(id, "bot", 1000, st);
	r.supervisor_pid = pid;
	r.supervisor_start = 12345; /* ignored: the store reads the pid's */
	snprintf(r.supervisor_boot, sizeof(r.supervisor_boot), "%s", boot);
	assert_int_equal(store_run_create(f->s, &r, &err), 0);
}

/* What another process that once had the pid would have left. */
static void set_start(struct fx *f, const char *id, uint64_t start)
{
	char sql[160];
	/* The test's own constant id: no quoting needed. */
	snprintf(sql, sizeof(sql), "UPDATE runs SET supervisor_start = %llu WHERE id = '%s'",
		 (unsigned long long)start, id);
	assert_true(db_fixture_exec(f->state, sql));
}

static enum store_run_status status_of(struct fx *f, const char *id)
{
	struct cdn_err err = { 0 };
	struct store_run r;
	assert_int_equal(store_run_get(f->s, id, &r, &err), 0);
	enum store_run_status st = r.status;
	if (st == RUN_ERROR) {
		assert_string_equal(r.error,
				    "the supervisor died (crash or kill) before the run finished");
		assert_true(r.finished_ms > 0);
	}
	store_run_clear(&r);
	return st;
}

static void test_runs_recover(void **state)
{
	struct fx *f = *state;
	struct cdn_err err = { 0 };
	char boot[STORE_BOOT_ID_MAX];
	assert_int_equal(cdn_boot_id(boot, sizeof(boot), &err), 0);
	assert_int_equal(strlen(boot), 36);

	pid_t live = spawn_child("cordon");
	pid_t live_full = spawn_child("cordon-full");
	pid_t live_api = spawn_child("cordon-api");
	pid_t dead = spawn_child("cordon");
	kill_child(dead, true);
	pid_t zombie = spawn_child("cordon");
	kill_child(zombie, false);

	create_supervised(f, "live", RUN_RUNNING, live, boot);
	create_supervised(f, "live-full", RUN_CREATED, live_full, boot);
	create_supervised(f, "live-api", RUN_CREATED, live_api, boot);
	create_supervised(f, "dead", RUN_RUNNING, dead, boot);
	create_supervised(f, "zombie", RUN_RUNNING, zombie, boot);
	create_supervised(f, "other-boot", RUN_RUNNING, live, "0a0a0a0a-other-boot");
	/* This test's own pid is alive, but its comm is not cordon's: a
	 * reused pid. */
	create_supervised(f, "reused", RUN_RUNNING, (int)getpid(), boot);
	/* Created with no supervisor: queued for a worker (docs/deploy.md),
	 * whose lease judges it once one takes it. Running with none: dead. */
	create_supervised(f, "no-pid", RUN_CREATED, 0, boot);
	create_supervised(f, "no-pid-running", RUN_RUNNING, 0, boot);
	create_supervised(f, "done", RUN_SUCCEEDED, dead, boot);
	/* A live cordon, but not the process that took the run: its pid was
	 * reused after the supervisor died. Its start time tells. */
	uint64_t live_start = cdn_proc_start(live);
	assert_true(live_start > 0);
	create_supervised(f, "reused-by-cordon", RUN_RUNNING, live, boot);
	set_start(f, "reused-by-cordon", live_start + 1);
	/* The store recorded the start time itself. */
	struct store_run got;
	assert_int_equal(store_run_get(f->s, "live", &got, &err), 0);
	assert_int_equal(got.supervisor_start, live_start);
	store_run_clear(&got);

	assert_int_equal(store_runs_recover(f->s, &err), 6);
	assert_int_equal(status_of(f, "reused-by-cordon"), RUN_ERROR);
	assert_int_equal(status_of(f, "live"), RUN_RUNNING);
	assert_int_equal(status_of(f, "live-full"), RUN_CREATED);
	assert_int_equal(status_of(f, "live-api"), RUN_CREATED);
	assert_int_equal(status_of(f, "dead"), RUN_ERROR);
	assert_int_equal(status_of(f, "zombie"), RUN_ERROR);
	assert_int_equal(status_of(f, "other-boot"), RUN_ERROR);
	assert_int_equal(status_of(f, "reused"), RUN_ERROR);
	assert_int_equal(status_of(f, "no-pid"), RUN_CREATED);
	assert_int_equal(status_of(f, "no-pid-running"), RUN_ERROR);
	assert_int_equal(status_of(f, "done"), RUN_SUCCEEDED);
	assert_int_equal(store_runs_recover(f->s, &err), 0);

	kill_child(live, true);
	assert_int_equal(store_runs_recover(f->s, &err), 1);
	assert_int_equal(status_of(f, "live"), RUN_ERROR);
	assert_int_equal(status_of(f, "live-full"), RUN_CREATED);
	kill_child(live_full, true);
	kill_child(live_api, true);
	waitpid(zombie, NULL, 0);
	assert_int_equal(store_runs_recover(f->s, &err), 2);
}

/* A store from schema 3 gains the start-time column; its runs have none
 * (0), and recovery then judges them as before, without it. */
static void test_schema_3_upgrade(void **state)
{
	struct fx *f = *state;
	struct cdn_err err = { 0 };
	if (db_fixture_pg())
		skip(); /* SQLite's schema history: Postgres starts at the end of it */
	char boot[STORE_BOOT_ID_MAX];
	assert_int_equal(cdn_boot_id(boot, sizeof(boot), &err), 0);
	pid_t live = spawn_child("cordon");
	create_supervised(f, "old", RUN_RUNNING, live, boot);
	store_close(f->s);
	f->s = NULL;

	sqlite3 *db;
	char p[256];
	snprintf(p, sizeof(p), "%s/cordon.db", f->state);
	assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
				      "ALTER TABLE runs DROP COLUMN supervisor_start;"
				      "ALTER TABLE runs DROP COLUMN audit_head;"
				      "ALTER TABLE runs DROP COLUMN audit_records;"
				      "ALTER TABLE runs DROP COLUMN stdout_sha256;"
				      "ALTER TABLE runs DROP COLUMN stderr_sha256;"
				      "DROP INDEX runs_finished; DROP TABLE run_marks;"
				      "DROP TABLE retention; DROP TABLE schedules; DROP TABLE services;"
				      "PRAGMA user_version = 3;",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);

	assert_int_equal(store_open(f->state, &f->s, &err), 0);
	struct store_run got;
	assert_int_equal(store_run_get(f->s, "old", &got, &err), 0);
	assert_int_equal(got.supervisor_start, 0);
	store_run_clear(&got);
	assert_int_equal(store_runs_recover(f->s, &err), 0);
	assert_int_equal(status_of(f, "old"), RUN_RUNNING);
	kill_child(live, true);
	assert_int_equal(store_runs_recover(f->s, &err), 1);
	assert_int_equal(status_of(f, "old"), RUN_ERROR);
}

/* Schema 5: a run's audit head, anchored as its log grows, and its output
 * hashes; a store from schema 4 gains them empty. */
static void test_audit_anchor(void **state)
{
	struct fx *f = *state;
	struct cdn_err err = { 0 };
	char boot[STORE_BOOT_ID_MAX];
	assert_int_equal(cdn_boot_id(boot, sizeof(boot), &err), 0);
	create_supervised(f, "anch", RUN_RUNNING, getpid(), boot);
	const char *h1 = "1111111111111111111111111111111111111111111111111111111111111111";
	assert_int_equal(store_run_anchor(f->s, "anch", h1, 3, &err), 0);
	assert_true(store_run_anchor(f->s, "anch", "not-hex", 4, &err) < 0);
	assert_int_equal(store_run_anchor(f->s, "nope", h1, 1, &err), -ENOENT);
	struct store_run got;
	assert_int_equal(store_run_get(f->s, "anch", &got, &err), 0);
	assert_string_equal(got.audit_head, h1);
	assert_int_equal(got.audit_records, 3);
	assert_string_equal(got.stdout_sha256, "");
	snprintf(got.stdout_sha256, sizeof(got.stdout_sha256), "%s", h1);
	got.status = RUN_SUCCEEDED;
	assert_int_equal(store_run_update(f->s, &got, &err), 0);
	store_run_clear(&got);
	assert_int_equal(store_run_get(f->s, "anch", &got, &err), 0);
	assert_string_equal(got.stdout_sha256, h1);
	assert_string_equal(got.audit_head, h1); /* an update leaves the anchor alone */
	store_run_clear(&got);
	if (db_fixture_pg())
		return; /* below: an upgrade from SQLite's schema 4 */

	store_close(f->s);
	f->s = NULL;
	sqlite3 *db;
	char p[256];
	snprintf(p, sizeof(p), "%s/cordon.db", f->state);
	assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
				      "ALTER TABLE runs DROP COLUMN audit_head;"
				      "ALTER TABLE runs DROP COLUMN audit_records;"
				      "ALTER TABLE runs DROP COLUMN stdout_sha256;"
				      "ALTER TABLE runs DROP COLUMN stderr_sha256;"
				      "DROP INDEX runs_finished; DROP TABLE run_marks;"
				      "DROP TABLE retention; DROP TABLE schedules; DROP TABLE services;"
				      "PRAGMA user_version = 4;",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(store_open(f->state, &f->s, &err), 0);
	assert_int_equal(store_run_get(f->s, "anch", &got, &err), 0);
	assert_string_equal(got.audit_head, "");
	assert_int_equal(got.audit_records, 0);
	store_run_clear(&got);
}

/* Several processes on one new store at once, as `cordon run`s and
 * `cordon serve` are: no lost writes, no duplicate versions, no "database
 * is locked". */
static void test_concurrent_processes(void **state)
{
	struct fx *f = *state;
	enum { PROCS = 6, EACH = 15 };
	char dir[160];
	snprintf(dir, sizeof(dir), "%s/shared", f->tmp);
	if (db_fixture_pg()) {
		/* An empty database: the children race to make the schema too. */
		store_close(f->s);
		f->s = NULL;
		assert_int_equal(db_fixture_drop(), 0);
	}
	pid_t pids[PROCS];
	for (int p = 0; p < PROCS; p++) {
		pids[p] = fork();
		assert_true(pids[p] >= 0);
		if (pids[p] > 0)
			continue;
		struct cdn_err err = { 0 };
		struct store *s;
		if (store_open(dir, &s, &err) < 0) {
			fprintf(stderr, "child %d: %s\n", p, err.msg);
			_exit(1);
		}
		for (int i = 0; i < EACH; i++) {
			char id[32], hex[STORE_HASH_HEX + 1];
			snprintf(id, sizeof(id), "p%d-%d", p, i);
			struct store_run r = run(id, "bot", 1000 + i, RUN_RUNNING);
			/* Distinct content per writer and step: every put is a
			 * new version. */
			if (store_blob_put(s, id, strlen(id), hex, &err) < 0)
				_exit(2);
			struct store_item it = item(STORE_AGENT, "bot", hex, NULL);
			unsigned v;
			bool created;
			if (store_run_create(s, &r, &err) < 0 ||
			    store_item_put(s, &it, &v, &created, &err) < 0 || !created)
				_exit(3);
		}
		store_close(s);
		_exit(0);
	}
	/* All reaped before any assertion, so none outlives a failure. */
	int status[PROCS];
	for (int p = 0; p < PROCS; p++)
		assert_int_equal(waitpid(pids[p], &status[p], 0), pids[p]);
	for (int p = 0; p < PROCS; p++) {
		assert_true(WIFEXITED(status[p]));
		assert_int_equal(WEXITSTATUS(status[p]), 0);
	}
	struct cdn_err err = { 0 };
	struct store *s;
	assert_int_equal(store_open(dir, &s, &err), 0);
	struct store_item got;
	assert_int_equal(store_item_get(s, STORE_AGENT, "default", "bot", 0, &got, &err), 0);
	assert_int_equal(got.version, PROCS * EACH);
	store_item_clear(&got);
	struct store_run_query q = { .workspace = "default", .status = RUN_RUNNING,
				     .limit = 1000 };
	struct store_run *v;
	size_t n;
	assert_int_equal(store_run_list(s, &q, &v, &n, &err), 0);
	assert_int_equal(n, PROCS * EACH);
	store_runs_free(v, n);
	store_close(s);
}

/* Services: made with their checks; every change repeats what it read, so
 * of two nodes one wins; pause and resume retry over changes. */
static void test_services(void **state)
{
	struct fx *f = *state;
	struct cdn_err err = { 0 };
	struct store_item it = item(STORE_AGENT, "bot", HASH_A, "{\"name\":\"bot\"}");
	assert_int_equal(store_item_put(f->s, &it, &it.version, NULL, &err), 0);
	struct store_service sv = { .workspace = "default", .name = "svc", .agent = "bot",
				    .created_by = "test" };
	sv.env_json = strdup("{\"MODE\":\"blue\"}");
	sv.secrets_json = strdup("[\"TOKEN\"]");
	assert_int_equal(store_service_new(f->s, &sv, 1000, &err), 0);
	assert_int_equal(store_service_new(f->s, &sv, 1000, &err), -EEXIST);
	store_service_clear(&sv);
	struct store_service bad = { .workspace = "default", .name = "x", .agent = "ghost",
				     .created_by = "t" };
	assert_int_equal(store_service_new(f->s, &bad, 1000, &err), -ENOENT);
	bad.env_json = strdup("[1]");
	snprintf(bad.agent, sizeof(bad.agent), "bot");
	assert_int_equal(store_service_new(f->s, &bad, 1000, &err), -EINVAL);
	store_service_clear(&bad);

	/* A start: claimed, then the run set; a second node that read the
	 * same row changes nothing. */
	struct store_service a, b;
	assert_int_equal(store_service_get(f->s, "default", "svc", &a, &err), 0);
	assert_int_equal(store_service_get(f->s, "default", "svc", &b, &err), 0);
	assert_string_equal(a.env_json, "{\"MODE\":\"blue\"}");
	int64_t g = a.gen;
	a.next_ms = -5000;
	assert_int_equal(store_service_update(f->s, &a, &err), 1);
	assert_int_equal(a.gen, g + 1);
	b.next_ms = -5001;
	assert_int_equal(store_service_update(f->s, &b, &err), 0);
	snprintf(a.current_run, sizeof(a.current_run), "run_0123456789abcdef01234567");
	a.next_ms = 0;
	a.starts = 1;
	assert_int_equal(store_service_update(f->s, &a, &err), 1);
	/* A pause in between: an end counted from the older read loses. */
	struct store_service old = a;
	old.input_json = old.env_json = old.secrets_json = NULL;
	char run[STORE_RUN_ID_MAX + 1];
	assert_int_equal(store_service_pause(f->s, "default", "svc", true, "by me", run, &err), 0);
	assert_string_equal(run, "run_0123456789abcdef01234567");
	old.current_run[0] = '\0';
	assert_int_equal(store_service_update(f->s, &old, &err), 0);
	assert_int_equal(store_service_pause(f->s, "default", "svc", false, NULL, run, &err), 0);
	store_service_clear(&a);
	assert_int_equal(store_service_get(f->s, "default", "svc", &a, &err), 0);
	assert_false(a.paused);
	/* An end, counted once. */
	a.current_run[0] = '\0';
	snprintf(a.last_run, sizeof(a.last_run), "run_0123456789abcdef01234567");
	snprintf(a.exit_times, sizeof(a.exit_times), "6000");
	snprintf(a.last_exit, sizeof(a.last_exit), "run x failed\n(exit 1)");
	a.exits = 1;
	a.next_ms = 7000;
	store_service_clear(&b);
	b = a;
	assert_int_equal(store_service_update(f->s, &a, &err), 1);
	assert_int_equal(store_service_update(f->s, &b, &err), 0);
	snprintf(a.exit_times, sizeof(a.exit_times), "1;DROP");
	assert_int_equal(store_service_update(f->s, &a, &err), -EINVAL);
	b.input_json = b.env_json = b.secrets_json = NULL;
	store_service_clear(&a);
	store_service_clear(&b);

	/* Pause keeps the run to stop; resume clears the count and backoff. */
	assert_int_equal(store_service_pause(f->s, "default", "svc", true, "by me", run, &err), 0);
	assert_int_equal(store_service_get(f->s, "default", "svc", &a, &err), 0);
	assert_true(a.paused);
	assert_string_equal(a.pause_reason, "by me");
	assert_string_equal(a.last_exit, "run x failed?(exit 1)");
	json_t *j = store_service_json(&a, 8000);
	assert_string_equal(json_string_value(json_object_get(j, "state")), "paused");
	json_decref(j);
	store_service_clear(&a);
	assert_int_equal(store_service_pause(f->s, "default", "svc", false, NULL, run, &err), 0);
	assert_int_equal(store_service_get(f->s, "default", "svc", &a, &err), 0);
	assert_false(a.paused);
	assert_string_equal(a.exit_times, "");
	assert_int_equal(a.next_ms, 0);
	assert_int_equal(a.exits, 1);
	store_service_clear(&a);

	struct store_service *v = NULL;
	size_t n = 0;
	assert_int_equal(store_service_list(f->s, "default", &v, &n, &err), 0);
	assert_int_equal(n, 1);
	store_services_free(v, n);
	assert_int_equal(store_service_list(f->s, "other", &v, &n, &err), 0);
	assert_int_equal(n, 0);
	store_services_free(v, n);
	assert_int_equal(store_service_delete(f->s, "default", "svc", run, &err), 0);
	assert_int_equal(store_service_delete(f->s, "default", "svc", run, &err), -ENOENT);
	assert_int_equal(store_service_pause(f->s, "default", "svc", true, NULL, run, &err),
			 -ENOENT);
}

static void test_retention_ages(void **state)
{
	struct fx *f = *state;
	struct cdn_err err = { 0 };
	int64_t v;
	assert_int_equal(store_age_parse("90d", &v, &err), 0);
	assert_int_equal(v, 90 * 86400);
	assert_int_equal(store_age_parse("12h", &v, &err), 0);
	assert_int_equal(v, 12 * 3600);
	assert_int_equal(store_age_parse("forever", &v, &err), 0);
	assert_int_equal(v, 0);
	assert_true(store_age_parse("0s", &v, &err) < 0);
	assert_true(store_age_parse("500ms", &v, &err) < 0);
	assert_true(store_age_parse("-1d", &v, &err) < 0);
	assert_true(store_age_parse("36600d", &v, &err) == 0);
	assert_true(store_age_parse("36700d", &v, &err) < 0);
	assert_true(store_age_parse("90days", &v, &err) < 0);

	/* The operator's default and bound; a workspace's own age within it. */
	struct store_retention op = { 0 }, ws = { 0 }, got;
	op.age_s[RETAIN_RECORDS] = 90 * 86400;
	op.max_s[RETAIN_RECORDS] = 365 * 86400;
	op.age_s[RETAIN_FILES] = 30 * 86400;
	assert_int_equal(store_retention_put(f->s, "", &op, STORE_RETAIN_ALL, &err), 0);
	ws.age_s[RETAIN_RECORDS] = 400 * 86400; /* over the bound: clamped */
	ws.age_s[RETAIN_ARTIFACTS] = 7 * 86400;
	assert_int_equal(store_retention_put(f->s, "team", &ws, STORE_RETAIN_ALL, &err), 0);
	assert_int_equal(store_retention_get(f->s, "team", &got, &err), 0);
	assert_memory_equal(&got, &ws, sizeof(ws));
	assert_int_equal(store_retention_get(f->s, "nobody", &got, &err), 0);
	for (int k = 0; k < RETAIN_N; k++)
		assert_int_equal(got.age_s[k] | got.max_s[k], 0);

	int64_t eff[RETAIN_N];
	store_retention_effective(&op, &ws, eff);
	assert_int_equal(eff[RETAIN_RECORDS], 365 * 86400);
	assert_int_equal(eff[RETAIN_FILES], 30 * 86400);
	assert_int_equal(eff[RETAIN_ARTIFACTS], 7 * 86400);
	/* Evidence has no age of its own: it goes with the record. */
	assert_int_equal(eff[RETAIN_EVIDENCE], 365 * 86400);
	store_retention_effective(&op, NULL, eff);
	assert_int_equal(eff[RETAIN_RECORDS], 90 * 86400);

	/* Only the operator sets a bound, and its default sits within it. */
	struct store_retention bad = { 0 };
	bad.max_s[RETAIN_FILES] = 10;
	assert_int_equal(store_retention_put(f->s, "team", &bad, STORE_RETAIN_ALL, &err), -EINVAL);
	bad.age_s[RETAIN_FILES] = 20;
	assert_int_equal(store_retention_put(f->s, "", &bad, STORE_RETAIN_ALL, &err), -EINVAL);
	bad = (struct store_retention){ 0 };
	bad.age_s[RETAIN_EVIDENCE] = -5;
	assert_int_equal(store_retention_put(f->s, "team", &bad, STORE_RETAIN_ALL, &err), -ERANGE);
	/* A refused put changed nothing. */
	assert_int_equal(store_retention_get(f->s, "team", &got, &err), 0);
	assert_memory_equal(&got, &ws, sizeof(ws));
	/* All zeros deletes the row. */
	assert_int_equal(store_retention_put(f->s, "team", &(struct store_retention){ 0 }, STORE_RETAIN_ALL, &err),
			 0);
	assert_int_equal(store_retention_get(f->s, "team", &got, &err), 0);
	assert_int_equal(got.age_s[RETAIN_ARTIFACTS], 0);

	/* Two writers that read the same row and each change one kind: both
	 * changes stay (a put writes only the fields it names). */
	struct store_retention a = { 0 }, b = { 0 };
	a.age_s[RETAIN_FILES] = 3600;
	b.age_s[RETAIN_ARTIFACTS] = 7200;
	assert_int_equal(store_retention_put(f->s, "team", &a, STORE_RETAIN_AGE(RETAIN_FILES), &err),
			 0);
	assert_int_equal(
	    store_retention_put(f->s, "team", &b, STORE_RETAIN_AGE(RETAIN_ARTIFACTS), &err), 0);
	assert_int_equal(store_retention_get(f->s, "team", &got, &err), 0);
	assert_int_equal(got.age_s[RETAIN_FILES], 3600);
	assert_int_equal(got.age_s[RETAIN_ARTIFACTS], 7200);
	/* Unsetting both, one at a time, leaves no row. */
	a.age_s[RETAIN_FILES] = b.age_s[RETAIN_ARTIFACTS] = 0;
	assert_int_equal(store_retention_put(f->s, "team", &a, STORE_RETAIN_AGE(RETAIN_FILES), &err),
			 0);
	assert_int_equal(
	    store_retention_put(f->s, "team", &b, STORE_RETAIN_AGE(RETAIN_ARTIFACTS), &err), 0);
	assert_int_equal(store_retention_get(f->s, "team", &got, &err), 0);
	for (int k = 0; k < RETAIN_N; k++)
		assert_int_equal(got.age_s[k] | got.max_s[k], 0);
	assert_int_equal(store_retention_put(f->s, "team", &a, 0, &err), -EINVAL);
}

static void test_retention_due_and_holds(void **state)
{
	struct fx *f = *state;
	struct cdn_err err = { 0 };
	struct store_run rs[] = {
		run("old", "bot", 1000, RUN_SUCCEEDED), run("mid", "bot", 2000, RUN_FAILED),
		run("new", "bot", 9000, RUN_SUCCEEDED), run("live", "bot", 500, RUN_RUNNING),
	};
	rs[0].finished_ms = 1500;
	rs[1].finished_ms = 2500;
	rs[2].finished_ms = 9500;
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(store_run_create(f->s, &rs[i], &err), 0);
	struct store_run other = run("else", "bot", 100, RUN_SUCCEEDED);
	other.finished_ms = 200;
	snprintf(other.workspace, sizeof(other.workspace), "team2");
	assert_int_equal(store_run_create(f->s, &other, &err), 0);

	char(*ids)[STORE_RUN_ID_MAX + 1] = NULL;
	size_t n = 0;
	/* Oldest first; a run not finished is never due; other workspaces not. */
	assert_int_equal(store_prune_due(f->s, "default", RETAIN_FILES, 5000, 10, &ids, &n, &err),
			 0);
	assert_int_equal(n, 2);
	assert_string_equal(ids[0], "old");
	assert_string_equal(ids[1], "mid");
	free(ids);

	/* A hold takes a run out of every kind; the reason is kept. */
	assert_int_equal(store_run_hold(f->s, "default", "old", "incident 42", "ops", &err), 0);
	assert_int_equal(store_run_hold(f->s, "team2", "mid", "wrong ws", "ops", &err), -ENOENT);
	assert_true(store_run_hold(f->s, "default", "mid", "", "ops", &err) < 0);
	assert_true(store_run_hold(f->s, "default", "mid", "bad\nreason", "ops", &err) < 0);
	struct store_run_marks m;
	/* A held run listed before its hold is still not pruned: the
	 * statement that would prune it checks the hold. */
	assert_int_equal(store_run_delete(f->s, "old", &err), -EBUSY);
	assert_int_equal(store_run_mark_pruned(f->s, "old", RETAIN_FILES, 7000, &err), -EBUSY);
	assert_int_equal(store_run_marks_get(f->s, "old", &m, &err), 0);
	assert_int_equal(m.pruned_ms[RETAIN_FILES], 0);
	assert_string_equal(m.hold_reason, "incident 42");
	assert_string_equal(m.hold_by, "ops");
	assert_true(m.hold_ms > 0);
	for (int k = 0; k < RETAIN_N; k++) {
		ids = NULL;
		assert_int_equal(store_prune_due(f->s, "default", (enum store_retain)k, 5000, 10,
						 &ids, &n, &err),
				 0);
		assert_int_equal(n, 1);
		assert_string_equal(ids[0], "mid");
		free(ids);
	}

	/* A kind marked pruned is no longer due for that kind, but the record
	 * still is. */
	assert_int_equal(store_run_mark_pruned(f->s, "mid", RETAIN_FILES, 6000, &err), 0);
	ids = NULL;
	assert_int_equal(store_prune_due(f->s, "default", RETAIN_FILES, 5000, 10, &ids, &n, &err),
			 0);
	assert_int_equal(n, 0);
	free(ids);
	ids = NULL;
	assert_int_equal(store_prune_due(f->s, "default", RETAIN_RECORDS, 5000, 10, &ids, &n,
					 &err),
			 0);
	assert_int_equal(n, 1);
	free(ids);
	assert_int_equal(store_run_marks_get(f->s, "mid", &m, &err), 0);
	assert_int_equal(m.pruned_ms[RETAIN_FILES], 6000);
	assert_int_equal(m.hold_ms, 0);

	/* Released, the held run is due again; releasing twice is no error. */
	assert_int_equal(store_run_release(f->s, "default", "old", &err), 0);
	assert_int_equal(store_run_release(f->s, "default", "old", &err), 0);
	ids = NULL;
	assert_int_equal(store_prune_due(f->s, "default", RETAIN_EVIDENCE, 5000, 10, &ids, &n,
					 &err),
			 0);
	assert_int_equal(n, 2);
	free(ids);

	/* Deleting the record takes its marks with it. */
	assert_int_equal(store_run_delete(f->s, "mid", &err), 0);
	struct store_run got;
	assert_int_equal(store_run_get(f->s, "mid", &got, &err), -ENOENT);
	assert_int_equal(store_run_marks_get(f->s, "mid", &m, &err), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_layout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_layout_paths, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_keeps_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tmp_cleanup, setup, teardown),
		cmocka_unit_test(test_default_dir),
		cmocka_unit_test(test_name_checks),
		cmocka_unit_test_setup_teardown(test_write_atomic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blobs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blob_put_fd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blob_export, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tree_import, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tree_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tree_checkout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tree_checkout_damaged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tree_links, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tree_link_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tree_link_listing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tree_blobs_batched, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tree_file_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_items, setup, teardown),
		cmocka_unit_test_setup_teardown(test_grants, setup, teardown),
		cmocka_unit_test_setup_teardown(test_secrets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wskeys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_runs_crud, setup, teardown),
		cmocka_unit_test_setup_teardown(test_runs_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_run_claim, setup, teardown),
		cmocka_unit_test_setup_teardown(test_api_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_runs_recover, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audit_anchor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_schema_3_upgrade, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_processes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retention_ages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_services, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retention_due_and_holds, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
