/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "audit/audit.h"

#define MAX_LINES 16

struct fixture {
	char dir[64];
	char path[128];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/cordon-audit-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/audit.jsonl", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* Appends n request-like entries, as the engine would. */
static void write_entries(const char *path, int n)
{
	struct audit_log *log = NULL;
	struct cdn_err err = { 0 };
	if (audit_open(path, &log, &err) < 0)
		fail_msg("audit_open: %s", err.msg);
	for (int i = 0; i < n; i++) {
		json_t *e = json_pack("{s:s, s:s, s:s, s:i, s:i, s:i}", "event_type",
				      i % 3 ? "request" : "blocked", "method", "GET", "hostname",
				      "api.example.com", "port", 443, "status_code",
				      i % 3 ? 200 : 403, "duration_ms", i);
		if (audit_append(log, e, i == n - 1, &err) < 0)
			fail_msg("audit_append: %s", err.msg);
		json_decref(e);
	}
	audit_close(log);
}

/* The file as lines (each with its newline). */
static size_t read_lines(const char *path, char *lines[MAX_LINES])
{
	FILE *fp = fopen(path, "r");
	assert_non_null(fp);
	size_t n = 0;
	char *buf = NULL;
	size_t cap = 0;
	while (getline(&buf, &cap, fp) > 0) {
		assert_true(n < MAX_LINES);
		lines[n++] = strdup(buf);
	}
	free(buf);
	fclose(fp);
	return n;
}

static void write_lines(const char *path, char *lines[], size_t n)
{
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	for (size_t i = 0; i < n; i++)
		fputs(lines[i], fp);
	fclose(fp);
}

static void free_lines(char *lines[], size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(lines[i]);
}

static int verify(const char *path, struct audit_verify *res)
{
	struct cdn_err err = { 0 };
	int r = audit_verify_file(path, res, &err);
	if (r < 0)
		fail_msg("audit_verify_file: %s", err.msg);
	return r;
}

static void expect_bad(const char *path, uint64_t line, const char *reason)
{
	struct audit_verify res;
	int r = verify(path, &res);
	if (r != 1)
		fail_msg("expected line %llu to be bad, got r=%d", (unsigned long long)line, r);
	if (res.bad_line != line)
		fail_msg("expected bad line %llu, got %llu (%s)", (unsigned long long)line,
			 (unsigned long long)res.bad_line, res.reason);
	if (reason && !strstr(res.reason, reason))
		fail_msg("reason '%s' lacks '%s'", res.reason, reason);
	assert_int_equal(res.lines, line - 1);
}

/* Re-hashes a line after an edit: what a careful forger would do. */
static char *rehash(const char *line_with_hash)
{
	const char *h = strstr(line_with_hash, ",\"hash\":\"");
	assert_non_null(h);
	size_t blen = (size_t)(h - line_with_hash);
	char *body = malloc(blen + 2);
	memcpy(body, line_with_hash, blen);
	body[blen] = '}';
	body[blen + 1] = '\0';
	unsigned char d[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(d, (unsigned char *)body, blen + 1);
	char hex[65];
	sodium_bin2hex(hex, sizeof(hex), d, sizeof(d));
	char *out = malloc(blen + 80);
	snprintf(out, blen + 80, "%.*s,\"hash\":\"%s\"}\n", (int)blen, body, hex);
	free(body);
	return out;
}

/* Replaces the first occurrence of from with to (same length not needed). */
static char *edit(const char *line, const char *from, const char *to)
{
	const char *at = strstr(line, from);
	assert_non_null(at);
	size_t n = strlen(line) + strlen(to) + 1;
	char *out = malloc(n);
	snprintf(out, n, "%.*s%s%s", (int)(at - line), line, to, at + strlen(from));
	return out;
}

/* ------------------------------------------------------------------ tests */

static void test_round_trip(void **state)
{
	struct fixture *f = *state;
	struct audit_verify res;
	/* a missing file cannot be verified; an empty one is an empty chain */
	struct cdn_err err = { 0 };
	assert_true(audit_verify_file(f->path, &res, &err) < 0);
	assert_non_null(strstr(err.msg, f->path));
	close(open(f->path, O_CREAT | O_WRONLY, 0600));
	assert_int_equal(verify(f->path, &res), 0);
	assert_int_equal(res.lines, 0);
	assert_string_equal(res.last_hash,
			    "0000000000000000000000000000000000000000000000000000000000000000");

	struct audit_log *log = NULL;
	assert_int_equal(audit_open(f->path, &log, &err), 0);
	assert_int_equal(audit_last_seq(log), 0);
	assert_string_equal(audit_last_hash(log), res.last_hash);
	json_t *e = json_pack("{s:s, s:s, s:I}", "event_type", "request", "hostname",
			      "Ünïcode.example \"q\"\n", "request_size", (json_int_t)1 << 40);
	assert_int_equal(audit_append(log, e, true, &err), 0);
	/* the caller's entry is borrowed, not changed */
	assert_null(json_object_get(e, "seq"));
	assert_null(json_object_get(e, "timestamp"));
	json_decref(e);
	e = json_pack("{s:s, s:s}", "event_type", "error", "timestamp", "2026-01-01T00:00:00.000Z");
	assert_int_equal(audit_append(log, e, false, &err), 0);
	json_decref(e);
	assert_int_equal(audit_last_seq(log), 2);
	char last[AUDIT_HASH_HEX + 1];
	snprintf(last, sizeof(last), "%s", audit_last_hash(log));
	audit_close(log);

	assert_int_equal(verify(f->path, &res), 0);
	assert_int_equal(res.lines, 2);
	assert_int_equal(res.bad_line, 0);
	assert_string_equal(res.last_hash, last);

	/* the lines as specified: canonical, ASCII, sorted, hash last */
	char *lines[MAX_LINES];
	size_t n = read_lines(f->path, lines);
	assert_int_equal(n, 2);
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(lines[i]);
		assert_true(len > 80);
		assert_int_equal(lines[i][len - 1], '\n');
		assert_int_equal(lines[i][0], '{');
		for (size_t k = 0; k < len; k++)
			assert_true((unsigned char)lines[i][k] < 0x80);
		assert_non_null(strstr(lines[i], ",\"hash\":\""));
		assert_null(strstr(lines[i], ": ")); /* compact */
		char *again = rehash(lines[i]);
		assert_string_equal(again, lines[i]);
		free(again);
	}
	assert_non_null(strstr(lines[0], "{\"event_type\":\"request\",\"hostname\":\"\\u00DCn"));
	assert_non_null(strstr(lines[0], "\"prev_hash\":\"00000000000000000000000000000000"
					 "00000000000000000000000000000000\","
					 "\"request_size\":1099511627776,"
					 "\"seq\":1,\"timestamp\":\"20"));
	assert_non_null(strstr(lines[1], "\"seq\":2,\"timestamp\":\"2026-01-01T00:00:00.000Z\""));
	/* the timestamp the log added: RFC 3339, UTC, milliseconds */
	const char *ts = strstr(lines[0], "\"timestamp\":\"") + 13;
	assert_int_equal(ts[4], '-');
	assert_int_equal(ts[10], 'T');
	assert_int_equal(ts[19], '.');
	assert_int_equal(ts[23], 'Z');
	assert_int_equal(ts[24], '"');
	/* line 2 points at line 1 */
	char want[100];
	const char *h0 = strstr(lines[0], ",\"hash\":\"") + 9;
	snprintf(want, sizeof(want), "\"prev_hash\":\"%.64s\"", h0);
	assert_non_null(strstr(lines[1], want));
	free_lines(lines, n);
}

static void test_mode_and_refusals(void **state)
{
	struct fixture *f = *state;
	struct audit_log *log = NULL;
	struct cdn_err err = { 0 };
	assert_int_equal(audit_open(f->path, &log, &err), 0);
	struct stat st;
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	json_t *e = json_pack("{s:s, s:i}", "event_type", "request", "seq", 7);
	assert_true(audit_append(log, e, false, &err) < 0);
	assert_non_null(strstr(err.msg, "\"seq\""));
	json_decref(e);
	e = json_pack("{s:s}", "prev_hash", "x");
	assert_true(audit_append(log, e, false, &err) < 0);
	json_decref(e);
	e = json_pack("{s:s}", "hash", "x");
	assert_true(audit_append(log, e, false, &err) < 0);
	assert_non_null(strstr(err.msg, "\"hash\""));
	json_decref(e);
	e = json_array();
	assert_true(audit_append(log, e, false, &err) < 0);
	json_decref(e);
	assert_true(audit_append(log, NULL, false, &err) < 0);

	/* an entry that cannot fit on one line is refused, not cut */
	char *big = malloc(AUDIT_MAX_LINE);
	memset(big, 'x', AUDIT_MAX_LINE - 1);
	big[AUDIT_MAX_LINE - 1] = '\0';
	e = json_pack("{s:s}", "blocked_reason", big);
	assert_true(audit_append(log, e, false, &err) < 0);
	assert_non_null(strstr(err.msg, "limit 65536"));
	json_decref(e);
	/* and one just under the bound is written and verifies */
	big[AUDIT_MAX_LINE - 260] = '\0';
	e = json_pack("{s:s}", "blocked_reason", big);
	assert_int_equal(audit_append(log, e, false, &err), 0);
	json_decref(e);
	free(big);
	assert_int_equal(audit_last_seq(log), 1);

	/* one writer per file */
	struct audit_log *second = NULL;
	assert_true(audit_open(f->path, &second, &err) < 0);
	assert_non_null(strstr(err.msg, "one writer"));
	audit_close(log);
	assert_int_equal(audit_open(f->path, &second, &err), 0);
	audit_close(second);

	struct audit_verify res;
	assert_int_equal(verify(f->path, &res), 0);
	assert_int_equal(res.lines, 1);

	assert_true(audit_open(f->dir, &log, &err) < 0);
}

static void test_reopen_continues(void **state)
{
	struct fixture *f = *state;
	write_entries(f->path, 3);
	struct audit_log *log = NULL;
	struct cdn_err err = { 0 };
	assert_int_equal(audit_open(f->path, &log, &err), 0);
	assert_int_equal(audit_last_seq(log), 3);
	struct audit_verify res;
	assert_int_equal(verify(f->path, &res), 0);
	assert_string_equal(audit_last_hash(log), res.last_hash);
	audit_close(log);
	write_entries(f->path, 2);
	assert_int_equal(verify(f->path, &res), 0);
	assert_int_equal(res.lines, 5);
}

static void test_modify_any_byte(void **state)
{
	struct fixture *f = *state;
	write_entries(f->path, 5);
	char *lines[MAX_LINES];
	size_t n = read_lines(f->path, lines);
	assert_int_equal(n, 5);
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(lines[i]);
		/* every byte but the newline: first, middle, inside the hash,
		 * the closing brace */
		for (size_t k = 0; k + 1 < len; k++) {
			char saved = lines[i][k];
			lines[i][k] = (char)(saved ^ 0x01);
			write_lines(f->path, lines, n);
			expect_bad(f->path, i + 1, NULL);
			lines[i][k] = saved;
		}
	}
	write_lines(f->path, lines, n);
	struct audit_verify res;
	assert_int_equal(verify(f->path, &res), 0);
	free_lines(lines, n);
}

