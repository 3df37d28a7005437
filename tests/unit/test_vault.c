/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The vault over a real store in a temp directory: round trips, what is on
 * disk, master key sources and their refusals, and ciphertexts that were
 * moved or altered.
 */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "store/store.h"
#include "db_fixture.h"
#include "vault/vault.h"

#define WS STORE_DEFAULT_WORKSPACE

/* ---------------------------------------------------------------------------
 * Fixture: a fresh store in /tmp, no CORDON_MASTER_KEY.
 */

struct fx {
	char dir[64];
	char keyfile[128];
	struct store *s;
	struct vault *v;
};

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void rm_rf(const char *dir)
{
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void store_up(struct fx *f)
{
	struct cdn_err err = { 0 };
	if (store_open(f->dir, &f->s, &err) != 0)
		fail_msg("store_open %s: %s", f->dir, err.msg);
}

static void store_down(struct fx *f)
{
	vault_close(f->v);
	f->v = NULL;
	store_close(f->s);
	f->s = NULL;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/cordon-test-vault-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->keyfile, sizeof(f->keyfile), "%s/master.key", f->dir);
	unsetenv("CORDON_MASTER_KEY");
	if (db_fixture_reset() < 0)
		return -1;
	store_up(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	store_down(f);
	rm_rf(f->dir);
	free(f);
	unsetenv("CORDON_MASTER_KEY");
	return 0;
}

static struct vault *open_vault(struct fx *f)
{
	struct cdn_err err = { 0 };
	vault_close(f->v);
	f->v = NULL;
	if (vault_open(f->s, &f->v, &err) != 0)
		fail_msg("vault_open: %s", err.msg);
	assert_non_null(f->v);
	return f->v;
}

/* vault_open must fail with code, and the message must hold `part`. */
static void open_refused(struct fx *f, int code, const char *part)
{
	struct cdn_err err = { 0 };
	struct vault *v = (struct vault *)&err; /* must come back NULL */
	int r = vault_open(f->s, &v, &err);
	if (r == 0)
		fail_msg("vault_open succeeded, expected \"%s\"", part);
	assert_null(v);
	assert_int_equal(r, -code);
	assert_int_equal(err.code, code);
	if (!strstr(err.msg, part))
		fail_msg("error \"%s\" does not mention \"%s\"", err.msg, part);
}

static void set_ok(struct vault *v, const char *ws, const char *name, const char *value)
{
	struct cdn_err err = { 0 };
	if (vault_set(v, ws, name, (const uint8_t *)value, strlen(value), &err) != 0)
		fail_msg("vault_set %s/%s: %s", ws, name, err.msg);
}

static void get_eq(struct vault *v, const char *ws, const char *name, const char *want)
{
	struct cdn_err err = { 0 };
	uint8_t *val = NULL;
	size_t len = 0;
	if (vault_get(v, ws, name, &val, &len, &err) != 0)
		fail_msg("vault_get %s/%s: %s", ws, name, err.msg);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(val, want, len);
	assert_int_equal(val[len], '\0');
	vault_value_free(val, len);
}

/* vault_get must fail with code, give no value, and not print the value. */
static void get_refused(struct vault *v, const char *ws, const char *name, int code,
			const char *part, const char *value)
{
	struct cdn_err err = { 0 };
	uint8_t *val = (uint8_t *)&err;
	size_t len = 7;
	int r = vault_get(v, ws, name, &val, &len, &err);
	if (r == 0)
		fail_msg("vault_get %s/%s gave a value, expected \"%s\"", ws, name, part);
	assert_int_equal(r, -code);
	assert_null(val);
	assert_int_equal(len, 0);
	if (part && !strstr(err.msg, part))
		fail_msg("error \"%s\" does not mention \"%s\"", err.msg, part);
	if (value)
		assert_null(strstr(err.msg, value));
}

static char *hex_of(const uint8_t *k, size_t n, bool upper)
{
	char *h = malloc(2 * n + 1);
	sodium_bin2hex(h, 2 * n + 1, k, n);
	for (size_t i = 0; upper && h[i]; i++)
		if (h[i] >= 'a' && h[i] <= 'f')
			h[i] = (char)(h[i] - 'a' + 'A');
	return h;
}

static char *b64_of(const uint8_t *k, size_t n, int variant)
{
	size_t cap = sodium_base64_ENCODED_LEN(n, variant);
	char *b = malloc(cap);
	sodium_bin2base64(b, cap, k, n, variant);
	return b;
}

/* Reads a whole file; an absent file reads as empty. */
static uint8_t *slurp(const char *path, size_t *len)
{
	*len = 0;
	FILE *fp = fopen(path, "rb");
	if (!fp)
		return NULL;
	size_t cap = 1 << 16;
	uint8_t *p = malloc(cap);
	size_t n;
	while ((n = fread(p + *len, 1, cap - *len, fp)) > 0) {
		*len += n;
		if (*len == cap)
			p = realloc(p, cap *= 2);
	}
	fclose(fp);
	return p;
}

/* Whether needle occurs in the database, its WAL or its shared memory. */
static bool in_db_files(const struct fx *f, const void *needle, size_t n)
{
	static const char *const suffixes[] = { "", "-wal", "-shm", "-journal" };
	bool found = false;
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		char path[160];
		snprintf(path, sizeof(path), "%s/cordon.db%s", f->dir, suffixes[i]);
		size_t len;
		uint8_t *p = slurp(path, &len);
		if (p && memmem(p, len, needle, n))
			found = true;
		free(p);
	}
	return found;
}

