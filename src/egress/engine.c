/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The egress HTTP proxy: absolute-form HTTP/1.1 requests and CONNECT
 * tunnels, one client connection at a time per struct pconn, on libevent
 * bufferevents.
 *
 * A request is decided in the documented order, the first failing stage
 * decides:
 *
 *   domain -> protocol/port -> rate -> method (approval) -> content
 *   -> destination -> forward
 *
 * Content inspection covers the request line and head before anything
 * leaves, then the (de-chunked) body as it streams: the last
 * INSPECT_OVERLAP bytes are held back until the bytes after them are
 * scanned, so a credential is never forwarded, even one split across
 * reads. Bodies are re-framed on the way out (chunked stays chunked,
 * re-encoded by us), so the upstream never sees the client's framing: one
 * less place for request smuggling.
 *
 * The destination stage resolves the name asynchronously, refuses if any
 * answer is not a public address (the SSRF guard), and connects to exactly
 * the address it checked, so there is no second lookup to rebind.
 *
 * Lifetime: every callback holds a guard on its connection (busy); a
 * connection closed while busy is freed when the last guard drops.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "egress/engine_internal.h"
#include "egress/sni.h"
#include "egress/ssrf.h"
#include "egress/tls.h"

static void stage_content(struct pconn *c);
static void stage_destination(struct pconn *c);
static void pump_response(struct pconn *c);
static void approval_decided(struct pconn *c, bool approved, const char *why);
static void unseal_response(struct pconn *c, struct evbuffer *in, size_t n, bool all);

/* ------------------------------------------------------------------- audit */

json_t *pconn_entry(struct pconn *c, const char *type)
{
	json_t *j = json_object();
	json_object_set_new(j, "event_type", json_string(type));
	json_object_set_new(j, "method", json_string(c->req.method));
	json_object_set_new(j, "hostname", json_string(c->host[0] ? c->host : c->req.host));
	json_object_set_new(j, "port", json_integer(c->req.port));
	json_object_set_new(j, "status_code", json_integer(c->status));
	json_object_set_new(j, "duration_ms", json_integer((json_int_t)(egress_now_ms() - c->t_start)));
	json_object_set_new(j, "request_size", json_integer((json_int_t)c->req_size));
	json_object_set_new(j, "response_size", json_integer((json_int_t)c->res_size));
	if (c->rule)
		json_object_set_new(j, "rule", json_string(c->rule->name));
	if (c->would_block) {
		json_object_set_new(j, "enforced", json_false());
		json_object_set_new(j, "blocked_reason", json_string(c->would_reason));
	}
	return j;
}

/* ------------------------------------------------------------- connection */

void pconn_close(struct pconn *c)
{
	c->closing = true;
	if (c->busy == 0)
		pconn_free(c);
}


void pconn_reset_request(struct pconn *c)
{
	egress_policy_put(c->pol);
	c->pol = NULL;
	free(c->head);
	c->head = NULL;
	memset(&c->req, 0, sizeof(c->req));
	c->host[0] = '\0';
	c->rule = NULL;
	c->would_block = false;
	c->force_block = false;
	c->tls_inspect = false;
	c->would_reason[0] = '\0';
	c->n_addrs = c->next_addr = 0;
	c->body_left = 0;
	c->body_done = false;
	c->res_head_done = false;
	c->res_left = 0;
	c->res_keep_alive = false;
	c->req_size = c->res_size = 0;
	c->status = 0;
	if (c->hold)
		evbuffer_drain(c->hold, evbuffer_get_length(c->hold));
	if (c->rhold)
		evbuffer_drain(c->rhold, evbuffer_get_length(c->rhold));
	c->seal.n = 0;
	c->seal.max_len = 0;
}

void pconn_free(struct pconn *c)
{
	/* First, while everything it touches still exists: it drains the
	 * hold buffer (freed below) and drops the policy reference. */
	pconn_reset_request(c);
	if (c->dns_wait) {
		c->dns_wait->conn = NULL;
		if (c->dns_wait->req)
			evdns_getaddrinfo_cancel(c->dns_wait->req);
		c->dns_wait = NULL;
	}
	if (c->approval) {
		egress_approval_cancel(c->approval);
		c->approval = NULL;
	}
	if (c->timer)
		event_free(c->timer);
	if (c->cbev)
		bufferevent_free(c->cbev);
	if (c->ubev)
		bufferevent_free(c->ubev);
	if (c->hold)
		evbuffer_free(c->hold);
	if (c->rhold)
		evbuffer_free(c->rhold);
	LIST_REMOVE(c, link);
	c->e->n_conns--;
	free(c);
}

/*
 * Socket bufferevents run with EV_WRITE off: what is queued is written
 * right away here, and only what does not fit turns the write event on
 * (off again in the write callback once drained). That saves an epoll
 * round trip and two epoll_ctl calls per message on the hot path. TLS
 * filters write through OpenSSL and keep EV_WRITE on.
 */
void egress_bev_kick(struct bufferevent *bev)
{
	if (!bev)
		return;
	if (bufferevent_get_underlying(bev)) {
		bufferevent_enable(bev, EV_WRITE);
		return;
	}
	struct evbuffer *out = bufferevent_get_output(bev);
	if (evbuffer_get_length(out) == 0)
		return;
	(void)evbuffer_write(out, bufferevent_getfd(bev));
	if (evbuffer_get_length(out))
		bufferevent_enable(bev, EV_WRITE);
}

