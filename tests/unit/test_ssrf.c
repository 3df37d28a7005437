/* SPDX-License-Identifier: Apache-2.0 */
/* The SSRF guard: every block's first and last address and the neighbours
 * just outside, every IPv4-in-IPv6 form, and every numeric host spelling a
 * resolver could read as an address. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>
#include <cmocka.h>

#include "egress/ssrf.h"

struct addr_case {
	const char *addr;
	enum ssrf_class cls;
};

static enum ssrf_class classify_text(const char *text)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	if (strchr(text, ':')) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		in6->sin6_family = AF_INET6;
		if (inet_pton(AF_INET6, text, &in6->sin6_addr) != 1)
			fail_msg("bad test address %s", text);
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		in->sin_family = AF_INET;
		if (inet_pton(AF_INET, text, &in->sin_addr) != 1)
			fail_msg("bad test address %s", text);
	}
	return ssrf_classify((const struct sockaddr *)&ss);
}

static void check_cases(const struct addr_case *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		enum ssrf_class got = classify_text(c[i].addr);
		if (got != c[i].cls)
			fail_msg("%s: got %s, want %s", c[i].addr, ssrf_class_name(got),
				 ssrf_class_name(c[i].cls));
	}
}

static void test_ipv4_blocks(void **state)
{
	(void)state;
	static const struct addr_case c[] = {
		{ "0.0.0.0", SSRF_UNSPECIFIED },
		{ "0.255.255.255", SSRF_UNSPECIFIED },
		{ "1.0.0.0", SSRF_PUBLIC },
		{ "9.255.255.255", SSRF_PUBLIC },
		{ "10.0.0.0", SSRF_PRIVATE },
		{ "10.255.255.255", SSRF_PRIVATE },
		{ "11.0.0.0", SSRF_PUBLIC },
		{ "100.63.255.255", SSRF_PUBLIC },
		{ "100.64.0.0", SSRF_CGNAT },
		{ "100.127.255.255", SSRF_CGNAT },
		{ "100.128.0.0", SSRF_PUBLIC },
		{ "126.255.255.255", SSRF_PUBLIC },
		{ "127.0.0.0", SSRF_LOOPBACK },
		{ "127.0.0.1", SSRF_LOOPBACK },
		{ "127.255.255.255", SSRF_LOOPBACK },
		{ "128.0.0.0", SSRF_PUBLIC },
		{ "169.253.255.255", SSRF_PUBLIC },
		{ "169.254.0.0", SSRF_LINK_LOCAL },
		{ "169.254.255.255", SSRF_LINK_LOCAL },
		{ "169.255.0.0", SSRF_PUBLIC },
		{ "172.15.255.255", SSRF_PUBLIC },
		{ "172.16.0.0", SSRF_PRIVATE },
		{ "172.31.255.255", SSRF_PRIVATE },
		{ "172.32.0.0", SSRF_PUBLIC },
		{ "191.255.255.255", SSRF_PUBLIC },
		{ "192.0.0.0", SSRF_RESERVED },
		{ "192.0.0.255", SSRF_RESERVED },
		{ "192.0.1.0", SSRF_PUBLIC },
		{ "192.0.1.255", SSRF_PUBLIC },
		{ "192.0.2.0", SSRF_DOCUMENTATION },
		{ "192.0.2.255", SSRF_DOCUMENTATION },
		{ "192.0.3.0", SSRF_PUBLIC },
		{ "192.88.98.255", SSRF_PUBLIC },
		{ "192.88.99.0", SSRF_RESERVED },
		{ "192.88.99.255", SSRF_RESERVED },
		{ "192.88.100.0", SSRF_PUBLIC },
		{ "192.167.255.255", SSRF_PUBLIC },
		{ "192.168.0.0", SSRF_PRIVATE },
		{ "192.168.255.255", SSRF_PRIVATE },
		{ "192.169.0.0", SSRF_PUBLIC },
		{ "198.17.255.255", SSRF_PUBLIC },
		{ "198.18.0.0", SSRF_RESERVED },
		{ "198.19.255.255", SSRF_RESERVED },
		{ "198.20.0.0", SSRF_PUBLIC },
		{ "198.51.99.255", SSRF_PUBLIC },
		{ "198.51.100.0", SSRF_DOCUMENTATION },
		{ "198.51.100.255", SSRF_DOCUMENTATION },
		{ "198.51.101.0", SSRF_PUBLIC },
		{ "203.0.112.255", SSRF_PUBLIC },
		{ "203.0.113.0", SSRF_DOCUMENTATION },
		{ "203.0.113.255", SSRF_DOCUMENTATION },
		{ "203.0.114.0", SSRF_PUBLIC },
		{ "223.255.255.255", SSRF_PUBLIC },
		{ "224.0.0.0", SSRF_MULTICAST },
		{ "239.255.255.255", SSRF_MULTICAST },
		{ "240.0.0.0", SSRF_RESERVED },
		{ "255.255.255.254", SSRF_RESERVED },
		{ "255.255.255.255", SSRF_BROADCAST },
		{ "8.8.8.8", SSRF_PUBLIC },
		{ "1.1.1.1", SSRF_PUBLIC },
	};
	check_cases(c, sizeof(c) / sizeof(c[0]));
}

static void test_ipv4_metadata(void **state)
{
	(void)state;
	static const struct addr_case c[] = {
		{ "169.254.169.254", SSRF_METADATA },
		{ "169.254.169.253", SSRF_LINK_LOCAL },
		{ "169.254.169.255", SSRF_LINK_LOCAL },
		{ "100.100.100.200", SSRF_METADATA },
		{ "100.100.100.199", SSRF_CGNAT },
		{ "100.100.100.201", SSRF_CGNAT },
		{ "168.63.129.16", SSRF_METADATA },
		{ "168.63.129.15", SSRF_PUBLIC },
		{ "168.63.129.17", SSRF_PUBLIC },
		{ "192.0.0.192", SSRF_METADATA },
		{ "192.0.0.191", SSRF_RESERVED },
	};
	check_cases(c, sizeof(c) / sizeof(c[0]));
}

static void test_ipv6_blocks(void **state)
{
	(void)state;
	static const struct addr_case c[] = {
		{ "::", SSRF_UNSPECIFIED },
		{ "::1", SSRF_LOOPBACK },
		{ "fe80::", SSRF_LINK_LOCAL },
		{ "fe80::1", SSRF_LINK_LOCAL },
		{ "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", SSRF_LINK_LOCAL },
		{ "fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", SSRF_RESERVED },
		{ "fec0::1", SSRF_RESERVED }, /* deprecated site-local */
		{ "fc00::", SSRF_ULA },
		{ "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", SSRF_ULA },
		{ "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", SSRF_RESERVED },
		{ "fd00:ec2::254", SSRF_METADATA },
		{ "fd00:ec2::253", SSRF_ULA },
		{ "fd00:ec2::255", SSRF_ULA },
		{ "ff00::", SSRF_MULTICAST },
		{ "ff02::1", SSRF_MULTICAST },
		{ "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", SSRF_MULTICAST },
		{ "2001:db8::", SSRF_DOCUMENTATION },
		{ "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", SSRF_DOCUMENTATION },
		{ "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", SSRF_PUBLIC },
		{ "2001:db9::", SSRF_PUBLIC },
		{ "3fff::", SSRF_DOCUMENTATION },
		{ "3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", SSRF_DOCUMENTATION },
		{ "3fff:1000::", SSRF_PUBLIC },
		{ "3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", SSRF_PUBLIC },
		{ "100::", SSRF_RESERVED },
		{ "100::ffff:ffff:ffff:ffff", SSRF_RESERVED },
		{ "100:0:0:1::", SSRF_RESERVED }, /* outside 2000::/3 all the same */
		{ "2001:1::", SSRF_RESERVED },
		{ "2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", SSRF_RESERVED },
		{ "2001:200::", SSRF_PUBLIC },
		{ "5f00::", SSRF_RESERVED },
		{ "5f00:ffff:ffff:ffff:ffff:ffff:ffff:ffff", SSRF_RESERVED },
		{ "1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", SSRF_RESERVED },
		{ "2000::", SSRF_PUBLIC },
		{ "3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", SSRF_PUBLIC },
		{ "4000::", SSRF_RESERVED },
		{ "2606:4700:4700::1111", SSRF_PUBLIC },
		{ "2001:4860:4860::8888", SSRF_PUBLIC },
	};
	check_cases(c, sizeof(c) / sizeof(c[0]));
}

