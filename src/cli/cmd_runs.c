/* SPDX-License-Identifier: Apache-2.0 */
/* cordon runs list|show|output|artifact|cancel, cordon logs RUN [--follow] */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/clock.h"
#include "base/text.h"
#include "base/units.h"
#include "cli/cli.h"
#include "run/artifacts.h"
#include "run/control.h"
#include "run/events.h"
#include "run/run.h"
#include "store/store.h"

static void runs_usage(FILE *out)
{
	fputs("Usage: cordon runs list [--agent NAME] [--status STATUS] [--limit N] [OPTIONS]\n"
	      "       cordon runs show RUN [OPTIONS]\n"
	      "       cordon runs output RUN [stdout|stderr] [OPTIONS]\n"
	      "       cordon runs artifact RUN NAME [-o FILE [--force]] [OPTIONS]\n"
	      "       cordon runs cancel RUN [OPTIONS]\n"
	      "       cordon runs hold RUN --reason TEXT [OPTIONS]\n"
	      "       cordon runs release RUN [OPTIONS]\n"
	      "\n"
	      "list shows a workspace's runs, newest first. show prints a run's record and,\n"
	      "once it finished, its result.json (status, exit code, hashes of what ran,\n"
	      "resources, output, artifacts, the audit log's head). output prints what the\n"
	      "run wrote to stdout (default) or stderr, as kept: redacted, up to the capture\n"
	      "limit. artifact writes one of the run's artifacts (as result.json lists\n"
	      "them) to standard output or FILE. cancel stops a running run, which ends as\n"
	      "cancelled (locally: through the run's control socket, so as root or the\n"
	      "user who started it). hold keeps a run past every retention age (an\n"
	      "incident, a dispute) until release; show prints the hold and what was pruned.\n"
	      "STATUS: created, running, succeeded, failed, timeout, oom, killed, error,\n"
	      "cancelled.\n"
	      "\n"
	      "Options:\n"
	      "      --agent NAME      only this agent's runs\n"
	      "      --status STATUS   only runs with this status\n"
	      "      --limit N         at most N runs (1-1000, default 20)\n"
	      "  -o, --output FILE     artifact: write it to FILE (not replaced without\n"
	      "                        --force)\n"
	      "      --force           artifact: replace an existing FILE\n"
	      "      --reason TEXT     hold: why the run is kept\n"
	      "  -w, --workspace NAME  workspace (default $CORDON_WORKSPACE, else \"default\")\n"
	      "      --state DIR       state directory (default $CORDON_STATE)\n"
	      "      --json            print the result as JSON\n"
	      "  -h, --help            show this help\n"
	      "\n"
	      "With CORDON_URL set, this calls cordon serve with the key in CORDON_API_KEY\n"
	      "(the key's workspace).\n",
	      out);
}

static void fmt_time(int64_t ms, char *buf, size_t cap)
{
	if (ms <= 0) {
		snprintf(buf, cap, "-");
		return;
	}
	cdn_rfc3339(ms, CDN_TIME_S, buf, cap);
}

static json_t *run_json(const struct store_run *r)
{
	char created[32];
	fmt_time(r->created_ms, created, sizeof(created));
	json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:i, s:s, s:s}", "id", r->id,
			      "workspace", r->workspace, "agent", r->agent, "version",
			      (json_int_t)r->agent_version, "sha256", r->agent_hash, "status",
			      store_run_status_name(r->status), "exit_code", r->exit_code,
			      "caller", r->caller, "created", created);
	if (r->finished_ms && r->started_ms)
		json_object_set_new(j, "duration_ms",
				    json_integer((json_int_t)(r->finished_ms - r->created_ms)));
	if (r->error[0])
		json_object_set_new(j, "error", json_string(r->error));
	/* A run another run called (call_agent), as the API says it. */
	if (strncmp(r->caller, "run:", 4) == 0)
		json_object_set_new(j, "parent", json_string(r->caller + 4));
	return j;
}

