/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A request head through the stages: parsed, decided (egress_decide(),
 * decide.h, the policy's stages 1 to 4 as a pure function), and the
 * decision carried out: each verdict an audit line and an event, the
 * first one enforced answered; a hold for approval; then content
 * inspection of the head (stage 5) and the destination (stage 6).
 *
 *   domain -> protocol/port -> rate -> method (approval) -> content
 *   -> destination -> forward
 *
 * The destination stage resolves the name asynchronously, refuses if any
 * answer is not a public address (the SSRF guard, egress_decide_address),
 * and connects to exactly the address it checked, so there is no second
 * lookup to rebind.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/cleanup.h"
#include "egress/engine_internal.h"
#include "egress/ssrf.h"

static void stage_content(struct pconn *c);
static void stage_destination(struct pconn *c);
static void approval_decided(struct pconn *c, bool approved, const char *why);

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
	_Static_assert(sizeof(c->host) == sizeof(d.host), "the decision's host fits");
	memcpy(c->host, d.host, strlen(d.host) + 1);
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
