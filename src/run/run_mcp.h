/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A run's MCP endpoint: the protocol (src/mcp) served over HTTP on the
 * listener the sandbox made on its own 127.0.0.1:SANDBOX_MCP_PORT, so only
 * that sandbox can reach it. Each phase gets its own single-use token
 * (CORDON_MCP_TOKEN); request_approval waits for a human, who decides with
 * `cordon approvals` or the API like any held request.
 */
#ifndef CORDON_RUN_MCP_H
#define CORDON_RUN_MCP_H

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/err.h"
#include "mcp/mcp.h"

struct event_base;
struct run_mcp;

struct run_mcp_hooks {
	void *ctx;
	/* A step reported through the tool (an object: {"name", "detail"?}). */
	void (*step)(void *ctx, json_t *step);
	/* An event for the run's stream ("approval.requested", "log", ...). */
	void (*event)(void *ctx, const char *type, json_t *data);
	/* The workspace directory fd (O_PATH), or -1 while there is none. */
	int (*workspace_fd)(void *ctx);
};

struct run_mcp_config {
	const char *run_id;
	const char *input_json;	     /* the run's input */
	uint64_t token_ttl_ms;	     /* how long a phase's token may wait */
	uint64_t approval_timeout_ms; /* an undecided approval is denied then */
	bool has_setup;		     /* phases: setup then run, or run only */
};

int run_mcp_new(struct event_base *base, const struct run_mcp_config *cfg,
		const struct run_mcp_hooks *hooks, struct run_mcp **out, struct cdn_err *err);

/* The token for the setup (0) or run (1) phase: "CORDON_MCP_TOKEN=..."
 * for that phase's environment. Made once per phase. */
int run_mcp_phase_env(struct run_mcp *m, int phase, char *out, size_t cap, struct cdn_err *err);

/* Serves the listener (takes the fd). */
int run_mcp_attach(struct run_mcp *m, int listen_fd, struct cdn_err *err);

/* The sandbox's phase `phase` ended: its token and sessions die, the next
 * phase's begin. */
void run_mcp_phase_ended(struct run_mcp *m, int phase);

/* Artifacts are written as this host uid/gid: the sandbox user's, whose
 * ids the sandbox's file system knows (host root's it does not). */
void run_mcp_set_owner(struct run_mcp *m, uid_t uid, gid_t gid);

void run_mcp_free(struct run_mcp *m);

#endif
