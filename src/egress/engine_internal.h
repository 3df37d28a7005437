/* SPDX-License-Identifier: Apache-2.0 */
/* Private to src/egress/: the engine's shared state. */
#ifndef CORDON_EGRESS_ENGINE_INTERNAL_H
#define CORDON_EGRESS_ENGINE_INTERNAL_H

#include <event2/event.h>
#include <event2/listener.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "egress/engine.h"
#include "egress/http.h"
#include "egress/inspect.h"
#include "egress/policy.h"
#include "egress/ratelimit.h"

struct evdns_base;
struct egress_ca;
struct pconn;
struct dns_tcp;
struct egress_tunnel;
struct approval;

/* A policy shared by the requests that started under it: a reload swaps
 * the engine's current one; old ones go when their last request ends. */
struct policy_ref {
	struct egress_policy *p;
	int refs;
};

struct egress_engine {
	struct event_base *base;
	struct evdns_base *dns;
	struct policy_ref *policy;
	struct ratelimit *rl;
	struct inspector *insp;
	char **scope_secret, **scope_domain; /* pairs: where a granted secret may go */
	size_t n_scopes;
	struct egress_ca *ca; /* TLS inspection, NULL when no rule asks for it */
	char *upstream_ca;    /* extra CA file for verifying upstreams */
	char *run_id;
	egress_event_cb on_event;
	egress_audit_cb on_audit;
	void *ctx;

	struct evconnlistener *proxy_listener;
	int dns_udp_fd;
	struct event *dns_udp_ev;
	struct evconnlistener *dns_tcp_listener;
	LIST_HEAD(, dns_tcp) dns_tcps;
	unsigned dns_pending;

	LIST_HEAD(, pconn) conns;
	unsigned n_conns;
	LIST_HEAD(, egress_tunnel) tunnels;

	LIST_HEAD(, approval) approvals;
	unsigned n_approvals;

	struct egress_stats stats;
};

/* engine.c */
uint64_t egress_now_ms(void);
struct policy_ref *egress_policy_get(struct egress_engine *e);
void egress_policy_put(struct policy_ref *r);
/* Writes one audit line (and tells the caller) about a request. */
void egress_audit(struct egress_engine *e, json_t *entry);
void egress_emit(struct egress_engine *e, const char *type, json_t *data);

/* engine_dns.c */
int egress_dns_attach(struct egress_engine *e, int udp_fd, int tcp_fd, struct cdn_err *err);
void egress_dns_detach(struct egress_engine *e);

/* engine_tunnel.c: splice tunnels for plain CONNECT. Takes ownership of
 * both fds and of entry (the audit line, written when the tunnel ends). */
int egress_tunnel_start(struct egress_engine *e, int cfd, int ufd, const void *early_c2u,
			size_t c2u_len, const void *early_u2c, size_t u2c_len, json_t *entry,
			struct cdn_err *err);
void egress_tunnels_close(struct egress_engine *e);

/* engine_approval.c: requests held for a human */
typedef void (*approval_done_cb)(struct pconn *c, bool approved, const char *why);
struct approval *egress_approval_request(struct egress_engine *e, struct pconn *c,
					 const char *method, const char *host, uint16_t port,
					 const char *path, approval_done_cb done);
/* The connection went away: forget its approval without a decision. */
void egress_approval_cancel(struct approval *a);
void egress_approvals_deny_all(struct egress_engine *e, const char *why);

#endif