static void checkpoint(const struct fx *f)
{
	char path[160];
	sqlite3 *db = NULL;
	snprintf(path, sizeof(path), "%s/cordon.db", f->dir);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	int log = -1, done = -1;
	assert_int_equal(
	    sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_TRUNCATE, &log, &done),
	    SQLITE_OK);
	sqlite3_close(db);
}

/* Replaces (or with blob NULL, deletes) a workspace key behind the
 * store's back. */
static void sql_wskey(const struct fx *f, const char *ws, const uint8_t *blob, size_t len)
{
	if (db_fixture_pg()) {
		PGconn *c = PQconnectdb(store_default_database());
		assert_int_equal(PQstatus(c), CONNECTION_OK);
		const char *vals[2] = { ws, (const char *)blob };
		int lens[2] = { 0, (int)len }, fmts[2] = { 0, 1 };
		PGresult *res = PQexecParams(
		    c, blob ? "UPDATE workspace_keys SET wrapped = $2 WHERE workspace = $1"
			    : "DELETE FROM workspace_keys WHERE workspace = $1",
		    blob ? 2 : 1, NULL, vals, lens, fmts, 0);
		assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
		assert_string_equal(PQcmdTuples(res), "1");
		PQclear(res);
		PQfinish(c);
		return;
	}
	char path[160];
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	snprintf(path, sizeof(path), "%s/cordon.db", f->dir);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	const char *sql = blob ? "UPDATE workspace_keys SET wrapped = ?2 WHERE workspace = ?1"
			       : "DELETE FROM workspace_keys WHERE workspace = ?1";
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, ws, -1, SQLITE_STATIC);
	if (blob)
		sqlite3_bind_blob(st, 2, blob, (int)len, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	assert_int_equal(sqlite3_changes(db), 1);
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static uint8_t *blob_of(struct fx *f, const char *ws, const char *name, size_t *len)
{
	struct cdn_err err = { 0 };
	uint8_t *blob = NULL;
	if (store_secret_get(f->s, ws, name, &blob, len, &err) != 0)
		fail_msg("store_secret_get %s/%s: %s", ws, name, err.msg);
	return blob;
}

static void blob_put(struct fx *f, const char *ws, const char *name, const uint8_t *blob,
		     size_t len, size_t plain_len)
{
	struct cdn_err err = { 0 };
	if (store_secret_put(f->s, ws, name, blob, len, plain_len, &err) != 0)
		fail_msg("store_secret_put %s/%s: %s", ws, name, err.msg);
}

/* ---------------------------------------------------------------------------
 * Round trips
 */

static void test_roundtrip(void **state)
{
	struct fx *f = *state;
	struct vault *v = open_vault(f);
	struct cdn_err err = { 0 };

	set_ok(v, WS, "OPENAI_API_KEY", "sk-test-value-1");
	set_ok(v, WS, "db.password", "hunter2!");
	set_ok(v, "team-b", "OPENAI_API_KEY", "another-workspace");
	get_eq(v, WS, "OPENAI_API_KEY", "sk-test-value-1");
	get_eq(v, WS, "db.password", "hunter2!");
	get_eq(v, "team-b", "OPENAI_API_KEY", "another-workspace");

	/* Overwrite. */
	set_ok(v, WS, "db.password", "a longer replacement value");
	get_eq(v, WS, "db.password", "a longer replacement value");

	/* Binary values, NULs included, and the largest allowed. */
	static const uint8_t bin[] = { 0, 1, 2, 0xff, 0, '\n', 0 };
	assert_int_equal(vault_set(v, WS, "BIN", bin, sizeof(bin), &err), 0);
	uint8_t *val = NULL;
	size_t len = 0;
	assert_int_equal(vault_get(v, WS, "BIN", &val, &len, &err), 0);
	assert_int_equal(len, sizeof(bin));
	assert_memory_equal(val, bin, sizeof(bin));
	vault_value_free(val, len);
	uint8_t *big = malloc(VAULT_MAX_VALUE);
	randombytes_buf(big, VAULT_MAX_VALUE);
	assert_int_equal(vault_set(v, WS, "BIG", big, VAULT_MAX_VALUE, &err), 0);
	assert_int_equal(vault_get(v, WS, "BIG", &val, &len, &err), 0);
	assert_int_equal(len, VAULT_MAX_VALUE);
	assert_memory_equal(val, big, len);
	vault_value_free(val, len);
	free(big);

	/* List: names and plaintext sizes, no values. */
	struct store_secret_info *info = NULL;
	size_t n = 0;
	assert_int_equal(vault_list(v, WS, &info, &n, &err), 0);
	assert_int_equal(n, 4);
	bool seen_pw = false;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(info[i].name, "db.password") == 0) {
			seen_pw = true;
			assert_int_equal(info[i].size, strlen("a longer replacement value"));
		}
		if (strcmp(info[i].name, "BIN") == 0)
			assert_int_equal(info[i].size, sizeof(bin));
	}
	assert_true(seen_pw);
	free(info);
	assert_int_equal(vault_list(v, "team-b", &info, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(info[0].name, "OPENAI_API_KEY");
	free(info);

	/* Remove. */
	assert_int_equal(vault_rm(v, WS, "db.password", &err), 0);
	get_refused(v, WS, "db.password", ENOENT, NULL, NULL);
	assert_int_equal(vault_list(v, WS, &info, &n, &err), 0);
	assert_int_equal(n, 3);
	free(info);
	get_eq(v, WS, "OPENAI_API_KEY", "sk-test-value-1");

	/* Absent: a secret never set, a workspace with no secrets. */
	get_refused(v, WS, "NEVER_SET", ENOENT, NULL, NULL);
	get_refused(v, "empty-ws", "X", ENOENT, NULL, NULL);
	assert_int_equal(vault_list(v, "empty-ws", &info, &n, &err), 0);
	assert_int_equal(n, 0);
	free(info);
}

static void test_fresh_nonce_each_set(void **state)
{
	struct fx *f = *state;
	struct vault *v = open_vault(f);
	set_ok(v, WS, "K", "same value twice");
	size_t l1, l2;
	uint8_t *b1 = blob_of(f, WS, "K", &l1);
	set_ok(v, WS, "K", "same value twice");
	uint8_t *b2 = blob_of(f, WS, "K", &l2);
	assert_int_equal(l1, l2);
	assert_int_equal(l1, 24 + strlen("same value twice") + 16);
	assert_memory_not_equal(b1, b2, 24);		    /* the nonce */
	assert_memory_not_equal(b1 + 24, b2 + 24, l1 - 24); /* hence the ciphertext */
	free(b1);
	free(b2);
}

/* ---------------------------------------------------------------------------
 * On disk
 */

static void test_no_plaintext_on_disk(void **state)
{
	struct fx *f = *state;
	if (db_fixture_pg())
		skip(); /* it reads SQLite's files */
	uint8_t master[VAULT_KEY_BYTES];
	randombytes_buf(master, sizeof(master));
	char *hex = hex_of(master, sizeof(master), false);
	setenv("CORDON_MASTER_KEY", hex, 1);
	struct vault *v = open_vault(f);

	/* A distinctive printable value, and a long one that would show in
	 * any page it landed on. */
	uint8_t rnd[20];
	randombytes_buf(rnd, sizeof(rnd));
	char *value = hex_of(rnd, sizeof(rnd), false);
	char *longval = malloc(4001);
	for (size_t i = 0; i < 4000; i++)
		longval[i] = "plaintextcanary-"[i % 16];
	longval[4000] = '\0';
	set_ok(v, WS, "CANARY", value);
	set_ok(v, WS, "LONG_CANARY", longval);
	get_eq(v, WS, "CANARY", value);

	/* The finder works: the secret's name is stored in the clear. */
	assert_true(in_db_files(f, "LONG_CANARY", strlen("LONG_CANARY")));
	assert_false(in_db_files(f, value, strlen(value)));
	assert_false(in_db_files(f, "plaintextcanary-plaintextcanary-", 32));
	assert_false(in_db_files(f, master, sizeof(master)));
	assert_false(in_db_files(f, hex, strlen(hex)));

	checkpoint(f);
	assert_true(in_db_files(f, "LONG_CANARY", strlen("LONG_CANARY")));
	assert_false(in_db_files(f, value, strlen(value)));
	assert_false(in_db_files(f, "plaintextcanary-plaintextcanary-", 32));

	/* Overwritten and deleted values do not linger either. */
	set_ok(v, WS, "CANARY", "replacement-value");
	assert_int_equal(vault_rm(v, WS, "LONG_CANARY", NULL), 0);
	store_down(f);
	assert_false(in_db_files(f, value, strlen(value)));
	assert_false(in_db_files(f, "replacement-value", strlen("replacement-value")));
	assert_false(in_db_files(f, "plaintextcanary-plaintextcanary-", 32));

	/* And nothing else in the store directory holds them. */
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "grep -rqF %s %s", value, f->dir);
	assert_int_not_equal(system(cmd), 0);
	snprintf(cmd, sizeof(cmd), "grep -rqF %s %s", hex, f->dir);
	assert_int_not_equal(system(cmd), 0);
	store_up(f);
	free(longval);
	free(value);
	free(hex);
}

