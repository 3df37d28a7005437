/* SPDX-License-Identifier: Apache-2.0 */
/* cordon serve, cordon init, cordon keys create|list|revoke */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/clock.h"
#include "cli/cli.h"
#include "run/deps.h"
#include "serve/keys.h"
#include "serve/serve.h"
#include "store/store.h"

static void serve_usage(FILE *out)
{
	fputs("Usage: cordon serve [OPTIONS]\n"
	      "       cordon serve --routes [--json]\n"
	      "\n"
	      "Run cordon as a service: the HTTP API under /v1 (docs/api.md), the dashboard\n"
	      "at /, a dispatcher that runs agents from bounded queues, the scheduler that\n"
	      "fires schedules (docs/schedules.md), the manager that keeps services running\n"
	      "(docs/services.md), and /healthz and /metrics (Prometheus) on the unix socket\n"
	      "STATE/serve.sock. Requests need an API key (cordon init makes the first).\n"
	      "SIGTERM or SIGINT drains: no new runs, services this server runs get SIGTERM\n"
	      "and --service-stop-timeout, queued runs are cancelled, running ones get\n"
	      "--drain-timeout to finish and are then stopped.\n"
	      "\n"
	      "Settings come from the flags, then from the config file (--config, else\n"
	      "$CORDON_CONFIG; docs/config.md), then from the defaults below. A flag\n"
	      "overrides the file's value (a repeatable flag replaces the file's list).\n"
	      "\n"
	      "Options:\n"
	      "      --config FILE          read settings from this YAML file (the package's\n"
	      "                             is /etc/cordon/cordon.yaml); unknown keys are errors\n"
	      "      --listen ADDR:PORT     where the API listens (default 127.0.0.1:8470)\n"
	      "      --state DIR            state directory (default $CORDON_STATE)\n"
	      "      --database URL         keep the metadata (registry, runs, secrets, keys)\n"
	      "                             in Postgres: postgresql://USER@HOST/DB (default\n"
	      "                             $CORDON_DATABASE_URL; unset: SQLite in the state\n"
	      "                             directory). Give a password in the variable or in\n"
	      "                             ~/.pgpass, not here: arguments are visible to ps\n"
	      "      --blobs s3://BUCKET/PREFIX  write blobs and finished runs' files through\n"
	      "                             to S3 and read what is not here from it (default\n"
	      "                             $CORDON_BLOBS; unset: the state directory only).\n"
	      "                             CORDON_S3_ENDPOINT and the AWS_* variables say\n"
	      "                             where and who; the bucket is checked at start\n"
	      "      --concurrency N        runs at once (default: twice the CPUs)\n"
	      "      --warm-pool N          runs' processes kept started ahead, each with its\n"
	      "                             store open and a warm sandbox waiting, so a run\n"
	      "                             skips that part of its start (default 2; 0: every\n"
	      "                             run starts cold)\n"
	      "      --queue N              runs waiting at most (default 64)\n"
	      "      --workspace-queue N    runs of one workspace waiting at most (default a\n"
	      "                             quarter of --queue, at least 1)\n"
	      "      --workspace-concurrency N  runs of one workspace at once (default\n"
	      "                             --concurrency); workspaces take turns for slots\n"
	      "      --streams-per-key N    live event and output streams per API key (default 16)\n"
	      "      --uploads N            bundle uploads in progress at once (default 4)\n"
	      "      --trusted-proxy ADDR   a reverse proxy in front of serve (repeatable):\n"
	      "                             its X-Forwarded-For names the client; nobody\n"
	      "                             else's is believed\n"
	      "      --dispatch MODE        embedded (default): this server runs the runs;\n"
	      "                             workers: it only queues them in the database\n"
	      "                             (--database, Postgres) for cordon worker\n"
	      "                             processes, on any host, and expires the leases\n"
	      "                             of workers that died (docs/deploy.md)\n"
	      "      --drain-timeout SECS   how long running runs get on shutdown (default 30)\n"
	      "      --service-backoff AGE  a service's first restart waits this long, each\n"
	      "                             further end in the crash-loop window doubles it,\n"
	      "                             with jitter (default 1s; 500ms, 10s, 5m)\n"
	      "      --service-backoff-max AGE  the longest wait (default 5m)\n"
	      "      --crash-loop-exits N   this many ends within the window pause a service\n"
	      "                             (default 5)\n"
	      "      --crash-loop-window AGE  the crash-loop window (default 10m)\n"
	      "      --service-stop-timeout AGE  how long a service's run has after SIGTERM\n"
	      "                             (pause, drain) before it is killed (default 10s)\n"
	      "      --prune-interval AGE   prune by retention age (cordon retention) at start\n"
	      "                             and then this often (default 1h; 0: never)\n"
	      "      --evidence-sink DIR    export each run's signed evidence pack into\n"
	      "                             DIR/WORKSPACE/RUN.evidence.tar.gz when it ends\n"
	      "                             (file:///PATH or /PATH), or into S3 when DIR is\n"
	      "                             s3://BUCKET/PREFIX (CORDON_S3_ENDPOINT and the\n"
	      "                             AWS_* variables; the bucket is checked at start)\n"
	      "      --hosts FILE           extra hosts file for the runs' egress resolver\n"
	      "      --allow-private IP:PORT  a private address the runs' proxy may reach\n"
	      "      --upstream-ca FILE     extra CA for inspected HTTPS upstreams\n"
	      "      --max-call-depth N     how deep the runs' agent-to-agent calls may go\n"
	      "                             (default 4, at most 16)\n"
	      "      --max-calls N          calls in a whole tree of calls, a run's and those\n"
	      "                             of every run below it together (default 16, at\n"
	      "                             most 1024)\n"
	      "      --npm-registry URL     the npm registry dependency builds use (default\n"
	      "                             $CORDON_NPM_REGISTRY, else registry.npmjs.org;\n"
	      "                             docs/deps.md)\n"
	      "      --python-index URL     the Python index dependency builds use (default\n"
	      "                             $CORDON_PYTHON_INDEX, else pypi.org/simple)\n"
	      "      --register-root DIR    let owners register agents and capabilities by a\n"
	      "                             path on this machine, below DIR (default: off;\n"
	      "                             they upload the directory as a tar.gz)\n"
	      "      --metrics-listen ADDR:PORT  also serve GET /metrics on this TCP address\n"
	      "                             (default: off; /metrics is on serve.sock only).\n"
	      "                             Without --metrics-token-file anyone who reaches it\n"
	      "                             gets server-wide series only, never a workspace's\n"
	      "                             name (docs/metrics.md)\n"
	      "      --metrics-token-file FILE  with --metrics-listen: every scrape must send\n"
	      "                             Authorization: Bearer TOKEN (FILE's one line, at\n"
	      "                             least 16 characters, mode 600 or 640), and gets the\n"
	      "                             per-workspace series too\n"
	      "      --routes               print the API's routes and the role each needs\n"
	      "                             (the table the server authorizes by), and exit\n"
	      "      --json                 with --routes: as JSON\n"
	      "  -h, --help                 show this help\n",
	      out);
}

