/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The two clocks cordon reads, and the one way it writes a time.
 *
 * The monotonic clock measures intervals (timeouts, durations, rate
 * windows): it never jumps when someone sets the date. The wall clock
 * stamps records (events, audit lines, run rows), as unix milliseconds.
 */
#ifndef CORDON_BASE_CLOCK_H
#define CORDON_BASE_CLOCK_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC in milliseconds. */
uint64_t cdn_mono_ms(void);
/* CLOCK_MONOTONIC in nanoseconds, for tracing. */
uint64_t cdn_mono_ns(void);
/* CLOCK_REALTIME in unix milliseconds. */
int64_t cdn_wall_ms(void);
/* CLOCK_REALTIME ms from now: the absolute deadline that
 * pthread_cond_timedwait() takes (of a condition variable made with the
 * default attributes). */
struct timespec cdn_wall_after(uint64_t ms);

enum cdn_time_precision {
	CDN_TIME_S,  /* "2024-05-01T02:58:36Z" */
	CDN_TIME_MS, /* "2024-05-01T02:58:36.615Z" */
};

/* Room for either form, with its NUL, for any year of four digits. */
#define CDN_RFC3339_MAX 32

/*
 * Unix milliseconds as RFC 3339 in UTC, whole seconds or with
 * milliseconds: the form of every time cordon writes. A time before 1970
 * counts down correctly (-1 ms is 1969-12-31T23:59:59.999Z). out is always
 * terminated; returns out.
 */
char *cdn_rfc3339(int64_t ms, enum cdn_time_precision precision, char *out, size_t cap);

/*
 * The other way: an RFC 3339 date-time (section 5.6) as unix milliseconds.
 * Strict: "YYYY-MM-DDTHH:MM:SS", an optional fraction of 1 to 9 digits (cut
 * to milliseconds), then "Z" or an offset "+HH:MM" / "-HH:MM"; "T" and "Z"
 * in either case, nothing before or after. The date must exist (no February
 * 30th) and the second is 00 to 59 (a leap second is refused, not rounded).
 * 0, or -EINVAL with *why saying what is wrong (a constant string).
 */
int cdn_rfc3339_parse(const char *s, int64_t *ms, const char **why);

#endif
