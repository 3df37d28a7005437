/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "registry/registry.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/cleanup.h"
#include "base/file.h"
#include "base/clock.h"
#include "base/hash.h"
#include "sandbox/sandbox.h"
#include "vault/vault.h"

static void result_from(struct registry_result *res, const char *name, unsigned version,
			const char *hash, bool created)
{
	snprintf(res->name, sizeof(res->name), "%s", name);
	res->version = version;
	snprintf(res->hash, sizeof(res->hash), "%s", hash);
	res->created = created;
}

int registry_agent_register(struct store *s, const char *ws, const char *dir,
			    struct registry_result *res, struct cdn_err *err)
{
	struct agent_manifest *m = NULL;
	int r = manifest_load_dir(dir, &m, err);
	if (r < 0)
		return r;
	/* The manifest as registered is the one inside the snapshot: re-read
	 * it from the tree so what is stored is what was hashed. From its
	 * blob, not a checkout: making 4,000 copies of a node_modules to read
	 * one file was half of what registering it cost; the first run makes
	 * the checkout. */
	struct store_item it = { .kind = STORE_AGENT };
	r = store_tree_import(s, dir, NULL, it.tree, err);
	if (r == 0) {
		struct agent_manifest *again = NULL;
		_cleanup_free_ char *doc = NULL;
		size_t n = 0;
		/* Whole or not at all: a read error or a file over the bound
		 * is an error, never a prefix that parses. */
		r = store_tree_file_read(s, it.tree, "agent.json", MANIFEST_MAX_BYTES, &doc, &n,
					 err);
		if (r == -EFBIG)
			r = cdn_err_msg(err, EFBIG, "read %s/agent.json: more than %d bytes", dir,
					MANIFEST_MAX_BYTES);
		else if (r == 0)
			r = manifest_parse(doc, n, "agent.json", &again, err);
		if (r == 0) {
			snprintf(it.workspace, sizeof(it.workspace), "%s", ws);
			snprintf(it.name, sizeof(it.name), "%s", again->name);
			snprintf(it.hash, sizeof(it.hash), "%s", it.tree);
			it.doc = doc;
			bool created = false;
			r = store_item_put(s, &it, &it.version, &created, err);
			if (r == 0)
				result_from(res, it.name, it.version, it.hash, created);
		}
		manifest_free(again);
	}
	manifest_free(m);
	return r;
}

int registry_capability_register(struct store *s, const char *ws, const char *name,
				 const char *dir, struct registry_result *res, struct cdn_err *err)
{
	int r = store_name_check("capability", name, err);
	if (r < 0)
		return r;
	struct stat st;
	if (stat(dir, &st) < 0)
		return cdn_err_set(err, errno, "capability %s: %s", name, dir);
	if (!S_ISDIR(st.st_mode))
		return cdn_err_msg(err, ENOTDIR, "capability %s: %s is not a directory", name, dir);
	struct store_item it = { .kind = STORE_CAPABILITY };
	if ((r = store_tree_import(s, dir, NULL, it.tree, err)) < 0)
		return r;
	snprintf(it.workspace, sizeof(it.workspace), "%s", ws);
	snprintf(it.name, sizeof(it.name), "%s", name);
	snprintf(it.hash, sizeof(it.hash), "%s", it.tree);
	bool created = false;
	if ((r = store_item_put(s, &it, &it.version, &created, err)) < 0)
		return r;
	result_from(res, name, it.version, it.hash, created);
	return 0;
}