/* Write callback side of egress_bev_kick(): drained, so the write event goes off. */
void egress_bev_drained(struct bufferevent *bev)
{
	if (!bufferevent_get_underlying(bev) &&
	    evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		bufferevent_disable(bev, EV_WRITE);
}

/* Bytes queued for the client, including those a TLS filter has already
 * encrypted into the socket's own buffer. */
static size_t client_pending(struct pconn *c)
{
	size_t n = evbuffer_get_length(bufferevent_get_output(c->cbev));
	struct bufferevent *under = bufferevent_get_underlying(c->cbev);
	if (under)
		n += evbuffer_get_length(bufferevent_get_output(under));
	return n;
}

#define FLUSH_POLL_MS 10
#define LINGER_MS 2000

/*
 * Close once everything queued for the client has been written, then
 * linger: a client refused in the middle of sending a body is still
 * writing, and closing under it would reset the connection and lose our
 * answer (the lingering close of RFC 9112 9.6). Its bytes are read and
 * dropped until it closes or LINGER_MS pass. A TLS filter gives no
 * callback when its socket drains, so the whole wait polls the timer.
 */
void pconn_close_after_flush(struct pconn *c)
{
	if (c->state != C_CLOSING) {
		c->state = C_CLOSING;
		c->flush_deadline = egress_now_ms() + EGRESS_IDLE_TIMEOUT_S * 1000ull;
		c->linger_deadline = 0;
	}
	if (c->ubev) {
		bufferevent_free(c->ubev);
		c->ubev = NULL;
	}
	/* Input is dropped by pconn_client_read, never here: a caller may be in
	 * the middle of parsing bytes that sit in that buffer. */
	bufferevent_enable(c->cbev, EV_READ);
	egress_bev_kick(c->cbev);
	uint64_t now = egress_now_ms();
	if (client_pending(c) == 0) {
		if (!c->linger_deadline) {
			c->linger_deadline = now + LINGER_MS;
			if (!bufferevent_get_underlying(c->cbev))
				shutdown(bufferevent_getfd(c->cbev), SHUT_WR);
		}
		if (now >= c->linger_deadline) {
			pconn_close(c);
			return;
		}
	} else if (now >= c->flush_deadline) {
		pconn_close(c);
		return;
	}
	struct timeval tv = { 0, FLUSH_POLL_MS * 1000 };
	evtimer_add(c->timer, &tv);
}

/* A short plain-text answer from the proxy itself. */
void pconn_respond(struct pconn *c, int status, const char *reason, const char *code,
		    const char *msg, uint64_t retry_after_s)
{
	char body[512];
	int bl = snprintf(body, sizeof(body), "cordon: %s\n", msg);
	if (bl < 0 || (size_t)bl >= sizeof(body))
		bl = (int)sizeof(body) - 1;
	struct evbuffer *out = bufferevent_get_output(c->cbev);
	evbuffer_add_printf(out,
			    "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
			    "Content-Length: %d\r\nConnection: close\r\nX-Cordon-Block: %s\r\n",
			    status, reason, bl, code);
	if (retry_after_s)
		evbuffer_add_printf(out, "Retry-After: %" PRIu64 "\r\n", retry_after_s);
	evbuffer_add(out, "\r\n", 2);
	evbuffer_add(out, body, (size_t)bl);
	c->status = status;
	c->res_size = evbuffer_get_length(out);
	egress_bev_kick(c->cbev);
}

/*
 * A stage refused the request. In audit-only mode (enforce: false) the
 * decision is recorded and the request goes on; returns true when the
 * caller must stop.
 */
bool pconn_block(struct pconn *c, int status, const char *reason, const char *code,
		  const char *event_type, json_t *extra, const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	struct egress_engine *e = c->e;
	bool enforce = c->force_block || !c->pol || c->pol->p->enforce;
	json_t *j = pconn_entry(c, event_type);
	json_object_set_new(j, "status_code", json_integer(enforce ? status : 0));
	json_object_set_new(j, "blocked_reason", json_string(msg));
	if (!enforce)
		json_object_set_new(j, "enforced", json_false());
	if (extra)
		json_object_update(j, extra);
	egress_audit(e, j);
	egress_emit(e, "egress.blocked", j);
	json_decref(j);
	json_decref(extra);

	if (!enforce) {
		if (!c->would_block) {
			c->would_block = true;
			snprintf(c->would_reason, sizeof(c->would_reason), "%s", msg);
		}
		return false;
	}
	e->stats.blocked++;
	pconn_respond(c, status, reason, code, msg, 0);
	pconn_close_after_flush(c);
	return true;
}

/* A verdict of the decision (decide.h), carried out: true when the
 * caller must stop. */
static bool refuse(struct pconn *c, const struct egress_decision *d, const struct egress_verdict *v)
{
	if (v->stage == EGRESS_STAGE_RATE && d->enforced) {
		/* Enforced, a rate limit answers with when to come back. */
		json_t *j = pconn_entry(c, v->event_type);
		json_object_set_new(j, "status_code", json_integer(v->status));
		json_object_set_new(j, "blocked_reason", json_string(v->reason));
		egress_audit(c->e, j);
		egress_emit(c->e, "egress.blocked", j);
		json_decref(j);
		c->e->stats.blocked++;
		pconn_respond(c, v->status, v->status_text, v->block, v->reason, v->retry_after_s);
		pconn_close_after_flush(c);
		return true;
	}
	json_t *extra = NULL;
	if (v->stage == EGRESS_STAGE_HOST_CREDENTIAL) {
		json_t *names = json_array();
		for (size_t i = 0; names && i < d->n_patterns; i++)
			json_array_append_new(names, json_string(d->patterns[i]));
		extra = json_object();
		json_object_set_new(extra, "credential_patterns", names);
	}
	if (v->always)
		c->force_block = true;
	return pconn_block(c, v->status, v->status_text, v->block, v->event_type, extra, "%s",
		     v->reason);
}

/* ------------------------------------------------------- client events */


static void head_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct pconn *c = arg;
	GUARD_IN(c);
	if (c->state == C_CLOSING) {
		pconn_close_after_flush(c);
	} else if (c->state == C_HELLO) {
		pconn_tunnel_refused(c, "no TLS ClientHello arrived in time");
	} else if (c->state == C_HEAD) {
		if (evbuffer_get_length(bufferevent_get_input(c->cbev)) > 0 || c->served == 0) {
			c->status = 408;
			pconn_respond(c, 408, "Request Timeout", "timeout",
				"the request head did not arrive in time", 0);
		}
		pconn_close_after_flush(c);
	}
	GUARD_OUT(c);
}

void pconn_arm_head_timer(struct pconn *c)
{
	struct timeval tv = { EGRESS_HEADER_TIMEOUT_S, 0 };
	evtimer_add(c->timer, &tv);
}

void egress_proxy_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
			int salen, void *arg)
{
	(void)l;
	(void)sa;
	(void)salen;
	struct egress_engine *e = arg;
	if (e->n_conns >= EGRESS_MAX_CONNS) {
		/* Bounded: refuse rather than queue without limit. */
		static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
					   "Connection: close\r\n\r\n";
		(void)!write(fd, busy, sizeof(busy) - 1);
		close(fd);
		return;
	}
	struct pconn *c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	c->e = e;
	c->cbev = bufferevent_socket_new(e->base, fd, BEV_OPT_CLOSE_ON_FREE);
	c->timer = evtimer_new(e->base, head_timeout, c);
	c->hold = evbuffer_new();
	c->rhold = evbuffer_new();
	LIST_INSERT_HEAD(&e->conns, c, link);
	e->n_conns++;
	if (!c->cbev || !c->timer || !c->hold || !c->rhold) {
		if (!c->cbev)
			close(fd);
		pconn_free(c);
		return;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	bufferevent_setcb(c->cbev, pconn_client_read, pconn_client_write, pconn_client_event, c);
	bufferevent_setwatermark(c->cbev, EV_READ, 0, EGRESS_BUFFER_MAX);
	bufferevent_setwatermark(c->cbev, EV_WRITE, EGRESS_BUFFER_MAX / 2, 0);
	struct timeval idle = { EGRESS_IDLE_TIMEOUT_S, 0 };
	bufferevent_set_timeouts(c->cbev, &idle, &idle);
	/* New bufferevents start with EV_WRITE on; egress_bev_kick() manages it. */
	bufferevent_disable(c->cbev, EV_WRITE);
	bufferevent_enable(c->cbev, EV_READ);
	c->state = C_HEAD;
	pconn_arm_head_timer(c);
}

void pconn_client_read(struct bufferevent *bev, void *arg)
{
	(void)bev;
	struct pconn *c = arg;
	GUARD_IN(c);
	switch (c->state) {
	case C_HEAD:
		pconn_process_head(c);
		break;
	case C_BODY:
		pconn_pump_body(c);
		break;
	case C_HELLO:
		pconn_tunnel_hello(c);
		break;
	case C_CLOSING:
		/* Lingering: what the client still sends is dropped. */
		evbuffer_drain(bufferevent_get_input(c->cbev),
			       evbuffer_get_length(bufferevent_get_input(c->cbev)));
		break;
	case C_DECIDING:
	case C_CONNECTING:
	case C_RESPONSE:
		/* Pipelined bytes wait until the current exchange is done (the
		 * read watermark bounds them). */
		break;
	}
	GUARD_OUT(c);
}

void pconn_client_write(struct bufferevent *bev, void *arg)
{
	struct pconn *c = arg;
	GUARD_IN(c);
	egress_bev_drained(bev);
	size_t pending = evbuffer_get_length(bufferevent_get_output(bev));
	if (c->state == C_CLOSING)
		pconn_close_after_flush(c);
	else if (c->ubev && c->state == C_RESPONSE && pending < EGRESS_BUFFER_MAX)
		bufferevent_enable(c->ubev, EV_READ);
	GUARD_OUT(c);
}

void pconn_client_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	struct pconn *c = arg;
	GUARD_IN(c);
	if (c->state == C_CLOSING && (what & BEV_EVENT_EOF) && client_pending(c) > 0) {
		/* The client is done sending; our answer still goes out. */
		bufferevent_disable(c->cbev, EV_READ);
	} else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
		if (c->state == C_BODY || c->state == C_RESPONSE || c->state == C_CONNECTING ||
		    c->state == C_DECIDING) {
			c->status = c->status ? c->status : 499;
			json_t *j = pconn_entry(c, "error");
			json_object_set_new(j, "blocked_reason",
					    json_string(what & BEV_EVENT_TIMEOUT
								? "client timed out"
								: "client closed the connection"));
			egress_audit(c->e, j);
			/* The request went out (a client that stops reading after
			 * the head is common): the run's events count it as sent. */
			if (c->state == C_BODY || c->state == C_RESPONSE)
				egress_emit(c->e, "egress.allowed", j);
			json_decref(j);
		}
		pconn_close(c);
	}
	GUARD_OUT(c);
}

/* ------------------------------------------------------------- deciding */

/* Pointers of a parsed request that point into [from, from+len) now point
 * at the same offsets in `to`. Others (the static "/" path) stay. */
