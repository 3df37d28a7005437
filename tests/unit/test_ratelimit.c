/* SPDX-License-Identifier: Apache-2.0 */
/* The sliding-window limiter: exact at the window edge, Retry-After, limit
 * changes, many keys and eviction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "egress/ratelimit.h"

#define W RATELIMIT_WINDOW_MS

static void test_window_edge(void **state)
{
	(void)state;
	struct ratelimit *rl = ratelimit_new();
	assert_non_null(rl);
	/* 60 a minute: one request per second from t = 1000 to t = 60000. */
	for (uint64_t i = 0; i < 60; i++)
		assert_int_equal(ratelimit_take(rl, "api", 60, 1000 + i * 1000), 0);
	/* The 61st within 60 s of the first is refused... */
	assert_int_equal(ratelimit_take(rl, "api", 60, 60999), 1);
	assert_int_equal(ratelimit_check(rl, "api", 60, 60999), 1);
	assert_int_equal(ratelimit_take(rl, "api", 60, 60500), 500);
	/* ...and admitted once the first (t = 1000) has left (now - 60 s, now]. */
	assert_int_equal(ratelimit_take(rl, "api", 60, 61000), 0);
	/* Full again; the next slot is the second request's (t = 2000). */
	assert_int_equal(ratelimit_take(rl, "api", 60, 61000), 1000);
	assert_int_equal(ratelimit_take(rl, "api", 60, 61999), 1);
	assert_int_equal(ratelimit_take(rl, "api", 60, 62000), 0);
	ratelimit_free(rl);
}

static void test_retry_after(void **state)
{
	(void)state;
	struct ratelimit *rl = ratelimit_new();
	assert_int_equal(ratelimit_take(rl, "k", 3, 1000), 0);
	assert_int_equal(ratelimit_take(rl, "k", 3, 2000), 0);
	assert_int_equal(ratelimit_take(rl, "k", 3, 3000), 0);
	assert_int_equal(ratelimit_take(rl, "k", 3, 10000), W + 1000 - 10000);
	assert_int_equal(ratelimit_check(rl, "k", 3, 10000), W + 1000 - 10000);
	/* A refused request is not counted: the wait does not grow. */
	for (int i = 0; i < 100; i++)
		assert_int_equal(ratelimit_take(rl, "k", 3, 20000), W + 1000 - 20000);
	assert_int_equal(ratelimit_take(rl, "k", 3, 61000), 0);
	assert_int_equal(ratelimit_take(rl, "k", 3, 61000), 1000);
	/* Everything expires: a full window later, the whole limit again. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(ratelimit_take(rl, "k", 3, 200000), 0);
	assert_int_equal(ratelimit_take(rl, "k", 3, 200000), W);
	ratelimit_free(rl);
}

static void test_same_instant(void **state)
{
	(void)state;
	struct ratelimit *rl = ratelimit_new();
	for (int i = 0; i < 10; i++)
		assert_int_equal(ratelimit_take(rl, "burst", 10, 0), 0);
	assert_int_equal(ratelimit_take(rl, "burst", 10, 0), W);
	assert_int_equal(ratelimit_take(rl, "burst", 10, W - 1), 1);
	for (int i = 0; i < 10; i++)
		assert_int_equal(ratelimit_take(rl, "burst", 10, W), 0);
	ratelimit_free(rl);
}

static void test_check_does_not_count(void **state)
{
	(void)state;
	struct ratelimit *rl = ratelimit_new();
	assert_int_equal(ratelimit_check(rl, "never", 1, 5), 0);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(ratelimit_check(rl, "c", 2, 100), 0);
	assert_int_equal(ratelimit_take(rl, "c", 2, 100), 0);
	assert_int_equal(ratelimit_check(rl, "c", 2, 100), 0);
	assert_int_equal(ratelimit_take(rl, "c", 2, 200), 0);
	assert_int_equal(ratelimit_check(rl, "c", 2, 300), W + 100 - 300);
	assert_int_equal(ratelimit_check(rl, "c", 3, 300), 0);
	ratelimit_free(rl);
}

static void test_unlimited(void **state)
{
	(void)state;
	struct ratelimit *rl = ratelimit_new();
	for (int i = 0; i < 100000; i++)
		assert_int_equal(ratelimit_take(rl, "free", 0, 7), 0);
	assert_int_equal(ratelimit_check(rl, "free", 0, 7), 0);
	/* Limit 0 recorded nothing: a limit set later starts from scratch. */
	assert_int_equal(ratelimit_take(rl, "free", 1, 8), 0);
	assert_int_equal(ratelimit_take(rl, "free", 1, 9), W - 1);
	ratelimit_free(rl);
}