int registry_env_vars(const char *what, bool service, const char *const *vars, size_t n,
		      json_t **out, struct cdn_err *err)
{
	*out = NULL;
	if (n > REGISTRY_MAX_ENV_VARS)
		return cdn_err_msg(err, E2BIG, "%s: at most %d variables", what,
				   REGISTRY_MAX_ENV_VARS);
	json_t *obj = json_object();
	int r = obj ? 0 : cdn_err_set(err, ENOMEM, "%s", what);
	for (size_t i = 0; i < n && r == 0; i++) {
		const char *eq = strchr(vars[i], '=');
		size_t kl = eq ? (size_t)(eq - vars[i]) : 0;
		char key[129];
		if (!eq || kl > 128 || !sandbox_env_name_ok(vars[i], kl)) {
			r = cdn_err_msg(err, EINVAL, "%s: '%.*s': expected NAME=VALUE", what,
					(int)(eq ? kl : strlen(vars[i]) > 64 ? 64 : strlen(vars[i])),
					vars[i]);
			break;
		}
		snprintf(key, sizeof(key), "%.*s", (int)kl, vars[i]);
		if (vault_name_looks_secret(key)) {
			r = service ? cdn_err_msg(err, EINVAL,
						  "%s: --env %s looks like a secret; store it with "
						  "'cordon secret set %s' and pass --secret %s instead",
						  what, key, key, key)
				    : cdn_err_msg(err, EINVAL,
						  "%s: %s looks like a secret; store it with "
						  "'cordon secret set %s' and list it in the agent's "
						  "required_secrets",
						  what, key, key);
			break;
		}
		if (strlen(eq + 1) > REGISTRY_MAX_ENV_VALUE) {
			r = cdn_err_msg(err, E2BIG, "%s: %s: value longer than %d bytes", what, key,
					REGISTRY_MAX_ENV_VALUE);
			break;
		}
		if (json_object_get(obj, key)) {
			r = cdn_err_msg(err, EINVAL, "%s: %s is given twice", what, key);
			break;
		}
		json_t *v = json_string(eq + 1);
		if (!v) {
			r = cdn_err_msg(err, EINVAL, "%s: %s: value is not valid UTF-8", what, key);
			break;
		}
		json_object_set_new(obj, key, v);
	}
	if (r < 0) {
		json_decref(obj);
		return r;
	}
	*out = obj;
	return 0;
}

int registry_env_register(struct store *s, const char *ws, const char *name,
			  const char *const *vars, size_t n, struct registry_result *res,
			  struct cdn_err *err)
{
	int r = store_name_check("env", name, err);
	if (r < 0)
		return r;
	char what[80];
	snprintf(what, sizeof(what), "env %s", name);
	json_t *obj;
	if ((r = registry_env_vars(what, false, vars, n, &obj, err)) < 0)
		return r;
	/* Canonical form: compact, sorted keys; its sha256 is the hash. */
	_cleanup_free_ char *doc = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
	json_decref(obj);
	if (!doc)
		return cdn_err_set(err, ENOMEM, "env %s", name);
	struct store_item it = { .kind = STORE_ENV, .doc = doc };
	snprintf(it.workspace, sizeof(it.workspace), "%s", ws);
	snprintf(it.name, sizeof(it.name), "%s", name);
	cdn_sha256_hex(doc, strlen(doc), it.hash);
	bool created = false;
	if ((r = store_item_put(s, &it, &it.version, &created, err)) < 0)
		return r;
	result_from(res, name, it.version, it.hash, created);
	return 0;
}

