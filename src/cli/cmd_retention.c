/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cordon retention show|set, cordon prune, and cordon runs hold|release
 * (docs/retention.md). The ages are kept in the store: the operator's
 * (default and bound per kind) and each workspace's own.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cleanup.h"
#include "base/units.h"
#include "cli/cli.h"
#include "store/store.h"

/* ------------------------------------------------------------------ ages */

/* An age as the shortest exact form: 90d, 36h, 45m or 10s; "-" for 0. */
static void age_fmt(int64_t s, char *out, size_t cap)
{
	if (!s)
		snprintf(out, cap, "-");
	else if (s % 86400 == 0)
		snprintf(out, cap, "%" PRId64 "d", s / 86400);
	else if (s % 3600 == 0)
		snprintf(out, cap, "%" PRId64 "h", s / 3600);
	else if (s % 60 == 0)
		snprintf(out, cap, "%" PRId64 "m", s / 60);
	else
		snprintf(out, cap, "%" PRId64 "s", s);
}

static void retention_print(json_t *j)
{
	printf("%-10s %-10s %-10s %-10s %-10s\n", "KIND", "KEPT", "WORKSPACE", "DEFAULT", "BOUND");
	json_t *eff = json_object_get(j, "effective"), *own = json_object_get(j, "workspace_ages");
	json_t *op = json_object_get(j, "operator");
	for (int k = 0; k < RETAIN_N; k++) {
		const char *name = store_retain_name((enum store_retain)k);
		char a[32], b[32], c[32], d[32];
		age_fmt(json_integer_value(json_object_get(eff, name)), a, sizeof(a));
		age_fmt(json_integer_value(json_object_get(own, name)), b, sizeof(b));
		age_fmt(json_integer_value(json_object_get(json_object_get(op, "default"), name)), c,
			sizeof(c));
		age_fmt(json_integer_value(json_object_get(json_object_get(op, "max"), name)), d,
			sizeof(d));
		printf("%-10s %-10s %-10s %-10s %-10s\n", name, strcmp(a, "-") ? a : "forever", b,
		       c, d);
	}
	printf("(counted from each run's end; a held run is kept until released)\n");
}

static void retention_usage(FILE *out)
{
	fputs("Usage: cordon retention show [OPTIONS]\n"
	      "       cordon retention set KIND=AGE... [OPTIONS]\n"
	      "       cordon retention set --operator KIND=AGE|KIND.max=AGE... [OPTIONS]\n"
	      "\n"
	      "How long what runs leave is kept, counted from each run's end. KIND is\n"
	      "records (the record and everything of the run), files (stdout, stderr,\n"
	      "steps), artifacts (and their stored bytes) or evidence (events and the\n"
	      "audit log, what an evidence pack is made from). AGE is a duration such as\n"
	      "90d, 12h or 30m; 'default' takes a workspace's age back to the operator's,\n"
	      "'forever' keeps for ever. A workspace's ages are its owner's to set, within\n"
	      "the operator's bounds (KIND.max); the operator's ages are the default.\n"
	      "Nothing outlives its record. cordon prune (and cordon serve, periodically)\n"
	      "removes what is past its age; a held run (cordon runs hold) is kept.\n"
	      "\n"
	      "Options:\n"
	      "      --operator        set the operator's defaults and bounds (local only)\n"
	      "  -w, --workspace NAME  workspace (default $CORDON_WORKSPACE, else \"default\")\n"
	      "      --state DIR       state directory (default $CORDON_STATE)\n"
	      "      --json            print the result as JSON\n"
	      "  -h, --help            show this help\n"
	      "\n"
	      "With CORDON_URL set, this calls cordon serve (GET and PUT /v1/retention)\n"
	      "with the key in CORDON_API_KEY: setting needs an owner key.\n",
	      out);
}

