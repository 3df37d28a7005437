/* SPDX-License-Identifier: Apache-2.0 */
/*
 * /v1/approvals: the requests held for a human, from every live run's
 * control socket, kept to the key's workspace.
 */
#define _GNU_SOURCE
#include "serve/internal.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "run/control.h"

struct appr_ctx {
	struct call *c;
	json_t *all;
	const char *id;
	bool approve, done;
	char by[160];
};

static bool run_is_ours(struct call *c, const char *run_id)
{
	struct store_run r;
	if (!run_id || api_run_in_ws(c, run_id, &r) < 0)
		return false;
	store_run_clear(&r);
	return true;
}

/* The run is the socket's name, checked against this workspace before
 * anything is asked: never what the socket says about itself. */
static int appr_list(const char *run_id, void *vctx)
{
	struct appr_ctx *a = vctx;
	if (!run_is_ours(a->c, run_id))
		return 0;
	json_t *req = json_pack("{s:s}", "op", "list");
	struct cdn_err err = { 0 };
	json_t *res = control_ask(run_id, req, &err);
	json_decref(req);
	size_t i;
	json_t *x;
	json_array_foreach(json_object_get(res, "approvals"), i, x)
	{
		json_object_set_new(x, "run_id", json_string(run_id));
		json_array_append(a->all, x);
	}
	json_decref(res);
	return 0;
}

static int appr_decide(const char *run_id, void *vctx)
{
	struct appr_ctx *a = vctx;
	if (!run_is_ours(a->c, run_id))
		return 0;
	json_t *req = json_pack("{s:s, s:s, s:b, s:s}", "op", "decide", "id", a->id, "approve",
				a->approve, "by", a->by);
	struct cdn_err err = { 0 };
	json_t *res = control_ask(run_id, req, &err);
	json_decref(req);
	if (res && json_is_true(json_object_get(res, "ok")))
		a->done = true;
	json_decref(res);
	return a->done ? 1 : 0;
}

enum MHD_Result h_approvals_list(struct call *c)
{
	struct cdn_err err = {0};
	struct appr_ctx a = {.c = c, .all = json_array()};
	control_each(appr_list, &a, &err);
	return api_reply(c->conn, 200, json_pack("{s:o}", "approvals", a.all));
}

static enum MHD_Result approval_decide(struct call *c, bool approve)
{
	struct cdn_err err = {0};
	struct appr_ctx a = { .c = c, .id = c->seg[2], .approve = approve };
	snprintf(a.by, sizeof(a.by), "key:%s (%s)", c->key.id, c->key.name);
	control_each(appr_decide, &a, &err);
	if (!a.done)
		return api_fail(c->conn, 404, "not_found",
				"no pending request %s in this workspace", a.id);
	return api_reply(
	    c->conn, 200,
	    json_pack("{s:s, s:s}", "id", a.id, "decision", a.approve ? "approved" : "rejected"));
}

enum MHD_Result h_approval_approve(struct call *c)
{
	return approval_decide(c, true);
}

enum MHD_Result h_approval_reject(struct call *c)
{
	return approval_decide(c, false);
}
