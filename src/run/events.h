/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The event contract: how a run's events are written (the run), read
 * (`cordon logs`, the API) and followed until the run ends. One module, so
 * the three cannot disagree about what an event is, how long a line may
 * be, or what ends a run.
 *
 * An event is one line of compact JSON in STATE/runs/ID/events.ndjson:
 * an object with "seq" (1, 2, ...), "ts", "run_id" and "type", then the
 * type's fields (docs/runs.md). Only the run writes that file; the agent's
 * words (steps, logs, egress details) are always nested under a field, so
 * the top-level "type" is cordon's. A reader decides that a run ended from
 * that parsed top-level type ("run.finished") of an event of this run,
 * never from the bytes of a line: an agent that writes
 * {"type":"run.finished"} as a step must not end anyone's stream.
 */
#ifndef CORDON_RUN_EVENTS_H
#define CORDON_RUN_EVENTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/err.h"

/* One event line, without its '\n', anywhere in the product: the writer
 * never writes a longer one (it leaves out the largest fields and names
 * them in "omitted"), and readers skip a longer one whole instead of
 * cutting it into invalid JSON. */
#define EVENTS_MAX_LINE (256u * 1024)
/* events.ndjson per run. Past it, one "truncated" event, then nothing but
 * the run's last event (run.finished), so followers still see the end. */
#define EVENTS_MAX_FILE (64ull << 20)
/* The type of the last event of every run. */
#define EVENTS_END_TYPE "run.finished"
#define EVENTS_MAX_TYPE 64

/* ------------------------------------------------------------- writing */

struct events_writer {
	int fd;
	char run_id[64];
	uint64_t seq;	    /* the last seq given */
	uint64_t bytes;	    /* written to fd */
	uint64_t max_bytes; /* 0: EVENTS_MAX_FILE */
	uint64_t dropped;   /* events not written since the cap */
	bool truncated;
	/* Optional, both or neither (redaction of secret values): scrub_json
	 * on the event before it is serialised (0, or negative: the event is
	 * not written at all, fail closed), scrub_line on the line after
	 * (NULL: not written). */
	int (*scrub_json)(void *ctx, json_t *ev);
	char *(*scrub_line)(void *ctx, const char *line, size_t len, size_t *out_len);
	void *ctx;
	char *last; /* the last line written, for events_write's caller */
};

/* Opens (creates, appends) path, mode 0600. */
int events_writer_open(struct events_writer *w, const char *path, const char *run_id,
		       struct cdn_err *err);
void events_writer_close(struct events_writer *w);

/*
 * Writes one event of `type` with data's fields (data may be NULL; it is
 * not changed). The line is at most EVENTS_MAX_LINE. `final` marks the
 * run's last event, which is written even past the file cap. 1 when it
 * was written, with *line and *len the line (valid until the next call);
 * 0 when it was left out (past the cap, or it could not be scrubbed);
 * negative on an I/O or memory error.
 */
int events_write(struct events_writer *w, const char *type, json_t *data, bool final,
		 const char **line, size_t *len);

/* ------------------------------------------------------------- reading */

/* Splits a byte stream into lines of at most EVENTS_MAX_LINE. */
struct events_reader {
	char *buf;
	size_t len, cap;
	bool skipping; /* inside a line over the limit: dropped to its end */
};

typedef void (*events_line_fn)(void *ctx, const char *line, size_t len);

/* Calls fn for each complete line in p (and what was kept from before).
 * Empty lines (keep-alives) are skipped. 0, or -ENOMEM. */
int events_reader_feed(struct events_reader *r, const char *p, size_t n, events_line_fn fn,
		       void *ctx);
void events_reader_free(struct events_reader *r);

/* What a reader needs from a line, parsed: the top-level fields. */
struct events_head {
	uint64_t seq;
	char type[EVENTS_MAX_TYPE + 1];
	char run_id[64];
};

/* 0 when line is a JSON object with a numeric seq and string type and
 * run_id; -EINVAL otherwise. With `obj`, the parsed object is handed out
 * (the caller decrefs). */
int events_parse(const char *line, size_t len, struct events_head *h, json_t **obj);

/* True when h is the end of run `run_id`. */
bool events_is_end(const struct events_head *h, const char *run_id);

/* ------------------------------------------------------------ following */

/*
 * A run's events file, read as it grows. Each poll reads what is there and
 * hands out the complete events whose seq is above `after` (a reader that
 * reconnects resumes there: SSE's Last-Event-ID). `finished` is set once
 * this run's end went by. Lines that are not events of this run are
 * skipped.
 */
struct events_follower {
	int fd;
	char run_id[64];
	uint64_t after;
	bool finished;
	struct events_reader rd;
};

void events_follower_init(struct events_follower *f, int fd, const char *run_id, uint64_t after);
/* Reads the next chunk (at most 64 KiB, so a reader's memory stays
 * bounded however large the file) and calls on_event for each new event
 * completed in it. The number of bytes read (0: nothing new yet), or
 * negative. */
ssize_t events_follow_poll(struct events_follower *f,
			   void (*on_event)(void *ctx, const struct events_head *h,
					    const char *line, size_t len),
			   void *ctx);
/* One line that came another way (a fleet's store, store.h), with the
 * same checks and bookkeeping as a line of the file. */
void events_follow_line(struct events_follower *f, const char *line, size_t len,
			void (*on_event)(void *ctx, const struct events_head *h, const char *line,
					 size_t len),
			void *ctx);
void events_follower_free(struct events_follower *f);

#endif
