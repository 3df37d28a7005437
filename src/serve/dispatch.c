/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The dispatcher: bounded queues of run records (status "created", made
 * by the API), one per workspace, and at most `concurrency` `cordon run
 * --claim ID` processes. Workspaces take turns (round robin over those
 * with a queued run and room under their running quota), and each has a
 * quota of queued and of running runs, so one workspace's burst of runs
 * can neither fill the queue for everyone nor hold every slot while
 * another waits (with --concurrency 2 --queue 6, one workspace's 8 runs
 * used to turn every other workspace's POST /v1/runs into 503).
 * Each run is its own process: a crash or a leak in one cannot touch the
 * server or the others, and the record is always written by the process
 * that supervised the sandbox.
 */
#define _GNU_SOURCE
#include "serve/internal.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "run/control.h"

/* Called with the lock held. */
static struct ws_runs *ws_find(struct server *sv, const char *ws, bool make)
{
	struct ws_runs *w = sv->wss;
	while (w && strcmp(w->ws, ws) != 0)
		w = w->next;
	if (!w && make && (w = calloc(1, sizeof(*w)))) {
		snprintf(w->ws, sizeof(w->ws), "%s", ws);
		w->next = sv->wss;
		sv->wss = w;
	}
	return w;
}

/* Called with the lock held: forgets w once it has nothing queued or
 * running. */
static void ws_release(struct server *sv, struct ws_runs *w)
{
	if (!w || w->queued || w->running)
		return;
	for (struct ws_runs **pp = &sv->wss; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	if (sv->turn == w)
		sv->turn = w->next;
	free(w);
}

/* Called with the lock held: the next run to start, by turns. */
static struct job *next_fair(struct server *sv)
{
	struct ws_runs *start = sv->turn ? sv->turn : sv->wss;
	struct ws_runs *w = start;
	do {
		if (!w)
			return NULL;
		if (w->queued && w->running < sv->ws_running_max) {
			struct job *j = w->head;
			w->head = j->next;
			if (!w->head)
				w->tail = NULL;
			w->queued--;
			sv->n_queued--;
			j->next = NULL;
			/* The next turn is the next workspace's. */
			sv->turn = w->next;
			return j;
		}
		w = w->next ? w->next : sv->wss;
	} while (w != start);
	return NULL;
}

/* The dispatcher is done with run id: marks its record when it never ran
 * or was stopped, and counts it in the metrics as its record ends. */
static void mark(struct server *sv, const char *id, enum store_run_status st, const char *why)
{
	struct store_run r;
	struct cdn_err err = { 0 };
	if (store_run_get(sv->s, id, &r, &err) < 0)
		return;
	bool stopped = r.status == RUN_KILLED || !store_run_status_final(r.status);
	if (r.status == RUN_CREATED || (st == RUN_CANCELLED && stopped)) {
		r.status = st;
		if (!r.finished_ms)
			r.finished_ms = cdn_wall_ms();
		if (why)
			snprintf(r.error, sizeof(r.error), "%s", why);
		if (store_run_update(sv->s, &r, &err) < 0)
			fprintf(stderr, "cordon serve: run %s: %s\n", id, err.msg);
	}
	/* The run's process is gone and left its record running: it died
	 * (SIGKILL, a crash) before it could write the end. The store's crash
	 * recovery marks such a record now rather than at the next start, so
	 * the run does not show as running, and is counted, until then. */
	if (st == RUN_ERROR && r.status == RUN_RUNNING) {
		(void)store_runs_recover(sv->s, NULL);
		store_run_clear(&r);
		if (store_run_get(sv->s, id, &r, &err) < 0)
			return;
	}
	metrics_run_finished(sv, &r);
	if (store_run_status_final(r.status))
		sink_run_ended(sv, &r);
	store_run_clear(&r);
}

static void job_free(struct job *j)
{
	free(j->ref);
	free(j);
}

/* A standby of the warm pool takes the run, else a new process. */
static int spawn(struct server *sv, struct job *j)
{
	if (warm_pool_claim(&sv->pool, j->ws, j->id, j->ref, NULL, &j->pid))
		return 0;
	int r = runproc_spawn(&sv->pool.proc, j->ws, j->id, j->ref, NULL, &j->pid);
	if (r == 0)
		sv->pool.dispatched[0]++;
	return r;
}

/* Called with the lock held: starts the standbys the pool lacks, without
 * the lock meanwhile (requests and the queue go on); true when it let go
 * of the lock, so the caller looks at the queue again. */
static bool pool_fill(struct server *sv)
{
	unsigned want = warm_pool_want(&sv->pool);
	if (!want)
		return false;
	pthread_mutex_unlock(&sv->mu);
	bool failed;
	struct standby *made = warm_pool_start(&sv->pool, want, &failed);
	pthread_mutex_lock(&sv->mu);
	warm_pool_add(&sv->pool, made, sv->draining || sv->stop, failed);
	return made != NULL;
}

void dispatch_pool_counts(struct server *sv, unsigned *waiting, uint64_t dispatched[2])
{
	pthread_mutex_lock(&sv->mu);
	*waiting = warm_pool_waiting(&sv->pool);
	dispatched[0] = sv->pool.dispatched[0];
	dispatched[1] = sv->pool.dispatched[1];
	pthread_mutex_unlock(&sv->mu);
}

/* Called with the lock held. */
static void reap(struct server *sv)
{
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);
		if (pid <= 0)
			return;
		struct job **pp = &sv->running;
		while (*pp && (*pp)->pid != pid)
			pp = &(*pp)->next;
		struct job *j = *pp;
		if (!j) {
			warm_pool_reaped(&sv->pool, pid);
			continue;
		}
		*pp = j->next;
		sv->n_running--;
		struct ws_runs *w = ws_find(sv, j->ws, false);
		if (w) {
			w->running--;
			ws_release(sv, w);
		}
		if (j->cancel)
			mark(sv, j->id, RUN_CANCELLED, j->cancel_why);
		else
			/* A run that could not even claim its record (cordon
			 * failed to start) must not stay "created". */
			mark(sv, j->id, RUN_ERROR, "the run process exited before it started");
		job_free(j);
	}
}

