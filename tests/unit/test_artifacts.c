/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "run/artifacts.h"
#include "store/store.h"

struct fx {
	char tmp[64];
	char out[128];
	char dest[128];
	int out_fd;
	struct store *s;
};

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	snprintf(f->tmp, sizeof(f->tmp), "/tmp/cordon-test-artifacts-XXXXXX");
	if (!mkdtemp(f->tmp))
		return -1;
	char st[128];
	snprintf(st, sizeof(st), "%s/state", f->tmp);
	struct cdn_err err = { 0 };
	if (store_open(st, &f->s, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return -1;
	}
	snprintf(f->out, sizeof(f->out), "%s/out", f->tmp);
	snprintf(f->dest, sizeof(f->dest), "%s/dest", f->tmp);
	if (mkdir(f->out, 0755) < 0)
		return -1;
	f->out_fd = open(f->out, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	*state = f;
	return f->out_fd < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	close(f->out_fd);
	store_close(f->s);
	nftw(f->tmp, rm_entry, 32, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static void put(struct fx *f, const char *name, const char *data)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", f->out, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, strlen(data)), (ssize_t)strlen(data));
	close(fd);
}

/* A file of size bytes that takes no disk (read back as zeros). */
static void put_sparse(struct fx *f, const char *name, off_t size)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", f->out, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, size), 0);
	close(fd);
}

static const char *reason_of(const struct artifact_result *res, const char *name)
{
	for (size_t i = 0; i < res->n_skipped; i++)
		if (!strcmp(res->skipped[i].name, name))
			return res->skipped[i].reason;
	return NULL;
}

static const struct artifact *saved(const struct artifact_result *res, const char *name)
{
	for (size_t i = 0; i < res->n_saved; i++)
		if (!strcmp(res->saved[i].name, name))
			return &res->saved[i];
	return NULL;
}

static void collect(struct fx *f, const struct artifact_limits *lim, struct artifact_result *res)
{
	struct cdn_err err = { 0 };
	int r = artifacts_collect(f->out_fd, f->s, f->dest, lim, res, &err);
	if (r < 0)
		fail_msg("%s", err.msg);
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

static void expect_reason(const struct artifact_result *res, const char *name, const char *want)
{
	const char *got = reason_of(res, name);
	if (!got)
		fail_msg("%s was not reported as skipped", name);
	if (strcmp(got, want) != 0)
		fail_msg("%s: \"%s\", expected \"%s\"", name, got, want);
}

/* ------------------------------------------------------------------ names */

static void expect_clean(const char *in, const char *want)
{
	char out[ARTIFACT_NAME_MAX + 1];
	int r = artifact_sanitize(in, out, sizeof(out));
	if (!want) {
		assert_int_equal(r, -EINVAL);
		return;
	}
	assert_int_equal(r, 0);
	assert_string_equal(out, want);
}

static void test_sanitize(void **state)
{
	(void)state;
	expect_clean("report.txt", "report.txt");
	expect_clean("Report-2024_v1.2.CSV", "Report-2024_v1.2.CSV");
	expect_clean("../../etc/passwd", "_.._etc_passwd");
	expect_clean("/etc/passwd", "_etc_passwd");
	expect_clean("r\xc3\xa9sum\xc3\xa9.pdf", "r_sum_.pdf");
	expect_clean("a  b?*.txt", "a_b_.txt");
	expect_clean("line\nbreak.txt", "line_break.txt");
	expect_clean("$(rm -rf ~).md", "_rm_-rf_.md");
	expect_clean(".bashrc", "bashrc");
	expect_clean("...hidden.txt", "hidden.txt");
	expect_clean("-x.txt", "-x.txt");
	expect_clean("", NULL);
	expect_clean(".", NULL);
	expect_clean("..", NULL);
	expect_clean("...", NULL);
	expect_clean("\xe6\x97\xa5\xe6\x9c\xac", NULL);
	expect_clean("___", NULL);
	expect_clean("\xe6\x97\xa5\xe6\x9c\xac.txt", "_.txt");

	/* Long names are cut to ARTIFACT_NAME_MAX, keeping the extension. */
	char in[400], want[ARTIFACT_NAME_MAX + 1];
	memset(in, 'a', 300);
	strcpy(in + 300, ".txt");
	memset(want, 'a', ARTIFACT_NAME_MAX - 4);
	strcpy(want + ARTIFACT_NAME_MAX - 4, ".txt");
	expect_clean(in, want);
	/* An extension too long to be one is not kept. */
	memset(in, 'a', 200);
	in[200] = '.';
	memset(in + 201, 'b', 40);
	in[241] = '\0';
	memcpy(want, in, ARTIFACT_NAME_MAX);
	want[ARTIFACT_NAME_MAX] = '\0';
	expect_clean(in, want);
	/* A small buffer is a smaller bound. */
	char small[10];
	assert_int_equal(artifact_sanitize("abcdefghijkl.txt", small, sizeof(small)), 0);
	assert_string_equal(small, "abcde.txt");
	assert_int_equal(artifact_sanitize(NULL, small, sizeof(small)), -EINVAL);
	assert_int_equal(artifact_sanitize("x", small, 0), -EINVAL);
	/* What the sanitiser makes is a name artifact_name_ok takes. */
	const char *odd[] = { "../../etc/passwd", ".hidden.txt", "a b\x1b[31m.md" };
	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		char out[ARTIFACT_NAME_MAX + 1];
		assert_int_equal(artifact_sanitize(odd[i], out, sizeof(out)), 0);
		assert_true(artifact_name_ok(out));
		assert_false(artifact_name_ok(odd[i]));
	}
	assert_true(artifact_name_ok("report-1.json"));
	assert_true(artifact_name_ok("_x"));
	assert_false(artifact_name_ok(""));
	assert_false(artifact_name_ok(NULL));
	assert_false(artifact_name_ok("a/b"));
	memset(in, 'a', ARTIFACT_NAME_MAX + 1);
	in[ARTIFACT_NAME_MAX + 1] = '\0';
	assert_false(artifact_name_ok(in));
	in[ARTIFACT_NAME_MAX] = '\0';
	assert_true(artifact_name_ok(in));
}

static void test_defaults(void **state)
{
	(void)state;
	struct artifact_limits lim;
	artifact_limits_default(&lim);
	assert_int_equal(lim.max_files, 20);
	assert_int_equal(lim.max_file_bytes, 25ull << 20);
	assert_int_equal(lim.max_total_bytes, 50ull << 20);
	const char *const *ext = artifact_default_extensions();
	assert_ptr_equal(lim.extensions, ext);
	size_t n = 0;
	bool txt = false, pdf = false;
	for (; ext[n]; n++) {
		txt |= !strcmp(ext[n], "txt");
		pdf |= !strcmp(ext[n], "pdf");
		assert_true(strcmp(ext[n], "exe") && strcmp(ext[n], "sh") && strcmp(ext[n], "py"));
	}
	assert_int_equal(lim.n_extensions, n);
	assert_true(txt && pdf);
}

/* ------------------------------------------------------------- collection */

static void test_collect_basic(void **state)
{
	struct fx *f = *state;
	struct artifact_result res;
	put(f, "report.txt", "hello\n");
	put(f, "data.JSON", "{}");
	collect(f, NULL, &res);
	assert_int_equal(res.n_saved, 2);
	assert_int_equal(res.n_skipped, 0);
	/* Sorted by name as found. */
	assert_string_equal(res.saved[0].name, "data.JSON");
	assert_string_equal(res.saved[1].name, "report.txt");
	assert_string_equal(res.saved[1].original, "report.txt");
	assert_int_equal(res.saved[1].size, 6);
	assert_string_equal(res.saved[1].sha256,
			    "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03");

	/* The copy, and the blob. */
	char p[512], blob[512];
	snprintf(p, sizeof(p), "%s/report.txt", f->dest);
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	assert_int_equal(st.st_size, 6);
	struct cdn_err err = { 0 };
	assert_int_equal(store_blob_path(f->s, res.saved[1].sha256, blob, sizeof(blob), &err), 0);
	assert_int_equal(count_entries(f->dest), 2);
	artifacts_result_free(&res);
	assert_null(res.saved);
	assert_int_equal(res.n_saved, 0);
}

static void test_skip_reasons(void **state)
{
	struct fx *f = *state;
	struct artifact_result res;
	char p[512], q[512];
	put(f, "ok.txt", "fine");
	put(f, "tool.exe", "MZ");
	put(f, "run.sh", "#!/bin/sh");
	put(f, "noext", "x");
	put(f, "\xe6\x97\xa5\xe6\x9c\xac", "x");
	put(f, ".env", "SECRET=1");
	snprintf(p, sizeof(p), "%s/passwd.txt", f->out);
	assert_int_equal(symlink("/etc/passwd", p), 0);
	snprintf(p, sizeof(p), "%s/dangling.txt", f->out);
	assert_int_equal(symlink("/nonexistent/x", p), 0);
	/* A hard link to a file outside out/: both names are refused. */
	snprintf(p, sizeof(p), "%s/private.txt", f->tmp);
	int fd = open(p, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "private", 7), 7);
	close(fd);
	snprintf(q, sizeof(q), "%s/hard.txt", f->out);
	assert_int_equal(link(p, q), 0);
	snprintf(p, sizeof(p), "%s/subdir.txt", f->out);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/subdir.txt/inner.txt", f->out);
	fd = open(p, O_WRONLY | O_CREAT, 0600);
	close(fd);
	snprintf(p, sizeof(p), "%s/pipe.txt", f->out);
	assert_int_equal(mkfifo(p, 0600), 0);
	snprintf(p, sizeof(p), "%s/sock.txt", f->out);
	assert_int_equal(mknod(p, S_IFSOCK | 0600, 0), 0);
	put_sparse(f, "huge.log", (25 << 20) + 1);

	collect(f, NULL, &res);
	assert_int_equal(res.n_saved, 1);
	assert_string_equal(res.saved[0].name, "ok.txt");
	expect_reason(&res, "tool.exe", "extension '.exe' is not allowed");
	expect_reason(&res, "run.sh", "extension '.sh' is not allowed");
	expect_reason(&res, "noext", "no extension (only allowed extensions are kept)");
	expect_reason(&res, ".env", "no extension (only allowed extensions are kept)");
	expect_reason(&res, "??????", "name has no usable characters");
	expect_reason(&res, "passwd.txt", "symlink");
	expect_reason(&res, "dangling.txt", "symlink");
	expect_reason(&res, "hard.txt", "hard link");
	expect_reason(&res, "subdir.txt", "directory");
	expect_reason(&res, "pipe.txt", "not a regular file");
	expect_reason(&res, "sock.txt", "not a regular file");
	expect_reason(&res, "huge.log", "larger than 25 MiB");
	/* Nothing is dropped silently: every entry is saved or skipped. */
	assert_int_equal(res.n_saved + res.n_skipped, count_entries(f->out));
	/* Only what was saved is in the destination; /etc/passwd is not. */
	assert_int_equal(count_entries(f->dest), 1);
	artifacts_result_free(&res);
}

