/* SPDX-License-Identifier: Apache-2.0 */
/* Shared between the server's files; not an API. */
#ifndef CORDON_SERVE_INTERNAL_H
#define CORDON_SERVE_INTERNAL_H

#include <jansson.h>
#include <limits.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "serve/pool.h"
#include "serve/runproc.h"
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
	/* The warm pool (pool.c), under mu. */
	struct warm_pool pool;
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

	struct sink *sink; /* sink.c; NULL without --evidence-sink */
	/* The pruner (pruner.c). */
	pthread_t pruner;
	pthread_mutex_t prune_mu;
	pthread_cond_t prune_cv;
	bool pruner_started, prune_stop;
	struct metrics *metrics; /* metrics.c; under its own lock */
	/* The scheduler (scheduler.c). */
	pthread_t scheduler;
	pthread_mutex_t sched_mu;
	pthread_cond_t sched_cv;
	bool scheduler_started, sched_stop;
	/* The service manager (services.c). */
	pthread_t services;
	pthread_mutex_t svc_mu;
	pthread_cond_t svc_cv;
	bool services_started, svc_stop;
};

/* scheduler.c: fires due schedules (docs/schedules.md) until stopped; the
 * drain stops it first. */
int scheduler_start(struct server *sv);
void scheduler_stop(struct server *sv);
/* services.c: keeps services running (docs/services.md) until drained:
 * then the services whose runs run here are stopped (SIGTERM, then a
 * cancel after cfg.service_stop_ms), and it returns when they have. */
int services_start(struct server *sv);
void services_drain(struct server *sv);
/* pruner.c: prunes now and every cfg.prune_interval_s (0: never). */
int pruner_start(struct server *sv);
void pruner_stop(struct server *sv);

/* sink.c: with cfg.evidence_sink, each started run's evidence pack is
 * exported when it ends (docs/evidence.md). */
int sink_start(struct server *sv, struct cdn_err *err);
void sink_run_ended(struct server *sv, const struct store_run *r);
void sink_stop(struct server *sv);

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

/* serve.c: an IPv4 "ADDR:PORT" (opt names the option in the message). */
int parse_listen(const char *opt, const char *s, struct sockaddr_in *sa, struct cdn_err *err);

void *dispatch_main(void *arg);
/* Takes sv->mu: standbys of the warm pool waiting, and runs dispatched
 * cold [0] and warm [1]. */
void dispatch_pool_counts(struct server *sv, unsigned *waiting, uint64_t dispatched[2]);
/* Queues a run of ws: 0; -ESHUTDOWN (draining), -ENOSPC (the server's queue
 * is full) or -EDQUOT (ws's own queue is), with why naming the limit. */
int dispatch_submit(struct server *sv, const char *id, const char *ws, const char *ref,
		    char *why, size_t cap);
/* Whether dispatch_submit would take a run of ws now (why as above). */
bool dispatch_has_room(struct server *sv, const char *ws, char *why, size_t cap);
/* A new run of agent (NAME[@VERSION], registered in ws) with input (an
 * object, or NULL for {}), labels (or NULL) and caller, recorded and
 * queued as POST /v1/runs does: 0 with id set; an HTTP status (400, 404,
 * 413, 503) with why; -1 with err (the store failed). */
int runs_start(struct server *sv, const char *ws, const char *agent, const json_t *input,
	       const json_t *labels, const char *caller, char *id, char *why, size_t cap,
	       struct cdn_err *err);
/* 0, or -ENOENT when the run is neither queued nor running here, nor (a
 * shared store) running on another host that answered. */
int dispatch_cancel(struct server *sv, const char *ws, const char *id, const char *why);
/* A decision or cancel written to a shared store for a run on any host
 * (store.h, "Reaching a run on another host"): waits up to
 * CONTROL_TIMEOUT_S for the run's answer. 0 when it was done; -EPROTO with
 * why when the run said no; -ETIMEDOUT; -ENOENT when the run ended first;
 * another negative errno (why says it) when the store failed. */
int remote_control_wait(struct server *sv, const char *id, char *why, size_t cap);
/* Whether the run is one this server runs (embedded dispatch), and then
 * sends its cordon run sig (which forwards it to the sandbox). */
bool dispatch_runs_here(struct server *sv, const char *id);
bool dispatch_signal(struct server *sv, const char *id, int sig);
void dispatch_counts(struct server *sv, unsigned *queued, unsigned *running, bool *draining);
/* Stops taking runs, cancels the queued ones, waits for the running ones
 * up to timeout_s and then stops them; returns when none is left. */
