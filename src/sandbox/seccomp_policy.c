/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The seccomp policy, written with libseccomp.
 *
 * This file is compiled into tools/gen_seccomp, which runs at build time
 * and emits the classic BPF programs as a C header (seccomp_bpf.h); cordon
 * itself only loads them, so no sandbox pays for compiling the filter and
 * the binary does not need libseccomp at run time. tests/unit/test_seccomp
 * rebuilds the programs and checks the header is not stale. Shape:
 *
 *  - the architecture is checked first: anything but native x86_64
 *    (i386 through `int 0x80`, x32 through the 0x40000000 syscall bit)
 *    kills the process;
 *  - syscalls a normal program uses are allowed, several with argument
 *    checks (socket families, clone flags, ioctl commands, personality);
 *  - the escape and kernel-attack surface is refused with EPERM;
 *  - everything else, including syscalls newer than this list, gets
 *    ENOSYS, which libc treats as "not supported" and works around.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "sandbox/internal.h"

#ifndef __x86_64__
#error "cordon's seccomp policy is written for x86_64; port the syscall tables first"
#endif

/* Syscalls newer than the libseccomp that Debian 12 ships (2.5.4) cannot be
 * resolved by name; these are their x86_64 numbers. */
struct raw_syscall {
	const char *name;
	int nr;
};
static const struct raw_syscall raw_numbers[] = {
	{ "cachestat", 451 },	 { "fchmodat2", 452 },	{ "map_shadow_stack", 453 },
	{ "futex_wake", 454 },	 { "futex_wait", 455 }, { "futex_requeue", 456 },
	{ "statmount", 457 },	 { "listmount", 458 },	{ "lsm_get_self_attr", 459 },
	{ "lsm_set_self_attr", 460 }, { "lsm_list_modules", 461 }, { "mseal", 462 },
	{ "setxattrat", 463 },	 { "getxattrat", 464 }, { "listxattrat", 465 },
	{ "removexattrat", 466 }, { "open_tree_attr", 467 },
};

static const char *const allowed[] = {
	/* files and descriptors */
	"read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2",
	"pwritev2", "open", "openat", "openat2", "creat", "close", "close_range", "dup", "dup2",
	"dup3", "lseek", "fcntl", "flock", "fsync", "fdatasync", "sync", "syncfs",
	"sync_file_range", "truncate", "ftruncate", "fallocate", "fadvise64", "readahead",
	"sendfile", "splice", "tee", "vmsplice", "copy_file_range", "stat", "fstat", "lstat",
	"newfstatat", "statx", "statfs", "fstatfs", "access", "faccessat", "faccessat2",
	"getdents", "getdents64", "getcwd", "chdir", "fchdir", "rename", "renameat", "renameat2",
	"mkdir", "mkdirat", "rmdir", "link", "linkat", "unlink", "unlinkat", "symlink",
	"symlinkat", "readlink", "readlinkat", "chmod", "fchmod", "fchmodat", "fchmodat2",
	"chown", "fchown", "lchown", "fchownat", "umask", "utime", "utimes", "utimensat",
	"futimesat", "mknod", "mknodat", "setxattr", "lsetxattr", "fsetxattr", "getxattr",
	"lgetxattr", "fgetxattr", "listxattr", "llistxattr", "flistxattr", "removexattr",
	"lremovexattr", "fremovexattr", "setxattrat", "getxattrat", "listxattrat",
	"removexattrat", "pipe", "pipe2", "memfd_create", "cachestat", "inotify_init",
	"inotify_init1", "inotify_add_watch", "inotify_rm_watch",
	/* polling and events */
	"poll", "ppoll", "select", "pselect6", "epoll_create", "epoll_create1", "epoll_ctl",
	"epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2", "signalfd",
	"signalfd4", "timerfd_create", "timerfd_settime", "timerfd_gettime",
	/* memory */
	"mmap", "munmap", "mprotect", "mremap", "brk", "msync", "mincore", "madvise", "mlock",
	"mlock2", "munlock", "mlockall", "munlockall", "mbind", "get_mempolicy", "set_mempolicy",
	"set_mempolicy_home_node", "pkey_mprotect", "pkey_alloc", "pkey_free", "membarrier",
	"map_shadow_stack", "mseal",
	/* processes and threads */
	"fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4", "waitid", "kill",
	"tkill", "tgkill", "getpid", "getppid", "gettid", "getpgrp", "getpgid", "setpgid",
	"getsid", "setsid", "set_tid_address", "set_robust_list", "get_robust_list", "futex",
	"futex_waitv", "futex_wake", "futex_wait", "futex_requeue", "rseq", "arch_prctl",
	"prctl", "capget", "capset", "getpriority", "setpriority", "sched_yield",
	"sched_setparam", "sched_getparam", "sched_setscheduler", "sched_getscheduler",
	"sched_get_priority_max", "sched_get_priority_min", "sched_rr_get_interval",
	"sched_setaffinity", "sched_getaffinity", "sched_setattr", "sched_getattr", "getcpu",
	"pidfd_open", "pidfd_send_signal", "restart_syscall", "seccomp", "landlock_create_ruleset",
	"landlock_add_rule", "landlock_restrict_self",
	/* signals and time */
	"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigtimedwait",
	"rt_sigqueueinfo", "rt_tgsigqueueinfo", "rt_sigsuspend", "sigaltstack", "pause",
	"nanosleep", "clock_nanosleep", "clock_gettime", "clock_getres", "gettimeofday", "time",
	"getitimer", "setitimer", "alarm", "timer_create", "timer_settime", "timer_gettime",
	"timer_getoverrun", "timer_delete", "times",
	/* identity and limits (without capabilities these can only lower) */
	"getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getgroups",
	"setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups",
	"setfsuid", "setfsgid", "getrlimit", "setrlimit", "prlimit64", "getrusage", "sysinfo",
	"uname", "getrandom",
	/* networking (families are checked below) */
	"connect", "accept", "accept4", "bind", "listen", "shutdown", "getsockname",
	"getpeername", "setsockopt", "getsockopt", "sendto", "recvfrom", "sendmsg", "recvmsg",
	"sendmmsg", "recvmmsg",
	/* System V IPC and POSIX message queues: private to the ipc namespace */
	"shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "semctl", "semtimedop",
	"msgget", "msgsnd", "msgrcv", "msgctl", "mq_open", "mq_unlink", "mq_timedsend",
	"mq_timedreceive", "mq_notify", "mq_getsetattr",
	/* asynchronous I/O (not io_uring) */
	"io_setup", "io_destroy", "io_getevents", "io_pgetevents", "io_submit", "io_cancel",
};

