/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cordon schedule create|list|show|pause|resume|rm (docs/schedules.md):
 * on the state directory, or through cordon serve (/v1/schedules) with
 * CORDON_URL. cordon serve fires them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/clock.h"
#include "base/text.h"
#include "cli/cli.h"
#include "store/store.h"

static void schedule_usage(FILE *out)
{
	fputs("Usage: cordon schedule create NAME --cron EXPR AGENT [-i FILE] [OPTIONS]\n"
	      "       cordon schedule list [OPTIONS]\n"
	      "       cordon schedule show NAME [OPTIONS]\n"
	      "       cordon schedule pause NAME [OPTIONS]\n"
	      "       cordon schedule resume NAME [OPTIONS]\n"
	      "       cordon schedule rm NAME [OPTIONS]\n"
	      "\n"
	      "Run an agent on a schedule; cordon serve fires it (each run's caller is\n"
	      "schedule:NAME). EXPR is five-field cron (minute hour day-of-month month\n"
	      "day-of-week, with *, lists, ranges, steps and JAN-DEC, SUN-SAT), a name\n"
	      "(@yearly, @monthly, @weekly, @daily, @hourly) or @every DURATION (such\n"
	      "as 30s, 15m, 2h; at least 1s). AGENT is NAME or NAME@VERSION, registered.\n"
	      "When the last run is still going at a fire time, --overlap decides:\n"
	      "forbid (skip, and record the skip), allow (start another) or replace\n"
	      "(cancel it, start another). Times missed while no cordon serve ran are\n"
	      "skipped and recorded (--catch-up skip), or run once (--catch-up once).\n"
	      "pause stops it firing; resume starts again from the next time.\n"
	      "\n"
	      "Options:\n"
	      "      --cron EXPR           when it fires\n"
	      "  -i, --input FILE          the runs' input JSON object (\"-\": standard input)\n"
	      "      --tz ZONE             the zone of EXPR's wall clock, such as\n"
	      "                            Europe/Berlin (default UTC)\n"
	      "      --overlap POLICY      forbid (default), allow or replace\n"
	      "      --catch-up POLICY     skip (default) or once\n"
	      "  -w, --workspace NAME      workspace (default $CORDON_WORKSPACE, else \"default\")\n"
	      "      --state DIR           state directory (default $CORDON_STATE)\n"
	      "      --json                print the result as JSON\n"
	      "  -h, --help                show this help\n"
	      "\n"
	      "With CORDON_URL set, this calls cordon serve (/v1/schedules) with the key in\n"
	      "CORDON_API_KEY: listing and showing need a member key, the rest an owner's.\n",
	      out);
}

static void print_one(json_t *j)
{
	char line[512];
	const char *keys[] = { "name", "agent", "cron", "tz", "overlap", "catch_up", "next",
			       "last_run", "last_fired" };
	for (size_t i = 0; i < CDN_ARRAY_SIZE(keys); i++) {
		json_t *v = json_object_get(j, keys[i]);
		cdn_printable_str(line, sizeof(line), json_is_string(v) ? json_string_value(v) : "-",
				  CDN_TEXT_UTF8);
		printf("%-10s %s\n", keys[i], line);
	}
	printf("%-10s %s\n", "state", json_is_true(json_object_get(j, "paused")) ? "paused" : "active");
	printf("%-10s %" JSON_INTEGER_FORMAT " fired, %" JSON_INTEGER_FORMAT " skipped\n", "count",
	       json_integer_value(json_object_get(j, "fired")),
	       json_integer_value(json_object_get(j, "skipped")));
	json_t *ls = json_object_get(j, "last_skip");
	if (json_is_object(ls)) {
		cdn_printable_str(line, sizeof(line),
				  json_string_value(json_object_get(ls, "reason")), CDN_TEXT_UTF8);
		printf("%-10s %s: %s\n", "last_skip", json_string_value(json_object_get(ls, "at")),
		       line);
	}
}

