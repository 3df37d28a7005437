/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cordon agent register|list, cordon capability register|list,
 * cordon env register|list, cordon grant AGENT CAPABILITY
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "cli/cli.h"
#include "registry/registry.h"
#ifdef CORDON_CURL
#include "serve/bundle.h"
#endif
#include "store/store.h"

/* Parses --state, -w/--workspace, --json and -h; leaves optind at the
 * first operand. Returns 1 when help was printed, -1 on bad usage. */
static int parse_common(int argc, char **argv, struct cli_common *co, void (*usage)(FILE *))
{
	return cli_parse_opts(argc, argv, NULL, 0, true, usage, co);
}

static void print_result(const struct cli_common *co, const char *kind,
			 const struct registry_result *res)
{
	if (co->json) {
		json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:s, s:b}", "kind", kind, "workspace",
				      co->workspace, "name", res->name, "version",
				      (json_int_t)res->version, "sha256", res->hash, "created",
				      res->created);
		json_dumpf(j, stdout, JSON_COMPACT | JSON_SORT_KEYS);
		putchar('\n');
		json_decref(j);
		return;
	}
	printf("%s %s@%u sha256:%s%s\n", kind, res->name, res->version, res->hash,
	       res->created ? "" : " (unchanged)");
}

static int list_items(const struct cli_common *co, enum store_kind kind, const char *what)
{
	struct store *s;
	if (cli_open_state(co->state, &s, NULL) < 0)
		return EXIT_CORDON;
	struct store_item *items = NULL;
	size_t n = 0;
	struct cdn_err err = { 0 };
	int r = store_item_list(s, kind, co->workspace, &items, &n, &err);
	store_close(s);
	if (r < 0) {
		return cli_fail(&err);
	}
	json_t *arr = json_array();
	if (!co->json && n)
		printf("%-24s %-8s %-14s %s\n", "NAME", "VERSION", "SHA256", "REGISTERED");
	for (size_t i = 0; i < n; i++) {
		char when[CDN_RFC3339_MAX];
		cdn_rfc3339(items[i].created * 1000, CDN_TIME_S, when, sizeof(when));
		if (co->json)
			json_array_append_new(arr, json_pack("{s:s, s:I, s:s, s:s}", "name",
							     items[i].name, "version",
							     (json_int_t)items[i].version, "sha256",
							     items[i].hash, "registered", when));
		else
			printf("%-24s %-8u %-14.12s %s\n", items[i].name, items[i].version,
			       items[i].hash, when);
	}
	if (co->json) {
		json_dumpf(arr, stdout, JSON_COMPACT);
		putchar('\n');
	} else if (n == 0) {
		fprintf(stderr, "no %s registered in workspace %s\n", what, co->workspace);
	}
	json_decref(arr);
	store_items_free(items, n);
	return 0;
}

/* ---------------------------------------------------------------- remote */

static int remote_list(const struct cli_common *co, const char *path, const char *what)
{
	struct cli_api_resp rs;
	if (cli_api_json("GET", path, NULL, 200, &rs) < 0)
		return EXIT_CORDON;
	json_t *items = json_object_get(rs.json, "items");
	if (co->json) {
		json_dumpf(items, stdout, JSON_COMPACT);
		putchar('\n');
	} else if (json_array_size(items) == 0) {
		fprintf(stderr, "no %s registered in the key's workspace\n", what);
	} else {
		printf("%-24s %-8s %-14s %s\n", "NAME", "VERSION", "SHA256", "REGISTERED");
		size_t i;
		json_t *it;
		json_array_foreach(items, i, it)
			printf("%-24s %-8lld %-14.12s %s\n", json_string_value(json_object_get(it, "name")),
			       (long long)json_integer_value(json_object_get(it, "version")),
			       json_string_value(json_object_get(it, "sha256")),
			       json_string_value(json_object_get(it, "registered")));
	}
	cli_api_resp_free(&rs);
	return 0;
}