/*
 * Refused with EPERM. Each line names what it would give an attacker.
 */
static const char *const denied[] = {
	/* reading or steering other processes (CVE-2019-5736 class) */
	"ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "process_madvise",
	"kcmp",
	/* reshaping the filesystem view */
	"mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "open_tree_attr",
	"fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr", "statmount", "listmount",
	/* new namespaces: the door to kernel surface otherwise closed */
	"unshare", "setns",
	/* kernel keyrings, eBPF, perf, userfaultfd, io_uring: frequent LPE vectors */
	"add_key", "request_key", "keyctl", "bpf", "perf_event_open", "userfaultfd",
	"io_uring_setup", "io_uring_enter", "io_uring_register",
	/* modules, kexec, file handles (CVE-2014-3519 "shocker"), power, swap */
	"init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
	"open_by_handle_at", "name_to_handle_at", "reboot", "swapon", "swapoff", "acct",
	/* the clocks */
	"settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
	/* misc host-level knobs */
	"syslog", "quotactl", "quotactl_fd", "lookup_dcookie", "vhangup", "iopl", "ioperm",
	"modify_ldt", "uselib", "fanotify_init", "move_pages", "migrate_pages",
	"lsm_set_self_attr", "nfsservctl", "_sysctl", "ustat", "sysfs",
};

static int resolve(const char *name)
{
	int nr = seccomp_syscall_resolve_name(name);
	if (nr != __NR_SCMP_ERROR)
		return nr;
	for (size_t i = 0; i < CDN_ARRAY_SIZE(raw_numbers); i++)
		if (strcmp(raw_numbers[i].name, name) == 0)
			return raw_numbers[i].nr;
	return -1;
}

static int add(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned n,
	       const struct scmp_arg_cmp *cmp, struct cdn_err *err)
{
	int nr = resolve(name);
	if (nr < 0)
		return 0; /* not a syscall on this architecture */
	int r = seccomp_rule_add_array(ctx, action, nr, n, cmp);
	if (r < 0)
		return cdn_err_set(err, -r, "seccomp rule for %s", name);
	return 0;
}

