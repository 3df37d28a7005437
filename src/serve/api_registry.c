/* SPDX-License-Identifier: Apache-2.0 */
/*
 * /v1/agents, /v1/capabilities, /v1/envs and /v1/grants: the registry
 * over the API, by an uploaded tar(.gz) or a path below --register-root.
 */
#define _GNU_SOURCE
#include "serve/internal.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/hash.h"
#include "registry/registry.h"
#include "serve/bundle.h"

/* Versions GET /v1/agents/{name} lists at most, newest first. */
#define AGENT_VERSIONS_MAX 100

static enum MHD_Result registered(struct call *c, const struct registry_result *res)
{
	return api_reply(c->conn, res->created ? 201 : 200,
			 json_pack("{s:s, s:I, s:s, s:b}", "name", res->name, "version",
				   (json_int_t)res->version, "sha256", res->hash, "created",
				   res->created));
}

/* A path the server may register: below --register-root, symlinks
 * resolved (real gets the resolved path, which is what is read). */
static bool server_path_ok(const struct server *sv, const char *path, char real[PATH_MAX])
{
	char root[PATH_MAX];
	if (!sv->cfg.register_root || !realpath(sv->cfg.register_root, root) ||
	    !realpath(path, real))
		return false;
	size_t n = strlen(root);
	return strcmp(root, "/") == 0 || (strncmp(real, root, n) == 0 && real[n] == '/');
}

/* Replaces each occurrence of path in msg with `as`. */
static void unpath(char *msg, size_t cap, const char *path, const char *as)
{
	char out[CDN_ERR_MSG_MAX];
	size_t n = 0, pl = strlen(path);
	for (const char *p = msg; *p && n + 1 < sizeof(out);) {
		if (pl && strncmp(p, path, pl) == 0) {
			n += (size_t)snprintf(out + n, sizeof(out) - n, "%s", as);
			p += pl;
		} else {
			out[n++] = *p++;
		}
	}
	out[n < sizeof(out) ? n : sizeof(out) - 1] = '\0';
	snprintf(msg, cap, "%s", out);
}

/* POST /v1/agents or /v1/capabilities?name=N with a tar(.gz) body: unpacked
 * into a scratch directory, registered from there, removed. */
static enum MHD_Result register_upload(struct call *c, enum store_kind kind)
{
	struct cdn_err err = { 0 };
	const char *name = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, "name");
	if (kind == STORE_CAPABILITY && (!name || !*name))
		return api_fail(
		    c->conn, 400, "bad_request",
		    "a capability upload needs its name: POST /v1/capabilities?name=NAME");
	const char *want =
	    MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, BUNDLE_TREE_HEADER);
	if (want && !cdn_sha256_hex_str_ok(want))
		return api_fail(c->conn, 400, "bad_request",
				"%s: expected the tree's sha256 (64 lowercase hex digits)",
				BUNDLE_TREE_HEADER);
	if (c->req->write_failed)
		return api_fail(c->conn, 500, "internal",
				"the upload could not be spooled to disk");
	char dir[PATH_MAX];
	int fd;
	int r = store_scratch_dir(c->sv->s, dir, sizeof(dir), &fd, &err);
	if (r < 0)
		return api_fail_err(c->conn, r, &err);
	r = c->req->fd >= 0
		? bundle_extract_fd(c->req->fd, fd, &err)
		: bundle_extract(c->req->body ? c->req->body : "", c->req->len, fd, &err);
	close(fd);
	char got[STORE_HASH_HEX + 1];
	if (r == 0 && want && (r = store_tree_hash(dir, NULL, got, &err)) == 0 &&
	    strcmp(got, want) != 0)
		r = cdn_err_msg(&err, EINVAL,
				"bundle: the tree unpacked has sha256 %s, not the %s the client "
				"sent: the upload was cut or changed on its way, so nothing is "
				"registered",
				got, want);
	if (r < 0) {
		store_scratch_remove(c->sv->s, dir);
		/* what the upload holds is at fault; a full disk is the server's */
		if (err.code == EFBIG)
			return api_fail(c->conn, 413, "too_large", "%s", err.msg);
		if (err.code == EINVAL || err.code == EEXIST)
			return api_fail(c->conn, 400, "bad_request", "%s", err.msg);
		return api_fail_err(c->conn, r, &err);
	}
	struct registry_result res;
	r = kind == STORE_AGENT
		? registry_agent_register(c->sv->s, c->key.workspace, dir, &res, &err)
		: registry_capability_register(c->sv->s, c->key.workspace, name, dir, &res, &err);
	store_scratch_remove(c->sv->s, dir);
	if (r < 0) {
		/* The messages name the scratch directory: a path of the
		 * server's, which is not the client's business. */
		unpath(err.msg, sizeof(err.msg), dir, "upload");
		return api_fail_err(c->conn, r, &err);
	}
	return registered(c, &res);
}

