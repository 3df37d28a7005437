/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "run/run_mcp.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/clock.h"
#include "run/netmsg.h"

#define NETMSG_CALL_ID_CAP (NETMSG_MAX_CALL_ID + 1)

struct appr {
	struct run_mcp *m;
	char id[40];
	char action[MCP_MAX_ACTION * 4 + 1];
	uint64_t created_ms;
	struct mcp_pending *p;
	struct event *timer;
	struct appr *next;
};

/* A call_agent call the supervisor is running. */
struct pcall {
	char id[NETMSG_CALL_ID_CAP];
	struct mcp_pending *p;
	struct pcall *next;
};

/* An HTTP request whose answer comes later: a waiting call answered as
 * one JSON object (p), or an SSE stream (stream). */
struct http_wait {
	struct run_mcp *m;
	struct evhttp_request *req;
	struct mcp_pending *p;
	struct mcp_stream *stream;
	struct http_wait *next;
};

struct run_mcp {
	struct event_base *base;
	struct run_mcp_hooks hooks;
	struct run_mcp_config cfg;
	char *run_id, *input;
	struct mcp_server *srv;
	struct evhttp *http;
	struct appr *apprs;
	struct pcall *calls;
	uint64_t next_call;
	struct http_wait *waits;
	struct event *tick; /* progress and keep-alives of open streams */
};

#define HTTP_TIMEOUT_S 60 /* a connection's idle read and a write */

/* Progress and keep-alives on the open streams, and when to come back. */
static void reschedule(struct run_mcp *m)
{
	uint64_t ms = m->srv ? mcp_server_tick(m->srv) : 0;
	if (!m->tick)
		return;
	if (!ms) {
		evtimer_del(m->tick);
		return;
	}
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
	evtimer_add(m->tick, &tv);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	reschedule(arg);
}

static enum mcp_phase phase_of(const struct run_mcp *m, int index)
{
	return m->cfg.has_setup && index == 0 ? MCP_PHASE_SETUP : MCP_PHASE_RUN;
}

/* ------------------------------------------------------------------ hooks */

static int h_step(void *ctx, enum mcp_phase phase, const char *name, const char *detail_json,
		  struct cdn_err *err)
{
	struct run_mcp *m = ctx;
	json_t *st = json_pack("{s:s, s:s, s:s}", "name", name, "source", "mcp", "phase",
			       mcp_phase_name(phase));
	if (!st)
		return cdn_err_set(err, ENOMEM, "step");
	if (detail_json) {
		json_t *d = json_loads(detail_json, 0, NULL);
		if (d)
			json_object_set_new(st, "detail", d);
	}
	m->hooks.step(m->hooks.ctx, st);
	json_decref(st);
	return 0;
}

/* The artifact goes where the agent's own files go, /workspace/out, so the
 * same collection rules (limits, extensions, secret scan) apply to it. */
static int h_artifact(void *ctx, enum mcp_phase phase, const char *name, const uint8_t *data,
		      size_t len, struct cdn_err *err)
{
	(void)phase;
	struct run_mcp *m = ctx;
	int r = m->hooks.artifact(m->hooks.ctx, name, data, len, err);
	if (r < 0)
		return r;
	json_t *ev = json_pack("{s:s, s:I}", "name", name, "size", (json_int_t)len);
	m->hooks.event(m->hooks.ctx, "mcp.artifact", ev);
	json_decref(ev);
	return 0;
}

static void appr_free(struct appr *a)
{
	struct appr **pp = &a->m->apprs;
	while (*pp && *pp != a)
		pp = &(*pp)->next;
	if (*pp)
		*pp = a->next;
	if (a->timer)
		event_free(a->timer);
	free(a);
}

static void appr_decide(struct appr *a, bool yes, const char *by, const char *why)
{
	struct run_mcp *m = a->m;
	struct mcp_approval d = { .approved = yes };
	snprintf(d.id, sizeof(d.id), "%s", a->id);
	snprintf(d.note, sizeof(d.note), "%s", why);
	json_t *ev = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "approval_id", a->id, "decision",
			       yes ? "approved" : "rejected", "by", by, "source", "mcp", "method",
			       "MCP", "action", a->action);
	struct mcp_pending *p = a->p;
	appr_free(a);
	m->hooks.event(m->hooks.ctx, "approval.decided", ev);
	json_decref(ev);
	mcp_approval_decide(p, &d);
}

static void on_appr_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	appr_decide(arg, false, "cordon", "nobody decided in time");
}

