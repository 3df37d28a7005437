/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The egress engine: the only way out of a sandbox.
 *
 * It serves the listening sockets that the sandbox created inside its own
 * network namespace (an HTTP proxy on 127.0.0.1:3128, DNS on
 * 127.0.0.1:53 over UDP and TCP), so every connection is attributed to its
 * run, and if the engine dies the sandbox has no network at all. It runs in
 * the run's network part (src/run/netpart.h): a process of its own, with no
 * privilege and no filesystem, because it parses every byte the agent
 * sends out.
 *
 * Each request goes through the stages in order, and the first to fail
 * decides: domain -> protocol/port -> rate -> method (and approval) ->
 * content -> destination -> forward. Every request and every block is one
 * audit line, handed to the caller (egress_audit_cb).
 *
 * One event loop (libevent), single-threaded, asynchronous throughout
 * (DNS included); every buffer is bounded (EGRESS_* below).
 */
#ifndef CORDON_EGRESS_ENGINE_H
#define CORDON_EGRESS_ENGINE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "egress/inspect.h"
#include "egress/policy.h"

struct event_base;
struct egress_ca;

#define EGRESS_MAX_CONNS 512		 /* concurrent client connections per engine */
#define EGRESS_BUFFER_MAX (256 * 1024)	 /* bytes queued per direction before backpressure */
#define EGRESS_CONNECT_TIMEOUT_S 10
#define EGRESS_HEADER_TIMEOUT_S 30	 /* a request head must arrive within this */
#define EGRESS_IDLE_TIMEOUT_S 120	 /* no traffic either way */
#define EGRESS_TUNNEL_IDLE_TIMEOUT_S 600
#define EGRESS_DNS_TTL_MAX 60
#define EGRESS_MAX_APPROVALS 64		 /* pending approvals per engine */

/* Run-level events for the caller (the run module turns them into the
 * event stream): "egress.allowed", "egress.blocked", "approval.requested",
 * "approval.decided". `data` is borrowed. */
typedef void (*egress_event_cb)(void *ctx, const char *type, json_t *data);

/* One audit line about a request, a tunnel, a lookup or a decision
 * (docs/audit.md lists the fields); the caller appends it to the run's
 * hash-chained log. `entry` is borrowed. */
typedef void (*egress_audit_cb)(void *ctx, json_t *entry);

struct egress_secret_scope {
	const char *secret;
	const char *domain;
};

/* A sealed secret (vault/seal.h): the sandbox holds `placeholder` (len
 * bytes and a NUL); on requests to the secret's scope (the scopes with its
 * name) the engine swaps `value` in, and back on the responses. */
struct egress_sealed {
	const char *name;
	const char *placeholder;
	const uint8_t *value;
	size_t len;
	/* Where it is swapped in besides the credential headers, which it
	 * always is: EGRESS_SEAL_IN_* (the manifest's "in"). */
	unsigned in;
};

enum {
	EGRESS_SEAL_IN_HEADERS = 1u << 0, /* every header value but Host */
	EGRESS_SEAL_IN_QUERY = 1u << 1,	  /* the request target */
	EGRESS_SEAL_IN_BODY = 1u << 2,
};

struct egress_engine_config {
	const char *run_id;
	/* The policy; the engine takes ownership. */
	struct egress_policy *policy;
	/* Values of the secrets granted to the run, for content inspection. */
	const struct inspect_secret *secrets;
	size_t n_secrets;
	/* Where a granted secret may go: a finding of secret `secret` in a
	 * request to `domain` (exact, or "*." for the names below it) is not a
	 * leak. Everywhere else, the secret's value blocks the request. */
	const struct egress_secret_scope *scopes;
	size_t n_scopes;
	/* Sealed secrets, swapped in on the way to their scope. Copied (the
	 * values into guarded memory, wiped when the engine goes). Their
	 * placeholders belong in `secrets` too, so that inspection blocks
	 * them everywhere else. */
	const struct egress_sealed *sealed;
	size_t n_sealed;
	/* A hosts file the resolver consults first (tests and air-gapped
	 * setups); NULL: the system's. Read when the engine is made. */
	const char *hosts_file;
	/* Extra CA certificates (PEM file) trusted when verifying upstream
	 * servers of inspected domains, on top of the system's. Read when the
	 * engine is made. */
	const char *upstream_ca_file;
	/* The run's CA for TLS inspection (the engine takes ownership); NULL
	 * when no rule inspects. */
	struct egress_ca *ca;
	egress_event_cb on_event;
	egress_audit_cb on_audit; /* NULL: no audit lines */
	void *ctx;		  /* for both callbacks */
};

struct egress_stats {
	uint64_t requests;  /* decided requests and tunnels */
	uint64_t allowed;
	uint64_t blocked;
	uint64_t dns_queries;
	uint64_t dns_blocked;
};

struct egress_engine;

int egress_engine_new(struct event_base *base, const struct egress_engine_config *cfg,
		      struct egress_engine **out, struct cdn_err *err);

/* Starts serving the sandbox's sockets; the engine owns them from here.
 * Any of them may be -1. */
int egress_engine_attach(struct egress_engine *e, int proxy_fd, int dns_udp_fd, int dns_tcp_fd,
			 struct cdn_err *err);

/* The names a run's CA must vouch for: the policy's inspected rules, in a
 * malloc'd array of borrowed pointers (NULL with *n = 0 when none). */
const char **egress_inspected_names(const struct egress_policy *p, size_t *n);

/* Swaps in a new policy (the engine takes ownership); connections in
 * flight keep the policy they started with. The run's CA stays the one it
 * was made with: the caller refuses a policy that inspects other names. */
void egress_engine_set_policy(struct egress_engine *e, struct egress_policy *p);

/* A human decided a held request (approval.requested's approval_id). */
int egress_engine_decide(struct egress_engine *e, const char *id, bool approve, const char *by,
			 struct cdn_err *err);

void egress_engine_stats(const struct egress_engine *e, struct egress_stats *st);

/* Closes every connection, denies pending approvals, frees. */
void egress_engine_free(struct egress_engine *e);

#endif
