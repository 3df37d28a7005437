/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "base/file.h"
#include "base/units.h"

static void test_size(void **state)
{
	(void)state;
	uint64_t v;
	struct cdn_err err = { 0 };
	assert_int_equal(cdn_parse_size("512", &v, &err), 0);
	assert_int_equal(v, 512);
	assert_int_equal(cdn_parse_size("64m", &v, &err), 0);
	assert_int_equal(v, 64ull << 20);
	assert_int_equal(cdn_parse_size("1G", &v, &err), 0);
	assert_int_equal(v, 1ull << 30);
	assert_int_equal(cdn_parse_size("2GiB", &v, &err), 0);
	assert_int_equal(v, 2ull << 30);
	assert_int_equal(cdn_parse_size("3kb", &v, &err), 0);
	assert_int_equal(v, 3072);
	assert_true(cdn_parse_size("", &v, &err) < 0);
	assert_true(cdn_parse_size("m", &v, &err) < 0);
	assert_true(cdn_parse_size("12x", &v, &err) < 0);
	assert_true(cdn_parse_size("12mm", &v, &err) < 0);
	assert_true(cdn_parse_size("-1", &v, &err) < 0);
	assert_true(cdn_parse_size("99999999999999999999", &v, &err) < 0);
	assert_true(cdn_parse_size("17179869184g", &v, &err) < 0);
	assert_non_null(strstr(err.msg, "too large"));
}

static void test_duration(void **state)
{
	(void)state;
	uint64_t v;
	struct cdn_err err = { 0 };
	assert_int_equal(cdn_parse_duration_ms("30", &v, &err), 0);
	assert_int_equal(v, 30000);
	assert_int_equal(cdn_parse_duration_ms("500ms", &v, &err), 0);
	assert_int_equal(v, 500);
	assert_int_equal(cdn_parse_duration_ms("2m", &v, &err), 0);
	assert_int_equal(v, 120000);
	assert_int_equal(cdn_parse_duration_ms("1h", &v, &err), 0);
	assert_int_equal(v, 3600000);
	assert_int_equal(cdn_parse_duration_ms("2d", &v, &err), 0);
	assert_int_equal(v, 2 * 86400000ull);
	assert_true(cdn_parse_duration_ms("1w", &v, &err) < 0);
	assert_non_null(strstr(err.msg, "unknown unit"));
	assert_true(cdn_parse_duration_ms("s", &v, &err) < 0);
	assert_true(cdn_parse_duration_ms("1.5s", &v, &err) < 0);
}

static void test_cpu(void **state)
{
	(void)state;
	uint64_t v;
	struct cdn_err err = { 0 };
	assert_int_equal(cdn_parse_cpu("0.5", &v, &err), 0);
	assert_int_equal(v, 500);
	assert_int_equal(cdn_parse_cpu("2", &v, &err), 0);
	assert_int_equal(v, 2000);
	assert_int_equal(cdn_parse_cpu("1.25", &v, &err), 0);
	assert_int_equal(v, 1250);
	assert_int_equal(cdn_parse_cpu("0", &v, &err), 0);
	assert_int_equal(v, 0);
	assert_int_equal(cdn_parse_cpu(".5", &v, &err), 0);
	assert_int_equal(v, 500);
	assert_true(cdn_parse_cpu("0.001", &v, &err) < 0);
	assert_true(cdn_parse_cpu("1.", &v, &err) < 0);
	assert_true(cdn_parse_cpu("abc", &v, &err) < 0);
	assert_true(cdn_parse_cpu("99999", &v, &err) < 0);
}

static void test_uint(void **state)
{
	(void)state;
	uint64_t v;
	struct cdn_err err = { 0 };
	assert_int_equal(cdn_parse_uint("65535", 65535, &v, &err), 0);
	assert_true(cdn_parse_uint("65536", 65535, &v, &err) < 0);
	assert_true(cdn_parse_uint("12a", 100, &v, &err) < 0);
	assert_true(cdn_parse_uint("", 100, &v, &err) < 0);
}

/* A pipe holding n bytes of 'x', its write end closed. */
static int pipe_of(size_t n)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	char buf[256];
	memset(buf, 'x', sizeof(buf));
	for (size_t done = 0; done < n;) {
		size_t k = n - done < sizeof(buf) ? n - done : sizeof(buf);
		assert_int_equal(write(p[1], buf, k), (ssize_t)k);
		done += k;
	}
	close(p[1]);
	return p[0];
}

static void test_read_fd(void **state)
{
	(void)state;
	static const size_t sizes[] = { 0, 1, 4095, 4096, 4097, 9000, 10000 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		char *buf;
		size_t len;
		int fd = pipe_of(sizes[i]);
		int r = cdn_read_fd(fd, 9000, &buf, &len);
		close(fd);
		if (sizes[i] > 9000) {
			assert_int_equal(r, -EFBIG);
			assert_null(buf);
			continue;
		}
		assert_int_equal(r, 0);
		assert_int_equal(len, sizes[i]);
		assert_int_equal(buf[len], '\0');
		free(buf);
	}
	char *buf;
	size_t len;
	assert_int_equal(cdn_read_fd(-1, 10, &buf, &len), -EBADF);
	int fd = pipe_of(1);
	assert_int_equal(cdn_read_fd(fd, 0, &buf, &len), -EFBIG);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_size),
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_cpu),
		cmocka_unit_test(test_uint),
		cmocka_unit_test(test_read_fd),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
