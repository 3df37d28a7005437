/* SPDX-License-Identifier: Apache-2.0 */
/*
 * /v1/schedules: the workspace's schedules (docs/schedules.md). Members
 * list and read; owners create, pause, resume and remove.
 */
#define _GNU_SOURCE
#include "serve/internal.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cleanup.h"
#include "base/clock.h"

static enum MHD_Result one(struct call *c, const char *name, unsigned status)
{
	struct store_schedule sc;
	struct cdn_err err = { 0 };
	int r = store_schedule_get(c->sv->s, c->key.workspace, name, &sc, &err);
	if (r == -ENOENT)
		return api_fail(c->conn, 404, "not_found", "no schedule %.64s", name);
	if (r < 0)
		return api_fail_err(c->conn, r, &err);
	json_t *j = store_schedule_json(&sc);
	store_schedule_clear(&sc);
	return j ? api_reply(c->conn, status, j) : MHD_NO;
}

enum MHD_Result h_schedules_list(struct call *c)
{
	struct store_schedule *v = NULL;
	size_t n = 0;
	struct cdn_err err = { 0 };
	int r = store_schedule_list(c->sv->s, c->key.workspace, 0, &v, &n, &err);
	if (r < 0)
		return api_fail_err(c->conn, r, &err);
	json_t *items = json_array();
	for (size_t i = 0; items && i < n; i++)
		json_array_append_new(items, store_schedule_json(&v[i]));
	store_schedules_free(v, n);
	return api_reply(c->conn, 200, json_pack("{s:o}", "items", items));
}

/* A string field, at most cap - 1 bytes, into out ("" when absent). */
static int field(json_t *b, const char *key, char *out, size_t cap, bool need, char *why,
		 size_t wcap)
{
	json_t *v = json_object_get(b, key);
	out[0] = '\0';
	if (!v && !need)
		return 0;
	const char *s = json_string_value(v);
	if (!s || (need && !*s) || strlen(s) >= cap) {
		snprintf(why, wcap, "%s: %s, at most %zu bytes", key,
			 need ? "a string is needed" : "a string", cap - 1);
		return -1;
	}
	snprintf(out, cap, "%s", s);
	return 0;
}

enum MHD_Result h_schedule_create(struct call *c)
{
	enum MHD_Result ret;
	json_t *b = api_body_json(c, &ret);
	if (!b)
		return ret;
	struct store_schedule sc = { .overlap = OVERLAP_FORBID, .catchup = CATCHUP_SKIP };
	char why[256] = "", overlap[16], catchup[16];
	const char *key;
	json_t *v;
	json_object_foreach(b, key, v)
	{
		static const char *const known[] = { "name",  "agent",   "cron",    "tz",
						     "input", "overlap", "catch_up" };
		bool ok = false;
		for (size_t i = 0; i < CDN_ARRAY_SIZE(known); i++)
			ok = ok || strcmp(key, known[i]) == 0;
		if (!ok) {
			snprintf(why, sizeof(why), "%.64s: unknown field (name, agent, cron, tz, "
						   "input, overlap, catch_up)", key);
			break;
		}
	}
	json_t *input = json_object_get(b, "input");
	if (!why[0] &&
	    (field(b, "name", sc.name, sizeof(sc.name), true, why, sizeof(why)) < 0 ||
	     field(b, "agent", sc.agent, sizeof(sc.agent), true, why, sizeof(why)) < 0 ||
	     field(b, "cron", sc.cron, sizeof(sc.cron), true, why, sizeof(why)) < 0 ||
	     field(b, "tz", sc.tz, sizeof(sc.tz), false, why, sizeof(why)) < 0 ||
	     field(b, "overlap", overlap, sizeof(overlap), false, why, sizeof(why)) < 0 ||
	     field(b, "catch_up", catchup, sizeof(catchup), false, why, sizeof(why)) < 0))
		; /* why says it */
	else if (!why[0] && overlap[0] && store_overlap_parse(overlap, &sc.overlap) < 0)
		snprintf(why, sizeof(why), "overlap: forbid, allow or replace");
	else if (!why[0] && catchup[0] && store_catchup_parse(catchup, &sc.catchup) < 0)
		snprintf(why, sizeof(why), "catch_up: skip or once");
	else if (!why[0] && input && !json_is_object(input))
		snprintf(why, sizeof(why), "input must be a JSON object");
	if (why[0]) {
		json_decref(b);
		return api_fail(c->conn, 400, "bad_request", "%s", why);
	}
	if (strcmp(sc.tz, "UTC") == 0)
		sc.tz[0] = '\0';
	snprintf(sc.workspace, sizeof(sc.workspace), "%s", c->key.workspace);
	snprintf(sc.created_by, sizeof(sc.created_by), "key:%s (%s)", c->key.id, c->key.name);
	sc.input_json = input ? json_dumps(input, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(b);
	struct cdn_err err = { 0 };
	int r = input && !sc.input_json ? cdn_err_set(&err, ENOMEM, "input")
					: store_schedule_new(c->sv->s, &sc, (int64_t)cdn_wall_ms(),
							     &err);
	store_schedule_clear(&sc);
	if (r == -ENOENT)
		return api_fail(c->conn, 404, "not_found", "%s", err.msg);
	if (r == -EEXIST)
		return api_fail(c->conn, 409, "conflict", "%s", err.msg);
	if (r == -EINVAL)
		return api_fail(c->conn, 400, "bad_request", "%s", err.msg);
	if (r == -EDQUOT)
		return api_fail(c->conn, 409, "conflict", "%s", err.msg);
	if (r < 0)
		return api_fail_err(c->conn, r, &err);
	return one(c, sc.name, 201);
}

enum MHD_Result h_schedule_get(struct call *c)
{
	return one(c, c->seg[2], 200);
}

enum MHD_Result h_schedule_delete(struct call *c)
{
	struct cdn_err err = { 0 };
	int r = store_schedule_delete(c->sv->s, c->key.workspace, c->seg[2], &err);
	if (r == -ENOENT || r == -EINVAL)
		return api_fail(c->conn, 404, "not_found", "no schedule %.64s", c->seg[2]);
	if (r < 0)
		return api_fail_err(c->conn, r, &err);
	return api_reply(c->conn, 200, json_pack("{s:s, s:b}", "name", c->seg[2], "removed", 1));
}

static enum MHD_Result pause_or_resume(struct call *c, bool pause)
{
	struct cdn_err err = { 0 };
	int r = pause ? store_schedule_pause(c->sv->s, c->key.workspace, c->seg[2], true, 0, &err)
		      : store_schedule_resume(c->sv->s, c->key.workspace, c->seg[2],
					      (int64_t)cdn_wall_ms(), &err);
	if (r == -ENOENT || r == -EINVAL)
		return api_fail(c->conn, 404, "not_found", "no schedule %.64s", c->seg[2]);
	if (r < 0)
		return api_fail_err(c->conn, r, &err);
	return one(c, c->seg[2], 200);
}

enum MHD_Result h_schedule_pause(struct call *c)
{
	return pause_or_resume(c, true);
}

enum MHD_Result h_schedule_resume(struct call *c)
{
	return pause_or_resume(c, false);
}
