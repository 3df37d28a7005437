/* SPDX-License-Identifier: Apache-2.0 */
/* The event contract: writing, reading and following (events.h). */
#define _GNU_SOURCE
#include "run/events.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/clock.h"

#define READ_CHUNK 65536

/* ------------------------------------------------------------- writing */

int events_writer_open(struct events_writer *w, const char *path, const char *run_id,
		       struct cdn_err *err)
{
	memset(w, 0, sizeof(*w));
	snprintf(w->run_id, sizeof(w->run_id), "%s", run_id);
	w->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (w->fd < 0)
		return cdn_err_set(err, errno, "create %s", path);
	return 0;
}

void events_writer_close(struct events_writer *w)
{
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	free(w->last);
	w->last = NULL;
}

static bool envelope_key(const char *k)
{
	return !strcmp(k, "seq") || !strcmp(k, "ts") || !strcmp(k, "run_id") ||
	       !strcmp(k, "type") || !strcmp(k, "omitted");
}

/* Leaves out the largest of ev's own fields, naming it in "omitted". False
 * when none is left. */
static bool omit_largest(json_t *ev)
{
	const char *key, *worst = NULL;
	size_t worst_len = 0;
	json_t *v;
	json_object_foreach(ev, key, v)
	{
		if (envelope_key(key))
			continue;
		char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		size_t n = t ? strlen(t) : SIZE_MAX;
		free(t);
		if (!worst || n > worst_len) {
			worst = key;
			worst_len = n;
		}
	}
	if (!worst)
		return false;
	json_t *omitted = json_object_get(ev, "omitted");
	if (!omitted) {
		omitted = json_array();
		json_object_set_new(ev, "omitted", omitted);
	}
	json_array_append_new(omitted, json_string(worst));
	json_object_del(ev, worst);
	return true;
}

/* The line for ev, scrubbed, at most EVENTS_MAX_LINE: NULL when it cannot
 * be made (memory, or a scrubber that refused). */
static char *format(struct events_writer *w, json_t *ev, size_t *len)
{
	for (;;) {
		if (w->scrub_json && w->scrub_json(w->ctx, ev) < 0)
			return NULL;
		char *text = json_dumps(ev, JSON_COMPACT | JSON_SORT_KEYS);
		if (!text)
			return NULL;
		size_t n = strlen(text);
		if (w->scrub_line) {
			char *safe = w->scrub_line(w->ctx, text, n, &n);
			free(text);
			if (!safe)
				return NULL;
			text = safe;
		}
		if (n <= EVENTS_MAX_LINE) {
			*len = n;
			return text;
		}
		free(text);
		if (!omit_largest(ev))
			return NULL;
	}
}

static int write_line(struct events_writer *w, const char *line, size_t len)
{
	if (w->fd < 0)
		return 0;
	struct iovec iov[2] = {{(void *)line, len}, {"\n", 1}};
	size_t want = len + 1;
	ssize_t n;
	do
		n = writev(w->fd, iov, 2);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if ((size_t)n != want)
		return -EIO; /* a short append: the disk is full */
	w->bytes += want;
	return 0;
}

static json_t *envelope(struct events_writer *w, const char *type)
{
	char ts[CDN_RFC3339_MAX];
	cdn_rfc3339(cdn_wall_ms(), CDN_TIME_MS, ts, sizeof(ts));
	return json_pack("{s:I, s:s, s:s, s:s}", "seq", (json_int_t)(w->seq + 1), "ts", ts,
			 "run_id", w->run_id, "type", type);
}

int events_write(struct events_writer *w, const char *type, json_t *data, bool final,
		 const char **line, size_t *len)
{
	uint64_t cap = w->max_bytes ? w->max_bytes : EVENTS_MAX_FILE;
	if (w->truncated && !final) {
		w->dropped++;
		return 0;
	}
	json_t *ev = envelope(w, type);
	if (!ev)
		return -ENOMEM;
	if (data)
		json_object_update(ev, data);
	if (w->truncated)
		json_object_set_new(ev, "events_dropped", json_integer((json_int_t)w->dropped));
	size_t n = 0;
	char *text = format(w, ev, &n);
	json_decref(ev);
	if (!text)
		return 0; /* never an unscrubbed line: fail closed */
	if (!final && w->bytes + n + 1 > cap) {
		/*
		 * The cap: an agent that reports steps, logs or requests without
		 * end (3000 MCP log calls made 12 MiB in 3 s) must not fill the
		 * server's disk. One event says so; the run's end still comes.
		 */
		free(text);
		w->truncated = true;
		w->dropped++;
		json_t *t = envelope(w, "truncated");
		if (t)
			json_object_set_new(t, "limit_bytes", json_integer((json_int_t)cap));
		text = t ? format(w, t, &n) : NULL;
		json_decref(t);
		int r = text ? write_line(w, text, n) : -ENOMEM;
		if (r == 0)
			w->seq++;
		free(text);
		return r < 0 ? r : 0;
	}
	int r = write_line(w, text, n);
	if (r < 0) {
		free(text);
		return r;
	}
	w->seq++;
	free(w->last);
	w->last = text;
	if (line)
		*line = text;
	if (len)
		*len = n;
	return 1;
}

