/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Supervising a running sandbox from an event loop: everything else the
 * run needs (the egress engine, output capture) lives on the same
 * libevent base and is served while the sandbox runs.
 */
#ifndef CORDON_RUN_SUPERVISE_H
#define CORDON_RUN_SUPERVISE_H

#include <stddef.h>

#include "base/err.h"
#include "sandbox/sandbox.h"

struct event_base;

struct supervise_opts {
	struct event_base *base;
	struct sandbox *sb;
	/* Pipes to copy from (the sandbox holds the write ends) into fds. */
	struct sandbox_relay *relays;
	size_t n_relays;
	/* SIGHUP: called instead of being forwarded (policy reload). */
	void (*on_sighup)(void *ctx);
	void *ctx;
};

/*
 * Runs the loop until the sandbox has finished, enforcing its timeout and
 * forwarding SIGINT, SIGTERM, SIGQUIT, SIGUSR1, SIGUSR2 and SIGWINCH to it.
 * Then copies what is left in the relays. Same return as sandbox_wait().
 */
int run_supervise(const struct supervise_opts *o, struct sandbox_status *st, struct cdn_err *err);

#endif
