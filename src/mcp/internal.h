/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the parts of the MCP protocol layer share, and nothing else: the
 * server's state, a request being handled (struct call), a reply being
 * built, the tool table's types, and the functions one part calls in
 * another. Not installed; mcp.h is the contract.
 *
 *   mcp.c          the methods, and the stages every POST goes through
 *   mcp_rpc.c      versions, serialising, replies, text checks and bounds
 *   mcp_session.c  state helpers, tokens, sessions, lifetime and phases
 *   mcp_tools.c    the tool table, the tools, waiting approvals
 *   mcp_stream.c   SSE streams, progress, GET and Last-Event-ID
 */
#ifndef CORDON_MCP_INTERNAL_H
#define CORDON_MCP_INTERNAL_H

#include "mcp/mcp.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/cleanup.h"
#include "base/clock.h"
#include "base/hash.h"
#include "config.h"


#define HASH_BYTES   crypto_hash_sha256_BYTES
#define RANDOM_BYTES 32
#define FP_HEX	     8	     /* hex digits of a token's hash shown in audit lines */
#define LIST_TTL_MS  3600000 /* the tool list never changes during a run */
#define MAX_ARGS     4	     /* arguments of the widest tool */
#define MAX_META_KEY 256     /* bytes of a _meta key */
#define MAX_HEADER   1024    /* bytes of a header value we read */
#define AUDIT_MAX    256
#define MSG_MAX	     256

#define META_VERSION	 "io.modelcontextprotocol/protocolVersion"
#define META_CLIENT_INFO "io.modelcontextprotocol/clientInfo"
#define META_CLIENT_CAPS "io.modelcontextprotocol/clientCapabilities"
#define META_LOG_LEVEL	 "io.modelcontextprotocol/logLevel"
#define META_SERVER_INFO "io.modelcontextprotocol/serverInfo"
#define INSTRUCTIONS                                                                               \
	"This endpoint belongs to the cordon run this agent is part of. Report progress with "     \
	"report_step, save outputs with save_artifact, ask a human with request_approval, read "   \
	"the run's input with get_input, and log with log."

/* ---------------------------------------------------------------------------
 * Versions
 */

enum era {
	ERA_HANDSHAKE, /* initialize, Mcp-Session-Id */
	ERA_STATELESS, /* per-request _meta, server/discover */
};

struct version {
	const char *name;
	enum era era;
	/* Tool input validation errors are tool results with isError (from
	 * 2025-11-25, SEP-1303), not JSON-RPC -32602 as in 2025-06-18. */
	bool arg_errors_in_result;
	/* `title` on tools and serverInfo (from 2025-06-18); 2025-03-26 has
	 * only a tool's annotations.title. */
	bool titles;
	/* JSON-RPC batches (2025-03-26 only: 2025-06-18 removed them). */
	bool batches;
};

/* Latest first: server/discover and the unsupported-version error list
 * them in this order. */
static const struct version versions[] = {
	{ MCP_VERSION_2026_07_28, ERA_STATELESS, true, true, false },
	{ MCP_VERSION_2025_11_25, ERA_HANDSHAKE, true, true, false },
	{ MCP_VERSION_2025_06_18, ERA_HANDSHAKE, false, true, false },
	{ MCP_VERSION_2025_03_26, ERA_HANDSHAKE, false, false, true },
};

/* initialize answers an unsupported request with the latest version that
 * has a handshake (2026-07-28 has none). */
#define LATEST_HANDSHAKE 1

/* The eight levels of notifications/message, in order (enum mcp_log_level). */
static const char *const log_levels[] = { "debug",    "info",  "notice",    "warning", "error",
					  "critical", "alert", "emergency", NULL };

/* ---------------------------------------------------------------------------
 * State
 */

enum token_state {
	TOKEN_FREE,
	TOKEN_UNUSED,
	TOKEN_USED,
	TOKEN_REVOKED, /* its phase ended; kept to say so when it comes back */
};

struct token {
	enum token_state state;
	enum mcp_phase phase;
	uint64_t expires_ms;
	uint8_t hash[HASH_BYTES];
};

struct session {
	bool open;
	enum mcp_phase phase;
	int version;	  /* handshake: negotiated; stateless: 2026-07-28 */
	bool initialized; /* notifications/initialized seen (informational) */
	unsigned serial;  /* names the session in audit lines */
	uint8_t hash[HASH_BYTES];
};