static int add_rules(scmp_filter_ctx ctx, struct cdn_err *err)
{
	int r;

	for (size_t i = 0; i < CDN_ARRAY_SIZE(allowed); i++)
		if ((r = add(ctx, SCMP_ACT_ALLOW, allowed[i], 0, NULL, err)) < 0)
			return r;
	for (size_t i = 0; i < CDN_ARRAY_SIZE(denied); i++)
		if ((r = add(ctx, SCMP_ACT_ERRNO(EPERM), denied[i], 0, NULL, err)) < 0)
			return r;

	/* clone3 passes its flags in memory that seccomp cannot read, so it
	 * is deliberately left out: it gets the default ENOSYS, and libc falls
	 * back to clone(), whose flags are checked here. */

	/* clone: threads and processes yes, namespaces no. */
	const uint64_t ns = CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC |
			    CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET;
	struct scmp_arg_cmp no_ns = SCMP_A0(SCMP_CMP_MASKED_EQ, ns, 0);
	if ((r = add(ctx, SCMP_ACT_ALLOW, "clone", 1, &no_ns, err)) < 0)
		return r;
	for (int bit = 0; bit < 64; bit++) {
		uint64_t f = 1ull << bit;
		if (!(ns & f))
			continue;
		struct scmp_arg_cmp has = SCMP_A0(SCMP_CMP_MASKED_EQ, f, f);
		if ((r = add(ctx, SCMP_ACT_ERRNO(EPERM), "clone", 1, &has, err)) < 0)
			return r;
	}

	/* ioctl is allowed here; the second filter below refuses the
	 * dangerous commands. */
	if ((r = add(ctx, SCMP_ACT_ALLOW, "ioctl", 0, NULL, err)) < 0)
		return r;

	/* socket and socketpair: AF_UNIX, AF_INET and AF_INET6 only. Netlink,
	 * packet, vsock, bluetooth, alg and the rest are kernel surface an
	 * agent does not need. */
	static const char *const sock_calls[] = { "socket", "socketpair" };
	static const int families[] = { AF_UNIX, AF_INET, AF_INET6 };
	for (size_t i = 0; i < CDN_ARRAY_SIZE(sock_calls); i++) {
		for (size_t j = 0; j < CDN_ARRAY_SIZE(families); j++) {
			struct scmp_arg_cmp fam = SCMP_A0(SCMP_CMP_EQ, (uint64_t)families[j]);
			if ((r = add(ctx, SCMP_ACT_ALLOW, sock_calls[i], 1, &fam, err)) < 0)
				return r;
		}
		struct scmp_arg_cmp low = SCMP_A0(SCMP_CMP_LT, AF_UNIX);
		struct scmp_arg_cmp mid[2] = { SCMP_A0(SCMP_CMP_GT, AF_INET),
					       SCMP_A0(SCMP_CMP_LT, AF_INET6) };
		struct scmp_arg_cmp high = SCMP_A0(SCMP_CMP_GT, AF_INET6);
		const uint32_t no = SCMP_ACT_ERRNO(EAFNOSUPPORT);
		if ((r = add(ctx, no, sock_calls[i], 1, &low, err)) < 0 ||
		    (r = add(ctx, no, sock_calls[i], 1, &mid[0], err)) < 0 ||
		    (r = add(ctx, no, sock_calls[i], 1, &high, err)) < 0)
			return r;
	}

	/* personality: querying and the plain Linux persona only; no
	 * READ_IMPLIES_EXEC or ADDR_NO_RANDOMIZE. */
	struct scmp_arg_cmp p0 = SCMP_A0(SCMP_CMP_EQ, 0);
	struct scmp_arg_cmp pq = SCMP_A0(SCMP_CMP_EQ, 0xffffffffu);
	if ((r = add(ctx, SCMP_ACT_ALLOW, "personality", 1, &p0, err)) < 0 ||
	    (r = add(ctx, SCMP_ACT_ALLOW, "personality", 1, &pq, err)) < 0)
		return r;
	return 0;
}

/*
 * The second filter, default allow: argument checks that need "everything
 * except these values", which one libseccomp allowlist rule cannot express
 * next to an unconditional allow. The kernel runs every filter and the most
 * restrictive answer wins.
 *
 * ioctl: no injecting input into the terminal (TIOCSTI, bubblewrap's
 * CVE-2017-5226) and no Linux console TIOCLINUX. The kernel reads the
 * command as 32 bits, so compare only those: flatpak's CVE-2019-10063 was a
 * filter fooled by garbage in the high bits.
 */
