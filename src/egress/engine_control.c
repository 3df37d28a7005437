/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Approvals: write requests that a rule marks `approval: required` wait
 * here for a human. `cordon approvals list|approve|reject` reaches the
 * running cordon over a unix socket in egress_control_dir() (one socket
 * per run, mode 0600 in a 0700 directory, and SO_PEERCRED checked: only
 * the same user or root may decide). An undecided request is denied when
 * the policy's timeout passes. Every request and decision is an audit line.
 *
 * Protocol: one JSON object per line, one request per connection.
 *   {"op":"list"}
 *     -> {"ok":true,"run_id":"...","approvals":[{"id","method","host","port","path",
 *                                                "waiting_s","expires_in_s"}]}
 *   {"op":"decide","id":"apr_...","approve":true,"by":"alice"}
 *     -> {"ok":true} | {"ok":false,"error":"..."}
 */
#define _GNU_SOURCE
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "egress/engine_internal.h"

#define CONTROL_MAX_LINE 4096

struct approval {
	LIST_ENTRY(approval) link;
	struct egress_engine *e;
	struct pconn *conn;
	approval_done_cb done;
	char id[24];
	char method[HTTP_MAX_METHOD + 1];
	char host[HTTP_MAX_HOST + 1];
	char path[512];
	uint16_t port;
	uint64_t created_ms, deadline_ms;
	struct event *timer;
};

static void approval_audit(struct approval *a, const char *decision, const char *by)
{
	json_t *j = json_object();
	json_object_set_new(j, "event_type", json_string("approval"));
	json_object_set_new(j, "approval_id", json_string(a->id));
	json_object_set_new(j, "decision", json_string(decision));
	json_object_set_new(j, "method", json_string(a->method));
	json_object_set_new(j, "hostname", json_string(a->host));
	json_object_set_new(j, "port", json_integer(a->port));
	json_object_set_new(j, "path", json_string(a->path));
	if (by)
		json_object_set_new(j, "decided_by", json_string(by));
	egress_audit(a->e, j);
	egress_emit(a->e, strcmp(decision, "requested") == 0 ? "approval.requested" : "approval.decided",
		    j);
	json_decref(j);
}

static void approval_free(struct approval *a)
{
	LIST_REMOVE(a, link);
	a->e->n_approvals--;
	if (a->timer)
		event_free(a->timer);
	free(a);
}

static void finish(struct approval *a, bool approved, const char *decision, const char *by,
		   const char *why)
{
	approval_audit(a, decision, by);
	struct pconn *c = a->conn;
	approval_done_cb done = a->done;
	approval_free(a);
	if (c && done)
		done(c, approved, why);
}

static void expired(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct approval *a = arg;
	char why[128];
	snprintf(why, sizeof(why), "no decision within %llu s: denied",
		 (unsigned long long)((a->deadline_ms - a->created_ms) / 1000));
	finish(a, false, "timeout", NULL, why);
}

struct approval *egress_approval_request(struct egress_engine *e, struct pconn *c,
					 const char *method, const char *host, uint16_t port,
					 const char *path, approval_done_cb done)
{
	if (e->n_approvals >= EGRESS_MAX_APPROVALS)
		return NULL;
	struct approval *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	uint8_t rnd[5];
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		free(a);
		return NULL;
	}
	snprintf(a->id, sizeof(a->id), "apr_%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3],
		 rnd[4]);
	a->e = e;
	a->conn = c;
	a->done = done;
	snprintf(a->method, sizeof(a->method), "%s", method);
	snprintf(a->host, sizeof(a->host), "%s", host);
	snprintf(a->path, sizeof(a->path), "%s", path);
	a->port = port;
	uint32_t timeout_s = e->policy->p->approval_timeout_s;
	a->created_ms = egress_now_ms();
	a->deadline_ms = a->created_ms + (uint64_t)timeout_s * 1000;
	a->timer = evtimer_new(e->base, expired, a);
	if (!a->timer) {
		free(a);
		return NULL;
	}
	struct timeval tv = { (time_t)timeout_s, 0 };
	evtimer_add(a->timer, &tv);
	LIST_INSERT_HEAD(&e->approvals, a, link);
	e->n_approvals++;
	approval_audit(a, "requested", NULL);
	return a;
}

void egress_approval_cancel(struct approval *a)
{
	a->conn = NULL;
	finish(a, false, "abandoned", NULL, NULL);
}

void egress_approvals_deny_all(struct egress_engine *e, const char *why)
{
	struct approval *a;
	while ((a = LIST_FIRST(&e->approvals)))
		finish(a, false, "rejected", "cordon", why);
}

/* --------------------------------------------------------- control socket */