/* ---------------------------------------------------------------------------
 * The master key: key file
 */

static void test_keyfile_created_and_reused(void **state)
{
	struct fx *f = *state;
	struct vault *v = open_vault(f);
	assert_string_equal(vault_key_source(v), f->keyfile);

	struct stat st;
	assert_int_equal(lstat(f->keyfile, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_size, VAULT_KEY_BYTES);
	assert_int_equal(st.st_uid, geteuid());
	size_t klen;
	uint8_t *k1 = slurp(f->keyfile, &klen);
	assert_int_equal(klen, VAULT_KEY_BYTES);
	set_ok(v, WS, "K", "sealed under the key file");

	/* No temp file is left beside it. */
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A %s | grep master.key. )\"", f->dir);
	assert_int_equal(system(cmd), 0);

	/* Reopened (store and vault): the same key, the same secrets. */
	store_down(f);
	store_up(f);
	v = open_vault(f);
	get_eq(v, WS, "K", "sealed under the key file");
	uint8_t *k2 = slurp(f->keyfile, &klen);
	assert_memory_equal(k1, k2, VAULT_KEY_BYTES);

	/* A narrower mode is fine. */
	assert_int_equal(chmod(f->keyfile, 0400), 0);
	v = open_vault(f);
	get_eq(v, WS, "K", "sealed under the key file");

	/* The same key given in the environment opens the same store. */
	char *hex = hex_of(k1, VAULT_KEY_BYTES, false);
	setenv("CORDON_MASTER_KEY", hex, 1);
	v = open_vault(f);
	assert_string_equal(vault_key_source(v), "env");
	get_eq(v, WS, "K", "sealed under the key file");
	free(hex);
	free(k1);
	free(k2);
}

