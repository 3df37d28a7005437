/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to src/serve/: the warm pool (pool.c), kept by serve's
 * dispatcher and by cordon worker. Not thread-safe: the owner serializes
 * (serve holds its dispatcher's lock, except around warm_pool_start).
 */
#ifndef CORDON_SERVE_POOL_H
#define CORDON_SERVE_POOL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "serve/runproc.h"

/* A `cordon run --standby`: its pid, and the write end of its standard
 * input (-1 once closed: it exits, then is reaped). */
struct standby {
	pid_t pid;
	int fd;
	uint64_t closed_ns; /* when its pipe was closed unused (cdn_mono_ns); 0: not */
	struct standby *next;
};

struct warm_pool {
	struct runproc proc; /* how its standbys start */
	const char *who;     /* "cordon serve", "cordon worker": for messages */
	unsigned max;	     /* standbys to keep waiting; 0: none */
	struct standby *list;
	unsigned n;		  /* standbys not reaped yet, waiting or closed */
	unsigned backoff_ms;	  /* after a standby died unused: wait before the next */
	uint64_t next_ns;	  /* cdn_mono_ns() before which none starts */
	uint64_t dispatched[2];	  /* runs handed to a new process [0], a standby [1] */
};

/* Hands run id (of ws, agent ref, under lease when not NULL) to a waiting
 * standby: true with *pid, its process now the run's. */
bool warm_pool_claim(struct warm_pool *p, const char *ws, const char *id, const char *ref,
		     const char *lease, pid_t *pid);
/* How many standbys to start now: 0 when full, or backing off. */
unsigned warm_pool_want(const struct warm_pool *p);
/* Starts up to n standbys (reads only p->proc and p->who: safe without the
 * owner's lock); the list of those started, for warm_pool_add; *failed
 * when one could not be started. */
struct standby *warm_pool_start(const struct warm_pool *p, unsigned n, bool *failed);
/* Adds what warm_pool_start made; closing: close them at once (drain);
 * failed: one could not be started, so none is tried for a while (1 s,
 * doubling up to a minute). */
void warm_pool_add(struct warm_pool *p, struct standby *made, bool closing, bool failed);
/* A child exited: false when it was not a standby. */
bool warm_pool_reaped(struct warm_pool *p, pid_t pid);
/* Closes every waiting standby's pipe (it exits, and is reaped: n counts
 * it until then), and kills one closed more than 2 s ago that is still
 * there (stopped, stuck: it holds nothing of a run, and its sandbox dies
 * with it). Called again and again while the owner drains. */
void warm_pool_close(struct warm_pool *p);
/* Standbys waiting for a run. */
unsigned warm_pool_waiting(const struct warm_pool *p);

#endif