static void test_limit_changes(void **state)
{
	(void)state;
	struct ratelimit *rl = ratelimit_new();
	for (uint64_t t = 1; t <= 5; t++)
		assert_int_equal(ratelimit_take(rl, "x", 5, t * 1000), 0);
	assert_int_equal(ratelimit_take(rl, "x", 5, 6000), W + 1000 - 6000);
	/* Lowered to 2: four of the five must leave; the fourth (t = 4000)
	 * leaves last. check sees the same as take. */
	assert_int_equal(ratelimit_check(rl, "x", 2, 6000), W + 4000 - 6000);
	assert_int_equal(ratelimit_take(rl, "x", 2, 6000), W + 4000 - 6000);
	assert_int_equal(ratelimit_take(rl, "x", 2, W + 4000), 0);
	assert_int_equal(ratelimit_take(rl, "x", 2, W + 4000), W + 5000 - (W + 4000));
	/* Raised to 10: room at once, and the ring grows past 2. */
	for (int i = 0; i < 8; i++)
		assert_int_equal(ratelimit_take(rl, "x", 10, W + 4100), 0);
	assert_int_equal(ratelimit_take(rl, "x", 10, W + 4100), 900);
	/* Down to 1 and back up: exact all along. */
	assert_int_equal(ratelimit_take(rl, "x", 1, W + 4100), W);
	assert_int_equal(ratelimit_take(rl, "x", 1, 2 * W + 4100), 0);
	assert_int_equal(ratelimit_take(rl, "x", 3, 2 * W + 4200), 0);
	assert_int_equal(ratelimit_take(rl, "x", 3, 2 * W + 4300), 0);
	assert_int_equal(ratelimit_take(rl, "x", 3, 2 * W + 4400), W - 300);
	ratelimit_free(rl);
}

static void test_clamped(void **state)
{
	(void)state;
	struct ratelimit *rl = ratelimit_new();
	for (uint32_t i = 0; i < RATELIMIT_MAX_PER_MINUTE; i++)
		if (ratelimit_take(rl, "big", UINT32_MAX, i / 4) != 0)
			fail_msg("refused request %u", i);
	assert_true(ratelimit_take(rl, "big", UINT32_MAX, RATELIMIT_MAX_PER_MINUTE / 4) > 0);
	assert_true(ratelimit_take(rl, "big", RATELIMIT_MAX_PER_MINUTE + 1, 25000) > 0);
	assert_int_equal(ratelimit_take(rl, "big", UINT32_MAX, W), 0);
	ratelimit_free(rl);
}

static void test_keys_independent(void **state)
{
	(void)state;
	struct ratelimit *rl = ratelimit_new();
	assert_int_equal(ratelimit_take(rl, "a", 1, 0), 0);
	assert_int_equal(ratelimit_take(rl, "b", 1, 0), 0);
	assert_int_equal(ratelimit_take(rl, "a", 1, 1), W - 1);
	assert_int_equal(ratelimit_take(rl, "b", 1, 2), W - 2);
	assert_int_equal(ratelimit_take(rl, "ab", 1, 2), 0);
	assert_int_equal(ratelimit_take(rl, "", 1, 2), 0);
	assert_int_equal(ratelimit_take(rl, "", 1, 3), W - 1);
	ratelimit_free(rl);
}

