/* SPDX-License-Identifier: Apache-2.0 */
/* Placeholders for sealed secrets: same length and shape, fresh, distinct. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "vault/seal.h"

static void shape_of(const char *value, const char *keep_prefix)
{
	size_t len = strlen(value);
	char a[512], b[512];
	struct cdn_err err = { 0 };
	assert_int_equal(seal_placeholder((const uint8_t *)value, len, b, &err), 0);
	/* Each letter and digit after the kept prefix is drawn afresh, so one
	 * may come out as it was by chance (1 in 10 for a digit): over many
	 * draws, most of them change. One draw's count is no test: for a
	 * short value it is below any fixed bound now and then. */
	size_t changed = 0, drawn = 0;
	for (int draw = 0; draw < 32; draw++) {
		assert_int_equal(seal_placeholder((const uint8_t *)value, len, a, &err), 0);
		assert_int_equal(strlen(a), len);
		assert_string_not_equal(a, value);
		assert_memory_equal(a, keep_prefix, strlen(keep_prefix));
		for (size_t i = 0; i < len; i++) {
			unsigned char v = (unsigned char)value[i], p = (unsigned char)a[i];
			if (isalnum(v)) {
				assert_true(!!islower(v) == !!islower(p));
				assert_true(!!isupper(v) == !!isupper(p));
				assert_true(!!isdigit(v) == !!isdigit(p));
				if (i >= strlen(keep_prefix)) {
					drawn++;
					changed += v != p;
				}
			} else {
				assert_int_equal(v, p); /* separators and symbols stay */
			}
		}
	}
	assert_string_not_equal(a, b); /* fresh every time */
	assert_true(drawn > 0 && changed * 4 >= drawn * 3);
}

static void test_shapes(void **state)
{
	(void)state;
	shape_of("sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", "sk-proj-");
	shape_of("sk-ant-api03-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe-abcdEFGH", "sk-ant-api03-");
	shape_of("ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8", "ghp_");
	shape_of("xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "xoxb-");
	shape_of("wJalrXUtnFEMI/K7MDENG/bPxRfiCYzz1234EXAMP", "");
	shape_of("0123456789abcdef", "");
	/* a tag that would leave too little random is not kept */
	shape_of("abcd-efgh-ijkl-mnop", "");
	shape_of("ab12c", "");
}

static void test_refused(void **state)
{
	(void)state;
	char out[64];
	struct cdn_err err = { 0 };
	assert_true(seal_placeholder((const uint8_t *)"a-b-c-=+/", 9, out, &err) < 0);
	assert_non_null(strstr(err.msg, "letters and digits"));
	assert_true(seal_placeholder((const uint8_t *)"abc\0defghijk", 12, out, &err) < 0);
	assert_non_null(strstr(err.msg, "NUL"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shapes),
		cmocka_unit_test(test_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