static int add_arg_rules(scmp_filter_ctx ctx, struct cdn_err *err)
{
	static const unsigned long cmds[] = { TIOCSTI, TIOCLINUX };
	for (size_t i = 0; i < CDN_ARRAY_SIZE(cmds); i++) {
		struct scmp_arg_cmp c = SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, cmds[i]);
		int r = add(ctx, SCMP_ACT_ERRNO(EPERM), "ioctl", 1, &c, err);
		if (r < 0)
			return r;
	}
	return 0;
}

static int export_bpf(scmp_filter_ctx ctx, struct sock_filter **bpf, unsigned short *len,
		      struct cdn_err *err)
{
	_cleanup_close_ int fd = memfd_create("cordon-seccomp", MFD_CLOEXEC);
	if (fd < 0)
		return cdn_err_set(err, errno, "seccomp: memfd");
	int r = seccomp_export_bpf(ctx, fd);
	if (r < 0)
		return cdn_err_set(err, -r, "seccomp: export");
	struct stat st;
	if (fstat(fd, &st) < 0)
		return cdn_err_set(err, errno, "seccomp: stat");
	if (st.st_size <= 0 || st.st_size % (off_t)sizeof(struct sock_filter) ||
	    st.st_size / (off_t)sizeof(struct sock_filter) > BPF_MAXINSNS)
		return cdn_err_msg(err, E2BIG, "seccomp: program of %lld bytes",
				   (long long)st.st_size);
	struct sock_filter *prog = malloc((size_t)st.st_size);
	if (!prog)
		return cdn_err_set(err, ENOMEM, "seccomp: program");
	if (pread(fd, prog, (size_t)st.st_size, 0) != st.st_size) {
		free(prog);
		return cdn_err_set(err, EIO, "seccomp: read back");
	}
	*bpf = prog;
	*len = (unsigned short)(st.st_size / (off_t)sizeof(struct sock_filter));
	return 0;
}

static int build(uint32_t def, int (*rules)(scmp_filter_ctx, struct cdn_err *),
		 struct sb_bpf *out, struct cdn_err *err)
{
	scmp_filter_ctx ctx = seccomp_init(def);
	if (!ctx)
		return cdn_err_set(err, ENOMEM, "seccomp: init");
	int r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	if (r == 0)
		r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
	/* A binary search over syscall numbers instead of a linear scan: the
	 * filter runs on every syscall of the sandbox. */
	if (r == 0)
		r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	if (r < 0)
		r = cdn_err_set(err, -r, "seccomp: attributes");
	else
		r = rules(ctx, err);
	if (r == 0)
		r = export_bpf(ctx, &out->filter, &out->len, err);
	seccomp_release(ctx);
	return r;
}

int sb_seccomp_build(struct sb_bpf progs[SB_BPF_PROGS], struct cdn_err *err)
{
	memset(progs, 0, sizeof(struct sb_bpf) * SB_BPF_PROGS);
	int r = build(SCMP_ACT_ERRNO(ENOSYS), add_rules, &progs[0], err);
	if (r == 0)
		r = build(SCMP_ACT_ALLOW, add_arg_rules, &progs[1], err);
	if (r < 0)
		for (int i = 0; i < SB_BPF_PROGS; i++) {
			free(progs[i].filter);
			progs[i].filter = NULL;
		}
	return r;
}

/* ---------------------------------------------------------------------------
 * The helper's allowlist: a run's network part (src/run/netpart.h), the
 * process that parses the agent's HTTP, TLS, DNS and MCP. It is much
 * narrower than the sandbox's, because the program is ours and known: an
 * event loop on sockets it was handed or connects itself (IPv4 and IPv6
 * only), memory, time, randomness. Nothing that opens a file (EACCES, on
 * top of Landlock), no new process or thread, no bind or listen. The
 * escape surface kills the process outright: a compromised network part
 * that tries it is a crash the supervisor records, not a quiet failure.
 * Anything else gets ENOSYS.
 */
