/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A run, start to finish. The order of the steps is the contract:
 *
 *  1. resolve the agent (registered NAME[@VERSION], or a directory that is
 *     snapshotted and hashed the same way) and what it uses: granted
 *     capabilities, its env, its declared secrets. Anything missing stops
 *     here, before a sandbox exists.
 *  2. create the run record and its directory; event run.created.
 *  3. build the sandbox: the snapshot read-only at /agent, capabilities
 *     read-only under /capabilities, input at /workspace/input.json, a steps
 *     channel, egress through the engine when the agent needs a network.
 *  4. run `setup`, then `entrypoint`, streaming events.
 *  5. collect output.json and the artifacts from a workspace nothing can
 *     touch any more, write result.json, close the record; run.finished.
 */
#define _GNU_SOURCE
#include "run/run_internal.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit/audit.h"
#include "base/cleanup.h"
#include "base/text.h"
#include "base/clock.h"
#include "base/proc.h"
#include "base/file.h"
#include "base/hash.h"
#include "base/openat2.h"
#include "base/random.h"
#include <sodium.h>
#include "egress/engine.h"
#include "egress/tls.h"
#include "egress/policy.h"
#include "registry/registry.h"
#include "mcp/mcp.h"
#include "run/artifacts.h"
#include "run/events.h"
#include "run/netpart.h"
#include "run/policy_levels.h"
#include "run/remote.h"
#include "run/supervise.h"
#include "sandbox/sandbox.h"
#include "vault/redact.h"
#include "vault/seal.h"

/* --------------------------------------------------------------- helpers */

const char *run_status_for(const struct sandbox_status *st)
{
	if (st->timed_out)
		return "timeout";
	if (st->oom_killed)
		return "oom";
	if (st->signal)
		return "killed";
	return st->exit_code == 0 ? "succeeded" : "failed";
}

int run_write_file(struct run_ctx *c, const char *name, json_t *j)
{
	char path[PATH_MAX + 64];
	int r = store_run_file(c->s, c->rec.id, name, path, sizeof(path), NULL);
	if (r < 0)
		return r;
	_cleanup_free_ char *text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (!text)
		return -ENOMEM;
	size_t len = strlen(text);
	size_t rl = len;
	_cleanup_free_ char *safe = NULL;
	if (c->red && !(safe = redact_string(c->red, text, len, &rl)))
		return -ENOMEM; /* never the unredacted text */
	_cleanup_free_ char *full = NULL;
	const char *body = safe ? safe : text;
	if (asprintf(&full, "%.*s\n", (int)rl, body) < 0)
		return -ENOMEM;
	struct cdn_err err = { 0 };
	return store_write_atomic(c->s, path, full, rl + 1, 0644, &err);
}

/* ------------------------------------------------------------------- run */

int run_exit_code(const struct run_outcome *o)
{
	switch (o->status) {
	case RUN_SUCCEEDED:
		return 0;
	case RUN_FAILED:
	case RUN_KILLED:
	case RUN_TIMEOUT:
	case RUN_OOM:
		return o->exit_code > 0 ? o->exit_code : 1;
	case RUN_CREATED:
	case RUN_RUNNING:
	case RUN_CANCELLED:
	case RUN_ERROR:
	case RUN_LOST:
		break;
	}
	return 125;
}

/* ------------------------------------------------------------- the run */

static json_t *artifacts_json(struct run_ctx *c, const struct artifact_result *ar)
{
	json_t *list = json_array();
	for (size_t i = 0; i < ar->n_saved; i++) {
		const struct artifact *a = &ar->saved[i];
		json_t *j = json_pack("{s:s, s:s, s:s, s:I}", "name", a->name, "original",
				      a->original, "sha256", a->sha256, "size", (json_int_t)a->size);
		run_emit(c, "artifact.saved", j);
		json_array_append_new(list, j);
	}
	for (size_t i = 0; i < ar->n_skipped; i++) {
		json_t *j = json_pack("{s:s, s:s}", "name", ar->skipped[i].name, "reason",
				      ar->skipped[i].reason);
		run_emit(c, "artifact.skipped", j);
		json_decref(j);
	}
	return list;
}