/* How often a server whose runs go to workers expires their leases. */
#define LEASE_EXPIRE_EVERY_MS 1000

/* --dispatch workers: the runs are queued in the database for cordon
 * worker processes; this server only marks lost the runs of workers whose
 * leases ran out (any node may: one marks each), and counts them. */
static void *expire_main(struct server *sv)
{
	pthread_mutex_lock(&sv->mu);
	while (!sv->stop) {
		pthread_mutex_unlock(&sv->mu);
		struct store_run *lost = NULL;
		size_t n = 0;
		struct cdn_err err = { 0 };
		if (store_leases_expire(sv->s, cdn_wall_ms(), &lost, &n, &err) < 0)
			fprintf(stderr, "cordon serve: expire leases: %s\n", err.msg);
		for (size_t i = 0; i < n; i++) {
			fprintf(stderr, "cordon serve: run %s lost: %s\n", lost[i].id, lost[i].error);
			metrics_run_finished(sv, &lost[i]);
		}
		store_runs_free(lost, n);
		pthread_mutex_lock(&sv->mu);
		struct timespec ts = cdn_wall_after(LEASE_EXPIRE_EVERY_MS);
		if (!sv->stop)
			pthread_cond_timedwait(&sv->cv, &sv->mu, &ts);
	}
	pthread_mutex_unlock(&sv->mu);
	return NULL;
}

