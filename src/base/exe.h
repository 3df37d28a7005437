/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cordon's binaries find each other: `cordon` hands most commands to
 * `cordon-full` and the service commands to `cordon-api` (src/cli/main.c's
 * command table says whose each is), cordon serve starts runs in
 * `cordon-full`, and a run starts its network part, `cordon-net`. Each is
 * looked for next to the running binary (a build tree), then in the
 * installed layout relative to it (bin/../libexec/cordon, as meson's bindir
 * and libexecdir say), then in CORDON_LIBEXECDIR. This file is the only
 * reader of /proc/self/exe.
 */
#ifndef CORDON_BASE_EXE_H
#define CORDON_BASE_EXE_H

#include <stddef.h>

/* The path of sibling binary `name` (an executable file); 0, or -ENOENT
 * when no place has one (out then holds the libexec path tried). */
int cdn_sibling_exe(const char *name, char *out, size_t cap);

/* The running binary's own path (/proc/self/exe): 0, or -errno. */
int cdn_self_exe(char *out, size_t cap);

#endif
