/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Strict parsers for the units users type: sizes ("512m", "1G"), durations
 * ("30s", "500ms", "2m"), CPU amounts ("0.5", "2") and ports. Each rejects
 * trailing garbage, overflow and empty input, and reports what was wrong.
 */
#ifndef CORDON_BASE_UNITS_H
#define CORDON_BASE_UNITS_H

#include <stdint.h>

#include "base/err.h"

/* Bytes; suffixes k, m, g, t (powers of 1024), optionally followed by "b"
 * or "ib", any case. A bare number is bytes. */
int cdn_parse_size(const char *s, uint64_t *out, struct cdn_err *err);

/* Milliseconds; suffixes ms, s, m, h, d. A bare number is seconds. */
int cdn_parse_duration_ms(const char *s, uint64_t *out, struct cdn_err *err);

/* CPU cores as a decimal ("0.5", "2", "1.25") into millicores. */
int cdn_parse_cpu(const char *s, uint64_t *millicores, struct cdn_err *err);

/* A plain decimal unsigned integer with an upper bound. */
int cdn_parse_uint(const char *s, uint64_t max, uint64_t *out, struct cdn_err *err);

#endif