static void print_list(json_t *items)
{
	printf("%-20s %-20s %-18s %-8s %-25s %s\n", "NAME", "AGENT", "CRON", "STATE", "NEXT",
	       "FIRED/SKIPPED");
	size_t i;
	json_t *x;
	json_array_foreach(items, i, x)
	{
		char n[64], a[64], c[160];
		cdn_printable_str(n, sizeof(n), json_string_value(json_object_get(x, "name")),
				  CDN_TEXT_UTF8);
		cdn_printable_str(a, sizeof(a), json_string_value(json_object_get(x, "agent")),
				  CDN_TEXT_UTF8);
		cdn_printable_str(c, sizeof(c), json_string_value(json_object_get(x, "cron")),
				  CDN_TEXT_UTF8);
		json_t *next = json_object_get(x, "next");
		printf("%-20s %-20s %-18s %-8s %-25s %" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT
		       "\n",
		       n, a, c, json_is_true(json_object_get(x, "paused")) ? "paused" : "active",
		       json_is_string(next) ? json_string_value(next) : "-",
		       json_integer_value(json_object_get(x, "fired")),
		       json_integer_value(json_object_get(x, "skipped")));
	}
}

static int show(json_t *j, bool as_json, bool list)
{
	if (as_json) {
		json_dumpf(j, stdout, JSON_COMPACT | JSON_SORT_KEYS);
		putchar('\n');
	} else if (list) {
		print_list(json_object_get(j, "items"));
	} else {
		print_one(j);
	}
	return 0;
}

/* The body of a create: {"name", "agent", "cron", ...}. */
static json_t *create_body(const char *name, const char *agent, const char *cron,
			   const char *tz, const char *input_path, const char *overlap,
			   const char *catchup)
{
	json_t *input = NULL;
	if (input_path && !(input = cli_read_input_object("schedule", input_path)))
		return NULL;
	json_t *b = json_pack("{s:s, s:s, s:s}", "name", name, "agent", agent, "cron", cron);
	if (b && tz)
		json_object_set_new(b, "tz", json_string(tz));
	if (b && overlap)
		json_object_set_new(b, "overlap", json_string(overlap));
	if (b && catchup)
		json_object_set_new(b, "catch_up", json_string(catchup));
	if (b && input)
		json_object_set_new(b, "input", input);
	else
		json_decref(input);
	return b;
}

static int remote(const char *verb, const char *name, json_t *body, bool as_json)
{
	char path[320];
	const char *method = "GET";
	int want = 200;
	if (!strcmp(verb, "list")) {
		snprintf(path, sizeof(path), "/v1/schedules");
	} else if (!strcmp(verb, "create")) {
		snprintf(path, sizeof(path), "/v1/schedules");
		method = "POST";
		want = 201;
	} else {
		snprintf(path, sizeof(path), "/v1/schedules/%s%s%s", name,
			 !strcmp(verb, "pause") || !strcmp(verb, "resume") ? "/" : "",
			 !strcmp(verb, "pause") || !strcmp(verb, "resume") ? verb : "");
		method = !strcmp(verb, "show") ? "GET" : !strcmp(verb, "rm") ? "DELETE" : "POST";
	}
	struct cli_api_resp rs;
	if (cli_api_json(method, path, body, want, &rs) < 0)
		return EXIT_CORDON;
	int r = !strcmp(verb, "rm") ? (as_json ? show(rs.json, true, false) : 0)
				   : show(rs.json, as_json, !strcmp(verb, "list"));
	cli_api_resp_free(&rs);
	return r;
}