/* KIND=AGE and KIND.max=AGE arguments into r. */
static int parse_sets(char **args, int n, bool op, struct store_retention *r, unsigned *set,
		      json_t *body)
{
	for (int i = 0; i < n; i++) {
		const char *eq = strchr(args[i], '=');
		char kind[32];
		size_t kl = eq ? (size_t)(eq - args[i]) : 0;
		if (!eq || kl >= sizeof(kind)) {
			cli_error("retention set: expected KIND=AGE, got '%s'", args[i]);
			return -1;
		}
		memcpy(kind, args[i], kl);
		kind[kl] = '\0';
		bool max = kl > 4 && !strcmp(kind + kl - 4, ".max");
		if (max)
			kind[kl - 4] = '\0';
		enum store_retain k;
		if (store_retain_parse(kind, &k) < 0) {
			cli_error("retention set: unknown kind '%s' (records, files, artifacts or "
				  "evidence)",
				  kind);
			return -1;
		}
		if (max && !op) {
			cli_error("retention set: %s.max is the operator's bound (--operator)",
				  kind);
			return -1;
		}
		if (!op && !strcmp(eq + 1, "forever")) {
			cli_error("retention set: %s=forever: a workspace keeps at most the "
				  "operator's bound; 'default' takes the operator's age",
				  kind);
			return -1;
		}
		struct cdn_err err = { 0 };
		int64_t v;
		if (store_age_parse(eq + 1, &v, &err) < 0) {
			cli_error("retention set: %s: %s", args[i], err.msg);
			return -1;
		}
		if (max)
			r->max_s[k] = v;
		else
			r->age_s[k] = v;
		*set |= max ? STORE_RETAIN_MAX(k) : STORE_RETAIN_AGE(k);
		if (body)
			json_object_set_new(body, kind, v ? json_string(eq + 1) : json_null());
	}
	return 0;
}

int cmd_retention(int argc, char **argv)
{
	bool op = false;
	const struct cli_extra extra[] = { { "operator", 0, NULL, &op } };
	struct cli_common co;
	int p = cli_parse_opts(argc, argv, extra, CDN_ARRAY_SIZE(extra), true, retention_usage,
			       &co);
	if (p)
		return p > 0 ? 0 : EXIT_CORDON;
	int nargs = argc - optind;
	const char *verb = nargs > 0 ? argv[optind] : "";
	bool set = !strcmp(verb, "set") && nargs >= 2;
	if (!set && !(!strcmp(verb, "show") && nargs == 1)) {
		retention_usage(stderr);
		return EXIT_CORDON;
	}
	if (cli_remote()) {
		if (op) {
			cli_error("retention: --operator works on the state directory, not through "
				  "the API");
			return EXIT_CORDON;
		}
		struct cli_api_resp rs;
		json_t *body = set ? json_object() : NULL;
		struct store_retention r = { 0 };
		unsigned fields = 0;
		int e = set ? parse_sets(argv + optind + 1, nargs - 1, false, &r, &fields, body) : 0;
		if (e == 0)
			e = cli_api_json(set ? "PUT" : "GET", "/v1/retention", body, 200, &rs);
		json_decref(body);
		if (e < 0)
			return EXIT_CORDON;
		if (co.json) {
			json_dumpf(rs.json, stdout, JSON_COMPACT | JSON_SORT_KEYS);
			putchar('\n');
		} else {
			retention_print(rs.json);
		}
		cli_api_resp_free(&rs);
		return 0;
	}
	struct store *s;
	if (cli_open_state(co.state, &s, NULL) < 0)
		return EXIT_CORDON;
	struct cdn_err err = { 0 };
	struct store_retention opr, own;
	int rc = 0;
	if (store_retention_get(s, "", &opr, &err) < 0 ||
	    store_retention_get(s, co.workspace, &own, &err) < 0) {
		rc = cli_fail(&err);
		goto out;
	}
	if (set) {
		struct store_retention *t = op ? &opr : &own;
		unsigned fields = 0;
		if (parse_sets(argv + optind + 1, nargs - 1, op, t, &fields, NULL) < 0) {
			rc = EXIT_CORDON;
			goto out;
		}
		for (int k = 0; !op && k < RETAIN_N; k++)
			if (opr.max_s[k] && own.age_s[k] > opr.max_s[k]) {
				char b[32];
				age_fmt(opr.max_s[k], b, sizeof(b));
				cli_error("retention set: %s: the operator keeps at most %s",
					  store_retain_name((enum store_retain)k), b);
				rc = EXIT_CORDON;
				goto out;
			}
		/* Only what was named changes: a concurrent change of another
		 * kind is kept. */
		if (store_retention_put(s, op ? "" : co.workspace, t, fields, &err) < 0 ||
		    store_retention_get(s, "", &opr, &err) < 0 ||
		    store_retention_get(s, co.workspace, &own, &err) < 0) {
			rc = cli_fail(&err);
			goto out;
		}
	}
	json_t *j = store_retention_json(co.workspace, &opr, &own);
	if (co.json) {
		json_dumpf(j, stdout, JSON_COMPACT | JSON_SORT_KEYS);
		putchar('\n');
	} else {
		retention_print(j);
	}
	json_decref(j);
out:
	store_close(s);
	return rc;
}

