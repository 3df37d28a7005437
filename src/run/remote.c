/* SPDX-License-Identifier: Apache-2.0 */
/* A run reached from other hosts, through a shared store (remote.h). */
#define _GNU_SOURCE
#include "run/remote.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "run/control.h"
#include "run/netpart.h"
#include "store/store.h"

struct run_remote {
	struct store *s;
	char run_id[STORE_RUN_ID_MAX + 1];
	char ws[STORE_MAX_NAME + 1];
	bool said; /* a failure was reported: once is enough */
	/* While the sandbox runs. */
	struct event_base *base;
	struct netpart *np;
	int fd;		     /* the LISTEN connection's socket, or -1 */
	struct event *note;  /* fd readable */
	struct event *timer; /* the poll, and listening again */
	/* Events: a JSON array of [seq, line] being filled. */
	bool events;
	json_t *batch;
	size_t batch_bytes;  /* at most what the batch's text takes */
	unsigned failures;   /* flushes failed in a row */
	uint64_t sent_bytes, last_flush_ms;
	struct event *flush_ev;
};

static void say(struct run_remote *rr, const struct cdn_err *err)
{
	if (rr->said)
		return;
	rr->said = true;
	fprintf(stderr, "cordon run: %s: reached from other hosts: %s\n", rr->run_id, err->msg);
}

/* ------------------------------------------------------------- events */

#define REMOTE_EVENTS_TRIES 3

static void stop_events(struct run_remote *rr)
{
	rr->events = false;
	json_array_clear(rr->batch);
	rr->batch_bytes = 0;
}

/* Sends the batch; kept for the next try when that failed, given up after
 * REMOTE_EVENTS_TRIES failures in a row (a follower elsewhere then waits
 * for the run's end, and reads the rest from S3). */
static void flush(struct run_remote *rr)
{
	rr->last_flush_ms = cdn_mono_ms();
	if (!rr->events || json_array_size(rr->batch) == 0)
		return;
	char *text = json_dumps(rr->batch, JSON_COMPACT);
	struct cdn_err err = { 0 };
	if (!text)
		(void)cdn_err_set(&err, ENOMEM, "events");
	if (text && store_run_events_put(rr->s, rr->run_id, text, &err) == 0) {
		json_array_clear(rr->batch);
		rr->batch_bytes = 0;
		rr->failures = 0;
	} else {
		say(rr, &err);
		if (++rr->failures >= REMOTE_EVENTS_TRIES)
			stop_events(rr);
	}
	free(text);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	flush(arg);
}

void run_remote_event_line(struct run_remote *rr, uint64_t seq, const char *line, size_t len,
			   bool final)
{
	if (!rr || !rr->events)
		return;
	if (rr->sent_bytes + len > REMOTE_EVENTS_MAX_BYTES) {
		flush(rr);
		stop_events(rr); /* the rest from S3, at the end */
		return;
	}
	/* A line inside a JSON string takes at most twice its bytes (it is
	 * JSON text: only quotes and backslashes are escaped again). One that
	 * would take the batch past REMOTE_EVENTS_BATCH goes in the next,
	 * so a batch stays within STORE_EVENTS_BATCH_MAX. */
	size_t cost = 2 * len + 32;
	if (json_array_size(rr->batch) && rr->batch_bytes + cost > REMOTE_EVENTS_BATCH) {
		flush(rr);
		if (rr->events && json_array_size(rr->batch))
			stop_events(rr); /* it failed, and the batch is full */
		/* Mirrored lines are always a prefix: a follower gets the rest
		 * from S3, from where it was, never with a hole. */
		if (!rr->events)
			return;
	}
	json_t *pair = json_pack("[I, s%]", (json_int_t)seq, line, len);
	if (!pair || json_array_append_new(rr->batch, pair) < 0) {
		stop_events(rr);
		return;
	}
	rr->batch_bytes += cost;
	rr->sent_bytes += len;
	if (final || rr->batch_bytes >= REMOTE_EVENTS_BATCH ||
	    cdn_mono_ms() - rr->last_flush_ms >= REMOTE_EVENTS_FLUSH_MS) {
		flush(rr);
		return;
	}
	/* Inside the loop a timer sends what waits; outside it (before the
	 * sandbox, after it) the next event or the attach or close does. */
	if (rr->flush_ev && !evtimer_pending(rr->flush_ev, NULL)) {
		struct timeval tv = { 0, REMOTE_EVENTS_FLUSH_MS * 1000 };
		evtimer_add(rr->flush_ev, &tv);
	}
}

/* ------------------------------------------------------------ controls */

static void arm(struct run_remote *rr)
{
	int ms = rr->fd >= 0 ? REMOTE_POLL_MS : REMOTE_POLL_LOST_MS;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	evtimer_add(rr->timer, &tv);
}

static void unlisten(struct run_remote *rr)
{
	if (rr->note)
		event_free(rr->note);
	rr->note = NULL;
	rr->fd = -1;
}

static void on_note(evutil_socket_t fd, short what, void *arg);