/* The record's end: status, exit code, result and error. */
static void run_record_end(struct store *s, struct store_run *rec)
{
	struct cdn_err uerr = { 0 };
	if (store_run_update(s, rec, &uerr) < 0)
		fprintf(stderr, "cordon: run %s: could not record the result: %s\n", rec->id,
			uerr.msg);
	rec->result_json = NULL;
}

int run_agent(struct store *s, struct vault *v, struct run_options *o, struct run_outcome *out,
	      struct cdn_err *err)
{
	struct run_ctx c = { .s = s, .v = v, .o = o, .events = { .fd = -1 }, .steps_fd = -1,
			     .ws_live = -1, .deps_hold = -1 };
	c.ws = o->workspace ? o->workspace : STORE_DEFAULT_WORKSPACE;
	size_t cap = o->capture_bytes ? o->capture_bytes : RUN_DEFAULT_CAPTURE;
	run_capture_init(&c.out, "stdout", 1, o, cap);
	run_capture_init(&c.errc, "stderr", 2, o, cap);
	memset(out, 0, sizeof(*out));
	out->exit_code = -1;
	out->status = RUN_ERROR;
	c.caps = json_array();
	c.secrets = json_array();
	c.delivery = json_object();
	c.steps = json_array();
	c.children = json_array();
	struct secret_set ss = { 0 };
	_cleanup_free_ char *input = NULL;
	char input_hash[STORE_HASH_HEX + 1];
	_cleanup_free_ char *rtext = NULL, *rsafe = NULL, *queued_input = NULL;
	int ws_fd = -1;
	bool recorded = false, final_late = false;
	int r;

	if ((r = store_name_check("workspace", c.ws, err)) < 0)
		goto done;
	if (o->claim) {
		/* A queued record: it must exist, wait, and be this workspace's.
		 * From here on, whatever goes wrong ends up in it. */
		struct store_run q;
		if ((r = store_run_get(s, o->run_id, &q, err)) < 0)
			goto done;
		const char *lease = o->lease_owner ? o->lease_owner : "";
		bool ok = q.status == RUN_CREATED && strcmp(q.workspace, c.ws) == 0 &&
			  strcmp(q.lease_owner, lease) == 0;
		if (ok && !o->input && q.input_json) {
			/* The input came with the queued record. */
			queued_input = q.input_json;
			q.input_json = NULL;
			o->input = queued_input;
			o->input_len = strlen(queued_input);
		}
		c.rec = q;
		c.rec.input_json = c.rec.result_json = NULL;
		store_run_clear(&q);
		snprintf(c.rec.lease_owner, sizeof(c.rec.lease_owner), "%s", lease);
		if (!ok) {
			char why[256];
			r = cdn_err_msg(err, EINVAL, "%s", store_claim_refused(&c.rec, why, sizeof(why)));
			goto done;
		}
		recorded = true;
		snprintf(out->id, sizeof(out->id), "%s", c.rec.id);
	}
	/* Runs a dead supervisor left behind are closed first. */
	(void)store_runs_recover(s, NULL);

	/* 1. Everything the run needs, before anything exists. */
	if ((r = run_read_input(&c, &input, input_hash, err)) < 0 ||
	    (r = registry_resolve_agent(s, c.ws, o->ref, &c.agent, err)) < 0 ||
	    (r = run_apply_service(&c, err)) < 0 ||
	    (r = run_resolve_caps(&c, err)) < 0 || (r = run_resolve_env(&c, err)) < 0 ||
	    (r = run_load_secrets(&c, &ss, err)) < 0 || (r = run_make_redactor(&c, &ss, err)) < 0)
		goto done;

