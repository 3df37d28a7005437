/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Attack programs run inside `cordon exec`. Each attempt prints one line:
 *   BLOCKED <name>: <how>     the sandbox stopped it
 *   ESCAPED <name>: <detail>  it worked: a sandbox failure
 *   DEGRADED <name>: <how>    a protection of a newer kernel is missing and
 *                             another holds (e.g. Landlock ABI < 6 lets a
 *                             signal reach pid 1, which ignores it); the
 *                             tests check these against the ABI cordon reports
 * The program exits 0 only when nothing escaped.
 */
#ifndef CORDON_ATTACK_H
#define CORDON_ATTACK_H

#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int attack_failures;

static inline void blocked(const char *name, const char *how)
{
	printf("BLOCKED %s: %s\n", name, how);
	fflush(stdout);
}

static inline void escaped(const char *name, const char *detail)
{
	printf("ESCAPED %s: %s\n", name, detail);
	fflush(stdout);
	attack_failures++;
}

static inline void degraded(const char *name, const char *how)
{
	printf("DEGRADED %s: %s\n", name, how);
	fflush(stdout);
}

/* A call that must fail: r < 0 is blocked. */
#define MUST_FAIL(name, call)                                                   \
	do {                                                                    \
		errno = 0;                                                      \
		long r_ = (long)(call);                                         \
		if (r_ < 0)                                                     \
			blocked(name, strerror(errno));                         \
		else                                                            \
			escaped(name, "call succeeded");                        \
	} while (0)

/* A call that must fail with one specific errno. */
#define MUST_FAIL_WITH(name, want, call)                                        \
	do {                                                                    \
		errno = 0;                                                      \
		long r_ = (long)(call);                                         \
		if (r_ < 0 && errno == (want))                                  \
			blocked(name, strerror(errno));                         \
		else if (r_ < 0) {                                              \
			char b_[160];                                           \
			snprintf(b_, sizeof(b_), "failed with %s, expected %s", \
				 strerror(errno), strerror(want));              \
			escaped(name, b_);                                      \
		} else                                                          \
			escaped(name, "call succeeded");                        \
	} while (0)

static inline int attack_result(void)
{
	printf("%s: %d escaped\n", attack_failures ? "FAIL" : "OK", attack_failures);
	return attack_failures ? 1 : 0;
}

#endif
