/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the HTTP parser: the input is tried as a request
 * head, as a response head (to GET and to HEAD) and as a chunked body. Any
 * invariant that fails aborts.
 *
 * Invariants: a head is accepted only if it ends in CRLFCRLF within the
 * buffer and HTTP_MAX_HEAD, contains no bare CR, bare LF or NUL, and every
 * pointer in the result lies inside it; a prefix of the input never gives a
 * different complete head, and an error on a prefix stays an error on the
 * whole. The chunked decoder gives the same bytes and the same result fed
 * whole or one byte at a time.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "egress/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

static bool inside(const char *p, size_t n, const char *buf, size_t len)
{
	return p >= buf && n <= len && (size_t)(p - buf) <= len - n;
}

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

static void check_head_bytes(const char *buf, size_t head)
{
	CHECK(head >= 4 && head <= HTTP_MAX_HEAD);
	CHECK(memcmp(buf + head - 4, "\r\n\r\n", 4) == 0);
	for (size_t i = 0; i < head; i++) {
		CHECK(buf[i] != '\0');
		if (buf[i] == '\n')
			CHECK(i > 0 && buf[i - 1] == '\r');
		if (buf[i] == '\r')
			CHECK(i + 1 < head && buf[i + 1] == '\n');
	}
}

static void check_fields(const struct http_field *f, size_t n, const char *buf, size_t head)
{
	CHECK(n <= HTTP_MAX_HEADERS);
	for (size_t i = 0; i < n; i++) {
		CHECK(f[i].name_len > 0);
		CHECK(inside(f[i].name, f[i].name_len, buf, head));
		CHECK(inside(f[i].value, f[i].value_len, buf, head));
		CHECK(f[i].value >= f[i].name + f[i].name_len);
		if (f[i].value_len) {
			CHECK(!is_ows(f[i].value[0]));
			CHECK(!is_ows(f[i].value[f[i].value_len - 1]));
		}
		for (size_t k = 0; k < f[i].value_len; k++) {
			unsigned char c = (unsigned char)f[i].value[k];
			CHECK((c >= 0x20 && c != 0x7f) || c == '\t');
		}
		/* lookup finds the first field of that name */
		char name[64];
		if (f[i].name_len < sizeof(name)) {
			memcpy(name, f[i].name, f[i].name_len);
			name[f[i].name_len] = '\0';
			const struct http_field *g = http_find_field(f, n, name);
			CHECK(g != NULL && g <= &f[i]);
		}
	}
}

static bool is_hint(int r)
{
	return r == HTTP_ERR_BAD_REQUEST || r == HTTP_ERR_URI_TOO_LONG ||
	       r == HTTP_ERR_HEADERS_TOO_LARGE || r == HTTP_ERR_NOT_IMPLEMENTED ||
	       r == HTTP_ERR_VERSION;
}

static void fuzz_request(const char *buf, size_t len)
{
	static struct http_request req, sub;
	struct cdn_err err = { 0 };
	int r = http_parse_request(buf, len, &req, &err);
	if (r < 0) {
		CHECK(is_hint(r) && err.msg[0] != '\0');
	} else if (r == 0) {
		CHECK(len < HTTP_MAX_HEAD);
	} else {
		size_t head = (size_t)r;
		CHECK(head <= len && head == req.head_len);
		check_head_bytes(buf, head);
		check_fields(req.fields, req.n_fields, buf, head);
		size_t ml = strlen(req.method);
		CHECK(ml > 0 && ml <= HTTP_MAX_METHOD);
		CHECK(inside(buf, ml, buf, head) && memcmp(buf, req.method, ml) == 0);
		size_t hl = strlen(req.host);
		CHECK(hl > 0 && hl <= HTTP_MAX_HOST);
		CHECK(req.port > 0);
		CHECK(req.version_minor == 0 || req.version_minor == 1);
		/* Host is optional only for CONNECT (http.c: check_host). */
		CHECK(req.form == HTTP_TARGET_AUTHORITY ||
		      http_find_field(req.fields, req.n_fields, "Host") != NULL);
		if (req.form == HTTP_TARGET_AUTHORITY) {
			CHECK(strcmp(req.method, "CONNECT") == 0);
			CHECK(req.path == NULL && req.path_len == 0);
			CHECK(req.body == HTTP_BODY_NONE);
		} else {
			CHECK(req.form == HTTP_TARGET_ABSOLUTE);
			CHECK(req.path_len > 0 && req.path[0] == '/');
			CHECK(req.path_len == 1 || inside(req.path, req.path_len, buf, head));
			for (size_t i = 0; i < req.path_len; i++)
				CHECK(req.path[i] > 0x20 && req.path[i] < 0x7f && req.path[i] != '#');
		}
		CHECK(req.body != HTTP_BODY_CLOSE);
		if (req.body == HTTP_BODY_LENGTH)
			CHECK(req.content_length < 1000000000000000ull);
		else
			CHECK(req.content_length == 0);
		if (req.body == HTTP_BODY_CHUNKED)
			CHECK(req.version_minor == 1);
		if (req.expect_continue)
			CHECK(req.version_minor == 1);
		/* the same head with one byte fewer is incomplete */
		CHECK(http_parse_request(buf, head - 1, &sub, &err) == 0);
	}
	/* prefix consistency */
	if (len > 0) {
		int p = http_parse_request(buf, len / 2, &sub, &err);
		if (p > 0)
			CHECK(r == p);
		if (p < 0)
			CHECK(r < 0);
	}
}