	/* 2. The record and its directory. */
	if (o->claim)
		; /* the id is the queued record's */
	else if (o->run_id[0])
		snprintf(c.rec.id, sizeof(c.rec.id), "%s", o->run_id);
	else if ((r = cdn_random_id("run_", 12, c.rec.id, sizeof(c.rec.id))) < 0) {
		cdn_err_set(err, -r, "run id");
		goto done;
	}
	snprintf(c.rec.workspace, sizeof(c.rec.workspace), "%s", c.ws);
	snprintf(c.rec.agent, sizeof(c.rec.agent), "%s", c.agent.name);
	c.rec.agent_version = c.agent.version;
	snprintf(c.rec.agent_hash, sizeof(c.rec.agent_hash), "%s", c.agent.hash);
	c.rec.status = RUN_CREATED;
	c.rec.exit_code = -1;
	if (!o->claim) {
		snprintf(c.rec.caller, sizeof(c.rec.caller), "%s", o->caller ? o->caller : "");
		c.rec.created_ms = cdn_wall_ms();
	}
	c.rec.supervisor_pid = (int)getpid();
	if ((r = cdn_boot_id(c.rec.supervisor_boot, sizeof(c.rec.supervisor_boot), err)) < 0)
		goto done;
	c.rec.input_json = input;
	if ((r = o->claim ? store_run_claim(s, &c.rec, err) : store_run_create(s, &c.rec, err)) < 0) {
		/* A lease that ran out is the expiry's to end (lost, and maybe
		 * retried), not this process's. */
		if (o->lease_owner)
			recorded = false;
		goto done;
	}
	recorded = true;
	snprintf(o->run_id, sizeof(o->run_id), "%s", c.rec.id);
	snprintf(out->id, sizeof(out->id), "%s", c.rec.id);
	if ((r = run_make_dir(&c, err)) < 0)
		goto done;
	snprintf(out->dir, sizeof(out->dir), "%s", c.dir);
	/* A fleet's API nodes on other hosts reach the run through the
	 * store: its approvals and cancel, and (when its files go to S3)
	 * its events as they come. */
	if (run_remote_open(s, c.rec.id, c.rec.workspace, store_blobs_shown(s) != NULL,
			    &c.remote) < 0)
		fprintf(stderr, "cordon run: %s: reached from other hosts: out of memory\n",
			c.rec.id);

	json_t *created = json_pack("{s:s, s:s, s:I, s:s, s:s, s:s, s:o, s:o, s:O}", "workspace",
				    c.ws, "agent", c.agent.name, "version",
				    (json_int_t)c.agent.version, "sha256", c.agent.hash, "caller",
				    c.rec.caller, "input_sha256", input_hash, "capabilities", json_deep_copy(c.caps), "env",
				    c.env ? json_deep_copy(c.env) : json_null(), "secrets", c.secrets);
	/* The capabilities' host paths are not the agent's business. */
	size_t i;
	json_t *cj;
	json_array_foreach(json_object_get(created, "capabilities"), i, cj)
		json_object_del(cj, "path");
	json_object_del(json_object_get(created, "env"), "vars");
	run_emit(&c, "run.created", created);
	json_decref(created);
	/* The dependency layer: built now when it is not yet (a failure
	 * ends the run as an error, recorded), then bound into the sandbox. */
	if ((r = run_resolve_deps(&c, err)) < 0)
		goto done;
	if (c.deps.key[0]) {
		json_t *dl = deps_layer_json(&c.deps);
		run_emit(&c, c.deps.built ? "deps.built" : "deps.cached", dl);
		json_decref(dl);
	}

