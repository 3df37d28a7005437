/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cordon deps build AGENT | list | gc: the agents' dependency layers
 * (docs/deps.md), in the state directory. A run builds a missing layer
 * itself; `build` does it ahead of time, `gc` removes the layers no
 * registered agent version uses.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/file.h"
#include "base/text.h"
#include "cli/cli.h"
#include "registry/registry.h"
#include "run/deps.h"
#include "sandbox/sandbox.h"
#include "store/store.h"

#define DEPS_MAX_PRIVATE 16
#define DEPS_META_MAX 4096 /* bytes of a layer.json read back */

static void deps_usage(FILE *out)
{
	fputs("Usage: cordon deps build AGENT[@VERSION] [OPTIONS]\n"
	      "       cordon deps list [OPTIONS]\n"
	      "       cordon deps gc [--dry-run] [OPTIONS]\n"
	      "\n"
	      "An agent that declares \"dependencies\" in agent.json (a package-lock.json or\n"
	      "a requirements.txt) gets them as a read-only layer, built once per lockfile,\n"
	      "runtime and platform in a sandbox whose only network is the package\n"
	      "registries (GET and HEAD), and bound into every run with no network for it\n"
	      "(docs/deps.md). A run builds a missing layer first; these commands manage\n"
	      "the layers in the state directory.\n"
	      "\n"
	      "  build AGENT    build AGENT's layer now (AGENT: a registered name, NAME@VERSION\n"
	      "                 or a directory); nothing to do when it is built already\n"
	      "  list           the layers, with the runtime and whether a registered agent\n"
	      "                 version uses them\n"
	      "  gc             remove the layers no registered agent version uses, except\n"
	      "                 those a running run holds; removes nothing when a registered\n"
	      "                 version's inputs cannot be read\n"
	      "\n"
	      "Options:\n"
	      "      --allow-private IP:PORT  (build) a registry on a private address the\n"
	      "                        build's proxy may reach (repeatable, at most 16)\n"
	      "      --hosts FILE      (build) extra hosts file for the build's resolver\n"
	      "                        (default $CORDON_HOSTS_FILE)\n"
	      "      --upstream-ca FILE  (build) extra CA for the registries' HTTPS\n"
	      "      --allow-degraded LIST  (build) build without these protections\n"
	      "      --quiet           (build) do not show the build's output\n"
	      "      --dry-run         (gc) say what would be removed, remove nothing\n"
	      "  -w, --workspace NAME  workspace (default $CORDON_WORKSPACE, else \"default\")\n"
	      "      --state DIR       state directory (default $CORDON_STATE)\n"
	      "      --json            print the result as JSON\n"
	      "  -h, --help            show this help\n"
	      "\n"
	      "The registries are $" DEPS_ENV_NPM " (default https://registry.npmjs.org/)\n"
	      "and $" DEPS_ENV_PYTHON " (default https://pypi.org/simple); cordon serve sets\n"
	      "them from its config's deps section. This command works on the state\n"
	      "directory only: through cordon serve, a run builds its layer on first use.\n",
	      out);
}

static void print_json(json_t *j)
{
	json_dumpf(j, stdout, JSON_COMPACT | JSON_SORT_KEYS);
	putchar('\n');
}

