/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Strict HTTP/1.1 message parsing for the egress proxy (RFC 9110/9112).
 *
 * The proxy sits between an untrusted agent and untrusted servers, so both
 * directions are parsed strictly and within fixed bounds. Anything that two
 * HTTP implementations might read differently (the root of request
 * smuggling) is refused rather than interpreted:
 *
 *  - bare LF, NUL, other control characters, obs-fold (header
 *    continuation lines), whitespace before the colon;
 *  - Content-Length together with Transfer-Encoding, duplicate
 *    Content-Length, non-decimal lengths;
 *  - any Transfer-Encoding other than one header whose value is exactly
 *    "chunked" (case-insensitive, surrounding whitespace ignored);
 *  - heads over HTTP_MAX_HEAD bytes or HTTP_MAX_HEADERS fields.
 *
 * The parsers never allocate: results point into the caller's buffer.
 */
#ifndef CORDON_EGRESS_HTTP_H
#define CORDON_EGRESS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define HTTP_MAX_HEAD 16384 /* request or status line plus all header fields */
#define HTTP_MAX_HEADERS 100
#define HTTP_MAX_HOST 255
#define HTTP_MAX_METHOD 16
#define HTTP_MAX_CHUNK_EXT 256 /* bytes of chunk extensions per chunk line */
#define HTTP_MAX_TRAILERS 4096 /* bytes of trailer section */
#define HTTP_MAX_TARGET 8192   /* request-target bytes; longer is answered 414 */
/* Content-Length digits: 10^15 bytes is far above any body limit and far
 * below UINT64_MAX, so the value can never overflow. */
#define HTTP_MAX_CONTENT_LENGTH_DIGITS 15
/* chunk-size hex digits (leading zeros count): 16 fill a uint64_t exactly. */
#define HTTP_MAX_CHUNK_SIZE_DIGITS 16
#define HTTP_DEFAULT_PORT 80 /* for http:// targets and Host fields without a port */

/* Parse outcomes; negative values are errors the proxy answers with the
 * given status (the err message says what was wrong). */
enum http_status_hint {
	HTTP_ERR_BAD_REQUEST = -400,
	HTTP_ERR_URI_TOO_LONG = -414,
	HTTP_ERR_HEADERS_TOO_LARGE = -431,
	HTTP_ERR_NOT_IMPLEMENTED = -501, /* e.g. an unsupported Transfer-Encoding */
	HTTP_ERR_VERSION = -505,
};

struct http_field {
	const char *name; /* not NUL-terminated */
	size_t name_len;
	const char *value; /* OWS trimmed, not NUL-terminated */
	size_t value_len;
};

enum http_body_kind {
	HTTP_BODY_NONE,    /* no body */
	HTTP_BODY_LENGTH,  /* content_length bytes */
	HTTP_BODY_CHUNKED, /* chunked transfer coding */
	HTTP_BODY_CLOSE,   /* responses only: until the connection closes */
};

enum http_target_form {
	HTTP_TARGET_ABSOLUTE,  /* http://host[:port]/path?query */
	HTTP_TARGET_AUTHORITY, /* host:port, CONNECT only */
	HTTP_TARGET_ORIGIN,    /* /path?query, inside an inspected TLS tunnel only */
};

struct http_request {
	char method[HTTP_MAX_METHOD + 1];
	enum http_target_form form;
	char host[HTTP_MAX_HOST + 1]; /* as written: reg-name, IPv4 or IPv6 without brackets */
	bool host_is_ipv6;	      /* the target used [brackets] */
	uint16_t port;		      /* explicit or the scheme default (80) */
	/* origin-form for forwarding: "/p?q" (points into buf, or at a static
	 * "/" when the URI has no path); NULL with path_len 0 for CONNECT */
	const char *path;
	size_t path_len;
	int version_minor; /* HTTP/1.0 or HTTP/1.1 */
	struct http_field fields[HTTP_MAX_HEADERS];
	size_t n_fields;
	enum http_body_kind body;
	uint64_t content_length;
	bool keep_alive; /* after Connection and version rules */
	bool expect_continue;
	size_t head_len; /* bytes of buf the head took, through the blank line */
	/* http_parse_request_tunneled only: the tunnel's authority */
	const char *tunnel_host;
	uint16_t tunnel_port;
};