int registry_service_create(struct store *s, struct store_service *sv, const char *const *vars,
			    size_t n_vars, const char *const *secrets, size_t n_secrets,
			    struct cdn_err *err)
{
	int r = store_name_check("service", sv->name, err);
	if (r < 0)
		return r;
	char what[80];
	snprintf(what, sizeof(what), "service %s", sv->name);
	if (n_vars > STORE_SERVICE_ENV_MAX)
		return cdn_err_msg(err, E2BIG, "%s: at most %d --env", what, STORE_SERVICE_ENV_MAX);
	if (n_secrets > STORE_SERVICE_SECRETS_MAX)
		return cdn_err_msg(err, E2BIG, "%s: at most %d --secret", what,
				   STORE_SERVICE_SECRETS_MAX);
	json_t *env = NULL;
	if ((r = registry_env_vars(what, true, vars, n_vars, &env, err)) < 0)
		return r;
	json_t *names = json_array();
	for (size_t i = 0; i < n_secrets && r == 0; i++) {
		const char *n = secrets[i];
		size_t len = strlen(n);
		if (len > MANIFEST_MAX_SECRET_NAME || !sandbox_env_name_ok(n, len) ||
		    !store_secret_name_ok(n)) {
			r = cdn_err_msg(err, EINVAL,
					"%s: --secret '%.64s': a secret's name, which is also the "
					"variable the run gets it in: [A-Za-z][A-Za-z0-9_]{0,63}",
					what, n);
			break;
		}
		if (json_object_get(env, n)) {
			r = cdn_err_msg(err, EINVAL, "%s: %s is both --env and --secret", what, n);
			break;
		}
		for (size_t k = 0; k < i; k++)
			if (strcmp(secrets[k], n) == 0)
				r = cdn_err_msg(err, EINVAL, "%s: --secret %s is given twice", what, n);
		uint8_t *blob = NULL;
		size_t bl = 0;
		struct cdn_err e2 = { 0 };
		int g = r < 0 ? 0 : store_secret_get(s, sv->workspace, n, &blob, &bl, &e2);
		free(blob);
		if (g == -ENOENT)
			r = cdn_err_msg(err, ENOENT,
					"%s: secret %s is not set in workspace %s (cordon secret set "
					"%s)",
					what, n, sv->workspace, n);
		else if (g < 0)
			r = cdn_err_msg(err, -g, "%s: secret %s: %s", what, n, e2.msg);
		if (r == 0)
			json_array_append_new(names, json_string(n));
	}
	if (r == 0) {
		sv->env_json = json_object_size(env)
				       ? json_dumps(env, JSON_COMPACT | JSON_SORT_KEYS)
				       : NULL;
		sv->secrets_json = json_array_size(names) ? json_dumps(names, JSON_COMPACT) : NULL;
		if ((json_object_size(env) && !sv->env_json) ||
		    (json_array_size(names) && !sv->secrets_json))
			r = cdn_err_set(err, ENOMEM, "%s", what);
	}
	json_decref(env);
	json_decref(names);
	return r < 0 ? r : store_service_new(s, sv, (int64_t)cdn_wall_ms(), err);
}

int registry_grant(struct store *s, const char *ws, const char *agent, const char *capability,
		   struct cdn_err *err)
{
	int r = store_name_check("agent", agent, err);
	if (r == 0)
		r = store_name_check("capability", capability, err);
	if (r < 0)
		return r;
	struct store_item it = { 0 };
	if ((r = store_item_get(s, STORE_CAPABILITY, ws, capability, 0, &it, err)) < 0) {
		if (r == -ENOENT)
			cdn_err_msg(err, ENOENT, "capability %s is not registered", capability);
		return r;
	}
	store_item_clear(&it);
	return store_grant_add(s, ws, agent, capability, err);
}

int registry_grant_call(struct store *s, const char *ws, const char *agent, const char *callee,
			struct cdn_err *err)
{
	int r = store_name_check("agent", agent, err);
	if (r == 0)
		r = store_name_check("callee", callee, err);
	if (r < 0)
		return r;
	struct store_item it = { 0 };
	if ((r = store_item_get(s, STORE_AGENT, ws, callee, 0, &it, err)) < 0) {
		if (r == -ENOENT)
			cdn_err_msg(err, ENOENT, "agent %s is not registered", callee);
		return r;
	}
	store_item_clear(&it);
	char cap[sizeof(REGISTRY_CALL_PREFIX) + STORE_MAX_NAME];
	snprintf(cap, sizeof(cap), REGISTRY_CALL_PREFIX "%s", callee);
	return store_grant_add(s, ws, agent, cap, err);
}

bool registry_call_granted(struct store *s, const char *ws, const char *agent, const char *callee)
{
	char cap[sizeof(REGISTRY_CALL_PREFIX) + STORE_MAX_NAME];
	if (!store_name_ok(callee))
		return false;
	snprintf(cap, sizeof(cap), REGISTRY_CALL_PREFIX "%s", callee);
	return store_grant_has(s, ws, agent, cap);
}

