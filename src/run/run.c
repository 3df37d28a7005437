/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A run, start to finish. The order of the steps is the contract:
 *
 *  1. resolve the agent (registered NAME[@VERSION], or a directory that is
 *     snapshotted and hashed the same way) and what it uses: granted
 *     capabilities, its env, its declared secrets. Anything missing stops
 *     here, before a sandbox exists.
 *  2. create the run record and its directory; event run.created.
 *  3. build the sandbox: the snapshot read-only at /agent, capabilities
 *     read-only under /capabilities, input at /workspace/input.json, a steps
 *     channel, egress through the engine when the agent needs a network.
 *  4. run `setup`, then `entrypoint`, streaming events.
 *  5. collect output.json and the artifacts from a workspace nothing can
 *     touch any more, write result.json, close the record; run.finished.
 */
#define _GNU_SOURCE
#include "run/run.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit/audit.h"
#include "base/cleanup.h"
#include "base/clock.h"
#include "base/file.h"
#include "base/hash.h"
#include "base/openat2.h"
#include "base/proc.h"
#include "base/random.h"
#include <sodium.h>
#include "egress/engine.h"
#include "egress/tls.h"
#include "egress/policy.h"
#include "registry/registry.h"
#include "mcp/mcp.h"
#include "run/artifacts.h"
#include "run/events.h"
#include "run/netpart.h"
#include "run/policy_levels.h"
#include "run/supervise.h"
#include "sandbox/sandbox.h"
#include "vault/redact.h"
#include "vault/seal.h"

#define DEFAULT_MEM (1ull << 30)
#define DEFAULT_PIDS 256
#define DEFAULT_WORKSPACE (256ull << 20)
#define PIPE_READ 65536
#define RUN_MCP_APPROVAL_TIMEOUT_MS 120000 /* a request_approval call waits this long */

struct capture {
	const char *name; /* "stdout" or "stderr" */
	int fd;		  /* read end */
	int file;	  /* the run directory's copy */
	struct event *ev;
	struct redact_stream rs;
	size_t cap, written;
	uint64_t total; /* bytes the agent wrote (after redaction) */
	bool truncated;
	bool eof;
};

struct run_ctx {
	struct store *s;
	struct vault *v;
	struct run_options *o;
	const char *ws;
	struct store_run rec;
	char dir[PATH_MAX];
	struct events_writer events;
	bool events_failed;
	uint64_t mcp_events, log_events, log_bytes;
	struct redactor *red;
	struct resolved_agent agent;
	json_t *caps;	 /* resolved capabilities */
	json_t *env;	 /* resolved env, or null */
	json_t *secrets; /* names injected */
	json_t *delivery; /* name -> {"delivery": "sealed"|"raw", "scope", "inspection"} */
	size_t n_inspected; /* entries the network part will look for */
	json_t *steps;
	size_t n_steps;
	char step_buf[RUN_MAX_STEP_LINE + 1];
	size_t step_len;
	bool step_overflow;
	int steps_fd;
	struct event *steps_ev;
	struct capture out, errc;
	uint64_t egress_allowed, egress_blocked, egress_events;
	uint64_t setup_ms;
	bool setup_done;
	int64_t started_ms;
	struct audit_log *audit;
	struct netpart *net;  /* the run's network part, while the sandbox runs */
	struct sandbox *sb;   /* likewise */
	uid_t sb_uid;	      /* the sandbox user on the host, for MCP artifacts */
	gid_t sb_gid;
	int ws_live; /* the workspace fd while the sandbox runs, for MCP artifacts */
	char net_error[320]; /* why the network part went away during the run */
	struct netpart_info net_info;
};

/* ------------------------------------------------------------------ events */

/* Redacts every string (values and keys) in j, in place. */
static int redact_json(const struct redactor *r, json_t *j)
{
	if (json_is_array(j)) {
		size_t i;
		json_t *v;
		json_array_foreach(j, i, v)
		{
			if (json_is_string(v)) {
				size_t n;
				char *t = redact_string(r, json_string_value(v), json_string_length(v), &n);
				if (!t)
					return -ENOMEM;
				json_array_set_new(j, i, json_stringn(t, n));
				free(t);
			} else if (redact_json(r, v) < 0) {
				return -ENOMEM;
			}
		}
		return 0;
	}
	if (!json_is_object(j))
		return 0;
	json_t *copy = json_object();
	const char *k;
	json_t *v;
	int rc = 0;
	json_object_foreach(j, k, v)
	{
		size_t n;
		char *key = redact_string(r, k, strlen(k), &n);
		if (!key) {
			rc = -ENOMEM;
			break;
		}
		if (json_is_string(v)) {
			size_t vn;
			char *t = redact_string(r, json_string_value(v), json_string_length(v), &vn);
			if (!t) {
				free(key);
				rc = -ENOMEM;
				break;
			}
			json_object_set_new(copy, key, json_stringn(t, vn));
			free(t);
		} else {
			if (redact_json(r, v) < 0)
				rc = -ENOMEM;
			json_object_set(copy, key, v);
		}
		free(key);
	}
	if (rc == 0) {
		json_object_clear(j);
		json_object_update(j, copy);
	}
	json_decref(copy);
	return rc;
}

static int scrub_json(void *ctx, json_t *ev)
{
	struct run_ctx *c = ctx;
	return c->red ? redact_json(c->red, ev) : 0;
}

static char *scrub_line(void *ctx, const char *line, size_t len, size_t *out_len)
{
	struct run_ctx *c = ctx;
	if (!c->red) {
		*out_len = len;
		return strndup(line, len);
	}
	return redact_string(c->red, line, len, out_len);
}

/* One event: a line in events.ndjson (events.h: bounded line, bounded
 * file), then the caller's view of it. The line is redacted: steps and
 * egress details come from the agent. Strings are redacted before
 * serialising (JSON escaping would hide a value holding '"' or '\\'), and
 * the line again after; an event that cannot be redacted is not written at
 * all: fail closed. */
static void emit_event(struct run_ctx *c, const char *type, json_t *data, bool final)
{
	const char *line;
	size_t len;
	int r = events_write(&c->events, type, data, final, &line, &len);
	if (r < 0 && !c->events_failed) {
		c->events_failed = true;
		fprintf(stderr, "cordon: run %s: events.ndjson: %s\n", c->rec.id, strerror(-r));
	}
	if (r <= 0 || !c->o->on_event)
		return;
	/* The run's directory is a path on this host: the local caller's
	 * view of the first and last events names it, the record (which an
	 * evidence pack carries and the API serves) does not. */
	if (strcmp(type, "run.created") == 0 || strcmp(type, "run.finished") == 0) {
		json_t *j = json_loadb(line, len, 0, NULL);
		char *local = NULL;
		if (j && json_object_set_new(j, "run_dir", json_string(c->dir)) == 0)
			local = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
		json_decref(j);
		if (local) {
			c->o->on_event(c->o->event_ctx, local, strlen(local));
			free(local);
			return;
		}
	}
	c->o->on_event(c->o->event_ctx, line, len);
}

static void emit(struct run_ctx *c, const char *type, json_t *data)
{
	emit_event(c, type, data, false);
}

/* --------------------------------------------------------------- capture */

static void capture_write(void *ctx, const char *p, size_t n)
{
	struct capture *cap = ctx;
	cap->total += n;
	if (cap->written >= cap->cap) {
		cap->truncated = cap->truncated || n > 0;
		return;
	}
	size_t room = cap->cap - cap->written;
	size_t w = n < room ? n : room;
	if (w && cap->file >= 0 && write(cap->file, p, w) == (ssize_t)w)
		cap->written += w;
	if (w < n)
		cap->truncated = true;
}

static void capture_read(struct capture *cap)
{
	char buf[PIPE_READ];
	for (;;) {
		ssize_t n = read(cap->fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			cap->eof = true;
			if (cap->ev)
				event_del(cap->ev);
			return;
		}
		redact_feed(&cap->rs, buf, (size_t)n, capture_write, cap);
	}
}

static void on_capture(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	capture_read(arg);
}

/* ----------------------------------------------------------------- steps */