void *dispatch_main(void *arg)
{
	struct server *sv = arg;
	if (sv->cfg.dispatch_workers)
		return expire_main(sv);
	pthread_mutex_lock(&sv->mu);
	for (;;) {
		reap(sv);
		struct job *j;
		while (!sv->draining && sv->n_running < sv->concurrency && (j = next_fair(sv))) {
			struct ws_runs *w = ws_find(sv, j->ws, false);
			int r = spawn(sv, j);
			if (r < 0) {
				fprintf(stderr, "cordon serve: run %s: cannot start %s: %s\n", j->id,
					sv->exe, strerror(-r));
				mark(sv, j->id, RUN_ERROR, "the server could not start the run");
				job_free(j);
				ws_release(sv, w);
				continue;
			}
			if (w)
				w->running++;
			j->next = sv->running;
			sv->running = j;
			sv->n_running++;
		}
		if (sv->draining || sv->stop)
			warm_pool_close(&sv->pool);
		else if (pool_fill(sv))
			continue; /* runs may have come meanwhile: look again */
		if (sv->stop && sv->n_running == 0 && sv->pool.n == 0)
			break;
		/* A finished run frees its slot within 10 ms. */
		struct timespec ts = cdn_wall_after(10);
		pthread_cond_timedwait(&sv->cv, &sv->mu, &ts);
	}
	pthread_mutex_unlock(&sv->mu);
	return NULL;
}

/* Called with the lock held. */
static int room(struct server *sv, const char *ws, char *why, size_t cap)
{
	if (sv->draining) {
		snprintf(why, cap, "the server is draining");
		return -ESHUTDOWN;
	}
	struct ws_runs *w = ws_find(sv, ws, false);
	if (w && w->queued >= sv->ws_queue_max) {
		snprintf(why, cap,
			 "workspace %s has %u runs waiting, its limit (cordon serve "
			 "--workspace-queue); try again when one has started",
			 ws, w->queued);
		return -EDQUOT;
	}
	if (sv->n_queued >= sv->queue_max) {
		snprintf(why, cap,
			 "the server's run queue is full (%u runs waiting, cordon serve --queue); "
			 "try again later",
			 sv->n_queued);
		return -ENOSPC;
	}
	return 0;
}

/* --dispatch workers: the queue is the database's, shared by every API
 * node, and bounded by the same settings. */
static int room_in_database(struct server *sv, const char *ws, char *why, size_t cap)
{
	uint64_t total, in_ws;
	struct cdn_err err = { 0 };
	if (store_runs_queued(sv->s, ws, &total, &in_ws, &err) < 0) {
		snprintf(why, cap, "%s", err.msg);
		return -EIO;
	}
	if (in_ws >= sv->ws_queue_max) {
		snprintf(why, cap,
			 "workspace %s has %llu runs waiting for a worker, its limit (cordon serve "
			 "--workspace-queue); try again when one has started",
			 ws, (unsigned long long)in_ws);
		return -EDQUOT;
	}
	if (total >= sv->queue_max) {
		snprintf(why, cap,
			 "%llu runs are waiting for a worker, the limit (cordon serve --queue); try "
			 "again later",
			 (unsigned long long)total);
		return -ENOSPC;
	}
	return 0;
}

bool dispatch_has_room(struct server *sv, const char *ws, char *why, size_t cap)
{
	if (sv->cfg.dispatch_workers)
		return room_in_database(sv, ws, why, cap) == 0;
	pthread_mutex_lock(&sv->mu);
	int r = room(sv, ws, why, cap);
	pthread_mutex_unlock(&sv->mu);
	return r == 0;
}

