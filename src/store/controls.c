/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Run controls (store.h, "Reaching a run on another host"): the checks
 * every backend shares, then the backend's query. A backend without them
 * (SQLite) answers -ENOTSUP: on one host, the run's control socket.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/random.h"
#include "store/internal.h"

#define NEED(op)                                                                             \
	do {                                                                                 \
		if (!s->ops->op)                                                             \
			return cdn_err_msg(err, ENOTSUP,                                     \
					   "store: %s does not carry run controls (the run's " \
					   "control socket does, on its host)",              \
					   s->ops->name);                                    \
	} while (0)

/* An approval's or a cancel's id: [A-Za-z0-9_-]{1,63}. */
static int id_check(const char *id, struct cdn_err *err)
{
	size_t n = id ? strnlen(id, STORE_CONTROL_ID_MAX + 1) : 0;
	if (n == 0 || n > STORE_CONTROL_ID_MAX || strspn(id, "abcdefghijklmnopqrstuvwxyz"
								"ABCDEFGHIJKLMNOPQRSTUVWXYZ"
								"0123456789_-") != n)
		return cdn_err_msg(err, EINVAL, "store: a control id is 1 to %d letters, digits,"
					       " '_' or '-'", STORE_CONTROL_ID_MAX);
	return 0;
}

static int by_check(const char *by, struct cdn_err *err)
{
	if (!by || strnlen(by, STORE_CONTROL_BY_MAX + 1) > STORE_CONTROL_BY_MAX)
		return cdn_err_msg(err, EINVAL, "store: who decided is at most %d bytes",
				   STORE_CONTROL_BY_MAX);
	return 0;
}

bool store_has_run_controls(const struct store *s)
{
	return s->ops->controls_take && s->ops->run_events_put;
}

void store_controls_free(struct store_control *c, size_t n)
{
	for (size_t i = 0; c && i < n; i++)
		free(c[i].entry);
	free(c);
}

int store_control_publish(struct store *s, const char *run_id, const char *ws, const char *id,
			  const char *entry, int64_t created_ms, int64_t deadline_ms,
			  struct cdn_err *err)
{
	NEED(control_publish);
	int r;
	if ((r = store_run_id_check(run_id, err)) < 0 ||
	    (r = store_name_check("workspace", ws, err)) < 0 || (r = id_check(id, err)) < 0)
		return r;
	if (!entry || strnlen(entry, STORE_CONTROL_ENTRY_MAX + 1) > STORE_CONTROL_ENTRY_MAX)
		return cdn_err_msg(err, EINVAL, "store: an approval's entry is at most %d bytes",
				   STORE_CONTROL_ENTRY_MAX);
	return s->ops->control_publish(s, run_id, ws, id, entry, created_ms, deadline_ms, err);
}

int store_control_close(struct store *s, const char *run_id, const char *id, struct cdn_err *err)
{
	NEED(control_close);
	int r;
	if ((r = store_run_id_check(run_id, err)) < 0 || (r = id_check(id, err)) < 0)
		return r;
	return s->ops->control_close(s, run_id, id, err);
}

int store_controls_list(struct store *s, const char *ws, struct store_control **out, size_t *n,
			struct cdn_err *err)
{
	*out = NULL;
	*n = 0;
	NEED(controls_list);
	int r = store_name_check("workspace", ws, err);
	return r < 0 ? r : s->ops->controls_list(s, ws, out, n, err);
}

int store_control_decide(struct store *s, const char *ws, const char *id, bool approve,
			 const char *by, char *run_id, struct cdn_err *err)
{
	run_id[0] = '\0';
	NEED(control_decide);
	int r;
	if ((r = store_name_check("workspace", ws, err)) < 0 || (r = by_check(by, err)) < 0)
		return r;
	/* An id that cannot be one is no such approval, as a missing one. */
	if (id_check(id, NULL) < 0)
		return 0;
	return s->ops->control_decide(s, ws, id, approve, by, cdn_wall_ms(), run_id, err);
}