static void step_line(struct run_ctx *c, const char *line, size_t len)
{
	if (len == 0)
		return;
	if (c->n_steps >= RUN_MAX_STEPS) {
		if (c->n_steps++ == RUN_MAX_STEPS) {
			json_t *d = json_pack("{s:{s:s}}", "step", "note",
					      "step limit reached; later steps dropped");
			emit(c, "step", d);
			json_decref(d);
		}
		return;
	}
	json_error_t je;
	json_t *st = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
	if (!st || !json_is_object(st)) {
		/* Plain text (or JSON that is not an object) is a step too. */
		json_decref(st);
		_cleanup_free_ char *text = strndup(line, len);
		st = json_object();
		json_t *t = text ? json_string(text) : NULL;
		json_object_set_new(st, "text", t ? t : json_string("(not valid UTF-8)"));
	}
	c->n_steps++;
	json_array_append(c->steps, st);
	json_t *d = json_object();
	json_object_set_new(d, "step", st);
	emit(c, "step", d);
	json_decref(d);
}

static void mcp_step(void *ctx, json_t *step)
{
	struct run_ctx *c = ctx;
	char *line = json_dumps(step, JSON_COMPACT);
	if (line)
		step_line(c, line, strlen(line));
	free(line);
}

/*
 * Events the agent causes over MCP. Each call is cheap for the agent and a
 * line in the record for us: 3000 `log` calls made 12 MiB of events in 3
 * s. So `log` is bounded by count and by bytes, the other MCP events by
 * count (approvals, which wait for a human, always pass), like steps and
 * egress events; the counts past a bound are told once.
 */
static void mcp_event(void *ctx, const char *type, json_t *data)
{
	struct run_ctx *c = ctx;
	if (strcmp(type, "log") == 0) {
		size_t n = json_string_length(json_object_get(data, "message"));
		bool over = c->log_events >= RUN_MAX_LOG_EVENTS ||
			    c->log_bytes + n > RUN_MAX_LOG_BYTES;
		if (over && c->log_events != UINT64_MAX) {
			c->log_events = UINT64_MAX; /* said once */
			json_t *d = json_pack("{s:s, s:s}", "level", "warning", "message",
					      "log limit reached; later log messages dropped");
			emit(c, "log", d);
			json_decref(d);
		}
		if (over)
			return;
		c->log_events++;
		c->log_bytes += n;
	} else if (strncmp(type, "approval.", 9) != 0 &&
		   c->mcp_events++ >= RUN_MAX_MCP_EVENTS) {
		return;
	}
	emit(c, type, data);
}

static int mcp_artifact(void *ctx, const char *name, const uint8_t *data, size_t len,
			struct cdn_err *err)
{
	struct run_ctx *c = ctx;
	return artifact_save(c->ws_live, name, data, len, c->sb_uid, c->sb_gid, err);
}

static void steps_read(struct run_ctx *c)
{
	char buf[PIPE_READ];
	for (;;) {
		ssize_t n = read(c->steps_fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == '\n') {
				if (!c->step_overflow)
					step_line(c, c->step_buf, c->step_len);
				c->step_len = 0;
				c->step_overflow = false;
			} else if (c->step_len < RUN_MAX_STEP_LINE) {
				c->step_buf[c->step_len++] = buf[i];
			} else if (!c->step_overflow) {
				c->step_overflow = true;
				json_t *d = json_pack("{s:{s:s}}", "step", "note",
						      "a step line longer than 16 KiB was dropped");
				emit(c, "step", d);
				json_decref(d);
			}
		}
	}
}

static void on_steps(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	steps_read(arg);
}

/* ---------------------------------------------------------------- egress */

static void on_egress(void *ctx, const char *type, json_t *data)
{
	struct run_ctx *c = ctx;
	bool blocked = strcmp(type, "egress.blocked") == 0;
	if (strcmp(type, "egress.allowed") == 0)
		c->egress_allowed++;
	else if (blocked)
		c->egress_blocked++;
	if (strncmp(type, "approval.", 9) != 0 && c->egress_events++ >= RUN_MAX_EGRESS_EVENTS)
		return; /* the counts in run.finished still tell */
	json_t *d = json_deep_copy(data);
	json_object_del(d, "run_id");
	json_object_del(d, "seq");
	json_object_del(d, "prev_hash");
	json_object_del(d, "hash");
	emit(c, type, d);
	json_decref(d);
}

/* An audit line from the network part: redacted (a host name, a path or a
 * reason may hold what the agent put there), then chained into the log. */
static void on_audit(void *ctx, json_t *entry)
{
	struct run_ctx *c = ctx;
	if (!c->audit)
		return;
	struct cdn_err err = { 0 };
	if (c->red && redact_json(c->red, entry) < 0)
		return;
	if (audit_append(c->audit, entry, false, &err) < 0) {
		fprintf(stderr, "cordon: audit log: %s\n", err.msg);
		return;
	}
	/* The head goes into the run's record as the log grows: if this
	 * process dies, a log cut short afterwards is still found out. */
	if (store_run_anchor(c->s, c->rec.id, audit_last_hash(c->audit), audit_last_seq(c->audit),
			     &err) < 0)
		fprintf(stderr, "cordon: audit log: %s\n", err.msg);
}

static void on_net_event(void *ctx, const char *type, json_t *data)
{
	if (strncmp(type, "egress.", 7) == 0 || strncmp(type, "approval.", 9) == 0)
		on_egress(ctx, type, data);
	else
		mcp_event(ctx, type, data);
}

/* The network part died: the sandbox has no network any more, and the run
 * is over, as an error with the reason. */
static void on_net_died(void *ctx, const char *why)
{
	struct run_ctx *c = ctx;
	snprintf(c->net_error, sizeof(c->net_error), "%s; the sandbox was stopped", why);
	json_t *d = json_pack("{s:s}", "error", c->net_error);
	emit(c, "network.failed", d);
	json_decref(d);
	if (c->sb)
		sandbox_kill(c->sb, false);
}

static void on_phase(void *ctx, int phase, const struct sandbox_phase_status *st)
{
	struct run_ctx *c = ctx;
	netpart_phase_ended(c->net, phase);
	if (phase != 0 || !c->agent.manifest->setup)
		return;
	/* What setup wrote to the steps channel comes first: the next phase
	 * starts only after this returns (the sandbox waits for it). */
	steps_read(c);
	c->setup_ms = (uint64_t)(cdn_wall_ms() - c->started_ms);
	c->setup_done = true;
	json_t *d = json_pack("{s:i, s:I}", "exit_code", st->signal ? 128 + st->signal : st->exit_code,
			      "duration_ms", (json_int_t)c->setup_ms);
	emit(c, "setup.finished", d);
	json_decref(d);
}

/* --------------------------------------------------------------- outputs */

/* path in the workspace (the agent's to arrange), with no link and no
 * mount crossed on the way. */
static int open_beneath(int dirfd, const char *path, int flags)
{
	return cdn_openat2(dirfd, path, flags | O_CLOEXEC | O_NOFOLLOW, 0,
			   RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
			       RESOLVE_NO_XDEV);
}

/* /workspace/output.json, when it is a regular file of valid JSON. */
static json_t *read_output(int ws_fd, char *why, size_t cap)
{
	why[0] = '\0';
	if (ws_fd < 0)
		return NULL;
	_cleanup_close_ int fd = open_beneath(ws_fd, "output.json", O_RDONLY | O_NONBLOCK);
	if (fd < 0) {
		if (errno != ENOENT)
			snprintf(why, cap, "output.json: %s", strerror(errno));
		return NULL;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(why, cap, "output.json is not a regular file");
		return NULL;
	}
	if (st.st_size > RUN_MAX_OUTPUT) {
		snprintf(why, cap, "output.json is larger than %d bytes", RUN_MAX_OUTPUT);
		return NULL;
	}
	_cleanup_free_ char *buf = NULL;
	size_t n;
	int r = cdn_read_fd(fd, RUN_MAX_OUTPUT, &buf, &n);
	if (r == -EFBIG) {
		snprintf(why, cap, "output.json is larger than %d bytes", RUN_MAX_OUTPUT);
		return NULL;
	}
	if (r < 0) {
		snprintf(why, cap, "output.json: read failed");
		return NULL;
	}
	json_error_t je;
	json_t *j = json_loadb(buf, n, JSON_REJECT_DUPLICATES, &je);
	if (!j)
		snprintf(why, cap, "output.json is not valid JSON (line %d: %s)", je.line, je.text);
	return j;
}

/* --------------------------------------------------------------- helpers */

static const char *status_for(const struct sandbox_status *st)
{
	if (st->timed_out)
		return "timeout";
	if (st->oom_killed)
		return "oom";
	if (st->signal)
		return "killed";
	return st->exit_code == 0 ? "succeeded" : "failed";
}

