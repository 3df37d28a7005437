/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The warm pool: `cordon run --standby` processes started ahead of their
 * runs. Each has loaded its libraries, opened the store and the vault,
 * and made a warm sandbox (docs/exec.md, "Warm sandboxes"), and waits on a
 * pipe for one line, "ID WORKSPACE AGENT [LEASE]", the run to claim. Its
 * owner (serve's dispatcher, cordon worker) hands a run to a standby
 * instead of starting a process, and starts another to take its place. A
 * standby is used once, and exits when its pipe closes unused (drain,
 * stop). A pool of 0: every run starts cold.
 */
#define _GNU_SOURCE
#include "serve/pool.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "store/store.h"

/* None starts for a while: 1 s, doubling up to a minute. */
static void back_off(struct warm_pool *p)
{
	p->backoff_ms = p->backoff_ms ? p->backoff_ms * 2 : 1000;
	if (p->backoff_ms > 60000)
		p->backoff_ms = 60000;
	p->next_ns = cdn_mono_ns() + p->backoff_ms * 1000000ull;
}

static void forget(struct warm_pool *p, struct standby **pp)
{
	struct standby *s = *pp;
	*pp = s->next;
	if (s->fd >= 0)
		close(s->fd);
	free(s);
	p->n--;
}

bool warm_pool_claim(struct warm_pool *p, const char *ws, const char *id, const char *ref,
		     const char *lease, pid_t *pid)
{
	char line[STORE_RUN_ID_MAX + STORE_MAX_NAME + STORE_WORKER_ID_MAX + 256];
	int n = snprintf(line, sizeof(line), "%s %s %s%s%s\n", id, ws, ref, lease ? " " : "",
			 lease ? lease : "");
	if (n < 0 || (size_t)n >= sizeof(line) || strpbrk(ref, " \n") ||
	    (lease && strpbrk(lease, " \n")))
		return false;
	for (struct standby **pp = &p->list; *pp;) {
		struct standby *s = *pp;
		if (s->fd < 0) {
			pp = &s->next;
			continue;
		}
		/* A line this short is written whole or not at all (PIPE_BUF);
		 * EPIPE: the standby is gone, and is forgotten when reaped. */
		ssize_t w;
		do
			w = write(s->fd, line, (size_t)n);
		while (w < 0 && errno == EINTR);
		close(s->fd);
		s->fd = -1;
		s->closed_ns = cdn_mono_ns();
		if (w == n) {
			/* From now on it is this run's process. */
			*pid = s->pid;
			forget(p, pp);
			p->dispatched[1]++;
			p->backoff_ms = 0;
			return true;
		}
		pp = &s->next;
	}
	return false;
}

unsigned warm_pool_want(const struct warm_pool *p)
{
	unsigned live = warm_pool_waiting(p);
	if (live >= p->max || cdn_mono_ns() < p->next_ns)
		return 0;
	return p->max - live;
}

struct standby *warm_pool_start(const struct warm_pool *p, unsigned n, bool *failed)
{
	struct standby *made = NULL;
	*failed = false;
	for (unsigned i = 0; i < n; i++) {
		int fds[2];
		if (pipe2(fds, O_CLOEXEC) < 0)
			break;
		struct standby *s = calloc(1, sizeof(*s));
		int r = s ? runproc_spawn_standby(&p->proc, fds[0], &s->pid) : -ENOMEM;
		close(fds[0]);
		if (r < 0) {
			fprintf(stderr, "%s: warm pool: cannot start %s: %s\n", p->who, p->proc.exe,
				strerror(-r));
			close(fds[1]);
			free(s);
			*failed = true;
			break; /* runs start cold until the next try */
		}
		s->fd = fds[1];
		s->next = made;
		made = s;
	}
	return made;
}

void warm_pool_add(struct warm_pool *p, struct standby *made, bool closing, bool failed)
{
	if (failed)
		back_off(p);
	while (made) {
		struct standby *s = made;
		made = s->next;
		s->next = p->list;
		p->list = s;
		p->n++;
	}
	if (closing)
		warm_pool_close(p); /* made during a drain: they go at once */
}

bool warm_pool_reaped(struct warm_pool *p, pid_t pid)
{
	for (struct standby **pp = &p->list; *pp; pp = &(*pp)->next)
		if ((*pp)->pid == pid) {
			if ((*pp)->fd >= 0) {
				/* It exited before it was given a run or told to go: it
				 * cannot make a warm sandbox here. Runs start cold; the
				 * pool is tried again later and later, up to a minute. */
				back_off(p);
				fprintf(stderr,
					"%s: warm pool: a standby (pid %d) exited before it had a "
					"run; runs start cold, the pool is tried again in %us\n",
					p->who, (int)pid, p->backoff_ms / 1000);
			}
			forget(p, pp);
			return true;
		}
	return false;
}

#define STANDBY_GRACE_NS (2000ull * 1000000)

void warm_pool_close(struct warm_pool *p)
{
	uint64_t now = cdn_mono_ns();
	for (struct standby *s = p->list; s; s = s->next) {
		if (s->fd >= 0) {
			close(s->fd);
			s->fd = -1;
			s->closed_ns = now;
		} else if (s->closed_ns && now - s->closed_ns > STANDBY_GRACE_NS) {
			/* A stopped or stuck one would keep its owner waiting for
			 * it for ever. */
			(void)kill(s->pid, SIGKILL);
			s->closed_ns = 0;
		}
	}
}

unsigned warm_pool_waiting(const struct warm_pool *p)
{
	unsigned n = 0;
	for (const struct standby *s = p->list; s; s = s->next)
		n += s->fd >= 0;
	return n;
}
