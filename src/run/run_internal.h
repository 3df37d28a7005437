/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the three files of a run share: run.c (the steps in order and the
 * record), run_setup.c (resolving the agent, its capabilities, env,
 * secrets, input and policy, before a sandbox exists) and run_exec.c (the
 * sandbox from spawn to exit, and everything it reports on the way).
 * Nothing outside src/run/ includes this.
 */
#ifndef CORDON_RUN_INTERNAL_H
#define CORDON_RUN_INTERNAL_H

#include <event2/event.h>
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "audit/audit.h"
#include "egress/policy.h"
#include "registry/registry.h"
#include "run/artifacts.h"
#include "run/deps.h"
#include "run/events.h"
#include "run/netpart.h"
#include "run/run.h"
#include "sandbox/sandbox.h"
#include "vault/redact.h"

#define DEFAULT_MEM (1ull << 30)
#define DEFAULT_PIDS 256
#define DEFAULT_WORKSPACE (256ull << 20)
#define PIPE_READ 65536
#define RUN_MCP_APPROVAL_TIMEOUT_MS 120000 /* a request_approval call waits this long */

struct capture {
	const char *name; /* "stdout" or "stderr" */
	int which;	  /* 1 or 2, for run_options.on_output */
	const struct run_options *o;
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
	json_t *service; /* a service's start: {"name", "env": {K: V}}, or NULL */
	struct deps_layer deps; /* the dependency layer (deps.key "" when none) */
	int deps_hold;		/* its shared lock, held for the run's life (-1: none) */
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
	uint64_t egress_allowed_bytes, egress_blocked_bytes; /* request + response */
	uint64_t setup_ms;
	bool setup_done;
	int64_t started_ms;
	struct audit_log *audit;
	struct netpart *net;  /* the run's network part, while the sandbox runs */
	struct sandbox *sb;   /* likewise */
	struct run_remote *remote; /* reached from other hosts (remote.h), or NULL */
	bool cancelled;	      /* a human stopped it (cordon runs cancel) */
	char cancel_why[192];
	uid_t sb_uid;	      /* the sandbox user on the host, for MCP artifacts */
	gid_t sb_gid;
	int ws_live; /* the workspace fd while the sandbox runs, for MCP artifacts */
	char net_error[320]; /* why the network part went away during the run */
	char health_error[320]; /* why its health check ended the run */
	struct run_health *health;
	struct netpart_info net_info;
	/* Agent-to-agent calls (calls.c) */
	struct event_base *base;	   /* the loop, while the sandbox runs */
	int64_t deadline_ms;		   /* when the sandbox's timeout ends it (unix ms) */
	struct run_child *children_live; /* calls still running */
	json_t *children;		   /* result.json's "children" */
	bool calls_closed;		   /* the run is ending: no call starts */
	bool call_tree_made;		   /* this first run made its tree's count */
	char call_tree[RUN_CALL_TREE_NAME_MAX + 1]; /* the tree's name (calltree.c) */
};


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
	unsigned *seal_in; /* MANIFEST_SEAL_IN_* of a sealed one */
};

/* The execution (run_exec.c): the events, the captured output, the
 * steps, the network part's callbacks, the sandbox from spawn to exit. */
int run_make_dir(struct run_ctx *c, struct cdn_err *err);
void run_emit(struct run_ctx *c, const char *type, json_t *data);
void run_emit_event(struct run_ctx *c, const char *type, json_t *data, bool final);
int run_redact_json(const struct redactor *r, json_t *j);
void run_capture_init(struct capture *cap, const char *name, int which,
			 const struct run_options *o, size_t limit);
void run_capture_close(struct capture *cap);
json_t *run_capture_json(const struct capture *cap);
int run_open_beneath(int dirfd, const char *path, int flags);
json_t *run_read_output(int ws_fd, char *why, size_t cap);
json_t *run_protections(const struct run_ctx *c, const struct sandbox_protections *p);
int run_execute(struct run_ctx *c, const struct secret_set *ss, struct sandbox_status *st,
		   int *ws_fd, struct cdn_err *err);

