/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "base/exe.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

int cdn_sibling_exe(const char *name, char *out, size_t cap)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
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