/* Prints a registration the server answered, like the local one. */
static int print_remote(const struct cli_common *co, const char *kind, struct cli_api_resp *rs0)
{
	struct cli_api_resp rs = *rs0;
	struct registry_result res = { 0 };
	snprintf(res.name, sizeof(res.name), "%s",
		 json_string_value(json_object_get(rs.json, "name")) ?: "");
	res.version = (unsigned)json_integer_value(json_object_get(rs.json, "version"));
	snprintf(res.hash, sizeof(res.hash), "%s",
		 json_string_value(json_object_get(rs.json, "sha256")) ?: "");
	res.created = json_is_true(json_object_get(rs.json, "created"));
	print_result(co, kind, &res);
	cli_api_resp_free(&rs);
	return 0;
}

/* POSTs body (stolen) and prints the registration. */
static int remote_register(const struct cli_common *co, const char *kind, const char *path,
			   json_t *body)
{
	struct cli_api_resp rs;
	int r = cli_api_json("POST", path, body, 200, &rs);
	json_decref(body);
	return r < 0 ? EXIT_CORDON : print_remote(co, kind, &rs);
}

/* Packs dir and uploads it (bundle.h): the server needs no access to it. */
static int remote_upload(const struct cli_common *co, const char *kind, const char *path,
			 const char *dir)
{
#ifdef CORDON_CURL
	char *body;
	size_t len;
	struct cdn_err err = { 0 };
	/* The tree's hash goes with it: the server registers the tree only if
	 * what it unpacked hashes the same, so an upload cut or changed on the
	 * way is refused, never registered as a part of the tree. */
	char hash[STORE_HASH_HEX + 1], header[STORE_HASH_HEX + 64];
	if (store_tree_hash(dir, NULL, hash, &err) < 0 || bundle_pack(dir, &body, &len, &err) < 0) {
		return cli_fail(&err);
	}
	snprintf(header, sizeof(header), "%s: %s", BUNDLE_TREE_HEADER, hash);
	struct cli_api_req rq = { .method = "POST", .path = path, .body = body, .body_len = len,
				  .content_type = "application/gzip", .header = header };
	struct cli_api_resp rs;
	int r = cli_api_expect(&rq, 200, &rs);
	free(body);
	return r < 0 ? EXIT_CORDON : print_remote(co, kind, &rs);
#else
	(void)co, (void)kind, (void)path, (void)dir;
	cli_error("internal error: this binary cannot upload (cordon-api can)");
	return EXIT_CORDON;
#endif
}

static const char common_help[] = "Options:\n"
				   "  -w, --workspace NAME  workspace (default $CORDON_WORKSPACE, else "
				   "\"default\")\n"
				   "      --state DIR       state directory (default $CORDON_STATE)\n"
				   "      --json            print the result as JSON\n"
				   "  -h, --help            show this help\n"
				   "\n"
				   "With CORDON_URL set, this calls cordon serve with the key in "
				   "CORDON_API_KEY\n"
				   "(the key's workspace; --state and -w are not used; a directory "
				   "is packed\n"
				   "and uploaded, so the server needs no access to it).\n";

/* ------------------------------------------------------------------ agent */

static void agent_usage(FILE *out)
{
	fputs("Usage: cordon agent register DIR [OPTIONS]\n"
	      "       cordon agent list [OPTIONS]\n"
	      "\n"
	      "register checks DIR/agent.json (see docs/agent.md), snapshots DIR and records\n"
	      "a version named by the manifest. The same bytes again change nothing; changed\n"
	      "bytes make the next version. list shows the latest version of each agent.\n"
	      "\n",
	      out);
	fputs(common_help, out);
}

int cmd_agent(int argc, char **argv)
{
	struct cli_common co;
	int p = parse_common(argc, argv, &co, agent_usage);
	if (p)
		return p > 0 ? 0 : EXIT_CORDON;
	int nargs = argc - optind;
	const char *verb = nargs > 0 ? argv[optind] : "";
	if (strcmp(verb, "list") == 0 && nargs == 1)
		return cli_remote() ? remote_list(&co, "/v1/agents", "agents")
				    : list_items(&co, STORE_AGENT, "agents");
	if (strcmp(verb, "register") != 0 || nargs != 2) {
		agent_usage(stderr);
		return EXIT_CORDON;
	}
	if (cli_remote())
		return remote_upload(&co, "agent", "/v1/agents", argv[optind + 1]);
	struct store *s;
	if (cli_open_state(co.state, &s, NULL) < 0)
		return EXIT_CORDON;
	struct registry_result res;
	struct cdn_err err = { 0 };
	int r = registry_agent_register(s, co.workspace, argv[optind + 1], &res, &err);
	store_close(s);
	if (r < 0) {
		return cli_fail(&err);
	}
	print_result(&co, "agent", &res);
	return 0;
}

