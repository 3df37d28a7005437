/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The MCP endpoint an agent reaches from inside its own sandbox: the
 * protocol layer, without a transport. The transport (an HTTP listener in
 * the sandbox's network namespace, served by the run's supervisor) hands
 * over one POST body and a few headers; mcp_handle() answers with the HTTP
 * status, the JSON body (none for 202) and the headers to set.
 *
 * Protocol versions (details and interpretations in docs/mcp.md):
 *   2025-03-26, 2025-06-18, `initialize` handshake, Mcp-Session-Id sessions
 *   2025-11-25              (2025-03-26 also takes JSON-RPC batches)
 *   2026-07-28              stateless: `server/discover`, `_meta` on every
 *                           request, Mcp-Method / Mcp-Name headers
 * JSON-RPC batches are accepted in a 2025-03-26 session only (the later
 * versions removed them).
 *
 * Authentication: the embedder issues single-use tokens per run phase
 * (setup, run, upload) and hands each to the sandbox. The request that opens
 * a session (`initialize`; in 2026-07-28 the first request other than
 * `server/discover`) presents one as `Authorization: Bearer <token>`. The
 * token is consumed, and the random session id returned in Mcp-Session-Id
 * authenticates every later call. Only `server/discover` needs nothing: it
 * tells versions and capabilities, nothing about the run. Tokens and session
 * ids are kept as sha256 hashes and compared in constant time; neither ever
 * appears in an audit detail, an error message or a log.
 *
 * The agent sees exactly five tools: report_step, save_artifact,
 * request_approval, get_input, log; and a sixth, call_agent, when the
 * embedder gives the call_agent hook (an agent that declares calls).
 * Privileged verbs (register, grant, secrets, approve, keys, policy) do
 * not exist on this surface.
 *
 * A request_approval call waits for a human. When the client accepts
 * text/event-stream, the answer is an SSE stream: the call's
 * notifications/progress (when the request carries a progressToken) while
 * it waits, then its result. In a handshake-era session the stream is
 * resumable: a dropped connection does not cancel the call, and a GET with
 * Last-Event-ID takes the stream up again, from another connection. A
 * session may also hold one GET stream of its own. Streams end with their
 * session, which ends with its phase.
 *
 * Not thread-safe: call everything from one thread (the supervisor's event
 * loop). Hooks run inside mcp_handle(), except that a decision on an
 * approval may come later, through mcp_approval_decide().
 */
#ifndef CORDON_MCP_H
#define CORDON_MCP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/tokens.h"

#define MCP_VERSION_2025_03_26 "2025-03-26"
#define MCP_VERSION_2025_06_18 "2025-06-18"
#define MCP_VERSION_2025_11_25 "2025-11-25"
#define MCP_VERSION_2026_07_28 "2026-07-28"

