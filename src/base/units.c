/* SPDX-License-Identifier: Apache-2.0 */
#include "base/units.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

/* Parse leading digits; returns the number of characters used, 0 on none
 * or overflow (overflow sets *overflow). */
static size_t parse_digits(const char *s, uint64_t *v, bool *overflow)
{
	size_t i = 0;
	uint64_t n = 0;
	*overflow = false;
	while (isdigit((unsigned char)s[i])) {
		unsigned d = (unsigned)(s[i] - '0');
		if (n > (UINT64_MAX - d) / 10) {
			*overflow = true;
			return 0;
		}
		n = n * 10 + d;
		i++;
	}
	*v = n;
	return i;
}

int cdn_parse_uint(const char *s, uint64_t max, uint64_t *out, struct cdn_err *err)
{
	uint64_t v;
	bool of;
	if (!s || !*s)
		return cdn_err_msg(err, EINVAL, "empty number");
	size_t n = parse_digits(s, &v, &of);
	if (of || (n && v > max))
		return cdn_err_msg(err, ERANGE, "'%s': out of range (at most %llu)", s,
				   (unsigned long long)max);
	if (n == 0 || s[n])
		return cdn_err_msg(err, EINVAL, "'%s': not a whole number", s);
	*out = v;
	return 0;
}

int cdn_parse_size(const char *s, uint64_t *out, struct cdn_err *err)
{
	uint64_t v;
	bool of;
	if (!s || !*s)
		return cdn_err_msg(err, EINVAL, "empty size");
	size_t n = parse_digits(s, &v, &of);
	if (of)
		return cdn_err_msg(err, ERANGE, "size '%s': too large", s);
	if (n == 0)
		return cdn_err_msg(err, EINVAL, "size '%s': expected a number such as 512m or 2g", s);
	const char *u = s + n;
	unsigned shift = 0;
	if (*u) {
		switch (tolower((unsigned char)*u)) {
		case 'k': shift = 10; break;
		case 'm': shift = 20; break;
		case 'g': shift = 30; break;
		case 't': shift = 40; break;
		case 'b': shift = 0; break;
		default:
			return cdn_err_msg(err, EINVAL, "size '%s': unknown unit '%s'", s, u);
		}
		u++;
		if (shift && (strcasecmp(u, "") != 0 && strcasecmp(u, "b") != 0 &&
			      strcasecmp(u, "ib") != 0))
			return cdn_err_msg(err, EINVAL, "size '%s': unknown unit", s);
		if (!shift && *u)
			return cdn_err_msg(err, EINVAL, "size '%s': unknown unit", s);
	}
	if (shift && v > (UINT64_MAX >> shift))
		return cdn_err_msg(err, ERANGE, "size '%s': too large", s);
	*out = v << shift;
	return 0;
}

int cdn_parse_duration_ms(const char *s, uint64_t *out, struct cdn_err *err)
{
	uint64_t v;
	bool of;
	if (!s || !*s)
		return cdn_err_msg(err, EINVAL, "empty duration");
	size_t n = parse_digits(s, &v, &of);
	if (of)
		return cdn_err_msg(err, ERANGE, "duration '%s': too large", s);
	if (n == 0)
		return cdn_err_msg(err, EINVAL, "duration '%s': expected a number such as 30s or 500ms",
				   s);
	const char *u = s + n;
	uint64_t mul;
	if (!*u || strcmp(u, "s") == 0)
		mul = 1000;
	else if (strcmp(u, "ms") == 0)
		mul = 1;
	else if (strcmp(u, "m") == 0)
		mul = 60000;
	else if (strcmp(u, "h") == 0)
		mul = 3600000;
	else if (strcmp(u, "d") == 0)
		mul = 86400000;
	else
		return cdn_err_msg(err, EINVAL,
				   "duration '%s': unknown unit '%s' (use ms, s, m, h or d)", s, u);
	if (v > UINT64_MAX / mul)
		return cdn_err_msg(err, ERANGE, "duration '%s': too large", s);
	*out = v * mul;
	return 0;
}

int cdn_parse_cpu(const char *s, uint64_t *millicores, struct cdn_err *err)
{
	uint64_t whole = 0, frac = 0;
	bool of;
	if (!s || !*s)
		return cdn_err_msg(err, EINVAL, "empty cpu amount");
	size_t n = parse_digits(s, &whole, &of);
	if (of || whole > 4096)
		return cdn_err_msg(err, ERANGE, "cpu '%s': too large", s);
	const char *p = s + n;
	if (*p == '.') {
		p++;
		unsigned digits = 0;
		while (isdigit((unsigned char)*p)) {
			if (digits < 3) {
				frac = frac * 10 + (uint64_t)(*p - '0');
				digits++;
			}
			p++;
		}
		if (digits == 0)
			return cdn_err_msg(err, EINVAL, "cpu '%s': expected digits after '.'", s);
		while (digits++ < 3)
			frac *= 10;
	} else if (n == 0) {
		return cdn_err_msg(err, EINVAL, "cpu '%s': expected a number of cores such as 0.5", s);
	}
	if (*p)
		return cdn_err_msg(err, EINVAL, "cpu '%s': expected a number of cores such as 0.5", s);
	uint64_t m = whole * 1000 + frac;
	if (m > 0 && m < 10)
		return cdn_err_msg(err, ERANGE, "cpu '%s': at least 0.01 cores (0: no limit)", s);
	*millicores = m;
	return 0;
}