static int listen_again(struct run_remote *rr, struct cdn_err *err)
{
	int fd = -1;
	int r = store_run_listen(rr->s, rr->run_id, &fd, err);
	if (r < 0)
		return r;
	rr->note = event_new(rr->base, fd, EV_READ | EV_PERSIST, on_note, rr);
	if (!rr->note || event_add(rr->note, NULL) < 0) {
		unlisten(rr);
		return cdn_err_set(err, ENOMEM, "run controls");
	}
	rr->fd = fd;
	return 0;
}

/* What nodes asked and the run has not answered: each applied as the
 * control socket applies a request, and answered. */
static void take(struct run_remote *rr)
{
	struct store_control *c = NULL;
	size_t n = 0;
	struct cdn_err err = { 0 };
	if (!rr->np)
		return;
	if (store_controls_take(rr->s, rr->run_id, &c, &n, &err) < 0) {
		say(rr, &err);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *req = c[i].cancel
				  ? json_pack("{s:s, s:s}", "op", "cancel", "by", c[i].by)
				  : json_pack("{s:s, s:s, s:b, s:s}", "op", "decide", "id", c[i].id,
					      "approve", c[i].approve, "by", c[i].by);
		json_t *res = req ? netpart_control(rr->np, req) : NULL;
		bool ok = json_is_true(json_object_get(res, "ok"));
		const char *why = json_string_value(json_object_get(res, "error"));
		if (store_control_done(rr->s, c[i].id, ok ? "" : why ? why : "not taken", &err) < 0)
			say(rr, &err);
		json_decref(req);
		json_decref(res);
	}
	store_controls_free(c, n);
}

static void on_note(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct run_remote *rr = arg;
	bool broken = false;
	if (!store_queue_notified(rr->s, &broken))
		return;
	if (broken)
		unlisten(rr); /* the timer listens again, soon */
	take(rr);
	if (broken) {
		evtimer_del(rr->timer);
		arm(rr);
	}
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct run_remote *rr = arg;
	struct cdn_err err = { 0 };
	if (rr->fd < 0 && listen_again(rr, &err) < 0)
		say(rr, &err);
	take(rr);
	arm(rr);
}

void run_remote_approval(struct run_remote *rr, const char *type, const json_t *data)
{
	if (!rr)
		return;
	struct cdn_err err = { 0 };
	const char *id = json_string_value(json_object_get(data, "approval_id"));
	if (!id)
		return;
	if (strcmp(type, "approval.requested") == 0) {
		int64_t timeout_ms = 0;
		json_t *entry = control_approval_entry(data, &timeout_ms);
		char *text = entry ? json_dumps(entry, JSON_COMPACT) : NULL;
		json_decref(entry);
		int64_t now = (int64_t)cdn_wall_ms();
		if (!text)
			(void)cdn_err_set(&err, ENOMEM, "approval %s", id);
		if (!text || store_control_publish(rr->s, rr->run_id, rr->ws, id, text, now,
						   timeout_ms ? now + timeout_ms : 0, &err) < 0)
			say(rr, &err);
		free(text);
	} else if (strcmp(type, "approval.decided") == 0) {
		if (store_control_close(rr->s, rr->run_id, id, &err) < 0)
			say(rr, &err);
	}
}

/* ------------------------------------------------------------ lifetime */

int run_remote_open(struct store *s, const char *run_id, const char *ws, bool events,
		    struct run_remote **out)
{
	*out = NULL;
	if (!store_has_run_controls(s))
		return 0;
	struct run_remote *rr = calloc(1, sizeof(*rr));
	if (!rr)
		return -ENOMEM;
	rr->s = s;
	rr->fd = -1;
	snprintf(rr->run_id, sizeof(rr->run_id), "%s", run_id);
	snprintf(rr->ws, sizeof(rr->ws), "%s", ws);
	rr->events = events && (rr->batch = json_array());
	rr->last_flush_ms = cdn_mono_ms();
	*out = rr;
	return 0;
}

int run_remote_attach(struct run_remote *rr, struct event_base *base, struct netpart *np,
		      struct cdn_err *err)
{
	if (!rr)
		return 0;
	rr->base = base;
	rr->np = np;
	flush(rr);
	rr->flush_ev = evtimer_new(base, on_flush, rr);
	rr->timer = evtimer_new(base, on_timer, rr);
	if (!rr->flush_ev || !rr->timer)
		return cdn_err_set(err, ENOMEM, "run controls");
	int r = listen_again(rr, err);
	arm(rr);
	/* A cancel may have been asked since the record said "running". */
	take(rr);
	return r;
}

void run_remote_detach(struct run_remote *rr)
{
	if (!rr)
		return;
	unlisten(rr);
	store_unlisten(rr->s);
	if (rr->timer)
		event_free(rr->timer);
	if (rr->flush_ev)
		event_free(rr->flush_ev);
	rr->timer = rr->flush_ev = NULL;
	rr->np = NULL;
	rr->base = NULL;
	flush(rr);
}

void run_remote_close(struct run_remote *rr)
{
	if (!rr)
		return;
	run_remote_detach(rr);
	struct cdn_err err = { 0 };
	if (store_run_live_clear(rr->s, rr->run_id, &err) < 0)
		say(rr, &err);
	json_decref(rr->batch);
	free(rr);
}