/* The route table, as the server dispatches by it. */
static int print_routes(bool json)
{
	json_t *arr = json_array();
	const char *method, *path, *role;
	for (size_t i = 0; serve_route_at(i, &method, &path, &role); i++) {
		if (json)
			json_array_append_new(arr, json_pack("{s:s, s:s, s:s}", "method", method,
							     "path", path, "role", role));
		else
			printf("%-7s %-34s %s\n", method, path, role);
	}
	if (json) {
		json_dumpf(arr, stdout, JSON_COMPACT);
		putchar('\n');
	}
	json_decref(arr);
	return 0;
}

int cmd_serve(int argc, char **argv)
{
	enum { O_CONFIG = 256, O_ROUTES, O_JSON, O_SETTING = 512 };
	/* The settings' flags come from the table they share with the config
	 * file (src/serve/config.c). */
	struct option opts[64] = {
		{ "config", required_argument, NULL, O_CONFIG },
		{ "routes", no_argument, NULL, O_ROUTES },
		{ "json", no_argument, NULL, O_JSON },
		{ "help", no_argument, NULL, 'h' },
	};
	size_t n_opts = 4;
	const struct serve_option *so;
	for (size_t i = 0; (so = serve_option_at(i)) && n_opts + 1 < CDN_ARRAY_SIZE(opts); i++)
		if (so->scope & SERVE_SCOPE_SERVE)
			opts[n_opts++] = (struct option){ so->flag, required_argument, NULL,
							  O_SETTING + (int)i };
	const char *config = getenv("CORDON_CONFIG");
	if (config && !*config)
		config = NULL;
	/* First --config (and --help) alone, so that the file is read before
	 * the flags, which override it. --routes needs no settings. */
	bool routes = false, json = false, bad = false;
	int c;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == O_CONFIG) {
			config = optarg;
		} else if (c == 'h') {
			serve_usage(stdout);
			return 0;
		} else if (c == O_ROUTES) {
			routes = true;
		}
	}
	opterr = 1;
	struct serve_config cfg = { .prune_interval_s = 3600, .warm_pool = SERVE_DEFAULT_WARM_POOL };
	struct serve_config_file *file = NULL;
	struct cdn_err err = { 0 };
	if (config && !routes && serve_config_load(config, &cfg, &file, &err) < 0) {
		cli_error("serve: %s", err.msg);
		return EXIT_CORDON;
	}
	bool from_flag[64] = { false };
	optind = 0;
	while (!bad && (c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		size_t i = (size_t)(c - O_SETTING);
		if (c == O_CONFIG) {
			continue;
		} else if (c == O_ROUTES) {
			routes = true;
		} else if (c == O_JSON) {
			json = true;
		} else if (c >= O_SETTING && (so = serve_option_at(i))) {
			if (serve_option_flag(&cfg, i, from_flag, optarg, &err) < 0) {
				cli_error("--%s: %s", so->flag, err.msg);
				serve_config_file_free(file);
				return EXIT_CORDON;
			}
		} else {
			bad = true;
		}
	}
	int rc = 0;
	if (bad || optind != argc || (json && !routes)) {
		serve_usage(stderr);
		rc = EXIT_CORDON;
	} else if (routes) {
		rc = print_routes(json);
	} else {
		if (!cfg.hosts_file && getenv("CORDON_HOSTS_FILE") && *getenv("CORDON_HOSTS_FILE"))
			cfg.hosts_file = getenv("CORDON_HOSTS_FILE");
		if (cfg.metrics_token_file && !cfg.metrics_listen) {
			cli_error("--metrics-token-file needs --metrics-listen (serve.sock's /metrics "
				  "takes no token: its mode is the guard)");
			rc = EXIT_CORDON;
		} else if (cfg.database && setenv("CORDON_DATABASE_URL", cfg.database, 1) < 0) {
			/* Through the environment, the one place the store reads it
			 * from: the runs serve starts (cordon-full processes) inherit
			 * it and record into the same database. */
			cli_error("--database: %s", strerror(errno));
			rc = EXIT_CORDON;
		} else if (cfg.blobs && setenv("CORDON_BLOBS", cfg.blobs, 1) < 0) {
			/* The same for the blob store (docs/state.md). */
			cli_error("--blobs: %s", strerror(errno));
			rc = EXIT_CORDON;
		} else if ((cfg.npm_registry &&
			    deps_registry_setenv(DEPS_ENV_NPM, cfg.npm_registry, &err) < 0) ||
			   (cfg.python_index &&
			    deps_registry_setenv(DEPS_ENV_PYTHON, cfg.python_index, &err) < 0)) {
			/* The runs build missing dependency layers: they inherit it. */
			cli_error("--npm-registry, --python-index: %s", err.msg);
			rc = EXIT_CORDON;
		} else if (serve_main(&cfg, &err) < 0) {
			cli_error("serve: %s", err.msg);
			rc = EXIT_CORDON;
		}
	}
	serve_config_file_free(file);
	return rc;
}

