/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Approvals: write requests that a rule marks `approval: required` wait
 * here for a human. The engine says so with an "approval.requested" event;
 * the supervisor lists waiting requests on the run's control socket
 * (src/run/control.h) and hands a human's decision back through
 * egress_engine_decide(). An undecided request is denied when the policy's
 * timeout passes. Every request and decision is an audit line.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "egress/engine_internal.h"

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
	if (strcmp(decision, "requested") == 0)
		json_object_set_new(j, "timeout_s",
				    json_integer((json_int_t)((a->deadline_ms - a->created_ms) / 1000)));
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

int egress_engine_decide(struct egress_engine *e, const char *id, bool approve, const char *by,
			 struct cdn_err *err)
{
	struct approval *a;
	LIST_FOREACH(a, &e->approvals, link)
	if (id && strcmp(a->id, id) == 0)
		break;
	if (!a)
		return cdn_err_msg(err, ENOENT, "no such pending approval");
	char who[64];
	snprintf(who, sizeof(who), "%s", by && *by ? by : "operator");
	finish(a, approve, approve ? "approved" : "rejected", who,
	       approve ? "approved" : "rejected by a human");
	return 0;
}
