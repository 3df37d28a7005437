/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The MCP protocol layer: the server's state, phase tokens and sessions
 * (authentication), the server's lifetime and its phases.
 */

#include "mcp/internal.h"

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

const char *mcp_log_level_name(enum mcp_log_level level)
{
	if ((unsigned)level >= CDN_ARRAY_SIZE(log_levels) - 1)
		return "?";
	return log_levels[level];
}

uint64_t mcp_now_ms(const struct mcp_server *s)
{
	if (s->hooks.now_ms)
		return s->hooks.now_ms(s->hooks.ctx);
	return cdn_mono_ms();
}

void mcp_audit(const struct mcp_server *s, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void mcp_audit(const struct mcp_server *s, const char *event, const char *fmt, ...)
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
 * Sessions and tokens
 */

int mcp_session_find(struct mcp_server *s, const char *id)
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
int mcp_session_auth(struct call *c, enum era era)
{
	struct mcp_server *s = c->s;
	int i = mcp_session_find(s, c->in->session_id);
	if (i < 0 || (int)s->sessions[i].phase != s->current) {
		mcp_audit(s, "mcp.session_refused", "unknown or closed session id (phase %s)",
		      s->current >= 0 ? mcp_phase_name((enum mcp_phase)s->current) : "none");
		mcp_reply_error(&c->r, 404, MCP_ERR_SESSION_UNKNOWN, NULL,
			    "unknown or closed session: open a new one");
		return -1;
	}
	struct session *ss = &s->sessions[i];
	if (versions[ss->version].era != era) {
		mcp_audit(s, "mcp.session_refused", "session %u of protocol %s used across eras",
		      ss->serial, versions[ss->version].name);
		mcp_reply_error(
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
int mcp_session_open(struct call *c, int v)
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
		else if (mcp_now_ms(s) >= k->expires_ms)
			snprintf(why, sizeof(why), "token %s (phase %s) has expired", fp, ph);
	}
	if (why[0]) {
		mcp_audit(s, "mcp.token_refused", "%s (method %s)", why, c->method);
		mcp_reply_error(&c->r, 401, MCP_ERR_UNAUTHORIZED, NULL, "unauthorized: %s", why);
		return -1;
	}
	int slot = -1;
	for (int i = 0; i < MCP_MAX_SESSIONS && slot < 0; i++)
		if (!s->sessions[i].open)
			slot = i;
	if (slot < 0) {
		/* Checked before the token is spent: it stays usable. */
		mcp_reply_error(&c->r, 503, MCP_ERR_INTERNAL, NULL, "too many open sessions");
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
	mcp_audit(s, "mcp.session_opened", "session %u, phase %s, protocol %s, token %s", ss->serial,
	      mcp_phase_name(ss->phase), versions[v].name, fp);
	return 0;
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
	if (mcp_text_problem(version, strlen(version),
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
	s->tools = mcp_tool_list(s, true);
	s->tools_untitled = mcp_tool_list(s, false);
	if (!s->tools || !s->tools_untitled) {
		json_decref(s->tools);
		json_decref(s->tools_untitled);
		free(s);
		return cdn_err_set(err, ENOMEM, "mcp: the tool list");
	}
	*out = s;
	return 0;
}

void mcp_abort_pending(struct mcp_server *s, int phase, const char *why)
{
	for (size_t i = 0; i < MCP_MAX_PENDING; i++) {
		struct mcp_pending *p = s->pending[i];
		if (p && (phase < 0 || (int)p->phase == phase))
			mcp_pending_abort(p, why);
	}
}

void mcp_server_free(struct mcp_server *s)
{
	if (!s)
		return;
	mcp_abort_pending(s, -1, "the endpoint is closing");
	for (size_t i = 0; i < MCP_MAX_STREAMS; i++)
		if (s->streams[i]) {
			mcp_stream_end_sink(s->streams[i]);
			mcp_stream_free(s->streams[i]);
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
	mcp_abort_pending(s, (int)phase, "the phase ended");
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
	mcp_streams_prune(s);
	bool was_ended = s->ended[phase];
	s->ended[phase] = true;
	if (s->current == (int)phase)
		s->current = -1;
	if (!was_ended)
		mcp_audit(s, "mcp.phase_ended",
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
	k->expires_ms = mcp_now_ms(s) + ttl_ms;
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