static void test_delete_swap_rehash(void **state)
{
	struct fixture *f = *state;
	write_entries(f->path, 6);
	char *lines[MAX_LINES];
	size_t n = read_lines(f->path, lines);
	char *work[MAX_LINES];

	/* delete line 3: the new line 3 has seq 4 */
	for (size_t i = 0, k = 0; i < n; i++)
		if (i != 2)
			work[k++] = lines[i];
	write_lines(f->path, work, n - 1);
	expect_bad(f->path, 3, "seq is 4, expected 3");

	/* delete the first line */
	write_lines(f->path, lines + 1, n - 1);
	expect_bad(f->path, 1, "seq is 2, expected 1");

	/* swap lines 4 and 5 */
	memcpy(work, lines, n * sizeof(lines[0]));
	work[3] = lines[4];
	work[4] = lines[3];
	write_lines(f->path, work, n);
	expect_bad(f->path, 4, "seq is 5, expected 4");

	/* edit line 2 and give it a fresh, valid hash: line 2 passes on
	 * its own, line 3 no longer points at it */
	memcpy(work, lines, n * sizeof(lines[0]));
	char *edited = edit(lines[1], "\"status_code\":200", "\"status_code\":201");
	work[1] = rehash(edited);
	free(edited);
	write_lines(f->path, work, n);
	expect_bad(f->path, 3, "prev_hash does not match the hash of line 2");
	/* the same on the last line cannot be seen without an anchor... */
	free(work[1]);
	memcpy(work, lines, n * sizeof(lines[0]));
	edited = edit(lines[n - 1], "\"status_code\":", "\"status_code\":1");
	work[n - 1] = rehash(edited);
	free(edited);
	write_lines(f->path, work, n);
	struct audit_verify res;
	assert_int_equal(verify(f->path, &res), 0);
	/* ...but the last hash differs from the one anchored elsewhere */
	char anchored[AUDIT_HASH_HEX + 1];
	snprintf(anchored, sizeof(anchored), "%.64s", strstr(lines[n - 1], ",\"hash\":\"") + 9);
	assert_string_not_equal(res.last_hash, anchored);
	free(work[n - 1]);

	/* a forged first line must start the chain properly */
	memcpy(work, lines, n * sizeof(lines[0]));
	edited = edit(lines[0], "\"seq\":1,", "\"seq\":0,");
	work[0] = rehash(edited);
	free(edited);
	write_lines(f->path, work, n);
	expect_bad(f->path, 1, "\"seq\"");
	free(work[0]);
	edited = edit(lines[0], "\"prev_hash\":\"0", "\"prev_hash\":\"1");
	work[0] = rehash(edited);
	free(edited);
	write_lines(f->path, work, n);
	expect_bad(f->path, 1, "64 zeros");
	free(work[0]);

	/* a "hash" key hidden in the hashed part */
	memcpy(work, lines, n * sizeof(lines[0]));
	edited = edit(lines[1], "{", "{\"hash\":\"x\",");
	work[1] = rehash(edited);
	free(edited);
	write_lines(f->path, work, n);
	expect_bad(f->path, 2, "a second \"hash\"");
	free(work[1]);

	/* duplicate seq inside one line */
	edited = edit(lines[1], "{", "{\"seq\":2,");
	work[1] = rehash(edited);
	free(edited);
	write_lines(f->path, work, n);
	expect_bad(f->path, 2, "JSON");
	free(work[1]);

	/* missing prev_hash */
	edited = edit(lines[1], "\"prev_hash\":", "\"prev_hasj\":");
	work[1] = rehash(edited);
	free(edited);
	write_lines(f->path, work, n);
	expect_bad(f->path, 2, "\"prev_hash\"");
	free(work[1]);

	/* not JSON, though the hash is right */
	edited = edit(lines[1], "\"method\"", "method");
	work[1] = rehash(edited);
	free(edited);
	write_lines(f->path, work, n);
	expect_bad(f->path, 2, "not a valid JSON object");
	free(work[1]);

	/* invalid UTF-8, though the hash is right */
	edited = edit(lines[1], "GET", "G\xff\xfeT");
	work[1] = rehash(edited);
	free(edited);
	write_lines(f->path, work, n);
	expect_bad(f->path, 2, "JSON");
	free(work[1]);

	/* an empty line, a CRLF line, a line without the hash field */
	memcpy(work, lines, n * sizeof(lines[0]));
	work[2] = "\n";
	write_lines(f->path, work, n);
	expect_bad(f->path, 3, "empty line");
	edited = edit(lines[2], "}\n", "}\r\n");
	work[2] = edited;
	write_lines(f->path, work, n);
	expect_bad(f->path, 3, "\"hash\" field");
	free(edited);
	work[2] = "{\"seq\":3}\n";
	write_lines(f->path, work, n);
	expect_bad(f->path, 3, "\"hash\" field");

	/* a final line without its newline */
	memcpy(work, lines, n * sizeof(lines[0]));
	char *cut = strdup(lines[n - 1]);
	cut[strlen(cut) - 1] = '\0';
	work[n - 1] = cut;
	write_lines(f->path, work, n);
	expect_bad(f->path, n, "no newline");
	free(cut);

	free_lines(lines, n);
}