static void test_keyfile_wrong_mode(void **state)
{
	struct fx *f = *state;
	open_vault(f);
	vault_close(f->v);
	f->v = NULL;
	static const unsigned modes[] = { 0644, 0640, 0604, 0660, 0700, 0610, 04600, 0666 };
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		char want[16];
		snprintf(want, sizeof(want), "mode %04o", modes[i]);
		assert_int_equal(chmod(f->keyfile, modes[i]), 0);
		open_refused(f, EPERM, want);
		open_refused(f, EPERM, "wider than 0600");
		open_refused(f, EPERM, f->keyfile);
	}
	assert_int_equal(chmod(f->keyfile, 0600), 0);
	open_vault(f);
}

static void test_keyfile_not_a_plain_file(void **state)
{
	struct fx *f = *state;
	char other[160];
	snprintf(other, sizeof(other), "%s/elsewhere.key", f->dir);

	/* A symlink to a perfectly good key is still refused. */
	int fd = open(other, O_WRONLY | O_CREAT | O_EXCL, 0600);
	uint8_t k[VAULT_KEY_BYTES] = { 1 };
	assert_int_equal(write(fd, k, sizeof(k)), sizeof(k));
	close(fd);
	assert_int_equal(symlink(other, f->keyfile), 0);
	open_refused(f, EPERM, "symbolic link");
	unlink(f->keyfile);

	/* A directory, a FIFO (which must not hang the open). */
	assert_int_equal(mkdir(f->keyfile, 0700), 0);
	open_refused(f, EPERM, "not a regular file");
	rmdir(f->keyfile);
	assert_int_equal(mkfifo(f->keyfile, 0600), 0);
	open_refused(f, EPERM, "not a regular file");
	unlink(f->keyfile);

	/* The wrong size: empty (a crash mid-write elsewhere), too long. */
	fd = open(f->keyfile, O_WRONLY | O_CREAT | O_EXCL, 0600);
	close(fd);
	open_refused(f, EINVAL, "is 0 bytes");
	fd = open(f->keyfile, O_WRONLY | O_TRUNC);
	uint8_t k33[VAULT_KEY_BYTES + 1] = { 0 };
	assert_int_equal(write(fd, k33, sizeof(k33)), sizeof(k33));
	close(fd);
	open_refused(f, EINVAL, "is 33 bytes");
	unlink(f->keyfile);

	/* Owned by someone else. */
	if (geteuid() == 0) {
		open_vault(f);
		vault_close(f->v);
		f->v = NULL;
		assert_int_equal(chown(f->keyfile, 65534, 65534), 0);
		open_refused(f, EPERM, "owned by uid 65534");
		assert_int_equal(chown(f->keyfile, 0, 0), 0);
		open_vault(f);
	}
}

