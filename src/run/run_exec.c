/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A run's execution: the sandbox from spawn to exit (run_execute), and what
 * it reports on the way, each turned into the run's events and files: the
 * events themselves (redacted), the captured stdout and stderr, the steps,
 * the network part's events, audit lines and death, a cancel, and
 * output.json read back from a workspace nothing can touch any more.
 */
#define _GNU_SOURCE
#include "run/run_internal.h"

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
#include "base/text.h"
#include "base/clock.h"
#include "base/file.h"
#include "base/hash.h"
#include "base/openat2.h"
#include "base/random.h"
#include <sodium.h>
#include "egress/engine.h"
#include "egress/tls.h"
#include "egress/policy.h"
#include "registry/registry.h"
#include "mcp/mcp.h"
#include "run/artifacts.h"
#include "run/events.h"
#include "run/health.h"
#include "run/netpart.h"
#include "run/remote.h"
#include "run/policy_levels.h"
#include "run/supervise.h"
#include "sandbox/sandbox.h"
#include "vault/redact.h"
#include "vault/seal.h"

/* Redacts every string (values and keys) in j, in place. */
int run_redact_json(const struct redactor *r, json_t *j)
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
			} else if (run_redact_json(r, v) < 0) {
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
			if (run_redact_json(r, v) < 0)
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
	return c->red ? run_redact_json(c->red, ev) : 0;
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

int run_make_dir(struct run_ctx *c, struct cdn_err *err)
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

/* One event: a line in events.ndjson (events.h: bounded line, bounded
 * file), then the caller's view of it. The line is redacted: steps and
 * egress details come from the agent. Strings are redacted before
 * serialising (JSON escaping would hide a value holding '"' or '\\'), and
 * the line again after; an event that cannot be redacted is not written at
 * all: fail closed. */
void run_emit_event(struct run_ctx *c, const char *type, json_t *data, bool final)
{
	const char *line;
	size_t len;
	int r = events_write(&c->events, type, data, final, &line, &len);
	if (r < 0 && !c->events_failed) {
		c->events_failed = true;
		fprintf(stderr, "cordon: run %s: events.ndjson: %s\n", c->rec.id, strerror(-r));
	}
	if (r > 0)
		run_remote_event_line(c->remote, c->events.seq, line, len, final);
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

void run_emit(struct run_ctx *c, const char *type, json_t *data)
{
	run_emit_event(c, type, data, false);
}

static void capture_write(void *ctx, const char *p, size_t n)
{
	struct capture *cap = ctx;
	cap->total += n;
	if (n && cap->o && cap->o->on_output)
		cap->o->on_output(cap->o->output_ctx, cap->which, p, n);
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

static void step_line(struct run_ctx *c, const char *line, size_t len)
{
	if (len == 0)
		return;
	if (c->n_steps >= RUN_MAX_STEPS) {
		if (c->n_steps++ == RUN_MAX_STEPS) {
			json_t *d = json_pack("{s:{s:s}}", "step", "note",
					      "step limit reached; later steps dropped");
			run_emit(c, "step", d);
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
	run_emit(c, "step", d);
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
			run_emit(c, "log", d);
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
	run_emit(c, type, data);
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
				run_emit(c, "step", d);
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

static void on_egress(void *ctx, const char *type, json_t *data)
{
	struct run_ctx *c = ctx;
	bool blocked = strcmp(type, "egress.blocked") == 0;
	/* Bytes as the network part counted them, each side bounded (usage,
	 * not a proof: the audit log is that). */
	json_int_t rq = json_integer_value(json_object_get(data, "request_size"));
	json_int_t rs = json_integer_value(json_object_get(data, "response_size"));
	uint64_t bytes = (uint64_t)(rq > 0 && rq < (1LL << 50) ? rq : 0) +
			 (uint64_t)(rs > 0 && rs < (1LL << 50) ? rs : 0);
	if (strcmp(type, "egress.allowed") == 0) {
		c->egress_allowed++;
		c->egress_allowed_bytes += bytes;
	} else if (blocked) {
		c->egress_blocked++;
		c->egress_blocked_bytes += bytes;
	}
	if (strncmp(type, "approval.", 9) != 0 && c->egress_events++ >= RUN_MAX_EGRESS_EVENTS)
		return; /* the counts in run.finished still tell */
	json_t *d = json_deep_copy(data);
	json_object_del(d, "run_id");
	json_object_del(d, "seq");
	json_object_del(d, "prev_hash");
	json_object_del(d, "hash");
	run_emit(c, type, d);
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
	if (c->red && run_redact_json(c->red, entry) < 0)
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
	struct run_ctx *c = ctx;
	if (strncmp(type, "approval.", 9) == 0)
		run_remote_approval(c->remote, type, data);
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
	run_emit(c, "network.failed", d);
	json_decref(d);
	if (c->sb)
		sandbox_kill(c->sb, false);
}

/* A health check's news: each failure an event; the last one ends the run
 * as failed, with the reason. */
static void on_health(void *ctx, bool ok, const char *why, unsigned in_a_row, bool last)
{
	struct run_ctx *c = ctx;
	const struct agent_manifest *m = c->agent.manifest;
	json_t *d = ok ? json_pack("{s:s}", "status", "healthy")
		       : json_pack("{s:s, s:s, s:I, s:I}", "status", "unhealthy", "reason", why,
				   "in_a_row", (json_int_t)in_a_row, "failures",
				   (json_int_t)m->health.failures);
	run_emit(c, ok ? "health.recovered" : "health.failed", d);
	json_decref(d);
	if (!last || !c->sb)
		return;
	snprintf(c->health_error, sizeof(c->health_error),
		 "health check failed %u times in a row (GET %.64s on port %u): %s; the sandbox "
		 "was stopped",
		 in_a_row, m->health.path, m->health.port, why);
	sandbox_kill(c->sb, false);
}

/* cordon runs cancel, through the control socket: the sandbox is stopped
 * and the run ends as cancelled, with who asked. */
static int on_cancel(void *ctx, const char *by, struct cdn_err *err)
{
	struct run_ctx *c = ctx;
	if (!c->sb)
		return cdn_err_msg(err, ESRCH, "the run's sandbox is not running");
	if (!c->cancelled) {
		char who[128];
		cdn_printable_str(who, sizeof(who), by && *by ? by : "an operator", CDN_TEXT_UTF8);
		snprintf(c->cancel_why, sizeof(c->cancel_why), "cancelled by %s", who);
		c->cancelled = true;
		json_t *d = json_pack("{s:s}", "reason", c->cancel_why);
		run_emit(c, "run.cancelling", d);
		json_decref(d);
	}
	sandbox_kill(c->sb, false);
	return 0;
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
	run_health_arm(c->health); /* the entrypoint starts now */
	json_t *d = json_pack("{s:i, s:I}", "exit_code", st->signal ? 128 + st->signal : st->exit_code,
			      "duration_ms", (json_int_t)c->setup_ms);
	run_emit(c, "setup.finished", d);
	json_decref(d);
}

/* path in the workspace (the agent's to arrange), with no link and no
 * mount crossed on the way. */
int run_open_beneath(int dirfd, const char *path, int flags)
{
	return cdn_openat2(dirfd, path, flags | O_CLOEXEC | O_NOFOLLOW, 0,
			   RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
			       RESOLVE_NO_XDEV);
}

/* /workspace/output.json, when it is a regular file of valid JSON. */
json_t *run_read_output(int ws_fd, char *why, size_t cap)
{
	why[0] = '\0';
	if (ws_fd < 0)
		return NULL;
	_cleanup_close_ int fd = run_open_beneath(ws_fd, "output.json", O_RDONLY | O_NONBLOCK);
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

void run_capture_init(struct capture *cap, const char *name, int which,
			 const struct run_options *o, size_t limit)
{
	memset(cap, 0, sizeof(*cap));
	cap->name = name;
	cap->which = which;
	cap->o = o;
	cap->fd = cap->file = -1;
	cap->cap = limit;
}

void run_capture_close(struct capture *cap)
{
	if (cap->ev)
		event_free(cap->ev);
	if (cap->fd >= 0)
		close(cap->fd);
	if (cap->file >= 0)
		close(cap->file);
	redact_stream_free(&cap->rs);
}

json_t *run_capture_json(const struct capture *cap)
{
	return json_pack("{s:s, s:I, s:I, s:b}", "file", cap->name, "bytes",
			 (json_int_t)cap->total, "kept", (json_int_t)cap->written, "truncated",
			 cap->truncated);
}

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
json_t *run_protections(const struct run_ctx *c, const struct sandbox_protections *p)
{
	json_t *j = sandbox_protections_json(p);
	json_object_set_new(j, "network_part", netpart_json(&c->net_info));
	json_object_set(j, "secrets", c->delivery);
	return j;
}

/* Sandbox, egress, supervision: the part that runs the agent. Fills st;
 * returns negative only when the sandbox could not be made. */
int run_execute(struct run_ctx *c, const struct secret_set *ss, struct sandbox_status *st,
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
	struct run_config_store store = { 0 };
	_cleanup_close_ int devnull = -1;
	char tokens[2][MCP_TOKEN_LEN + 1] = { "", "" };
	char mcp_env[2][MCP_TOKEN_LEN + 32] = { "", "" };
	struct netpart_secret nsec[NETPART_MAX_SECRETS];
	size_t n_nsec = 0;
	int r;

	if ((r = run_sandbox_config(c, ss, &cfg, &store, err)) < 0)
		goto out;

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
		run_inspect_sealed_scopes(policy, ss);
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
								 .n_domains = nd,
								 .seal_in = ss->seal_in[k] };
		}
	}

	/* Cut again: the time since run_sandbox_config (the policy, the CA)
	 * is gone too. */
	run_cut_to_deadline(c, &cfg.limits.timeout_ms);
	r = sandbox_start(&c->o->warm, &cfg, &sb, err);
	for (int k = 0; k < 2; k++) {
		close(pipes[k][1]);
		pipes[k][1] = -1;
	}
	if (r < 0)
		goto out;
	c->sb = sb;
	c->base = base;
	c->started_ms = cdn_wall_ms();
	c->deadline_ms = c->started_ms + (int64_t)cfg.limits.timeout_ms;
	/* A called run's deadline is its caller's at the latest: its own
	 * start plus its timeout would add this run's setup time past it, at
	 * every level of a chain. */
	if (c->o->deadline_ms && c->deadline_ms > c->o->deadline_ms)
		c->deadline_ms = c->o->deadline_ms;
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
		.calls = m->n_calls > 0,
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
				    .died = on_net_died,
				    .cancel = on_cancel,
				    .call = run_call_start };
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
	/* API nodes on other hosts reach it through the store, when shared.
	 * Without that, approvals time out and are denied: closed, not
	 * open. */
	{
		struct cdn_err rerr = { 0 };
		if (run_remote_attach(c->remote, base, c->net, &rerr) < 0)
			fprintf(stderr, "cordon run: %s: reached from other hosts: %s\n",
				c->rec.id, rerr.msg);
	}

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
	run_emit(c, "sandbox.ready", pj);
	json_decref(pj);

	/* The manifest's health check, from inside the sandbox's network. */
	{
		struct cdn_err herr = { 0 };
		if (run_health_start(base, sandbox_event_fd(sb), getpid(), c->o->allow_degraded, m,
				     !m->setup || c->setup_done, on_health, c, &c->health,
				     &herr) < 0)
			fprintf(stderr, "cordon run: %s: health check: %s\n", c->rec.id, herr.msg);
	}
	struct supervise_opts so = { .base = base, .sb = sb };
	r = run_supervise(&so, st, err);
	run_health_free(c->health);
	c->health = NULL;
	/* The calls it made end with it: a child never outlives its caller. */
	run_calls_end(c, c->cancelled ? "its caller was cancelled" : "its caller ended");
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
	run_config_store_free(&store);
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
	/* Every way out, the early ones too (a part may send a CALL before it
	 * is ready): no call starts from here on, and none is left running. */
	run_calls_end(c, c->cancelled ? "its caller was cancelled" : "its caller ended");
	/* The part's last lines (connections closed, approvals denied) still
	 * reach the audit log and the events here. */
	netpart_free(c->net);
	c->net = NULL;
	run_remote_detach(c->remote);
	c->ws_live = -1;
	sodium_memzero(tokens, sizeof(tokens));
	sodium_memzero(mcp_env, sizeof(mcp_env));
	egress_policy_free(policy);
	egress_ca_free(ca);
	c->sb = NULL;
	sandbox_free(sb);
	c->base = NULL;
	if (base)
		event_base_free(base);
	return r;
}
