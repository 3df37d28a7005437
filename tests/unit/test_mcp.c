/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The MCP protocol layer, driven the way the transport drives it: one POST
 * body and its headers per mcp_handle() call. Conformance for 2025-06-18,
 * 2025-11-25 and 2026-07-28 (handshake, negotiation, headers, ping, the
 * five tools and their errors, notifications), the phase tokens (single
 * use, expiry, phase, phase end), approvals that are decided later, and
 * every refusal of malformed input. Every response body and every audit
 * line is checked for tokens and session ids: none may appear.
 */
#define _GNU_SOURCE /* vasprintf */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "base/cleanup.h"
#include "mcp/mcp.h"

#define V0326 MCP_VERSION_2025_03_26
#define V0618 MCP_VERSION_2025_06_18
#define V1125 MCP_VERSION_2025_11_25
#define V0728 MCP_VERSION_2026_07_28

static const char *const all_versions[] = { V0326, V0618, V1125, V0728 };

/* The 2026-07-28 per-request fields, with a %s for the version. */
#define META_FMT                                                                                   \
	"\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"%s\","                           \
	"\"io.modelcontextprotocol/clientCapabilities\":{},"                                       \
	"\"io.modelcontextprotocol/clientInfo\":{\"name\":\"test\",\"version\":\"1\"}}"

#define MAX_AUDIT   64
#define MAX_SECRETS 128

struct fx {
	struct mcp_server *s;
	uint64_t now;
	/* the last response */
	struct mcp_response resp;
	json_t *j;
	int rc;
	struct mcp_pending *pending;
	/* audit */
	char audit_event[MAX_AUDIT][64];
	char audit_detail[MAX_AUDIT][256];
	size_t n_audit;
	/* every token and session id seen: none may leak */
	char secrets[MAX_SECRETS][MCP_SESSION_ID_LEN + 1];
	size_t n_secrets;
	/* what the hooks saw */
	enum mcp_phase phase;
	char step_name[2048];
	char step_detail[MCP_MAX_STEP_DETAIL + 1];
	bool step_has_detail;
	char artifact_name[256];
	uint8_t artifact[4096];
	size_t artifact_len;
	char action[512];
	char reason[8192];
	enum mcp_log_level level;
	char message[8192];
	int calls;
	/* how the hooks behave */
	const char *input;
	bool fail;
	const char *fail_msg;
	bool decide_inline;
	bool approve;
	struct mcp_pending *approvals[MCP_MAX_PENDING + 2];
	size_t n_approvals;
	int cancels;
	char cancel_why[128];
	/* completions of pending calls */
	struct mcp_response completed[MCP_MAX_PENDING + 2];
	size_t n_completed;
	/* connections that carry SSE streams: what each was sent, and
	 * whether its response was ended */
	struct conn {
		struct fx *f;
		char buf[16384];
		size_t len;
		int ends;
	} conns[MCP_MAX_PENDING + MCP_MAX_SESSIONS + 4];
};

/* ---------------------------------------------------------------------------
 * Hooks
 */

static void remember_secret(struct fx *f, const char *v)
{
	if (f->n_secrets < MAX_SECRETS)
		snprintf(f->secrets[f->n_secrets++], sizeof(f->secrets[0]), "%s", v);
}

static void check_no_secret(struct fx *f, const char *text)
{
	if (!text)
		return;
	for (size_t i = 0; i < f->n_secrets; i++)
		if (strstr(text, f->secrets[i]))
			fail_msg("a token or session id leaked into: %s", text);
	/* nor any part of one long enough to matter */
	for (size_t i = 0; i < f->n_secrets; i++) {
		const char *hex = strrchr(f->secrets[i], '_') + 1;
		char part[17];
		snprintf(part, sizeof(part), "%s", hex);
		if (strstr(text, part))
			fail_msg("part of a token or session id leaked into: %s", text);
	}
}

static int hook_fail(struct fx *f, struct cdn_err *err)
{
	return cdn_err_msg(err, EIO, "%s", f->fail_msg ? f->fail_msg : "disk full");
}

static int h_report_step(void *ctx, enum mcp_phase phase, const char *name, const char *detail_json,
			 struct cdn_err *err)
{
	struct fx *f = ctx;
	f->calls++;
	f->phase = phase;
	if (f->fail)
		return hook_fail(f, err);
	snprintf(f->step_name, sizeof(f->step_name), "%s", name);
	f->step_has_detail = detail_json != NULL;
	snprintf(f->step_detail, sizeof(f->step_detail), "%s", detail_json ? detail_json : "");
	return 0;
}

static int h_save_artifact(void *ctx, enum mcp_phase phase, const char *name, const uint8_t *data,
			   size_t len, struct cdn_err *err)
{
	struct fx *f = ctx;
	f->calls++;
	f->phase = phase;
	if (f->fail)
		return hook_fail(f, err);
	snprintf(f->artifact_name, sizeof(f->artifact_name), "%s", name);
	f->artifact_len = len;
	memcpy(f->artifact, data, len < sizeof(f->artifact) ? len : sizeof(f->artifact));
	return 0;
}

static int h_request_approval(void *ctx, enum mcp_phase phase, const char *action,
			      const char *reason, struct mcp_pending *p, struct cdn_err *err)
{
	struct fx *f = ctx;
	f->calls++;
	f->phase = phase;
	if (f->fail)
		return hook_fail(f, err);
	snprintf(f->action, sizeof(f->action), "%s", action);
	snprintf(f->reason, sizeof(f->reason), "%s", reason);
	if (f->decide_inline) {
		struct mcp_approval d = { .approved = f->approve };
		snprintf(d.id, sizeof(d.id), "ap-1");
		snprintf(d.note, sizeof(d.note), "%s", f->approve ? "" : "not now");
		mcp_approval_decide(p, &d);
		return 0;
	}
	if (f->n_approvals < CDN_ARRAY_SIZE(f->approvals))
		f->approvals[f->n_approvals++] = p;
	return 0;
}

static void h_approval_cancel(void *ctx, struct mcp_pending *p, const char *why)
{
	struct fx *f = ctx;
	f->cancels++;
	assert_non_null(why);
	snprintf(f->cancel_why, sizeof(f->cancel_why), "%s", why);
	for (size_t i = 0; i < f->n_approvals; i++)
		if (f->approvals[i] == p)
			f->approvals[i] = NULL;
}

static int h_get_input(void *ctx, enum mcp_phase phase, char **json, size_t *len,
		       struct cdn_err *err)
{
	struct fx *f = ctx;
	f->calls++;
	f->phase = phase;
	if (f->fail)
		return hook_fail(f, err);
	*json = strdup(f->input);
	*len = strlen(f->input);
	return 0;
}

static int h_log(void *ctx, enum mcp_phase phase, enum mcp_log_level level, const char *message,
		 struct cdn_err *err)
{
	struct fx *f = ctx;
	f->calls++;
	f->phase = phase;
	if (f->fail)
		return hook_fail(f, err);
	f->level = level;
	snprintf(f->message, sizeof(f->message), "%s", message);
	return 0;
}

static void h_audit(void *ctx, const char *event, const char *detail)
{
	struct fx *f = ctx;
	check_no_secret(f, detail);
	assert_non_null(strchr(event, '.'));
	assert_null(strchr(detail, '\n'));
	if (f->n_audit < MAX_AUDIT) {
		snprintf(f->audit_event[f->n_audit], sizeof(f->audit_event[0]), "%s", event);
		snprintf(f->audit_detail[f->n_audit], sizeof(f->audit_detail[0]), "%s", detail);
		f->n_audit++;
	}
}

static uint64_t h_now(void *ctx)
{
	return ((struct fx *)ctx)->now;
}

static void on_complete(void *ctx, struct mcp_response *resp)
{
	struct fx *f = ctx;
	check_no_secret(f, resp->body);
	assert_true(f->n_completed < CDN_ARRAY_SIZE(f->completed));
	f->completed[f->n_completed++] = *resp;
}

static const struct mcp_hooks hooks_template = {
	.report_step = h_report_step,
	.save_artifact = h_save_artifact,
	.request_approval = h_request_approval,
	.approval_cancel = h_approval_cancel,
	.get_input = h_get_input,
	.log = h_log,
	.on_audit = h_audit,
	.now_ms = h_now,
};

/* ---------------------------------------------------------------------------
 * Fixture and helpers
 */

static void new_server(struct fx *f, const struct mcp_config *cfg)
{
	struct mcp_hooks h = hooks_template;
	struct cdn_err err = { 0 };
	h.ctx = f;
	if (mcp_server_new(cfg, &h, &f->s, &err) < 0)
		fail_msg("mcp_server_new: %s", err.msg);
	if (mcp_phase_begin(f->s, MCP_PHASE_RUN, &err) < 0)
		fail_msg("mcp_phase_begin: %s", err.msg);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	f->now = 1000000;
	f->input = "{\"task\":\"summarise\",\"n\":3}";
	new_server(f, NULL);
	*state = f;
	return 0;
}

static void reset(struct fx *f)
{
	mcp_response_free(&f->resp);
	json_decref(f->j);
	f->j = NULL;
	f->pending = NULL;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	reset(f);
	mcp_server_free(f->s);
	for (size_t i = 0; i < f->n_completed; i++)
		mcp_response_free(&f->completed[i]);
	free(f);
	return 0;
}

struct hdr {
	const char *auth;
	const char *session;
	const char *version;
	const char *method;
	const char *name;
	const char *accept;
	int conn; /* 1..: a stream may go to f->conns[conn - 1]; 0: none */
};

static void sink_write(void *ctx, const char *data, size_t len)
{
	struct conn *c = ctx;
	assert_int_equal(c->ends, 0); /* nothing after the end */
	assert_true(c->len + len < sizeof(c->buf));
	memcpy(c->buf + c->len, data, len);
	c->len += len;
	c->buf[c->len] = '\0';
	check_no_secret(c->f, c->buf);
}

static void sink_end(void *ctx)
{
	struct conn *c = ctx;
	c->ends++;
	assert_int_equal(c->ends, 1);
}

static struct mcp_sink sink_of(struct fx *f, int conn)
{
	if (!conn)
		return (struct mcp_sink){ 0 };
	struct conn *c = &f->conns[conn - 1];
	c->f = f;
	return (struct mcp_sink){ .write = sink_write, .end = sink_end, .ctx = c };
}

/* A fresh connection: nothing received, not ended. */
static void conn_reset(struct fx *f, int conn)
{
	memset(&f->conns[conn - 1], 0, sizeof(f->conns[0]));
}

static const char *header(const struct mcp_response *r, const char *name)
{
	for (size_t i = 0; i < r->n_headers; i++)
		if (strcmp(r->headers[i].name, name) == 0)
			return r->headers[i].value;
	return NULL;
}

static void post_raw(struct fx *f, const struct hdr *h, const char *body, size_t len)
{
	static const struct hdr none = { 0 };
	if (!h)
		h = &none;
	reset(f);
	struct mcp_request req = {
		.body = body,
		.body_len = len,
		.authorization = h->auth,
		.session_id = h->session,
		.protocol_version = h->version,
		.method = h->method,
		.name = h->name,
		.accept = h->accept,
		.on_complete = on_complete,
		.complete_ctx = f,
		.sink = sink_of(f, h->conn),
	};
	f->rc = mcp_handle(f->s, &req, &f->resp, &f->pending);
	check_no_secret(f, f->resp.body);
	for (size_t i = 0; i < f->resp.n_headers; i++)
		if (strcmp(f->resp.headers[i].name, "Mcp-Session-Id") == 0)
			remember_secret(f, f->resp.headers[i].value);
	if (f->rc == MCP_PENDING) {
		assert_null(f->resp.body);
		return;
	}
	if (f->rc == MCP_STREAM) {
		assert_int_equal(f->resp.status, 200);
		assert_non_null(f->resp.stream);
		assert_string_equal(header(&f->resp, "Content-Type"), "text/event-stream");
		return;
	}
	if (f->resp.status == 202) {
		assert_null(f->resp.body);
		return;
	}
	assert_non_null(f->resp.body);
	assert_int_equal(strlen(f->resp.body), f->resp.body_len);
	json_error_t je;
	f->j = json_loads(f->resp.body, JSON_REJECT_DUPLICATES, &je);
	/* an array answers a batch (2025-03-26), each member a message */
	if (json_is_array(f->j)) {
		size_t i;
		json_t *m;
		json_array_foreach(f->j, i, m)
			assert_string_equal(json_string_value(json_object_get(m, "jsonrpc")), "2.0");
		return;
	}
	if (!json_is_object(f->j))
		fail_msg("response is not a JSON object: %s", f->resp.body);
	assert_string_equal(json_string_value(json_object_get(f->j, "jsonrpc")), "2.0");
}

static void post(struct fx *f, const struct hdr *h, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void post(struct fx *f, const struct hdr *h, const char *fmt, ...)
{
	char *body = NULL;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&body, fmt, ap) < 0)
		fail();
	va_end(ap);
	post_raw(f, h, body, strlen(body));
	free(body);
}


static json_t *error_of(struct fx *f, int status, int code)
{
	if (f->resp.status != status)
		fail_msg("status %d, expected %d: %s", f->resp.status, status,
			 f->resp.body ? f->resp.body : "");
	json_t *e = json_object_get(f->j, "error");
	if (!e)
		fail_msg("no error in %s", f->resp.body);
	if (json_integer_value(json_object_get(e, "code")) != code)
		fail_msg("code %lld, expected %d: %s",
			 (long long)json_integer_value(json_object_get(e, "code")), code,
			 f->resp.body);
	assert_true(json_is_string(json_object_get(e, "message")));
	assert_null(json_object_get(f->j, "result"));
	return e;
}

static void expect_error(struct fx *f, int status, int code)
{
	error_of(f, status, code);
}

static json_t *expect_result(struct fx *f)
{
	if (f->resp.status != 200 || !json_is_object(json_object_get(f->j, "result")))
		fail_msg("expected a result, got %d: %s", f->resp.status,
			 f->resp.body ? f->resp.body : "");
	assert_null(json_object_get(f->j, "error"));
	assert_string_equal(header(&f->resp, "Content-Type"), "application/json");
	return json_object_get(f->j, "result");
}

static const char *tool_text(json_t *res)
{
	json_t *c = json_array_get(json_object_get(res, "content"), 0);
	assert_string_equal(json_string_value(json_object_get(c, "type")), "text");
	return json_string_value(json_object_get(c, "text"));
}

static json_t *expect_tool(struct fx *f, bool is_error)
{
	json_t *res = expect_result(f);
	json_t *ie = json_object_get(res, "isError");
	if (!json_is_boolean(ie) || json_is_true(ie) != is_error)
		fail_msg("expected isError %d: %s", is_error, f->resp.body);
	assert_non_null(tool_text(res));
	return res;
}

/* An argument error, as the version reports it: -32602 in 2025-03-26 and
 * 2025-06-18, a tool result with isError from 2025-11-25 on. Returns the
 * message. */
static const char *expect_arg_error(struct fx *f, const char *version)
{
	if (strcmp(version, V0618) == 0 || strcmp(version, V0326) == 0) {
		json_t *e = error_of(f, 200, MCP_ERR_INVALID_PARAMS);
		return json_string_value(json_object_get(e, "message"));
	}
	return tool_text(expect_tool(f, true));
}

static bool audit_has(struct fx *f, const char *event, const char *part)
{
	for (size_t i = 0; i < f->n_audit; i++)
		if (strcmp(f->audit_event[i], event) == 0 && strstr(f->audit_detail[i], part))
			return true;
	return false;
}

static void issue(struct fx *f, enum mcp_phase phase, uint64_t ttl, char tok[MCP_TOKEN_LEN + 1])
{
	struct cdn_err err = { 0 };
	if (mcp_token_issue(f->s, phase, ttl, tok, &err) < 0)
		fail_msg("mcp_token_issue: %s", err.msg);
	assert_int_equal(strlen(tok), MCP_TOKEN_LEN);
	assert_memory_equal(tok, MCP_TOKEN_PREFIX, strlen(MCP_TOKEN_PREFIX));
	remember_secret(f, tok);
}

static void bearer(char out[MCP_TOKEN_LEN + 16], const char *tok)
{
	snprintf(out, MCP_TOKEN_LEN + 16, "Bearer %s", tok);
}

static void post_initialize(struct fx *f, const char *auth, const char *version)
{
	post(f, &(struct hdr){ .auth = auth },
	     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
	     "\"protocolVersion\":\"%s\",\"capabilities\":{},"
	     "\"clientInfo\":{\"name\":\"test\",\"version\":\"1\"}}}",
	     version);
}

static bool stateless_version(const char *v)
{
	return strcmp(v, V0728) == 0;
}

/* tools/list for version v; sid and auth may be NULL. */
static void post_tools_list(struct fx *f, const char *v, const char *sid, const char *auth)
{
	if (stateless_version(v))
		post(f,
		     &(struct hdr){
			 .auth = auth, .session = sid, .version = v, .method = "tools/list" },
		     "{\"jsonrpc\":\"2.0\",\"id\":\"l\",\"method\":\"tools/"
		     "list\",\"params\":{" META_FMT "}}",
		     v);
	else
		post(f, &(struct hdr){ .auth = auth, .session = sid, .version = v },
		     "{\"jsonrpc\":\"2.0\",\"id\":\"l\",\"method\":\"tools/list\"}");
}

