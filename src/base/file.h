/* SPDX-License-Identifier: Apache-2.0 */
/* Reading a whole file, bounded; writing a whole buffer. */
#ifndef CORDON_BASE_FILE_H
#define CORDON_BASE_FILE_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Reads fd to its end into a NUL-terminated buffer the caller frees.
 * -EFBIG when it holds more than max bytes (one byte past the bound is
 * read, so a file that grew after a size check is caught too), -ENOMEM,
 * or -errno of a failed read; *out is NULL then.
 */
int cdn_read_fd(int fd, size_t max, char **out, size_t *len);

/*
 * Writes all len bytes of buf to fd, again after EINTR and after a short
 * write (a pipe, a full disk's last block). 0, or -errno of the write that
 * failed: -EIO when one wrote nothing, -EAGAIN when a non-blocking fd is
 * full (what was written by then stays written).
 */
int cdn_write_all(int fd, const void *buf, size_t len);

/* The names in directory dfd, without "." and "..", in readdir order,
 * read through a fresh open (the caller's fd keeps its offset). Past max
 * names: -E2BIG, or, when more is not NULL, the first max with *more set.
 * Free with cdn_names_free. */
int cdn_dir_names(int dfd, size_t max, bool *more, char ***names, size_t *n);
void cdn_names_free(char **v, size_t n);

/*
 * Writes text to the existing file path (relative to dirfd, or AT_FDCWD)
 * in one write(2): the way kernel interfaces (cgroup files, uid_map) take
 * a value, where a value split over two writes means two values. 0, or
 * -errno; -EIO when the write was short.
 */
int cdn_write_once_at(int dirfd, const char *path, const char *text);

#endif
