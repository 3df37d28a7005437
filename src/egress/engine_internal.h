/* SPDX-License-Identifier: Apache-2.0 */
/* Private to src/egress/: the engine's shared state. */
#ifndef CORDON_EGRESS_ENGINE_INTERNAL_H
#define CORDON_EGRESS_ENGINE_INTERNAL_H

#include <event2/event.h>
#include <event2/listener.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/queue.h>
#include <time.h>

#include "egress/decide.h"
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
#define EGRESS_MAX_SWAPS (INSPECT_MAX_SECRETS * 3) /* a sealed secret in three encodings */

struct seal_swap;

/* The swaps that apply to one request (its host is in their scope). */
struct seal_sel {
	uint16_t idx[EGRESS_MAX_SWAPS];
	size_t n;
	size_t max_len; /* of the longest: what the body must hold back */
};

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
	struct egress_secrets secrets; /* raw secrets, and where each granted one may go */
	struct seal_swap *swaps; /* sealed secrets, each in its encodings */
	size_t n_swaps, swap_max_len;
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

/* Milliseconds on the monotonic clock: durations, deadlines, rate windows. */
static inline uint64_t egress_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The engine's current policy, held by a request until it ends. */
static inline struct policy_ref *egress_policy_get(struct egress_engine *e)
{
	e->policy->refs++;
	return e->policy;
}

static inline void egress_policy_put(struct policy_ref *r)
{
	if (r && --r->refs == 0) {
		egress_policy_free(r->p);
		free(r);
	}
}

/* engine_events.c: what the engine tells its caller */
/* Writes one audit line about a request, a tunnel, a lookup or a decision
 * (with the run's id); `entry` stays the caller's. */
void egress_audit(struct egress_engine *e, json_t *entry);
/* A run-level event ("egress.allowed", ...); `data` stays the caller's. */
void egress_emit(struct egress_engine *e, const char *type, json_t *data);

/* engine_seal.c: sealed secrets on the wire */
int egress_seal_init(struct egress_engine *e, const struct egress_sealed *s, size_t n,
		     struct cdn_err *err);
void egress_seal_free(struct egress_engine *e);
void egress_seal_select(const struct egress_engine *e, const char *host, struct seal_sel *sel);
/* Swaps placeholders for values (forward) or back, in place; the count. */
size_t egress_seal_apply(const struct egress_engine *e, const struct seal_sel *sel, bool forward,
			 char *buf, size_t len);
/* The same inside an "Authorization: Basic ..." value. */
size_t egress_seal_apply_basic(const struct egress_engine *e, const struct seal_sel *sel,
			       bool forward, char *value, size_t len);

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
