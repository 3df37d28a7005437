/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "base/cron.h"

/* Unix ms of a UTC time. */
static int64_t at(int y, int mo, int d, int h, int mi)
{
	struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
			 .tm_min = mi };
	return (int64_t)timegm(&tm) * 1000;
}

static struct cron_spec parse_ok(const char *expr, const char *tz)
{
	struct cron_spec s;
	struct cdn_err err = { 0 };
	int r = cron_parse(expr, tz, &s, &err);
	if (r != 0)
		fail_msg("cron_parse(\"%s\"): %s", expr, err.msg);
	return s;
}

/* Refused with -EINVAL and a message that contains want. */
static void refused(const char *expr, const char *tz, const char *want)
{
	struct cron_spec s;
	struct cdn_err err = { 0 };
	int r = cron_parse(expr, tz, &s, &err);
	if (r != -EINVAL)
		fail_msg("cron_parse(\"%s\", %s) = %d, expected -EINVAL", expr,
			 tz ? tz : "NULL", r);
	if (!strstr(err.msg, want))
		fail_msg("cron_parse(\"%s\"): message \"%s\" lacks \"%s\"", expr, err.msg, want);
}

static int64_t next(const char *expr, const char *tz, int64_t after)
{
	struct cron_spec s = parse_ok(expr, tz);
	return cron_next(&s, 0, after);
}

static void test_parse_fields(void **state)
{
	(void)state;
	struct cron_spec s = parse_ok("*/15 9-17 * jan-MAR,12 MON-FRI", NULL);
	assert_int_equal(s.every_ms, 0);
	assert_true(s.minute == ((1ull << 0) | (1ull << 15) | (1ull << 30) | (1ull << 45)));
	assert_true(s.hour == (((1ull << 18) - 1) & ~((1ull << 9) - 1)));
	assert_int_equal(s.dom, 0xfffffffe);
	assert_int_equal(s.month, (1u << 1) | (1u << 2) | (1u << 3) | (1u << 12));
	assert_int_equal(s.dow, 0x3e);
	assert_true(s.dom_star);
	assert_false(s.dow_star);
	assert_string_equal(s.tz, "");
	/* 7 is Sunday; ranges through 7 wrap onto 0; steps in ranges. */
	s = parse_ok("0 0 * * 5-7", "");
	assert_int_equal(s.dow, (1u << 5) | (1u << 6) | 1u);
	s = parse_ok("\t0-58/2,59  0 1 1 SUN ", NULL);
	assert_true(s.minute == (0x555555555555555ull | (1ull << 59)));
	assert_int_equal(s.dow, 1);
	s = parse_ok("0 0 */2 * *", NULL);
	assert_true(s.dom_star && s.dow_star);
	assert_int_equal(s.dom, 0xaaaaaaaa);
	s = parse_ok("@every 2s", NULL);
	assert_int_equal(s.every_ms, 2000);
	s = parse_ok("@EVERY 366d", NULL);
	assert_int_equal(s.every_ms, CRON_EVERY_MAX_MS);
	s = parse_ok("@Daily", NULL);
	assert_int_equal(s.minute, 1);
	assert_int_equal(s.hour, 1);
}