static enum MHD_Result items_list(struct call *c, enum store_kind kind)
{
	struct cdn_err err = { 0 };
	struct store_item *items;
	size_t n;
	int r = store_item_list(c->sv->s, kind, c->key.workspace, &items, &n, &err);
	if (r < 0)
		return api_fail_err(c->conn, r, &err);
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++) {
		char when[32];
		api_time(items[i].created * 1000, when, sizeof(when));
		json_array_append_new(arr, json_pack("{s:s, s:I, s:s, s:s}", "name", items[i].name,
						     "version", (json_int_t)items[i].version,
						     "sha256", items[i].hash, "registered", when));
	}
	store_items_free(items, n);
	return api_reply(c->conn, 200, json_pack("{s:o}", "items", arr));
}

static enum MHD_Result items_register(struct call *c, enum store_kind kind)
{
	struct cdn_err err = {0};
	enum MHD_Result ret;
	if (kind != STORE_ENV &&
	    api_bundle_type(MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, "Content-Type")))
		return register_upload(c, kind);
	json_t *b = api_body_json(c, &ret);
	if (!b)
		return ret;
	struct registry_result res;
	int r;
	const char *path = api_jstr(b, "path"), *name = api_jstr(b, "name");
	char real[PATH_MAX];
	if (kind != STORE_ENV && path && path[0] == '/' && !server_path_ok(c->sv, path, real)) {
		json_decref(b);
		return api_fail(c->conn, 403, "forbidden",
				"registering a path on the server is %s; upload the directory as a "
				"tar.gz instead (Content-Type: application/gzip), as cordon %s "
				"register does with CORDON_URL set",
				c->sv->cfg.register_root ? "allowed only below --register-root"
							 : "off (cordon serve --register-root DIR)",
				kind == STORE_AGENT ? "agent" : "capability");
	}
	if (kind == STORE_AGENT) {
		r = path && path[0] == '/' ? registry_agent_register(c->sv->s, c->key.workspace, real,
								      &res, &err)
					   : cdn_err_msg(&err, EINVAL,
							 "expected {\"path\": \"/absolute/dir\"} or a "
							 "tar.gz body");
	} else if (kind == STORE_CAPABILITY) {
		r = path && path[0] == '/' && name
			    ? registry_capability_register(c->sv->s, c->key.workspace, name, real,
							   &res, &err)
			    : cdn_err_msg(&err, EINVAL,
					  "expected {\"name\": \"...\", \"path\": \"/absolute/dir\"} "
					  "or a tar.gz body with ?name=");
	} else {
		json_t *vars = json_object_get(b, "vars");
		const char *kv[REGISTRY_MAX_ENV_VARS];
		char *store_kv[REGISTRY_MAX_ENV_VARS];
		size_t n = 0;
		r = 0;
		if (!name || !json_is_object(vars))
			r = cdn_err_msg(&err, EINVAL,
					"expected {\"name\": \"...\", \"vars\": {\"K\": \"V\"}}");
		const char *k;
		json_t *v;
		json_object_foreach(vars, k, v)
		{
			if (r < 0)
				break;
			if (n == REGISTRY_MAX_ENV_VARS || !json_is_string(v)) {
				r = cdn_err_msg(&err, EINVAL,
						"vars: at most %d, each value a string",
						REGISTRY_MAX_ENV_VARS);
				break;
			}
			if (asprintf(&store_kv[n], "%s=%s", k, json_string_value(v)) < 0) {
				r = cdn_err_set(&err, ENOMEM, "env");
				break;
			}
			kv[n] = store_kv[n];
			n++;
		}
		if (r == 0)
			r = registry_env_register(c->sv->s, c->key.workspace, name, kv, n, &res, &err);
		for (size_t i = 0; i < n; i++)
			free(store_kv[i]);
	}
	json_decref(b);
	if (r < 0)
		return api_fail_err(c->conn, r, &err);
	return registered(c, &res);
}