/* ------------------------------------------------------------- reading */

void events_reader_free(struct events_reader *r)
{
	free(r->buf);
	memset(r, 0, sizeof(*r));
}

int events_reader_feed(struct events_reader *r, const char *p, size_t n, events_line_fn fn,
		       void *ctx)
{
	while (n) {
		const char *nl = memchr(p, '\n', n);
		size_t seg = nl ? (size_t)(nl - p) : n;
		if (r->skipping) {
			/* the rest of a line over the limit */
		} else if (nl && r->len == 0) {
			/* a whole line in this chunk: no copy */
			if (seg > EVENTS_MAX_LINE)
				; /* never one cordon wrote */
			else if (seg)
				fn(ctx, p, seg);
		} else if (r->len + seg > EVENTS_MAX_LINE) {
			r->skipping = true;
			r->len = 0;
		} else {
			if (r->len + seg > r->cap) {
				size_t nc = r->cap ? r->cap : 4096;
				while (nc < r->len + seg)
					nc *= 2;
				char *nb = realloc(r->buf, nc);
				if (!nb)
					return -ENOMEM;
				r->buf = nb;
				r->cap = nc;
			}
			memcpy(r->buf + r->len, p, seg);
			r->len += seg;
			if (nl && r->len) {
				fn(ctx, r->buf, r->len);
				r->len = 0;
			}
		}
		if (nl) {
			r->skipping = false;
			seg++;
		}
		p += seg;
		n -= seg;
	}
	return 0;
}

int events_parse(const char *line, size_t len, struct events_head *h, json_t **obj)
{
	memset(h, 0, sizeof(*h));
	if (obj)
		*obj = NULL;
	json_t *j = json_loadb(line, len, 0, NULL);
	json_t *seq = json_object_get(j, "seq");
	const char *type = json_string_value(json_object_get(j, "type"));
	const char *run = json_string_value(json_object_get(j, "run_id"));
	if (!json_is_object(j) || !json_is_integer(seq) || json_integer_value(seq) < 0 || !type ||
	    !run || strlen(type) > EVENTS_MAX_TYPE || strlen(run) >= sizeof(h->run_id)) {
		json_decref(j);
		return -EINVAL;
	}
	h->seq = (uint64_t)json_integer_value(seq);
	snprintf(h->type, sizeof(h->type), "%s", type);
	snprintf(h->run_id, sizeof(h->run_id), "%s", run);
	if (obj)
		*obj = j;
	else
		json_decref(j);
	return 0;
}

bool events_is_end(const struct events_head *h, const char *run_id)
{
	return strcmp(h->type, EVENTS_END_TYPE) == 0 && strcmp(h->run_id, run_id) == 0;
}

/* ------------------------------------------------------------ following */

void events_follower_init(struct events_follower *f, int fd, const char *run_id, uint64_t after)
{
	memset(f, 0, sizeof(*f));
	f->fd = fd;
	f->after = after;
	snprintf(f->run_id, sizeof(f->run_id), "%s", run_id);
}

void events_follower_free(struct events_follower *f)
{
	events_reader_free(&f->rd);
}

struct follow_call {
	struct events_follower *f;
	void (*on_event)(void *ctx, const struct events_head *h, const char *line, size_t len);
	void *ctx;
};

void events_follow_line(struct events_follower *f, const char *line, size_t len,
			void (*on_event)(void *ctx, const struct events_head *h, const char *line,
					 size_t len),
			void *ctx)
{
	struct events_head h;
	if (len > EVENTS_MAX_LINE || events_parse(line, len, &h, NULL) < 0 ||
	    strcmp(h.run_id, f->run_id) != 0)
		return;
	if (events_is_end(&h, f->run_id))
		f->finished = true;
	if (h.seq <= f->after)
		return;
	f->after = h.seq;
	on_event(ctx, &h, line, len);
}

static void follow_line(void *ctx, const char *line, size_t len)
{
	struct follow_call *fc = ctx;
	events_follow_line(fc->f, line, len, fc->on_event, fc->ctx);
}

ssize_t events_follow_poll(struct events_follower *f,
			   void (*on_event)(void *ctx, const struct events_head *h,
					    const char *line, size_t len),
			   void *ctx)
{
	_cleanup_free_ char *buf = malloc(READ_CHUNK);
	if (!buf)
		return -ENOMEM;
	struct follow_call fc = {.f = f, .on_event = on_event, .ctx = ctx};
	ssize_t n;
	do
		n = read(f->fd, buf, READ_CHUNK);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n > 0 && events_reader_feed(&f->rd, buf, (size_t)n, follow_line, &fc) < 0)
		return -ENOMEM;
	return n;
}
