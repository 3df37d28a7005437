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

#include "base/units.h"
#include "cli/cli.h"
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
	      "Options:\n"
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
	      "      --metrics-listen ADDR:PORT  serve GET /metrics (Prometheus) on this TCP\n"
	      "                             address: runs by final status, lease renewals,\n"
	      "                             runs claimed and running (no workspace names)\n"
	      "      --json                 print events (claimed, finished, lost, expired,\n"
	      "                             draining, stopped) as JSON lines\n"
	      "  -h, --help                 show this help\n",
	      out);
}

static int uint_arg(const char *flag, const char *v, uint64_t lo, uint64_t hi, unsigned *out)
{
	uint64_t x;
	struct cdn_err err = { 0 };
	if (cdn_parse_uint(v, hi, &x, &err) < 0 || x < lo) {
		cli_error("--%s: '%s' is not a number from %llu to %llu", flag, v,
			  (unsigned long long)lo, (unsigned long long)hi);
		return -1;
	}
	*out = (unsigned)x;
	return 0;
}

int cmd_worker(int argc, char **argv)
{
	enum { O_DATABASE = 256, O_STATE, O_CONCURRENCY, O_LABEL, O_LEASE, O_DRAIN, O_HOSTS,
	       O_PRIVATE, O_CA, O_JSON, O_METRICS, O_WARM, O_BLOBS };
	static const struct option opts[] = {
		{ "database", required_argument, NULL, O_DATABASE },
		{ "state", required_argument, NULL, O_STATE },
		{ "blobs", required_argument, NULL, O_BLOBS },
		{ "concurrency", required_argument, NULL, O_CONCURRENCY },
		{ "label", required_argument, NULL, O_LABEL },
		{ "lease", required_argument, NULL, O_LEASE },
		{ "drain-timeout", required_argument, NULL, O_DRAIN },
		{ "hosts", required_argument, NULL, O_HOSTS },
		{ "allow-private", required_argument, NULL, O_PRIVATE },
		{ "upstream-ca", required_argument, NULL, O_CA },
		{ "json", no_argument, NULL, O_JSON },
		{ "metrics-listen", required_argument, NULL, O_METRICS },
		{ "warm-pool", required_argument, NULL, O_WARM },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	struct worker_config cfg = { .concurrency = cpus > 0 ? (unsigned)cpus : 1,
				     .lease_s = 30,
				     .drain_timeout_s = 30,
				     .warm_pool = SERVE_DEFAULT_WARM_POOL };
	const char *database = NULL, *blobs = NULL;
	struct cdn_err err = { 0 };
	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_DATABASE:
			database = optarg;
			break;
		case O_STATE:
			cfg.state_dir = optarg;
			break;
		case O_BLOBS:
			blobs = optarg;
			break;
		case O_CONCURRENCY:
			if (uint_arg("concurrency", optarg, 1, 1024, &cfg.concurrency) < 0)
				return EXIT_CORDON;
			break;
		case O_LABEL:
			if (store_labels_add(cfg.labels, optarg, &err) < 0) {
				cli_error("--label: %s", err.msg);
				return EXIT_CORDON;
			}
			break;
		case O_LEASE:
			if (uint_arg("lease", optarg, 2, 3600, &cfg.lease_s) < 0)
				return EXIT_CORDON;
			break;
		case O_WARM:
			if (uint_arg("warm-pool", optarg, 0, 256, &cfg.warm_pool) < 0)
				return EXIT_CORDON;
			break;
		case O_DRAIN:
			if (uint_arg("drain-timeout", optarg, 0, 86400, &cfg.drain_timeout_s) < 0)
				return EXIT_CORDON;
			break;
		case O_HOSTS:
			cfg.hosts_file = optarg;
			break;
		case O_PRIVATE:
			if (cfg.n_allow_private == SERVE_MAX_PRIVATE) {
				cli_error("--allow-private: at most %d", SERVE_MAX_PRIVATE);
				return EXIT_CORDON;
			}
			cfg.allow_private[cfg.n_allow_private++] = optarg;
			break;
		case O_CA:
			cfg.upstream_ca = optarg;
			break;
		case O_JSON:
			cfg.json = true;
			break;
		case O_METRICS:
			cfg.metrics_listen = optarg;
			break;
		case 'h':
			worker_usage(stdout);
			return 0;
		default:
			worker_usage(stderr);
			return EXIT_CORDON;
		}
	}
	if (optind != argc) {
		worker_usage(stderr);
		return EXIT_CORDON;
	}
	if (!cfg.hosts_file && getenv("CORDON_HOSTS_FILE") && *getenv("CORDON_HOSTS_FILE"))
		cfg.hosts_file = getenv("CORDON_HOSTS_FILE");
	/* Through the environment, the one place the store reads it from: the
	 * runs it starts inherit it and record into the same database. */
	if (database && setenv("CORDON_DATABASE_URL", database, 1) < 0) {
		cli_error("--database: %s", strerror(errno));
		return EXIT_CORDON;
	}
	if (blobs && setenv("CORDON_BLOBS", blobs, 1) < 0) {
		cli_error("--blobs: %s", strerror(errno));
		return EXIT_CORDON;
	}
	if (worker_main(&cfg, &err) < 0) {
		cli_error("worker: %s", err.msg);
		return EXIT_CORDON;
	}
	return 0;
}