/* What a sandbox_config built by run_sandbox_config points at. */
struct run_config_store {
	char *env[REGISTRY_MAX_ENV_VARS + STORE_SERVICE_ENV_MAX]; /* the envs' K=V */
	size_t n_env;
	char run_env[STORE_RUN_ID_MAX + 32]; /* CORDON_RUN_ID=... */
	char deps_nm[4096 + 16];	     /* the layer's node_modules */
};

/* The setup (run_setup.c): everything resolved before a sandbox exists. */
void run_secrets_free(struct secret_set *ss);
int run_load_secrets(struct run_ctx *c, struct secret_set *ss, struct cdn_err *err);
int run_policy(struct run_ctx *c, struct egress_policy **out, struct cdn_err *err);
void run_inspect_sealed_scopes(struct egress_policy *p, const struct secret_set *ss);
int run_resolve_caps(struct run_ctx *c, struct cdn_err *err);
int run_resolve_env(struct run_ctx *c, struct cdn_err *err);
/* A start of a service (caller "service:NAME", docs/services.md): the
 * service's env (c->service) and its secrets, added to those the manifest
 * requires, as the service is now; so a rotated secret is the new one. */
int run_apply_service(struct run_ctx *c, struct cdn_err *err);
int run_resolve_deps(struct run_ctx *c, struct cdn_err *err);
int run_read_input(struct run_ctx *c, char **canon, char hash[STORE_HASH_HEX + 1],
		      struct cdn_err *err);
int run_make_redactor(struct run_ctx *c, const struct secret_set *ss, struct cdn_err *err);
int run_sandbox_config(const struct run_ctx *c, const struct secret_set *ss,
		       struct sandbox_config *cfg, struct run_config_store *st, struct cdn_err *err);
void run_config_store_free(struct run_config_store *st);
/* A called run's timeout (ms) cut to what is left before its caller's
 * deadline (run_options.deadline_ms), from now. */
void run_cut_to_deadline(const struct run_ctx *c, uint64_t *timeout_ms);
json_t *run_item_json(const char *name, unsigned version, const char *hash);
void run_artifact_limits_for(const struct run_ctx *c, struct artifact_limits *lim,
				const char **exts);

/* Agent-to-agent calls (calls.c): a call_agent call (netpart_hooks.call),
 * and the end of the run: every child still running is cancelled and
 * waited for. */
struct run_child;
void run_call_start(void *ctx, const char *call_id, const char *agent, json_t *input);
void run_calls_end(struct run_ctx *c, const char *why);
unsigned run_calls_max_depth(const struct run_options *o);
unsigned run_calls_max_per_tree(const struct run_options *o);

/* A tree of calls' count (calltree.c): the budget (the first run's
 * --max-calls), the calls made in the whole tree, and those running. */
struct run_call_tree_count {
	unsigned budget, made, running;
};
enum call_tree_verdict { CALL_TREE_OK, CALL_TREE_SPENT, CALL_TREE_BUSY };
/* Whether one more call may start: not when the budget is spent, nor
 * while RUN_MAX_LIVE_CALLS of the tree run. */
enum call_tree_verdict run_call_tree_decide(const struct run_call_tree_count *n);
/* Decides one more call of tree name (STATE/tmp/NAME) under its lock and,
 * when OK, counts it as made and running; n is the count after. create:
 * the first run's first call, which makes the file with budget. 0 with
 * *verdict, else negative with err (a missing or damaged count refuses). */
int run_call_tree_take(struct store *s, const char *name, bool create, unsigned budget,
		       struct run_call_tree_count *n, enum call_tree_verdict *verdict,
		       struct cdn_err *err);
/* A call of the tree ended: one fewer running. */
void run_call_tree_done(struct store *s, const char *name);
/* The first run ended, and its tree with it: the count goes. */
void run_call_tree_remove(struct store *s, const char *name);

/* The run's record (run.c). */
const char *run_status_for(const struct sandbox_status *st);
int run_write_file(struct run_ctx *c, const char *name, json_t *j);

#endif