static int local(const char *verb, const char *name, json_t *body, const struct cli_common *co)
{
	struct store *s;
	if (cli_open_state(co->state, &s, NULL) < 0)
		return EXIT_CORDON;
	struct cdn_err err = { 0 };
	int64_t now = (int64_t)cdn_wall_ms();
	int r = 0;
	json_t *out = NULL;
	if (!name && strcmp(verb, "list") != 0) {
		store_close(s);
		return EXIT_CORDON; /* cmd_schedule checked the arguments */
	}
	if (!strcmp(verb, "list")) {
		struct store_schedule *v = NULL;
		size_t n = 0;
		if ((r = store_schedule_list(s, co->workspace, 0, &v, &n, &err)) == 0) {
			json_t *items = json_array();
			for (size_t i = 0; i < n; i++)
				json_array_append_new(items, store_schedule_json(&v[i]));
			out = json_pack("{s:o}", "items", items);
		}
		store_schedules_free(v, n);
	} else if (!strcmp(verb, "create")) {
		struct store_schedule sc = { .overlap = OVERLAP_FORBID, .catchup = CATCHUP_SKIP };
		const char *ov = json_string_value(json_object_get(body, "overlap"));
		const char *cu = json_string_value(json_object_get(body, "catch_up"));
		const char *tz = json_string_value(json_object_get(body, "tz"));
		const char *agent = json_string_value(json_object_get(body, "agent"));
		const char *cron = json_string_value(json_object_get(body, "cron"));
		json_t *in = json_object_get(body, "input");
		if (ov && store_overlap_parse(ov, &sc.overlap) < 0)
			r = cdn_err_msg(&err, EINVAL, "--overlap: forbid, allow or replace");
		else if (cu && store_catchup_parse(cu, &sc.catchup) < 0)
			r = cdn_err_msg(&err, EINVAL, "--catch-up: skip or once");
		else if (!name || !agent || !cron || strlen(name) >= sizeof(sc.name) ||
			 strlen(agent) >= sizeof(sc.agent) || strlen(cron) >= sizeof(sc.cron) ||
			 (tz && strlen(tz) >= sizeof(sc.tz)))
			r = cdn_err_msg(&err, EINVAL, "schedule: a name, agent, cron or zone too long");
		if (r == 0) {
			snprintf(sc.workspace, sizeof(sc.workspace), "%s", co->workspace);
			snprintf(sc.name, sizeof(sc.name), "%s", name);
			snprintf(sc.agent, sizeof(sc.agent), "%s", agent);
			snprintf(sc.cron, sizeof(sc.cron), "%s", cron);
			snprintf(sc.tz, sizeof(sc.tz), "%s", tz && strcmp(tz, "UTC") != 0 ? tz : "");
			snprintf(sc.created_by, sizeof(sc.created_by), "%s", cli_caller());
			sc.input_json = in ? json_dumps(in, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
			r = store_schedule_new(s, &sc, now, &err);
			store_schedule_clear(&sc);
		}
	} else if (!strcmp(verb, "rm")) {
		r = store_schedule_delete(s, co->workspace, name, &err);
	} else if (!strcmp(verb, "pause")) {
		r = store_schedule_pause(s, co->workspace, name, true, 0, &err);
	} else if (!strcmp(verb, "resume")) {
		r = store_schedule_resume(s, co->workspace, name, now, &err);
	}
	if (r == 0 && !out && strcmp(verb, "rm") != 0) {
		struct store_schedule sc;
		if ((r = store_schedule_get(s, co->workspace, name, &sc, &err)) == 0) {
			out = store_schedule_json(&sc);
			store_schedule_clear(&sc);
		}
	}
	store_close(s);
	if (r < 0)
		return cli_fail(&err);
	if (out)
		show(out, co->json, !strcmp(verb, "list"));
	json_decref(out);
	return 0;
}

int cmd_schedule(int argc, char **argv)
{
	const char *cron = NULL, *input = NULL, *tz = NULL, *overlap = NULL, *catchup = NULL;
	const struct cli_extra extra[] = { { "cron", 0, &cron, NULL },
					   { "input", 'i', &input, NULL },
					   { "tz", 0, &tz, NULL },
					   { "overlap", 0, &overlap, NULL },
					   { "catch-up", 0, &catchup, NULL } };
	struct cli_common co;
	int p = cli_parse_opts(argc, argv, extra, CDN_ARRAY_SIZE(extra), true, schedule_usage,
			       &co);
	if (p)
		return p > 0 ? 0 : EXIT_CORDON;
	int nargs = argc - optind;
	const char *verb = nargs > 0 ? argv[optind] : "";
	const char *name = nargs > 1 ? argv[optind + 1] : NULL;
	bool ok = (!strcmp(verb, "list") && nargs == 1) ||
		  (!strcmp(verb, "create") && nargs == 3 && cron) ||
		  ((!strcmp(verb, "show") || !strcmp(verb, "pause") || !strcmp(verb, "resume") ||
		    !strcmp(verb, "rm")) &&
		   nargs == 2);
	if (!ok) {
		if (!strcmp(verb, "create") && !cron)
			cli_error("schedule create: --cron EXPR is needed");
		schedule_usage(stderr);
		return EXIT_CORDON;
	}
	if (strcmp(verb, "create") != 0 && (cron || input || tz || overlap || catchup)) {
		cli_error("schedule %s: --cron, --input, --tz, --overlap and --catch-up are for "
			  "create",
			  verb);
		return EXIT_CORDON;
	}
	struct cdn_err nerr = { 0 };
	if (name && store_name_check("schedule", name, &nerr) < 0)
		return cli_fail(&nerr); /* before it goes into a URL, too */
	json_t *body = NULL;
	if (!strcmp(verb, "create") &&
	    !(body = create_body(name, argv[optind + 2], cron, tz, input, overlap, catchup)))
		return EXIT_CORDON;
	int r = cli_remote() ? remote(verb, name, body, co.json) : local(verb, name, body, &co);
	json_decref(body);
	return r;
}