static int write_file(struct run_ctx *c, const char *name, json_t *j)
{
	char path[PATH_MAX + 64];
	int r = store_run_file(c->s, c->rec.id, name, path, sizeof(path), NULL);
	if (r < 0)
		return r;
	_cleanup_free_ char *text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (!text)
		return -ENOMEM;
	size_t len = strlen(text);
	size_t rl = len;
	_cleanup_free_ char *safe = NULL;
	if (c->red && !(safe = redact_string(c->red, text, len, &rl)))
		return -ENOMEM; /* never the unredacted text */
	_cleanup_free_ char *full = NULL;
	const char *body = safe ? safe : text;
	if (asprintf(&full, "%.*s\n", (int)rl, body) < 0)
		return -ENOMEM;
	struct cdn_err err = { 0 };
	return store_write_atomic(c->s, path, full, rl + 1, 0644, &err);
}

static json_t *item_json(const char *name, unsigned version, const char *hash)
{
	return json_pack("{s:s, s:I, s:s}", "name", name, "version", (json_int_t)version, "sha256",
			 hash);
}

/* Secrets the agent declared, from the vault: NAME=value for the sandbox,
 * and the values for redaction and for egress content inspection. */
struct secret_set {
	char **env;
	uint8_t **values;
	size_t *lens;
	size_t n;
	/* Per secret: where it may go (manifest or default scope, borrowed),
	 * and its placeholder when sealed (the sandbox gets that instead). */
	const char *const **domains;
	char **placeholders;
};

static void secrets_free(struct secret_set *ss)
{
	for (size_t i = 0; i < ss->n; i++) {
		if (ss->env && ss->env[i]) {
			sodium_memzero(ss->env[i], strlen(ss->env[i]));
			free(ss->env[i]);
		}
		if (ss->values && ss->values[i])
			vault_value_free(ss->values[i], ss->lens[i]);
		if (ss->placeholders && ss->placeholders[i])
			free(ss->placeholders[i]);
	}
	free(ss->domains);
	free(ss->placeholders);
	free(ss->env);
	free(ss->values);
	free(ss->lens);
	memset(ss, 0, sizeof(*ss));
}

/*
 * How secret i reaches the sandbox. A secret that may go somewhere (the
 * manifest's egress.secrets, or an LLM key's provider) in a run with a
 * network is sealed unless the manifest says raw: the sandbox gets a
 * placeholder and the network part swaps the value in on the way to that
 * scope, so no transform of what the agent holds can leak it. A raw
 * secret the network part must recognise in any request: it is refused
 * when too short for that.
 */
static int deliver_secret(struct run_ctx *c, struct secret_set *ss, size_t i, struct cdn_err *err)
{
	const struct agent_manifest *m = c->agent.manifest;
	const char *name = m->required_secrets[i];
	const char *const *doms = manifest_default_secret_domains(name);
	bool raw = false;
	for (size_t q = 0; q < m->n_secret_scopes; q++)
		if (strcmp(m->secret_scope_names[q], name) == 0) {
			doms = (const char *const *)m->secret_scope_domains[q];
			raw = m->secret_scope_raw[q];
		}
	ss->domains[i] = doms;
	bool network = manifest_wants_network(m);
	const uint8_t *give = ss->values[i];
	if (network && doms && doms[0] && !raw) {
		if (ss->lens[i] > INSPECT_MAX_SECRET_LEN)
			return cdn_err_msg(err, EINVAL,
					   "secret %s is %zu bytes, too long to seal (at most %d); "
					   "declare it raw in egress.secrets",
					   name, ss->lens[i], INSPECT_MAX_SECRET_LEN);
		ss->placeholders[i] = malloc(ss->lens[i] + 1);
		if (!ss->placeholders[i])
			return cdn_err_set(err, ENOMEM, "secrets");
		struct cdn_err serr = { 0 };
		if (seal_placeholder(ss->values[i], ss->lens[i], ss->placeholders[i], &serr) < 0)
			return cdn_err_msg(err, EINVAL,
					   "secret %s cannot be sealed: %s; declare it raw in "
					   "egress.secrets ({\"domains\": [...], \"raw\": true})",
					   name, serr.msg);
		give = (const uint8_t *)ss->placeholders[i];
	} else if (network && ss->lens[i] < INSPECT_MIN_SECRET_LEN) {
		/* The proxy could not tell it from ordinary bytes, so it could
		 * leave in any request: no run rather than a false promise. */
		return cdn_err_msg(err, EINVAL,
				   "secret %s is raw and only %zu bytes long: the proxy needs at least "
				   "%d to recognise it in a request; seal it (an egress.secrets scope "
				   "without \"raw\") or make it longer",
				   name, ss->lens[i], INSPECT_MIN_SECRET_LEN);
	}
	/* What the network part will look for, and how well: result.json's
	 * protections say it (docs/vault.md). */
	const char *how = "none: the run has no network";
	char chunks[160];
	if (network && ss->placeholders[i] && ss->lens[i] >= INSPECT_MIN_SECRET_LEN) {
		how = "sealed: the value never enters the sandbox; the placeholder is blocked "
		      "outside the scope";
		c->n_inspected++;
	} else if (network && ss->placeholders[i]) {
		how = "sealed: the value never enters the sandbox; the placeholder is too short "
		      "to be told from other bytes, and goes unblocked (it is not the secret)";
	} else if (network) {
		size_t chunk = inspect_chunk_len(ss->lens[i]);
		if (chunk == 0)
			return cdn_err_msg(err, E2BIG, "secret %s is too long to inspect (%zu bytes)",
					   name, ss->lens[i]);
		if (chunk == ss->lens[i]) {
			how = "the whole value and its common encodings";
			c->n_inspected++;
		} else {
			snprintf(chunks, sizeof(chunks),
				 "by chunks of %zu bytes: any %zu consecutive bytes of it are found",
				 chunk, 2 * chunk - 1);
			how = chunks;
			c->n_inspected += ss->lens[i] / chunk;
		}
	}
	if (c->n_inspected > INSPECT_MAX_SECRETS)
		return cdn_err_msg(err, E2BIG,
				   "the agent's secrets need %zu inspection entries, more than %d",
				   c->n_inspected, INSPECT_MAX_SECRETS);
	json_t *scope = json_array();
	for (size_t k = 0; scope && doms && doms[k]; k++)
		json_array_append_new(scope, json_string(doms[k]));
	json_object_set_new(c->delivery, name,
			    json_pack("{s:s, s:o, s:s}", "delivery",
				      ss->placeholders[i] ? "sealed" : "raw", "scope",
				      scope ? scope : json_array(), "inspection", how));
	size_t nl = strlen(name);
	ss->env[i] = malloc(nl + 1 + ss->lens[i] + 1);
	if (!ss->env[i])
		return cdn_err_set(err, ENOMEM, "secrets");
	memcpy(ss->env[i], name, nl);
	ss->env[i][nl] = '=';
	memcpy(ss->env[i] + nl + 1, give, ss->lens[i]);
	ss->env[i][nl + 1 + ss->lens[i]] = '\0';
	return 0;
}

static int load_secrets(struct run_ctx *c, struct secret_set *ss, struct cdn_err *err)
{
	const struct agent_manifest *m = c->agent.manifest;
	ss->n = m->n_required_secrets;
	ss->env = calloc(ss->n + 1, sizeof(char *));
	ss->values = calloc(ss->n + 1, sizeof(uint8_t *));
	ss->lens = calloc(ss->n + 1, sizeof(size_t));
	ss->domains = calloc(ss->n + 1, sizeof(*ss->domains));
	ss->placeholders = calloc(ss->n + 1, sizeof(char *));
	if (!ss->env || !ss->values || !ss->lens || !ss->domains || !ss->placeholders)
		return cdn_err_set(err, ENOMEM, "secrets");
	for (size_t i = 0; i < ss->n; i++) {
		const char *name = m->required_secrets[i];
		if (!c->v)
			return cdn_err_msg(err, ENOENT, "secret %s is required but the vault is not open",
					   name);
		int r = vault_get(c->v, c->ws, name, &ss->values[i], &ss->lens[i], err);
		if (r == -ENOENT)
			return cdn_err_msg(err, ENOENT,
					   "the agent needs secret %s, which is not set in workspace "
					   "%s (cordon secret set %s)",
					   name, c->ws, name);
		if (r < 0)
			return r;
		if (memchr(ss->values[i], '\0', ss->lens[i]))
			return cdn_err_msg(err, EINVAL,
					   "secret %s holds a NUL byte and cannot be an environment "
					   "variable",
					   name);
		if ((r = deliver_secret(c, ss, i, err)) < 0)
			return r;
		json_array_append_new(c->secrets, json_string(name));
	}
	return 0;
}

