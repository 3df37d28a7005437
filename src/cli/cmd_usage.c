/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cordon usage [--from TIME] [--to TIME] [--group-by agent|day|caller]:
 * what a workspace's runs used, summed from their records (docs/usage.md),
 * from the state directory, or through cordon serve (GET /v1/usage).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cleanup.h"
#include "base/clock.h"
#include "base/text.h"
#include "cli/cli.h"
#include "store/store.h"

#define USAGE_DEFAULT_WINDOW_MS (30LL * 86400 * 1000)

static void usage_usage(FILE *out)
{
	fputs("Usage: cordon usage [--from TIME] [--to TIME] [--group-by BY] [OPTIONS]\n"
	      "\n"
	      "What the workspace's runs used, summed from their records: runs by status,\n"
	      "wall and CPU seconds, the peak memory of the largest run, egress requests\n"
	      "and bytes allowed and blocked, and artifact bytes. The runs counted are\n"
	      "those created from --from (default: 30 days before --to) up to, not\n"
	      "including, --to (default: now); TIME is RFC 3339, such as\n"
	      "2026-12-01T00:00:00Z. BY is agent, day (UTC) or caller; without it, one\n"
	      "total.\n"
	      "\n"
	      "Options:\n"
	      "      --from TIME       the window's start\n"
	      "      --to TIME         the window's end\n"
	      "      --group-by BY     agent, day or caller\n"
	      "  -w, --workspace NAME  workspace (default $CORDON_WORKSPACE, else \"default\")\n"
	      "      --state DIR       state directory (default $CORDON_STATE)\n"
	      "      --json            print the result as JSON (as GET /v1/usage)\n"
	      "  -h, --help            show this help\n"
	      "\n"
	      "With CORDON_URL set, this calls cordon serve (GET /v1/usage) with the key in\n"
	      "CORDON_API_KEY (the key's workspace); members and owners alike.\n",
	      out);
}

static int time_opt(const char *name, const char *v, int64_t *ms)
{
	const char *why = NULL;
	*ms = 0;
	if (!v)
		return 0;
	if (strlen(v) > 64 || cdn_rfc3339_parse(v, ms, &why) < 0 || *ms <= 0) {
		cli_error("usage: --%s: %s", name,
			  why ? why : "expected an RFC 3339 time after 1970, such as "
				      "2026-12-01T00:00:00Z");
		return -1;
	}
	return 0;
}

static void bytes_fmt(int64_t b, char *out, size_t cap)
{
	static const char *const u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)b;
	size_t i = 0;
	while (v >= 1024 && i + 1 < CDN_ARRAY_SIZE(u)) {
		v /= 1024;
		i++;
	}
	snprintf(out, cap, i ? "%.1f %s" : "%.0f %s", v, u[i]);
}

static void row_print(const char *key, json_t *g)
{
	json_t *st = json_object_get(g, "by_status"), *eg = json_object_get(g, "egress");
	char mem[32], eb[32], ab[32], k[40];
	bytes_fmt(json_integer_value(json_object_get(g, "peak_memory_bytes")), mem, sizeof(mem));
	bytes_fmt(json_integer_value(json_object_get(eg, "bytes_allowed")) +
			  json_integer_value(json_object_get(eg, "bytes_blocked")),
		  eb, sizeof(eb));
	bytes_fmt(json_integer_value(json_object_get(g, "artifact_bytes")), ab, sizeof(ab));
	/* A caller or an agent name is the workspace's text: printable only. */
	cdn_printable_str(k, sizeof(k), key, CDN_TEXT_UTF8);
	printf("%-24s %6" JSON_INTEGER_FORMAT " %6" JSON_INTEGER_FORMAT " %6" JSON_INTEGER_FORMAT
	       " %10.1f %9.1f %10s %6" JSON_INTEGER_FORMAT "/%-6" JSON_INTEGER_FORMAT " %10s %10s\n",
	       k, json_integer_value(json_object_get(g, "runs")),
	       json_integer_value(json_object_get(st, "succeeded")),
	       json_integer_value(json_object_get(g, "runs")) -
		   json_integer_value(json_object_get(st, "succeeded")),
	       json_real_value(json_object_get(g, "wall_seconds")),
	       json_real_value(json_object_get(g, "cpu_seconds")), mem,
	       json_integer_value(json_object_get(eg, "requests_allowed")),
	       json_integer_value(json_object_get(eg, "requests_blocked")), eb, ab);
}

