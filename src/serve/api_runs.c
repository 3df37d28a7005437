/* SPDX-License-Identifier: Apache-2.0 */
/*
 * /v1/runs: start, list, read and cancel runs of the key's workspace,
 * with their output files, artifacts and evidence packs.
 */
#define _GNU_SOURCE
#include "run/artifacts.h"
#include "serve/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/clock.h"
#include "base/proc.h"
#include "base/random.h"
#include "evidence/evidence.h"
#include "registry/manifest.h"

/* A since or until longer than this is refused before it is parsed. */
/* The largest ?offset= of an output follower: far past any --capture. */
#define OUTPUT_OFFSET_MAX (1ULL << 40)

/* The run, if it is in the caller's workspace. */
int api_run_in_ws(struct call *c, const char *id, struct store_run *out)
{
	if (!store_run_id_ok(id))
		return -ENOENT;
	struct cdn_err err = {0};
	int r = store_run_get(c->sv->s, id, out, &err);
	if (r < 0)
		return r;
	if (strcmp(out->workspace, c->key.workspace) != 0) {
		store_run_clear(out);
		return -ENOENT;
	}
	return 0;
}

static json_t *api_run_json(const struct store_run *r)
{
	char created[32], started[32], finished[32];
	api_time(r->created_ms, created, sizeof(created));
	api_time(r->started_ms, started, sizeof(started));
	api_time(r->finished_ms, finished, sizeof(finished));
	const char *status = store_run_status_name(r->status);
	json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:i, s:s, s:s, s:s, s:s}", "id",
			      r->id, "workspace", r->workspace, "agent", r->agent, "version",
			      (json_int_t)r->agent_version, "sha256", r->agent_hash, "status",
			      status, "exit_code", r->exit_code, "caller", r->caller, "created",
			      created, "started", started, "finished", finished);
	if (r->finished_ms && r->created_ms)
		json_object_set_new(j, "duration_ms",
				    json_integer((json_int_t)(r->finished_ms - r->created_ms)));
	if (r->error[0])
		json_object_set_new(j, "error", json_string(r->error));
	/* A run another run called (call_agent): its parent. */
	if (strncmp(r->caller, "run:", 4) == 0)
		json_object_set_new(j, "parent", json_string(r->caller + 4));
	/* Workers (docs/deploy.md): which holds (or held) its lease, what it
	 * asked for, and which attempt it is of which run. */
	if (r->lease_owner[0])
		json_object_set_new(j, "worker", json_string(r->lease_owner));
	if (r->labels[0])
		json_object_set_new(j, "labels", json_loads(r->labels, 0, NULL));
	json_object_set_new(j, "attempt", json_integer(r->attempt ? r->attempt : 1));
	if (r->retry_of[0])
		json_object_set_new(j, "retry_of", json_string(r->retry_of));
	return j;
}

