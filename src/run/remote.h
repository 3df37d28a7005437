/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A run reached from other hosts, through a shared store (store.h,
 * "Reaching a run on another host"; Postgres): what its control socket
 * and its events file offer on its own host, for API nodes anywhere.
 *  - Each request that waits for a human ("approval.requested") is
 *    published as the socket would list it, and closed when decided,
 *    timed out or abandoned ("approval.decided").
 *  - While its sandbox runs, the run LISTENs on its channel and also polls
 *    (REMOTE_POLL_MS, or REMOTE_POLL_LOST_MS while it cannot listen): each
 *    decision or cancel a node wrote is applied as a request on the socket
 *    would be (netpart_control: the same checks, only what this run
 *    holds), and its outcome is written back for the node that waits.
 *  - When its files go to S3 at its end (a fleet), its events are also
 *    written to the store as they come, in batches at most
 *    REMOTE_EVENTS_FLUSH_MS apart, up to REMOTE_EVENTS_MAX_BYTES a run
 *    (past it a follower elsewhere waits for the run's end and reads the
 *    rest from S3).
 *  - The end of the run (its record final, its files uploaded) removes
 *    its rows.
 * With a store that carries none of this (SQLite), nothing here runs: the
 * socket and the file are the way, on the one host.
 */
#ifndef CORDON_RUN_REMOTE_H
#define CORDON_RUN_REMOTE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define REMOTE_POLL_MS 5000
#define REMOTE_POLL_LOST_MS 500
#define REMOTE_EVENTS_FLUSH_MS 100
#define REMOTE_EVENTS_BATCH (256u * 1024)
#define REMOTE_EVENTS_MAX_BYTES (16u << 20)

struct event_base;
struct netpart;
struct store;
struct run_remote;

/* 0 with *out set, or with *out NULL when the store carries none of this.
 * events: mirror the run's events (its files go to S3). */
int run_remote_open(struct store *s, const char *run_id, const char *ws, bool events,
		    struct run_remote **out);

/* An event line as events.ndjson has it (final: the run's last). */
void run_remote_event_line(struct run_remote *rr, uint64_t seq, const char *line, size_t len,
			   bool final);

/* The sandbox runs under base with its network part np: decisions and
 * cancels are taken from now on, events flushed on a timer. 0, or
 * negative with err (then approvals from other hosts time out: denied). */
int run_remote_attach(struct run_remote *rr, struct event_base *base, struct netpart *np,
		      struct cdn_err *err);
/* Before base and np go. */
void run_remote_detach(struct run_remote *rr);

/* An event of the run's network part: approvals are published and
 * closed. */
void run_remote_approval(struct run_remote *rr, const char *type, const json_t *data);

/* The run has ended, its record final: the rest of its events written,
 * then its rows removed. NULL is fine. */
void run_remote_close(struct run_remote *rr);

#endif
