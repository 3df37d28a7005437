/* SPDX-License-Identifier: Apache-2.0 */
/*
 * /v1/approvals: the requests held for a human, kept to the key's
 * workspace: from every live run's control socket on this host, or, with
 * a shared store (Postgres), from what every run published there,
 * wherever it runs (store.h, "Reaching a run on another host").
 */
#define _GNU_SOURCE
#include "serve/internal.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"

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

/* ---------------------------------------------- runs on other hosts */

int remote_control_wait(struct server *sv, const char *id, char *why, size_t cap)
{
	uint64_t until = cdn_mono_ms() + CONTROL_TIMEOUT_S * 1000;
	for (unsigned ms = 2;; ms = ms < 50 ? ms * 2 : 50) {
		struct cdn_err err = { 0 };
		int r = store_control_outcome(sv->s, id, why, cap, &err);
		if (r == 1)
			return why[0] ? -EPROTO : 0;
		if (r < 0 && r != -ENOENT)
			snprintf(why, cap, "%s", err.msg);
		if (r < 0)
			return r;
		if (cdn_mono_ms() >= until)
			return -ETIMEDOUT;
		struct timespec ts = { 0, (long)ms * 1000000 };
		nanosleep(&ts, NULL);
	}
}

/* The open approvals of the workspace's runs, wherever they run: what
 * their runs published. */
static json_t *shared_list(struct call *c, int *r)
{
	struct store_control *v = NULL;
	size_t n = 0;
	struct cdn_err err = { 0 };
	if ((*r = store_controls_list(c->sv->s, c->key.workspace, &v, &n, &err)) < 0)
		return NULL;
	json_t *all = json_array();
	int64_t now = (int64_t)cdn_wall_ms();
	for (size_t i = 0; all && i < n; i++) {
		json_t *x = json_loads(v[i].entry, JSON_REJECT_DUPLICATES, NULL);
		if (!json_is_object(x)) {
			json_decref(x);
			continue;
		}
		json_object_set_new(x, "run_id", json_string(v[i].run_id));
		json_object_set_new(x, "waiting_s", json_integer(now > v[i].created_ms
									 ? (now - v[i].created_ms) / 1000
									 : 0));
		if (v[i].deadline_ms)
			json_object_set_new(x, "expires_in_s",
					    json_integer(v[i].deadline_ms > now
								 ? (v[i].deadline_ms - now) / 1000
								 : 0));
		json_array_append_new(all, x);
	}
	store_controls_free(v, n);
	return all;
}

static bool listed(const json_t *all, const char *id)
{
	size_t i;
	json_t *x;
	json_array_foreach(all, i, x)
	{
		const char *v = json_string_value(json_object_get(x, "id"));
		if (v && id && strcmp(v, id) == 0)
			return true;
	}
	return false;
}

enum MHD_Result h_approvals_list(struct call *c)
{
	int r = 0;
	json_t *all = shared_list(c, &r);
	if (r < 0 && r != -ENOTSUP)
		return api_fail(c->conn, 503, "unavailable", "the approvals could not be read");
	/* This host's runs through their sockets too: with a shared store,
	 * a request its run could not publish (the database was away) is
	 * still listed here. */
	struct cdn_err err = { 0 };
	struct appr_ctx a = { .c = c, .all = json_array() };
	control_each(appr_list, &a, &err);
	if (!all) {
		all = a.all;
	} else {
		size_t i;
		json_t *x;
		json_array_foreach(a.all, i, x)
		{
			if (!listed(all, json_string_value(json_object_get(x, "id"))))
				json_array_append(all, x);
		}
		json_decref(a.all);
	}
	return api_reply(c->conn, 200, json_pack("{s:o}", "approvals", all));
}

/* A shared store: the decision is written for the run, wherever it runs,
 * and its answer awaited. */
static enum MHD_Result shared_decide(struct call *c, const char *id, bool approve, int r)
{
	char why[256] = "";
	if (r == 1)
		r = remote_control_wait(c->sv, id, why, sizeof(why));
	else if (r == 0)
		r = -ENOENT;
	if (r == 0)
		return api_reply(c->conn, 200,
				 json_pack("{s:s, s:s}", "id", id, "decision",
					   approve ? "approved" : "rejected"));
	if (r == -EPROTO || r == -ENOENT)
		return api_fail(c->conn, 404, "not_found",
				"no pending request %s in this workspace%s%s", id,
				why[0] ? ": " : "", why);
	if (r == -ETIMEDOUT)
		return api_fail(c->conn, 504, "timeout",
				"the run holding %s did not answer within %d s; the decision is "
				"recorded and applies when it does",
				id, CONTROL_TIMEOUT_S);
	return api_fail(c->conn, 503, "unavailable", "the decision could not be recorded");
}

static enum MHD_Result approval_decide(struct call *c, bool approve)
{
	struct cdn_err err = {0};
	struct appr_ctx a = { .c = c, .id = c->seg[2], .approve = approve };
	snprintf(a.by, sizeof(a.by), "key:%s (%s)", c->key.id, c->key.name);
	char run_id[STORE_RUN_ID_MAX + 1];
	int r = store_control_decide(c->sv->s, c->key.workspace, a.id, approve, a.by, run_id, &err);
	if (r == 1)
		return shared_decide(c, a.id, approve, r);
	/* Not in the store (SQLite's; or its run could not publish it):
	 * this host's runs, through their sockets. */
	control_each(appr_decide, &a, &err);
	if (!a.done && r < 0 && r != -ENOTSUP)
		return shared_decide(c, a.id, approve, r);
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