static void test_env_dotfile_name(void **state)
{
	struct fx *f = *state;
	struct artifact_result res;
	put(f, ".notes.txt", "n");
	collect(f, NULL, &res);
	assert_int_equal(res.n_saved, 1);
	assert_string_equal(res.saved[0].name, "notes.txt");
	assert_string_equal(res.saved[0].original, ".notes.txt");
	artifacts_result_free(&res);
}

static void test_duplicates(void **state)
{
	struct fx *f = *state;
	struct artifact_result res;
	put(f, "a b.txt", "1");
	put(f, "a?b.txt", "2");
	put(f, "a_b.txt", "3");
	put(f, "A_B.TXT", "4");
	put(f, "a_b-1.txt", "5");
	put(f, "r\xc3\xa9sum\xc3\xa9.pdf", "6");
	put(f, "r\xc3\xa8sum\xc3\xa8.pdf", "7");
	collect(f, NULL, &res);
	assert_int_equal(res.n_saved, 7);
	assert_int_equal(res.n_skipped, 0);
	/* In byte order of the names found: "A_B.TXT", "a b.txt", "a?b.txt",
	 * "a_b-1.txt", "a_b.txt", then the two UTF-8 names. Clashes are
	 * case-insensitive. */
	const char *want[][2] = {
		{ "A_B.TXT", "A_B.TXT" },     { "a b.txt", "a_b-1.txt" },
		{ "a?b.txt", "a_b-2.txt" },   { "a_b-1.txt", "a_b-1-1.txt" },
		{ "a_b.txt", "a_b-3.txt" },   { "r??sum??.pdf", "r_sum_.pdf" },
		{ "r??sum??.pdf", "r_sum_-1.pdf" },
	};
	for (size_t i = 0; i < 7; i++) {
		assert_string_equal(res.saved[i].original, want[i][0]);
		assert_string_equal(res.saved[i].name, want[i][1]);
	}
	/* Each copy holds its own bytes. */
	char p[512], buf[8];
	snprintf(p, sizeof(p), "%s/a_b-2.txt", f->dest);
	int fd = open(p, O_RDONLY);
	assert_int_equal(read(fd, buf, sizeof(buf)), 1);
	assert_int_equal(buf[0], '2');
	close(fd);
	assert_int_equal(count_entries(f->dest), 7);
	artifacts_result_free(&res);
}

