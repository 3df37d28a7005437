/* SPDX-License-Identifier: Apache-2.0 */
/* Agent-to-agent calls, the parts without a sandbox: agent.json's "calls"
 * (manifest_calls.c), the call_agent tool of the MCP layer (mcp_tools.c)
 * the CALL message the network part sends (netmsg.c) and the count of a
 * tree of calls (calltree.c). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "base/cleanup.h"
#include "mcp/mcp.h"
#include "registry/manifest.h"
#include "run/netmsg.h"
#include "run/run_internal.h"
#include "store/store.h"

/* ------------------------------------------------------------ manifest */

static struct agent_manifest *parse(const char *calls, struct cdn_err *err)
{
	char doc[1024];
	snprintf(doc, sizeof(doc),
		 "{\"name\": \"a\", \"version\": \"1\", \"entrypoint\": [\"true\"], \"calls\": %s}",
		 calls);
	struct agent_manifest *m = NULL;
	memset(err, 0, sizeof(*err));
	if (manifest_parse(doc, strlen(doc), "agent.json", &m, err) < 0)
		return NULL;
	return m;
}

static void test_manifest_calls(void **state)
{
	(void)state;
	struct cdn_err err;
	struct agent_manifest *m = parse("[\"summarizer@2\", \"search\"]", &err);
	assert_non_null(m);
	assert_int_equal(m->n_calls, 2);
	assert_string_equal(m->calls[0], "summarizer@2");
	char name[MANIFEST_MAX_NAME + 1];
	unsigned v = 99;
	/* The manifest fixes the version; the agent may repeat it. */
	assert_int_equal(manifest_call_find(m, "summarizer", name, &v), 0);
	assert_string_equal(name, "summarizer");
	assert_int_equal(v, 2);
	assert_int_equal(manifest_call_find(m, "summarizer@2", name, &v), 0);
	assert_int_equal(manifest_call_find(m, "summarizer@3", name, &v), -ENOENT);
	assert_int_equal(manifest_call_find(m, "search", name, &v), 0);
	assert_int_equal(v, 0); /* the latest, at call time */
	assert_int_equal(manifest_call_find(m, "search@1", name, &v), -ENOENT);
	assert_int_equal(manifest_call_find(m, "other", name, &v), -ENOENT);
	assert_int_equal(manifest_call_find(m, "Bad Name", name, &v), -EINVAL);
	assert_int_equal(manifest_call_find(m, "search@", name, &v), -EINVAL);
	manifest_free(m);

	m = parse("[]", &err);
	assert_non_null(m);
	assert_int_equal(m->n_calls, 0);
	assert_int_equal(manifest_call_find(m, "search", name, &v), -ENOENT);
	manifest_free(m);

	static const struct {
		const char *calls, *msg;
	} bad[] = {
	    {"\"search\"", "calls: expected a list of agents"},
	    {"[\"Search\"]", "calls[0]: \"Search\": expected a registered agent's name"},
	    {"[\"a@0\"]", "calls[0]: \"a@0\""},
	    {"[\"a@01\"]", "calls[0]: \"a@01\""},
	    {"[\"a@1x\"]", "calls[0]: \"a@1x\""},
	    {"[\"a@-1\"]", "calls[0]: \"a@-1\""},
	    {"[\"a@1234567890\"]", "calls[0]: \"a@1234567890\""},
	    {"[\"@1\"]", "calls[0]: \"@1\""},
	    {"[\"b\", \"b\"]", "calls[1]: \"b\" is listed twice"},
	    {"[\"b\", \"b@2\"]", "calls[1]: agent b is listed already at [0]"},
	    {"[1]", "calls[0]: expected a string"},
	    {"[\"\"]", "calls[0]: empty string"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		m = parse(bad[i].calls, &err);
		if (m || !strstr(err.msg, bad[i].msg))
			fail_msg("%s: got \"%s\", want \"%s\"", bad[i].calls, m ? "" : err.msg,
				 bad[i].msg);
	}
}

/* ----------------------------------------------------------------- MCP */

struct fx {
	struct mcp_server *s;
	char session[MCP_SESSION_ID_LEN + 1];
	struct mcp_pending *pending;
	int cancels;
	char callee[128], input[256];
	bool inline_answer;
	struct mcp_response done;
	int n_done;
};

static int h_step(void *c, enum mcp_phase p, const char *n, const char *d, struct cdn_err *e)
{
	(void)c, (void)p, (void)n, (void)d, (void)e;
	return 0;
}
static int h_art(void *c, enum mcp_phase p, const char *n, const uint8_t *d, size_t l,
		 struct cdn_err *e)
{
	(void)c, (void)p, (void)n, (void)d, (void)l, (void)e;
	return 0;
}
static int h_appr(void *c, enum mcp_phase p, const char *a, const char *r, struct mcp_pending *pp,
		  struct cdn_err *e)
{
	(void)c, (void)p, (void)a, (void)r, (void)pp, (void)e;
	return 0;
}
static void h_cancel(void *c, struct mcp_pending *p, const char *why)
{
	struct fx *f = c;
	(void)why;
	if (p == f->pending)
		f->pending = NULL;
	f->cancels++;
}
static int h_input(void *c, enum mcp_phase p, char **j, size_t *l, struct cdn_err *e)
{
	(void)c, (void)p, (void)e;
	*j = strdup("{}");
	*l = 2;
	return 0;
}
static int h_log(void *c, enum mcp_phase p, enum mcp_log_level lv, const char *m, struct cdn_err *e)
{
	(void)c, (void)p, (void)lv, (void)m, (void)e;
	return 0;
}
static void h_audit(void *c, const char *ev, const char *d)
{
	(void)c, (void)ev, (void)d;
}
static int h_call(void *c, enum mcp_phase p, const char *agent, const char *input,
		  struct mcp_pending *pp, struct cdn_err *e)
{
	(void)p, (void)e;
	struct fx *f = c;
	snprintf(f->callee, sizeof(f->callee), "%s", agent);
	snprintf(f->input, sizeof(f->input), "%s", input);
	if (f->inline_answer) {
		struct mcp_call_result r = {.is_error = true, .text = "call_agent: refused: no"};
		mcp_call_complete(pp, &r);
		return 0;
	}
	f->pending = pp;
	return 0;
}
static void on_done(void *c, struct mcp_response *resp)
{
	struct fx *f = c;
	f->done = *resp;
	f->n_done++;
}

static void server(struct fx *f, bool calls)
{
	struct mcp_hooks h = {.ctx = f,
			      .report_step = h_step,
			      .save_artifact = h_art,
			      .request_approval = h_appr,
			      .approval_cancel = h_cancel,
			      .get_input = h_input,
			      .log = h_log,
			      .on_audit = h_audit,
			      .call_agent = calls ? h_call : NULL};
	struct cdn_err err = {0};
	assert_int_equal(mcp_server_new(NULL, &h, &f->s, &err), 0);
	assert_int_equal(mcp_phase_begin(f->s, MCP_PHASE_RUN, &err), 0);
	char tok[MCP_TOKEN_LEN + 1];
	assert_int_equal(mcp_token_issue(f->s, MCP_PHASE_RUN, 60000, tok, &err), 0);
	char auth[MCP_TOKEN_LEN + 16];
	snprintf(auth, sizeof(auth), "Bearer %s", tok);
	const char *init = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":"
			   "{\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},"
			   "\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}";
	struct mcp_request rq = {.body = init, .body_len = strlen(init), .authorization = auth};
	struct mcp_response resp = {0};
	struct mcp_pending *p = NULL;
	assert_int_equal(mcp_handle(f->s, &rq, &resp, &p), 0);
	assert_int_equal(resp.status, 200);
	for (size_t i = 0; i < resp.n_headers; i++)
		if (strcmp(resp.headers[i].name, "Mcp-Session-Id") == 0)
			snprintf(f->session, sizeof(f->session), "%s", resp.headers[i].value);
	assert_true(f->session[0]);
	mcp_response_free(&resp);
}

/* One POST in the session; returns mcp_handle's value, the body parsed. */
static int post(struct fx *f, const char *body, json_t **out)
{
	struct mcp_request rq = {.body = body,
				 .body_len = strlen(body),
				 .session_id = f->session,
				 .on_complete = on_done,
				 .complete_ctx = f};
	struct mcp_response resp = {0};
	struct mcp_pending *p = NULL;
	int r = mcp_handle(f->s, &rq, &resp, &p);
	*out = resp.body ? json_loads(resp.body, 0, NULL) : NULL;
	mcp_response_free(&resp);
	return r;
}

static json_t *tool_names(struct fx *f)
{
	json_t *j;
	assert_int_equal(post(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}", &j),
			 0);
	json_t *names = json_array();
	size_t i;
	json_t *t;
	json_array_foreach(json_object_get(json_object_get(j, "result"), "tools"), i, t)
	    json_array_append(names, json_object_get(t, "name"));
	json_decref(j);
	return names;
}

#define CALL(args)                                                                                 \
	"{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"name\":"            \
	"\"call_agent\",\"arguments\":" args "}}"

static void test_tool_only_with_the_hook(void **state)
{
	(void)state;
	struct fx f = {0};
	server(&f, false);
	json_t *names = tool_names(&f);
	assert_int_equal(json_array_size(names), 5);
	_cleanup_free_ char *text = json_dumps(names, JSON_COMPACT);
	assert_null(strstr(text, "call_agent"));
	json_decref(names);
	json_t *j;
	assert_int_equal(post(&f, CALL("{\"agent\":\"b\"}"), &j), 0);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "error"), "code")),
			 MCP_ERR_INVALID_PARAMS);
	json_decref(j);
	mcp_server_free(f.s);

	struct fx g = {0};
	server(&g, true);
	names = tool_names(&g);
	assert_int_equal(json_array_size(names), 6);
	assert_string_equal(json_string_value(json_array_get(names, 5)), "call_agent");
	json_decref(names);
	mcp_server_free(g.s);
}