	/* 3-4. The sandbox runs setup, then the entrypoint. */
	struct sandbox_status st = { 0 };
	char run_error[256] = "";
	r = run_execute(&c, &ss, &st, &ws_fd, err);
	run_secrets_free(&ss);
	if (r < 0) {
		snprintf(run_error, sizeof(run_error), "%s", err->msg);
		c.rec.status = RUN_ERROR;
		c.rec.exit_code = 125;
	} else if (c.net_error[0]) {
		/* The network part died: whatever the agent did after that ran
		 * without its network, and the sandbox was stopped. */
		snprintf(run_error, sizeof(run_error), "%s", c.net_error);
		c.rec.status = RUN_ERROR;
		c.rec.exit_code = 125;
	} else if (c.health_error[0] && !c.cancelled) {
		snprintf(run_error, sizeof(run_error), "%s", c.health_error);
		c.rec.status = RUN_FAILED;
		c.rec.exit_code = st.exit_code;
	} else if (c.cancelled) {
		snprintf(run_error, sizeof(run_error), "%s", c.cancel_why);
		c.rec.status = RUN_CANCELLED;
		c.rec.exit_code = st.exit_code;
	} else {
		store_run_status_parse(run_status_for(&st), &c.rec.status);
		c.rec.exit_code = st.exit_code;
		if (st.exit_code == 125 && err->msg[0]) {
			/* The sandbox could not finish its own setup. */
			snprintf(run_error, sizeof(run_error), "%s", err->msg);
			c.rec.status = RUN_ERROR;
		}
	}
	c.rec.finished_ms = cdn_wall_ms();
	if (!c.rec.started_ms)
		c.rec.started_ms = c.rec.finished_ms;
	/* What the run printed, as it was when it ended: evidence signs these
	 * files and refuses ones changed since. */
	struct capture *outs[2] = { &c.out, &c.errc };
	char *hashes[2] = { c.rec.stdout_sha256, c.rec.stderr_sha256 };
	for (int k = 0; k < 2; k++) {
		char path[PATH_MAX + 16];
		_cleanup_close_ int hfd = -1;
		if (store_run_file(s, c.rec.id, outs[k]->name, path, sizeof(path), NULL) == 0)
			hfd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (hfd < 0 || cdn_sha256_fd(hfd, hashes[k]) < 0)
			hashes[k][0] = '\0';
	}

	/* 5. Outputs, from a workspace nothing runs in any more. */
	char why[256];
	json_t *output = run_read_output(ws_fd, why, sizeof(why));
	if (why[0]) {
		json_t *d = json_pack("{s:s}", "problem", why);
		run_emit(&c, "output.invalid", d);
		json_decref(d);
	}
	const char *exts[MANIFEST_MAX_LIST + 1];
	struct artifact_limits lim;
	run_artifact_limits_for(&c, &lim, exts);
	lim.secrets = c.red;
	struct artifact_result ar = { 0 };
	json_t *arts = json_array();
	if (ws_fd >= 0) {
		_cleanup_close_ int outd = run_open_beneath(ws_fd, "out", O_RDONLY | O_DIRECTORY);
		char dest[PATH_MAX + 16];
		struct cdn_err aerr = { 0 };
		if (store_run_file(s, c.rec.id, "artifacts", dest, sizeof(dest), &aerr) < 0 ||
		    artifacts_collect(outd, s, dest, &lim, &ar, &aerr) < 0) {
			json_t *d = json_pack("{s:s, s:s}", "name", "*", "reason", aerr.msg);
			run_emit(&c, "artifact.skipped", d);
			json_decref(d);
		} else {
			json_decref(arts);
			arts = artifacts_json(&c, &ar);
		}
		artifacts_result_free(&ar);
	}

