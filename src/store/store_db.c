/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The SQL half of store.h, for every backend: which backend a database
 * URL names, the checks of each call's arguments (made here once, so a
 * backend only runs queries), the dispatch to the store's backend
 * (struct store_db_ops, internal.h), the conversion of a result row into
 * a struct, and crash recovery's judgement of which supervisors are gone.
 */
#define _GNU_SOURCE
#include "store/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cleanup.h"
#include "base/clock.h"
#include "base/hash.h"
#include "base/proc.h"
#include "base/text.h"

/* ------------------------------------------------------------ the backend */

const char *store_default_database(void)
{
	const char *v = getenv("CORDON_DATABASE_URL");
	return v && *v ? v : NULL;
}

static bool has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Appends src[0..n) to out at *at, keeping room for the NUL. */
static void put(char *out, size_t cap, size_t *at, const char *src, size_t n)
{
	for (size_t i = 0; i < n && *at + 1 < cap; i++)
		out[(*at)++] = src[i];
	out[*at < cap ? *at : cap - 1] = '\0';
}

/*
 * The URL with its password replaced by "***": the one in the user
 * information (scheme://user:PASSWORD@host) and any password=... in the
 * query. Messages and logs show only this form. Control characters are
 * shown escaped, as every quoted value is.
 */
const char *store_database_shown(const char *url, char *out, size_t cap)
{
	if (!cap)
		return out;
	out[0] = '\0';
	if (!url)
		return out;
	size_t at = 0;
	const char *p = url;
	const char *scheme = strstr(url, "://");
	if (scheme) {
		const char *auth = scheme + 3;
		size_t authlen = strcspn(auth, "/?#");
		/* The last '@' of the authority ends the user information. */
		const char *atsign = NULL;
		for (const char *q = auth; q < auth + authlen; q++)
			if (*q == '@')
				atsign = q;
		const char *colon = atsign ? memchr(auth, ':', (size_t)(atsign - auth)) : NULL;
		if (colon) {
			put(out, cap, &at, url, (size_t)(colon + 1 - url));
			put(out, cap, &at, "***", 3);
			p = atsign;
		}
	}
	/* The query's parameters, each on its own: password=... goes. */
	const char *query = strchr(p, '?');
	size_t head = query ? (size_t)(query - p) : strlen(p);
	put(out, cap, &at, p, head);
	for (const char *q = query; q && *q;) {
		size_t len = 1 + strcspn(q + 1, "&#");
		if (has_prefix(q + 1, "password=")) {
			put(out, cap, &at, q, 1 + strlen("password="));
			put(out, cap, &at, "***", 3);
		} else {
			put(out, cap, &at, q, len);
		}
		q += len;
		if (*q == '#') {
			put(out, cap, &at, q, strlen(q));
			break;
		}
	}
	/* Bytes that would mangle a terminal or a log line are escaped. */
	char raw[512];
	snprintf(raw, sizeof(raw), "%s", out);
	cdn_printable_str(out, cap, raw, 0);
	return out;
}

int store_db_pick(const char *database, const struct store_db_ops **ops, struct cdn_err *err)
{
	if (!database || !*database) {
		*ops = &store_sqlite_ops;
		return 0;
	}
	if (has_prefix(database, "postgresql://") || has_prefix(database, "postgres://")) {
		*ops = &store_pg_ops;
		return 0;
	}
	char shown[256];
	return cdn_err_msg(err, EINVAL,
			   "store: database \"%s\": not a postgresql:// or postgres:// URL "
			   "(unset it for SQLite in the state directory)",
			   store_database_shown(database, shown, sizeof(shown)));
}

/* ------------------------------------------------------------------- rows */

/* Copies a text column into a fixed field; false when it does not fit or
 * holds a NUL. SQL NULL reads as "". */
static bool row_copy(const struct store_row *row, int col, char *out, size_t cap)
{
	size_t n = 0;
	const char *t = row->text(row, col, &n);
	if (!t) {
		out[0] = '\0';
		return true;
	}
	if (n >= cap || memchr(t, '\0', n))
		return false;
	memcpy(out, t, n);
	out[n] = '\0';
	return true;
}

/* A malloc'd copy of a text column (NULL stays NULL); -EIO for a NUL in
 * it, -ENOMEM. */