static void test_call_waits_then_answers(void **state)
{
	(void)state;
	struct fx f = {0};
	server(&f, true);
	json_t *j = NULL;
	assert_int_equal(post(&f, CALL("{\"agent\":\"summarizer@2\",\"input\":{\"q\":[1,2]}}"), &j),
			 MCP_PENDING);
	json_decref(j);
	assert_string_equal(f.callee, "summarizer@2");
	assert_string_equal(f.input, "{\"q\":[1,2]}");
	assert_non_null(f.pending);
	struct mcp_call_result r = {.is_error = false,
				    .text = "{\"summary\":\"ok\"}",
				    .structured_json =
					"{\"run_id\":\"run_1\",\"status\":\"succeeded\"}"};
	mcp_call_complete(f.pending, &r);
	assert_int_equal(f.n_done, 1);
	json_t *res = json_loads(f.done.body, 0, NULL);
	json_t *result = json_object_get(res, "result");
	assert_true(json_is_false(json_object_get(result, "isError")));
	assert_string_equal(json_string_value(json_object_get(
				json_array_get(json_object_get(result, "content"), 0), "text")),
			    "{\"summary\":\"ok\"}");
	assert_string_equal(json_string_value(json_object_get(
				json_object_get(result, "structuredContent"), "run_id")),
			    "run_1");
	json_decref(res);
	mcp_response_free(&f.done);

	/* No input: an empty object; an answer inside the hook. */
	f.inline_answer = true;
	assert_int_equal(post(&f, CALL("{\"agent\":\"b\"}"), &j), 0);
	assert_string_equal(f.input, "{}");
	result = json_object_get(j, "result");
	assert_true(json_is_true(json_object_get(result, "isError")));
	json_decref(j);

	/* Arguments are checked before the hook. */
	f.callee[0] = '\0';
	assert_int_equal(post(&f, CALL("{\"agent\":\"b\",\"input\":[1]}"), &j), 0);
	assert_non_null(json_object_get(json_object_get(j, "result"), "isError"));
	json_decref(j);
	assert_int_equal(post(&f, CALL("{\"agent\":\"b\",\"x\":1}"), &j), 0);
	json_decref(j);
	assert_int_equal(post(&f, CALL("{\"agent\":\"\"}"), &j), 0);
	json_decref(j);
	assert_string_equal(f.callee, "");

	/* A call still waiting when its phase ends: a tool error. */
	f.inline_answer = false;
	assert_int_equal(post(&f, CALL("{\"agent\":\"b\"}"), &j), MCP_PENDING);
	json_decref(j);
	mcp_phase_end(f.s, MCP_PHASE_RUN);
	assert_int_equal(f.cancels, 1);
	assert_int_equal(f.n_done, 2);
	assert_non_null(strstr(f.done.body, "call_agent: no result: "));
	mcp_response_free(&f.done);
	mcp_server_free(f.s);
}