static void test_max_files(void **state)
{
	struct fx *f = *state;
	struct artifact_result res;
	char name[32];
	for (int i = 0; i < 21; i++) {
		snprintf(name, sizeof(name), "f%02d.txt", i);
		put(f, name, name);
	}
	put(f, "z.exe", "x");
	collect(f, NULL, &res);
	assert_int_equal(res.n_saved, 20);
	assert_string_equal(res.saved[19].name, "f19.txt");
	assert_int_equal(res.n_skipped, 2);
	expect_reason(&res, "f20.txt", "more than 20 files");
	/* A skipped file does not use up a place. */
	expect_reason(&res, "z.exe", "extension '.exe' is not allowed");
	artifacts_result_free(&res);

	/* A lower limit from the caller. */
	struct artifact_limits lim = { .max_files = 3 };
	snprintf(f->dest, sizeof(f->dest), "%s/dest2", f->tmp);
	collect(f, &lim, &res);
	assert_int_equal(res.n_saved, 3);
	expect_reason(&res, "f03.txt", "more than 3 files");
	artifacts_result_free(&res);
}

static void test_sizes(void **state)
{
	struct fx *f = *state;
	struct artifact_result res;
	struct artifact_limits lim = { .max_file_bytes = 1000, .max_total_bytes = 2500 };
	put_sparse(f, "a.bin.txt", 1000);
	put_sparse(f, "b.txt", 1001);
	put_sparse(f, "c.txt", 1000);
	put_sparse(f, "d.txt", 600);
	put_sparse(f, "e.txt", 500);
	put_sparse(f, "f.txt", 0);
	collect(f, &lim, &res);
	/* a 1000, c 1000 (2000), d would be 2600, e makes 2500, f 0. */
	assert_int_equal(res.n_saved, 4);
	assert_non_null(saved(&res, "a.bin.txt"));
	assert_non_null(saved(&res, "c.txt"));
	assert_non_null(saved(&res, "e.txt"));
	assert_non_null(saved(&res, "f.txt"));
	expect_reason(&res, "b.txt", "larger than 1000 bytes");
	expect_reason(&res, "d.txt", "total over 2500 bytes");
	assert_int_equal(saved(&res, "f.txt")->size, 0);
	artifacts_result_free(&res);

	/* MiB limits read as MiB. */
	struct artifact_limits mib = { .max_file_bytes = 2ull << 20,
				       .max_total_bytes = 3ull << 20 };
	snprintf(f->dest, sizeof(f->dest), "%s/dest2", f->tmp);
	put_sparse(f, "a.bin.txt", 2 << 20);
	put_sparse(f, "b.txt", (2 << 20) + 1);
	put_sparse(f, "c.txt", 2 << 20);
	collect(f, &mib, &res);
	expect_reason(&res, "b.txt", "larger than 2 MiB");
	expect_reason(&res, "c.txt", "total over 3 MiB");
	artifacts_result_free(&res);
}

