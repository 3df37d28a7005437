/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Schedules (store.h, docs/schedules.md): the checks every backend shares,
 * then the backend's query. The cron expression itself is checked by its
 * parser (src/base/cron.h) before a schedule gets here; here only bounds.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/cleanup.h"
#include "base/clock.h"
#include "base/cron.h"
#include "base/text.h"
#include "store/internal.h"

static const char *const overlaps[] = { [OVERLAP_FORBID] = "forbid",
					[OVERLAP_ALLOW] = "allow",
					[OVERLAP_REPLACE] = "replace" };
static const char *const catchups[] = { [CATCHUP_SKIP] = "skip", [CATCHUP_ONCE] = "once" };

const char *store_overlap_name(enum store_overlap o)
{
	return (size_t)o < CDN_ARRAY_SIZE(overlaps) ? overlaps[o] : "?";
}

int store_overlap_parse(const char *name, enum store_overlap *out)
{
	int i = store_name_pick(overlaps, CDN_ARRAY_SIZE(overlaps), name);
	if (i >= 0)
		*out = (enum store_overlap)i;
	return i < 0 ? i : 0;
}

const char *store_catchup_name(enum store_catchup c)
{
	return (size_t)c < CDN_ARRAY_SIZE(catchups) ? catchups[c] : "?";
}

int store_catchup_parse(const char *name, enum store_catchup *out)
{
	int i = store_name_pick(catchups, CDN_ARRAY_SIZE(catchups), name);
	if (i >= 0)
		*out = (enum store_catchup)i;
	return i < 0 ? i : 0;
}

void store_schedule_clear(struct store_schedule *sc)
{
	free(sc->input_json);
	sc->input_json = NULL;
}

void store_schedules_free(struct store_schedule *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		store_schedule_clear(&v[i]);
	free(v);
}

static int text_check(const char *what, const char *v, size_t cap, struct cdn_err *err)
{
	return store_text_check("schedule", what, v, cap, err);
}

static int ids_check(const char *ws, const char *name, struct cdn_err *err)
{
	int r = store_name_check("workspace", ws, err);
	return r < 0 ? r : store_name_check("schedule", name, err);
}

int store_schedule_create(struct store *s, const struct store_schedule *sc, struct cdn_err *err)
{
	int r;
	if ((r = ids_check(sc->workspace, sc->name, err)) < 0 ||
	    (r = text_check("agent", sc->agent, sizeof(sc->agent), err)) < 0 ||
	    (r = text_check("cron", sc->cron, sizeof(sc->cron), err)) < 0 ||
	    (r = text_check("tz", sc->tz, sizeof(sc->tz), err)) < 0 ||
	    (r = text_check("created_by", sc->created_by, sizeof(sc->created_by), err)) < 0)
		return r;
	if (sc->input_json && strlen(sc->input_json) > STORE_MAX_RUN_JSON)
		return cdn_err_msg(err, EINVAL, "schedule: input is over %d bytes",
				   STORE_MAX_RUN_JSON);
	if ((size_t)sc->overlap >= CDN_ARRAY_SIZE(overlaps) ||
	    (size_t)sc->catchup >= CDN_ARRAY_SIZE(catchups))
		return cdn_err_msg(err, EINVAL, "schedule: overlap or catch-up out of range");
	r = s->ops->schedule_create(s, sc, err);
	if (r == -EEXIST)
		return cdn_err_msg(err, EEXIST, "schedule %s already exists in workspace %s",
				   sc->name, sc->workspace);
	return r;
}

int store_schedule_get(struct store *s, const char *ws, const char *name,
		       struct store_schedule *out, struct cdn_err *err)
{
	memset(out, 0, sizeof(*out));
	int r = ids_check(ws, name, err);
	return r < 0 ? r : s->ops->schedule_get(s, ws, name, out, err);
}

int store_schedule_list(struct store *s, const char *ws, int64_t due_ms,
			struct store_schedule **out, size_t *n, struct cdn_err *err)
{
	*out = NULL;
	*n = 0;
	int r = ws ? store_name_check("workspace", ws, err) : 0;
	return r < 0 ? r : s->ops->schedule_list(s, ws, due_ms > 0 ? due_ms : 0, out, n, err);
}

int store_schedule_delete(struct store *s, const char *ws, const char *name,
			  struct cdn_err *err)
{
	int r = ids_check(ws, name, err);
	return r < 0 ? r : s->ops->schedule_delete(s, ws, name, err);
}

int store_schedule_pause(struct store *s, const char *ws, const char *name, bool paused,
			 int64_t next_ms, struct cdn_err *err)
{
	int r = ids_check(ws, name, err);
	return r < 0 ? r : s->ops->schedule_pause(s, ws, name, paused, next_ms, err);
}