/* ------------------------------------------------------------- capability */

static void capability_usage(FILE *out)
{
	fputs("Usage: cordon capability register NAME DIR [OPTIONS]\n"
	      "       cordon capability list [OPTIONS]\n"
	      "\n"
	      "A capability is a directory of tools or data an agent may use. Agents that\n"
	      "list it in agent.json and are granted it (cordon grant) see it read-only at\n"
	      "/capabilities/NAME.\n"
	      "\n",
	      out);
	fputs(common_help, out);
}

int cmd_capability(int argc, char **argv)
{
	struct cli_common co;
	int p = parse_common(argc, argv, &co, capability_usage);
	if (p)
		return p > 0 ? 0 : EXIT_CORDON;
	int nargs = argc - optind;
	const char *verb = nargs > 0 ? argv[optind] : "";
	if (strcmp(verb, "list") == 0 && nargs == 1)
		return cli_remote() ? remote_list(&co, "/v1/capabilities", "capabilities")
				    : list_items(&co, STORE_CAPABILITY, "capabilities");
	if (strcmp(verb, "register") != 0 || nargs != 3) {
		capability_usage(stderr);
		return EXIT_CORDON;
	}
	if (cli_remote()) {
		/* A store name needs no escaping in the query. */
		char path[STORE_MAX_NAME + 32];
		struct cdn_err err = { 0 };
		if (store_name_check("capability", argv[optind + 1], &err) < 0) {
			return cli_fail(&err);
		}
		snprintf(path, sizeof(path), "/v1/capabilities?name=%s", argv[optind + 1]);
		return remote_upload(&co, "capability", path, argv[optind + 2]);
	}
	struct store *s;
	if (cli_open_state(co.state, &s, NULL) < 0)
		return EXIT_CORDON;
	struct registry_result res;
	struct cdn_err err = { 0 };
	int r = registry_capability_register(s, co.workspace, argv[optind + 1], argv[optind + 2],
					     &res, &err);
	store_close(s);
	if (r < 0) {
		return cli_fail(&err);
	}
	print_result(&co, "capability", &res);
	return 0;
}

/* -------------------------------------------------------------------- env */

static void env_usage(FILE *out)
{
	fputs("Usage: cordon env register NAME K=V... [OPTIONS]\n"
	      "       cordon env list [OPTIONS]\n"
	      "\n"
	      "Plain configuration for agents. An env is a named set of environment\n"
	      "variables (K=V, each a variable name and a UTF-8 value); an agent that names\n"
	      "it in agent.json (\"env\": NAME) gets those variables in its sandbox. register\n"
	      "stores them as NAME's next version (the same set again keeps the version);\n"
	      "runs use the latest and record which version they got. list shows the latest\n"
	      "version of each env.\n"
	      "\n"
	      "Values are stored and recorded in the clear: a name that looks like a secret\n"
	      "(KEY, TOKEN, PASSWORD, ...) is refused; use cordon secret set for those.\n"
	      "\n",
	      out);
	fputs(common_help, out);
}