/* Opens a session of version v in the current phase; sid gets its id. */
static void open_session(struct fx *f, const char *v, char sid[MCP_SESSION_ID_LEN + 1])
{
	char tok[MCP_TOKEN_LEN + 1], auth[MCP_TOKEN_LEN + 16];
	issue(f, MCP_PHASE_RUN, 60000, tok);
	bearer(auth, tok);
	if (stateless_version(v)) {
		post_tools_list(f, v, NULL, auth);
	} else {
		post_initialize(f, auth, v);
		json_t *res = expect_result(f);
		assert_string_equal(json_string_value(json_object_get(res, "protocolVersion")), v);
	}
	expect_result(f);
	const char *h = header(&f->resp, "Mcp-Session-Id");
	assert_non_null(h);
	assert_int_equal(strlen(h), MCP_SESSION_ID_LEN);
	snprintf(sid, MCP_SESSION_ID_LEN + 1, "%s", h);
	if (!stateless_version(v)) {
		post(f, &(struct hdr){ .session = sid, .version = v },
		     "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
		assert_int_equal(f->resp.status, 202);
	}
}

/* tools/call of tool with args (JSON text) in version v's shape. */
static void tool_call(struct fx *f, const char *v, const char *sid, const char *tool,
		      const char *args)
{
	if (stateless_version(v))
		post(f,
		     &(struct hdr){
			 .session = sid, .version = v, .method = "tools/call", .name = tool },
		     "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{"
		     "\"name\":\"%s\",\"arguments\":%s," META_FMT "}}",
		     tool, args, v);
	else
		post(f, &(struct hdr){ .session = sid, .version = v },
		     "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{"
		     "\"name\":\"%s\",\"arguments\":%s}}",
		     tool, args);
}

/* ---------------------------------------------------------------------------
 * Handshake era
 */

static void test_handshake(void **state)
{
	struct fx *f = *state;
	for (size_t i = 0; i < 3; i++) { /* the handshake versions */
		const char *v = all_versions[i];
		char tok[MCP_TOKEN_LEN + 1], auth[MCP_TOKEN_LEN + 16];
		issue(f, MCP_PHASE_RUN, 60000, tok);
		bearer(auth, tok);
		post_initialize(f, auth, v);
		json_t *res = expect_result(f);
		assert_int_equal(json_integer_value(json_object_get(f->j, "id")), 1);
		assert_string_equal(json_string_value(json_object_get(res, "protocolVersion")), v);
		assert_true(json_is_false(
		    json_object_get(json_object_get(json_object_get(res, "capabilities"), "tools"),
				    "listChanged")));
		json_t *info = json_object_get(res, "serverInfo");
		assert_string_equal(json_string_value(json_object_get(info, "name")), "cordon");
		assert_true(json_is_string(json_object_get(info, "version")));
		assert_true(json_is_string(json_object_get(res, "instructions")));
		/* handshake-era results carry no 2026-07-28 fields */
		assert_null(json_object_get(res, "resultType"));
		assert_null(json_object_get(res, "_meta"));
		const char *sid = header(&f->resp, "Mcp-Session-Id");
		assert_non_null(sid);
		assert_int_equal(strlen(sid), MCP_SESSION_ID_LEN);
		assert_memory_equal(sid, MCP_SESSION_PREFIX, strlen(MCP_SESSION_PREFIX));
		char s[MCP_SESSION_ID_LEN + 1];
		snprintf(s, sizeof(s), "%s", sid);
		assert_true(audit_has(f, "mcp.session_opened", v));

		post(f, &(struct hdr){ .session = s, .version = v },
		     "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
		assert_int_equal(f->resp.status, 202);
		assert_int_equal(f->resp.n_headers, 0);

		/* ping, with and without the version header */
		post(f, &(struct hdr){ .session = s, .version = v },
		     "{\"jsonrpc\":\"2.0\",\"id\":\"p\",\"method\":\"ping\"}");
		assert_int_equal(json_object_size(expect_result(f)), 0);
		assert_string_equal(json_string_value(json_object_get(f->j, "id")), "p");
		post(f, &(struct hdr){ .session = s },
		     "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\",\"params\":{}}");
		expect_result(f);
		/* no Mcp-Session-Id is minted after the first answer */
		assert_null(header(&f->resp, "Mcp-Session-Id"));
	}
}

static void test_version_negotiation(void **state)
{
	struct fx *f = *state;
	static const struct {
		const char *asked, *got;
	} cases[] = {
		{ V0618, V0618 },
		{ V1125, V1125 },
		{ "2024-11-05", V1125 },
		{ V0326, V0326 },
		{ "2099-01-01", V1125 },
		{ "not-a-version", V1125 },
		/* 2026-07-28 has no handshake: initialize gets the latest that has one */
		{ V0728, V1125 },
	};
	for (size_t i = 0; i < CDN_ARRAY_SIZE(cases); i++) {
		char tok[MCP_TOKEN_LEN + 1], auth[MCP_TOKEN_LEN + 16];
		issue(f, MCP_PHASE_RUN, 60000, tok);
		bearer(auth, tok);
		post_initialize(f, auth, cases[i].asked);
		json_t *res = expect_result(f);
		assert_string_equal(json_string_value(json_object_get(res, "protocolVersion")),
				    cases[i].got);
		/* the session then speaks the negotiated version */
		char sid[MCP_SESSION_ID_LEN + 1];
		snprintf(sid, sizeof(sid), "%s", header(&f->resp, "Mcp-Session-Id"));
		post(f, &(struct hdr){ .session = sid, .version = cases[i].got },
		     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}");
		expect_result(f);
	}
}

static void test_protocol_version_header(void **state)
{
	struct fx *f = *state;
	static const char *const bad[] = { "2099-01-01",  "2000-01-01",
					   "2024-11-05",  "invalid-protocol-version",
					   "2025-06-18 ", "2025-06-18\r\nX: y" };
	char sid[MCP_SESSION_ID_LEN + 1];
	open_session(f, V1125, sid);
	for (size_t i = 0; i < CDN_ARRAY_SIZE(bad); i++) {
		/* before initialize (no session) and after */
		for (int with_session = 0; with_session < 2; with_session++) {
			post(f,
			     &(struct hdr){ .session = with_session ? sid : NULL,
					    .version = bad[i] },
			     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
			json_t *e = error_of(f, 400, MCP_ERR_UNSUPPORTED_VERSION);
			json_t *data = json_object_get(e, "data");
			assert_int_equal(json_array_size(json_object_get(data, "supported")), 4);
			assert_true(json_is_string(json_object_get(data, "requested")));
		}
	}
	/* The data names what was asked, when it is printable. */
	post(f, &(struct hdr){ .session = sid, .version = "1900-01-01" },
	     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}");
	json_t *data = json_object_get(error_of(f, 400, MCP_ERR_UNSUPPORTED_VERSION), "data");
	assert_string_equal(json_string_value(json_object_get(data, "requested")), "1900-01-01");
	/* A served version that is not the session's. */
	post(f, &(struct hdr){ .session = sid, .version = V0618 },
	     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}");
	expect_error(f, 400, MCP_ERR_INVALID_REQUEST);
	/* The header is optional in a session: the negotiated version holds. */
	post(f, &(struct hdr){ .session = sid },
	     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}");
	expect_result(f);
	/* initialize with an unsupported header is refused too, and the token
	 * it carried stays usable */
	char tok[MCP_TOKEN_LEN + 1], auth[MCP_TOKEN_LEN + 16];
	issue(f, MCP_PHASE_RUN, 60000, tok);
	bearer(auth, tok);
	post(f, &(struct hdr){ .auth = auth, .version = "2099-01-01" },
	     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
	     "\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},"
	     "\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}");
	expect_error(f, 400, MCP_ERR_UNSUPPORTED_VERSION);
	post_initialize(f, auth, V1125);
	expect_result(f);
}

static void test_request_before_initialize(void **state)
{
	struct fx *f = *state;
	char tok[MCP_TOKEN_LEN + 1], auth[MCP_TOKEN_LEN + 16];
	issue(f, MCP_PHASE_RUN, 60000, tok);
	bearer(auth, tok);
	static const char *const bodies[] = {
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}",
		("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
		 "\"log\",\"arguments\":{\"level\":\"info\",\"message\":\"x\"}}}"),
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"no/such\"}",
	};
	for (size_t i = 0; i < CDN_ARRAY_SIZE(bodies); i++) {
		/* a token does not stand in for initialize */
		post(f, &(struct hdr){ .auth = auth, .version = V1125 }, "%s", bodies[i]);
		expect_error(f, 400, MCP_ERR_SESSION_REQUIRED);
		post(f, NULL, "%s", bodies[i]);
		expect_error(f, 400, MCP_ERR_SESSION_REQUIRED);
	}
	assert_int_equal(f->calls, 0);
	/* the token was not spent by any of it */
	post_initialize(f, auth, V1125);
	expect_result(f);
}

static void test_session_required(void **state)
{
	struct fx *f = *state;
	char sid[MCP_SESSION_ID_LEN + 1];
	open_session(f, V0618, sid);
	post(f, &(struct hdr){ .version = V0618 },
	     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
	expect_error(f, 400, MCP_ERR_SESSION_REQUIRED);
	/* unknown, malformed and altered session ids: 404, audited */
	char other[MCP_SESSION_ID_LEN + 1];
	snprintf(other, sizeof(other), "%s", sid);
	other[MCP_SESSION_ID_LEN - 1] = other[MCP_SESSION_ID_LEN - 1] == 'a' ? 'b' : 'a';
	static const char *const bogus[] = {
		"x", "", MCP_SESSION_PREFIX "00",
		"cdn_mcps_ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ"
	};
	for (size_t i = 0; i < CDN_ARRAY_SIZE(bogus); i++) {
		post(f, &(struct hdr){ .session = bogus[i] },
		     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
		expect_error(f, 404, MCP_ERR_SESSION_UNKNOWN);
	}
	post(f, &(struct hdr){ .session = other },
	     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
	expect_error(f, 404, MCP_ERR_SESSION_UNKNOWN);
	assert_true(audit_has(f, "mcp.session_refused", "unknown"));
	/* initialize inside a session is refused */
	post(f, &(struct hdr){ .session = sid },
	     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
	     "\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},"
	     "\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}");
	expect_error(f, 400, MCP_ERR_INVALID_REQUEST);
	/* the real one still works */
	post(f, &(struct hdr){ .session = sid },
	     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}");
	expect_result(f);
	/* an unknown method in a session: 200 with -32601 (no privileged verbs) */
	static const char *const nope[] = {
		"secrets/get",	    "grant",	      "register",
		"approve",	    "keys/create",    "policy/set",
		"logging/setLevel", "resources/list", "server/discover2"
	};
	for (size_t i = 0; i < CDN_ARRAY_SIZE(nope); i++) {
		post(f, &(struct hdr){ .session = sid },
		     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"%s\"}", nope[i]);
		expect_error(f, 200, MCP_ERR_METHOD_NOT_FOUND);
	}
}

/* ---------------------------------------------------------------------------
 * Tokens and phases
 */

static void test_token_single_use(void **state)
{
	struct fx *f = *state;
	char tok[MCP_TOKEN_LEN + 1], auth[MCP_TOKEN_LEN + 16];
	issue(f, MCP_PHASE_RUN, 60000, tok);
	bearer(auth, tok);
	post_initialize(f, auth, V1125);
	expect_result(f);
	post_initialize(f, auth, V1125);
	expect_error(f, 401, MCP_ERR_UNAUTHORIZED);
	assert_non_null(strstr(header(&f->resp, "WWW-Authenticate"), "Bearer"));
	assert_null(header(&f->resp, "Mcp-Session-Id"));
	assert_true(audit_has(f, "mcp.token_refused", "already used"));
	/* and in 2026-07-28 shape too */
	post_tools_list(f, V0728, NULL, auth);
	expect_error(f, 401, MCP_ERR_UNAUTHORIZED);
	/* the scheme is case-insensitive; the token is not */
	char tok2[MCP_TOKEN_LEN + 1], auth2[MCP_TOKEN_LEN + 16];
	issue(f, MCP_PHASE_RUN, 60000, tok2);
	snprintf(auth2, sizeof(auth2), "bearer   %s", tok2);
	post_initialize(f, auth2, V1125);
	expect_result(f);
	char tok3[MCP_TOKEN_LEN + 1], auth3[MCP_TOKEN_LEN + 16];
	issue(f, MCP_PHASE_RUN, 60000, tok3);
	for (char *c = tok3; *c; c++)
		if (*c >= 'a' && *c <= 'f')
			*c = (char)(*c - 'a' + 'A');
	bearer(auth3, tok3);
	post_initialize(f, auth3, V1125);
	expect_error(f, 401, MCP_ERR_UNAUTHORIZED);
}

static void test_token_expiry(void **state)
{
	struct fx *f = *state;
	char tok[MCP_TOKEN_LEN + 1], auth[MCP_TOKEN_LEN + 16];
	issue(f, MCP_PHASE_RUN, 5000, tok);
	bearer(auth, tok);
	f->now += 5000;
	post_initialize(f, auth, V1125);
	expect_error(f, 401, MCP_ERR_UNAUTHORIZED);
	assert_true(audit_has(f, "mcp.token_refused", "expired"));
	/* one millisecond before is fine */
	issue(f, MCP_PHASE_RUN, 5000, tok);
	bearer(auth, tok);
	f->now += 4999;
	post_initialize(f, auth, V0618);
	expect_result(f);
	/* a session outlives its token's expiry: it lasts the phase */
	char sid[MCP_SESSION_ID_LEN + 1];
	snprintf(sid, sizeof(sid), "%s", header(&f->resp, "Mcp-Session-Id"));
	f->now += 3600 * 1000;
	post(f, &(struct hdr){ .session = sid },
	     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}");
	expect_result(f);
}

static void test_token_phase(void **state)
{
	struct fx *f = *state;
	struct cdn_err err = { 0 };
	char setup_tok[MCP_TOKEN_LEN + 1], up_tok[MCP_TOKEN_LEN + 1];
	char auth[MCP_TOKEN_LEN + 16];

	/* a token for a later phase: refused now, not spent */
	issue(f, MCP_PHASE_UPLOAD, 600000, up_tok);
	bearer(auth, up_tok);
	post_initialize(f, auth, V1125);
	expect_error(f, 401, MCP_ERR_UNAUTHORIZED);
	assert_true(
	    audit_has(f, "mcp.token_refused", "is for phase upload; the current phase is run"));

	/* a run session, then the run ends */
	char sid[MCP_SESSION_ID_LEN + 1], sid2[MCP_SESSION_ID_LEN + 1];
	open_session(f, V1125, sid);
	open_session(f, V0728, sid2);
	char spare[MCP_TOKEN_LEN + 1], spare_auth[MCP_TOKEN_LEN + 16];
	issue(f, MCP_PHASE_RUN, 600000, spare);
	bearer(spare_auth, spare);
	assert_int_equal(mcp_phase_begin(f->s, MCP_PHASE_UPLOAD, &err), 0);
	assert_true(audit_has(f, "mcp.phase_ended", "phase run: 2 sessions closed, 1 unused"));
	/* its sessions are gone, its tokens revoked */
	post(f, &(struct hdr){ .session = sid },
	     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}");
	expect_error(f, 404, MCP_ERR_SESSION_UNKNOWN);
	post_tools_list(f, V0728, sid2, NULL);
	expect_error(f, 404, MCP_ERR_SESSION_UNKNOWN);
	post_initialize(f, spare_auth, V1125);
	expect_error(f, 401, MCP_ERR_UNAUTHORIZED);
	assert_true(audit_has(f, "mcp.token_refused", "belongs to phase run, which has ended"));
	/* the upload token works now */
	post_initialize(f, auth, V1125);
	expect_result(f);
	char usid[MCP_SESSION_ID_LEN + 1];
	snprintf(usid, sizeof(usid), "%s", header(&f->resp, "Mcp-Session-Id"));
	tool_call(f, V1125, usid, "log", "{\"level\":\"info\",\"message\":\"up\"}");
	expect_tool(f, false);
	assert_int_equal(f->phase, MCP_PHASE_UPLOAD);

	/* an ended phase cannot come back, nor get tokens */
	assert_int_equal(mcp_phase_begin(f->s, MCP_PHASE_RUN, &err), -ESTALE);
	assert_int_equal(mcp_token_issue(f->s, MCP_PHASE_RUN, 1000, setup_tok, &err), -ESTALE);
	assert_int_equal(mcp_token_issue(f->s, MCP_PHASE_SETUP, 1000, setup_tok, &err), 0);
	remember_secret(f, setup_tok);
	/* a token of a phase never begun, presented during another */
	bearer(auth, setup_tok);
	post_initialize(f, auth, V1125);
	expect_error(f, 401, MCP_ERR_UNAUTHORIZED);
	/* no phase at all */
	mcp_phase_end(f->s, MCP_PHASE_UPLOAD);
	mcp_phase_end(f->s, MCP_PHASE_UPLOAD); /* idempotent */
	post(f, &(struct hdr){ .session = usid },
	     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}");
	expect_error(f, 404, MCP_ERR_SESSION_UNKNOWN);
	post_initialize(f, auth, V1125);
	expect_error(f, 401, MCP_ERR_UNAUTHORIZED);
	assert_true(audit_has(f, "mcp.token_refused", "the current phase is none"));
	/* the setup phase can still begin (never ended), and its token works */
	assert_int_equal(mcp_phase_begin(f->s, MCP_PHASE_SETUP, &err), 0);
	post_initialize(f, auth, V1125);
	expect_result(f);
}

static void test_token_refusals(void **state)
{
	struct fx *f = *state;
	char tok[MCP_TOKEN_LEN + 1], auth[MCP_TOKEN_LEN + 32];
	issue(f, MCP_PHASE_RUN, 60000, tok);
	const char *bad[8];
	char b1[MCP_TOKEN_LEN + 32], b2[MCP_TOKEN_LEN + 32], b3[MCP_TOKEN_LEN + 32],
	    b4[MCP_TOKEN_LEN + 32];
	snprintf(b1, sizeof(b1), "Basic %s", tok);
	snprintf(b2, sizeof(b2), "Bearer %s ", tok); /* trailing space */
	snprintf(b3, sizeof(b3), "Bearer %.*s", (int)MCP_TOKEN_LEN - 1, tok);
	snprintf(b4, sizeof(b4), "Bearer%s", tok);
	bad[0] = NULL;
	bad[1] = b1;
	bad[2] = b2;
	bad[3] = b3;
	bad[4] = b4;
	bad[5] = "Bearer cdn_mcp_0000000000000000000000000000000000000000000000000000000000000000";
	bad[6] = "Bearer ";
	bad[7] = "";
	static const char *const reasons[] = { "no bearer token",    "not a bearer token",
					       "malformed token",    "malformed token",
					       "not a bearer token", "unknown token",
					       "malformed token",    "not a bearer token" };
	for (size_t i = 0; i < CDN_ARRAY_SIZE(bad); i++) {
		f->n_audit = 0;
		post_initialize(f, bad[i], V1125);
		expect_error(f, 401, MCP_ERR_UNAUTHORIZED);
		if (!audit_has(f, "mcp.token_refused", reasons[i]))
			fail_msg("case %zu: no audit with \"%s\"", i, reasons[i]);
	}
	/* none of that spent the real one */
	bearer(auth, tok);
	post_initialize(f, auth, V1125);
	expect_result(f);
	/* a malformed initialize does not spend a token either */
	issue(f, MCP_PHASE_RUN, 60000, tok);
	bearer(auth, tok);
	static const char *const malformed[] = {
		"{}",
		"{\"protocolVersion\":1,\"capabilities\":{},\"clientInfo\":{\"name\":\"t\","
		"\"version\":\"1\"}}",
		"{\"protocolVersion\":\"2025-11-25\",\"capabilities\":[],\"clientInfo\":{\"name\":"
		"\"t\",\"version\":\"1\"}}",
		"{\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},\"clientInfo\":{\"name\":"
		"\"t\"}}",
	};
	for (size_t i = 0; i < CDN_ARRAY_SIZE(malformed); i++) {
		post(f, &(struct hdr){ .auth = auth },
		     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":%s}",
		     malformed[i]);
		expect_error(f, 200, MCP_ERR_INVALID_PARAMS);
	}
	post(f, &(struct hdr){ .auth = auth },
	     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\"}");
	expect_error(f, 200, MCP_ERR_INVALID_PARAMS);
	post_initialize(f, auth, V1125);
	expect_result(f);
}

static void test_token_api(void **state)
{
	struct fx *f = *state;
	struct cdn_err err = { 0 };
	char tok[MCP_TOKEN_LEN + 1];
	assert_int_equal(mcp_token_issue(f->s, MCP_PHASE_RUN, 0, tok, &err), -EINVAL);
	assert_int_equal(mcp_token_issue(f->s, MCP_PHASE_RUN, MCP_MAX_TTL_MS + 1, tok, &err),
			 -EINVAL);
	assert_int_equal(mcp_token_issue(f->s, MCP_PHASE_COUNT, 1000, tok, &err), -EINVAL);
	assert_int_equal(mcp_phase_begin(f->s, MCP_PHASE_COUNT, &err), -EINVAL);
	mcp_phase_end(f->s, MCP_PHASE_COUNT); /* ignored */
	assert_string_equal(mcp_phase_name(MCP_PHASE_COUNT), "?");
	assert_string_equal(mcp_log_level_name((enum mcp_log_level)99), "?");
	assert_string_equal(mcp_log_level_name(MCP_LOG_EMERGENCY), "emergency");
	/* two tokens are never the same */
	char a[MCP_TOKEN_LEN + 1], b[MCP_TOKEN_LEN + 1];
	issue(f, MCP_PHASE_RUN, 1000, a);
	issue(f, MCP_PHASE_RUN, 1000, b);
	assert_string_not_equal(a, b);
	/* bounded: MCP_MAX_TOKENS held */
	for (int i = 2; i < MCP_MAX_TOKENS; i++)
		assert_int_equal(mcp_token_issue(f->s, MCP_PHASE_UPLOAD, 1000, tok, &err), 0);
	assert_int_equal(mcp_token_issue(f->s, MCP_PHASE_UPLOAD, 1000, tok, &err), -ENOSPC);
	/* revoked ones make room */
	assert_int_equal(mcp_phase_begin(f->s, MCP_PHASE_UPLOAD, &err), 0);
	assert_int_equal(mcp_token_issue(f->s, MCP_PHASE_UPLOAD, 1000, tok, &err), 0);
	assert_int_equal(mcp_token_issue(f->s, MCP_PHASE_UPLOAD, 1000, tok, &err), 0);
	assert_int_equal(mcp_token_issue(f->s, MCP_PHASE_UPLOAD, 1000, tok, &err), -ENOSPC);
}

static void test_server_api(void **state)
{
	(void)state;
	struct fx f = { 0 };
	struct mcp_server *s = NULL;
	struct cdn_err err = { 0 };
	struct mcp_hooks h = hooks_template;
	h.ctx = &f;
	static const size_t offsets[] = {
		offsetof(struct mcp_hooks, report_step),
		offsetof(struct mcp_hooks, save_artifact),
		offsetof(struct mcp_hooks, request_approval),
		offsetof(struct mcp_hooks, approval_cancel),
		offsetof(struct mcp_hooks, get_input),
		offsetof(struct mcp_hooks, log),
		offsetof(struct mcp_hooks, on_audit),
	};
	for (size_t i = 0; i < CDN_ARRAY_SIZE(offsets); i++) {
		struct mcp_hooks m = h;
		memset((char *)&m + offsets[i], 0, sizeof(void (*)(void)));
		assert_int_equal(mcp_server_new(NULL, &m, &s, &err), -EINVAL);
	}
	assert_int_equal(mcp_server_new(NULL, NULL, &s, &err), -EINVAL);
	struct mcp_config big = { .max_body = MCP_MAX_BODY + 1 };
	assert_int_equal(mcp_server_new(&big, &h, &s, &err), -EINVAL);
	struct mcp_config bad_version = { .server_version = "\xff" };
	assert_int_equal(mcp_server_new(&bad_version, &h, &s, &err), -EINVAL);
	/* now_ms is optional */
	h.now_ms = NULL;
	assert_int_equal(mcp_server_new(NULL, &h, &s, &err), 0);
	char tok[MCP_TOKEN_LEN + 1];
	assert_int_equal(mcp_token_issue(s, MCP_PHASE_SETUP, 1000, tok, &err), 0);
	mcp_server_free(s);
	mcp_server_free(NULL);
	mcp_response_free(NULL);
}

static void test_session_limit(void **state)
{
	struct fx *f = *state;
	char sid[MCP_SESSION_ID_LEN + 1];
	for (int i = 0; i < MCP_MAX_SESSIONS; i++)
		open_session(f, i % 2 ? V1125 : V0728, sid);
	char tok[MCP_TOKEN_LEN + 1], auth[MCP_TOKEN_LEN + 16];
	issue(f, MCP_PHASE_RUN, 60000, tok);
	bearer(auth, tok);
	post_initialize(f, auth, V1125);
	expect_error(f, 503, MCP_ERR_INTERNAL);
	post_tools_list(f, V0728, NULL, auth);
	expect_error(f, 503, MCP_ERR_INTERNAL);
	/* the token was not spent: the phase ends with it unused */
	struct cdn_err err = { 0 };
	assert_int_equal(mcp_phase_begin(f->s, MCP_PHASE_UPLOAD, &err), 0);
	assert_true(audit_has(f, "mcp.phase_ended", "16 sessions closed, 1 unused tokens revoked"));
	issue(f, MCP_PHASE_UPLOAD, 60000, tok);
	bearer(auth, tok);
	post_initialize(f, auth, V1125);
	expect_result(f);
}

/* ---------------------------------------------------------------------------
 * 2025-03-26: the same Streamable HTTP, but with JSON-RPC batches and no
 * titles
 */

static void test_version_2025_03_26(void **state)
{
	struct fx *f = *state;
	char tok[MCP_TOKEN_LEN + 1], auth[MCP_TOKEN_LEN + 16], sid[MCP_SESSION_ID_LEN + 1];
	issue(f, MCP_PHASE_RUN, 60000, tok);
	bearer(auth, tok);
	post_initialize(f, auth, V0326);
	json_t *res = expect_result(f);
	assert_string_equal(json_string_value(json_object_get(res, "protocolVersion")), V0326);
	/* its Implementation has name and version only */
	json_t *si = json_object_get(res, "serverInfo");
	assert_null(json_object_get(si, "title"));
	assert_string_equal(json_string_value(json_object_get(si, "name")), "cordon");
	snprintf(sid, sizeof(sid), "%s", header(&f->resp, "Mcp-Session-Id"));
	/* its clients send no MCP-Protocol-Version header; when one is sent,
	 * it is the session's */
	post(f, &(struct hdr){ .session = sid }, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}");
	expect_result(f);
	post(f, &(struct hdr){ .session = sid, .version = V0326 },
	     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}");
	expect_result(f);

	/* A batch: every request answered, in order, notifications not. */
	f->calls = 0;
	post(f, &(struct hdr){ .session = sid },
	     "[{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"},"
	     "{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"ping\"},"
	     "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"},"
	     "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":"
	     "\"report_step\",\"arguments\":{\"name\":\"batched\"}}},"
	     "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\",\"params\":{\"name\":"
	     "\"log\",\"arguments\":{\"level\":\"loud\",\"message\":\"m\"}}},"
	     "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"initialize\",\"params\":{"
	     "\"protocolVersion\":\"2025-03-26\",\"capabilities\":{},"
	     "\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}},"
	     "[{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"ping\"}],"
	     "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"nope\"}]");
	assert_int_equal(f->resp.status, 200);
	assert_string_equal(header(&f->resp, "Content-Type"), "application/json");
	assert_true(json_is_array(f->j));
	assert_int_equal(json_array_size(f->j), 7);
	json_t *a = json_array_get(f->j, 0);
	assert_string_equal(json_string_value(json_object_get(a, "id")), "a");
	assert_non_null(json_object_get(a, "result"));
	a = json_array_get(f->j, 1);
	assert_int_equal(json_array_size(json_object_get(json_object_get(a, "result"), "tools")), 5);
	/* still 2025-03-26's shape inside a batch */
	assert_null(json_object_get(
	    json_array_get(json_object_get(json_object_get(a, "result"), "tools"), 0), "title"));
	a = json_array_get(f->j, 2);
	assert_true(json_is_false(json_object_get(json_object_get(a, "result"), "isError")));
	assert_string_equal(f->step_name, "batched");
	/* an argument error is -32602 in 2025-03-26, as in 2025-06-18 */
	a = json_array_get(f->j, 3);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(a, "error"), "code")),
			 MCP_ERR_INVALID_PARAMS);
	/* initialize must not be part of a batch; nor may a batch nest */
	a = json_array_get(f->j, 4);
	assert_int_equal(json_integer_value(json_object_get(a, "id")), 5);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(a, "error"), "code")),
			 MCP_ERR_INVALID_REQUEST);
	a = json_array_get(f->j, 5);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(a, "error"), "code")),
			 MCP_ERR_INVALID_REQUEST);
	a = json_array_get(f->j, 6);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(a, "error"), "code")),
			 MCP_ERR_METHOD_NOT_FOUND);
	assert_int_equal(f->calls, 1); /* report_step only */
	assert_true(audit_has(f, "mcp.session_opened", V0326));

	/* Only notifications and responses: 202 */
	post(f, &(struct hdr){ .session = sid },
	     "[{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"},"
	     "{\"jsonrpc\":\"2.0\",\"id\":9,\"result\":{}}]");
	assert_int_equal(f->resp.status, 202);
	assert_null(f->resp.body);

	/* request_approval cannot wait inside a batch: a tool error, and no
	 * human is asked */
	f->calls = 0;
	f->n_approvals = 0;
	post(f, &(struct hdr){ .session = sid },
	     "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
	     "\"request_approval\",\"arguments\":{\"action\":\"a\",\"reason\":\"r\"}}}]");
	assert_int_equal(f->rc, 0);
	a = json_object_get(json_array_get(f->j, 0), "result");
	assert_true(json_is_true(json_object_get(a, "isError")));
	assert_non_null(strstr(tool_text(a), "batch"));
	assert_int_equal(f->calls, 0);
	assert_int_equal(f->n_approvals, 0);

	/* bounds */
	post(f, &(struct hdr){ .session = sid }, "[]");
	expect_error(f, 400, MCP_ERR_INVALID_REQUEST);
	char big[64 * (MCP_MAX_BATCH + 1) + 2] = "[";
	for (int i = 0; i <= MCP_MAX_BATCH; i++)
		strcat(big, i ? ",{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}"
			      : "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}");
	strcat(big, "]");
	post(f, &(struct hdr){ .session = sid }, "%s", big);
	expect_error(f, 400, MCP_ERR_INVALID_REQUEST);

	/* Batches need a 2025-03-26 session: none, another version's, the
	 * header of a later version, an unknown session. */
	static const char batch[] = "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]";
	post(f, NULL, "%s", batch);
	expect_error(f, 400, MCP_ERR_INVALID_REQUEST);
	post(f, &(struct hdr){ .auth = auth }, "%s", batch);
	expect_error(f, 400, MCP_ERR_INVALID_REQUEST);
	post(f, &(struct hdr){ .session = sid, .version = V0618 }, "%s", batch);
	expect_error(f, 400, MCP_ERR_INVALID_REQUEST);
	post(f, &(struct hdr){ .session = sid, .version = "2024-11-05" }, "%s", batch);
	expect_error(f, 400, MCP_ERR_UNSUPPORTED_VERSION);
	post(f, &(struct hdr){ .session = "cdn_mcps_nope" }, "%s", batch);
	expect_error(f, 404, MCP_ERR_SESSION_UNKNOWN);
	char sid2[MCP_SESSION_ID_LEN + 1];
	open_session(f, V0618, sid2);
	post(f, &(struct hdr){ .session = sid2 }, "%s", batch);
	expect_error(f, 400, MCP_ERR_INVALID_REQUEST);
}

