/* SPDX-License-Identifier: Apache-2.0 */
#include "base/clock.h"

#include <stdio.h>

uint64_t cdn_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t cdn_mono_ms(void)
{
	return cdn_mono_ns() / 1000000u;
}

int64_t cdn_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct timespec cdn_wall_after(uint64_t ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return ts;
}

char *cdn_rfc3339(int64_t ms, enum cdn_time_precision precision, char *out, size_t cap)
{
	if (!cap)
		return out;
	/* Floor division: the millisecond part is never negative. */
	int64_t s = ms / 1000, frac = ms % 1000;
	if (frac < 0) {
		s -= 1;
		frac += 1000;
	}
	time_t t = (time_t)s;
	struct tm tm;
	size_t n = 0;
	if (gmtime_r(&t, &tm))
		n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
	if (precision == CDN_TIME_MS)
		snprintf(out + n, cap - n, ".%03dZ", (int)frac);
	else
		snprintf(out + n, cap - n, "Z");
	return out;
}
