/* SPDX-License-Identifier: Apache-2.0 */
/* The shared helpers of src/base/. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "base/clock.h"
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rfc3339),
	    cmocka_unit_test(test_clocks),
	    cmocka_unit_test(test_sha256),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