static int h_approval(void *ctx, enum mcp_phase phase, const char *action, const char *reason,
		      struct mcp_pending *p, struct cdn_err *err)
{
	struct run_mcp *m = ctx;
	struct appr *a = calloc(1, sizeof(*a));
	if (!a)
		return cdn_err_set(err, ENOMEM, "approval");
	a->m = m;
	a->p = p;
	a->created_ms = cdn_mono_ms();
	unsigned char rnd[8];
	randombytes_buf(rnd, sizeof(rnd));
	char hex[17];
	sodium_bin2hex(hex, sizeof(hex), rnd, sizeof(rnd));
	snprintf(a->id, sizeof(a->id), "apr_mcp_%s", hex);
	snprintf(a->action, sizeof(a->action), "%s", action);
	a->timer = evtimer_new(m->base, on_appr_timeout, a);
	if (!a->timer) {
		free(a);
		return cdn_err_set(err, ENOMEM, "approval");
	}
	struct timeval tv = { (time_t)(m->cfg.approval_timeout_ms / 1000),
			      (suseconds_t)(m->cfg.approval_timeout_ms % 1000) * 1000 };
	evtimer_add(a->timer, &tv);
	a->next = m->apprs;
	m->apprs = a;
	/* What the agent asks for and why, as such: dressing it up as a held
	 * egress request (host "request_approval", port 0, the action as the
	 * path) made every display that prints host:port and path show
	 * "request_approval:0deploy ...", and none showed the reason. */
	json_t *ev = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "approval_id", a->id,
			       "source", "mcp", "method", "MCP", "action", action, "reason", reason,
			       "phase", mcp_phase_name(phase), "timeout_s",
			       (json_int_t)(m->cfg.approval_timeout_ms / 1000));
	m->hooks.event(m->hooks.ctx, "approval.requested", ev);
	json_decref(ev);
	return 0;
}

static void pcall_free(struct run_mcp *m, struct pcall *pc)
{
	struct pcall **pp = &m->calls;
	while (*pp && *pp != pc)
		pp = &(*pp)->next;
	if (*pp)
		*pp = pc->next;
	free(pc);
}

/* call_agent: the supervisor checks and runs it; the answer comes back
 * as CALL_DONE (run_mcp_call_done). */
static int h_call(void *ctx, enum mcp_phase phase, const char *agent, const char *input_json,
		  struct mcp_pending *p, struct cdn_err *err)
{
	(void)phase;
	struct run_mcp *m = ctx;
	struct pcall *pc = calloc(1, sizeof(*pc));
	if (!pc)
		return cdn_err_set(err, ENOMEM, "call");
	snprintf(pc->id, sizeof(pc->id), "call_%llu", (unsigned long long)++m->next_call);
	pc->p = p;
	int r = m->hooks.call(m->hooks.ctx, pc->id, agent, input_json, err);
	if (r < 0) {
		free(pc);
		return r;
	}
	pc->next = m->calls;
	m->calls = pc;
	return 0;
}

void run_mcp_call_done(struct run_mcp *m, const char *id, bool is_error, const char *text,
		       const char *result_json)
{
	for (struct pcall *pc = m->calls; pc; pc = pc->next)
		if (strcmp(pc->id, id) == 0) {
			struct mcp_pending *p = pc->p;
			pcall_free(m, pc);
			struct mcp_call_result res = { .is_error = is_error,
						       .text = text,
						       .structured_json = result_json };
			mcp_call_complete(p, &res);
			reschedule(m);
			return;
		}
}

static void h_cancel(void *ctx, struct mcp_pending *p, const char *why)
{
	struct run_mcp *m = ctx;
	for (struct pcall *pc = m->calls; pc; pc = pc->next)
		if (pc->p == p) {
			/* The agent stopped waiting; the run it asked for goes
			 * on, bounded by this run (its end cancels it). */
			pcall_free(m, pc);
			return;
		}
	for (struct appr *a = m->apprs; a; a = a->next)
		if (a->p == p) {
			json_t *ev = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "approval_id", a->id,
					       "decision", "abandoned", "source", "mcp", "method", "MCP",
					       "action", a->action, "detail", why ? why : "");
			appr_free(a);
			m->hooks.event(m->hooks.ctx, "approval.decided", ev);
			json_decref(ev);
			return;
		}
}

static int h_input(void *ctx, enum mcp_phase phase, char **json, size_t *len, struct cdn_err *err)
{
	(void)phase;
	struct run_mcp *m = ctx;
	*json = strdup(m->input ? m->input : "{}");
	if (!*json)
		return cdn_err_set(err, ENOMEM, "input");
	*len = strlen(*json);
	return 0;
}

