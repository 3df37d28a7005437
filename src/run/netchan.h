/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One end of the supervisor <-> network part channel on an event loop:
 * frames in (netmsg_take, bounded by `max_in`), frames out through a queue
 * that never blocks the loop and is itself bounded (NETMSG_MAX_QUEUED: a
 * peer that stops reading ends the channel instead of growing it). Both
 * sides use it, so framing, partial reads and writes are written once.
 */
#ifndef CORDON_RUN_NETCHAN_H
#define CORDON_RUN_NETCHAN_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "run/netmsg.h"

struct event_base;
struct netchan;

struct netchan_hooks {
	void *ctx;
	/* A whole frame; the payload lives until the hook returns. The hook
	 * may call netchan_free. */
	void (*on_frame)(void *ctx, enum netmsg_type type, const uint8_t *payload, size_t len);
	/* The channel is over: the peer closed it, sent a malformed frame,
	 * or stopped reading. Called once; no frame follows. */
	void (*on_end)(void *ctx, const char *why);
};

/* Takes the fd (made non-blocking here). */
int netchan_new(struct event_base *base, int fd, size_t max_in, const struct netchan_hooks *hooks,
		struct netchan **out, struct cdn_err *err);

/* Queues a frame; -EPIPE once the channel is over. */
int netchan_send(struct netchan *c, enum netmsg_type type, const void *payload, size_t len);
int netchan_send_json(struct netchan *c, enum netmsg_type type, const json_t *j);

/*
 * Waits, blocking, up to timeout_ms for a frame of type `want` (what the
 * network part does while the supervisor writes an artifact): frames of
 * other types that arrive meanwhile are delivered through on_frame later,
 * from the loop, never from inside this call. *payload is malloc'd.
 */
int netchan_wait(struct netchan *c, enum netmsg_type want, int timeout_ms, uint8_t **payload,
		 size_t *len, struct cdn_err *err);

/* Writes what is queued, blocking up to timeout_ms (before a clean exit). */
void netchan_flush(struct netchan *c, int timeout_ms);

void netchan_free(struct netchan *c);

#endif
