/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A run's health check (docs/services.md): the manifest's "health", probed
 * from the host side inside the sandbox's own network namespace, by a
 * confined child per probe (health.c).
 */
#ifndef CORDON_RUN_HEALTH_H
#define CORDON_RUN_HEALTH_H

#include <stdbool.h>
#include <sys/types.h>

#include "base/err.h"
#include "registry/manifest.h"

struct event_base;
struct run_health;

/* After each failed probe (ok false: why, how many in a row; last when
 * that is the manifest's failures, and no probe follows) and after the
 * first good one that follows failures (ok true). */
typedef void (*run_health_cb)(void *ctx, bool ok, const char *why, unsigned in_a_row,
			      bool last);

/* Starts probing on base every m->health.interval_s (once armed); *out stays NULL when
 * the manifest has no health check. sb_pidfd: the sandbox's pidfd
 * (sandbox_event_fd); supervisor: this process, whose helper ids the
 * probe takes as root. */
int run_health_start(struct event_base *base, int sb_pidfd, pid_t supervisor,
		     unsigned allow_degraded, const struct agent_manifest *m, bool armed,
		     run_health_cb cb, void *ctx, struct run_health **out, struct cdn_err *err);
/* Probing begins (an interval from now): for a run with a setup phase, when
 * that phase ends, so that a slow setup is not taken for a dead server. */
void run_health_arm(struct run_health *h);
void run_health_free(struct run_health *h);

#endif