static int h_log(void *ctx, enum mcp_phase phase, enum mcp_log_level level, const char *message,
		 struct cdn_err *err)
{
	(void)err;
	struct run_mcp *m = ctx;
	json_t *ev = json_pack("{s:s, s:s, s:s}", "level", mcp_log_level_name(level), "message",
			       message, "phase", mcp_phase_name(phase));
	m->hooks.event(m->hooks.ctx, "log", ev);
	json_decref(ev);
	return 0;
}

static void h_audit(void *ctx, const char *event, const char *detail)
{
	struct run_mcp *m = ctx;
	/* Every run's phases end: not news. Refusals and sessions are. */
	if (strcmp(event, "mcp.phase_ended") == 0)
		return;
	json_t *ev = json_pack("{s:s}", "detail", detail ? detail : "");
	m->hooks.event(m->hooks.ctx, event, ev);
	json_decref(ev);
}

/* --------------------------------------------------------------- HTTP */

static void add_headers(struct evhttp_request *req, const struct mcp_response *r)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	for (size_t i = 0; i < r->n_headers; i++)
		evhttp_add_header(out, r->headers[i].name, r->headers[i].value);
	/* Content-Type comes with the response's own headers. */
	if (r->body && !evhttp_find_header(out, "Content-Type"))
		evhttp_add_header(out, "Content-Type", "application/json");
}

static void send_resp(struct evhttp_request *req, struct mcp_response *r)
{
	add_headers(req, r);
	struct evbuffer *b = evbuffer_new();
	if (b && r->body)
		evbuffer_add(b, r->body, r->body_len);
	evhttp_send_reply(req, r->status ? r->status : 500, NULL, b);
	if (b)
		evbuffer_free(b);
}

static void wait_free(struct http_wait *w)
{
	struct http_wait **pp = &w->m->waits;
	while (*pp && *pp != w)
		pp = &(*pp)->next;
	if (*pp)
		*pp = w->next;
	free(w);
}

static void unhook(struct http_wait *w)
{
	struct evhttp_connection *conn = evhttp_request_get_connection(w->req);
	if (conn)
		evhttp_connection_set_closecb(conn, NULL, NULL);
}

static void on_complete(void *ctx, struct mcp_response *resp)
{
	struct http_wait *w = ctx;
	unhook(w);
	send_resp(w->req, resp);
	mcp_response_free(resp);
	wait_free(w);
}

/* A stream's sink: its events go out as chunks of the open response. */
static void sink_write(void *ctx, const char *data, size_t len)
{
	struct http_wait *w = ctx;
	struct evbuffer *b = evbuffer_new();
	if (!b)
		return;
	evbuffer_add(b, data, len);
	evhttp_send_reply_chunk(w->req, b);
	evbuffer_free(b);
}

static void sink_end(void *ctx)
{
	struct http_wait *w = ctx;
	unhook(w);
	evhttp_send_reply_end(w->req);
	wait_free(w);
}

static void on_close(struct evhttp_connection *conn, void *arg)
{
	(void)conn;
	struct http_wait *w = arg;
	struct run_mcp *m = w->m;
	struct mcp_pending *p = w->p;
	struct mcp_stream *st = w->stream;
	/* A connection that failed (the client left, or a timeout) first
	 * takes our unanswered request off itself, and leaves it to us: it
	 * is never answered now, so it is freed here, or it would leak. One
	 * freed with its connection for another reason is still on it. */
	if (!evhttp_request_get_connection(w->req))
		evhttp_request_free(w->req);
	wait_free(w);
	/* A stream can be resumed (GET, Last-Event-ID) and its call waits
	 * on; a call answered as one JSON object has lost its client. */
	if (st)
		mcp_stream_detach(st);
	else if (p)
		mcp_pending_cancel(p);
	reschedule(m);
}

/* A header given once, or NULL; *dup when given more than once. */
static const char *one_header(struct evkeyvalq *h, const char *name, bool *dup)
{
	const char *v = NULL;
	int n = 0;
	for (struct evkeyval *kv = h->tqh_first; kv; kv = kv->next.tqe_next)
		if (strcasecmp(kv->key, name) == 0) {
			v = kv->value;
			n++;
		}
	if (n > 1)
		*dup = true;
	return v;
}