/* ------------------------------------------------------------------- init */

static void init_usage(FILE *out)
{
	fputs("Usage: cordon init [--state DIR] [-w WORKSPACE] [--name NAME] [--json]\n"
	      "\n"
	      "Create the state directory (if needed) and the first owner API key, and print\n"
	      "the key once, as the last line of the output. It is stored only as a hash:\n"
	      "keep it now. Refused when an owner key exists already (use cordon keys), and\n"
	      "when CORDON_URL is set: init makes local state, on the server's machine.\n"
	      "\n"
	      "Options:\n"
	      "      --state DIR           state directory (default $CORDON_STATE)\n"
	      "  -w, --workspace NAME      the key's workspace (default \"default\")\n"
	      "      --name NAME           the key's name (default \"owner\")\n"
	      "      --json                print {state, workspace, id, name, role, key}\n"
	      "  -h, --help                show this help\n",
	      out);
}

int cmd_init(int argc, char **argv)
{
	const char *name = "owner";
	const struct cli_extra extra[] = { { "name", 0, &name, NULL } };
	struct cli_common co;
	int p = cli_parse_opts(argc, argv, extra, 1, true, init_usage, &co);
	if (p)
		return p > 0 ? 0 : EXIT_CORDON;
	if (optind != argc) {
		init_usage(stderr);
		return EXIT_CORDON;
	}
	if (cli_remote()) {
		cli_error("init: CORDON_URL is set, and init has no API: it creates a local state "
			  "directory and its first key, on the machine cordon serve runs on (unset "
			  "CORDON_URL there); cordon keys create makes more keys through the API");
		return EXIT_CORDON;
	}
	const char *state = co.state, *ws = co.workspace;
	struct store *s;
	if (cli_open_state(state, &s, NULL) < 0)
		return EXIT_CORDON;
	struct cdn_err err = { 0 };
	bool exists = false;
	int rc = 0;
	if (api_key_owner_exists(s, &exists, &err) < 0) {
		cli_error_err(&err);
		rc = cli_exit_status(&err);
	} else if (exists) {
		cli_error("init: %s has an owner key already; make more with 'cordon keys create'",
			  store_dir(s));
		rc = EXIT_CORDON;
	} else {
		char key[API_KEY_LEN + 1];
		struct store_key rec;
		if (api_key_create(s, ws, name, "owner", key, &rec, &err) < 0) {
			cli_error_err(&err);
			rc = cli_exit_status(&err);
		} else {
			if (co.json) {
				json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "state",
						      store_dir(s), "workspace", ws, "id", rec.id,
						      "name", rec.name, "role", "owner", "key", key);
				char *t = j ? json_dumps(j, JSON_COMPACT) : NULL;
				if (t) {
					puts(t);
					sodium_memzero(t, strlen(t));
					free(t);
				}
				json_decref(j);
			} else {
				printf("state: %s\nworkspace: %s\nowner key %s (%s), shown once:\n%s\n",
				       store_dir(s), ws, rec.id, rec.name, key);
			}
			sodium_memzero(key, sizeof(key));
		}
	}
	store_close(s);
	return rc;
}