/* Bounds. Each is enforced, tested and listed in docs/mcp.md. */
#define MCP_MAX_BODY		 (1 << 20)	       /* bytes of a POST body */
#define MCP_MAX_DEPTH		 32		       /* nesting of arrays and objects */
#define MCP_MAX_METHOD		 64		       /* bytes of a method name */
#define MCP_MAX_ID		 128		       /* bytes of a string request id */
#define MCP_MAX_BATCH		 32		       /* messages in a batch (2025-03-26) */
#define MCP_MAX_META_KEYS	 32		       /* keys in a request's _meta */
#define MCP_MAX_TOKENS		 64		       /* tokens held (all states, all phases) */
#define MCP_MAX_SESSIONS	 16		       /* open sessions */
#define MCP_MAX_PENDING		 16		       /* calls waiting: approvals, call_agent */
#define MCP_MAX_TTL_MS		 (24ULL * 3600 * 1000) /* of a token */
#define MCP_MAX_STEP_NAME	 256		       /* characters */
#define MCP_MAX_STEP_DETAIL	 16384		       /* bytes of the detail, as compact JSON */
#define MCP_MAX_ARTIFACT_NAME	 128		       /* characters of [A-Za-z0-9._-] */
#define MCP_DEFAULT_MAX_ARTIFACT ((size_t)512 * 1024)  /* bytes of decoded content */
#define MCP_MAX_ACTION		 256		       /* characters */
#define MCP_MAX_REASON		 4096		       /* characters */
#define MCP_MAX_LOG_MESSAGE	 4096		       /* characters */
#define MCP_MAX_INPUT		 (1 << 20)	       /* bytes of the run's input (get_input) */
#define MCP_MAX_NOTE		 1024		       /* bytes of an approval's note */
#define MCP_MAX_APPROVAL_ID	 64		       /* bytes of an approval's id */
#define MCP_MAX_CALLEE		 80		       /* characters of call_agent's agent */
#define MCP_MAX_STREAMS		 48		       /* SSE streams held (live and resumable) */
#define MCP_MAX_EVENT_ID	 32		       /* bytes of a Last-Event-ID */
#define MCP_DEFAULT_PROGRESS_MS	 2000		       /* progress of a waiting call */
#define MCP_KEEPALIVE_MS	 15000		       /* a comment on a quiet stream */

/* "cdn_mcp_" + 64 hex digits (32 random bytes); the prefix lets the
 * egress content scanner and redaction recognise a leaked token. */
#define MCP_TOKEN_PREFIX   CDN_TOKEN_MCP_PREFIX
#define MCP_TOKEN_LEN	   (sizeof(MCP_TOKEN_PREFIX) - 1 + CDN_TOKEN_HEX)
#define MCP_SESSION_PREFIX CDN_TOKEN_SESSION_PREFIX
#define MCP_SESSION_ID_LEN (sizeof(MCP_SESSION_PREFIX) - 1 + CDN_TOKEN_HEX)

/* JSON-RPC error codes in responses. Cordon's own are outside the range
 * JSON-RPC and MCP reserve (-32768 to -32000). */
#define MCP_ERR_PARSE		    -32700
#define MCP_ERR_INVALID_REQUEST	    -32600
#define MCP_ERR_METHOD_NOT_FOUND    -32601
#define MCP_ERR_INVALID_PARAMS	    -32602
#define MCP_ERR_INTERNAL	    -32603
#define MCP_ERR_HEADER_MISMATCH	    -32020 /* 2026-07-28 HeaderMismatch */
#define MCP_ERR_UNSUPPORTED_VERSION -32022 /* 2026-07-28 UnsupportedProtocolVersion */
#define MCP_ERR_UNAUTHORIZED	    -31001 /* token missing or refused (HTTP 401) */
#define MCP_ERR_SESSION_REQUIRED    -31002 /* no Mcp-Session-Id (HTTP 400) */
#define MCP_ERR_SESSION_UNKNOWN	    -31003 /* unknown or ended session (HTTP 404) */

enum mcp_phase {
	MCP_PHASE_SETUP,
	MCP_PHASE_RUN,
	MCP_PHASE_UPLOAD,
	MCP_PHASE_COUNT,
};

/* "setup", "run", "upload"; "?" for anything else. */
const char *mcp_phase_name(enum mcp_phase phase);

/* The levels of the `log` tool (RFC 5424, as MCP's logging uses). */
enum mcp_log_level {
	MCP_LOG_DEBUG,
	MCP_LOG_INFO,
	MCP_LOG_NOTICE,
	MCP_LOG_WARNING,
	MCP_LOG_ERROR,
	MCP_LOG_CRITICAL,
	MCP_LOG_ALERT,
	MCP_LOG_EMERGENCY,
};

/* "debug" ... "emergency"; "?" for anything else. */
const char *mcp_log_level_name(enum mcp_log_level level);

/* A decision on a request_approval call. id and note are optional ("")
 * and are shown to the agent. */
