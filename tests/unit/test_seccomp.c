/* SPDX-License-Identifier: Apache-2.0 */
/* The seccomp programs compiled into cordon match the policy source. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sandbox/internal.h"

static void test_generated_matches_policy(void **state)
{
	(void)state;
	struct sb_bpf built[SB_BPF_PROGS], shipped[SB_BPF_PROGS];
	struct cdn_err err = { 0 };
	assert_int_equal(sb_seccomp_build(built, &err), 0);
	assert_int_equal(sb_seccomp_programs(shipped, &err), 0);
	for (int i = 0; i < SB_BPF_PROGS; i++) {
		assert_int_equal(built[i].len, shipped[i].len);
		assert_true(built[i].len > 4);
		assert_memory_equal(built[i].filter, shipped[i].filter,
				    built[i].len * sizeof(struct sock_filter));
		free(built[i].filter);
	}
}

static void test_arch_is_checked_first(void **state)
{
	(void)state;
	struct sb_bpf p[SB_BPF_PROGS];
	struct cdn_err err = { 0 };
	assert_int_equal(sb_seccomp_programs(p, &err), 0);
	for (int i = 0; i < SB_BPF_PROGS; i++) {
		/* ld [4] (seccomp_data.arch), then compare with AUDIT_ARCH_X86_64 */
		assert_int_equal(p[i].filter[0].code, 0x20);
		assert_int_equal(p[i].filter[0].k, 4);
		assert_int_equal(p[i].filter[1].k, 0xc000003e);
	}
}

static void test_helper_matches_policy(void **state)
{
	(void)state;
	struct sb_bpf built, shipped;
	struct cdn_err err = { 0 };
	assert_int_equal(sb_seccomp_build_helper(&built, &err), 0);
	sb_seccomp_helper_program(&shipped);
	assert_int_equal(built.len, shipped.len);
	assert_true(built.len > 4);
	assert_memory_equal(built.filter, shipped.filter, built.len * sizeof(struct sock_filter));
	assert_int_equal(shipped.filter[0].code, 0x20);
	assert_int_equal(shipped.filter[1].k, 0xc000003e);
	free(built.filter);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_helper_matches_policy),
		cmocka_unit_test(test_generated_matches_policy),
		cmocka_unit_test(test_arch_is_checked_first),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
