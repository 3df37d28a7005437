/* SPDX-License-Identifier: Apache-2.0 */
/* Shared between the server's files; not an API. */
#ifndef CORDON_SERVE_INTERNAL_H
#define CORDON_SERVE_INTERNAL_H

#include <limits.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#include "serve/serve.h"
#include "store/store.h"
#include "vault/vault.h"

struct ws_runs;

struct job {
	char id[STORE_RUN_ID_MAX + 1];
	char ws[STORE_MAX_NAME + 1];
	char *ref;
	pid_t pid;
	bool cancel;
	char cancel_why[160];
	struct job *next;
};

/* One workspace's share of the dispatcher: its queue and how many of its
 * runs are running. Listed while it has either. */
struct ws_runs {
	char ws[STORE_MAX_NAME + 1];
	struct job *head, *tail;
	unsigned queued, running;
	struct ws_runs *next;
};

/* The front door's bounds (front.c, docs/api.md "Limits"). */
#define SERVE_HEAD_DEADLINE_S 10 /* from accept (or the last response) to a whole head */
#define SERVE_MAX_ANONYMOUS 64	 /* connections that have not shown a valid key */
#define SERVE_MAX_PER_CLIENT 64	 /* connections of one direct peer; requests of one
				  * client behind a trusted proxy */

struct conn;
struct addr_count;

/* Live event streams of one key. */
struct key_streams {
	char key_id[STORE_MAX_NAME + 1];
	unsigned n;
	struct key_streams *next;
};

struct server {
	struct serve_config cfg;
	struct store *s;
	struct vault *v;
	char state[PATH_MAX];
	char exe[PATH_MAX];
	pid_t self;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct ws_runs *wss;	/* workspaces with queued or running runs */
	struct ws_runs *turn;	/* whose turn is next (round robin), or NULL: the first */
	unsigned n_queued, queue_max, ws_queue_max, ws_running_max;
	struct job *running;
	unsigned n_running, concurrency;
	bool draining, stop;

	/* The per-client limits of the HTTP side, under their own lock. */
	pthread_mutex_t lim_mu;
	struct key_streams *streams;
	unsigned max_streams_per_key;
	struct conn *conns, *conns_tail; /* every connection, oldest first */
	unsigned n_anonymous;
	struct addr_count *peer_counts, *client_counts;
	unsigned n_uploads, max_uploads;
	pthread_t front_reaper;
	pthread_cond_t front_cv;
	bool front_started, front_stop;
};

/* front.c: the connection limits, for MHD's callbacks and on_request. */
enum MHD_Result front_accept(void *cls, const struct sockaddr *addr, socklen_t len);
void front_notify(void *cls, struct MHD_Connection *mc, void **socket_context,
		  enum MHD_ConnectionNotificationCode toe);
void *front_uri(void *cls, const char *uri, struct MHD_Connection *mc);
struct conn *front_conn(struct MHD_Connection *mc);
/* A request's head arrived: 0, or the status to refuse it with (why set). */
int front_request(struct server *sv, struct MHD_Connection *mc, char *why, size_t cap);
void front_request_done(struct server *sv, struct MHD_Connection *mc);
void front_authenticated(struct server *sv, struct MHD_Connection *mc);
bool front_upload_take(struct server *sv);
void front_upload_give(struct server *sv);
void front_counts(struct server *sv, unsigned *open, unsigned *anonymous, unsigned *uploads);
int front_start(struct server *sv);
void front_stop(struct server *sv);

void *dispatch_main(void *arg);
/* Queues a run of ws: 0; -ESHUTDOWN (draining), -ENOSPC (the server's queue
 * is full) or -EDQUOT (ws's own queue is), with why naming the limit. */
int dispatch_submit(struct server *sv, const char *id, const char *ws, const char *ref,
		    char *why, size_t cap);
/* Whether dispatch_submit would take a run of ws now (why as above). */
bool dispatch_has_room(struct server *sv, const char *ws, char *why, size_t cap);
/* 0, or -ENOENT when the run is neither queued nor running here. */
int dispatch_cancel(struct server *sv, const char *id, const char *why);
void dispatch_counts(struct server *sv, unsigned *queued, unsigned *running, bool *draining);
/* Stops taking runs, cancels the queued ones, waits for the running ones
 * up to timeout_s and then stops them; returns when none is left. */
void dispatch_drain(struct server *sv, unsigned timeout_s);

#endif