/* The answer that goes on later: keep the request, hear of its close. */
static void keep_waiting(struct http_wait *w, int rc, struct mcp_response *resp,
			 struct mcp_pending *p)
{
	struct run_mcp *m = w->m;
	w->p = rc == MCP_PENDING ? p : NULL;
	w->stream = rc == MCP_STREAM ? resp->stream : NULL;
	w->next = m->waits;
	m->waits = w;
	struct evhttp_connection *conn = evhttp_request_get_connection(w->req);
	if (conn)
		evhttp_connection_set_closecb(conn, on_close, w);
	/*
	 * The connection's idle timeout (HTTP_TIMEOUT_S) cannot end the wait:
	 * libevent stops reading once a request is in, so a request answered
	 * later is not timed; a stream's writes (progress, and keep-alives
	 * every MCP_KEEPALIVE_MS) re-arm it. A client that leaves is noticed
	 * when a write to it fails: on a stream within two keep-alives.
	 */
	if (rc == MCP_STREAM) {
		add_headers(w->req, resp);
		evhttp_send_reply_start(w->req, resp->status, NULL);
		if (resp->body_len)
			sink_write(w, resp->body, resp->body_len);
		mcp_response_free(resp);
	}
}

static void on_get(struct run_mcp *m, struct evhttp_request *req, struct http_wait *w)
{
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	bool dup = false;
	struct mcp_get g = {
		.session_id = one_header(h, "Mcp-Session-Id", &dup),
		.protocol_version = one_header(h, "MCP-Protocol-Version", &dup),
		.accept = one_header(h, "Accept", &dup),
		.last_event_id = one_header(h, "Last-Event-ID", &dup),
		.sink = { .write = sink_write, .end = sink_end, .ctx = w },
	};
	if (dup) {
		free(w);
		evhttp_send_error(req, 400, "a header is repeated");
		return;
	}
	struct mcp_response resp = { 0 };
	int r = mcp_handle_get(m->srv, &g, &resp);
	if (r == MCP_STREAM) {
		keep_waiting(w, r, &resp, NULL);
	} else {
		free(w);
		send_resp(req, &resp);
		mcp_response_free(&resp);
	}
	reschedule(m);
}

static void on_http(struct evhttp_request *req, void *arg)
{
	struct run_mcp *m = arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	if (!path || strcmp(path, "/mcp") != 0) {
		evhttp_send_error(req, 404, "the MCP endpoint is /mcp");
		return;
	}
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	if (cmd != EVHTTP_REQ_POST && cmd != EVHTTP_REQ_GET) {
		/* Sessions end with their phase, never at the client's word. */
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, POST");
		evhttp_send_error(req, 405, "GET and POST only (sessions end with their phase)");
		return;
	}
	struct http_wait *w = calloc(1, sizeof(*w));
	if (!w) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	w->m = m;
	w->req = req;
	if (cmd == EVHTTP_REQ_GET) {
		on_get(m, req, w);
		return;
	}
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	char *body = malloc(len + 1);
	if (!body) {
		free(w);
		evhttp_send_error(req, 500, NULL);
		return;
	}
	evbuffer_remove(in, body, len);
	body[len] = '\0';
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	bool dup = false;
	struct mcp_request rq = {
		.body = body,
		.body_len = len,
		.authorization = one_header(h, "Authorization", &dup),
		.session_id = one_header(h, "Mcp-Session-Id", &dup),
		.protocol_version = one_header(h, "MCP-Protocol-Version", &dup),
		.method = one_header(h, "Mcp-Method", &dup),
		.name = one_header(h, "Mcp-Name", &dup),
		.accept = one_header(h, "Accept", &dup),
		.on_complete = on_complete,
		.complete_ctx = w,
		.sink = { .write = sink_write, .end = sink_end, .ctx = w },
	};
	if (dup) {
		free(body);
		free(w);
		evhttp_send_error(req, 400, "a header is repeated");
		return;
	}
	struct mcp_response resp = { 0 };
	struct mcp_pending *p = NULL;
	int r = mcp_handle(m->srv, &rq, &resp, &p);
	sodium_memzero(body, len);
	free(body);
	if (r == MCP_PENDING || r == MCP_STREAM) {
		keep_waiting(w, r, &resp, p);
	} else {
		free(w);
		send_resp(req, &resp);
		mcp_response_free(&resp);
	}
	reschedule(m);
}

int run_mcp_decide(struct run_mcp *m, const char *id, bool approve, const char *by,
		   struct cdn_err *err)
{
	for (struct appr *a = m->apprs; a; a = a->next)
		if (id && strcmp(a->id, id) == 0) {
			char who[96];
			snprintf(who, sizeof(who), "%s", by && *by ? by : "operator");
			appr_decide(a, approve, who, approve ? "approved" : "rejected by a human");
			reschedule(m);
			return 0;
		}
	return cdn_err_msg(err, ENOENT, "no such pending approval");
}

