/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "base/exe.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
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

/* dir/name into out when that is an executable file. */
static bool exe_at(const char *dir, const char *name, char *out, size_t cap)
{
	int w = snprintf(out, cap, "%s/%s", dir, name);
	return w > 0 && (size_t)w < cap && access(out, X_OK) == 0;
}

int cdn_sibling_exe(const char *name, char *out, size_t cap)
{
	char self[PATH_MAX];
	char *slash = cdn_self_exe(self, sizeof(self)) == 0 ? strrchr(self, '/') : NULL;
	if (slash) {
		*slash = '\0';
		if (exe_at(self, name, out, cap))
			return 0;
		/* The installed layout relative to the binary (bin/../libexec/cordon),
		 * so a tree unpacked under another root (dpkg --root, a chroot being
		 * built) runs its own helpers, not whatever CORDON_LIBEXECDIR holds
		 * on this machine. Empty when meson's bindir or libexecdir is absolute. */
		char rel[PATH_MAX];
		int w = snprintf(rel, sizeof(rel), "%s/%s", self, CORDON_LIBEXEC_FROM_BIN);
		if (CORDON_LIBEXEC_FROM_BIN[0] && w > 0 && (size_t)w < sizeof(rel) &&
		    exe_at(rel, name, out, cap))
			return 0;
	}
	if (exe_at(CORDON_LIBEXECDIR, name, out, cap))
		return 0;
	return strlen(CORDON_LIBEXECDIR) + strlen(name) + 2 > cap ? -ENAMETOOLONG : -ENOENT;
}
