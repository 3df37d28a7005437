/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Loading the seccomp allowlist: the last step before execve.
 *
 * The programs were compiled from seccomp_policy.c at build time
 * (tools/gen_seccomp.c); see there for what they allow and deny.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/seccomp.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandbox/internal.h"
#include "seccomp_bpf.h"

int sb_seccomp_programs(struct sb_bpf progs[SB_BPF_PROGS], struct cdn_err *err)
{
	(void)err;
	progs[0].filter = (struct sock_filter *)cordon_seccomp_main;
	progs[0].len = (unsigned short)(sizeof(cordon_seccomp_main) / sizeof(cordon_seccomp_main[0]));
	progs[1].filter = (struct sock_filter *)cordon_seccomp_args;
	progs[1].len = (unsigned short)(sizeof(cordon_seccomp_args) / sizeof(cordon_seccomp_args[0]));
	return 0;
}

void sb_seccomp_helper_program(struct sb_bpf *prog)
{
	prog->filter = (struct sock_filter *)cordon_seccomp_helper;
	prog->len = (unsigned short)(sizeof(cordon_seccomp_helper) / sizeof(cordon_seccomp_helper[0]));
}

int sb_child_apply_seccomp(const struct sb_plan *plan)
{
	/* The argument filter first; every filter applies to every call. */
	for (int i = SB_BPF_PROGS - 1; i >= 0; i--) {
		if (!plan->bpf[i].len)
			continue;
		struct sock_fprog prog = { .len = plan->bpf[i].len, .filter = plan->bpf[i].filter };
		if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
			return -1;
	}
	return 0;
}