/* ------------------------------------------------------------------ prune */

static void prune_usage(FILE *out)
{
	fputs("Usage: cordon prune [OPTIONS]\n"
	      "\n"
	      "Remove what finished runs left that is past its age (cordon retention show):\n"
	      "records, output files, artifacts with their stored bytes when nothing kept\n"
	      "names them, and evidence. Held runs (cordon runs hold) and unfinished runs are\n"
	      "kept. cordon serve prunes by itself (--prune-interval).\n"
	      "\n"
	      "Options:\n"
	      "      --all             every workspace (default: the one of -w)\n"
	      "  -n, --dry-run         print what is due, remove nothing\n"
	      "      --blob-grace AGE  keep an artifact's stored bytes used less than AGE ago\n"
	      "                        even when nothing names them yet (default 1h: a run or a\n"
	      "                        registration in progress may be about to)\n"
	      "  -w, --workspace NAME  workspace (default $CORDON_WORKSPACE, else \"default\")\n"
	      "      --state DIR       state directory (default $CORDON_STATE)\n"
	      "      --json            print the result as JSON\n"
	      "  -h, --help            show this help\n",
	      out);
}

struct prune_out {
	json_t *items;
	bool json, dry;
};

static void on_pruned(void *ctx, const char *ws, const char *id, enum store_retain k)
{
	struct prune_out *po = ctx;
	if (po->json)
		json_array_append_new(po->items, json_pack("{s:s, s:s, s:s}", "workspace", ws,
							   "run", id, "kind", store_retain_name(k)));
	else
		printf("%s %s %s (%s)\n", po->dry ? "due:" : "pruned:", id, store_retain_name(k),
		       ws);
}