static int row_dup(const struct store_row *row, int col, char **out)
{
	size_t n = 0;
	const char *t = row->text(row, col, &n);
	*out = NULL;
	if (!t)
		return 0;
	if (memchr(t, '\0', n))
		return -EIO;
	*out = strndup(t, n);
	return *out ? 0 : -ENOMEM;
}

static bool row_int(const struct store_row *row, int col, int64_t min, int64_t max, int64_t *out)
{
	return row->int64(row, col, out) && *out >= min && *out <= max;
}

int store_row_item(const struct store_row *row, struct store_item *out)
{
	memset(out, 0, sizeof(*out));
	char kind[16];
	int64_t version, created;
	if (!row_copy(row, 0, kind, sizeof(kind)))
		return -EIO;
	if (!strcmp(kind, "agent"))
		out->kind = STORE_AGENT;
	else if (!strcmp(kind, "capability"))
		out->kind = STORE_CAPABILITY;
	else if (!strcmp(kind, "env"))
		out->kind = STORE_ENV;
	else
		return -EIO;
	if (!row_int(row, 3, 1, UINT32_MAX, &version) ||
	    !row_int(row, 7, INT64_MIN, INT64_MAX, &created) ||
	    !row_copy(row, 1, out->workspace, sizeof(out->workspace)) ||
	    !row_copy(row, 2, out->name, sizeof(out->name)) ||
	    !row_copy(row, 4, out->hash, sizeof(out->hash)) ||
	    !row_copy(row, 5, out->tree, sizeof(out->tree)))
		return -EIO;
	out->version = (unsigned)version;
	out->created = created;
	return row_dup(row, 6, &out->doc);
}

int store_row_run(const struct store_row *row, struct store_run *out)
{
	memset(out, 0, sizeof(*out));
	int64_t version, pid, code, start, records, attempt, retry_max;
	char status[16];
	if (!row_copy(row, 0, out->id, sizeof(out->id)) ||
	    !row_copy(row, 1, out->workspace, sizeof(out->workspace)) ||
	    !row_copy(row, 2, out->agent, sizeof(out->agent)) ||
	    !row_copy(row, 4, out->agent_hash, sizeof(out->agent_hash)) ||
	    !row_copy(row, 5, status, sizeof(status)) ||
	    !row_copy(row, 7, out->caller, sizeof(out->caller)) ||
	    !row_copy(row, 12, out->supervisor_boot, sizeof(out->supervisor_boot)) ||
	    !row_copy(row, 15, out->error, sizeof(out->error)) ||
	    !row_copy(row, 17, out->audit_head, sizeof(out->audit_head)) ||
	    !row_copy(row, 19, out->stdout_sha256, sizeof(out->stdout_sha256)) ||
	    !row_copy(row, 20, out->stderr_sha256, sizeof(out->stderr_sha256)) ||
	    !row_int(row, 3, 0, UINT32_MAX, &version) ||
	    !row_int(row, 6, INT32_MIN, INT32_MAX, &code) ||
	    !row_int(row, 8, INT64_MIN, INT64_MAX, &out->created_ms) ||
	    !row_int(row, 9, INT64_MIN, INT64_MAX, &out->started_ms) ||
	    !row_int(row, 10, INT64_MIN, INT64_MAX, &out->finished_ms) ||
	    !row_int(row, 11, INT32_MIN, INT32_MAX, &pid) ||
	    !row_int(row, 16, INT64_MIN, INT64_MAX, &start) ||
	    !row_int(row, 18, INT64_MIN, INT64_MAX, &records) ||
	    !row_copy(row, 21, out->lease_owner, sizeof(out->lease_owner)) ||
	    !row_int(row, 22, INT64_MIN, INT64_MAX, &out->lease_until_ms) ||
	    !row_copy(row, 23, out->labels, sizeof(out->labels)) ||
	    !row_int(row, 24, 0, STORE_RETRY_MAX + 1, &attempt) ||
	    !row_copy(row, 25, out->retry_of, sizeof(out->retry_of)) ||
	    !row_int(row, 26, 0, STORE_RETRY_MAX, &retry_max) ||
	    store_run_status_parse(status, &out->status) < 0)
		return -EIO;
	out->attempt = (unsigned)attempt;
	out->retry_max = (unsigned)retry_max;
	out->agent_version = (unsigned)version;
	out->exit_code = (int)code;
	out->supervisor_pid = (int)pid;
	out->supervisor_start = start > 0 ? (uint64_t)start : 0;
	out->audit_records = records > 0 ? (uint64_t)records : 0;
	int r = row_dup(row, 13, &out->input_json);
	if (r < 0 || (r = row_dup(row, 14, &out->result_json)) < 0) {
		store_run_clear(out);
		return r;
	}
	return 0;
}