static void test_extensions_from_caller(void **state)
{
	struct fx *f = *state;
	struct artifact_result res;
	const char *const exts[] = { "py" };
	struct artifact_limits lim = { .extensions = exts, .n_extensions = 1 };
	put(f, "main.py", "print(1)");
	put(f, "notes.txt", "x");
	collect(f, &lim, &res);
	assert_int_equal(res.n_saved, 1);
	assert_string_equal(res.saved[0].name, "main.py");
	expect_reason(&res, "notes.txt", "extension '.txt' is not allowed");
	artifacts_result_free(&res);
}

static void test_deterministic(void **state)
{
	struct fx *f = *state;
	struct artifact_result a, b;
	const char *names[] = { "zeta.md", "alpha.md", "x y.csv", "x_y.csv", "bad.exe", "m.png" };
	for (size_t i = 0; i < 6; i++)
		put(f, names[i], names[i]);
	collect(f, NULL, &a);
	snprintf(f->dest, sizeof(f->dest), "%s/dest2", f->tmp);
	collect(f, NULL, &b);
	assert_int_equal(a.n_saved, b.n_saved);
	assert_int_equal(a.n_skipped, b.n_skipped);
	assert_memory_equal(a.saved, b.saved, a.n_saved * sizeof(*a.saved));
	assert_memory_equal(a.skipped, b.skipped, a.n_skipped * sizeof(*a.skipped));
	assert_string_equal(a.saved[0].name, "alpha.md");
	artifacts_result_free(&a);
	artifacts_result_free(&b);
}

