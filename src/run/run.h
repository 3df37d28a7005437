/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Running an agent: resolve it, create the run record, build the sandbox
 * (with egress per policy when the agent needs the network), run `setup`
 * then `entrypoint`, stream events, collect outputs and artifacts, and
 * leave a record that proves what ran.
 *
 * The run directory <state>/runs/<id>/ holds:
 *   events.ndjson   every event, one JSON object per line
 *   steps.json      the steps the agent reported
 *   stdout, stderr  captured, capped, secrets redacted
 *   result.json     status, exit code, timings, resources, output, hashes
 *   audit.jsonl     the run's hash-chained egress audit log
 *   artifacts/      files from /workspace/out
 */
#ifndef CORDON_RUN_H
#define CORDON_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

struct sandbox;
#include "run/artifacts.h"
#include "store/store.h"
#include "vault/vault.h"

#define RUN_MAX_INPUT (1 << 20)       /* bytes of input.json */
#define RUN_MAX_OUTPUT (1 << 20)      /* bytes of output.json read back */
#define RUN_DEFAULT_CAPTURE 10240     /* stdout and stderr, each */
#define RUN_MAX_STEP_LINE 16384       /* one step line */
#define RUN_MAX_STEPS 10000           /* steps recorded per run */
#define RUN_MAX_EGRESS_EVENTS 1000    /* egress events streamed per run; then summarised */
#define RUN_MAX_LOG_EVENTS 1000	      /* MCP log events per run; then one note */
#define RUN_MAX_LOG_BYTES (1u << 20)  /* bytes of MCP log messages per run */
#define RUN_MAX_MCP_EVENTS 1000	      /* other MCP events (sessions, refusals, artifacts) */
#define RUN_DEFAULT_CALL_DEPTH 4      /* call_agent: runs below the first, at most */
#define RUN_DEFAULT_MAX_CALLS 16      /* call_agent: calls a whole tree of calls may make */
#define RUN_MAX_CALL_DEPTH 16	      /* the most an operator may allow */
#define RUN_MAX_MAX_CALLS 1024
#define RUN_MAX_LIVE_CALLS 16	      /* runs of one tree of calls running at once */
#define RUN_CALL_TREE_NAME_MAX 80     /* --call-tree: "calls.PID.RUN_ID" */
/* events.ndjson itself: see run/events.h (EVENTS_MAX_LINE, EVENTS_MAX_FILE). */

/* Called for every event written (the line of events.ndjson, redacted,
 * without its '\n'): how `cordon run` shows a run (src/cli/progress.c). */
typedef void (*run_event_fn)(void *ctx, const char *line, size_t len);

/* Called with the agent's output as it is captured, already redacted (the
 * same bytes as the run's stdout and stderr files, but not cut at the
 * capture limit): fd is 1 for stdout, 2 for stderr. How `cordon run` shows
 * the output live. */
typedef void (*run_output_fn)(void *ctx, int fd, const char *p, size_t n);

struct run_options {
	const char *ref;	  /* directory or NAME[@VERSION] */
	const char *workspace;	  /* NULL: STORE_DEFAULT_WORKSPACE */
	const char *caller;	  /* who asked (user name, API key id) */
	const char *input;	  /* JSON text; NULL: {} */
	size_t input_len;
	const char *policy_path;  /* operator egress policy; NULL: <state>/policy.yaml, else built-in;
				   * the workspace's policy narrows it either way */
	const char *upstream_ca;  /* extra CA for inspected upstreams */
	const char *hosts_file;	  /* extra hosts file for the resolver */
	const char *const *allow_private; /* IP:PORT exceptions (tests, self-hosted services) */
	size_t n_allow_private;
	size_t capture_bytes;	  /* 0: RUN_DEFAULT_CAPTURE */
	struct artifact_limits artifacts; /* operator maxima; zero fields: defaults */
	uint64_t default_mem_bytes;	  /* 0: 1 GiB */
	uint64_t default_pids;		  /* 0: 256 */
	uint64_t workspace_bytes;	  /* 0: 256 MiB */
	unsigned allow_degraded;	  /* enum sandbox_protection bits */
	run_event_fn on_event;		  /* optional */
	void *event_ctx;
	run_output_fn on_output;	  /* optional */
	void *output_ctx;
	char run_id[STORE_RUN_ID_MAX + 1]; /* in: "" to generate; out: the id */
	/* run_id names a record made ahead of time (status created, e.g. by
	 * the server's queue): take it over instead of creating one. Its
	 * caller and creation time are kept. */
	bool claim;
	/* A sandbox made ahead (cordon run --standby), taken for this run;
	 * NULL: a cold start. */
	struct sandbox *warm;
	/* With claim: the worker whose lease the record must be under (cordon
	 * worker); NULL for a record with no lease (cordon serve's own). */
	const char *lease_owner;
	/* Agent-to-agent calls (docs/mcp.md): the depth of a chain of calls
	 * and the calls one run may make (0: RUN_DEFAULT_CALL_DEPTH,
	 * RUN_DEFAULT_MAX_CALLS), and the wall-clock time (unix ms) by which
	 * the run must end, its caller's deadline (0: none; the manifest's
	 * timeout is cut to it). */
	unsigned max_call_depth;
	unsigned max_calls;
	int64_t deadline_ms;
	/* The tree of calls this run is part of (--call-tree, given only by
	 * the supervisor that starts a called run; run_call_tree_name_ok):
	 * its count of calls, against --max-calls for the whole tree. NULL:
	 * this run is the first of its tree. */
	const char *call_tree;
};

/* NAME is a tree of calls' name, "calls.PID.RUN_ID" (--call-tree). */
bool run_call_tree_name_ok(const char *name);

struct run_outcome {
	char id[STORE_RUN_ID_MAX + 1];
	char dir[4096];
	enum store_run_status status;
	int exit_code;
};

/*
 * Runs an agent to the end. Errors found before a sandbox starts (a bad
 * manifest, a missing secret, an ungranted capability) return negative
 * with err set, and leave a run record only when one was created. A run
 * that started always ends with a record and a result, whatever happens.
 */
int run_agent(struct store *s, struct vault *v, struct run_options *o, struct run_outcome *out,
	      struct cdn_err *err);

/* The exit status `cordon run` uses for an outcome. */
int run_exit_code(const struct run_outcome *o);

#endif