/* ---------------------------------------------------------------------------
 * 2026-07-28
 */

static void test_discover(void **state)
{
	struct fx *f = *state;
	char tok[MCP_TOKEN_LEN + 1], auth[MCP_TOKEN_LEN + 16];
	issue(f, MCP_PHASE_RUN, 60000, tok);
	bearer(auth, tok);
	/* no session, no token needed; a token presented is not spent, and
	 * a bogus session id is ignored */
	for (int i = 0; i < 3; i++) {
		post(f,
		     &(struct hdr){ .auth = i == 1 ? auth : NULL,
				    .session = i == 2 ? "cdn_mcps_bogus" : NULL,
				    .version = V0728,
				    .method = "server/discover" },
		     "{\"jsonrpc\":\"2.0\",\"id\":\"d\",\"method\":\"server/"
		     "discover\",\"params\":{" META_FMT "}}",
		     V0728);
		json_t *res = expect_result(f);
		assert_null(header(&f->resp, "Mcp-Session-Id"));
		json_t *sv = json_object_get(res, "supportedVersions");
		assert_int_equal(json_array_size(sv), 4);
		assert_string_equal(json_string_value(json_array_get(sv, 0)), V0728);
		assert_string_equal(json_string_value(json_array_get(sv, 1)), V1125);
		assert_string_equal(json_string_value(json_array_get(sv, 2)), V0618);
		assert_string_equal(json_string_value(json_array_get(sv, 3)), V0326);
		assert_non_null(json_object_get(json_object_get(res, "capabilities"), "tools"));
		assert_string_equal(json_string_value(json_object_get(res, "resultType")),
				    "complete");
		assert_true(json_is_integer(json_object_get(res, "ttlMs")));
		assert_string_equal(json_string_value(json_object_get(res, "cacheScope")),
				    "public");
		json_t *si = json_object_get(json_object_get(res, "_meta"),
					     "io.modelcontextprotocol/serverInfo");
		assert_string_equal(json_string_value(json_object_get(si, "name")), "cordon");
		/* nothing about the run */
		assert_null(json_object_get(res, "tools"));
	}
	assert_int_equal(f->n_audit, 0);
	/* an unsupported version, even on discover: -32022 with the same list */
	post(
	    f, &(struct hdr){ .version = V0728, .method = "server/discover" },
	    "{\"jsonrpc\":\"2.0\",\"id\":\"d\",\"method\":\"server/discover\",\"params\":{" META_FMT
	    "}}",
	    "1900-01-01");
	json_t *data = json_object_get(error_of(f, 400, MCP_ERR_UNSUPPORTED_VERSION), "data");
	assert_int_equal(json_array_size(json_object_get(data, "supported")), 4);
	assert_string_equal(json_string_value(json_object_get(data, "requested")), "1900-01-01");
	assert_string_equal(json_string_value(json_object_get(f->j, "id")), "d");
	/* discover declared with a handshake-era version is answered too */
	post(
	    f, &(struct hdr){ .version = V1125, .method = "server/discover" },
	    "{\"jsonrpc\":\"2.0\",\"id\":\"d\",\"method\":\"server/discover\",\"params\":{" META_FMT
	    "}}",
	    V1125);
	expect_result(f);
	/* discover without _meta */
	post(f, &(struct hdr){ .version = V0728, .method = "server/discover" },
	     "{\"jsonrpc\":\"2.0\",\"id\":\"d\",\"method\":\"server/discover\"}");
	expect_error(f, 400, MCP_ERR_INVALID_PARAMS);
	/* the token is still good */
	post_tools_list(f, V0728, NULL, auth);
	expect_result(f);
	assert_non_null(header(&f->resp, "Mcp-Session-Id"));
}

