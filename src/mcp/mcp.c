/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The MCP protocol layer (contract in mcp.h; behaviour per protocol version
 * and the interpretations made are in docs/mcp.md).
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

static int version_find(const char *v)
{
	for (size_t i = 0; i < CDN_ARRAY_SIZE(versions); i++)
		if (strcmp(v, versions[i].name) == 0)
			return (int)i;
	return -1;
}

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

const char *mcp_phase_name(enum mcp_phase phase)
{
	switch (phase) {
	case MCP_PHASE_SETUP: return "setup";
	case MCP_PHASE_RUN: return "run";
	case MCP_PHASE_UPLOAD: return "upload";
	case MCP_PHASE_COUNT: break;
	}
	return "?";
}

static const char *const log_levels[] = { "debug",    "info",  "notice",    "warning", "error",
					  "critical", "alert", "emergency", NULL };

const char *mcp_log_level_name(enum mcp_log_level level)
{
	if ((unsigned)level >= CDN_ARRAY_SIZE(log_levels) - 1)
		return "?";
	return log_levels[level];
}

static uint64_t now_ms(const struct mcp_server *s)
{
	if (s->hooks.now_ms)
		return s->hooks.now_ms(s->hooks.ctx);
	return cdn_mono_ms();
}

static void audit(const struct mcp_server *s, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void audit(const struct mcp_server *s, const char *event, const char *fmt, ...)
{
	char line[AUDIT_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	s->hooks.on_audit(s->hooks.ctx, event, line);
}

static void hash_text(const char *text, size_t len, uint8_t out[HASH_BYTES])
{
	crypto_hash_sha256(out, (const unsigned char *)text, len);
}

/* A short, non-reversible name for a token in audit lines. */
static void token_fp(const uint8_t hash[HASH_BYTES], char out[FP_HEX + 1])
{
	sodium_bin2hex(out, FP_HEX + 1, hash, FP_HEX / 2);
}

/* prefix + 64 lowercase hex digits, exactly. */
static bool secret_well_formed(const char *v, const char *prefix, size_t len)
{
	size_t pl = strlen(prefix);
	if (strnlen(v, len + 1) != len || strncmp(v, prefix, pl) != 0)
		return false;
	for (size_t i = pl; i < len; i++)
		if (!((v[i] >= '0' && v[i] <= '9') || (v[i] >= 'a' && v[i] <= 'f')))
			return false;
	return true;
}

/* prefix + hex of 32 random bytes into out, and its hash. */
static void secret_new(const char *prefix, char *out, size_t len, uint8_t hash[HASH_BYTES])
{
	uint8_t raw[RANDOM_BYTES];
	size_t pl = strlen(prefix);
	randombytes_buf(raw, sizeof(raw));
	snprintf(out, len + 1, "%s", prefix);
	sodium_bin2hex(out + pl, len - pl + 1, raw, sizeof(raw));
	sodium_memzero(raw, sizeof(raw));
	hash_text(out, len, hash);
}

/* ---------------------------------------------------------------------------
 * Serialising
 *
 * json_dumps() is not used: jansson 2.14 ignores a failed write of an
 * object key and goes on, so an allocation failure in the middle can give
 * invalid JSON instead of NULL (found by the allocation-failure test).
 * Here the first failed write fails the whole dump.
 */

struct dump_buf {
	char *p;
	size_t len, cap;
	bool failed;
};

static int dump_write(const char *chunk, size_t n, void *data)
{
	struct dump_buf *b = data;
	if (b->failed)
		return -1;
	if (n >= b->cap - b->len) {
		size_t cap = b->cap ? b->cap : 256;
		while (n >= cap - b->len)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->failed = true;
			return -1;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, chunk, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

/* Compact JSON of j (malloc'd, NUL-terminated), or NULL. */
static char *dump_compact(const json_t *j, size_t *len)
{
	struct dump_buf b = { 0 };
	if (json_dump_callback(j, dump_write, &b, JSON_COMPACT) != 0 || b.failed || !b.p) {
		free(b.p);
		return NULL;
	}
	if (len)
		*len = b.len;
	return b.p;
}

/* ---------------------------------------------------------------------------
 * Replies
 */

static bool utf8_valid(const char *s);

struct reply {
	struct mcp_server *s;
	struct mcp_response *out;
	json_t *id;		 /* borrowed; NULL: none or unreadable (omitted) */
	int version;		 /* -1: not known yet */
	const char *new_session; /* to announce in Mcp-Session-Id, or NULL */
};

static void add_header(struct mcp_response *out, const char *name, const char *value)
{
	if (out->n_headers >= MCP_MAX_RESPONSE_HEADERS)
		return;
	struct mcp_header *h = &out->headers[out->n_headers++];
	h->name = name;
	snprintf(h->value, sizeof(h->value), "%s", value);
}

static int reply_nomem(struct reply *r)
{
	free(r->out->body);
	memset(r->out, 0, sizeof(*r->out));
	r->out->status = 500;
	return -ENOMEM;
}

/* Sets o[key] = v, v stolen in every case; false when either is missing
 * (allocation failures surface here, once, as "out of memory"). */
static bool put(json_t *o, const char *key, json_t *v)
{
	if (!o) {
		json_decref(v);
		return false;
	}
	return v && json_object_set_new(o, key, v) == 0;
}

static bool append(json_t *a, json_t *v)
{
	if (!a) {
		json_decref(v);
		return false;
	}
	return v && json_array_append_new(a, v) == 0;
}

/* serverInfo; without a title for 2025-03-26, whose Implementation has
 * only name and version. */
static json_t *server_info(const struct mcp_server *s, int version)
{
	if (version >= 0 && !versions[version].titles)
		return json_pack("{s:s, s:s}", "name", "cordon", "version", s->server_version);
	return json_pack("{s:s, s:s, s:s}", "name", "cordon", "title", "cordon run endpoint",
			 "version", s->server_version);
}

static json_t *version_list(void)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < CDN_ARRAY_SIZE(versions); i++)
		if (!append(a, json_string(versions[i].name))) {
			json_decref(a);
			return NULL;
		}
	return a;
}

static bool stateless(const struct reply *r)
{
	return r->version >= 0 && versions[r->version].era == ERA_STATELESS;
}

/* Drops an answer already written: each path answers once, and should a
 * second answer ever come, it replaces the first instead of leaking it. */
static void reply_reset(struct reply *r, bool keep_headers)
{
	free(r->out->body);
	r->out->body = NULL;
	r->out->body_len = 0;
	if (!keep_headers)
		r->out->n_headers = 0;
}

static int reply_json(struct reply *r, int status, json_t *msg /* stolen */)
{
	json_auto_t *m = msg;
	if (!m)
		return reply_nomem(r);
	size_t len = 0;
	char *text = dump_compact(m, &len);
	if (!text)
		return reply_nomem(r);
	reply_reset(r, status == 401);
	r->out->status = status;
	r->out->body = text;
	r->out->body_len = len;
	add_header(r->out, "Content-Type", "application/json");
	if (r->new_session)
		add_header(r->out, "Mcp-Session-Id", r->new_session);
	return 0;
}

static json_t *envelope(const struct reply *r)
{
	json_t *m = json_object();
	if (!put(m, "jsonrpc", json_string("2.0")) ||
	    (r->id && !put(m, "id", json_incref(r->id)))) {
		json_decref(m);
		return NULL;
	}
	return m;
}

static int reply_result(struct reply *r, json_t *result /* stolen */)
{
	json_auto_t *res = result;
	if (!res)
		return reply_nomem(r);
	/* 2026-07-28: every result says its type and who answered. */
	if (stateless(r)) {
		json_t *meta = json_object();
		/* meta belongs to res first, so a failure below cannot leak it */
		if (!put(res, "_meta", meta) || !put(meta, META_SERVER_INFO, server_info(r->s, r->version)) ||
		    !put(res, "resultType", json_string("complete")))
			return reply_nomem(r);
	}
	json_t *m = envelope(r);
	if (!put(m, "result", json_incref(res))) {
		json_decref(m);
		return reply_nomem(r);
	}
	return reply_json(r, 200, m);
}

static int reply_error(struct reply *r, int status, int code, json_t *data /* stolen */,
		       const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int reply_error(struct reply *r, int status, int code, json_t *data, const char *fmt, ...)
{
	char msg[MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_t *e = json_pack("{s:i, s:s}", "code", code, "message", msg);
	if (data && !put(e, "data", data)) {
		json_decref(e);
		return reply_nomem(r);
	}
	json_t *m = envelope(r);
	if (!put(m, "error", e)) {
		json_decref(m);
		return reply_nomem(r);
	}
	if (status == 401) {
		reply_reset(r, false);
		add_header(r->out, "WWW-Authenticate", "Bearer error=\"invalid_token\"");
	}
	return reply_json(r, status, m);
}

static int reply_accepted(struct reply *r)
{
	reply_reset(r, false);
	r->out->status = 202;
	return 0;
}

/* A tool result: text, plus structured content when given. */
static int reply_tool(struct reply *r, bool is_error, const char *text,
		      json_t *structured /* stolen */)
{
	json_auto_t *sc = structured;
	json_t *res = json_object();
	json_t *content = json_array();
	/* content belongs to res from here on, whatever happens */
	if (!put(res, "content", content) ||
	    !append(content, json_pack("{s:s, s:s}", "type", "text", "text", text)) ||
	    !put(res, "isError", json_boolean(is_error)) ||
	    (sc && !put(res, "structuredContent", json_incref(sc)))) {
		json_decref(res);
		return reply_nomem(r);
	}
	return reply_result(r, res);
}

/* A tool error whose message came from a hook: it must be valid UTF-8 to
 * go into JSON, else a generic one is used. */
static int reply_hook_error(struct reply *r, const char *tool, const struct cdn_err *err)
{
	char msg[CDN_ERR_MSG_MAX + 64];
	if (err->msg[0])
		snprintf(msg, sizeof(msg), "%s: %s", tool, err->msg);
	else
		snprintf(msg, sizeof(msg), "%s failed", tool);
	if (!utf8_valid(msg))
		snprintf(msg, sizeof(msg), "%s failed", tool);
	return reply_tool(r, true, msg, NULL);
}

void mcp_response_free(struct mcp_response *resp)
{
	if (!resp)
		return;
	free(resp->body);
	memset(resp, 0, sizeof(*resp));
}

/* ---------------------------------------------------------------------------
 * Text checks
 */

/* Next code point of valid UTF-8 at *p (jansson only hands out valid
 * UTF-8, but this does not rely on it); 0xFFFFFFFF when invalid. */
static uint32_t utf8_next(const unsigned char **p, const unsigned char *end)
{
	const unsigned char *s = *p;
	uint32_t cp;
	size_t n;
	if (s[0] < 0x80) {
		cp = s[0];
		n = 1;
	} else if ((s[0] & 0xe0) == 0xc0) {
		cp = s[0] & 0x1f;
		n = 2;
	} else if ((s[0] & 0xf0) == 0xe0) {
		cp = s[0] & 0x0f;
		n = 3;
	} else if ((s[0] & 0xf8) == 0xf0) {
		cp = s[0] & 0x07;
		n = 4;
	} else {
		return 0xFFFFFFFF;
	}
	if ((size_t)(end - s) < n)
		return 0xFFFFFFFF;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0xFFFFFFFF;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* overlong forms, surrogates and what lies past U+10FFFF are not
	 * UTF-8 (RFC 3629), and jansson refuses them too */
	static const uint32_t least[] = { 0, 0, 0x80, 0x800, 0x10000 };
	if (cp < least[n] || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0xFFFFFFFF;
	*p = s + n;
	return cp;
}

static bool utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + strlen(s);
	while (p < end)
		if (utf8_next(&p, end) == 0xFFFFFFFF)
			return false;
	return true;
}

/*
 * Code points refused in names, actions, reasons and messages. They end
 * up on an operator's terminal (the progress view) and in front of the
 * human who decides an approval: C0/C1 controls carry terminal escape
 * sequences, and bidirectional overrides can make one action read as
 * another ("Trojan Source", CVE-2021-42574).
 */
static bool code_point_refused(uint32_t cp, bool lines)
{
	if (cp < 0x20)
		return !(lines && (cp == '\n' || cp == '\t'));
	if (cp >= 0x7f && cp <= 0x9f)
		return true;
	if (cp == 0x061c || cp == 0x200e || cp == 0x200f)
		return true;
	if ((cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069))
		return true;
	return cp > 0x10ffff;
}

/* NULL when s is 1..max code points without a refused one; else why. */
static const char *text_problem(const char *s, size_t len, size_t max, bool lines)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;
	size_t n = 0;
	if (len == 0)
		return "is empty";
	while (p < end) {
		uint32_t cp = utf8_next(&p, end);
		if (cp == 0xFFFFFFFF)
			return "is not valid UTF-8";
		if (code_point_refused(cp, lines))
			return lines
				   ? "holds a control or bidirectional formatting character (only "
				     "newline and tab are allowed)"
				   : "holds a control or bidirectional formatting character";
		if (++n > max)
			return "is too long";
	}
	return NULL;
}

/* Header values: visible ASCII, space and tab (RFC 9110 field values). */
static bool header_value_ok(const char *v)
{
	size_t n = strnlen(v, MAX_HEADER + 1);
	if (n == 0 || n > MAX_HEADER)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)v[i];
		if (!(ch == '\t' || (ch >= 0x20 && ch < 0x7f)))
			return false;
	}
	return true;
}

/* A client-supplied value fit to quote back: printable ASCII, short. */
static const char *quotable(const char *v)
{
	size_t n = strnlen(v, 33);
	if (n == 0 || n > 32)
		return "(unprintable)";
	for (size_t i = 0; i < n; i++)
		if (v[i] < 0x21 || v[i] > 0x7e)
			return "(unprintable)";
	return v;
}

/* An argument name fit to quote in an error message. */
static bool plain_name(const char *k)
{
	size_t n = strnlen(k, 33);
	if (n == 0 || n > 32)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((k[i] >= 'a' && k[i] <= 'z') || (k[i] >= 'A' && k[i] <= 'Z') ||
		      (k[i] >= '0' && k[i] <= '9') || k[i] == '_' || k[i] == '-'))
			return false;
	return true;
}