/* ------------------------------------------------------------- netmsg */

static int decode(const char *payload, struct netmsg_up *m)
{
	struct cdn_err err = {0};
	int r = netmsg_decode_up(NETMSG_CALL, (const uint8_t *)payload, strlen(payload), m, &err);
	return r;
}

static void test_netmsg_call(void **state)
{
	(void)state;
	struct netmsg_up m;
	assert_int_equal(decode("{\"id\":\"call_12\",\"agent\":\"b@2\",\"input\":{\"a\":1}}", &m),
			 0);
	assert_string_equal(m.call_id, "call_12");
	assert_string_equal(m.callee, "b@2");
	assert_true(json_is_object(json_object_get(m.json, "input")));
	netmsg_up_clear(&m);
	static const char *const bad[] = {
	    "{\"id\":\"call_\",\"agent\":\"b\",\"input\":{}}",
	    "{\"id\":\"call_1x\",\"agent\":\"b\",\"input\":{}}",
	    "{\"id\":\"apr_1\",\"agent\":\"b\",\"input\":{}}",
	    "{\"id\":\"call_12345678901234567890\",\"agent\":\"b\",\"input\":{}}",
	    "{\"id\":\"call_1\",\"agent\":\"\",\"input\":{}}",
	    "{\"id\":\"call_1\",\"agent\":\"b\\u0000c\",\"input\":{}}",
	    "{\"id\":\"call_1\",\"agent\":\"b\",\"input\":[]}",
	    "{\"id\":\"call_1\",\"agent\":\"b\"}",
	    "{\"id\":\"call_1\",\"agent\":\"b\",\"input\":{},\"more\":1}",
	    "{\"id\":1,\"agent\":\"b\",\"input\":{}}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (decode(bad[i], &m) == 0)
			fail_msg("accepted %s", bad[i]);
		netmsg_up_clear(&m);
	}
	/* A callee name as long as a frame allows, and no longer. */
	char big[NETMSG_MAX_CALLEE + 128];
	snprintf(big, sizeof(big), "{\"id\":\"call_1\",\"agent\":\"%0*d\",\"input\":{}}",
		 NETMSG_MAX_CALLEE + 1, 0);
	assert_int_not_equal(decode(big, &m), 0);
	netmsg_up_clear(&m);
}

