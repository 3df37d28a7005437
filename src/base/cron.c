/* SPDX-License-Identifier: Apache-2.0 */
#include "base/cron.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/units.h"

#define ZONEINFO_DIR "/usr/share/zoneinfo"
#define FIELDS 5

static const char *const month_names[] = { "jan", "feb", "mar", "apr", "may", "jun",
					    "jul", "aug", "sep", "oct", "nov", "dec" };
static const char *const dow_names[] = { "sun", "mon", "tue", "wed", "thu", "fri", "sat" };

/* The five fields, in order. lo..hi is what input may say (day of week
 * 0-7, 7 being Sunday again); span is how many distinct values the field
 * has, the largest step that means anything. */
static const struct field {
	const char *name;
	unsigned lo, hi, span;
	const char *const *names; /* names[i] is the value lo + i */
	size_t n_names;
} fields[FIELDS] = {
	{ "minute", 0, 59, 60, NULL, 0 },
	{ "hour", 0, 23, 24, NULL, 0 },
	{ "day-of-month", 1, 31, 31, NULL, 0 },
	{ "month", 1, 12, 12, month_names, 12 },
	{ "day-of-week", 0, 7, 7, dow_names, 7 },
};

/* An error in one field: "cron FIELD field 'TEXT': what". */
static int field_err(struct cdn_err *err, const struct field *f, const char *tok, const char *fmt,
		     ...) __attribute__((format(printf, 4, 5)));
static int field_err(struct cdn_err *err, const struct field *f, const char *tok, const char *fmt,
		     ...)
{
	char what[160];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return cdn_err_msg(err, EINVAL, "cron %s field '%s': %s", f->name, tok, what);
}

/* One value of a field at *p: at most two digits, or a three-letter name
 * where the field has names. Advances *p. */
static int parse_value(const struct field *f, const char *tok, const char **p, unsigned *v,
		       struct cdn_err *err)
{
	const char *s = *p;
	size_t n = 0;
	if (isdigit((unsigned char)*s)) {
		unsigned x = 0;
		while (isdigit((unsigned char)s[n])) {
			if (n < 3)
				x = x * 10 + (unsigned)(s[n] - '0');
			n++;
		}
		/* More than two digits is out of range in every field; "007"
		 * is refused rather than read as 7. */
		if (n > 2 || x < f->lo || x > f->hi)
			return field_err(err, f, tok, "%.*s is out of range (%u-%u)", (int)n, s,
					 f->lo, f->hi);
		*v = x;
		*p = s + n;
		return 0;
	}
	if (isalpha((unsigned char)*s)) {
		while (isalpha((unsigned char)s[n]))
			n++;
		for (size_t i = 0; f->names && n == 3 && i < f->n_names; i++) {
			if (strncasecmp(s, f->names[i], 3) == 0) {
				*v = f->lo + (unsigned)i;
				*p = s + n;
				return 0;
			}
		}
		if (f->names)
			return field_err(err, f, tok, "unknown name '%.*s' (%s)", (int)n, s,
					 f->n_names == 12 ? "JAN-DEC" : "SUN-SAT");
		return field_err(err, f, tok, "'%.*s' is not a number", (int)n, s);
	}
	if (!*s)
		return field_err(err, f, tok, "a value is missing at the end");
	return field_err(err, f, tok, "unexpected '%c'", *s);
}

/* "/STEP" at *p (the '/' included): 1 up to the field's span. */
static int parse_step(const struct field *f, const char *tok, const char **p, unsigned *step,
		      struct cdn_err *err)
{
	const char *s = *p + 1;
	size_t n = 0;
	unsigned x = 0;
	while (isdigit((unsigned char)s[n])) {
		if (n < 3)
			x = x * 10 + (unsigned)(s[n] - '0');
		n++;
	}
	if (n == 0)
		return field_err(err, f, tok, "'/' must be followed by a step");
	if (x == 0)
		return field_err(err, f, tok, "a step of 0");
	if (n > 2 || x > f->span)
		return field_err(err, f, tok, "step %.*s is out of range (1-%u)", (int)n, s,
				 f->span);
	*step = x;
	*p = s + n;
	return 0;
}

