/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for the strict HTTP/1.1 parser (src/egress/http.c).
 *
 * The rejection table holds one entry per smuggling vector or grammar rule;
 * each entry is also replayed prefix by prefix to check that the parser
 * never accepts a prefix of a bad head and never takes back an error once
 * it has given one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "base/cleanup.h"
#include "egress/http.h"

#define RL "GET http://a.example/ HTTP/1.1\r\n"
#define HOST "Host: a.example\r\n"
#define POST "POST http://a.example/up HTTP/1.1\r\n" HOST

static int parse_req(const char *s, struct http_request *req, struct cdn_err *err)
{
	return http_parse_request(s, strlen(s), req, err);
}

static void assert_mem(const char *p, size_t n, const char *want)
{
	assert_int_equal(n, strlen(want));
	assert_memory_equal(p, want, n);
}

/* ---------------------------------------------------------------------------
 * Requests: accepted heads
 */

static void test_request_simple(void **state)
{
	(void)state;
	static const char raw[] = "GET http://a.example/x?y=1 HTTP/1.1\r\n"
				  "Host: a.example\r\n"
				  "User-Agent:   agent/1.0 \t\r\n"
				  "X-Empty:\r\n"
				  "\r\n";
	struct http_request req;
	struct cdn_err err = { 0 };
	assert_int_equal(parse_req(raw, &req, &err), strlen(raw));
	assert_int_equal(req.head_len, strlen(raw));
	assert_string_equal(req.method, "GET");
	assert_int_equal(req.form, HTTP_TARGET_ABSOLUTE);
	assert_string_equal(req.host, "a.example");
	assert_false(req.host_is_ipv6);
	assert_int_equal(req.port, 80);
	assert_mem(req.path, req.path_len, "/x?y=1");
	assert_ptr_equal(req.path, raw + 20);
	assert_int_equal(req.version_minor, 1);
	assert_int_equal(req.n_fields, 3);
	assert_mem(req.fields[0].name, req.fields[0].name_len, "Host");
	assert_mem(req.fields[0].value, req.fields[0].value_len, "a.example");
	assert_mem(req.fields[1].name, req.fields[1].name_len, "User-Agent");
	assert_mem(req.fields[1].value, req.fields[1].value_len, "agent/1.0");
	assert_mem(req.fields[2].name, req.fields[2].name_len, "X-Empty");
	assert_int_equal(req.fields[2].value_len, 0);
	assert_int_equal(req.body, HTTP_BODY_NONE);
	assert_int_equal(req.content_length, 0);
	assert_true(req.keep_alive);
	assert_false(req.expect_continue);
}

struct target_case {
	const char *raw;
	const char *host;
	bool ipv6;
	int port;
	const char *path; /* NULL for CONNECT */
	enum http_target_form form;
};

static void test_request_targets(void **state)
{
	(void)state;
	static const struct target_case cases[] = {
		{ "GET http://a.example HTTP/1.1\r\nHost: a.example\r\n\r\n", "a.example", false,
		  80, "/", HTTP_TARGET_ABSOLUTE },
		{ "GET HTTP://A.Example:8080/p/q HTTP/1.1\r\nHost: a.example:8080\r\n\r\n",
		  "A.Example", false, 8080, "/p/q", HTTP_TARGET_ABSOLUTE },
		{ "GET http://a.example:80/ HTTP/1.1\r\nHost: a.example\r\n\r\n", "a.example",
		  false, 80, "/", HTTP_TARGET_ABSOLUTE },
		{ "GET http://a.example/ HTTP/1.1\r\nHost: A.EXAMPLE:80\r\n\r\n", "a.example",
		  false, 80, "/", HTTP_TARGET_ABSOLUTE },
		{ "GET http://10.1.2.3/%41?a=%20 HTTP/1.1\r\nHost: 10.1.2.3\r\n\r\n", "10.1.2.3",
		  false, 80, "/%41?a=%20", HTTP_TARGET_ABSOLUTE },
		{ "GET http://0x7f.1/ HTTP/1.1\r\nHost: 0x7f.1\r\n\r\n", "0x7f.1", false, 80, "/",
		  HTTP_TARGET_ABSOLUTE },
		{ "GET http://[2001:db8::1]:8080/ HTTP/1.1\r\nHost: [2001:DB8::1]:8080\r\n\r\n",
		  "2001:db8::1", true, 8080, "/", HTTP_TARGET_ABSOLUTE },
		{ "GET http://[::ffff:1.2.3.4]/ HTTP/1.1\r\nHost: [::ffff:1.2.3.4]\r\n\r\n",
		  "::ffff:1.2.3.4", true, 80, "/", HTTP_TARGET_ABSOLUTE },
		{ "GET http://my_svc.a-b.example./ HTTP/1.1\r\nHost: my_svc.a-b.example.\r\n\r\n",
		  "my_svc.a-b.example.", false, 80, "/", HTTP_TARGET_ABSOLUTE },
		{ "GET http://a.example:65535/ HTTP/1.1\r\nHost: a.example:65535\r\n\r\n",
		  "a.example", false, 65535, "/", HTTP_TARGET_ABSOLUTE },
		{ "GET http://a.example:00080/ HTTP/1.1\r\nHost: a.example\r\n\r\n", "a.example",
		  false, 80, "/", HTTP_TARGET_ABSOLUTE },
		{ "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n", "a.example",
		  false, 443, NULL, HTTP_TARGET_AUTHORITY },
		{ "CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n", "::1", true, 443, NULL,
		  HTTP_TARGET_AUTHORITY },
		{ "CONNECT 192.0.2.1:1 HTTP/1.0\r\nHost: 192.0.2.1:1\r\n\r\n", "192.0.2.1", false,
		  1, NULL, HTTP_TARGET_AUTHORITY },
		/* CONNECT: Host is optional (Python < 3.12 sends none) and may
		 * leave out the port (Java). */
		{ "CONNECT a.example:443 HTTP/1.0\r\n\r\n", "a.example", false, 443, NULL,
		  HTTP_TARGET_AUTHORITY },
		{ "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example\r\n\r\n", "a.example", false,
		  443, NULL, HTTP_TARGET_AUTHORITY },
	};
	for (size_t i = 0; i < CDN_ARRAY_SIZE(cases); i++) {
		const struct target_case *c = &cases[i];
		struct http_request req;
		struct cdn_err err = { 0 };
		int r = parse_req(c->raw, &req, &err);
		if (r != (int)strlen(c->raw))
			fail_msg("case %zu: got %d (%s)", i, r, err.msg);
		assert_string_equal(req.host, c->host);
		assert_int_equal(req.host_is_ipv6, c->ipv6);
		assert_int_equal(req.port, c->port);
		assert_int_equal(req.form, c->form);
		if (c->path) {
			assert_mem(req.path, req.path_len, c->path);
		} else {
			assert_null(req.path);
			assert_int_equal(req.path_len, 0);
			assert_int_equal(req.body, HTTP_BODY_NONE);
		}
	}
}

static void test_request_methods(void **state)
{
	(void)state;
	static const char *const ok[] = {
		"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "X-CUSTOM~1!", "ABCDEFGHIJKLMNOP",
	};
	for (size_t i = 0; i < CDN_ARRAY_SIZE(ok); i++) {
		char raw[256];
		snprintf(raw, sizeof(raw), "%s http://a.example/ HTTP/1.1\r\n" HOST "\r\n", ok[i]);
		struct http_request req;
		struct cdn_err err = { 0 };
		assert_int_equal(parse_req(raw, &req, &err), strlen(raw));
		assert_string_equal(req.method, ok[i]);
	}
}

