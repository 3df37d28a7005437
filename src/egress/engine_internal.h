/* SPDX-License-Identifier: Apache-2.0 */
/* Private to src/egress/: the engine's shared state. */
#ifndef CORDON_EGRESS_ENGINE_INTERNAL_H
#define CORDON_EGRESS_ENGINE_INTERNAL_H

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>

#include "egress/decide.h"
#include "base/clock.h"
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
	/* The sealed values, for what cannot be swapped back: a response
	 * from a scope that holds one in another encoding (base64, hex) is
	 * cut there (engine_forward.c). NULL when no value is long enough
	 * to look for. */
	struct inspector *seal_insp;
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
	return cdn_mono_ms();
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
/* Where egress_seal_apply() swaps: back (a response), or in at one place
 * of a request, where each secret is swapped only if its scope's "in"
 * allows it; the credential headers always do. */
enum {
	SEAL_BACK = 0,
	SEAL_AT_HEADER = EGRESS_SEAL_IN_HEADERS,
	SEAL_AT_QUERY = EGRESS_SEAL_IN_QUERY,
	SEAL_AT_BODY = EGRESS_SEAL_IN_BODY,
	SEAL_AT_CREDENTIAL = 1u << 8,
};
/* A header that carries a credential: Authorization, Proxy-Authorization,
 * or one named for a key, token, secret, password, credential, signature
 * or auth (X-Api-Key, X-Auth-Token, ...). */
bool egress_credential_header(const char *name, size_t len);
int egress_seal_init(struct egress_engine *e, const struct egress_sealed *s, size_t n,
		     struct cdn_err *err);
void egress_seal_free(struct egress_engine *e);
void egress_seal_select(const struct egress_engine *e, const char *host, struct seal_sel *sel);
/* Swaps placeholders for values (forward) or back, in place; the count. */
size_t egress_seal_apply(const struct egress_engine *e, const struct seal_sel *sel, unsigned at,
			 char *buf, size_t len);
/* The same inside an "Authorization: Basic ..." value. */
size_t egress_seal_apply_basic(const struct egress_engine *e, const struct seal_sel *sel,
			       unsigned at, char *value, size_t len);

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

/* ------------------------------------------------- the proxy's connections
 *
 * One struct pconn per client connection of the HTTP proxy, through its
 * requests: engine_conn.c (accepting, buffers, answers, closing),
 * engine_decide.c (a head through the stages, decide.h), engine_forward.c
 * (the request and its response on the wire), engine_connect.c (CONNECT:
 * inspected, or checked and spliced). Every callback holds a guard on its
 * connection (busy); a connection closed while busy is freed when the
 * last guard drops.
 */

#define MAX_CHECKED_ADDRS 8

enum cstate {
	C_HEAD,	      /* reading a request head */
	C_DECIDING,   /* waiting for DNS or a human */
	C_CONNECTING, /* connecting upstream */
	C_BODY,	      /* forwarding the request body */
	C_RESPONSE,   /* forwarding the response */
	C_HELLO,      /* a tunnel is open: waiting for the client's TLS ClientHello */
	C_CLOSING,    /* flushing, then free */
};

struct dns_wait {
	struct pconn *conn;
	struct evdns_getaddrinfo_request *req;
};

struct pconn {
	LIST_ENTRY(pconn) link;
	struct egress_engine *e;
	struct bufferevent *cbev; /* the sandbox side */
	struct bufferevent *ubev; /* upstream, NULL when none */
	enum cstate state;
	int busy;
	bool closing;
	struct event *timer; /* head timeout */

	/* the request being handled */
	struct policy_ref *pol;
	char *head; /* copy of the request head; req points into it */
	struct http_request req;
	char host[HTTP_MAX_HOST + 1]; /* normalised */
	const struct egress_rule *rule;
	bool would_block;	 /* audit-only mode: a stage failed but we go on */
	char would_reason[160];
	struct dns_wait *dns_wait;
	struct approval *approval;
	struct sockaddr_storage addrs[MAX_CHECKED_ADDRS];
	size_t n_addrs, next_addr;

	/* upstream identity, for reuse across keep-alive requests */
	char up_host[HTTP_MAX_HOST + 1];
	uint16_t up_port;

