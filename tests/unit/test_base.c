/* SPDX-License-Identifier: Apache-2.0 */
/* The shared helpers of src/base/. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "base/clock.h"
#include "base/file.h"
#include "base/hash.h"

/* ------------------------------------------------------------------ clock */

static void test_rfc3339(void **state)
{
	(void)state;
	char b[CDN_RFC3339_MAX];
	/* 2024-05-01T02:58:36.615Z */
	int64_t ms = 1714532316615;
	assert_string_equal(cdn_rfc3339(ms, CDN_TIME_MS, b, sizeof(b)), "2024-05-01T02:58:36.615Z");
	assert_string_equal(cdn_rfc3339(ms, CDN_TIME_S, b, sizeof(b)), "2024-05-01T02:58:36Z");
	assert_string_equal(cdn_rfc3339(0, CDN_TIME_MS, b, sizeof(b)), "1970-01-01T00:00:00.000Z");
	assert_string_equal(cdn_rfc3339(7, CDN_TIME_MS, b, sizeof(b)), "1970-01-01T00:00:00.007Z");
	assert_string_equal(cdn_rfc3339(999, CDN_TIME_S, b, sizeof(b)), "1970-01-01T00:00:00Z");
	/* Before 1970 the milliseconds count down, not up. */
	assert_string_equal(cdn_rfc3339(-1, CDN_TIME_MS, b, sizeof(b)), "1969-12-31T23:59:59.999Z");
	assert_string_equal(cdn_rfc3339(-1000, CDN_TIME_MS, b, sizeof(b)),
			    "1969-12-31T23:59:59.000Z");
	/* A buffer too small is still terminated. */
	char small[8];
	cdn_rfc3339(ms, CDN_TIME_MS, small, sizeof(small));
	assert_true(memchr(small, '\0', sizeof(small)) != NULL);
}

static void test_clocks(void **state)
{
	(void)state;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t before = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	int64_t wall = cdn_wall_ms();
	assert_true(wall >= before && wall - before < 5000);

	uint64_t m0 = cdn_mono_ms(), n0 = cdn_mono_ns();
	struct timespec nap = { 0, 20 * 1000 * 1000 };
	nanosleep(&nap, NULL);
	uint64_t m1 = cdn_mono_ms(), n1 = cdn_mono_ns();
	assert_true(m1 - m0 >= 20);
	assert_true(n1 - n0 >= 20 * 1000 * 1000ull);
	/* The two read one clock. */
	assert_true(n1 / 1000000 >= m1);

	for (uint64_t ms = 0; ms < 3000; ms += 999) {
		struct timespec d = cdn_wall_after(ms);
		int64_t at = (int64_t)d.tv_sec * 1000 + d.tv_nsec / 1000000;
		assert_true(d.tv_nsec >= 0 && d.tv_nsec < 1000000000);
		assert_true(at - cdn_wall_ms() <= (int64_t)ms);
		assert_true(at - cdn_wall_ms() >= (int64_t)ms - 1000);
	}
}

/* ------------------------------------------------------------------- hash */

#define ABC_SHA256 "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

static void test_sha256(void **state)
{
	(void)state;
	char hex[CDN_SHA256_HEX + 1];
	cdn_sha256_hex("abc", 3, hex);
	assert_string_equal(hex, ABC_SHA256);
	cdn_sha256_hex("", 0, hex);
	assert_string_equal(hex,
			    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");

	int p[2];
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], "abc", 3), 3);
	close(p[1]);
	assert_int_equal(cdn_sha256_fd(p[0], hex), 0);
	close(p[0]);
	assert_string_equal(hex, ABC_SHA256);

	assert_true(cdn_sha256_hex_ok(ABC_SHA256, 64));
	assert_true(cdn_sha256_hex_str_ok(ABC_SHA256));
	assert_false(cdn_sha256_hex_str_ok(NULL));
	assert_false(cdn_sha256_hex_str_ok(""));
	assert_false(cdn_sha256_hex_str_ok(ABC_SHA256 "0")); /* too long */
	assert_false(cdn_sha256_hex_ok(ABC_SHA256, 63));     /* too short */
	char upper[] = ABC_SHA256;
	upper[0] = 'B';
	assert_false(cdn_sha256_hex_str_ok(upper)); /* one spelling only */
	char nul[] = ABC_SHA256;
	nul[10] = '\0';
	assert_false(cdn_sha256_hex_ok(nul, 64));
	char g[] = ABC_SHA256;
	g[63] = 'g';
	assert_false(cdn_sha256_hex_str_ok(g));
}

/* ------------------------------------------------------------------- file */

static void test_write_all(void **state)
{
	(void)state;
	/* More than a pipe holds, read on the other side as it is written:
	 * write(2) returns short, and every byte arrives once, in order. */
	int p[2];
	assert_int_equal(pipe(p), 0);
	size_t len = 1 << 20;
	char *buf = malloc(len);
	assert_non_null(buf);
	for (size_t i = 0; i < len; i++)
		buf[i] = (char)(i * 7);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		_exit(cdn_write_all(p[1], buf, len) == 0 ? 0 : 1);
	}
	close(p[1]);
	char *got = malloc(len + 1);
	size_t n = 0;
	for (ssize_t r; (r = read(p[0], got + n, len + 1 - n)) > 0;)
		n += (size_t)r;
	close(p[0]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_int_equal(n, len);
	assert_memory_equal(got, buf, len);
	free(got);

	/* A full non-blocking pipe: -EAGAIN, not a loop. */
	assert_int_equal(pipe2(p, O_NONBLOCK), 0);
	assert_int_equal(cdn_write_all(p[1], buf, len), -EAGAIN);
	close(p[0]);
	close(p[1]);
	free(buf);
	assert_int_equal(cdn_write_all(-1, "x", 1), -EBADF);
	assert_int_equal(cdn_write_all(-1, "", 0), 0);
}

static void test_write_once_at(void **state)
{
	(void)state;
	char dir[] = "/tmp/cdn-test-XXXXXX";
	assert_non_null(mkdtemp(dir));
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	assert_int_equal(cdn_write_once_at(dfd, "v", "1"), -ENOENT); /* never creates */
	int fd = openat(dfd, "v", O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(cdn_write_once_at(dfd, "v", "max 100000"), 0);
	char b[32] = "";
	fd = openat(dfd, "v", O_RDONLY | O_CLOEXEC);
	assert_int_equal(read(fd, b, sizeof(b) - 1), 10);
	close(fd);
	assert_string_equal(b, "max 100000");
	char path[64];
	snprintf(path, sizeof(path), "%s/v", dir);
	assert_int_equal(cdn_write_once_at(AT_FDCWD, path, "2"), 0);
	unlinkat(dfd, "v", 0);
	close(dfd);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc3339),
		cmocka_unit_test(test_clocks),
		cmocka_unit_test(test_sha256),
		cmocka_unit_test(test_write_all),
		cmocka_unit_test(test_write_once_at),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