int store_row_schedule(const struct store_row *row, struct store_schedule *out)
{
	memset(out, 0, sizeof(*out));
	char overlap[16], catchup[16];
	int64_t paused, fired, skipped;
	if (!row_copy(row, 0, out->workspace, sizeof(out->workspace)) ||
	    !row_copy(row, 1, out->name, sizeof(out->name)) ||
	    !row_copy(row, 2, out->agent, sizeof(out->agent)) ||
	    !row_copy(row, 3, out->cron, sizeof(out->cron)) ||
	    !row_copy(row, 4, out->tz, sizeof(out->tz)) ||
	    !row_copy(row, 6, overlap, sizeof(overlap)) ||
	    !row_copy(row, 7, catchup, sizeof(catchup)) || !row_int(row, 8, 0, 1, &paused) ||
	    !row_copy(row, 9, out->created_by, sizeof(out->created_by)) ||
	    !row_int(row, 10, INT64_MIN, INT64_MAX, &out->created_ms) ||
	    !row_int(row, 11, INT64_MIN, INT64_MAX, &out->anchor_ms) ||
	    !row_int(row, 12, INT64_MIN, INT64_MAX, &out->next_ms) ||
	    !row_int(row, 13, 0, INT64_MAX, &fired) || !row_int(row, 14, 0, INT64_MAX, &skipped) ||
	    !row_copy(row, 15, out->last_run, sizeof(out->last_run)) ||
	    !row_int(row, 16, INT64_MIN, INT64_MAX, &out->last_fire_ms) ||
	    !row_int(row, 17, INT64_MIN, INT64_MAX, &out->last_skip_ms) ||
	    !row_copy(row, 18, out->last_skip, sizeof(out->last_skip)) ||
	    store_overlap_parse(overlap, &out->overlap) < 0 ||
	    store_catchup_parse(catchup, &out->catchup) < 0)
		return -EIO;
	out->paused = paused != 0;
	out->fired = (uint64_t)fired;
	out->skipped = (uint64_t)skipped;
	return row_dup(row, 5, &out->input_json);
}

int store_row_service(const struct store_row *row, struct store_service *out)
{
	memset(out, 0, sizeof(*out));
	int64_t paused, starts, exits;
	if (!row_copy(row, 0, out->workspace, sizeof(out->workspace)) ||
	    !row_copy(row, 1, out->name, sizeof(out->name)) ||
	    !row_copy(row, 2, out->agent, sizeof(out->agent)) || !row_int(row, 6, 0, 1, &paused) ||
	    !row_copy(row, 7, out->pause_reason, sizeof(out->pause_reason)) ||
	    !row_copy(row, 8, out->created_by, sizeof(out->created_by)) ||
	    !row_int(row, 9, INT64_MIN, INT64_MAX, &out->created_ms) ||
	    !row_copy(row, 10, out->current_run, sizeof(out->current_run)) ||
	    !row_int(row, 11, INT64_MIN, INT64_MAX, &out->next_ms) ||
	    !row_int(row, 12, 0, INT64_MAX, &starts) || !row_int(row, 13, 0, INT64_MAX, &exits) ||
	    !row_copy(row, 14, out->exit_times, sizeof(out->exit_times)) ||
	    !row_copy(row, 15, out->last_exit, sizeof(out->last_exit)) ||
	    !row_int(row, 16, INT64_MIN, INT64_MAX, &out->last_exit_ms) ||
	    !row_copy(row, 17, out->last_run, sizeof(out->last_run)) ||
	    !row_int(row, 18, 0, INT64_MAX, &out->gen))
		return -EIO;
	out->paused = paused != 0;
	out->starts = (uint64_t)starts;
	out->exits = (uint64_t)exits;
	int r = row_dup(row, 3, &out->input_json);
	if (r < 0 || (r = row_dup(row, 4, &out->env_json)) < 0 ||
	    (r = row_dup(row, 5, &out->secrets_json)) < 0) {
		store_service_clear(out);
		return r;
	}
	return 0;
}

