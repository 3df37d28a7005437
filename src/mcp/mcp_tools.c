/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The MCP protocol layer: the tools, their table (which drives both the
 * published inputSchema and the argument checks), and the waiting
 * request_approval and call_agent calls.
 */

#include "mcp/internal.h"

static const char *const encodings[] = { "utf-8", "base64", NULL };


/* Checks the arguments against the tool's table. NULL, or the problem
 * (written to msg). vals[i] is the argument i, borrowed, or NULL. */
const char *mcp_args_problem(struct call *c, const struct tool *tool, json_t *args,
				json_t **vals, char *msg, size_t cap)
{
	const char *key;
	json_t *v;
	json_object_foreach(args, key, v)
	{
		bool known = false;
		for (size_t i = 0; i < tool->n_args; i++)
			known |= strcmp(key, tool->args[i].name) == 0;
		if (!known) {
			if (mcp_plain_name(key))
				snprintf(msg, cap, "%s: unknown argument \"%s\"", tool->name, key);
			else
				snprintf(msg, cap, "%s: unknown argument", tool->name);
			return msg;
		}
	}
	for (size_t i = 0; i < tool->n_args; i++) {
		const struct arg *a = &tool->args[i];
		v = json_object_get(args, a->name);
		vals[i] = v;
		if (!v) {
			if (!a->required)
				continue;
			snprintf(msg, cap, "%s: argument \"%s\" is required", tool->name, a->name);
			return msg;
		}
		const char *why = NULL;
		switch (a->kind) {
		case ARG_TEXT:
		case ARG_LINES:
		case ARG_ARTIFACT_NAME:
		case ARG_CONTENT:
		case ARG_ENUM:
			if (!json_is_string(v)) {
				why = "must be a string";
				break;
			}
			if (a->kind == ARG_TEXT || a->kind == ARG_LINES) {
				why = mcp_text_problem(json_string_value(v), json_string_length(v),
						   a->max, a->kind == ARG_LINES);
			} else if (a->kind == ARG_ENUM) {
				why = "is not one of the allowed values";
				for (size_t k = 0; a->values[k]; k++)
					if (strcmp(json_string_value(v), a->values[k]) == 0)
						why = NULL;
			} else if (a->kind == ARG_ARTIFACT_NAME) {
				const char *n = json_string_value(v);
				size_t len = json_string_length(v);
				if (len == 0 || len > a->max || n[0] == '.')
					why = "must be 1 to 128 characters of [A-Za-z0-9._-], not "
					      "starting with a dot";
				for (size_t k = 0; !why && k < len; k++)
					if (!mcp_is_alnum(n[k]) && n[k] != '.' && n[k] != '_' &&
					    n[k] != '-')
						why = "must be 1 to 128 characters of "
						      "[A-Za-z0-9._-], "
						      "not starting with a dot";
			}
			break;
		case ARG_OBJECT: {
			if (!json_is_object(v)) {
				why = "must be an object";
				break;
			}
			_cleanup_free_ char *text = mcp_dump_compact(v, NULL);
			if (!text || strlen(text) > a->max)
				why = "is too large";
			break;
		}
		}
		if (why) {
			snprintf(msg, cap, "%s: argument \"%s\" %s", tool->name, a->name, why);
			return msg;
		}
	}
	return tool->check ? tool->check(c, vals) : NULL;
}

/* report_step */
static int tool_report_step(struct call *c, json_t *const *vals)
{
	struct mcp_server *s = c->s;
	struct cdn_err err = { 0 };
	_cleanup_free_ char *detail = vals[1] ? mcp_dump_compact(vals[1], NULL) : NULL;
	if (vals[1] && !detail)
		return mcp_reply_nomem(&c->r);
	if (s->hooks.report_step(s->hooks.ctx, c->phase, json_string_value(vals[0]), detail, &err) <
	    0)
		return mcp_reply_hook_error(&c->r, "report_step", &err);
	return mcp_reply_tool(&c->r, false, "step recorded", NULL);
}

/* save_artifact: the content's size by encoding; base64 is decoded here,
 * once, so a refusal is an argument error. */
