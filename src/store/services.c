/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Services (store.h, docs/services.md): the checks every backend shares,
 * then the backend's query. What --env and --secret hold is the registry's
 * to judge (registry_service_create); here only names, shapes and bounds.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/clock.h"
#include "base/text.h"
#include "store/internal.h"

void store_service_clear(struct store_service *sv)
{
	free(sv->input_json);
	free(sv->env_json);
	free(sv->secrets_json);
	sv->input_json = sv->env_json = sv->secrets_json = NULL;
}

void store_services_free(struct store_service *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		store_service_clear(&v[i]);
	free(v);
}

static int ids_check(const char *ws, const char *name, struct cdn_err *err)
{
	int r = store_name_check("workspace", ws, err);
	return r < 0 ? r : store_name_check("service", name, err);
}

static int text_check(const char *what, const char *v, size_t cap, struct cdn_err *err)
{
	return store_text_check("service", what, v, cap, err);
}

/* A JSON field: absent, or text that parses as the type it must be. */
static int json_check(const char *what, const char *text, bool object, size_t max,
		      struct cdn_err *err)
{
	if (!text)
		return 0;
	if (strlen(text) > max)
		return cdn_err_msg(err, E2BIG, "service: %s is over %zu bytes", what, max);
	json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
	bool ok = object ? json_is_object(j) : json_is_array(j);
	json_decref(j);
	return ok ? 0 : cdn_err_msg(err, EINVAL, "service: %s is not a JSON %s", what,
				    object ? "object" : "array");
}

int store_service_new(struct store *s, struct store_service *sv, int64_t now_ms,
		      struct cdn_err *err)
{
	int r;
	if ((r = ids_check(sv->workspace, sv->name, err)) < 0 ||
	    (r = text_check("agent", sv->agent, sizeof(sv->agent), err)) < 0 ||
	    (r = text_check("created_by", sv->created_by, sizeof(sv->created_by), err)) < 0 ||
	    (r = json_check("input", sv->input_json, true, STORE_MAX_RUN_JSON, err)) < 0 ||
	    (r = json_check("env", sv->env_json, true, 300 * 1024, err)) < 0 ||
	    (r = json_check("secrets", sv->secrets_json, false, 4096, err)) < 0)
		return r;
	/* The agent must be registered (a version, when named, too). */
	if ((r = store_agent_ref_check(s, sv->workspace, "service", sv->agent, err)) < 0)
		return r;
	/* A bound: each service is a run that holds a slot, and a look of the
	 * service manager. */
	struct store_service *all = NULL;
	size_t n = 0;
	if ((r = store_service_list(s, sv->workspace, &all, &n, err)) < 0)
		return r;
	store_services_free(all, n);
	if (n >= STORE_SERVICES_MAX)
		return cdn_err_msg(err, EDQUOT, "workspace %s has %d services, its most; remove one "
						"first",
				   sv->workspace, STORE_SERVICES_MAX);
	sv->created_ms = now_ms;
	sv->next_ms = 0;
	sv->current_run[0] = sv->last_run[0] = sv->exit_times[0] = sv->last_exit[0] = sv->pause_reason[0] = '\0';
	r = s->ops->service_create(s, sv, err);
	if (r == -EEXIST)
		return cdn_err_msg(err, EEXIST, "service %s already exists in workspace %s",
				   sv->name, sv->workspace);
	return r;
}

int store_service_get(struct store *s, const char *ws, const char *name,
		      struct store_service *out, struct cdn_err *err)
{
	memset(out, 0, sizeof(*out));
	int r = ids_check(ws, name, err);
	return r < 0 ? r : s->ops->service_get(s, ws, name, out, err);
}

int store_service_list(struct store *s, const char *ws, struct store_service **out, size_t *n,
		       struct cdn_err *err)
{
	*out = NULL;
	*n = 0;
	int r = ws ? store_name_check("workspace", ws, err) : 0;
	return r < 0 ? r : s->ops->service_list(s, ws, out, n, err);
}