int runs_start(struct server *sv, const char *ws, const char *agent, const json_t *input,
	       const json_t *labels, const char *caller, char *id, char *why, size_t cap,
	       struct cdn_err *err)
{
	id[0] = '\0';
	if (!agent || strchr(agent, '/')) {
		snprintf(why, cap, "expected {\"agent\": \"NAME[@VERSION]\", \"input\": {...}}; "
				   "agents run over the API are registered ones");
		return 400;
	}
	if (input && !json_is_object(input)) {
		snprintf(why, cap, "input must be a JSON object");
		return 400;
	}
	char name[STORE_MAX_NAME + 1];
	const char *at = strchr(agent, '@');
	size_t nl = at ? (size_t)(at - agent) : strlen(agent);
	snprintf(name, sizeof(name), "%.*s", (int)(nl < sizeof(name) ? nl : 0), agent);
	if (nl > STORE_MAX_NAME || store_name_check("agent", name, err) < 0) {
		snprintf(why, cap, "agent: %s", err->msg);
		return 400;
	}
	unsigned version = 0;
	if (at) {
		char *end;
		unsigned long v = strtoul(at + 1, &end, 10);
		if (at[1] < '1' || at[1] > '9' || *end || v > UINT32_MAX) {
			snprintf(why, cap, "agent: the version after '@' is a number (1, 2, ...)");
			return 400;
		}
		version = (unsigned)v;
	}
	struct store_item it;
	int r = store_item_get(sv->s, STORE_AGENT, ws, name, version, &it, err);
	if (r < 0) {
		if (r != -ENOENT)
			return -1;
		snprintf(why, cap, "agent %s is not registered", name);
		return 404;
	}
	/* What the agent asks of the worker that runs it: labels, and
	 * retries when its worker is lost (docs/deploy.md). */
	struct agent_manifest *m = NULL;
	r = it.doc ? manifest_parse(it.doc, strlen(it.doc), "agent.json", &m, err) : 0;
	store_item_clear(&it);
	struct store_run rec = {.status = RUN_CREATED, .exit_code = -1, .attempt = 1,
				.agent_version = version};
	if (m) {
		snprintf(rec.labels, sizeof(rec.labels), "%s", m->labels);
		/* A service's lost run is its service manager's to start again
		 * (with the service as it is then), never a retry of its own. */
		rec.retry_max = strncmp(caller, "service:", 8) == 0 ? 0 : m->retry_on_lost;
	}
	manifest_free(m);
	if (r < 0)
		return -1;
	if (labels) {
		_cleanup_free_ char *lt = json_dumps(labels, JSON_COMPACT | JSON_ENCODE_ANY);
		if (!lt || store_labels_parse(lt, rec.labels, err) < 0) {
			snprintf(why, cap, "%s", lt ? err->msg : "labels");
			return 400;
		}
	}
	bool workers = sv->cfg.dispatch_workers;
	if (!dispatch_has_room(sv, ws, why, cap))
		return 503;
	_cleanup_free_ char *in =
	    input ? json_dumps(input, JSON_COMPACT | JSON_SORT_KEYS) : strdup("{}");
	if (in && strlen(in) > STORE_MAX_RUN_JSON) {
		snprintf(why, cap, "input is over %d bytes", STORE_MAX_RUN_JSON);
		return 413;
	}
	cdn_random_id("run_", 12, rec.id, sizeof(rec.id));
	snprintf(rec.workspace, sizeof(rec.workspace), "%s", ws);
	snprintf(rec.agent, sizeof(rec.agent), "%s", name);
	snprintf(rec.caller, sizeof(rec.caller), "%s", caller);
	rec.created_ms = cdn_wall_ms();
	if (!workers) {
		rec.supervisor_pid = (int)sv->self;
		cdn_boot_id(rec.supervisor_boot, sizeof(rec.supervisor_boot), NULL);
	} /* else queued for a worker: no supervisor until one takes it */
	rec.input_json = in;
	r = in ? store_run_create(sv->s, &rec, err) : cdn_err_set(err, ENOMEM, "input");
	if (r < 0)
		return -1;
	if (!workers && dispatch_submit(sv, rec.id, rec.workspace, agent, why, cap) < 0) {
		/* Lost a race for the last place since the check above. */
		rec.input_json = NULL;
		rec.status = RUN_CANCELLED;
		rec.finished_ms = cdn_wall_ms();
		snprintf(rec.error, sizeof(rec.error), "%s", why);
		store_run_update(sv->s, &rec, NULL);
		return 503;
	}
	snprintf(id, STORE_RUN_ID_MAX + 1, "%s", rec.id);
	return 0;
}

enum MHD_Result h_runs_create(struct call *c)
{
	enum MHD_Result ret;
	json_t *b = api_body_json(c, &ret);
	if (!b)
		return ret;
	const char *agent = api_jstr(b, "agent");
	struct cdn_err err = { 0 };
	char caller[sizeof(((struct store_run *)0)->caller)], id[STORE_RUN_ID_MAX + 1], why[256];
	snprintf(caller, sizeof(caller), "key:%s (%s)", c->key.id, c->key.name);
	int st = runs_start(c->sv, c->key.workspace, agent, json_object_get(b, "input"),
			    json_object_get(b, "labels"), caller, id, why, sizeof(why), &err);
	if (st == 0)
		ret = api_reply(c->conn, 202,
				json_pack("{s:s, s:s, s:s}", "id", id, "status", "queued", "agent",
					  agent));
	else if (st < 0)
		ret = api_fail_err(c->conn, -err.code, &err);
	else
		ret = api_fail(c->conn, (unsigned)st,
			       st == 404   ? "not_found"
			       : st == 413 ? "too_large"
			       : st == 503 ? "unavailable"
					   : "bad_request",
			       "%s", why);
	json_decref(b);
	return ret;
}

