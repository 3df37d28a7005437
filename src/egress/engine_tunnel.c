/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CONNECT tunnels that are not inspected: bytes move between the two
 * sockets with splice(2) through a pipe per direction, so they never enter
 * user space. Each pipe is the direction's bounded buffer (its capacity);
 * a full pipe stops reading from the sender until the receiver drains it.
 * A half-close passes through (FIN after the last byte), and the tunnel
 * ends when both directions are done, on an error, or after
 * EGRESS_TUNNEL_IDLE_TIMEOUT_S without traffic.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "egress/engine_internal.h"

#define SPLICE_CHUNK (1 << 20)
#define TUNNEL_PIPE_SIZE (1 << 20) /* per direction, if the kernel allows */

struct dir {
	int from, to;
	int pipe[2];
	size_t queued; /* bytes in the pipe */
	bool eof;      /* `from` said EOF */
	bool shut;     /* FIN passed to `to` */
	struct event *rd, *wr;
	uint64_t bytes;
};

struct egress_tunnel {
	LIST_ENTRY(egress_tunnel) link;
	struct egress_engine *e;
	struct dir d[2]; /* 0: client -> upstream, 1: upstream -> client */
	struct event *idle;
	uint64_t last_ms, start_ms;
	json_t *entry; /* the audit line, completed at the end */
};

static void tunnel_end(struct egress_tunnel *t, const char *why)
{
	if (t->entry) {
		json_object_set_new(t->entry, "request_size", json_integer((json_int_t)t->d[0].bytes));
		json_object_set_new(t->entry, "response_size", json_integer((json_int_t)t->d[1].bytes));
		json_object_set_new(t->entry, "duration_ms",
				    json_integer((json_int_t)(egress_now_ms() - t->start_ms)));
		if (why)
			json_object_set_new(t->entry, "closed", json_string(why));
		egress_audit(t->e, t->entry);
		json_decref(t->entry);
	}
	for (int i = 0; i < 2; i++) {
		struct dir *d = &t->d[i];
		if (d->rd)
			event_free(d->rd);
		if (d->wr)
			event_free(d->wr);
		if (d->pipe[0] >= 0)
			close(d->pipe[0]);
		if (d->pipe[1] >= 0)
			close(d->pipe[1]);
	}
	close(t->d[0].from);
	close(t->d[1].from);
	if (t->idle)
		event_free(t->idle);
	LIST_REMOVE(t, link);
	free(t);
}

static bool done(const struct egress_tunnel *t)
{
	return t->d[0].shut && t->d[1].shut;
}

/* Moves what it can in one direction; false on a hard error. */
static bool pump(struct egress_tunnel *t, struct dir *d)
{
	for (;;) {
		bool progress = false;
		if (!d->eof && d->queued < TUNNEL_PIPE_SIZE) {
			ssize_t n = splice(d->from, NULL, d->pipe[1], NULL, SPLICE_CHUNK,
					   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n > 0) {
				d->queued += (size_t)n;
				d->bytes += (uint64_t)n;
				progress = true;
			} else if (n == 0) {
				d->eof = true;
			} else if (errno != EAGAIN && errno != EINTR) {
				return false;
			}
		}
		if (d->queued > 0) {
			ssize_t n = splice(d->pipe[0], NULL, d->to, NULL, d->queued,
					   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n > 0) {
				d->queued -= (size_t)n;
				progress = true;
			} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
				return false;
			}
		}
		if (!progress)
			break;
	}
	if (d->eof && d->queued == 0 && !d->shut) {
		shutdown(d->to, SHUT_WR);
		d->shut = true;
	}
	/* Read only while the pipe has room; wait for writability only while
	 * it holds bytes. */
	if (!d->eof && d->queued < TUNNEL_PIPE_SIZE)
		event_add(d->rd, NULL);
	else
		event_del(d->rd);
	if (d->queued > 0)
		event_add(d->wr, NULL);
	else
		event_del(d->wr);
	t->last_ms = egress_now_ms();
	return true;
}

static void on_io(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct egress_tunnel *t = arg;
	if (!pump(t, &t->d[0]) || !pump(t, &t->d[1])) {
		tunnel_end(t, "error");
		return;
	}
	if (done(t))
		tunnel_end(t, NULL);
}

static void on_idle(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct egress_tunnel *t = arg;
	uint64_t idle_ms = egress_now_ms() - t->last_ms;
	if (idle_ms >= EGRESS_TUNNEL_IDLE_TIMEOUT_S * 1000ull) {
		tunnel_end(t, "idle timeout");
		return;
	}
	struct timeval tv = { (time_t)(EGRESS_TUNNEL_IDLE_TIMEOUT_S - idle_ms / 1000), 0 };
	evtimer_add(t->idle, &tv);
}

/* Puts bytes that arrived before the switch into a direction's pipe. */
static bool preload(struct dir *d, const void *p, size_t n)
{
	const char *c = p;
	while (n > 0) {
		ssize_t w = write(d->pipe[1], c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false; /* more early data than a pipe holds */
		d->queued += (size_t)w;
		d->bytes += (uint64_t)w;
		c += w;
		n -= (size_t)w;
	}
	return true;
}

int egress_tunnel_start(struct egress_engine *e, int cfd, int ufd, const void *early_c2u,
			size_t c2u_len, const void *early_u2c, size_t u2c_len, json_t *entry,
			struct cdn_err *err)
{
	struct egress_tunnel *t = calloc(1, sizeof(*t));
	if (!t) {
		close(cfd);
		close(ufd);
		json_decref(entry);
		return cdn_err_set(err, ENOMEM, "tunnel");
	}
	t->e = e;
	t->entry = entry;
	t->start_ms = t->last_ms = egress_now_ms();
	LIST_INSERT_HEAD(&e->tunnels, t, link);
	t->d[0] = (struct dir){ .from = cfd, .to = ufd, .pipe = { -1, -1 } };
	t->d[1] = (struct dir){ .from = ufd, .to = cfd, .pipe = { -1, -1 } };
	for (int i = 0; i < 2; i++) {
		struct dir *d = &t->d[i];
		if (pipe2(d->pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
			int r = cdn_err_set(err, errno, "tunnel pipe");
			tunnel_end(t, "error");
			return r;
		}
		/* A bigger pipe means fewer wake-ups per megabyte; the
		 * default (64 KiB) is fine if the kernel says no. */
		(void)fcntl(d->pipe[1], F_SETPIPE_SZ, TUNNEL_PIPE_SIZE);
		d->rd = event_new(e->base, d->from, EV_READ, on_io, t);
		d->wr = event_new(e->base, d->to, EV_WRITE, on_io, t);
		if (!d->rd || !d->wr) {
			tunnel_end(t, "error");
			return cdn_err_set(err, ENOMEM, "tunnel");
		}
	}
	t->idle = evtimer_new(e->base, on_idle, t);
	if (!t->idle || !preload(&t->d[0], early_c2u, c2u_len) ||
	    !preload(&t->d[1], early_u2c, u2c_len)) {
		tunnel_end(t, "error");
		return cdn_err_set(err, EIO, "tunnel setup");
	}
	struct timeval tv = { EGRESS_TUNNEL_IDLE_TIMEOUT_S, 0 };
	evtimer_add(t->idle, &tv);
	on_io(-1, 0, t);
	return 0;
}

void egress_tunnels_close(struct egress_engine *e)
{
	struct egress_tunnel *t;
	while ((t = LIST_FIRST(&e->tunnels)))
		tunnel_end(t, "shutdown");
}
