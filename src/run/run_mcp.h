/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A run's MCP endpoint: the protocol (src/mcp) served over HTTP on the
 * listener the sandbox made on its own 127.0.0.1:SANDBOX_MCP_PORT, so only
 * that sandbox can reach it. Each phase has its own single-use token
 * (CORDON_MCP_TOKEN), made by the supervisor and handed in here;
 * request_approval waits for a human, who decides with `cordon approvals`
 * or the API like any held request.
 *
 * It runs in the run's network part (src/run/netpart.h), which parses the
 * agent's HTTP and JSON without privilege: what must touch the run's files
 * (an artifact) goes through the hooks to the supervisor.
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
	/* Saves an artifact into /workspace/out (the supervisor writes it, so
	 * the same collection rules apply as to the agent's own files): 0, or
	 * negative with a message for the agent in err. */
	int (*artifact)(void *ctx, const char *name, const uint8_t *data, size_t len,
			struct cdn_err *err);
	/* A call_agent call (config.calls), named by id ("call_N"): hand it
	 * to the supervisor, which answers with run_mcp_call_done. 0, or
	 * negative with a message for the agent in err. */
	int (*call)(void *ctx, const char *id, const char *agent, const char *input_json,
		    struct cdn_err *err);
};

struct run_mcp_config {
	const char *run_id;
	const char *input_json;	     /* the run's input */
	uint64_t token_ttl_ms;	     /* how long a phase's token may wait */
	uint64_t approval_timeout_ms; /* an undecided approval is denied then */
	bool has_setup;		     /* phases: setup then run, or run only */
	bool calls;		     /* the agent declares calls: call_agent exists */
	/* The phases' tokens (mcp_token_make), setup first when has_setup. */
	const char *tokens[2];
};

int run_mcp_new(struct event_base *base, const struct run_mcp_config *cfg,
		const struct run_mcp_hooks *hooks, struct run_mcp **out, struct cdn_err *err);

/* Serves the listener (takes the fd). */
int run_mcp_attach(struct run_mcp *m, int listen_fd, struct cdn_err *err);

/* The sandbox's phase `phase` ended: its token and sessions die, the next
 * phase's begin. */
void run_mcp_phase_ended(struct run_mcp *m, int phase);

/* A human decided a request_approval call (its approval_id). */
int run_mcp_decide(struct run_mcp *m, const char *id, bool approve, const char *by,
		   struct cdn_err *err);

/* The supervisor's answer to call `id`: the waiting call_agent call
 * completes (nothing happens when the agent gave up on it meanwhile).
 * result_json: an object, or NULL. */
void run_mcp_call_done(struct run_mcp *m, const char *id, bool is_error, const char *text,
		       const char *result_json);

void run_mcp_free(struct run_mcp *m);

#endif
