/* SPDX-License-Identifier: Apache-2.0 */
/*
 * /v1/services: the workspace's services (docs/services.md). Members list,
 * read and follow their output; owners create, pause, resume and remove.
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
#include "registry/registry.h"

static enum MHD_Result one(struct call *c, const char *name, unsigned status)
{
	struct store_service sv;
	struct cdn_err err = { 0 };
	int r = store_service_get(c->sv->s, c->key.workspace, name, &sv, &err);
	if (r == -ENOENT || r == -EINVAL)
		return api_fail(c->conn, 404, "not_found", "no service %.64s", name);
	if (r < 0)
		return api_fail_err(c->conn, r, &err);
	json_t *j = store_service_json(&sv, (int64_t)cdn_wall_ms());
	store_service_clear(&sv);
	return j ? api_reply(c->conn, status, j) : MHD_NO;
}

enum MHD_Result h_services_list(struct call *c)
{
	struct store_service *v = NULL;
	size_t n = 0;
	struct cdn_err err = { 0 };
	int r = store_service_list(c->sv->s, c->key.workspace, &v, &n, &err);
	if (r < 0)
		return api_fail_err(c->conn, r, &err);
	json_t *items = json_array();
	int64_t now = (int64_t)cdn_wall_ms();
	for (size_t i = 0; items && i < n; i++)
		json_array_append_new(items, store_service_json(&v[i], now));
	store_services_free(v, n);
	return api_reply(c->conn, 200, json_pack("{s:o}", "items", items));
}

/* The body's "env" ({"K": "V"}) as "K=V" strings in vars (each malloc'd). */
static int env_strings(json_t *env, char **vars, size_t cap, size_t *n, char *why, size_t wcap)
{
	*n = 0;
	if (!env)
		return 0;
	if (!json_is_object(env)) {
		snprintf(why, wcap, "env: an object of names and string values");
		return -1;
	}
	if (json_object_size(env) > cap) {
		snprintf(why, wcap, "env: at most %zu names", cap);
		return -1;
	}
	const char *k;
	json_t *v;
	json_object_foreach(env, k, v)
	{
		if (!json_is_string(v)) {
			snprintf(why, wcap, "env: %.64s: the value must be a string", k);
			return -1;
		}
		if (strchr(k, '=')) {
			snprintf(why, wcap, "env: '%.64s': a name has no '='", k);
			return -1;
		}
		if (asprintf(&vars[*n], "%s=%s", k, json_string_value(v)) < 0) {
			snprintf(why, wcap, "env: out of memory");
			return -1;
		}
		(*n)++;
	}
	return 0;
}

