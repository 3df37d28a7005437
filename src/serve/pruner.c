/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The server's pruner: a thread that runs store_prune() over every
 * workspace when the server starts and then every --prune-interval
 * (docs/retention.md). What it removed goes to the server's log in one
 * line; an error too, and the next pass tries again.
 */
#define _GNU_SOURCE
#include "serve/internal.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include "base/clock.h"

static void *pruner_main(void *arg)
{
	struct server *sv = arg;
	pthread_mutex_lock(&sv->prune_mu);
	while (!sv->prune_stop) {
		pthread_mutex_unlock(&sv->prune_mu);
		struct prune_opts o = { .blob_grace_ms = -1 };
		struct prune_report rep;
		struct cdn_err err = { 0 };
		int r = store_prune(sv->s, &o, &rep, &err);
		uint64_t n = rep.runs[RETAIN_RECORDS] + rep.runs[RETAIN_FILES] +
			     rep.runs[RETAIN_ARTIFACTS] + rep.runs[RETAIN_EVIDENCE];
		if (n || rep.blobs)
			fprintf(stderr,
				"cordon serve: pruned %" PRIu64 " records, files of %" PRIu64
				" runs, artifacts of %" PRIu64 " runs (%" PRIu64
				" blobs), evidence of %" PRIu64 " runs: %" PRIu64 " bytes\n",
				rep.runs[RETAIN_RECORDS], rep.runs[RETAIN_FILES],
				rep.runs[RETAIN_ARTIFACTS], rep.blobs, rep.runs[RETAIN_EVIDENCE],
				rep.bytes);
		if (r < 0)
			fprintf(stderr, "cordon serve: prune: %s\n", err.msg);
		pthread_mutex_lock(&sv->prune_mu);
		struct timespec until = cdn_wall_after((uint64_t)sv->cfg.prune_interval_s * 1000);
		while (!sv->prune_stop &&
		       pthread_cond_timedwait(&sv->prune_cv, &sv->prune_mu, &until) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&sv->prune_mu);
	return NULL;
}

int pruner_start(struct server *sv)
{
	if (!sv->cfg.prune_interval_s)
		return 0;
	if (pthread_create(&sv->pruner, NULL, pruner_main, sv) != 0)
		return -EAGAIN;
	sv->pruner_started = true;
	return 0;
}

void pruner_stop(struct server *sv)
{
	if (sv->pruner_started) {
		pthread_mutex_lock(&sv->prune_mu);
		sv->prune_stop = true;
		pthread_cond_signal(&sv->prune_cv);
		pthread_mutex_unlock(&sv->prune_mu);
		pthread_join(sv->pruner, NULL);
		sv->pruner_started = false;
	}
}