struct mcp_approval {
	bool approved;
	char id[MCP_MAX_APPROVAL_ID + 1];
	char note[MCP_MAX_NOTE + 1];
};

/* A request_approval or call_agent call waiting for its answer. */
struct mcp_pending;

/* The answer to a call_agent call. text: what the model reads (valid
 * UTF-8, else a generic text is used); structured_json: an object for
 * structuredContent, or NULL. is_error: the call failed (refused, or the
 * called agent's run did not succeed). */
struct mcp_call_result {
	bool is_error;
	const char *text;
	const char *structured_json;
};

/*
 * What the embedder provides. Every tool hook gets the phase of the
 * session that calls it, returns 0 on success, or a negative errno with a
 * message in err: the agent then gets a tool result with isError and that
 * message (so it must never hold a secret). String arguments are valid
 * UTF-8, NUL-free and within the bounds above. All fields but ctx and
 * now_ms are required.
 */
struct mcp_hooks {
	void *ctx;
	/* A step. detail_json: compact JSON of an object, or NULL. */
	int (*report_step)(void *ctx, enum mcp_phase phase, const char *name,
			   const char *detail_json, struct cdn_err *err);
	/* An artifact. name matches [A-Za-z0-9_-][A-Za-z0-9._-]{0,127}; data
	 * holds len decoded bytes (len <= the configured maximum). */
	int (*save_artifact)(void *ctx, enum mcp_phase phase, const char *name, const uint8_t *data,
			     size_t len, struct cdn_err *err);
	/* Asks a human. Decide now (mcp_approval_decide(p, ...) inside the
	 * hook) or later (keep p until mcp_approval_decide, or until
	 * approval_cancel names it). Returning an error drops p. */
	int (*request_approval)(void *ctx, enum mcp_phase phase, const char *action,
				const char *reason, struct mcp_pending *p, struct cdn_err *err);
	/* p will not be decided any more: forget it. why says why, in words
	 * (the client cancelled the call, its connection closed, the phase
	 * ended, the server is freed, the transport cannot wait). Not called
	 * for a p decided inside request_approval, nor when that hook
	 * returned an error. */
	void (*approval_cancel)(void *ctx, struct mcp_pending *p, const char *why);
	/* The run's input: a JSON object of at most MCP_MAX_INPUT bytes, in
	 * *json (malloc'd, the server frees it). */
	int (*get_input)(void *ctx, enum mcp_phase phase, char **json, size_t *len,
			 struct cdn_err *err);
	int (*log)(void *ctx, enum mcp_phase phase, enum mcp_log_level level, const char *message,
		   struct cdn_err *err);
	/* Optional: the agent calls another agent (call_agent). NULL: the
	 * tool does not exist for this run (not listed, and calling it is an
	 * unknown tool), as for an agent whose manifest declares no calls.
	 * agent: 1 to MCP_MAX_CALLEE characters, not checked further here;
	 * input_json: compact JSON of an object (at most MCP_MAX_INPUT bytes).
	 * Answer now or later with mcp_call_complete(p, ...), like an
	 * approval; approval_cancel names p when it will not be answered. */
	int (*call_agent)(void *ctx, enum mcp_phase phase, const char *agent,
			  const char *input_json, struct mcp_pending *p, struct cdn_err *err);
	/* Security events: "mcp.token_refused", "mcp.session_refused",
	 * "mcp.session_opened", "mcp.phase_ended". detail is one line that
	 * never holds a token or a session id. */
	void (*on_audit)(void *ctx, const char *event, const char *detail);
	/* Monotonic milliseconds; NULL: CLOCK_MONOTONIC. */
	uint64_t (*now_ms)(void *ctx);
};

struct mcp_config {
	size_t max_body;	    /* 0: MCP_MAX_BODY; may only lower it */
	size_t max_artifact;	    /* 0: MCP_DEFAULT_MAX_ARTIFACT; at most MCP_MAX_BODY */
	const char *server_version; /* serverInfo.version; NULL: cordon's version */
	/* How often a waiting call sends progress (100 ms to 60 s; 0:
	 * MCP_DEFAULT_PROGRESS_MS). */
	uint64_t progress_interval_ms;
	/* When an undecided approval is denied (the `total` of its progress);
	 * 0: not said. */
	uint64_t approval_timeout_ms;
};

