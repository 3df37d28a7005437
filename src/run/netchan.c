/* SPDX-License-Identifier: Apache-2.0 */
/* One end of the supervisor <-> network part channel (see netchan.h). */
#define _GNU_SOURCE
#include "run/netchan.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/clock.h"

#define READ_CHUNK 65536

struct bytes {
	uint8_t *p;
	size_t len, cap;
};

struct netchan {
	struct event_base *base;
	int fd;
	size_t max_in;
	struct netchan_hooks hooks;
	struct event *rd, *wr, *later;
	struct bytes in;      /* read, not yet delivered */
	struct bytes held;    /* whole frames set aside by netchan_wait, delivered first */
	struct netmsg_buf out; /* queued for writing; out_off bytes of it written */
	size_t out_off;
	unsigned depth; /* entry points running: a free waits for them */
	bool ended, free_after;
};

static int bytes_add(struct bytes *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : READ_CHUNK;
		while (cap < b->len + n)
			cap *= 2;
		uint8_t *q = realloc(b->p, cap);
		if (!q)
			return -ENOMEM;
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

static void bytes_drop(struct bytes *b, size_t n)
{
	memmove(b->p, b->p + n, b->len - n);
	b->len -= n;
}

static void really_free(struct netchan *c)
{
	if (c->rd)
		event_free(c->rd);
	if (c->wr)
		event_free(c->wr);
	if (c->later)
		event_free(c->later);
	if (c->fd >= 0)
		close(c->fd);
	free(c->in.p);
	free(c->held.p);
	netmsg_buf_free(&c->out);
	free(c);
}

/* Every entry point holds the channel while it runs; a netchan_free from
 * inside a hook takes effect when the outermost one returns. */
static void hold(struct netchan *c)
{
	c->depth++;
}

/* Returns true when c was freed: the caller must not touch it again. */
static bool release(struct netchan *c)
{
	if (--c->depth == 0 && c->free_after) {
		really_free(c);
		return true;
	}
	return false;
}

static void end(struct netchan *c, const char *why)
{
	if (c->ended)
		return;
	c->ended = true;
	event_del(c->rd);
	event_del(c->wr);
	c->hooks.on_end(c->hooks.ctx, why);
}

/* Delivers whole frames from b; false when the channel ended or was freed
 * meanwhile. */
static bool deliver(struct netchan *c, struct bytes *b)
{
	for (;;) {
		enum netmsg_type t;
		const uint8_t *p;
		size_t n, used;
		struct cdn_err err = { 0 };
		int r = netmsg_take(b->p, b->len, c->max_in, &t, &p, &n, &used, &err);
		if (r < 0) {
			end(c, err.msg);
			return false;
		}
		if (r == 0)
			return true;
		/* The hook gets its own copy: it may free the channel, and with
		 * it the buffer the frame sits in. */
		_cleanup_free_ uint8_t *copy = malloc(n ? n : 1);
		if (!copy) {
			end(c, "out of memory");
			return false;
		}
		memcpy(copy, p, n);
		bytes_drop(b, used);
		c->hooks.on_frame(c->hooks.ctx, t, copy, n);
		if (c->free_after || c->ended)
			return false;
	}
}

static void process(struct netchan *c)
{
	if (deliver(c, &c->held))
		(void)deliver(c, &c->in);
}

static void on_later(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct netchan *c = arg;
	hold(c);
	process(c);
	release(c);
}

/* Reads what is there: 1, or 0 at EOF, or -1 on an error or when the
 * input would pass its bound (*why says which). */
static int fill(struct netchan *c, const char **why)
{
	uint8_t buf[READ_CHUNK];
	for (;;) {
		ssize_t n = read(c->fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 1;
		if (n == 0) {
			*why = "the other side closed the channel";
			return 0;
		}
		if (n < 0) {
			*why = "the channel broke";
			return -1;
		}
		/* Bounded: a header and the largest payload it may announce. */
		if (c->in.len + (size_t)n > c->max_in + NETMSG_HEADER + READ_CHUNK ||
		    bytes_add(&c->in, buf, (size_t)n) < 0) {
			*why = "the channel's input is over its bound";
			return -1;
		}
	}
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct netchan *c = arg;
	hold(c);
	const char *why = NULL;
	int r = fill(c, &why);
	/* What arrived before an EOF is delivered before the end. */
	process(c);
	if (r <= 0 && !c->free_after)
		end(c, why);
	release(c);
}

static int flush_some(struct netchan *c)
{
	while (c->out_off < c->out.len) {
		ssize_t w = send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			break;
		if (w <= 0)
			return -EPIPE;
		c->out_off += (size_t)w;
	}
	if (c->out_off == c->out.len) {
		c->out.len = c->out_off = 0;
		event_del(c->wr);
	} else {
		event_add(c->wr, NULL);
	}
	return 0;
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct netchan *c = arg;
	hold(c);
	if (flush_some(c) < 0)
		end(c, "the other side closed the channel");
	release(c);
}

int netchan_new(struct event_base *base, int fd, size_t max_in, const struct netchan_hooks *hooks,
		struct netchan **out, struct cdn_err *err)
{
	*out = NULL;
	struct netchan *c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return cdn_err_set(err, ENOMEM, "channel");
	}
	c->base = base;
	c->fd = fd;
	c->max_in = max_in;
	c->hooks = *hooks;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	c->rd = event_new(base, fd, EV_READ | EV_PERSIST, on_read, c);
	c->wr = event_new(base, fd, EV_WRITE, on_write, c);
	c->later = event_new(base, -1, 0, on_later, c);
	if (!c->rd || !c->wr || !c->later || event_add(c->rd, NULL) < 0) {
		really_free(c);
		return cdn_err_set(err, ENOMEM, "channel");
	}
	*out = c;
	return 0;
}

static int send_frame(struct netchan *c, enum netmsg_type type, const void *payload,
		      size_t len)
{
	if (c->ended)
		return -EPIPE;
	if (c->out.len - c->out_off + len > NETMSG_MAX_QUEUED) {
		end(c, "the other side stopped reading the channel");
		return -EPIPE;
	}
	if (c->out_off) {
		/* Reclaim what was written before growing the queue. */
		memmove(c->out.p, c->out.p + c->out_off, c->out.len - c->out_off);
		c->out.len -= c->out_off;
		c->out_off = 0;
	}
	int r = netmsg_put(&c->out, type, payload, len);
	if (r < 0)
		return r;
	if (flush_some(c) < 0) {
		end(c, "the other side closed the channel");
		return -EPIPE;
	}
	return 0;
}

int netchan_send(struct netchan *c, enum netmsg_type type, const void *payload, size_t len)
{
	hold(c);
	int r = send_frame(c, type, payload, len);
	release(c);
	return r;
}

int netchan_send_json(struct netchan *c, enum netmsg_type type, const json_t *j)
{
	_cleanup_free_ char *text = json_dumps(j, JSON_COMPACT);
	if (!text)
		return -ENOMEM;
	return netchan_send(c, type, text, strlen(text));
}

static void flush_blocking(struct netchan *c, int timeout_ms);

static int wait_frame(struct netchan *c, enum netmsg_type want, int timeout_ms, uint8_t **payload,
		      size_t *len, struct cdn_err *err)
{
	*payload = NULL;
	*len = 0;
	int64_t deadline = (int64_t)cdn_mono_ms() + timeout_ms;
	flush_blocking(c, timeout_ms);
	for (;;) {
		if (c->ended)
			return cdn_err_msg(err, EPIPE, "the supervisor is gone");
		/* Set aside whole frames of other types, in order. */
		for (;;) {
			enum netmsg_type t;
			const uint8_t *p;
			size_t n, used;
			int r = netmsg_take(c->in.p, c->in.len, c->max_in, &t, &p, &n, &used, err);
			if (r < 0) {
				end(c, err->msg);
				return r;
			}
			if (r == 0)
				break;
			if (t == want) {
				*payload = malloc(n ? n : 1);
				if (!*payload)
					return cdn_err_set(err, ENOMEM, "channel");
				memcpy(*payload, p, n);
				*len = n;
				bytes_drop(&c->in, used);
				if (c->held.len || c->in.len)
					event_active(c->later, 0, 0);
				return 0;
			}
			if (bytes_add(&c->held, c->in.p, used) < 0)
				return cdn_err_set(err, ENOMEM, "channel");
			bytes_drop(&c->in, used);
		}
		int64_t left = deadline - (int64_t)cdn_mono_ms();
		if (left <= 0)
			return cdn_err_msg(err, ETIMEDOUT, "no answer from the supervisor");
		struct pollfd pf = { .fd = c->fd, .events = POLLIN };
		int pr = poll(&pf, 1, (int)left);
		if (pr < 0 && errno != EINTR)
			return cdn_err_set(err, errno, "channel");
		const char *why = NULL;
		if (pr > 0 && fill(c, &why) <= 0) {
			/* Whole frames still in the buffer are delivered later by
			 * the loop; this wait is over. */
			end(c, why);
			return cdn_err_msg(err, EPIPE, "the supervisor is gone");
		}
	}
}

int netchan_wait(struct netchan *c, enum netmsg_type want, int timeout_ms, uint8_t **payload,
		 size_t *len, struct cdn_err *err)
{
	hold(c);
	int r = wait_frame(c, want, timeout_ms, payload, len, err);
	release(c);
	return r;
}

static void flush_blocking(struct netchan *c, int timeout_ms)
{
	int64_t deadline = (int64_t)cdn_mono_ms() + timeout_ms;
	while (!c->ended && c->out_off < c->out.len) {
		if (flush_some(c) < 0) {
			end(c, "the other side closed the channel");
			return;
		}
		int64_t left = deadline - (int64_t)cdn_mono_ms();
		if (c->out_off == c->out.len || left <= 0)
			return;
		struct pollfd pf = { .fd = c->fd, .events = POLLOUT };
		(void)poll(&pf, 1, (int)left);
	}
}

void netchan_flush(struct netchan *c, int timeout_ms)
{
	hold(c);
	flush_blocking(c, timeout_ms);
	release(c);
}

void netchan_free(struct netchan *c)
{
	if (!c)
		return;
	if (c->depth > 0) {
		c->free_after = true;
		event_del(c->rd);
		event_del(c->wr);
		event_del(c->later);
		return;
	}
	really_free(c);
}