/* Nesting deeper than MCP_MAX_DEPTH, counted on the raw bytes. */
static bool too_deep(const char *b, size_t n)
{
	size_t depth = 0;
	bool in_string = false, escaped = false;
	for (size_t i = 0; i < n; i++) {
		char ch = b[i];
		if (in_string) {
			if (escaped)
				escaped = false;
			else if (ch == '\\')
				escaped = true;
			else if (ch == '"')
				in_string = false;
		} else if (ch == '"') {
			in_string = true;
		} else if (ch == '[' || ch == '{') {
			if (++depth > MCP_MAX_DEPTH)
				return true;
		} else if ((ch == ']' || ch == '}') && depth) {
			depth--;
		}
	}
	return false;
}

static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/*
 * A _meta key: [prefix/]name, where the prefix is dot-separated labels
 * (a letter first, a letter or digit last, hyphens inside) and the name
 * is empty or alphanumeric at both ends with [-_.] inside.
 */
static bool meta_key_ok(const char *k)
{
	size_t n = strnlen(k, MAX_META_KEY + 1);
	if (n > MAX_META_KEY)
		return false;
	const char *slash = memchr(k, '/', n);
	const char *name = k;
	if (slash == k)
		return false;
	if (slash) {
		const char *p = k;
		while (p < slash) {
			const char *dot = memchr(p, '.', (size_t)(slash - p));
			const char *end = dot ? dot : slash;
			if (end == p || !is_alpha(p[0]) || !is_alnum(end[-1]))
				return false;
			for (const char *q = p; q < end; q++)
				if (!is_alnum(*q) && *q != '-')
					return false;
			p = dot ? dot + 1 : slash;
			if (dot && p == slash)
				return false;
		}
		name = slash + 1;
	}
	size_t nl = strlen(name);
	if (nl == 0)
		return true;
	if (!is_alnum(name[0]) || !is_alnum(name[nl - 1]))
		return false;
	for (size_t i = 0; i < nl; i++)
		if (!is_alnum(name[i]) && name[i] != '-' && name[i] != '_' && name[i] != '.')
			return false;
	return true;
}

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
};

