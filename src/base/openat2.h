/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Opening a path inside a directory without leaving it: openat2(2) with
 * RESOLVE_BENEATH or RESOLVE_IN_ROOT, so a symlink or ".." planted by
 * whoever controls the directory (an agent's workspace, a sandbox's root)
 * cannot steer the open to a file outside it (docker cp's CVE-2018-15664
 * and every symlink-swap bug of its kind).
 *
 * Where openat2 is missing (a kernel before 5.6) or refused (a container
 * runtime's seccomp profile that predates it), the same walk is done in
 * user space, one component at a time with O_PATH | O_NOFOLLOW, reading
 * symlinks itself and resolving them against the directory it was given.
 * The first ENOSYS is remembered, so later calls go to the fallback
 * directly; EPERM and EINVAL fall back each time (as crun's safe_openat).
 *
 * Neither allocates: the sandbox's child calls this after fork.
 */
#ifndef CORDON_BASE_OPENAT2_H
#define CORDON_BASE_OPENAT2_H

#include <linux/openat2.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * openat2(dirfd, path, { flags, mode, resolve }): an fd, or -1 with errno.
 * resolve must hold exactly one of RESOLVE_BENEATH and RESOLVE_IN_ROOT,
 * and may add RESOLVE_NO_SYMLINKS, RESOLVE_NO_MAGICLINKS and
 * RESOLVE_NO_XDEV (anything else: EINVAL), so that the fallback can
 * promise what the kernel does.
 *
 * The fallback refuses magic links (/proc/PID/fd/N and the like) as the
 * kernel does under these flags, telling them from procfs's plain links by
 * their text. With RESOLVE_NO_XDEV it compares mount ids where statx(2)
 * has them (5.8 and later) and devices otherwise, so a bind mount of the
 * same file system is crossed unnoticed there on a kernel before 5.8: the
 * one place it is looser, and no caller relies on RESOLVE_NO_XDEV alone.
 * mode is 0 unless flags hold O_CREAT (openat2 refuses anything else).
 */
int cdn_openat2(int dirfd, const char *path, int flags, mode_t mode, uint64_t resolve);

/* The fallback alone, with the same contract: the unit tests hold it to
 * the kernel's answers on a kernel that has openat2. */
int cdn_openat2_emulated(int dirfd, const char *path, int flags, mode_t mode, uint64_t resolve);

#endif