/* ------------------------------------------------------------------- run */

/* How the network part is confined, as it reported once ready. */
static json_t *netpart_json(const struct netpart_info *ni)
{
	if (!ni->ready)
		return json_null();
	return json_pack("{s:I, s:I, s:b, s:b, s:i, s:s}", "uid", (json_int_t)ni->uid, "gid",
			 (json_int_t)ni->gid, "no_new_privs", ni->no_new_privs, "seccomp",
			 ni->seccomp, "landlock_abi", ni->landlock_abi, "capabilities", ni->caps);
}

/* What protects the run: the sandbox's layers, its network part's
 * confinement, and how each secret was delivered (sandbox.ready and
 * result.json say the same). */
static json_t *run_protections(const struct run_ctx *c, const struct sandbox_protections *p)
{
	json_t *j = sandbox_protections_json(p);
	json_object_set_new(j, "network_part", netpart_json(&c->net_info));
	json_object_set(j, "secrets", c->delivery);
	return j;
}

static void capture_init(struct capture *cap, const char *name, size_t limit)
{
	memset(cap, 0, sizeof(*cap));
	cap->name = name;
	cap->fd = cap->file = -1;
	cap->cap = limit;
}

static void capture_close(struct capture *cap)
{
	if (cap->ev)
		event_free(cap->ev);
	if (cap->fd >= 0)
		close(cap->fd);
	if (cap->file >= 0)
		close(cap->file);
	redact_stream_free(&cap->rs);
}

static json_t *capture_json(const struct capture *cap)
{
	return json_pack("{s:s, s:I, s:I, s:b}", "file", cap->name, "bytes",
			 (json_int_t)cap->total, "kept", (json_int_t)cap->written, "truncated",
			 cap->truncated);
}

int run_exit_code(const struct run_outcome *o)
{
	switch (o->status) {
	case RUN_SUCCEEDED:
		return 0;
	case RUN_FAILED:
	case RUN_KILLED:
	case RUN_TIMEOUT:
	case RUN_OOM:
		return o->exit_code > 0 ? o->exit_code : 1;
	case RUN_CREATED:
	case RUN_RUNNING:
	case RUN_CANCELLED:
	case RUN_ERROR:
		break;
	}
	return 125;
}

/* The operator's policy, narrowed by the workspace's, narrowed by the
 * agent's egress section: each level can only narrow the one above it
 * (policy_levels.h). */
static int run_policy(struct run_ctx *c, struct egress_policy **out, struct cdn_err *err)
{
	struct run_policy_levels lv;
	int r = run_policy_levels_load(c->s, c->ws, c->o->policy_path, c->o->allow_private,
				       c->o->n_allow_private, &lv, NULL, NULL, err);
	if (r < 0)
		return r;
	const struct agent_manifest *m = c->agent.manifest;
	if (!m->has_egress) {
		*out = run_policy_levels_take(&lv);
		return 0;
	}
	r = egress_policy_narrow(lv.effective, (const char *const *)m->egress_domains,
				 m->n_egress_domains, m->egress_rules, m->n_egress_rules, out, NULL,
				 NULL, err);
	run_policy_levels_clear(&lv);
	return r;
}

/* The rule a request to `host` would match: inspected from now on. */
static void inspect_rule_for(struct egress_policy *p, const char *host)
{
	const struct egress_rule *r = egress_policy_match(p, host);
	if (r)
		((struct egress_rule *)r)->inspect = true;
}

/*
 * A sealed secret is swapped in inside requests, so the network part must
 * read the requests to its scope: those domains are TLS-inspected, whatever
 * the policy says (the run CA then vouches for them too).
 */
static void inspect_sealed_scopes(struct egress_policy *p, const struct secret_set *ss)
{
	for (size_t i = 0; i < ss->n; i++) {
		for (size_t k = 0; ss->placeholders[i] && ss->domains[i] && ss->domains[i][k]; k++) {
			const char *d = ss->domains[i][k];
			if (strncmp(d, "*.", 2) != 0) {
				inspect_rule_for(p, d);
				continue;
			}
			/* Every rule at or below the wildcard, and the rule a name
			 * below it would fall to (a wider wildcard). */
			size_t sl = strlen(d + 1); /* ".example.com" */
			for (size_t j = 0; j < p->n_rules; j++) {
				const char *n = p->rules[j].name;
				size_t nl = strlen(n);
				if (strcmp(n, d) == 0 || (nl > sl && strcmp(n + nl - sl, d + 1) == 0))
					p->rules[j].inspect = true;
			}
			char probe[EGRESS_MAX_HOST + 8];
			snprintf(probe, sizeof(probe), "cordon-probe%s", d + 1);
			inspect_rule_for(p, probe);
		}
	}
}

static int make_run_dir(struct run_ctx *c, struct cdn_err *err)
{
	int r = store_run_file(c->s, c->rec.id, NULL, c->dir, sizeof(c->dir), err);
	if (r < 0)
		return r;
	if (mkdir(c->dir, 0700) < 0)
		return cdn_err_set(err, errno, "create %s", c->dir);
	char path[PATH_MAX + 32];
	if ((r = store_run_file(c->s, c->rec.id, "events.ndjson", path, sizeof(path), err)) < 0 ||
	    (r = events_writer_open(&c->events, path, c->rec.id, err)) < 0)
		return r;
	if (r < 0)
		return r;
	c->events.scrub_json = scrub_json;
	c->events.scrub_line = scrub_line;
	c->events.ctx = c;
	const char *names[2] = { "stdout", "stderr" };
	struct capture *caps[2] = { &c->out, &c->errc };
	for (int i = 0; i < 2; i++) {
		if ((r = store_run_file(c->s, c->rec.id, names[i], path, sizeof(path), err)) < 0)
			return r;
		caps[i]->file = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (caps[i]->file < 0)
			return cdn_err_set(err, errno, "create %s", path);
	}
	return 0;
}

/* Sandbox, egress, supervision: the part that runs the agent. Fills st;
 * returns negative only when the sandbox could not be made. */