static json_t *list_json(struct egress_engine *e)
{
	json_t *arr = json_array();
	uint64_t now = egress_now_ms();
	struct approval *a;
	LIST_FOREACH(a, &e->approvals, link)
	{
		json_array_append_new(
			arr, json_pack("{s:s, s:s, s:s, s:i, s:s, s:I, s:I}", "id", a->id, "method",
				       a->method, "host", a->host, "port", a->port, "path", a->path,
				       "waiting_s", (json_int_t)((now - a->created_ms) / 1000),
				       "expires_in_s",
				       (json_int_t)(a->deadline_ms > now ? (a->deadline_ms - now) / 1000 : 0)));
	}
	return arr;
}

static json_t *handle(struct egress_engine *e, const char *line, size_t len)
{
	json_error_t jerr;
	json_t *req = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!req || !json_is_object(req)) {
		json_decref(req);
		return json_pack("{s:b, s:s}", "ok", 0, "error", "expected a JSON object");
	}
	const char *op = json_string_value(json_object_get(req, "op"));
	json_t *res;
	if (op && strcmp(op, "list") == 0) {
		res = json_pack("{s:b, s:s, s:o}", "ok", 1, "run_id", e->run_id ? e->run_id : "",
				"approvals", list_json(e));
	} else if (op && strcmp(op, "decide") == 0) {
		const char *id = json_string_value(json_object_get(req, "id"));
		json_t *ap = json_object_get(req, "approve");
		const char *by = json_string_value(json_object_get(req, "by"));
		struct approval *a = NULL, *it;
		LIST_FOREACH(it, &e->approvals, link)
		if (id && strcmp(it->id, id) == 0)
			a = it;
		if (!id || !json_is_boolean(ap)) {
			res = json_pack("{s:b, s:s}", "ok", 0, "error",
					"decide needs \"id\" and a boolean \"approve\"");
		} else if (!a) {
			res = json_pack("{s:b, s:s}", "ok", 0, "error", "no such pending approval");
		} else {
			bool yes = json_is_true(ap);
			char who[64];
			snprintf(who, sizeof(who), "%s", by && *by ? by : "operator");
			finish(a, yes, yes ? "approved" : "rejected", who,
			       yes ? "approved" : "rejected by a human");
			res = json_pack("{s:b}", "ok", 1);
		}
	} else {
		res = json_pack("{s:b, s:s}", "ok", 0, "error", "unknown op (list, decide)");
	}
	json_decref(req);
	return res;
}

static void ctl_write(struct bufferevent *bev, void *arg)
{
	(void)arg;
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		bufferevent_free(bev);
}

static void ctl_read(struct bufferevent *bev, void *arg)
{
	struct egress_engine *e = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n = 0;
	char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF);
	if (!line) {
		if (evbuffer_get_length(in) > CONTROL_MAX_LINE)
			bufferevent_free(bev);
		return;
	}
	json_t *res = handle(e, line, n);
	free(line);
	char *out = json_dumps(res, JSON_COMPACT);
	json_decref(res);
	bufferevent_disable(bev, EV_READ);
	if (out) {
		evbuffer_add(bufferevent_get_output(bev), out, strlen(out));
		evbuffer_add(bufferevent_get_output(bev), "\n", 1);
		free(out);
	}
	bufferevent_setcb(bev, NULL, ctl_write, NULL, e);
}

static void ctl_event(struct bufferevent *bev, short what, void *arg)
{
	(void)arg;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
		bufferevent_free(bev);
}

static void ctl_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
		       void *arg)
{
	(void)l;
	(void)sa;
	(void)salen;
	struct egress_engine *e = arg;
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	/* The directory is 0700 and the socket 0600; check the peer anyway. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0 ||
	    (cred.uid != 0 && cred.uid != geteuid())) {
		close(fd);
		return;
	}
	struct bufferevent *bev = bufferevent_socket_new(e->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		close(fd);
		return;
	}
	bufferevent_setcb(bev, ctl_read, NULL, ctl_event, e);
	bufferevent_setwatermark(bev, EV_READ, 0, CONTROL_MAX_LINE + 1);
	struct timeval tv = { 5, 0 };
	bufferevent_set_timeouts(bev, &tv, &tv);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

int egress_control_listen(struct egress_engine *e, const char *path, struct cdn_err *err)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sun.sun_path))
		return cdn_err_set(err, ENAMETOOLONG, "control socket %s", path);
	strcpy(sun.sun_path, path);
	mode_t old = umask(0177);
	e->control_listener = evconnlistener_new_bind(
		e->base, ctl_accept, e, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 16,
		(struct sockaddr *)&sun, (int)sizeof(sun));
	int saved = errno;
	umask(old);
	if (!e->control_listener)
		return cdn_err_set(err, saved, "control socket %s", path);
	e->control_path = strdup(path);
	return 0;
}

void egress_control_close(struct egress_engine *e)
{
	if (e->control_listener)
		evconnlistener_free(e->control_listener);
	e->control_listener = NULL;
	if (e->control_path)
		unlink(e->control_path);
	free(e->control_path);
	e->control_path = NULL;
}
