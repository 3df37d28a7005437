/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the DNS wire format (src/egress/dns.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "egress/dns.h"

#define NO_EDNS (-1)

/* Encodes a dotted name as labels ("" is the root); returns its length. */
static size_t put_name(uint8_t *p, const char *dotted)
{
	size_t n = 0;
	while (*dotted) {
		const char *dot = strchr(dotted, '.');
		size_t l = dot ? (size_t)(dot - dotted) : strlen(dotted);
		p[n++] = (uint8_t)l;
		memcpy(p + n, dotted, l);
		n += l;
		dotted += l + (dot ? 1 : 0);
	}
	p[n++] = 0;
	return n;
}

static size_t put_opt(uint8_t *p, uint16_t udp_size, const uint8_t *rdata, uint16_t rdlen)
{
	p[0] = 0;
	p[1] = 0;
	p[2] = DNS_TYPE_OPT;
	p[3] = (uint8_t)(udp_size >> 8);
	p[4] = (uint8_t)udp_size;
	memset(p + 5, 0, 4);
	p[9] = (uint8_t)(rdlen >> 8);
	p[10] = (uint8_t)rdlen;
	if (rdlen)
		memcpy(p + 11, rdata, rdlen);
	return 11 + (size_t)rdlen;
}

static size_t build_query(uint8_t *buf, uint16_t id, uint16_t flags, const char *name,
			  uint16_t qtype, uint16_t qclass, int edns_size)
{
	memset(buf, 0, DNS_HEADER_LEN);
	buf[0] = (uint8_t)(id >> 8);
	buf[1] = (uint8_t)id;
	buf[2] = (uint8_t)(flags >> 8);
	buf[3] = (uint8_t)flags;
	buf[5] = 1;
	buf[11] = edns_size >= 0 ? 1 : 0;
	size_t n = DNS_HEADER_LEN + put_name(buf + DNS_HEADER_LEN, name);
	buf[n++] = (uint8_t)(qtype >> 8);
	buf[n++] = (uint8_t)qtype;
	buf[n++] = (uint8_t)(qclass >> 8);
	buf[n++] = (uint8_t)qclass;
	if (edns_size >= 0)
		n += put_opt(buf + n, (uint16_t)edns_size, NULL, 0);
	return n;
}

static void expect_bad(const uint8_t *pkt, size_t len, const char *msg)
{
	struct dns_query q;
	struct cdn_err err = { 0 };
	int r = dns_parse_query(pkt, len, &q, &err);
	if (r >= 0 || !strstr(err.msg, msg))
		fail_msg("got %d '%s', want error '%s'", r, err.msg, msg);
}

/* ---------------------------------------------------------------------------
 * Queries
 */

static void test_query_a(void **state)
{
	(void)state;
	uint8_t pkt[512];
	size_t n = build_query(pkt, 0x1234, 0x0100, "www.Example.COM", DNS_TYPE_A, DNS_CLASS_IN,
			       NO_EDNS);
	assert_int_equal(n, 12 + 17 + 4);
	struct dns_query q;
	struct cdn_err err = { 0 };
	assert_int_equal(dns_parse_query(pkt, n, &q, &err), 0);
	assert_int_equal(q.id, 0x1234);
	assert_true(q.rd);
	assert_string_equal(q.name, "www.example.com");
	assert_int_equal(q.qtype, DNS_TYPE_A);
	assert_int_equal(q.qclass, DNS_CLASS_IN);
	assert_false(q.edns);
	assert_int_equal(q.edns_udp_size, 0);
	assert_ptr_equal(q.question, pkt + 12);
	assert_int_equal(q.question_len, 21);
}

static void test_query_aaaa_edns(void **state)
{
	(void)state;
	uint8_t pkt[512];
	/* RD and AD (dig sets AD by default) and CD */
	size_t n = build_query(pkt, 0xffff, 0x0130, "_dmarc.a-b.example9", DNS_TYPE_AAAA,
			       DNS_CLASS_IN, 4096);
	struct dns_query q;
	struct cdn_err err = { 0 };
	assert_int_equal(dns_parse_query(pkt, n, &q, &err), 0);
	assert_int_equal(q.id, 0xffff);
	assert_true(q.rd);
	assert_string_equal(q.name, "_dmarc.a-b.example9");
	assert_int_equal(q.qtype, DNS_TYPE_AAAA);
	assert_true(q.edns);
	assert_int_equal(q.edns_udp_size, 4096);
	assert_int_equal(q.question_len, 1 + 6 + 1 + 3 + 1 + 8 + 1 + 4);

	/* no RD; other QTYPE/QCLASS are read as they are */
	n = build_query(pkt, 7, 0, "a", 16, 3, 512);
	assert_int_equal(dns_parse_query(pkt, n, &q, &err), 0);
	assert_false(q.rd);
	assert_string_equal(q.name, "a");
	assert_int_equal(q.qtype, 16);
	assert_int_equal(q.qclass, 3);
	assert_int_equal(q.edns_udp_size, 512);

	/* an OPT record with options (a cookie) */
	static const uint8_t cookie[] = { 0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8 };
	n = build_query(pkt, 7, 0x0100, "b.example", DNS_TYPE_A, DNS_CLASS_IN, NO_EDNS);
	pkt[11] = 1;
	n += put_opt(pkt + n, 1232, cookie, sizeof(cookie));
	assert_int_equal(dns_parse_query(pkt, n, &q, &err), 0);
	assert_true(q.edns);
	assert_int_equal(q.edns_udp_size, 1232);
	assert_int_equal(q.question_len, 15);
}

static void test_query_name_limits(void **state)
{
	(void)state;
	uint8_t pkt[1024];
	char name[300];
	struct dns_query q;
	struct cdn_err err = { 0 };
	/* 63+1+63+1+63+1+61 = 253 characters */
	memset(name, 'a', sizeof(name));
	name[63] = name[127] = name[191] = '.';
	name[253] = '\0';
	size_t n = build_query(pkt, 1, 0, name, DNS_TYPE_A, DNS_CLASS_IN, NO_EDNS);
	assert_int_equal(n, 12 + 255 + 4);
	assert_int_equal(dns_parse_query(pkt, n, &q, &err), 0);
	assert_int_equal(strlen(q.name), DNS_MAX_NAME);
	assert_memory_equal(q.name, name, 253);
	/* 254 */
	name[253] = 'a';
	name[254] = '\0';
	n = build_query(pkt, 1, 0, name, DNS_TYPE_A, DNS_CLASS_IN, NO_EDNS);
	expect_bad(pkt, n, "question name longer than 253 characters");
	/* many one-letter labels: 127 of them make 253 characters, 128 do not */
	for (int labels = 127; labels <= 128; labels++) {
		for (int i = 0; i < labels; i++) {
			name[2 * i] = 'x';
			name[2 * i + 1] = '.';
		}
		name[2 * labels - 1] = '\0';
		n = build_query(pkt, 1, 0, name, DNS_TYPE_A, DNS_CLASS_IN, NO_EDNS);
		if (labels == 127)
			assert_int_equal(dns_parse_query(pkt, n, &q, &err), 0);
		else
			expect_bad(pkt, n, "longer than 253");
	}
	/* a 63-octet label is fine; the length byte cannot say 64 */
	memset(name, 'b', 63);
	strcpy(name + 63, ".example");
	n = build_query(pkt, 1, 0, name, DNS_TYPE_A, DNS_CLASS_IN, NO_EDNS);
	assert_int_equal(dns_parse_query(pkt, n, &q, &err), 0);
	pkt[12] = 64;
	expect_bad(pkt, n, "label length byte 0x40 at byte 12: labels are at most 63 octets");
	pkt[12] = 0x80;
	expect_bad(pkt, n, "label length byte 0x80 at byte 12");
	pkt[12] = 0xbf;
	expect_bad(pkt, n, "label length byte 0xbf");
}

static void test_query_header_rejects(void **state)
{
	(void)state;
	uint8_t pkt[DNS_MAX_PACKET + 16];
	size_t n = build_query(pkt, 0x0102, 0x0100, "a.example", DNS_TYPE_A, DNS_CLASS_IN,
			       NO_EDNS);
	struct {
		int byte;
		uint8_t value;
		const char *msg;
	} cases[] = {
		{ 2, 0x81, "QR is set" },
		{ 2, 0x09, "OPCODE 1 is not a standard query" },
		{ 2, 0x11, "OPCODE 2 is not a standard query" },
		{ 2, 0x29, "OPCODE 5 is not a standard query" },
		{ 2, 0x03, "TC is set in a query" },
		{ 3, 0x40, "reserved Z bit is set" },
		{ 3, 0x03, "RCODE 3 in a query" },
		{ 3, 0x01, "RCODE 1 in a query" },
		{ 5, 0x00, "QDCOUNT is 0, not 1" },
		{ 5, 0x02, "QDCOUNT is 2, not 1" },
		{ 4, 0x01, "QDCOUNT is 257, not 1" },
		{ 7, 0x01, "query carries 1 answer and 0 authority records" },
		{ 9, 0x01, "query carries 0 answer and 1 authority records" },
		{ 11, 0x02, "ARCOUNT is 2" },
		{ 11, 0x01, "additional record is not an OPT record with root owner" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t saved = pkt[cases[i].byte];
		pkt[cases[i].byte] = cases[i].value;
		expect_bad(pkt, n, cases[i].msg);
		pkt[cases[i].byte] = saved;
	}
	/* AA and RA are ignored, AD and CD accepted */
	pkt[2] |= 0x04;
	pkt[3] |= 0xb0;
	struct dns_query q;
	struct cdn_err err = { 0 };
	assert_int_equal(dns_parse_query(pkt, n, &q, &err), 0);

	expect_bad(pkt, 0, "packet of 0 bytes is shorter than a DNS header");
	expect_bad(pkt, 11, "packet of 11 bytes is shorter than a DNS header");
	expect_bad(pkt, 12, "question name runs past the end of the packet");
	memset(pkt + n, 0, sizeof(pkt) - n);
	expect_bad(pkt, DNS_MAX_PACKET + 1, "packet of 4097 bytes is larger than 4096");
	expect_bad(pkt, n + 1, "1 trailing bytes after the last record");
	expect_bad(pkt, n + 7, "7 trailing bytes after the last record");
	/* the largest packet is judged on its content */
	expect_bad(pkt, DNS_MAX_PACKET, "trailing bytes");
}

static void test_query_body_rejects(void **state)
{
	(void)state;
	uint8_t pkt[512];
	size_t n;
	struct dns_query q;
	struct cdn_err err = { 0 };

	/* question cut short */
	n = build_query(pkt, 1, 0, "abc.example", DNS_TYPE_A, DNS_CLASS_IN, NO_EDNS);
	for (size_t m = 12; m < n; m++) {
		if (dns_parse_query(pkt, m, &q, &err) == 0)
			fail_msg("prefix %zu accepted", m);
	}
	expect_bad(pkt, 14, "question name runs past the end of the packet");
	expect_bad(pkt, 12 + 12, "question name runs past the end of the packet");
	expect_bad(pkt, 12 + 13, "question is truncated (no QTYPE/QCLASS)");
	expect_bad(pkt, 12 + 13 + 1, "question is truncated (no QTYPE/QCLASS)");
	expect_bad(pkt, 12 + 13 + 3, "question is truncated (no QTYPE/QCLASS)");

	/* compression pointers, at the start or after a label */
	static const uint8_t ptr0[] = { 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1 };
	expect_bad(ptr0, sizeof(ptr0), "compression pointer in the question name at byte 12");
	static const uint8_t ptr1[] = { 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 'w', 'w',
					'w', 0xc0, 0x0c, 0, 1, 0, 1 };
	expect_bad(ptr1, sizeof(ptr1), "compression pointer in the question name at byte 16");
	static const uint8_t ptr2[] = { 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 'w', 'w',
					'w', 0xff, 0xff, 0, 1, 0, 1 };
	expect_bad(ptr2, sizeof(ptr2), "compression pointer");

	/* root name */
	static const uint8_t root[] = { 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1 };
	expect_bad(root, sizeof(root), "the question asks for the root name");

	/* label bytes outside letters, digits, '-' and '_' */
	static const uint8_t bad[] = { '.', ' ', '*', 0x00, 0xff, 0x80, '/', '\\', '@', '"', 0x7f,
				       '\n' };
	for (size_t i = 0; i < sizeof(bad); i++) {
		n = build_query(pkt, 1, 0, "abc.example", DNS_TYPE_A, DNS_CLASS_IN, NO_EDNS);
		pkt[14] = bad[i];
		char msg[64];
		snprintf(msg, sizeof(msg), "byte 0x%02x in the question name at byte 14", bad[i]);
		expect_bad(pkt, n, msg);
	}

	/* OPT record problems */
	n = build_query(pkt, 1, 0, "a.example", DNS_TYPE_A, DNS_CLASS_IN, 1232);
	size_t opt = n - 11;
	assert_int_equal(dns_parse_query(pkt, n, &q, &err), 0);
	pkt[opt] = 1; /* owner is not the root */
	expect_bad(pkt, n, "not an OPT record with root owner");
	pkt[opt] = 0;
	pkt[opt + 2] = DNS_TYPE_A;
	expect_bad(pkt, n, "additional record of type 1 is not OPT");
	pkt[opt + 2] = DNS_TYPE_OPT;
	expect_bad(pkt, n - 1, "truncated OPT record");
	expect_bad(pkt, opt + 1, "truncated OPT record");
	pkt[opt + 10] = 4; /* RDLENGTH 4 with nothing after it */
	expect_bad(pkt, n, "OPT RDLENGTH 4 runs past the end of the packet");
	memset(pkt + n, 0, 4);
	assert_int_equal(dns_parse_query(pkt, n + 4, &q, &err), 0);
	expect_bad(pkt, n + 5, "1 trailing bytes");
	pkt[opt + 9] = 0xff;
	expect_bad(pkt, n + 4, "OPT RDLENGTH 65284 runs past");
}

/* ---------------------------------------------------------------------------
 * Responses
 */

static struct dns_answer answer4(const char *addr, uint32_t ttl)
{
	struct dns_answer a = { .family = AF_INET, .ttl = ttl };
	assert_int_equal(inet_pton(AF_INET, addr, &a.addr.v4), 1);
	return a;
}

static struct dns_answer answer6(const char *addr, uint32_t ttl)
{
	struct dns_answer a = { .family = AF_INET6, .ttl = ttl };
	assert_int_equal(inet_pton(AF_INET6, addr, &a.addr.v6), 1);
	return a;
}

static void test_response_a_edns(void **state)
{
	(void)state;
	uint8_t pkt[512], out[512];
	size_t n = build_query(pkt, 0xbeef, 0x0100, "a.example", DNS_TYPE_A, DNS_CLASS_IN, 4096);
	struct dns_query q;
	struct cdn_err err = { 0 };
	assert_int_equal(dns_parse_query(pkt, n, &q, &err), 0);
	struct dns_answer ans[2] = { answer4("192.0.2.1", 300), answer4("198.51.100.7", 300) };
	static const uint8_t want[] = {
		0xbe, 0xef, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 1,
		/* question, echoed */
		1, 'a', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0, 0, 1, 0, 1,
		/* answers */
		0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x01, 0x2c, 0, 4, 192, 0, 2, 1,
		0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x01, 0x2c, 0, 4, 198, 51, 100, 7,
		/* OPT: root, type 41, UDP 1232, TTL 0, RDLENGTH 0 */
		0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0,
	};
	size_t r = dns_build_response(&q, DNS_RCODE_NOERROR, ans, 2, false, out, sizeof(out));
	assert_int_equal(r, sizeof(want));
	assert_memory_equal(out, want, sizeof(want));
	/* exact fit, one byte short */
	assert_int_equal(dns_build_response(&q, 0, ans, 2, false, out, sizeof(want)),
			 sizeof(want));
	assert_int_equal(dns_build_response(&q, 0, ans, 2, false, out, sizeof(want) - 1), 0);
	/* a response is not a query */
	expect_bad(out, r, "QR is set");
}

/* Build, then walk the bytes the way a stub resolver would. */
static void test_response_roundtrip_aaaa(void **state)
{
	(void)state;
	uint8_t pkt[512], out[DNS_MAX_PACKET];
	size_t n = build_query(pkt, 0x4242, 0x0100, "WwW.ExAmple.org", DNS_TYPE_AAAA,
			       DNS_CLASS_IN, NO_EDNS);
	struct dns_query q;
	struct cdn_err err = { 0 };
	assert_int_equal(dns_parse_query(pkt, n, &q, &err), 0);
	assert_string_equal(q.name, "www.example.org");
	struct dns_answer ans[DNS_MAX_ANSWERS];
	char text[64];
	for (int i = 0; i < DNS_MAX_ANSWERS; i++) {
		snprintf(text, sizeof(text), "2001:db8::%x", i + 1);
		ans[i] = answer6(text, 60u + (uint32_t)i);
	}
	size_t r = dns_build_response(&q, DNS_RCODE_NOERROR, ans, DNS_MAX_ANSWERS, false, out,
				      sizeof(out));
	assert_int_equal(r, 12 + q.question_len + DNS_MAX_ANSWERS * 28);

	assert_int_equal((out[0] << 8) | out[1], 0x4242);
	uint16_t flags = (uint16_t)((out[2] << 8) | out[3]);
	assert_int_equal(flags & 0x8000, 0x8000); /* QR */
	assert_int_equal(flags & 0x7800, 0);	  /* OPCODE */
	assert_int_equal(flags & 0x0400, 0);	  /* AA */
	assert_int_equal(flags & 0x0200, 0);	  /* TC */
	assert_int_equal(flags & 0x0100, 0x0100); /* RD copied */
	assert_int_equal(flags & 0x0080, 0x0080); /* RA */
	assert_int_equal(flags & 0x000f, 0);	  /* RCODE */
	assert_int_equal((out[4] << 8) | out[5], 1);
	assert_int_equal((out[6] << 8) | out[7], DNS_MAX_ANSWERS);
	assert_int_equal((out[8] << 8) | out[9], 0);
	assert_int_equal((out[10] << 8) | out[11], 0);
	/* the question comes back byte for byte, case included (0x20) */
	assert_memory_equal(out + 12, pkt + 12, q.question_len);
	size_t p = 12 + q.question_len;
	for (int i = 0; i < DNS_MAX_ANSWERS; i++) {
		assert_int_equal((out[p] << 8) | out[p + 1], 0xc00c);
		assert_int_equal((out[p + 2] << 8) | out[p + 3], DNS_TYPE_AAAA);
		assert_int_equal((out[p + 4] << 8) | out[p + 5], DNS_CLASS_IN);
		uint32_t ttl = ((uint32_t)out[p + 6] << 24) | ((uint32_t)out[p + 7] << 16) |
			       ((uint32_t)out[p + 8] << 8) | out[p + 9];
		assert_int_equal(ttl, 60 + i);
		assert_int_equal((out[p + 10] << 8) | out[p + 11], 16);
		char got[INET6_ADDRSTRLEN];
		assert_non_null(inet_ntop(AF_INET6, out + p + 12, got, sizeof(got)));
		snprintf(text, sizeof(text), "2001:db8::%x", i + 1);
		assert_string_equal(got, text);
		p += 28;
	}
	assert_int_equal(p, r);
}

static void test_response_rcodes_and_tc(void **state)
{
	(void)state;
	uint8_t pkt[512], out[512];
	size_t n = build_query(pkt, 9, 0, "x.example", DNS_TYPE_AAAA, DNS_CLASS_IN, 1400);
	struct dns_query q;
	struct cdn_err err = { 0 };
	assert_int_equal(dns_parse_query(pkt, n, &q, &err), 0);

	size_t r = dns_build_response(&q, DNS_RCODE_NXDOMAIN, NULL, 0, false, out, sizeof(out));
	assert_int_equal(r, 12 + q.question_len + 11);
	assert_int_equal(out[2], 0x80); /* QR, no RD (the query had none) */
	assert_int_equal(out[3], 0x83); /* RA, NXDOMAIN */
	assert_int_equal(out[7], 0);
	assert_int_equal(out[11], 1);

	r = dns_build_response(&q, DNS_RCODE_REFUSED, NULL, 0, true, out, sizeof(out));
	assert_int_equal(out[2], 0x82); /* TC */
	assert_int_equal(out[3], 0x85);

	/* a TXT question can still get an empty answer */
	n = build_query(pkt, 9, 0x0100, "x.example", 16, DNS_CLASS_IN, NO_EDNS);
	assert_int_equal(dns_parse_query(pkt, n, &q, &err), 0);
	r = dns_build_response(&q, DNS_RCODE_NOERROR, NULL, 0, false, out, sizeof(out));
	assert_int_equal(r, 12 + q.question_len);
	assert_int_equal(out[2], 0x81);
	assert_int_equal(out[3], 0x80);
}

static void test_response_refusals(void **state)
{
	(void)state;
	uint8_t pkt[512], out[512];
	size_t n = build_query(pkt, 9, 0, "x.example", DNS_TYPE_A, DNS_CLASS_IN, NO_EDNS);
	struct dns_query q;
	struct cdn_err err = { 0 };
	assert_int_equal(dns_parse_query(pkt, n, &q, &err), 0);
	struct dns_answer v4 = answer4("192.0.2.9", 5), v6 = answer6("2001:db8::9", 5);
	struct dns_answer many[DNS_MAX_ANSWERS + 1];
	for (size_t i = 0; i < DNS_MAX_ANSWERS + 1; i++)
		many[i] = v4;

	assert_int_equal(dns_build_response(&q, 0, &v4, 1, false, out, sizeof(out)),
			 12 + q.question_len + 16);
	/* family must match QTYPE */
	assert_int_equal(dns_build_response(&q, 0, &v6, 1, false, out, sizeof(out)), 0);
	assert_int_equal(dns_build_response(&q, 16, NULL, 0, false, out, sizeof(out)), 0);
	assert_int_equal(dns_build_response(&q, -1, NULL, 0, false, out, sizeof(out)), 0);
	assert_int_equal(dns_build_response(&q, 0, many, DNS_MAX_ANSWERS + 1, false, out,
					    sizeof(out)),
			 0);
	assert_int_equal(dns_build_response(&q, 0, NULL, 1, false, out, sizeof(out)), 0);
	assert_int_equal(dns_build_response(&q, 0, NULL, 0, false, out, 12 + q.question_len - 1),
			 0);
	assert_int_equal(dns_build_response(&q, 0, NULL, 0, false, out, 0), 0);
	q.qtype = 16;
	assert_int_equal(dns_build_response(&q, 0, &v4, 1, false, out, sizeof(out)), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_query_a),
		cmocka_unit_test(test_query_aaaa_edns),
		cmocka_unit_test(test_query_name_limits),
		cmocka_unit_test(test_query_header_rejects),
		cmocka_unit_test(test_query_body_rejects),
		cmocka_unit_test(test_response_a_edns),
		cmocka_unit_test(test_response_roundtrip_aaaa),
		cmocka_unit_test(test_response_rcodes_and_tc),
		cmocka_unit_test(test_response_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