static int remote_runs(bool list, const char *id, const struct store_run_query *q, bool json)
{
	char path[512];
	struct cli_api_resp rs;
	if (list) {
		int n = snprintf(path, sizeof(path), "/v1/runs?limit=%zu", q->limit);
		if (q->agent)
			n += snprintf(path + n, sizeof(path) - (size_t)n, "&agent=%s", q->agent);
		if (q->status >= 0)
			snprintf(path + n, sizeof(path) - (size_t)n, "&status=%s",
				 store_run_status_name((enum store_run_status)q->status));
	} else {
		snprintf(path, sizeof(path), "/v1/runs/%s", id);
	}
	if (cli_api_json("GET", path, NULL, 200, &rs) < 0)
		return EXIT_CORDON;
	json_t *out = list ? json_object_get(rs.json, "runs") : rs.json;
	if (list && !json && json_array_size(out) == 0)
		fprintf(stderr, "%s\n", q->agent || q->status >= 0
					      ? "no run in the key's workspace matches the filter"
					      : "no runs in the key's workspace");
	if (json || !list) {
		json_dumpf(out, stdout, json ? JSON_COMPACT | JSON_SORT_KEYS : JSON_INDENT(2));
		putchar('\n');
	} else {
		size_t i;
		json_t *r;
		if (json_array_size(out))
			printf("%-30s %-20s %-10s %-5s %-10s %s\n", "RUN", "AGENT", "STATUS", "EXIT",
			       "DURATION", "CREATED");
		json_array_foreach(out, i, r)
		{
			char ag[80], dur[32] = "-";
			snprintf(ag, sizeof(ag), "%s@%lld",
				 json_string_value(json_object_get(r, "agent")),
				 (long long)json_integer_value(json_object_get(r, "version")));
			if (json_object_get(r, "duration_ms"))
				snprintf(dur, sizeof(dur), "%lldms",
					 (long long)json_integer_value(json_object_get(r, "duration_ms")));
			printf("%-30s %-20s %-10s %-5lld %-10s %s\n",
			       json_string_value(json_object_get(r, "id")), ag,
			       json_string_value(json_object_get(r, "status")),
			       (long long)json_integer_value(json_object_get(r, "exit_code")), dur,
			       json_string_value(json_object_get(r, "created")));
		}
	}
	cli_api_resp_free(&rs);
	return 0;
}

/* ------------------------------------------------- output, artifact, cancel */

/* The run `id` of this workspace, locally: 0, or EXIT_CORDON after saying
 * why. Free with store_run_clear. */
static int local_run(struct store *s, const char *ws, const char *id, struct store_run *r)
{
	struct cdn_err err = { 0 };
	if (store_run_id_check(id, &err) < 0) {
		cli_error_err(&err);
		return EXIT_CORDON;
	}
	int g = store_run_get(s, id, r, &err);
	if (g == -ENOENT || (g == 0 && strcmp(r->workspace, ws) != 0)) {
		cli_error("no run %s in workspace %s", id, ws);
		if (g == 0)
			store_run_clear(r);
		return EXIT_CORDON;
	}
	if (g < 0) {
		cli_error_err(&err);
		return cli_exit_status(&err);
	}
	return 0;
}