static void rebase_request(struct http_request *r, const char *from, size_t len, char *to)
{
#define REBASE(p)                                                   \
	do {                                                        \
		if ((p) >= from && (p) < from + len)                \
			(p) = to + ((p)-from);                      \
	} while (0)
	REBASE(r->path);
	for (size_t i = 0; i < r->n_fields; i++) {
		REBASE(r->fields[i].name);
		REBASE(r->fields[i].value);
	}
#undef REBASE
}

const char *pconn_host(const struct pconn *c)
{
	return c->host[0] ? c->host : c->req.host;
}

void pconn_process_head(struct pconn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->cbev);
	size_t len = evbuffer_get_length(in);
	if (len == 0)
		return;
	size_t take = len < HTTP_MAX_HEAD + 4 ? len : HTTP_MAX_HEAD + 4;
	const char *data = (const char *)evbuffer_pullup(in, (ssize_t)take);
	struct cdn_err err = { 0 };
	struct http_request probe;
	int r = c->tls ? http_parse_request_tunneled(data, take, c->tls_host, c->tls_port, &probe, &err)
		       : http_parse_request(data, take, &probe, &err);
	if (r == 0)
		return;
	evtimer_del(c->timer);
	c->t_start = egress_now_ms();
	c->pol = egress_policy_get(c->e);
	if (r < 0) {
		static const struct {
			int code;
			const char *reason;
		} map[] = { { HTTP_ERR_URI_TOO_LONG, "URI Too Long" },
			    { HTTP_ERR_HEADERS_TOO_LARGE, "Request Header Fields Too Large" },
			    { HTTP_ERR_NOT_IMPLEMENTED, "Not Implemented" },
			    { HTTP_ERR_VERSION, "HTTP Version Not Supported" } };
		int status = 400;
		const char *reason = "Bad Request";
		for (size_t i = 0; i < CDN_ARRAY_SIZE(map); i++)
			if (map[i].code == r) {
				status = -r;
				reason = map[i].reason;
			}
		snprintf(c->req.method, sizeof(c->req.method), "-");
		/* Malformed requests cannot be forwarded, even in audit mode. */
		json_t *j = pconn_entry(c, "blocked");
		json_object_set_new(j, "status_code", json_integer(status));
		json_object_set_new(j, "blocked_reason", json_string(err.msg));
		egress_audit(c->e, j);
		egress_emit(c->e, "egress.blocked", j);
		json_decref(j);
		c->e->stats.blocked++;
		pconn_respond(c, status, reason, "malformed", err.msg, 0);
		pconn_close_after_flush(c);
		return;
	}
	/* Keep our own copy of the head and move the parsed request's
	 * pointers onto it (rather than parsing a second time). */
	c->head = malloc((size_t)r + 1);
	if (!c->head) {
		pconn_close_after_flush(c);
		return;
	}
	memcpy(c->head, data, (size_t)r);
	c->head[r] = '\0';
	c->req = probe;
	rebase_request(&c->req, data, (size_t)r, c->head);
	evbuffer_drain(in, (size_t)r);
	c->req_size = (uint64_t)r;
	c->state = C_DECIDING;
	c->e->stats.requests++;

	/* Stages 1 to 4 (decide.h); this only carries the decision out. */
	const struct egress_run_facts run = { .insp = c->e->insp,
					      .secrets = &c->e->secrets,
					      .can_inspect = c->e->ca != NULL };
	const struct egress_request_facts facts = { .method = c->req.method,
						    .host = c->req.host,
						    .port = c->req.port,
						    .connect = c->req.form == HTTP_TARGET_AUTHORITY };
	struct egress_decision d;
	egress_decide(c->pol->p, &run, &facts, c->e->rl, egress_now_ms(), &d);
	snprintf(c->host, sizeof(c->host), "%s", d.host);
	c->tls_inspect = d.tls_inspect;
	for (size_t i = 0; i < d.n_verdicts; i++) {
		/* The rule is matched once the host is normalised: a line about
		 * the host itself names none. */
		const struct egress_verdict *v = &d.verdicts[i];
		c->rule = v->stage == EGRESS_STAGE_HOST_FORM || v->stage == EGRESS_STAGE_HOST_NAME
				  ? NULL
				  : d.rule;
		if (refuse(c, &d, v))
			return;
	}
	c->rule = d.rule;
	switch (d.outcome) {
	case EGRESS_BLOCK:
		return; /* refused above */
	case EGRESS_HOLD: {
		char path[512];
		snprintf(path, sizeof(path), "%.*s", (int)c->req.path_len, c->req.path);
		c->approval = egress_approval_request(c->e, c, c->req.method, c->host, c->req.port,
						      path, approval_decided);
		if (!c->approval)
			pconn_block(c, 503, "Service Unavailable", "approval", "blocked", NULL,
			      "too many requests are waiting for approval");
		return; /* continues in approval_decided */
	}
	case EGRESS_ALLOW:
		break;
	}
	if (facts.connect)
		stage_destination(c); /* the content of a tunnel is not read here */
	else
		stage_content(c);
}

static void approval_decided(struct pconn *c, bool approved, const char *why)
{
	GUARD_IN(c);
	c->approval = NULL;
	if (!approved) {
		pconn_block(c, 403, "Forbidden", "approval", "approval", NULL, "%s", why);
		if (c->state != C_CLOSING && !c->pol->p->enforce)
			stage_content(c);
	} else {
		stage_content(c);
	}
	GUARD_OUT(c);
}

/* A granted secret found in a request to a domain it is scoped to is the
 * secret doing its job (an API key sent to its API), not a leak. The host
 * is the normalised one, as the policy matched it. */
static bool finding_in_scope(const struct pconn *c, const struct inspect_finding *f)
{
	return f->is_secret && egress_secret_in_scope(&c->e->secrets, f->name, pconn_host(c));
}

/* The findings from index `from` that are leaks, as a JSON list of names;
 * NULL when there are none. */
json_t *pconn_leaks(const struct pconn *c, const struct inspect_stream *st, size_t from,
		     json_t *names)
{
	for (size_t i = from; i < st->n_findings; i++) {
		if (finding_in_scope(c, &st->findings[i]))
			continue;
		if (!names)
			names = json_array();
		json_array_append_new(names, json_string(st->findings[i].name));
	}
	return names;
}

/* Whether the body is a form (then '+' is a space in it, as in a query). */
static bool form_body(const struct http_request *r)
{
	static const char form[] = "application/x-www-form-urlencoded";
	for (size_t i = 0; i < r->n_fields; i++)
		if (r->fields[i].name_len == 12 && strncasecmp(r->fields[i].name, "content-type", 12) == 0)
			return r->fields[i].value_len >= sizeof(form) - 1 &&
			       strncasecmp(r->fields[i].value, form, sizeof(form) - 1) == 0;
	return false;
}

/* 5. Content: the request line and head, before anything leaves. */
static void stage_content(struct pconn *c)
{
	inspect_stream_init(&c->insp, c->e->insp);
	inspect_feed(&c->insp, c->head, c->req.head_len);
	/* And the target percent-decoded: a credential in a query string is
	 * one, whatever its escaping. */
	inspect_stream_init(&c->insp_dec, c->e->insp);
	struct inspect_pct q = { .plus_space = true };
	char *dec = c->req.path_len ? malloc(c->req.path_len + 2) : NULL;
	if (dec) {
		size_t dn = inspect_pct_feed(&q, c->req.path, c->req.path_len, dec);
		inspect_feed(&c->insp_dec, dec, dn);
		free(dec);
	} else if (c->req.path_len) {
		pconn_close_after_flush(c); /* out of memory: not forwarded uninspected */
		return;
	}
	json_t *names = pconn_leaks(c, &c->insp_dec, 0, pconn_leaks(c, &c->insp, 0, NULL));
	/* The body's decoded form is scanned in a stream of its own. */
	inspect_stream_init(&c->insp_dec, c->e->insp);
	c->pct = (struct inspect_pct){ .plus_space = form_body(&c->req) };
	if (names) {
		json_t *extra = json_object();
		json_object_set_new(extra, "credential_patterns", names);
		if (pconn_block(c, 403, "Forbidden", "credential", "credential_leak", extra,
			  "the request carries a credential"))
			return;
		/* audit-only: go on, and don't report the same findings twice */
		c->insp.n_findings = 0;
	}
	stage_destination(c);
}