static const char *const encodings[] = { "utf-8", "base64", NULL };

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

/* Checks the arguments against the tool's table. NULL, or the problem
 * (written to msg). vals[i] is the argument i, borrowed, or NULL. */
static const char *args_problem(struct call *c, const struct tool *tool, json_t *args,
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
			if (plain_name(key))
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
				why = text_problem(json_string_value(v), json_string_length(v),
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
					if (!is_alnum(n[k]) && n[k] != '.' && n[k] != '_' &&
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
			_cleanup_free_ char *text = dump_compact(v, NULL);
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
	_cleanup_free_ char *detail = vals[1] ? dump_compact(vals[1], NULL) : NULL;
	if (vals[1] && !detail)
		return reply_nomem(&c->r);
	if (s->hooks.report_step(s->hooks.ctx, c->phase, json_string_value(vals[0]), detail, &err) <
	    0)
		return reply_hook_error(&c->r, "report_step", &err);
	return reply_tool(&c->r, false, "step recorded", NULL);
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
		return reply_hook_error(&c->r, "save_artifact", &err);
	char hex[CDN_SHA256_HEX + 1];
	cdn_sha256_hex(data, len, hex);
	char text[MCP_MAX_ARTIFACT_NAME + 128];
	snprintf(text, sizeof(text), "saved %s: %zu bytes, sha256 %s", name, len, hex);
	json_t *sc =
	    json_pack("{s:s, s:I, s:s}", "name", name, "size", (json_int_t)len, "sha256", hex);
	if (!sc)
		return reply_nomem(&c->r);
	return reply_tool(&c->r, false, text, sc);
}

/* request_approval: the answer for a decision. */
static int reply_decision(struct reply *r, const struct mcp_approval *d)
{
	char note[MCP_MAX_NOTE + 1], id[MCP_MAX_APPROVAL_ID + 1];
	snprintf(note, sizeof(note), "%s", d->note);
	snprintf(id, sizeof(id), "%s", d->id);
	/* The embedder's strings go into JSON: drop what is not UTF-8. */
	if (!utf8_valid(note))
		note[0] = '\0';
	if (!utf8_valid(id))
		id[0] = '\0';
	const char *decision = d->approved ? "approved" : "denied";
	char text[MCP_MAX_NOTE + 16];
	snprintf(text, sizeof(text), "%s%s%s", decision, note[0] ? ": " : "", note);
	json_t *sc = json_pack("{s:s}", "decision", decision);
	if ((id[0] && !put(sc, "approval_id", json_string(id))) ||
	    (note[0] && !put(sc, "note", json_string(note)))) {
		json_decref(sc);
		return reply_nomem(r);
	}
	if (!sc)
		return reply_nomem(r);
	return reply_tool(r, false, text, sc);
}

static void pending_free(struct mcp_pending *p)
{
	json_decref(p->id);
	sodium_memzero(p->new_session, sizeof(p->new_session));
	free(p);
}

static void pending_remove(struct mcp_pending *p)
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
 * SSE streams
 */

/* Accept lists text/event-stream (explicitly: a client that sends only
 * "*" + "/" + "*", as curl does, gets JSON), not with q=0. */
static bool accepts_sse(const char *accept)
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
static void stream_end_sink(struct mcp_stream *st)
{
	struct mcp_sink sink = st->sink;
	st->sink = (struct mcp_sink){ 0 };
	if (sink.end)
		sink.end(sink.ctx);
}

static void stream_free(struct mcp_stream *st)
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
static struct mcp_stream *stream_new(struct mcp_server *s, enum stream_kind kind, int session,
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
		stream_free(s->streams[oldest]);
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
	st->started_ms = st->touched_ms = now_ms(s);
	s->streams[slot] = st;
	return st;
}

/* The answer of a stream's beginning: 200, text/event-stream, the first
 * bytes (a priming event: an id and no data, so the client has an id to
 * resume from at once), and the rest through sink. */
static int stream_begin(struct reply *r, struct mcp_stream *st, const struct mcp_sink *sink,
			bool prime)
{
	reply_reset(r, false);
	st->sink = *sink;
	st->touched_ms = now_ms(st->s);
	st->next_ms = st->touched_ms + (st->progress_token ? st->s->progress_ms : MCP_KEEPALIVE_MS);
	size_t len = 0;
	/* Out of memory here only costs the priming event. */
	char *first = prime && st->resumable ? sse_event(st, ++st->seq, "", &len) : NULL;
	r->out->status = 200;
	r->out->body = first;
	r->out->body_len = first ? len : 0;
	r->out->stream = st;
	add_header(r->out, "Content-Type", "text/event-stream");
	add_header(r->out, "Cache-Control", "no-store");
	/* so a buffering proxy in between passes each event on at once */
	add_header(r->out, "X-Accel-Buffering", "no");
	if (r->new_session)
		add_header(r->out, "Mcp-Session-Id", r->new_session);
	return MCP_STREAM;
}

/* A stream's call was answered (body: the JSON-RPC response; NULL: no
 * answer, as after notifications/cancelled). The event is sent, the
 * connection's part ends, and a resumable stream keeps the event for a
 * client that lost it with its connection. */
static void stream_finish(struct mcp_stream *st, const char *body)
{
	st->p = NULL;
	char *ev = NULL;
	size_t len = 0;
	if (body && (ev = sse_event(st, ++st->seq, body, &len)))
		stream_write(st, ev, len);
	stream_end_sink(st);
	st->touched_ms = now_ms(st->s);
	if (!st->resumable || !ev) {
		free(ev);
		stream_free(st);
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
	if (s->approval_timeout_ms)
		snprintf(msg, sizeof(msg), "waiting for a human's decision (%llu s of at most %llu s)",
			 (unsigned long long)(waited / 1000),
			 (unsigned long long)(s->approval_timeout_ms / 1000));
	else
		snprintf(msg, sizeof(msg), "waiting for a human's decision (%llu s)",
			 (unsigned long long)(waited / 1000));
	json_auto_t *params = json_pack("{s:O, s:I, s:s}", "progressToken", st->progress_token,
					"progress", (json_int_t)waited, "message", msg);
	if (params && s->approval_timeout_ms && waited < s->approval_timeout_ms)
		put(params, "total", json_integer((json_int_t)s->approval_timeout_ms));
	json_auto_t *n = json_pack("{s:s, s:s, s:O}", "jsonrpc", "2.0", "method",
				   "notifications/progress", "params", params);
	_cleanup_free_ char *data = n ? dump_compact(n, NULL) : NULL;
	size_t len = 0;
	_cleanup_free_ char *ev = data ? sse_event(st, ++st->seq, data, &len) : NULL;
	if (ev)
		stream_write(st, ev, len);
}

uint64_t mcp_server_tick(struct mcp_server *s)
{
	if (!s)
		return 0;
	uint64_t now = now_ms(s), next = 0;
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
	st->touched_ms = now_ms(s);
	if (st->resumable)
		return; /* a GET with Last-Event-ID may take it up again */
	/* 2026-07-28: closing the stream is how a client cancels its call. */
	struct mcp_pending *p = st->p;
	if (p) {
		p->stream = NULL;
		pending_remove(p);
		s->hooks.approval_cancel(s->hooks.ctx, p, "the client closed the stream");
		pending_free(p);
	}
	stream_free(st);
}

/* Ends (and forgets) every stream whose session is gone. */
static void streams_prune(struct mcp_server *s)
{
	for (size_t i = 0; i < MCP_MAX_STREAMS; i++) {
		struct mcp_stream *st = s->streams[i];
		if (!st || session_alive(s, st->session, st->session_serial))
			continue;
		if (st->p) {
			/* not reached: calls are answered before their session
			 * closes (abort_pending); should one remain, it is
			 * answered now rather than forgotten */
			st->p->stream = NULL;
			st->p = NULL;
		}
		stream_end_sink(st);
		stream_free(st);
	}
}

/* ---------------------------------------------------------------------------
 * Waiting calls
 */

/* Answers a waiting call: through its stream, or to done. */
static void pending_answer(struct mcp_pending *p, struct mcp_response *resp)
{
	if (p->stream) {
		stream_finish(p->stream, resp->body);
		mcp_response_free(resp);
	} else {
		p->done(p->done_ctx, resp);
	}
}

/* Completes a waiting call with a tool error: no decision will come. */
static void pending_abort(struct mcp_pending *p, const char *why)
{
	struct mcp_server *s = p->s;
	pending_remove(p);
	s->hooks.approval_cancel(s->hooks.ctx, p, why);
	struct mcp_response resp = { 0 };
	struct reply r = { .out = &resp };
	pending_reply(p, &r);
	char text[MSG_MAX];
	snprintf(text, sizeof(text), "request_approval: no decision: %s", why);
	reply_tool(&r, true, text, NULL);
	pending_answer(p, &resp);
	pending_free(p);
}

/* notifications/cancelled from the session that asked: the call is
 * forgotten, and a stream ends without an answer (the client ignores any
 * that would come). A call answered as one JSON object still needs its
 * HTTP response: a tool error. */
static void pending_cancelled(struct mcp_pending *p)
{
	struct mcp_server *s = p->s;
	pending_remove(p);
	s->hooks.approval_cancel(s->hooks.ctx, p, "the client cancelled the call");
	if (p->stream) {
		stream_finish(p->stream, NULL);
	} else {
		struct mcp_response resp = { 0 };
		struct reply r = { .out = &resp };
		pending_reply(p, &r);
		reply_tool(&r, true, "request_approval: cancelled by the client", NULL);
		p->done(p->done_ctx, &resp);
	}
	pending_free(p);
}

static int tool_request_approval(struct call *c, json_t *const *vals)
{
	struct mcp_server *s = c->s;
	/* A batch is answered as a whole, in one HTTP response: one call that
	 * waits for minutes would hold every other answer. Refused before
	 * the hook, so no human is asked for nothing. */
	if (c->in_batch)
		return reply_tool(&c->r, true,
				  "request_approval: a call that waits for a human cannot be part of "
				  "a JSON-RPC batch; send it as a request of its own",
				  NULL);
	size_t slot = MCP_MAX_PENDING;
	for (size_t i = 0; i < MCP_MAX_PENDING; i++)
		if (!s->pending[i])
			slot = i;
	if (slot == MCP_MAX_PENDING)
		return reply_tool(&c->r, true,
				  "request_approval: too many approvals are waiting for a decision",
				  NULL);
	struct mcp_pending *p = calloc(1, sizeof(*p));
	if (!p)
		return reply_nomem(&c->r);
	p->s = s;
	p->phase = c->phase;
	p->version = c->r.version;
	p->id = json_incref(c->r.id);
	p->done = c->in->on_complete;
	p->done_ctx = c->in->complete_ctx;
	p->session = c->session;
	p->session_serial = s->sessions[c->session].serial;
	memcpy(p->new_session, c->new_session, sizeof(p->new_session));

	struct cdn_err err = { 0 };
	p->in_hook = true;
	int rc = s->hooks.request_approval(s->hooks.ctx, c->phase, json_string_value(vals[0]),
					   json_string_value(vals[1]), p, &err);
	p->in_hook = false;
	if (rc < 0) {
		pending_free(p);
		return reply_hook_error(&c->r, "request_approval", &err);
	}
	if (p->decided) {
		struct mcp_approval d = p->decision;
		pending_free(p);
		return reply_decision(&c->r, &d);
	}
	/* It waits. As a stream when the client takes one (progress while it
	 * waits, and a handshake-era stream outlives its connection), else as
	 * one JSON object later. */
	struct mcp_stream *st = NULL;
	const struct mcp_sink *sink = &c->in->sink;
	if (sink->write && sink->end && accepts_sse(c->in->accept))
		st = stream_new(s, STREAM_CALL, c->session,
				versions[c->r.version].era == ERA_HANDSHAKE);
	if (!st && !p->done) {
		/* Nobody to hand a later decision to: the transport offered
		 * neither a completion nor a stream (or no stream is left). */
		s->hooks.approval_cancel(s->hooks.ctx, p, "the endpoint cannot wait for a decision");
		pending_free(p);
		return reply_tool(&c->r, true,
				  "request_approval: this endpoint cannot wait for a decision",
				  NULL);
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
	return stream_begin(&c->r, st, sink, true);
}

void mcp_approval_decide(struct mcp_pending *p, const struct mcp_approval *decision)
{
	if (!p || p->decided)
		return;
	p->decided = true;
	p->decision = *decision;
	p->decision.id[sizeof(p->decision.id) - 1] = '\0';
	p->decision.note[sizeof(p->decision.note) - 1] = '\0';
	if (p->in_hook)
		return; /* tool_request_approval answers when the hook returns */
	pending_remove(p);
	struct mcp_response resp = { 0 };
	struct reply r = { .out = &resp };
	pending_reply(p, &r);
	reply_decision(&r, &p->decision);
	pending_answer(p, &resp);
	pending_free(p);
}

void mcp_pending_cancel(struct mcp_pending *p)
{
	if (!p || p->in_hook)
		return;
	pending_remove(p);
	p->s->hooks.approval_cancel(p->s->hooks.ctx, p, "the client's connection closed");
	if (p->stream) {
		/* a stream's connection is mcp_stream_detach's; should the
		 * transport come here instead, the stream goes with the call */
		p->stream->p = NULL;
		stream_end_sink(p->stream);
		stream_free(p->stream);
	}
	pending_free(p);
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
		return reply_hook_error(&c->r, "get_input", &err);
	if (!text || len > MCP_MAX_INPUT)
		return reply_tool(&c->r, true, "get_input: the run's input is not available", NULL);
	json_error_t je;
	json_auto_t *input = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(input))
		return reply_tool(&c->r, true, "get_input: the run's input is not a JSON object",
				  NULL);
	_cleanup_free_ char *compact = dump_compact(input, NULL);
	if (!compact)
		return reply_nomem(&c->r);
	return reply_tool(&c->r, false, compact, json_incref(input));
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
		return reply_hook_error(&c->r, "log", &err);
	return reply_tool(&c->r, false, "logged", NULL);
}

/* The order is the tools/list order (deterministic, as 2026-07-28 asks). */
static const struct tool tools[] = {
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
};
static const size_t n_tools = CDN_ARRAY_SIZE(tools);

static json_t *arg_schema(const struct mcp_server *s, const struct arg *a)
{
	json_t *o = json_object();
	bool ok = put(o, "description", json_string(a->description));
	switch (a->kind) {
	case ARG_TEXT:
	case ARG_LINES:
		ok &= put(o, "type", json_string("string")) &&
		      put(o, "minLength", json_integer(1)) &&
		      put(o, "maxLength", json_integer((json_int_t)a->max));
		break;
	case ARG_OBJECT: ok &= put(o, "type", json_string("object")); break;
	case ARG_ENUM: {
		json_t *vals = json_array();
		for (size_t i = 0; a->values[i]; i++)
			ok &= append(vals, json_string(a->values[i]));
		ok &= put(o, "enum", vals); /* vals is stolen in every case */
		ok &= put(o, "type", json_string("string"));
		break;
	}
	case ARG_ARTIFACT_NAME:
		ok &= put(o, "type", json_string("string")) &&
		      put(o, "pattern", json_string("^[A-Za-z0-9_-][A-Za-z0-9._-]*$")) &&
		      put(o, "minLength", json_integer(1)) &&
		      put(o, "maxLength", json_integer((json_int_t)a->max));
		break;
	case ARG_CONTENT: {
		char d[256];
		snprintf(d, sizeof(d), "%s; at most %zu bytes once decoded", a->description,
			 s->max_artifact);
		ok &=
		    put(o, "type", json_string("string")) && put(o, "description", json_string(d));
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
static json_t *tool_list(const struct mcp_server *s, bool titles)
{
	json_t *list = json_array();
	for (size_t t = 0; list && t < n_tools; t++) {
		const struct tool *tool = &tools[t];
		json_t *props = json_object(), *required = json_array();
		bool ok = props && required;
		for (size_t i = 0; ok && i < tool->n_args; i++) {
			ok = put(props, tool->args[i].name, arg_schema(s, &tool->args[i]));
			if (ok && tool->args[i].required)
				ok = append(required, json_string(tool->args[i].name));
		}
		json_t *schema = json_object();
		ok = ok && put(schema, "type", json_string("object")) &&
		     put(schema, "properties", json_incref(props));
		if (ok && json_array_size(required))
			ok = put(schema, "required", json_incref(required));
		ok = ok && put(schema, "additionalProperties", json_false());
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
		if (!append(list, entry)) {
			json_decref(list);
			return NULL;
		}
	}
	return list;
}

/* ---------------------------------------------------------------------------
 * Sessions and tokens
 */

static int session_find(struct mcp_server *s, const char *id)
{
	if (!secret_well_formed(id, MCP_SESSION_PREFIX, MCP_SESSION_ID_LEN))
		return -1;
	uint8_t h[HASH_BYTES];
	hash_text(id, MCP_SESSION_ID_LEN, h);
	int found = -1;
	for (int i = 0; i < MCP_MAX_SESSIONS; i++)
		if (s->sessions[i].open && sodium_memcmp(s->sessions[i].hash, h, HASH_BYTES) == 0)
			found = i;
	return found;
}

/* The session named by Mcp-Session-Id, for a request of era era: its
 * slot, or -1 after replying with the refusal (and auditing it). */
static int session_auth(struct call *c, enum era era)
{
	struct mcp_server *s = c->s;
	int i = session_find(s, c->in->session_id);
	if (i < 0 || (int)s->sessions[i].phase != s->current) {
		audit(s, "mcp.session_refused", "unknown or closed session id (phase %s)",
		      s->current >= 0 ? mcp_phase_name((enum mcp_phase)s->current) : "none");
		reply_error(&c->r, 404, MCP_ERR_SESSION_UNKNOWN, NULL,
			    "unknown or closed session: open a new one");
		return -1;
	}
	struct session *ss = &s->sessions[i];
	if (versions[ss->version].era != era) {
		audit(s, "mcp.session_refused", "session %u of protocol %s used across eras",
		      ss->serial, versions[ss->version].name);
		reply_error(
		    &c->r, 400, MCP_ERR_INVALID_REQUEST, NULL,
		    "this session was opened with protocol %s; it cannot serve this request",
		    versions[ss->version].name);
		return -1;
	}
	c->session = i;
	c->phase = ss->phase;
	return i;
}

/*
 * Redeems the bearer token of the request to open a session of version v:
 * on success the token is spent, c->new_session holds the new session id,
 * and 0 is returned. On refusal: audited, 401 (or 503) replied, -1.
 */
static int session_open(struct call *c, int v)
{
	struct mcp_server *s = c->s;
	const char *h = c->in->authorization;
	const char *cur = s->current >= 0 ? mcp_phase_name((enum mcp_phase)s->current) : "none";
	char why[160];
	const char *t = NULL;

	why[0] = '\0';
	if (!h) {
		snprintf(why, sizeof(why), "no bearer token");
	} else if (strncasecmp(h, "Bearer ", 7) != 0) {
		snprintf(why, sizeof(why), "the Authorization header is not a bearer token");
	} else {
		t = h + 7;
		while (*t == ' ')
			t++;
		if (!secret_well_formed(t, MCP_TOKEN_PREFIX, MCP_TOKEN_LEN))
			snprintf(why, sizeof(why), "malformed token");
	}
	int found = -1;
	char fp[FP_HEX + 1] = "";
	if (!why[0]) {
		uint8_t hsh[HASH_BYTES];
		hash_text(t, MCP_TOKEN_LEN, hsh);
		for (int i = 0; i < MCP_MAX_TOKENS; i++)
			if (s->tokens[i].state != TOKEN_FREE &&
			    sodium_memcmp(s->tokens[i].hash, hsh, HASH_BYTES) == 0)
				found = i;
		sodium_memzero(hsh, sizeof(hsh));
	}
	if (!why[0] && found < 0)
		snprintf(why, sizeof(why), "unknown token");
	if (!why[0]) {
		struct token *k = &s->tokens[found];
		const char *ph = mcp_phase_name(k->phase);
		token_fp(k->hash, fp);
		if (k->state == TOKEN_USED)
			snprintf(why, sizeof(why), "token %s (phase %s) was already used", fp, ph);
		else if (k->state == TOKEN_REVOKED)
			snprintf(why, sizeof(why), "token %s belongs to phase %s, which has ended",
				 fp, ph);
		else if ((int)k->phase != s->current)
			snprintf(why, sizeof(why),
				 "token %s is for phase %s; the current phase is %s", fp, ph, cur);
		else if (now_ms(s) >= k->expires_ms)
			snprintf(why, sizeof(why), "token %s (phase %s) has expired", fp, ph);
	}
	if (why[0]) {
		audit(s, "mcp.token_refused", "%s (method %s)", why, c->method);
		reply_error(&c->r, 401, MCP_ERR_UNAUTHORIZED, NULL, "unauthorized: %s", why);
		return -1;
	}
	int slot = -1;
	for (int i = 0; i < MCP_MAX_SESSIONS && slot < 0; i++)
		if (!s->sessions[i].open)
			slot = i;
	if (slot < 0) {
		/* Checked before the token is spent: it stays usable. */
		reply_error(&c->r, 503, MCP_ERR_INTERNAL, NULL, "too many open sessions");
		return -1;
	}
	s->tokens[found].state = TOKEN_USED;
	struct session *ss = &s->sessions[slot];
	memset(ss, 0, sizeof(*ss));
	ss->open = true;
	ss->phase = s->tokens[found].phase;
	ss->version = v;
	ss->serial = ++s->next_serial;
	secret_new(MCP_SESSION_PREFIX, c->new_session, MCP_SESSION_ID_LEN, ss->hash);
	c->r.new_session = c->new_session;
	c->session = slot;
	c->phase = ss->phase;
	audit(s, "mcp.session_opened", "session %u, phase %s, protocol %s, token %s", ss->serial,
	      mcp_phase_name(ss->phase), versions[v].name, fp);
	return 0;
}

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
		return reply_error(&c->r, 400, MCP_ERR_INVALID_REQUEST, NULL,
				   "initialize opens a session; it must not carry Mcp-Session-Id");
	if (!json_is_string(pv) || !json_is_object(json_object_get(p, "capabilities")) ||
	    !json_is_object(info) || !json_is_string(json_object_get(info, "name")) ||
	    !json_is_string(json_object_get(info, "version")))
		return reply_error(&c->r, 200, MCP_ERR_INVALID_PARAMS, NULL,
				   "initialize needs protocolVersion (a string), capabilities (an "
				   "object) and clientInfo (an object with name and version)");
	/* Same version if served and handshake-based, else the latest that
	 * has a handshake. */
	int v = version_find(json_string_value(pv));
	if (v < 0 || versions[v].era != ERA_HANDSHAKE)
		v = LATEST_HANDSHAKE;
	if (session_open(c, v) < 0)
		return 0;
	c->r.version = v;
	json_t *res = json_object();
	if (!put(res, "protocolVersion", json_string(versions[v].name)) ||
	    !put(res, "capabilities", capabilities()) ||
	    !put(res, "serverInfo", server_info(c->s, v)) ||
	    !put(res, "instructions", json_string(INSTRUCTIONS))) {
		json_decref(res);
		return reply_nomem(&c->r);
	}
	return reply_result(&c->r, res);
}

static int method_discover(struct call *c)
{
	json_t *res = json_object();
	if (!put(res, "supportedVersions", version_list()) ||
	    !put(res, "capabilities", capabilities()) ||
	    !put(res, "instructions", json_string(INSTRUCTIONS)) ||
	    !put(res, "ttlMs", json_integer(LIST_TTL_MS)) ||
	    !put(res, "cacheScope", json_string("public"))) {
		json_decref(res);
		return reply_nomem(&c->r);
	}
	return reply_result(&c->r, res);
}

static int method_ping(struct call *c)
{
	return reply_result(&c->r, json_object());
}

static int method_tools_list(struct call *c)
{
	static const char *const allowed[] = { "cursor", "_meta", NULL };
	if (c->params && extra_param(c->params, allowed))
		return reply_error(&c->r, 200, MCP_ERR_INVALID_PARAMS, NULL,
				   "tools/list takes only cursor and _meta");
	/* The list is one page: no cursor was ever handed out. */
	if (json_object_get(c->params, "cursor"))
		return reply_error(&c->r, 200, MCP_ERR_INVALID_PARAMS, NULL, "invalid cursor");
	json_t *res = json_object();
	bool ok = put(res, "tools", json_incref(versions[c->r.version].titles ? c->s->tools
									   : c->s->tools_untitled));
	if (ok && stateless(&c->r))
		ok = put(res, "ttlMs", json_integer(LIST_TTL_MS)) &&
		     put(res, "cacheScope", json_string("private"));
	if (!ok) {
		json_decref(res);
		return reply_nomem(&c->r);
	}
	return reply_result(&c->r, res);
}

static int method_tools_call(struct call *c)
{
	static const char *const allowed[] = { "name", "arguments", "_meta", NULL };
	json_t *p = c->params;
	if (!p)
		return reply_error(&c->r, 200, MCP_ERR_INVALID_PARAMS, NULL,
				   "tools/call needs params with a tool name");
	if (extra_param(p, allowed))
		return reply_error(&c->r, 200, MCP_ERR_INVALID_PARAMS, NULL,
				   "tools/call takes only name, arguments and _meta");
	json_t *name = json_object_get(p, "name");
	if (!json_is_string(name))
		return reply_error(&c->r, 200, MCP_ERR_INVALID_PARAMS, NULL,
				   "tools/call needs the tool's name (a string)");
	const struct tool *tool = NULL;
	for (size_t i = 0; i < n_tools; i++)
		if (strcmp(json_string_value(name), tools[i].name) == 0)
			tool = &tools[i];
	if (!tool)
		return reply_error(&c->r, 200, MCP_ERR_INVALID_PARAMS, NULL,
				   "unknown tool: this endpoint has report_step, save_artifact, "
				   "request_approval, get_input and log");
	json_t *args = json_object_get(p, "arguments");
	json_auto_t *none = args ? NULL : json_object();
	if (!args)
		args = none;
	if (!json_is_object(args))
		return reply_error(&c->r, 200, MCP_ERR_INVALID_PARAMS, NULL,
				   "tools/call arguments must be an object");
	json_t *vals[MAX_ARGS] = { 0 };
	char msg[MSG_MAX];
	const char *why = args_problem(c, tool, args, vals, msg, sizeof(msg));
	if (why) {
		if (versions[c->r.version].arg_errors_in_result)
			return reply_tool(&c->r, true, why, NULL);
		return reply_error(&c->r, 200, MCP_ERR_INVALID_PARAMS, NULL, "%s", why);
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
		reply_error(&c->r, 400, MCP_ERR_INVALID_REQUEST, NULL,
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
		reply_error(&c->r, 400, MCP_ERR_INVALID_PARAMS, NULL, "params must be an object");
		return -1;
	}
	c->params = params;
	return 0;
invalid:
	reply_error(&c->r, 400, MCP_ERR_INVALID_REQUEST, NULL,
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
			if (!meta_key_ok(key)) {
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
		reply_error(&c->r, 400, MCP_ERR_INVALID_PARAMS, NULL, "%s", why);
		return -1;
	}
	c->meta = meta;
	return 0;
}

static json_t *unsupported_data(const char *requested)
{
	json_t *d = json_object();
	if (!put(d, "supported", version_list()) ||
	    !put(d, "requested", json_string(quotable(requested)))) {
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
		reply_error(&c->r, 400, MCP_ERR_HEADER_MISMATCH, NULL, "Mcp-Method header missing");
		return -1;
	}
	if (in->method && (!header_value_ok(in->method) || strcmp(in->method, c->method) != 0)) {
		reply_error(&c->r, 400, MCP_ERR_HEADER_MISMATCH, NULL,
			    "Mcp-Method header does not match the body's method");
		return -1;
	}
	if (strcmp(c->method, "tools/call") != 0)
		return 0;
	if (!in->name && required) {
		reply_error(&c->r, 400, MCP_ERR_HEADER_MISMATCH, NULL, "Mcp-Name header missing");
		return -1;
	}
	json_t *name = json_object_get(c->params, "name");
	if (in->name && (!header_value_ok(in->name) ||
			 (json_is_string(name) && !name_header_matches(in->name, name)))) {
		reply_error(&c->r, 400, MCP_ERR_HEADER_MISMATCH, NULL,
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
		return reply_error(&c->r, 400, MCP_ERR_INVALID_PARAMS, NULL,
				   "params._meta must carry " META_VERSION);
	int v = version_find(json_string_value(ver));
	if (v < 0)
		return reply_error(&c->r, 400, MCP_ERR_UNSUPPORTED_VERSION,
				   unsupported_data(json_string_value(ver)),
				   "Unsupported protocol version");
	if (!in->protocol_version)
		return reply_error(&c->r, 400, MCP_ERR_HEADER_MISMATCH, NULL,
				   "MCP-Protocol-Version header missing");
	if (strcmp(in->protocol_version, json_string_value(ver)) != 0)
		return reply_error(&c->r, 400, MCP_ERR_HEADER_MISMATCH, NULL,
				   "MCP-Protocol-Version header does not match " META_VERSION);
	if (!json_object_get(c->meta, META_CLIENT_CAPS))
		return reply_error(&c->r, 400, MCP_ERR_INVALID_PARAMS, NULL,
				   "params._meta must carry " META_CLIENT_CAPS);
	bool discover = strcmp(c->method, "server/discover") == 0;
	if (versions[v].era != ERA_STATELESS && !discover)
		return reply_error(&c->r, 400, MCP_ERR_INVALID_REQUEST, NULL,
				   "protocol %s uses the initialize handshake, not per-request "
				   "_meta",
				   versions[v].name);
	c->r.version = v;
	if (check_routing_headers(c, true) < 0)
		return 0;
	const struct method *m = method_find(c->method, ERA_STATELESS);
	if (!m)
		return reply_error(&c->r, 404, MCP_ERR_METHOD_NOT_FOUND, NULL, "Method not found");
	/* server/discover is public: versions and capabilities, nothing of
	 * the run. It neither needs nor spends a token. */
	if (discover)
		return m->run(c);
	if (in->session_id) {
		if (session_auth(c, ERA_STATELESS) < 0)
			return 0;
	} else if (session_open(c, v) < 0) {
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
		return reply_error(&c->r, 400, MCP_ERR_SESSION_REQUIRED, NULL,
				   "no session: send initialize first, then Mcp-Session-Id with "
				   "every request");
	int i = session_auth(c, ERA_HANDSHAKE);
	if (i < 0)
		return 0;
	int v = c->s->sessions[i].version;
	c->r.version = v;
	if (header_version >= 0 && header_version != v)
		return reply_error(&c->r, 400, MCP_ERR_INVALID_REQUEST, NULL,
				   "MCP-Protocol-Version %s is not the version negotiated for this "
				   "session (%s)",
				   versions[header_version].name, versions[v].name);
	if (check_routing_headers(c, false) < 0)
		return 0;
	if (!m)
		return reply_error(&c->r, 200, MCP_ERR_METHOD_NOT_FOUND, NULL, "Method not found");
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
			pending_cancelled(p);
			return;
		}
	}
}

static int handle_one_way(struct call *c, int header_version)
{
	enum era era = header_version >= 0 ? versions[header_version].era : ERA_HANDSHAKE;
	if (c->kind == KIND_RESPONSE && era == ERA_STATELESS)
		return reply_error(&c->r, 400, MCP_ERR_INVALID_REQUEST, NULL,
				   "clients do not send responses in protocol %s",
				   MCP_VERSION_2026_07_28);
	if (!c->in->session_id)
		return reply_error(&c->r, 400, MCP_ERR_SESSION_REQUIRED, NULL,
				   "no session: Mcp-Session-Id is required");
	int i = session_auth(c, era);
	if (i < 0)
		return 0;
	if (era == ERA_HANDSHAKE && header_version >= 0 &&
	    header_version != c->s->sessions[i].version)
		return reply_error(&c->r, 400, MCP_ERR_INVALID_REQUEST, NULL,
				   "MCP-Protocol-Version %s is not the version negotiated for this "
				   "session",
				   versions[header_version].name);
	if (c->kind == KIND_NOTIFICATION && strcmp(c->method, "notifications/initialized") == 0)
		c->s->sessions[i].initialized = true;
	if (c->kind == KIND_NOTIFICATION && strcmp(c->method, "notifications/cancelled") == 0)
		cancel_request(c, i);
	return reply_accepted(&c->r);
}

#define HV_UNCHECKED (-3)

/* The MCP-Protocol-Version header's version, -1 when there is none; -2
 * after refusing one that is not served. */
static int header_version(struct call *c)
{
	const char *h = c->in->protocol_version;
	int hv = -1;
	if (h && (!header_value_ok(h) || (hv = version_find(h)) < 0)) {
		reply_error(&c->r, 400, MCP_ERR_UNSUPPORTED_VERSION, unsupported_data(h),
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
		return reply_error(&c->r, 400, MCP_ERR_INVALID_REQUEST, NULL, BATCHES_REFUSED);
	int i = session_auth(c, ERA_HANDSHAKE);
	if (i < 0)
		return 0;
	if (!versions[s->sessions[i].version].batches)
		return reply_error(&c->r, 400, MCP_ERR_INVALID_REQUEST, NULL, BATCHES_REFUSED);
	if (n == 0 || n > MCP_MAX_BATCH)
		return reply_error(&c->r, 400, MCP_ERR_INVALID_REQUEST, NULL,
				   "a batch holds 1 to %d messages", MCP_MAX_BATCH);
	json_auto_t *answers = json_array();
	if (!answers)
		return reply_nomem(&c->r);
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
			return reply_nomem(&c->r);
		}
		/* Our own answer, read back to become one member of the array. */
		json_t *a = out.body ? json_loadb(out.body, out.body_len, 0, NULL) : NULL;
		bool ok = !out.body || append(answers, a);
		mcp_response_free(&out);
		if (!ok)
			return reply_nomem(&c->r);
	}
	if (json_array_size(answers) == 0)
		return reply_accepted(&c->r);
	c->r.version = s->sessions[i].version;
	return reply_json(&c->r, 200, json_incref(answers));
}

static int handle(struct call *c)
{
	struct mcp_server *s = c->s;
	const struct mcp_request *in = c->in;
	if (!in->body && in->body_len)
		return reply_error(&c->r, 400, MCP_ERR_INVALID_REQUEST, NULL, "no body");
	if (in->body_len > s->max_body)
		return reply_error(&c->r, 413, MCP_ERR_INVALID_REQUEST, NULL,
				   "body larger than %zu bytes", s->max_body);
	if (too_deep(in->body, in->body_len))
		return reply_error(&c->r, 400, MCP_ERR_INVALID_REQUEST, NULL,
				   "JSON nested deeper than %d levels", MCP_MAX_DEPTH);
	json_error_t je;
	c->msg = json_loadb(in->body ? in->body : "", in->body_len,
			    JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
	if (!c->msg)
		/* je.text can quote the input; only the position is given. */
		return reply_error(&c->r, 400, MCP_ERR_PARSE, NULL,
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
		return reply_error(&c->r, 400, MCP_ERR_INVALID_REQUEST, NULL,
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
	int rc = reply_error(r, 405, MCP_ERR_INVALID_REQUEST, NULL, "protocol %s has no GET stream",
			     versions[version].name);
	if (rc == 0)
		add_header(r->out, "Allow", "POST");
	return rc;
}

static int get_stream(struct reply *r, const struct mcp_get *in)
{
	struct mcp_server *s = r->s;
	if (!accepts_sse(in->accept))
		return reply_error(r, 406, MCP_ERR_INVALID_REQUEST, NULL,
				   "GET opens an SSE stream: Accept must list text/event-stream");
	int hv = -1;
	if (in->protocol_version &&
	    (!header_value_ok(in->protocol_version) || (hv = version_find(in->protocol_version)) < 0))
		return reply_error(r, 400, MCP_ERR_UNSUPPORTED_VERSION,
				   unsupported_data(in->protocol_version),
				   "Unsupported protocol version");
	if (hv >= 0 && versions[hv].era == ERA_STATELESS)
		return refuse_get(r, hv);
	if (!in->session_id)
		return reply_error(r, 400, MCP_ERR_SESSION_REQUIRED, NULL,
				   "no session: a GET stream belongs to a session (Mcp-Session-Id)");
	int i = session_find(s, in->session_id);
	if (i < 0 || (int)s->sessions[i].phase != s->current) {
		audit(s, "mcp.session_refused", "unknown or closed session id (phase %s, GET)",
		      s->current >= 0 ? mcp_phase_name((enum mcp_phase)s->current) : "none");
		return reply_error(r, 404, MCP_ERR_SESSION_UNKNOWN, NULL,
				   "unknown or closed session: open a new one");
	}
	int v = s->sessions[i].version;
	if (versions[v].era == ERA_STATELESS)
		return refuse_get(r, v);
	if (hv >= 0 && hv != v)
		return reply_error(r, 400, MCP_ERR_INVALID_REQUEST, NULL,
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
			return reply_error(r, 400, MCP_ERR_INVALID_REQUEST, NULL,
					   "Last-Event-ID names no stream of this session that can "
					   "be resumed");
		st->touched_ms = now_ms(s);
		if (st->kind == STREAM_CALL && !st->p) {
			/* answered already: the answer again, unless the client
			 * saw it; then the stream is over */
			reply_reset(r, false);
			r->out->status = 200;
			add_header(r->out, "Content-Type", "text/event-stream");
			add_header(r->out, "Cache-Control", "no-store");
			if (st->final && seq < st->final_seq) {
				r->out->body = malloc(st->final_len + 1);
				if (!r->out->body)
					return reply_nomem(r);
				memcpy(r->out->body, st->final, st->final_len + 1);
				r->out->body_len = st->final_len;
			}
			return 0;
		}
		/* still going: this connection takes it over from the last */
		stream_end_sink(st);
		return stream_begin(r, st, &in->sink, st->kind == STREAM_GET);
	}
	st = stream_of_session(s, i, 0, STREAM_GET);
	if (st && st->sink.write)
		return reply_error(r, 409, MCP_ERR_INVALID_REQUEST, NULL,
				   "this session's GET stream is open already");
	if (!st && !(st = stream_new(s, STREAM_GET, i, true)))
		return reply_error(r, 503, MCP_ERR_INTERNAL, NULL, "too many open streams");
	return stream_begin(r, st, &in->sink, true);
}

int mcp_handle_get(struct mcp_server *s, const struct mcp_get *req, struct mcp_response *out)
{
	memset(out, 0, sizeof(*out));
	struct reply r = { .s = s, .out = out, .version = -1 };
	if (!req->sink.write || !req->sink.end)
		return reply_error(&r, 405, MCP_ERR_INVALID_REQUEST, NULL, "no GET stream here");
	int rc = get_stream(&r, req);
	if (rc == MCP_STREAM || rc < 0)
		return rc;
	return out->status == 500 && !out->body ? -ENOMEM : 0;
}

/* ---------------------------------------------------------------------------
 * Lifetime, phases, tokens
 */

int mcp_server_new(const struct mcp_config *cfg, const struct mcp_hooks *hooks,
		   struct mcp_server **out, struct cdn_err *err)
{
	static const struct mcp_config defaults = { 0 };
	if (!cfg)
		cfg = &defaults;
	if (!hooks || !hooks->report_step || !hooks->save_artifact || !hooks->request_approval ||
	    !hooks->approval_cancel || !hooks->get_input || !hooks->log || !hooks->on_audit)
		return cdn_err_msg(
		    err, EINVAL, "mcp: every tool hook, approval_cancel and on_audit are required");
	if (cfg->max_body > MCP_MAX_BODY || cfg->max_artifact > MCP_MAX_BODY)
		return cdn_err_msg(err, EINVAL,
				   "mcp: max_body and max_artifact are at most %d bytes",
				   MCP_MAX_BODY);
	if (cfg->progress_interval_ms &&
	    (cfg->progress_interval_ms < 100 || cfg->progress_interval_ms > 60000))
		return cdn_err_msg(err, EINVAL, "mcp: progress_interval_ms is 100 to 60000");
	const char *version = cfg->server_version ? cfg->server_version : CORDON_VERSION;
	if (text_problem(version, strlen(version),
			 sizeof(((struct mcp_server *)0)->server_version) - 1, false) ||
	    strlen(version) >= sizeof(((struct mcp_server *)0)->server_version))
		return cdn_err_msg(err, EINVAL,
				   "mcp: server_version must be 1 to 63 bytes of printable UTF-8");
	if (sodium_init() < 0)
		return cdn_err_msg(err, EIO, "mcp: libsodium did not initialise");
	struct mcp_server *s = calloc(1, sizeof(*s));
	if (!s)
		return cdn_err_set(err, ENOMEM, "mcp");
	s->hooks = *hooks;
	s->max_body = cfg->max_body ? cfg->max_body : MCP_MAX_BODY;
	s->max_artifact = cfg->max_artifact ? cfg->max_artifact : MCP_DEFAULT_MAX_ARTIFACT;
	s->progress_ms = cfg->progress_interval_ms ? cfg->progress_interval_ms
						   : MCP_DEFAULT_PROGRESS_MS;
	s->approval_timeout_ms = cfg->approval_timeout_ms;
	snprintf(s->server_version, sizeof(s->server_version), "%s", version);
	s->current = -1;
	s->tools = tool_list(s, true);
	s->tools_untitled = tool_list(s, false);
	if (!s->tools || !s->tools_untitled) {
		json_decref(s->tools);
		json_decref(s->tools_untitled);
		free(s);
		return cdn_err_set(err, ENOMEM, "mcp: the tool list");
	}
	*out = s;
	return 0;
}

static void abort_pending(struct mcp_server *s, int phase, const char *why)
{
	for (size_t i = 0; i < MCP_MAX_PENDING; i++) {
		struct mcp_pending *p = s->pending[i];
		if (p && (phase < 0 || (int)p->phase == phase))
			pending_abort(p, why);
	}
}

void mcp_server_free(struct mcp_server *s)
{
	if (!s)
		return;
	abort_pending(s, -1, "the endpoint is closing");
	for (size_t i = 0; i < MCP_MAX_STREAMS; i++)
		if (s->streams[i]) {
			stream_end_sink(s->streams[i]);
			stream_free(s->streams[i]);
		}
	json_decref(s->tools);
	json_decref(s->tools_untitled);
	sodium_memzero(s, sizeof(*s));
	free(s);
}

void mcp_phase_end(struct mcp_server *s, enum mcp_phase phase)
{
	if ((unsigned)phase >= MCP_PHASE_COUNT)
		return;
	unsigned tokens = 0, sessions = 0, approvals = 0;
	for (size_t i = 0; i < MCP_MAX_PENDING; i++)
		approvals += s->pending[i] && s->pending[i]->phase == phase;
	abort_pending(s, (int)phase, "the phase ended");
	for (size_t i = 0; i < MCP_MAX_TOKENS; i++) {
		struct token *k = &s->tokens[i];
		if ((k->state == TOKEN_UNUSED || k->state == TOKEN_USED) && k->phase == phase) {
			tokens += k->state == TOKEN_UNUSED;
			k->state = TOKEN_REVOKED;
		}
	}
	for (size_t i = 0; i < MCP_MAX_SESSIONS; i++) {
		struct session *ss = &s->sessions[i];
		if (ss->open && ss->phase == phase) {
			sodium_memzero(ss, sizeof(*ss));
			sessions++;
		}
	}
	/* their streams end with them: nothing can resume them any more */
	streams_prune(s);
	bool was_ended = s->ended[phase];
	s->ended[phase] = true;
	if (s->current == (int)phase)
		s->current = -1;
	if (!was_ended)
		audit(s, "mcp.phase_ended",
		      "phase %s: %u sessions closed, %u unused tokens revoked, %u approvals "
		      "aborted",
		      mcp_phase_name(phase), sessions, tokens, approvals);
}

int mcp_phase_begin(struct mcp_server *s, enum mcp_phase phase, struct cdn_err *err)
{
	if ((unsigned)phase >= MCP_PHASE_COUNT)
		return cdn_err_msg(err, EINVAL, "mcp: no such phase");
	if (s->ended[phase])
		return cdn_err_msg(err, ESTALE, "mcp: phase %s has ended and cannot begin again",
				   mcp_phase_name(phase));
	if (s->current == (int)phase)
		return 0;
	if (s->current >= 0)
		mcp_phase_end(s, (enum mcp_phase)s->current);
	s->current = (int)phase;
	return 0;
}

/* Holds a token (its hash) for phase; text is the token itself. */
static int token_hold(struct mcp_server *s, enum mcp_phase phase, uint64_t ttl_ms,
		      const char *text, struct cdn_err *err)
{
	if ((unsigned)phase >= MCP_PHASE_COUNT)
		return cdn_err_msg(err, EINVAL, "mcp: no such phase");
	if (ttl_ms == 0 || ttl_ms > MCP_MAX_TTL_MS)
		return cdn_err_msg(err, EINVAL, "mcp: a token lives 1 ms to 24 h, not %llu ms",
				   (unsigned long long)ttl_ms);
	if (s->ended[phase])
		return cdn_err_msg(err, ESTALE, "mcp: phase %s has ended", mcp_phase_name(phase));
	/* A free slot, else one whose token can no longer open anything. */
	int slot = -1;
	for (int i = 0; i < MCP_MAX_TOKENS && slot < 0; i++)
		if (s->tokens[i].state == TOKEN_FREE)
			slot = i;
	for (int i = 0; i < MCP_MAX_TOKENS && slot < 0; i++)
		if (s->tokens[i].state == TOKEN_REVOKED)
			slot = i;
	if (slot < 0)
		return cdn_err_msg(err, ENOSPC, "mcp: %d tokens are held already", MCP_MAX_TOKENS);
	struct token *k = &s->tokens[slot];
	hash_text(text, MCP_TOKEN_LEN, k->hash);
	k->state = TOKEN_UNUSED;
	k->phase = phase;
	k->expires_ms = now_ms(s) + ttl_ms;
	return 0;
}

void mcp_token_make(char out[MCP_TOKEN_LEN + 1])
{
	uint8_t unused[HASH_BYTES];
	secret_new(MCP_TOKEN_PREFIX, out, MCP_TOKEN_LEN, unused);
}

int mcp_token_issue(struct mcp_server *s, enum mcp_phase phase, uint64_t ttl_ms,
		    char out[MCP_TOKEN_LEN + 1], struct cdn_err *err)
{
	mcp_token_make(out);
	int r = token_hold(s, phase, ttl_ms, out, err);
	if (r < 0)
		sodium_memzero(out, MCP_TOKEN_LEN + 1);
	return r;
}

int mcp_token_import(struct mcp_server *s, enum mcp_phase phase, uint64_t ttl_ms,
		     const char *token, struct cdn_err *err)
{
	size_t pl = strlen(MCP_TOKEN_PREFIX);
	bool ok = token && strnlen(token, MCP_TOKEN_LEN + 1) == MCP_TOKEN_LEN &&
		  strncmp(token, MCP_TOKEN_PREFIX, pl) == 0;
	for (size_t i = pl; ok && i < MCP_TOKEN_LEN; i++)
		ok = (token[i] >= '0' && token[i] <= '9') || (token[i] >= 'a' && token[i] <= 'f');
	if (!ok)
		return cdn_err_msg(err, EINVAL, "mcp: not a token (%s and 64 hex digits)",
				   MCP_TOKEN_PREFIX);
	return token_hold(s, phase, ttl_ms, token, err);
}
