/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Workers' leases (store.h, docs/deploy.md), the backend-neutral half:
 * arguments checked once, the reason a lost run is given, and the retry
 * record an agent that opted in gets; the SQL is in sqlite_leases.c and
 * pg_leases.c.
 */
#define _GNU_SOURCE
#include "store/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cleanup.h"
#include "base/clock.h"
#include "base/random.h"

/* A lease from 1 s to a day: shorter would expire between heartbeats on a
 * loaded host, longer would leave a dead worker's runs waiting all day. */
#define LEASE_MS_MIN 1000
#define LEASE_MS_MAX (86400 * 1000)

static int lease_args(const char *worker, int64_t lease_ms, struct cdn_err *err)
{
	if (!store_worker_id_ok(worker))
		return cdn_err_msg(err, EINVAL,
				   "store: a worker id is 1 to %d letters, digits, '.', '_' and "
				   "'-', starting with a letter or digit",
				   STORE_WORKER_ID_MAX);
	if (lease_ms < LEASE_MS_MIN || lease_ms > LEASE_MS_MAX)
		return cdn_err_msg(err, EINVAL, "store: a lease is 1 s to a day, not %lld ms",
				   (long long)lease_ms);
	return 0;
}

const char *store_claim_refused(const struct store_run *r, char *buf, size_t cap)
{
	if (r->lease_owner[0])
		snprintf(buf, cap,
			 "run %s is not waiting to start in workspace %s under a lease of worker "
			 "%s (the lease ran out, or another took the run)",
			 r->id, r->workspace, r->lease_owner);
	else
		snprintf(buf, cap, "run %s is not waiting to start in workspace %s", r->id,
			 r->workspace);
	return buf;
}

int store_run_lease_claim(struct store *s, const char *worker, const char *labels,
			  int64_t lease_ms, struct store_run *out, struct cdn_err *err)
{
	memset(out, 0, sizeof(*out));
	char canon[STORE_LABELS_JSON_MAX + 1];
	int r = lease_args(worker, lease_ms, err);
	if (r < 0 || (r = store_labels_parse(labels, canon, err)) < 0)
		return r;
	return s->ops->run_lease_claim(s, worker, canon, cdn_wall_ms() + lease_ms, out, err);
}

int store_lease_renew(struct store *s, const char *worker, int64_t lease_ms,
		      char (**ids)[STORE_RUN_ID_MAX + 1], size_t *n, struct cdn_err *err)
{
	*ids = NULL;
	*n = 0;
	int r = lease_args(worker, lease_ms, err);
	if (r < 0)
		return r;
	int64_t now = cdn_wall_ms();
	if ((r = s->ops->lease_renew(s, worker, now, now + lease_ms, ids, n, err)) < 0)
		return r;
	if (*n == 0) {
		free(*ids);
		*ids = NULL;
	}
	return 0;
}

/* The next attempt of lost run r, queued for a worker as r was: the same
 * agent (the version r ran, when it got that far), input, labels and
 * caller. */
static int retry_record(const struct store_run *r, int64_t now_ms, struct store_run *out)
{
	memset(out, 0, sizeof(*out));
	int e = cdn_random_id("run_", 12, out->id, sizeof(out->id));
	if (e < 0)
		return e;
	snprintf(out->workspace, sizeof(out->workspace), "%s", r->workspace);
	snprintf(out->agent, sizeof(out->agent), "%s", r->agent);
	out->agent_version = r->agent_version;
	out->status = RUN_CREATED;
	out->exit_code = -1;
	snprintf(out->caller, sizeof(out->caller), "%s", r->caller);
	out->created_ms = now_ms;
	out->input_json = r->input_json;
	snprintf(out->labels, sizeof(out->labels), "%s", r->labels);
	out->attempt = (r->attempt ? r->attempt : 1) + 1;
	snprintf(out->retry_of, sizeof(out->retry_of), "%s", r->id);
	out->retry_max = r->retry_max;
	return 0;
}

int store_leases_expire(struct store *s, int64_t now_ms, struct store_run **lost, size_t *n,
			struct cdn_err *err)
{
	if (lost)
		*lost = NULL;
	if (n)
		*n = 0;
	_cleanup_free_ struct store_lease_candidate *v = NULL;
	size_t count = 0;
	int r = s->ops->leases_expired(s, now_ms, &v, &count, err);
	if (r < 0)
		return r;
	struct store_run *out = lost && count ? calloc(count, sizeof(*out)) : NULL;
	if (lost && count && !out)
		return cdn_err_set(err, ENOMEM, "store: expire leases");
	int marked = 0;
	for (size_t i = 0; i < count && r >= 0; i++) {
		const struct store_lease_candidate *c = &v[i];
		struct store_run rec;
		if (store_run_get(s, c->id, &rec, err) < 0)
			continue; /* gone (pruned, deleted) since the list */
		char when[40], reason[sizeof(rec.error)];
		cdn_rfc3339(c->until_ms, CDN_TIME_MS, when, sizeof(when));
		snprintf(reason, sizeof(reason), "worker %s's lease expired at %s", c->owner, when);
		struct store_run retry;
		bool again = rec.retry_max > 0 && (rec.attempt ? rec.attempt : 1) <= rec.retry_max;
		if (again && (r = retry_record(&rec, now_ms, &retry)) < 0) {
			cdn_err_set(err, -r, "store: a retry's run id");
		} else if ((r = s->ops->run_mark_lost(s, c, reason, now_ms, again ? &retry : NULL,
						      err)) == 1) {
			/* What it published for humans goes with it. */
			if (s->ops->run_live_clear)
				(void)s->ops->run_live_clear(s, c->id, NULL);
			if (out) {
				rec.status = RUN_LOST;
				rec.finished_ms = now_ms;
				rec.exit_code = 125;
				snprintf(rec.error, sizeof(rec.error), "%s", reason);
				store_run_clear(&rec);
				out[marked] = rec;
			}
			marked++;
		}
		store_run_clear(&rec);
	}
	if (r < 0) {
		store_runs_free(out, (size_t)marked);
		return r;
	}
	if (lost) {
		*lost = out;
		if (n)
			*n = (size_t)marked;
	} else {
		free(out);
	}
	return marked;
}

int store_runs_queued(struct store *s, const char *ws, uint64_t *total, uint64_t *in_ws,
		      struct cdn_err *err)
{
	*total = *in_ws = 0;
	int r = store_name_check("workspace", ws, err);
	return r < 0 ? r : s->ops->runs_queued(s, ws, total, in_ws, err);
}

int store_queue_listen(struct store *s, int *fd, struct cdn_err *err)
{
	*fd = -1;
	if (!s->ops->listen)
		return cdn_err_msg(err, ENOTSUP, "store: %s has no notifications", s->ops->name);
	return s->ops->listen(s, STORE_QUEUE_CHANNEL, fd, err);
}

bool store_queue_notified(struct store *s, bool *broken)
{
	*broken = false;
	return s->ops->queue_notified ? s->ops->queue_notified(s, broken) : false;
}

int store_run_cancel_queued(struct store *s, const char *id, const char *why,
			    struct cdn_err *err)
{
	int r = store_run_id_check(id, err);
	if (r < 0)
		return r;
	if (!why || strnlen(why, sizeof(((struct store_run *)0)->error)) >=
			    sizeof(((struct store_run *)0)->error))
		return cdn_err_msg(err, EINVAL, "store: a reason of at most 255 bytes");
	return s->ops->run_cancel_queued(s, id, why, cdn_wall_ms(), err);
}
