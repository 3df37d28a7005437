/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A run's control socket: how a human reaches a running run, to list the
 * requests that wait for a decision and to decide them (`cordon approvals`,
 * `cordon serve`). One module for all three parts, so each check is made
 * once:
 *
 *  - the directory: /run/cordon as root, else $XDG_RUNTIME_DIR/cordon, else
 *    /tmp/cordon-UID. It is checked on its fd, never its path: it must be a
 *    directory owned by us with no access for group or others. Another
 *    local user who made /tmp/cordon-UID first (to show forged approvals
 *    and receive the decisions) is refused with that reason. Sockets are
 *    then bound and connected through /proc/self/fd/N/, the checked inode,
 *    so swapping the path afterwards changes nothing;
 *  - the server (in the run's privileged supervisor): one socket per run,
 *    RUN_ID.sock, mode 0600; it checks SO_PEERCRED (root or our own uid),
 *    bounds each request line (CONTROL_MAX_LINE) and each connection's life
 *    (CONTROL_TIMEOUT_S), and answers one request per connection;
 *  - the client: checks that the peer is root or its own uid, sends with
 *    MSG_NOSIGNAL (a server gone mid-request is an error, not SIGPIPE), and
 *    reads a bounded reply with a timeout.
 *
 * Protocol: one JSON object per line, one request per connection.
 *   {"op":"list"}
 *     -> {"ok":true,"run_id":"...","approvals":[{"id","method","waiting_s",
 *         "expires_in_s", and "host","port","path" (a held request) or
 *         "source":"mcp","action","reason","reason_truncated"? (an agent's
 *         request_approval call)}]}
 *   {"op":"decide","id":"apr_...","approve":true,"by":"alice"}
 *     -> {"ok":true} | {"ok":false,"error":"..."}
 *   {"op":"cancel","by":"alice"}
 *     -> {"ok":true} | {"ok":false,"error":"..."}   (cordon runs cancel)
 */
#ifndef CORDON_RUN_CONTROL_H
#define CORDON_RUN_CONTROL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define CONTROL_MAX_LINE 4096	  /* bytes of a request */
#define CONTROL_MAX_REPLY 262144  /* bytes of a reply the client reads */
#define CONTROL_TIMEOUT_S 5	  /* a connection's whole life */
#define CONTROL_MAX_CLIENTS 16	  /* connections served at once per run */
#define CONTROL_MAX_APPROVALS 128 /* waiting requests listed per run */
/* Bytes of an agent's reason in a listing (cut at a character boundary,
 * with reason_truncated; the approval.requested event has all of it):
 * 16 MCP approvals of 4096 four-byte characters would not fit a reply. */
#define CONTROL_MAX_REASON 2048

struct event_base;

/* Opens (creating it when `create`) the control directory and checks it
 * on its fd. Returns the directory fd; *path gets its name. */
int control_dir_open(bool create, char *path, size_t cap, struct cdn_err *err);

/* ------------------------------------------------------------- server */

struct control_hooks {
	void *ctx;
	/* A human's decision on a listed approval: 0, or negative with err
	 * (the message goes back to the human). */
	int (*decide)(void *ctx, const char *id, bool approve, const char *by, struct cdn_err *err);
	/* A human stops the run: 0 once it is being stopped, or negative
	 * with err. NULL: this run cannot be cancelled here. */
	int (*cancel)(void *ctx, const char *by, struct cdn_err *err);
};

struct control_server;

int control_server_new(struct event_base *base, const char *run_id,
		       const struct control_hooks *hooks, struct control_server **out,
		       struct cdn_err *err);

/* A request now waits for a human: the data of its "approval.requested"
 * event (approval_id, method, hostname, port, path, timeout_s; or for an
 * MCP request_approval call source "mcp", action, reason). Fields are
 * copied, bounded. */
void control_approval_add(struct control_server *s, const json_t *requested);

/* The entry a listing gives for a requested event's data, without its
 * times (waiting_s, expires_in_s); *timeout_ms gets the wait it was given
 * (0: none). NULL when it names no approval. For listings made
 * elsewhere: a shared store's (store.h, "Reaching a run on another
 * host"). */
json_t *control_approval_entry(const json_t *requested, int64_t *timeout_ms);

/* One request, as if it came on the socket: the same checks, the same
 * reply. For requests that come another way (a shared store's). */
json_t *control_apply(struct control_server *s, const json_t *req);

/* It was decided, timed out or abandoned ("approval.decided"). */
void control_approval_remove(struct control_server *s, const char *id);

/* Closes the listener and removes the socket. NULL is fine. */
void control_server_free(struct control_server *s);

/* ------------------------------------------------------------- client */

/* One request and its reply on the control socket of run `run_id`; NULL
 * with err set when nobody (trusted) answers. */
json_t *control_ask(const char *run_id, const json_t *req, struct cdn_err *err);

/* Calls fn with the run id of each control socket in the directory (the
 * id is the socket's name, never what the socket says about itself);
 * stops when fn returns > 0 and returns that. */
int control_each(int (*fn)(const char *run_id, void *ctx), void *ctx, struct cdn_err *err);

#endif
