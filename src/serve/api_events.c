/* SPDX-License-Identifier: Apache-2.0 */
/*
 * GET /v1/runs/{id}/events: a run's events as NDJSON or SSE, to the end
 * or, with follow, as they come; and GET /v1/runs/{id}/stdout (stderr)
 * with follow: the output as the run writes it.
 */
#define _GNU_SOURCE
#include "serve/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/clock.h"
#include "run/events.h"

/* A keep-alive on an idle event stream this often: how a follower that
 * went away without closing is noticed. */
#define STREAM_KEEPALIVE_S 15
/* How long a follower waits for run.finished once the record is final. */
#define FINAL_GRACE_MS 2000
/* How often an output follower looks for more of the file. */
#define OUTPUT_POLL_MS 50
/* How often a follower of a run on another host asks the store. */
#define REMOTE_POLL_MS 100
#define REMOTE_POLL_LINES 256

/*
 * The event stream: the run's events.ndjson from the start (or after
 * Last-Event-ID), then, with follow, what comes, until this run's
 * run.finished (the parsed type, events.h), the record is final, or the
 * server stops. A queued run has no file yet: it is waited for.
 *
 * A follower holds a connection and a thread. Two things keep that
 * bounded: each key has at most SERVE_MAX_STREAMS_PER_KEY streams, and a
 * client that went away is noticed, by a peer shutdown seen on the socket
 * at once, and by a keep-alive every STREAM_KEEPALIVE_S (a blank line in
 * NDJSON, an SSE comment) that fails on a dead connection. Without them 64
 * abandoned streams kept their slots for as long as the runs lasted.
 */
struct stream {
	struct server *sv;
	struct MHD_Connection *conn;
	char id[STORE_RUN_ID_MAX + 1];
	char path[PATH_MAX];
	char key_id[STORE_MAX_NAME + 1];
	struct events_follower f;
	bool follow, sse, done;
	bool remote; /* the store has the events of runs on other hosts */
	int64_t remote_ms;
	char *out;
	size_t out_len, out_off, out_cap;
	int64_t last_sent_ms, last_check_ms, final_ms;
};

static bool out_append(struct stream *s, const char *p, size_t n)
{
	if (s->out_off == s->out_len)
		s->out_off = s->out_len = 0;
	if (s->out_len + n > s->out_cap) {
		size_t nc = s->out_cap ? s->out_cap : 16384;
		while (nc < s->out_len + n)
			nc *= 2;
		char *nb = realloc(s->out, nc);
		if (!nb)
			return false;
		s->out = nb;
		s->out_cap = nc;
	}
	memcpy(s->out + s->out_len, p, n);
	s->out_len += n;
	return true;
}

static void on_stream_event(void *ctx, const struct events_head *h, const char *line,
			    size_t len)
{
	struct stream *s = ctx;
	/* The server's own paths are not the API's business (run_dir names
	 * where the state lives): such an event goes out without them. */
	_cleanup_free_ char *text = NULL;
	if (memmem(line, len, "\"run_dir\"", 9)) {
		struct events_head again;
		json_t *ev = NULL;
		if (events_parse(line, len, &again, &ev) == 0) {
			json_object_del(ev, "run_dir");
			text = json_dumps(ev, JSON_COMPACT | JSON_SORT_KEYS);
		}
		json_decref(ev);
		if (!text)
			return;
		line = text;
		len = strlen(text);
	}
	char id[48];
	if (s->sse) {
		snprintf(id, sizeof(id), "id: %llu\ndata: ", (unsigned long long)h->seq);
		out_append(s, id, strlen(id));
	}
	out_append(s, line, len);
	out_append(s, s->sse ? "\n\n" : "\n", s->sse ? 2 : 1);
}

