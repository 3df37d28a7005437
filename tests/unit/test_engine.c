/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The egress engine's construction when memory runs out: each allocation
 * egress_engine_new makes fails in turn, and each time it must fail as a
 * whole, hand back no engine, and keep nothing (ASan's leak check runs
 * this in the sanitizer build). The lists it copies once kept a NULL where
 * a copy failed (issue 11), and the policy's reference leaked when the
 * rate limiter could not be made.
 *
 * Linked with --wrap for malloc, calloc and strdup (tests/meson.build):
 * the calls of cordon's own code go through the wrappers below; those
 * inside shared libraries (libevent, jansson, libsodium) do not.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <event2/event.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "egress/engine.h"
#include "egress/policy.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
char *__real_strdup(const char *s);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
char *__wrap_strdup(const char *s);

/* 0: allocations succeed; n > 0: the n-th one from now fails. */
static int fail_in;

static bool fail_now(void)
{
	return fail_in > 0 && --fail_in == 0;
}

void *__wrap_malloc(size_t n)
{
	return fail_now() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
	return fail_now() ? NULL : __real_calloc(n, size);
}

char *__wrap_strdup(const char *s)
{
	return fail_now() ? NULL : __real_strdup(s);
}

static void test_new_out_of_memory(void **state)
{
	(void)state;
	static const struct inspect_secret secrets[] = {
		{ "RAW", "raw-value-12345678", 18 },
		{ "OTHER", "other-value-12345678", 20 },
		{ "SEALED", "PH-sealed-1234567890", 20 },
	};
	static const uint8_t value[] = "sk-sealed-1234567890";
	const struct egress_sealed sealed[] = {
		{ "SEALED", "PH-sealed-1234567890", value, 20 },
	};
	static const struct egress_secret_scope scopes[] = {
		{ "RAW", "api.example.com" },
		{ "SEALED", "*.example.org" },
	};
	struct event_base *base = event_base_new();
	assert_non_null(base);
	int failures = 0;
	for (int n = 1;; n++) {
		struct egress_policy *p = NULL;
		struct cdn_err err = { 0 };
		assert_int_equal(egress_policy_default(&p, &err), 0);
		const struct egress_engine_config cfg = {
			.run_id = "run_0123456789abcdef",
			.policy = p, /* the engine's, whatever happens */
			.secrets = secrets,
			.n_secrets = 3,
			.scopes = scopes,
			.n_scopes = 2,
			.sealed = sealed,
			.n_sealed = 1,
		};
		struct egress_engine *e = (struct egress_engine *)&failures; /* not kept */
		fail_in = n;
		int r = egress_engine_new(base, &cfg, &e, &err);
		bool failed = fail_in == 0;
		fail_in = 0;
		if (!failed) {
			/* past the last allocation */
			assert_int_equal(r, 0);
			assert_non_null(e);
			egress_engine_free(e);
			break;
		}
		if (r == 0)
			fail_msg("allocation %d failed and the engine was made anyway", n);
		assert_null(e);
		assert_true(err.msg[0] != '\0');
		failures++;
	}
	/* the engine, its copies, the policy's reference, the limiter, the
	 * inspector's tables, the sealed swaps, the secret lists */
	assert_true(failures >= 12);
	event_base_free(base);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_out_of_memory),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
