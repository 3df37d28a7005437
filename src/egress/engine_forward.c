/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Stage 7, forward: a decided request on the wire and its response back.
 *
 * The head goes out in origin-form without hop-by-hop fields, sealed
 * secrets swapped in. Content inspection covers the (de-chunked) body as
 * it streams: the last INSPECT_OVERLAP bytes are held back until the bytes
 * after them are scanned, so a credential is never forwarded, even one
 * split across reads. Bodies are re-framed on the way out (chunked stays
 * chunked, re-encoded by us), so the upstream never sees the client's
 * framing: one less place for request smuggling. The response streams
 * back with sealed values swapped back to placeholders.
 */
#define _GNU_SOURCE
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "base/cleanup.h"
#include "egress/engine_internal.h"

static void pump_response(struct pconn *c);
static void unseal_response(struct pconn *c, struct evbuffer *in, size_t n, bool all);

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
		egress_seal_apply(c->e, &c->seal, SEAL_AT_QUERY, (char *)r->path, r->path_len);
	for (size_t i = 0; i < r->n_fields; i++) {
		struct http_field *f = &r->fields[i];
		if ((f->name_len == 4 && strncasecmp(f->name, "host", 4) == 0) || f->value < lo ||
		    f->value + f->value_len > hi)
			continue;
		unsigned at = egress_credential_header(f->name, f->name_len) ? SEAL_AT_CREDENTIAL
									     : SEAL_AT_HEADER;
		egress_seal_apply(c->e, &c->seal, at, (char *)f->value, f->value_len);
		if (f->name_len == 13 && strncasecmp(f->name, "authorization", 13) == 0)
			egress_seal_apply_basic(c->e, &c->seal, at, (char *)f->value, f->value_len);
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
		    (c->seal.n && f->name_len == 15 &&
		     strncasecmp(f->name, "accept-encoding", 15) == 0) ||
		    connection_lists(r, f->name, f->name_len))
			continue;
		evbuffer_add(out, f->name, f->name_len);
		evbuffer_add(out, ": ", 2);
		evbuffer_add(out, f->value, f->value_len);
		evbuffer_add(out, "\r\n", 2);
	}
	/* A sealed scope answers unencoded: the value it may echo must be
	 * found to be swapped back (engine_seal.c). */
	if (c->seal.n)
		evbuffer_add_printf(out, "Accept-Encoding: identity\r\n");
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
			if (c->seal.n && c->state == C_RESPONSE)
				unseal_response(c, bufferevent_get_input(c->ubev), 0, true);
			if (c->state == C_CLOSING) {
				GUARD_OUT(c); /* cut: its line is written */
				return;
			}
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
			egress_seal_apply(c->e, &c->seal, SEAL_AT_BODY, h, len);
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

/*
 * The response of a sealed scope (engine_seal.c): what the upstream may
 * echo of a value goes back to the placeholder before the agent sees it.
 * The body's bytes (de-chunked) gather in rhold: the swap back runs over
 * them, the bytes no later swap can change are scanned for the values in
 * every other encoding, and only bytes INSPECT_OVERLAP behind the scan are
 * released, so a match is found before any of its bytes went out. A
 * chunked body is re-framed: each release is a chunk of ours.
 */
/* A sealed scope's response that is not passed on: its audit line and
 * event (never the value's bytes: only the secret's name and why). */
static void sealed_refused(struct pconn *c, const char *why)
{
	json_t *j = pconn_entry(c, "error");
	json_object_set_new(j, "status_code", json_integer(502));
	json_object_set_new(j, "blocked_reason", json_string(why));
	egress_audit(c->e, j);
	egress_emit(c->e, "egress.blocked", j);
	json_decref(j);
	c->e->stats.blocked++;
}

static bool sealed_found(struct pconn *c, const char *where)
{
	for (size_t i = 0; i < c->res_insp.n_findings; i++) {
		const struct inspect_finding *f = &c->res_insp.findings[i];
		if (!f->is_secret)
			continue;
		char why[256];
		snprintf(why, sizeof(why),
			 "the response from %s holds sealed secret %s in a form that cannot be "
			 "swapped back (%s): cut",
			 pconn_host(c), f->name, where);
		sealed_refused(c, why);
		return true;
	}
	return false;
}

static void unseal_release(struct pconn *c, bool all)
{
	struct evbuffer *out = bufferevent_get_output(c->cbev);
	size_t len = evbuffer_get_length(c->rhold);
	char *h = len ? (char *)evbuffer_pullup(c->rhold, (ssize_t)len) : NULL;
	if (h)
		egress_seal_apply(c->e, &c->seal, SEAL_BACK, h, len);
	/* A value of max_len bytes may still be completed by the next read:
	 * the bytes before the last max_len - 1 are final. */
	size_t final = all ? len
			   : len >= c->seal.max_len ? len - (c->seal.max_len ? c->seal.max_len - 1 : 0)
						    : 0;
	if (final > c->rfed && c->e->seal_insp) {
		size_t before = c->res_insp.n_findings;
		inspect_feed(&c->res_insp, h + c->rfed, final - c->rfed);
		if (c->res_insp.n_findings > before && sealed_found(c, "body")) {
			evbuffer_drain(c->rhold, len);
			c->rfed = 0;
			pconn_close_after_flush(c); /* the agent gets a cut body */
			return;
		}
	}
	if (final > c->rfed)
		c->rfed = final;
	size_t go = all ? len : c->rfed > INSPECT_OVERLAP ? c->rfed - INSPECT_OVERLAP : 0;
	if (go) {
		if (c->res_reframe)
			evbuffer_add_printf(out, "%zx\r\n", go);
		evbuffer_remove_buffer(c->rhold, out, go);
		if (c->res_reframe)
			evbuffer_add(out, "\r\n", 2);
		c->rfed -= go < c->rfed ? go : c->rfed;
	}
	if (all && c->res_reframe)
		evbuffer_add(out, "0\r\n\r\n", 5);
}