struct http_response {
	int status; /* 100..599 */
	int version_minor;
	const char *reason;
	size_t reason_len;
	struct http_field fields[HTTP_MAX_HEADERS];
	size_t n_fields;
	enum http_body_kind body;
	uint64_t content_length;
	bool keep_alive;
	size_t head_len;
};

/*
 * Parses a request head at the start of buf. Returns the head length (> 0)
 * when a whole, valid head is there; 0 when more bytes are needed; or a
 * negative enum http_status_hint with err saying why. Only absolute-form
 * "http://" targets and CONNECT's authority-form are accepted (this is a
 * forward proxy); the Host field must be present once and name the same
 * host and port as the target.
 *
 * Details of the contract:
 *  - 0 is returned only while no complete head is in buf and len <
 *    HTTP_MAX_HEAD; bytes that are already invalid are refused at once,
 *    even before the head is complete.
 *  - Everything refused is HTTP_ERR_BAD_REQUEST except an over-long target
 *    (HTTP_ERR_URI_TOO_LONG), too many fields or no head within
 *    HTTP_MAX_HEAD bytes (HTTP_ERR_HEADERS_TOO_LARGE) and an HTTP version
 *    other than 1.0/1.1 (HTTP_ERR_VERSION). Expect values other than
 *    100-continue are HTTP_ERR_BAD_REQUEST too (not 417).
 *  - For http:// a missing port is 80 on either side; for CONNECT the Host
 *    field must carry the same host:port as the target.
 *  - A CONNECT with Transfer-Encoding or a non-zero Content-Length is
 *    refused; an empty line before the request line is refused.
 *  - Content-Length: 0 gives HTTP_BODY_LENGTH with content_length 0.
 *  - expect_continue is only set for HTTP/1.1 (RFC 9110 10.1.1).
 *  - Error messages never quote the path, the query or field values other
 *    than Host, Content-Length, Transfer-Encoding, Connection and Expect.
 */
int http_parse_request(const char *buf, size_t len, struct http_request *req,
		       struct cdn_err *err);

/*
 * Parses a request that arrived inside a TLS tunnel the proxy terminated
 * (CONNECT host:port with inspection on). Such requests use origin-form
 * ("/path?query"); the destination is the tunnel's, and the Host field must
 * be present and name it (port optional when it is 443). host and port are
 * copied into req. Same return convention as http_parse_request.
 */
int http_parse_request_tunneled(const char *buf, size_t len, const char *host, uint16_t port,
				struct http_request *req, struct cdn_err *err);

/*
 * Parses a response head. `request_method` decides the body rules (HEAD and
 * CONNECT responses, 1xx, 204 and 304 have none). Same return convention;
 * the framing rules are the request's (Content-Length with
 * Transfer-Encoding, duplicates and non-"chunked" codings are
 * HTTP_ERR_BAD_REQUEST, which the proxy turns into 502). A status line
 * without the SP before an empty reason ("HTTP/1.1 204") is accepted.
 */
int http_parse_response(const char *buf, size_t len, const char *request_method,
			struct http_response *res, struct cdn_err *err);

/* Case-insensitive field lookup; NULL when absent. */
const struct http_field *http_find_field(const struct http_field *fields, size_t n,
					 const char *name);

/* True for the hop-by-hop fields a proxy must not forward (RFC 9110 7.6.1)
 * plus Proxy-* fields. */
bool http_is_hop_by_hop(const char *name, size_t len);

/*
 * Streaming chunked-body decoder. Feed it raw body bytes as they arrive;
 * decoded data is handed to `data`. It stops after the last chunk and its
 * trailer section.
 */
struct http_chunked {
	int state;
	uint64_t remaining; /* bytes left in the current chunk */
	unsigned digits;
	size_t ext_len;
	size_t trailer_len;
	size_t line_len;
	bool done;
	uint64_t offset; /* body bytes consumed so far, for error messages */
};

void http_chunked_init(struct http_chunked *c);

/*
 * Consumes up to len bytes. Returns the number consumed (less than len
 * only when the body ended: the rest belongs to the next message), or -1
 * on malformed input with err set. `data` may be NULL. Once finished
 * (done) it consumes nothing; once failed it returns -1 again. Data handed
 * to `data` before an error is part of the body up to the bad byte.
 * No whitespace is accepted in chunk lines, and every line ends in CRLF.
 */
long http_chunked_feed(struct http_chunked *c, const char *in, size_t len,
		       void (*data)(void *ctx, const char *p, size_t n), void *ctx,
		       struct cdn_err *err);

#endif
