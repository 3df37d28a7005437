/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: cron expressions and zone names (what workspace owners
 * send for schedules) parse or are refused, and a spec that parses gives
 * fire times that are later than asked, match the spec, and skip nothing.
 *
 * Input: EXPR [NUL ZONE [NUL AFTER(8 bytes) ANCHOR(8 bytes)]].
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/cron.h"

static bool same(const struct cron_spec *a, const struct cron_spec *b)
{
	return a->every_ms == b->every_ms && a->minute == b->minute && a->hour == b->hour &&
	       a->dom == b->dom && a->month == b->month && a->dow == b->dow &&
	       a->dom_star == b->dom_star && a->dow_star == b->dow_star;
}

/* Whether the spec fires at ms: the start of a minute on the clock (UTC,
 * or local time once zone() has set TZ), checked here without cron.c's own
 * walk. */
static bool fires(const struct cron_spec *s, int64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	if (!(s->tz[0] ? localtime_r(&t, &tm) : gmtime_r(&t, &tm)))
		abort();
	bool dom = (s->dom >> tm.tm_mday) & 1, dow = (s->dow >> tm.tm_wday) & 1;
	bool day = (s->dom_star || s->dow_star) ? dom && dow : dom || dow;
	return ms % 1000 == 0 && tm.tm_sec == 0 && ((s->minute >> tm.tm_min) & 1) &&
	       ((s->hour >> tm.tm_hour) & 1) && ((s->month >> (tm.tm_mon + 1)) & 1) && day;
}

/* The fuzzer is one thread: it may set TZ itself, after cron_next. */
static void zone(const char *tz)
{
	char val[CRON_TZ_MAX + 32];
	if (tz[0]) {
		snprintf(val, sizeof(val), ":/usr/share/zoneinfo/%s", tz);
		setenv("TZ", val, 1);
	} else {
		unsetenv("TZ");
	}
	tzset();
}

/* The same wall time came before, up to two hours earlier and no later
 * than after: m is the second time of a fall back's repeated hour. */
static bool repeated(int64_t m, int64_t after)
{
	time_t t = (time_t)(m / 1000);
	struct tm a, b;
	if (!localtime_r(&t, &a))
		abort();
	for (int k = 1; k <= 8; k++) {
		time_t e = t - k * 900;
		if (e * 1000ll > after || !localtime_r(&e, &b))
			continue;
		if (a.tm_mday == b.tm_mday && a.tm_hour == b.tm_hour && a.tm_min == b.tm_min &&
		    a.tm_sec == b.tm_sec)
			return true;
	}
	return false;
}

static void check_calendar(const struct cron_spec *s, int64_t anchor, int64_t after)
{
	int64_t next = cron_next(s, anchor, after);
	if (next == -1)
		return;
	if (next <= after || next - after > CRON_HORIZON_MS + 2 * 86400000ll)
		abort();
	/* Asking again just before the answer gives the same answer. */
	if (cron_next(s, anchor, next - 1) != next)
		abort();
	zone(s->tz);
	if (!fires(s, next))
		abort();
	/* Nothing fires in between (checked over up to a day, minute by
	 * minute back from next), but for the second time of a wall time
	 * that happens twice. */
	if (next - after <= 86400000ll)
		for (int64_t m = next - 60000; m > after; m -= 60000)
			if (fires(s, m) && !(s->tz[0] && repeated(m, after)))
				abort();
	zone("");
}

static void check_every(const struct cron_spec *s, int64_t anchor, int64_t after)
{
	int64_t next = cron_next(s, anchor, after);
	if (next == -1) {
		/* Only for a negative anchor, or when the next multiple is past
		 * INT64_MAX. */
		if (anchor >= 0 &&
		    (after < anchor || (uint64_t)INT64_MAX - (uint64_t)after >= s->every_ms))
			abort();
		return;
	}
	if (next <= after || ((uint64_t)next - (uint64_t)anchor) % s->every_ms != 0)
		abort();
	if (after < anchor ? next != anchor : (uint64_t)next - (uint64_t)after > s->every_ms)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char expr[CRON_EXPR_MAX + 16], tz[CRON_TZ_MAX + 16];
	const uint8_t *end = data + size, *p = data;
	size_t n = 0;
	while (p < end && *p && n < sizeof(expr) - 1)
		expr[n++] = (char)*p++;
	expr[n] = '\0';
	while (p < end && *p)
		p++;
	bool has_tz = p < end;
	n = 0;
	if (has_tz)
		p++;
	while (p < end && *p && n < sizeof(tz) - 1)
		tz[n++] = (char)*p++;
	tz[n] = '\0';
	if (p < end)
		p++;
	/* 2026-03-28T12:00:00Z unless the input says otherwise. */
	uint64_t raw_after = 1774699200000ull, raw_anchor = 1774699200000ull;
	if (end - p >= 16) {
		memcpy(&raw_after, p, 8);
		memcpy(&raw_anchor, p + 8, 8);
	}

	struct cron_spec s, again;
	struct cdn_err err;
	if (cron_parse(expr, has_tz ? tz : NULL, &s, &err) != 0) {
		if (!err.msg[0])
			abort();
		return 0;
	}
	if (s.every_ms) {
		if (s.every_ms < CRON_EVERY_MIN_MS || s.every_ms > CRON_EVERY_MAX_MS)
			abort();
		check_every(&s, (int64_t)raw_anchor, (int64_t)raw_after);
	} else {
		if (!s.minute || s.minute >> 60 || !s.hour || s.hour >> 24 || !s.dom ||
		    (s.dom & 1) || !s.month || (s.month & ~0x1ffeu) || !s.dow || s.dow >> 7)
			abort();
		/* Any time from a day before 1970 to a day past the range. */
		int64_t span = CRON_TIME_MAX_MS + 2 * 86400000ll;
		int64_t after = (int64_t)(raw_after % (uint64_t)span) - 86400000ll;
		check_calendar(&s, (int64_t)raw_anchor, after);
	}

	/* The canonical text is never cut, and parses back to the spec. */
	char text[4 * CRON_FORMAT_MAX];
	cron_format(&s, text, sizeof(text));
	size_t len = strlen(text);
	if (len == 0 || len >= CRON_FORMAT_MAX)
		abort();
	if (len <= CRON_EXPR_MAX &&
	    (cron_parse(text, NULL, &again, &err) != 0 || !same(&s, &again)))
		abort();
	return 0;
}
