/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "base/exe.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

int cdn_self_exe(char *out, size_t cap)
{
	if (cap < 2)
		return -ENAMETOOLONG;
	ssize_t n = readlink("/proc/self/exe", out, cap - 1);
	if (n < 0)
		return -errno;
	if ((size_t)n >= cap - 1)
		return -ENAMETOOLONG; /* readlink cut it */
	out[n] = '\0';
	return 0;
}

int cdn_sibling_exe(const char *name, char *out, size_t cap)
{
	char self[PATH_MAX];
	if (cdn_self_exe(self, sizeof(self)) == 0) {
		char *slash = strrchr(self, '/');
		if (slash) {
			int w = snprintf(out, cap, "%.*s/%s", (int)(slash - self), self, name);
			if (w > 0 && (size_t)w < cap && access(out, X_OK) == 0)
				return 0;
		}
	}
	int w = snprintf(out, cap, "%s/%s", CORDON_LIBEXECDIR, name);
	if (w < 0 || (size_t)w >= cap)
		return -ENAMETOOLONG;
	return access(out, X_OK) == 0 ? 0 : -ENOENT;
}