static void test_stateless_session(void **state)
{
	struct fx *f = *state;
	char tok[MCP_TOKEN_LEN + 1], auth[MCP_TOKEN_LEN + 16], sid[MCP_SESSION_ID_LEN + 1];
	issue(f, MCP_PHASE_RUN, 60000, tok);
	bearer(auth, tok);
	post_tools_list(f, V0728, NULL, NULL);
	expect_error(f, 401, MCP_ERR_UNAUTHORIZED);
	post_tools_list(f, V0728, NULL, auth);
	json_t *res = expect_result(f);
	assert_string_equal(json_string_value(json_object_get(res, "resultType")), "complete");
	assert_string_equal(json_string_value(json_object_get(res, "cacheScope")), "private");
	assert_true(json_integer_value(json_object_get(res, "ttlMs")) > 0);
	assert_non_null(
	    json_object_get(json_object_get(res, "_meta"), "io.modelcontextprotocol/serverInfo"));
	snprintf(sid, sizeof(sid), "%s", header(&f->resp, "Mcp-Session-Id"));
	/* the token is spent: a client that keeps sending it without the
	 * session id is refused */
	post_tools_list(f, V0728, NULL, auth);
	expect_error(f, 401, MCP_ERR_UNAUTHORIZED);
	assert_true(audit_has(f, "mcp.token_refused", "already used"));
	/* with the session id (Authorization then is not looked at) */
	post_tools_list(f, V0728, sid, auth);
	expect_result(f);
	assert_null(header(&f->resp, "Mcp-Session-Id"));
	post_tools_list(f, V0728, sid, "Bearer garbage");
	expect_result(f);
	/* sessions do not cross eras */
	char legacy[MCP_SESSION_ID_LEN + 1];
	open_session(f, V1125, legacy);
	post_tools_list(f, V0728, legacy, NULL);
	expect_error(f, 400, MCP_ERR_INVALID_REQUEST);
	post_tools_list(f, V1125, sid, NULL);
	expect_error(f, 400, MCP_ERR_INVALID_REQUEST);
	assert_true(audit_has(f, "mcp.session_refused", "across eras"));
	/* a first request that fails after spending the token still hands out
	 * the session it opened */
	issue(f, MCP_PHASE_RUN, 60000, tok);
	bearer(auth, tok);
	post(f,
	     &(struct hdr){ .auth = auth, .version = V0728, .method = "tools/call", .name = "log" },
	     "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"name\":\"log\","
	     "\"arguments\":{\"level\":\"loud\",\"message\":\"x\"}," META_FMT "}}",
	     V0728);
	expect_tool(f, true);
	assert_non_null(header(&f->resp, "Mcp-Session-Id"));
}

static void test_stateless_rules(void **state)
{
	struct fx *f = *state;
	char sid[MCP_SESSION_ID_LEN + 1];
	open_session(f, V0728, sid);
	const struct hdr ok = { .session = sid, .version = V0728, .method = "tools/list" };
	/* the 2026-07-28 header makes it a stateless request: _meta is required */
	post(f, &ok, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
	expect_error(f, 400, MCP_ERR_INVALID_PARAMS);
	post(f, &ok, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{}}");
	expect_error(f, 400, MCP_ERR_INVALID_PARAMS);
	post(f, &ok,
	     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{\"_meta\":[]}}");
	expect_error(f, 400, MCP_ERR_INVALID_PARAMS);
	/* required per-request fields */
	post(f, &ok,
	     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{\"_meta\":{"
	     "\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\"}}}");
	expect_error(f, 400, MCP_ERR_INVALID_PARAMS);
	post(f, &ok,
	     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{\"_meta\":{"
	     "\"io.modelcontextprotocol/protocolVersion\":7,"
	     "\"io.modelcontextprotocol/clientCapabilities\":{}}}}");
	expect_error(f, 400, MCP_ERR_INVALID_PARAMS);
	post(f, &ok,
	     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{\"_meta\":{"
	     "\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\","
	     "\"io.modelcontextprotocol/clientCapabilities\":true}}}");
	expect_error(f, 400, MCP_ERR_INVALID_PARAMS);
	post(f, &ok,
	     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{\"_meta\":{"
	     "\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\","
	     "\"io.modelcontextprotocol/clientCapabilities\":{},"
	     "\"io.modelcontextprotocol/clientInfo\":{\"name\":\"x\"}}}}");
	expect_error(f, 400, MCP_ERR_INVALID_PARAMS);
	post(f, &ok,
	     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{\"_meta\":{"
	     "\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\","
	     "\"io.modelcontextprotocol/clientCapabilities\":{},"
	     "\"io.modelcontextprotocol/logLevel\":\"loud\"}}}");
	expect_error(f, 400, MCP_ERR_INVALID_PARAMS);
	post(f, &ok,
	     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{\"_meta\":{"
	     "\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\","
	     "\"io.modelcontextprotocol/clientCapabilities\":{},"
	     "\"io.modelcontextprotocol/logLevel\":\"warning\",\"progressToken\":5,"
	     "\"traceparent\":\"00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01\"}}}");
	expect_result(f);
	/* the version header: missing, mismatched, unsupported */
	post(f, &(struct hdr){ .session = sid, .method = "tools/list" },
	     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{" META_FMT "}}",
	     V0728);
	expect_error(f, 400, MCP_ERR_HEADER_MISMATCH);
	post(f, &(struct hdr){ .session = sid, .version = V1125, .method = "tools/list" },
	     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{" META_FMT "}}",
	     V0728);
	expect_error(f, 400, MCP_ERR_HEADER_MISMATCH);
	post(f, &(struct hdr){ .session = sid, .version = "2099-01-01", .method = "tools/list" },
	     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{" META_FMT "}}",
	     "2099-01-01");
	expect_error(f, 400, MCP_ERR_UNSUPPORTED_VERSION);
	post(f, &(struct hdr){ .session = sid, .version = V0728, .method = "tools/list" },
	     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{" META_FMT "}}",
	     "2099-01-01");
	expect_error(f, 400, MCP_ERR_UNSUPPORTED_VERSION);
	/* a handshake-era version in _meta, outside server/discover */
	post(f, &(struct hdr){ .session = sid, .version = V1125, .method = "tools/list" },
	     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{" META_FMT "}}",
	     V1125);
	expect_error(f, 400, MCP_ERR_INVALID_REQUEST);
	/* Mcp-Method: required, must match */
	post(f, &(struct hdr){ .session = sid, .version = V0728 },
	     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{" META_FMT "}}",
	     V0728);
	expect_error(f, 400, MCP_ERR_HEADER_MISMATCH);
	post(f, &(struct hdr){ .session = sid, .version = V0728, .method = "tools/call" },
	     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{" META_FMT "}}",
	     V0728);
	expect_error(f, 400, MCP_ERR_HEADER_MISMATCH);
	post(f, &(struct hdr){ .session = sid, .version = V0728, .method = "Tools/List" },
	     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{" META_FMT "}}",
	     V0728);
	expect_error(f, 400, MCP_ERR_HEADER_MISMATCH);
	/* Mcp-Name on tools/call: required, must match, base64 sentinel */
#define body                                                                                       \
	"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{"                      \
	"\"name\":\"get_input\"," META_FMT "}}"
	post(f, &(struct hdr){ .session = sid, .version = V0728, .method = "tools/call" }, body,
	     V0728);
	expect_error(f, 400, MCP_ERR_HEADER_MISMATCH);
	post(f,
	     &(struct hdr){
		 .session = sid, .version = V0728, .method = "tools/call", .name = "log" },
	     body, V0728);
	expect_error(f, 400, MCP_ERR_HEADER_MISMATCH);
	post(f,
	     &(struct hdr){ .session = sid,
			    .version = V0728,
			    .method = "tools/call",
			    .name = "=?base64?Z2V0X2lucHV0?=" },
	     body, V0728);
	expect_tool(f, false);
	post(f,
	     &(struct hdr){ .session = sid,
			    .version = V0728,
			    .method = "tools/call",
			    .name = "=?base64?Z2V0X2lucHV0!?=" },
	     body, V0728);
	expect_error(f, 400, MCP_ERR_HEADER_MISMATCH);
	post(f,
	     &(struct hdr){ .session = sid,
			    .version = V0728,
			    .method = "tools/call",
			    .name = "=?base64?bG9n?=" },
	     body, V0728);
	expect_error(f, 400, MCP_ERR_HEADER_MISMATCH);
#undef body
	/* removed and unknown methods: 404 + -32601 */
	static const char *const gone[] = {
		"ping",		"initialize", "logging/setLevel", "resources/subscribe",
		"secrets/list", "grant"
	};
	for (size_t i = 0; i < CDN_ARRAY_SIZE(gone); i++) {
		post(f, &(struct hdr){ .session = sid, .version = V0728, .method = gone[i] },
		     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"%s\",\"params\":{" META_FMT "}}",
		     gone[i], V0728);
		expect_error(f, 404, MCP_ERR_METHOD_NOT_FOUND);
	}
	/* clients do not send responses in 2026-07-28 */
	post(f, &(struct hdr){ .session = sid, .version = V0728 },
	     "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}");
	expect_error(f, 400, MCP_ERR_INVALID_REQUEST);
	/* a notification within the session is accepted */
	post(f, &(struct hdr){ .session = sid, .version = V0728 },
	     "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{"
	     "\"requestId\":3}}");
	assert_int_equal(f->resp.status, 202);
}

static void test_meta(void **state)
{
	struct fx *f = *state;
	char sid[MCP_SESSION_ID_LEN + 1];
	open_session(f, V1125, sid);
	static const char *const good[] = { "progressToken", "com.example/x", "a.b-c.d9/n_a.m-e",
					    "com.example/",  "traceparent",   "x" };
	static const char *const bad[] = { "-x",
					   "x-",
					   "com..example/x",
					   "9com/x",
					   "com-/x",
					   "com.example/-x",
					   "/x",
					   "com example/x",
					   "a/b/c",
					   "com.example./x",
					   "\xc3\xa9" };
	for (size_t i = 0; i < CDN_ARRAY_SIZE(good); i++) {
		post(f, &(struct hdr){ .session = sid },
		     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"_meta\":{"
		     "\"%s\":1}}}",
		     good[i]);
		expect_result(f);
	}
	for (size_t i = 0; i < CDN_ARRAY_SIZE(bad); i++) {
		post(f, &(struct hdr){ .session = sid },
		     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"_meta\":{"
		     "\"%s\":1}}}",
		     bad[i]);
		expect_error(f, 400, MCP_ERR_INVALID_PARAMS);
	}
	post(f, &(struct hdr){ .session = sid },
	     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"_meta\":{"
	     "\"progressToken\":{}}}}");
	expect_error(f, 400, MCP_ERR_INVALID_PARAMS);
	/* too many keys */
	char big[4096] = "";
	size_t n = 0;
	for (int i = 0; i <= MCP_MAX_META_KEYS; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, "%s\"k%d\":%d", i ? "," : "", i, i);
	post(f, &(struct hdr){ .session = sid },
	     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"_meta\":{%s}}}", big);
	expect_error(f, 400, MCP_ERR_INVALID_PARAMS);
	/* nothing of the client's _meta comes back, in either era */
	post(f, &(struct hdr){ .session = sid },
	     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
	     "\"get_input\",\"_meta\":{\"com.example/secret\":\"s3cr3t-v4lue\"}}}");
	expect_tool(f, false);
	assert_null(strstr(f->resp.body, "s3cr3t"));
	char msid[MCP_SESSION_ID_LEN + 1];
	open_session(f, V0728, msid);
	post(f,
	     &(struct hdr){
		 .session = msid, .version = V0728, .method = "tools/call", .name = "get_input" },
	     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
	     "\"get_input\",\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\","
	     "\"io.modelcontextprotocol/clientCapabilities\":{\"s3cr3t\":{}},"
	     "\"io.modelcontextprotocol/clientInfo\":{\"name\":\"s3cr3t\",\"version\":\"1\"},"
	     "\"com.example/secret\":\"s3cr3t-v4lue\"}}}");
	expect_tool(f, false);
	assert_null(strstr(f->resp.body, "s3cr3t"));
}

/* ---------------------------------------------------------------------------
 * JSON-RPC strictness
 */

static void test_jsonrpc_strict(void **state)
{
	struct fx *f = *state;
	char sid[MCP_SESSION_ID_LEN + 1];
	open_session(f, V1125, sid);
	const struct hdr h = { .session = sid };
	static const struct {
		const char *body;
		int status, code;
	} cases[] = {
		{ "", 400, MCP_ERR_PARSE },
		{ "{", 400, MCP_ERR_PARSE },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"} x", 400, MCP_ERR_PARSE },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"method\":\"tools/list\"}",
		  400, MCP_ERR_PARSE },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/"
		  "call\",\"params\":{\"name\":\"log\","
		  "\"name\":\"get_input\"}}",
		  400, MCP_ERR_PARSE },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"a\":\"\\u0000\"}"
		  "}",
		  400, MCP_ERR_PARSE },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"p\xff\"}", 400, MCP_ERR_PARSE },
		{ "{\"jsonrpc\":\"2.0\",\"id\":99999999999999999999999,\"method\":\"ping\"}", 400,
		  MCP_ERR_PARSE },
		{ "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]", 400,
		  MCP_ERR_INVALID_REQUEST },
		{ "[]", 400, MCP_ERR_INVALID_REQUEST },
		{ "\"ping\"", 400, MCP_ERR_INVALID_REQUEST },
		{ "42", 400, MCP_ERR_INVALID_REQUEST },
		{ "null", 400, MCP_ERR_INVALID_REQUEST },
		{ "{}", 400, MCP_ERR_INVALID_REQUEST },
		{ "{\"id\":1,\"method\":\"ping\"}", 400, MCP_ERR_INVALID_REQUEST },
		{ "{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"ping\"}", 400,
		  MCP_ERR_INVALID_REQUEST },
		{ "{\"jsonrpc\":2,\"id\":1,\"method\":\"ping\"}", 400, MCP_ERR_INVALID_REQUEST },
		{ "{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}", 400,
		  MCP_ERR_INVALID_REQUEST },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"ping\"}", 400,
		  MCP_ERR_INVALID_REQUEST },
		{ "{\"jsonrpc\":\"2.0\",\"id\":true,\"method\":\"ping\"}", 400,
		  MCP_ERR_INVALID_REQUEST },
		{ "{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"ping\"}", 400,
		  MCP_ERR_INVALID_REQUEST },
		{ "{\"jsonrpc\":\"2.0\",\"id\":[1],\"method\":\"ping\"}", 400,
		  MCP_ERR_INVALID_REQUEST },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":3}", 400, MCP_ERR_INVALID_REQUEST },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\"}", 400, MCP_ERR_INVALID_REQUEST },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a b\"}", 400,
		  MCP_ERR_INVALID_REQUEST },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"p\\u00e9\"}", 400,
		  MCP_ERR_INVALID_REQUEST },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"extra\":1}", 400,
		  MCP_ERR_INVALID_REQUEST },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"result\":{}}", 400,
		  MCP_ERR_INVALID_REQUEST },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":[1]}", 400,
		  MCP_ERR_INVALID_PARAMS },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":\"x\"}", 400,
		  MCP_ERR_INVALID_PARAMS },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1}", 400, MCP_ERR_INVALID_REQUEST },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{},\"error\":{\"code\":1,\"message\":"
		  "\"m\"}}",
		  400, MCP_ERR_INVALID_REQUEST },
		{ "{\"jsonrpc\":\"2.0\",\"result\":{}}", 400, MCP_ERR_INVALID_REQUEST },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":3}", 400, MCP_ERR_INVALID_REQUEST },
		{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":\"x\",\"message\":\"m\"}}",
		  400, MCP_ERR_INVALID_REQUEST },
	};
	for (size_t i = 0; i < CDN_ARRAY_SIZE(cases); i++) {
		post_raw(f, &h, cases[i].body, strlen(cases[i].body));
		if (f->resp.status != cases[i].status)
			fail_msg("case %zu (%s): status %d", i, cases[i].body, f->resp.status);
		expect_error(f, cases[i].status, cases[i].code);
	}
	/* a long string id is refused, one within the bound is echoed */
	char id[MCP_MAX_ID + 2];
	memset(id, 'i', sizeof(id) - 1);
	id[sizeof(id) - 1] = '\0';
	post(f, &h, "{\"jsonrpc\":\"2.0\",\"id\":\"%s\",\"method\":\"ping\"}", id);
	expect_error(f, 400, MCP_ERR_INVALID_REQUEST);
	assert_null(json_object_get(f->j, "id"));
	id[MCP_MAX_ID] = '\0';
	post(f, &h, "{\"jsonrpc\":\"2.0\",\"id\":\"%s\",\"method\":\"ping\"}", id);
	expect_result(f);
	assert_string_equal(json_string_value(json_object_get(f->j, "id")), id);
	post(f, &h, "{\"jsonrpc\":\"2.0\",\"id\":-9007199254740993,\"method\":\"ping\"}");
	expect_result(f);
	assert_int_equal(json_integer_value(json_object_get(f->j, "id")), -9007199254740993LL);
	/* the id is echoed even in refusals it can be read from */
	post(f, &h, "{\"jsonrpc\":\"2.0\",\"id\":\"e\",\"method\":\"ping\",\"x\":1}");
	expect_error(f, 400, MCP_ERR_INVALID_REQUEST);
	assert_string_equal(json_string_value(json_object_get(f->j, "id")), "e");
	/* a long method name */
	char method[MCP_MAX_METHOD + 2];
	memset(method, 'm', sizeof(method) - 1);
	method[sizeof(method) - 1] = '\0';
	post(f, &h, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"%s\"}", method);
	expect_error(f, 400, MCP_ERR_INVALID_REQUEST);
	/* a body of no bytes at all, and a NULL body */
	post_raw(f, &h, NULL, 0);
	expect_error(f, 400, MCP_ERR_PARSE);
	post_raw(f, &h, NULL, 5);
	expect_error(f, 400, MCP_ERR_INVALID_REQUEST);
	/* nothing of that reached a hook */
	assert_int_equal(f->calls, 0);
}

