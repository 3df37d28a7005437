/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The MCP protocol layer: SSE streams (a waiting call's answer, a
 * session's GET stream), their progress and keep-alives, and their
 * resumption with GET and Last-Event-ID.
 */

#include "mcp/internal.h"

/* ---------------------------------------------------------------------------
 * SSE streams
 */

/* Accept lists text/event-stream (explicitly: a client that sends only
 * "*" + "/" + "*", as curl does, gets JSON), not with q=0. */
bool mcp_accepts_sse(const char *accept)
{
	const char *p = accept;
	if (!p || strnlen(p, MAX_HEADER + 1) > MAX_HEADER)
		return false;
	while (*p) {
		p += strspn(p, " \t,");
		size_t n = strcspn(p, ",");
		size_t t = strcspn(p, ";,");
		size_t tl = t;
		while (tl && (p[tl - 1] == ' ' || p[tl - 1] == '\t'))
			tl--;
		if (tl == 17 && strncasecmp(p, "text/event-stream", 17) == 0) {
			/* the parameters, for q=0 (q=0, q=0.0, ... q=0.000) */
			bool zero = false;
			for (const char *q = p + t; q < p + n; q++)
				if ((q[0] == 'q' || q[0] == 'Q') && q[1] == '=' && q[2] == '0' &&
				    strspn(q + 3, ".0") == strcspn(q + 3, ",; \t"))
					zero = true;
			if (!zero)
				return true;
		}
		p += n;
	}
	return false;
}

/* One SSE event: "id: S-N" when the stream is resumable, then the data
 * (one line: compact JSON never holds a raw newline; "" for a priming
 * event). malloc'd, NUL-terminated; NULL when out of memory. */
static char *sse_event(const struct mcp_stream *st, unsigned seq, const char *data, size_t *len)
{
	char id[48] = "";
	if (st->resumable)
		snprintf(id, sizeof(id), "id: %u-%u\n", st->serial, seq);
	size_t n = strlen(id) + strlen(data) + 9; /* "data: ", "\n\n", NUL */
	char *out = malloc(n);
	if (!out)
		return NULL;
	snprintf(out, n, "%sdata: %s\n\n", id, data);
	*len = n - 1;
	return out;
}

static void stream_write(struct mcp_stream *st, const char *data, size_t len)
{
	if (st->sink.write)
		st->sink.write(st->sink.ctx, data, len);
}

/* Ends the connection's part in the stream (the stream itself may live
 * on, detached, for a resume). */
void mcp_stream_end_sink(struct mcp_stream *st)
{
	struct mcp_sink sink = st->sink;
	st->sink = (struct mcp_sink){ 0 };
	if (sink.end)
		sink.end(sink.ctx);
}

void mcp_stream_free(struct mcp_stream *st)
{
	struct mcp_server *s = st->s;
	for (size_t i = 0; i < MCP_MAX_STREAMS; i++)
		if (s->streams[i] == st)
			s->streams[i] = NULL;
	json_decref(st->progress_token);
	free(st->final);
	free(st);
}

static bool session_alive(const struct mcp_server *s, int slot, unsigned serial)
{
	return slot >= 0 && slot < MCP_MAX_SESSIONS && s->sessions[slot].open &&
	       s->sessions[slot].serial == serial;
}

/* A new stream for session slot, or NULL when MCP_MAX_STREAMS are held
 * and none can go: the oldest detached one that nothing waits on is
 * evicted (it could only have been resumed). */
struct mcp_stream *mcp_stream_new(struct mcp_server *s, enum stream_kind kind, int session,
				     bool resumable)
{
	int slot = -1, oldest = -1;
	for (int i = 0; i < MCP_MAX_STREAMS && slot < 0; i++)
		if (!s->streams[i])
			slot = i;
	for (int i = 0; i < MCP_MAX_STREAMS && slot < 0; i++) {
		const struct mcp_stream *o = s->streams[i];
		if (!o->sink.write && !o->p &&
		    (oldest < 0 || o->touched_ms < s->streams[oldest]->touched_ms))
			oldest = i;
	}
	if (slot < 0 && oldest >= 0) {
		mcp_stream_free(s->streams[oldest]);
		slot = oldest;
	}
	if (slot < 0)
		return NULL;
	struct mcp_stream *st = calloc(1, sizeof(*st));
	if (!st)
		return NULL;
	st->s = s;
	st->kind = kind;
	st->serial = ++s->next_stream;
	st->session = session;
	st->session_serial = s->sessions[session].serial;
	st->resumable = resumable;
	st->started_ms = st->touched_ms = mcp_now_ms(s);
	s->streams[slot] = st;
	return st;
}

/* The answer of a stream's beginning: 200, text/event-stream, the first
 * bytes (a priming event: an id and no data, so the client has an id to
 * resume from at once), and the rest through sink. */
int mcp_stream_begin(struct reply *r, struct mcp_stream *st, const struct mcp_sink *sink,
			bool prime)
{
	mcp_reply_reset(r, false);
	st->sink = *sink;
	st->touched_ms = mcp_now_ms(st->s);
	st->next_ms = st->touched_ms + (st->progress_token ? st->s->progress_ms : MCP_KEEPALIVE_MS);
	size_t len = 0;
	/* Out of memory here only costs the priming event. */
	char *first = prime && st->resumable ? sse_event(st, ++st->seq, "", &len) : NULL;
	r->out->status = 200;
	r->out->body = first;
	r->out->body_len = first ? len : 0;
	r->out->stream = st;
	mcp_add_header(r->out, "Content-Type", "text/event-stream");
	mcp_add_header(r->out, "Cache-Control", "no-store");
	/* so a buffering proxy in between passes each event on at once */
	mcp_add_header(r->out, "X-Accel-Buffering", "no");
	if (r->new_session)
		mcp_add_header(r->out, "Mcp-Session-Id", r->new_session);
	return MCP_STREAM;
}

/* A stream's call was answered (body: the JSON-RPC response; NULL: no
 * answer, as after notifications/cancelled). The event is sent, the
 * connection's part ends, and a resumable stream keeps the event for a
 * client that lost it with its connection. */
void mcp_stream_finish(struct mcp_stream *st, const char *body)
{
	st->p = NULL;
	char *ev = NULL;
	size_t len = 0;
	if (body && (ev = sse_event(st, ++st->seq, body, &len)))
		stream_write(st, ev, len);
	mcp_stream_end_sink(st);
	st->touched_ms = mcp_now_ms(st->s);
	if (!st->resumable || !ev) {
		free(ev);
		mcp_stream_free(st);
		return;
	}
	st->final = ev;
	st->final_len = len;
	st->final_seq = st->seq;
}

/* notifications/progress of a waiting call: how long it has waited, out
 * of how long it may (clients that reset their timeout on progress, such
 * as the TypeScript SDK with resetTimeoutOnProgress, then keep waiting). */
static void stream_progress(struct mcp_stream *st, uint64_t now)
{
	struct mcp_server *s = st->s;
	uint64_t waited = now - st->started_ms;
	char msg[128];
	bool call = st->p && st->p->is_call;
	if (call)
		snprintf(msg, sizeof(msg), "waiting for the called agent's run (%llu s)",
			 (unsigned long long)(waited / 1000));
	else if (s->approval_timeout_ms)
		snprintf(msg, sizeof(msg), "waiting for a human's decision (%llu s of at most %llu s)",
			 (unsigned long long)(waited / 1000),
			 (unsigned long long)(s->approval_timeout_ms / 1000));
	else
		snprintf(msg, sizeof(msg), "waiting for a human's decision (%llu s)",
			 (unsigned long long)(waited / 1000));
	json_auto_t *params = json_pack("{s:O, s:I, s:s}", "progressToken", st->progress_token,
					"progress", (json_int_t)waited, "message", msg);
	if (params && !call && s->approval_timeout_ms && waited < s->approval_timeout_ms)
		mcp_put(params, "total", json_integer((json_int_t)s->approval_timeout_ms));
	json_auto_t *n = json_pack("{s:s, s:s, s:O}", "jsonrpc", "2.0", "method",
				   "notifications/progress", "params", params);
	_cleanup_free_ char *data = n ? mcp_dump_compact(n, NULL) : NULL;
	size_t len = 0;
	_cleanup_free_ char *ev = data ? sse_event(st, ++st->seq, data, &len) : NULL;
	if (ev)
		stream_write(st, ev, len);
}

uint64_t mcp_server_tick(struct mcp_server *s)
{
	if (!s)
		return 0;
	uint64_t now = mcp_now_ms(s), next = 0;
	for (size_t i = 0; i < MCP_MAX_STREAMS; i++) {
		struct mcp_stream *st = s->streams[i];
		if (!st || !st->sink.write)
			continue;
		if (now >= st->next_ms) {
			bool progress = st->kind == STREAM_CALL && st->p && st->progress_token;
			if (progress)
				stream_progress(st, now);
			else
				stream_write(st, ": keep-alive\n\n", 14);
			st->next_ms = now + (progress ? s->progress_ms : MCP_KEEPALIVE_MS);
		}
		uint64_t wait = st->next_ms > now ? st->next_ms - now : 1;
		if (!next || wait < next)
			next = wait;
	}
	return next;
}

void mcp_stream_detach(struct mcp_stream *st)
{
	if (!st)
		return;
	struct mcp_server *s = st->s;
	st->sink = (struct mcp_sink){ 0 };
	st->touched_ms = mcp_now_ms(s);
	if (st->resumable)
		return; /* a GET with Last-Event-ID may take it up again */
	/* 2026-07-28: closing the stream is how a client cancels its call. */
	struct mcp_pending *p = st->p;
	if (p) {
		p->stream = NULL;
		mcp_pending_remove(p);
		s->hooks.approval_cancel(s->hooks.ctx, p, "the client closed the stream");
		mcp_pending_free(p);
	}
	mcp_stream_free(st);
}

/* Ends (and forgets) every stream whose session is gone. */
void mcp_streams_prune(struct mcp_server *s)
{
	for (size_t i = 0; i < MCP_MAX_STREAMS; i++) {
		struct mcp_stream *st = s->streams[i];
		if (!st || session_alive(s, st->session, st->session_serial))
			continue;
		if (st->p) {
			/* not reached: calls are answered before their session
			 * closes (mcp_abort_pending); should one remain, it is
			 * answered now rather than forgotten */
			st->p->stream = NULL;
			st->p = NULL;
		}
		mcp_stream_end_sink(st);
		mcp_stream_free(st);
	}
}

/* ---------------------------------------------------------------------------
 * GET: a session's own stream, or the resume of one
 */

/* "S-N", decimal, no sign, no leading zero: the stream's serial and the
 * sequence number of the last event the client saw. */
static bool event_id_parse(const char *v, unsigned *serial, unsigned *seq)
{
	size_t n = strnlen(v, MCP_MAX_EVENT_ID + 1);
	if (n == 0 || n > MCP_MAX_EVENT_ID)
		return false;
	unsigned long long part[2] = { 0, 0 };
	int k = 0;
	size_t digits = 0;
	for (size_t i = 0; i < n; i++) {
		char ch = v[i];
		if (ch == '-' && k == 0 && digits) {
			k = 1;
			digits = 0;
		} else if (ch >= '0' && ch <= '9' && digits < 10 && !(digits == 1 && part[k] == 0)) {
			part[k] = part[k] * 10 + (unsigned)(ch - '0');
			digits++;
		} else {
			return false;
		}
	}
	if (k != 1 || !digits || part[0] > UINT_MAX || part[1] > UINT_MAX)
		return false;
	*serial = (unsigned)part[0];
	*seq = (unsigned)part[1];
	return true;
}

static struct mcp_stream *stream_of_session(struct mcp_server *s, int session, unsigned serial,
					    enum stream_kind kind)
{
	for (size_t i = 0; i < MCP_MAX_STREAMS; i++) {
		struct mcp_stream *st = s->streams[i];
		if (st && st->session == session &&
		    st->session_serial == s->sessions[session].serial &&
		    (serial ? st->serial == serial : st->kind == kind))
			return st;
	}
	return NULL;
}

/* 2026-07-28 removed the GET stream: 405, as it says. */
static int refuse_get(struct reply *r, int version)
{
	int rc = mcp_reply_error(r, 405, MCP_ERR_INVALID_REQUEST, NULL, "protocol %s has no GET stream",
			     versions[version].name);
	if (rc == 0)
		mcp_add_header(r->out, "Allow", "POST");
	return rc;
}

static int get_stream(struct reply *r, const struct mcp_get *in)
{
	struct mcp_server *s = r->s;
	if (!mcp_accepts_sse(in->accept))
		return mcp_reply_error(r, 406, MCP_ERR_INVALID_REQUEST, NULL,
				   "GET opens an SSE stream: Accept must list text/event-stream");
	int hv = -1;
	if (in->protocol_version &&
	    (!mcp_header_value_ok(in->protocol_version) || (hv = mcp_version_find(in->protocol_version)) < 0))
		return mcp_reply_error(r, 400, MCP_ERR_UNSUPPORTED_VERSION,
				   mcp_unsupported_data(in->protocol_version),
				   "Unsupported protocol version");
	if (hv >= 0 && versions[hv].era == ERA_STATELESS)
		return refuse_get(r, hv);
	if (!in->session_id)
		return mcp_reply_error(r, 400, MCP_ERR_SESSION_REQUIRED, NULL,
				   "no session: a GET stream belongs to a session (Mcp-Session-Id)");
	int i = mcp_session_find(s, in->session_id);
	if (i < 0 || (int)s->sessions[i].phase != s->current) {
		mcp_audit(s, "mcp.session_refused", "unknown or closed session id (phase %s, GET)",
		      s->current >= 0 ? mcp_phase_name((enum mcp_phase)s->current) : "none");
		return mcp_reply_error(r, 404, MCP_ERR_SESSION_UNKNOWN, NULL,
				   "unknown or closed session: open a new one");
	}
	int v = s->sessions[i].version;
	if (versions[v].era == ERA_STATELESS)
		return refuse_get(r, v);
	if (hv >= 0 && hv != v)
		return mcp_reply_error(r, 400, MCP_ERR_INVALID_REQUEST, NULL,
				   "MCP-Protocol-Version %s is not the version negotiated for this "
				   "session (%s)",
				   versions[hv].name, versions[v].name);
	r->version = v;
	struct mcp_stream *st = NULL;
	if (in->last_event_id) {
		/* A resume: the stream named, of this very session. */
		unsigned serial = 0, seq = 0;
		if (event_id_parse(in->last_event_id, &serial, &seq) && serial)
			st = stream_of_session(s, i, serial, STREAM_CALL);
		if (!st || seq > st->seq)
			return mcp_reply_error(r, 400, MCP_ERR_INVALID_REQUEST, NULL,
					   "Last-Event-ID names no stream of this session that can "
					   "be resumed");
		st->touched_ms = mcp_now_ms(s);
		if (st->kind == STREAM_CALL && !st->p) {
			/* answered already: the answer again, unless the client
			 * saw it; then the stream is over */
			mcp_reply_reset(r, false);
			r->out->status = 200;
			mcp_add_header(r->out, "Content-Type", "text/event-stream");
			mcp_add_header(r->out, "Cache-Control", "no-store");
			if (st->final && seq < st->final_seq) {
				r->out->body = malloc(st->final_len + 1);
				if (!r->out->body)
					return mcp_reply_nomem(r);
				memcpy(r->out->body, st->final, st->final_len + 1);
				r->out->body_len = st->final_len;
			}
			return 0;
		}
		/* still going: this connection takes it over from the last */
		mcp_stream_end_sink(st);
		return mcp_stream_begin(r, st, &in->sink, st->kind == STREAM_GET);
	}
	st = stream_of_session(s, i, 0, STREAM_GET);
	if (st && st->sink.write)
		return mcp_reply_error(r, 409, MCP_ERR_INVALID_REQUEST, NULL,
				   "this session's GET stream is open already");
	if (!st && !(st = mcp_stream_new(s, STREAM_GET, i, true)))
		return mcp_reply_error(r, 503, MCP_ERR_INTERNAL, NULL, "too many open streams");
	return mcp_stream_begin(r, st, &in->sink, true);
}

int mcp_handle_get(struct mcp_server *s, const struct mcp_get *req, struct mcp_response *out)
{
	memset(out, 0, sizeof(*out));
	struct reply r = { .s = s, .out = out, .version = -1 };
	if (!req->sink.write || !req->sink.end)
		return mcp_reply_error(&r, 405, MCP_ERR_INVALID_REQUEST, NULL, "no GET stream here");
	int rc = get_stream(&r, req);
	if (rc == MCP_STREAM || rc < 0)
		return rc;
	return out->status == 500 && !out->body ? -ENOMEM : 0;
}

