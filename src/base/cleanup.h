/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Scope-bound cleanup helpers. A variable declared with one of these
 * attributes is released on every path out of its scope, so functions
 * keep one exit and no goto ladders.
 */
#ifndef CORDON_BASE_CLEANUP_H
#define CORDON_BASE_CLEANUP_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <dirent.h>

#define _cleanup_(f) __attribute__((cleanup(f)))

static inline void cdn_freep(void *p)
{
	free(*(void **)p);
}

static inline void cdn_closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}

static inline void cdn_fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}

static inline void cdn_closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
}

#define _cleanup_free_ _cleanup_(cdn_freep)
#define _cleanup_close_ _cleanup_(cdn_closep)
#define _cleanup_fclose_ _cleanup_(cdn_fclosep)
#define _cleanup_closedir_ _cleanup_(cdn_closedirp)

/* Hand ownership of an fd out of a cleanup scope. */
static inline int cdn_steal_fd(int *fd)
{
	int r = *fd;
	*fd = -1;
	return r;
}

/*
 * Hand ownership of a heap pointer out of a cleanup scope: *pp becomes
 * NULL and the value is returned with its own type, so a wrong
 * assignment is a compile error rather than a silent void * (bubblewrap's
 * steal_pointer makes the same promise). pp is evaluated once; *pp must be
 * a pointer.
 */
#define cdn_steal(pp)                                                                              \
	({                                                                                         \
		__typeof__(*(pp)) *cdn_steal_pp_ = (pp);                                           \
		__typeof__(*(pp)) cdn_steal_v_ = *cdn_steal_pp_;                                   \
		*cdn_steal_pp_ = NULL;                                                             \
		cdn_steal_v_;                                                                      \
	})

#define CDN_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
