/* SPDX-License-Identifier: Apache-2.0 */
/*
 * 32-byte keys kept in a file or given in an environment variable: the
 * vault's master key and the evidence signing key share these rules.
 *
 * A key file is exactly KEYFILE_BYTES bytes, a regular file (not a symlink,
 * not a FIFO), owned by this user, mode 0600 or narrower: one someone else
 * could have planted or read is refused, with the reason. It is created
 * atomically: random bytes in a private temp file (mkostemp), synced, then
 * published with link(2), so nobody sees half a key, and of two processes
 * racing exactly one key wins and the other reads it.
 */
#ifndef CORDON_VAULT_KEYFILE_H
#define CORDON_VAULT_KEYFILE_H

#include <stdbool.h>
#include <stddef.h>

#include "base/err.h"

#define KEYFILE_BYTES 32

/* A key from text: 64 hex digits, or the standard base64 of 32 bytes
 * (44 characters, or 43 without the '='). The message names `var` and the
 * text's length, never the text. -EINVAL and key wiped otherwise. */
int keyfile_from_text(const char *text, const char *var, unsigned char key[KEYFILE_BYTES],
		      struct cdn_err *err);

/* Reads DIR/FILE into key; when it is absent and `create` is set, makes
 * it first. path gets DIR/FILE. `what` names the key in messages ("master
 * key"). -ENOENT (err untouched) when absent and not created. */
int keyfile_load(const char *dir, const char *file, const char *what, bool create,
		 unsigned char key[KEYFILE_BYTES], char *path, size_t cap, struct cdn_err *err);

#endif