int store_row_key(const struct store_row *row, struct store_key *out)
{
	memset(out, 0, sizeof(*out));
	int64_t revoked;
	if (!row_copy(row, 0, out->id, sizeof(out->id)) ||
	    !row_copy(row, 1, out->workspace, sizeof(out->workspace)) ||
	    !row_copy(row, 2, out->name, sizeof(out->name)) ||
	    !row_copy(row, 3, out->role, sizeof(out->role)) ||
	    !row_copy(row, 4, out->hash, sizeof(out->hash)) ||
	    !row_int(row, 5, INT64_MIN, INT64_MAX, &out->created) ||
	    !row_int(row, 6, INT64_MIN, INT64_MAX, &out->last_used) ||
	    !row_int(row, 7, INT64_MIN, INT64_MAX, &revoked))
		return -EIO;
	out->revoked = revoked != 0;
	return 0;
}

int store_row_secret_info(const struct store_row *row, struct store_secret_info *out)
{
	memset(out, 0, sizeof(*out));
	int64_t size;
	if (!row_copy(row, 0, out->name, sizeof(out->name)) ||
	    !row_int(row, 1, INT64_MIN, INT64_MAX, &out->created) ||
	    !row_int(row, 2, INT64_MIN, INT64_MAX, &out->updated) ||
	    !row_int(row, 3, 0, INT64_MAX, &size) || (uint64_t)size > SIZE_MAX)
		return -EIO;
	out->size = (size_t)size;
	return 0;
}

int store_row_candidate(const struct store_row *row, struct store_recover_candidate *out)
{
	memset(out, 0, sizeof(*out));
	/* A field that does not fit cannot name a live supervisor; such a
	 * run is skipped (the UPDATE would match nothing). */
	if (!row_copy(row, 0, out->id, sizeof(out->id)) ||
	    !row_copy(row, 2, out->boot, sizeof(out->boot)) ||
	    !row_int(row, 1, INT64_MIN, INT64_MAX, &out->pid) ||
	    !row_int(row, 3, INT64_MIN, INT64_MAX, &out->start))
		return -EIO;
	return 0;
}

int store_row_retention(const struct store_row *row, const char *ws, struct store_retention *out)
{
	memset(out, 0, sizeof(*out));
	for (int k = 0; k < RETAIN_N; k++)
		if (!row_int(row, k, 0, STORE_AGE_MAX_S, &out->age_s[k]) ||
		    !row_int(row, RETAIN_N + k, 0, STORE_AGE_MAX_S, &out->max_s[k]))
			return -EIO;
	struct cdn_err e = { 0 };
	return store_retention_check(ws, out, &e) < 0 ? -EIO : 0;
}

int store_row_marks(const struct store_row *row, struct store_run_marks *out)
{
	memset(out, 0, sizeof(*out));
	int64_t has;
	if (!row_int(row, 6, 0, 1, &has))
		return -EIO;
	if (!has)
		return 0;
	if (!row_copy(row, 0, out->hold_reason, sizeof(out->hold_reason)) ||
	    !row_copy(row, 1, out->hold_by, sizeof(out->hold_by)) ||
	    !row_int(row, 2, 0, INT64_MAX, &out->hold_ms) ||
	    !row_int(row, 3, 0, INT64_MAX, &out->pruned_ms[RETAIN_FILES]) ||
	    !row_int(row, 4, 0, INT64_MAX, &out->pruned_ms[RETAIN_ARTIFACTS]) ||
	    !row_int(row, 5, 0, INT64_MAX, &out->pruned_ms[RETAIN_EVIDENCE]))
		return -EIO;
	return 0;
}

const char *store_pruned_column(enum store_retain k)
{
	switch (k) {
	case RETAIN_FILES: return "files_pruned_ms";
	case RETAIN_ARTIFACTS: return "artifacts_pruned_ms";
	case RETAIN_EVIDENCE: return "evidence_pruned_ms";
	case RETAIN_RECORDS:
	case RETAIN_N: break;
	}
	return NULL;
}

