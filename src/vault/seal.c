/* SPDX-License-Identifier: Apache-2.0 */
/* Placeholders for sealed secrets (see seal.h). */
#define _GNU_SOURCE
#include "vault/seal.h"

#include <errno.h>
#include <sodium.h>
#include <stdbool.h>
#include <string.h>

static bool is_lower(uint8_t c)
{
	return c >= 'a' && c <= 'z';
}
static bool is_upper(uint8_t c)
{
	return c >= 'A' && c <= 'Z';
}
static bool is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}
static bool is_alnum(uint8_t c)
{
	return is_lower(c) || is_upper(c) || is_digit(c);
}

static size_t alnum_from(const uint8_t *v, size_t len, size_t from)
{
	size_t n = 0;
	for (size_t i = from; i < len; i++)
		n += is_alnum(v[i]);
	return n;
}

int seal_placeholder(const uint8_t *value, size_t len, char *out, struct cdn_err *err)
{
	if (memchr(value, '\0', len))
		return cdn_err_msg(err, EINVAL, "it holds a NUL byte");
	size_t total = alnum_from(value, len, 0);
	if (total < SEAL_MIN_RANDOM)
		return cdn_err_msg(err, EINVAL,
				   "it has %zu letters and digits; a placeholder needs at least %d",
				   total, SEAL_MIN_RANDOM);
	/* The longest tag that still leaves enough to randomise. */
	size_t want = total < SEAL_WANT_RANDOM ? total : SEAL_WANT_RANDOM;
	size_t keep = 0;
	for (size_t i = 0; i < len && i < 16; i++)
		if ((value[i] == '-' || value[i] == '_') && alnum_from(value, len, i + 1) >= want)
			keep = i + 1;
	for (int attempt = 0; attempt < 8; attempt++) {
		memcpy(out, value, len);
		out[len] = '\0';
		for (size_t i = keep; i < len; i++) {
			uint8_t c = value[i];
			if (is_lower(c))
				out[i] = (char)('a' + randombytes_uniform(26));
			else if (is_upper(c))
				out[i] = (char)('A' + randombytes_uniform(26));
			else if (is_digit(c))
				out[i] = (char)('0' + randombytes_uniform(10));
		}
		if (memcmp(out, value, len) != 0)
			return 0;
	}
	return cdn_err_msg(err, EIO, "no distinct placeholder could be made");
}
