/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "base/secure.h"

#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#endif

void *cdn_secure_malloc(size_t n)
{
	void *p = sodium_malloc(n);
	if (!p)
		return NULL;
	/* sodium_malloc gives the allocation pages of its own: the pages that
	 * hold it hold nothing else. */
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t lo = (uintptr_t)p & ~(page - 1);
	uintptr_t hi = ((uintptr_t)p + (n ? n : 1) + page - 1) & ~(page - 1);
	if (madvise((void *)lo, hi - lo, MADV_WIPEONFORK) < 0) {
		/* A kernel before 4.14: refuse rather than hand out memory a
		 * sandbox would inherit. */
		sodium_free(p);
		return NULL;
	}
	return p;
}

void cdn_secure_free(void *p)
{
	if (p)
		sodium_free(p);
}

void cdn_secure_scrub_env(const char *name)
{
	char *v = getenv(name);
	if (v)
		sodium_memzero(v, strlen(v));
	unsetenv(name);
}