/* ------------------------------------------------------------------- keys */

static void keys_usage(FILE *out)
{
	fputs("Usage: cordon keys create NAME [--role owner|member] [OPTIONS]\n"
	      "       cordon keys list [OPTIONS]\n"
	      "       cordon keys revoke ID [OPTIONS]\n"
	      "\n"
	      "API keys for cordon serve, per workspace. create prints the key once (last\n"
	      "line); only its hash is kept. Owners can do everything; members run agents and\n"
	      "read runs, logs, artifacts and secret names (docs/api.md). It works on the\n"
	      "state directory directly, or, with CORDON_URL set, through cordon serve with\n"
	      "the owner key in CORDON_API_KEY (the key's workspace).\n"
	      "\n"
	      "Options:\n"
	      "      --role ROLE           owner or member (default member)\n"
	      "  -w, --workspace NAME      workspace (default $CORDON_WORKSPACE, else \"default\")\n"
	      "      --state DIR           state directory (default $CORDON_STATE)\n"
	      "      --json                print the result as JSON\n"
	      "  -h, --help                show this help\n",
	      out);
}

static int remote_keys(bool create, bool revoke, const char *arg, const char *role, bool json)
{
	struct cli_api_resp rs;
	char path[128];
	if (create) {
		json_t *b = json_pack("{s:s, s:s}", "name", arg, "role", role);
		int r = cli_api_json("POST", "/v1/keys", b, 201, &rs);
		json_decref(b);
		if (r < 0)
			return EXIT_CORDON;
		const char *key = json_string_value(json_object_get(rs.json, "key"));
		if (json) {
			json_dumpf(rs.json, stdout, JSON_COMPACT);
			putchar('\n');
		} else {
			printf("%s key %s (%s), shown once:\n%s\n",
			       json_string_value(json_object_get(rs.json, "role")),
			       json_string_value(json_object_get(rs.json, "id")), arg, key ? key : "");
		}
	} else if (revoke) {
		snprintf(path, sizeof(path), "/v1/keys/%s", arg);
		if (cli_api_json("DELETE", path, NULL, 200, &rs) < 0)
			return EXIT_CORDON;
		printf("%s revoked\n", arg);
	} else {
		if (cli_api_json("GET", "/v1/keys", NULL, 200, &rs) < 0)
			return EXIT_CORDON;
		json_t *arr = json_object_get(rs.json, "keys");
		if (json) {
			json_dumpf(arr, stdout, JSON_COMPACT);
			putchar('\n');
		} else {
			size_t i;
			json_t *k;
			printf("%-24s %-20s %-7s %s\n", "ID", "NAME", "ROLE", "REVOKED");
			json_array_foreach(arr, i, k)
				printf("%-24s %-20s %-7s %s\n", json_string_value(json_object_get(k, "id")),
				       json_string_value(json_object_get(k, "name")),
				       json_string_value(json_object_get(k, "role")),
				       json_is_true(json_object_get(k, "revoked")) ? "yes" : "no");
		}
	}
	if (rs.raw)
		sodium_memzero(rs.raw, rs.raw_len);
	cli_api_resp_free(&rs);
	return 0;
}

