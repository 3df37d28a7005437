/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The service manager (docs/services.md): a thread of cordon serve that,
 * every SERVICES_TICK_MS, keeps every workspace's services running.
 *
 * A service whose run has ended is counted (its end time joins the crash-
 * loop window) and waits for its backoff: the first restart after
 * cfg.service_backoff_ms, each further end in the window doubling it up to
 * service_backoff_max_ms, less a random part of up to half (jitter), so that
 * services that failed together do not restart together. crash_loop_exits
 * ends within crash_loop_window_ms pause it, with the reason. A paused
 * service's run is stopped; resume clears the count.
 *
 * Every change is a store_service_update from the generation it read, so
 * of several API nodes on one database exactly one starts a service,
 * exactly one counts each end, and a pause is never overwritten by a change
 * made from an older read. A start is claimed first (next_ms becomes minus
 * the claim's time); a claim left by a node that died is taken over after
 * SERVICES_CLAIM_STALE_MS.
 *
 * Stopping a run (pause, drain): where this server runs it (embedded
 * dispatch), SIGTERM, then after cfg.service_stop_ms a cancel, which kills
 * the sandbox; a run on a worker is cancelled at once.
 */
#define _GNU_SOURCE
#include "serve/internal.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"

#define SERVICES_TICK_MS 250
#define SERVICES_CLAIM_STALE_MS 60000
#define STOPPING_MAX 256

static unsigned or_default(unsigned v, unsigned dflt)
{
	return v ? v : dflt;
}

static unsigned backoff_ms(const struct server *sv)
{
	return or_default(sv->cfg.service_backoff_ms, 1000);
}
static unsigned backoff_max_ms(const struct server *sv)
{
	return or_default(sv->cfg.service_backoff_max_ms, 300000);
}
static unsigned loop_exits(const struct server *sv)
{
	return or_default(sv->cfg.crash_loop_exits, 5);
}
static unsigned loop_window_ms(const struct server *sv)
{
	return or_default(sv->cfg.crash_loop_window_ms, 600000);
}
static unsigned stop_ms(const struct server *sv)
{
	return or_default(sv->cfg.service_stop_ms, 10000);
}

/* Runs this manager has asked to stop, and when to cancel them. */
struct stopping {
	char id[STORE_RUN_ID_MAX + 1];
	char ws[STORE_MAX_NAME + 1];
	int64_t kill_at;
};
static struct stopping stopping[STOPPING_MAX];

static void note(const struct store_service *s, const char *what, const char *detail)
{
	fprintf(stderr, "cordon serve: %s workspace=%s service=%s%s%s\n", what, s->workspace,
		s->name, detail ? ": " : "", detail ? detail : "");
}

/* SIGTERM now and a cancel later (here), or a cancel now (a worker's). */
static void stop_run(struct server *sv, const char *ws, const char *id, const char *why)
{
	for (size_t i = 0; i < STOPPING_MAX; i++)
		if (strcmp(stopping[i].id, id) == 0)
			return; /* already asked */
	if (dispatch_signal(sv, id, SIGTERM)) {
		for (size_t i = 0; i < STOPPING_MAX; i++)
			if (!stopping[i].id[0]) {
				snprintf(stopping[i].id, sizeof(stopping[i].id), "%s", id);
				snprintf(stopping[i].ws, sizeof(stopping[i].ws), "%s", ws);
				stopping[i].kill_at = (int64_t)cdn_wall_ms() + stop_ms(sv);
				return;
			}
	}
	(void)dispatch_cancel(sv, ws, id, why);
}

/* The runs that outlived their SIGTERM's deadline are cancelled; the ones
 * that ended are forgotten. */
static void reap_stopping(struct server *sv)
{
	int64_t now = (int64_t)cdn_wall_ms();
	for (size_t i = 0; i < STOPPING_MAX; i++) {
		struct stopping *st = &stopping[i];
		if (!st->id[0])
			continue;
		struct store_run r;
		int g = store_run_get(sv->s, st->id, &r, NULL);
		if (g < 0 && g != -ENOENT)
			continue; /* the store failed: ask again next time */
		bool ended = g < 0 || store_run_status_final(r.status);
		if (g == 0)
			store_run_clear(&r);
		if (!ended && now < st->kill_at)
			continue;
		if (!ended) {
			char why[128];
			snprintf(why, sizeof(why), "it did not stop within %ums of SIGTERM",
				 stop_ms(sv));
			(void)dispatch_cancel(sv, st->ws, st->id, why);
		}
		st->id[0] = '\0';
	}
}

/* Keeps the window's end times (and now's), oldest first; how many. */
static unsigned window_add(char *times, size_t cap, int64_t now, int64_t window)
{
	char out[STORE_SERVICE_EXITS_MAX * 15] = "";
	size_t at = 0;
	unsigned n = 0;
	char *save = NULL;
	/* Only the newest STORE_SERVICE_EXITS_MAX - 1 old ones can stay. */
	int64_t kept[STORE_SERVICE_EXITS_MAX];
	size_t nk = 0;
	for (char *t = strtok_r(times, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		int64_t v = strtoll(t, NULL, 10);
		if (v <= 0 || now - v >= window)
			continue;
		if (nk == STORE_SERVICE_EXITS_MAX - 1) {
			memmove(kept, kept + 1, (nk - 1) * sizeof(kept[0]));
			nk--;
		}
		kept[nk++] = v;
	}
	kept[nk++] = now;
	for (size_t i = 0; i < nk; i++, n++)
		at += (size_t)snprintf(out + at, sizeof(out) - at, "%s%lld", i ? "," : "",
				       (long long)kept[i]);
	snprintf(times, cap, "%s", out);
	return n;
}

/* The delay before start k + 1 after k ends in the window: doubled each
 * time up to the most, less up to half of it at random. */
static int64_t delay_ms(const struct server *sv, unsigned k)
{
	uint64_t d = backoff_ms(sv);
	for (unsigned i = 1; i < k && d < backoff_max_ms(sv); i++)
		d *= 2;
	if (d > backoff_max_ms(sv))
		d = backoff_max_ms(sv);
	uint32_t half = (uint32_t)(d / 2);
	return (int64_t)(d - (half ? randombytes_uniform(half + 1) : 0));
}

/* What ended the run, for people. */
static void describe_end(const char *id, const struct store_run *r, bool found, char *out,
			 size_t cap)
{
	if (!found) {
		snprintf(out, cap, "run %s: its record is gone", id);
		return;
	}
	if (r->error[0])
		snprintf(out, cap, "run %s %s (exit %d): %.160s", id,
			 store_run_status_name(r->status), r->exit_code, r->error);
	else
		snprintf(out, cap, "run %s %s (exit %d)", id, store_run_status_name(r->status),
			 r->exit_code);
}

/* An end (of a run, or of a start that failed): a backoff, and, when it
 * counts (not a cancel: whoever cancelled a service's run asked for a
 * restart, and members may cancel runs), towards a crash-loop pause. */
static void count_end(struct server *sv, struct store_service *s, const char *what, bool counts,
		      int64_t now)
{
	if (s->current_run[0])
		snprintf(s->last_run, sizeof(s->last_run), "%s", s->current_run);
	s->current_run[0] = '\0';
	bool looped = false;
	if (s->paused) {
		/* Stopped because it was paused: not an end to count. */
		s->next_ms = 0;
	} else {
		s->exits++;
		snprintf(s->last_exit, sizeof(s->last_exit), "%s", what);
		s->last_exit_ms = now;
		unsigned k = counts ? window_add(s->exit_times, sizeof(s->exit_times), now,
						 loop_window_ms(sv))
				    : 1;
		if (counts && k >= loop_exits(sv)) {
			looped = s->paused = true;
			snprintf(s->pause_reason, sizeof(s->pause_reason),
				 "crash loop: %u ends within %us; the last: %.180s", k,
				 loop_window_ms(sv) / 1000, what);
			s->next_ms = 0;
		} else {
			s->next_ms = now + delay_ms(sv, k);
		}
	}
	struct cdn_err err = { 0 };
	int r = store_service_update(sv->s, s, &err);
	if (r < 0)
		note(s, "service.error", err.msg);
	else if (r == 1 && looped)
		note(s, "service.paused", s->pause_reason);
	else if (r == 1 && !s->paused)
		note(s, "service.exited", what);
}

static void start(struct server *sv, struct store_service *s, int64_t now)
{
	struct cdn_err err = { 0 };
	s->next_ms = -now;
	if (store_service_update(sv->s, s, &err) != 1)
		return; /* another node has it, or it changed */
	json_t *input = s->input_json ? json_loads(s->input_json, 0, NULL) : NULL;
	char caller[sizeof(((struct store_run *)0)->caller)], id[STORE_RUN_ID_MAX + 1];
	char why[256] = "";
	snprintf(caller, sizeof(caller), "service:%s", s->name);
	int st = runs_start(sv, s->workspace, s->agent, input, NULL, caller, id, why, sizeof(why),
			    &err);
	json_decref(input);
	if (st == 503) {
		/* No room (the queue, the workspace's share): not the service's
		 * fault, so not an end; it tries again after the first backoff. */
		s->next_ms = now + backoff_ms(sv);
		(void)store_service_update(sv->s, s, NULL);
		return;
	}
	if (st != 0) {
		char what[320];
		snprintf(what, sizeof(what), "the run could not start: %s", st < 0 ? err.msg : why);
		count_end(sv, s, what, true, now);
		return;
	}
	snprintf(s->current_run, sizeof(s->current_run), "%s", id);
	s->next_ms = 0;
	s->starts++;
	int r = store_service_update(sv->s, s, &err);
	if (r != 1) {
		/* Paused or removed while it started: the run is nobody's. */
		(void)dispatch_cancel(sv, s->workspace, id, "its service changed as it started");
		return;
	}
	note(s, "service.started", id);
}

static void look(struct server *sv, struct store_service *s, int64_t now)
{
	if (s->current_run[0]) {
		struct store_run r;
		int g = store_run_get(sv->s, s->current_run, &r, NULL);
		if (g < 0 && g != -ENOENT)
			return; /* the store failed: not an end; look again next tick */
		bool found = g == 0;
		bool mine = found && strcmp(r.workspace, s->workspace) == 0;
		if (mine && !store_run_status_final(r.status)) {
			if (s->paused)
				stop_run(sv, s->workspace, s->current_run, "its service was paused");
			store_run_clear(&r);
			return;
		}
		char what[320];
		describe_end(s->current_run, &r, mine, what, sizeof(what));
		bool counts = !mine || r.status != RUN_CANCELLED;
		if (found)
			store_run_clear(&r);
		count_end(sv, s, what, counts, now);
		return;
	}
	if (s->paused)
		return;
	if (s->next_ms < 0) {
		/* Claimed by a node that has not finished starting it. */
		if (now + s->next_ms > SERVICES_CLAIM_STALE_MS) {
			s->next_ms = 0;
			(void)store_service_update(sv->s, s, NULL);
		}
		return;
	}
	if (now >= s->next_ms)
		start(sv, s, now);
}

static bool stopping_now(struct server *sv)
{
	pthread_mutex_lock(&sv->svc_mu);
	bool stop = sv->svc_stop;
	pthread_mutex_unlock(&sv->svc_mu);
	return stop;
}

/* The services and runs of the last look: a service gone since (removed
 * on the state directory, or through another node) leaves a run nobody
 * restarts or stops but this. */
struct seen {
	char ws[STORE_MAX_NAME + 1], name[STORE_MAX_NAME + 1], run[STORE_RUN_ID_MAX + 1];
};
static struct seen *seen;
static size_t n_seen;

static void stop_orphans(struct server *sv, const struct store_service *v, size_t n)
{
	for (size_t i = 0; i < n_seen; i++) {
		bool still = false;
		for (size_t k = 0; k < n && !still; k++)
			still = strcmp(v[k].workspace, seen[i].ws) == 0 &&
				strcmp(v[k].name, seen[i].name) == 0;
		if (still || !seen[i].run[0])
			continue;
		struct store_run r;
		if (store_run_get(sv->s, seen[i].run, &r, NULL) < 0)
			continue;
		bool going = !store_run_status_final(r.status) &&
			     strcmp(r.workspace, seen[i].ws) == 0;
		store_run_clear(&r);
		if (going) {
			char why[160];
			snprintf(why, sizeof(why), "its service %s was removed", seen[i].name);
			(void)dispatch_cancel(sv, seen[i].ws, seen[i].run, why);
		}
	}
}

/* What this look saw (and started), for the next one's orphans. */
static void remember(const struct store_service *v, size_t n)
{
	if (!n) {
		free(seen);
		seen = NULL;
		n_seen = 0;
		return;
	}
	struct seen *nv = realloc(seen, n * sizeof(*nv));
	if (!nv)
		return; /* keeps the last list; the next look tries again */
	seen = nv;
	n_seen = n;
	for (size_t k = 0; k < n; k++) {
		snprintf(seen[k].ws, sizeof(seen[k].ws), "%s", v[k].workspace);
		snprintf(seen[k].name, sizeof(seen[k].name), "%s", v[k].name);
		snprintf(seen[k].run, sizeof(seen[k].run), "%s", v[k].current_run);
	}
}

static void tick(struct server *sv)
{
	struct store_service *v = NULL;
	size_t n = 0;
	struct cdn_err err = { 0 };
	reap_stopping(sv);
	if (store_service_list(sv->s, NULL, &v, &n, &err) < 0) {
		fprintf(stderr, "cordon serve: services: %s\n", err.msg);
		return;
	}
	stop_orphans(sv, v, n);
	for (size_t i = 0; i < n && !stopping_now(sv); i++)
		look(sv, &v[i], (int64_t)cdn_wall_ms());
	remember(v, n);
	store_services_free(v, n);
}

static void *services_main(void *arg)
{
	struct server *sv = arg;
	pthread_mutex_lock(&sv->svc_mu);
	while (!sv->svc_stop) {
		pthread_mutex_unlock(&sv->svc_mu);
		tick(sv);
		pthread_mutex_lock(&sv->svc_mu);
		struct timespec until = cdn_wall_after(SERVICES_TICK_MS);
		while (!sv->svc_stop &&
		       pthread_cond_timedwait(&sv->svc_cv, &sv->svc_mu, &until) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&sv->svc_mu);
	return NULL;
}

int services_start(struct server *sv)
{
	pthread_mutex_init(&sv->svc_mu, NULL);
	pthread_cond_init(&sv->svc_cv, NULL);
	if (pthread_create(&sv->services, NULL, services_main, sv) != 0)
		return -EAGAIN;
	sv->services_started = true;
	return 0;
}

void services_drain(struct server *sv)
{
	if (!sv->services_started)
		return;
	pthread_mutex_lock(&sv->svc_mu);
	sv->svc_stop = true;
	pthread_cond_signal(&sv->svc_cv);
	pthread_mutex_unlock(&sv->svc_mu);
	pthread_join(sv->services, NULL);
	sv->services_started = false;
	/* The services whose runs run here stop, SIGTERM first; their rows
	 * let go of the run first, so that the next start (of this server,
	 * or another node's now) starts them again without counting an end.
	 * A worker's runs go on: its own drain stops them. */
	struct store_service *v = NULL;
	size_t n = 0;
	struct cdn_err err = { 0 };
	if (store_service_list(sv->s, NULL, &v, &n, &err) < 0) {
		fprintf(stderr, "cordon serve: services: %s\n", err.msg);
		remember(NULL, 0);
		return;
	}
	stop_orphans(sv, v, n); /* removed since the last look */
	for (size_t i = 0; i < n; i++) {
		struct store_service *s = &v[i];
		char run[STORE_RUN_ID_MAX + 1];
		snprintf(run, sizeof(run), "%s", s->current_run);
		if (!run[0] || !dispatch_runs_here(sv, run))
			continue;
		snprintf(s->last_run, sizeof(s->last_run), "%s", run);
		s->current_run[0] = '\0';
		s->next_ms = 0;
		if (store_service_update(sv->s, s, NULL) == 1) {
			note(s, "service.stopping", run);
			stop_run(sv, s->workspace, run, "the server drained");
		}
	}
	store_services_free(v, n);
	/* Wait for them, up to their deadline (reap cancels what is late). */
	for (;;) {
		reap_stopping(sv);
		bool left = false;
		for (size_t i = 0; i < STOPPING_MAX; i++)
			left = left || stopping[i].id[0];
		if (!left)
			break;
		struct timespec ts = { 0, 50 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	remember(NULL, 0);
}