enum MHD_Result h_runs_list(struct call *c)
{
	struct store_run_query q = { .workspace = c->key.workspace, .status = -1, .limit = 50 };
	const char *agent = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, "agent");
	const char *status = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, "status");
	const char *limit = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, "limit");
	const char *cursor = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, "cursor");
	struct cdn_err err = { 0 };
	if (agent && *agent) {
		if (store_name_check("agent", agent, &err) < 0)
			return api_fail(c->conn, 400, "bad_request", "agent: %s", err.msg);
		q.agent = agent;
	}
	if (status && *status) {
		enum store_run_status st;
		if (store_run_status_parse(status, &st) < 0)
			return api_fail(c->conn, 400, "bad_request", "status: unknown status");
		q.status = (int)st;
	}
	if (limit && *limit) {
		char *end;
		unsigned long l = strtoul(limit, &end, 10);
		if (*end || l == 0 || l > 1000)
			return api_fail(c->conn, 400, "bad_request", "limit: a number from 1 to 1000");
		q.limit = l;
	}
	/* since (inclusive) and until (exclusive): runs created in [since, until). */
	int64_t since, until;
	enum MHD_Result ret;
	if (api_time_param(c, "since", &since, &ret) < 0 || api_time_param(c, "until", &until, &ret) < 0)
		return ret;
	if (since && until && since >= until)
		return api_fail(c->conn, 400, "bad_request", "since must be before until");
	char cur_id[STORE_RUN_ID_MAX + 1];
	if (cursor && *cursor) {
		char *end;
		long long ms = strtoll(cursor, &end, 10);
		if (*end != ':' || ms <= 0 || !store_run_id_ok(end + 1))
			return api_fail(c->conn, 400, "bad_request", "cursor: pass back next_cursor");
		snprintf(cur_id, sizeof(cur_id), "%s", end + 1);
		q.before_ms = ms;
		q.before_id = cur_id;
	}
	/* until is the store's "created before", unless the cursor is already
	 * further back (its own tie-break by id then stays). */
	if (until && (!q.before_ms || until <= q.before_ms)) {
		q.before_ms = until;
		q.before_id = NULL;
	}
	struct store_run *runs;
	size_t n;
	int r = store_run_list(c->sv->s, &q, &runs, &n, &err);
	if (r < 0)
		return api_fail_err(c->conn, r, &err);
	/* Newest first, so since cuts the list: the first run older than it
	 * ends this page and the listing (no next_cursor). */
	size_t keep = n;
	for (size_t i = 0; since && i < n; i++)
		if (runs[i].created_ms < since) {
			keep = i;
			break;
		}
	json_t *arr = json_array();
	for (size_t i = 0; i < keep; i++)
		json_array_append_new(arr, api_run_json(&runs[i]));
	json_t *next = keep == q.limit ? json_sprintf("%lld:%s", (long long)runs[keep - 1].created_ms,
						       runs[keep - 1].id)
				       : json_null();
	store_runs_free(runs, n);
	return api_reply(c->conn, 200, json_pack("{s:o, s:o}", "runs", arr, "next_cursor", next));
}

