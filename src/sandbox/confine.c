/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Confining a helper of ours that parses bytes a sandbox controls: a run's
 * network part (src/run/netpart.h), which serves the agent's HTTP, TLS,
 * DNS and MCP. It is not a sandbox (it needs the host's network to reach
 * the upstreams), so it gets the layers that fit a known program instead:
 * its own unprivileged ids, no capabilities, no_new_privs, not dumpable,
 * Landlock with no filesystem access at all, and a seccomp allowlist made
 * for it (seccomp_policy.c, "the helper's allowlist"), in that order, the
 * allowlist last. A bug in what it parses then costs at most that one
 * run's network, never the host.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandbox/internal.h"

/* The ids of run helpers sit just below the sandboxes' range: one per
 * supervisor (so two runs' helpers cannot signal each other or read each
 * other's memory), from the supervisor's pid. */
#define HELPER_ID_SPAN (1u << 22) /* pid_max's ceiling */

int sandbox_helper_ids(pid_t supervisor, uid_t *uid, gid_t *gid, struct cdn_err *err)
{
	const char *base = getenv("CORDON_HOSTID_BASE");
	unsigned long b = base && *base ? strtoul(base, NULL, 10) : SANDBOX_HOSTID_BASE;
	if (b <= HELPER_ID_SPAN + 1 || b > 0xfffffffeul)
		return cdn_err_msg(err, EINVAL,
				   "CORDON_HOSTID_BASE must be above %u: the ids below it are the "
				   "run helpers'",
				   HELPER_ID_SPAN + 1);
	unsigned long id = b - 1 - ((unsigned long)supervisor % HELPER_ID_SPAN);
	*uid = (uid_t)id;
	*gid = (gid_t)id;
	return 0;
}

int sandbox_confine_helper(uid_t uid, gid_t gid, unsigned allow_degraded,
			   struct sandbox_confinement *out, struct cdn_err *err)
{
	memset(out, 0, sizeof(*out));
	struct sb_msg fail;
	bool root = geteuid() == 0;
	/* Not dumpable: no core file holding the run's secrets or CA key, and
	 * no ptrace or /proc/PID/mem access from other processes of the same
	 * uid (rootless mode shares the user's uid). */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		return cdn_err_set(err, errno, "helper: not dumpable");
	struct rlimit core = { 0, 0 };
	(void)setrlimit(RLIMIT_CORE, &core);
	if (sb_drop_privileges(root ? uid : geteuid(), root ? gid : getegid(), sb_last_cap(), root,
			       &fail) < 0)
		return cdn_err_msg(err, fail.a, "helper: %s: %s", fail.text, strerror(fail.a));
	out->uid = geteuid();
	out->gid = getegid();
	out->no_new_privs = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1;
	/* Dropping the ids cleared the parent-death signal: the helper must
	 * still die with its supervisor. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		return cdn_err_set(err, errno, "helper: parent-death signal");

	int abi = sandbox_landlock_abi();
	if (abi <= 0 && !(allow_degraded & SANDBOX_PROT_LANDLOCK))
		return cdn_err_msg(err, EOPNOTSUPP,
				   "helper: Landlock is not available (allow it to be missing "
				   "with --allow-degraded=landlock)");
	if (abi > 0) {
		if (sb_landlock_deny_all(abi, &fail) < 0)
			return cdn_err_msg(err, fail.a, "helper: %s: %s", fail.text,
					   strerror(fail.a));
		out->landlock_abi = abi;
	}

	struct sb_bpf prog;
	sb_seccomp_helper_program(&prog);
	struct sock_fprog fp = { .len = prog.len, .filter = prog.filter };
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fp) < 0) {
		if (!(allow_degraded & SANDBOX_PROT_SECCOMP))
			return cdn_err_set(err, errno, "helper: seccomp");
	} else {
		out->seccomp = true;
	}
	return 0;
}
