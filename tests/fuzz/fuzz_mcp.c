/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the MCP protocol layer.
 *
 * The input is a program: a sequence of operations on one server, each an
 * opcode byte and its operands. Operations issue tokens, begin and end
 * phases, move the clock, decide or cancel waiting approvals, and post
 * requests, either raw bytes or one of a set of templates (initialize,
 * server/discover, tools/list and tools/call of every tool, in both eras)
 * with fuzz bytes spliced in. Headers are picked from what the server
 * handed out so far: real tokens, real session ids, served versions, or
 * garbage. So the fuzzer reaches authenticated sessions, tool calls and
 * approvals, not only the parser. One operation makes the Nth jansson
 * allocation of the next request fail, to reach the out-of-memory paths
 * from any state. Requests may accept SSE and offer a stream, so waiting
 * calls become streams; other operations open GET streams (a session's
 * own, or a resume with a Last-Event-ID taken from the events seen, or
 * garbage), drop a stream's connection, and tick the clock so progress and
 * keep-alives go out.
 *
 * Invariants, for every response (direct or completed later): a status
 * among those documented (500 without a body, and -ENOMEM, only when an
 * allocation was made to fail); 202 without a body or headers; otherwise one
 * JSON-RPC 2.0 object with exactly one of result and error; 401 with
 * WWW-Authenticate; Mcp-Session-Id only on a 200. No response body and no
 * audit line holds a token or a session id. No token opens two sessions,
 * and a token only opens one in its own phase. Every approval handed to
 * the embedder is decided, cancelled or aborted exactly once. A stream
 * gets whole SSE events only, each a JSON-RPC message (a progress
 * notification or the call's answer), nothing after its end, and ends at
 * most once; its beginning is a 200 text/event-stream.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "mcp/mcp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

#define MAX_KEEP  8
#define MAX_OPS	  64
#define MAX_RAW	  4096
#define MAX_CONNS (MCP_MAX_STREAMS + 4)

struct token_rec {
	char text[MCP_TOKEN_LEN + 1];
	enum mcp_phase phase;
	bool redeemed;
};

struct state {
	struct mcp_server *s;
	uint64_t now;
	int current; /* what the harness believes the current phase is */
	struct token_rec tokens[MAX_KEEP];
	size_t n_tokens;
	char sessions[MAX_KEEP][MCP_SESSION_ID_LEN + 1];
	size_t n_sessions;
	struct mcp_pending *pending[MCP_MAX_PENDING + 1];
	bool pending_call[MCP_MAX_PENDING + 1]; /* call_agent, else request_approval */
	bool fail;
	bool decide_inline;
	int input_kind;
	int completions;
	long fail_in;	/* the jansson allocation to fail (1: the next), 0: none */
	int handed_out; /* approvals given to the embedder to decide later */
	int settled;	/* of those: decided, cancelled or aborted */
	/* open streams: the harness's connection for each (NULL: free) */
	struct conn *conns[MAX_CONNS];
	char event_ids[MAX_KEEP][MCP_MAX_EVENT_ID + 1];
	size_t n_event_ids;
	bool sse;   /* the next request accepts text/event-stream */
	bool offer; /* and the transport offers a stream */
};

/* A connection that carries a stream; freed when the stream ends, so a
 * write after the end is a use after free (ASan). */
struct conn {
	int slot;
	bool head;		   /* its beginning (MCP_STREAM) was sent */
	struct mcp_stream *stream; /* what it carries */
};

static struct state st;

/* ---------------------------------------------------------------------------
 * Checks
 */

static void check_clean(const char *text)
{
	if (!text)
		return;
	for (size_t i = 0; i < st.n_tokens; i++)
		CHECK(!strstr(text, st.tokens[i].text));
	for (size_t i = 0; i < st.n_sessions; i++)
		CHECK(!strstr(text, st.sessions[i]));
}

static const char *find_header(const struct mcp_response *r, const char *name)
{
	for (size_t i = 0; i < r->n_headers; i++)
		if (strcmp(r->headers[i].name, name) == 0)
			return r->headers[i].value;
	return NULL;
}

static void *failing_malloc(size_t n)
{
	if (st.fail_in > 0 && --st.fail_in == 0)
		return NULL;
	return malloc(n);
}

/*
 * jansson 2.14 (Debian 12) ignores a failed allocation of its lexer's token
 * buffer (lex_save drops the byte) and later asserts that the byte it
 * ungets is the one it saved, so a failure injected inside json_loadb
 * aborts in the library, not in cordon. The target cannot change that, so
 * an armed failure is held over the parse: it lands on the next allocation
 * after it, where cordon's own out-of-memory paths are. The server's calls
 * resolve to this definition because it is linked into the same binary.
 */
json_t *json_loadb(const char *buffer, size_t buflen, size_t flags, json_error_t *error)
{
	static json_t *(*real)(const char *, size_t, size_t, json_error_t *);
	if (!real) {
		*(void **)&real = dlsym(RTLD_NEXT, "json_loadb");
		CHECK(real);
	}
	long armed = st.fail_in;
	st.fail_in = 0;
	json_t *j = real(buffer, buflen, flags, error);
	st.fail_in = armed;
	return j;
}

static void check_response_now(const struct mcp_response *r);

/* The checks allocate too: never make them fail. */
static void check_response(const struct mcp_response *r)
{
	long armed = st.fail_in;
	st.fail_in = 0;
	check_response_now(r);
	st.fail_in = armed;
}

/* One JSON-RPC 2.0 answer: exactly one of result and error. */
static void check_message(const json_t *j, int status)
{
	CHECK(json_is_object(j));
	CHECK(json_is_string(json_object_get(j, "jsonrpc")));
	CHECK(strcmp(json_string_value(json_object_get(j, "jsonrpc")), "2.0") == 0);
	json_t *res = json_object_get(j, "result"), *err = json_object_get(j, "error");
	CHECK(!res != !err);
	if (err) {
		CHECK(json_is_integer(json_object_get(err, "code")));
		CHECK(json_is_string(json_object_get(err, "message")));
		CHECK(status != 202);
	} else {
		CHECK(status == 200 && json_is_object(res));
	}
	json_t *id = json_object_get(j, "id");
	CHECK(!id || json_is_string(id) || json_is_integer(id));
}

/* SSE text: whole events, each an optional "id: S-N" and one data line
 * that is empty (priming) or a JSON-RPC message; comments. Ids seen are
 * kept for a Last-Event-ID. */
static void check_sse(const char *text, size_t len)
{
	CHECK(strlen(text) == len);
	check_clean(text);
	const char *p = text, *end = text + len;
	while (p < end) {
		const char *e = strstr(p, "\n\n");
		CHECK(e && e < end);
		if (p[0] == ':') {
			p = e + 2;
			continue;
		}
		if (strncmp(p, "id: ", 4) == 0) {
			const char *nl = strchr(p, '\n');
			size_t n = (size_t)(nl - p - 4);
			CHECK(n >= 3 && n <= MCP_MAX_EVENT_ID);
			size_t slot = st.n_event_ids < MAX_KEEP ? st.n_event_ids++ : st.now % MAX_KEEP;
			memcpy(st.event_ids[slot], p + 4, n);
			st.event_ids[slot][n] = '\0';
			p = nl + 1;
		}
		CHECK(strncmp(p, "data: ", 6) == 0);
		p += 6;
		const char *nl = strchr(p, '\n');
		CHECK(nl == e);
		if (nl > p) {
			json_t *j = json_loadb(p, (size_t)(nl - p), JSON_REJECT_DUPLICATES, NULL);
			CHECK(json_is_object(j));
			if (json_object_get(j, "method")) {
				CHECK(strcmp(json_string_value(json_object_get(j, "method")),
					     "notifications/progress") == 0);
				CHECK(!json_object_get(j, "id"));
			} else {
				check_message(j, 200);
			}
			json_decref(j);
		}
		p = e + 2;
	}
}

static void check_response_now(const struct mcp_response *r)
{
	static const int statuses[] = { 200, 202, 400, 401, 404, 405, 406, 409, 413, 503 };
	if (r->status == 500) {
		CHECK(!r->body && r->n_headers == 0);
		return;
	}
	bool known = false;
	for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
		known |= r->status == statuses[i];
	CHECK(known);
	CHECK(r->n_headers <= MCP_MAX_RESPONSE_HEADERS);
	if (r->status == 202) {
		CHECK(!r->body && r->n_headers == 0);
		return;
	}
	const char *ct = find_header(r, "Content-Type");
	CHECK(ct);
	if (strcmp(ct, "text/event-stream") == 0) {
		/* a stream's beginning, or what was left of one */
		CHECK(r->status == 200);
		if (r->body)
			check_sse(r->body, r->body_len);
	} else {
		CHECK(!r->stream);
		CHECK(r->body && strlen(r->body) == r->body_len);
		check_clean(r->body);
		json_error_t je;
		json_t *j = json_loads(r->body, JSON_REJECT_DUPLICATES, &je);
		if (json_is_array(j)) {
			/* the answers to a batch (2025-03-26): 200, 1 to
			 * MCP_MAX_BATCH messages, each one as below */
			CHECK(r->status == 200);
			CHECK(json_array_size(j) >= 1 && json_array_size(j) <= MCP_MAX_BATCH);
			size_t i;
			json_t *m;
			json_array_foreach(j, i, m)
				check_message(m, 200);
		} else {
			check_message(j, r->status);
		}
		json_decref(j);
	}
	if (r->status == 401)
		CHECK(find_header(r, "WWW-Authenticate"));
	const char *sid = find_header(r, "Mcp-Session-Id");
	if (sid) {
		CHECK(r->status == 200);
		CHECK(strlen(sid) == MCP_SESSION_ID_LEN);
		for (size_t i = 0; i < st.n_sessions; i++)
			CHECK(strcmp(st.sessions[i], sid) != 0);
		size_t slot =
		    st.n_sessions < MAX_KEEP ? st.n_sessions++ : (size_t)(st.now % MAX_KEEP);
		snprintf(st.sessions[slot], sizeof(st.sessions[slot]), "%s", sid);
	}
}

/* ---------------------------------------------------------------------------
 * Hooks
 */

static int maybe_fail(struct cdn_err *err)
{
	return st.fail ? cdn_err_msg(err, 5, "hook failed") : 0;
}

static int h_report_step(void *ctx, enum mcp_phase phase, const char *name, const char *detail_json,
			 struct cdn_err *err)
{
	(void)ctx;
	CHECK((int)phase == st.current && name && name[0]);
	CHECK(!detail_json || strlen(detail_json) <= MCP_MAX_STEP_DETAIL);
	return maybe_fail(err);
}

static int h_save_artifact(void *ctx, enum mcp_phase phase, const char *name, const uint8_t *data,
			   size_t len, struct cdn_err *err)
{
	(void)ctx;
	CHECK((int)phase == st.current && name[0] && name[0] != '.');
	CHECK(strlen(name) <= MCP_MAX_ARTIFACT_NAME && strcspn(name, "/\\") == strlen(name));
	CHECK(len <= MCP_DEFAULT_MAX_ARTIFACT && (len == 0 || data));
	return maybe_fail(err);
}

static int h_request_approval(void *ctx, enum mcp_phase phase, const char *action,
			      const char *reason, struct mcp_pending *p, struct cdn_err *err)
{
	(void)ctx;
	CHECK((int)phase == st.current && action[0] && reason[0]);
	CHECK(!strchr(action, '\n') && !strchr(action, '\x1b'));
	if (st.fail)
		return maybe_fail(err);
	if (st.decide_inline) {
		struct mcp_approval d = { .approved = true };
		mcp_approval_decide(p, &d);
		return 0;
	}
	for (size_t i = 0; i < MCP_MAX_PENDING + 1; i++)
		if (!st.pending[i]) {
			st.pending[i] = p;
			st.pending_call[i] = false;
			st.handed_out++;
			return 0;
		}
	abort(); /* the server holds at most MCP_MAX_PENDING */
}

static int h_call_agent(void *ctx, enum mcp_phase phase, const char *agent, const char *input,
			struct mcp_pending *p, struct cdn_err *err)
{
	(void)ctx;
	CHECK((int)phase == st.current && agent[0] && strlen(agent) <= 4 * MCP_MAX_CALLEE);
	CHECK(input[0] == '{' && strlen(input) <= MCP_MAX_INPUT);
	if (st.fail)
		return maybe_fail(err);
	if (st.decide_inline) {
		struct mcp_call_result res = { .is_error = true, .text = "refused\xff" };
		mcp_call_complete(p, &res);
		return 0;
	}
	for (size_t i = 0; i < MCP_MAX_PENDING + 1; i++)
		if (!st.pending[i]) {
			st.pending[i] = p;
			st.pending_call[i] = true;
			st.handed_out++;
			return 0;
		}
	abort(); /* the server holds at most MCP_MAX_PENDING */
}

static void h_approval_cancel(void *ctx, struct mcp_pending *p, const char *why)
{
	(void)ctx;
	CHECK(why && why[0]);
	for (size_t i = 0; i < MCP_MAX_PENDING + 1; i++)
		if (st.pending[i] == p) {
			st.pending[i] = NULL;
			st.settled++;
			return;
		}
	/* not handed out: the transport could not wait for it */
}

static int h_get_input(void *ctx, enum mcp_phase phase, char **json, size_t *len,
		       struct cdn_err *err)
{
	(void)ctx;
	static const char *const inputs[] = { "{\"task\":\"x\"}", "[]", "{", "{}" };
	CHECK((int)phase == st.current);
	if (st.fail)
		return maybe_fail(err);
	const char *in = inputs[st.input_kind % 4];
	*json = strdup(in);
	*len = strlen(in);
	return 0;
}

static int h_log(void *ctx, enum mcp_phase phase, enum mcp_log_level level, const char *message,
		 struct cdn_err *err)
{
	(void)ctx;
	CHECK((int)phase == st.current && level <= MCP_LOG_EMERGENCY && message[0]);
	return maybe_fail(err);
}

static void h_audit(void *ctx, const char *event, const char *detail)
{
	(void)ctx;
	CHECK(event && detail && !strchr(detail, '\n'));
	check_clean(detail);
}

static uint64_t h_now(void *ctx)
{
	(void)ctx;
	return st.now;
}

static void on_complete(void *ctx, struct mcp_response *resp)
{
	(void)ctx;
	check_response(resp);
	st.completions++;
	mcp_response_free(resp);
}

static void sink_write(void *ctx, const char *data, size_t len)
{
	struct conn *c = ctx;
	CHECK(c->head && st.conns[c->slot] == c);
	long armed = st.fail_in;
	st.fail_in = 0;
	char *copy = malloc(len + 1);
	CHECK(copy);
	memcpy(copy, data, len);
	copy[len] = '\0';
	check_sse(copy, len);
	free(copy);
	st.fail_in = armed;
}

static void sink_end(void *ctx)
{
	struct conn *c = ctx;
	CHECK(st.conns[c->slot] == c);
	st.conns[c->slot] = NULL;
	free(c);
}

/* A connection for a request that may become a stream; NULL when every
 * slot is taken (the request then offers none). */
static struct conn *conn_new(void)
{
	for (int i = 0; i < MAX_CONNS; i++)
		if (!st.conns[i]) {
			struct conn *c = calloc(1, sizeof(*c));
			CHECK(c);
			c->slot = i;
			st.conns[i] = c;
			return c;
		}
	return NULL;
}

/* After the request: a stream keeps its connection, anything else frees
 * it. */
static void conn_settle(struct conn *c, int rc, const struct mcp_response *resp)
{
	if (!c)
		return;
	if (rc == MCP_STREAM) {
		CHECK(resp->stream && resp->status == 200);
		CHECK(strcmp(find_header(resp, "Content-Type"), "text/event-stream") == 0);
		c->head = true;
		c->stream = resp->stream;
		return;
	}
	CHECK(!resp->stream);
	CHECK(st.conns[c->slot] == c);
	st.conns[c->slot] = NULL;
	free(c);
}

/* ---------------------------------------------------------------------------
 * The program
 */

struct reader {
	const uint8_t *p;
	size_t n;
};

static uint8_t byte(struct reader *r)
{
	if (!r->n)
		return 0;
	r->n--;
	return *r->p++;
}

static const char *const versions[] = { NULL,
					MCP_VERSION_2025_06_18,
					MCP_VERSION_2025_11_25,
					MCP_VERSION_2026_07_28,
					"2099-01-01",
					"x\r\ny",
					MCP_VERSION_2025_03_26 };

#define META                                                                                       \
	"\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\","                   \
	"\"io.modelcontextprotocol/clientCapabilities\":{}}"

/* Templates: %s is where the fuzz bytes go; method and name are what the
 * routing headers say when the harness sends them. */
static const struct {
	const char *fmt, *method, *name;
} templates[] = {
	{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":"
	  "\"%s\",\"capabilities\":{},\"clientInfo\":{\"name\":\"f\",\"version\":\"1\"}}}",
	  "initialize", NULL },
	{ "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"%s}", NULL, NULL },
	{ "{\"jsonrpc\":\"2.0\",\"id\":\"p\",\"method\":\"ping\"%s}", "ping", NULL },
	{ "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\",\"params\":{%s}}", "tools/list",
	  NULL },
	{ "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\",\"params\":{" META "%s}}",
	  "tools/list", NULL },
	{ "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"server/discover\",\"params\":{" META "%s}}",
	  "server/discover", NULL },
	{ "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\",\"params\":{\"name\":"
	  "\"report_step\",\"arguments\":{\"name\":\"%s\",\"detail\":{\"k\":1}}}}",
	  "tools/call", "report_step" },
	{ "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{\"name\":"
	  "\"save_artifact\",\"arguments\":{\"name\":\"a.txt\",\"content\":\"%s\","
	  "\"encoding\":\"base64\"}," META "}}",
	  "tools/call", "save_artifact" },
	{ "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"tools/call\",\"params\":{\"name\":"
	  "\"save_artifact\",\"arguments\":{\"name\":\"%s\",\"content\":\"x\"}}}",
	  "tools/call", "save_artifact" },
	{ "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"name\":"
	  "\"request_approval\",\"arguments\":{\"action\":\"%s\",\"reason\":\"r\"}}}",
	  "tools/call", "request_approval" },
	{ "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"tools/call\",\"params\":{\"name\":"
	  "\"request_approval\",\"arguments\":{\"action\":\"a\",\"reason\":\"%s\"}," META "}}",
	  "tools/call", "request_approval" },
	{ "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/call\",\"params\":{\"name\":"
	  "\"get_input\",\"arguments\":{%s}}}",
	  "tools/call", "get_input" },
	{ "{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"tools/call\",\"params\":{\"name\":\"log\","
	  "\"arguments\":{\"level\":\"%s\",\"message\":\"m\"}," META "}}",
	  "tools/call", "log" },
	{ "{\"jsonrpc\":\"2.0\",\"id\":11,\"method\":\"tools/call\",\"params\":{\"name\":\"%s\","
	  "\"arguments\":{}}}",
	  "tools/call", "get_input" },
	{ "{\"jsonrpc\":\"2.0\",\"id\":12,\"method\":\"tools/call\",\"params\":%s}", "tools/call",
	  "log" },
	{ "{\"jsonrpc\":\"2.0\",\"id\":13,\"result\":{%s}}", NULL, NULL },
	{ "[%s]", NULL, NULL },
	/* 2025-03-26: a handshake of that version, and batches in its session */
	{ "{\"jsonrpc\":\"2.0\",\"id\":14,\"method\":\"initialize\",\"params\":{"
	  "\"protocolVersion\":\"2025-03-26\",\"capabilities\":{},\"clientInfo\":{"
	  "\"name\":\"f\",\"version\":\"1\"}%s}}",
	  "initialize", NULL },
	{ "[{\"jsonrpc\":\"2.0\",\"id\":15,\"method\":\"tools/call\",\"params\":{\"name\":"
	  "\"report_step\",\"arguments\":{\"name\":\"b\"}}},{\"jsonrpc\":\"2.0\","
	  "\"method\":\"notifications/initialized\"}%s]",
	  NULL, NULL },
	{ "[{\"jsonrpc\":\"2.0\",\"id\":16,\"method\":\"tools/call\",\"params\":{\"name\":"
	  "\"request_approval\",\"arguments\":{\"action\":\"%s\",\"reason\":\"r\"}}}]",
	  NULL, NULL },
	/* a waiting call that asks for progress, and the cancellation of one */
	{ "{\"jsonrpc\":\"2.0\",\"id\":17,\"method\":\"tools/call\",\"params\":{\"name\":"
	  "\"request_approval\",\"arguments\":{\"action\":\"a\",\"reason\":\"r\"},"
	  "\"_meta\":{\"progressToken\":%s}}}",
	  "tools/call", "request_approval" },
	{ "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{"
	  "\"requestId\":%s}}",
	  NULL, NULL },
	/* call_agent (the server below has the hook) */
	{ "{\"jsonrpc\":\"2.0\",\"id\":18,\"method\":\"tools/call\",\"params\":{\"name\":"
	  "\"call_agent\",\"arguments\":{\"agent\":\"%s\",\"input\":{\"q\":1}}}}",
	  "tools/call", "call_agent" },
	{ "{\"jsonrpc\":\"2.0\",\"id\":19,\"method\":\"tools/call\",\"params\":{\"name\":"
	  "\"call_agent\",\"arguments\":{\"agent\":\"b\",\"input\":%s}}}",
	  "tools/call", "call_agent" },
};
#define N_TEMPLATES (sizeof(templates) / sizeof(templates[0]))

/* Posts one request; the bits of flags pick its headers. */
static void post(const char *body, size_t len, uint8_t flags, uint8_t pick, const char *method,
		 const char *name)
{
	char auth[MCP_TOKEN_LEN + 16] = "";
	int token = -1;
	struct mcp_request req = { .body = body, .body_len = len, .on_complete = on_complete };
	switch (flags & 3) {
	case 1:
		if (st.n_tokens) {
			token = pick % (int)st.n_tokens;
			snprintf(auth, sizeof(auth), "Bearer %s", st.tokens[token].text);
			req.authorization = auth;
		}
		break;
	case 2: req.authorization = "Bearer cdn_mcp_00"; break;
	case 3: req.authorization = pick & 1 ? "Basic x" : ""; break;
	}
	switch ((flags >> 2) & 3) {
	case 1:
	case 2:
		if (st.n_sessions)
			req.session_id = st.sessions[(pick + ((flags >> 2) & 1)) % st.n_sessions];
		break;
	case 3: req.session_id = pick & 1 ? "cdn_mcps_x" : ""; break;
	}
	req.protocol_version = pick % 11 == 10 ? versions[6]
					       : versions[((flags >> 4) & 3) + (pick % 7 == 6 ? 2 : 0)];
	if (flags & 0x40)
		req.method = pick % 5 == 4 ? "x" : method;
	if (flags & 0x80)
		req.name = pick % 5 == 3 ? "=?base64?bG9n?=" : name;

	if (st.sse)
		req.accept = pick & 2 ? "application/json, text/event-stream" : "text/event-stream;q=0";
	struct conn *c = st.offer ? conn_new() : NULL;
	if (c)
		req.sink = (struct mcp_sink){ .write = sink_write, .end = sink_end, .ctx = c };

	struct mcp_response resp;
	struct mcp_pending *p = NULL;
	bool oom = st.fail_in > 0;
	int rc = mcp_handle(st.s, &req, &resp, &p);
	oom = oom && st.fail_in == 0; /* the failure did happen */
	st.fail_in = 0;
	CHECK(rc == 0 || rc == MCP_PENDING || rc == MCP_STREAM || (rc == -ENOMEM && oom));
	CHECK(resp.status != 500 || rc == -ENOMEM);
	conn_settle(c, rc, &resp);
	if (rc == MCP_PENDING) {
		CHECK(p && resp.status == 0 && !resp.body);
		bool held = false;
		for (size_t i = 0; i < MCP_MAX_PENDING + 1; i++)
			held |= st.pending[i] == p;
		CHECK(held);
		return;
	}
	CHECK(!p);
	check_response(&resp);
	if (find_header(&resp, "Mcp-Session-Id")) {
		/* only a token, once, in its own phase, opens a session */
		CHECK(token >= 0 && !req.session_id);
		CHECK(!st.tokens[token].redeemed);
		CHECK((int)st.tokens[token].phase == st.current);
		st.tokens[token].redeemed = true;
	}
	mcp_response_free(&resp);
}

static void settle_pending(struct reader *r, bool decide)
{
	uint8_t i = byte(r) % (MCP_MAX_PENDING + 1);
	struct mcp_pending *p = st.pending[i];
	if (!p)
		return;
	st.pending[i] = NULL;
	st.settled++;
	if (decide && st.pending_call[i]) {
		static const char *const results[] = { "{\"run_id\":\"r\"}", "[1]", "{", NULL };
		uint8_t b = byte(r);
		struct mcp_call_result res = { .is_error = b & 1,
					       .text = b & 2 ? "out\xff" : "{\"ok\":1}",
					       .structured_json = results[(b >> 2) % 4] };
		mcp_call_complete(p, &res);
	} else if (decide) {
		struct mcp_approval d = { .approved = byte(r) & 1 };
		snprintf(d.note, sizeof(d.note), "n\xff");
		mcp_approval_decide(p, &d);
	} else {
		/* approval_cancel finds nothing: p was taken out above */
		mcp_pending_cancel(p);
	}
}

static const char *const accepts[] = { "text/event-stream", "application/json", NULL,
				       "text/event-stream, application/json;q=0.5" };

/* GET: the session's stream, or a resume from an event id seen (or not) */
static void get(struct reader *r)
{
	uint8_t flags = byte(r), pick = byte(r);
	struct mcp_get g = { .accept = accepts[flags & 3] };
	if ((flags >> 2) & 1 && st.n_sessions)
		g.session_id = st.sessions[pick % st.n_sessions];
	else if ((flags >> 2) & 2)
		g.session_id = "cdn_mcps_x";
	g.protocol_version = versions[((flags >> 4) & 7) % 7];
	char lei[MCP_MAX_EVENT_ID + 8];
	switch (flags >> 7 | (pick & 1) << 1) {
	case 1:
		if (st.n_event_ids)
			g.last_event_id = st.event_ids[pick % st.n_event_ids];
		break;
	case 2:
		snprintf(lei, sizeof(lei), "%u-%u", pick % 5, (unsigned)byte(r) % 9);
		g.last_event_id = lei;
		break;
	case 3: g.last_event_id = pick & 2 ? "0-1" : "1-1\r\nx"; break;
	}
	struct conn *c = pick & 4 ? NULL : conn_new();
	if (c)
		g.sink = (struct mcp_sink){ .write = sink_write, .end = sink_end, .ctx = c };
	struct mcp_response resp;
	bool oom = st.fail_in > 0;
	int rc = mcp_handle_get(st.s, &g, &resp);
	oom = oom && st.fail_in == 0;
	st.fail_in = 0;
	CHECK(rc == 0 || rc == MCP_STREAM || (rc == -ENOMEM && oom));
	CHECK(resp.status != 500 || rc == -ENOMEM);
	conn_settle(c, rc, &resp);
	check_response(&resp);
	mcp_response_free(&resp);
}

/* A stream's connection drops. */
static void drop(struct reader *r)
{
	uint8_t i = byte(r) % MAX_CONNS;
	struct conn *c = st.conns[i];
	if (!c || !c->head)
		return;
	st.conns[i] = NULL;
	mcp_stream_detach(c->stream);
	free(c);
}

static void run(struct reader *r)
{
	struct cdn_err err = { 0 };
	for (int ops = 0; r->n && ops < MAX_OPS; ops++) {
		uint8_t op = byte(r) % 14;
		switch (op) {
		case 0: {
			enum mcp_phase ph = (enum mcp_phase)(byte(r) % MCP_PHASE_COUNT);
			uint64_t ttl = 1 + (uint64_t)byte(r) * 1000;
			char tok[MCP_TOKEN_LEN + 1];
			if (mcp_token_issue(st.s, ph, ttl, tok, &err) == 0) {
				size_t slot = st.n_tokens < MAX_KEEP ? st.n_tokens++
								     : (size_t)(ttl % MAX_KEEP);
				snprintf(st.tokens[slot].text, sizeof(st.tokens[slot].text), "%s",
					 tok);
				st.tokens[slot].phase = ph;
				st.tokens[slot].redeemed = false;
			}
			break;
		}
		case 1: {
			enum mcp_phase ph = (enum mcp_phase)(byte(r) % MCP_PHASE_COUNT);
			if (mcp_phase_begin(st.s, ph, &err) == 0)
				st.current = (int)ph;
			break;
		}
		case 2: {
			enum mcp_phase ph = (enum mcp_phase)(byte(r) % MCP_PHASE_COUNT);
			mcp_phase_end(st.s, ph);
			if (st.current == (int)ph)
				st.current = -1;
			break;
		}
		case 3: {
			uint64_t hi = byte(r);
			st.now += hi << 8 | byte(r);
			break;
		}
		case 4: {
			uint8_t flags = byte(r), pick = byte(r);
			size_t hi = byte(r);
			size_t len = (hi << 8 | byte(r)) % MAX_RAW;
			if (len > r->n)
				len = r->n;
			char *body = malloc(len + 1);
			if (!body)
				return;
			memcpy(body, r->p, len);
			r->p += len;
			r->n -= len;
			post(body, len, flags, pick, NULL, NULL);
			free(body);
			break;
		}
		case 5:
		case 6: {
			uint8_t t = byte(r) % N_TEMPLATES, flags = byte(r), pick = byte(r);
			size_t len = byte(r);
			if (len > r->n)
				len = r->n;
			char hole[256];
			memcpy(hole, r->p, len);
			hole[len] = '\0';
			r->p += len;
			r->n -= len;
			char body[1024];
			/* The template's one "%s" takes the hole (not as a format:
			 * -Wformat-nonliteral). */
			const char *fmt = templates[t].fmt, *at = strstr(fmt, "%s");
			if (!at)
				abort();
			int n = snprintf(body, sizeof(body), "%.*s%s%s", (int)(at - fmt), fmt, hole,
					 at + 2);
			if (n < 0 || (size_t)n >= sizeof(body))
				break;
			post(body, (size_t)n, flags, pick, templates[t].method, templates[t].name);
			break;
		}
		case 7: settle_pending(r, true); break;
		case 8: settle_pending(r, false); break;
		case 9: {
			uint8_t b = byte(r);
			st.fail = b & 1;
			st.decide_inline = b & 2;
			st.input_kind = b >> 2;
			break;
		}
		case 10: st.fail_in = 1 + byte(r); break;
		case 11: get(r); break;
		case 12: drop(r); break;
		case 13: {
			/* streams on or off; time passes, progress goes out */
			uint8_t b = byte(r);
			st.sse = b & 1;
			st.offer = b & 2;
			st.now += (uint64_t)(b >> 2) * 250;
			uint64_t next = mcp_server_tick(st.s);
			CHECK(next <= MCP_KEEPALIVE_MS);
			break;
		}
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct mcp_hooks hooks = {
		.report_step = h_report_step,
		.save_artifact = h_save_artifact,
		.request_approval = h_request_approval,
		.approval_cancel = h_approval_cancel,
		.get_input = h_get_input,
		.log = h_log,
		.on_audit = h_audit,
		.now_ms = h_now,
		.call_agent = h_call_agent,
	};
	struct cdn_err err = { 0 };
	memset(&st, 0, sizeof(st));
	json_set_alloc_funcs(failing_malloc, free);
	st.now = 1000;
	st.current = -1;
	if (mcp_server_new(NULL, &hooks, &st.s, &err) < 0)
		abort();
	/* most programs want a phase: begin run unless the first byte says no */
	if (size && data[0] & 1) {
		CHECK(mcp_phase_begin(st.s, MCP_PHASE_RUN, &err) == 0);
		st.current = MCP_PHASE_RUN;
	}
	struct reader r = { data + (size ? 1 : 0), size ? size - 1 : 0 };
	run(&r);
	mcp_server_free(st.s);
	/* freeing the server ended every stream */
	for (size_t i = 0; i < MAX_CONNS; i++)
		CHECK(!st.conns[i] || !st.conns[i]->head);
	for (size_t i = 0; i < MAX_CONNS; i++)
		free(st.conns[i]);
	/* every approval handed out was settled: decided, cancelled, aborted */
	for (size_t i = 0; i < MCP_MAX_PENDING + 1; i++)
		CHECK(!st.pending[i]);
	CHECK(st.settled == st.handed_out);
	return 0;
}
