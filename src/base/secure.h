/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Memory for secrets (keys, secret values).
 *
 * libsodium's guarded allocation (guard pages, locked where the limit
 * allows, wiped when freed), and one thing more: MADV_WIPEONFORK. A process
 * forked or cloned from this one finds zeros there. A sandbox's pid 1 is a
 * clone of its supervisor, made after the vault is open and the run's
 * secrets are loaded: without this it would carry the master key and every
 * secret's value, sealed ones included, for the whole run.
 */
#ifndef CORDON_BASE_SECURE_H
#define CORDON_BASE_SECURE_H

#include <stddef.h>

/* NULL when out of memory; free with cdn_secure_free. */
void *cdn_secure_malloc(size_t n);
void cdn_secure_free(void *p); /* NULL is fine; wipes */

/* Wipes the value of environment variable `name` in this process's own
 * environment (in place, where forks and /proc/PID/environ would see it)
 * and removes it. For variables that carry a key. */
void cdn_secure_scrub_env(const char *name);

#endif
