/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cordon's binaries find each other: `cordon` hands most commands to
 * `cordon-full`, which hands the service commands to `cordon-api`, and a
 * run starts its network part, `cordon-net`. Each is looked for next to the
 * running binary (a build tree, or a prefix's bin/ with libexec beside
 * it), then in CORDON_LIBEXECDIR.
 */
#ifndef CORDON_BASE_EXE_H
#define CORDON_BASE_EXE_H

#include <stddef.h>

/* The path of sibling binary `name` (an executable file); 0, or -ENOENT
 * when neither place has one (out then holds the libexec path tried). */
int cdn_sibling_exe(const char *name, char *out, size_t cap);

#endif