/* A run file to the sink, locally or from the API (streamed either way). */
static int copy_run_file(const struct cli_common *co, const char *id, const char *rel,
			 const char *api_path, const char *what, const char *output, bool force)
{
	struct cli_sink k;
	if (cli_remote()) {
		if (cli_sink_open(&k, output, force) < 0)
			return EXIT_CORDON;
		struct cli_api_req rq = { .method = "GET", .path = api_path, .on_data = cli_sink_data,
					  .ctx = &k, .stream_status = 200 };
		struct cli_api_resp rs;
		int r = cli_api_call(&rq, &rs);
		bool ok = r == 0 && rs.status == 200;
		const char *msg = r == 0 ? json_string_value(json_object_get(
						   json_object_get(rs.json, "error"), "message"))
					 : NULL;
		if (r == 0 && !ok)
			cli_error("run %s: %s (HTTP %d)", id,
				  msg ? msg : "no such file of the run in the key's workspace",
				  rs.status);
		if (r == 0)
			cli_api_resp_free(&rs);
		return cli_sink_close(&k, ok) == 0 ? 0 : EXIT_CORDON;
	}
	struct store *s;
	if (cli_open_state(co->state, &s, NULL) < 0)
		return EXIT_CORDON;
	struct store_run r;
	int rc = local_run(s, co->workspace, id, &r);
	if (rc) {
		store_close(s);
		return rc;
	}
	bool listed = strncmp(rel, "artifacts/", 10) != 0 || artifact_listed(r.result_json, rel + 10);
	store_run_clear(&r);
	char path[PATH_MAX];
	_cleanup_close_ int fd = -1;
	/* Not on this host: fetched from the blob store's S3, checked. */
	struct cdn_err perr = { 0 };
	if (listed && store_run_files_pull(s, id, &perr) < 0 && perr.code != ENOENT) {
		store_close(s);
		return cli_fail(&perr);
	}
	if (listed && store_run_file(s, id, rel, path, sizeof(path), NULL) == 0)
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	store_close(s);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		cli_error("run %s has no %s", id, what);
		return EXIT_CORDON;
	}
	if (cli_sink_open(&k, output, force) < 0)
		return EXIT_CORDON;
	char buf[65536];
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		(void)fwrite(buf, 1, (size_t)n, k.f);
	return cli_sink_close(&k, n == 0) == 0 ? 0 : EXIT_CORDON;
}

static bool run_id_given(const char *verb, const char *id)
{
	if (store_run_id_check(id, NULL) == 0)
		return true;
	cli_error("runs %s: '%s' is not a run id", verb, id);
	return false;
}

int cli_runs_output(const struct cli_common *co, const char *id, const char *which)
{
	if (strcmp(which, "stdout") != 0 && strcmp(which, "stderr") != 0) {
		cli_error("runs output: '%s' is not stdout or stderr", which);
		return EXIT_CORDON;
	}
	if (!run_id_given("output", id))
		return EXIT_CORDON;
	char api[160];
	snprintf(api, sizeof(api), "/v1/runs/%s/%s", id, which);
	return copy_run_file(co, id, which, api, which, NULL, false);
}

static int runs_artifact(const struct cli_common *co, const char *id, const char *name,
			 const char *output, bool force)
{
	if (!run_id_given("artifact", id))
		return EXIT_CORDON;
	if (!artifact_name_ok(name)) {
		cli_error("runs artifact: '%s' is not an artifact name (the names runs show "
			  "lists)",
			  name);
		return EXIT_CORDON;
	}
	char rel[PATH_MAX], api[PATH_MAX], what[PATH_MAX];
	snprintf(rel, sizeof(rel), "artifacts/%s", name);
	snprintf(api, sizeof(api), "/v1/runs/%s/artifacts/%s", id, name);
	snprintf(what, sizeof(what), "artifact %s", name);
	return copy_run_file(co, id, rel, api, what, output, force);
}