static uint64_t range_bits(unsigned lo, unsigned hi, unsigned step)
{
	uint64_t b = 0;
	for (unsigned v = lo; v <= hi; v += step)
		b |= 1ull << v;
	return b;
}

/* One field's text into its bit set. *star: the field begins with '*' (the
 * day rule's notion of an unrestricted field, as in Vixie cron). */
static int parse_field(const struct field *f, const char *tok, uint64_t *bits, bool *star,
		       struct cdn_err *err)
{
	const char *p = tok;
	unsigned step = 1;
	int r;
	*bits = 0;
	*star = false;
	if (*p == '*') {
		p++;
		if (*p == '/' && (r = parse_step(f, tok, &p, &step, err)) < 0)
			return r;
		if (*p == ',' || (*p && tok[1] != '/'))
			return field_err(err, f, tok, "'*' must stand alone in its field");
		if (*p)
			return field_err(err, f, tok, "unexpected '%c'", *p);
		/* Day of week "*" is 0-6: 7 would only repeat Sunday. */
		*bits = range_bits(f->lo, f->span == 7 ? 6 : f->hi, step);
		*star = true;
		return 0;
	}
	for (;;) {
		unsigned lo, hi;
		step = 1;
		if ((r = parse_value(f, tok, &p, &lo, err)) < 0)
			return r;
		hi = lo;
		if (*p == '-') {
			p++;
			if ((r = parse_value(f, tok, &p, &hi, err)) < 0)
				return r;
			if (hi < lo)
				return field_err(err, f, tok, "range %u-%u is reversed%s", lo, hi,
						 f->span == 7 ? " (Sunday can be written 7)" : "");
			if (*p == '/' && (r = parse_step(f, tok, &p, &step, err)) < 0)
				return r;
		} else if (*p == '/') {
			return field_err(err, f, tok, "a step needs a range (N-M/STEP or */STEP)");
		}
		*bits |= range_bits(lo, hi, step);
		if (!*p)
			break;
		if (*p != ',')
			return field_err(err, f, tok, "unexpected '%c'", *p);
		p++;
	}
	if (f->span == 7 && (*bits & (1ull << 7)))
		*bits = (*bits & ~(1ull << 7)) | 1ull;
	return 0;
}

static int parse_fields(char *const tok[FIELDS], struct cron_spec *s, struct cdn_err *err)
{
	uint64_t bits[FIELDS];
	bool star[FIELDS];
	for (size_t i = 0; i < FIELDS; i++) {
		int r = parse_field(&fields[i], tok[i], &bits[i], &star[i], err);
		if (r < 0)
			return r;
	}
	s->minute = bits[0];
	s->hour = bits[1];
	s->dom = (uint32_t)bits[2];
	s->month = (uint32_t)bits[3];
	s->dow = (uint8_t)bits[4];
	s->dom_star = star[2];
	s->dow_star = star[4];
	return 0;
}

static const struct {
	const char *name;
	const char *fields;
} at_names[] = {
	{ "@yearly", "0 0 1 1 *" }, { "@annually", "0 0 1 1 *" }, { "@monthly", "0 0 1 * *" },
	{ "@weekly", "0 0 * * 0" }, { "@daily", "0 0 * * *" },	  { "@midnight", "0 0 * * *" },
	{ "@hourly", "0 * * * *" },
};

/* Splits buf in place at runs of blanks; at most max tokens (one more is
 * counted, so the caller sees "too many"). */
static size_t split(char *buf, char *tok[], size_t max)
{
	size_t n = 0;
	char *p = buf;
	while (*p) {
		while (*p == ' ' || *p == '\t')
			*p++ = '\0';
		if (!*p)
			break;
		if (n < max)
			tok[n] = p;
		n++;
		while (*p && *p != ' ' && *p != '\t')
			p++;
	}
	return n;
}