int cmd_env(int argc, char **argv)
{
	struct cli_common co;
	int p = parse_common(argc, argv, &co, env_usage);
	if (p)
		return p > 0 ? 0 : EXIT_CORDON;
	int nargs = argc - optind;
	const char *verb = nargs > 0 ? argv[optind] : "";
	if (strcmp(verb, "list") == 0 && nargs == 1)
		return cli_remote() ? remote_list(&co, "/v1/envs", "envs")
				    : list_items(&co, STORE_ENV, "envs");
	if (strcmp(verb, "register") != 0 || nargs < 2) {
		env_usage(stderr);
		return EXIT_CORDON;
	}
	if (cli_remote()) {
		json_t *vars = json_object();
		for (int i = optind + 2; i < argc; i++) {
			const char *eq = strchr(argv[i], '=');
			if (!eq || eq == argv[i]) {
				json_decref(vars);
				cli_error("env: '%s' is not K=V", argv[i]);
				return EXIT_CORDON;
			}
			char k[REGISTRY_MAX_ENV_VALUE];
			snprintf(k, sizeof(k), "%.*s", (int)(eq - argv[i]), argv[i]);
			json_object_set_new(vars, k, json_string(eq + 1));
		}
		return remote_register(&co, "env", "/v1/envs",
				       json_pack("{s:s, s:o}", "name", argv[optind + 1], "vars", vars));
	}
	struct store *s;
	if (cli_open_state(co.state, &s, NULL) < 0)
		return EXIT_CORDON;
	struct registry_result res;
	struct cdn_err err = { 0 };
	int r = registry_env_register(s, co.workspace, argv[optind + 1],
				      (const char *const *)argv + optind + 2, (size_t)(nargs - 2),
				      &res, &err);
	store_close(s);
	if (r < 0) {
		return cli_fail(&err);
	}
	print_result(&co, "env", &res);
	return 0;
}

/* ------------------------------------------------------------------ grant */

static void grant_usage(FILE *out)
{
	fputs("Usage: cordon grant AGENT CAPABILITY [OPTIONS]\n"
	      "       cordon grant AGENT --call CALLEE [OPTIONS]\n"
	      "\n"
	      "Let AGENT use CAPABILITY (both registered, by name, in the workspace). A\n"
	      "capability is a registered directory (a data set, a tool) that a run of the\n"
	      "agent sees read-only at /capabilities/NAME, when the agent also lists it in\n"
	      "agent.json (\"capabilities\"): the manifest asks, the grant allows, and a run\n"
	      "whose agent asks for an ungranted one is refused before it starts. A grant\n"
	      "covers every version of both; the run records which versions it got.\n"
	      "\n"
	      "With --call, let AGENT call the registered agent CALLEE through its run's\n"
	      "MCP endpoint (the call_agent tool), when agent.json also lists it in\n"
	      "\"calls\"; a call of an ungranted agent is refused. The grant covers every\n"
	      "version of CALLEE; the manifest says which one is called.\n"
	      "\n"
	      "Options:\n"
	      "      --call CALLEE     grant a call of the agent CALLEE (no CAPABILITY then)\n",
	      out);
	/* the shared options, under the heading above */
	fputs(common_help + strlen("Options:\n"), out);
}

int cmd_grant(int argc, char **argv)
{
	struct cli_common co;
	const char *callee = NULL;
	const struct cli_extra extra[] = { { "call", 0, &callee, NULL } };
	int p = cli_parse_opts(argc, argv, extra, 1, true, grant_usage, &co);
	if (p)
		return p > 0 ? 0 : EXIT_CORDON;
	if (argc - optind != (callee ? 1 : 2)) {
		grant_usage(stderr);
		return EXIT_CORDON;
	}
	const char *agent = argv[optind];
	const char *target = callee ? callee : argv[optind + 1];
	const char *key = callee ? "call" : "capability";
	if (cli_remote()) {
		struct cli_api_resp rs;
		json_t *b = json_pack("{s:s, s:s}", "agent", agent, key, target);
		int r = cli_api_json("POST", "/v1/grants", b, 200, &rs);
		json_decref(b);
		if (r < 0)
			return EXIT_CORDON;
		cli_api_resp_free(&rs);
		printf("granted %s%s to %s\n", callee ? "a call of " : "", target, agent);
		return 0;
	}
	struct store *s;
	if (cli_open_state(co.state, &s, NULL) < 0)
		return EXIT_CORDON;
	struct cdn_err err = { 0 };
	int r = callee ? registry_grant_call(s, co.workspace, agent, callee, &err)
		       : registry_grant(s, co.workspace, agent, target, &err);
	store_close(s);
	if (r < 0) {
		return cli_fail(&err);
	}
	if (co.json)
		printf("{\"agent\":\"%s\",\"%s\":\"%s\",\"granted\":true}\n", agent, key, target);
	else
		printf("granted %s%s to %s\n", callee ? "a call of " : "", target, agent);
	return 0;
}