static int execute(struct run_ctx *c, const struct secret_set *ss, struct sandbox_status *st,
		   int *ws_fd, struct cdn_err *err)
{
	const struct agent_manifest *m = c->agent.manifest;
	struct sandbox_config cfg;
	sandbox_config_init(&cfg);
	struct event_base *base = NULL;
	struct egress_policy *policy = NULL;
	struct egress_ca *ca = NULL;
	struct sandbox *sb = NULL;
	int pipes[2][2] = { { -1, -1 }, { -1, -1 } };
	char *env_store[REGISTRY_MAX_ENV_VARS] = { NULL };
	size_t n_env_store = 0;
	_cleanup_close_ int devnull = -1;
	char tokens[2][MCP_TOKEN_LEN + 1] = { "", "" };
	char mcp_env[2][MCP_TOKEN_LEN + 32] = { "", "" };
	struct netpart_secret nsec[NETPART_MAX_SECRETS];
	size_t n_nsec = 0;
	int r;

	cfg.phases[cfg.n_phases++] = m->setup ? m->setup : m->entrypoint;
	if (m->setup)
		cfg.phases[cfg.n_phases++] = m->entrypoint;
	cfg.limits.mem_bytes = m->mem_bytes ? m->mem_bytes
					    : c->o->default_mem_bytes ? c->o->default_mem_bytes
								      : DEFAULT_MEM;
	cfg.limits.pids = m->pids ? m->pids : c->o->default_pids ? c->o->default_pids : DEFAULT_PIDS;
	cfg.limits.cpu_millicores = m->cpu_millicores;
	cfg.limits.timeout_ms = m->timeout_s * 1000ull;
	cfg.limits.workspace_bytes = c->o->workspace_bytes ? c->o->workspace_bytes : DEFAULT_WORKSPACE;
	cfg.allow_degraded = c->o->allow_degraded;
	cfg.keep_workspace = true;
	cfg.steps_channel = true;
	cfg.files[cfg.n_files++] = (struct sandbox_file){ .path = "input.json",
							  .data = c->rec.input_json,
							  .len = strlen(c->rec.input_json) };
	cfg.files[cfg.n_files++] = (struct sandbox_file){ .path = "out" };

	if ((r = sandbox_config_add_bind(&cfg, c->agent.tree_path, "/agent", false, err)) < 0)
		return r;
	/* Snapshots the store made: files, directories and links that stay
	 * inside them; no sockets or devices to search for. */
	cfg.binds[cfg.n_binds - 1].no_special_files = true;
	/* The paths of resolved capabilities live in caps[i].path. */
	size_t i;
	json_t *cap;
	json_array_foreach(c->caps, i, cap)
	{
		const char *src = json_string_value(json_object_get(cap, "path"));
		const char *dst = json_string_value(json_object_get(cap, "mount"));
		if ((r = sandbox_config_add_bind(&cfg, src, dst, false, err)) < 0)
			return r;
		cfg.binds[cfg.n_binds - 1].no_special_files = true;
	}

	char run_env[1][STORE_RUN_ID_MAX + 32];
	snprintf(run_env[0], sizeof(run_env[0]), "CORDON_RUN_ID=%s", c->rec.id);
	const char *fixed[] = { run_env[0], "CORDON_INPUT=/workspace/input.json",
				"CORDON_OUTPUT=/workspace/output.json",
				"CORDON_ARTIFACTS=/workspace/out",
				"CORDON_STEPS=" SANDBOX_STEPS_PATH };
	for (size_t k = 0; k < CDN_ARRAY_SIZE(fixed); k++)
		if ((r = sandbox_config_add_env(&cfg, fixed[k], err)) < 0)
			return r;
	/* The env's variables first, so a secret of the same name wins. */
	if (json_is_object(c->env)) {
		const char *key;
		json_t *val;
		json_object_foreach(json_object_get(c->env, "vars"), key, val)
		{
			if (n_env_store >= CDN_ARRAY_SIZE(env_store))
				break;
			if (asprintf(&env_store[n_env_store], "%s=%s", key, json_string_value(val)) < 0) {
				env_store[n_env_store] = NULL;
				r = cdn_err_set(err, ENOMEM, "env");
				goto out;
			}
			if ((r = sandbox_config_add_env(&cfg, env_store[n_env_store++], err)) < 0)
				goto out;
		}
	}
	for (size_t k = 0; k < ss->n; k++)
		if ((r = sandbox_config_add_env(&cfg, ss->env[k], err)) < 0) {
			/* the message quotes only the name: see add_env */
			cdn_err_set(err, -r, "secret %s cannot be an environment variable",
				    m->required_secrets[k]);
			goto out;
		}

	for (int k = 0; k < 2; k++)
		if (pipe2(pipes[k], O_CLOEXEC) < 0) {
			r = cdn_err_set(err, errno, "pipe");
			goto out;
		}
	cfg.stdout_fd = pipes[0][1];
	cfg.stderr_fd = pipes[1][1];
	devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	cfg.stdin_fd = devnull;

	base = event_base_new();
	if (!base) {
		r = cdn_err_set(err, ENOMEM, "event loop");
		goto out;
	}
	/* The MCP endpoint: a listener in the sandbox's own loopback, a
	 * single-use token per phase, served by the network part. */
	for (size_t k = 0; k < cfg.n_phases; k++) {
		mcp_token_make(tokens[k]);
		snprintf(mcp_env[k], sizeof(mcp_env[k]), "CORDON_MCP_TOKEN=%s", tokens[k]);
		cfg.phase_env[k] = mcp_env[k];
	}
	cfg.mcp_channel = true;
	if ((r = sandbox_config_add_env(&cfg, "CORDON_MCP_URL=http://127.0.0.1:3129/mcp", err)) < 0)
		goto out;
	if (manifest_wants_network(m)) {
		cfg.net = SANDBOX_NET_PROXY;
		if ((r = run_policy(c, &policy, err)) < 0)
			goto out;
		inspect_sealed_scopes(policy, ss);
		char audit_path[PATH_MAX + 32];
		if ((r = store_run_file(c->s, c->rec.id, "audit.jsonl", audit_path,
					sizeof(audit_path), err)) < 0 ||
		    (r = audit_open(audit_path, &c->audit, err)) < 0)
			goto out;
		/* The run's CA, when a rule inspects TLS: made here, its key handed
		 * to the network part, its certificate trusted in the sandbox. */
		size_t n_names = 0;
		const char **names = egress_inspected_names(policy, &n_names);
		if (n_names && (r = egress_ca_new(c->rec.id, names, n_names, &ca, err)) < 0) {
			free(names);
			goto out;
		}
		free(names);
		if (ca)
			cfg.ca_pem = egress_ca_pem(ca);
		/* Every secret the part must know: raw ones to look for, sealed
		 * ones to swap in, each with where it may go. */
		for (size_t k = 0; k < ss->n && k < NETPART_MAX_SECRETS; k++) {
			size_t nd = 0;
			while (ss->domains[k] && ss->domains[k][nd])
				nd++;
			nsec[n_nsec++] = (struct netpart_secret){ .name = m->required_secrets[k],
								 .value = ss->values[k],
								 .len = ss->lens[k],
								 .placeholder = ss->placeholders[k],
								 .domains = ss->domains[k],
								 .n_domains = nd };
		}
	}

	r = sandbox_spawn(&cfg, &sb, err);
	for (int k = 0; k < 2; k++) {
		close(pipes[k][1]);
		pipes[k][1] = -1;
	}
	if (r < 0)
		goto out;
	c->sb = sb;
	c->started_ms = cdn_wall_ms();
	c->rec.started_ms = c->started_ms;
	c->rec.status = RUN_RUNNING;
	(void)store_run_update(c->s, &c->rec, NULL);

	*ws_fd = sandbox_take_workspace_fd(sb);
	c->ws_live = *ws_fd;
	c->steps_fd = sandbox_take_steps_fd(sb);
	sandbox_host_ids(sb, &c->sb_uid, &c->sb_gid);
	sandbox_set_phase_cb(sb, on_phase, c);

	/* The network part: everything that parses what the agent sends
	 * over the network, confined in a process of its own. It gets the
	 * only copies of the sandbox's sockets. */
	struct netpart_config nc = {
		.run_id = c->rec.id,
		.policy = policy,
		.ca = ca,
		.secrets = nsec,
		.n_secrets = n_nsec,
		.hosts_file = c->o->hosts_file,
		.upstream_ca_file = c->o->upstream_ca,
		.proxy_fd = -1,
		.dns_udp_fd = -1,
		.dns_tcp_fd = -1,
		.mcp_fd = sandbox_take_mcp_fd(sb),
		.input_json = c->rec.input_json,
		.token_ttl_ms = (m->timeout_s + 60) * 1000ull,
		.approval_timeout_ms = RUN_MCP_APPROVAL_TIMEOUT_MS,
		.has_setup = m->setup != NULL,
		.tokens = { tokens[0], tokens[1] },
		.allow_degraded = c->o->allow_degraded,
		.want_audit = true,
		.want_events = true,
	};
	if (policy)
		sandbox_take_egress_fds(sb, &nc.proxy_fd, &nc.dns_udp_fd, &nc.dns_tcp_fd);
	struct netpart_hooks nh = { .ctx = c,
				    .event = on_net_event,
				    .audit = on_audit,
				    .step = mcp_step,
				    .artifact = mcp_artifact,
				    .died = on_net_died };
	r = netpart_start(base, &nc, &nh, &c->net, err);
	sodium_memzero(tokens, sizeof(tokens));
	egress_ca_free(ca);
	ca = NULL;
	if (r == 0)
		r = netpart_wait_ready(c->net, err);
	if (r < 0) {
		/* No network part, no run: the sandbox has no way out and no MCP
		 * endpoint; stop it rather than let it run half-served. */
		sandbox_kill(sb, false);
		goto out;
	}
	c->net_info = *netpart_info(c->net);

	struct capture *caps[2] = { &c->out, &c->errc };
	for (int k = 0; k < 2; k++) {
		caps[k]->fd = pipes[k][0];
		pipes[k][0] = -1;
		fcntl(caps[k]->fd, F_SETFL, O_NONBLOCK);
		caps[k]->ev = event_new(base, caps[k]->fd, EV_READ | EV_PERSIST, on_capture, caps[k]);
		if (caps[k]->ev)
			event_add(caps[k]->ev, NULL);
	}
	if (c->steps_fd >= 0) {
		c->steps_ev = event_new(base, c->steps_fd, EV_READ | EV_PERSIST, on_steps, c);
		if (c->steps_ev)
			event_add(c->steps_ev, NULL);
	}

	/* sandbox.ready: what protects this run. */
	json_t *pj = json_object();
	json_object_set_new(pj, "network", json_string(policy ? "proxy" : "none"));
	json_object_set_new(pj, "protections", run_protections(c, sandbox_protections(sb)));
	emit(c, "sandbox.ready", pj);
	json_decref(pj);

	struct supervise_opts so = { .base = base, .sb = sb };
	r = run_supervise(&so, st, err);
	/* The sandbox is gone and so are the pipes' writers: drain them. */
	for (int k = 0; k < 2; k++) {
		fcntl(caps[k]->fd, F_SETFL, 0);
		while (!caps[k]->eof)
			capture_read(caps[k]);
		redact_finish(&caps[k]->rs, capture_write, caps[k]);
	}
	if (c->steps_fd >= 0)
		steps_read(c);
	if (c->step_len && !c->step_overflow) /* a last line without its newline */
		step_line(c, c->step_buf, c->step_len);
	c->step_len = 0;
	if (r < 0) {
		/* Setup failed inside the sandbox (after READY): still a run
		 * that ended, with the reason. */
		st->exit_code = 125;
	}
	r = r < 0 ? r : 0;
out:
	for (size_t k = 0; k < n_env_store; k++)
		free(env_store[k]);
	for (int k = 0; k < 2; k++)
		for (int e = 0; e < 2; e++)
			if (pipes[k][e] >= 0)
				close(pipes[k][e]);
	if (c->steps_ev)
		event_free(c->steps_ev);
	c->steps_ev = NULL;
	if (c->out.ev) {
		event_free(c->out.ev);
		c->out.ev = NULL;
	}
	if (c->errc.ev) {
		event_free(c->errc.ev);
		c->errc.ev = NULL;
	}
	/* The part's last lines (connections closed, approvals denied) still
	 * reach the audit log and the events here. */
	netpart_free(c->net);
	c->net = NULL;
	c->ws_live = -1;
	sodium_memzero(tokens, sizeof(tokens));
	sodium_memzero(mcp_env, sizeof(mcp_env));
	egress_policy_free(policy);
	egress_ca_free(ca);
	c->sb = NULL;
	sandbox_free(sb);
	if (base)
		event_base_free(base);
	return r;
}

