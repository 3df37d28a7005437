/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cordon agent register|list, cordon capability register|list,
 * cordon env register|list, cordon grant AGENT CAPABILITY
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "registry/registry.h"
#include "store/store.h"

struct common {
	const char *state;
	const char *workspace;
	bool json;
};

/* Parses --state, -w/--workspace, --json and -h; leaves optind at the
 * first operand. Returns 1 when help was printed, -1 on bad usage. */
static int parse_common(int argc, char **argv, struct common *co, void (*usage)(FILE *))
{
	enum { O_STATE = 256, O_JSON };
	static const struct option opts[] = { { "state", required_argument, NULL, O_STATE },
					      { "workspace", required_argument, NULL, 'w' },
					      { "json", no_argument, NULL, O_JSON },
					      { "help", no_argument, NULL, 'h' },
					      { NULL, 0, NULL, 0 } };
	memset(co, 0, sizeof(*co));
	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, "w:h", opts, NULL)) != -1) {
		if (c == O_STATE) {
			co->state = optarg;
		} else if (c == 'w') {
			co->workspace = optarg;
		} else if (c == O_JSON) {
			co->json = true;
		} else if (c == 'h') {
			usage(stdout);
			return 1;
		} else {
			usage(stderr);
			return -1;
		}
	}
	co->workspace = cli_workspace(co->workspace);
	return 0;
}

static void print_result(const struct common *co, const char *kind,
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

static int list_items(const struct common *co, enum store_kind kind, const char *what)
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
		cli_error_err(&err);
		return EXIT_CORDON;
	}
	json_t *arr = json_array();
	if (!co->json && n)
		printf("%-24s %-8s %-14s %s\n", "NAME", "VERSION", "SHA256", "REGISTERED");
	for (size_t i = 0; i < n; i++) {
		char when[32];
		time_t t = (time_t)items[i].created;
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
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

static const char common_help[] = "Options:\n"
				   "  -w, --workspace NAME  workspace (default $CORDON_WORKSPACE, else "
				   "\"default\")\n"
				   "      --state DIR       state directory (default $CORDON_STATE)\n"
				   "      --json            print the result as JSON\n"
				   "  -h, --help            show this help\n";

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
	struct common co;
	int p = parse_common(argc, argv, &co, agent_usage);
	if (p)
		return p > 0 ? 0 : EXIT_CORDON;
	int nargs = argc - optind;
	const char *verb = nargs > 0 ? argv[optind] : "";
	if (strcmp(verb, "list") == 0 && nargs == 1)
		return list_items(&co, STORE_AGENT, "agents");
	if (strcmp(verb, "register") != 0 || nargs != 2) {
		agent_usage(stderr);
		return EXIT_CORDON;
	}
	struct store *s;
	if (cli_open_state(co.state, &s, NULL) < 0)
		return EXIT_CORDON;
	struct registry_result res;
	struct cdn_err err = { 0 };
	int r = registry_agent_register(s, co.workspace, argv[optind + 1], &res, &err);
	store_close(s);
	if (r < 0) {
		cli_error_err(&err);
		return EXIT_CORDON;
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
	struct common co;
	int p = parse_common(argc, argv, &co, capability_usage);
	if (p)
		return p > 0 ? 0 : EXIT_CORDON;
	int nargs = argc - optind;
	const char *verb = nargs > 0 ? argv[optind] : "";
	if (strcmp(verb, "list") == 0 && nargs == 1)
		return list_items(&co, STORE_CAPABILITY, "capabilities");
	if (strcmp(verb, "register") != 0 || nargs != 3) {
		capability_usage(stderr);
		return EXIT_CORDON;
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
		cli_error_err(&err);
		return EXIT_CORDON;
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
	      "An env is a named, versioned set of plain environment variables an agent\n"
	      "names in agent.json (\"env\": NAME). Values are stored in the clear: a name\n"
	      "that looks like a secret (KEY, TOKEN, PASSWORD, ...) is refused; use\n"
	      "cordon secret set for those.\n"
	      "\n",
	      out);
	fputs(common_help, out);
}

int cmd_env(int argc, char **argv)
{
	struct common co;
	int p = parse_common(argc, argv, &co, env_usage);
	if (p)
		return p > 0 ? 0 : EXIT_CORDON;
	int nargs = argc - optind;
	const char *verb = nargs > 0 ? argv[optind] : "";
	if (strcmp(verb, "list") == 0 && nargs == 1)
		return list_items(&co, STORE_ENV, "envs");
	if (strcmp(verb, "register") != 0 || nargs < 2) {
		env_usage(stderr);
		return EXIT_CORDON;
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
		cli_error_err(&err);
		return EXIT_CORDON;
	}
	print_result(&co, "env", &res);
	return 0;
}

/* ------------------------------------------------------------------ grant */

static void grant_usage(FILE *out)
{
	fputs("Usage: cordon grant AGENT CAPABILITY [OPTIONS]\n"
	      "\n"
	      "Let AGENT use CAPABILITY (both by name, in the workspace). A grant covers\n"
	      "every version of both; the run records which versions it got.\n"
	      "\n",
	      out);
	fputs(common_help, out);
}

int cmd_grant(int argc, char **argv)
{
	struct common co;
	int p = parse_common(argc, argv, &co, grant_usage);
	if (p)
		return p > 0 ? 0 : EXIT_CORDON;
	if (argc - optind != 2) {
		grant_usage(stderr);
		return EXIT_CORDON;
	}
	struct store *s;
	if (cli_open_state(co.state, &s, NULL) < 0)
		return EXIT_CORDON;
	struct cdn_err err = { 0 };
	int r = registry_grant(s, co.workspace, argv[optind], argv[optind + 1], &err);
	store_close(s);
	if (r < 0) {
		cli_error_err(&err);
		return EXIT_CORDON;
	}
	if (co.json)
		printf("{\"agent\":\"%s\",\"capability\":\"%s\",\"granted\":true}\n", argv[optind],
		       argv[optind + 1]);
	else
		printf("granted %s to %s\n", argv[optind + 1], argv[optind]);
	return 0;
}