	uint64_t duration = (uint64_t)(c.rec.finished_ms - c.rec.created_ms);
	json_t *res = json_object();
	json_object_set_new(res, "run_id", json_string(c.rec.id));
	json_object_set_new(res, "workspace", json_string(c.ws));
	json_object_set_new(res, "status", json_string(store_run_status_name(c.rec.status)));
	json_object_set_new(res, "exit_code", json_integer(c.rec.exit_code));
	if (run_error[0])
		json_object_set_new(res, "error", json_string(run_error));
	/* What ran, by content hash. */
	json_t *resolved = json_object();
	json_object_set_new(resolved, "agent",
			    run_item_json(c.agent.name, c.agent.version, c.agent.hash));
	json_t *capl = json_deep_copy(c.caps);
	json_array_foreach(capl, i, cj)
	{
		json_object_del(cj, "path");
		json_object_del(cj, "mount");
	}
	json_object_set_new(resolved, "capabilities", capl);
	json_t *envj = c.env ? json_deep_copy(c.env) : json_null();
	json_object_del(envj, "vars");
	json_object_set_new(resolved, "env", envj);
	if (c.service)
		json_object_set(resolved, "service", c.service);
	json_object_set_new(resolved, "deps", c.deps.key[0] ? deps_layer_json(&c.deps) : json_null());
	json_object_set_new(res, "resolved", resolved);
	json_object_set_new(res, "caller", json_string(c.rec.caller));
	/* The runs it called (call_agent), each with what it resolved. */
	if (json_array_size(c.children))
		json_object_set(res, "children", c.children);
	json_object_set_new(res, "input_sha256", json_string(input_hash));
	json_object_set(res, "secrets", c.secrets);
	char t1[CDN_RFC3339_MAX], t2[CDN_RFC3339_MAX], t3[CDN_RFC3339_MAX];
	cdn_rfc3339(c.rec.created_ms, CDN_TIME_MS, t1, sizeof(t1));
	cdn_rfc3339(c.rec.started_ms, CDN_TIME_MS, t2, sizeof(t2));
	cdn_rfc3339(c.rec.finished_ms, CDN_TIME_MS, t3, sizeof(t3));
	json_object_set_new(res, "created", json_string(t1));
	json_object_set_new(res, "started", json_string(t2));
	json_object_set_new(res, "finished", json_string(t3));
	json_object_set_new(res, "duration_ms", json_integer((json_int_t)duration));
	if (c.setup_done)
		json_object_set_new(res, "setup_ms", json_integer((json_int_t)c.setup_ms));
	json_object_set_new(res, "timed_out", json_boolean(st.timed_out));
	json_object_set_new(res, "oom_killed", json_boolean(st.oom_killed));
	json_object_set_new(res, "signal", json_integer(st.signal));
	json_object_set_new(res, "resources",
			    json_pack("{s:I, s:I, s:I}", "wall_ms", (json_int_t)st.wall_ms,
				      "cpu_ms", (json_int_t)st.cpu_ms, "mem_peak_bytes",
				      (json_int_t)st.mem_peak_bytes));
	json_object_set_new(res, "protections", run_protections(&c, &st.prot));
	json_object_set_new(res, "output", output ? output : json_null());
	json_object_set_new(res, "artifacts", arts);
	json_object_set_new(res, "steps", json_integer((json_int_t)c.n_steps));
	json_object_set_new(res, "egress",
			    json_pack("{s:I, s:I, s:I, s:I}", "allowed", (json_int_t)c.egress_allowed,
				      "blocked", (json_int_t)c.egress_blocked, "allowed_bytes",
				      (json_int_t)c.egress_allowed_bytes, "blocked_bytes",
				      (json_int_t)c.egress_blocked_bytes));
	json_object_set_new(res, "stdout", run_capture_json(&c.out));
	json_object_set_new(res, "stderr", run_capture_json(&c.errc));
	if (c.audit) {
		json_object_set_new(res, "audit",
				    json_pack("{s:s, s:s, s:I}", "file", "audit.jsonl", "head",
					      audit_last_hash(c.audit), "records",
					      (json_int_t)audit_last_seq(c.audit)));
	}

	/* Strings first (an escaped value would slip past a scan of the
	 * text), then the text again in write_file. */
	if (run_redact_json(c.red, res) < 0 || run_redact_json(c.red, c.steps) < 0) {
		json_decref(res);
		res = json_pack("{s:s, s:s}", "run_id", c.rec.id, "status", "error");
		snprintf(run_error, sizeof(run_error), "could not redact the result");
		c.rec.status = RUN_ERROR;
	}
	rtext = json_dumps(res, JSON_COMPACT | JSON_SORT_KEYS);
	size_t rl = rtext ? strlen(rtext) : 0;
	rsafe = rtext ? redact_string(c.red, rtext, rl, &rl) : NULL;
	/* The record keeps at most STORE_MAX_RUN_RESULT of result, room for
	 * the largest output.json; should redaction make it larger, the
	 * output is left out of the result (file and record alike), and the
	 * run is an error that says so, not a success whose record could not
	 * be written. */
	if (rsafe && rl > STORE_MAX_RUN_RESULT) {
		snprintf(run_error, sizeof(run_error),
			 "the result is %zu bytes, more than the %d bytes a record keeps: output.json "
			 "was left out",
			 rl, STORE_MAX_RUN_RESULT);
		c.rec.status = RUN_ERROR;
		json_object_set_new(res, "output", json_null());
		json_object_set_new(res, "status", json_string(store_run_status_name(RUN_ERROR)));
		json_object_set_new(res, "error", json_string(run_error));
		free(rtext);
		free(rsafe);
		rtext = json_dumps(res, JSON_COMPACT | JSON_SORT_KEYS);
		rl = rtext ? strlen(rtext) : 0;
		rsafe = rtext ? redact_string(c.red, rtext, rl, &rl) : NULL;
	}
	(void)run_write_file(&c, "steps.json", c.steps);
	if (run_write_file(&c, "result.json", res) < 0 && !run_error[0]) {
		snprintf(run_error, sizeof(run_error), "could not write result.json");
		c.rec.status = RUN_ERROR;
	}
	c.rec.result_json = rsafe;
	snprintf(c.rec.error, sizeof(c.rec.error), "%s", run_error);
	/* With the blob store on S3, the record says the run ended only once
	 * its files are uploaded (below, when every file is closed): an API
	 * node on another host that sees it final finds them there. */
	final_late = store_blobs_shown(s) != NULL;
	if (!final_late)
		run_record_end(s, &c.rec);
	c.rec.result_json = NULL;