static const char *check_artifact(struct call *c, json_t *const *vals)
{
	const char *content = json_string_value(vals[1]);
	size_t len = json_string_length(vals[1]);
	size_t max = c->s->max_artifact;
	if (!vals[2] || strcmp(json_string_value(vals[2]), "utf-8") == 0)
		return len > max ? "save_artifact: the content is too large" : NULL;
	if (len > (max + 2) / 3 * 4)
		return "save_artifact: the content is too large";
	size_t cap = len / 4 * 3 + 3;
	c->blob = malloc(cap);
	if (!c->blob)
		return "save_artifact: out of memory";
	const char *end = NULL;
	if (sodium_base642bin(c->blob, cap, content, len, NULL, &c->blob_len, &end,
			      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    end != content + len)
		return "save_artifact: the content is not valid base64 (standard alphabet, padded, "
		       "no whitespace)";
	if (c->blob_len > max)
		return "save_artifact: the content is too large";
	return NULL;
}

static int tool_save_artifact(struct call *c, json_t *const *vals)
{
	struct mcp_server *s = c->s;
	struct cdn_err err = { 0 };
	const char *name = json_string_value(vals[0]);
	const uint8_t *data = c->blob ? c->blob : (const uint8_t *)json_string_value(vals[1]);
	size_t len = c->blob ? c->blob_len : json_string_length(vals[1]);
	if (s->hooks.save_artifact(s->hooks.ctx, c->phase, name, data, len, &err) < 0)
		return mcp_reply_hook_error(&c->r, "save_artifact", &err);
	char hex[CDN_SHA256_HEX + 1];
	cdn_sha256_hex(data, len, hex);
	char text[MCP_MAX_ARTIFACT_NAME + 128];
	snprintf(text, sizeof(text), "saved %s: %zu bytes, sha256 %s", name, len, hex);
	json_t *sc =
	    json_pack("{s:s, s:I, s:s}", "name", name, "size", (json_int_t)len, "sha256", hex);
	if (!sc)
		return mcp_reply_nomem(&c->r);
	return mcp_reply_tool(&c->r, false, text, sc);
}

/* request_approval: the answer for a decision. */
static int reply_decision(struct reply *r, const struct mcp_approval *d)
{
	char note[MCP_MAX_NOTE + 1], id[MCP_MAX_APPROVAL_ID + 1];
	snprintf(note, sizeof(note), "%s", d->note);
	snprintf(id, sizeof(id), "%s", d->id);
	/* The embedder's strings go into JSON: drop what is not UTF-8. */
	if (!mcp_utf8_valid(note))
		note[0] = '\0';
	if (!mcp_utf8_valid(id))
		id[0] = '\0';
	const char *decision = d->approved ? "approved" : "denied";
	char text[MCP_MAX_NOTE + 16];
	snprintf(text, sizeof(text), "%s%s%s", decision, note[0] ? ": " : "", note);
	json_t *sc = json_pack("{s:s}", "decision", decision);
	if ((id[0] && !mcp_put(sc, "approval_id", json_string(id))) ||
	    (note[0] && !mcp_put(sc, "note", json_string(note)))) {
		json_decref(sc);
		return mcp_reply_nomem(r);
	}
	if (!sc)
		return mcp_reply_nomem(r);
	return mcp_reply_tool(r, false, text, sc);
}

void mcp_pending_free(struct mcp_pending *p)
{
	json_decref(p->id);
	free(p->res_text);
	json_decref(p->res_structured);
	sodium_memzero(p->new_session, sizeof(p->new_session));
	free(p);
}

void mcp_pending_remove(struct mcp_pending *p)
{
	struct mcp_server *s = p->s;
	for (size_t i = 0; i < MCP_MAX_PENDING; i++)
		if (s->pending[i] == p)
			s->pending[i] = NULL;
}

static void pending_reply(struct mcp_pending *p, struct reply *r)
{
	r->s = p->s;
	r->id = p->id;
	r->version = p->version;
	/* a stream announced the session with its beginning */
	r->new_session = p->new_session[0] && !p->stream ? p->new_session : NULL;
}

/* ---------------------------------------------------------------------------
 * Waiting calls
 */

/* Answers a waiting call: through its stream, or to done. */
static void pending_answer(struct mcp_pending *p, struct mcp_response *resp)
{
	if (p->stream) {
		mcp_stream_finish(p->stream, resp->body);
		mcp_response_free(resp);
	} else {
		p->done(p->done_ctx, resp);
	}
}

/* Completes a waiting call with a tool error: no decision will come. */
void mcp_pending_abort(struct mcp_pending *p, const char *why)
{
	struct mcp_server *s = p->s;
	mcp_pending_remove(p);
	s->hooks.approval_cancel(s->hooks.ctx, p, why);
	struct mcp_response resp = { 0 };
	struct reply r = { .out = &resp };
	pending_reply(p, &r);
	char text[MSG_MAX];
	snprintf(text, sizeof(text), "%s: %s: %s", p->is_call ? "call_agent" : "request_approval",
		 p->is_call ? "no result" : "no decision", why);
	mcp_reply_tool(&r, true, text, NULL);
	pending_answer(p, &resp);
	mcp_pending_free(p);
}

/* notifications/cancelled from the session that asked: the call is
 * forgotten, and a stream ends without an answer (the client ignores any
 * that would come). A call answered as one JSON object still needs its
 * HTTP response: a tool error. */
void mcp_pending_cancelled(struct mcp_pending *p)
{
	struct mcp_server *s = p->s;
	mcp_pending_remove(p);
	s->hooks.approval_cancel(s->hooks.ctx, p, "the client cancelled the call");
	if (p->stream) {
		mcp_stream_finish(p->stream, NULL);
	} else {
		struct mcp_response resp = { 0 };
		struct reply r = { .out = &resp };
		pending_reply(p, &r);
		mcp_reply_tool(&r, true,
			       p->is_call ? "call_agent: cancelled by the client"
					  : "request_approval: cancelled by the client",
			       NULL);
		p->done(p->done_ctx, &resp);
	}
	mcp_pending_free(p);
}

/* A call that may wait (request_approval, call_agent): a pending entry
 * in a free slot, or NULL with the reply made (a tool error, or no
 * memory). */
static struct mcp_pending *pending_new(struct call *c, const char *tool, size_t *slot_out,
				       int *rc)
{
	struct mcp_server *s = c->s;
	char text[MSG_MAX];
	/* A batch is answered as a whole, in one HTTP response: one call that
	 * waits for minutes would hold every other answer. Refused before
	 * the hook, so nobody is asked for nothing. */
	if (c->in_batch) {
		snprintf(text, sizeof(text),
			 "%s: a call that waits for %s cannot be part of a JSON-RPC batch; send "
			 "it as a request of its own",
			 tool, strcmp(tool, "call_agent") == 0 ? "another run" : "a human");
		*rc = mcp_reply_tool(&c->r, true, text, NULL);
		return NULL;
	}
	size_t slot = MCP_MAX_PENDING;
	for (size_t i = 0; i < MCP_MAX_PENDING; i++)
		if (!s->pending[i])
			slot = i;
	if (slot == MCP_MAX_PENDING) {
		snprintf(text, sizeof(text), "%s: too many %s are waiting for an answer", tool,
			 strcmp(tool, "call_agent") == 0 ? "calls" : "approvals");
		*rc = mcp_reply_tool(&c->r, true, text, NULL);
		return NULL;
	}
	struct mcp_pending *p = calloc(1, sizeof(*p));
	if (!p) {
		*rc = mcp_reply_nomem(&c->r);
		return NULL;
	}
	p->s = s;
	p->phase = c->phase;
	p->version = c->r.version;
	p->id = json_incref(c->r.id);
	p->done = c->in->on_complete;
	p->done_ctx = c->in->complete_ctx;
	p->session = c->session;
	p->session_serial = s->sessions[c->session].serial;
	memcpy(p->new_session, c->new_session, sizeof(p->new_session));
	*slot_out = slot;
	return p;
}

/* The hook kept p: it waits. As a stream when the client takes one
 * (progress while it waits, and a handshake-era stream outlives its
 * connection), else as one JSON object later. */
static int pending_park(struct call *c, struct mcp_pending *p, size_t slot, const char *tool)
{
	struct mcp_server *s = c->s;
	struct mcp_stream *st = NULL;
	const struct mcp_sink *sink = &c->in->sink;
	if (sink->write && sink->end && mcp_accepts_sse(c->in->accept))
		st = mcp_stream_new(s, STREAM_CALL, c->session,
				versions[c->r.version].era == ERA_HANDSHAKE);
	if (!st && !p->done) {
		/* Nobody to hand a later answer to: the transport offered
		 * neither a completion nor a stream (or no stream is left). */
		const char *what = p->is_call ? "an answer" : "a decision";
		char text[MSG_MAX];
		snprintf(text, sizeof(text), "the endpoint cannot wait for %s", what);
		s->hooks.approval_cancel(s->hooks.ctx, p, text);
		mcp_pending_free(p);
		snprintf(text, sizeof(text), "%s: this endpoint cannot wait for %s", tool, what);
		return mcp_reply_tool(&c->r, true, text, NULL);
	}
	s->pending[slot] = p;
	if (!st) {
		*c->pending_out = p;
		return MCP_PENDING;
	}
	p->stream = st;
	st->p = p;
	json_t *tok = json_object_get(c->meta, "progressToken");
	st->progress_token = tok ? json_incref(tok) : NULL;
	return mcp_stream_begin(&c->r, st, sink, true);
}

static int tool_request_approval(struct call *c, json_t *const *vals)
{
	struct mcp_server *s = c->s;
	size_t slot;
	int rc = 0;
	struct mcp_pending *p = pending_new(c, "request_approval", &slot, &rc);
	if (!p)
		return rc;
	struct cdn_err err = { 0 };
	p->in_hook = true;
	rc = s->hooks.request_approval(s->hooks.ctx, c->phase, json_string_value(vals[0]),
				       json_string_value(vals[1]), p, &err);
	p->in_hook = false;
	if (rc < 0) {
		mcp_pending_free(p);
		return mcp_reply_hook_error(&c->r, "request_approval", &err);
	}
	if (p->decided) {
		struct mcp_approval d = p->decision;
		mcp_pending_free(p);
		return reply_decision(&c->r, &d);
	}
	return pending_park(c, p, slot, "request_approval");
}

/* call_agent: the answer, as the embedder gave it. */
static int reply_call(struct reply *r, const struct mcp_pending *p)
{
	const char *text = p->res_text && mcp_utf8_valid(p->res_text)
				   ? p->res_text
				   : (p->res_error ? "call_agent failed" : "call_agent: done");
	return mcp_reply_tool(r, p->res_error, text, json_incref(p->res_structured));
}

static int tool_call_agent(struct call *c, json_t *const *vals)
{
	struct mcp_server *s = c->s;
	json_auto_t *empty = vals[1] ? NULL : json_object();
	_cleanup_free_ char *input = mcp_dump_compact(vals[1] ? vals[1] : empty, NULL);
	if (!input)
		return mcp_reply_nomem(&c->r);
	size_t slot;
	int rc = 0;
	struct mcp_pending *p = pending_new(c, "call_agent", &slot, &rc);
	if (!p)
		return rc;
	p->is_call = true;
	struct cdn_err err = { 0 };
	p->in_hook = true;
	rc = s->hooks.call_agent(s->hooks.ctx, c->phase, json_string_value(vals[0]), input, p, &err);
	p->in_hook = false;
	if (rc < 0) {
		mcp_pending_free(p);
		return mcp_reply_hook_error(&c->r, "call_agent", &err);
	}
	if (p->decided) {
		rc = reply_call(&c->r, p);
		mcp_pending_free(p);
		return rc;
	}
	return pending_park(c, p, slot, "call_agent");
}

void mcp_call_complete(struct mcp_pending *p, const struct mcp_call_result *res)
{
	if (!p || p->decided || !p->is_call)
		return;
	p->decided = true;
	p->res_error = res->is_error;
	p->res_text = res->text ? strdup(res->text) : NULL;
	if (res->structured_json) {
		json_error_t je;
		p->res_structured = json_loads(res->structured_json, JSON_REJECT_DUPLICATES, &je);
		if (!json_is_object(p->res_structured)) {
			json_decref(p->res_structured);
			p->res_structured = NULL;
		}
	}
	if (p->in_hook)
		return; /* tool_call_agent answers when the hook returns */
	mcp_pending_remove(p);
	struct mcp_response resp = { 0 };
	struct reply r = { .out = &resp };
	pending_reply(p, &r);
	reply_call(&r, p);
	pending_answer(p, &resp);
	mcp_pending_free(p);
}

void mcp_approval_decide(struct mcp_pending *p, const struct mcp_approval *decision)
{
	if (!p || p->decided || p->is_call)
		return;
	p->decided = true;
	p->decision = *decision;
	p->decision.id[sizeof(p->decision.id) - 1] = '\0';
	p->decision.note[sizeof(p->decision.note) - 1] = '\0';
	if (p->in_hook)
		return; /* tool_request_approval answers when the hook returns */
	mcp_pending_remove(p);
	struct mcp_response resp = { 0 };
	struct reply r = { .out = &resp };
	pending_reply(p, &r);
	reply_decision(&r, &p->decision);
	pending_answer(p, &resp);
	mcp_pending_free(p);
}

void mcp_pending_cancel(struct mcp_pending *p)
{
	if (!p || p->in_hook)
		return;
	mcp_pending_remove(p);
	p->s->hooks.approval_cancel(p->s->hooks.ctx, p, "the client's connection closed");
	if (p->stream) {
		/* a stream's connection is mcp_stream_detach's; should the
		 * transport come here instead, the stream goes with the call */
		p->stream->p = NULL;
		mcp_stream_end_sink(p->stream);
		mcp_stream_free(p->stream);
	}
	mcp_pending_free(p);
}

/* get_input */
static int tool_get_input(struct call *c, json_t *const *vals)
{
	(void)vals;
	struct mcp_server *s = c->s;
	struct cdn_err err = { 0 };
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	if (s->hooks.get_input(s->hooks.ctx, c->phase, &text, &len, &err) < 0)
		return mcp_reply_hook_error(&c->r, "get_input", &err);
	if (!text || len > MCP_MAX_INPUT)
		return mcp_reply_tool(&c->r, true, "get_input: the run's input is not available", NULL);
	json_error_t je;
	json_auto_t *input = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(input))
		return mcp_reply_tool(&c->r, true, "get_input: the run's input is not a JSON object",
				  NULL);
	_cleanup_free_ char *compact = mcp_dump_compact(input, NULL);
	if (!compact)
		return mcp_reply_nomem(&c->r);
	return mcp_reply_tool(&c->r, false, compact, json_incref(input));
}

