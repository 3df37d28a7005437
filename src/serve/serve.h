/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cordon serve: the HTTP API (libmicrohttpd, a thread per connection), a
 * dispatcher with a bounded queue that runs each run as its own
 * `cordon run --claim` process, a health endpoint on a unix socket, and
 * the dashboard's assets. docs/api.md is the contract.
 */
#ifndef CORDON_SERVE_H
#define CORDON_SERVE_H

#include <stddef.h>

#include "base/err.h"

#define SERVE_MAX_PRIVATE 16

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
	unsigned max_streams_per_key; /* live event streams per API key; 0: 16 */
};

/* Serves until SIGTERM or SIGINT, then drains. 0 after a clean drain. */
int serve_main(const struct serve_config *cfg, struct cdn_err *err);

#endif