static int parse_at(char *tok[], size_t n, struct cron_spec *s, struct cdn_err *err)
{
	if (strcasecmp(tok[0], "@every") == 0) {
		uint64_t ms;
		if (n != 2)
			return cdn_err_msg(err, EINVAL,
					   "cron @every takes one duration, such as '@every 2s' or "
					   "'@every 1h'");
		if (cdn_parse_duration_ms(tok[1], &ms, err) < 0) {
			cdn_err_wrap(err, "cron @every");
			return -EINVAL;
		}
		if (ms < CRON_EVERY_MIN_MS || ms > CRON_EVERY_MAX_MS)
			return cdn_err_msg(err, EINVAL,
					   "cron @every %s: out of range (at least 1s, at most "
					   "366d)",
					   tok[1]);
		s->every_ms = ms;
		return 0;
	}
	for (size_t i = 0; i < sizeof(at_names) / sizeof(at_names[0]); i++) {
		if (strcasecmp(tok[0], at_names[i].name) != 0)
			continue;
		if (n != 1)
			return cdn_err_msg(err, EINVAL, "cron %s takes nothing after it",
					   at_names[i].name);
		char buf[32];
		char *ftok[FIELDS + 1];
		snprintf(buf, sizeof(buf), "%s", at_names[i].fields);
		split(buf, ftok, FIELDS);
		return parse_fields(ftok, s, err);
	}
	return cdn_err_msg(err, EINVAL,
			   "cron '%s': unknown (use @yearly, @monthly, @weekly, @daily, @hourly or "
			   "@every DURATION)",
			   tok[0]);
}

/* The zone's name is checked character by character before it reaches a
 * path: no '.', so no "..", no leading '/', nothing but a name under
 * ZONEINFO_DIR. Then the file must be a zone file, which also keeps TZ from
 * ever naming something tzset would read differently. */
static int check_zone(const char *tz, struct cdn_err *err)
{
	size_t n = strnlen(tz, CRON_TZ_MAX + 1);
	if (n > CRON_TZ_MAX)
		return cdn_err_msg(err, EINVAL, "time zone: longer than %d bytes", CRON_TZ_MAX);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)tz[i];
		if (c == '/') {
			if (i == 0 || tz[i - 1] == '/' || i + 1 == n)
				return cdn_err_msg(err, EINVAL,
						   "time zone '%s': an empty component", tz);
		} else if (!isalnum(c) && c != '_' && c != '+' && c != '-') {
			return cdn_err_msg(err, EINVAL,
					   "time zone: byte %zu is not allowed (zone names are "
					   "made of A-Z, a-z, 0-9, _, +, - and /)",
					   i + 1);
		}
	}
	/* right/ zones count leap seconds in time_t, which unix time does not. */
	if (strncmp(tz, "right/", 6) == 0)
		return cdn_err_msg(err, EINVAL, "time zone '%s': right/ zones are not supported",
				   tz);
	/* Not zones: the host's own (a link to /etc/localtime) and tzdata's
	 * internals. */
	if (!strcmp(tz, "localtime") || !strcmp(tz, "posixrules") || !strcmp(tz, "Factory"))
		return cdn_err_msg(err, EINVAL, "time zone '%s': not a zone; name one, such as "
						"Europe/Berlin",
				   tz);
	char path[sizeof(ZONEINFO_DIR) + 1 + CRON_TZ_MAX];
	snprintf(path, sizeof(path), "%s/%s", ZONEINFO_DIR, tz);
	/* O_NONBLOCK: a FIFO there must not hang the request. */
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	struct stat st;
	char magic[4];
	if (fd < 0 && (errno == ENOENT || errno == ENOTDIR))
		return cdn_err_msg(err, EINVAL, "time zone '%s': unknown (no such zone in %s)", tz,
				   ZONEINFO_DIR);
	if (fd < 0)
		return cdn_err_msg(err, EINVAL, "time zone '%s': cannot open %s: %s", tz, path,
				   strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    read(fd, magic, sizeof(magic)) != (ssize_t)sizeof(magic) ||
	    memcmp(magic, "TZif", 4) != 0)
		return cdn_err_msg(err, EINVAL, "time zone '%s': not a zone file", tz);
	return 0;
}

