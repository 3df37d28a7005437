/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The warm pool: `cordon run --standby` processes started ahead of their
 * runs. Each has loaded its libraries, opened the store and the vault,
 * and made a warm sandbox (docs/exec.md, "Warm sandboxes"), and waits on a
 * pipe for one line, "ID WORKSPACE AGENT", the run to claim. The
 * dispatcher hands a run to a standby instead of starting a process, and
 * starts another to take its place. A standby is used once, and exits
 * when its pipe closes unused (drain, stop). --warm-pool 0: every run
 * starts cold.
 */
#define _GNU_SOURCE
#include "serve/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"

static void forget(struct server *sv, struct standby **pp)
{
	struct standby *s = *pp;
	*pp = s->next;
	if (s->fd >= 0)
		close(s->fd);
	free(s);
	sv->n_pool--;
}

bool pool_claim(struct server *sv, struct job *j)
{
	char line[STORE_RUN_ID_MAX + STORE_MAX_NAME + 256];
	int n = snprintf(line, sizeof(line), "%s %s %s\n", j->id, j->ws, j->ref);
	if (n < 0 || (size_t)n >= sizeof(line) || strchr(j->ref, ' ') || strchr(j->ref, '\n'))
		return false;
	for (struct standby **pp = &sv->pool; *pp;) {
		struct standby *s = *pp;
		if (s->fd < 0) {
			pp = &s->next;
			continue;
		}
		/* A line this short is written whole or not at all (PIPE_BUF);
		 * EPIPE: the standby is gone, reap() forgets it. */
		ssize_t w;
		do
			w = write(s->fd, line, (size_t)n);
		while (w < 0 && errno == EINTR);
		close(s->fd);
		s->fd = -1;
		if (w == n) {
			/* From now on it is this job's process. */
			j->pid = s->pid;
			forget(sv, pp);
			sv->dispatched[1]++;
			sv->pool_backoff_ms = 0;
			return true;
		}
		pp = &s->next;
	}
	return false;
}

/* One standby, started without the lock. */
static struct standby *start_one(struct server *sv)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return NULL;
	struct standby *s = calloc(1, sizeof(*s));
	int r = s ? dispatch_spawn_standby(sv, p[0], &s->pid) : -ENOMEM;
	close(p[0]);
	if (r < 0) {
		fprintf(stderr, "cordon serve: warm pool: cannot start %s: %s\n", sv->exe,
			strerror(-r));
		close(p[1]);
		free(s);
		return NULL;
	}
	s->fd = p[1];
	return s;
}

bool pool_fill(struct server *sv)
{
	unsigned live = 0;
	for (struct standby *s = sv->pool; s; s = s->next)
		live += s->fd >= 0;
	if (live >= sv->pool_max || cdn_mono_ns() < sv->pool_next_ns)
		return false;
	/* Starting processes takes a while: requests and the queue go on
	 * meanwhile. The lock is only for the list. */
	unsigned want = sv->pool_max - live;
	struct standby *made = NULL;
	pthread_mutex_unlock(&sv->mu);
	for (unsigned i = 0; i < want; i++) {
		struct standby *s = start_one(sv);
		if (!s)
			break; /* runs start cold until the next try */
		s->next = made;
		made = s;
	}
	pthread_mutex_lock(&sv->mu);
	if (!made)
		return false;
	while (made) {
		struct standby *s = made;
		made = s->next;
		if (sv->draining || sv->stop) {
			/* Closed at once: it exits unused, and is reaped. */
			close(s->fd);
			s->fd = -1;
		}
		s->next = sv->pool;
		sv->pool = s;
		sv->n_pool++;
	}
	return true;
}

bool pool_reaped(struct server *sv, pid_t pid)
{
	for (struct standby **pp = &sv->pool; *pp; pp = &(*pp)->next)
		if ((*pp)->pid == pid) {
			if ((*pp)->fd >= 0) {
				/* It exited before it was given a run or told to go: it
				 * cannot make a warm sandbox here. Runs start cold; the
				 * pool is tried again later and later, up to a minute. */
				sv->pool_backoff_ms = sv->pool_backoff_ms ? sv->pool_backoff_ms * 2 : 1000;
				if (sv->pool_backoff_ms > 60000)
					sv->pool_backoff_ms = 60000;
				sv->pool_next_ns = cdn_mono_ns() + sv->pool_backoff_ms * 1000000ull;
				fprintf(stderr,
					"cordon serve: warm pool: a standby (pid %d) exited before it "
					"had a run; runs start cold, the pool is tried again in %us\n",
					(int)pid, sv->pool_backoff_ms / 1000);
			}
			forget(sv, pp);
			return true;
		}
	return false;
}

void pool_close(struct server *sv)
{
	for (struct standby *s = sv->pool; s; s = s->next)
		if (s->fd >= 0) {
			close(s->fd);
			s->fd = -1;
		}
}

void pool_counts(struct server *sv, unsigned *waiting, uint64_t dispatched[2])
{
	pthread_mutex_lock(&sv->mu);
	unsigned n = 0;
	for (struct standby *s = sv->pool; s; s = s->next)
		n += s->fd >= 0;
	*waiting = n;
	dispatched[0] = sv->dispatched[0];
	dispatched[1] = sv->dispatched[1];
	pthread_mutex_unlock(&sv->mu);
}
