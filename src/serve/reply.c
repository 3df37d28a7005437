/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The API's replies: JSON bodies, the error shape ({"error": {"code",
 * "message"}}) and its statuses, the headers every answer carries, and
 * reading a request's JSON body.
 */
#define _GNU_SOURCE
#include "serve/internal.h"

#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/cleanup.h"

void api_time(int64_t ms, char *buf, size_t cap)
{
	if (ms <= 0)
		snprintf(buf, cap, "%s", "");
	else
		cdn_rfc3339(ms, CDN_TIME_S, buf, cap);
}

void api_headers(struct MHD_Response *r)
{
	MHD_add_response_header(r, "Cache-Control", "no-store");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "X-Frame-Options", "DENY");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
}

static enum MHD_Result api_send_buf(struct MHD_Connection *conn, unsigned status, const char *type,
				    const void *data, size_t len, const char *hname,
				    const char *hval)
{
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free((void *)data);
		return MHD_NO;
	}
	api_headers(r);
	MHD_add_response_header(r, "Content-Type", type);
	if (hname)
		MHD_add_response_header(r, hname, hval);
	enum MHD_Result ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

enum MHD_Result api_reply_buf(struct MHD_Connection *conn, unsigned status, const char *type,
			      char *data, size_t len)
{
	return api_send_buf(conn, status, type, data, len, NULL, NULL);
}

/* Steals j; adds one header when hname is set. */
static enum MHD_Result api_reply_with(struct MHD_Connection *conn, unsigned status, json_t *j,
				      const char *hname, const char *hval)
{
	char *text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (!text)
		return MHD_NO;
	size_t len = strlen(text);
	char *full = realloc(text, len + 2);
	if (!full) {
		free(text);
		return MHD_NO;
	}
	full[len] = '\n';
	full[len + 1] = '\0';
	return api_send_buf(conn, status, "application/json", full, len + 1, hname, hval);
}

/* Steals j. */
enum MHD_Result api_reply(struct MHD_Connection *conn, unsigned status, json_t *j)
{
	return api_reply_with(conn, status, j, NULL, NULL);
}

/* The error body, {"error": {"code": ..., "message": ...}}, with one more
 * header when hname is not NULL. */
static enum MHD_Result api_verror(struct MHD_Connection *conn, unsigned status, const char *code,
				  const char *hname, const char *hval, const char *fmt, va_list ap)
    __attribute__((format(printf, 6, 0)));

static enum MHD_Result api_verror(struct MHD_Connection *conn, unsigned status, const char *code,
				  const char *hname, const char *hval, const char *fmt, va_list ap)
{
	char msg[CDN_ERR_MSG_MAX];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	return api_reply_with(conn, status,
			      json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", msg),
			      hname, hval);
}

enum MHD_Result api_fail(struct MHD_Connection *conn, unsigned status, const char *code,
			 const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	enum MHD_Result ret = api_verror(conn, status, code, NULL, NULL, fmt, ap);
	va_end(ap);
	return ret;
}

enum MHD_Result api_fail_header(struct MHD_Connection *conn, unsigned status, const char *code,
				const char *hname, const char *hval, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	enum MHD_Result ret = api_verror(conn, status, code, hname, hval, fmt, ap);
	va_end(ap);
	return ret;
}

enum MHD_Result api_fail_allow(struct MHD_Connection *conn, const char *allow, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	enum MHD_Result ret = api_verror(conn, 405, "method_not_allowed", "Allow", allow, fmt, ap);
	va_end(ap);
	return ret;
}

/*
 * A library call's failure as an HTTP answer: the one place an error's
 * kind becomes a status. The kind is err's when err records this failure
 * (its code is the one returned); a function that returned without
 * recording it is judged by the errno it returned.
 */
enum MHD_Result api_fail_err(struct MHD_Connection *conn, int r, const struct cdn_err *err)
{
	int e = r < 0 ? -r : r;
	enum cdn_err_kind kind = err->code == e ? err->kind : cdn_err_kind_of(e);
	switch (kind) {
	case CDN_ERR_NOT_FOUND: return api_fail(conn, 404, "not_found", "%s", err->msg);
	case CDN_ERR_CONFLICT: return api_fail(conn, 409, "conflict", "%s", err->msg);
	case CDN_ERR_FORBIDDEN: return api_fail(conn, 403, "forbidden", "%s", err->msg);
	case CDN_ERR_INTERNAL: return api_fail(conn, 500, "internal", "%s", err->msg);
	case CDN_ERR_USER: return api_fail(conn, 400, "bad_request", "%s", err->msg);
	}
	return api_fail(conn, 500, "internal", "%s", err->msg);
}

/* A packed directory (bundle.h): tar, or tar.gz. */
bool api_bundle_type(const char *ct)
{
	static const char *const types[] = {"application/gzip", "application/x-gzip",
					    "application/x-tar"};
	if (!ct)
		return false;
	for (size_t i = 0; i < CDN_ARRAY_SIZE(types); i++) {
		size_t n = strlen(types[i]);
		if (strncasecmp(ct, types[i], n) == 0 && (ct[n] == '\0' || ct[n] == ';'))
			return true;
	}
	return false;
}

/* The body as a JSON object, or a reply saying why not. */
json_t *api_body_json(struct call *c, enum MHD_Result *ret)
{
	const char *ct = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, "Content-Type");
	if (ct && strncasecmp(ct, "application/json", 16) != 0) {
		*ret = api_fail(c->conn, 415, "unsupported_media_type",
				"the body must be application/json, not %.64s", ct);
		return NULL;
	}
	json_error_t je;
	json_t *j =
	    json_loadb(c->req->body ? c->req->body : "", c->req->len, JSON_REJECT_DUPLICATES, &je);
	if (!j) {
		*ret = api_fail(c->conn, 400, "bad_request",
				"the body is not valid JSON: line %d: %s", je.line, je.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		*ret = api_fail(c->conn, 400, "bad_request", "the body must be a JSON object");
		return NULL;
	}
	return j;
}

const char *api_jstr(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

#define TIME_PARAM_MAX 64

int api_time_param(struct call *c, const char *name, int64_t *ms, enum MHD_Result *ret)
{
	const char *v = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, name);
	*ms = 0;
	if (!v || !*v)
		return 0;
	const char *why = NULL;
	if (strlen(v) > TIME_PARAM_MAX || cdn_rfc3339_parse(v, ms, &why) < 0) {
		*ret = api_fail(c->conn, 400, "bad_request", "%s: %s", name,
				why ? why : "expected an RFC 3339 time such as 2024-05-01T02:58:36Z");
		return -1;
	}
	/* 0 is "no bound" to the store, and no run was created before 1970. */
	if (*ms <= 0) {
		*ret = api_fail(c->conn, 400, "bad_request", "%s: a time after 1970-01-01T00:00:00Z",
				name);
		return -1;
	}
	return 1;
}