static void test_parse_errors(void **state)
{
	(void)state;
	refused("60 * * * *", NULL, "minute field '60': 60 is out of range (0-59)");
	refused("* 24 * * *", NULL, "hour field");
	refused("* * 0 * *", NULL, "day-of-month field '0': 0 is out of range (1-31)");
	refused("* * 32 * *", NULL, "day-of-month");
	refused("* * * 13 *", NULL, "month field '13'");
	refused("* * * 0 *", NULL, "out of range (1-12)");
	refused("* * * * 8", NULL, "day-of-week field '8'");
	refused("007 * * * *", NULL, "out of range");
	refused("99999999999999999999 * * * *", NULL, "out of range");
	refused("*/0 * * * *", NULL, "a step of 0");
	refused("1-5/0 * * * *", NULL, "a step of 0");
	refused("*/61 * * * *", NULL, "step 61 is out of range (1-60)");
	refused("* * * * */8", NULL, "step 8 is out of range (1-7)");
	refused("*/ * * * *", NULL, "followed by a step");
	refused("5-1 * * * *", NULL, "range 5-1 is reversed");
	refused("* * * * FRI-SUN", NULL, "Sunday can be written 7");
	refused("* * * * * *", NULL, "6 fields, expected 5");
	refused("* * * *", NULL, "4 fields");
	refused("* * * * * 2026", NULL, "6 fields");
	refused("1x * * * *", NULL, "unexpected 'x'");
	refused("1,,2 * * * *", NULL, "unexpected ','");
	refused("1, * * * *", NULL, "missing at the end");
	refused("1- * * * *", NULL, "missing at the end");
	refused("*,5 * * * *", NULL, "'*' must stand alone");
	refused("*5 * * * *", NULL, "'*' must stand alone");
	refused("5/15 * * * *", NULL, "a step needs a range");
	refused("* * * FOO *", NULL, "unknown name 'FOO' (JAN-DEC)");
	refused("* * * * MONDAY", NULL, "unknown name 'MONDAY' (SUN-SAT)");
	refused("* * * * JAN", NULL, "unknown name 'JAN'");
	refused("* MON * * *", NULL, "'MON' is not a number");
	refused("", NULL, "empty");
	refused(" \t ", NULL, "empty");
	refused(NULL, NULL, "empty");
	refused("* * * * *\n", NULL, "byte 10 is not a printable");
	refused("* * * * \xc3\xa9", NULL, "byte 9 is not a printable");
	char longer[CRON_EXPR_MAX + 2];
	memset(longer, ' ', sizeof(longer) - 1);
	memcpy(longer, "* * * * *", 9);
	longer[CRON_EXPR_MAX + 1] = '\0';
	refused(longer, NULL, "longer than 128 bytes");
	longer[CRON_EXPR_MAX] = '\0';
	parse_ok(longer, NULL);
	refused("@every 0s", NULL, "out of range (at least 1s");
	refused("@every 500ms", NULL, "@every 500ms: out of range");
	refused("@every 999ms", NULL, "out of range");
	refused("@every 367d", NULL, "out of range");
	refused("@every 99999999999999999999d", NULL, "too large");
	refused("@every 2w", NULL, "unknown unit");
	refused("@every", NULL, "takes one duration");
	refused("@every 2s 3s", NULL, "takes one duration");
	refused("@hourly 5", NULL, "@hourly takes nothing after it");
	refused("@reboot", NULL, "'@reboot': unknown");
	refused("@", NULL, "unknown");
	refused("0 @hourly", NULL, "2 fields");
}

static void test_zones(void **state)
{
	(void)state;
	struct cron_spec s = parse_ok("0 9 * * *", "Europe/Berlin");
	assert_string_equal(s.tz, "Europe/Berlin");
	parse_ok("0 9 * * *", "UTC");
	parse_ok("0 9 * * *", "America/Argentina/Buenos_Aires");
	parse_ok("0 9 * * *", "Etc/GMT+5");
	refused("0 9 * * *", "Europe/Nowhere", "unknown (no such zone");
	refused("0 9 * * *", "../../../etc/passwd", "byte 1 is not allowed");
	refused("0 9 * * *", "Europe/../../etc/passwd", "byte 8 is not allowed");
	refused("0 9 * * *", "/etc/localtime", "an empty component");
	refused("0 9 * * *", "Europe//Berlin", "an empty component");
	refused("0 9 * * *", "Europe/", "an empty component");
	refused("0 9 * * *", "Europe/Berlin ", "byte 14 is not allowed");
	refused("0 9 * * *", "Europe", "not a zone file");
	refused("0 9 * * *", "right/UTC", "right/ zones");
	refused("0 9 * * *", "zone.tab", "byte 5 is not allowed");
	refused("0 9 * * *", "tzdata", "unknown");
	refused("0 9 * * *", "leapseconds", "not a zone file");
	char longer[CRON_TZ_MAX + 2];
	memset(longer, 'a', sizeof(longer) - 1);
	longer[CRON_TZ_MAX + 1] = '\0';
	refused("0 9 * * *", longer, "longer than 64 bytes");
}

