/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the engine tells its caller: audit lines (the caller appends them to
 * the run's hash-chained log) and run events (the caller's event stream).
 * Every other part of the engine writes through these two, and they
 * depend on nothing else in it; nor does pconn_entry, the audit line of a
 * request on a proxy connection.
 */
#include <jansson.h>

#include "egress/engine_internal.h"

void egress_emit(struct egress_engine *e, const char *type, json_t *data)
{
	if (e->on_event)
		e->on_event(e->ctx, type, data);
}

void egress_audit(struct egress_engine *e, json_t *entry)
{
	if (e->run_id)
		json_object_set_new(entry, "run_id", json_string(e->run_id));
	if (e->on_audit)
		e->on_audit(e->ctx, entry);
}

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