static bool is_dir(const char *ref)
{
	struct stat st;
	return stat(ref, &st) == 0 && S_ISDIR(st.st_mode);
}

/* A path says so with a '/' ("./x", "/srv/x", "x/"). A bare word is a
 * registered name first, and a directory only when no agent has it. */
static bool looks_like_dir(struct store *s, const char *ws, const char *ref)
{
	if (strchr(ref, '/'))
		return true;
	if (!is_dir(ref) || strchr(ref, '@'))
		return false;
	struct store_item it = { 0 };
	if (store_item_get(s, STORE_AGENT, ws, ref, 0, &it, NULL) == 0) {
		store_item_clear(&it);
		return false;
	}
	return true;
}

int registry_resolve_agent(struct store *s, const char *ws, const char *ref,
			   struct resolved_agent *out, struct cdn_err *err)
{
	memset(out, 0, sizeof(*out));
	int r;
	if (looks_like_dir(s, ws, ref)) {
		/* Unregistered: snapshot it like a registration would, and run
		 * the snapshot, so the recorded hash is what ran. */
		/* The manifest is read from the snapshot, not the directory, so
		 * what runs is what was hashed even if the directory changes.
		 * A quick check first gives manifest errors before any import. */
		struct agent_manifest *pre = NULL;
		if ((r = manifest_load_dir(ref, &pre, err)) < 0)
			return r;
		manifest_free(pre);
		if ((r = store_tree_import(s, ref, NULL, out->hash, err)) < 0 ||
		    (r = store_tree_checkout(s, out->hash, out->tree_path, sizeof(out->tree_path),
					     err)) < 0 ||
		    (r = manifest_load_dir(out->tree_path, &out->manifest, err)) < 0) {
			registry_resolved_clear(out);
			return r;
		}
		snprintf(out->name, sizeof(out->name), "%s", out->manifest->name);
		return 0;
	}
	char name[STORE_MAX_NAME + 1];
	unsigned version = 0;
	const char *at = strchr(ref, '@');
	size_t nl = at ? (size_t)(at - ref) : strlen(ref);
	if (nl == 0 || nl > STORE_MAX_NAME)
		return cdn_err_msg(err, EINVAL, "agent '%s': expected a directory or NAME[@VERSION]",
				   ref);
	snprintf(name, sizeof(name), "%.*s", (int)nl, ref);
	if ((r = store_name_check("agent", name, err)) < 0)
		return r;
	if (at) {
		char *end;
		unsigned long v = strtoul(at + 1, &end, 10);
		if (!at[1] || *end || v == 0 || v > 1000000)
			return cdn_err_msg(err, EINVAL,
					   "agent '%s': the version after '@' is a number (1, 2, ...)",
					   ref);
		version = (unsigned)v;
	}
	struct store_item it = { 0 };
	if ((r = store_item_get(s, STORE_AGENT, ws, name, version, &it, err)) < 0) {
		if (r == -ENOENT && version)
			cdn_err_msg(err, ENOENT, "agent %s has no version %u", name, version);
		else if (r == -ENOENT)
			cdn_err_msg(err, ENOENT,
				    "agent %s is not registered (cordon agent register DIR), and "
				    "there is no directory by that name",
				    name);
		return r;
	}
	r = manifest_parse(it.doc ? it.doc : "", it.doc ? strlen(it.doc) : 0, "agent.json",
			   &out->manifest, err);
	if (r == 0)
		r = store_tree_checkout(s, it.tree, out->tree_path, sizeof(out->tree_path), err);
	if (r == 0) {
		snprintf(out->name, sizeof(out->name), "%s", it.name);
		out->version = it.version;
		snprintf(out->hash, sizeof(out->hash), "%s", it.hash);
	}
	store_item_clear(&it);
	if (r < 0)
		registry_resolved_clear(out);
	return r;
}

void registry_resolved_clear(struct resolved_agent *a)
{
	manifest_free(a->manifest);
	a->manifest = NULL;
}
