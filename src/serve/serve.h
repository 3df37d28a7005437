/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cordon serve: the HTTP API (libmicrohttpd, a thread per connection), a
 * dispatcher with a bounded queue that runs each run as its own
 * `cordon run --claim` process, a health endpoint on a unix socket, and
 * the dashboard's assets. docs/api.md is the contract.
 */
#ifndef CORDON_SERVE_H
#define CORDON_SERVE_H

#include <stdbool.h>
#include <stddef.h>

#include "base/err.h"

#define SERVE_MAX_PRIVATE 16
#define SERVE_MAX_TRUSTED_PROXIES 8

struct serve_config {
	const char *state_dir;	 /* NULL: store_default_dir() */
	const char *listen;	 /* "ADDR:PORT"; default 127.0.0.1:8470 */
	unsigned concurrency;	 /* runs at once; 0: 2 x CPUs */
	unsigned queue;		 /* runs waiting; 0: 64 */
	unsigned drain_timeout_s; /* on SIGTERM; 0: 30 */
	const char *hosts_file;	 /* passed to each run */
	const char *upstream_ca;
	const char *allow_private[SERVE_MAX_PRIVATE];
	size_t n_allow_private;
	const char *run_exe;	 /* the cordon that runs runs; NULL: this one */
	/* Registering by a path on the server is allowed only below this
	 * directory; NULL: off, bundles are uploaded instead. */
	const char *register_root;
	unsigned max_streams_per_key; /* live event and output streams per API key; 0: 16 */
	unsigned max_uploads;	      /* bundle uploads in progress, server-wide; 0: 4 */
	/* Reverse proxies (their addresses) whose X-Forwarded-For is believed. */
	const char *trusted_proxies[SERVE_MAX_TRUSTED_PROXIES];
	size_t n_trusted_proxies;
	/* The run queue: runs of one workspace waiting at most, and running at
	 * most; 0: a quarter of --queue (at least 1), and --concurrency. */
	unsigned workspace_queue;
	unsigned workspace_concurrency;
	/* Pruning by retention age (docs/retention.md): at start and then
	 * every this many seconds; 0: never. */
	unsigned prune_interval_s;
	/* /metrics on a TCP listener of its own ("ADDR:PORT"); NULL: off, and
	 * /metrics is only on STATE/serve.sock. With a token file, a scrape
	 * needs "Authorization: Bearer TOKEN" and gets the per-workspace
	 * series; without, it gets server-wide ones only (docs/metrics.md). */
	const char *metrics_listen;
	const char *metrics_token_file;
};

/* The API's route table (the one serve dispatches by, and authorizes by):
 * route i's method, path ("/v1/runs/{id}") and least role ("owner" or
 * "member"). False past the last. */
bool serve_route_at(size_t i, const char **method, const char **path, const char **role);

/* Serves until SIGTERM or SIGINT, then drains. 0 after a clean drain. */
int serve_main(const struct serve_config *cfg, struct cdn_err *err);

#endif
