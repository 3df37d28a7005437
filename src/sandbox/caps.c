/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Dropping privileges in the sandbox child, after the root is built (and
 * in a run's network part, see confine.c).
 *
 * The child holds a full capability set in its new user namespace. Our
 * mapping has no inside uid 0, so the kernel's "leaving uid 0 clears
 * capabilities" rule never fires: every set is cleared explicitly, the
 * securebits are locked so nothing can bring them back, and the result is
 * verified. Raw syscalls rather than libcap because the child must not
 * allocate (it may be cloned from a multi-threaded daemon).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandbox/internal.h"

int sb_last_cap(void)
{
	int v = 63;
	FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");
	if (f) {
		if (fscanf(f, "%d", &v) != 1)
			v = 63;
		fclose(f);
	}
	return v;
}

int sb_child_drop_privileges(const struct sb_plan *plan, struct sb_msg *fail)
{
	return sb_drop_privileges(plan->uid, plan->gid, plan->last_cap, !plan->rootless, fail);
}

int sb_drop_privileges(uid_t uid, gid_t gid, int last_cap, bool clear_groups,
		       struct sb_msg *fail)
{
	/* No path back to capabilities: not through uid 0 semantics, not
	 * through setuid fix-ups, not through ambient raising. */
	unsigned long bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
			     SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
			     SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
	if (prctl(PR_SET_SECUREBITS, bits, 0, 0, 0) < 0)
		return sb_fail(fail, errno, "lock securebits");

	for (int cap = 0; cap <= last_cap; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
			return sb_fail(fail, errno, "drop bounding capability %d", cap);
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
		return sb_fail(fail, errno, "clear ambient capabilities");

	/* Supplementary groups were inherited from the caller (root's
	 * include gid 0): clear them where the kernel lets us. Rootless mode
	 * had setgroups denied, and keeps the invoking user's own groups. */
	if (clear_groups && setgroups(0, NULL) < 0)
		return sb_fail(fail, errno, "clear supplementary groups");
	if (setresgid(gid, gid, gid) < 0)
		return sb_fail(fail, errno, "setresgid %u", (unsigned)gid);
	if (setresuid(uid, uid, uid) < 0)
		return sb_fail(fail, errno, "setresuid %u", (unsigned)uid);

	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2] = { { 0 } };
	if (syscall(SYS_capset, &hdr, data) < 0)
		return sb_fail(fail, errno, "clear capabilities");

	/* Verify: a silent failure here would be a sandbox running with
	 * privileges. */
	struct __user_cap_data_struct now[2] = { { 0 } };
	hdr.version = _LINUX_CAPABILITY_VERSION_3;
	hdr.pid = 0;
	if (syscall(SYS_capget, &hdr, now) < 0)
		return sb_fail(fail, errno, "read back capabilities");
	for (int i = 0; i < 2; i++)
		if (now[i].effective || now[i].permitted || now[i].inheritable)
			return sb_fail(fail, EPERM, "capabilities still present after drop");
	if (prctl(PR_CAPBSET_READ, 0, 0, 0, 0) != 0)
		return sb_fail(fail, EPERM, "bounding set still present after drop");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return sb_fail(fail, errno, "set no_new_privs");
	return 0;
}
