/* SPDX-License-Identifier: Apache-2.0 */
/*
 * /v1/secrets: names, sizes and times only; a value goes in (owners) and
 * never comes out.
 */
#define _GNU_SOURCE
#include "serve/internal.h"

#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>

#define SECRET_BODY_MAX (64 * 1024)

enum MHD_Result h_secrets_list(struct call *c)
{
	struct cdn_err err = {0};
	struct store_secret_info *v;
	size_t n;
	int r = vault_list(c->sv->v, c->key.workspace, &v, &n, &err);
	if (r < 0)
		return api_fail_err(c->conn, r, &err);
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++) {
		char when[32];
		api_time(v[i].updated * 1000, when, sizeof(when));
		json_array_append_new(arr, json_pack("{s:s, s:I, s:s}", "name", v[i].name, "size",
						     (json_int_t)v[i].size, "updated", when));
	}
	free(v);
	return api_reply(c->conn, 200, json_pack("{s:o}", "secrets", arr));
}

enum MHD_Result h_secret_get(struct call *c)
{
	return api_fail(c->conn, 403, "forbidden", "secret values are never returned");
}

enum MHD_Result h_secret_put(struct call *c)
{
	struct cdn_err err = {0};
	enum MHD_Result ret;
	const char *name = c->seg[2];
	if (c->req->len > SECRET_BODY_MAX)
		return api_fail(c->conn, 413, "too_large", "a secret's body is at most %d bytes",
				SECRET_BODY_MAX);
	json_t *b = api_body_json(c, &ret);
	if (!b)
		return ret;
	json_t *val = json_object_get(b, "value");
	int r;
	size_t len = json_string_length(val);
	if (!json_is_string(val) || len == 0)
		r = cdn_err_msg(&err, EINVAL, "expected {\"value\": \"...\"} (not empty)");
	else
		r = vault_set(c->sv->v, c->key.workspace, name,
			      (const uint8_t *)json_string_value(val), len, &err);
	/* The body held the value: wipe it before it is freed. */
	sodium_memzero(c->req->body, c->req->len);
	json_decref(b);
	if (r < 0)
		return api_fail_err(c->conn, r, &err);
	return api_reply(c->conn, 200,
			 json_pack("{s:s, s:I}", "name", name, "size", (json_int_t)len));
}

enum MHD_Result h_secret_delete(struct call *c)
{
	struct cdn_err err = {0};
	const char *name = c->seg[2];
	int r = vault_rm(c->sv->v, c->key.workspace, name, &err);
	if (r == -ENOENT)
		return api_fail(c->conn, 404, "not_found", "no secret %s", name);
	if (r < 0)
		return api_fail_err(c->conn, r, &err);
	return api_reply(c->conn, 200, json_pack("{s:s, s:b}", "name", name, "removed", 1));
}
