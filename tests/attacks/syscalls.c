/* SPDX-License-Identifier: Apache-2.0 */
/* Every syscall the seccomp policy denies must be refused. */
#include "attack.h"

#include <fcntl.h>
#include <linux/keyctl.h>
#include <linux/perf_event.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

int main(void)
{
	char buf[64];
	struct iovec l = { buf, sizeof(buf) }, r = { (void *)0x400000, sizeof(buf) };

	MUST_FAIL_WITH("ptrace attach pid 1", EPERM, ptrace(PTRACE_ATTACH, 1, 0, 0));
	MUST_FAIL_WITH("ptrace traceme", EPERM, ptrace(PTRACE_TRACEME, 0, 0, 0));
	MUST_FAIL_WITH("process_vm_readv", EPERM, process_vm_readv(1, &l, 1, &r, 1, 0));
	MUST_FAIL_WITH("process_vm_writev", EPERM, process_vm_writev(1, &l, 1, &r, 1, 0));
	MUST_FAIL_WITH("pidfd_getfd", EPERM, syscall(SYS_pidfd_getfd, 0, 0, 0));
	MUST_FAIL_WITH("mount tmpfs", EPERM, mount("none", "/tmp", "tmpfs", 0, NULL));
	MUST_FAIL_WITH("mount cgroup v1", EPERM, mount("cgroup", "/tmp", "cgroup", 0, "memory"));
	MUST_FAIL_WITH("umount2", EPERM, umount2("/proc", MNT_DETACH));
	MUST_FAIL_WITH("pivot_root", EPERM, syscall(SYS_pivot_root, "/tmp", "/tmp"));
	MUST_FAIL_WITH("chroot", EPERM, chroot("/tmp"));
	MUST_FAIL_WITH("open_tree", EPERM, syscall(SYS_open_tree, AT_FDCWD, "/", 1));
	MUST_FAIL_WITH("move_mount", EPERM, syscall(SYS_move_mount, -1, "", -1, "", 0));
	MUST_FAIL_WITH("fsopen", EPERM, syscall(SYS_fsopen, "tmpfs", 0));
	MUST_FAIL_WITH("fsmount", EPERM, syscall(SYS_fsmount, -1, 0, 0));
	MUST_FAIL_WITH("mount_setattr", EPERM, syscall(SYS_mount_setattr, -1, "", 0, NULL, 0));
	MUST_FAIL_WITH("unshare user", EPERM, unshare(CLONE_NEWUSER));
	MUST_FAIL_WITH("unshare mount", EPERM, unshare(CLONE_NEWNS));
	MUST_FAIL_WITH("unshare net", EPERM, unshare(CLONE_NEWNET));
	MUST_FAIL_WITH("unshare pid", EPERM, unshare(CLONE_NEWPID));
	MUST_FAIL_WITH("setns", EPERM, setns(0, 0));
	MUST_FAIL_WITH("clone NEWUSER", EPERM,
		       syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0));
	MUST_FAIL_WITH("clone NEWNS|NEWPID", EPERM,
		       syscall(SYS_clone, CLONE_NEWNS | CLONE_NEWPID | SIGCHLD, 0, 0, 0, 0));
	MUST_FAIL_WITH("clone NEWNET (high bits set)", EPERM,
		       syscall(SYS_clone, (1ul << 40) | CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0));
	{
		/* clone3 cannot be argument-checked, so it must not exist. */
		unsigned long long args[11] = { CLONE_NEWUSER, 0, 0, 0, SIGCHLD };
		MUST_FAIL_WITH("clone3", ENOSYS, syscall(SYS_clone3, args, sizeof(args)));
	}
	MUST_FAIL_WITH("keyctl", EPERM, syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, -3, 0));
	MUST_FAIL_WITH("add_key", EPERM, syscall(SYS_add_key, "user", "x", "y", 1, -3));
	MUST_FAIL_WITH("request_key", EPERM, syscall(SYS_request_key, "user", "x", NULL, -3));
	MUST_FAIL_WITH("bpf", EPERM, syscall(SYS_bpf, 0, NULL, 0));
	{
		struct perf_event_attr pa;
		memset(&pa, 0, sizeof(pa));
		pa.size = sizeof(pa);
		pa.type = PERF_TYPE_SOFTWARE;
		MUST_FAIL_WITH("perf_event_open", EPERM,
			       syscall(SYS_perf_event_open, &pa, 0, -1, -1, 0));
	}
	MUST_FAIL_WITH("userfaultfd", EPERM, syscall(SYS_userfaultfd, 0));
	MUST_FAIL_WITH("io_uring_setup", EPERM, syscall(SYS_io_uring_setup, 1, buf));
	MUST_FAIL_WITH("io_uring_enter", EPERM, syscall(SYS_io_uring_enter, 0, 0, 0, 0, NULL, 0));
	MUST_FAIL_WITH("init_module", EPERM, syscall(SYS_init_module, buf, 0, ""));
	MUST_FAIL_WITH("finit_module", EPERM, syscall(SYS_finit_module, 0, "", 0));
	MUST_FAIL_WITH("delete_module", EPERM, syscall(SYS_delete_module, "x", 0));
	MUST_FAIL_WITH("kexec_load", EPERM, syscall(SYS_kexec_load, 0, 0, NULL, 0));
	MUST_FAIL_WITH("kexec_file_load", EPERM, syscall(SYS_kexec_file_load, -1, -1, 0, "", 0));
	MUST_FAIL_WITH("open_by_handle_at", EPERM, syscall(SYS_open_by_handle_at, AT_FDCWD, buf, 0));
	MUST_FAIL_WITH("name_to_handle_at", EPERM,
		       syscall(SYS_name_to_handle_at, AT_FDCWD, "/", buf, buf, 0));
	MUST_FAIL_WITH("reboot", EPERM, syscall(SYS_reboot, 0xfee1dead, 672274793, 0, NULL));
	MUST_FAIL_WITH("swapon", EPERM, syscall(SYS_swapon, "/tmp/x", 0));
	MUST_FAIL_WITH("swapoff", EPERM, syscall(SYS_swapoff, "/tmp/x"));
	MUST_FAIL_WITH("acct", EPERM, syscall(SYS_acct, "/tmp/x"));
	{
		struct timespec ts = { 0, 0 };
		struct timeval tv = { 0, 0 };
		MUST_FAIL_WITH("clock_settime", EPERM, clock_settime(CLOCK_REALTIME, &ts));
		MUST_FAIL_WITH("settimeofday", EPERM, syscall(SYS_settimeofday, &tv, NULL));
		MUST_FAIL_WITH("adjtimex", EPERM, syscall(SYS_adjtimex, buf));
	}
	MUST_FAIL_WITH("syslog", EPERM, syscall(SYS_syslog, 3, buf, sizeof(buf)));
	MUST_FAIL_WITH("iopl", EPERM, syscall(SYS_iopl, 3));
	MUST_FAIL_WITH("ioperm", EPERM, syscall(SYS_ioperm, 0x80, 1, 1));
	/* TIOCSTI: push input into the caller's terminal (CVE-2017-5226); also with
	 * garbage in the high 32 bits, which the kernel ignores (CVE-2019-10063). */
	char c = 'x';
	MUST_FAIL_WITH("ioctl TIOCSTI", EPERM, ioctl(0, TIOCSTI, &c));
	MUST_FAIL_WITH("ioctl TIOCSTI high bits", EPERM,
		       syscall(SYS_ioctl, 0, (1ul << 32) | TIOCSTI, &c));
	MUST_FAIL_WITH("ioctl TIOCLINUX", EPERM, ioctl(0, TIOCLINUX, &c));
	MUST_FAIL_WITH("socket AF_NETLINK", EAFNOSUPPORT, socket(AF_NETLINK, SOCK_RAW, 0));
	MUST_FAIL_WITH("socket AF_PACKET", EAFNOSUPPORT, socket(AF_PACKET, SOCK_RAW, 0));
	MUST_FAIL_WITH("socket AF_VSOCK", EAFNOSUPPORT, socket(AF_VSOCK, SOCK_STREAM, 0));
	MUST_FAIL_WITH("socket AF_ALG", EAFNOSUPPORT, socket(AF_ALG, SOCK_SEQPACKET, 0));
	MUST_FAIL_WITH("socket AF_BLUETOOTH", EAFNOSUPPORT, socket(AF_BLUETOOTH, SOCK_RAW, 0));
	MUST_FAIL_WITH("socket AF_UNIX + high bits", EAFNOSUPPORT,
		       syscall(SYS_socket, (1ul << 32) | AF_UNIX, SOCK_STREAM, 0));
	int sv[2];
	MUST_FAIL_WITH("socketpair AF_NETLINK", EAFNOSUPPORT, socketpair(AF_NETLINK, SOCK_RAW, 0, sv));
	/* Other personas are simply not implemented for the sandbox. */
	MUST_FAIL("personality READ_IMPLIES_EXEC", personality(READ_IMPLIES_EXEC));
	MUST_FAIL("personality ADDR_NO_RANDOMIZE", personality(ADDR_NO_RANDOMIZE));
	MUST_FAIL("setuid 0", setuid(0));

	/* Sanity: the allowed path still works, or the above proves nothing. */
	int s = socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0)
		escaped("sanity: AF_INET socket", strerror(errno));
	else
		close(s);
	pid_t p = fork();
	if (p == 0)
		_exit(0);
	if (p < 0 || waitpid(p, NULL, 0) != p)
		escaped("sanity: fork", strerror(errno));
	return attack_result();
}
