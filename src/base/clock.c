/* SPDX-License-Identifier: Apache-2.0 */
#include "base/clock.h"

#include <errno.h>
#include <stdbool.h>
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

/* n digits at p as a number, or -1 when one of them is not a digit. */
static int digits(const char *p, int n)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	return v;
}

/* Days from 1970-01-01 to y-m-d of the proleptic Gregorian calendar
 * (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

int cdn_rfc3339_parse(const char *s, int64_t *ms, const char **why)
{
	static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	const char *shape = "expected an RFC 3339 time such as 2024-05-01T02:58:36Z";
	*why = shape;
	/* Every position is checked before it is read: a string that ends
	 * early fails on its NUL, which is neither a digit nor a separator. */
	for (int i = 0; i < 19; i++)
		if (!s[i])
			return -EINVAL;
	int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
	int h = digits(s + 11, 2), mi = digits(s + 14, 2), se = digits(s + 17, 2);
	if (y < 0 || mo < 0 || d < 0 || h < 0 || mi < 0 || se < 0 || s[4] != '-' || s[7] != '-' ||
	    (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':')
		return -EINVAL;
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (mo < 1 || mo > 12) {
		*why = "the month is not 01 to 12";
		return -EINVAL;
	}
	if (d < 1 || d > mdays[mo - 1] + (mo == 2 && leap)) {
		*why = "no such day in that month";
		return -EINVAL;
	}
	if (h > 23 || mi > 59 || se > 59) {
		*why = "the time of day is out of range (hours 00-23, minutes and seconds 00-59)";
		return -EINVAL;
	}
	const char *p = s + 19;
	int frac_ms = 0;
	if (*p == '.') {
		int n = 0;
		for (p++; *p >= '0' && *p <= '9'; p++, n++)
			if (n < 3)
				frac_ms = frac_ms * 10 + (*p - '0');
		if (n == 0 || n > 9) {
			*why = "a fraction of a second has 1 to 9 digits";
			return -EINVAL;
		}
		for (; n < 3; n++)
			frac_ms *= 10;
	}
	int off_min = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int oh = p[1] && p[2] ? digits(p + 1, 2) : -1;
		int om = oh >= 0 && p[3] == ':' && p[4] && p[5] ? digits(p + 4, 2) : -1;
		if (oh < 0 || om < 0 || oh > 23 || om > 59) {
			*why = "the offset is Z, +HH:MM or -HH:MM";
			return -EINVAL;
		}
		off_min = (oh * 60 + om) * (*p == '-' ? -1 : 1);
		p += 6;
	} else {
		*why = "the time needs its offset: Z for UTC, or +HH:MM / -HH:MM";
		return -EINVAL;
	}
	if (*p) {
		*why = shape;
		return -EINVAL;
	}
	int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se -
		       (int64_t)off_min * 60;
	*ms = secs * 1000 + frac_ms;
	*why = NULL;
	return 0;
}