/* log */
static int tool_log(struct call *c, json_t *const *vals)
{
	struct mcp_server *s = c->s;
	struct cdn_err err = { 0 };
	enum mcp_log_level level = MCP_LOG_INFO;
	for (size_t i = 0; log_levels[i]; i++)
		if (strcmp(json_string_value(vals[0]), log_levels[i]) == 0)
			level = (enum mcp_log_level)i;
	if (s->hooks.log(s->hooks.ctx, c->phase, level, json_string_value(vals[1]), &err) < 0)
		return mcp_reply_hook_error(&c->r, "log", &err);
	return mcp_reply_tool(&c->r, false, "logged", NULL);
}

/* The order is the tools/list order (deterministic, as 2026-07-28 asks). */
const struct tool mcp_tools[] = {
	{
	    .name = "report_step",
	    .title = "Report a step",
	    .description = "Records a step of the agent's progress in the run's record "
			   "(steps.json and the event stream).",
	    .args = { { "name", ARG_TEXT, true, MCP_MAX_STEP_NAME, NULL,
			"what the step is (one line)" },
		      { "detail", ARG_OBJECT, false, MCP_MAX_STEP_DETAIL, NULL,
			"structured detail, at most 16384 bytes as compact JSON" } },
	    .n_args = 2,
	    .run = tool_report_step,
	},
	{
	    .name = "save_artifact",
	    .title = "Save an artifact",
	    .description = "Saves a file among the run's artifacts.",
	    .args = { { "name", ARG_ARTIFACT_NAME, true, MCP_MAX_ARTIFACT_NAME, NULL, "file name" },
		      { "content", ARG_CONTENT, true, 0, NULL,
			"the content: UTF-8 text, or base64 (standard alphabet, padded) when "
			"encoding is \"base64\"" },
		      { "encoding", ARG_ENUM, false, 0, encodings,
			"how content is encoded (default \"utf-8\")" } },
	    .n_args = 3,
	    .check = check_artifact,
	    .run = tool_save_artifact,
	},
	{
	    .name = "request_approval",
	    .title = "Ask for approval",
	    .description = "Asks a human to approve an action and waits for the decision "
			   "(\"approved\" or \"denied\"); this can take long.",
	    .args = { { "action", ARG_TEXT, true, MCP_MAX_ACTION, NULL,
			"the action to approve (one line)" },
		      { "reason", ARG_LINES, true, MCP_MAX_REASON, NULL,
			"why the action is needed" } },
	    .n_args = 2,
	    .run = tool_request_approval,
	},
	{
	    .name = "get_input",
	    .title = "Get the run's input",
	    .description = "Returns the run's input (a JSON object).",
	    .n_args = 0,
	    .run = tool_get_input,
	},
	{
	    .name = "log",
	    .title = "Log a message",
	    .description = "Writes a message to the run's log.",
	    .args = { { "level", ARG_ENUM, true, 0, log_levels, "severity" },
		      { "message", ARG_LINES, true, MCP_MAX_LOG_MESSAGE, NULL, "the message" } },
	    .n_args = 2,
	    .run = tool_log,
	},
	{
	    .name = "call_agent",
	    .title = "Call another agent",
	    .description = "Runs another agent, one this agent's manifest declares and the "
			   "operator granted, in a sandbox of its own, and returns its output "
			   "(its run's id, status and output); this can take as long as that run.",
	    .args = { { "agent", ARG_TEXT, true, MCP_MAX_CALLEE, NULL,
			"the agent to call, as the manifest's \"calls\" names it: NAME or "
			"NAME@VERSION" },
		      { "input", ARG_OBJECT, false, MCP_MAX_INPUT, NULL,
			"the called run's input (a JSON object; default {})" } },
	    .n_args = 2,
	    .run = tool_call_agent,
	    .calls = true,
	},
};
const size_t mcp_n_tools = CDN_ARRAY_SIZE(mcp_tools);

