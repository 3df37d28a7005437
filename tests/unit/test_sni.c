/* SPDX-License-Identifier: Apache-2.0 */
/* The ClientHello server-name parser (egress/sni.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "egress/sni.h"

/* A minimal ClientHello: `names` host_name entries in one server_name
 * extension (none: no extension), after an unrelated extension. */
static size_t hello(uint8_t *out, const char *const *names, size_t n, bool twice)
{
	uint8_t ext[1024];
	size_t e = 0;
	/* an unrelated extension first (supported_versions) */
	ext[e++] = 0x00, ext[e++] = 0x2b, ext[e++] = 0x00, ext[e++] = 0x03;
	ext[e++] = 0x02, ext[e++] = 0x03, ext[e++] = 0x04;
	for (int t = 0; t < (twice ? 2 : 1) && n; t++) {
		size_t list = 0;
		for (size_t i = 0; i < n; i++)
			list += 3 + strlen(names[i]);
		ext[e++] = 0x00, ext[e++] = 0x00; /* server_name */
		ext[e++] = (uint8_t)((list + 2) >> 8), ext[e++] = (uint8_t)(list + 2);
		ext[e++] = (uint8_t)(list >> 8), ext[e++] = (uint8_t)list;
		for (size_t i = 0; i < n; i++) {
			size_t l = strlen(names[i]);
			ext[e++] = 0x00;
			ext[e++] = (uint8_t)(l >> 8), ext[e++] = (uint8_t)l;
			memcpy(ext + e, names[i], l);
			e += l;
		}
	}
	uint8_t body[2048];
	size_t b = 0;
	body[b++] = 0x03, body[b++] = 0x03;
	memset(body + b, 0x11, 32), b += 32;
	body[b++] = 0; /* session id */
	body[b++] = 0x00, body[b++] = 0x02, body[b++] = 0x13, body[b++] = 0x01;
	body[b++] = 0x01, body[b++] = 0x00; /* compression */
	body[b++] = (uint8_t)(e >> 8), body[b++] = (uint8_t)e;
	memcpy(body + b, ext, e), b += e;
	size_t o = 0;
	out[o++] = 22, out[o++] = 3, out[o++] = 1;
	out[o++] = (uint8_t)((b + 4) >> 8), out[o++] = (uint8_t)(b + 4);
	out[o++] = 1, out[o++] = 0, out[o++] = (uint8_t)(b >> 8), out[o++] = (uint8_t)b;
	memcpy(out + o, body, b);
	return o + b;
}

static void test_found(void **state)
{
	(void)state;
	uint8_t buf[4096];
	char name[256];
	const char *n[] = { "API.Example.com" };
	size_t len = hello(buf, n, 1, false);
	assert_int_equal(sni_parse(buf, len, name, sizeof(name)), SNI_FOUND);
	assert_string_equal(name, "api.example.com");
	/* every prefix is "more", never a wrong answer */
	for (size_t k = 0; k < len; k++)
		assert_int_equal(sni_parse(buf, k, name, sizeof(name)), SNI_MORE);
}

static void test_refused(void **state)
{
	(void)state;
	uint8_t buf[4096];
	char name[256];
	size_t len = hello(buf, NULL, 0, false);
	assert_int_equal(sni_parse(buf, len, name, sizeof(name)), SNI_NONE);
	const char *two[] = { "a.test", "b.test" };
	len = hello(buf, two, 2, false);
	assert_int_equal(sni_parse(buf, len, name, sizeof(name)), SNI_MALFORMED);
	const char *one[] = { "a.test" };
	len = hello(buf, one, 1, true);
	assert_int_equal(sni_parse(buf, len, name, sizeof(name)), SNI_MALFORMED);
	const char *bad[] = { "a.test/x" };
	len = hello(buf, bad, 1, false);
	assert_int_equal(sni_parse(buf, len, name, sizeof(name)), SNI_MALFORMED);
	const uint8_t http[] = "GET / HTTP/1.1\r\n";
	assert_int_equal(sni_parse(http, sizeof(http) - 1, name, sizeof(name)), SNI_NOT_TLS);
	/* a handshake length that runs past the record */
	len = hello(buf, one, 1, false);
	buf[8] = (uint8_t)(buf[8] + 1);
	assert_int_equal(sni_parse(buf, len, name, sizeof(name)), SNI_MALFORMED);
	/* a record over 16 KiB */
	uint8_t big[5] = { 22, 3, 1, 0x40, 0x01 };
	assert_int_equal(sni_parse(big, sizeof(big), name, sizeof(name)), SNI_MALFORMED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_found),
		cmocka_unit_test(test_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