int dispatch_submit(struct server *sv, const char *id, const char *ws, const char *ref,
		    char *why, size_t cap)
{
	struct job *j = calloc(1, sizeof(*j));
	if (!j || !(j->ref = strdup(ref))) {
		free(j);
		snprintf(why, cap, "out of memory");
		return -ENOMEM;
	}
	snprintf(j->id, sizeof(j->id), "%s", id);
	snprintf(j->ws, sizeof(j->ws), "%s", ws);
	pthread_mutex_lock(&sv->mu);
	int r = room(sv, ws, why, cap);
	struct ws_runs *w = r == 0 ? ws_find(sv, ws, true) : NULL;
	if (r == 0 && !w) {
		snprintf(why, cap, "out of memory");
		r = -ENOMEM;
	}
	if (r < 0) {
		pthread_mutex_unlock(&sv->mu);
		job_free(j);
		return r;
	}
	if (w->tail)
		w->tail->next = j;
	else
		w->head = j;
	w->tail = j;
	w->queued++;
	sv->n_queued++;
	pthread_cond_signal(&sv->cv);
	pthread_mutex_unlock(&sv->mu);
	return 0;
}

/* Who asked, from why ("cancelled by WHO"). */
static const char *cancel_by(const char *why)
{
	return strncmp(why, "cancelled by ", 13) == 0 ? why + 13 : why;
}

/* A run of the runs' own way of stopping: asked on its control socket,
 * it records "cancelled" itself. */
static bool ask_cancel(const char *id, const char *why)
{
	const char *by = cancel_by(why);
	json_t *req = json_pack("{s:s, s:s}", "op", "cancel", "by", by);
	json_t *res = req ? control_ask(id, req, NULL) : NULL;
	bool asked = json_is_true(json_object_get(res, "ok"));
	json_decref(req);
	json_decref(res);
	return asked;
}

/* A run of another host's, with a shared store: asked there, and its
 * answer awaited (-ENOENT when the store cannot reach it: not running, or
 * SQLite's). */
static int cancel_remote(struct server *sv, const char *ws, const char *id, const char *why)
{
	const char *by = cancel_by(why);
	char cid[STORE_CONTROL_ID_MAX + 1], said[256] = "";
	if (store_control_cancel(sv->s, ws, id, by, cid, NULL) != 1)
		return -ENOENT;
	int r = remote_control_wait(sv, cid, said, sizeof(said));
	return r == -ETIMEDOUT ? 0 : r < 0 ? -ENOENT : 0; /* recorded: it applies when seen */
}

/* --dispatch workers: a run still waiting for a worker is cancelled in the
 * database, where no worker can take it any more; one a worker runs on
 * this host is asked on its control socket, one on another host through
 * the shared store. */
static int cancel_in_database(struct server *sv, const char *ws, const char *id,
			      const char *why)
{
	struct cdn_err err = { 0 };
	int r = store_run_cancel_queued(sv->s, id, why, &err);
	if (r == 1) {
		struct store_run rec;
		if (store_run_get(sv->s, id, &rec, NULL) == 0) {
			metrics_run_finished(sv, &rec);
			store_run_clear(&rec);
		}
		return 0;
	}
	return ask_cancel(id, why) ? 0 : cancel_remote(sv, ws, id, why);
}

int dispatch_cancel(struct server *sv, const char *ws, const char *id, const char *why)
{
	if (sv->cfg.dispatch_workers)
		return cancel_in_database(sv, ws, id, why);
	pthread_mutex_lock(&sv->mu);
	for (struct ws_runs *w = sv->wss; w; w = w->next) {
		struct job **pp = &w->head, *prev = NULL;
		while (*pp && strcmp((*pp)->id, id) != 0) {
			prev = *pp;
			pp = &(*pp)->next;
		}
		if (!*pp)
			continue;
		struct job *j = *pp;
		*pp = j->next;
		if (w->tail == j)
			w->tail = prev;
		w->queued--;
		sv->n_queued--;
		ws_release(sv, w);
		pthread_mutex_unlock(&sv->mu);
		mark(sv, id, RUN_CANCELLED, why);
		job_free(j);
		return 0;
	}
	bool found = false;
	for (struct job *j = sv->running; j && !found; j = j->next)
		if (strcmp(j->id, id) == 0) {
			j->cancel = true;
			snprintf(j->cancel_why, sizeof(j->cancel_why), "%s", why);
			found = true;
		}
	pthread_mutex_unlock(&sv->mu);
	if (!found)
		return cancel_remote(sv, ws, id, why); /* another node's, when shared */
	/* The run stops itself when asked on its control socket, and so
	 * records "cancelled" in its own result and events, with who asked
	 * (why is "cancelled by WHO"). One that cannot be asked (still
	 * setting up, before its socket exists) gets SIGTERM, and its record
	 * is marked cancelled when it exits. */
	if (ask_cancel(id, why))
		return 0;
	pthread_mutex_lock(&sv->mu);
	for (struct job *j = sv->running; j; j = j->next)
		if (strcmp(j->id, id) == 0)
			kill(j->pid, SIGTERM);
	pthread_mutex_unlock(&sv->mu);
	return 0;
}