void dispatch_drain(struct server *sv, unsigned timeout_s);

/* --------------------------------------------- metrics (metrics.c, prom.c) */

/* Workspaces that get series of their own; runs of any past them count
 * under workspace="_other" (no workspace name starts with '_'). */
#define METRICS_MAX_WORKSPACES 1024
/* A metrics token (--metrics-token-file): bytes, without the file's
 * final newline. */
#define METRICS_TOKEN_MIN 16
#define METRICS_TOKEN_MAX 1024

/* Makes sv->metrics, reading the token file when there is one. */
int metrics_open(struct server *sv, struct cdn_err *err);
void metrics_close(struct server *sv);
/* Counts a run the dispatcher is done with (its final record). Takes the
 * metrics lock only: callable with sv->mu held. */
void metrics_run_finished(struct server *sv, const struct store_run *r);
/* The whole exposition into *out (malloc'd, *len bytes); per_workspace
 * adds the series that name workspaces. 0 or -ENOMEM. */
int metrics_render(struct server *sv, bool per_workspace, char **out, size_t *len);
/* GET /metrics: the reply, with every series or (per_workspace false) the
 * server-wide ones only. */
enum MHD_Result metrics_reply(struct server *sv, struct MHD_Connection *conn, bool per_workspace);
/* The --metrics-listen daemon's request handler (cls: the server). */
enum MHD_Result metrics_on_request(void *cls, struct MHD_Connection *conn, const char *url,
				   const char *method, const char *version, const char *upload,
				   size_t *upload_size, void **con_cls);

/* ------------------------------------------------- one API request (serve.c) */

#define SERVE_MAX_SEGMENTS 8

struct request {
	char *body;
	size_t len;
	size_t max; /* BODY_MAX, or BUNDLE_MAX_UPLOAD for a bundle upload */
	bool too_large;
	/* A bundle upload goes to a file under STATE/tmp (unlinked at once),
	 * not memory: three unfinished 32 MiB uploads once held 94 MiB of the
	 * server's. It holds one of the server's upload slots. */
	int fd;
	bool upload_slot;
	bool write_failed;
};

/* An authenticated request on its way to a handler: its path's segments
 * and the caller's key (whose workspace every handler keeps to). */
struct call {
	struct server *sv;
	struct MHD_Connection *conn;
	const char *method;
	const char *seg[SERVE_MAX_SEGMENTS];
	size_t n_seg;
	struct store_key key;
	struct request *req;
};

/* ------------------------------------------------------ replies (reply.c) */

/* A time in the API: whole seconds, "" for a time not yet known (0). */
void api_time(int64_t ms, char *buf, size_t cap);
/* The headers every answer carries (no-store, nosniff, DENY, no-referrer). */
void api_headers(struct MHD_Response *r);
/* Steals j. */
enum MHD_Result api_reply(struct MHD_Connection *conn, unsigned status, json_t *j);
/* A body of type made elsewhere (steals data, which malloc made). */
enum MHD_Result api_reply_buf(struct MHD_Connection *conn, unsigned status, const char *type,
			      char *data, size_t len);
/* A time bound given as query parameter name: absent (0), or RFC 3339 at
 * or after 1970 (1); -1 with the 400 sent otherwise. */