/* A file of the run directory, as it is. */
static enum MHD_Result run_file(struct call *c, const char *id, const char *rel, const char *type,
				bool download)
{
	char path[PATH_MAX];
	int fd = -1;
	/* Not on this host: fetched from the blob store's S3, checked. */
	struct cdn_err perr = { 0 };
	if (store_run_files_pull(c->sv->s, id, &perr) < 0 && perr.code != ENOENT)
		return api_fail(c->conn, 502, "blob_store", "run %s: %s", id, perr.msg);
	if (store_run_file(c->sv->s, id, rel, path, sizeof(path), NULL) == 0)
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		if (fd >= 0)
			close(fd);
		return api_fail(c->conn, 404, "not_found", "run %s has no %s", id, rel);
	}
	struct MHD_Response *r = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
	if (!r) {
		close(fd);
		return MHD_NO;
	}
	api_headers(r);
	MHD_add_response_header(r, "Content-Type", type);
	if (download) {
		char cd[256];
		const char *base = strrchr(rel, '/');
		snprintf(cd, sizeof(cd), "attachment; filename=\"%s\"", base ? base + 1 : rel);
		MHD_add_response_header(r, "Content-Disposition", cd);
	}
	enum MHD_Result ret = MHD_queue_response(c->conn, 200, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result run_evidence(struct call *c, const struct store_run *r)
{
	if (!store_run_status_final(r->status))
		return api_fail(c->conn, 409, "conflict", "run %s has not finished", r->id);
	const char *art = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, "artifacts");
	struct cdn_err err = {0};
	struct evidence_key *key = NULL;
	int e = evidence_key_load(c->sv->state, true, &key, &err);
	if (e < 0)
		return api_fail(c->conn, 500, "internal", "evidence key: %s", err.msg);
	char path[PATH_MAX], name[STORE_RUN_ID_MAX + 32];
	snprintf(name, sizeof(name), "evidence-%s.XXXXXX", r->id);
	int tfd = store_tmp_path(c->sv->s, name, path, sizeof(path), NULL) < 0
		      ? -1
		      : mkostemp(path, O_CLOEXEC);
	if (tfd < 0) {
		evidence_key_free(key);
		return api_fail(c->conn, 500, "internal", "cannot stage the pack: %s",
				strerror(errno));
	}
	close(tfd);
	struct evidence_export_opts o = {.run_id = r->id,
					 .workspace = c->key.workspace,
					 .out_path = path,
					 .artifacts = art && strcmp(art, "1") == 0,
					 .force = true,
					 .key = key};
	struct evidence_export_info info;
	e = evidence_export(c->sv->s, &o, &info, &err);
	evidence_key_free(key);
	int fd = e == 0 ? open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) : -1;
	unlink(path); /* the open fd keeps it until it is sent */
	struct stat st;
	if (e < 0 || fd < 0 || fstat(fd, &st) < 0) {
		if (fd >= 0)
			close(fd);
		return api_fail(c->conn, 500, "internal", "evidence: %s", err.msg);
	}
	struct MHD_Response *resp = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
	if (!resp) {
		close(fd);
		return MHD_NO;
	}
	api_headers(resp);
	MHD_add_response_header(resp, "Content-Type", "application/gzip");
	char cd[128];
	snprintf(cd, sizeof(cd), "attachment; filename=\"%s.evidence.tar.gz\"", r->id);
	MHD_add_response_header(resp, "Content-Disposition", cd);
	enum MHD_Result ret = MHD_queue_response(c->conn, 200, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* The run {id} of the path, when it is in the key's workspace; otherwise
 * false, with the 404 sent. */
bool api_the_run(struct call *c, struct store_run *r, enum MHD_Result *ret)
{
	if (api_run_in_ws(c, c->seg[2], r) == 0)
		return true;
	*ret = api_fail(c->conn, 404, "not_found", "no run %s in workspace %s", c->seg[2],
			c->key.workspace);
	return false;
}

enum MHD_Result h_run_get(struct call *c)
{
	struct store_run r;
	enum MHD_Result ret;
	if (!api_the_run(c, &r, &ret))
		return ret;
	json_t *j = api_run_json(&r);
	struct store_run_marks m;
	if (store_run_marks_get(c->sv->s, r.id, &m, NULL) == 0)
		store_run_marks_json(&m, j);
	json_t *res = r.result_json ? json_loads(r.result_json, 0, NULL) : NULL;
	json_object_set_new(j, "result", res ? res : json_null());
	store_run_clear(&r);
	return api_reply(c->conn, 200, j);
}

enum MHD_Result h_run_cancel(struct call *c)
{
	struct store_run r;
	enum MHD_Result ret;
	if (!api_the_run(c, &r, &ret))
		return ret;
	const char *id = c->seg[2];
	if (store_run_status_final(r.status)) {
		ret = api_fail(c->conn, 409, "conflict", "run %s already ended (%s)", id,
			       store_run_status_name(r.status));
	} else {
		char why[160];
		snprintf(why, sizeof(why), "cancelled by key %s", c->key.id);
		if (dispatch_cancel(c->sv, r.workspace, id, why) < 0)
			ret = api_fail(c->conn, 409, "conflict",
				       "run %s is not run by this server (started elsewhere)", id);
		else
			ret = api_reply(c->conn, 202,
					json_pack("{s:s, s:b}", "id", id, "cancelling", 1));
	}
	store_run_clear(&r);
	return ret;
}

/* ?follow=1|true (or 0|false, or nothing): anything else is a 400, not
 * a silent "no". */
static int follow_param(struct call *c, bool *follow)
{
	const char *f = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, "follow");
	*follow = f && (strcmp(f, "1") == 0 || strcmp(f, "true") == 0);
	return !f || !*f || *follow || strcmp(f, "0") == 0 || strcmp(f, "false") == 0 ? 0 : -1;
}