static int runs_cancel(const struct cli_common *co, const char *id)
{
	if (!run_id_given("cancel", id))
		return EXIT_CORDON;
	char path[160];
	struct cli_api_resp rs;
	if (cli_remote()) {
		snprintf(path, sizeof(path), "/v1/runs/%s/cancel", id);
		if (cli_api_json("POST", path, NULL, 202, &rs) < 0)
			return EXIT_CORDON;
		cli_api_resp_free(&rs);
		if (co->json)
			printf("{\"id\":\"%s\",\"cancelling\":true}\n", id);
		else
			fprintf(stderr, "cancelling run %s\n", id);
		return 0;
	}
	struct store *s;
	if (cli_open_state(co->state, &s, NULL) < 0)
		return EXIT_CORDON;
	struct store_run r;
	int rc = local_run(s, co->workspace, id, &r);
	if (rc) {
		store_close(s);
		return rc;
	}
	enum store_run_status st = r.status;
	store_run_clear(&r);
	store_close(s);
	if (store_run_status_final(st)) {
		cli_error("run %s already ended (%s)", id, store_run_status_name(st));
		return EXIT_CORDON;
	}
	json_t *req = json_pack("{s:s, s:s}", "op", "cancel", "by", cli_caller());
	struct cdn_err err = { 0 };
	json_t *res = req ? control_ask(id, req, &err) : NULL;
	json_decref(req);
	if (!res) {
		if (st == RUN_CREATED)
			cli_error("run %s has not started: a queued run is cordon serve's to "
				  "cancel (set CORDON_URL and CORDON_API_KEY)",
				  id);
		else
			cli_error("run %s: its control socket does not answer (%s); as root, or as "
				  "the user who started it?",
				  id, err.msg[0] ? err.msg : "no socket");
		return EXIT_CORDON;
	}
	bool ok = json_is_true(json_object_get(res, "ok"));
	if (!ok)
		cli_error("run %s: %s", id,
			  json_string_value(json_object_get(res, "error")) ?: "not cancelled");
	json_decref(res);
	if (!ok)
		return EXIT_CORDON;
	if (co->json)
		printf("{\"id\":\"%s\",\"cancelling\":true}\n", id);
	else
		fprintf(stderr, "cancelling run %s\n", id);
	return 0;
}