/* Several processes open a store with no key file at once: one key wins,
 * and every one of them ends up with it. Each child seals a secret in its
 * own workspace; the parent must open them all. */
#define RACERS 6
static void test_keyfile_race(void **state)
{
	struct fx *f = *state;
	int go[2];
	assert_int_equal(pipe(go), 0);
	pid_t pids[RACERS];
	store_down(f); /* each child opens its own store */
	for (int i = 0; i < RACERS; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			close(go[1]);
			char c;
			struct store *s = NULL;
			struct vault *v = NULL;
			struct cdn_err err = { 0 };
			if (store_open(f->dir, &s, &err) != 0)
				_exit(10);
			if (read(go[0], &c, 1) != 0) /* wait for the parent to close it */
				_exit(11);
			if (vault_open(s, &v, &err) != 0) {
				fprintf(stderr, "racer %d: %s\n", i, err.msg);
				_exit(12);
			}
			char ws[16];
			snprintf(ws, sizeof(ws), "racer-%d", i);
			int r;
			for (int tries = 0; tries < 50; tries++) {
				r = vault_set(v, ws, "K", (const uint8_t *)ws, strlen(ws), &err);
				if (r != -EBUSY && r != -EAGAIN)
					break;
				usleep(20000);
			}
			if (r != 0) {
				fprintf(stderr, "racer %d: %s\n", i, err.msg);
				_exit(13);
			}
			vault_close(v);
			store_close(s);
			_exit(0);
		}
	}
	close(go[0]);
	close(go[1]);
	for (int i = 0; i < RACERS; i++) {
		int status = 0;
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	store_up(f);
	struct vault *v = open_vault(f);
	for (int i = 0; i < RACERS; i++) {
		char ws[16];
		snprintf(ws, sizeof(ws), "racer-%d", i);
		get_eq(v, ws, "K", ws);
	}
}

/* ---------------------------------------------------------------------------
 * The master key: environment
 */

static void test_env_hex_and_base64(void **state)
{
	struct fx *f = *state;
	uint8_t k[VAULT_KEY_BYTES];
	randombytes_buf(k, sizeof(k));
	char *forms[] = {
		hex_of(k, sizeof(k), false),
		hex_of(k, sizeof(k), true),
		b64_of(k, sizeof(k), sodium_base64_VARIANT_ORIGINAL),
		b64_of(k, sizeof(k), sodium_base64_VARIANT_ORIGINAL_NO_PADDING),
	};
	assert_int_equal(strlen(forms[0]), 64);
	assert_int_equal(strlen(forms[2]), 44);
	assert_int_equal(strlen(forms[3]), 43);

	setenv("CORDON_MASTER_KEY", forms[0], 1);
	struct vault *v = open_vault(f);
	assert_string_equal(vault_key_source(v), "env");
	set_ok(v, WS, "K", "sealed under the env key");
	for (size_t i = 0; i < 4; i++) {
		setenv("CORDON_MASTER_KEY", forms[i], 1);
		v = open_vault(f);
		get_eq(v, WS, "K", "sealed under the env key");
	}
	/* With the key in the environment, no key file is made. */
	assert_int_equal(access(f->keyfile, F_OK), -1);
	for (size_t i = 0; i < 4; i++)
		free(forms[i]);
}

