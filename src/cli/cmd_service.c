/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cordon service create|list|show|logs|pause|resume|rm (docs/services.md):
 * on the state directory, or through cordon serve (/v1/services) with
 * CORDON_URL. cordon serve keeps them running.
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
#include "registry/registry.h"
#include "run/control.h"
#include "store/store.h"

static void service_usage(FILE *out)
{
	fputs("Usage: cordon service create NAME AGENT [--env K=V]... [--secret NAME]... [-i FILE]\n"
	      "       cordon service list [OPTIONS]\n"
	      "       cordon service show NAME [OPTIONS]\n"
	      "       cordon service logs NAME [stdout|stderr] [OPTIONS]\n"
	      "       cordon service pause NAME [OPTIONS]\n"
	      "       cordon service resume NAME [OPTIONS]\n"
	      "       cordon service rm NAME [OPTIONS]\n"
	      "\n"
	      "Keep an agent running: cordon serve starts it, and starts it again when its\n"
	      "run ends, after a backoff that doubles with each end (with jitter). So many\n"
	      "ends within a window (5 in 10 minutes, cordon serve's --crash-loop-exits and\n"
	      "--crash-loop-window) pause it as a crash loop; resume clears that. Each start\n"
	      "is a run of its own whose caller is service:NAME. AGENT is NAME or\n"
	      "NAME@VERSION, registered. A manifest's health check restarts a run that\n"
	      "fails it. logs prints what the current run (or the last one) wrote. pause\n"
	      "stops the run (SIGTERM, then a kill); rm stops it and removes the service.\n"
	      "\n"
	      "Options:\n"
	      "      --env K=V             a variable for every start (repeatable); a name\n"
	      "                            that looks like a secret is refused: use --secret\n"
	      "      --secret NAME         a secret from the workspace's vault, given as the\n"
	      "                            variable NAME, read again at every start\n"
	      "                            (repeatable)\n"
	      "  -i, --input FILE          the runs' input JSON object (\"-\": standard input)\n"
	      "  -w, --workspace NAME      workspace (default $CORDON_WORKSPACE, else \"default\")\n"
	      "      --state DIR           state directory (default $CORDON_STATE)\n"
	      "      --json                print the result as JSON\n"
	      "  -h, --help                show this help\n"
	      "\n"
	      "With CORDON_URL set, this calls cordon serve (/v1/services) with the key in\n"
	      "CORDON_API_KEY: listing, showing and logs need a member key, the rest an\n"
	      "owner's.\n",
	      out);
}

static const char *str_or(json_t *j, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(j, key));
	return s ? s : dflt;
}

static void print_one(json_t *j)
{
	char line[512];
	const char *keys[] = { "name", "agent", "state", "paused_reason", "run", "last_run",
			       "next_start", "created", "created_by" };
	for (size_t i = 0; i < CDN_ARRAY_SIZE(keys); i++) {
		cdn_printable_str(line, sizeof(line), str_or(j, keys[i], "-"), CDN_TEXT_UTF8);
		printf("%-13s %s\n", keys[i], line);
	}
	printf("%-13s %" JSON_INTEGER_FORMAT " starts, %" JSON_INTEGER_FORMAT " ends\n", "count",
	       json_integer_value(json_object_get(j, "starts")),
	       json_integer_value(json_object_get(j, "exits")));
	json_t *le = json_object_get(j, "last_exit");
	if (json_is_object(le)) {
		cdn_printable_str(line, sizeof(line), str_or(le, "reason", ""), CDN_TEXT_UTF8);
		printf("%-13s %s: %s\n", "last_exit", str_or(le, "at", "-"), line);
	}
	const char *k;
	json_t *v;
	json_object_foreach(json_object_get(j, "env"), k, v)
	{
		cdn_printable_str(line, sizeof(line), json_string_value(v), CDN_TEXT_UTF8);
		printf("%-13s %s=%s\n", "env", k, line);
	}
	size_t i;
	json_array_foreach(json_object_get(j, "secrets"), i, v)
		printf("%-13s %s\n", "secret", json_string_value(v));
}