int cmd_runs(int argc, char **argv)
{
	const char *agent = NULL, *status = NULL, *limit = NULL, *output = NULL, *reason = NULL;
	bool force = false;
	const struct cli_extra extra[] = { { "agent", 0, &agent, NULL },
					   { "status", 0, &status, NULL },
					   { "limit", 0, &limit, NULL },
					   { "output", 'o', &output, NULL },
					   { "force", 0, NULL, &force },
					   { "reason", 0, &reason, NULL } };
	struct cli_common co;
	int p = cli_parse_opts(argc, argv, extra, CDN_ARRAY_SIZE(extra), true, runs_usage, &co);
	if (p)
		return p > 0 ? 0 : EXIT_CORDON;
	const char *state = co.state;
	bool json = co.json;
	struct store_run_query q = { .workspace = co.workspace, .agent = agent, .status = -1,
				     .limit = 20 };
	struct cdn_err err = { 0 };
	if (status) {
		enum store_run_status st;
		if (store_run_status_parse(status, &st) < 0) {
			cli_error("--status: unknown status '%s'", status);
			return EXIT_CORDON;
		}
		q.status = (int)st;
	}
	if (limit) {
		uint64_t v;
		if (cdn_parse_uint(limit, 1000, &v, &err) < 0 || v == 0) {
			cli_error("--limit: '%s' is not a number from 1 to 1000", limit);
			return EXIT_CORDON;
		}
		q.limit = (size_t)v;
	}
	int nargs = argc - optind;
	const char *verb = nargs > 0 ? argv[optind] : "";
	bool list = strcmp(verb, "list") == 0 && nargs == 1;
	bool show = strcmp(verb, "show") == 0 && nargs == 2;
	if (strcmp(verb, "output") == 0 && (nargs == 2 || nargs == 3))
		return cli_runs_output(&co, argv[optind + 1], nargs == 3 ? argv[optind + 2] : "stdout");
	if (strcmp(verb, "artifact") == 0 && nargs == 3)
		return runs_artifact(&co, argv[optind + 1], argv[optind + 2], output, force);
	if (strcmp(verb, "cancel") == 0 && nargs == 2)
		return runs_cancel(&co, argv[optind + 1]);
	if ((strcmp(verb, "hold") == 0 || strcmp(verb, "release") == 0) && nargs == 2)
		return cli_runs_hold(&co, argv[optind + 1], reason, strcmp(verb, "hold") == 0);
	if (reason) {
		cli_error("runs %s: --reason is for runs hold", verb);
		return EXIT_CORDON;
	}
	if (output || force) {
		cli_error("runs %s: -o and --force are for runs artifact", verb);
		return EXIT_CORDON;
	}
	if (!list && !show) {
		runs_usage(stderr);
		return EXIT_CORDON;
	}
	if (cli_remote())
		return remote_runs(list, list ? NULL : argv[optind + 1], &q, json);
	struct store *s;
	if (cli_open_state(state, &s, NULL) < 0)
		return EXIT_CORDON;
	int rc = 0;
	(void)store_runs_recover(s, NULL);
	if (list) {
		struct store_run *runs = NULL;
		size_t n = 0;
		if (store_run_list(s, &q, &runs, &n, &err) < 0) {
			cli_error_err(&err);
			store_close(s);
			return cli_exit_status(&err);
		}
		json_t *arr = json_array();
		if (!json && n)
			printf("%-30s %-20s %-10s %-5s %-10s %s\n", "RUN", "AGENT", "STATUS", "EXIT",
			       "DURATION", "CREATED");
		for (size_t i = 0; i < n; i++) {
			json_t *j = run_json(&runs[i]);
			if (json) {
				json_array_append_new(arr, j);
				continue;
			}
			char ag[80], dur[32], cr[32];
			snprintf(ag, sizeof(ag), "%s@%u", runs[i].agent, runs[i].agent_version);
			if (runs[i].finished_ms)
				snprintf(dur, sizeof(dur), "%lldms",
					 (long long)(runs[i].finished_ms - runs[i].created_ms));
			else
				snprintf(dur, sizeof(dur), "-");
			fmt_time(runs[i].created_ms, cr, sizeof(cr));
			printf("%-30s %-20s %-10s %-5d %-10s %s\n", runs[i].id, ag,
			       store_run_status_name(runs[i].status), runs[i].exit_code, dur, cr);
			json_decref(j);
		}
		if (json) {
			json_dumpf(arr, stdout, JSON_COMPACT);
			putchar('\n');
		} else if (n == 0 && (q.agent || q.status >= 0)) {
			fprintf(stderr, "no run in workspace %s matches the filter (%s%s%s%s%s)\n",
				q.workspace, q.agent ? "--agent " : "", q.agent ? q.agent : "",
				q.agent && q.status >= 0 ? ", " : "", q.status >= 0 ? "--status " : "",
				q.status >= 0 ? store_run_status_name((enum store_run_status)q.status)
					      : "");
		} else if (n == 0) {
			fprintf(stderr, "no runs in workspace %s\n", q.workspace);
		}
		json_decref(arr);
		store_runs_free(runs, n);
	} else {
		struct store_run r;
		int g = local_run(s, q.workspace, argv[optind + 1], &r);
		if (g) {
			store_close(s);
			return g;
		}
		json_t *j = run_json(&r);
		struct store_run_marks m;
		if (store_run_marks_get(s, r.id, &m, NULL) == 0)
			store_run_marks_json(&m, j);
		char dir[PATH_MAX];
		if (store_run_file(s, r.id, NULL, dir, sizeof(dir), NULL) == 0)
			json_object_set_new(j, "run_dir", json_string(dir));
		json_t *res = r.result_json ? json_loads(r.result_json, 0, NULL) : NULL;
		if (res)
			json_object_set_new(j, "result", res);
		json_dumpf(j, stdout, json ? JSON_COMPACT | JSON_SORT_KEYS : JSON_INDENT(2));
		putchar('\n');
		json_decref(j);
		store_run_clear(&r);
	}
	store_close(s);
	return rc;
}

/* ------------------------------------------------------------------- logs */

