/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The client side of the egress engines' control sockets (approvals):
 * `cordon approvals` and `cordon serve` use it.
 */
#ifndef CORDON_EGRESS_CONTROL_CLIENT_H
#define CORDON_EGRESS_CONTROL_CLIENT_H

#include <jansson.h>

#include "base/err.h"

/* One request/reply on a control socket; NULL when nobody answers. */
json_t *egress_control_ask(const char *path, json_t *req);

/* Calls fn for each control socket in egress_control_dir(); stops when fn
 * returns > 0 and returns that. */
int egress_control_each(int (*fn)(const char *path, void *ctx), void *ctx, struct cdn_err *err);

#endif
