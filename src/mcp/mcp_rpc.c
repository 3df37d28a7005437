/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The MCP protocol layer: protocol versions, JSON serialising, the replies
 * (JSON-RPC results and errors, tool results) and the text checks and
 * bounds that untrusted input goes through. Contract in mcp.h; the split
 * is described in internal.h.
 */

#include "mcp/internal.h"

int mcp_version_find(const char *v)
{
	for (size_t i = 0; i < CDN_ARRAY_SIZE(versions); i++)
		if (strcmp(v, versions[i].name) == 0)
			return (int)i;
	return -1;
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
char *mcp_dump_compact(const json_t *j, size_t *len)
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


void mcp_add_header(struct mcp_response *out, const char *name, const char *value)
{
	if (out->n_headers >= MCP_MAX_RESPONSE_HEADERS)
		return;
	struct mcp_header *h = &out->headers[out->n_headers++];
	h->name = name;
	snprintf(h->value, sizeof(h->value), "%s", value);
}

int mcp_reply_nomem(struct reply *r)
{
	free(r->out->body);
	memset(r->out, 0, sizeof(*r->out));
	r->out->status = 500;
	return -ENOMEM;
}

/* Sets o[key] = v, v stolen in every case; false when either is missing
 * (allocation failures surface here, once, as "out of memory"). */
bool mcp_put(json_t *o, const char *key, json_t *v)
{
	if (!o) {
		json_decref(v);
		return false;
	}
	return v && json_object_set_new(o, key, v) == 0;
}

bool mcp_append(json_t *a, json_t *v)
{
	if (!a) {
		json_decref(v);
		return false;
	}
	return v && json_array_append_new(a, v) == 0;
}

/* serverInfo; without a title for 2025-03-26, whose Implementation has
 * only name and version. */
json_t *mcp_server_info(const struct mcp_server *s, int version)
{
	if (version >= 0 && !versions[version].titles)
		return json_pack("{s:s, s:s}", "name", "cordon", "version", s->server_version);
	return json_pack("{s:s, s:s, s:s}", "name", "cordon", "title", "cordon run endpoint",
			 "version", s->server_version);
}

json_t *mcp_version_list(void)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < CDN_ARRAY_SIZE(versions); i++)
		if (!mcp_append(a, json_string(versions[i].name))) {
			json_decref(a);
			return NULL;
		}
	return a;
}

bool mcp_reply_stateless(const struct reply *r)
{
	return r->version >= 0 && versions[r->version].era == ERA_STATELESS;
}

/* Drops an answer already written: each path answers once, and should a
 * second answer ever come, it replaces the first instead of leaking it. */
void mcp_reply_reset(struct reply *r, bool keep_headers)
{
	free(r->out->body);
	r->out->body = NULL;
	r->out->body_len = 0;
	if (!keep_headers)
		r->out->n_headers = 0;
}

int mcp_reply_json(struct reply *r, int status, json_t *msg /* stolen */)
{
	json_auto_t *m = msg;
	if (!m)
		return mcp_reply_nomem(r);
	size_t len = 0;
	char *text = mcp_dump_compact(m, &len);
	if (!text)
		return mcp_reply_nomem(r);
	mcp_reply_reset(r, status == 401);
	r->out->status = status;
	r->out->body = text;
	r->out->body_len = len;
	mcp_add_header(r->out, "Content-Type", "application/json");
	if (r->new_session)
		mcp_add_header(r->out, "Mcp-Session-Id", r->new_session);
	return 0;
}

json_t *mcp_reply_envelope(const struct reply *r)
{
	json_t *m = json_object();
	if (!mcp_put(m, "jsonrpc", json_string("2.0")) ||
	    (r->id && !mcp_put(m, "id", json_incref(r->id)))) {
		json_decref(m);
		return NULL;
	}
	return m;
}