int cron_parse(const char *expr, const char *tz, struct cron_spec *out, struct cdn_err *err)
{
	struct cron_spec s = { 0 };
	char buf[CRON_EXPR_MAX + 1];
	char *tok[FIELDS + 1];
	if (!expr)
		return cdn_err_msg(err, EINVAL, "cron expression: empty");
	size_t len = strnlen(expr, CRON_EXPR_MAX + 1);
	if (len > CRON_EXPR_MAX)
		return cdn_err_msg(err, EINVAL, "cron expression: longer than %d bytes",
				   CRON_EXPR_MAX);
	/* Printable ASCII only, so every message below can quote the input. */
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)expr[i];
		if ((c < 0x20 || c > 0x7e) && c != '\t')
			return cdn_err_msg(err, EINVAL,
					   "cron expression: byte %zu is not a printable character",
					   i + 1);
	}
	memcpy(buf, expr, len + 1);
	size_t n = split(buf, tok, FIELDS + 1);
	int r;
	if (n == 0)
		return cdn_err_msg(err, EINVAL, "cron expression: empty");
	if (tok[0][0] == '@')
		r = parse_at(tok, n, &s, err);
	else if (n != FIELDS)
		r = cdn_err_msg(err, EINVAL,
				"cron expression: %zu field%s, expected 5 (minute hour "
				"day-of-month month day-of-week) or an @name",
				n, n == 1 ? "" : "s");
	else
		r = parse_fields(tok, &s, err);
	if (r < 0)
		return r;
	if (tz && *tz) {
		if ((r = check_zone(tz, err)) < 0)
			return r;
		snprintf(s.tz, sizeof(s.tz), "%s", tz);
	}
	*out = s;
	return 0;
}

/* ---- next fire time ---- */

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static bool day_matches(const struct cron_spec *s, int mday, int wday)
{
	bool dom = (s->dom >> mday) & 1, dow = (s->dow >> wday) & 1;
	return (s->dom_star || s->dow_star) ? dom && dow : dom || dow;
}

/* The lowest set bit of bits at or above from, or -1. */
static int next_bit(uint64_t bits, int from)
{
	if (from >= 64)
		return -1;
	bits &= ~0ull << from;
	return bits ? __builtin_ctzll(bits) : -1;
}

/*
 * The first wall-clock minute at or after w that the spec matches, or -1
 * past limit. Wall times are counted like unix seconds of a clock without
 * a zone (timegm of the fields), so the calendar is plain arithmetic here;
 * the zone comes in afterwards. A month, day or hour that cannot match is
 * skipped whole, so five years take at most a few thousand turns.
 */
static int64_t next_wall(const struct cron_spec *s, int64_t w, int64_t limit)
{
	struct tm tm;
	while (w <= limit) {
		time_t t = (time_t)w;
		if (!gmtime_r(&t, &tm))
			return -1;
		int64_t day = w - tm.tm_hour * 3600 - tm.tm_min * 60 - tm.tm_sec;
		if (!((s->month >> (tm.tm_mon + 1)) & 1)) {
			tm.tm_mon++;
			tm.tm_mday = 1;
			tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
			w = (int64_t)timegm(&tm);
			continue;
		}
		if (!day_matches(s, tm.tm_mday, tm.tm_wday)) {
			w = day + 86400;
			continue;
		}
		int h = next_bit(s->hour, tm.tm_hour);
		if (h < 0) {
			w = day + 86400;
			continue;
		}
		int m = next_bit(s->minute, h == tm.tm_hour ? tm.tm_min : 0);
		if (m < 0) {
			w = day + (h + 1) * 3600;
			continue;
		}
		return day + h * 3600 + m * 60;
	}
	return -1;
}