static void test_long_lines(void **state)
{
	struct fixture *f = *state;
	write_entries(f->path, 2);
	/* a line over the bound, after two good ones */
	FILE *fp = fopen(f->path, "a");
	assert_non_null(fp);
	for (int i = 0; i < AUDIT_MAX_LINE + 10; i++)
		fputc('a', fp);
	fputc('\n', fp);
	fclose(fp);
	expect_bad(f->path, 3, "longer than 65536");
	/* and one with no newline at all */
	fp = fopen(f->path, "w");
	assert_non_null(fp);
	for (int i = 0; i < 3 * AUDIT_MAX_LINE; i++)
		fputc('{', fp);
	fclose(fp);
	expect_bad(f->path, 1, "longer than 65536");
	struct audit_log *log = NULL;
	struct cdn_err err = { 0 };
	assert_true(audit_open(f->path, &log, &err) < 0);
}

static void test_open_checks_last_line(void **state)
{
	struct fixture *f = *state;
	write_entries(f->path, 4);
	char *lines[MAX_LINES];
	size_t n = read_lines(f->path, lines);
	struct audit_log *log = NULL;
	struct cdn_err err = { 0 };

	/* a corrupted last line */
	char *work[MAX_LINES];
	memcpy(work, lines, n * sizeof(lines[0]));
	char *bad = edit(lines[n - 1], "api.example.com", "api.example.org");
	work[n - 1] = bad;
	write_lines(f->path, work, n);
	assert_true(audit_open(f->path, &log, &err) < 0);
	assert_non_null(strstr(err.msg, "last line does not verify"));
	assert_non_null(strstr(err.msg, "hash does not match"));
	free(bad);

	/* a torn last line */
	bad = strdup(lines[n - 1]);
	bad[strlen(bad) / 2] = '\0';
	work[n - 1] = bad;
	write_lines(f->path, work, n);
	assert_true(audit_open(f->path, &log, &err) < 0);
	assert_non_null(strstr(err.msg, "no newline"));
	free(bad);

	/* only the tail is read: a bad first line does not stop a writer
	 * (verification finds it), a good last line is all it needs */
	memcpy(work, lines, n * sizeof(lines[0]));
	bad = edit(lines[0], "GET", "PUT");
	work[0] = bad;
	write_lines(f->path, work, n);
	assert_int_equal(audit_open(f->path, &log, &err), 0);
	assert_int_equal(audit_last_seq(log), 4);
	audit_close(log);
	expect_bad(f->path, 1, "hash does not match");
	free(bad);

	/* a single line file */
	write_lines(f->path, lines, 1);
	assert_int_equal(audit_open(f->path, &log, &err), 0);
	assert_int_equal(audit_last_seq(log), 1);
	audit_close(log);
	free_lines(lines, n);
}

