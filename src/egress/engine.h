/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The egress engine: the only way out of a sandbox.
 *
 * It serves the listening sockets that the sandbox created inside its own
 * network namespace (an HTTP proxy on 127.0.0.1:3128, DNS on
 * 127.0.0.1:53 over UDP and TCP) from the supervisor's event loop, so every
 * connection is attributed to its run, and if cordon dies the sandbox has
 * no network at all.
 *
 * Each request goes through the stages in order, and the first to fail
 * decides: domain -> protocol/port -> rate -> method (and approval) ->
 * content -> destination -> forward. Every request and every block is one
 * line of the hash-chained audit log.
 *
 * One event loop (libevent), single-threaded, asynchronous throughout
 * (DNS included); every buffer is bounded (EGRESS_* below).
 */
#ifndef CORDON_EGRESS_ENGINE_H
#define CORDON_EGRESS_ENGINE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "audit/audit.h"
#include "base/err.h"
#include "egress/inspect.h"
#include "egress/policy.h"

struct event_base;

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

struct egress_secret_scope {
	const char *secret;
	const char *domain;
};

struct egress_engine_config {
	const char *run_id;
	/* The policy; the engine takes ownership. */
	struct egress_policy *policy;
	/* Reloaded from here by egress_engine_reload() (SIGHUP); NULL: the
	 * policy cannot be reloaded. Extra --allow and --allow-private
	 * entries are re-applied on reload. */
	const char *policy_path;
	const char *const *extra_allow;
	size_t n_extra_allow;
	const char *const *extra_private;
	size_t n_extra_private;
	/* May be NULL (no audit log); the engine does not own it. */
	struct audit_log *audit;
	/* Values of the secrets granted to the run, for content inspection. */
	const struct inspect_secret *secrets;
	size_t n_secrets;
	/* Where a granted secret may go: a finding of secret `secret` in a
	 * request to `domain` (exact, or "*." for the names below it) is not a
	 * leak. Everywhere else, the secret's value blocks the request. */
	const struct egress_secret_scope *scopes;
	size_t n_scopes;
	/* Unix socket for `cordon approvals`; NULL: none. */
	const char *control_path;
	/* A hosts file the resolver consults first (tests and air-gapped
	 * setups); NULL: the system's. */
	const char *hosts_file;
	/* Extra CA certificates (PEM file) trusted when verifying upstream
	 * servers of inspected domains, on top of the system's. */
	const char *upstream_ca_file;
	egress_event_cb on_event;
	void *event_ctx;
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

/* The run CA's certificate (PEM) when the policy inspects TLS for some
 * domain, else NULL: the sandbox must trust it (sandbox_config.ca_pem). */
const char *egress_engine_ca_pem(const struct egress_engine *e);

/* Reloads the policy from its file; on error the old one stays and err
 * says why. Connections in flight keep the policy they started with. */
int egress_engine_reload(struct egress_engine *e, struct cdn_err *err);

void egress_engine_stats(const struct egress_engine *e, struct egress_stats *st);

/* Closes every connection, denies pending approvals, frees. */
void egress_engine_free(struct egress_engine *e);

/* Where control sockets live: /run/cordon as root, else
 * $XDG_RUNTIME_DIR/cordon (or /tmp/cordon-UID). Created 0700. */
int egress_control_dir(char *out, size_t cap, bool create, struct cdn_err *err);

#endif
