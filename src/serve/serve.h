/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cordon serve: the HTTP API (libmicrohttpd, a thread per connection), a
 * dispatcher with a bounded queue that runs each run as its own
 * `cordon run --claim` process, a health endpoint on a unix socket, and
 * the dashboard's assets. docs/api.md is the contract.
 */
#ifndef CORDON_SERVE_H
#define CORDON_SERVE_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>

#include "base/err.h"
#include "store/store.h"

#define SERVE_MAX_PRIVATE 16
#define SERVE_MAX_TRUSTED_PROXIES 8
#define SERVE_MAX_CONFIG_BYTES (64 * 1024) /* the config file (docs/config.md) */

#define SERVE_DEFAULT_WARM_POOL 2

struct serve_config {
	const char *state_dir;	 /* NULL: store_default_dir() */
	const char *listen;	 /* "ADDR:PORT"; default 127.0.0.1:8470 */
	unsigned concurrency;	 /* runs at once; 0: 2 x CPUs */
	/* Standbys kept ready (cordon run --standby, each with a warm
	 * sandbox); 0: every run starts cold. cmd_serve's default: 2. */
	unsigned warm_pool;
	unsigned queue;		 /* runs waiting; 0: 64 */
	unsigned drain_timeout_s; /* on SIGTERM; 0: 30 */
	const char *hosts_file;	 /* passed to each run */
	const char *upstream_ca;
	/* The registries dependency builds use (docs/deps.md): set in the
	 * environment of the runs, which build a missing layer. NULL: the
	 * public ones. */
	const char *npm_registry;
	const char *python_index;
	const char *allow_private[SERVE_MAX_PRIVATE];
	size_t n_allow_private;
	/* Agent-to-agent calls, passed to each run (cordon run
	 * --max-call-depth, --max-calls); 0: the run's defaults. */
	unsigned max_call_depth;
	unsigned max_calls;
	const char *run_exe;	 /* the cordon that runs runs; NULL: this one */
	/* Registering by a path on the server is allowed only below this
	 * directory; NULL: off, bundles are uploaded instead. */
	const char *register_root;
	unsigned max_streams_per_key; /* live event and output streams per API key; 0: 16 */
	unsigned max_uploads;	      /* bundle uploads in progress, server-wide; 0: 4 */
	/* Reverse proxies (their addresses) whose X-Forwarded-For is believed. */
	const char *trusted_proxies[SERVE_MAX_TRUSTED_PROXIES];
	size_t n_trusted_proxies;
	char trusted_proxy_text[SERVE_MAX_TRUSTED_PROXIES][INET6_ADDRSTRLEN]; /* their canonical form */
	/* The run queue: runs of one workspace waiting at most, and running at
	 * most; 0: a quarter of --queue (at least 1), and --concurrency. */
	unsigned workspace_queue;
	unsigned workspace_concurrency;
	/* Pruning by retention age (docs/retention.md): at start and then
	 * every this many seconds; 0: never. */
	unsigned prune_interval_s;
	/* The metadata's database (a postgresql:// URL), handed to the store
	 * and the runs through CORDON_DATABASE_URL; NULL: that variable, or
	 * SQLite. */
	const char *database;
	/* The blob store's S3 location (s3://BUCKET/PREFIX), handed to the
	 * store and the runs through CORDON_BLOBS; NULL: that variable, or
	 * the state directory only. */
	const char *blobs;
	/* Where each run's evidence pack goes when it ends: a directory
	 * (file:///PATH or /PATH) or s3://BUCKET/PREFIX; NULL: nowhere. */
	const char *evidence_sink;
	/* /metrics on a TCP listener of its own ("ADDR:PORT"); NULL: off, and
	 * /metrics is only on STATE/serve.sock. With a token file, a scrape
	 * needs "Authorization: Bearer TOKEN" and gets the per-workspace
	 * series; without, it gets server-wide ones only (docs/metrics.md). */
	const char *metrics_listen;
	/* Services (docs/services.md): the first restart's delay, doubled for
	 * each end in the window up to backoff_max, with jitter; exits ends
	 * within window_ms pause it; a stop waits stop_ms before the kill.
	 * 0: 1 s, 5 min, 5, 10 min, 10 s. */
	unsigned service_backoff_ms, service_backoff_max_ms, crash_loop_exits,
	    crash_loop_window_ms, service_stop_ms;
	const char *metrics_token_file;
	/* --dispatch workers: the API only queues runs in the database, and
	 * cordon worker processes (any host, same database) take and run
	 * them; this server expires the leases of workers that died. false
	 * (embedded, the default): this server runs every run itself. */
	bool dispatch_workers;
	/* cordon worker's own (the file's worker section; the flags of
	 * cordon worker): see struct worker_config. */
	unsigned worker_concurrency, worker_lease_s, worker_drain_timeout_s, worker_warm_pool;
	char worker_labels[STORE_LABELS_JSON_MAX + 1];
	const char *worker_metrics_listen;
};