static void test_ipv6_embedded(void **state)
{
	(void)state;
	static const struct addr_case c[] = {
		/* mapped */
		{ "::ffff:8.8.8.8", SSRF_PUBLIC },
		{ "::ffff:0.0.0.0", SSRF_UNSPECIFIED },
		{ "::ffff:127.0.0.1", SSRF_LOOPBACK },
		{ "::ffff:10.1.2.3", SSRF_PRIVATE },
		{ "::ffff:169.254.169.254", SSRF_METADATA },
		{ "::ffff:100.100.100.200", SSRF_METADATA },
		{ "::ffff:255.255.255.255", SSRF_BROADCAST },
		{ "::fffe:8.8.8.8", SSRF_RESERVED },
		/* compatible */
		{ "::8.8.8.8", SSRF_RESERVED },
		{ "::127.0.0.1", SSRF_LOOPBACK },
		{ "::169.254.169.254", SSRF_METADATA },
		{ "::192.168.1.1", SSRF_PRIVATE },
		{ "::2", SSRF_UNSPECIFIED }, /* 0.0.0.2 */
		{ "::1:0:0", SSRF_RESERVED },
		/* SIIT */
		{ "::ffff:0:8.8.8.8", SSRF_PUBLIC },
		{ "::ffff:0:169.254.169.254", SSRF_METADATA },
		{ "::ffff:0:10.0.0.1", SSRF_PRIVATE },
		/* NAT64, well-known prefix */
		{ "64:ff9b::8.8.8.8", SSRF_PUBLIC },
		{ "64:ff9b::169.254.169.254", SSRF_METADATA },
		{ "64:ff9b::10.0.0.1", SSRF_PRIVATE },
		{ "64:ff9b::127.0.0.1", SSRF_LOOPBACK },
		{ "64:ff9b::1:8.8.8.8", SSRF_RESERVED },
		/* NAT64, local use */
		{ "64:ff9b:1::8.8.8.8", SSRF_RESERVED },
		{ "64:ff9b:1::169.254.169.254", SSRF_METADATA },
		{ "64:ff9b:1::10.0.0.1", SSRF_PRIVATE },
		{ "64:ff9b:1::ffff:ffff", SSRF_BROADCAST },
		{ "64:ff9b:2::8.8.8.8", SSRF_RESERVED },
		/* 6to4 */
		{ "2002:808:808::1", SSRF_PUBLIC },
		{ "2002:7f00:1::1", SSRF_LOOPBACK },
		{ "2002:a9fe:a9fe::", SSRF_METADATA },
		{ "2002:a00:1::", SSRF_PRIVATE },
		{ "2002:c0a8:101::", SSRF_PRIVATE },
		{ "2002:6464:64c8::", SSRF_METADATA },
		{ "2002:a83f:8110::", SSRF_METADATA },
		/* Teredo: server in bits 32..63, client inverted at the end */
		{ "2001:0:808:808::f7f7:f7f7", SSRF_PUBLIC },
		{ "2001:0:7f00:1::f7f7:f7f7", SSRF_LOOPBACK },
		{ "2001:0:a9fe:a9fe::f7f7:f7f7", SSRF_METADATA },
		{ "2001:0:808:808::80ff:fffe", SSRF_LOOPBACK },
		{ "2001:0:808:808::5601:5601", SSRF_METADATA },
		{ "2001:0:808:808::f5ff:fffe", SSRF_PRIVATE },
		{ "2001:0:4136:e378:8000:63bf:3fff:fdd2", SSRF_DOCUMENTATION }, /* RFC 4380 */
		{ "2001:0:808:808::", SSRF_BROADCAST },
	};
	check_cases(c, sizeof(c) / sizeof(c[0]));
}