struct mcp_pending {
	struct mcp_server *s;
	bool is_call; /* call_agent, else request_approval */
	/* call_agent: the answer given inside the hook */
	bool res_error;
	char *res_text;
	json_t *res_structured;
	enum mcp_phase phase;
	int version;
	json_t *id;
	bool in_hook;
	bool decided;
	struct mcp_approval decision;
	mcp_complete_fn done;
	void *done_ctx;
	/* The session this very request opened, to announce with the answer. */
	char new_session[MCP_SESSION_ID_LEN + 1];
	/* The session that asked (notifications/cancelled must come from it). */
	int session;
	unsigned session_serial;
	/* Answered as an SSE stream, or NULL: answered through done. */
	struct mcp_stream *stream;
};

enum stream_kind {
	STREAM_CALL, /* the answer of a waiting call */
	STREAM_GET,  /* a session's own stream (GET without Last-Event-ID) */
};

/*
 * An SSE stream. Its events are named "<serial>-<seq>" (handshake era
 * only: 2026-07-28 has no resumption), unique within the server, so a
 * Last-Event-ID names the stream and the point in it. A stream lives on
 * without a connection (detached) until it is resumed, evicted (the
 * oldest detached one that nothing waits on, when the table is full), or
 * its session ends.
 */
struct mcp_stream {
	struct mcp_server *s;
	enum stream_kind kind;
	unsigned serial;
	int session; /* slot */
	unsigned session_serial;
	bool resumable;
	struct mcp_sink sink; /* write NULL: detached */
	unsigned seq;	      /* of the last event */
	struct mcp_pending *p; /* STREAM_CALL: the call; NULL once answered */
	json_t *progress_token; /* the call's, or NULL: keep-alives only */
	uint64_t started_ms, next_ms, touched_ms;
	char *final; /* the answer's event, kept for a resume */
	size_t final_len;
	unsigned final_seq;
};

struct mcp_server {
	struct mcp_hooks hooks;
	size_t max_body;
	size_t max_artifact;
	char server_version[64];
	int current; /* enum mcp_phase, or -1 */
	bool ended[MCP_PHASE_COUNT];
	unsigned next_serial;
	struct token tokens[MCP_MAX_TOKENS];
	struct session sessions[MCP_MAX_SESSIONS];
	struct mcp_pending *pending[MCP_MAX_PENDING];
	struct mcp_stream *streams[MCP_MAX_STREAMS];
	unsigned next_stream;
	uint64_t progress_ms;
	uint64_t approval_timeout_ms;
	json_t *tools;		/* the tools/list array, built once */
	json_t *tools_untitled; /* the same for 2025-03-26 */
};

/* ---------------------------------------------------------------------------
 * Replies
 */

struct reply {
	struct mcp_server *s;
	struct mcp_response *out;
	json_t *id;		 /* borrowed; NULL: none or unreadable (omitted) */
	int version;		 /* -1: not known yet */
	const char *new_session; /* to announce in Mcp-Session-Id, or NULL */
};

/* ---------------------------------------------------------------------------
 * Tools: one table drives both the published inputSchema and the checks,
 * so the two cannot drift apart.
 */

enum arg_kind {
	ARG_TEXT,	   /* string of 1..max code points, no controls */
	ARG_LINES,	   /* the same, newline and tab allowed */
	ARG_OBJECT,	   /* object of at most max bytes as compact JSON */
	ARG_ENUM,	   /* one of values */
	ARG_ARTIFACT_NAME, /* [A-Za-z0-9_-][A-Za-z0-9._-]*, 1..max */
	ARG_CONTENT,	   /* string; the tool checks its size by encoding */
};

struct arg {
	const char *name;
	enum arg_kind kind;
	bool required;
	size_t max;
	const char *const *values;
	const char *description;
};

struct call;

struct tool {
	const char *name;
	const char *title;
	const char *description;
	struct arg args[MAX_ARGS];
	size_t n_args;
	/* Checks across arguments (NULL: none): NULL, or why they are wrong. */
	const char *(*check)(struct call *c, json_t *const *vals);
	int (*run)(struct call *c, json_t *const *vals);
	/* Exists only when the embedder gave the call_agent hook. */
	bool calls;
};

/* ---------------------------------------------------------------------------
 * One request
 */