int cmd_prune(int argc, char **argv)
{
	bool all = false, dry = false;
	const char *grace = NULL;
	const struct cli_extra extra[] = { { "all", 0, NULL, &all },
					   { "dry-run", 'n', NULL, &dry },
					   { "blob-grace", 0, &grace, NULL } };
	struct cli_common co;
	int p = cli_parse_opts(argc, argv, extra, CDN_ARRAY_SIZE(extra), true, prune_usage, &co);
	if (p)
		return p > 0 ? 0 : EXIT_CORDON;
	if (optind < argc) {
		cli_error("prune: unexpected argument '%s'", argv[optind]);
		return EXIT_CORDON;
	}
	struct cdn_err err = { 0 };
	struct prune_opts o = { .workspace = all ? NULL : co.workspace, .dry_run = dry,
				.blob_grace_ms = -1, .on_pruned = on_pruned };
	if (grace) {
		uint64_t ms;
		if (cdn_parse_duration_ms(grace, &ms, &err) < 0 || ms > INT64_MAX) {
			cli_error("--blob-grace: %s", err.msg[0] ? err.msg : "too large");
			return EXIT_CORDON;
		}
		o.blob_grace_ms = (int64_t)ms;
	}
	if (cli_remote()) {
		cli_error("prune: works on the state directory (cordon serve prunes by itself)");
		return EXIT_CORDON;
	}
	struct prune_out po = { .items = json_array(), .json = co.json, .dry = dry };
	o.ctx = &po;
	struct store *s;
	if (cli_open_state(co.state, &s, NULL) < 0) {
		json_decref(po.items);
		return EXIT_CORDON;
	}
	struct prune_report rep;
	int r = store_prune(s, &o, &rep, &err);
	store_close(s);
	if (co.json) {
		json_t *j = json_pack("{s:b, s:o, s:{s:I, s:I, s:I, s:I}, s:I, s:I, s:I}", "dry_run",
				      dry, "items", po.items, "runs", "records",
				      (json_int_t)rep.runs[RETAIN_RECORDS], "files",
				      (json_int_t)rep.runs[RETAIN_FILES], "artifacts",
				      (json_int_t)rep.runs[RETAIN_ARTIFACTS], "evidence",
				      (json_int_t)rep.runs[RETAIN_EVIDENCE], "blobs",
				      (json_int_t)rep.blobs, "bytes", (json_int_t)rep.bytes,
				      "failed", (json_int_t)rep.failed);
		if (r < 0)
			json_object_set_new(j, "error", json_string(err.msg));
		json_dumpf(j, stdout, JSON_COMPACT | JSON_SORT_KEYS);
		putchar('\n');
		json_decref(j);
	} else {
		json_decref(po.items);
		printf("%s %" PRIu64 " records, files of %" PRIu64 " runs, artifacts of %" PRIu64
		       " runs (%" PRIu64 " blobs), evidence of %" PRIu64 " runs: %" PRIu64
		       " bytes\n",
		       dry ? "due:" : "pruned:", rep.runs[RETAIN_RECORDS], rep.runs[RETAIN_FILES],
		       rep.runs[RETAIN_ARTIFACTS], rep.blobs, rep.runs[RETAIN_EVIDENCE], rep.bytes);
	}
	if (r < 0) {
		cli_error("prune: %" PRIu64 " runs failed; the first: %s", rep.failed, err.msg);
		return EXIT_CORDON;
	}
	return 0;
}

/* ------------------------------------------------------- runs hold|release */

int cli_runs_hold(const struct cli_common *co, const char *id, const char *reason, bool hold)
{
	if (hold && !reason) {
		cli_error("runs hold: say why with --reason TEXT (an incident, a dispute)");
		return EXIT_CORDON;
	}
	if (cli_remote()) {
		char path[160];
		snprintf(path, sizeof(path), "/v1/runs/%s/hold", id);
		json_t *body = hold ? json_pack("{s:s}", "reason", reason) : NULL;
		struct cli_api_resp rs;
		int e = cli_api_json(hold ? "PUT" : "DELETE", path, body, 200, &rs);
		json_decref(body);
		if (e < 0)
			return EXIT_CORDON;
		if (co->json) {
			json_dumpf(rs.json, stdout, JSON_COMPACT | JSON_SORT_KEYS);
			putchar('\n');
		} else {
			fprintf(stderr, "%s run %s\n", hold ? "held" : "released", id);
		}
		cli_api_resp_free(&rs);
		return 0;
	}
	struct store *s;
	if (cli_open_state(co->state, &s, NULL) < 0)
		return EXIT_CORDON;
	struct cdn_err err = { 0 };
	char by[128];
	snprintf(by, sizeof(by), "%s", cli_caller());
	int r = hold ? store_run_hold(s, co->workspace, id, reason, by, &err)
		     : store_run_release(s, co->workspace, id, &err);
	struct store_run_marks m;
	if (r == 0)
		r = store_run_marks_get(s, id, &m, &err);
	store_close(s);
	if (r < 0)
		return cli_fail(&err);
	if (co->json) {
		json_t *j = json_pack("{s:s}", "id", id);
		store_run_marks_json(&m, j);
		json_dumpf(j, stdout, JSON_COMPACT | JSON_SORT_KEYS);
		putchar('\n');
		json_decref(j);
	} else {
		fprintf(stderr, "%s run %s\n", hold ? "held" : "released", id);
	}
	return 0;
}