int store_schedule_claim(struct store *s, const char *ws, const char *name, int64_t due,
			 int64_t next, struct cdn_err *err)
{
	int r = ids_check(ws, name, err);
	return r < 0 ? r : s->ops->schedule_claim(s, ws, name, due, next, err);
}

int store_schedule_record(struct store *s, const char *ws, const char *name, int64_t when_ms,
			  const char *run_id, const char *skip_why, struct cdn_err *err)
{
	int r = ids_check(ws, name, err);
	if (r < 0)
		return r;
	if ((run_id == NULL) == (skip_why == NULL))
		return cdn_err_msg(err, EINVAL, "schedule: a run or a reason to skip, one of them");
	char why[256];
	if (skip_why)
		cdn_printable_str(why, sizeof(why), skip_why, CDN_TEXT_UTF8);
	if (run_id && (r = store_run_id_check(run_id, err)) < 0)
		return r;
	return s->ops->schedule_record(s, ws, name, when_ms, run_id, skip_why ? why : NULL, err);
}

static json_t *time_or_null(int64_t ms)
{
	char t[CDN_RFC3339_MAX];
	return ms > 0 ? json_string(cdn_rfc3339(ms, CDN_TIME_MS, t, sizeof(t))) : json_null();
}

json_t *store_schedule_json(const struct store_schedule *sc)
{
	json_t *input = sc->input_json ? json_loads(sc->input_json, 0, NULL) : json_object();
	json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:o, s:s, s:s, s:b, s:s, s:o, s:o, s:I, s:I}",
			      "name", sc->name, "agent", sc->agent, "cron", sc->cron, "tz",
			      sc->tz[0] ? sc->tz : "UTC", "input", input ? input : json_null(),
			      "overlap", store_overlap_name(sc->overlap), "catch_up",
			      store_catchup_name(sc->catchup), "paused", sc->paused, "created_by",
			      sc->created_by, "created", time_or_null(sc->created_ms), "next",
			      time_or_null(sc->paused ? 0 : sc->next_ms), "fired",
			      (json_int_t)sc->fired, "skipped", (json_int_t)sc->skipped);
	if (!j)
		return NULL;
	json_object_set_new(j, "last_run", sc->last_run[0] ? json_string(sc->last_run) : json_null());
	json_object_set_new(j, "last_fired", time_or_null(sc->last_fire_ms));
	json_object_set_new(j, "last_skip",
			    sc->last_skip_ms ? json_pack("{s:o, s:s}", "at",
							 time_or_null(sc->last_skip_ms), "reason",
							 sc->last_skip)
					     : json_null());
	return j;
}

int store_schedule_new(struct store *s, struct store_schedule *sc, int64_t now_ms,
		       struct cdn_err *err)
{
	struct cron_spec spec;
	int r = cron_parse(sc->cron, sc->tz, &spec, err);
	if (r < 0)
		return r;
	/* The agent must be registered (a version, when named, too): a
	 * schedule of nothing would only ever skip. */
	if ((r = store_agent_ref_check(s, sc->workspace, "schedule", sc->agent, err)) < 0)
		return r;
	/* A bound, so that one workspace's schedules cannot fill the
	 * scheduler's ticks (each fire is a claim, a read and a run). */
	struct store_schedule *all = NULL;
	size_t n = 0;
	if ((r = store_schedule_list(s, sc->workspace, 0, &all, &n, err)) < 0)
		return r;
	store_schedules_free(all, n);
	if (n >= STORE_SCHEDULES_MAX)
		return cdn_err_msg(err, EDQUOT, "workspace %s has %d schedules, its most; remove one "
						"first",
				   sc->workspace, STORE_SCHEDULES_MAX);
	sc->anchor_ms = now_ms;
	sc->created_ms = now_ms;
	int64_t next = cron_next(&spec, now_ms, now_ms);
	if (next <= 0)
		return cdn_err_msg(err, EINVAL, "schedule: \"%s\" never fires", sc->cron);
	sc->next_ms = next;
	return store_schedule_create(s, sc, err);
}

int store_schedule_resume(struct store *s, const char *ws, const char *name, int64_t now_ms,
			  struct cdn_err *err)
{
	struct store_schedule sc;
	int r = store_schedule_get(s, ws, name, &sc, err);
	if (r < 0)
		return r;
	struct cron_spec spec;
	r = cron_parse(sc.cron, sc.tz, &spec, err);
	/* From now: the times while it was paused are not made up for. */
	int64_t next = r == 0 ? cron_next(&spec, sc.anchor_ms, now_ms) : 0;
	store_schedule_clear(&sc);
	if (r < 0)
		return r;
	return store_schedule_pause(s, ws, name, false, next > 0 ? next : 0, err);
}