int store_control_cancel(struct store *s, const char *ws, const char *run_id, const char *by,
			 char *id, struct cdn_err *err)
{
	id[0] = '\0';
	NEED(control_cancel);
	int r;
	if ((r = store_name_check("workspace", ws, err)) < 0 ||
	    (r = store_run_id_check(run_id, err)) < 0 || (r = by_check(by, err)) < 0)
		return r;
	if ((r = cdn_random_id("cancel_", 12, id, STORE_CONTROL_ID_MAX + 1)) < 0)
		return cdn_err_set(err, -r, "store: cancel id");
	r = s->ops->control_cancel(s, ws, run_id, by, cdn_wall_ms(), id, err);
	if (r <= 0)
		id[0] = '\0';
	return r;
}

int store_controls_take(struct store *s, const char *run_id, struct store_control **out,
			size_t *n, struct cdn_err *err)
{
	*out = NULL;
	*n = 0;
	NEED(controls_take);
	int r = store_run_id_check(run_id, err);
	return r < 0 ? r : s->ops->controls_take(s, run_id, out, n, err);
}

int store_control_done(struct store *s, const char *id, const char *outcome,
		       struct cdn_err *err)
{
	NEED(control_done);
	int r = id_check(id, err);
	if (r < 0)
		return r;
	/* Why a decision was not taken, as the run said it, bounded. */
	char o[256];
	snprintf(o, sizeof(o), "%s", outcome ? outcome : "");
	return s->ops->control_done(s, id, o, err);
}

int store_control_outcome(struct store *s, const char *id, char *out, size_t cap,
			  struct cdn_err *err)
{
	if (cap)
		out[0] = '\0';
	NEED(control_outcome);
	int r = id_check(id, err);
	return r < 0 ? r : s->ops->control_outcome(s, id, out, cap, err);
}

int store_run_live_clear(struct store *s, const char *run_id, struct cdn_err *err)
{
	NEED(run_live_clear);
	int r = store_run_id_check(run_id, err);
	return r < 0 ? r : s->ops->run_live_clear(s, run_id, err);
}

void store_event_lines_free(struct store_event_line *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i].line);
	free(v);
}

int store_run_events_put(struct store *s, const char *run_id, const char *batch,
			 struct cdn_err *err)
{
	NEED(run_events_put);
	int r = store_run_id_check(run_id, err);
	if (r < 0)
		return r;
	if (!batch || strnlen(batch, STORE_EVENTS_BATCH_MAX + 1) > STORE_EVENTS_BATCH_MAX)
		return cdn_err_msg(err, EINVAL, "store: a batch of events is at most %u bytes",
				   STORE_EVENTS_BATCH_MAX);
	return s->ops->run_events_put(s, run_id, batch, err);
}

int store_run_events_read(struct store *s, const char *run_id, uint64_t after, unsigned max,
			  struct store_event_line **out, size_t *n, struct cdn_err *err)
{
	*out = NULL;
	*n = 0;
	NEED(run_events_read);
	int r = store_run_id_check(run_id, err);
	if (r < 0)
		return r;
	if (after > INT64_MAX)
		return 0;
	return s->ops->run_events_read(s, run_id, after, max ? max : 1, out, n, err);
}

void store_unlisten(struct store *s)
{
	if (s->ops->unlisten)
		s->ops->unlisten(s);
}

int store_run_listen(struct store *s, const char *run_id, int *fd, struct cdn_err *err)
{
	*fd = -1;
	if (!s->ops->listen || !s->ops->controls_take)
		return cdn_err_msg(err, ENOTSUP, "store: %s has no notifications", s->ops->name);
	int r = store_run_id_check(run_id, err);
	if (r < 0)
		return r;
	char channel[64];
	snprintf(channel, sizeof(channel), "cordon_run_%s", run_id);
	return s->ops->listen(s, channel, fd, err);
}