static int deps_build(int argc, char **argv)
{
	enum { O_STATE = 256, O_JSON, O_PRIVATE, O_HOSTS, O_CA, O_DEGRADED, O_QUIET };
	static const struct option opts[] = {
		{ "state", required_argument, NULL, O_STATE },
		{ "workspace", required_argument, NULL, 'w' },
		{ "json", no_argument, NULL, O_JSON },
		{ "allow-private", required_argument, NULL, O_PRIVATE },
		{ "hosts", required_argument, NULL, O_HOSTS },
		{ "upstream-ca", required_argument, NULL, O_CA },
		{ "allow-degraded", required_argument, NULL, O_DEGRADED },
		{ "quiet", no_argument, NULL, O_QUIET },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *state = NULL, *ws = NULL, *priv[DEPS_MAX_PRIVATE];
	bool json = false, quiet = false;
	struct deps_options o = { .allow_private = priv, .log_fd = STDERR_FILENO };
	struct cdn_err err = { 0 };
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "w:h", opts, NULL)) != -1) {
		switch (c) {
		case O_STATE: state = optarg; break;
		case 'w': ws = optarg; break;
		case O_JSON: json = true; break;
		case O_QUIET: quiet = true; break;
		case O_HOSTS: o.hosts_file = optarg; break;
		case O_CA: o.upstream_ca = optarg; break;
		case O_PRIVATE:
			if (o.n_allow_private == DEPS_MAX_PRIVATE) {
				cli_error("--allow-private: at most %d", DEPS_MAX_PRIVATE);
				return EXIT_CORDON;
			}
			priv[o.n_allow_private++] = optarg;
			break;
		case O_DEGRADED:
			if (sandbox_parse_degraded(optarg, &o.allow_degraded, &err) < 0)
				return cli_fail(&err);
			break;
		case 'h': deps_usage(stdout); return 0;
		default: deps_usage(stderr); return EXIT_CORDON;
		}
	}
	if (optind + 1 != argc) {
		cli_error("deps build: expected one AGENT");
		return EXIT_CORDON;
	}
	if (!o.hosts_file && getenv("CORDON_HOSTS_FILE") && *getenv("CORDON_HOSTS_FILE"))
		o.hosts_file = getenv("CORDON_HOSTS_FILE");
	/* The build's output is for a person: not mixed into --json. */
	if (json || quiet)
		o.log_fd = -1;
	struct store *s;
	if (cli_open_state(state, &s, NULL) < 0)
		return EXIT_CORDON;
	struct resolved_agent a = { 0 };
	struct deps_layer l;
	int r = registry_resolve_agent(s, cli_workspace(ws), argv[optind], &a, &err);
	if (r == 0 && !a.manifest->deps_runtime[0])
		r = cdn_err_msg(&err, EINVAL, "agent %s declares no dependencies", a.name);
	if (r == 0)
		r = deps_resolve(s, a.hash, a.manifest, &o, &l, NULL, &err);
	registry_resolved_clear(&a);
	store_close(s);
	if (r < 0)
		return cli_fail(&err);
	if (json) {
		json_t *j = deps_layer_json(&l);
		json_object_set_new(j, "files", json_integer((json_int_t)l.files));
		json_object_set_new(j, "bytes", json_integer((json_int_t)l.bytes));
		print_json(j);
		json_decref(j);
	} else if (l.built) {
		printf("layer %s built in %.1f s (%s %s, %" PRIu64 " entries, %" PRIu64 " bytes)\n",
		       l.key, (double)l.build_ms / 1000.0, l.runtime, l.runtime_version, l.files,
		       l.bytes);
	} else {
		printf("layer %s is built already (%s %s)\n", l.key, l.runtime, l.runtime_version);
	}
	return 0;
}

/* A layer's layer.json, or an object saying it could not be read. */
static json_t *layer_meta(struct store *s, const char *key)
{
	char path[4096 + 16];
	bool exists = false;
	if (store_layer_path(s, key, path, sizeof(path) - 16, &exists, NULL) < 0 || !exists)
		return json_pack("{s:s}", "sha256", key);
	strcat(path, "/" STORE_LAYER_META);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	json_t *j = NULL;
	if (fd >= 0 && cdn_read_fd(fd, DEPS_META_MAX, &text, &len) == 0)
		j = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(j)) {
		json_decref(j);
		j = json_object();
	}
	json_object_set_new(j, "sha256", json_string(key));
	json_object_del(j, "built");
	return j;
}

static bool key_in(const char (*keys)[STORE_HASH_HEX + 1], size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(keys[i], key) == 0)
			return true;
	return false;
}