/* n bytes of a body in plain framing (Content-Length, or to the close). */
static void unseal_response(struct pconn *c, struct evbuffer *in, size_t n, bool all)
{
	evbuffer_remove_buffer(in, c->rhold, n);
	unseal_release(c, all);
}

static void rhold_add(void *ctx, const char *p, size_t n)
{
	struct pconn *c = ctx;
	evbuffer_add(c->rhold, p, n);
}

/* One part of a response head (the reason phrase, a header's name or
 * value), scanned for a sealed value the swap left: true when found (and
 * the refusal written). */
static bool head_part_holds_value(struct pconn *c, const char *p, size_t n)
{
	if (!c->e->seal_insp)
		return false;
	inspect_stream_init(&c->res_insp, c->e->seal_insp);
	c->res_insp.secrets_only = true;
	inspect_feed(&c->res_insp, p, n);
	return sealed_found(c, "the response's head");
}

/* The head of a sealed scope's response: refused when encoded; its values
 * swapped back (Basic credentials too) and scanned. False when refused. */
static bool unseal_head(struct pconn *c)
{
	for (size_t i = 0; i < c->res.n_fields; i++) {
		struct http_field *f = &c->res.fields[i];
		if (f->name_len == 16 && strncasecmp(f->name, "content-encoding", 16) == 0 &&
		    !(f->value_len == 8 && strncasecmp(f->value, "identity", 8) == 0)) {
			/* Only a known coding is named: the upstream's bytes could
			 * hold part of the secret, which an audit line must never
			 * carry. */
			static const char *const known[] = { "gzip", "x-gzip", "deflate", "br",
							      "compress", "zstd" };
			const char *coding = "an unknown coding";
			for (size_t k = 0; k < CDN_ARRAY_SIZE(known); k++)
				if (f->value_len == strlen(known[k]) &&
				    strncasecmp(f->value, known[k], f->value_len) == 0)
					coding = known[k];
			char why[256];
			snprintf(why, sizeof(why),
				 "the response from %s is encoded (Content-Encoding: %s) though "
				 "identity was asked for: a sealed secret's scope must answer "
				 "unencoded",
				 pconn_host(c), coding);
			sealed_refused(c, why);
			return false;
		}
		/* The name too: an upstream may name a header after what it was
		 * sent ("X-Seen-<key>"). */
		egress_seal_apply(c->e, &c->seal, SEAL_BACK, (char *)f->name, f->name_len);
		egress_seal_apply(c->e, &c->seal, SEAL_BACK, (char *)f->value, f->value_len);
		egress_seal_apply_basic(c->e, &c->seal, SEAL_BACK, (char *)f->value, f->value_len);
	}
	/* And the reason phrase ("401 invalid key <key>"). */
	egress_seal_apply(c->e, &c->seal, SEAL_BACK, (char *)c->res.reason, c->res.reason_len);
	/* Every part of the head on its own: no match across two parts. */
	if (head_part_holds_value(c, c->res.reason, c->res.reason_len))
		return false;
	for (size_t i = 0; i < c->res.n_fields; i++)
		if (head_part_holds_value(c, c->res.fields[i].name, c->res.fields[i].name_len) ||
		    head_part_holds_value(c, c->res.fields[i].value, c->res.fields[i].value_len))
			return false;
	inspect_stream_init(&c->res_insp, c->e->seal_insp);
	c->res_insp.secrets_only = true;
	c->rfed = 0;
	c->res_reframe = c->res.body == HTTP_BODY_CHUNKED;
	return true;
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
			if (c->seal.n && !unseal_head(c)) {
				pconn_respond(c, 502, "Bad Gateway", "sealed", "the response would "
					      "give the agent a sealed secret's value", 0);
				pconn_close_after_flush(c);
				return;
			}
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
			/* A sealed scope's chunks are taken apart here and the
			 * payload re-framed by unseal_release(). */
			long used = http_chunked_feed(&c->res_chunk, v.iov_base, v.iov_len,
						      c->seal.n ? rhold_add : NULL, c, &err);
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
		if (c->seal.n && c->res.body == HTTP_BODY_CHUNKED) {
			evbuffer_drain(in, n);
			unseal_release(c, done);
		} else if (c->seal.n) {
			unseal_response(c, in, n, done);
		} else {
			evbuffer_remove_buffer(in, out, n);
		}
		if (c->state == C_CLOSING)
			return; /* cut: it held a sealed value */
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
