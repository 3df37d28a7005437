/* SPDX-License-Identifier: Apache-2.0 */
/* cordon worker: claims queued runs from a shared database and runs them
 * (src/serve/worker.c, docs/deploy.md). */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "cli/cli.h"
#include "run/deps.h"
#include "serve/serve.h"
#include "store/store.h"

static void worker_usage(FILE *out)
{
	fputs("Usage: cordon worker --database URL [OPTIONS]\n"
	      "\n"
	      "Take queued runs from the database that cordon serve --dispatch workers\n"
	      "queues them in, and run each on this host, as cordon run --claim, under the\n"
	      "same sandbox and egress engine as serve's own runs. A run is taken under a\n"
	      "lease the worker renews every third of --lease; a run whose worker stops\n"
	      "renewing (it died, or lost the database) is marked lost once its lease\n"
	      "expires, by any worker or serve, and never run again silently: only an agent\n"
	      "whose agent.json has \"retry\": {\"on_lost\": true, \"max\": N} gets a new\n"
	      "attempt, a record of its own. A worker takes only runs whose labels (the\n"
	      "agent's \"labels\", or the request's) are all among its --label ones. On\n"
	      "Postgres it is woken by LISTEN/NOTIFY when a run is queued; it also polls.\n"
	      "SIGTERM or SIGINT: claim nothing more, let the runs finish (up to\n"
	      "--drain-timeout, then stop them), exit 0. Run files (events, output,\n"
	      "artifacts) are written to this host's state directory and, with --blobs,\n"
	      "uploaded to S3 when the run ends; blobs this host lacks come from there.\n"
	      "\n"
	      "Options (each also a key of the config file: database, state, blobs,\n"
	      "egress.*, and worker.* for the worker's own; docs/config.md):\n"
	      "      --config FILE          read the settings from this YAML file (default\n"
	      "                             $CORDON_CONFIG); options given here override it\n"
	      "      --database URL         the shared database: postgresql://USER@HOST/DB\n"
	      "                             (default $CORDON_DATABASE_URL; unset: SQLite in\n"
	      "                             the state directory, for workers on one host).\n"
	      "                             Give a password in the variable or in ~/.pgpass\n"
	      "      --state DIR            state directory: blobs, run files, the vault's\n"
	      "                             key (default $CORDON_STATE)\n"
	      "      --blobs s3://BUCKET/PREFIX  the shared blob store: blobs and finished\n"
	      "                             runs' files (default $CORDON_BLOBS; unset: the\n"
	      "                             state directory only, for workers on one host)\n"
	      "      --concurrency N        runs at once (default: the CPUs)\n"
	      "      --warm-pool N          runs' processes kept started ahead, each with a\n"
	      "                             warm sandbox, so a claimed run skips that part of\n"
	      "                             its start (default 2; 0: every run starts cold)\n"
	      "      --label KEY=VALUE      a label of this worker (repeatable)\n"
	      "      --lease SECS           a lease's length (default 30, 2 to 3600)\n"
	      "      --drain-timeout SECS   how long runs get on SIGTERM (default 30)\n"
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
	      "      --metrics-listen ADDR:PORT  serve GET /metrics (Prometheus) on this TCP\n"
	      "                             address: runs by final status, lease renewals,\n"
	      "                             runs claimed and running (no workspace names)\n"
	      "      --json                 print events (claimed, finished, lost, expired,\n"
	      "                             draining, stopped) as JSON lines\n"
	      "  -h, --help                 show this help\n",
	      out);
}