enum kind {
	KIND_REQUEST,
	KIND_NOTIFICATION,
	KIND_RESPONSE,
};

struct call {
	struct mcp_server *s;
	const struct mcp_request *in;
	struct reply r;
	struct mcp_pending **pending_out;
	json_t *msg;
	enum kind kind;
	const char *method;
	json_t *params; /* borrowed; NULL when absent */
	json_t *meta;	/* params._meta, borrowed; NULL when absent */
	int session;	/* slot of the authenticated session, -1 */
	enum mcp_phase phase;
	char new_session[MCP_SESSION_ID_LEN + 1];
	uint8_t *blob; /* decoded base64 artifact content */
	size_t blob_len;
	bool in_batch; /* one message of a JSON-RPC batch (2025-03-26) */
};

/* mcp_rpc.c: versions, serialising, replies, text checks */
int mcp_version_find(const char *v);
char *mcp_dump_compact(const json_t *j, size_t *len);
void mcp_add_header(struct mcp_response *out, const char *name, const char *value);
int mcp_reply_nomem(struct reply *r);
bool mcp_put(json_t *o, const char *key, json_t *v);
bool mcp_append(json_t *a, json_t *v);
json_t *mcp_server_info(const struct mcp_server *s, int version);
json_t *mcp_version_list(void);
bool mcp_reply_stateless(const struct reply *r);
void mcp_reply_reset(struct reply *r, bool keep_headers);
int mcp_reply_json(struct reply *r, int status, json_t *msg /* stolen */);
json_t *mcp_reply_envelope(const struct reply *r);
int mcp_reply_result(struct reply *r, json_t *result /* stolen */);
int mcp_reply_error(struct reply *r, int status, int code, json_t *data, const char *fmt, ...);
int mcp_reply_accepted(struct reply *r);
int mcp_reply_tool(struct reply *r, bool is_error, const char *text,
		      json_t *structured /* stolen */);
int mcp_reply_hook_error(struct reply *r, const char *tool, const struct cdn_err *err);
bool mcp_utf8_valid(const char *s);
const char *mcp_text_problem(const char *s, size_t len, size_t max, bool lines);
bool mcp_header_value_ok(const char *v);
const char *mcp_quotable(const char *v);
bool mcp_plain_name(const char *k);
bool mcp_too_deep(const char *b, size_t n);
bool mcp_is_alnum(char c);
bool mcp_meta_key_ok(const char *k);

/* mcp_session.c: state, sessions, lifetime */
uint64_t mcp_now_ms(const struct mcp_server *s);
void mcp_audit(const struct mcp_server *s, const char *event, const char *fmt, ...);
int mcp_session_find(struct mcp_server *s, const char *id);
int mcp_session_auth(struct call *c, enum era era);
int mcp_session_open(struct call *c, int v);
void mcp_abort_pending(struct mcp_server *s, int phase, const char *why);

/* mcp_tools.c: tools and waiting calls */
/* The tool table, in tools/list order. */
extern const struct tool mcp_tools[];
extern const size_t mcp_n_tools;
const char *mcp_args_problem(struct call *c, const struct tool *tool, json_t *args,
				json_t **vals, char *msg, size_t cap);
void mcp_pending_free(struct mcp_pending *p);
void mcp_pending_remove(struct mcp_pending *p);
void mcp_pending_abort(struct mcp_pending *p, const char *why);
void mcp_pending_cancelled(struct mcp_pending *p);
json_t *mcp_tool_list(const struct mcp_server *s, bool titles);
/* The tool of that name this server has, or NULL. */
const struct tool *mcp_tool_find(const struct mcp_server *s, const char *name);

/* mcp_stream.c: streams and GET */
bool mcp_accepts_sse(const char *accept);
void mcp_stream_end_sink(struct mcp_stream *st);
void mcp_stream_free(struct mcp_stream *st);
struct mcp_stream *mcp_stream_new(struct mcp_server *s, enum stream_kind kind, int session,
				     bool resumable);
int mcp_stream_begin(struct reply *r, struct mcp_stream *st, const struct mcp_sink *sink,
			bool prime);
void mcp_stream_finish(struct mcp_stream *st, const char *body);
void mcp_streams_prune(struct mcp_server *s);

/* mcp.c: methods and stages */
json_t *mcp_unsupported_data(const char *requested);

#endif
