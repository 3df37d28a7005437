/* SPDX-License-Identifier: Apache-2.0 */
/* What a sandbox reports about its protections: Landlock part by part. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "sandbox/sandbox.h"

static void test_parts_of_abi(void **state)
{
	(void)state;
	assert_int_equal(sandbox_landlock_parts_of_abi(0), 0);
	assert_int_equal(sandbox_landlock_parts_of_abi(1), SANDBOX_LL_FS);
	/* Debian 12's 6.1 kernel */
	assert_int_equal(sandbox_landlock_parts_of_abi(2), SANDBOX_LL_FS | SANDBOX_LL_FS_REFER);
	assert_int_equal(sandbox_landlock_parts_of_abi(3),
			 SANDBOX_LL_FS | SANDBOX_LL_FS_REFER | SANDBOX_LL_FS_TRUNCATE);
	assert_true(sandbox_landlock_parts_of_abi(4) & SANDBOX_LL_NET_TCP);
	assert_false(sandbox_landlock_parts_of_abi(5) & SANDBOX_LL_SCOPE);
	unsigned all = sandbox_landlock_parts_of_abi(6);
	assert_int_equal(all, SANDBOX_LL_FS | SANDBOX_LL_FS_REFER | SANDBOX_LL_FS_TRUNCATE |
				      SANDBOX_LL_NET_TCP | SANDBOX_LL_FS_IOCTL_DEV | SANDBOX_LL_SCOPE);
	/* ABI 7 adds audit logging, no new restriction */
	assert_int_equal(sandbox_landlock_parts_of_abi(7), all);
}

static json_t *prot_json(int abi, unsigned degraded)
{
	struct sandbox_protections p = { .userns = true, .seccomp = true, .landlock_abi = abi,
					 .landlock_parts = sandbox_landlock_parts_of_abi(abi),
					 .cgroup_version = 2, .host_uid = 1000001000,
					 .degraded = degraded };
	json_t *j = sandbox_protections_json(&p);
	assert_non_null(j);
	return j;
}

static void test_abi2_is_reported_part_by_part(void **state)
{
	(void)state;
	json_t *j = prot_json(2, 0);
	json_t *ll = json_object_get(j, "landlock");
	assert_int_equal(json_integer_value(json_object_get(ll, "abi")), 2);
	assert_int_equal(json_integer_value(json_object_get(j, "landlock_abi")), 2);
	json_t *applied = json_object_get(ll, "applied");
	assert_int_equal(json_array_size(applied), 2);
	assert_string_equal(json_string_value(json_array_get(applied, 0)), "fs");
	assert_string_equal(json_string_value(json_array_get(applied, 1)), "fs_refer");
	/* every missing part says what holds the line instead */
	json_t *missing = json_object_get(ll, "missing");
	assert_int_equal(json_object_size(missing), 4);
	assert_string_equal(json_string_value(json_object_get(missing, "net_tcp")),
			    "network namespace");
	assert_string_equal(json_string_value(json_object_get(missing, "scope")),
			    "pid and network namespaces");
	assert_non_null(json_object_get(missing, "fs_truncate"));
	assert_non_null(json_object_get(missing, "fs_ioctl_dev"));
	/* nothing the operator lowered */
	assert_int_equal(json_array_size(json_object_get(j, "degraded")), 0);
	assert_string_equal(json_string_value(json_object_get(j, "cgroup")), "v2");
	json_decref(j);
}

static void test_full_and_none(void **state)
{
	(void)state;
	json_t *j = prot_json(7, 0);
	json_t *ll = json_object_get(j, "landlock");
	assert_int_equal(json_array_size(json_object_get(ll, "applied")), 6);
	assert_int_equal(json_object_size(json_object_get(ll, "missing")), 0);
	json_decref(j);

	j = prot_json(0, SANDBOX_PROT_LANDLOCK | SANDBOX_PROT_CGROUP);
	ll = json_object_get(j, "landlock");
	assert_int_equal(json_array_size(json_object_get(ll, "applied")), 0);
	assert_int_equal(json_object_size(json_object_get(ll, "missing")), 6);
	json_t *deg = json_object_get(j, "degraded");
	assert_int_equal(json_array_size(deg), 2);
	assert_string_equal(json_string_value(json_array_get(deg, 0)), "landlock");
	assert_string_equal(json_string_value(json_array_get(deg, 1)), "cgroup");
	json_decref(j);
}

static void test_parse_degraded(void **state)
{
	(void)state;
	unsigned bits = 0;
	struct cdn_err err = { 0 };
	assert_int_equal(sandbox_parse_degraded("landlock,seccomp", &bits, &err), 0);
	assert_int_equal(bits, SANDBOX_PROT_LANDLOCK | SANDBOX_PROT_SECCOMP);
	assert_true(sandbox_parse_degraded("landlock-net", &bits, &err) < 0);
	assert_non_null(strstr(err.msg, "unknown protection"));
}

/* The environment variable names a sandbox takes, which envs and secrets
 * narrow. */
static void test_env_names(void **state)
{
	(void)state;
	const char *good[] = { "PATH", "_", "a1", "OPENAI_API_KEY", "lower_case" };
	const char *bad[] = { "", "1A", "A-B", "A=B", "A B", "\xc3\xa9" };
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_true(sandbox_env_name_ok(good[i], strlen(good[i])));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(sandbox_env_name_ok(bad[i], strlen(bad[i])));
	assert_true(sandbox_env_name_ok("AB=x", 2)); /* only len bytes count */
	struct sandbox_config cfg;
	sandbox_config_init(&cfg);
	struct cdn_err err = { 0 };
	assert_int_equal(sandbox_config_add_env(&cfg, "9X=1", &err), -EINVAL);
	assert_int_equal(sandbox_config_add_env(&cfg, "X9=1", &err), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parts_of_abi),
		cmocka_unit_test(test_abi2_is_reported_part_by_part),
		cmocka_unit_test(test_full_and_none),
		cmocka_unit_test(test_parse_degraded),
		cmocka_unit_test(test_env_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