static void test_bounds(void **state)
{
	struct fx *f = *state;
	char sid[MCP_SESSION_ID_LEN + 1];
	open_session(f, V1125, sid);
	const struct hdr h = { .session = sid };
	/* depth: counted before parsing, strings do not count */
	char deep[512];
	size_t n = (size_t)snprintf(
	    deep, sizeof(deep),
	    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"_meta\":{\"x\":");
	for (int i = 0; i < MCP_MAX_DEPTH; i++)
		deep[n++] = '[';
	for (int i = 0; i < MCP_MAX_DEPTH; i++)
		deep[n++] = ']';
	n += (size_t)snprintf(deep + n, sizeof(deep) - n, "}}}");
	post_raw(f, &h, deep, n);
	expect_error(f, 400, MCP_ERR_INVALID_REQUEST);
	const char *fine =
	    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"_meta\":{"
	    "\"x\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"[[[[\"}}}";
	post_raw(f, &h, fine, strlen(fine));
	expect_result(f);
	/* an unterminated document deeper than the limit */
	char open[MCP_MAX_DEPTH * 2 + 1];
	memset(open, '{', sizeof(open) - 1);
	open[sizeof(open) - 1] = '\0';
	post_raw(f, &h, open, strlen(open));
	expect_error(f, 400, MCP_ERR_INVALID_REQUEST);
	/* body size: MCP_MAX_BODY exactly is read, one more byte is not */
	size_t max = MCP_MAX_BODY;
	char *body = malloc(max + 1);
	const char *head =
	    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"_meta\":{\"x\":\"";
	size_t hl = strlen(head);
	memcpy(body, head, hl);
	memset(body + hl, 'a', max - hl - 4);
	memcpy(body + max - 4, "\"}}}", 4);
	post_raw(f, &h, body, max);
	expect_result(f);
	body[max] = ' ';
	post_raw(f, &h, body, max + 1);
	expect_error(f, 413, MCP_ERR_INVALID_REQUEST);
	free(body);
	/* a configured, lower limit */
	struct fx *g = calloc(1, sizeof(*g));
	struct mcp_config cfg = { .max_body = 64 };
	new_server(g, &cfg);
	post(g, NULL,
	     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"_meta\":{\"x\":\"%"
	     "s\"}}}",
	     "0123456789");
	expect_error(g, 413, MCP_ERR_INVALID_REQUEST);
	reset(g);
	mcp_server_free(g->s);
	free(g);
}

static void test_notifications(void **state)
{
	struct fx *f = *state;
	char sid[MCP_SESSION_ID_LEN + 1];
	open_session(f, V0618, sid);
	static const char *const one_way[] = {
		"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}",
		("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\","
		 "\"params\":{\"requestId\":1}}"),
		"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}",
		"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/whatever\"}",
		"{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}",
		"{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"error\":{\"code\":-1,\"message\":\"no\"}}",
	};
	for (size_t i = 0; i < CDN_ARRAY_SIZE(one_way); i++) {
		post(f, &(struct hdr){ .session = sid, .version = V0618 }, "%s", one_way[i]);
		assert_int_equal(f->resp.status, 202);
		assert_null(f->resp.body);
		assert_int_equal(f->resp.n_headers, 0);
		/* without a session: refused */
		post(f, NULL, "%s", one_way[i]);
		expect_error(f, 400, MCP_ERR_SESSION_REQUIRED);
		if (i < 4) /* notifications have no id to echo */
			assert_null(json_object_get(f->j, "id"));
		post(f, &(struct hdr){ .session = "cdn_mcps_nope" }, "%s", one_way[i]);
		expect_error(f, 404, MCP_ERR_SESSION_UNKNOWN);
	}
	/* the session's version, when the header names one */
	post(f, &(struct hdr){ .session = sid, .version = V1125 },
	     "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
	expect_error(f, 400, MCP_ERR_INVALID_REQUEST);
	/* a malformed notification is refused with no id */
	post(f, &(struct hdr){ .session = sid },
	     "{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"params\":7}");
	expect_error(f, 400, MCP_ERR_INVALID_PARAMS);
	assert_null(json_object_get(f->j, "id"));
	assert_int_equal(f->calls, 0);
}

/* ---------------------------------------------------------------------------
 * Tools
 */

static void test_tools_list(void **state)
{
	struct fx *f = *state;
	static const char *const names[] = { "report_step", "save_artifact", "request_approval",
					     "get_input", "log" };
	static const char *const props[][4] = {
		{ "name", "detail", NULL },   { "name", "content", "encoding", NULL },
		{ "action", "reason", NULL }, { NULL },
		{ "level", "message", NULL },
	};
	static const char *const required[][3] = {
		{ "name", NULL }, { "name", "content", NULL },	{ "action", "reason", NULL },
		{ NULL },	  { "level", "message", NULL },
	};
	for (size_t v = 0; v < CDN_ARRAY_SIZE(all_versions); v++) {
		char sid[MCP_SESSION_ID_LEN + 1];
		open_session(f, all_versions[v], sid);
		post_tools_list(f, all_versions[v], sid, NULL);
		json_t *list = json_object_get(expect_result(f), "tools");
		/* exactly these five, in this order: no privileged verb */
		assert_int_equal(json_array_size(list), CDN_ARRAY_SIZE(names));
		for (size_t i = 0; i < CDN_ARRAY_SIZE(names); i++) {
			json_t *t = json_array_get(list, i);
			assert_string_equal(json_string_value(json_object_get(t, "name")),
					    names[i]);
			assert_true(json_is_string(json_object_get(t, "description")));
			/* 2025-03-26 has no `title`: its annotations carry it */
			if (strcmp(all_versions[v], V0326) == 0) {
				assert_null(json_object_get(t, "title"));
				assert_true(json_is_string(json_object_get(
				    json_object_get(t, "annotations"), "title")));
			} else {
				assert_true(json_is_string(json_object_get(t, "title")));
			}
			json_t *schema = json_object_get(t, "inputSchema");
			assert_string_equal(json_string_value(json_object_get(schema, "type")),
					    "object");
			assert_true(json_is_false(json_object_get(schema, "additionalProperties")));
			json_t *p = json_object_get(schema, "properties");
			size_t np = 0;
			while (props[i][np])
				np++;
			assert_int_equal(json_object_size(p), np);
			for (size_t k = 0; k < np; k++) {
				json_t *ps = json_object_get(p, props[i][k]);
				assert_non_null(ps);
				assert_true(json_is_string(json_object_get(ps, "type")));
				assert_true(json_is_string(json_object_get(ps, "description")));
			}
			json_t *req = json_object_get(schema, "required");
			size_t nr = 0;
			while (required[i][nr])
				nr++;
			assert_int_equal(json_array_size(req), nr);
			for (size_t k = 0; k < nr; k++)
				assert_string_equal(json_string_value(json_array_get(req, k)),
						    required[i][k]);
		}
		/* a few schema details */
		json_t *sa = json_object_get(json_array_get(list, 1), "inputSchema");
		json_t *enc = json_object_get(json_object_get(sa, "properties"), "encoding");
		assert_int_equal(json_array_size(json_object_get(enc, "enum")), 2);
		json_t *lv = json_object_get(
		    json_object_get(json_object_get(json_array_get(list, 4), "inputSchema"),
				    "properties"),
		    "level");
		assert_int_equal(json_array_size(json_object_get(lv, "enum")), 8);
		json_t *rs = json_object_get(json_array_get(list, 0), "inputSchema");
		assert_int_equal(
		    json_integer_value(json_object_get(
			json_object_get(json_object_get(rs, "properties"), "name"), "maxLength")),
		    MCP_MAX_STEP_NAME);
	}
	/* cursors: none was handed out; unknown params refused */
	char sid[MCP_SESSION_ID_LEN + 1];
	open_session(f, V1125, sid);
	post(f, &(struct hdr){ .session = sid },
	     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/"
	     "list\",\"params\":{\"cursor\":\"c\"}}");
	expect_error(f, 200, MCP_ERR_INVALID_PARAMS);
	post(f, &(struct hdr){ .session = sid },
	     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{\"page\":2}}");
	expect_error(f, 200, MCP_ERR_INVALID_PARAMS);
}

static void test_tools_call(void **state)
{
	struct fx *f = *state;
	for (size_t v = 0; v < CDN_ARRAY_SIZE(all_versions); v++) {
		const char *ver = all_versions[v];
		char sid[MCP_SESSION_ID_LEN + 1];
		open_session(f, ver, sid);

		tool_call(f, ver, sid, "report_step", "{\"name\":\"fetch sources\"}");
		json_t *res = expect_tool(f, false);
		assert_string_equal(f->step_name, "fetch sources");
		assert_false(f->step_has_detail);
		assert_int_equal(f->phase, MCP_PHASE_RUN);
		if (stateless_version(ver))
			assert_string_equal(json_string_value(json_object_get(res, "resultType")),
					    "complete");
		else
			assert_null(json_object_get(res, "resultType"));

		tool_call(f, ver, sid, "report_step",
			  "{\"name\":\"parse\",\"detail\":{\"files\":3,\"ok\":true,\"n\":[1,2]}}");
		expect_tool(f, false);
		assert_string_equal(f->step_detail, "{\"files\":3,\"ok\":true,\"n\":[1,2]}");

		tool_call(f, ver, sid, "save_artifact",
			  "{\"name\":\"brief.md\",\"content\":\"# Brief\\nhello \\u00e9\"}");
		res = expect_tool(f, false);
		assert_string_equal(f->artifact_name, "brief.md");
		assert_int_equal(f->artifact_len, strlen("# Brief\nhello \xc3\xa9"));
		assert_memory_equal(f->artifact, "# Brief\nhello \xc3\xa9", f->artifact_len);
		json_t *sc = json_object_get(res, "structuredContent");
		assert_int_equal(json_integer_value(json_object_get(sc, "size")), f->artifact_len);
		uint8_t d[crypto_hash_sha256_BYTES];
		char hex[2 * sizeof(d) + 1];
		crypto_hash_sha256(d, f->artifact, f->artifact_len);
		sodium_bin2hex(hex, sizeof(hex), d, sizeof(d));
		assert_string_equal(json_string_value(json_object_get(sc, "sha256")), hex);

		tool_call(f, ver, sid, "save_artifact",
			  "{\"name\":\"data.bin\",\"content\":\"AAH/\",\"encoding\":\"base64\"}");
		expect_tool(f, false);
		assert_int_equal(f->artifact_len, 3);
		assert_memory_equal(f->artifact, "\x00\x01\xff", 3);
		tool_call(f, ver, sid, "save_artifact",
			  "{\"name\":\"e\",\"content\":\"\",\"encoding\":\"utf-8\"}");
		expect_tool(f, false);
		assert_int_equal(f->artifact_len, 0);

		f->decide_inline = true;
		f->approve = true;
		tool_call(
		    f, ver, sid, "request_approval",
		    "{\"action\":\"POST api.example.com/deploy\",\"reason\":\"ship it\\nnow\"}");
		res = expect_tool(f, false);
		assert_string_equal(f->action, "POST api.example.com/deploy");
		assert_string_equal(f->reason, "ship it\nnow");
		sc = json_object_get(res, "structuredContent");
		assert_string_equal(json_string_value(json_object_get(sc, "decision")), "approved");
		assert_string_equal(json_string_value(json_object_get(sc, "approval_id")), "ap-1");
		assert_string_equal(tool_text(res), "approved");
		f->approve = false;
		tool_call(f, ver, sid, "request_approval",
			  "{\"action\":\"rm -rf /data\",\"reason\":\"cleanup\"}");
		res = expect_tool(f, false); /* a denial is an answer, not an error */
		sc = json_object_get(res, "structuredContent");
		assert_string_equal(json_string_value(json_object_get(sc, "decision")), "denied");
		assert_string_equal(json_string_value(json_object_get(sc, "note")), "not now");
		assert_string_equal(tool_text(res), "denied: not now");
		f->decide_inline = false;

		tool_call(f, ver, sid, "get_input", "{}");
		res = expect_tool(f, false);
		sc = json_object_get(res, "structuredContent");
		assert_string_equal(json_string_value(json_object_get(sc, "task")), "summarise");
		assert_int_equal(json_integer_value(json_object_get(sc, "n")), 3);
		json_t *again = json_loads(tool_text(res), 0, NULL);
		assert_true(json_equal(again, sc));
		json_decref(again);

		for (int l = MCP_LOG_DEBUG; l <= MCP_LOG_EMERGENCY; l++) {
			char args[128];
			snprintf(args, sizeof(args), "{\"level\":\"%s\",\"message\":\"m%d\\tx\"}",
				 mcp_log_level_name((enum mcp_log_level)l), l);
			tool_call(f, ver, sid, "log", args);
			expect_tool(f, false);
			assert_int_equal(f->level, l);
		}
		assert_string_equal(f->message, "m7\tx");
	}
	/* arguments may be left out when a tool has none */
	char sid[MCP_SESSION_ID_LEN + 1];
	open_session(f, V0618, sid);
	post(f, &(struct hdr){ .session = sid },
	     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/"
	     "call\",\"params\":{\"name\":\"get_input\"}}");
	expect_tool(f, false);
}

static void test_tools_call_errors(void **state)
{
	struct fx *f = *state;
	char long_name[MCP_MAX_STEP_NAME + 40], long_reason[MCP_MAX_REASON + 40];
	snprintf(long_name, sizeof(long_name), "{\"name\":\"%0*d\"}", MCP_MAX_STEP_NAME + 1, 0);
	snprintf(long_reason, sizeof(long_reason), "{\"action\":\"a\",\"reason\":\"%0*d\"}",
		 MCP_MAX_REASON + 1, 0);
	char big_detail[MCP_MAX_STEP_DETAIL + 64];
	snprintf(big_detail, sizeof(big_detail), "{\"name\":\"s\",\"detail\":{\"x\":\"%0*d\"}}",
		 MCP_MAX_STEP_DETAIL, 0);
	static const struct {
		const char *tool, *args, *says;
	} cases[] = {
		{ "report_step", "{}", "required" },
		{ "report_step", "{\"name\":\"\"}", "empty" },
		{ "report_step", "{\"name\":7}", "string" },
		{ "report_step", "{\"name\":\"a\",\"extra\":1}", "unknown argument \"extra\"" },
		{ "report_step", "{\"name\":\"a\",\"\\u00e9\":1}", "unknown argument" },
		{ "report_step", "{\"name\":\"a\",\"detail\":[1]}", "object" },
		{ "report_step", "{\"name\":\"a\",\"detail\":\"x\"}", "object" },
		{ "report_step", "{\"name\":\"a\\u001b[31mred\"}", "control" },
		{ "report_step", "{\"name\":\"a\\nb\"}", "control" },
		{ "report_step", "{\"name\":\"a\\u009bb\"}", "control" },
		{ "report_step", "{\"name\":\"a\\u202eb\"}", "bidirectional" },
		{ "save_artifact", "{\"name\":\"a.txt\"}", "required" },
		{ "save_artifact", "{\"content\":\"x\"}", "required" },
		{ "save_artifact", "{\"name\":\"../x\",\"content\":\"x\"}", "[A-Za-z0-9._-]" },
		{ "save_artifact", "{\"name\":\".hidden\",\"content\":\"x\"}", "dot" },
		{ "save_artifact", "{\"name\":\"a/b\",\"content\":\"x\"}", "[A-Za-z0-9._-]" },
		{ "save_artifact", "{\"name\":\"a b\",\"content\":\"x\"}", "[A-Za-z0-9._-]" },
		{ "save_artifact", "{\"name\":\"\",\"content\":\"x\"}", "[A-Za-z0-9._-]" },
		{ "save_artifact", "{\"name\":\"caf\\u00e9\",\"content\":\"x\"}",
		  "[A-Za-z0-9._-]" },
		{ "save_artifact", "{\"name\":\"a\",\"content\":1}", "string" },
		{ "save_artifact", "{\"name\":\"a\",\"content\":\"x\",\"encoding\":\"hex\"}",
		  "allowed values" },
		{ "save_artifact", "{\"name\":\"a\",\"content\":\"x\",\"encoding\":\"base64\"}",
		  "base64" },
		{ "save_artifact", "{\"name\":\"a\",\"content\":\"AAH\",\"encoding\":\"base64\"}",
		  "base64" },
		{ "save_artifact", "{\"name\":\"a\",\"content\":\"AA H/\",\"encoding\":\"base64\"}",
		  "base64" },
		{ "save_artifact", "{\"name\":\"a\",\"content\":\"AAH_\",\"encoding\":\"base64\"}",
		  "base64" },
		{ "request_approval", "{\"action\":\"a\"}", "required" },
		{ "request_approval", "{\"reason\":\"r\"}", "required" },
		{ "request_approval", "{\"action\":\"a\\nb\",\"reason\":\"r\"}", "control" },
		{ "request_approval", "{\"action\":\"pay \\u2067evil\\u2069\",\"reason\":\"r\"}",
		  "bidirectional" },
		{ "request_approval", "{\"action\":\"a\",\"reason\":\"r\\u0007\"}", "control" },
		{ "request_approval", "{\"action\":\"a\",\"reason\":\"r\",\"approved\":true}",
		  "unknown argument" },
		{ "get_input", "{\"x\":1}", "unknown argument" },
		{ "log", "{\"level\":\"info\"}", "required" },
		{ "log", "{\"level\":\"loud\",\"message\":\"m\"}", "allowed values" },
		{ "log", "{\"level\":\"INFO\",\"message\":\"m\"}", "allowed values" },
		{ "log", "{\"level\":1,\"message\":\"m\"}", "string" },
		{ "log", "{\"level\":\"info\",\"message\":\"\\u001b]0;t\\u0007\"}", "control" },
	};
	for (size_t v = 0; v < CDN_ARRAY_SIZE(all_versions); v++) {
		const char *ver = all_versions[v];
		char sid[MCP_SESSION_ID_LEN + 1];
		open_session(f, ver, sid);
		int before = f->calls;
		for (size_t i = 0; i < CDN_ARRAY_SIZE(cases); i++) {
			tool_call(f, ver, sid, cases[i].tool, cases[i].args);
			const char *msg = expect_arg_error(f, ver);
			if (!strstr(msg, cases[i].says))
				fail_msg("%s %s %s: \"%s\" does not say \"%s\"", ver, cases[i].tool,
					 cases[i].args, msg, cases[i].says);
		}
		tool_call(f, ver, sid, "report_step", long_name);
		assert_non_null(strstr(expect_arg_error(f, ver), "too long"));
		tool_call(f, ver, sid, "request_approval", long_reason);
		assert_non_null(strstr(expect_arg_error(f, ver), "too long"));
		tool_call(f, ver, sid, "report_step", big_detail);
		assert_non_null(strstr(expect_arg_error(f, ver), "too large"));
		/* none of it reached a hook */
		assert_int_equal(f->calls, before);

		/* protocol errors in every version: -32602 */
		static const char *const protocol[] = {
			"\"params\":{\"name\":\"grant\",\"arguments\":{}}",
			"\"params\":{\"name\":\"set_secret\",\"arguments\":{}}",
			"\"params\":{\"name\":\"approve\",\"arguments\":{}}",
			"\"params\":{\"name\":\"Log\",\"arguments\":{}}",
			"\"params\":{\"arguments\":{}}",
			"\"params\":{\"name\":5}",
			"\"params\":{\"name\":\"log\",\"arguments\":[]}",
			"\"params\":{\"name\":\"log\",\"arguments\":\"level=info\"}",
			"\"params\":{\"name\":\"log\",\"arguments\":{},\"task\":{}}",
			"\"params\":{\"name\":\"log\",\"arguments\":{},\"requestState\":\"x\"}",
		};
		for (size_t i = 0; i < CDN_ARRAY_SIZE(protocol); i++) {
			if (stateless_version(ver)) {
				/* Mcp-Name only when the body has a string name */
				const char *nm = strstr(protocol[i], "\"name\":\"");
				char name[32] = "";
				if (nm)
					sscanf(nm + 8, "%31[^\"]", name);
				char body[512];
				snprintf(body, sizeof(body), "%s", protocol[i]);
				body[strlen(body) - 1] = '\0';
				post(f,
				     &(struct hdr){ .session = sid,
						    .version = ver,
						    .method = "tools/call",
						    .name = name[0] ? name : "x" },
				     "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/"
				     "call\",%s," META_FMT "}}",
				     body, ver);
			} else {
				post(f, &(struct hdr){ .session = sid, .version = ver },
				     "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",%s}",
				     protocol[i]);
			}
			expect_error(f, 200, MCP_ERR_INVALID_PARAMS);
		}
		if (!stateless_version(ver)) {
			post(f, &(struct hdr){ .session = sid },
			     "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\"}");
			expect_error(f, 200, MCP_ERR_INVALID_PARAMS);
		}
	}
}

static void test_tool_hook_failures(void **state)
{
	struct fx *f = *state;
	static const struct {
		const char *tool, *args;
	} calls[] = {
		{ "report_step", "{\"name\":\"s\"}" },
		{ "save_artifact", "{\"name\":\"a\",\"content\":\"x\"}" },
		{ "request_approval", "{\"action\":\"a\",\"reason\":\"r\"}" },
		{ "get_input", "{}" },
		{ "log", "{\"level\":\"info\",\"message\":\"m\"}" },
	};
	for (size_t v = 0; v < CDN_ARRAY_SIZE(all_versions); v++) {
		char sid[MCP_SESSION_ID_LEN + 1];
		open_session(f, all_versions[v], sid);
		f->fail = true;
		for (size_t i = 0; i < CDN_ARRAY_SIZE(calls); i++) {
			f->fail_msg = "artifact limit reached";
			tool_call(f, all_versions[v], sid, calls[i].tool, calls[i].args);
			const char *t = tool_text(expect_tool(f, true));
			assert_non_null(strstr(t, "artifact limit reached"));
			assert_non_null(strstr(t, calls[i].tool));
			/* a message that cannot go into JSON is replaced */
			f->fail_msg = "bad \xff bytes";
			tool_call(f, all_versions[v], sid, calls[i].tool, calls[i].args);
			t = tool_text(expect_tool(f, true));
			assert_null(strstr(t, "bad"));
			assert_non_null(strstr(t, "failed"));
		}
		f->fail = false;
	}
	/* get_input: what the hook hands back must be an object */
	char sid[MCP_SESSION_ID_LEN + 1];
	open_session(f, V1125, sid);
	static const char *const inputs[] = { "[1]", "\"x\"", "{", "{\"a\":1,\"a\":2}", "" };
	for (size_t i = 0; i < CDN_ARRAY_SIZE(inputs); i++) {
		f->input = inputs[i];
		tool_call(f, V1125, sid, "get_input", "{}");
		expect_tool(f, true);
	}
	f->input = "{}";
	tool_call(f, V1125, sid, "get_input", "{}");
	expect_tool(f, false);
}

static void test_artifact_limits(void **state)
{
	struct fx *f = *state;
	/* a small configured maximum, to test both encodings at the edge */
	mcp_server_free(f->s);
	struct mcp_config cfg = { .max_artifact = 6 };
	new_server(f, &cfg);
	for (size_t v = 0; v < CDN_ARRAY_SIZE(all_versions); v++) {
		const char *ver = all_versions[v];
		char sid[MCP_SESSION_ID_LEN + 1];
		open_session(f, ver, sid);
		tool_call(f, ver, sid, "save_artifact", "{\"name\":\"a\",\"content\":\"123456\"}");
		expect_tool(f, false);
		tool_call(f, ver, sid, "save_artifact", "{\"name\":\"a\",\"content\":\"1234567\"}");
		assert_non_null(strstr(expect_arg_error(f, ver), "too large"));
		/* bytes, not characters: three two-byte characters fit, four do not */
		tool_call(f, ver, sid, "save_artifact",
			  "{\"name\":\"a\",\"content\":\"\\u00e9\\u00e9\\u00e9\"}");
		expect_tool(f, false);
		tool_call(f, ver, sid, "save_artifact",
			  "{\"name\":\"a\",\"content\":\"\\u00e9\\u00e9\\u00e9\\u00e9\"}");
		assert_non_null(strstr(expect_arg_error(f, ver), "too large"));
		tool_call(f, ver, sid, "save_artifact",
			  "{\"name\":\"b\",\"content\":\"MTIzNDU2\",\"encoding\":\"base64\"}");
		expect_tool(f, false);
		assert_int_equal(f->artifact_len, 6);
		tool_call(f, ver, sid, "save_artifact",
			  "{\"name\":\"b\",\"content\":\"MTIzNDU2Nw==\",\"encoding\":\"base64\"}");
		assert_non_null(strstr(expect_arg_error(f, ver), "too large"));
		/* the longest accepted name */
		char args[256];
		snprintf(args, sizeof(args), "{\"name\":\"%0*d\",\"content\":\"x\"}",
			 MCP_MAX_ARTIFACT_NAME, 0);
		tool_call(f, ver, sid, "save_artifact", args);
		expect_tool(f, false);
		snprintf(args, sizeof(args), "{\"name\":\"%0*d\",\"content\":\"x\"}",
			 MCP_MAX_ARTIFACT_NAME + 1, 0);
		tool_call(f, ver, sid, "save_artifact", args);
		expect_arg_error(f, ver);
	}
	/* the schema says the limit */
	char sid[MCP_SESSION_ID_LEN + 1];
	open_session(f, V1125, sid);
	post_tools_list(f, V1125, sid, NULL);
	assert_non_null(strstr(f->resp.body, "at most 6 bytes once decoded"));
	struct mcp_server *s = NULL;
	struct cdn_err err = { 0 };
	struct mcp_hooks h = hooks_template;
	struct mcp_config too_big = { .max_artifact = MCP_MAX_BODY + 1 };
	assert_int_equal(mcp_server_new(&too_big, &h, &s, &err), -EINVAL);
}

static void test_text_limits(void **state)
{
	struct fx *f = *state;
	char sid[MCP_SESSION_ID_LEN + 1];
	open_session(f, V1125, sid);
	/* limits count characters: MCP_MAX_STEP_NAME four-byte characters fit */
	size_t cap = MCP_MAX_STEP_NAME * 12 + 32;
	char *args = malloc(cap);
	size_t n = (size_t)snprintf(args, cap, "{\"name\":\"");
	for (int i = 0; i < MCP_MAX_STEP_NAME; i++)
		n += (size_t)snprintf(args + n, cap - n, "\\ud83d\\ude00");
	snprintf(args + n, cap - n, "\"}");
	tool_call(f, V1125, sid, "report_step", args);
	expect_tool(f, false);
	assert_int_equal(strlen(f->step_name), MCP_MAX_STEP_NAME * 4);
	n = (size_t)snprintf(args, cap, "{\"name\":\"x");
	for (int i = 0; i < MCP_MAX_STEP_NAME; i++)
		n += (size_t)snprintf(args + n, cap - n, "\\ud83d\\ude00");
	snprintf(args + n, cap - n, "\"}");
	tool_call(f, V1125, sid, "report_step", args);
	assert_non_null(strstr(expect_arg_error(f, V1125), "too long"));
	free(args);
	/* ordinary non-ASCII text passes */
	tool_call(f, V1125, sid, "report_step", "{\"name\":\"r\\u00e9sum\\u00e9 \\u4e2d\\u6587\"}");
	expect_tool(f, false);
	assert_string_equal(f->step_name, "r\xc3\xa9sum\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87");
}

/* ---------------------------------------------------------------------------
 * Approvals decided later
 */

static json_t *completed_json(struct fx *f, size_t i)
{
	assert_true(i < f->n_completed);
	assert_int_equal(f->completed[i].status, 200);
	return json_loads(f->completed[i].body, 0, NULL);
}

static void test_approval_later(void **state)
{
	struct fx *f = *state;
	for (size_t v = 0; v < CDN_ARRAY_SIZE(all_versions); v++) {
		const char *ver = all_versions[v];
		char sid[MCP_SESSION_ID_LEN + 1];
		open_session(f, ver, sid);
		f->n_approvals = 0;
		size_t done0 = f->n_completed;
		tool_call(f, ver, sid, "request_approval",
			  "{\"action\":\"deploy\",\"reason\":\"release\"}");
		assert_int_equal(f->rc, MCP_PENDING);
		assert_int_equal(f->resp.status, 0);
		assert_non_null(f->pending);
		assert_int_equal(f->n_approvals, 1);
		assert_ptr_equal(f->approvals[0], f->pending);
		/* other calls go on meanwhile */
		tool_call(f, ver, sid, "log", "{\"level\":\"info\",\"message\":\"waiting\"}");
		expect_tool(f, false);
		assert_int_equal(f->n_completed, done0);
		struct mcp_approval d = { .approved = true };
		snprintf(d.id, sizeof(d.id), "ap-7");
		snprintf(d.note, sizeof(d.note), "ok by alice");
		mcp_approval_decide(f->approvals[0], &d);
		assert_int_equal(f->n_completed, done0 + 1);
		json_t *j = completed_json(f, done0);
		assert_int_equal(json_integer_value(json_object_get(j, "id")), 7);
		json_t *res = json_object_get(j, "result");
		json_t *sc = json_object_get(res, "structuredContent");
		assert_string_equal(json_string_value(json_object_get(sc, "decision")), "approved");
		assert_string_equal(json_string_value(json_object_get(sc, "approval_id")), "ap-7");
		assert_string_equal(json_string_value(json_object_get(sc, "note")), "ok by alice");
		assert_true(json_is_false(json_object_get(res, "isError")));
		if (stateless_version(ver))
			assert_string_equal(json_string_value(json_object_get(res, "resultType")),
					    "complete");
		json_decref(j);
	}
	assert_int_equal(f->cancels, 0);
}

static void test_approval_cancel_and_abort(void **state)
{
	struct fx *f = *state;
	char sid[MCP_SESSION_ID_LEN + 1];
	open_session(f, V1125, sid);
	/* the transport lost its client */
	tool_call(f, V1125, sid, "request_approval", "{\"action\":\"a\",\"reason\":\"r\"}");
	assert_int_equal(f->rc, MCP_PENDING);
	mcp_pending_cancel(f->pending);
	assert_int_equal(f->cancels, 1);
	assert_null(f->approvals[0]);
	assert_int_equal(f->n_completed, 0);
	mcp_pending_cancel(NULL);

	/* bounded: MCP_MAX_PENDING wait at once */
	f->n_approvals = 0;
	for (int i = 0; i < MCP_MAX_PENDING; i++) {
		tool_call(f, V1125, sid, "request_approval", "{\"action\":\"a\",\"reason\":\"r\"}");
		assert_int_equal(f->rc, MCP_PENDING);
	}
	tool_call(f, V1125, sid, "request_approval", "{\"action\":\"a\",\"reason\":\"r\"}");
	assert_non_null(strstr(tool_text(expect_tool(f, true)), "too many"));
	/* the phase ends: every one is answered, and cancelled on the
	 * embedder's side */
	mcp_phase_end(f->s, MCP_PHASE_RUN);
	assert_int_equal(f->cancels, 1 + MCP_MAX_PENDING);
	assert_int_equal(f->n_completed, MCP_MAX_PENDING);
	for (size_t i = 0; i < f->n_completed; i++) {
		json_t *j = completed_json(f, i);
		json_t *res = json_object_get(j, "result");
		assert_true(json_is_true(json_object_get(res, "isError")));
		assert_non_null(
		    strstr(json_string_value(json_object_get(
			       json_array_get(json_object_get(res, "content"), 0), "text")),
			   "phase ended"));
		json_decref(j);
	}
	assert_true(audit_has(f, "mcp.phase_ended", "16 approvals aborted"));
}

static void test_approval_server_free(void **state)
{
	struct fx *f = *state;
	char sid[MCP_SESSION_ID_LEN + 1];
	open_session(f, V0728, sid);
	tool_call(f, V0728, sid, "request_approval", "{\"action\":\"a\",\"reason\":\"r\"}");
	assert_int_equal(f->rc, MCP_PENDING);
	/* teardown frees the server: the call is answered then */
	mcp_server_free(f->s);
	f->s = NULL;
	assert_int_equal(f->cancels, 1);
	assert_int_equal(f->n_completed, 1);
	assert_non_null(strstr(f->completed[0].body, "closing"));
	assert_non_null(strstr(f->completed[0].body, "\"resultType\":\"complete\""));
}

static void test_approval_without_completion(void **state)
{
	struct fx *f = *state;
	char sid[MCP_SESSION_ID_LEN + 1];
	open_session(f, V1125, sid);
	/* a transport that cannot complete later: the decision must come now */
	struct mcp_request req = {
		.body = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{"
			"\"name\":\"request_approval\",\"arguments\":{\"action\":\"a\",\"reason\":"
			"\"r\"}}}",
		.session_id = sid,
	};
	req.body_len = strlen(req.body);
	reset(f);
	assert_int_equal(mcp_handle(f->s, &req, &f->resp, NULL), 0);
	assert_non_null(strstr(f->resp.body, "cannot wait"));
	assert_int_equal(f->cancels, 1);
	mcp_response_free(&f->resp);
	f->decide_inline = true;
	assert_int_equal(mcp_handle(f->s, &req, &f->resp, NULL), 0);
	assert_non_null(strstr(f->resp.body, "\"decision\":\"denied\""));
	/* a stateless first call that waits announces its new session when
	 * it completes */
	f->decide_inline = false;
	char tok[MCP_TOKEN_LEN + 1], auth[MCP_TOKEN_LEN + 16];
	issue(f, MCP_PHASE_RUN, 60000, tok);
	bearer(auth, tok);
	post(f,
	     &(struct hdr){ .auth = auth,
			    .version = V0728,
			    .method = "tools/call",
			    .name = "request_approval" },
	     "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":"
	     "\"request_approval\",\"arguments\":{\"action\":\"a\",\"reason\":\"r\"}," META_FMT
	     "}}",
	     V0728);
	assert_int_equal(f->rc, MCP_PENDING);
	struct mcp_approval d = { .approved = false };
	mcp_approval_decide(f->pending, &d);
	assert_int_equal(f->n_completed, 1);
	const char *h = header(&f->completed[0], "Mcp-Session-Id");
	assert_non_null(h);
	remember_secret(f, h);
	char newsid[MCP_SESSION_ID_LEN + 1];
	snprintf(newsid, sizeof(newsid), "%s", h);
	post_tools_list(f, V0728, newsid, NULL);
	expect_result(f);
}

/* ---------------------------------------------------------------------------
 * SSE streams: a waiting call's answer, progress, resumption, GET streams
 */

#define SSE_ACCEPT "application/json, text/event-stream"

/* request_approval with a progressToken (NULL: none), answered on conn
 * when the client takes a stream. */
static void approval_call(struct fx *f, const char *v, const char *sid, int conn,
			  const char *accept, const char *progress, int id)
{
	char meta[512];
	if (stateless_version(v))
		snprintf(meta, sizeof(meta),
			 ",\"_meta\":{%s%s%s\"io.modelcontextprotocol/protocolVersion\":\"%s\","
			 "\"io.modelcontextprotocol/clientCapabilities\":{}}",
			 progress ? "\"progressToken\":\"" : "", progress ? progress : "",
			 progress ? "\"," : "", v);
	else if (progress)
		snprintf(meta, sizeof(meta), ",\"_meta\":{\"progressToken\":\"%s\"}", progress);
	else
		meta[0] = '\0';
	post(f,
	     &(struct hdr){ .session = sid,
			    .version = v,
			    .method = stateless_version(v) ? "tools/call" : NULL,
			    .name = stateless_version(v) ? "request_approval" : NULL,
			    .accept = accept,
			    .conn = conn },
	     "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\",\"params\":{\"name\":"
	     "\"request_approval\",\"arguments\":{\"action\":\"deploy\",\"reason\":\"r\"}%s}}",
	     id, meta);
}

/* The events of an SSE text: their ids ("" when none) and data. */
struct sse_ev {
	char id[40];
	char data[4096];
};

static size_t sse_parse(const char *text, struct sse_ev *evs, size_t max)
{
	size_t n = 0;
	const char *p = text ? text : "";
	while (*p && n < max) {
		const char *end = strstr(p, "\n\n");
		assert_non_null(end); /* whole events only */
		memset(&evs[n], 0, sizeof(evs[n]));
		bool comment = true;
		for (const char *l = p; l < end;) {
			const char *nl = memchr(l, '\n', (size_t)(end - l));
			size_t ll = nl ? (size_t)(nl - l) : (size_t)(end - l);
			if (ll >= 4 && strncmp(l, "id: ", 4) == 0) {
				snprintf(evs[n].id, sizeof(evs[n].id), "%.*s", (int)ll - 4, l + 4);
				comment = false;
			} else if (ll >= 5 && strncmp(l, "data:", 5) == 0) {
				size_t skip = ll > 5 && l[5] == ' ' ? 6 : 5;
				snprintf(evs[n].data, sizeof(evs[n].data), "%.*s", (int)(ll - skip),
					 l + skip);
				comment = false;
			} else {
				assert_int_equal(l[0], ':'); /* nothing else is sent */
			}
			l += ll + 1;
		}
		if (!comment)
			n++;
		p = end + 2;
	}
	return n;
}

static void do_get(struct fx *f, const char *sid, const char *version, const char *accept,
		   const char *last_event_id, int conn)
{
	reset(f);
	struct mcp_get g = { .session_id = sid,
			     .protocol_version = version,
			     .accept = accept,
			     .last_event_id = last_event_id,
			     .sink = sink_of(f, conn) };
	f->rc = mcp_handle_get(f->s, &g, &f->resp);
	check_no_secret(f, f->resp.body);
	const char *ct = header(&f->resp, "Content-Type");
	if (f->rc == 0 && ct && strcmp(ct, "application/json") == 0)
		f->j = json_loads(f->resp.body, 0, NULL);
}

static void test_stream_answer(void **state)
{
	struct fx *f = *state;
	struct mcp_config cfg = { .progress_interval_ms = 500, .approval_timeout_ms = 10000 };
	mcp_server_free(f->s);
	new_server(f, &cfg);
	static const char *const hs[] = { V0326, V0618, V1125 };
	for (size_t v = 0; v < CDN_ARRAY_SIZE(hs); v++) {
		char sid[MCP_SESSION_ID_LEN + 1];
		open_session(f, hs[v], sid);
		conn_reset(f, 1);
		f->n_approvals = 0;
		approval_call(f, hs[v], sid, 1, SSE_ACCEPT, "pt-1", 7);
		assert_int_equal(f->rc, MCP_STREAM);
		assert_int_equal(f->n_approvals, 1);
		assert_string_equal(header(&f->resp, "Cache-Control"), "no-store");
		assert_string_equal(header(&f->resp, "X-Accel-Buffering"), "no");
		/* a priming event: an id to resume from, no data */
		struct sse_ev ev[8];
		assert_int_equal(sse_parse(f->resp.body, ev, 8), 1);
		assert_string_equal(ev[0].data, "");
		char stream[16];
		snprintf(stream, sizeof(stream), "%.*s", (int)strcspn(ev[0].id, "-"), ev[0].id);
		char want[40];
		snprintf(want, sizeof(want), "%s-1", stream);
		assert_string_equal(ev[0].id, want);
		/* progress when due, not before */
		f->now += 499;
		assert_int_equal(mcp_server_tick(f->s), 1);
		assert_int_equal(f->conns[0].len, 0);
		f->now += 1;
		assert_int_equal(mcp_server_tick(f->s), 500);
		f->now += 500;
		assert_int_equal(mcp_server_tick(f->s), 500);
		assert_int_equal(sse_parse(f->conns[0].buf, ev, 8), 2);
		snprintf(want, sizeof(want), "%s-3", stream);
		assert_string_equal(ev[1].id, want);
		json_auto_t *pj = json_loads(ev[1].data, 0, NULL);
		assert_string_equal(json_string_value(json_object_get(pj, "method")),
				    "notifications/progress");
		assert_null(json_object_get(pj, "id"));
		json_t *pp = json_object_get(pj, "params");
		assert_string_equal(json_string_value(json_object_get(pp, "progressToken")), "pt-1");
		assert_int_equal(json_integer_value(json_object_get(pp, "progress")), 1000);
		assert_int_equal(json_integer_value(json_object_get(pp, "total")), 10000);
		assert_non_null(strstr(json_string_value(json_object_get(pp, "message")),
				       "1 s of at most 10 s"));
		/* the decision: the answer, then the end */
		struct mcp_approval d = { .approved = true };
		mcp_approval_decide(f->approvals[0], &d);
		assert_int_equal(f->n_completed, 0);
		assert_int_equal(f->conns[0].ends, 1);
		assert_int_equal(sse_parse(f->conns[0].buf, ev, 8), 3);
		snprintf(want, sizeof(want), "%s-4", stream);
		assert_string_equal(ev[2].id, want);
		json_auto_t *fj = json_loads(ev[2].data, 0, NULL);
		assert_int_equal(json_integer_value(json_object_get(fj, "id")), 7);
		assert_string_equal(
		    json_string_value(json_object_get(
			json_object_get(json_object_get(fj, "result"), "structuredContent"),
			"decision")),
		    "approved");
		assert_int_equal(mcp_server_tick(f->s), 0);
		/* a client that lost it gets it again (GET, Last-Event-ID) */
		snprintf(want, sizeof(want), "%s-3", stream);
		do_get(f, sid, NULL, "text/event-stream", want, 2);
		assert_int_equal(f->rc, 0);
		assert_int_equal(f->resp.status, 200);
		assert_string_equal(header(&f->resp, "Content-Type"), "text/event-stream");
		assert_int_equal(sse_parse(f->resp.body, ev, 8), 1);
		snprintf(want, sizeof(want), "%s-4", stream);
		assert_string_equal(ev[0].id, want);
		/* one that saw it gets nothing more */
		do_get(f, sid, NULL, "text/event-stream", want, 2);
		assert_int_equal(f->rc, 0);
		assert_int_equal(f->resp.status, 200);
		assert_null(f->resp.body);
	}
	assert_int_equal(f->cancels, 0);
}

static void test_stream_resume(void **state)
{
	struct fx *f = *state;
	char sid[MCP_SESSION_ID_LEN + 1], id[40];
	struct sse_ev ev[8];
	open_session(f, V1125, sid);
	conn_reset(f, 1);
	approval_call(f, V1125, sid, 1, SSE_ACCEPT, NULL, 9);
	assert_int_equal(f->rc, MCP_STREAM);
	struct mcp_stream *st = f->resp.stream;
	assert_int_equal(sse_parse(f->resp.body, ev, 8), 1);
	snprintf(id, sizeof(id), "%s", ev[0].id);
	/* without a progressToken: a keep-alive comment now and then */
	f->now += MCP_KEEPALIVE_MS;
	assert_int_equal(mcp_server_tick(f->s), MCP_KEEPALIVE_MS);
	assert_string_equal(f->conns[0].buf, ": keep-alive\n\n");
	/* the connection drops: the call waits on */
	mcp_stream_detach(st);
	assert_int_equal(f->cancels, 0);
	assert_int_equal(f->conns[0].ends, 0);
	assert_int_equal(mcp_server_tick(f->s), 0); /* nothing to keep alive */
	/* another connection takes the stream up */
	conn_reset(f, 2);
	do_get(f, sid, V1125, "text/event-stream", id, 2);
	assert_int_equal(f->rc, MCP_STREAM);
	assert_ptr_equal(f->resp.stream, st);
	assert_null(f->resp.body);
	/* and a third takes it from the second, which ends */
	conn_reset(f, 3);
	do_get(f, sid, NULL, "text/event-stream", id, 3);
	assert_int_equal(f->rc, MCP_STREAM);
	assert_int_equal(f->conns[1].ends, 1);
	assert_int_equal(f->conns[1].len, 0);
	struct mcp_approval d = { .approved = false };
	mcp_approval_decide(f->approvals[0], &d);
	assert_int_equal(f->conns[2].ends, 1);
	assert_int_equal(sse_parse(f->conns[2].buf, ev, 8), 1);
	assert_non_null(strstr(ev[0].data, "\"decision\":\"denied\""));
	assert_non_null(strstr(ev[0].data, "\"id\":9"));
	/* the first connection heard nothing after its drop */
	assert_string_equal(f->conns[0].buf, ": keep-alive\n\n");
	assert_int_equal(f->cancels, 0);
}

static void test_stream_stateless(void **state)
{
	struct fx *f = *state;
	char sid[MCP_SESSION_ID_LEN + 1];
	struct sse_ev ev[8];
	open_session(f, V0728, sid);
	/* progress, but no ids: 2026-07-28 has no resumption */
	conn_reset(f, 1);
	f->n_approvals = 0;
	approval_call(f, V0728, sid, 1, SSE_ACCEPT, "p", 3);
	assert_int_equal(f->rc, MCP_STREAM);
	assert_null(f->resp.body);
	f->now += MCP_DEFAULT_PROGRESS_MS;
	mcp_server_tick(f->s);
	assert_int_equal(sse_parse(f->conns[0].buf, ev, 8), 1);
	assert_string_equal(ev[0].id, "");
	assert_non_null(strstr(ev[0].data, "notifications/progress"));
	struct mcp_approval d = { .approved = true };
	mcp_approval_decide(f->approvals[0], &d);
	assert_int_equal(sse_parse(f->conns[0].buf, ev, 8), 2);
	json_auto_t *j = json_loads(ev[1].data, 0, NULL);
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(j, "result"), "resultType")),
	    "complete");
	assert_int_equal(f->conns[0].ends, 1);
	/* closing the stream cancels the call, as that revision says */
	conn_reset(f, 1);
	f->n_approvals = 0;
	approval_call(f, V0728, sid, 1, SSE_ACCEPT, NULL, 4);
	assert_int_equal(f->rc, MCP_STREAM);
	mcp_stream_detach(f->resp.stream);
	assert_int_equal(f->cancels, 1);
	assert_string_equal(f->cancel_why, "the client closed the stream");
	assert_null(f->approvals[0]);
	assert_int_equal(f->conns[0].ends, 0);
	/* and its session has no GET stream */
	do_get(f, sid, NULL, "text/event-stream", NULL, 2);
	expect_error(f, 405, MCP_ERR_INVALID_REQUEST);
	assert_string_equal(header(&f->resp, "Allow"), "POST");
}

static void test_stream_accept(void **state)
{
	struct fx *f = *state;
	static const struct {
		const char *accept;
		int conn;
		int rc;
	} cases[] = {
		{ NULL, 1, MCP_PENDING },
		{ "application/json", 1, MCP_PENDING },
		{ "*/*", 1, MCP_PENDING },
		{ "text/*", 1, MCP_PENDING },
		{ "text/event-stream;q=0", 1, MCP_PENDING },
		{ "application/json, text/event-stream; q=0.000", 1, MCP_PENDING },
		{ "text/event-streams", 1, MCP_PENDING },
		{ SSE_ACCEPT, 0, MCP_PENDING }, /* the transport has no stream */
		{ "Text/Event-Stream", 1, MCP_STREAM },
		{ "application/json;q=0.9,text/event-stream;q=0.5", 1, MCP_STREAM },
		{ " text/event-stream ; charset=utf-8", 1, MCP_STREAM },
		{ "text/event-stream;q=0.01", 1, MCP_STREAM },
	};
	char sid[MCP_SESSION_ID_LEN + 1];
	open_session(f, V1125, sid);
	for (size_t i = 0; i < CDN_ARRAY_SIZE(cases); i++) {
		conn_reset(f, 1);
		f->n_approvals = 0;
		approval_call(f, V1125, sid, cases[i].conn, cases[i].accept, NULL, 1);
		if (f->rc != cases[i].rc)
			fail_msg("Accept \"%s\": %d, expected %d", cases[i].accept ? cases[i].accept : "",
				 f->rc, cases[i].rc);
		struct mcp_approval d = { .approved = true };
		mcp_approval_decide(f->approvals[0], &d);
	}
	assert_int_equal(f->cancels, 0);
}

static void test_get_stream(void **state)
{
	struct fx *f = *state;
	char sid[MCP_SESSION_ID_LEN + 1], stateless[MCP_SESSION_ID_LEN + 1], id[40];
	struct sse_ev ev[8];
	open_session(f, V1125, sid);
	open_session(f, V0728, stateless);
	/* refusals */
	do_get(f, sid, NULL, "application/json", NULL, 1);
	expect_error(f, 406, MCP_ERR_INVALID_REQUEST);
	do_get(f, sid, NULL, NULL, NULL, 1);
	expect_error(f, 406, MCP_ERR_INVALID_REQUEST);
	do_get(f, NULL, NULL, "text/event-stream", NULL, 1);
	expect_error(f, 400, MCP_ERR_SESSION_REQUIRED);
	f->n_audit = 0;
	do_get(f, "cdn_mcps_nope", NULL, "text/event-stream", NULL, 1);
	expect_error(f, 404, MCP_ERR_SESSION_UNKNOWN);
	assert_true(audit_has(f, "mcp.session_refused", "GET"));
	do_get(f, sid, "2099-01-01", "text/event-stream", NULL, 1);
	expect_error(f, 400, MCP_ERR_UNSUPPORTED_VERSION);
	do_get(f, sid, V0728, "text/event-stream", NULL, 1);
	expect_error(f, 405, MCP_ERR_INVALID_REQUEST);
	do_get(f, sid, V0618, "text/event-stream", NULL, 1);
	expect_error(f, 400, MCP_ERR_INVALID_REQUEST);
	do_get(f, stateless, NULL, "text/event-stream", NULL, 1);
	expect_error(f, 405, MCP_ERR_INVALID_REQUEST);
	/* a transport without streams */
	do_get(f, sid, NULL, "text/event-stream", NULL, 0);
	expect_error(f, 405, MCP_ERR_INVALID_REQUEST);

	/* the session's stream: primed, kept alive, one at a time */
	conn_reset(f, 1);
	do_get(f, sid, V1125, "text/event-stream", NULL, 1);
	assert_int_equal(f->rc, MCP_STREAM);
	struct mcp_stream *st = f->resp.stream;
	assert_int_equal(sse_parse(f->resp.body, ev, 8), 1);
	assert_string_equal(ev[0].data, "");
	do_get(f, sid, NULL, "text/event-stream", NULL, 2);
	expect_error(f, 409, MCP_ERR_INVALID_REQUEST);
	f->now += MCP_KEEPALIVE_MS;
	mcp_server_tick(f->s);
	assert_string_equal(f->conns[0].buf, ": keep-alive\n\n");
	/* dropped, then opened again: the same stream, primed anew */
	mcp_stream_detach(st);
	conn_reset(f, 2);
	do_get(f, sid, NULL, "text/event-stream", NULL, 2);
	assert_int_equal(f->rc, MCP_STREAM);
	assert_ptr_equal(f->resp.stream, st);
	assert_int_equal(sse_parse(f->resp.body, ev, 8), 1);
	snprintf(id, sizeof(id), "%s", ev[0].id);
	/* resumed from its last event by another connection, which takes it */
	conn_reset(f, 3);
	do_get(f, sid, NULL, "text/event-stream", id, 3);
	assert_int_equal(f->rc, MCP_STREAM);
	assert_int_equal(f->conns[1].ends, 1);
	assert_int_equal(sse_parse(f->resp.body, ev, 8), 1);
	assert_string_not_equal(ev[0].id, id);
	/* the phase ends: so do its streams, and nothing resumes them */
	assert_int_equal(f->conns[2].ends, 0);
	mcp_phase_end(f->s, MCP_PHASE_RUN);
	assert_int_equal(f->conns[2].ends, 1);
	do_get(f, sid, NULL, "text/event-stream", ev[0].id, 1);
	expect_error(f, 404, MCP_ERR_SESSION_UNKNOWN);
	assert_int_equal(mcp_server_tick(f->s), 0);
}

static void test_last_event_id_refused(void **state)
{
	struct fx *f = *state;
	char sid[MCP_SESSION_ID_LEN + 1], other[MCP_SESSION_ID_LEN + 1], id[40], big[40];
	struct sse_ev ev[8];
	open_session(f, V1125, sid);
	open_session(f, V1125, other);
	conn_reset(f, 1);
	approval_call(f, V1125, sid, 1, SSE_ACCEPT, NULL, 1);
	assert_int_equal(f->rc, MCP_STREAM);
	assert_int_equal(sse_parse(f->resp.body, ev, 8), 1);
	snprintf(id, sizeof(id), "%s", ev[0].id);
	unsigned serial = (unsigned)strtoul(id, NULL, 10);
	char beyond[40], zero_seq[40], lead[40];
	snprintf(beyond, sizeof(beyond), "%u-2", serial); /* past what was sent */
	snprintf(zero_seq, sizeof(zero_seq), "%u-01", serial);
	snprintf(lead, sizeof(lead), "0%u-1", serial);
	memset(big, '1', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	big[3] = '-';
	const char *const bad[] = { "",	    "x",      "1",	 "1-",	 "-1",	     "1-2-3",
				    "+1-1", "1 -1",   " 1-1",	 "0-1",	 "4294967296-1", big,
				    beyond, zero_seq, lead,	 "99-1", "1-1\r\nX: y" };
	for (size_t i = 0; i < CDN_ARRAY_SIZE(bad); i++) {
		do_get(f, sid, NULL, "text/event-stream", bad[i], 2);
		if (f->rc != 0 || f->resp.status != 400)
			fail_msg("Last-Event-ID \"%s\": %d %d", bad[i], f->rc, f->resp.status);
		expect_error(f, 400, MCP_ERR_INVALID_REQUEST);
	}
	/* another session cannot take this one's stream */
	do_get(f, other, NULL, "text/event-stream", id, 2);
	expect_error(f, 400, MCP_ERR_INVALID_REQUEST);
	assert_int_equal(f->conns[0].ends, 0);
	struct mcp_approval d = { .approved = true };
	mcp_approval_decide(f->approvals[0], &d);
	assert_int_equal(f->conns[0].ends, 1);
}

static void test_cancelled_notification(void **state)
{
	struct fx *f = *state;
	char sid[MCP_SESSION_ID_LEN + 1], other[MCP_SESSION_ID_LEN + 1];
	open_session(f, V1125, sid);
	open_session(f, V1125, other);
	/* a call answered as JSON: its response is a tool error */
	f->n_approvals = 0;
	approval_call(f, V1125, sid, 0, NULL, NULL, 41);
	assert_int_equal(f->rc, MCP_PENDING);
	/* another session's cancellation, an unknown id, a bad id: ignored */
	post(f, &(struct hdr){ .session = other },
	     "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":41}}");
	assert_int_equal(f->resp.status, 202);
	post(f, &(struct hdr){ .session = sid },
	     "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":42}}");
	post(f, &(struct hdr){ .session = sid },
	     "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":\"41\"}}");
	post(f, &(struct hdr){ .session = sid },
	     "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":[41]}}");
	assert_int_equal(f->resp.status, 202);
	assert_int_equal(f->cancels, 0);
	post(f, &(struct hdr){ .session = sid },
	     "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":41,"
	     "\"reason\":\"timed out\"}}");
	assert_int_equal(f->resp.status, 202);
	assert_int_equal(f->cancels, 1);
	assert_string_equal(f->cancel_why, "the client cancelled the call");
	assert_int_equal(f->n_completed, 1);
	json_auto_t *j = completed_json(f, 0);
	assert_int_equal(json_integer_value(json_object_get(j, "id")), 41);
	assert_true(json_is_true(json_object_get(json_object_get(j, "result"), "isError")));
	/* a call answered as a stream: the stream ends without an answer, and
	 * cannot be resumed */
	struct sse_ev ev[8];
	conn_reset(f, 1);
	approval_call(f, V1125, sid, 1, SSE_ACCEPT, NULL, 43);
	assert_int_equal(f->rc, MCP_STREAM);
	assert_int_equal(sse_parse(f->resp.body, ev, 8), 1);
	char id[40];
	snprintf(id, sizeof(id), "%s", ev[0].id);
	post(f, &(struct hdr){ .session = sid },
	     "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":43}}");
	assert_int_equal(f->cancels, 2);
	assert_int_equal(f->conns[0].ends, 1);
	assert_int_equal(f->conns[0].len, 0);
	do_get(f, sid, NULL, "text/event-stream", id, 2);
	expect_error(f, 400, MCP_ERR_INVALID_REQUEST);
}