/* 6. Destination: every address checked, then exactly those used. */
static bool check_addrs(struct pconn *c)
{
	for (size_t i = 0; i < c->n_addrs; i++) {
		struct egress_verdict v;
		if (!egress_decide_address(c->pol->p, c->host, (const struct sockaddr *)&c->addrs[i],
					   c->req.port, &v) &&
		    pconn_block(c, v.status, v.status_text, v.block, v.event_type, NULL, "%s", v.reason))
			return false;
	}
	return true;
}

static void dns_done(int result, struct evutil_addrinfo *res, void *arg)
{
	struct dns_wait *w = arg;
	struct pconn *c = w->conn;
	if (!c) {
		if (res)
			evutil_freeaddrinfo(res);
		free(w);
		return;
	}
	c->dns_wait = NULL;
	free(w);
	GUARD_IN(c);
	c->n_addrs = 0;
	for (struct evutil_addrinfo *ai = res; ai && c->n_addrs < MAX_CHECKED_ADDRS; ai = ai->ai_next) {
		if ((ai->ai_family == AF_INET || ai->ai_family == AF_INET6) &&
		    ai->ai_addrlen <= sizeof(struct sockaddr_storage)) {
			memset(&c->addrs[c->n_addrs], 0, sizeof(c->addrs[0]));
			memcpy(&c->addrs[c->n_addrs], ai->ai_addr, ai->ai_addrlen);
			c->n_addrs++;
		}
	}
	if (res)
		evutil_freeaddrinfo(res);
	if (result != 0 || c->n_addrs == 0) {
		c->status = 502;
		json_t *j = pconn_entry(c, "error");
		char why[200];
		snprintf(why, sizeof(why), "cannot resolve %s: %s", c->host,
			 result ? evutil_gai_strerror(result) : "no addresses");
		json_object_set_new(j, "blocked_reason", json_string(why));
		egress_audit(c->e, j);
		json_decref(j);
		pconn_respond(c, 502, "Bad Gateway", "dns", why, 0);
		pconn_close_after_flush(c);
	} else if (check_addrs(c)) {
		c->next_addr = 0;
		pconn_connect_next(c);
	}
	GUARD_OUT(c);
}

static void stage_destination(struct pconn *c)
{
	/* Keep-alive: the connection to this host:port was checked already. */
	if (c->ubev && strcmp(c->up_host, c->host) == 0 && c->up_port == c->req.port &&
	    c->req.form != HTTP_TARGET_AUTHORITY) {
		pconn_upstream_ready(c);
		return;
	}
	if (c->tls) {
		/* The inspected tunnel's upstream is gone: the client reconnects. */
		pconn_respond(c, 502, "Bad Gateway", "upstream",
			c->up_error[0] ? c->up_error : "the upstream TLS connection closed", 0);
		pconn_close_after_flush(c);
		return;
	}
	if (c->ubev) {
		bufferevent_free(c->ubev);
		c->ubev = NULL;
	}
	struct sockaddr_storage lit;
	struct cdn_err err = { 0 };
	if (ssrf_parse_host(c->req.host, &lit, &err) == 1) {
		c->addrs[0] = lit;
		c->n_addrs = 1;
		if (check_addrs(c)) {
			c->next_addr = 0;
			pconn_connect_next(c);
		}
		return;
	}
	struct dns_wait *w = calloc(1, sizeof(*w));
	if (!w) {
		pconn_close_after_flush(c);
		return;
	}
	w->conn = c;
	c->dns_wait = w;
	struct evutil_addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
					 .ai_protocol = IPPROTO_TCP };
	struct evdns_getaddrinfo_request *req =
		evdns_getaddrinfo(c->e->dns, c->host, NULL, &hints, dns_done, w);
	/* The callback may already have run (hosts file, cache). */
	if (c->dns_wait == w)
		w->req = req;
}

/* 7. Forward. */
void pconn_connect_next(struct pconn *c)
{
	if (c->next_addr >= c->n_addrs) {
		c->status = 502;
		json_t *j = pconn_entry(c, "error");
		char why[200];
		snprintf(why, sizeof(why), "cannot connect to %s:%u", c->host, c->req.port);
		json_object_set_new(j, "blocked_reason", json_string(why));
		egress_audit(c->e, j);
		json_decref(j);
		pconn_respond(c, 502, "Bad Gateway", "connect", why, 0);
		pconn_close_after_flush(c);
		return;
	}
	struct sockaddr_storage sa = c->addrs[c->next_addr++];
	socklen_t salen;
	if (sa.ss_family == AF_INET) {
		((struct sockaddr_in *)&sa)->sin_port = htons(c->req.port);
		salen = sizeof(struct sockaddr_in);
	} else {
		((struct sockaddr_in6 *)&sa)->sin6_port = htons(c->req.port);
		salen = sizeof(struct sockaddr_in6);
	}
	if (c->ubev)
		bufferevent_free(c->ubev);
	c->ubev = bufferevent_socket_new(c->e->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!c->ubev) {
		pconn_close_after_flush(c);
		return;
	}
	bufferevent_setcb(c->ubev, pconn_upstream_read, pconn_upstream_write, pconn_upstream_event, c);
	bufferevent_setwatermark(c->ubev, EV_READ, 0, EGRESS_BUFFER_MAX);
	bufferevent_setwatermark(c->ubev, EV_WRITE, EGRESS_BUFFER_MAX / 2, 0);
	struct timeval ct = { EGRESS_CONNECT_TIMEOUT_S, 0 };
	bufferevent_set_timeouts(c->ubev, &ct, &ct);
	c->state = C_CONNECTING;
	snprintf(c->up_host, sizeof(c->up_host), "%s", c->host);
	c->up_port = c->req.port;
	if (bufferevent_socket_connect(c->ubev, (struct sockaddr *)&sa, (int)salen) < 0) {
		bufferevent_free(c->ubev);
		c->ubev = NULL;
		pconn_connect_next(c);
	}
}

/* True when a Connection field (any of them) lists `name`: such fields
 * are hop-by-hop too (RFC 9110 7.6.1). */
static bool connection_lists(const struct http_request *r, const char *name, size_t len)
{
	for (size_t i = 0; i < r->n_fields; i++) {
		const struct http_field *c = &r->fields[i];
		if (c->name_len != 10 || strncasecmp(c->name, "connection", 10) != 0)
			continue;
		const char *p = c->value, *end = c->value + c->value_len;
		while (p < end) {
			while (p < end && (*p == ' ' || *p == ',' || *p == '\t'))
				p++;
			const char *s = p;
			while (p < end && *p != ',' && *p != ' ' && *p != '\t')
				p++;
			if ((size_t)(p - s) == len && strncasecmp(s, name, len) == 0)
				return true;
		}
	}
	return false;
}

/* Sealed secrets this request carries to their scope go in now, after
 * every stage has decided: in the target and in header values (Basic
 * credentials included), never in Host, in place (same lengths). */
static void seal_request_head(struct pconn *c)
{
	egress_seal_select(c->e, pconn_host(c), &c->seal);
	if (c->seal.n == 0)
		return;
	const char *lo = c->head, *hi = c->head + c->req.head_len;
	struct http_request *r = &c->req;
	if (r->path >= lo && r->path + r->path_len <= hi)
		egress_seal_apply(c->e, &c->seal, true, (char *)r->path, r->path_len);
	for (size_t i = 0; i < r->n_fields; i++) {
		struct http_field *f = &r->fields[i];
		if ((f->name_len == 4 && strncasecmp(f->name, "host", 4) == 0) || f->value < lo ||
		    f->value + f->value_len > hi)
			continue;
		egress_seal_apply(c->e, &c->seal, true, (char *)f->value, f->value_len);
		if (f->name_len == 13 && strncasecmp(f->name, "authorization", 13) == 0)
			egress_seal_apply_basic(c->e, &c->seal, true, (char *)f->value, f->value_len);
	}
}

/* The head as the upstream sees it: origin-form, no hop-by-hop fields,
 * framing we control. */