int store_row_blob(const struct store_row *row, int col, uint8_t **blob, size_t *len)
{
	size_t n = 0;
	const char *p = row->text(row, col, &n);
	if (!p || n == 0 || n > STORE_MAX_SECRET_BLOB)
		return -EIO;
	*blob = malloc(n);
	if (!*blob)
		return -ENOMEM;
	memcpy(*blob, p, n);
	*len = n;
	return 0;
}

int store_row_fail(const char *where, const char *what, int r, struct cdn_err *err)
{
	if (r == -ENOMEM)
		return cdn_err_set(err, ENOMEM, "store: %s: read a %s", where, what);
	return cdn_err_msg(err, EIO, "store: %s: a %s row is malformed", where, what);
}

int64_t store_supervisor_start(const struct store_run *r)
{
	uint64_t v = cdn_proc_start(r->supervisor_pid);
	return v <= INT64_MAX ? (int64_t)v : 0;
}

/* --------------------------------------------------------------- registry */

int store_item_put(struct store *s, const struct store_item *item, unsigned *version, bool *created,
		   struct cdn_err *err)
{
	int r = store_item_check(item, err);
	return r < 0 ? r : s->ops->item_put(s, item, version, created, err);
}

int store_item_get(struct store *s, enum store_kind kind, const char *ws, const char *name,
		   unsigned version, struct store_item *out, struct cdn_err *err)
{
	memset(out, 0, sizeof(*out));
	const char *kn = store_kind_name(kind);
	if (!kn)
		return cdn_err_msg(err, EINVAL, "store: unknown item kind %d", (int)kind);
	int r = store_name_check("workspace", ws, err);
	if (r < 0 || (r = store_name_check(kn, name, err)) < 0)
		return r;
	return s->ops->item_get(s, kind, ws, name, version, out, err);
}

void store_item_clear(struct store_item *it)
{
	if (!it)
		return;
	free(it->doc);
	it->doc = NULL;
}

void store_items_free(struct store_item *items, size_t n)
{
	for (size_t i = 0; items && i < n; i++)
		store_item_clear(&items[i]);
	free(items);
}

int store_item_list(struct store *s, enum store_kind kind, const char *ws, struct store_item **out,
		    size_t *n, struct cdn_err *err)
{
	*out = NULL;
	*n = 0;
	if (!store_kind_name(kind))
		return cdn_err_msg(err, EINVAL, "store: unknown item kind %d", (int)kind);
	int r = store_name_check("workspace", ws, err);
	return r < 0 ? r : s->ops->item_list(s, kind, ws, out, n, err);
}

/* What a grant gives: a capability's name, or "call:AGENT", a grant to
 * call that agent (registry_grant_call), which no name can be mistaken
 * for: ':' is not in a name. */
static int grant_target_check(const char *capability, struct cdn_err *err)
{
	if (strncmp(capability, "call:", 5) == 0)
		return store_name_check("callee", capability + 5, err);
	return store_name_check("capability", capability, err);
}

int store_grant_add(struct store *s, const char *ws, const char *agent, const char *capability,
		    struct cdn_err *err)
{
	int r = store_name_check("workspace", ws, err);
	if (r < 0 || (r = store_name_check("agent", agent, err)) < 0 ||
	    (r = grant_target_check(capability, err)) < 0)
		return r;
	return s->ops->grant_add(s, ws, agent, capability, err);
}

bool store_grant_has(struct store *s, const char *ws, const char *agent, const char *capability)
{
	if (store_name_check("workspace", ws, NULL) < 0 ||
	    store_name_check("agent", agent, NULL) < 0 ||
	    grant_target_check(capability, NULL) < 0)
		return false;
	/* Any failure reads as "not granted": fail closed. */
	return s->ops->grant_has(s, ws, agent, capability);
}

/* ---------------------------------------------------------------- secrets */

static int blob_arg_check(const char *what, const char *ws, const uint8_t *blob, size_t len,
			  struct cdn_err *err)
{
	if (!blob || len == 0)
		return cdn_err_msg(err, EINVAL, "store: %s (workspace %s): empty", what, ws);
	if (len > STORE_MAX_SECRET_BLOB)
		return cdn_err_msg(err, E2BIG, "store: %s (workspace %s): over %d bytes", what, ws,
				   STORE_MAX_SECRET_BLOB);
	return 0;
}