int mcp_reply_result(struct reply *r, json_t *result /* stolen */)
{
	json_auto_t *res = result;
	if (!res)
		return mcp_reply_nomem(r);
	/* 2026-07-28: every result says its type and who answered. */
	if (mcp_reply_stateless(r)) {
		json_t *meta = json_object();
		/* meta belongs to res first, so a failure below cannot leak it */
		if (!mcp_put(res, "_meta", meta) || !mcp_put(meta, META_SERVER_INFO, mcp_server_info(r->s, r->version)) ||
		    !mcp_put(res, "resultType", json_string("complete")))
			return mcp_reply_nomem(r);
	}
	json_t *m = mcp_reply_envelope(r);
	if (!mcp_put(m, "result", json_incref(res))) {
		json_decref(m);
		return mcp_reply_nomem(r);
	}
	return mcp_reply_json(r, 200, m);
}

int mcp_reply_error(struct reply *r, int status, int code, json_t *data /* stolen */,
		       const char *fmt, ...) __attribute__((format(printf, 5, 6)));
int mcp_reply_error(struct reply *r, int status, int code, json_t *data, const char *fmt, ...)
{
	char msg[MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_t *e = json_pack("{s:i, s:s}", "code", code, "message", msg);
	if (data && !mcp_put(e, "data", data)) {
		json_decref(e);
		return mcp_reply_nomem(r);
	}
	json_t *m = mcp_reply_envelope(r);
	if (!mcp_put(m, "error", e)) {
		json_decref(m);
		return mcp_reply_nomem(r);
	}
	if (status == 401) {
		mcp_reply_reset(r, false);
		mcp_add_header(r->out, "WWW-Authenticate", "Bearer error=\"invalid_token\"");
	}
	return mcp_reply_json(r, status, m);
}

int mcp_reply_accepted(struct reply *r)
{
	mcp_reply_reset(r, false);
	r->out->status = 202;
	return 0;
}

/* A tool result: text, plus structured content when given. */
int mcp_reply_tool(struct reply *r, bool is_error, const char *text,
		      json_t *structured /* stolen */)
{
	json_auto_t *sc = structured;
	json_t *res = json_object();
	json_t *content = json_array();
	/* content belongs to res from here on, whatever happens */
	if (!mcp_put(res, "content", content) ||
	    !mcp_append(content, json_pack("{s:s, s:s}", "type", "text", "text", text)) ||
	    !mcp_put(res, "isError", json_boolean(is_error)) ||
	    (sc && !mcp_put(res, "structuredContent", json_incref(sc)))) {
		json_decref(res);
		return mcp_reply_nomem(r);
	}
	return mcp_reply_result(r, res);
}

/* A tool error whose message came from a hook: it must be valid UTF-8 to
 * go into JSON, else a generic one is used. */
int mcp_reply_hook_error(struct reply *r, const char *tool, const struct cdn_err *err)
{
	char msg[CDN_ERR_MSG_MAX + 64];
	if (err->msg[0])
		snprintf(msg, sizeof(msg), "%s: %s", tool, err->msg);
	else
		snprintf(msg, sizeof(msg), "%s failed", tool);
	if (!mcp_utf8_valid(msg))
		snprintf(msg, sizeof(msg), "%s failed", tool);
	return mcp_reply_tool(r, true, msg, NULL);
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

bool mcp_utf8_valid(const char *s)
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
const char *mcp_text_problem(const char *s, size_t len, size_t max, bool lines)
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
bool mcp_header_value_ok(const char *v)
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
const char *mcp_quotable(const char *v)
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
bool mcp_plain_name(const char *k)
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
bool mcp_too_deep(const char *b, size_t n)
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

bool mcp_is_alnum(char c)
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
bool mcp_meta_key_ok(const char *k)
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
			if (end == p || !is_alpha(p[0]) || !mcp_is_alnum(end[-1]))
				return false;
			for (const char *q = p; q < end; q++)
				if (!mcp_is_alnum(*q) && *q != '-')
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
	if (!mcp_is_alnum(name[0]) || !mcp_is_alnum(name[nl - 1]))
		return false;
	for (size_t i = 0; i < nl; i++)
		if (!mcp_is_alnum(name[i]) && name[i] != '-' && name[i] != '_' && name[i] != '.')
			return false;
	return true;
}