static int deps_list_gc(int argc, char **argv, bool gc)
{
	bool dry = false;
	const struct cli_extra extra[] = { { "dry-run", 0, NULL, &dry } };
	struct cli_common co;
	int p = cli_parse_opts(argc, argv, extra, gc ? 1 : 0, true, deps_usage, &co);
	if (p)
		return p > 0 ? 0 : EXIT_CORDON;
	if (optind != argc) {
		deps_usage(stderr);
		return EXIT_CORDON;
	}
	struct store *s;
	if (cli_open_state(co.state, &s, NULL) < 0)
		return EXIT_CORDON;
	struct cdn_err err = { 0 };
	char(*have)[STORE_HASH_HEX + 1] = NULL, (*used)[STORE_HASH_HEX + 1] = NULL;
	size_t n_have = 0, n_used = 0, unreadable = 0;
	int r = deps_used_keys(s, &used, &n_used, &unreadable, &err);
	if (r == 0)
		r = store_layer_list(s, &have, &n_have, &err);
	/* A registered version whose inputs cannot be read may use any layer:
	 * gc removes nothing rather than guess. */
	if (r == 0 && gc && unreadable)
		r = cdn_err_msg(&err, EIO,
				"deps gc: %zu registered agent version(s) whose dependency inputs "
				"could not be read, so which layers are used is not known; nothing "
				"removed",
				unreadable);
	json_t *rows = json_array(), *removed = json_array(), *busy = json_array();
	for (size_t i = 0; r == 0 && i < n_have; i++) {
		bool in_use = key_in((const char(*)[STORE_HASH_HEX + 1])used, n_used, have[i]);
		json_t *m = layer_meta(s, have[i]);
		json_object_set_new(m, "used", json_boolean(in_use));
		if (gc && !in_use) {
			/* A layer a run has bound (or a build holds) stays. */
			struct cdn_err e = { 0 };
			int k = store_layer_remove(s, have[i], dry, &e);
			if (k == -EBUSY) {
				json_array_append_new(busy, json_string(have[i]));
			} else if (k < 0) {
				err = e;
				r = k;
				cdn_err_wrap(&err, "deps gc");
			} else {
				json_array_append(removed, m);
			}
		}
		json_array_append_new(rows, m);
	}
	free(have);
	free(used);
	store_close(s);
	if (r < 0) {
		json_decref(rows);
		json_decref(removed);
		json_decref(busy);
		return cli_fail(&err);
	}
	if (unreadable)
		cli_error("deps: %zu registered agent version(s) whose dependency inputs could not "
			  "be read",
			  unreadable);
	if (co.json) {
		json_t *j = gc ? json_pack("{s:O, s:O, s:b}", "removed", removed, "in_use_by_runs",
					   busy, "dry_run", dry)
			       : json_pack("{s:O}", "layers", rows);
		print_json(j);
		json_decref(j);
	} else if (gc) {
		size_t i;
		json_t *m;
		json_array_foreach(removed, i, m)
			printf("%s %s\n", dry ? "would remove" : "removed",
			       json_string_value(json_object_get(m, "sha256")));
		json_array_foreach(busy, i, m)
			printf("kept %s: a run or a build holds it\n", json_string_value(m));
		printf("%zu layer(s) %s, %zu in use\n", json_array_size(removed),
		       dry ? "to remove" : "removed", json_array_size(rows) - json_array_size(removed));
	} else {
		printf("%-64s %-7s %-14s %-24s %s\n", "LAYER", "RUNTIME", "VERSION", "CREATED",
		       "USED");
		size_t i;
		json_t *m;
		json_array_foreach(rows, i, m)
		{
			const char *rt = json_string_value(json_object_get(m, "runtime"));
			const char *ver = json_string_value(json_object_get(m, "runtime_version"));
			const char *cr = json_string_value(json_object_get(m, "created"));
			char v[32], t[32];
			printf("%-64s %-7s %-14s %-24s %s\n",
			       json_string_value(json_object_get(m, "sha256")), rt ? rt : "?",
			       cdn_printable_str(v, sizeof(v), ver ? ver : "?", 0),
			       cdn_printable_str(t, sizeof(t), cr ? cr : "?", 0),
			       json_is_true(json_object_get(m, "used")) ? "yes" : "no");
		}
	}
	json_decref(rows);
	json_decref(removed);
	json_decref(busy);
	return 0;
}

int cmd_deps(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		deps_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_CORDON : 0;
	}
	if (cli_remote()) {
		cli_error("deps: works on the state directory, not through cordon serve (unset "
			  "CORDON_URL); a run through the API builds its layer on first use");
		return EXIT_CORDON;
	}
	if (strcmp(argv[1], "build") == 0)
		return deps_build(argc - 1, argv + 1);
	if (strcmp(argv[1], "list") == 0)
		return deps_list_gc(argc - 1, argv + 1, false);
	if (strcmp(argv[1], "gc") == 0)
		return deps_list_gc(argc - 1, argv + 1, true);
	cli_error("deps: unknown subcommand '%s' (build, list, gc)", argv[1]);
	return EXIT_CORDON;
}