/* The client closed its side: nobody reads this stream any more. */
static bool client_gone(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (!ci)
		return true;
	struct pollfd p = { .fd = ci->connect_fd, .events = POLLRDHUP };
	return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

static bool run_final(struct server *sv, const char *id)
{
	struct store_run r;
	if (store_run_get(sv->s, id, &r, NULL) < 0)
		return true;
	bool fin = store_run_status_final(r.status);
	store_run_clear(&r);
	return fin;
}

/* The run's events that came since, from a fleet's store (store.h, "Reaching
 * a run on another host"): the lines the run wrote there as it went. How
 * many were read; 0 when none (or the store failed: the end, from S3,
 * still comes). */
static size_t remote_poll(struct stream *s)
{
	struct store_event_line *v = NULL;
	size_t n = 0;
	if (store_run_events_read(s->sv->s, s->id, s->f.after, REMOTE_POLL_LINES, &v, &n, NULL) < 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		events_follow_line(&s->f, v[i].line, v[i].len, on_stream_event, s);
		/* a row that is not this run's event is passed, not read again */
		if (v[i].seq > s->f.after)
			s->f.after = v[i].seq;
	}
	store_event_lines_free(v, n);
	return n;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	(void)pos;
	struct stream *s = cls;
	for (;;) {
		if (s->out_off < s->out_len) {
			size_t n = s->out_len - s->out_off;
			if (n > max)
				n = max;
			memcpy(buf, s->out + s->out_off, n);
			s->out_off += n;
			s->last_sent_ms = cdn_wall_ms();
			return (ssize_t)n;
		}
		int64_t now = cdn_wall_ms();
		if (s->f.fd < 0 && !s->done) {
			s->f.fd = open(s->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
			/* Not on this host: what the run has written so far. */
			if (s->f.fd < 0 && !s->follow && !(s->remote && remote_poll(s) > 0))
				s->done = true;
			else if (s->f.fd < 0 && !s->follow)
				continue;
		}
		if (s->f.fd >= 0) {
			ssize_t n = events_follow_poll(&s->f, on_stream_event, s);
			if (n < 0)
				return MHD_CONTENT_READER_END_WITH_ERROR;
			if (n > 0)
				continue;
		} else if (s->remote && !s->done && !s->f.finished &&
			   now - s->remote_ms >= REMOTE_POLL_MS) {
			s->remote_ms = now;
			if (remote_poll(s) > 0)
				continue;
		}
		/* The record is final a moment before run.finished is written:
		 * that moment is waited for (the end of a run whose supervisor
		 * died never comes, so not for long). */
		if (!s->follow || s->f.finished ||
		    (s->done && (s->f.fd < 0 || now - s->final_ms >= FINAL_GRACE_MS)))
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (client_gone(s->conn))
			return MHD_CONTENT_READER_END_WITH_ERROR;
		/* Every half second: has the run ended (maybe without run.finished:
		 * its supervisor died), or is the server stopping? */
		if (!s->done && now - s->last_check_ms >= 500) {
			s->last_check_ms = now;
			if (run_final(s->sv, s->id)) {
				s->done = true;
				s->final_ms = now;
				/* It ran on another host (a worker): now that it
				 * has ended, its events are in the blob store. */
				if (s->f.fd < 0 &&
				    store_run_files_pull(s->sv->s, s->id, NULL) == 0)
					s->f.fd = open(s->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
				continue;
			}
			pthread_mutex_lock(&s->sv->mu);
			bool stop = s->sv->stop;
			pthread_mutex_unlock(&s->sv->mu);
			if (stop)
				return MHD_CONTENT_READER_END_OF_STREAM;
		}
		if (now - s->last_sent_ms >= STREAM_KEEPALIVE_S * 1000) {
			const char *ka = s->sse ? ": keep-alive\n\n" : "\n";
			if (!out_append(s, ka, strlen(ka)))
				return MHD_CONTENT_READER_END_WITH_ERROR;
			continue;
		}
		struct timespec ts = { 0, 25 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

/* Live streams per key (a short list: keys with a stream open). */
static bool streams_take(struct server *sv, const char *key_id)
{
	pthread_mutex_lock(&sv->lim_mu);
	struct key_streams *k = sv->streams;
	while (k && strcmp(k->key_id, key_id) != 0)
		k = k->next;
	bool ok = true;
	if (!k && (k = calloc(1, sizeof(*k)))) {
		snprintf(k->key_id, sizeof(k->key_id), "%s", key_id);
		k->next = sv->streams;
		sv->streams = k;
	}
	if (!k || k->n >= sv->max_streams_per_key)
		ok = false;
	else
		k->n++;
	pthread_mutex_unlock(&sv->lim_mu);
	return ok;
}

static void streams_give(struct server *sv, const char *key_id)
{
	pthread_mutex_lock(&sv->lim_mu);
	for (struct key_streams **pp = &sv->streams; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->key_id, key_id) == 0) {
			struct key_streams *k = *pp;
			if (--k->n == 0) {
				*pp = k->next;
				free(k);
			}
			break;
		}
	pthread_mutex_unlock(&sv->lim_mu);
}

static void stream_free(void *cls)
{
	struct stream *s = cls;
	if (s->f.fd >= 0)
		close(s->f.fd);
	events_follower_free(&s->f);
	streams_give(s->sv, s->key_id);
	free(s->out);
	free(s);
}

/* Last-Event-ID (what an SSE client sends when it reconnects) or ?after=:
 * events up to that seq are not sent again. */
static bool resume_point(struct call *c, uint64_t *after)
{
	const char *v = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, "Last-Event-ID");
	if (!v)
		v = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, "after");
	*after = 0;
	if (!v || !*v)
		return true;
	char *end;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	if (*end || errno || v[0] == '-')
		return false;
	*after = n;
	return true;
}

enum MHD_Result api_run_events(struct call *c, const char *id)
{
	const char *f = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, "follow");
	const char *accept = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, "Accept");
	uint64_t after;
	if (!resume_point(c, &after))
		return api_fail(c->conn, 400, "bad_request",
				"Last-Event-ID (or after): the seq of the last event received");
	if (!streams_take(c->sv, c->key.id))
		return api_fail(c->conn, 429, "too_many_requests",
				"this key has %u event streams open, its limit; close one first",
				c->sv->max_streams_per_key);
	struct stream *s = calloc(1, sizeof(*s));
	if (!s) {
		streams_give(c->sv, c->key.id);
		return MHD_NO;
	}
	s->sv = c->sv;
	s->conn = c->conn;
	snprintf(s->id, sizeof(s->id), "%s", id);
	snprintf(s->key_id, sizeof(s->key_id), "%s", c->key.id);
	/* A finished run's events may be on the blob store's S3 only. */
	(void)store_run_files_pull(c->sv->s, id, NULL);
	(void)store_run_file(c->sv->s, id, "events.ndjson", s->path, sizeof(s->path), NULL);
	s->follow = f && (strcmp(f, "1") == 0 || strcmp(f, "true") == 0);
	s->remote = store_has_run_controls(c->sv->s) && store_blobs_shown(c->sv->s);
	s->sse = accept && strstr(accept, "text/event-stream");
	s->last_sent_ms = cdn_wall_ms();
	events_follower_init(&s->f, -1, id, after);
	struct MHD_Response *r =
		MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, s, stream_free);
	if (!r) {
		stream_free(s);
		return MHD_NO;
	}
	api_headers(r);
	MHD_add_response_header(r, "Content-Type",
				s->sse ? "text/event-stream" : "application/x-ndjson");
	enum MHD_Result ret = MHD_queue_response(c->conn, 200, r);
	MHD_destroy_response(r);
	return ret;
}

