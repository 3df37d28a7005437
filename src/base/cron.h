/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Cron schedules: when a schedule (`cordon schedule create NAME --cron EXPR
 * AGENT [--tz ZONE]`) fires next. Expressions come from workspace owners
 * through the API, so the parser is strict and bounded: printable ASCII
 * only, at most CRON_EXPR_MAX bytes, every number range-checked, anything
 * it does not know refused with a message naming the field and the value.
 *
 * Forms accepted:
 *
 *   "MIN HOUR DOM MONTH DOW"   five fields separated by spaces or tabs
 *                              (blanks before and after are ignored):
 *       minute 0-59, hour 0-23, day of month 1-31, month 1-12 or JAN-DEC,
 *       day of week 0-7 or SUN-SAT (0 and 7 are both Sunday). Names are
 *       three letters, any case, and may bound a range ("MON-FRI").
 *       Each field is "*" (optionally followed by "/STEP": every STEP-th
 *       value from the first), or a comma list of items, an item being N,
 *       N-M or N-M/STEP (N <= M; STEP from 1 up to the field's span).
 *       "*" stands alone in its field ("*,5" is refused), and "N/STEP"
 *       (Quartz's "from N on") is refused: write N-MAX/STEP.
 *   "@yearly" / "@annually"    0 0 1 1 *
 *   "@monthly"                 0 0 1 * *
 *   "@weekly"                  0 0 * * 0
 *   "@daily" / "@midnight"     0 0 * * *
 *   "@hourly"                  0 * * * *
 *   "@every DURATION"          a fixed period, cdn_parse_duration_ms's syntax
 *                              ("2s", "90m", "1d"), from 1 s to 366 days.
 *   (@-names in any case; @reboot has no meaning here and is refused.)
 *
 * Days: when both day of month and day of week are restricted, a day
 * matches if either does ("0 0 13 * FRI" fires on every 13th and on every
 * Friday); when either is "*", both must (the star matching every day).
 * As in Vixie cron and cronie, a field counts as "*" when it begins with
 * "*", steps included: a day of month of "*" with a step of 2 and a day of
 * week of MON fire on the Mondays that fall on odd days.
 *
 * Time zones: calendar specs are wall-clock times in spec->tz, an IANA zone
 * name under /usr/share/zoneinfo ("" is UTC). Around daylight saving
 * changes:
 *   - a wall time that does not exist (spring forward: 02:30 on the last
 *     Sunday of March in Europe/Berlin) is skipped for that day;
 *   - a wall time that happens twice (fall back: 02:30 on the last Sunday
 *     of October) fires once, at its first occurrence (the summer one).
 * Nothing moves a skipped time to later in the day (cronie runs such jobs
 * right after the change; here 02:30 simply does not happen that day). Offsets with
 * seconds (local mean time, in a few zones as late as the 1970s) give fire
 * times on whole local minutes, which are not whole UTC minutes.
 *
 * glibc has no per-call zone API, so cron_next for a zone other than UTC
 * sets TZ under a process-wide mutex, calls tzset(), converts with
 * localtime_r, and restores TZ (unsets it if it was unset) before
 * unlocking. That is safe because the rest of cordon uses UTC only
 * (gmtime_r, timegm; no localtime, mktime or strftime of a local time), so
 * nothing else reads the zone in between. What it does not cover: another
 * thread calling getenv() exactly while cron_next's setenv/unsetenv change
 * the environment (glibc's environment is not thread-safe).
 */
#ifndef CORDON_BASE_CRON_H
#define CORDON_BASE_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define CRON_EXPR_MAX 128 /* bytes of an expression */
#define CRON_TZ_MAX 64	  /* bytes of a zone name */
/* Room for cron_format's text with its NUL, for any spec. */
#define CRON_FORMAT_MAX 256
/* The shortest and longest @every period. */
#define CRON_EVERY_MIN_MS 1000ull
#define CRON_EVERY_MAX_MS (366ull * 86400000ull)
/* How far ahead cron_next looks for a calendar spec before answering -1. */
#define CRON_HORIZON_MS (5ll * 366 * 86400000ll)
/* The times cron_next answers for a calendar spec: after_ms from 1970 up to
 * 9000-01-01 (beyond, -1). */
#define CRON_TIME_MAX_MS 221845392000000ll

struct cron_spec {
	uint64_t every_ms;	  /* @every: the period (1 s to 366 days); 0 for calendar specs */
	uint64_t minute, hour;	  /* bit sets: minutes 0-59, hours 0-23 */
	uint32_t dom, month;	  /* days of month 1-31, months 1-12 */
	uint8_t dow;		  /* days of week 0-6 (Sunday 0; 7 accepted in input as Sunday) */
	bool dom_star, dow_star;  /* for the classic OR rule between day-of-month and day-of-week */
	char tz[CRON_TZ_MAX + 1]; /* "" = UTC */
};

/*
 * Parses expr (the forms above) and tz (NULL or "" for UTC, else a zone name:
 * components of [A-Za-z0-9_+-] separated by '/', no empty component, at
 * most CRON_TZ_MAX bytes, not under "right/" (those count leap seconds),
 * naming a regular file under /usr/share/zoneinfo that starts with
 * "TZif"). 0, or -EINVAL with err naming what was wrong. *out is written
 * only on success.
 */
int cron_parse(const char *expr, const char *tz, struct cron_spec *out, struct cdn_err *err);

/*
 * The first fire time strictly after after_ms (unix ms), or -1 when there is
 * none within CRON_HORIZON_MS (e.g. "0 0 31 2 *") or after_ms is outside
 * 0..CRON_TIME_MAX_MS.
 * @every: the first anchor_ms + k * every_ms (k >= 0) greater than after_ms;
 * -1 if that overflows int64 or anchor_ms is negative.
 * Calendar specs: the start of a matching wall-clock minute in spec->tz
 * (anchor_ms is not used); also -1 if TZ cannot be set (out of memory).
 * Safe to call from any thread.
 */
int64_t cron_next(const struct cron_spec *spec, int64_t anchor_ms, int64_t after_ms);
/* A process with threads that calls cron_next with zones sets TZ (any
 * value; cordon serve sets "UTC") before its first thread starts: the
 * switch then replaces TZ's value in place (glibc keeps the old strings),
 * and never adds or removes the variable, which moves the environment's
 * array under a concurrent getenv. */

/*
 * The canonical text of the spec (without its zone): "@every 2s" (the
 * largest unit that divides the period), or the five fields in numbers, each
 * "*", "*" with a step, or a list of N, N-M and N-M/STEP ("1-31" and "0-6"
 * stay lists in the day fields, where "*" would change the day rule).
 * cron_parse of the text gives back the same spec (fuzzed), when the text
 * fits in CRON_EXPR_MAX. out is always terminated; CRON_FORMAT_MAX always
 * suffices.
 */
void cron_format(const struct cron_spec *spec, char *out, size_t cap);

#endif