static void send_request_head(struct pconn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->ubev);
	const struct http_request *r = &c->req;
	evbuffer_add(out, r->method, strlen(r->method));
	evbuffer_add(out, " ", 1);
	evbuffer_add(out, r->path, r->path_len);
	evbuffer_add(out, r->version_minor ? " HTTP/1.1\r\n" : " HTTP/1.0\r\n", 11);
	for (size_t i = 0; i < r->n_fields; i++) {
		const struct http_field *f = &r->fields[i];
		if (http_is_hop_by_hop(f->name, f->name_len) ||
		    (f->name_len == 6 && strncasecmp(f->name, "expect", 6) == 0) ||
		    (f->name_len == 14 && strncasecmp(f->name, "content-length", 14) == 0) ||
		    connection_lists(r, f->name, f->name_len))
			continue;
		evbuffer_add(out, f->name, f->name_len);
		evbuffer_add(out, ": ", 2);
		evbuffer_add(out, f->value, f->value_len);
		evbuffer_add(out, "\r\n", 2);
	}
	if (r->body == HTTP_BODY_LENGTH)
		evbuffer_add_printf(out, "Content-Length: %" PRIu64 "\r\n", r->content_length);
	else if (r->body == HTTP_BODY_CHUNKED)
		evbuffer_add_printf(out, "Transfer-Encoding: chunked\r\n");
	static const char via10[] = "Connection: close\r\nVia: 1.0 cordon\r\n\r\n";
	static const char via11[] = "Via: 1.1 cordon\r\n\r\n";
	if (r->version_minor == 0)
		evbuffer_add(out, via10, sizeof(via10) - 1);
	else
		evbuffer_add(out, via11, sizeof(via11) - 1);
}

/*
 * CONNECT to an inspected domain: answer 200, then terminate the client's
 * TLS with a certificate from the run's CA and speak TLS to the upstream
 * ourselves, verifying it. From here the connection carries origin-form
 * HTTP requests that go through every stage like plain ones.
 */
/* The inspected connection an SSL belongs to (ex data). */
static int ssl_conn_index = -1;

/*
 * The client's ClientHello must name the CONNECT host, as in a tunnel the
 * proxy does not read (sni.h): TLS to one name inside a CONNECT to
 * another is refused, and so is a ClientHello that names none.
 */
static int servername_check(SSL *ssl, int *alert, void *arg)
{
	(void)arg;
	struct pconn *c = SSL_get_ex_data(ssl, ssl_conn_index);
	if (!c)
		return SSL_TLSEXT_ERR_OK;
	const char *sn = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	if (sn && strcasecmp(sn, c->tls_host) == 0)
		return SSL_TLSEXT_ERR_OK;
	char why[400];
	if (sn)
		snprintf(why, sizeof(why), "the TLS ClientHello names %.253s, not the CONNECT host %s",
			 sn, c->tls_host);
	else
		snprintf(why, sizeof(why), "a TLS ClientHello without a server name in a tunnel to %s",
			 c->tls_host);
	json_t *j = pconn_entry(c, "blocked");
	json_object_set_new(j, "hostname", json_string(c->tls_host));
	json_object_set_new(j, "status_code", json_integer(403));
	json_object_set_new(j, "blocked_reason", json_string(why));
	egress_audit(c->e, j);
	egress_emit(c->e, "egress.blocked", j);
	json_decref(j);
	c->e->stats.blocked++;
	*alert = SSL_AD_UNRECOGNIZED_NAME;
	return SSL_TLSEXT_ERR_ALERT_FATAL;
}