/* The API's route table (the one serve dispatches by, and authorizes by):
 * route i's method, path ("/v1/runs/{id}") and least role ("owner" or
 * "member"). False past the last. */
bool serve_route_at(size_t i, const char **method, const char **path, const char **role);

/*
 * cordon serve's settings, each both a command-line flag and a key of the
 * config file (docs/config.md): one table (config.c) says the flag, the key,
 * the type and the bound, so the two cannot drift apart.
 */
#define SERVE_SCOPE_SERVE 1u  /* a flag of cordon serve */
#define SERVE_SCOPE_WORKER 2u /* a flag of cordon worker */
struct serve_option {
	const char *flag;    /* "drain-timeout": --drain-timeout */
	const char *section; /* "serve", "egress", "worker", or NULL: the file's top level */
	const char *key;     /* "drain_timeout" */
	bool list;	     /* repeatable flag; a list in the file */
	const char *arg;     /* "SECS": for help and errors */
	unsigned scope;	     /* SERVE_SCOPE_* bits: whose flag it is */
};

/* Option i of the table; NULL past the last. */
const struct serve_option *serve_option_at(size_t i);
/* Sets option i from text (a flag's argument or a file's scalar), checking
 * it; a list option appends. value must live as long as cfg. */
int serve_option_set(struct serve_config *cfg, size_t i, const char *value, struct cdn_err *err);
/* Empties list option i (a flag given on the command line replaces the
 * file's list, as every flag overrides the file's value). */
void serve_option_clear(struct serve_config *cfg, size_t i);
/* Option i from a command-line flag: as serve_option_set, but the first
 * flag of a list option replaces the file's list and the others add to
 * it (seen[i] says whether the flag came already). */
int serve_option_flag(struct serve_config *cfg, size_t i, bool *seen, const char *value,
		      struct cdn_err *err);

/* A config file, loaded: its values point into it. */
struct serve_config_file;
/*
 * Reads the YAML config at path into cfg: every key known (an unknown one
 * is an error naming it and its line), every value checked as its flag's
 * would be. The file must be a regular file that only root or this user can
 * change: it decides what the service opens to its runs. *out is freed
 * with serve_config_file_free() after cfg is no longer used.
 */
int serve_config_load(const char *path, struct serve_config *cfg, struct serve_config_file **out,
		      struct cdn_err *err);
/* The same, from text already read; src names it in errors. */
int serve_config_parse(const char *yaml, size_t len, const char *src, struct serve_config *cfg,
		       struct serve_config_file **out, struct cdn_err *err);
void serve_config_file_free(struct serve_config_file *f);

/* cordon worker's settings (docs/deploy.md). */
struct worker_config {
	const char *state_dir;	   /* NULL: store_default_dir() */
	unsigned concurrency;	   /* runs at once, at least 1 */
	unsigned lease_s;	   /* a lease's length; renewed every third of it */
	unsigned drain_timeout_s;  /* on SIGTERM, before its runs are stopped */
	unsigned warm_pool;	   /* standbys kept ready, as serve's --warm-pool */
	char labels[STORE_LABELS_JSON_MAX + 1]; /* canonical (store_labels_parse), "" for none */
	bool json;		   /* events as JSON lines */
	const char *hosts_file;	   /* passed to each run, as serve's */
	const char *upstream_ca;
	const char *allow_private[SERVE_MAX_PRIVATE];
	size_t n_allow_private;
	unsigned max_call_depth;   /* passed to each run, as serve's; 0: the default */
	unsigned max_calls;
	const char *run_exe;	   /* the cordon that runs runs; NULL: cordon-full */
	/* GET /metrics on this TCP address ("ADDR:PORT"); NULL: off. Its
	 * series name no workspace, so it needs no token. */
	const char *metrics_listen;
};

/* Claims and runs queued runs until SIGTERM or SIGINT, then lets its runs
 * finish (up to the drain timeout) and returns 0. */
int worker_main(const struct worker_config *cfg, struct cdn_err *err);

/* Serves until SIGTERM or SIGINT, then drains. 0 after a clean drain. */
int serve_main(const struct serve_config *cfg, struct cdn_err *err);

/* An evidence sink's setting as a directory (file:///PATH or /PATH) into
 * dir, or an S3 location (s3://BUCKET/PREFIX, dir ""), or why it is
 * neither (sink.c). */
int sink_check(const char *url, char *dir, size_t cap, struct cdn_err *err);

#endif