int store_secret_put(struct store *s, const char *ws, const char *name, const uint8_t *blob,
		     size_t len, size_t plain_len, struct cdn_err *err)
{
	int r = store_name_check("workspace", ws, err);
	if (r < 0 || (r = store_secret_name_check(name, err)) < 0 ||
	    (r = blob_arg_check("secret", ws, blob, len, err)) < 0)
		return r;
	if (plain_len > (size_t)INT64_MAX)
		return cdn_err_msg(err, EINVAL, "store: secret %s: bad length", name);
	return s->ops->secret_put(s, ws, name, blob, len, plain_len, err);
}

int store_secret_get(struct store *s, const char *ws, const char *name, uint8_t **blob,
		     size_t *len, struct cdn_err *err)
{
	*blob = NULL;
	*len = 0;
	int r = store_name_check("workspace", ws, err);
	if (r < 0 || (r = store_secret_name_check(name, err)) < 0)
		return r;
	return s->ops->secret_get(s, ws, name, blob, len, err);
}

int store_secret_delete(struct store *s, const char *ws, const char *name, struct cdn_err *err)
{
	int r = store_name_check("workspace", ws, err);
	if (r < 0 || (r = store_secret_name_check(name, err)) < 0)
		return r;
	return s->ops->secret_delete(s, ws, name, err);
}

int store_secret_list(struct store *s, const char *ws, struct store_secret_info **out, size_t *n,
		      struct cdn_err *err)
{
	*out = NULL;
	*n = 0;
	int r = store_name_check("workspace", ws, err);
	return r < 0 ? r : s->ops->secret_list(s, ws, out, n, err);
}

int store_wskey_get(struct store *s, const char *ws, uint8_t **blob, size_t *len,
		    struct cdn_err *err)
{
	*blob = NULL;
	*len = 0;
	int r = store_name_check("workspace", ws, err);
	return r < 0 ? r : s->ops->wskey_get(s, ws, blob, len, err);
}

int store_wskey_put(struct store *s, const char *ws, const uint8_t *blob, size_t len,
		    struct cdn_err *err)
{
	int r = store_name_check("workspace", ws, err);
	if (r < 0 || (r = blob_arg_check("workspace key", ws, blob, len, err)) < 0)
		return r;
	return s->ops->wskey_put(s, ws, blob, len, err);
}

/* ------------------------------------------------------------------- runs */

int store_run_create(struct store *s, const struct store_run *r, struct cdn_err *err)
{
	int e = store_run_check(r, err);
	return e < 0 ? e : s->ops->run_create(s, r, err);
}

int store_run_update(struct store *s, const struct store_run *r, struct cdn_err *err)
{
	int e = store_run_check(r, err);
	return e < 0 ? e : s->ops->run_update(s, r, err);
}

int store_run_claim(struct store *s, const struct store_run *r, struct cdn_err *err)
{
	int e = store_run_check(r, err);
	return e < 0 ? e : s->ops->run_claim(s, r, err);
}

int store_run_anchor(struct store *s, const char *id, const char *head, uint64_t records,
		     struct cdn_err *err)
{
	if (!cdn_sha256_hex_str_ok(head) || records > INT64_MAX)
		return cdn_err_msg(err, EINVAL, "store: an audit head is a sha256");
	int e = store_run_id_check(id, err);
	return e < 0 ? e : s->ops->run_anchor(s, id, head, records, err);
}

int store_run_get(struct store *s, const char *id, struct store_run *out, struct cdn_err *err)
{
	memset(out, 0, sizeof(*out));
	int r = store_run_id_check(id, err);
	return r < 0 ? r : s->ops->run_get(s, id, out, err);
}

void store_run_clear(struct store_run *r)
{
	if (!r)
		return;
	free(r->input_json);
	free(r->result_json);
	r->input_json = r->result_json = NULL;
}

void store_runs_free(struct store_run *runs, size_t n)
{
	for (size_t i = 0; runs && i < n; i++)
		store_run_clear(&runs[i]);
	free(runs);
}

int store_run_list(struct store *s, const struct store_run_query *q, struct store_run **out,
		   size_t *n, struct cdn_err *err)
{
	*out = NULL;
	*n = 0;
	int r = store_name_check("workspace", q->workspace, err);
	if (r < 0 || (q->agent && (r = store_name_check("agent", q->agent, err)) < 0))
		return r;
	if (q->status != -1 && (q->status < RUN_CREATED || q->status > RUN_LOST))
		return cdn_err_msg(err, EINVAL, "store: list runs: unknown status %d", q->status);
	if (q->limit < 1 || q->limit > STORE_RUN_LIST_MAX)
		return cdn_err_msg(err, EINVAL, "store: list runs: the limit must be 1 to %d",
				   STORE_RUN_LIST_MAX);
	if (q->before_id && (r = store_run_id_check(q->before_id, err)) < 0)
		return r;
	return s->ops->run_list(s, q, out, n, err);
}

