/* SPDX-License-Identifier: Apache-2.0 */
/* cordon runs list|show, cordon logs RUN [--follow] */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/clock.h"
#include "base/units.h"
#include "cli/cli.h"
#include "run/events.h"
#include "run/run.h"
#include "store/store.h"

static void runs_usage(FILE *out)
{
	fputs("Usage: cordon runs list [--agent NAME] [--status STATUS] [--limit N] [OPTIONS]\n"
	      "       cordon runs show RUN [OPTIONS]\n"
	      "\n"
	      "list shows a workspace's runs, newest first. show prints a run's record and,\n"
	      "once it finished, its result.json (status, exit code, hashes of what ran,\n"
	      "resources, output, artifacts, the audit log's head).\n"
	      "STATUS: created, running, succeeded, failed, timeout, oom, killed, error,\n"
	      "cancelled.\n"
	      "\n"
	      "Options:\n"
	      "      --agent NAME      only this agent's runs\n"
	      "      --status STATUS   only runs with this status\n"
	      "      --limit N         at most N runs (1-1000, default 20)\n"
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

int cmd_runs(int argc, char **argv)
{
	const char *agent = NULL, *status = NULL, *limit = NULL;
	const struct cli_extra extra[] = { { "agent", 0, &agent, NULL },
					   { "status", 0, &status, NULL },
					   { "limit", 0, &limit, NULL } };
	struct cli_common co;
	int p = cli_parse_opts(argc, argv, extra, 3, true, runs_usage, &co);
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
		} else if (n == 0) {
			fprintf(stderr, "no runs in workspace %s\n", q.workspace);
		}
		json_decref(arr);
		store_runs_free(runs, n);
	} else {
		struct store_run r;
		const char *id = argv[optind + 1];
		int g = store_run_get(s, id, &r, &err);
		if (g == -ENOENT || (g == 0 && strcmp(r.workspace, q.workspace) != 0)) {
			cli_error("no run %s in workspace %s", id, q.workspace);
			if (g == 0)
				store_run_clear(&r);
			store_close(s);
			return EXIT_CORDON;
		}
		if (g < 0) {
			cli_error_err(&err);
			store_close(s);
			return cli_exit_status(&err);
		}
		json_t *j = run_json(&r);
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
		fwrite(line, 1, len, stdout);
		fputc('\n', stdout);
	} else {
		cli_progress_event(line, len, v->color);
	}
	fflush(stdout);
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
	int g = store_run_get(s, id, &r, &err);
	if (g == -ENOENT || (g == 0 && strcmp(r.workspace, ws) != 0)) {
		cli_error("no run %s in workspace %s", id, ws);
		if (g == 0)
			store_run_clear(&r);
		store_close(s);
		return EXIT_CORDON;
	}
	if (g < 0) {
		cli_error_err(&err);
		store_close(s);
		return cli_exit_status(&err);
	}
	store_run_clear(&r);
	char path[PATH_MAX];
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
	events_follower_free(&f);
	store_close(s);
	return 0;
}
