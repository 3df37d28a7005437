/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the engine tells its caller: audit lines (the caller appends them to
 * the run's hash-chained log) and run events (the caller's event stream).
 * Every other part of the engine writes through these two, and they
 * depend on nothing else in it.
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