/*
 * The first instant whose local time is exactly the wall time w (in the
 * zone tzset loaded), into *t; false when no instant has it (a gap). The
 * offsets that can apply are those in effect within a day either side;
 * each gives a candidate that is kept if it converts back to w, and the
 * earliest wins (fall back: the first occurrence).
 */
static bool first_instant(int64_t w, int64_t *t)
{
	static const int64_t probes[] = { -86400, -43200, 0, 43200, 86400 };
	bool found = false;
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
		time_t p = (time_t)(w + probes[i]);
		struct tm tm;
		if (!localtime_r(&p, &tm))
			continue;
		time_t c = (time_t)(w - tm.tm_gmtoff);
		if (!localtime_r(&c, &tm) || (int64_t)timegm(&tm) != w)
			continue;
		if (!found || c < *t)
			*t = c;
		found = true;
	}
	return found;
}

static pthread_mutex_t tz_lock = PTHREAD_MUTEX_INITIALIZER;

static int64_t next_in_zone(const struct cron_spec *s, int64_t after_ms)
{
	time_t a = (time_t)floor_div(after_ms, 1000);
	struct tm tm;
	if (!localtime_r(&a, &tm))
		return -1;
	/* Start at the wall minute of after_ms: no earlier wall time can first
	 * occur later than it (see first_instant). */
	int64_t w = floor_div((int64_t)timegm(&tm), 60) * 60;
	int64_t limit = w + CRON_HORIZON_MS / 1000;
	for (;;) {
		int64_t t;
		if ((w = next_wall(s, w, limit)) < 0)
			return -1;
		if (first_instant(w, &t) && t * 1000 > after_ms)
			return t * 1000;
		w += 60;
	}
}

/* Calendar specs in a zone: TZ switched under tz_lock (see cron.h for why
 * that is safe in cordon). */
static int64_t next_with_tz(const struct cron_spec *s, int64_t after_ms)
{
	char val[sizeof(ZONEINFO_DIR) + 2 + CRON_TZ_MAX];
	int64_t next = -1;
	/* The colon form names a file; the absolute path is the file
	 * cron_parse checked, whatever TZDIR says. */
	snprintf(val, sizeof(val), ":%s/%.*s", ZONEINFO_DIR, CRON_TZ_MAX, s->tz);
	pthread_mutex_lock(&tz_lock);
	const char *old = getenv("TZ");
	char *saved = old ? strdup(old) : NULL;
	if ((!old || saved) && setenv("TZ", val, 1) == 0) {
		tzset();
		next = next_in_zone(s, after_ms);
	}
	if (saved)
		setenv("TZ", saved, 1);
	else if (!old)
		unsetenv("TZ");
	tzset();
	pthread_mutex_unlock(&tz_lock);
	free(saved);
	return next;
}

int64_t cron_next(const struct cron_spec *spec, int64_t anchor_ms, int64_t after_ms)
{
	if (spec->every_ms) {
		uint64_t e = spec->every_ms;
		/* A negative anchor could make an answer of -1, which means none. */
		if (anchor_ms < 0)
			return -1;
		if (after_ms < anchor_ms)
			return anchor_ms;
		/* (after - anchor) fits in uint64_t; the multiple of e at or
		 * below it keeps the sum at or below after_ms. */
		uint64_t d = (uint64_t)after_ms - (uint64_t)anchor_ms;
		int64_t base = (int64_t)((uint64_t)anchor_ms + (d - d % e));
		if (e > (uint64_t)INT64_MAX || base > INT64_MAX - (int64_t)e)
			return -1;
		return base + (int64_t)e;
	}
	if (!spec->minute || !spec->hour || !spec->dom || !spec->month || !spec->dow)
		return -1;
	if (after_ms < 0 || after_ms > CRON_TIME_MAX_MS)
		return -1;
	if (spec->tz[0])
		return next_with_tz(spec, after_ms);
	int64_t start = (after_ms / 60000 + 1) * 60;
	int64_t w = next_wall(spec, start, start + CRON_HORIZON_MS / 1000);
	return w < 0 ? -1 : w * 1000;
}