static void test_other_families(void **state)
{
	(void)state;
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	assert_int_equal(ssrf_classify((const struct sockaddr *)&un), SSRF_RESERVED);
	struct sockaddr_storage ss = { .ss_family = AF_UNSPEC };
	assert_int_equal(ssrf_classify((const struct sockaddr *)&ss), SSRF_RESERVED);
	assert_int_equal(ssrf_classify(NULL), SSRF_RESERVED);
}

static void test_class_names(void **state)
{
	(void)state;
	const char *seen[SSRF_ULA + 1];
	for (int c = SSRF_PUBLIC; c <= SSRF_ULA; c++) {
		seen[c] = ssrf_class_name((enum ssrf_class)c);
		assert_non_null(seen[c]);
		assert_string_not_equal(seen[c], "unknown");
		for (int d = 0; d < c; d++)
			assert_string_not_equal(seen[c], seen[d]);
	}
	assert_string_equal(ssrf_class_name(SSRF_LOOPBACK), "loopback");
	assert_string_equal(ssrf_class_name(SSRF_PRIVATE), "private");
	assert_string_equal(ssrf_class_name(SSRF_METADATA), "metadata");
	assert_string_equal(ssrf_class_name((enum ssrf_class)99), "unknown");
}

static void test_parse_ipv4(void **state)
{
	(void)state;
	static const struct {
		const char *host;
		const char *expect;
	} ok[] = {
		{ "127.0.0.1", "127.0.0.1" },	    { "0.0.0.0", "0.0.0.0" },
		{ "255.255.255.255", "255.255.255.255" }, { "8.8.8.8", "8.8.8.8" },
		{ "10.0.100.200", "10.0.100.200" }, { "169.254.169.254", "169.254.169.254" },
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct sockaddr_storage ss;
		struct cdn_err err = { 0 };
		assert_int_equal(ssrf_parse_host(ok[i].host, &ss, &err), 1);
		assert_int_equal(ss.ss_family, AF_INET);
		const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
		assert_int_equal(in->sin_port, 0);
		char buf[INET_ADDRSTRLEN];
		assert_non_null(inet_ntop(AF_INET, &in->sin_addr, buf, sizeof(buf)));
		assert_string_equal(buf, ok[i].expect);
	}
	/* The classification of a parsed literal is the address's. */
	struct sockaddr_storage ss;
	assert_int_equal(ssrf_parse_host("169.254.169.254", &ss, NULL), 1);
	assert_int_equal(ssrf_classify((const struct sockaddr *)&ss), SSRF_METADATA);
}

