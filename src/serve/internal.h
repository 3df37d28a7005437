/* SPDX-License-Identifier: Apache-2.0 */
/* Shared between the server's files; not an API. */
#ifndef CORDON_SERVE_INTERNAL_H
#define CORDON_SERVE_INTERNAL_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#include "serve/serve.h"
#include "store/store.h"
#include "vault/vault.h"

struct job {
	char id[STORE_RUN_ID_MAX + 1];
	char ws[STORE_MAX_NAME + 1];
	char *ref;
	pid_t pid;
	bool cancel;
	char cancel_why[160];
	struct job *next;
};

/* Live event streams of one key. */
struct key_streams {
	char key_id[STORE_MAX_NAME + 1];
	unsigned n;
	struct key_streams *next;
};

struct server {
	struct serve_config cfg;
	struct store *s;
	struct vault *v;
	char state[PATH_MAX];
	char exe[PATH_MAX];
	pid_t self;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct job *queue, *queue_tail;
	unsigned n_queued, queue_max;
	struct job *running;
	unsigned n_running, concurrency;
	bool draining, stop;

	/* The per-client limits of the HTTP side, under their own lock. */
	pthread_mutex_t lim_mu;
	struct key_streams *streams;
	unsigned max_streams_per_key;
};

void *dispatch_main(void *arg);
int dispatch_submit(struct server *sv, const char *id, const char *ws, const char *ref);
bool dispatch_has_room(struct server *sv);
/* 0, or -ENOENT when the run is neither queued nor running here. */
int dispatch_cancel(struct server *sv, const char *id, const char *why);
void dispatch_counts(struct server *sv, unsigned *queued, unsigned *running, bool *draining);
/* Stops taking runs, cancels the queued ones, waits for the running ones
 * up to timeout_s and then stops them; returns when none is left. */
void dispatch_drain(struct server *sv, unsigned timeout_s);

#endif