/* ------------------------------------------------------- a tree's count */

static void test_call_tree(void **state)
{
	(void)state;
	assert_true(run_call_tree_name_ok("calls.123.run_abc"));
	assert_false(run_call_tree_name_ok("calls..run_abc"));
	assert_false(run_call_tree_name_ok("calls.12a.run_abc"));
	assert_false(run_call_tree_name_ok("calls.1.../x"));
	assert_false(run_call_tree_name_ok("calls.1./etc"));
	assert_false(run_call_tree_name_ok("blobs.1.run_abc"));
	assert_false(run_call_tree_name_ok(NULL));

	struct run_call_tree_count n = { .budget = 3, .made = 2, .running = 0 };
	assert_int_equal(run_call_tree_decide(&n), CALL_TREE_OK);
	n.made = 3;
	assert_int_equal(run_call_tree_decide(&n), CALL_TREE_SPENT);
	n = (struct run_call_tree_count){ .budget = 100, .made = 20, .running = RUN_MAX_LIVE_CALLS };
	assert_int_equal(run_call_tree_decide(&n), CALL_TREE_BUSY);

	char dir[] = "/tmp/cordon-calltree-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char st[sizeof(dir) + 16];
	snprintf(st, sizeof(st), "%s/state", dir);
	struct store *s = NULL;
	struct cdn_err err = { 0 };
	assert_int_equal(store_open(st, &s, &err), 0);
	const char *name = "calls.1.run_tree";
	enum call_tree_verdict v;
	/* A child's count that is not there refuses: never a fresh budget. */
	assert_true(run_call_tree_take(s, name, false, 2, &n, &v, &err) < 0);
	/* The first run makes it; its budget is the one every run uses. */
	assert_int_equal(run_call_tree_take(s, name, true, 2, &n, &v, &err), 0);
	assert_int_equal(v, CALL_TREE_OK);
	assert_int_equal(n.made, 1);
	assert_true(run_call_tree_take(s, name, true, 2, &n, &v, &err) < 0); /* made once */
	assert_int_equal(run_call_tree_take(s, name, false, 1000, &n, &v, &err), 0);
	assert_int_equal(v, CALL_TREE_OK);
	assert_int_equal(n.made, 2);
	assert_int_equal(n.running, 2);
	run_call_tree_done(s, name);
	run_call_tree_done(s, name);
	assert_int_equal(run_call_tree_take(s, name, false, 1000, &n, &v, &err), 0);
	assert_int_equal(v, CALL_TREE_SPENT);
	assert_int_equal(n.budget, 2);
	assert_int_equal(n.running, 0);
	/* A damaged count refuses. */
	char path[256];
	assert_int_equal(store_tmp_path(s, name, path, sizeof(path), &err), 0);
	int fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "2 x 0\n", 6), 6);
	close(fd);
	assert_true(run_call_tree_take(s, name, false, 2, &n, &v, &err) < 0);
	/* So does a link in its place. */
	run_call_tree_remove(s, name);
	assert_int_equal(symlink("/etc/hostname", path), 0);
	assert_true(run_call_tree_take(s, name, false, 2, &n, &v, &err) < 0);
	run_call_tree_remove(s, name);
	assert_true(access(path, F_OK) < 0 && errno == ENOENT);
	store_close(s);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_manifest_calls),
	    cmocka_unit_test(test_tool_only_with_the_hook),
	    cmocka_unit_test(test_call_waits_then_answers),
	    cmocka_unit_test(test_netmsg_call),
	    cmocka_unit_test(test_call_tree),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