static void print_list(json_t *items)
{
	printf("%-20s %-20s %-9s %-26s %-8s %s\n", "NAME", "AGENT", "STATE", "RUN", "RESTARTS",
	       "REASON");
	size_t i;
	json_t *x;
	json_array_foreach(items, i, x)
	{
		char n[64], a[64], why[160];
		cdn_printable_str(n, sizeof(n), str_or(x, "name", ""), CDN_TEXT_UTF8);
		cdn_printable_str(a, sizeof(a), str_or(x, "agent", ""), CDN_TEXT_UTF8);
		cdn_printable_str(why, sizeof(why), str_or(x, "paused_reason", ""), CDN_TEXT_UTF8);
		printf("%-20s %-20s %-9s %-26s %-8" JSON_INTEGER_FORMAT " %s\n", n, a,
		       str_or(x, "state", "?"), str_or(x, "run", "-"),
		       json_integer_value(json_object_get(x, "restarts")), why);
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

/* The body of a create, as POST /v1/services takes it. */
static json_t *create_body(const char *name, const char *agent, const char *input_path,
			   const char *const *env, size_t n_env, const char *const *secrets,
			   size_t n_secrets)
{
	json_t *input = NULL;
	if (input_path && !(input = cli_read_input_object("service", input_path)))
		return NULL;
	/* The variables are checked here as the server checks them, so that
	 * a sensitive name is refused before anything is sent. */
	char what[96];
	snprintf(what, sizeof(what), "service %s", name);
	json_t *envj = NULL;
	struct cdn_err err = { 0 };
	if (registry_env_vars(what, true, env, n_env, &envj, &err) < 0) {
		json_decref(input);
		cli_fail(&err);
		return NULL;
	}
	json_t *names = json_array();
	for (size_t i = 0; i < n_secrets; i++)
		json_array_append_new(names, json_string(secrets[i]));
	json_t *b = json_pack("{s:s, s:s, s:o, s:o}", "name", name, "agent", agent, "env", envj,
			      "secrets", names);
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
	bool state_change = !strcmp(verb, "pause") || !strcmp(verb, "resume");
	if (!strcmp(verb, "list")) {
		snprintf(path, sizeof(path), "/v1/services");
	} else if (!strcmp(verb, "create")) {
		snprintf(path, sizeof(path), "/v1/services");
		method = "POST";
		want = 201;
	} else {
		snprintf(path, sizeof(path), "/v1/services/%s%s%s", name, state_change ? "/" : "",
			 state_change ? verb : "");
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

/* Stops a run this host runs through its control socket, quietly: the
 * service is gone, so nothing restarts it. */
static void stop_local_run(const char *run)
{
	json_t *req = json_pack("{s:s, s:s}", "op", "cancel", "by", cli_caller());
	struct cdn_err err = { 0 };
	json_t *res = req ? control_ask(run, req, &err) : NULL;
	json_decref(req);
	json_decref(res);
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
	char run[STORE_RUN_ID_MAX + 1] = "";
	if (!strcmp(verb, "list")) {
		struct store_service *v = NULL;
		size_t n = 0;
		if ((r = store_service_list(s, co->workspace, &v, &n, &err)) == 0) {
			json_t *items = json_array();
			for (size_t i = 0; i < n; i++)
				json_array_append_new(items, store_service_json(&v[i], now));
			out = json_pack("{s:o}", "items", items);
		}
		store_services_free(v, n);
	} else if (!strcmp(verb, "create")) {
		struct store_service sv = { 0 };
		const char *agent = json_string_value(json_object_get(body, "agent"));
		json_t *in = json_object_get(body, "input");
		if (!agent || strlen(agent) >= sizeof(sv.agent) || strlen(name) >= sizeof(sv.name))
			r = cdn_err_msg(&err, EINVAL, "service: a name or agent too long");
		/* The body's env back to K=V, as the server takes it. */
		const char *vars[STORE_SERVICE_ENV_MAX], *names[STORE_SERVICE_SECRETS_MAX];
		char *kv[STORE_SERVICE_ENV_MAX] = { NULL };
		size_t nv = 0, nn = 0, i;
		const char *k;
		json_t *v;
		json_object_foreach(json_object_get(body, "env"), k, v)
		{
			if (nv < STORE_SERVICE_ENV_MAX &&
			    asprintf(&kv[nv], "%s=%s", k, json_string_value(v)) >= 0)
				vars[nv] = kv[nv], nv++;
		}
		json_array_foreach(json_object_get(body, "secrets"), i, v)
		{
			if (nn < STORE_SERVICE_SECRETS_MAX)
				names[nn++] = json_string_value(v);
		}
		if (r == 0) {
			snprintf(sv.workspace, sizeof(sv.workspace), "%s", co->workspace);
			snprintf(sv.name, sizeof(sv.name), "%s", name);
			snprintf(sv.agent, sizeof(sv.agent), "%s", agent);
			snprintf(sv.created_by, sizeof(sv.created_by), "%s", cli_caller());
			sv.input_json = in ? json_dumps(in, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
			r = registry_service_create(s, &sv, vars, nv, names, nn, &err);
			store_service_clear(&sv);
		}
		for (i = 0; i < nv; i++)
			free(kv[i]);
	} else if (!strcmp(verb, "rm")) {
		r = store_service_delete(s, co->workspace, name, run, &err);
	} else if (!strcmp(verb, "pause") || !strcmp(verb, "resume")) {
		char why[160];
		snprintf(why, sizeof(why), "paused by %s", cli_caller());
		r = store_service_pause(s, co->workspace, name, !strcmp(verb, "pause"), why, run,
					&err);
	}
	if (r == 0 && !out && strcmp(verb, "rm") != 0) {
		struct store_service sv;
		if ((r = store_service_get(s, co->workspace, name, &sv, &err)) == 0) {
			out = store_service_json(&sv, now);
			store_service_clear(&sv);
		}
	}
	store_close(s);
	if (r < 0)
		return cli_fail(&err);
	if (!strcmp(verb, "rm") && run[0])
		stop_local_run(run);
	if (out)
		show(out, co->json, !strcmp(verb, "list"));
	else if (!strcmp(verb, "rm") && co->json)
		printf("{\"name\":\"%s\",\"removed\":true}\n", name);
	json_decref(out);
	return 0;
}

/* The current run's output, or the last one's. */
static int logs(const struct cli_common *co, const char *name, const char *which)
{
	char run[STORE_RUN_ID_MAX + 1] = "";
	if (cli_remote()) {
		char path[160];
		snprintf(path, sizeof(path), "/v1/services/%s", name);
		struct cli_api_resp rs;
		if (cli_api_json("GET", path, NULL, 200, &rs) < 0)
			return EXIT_CORDON;
		snprintf(run, sizeof(run), "%s",
			 str_or(rs.json, "run", str_or(rs.json, "last_run", "")));
		cli_api_resp_free(&rs);
	} else {
		struct store *s;
		if (cli_open_state(co->state, &s, NULL) < 0)
			return EXIT_CORDON;
		struct store_service sv;
		struct cdn_err err = { 0 };
		int r = store_service_get(s, co->workspace, name, &sv, &err);
		store_close(s);
		if (r < 0)
			return cli_fail(&err);
		snprintf(run, sizeof(run), "%s", sv.current_run[0] ? sv.current_run : sv.last_run);
		store_service_clear(&sv);
	}
	if (!run[0]) {
		cli_error("service %s has not run yet", name);
		return EXIT_CORDON;
	}
	return cli_runs_output(co, run, which);
}

int cmd_service(int argc, char **argv)
{
	const char *input = NULL, *env[STORE_SERVICE_ENV_MAX], *secrets[STORE_SERVICE_SECRETS_MAX];
	size_t n_env = 0, n_secrets = 0;
	const struct cli_extra extra[] = {
		{ "input", 'i', &input, NULL, NULL, NULL, 0 },
		{ "env", 0, NULL, NULL, env, &n_env, STORE_SERVICE_ENV_MAX },
		{ "secret", 0, NULL, NULL, secrets, &n_secrets, STORE_SERVICE_SECRETS_MAX },
	};
	struct cli_common co;
	int p = cli_parse_opts(argc, argv, extra, CDN_ARRAY_SIZE(extra), true, service_usage,
			       &co);
	if (p)
		return p > 0 ? 0 : EXIT_CORDON;
	int nargs = argc - optind;
	const char *verb = nargs > 0 ? argv[optind] : "";
	const char *name = nargs > 1 ? argv[optind + 1] : NULL;
	bool ok = (!strcmp(verb, "list") && nargs == 1) ||
		  (!strcmp(verb, "create") && nargs == 3) ||
		  (!strcmp(verb, "logs") && (nargs == 2 || nargs == 3)) ||
		  ((!strcmp(verb, "show") || !strcmp(verb, "pause") || !strcmp(verb, "resume") ||
		    !strcmp(verb, "rm")) &&
		   nargs == 2);
	if (!ok) {
		service_usage(stderr);
		return EXIT_CORDON;
	}
	if (strcmp(verb, "create") != 0 && (input || n_env || n_secrets)) {
		cli_error("service %s: --env, --secret and --input are for create", verb);
		return EXIT_CORDON;
	}
	struct cdn_err nerr = { 0 };
	if (name && store_name_check("service", name, &nerr) < 0)
		return cli_fail(&nerr); /* before it goes into a URL, too */
	if (!strcmp(verb, "logs")) {
		const char *which = nargs == 3 ? argv[optind + 2] : "stdout";
		return logs(&co, name, which);
	}
	json_t *body = NULL;
	if (!strcmp(verb, "create") &&
	    !(body = create_body(name, argv[optind + 2], input, env, n_env, secrets, n_secrets)))
		return EXIT_CORDON;
	int r = cli_remote() ? remote(verb, name, body, co.json) : local(verb, name, body, &co);
	json_decref(body);
	return r;
}