static void test_big_file_tail(void **state)
{
	struct fixture *f = *state;
	/* larger than the tail window, so open must seek back */
	struct audit_log *log = NULL;
	struct cdn_err err = { 0 };
	assert_int_equal(audit_open(f->path, &log, &err), 0);
	char *pad = malloc(4000);
	memset(pad, 'p', 3999);
	pad[3999] = '\0';
	for (int i = 0; i < 60; i++) {
		json_t *e = json_pack("{s:s, s:i}", "blocked_reason", pad, "i", i);
		assert_int_equal(audit_append(log, e, false, &err), 0);
		json_decref(e);
	}
	free(pad);
	audit_close(log);
	struct stat st;
	assert_int_equal(stat(f->path, &st), 0);
	assert_true(st.st_size > 3 * AUDIT_MAX_LINE);
	assert_int_equal(audit_open(f->path, &log, &err), 0);
	assert_int_equal(audit_last_seq(log), 60);
	audit_close(log);
	struct audit_verify res;
	assert_int_equal(verify(f->path, &res), 0);
	assert_int_equal(res.lines, 60);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mode_and_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_continues, setup, teardown),
		cmocka_unit_test_setup_teardown(test_modify_any_byte, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete_swap_rehash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_checks_last_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_big_file_tail, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