static void test_env_bad_formats(void **state)
{
	struct fx *f = *state;
	uint8_t k[VAULT_KEY_BYTES + 1];
	/* Bytes whose base64url differs from standard base64. */
	memset(k, 0xfb, sizeof(k));
	char *hex = hex_of(k, VAULT_KEY_BYTES, false);
	char *b64_31 = b64_of(k, 31, sodium_base64_VARIANT_ORIGINAL);
	char *b64_33 = b64_of(k, 33, sodium_base64_VARIANT_ORIGINAL);
	char *b64_url = b64_of(k, 32, sodium_base64_VARIANT_URLSAFE);
	char hex63[64], hex65[66], hexg[65], hex_nl[66], hex_sp[66], b64_sp[64], b64_bad_pad[45];
	snprintf(hex63, sizeof(hex63), "%.63s", hex);
	snprintf(hex65, sizeof(hex65), "%sa", hex);
	snprintf(hexg, sizeof(hexg), "%.63sg", hex);
	snprintf(hex_nl, sizeof(hex_nl), "%s\n", hex);
	snprintf(hex_sp, sizeof(hex_sp), " %s", hex);
	char *b64 = b64_of(k, 32, sodium_base64_VARIANT_ORIGINAL);
	snprintf(b64_sp, sizeof(b64_sp), "%s ", b64);
	/* Non-canonical: the last character carries bits the key does not. */
	snprintf(b64_bad_pad, sizeof(b64_bad_pad), "%.42s%c=", b64, b64[42] == '/' ? '+' : '/');
	assert_string_not_equal(b64_url, b64);

	const char *bad[] = { "",     "not-a-key", hex63,  hex65,   hexg,   hex_nl,
			      hex_sp, b64_31,	   b64_33, b64_url, b64_sp, b64_bad_pad };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setenv("CORDON_MASTER_KEY", bad[i], 1);
		struct cdn_err err = { 0 };
		struct vault *v = NULL;
		assert_int_equal(vault_open(f->s, &v, &err), -EINVAL);
		assert_null(v);
		if (!strstr(err.msg, "64 hex digits") || !strstr(err.msg, "base64"))
			fail_msg("case %zu: \"%s\" does not say what is expected", i, err.msg);
		/* Never the value, nor a long piece of it. */
		if (strlen(bad[i]) >= 8) {
			char piece[9];
			for (size_t o = 0; o + 8 <= strlen(bad[i]); o++) {
				snprintf(piece, sizeof(piece), "%.8s", bad[i] + o);
				if (strstr(err.msg, piece))
					fail_msg("case %zu: \"%s\" echoes the value", i, err.msg);
			}
		}
		/* And no silent fallback to a key file. */
		assert_int_equal(access(f->keyfile, F_OK), -1);
	}
	free(hex);
	free(b64);
	free(b64_31);
	free(b64_33);
	free(b64_url);
}

static void test_wrong_master_key(void **state)
{
	struct fx *f = *state;
	uint8_t a[VAULT_KEY_BYTES], b[VAULT_KEY_BYTES];
	randombytes_buf(a, sizeof(a));
	randombytes_buf(b, sizeof(b));
	char *ha = hex_of(a, sizeof(a), false), *hb = hex_of(b, sizeof(b), false);

	setenv("CORDON_MASTER_KEY", ha, 1);
	struct vault *v = open_vault(f);
	set_ok(v, WS, "K", "under key a");

	setenv("CORDON_MASTER_KEY", hb, 1);
	v = open_vault(f); /* opening is fine: nothing is decrypted yet */
	get_refused(v, WS, "K", EKEYREJECTED, "the master key does not open", "under key a");
	get_refused(v, WS, "K", EKEYREJECTED, "wrong CORDON_MASTER_KEY or master.key?", NULL);
	get_refused(v, WS, "K", EKEYREJECTED, "came from env", NULL);

	/* A set under the wrong key fails too, and does not replace the
	 * workspace key (which would lose every other secret). */
	struct cdn_err err = { 0 };
	assert_int_equal(vault_set(v, WS, "OTHER", (const uint8_t *)"value", 5, &err),
			 -EKEYREJECTED);
	/* Names are still listed: they are not secret. */
	struct store_secret_info *info = NULL;
	size_t n = 0;
	assert_int_equal(vault_list(v, WS, &info, &n, &err), 0);
	assert_int_equal(n, 1);
	free(info);

	/* From the key file (a new one is made: the wrong key as well). */
	unsetenv("CORDON_MASTER_KEY");
	v = open_vault(f);
	get_refused(v, WS, "K", EKEYREJECTED, f->keyfile, NULL);

	setenv("CORDON_MASTER_KEY", ha, 1);
	v = open_vault(f);
	get_eq(v, WS, "K", "under key a");
	free(ha);
	free(hb);
}