static void test_next_utc(void **state)
{
	(void)state;
	int64_t t = at(2026, 1, 1, 10, 7);
	/* Every minute: the next whole minute, strictly after. */
	assert_int_equal(next("* * * * *", NULL, t + 30000), t + 60000);
	assert_int_equal(next("* * * * *", NULL, t), t + 60000);
	assert_int_equal(next("* * * * *", NULL, t - 1), t);
	assert_int_equal(next("*/15 * * * *", NULL, t), at(2026, 1, 1, 10, 15));
	assert_int_equal(next("*/15 * * * *", NULL, at(2026, 1, 1, 10, 45)), at(2026, 1, 1, 11, 0));
	assert_int_equal(next("*/15 * * * *", NULL, at(2026, 12, 31, 23, 59)),
			 at(2027, 1, 1, 0, 0));
	/* Weekdays: Friday 2 January 2026 at 09:00, then Monday the 5th. */
	assert_int_equal(next("0 9 * * MON-FRI", NULL, at(2026, 1, 1, 12, 0)),
			 at(2026, 1, 2, 9, 0));
	assert_int_equal(next("0 9 * * MON-FRI", NULL, at(2026, 1, 2, 9, 0)),
			 at(2026, 1, 5, 9, 0));
	/* Both day fields restricted: the 13th or a Friday. */
	assert_int_equal(next("0 0 13 * FRI", NULL, at(2026, 1, 1, 0, 0)), at(2026, 1, 2, 0, 0));
	assert_int_equal(next("0 0 13 * FRI", NULL, at(2026, 1, 10, 0, 0)), at(2026, 1, 13, 0, 0));
	assert_int_equal(next("0 0 13 * FRI", NULL, at(2026, 1, 13, 0, 0)), at(2026, 1, 16, 0, 0));
	/* One a star: both must match. The 13th alone; a starred step
	 * counts as a star (Vixie): Mondays on odd days (the 5th is odd). */
	assert_int_equal(next("0 0 13 * *", NULL, at(2026, 1, 1, 0, 0)), at(2026, 1, 13, 0, 0));
	assert_int_equal(next("0 0 */2 * MON", NULL, at(2026, 1, 1, 0, 0)), at(2026, 1, 5, 0, 0));
	assert_int_equal(next("0 0 */2 * MON", NULL, at(2026, 1, 5, 0, 0)), at(2026, 1, 19, 0, 0));
	assert_int_equal(next("0 0 1-31/2 * MON", NULL, at(2026, 1, 1, 0, 0)),
			 at(2026, 1, 3, 0, 0));
	/* Never. */
	assert_int_equal(next("0 0 31 2 *", NULL, t), -1);
	assert_int_equal(next("0 0 30 2 *", NULL, t), -1);
	assert_int_equal(next("0 0 31 4,6,9,11 *", NULL, t), -1);
	/* @hourly. */
	assert_int_equal(next("@hourly", NULL, at(2026, 1, 1, 10, 0)), at(2026, 1, 1, 11, 0));
	assert_int_equal(next("@hourly", NULL, at(2026, 1, 1, 11, 0) - 1), at(2026, 1, 1, 11, 0));
	assert_int_equal(next("@yearly", NULL, t), at(2027, 1, 1, 0, 0));
	assert_int_equal(next("@weekly", NULL, t), at(2026, 1, 4, 0, 0));
	/* Leap day: the next 29 February is in 2028; 2100 is no leap year. */
	assert_int_equal(next("0 12 29 2 *", NULL, at(2026, 3, 1, 0, 0)), at(2028, 2, 29, 12, 0));
	assert_int_equal(next("0 12 29 2 *", NULL, at(2096, 3, 1, 0, 0)), -1);
	assert_int_equal(next("0 12 29 FEB *", NULL, at(2099, 3, 1, 0, 0)), at(2104, 2, 29, 12, 0));
	/* Out of the answered range. */
	assert_int_equal(next("* * * * *", NULL, -1), -1);
	assert_int_equal(next("* * * * *", NULL, CRON_TIME_MAX_MS + 1), -1);
	assert_int_equal(next("* * * * *", NULL, 0), 60000);
}

static void test_next_every(void **state)
{
	(void)state;
	struct cron_spec s = parse_ok("@every 2s", NULL);
	int64_t a = at(2026, 1, 1, 10, 0) + 123;
	assert_int_equal(cron_next(&s, a, a), a + 2000);
	assert_int_equal(cron_next(&s, a, a + 1999), a + 2000);
	assert_int_equal(cron_next(&s, a, a + 2000), a + 4000);
	assert_int_equal(cron_next(&s, a, a + 7001), a + 8000);
	assert_int_equal(cron_next(&s, a, a - 5000), a);
	assert_int_equal(cron_next(&s, INT64_MAX - 501, INT64_MAX - 1), -1);
	assert_int_equal(cron_next(&s, 0, INT64_MAX - 1000), -1);
	assert_int_equal(cron_next(&s, 0, INT64_MIN), 0);
	assert_int_equal(cron_next(&s, 0, 0), 2000);
	assert_int_equal(cron_next(&s, -1, 5000), -1);
}