enum MHD_Result h_agents_list(struct call *c)
{
	return items_list(c, STORE_AGENT);
}

/*
 * GET /v1/agents/{name}: every version of one agent, newest first, each
 * with its content hash (what run records carry), its stored tree's hash
 * and its manifest (agent.json as registered). At most AGENT_VERSIONS_MAX
 * versions; "truncated" says when older ones were left out.
 */
enum MHD_Result h_agent_get(struct call *c)
{
	struct cdn_err err = { 0 };
	const char *name = c->seg[2];
	struct store_item it;
	if (store_name_check("agent", name, &err) < 0)
		return api_fail(c->conn, 404, "not_found", "no agent %s in workspace %s", name,
				c->key.workspace);
	int r = store_item_get(c->sv->s, STORE_AGENT, c->key.workspace, name, 0, &it, &err);
	if (r == -ENOENT)
		return api_fail(c->conn, 404, "not_found", "no agent %s in workspace %s", name,
				c->key.workspace);
	if (r < 0)
		return api_fail_err(c->conn, r, &err);
	unsigned latest = it.version;
	store_item_clear(&it);
	json_t *versions = json_array();
	unsigned oldest = latest > AGENT_VERSIONS_MAX ? latest - AGENT_VERSIONS_MAX + 1 : 1;
	for (unsigned v = latest; v >= oldest; v--) {
		if (store_item_get(c->sv->s, STORE_AGENT, c->key.workspace, name, v, &it, NULL) < 0)
			continue;
		char when[32];
		api_time(it.created * 1000, when, sizeof(when));
		json_t *manifest = it.doc ? json_loads(it.doc, JSON_REJECT_DUPLICATES, NULL) : NULL;
		json_array_append_new(versions,
				      json_pack("{s:I, s:s, s:s, s:s, s:o}", "version", (json_int_t)v,
						"sha256", it.hash, "tree_sha256", it.tree, "registered",
						when, "manifest", manifest ? manifest : json_null()));
		store_item_clear(&it);
	}
	return api_reply(c->conn, 200,
			 json_pack("{s:s, s:I, s:o, s:b}", "name", name, "latest", (json_int_t)latest,
				   "versions", versions, "truncated", oldest > 1));
}

enum MHD_Result h_agents_register(struct call *c)
{
	return items_register(c, STORE_AGENT);
}

enum MHD_Result h_capabilities_list(struct call *c)
{
	return items_list(c, STORE_CAPABILITY);
}

enum MHD_Result h_capabilities_register(struct call *c)
{
	return items_register(c, STORE_CAPABILITY);
}

enum MHD_Result h_envs_list(struct call *c)
{
	return items_list(c, STORE_ENV);
}

enum MHD_Result h_envs_register(struct call *c)
{
	return items_register(c, STORE_ENV);
}

enum MHD_Result h_grants_create(struct call *c)
{
	enum MHD_Result ret;
	json_t *b = api_body_json(c, &ret);
	if (!b)
		return ret;
	/* {"agent", "capability"}, or {"agent", "call"}: a grant to call
	 * another agent (call_agent), never both in one. */
	const char *agent = api_jstr(b, "agent"), *cap = api_jstr(b, "capability");
	const char *callee = api_jstr(b, "call");
	struct cdn_err err = { 0 };
	int r = agent && !cap != !callee
		    ? (cap ? registry_grant(c->sv->s, c->key.workspace, agent, cap, &err)
			   : registry_grant_call(c->sv->s, c->key.workspace, agent, callee, &err))
		    : cdn_err_msg(&err, EINVAL,
				  "expected {\"agent\": \"...\", \"capability\": \"...\"} or "
				  "{\"agent\": \"...\", \"call\": \"...\"}");
	json_t *j = r == 0 ? json_pack("{s:s, s:s, s:b}", "agent", agent, cap ? "capability" : "call",
				       cap ? cap : callee, "granted", 1)
			   : NULL;
	json_decref(b);
	if (r < 0)
		return api_fail_err(c->conn, r, &err);
	return api_reply(c->conn, 200, j);
}