static void logs_usage(FILE *out)
{
	fputs("Usage: cordon logs RUN [--follow] [--json] [OPTIONS]\n"
	      "\n"
	      "Print a run's events: setup, steps, egress allowed and blocked, approvals,\n"
	      "artifacts and the end. Secret values are already redacted. With --follow,\n"
	      "wait for new events until the run finishes.\n"
	      "\n"
	      "Options:\n"
	      "  -f, --follow          keep printing events until the run ends\n"
	      "      --json            the events as NDJSON, as stored\n"
	      "  -w, --workspace NAME  workspace (default $CORDON_WORKSPACE, else \"default\")\n"
	      "      --state DIR       state directory (default $CORDON_STATE)\n"
	      "  -h, --help            show this help\n"
	      "\n"
	      "With CORDON_URL set, this calls cordon serve with the key in CORDON_API_KEY\n"
	      "(the key's workspace).\n",
	      out);
}

struct log_view {
	const char *run_id;
	bool json, color, finished;
	struct events_reader rd;
};

static void print_event(struct log_view *v, const char *line, size_t len)
{
	if (v->json) {
		(void)fwrite(line, 1, len, stdout);
		fputc('\n', stdout);
	} else {
		cli_progress_event(line, len, v->color);
	}
	(void)fflush(stdout);
}

/* A run that ended without its run.finished event (its supervisor died, it
 * failed before the sandbox started) has only its record to say why: the
 * error is printed, so that logs never ends in silence. */
static void say_end(const char *id, const char *status, const char *error)
{
	if (!status || strcmp(status, "succeeded") == 0)
		return;
	char safe[512];
	cli_error("run %s ended as %s%s%s", id, status, error && *error ? ": " : "",
		  error && *error ? cdn_printable_str(safe, sizeof(safe), error, CDN_TEXT_UTF8)
				  : "");
}

/* A local events file, through the follower (run/events.h). */
static void on_local_event(void *ctx, const struct events_head *h, const char *line, size_t len)
{
	(void)h;
	print_event(ctx, line, len);
}

/* The API's stream: the same lines; the end is the parsed event's type,
 * as everywhere (events.h), never a match in the line's bytes. */
static void on_remote_line(void *ctx, const char *line, size_t len)
{
	struct log_view *v = ctx;
	struct events_head h;
	if (events_parse(line, len, &h, NULL) < 0 || strcmp(h.run_id, v->run_id) != 0)
		return;
	print_event(v, line, len);
	if (events_is_end(&h, v->run_id))
		v->finished = true;
}

static void on_log_data(void *ctx, const char *p, size_t n)
{
	struct log_view *v = ctx;
	(void)events_reader_feed(&v->rd, p, n, on_remote_line, v);
}

static int remote_logs(const char *id, bool follow, bool json)
{
	char path[256];
	snprintf(path, sizeof(path), "/v1/runs/%s/events%s", id, follow ? "?follow=1" : "");
	struct log_view v = { .run_id = id, .json = json };
	v.color = !json && isatty(STDOUT_FILENO) && !getenv("NO_COLOR");
	struct cli_api_req rq = { .method = "GET", .path = path, .on_data = on_log_data,
				  .ctx = &v };
	struct cli_api_resp rs;
	int r = cli_api_call(&rq, &rs);
	events_reader_free(&v.rd);
	if (r < 0)
		return EXIT_CORDON;
	if (rs.status != 200) {
		cli_error("no run %s in the key's workspace (HTTP %d)", id, rs.status);
		cli_api_resp_free(&rs);
		return EXIT_CORDON;
	}
	cli_api_resp_free(&rs);
	if (!v.finished) {
		snprintf(path, sizeof(path), "/v1/runs/%s", id);
		if (cli_api_json("GET", path, NULL, 200, &rs) == 0) {
			const char *st = json_string_value(json_object_get(rs.json, "status"));
			enum store_run_status status;
			if (st && store_run_status_parse(st, &status) == 0 &&
			    store_run_status_final(status))
				say_end(id, st,
					json_string_value(json_object_get(rs.json, "error")));
			cli_api_resp_free(&rs);
		}
	}
	return 0;
}

