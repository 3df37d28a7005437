/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The MCP protocol layer (contract in mcp.h; behaviour per protocol version
 * and the interpretations made are in docs/mcp.md): the methods and the
 * stages every POST goes through. The other parts are named in internal.h.
 *
 * A POST goes through these stages in order, and the first to fail answers:
 *
 *   1. bounds: body size, nesting depth (counted before parsing, so a deep
 *      document never reaches the parser's recursion);
 *   2. JSON: strict parse, duplicate keys refused (two "name" keys would
 *      let two readers of the same body see two different calls);
 *   3. JSON-RPC: one message (no batch), known members only, "2.0", an id
 *      that is a string or an integer;
 *   4. era and version: the MCP-Protocol-Version header, then either the
 *      2026-07-28 per-request _meta and the Mcp-Method / Mcp-Name headers
 *      (which must match the body), or the handshake-era rules;
 *   5. authentication: a session id, or a phase token redeemed to open a
 *      session (only server/discover needs neither);
 *   6. the method, then for tools/call strict argument validation;
 *   7. the embedder's hook.
 *
 * Everything a request needs is checked before a token is consumed, so a
 * malformed request never burns one.
 */

#include "mcp/internal.h"

/* ---------------------------------------------------------------------------
 * Methods
 */

static json_t *capabilities(void)
{
	return json_pack("{s:{s:b}}", "tools", "listChanged", 0);
}

/* Params members other than allowed: the name of one, else NULL. */
static const char *extra_param(json_t *params, const char *const *allowed)
{
	const char *key;
	json_t *v;
	json_object_foreach(params, key, v)
	{
		bool ok = false;
		for (size_t i = 0; allowed[i]; i++)
			ok |= strcmp(key, allowed[i]) == 0;
		if (!ok)
			return key;
	}
	return NULL;
}

static int method_initialize(struct call *c)
{
	json_t *p = c->params;
	json_t *pv = json_object_get(p, "protocolVersion");
	json_t *info = json_object_get(p, "clientInfo");
	if (c->in->session_id)
		return mcp_reply_error(&c->r, 400, MCP_ERR_INVALID_REQUEST, NULL,
				   "initialize opens a session; it must not carry Mcp-Session-Id");
	if (!json_is_string(pv) || !json_is_object(json_object_get(p, "capabilities")) ||
	    !json_is_object(info) || !json_is_string(json_object_get(info, "name")) ||
	    !json_is_string(json_object_get(info, "version")))
		return mcp_reply_error(&c->r, 200, MCP_ERR_INVALID_PARAMS, NULL,
				   "initialize needs protocolVersion (a string), capabilities (an "
				   "object) and clientInfo (an object with name and version)");
	/* Same version if served and handshake-based, else the latest that
	 * has a handshake. */
	int v = mcp_version_find(json_string_value(pv));
	if (v < 0 || versions[v].era != ERA_HANDSHAKE)
		v = LATEST_HANDSHAKE;
	if (mcp_session_open(c, v) < 0)
		return 0;
	c->r.version = v;
	json_t *res = json_object();
	if (!mcp_put(res, "protocolVersion", json_string(versions[v].name)) ||
	    !mcp_put(res, "capabilities", capabilities()) ||
	    !mcp_put(res, "serverInfo", mcp_server_info(c->s, v)) ||
	    !mcp_put(res, "instructions", json_string(INSTRUCTIONS))) {
		json_decref(res);
		return mcp_reply_nomem(&c->r);
	}
	return mcp_reply_result(&c->r, res);
}

static int method_discover(struct call *c)
{
	json_t *res = json_object();
	if (!mcp_put(res, "supportedVersions", mcp_version_list()) ||
	    !mcp_put(res, "capabilities", capabilities()) ||
	    !mcp_put(res, "instructions", json_string(INSTRUCTIONS)) ||
	    !mcp_put(res, "ttlMs", json_integer(LIST_TTL_MS)) ||
	    !mcp_put(res, "cacheScope", json_string("public"))) {
		json_decref(res);
		return mcp_reply_nomem(&c->r);
	}
	return mcp_reply_result(&c->r, res);
}

static int method_ping(struct call *c)
{
	return mcp_reply_result(&c->r, json_object());
}

static int method_tools_list(struct call *c)
{
	static const char *const allowed[] = { "cursor", "_meta", NULL };
	if (c->params && extra_param(c->params, allowed))
		return mcp_reply_error(&c->r, 200, MCP_ERR_INVALID_PARAMS, NULL,
				   "tools/list takes only cursor and _meta");
	/* The list is one page: no cursor was ever handed out. */
	if (json_object_get(c->params, "cursor"))
		return mcp_reply_error(&c->r, 200, MCP_ERR_INVALID_PARAMS, NULL, "invalid cursor");
	json_t *res = json_object();
	bool ok = mcp_put(res, "tools", json_incref(versions[c->r.version].titles ? c->s->tools
									   : c->s->tools_untitled));
	if (ok && mcp_reply_stateless(&c->r))
		ok = mcp_put(res, "ttlMs", json_integer(LIST_TTL_MS)) &&
		     mcp_put(res, "cacheScope", json_string("private"));
	if (!ok) {
		json_decref(res);
		return mcp_reply_nomem(&c->r);
	}
	return mcp_reply_result(&c->r, res);
}

static int method_tools_call(struct call *c)
{
	static const char *const allowed[] = { "name", "arguments", "_meta", NULL };
	json_t *p = c->params;
	if (!p)
		return mcp_reply_error(&c->r, 200, MCP_ERR_INVALID_PARAMS, NULL,
				   "tools/call needs params with a tool name");
	if (extra_param(p, allowed))
		return mcp_reply_error(&c->r, 200, MCP_ERR_INVALID_PARAMS, NULL,
				   "tools/call takes only name, arguments and _meta");
	json_t *name = json_object_get(p, "name");
	if (!json_is_string(name))
		return mcp_reply_error(&c->r, 200, MCP_ERR_INVALID_PARAMS, NULL,
				   "tools/call needs the tool's name (a string)");
	const struct tool *tool = mcp_tool_find(c->s, json_string_value(name));
	if (!tool)
		return mcp_reply_error(&c->r, 200, MCP_ERR_INVALID_PARAMS, NULL,
				   "unknown tool: this endpoint has report_step, save_artifact, "
				   "request_approval, get_input%s and log",
				   c->s->hooks.call_agent ? ", call_agent" : "");
	json_t *args = json_object_get(p, "arguments");
	json_auto_t *none = args ? NULL : json_object();
	if (!args)
		args = none;
	if (!json_is_object(args))
		return mcp_reply_error(&c->r, 200, MCP_ERR_INVALID_PARAMS, NULL,
				   "tools/call arguments must be an object");
	json_t *vals[MAX_ARGS] = { 0 };
	char msg[MSG_MAX];
	const char *why = mcp_args_problem(c, tool, args, vals, msg, sizeof(msg));
	if (why) {
		if (versions[c->r.version].arg_errors_in_result)
			return mcp_reply_tool(&c->r, true, why, NULL);
		return mcp_reply_error(&c->r, 200, MCP_ERR_INVALID_PARAMS, NULL, "%s", why);
	}
	return tool->run(c, vals);
}

struct method {
	const char *name;
	int (*run)(struct call *c);
	bool handshake;
	bool stateless;
};

static const struct method methods[] = {
	{ "initialize", method_initialize, true, false },
	{ "ping", method_ping, true, false }, /* removed in 2026-07-28 */
	{ "tools/list", method_tools_list, true, true },
	{ "tools/call", method_tools_call, true, true },
	{ "server/discover", method_discover, false, true },
};

static const struct method *method_find(const char *name, enum era era)
{
	for (size_t i = 0; i < CDN_ARRAY_SIZE(methods); i++)
		if (strcmp(methods[i].name, name) == 0 &&
		    (era == ERA_HANDSHAKE ? methods[i].handshake : methods[i].stateless))
			return &methods[i];
	return NULL;
}

/* ---------------------------------------------------------------------------
 * Stages
 */

static bool method_name_ok(const char *m, size_t len)
{
	if (len == 0 || len > MCP_MAX_METHOD)
		return false;
	for (size_t i = 0; i < len; i++)
		if (m[i] < 0x21 || m[i] > 0x7e)
			return false;
	return true;
}

/* Stage 3: one JSON-RPC 2.0 message. Replies and returns -1 on refusal. */
static int check_envelope(struct call *c)
{
	static const char *const members[] = { "jsonrpc", "id",	   "method", "params",
					       "result",  "error", NULL };
	json_t *msg = c->msg;
	json_t *id = json_object_get(msg, "id");
	/* An id that is readable is echoed, even in refusals. */
	if (json_is_integer(id) || (json_is_string(id) && json_string_length(id) <= MCP_MAX_ID))
		c->r.id = id;
	if (extra_param(msg, members))
		goto invalid;
	if (!json_is_string(json_object_get(msg, "jsonrpc")) ||
	    strcmp(json_string_value(json_object_get(msg, "jsonrpc")), "2.0") != 0)
		goto invalid;
	if (id && !c->r.id) {
		mcp_reply_error(&c->r, 400, MCP_ERR_INVALID_REQUEST, NULL,
			    "id must be a string (at most %d bytes) or an integer", MCP_MAX_ID);
		return -1;
	}
	json_t *method = json_object_get(msg, "method");
	json_t *result = json_object_get(msg, "result");
	json_t *error = json_object_get(msg, "error");
	if (!method) {
		/* A response to a request of ours (there are none). */
		if (!id || (!result == !error) || (result && !json_is_object(result)) ||
		    (error &&
		     (!json_is_object(error) || !json_is_integer(json_object_get(error, "code")) ||
		      !json_is_string(json_object_get(error, "message")))))
			goto invalid;
		c->kind = KIND_RESPONSE;
		return 0;
	}
	if (result || error || !json_is_string(method) ||
	    !method_name_ok(json_string_value(method), json_string_length(method)))
		goto invalid;
	c->method = json_string_value(method);
	c->kind = id ? KIND_REQUEST : KIND_NOTIFICATION;
	json_t *params = json_object_get(msg, "params");
	if (params && !json_is_object(params)) {
		mcp_reply_error(&c->r, 400, MCP_ERR_INVALID_PARAMS, NULL, "params must be an object");
		return -1;
	}
	c->params = params;
	return 0;
invalid:
	mcp_reply_error(&c->r, 400, MCP_ERR_INVALID_REQUEST, NULL,
		    "not a JSON-RPC 2.0 request, notification or response");
	return -1;
}

/* _meta, in either era: an object of well-formed keys, the protocol's own
 * keys well-typed. Nothing of it is ever echoed. */
static int check_meta(struct call *c)
{
	json_t *meta = json_object_get(c->params, "_meta");
	if (!meta)
		return 0;
	const char *why = NULL;
	if (!json_is_object(meta)) {
		why = "_meta must be an object";
	} else if (json_object_size(meta) > MCP_MAX_META_KEYS) {
		why = "_meta has too many keys";
	} else {
		const char *key;
		json_t *v;
		json_object_foreach(meta, key, v)
		{
			if (!mcp_meta_key_ok(key)) {
				why = "_meta has a malformed key";
				break;
			}
		}
	}
	json_t *tok = json_object_get(meta, "progressToken");
	json_t *info = json_object_get(meta, META_CLIENT_INFO);
	json_t *level = json_object_get(meta, META_LOG_LEVEL);
	json_t *caps = json_object_get(meta, META_CLIENT_CAPS);
	json_t *ver = json_object_get(meta, META_VERSION);
	if (!why && tok && !json_is_string(tok) && !json_is_integer(tok))
		why = "_meta progressToken must be a string or an integer";
	if (!why && ver && !json_is_string(ver))
		why = "_meta " META_VERSION " must be a string";
	if (!why && caps && !json_is_object(caps))
		why = "_meta " META_CLIENT_CAPS " must be an object";
	if (!why && info &&
	    (!json_is_object(info) || !json_is_string(json_object_get(info, "name")) ||
	     !json_is_string(json_object_get(info, "version"))))
		why = "_meta " META_CLIENT_INFO " must be an object with name and version";
	if (!why && level) {
		why = "_meta " META_LOG_LEVEL " is not a log level";
		for (size_t i = 0; json_is_string(level) && log_levels[i]; i++)
			if (strcmp(json_string_value(level), log_levels[i]) == 0)
				why = NULL;
	}
	if (why) {
		mcp_reply_error(&c->r, 400, MCP_ERR_INVALID_PARAMS, NULL, "%s", why);
		return -1;
	}
	c->meta = meta;
	return 0;
}

json_t *mcp_unsupported_data(const char *requested)
{
	json_t *d = json_object();
	if (!mcp_put(d, "supported", mcp_version_list()) ||
	    !mcp_put(d, "requested", json_string(mcp_quotable(requested)))) {
		json_decref(d);
		return NULL;
	}
	return d;
}

/* Mcp-Name against params.name: plain, or "=?base64?...?=". */
static bool name_header_matches(const char *h, json_t *name)
{
	size_t hl = strlen(h);
	const char *want = json_string_value(name);
	size_t wl = json_string_length(name);
	if (hl >= 12 && strncmp(h, "=?base64?", 9) == 0 && strcmp(h + hl - 2, "?=") == 0) {
		const char *b64 = h + 9;
		size_t bl = hl - 11, got = 0;
		uint8_t *bin = malloc(bl / 4 * 3 + 3);
		const char *end = NULL;
		bool same = bin &&
			    sodium_base642bin(bin, bl / 4 * 3 + 3, b64, bl, NULL, &got, &end,
					      sodium_base64_VARIANT_ORIGINAL) == 0 &&
			    end == b64 + bl && got == wl && memcmp(bin, want, wl) == 0;
		free(bin);
		return same;
	}
	return hl == wl && memcmp(h, want, wl) == 0;
}

/* Mcp-Method and Mcp-Name must say what the body says: an intermediary
 * that routes or filters on them must not be shown one call while the
 * server runs another. required: 2026-07-28, where they are mandatory. */
static int check_routing_headers(struct call *c, bool required)
{
	const struct mcp_request *in = c->in;
	if (!in->method && required) {
		mcp_reply_error(&c->r, 400, MCP_ERR_HEADER_MISMATCH, NULL, "Mcp-Method header missing");
		return -1;
	}
	if (in->method && (!mcp_header_value_ok(in->method) || strcmp(in->method, c->method) != 0)) {
		mcp_reply_error(&c->r, 400, MCP_ERR_HEADER_MISMATCH, NULL,
			    "Mcp-Method header does not match the body's method");
		return -1;
	}
	if (strcmp(c->method, "tools/call") != 0)
		return 0;
	if (!in->name && required) {
		mcp_reply_error(&c->r, 400, MCP_ERR_HEADER_MISMATCH, NULL, "Mcp-Name header missing");
		return -1;
	}
	json_t *name = json_object_get(c->params, "name");
	if (in->name && (!mcp_header_value_ok(in->name) ||
			 (json_is_string(name) && !name_header_matches(in->name, name)))) {
		mcp_reply_error(&c->r, 400, MCP_ERR_HEADER_MISMATCH, NULL,
			    "Mcp-Name header does not match the body's tool name");
		return -1;
	}
	return 0;
}

/* 2026-07-28: a request that carries its version in _meta. */
static int handle_stateless(struct call *c)
{
	const struct mcp_request *in = c->in;
	json_t *ver = json_object_get(c->meta, META_VERSION);
	if (!ver)
		return mcp_reply_error(&c->r, 400, MCP_ERR_INVALID_PARAMS, NULL,
				   "params._meta must carry " META_VERSION);
	int v = mcp_version_find(json_string_value(ver));
	if (v < 0)
		return mcp_reply_error(&c->r, 400, MCP_ERR_UNSUPPORTED_VERSION,
				   mcp_unsupported_data(json_string_value(ver)),
				   "Unsupported protocol version");
	if (!in->protocol_version)
		return mcp_reply_error(&c->r, 400, MCP_ERR_HEADER_MISMATCH, NULL,
				   "MCP-Protocol-Version header missing");
	if (strcmp(in->protocol_version, json_string_value(ver)) != 0)
		return mcp_reply_error(&c->r, 400, MCP_ERR_HEADER_MISMATCH, NULL,
				   "MCP-Protocol-Version header does not match " META_VERSION);
	if (!json_object_get(c->meta, META_CLIENT_CAPS))
		return mcp_reply_error(&c->r, 400, MCP_ERR_INVALID_PARAMS, NULL,
				   "params._meta must carry " META_CLIENT_CAPS);
	bool discover = strcmp(c->method, "server/discover") == 0;
	if (versions[v].era != ERA_STATELESS && !discover)
		return mcp_reply_error(&c->r, 400, MCP_ERR_INVALID_REQUEST, NULL,
				   "protocol %s uses the initialize handshake, not per-request "
				   "_meta",
				   versions[v].name);
	c->r.version = v;
	if (check_routing_headers(c, true) < 0)
		return 0;
	const struct method *m = method_find(c->method, ERA_STATELESS);
	if (!m)
		return mcp_reply_error(&c->r, 404, MCP_ERR_METHOD_NOT_FOUND, NULL, "Method not found");
	/* server/discover is public: versions and capabilities, nothing of
	 * the run. It neither needs nor spends a token. */
	if (discover)
		return m->run(c);
	if (in->session_id) {
		if (mcp_session_auth(c, ERA_STATELESS) < 0)
			return 0;
	} else if (mcp_session_open(c, v) < 0) {
		return 0;
	}
	return m->run(c);
}

/* 2025-06-18 and 2025-11-25: initialize, then the session. */
static int handle_handshake(struct call *c, int header_version)
{
	const struct method *m = method_find(c->method, ERA_HANDSHAKE);
	if (m && strcmp(m->name, "initialize") == 0) {
		if (check_routing_headers(c, false) < 0)
			return 0;
		return m->run(c);
	}
	if (!c->in->session_id)
		return mcp_reply_error(&c->r, 400, MCP_ERR_SESSION_REQUIRED, NULL,
				   "no session: send initialize first, then Mcp-Session-Id with "
				   "every request");
	int i = mcp_session_auth(c, ERA_HANDSHAKE);
	if (i < 0)
		return 0;
	int v = c->s->sessions[i].version;
	c->r.version = v;
	if (header_version >= 0 && header_version != v)
		return mcp_reply_error(&c->r, 400, MCP_ERR_INVALID_REQUEST, NULL,
				   "MCP-Protocol-Version %s is not the version negotiated for this "
				   "session (%s)",
				   versions[header_version].name, versions[v].name);
	if (check_routing_headers(c, false) < 0)
		return 0;
	if (!m)
		return mcp_reply_error(&c->r, 200, MCP_ERR_METHOD_NOT_FOUND, NULL, "Method not found");
	return m->run(c);
}

/* Notifications and responses from the client: accepted (202) within a
 * session, otherwise refused. None of them changes anything but the
 * initialized flag. */
/* notifications/cancelled: the waiting call with that requestId, of this
 * very session, is cancelled (the TypeScript SDK sends one when its own
 * timeout passes). Any other id is ignored, as the spec says. */
static void cancel_request(struct call *c, int session)
{
	struct mcp_server *s = c->s;
	json_t *rid = json_object_get(c->params, "requestId");
	if (!json_is_string(rid) && !json_is_integer(rid))
		return;
	for (size_t k = 0; k < MCP_MAX_PENDING; k++) {
		struct mcp_pending *p = s->pending[k];
		if (p && p->session == session && p->session_serial == s->sessions[session].serial &&
		    p->id && json_equal(p->id, rid)) {
			mcp_pending_cancelled(p);
			return;
		}
	}
}

static int handle_one_way(struct call *c, int header_version)
{
	enum era era = header_version >= 0 ? versions[header_version].era : ERA_HANDSHAKE;
	if (c->kind == KIND_RESPONSE && era == ERA_STATELESS)
		return mcp_reply_error(&c->r, 400, MCP_ERR_INVALID_REQUEST, NULL,
				   "clients do not send responses in protocol %s",
				   MCP_VERSION_2026_07_28);
	if (!c->in->session_id)
		return mcp_reply_error(&c->r, 400, MCP_ERR_SESSION_REQUIRED, NULL,
				   "no session: Mcp-Session-Id is required");
	int i = mcp_session_auth(c, era);
	if (i < 0)
		return 0;
	if (era == ERA_HANDSHAKE && header_version >= 0 &&
	    header_version != c->s->sessions[i].version)
		return mcp_reply_error(&c->r, 400, MCP_ERR_INVALID_REQUEST, NULL,
				   "MCP-Protocol-Version %s is not the version negotiated for this "
				   "session",
				   versions[header_version].name);
	if (c->kind == KIND_NOTIFICATION && strcmp(c->method, "notifications/initialized") == 0)
		c->s->sessions[i].initialized = true;
	if (c->kind == KIND_NOTIFICATION && strcmp(c->method, "notifications/cancelled") == 0)
		cancel_request(c, i);
	return mcp_reply_accepted(&c->r);
}

#define HV_UNCHECKED (-3)

/* The MCP-Protocol-Version header's version, -1 when there is none; -2
 * after refusing one that is not served. */
static int header_version(struct call *c)
{
	const char *h = c->in->protocol_version;
	int hv = -1;
	if (h && (!mcp_header_value_ok(h) || (hv = mcp_version_find(h)) < 0)) {
		mcp_reply_error(&c->r, 400, MCP_ERR_UNSUPPORTED_VERSION, mcp_unsupported_data(h),
			    "Unsupported protocol version");
		return -2;
	}
	return hv;
}

#define BATCHES_REFUSED                                                                            \
	"JSON-RPC batches are accepted only in a session of protocol " MCP_VERSION_2025_03_26    \
	" (2025-06-18 and later have none)"

/*
 * A JSON-RPC batch: 2025-03-26 requires a server to take them, and
 * 2025-06-18 removed them. So a batch needs a session of 2025-03-26, which
 * only initialize (never part of a batch) opens. Each message goes through
 * every stage on its own, with the request's headers; the answers go back
 * together, as one array (202 when there is none: only notifications and
 * responses).
 */
static int handle_message(struct call *c, int hv);

static int handle_batch(struct call *c, int hv)
{
	struct mcp_server *s = c->s;
	size_t n = json_array_size(c->msg);
	if ((hv >= 0 && !versions[hv].batches) || !c->in->session_id)
		return mcp_reply_error(&c->r, 400, MCP_ERR_INVALID_REQUEST, NULL, BATCHES_REFUSED);
	int i = mcp_session_auth(c, ERA_HANDSHAKE);
	if (i < 0)
		return 0;
	if (!versions[s->sessions[i].version].batches)
		return mcp_reply_error(&c->r, 400, MCP_ERR_INVALID_REQUEST, NULL, BATCHES_REFUSED);
	if (n == 0 || n > MCP_MAX_BATCH)
		return mcp_reply_error(&c->r, 400, MCP_ERR_INVALID_REQUEST, NULL,
				   "a batch holds 1 to %d messages", MCP_MAX_BATCH);
	json_auto_t *answers = json_array();
	if (!answers)
		return mcp_reply_nomem(&c->r);
	for (size_t k = 0; k < n; k++) {
		struct mcp_response out = { 0 };
		struct mcp_pending *none = NULL;
		struct call one = {
			.s = s,
			.in = c->in,
			.r = { .s = s, .out = &out, .version = -1 },
			.pending_out = &none,
			.msg = json_incref(json_array_get(c->msg, k)),
			.session = -1,
			.in_batch = true,
		};
		int rc = handle_message(&one, hv);
		json_decref(one.msg);
		free(one.blob);
		if (rc < 0 || (out.status == 500 && !out.body)) {
			mcp_response_free(&out);
			return mcp_reply_nomem(&c->r);
		}
		/* Our own answer, read back to become one member of the array. */
		json_t *a = out.body ? json_loadb(out.body, out.body_len, 0, NULL) : NULL;
		bool ok = !out.body || mcp_append(answers, a);
		mcp_response_free(&out);
		if (!ok)
			return mcp_reply_nomem(&c->r);
	}
	if (json_array_size(answers) == 0)
		return mcp_reply_accepted(&c->r);
	c->r.version = s->sessions[i].version;
	return mcp_reply_json(&c->r, 200, json_incref(answers));
}

static int handle(struct call *c)
{
	struct mcp_server *s = c->s;
	const struct mcp_request *in = c->in;
	if (!in->body && in->body_len)
		return mcp_reply_error(&c->r, 400, MCP_ERR_INVALID_REQUEST, NULL, "no body");
	if (in->body_len > s->max_body)
		return mcp_reply_error(&c->r, 413, MCP_ERR_INVALID_REQUEST, NULL,
				   "body larger than %zu bytes", s->max_body);
	if (mcp_too_deep(in->body, in->body_len))
		return mcp_reply_error(&c->r, 400, MCP_ERR_INVALID_REQUEST, NULL,
				   "JSON nested deeper than %d levels", MCP_MAX_DEPTH);
	json_error_t je;
	c->msg = json_loadb(in->body ? in->body : "", in->body_len,
			    JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
	if (!c->msg)
		/* je.text can quote the input; only the position is given. */
		return mcp_reply_error(&c->r, 400, MCP_ERR_PARSE, NULL,
				   "Parse error%s at line %d, column %d",
				   strstr(je.text, "duplicate") ? " (duplicate object key)" : "",
				   je.line, je.column);
	if (json_is_array(c->msg)) {
		int hv = header_version(c);
		return hv < -1 ? 0 : handle_batch(c, hv);
	}
	return handle_message(c, HV_UNCHECKED);
}

/* One JSON-RPC message, on its own or as part of a batch. hv: the
 * MCP-Protocol-Version header's version (-1: none), or HV_UNCHECKED to
 * check it here, once the envelope is known (so its refusal has the id). */
static int handle_message(struct call *c, int hv)
{
	if (!json_is_object(c->msg))
		return mcp_reply_error(&c->r, 400, MCP_ERR_INVALID_REQUEST, NULL,
				   "not a JSON-RPC 2.0 request, notification or response");
	if (check_envelope(c) < 0)
		return 0;
	if (hv == HV_UNCHECKED && (hv = header_version(c)) < -1)
		return 0;
	if (c->kind != KIND_RESPONSE && check_meta(c) < 0)
		return 0;
	if (c->kind != KIND_REQUEST)
		return handle_one_way(c, hv);
	bool stateless_request = json_object_get(c->meta, META_VERSION) ||
				 strcmp(c->method, "server/discover") == 0 ||
				 (hv >= 0 && versions[hv].era == ERA_STATELESS);
	if (stateless_request)
		return handle_stateless(c);
	return handle_handshake(c, hv);
}

int mcp_handle(struct mcp_server *s, const struct mcp_request *req, struct mcp_response *out,
	       struct mcp_pending **pending)
{
	struct mcp_pending *unused = NULL;
	memset(out, 0, sizeof(*out));
	if (pending)
		*pending = NULL;
	struct call c = {
		.s = s,
		.in = req,
		.r = { .s = s, .out = out, .version = -1 },
		.pending_out = pending ? pending : &unused,
		.session = -1,
	};
	int rc = handle(&c);
	json_decref(c.msg);
	free(c.blob);
	sodium_memzero(c.new_session, sizeof(c.new_session));
	if (rc == MCP_PENDING || rc == MCP_STREAM || rc < 0)
		return rc;
	/* Some paths answer out of memory and go on: say so here too. */
	return out->status == 500 && !out->body ? -ENOMEM : 0;
}