static void test_stream_phase_end_and_free(void **state)
{
	struct fx *f = *state;
	char sid[MCP_SESSION_ID_LEN + 1];
	struct sse_ev ev[8];
	open_session(f, V1125, sid);
	conn_reset(f, 1);
	approval_call(f, V1125, sid, 1, SSE_ACCEPT, "t", 5);
	assert_int_equal(f->rc, MCP_STREAM);
	conn_reset(f, 2);
	do_get(f, sid, NULL, "text/event-stream", NULL, 2);
	assert_int_equal(f->rc, MCP_STREAM);
	/* the phase ends: the call is answered (no decision), both end */
	mcp_phase_end(f->s, MCP_PHASE_RUN);
	assert_int_equal(f->cancels, 1);
	assert_string_equal(f->cancel_why, "the phase ended");
	assert_int_equal(sse_parse(f->conns[0].buf, ev, 8), 1);
	assert_non_null(strstr(ev[0].data, "no decision: the phase ended"));
	assert_int_equal(f->conns[0].ends, 1);
	assert_int_equal(f->conns[1].ends, 1);
	assert_int_equal(mcp_server_tick(f->s), 0);
	/* freeing the server ends what is open */
	struct cdn_err err = { 0 };
	assert_int_equal(mcp_phase_begin(f->s, MCP_PHASE_UPLOAD, &err), 0);
	char tok[MCP_TOKEN_LEN + 1], auth[MCP_TOKEN_LEN + 16];
	issue(f, MCP_PHASE_UPLOAD, 60000, tok);
	bearer(auth, tok);
	post_initialize(f, auth, V1125);
	snprintf(sid, sizeof(sid), "%s", header(&f->resp, "Mcp-Session-Id"));
	conn_reset(f, 3);
	post(f, &(struct hdr){ .session = sid, .accept = SSE_ACCEPT, .conn = 3 },
	     "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"tools/call\",\"params\":{\"name\":"
	     "\"request_approval\",\"arguments\":{\"action\":\"a\",\"reason\":\"r\"}}}");
	assert_int_equal(f->rc, MCP_STREAM);
	conn_reset(f, 4);
	do_get(f, sid, NULL, "text/event-stream", NULL, 4);
	assert_int_equal(f->rc, MCP_STREAM);
	reset(f);
	mcp_server_free(f->s);
	f->s = NULL;
	assert_int_equal(f->cancels, 2);
	assert_non_null(strstr(f->conns[2].buf, "the endpoint is closing"));
	assert_int_equal(f->conns[2].ends, 1);
	assert_int_equal(f->conns[3].ends, 1);
	new_server(f, NULL);
}