/*
 * An output follower: the run directory's copy of stdout or stderr from
 * an offset, as it grows, until the record is final and the file is read
 * to its end. That copy is what the run wrote after redaction (run.c
 * feeds the agent's bytes through a redact_stream, which holds back any
 * tail that could still become a secret's value), so a follower sees
 * nothing the finished file would not show; and it is capped by the
 * run's --capture. It counts against the key's streams, as an event
 * follower does; plain text has no room for a keep-alive, so a client
 * that vanished without closing holds its slot until the run ends.
 */
struct out_stream {
	struct server *sv;
	struct MHD_Connection *conn;
	char id[STORE_RUN_ID_MAX + 1];
	char path[PATH_MAX];
	char key_id[STORE_MAX_NAME + 1];
	int fd;
	uint64_t off;
	bool done;
	int64_t last_check_ms;
};

static ssize_t output_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	(void)pos;
	struct out_stream *s = cls;
	for (;;) {
		if (s->fd < 0)
			s->fd = open(s->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (s->fd >= 0) {
			ssize_t n = pread(s->fd, buf, max, (off_t)s->off);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return MHD_CONTENT_READER_END_WITH_ERROR;
			if (n > 0) {
				s->off += (uint64_t)n;
				return n;
			}
		}
		/* Read to the end after the record was final: nothing more comes
		 * (the run closes its copy before it finishes the record). */
		if (s->done)
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (client_gone(s->conn))
			return MHD_CONTENT_READER_END_WITH_ERROR;
		int64_t now = cdn_wall_ms();
		if (now - s->last_check_ms >= 500) {
			s->last_check_ms = now;
			if (run_final(s->sv, s->id)) {
				s->done = true;
				continue; /* one more read: what came before the end */
			}
			pthread_mutex_lock(&s->sv->mu);
			bool stop = s->sv->stop;
			pthread_mutex_unlock(&s->sv->mu);
			if (stop)
				return MHD_CONTENT_READER_END_OF_STREAM;
		}
		struct timespec ts = { 0, OUTPUT_POLL_MS * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

static void output_free(void *cls)
{
	struct out_stream *s = cls;
	if (s->fd >= 0)
		close(s->fd);
	streams_give(s->sv, s->key_id);
	free(s);
}

enum MHD_Result api_run_output_follow(struct call *c, const char *id, const char *which,
				      uint64_t offset)
{
	if (!streams_take(c->sv, c->key.id))
		return api_fail(c->conn, 429, "too_many_requests",
				"this key has %u event and output streams open, its limit; close "
				"one first",
				c->sv->max_streams_per_key);
	struct out_stream *s = calloc(1, sizeof(*s));
	if (!s) {
		streams_give(c->sv, c->key.id);
		return MHD_NO;
	}
	s->sv = c->sv;
	s->conn = c->conn;
	s->fd = -1;
	s->off = offset;
	snprintf(s->id, sizeof(s->id), "%s", id);
	snprintf(s->key_id, sizeof(s->key_id), "%s", c->key.id);
	(void)store_run_file(c->sv->s, id, which, s->path, sizeof(s->path), NULL);
	struct MHD_Response *r =
		MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, output_read, s, output_free);
	if (!r) {
		output_free(s);
		return MHD_NO;
	}
	api_headers(r);
	MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
	enum MHD_Result ret = MHD_queue_response(c->conn, 200, r);
	MHD_destroy_response(r);
	return ret;
}