static const char *const helper_allowed[] = {
	"read", "write", "readv", "writev", "recvfrom", "sendto", "recvmsg", "sendmsg", "close",
	"shutdown", "fcntl", "splice", "pipe2", "poll", "ppoll", "epoll_wait", "epoll_pwait",
	"epoll_pwait2", "epoll_ctl", "connect", "accept", "accept4", "getsockopt", "setsockopt",
	"getsockname", "getpeername", "brk", "mmap", "munmap", "mremap", "mprotect", "madvise",
	"clock_gettime", "clock_getres", "gettimeofday", "time", "getpid", "gettid", "getuid",
	"geteuid", "getgid", "getegid", "getrandom", "exit", "exit_group", "rt_sigreturn",
	"rt_sigprocmask", "rt_sigaction", "tgkill", "futex", "sched_yield", "restart_syscall",
	"fstat", "newfstatat", "lseek", "nanosleep", "clock_nanosleep", "getrlimit", "prlimit64",
	"sigaltstack", "set_robust_list", "rseq", "capget",
};

static const char *const helper_killed[] = {
	"execve", "execveat", "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd",
	"mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen",
	"fsconfig", "fsmount", "fspick", "mount_setattr", "unshare", "setns", "add_key",
	"request_key", "keyctl", "bpf", "perf_event_open", "userfaultfd", "io_uring_setup",
	"io_uring_enter", "io_uring_register", "init_module", "finit_module", "delete_module",
	"kexec_load", "kexec_file_load", "open_by_handle_at", "name_to_handle_at",
};

static int add_helper_rules(scmp_filter_ctx ctx, struct cdn_err *err)
{
	int r;
	for (size_t i = 0; i < CDN_ARRAY_SIZE(helper_allowed); i++)
		if ((r = add(ctx, SCMP_ACT_ALLOW, helper_allowed[i], 0, NULL, err)) < 0)
			return r;
	for (size_t i = 0; i < CDN_ARRAY_SIZE(helper_killed); i++)
		if ((r = add(ctx, SCMP_ACT_KILL_PROCESS, helper_killed[i], 0, NULL, err)) < 0)
			return r;
	/* Files: refused like Landlock would, so a library that looks for
	 * one lazily fails softly. */
	static const char *const files[] = { "open", "openat", "openat2", "creat" };
	for (size_t i = 0; i < CDN_ARRAY_SIZE(files); i++)
		if ((r = add(ctx, SCMP_ACT_ERRNO(EACCES), files[i], 0, NULL, err)) < 0)
			return r;
	/* No new processes or threads (EPERM, not a kill: a sanitizer's
	 * report spawns its symbolizer and should still be printed). */
	static const char *const procs[] = { "clone", "clone3", "fork", "vfork", "bind", "listen",
					     "setuid", "setgid", "setreuid", "setregid",
					     "setresuid", "setresgid", "setgroups", "kill", "tkill" };
	for (size_t i = 0; i < CDN_ARRAY_SIZE(procs); i++)
		if ((r = add(ctx, SCMP_ACT_ERRNO(EPERM), procs[i], 0, NULL, err)) < 0)
			return r;
	/* Sockets: IPv4 and IPv6 (upstreams, the resolver); every other
	 * family gets the default, ENOSYS. */
	static const int families[] = { AF_INET, AF_INET6 };
	for (size_t j = 0; j < CDN_ARRAY_SIZE(families); j++) {
		struct scmp_arg_cmp fam = SCMP_A0(SCMP_CMP_EQ, (uint64_t)families[j]);
		if ((r = add(ctx, SCMP_ACT_ALLOW, "socket", 1, &fam, err)) < 0)
			return r;
	}
	/* ioctl: what libevent and stdio ask (bytes readable, non-blocking,
	 * is-a-terminal), compared on the 32 bits the kernel reads. */
	static const unsigned long cmds[] = { FIONREAD, FIONBIO, TCGETS };
	for (size_t i = 0; i < CDN_ARRAY_SIZE(cmds); i++) {
		struct scmp_arg_cmp c = SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, cmds[i]);
		if ((r = add(ctx, SCMP_ACT_ALLOW, "ioctl", 1, &c, err)) < 0)
			return r;
	}
	return 0;
}

int sb_seccomp_build_helper(struct sb_bpf *prog, struct cdn_err *err)
{
	memset(prog, 0, sizeof(*prog));
	return build(SCMP_ACT_ERRNO(ENOSYS), add_helper_rules, prog, err);
}
