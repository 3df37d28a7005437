/* SPDX-License-Identifier: Apache-2.0 */
/*
 * GET /v1/usage?from=&to=&group_by=agent|day|caller: what the key's
 * workspace's runs used, summed from their records (docs/usage.md).
 * Owners and members alike.
 */
#define _GNU_SOURCE
#include "serve/internal.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"

#define USAGE_DEFAULT_WINDOW_MS (30LL * 86400 * 1000)

enum MHD_Result h_usage(struct call *c)
{
	enum MHD_Result ret;
	int64_t from = 0, to = 0;
	if (api_time_param(c, "from", &from, &ret) < 0 || api_time_param(c, "to", &to, &ret) < 0)
		return ret;
	if (!to)
		to = (int64_t)cdn_wall_ms() + 1; /* the runs created up to now */
	if (!from)
		from = to > USAGE_DEFAULT_WINDOW_MS ? to - USAGE_DEFAULT_WINDOW_MS : 0;
	if (from >= to)
		return api_fail(c->conn, 400, "bad_request", "from: must come before to");
	const char *g = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, "group_by");
	enum store_usage_by by = USAGE_BY_NONE;
	if (g && *g && store_usage_by_parse(g, &by) < 0)
		return api_fail(c->conn, 400, "bad_request",
				"group_by: agent, day, caller or none");
	struct store_usage *v = NULL, total;
	size_t n = 0;
	struct cdn_err err = { 0 };
	int r = store_run_usage(c->sv->s, c->key.workspace, from, to, by, &v, &n, &total, &err);
	if (r < 0)
		return api_fail_err(c->conn, r, &err);
	json_t *j = store_usage_json(c->key.workspace, from, to, by, v, n, &total);
	free(v);
	return j ? api_reply(c->conn, 200, j) : MHD_NO;
}
