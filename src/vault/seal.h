/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sealed secrets: the sandbox never holds the value.
 *
 * A secret scoped to domains is handed to the agent as a placeholder: a
 * string of the same length and shape, made fresh for each run. The run's
 * network part swaps the value in on requests to the secret's domains only
 * (src/egress/engine_seal.c); anywhere else the placeholder is just a string,
 * which content inspection blocks like the secret itself. Whatever the
 * agent does to the placeholder (encode it, compress it, split it, send it
 * somewhere else) it cannot leak the secret, because it never had it.
 *
 * The shape: the same length; a leading tag up to a '-' or '_' in the
 * first 16 characters ("sk-proj-", "ghp_", "xoxb-") kept as long as
 * enough characters stay random; every other letter or digit replaced at
 * random by one of its own class (lower, upper, digit); every other byte
 * kept. So clients that check a key's format keep working, and the
 * percent-encoded or JSON-escaped placeholder is the same length as the
 * value encoded the same way, which lets the swap keep lengths (and
 * Content-Length) unchanged.
 */
#ifndef CORDON_VAULT_SEAL_H
#define CORDON_VAULT_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define SEAL_MIN_RANDOM 4   /* letters and digits made random, at least */
#define SEAL_WANT_RANDOM 16 /* a kept tag must leave this many (or all there are) */

/* out gets len bytes and a NUL. -EINVAL (err names why) for a value with a
 * NUL byte or too few letters and digits to make a distinct placeholder:
 * such a secret must be declared raw. */
int seal_placeholder(const uint8_t *value, size_t len, char *out, struct cdn_err *err);

#endif
