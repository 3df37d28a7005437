/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A CONNECT the decision allowed, on the connection's side. Inspected:
 * the proxy answers 200, terminates the client's TLS with a certificate
 * from the run's CA, and speaks verified TLS to the upstream itself; the
 * requests inside then go through every stage like plain ones. Not
 * inspected: the proxy answers 200, and the tunnel's first record must be
 * a TLS ClientHello naming the CONNECT host (sni.h) before both sockets go
 * to a splice tunnel (engine_tunnel.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <fcntl.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "egress/engine_internal.h"
#include "egress/sni.h"
#include "egress/tls.h"

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
