/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The DNS filter on the sandbox's 127.0.0.1:53, over UDP and TCP.
 *
 * A name the policy allows is resolved through the host's resolver and
 * answered; every other name gets NXDOMAIN without any query leaving the
 * host, so DNS cannot carry data out ("exfil-data.attacker.example" never
 * reaches attacker.example's nameserver). Query types other than A and
 * AAAA are refused (TXT, NULL and friends are the usual tunnel carriers).
 * Malformed packets are dropped. Every query is one audit line.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "egress/dns.h"
#include "egress/engine_internal.h"

#define DNS_MAX_PENDING 256 /* lookups in flight per engine */
#define DNS_TCP_IDLE_S 10
#define DNS_UDP_BATCH 64 /* datagrams handled per wake-up */

struct dns_job {
	struct egress_engine *e;
	struct dns_query q;
	uint8_t pkt[DNS_MAX_PACKET]; /* the query, which q.question points into */
	size_t pkt_len;
	/* where the answer goes: a UDP peer, or a TCP connection */
	struct sockaddr_storage peer;
	socklen_t peer_len;
	struct dns_tcp *tcp; /* NULL once that connection is gone */
	bool via_tcp;	     /* the answer never goes out over UDP then */
	uint64_t t_start;
};

struct dns_tcp {
	LIST_ENTRY(dns_tcp) link;
	struct egress_engine *e;
	struct bufferevent *bev;
	struct dns_job *job; /* one query at a time per connection */
	bool closing;
};

static void tcp_free(struct dns_tcp *t);

static void audit_query_extra(struct egress_engine *e, const struct dns_query *q,
			      const char *type, int rcode, const char *reason, uint64_t t_start,
			      json_t *patterns);

static void audit_query(struct egress_engine *e, const struct dns_query *q, const char *type,
			int rcode, const char *reason, uint64_t t_start)
{
	audit_query_extra(e, q, type, rcode, reason, t_start, NULL);
}

/* Takes patterns (credential names found, or NULL). */
static void audit_query_extra(struct egress_engine *e, const struct dns_query *q,
			      const char *type, int rcode, const char *reason, uint64_t t_start,
			      json_t *patterns)
{
	json_t *j = json_object();
	char method[16];
	snprintf(method, sizeof(method), "DNS-%s",
		 q->qtype == DNS_TYPE_A ? "A" : q->qtype == DNS_TYPE_AAAA ? "AAAA" : "OTHER");
	json_object_set_new(j, "event_type", json_string(type));
	json_object_set_new(j, "method", json_string(method));
	json_object_set_new(j, "hostname", json_string(q->name));
	json_object_set_new(j, "port", json_integer(53));
	json_object_set_new(j, "status_code", json_integer(rcode));
	json_object_set_new(j, "duration_ms", json_integer((json_int_t)(egress_now_ms() - t_start)));
	if (q->qtype != DNS_TYPE_A && q->qtype != DNS_TYPE_AAAA)
		json_object_set_new(j, "qtype", json_integer(q->qtype));
	if (reason)
		json_object_set_new(j, "blocked_reason", json_string(reason));
	if (patterns)
		json_object_set_new(j, "credential_patterns", patterns);
	egress_audit(e, j);
	if (strcmp(type, "request") != 0 && strcmp(type, "error") != 0)
		egress_emit(e, "egress.blocked", j);
	json_decref(j);
}

static void send_answer(struct dns_job *job, const uint8_t *resp, size_t len)
{
	struct egress_engine *e = job->e;
	if (job->tcp) {
		uint8_t hdr[2] = { (uint8_t)(len >> 8), (uint8_t)len };
		struct evbuffer *out = bufferevent_get_output(job->tcp->bev);
		evbuffer_add(out, hdr, 2);
		evbuffer_add(out, resp, len);
		struct dns_tcp *t = job->tcp;
		t->job = NULL;
		if (t->closing)
			tcp_free(t);
		else
			bufferevent_enable(t->bev, EV_READ);
	} else if (!job->via_tcp && e->dns_udp_fd >= 0) {
		(void)sendto(e->dns_udp_fd, resp, len, MSG_DONTWAIT,
			     (struct sockaddr *)&job->peer, job->peer_len);
	}
}

static void answer(struct dns_job *job, int rcode, const struct dns_answer *ans, size_t n)
{
	uint8_t resp[DNS_MAX_PACKET];
	/* Over UDP without EDNS a reply must fit in 512 bytes. */
	size_t cap = job->tcp ? sizeof(resp)
			      : (job->q.edns ? (job->q.edns_udp_size > 512 ? job->q.edns_udp_size : 512)
					     : 512);
	if (cap > sizeof(resp))
		cap = sizeof(resp);
	size_t len = dns_build_response(&job->q, rcode, ans, n, false, resp, cap);
	if (len == 0)
		len = dns_build_response(&job->q, rcode, NULL, 0, true, resp, cap);
	if (len)
		send_answer(job, resp, len);
}

static void resolved(int result, struct evutil_addrinfo *res, void *arg)
{
	struct dns_job *job = arg;
	struct egress_engine *e = job->e;
	if (result == EVUTIL_EAI_CANCEL) {
		if (res)
			evutil_freeaddrinfo(res);
		free(job);
		return;
	}
	e->dns_pending--;
	struct dns_answer ans[DNS_MAX_ANSWERS];
	size_t n = 0;
	for (struct evutil_addrinfo *ai = res; ai && n < DNS_MAX_ANSWERS; ai = ai->ai_next) {
		if (job->q.qtype == DNS_TYPE_A && ai->ai_family == AF_INET) {
			ans[n].family = AF_INET;
			ans[n].addr.v4 = ((struct sockaddr_in *)ai->ai_addr)->sin_addr;
		} else if (job->q.qtype == DNS_TYPE_AAAA && ai->ai_family == AF_INET6) {
			ans[n].family = AF_INET6;
			ans[n].addr.v6 = ((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
		} else {
			continue;
		}
		ans[n].ttl = EGRESS_DNS_TTL_MAX;
		/* Duplicates (one per socktype) say nothing new. Compared as
		 * their family's address: an IPv4 one fills 4 bytes of the
		 * union, and the rest is not part of it. */
		size_t len = ans[n].family == AF_INET ? sizeof(ans[n].addr.v4)
						      : sizeof(ans[n].addr.v6);
		bool dup = false;
		for (size_t i = 0; i < n; i++)
			if (ans[i].family == ans[n].family &&
			    memcmp(&ans[i].addr, &ans[n].addr, len) == 0)
				dup = true;
		if (!dup)
			n++;
	}
	if (res)
		evutil_freeaddrinfo(res);
	int rcode;
	if (result == 0 || result == EVUTIL_EAI_NODATA || result == EVUTIL_EAI_NONAME)
		rcode = (result == EVUTIL_EAI_NONAME && n == 0) ? DNS_RCODE_NXDOMAIN : DNS_RCODE_NOERROR;
	else
		rcode = DNS_RCODE_SERVFAIL;
	answer(job, rcode, ans, n);
	audit_query(e, &job->q, "request", rcode, NULL, job->t_start);
	free(job);
}

/* Decides one query; takes ownership of job. */
static void handle_query(struct dns_job *job)
{
	struct egress_engine *e = job->e;
	struct cdn_err err = { 0 };
	job->t_start = egress_now_ms();
	e->stats.dns_queries++;
	if (dns_parse_query(job->pkt, job->pkt_len, &job->q, &err) < 0) {
		struct dns_query anon;
		memset(&anon, 0, sizeof(anon));
		snprintf(anon.name, sizeof(anon.name), "-");
		char why[300];
		snprintf(why, sizeof(why), "malformed DNS query dropped: %s", err.msg);
		audit_query(e, &anon, "blocked", -1, why, job->t_start);
		e->stats.dns_blocked++;
		if (job->tcp) {
			job->tcp->job = NULL;
			job->tcp->closing = true;
			tcp_free(job->tcp);
		}
		free(job);
		return;
	}
	if (job->q.qclass != DNS_CLASS_IN ||
	    (job->q.qtype != DNS_TYPE_A && job->q.qtype != DNS_TYPE_AAAA)) {
		answer(job, DNS_RCODE_REFUSED, NULL, 0);
		audit_query(e, &job->q, "blocked", DNS_RCODE_REFUSED,
			    "only A and AAAA queries are answered", job->t_start);
		e->stats.dns_blocked++;
		free(job);
		return;
	}
	/* The policy's part (decide.h); this only carries it out. */
	const struct egress_run_facts run = { .insp = e->insp,
					      .secrets = &e->secrets,
					      .can_inspect = e->ca != NULL };
	struct egress_decision d;
	if (egress_decide_lookup(e->policy->p, &run, job->q.name, job->q.raw_name, e->rl,
				 egress_now_ms(), &d) == EGRESS_BLOCK) {
		const struct egress_verdict *v = &d.verdicts[0];
		json_t *names = NULL;
		if (v->stage == EGRESS_STAGE_LOOKUP_CREDENTIAL) {
			names = json_array();
			for (size_t i = 0; names && i < d.n_patterns; i++)
				json_array_append_new(names, json_string(d.patterns[i]));
		}
		answer(job, v->status, NULL, 0);
		audit_query_extra(e, &job->q, v->event_type, v->status, v->reason, job->t_start,
				  names);
		e->stats.dns_blocked++;
		free(job);
		return;
	}
	if (e->dns_pending >= DNS_MAX_PENDING) {
		answer(job, DNS_RCODE_SERVFAIL, NULL, 0);
		audit_query(e, &job->q, "error", DNS_RCODE_SERVFAIL, "too many lookups in flight",
			    job->t_start);
		free(job);
		return;
	}
	e->dns_pending++;
	struct evutil_addrinfo hints = { .ai_family = job->q.qtype == DNS_TYPE_A ? AF_INET : AF_INET6,
					 .ai_socktype = SOCK_STREAM };
	evdns_getaddrinfo(e->dns, d.host, NULL, &hints, resolved, job);
}

static void udp_readable(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct egress_engine *e = arg;
	for (int i = 0; i < DNS_UDP_BATCH; i++) {
		struct dns_job *job = calloc(1, sizeof(*job));
		if (!job)
			return;
		job->e = e;
		job->peer_len = sizeof(job->peer);
		ssize_t n = recvfrom(fd, job->pkt, sizeof(job->pkt), MSG_DONTWAIT | MSG_TRUNC,
				     (struct sockaddr *)&job->peer, &job->peer_len);
		if (n < 0) {
			free(job);
			return;
		}
		if ((size_t)n > sizeof(job->pkt))
			n = (ssize_t)sizeof(job->pkt) + 1; /* oversize: the parser refuses it */
		job->pkt_len = (size_t)n;
		handle_query(job);
	}
}

/* ---------------------------------------------------------------- TCP */

static void tcp_free(struct dns_tcp *t)
{
	if (t->job)
		return; /* freed when its lookup answers */
	LIST_REMOVE(t, link);
	bufferevent_free(t->bev);
	free(t);
}

static void tcp_read(struct bufferevent *bev, void *arg)
{
	struct dns_tcp *t = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	if (t->job)
		return;
	uint8_t hdr[2];
	if (evbuffer_copyout(in, hdr, 2) < 2)
		return;
	size_t len = ((size_t)hdr[0] << 8) | hdr[1];
	if (len == 0 || len > DNS_MAX_PACKET) {
		t->closing = true;
		tcp_free(t);
		return;
	}
	if (evbuffer_get_length(in) < 2 + len)
		return;
	struct dns_job *job = calloc(1, sizeof(*job));
	if (!job)
		return;
	job->e = t->e;
	job->tcp = t;
	job->via_tcp = true;
	evbuffer_drain(in, 2);
	evbuffer_remove(in, job->pkt, len);
	job->pkt_len = len;
	t->job = job;
	bufferevent_disable(bev, EV_READ);
	handle_query(job);
}

static void tcp_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	struct dns_tcp *t = arg;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
		t->closing = true;
		if (t->job) {
			/* The lookup still runs; its answer goes nowhere. */
			t->job->tcp = NULL;
			t->job = NULL;
		}
		tcp_free(t);
	}
}

static void tcp_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
		       void *arg)
{
	(void)l;
	(void)sa;
	(void)salen;
	struct egress_engine *e = arg;
	struct dns_tcp *t = calloc(1, sizeof(*t));
	if (!t) {
		close(fd);
		return;
	}
	t->e = e;
	t->bev = bufferevent_socket_new(e->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!t->bev) {
		close(fd);
		free(t);
		return;
	}
	LIST_INSERT_HEAD(&e->dns_tcps, t, link);
	bufferevent_setcb(t->bev, tcp_read, NULL, tcp_event, t);
	bufferevent_setwatermark(t->bev, EV_READ, 0, DNS_MAX_PACKET + 2);
	struct timeval idle = { DNS_TCP_IDLE_S, 0 };
	bufferevent_set_timeouts(t->bev, &idle, &idle);
	bufferevent_enable(t->bev, EV_READ | EV_WRITE);
}