static void test_parse_ipv6(void **state)
{
	(void)state;
	static const char *ok[] = {
		"::1", "::", "2001:db8::1", "fe80::1", "::ffff:127.0.0.1", "64:ff9b::a9fe:a9fe",
		"2606:4700:4700::1111", "FD00:EC2::254", "1:2:3:4:5:6:7:8",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct sockaddr_storage ss;
		struct cdn_err err = { 0 };
		if (ssrf_parse_host(ok[i], &ss, &err) != 1)
			fail_msg("%s: %s", ok[i], err.msg);
		assert_int_equal(ss.ss_family, AF_INET6);
		struct in6_addr want;
		assert_int_equal(inet_pton(AF_INET6, ok[i], &want), 1);
		assert_memory_equal(&((struct sockaddr_in6 *)&ss)->sin6_addr, &want, 16);
		assert_int_equal(((struct sockaddr_in6 *)&ss)->sin6_port, 0);
	}
	struct sockaddr_storage ss;
	assert_int_equal(ssrf_parse_host("::ffff:169.254.169.254", &ss, NULL), 1);
	assert_int_equal(ssrf_classify((const struct sockaddr *)&ss), SSRF_METADATA);
	assert_int_equal(ssrf_parse_host("fd00:ec2::254", &ss, NULL), 1);
	assert_int_equal(ssrf_classify((const struct sockaddr *)&ss), SSRF_METADATA);

	static const struct {
		const char *host;
		const char *msg;
	} bad[] = {
		{ "fe80::1%eth0", "zone id" },
		{ "fe80::1%25eth0", "zone id" },
		{ "[::1]", "invalid character" },
		{ "::ffff:127.1", "not a valid IPv6" },
		{ "::ffff:0177.0.0.1", "not a valid IPv6" },
		{ "1:2:3:4:5:6:7:8:9", "not a valid IPv6" },
		{ "::g", "invalid character" },
		{ "example.com:80", "invalid character" },
		{ "1:2:3:4:5:6:7:8:1:2:3:4:5:6:7:8:1:2:3:4:5:6:7:8", "too long" },
		{ ":::", "not a valid IPv6" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct cdn_err err = { 0 };
		if (ssrf_parse_host(bad[i].host, &ss, &err) >= 0)
			fail_msg("%s accepted", bad[i].host);
		if (!strstr(err.msg, bad[i].msg))
			fail_msg("%s: message '%s' lacks '%s'", bad[i].host, err.msg, bad[i].msg);
	}
}

static void test_parse_noncanonical(void **state)
{
	(void)state;
	static const struct {
		const char *host;
		const char *msg;
	} bad[] = {
		{ "2130706433", "canonical" },		  /* one integer */
		{ "0x7f000001", "hexadecimal" },	  /* hex integer */
		{ "0X7F000001", "hexadecimal" },
		{ "0177.0.0.1", "leading zero" },	  /* octal */
		{ "127.0.0.01", "leading zero" },
		{ "127.000.000.001", "leading zero" },
		{ "00.0.0.0", "leading zero" },
		{ "127.1", "canonical" },		  /* short forms */
		{ "127.0.1", "canonical" },
		{ "127.0.0.1.", "trailing dot" },
		{ "0x7f.0.0.1", "hexadecimal" },	  /* mixed */
		{ "127.0x0.0.1", "hexadecimal" },
		{ "127.0.0.0x1", "hexadecimal" },
		{ "0x7f.1", "hexadecimal" },
		{ "127..0.1", "empty label" },
		{ ".127.0.0.1", "empty label" },
		{ "256.0.0.1", "above 255" },
		{ "127.0.0.256", "above 255" },
		{ "1270.0.0.1", "above 255" },
		{ "1.2.3.4.5", "canonical" },
		{ "example.123", "canonical" },	  /* numeric TLD */
		{ "foo.0x10", "hexadecimal" },
		{ "foo.0x", "hexadecimal" },
		{ "0", "canonical" },
		{ "01", "canonical" },
		{ "4294967295", "canonical" },
		{ "99999999999999999999", "canonical" },
		{ "1.2.3.+4", "invalid character" },
		{ "127.0.0.1 ", "invalid character" },
		{ " 127.0.0.1", "invalid character" },
		{ "127.0.0.1\n", "invalid character" },
		{ "127.0.0.1/", "invalid character" },
		{ "evil.com@127.0.0.1", "invalid character" },
		{ "", "empty host" },
		{ ".", "empty label" },
		{ "..", "empty label" },
		{ "a..b", "empty label" },
		{ ".example.com", "empty label" },
		{ "example.com..", "empty label" },
		{ "ex ample.com", "invalid character" },
		{ "ex%2eample.com", "invalid character" },
		{ "b\xc3\xbc" "cher.de", "invalid character" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sockaddr_storage ss;
		struct cdn_err err = { 0 };
		int r = ssrf_parse_host(bad[i].host, &ss, &err);
		if (r >= 0)
			fail_msg("'%s' accepted (%d)", bad[i].host, r);
		if (!strstr(err.msg, bad[i].msg))
			fail_msg("'%s': message '%s' lacks '%s'", bad[i].host, err.msg, bad[i].msg);
	}
	assert_true(ssrf_parse_host(NULL, NULL, NULL) < 0);

	/* Messages go to the audit log and to the agent: untrusted bytes
	 * other than name characters are never quoted. */
	static const char *hostile[] = { "a..\x1b[31m", "::1%\x1b[2J", "::1\n:2", "x\r\n.com" };
	for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		struct cdn_err err = { 0 };
		assert_true(ssrf_parse_host(hostile[i], NULL, &err) < 0);
		for (const char *c = err.msg; *c; c++)
			if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
				fail_msg("message for host %zu has byte 0x%02x", i, (unsigned char)*c);
	}
}

static void test_parse_names(void **state)
{
	(void)state;
	static const char *names[] = {
		"example.com",
		"example.com.",
		"EXAMPLE.com",
		"a",
		"localhost", /* a name: the resolved address is what gets checked */
		"127.0.0.1.nip.io",
		"0x7f.example.com",
		"123.example",
		"1e5",
		"0b101",
		"xn--bcher-kva.de",
		"_dmarc.example.com",
		"api-1.example.co.uk",
		"1.2.3.4a",
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		struct sockaddr_storage ss;
		struct cdn_err err = { 0 };
		int r = ssrf_parse_host(names[i], &ss, &err);
		if (r != 0)
			fail_msg("'%s': %d %s", names[i], r, err.msg);
	}

	/* A last label starting "0x" is refused even when no parser could
	 * read it as a number: no top-level domain looks like that. */
	assert_true(ssrf_parse_host("0xg", NULL, NULL) < 0);
	assert_true(ssrf_parse_host("a.0xzz", NULL, NULL) < 0);

	/* Length limits: 63 per label, 253 in all (254 with the root dot). */
	char label[70];
	memset(label, 'a', 63);
	label[63] = '\0';
	assert_int_equal(ssrf_parse_host(label, NULL, NULL), 0);
	memset(label, 'a', 64);
	label[64] = '\0';
	struct cdn_err err = { 0 };
	assert_true(ssrf_parse_host(label, NULL, &err) < 0);
	assert_non_null(strstr(err.msg, "label longer"));

	char name[300];
	size_t n = 0;
	while (n + 50 < 253) {
		memset(name + n, 'b', 49);
		name[n + 49] = '.';
		n += 50;
	}
	/* n == 250: pad to 253 */
	memset(name + n, 'c', 3);
	name[n + 3] = '\0';
	assert_int_equal(strlen(name), 253);
	assert_int_equal(ssrf_parse_host(name, NULL, NULL), 0);
	name[253] = '.';
	name[254] = '\0';
	assert_int_equal(ssrf_parse_host(name, NULL, NULL), 0);
	name[254] = 'd';
	name[255] = '\0';
	assert_true(ssrf_parse_host(name, NULL, &err) < 0);
	assert_non_null(strstr(err.msg, "longer than"));
	memset(name, 'e', 299);
	name[299] = '\0';
	assert_true(ssrf_parse_host(name, NULL, &err) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ipv4_blocks),	   cmocka_unit_test(test_ipv4_metadata),
		cmocka_unit_test(test_ipv6_blocks),	   cmocka_unit_test(test_ipv6_embedded),
		cmocka_unit_test(test_other_families),	   cmocka_unit_test(test_class_names),
		cmocka_unit_test(test_parse_ipv4),	   cmocka_unit_test(test_parse_ipv6),
		cmocka_unit_test(test_parse_noncanonical), cmocka_unit_test(test_parse_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