static void test_request_framing(void **state)
{
	(void)state;
	struct http_request req;
	struct cdn_err err = { 0 };

	assert_true(parse_req(POST "Content-Length: 5\r\n\r\n", &req, &err) > 0);
	assert_int_equal(req.body, HTTP_BODY_LENGTH);
	assert_int_equal(req.content_length, 5);

	assert_true(parse_req(POST "Content-Length: 0\r\n\r\n", &req, &err) > 0);
	assert_int_equal(req.body, HTTP_BODY_LENGTH);
	assert_int_equal(req.content_length, 0);

	assert_true(parse_req(POST "content-length:   999999999999999 \r\n\r\n", &req, &err) > 0);
	assert_int_equal(req.body, HTTP_BODY_LENGTH);
	assert_int_equal(req.content_length, 999999999999999ull);

	assert_true(parse_req(POST "Content-Length: 000000000000042\r\n\r\n", &req, &err) > 0);
	assert_int_equal(req.content_length, 42);

	assert_true(parse_req(POST "Transfer-Encoding: chunked\r\n\r\n", &req, &err) > 0);
	assert_int_equal(req.body, HTTP_BODY_CHUNKED);
	assert_true(parse_req(POST "transfer-encoding: \tChunKed \r\n\r\n", &req, &err) > 0);
	assert_int_equal(req.body, HTTP_BODY_CHUNKED);

	/* CONNECT with an explicit zero length has no body */
	assert_true(parse_req("CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n"
			      "Content-Length: 0\r\n\r\n",
			      &req, &err) > 0);
	assert_int_equal(req.body, HTTP_BODY_NONE);
}

struct ka_case {
	const char *raw;
	bool keep_alive;
	bool expect;
};

static void test_request_keep_alive_expect(void **state)
{
	(void)state;
	static const struct ka_case cases[] = {
		{ RL HOST "\r\n", true, false },
		{ RL HOST "Connection: close\r\n\r\n", false, false },
		{ RL HOST "Connection: CLOSE\r\n\r\n", false, false },
		{ RL HOST "Connection: keep-alive, Upgrade\r\n\r\n", true, false },
		{ RL HOST "Connection: foo,, close ,bar\r\n\r\n", false, false },
		{ RL HOST "Connection: foo\r\nConnection: close\r\n\r\n", false, false },
		{ RL HOST "Connection:\r\n\r\n", true, false },
		{ RL HOST "Expect: 100-continue\r\n\r\n", true, true },
		{ RL HOST "Expect: 100-CONTINUE\r\n\r\n", true, true },
		{ "GET http://a.example/ HTTP/1.0\r\n" HOST "\r\n", false, false },
		{ "GET http://a.example/ HTTP/1.0\r\n" HOST "Connection: Keep-Alive\r\n\r\n", true,
		  false },
		{ "GET http://a.example/ HTTP/1.0\r\n" HOST "Connection: keep-alive, close\r\n\r\n",
		  false, false },
		/* RFC 9110 10.1.1: ignore 100-continue from a 1.0 client */
		{ "GET http://a.example/ HTTP/1.0\r\n" HOST "Expect: 100-continue\r\n\r\n", false,
		  false },
	};
	for (size_t i = 0; i < CDN_ARRAY_SIZE(cases); i++) {
		struct http_request req;
		struct cdn_err err = { 0 };
		int r = parse_req(cases[i].raw, &req, &err);
		if (r != (int)strlen(cases[i].raw))
			fail_msg("case %zu: got %d (%s)", i, r, err.msg);
		if (req.keep_alive != cases[i].keep_alive || req.expect_continue != cases[i].expect)
			fail_msg("case %zu: keep_alive %d expect %d", i, req.keep_alive,
				 req.expect_continue);
	}
}

/* ---------------------------------------------------------------------------
 * Requests: refused heads
 */

struct reject_case {
	const char *raw;
	size_t len; /* 0: strlen(raw) */
	int code;
	const char *msg; /* must appear in err.msg */
};