static void test_next_berlin(void **state)
{
	(void)state;
	const char *tz = "Europe/Berlin";
	/* Winter: 09:00 CET is 08:00 UTC; summer: 07:00 UTC. */
	assert_int_equal(next("0 9 * * *", tz, at(2026, 1, 1, 12, 0)), at(2026, 1, 2, 8, 0));
	assert_int_equal(next("0 9 * * *", tz, at(2026, 7, 1, 0, 0)), at(2026, 7, 1, 7, 0));
	/* Spring forward, Sunday 29 March 2026: 02:00-02:59 do not exist.
	 * 02:30 is skipped that day: the next is Monday 02:30 CEST. */
	assert_int_equal(next("30 2 * * *", tz, at(2026, 3, 28, 2, 0)), at(2026, 3, 30, 0, 30));
	assert_int_equal(next("0 3 * * *", tz, at(2026, 3, 28, 12, 0)), at(2026, 3, 29, 1, 0));
	/* Every minute: 01:59 CET is followed by 03:00 CEST. */
	assert_int_equal(next("* * * * *", tz, at(2026, 3, 29, 0, 59) + 30000),
			 at(2026, 3, 29, 1, 0));
	/* Fall back, Sunday 25 October 2026: 02:00-02:59 happen twice. 02:30
	 * fires once, at 02:30 CEST (00:30 UTC); then on Monday (CET). */
	assert_int_equal(next("30 2 * * *", tz, at(2026, 10, 24, 12, 0)), at(2026, 10, 25, 0, 30));
	assert_int_equal(next("30 2 * * *", tz, at(2026, 10, 25, 0, 30)), at(2026, 10, 26, 1, 30));
	assert_int_equal(next("30 2 * * *", tz, at(2026, 10, 25, 1, 0)), at(2026, 10, 26, 1, 30));
	/* Every half hour: after 02:30 CEST comes 03:00 CET; the second
	 * 02:00 and 02:30 do not fire again. */
	assert_int_equal(next("*/30 * * * *", tz, at(2026, 10, 25, 0, 0)), at(2026, 10, 25, 0, 30));
	assert_int_equal(next("*/30 * * * *", tz, at(2026, 10, 25, 0, 30)), at(2026, 10, 25, 2, 0));
	assert_int_equal(next("*/30 * * * *", tz, at(2026, 10, 25, 1, 15)), at(2026, 10, 25, 2, 0));
	assert_int_equal(next("0 0 31 2 *", tz, at(2026, 1, 1, 0, 0)), -1);
	/* TZ is as it was. */
	assert_null(getenv("TZ"));
	setenv("TZ", "Asia/Tokyo", 1);
	assert_int_equal(next("0 9 * * *", tz, at(2026, 1, 1, 12, 0)), at(2026, 1, 2, 8, 0));
	assert_string_equal(getenv("TZ"), "Asia/Tokyo");
	unsetenv("TZ");
}

static void round_trip(const char *expr, const char *want)
{
	struct cron_spec s = parse_ok(expr, NULL), again;
	char buf[CRON_FORMAT_MAX];
	cron_format(&s, buf, sizeof(buf));
	if (strcmp(buf, want) != 0)
		fail_msg("cron_format(\"%s\") = \"%s\", expected \"%s\"", expr, buf, want);
	again = parse_ok(buf, NULL);
	assert_true(again.every_ms == s.every_ms && again.minute == s.minute &&
		    again.hour == s.hour && again.dom == s.dom && again.month == s.month &&
		    again.dow == s.dow && again.dom_star == s.dom_star &&
		    again.dow_star == s.dow_star);
}

static void test_format(void **state)
{
	(void)state;
	round_trip("*  *\t* * *", "* * * * *");
	round_trip("*/15 9-17 * JAN-MAR MON-FRI", "*/15 9-17 * 1-3 1-5");
	round_trip("0,15,30,45 0-23 1-31 * 0-7", "*/15 * 1-31 * 0-6");
	round_trip("0-58/2,59 5,7 */2 */3 */7", "0-58/2,59 5,7 */2 */3 */7");
	round_trip("1,2,3,5,10,20,30 0 */31 * 7", "1-3,5,10-30/10 0 */31 * 0");
	round_trip("@hourly", "0 * * * *");
	round_trip("@weekly", "0 0 * * 0");
	round_trip("@every 2s", "@every 2s");
	round_trip("@every 90s", "@every 90s");
	round_trip("@every 120s", "@every 2m");
	round_trip("@every 1500ms", "@every 1500ms");
	round_trip("@every 48h", "@every 2d");
	char small[8];
	struct cron_spec s = parse_ok("*/15 9-17 * * MON-FRI", NULL);
	cron_format(&s, small, sizeof(small));
	assert_string_equal(small, "*/15 9-");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_fields), cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_zones),	     cmocka_unit_test(test_next_utc),
		cmocka_unit_test(test_next_every),   cmocka_unit_test(test_next_berlin),
		cmocka_unit_test(test_format),
	};
	unsetenv("TZ");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
