/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The scheduler (docs/schedules.md): a thread of cordon serve that, every
 * SCHEDULER_TICK_MS, fires the schedules that are due, in every workspace.
 *
 * A due schedule is first claimed: its next fire time moves on from the
 * one read, in one statement (store_schedule_claim), so of several API
 * nodes sharing a database exactly one fires each time. Then:
 *  - Missed times. A time is missed when it came due before this
 *    scheduler started (no serve was running then; a time that came due
 *    while it ran is late at most, never missed). catch_up "skip" (the
 *    default) records the skip and waits for the next time; "once" runs
 *    once now.
 *  - Fairness. The due list comes most overdue first, whoever's they are,
 *    and a tick fires for at most SCHEDULER_TICK_BUDGET_MS (what is left
 *    goes first in the next); a workspace has at most STORE_SCHEDULES_MAX
 *    schedules.
 *  - Overlap, when the schedule's last run is still going: "forbid" (the
 *    default) records a skip; "allow" starts another; "replace" cancels the
 *    last one (as POST /v1/runs/{id}/cancel does) and starts another.
 *  - The run is started as POST /v1/runs starts one (runs_start), with
 *    caller "schedule:NAME"; a run that cannot start (the agent is gone,
 *    the queue is full) is a skip, with the reason.
 */
#define _GNU_SOURCE
#include "serve/internal.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/cron.h"

#define SCHEDULER_TICK_MS 250
/* The most a tick spends firing; what is left waits for the next one, which
 * starts with the most overdue (the due list is in next_ms order). */
#define SCHEDULER_TICK_BUDGET_MS 1000

static void skip(struct server *sv, const struct store_schedule *sc, int64_t now,
		 const char *why)
{
	struct cdn_err err = { 0 };
	if (store_schedule_record(sv->s, sc->workspace, sc->name, now, NULL, why, &err) < 0)
		fprintf(stderr, "cordon serve: schedule %s/%s: %s\n", sc->workspace, sc->name,
			err.msg);
}

/* The last run still going: its id in out. */
static bool still_going(struct server *sv, const struct store_schedule *sc)
{
	struct store_run r;
	if (!sc->last_run[0] || store_run_get(sv->s, sc->last_run, &r, NULL) < 0)
		return false;
	/* Only a run of its own workspace is its to judge, or to replace. */
	bool going = strcmp(r.workspace, sc->workspace) == 0 && !store_run_status_final(r.status);
	store_run_clear(&r);
	return going;
}

static void fire(struct server *sv, const struct store_schedule *sc, int64_t now)
{
	char why[320];
	if (still_going(sv, sc)) {
		if (sc->overlap == OVERLAP_FORBID) {
			snprintf(why, sizeof(why), "run %s is still going (overlap: forbid)",
				 sc->last_run);
			skip(sv, sc, now, why);
			return;
		}
		if (sc->overlap == OVERLAP_REPLACE) {
			char cwhy[160];
			snprintf(cwhy, sizeof(cwhy), "cancelled by schedule:%s (overlap: replace)",
				 sc->name);
			(void)dispatch_cancel(sv, sc->workspace, sc->last_run, cwhy);
		}
	}
	json_t *input = sc->input_json ? json_loads(sc->input_json, 0, NULL) : NULL;
	char caller[sizeof(((struct store_run *)0)->caller)], id[STORE_RUN_ID_MAX + 1];
	snprintf(caller, sizeof(caller), "schedule:%s", sc->name);
	struct cdn_err err = { 0 };
	char rwhy[256] = "";
	int st = runs_start(sv, sc->workspace, sc->agent, input, NULL, caller, id, rwhy,
			    sizeof(rwhy), &err);
	json_decref(input);
	if (st != 0) {
		snprintf(why, sizeof(why), "the run could not start: %s", st < 0 ? err.msg : rwhy);
		skip(sv, sc, now, why);
		return;
	}
	if (store_schedule_record(sv->s, sc->workspace, sc->name, now, id, NULL, &err) < 0)
		fprintf(stderr, "cordon serve: schedule %s/%s: %s\n", sc->workspace, sc->name,
			err.msg);
}

static bool stopping(struct server *sv)
{
	pthread_mutex_lock(&sv->sched_mu);
	bool stop = sv->sched_stop;
	pthread_mutex_unlock(&sv->sched_mu);
	return stop;
}

static void tick(struct server *sv, int64_t started_ms)
{
	int64_t now = (int64_t)cdn_wall_ms();
	uint64_t t0 = cdn_mono_ms();
	struct store_schedule *v = NULL;
	size_t n = 0;
	struct cdn_err err = { 0 };
	if (store_schedule_list(sv->s, NULL, now, &v, &n, &err) < 0) {
		fprintf(stderr, "cordon serve: schedules: %s\n", err.msg);
		return;
	}
	for (size_t i = 0; i < n && !stopping(sv) && cdn_mono_ms() - t0 < SCHEDULER_TICK_BUDGET_MS;
	     i++) {
		struct store_schedule *sc = &v[i];
		struct cron_spec spec;
		struct cdn_err perr = { 0 };
		int64_t next = -1;
		if (cron_parse(sc->cron, sc->tz, &spec, &perr) == 0)
			next = cron_next(&spec, sc->anchor_ms, now);
		/* next 0: it never fires again (also a spec this cordon can
		 * no longer read, said once by the skip). */
		if (store_schedule_claim(sv->s, sc->workspace, sc->name, sc->next_ms,
					 next > 0 ? next : 0, &err) != 1)
			continue; /* another node fired it, or it was paused */
		if (next < 0 && perr.msg[0]) {
			skip(sv, sc, now, perr.msg);
			continue;
		}
		bool missed = sc->next_ms < started_ms;
		if (missed && sc->catchup == CATCHUP_SKIP) {
			char why[160], t[CDN_RFC3339_MAX];
			cdn_rfc3339(sc->next_ms, CDN_TIME_S, t, sizeof(t));
			snprintf(why, sizeof(why),
				 "missed since %s while no scheduler ran (catch_up: skip)", t);
			skip(sv, sc, now, why);
			continue;
		}
		fire(sv, sc, now);
	}
	store_schedules_free(v, n);
}

static void *scheduler_main(void *arg)
{
	struct server *sv = arg;
	int64_t started_ms = (int64_t)cdn_wall_ms();
	pthread_mutex_lock(&sv->sched_mu);
	while (!sv->sched_stop) {
		pthread_mutex_unlock(&sv->sched_mu);
		tick(sv, started_ms);
		pthread_mutex_lock(&sv->sched_mu);
		struct timespec until = cdn_wall_after(SCHEDULER_TICK_MS);
		while (!sv->sched_stop &&
		       pthread_cond_timedwait(&sv->sched_cv, &sv->sched_mu, &until) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&sv->sched_mu);
	return NULL;
}

int scheduler_start(struct server *sv)
{
	pthread_mutex_init(&sv->sched_mu, NULL);
	pthread_cond_init(&sv->sched_cv, NULL);
	if (pthread_create(&sv->scheduler, NULL, scheduler_main, sv) != 0)
		return -EAGAIN;
	sv->scheduler_started = true;
	return 0;
}

void scheduler_stop(struct server *sv)
{
	if (!sv->scheduler_started)
		return;
	pthread_mutex_lock(&sv->sched_mu);
	sv->sched_stop = true;
	pthread_cond_signal(&sv->sched_cv);
	pthread_mutex_unlock(&sv->sched_mu);
	pthread_join(sv->scheduler, NULL);
	sv->scheduler_started = false;
}