void pconn_start_tls(struct pconn *c)
{
	struct cdn_err err = { 0 };
	SSL *server = egress_ca_server_ssl(c->e->ca, c->host, &err);
	if (server) {
		if (ssl_conn_index < 0)
			ssl_conn_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
		snprintf(c->tls_host, sizeof(c->tls_host), "%s", c->host);
		if (ssl_conn_index < 0 || SSL_set_ex_data(server, ssl_conn_index, c) != 1) {
			SSL_free(server);
			server = NULL;
			cdn_err_set(&err, ENOMEM, "TLS");
		} else {
			SSL_CTX_set_tlsext_servername_callback(SSL_get_SSL_CTX(server),
							       servername_check);
		}
	}
	SSL *client = server ? egress_tls_client_ssl(c->host, c->e->upstream_ca, &err) : NULL;
	if (!client) {
		SSL_free(server);
		c->status = 502;
		json_t *j = pconn_entry(c, "error");
		json_object_set_new(j, "blocked_reason", json_string(err.msg));
		egress_audit(c->e, j);
		json_decref(j);
		pconn_respond(c, 502, "Bad Gateway", "tls", err.msg, 0);
		pconn_close_after_flush(c);
		return;
	}
	evbuffer_add_printf(bufferevent_get_output(c->cbev),
			    "HTTP/1.1 200 Connection Established\r\n\r\n");
	struct bufferevent *tc = bufferevent_openssl_filter_new(
		c->e->base, c->cbev, server, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (!tc) {
		SSL_free(server);
		SSL_free(client);
		pconn_close_after_flush(c);
		return;
	}
	c->cbev = tc;
	struct bufferevent *tu = bufferevent_openssl_filter_new(
		c->e->base, c->ubev, client, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (!tu) {
		SSL_free(client);
		pconn_close_after_flush(c);
		return;
	}
	c->ubev = tu;
	bufferevent_openssl_set_allow_dirty_shutdown(tc, 1);
	bufferevent_openssl_set_allow_dirty_shutdown(tu, 1);
	bufferevent_setcb(c->cbev, pconn_client_read, pconn_client_write, pconn_client_event, c);
	bufferevent_setwatermark(c->cbev, EV_READ, 0, EGRESS_BUFFER_MAX);
	bufferevent_setwatermark(c->cbev, EV_WRITE, EGRESS_BUFFER_MAX / 2, 0);
	bufferevent_setcb(c->ubev, pconn_upstream_read, pconn_upstream_write, pconn_upstream_event, c);
	bufferevent_setwatermark(c->ubev, EV_READ, 0, EGRESS_BUFFER_MAX);
	bufferevent_setwatermark(c->ubev, EV_WRITE, EGRESS_BUFFER_MAX / 2, 0);
	struct timeval idle = { EGRESS_IDLE_TIMEOUT_S, 0 };
	bufferevent_set_timeouts(c->cbev, &idle, &idle);
	bufferevent_set_timeouts(c->ubev, &idle, &idle);
	bufferevent_enable(c->ubev, EV_READ | EV_WRITE);
	bufferevent_enable(c->cbev, EV_READ | EV_WRITE);

	c->status = 200;
	json_t *j = pconn_entry(c, "request");
	json_object_set_new(j, "inspected", json_true());
	egress_audit(c->e, j);
	egress_emit(c->e, "egress.allowed", j);
	json_decref(j);

	c->tls = true;
	snprintf(c->tls_host, sizeof(c->tls_host), "%s", c->host);
	c->tls_port = c->req.port;
	pconn_reset_request(c);
	c->state = C_HEAD;
	pconn_arm_head_timer(c);
}

/*
 * A plain CONNECT is established: answer 200, then wait for the client's
 * first record, which must be a TLS ClientHello naming the CONNECT host
 * (sni.h says why); then hand both sockets to a splice tunnel
 * (engine_tunnel.c) and this connection object is done.
 */
void pconn_start_tunnel(struct pconn *c)
{
	static const char ok[] = "HTTP/1.1 200 Connection Established\r\n\r\n";
	/* 39 bytes on a connection that has sent nothing yet: a short write
	 * would be a broken socket. */
	if (write(bufferevent_getfd(c->cbev), ok, sizeof(ok) - 1) != (ssize_t)(sizeof(ok) - 1)) {
		pconn_close_after_flush(c);
		return;
	}
	c->state = C_HELLO;
	pconn_arm_head_timer(c);
	bufferevent_enable(c->cbev, EV_READ);
	pconn_tunnel_hello(c);
}

/* The tunnel is not opened: say why in the audit log and the events, and
 * close (the client already has its 200, so there is no answer to give). */
void pconn_tunnel_refused(struct pconn *c, const char *why)
{
	c->status = 403;
	json_t *j = pconn_entry(c, "blocked");
	json_object_set_new(j, "blocked_reason", json_string(why));
	egress_audit(c->e, j);
	egress_emit(c->e, "egress.blocked", j);
	json_decref(j);
	c->e->stats.blocked++;
	pconn_close(c);
}

void pconn_tunnel_hello(struct pconn *c)
{
	struct evbuffer *cin = bufferevent_get_input(c->cbev);
	size_t cn = evbuffer_get_length(cin);
	if (cn == 0)
		return;
	size_t take = cn < SNI_MAX_RECORD ? cn : SNI_MAX_RECORD;
	const uint8_t *p = evbuffer_pullup(cin, (ssize_t)take);
	char name[256];
	enum sni_result sr = sni_parse(p, take, name, sizeof(name));
	if (sr == SNI_MORE)
		return; /* the head timer bounds the wait */
	char why[400];
	if (sr != SNI_FOUND) {
		snprintf(why, sizeof(why), "a tunnel to %s must start with a TLS ClientHello naming it; "
			 "it started with %s", c->host, sni_result_name(sr));
		pconn_tunnel_refused(c, why);
		return;
	}
	if (strcmp(name, c->host) != 0) {
		/* Domain fronting: the tunnel was allowed for one name and the
		 * TLS inside asks the server for another. */
		snprintf(why, sizeof(why), "the TLS ClientHello names %s, not the CONNECT host %s",
			 name, c->host);
		pconn_tunnel_refused(c, why);
		return;
	}
	evtimer_del(c->timer);
	int cfd = fcntl(bufferevent_getfd(c->cbev), F_DUPFD_CLOEXEC, 0);
	int ufd = fcntl(bufferevent_getfd(c->ubev), F_DUPFD_CLOEXEC, 0);
	if (cfd < 0 || ufd < 0) {
		if (cfd >= 0)
			close(cfd);
		if (ufd >= 0)
			close(ufd);
		pconn_close_after_flush(c);
		return;
	}
	struct evbuffer *uin = bufferevent_get_input(c->ubev);
	size_t un = evbuffer_get_length(uin);
	const void *cp = evbuffer_pullup(cin, -1);
	const void *up = un ? evbuffer_pullup(uin, -1) : NULL;
	c->status = 200;
	/* One line when the tunnel opens (the supervisor may die before it
	 * closes), another when it closes, with what it carried. */
	json_t *open = pconn_entry(c, "tunnel_open");
	json_object_set_new(open, "sni", json_string(name));
	egress_audit(c->e, open);
	json_decref(open);
	json_t *entry = pconn_entry(c, "request");
	egress_emit(c->e, "egress.allowed", entry);
	struct cdn_err err = { 0 };
	(void)egress_tunnel_start(c->e, cfd, ufd, cp, evbuffer_get_length(cin), up, un, entry, &err);
	pconn_close(c);
}

/* The upstream connection is there (new, or kept from the last request). */
void pconn_upstream_ready(struct pconn *c)
{
	struct timeval idle = { c->req.form == HTTP_TARGET_AUTHORITY
					? EGRESS_TUNNEL_IDLE_TIMEOUT_S
					: EGRESS_IDLE_TIMEOUT_S,
				0 };
	bufferevent_set_timeouts(c->ubev, &idle, &idle);
	bufferevent_enable(c->ubev, EV_READ);
	c->e->stats.allowed++;
	if (c->req.form == HTTP_TARGET_AUTHORITY && c->tls_inspect) {
		pconn_start_tls(c);
	} else if (c->req.form == HTTP_TARGET_AUTHORITY) {
		pconn_start_tunnel(c);
	} else {
		seal_request_head(c);
		send_request_head(c);
		c->state = C_BODY;
		c->body_left = c->req.body == HTTP_BODY_LENGTH ? c->req.content_length : 0;
		http_chunked_init(&c->chunk);
		c->body_done = c->req.body == HTTP_BODY_NONE ||
			       (c->req.body == HTTP_BODY_LENGTH && c->body_left == 0);
		if (c->req.expect_continue && !c->body_done) {
			evbuffer_add_printf(bufferevent_get_output(c->cbev),
					    "HTTP/1.1 100 Continue\r\n\r\n");
			egress_bev_kick(c->cbev);
		}
		bufferevent_enable(c->cbev, EV_READ);
		pconn_pump_body(c);
	}
}

void pconn_upstream_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	struct pconn *c = arg;
	GUARD_IN(c);
	if (what & BEV_EVENT_CONNECTED) {
		/* A TCP connect we started; a TLS filter's finished handshake
		 * reports CONNECTED too, and means nothing new here. */
		if (c->state == C_CONNECTING) {
			int one = 1;
			setsockopt(bufferevent_getfd(c->ubev), IPPROTO_TCP, TCP_NODELAY, &one,
				   sizeof(one));
			/* the connect turned the write event on; egress_bev_kick() runs it */
			bufferevent_disable(c->ubev, EV_WRITE);
			pconn_upstream_ready(c);
		}
	} else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
		if (c->state == C_CONNECTING) {
			pconn_connect_next(c);
		} else if (c->state == C_RESPONSE && c->res_head_done && c->res.body == HTTP_BODY_CLOSE &&
			   (what & BEV_EVENT_EOF)) {
			pump_response(c);
			if (c->seal.n)
				unseal_response(c, bufferevent_get_input(c->ubev), 0, true);
			c->res_left = 0;
			json_t *j = pconn_entry(c, "request");
			egress_audit(c->e, j);
			/* A body that ends with the connection is an exchange like
			 * any other: the run's events count it too. */
			egress_emit(c->e, "egress.allowed", j);
			json_decref(j);
			pconn_close_after_flush(c);
		} else {
			bool sent = c->res_head_done;
			c->status = sent ? c->status : 502;
			char why[200];
			snprintf(why, sizeof(why), "%s",
				 what & BEV_EVENT_TIMEOUT ? "upstream timed out"
							  : "the upstream server closed the connection");
			unsigned long tls_err = c->tls ? bufferevent_get_openssl_error(c->ubev) : 0;
			if (tls_err) {
				char e[160];
				ERR_error_string_n(tls_err, e, sizeof(e));
				snprintf(why, sizeof(why), "upstream TLS: %s", e);
			}
			json_t *j = pconn_entry(c, "error");
			json_object_set_new(j, "blocked_reason", json_string(why));
			if (c->tls)
				json_object_set_new(j, "hostname", json_string(c->tls_host));
			egress_audit(c->e, j);
			json_decref(j);
			if (c->tls && c->state == C_HEAD) {
				/* No request yet (the upstream handshake failed while
				 * the client's ran): answer its first request. */
				snprintf(c->up_error, sizeof(c->up_error), "%s", why);
				bufferevent_free(c->ubev);
				c->ubev = NULL;
				GUARD_OUT(c);
				return;
			}
			if (!sent && c->state != C_CLOSING)
				pconn_respond(c, 502, "Bad Gateway", "upstream", why, 0);
			pconn_close_after_flush(c);
		}
	}
	GUARD_OUT(c);
}

/* ----------------------------------------------------------- request body */

static void emit_body(struct pconn *c, const char *p, size_t n)
{
	if (n == 0)
		return;
	struct evbuffer *out = bufferevent_get_output(c->ubev);
	if (c->req.body == HTTP_BODY_CHUNKED) {
		evbuffer_add_printf(out, "%zx\r\n", n);
		evbuffer_add(out, p, n);
		evbuffer_add(out, "\r\n", 2);
	} else {
		evbuffer_add(out, p, n);
	}
}

/* Releases held bytes, keeping the last `keep` until more is scanned. */
static void release_hold(struct pconn *c, size_t keep)
{
	size_t have = evbuffer_get_length(c->hold);
	if (have <= keep)
		return;
	size_t n = have - keep;
	const char *p = (const char *)evbuffer_pullup(c->hold, (ssize_t)n);
	emit_body(c, p, n);
	evbuffer_drain(c->hold, n);
}

static bool body_data(struct pconn *c, const char *p, size_t n)
{
	size_t before = c->insp.n_findings, before_dec = c->insp_dec.n_findings;
	inspect_feed(&c->insp, p, n);
	char *dec = malloc(n + 2);
	if (!dec) {
		pconn_close_after_flush(c); /* out of memory: not forwarded uninspected */
		return false;
	}
	inspect_feed(&c->insp_dec, dec, inspect_pct_feed(&c->pct, p, n, dec));
	free(dec);
	json_t *names = pconn_leaks(c, &c->insp_dec, before_dec, pconn_leaks(c, &c->insp, before, NULL));
	if (names) {
		json_t *extra = json_object();
		json_object_set_new(extra, "credential_patterns", names);
		if (pconn_block(c, 403, "Forbidden", "credential", "credential_leak", extra,
			  "the request body carries a credential"))
			return false;
	}
	evbuffer_add(c->hold, p, n);
	size_t keep = INSPECT_OVERLAP;
	if (c->seal.n) {
		/* Every placeholder that ends in these bytes lies in the hold:
		 * it keeps the longest needle's length. */
		size_t len = evbuffer_get_length(c->hold);
		char *h = (char *)evbuffer_pullup(c->hold, (ssize_t)len);
		if (h)
			egress_seal_apply(c->e, &c->seal, true, h, len);
		if (c->seal.max_len > keep)
			keep = c->seal.max_len;
	}
	release_hold(c, keep);
	return true;
}