/* ---------------------------------------------------------------------------
 * Moved and altered ciphertexts
 */

static void test_moved_ciphertext(void **state)
{
	struct fx *f = *state;
	struct vault *v = open_vault(f);
	set_ok(v, WS, "GOOD", "the good value");
	set_ok(v, WS, "TARGET", "the target value");
	set_ok(v, "other", "GOOD", "other workspace value");

	/* A's ciphertext under B's name, in the same workspace. */
	size_t len;
	uint8_t *blob = blob_of(f, WS, "GOOD", &len);
	blob_put(f, WS, "TARGET", blob, len, strlen("the good value"));
	get_refused(v, WS, "TARGET", EBADMSG, "copied from another name", "the good value");
	/* Into a new name too. */
	blob_put(f, WS, "NEW_NAME", blob, len, strlen("the good value"));
	get_refused(v, WS, "NEW_NAME", EBADMSG, "does not open", NULL);

	/* The same name in another workspace (which has its own key). */
	blob_put(f, "other", "GOOD", blob, len, strlen("the good value"));
	get_refused(v, "other", "GOOD", EBADMSG, "does not open", NULL);
	free(blob);

	/* A workspace key and a secret both copied to a fresh workspace: the
	 * wrapped key is bound to its workspace. */
	struct cdn_err err = { 0 };
	uint8_t *wk = NULL;
	size_t wklen = 0;
	assert_int_equal(store_wskey_get(f->s, WS, &wk, &wklen, &err), 0);
	assert_int_equal(store_wskey_put(f->s, "copied", wk, wklen, &err), 0);
	free(wk);
	blob = blob_of(f, WS, "GOOD", &len);
	blob_put(f, "copied", "GOOD", blob, len, strlen("the good value"));
	get_refused(v, "copied", "GOOD", EKEYREJECTED, "does not open", NULL);
	free(blob);

	/* The original is untouched. */
	get_eq(v, WS, "GOOD", "the good value");
}

static void test_tampered_ciphertext(void **state)
{
	struct fx *f = *state;
	struct vault *v = open_vault(f);
	const char *value = "a value worth tampering with";
	set_ok(v, WS, "K", value);
	size_t len;
	uint8_t *orig = blob_of(f, WS, "K", &len);
	uint8_t *t = malloc(len + 1);

	/* One flipped bit anywhere: nonce, ciphertext, tag. */
	for (size_t i = 0; i < len; i++) {
		memcpy(t, orig, len);
		t[i] ^= (uint8_t)(1u << (i % 8));
		blob_put(f, WS, "K", t, len, strlen(value));
		get_refused(v, WS, "K", EBADMSG, NULL, value);
	}
	/* Truncated, extended, far too short, empty. */
	blob_put(f, WS, "K", orig, len - 1, strlen(value));
	get_refused(v, WS, "K", EBADMSG, NULL, value);
	memcpy(t, orig, len);
	t[len] = 0;
	blob_put(f, WS, "K", t, len + 1, strlen(value));
	get_refused(v, WS, "K", EBADMSG, NULL, value);
	blob_put(f, WS, "K", orig, 40, strlen(value));
	get_refused(v, WS, "K", EBADMSG, "damaged", value);
	blob_put(f, WS, "K", orig, 3, strlen(value));
	get_refused(v, WS, "K", EBADMSG, "damaged", value);

	/* Restored, it opens again. */
	blob_put(f, WS, "K", orig, len, strlen(value));
	get_eq(v, WS, "K", value);

	/* A tampered workspace key. The store never replaces one (that would
	 * orphan every secret sealed with it), so the edit goes round it, as
	 * someone with write access to the database file would. */
	struct cdn_err err = { 0 };
	uint8_t *wk = NULL;
	size_t wklen = 0;
	assert_int_equal(store_wskey_get(f->s, WS, &wk, &wklen, &err), 0);
	assert_int_equal(wklen, 24 + 32 + 16);
	assert_int_equal(store_wskey_put(f->s, WS, wk, wklen, &err), -EEXIST);
	for (size_t i = 0; i < wklen; i += 7) {
		wk[i] ^= 0x40;
		sql_wskey(f, WS, wk, wklen);
		get_refused(v, WS, "K", EKEYREJECTED, "does not open", value);
		wk[i] ^= 0x40;
	}
	sql_wskey(f, WS, wk, 10);
	get_refused(v, WS, "K", EBADMSG, "damaged", value);
	sql_wskey(f, WS, wk, wklen);
	get_eq(v, WS, "K", value);
	/* Gone: the secret is there but nothing can open it. */
	sql_wskey(f, WS, NULL, 0);
	get_refused(v, WS, "K", EBADMSG, "no data key", value);
	free(wk);
	free(t);
	free(orig);
}