/* ------------------------------------------------------------- the run */

/* The capabilities the manifest names: each must be granted to the agent
 * in the workspace; each is mounted read-only at /capabilities/<name>. */
static int resolve_caps(struct run_ctx *c, struct cdn_err *err)
{
	const struct agent_manifest *m = c->agent.manifest;
	for (size_t i = 0; i < m->n_capabilities; i++) {
		const char *name = m->capabilities[i];
		if (!store_grant_has(c->s, c->ws, c->agent.name, name))
			return cdn_err_msg(err, EACCES,
					   "agent %s uses capability %s, which is not granted to it in "
					   "workspace %s (cordon grant %s %s)",
					   c->agent.name, name, c->ws, c->agent.name, name);
		struct store_item it = { 0 };
		int r = store_item_get(c->s, STORE_CAPABILITY, c->ws, name, 0, &it, err);
		if (r == -ENOENT)
			return cdn_err_msg(err, ENOENT, "capability %s is not registered in workspace %s",
					   name, c->ws);
		if (r < 0)
			return r;
		char path[4096];
		r = store_tree_checkout(c->s, it.tree, path, sizeof(path), err);
		if (r == 0) {
			json_t *j = item_json(name, it.version, it.hash);
			json_object_set_new(j, "path", json_string(path));
			json_object_set_new(j, "mount", json_sprintf("/capabilities/%s", name));
			json_array_append_new(c->caps, j);
		}
		store_item_clear(&it);
		if (r < 0)
			return r;
	}
	return 0;
}

static int resolve_env(struct run_ctx *c, struct cdn_err *err)
{
	const struct agent_manifest *m = c->agent.manifest;
	if (!m->env[0])
		return 0;
	struct store_item it = { 0 };
	int r = store_item_get(c->s, STORE_ENV, c->ws, m->env, 0, &it, err);
	if (r == -ENOENT)
		return cdn_err_msg(err, ENOENT,
				   "the agent uses env %s, which is not registered in workspace %s "
				   "(cordon env register %s K=V...)",
				   m->env, c->ws, m->env);
	if (r < 0)
		return r;
	json_error_t je;
	json_t *vars = json_loads(it.doc ? it.doc : "", JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(vars)) {
		json_decref(vars);
		store_item_clear(&it);
		return cdn_err_set(err, EIO, "env %s: stored document is damaged", m->env);
	}
	c->env = item_json(m->env, it.version, it.hash);
	json_object_set_new(c->env, "vars", vars);
	store_item_clear(&it);
	return 0;
}

static int read_input(struct run_ctx *c, char **canon, char hash[STORE_HASH_HEX + 1],
		      struct cdn_err *err)
{
	const char *in = c->o->input ? c->o->input : "{}";
	size_t len = c->o->input ? c->o->input_len : 2;
	if (len > RUN_MAX_INPUT)
		return cdn_err_msg(err, E2BIG, "input: %zu bytes, at most %d", len, RUN_MAX_INPUT);
	json_error_t je;
	json_t *j = json_loadb(in, len, JSON_REJECT_DUPLICATES, &je);
	if (!j)
		return cdn_err_msg(err, EINVAL, "input is not valid JSON: line %d, column %d: %s",
				   je.line, je.column, je.text);
	if (!json_is_object(j)) {
		json_decref(j);
		return cdn_err_msg(err, EINVAL, "input must be a JSON object");
	}
	*canon = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(j);
	if (!*canon)
		return cdn_err_set(err, ENOMEM, "input");
	cdn_sha256_hex(*canon, strlen(*canon), hash);
	return 0;
}

static int make_redactor(struct run_ctx *c, const struct secret_set *ss, struct cdn_err *err)
{
	struct redact_secret rs[REDACT_MAX_SECRETS];
	size_t n = 0;
	for (size_t i = 0; i < ss->n && n < REDACT_MAX_SECRETS; i++) {
		if (ss->lens[i] < REDACT_MIN_LEN)
			return cdn_err_msg(err, EINVAL,
					   "secret %s is shorter than %d bytes: too short to keep out of "
					   "logs, so it is refused",
					   c->agent.manifest->required_secrets[i], REDACT_MIN_LEN);
		rs[n++] = (struct redact_secret){ .name = c->agent.manifest->required_secrets[i],
						  .value = (const char *)ss->values[i],
						  .len = ss->lens[i] };
		/* A placeholder is the secret as far as the logs go. */
		if (ss->placeholders[i] && n < REDACT_MAX_SECRETS)
			rs[n++] = (struct redact_secret){ .name = c->agent.manifest->required_secrets[i],
							  .value = ss->placeholders[i],
							  .len = ss->lens[i] };
	}
	int r = redactor_new(rs, n, &c->red, err);
	if (r == 0)
		r = redact_stream_init(&c->out.rs, c->red, err);
	if (r == 0)
		r = redact_stream_init(&c->errc.rs, c->red, err);
	return r;
}

static json_t *artifacts_json(struct run_ctx *c, const struct artifact_result *ar)
{
	json_t *list = json_array();
	for (size_t i = 0; i < ar->n_saved; i++) {
		const struct artifact *a = &ar->saved[i];
		json_t *j = json_pack("{s:s, s:s, s:s, s:I}", "name", a->name, "original",
				      a->original, "sha256", a->sha256, "size", (json_int_t)a->size);
		emit(c, "artifact.saved", j);
		json_array_append_new(list, j);
	}
	for (size_t i = 0; i < ar->n_skipped; i++) {
		json_t *j = json_pack("{s:s, s:s}", "name", ar->skipped[i].name, "reason",
				      ar->skipped[i].reason);
		emit(c, "artifact.skipped", j);
		json_decref(j);
	}
	return list;
}