/* ---- canonical text ---- */

struct out {
	char *p;
	size_t cap, len;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	if (o->len >= o->cap)
		return;
	va_start(ap, fmt);
	int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->len = (size_t)n >= o->cap - o->len ? o->cap - 1 : o->len + (size_t)n;
}

/* The step of bits if it is lo, lo+S, lo+2S, ... up to hi (S >= 1), else
 * 0. A single lo is taken as step span. */
static unsigned progression(uint64_t bits, unsigned lo, unsigned hi, unsigned span)
{
	int a = next_bit(bits, (int)lo);
	if (a != (int)lo)
		return 0;
	int b = next_bit(bits, a + 1);
	unsigned step = b < 0 ? span : (unsigned)(b - a);
	return range_bits(lo, hi, step) == bits ? step : 0;
}

/* A list, each run of values in one step written N-M/S (N-M when the step
 * is 1, N when alone); two values a step apart are written N,M. */
static void put_list(struct out *o, uint64_t bits, unsigned hi)
{
	bool first = true;
	int v = next_bit(bits, 0);
	while (v >= 0 && (unsigned)v <= hi) {
		int nx = next_bit(bits, v + 1);
		int last = v, count = 1;
		if (nx >= 0) {
			int step = nx - v;
			last = nx;
			count = 2;
			while (next_bit(bits, last + 1) == last + step) {
				last += step;
				count++;
			}
			if (count == 2 && step > 1) {
				last = v;
				count = 1;
			} else if (step > 1) {
				put(o, "%s%d-%d/%d", first ? "" : ",", v, last, step);
				first = false;
				v = next_bit(bits, last + 1);
				continue;
			}
		}
		if (count == 1)
			put(o, "%s%d", first ? "" : ",", v);
		else
			put(o, "%s%d-%d", first ? "" : ",", v, last);
		first = false;
		v = next_bit(bits, last + 1);
	}
}

/* One field: "*" or "*" with a step where the field is a star (the day
 * fields say so; the others are a star exactly when that spells their set),
 * else a list. */
static void put_field(struct out *o, const struct field *f, uint64_t bits, bool is_day, bool star)
{
	unsigned hi = f->span == 7 ? 6 : f->hi;
	unsigned step = progression(bits, f->lo, hi, f->span);
	if (is_day ? star && step : step && (step == 1 || __builtin_popcountll(bits) > 1)) {
		if (step == 1)
			put(o, "*");
		else
			put(o, "*/%u", step);
		return;
	}
	put_list(o, bits, hi);
}

void cron_format(const struct cron_spec *spec, char *out, size_t cap)
{
	struct out o = { out, cap, 0 };
	if (!cap)
		return;
	out[0] = '\0';
	if (spec->every_ms) {
		static const struct {
			uint64_t ms;
			const char *unit;
		} units[] = { { 86400000, "d" }, { 3600000, "h" }, { 60000, "m" }, { 1000, "s" } };
		const char *unit = "ms";
		uint64_t n = spec->every_ms;
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			if (spec->every_ms % units[i].ms == 0) {
				n = spec->every_ms / units[i].ms;
				unit = units[i].unit;
				break;
			}
		}
		put(&o, "@every %llu%s", (unsigned long long)n, unit);
		return;
	}
	put_field(&o, &fields[0], spec->minute, false, false);
	put(&o, " ");
	put_field(&o, &fields[1], spec->hour, false, false);
	put(&o, " ");
	put_field(&o, &fields[2], spec->dom, true, spec->dom_star);
	put(&o, " ");
	put_field(&o, &fields[3], spec->month, false, false);
	put(&o, " ");
	put_field(&o, &fields[4], spec->dow, true, spec->dow_star);
}
