/* SPDX-License-Identifier: Apache-2.0 */
/*
 * /v1/whoami and /v1/keys: the caller's key, and the workspace's keys
 * (owners only; a new key is shown once, here, and never again).
 */
#define _GNU_SOURCE
#include "base/clock.h"
#include "serve/internal.h"

#include <jansson.h>
#include <sodium.h>

#include "serve/keys.h"

enum MHD_Result h_whoami(struct call *c)
{
	return api_reply(c->conn, 200,
			 json_pack("{s:s, s:s, s:s, s:s}", "id", c->key.id, "name", c->key.name,
				   "role", c->key.role, "workspace", c->key.workspace));
}

enum MHD_Result h_keys_list(struct call *c)
{
	struct cdn_err err = {0};
	struct store_key *v;
	size_t n;
	int r = store_key_list(c->sv->s, c->key.workspace, &v, &n, &err);
	if (r < 0)
		return api_fail_err(c->conn, r, &err);
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++) {
		/* RFC 3339 like every time of the API; never used: null. */
		char created[CDN_RFC3339_MAX], used[CDN_RFC3339_MAX];
		cdn_rfc3339(v[i].created * 1000, CDN_TIME_S, created, sizeof(created));
		cdn_rfc3339(v[i].last_used * 1000, CDN_TIME_S, used, sizeof(used));
		json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:o, s:b}", "id",
						     v[i].id, "name", v[i].name, "role", v[i].role,
						     "created", created, "last_used",
						     v[i].last_used ? json_string(used) : json_null(),
						     "revoked", v[i].revoked));
	}
	free(v);
	return api_reply(c->conn, 200, json_pack("{s:o}", "keys", arr));
}

enum MHD_Result h_keys_create(struct call *c)
{
	enum MHD_Result ret;
	struct cdn_err err = {0};
	json_t *b = api_body_json(c, &ret);
	if (!b)
		return ret;
	const char *name = api_jstr(b, "name"), *role = api_jstr(b, "role");
	if (!name || !role) {
		json_decref(b);
		return api_fail(c->conn, 400, "bad_request",
				"expected {\"name\": \"...\", \"role\": \"owner\"|\"member\"}");
	}
	char key[API_KEY_LEN + 1];
	struct store_key rec;
	int r = api_key_create(c->sv->s, c->key.workspace, name, role, key, &rec, &err);
	json_decref(b);
	if (r < 0)
		return api_fail_err(c->conn, r, &err);
	json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s}", "id", rec.id, "name", rec.name, "role",
			      rec.role, "workspace", rec.workspace, "key", key);
	sodium_memzero(key, sizeof(key));
	return api_reply(c->conn, 201, j);
}

enum MHD_Result h_keys_revoke(struct call *c)
{
	struct cdn_err err = {0};
	int r = store_key_revoke(c->sv->s, c->key.workspace, c->seg[2], &err);
	if (r < 0)
		return api_fail_err(c->conn, r, &err);
	return api_reply(c->conn, 200, json_pack("{s:s, s:b}", "id", c->seg[2], "revoked", 1));
}