/* The operator's artifact limits, narrowed by the manifest's outputs. */
static void artifact_limits_for(const struct run_ctx *c, struct artifact_limits *lim,
				const char **exts)
{
	artifact_limits_default(lim);
	const struct artifact_limits *op = &c->o->artifacts;
	if (op->max_files)
		lim->max_files = op->max_files;
	if (op->max_file_bytes)
		lim->max_file_bytes = op->max_file_bytes;
	if (op->max_total_bytes)
		lim->max_total_bytes = op->max_total_bytes;
	if (op->extensions) {
		lim->extensions = op->extensions;
		lim->n_extensions = op->n_extensions;
	}
	const struct agent_outputs *ao = &c->agent.manifest->outputs;
	if (ao->max_files && ao->max_files < lim->max_files)
		lim->max_files = ao->max_files;
	if (ao->max_file_bytes && ao->max_file_bytes < lim->max_file_bytes)
		lim->max_file_bytes = ao->max_file_bytes;
	if (ao->max_total_bytes && ao->max_total_bytes < lim->max_total_bytes)
		lim->max_total_bytes = ao->max_total_bytes;
	if (ao->extensions) {
		/* Only extensions the operator allows as well. */
		const char *const *allowed = lim->extensions ? lim->extensions
							     : artifact_default_extensions();
		size_t n_allowed = lim->extensions ? lim->n_extensions : SIZE_MAX;
		size_t k = 0;
		for (size_t i = 0; i < ao->n_extensions; i++)
			for (size_t j = 0; j < n_allowed && allowed[j]; j++)
				if (strcmp(ao->extensions[i], allowed[j]) == 0) {
					exts[k++] = ao->extensions[i];
					break;
				}
		exts[k] = NULL;
		lim->extensions = exts;
		lim->n_extensions = k;
	}
}

int run_agent(struct store *s, struct vault *v, struct run_options *o, struct run_outcome *out,
	      struct cdn_err *err)
{
	struct run_ctx c = { .s = s, .v = v, .o = o, .events = { .fd = -1 }, .steps_fd = -1,
			     .ws_live = -1 };
	c.ws = o->workspace ? o->workspace : STORE_DEFAULT_WORKSPACE;
	size_t cap = o->capture_bytes ? o->capture_bytes : RUN_DEFAULT_CAPTURE;
	capture_init(&c.out, "stdout", cap);
	capture_init(&c.errc, "stderr", cap);
	memset(out, 0, sizeof(*out));
	out->exit_code = -1;
	out->status = RUN_ERROR;
	c.caps = json_array();
	c.secrets = json_array();
	c.delivery = json_object();
	c.steps = json_array();
	struct secret_set ss = { 0 };
	_cleanup_free_ char *input = NULL;
	char input_hash[STORE_HASH_HEX + 1];
	_cleanup_free_ char *rtext = NULL, *rsafe = NULL, *queued_input = NULL;
	int ws_fd = -1;
	bool recorded = false;
	int r;

	if ((r = store_name_check("workspace", c.ws, err)) < 0)
		goto done;
	if (o->claim) {
		/* A queued record: it must exist, wait, and be this workspace's.
		 * From here on, whatever goes wrong ends up in it. */
		struct store_run q;
		if ((r = store_run_get(s, o->run_id, &q, err)) < 0)
			goto done;
		bool ok = q.status == RUN_CREATED && strcmp(q.workspace, c.ws) == 0;
		if (ok && !o->input && q.input_json) {
			/* The input came with the queued record. */
			queued_input = q.input_json;
			q.input_json = NULL;
			o->input = queued_input;
			o->input_len = strlen(queued_input);
		}
		c.rec = q;
		c.rec.input_json = c.rec.result_json = NULL;
		store_run_clear(&q);
		if (!ok) {
			r = cdn_err_msg(err, EINVAL, "run %s is not waiting to start in workspace %s",
					o->run_id, c.ws);
			goto done;
		}
		recorded = true;
		snprintf(out->id, sizeof(out->id), "%s", c.rec.id);
	}
	/* Runs a dead supervisor left behind are closed first. */
	(void)store_runs_recover(s, NULL);

	/* 1. Everything the run needs, before anything exists. */
	if ((r = read_input(&c, &input, input_hash, err)) < 0 ||
	    (r = registry_resolve_agent(s, c.ws, o->ref, &c.agent, err)) < 0 ||
	    (r = resolve_caps(&c, err)) < 0 || (r = resolve_env(&c, err)) < 0 ||
	    (r = load_secrets(&c, &ss, err)) < 0 || (r = make_redactor(&c, &ss, err)) < 0)
		goto done;

	/* 2. The record and its directory. */
	if (o->claim)
		; /* the id is the queued record's */
	else if (o->run_id[0])
		snprintf(c.rec.id, sizeof(c.rec.id), "%s", o->run_id);
	else if ((r = cdn_random_id("run_", 12, c.rec.id, sizeof(c.rec.id))) < 0) {
		cdn_err_set(err, -r, "run id");
		goto done;
	}
	snprintf(c.rec.workspace, sizeof(c.rec.workspace), "%s", c.ws);
	snprintf(c.rec.agent, sizeof(c.rec.agent), "%s", c.agent.name);
	c.rec.agent_version = c.agent.version;
	snprintf(c.rec.agent_hash, sizeof(c.rec.agent_hash), "%s", c.agent.hash);
	c.rec.status = RUN_CREATED;
	c.rec.exit_code = -1;
	if (!o->claim) {
		snprintf(c.rec.caller, sizeof(c.rec.caller), "%s", o->caller ? o->caller : "");
		c.rec.created_ms = cdn_wall_ms();
	}
	c.rec.supervisor_pid = (int)getpid();
	if ((r = cdn_boot_id(c.rec.supervisor_boot, sizeof(c.rec.supervisor_boot), err)) < 0)
		goto done;
	c.rec.input_json = input;
	if ((r = o->claim ? store_run_claim(s, &c.rec, err) : store_run_create(s, &c.rec, err)) < 0)
		goto done;
	recorded = true;
	snprintf(o->run_id, sizeof(o->run_id), "%s", c.rec.id);
	snprintf(out->id, sizeof(out->id), "%s", c.rec.id);
	if ((r = make_run_dir(&c, err)) < 0)
		goto done;
	snprintf(out->dir, sizeof(out->dir), "%s", c.dir);

	json_t *created = json_pack("{s:s, s:s, s:I, s:s, s:s, s:s, s:o, s:o, s:O}", "workspace",
				    c.ws, "agent", c.agent.name, "version",
				    (json_int_t)c.agent.version, "sha256", c.agent.hash, "caller",
				    c.rec.caller, "input_sha256", input_hash, "capabilities", json_deep_copy(c.caps), "env",
				    c.env ? json_deep_copy(c.env) : json_null(), "secrets", c.secrets);
	/* The capabilities' host paths are not the agent's business. */
	size_t i;
	json_t *cj;
	json_array_foreach(json_object_get(created, "capabilities"), i, cj)
		json_object_del(cj, "path");
	json_object_del(json_object_get(created, "env"), "vars");
	emit(&c, "run.created", created);
	json_decref(created);

	/* 3-4. The sandbox runs setup, then the entrypoint. */
	struct sandbox_status st = { 0 };
	char run_error[256] = "";
	r = execute(&c, &ss, &st, &ws_fd, err);
	secrets_free(&ss);
	if (r < 0) {
		snprintf(run_error, sizeof(run_error), "%s", err->msg);
		c.rec.status = RUN_ERROR;
		c.rec.exit_code = 125;
	} else if (c.net_error[0]) {
		/* The network part died: whatever the agent did after that ran
		 * without its network, and the sandbox was stopped. */
		snprintf(run_error, sizeof(run_error), "%s", c.net_error);
		c.rec.status = RUN_ERROR;
		c.rec.exit_code = 125;
	} else {
		store_run_status_parse(status_for(&st), &c.rec.status);
		c.rec.exit_code = st.exit_code;
		if (st.exit_code == 125 && err->msg[0]) {
			/* The sandbox could not finish its own setup. */
			snprintf(run_error, sizeof(run_error), "%s", err->msg);
			c.rec.status = RUN_ERROR;
		}
	}
	c.rec.finished_ms = cdn_wall_ms();
	if (!c.rec.started_ms)
		c.rec.started_ms = c.rec.finished_ms;
	/* What the run printed, as it was when it ended: evidence signs these
	 * files and refuses ones changed since. */
	struct capture *outs[2] = { &c.out, &c.errc };
	char *hashes[2] = { c.rec.stdout_sha256, c.rec.stderr_sha256 };
	for (int k = 0; k < 2; k++) {
		char path[PATH_MAX + 16];
		_cleanup_close_ int hfd = -1;
		if (store_run_file(s, c.rec.id, outs[k]->name, path, sizeof(path), NULL) == 0)
			hfd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (hfd < 0 || cdn_sha256_fd(hfd, hashes[k]) < 0)
			hashes[k][0] = '\0';
	}