/* ?offset=N: bytes of the output the client already has (decimal digits,
 * at most OUTPUT_OFFSET_MAX). */
static int offset_param(struct call *c, uint64_t *offset)
{
	const char *v = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, "offset");
	*offset = 0;
	if (!v)
		return 0;
	if (!*v || strlen(v) > 15 || strspn(v, "0123456789") != strlen(v))
		return -1;
	*offset = strtoull(v, NULL, 10);
	return *offset <= OUTPUT_OFFSET_MAX ? 0 : -1;
}

/* The output as it is, or with follow as it grows while the run goes on. */
static enum MHD_Result run_output(struct call *c, const char *which)
{
	struct store_run r;
	enum MHD_Result ret;
	bool follow;
	uint64_t offset;
	if (follow_param(c, &follow) < 0)
		return api_fail(c->conn, 400, "bad_request", "follow: 1 or true, 0 or false");
	if (offset_param(c, &offset) < 0)
		return api_fail(c->conn, 400, "bad_request",
				"offset: the bytes already received, a number up to %llu",
				(unsigned long long)OUTPUT_OFFSET_MAX);
	if (offset && !follow)
		return api_fail(c->conn, 400, "bad_request", "offset: only with follow=1");
	if (!api_the_run(c, &r, &ret))
		return ret;
	bool final = store_run_status_final(r.status);
	store_run_clear(&r);
	/* A finished run without the file is a 404 either way. */
	char path[PATH_MAX];
	if (follow && (!final || (store_run_file(c->sv->s, c->seg[2], which, path, sizeof(path),
						 NULL) == 0 &&
				  access(path, F_OK) == 0)))
		return api_run_output_follow(c, c->seg[2], which, offset);
	return run_file(c, c->seg[2], which, "text/plain; charset=utf-8", false);
}

enum MHD_Result h_run_stdout(struct call *c)
{
	return run_output(c, "stdout");
}

enum MHD_Result h_run_stderr(struct call *c)
{
	return run_output(c, "stderr");
}

enum MHD_Result h_run_events_get(struct call *c)
{
	struct store_run r;
	enum MHD_Result ret;
	if (!api_the_run(c, &r, &ret))
		return ret;
	store_run_clear(&r);
	return api_run_events(c, c->seg[2]);
}

enum MHD_Result h_run_evidence_get(struct call *c)
{
	struct store_run r;
	enum MHD_Result ret;
	if (!api_the_run(c, &r, &ret))
		return ret;
	ret = run_evidence(c, &r);
	store_run_clear(&r);
	return ret;
}

enum MHD_Result h_run_artifact(struct call *c)
{
	struct store_run r;
	enum MHD_Result ret;
	if (!api_the_run(c, &r, &ret))
		return ret;
	/* Only names the result lists: nothing else under the run. */
	if (!artifact_listed(r.result_json, c->seg[4])) {
		ret = api_fail(c->conn, 404, "not_found", "run %s has no artifact %s", c->seg[2],
			       c->seg[4]);
	} else {
		char rel[PATH_MAX];
		snprintf(rel, sizeof(rel), "artifacts/%s", c->seg[4]);
		ret = run_file(c, c->seg[2], rel, "application/octet-stream", true);
	}
	store_run_clear(&r);
	return ret;
}