/* ---------------------------------------------------------------------------
 * Arguments
 */

static void test_names_and_values_checked(void **state)
{
	struct fx *f = *state;
	struct vault *v = open_vault(f);
	struct cdn_err err = { 0 };
	const uint8_t *val = (const uint8_t *)"value";
	uint8_t *out = NULL;
	size_t len = 0;

	char long_name[STORE_MAX_NAME + 2];
	memset(long_name, 'a', STORE_MAX_NAME + 1);
	long_name[STORE_MAX_NAME + 1] = '\0';
	const char *const bad_names[] = { "",	   "../etc", "a b",	    "x/y",
					  "-lead", "name=",  "caf\xc3\xa9", long_name };
	for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		assert_true(vault_set(v, WS, bad_names[i], val, 5, &err) < 0);
		assert_true(vault_get(v, WS, bad_names[i], &out, &len, &err) < 0);
		assert_null(out);
		assert_true(vault_rm(v, WS, bad_names[i], &err) < 0);
	}
	static const char *const bad_ws[] = { "", "../x", "Upper", "a b", "x/y" };
	for (size_t i = 0; i < sizeof(bad_ws) / sizeof(bad_ws[0]); i++) {
		struct store_secret_info *info = NULL;
		size_t n = 0;
		assert_true(vault_set(v, bad_ws[i], "K", val, 5, &err) < 0);
		assert_true(vault_get(v, bad_ws[i], "K", &out, &len, &err) < 0);
		assert_true(vault_list(v, bad_ws[i], &info, &n, &err) < 0);
	}
	/* Good names of every shape the store allows. */
	set_ok(v, WS, "OPENAI_API_KEY", "v1");
	set_ok(v, WS, "a", "v2");
	set_ok(v, WS, "x.y-z_9", "v3");
	long_name[STORE_MAX_NAME] = '\0';
	set_ok(v, WS, long_name, "v4");

	/* Empty and oversized values. */
	assert_int_equal(vault_set(v, WS, "EMPTY", val, 0, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "empty"));
	uint8_t *big = calloc(1, VAULT_MAX_VALUE + 1);
	memset(big, 'z', VAULT_MAX_VALUE + 1);
	assert_int_equal(vault_set(v, WS, "BIG", big, VAULT_MAX_VALUE + 1, &err), -E2BIG);
	assert_null(strstr(err.msg, "zzzz"));
	free(big);
	assert_int_equal(vault_set(v, WS, "NULLVAL", NULL, 4, &err), -EINVAL);
	get_refused(v, WS, "EMPTY", ENOENT, NULL, NULL);
	get_refused(v, WS, "BIG", ENOENT, NULL, NULL);
}

static void test_name_looks_secret(void **state)
{
	(void)state;
	static const char *const yes[] = {
		"OPENAI_API_KEY", "GITHUB_TOKEN", "DB_PASSWORD",       "db_passwd",
		"client_secret",  "MYAPIKEY",	  "aws_access_key_id", "SSH_PRIVATE_KEY",
		"GcpCredentials", "SECRET",	  "x-token-y",	       "Password",
	};
	static const char *const no[] = {
		"PATH",	  "HOME",    "API_URL", "KEYBOARD", "LANG",
		"LOCALE", "PRIVATE", "ACCESS",	"PASS",	    "",
	};
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		if (!vault_name_looks_secret(yes[i]))
			fail_msg("%s should look secret", yes[i]);
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		if (vault_name_looks_secret(no[i]))
			fail_msg("%s should not look secret", no[i]);
	assert_false(vault_name_looks_secret(NULL));
}

int main(void)
{
	/* A child of the race test that dies must not take the runner with it. */
	signal(SIGPIPE, SIG_IGN);
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_roundtrip),
		T(test_fresh_nonce_each_set),
		T(test_no_plaintext_on_disk),
		T(test_keyfile_created_and_reused),
		T(test_keyfile_wrong_mode),
		T(test_keyfile_not_a_plain_file),
		T(test_keyfile_race),
		T(test_env_hex_and_base64),
		T(test_env_bad_formats),
		T(test_wrong_master_key),
		T(test_moved_ciphertext),
		T(test_tampered_ciphertext),
		T(test_names_and_values_checked),
		cmocka_unit_test(test_name_looks_secret),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