struct mcp_server;

/* -EINVAL when a required hook is missing, a bound is out of range or
 * server_version is not 1 to 63 bytes of printable UTF-8; -ENOMEM. */
int mcp_server_new(const struct mcp_config *cfg, const struct mcp_hooks *hooks,
		   struct mcp_server **out, struct cdn_err *err);

/* Aborts pending approvals (approval_cancel, then their completion with a
 * tool error), wipes tokens and sessions, frees. NULL is fine. */
void mcp_server_free(struct mcp_server *s);

/*
 * Makes phase the current one: only its tokens open sessions and only its
 * sessions are served. The phase that was current ends (mcp_phase_end).
 * A phase that has ended cannot begin again: -ESTALE.
 */
int mcp_phase_begin(struct mcp_server *s, enum mcp_phase phase, struct cdn_err *err);

/*
 * Ends phase for good: its tokens are revoked, its sessions closed, its
 * pending approvals aborted. Idempotent; a phase never begun can be ended.
 */
void mcp_phase_end(struct mcp_server *s, enum mcp_phase phase);

/*
 * Issues a single-use token for phase (any that has not ended), valid for ttl_ms
 * (1 to MCP_MAX_TTL_MS) from now. out gets the token, NUL-terminated; only
 * its hash is kept. -ESTALE for an ended phase, -ENOSPC when
 * MCP_MAX_TOKENS are held.
 */
int mcp_token_issue(struct mcp_server *s, enum mcp_phase phase, uint64_t ttl_ms,
		    char out[MCP_TOKEN_LEN + 1], struct cdn_err *err);

/* A fresh token's text (random), held by no server yet. */
void mcp_token_make(char out[MCP_TOKEN_LEN + 1]);

/* The same for a token made elsewhere (the run's supervisor makes the
 * tokens, which go into the sandbox's environment, and its network part
 * serves them): MCP_TOKEN_PREFIX and 64 lowercase hex digits. */
int mcp_token_import(struct mcp_server *s, enum mcp_phase phase, uint64_t ttl_ms,
		     const char *token, struct cdn_err *err);

/* A response header to set. */
struct mcp_header {
	const char *name; /* static */
	char value[96];
};

#define MCP_MAX_RESPONSE_HEADERS 5

/* An SSE stream of the server's: a waiting call's, or a session's GET
 * stream. */
struct mcp_stream;

struct mcp_response {
	int status; /* HTTP status */
	/* JSON, or the first bytes of an SSE stream (Content-Type says which;
	 * NUL-terminated, malloc'd); NULL when none (202, or a stream with
	 * nothing to say yet) */
	char *body;
	size_t body_len;
	struct mcp_header headers[MCP_MAX_RESPONSE_HEADERS];
	size_t n_headers;
	/* MCP_STREAM: the stream that goes on through the request's sink */
	struct mcp_stream *stream;
};

void mcp_response_free(struct mcp_response *resp);

/*
 * Completion of a call that did not finish inside mcp_handle(). resp is
 * the callee's: copy the struct and release it with mcp_response_free().
 */
typedef void (*mcp_complete_fn)(void *ctx, struct mcp_response *resp);

/*
 * Where the rest of an SSE stream goes: the transport's HTTP response,
 * begun with the status, headers and body of the MCP_STREAM answer.
 */
struct mcp_sink {
	/* More of the stream: whole SSE events or comments. */
	void (*write)(void *ctx, const char *data, size_t len);
	/* The stream is over: finish the HTTP response. The sink is not
	 * used again, and the stream's handle is gone. */
	void (*end)(void *ctx);
	void *ctx;
};

