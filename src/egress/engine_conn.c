/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The proxy's client connections (struct pconn, engine_internal.h): one
 * per connection the sandbox opens to 127.0.0.1:3128, on libevent
 * bufferevents. Accepting within EGRESS_MAX_CONNS, the client's events,
 * the head timer, the proxy's own short answers, and closing: after the
 * answer is written, with a linger for the client's FIN.
 *
 * Lifetime: every callback holds a guard on its connection (busy); a
 * connection closed while busy is freed when the last guard drops.
 */
#define _GNU_SOURCE
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "egress/engine_internal.h"

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
	c->rfed = 0;
	c->res_reframe = false;
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