/* Requests inside an inspected TLS tunnel: origin-form, the tunnel's host. */
static void fuzz_tunneled(const char *buf, size_t len)
{
	static struct http_request req;
	struct cdn_err err = { 0 };
	int r = http_parse_request_tunneled(buf, len, "api.example.com", 443, &req, &err);
	if (r < 0) {
		CHECK(is_hint(r) && err.msg[0] != '\0');
	} else if (r > 0) {
		check_head_bytes(buf, (size_t)r);
		check_fields(req.fields, req.n_fields, buf, (size_t)r);
		CHECK(req.form == HTTP_TARGET_ORIGIN);
		CHECK(strcmp(req.host, "api.example.com") == 0 && req.port == 443);
		CHECK(req.path_len > 0 && req.path[0] == '/' &&
		      inside(req.path, req.path_len, buf, (size_t)r));
		CHECK(http_find_field(req.fields, req.n_fields, "Host") != NULL);
	}
}

static void fuzz_response(const char *buf, size_t len, const char *method)
{
	static struct http_response res, sub;
	struct cdn_err err = { 0 };
	int r = http_parse_response(buf, len, method, &res, &err);
	if (r < 0) {
		CHECK(is_hint(r) && err.msg[0] != '\0');
	} else if (r == 0) {
		CHECK(len < HTTP_MAX_HEAD);
	} else {
		size_t head = (size_t)r;
		CHECK(head <= len && head == res.head_len);
		check_head_bytes(buf, head);
		check_fields(res.fields, res.n_fields, buf, head);
		CHECK(res.status >= 100 && res.status <= 599);
		CHECK(res.version_minor == 0 || res.version_minor == 1);
		CHECK(inside(res.reason, res.reason_len, buf, head));
		if (strcmp(method, "HEAD") == 0 || res.status < 200 || res.status == 204 ||
		    res.status == 304)
			CHECK(res.body == HTTP_BODY_NONE);
		if (res.body == HTTP_BODY_CLOSE)
			CHECK(!res.keep_alive);
		if (res.body != HTTP_BODY_LENGTH)
			CHECK(res.content_length == 0);
		CHECK(http_parse_response(buf, head - 1, method, &sub, &err) == 0);
	}
	if (len > 0) {
		int p = http_parse_response(buf, len / 2, method, &sub, &err);
		if (p > 0)
			CHECK(r == p);
		if (p < 0)
			CHECK(r < 0);
	}
}

struct sink {
	char *buf;
	size_t n;
	size_t cap;
};

static void sink_data(void *ctx, const char *p, size_t n)
{
	struct sink *s = ctx;
	CHECK(n > 0 && n <= s->cap - s->n);
	memcpy(s->buf + s->n, p, n);
	s->n += n;
}

static void fuzz_chunked(const char *buf, size_t len)
{
	struct sink whole = { malloc(len + 1), 0, len };
	struct sink bytes = { malloc(len + 1), 0, len };
	CHECK(whole.buf && bytes.buf);
	struct http_chunked c;
	struct cdn_err err = { 0 };

	http_chunked_init(&c);
	long rw = http_chunked_feed(&c, buf, len, sink_data, &whole, &err);
	bool done_w = c.done;
	CHECK(rw == -1 || (rw >= 0 && (size_t)rw <= len));
	if (rw >= 0 && (size_t)rw < len)
		CHECK(done_w);
	if (rw == -1)
		CHECK(err.msg[0] != '\0' && !done_w);

	http_chunked_init(&c);
	long rb = 0;
	for (size_t i = 0; i < len; i++) {
		long one = http_chunked_feed(&c, buf + i, 1, sink_data, &bytes, &err);
		if (one < 0) {
			rb = -1;
			break;
		}
		CHECK(one <= 1);
		if (one == 0) {
			CHECK(c.done);
			break;
		}
		rb += one;
	}
	CHECK(rw == rb);
	CHECK(done_w == c.done);
	CHECK(whole.n == bytes.n && memcmp(whole.buf, bytes.buf, whole.n) == 0);
	CHECK(whole.n <= len);
	free(whole.buf);
	free(bytes.buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	fuzz_request(buf, size);
	fuzz_tunneled(buf, size);
	fuzz_response(buf, size, "GET");
	fuzz_response(buf, size, "HEAD");
	fuzz_chunked(buf, size);
	return 0;
}
