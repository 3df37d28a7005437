/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CORDON_BASE_RANDOM_H
#define CORDON_BASE_RANDOM_H

#include <stddef.h>

/* Writes prefix + 2*nbytes lowercase hex digits from getrandom(2) into out
 * (NUL-terminated). 0, or negative errno. */
int cdn_random_id(const char *prefix, size_t nbytes, char *out, size_t cap);

#endif