struct chunk_ctx {
	struct pconn *c;
	bool ok;
};

static void chunk_data(void *ctx, const char *p, size_t n)
{
	struct chunk_ctx *cc = ctx;
	if (cc->ok)
		cc->ok = body_data(cc->c, p, n);
}

void pconn_pump_body(struct pconn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->cbev);
	while (!c->body_done && c->state == C_BODY) {
		size_t avail = evbuffer_get_length(in);
		if (avail == 0)
			break;
		if (evbuffer_get_length(bufferevent_get_output(c->ubev)) > EGRESS_BUFFER_MAX) {
			bufferevent_disable(c->cbev, EV_READ); /* resumed by pconn_upstream_write */
			return;
		}
		struct evbuffer_iovec v;
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		size_t n = v.iov_len;
		if (c->req.body == HTTP_BODY_LENGTH) {
			if (n > c->body_left)
				n = (size_t)c->body_left;
			if (!body_data(c, v.iov_base, n))
				return;
			c->body_left -= n;
			if (c->body_left == 0)
				c->body_done = true;
		} else {
			struct cdn_err err = { 0 };
			struct chunk_ctx cc = { c, true };
			long used = http_chunked_feed(&c->chunk, v.iov_base, n, chunk_data, &cc, &err);
			if (!cc.ok)
				return;
			if (used < 0) {
				/* A body we cannot frame cannot be forwarded, not even
				 * in audit-only mode: pconn_block() answers and closes. */
				c->force_block = true;
				pconn_block(c, 400, "Bad Request", "malformed", "blocked", NULL,
				      "request body: %s", err.msg);
				return;
			}
			n = (size_t)used;
			if (c->chunk.done)
				c->body_done = true;
		}
		c->req_size += n;
		evbuffer_drain(in, n);
	}
	if (c->state == C_BODY)
		egress_bev_kick(c->ubev); /* what the loop released so far */
	if (c->body_done && c->state == C_BODY) {
		release_hold(c, 0);
		if (c->req.body == HTTP_BODY_CHUNKED)
			evbuffer_add(bufferevent_get_output(c->ubev), "0\r\n\r\n", 5);
		c->state = C_RESPONSE;
		c->res_head_done = false;
		egress_bev_kick(c->ubev);
		if (evbuffer_get_length(bufferevent_get_input(c->ubev)))
			pump_response(c);
	}
}

void pconn_upstream_write(struct bufferevent *bev, void *arg)
{
	struct pconn *c = arg;
	GUARD_IN(c);
	egress_bev_drained(bev);
	if (c->state == C_BODY) {
		bufferevent_enable(c->cbev, EV_READ);
		pconn_pump_body(c);
	}
	GUARD_OUT(c);
}

/* --------------------------------------------------------------- response */

static void finish_exchange(struct pconn *c)
{
	if (c->e->on_audit || c->e->on_event) {
		json_t *j = pconn_entry(c, "request");
		egress_audit(c->e, j);
		egress_emit(c->e, "egress.allowed", j);
		json_decref(j);
	}
	c->served++;
	bool keep = c->req.keep_alive && c->res_keep_alive;
	if (!keep) {
		pconn_close_after_flush(c);
		return;
	}
	pconn_reset_request(c);
	c->state = C_HEAD;
	bufferevent_enable(c->cbev, EV_READ);
	pconn_arm_head_timer(c);
	if (evbuffer_get_length(bufferevent_get_input(c->cbev)))
		pconn_process_head(c);
}

static void forward_response_head(struct pconn *c, const char *head)
{
	struct evbuffer *out = bufferevent_get_output(c->cbev);
	const struct http_response *r = &c->res;
	char status[16];
	int sl = snprintf(status, sizeof(status), "HTTP/1.1 %03d ", r->status);
	evbuffer_add(out, status, (size_t)sl);
	evbuffer_add(out, r->reason, r->reason_len);
	evbuffer_add(out, "\r\n", 2);
	for (size_t i = 0; i < r->n_fields; i++) {
		const struct http_field *f = &r->fields[i];
		/* Transfer-Encoding: chunked passes through with the raw body. */
		if (http_is_hop_by_hop(f->name, f->name_len) &&
		    !(f->name_len == 17 && strncasecmp(f->name, "transfer-encoding", 17) == 0))
			continue;
		evbuffer_add(out, f->name, f->name_len);
		evbuffer_add(out, ": ", 2);
		evbuffer_add(out, f->value, f->value_len);
		evbuffer_add(out, "\r\n", 2);
	}
	(void)head;
	if (!c->res_keep_alive || !c->req.keep_alive)
		evbuffer_add(out, "Connection: close\r\n\r\n", 21);
	else
		evbuffer_add(out, "\r\n", 2);
}

static void pump_response_once(struct pconn *c);

/* Moves n response bytes to the client through the hold, swapping sealed
 * values back to placeholders; `all` releases the hold too (the body is
 * done or the connection ends). */
static void unseal_response(struct pconn *c, struct evbuffer *in, size_t n, bool all)
{
	struct evbuffer *out = bufferevent_get_output(c->cbev);
	evbuffer_remove_buffer(in, c->rhold, n);
	size_t len = evbuffer_get_length(c->rhold);
	char *h = len ? (char *)evbuffer_pullup(c->rhold, (ssize_t)len) : NULL;
	if (h)
		egress_seal_apply(c->e, &c->seal, false, h, len);
	size_t keep = all ? 0 : c->seal.max_len;
	if (len > keep)
		evbuffer_remove_buffer(c->rhold, out, len - keep);
}

static void pump_response(struct pconn *c)
{
	pump_response_once(c);
	if (c->state == C_RESPONSE)
		egress_bev_kick(c->cbev); /* a body still streaming */
}

static void pump_response_once(struct pconn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->ubev);
	struct evbuffer *out = bufferevent_get_output(c->cbev);
	while (c->state == C_RESPONSE) {
		if (!c->res_head_done) {
			size_t len = evbuffer_get_length(in);
			if (len == 0)
				return;
			size_t take = len < HTTP_MAX_HEAD + 4 ? len : HTTP_MAX_HEAD + 4;
			const char *data = (const char *)evbuffer_pullup(in, (ssize_t)take);
			struct cdn_err err = { 0 };
			int r = http_parse_response(data, take, c->req.method, &c->res, &err);
			if (r == 0)
				return;
			if (r < 0) {
				c->status = 502;
				json_t *j = pconn_entry(c, "error");
				json_object_set_new(j, "blocked_reason", json_string(err.msg));
				egress_audit(c->e, j);
				json_decref(j);
				pconn_respond(c, 502, "Bad Gateway", "upstream", "malformed response", 0);
				pconn_close_after_flush(c);
				return;
			}
			c->res_keep_alive = c->res.keep_alive;
			/* The value goes back to a placeholder before the agent can
			 * see it: an upstream may echo what it was sent. */
			for (size_t i = 0; c->seal.n && i < c->res.n_fields; i++)
				egress_seal_apply(c->e, &c->seal, false, (char *)c->res.fields[i].value,
						  c->res.fields[i].value_len);
			forward_response_head(c, data);
			c->res_size += (uint64_t)r;
			evbuffer_drain(in, (size_t)r);
			if (c->res.status >= 100 && c->res.status < 200) {
				continue; /* an interim response: the final one follows */
			}
			c->status = c->res.status;
			c->res_head_done = true;
			c->res_left = c->res.content_length;
			http_chunked_init(&c->res_chunk);
			if (c->res.body == HTTP_BODY_NONE ||
			    (c->res.body == HTTP_BODY_LENGTH && c->res_left == 0)) {
				egress_bev_kick(c->cbev);
				finish_exchange(c);
				return;
			}
		}
		size_t avail = evbuffer_get_length(in);
		if (avail == 0)
			return;
		if (evbuffer_get_length(out) > EGRESS_BUFFER_MAX) {
			bufferevent_disable(c->ubev, EV_READ); /* resumed by pconn_client_write */
			return;
		}
		size_t n = avail;
		bool done = false;
		if (c->res.body == HTTP_BODY_LENGTH) {
			if (n >= c->res_left) {
				n = (size_t)c->res_left;
				done = true;
			}
			c->res_left -= n;
		} else if (c->res.body == HTTP_BODY_CHUNKED) {
			struct evbuffer_iovec v;
			if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
				return;
			struct cdn_err err = { 0 };
			long used = http_chunked_feed(&c->res_chunk, v.iov_base, v.iov_len, NULL, NULL, &err);
			if (used < 0) {
				json_t *j = pconn_entry(c, "error");
				json_object_set_new(j, "blocked_reason", json_string(err.msg));
				egress_audit(c->e, j);
				json_decref(j);
				pconn_close_after_flush(c);
				return;
			}
			n = (size_t)used;
			done = c->res_chunk.done;
		}
		if (c->seal.n)
			unseal_response(c, in, n, done);
		else
			evbuffer_remove_buffer(in, out, n);
		c->res_size += n;
		if (done) {
			egress_bev_kick(c->cbev);
			finish_exchange(c);
			return;
		}
	}
}