static void test_eviction(void **state)
{
	(void)state;
	struct ratelimit *rl = ratelimit_new();
	char key[32];
	assert_int_equal(ratelimit_take(rl, "kept", 1, 0), 0);
	assert_int_equal(ratelimit_take(rl, "dropped", 1, 0), 0);
	/* Fill the table, touching "kept" now and then so it stays recent. */
	for (int i = 0; i < RATELIMIT_MAX_KEYS - 1; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(ratelimit_take(rl, key, 5, 10), 0);
		if (i % 100 == 0)
			assert_int_equal(ratelimit_check(rl, "kept", 1, 10), W - 10);
	}
	/* The least recently used key ("dropped") lost its history. */
	assert_int_equal(ratelimit_check(rl, "kept", 1, 20), W - 20);
	assert_int_equal(ratelimit_take(rl, "dropped", 1, 20), 0);
	/* The live keys still count. */
	assert_int_equal(ratelimit_take(rl, "k4000", 1, 30), W - 20);
	/* Many more keys than the table holds: bounded, no failure. */
	for (int i = 0; i < 3 * RATELIMIT_MAX_KEYS; i++) {
		snprintf(key, sizeof(key), "n%d", i);
		assert_int_equal(ratelimit_take(rl, key, 1, 40), 0);
		assert_int_equal(ratelimit_take(rl, key, 1, 41), W - 1);
	}
	ratelimit_free(rl);
}

static void test_fail_closed(void **state)
{
	(void)state;
	assert_int_equal(ratelimit_take(NULL, "k", 1, 0), W);
	assert_int_equal(ratelimit_check(NULL, "k", 1, 0), W);
	struct ratelimit *rl = ratelimit_new();
	assert_int_equal(ratelimit_take(rl, NULL, 1, 0), W);
	char key[RATELIMIT_MAX_KEY_LEN + 2];
	memset(key, 'k', sizeof(key) - 1);
	key[sizeof(key) - 1] = '\0';
	assert_int_equal(ratelimit_take(rl, key, 1, 0), W);
	key[RATELIMIT_MAX_KEY_LEN] = '\0';
	assert_int_equal(ratelimit_take(rl, key, 1, 0), 0);
	assert_int_equal(ratelimit_take(rl, key, 1, 0), W);
	ratelimit_free(rl);
	ratelimit_free(NULL);
}

/* A burst then a trickle: the ring shrinks back and stays exact. */
static void test_ring_shrinks(void **state)
{
	(void)state;
	struct ratelimit *rl = ratelimit_new();
	for (int i = 0; i < 5000; i++)
		assert_int_equal(ratelimit_take(rl, "s", 10000, 0), 0);
	for (uint64_t t = W; t < 3 * W; t += 1000)
		assert_int_equal(ratelimit_take(rl, "s", 10000, t), 0);
	for (uint64_t t = 3 * W; t < 4 * W; t += 1000)
		assert_int_equal(ratelimit_take(rl, "s", 60, t), 0);
	assert_int_equal(ratelimit_take(rl, "s", 60, 4 * W), 0);
	assert_int_equal(ratelimit_take(rl, "s", 60, 4 * W), 1000);
	ratelimit_free(rl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_window_edge),	     cmocka_unit_test(test_retry_after),
		cmocka_unit_test(test_same_instant),	     cmocka_unit_test(test_check_does_not_count),
		cmocka_unit_test(test_unlimited),	     cmocka_unit_test(test_limit_changes),
		cmocka_unit_test(test_clamped),		     cmocka_unit_test(test_keys_independent),
		cmocka_unit_test(test_eviction),	     cmocka_unit_test(test_fail_closed),
		cmocka_unit_test(test_ring_shrinks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