int cmd_keys(int argc, char **argv)
{
	const char *role = "member";
	const struct cli_extra extra[] = { { "role", 0, &role, NULL } };
	struct cli_common co;
	int p = cli_parse_opts(argc, argv, extra, 1, true, keys_usage, &co);
	if (p)
		return p > 0 ? 0 : EXIT_CORDON;
	const char *state = co.state, *ws = co.workspace;
	bool json = co.json;
	int nargs = argc - optind;
	const char *verb = nargs > 0 ? argv[optind] : "";
	bool create = strcmp(verb, "create") == 0 && nargs == 2;
	bool list = strcmp(verb, "list") == 0 && nargs == 1;
	bool revoke = strcmp(verb, "revoke") == 0 && nargs == 2;
	if (!create && !list && !revoke) {
		keys_usage(stderr);
		return EXIT_CORDON;
	}
	if (cli_remote())
		return remote_keys(create, revoke, nargs == 2 ? argv[optind + 1] : NULL, role, json);
	struct store *s;
	if (cli_open_state(state, &s, NULL) < 0)
		return EXIT_CORDON;
	struct cdn_err err = { 0 };
	int r = 0;
	if (create) {
		char key[API_KEY_LEN + 1];
		struct store_key rec;
		r = api_key_create(s, ws, argv[optind + 1], role, key, &rec, &err);
		if (r == 0 && json)
			printf("{\"id\":\"%s\",\"name\":\"%s\",\"role\":\"%s\",\"workspace\":\"%s\","
			       "\"key\":\"%s\"}\n",
			       rec.id, rec.name, rec.role, rec.workspace, key);
		else if (r == 0)
			printf("%s key %s (%s) in workspace %s, shown once:\n%s\n", rec.role, rec.id,
			       rec.name, rec.workspace, key);
		sodium_memzero(key, sizeof(key));
	} else if (revoke) {
		r = store_key_revoke(s, ws, argv[optind + 1], &err);
		if (r == 0)
			printf("%s revoked\n", argv[optind + 1]);
	} else {
		struct store_key *v = NULL;
		size_t n = 0;
		r = store_key_list(s, ws, &v, &n, &err);
		json_t *arr = json_array();
		if (r == 0 && !json && n)
			printf("%-24s %-20s %-7s %-8s %s\n", "ID", "NAME", "ROLE", "REVOKED",
			       "LAST USED");
		for (size_t i = 0; r == 0 && i < n; i++) {
			char used[32] = "never";
			if (v[i].last_used)
				cdn_rfc3339(v[i].last_used * 1000, CDN_TIME_S, used, sizeof(used));
			char created[32];
			cdn_rfc3339(v[i].created * 1000, CDN_TIME_S, created, sizeof(created));
			if (json)
				json_array_append_new(
					arr, json_pack("{s:s, s:s, s:s, s:b, s:s, s:o}", "id", v[i].id,
						       "name", v[i].name, "role", v[i].role, "revoked",
						       v[i].revoked, "created", created, "last_used",
						       v[i].last_used ? json_string(used) : json_null()));
			else
				printf("%-24s %-20s %-7s %-8s %s\n", v[i].id, v[i].name, v[i].role,
				       v[i].revoked ? "yes" : "no", used);
		}
		if (r == 0 && json) {
			json_dumpf(arr, stdout, JSON_COMPACT);
			putchar('\n');
		} else if (r == 0 && n == 0) {
			fprintf(stderr, "no keys in workspace %s\n", ws);
		}
		json_decref(arr);
		free(v);
	}
	store_close(s);
	if (r < 0) {
		return cli_fail(&err);
	}
	return 0;
}
