/* SPDX-License-Identifier: Apache-2.0 */
/* The event contract (run/events.h): bounded lines, a bounded file with a
 * truncated event and the end still written, readers that never cut a
 * line, and a run's end decided from the parsed top-level type only. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "run/events.h"

struct file {
	char path[64];
	int fd; /* read end */
};

static void file_open(struct file *f, struct events_writer *w)
{
	snprintf(f->path, sizeof(f->path), "/tmp/cordon-test-events.XXXXXX");
	int t = mkstemp(f->path);
	assert_true(t >= 0);
	close(t);
	unlink(f->path);
	struct cdn_err err = {0};
	assert_int_equal(events_writer_open(w, f->path, "run_t", &err), 0);
	f->fd = open(f->path, O_RDONLY | O_CLOEXEC);
	assert_true(f->fd >= 0);
}

static void file_close(struct file *f, struct events_writer *w)
{
	events_writer_close(w);
	close(f->fd);
	unlink(f->path);
}

struct seen {
	size_t n;
	uint64_t seq[64];
	char type[64][EVENTS_MAX_TYPE + 1];
	size_t len[64];
};

static void on_event(void *ctx, const struct events_head *h, const char *line, size_t len)
{
	struct seen *s = ctx;
	assert_true(s->n < 64);
	s->seq[s->n] = h->seq;
	snprintf(s->type[s->n], sizeof(s->type[0]), "%s", h->type);
	s->len[s->n++] = len;
	json_t *j = json_loadb(line, len, 0, NULL); /* whole JSON, always */
	assert_non_null(j);
	json_decref(j);
}

static void drain(struct events_follower *f, struct seen *s)
{
	while (events_follow_poll(f, on_event, s) > 0)
		;
}

/* A line over the limit leaves out its largest fields, named in omitted. */
static void test_line_limit(void **state)
{
	(void)state;
	struct events_writer w;
	struct file f;
	file_open(&f, &w);
	char *big = malloc(EVENTS_MAX_LINE + 10);
	memset(big, 'x', EVENTS_MAX_LINE + 9);
	big[EVENTS_MAX_LINE + 9] = '\0';
	json_t *d = json_pack("{s:s, s:s, s:i}", "output", big, "status", "succeeded", "n", 3);
	const char *line;
	size_t len;
	assert_int_equal(events_write(&w, "run.finished", d, true, &line, &len), 1);
	assert_true(len <= EVENTS_MAX_LINE);
	json_t *j = json_loadb(line, len, 0, NULL);
	assert_non_null(j);
	assert_null(json_object_get(j, "output"));
	assert_string_equal(json_string_value(json_object_get(j, "status")), "succeeded");
	assert_string_equal(json_string_value(json_array_get(json_object_get(j, "omitted"), 0)),
			    "output");
	json_decref(j);
	json_decref(d);
	free(big);
	file_close(&f, &w);
}

/* Past the file cap: one truncated event, nothing more but the end, which
 * says how many were dropped; seq has no gap. */
static void test_file_cap(void **state)
{
	(void)state;
	struct events_writer w;
	struct file f;
	file_open(&f, &w);
	w.max_bytes = 1000;
	json_t *d = json_pack("{s:s}", "text", "0123456789012345678901234567890123456789");
	int written = 0, dropped = 0;
	for (int i = 0; i < 40; i++) {
		int r = events_write(&w, "step", d, false, NULL, NULL);
		assert_true(r == 0 || r == 1);
		written += r;
		dropped += !r;
	}
	assert_true(written > 3 && dropped > 0);
	assert_true(w.truncated);
	assert_int_equal(events_write(&w, "run.finished", NULL, true, NULL, NULL), 1);
	json_decref(d);
	struct events_follower fo;
	events_follower_init(&fo, f.fd, "run_t", 0);
	struct seen s = {0};
	drain(&fo, &s);
	assert_int_equal(s.n, (size_t)written + 2);
	for (size_t i = 0; i < s.n; i++)
		assert_int_equal(s.seq[i], i + 1);
	assert_string_equal(s.type[s.n - 2], "truncated");
	assert_string_equal(s.type[s.n - 1], "run.finished");
	assert_true(fo.finished);
	events_follower_free(&fo);
	file_close(&f, &w);
}