static void usage_print(json_t *j)
{
	printf("workspace %s, runs created from %s to %s\n",
	       json_string_value(json_object_get(j, "workspace")),
	       json_string_value(json_object_get(j, "from")),
	       json_string_value(json_object_get(j, "to")));
	printf("%-24s %6s %6s %6s %10s %9s %10s %13s %10s %10s\n", "GROUP", "RUNS", "OK", "OTHER",
	       "WALL_S", "CPU_S", "PEAK_MEM", "EGRESS OK/NO", "EGRESS_B", "ARTIFACTS");
	size_t i;
	json_t *g;
	json_array_foreach(json_object_get(j, "groups"), i, g)
	{
		if (strcmp(json_string_value(json_object_get(j, "group_by")), "none") != 0)
			row_print(json_string_value(json_object_get(g, "key")), g);
	}
	row_print("TOTAL", json_object_get(j, "total"));
}

int cmd_usage(int argc, char **argv)
{
	const char *from_s = NULL, *to_s = NULL, *by_s = NULL;
	const struct cli_extra extra[] = { { "from", 0, &from_s, NULL },
					   { "to", 0, &to_s, NULL },
					   { "group-by", 0, &by_s, NULL } };
	struct cli_common co;
	int p = cli_parse_opts(argc, argv, extra, CDN_ARRAY_SIZE(extra), true, usage_usage, &co);
	if (p)
		return p > 0 ? 0 : EXIT_CORDON;
	if (optind != argc) {
		usage_usage(stderr);
		return EXIT_CORDON;
	}
	int64_t from = 0, to = 0;
	enum store_usage_by by = USAGE_BY_NONE;
	if (time_opt("from", from_s, &from) < 0 || time_opt("to", to_s, &to) < 0)
		return EXIT_CORDON;
	if (by_s && store_usage_by_parse(by_s, &by) < 0) {
		cli_error("usage: --group-by: agent, day, caller or none, not '%s'", by_s);
		return EXIT_CORDON;
	}
	if (!to)
		to = (int64_t)cdn_wall_ms() + 1;
	if (!from)
		from = to > USAGE_DEFAULT_WINDOW_MS ? to - USAGE_DEFAULT_WINDOW_MS : 0;
	if (from >= to) {
		cli_error("usage: --from must come before --to");
		return EXIT_CORDON;
	}
	json_t *j = NULL;
	struct cli_api_resp rs = { 0 };
	if (cli_remote()) {
		/* The times as the canonical form: nothing to escape in a URL. */
		char f[CDN_RFC3339_MAX], t[CDN_RFC3339_MAX], path[256];
		cdn_rfc3339(from, CDN_TIME_MS, f, sizeof(f));
		cdn_rfc3339(to, CDN_TIME_MS, t, sizeof(t));
		snprintf(path, sizeof(path), "/v1/usage?from=%s&to=%s&group_by=%s", f, t,
			 store_usage_by_name(by));
		if (cli_api_json("GET", path, NULL, 200, &rs) < 0)
			return EXIT_CORDON;
		j = json_incref(rs.json);
		cli_api_resp_free(&rs);
	} else {
		struct store *s;
		if (cli_open_state(co.state, &s, NULL) < 0)
			return EXIT_CORDON;
		struct store_usage *v = NULL, total;
		size_t n = 0;
		struct cdn_err err = { 0 };
		int r = store_run_usage(s, co.workspace, from, to, by, &v, &n, &total, &err);
		if (r == 0)
			j = store_usage_json(co.workspace, from, to, by, v, n, &total);
		free(v);
		store_close(s);
		if (r < 0)
			return cli_fail(&err);
	}
	if (!j) {
		cli_error("usage: out of memory");
		return EXIT_CORDON;
	}
	if (co.json) {
		json_dumpf(j, stdout, JSON_COMPACT | JSON_SORT_KEYS);
		putchar('\n');
	} else {
		usage_print(j);
	}
	json_decref(j);
	return 0;
}
