/* SPDX-License-Identifier: Apache-2.0 */
/*
 * /v1/retention: how long the workspace's runs leave what they leave
 * (members read, owners set within the operator's bounds), and
 * /v1/runs/{id}/hold: keeping one run past every age (owners).
 * docs/retention.md.
 */
#define _GNU_SOURCE
#include "serve/internal.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

static enum MHD_Result retention_reply(struct call *c)
{
	struct cdn_err err = { 0 };
	struct store_retention op, own;
	int r = store_retention_get(c->sv->s, "", &op, &err);
	if (r == 0)
		r = store_retention_get(c->sv->s, c->key.workspace, &own, &err);
	if (r < 0)
		return api_fail_err(c->conn, r, &err);
	return api_reply(c->conn, 200, store_retention_json(c->key.workspace, &op, &own));
}

enum MHD_Result h_retention_get(struct call *c)
{
	return retention_reply(c);
}

/* {"records": "90d", "files": null, ...}: each kind named is set (null or
 * "default": back to the operator's), the others are kept. */
enum MHD_Result h_retention_put(struct call *c)
{
	enum MHD_Result ret;
	json_t *b = api_body_json(c, &ret);
	if (!b)
		return ret;
	struct cdn_err err = { 0 };
	struct store_retention op, own;
	int r = store_retention_get(c->sv->s, "", &op, &err);
	if (r == 0)
		r = store_retention_get(c->sv->s, c->key.workspace, &own, &err);
	if (r < 0) {
		json_decref(b);
		return api_fail_err(c->conn, r, &err);
	}
	const char *key;
	json_t *v;
	unsigned set = 0;
	json_object_foreach(b, key, v)
	{
		enum store_retain k;
		int64_t age = 0;
		if (store_retain_parse(key, &k) < 0) {
			ret = api_fail(c->conn, 400, "bad_request",
				       "%.64s: unknown kind (records, files, artifacts or evidence)",
				       key);
			goto out;
		}
		if (!json_is_null(v) && !json_is_string(v)) {
			ret = api_fail(c->conn, 400, "bad_request",
				       "%s: expected an age such as \"90d\", or null", key);
			goto out;
		}
		if (json_is_string(v) && !strcmp(json_string_value(v), "forever")) {
			ret = api_fail(c->conn, 400, "bad_request",
				       "%s: a workspace keeps at most the operator's bound; null "
				       "takes the operator's age",
				       key);
			goto out;
		}
		if (json_is_string(v) && store_age_parse(json_string_value(v), &age, &err) < 0) {
			ret = api_fail(c->conn, 400, "bad_request", "%s: %s", key, err.msg);
			goto out;
		}
		if (op.max_s[k] && age > op.max_s[k]) {
			ret = api_fail(c->conn, 400, "bad_request",
				       "%s: the operator keeps at most %lld seconds", key,
				       (long long)op.max_s[k]);
			goto out;
		}
		own.age_s[k] = age;
		set |= STORE_RETAIN_AGE(k);
	}
	/* Only the kinds named change, in the database as it is then: an
	 * owner's concurrent change of another kind is kept. */
	if (!set) {
		ret = api_fail(c->conn, 400, "bad_request",
			       "expected at least one kind (records, files, artifacts or evidence)");
		goto out;
	}
	if ((r = store_retention_put(c->sv->s, c->key.workspace, &own, set, &err)) < 0) {
		ret = api_fail_err(c->conn, r, &err);
		goto out;
	}
	ret = retention_reply(c);
out:
	json_decref(b);
	return ret;
}

static enum MHD_Result hold_reply(struct call *c, const char *id)
{
	struct cdn_err err = { 0 };
	struct store_run_marks m;
	int r = store_run_marks_get(c->sv->s, id, &m, &err);
	if (r < 0)
		return api_fail_err(c->conn, r, &err);
	json_t *j = json_pack("{s:s}", "id", id);
	store_run_marks_json(&m, j);
	return api_reply(c->conn, 200, j);
}

/* {"reason": "..."}: kept past every age until released. */
enum MHD_Result h_run_hold_put(struct call *c)
{
	struct store_run rec;
	enum MHD_Result ret;
	if (!api_the_run(c, &rec, &ret))
		return ret;
	store_run_clear(&rec);
	json_t *b = api_body_json(c, &ret);
	if (!b)
		return ret;
	const char *reason = api_jstr(b, "reason");
	char by[128];
	snprintf(by, sizeof(by), "key:%s", c->key.id);
	struct cdn_err err = { 0 };
	int r = store_run_hold(c->sv->s, c->key.workspace, c->seg[2], reason ? reason : "", by,
			       &err);
	json_decref(b);
	if (r == -EINVAL)
		return api_fail(c->conn, 400, "bad_request", "%s", err.msg);
	if (r < 0)
		return api_fail_err(c->conn, r, &err);
	return hold_reply(c, c->seg[2]);
}

enum MHD_Result h_run_hold_delete(struct call *c)
{
	struct store_run rec;
	enum MHD_Result ret;
	if (!api_the_run(c, &rec, &ret))
		return ret;
	store_run_clear(&rec);
	struct cdn_err err = { 0 };
	/* A hold the operator placed (from the CLI on the server's machine)
	 * is the operator's to release: an owner's key cannot lift it. */
	struct store_run_marks m;
	int r = store_run_marks_get(c->sv->s, c->seg[2], &m, &err);
	if (r < 0)
		return api_fail_err(c->conn, r, &err);
	if (m.hold_ms && strncmp(m.hold_by, "key:", 4) != 0)
		return api_fail(c->conn, 403, "forbidden",
				"run %s is held by the operator (%s): release it with cordon runs "
				"release on the server",
				c->seg[2], m.hold_by);
	r = store_run_release(c->sv->s, c->key.workspace, c->seg[2], &err);
	if (r < 0)
		return api_fail_err(c->conn, r, &err);
	return hold_reply(c, c->seg[2]);
}