	json_t *fin = json_pack("{s:s, s:i, s:I, s:I, s:I, s:I}", "status",
				store_run_status_name(c.rec.status), "exit_code", c.rec.exit_code,
				"duration_ms", (json_int_t)duration, "steps",
				(json_int_t)c.n_steps, "egress_allowed",
				(json_int_t)c.egress_allowed, "egress_blocked",
				(json_int_t)c.egress_blocked);
	if (run_error[0])
		json_object_set_new(fin, "error", json_string(run_error));
	json_object_set(fin, "output", json_object_get(res, "output"));
	run_emit_event(&c, "run.finished", fin, true);
	json_decref(fin);
	json_decref(res);

	out->status = c.rec.status;
	out->exit_code = c.rec.exit_code;
	r = 0;
done:
	if (r < 0 && recorded) {
		/* A record exists: it ends as an error, with the reason. */
		c.rec.status = RUN_ERROR;
		c.rec.exit_code = 125;
		c.rec.finished_ms = cdn_wall_ms();
		snprintf(c.rec.error, sizeof(c.rec.error), "%s", err->msg);
		c.rec.input_json = NULL;
		(void)store_run_update(s, &c.rec, NULL);
	}
	if (ws_fd >= 0)
		close(ws_fd);
	if (c.steps_fd >= 0)
		close(c.steps_fd);
	if (c.deps_hold >= 0)
		close(c.deps_hold);
	events_writer_close(&c.events);
	run_capture_close(&c.out);
	run_capture_close(&c.errc);
	if (c.audit)
		audit_close(c.audit);
	run_secrets_free(&ss);
	redactor_free(c.red);
	registry_resolved_clear(&c.agent);
	json_decref(c.caps);
	json_decref(c.env);
	json_decref(c.service);
	json_decref(c.secrets);
	json_decref(c.delivery);
	json_decref(c.steps);
	json_decref(c.children);
	c.rec.input_json = NULL;
	/* Every file closed: the run's files go to the blob store's S3 (when
	 * there is one), so a reader on another host finds them. A failure is
	 * said, and the files stay here. */
	struct cdn_err perr = { 0 };
	bool pushed = false;
	if (recorded && c.dir[0] && store_run_files_push(s, c.rec.id, &perr) < 0)
		fprintf(stderr, "cordon: run %s: its files were not uploaded: %s\n", c.rec.id,
			perr.msg);
	else
		pushed = recorded && c.dir[0];
	if (final_late) {
		c.rec.result_json = rsafe;
		run_record_end(s, &c.rec);
	}
	/* Ended, and its files where every host finds them: its live rows go,
	 * and a worker's own copy of them (its disk would fill with every
	 * run it ran; API nodes read them from the bucket, as does a later
	 * `cordon runs output` here). Kept when the upload failed. */
	run_remote_close(c.remote);
	c.remote = NULL;
	if (pushed && o->lease_owner && store_blobs_shown(s) &&
	    store_run_files_drop(s, c.rec.id, &perr) < 0)
		fprintf(stderr, "cordon: run %s: %s\n", c.rec.id, perr.msg);
	if (queued_input) {
		o->input = NULL;
		o->input_len = 0;
	}
	return r;
}