static bool find_running(struct server *sv, const char *id, int sig)
{
	bool found = false;
	pthread_mutex_lock(&sv->mu);
	for (struct job *j = sv->running; j && !found; j = j->next)
		if (strcmp(j->id, id) == 0) {
			found = true;
			if (sig && j->pid > 0)
				kill(j->pid, sig);
		}
	pthread_mutex_unlock(&sv->mu);
	return found;
}

bool dispatch_runs_here(struct server *sv, const char *id)
{
	return !sv->cfg.dispatch_workers && find_running(sv, id, 0);
}

bool dispatch_signal(struct server *sv, const char *id, int sig)
{
	return !sv->cfg.dispatch_workers && find_running(sv, id, sig);
}

void dispatch_counts(struct server *sv, unsigned *queued, unsigned *running, bool *draining)
{
	/* --dispatch workers: what waits is the database's, for any worker. */
	uint64_t total = 0, in_ws;
	if (sv->cfg.dispatch_workers)
		(void)store_runs_queued(sv->s, STORE_DEFAULT_WORKSPACE, &total, &in_ws, NULL);
	pthread_mutex_lock(&sv->mu);
	*queued = sv->cfg.dispatch_workers ? (unsigned)(total < UINT32_MAX ? total : UINT32_MAX)
					   : sv->n_queued;
	*running = sv->n_running;
	*draining = sv->draining;
	pthread_mutex_unlock(&sv->mu);
}

void dispatch_drain(struct server *sv, unsigned timeout_s)
{
	pthread_mutex_lock(&sv->mu);
	sv->draining = true;
	struct job *q = NULL;
	for (struct ws_runs *w = sv->wss, *next; w; w = next) {
		next = w->next;
		while (w->head) {
			struct job *j = w->head;
			w->head = j->next;
			j->next = q;
			q = j;
		}
		w->tail = NULL;
		w->queued = 0;
		ws_release(sv, w);
	}
	sv->n_queued = 0;
	pthread_mutex_unlock(&sv->mu);
	while (q) {
		struct job *next = q->next;
		mark(sv, q->id, RUN_CANCELLED, "the server shut down before the run started");
		job_free(q);
		q = next;
	}
	int64_t deadline = cdn_wall_ms() + (int64_t)timeout_s * 1000;
	for (;;) {
		pthread_mutex_lock(&sv->mu);
		unsigned left = sv->n_running;
		if (left && cdn_wall_ms() >= deadline) {
			for (struct job *j = sv->running; j; j = j->next)
				if (!j->cancel) {
					j->cancel = true;
					snprintf(j->cancel_why, sizeof(j->cancel_why),
						 "the server shut down (drain timeout)");
					kill(j->pid, SIGTERM);
				}
		}
		pthread_mutex_unlock(&sv->mu);
		if (!left)
			break;
		struct timespec ts = { 0, 50 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	pthread_mutex_lock(&sv->mu);
	sv->stop = true;
	pthread_cond_signal(&sv->cv);
	pthread_mutex_unlock(&sv->mu);
}