/* ------------------------------------------------------------------ API */

int run_mcp_new(struct event_base *base, const struct run_mcp_config *cfg,
		const struct run_mcp_hooks *hooks, struct run_mcp **out, struct cdn_err *err)
{
	struct run_mcp *m = calloc(1, sizeof(*m));
	if (!m)
		return cdn_err_set(err, ENOMEM, "MCP");
	m->base = base;
	m->hooks = *hooks;
	m->cfg = *cfg;
	m->cfg.tokens[0] = m->cfg.tokens[1] = NULL; /* not kept past the import */
	m->run_id = strdup(cfg->run_id);
	m->input = strdup(cfg->input_json ? cfg->input_json : "{}");
	if (!m->run_id || !m->input) {
		run_mcp_free(m);
		return cdn_err_set(err, ENOMEM, "MCP");
	}
	struct mcp_hooks mh = {
		.ctx = m,
		.report_step = h_step,
		.save_artifact = h_artifact,
		.request_approval = h_approval,
		.approval_cancel = h_cancel,
		.get_input = h_input,
		.log = h_log,
		.on_audit = h_audit,
		.call_agent = cfg->calls && hooks->call ? h_call : NULL,
	};
	struct mcp_config mc = { .approval_timeout_ms = cfg->approval_timeout_ms };
	int r = mcp_server_new(&mc, &mh, &m->srv, err);
	if (r == 0 && !(m->tick = evtimer_new(base, on_tick, m)))
		r = cdn_err_set(err, ENOMEM, "MCP: timer");
	enum mcp_phase first = phase_of(m, 0);
	if (r == 0)
		r = mcp_phase_begin(m->srv, first, err);
	for (int i = 0; r == 0 && i < (cfg->has_setup ? 2 : 1); i++)
		r = mcp_token_import(m->srv, phase_of(m, i), cfg->token_ttl_ms, cfg->tokens[i], err);
	if (r < 0) {
		run_mcp_free(m);
		return r;
	}
	*out = m;
	return 0;
}

int run_mcp_attach(struct run_mcp *m, int listen_fd, struct cdn_err *err)
{
	m->http = evhttp_new(m->base);
	if (!m->http) {
		close(listen_fd);
		return cdn_err_set(err, ENOMEM, "MCP: http");
	}
	evhttp_set_max_body_size(m->http, MCP_MAX_BODY);
	evhttp_set_max_headers_size(m->http, 16384);
	evhttp_set_timeout(m->http, HTTP_TIMEOUT_S);
	evhttp_set_allowed_methods(m->http, EVHTTP_REQ_POST | EVHTTP_REQ_GET |
						    EVHTTP_REQ_DELETE);
	evhttp_set_gencb(m->http, on_http, m);
	evutil_make_socket_nonblocking(listen_fd);
	if (!evhttp_accept_socket_with_handle(m->http, listen_fd)) {
		close(listen_fd);
		return cdn_err_set(err, EIO, "MCP: serve the listener");
	}
	return 0;
}

void run_mcp_phase_ended(struct run_mcp *m, int phase)
{
	enum mcp_phase ended = phase_of(m, phase);
	mcp_phase_end(m->srv, ended);
	if (ended == MCP_PHASE_SETUP) {
		struct cdn_err err = { 0 };
		(void)mcp_phase_begin(m->srv, MCP_PHASE_RUN, &err);
	}
	reschedule(m);
}

void run_mcp_free(struct run_mcp *m)
{
	if (!m)
		return;
	/* Pending calls complete with an error inside mcp_server_free, and
	 * streams end (each answer goes out and its wait is freed); their
	 * connections must not call back into a server that is going away. */
	for (struct http_wait *w = m->waits; w; w = w->next) {
		struct evhttp_connection *conn = evhttp_request_get_connection(w->req);
		if (conn)
			evhttp_connection_set_closecb(conn, NULL, NULL);
	}
	if (m->tick)
		event_free(m->tick);
	m->tick = NULL;
	mcp_server_free(m->srv);
	m->srv = NULL;
	while (m->waits)
		wait_free(m->waits);
	while (m->apprs)
		appr_free(m->apprs);
	while (m->calls)
		pcall_free(m, m->calls);
	if (m->http)
		evhttp_free(m->http);
	free(m->run_id);
	free(m->input);
	free(m);
}