enum MHD_Result h_service_create(struct call *c)
{
	enum MHD_Result ret;
	json_t *b = api_body_json(c, &ret);
	if (!b)
		return ret;
	struct store_service sv = { 0 };
	char why[256] = "";
	const char *key;
	json_t *v;
	json_object_foreach(b, key, v)
	{
		static const char *const known[] = { "name", "agent", "input", "env", "secrets" };
		bool ok = false;
		for (size_t i = 0; i < CDN_ARRAY_SIZE(known); i++)
			ok = ok || strcmp(key, known[i]) == 0;
		if (!ok) {
			snprintf(why, sizeof(why),
				 "%.64s: unknown field (name, agent, input, env, secrets)", key);
			break;
		}
	}
	const char *name = json_string_value(json_object_get(b, "name"));
	const char *agent = json_string_value(json_object_get(b, "agent"));
	json_t *input = json_object_get(b, "input"), *secrets = json_object_get(b, "secrets");
	char *vars[STORE_SERVICE_ENV_MAX] = { NULL };
	const char *names[STORE_SERVICE_SECRETS_MAX];
	size_t n_vars = 0, n_names = 0;
	if (why[0])
		;
	else if (!name || !*name || strlen(name) >= sizeof(sv.name))
		snprintf(why, sizeof(why), "name: a string is needed, at most %zu bytes",
			 sizeof(sv.name) - 1);
	else if (!agent || !*agent || strlen(agent) >= sizeof(sv.agent))
		snprintf(why, sizeof(why), "agent: NAME or NAME@VERSION is needed");
	else if (input && !json_is_object(input))
		snprintf(why, sizeof(why), "input must be a JSON object");
	else if (secrets && (!json_is_array(secrets) ||
			     json_array_size(secrets) > STORE_SERVICE_SECRETS_MAX))
		snprintf(why, sizeof(why), "secrets: a list of at most %d secret names",
			 STORE_SERVICE_SECRETS_MAX);
	else
		(void)env_strings(json_object_get(b, "env"), vars, STORE_SERVICE_ENV_MAX, &n_vars,
				  why, sizeof(why));
	for (size_t i = 0; !why[0] && secrets && i < json_array_size(secrets); i++)
		if (!(names[n_names++] = json_string_value(json_array_get(secrets, i))))
			snprintf(why, sizeof(why), "secrets: each is a secret's name");
	struct cdn_err err = { 0 };
	int r = 0;
	if (!why[0]) {
		snprintf(sv.workspace, sizeof(sv.workspace), "%s", c->key.workspace);
		snprintf(sv.name, sizeof(sv.name), "%s", name);
		snprintf(sv.agent, sizeof(sv.agent), "%s", agent);
		snprintf(sv.created_by, sizeof(sv.created_by), "key:%s (%s)", c->key.id,
			 c->key.name);
		sv.input_json = input ? json_dumps(input, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
		r = input && !sv.input_json
			? cdn_err_set(&err, ENOMEM, "input")
			: registry_service_create(c->sv->s, &sv, (const char *const *)vars, n_vars,
						  names, n_names, &err);
	}
	for (size_t i = 0; i < n_vars; i++)
		free(vars[i]);
	char created[sizeof(sv.name)];
	snprintf(created, sizeof(created), "%s", sv.name);
	store_service_clear(&sv);
	json_decref(b);
	if (why[0])
		return api_fail(c->conn, 400, "bad_request", "%s", why);
	if (r == -ENOENT)
		return api_fail(c->conn, 404, "not_found", "%s", err.msg);
	if (r == -EEXIST || r == -EDQUOT)
		return api_fail(c->conn, 409, "conflict", "%s", err.msg);
	if (r == -EINVAL || r == -E2BIG)
		return api_fail(c->conn, 400, "bad_request", "%s", err.msg);
	if (r < 0)
		return api_fail_err(c->conn, r, &err);
	return one(c, created, 201);
}

enum MHD_Result h_service_get(struct call *c)
{
	return one(c, c->seg[2], 200);
}

enum MHD_Result h_service_delete(struct call *c)
{
	struct cdn_err err = { 0 };
	char run[STORE_RUN_ID_MAX + 1];
	int r = store_service_delete(c->sv->s, c->key.workspace, c->seg[2], run, &err);
	/* Its run goes with it (the row first, so nothing restarts it; a start
	 * in between finds the row gone and cancels its own). */
	if (r == 0 && run[0]) {
		char why[128];
		snprintf(why, sizeof(why), "its service %.64s was removed", c->seg[2]);
		(void)dispatch_cancel(c->sv, c->key.workspace, run, why);
	}
	if (r == -ENOENT || r == -EINVAL)
		return api_fail(c->conn, 404, "not_found", "no service %.64s", c->seg[2]);
	if (r < 0)
		return api_fail_err(c->conn, r, &err);
	return api_reply(c->conn, 200, json_pack("{s:s, s:b}", "name", c->seg[2], "removed", 1));
}

static enum MHD_Result pause_or_resume(struct call *c, bool pause)
{
	struct cdn_err err = { 0 };
	char run[STORE_RUN_ID_MAX + 1], why[160];
	snprintf(why, sizeof(why), "paused by key:%s (%s)", c->key.id, c->key.name);
	int r = store_service_pause(c->sv->s, c->key.workspace, c->seg[2], pause, why, run, &err);
	if (r == -ENOENT || r == -EINVAL)
		return api_fail(c->conn, 404, "not_found", "no service %.64s", c->seg[2]);
	if (r < 0)
		return api_fail_err(c->conn, r, &err);
	/* The service manager stops a paused service's run (SIGTERM first). */
	return one(c, c->seg[2], 200);
}

enum MHD_Result h_service_pause(struct call *c)
{
	return pause_or_resume(c, true);
}

enum MHD_Result h_service_resume(struct call *c)
{
	return pause_or_resume(c, false);
}

/* The output of the service's run, or of the one before when none runs:
 * as GET /v1/runs/{id}/stdout (follow, offset). */
static enum MHD_Result output(struct call *c, bool err_stream)
{
	struct store_service sv;
	struct cdn_err err = { 0 };
	int r = store_service_get(c->sv->s, c->key.workspace, c->seg[2], &sv, &err);
	if (r == -ENOENT || r == -EINVAL)
		return api_fail(c->conn, 404, "not_found", "no service %.64s", c->seg[2]);
	if (r < 0)
		return api_fail_err(c->conn, r, &err);
	char run[STORE_RUN_ID_MAX + 1];
	snprintf(run, sizeof(run), "%s", sv.current_run[0] ? sv.current_run : sv.last_run);
	store_service_clear(&sv);
	if (!run[0])
		return api_fail(c->conn, 404, "not_found", "service %.64s has not run yet",
				c->seg[2]);
	c->seg[2] = run;
	return err_stream ? h_run_stderr(c) : h_run_stdout(c);
}

enum MHD_Result h_service_stdout(struct call *c)
{
	return output(c, false);
}

enum MHD_Result h_service_stderr(struct call *c)
{
	return output(c, true);
}