int cmd_worker(int argc, char **argv)
{
	enum { O_CONFIG = 256, O_JSON, O_SETTING = 512 };
	/* The settings' flags come from the table they share with the config
	 * file and cordon serve (src/serve/config.c): the worker's own. */
	struct option opts[64] = {
		{ "config", required_argument, NULL, O_CONFIG },
		{ "json", no_argument, NULL, O_JSON },
		{ "help", no_argument, NULL, 'h' },
	};
	size_t n_opts = 3;
	const struct serve_option *so;
	for (size_t i = 0; (so = serve_option_at(i)) && n_opts + 1 < CDN_ARRAY_SIZE(opts); i++)
		if (so->scope & SERVE_SCOPE_WORKER)
			opts[n_opts++] = (struct option){ so->flag, required_argument, NULL,
							  O_SETTING + (int)i };
	const char *config = getenv("CORDON_CONFIG");
	if (config && !*config)
		config = NULL;
	/* --config (and --help) first, so that the flags override the file. */
	int c;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == O_CONFIG) {
			config = optarg;
		} else if (c == 'h') {
			worker_usage(stdout);
			return 0;
		}
	}
	opterr = 1;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	struct serve_config sc = { .worker_concurrency = cpus > 0 ? (unsigned)cpus : 1,
				   .worker_lease_s = 30,
				   .worker_drain_timeout_s = 30,
				   .worker_warm_pool = SERVE_DEFAULT_WARM_POOL };
	struct serve_config_file *file = NULL;
	struct cdn_err err = { 0 };
	if (config && serve_config_load(config, &sc, &file, &err) < 0) {
		cli_error("worker: %s", err.msg);
		return EXIT_CORDON;
	}
	bool from_flag[64] = { false }, json = false, bad = false;
	optind = 0;
	while (!bad && (c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		size_t i = (size_t)(c - O_SETTING);
		if (c == O_CONFIG) {
			continue;
		} else if (c == O_JSON) {
			json = true;
		} else if (c >= O_SETTING && (so = serve_option_at(i))) {
			if (serve_option_flag(&sc, i, from_flag, optarg, &err) < 0) {
				cli_error("--%s: %s", so->flag, err.msg);
				serve_config_file_free(file);
				return EXIT_CORDON;
			}
		} else {
			bad = true;
		}
	}
	int rc = EXIT_CORDON;
	if (bad || optind != argc) {
		worker_usage(stderr);
		goto out;
	}
	if (sc.worker_lease_s < 2) {
		cli_error("--lease: '%u' is not a number from 2 to 3600", sc.worker_lease_s);
		goto out;
	}
	struct worker_config cfg = {
		.state_dir = sc.state_dir,
		.concurrency = sc.worker_concurrency,
		.lease_s = sc.worker_lease_s,
		.drain_timeout_s = sc.worker_drain_timeout_s,
		.warm_pool = sc.worker_warm_pool,
		.json = json,
		.hosts_file = sc.hosts_file,
		.upstream_ca = sc.upstream_ca,
		.n_allow_private = sc.n_allow_private,
		.max_call_depth = sc.max_call_depth,
		.max_calls = sc.max_calls,
		.metrics_listen = sc.worker_metrics_listen,
	};
	snprintf(cfg.labels, sizeof(cfg.labels), "%s", sc.worker_labels);
	for (size_t i = 0; i < sc.n_allow_private; i++)
		cfg.allow_private[i] = sc.allow_private[i];
	if (!cfg.hosts_file && getenv("CORDON_HOSTS_FILE") && *getenv("CORDON_HOSTS_FILE"))
		cfg.hosts_file = getenv("CORDON_HOSTS_FILE");
	/* Through the environment, the one place the store reads them from:
	 * the runs it starts inherit them and record into the same database
	 * and bucket. */
	if (sc.database && setenv("CORDON_DATABASE_URL", sc.database, 1) < 0) {
		cli_error("--database: %s", strerror(errno));
		goto out;
	}
	if (sc.blobs && setenv("CORDON_BLOBS", sc.blobs, 1) < 0) {
		cli_error("--blobs: %s", strerror(errno));
		goto out;
	}
	if ((sc.npm_registry && deps_registry_setenv(DEPS_ENV_NPM, sc.npm_registry, &err) < 0) ||
	    (sc.python_index && deps_registry_setenv(DEPS_ENV_PYTHON, sc.python_index, &err) < 0)) {
		cli_error("worker: %s", err.msg);
		goto out;
	}
	if (worker_main(&cfg, &err) < 0) {
		cli_error("worker: %s", err.msg);
		goto out;
	}
	rc = 0;
out:
	serve_config_file_free(file);
	return rc;
}