int cmd_logs(int argc, char **argv)
{
	bool follow = false;
	const struct cli_extra extra[] = { { "follow", 'f', NULL, &follow } };
	struct cli_common co;
	int p = cli_parse_opts(argc, argv, extra, 1, true, logs_usage, &co);
	if (p)
		return p > 0 ? 0 : EXIT_CORDON;
	const char *state = co.state, *ws = co.workspace;
	bool json = co.json;
	if (argc - optind != 1) {
		logs_usage(stderr);
		return EXIT_CORDON;
	}
	const char *id = argv[optind];
	if (cli_remote())
		return remote_logs(id, follow, json);
	struct store *s;
	if (cli_open_state(state, &s, NULL) < 0)
		return EXIT_CORDON;
	struct cdn_err err = { 0 };
	struct store_run r;
	int g = local_run(s, ws, id, &r);
	if (g) {
		store_close(s);
		return g;
	}
	store_run_clear(&r);
	char path[PATH_MAX];
	struct cdn_err perr = { 0 };
	if (store_run_files_pull(s, id, &perr) < 0 && perr.code != ENOENT) {
		store_close(s);
		return cli_fail(&perr);
	}
	if (store_run_file(s, id, "events.ndjson", path, sizeof(path), &err) < 0) {
		store_close(s);
		return cli_fail(&err);
	}
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	/* A queued run has no events yet: --follow waits for it to start. */
	while (fd < 0 && errno == ENOENT && follow && store_run_get(s, id, &r, NULL) == 0) {
		bool done = store_run_status_final(r.status);
		store_run_clear(&r);
		if (done)
			break;
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	}
	if (fd < 0 && errno == ENOENT && store_run_get(s, id, &r, NULL) == 0) {
		/* No events at all: the record says how the run ended. */
		bool done = store_run_status_final(r.status);
		if (done)
			say_end(id, store_run_status_name(r.status), r.error);
		else
			cli_error("run %s has no events yet (%s)", id,
				  store_run_status_name(r.status));
		store_run_clear(&r);
		store_close(s);
		return done ? 0 : EXIT_CORDON;
	}
	if (fd < 0) {
		cli_error("%s: %s", path, strerror(errno));
		store_close(s);
		return EXIT_CORDON;
	}
	struct log_view v = { .run_id = id, .json = json };
	v.color = !json && isatty(STDOUT_FILENO) && !getenv("NO_COLOR");
	struct events_follower f;
	events_follower_init(&f, fd, id, 0);
	int idle = 0, grace = 0;
	bool final_seen = false;
	for (;;) {
		ssize_t n = events_follow_poll(&f, on_local_event, &v);
		if (n < 0) {
			cli_error("%s: %s", path, strerror((int)-n));
			break;
		}
		if (n > 0) {
			idle = 0;
			continue;
		}
		if (!follow || f.finished || (final_seen && ++grace > 20))
			break;
		/* Every few seconds: did the run end? Its record is final a moment
		 * before run.finished is written, which is then waited for, two
		 * seconds at most: a dead supervisor never writes it. */
		if (!final_seen && ++idle % 20 == 0) {
			(void)store_runs_recover(s, NULL);
			if (store_run_get(s, id, &r, NULL) == 0) {
				final_seen = store_run_status_final(r.status);
				store_run_clear(&r);
			}
		}
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	bool saw_end = f.finished;
	events_follower_free(&f);
	if (!saw_end) {
		(void)store_runs_recover(s, NULL);
		if (store_run_get(s, id, &r, NULL) == 0) {
			if (store_run_status_final(r.status))
				say_end(id, store_run_status_name(r.status), r.error);
			store_run_clear(&r);
		}
	}
	store_close(s);
	return 0;
}
