/* SPDX-License-Identifier: Apache-2.0 */
/* Reading a whole file, bounded. */
#ifndef CORDON_BASE_FILE_H
#define CORDON_BASE_FILE_H

#include <stddef.h>

/*
 * Reads fd to its end into a NUL-terminated buffer the caller frees.
 * -EFBIG when it holds more than max bytes (one byte past the bound is
 * read, so a file that grew after a size check is caught too), -ENOMEM,
 * or -errno of a failed read; *out is NULL then.
 */
int cdn_read_fd(int fd, size_t max, char **out, size_t *len);

#endif