int store_runs_recover(struct store *s, struct cdn_err *err)
{
	char boot[STORE_BOOT_ID_MAX];
	int r = cdn_boot_id(boot, sizeof(boot), err);
	if (r < 0)
		return r;
	_cleanup_free_ struct store_recover_candidate *v = NULL;
	size_t count = 0;
	if ((r = s->ops->runs_unfinished(s, &v, &count, err)) < 0)
		return r;
	int recovered = 0;
	for (size_t i = 0; i < count; i++) {
		const struct store_recover_candidate *c = &v[i];
		int pid = c->pid > 0 && c->pid <= INT32_MAX ? (int)c->pid : 0;
		if (cdn_supervisor_alive(pid, c->boot, boot, c->start > 0 ? (uint64_t)c->start : 0))
			continue;
		if ((r = s->ops->run_mark_dead(s, c, cdn_wall_ms(), err)) < 0)
			return r;
		recovered += r;
	}
	return recovered;
}

/* --------------------------------------------------------------- api keys */

int store_key_put(struct store *s, const struct store_key *k, struct cdn_err *err)
{
	int r = store_name_check("workspace", k->workspace, err);
	if (r < 0)
		return r;
	if (strcmp(k->role, "owner") != 0 && strcmp(k->role, "member") != 0)
		return cdn_err_msg(err, EINVAL, "key role must be owner or member, not '%s'",
				   k->role);
	if (!cdn_sha256_hex_str_ok(k->hash))
		return cdn_err_msg(err, EINVAL, "key hash is not a sha256");
	return s->ops->key_put(s, k, err);
}

int store_key_by_hash(struct store *s, const char *hash, struct store_key *out,
		      struct cdn_err *err)
{
	return s->ops->key_by_hash(s, hash, out, err);
}

int store_key_list(struct store *s, const char *ws, struct store_key **out, size_t *n,
		   struct cdn_err *err)
{
	*out = NULL;
	*n = 0;
	return s->ops->key_list(s, ws, out, n, err);
}

int store_key_revoke(struct store *s, const char *ws, const char *id, struct cdn_err *err)
{
	return s->ops->key_revoke(s, ws, id, err);
}

int store_key_touch(struct store *s, const char *id, int64_t now, struct cdn_err *err)
{
	return s->ops->key_touch(s, id, now, err);
}

/* -------------------------------------------------------------- retention */

int store_retention_get(struct store *s, const char *ws, struct store_retention *out,
			struct cdn_err *err)
{
	memset(out, 0, sizeof(*out));
	int r;
	if (*ws && (r = store_name_check("workspace", ws, err)) < 0)
		return r;
	return s->ops->retention_get(s, ws, out, err);
}

int store_retention_put(struct store *s, const char *ws, const struct store_retention *rt,
			unsigned set, struct cdn_err *err)
{
	int r;
	if ((*ws && (r = store_name_check("workspace", ws, err)) < 0) ||
	    (r = store_retention_check(ws, rt, err)) < 0)
		return r;
	if (!set || (set & ~STORE_RETAIN_ALL))
		return cdn_err_msg(err, EINVAL, "store: a retention change names no field");
	return s->ops->retention_put(s, ws, rt, set, err);
}

/* Column i of STORE_RETENTION_COLUMNS: the ages, then the bounds. */
static const char *const retention_cols[2 * RETAIN_N] = {
	"records_s",	 "files_s",	"artifacts_s",	   "evidence_s",
	"records_max_s", "files_max_s", "artifacts_max_s", "evidence_max_s",
};