	/* request body */
	uint64_t body_left;
	struct http_chunked chunk;
	struct inspect_stream insp;
	struct inspect_stream insp_dec; /* the percent-decoded body */
	struct inspect_pct pct;
	struct evbuffer *hold; /* inspected body bytes not yet released */
	bool body_done;
	struct seal_sel seal;	/* sealed secrets swapped on this request */
	struct evbuffer *rhold; /* response bytes held back for the swap back */
	struct inspect_stream res_insp; /* rhold's bytes, for encoded sealed values */
	size_t rfed;		 /* bytes at rhold's start already fed to res_insp */
	bool res_reframe;	 /* a chunked response we re-frame (sealed scope) */

	/* response */
	bool res_head_done;
	struct http_response res;
	uint64_t res_left;
	struct http_chunked res_chunk;
	bool res_keep_alive;

	/* accounting for the audit line */
	uint64_t t_start;
	uint64_t req_size, res_size;
	int status;
	unsigned served; /* requests on this connection */
	bool force_block; /* refuse even in audit-only mode */
	bool tls_inspect; /* the decision: terminate this CONNECT's TLS */

	/* TLS inspection: this connection is a terminated CONNECT tunnel */
	bool tls;
	char tls_host[HTTP_MAX_HOST + 1];
	uint16_t tls_port;
	uint64_t flush_deadline;  /* C_CLOSING: give up writing the answer */
	uint64_t linger_deadline; /* C_CLOSING: stop waiting for the client's FIN */
	char up_error[200];	 /* why an inspected tunnel's upstream went away */
};

#define GUARD_IN(c) ((c)->busy++)
#define GUARD_OUT(c)                                 \
	do {                                         \
		if (--(c)->busy == 0 && (c)->closing) \
			pconn_free(c);                \
	} while (0)

/* engine_conn.c */
void egress_proxy_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
			 int salen, void *arg);
void pconn_client_read(struct bufferevent *bev, void *arg);
void pconn_client_write(struct bufferevent *bev, void *arg);
void pconn_client_event(struct bufferevent *bev, short what, void *arg);
void pconn_close(struct pconn *c);
void pconn_free(struct pconn *c);
/* Forgets the request (keep-alive, or an inspected tunnel's next one). */
void pconn_reset_request(struct pconn *c);
/* Closes once the answer is written, lingering for the client's FIN. */
void pconn_close_after_flush(struct pconn *c);
void pconn_arm_head_timer(struct pconn *c);
/* A short plain-text answer from the proxy itself. */
void pconn_respond(struct pconn *c, int status, const char *reason, const char *code,
		   const char *msg, uint64_t retry_after_s);
/* Writes what is queued on a socket bufferevent now (EV_WRITE only for
 * the rest), and turns EV_WRITE off again once it drained. */
void egress_bev_kick(struct bufferevent *bev);
void egress_bev_drained(struct bufferevent *bev);

/* engine_events.c: the audit line of a request on a connection */
json_t *pconn_entry(struct pconn *c, const char *type);

/* engine_decide.c */
void pconn_process_head(struct pconn *c);
/* A stage refused the request: true when the caller must stop (false in
 * audit-only mode, where it is recorded and the request goes on). */
bool pconn_block(struct pconn *c, int status, const char *reason, const char *code,
		 const char *event_type, json_t *extra, const char *fmt, ...)
	__attribute__((format(printf, 7, 8)));
/* The host for messages: normalised, else as written. */
const char *pconn_host(const struct pconn *c);
/* The findings of st from index `from` that are leaks, appended to names
 * (a JSON list, made when needed); NULL when there are none. */
json_t *pconn_leaks(const struct pconn *c, const struct inspect_stream *st, size_t from,
		    json_t *names);

/* engine_forward.c */
void pconn_connect_next(struct pconn *c);
void pconn_upstream_ready(struct pconn *c);
void pconn_pump_body(struct pconn *c);
void pconn_upstream_read(struct bufferevent *bev, void *arg);
void pconn_upstream_write(struct bufferevent *bev, void *arg);
void pconn_upstream_event(struct bufferevent *bev, short what, void *arg);

/* engine_connect.c */
void pconn_start_tls(struct pconn *c);
void pconn_start_tunnel(struct pconn *c);
void pconn_tunnel_hello(struct pconn *c);
void pconn_tunnel_refused(struct pconn *c, const char *why);

#endif