/*
 * One HTTP POST to the MCP endpoint. Header values are as received (the
 * transport refuses a request that repeats one of them); NULL when absent.
 */
struct mcp_request {
	const char *body;
	size_t body_len;
	const char *authorization;    /* Authorization */
	const char *session_id;	      /* Mcp-Session-Id */
	const char *protocol_version; /* MCP-Protocol-Version */
	const char *method;	      /* Mcp-Method (2026-07-28) */
	const char *name;	      /* Mcp-Name (2026-07-28) */
	const char *accept;	      /* Accept */
	/* For a request_approval call decided after mcp_handle returns,
	 * answered as one JSON object; NULL: the decision must come inside
	 * the hook, unless the call can be answered as a stream. */
	mcp_complete_fn on_complete;
	void *complete_ctx;
	/* For a request_approval call that waits, answered as an SSE stream
	 * when Accept lists text/event-stream; write NULL: never a stream. */
	struct mcp_sink sink;
};

#define MCP_PENDING 1
#define MCP_STREAM  2

/*
 * Handles one POST. Returns 0 with the response in *out (errors included:
 * they are responses too); MCP_PENDING when a request_approval call waits
 * for its decision: *pending names it (for mcp_pending_cancel) and
 * req->on_complete will get the response; or MCP_STREAM when the waiting
 * call is answered as an SSE stream: *out is its beginning (send it, keep
 * the response open), out->stream names it (for mcp_stream_detach), and
 * the rest goes to req->sink. On an allocation failure, returns -ENOMEM
 * with a 500 and no body in *out. Never crashes on any input.
 */
int mcp_handle(struct mcp_server *s, const struct mcp_request *req, struct mcp_response *out,
	       struct mcp_pending **pending);

/* One HTTP GET to the MCP endpoint: a session's own stream, or the resume
 * of a stream after Last-Event-ID. */
struct mcp_get {
	const char *session_id;	      /* Mcp-Session-Id */
	const char *protocol_version; /* MCP-Protocol-Version */
	const char *accept;	      /* Accept */
	const char *last_event_id;    /* Last-Event-ID */
	struct mcp_sink sink;
};

/*
 * Handles one GET. Returns 0 with a complete response in *out (a refusal,
 * or what was left of a stream that has ended: its last event); MCP_STREAM
 * when a stream goes on, as for mcp_handle; or -ENOMEM with a 500.
 */
int mcp_handle_get(struct mcp_server *s, const struct mcp_get *req, struct mcp_response *out);

/* The transport lost the connection of a stream (MCP_STREAM): its sink
 * is not used any more. A handshake-era stream can be resumed with GET and
 * Last-Event-ID, and its call waits on; a 2026-07-28 one cannot (that
 * revision has no resumption: a closed stream cancels its call). */
void mcp_stream_detach(struct mcp_stream *st);

/*
 * Sends what is due on the open streams: progress of waiting calls (every
 * progress_interval_ms, when the call gave a progressToken), else a
 * keep-alive comment (every MCP_KEEPALIVE_MS). Returns the milliseconds
 * until it should be called again, 0 when no stream is open. Call it
 * after mcp_handle, mcp_handle_get and mcp_approval_decide, and when the
 * time it returned has passed.
 */
uint64_t mcp_server_tick(struct mcp_server *s);

/* Decides a pending approval: the waiting call completes (inside this
 * call, or when the hook returns if called from inside it). p is gone
 * afterwards. */
void mcp_approval_decide(struct mcp_pending *p, const struct mcp_approval *decision);

/* Answers a pending call_agent call, as mcp_approval_decide does an
 * approval. p is gone afterwards. */
void mcp_call_complete(struct mcp_pending *p, const struct mcp_call_result *res);

/* The transport lost the client of a pending call (MCP_PENDING):
 * approval_cancel is called, on_complete will not be, p is gone. */
void mcp_pending_cancel(struct mcp_pending *p);

#endif