int store_retention_set_sql(unsigned set, char *out, size_t cap)
{
	size_t n = 0;
	out[0] = '\0';
	for (unsigned i = 0; i < 2 * RETAIN_N; i++) {
		if (!(set & (1u << i)))
			continue;
		int w = snprintf(out + n, cap - n, "%s = excluded.%s, ", retention_cols[i],
				 retention_cols[i]);
		if (w < 0 || (size_t)w >= cap - n)
			return -ENAMETOOLONG;
		n += (size_t)w;
	}
	int w = snprintf(out + n, cap - n, "updated = excluded.updated");
	return w < 0 || (size_t)w >= cap - n ? -ENAMETOOLONG : 0;
}

int store_run_marks_get(struct store *s, const char *id, struct store_run_marks *out,
			struct cdn_err *err)
{
	memset(out, 0, sizeof(*out));
	int r = store_run_id_check(id, err);
	return r < 0 ? r : s->ops->run_marks_get(s, id, out, err);
}

int store_run_hold(struct store *s, const char *ws, const char *id, const char *reason,
		   const char *by, struct cdn_err *err)
{
	int r;
	if ((r = store_name_check("workspace", ws, err)) < 0 ||
	    (r = store_run_id_check(id, err)) < 0 || (r = store_hold_check(reason, by, err)) < 0)
		return r;
	return s->ops->run_hold(s, ws, id, reason, by, cdn_wall_ms(), err);
}

int store_run_release(struct store *s, const char *ws, const char *id, struct cdn_err *err)
{
	int r;
	if ((r = store_name_check("workspace", ws, err)) < 0 ||
	    (r = store_run_id_check(id, err)) < 0)
		return r;
	return s->ops->run_release(s, ws, id, err);
}

int store_run_mark_pruned(struct store *s, const char *id, enum store_retain k, int64_t when_ms,
			  struct cdn_err *err)
{
	if (!store_pruned_column(k))
		return cdn_err_msg(err, EINVAL, "store: a record is deleted, not marked pruned");
	if (when_ms <= 0)
		return cdn_err_msg(err, EINVAL, "store: a prune's time must be positive");
	int r = store_run_id_check(id, err);
	return r < 0 ? r : s->ops->run_mark_pruned(s, id, k, when_ms, err);
}

int store_prune_due(struct store *s, const char *ws, enum store_retain k, int64_t cutoff_ms,
		    size_t max, char (**ids)[STORE_RUN_ID_MAX + 1], size_t *n, struct cdn_err *err)
{
	*ids = NULL;
	*n = 0;
	int r = store_name_check("workspace", ws, err);
	if (r < 0)
		return r;
	if ((unsigned)k >= RETAIN_N || max < 1 || max > 10000)
		return cdn_err_msg(err, EINVAL, "store: prune: bad arguments");
	_cleanup_free_ char(*out)[STORE_RUN_ID_MAX + 1] = calloc(max, sizeof(*out));
	if (!out)
		return cdn_err_set(err, ENOMEM, "store: prune");
	size_t got = 0;
	if ((r = s->ops->prune_due(s, ws, k, cutoff_ms, max, out, &got, err)) < 0)
		return r;
	/* Each id becomes a path under runs/: one the database holds that is
	 * not an id (a row copied in by hand) stops the pass. */
	for (size_t i = 0; i < got; i++)
		if (!store_run_id_ok(out[i]))
			return cdn_err_msg(err, EIO, "store: a run id in the database is malformed");
	*ids = out;
	out = NULL;
	*n = got;
	return 0;
}

int store_prune_workspaces(struct store *s, char (**wss)[STORE_MAX_NAME + 1], size_t *n,
			   struct cdn_err *err)
{
	*wss = NULL;
	*n = 0;
	return s->ops->prune_workspaces(s, wss, n, err);
}

int store_item_trees(struct store *s, char (**trees)[STORE_HASH_HEX + 1], size_t *n,
		     struct cdn_err *err)
{
	*trees = NULL;
	*n = 0;
	return s->ops->item_trees(s, trees, n, err);
}

int store_run_delete(struct store *s, const char *id, struct cdn_err *err)
{
	int r = store_run_id_check(id, err);
	return r < 0 ? r : s->ops->run_delete(s, id, err);
}

int store_blob_in_runs(struct store *s, const char *hex, const char *skip_id, bool *used,
		       struct cdn_err *err)
{
	*used = true;
	if (!cdn_sha256_hex_str_ok(hex))
		return cdn_err_msg(err, EINVAL, "store: a blob's name is not a sha256");
	return s->ops->blob_in_runs(s, hex, skip_id ? skip_id : "", used, err);
}