int store_service_delete(struct store *s, const char *ws, const char *name,
			 char run[STORE_RUN_ID_MAX + 1], struct cdn_err *err)
{
	run[0] = '\0';
	for (int tries = 0; tries < 20; tries++) {
		struct store_service sv;
		int r = store_service_get(s, ws, name, &sv, err);
		if (r < 0)
			return r;
		/* The run it has at the generation removed: one a node set just
		 * before is this one, never lost. */
		snprintf(run, STORE_RUN_ID_MAX + 1, "%s", sv.current_run);
		r = s->ops->service_delete(s, ws, name, sv.gen, err);
		store_service_clear(&sv);
		if (r != 0)
			return r < 0 ? r : 0;
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	return cdn_err_msg(err, EBUSY, "service %s: changed too often to remove; try again", name);
}

int store_service_update(struct store *s, struct store_service *sv, struct cdn_err *err)
{
	int r;
	if ((r = ids_check(sv->workspace, sv->name, err)) < 0 ||
	    (sv->current_run[0] && (r = store_run_id_check(sv->current_run, err)) < 0) ||
	    (sv->last_run[0] && (r = store_run_id_check(sv->last_run, err)) < 0))
		return r;
	/* Reasons are made of what runs said: printable, within the field. */
	struct store_service c = *sv;
	cdn_printable_str(c.pause_reason, sizeof(c.pause_reason), sv->pause_reason, CDN_TEXT_UTF8);
	cdn_printable_str(c.last_exit, sizeof(c.last_exit), sv->last_exit, CDN_TEXT_UTF8);
	if (strspn(c.exit_times, "0123456789,") != strlen(c.exit_times))
		return cdn_err_msg(err, EINVAL, "service: exit times: numbers and commas");
	r = s->ops->service_update(s, &c, err);
	if (r == 1)
		sv->gen++;
	return r;
}

int store_service_pause(struct store *s, const char *ws, const char *name, bool paused,
			const char *why, char run[STORE_RUN_ID_MAX + 1], struct cdn_err *err)
{
	run[0] = '\0';
	for (int tries = 0; tries < 20; tries++) {
		struct store_service sv;
		int r = store_service_get(s, ws, name, &sv, err);
		if (r < 0)
			return r;
		snprintf(run, STORE_RUN_ID_MAX + 1, "%s", sv.current_run);
		sv.paused = paused;
		snprintf(sv.pause_reason, sizeof(sv.pause_reason), "%s", paused && why ? why : "");
		/* A start another node has claimed but not finished is undone: its
		 * own update then fails, and it cancels the run it made. */
		if (!sv.current_run[0] && sv.next_ms < 0)
			sv.next_ms = 0;
		if (!paused) {
			/* A fresh start: the crash-loop count and the backoff go. */
			sv.exit_times[0] = '\0';
			if (!sv.current_run[0])
				sv.next_ms = 0;
		}
		r = store_service_update(s, &sv, err);
		store_service_clear(&sv);
		if (r != 0)
			return r < 0 ? r : 0;
		/* Another node changed it in between: read it again. */
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	return cdn_err_msg(err, EBUSY, "service %s: changed too often to %s; try again", name,
			   paused ? "pause" : "resume");
}

static json_t *time_or_null(int64_t ms)
{
	char t[CDN_RFC3339_MAX];
	return ms > 0 ? json_string(cdn_rfc3339(ms, CDN_TIME_MS, t, sizeof(t))) : json_null();
}

static json_t *loads_or(const char *text, json_t *dflt)
{
	json_t *j = text ? json_loads(text, 0, NULL) : NULL;
	if (j) {
		json_decref(dflt);
		return j;
	}
	return dflt;
}

json_t *store_service_json(const struct store_service *sv, int64_t now_ms)
{
	const char *state = sv->paused		? "paused"
			    : sv->current_run[0] ? "running"
			    : sv->next_ms < 0	? "starting"
			    : sv->next_ms > now_ms ? "waiting"
						   : "starting";
	/* env holds no secret: names that look like one are refused
	 * (registry_service_create); secrets are names only. */
	json_t *j = json_pack(
	    "{s:s, s:s, s:o, s:o, s:o, s:s, s:o, s:o, s:s, s:o, s:I, s:I, s:I}", "name", sv->name,
	    "agent", sv->agent, "input", loads_or(sv->input_json, json_object()), "env",
	    loads_or(sv->env_json, json_object()), "secrets",
	    loads_or(sv->secrets_json, json_array()), "state", state, "paused_reason",
	    sv->paused && sv->pause_reason[0] ? json_string(sv->pause_reason) : json_null(), "created",
	    time_or_null(sv->created_ms), "created_by", sv->created_by, "run",
	    sv->current_run[0] ? json_string(sv->current_run) : json_null(), "starts",
	    (json_int_t)sv->starts, "restarts", (json_int_t)(sv->starts ? sv->starts - 1 : 0),
	    "exits", (json_int_t)sv->exits);
	if (!j)
		return NULL;
	json_object_set_new(j, "last_exit",
			    sv->last_exit_ms ? json_pack("{s:o, s:s}", "at",
							 time_or_null(sv->last_exit_ms), "reason",
							 sv->last_exit)
					     : json_null());
	json_object_set_new(j, "last_run",
			    sv->last_run[0] ? json_string(sv->last_run) : json_null());
	json_object_set_new(j, "next_start",
			    !sv->paused && !sv->current_run[0] && sv->next_ms > now_ms
				? time_or_null(sv->next_ms)
				: json_null());
	return j;
}