/* Only the parsed top-level type of an event of this run ends it. */
static void test_end_is_parsed(void **state)
{
	(void)state;
	struct events_writer w;
	struct file f;
	file_open(&f, &w);
	json_t *step = json_pack("{s:{s:s}}", "step", "type", "run.finished");
	assert_int_equal(events_write(&w, "step", step, false, NULL, NULL), 1);
	json_decref(step);
	/* lines another writer could have slipped in: none is this run's end */
	const char *fake = "{\"type\":\"run.finished\"}\n"
			   "{\"seq\":9,\"type\":\"run.finished\",\"run_id\":\"run_other\"}\n"
			   "[\"type\",\"run.finished\"]\n";
	assert_int_equal(write(w.fd, fake, strlen(fake)), (ssize_t)strlen(fake));
	struct events_follower fo;
	events_follower_init(&fo, f.fd, "run_t", 0);
	struct seen s = {0};
	drain(&fo, &s);
	assert_int_equal(s.n, 1);
	assert_false(fo.finished);
	assert_int_equal(events_write(&w, "run.finished", NULL, true, NULL, NULL), 1);
	drain(&fo, &s);
	assert_true(fo.finished);
	assert_int_equal(s.n, 2);
	events_follower_free(&fo);
	file_close(&f, &w);
}

static void count_line(void *ctx, const char *line, size_t len)
{
	(void)line;
	size_t *n = ctx;
	assert_true(len <= EVENTS_MAX_LINE && len > 0);
	(*n)++;
}

/* Lines split anywhere across chunks come out whole; a line over the limit
 * is skipped whole, never cut into a shorter one. */
static void test_reader(void **state)
{
	(void)state;
	struct events_reader r = {0};
	size_t n = 0;
	const char *text = "{\"a\":1}\n\n{\"b\":2}\n{\"c\"";
	for (size_t i = 0; text[i]; i++)
		assert_int_equal(events_reader_feed(&r, text + i, 1, count_line, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(events_reader_feed(&r, ":3}\n", 4, count_line, &n), 0);
	assert_int_equal(n, 3);
	size_t big = EVENTS_MAX_LINE + 100;
	char *b = malloc(big);
	memset(b, 'z', big);
	n = 0;
	assert_int_equal(events_reader_feed(&r, b, big / 2, count_line, &n), 0);
	assert_int_equal(events_reader_feed(&r, b, big - big / 2, count_line, &n), 0);
	assert_int_equal(events_reader_feed(&r, "\n{}\n", 4, count_line, &n), 0);
	assert_int_equal(n, 1); /* only {} */
	b[big - 1] = '\n';
	n = 0;
	assert_int_equal(events_reader_feed(&r, b, big, count_line, &n), 0);
	assert_int_equal(n, 0);
	free(b);
	events_reader_free(&r);
}

/* A follower resumes after a seq (Last-Event-ID). */
static void test_resume(void **state)
{
	(void)state;
	struct events_writer w;
	struct file f;
	file_open(&f, &w);
	for (int i = 0; i < 5; i++)
		assert_int_equal(events_write(&w, "step", NULL, false, NULL, NULL), 1);
	struct events_follower fo;
	events_follower_init(&fo, f.fd, "run_t", 3);
	struct seen s = {0};
	drain(&fo, &s);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.seq[0], 4);
	events_follower_free(&fo);
	file_close(&f, &w);
}

static int refuse(void *ctx, json_t *ev)
{
	(void)ctx;
	(void)ev;
	return -ENOMEM;
}

static char *same(void *ctx, const char *line, size_t len, size_t *out)
{
	(void)ctx;
	*out = len;
	return strndup(line, len);
}

/* An event that cannot be scrubbed is not written: fail closed. */
static void test_scrub_fails_closed(void **state)
{
	(void)state;
	struct events_writer w;
	struct file f;
	file_open(&f, &w);
	w.scrub_json = refuse;
	w.scrub_line = same;
	assert_int_equal(events_write(&w, "step", NULL, false, NULL, NULL), 0);
	assert_int_equal(w.bytes, 0);
	assert_int_equal(w.seq, 0);
	file_close(&f, &w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_line_limit),	  cmocka_unit_test(test_file_cap),
	    cmocka_unit_test(test_end_is_parsed), cmocka_unit_test(test_reader),
	    cmocka_unit_test(test_resume),	  cmocka_unit_test(test_scrub_fails_closed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
