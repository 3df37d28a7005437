/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the event reader (run/events.h): the bytes of an
 * events file or an API stream, fed in chunks whose sizes come from the
 * input. Every line handed out is at most EVENTS_MAX_LINE and holds no
 * newline; the same bytes in one chunk give the same lines; events_parse
 * either refuses a line or gives a head whose type and run_id are short
 * strings, and only a parsed run.finished of the run ends it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "run/events.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct acc {
	uint64_t hash;
	size_t lines;
};

static void on_line(void *ctx, const char *line, size_t len)
{
	struct acc *a = ctx;
	if (len == 0 || len > EVENTS_MAX_LINE || memchr(line, '\n', len))
		abort();
	for (size_t i = 0; i < len; i++)
		a->hash = a->hash * 1099511628211ull ^ (unsigned char)line[i];
	a->hash = a->hash * 31 + len;
	a->lines++;
	struct events_head h;
	if (events_parse(line, len, &h, NULL) == 0) {
		if (strlen(h.type) > EVENTS_MAX_TYPE || !memchr(h.run_id, '\0', sizeof(h.run_id)))
			abort();
		if (events_is_end(&h, h.run_id) != (strcmp(h.type, EVENTS_END_TYPE) == 0))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t step = (size_t)data[0] + 1;
	data++;
	size--;
	struct events_reader whole = {0}, parts = {0};
	struct acc a = {0}, b = {0};
	if (events_reader_feed(&whole, (const char *)data, size, on_line, &a) < 0)
		return 0;
	for (size_t off = 0; off < size; off += step) {
		size_t n = size - off < step ? size - off : step;
		if (events_reader_feed(&parts, (const char *)data + off, n, on_line, &b) < 0)
			return 0;
	}
	if (a.lines != b.lines || a.hash != b.hash)
		abort();
	events_reader_free(&whole);
	events_reader_free(&parts);
	return 0;
}