static void test_stream_limit(void **state)
{
	struct fx *f = *state;
	char sid[MCP_SESSION_ID_LEN + 1], first[40] = "", id[40];
	struct sse_ev ev[8];
	open_session(f, V1125, sid);
	/* answered streams are kept for a resume, the oldest evicted first */
	for (int i = 0; i <= MCP_MAX_STREAMS; i++) {
		conn_reset(f, 1);
		f->n_approvals = 0;
		approval_call(f, V1125, sid, 1, SSE_ACCEPT, NULL, i);
		assert_int_equal(f->rc, MCP_STREAM);
		assert_int_equal(sse_parse(f->resp.body, ev, 8), 1);
		snprintf(id, sizeof(id), "%s", ev[0].id);
		if (!i)
			snprintf(first, sizeof(first), "%s", id);
		struct mcp_approval d = { .approved = true };
		mcp_approval_decide(f->approvals[0], &d);
		f->now++;
	}
	do_get(f, sid, NULL, "text/event-stream", first, 2);
	expect_error(f, 400, MCP_ERR_INVALID_REQUEST);
	do_get(f, sid, NULL, "text/event-stream", id, 2);
	assert_int_equal(f->rc, 0);
	assert_int_equal(sse_parse(f->resp.body, ev, 8), 1);
	/* streams that something waits on are never evicted: with every
	 * approval waiting on a stream of its own, and every session's GET
	 * stream open, there is still room */
	int c = MCP_MAX_PENDING + 1;
	for (int i = 0; i < MCP_MAX_SESSIONS; i++) {
		char other[MCP_SESSION_ID_LEN + 1];
		if (i)
			open_session(f, V1125, other);
		conn_reset(f, c);
		do_get(f, i ? other : sid, NULL, "text/event-stream", NULL, c++);
		assert_int_equal(f->rc, MCP_STREAM);
	}
	f->n_approvals = 0;
	for (int i = 0; i < MCP_MAX_PENDING; i++) {
		conn_reset(f, i + 1);
		approval_call(f, V1125, sid, i + 1, SSE_ACCEPT, NULL, 100 + i);
		assert_int_equal(f->rc, MCP_STREAM);
	}
	for (size_t i = 0; i < f->n_approvals; i++) {
		struct mcp_approval d = { .approved = true };
		mcp_approval_decide(f->approvals[i], &d);
		assert_int_equal(f->conns[i].ends, 1);
		assert_non_null(strstr(f->conns[i].buf, "approved"));
	}
}