int api_time_param(struct call *c, const char *name, int64_t *ms, enum MHD_Result *ret);
/* The error body, {"error": {"code": ..., "message": ...}}. */
enum MHD_Result api_fail(struct MHD_Connection *conn, unsigned status, const char *code,
			 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* 405 with the methods the route takes (RFC 9110 15.5.6: Allow is required). */
/* The head of a /metrics listener's handler (serve's, a worker's): true
 * when the request is a GET or HEAD of /metrics ready to be answered;
 * else false with *ret what to return (the first call, which has only the
 * head; a body, dropped; another path or method, refused). */
bool metrics_request_ready(struct MHD_Connection *conn, void *cls, const char *url,
			   const char *method, size_t *upload_size, void **con_cls,
			   enum MHD_Result *ret);
enum MHD_Result api_fail_allow(struct MHD_Connection *conn, const char *allow, const char *fmt,
			       ...) __attribute__((format(printf, 3, 4)));
/* The error body with one more header (hname: hval). */
enum MHD_Result api_fail_header(struct MHD_Connection *conn, unsigned status, const char *code,
				const char *hname, const char *hval, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* A library call's failure (r, err) as its status: the one place a kind
 * of error becomes a status. */
enum MHD_Result api_fail_err(struct MHD_Connection *conn, int r, const struct cdn_err *err);
/* serve.c: the credentials of "Authorization: Bearer TOKEN", or NULL. */
const char *api_bearer(struct MHD_Connection *conn);
/* A packed directory's Content-Type (bundle.h): tar, or tar.gz. */
bool api_bundle_type(const char *ct);
/* The body as a JSON object, or NULL with *ret the reply saying why not. */
json_t *api_body_json(struct call *c, enum MHD_Result *ret);
const char *api_jstr(json_t *o, const char *key);

/* --------------------------------------------------------- runs (api_runs.c) */

/* 0 when run id is in the caller's workspace (out filled), else < 0. */
int api_run_in_ws(struct call *c, const char *id, struct store_run *out);
/* The run {id} of the path, when it is in the key's workspace; otherwise
 * false, with the 404 sent. */
bool api_the_run(struct call *c, struct store_run *r, enum MHD_Result *ret);
/* api_events.c: the event stream of run id (already checked). */
enum MHD_Result api_run_events(struct call *c, const char *id);
/* api_events.c: run id's stdout or stderr ("which") from byte offset, as
 * the run writes it, until the run has ended (id already checked). */
enum MHD_Result api_run_output_follow(struct call *c, const char *id, const char *which,
				      uint64_t offset);

/* ---------------------------------------- the handlers of serve.c's routes */

enum MHD_Result h_whoami(struct call *c);
enum MHD_Result h_keys_list(struct call *c);
enum MHD_Result h_keys_create(struct call *c);
enum MHD_Result h_keys_revoke(struct call *c);
enum MHD_Result h_agents_list(struct call *c);
enum MHD_Result h_agents_register(struct call *c);
enum MHD_Result h_agent_get(struct call *c);
enum MHD_Result h_capabilities_list(struct call *c);
enum MHD_Result h_capabilities_register(struct call *c);
enum MHD_Result h_envs_list(struct call *c);
enum MHD_Result h_envs_register(struct call *c);
enum MHD_Result h_grants_create(struct call *c);
enum MHD_Result h_secrets_list(struct call *c);
enum MHD_Result h_secret_get(struct call *c);
enum MHD_Result h_secret_put(struct call *c);
enum MHD_Result h_secret_delete(struct call *c);
enum MHD_Result h_runs_list(struct call *c);
enum MHD_Result h_runs_create(struct call *c);
enum MHD_Result h_run_get(struct call *c);
enum MHD_Result h_run_events_get(struct call *c);
enum MHD_Result h_run_stdout(struct call *c);
enum MHD_Result h_run_stderr(struct call *c);
enum MHD_Result h_run_evidence_get(struct call *c);
enum MHD_Result h_run_artifact(struct call *c);
enum MHD_Result h_run_cancel(struct call *c);
enum MHD_Result h_approvals_list(struct call *c);
enum MHD_Result h_approval_approve(struct call *c);
enum MHD_Result h_approval_reject(struct call *c);
enum MHD_Result h_audit_get(struct call *c);
enum MHD_Result h_policy_get(struct call *c);
enum MHD_Result h_policy_put(struct call *c);
enum MHD_Result h_usage(struct call *c);
enum MHD_Result h_deps(struct call *c);
enum MHD_Result h_schedules_list(struct call *c);
enum MHD_Result h_schedule_create(struct call *c);
enum MHD_Result h_schedule_get(struct call *c);
enum MHD_Result h_schedule_delete(struct call *c);
enum MHD_Result h_schedule_pause(struct call *c);
enum MHD_Result h_schedule_resume(struct call *c);
enum MHD_Result h_services_list(struct call *c);
enum MHD_Result h_service_create(struct call *c);
enum MHD_Result h_service_get(struct call *c);
enum MHD_Result h_service_delete(struct call *c);
enum MHD_Result h_service_pause(struct call *c);
enum MHD_Result h_service_resume(struct call *c);
enum MHD_Result h_service_stdout(struct call *c);
enum MHD_Result h_service_stderr(struct call *c);
enum MHD_Result h_retention_get(struct call *c);
enum MHD_Result h_retention_put(struct call *c);
enum MHD_Result h_run_hold_put(struct call *c);
enum MHD_Result h_run_hold_delete(struct call *c);

#endif
