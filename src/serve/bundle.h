/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Agent and capability bundles over the API: a directory packed as a tar
 * (optionally gzip-compressed) by the CLI, and unpacked by the server into
 * a scratch directory that the registry then snapshots like a local one.
 *
 * Unpacking faces untrusted bytes, so it is strict: only regular files,
 * directories and symlinks; no hard links, devices or fifos; a symlink's
 * target relative, without empty components or control characters (where
 * it leads, through ".." and other links, is checked by the registry's
 * walk of the unpacked tree, exactly as for a local directory:
 * docs/state.md); nothing unpacked below a symlink; every path
 * relative, without "." or ".." components or control characters, at most
 * BUNDLE_MAX_DEPTH deep; no entry twice; at most BUNDLE_MAX_ENTRIES entries
 * and BUNDLE_MAX_BYTES of file contents. Files get mode 0755 when the
 * archive gives any execute bit, else 0644 (what the registry's hash
 * keeps). Nothing is created outside `dirfd`: every path is opened one
 * component at a time below it, never following a symlink.
 */
#ifndef CORDON_BUNDLE_H
#define CORDON_BUNDLE_H

#include <stddef.h>

#include "base/err.h"

#define BUNDLE_MAX_UPLOAD (32u << 20)	 /* the packed body */
#define BUNDLE_MAX_BYTES  (256ull << 20) /* file contents, unpacked */
#define BUNDLE_MAX_ENTRIES 10000
#define BUNDLE_MAX_DEPTH   32
#define BUNDLE_MAX_PATH	   1024

/* Unpacks a tar or tar.gz held in memory into the empty directory dirfd.
 * The tar must end with its end-of-archive marker: one cut at an entry's
 * boundary is refused, not taken for a smaller tree. */
int bundle_extract(const void *data, size_t len, int dirfd, struct cdn_err *err);

/* The same from a file (an upload the server spooled to disk), read from
 * its start. */
int bundle_extract_fd(int fd, int dirfd, struct cdn_err *err);

/* Packs directory `dir` as a tar.gz in memory (caller frees *out). Symlinks
 * are packed as symlinks, never followed; a device, fifo or socket in it is
 * an error naming it, and the result must fit in BUNDLE_MAX_UPLOAD. The
 * CLI hashes the tree first (store_tree_hash), which refuses the links the
 * server would. */
int bundle_pack(const char *dir, char **out, size_t *out_len, struct cdn_err *err);

/* The header the CLI sends with an upload: the sha256 the registry gives
 * the tree (store_tree_hash). The server registers the unpacked tree only
 * when its hash is this one. */
#define BUNDLE_TREE_HEADER "X-Cordon-Tree-Sha256"

#endif
