/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Is a process that claims a run still the one that took it? What the
 * store's crash recovery (store_runs_recover) and its run records need to
 * know about other processes, read from /proc: the boot id, a pid's start
 * time, and whether a pid is a live cordon that started then; and what
 * cordon serve's process metrics read of itself (CPU, memory, boot time).
 */
#ifndef CORDON_BASE_PROC_H
#define CORDON_BASE_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define CDN_BOOT_ID_MAX 40 /* bytes of a boot id, with its NUL */

/* This boot's id (/proc/sys/kernel/random/boot_id, without its newline). */
int cdn_boot_id(char *out, size_t cap, struct cdn_err *err);

/* The start time of pid (/proc/PID/stat field 22, in clock ticks since
 * boot); 0 when it cannot be read. */
uint64_t cdn_proc_start(int pid);

/* What /proc/PID/stat says of a process's use of the machine, for
 * cordon serve's process metrics. */
struct cdn_proc_usage {
	uint64_t utime_ticks, stime_ticks; /* CPU time, user and system, in clock ticks */
	uint64_t start_ticks;		   /* as cdn_proc_start */
	uint64_t vsize_bytes;		   /* virtual memory */
	uint64_t rss_pages;		   /* resident memory, in pages */
};
/* 0, or -errno (-EINVAL: the text is not as expected). */
int cdn_proc_usage(int pid, struct cdn_proc_usage *out);
/* When this machine booted, in unix seconds (/proc/stat's btime): 0 or
 * -errno. */
int cdn_boot_time(uint64_t *secs);

/*
 * A supervisor is alive when it ran on this boot (boot, current_boot), its
 * pid exists and is not a zombie, that pid's comm is cordon's, and (start
 * not 0) the process started when the one that took the run did. The comm
 * check catches pid reuse by an unrelated program, the start time reuse
 * by another cordon. start 0: unknown (a run recorded before schema 4),
 * not compared.
 */
bool cdn_supervisor_alive(int pid, const char *boot, const char *current_boot, uint64_t start);

#endif
