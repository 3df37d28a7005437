/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Usage (store.h, docs/usage.md): the backend sums a workspace's run
 * records by group and status; here the rows become groups and a total,
 * and the JSON the API and `cordon usage --json` give.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cleanup.h"
#include "base/clock.h"
#include "store/internal.h"

static const char *const by_names[] = {
	[USAGE_BY_NONE] = "none",
	[USAGE_BY_AGENT] = "agent",
	[USAGE_BY_DAY] = "day",
	[USAGE_BY_CALLER] = "caller",
};

int store_usage_by_parse(const char *name, enum store_usage_by *out)
{
	int i = store_name_pick(by_names, CDN_ARRAY_SIZE(by_names), name);
	if (i >= 0)
		*out = (enum store_usage_by)i;
	return i < 0 ? i : 0;
}

const char *store_usage_by_name(enum store_usage_by by)
{
	return (size_t)by < CDN_ARRAY_SIZE(by_names) ? by_names[by] : "?";
}

struct usage_fold {
	struct store_usage *v;
	size_t n, cap;
	struct store_usage *total;
};

static void add(struct store_usage *u, enum store_run_status st, const int64_t v[])
{
	u->runs += (uint64_t)v[0];
	u->by_status[st] += (uint64_t)v[0];
	u->wall_ms += v[1];
	u->cpu_ms += v[2];
	if (v[3] > u->mem_peak_bytes)
		u->mem_peak_bytes = v[3];
	u->egress_allowed += v[4];
	u->egress_blocked += v[5];
	u->egress_allowed_bytes += v[6];
	u->egress_blocked_bytes += v[7];
	u->artifact_bytes += v[8];
}

/* Rows come in key order: a new key is a new group. */
static int fold(void *ctx, const char *key, const char *status, const int64_t v[])
{
	struct usage_fold *f = ctx;
	enum store_run_status st;
	if (store_run_status_parse(status, &st) < 0 || (size_t)st >= STORE_USAGE_STATUSES)
		return 0; /* a status this cordon does not know is no one's usage */
	if (f->n == 0 || strcmp(f->v[f->n - 1].key, key) != 0) {
		if (f->n >= STORE_USAGE_MAX_GROUPS)
			return -E2BIG;
		if (f->n == f->cap) {
			size_t nc = f->cap ? f->cap * 2 : 16;
			struct store_usage *nv = realloc(f->v, nc * sizeof(*nv));
			if (!nv)
				return -ENOMEM;
			f->v = nv;
			f->cap = nc;
		}
		memset(&f->v[f->n], 0, sizeof(f->v[f->n]));
		snprintf(f->v[f->n].key, sizeof(f->v[f->n].key), "%s", key);
		f->n++;
	}
	add(&f->v[f->n - 1], st, v);
	add(f->total, st, v);
	return 0;
}

int store_run_usage(struct store *s, const char *ws, int64_t from_ms, int64_t to_ms,
		    enum store_usage_by by, struct store_usage **groups, size_t *n,
		    struct store_usage *total, struct cdn_err *err)
{
	*groups = NULL;
	*n = 0;
	memset(total, 0, sizeof(*total));
	int r = store_name_check("workspace", ws, err);
	if (r < 0)
		return r;
	if ((size_t)by >= CDN_ARRAY_SIZE(by_names))
		return cdn_err_msg(err, EINVAL, "usage: group by agent, day, caller or none");
	if (from_ms < 0 || to_ms <= from_ms)
		return cdn_err_msg(err, EINVAL, "usage: the window's end must come after its start");
	struct usage_fold f = { .total = total };
	r = s->ops->run_usage(s, ws, from_ms, to_ms, by, fold, &f, err);
	if (r == -E2BIG)
		r = cdn_err_msg(err, E2BIG, "usage: more than %d groups; narrow the window",
				STORE_USAGE_MAX_GROUPS);
	else if (r == -ENOMEM)
		r = cdn_err_set(err, ENOMEM, "usage");
	if (r < 0) {
		free(f.v);
		memset(total, 0, sizeof(*total));
		return r;
	}
	*groups = f.v;
	*n = f.n;
	return 0;
}

static json_t *usage_one(const struct store_usage *u)
{
	json_t *st = json_object();
	for (size_t i = 0; st && i < STORE_USAGE_STATUSES; i++)
		if (u->by_status[i])
			json_object_set_new(st, store_run_status_name((enum store_run_status)i),
					    json_integer((json_int_t)u->by_status[i]));
	return json_pack("{s:I, s:o, s:f, s:f, s:I, s:{s:I, s:I, s:I, s:I}, s:I}", "runs",
			 (json_int_t)u->runs, "by_status", st, "wall_seconds",
			 (double)u->wall_ms / 1000.0, "cpu_seconds", (double)u->cpu_ms / 1000.0,
			 "peak_memory_bytes", (json_int_t)u->mem_peak_bytes, "egress",
			 "requests_allowed", (json_int_t)u->egress_allowed, "requests_blocked",
			 (json_int_t)u->egress_blocked, "bytes_allowed",
			 (json_int_t)u->egress_allowed_bytes, "bytes_blocked",
			 (json_int_t)u->egress_blocked_bytes, "artifact_bytes",
			 (json_int_t)u->artifact_bytes);
}

json_t *store_usage_json(const char *ws, int64_t from_ms, int64_t to_ms, enum store_usage_by by,
			 const struct store_usage *groups, size_t n,
			 const struct store_usage *total)
{
	char from[CDN_RFC3339_MAX], to[CDN_RFC3339_MAX];
	cdn_rfc3339(from_ms, CDN_TIME_S, from, sizeof(from));
	cdn_rfc3339(to_ms, CDN_TIME_S, to, sizeof(to));
	json_t *arr = json_array();
	for (size_t i = 0; arr && i < n; i++) {
		json_t *g = usage_one(&groups[i]);
		if (g)
			json_object_set_new(g, "key", json_string(groups[i].key));
		json_array_append_new(arr, g);
	}
	return json_pack("{s:s, s:s, s:s, s:s, s:o, s:o}", "workspace", ws, "from", from, "to", to,
			 "group_by", store_usage_by_name(by), "groups", arr, "total",
			 usage_one(total));
}