	/* 5. Outputs, from a workspace nothing runs in any more. */
	char why[256];
	json_t *output = read_output(ws_fd, why, sizeof(why));
	if (why[0]) {
		json_t *d = json_pack("{s:s}", "problem", why);
		emit(&c, "output.invalid", d);
		json_decref(d);
	}
	const char *exts[MANIFEST_MAX_LIST + 1];
	struct artifact_limits lim;
	artifact_limits_for(&c, &lim, exts);
	lim.secrets = c.red;
	struct artifact_result ar = { 0 };
	json_t *arts = json_array();
	if (ws_fd >= 0) {
		_cleanup_close_ int outd = open_beneath(ws_fd, "out", O_RDONLY | O_DIRECTORY);
		char dest[PATH_MAX + 16];
		struct cdn_err aerr = { 0 };
		if (store_run_file(s, c.rec.id, "artifacts", dest, sizeof(dest), &aerr) < 0 ||
		    artifacts_collect(outd, s, dest, &lim, &ar, &aerr) < 0) {
			json_t *d = json_pack("{s:s, s:s}", "name", "*", "reason", aerr.msg);
			emit(&c, "artifact.skipped", d);
			json_decref(d);
		} else {
			json_decref(arts);
			arts = artifacts_json(&c, &ar);
		}
		artifacts_result_free(&ar);
	}

	uint64_t duration = (uint64_t)(c.rec.finished_ms - c.rec.created_ms);
	json_t *res = json_object();
	json_object_set_new(res, "run_id", json_string(c.rec.id));
	json_object_set_new(res, "workspace", json_string(c.ws));
	json_object_set_new(res, "status", json_string(store_run_status_name(c.rec.status)));
	json_object_set_new(res, "exit_code", json_integer(c.rec.exit_code));
	if (run_error[0])
		json_object_set_new(res, "error", json_string(run_error));
	/* What ran, by content hash. */
	json_t *resolved = json_object();
	json_object_set_new(resolved, "agent",
			    item_json(c.agent.name, c.agent.version, c.agent.hash));
	json_t *capl = json_deep_copy(c.caps);
	json_array_foreach(capl, i, cj)
	{
		json_object_del(cj, "path");
		json_object_del(cj, "mount");
	}
	json_object_set_new(resolved, "capabilities", capl);
	json_t *envj = c.env ? json_deep_copy(c.env) : json_null();
	json_object_del(envj, "vars");
	json_object_set_new(resolved, "env", envj);
	json_object_set_new(res, "resolved", resolved);
	json_object_set_new(res, "caller", json_string(c.rec.caller));
	json_object_set_new(res, "input_sha256", json_string(input_hash));
	json_object_set(res, "secrets", c.secrets);
	char t1[CDN_RFC3339_MAX], t2[CDN_RFC3339_MAX], t3[CDN_RFC3339_MAX];
	cdn_rfc3339(c.rec.created_ms, CDN_TIME_MS, t1, sizeof(t1));
	cdn_rfc3339(c.rec.started_ms, CDN_TIME_MS, t2, sizeof(t2));
	cdn_rfc3339(c.rec.finished_ms, CDN_TIME_MS, t3, sizeof(t3));
	json_object_set_new(res, "created", json_string(t1));
	json_object_set_new(res, "started", json_string(t2));
	json_object_set_new(res, "finished", json_string(t3));
	json_object_set_new(res, "duration_ms", json_integer((json_int_t)duration));
	if (c.setup_done)
		json_object_set_new(res, "setup_ms", json_integer((json_int_t)c.setup_ms));
	json_object_set_new(res, "timed_out", json_boolean(st.timed_out));
	json_object_set_new(res, "oom_killed", json_boolean(st.oom_killed));
	json_object_set_new(res, "signal", json_integer(st.signal));
	json_object_set_new(res, "resources",
			    json_pack("{s:I, s:I, s:I}", "wall_ms", (json_int_t)st.wall_ms,
				      "cpu_ms", (json_int_t)st.cpu_ms, "mem_peak_bytes",
				      (json_int_t)st.mem_peak_bytes));
	json_object_set_new(res, "protections", run_protections(&c, &st.prot));
	json_object_set_new(res, "output", output ? output : json_null());
	json_object_set_new(res, "artifacts", arts);
	json_object_set_new(res, "steps", json_integer((json_int_t)c.n_steps));
	json_object_set_new(res, "egress",
			    json_pack("{s:I, s:I}", "allowed", (json_int_t)c.egress_allowed,
				      "blocked", (json_int_t)c.egress_blocked));
	json_object_set_new(res, "stdout", capture_json(&c.out));
	json_object_set_new(res, "stderr", capture_json(&c.errc));
	if (c.audit) {
		json_object_set_new(res, "audit",
				    json_pack("{s:s, s:s, s:I}", "file", "audit.jsonl", "head",
					      audit_last_hash(c.audit), "records",
					      (json_int_t)audit_last_seq(c.audit)));
	}

	/* Strings first (an escaped value would slip past a scan of the
	 * text), then the text again in write_file. */
	if (redact_json(c.red, res) < 0 || redact_json(c.red, c.steps) < 0) {
		json_decref(res);
		res = json_pack("{s:s, s:s}", "run_id", c.rec.id, "status", "error");
		snprintf(run_error, sizeof(run_error), "could not redact the result");
		c.rec.status = RUN_ERROR;
	}
	(void)write_file(&c, "steps.json", c.steps);
	if (write_file(&c, "result.json", res) < 0 && !run_error[0]) {
		snprintf(run_error, sizeof(run_error), "could not write result.json");
		c.rec.status = RUN_ERROR;
	}
	rtext = json_dumps(res, JSON_COMPACT | JSON_SORT_KEYS);
	size_t rl = rtext ? strlen(rtext) : 0;
	rsafe = rtext ? redact_string(c.red, rtext, rl, &rl) : NULL;
	c.rec.result_json = rsafe;
	snprintf(c.rec.error, sizeof(c.rec.error), "%s", run_error);
	struct cdn_err uerr = { 0 };
	if (store_run_update(s, &c.rec, &uerr) < 0)
		fprintf(stderr, "cordon: run %s: could not record the result: %s\n", c.rec.id,
			uerr.msg);
	c.rec.result_json = NULL;

	json_t *fin = json_pack("{s:s, s:i, s:I, s:I, s:I, s:I}", "status",
				store_run_status_name(c.rec.status), "exit_code", c.rec.exit_code,
				"duration_ms", (json_int_t)duration, "steps",
				(json_int_t)c.n_steps, "egress_allowed",
				(json_int_t)c.egress_allowed, "egress_blocked",
				(json_int_t)c.egress_blocked);
	if (run_error[0])
		json_object_set_new(fin, "error", json_string(run_error));
	json_object_set(fin, "output", json_object_get(res, "output"));
	emit_event(&c, "run.finished", fin, true);
	json_decref(fin);
	json_decref(res);

	out->status = c.rec.status;
	out->exit_code = c.rec.exit_code;
	r = 0;
done:
	if (r < 0 && recorded) {
		/* A record exists: it ends as an error, with the reason. */
		c.rec.status = RUN_ERROR;
		c.rec.exit_code = 125;
		c.rec.finished_ms = cdn_wall_ms();
		snprintf(c.rec.error, sizeof(c.rec.error), "%s", err->msg);
		c.rec.input_json = NULL;
		(void)store_run_update(s, &c.rec, NULL);
	}
	if (ws_fd >= 0)
		close(ws_fd);
	if (c.steps_fd >= 0)
		close(c.steps_fd);
	events_writer_close(&c.events);
	capture_close(&c.out);
	capture_close(&c.errc);
	if (c.audit)
		audit_close(c.audit);
	secrets_free(&ss);
	redactor_free(c.red);
	registry_resolved_clear(&c.agent);
	json_decref(c.caps);
	json_decref(c.env);
	json_decref(c.secrets);
	json_decref(c.delivery);
	json_decref(c.steps);
	c.rec.input_json = NULL;
	if (queued_input) {
		o->input = NULL;
		o->input_len = 0;
	}
	return r;
}