void pconn_upstream_read(struct bufferevent *bev, void *arg)
{
	(void)bev;
	struct pconn *c = arg;
	GUARD_IN(c);
	if (c->state == C_RESPONSE) {
		pump_response(c);
	} else if (c->state == C_BODY) {
		/* An early response (e.g. 413) while we still send the body:
		 * read it when the body is done. */
		if (evbuffer_get_length(bufferevent_get_input(c->ubev)) > EGRESS_BUFFER_MAX)
			bufferevent_disable(c->ubev, EV_READ);
	}
	GUARD_OUT(c);
}

/* ---------------------------------------------------------------- engine */

const char **egress_inspected_names(const struct egress_policy *p, size_t *n)
{
	*n = 0;
	for (size_t i = 0; i < p->n_rules; i++)
		*n += p->rules[i].inspect;
	if (*n == 0)
		return NULL;
	const char **names = calloc(*n, sizeof(char *));
	if (!names) {
		*n = 0;
		return NULL;
	}
	size_t k = 0;
	for (size_t i = 0; i < p->n_rules; i++)
		if (p->rules[i].inspect)
			names[k++] = p->rules[i].name;
	return names;
}

int egress_engine_new(struct event_base *base, const struct egress_engine_config *cfg,
		      struct egress_engine **out, struct cdn_err *err)
{
	*out = NULL;
	struct egress_engine *e = calloc(1, sizeof(*e));
	if (!e) {
		egress_policy_free(cfg->policy);
		egress_ca_free(cfg->ca);
		return cdn_err_set(err, ENOMEM, "egress engine");
	}
	LIST_INIT(&e->conns);
	LIST_INIT(&e->approvals);
	LIST_INIT(&e->dns_tcps);
	LIST_INIT(&e->tunnels);
	e->base = base;
	e->dns_udp_fd = -1;
	e->ca = cfg->ca;
	e->on_event = cfg->on_event;
	e->on_audit = cfg->on_audit;
	e->ctx = cfg->ctx;
	e->run_id = cfg->run_id ? strdup(cfg->run_id) : NULL;
	/* The reference owns the policy from here: egress_engine_free drops
	 * it on every way out. */
	e->policy = calloc(1, sizeof(*e->policy));
	if (e->policy) {
		e->policy->p = cfg->policy;
		e->policy->refs = 1;
	} else {
		egress_policy_free(cfg->policy);
	}
	e->rl = ratelimit_new();
	int r = 0;
	if (!e->policy || !e->rl || (cfg->run_id && !e->run_id)) {
		r = cdn_err_set(err, ENOMEM, "egress engine");
		goto out;
	}
	if ((r = inspector_new(cfg->secrets, cfg->n_secrets, &e->insp, err)) < 0 ||
	    (r = egress_seal_init(e, cfg->sealed, cfg->n_sealed, err)) < 0)
		goto out;
	if ((r = egress_secrets_init(&e->secrets, cfg->secrets, cfg->n_secrets, cfg->sealed,
				     cfg->n_sealed, cfg->scopes, cfg->n_scopes, err)) < 0)
		goto out;
	/* The resolver: the host's resolv.conf, no search domains (a name is
	 * what the policy allowed, not a prefix of something else). Both
	 * files are read now: the network part cannot open files later. */
	e->dns = evdns_base_new(base, 0);
	if (!e->dns) {
		r = cdn_err_set(err, ENOMEM, "egress: resolver");
		goto out;
	}
	int dr = evdns_base_resolv_conf_parse(e->dns, DNS_OPTION_NAMESERVERS | DNS_OPTION_MISC,
					      "/etc/resolv.conf");
	if (dr != 0 && dr != 6) /* 6: no nameservers; the hosts file may still answer */
		fprintf(stderr, "cordon: egress: /etc/resolv.conf unusable (%d)\n", dr);
	if (evdns_base_load_hosts(e->dns, cfg->hosts_file ? cfg->hosts_file : "/etc/hosts") != 0 &&
	    cfg->hosts_file) {
		r = cdn_err_set(err, ENOENT, "egress: hosts file %s", cfg->hosts_file);
		goto out;
	}
	if (cfg->upstream_ca_file && !(e->upstream_ca = strdup(cfg->upstream_ca_file))) {
		r = cdn_err_set(err, ENOMEM, "egress engine");
		goto out;
	}
	if (e->ca && (r = egress_tls_client_init(e->upstream_ca, err)) < 0)
		goto out;
out:
	if (r < 0) {
		egress_engine_free(e);
		return r;
	}
	*out = e;
	return 0;
}

int egress_engine_attach(struct egress_engine *e, int proxy_fd, int dns_udp_fd, int dns_tcp_fd,
			 struct cdn_err *err)
{
	if (proxy_fd >= 0) {
		evutil_make_socket_nonblocking(proxy_fd);
		e->proxy_listener = evconnlistener_new(e->base, egress_proxy_accept, e,
						       LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
						       0 /* listening already */, proxy_fd);
		if (!e->proxy_listener) {
			close(proxy_fd);
			if (dns_udp_fd >= 0)
				close(dns_udp_fd);
			if (dns_tcp_fd >= 0)
				close(dns_tcp_fd);
			return cdn_err_set(err, ENOMEM, "egress: proxy listener");
		}
	}
	return egress_dns_attach(e, dns_udp_fd, dns_tcp_fd, err);
}

void egress_engine_set_policy(struct egress_engine *e, struct egress_policy *p)
{
	struct policy_ref *ref = calloc(1, sizeof(*ref));
	if (!ref) {
		/* Keep enforcing the old one rather than none. */
		egress_policy_free(p);
		return;
	}
	ref->p = p;
	ref->refs = 1;
	egress_policy_put(e->policy);
	e->policy = ref;
	json_t *j = json_object();
	json_object_set_new(j, "event_type", json_string("policy"));
	json_object_set_new(j, "blocked_reason", json_string("policy reloaded"));
	egress_audit(e, j);
	json_decref(j);
}

void egress_engine_stats(const struct egress_engine *e, struct egress_stats *st)
{
	*st = e->stats;
}

void egress_engine_free(struct egress_engine *e)
{
	if (!e)
		return;
	egress_approvals_deny_all(e, "cordon is shutting down");
	struct pconn *c;
	while ((c = LIST_FIRST(&e->conns))) {
		c->busy = 0;
		pconn_free(c);
	}
	egress_tunnels_close(e);
	egress_dns_detach(e);
	if (e->proxy_listener)
		evconnlistener_free(e->proxy_listener);
	if (e->dns)
		evdns_base_free(e->dns, 1);
	inspector_free(e->insp);
	egress_seal_free(e);
	egress_secrets_free(&e->secrets);
	ratelimit_free(e->rl);
	egress_ca_free(e->ca);
	free(e->upstream_ca);
	egress_policy_put(e->policy);
	free(e->run_id);
	free(e);
}