int egress_dns_attach(struct egress_engine *e, int udp_fd, int tcp_fd, struct cdn_err *err)
{
	if (udp_fd >= 0) {
		evutil_make_socket_nonblocking(udp_fd);
		e->dns_udp_fd = udp_fd;
		e->dns_udp_ev = event_new(e->base, udp_fd, EV_READ | EV_PERSIST, udp_readable, e);
		if (!e->dns_udp_ev || event_add(e->dns_udp_ev, NULL) < 0)
			return cdn_err_set(err, ENOMEM, "egress: DNS (UDP)");
	}
	if (tcp_fd >= 0) {
		evutil_make_socket_nonblocking(tcp_fd);
		e->dns_tcp_listener = evconnlistener_new(e->base, tcp_accept, e,
							 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
							 0 /* listening already */, tcp_fd);
		if (!e->dns_tcp_listener) {
			close(tcp_fd);
			return cdn_err_set(err, ENOMEM, "egress: DNS (TCP)");
		}
	}
	return 0;
}

void egress_dns_detach(struct egress_engine *e)
{
	struct dns_tcp *t;
	while ((t = LIST_FIRST(&e->dns_tcps))) {
		if (t->job) {
			t->job->tcp = NULL;
			t->job = NULL;
		}
		tcp_free(t);
	}
	if (e->dns_udp_ev)
		event_free(e->dns_udp_ev);
	e->dns_udp_ev = NULL;
	if (e->dns_udp_fd >= 0)
		close(e->dns_udp_fd);
	e->dns_udp_fd = -1;
	if (e->dns_tcp_listener)
		evconnlistener_free(e->dns_tcp_listener);
	e->dns_tcp_listener = NULL;
}
