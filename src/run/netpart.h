/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A run's network part: privilege separation, in the way OpenSSH separates
 * its pre-authentication child.
 *
 * Everything that parses bytes the agent wrote on the network side, the
 * egress engine (HTTP, CONNECT, TLS inspection with the run's CA), the DNS
 * filter and the run's MCP endpoint (HTTP and JSON-RPC), runs in a process
 * of its own, `cordon-net`, started fresh with execve (so it inherits none
 * of the supervisor's memory: no vault keys, no database) and confined
 * before it reads a byte from the sandbox (sandbox_confine_helper: its own
 * uid, no capabilities, no_new_privs, Landlock with no filesystem, its own
 * seccomp allowlist). It holds only the sandbox's listening sockets, the
 * run's CA and the secrets it must look for or swap in, handed over once in
 * CONFIG.
 *
 * The supervisor keeps namespaces, cgroups, the janitor, the run record and
 * the audit log. It hears from the part only through the channel
 * (netmsg.h), checked strictly, and answers humans on the run's control
 * socket (control.h), handing their decisions down.
 *
 * If the part dies, the sandbox's sockets die with it: the sandbox has no
 * network from that moment (fail closed). The supervisor learns it from
 * the channel, kills what is left of the part, and tells its caller
 * (died), who ends the run with an error; audit lines written until then
 * stay in the log.
 */
#ifndef CORDON_RUN_NETPART_H
#define CORDON_RUN_NETPART_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/err.h"
#include "egress/policy.h"

#define NETPART_READY_TIMEOUT_MS 15000	  /* from exec to READY */
#define NETPART_ARTIFACT_TIMEOUT_MS 30000 /* the supervisor writing an artifact */
#define NETPART_EXIT_WAIT_MS 2000	  /* at the end, before SIGKILL */
#define NETPART_MAX_SECRETS 64

struct event_base;
struct egress_ca;

/* A secret the part must know. */
struct netpart_secret {
	const char *name;
	const uint8_t *value;
	size_t len;
	/* Sealed: the sandbox was given `placeholder` (same length) instead,
	 * and the part swaps the value in on requests to these domains only.
	 * NULL: raw, the part looks for the value (content inspection). */
	const char *placeholder;
	/* Where the secret may go ("api.openai.com", "*.example.com"). */
	const char *const *domains;
	size_t n_domains;
	unsigned seal_in; /* MANIFEST_SEAL_IN_*: where it is swapped in beyond
			   * the credential headers */
};

struct netpart_config {
	const char *run_id;
	/* The egress side: the resolved policy (NULL: no egress, the part
	 * serves the MCP endpoint only) and the run's CA (NULL: no rule
	 * inspects). Copied. */
	const struct egress_policy *policy;
	const struct egress_ca *ca;
	const struct netpart_secret *secrets;
	size_t n_secrets;
	const char *hosts_file;	      /* read by the part before it confines itself */
	const char *upstream_ca_file; /* likewise */
	/* The sandbox's listeners; taken (the supervisor keeps no copy, so
	 * the part is the only way out); -1 when absent. */
	int proxy_fd, dns_udp_fd, dns_tcp_fd, mcp_fd;
	/* The MCP endpoint (mcp_fd >= 0). */
	const char *input_json;
	uint64_t token_ttl_ms, approval_timeout_ms;
	bool has_setup;
	bool calls; /* the agent declares calls: its endpoint has call_agent */
	const char *tokens[2]; /* the phases' tokens, setup first when has_setup */
	unsigned allow_degraded; /* SANDBOX_PROT_* the part may run without */
	/* What the caller wants to hear: audit lines, and every event (else
	 * only approval.requested and approval.decided, which the control
	 * socket needs). Not asking saves the work per request. */
	bool want_audit;
	bool want_events;
};

struct netpart_hooks {
	void *ctx;
	/* An event for the run's stream ("egress.allowed", "approval.requested",
	 * "log", ...); data is borrowed. */
	void (*event)(void *ctx, const char *type, json_t *data);
	/* An audit entry for the run's log. */
	void (*audit)(void *ctx, json_t *entry);
	/* A step reported over MCP. */
	void (*step)(void *ctx, json_t *step);
	/* An artifact saved over MCP: write it; err goes back to the agent. */
	int (*artifact)(void *ctx, const char *name, const uint8_t *data, size_t len,
			struct cdn_err *err);
	/* The part is gone (or was stopped for breaking the channel's rules)
	 * before netpart_free: the sandbox has no network any more. */
	void (*died)(void *ctx, const char *why);
	/* A human asked, on the control socket, to stop the run (`by` is who
	 * the client says it is; the socket took only root or our uid).
	 * Optional. */
	int (*cancel)(void *ctx, const char *by, struct cdn_err *err);
	/* The agent called another agent (call_agent): id names the call
	 * for netpart_call_done; agent is as the agent wrote it (bounded,
	 * unchecked), input an object. Optional: without it every call is
	 * answered with an error. */
	void (*call)(void *ctx, const char *id, const char *agent, json_t *input);
};

/* What the part reported once confined (READY). */
struct netpart_info {
	pid_t pid;
	uid_t uid;
	gid_t gid;
	bool ready;
	bool no_new_privs;
	bool seccomp;
	int landlock_abi;
	char caps[24]; /* CapEff, hex */
};

struct netpart;

/*
 * Starts the part and hands it everything (the fds are taken, also on
 * failure), and a control socket for the run (control.h) whose decisions
 * go to the part. Returns before the part is ready: the sandbox's first
 * connections wait in its listeners' queues meanwhile.
 */
int netpart_start(struct event_base *base, const struct netpart_config *cfg,
		  const struct netpart_hooks *hooks, struct netpart **out, struct cdn_err *err);

const struct netpart_info *netpart_info(const struct netpart *np);

/* Runs the loop until the part is ready (0) or gone (negative, err). */
int netpart_wait_ready(struct netpart *np, struct cdn_err *err);

/* The sandbox's phase ended: the MCP endpoint moves on. */
void netpart_phase_ended(struct netpart *np, int phase);

/* A request for the run's control socket that came another way (a shared
 * store's, src/run/remote.h): the socket's own checks and reply. */
json_t *netpart_control(struct netpart *np, const json_t *req);

/* The answer to a call (netpart_hooks.call): text for the model, result
 * an object (borrowed) or NULL. */
int netpart_call_done(struct netpart *np, const char *id, bool is_error, const char *text,
		      const json_t *result);

/* A new policy (SIGHUP); copied. The run's CA cannot change: refused when
 * it inspects names the running one does not. */
int netpart_set_policy(struct netpart *np, const struct egress_policy *p, struct cdn_err *err);

/* Ends the part: it closes every connection and denies waiting
 * approvals, and what it says about that (audit lines, events) still
 * arrives through the hooks, within NETPART_EXIT_WAIT_MS; then the control
 * socket is removed. NULL is fine. */
void netpart_free(struct netpart *np);

#endif