static void test_scan_bound(void **state)
{
	struct fx *f = *state;
	struct artifact_result res;
	char name[32];
	for (int i = 0; i < ARTIFACT_SCAN_MAX + 5; i++) {
		snprintf(name, sizeof(name), "f%04d.exe", i);
		put(f, name, "");
	}
	collect(f, NULL, &res);
	assert_int_equal(res.n_saved, 0);
	assert_int_equal(res.n_skipped, ARTIFACT_SCAN_MAX + 1);
	assert_string_equal(res.skipped[ARTIFACT_SCAN_MAX].name, "...");
	assert_non_null(strstr(res.skipped[ARTIFACT_SCAN_MAX].reason, "more than 1000 entries"));
	artifacts_result_free(&res);
}

static void test_nothing_to_collect(void **state)
{
	struct fx *f = *state;
	struct artifact_result res;
	struct cdn_err err = { 0 };
	assert_int_equal(artifacts_collect(-1, f->s, f->dest, NULL, &res, &err), 0);
	assert_int_equal(res.n_saved + res.n_skipped, 0);
	struct stat st;
	assert_int_equal(stat(f->dest, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	/* An empty out/. */
	collect(f, NULL, &res);
	assert_int_equal(res.n_saved + res.n_skipped, 0);
	artifacts_result_free(&res);
	/* A destination that cannot be made is an error, not a skip. */
	char p[512];
	snprintf(p, sizeof(p), "%s/no/such/dir", f->tmp);
	assert_true(artifacts_collect(f->out_fd, f->s, p, NULL, &res, &err) < 0);
	assert_non_null(strstr(err.msg, "mkdir"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sanitize),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test_setup_teardown(test_collect_basic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_skip_reasons, setup, teardown),
		cmocka_unit_test_setup_teardown(test_env_dotfile_name, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sizes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_extensions_from_caller, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deterministic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scan_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nothing_to_collect, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