/* ---------------------------------------------------------------------------
 * Allocation failures: every jansson allocation of a request fails in
 * turn. The answer is then a response as usual, or -ENOMEM with a 500 and
 * no body; never a crash or a leak (ASan).
 */

static long alloc_count, fail_at = -1;

static void *failing_malloc(size_t n)
{
	if (alloc_count++ == fail_at)
		return NULL;
	return malloc(n);
}

struct oom_case {
	const char *version; /* NULL: no session */
	const char *tool;    /* tools/call of tool with args, or body */
	const char *args;
	const char *body;
};

static void oom_run(struct fx *f, const struct oom_case *k)
{
	for (long n = 0;; n++) {
		new_server(f, NULL);
		char sid[MCP_SESSION_ID_LEN + 1] = "", tok[MCP_TOKEN_LEN + 1];
		char auth[MCP_TOKEN_LEN + 16];
		if (k->version)
			open_session(f, k->version, sid);
		issue(f, MCP_PHASE_RUN, 60000, tok);
		bearer(auth, tok);
		reset(f);
		char *body = NULL;
		struct mcp_request req = { .on_complete = on_complete, .complete_ctx = f };
		if (k->tool) {
			bool modern = stateless_version(k->version);
			if (asprintf(
				&body,
				"{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/"
				"call\",\"params\":"
				"{\"name\":\"%s\",\"arguments\":%s%s%s%s}}",
				k->tool, k->args, modern ? "," : "",
				modern ? "\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\""
					 "2026-07-28\",\"io.modelcontextprotocol/"
					 "clientCapabilities\":{}}"
				       : "",
				"") < 0)
				fail();
			req.session_id = sid;
			req.protocol_version = k->version;
			req.method = modern ? "tools/call" : NULL;
			req.name = modern ? k->tool : NULL;
		} else {
			body = strdup(k->body);
			req.authorization = auth;
			req.session_id = k->version ? sid : NULL;
			req.protocol_version = k->version;
			req.method = strstr(body, "server/discover") ? "server/discover" : NULL;
		}
		req.body = body;
		req.body_len = strlen(body);
		f->decide_inline = true;
		alloc_count = 0;
		fail_at = n;
		json_set_alloc_funcs(failing_malloc, free);
		int rc = mcp_handle(f->s, &req, &f->resp, &f->pending);
		fail_at = -1;
		bool injected = alloc_count > n;
		free(body);
		if (rc == -ENOMEM) {
			assert_int_equal(f->resp.status, 500);
			assert_null(f->resp.body);
		} else {
			assert_int_equal(rc, 0);
			assert_true(f->resp.status == 202 || f->resp.body);
			if (f->resp.body) {
				f->j = json_loads(f->resp.body, 0, NULL);
				if (!json_is_object(f->j) &&
				    !(json_is_array(f->j) && k->version &&
				      strcmp(k->version, V0326) == 0))
					fail_msg("case %s %s, allocation %ld: %s",
						 k->tool ? k->tool : k->body,
						 k->version ? k->version : "", n, f->resp.body);
				check_no_secret(f, f->resp.body);
			}
		}
		reset(f);
		mcp_server_free(f->s);
		f->s = NULL;
		if (!injected)
			break;
	}
	json_set_alloc_funcs(malloc, free);
}

static void test_out_of_memory(void **state)
{
	struct fx *f = *state;
	static const struct oom_case cases[] = {
		{ NULL, NULL, NULL,
		  "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
		  "\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},"
		  "\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}" },
		{ V0728, NULL, NULL,
		  "{\"jsonrpc\":\"2.0\",\"id\":\"d\",\"method\":\"server/discover\",\"params\":{"
		  "\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\","
		  "\"io.modelcontextprotocol/clientCapabilities\":{}}}}" },
		{ V1125, NULL, NULL, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}" },
		{ V1125, NULL, NULL, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"nope\"}" },
		{ V1125, NULL, NULL, "[1]" },
		{ V1125, NULL, NULL,
		  "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}" },
		{ V1125, "report_step", "{\"name\":\"s\",\"detail\":{\"a\":[1,2]}}", NULL },
		{ V1125, "save_artifact",
		  "{\"name\":\"a\",\"content\":\"AAH/\",\"encoding\":\"base64\"}", NULL },
		{ V1125, "request_approval", "{\"action\":\"a\",\"reason\":\"r\"}", NULL },
		{ V1125, "get_input", "{}", NULL },
		{ V1125, "log", "{\"level\":\"info\",\"message\":\"m\"}", NULL },
		{ V1125, "log", "{\"level\":\"nope\",\"message\":\"m\"}", NULL },
		{ V0618, "log", "{\"level\":\"nope\",\"message\":\"m\"}", NULL },
		{ V0728, "get_input", "{}", NULL },
		{ V0728, "request_approval", "{\"action\":\"a\",\"reason\":\"r\"}", NULL },
		{ V0326, NULL, NULL,
		  "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"},"
		  "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"},"
		  "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":"
		  "\"log\",\"arguments\":{\"level\":\"nope\",\"message\":\"m\"}}}]" },
	};
	mcp_server_free(f->s);
	f->s = NULL;
	for (size_t i = 0; i < CDN_ARRAY_SIZE(cases); i++)
		oom_run(f, &cases[i]);
	/* creating the server (its tool list) */
	struct mcp_hooks h = hooks_template;
	h.ctx = f;
	for (long n = 0;; n++) {
		struct cdn_err err = { 0 };
		alloc_count = 0;
		fail_at = n;
		json_set_alloc_funcs(failing_malloc, free);
		int rc = mcp_server_new(NULL, &h, &f->s, &err);
		fail_at = -1;
		json_set_alloc_funcs(malloc, free);
		bool injected = alloc_count > n;
		assert_true(rc == 0 || (rc == -ENOMEM && injected));
		if (rc == 0)
			mcp_server_free(f->s);
		f->s = NULL;
		if (!injected)
			break;
	}
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_handshake, setup, teardown),
		cmocka_unit_test_setup_teardown(test_version_negotiation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_protocol_version_header, setup, teardown),
		cmocka_unit_test_setup_teardown(test_request_before_initialize, setup, teardown),
		cmocka_unit_test_setup_teardown(test_session_required, setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_single_use, setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_expiry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_phase, setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_api, setup, teardown),
		cmocka_unit_test(test_server_api),
		cmocka_unit_test_setup_teardown(test_session_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_version_2025_03_26, setup, teardown),
		cmocka_unit_test_setup_teardown(test_discover, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stateless_session, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stateless_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(test_meta, setup, teardown),
		cmocka_unit_test_setup_teardown(test_jsonrpc_strict, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_notifications, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tools_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tools_call, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tools_call_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tool_hook_failures, setup, teardown),
		cmocka_unit_test_setup_teardown(test_artifact_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_text_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_approval_later, setup, teardown),
		cmocka_unit_test_setup_teardown(test_approval_cancel_and_abort, setup, teardown),
		cmocka_unit_test_setup_teardown(test_approval_server_free, setup, teardown),
		cmocka_unit_test_setup_teardown(test_approval_without_completion, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_answer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_resume, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_stateless, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_accept, setup, teardown),
		cmocka_unit_test_setup_teardown(test_get_stream, setup, teardown),
		cmocka_unit_test_setup_teardown(test_last_event_id_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancelled_notification, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_phase_end_and_free, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_out_of_memory, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