static json_t *arg_schema(const struct mcp_server *s, const struct arg *a)
{
	json_t *o = json_object();
	bool ok = mcp_put(o, "description", json_string(a->description));
	switch (a->kind) {
	case ARG_TEXT:
	case ARG_LINES:
		ok &= mcp_put(o, "type", json_string("string")) &&
		      mcp_put(o, "minLength", json_integer(1)) &&
		      mcp_put(o, "maxLength", json_integer((json_int_t)a->max));
		break;
	case ARG_OBJECT: ok &= mcp_put(o, "type", json_string("object")); break;
	case ARG_ENUM: {
		json_t *vals = json_array();
		for (size_t i = 0; a->values[i]; i++)
			ok &= mcp_append(vals, json_string(a->values[i]));
		ok &= mcp_put(o, "enum", vals); /* vals is stolen in every case */
		ok &= mcp_put(o, "type", json_string("string"));
		break;
	}
	case ARG_ARTIFACT_NAME:
		ok &= mcp_put(o, "type", json_string("string")) &&
		      mcp_put(o, "pattern", json_string("^[A-Za-z0-9_-][A-Za-z0-9._-]*$")) &&
		      mcp_put(o, "minLength", json_integer(1)) &&
		      mcp_put(o, "maxLength", json_integer((json_int_t)a->max));
		break;
	case ARG_CONTENT: {
		char d[256];
		snprintf(d, sizeof(d), "%s; at most %zu bytes once decoded", a->description,
			 s->max_artifact);
		ok &=
		    mcp_put(o, "type", json_string("string")) && mcp_put(o, "description", json_string(d));
		break;
	}
	}
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* titles: a tool's title is `title` (2025-06-18 on), else
 * annotations.title (2025-03-26, which has no `title`). */
json_t *mcp_tool_list(const struct mcp_server *s, bool titles)
{
	json_t *list = json_array();
	for (size_t t = 0; list && t < mcp_n_tools; t++) {
		const struct tool *tool = &mcp_tools[t];
		if (tool->calls && !s->hooks.call_agent)
			continue;
		json_t *props = json_object(), *required = json_array();
		bool ok = props && required;
		for (size_t i = 0; ok && i < tool->n_args; i++) {
			ok = mcp_put(props, tool->args[i].name, arg_schema(s, &tool->args[i]));
			if (ok && tool->args[i].required)
				ok = mcp_append(required, json_string(tool->args[i].name));
		}
		json_t *schema = json_object();
		ok = ok && mcp_put(schema, "type", json_string("object")) &&
		     mcp_put(schema, "properties", json_incref(props));
		if (ok && json_array_size(required))
			ok = mcp_put(schema, "required", json_incref(required));
		ok = ok && mcp_put(schema, "additionalProperties", json_false());
		json_decref(props);
		json_decref(required);
		json_t *entry = !ok ? NULL
			      : titles ? json_pack("{s:s, s:s, s:s, s:O}", "name", tool->name, "title",
						   tool->title, "description", tool->description,
						   "inputSchema", schema)
				       : json_pack("{s:s, s:{s:s}, s:s, s:O}", "name", tool->name,
						   "annotations", "title", tool->title,
						   "description", tool->description, "inputSchema",
						   schema);
		json_decref(schema);
		if (!mcp_append(list, entry)) {
			json_decref(list);
			return NULL;
		}
	}
	return list;
}


const struct tool *mcp_tool_find(const struct mcp_server *s, const char *name)
{
	for (size_t i = 0; i < mcp_n_tools; i++)
		if (strcmp(name, mcp_tools[i].name) == 0 &&
		    (!mcp_tools[i].calls || s->hooks.call_agent))
			return &mcp_tools[i];
	return NULL;
}