static const struct reject_case rejects[] = {
	/* CL.TE and TE.CL smuggling */
	{ POST "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "both Content-Length and Transfer-Encoding" },
	{ POST "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "both Content-Length and Transfer-Encoding" },
	{ POST "Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "both Content-Length and Transfer-Encoding" },
	/* TE.TE obfuscation */
	{ POST "Transfer-Encoding: gzip\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "Transfer-Encoding 'gzip' is not accepted" },
	{ POST "Transfer-Encoding: gzip, chunked\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "Transfer-Encoding 'gzip, chunked' is not accepted" },
	{ POST "Transfer-Encoding: chunked, chunked\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "is not accepted" },
	{ POST "Transfer-Encoding: chunked,\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST, "is not accepted" },
	{ POST "Transfer-Encoding: xchunked\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST, "is not accepted" },
	{ POST "Transfer-Encoding: chunk\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST, "is not accepted" },
	{ POST "Transfer-Encoding: \"chunked\"\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "is not accepted" },
	{ POST "Transfer-Encoding: identity\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST, "is not accepted" },
	{ POST "Transfer-Encoding:\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST, "is not accepted" },
	{ POST "Transfer-Encoding: chunked\x0b\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "control character 0x0b in the value of header field 'Transfer-Encoding'" },
	{ POST "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 0,
	  HTTP_ERR_BAD_REQUEST, "header field 'Transfer-Encoding' appears twice" },
	{ POST "Transfer-Encoding: chunked\r\nTransfer-encoding: identity\r\n\r\n", 0,
	  HTTP_ERR_BAD_REQUEST, "appears twice" },
	{ "POST http://a.example/ HTTP/1.0\r\n" HOST "Transfer-Encoding: chunked\r\n\r\n", 0,
	  HTTP_ERR_BAD_REQUEST, "Transfer-Encoding in an HTTP/1.0 message" },
	/* Content-Length forms */
	{ POST "Content-Length: 5\r\nContent-Length: 5\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "header field 'Content-Length' appears twice" },
	{ POST "Content-Length: 5\r\ncontent-length: 6\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "header field 'Content-Length' appears twice" },
	{ POST "Content-Length: +5\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "Content-Length '+5' is not a decimal number" },
	{ POST "Content-Length: -5\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST, "is not a decimal number" },
	{ POST "Content-Length: 5, 5\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "Content-Length '5, 5' is not a decimal number" },
	{ POST "Content-Length: 5,5\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST, "is not a decimal number" },
	{ POST "Content-Length: 5 5\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST, "is not a decimal number" },
	{ POST "Content-Length: 0x5\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST, "is not a decimal number" },
	{ POST "Content-Length: 5.0\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST, "is not a decimal number" },
	{ POST "Content-Length: 1e3\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST, "is not a decimal number" },
	{ POST "Content-Length:\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST, "empty Content-Length" },
	{ POST "Content-Length: 1000000000000000\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "has more than 15 digits" },
	{ POST "Content-Length: 99999999999999999999999\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "has more than 15 digits" },
	{ "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\nContent-Length: 5\r\n\r\n", 0,
	  HTTP_ERR_BAD_REQUEST, "CONNECT request with a body" },
	{ "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n"
	  "Transfer-Encoding: chunked\r\n\r\n",
	  0, HTTP_ERR_BAD_REQUEST, "CONNECT request with a body" },
	/* line structure */
	{ RL HOST "X-A: b\r\n c\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "header line at byte 57 starts with whitespace (obs-fold" },
	{ RL HOST "X-A: b\r\n\tc\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST, "obs-fold" },
	{ RL " Host: a.example\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "header line at byte 32 starts with whitespace" },
	{ "GET http://a.example/ HTTP/1.1\n" HOST "\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "bare LF in request line at byte 30" },
	{ RL "Host: a.example\n\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "bare LF in header section at byte 47" },
	{ RL HOST "\n", 0, HTTP_ERR_BAD_REQUEST, "bare LF in header section at byte 49" },
	{ RL HOST "X-A: b\nContent-Length: 5\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST, "bare LF" },
	{ "GET http://a.example/ HTTP/1.1\r\r\n" HOST "\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "bare CR in request line at byte 30" },
	{ RL HOST "X-A: b\rX-B: c\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "bare CR in header section at byte 55" },
	{ RL HOST "\r\r\n", 0, HTTP_ERR_BAD_REQUEST, "bare CR" },
	{ RL HOST "X-A: b\0c\r\n\r\n", 61, HTTP_ERR_BAD_REQUEST,
	  "NUL byte in header section at byte 55" },
	{ "GET http://a.example/\0 HTTP/1.1\r\n" HOST "\r\n", 52, HTTP_ERR_BAD_REQUEST,
	  "NUL byte in request line at byte 21" },
	{ RL HOST "X-A: b\x01\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "control character 0x01 in the value of header field 'X-A' at byte 55" },
	{ RL HOST "X-A: b\x7f\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST, "control character 0x7f" },
	{ RL HOST "X-A: \x1b[31m\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST, "control character 0x1b" },
	{ RL "Host : a.example\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "whitespace between header field name 'Host' and ':' at byte 36" },
	{ RL HOST "Content-Length\t: 5\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "whitespace between header field name 'Content-Length' and ':'" },
	{ RL HOST "X(A): b\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "invalid character 0x28 in header field name at byte 50" },
	{ RL HOST "X\x80: b\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "invalid character 0x80 in header field name" },
	{ RL HOST ": b\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST, "empty header field name at byte 49" },
	/* the line is not quoted: it may be a malformed Authorization field */
	{ RL HOST "NoColon\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "header line at byte 49 has no ':'" },
	{ "\r\n" RL HOST "\r\n", 0, HTTP_ERR_BAD_REQUEST, "empty line before the request line" },
	/* Host */
	{ RL "\r\n", 0, HTTP_ERR_BAD_REQUEST, "header field 'Host' is missing" },
	{ RL HOST "Host: a.example\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "header field 'Host' appears twice" },
	{ RL HOST "host: b.example\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST, "appears twice" },
	{ RL "Host:\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST, "empty host in the Host field" },
	{ RL "Host: b.example\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "Host field 'b.example' disagrees with the request target 'a.example:80'" },
	{ RL "Host: a.example:8080\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "Host field 'a.example:8080' disagrees with the request target 'a.example:80'" },
	{ "GET http://a.example:8080/ HTTP/1.1\r\n" HOST "\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "Host field 'a.example' disagrees with the request target 'a.example:8080'" },
	{ RL "Host: a.example.\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST, "disagrees" },
	{ RL "Host: a.example/x\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "invalid character 0x2f in the host of the Host field" },
	{ RL "Host: u@a.example\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "userinfo ('user@') in the Host field" },
	{ RL "Host: a.example:\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST, "empty port in the Host field" },
	{ "GET http://[::1]/ HTTP/1.1\r\nHost: [::2]\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "Host field '[::2]' disagrees with the request target '[::1]:80'" },
	{ "GET http://[::1]/ HTTP/1.1\r\nHost: ::1\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "empty host in the Host field" },
	{ "CONNECT a.example:443 HTTP/1.1\r\nHost: b.example\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "Host field 'b.example' disagrees with the request target 'a.example:443'" },
	{ "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:444\r\n\r\n", 0,
	  HTTP_ERR_BAD_REQUEST, "disagrees" },
	/* request target */
	{ "GET http://user@a.example/ HTTP/1.1\r\n" HOST "\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "userinfo ('user@') in the request target is not allowed" },
	{ "GET http://a.example@b.example/ HTTP/1.1\r\nHost: b.example\r\n\r\n", 0,
	  HTTP_ERR_BAD_REQUEST, "userinfo" },
	{ "GET http://u:p@a.example/ HTTP/1.1\r\n" HOST "\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "userinfo" },
	{ "GET http://a.example/x#frag HTTP/1.1\r\n" HOST "\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "fragment ('#') in request target at byte 22" },
	{ "GET http://a.example#@b.example/ HTTP/1.1\r\n" HOST "\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "fragment" },
	{ "GET https://a.example/ HTTP/1.1\r\n" HOST "\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "https:// request target is not accepted: use CONNECT" },
	{ "GET HTTPS://a.example/ HTTP/1.1\r\n" HOST "\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "use CONNECT" },
	{ "GET ftp://a.example/ HTTP/1.1\r\n" HOST "\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "unsupported scheme 'ftp'" },
	{ "GET /index.html HTTP/1.1\r\n" HOST "\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "origin-form request target" },
	{ "OPTIONS * HTTP/1.1\r\n" HOST "\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "asterisk-form request target" },
	{ "GET a.example:80 HTTP/1.1\r\n" HOST "\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "only CONNECT may use host:port" },
	{ "CONNECT a.example HTTP/1.1\r\nHost: a.example\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "CONNECT target 'a.example' has no port" },
	{ "CONNECT a.example: HTTP/1.1\r\nHost: a.example\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "empty port in the CONNECT target" },
	{ "CONNECT http://a.example:443/ HTTP/1.1\r\nHost: a.example:443\r\n\r\n", 0,
	  HTTP_ERR_BAD_REQUEST, "CONNECT request target must be host:port" },
	{ "CONNECT a.example:0 HTTP/1.1\r\nHost: a.example:0\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "port 0 in the CONNECT target" },
	{ "CONNECT u@a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n", 0,
	  HTTP_ERR_BAD_REQUEST, "userinfo ('user@') in the CONNECT target" },
	{ "GET http:///x HTTP/1.1\r\n" HOST "\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "empty host in the request target" },
	{ "GET http://:80/ HTTP/1.1\r\n" HOST "\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "empty host in the request target" },
	{ "GET http://a%2eexample/ HTTP/1.1\r\n" HOST "\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "percent-encoding in the host of the request target" },
	{ "GET http://a!example/ HTTP/1.1\r\n" HOST "\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "invalid character 0x21 in the host of the request target" },
	{ "GET http://a.example:+80/ HTTP/1.1\r\n" HOST "\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "port '+80' in the request target is not a number" },
	{ "GET http://a.example:-80/ HTTP/1.1\r\n" HOST "\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "port '-80' in the request target is not a number" },
	{ "GET http://a.example:8o/ HTTP/1.1\r\n" HOST "\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "is not a number" },
	{ "GET http://a.example:65536/ HTTP/1.1\r\n" HOST "\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "port '65536' in the request target is out of range" },
	{ "GET http://a.example:000080/ HTTP/1.1\r\n" HOST "\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "out of range" },
	{ "GET http://a.example:99999999999999999999/ HTTP/1.1\r\n" HOST "\r\n", 0,
	  HTTP_ERR_BAD_REQUEST, "out of range" },
	{ "GET http://a.example:/ HTTP/1.1\r\n" HOST "\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "empty port in the request target" },
	{ "GET http://a.example:80:80/ HTTP/1.1\r\n" HOST "\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "is not a number" },
	{ "GET http://a.example?q HTTP/1.1\r\n" HOST "\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "request target has a query but no path" },
	{ "GET http://[::1/ HTTP/1.1\r\nHost: [::1]\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "unterminated '[' in the request target" },
	{ "GET http://[fe80::1%25eth0]/ HTTP/1.1\r\nHost: [fe80::1]\r\n\r\n", 0,
	  HTTP_ERR_BAD_REQUEST, "percent-encoding (IPv6 zone)" },
	{ "GET http://[::g]/ HTTP/1.1\r\nHost: [::g]\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "invalid IPv6 address '[::g]'" },
	{ "GET http://[1::2::3]/ HTTP/1.1\r\nHost: [1::2::3]\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "invalid IPv6 address '[1::2::3]'" },
	{ "GET http://[]/ HTTP/1.1\r\nHost: []\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "invalid IPv6 address '[]'" },
	{ "GET http://[v1.x]/ HTTP/1.1\r\nHost: [v1.x]\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "invalid IPv6 address" },
	{ "GET http://[::1]x/ HTTP/1.1\r\nHost: [::1]\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "unexpected character 0x78 after ']' in the request target" },
	{ "GET http://a.example/\x80 HTTP/1.1\r\n" HOST "\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "invalid byte 0x80 in request target at byte 21" },
	{ "GET http://a.example/\tx HTTP/1.1\r\n" HOST "\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "invalid byte 0x09 in request target" },
	{ "GET http://a.example/\x7f HTTP/1.1\r\n" HOST "\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "invalid byte 0x7f in request target" },
	{ "GET http://a.example/ x HTTP/1.1\r\n" HOST "\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "malformed HTTP version" },
	/* request line */
	{ "GET  http://a.example/ HTTP/1.1\r\n" HOST "\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "empty request target (more than one space after the method)" },
	{ "GET http://a.example/  HTTP/1.1\r\n" HOST "\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "malformed HTTP version" },
	{ " GET http://a.example/ HTTP/1.1\r\n" HOST "\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "request line starts with a space" },
	{ "GET\thttp://a.example/ HTTP/1.1\r\n" HOST "\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "invalid character 0x09 in method at byte 3" },
	{ "G(T http://a.example/ HTTP/1.1\r\n" HOST "\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "invalid character 0x28 in method at byte 1" },
	{ "ABCDEFGHIJKLMNOPQ http://a.example/ HTTP/1.1\r\n" HOST "\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "method longer than 16 bytes" },
	{ "GET\r\n" HOST "\r\n", 0, HTTP_ERR_BAD_REQUEST, "request line 'GET' has no target" },
	{ "GET http://a.example/\r\n" HOST "\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "request line has no HTTP version" },
	{ "GET http://a.example/ \r\n" HOST "\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "malformed HTTP version at byte 22" },
	{ "GET http://a.example/ http/1.1\r\n" HOST "\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "malformed HTTP version at byte 22" },
	{ "GET http://a.example/ HTTP/11\r\n" HOST "\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "malformed HTTP version" },
	{ "GET http://a.example/ HTTP/1.1 \r\n" HOST "\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "unexpected bytes after the HTTP version at byte 30" },
	{ "GET http://a.example/ HTTP/1.10\r\n" HOST "\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "unexpected bytes after the HTTP version" },
	{ "GET http://a.example/ HTTP/1.x\r\n" HOST "\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "malformed HTTP version" },
	{ "GET http://a.example/ HTTP/1.\r\n" HOST "\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "malformed HTTP version at byte 29 (expected HTTP/1.1)" },
	{ "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 0, HTTP_ERR_VERSION,
	  "HTTP version 'HTTP/2.0' is not supported" },
	{ "GET http://a.example/ HTTP/1.2\r\n" HOST "\r\n", 0, HTTP_ERR_VERSION,
	  "HTTP version 'HTTP/1.2' is not supported" },
	{ "GET http://a.example/ HTTP/0.9\r\n" HOST "\r\n", 0, HTTP_ERR_VERSION,
	  "is not supported" },
	{ "GET http://a.example/ HTTP/3.0\r\n" HOST "\r\n", 0, HTTP_ERR_VERSION,
	  "is not supported" },
	/* Expect and Connection */
	{ RL HOST "Expect: 100-continue, foo\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "Expect '100-continue, foo' is not supported" },
	{ RL HOST "Expect: 200-ok\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST, "is not supported" },
	{ RL HOST "Connection: close;x\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "Connection field 'close;x' is not a list of tokens" },
	{ RL HOST "Connection: keep alive\r\n\r\n", 0, HTTP_ERR_BAD_REQUEST,
	  "is not a list of tokens" },
};

static void test_request_rejects(void **state)
{
	(void)state;
	for (size_t i = 0; i < CDN_ARRAY_SIZE(rejects); i++) {
		const struct reject_case *c = &rejects[i];
		size_t len = c->len ? c->len : strlen(c->raw);
		struct http_request req;
		struct cdn_err err = { 0 };
		int r = http_parse_request(c->raw, len, &req, &err);
		if (r != c->code || !strstr(err.msg, c->msg))
			fail_msg("case %zu: got %d '%s', want %d '%s'", i, r, err.msg, c->code,
				 c->msg);
		/* A prefix is never accepted, and once a prefix is refused
		 * every longer one is too. */
		bool refused = false;
		for (size_t m = 0; m <= len; m++) {
			r = http_parse_request(c->raw, m, &req, &err);
			if (r > 0 || (refused && r == 0))
				fail_msg("case %zu prefix %zu: got %d", i, m, r);
			refused = r < 0;
		}
	}
}

/* Errors are reported from the bytes already there, without waiting. */
static void test_request_early_errors(void **state)
{
	(void)state;
	struct http_request req;
	struct cdn_err err = { 0 };
	static const char lf[] = "GET http://a.example/ HTTP/1.1\nHo";
	assert_int_equal(http_parse_request(lf, 30, &req, &err), 0);
	assert_int_equal(http_parse_request(lf, 31, &req, &err), HTTP_ERR_BAD_REQUEST);
	assert_non_null(strstr(err.msg, "bare LF in request line at byte 30"));

	assert_int_equal(http_parse_request("G\x01", 2, &req, &err), HTTP_ERR_BAD_REQUEST);
	assert_int_equal(http_parse_request("GET http://a.example/ HTTP/2", 28, &req, &err),
			 HTTP_ERR_VERSION);
	assert_int_equal(http_parse_request("GET http://a.example/ HTTP/1.", 29, &req, &err), 0);
	assert_int_equal(http_parse_request("GET http://a.example/ HTTPS", 27, &req, &err),
			 HTTP_ERR_BAD_REQUEST);
	assert_int_equal(http_parse_request(RL HOST " ", strlen(RL HOST) + 1, &req, &err),
			 HTTP_ERR_BAD_REQUEST);
	assert_int_equal(http_parse_request(RL "Host ", strlen(RL) + 5, &req, &err),
			 HTTP_ERR_BAD_REQUEST);
	assert_int_equal(http_parse_request(RL "X-A: \x02", strlen(RL) + 6, &req, &err),
			 HTTP_ERR_BAD_REQUEST);
	/* a CR at the end may still be followed by LF */
	assert_int_equal(http_parse_request(RL "X-A: b\r", strlen(RL) + 7, &req, &err), 0);
	assert_int_equal(http_parse_request(RL "X-A: b\rx", strlen(RL) + 8, &req, &err),
			 HTTP_ERR_BAD_REQUEST);

	/* the 101st field is refused as soon as it starts */
	char buf[4096];
	size_t n = (size_t)snprintf(buf, sizeof(buf), RL);
	for (int i = 0; i < HTTP_MAX_HEADERS; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "X-%d: v\r\n", i);
	assert_int_equal(http_parse_request(buf, n, &req, &err), 0);
	buf[n++] = 'X';
	assert_int_equal(http_parse_request(buf, n, &req, &err), HTTP_ERR_HEADERS_TOO_LARGE);
	assert_non_null(strstr(err.msg, "more than 100 header fields"));

	/* a long target is refused before its end arrives */
	static char big[HTTP_MAX_TARGET + 64];
	memset(big, 'a', sizeof(big));
	memcpy(big, "GET http://a.example/", 21);
	assert_int_equal(http_parse_request(big, 4 + HTTP_MAX_TARGET, &req, &err), 0);
	assert_int_equal(http_parse_request(big, 4 + HTTP_MAX_TARGET + 1, &req, &err),
			 HTTP_ERR_URI_TOO_LONG);
	assert_non_null(strstr(err.msg, "request target longer than 8192 bytes"));
}

static void test_request_limits(void **state)
{
	(void)state;
	static char buf[HTTP_MAX_HEAD + 4096];
	struct http_request req;
	struct cdn_err err = { 0 };
	size_t n;

	/* exactly 100 fields is fine */
	n = (size_t)snprintf(buf, sizeof(buf), RL HOST);
	for (int i = 1; i < HTTP_MAX_HEADERS; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "X-%d: v\r\n", i);
	n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\r\n");
	assert_int_equal(http_parse_request(buf, n, &req, &err), n);
	assert_int_equal(req.n_fields, HTTP_MAX_HEADERS);
	/* 101 is not */
	n -= 2;
	n += (size_t)snprintf(buf + n, sizeof(buf) - n, "X-Last: v\r\n\r\n");
	assert_int_equal(http_parse_request(buf, n, &req, &err), HTTP_ERR_HEADERS_TOO_LARGE);

	/* a head of exactly HTTP_MAX_HEAD bytes is fine, one more is not */
	size_t fixed = strlen(RL HOST "X-Pad: \r\n\r\n");
	size_t pad = HTTP_MAX_HEAD - fixed;
	n = (size_t)snprintf(buf, sizeof(buf), RL HOST "X-Pad: ");
	memset(buf + n, 'p', pad);
	n += pad;
	memcpy(buf + n, "\r\n\r\n", 4);
	n += 4;
	assert_int_equal(n, HTTP_MAX_HEAD);
	assert_int_equal(http_parse_request(buf, n, &req, &err), HTTP_MAX_HEAD);
	assert_int_equal(req.fields[1].value_len, pad);
	/* same head with one more pad byte: 0 while below the limit, then 431 */
	n = (size_t)snprintf(buf, sizeof(buf), RL HOST "X-Pad: ");
	memset(buf + n, 'p', pad + 1);
	n += pad + 1;
	memcpy(buf + n, "\r\n\r\n", 4);
	n += 4;
	assert_int_equal(http_parse_request(buf, HTTP_MAX_HEAD - 1, &req, &err), 0);
	assert_int_equal(http_parse_request(buf, HTTP_MAX_HEAD, &req, &err),
			 HTTP_ERR_HEADERS_TOO_LARGE);
	assert_int_equal(http_parse_request(buf, n, &req, &err), HTTP_ERR_HEADERS_TOO_LARGE);
	assert_non_null(strstr(err.msg, "no complete head within 16384 bytes"));

	/* an endless header line */
	n = (size_t)snprintf(buf, sizeof(buf), RL HOST "X-Big: ");
	memset(buf + n, 'b', sizeof(buf) - n);
	assert_int_equal(http_parse_request(buf, sizeof(buf), &req, &err),
			 HTTP_ERR_HEADERS_TOO_LARGE);

	/* target of exactly HTTP_MAX_TARGET bytes is fine, one more is 414 */
	for (int extra = 0; extra < 2; extra++) {
		size_t tlen = HTTP_MAX_TARGET + (size_t)extra;
		n = (size_t)snprintf(buf, sizeof(buf), "GET http://a.example/");
		memset(buf + n, 'x', tlen - 17);
		n += tlen - 17;
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, " HTTP/1.1\r\n" HOST "\r\n");
		int r = http_parse_request(buf, n, &req, &err);
		if (extra == 0) {
			assert_int_equal(r, n);
			assert_int_equal(req.path_len, tlen - 16);
		} else {
			assert_int_equal(r, HTTP_ERR_URI_TOO_LONG);
		}
	}

	/* host of 255 bytes is fine, 256 is not */
	for (int extra = 0; extra < 2; extra++) {
		char host[300];
		size_t hl = HTTP_MAX_HOST + (size_t)extra;
		memset(host, 'h', hl);
		host[hl] = '\0';
		n = (size_t)snprintf(buf, sizeof(buf), "GET http://%s/ HTTP/1.1\r\nHost: %s\r\n\r\n",
				     host, host);
		int r = http_parse_request(buf, n, &req, &err);
		if (extra == 0) {
			assert_int_equal(r, n);
			assert_int_equal(strlen(req.host), HTTP_MAX_HOST);
		} else {
			assert_int_equal(r, HTTP_ERR_BAD_REQUEST);
			assert_non_null(strstr(err.msg, "longer than 255 bytes"));
		}
	}
}

/* Fed one byte at a time, a valid head is "need more" until its last byte. */
static void test_request_incremental(void **state)
{
	(void)state;
	static const char raw[] = "POST http://a.example:8080/api?x=1 HTTP/1.1\r\n"
				  "Host: a.example:8080\r\n"
				  "Content-Type: application/json\r\n"
				  "Transfer-Encoding: chunked\r\n"
				  "\r\n";
	struct http_request req;
	struct cdn_err err = { 0 };
	size_t len = strlen(raw);
	for (size_t m = 0; m < len; m++)
		if (http_parse_request(raw, m, &req, &err) != 0)
			fail_msg("prefix %zu: not 0 (%s)", m, err.msg);
	assert_int_equal(http_parse_request(raw, len, &req, &err), len);
	assert_int_equal(req.body, HTTP_BODY_CHUNKED);
	assert_int_equal(req.port, 8080);
}

/* head_len points exactly at the next message. */
static void test_request_pipelined(void **state)
{
	(void)state;
	static const char raw[] = "POST http://a.example/1 HTTP/1.1\r\n"
				  "Host: a.example\r\n"
				  "Content-Length: 5\r\n"
				  "\r\n"
				  "hello"
				  "GET http://a.example/2 HTTP/1.1\r\n"
				  "Host: a.example\r\n"
				  "\r\n"
				  "GET http://b.example/3 HTTP/1.1\r\n"
				  "Host: b.example\r\n"
				  "Connection: close\r\n"
				  "\r\n"
				  "GARBAGE";
	struct http_request req;
	struct cdn_err err = { 0 };
	const char *p = raw;
	size_t left = strlen(raw);
	int r = http_parse_request(p, left, &req, &err);
	assert_int_equal(r, 72);
	assert_int_equal(req.body, HTTP_BODY_LENGTH);
	assert_int_equal(req.content_length, 5);
	assert_memory_equal(p + r, "hello", 5);
	p += r + 5;
	left -= (size_t)r + 5;
	r = http_parse_request(p, left, &req, &err);
	assert_int_equal(r, 52);
	assert_mem(req.path, req.path_len, "/2");
	assert_true(req.keep_alive);
	p += r;
	left -= (size_t)r;
	r = http_parse_request(p, left, &req, &err);
	assert_int_equal(r, 71);
	assert_string_equal(req.host, "b.example");
	assert_false(req.keep_alive);
	p += r;
	left -= (size_t)r;
	assert_int_equal(left, 7);
	assert_int_equal(http_parse_request(p, left, &req, &err), 0);
}

/* ---------------------------------------------------------------------------
 * Responses
 */

struct resp_case {
	const char *raw;
	const char *method;
	int ret; /* > 0: expect the full length */
	int status;
	enum http_body_kind body;
	uint64_t content_length;
	bool keep_alive;
	const char *msg; /* for errors */
};

static void test_responses(void **state)
{
	(void)state;
	static const struct resp_case cases[] = {
		{ "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "GET", 1, 200, HTTP_BODY_LENGTH,
		  5, true, NULL },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "POST", 1, 200,
		  HTTP_BODY_CHUNKED, 0, true, NULL },
		{ "HTTP/1.1 200 OK\r\n\r\n", "GET", 1, 200, HTTP_BODY_CLOSE, 0, false, NULL },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n", "GET", 1,
		  200, HTTP_BODY_LENGTH, 5, false, NULL },
		{ "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n", "GET", 1, 200, HTTP_BODY_LENGTH,
		  5, false, NULL },
		{ "HTTP/1.0 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n", "GET",
		  1, 200, HTTP_BODY_LENGTH, 5, true, NULL },
		{ "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", "GET", 1, 200,
		  HTTP_BODY_CLOSE, 0, false, NULL },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "HEAD", 1, 200, HTTP_BODY_NONE, 0,
		  true, NULL },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "HEAD", 1, 200,
		  HTTP_BODY_NONE, 0, true, NULL },
		{ "HTTP/1.1 204 No Content\r\n\r\n", "DELETE", 1, 204, HTTP_BODY_NONE, 0, true,
		  NULL },
		{ "HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n", "GET", 1, 304,
		  HTTP_BODY_NONE, 0, true, NULL },
		{ "HTTP/1.1 100 Continue\r\n\r\n", "POST", 1, 100, HTTP_BODY_NONE, 0, true, NULL },
		{ "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", "GET", 1, 101,
		  HTTP_BODY_NONE, 0, true, NULL },
		{ "HTTP/1.1 200 Connection established\r\n\r\n", "CONNECT", 1, 200,
		  HTTP_BODY_NONE, 0, true, NULL },
		{ "HTTP/1.1 407 Proxy Auth\r\nContent-Length: 3\r\n\r\n", "CONNECT", 1, 407,
		  HTTP_BODY_LENGTH, 3, true, NULL },
		{ "HTTP/1.1 599 \r\n\r\n", "GET", 1, 599, HTTP_BODY_CLOSE, 0, false, NULL },
		{ "HTTP/1.1 204\r\n\r\n", "GET", 1, 204, HTTP_BODY_NONE, 0, true, NULL },
		{ "HTTP/1.1 404 Not\tFound \xe9t\xe9\r\nContent-Length: 0\r\n\r\n", "GET", 1, 404,
		  HTTP_BODY_LENGTH, 0, true, NULL },
		/* refusals: TE+CL is 502-worthy, reported as HTTP_ERR_BAD_REQUEST */
		{ "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
		  "GET", HTTP_ERR_BAD_REQUEST, 0, 0, 0, false,
		  "both Content-Length and Transfer-Encoding" },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", "GET",
		  HTTP_ERR_BAD_REQUEST, 0, 0, 0, false, "'Content-Length' appears twice" },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "GET",
		  HTTP_ERR_BAD_REQUEST, 0, 0, 0, false, "is not accepted" },
		{ "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "GET",
		  HTTP_ERR_BAD_REQUEST, 0, 0, 0, false, "Transfer-Encoding in an HTTP/1.0" },
		{ "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "GET", HTTP_ERR_BAD_REQUEST, 0,
		  0, 0, false, "is not a decimal number" },
		{ "HTTP/1.1 200 OK\nContent-Length: 5\r\n\r\n", "GET", HTTP_ERR_BAD_REQUEST, 0, 0,
		  0, false, "bare LF in status line at byte 15" },
		{ "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", "GET", HTTP_ERR_BAD_REQUEST, 0, 0, 0,
		  false, "obs-fold" },
		{ "HTTP/1.1 200 O\x01K\r\n\r\n", "GET", HTTP_ERR_BAD_REQUEST, 0, 0, 0, false,
		  "control character 0x01 in reason phrase at byte 14" },
		{ "HTTP/1.1 600 Weird\r\n\r\n", "GET", HTTP_ERR_BAD_REQUEST, 0, 0, 0, false,
		  "malformed status line at byte 9" },
		{ "HTTP/1.1 099 Low\r\n\r\n", "GET", HTTP_ERR_BAD_REQUEST, 0, 0, 0, false,
		  "malformed status line" },
		{ "HTTP/1.1 20 OK\r\n\r\n", "GET", HTTP_ERR_BAD_REQUEST, 0, 0, 0, false,
		  "malformed status line at byte 11" },
		{ "HTTP/1.1  200 OK\r\n\r\n", "GET", HTTP_ERR_BAD_REQUEST, 0, 0, 0, false,
		  "malformed status line" },
		{ "HTTP/1.1 200OK\r\n\r\n", "GET", HTTP_ERR_BAD_REQUEST, 0, 0, 0, false,
		  "malformed status line at byte 12" },
		{ "HTTP/1.1 20\r\n\r\n", "GET", HTTP_ERR_BAD_REQUEST, 0, 0, 0, false,
		  "status line too short" },
		{ "HTTP/1.1\r\n\r\n", "GET", HTTP_ERR_BAD_REQUEST, 0, 0, 0, false,
		  "status line too short" },
		{ "http/1.1 200 OK\r\n\r\n", "GET", HTTP_ERR_BAD_REQUEST, 0, 0, 0, false,
		  "malformed HTTP version" },
		{ "HTTP/2 200 OK\r\n\r\n", "GET", HTTP_ERR_VERSION, 0, 0, 0, false,
		  "is not supported" },
		{ "HTTP/1.2 200 OK\r\n\r\n", "GET", HTTP_ERR_VERSION, 0, 0, 0, false,
		  "is not supported" },
		{ "HTTP/1.1 200 OK\r\nSet-Cookie : a\r\n\r\n", "GET", HTTP_ERR_BAD_REQUEST, 0, 0, 0,
		  false, "whitespace between header field name" },
	};
	for (size_t i = 0; i < CDN_ARRAY_SIZE(cases); i++) {
		const struct resp_case *c = &cases[i];
		struct http_response res;
		struct cdn_err err = { 0 };
		size_t len = strlen(c->raw);
		int r = http_parse_response(c->raw, len, c->method, &res, &err);
		if (c->ret > 0) {
			if (r != (int)len)
				fail_msg("case %zu: got %d (%s)", i, r, err.msg);
			if (res.status != c->status || res.body != c->body ||
			    res.content_length != c->content_length ||
			    res.keep_alive != c->keep_alive)
				fail_msg("case %zu: status %d body %d cl %llu ka %d", i, res.status,
					 res.body, (unsigned long long)res.content_length,
					 res.keep_alive);
			assert_int_equal(res.head_len, len);
		} else if (r != c->ret || !strstr(err.msg, c->msg)) {
			fail_msg("case %zu: got %d '%s', want %d '%s'", i, r, err.msg, c->ret,
				 c->msg);
		}
		for (size_t m = 0; m < len; m++) {
			int rp = http_parse_response(c->raw, m, c->method, &res, &err);
			if (rp > 0)
				fail_msg("case %zu prefix %zu accepted", i, m);
		}
	}
}

static void test_response_fields(void **state)
{
	(void)state;
	static const char raw[] = "HTTP/1.1 404 Not Found\r\n"
				  "Content-Type: text/plain\r\n"
				  "content-length: 3\r\n"
				  "\r\n"
				  "abcHTTP/1.1 200 OK\r\n";
	struct http_response res;
	struct cdn_err err = { 0 };
	int r = http_parse_response(raw, sizeof(raw) - 1, "GET", &res, &err);
	assert_int_equal(r, 71);
	assert_int_equal(res.version_minor, 1);
	assert_mem(res.reason, res.reason_len, "Not Found");
	assert_int_equal(res.n_fields, 2);
	const struct http_field *f = http_find_field(res.fields, res.n_fields, "CONTENT-LENGTH");
	assert_ptr_equal(f, &res.fields[1]);
	assert_mem(f->value, f->value_len, "3");
	assert_memory_equal(raw + r, "abc", 3);

	/* incremental */
	for (size_t m = 0; m < 71; m++)
		assert_int_equal(http_parse_response(raw, m, "GET", &res, &err), 0);
	/* an empty reason after the SP */
	r = http_parse_response("HTTP/1.0 200 \r\n\r\n", 17, NULL, &res, &err);
	assert_int_equal(r, 17);
	assert_int_equal(res.reason_len, 0);
	assert_int_equal(res.version_minor, 0);
	assert_int_equal(res.body, HTTP_BODY_CLOSE);
}

/* ---------------------------------------------------------------------------
 * Field helpers
 */

static void test_find_field(void **state)
{
	(void)state;
	static const char raw[] = RL "Host: a.example\r\nX-A: 1\r\nx-a: 2\r\n\r\n";
	struct http_request req;
	struct cdn_err err = { 0 };
	assert_true(parse_req(raw, &req, &err) > 0);
	const struct http_field *f = http_find_field(req.fields, req.n_fields, "x-A");
	assert_ptr_equal(f, &req.fields[1]);
	assert_mem(f->value, f->value_len, "1");
	assert_ptr_equal(http_find_field(req.fields, req.n_fields, "host"), &req.fields[0]);
	assert_null(http_find_field(req.fields, req.n_fields, "X"));
	assert_null(http_find_field(req.fields, req.n_fields, "X-AB"));
	assert_null(http_find_field(req.fields, req.n_fields, "Hos"));
	assert_null(http_find_field(req.fields, 0, "Host"));
}

static void test_hop_by_hop(void **state)
{
	(void)state;
	static const char *const yes[] = {
		"Connection",	       "connection",	      "Keep-Alive", "Proxy-Connection",
		"Proxy-Authenticate", "PROXY-AUTHORIZATION", "TE",	    "te",
		"Trailer",	       "Transfer-Encoding",   "Upgrade",    "Proxy-Anything",
	};
	static const char *const no[] = {
		"Content-Length", "Host", "Authorization", "Connectio", "Connections",
		"Trailers",	  "T",	  "Proxy",	   "XTE",	"",
	};
	for (size_t i = 0; i < CDN_ARRAY_SIZE(yes); i++)
		if (!http_is_hop_by_hop(yes[i], strlen(yes[i])))
			fail_msg("%s should be hop-by-hop", yes[i]);
	for (size_t i = 0; i < CDN_ARRAY_SIZE(no); i++)
		if (http_is_hop_by_hop(no[i], strlen(no[i])))
			fail_msg("%s should not be hop-by-hop", no[i]);
	/* only len bytes count */
	assert_false(http_is_hop_by_hop("Connection", 4));
	assert_true(http_is_hop_by_hop("TE: x", 2));
}

/* ---------------------------------------------------------------------------
 * Chunked decoder
 */

struct sink {
	char buf[8192];
	size_t n;
	size_t calls;
};

static void sink_data(void *ctx, const char *p, size_t n)
{
	struct sink *s = ctx;
	assert_true(n > 0);
	assert_true(s->n + n <= sizeof(s->buf));
	memcpy(s->buf + s->n, p, n);
	s->n += n;
	s->calls++;
}

static const char sample[] = "5\r\nhello\r\n"
			     "6;name=value;flag;q=\"a \\\"b\\\" c\"\r\n world\r\n"
			     "1A\r\n, with twenty-six bytes!!!\r\n"
			     "000\r\n"
			     "X-Checksum: abc\r\n"
			     "X-Other:\r\n"
			     "\r\n"
			     "NEXT";
static const char sample_data[] = "hello world, with twenty-six bytes!!!";

static void test_chunked_whole(void **state)
{
	(void)state;
	struct http_chunked c;
	struct sink s = { 0 };
	struct cdn_err err = { 0 };
	size_t len = sizeof(sample) - 1;
	http_chunked_init(&c);
	long r = http_chunked_feed(&c, sample, len, sink_data, &s, &err);
	assert_int_equal(r, len - 4);
	assert_true(c.done);
	assert_mem(s.buf, s.n, sample_data);
	assert_int_equal(s.calls, 3);
	/* finished: nothing more is consumed */
	assert_int_equal(http_chunked_feed(&c, "NEXT", 4, sink_data, &s, &err), 0);
	/* NULL callback */
	http_chunked_init(&c);
	assert_int_equal(http_chunked_feed(&c, sample, len, NULL, NULL, &err), len - 4);
}

/* Every way to cut the body in three pieces decodes the same. */
static void test_chunked_splits(void **state)
{
	(void)state;
	size_t len = sizeof(sample) - 1;
	size_t end = len - 4;
	for (size_t a = 0; a <= len; a++) {
		for (size_t b = a; b <= len; b++) {
			struct http_chunked c;
			struct sink s = { 0 };
			struct cdn_err err = { 0 };
			http_chunked_init(&c);
			size_t cuts[3][2] = { { 0, a }, { a, b }, { b, len } };
			size_t total = 0;
			for (int k = 0; k < 3; k++) {
				size_t n = cuts[k][1] - cuts[k][0];
				long r = http_chunked_feed(&c, sample + cuts[k][0], n, sink_data,
							   &s, &err);
				assert_true(r >= 0);
				total += (size_t)r;
				size_t want = cuts[k][1] <= end	  ? n
					      : cuts[k][0] >= end ? 0
								  : end - cuts[k][0];
				if ((size_t)r != want)
					fail_msg("split %zu/%zu piece %d: %ld, want %zu", a, b, k,
						 r, want);
			}
			assert_int_equal(total, end);
			assert_true(c.done);
			assert_mem(s.buf, s.n, sample_data);
		}
	}
	/* one byte at a time */
	struct http_chunked c;
	struct sink s = { 0 };
	struct cdn_err err = { 0 };
	http_chunked_init(&c);
	for (size_t i = 0; i < end; i++) {
		assert_false(c.done);
		assert_int_equal(http_chunked_feed(&c, sample + i, 1, sink_data, &s, &err), 1);
	}
	assert_true(c.done);
	assert_mem(s.buf, s.n, sample_data);
	assert_int_equal(s.calls, strlen(sample_data));
}

struct chunk_case {
	const char *raw;
	long ret;	  /* -1 or bytes consumed */
	const char *data; /* decoded before the end or the error */
	const char *msg;
};

static void test_chunked_cases(void **state)
{
	(void)state;
	static char long_ext[HTTP_MAX_CHUNK_EXT + 64], max_ext[HTTP_MAX_CHUNK_EXT + 64];
	static char long_trailer[HTTP_MAX_TRAILERS + 64], max_trailer[HTTP_MAX_TRAILERS + 64];
	/* ext_len counts from the ';' to the CR */
	snprintf(max_ext, sizeof(max_ext), "1;%0*d\r\nx\r\n0\r\n\r\n", HTTP_MAX_CHUNK_EXT - 1, 0);
	snprintf(long_ext, sizeof(long_ext), "1;%0*d\r\nx\r\n0\r\n\r\n", HTTP_MAX_CHUNK_EXT, 0);
	/* the trailer section counts every byte after "0\r\n" */
	snprintf(max_trailer, sizeof(max_trailer), "0\r\nX:%0*d\r\n\r\n", HTTP_MAX_TRAILERS - 6,
		 0);
	snprintf(long_trailer, sizeof(long_trailer), "0\r\nX:%0*d\r\n\r\n",
		 HTTP_MAX_TRAILERS - 5, 0);
	const struct chunk_case cases[] = {
		{ "0\r\n\r\n", 5, "", NULL },
		{ "a\r\n0123456789\r\nA\r\nabcdefghij\r\n0\r\n\r\n", 35, "0123456789abcdefghij",
		  NULL },
		{ "0000000000000003\r\nabc\r\n0\r\n\r\n", 28, "abc", NULL },
		{ "1;a=b;c;d=\"\"\r\nx\r\n0;last\r\n\r\n", 27, "x", NULL },
		{ "1;a=\"\\\\\\\"\t\x80\"\r\nx\r\n0\r\n\r\n", 22, "x", NULL },
		{ "0\r\nA: 1\r\nB:\t2 \r\n\r\nX", 18, "", NULL },
		{ max_ext, (long)strlen(max_ext), "x", NULL },
		{ max_trailer, (long)strlen(max_trailer), "", NULL },
		/* size line */
		{ "00000000000000001\r\nx\r\n0\r\n\r\n", -1, "", "more than 16 hex digits" },
		{ "FFFFFFFFFFFFFFFFF\r\n", -1, "", "more than 16 hex digits" },
		{ "\r\n", -1, "", "expected a hex chunk size" },
		{ " 5\r\nhello\r\n0\r\n\r\n", -1, "", "expected a hex chunk size" },
		{ "+5\r\nhello\r\n0\r\n\r\n", -1, "", "expected a hex chunk size" },
		{ "-5\r\nhello\r\n0\r\n\r\n", -1, "", "expected a hex chunk size" },
		{ "5 \r\nhello\r\n0\r\n\r\n", -1, "", "after the chunk size" },
		{ "0x5\r\nhello\r\n0\r\n\r\n", -1, "", "after the chunk size" },
		{ "5\nhello\r\n0\r\n\r\n", -1, "", "bare LF" },
		{ "5\rhello\r\n0\r\n\r\n", -1, "", "expected LF after CR" },
		{ "g\r\n", -1, "", "expected a hex chunk size" },
		/* data terminator */
		{ "5\r\nhelloXX\r\n0\r\n\r\n", -1, "hello", "expected CRLF after chunk data" },
		{ "5\r\nhello\n0\r\n\r\n", -1, "hello", "bare LF" },
		{ "5\r\nhello\r0\r\n\r\n", -1, "hello", "expected CRLF after chunk data" },
		{ "5\r\nhello world\r\n0\r\n\r\n", -1, "hello", "expected CRLF after chunk data" },
		{ "3\r\nhello\r\n", -1, "hel", "at byte 6" },
		/* extensions */
		{ "1;\r\nx\r\n0\r\n\r\n", -1, "", "expected a chunk extension name" },
		{ "1; a\r\nx\r\n0\r\n\r\n", -1, "", "expected a chunk extension name" },
		{ "1 ;a\r\nx\r\n0\r\n\r\n", -1, "", "after the chunk size" },
		{ "1;a =b\r\nx\r\n0\r\n\r\n", -1, "", "malformed chunk extension" },
		{ "1;a= b\r\nx\r\n0\r\n\r\n", -1, "", "expected a token or quoted string" },
		{ "1;a=\r\nx\r\n0\r\n\r\n", -1, "", "expected a token or quoted string" },
		{ "1;a=b=c\r\nx\r\n0\r\n\r\n", -1, "", "malformed chunk extension" },
		{ "1;a=\"b\"c\r\nx\r\n0\r\n\r\n", -1, "", "malformed chunk extension" },
		{ "1;a=\"b\r\nx\r\n0\r\n\r\n", -1, "", "invalid byte in a quoted chunk" },
		{ "1;a=\"b\x01\"\r\nx\r\n0\r\n\r\n", -1, "", "invalid byte in a quoted chunk" },
		{ "1;a=\"\\\x01\"\r\nx\r\n0\r\n\r\n", -1, "", "invalid quoted-pair" },
		{ "1;a\nx\r\n0\r\n\r\n", -1, "", "bare LF" },
		{ "1;a\x01\r\nx\r\n0\r\n\r\n", -1, "", "malformed chunk extension" },
		{ "1;a(\r\nx\r\n0\r\n\r\n", -1, "", "malformed chunk extension" },
		{ long_ext, -1, "", "chunk extensions longer than HTTP_MAX_CHUNK_EXT" },
		/* trailers */
		{ "0\r\nX: y\r\n z\r\n\r\n", -1, "", "obs-fold" },
		{ "0\r\nXy\r\n\r\n", -1, "", "invalid character in a trailer field name" },
		{ "0\r\nX : y\r\n\r\n", -1, "", "whitespace before ':' in a trailer field" },
		{ "0\r\n: y\r\n\r\n", -1, "", "invalid character in a trailer field name" },
		{ "0\r\nX: \x01\r\n\r\n", -1, "", "control character in a trailer field value" },
		{ "0\r\nX: y\n\r\n", -1, "", "bare LF" },
		{ "0\r\nX: y\r\n\n", -1, "", "bare LF" },
		{ "0\r\nX: y\rz\r\n\r\n", -1, "", "expected LF after CR in the trailer section" },
		{ "0\r\n\rX", -1, "", "expected LF after CR at the end" },
		{ "0\r\n\n", -1, "", "bare LF" },
		{ long_trailer, -1, "", "trailer section longer than HTTP_MAX_TRAILERS" },
	};
	for (size_t i = 0; i < CDN_ARRAY_SIZE(cases); i++) {
		const struct chunk_case *cc = &cases[i];
		size_t len = strlen(cc->raw);
		/* whole, then byte by byte: same result */
		for (int mode = 0; mode < 2; mode++) {
			struct http_chunked c;
			struct sink s = { 0 };
			struct cdn_err err = { 0 };
			http_chunked_init(&c);
			long r;
			if (mode == 0) {
				r = http_chunked_feed(&c, cc->raw, len, sink_data, &s, &err);
			} else {
				r = 0;
				for (size_t k = 0; k < len; k++) {
					long one = http_chunked_feed(&c, cc->raw + k, 1, sink_data,
								     &s, &err);
					if (one < 0) {
						r = -1;
						break;
					}
					r += one;
					if (one == 0)
						break;
				}
			}
			if (r != cc->ret || s.n != strlen(cc->data) ||
			    memcmp(s.buf, cc->data, s.n) != 0)
				fail_msg("case %zu mode %d: got %ld data '%.*s' (%s)", i, mode, r,
					 (int)s.n, s.buf, err.msg);
			if (cc->ret < 0) {
				if (!strstr(err.msg, cc->msg))
					fail_msg("case %zu: message '%s' lacks '%s'", i, err.msg,
						 cc->msg);
				assert_false(c.done);
				/* stays failed */
				assert_int_equal(http_chunked_feed(&c, "0\r\n\r\n", 5, NULL, NULL,
								   &err),
						 -1);
			} else {
				assert_true(c.done);
			}
		}
	}
}

static void test_chunked_huge_size(void **state)
{
	(void)state;
	struct http_chunked c;
	struct sink s = { 0 };
	struct cdn_err err = { 0 };
	http_chunked_init(&c);
	assert_int_equal(http_chunked_feed(&c, "FFFFFFFFFFFFFFFF\r\nabc", 21, sink_data, &s, &err),
			 21);
	assert_int_equal(c.remaining, UINT64_MAX - 3);
	assert_mem(s.buf, s.n, "abc");
	assert_false(c.done);
	/* a body that stops in the middle is not done */
	http_chunked_init(&c);
	assert_int_equal(http_chunked_feed(&c, "5\r\nhel", 6, NULL, NULL, &err), 6);
	assert_false(c.done);
	assert_int_equal(http_chunked_feed(&c, "", 0, NULL, NULL, &err), 0);
}


/* Requests inside a terminated TLS tunnel: origin-form, Host names the tunnel. */
static void test_tunneled_requests(void **state)
{
	(void)state;
	struct http_request req;
	struct cdn_err err = { 0 };
	const char *ok = "POST /v1/x?y=1 HTTP/1.1\r\nHost: api.example\r\nContent-Length: 3\r\n\r\n";
	assert_int_equal(http_parse_request_tunneled(ok, strlen(ok), "api.example", 443, &req, &err),
			 (int)strlen(ok));
	assert_int_equal(req.form, HTTP_TARGET_ORIGIN);
	assert_string_equal(req.host, "api.example");
	assert_int_equal(req.port, 443);
	assert_int_equal(req.path_len, 9);
	assert_memory_equal(req.path, "/v1/x?y=1", 9);
	assert_int_equal(req.body, HTTP_BODY_LENGTH);
	assert_int_equal(req.content_length, 3);

	const char *port = "GET / HTTP/1.1\r\nHost: api.example:8443\r\n\r\n";
	assert_true(http_parse_request_tunneled(port, strlen(port), "api.example", 8443, &req, &err) > 0);
	assert_true(http_parse_request_tunneled(port, strlen(port), "api.example", 443, &req, &err) < 0);
	assert_non_null(strstr(err.msg, "disagrees"));

	static const char *const bad[] = {
		"GET / HTTP/1.1\r\nHost: other.example\r\n\r\n",
		"GET / HTTP/1.1\r\n\r\n",
		"GET http://api.example/ HTTP/1.1\r\nHost: api.example\r\n\r\n",
		"CONNECT api.example:443 HTTP/1.1\r\nHost: api.example:443\r\n\r\n",
		"GET /a#b HTTP/1.1\r\nHost: api.example\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: api.example\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
	};
	for (size_t i = 0; i < CDN_ARRAY_SIZE(bad); i++)
		assert_true(http_parse_request_tunneled(bad[i], strlen(bad[i]), "api.example", 443,
							&req, &err) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_simple),
		cmocka_unit_test(test_request_targets),
		cmocka_unit_test(test_request_methods),
		cmocka_unit_test(test_request_framing),
		cmocka_unit_test(test_request_keep_alive_expect),
		cmocka_unit_test(test_request_rejects),
		cmocka_unit_test(test_request_early_errors),
		cmocka_unit_test(test_request_limits),
		cmocka_unit_test(test_request_incremental),
		cmocka_unit_test(test_request_pipelined),
		cmocka_unit_test(test_responses),
		cmocka_unit_test(test_response_fields),
		cmocka_unit_test(test_find_field),
		cmocka_unit_test(test_hop_by_hop),
		cmocka_unit_test(test_chunked_whole),
		cmocka_unit_test(test_chunked_splits),
		cmocka_unit_test(test_chunked_cases),
		cmocka_unit_test(test_chunked_huge_size),
		cmocka_unit_test(test_tunneled_requests),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
