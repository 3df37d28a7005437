/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Landlock: the second fence around the filesystem and the network.
 *
 * The mount namespace already decides what exists in the sandbox; Landlock
 * makes the kernel also refuse, per access right, anything outside the
 * granted paths, even if a mount flag was lost or a bind went wrong:
 *
 *  - read and execute everywhere in the sandbox root;
 *  - write only beneath /workspace, /tmp, /dev/shm and the rw binds, and
 *    to the few /dev nodes and the stdio the caller handed in;
 *  - TCP (ABI >= 4): no bind, and connect only to the egress ports;
 *  - scopes (ABI >= 6): no signals to, and no abstract unix sockets of,
 *    processes outside the sandbox's domain (that includes our pid 1).
 *
 * Older kernels apply only the parts their ABI has (Debian 12's 6.1: ABI 2,
 * the file system rules). The sandbox runs all the same, because the
 * namespaces already hold what the missing parts would add: its network
 * namespace has nothing on it but cordon's sockets and its own, and its pid
 * namespace shows no outside process. The status says which parts applied
 * (protections.c); docs/exec.md gives the reasoning.
 *
 * Debian 12's headers stop at ABI 1-2, so the ABI is defined here.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "sandbox/internal.h"

#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif

#define LL_CREATE_RULESET_VERSION (1u << 0)
#define LL_RULE_PATH_BENEATH 1
#define LL_RULE_NET_PORT 2

#define LL_FS_EXECUTE (1ull << 0)
#define LL_FS_WRITE_FILE (1ull << 1)
#define LL_FS_READ_FILE (1ull << 2)
#define LL_FS_READ_DIR (1ull << 3)
#define LL_FS_REMOVE_DIR (1ull << 4)
#define LL_FS_REMOVE_FILE (1ull << 5)
#define LL_FS_MAKE_CHAR (1ull << 6)
#define LL_FS_MAKE_DIR (1ull << 7)
#define LL_FS_MAKE_REG (1ull << 8)
#define LL_FS_MAKE_SOCK (1ull << 9)
#define LL_FS_MAKE_FIFO (1ull << 10)
#define LL_FS_MAKE_BLOCK (1ull << 11)
#define LL_FS_MAKE_SYM (1ull << 12)
#define LL_FS_REFER (1ull << 13)     /* ABI 2 */
#define LL_FS_TRUNCATE (1ull << 14)  /* ABI 3 */
#define LL_FS_IOCTL_DEV (1ull << 15) /* ABI 5 */

#define LL_NET_BIND_TCP (1ull << 0)    /* ABI 4 */
#define LL_NET_CONNECT_TCP (1ull << 1) /* ABI 4 */

#define LL_SCOPE_ABSTRACT_UNIX_SOCKET (1ull << 0) /* ABI 6 */
#define LL_SCOPE_SIGNAL (1ull << 1)		  /* ABI 6 */

struct ll_ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net;
	uint64_t scoped;
};

struct ll_path_beneath_attr {
	uint64_t allowed_access;
	int32_t parent_fd;
} __attribute__((packed));

struct ll_net_port_attr {
	uint64_t allowed_access;
	uint64_t port;
};

#define LL_FS_READ (LL_FS_READ_FILE | LL_FS_READ_DIR | LL_FS_EXECUTE)
#define LL_FS_FILE_RIGHTS \
	(LL_FS_EXECUTE | LL_FS_WRITE_FILE | LL_FS_READ_FILE | LL_FS_TRUNCATE | LL_FS_IOCTL_DEV)
#define LL_FS_ALL_V1 ((1ull << 13) - 1)
#define LL_FS_ALL (LL_FS_ALL_V1 | LL_FS_REFER | LL_FS_TRUNCATE | LL_FS_IOCTL_DEV)
/* Writable trees: everything but creating device nodes (which also needs
 * CAP_MKNOD, but say it twice). */
#define LL_FS_WRITE_TREE (LL_FS_ALL & ~(LL_FS_MAKE_CHAR | LL_FS_MAKE_BLOCK))
#define LL_FS_DEVNODE (LL_FS_READ_FILE | LL_FS_WRITE_FILE | LL_FS_TRUNCATE | LL_FS_IOCTL_DEV)

int sandbox_landlock_abi(void)
{
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LL_CREATE_RULESET_VERSION);
	if (abi < 0)
		return 0;
	/* Lets one kernel show what cordon does on older ones (the tests run
	 * ABI 3 this way: no kernel of Debian's has it). It can only lower
	 * the ABI, and the status reports what applied. */
	const char *cap = getenv("CORDON_LANDLOCK_ABI_MAX");
	if (cap && *cap) {
		char *end;
		long v = strtol(cap, &end, 10);
		if (*end == '\0' && v >= 0 && v < abi)
			abi = v;
	}
	return (int)abi;
}

static uint64_t fs_handled(int abi)
{
	uint64_t m = LL_FS_ALL_V1;
	if (abi >= 2)
		m |= LL_FS_REFER;
	if (abi >= 3)
		m |= LL_FS_TRUNCATE;
	if (abi >= 5)
		m |= LL_FS_IOCTL_DEV;
	return m;
}

static void add_rule(struct sb_plan *plan, const char *path, uint64_t access)
{
	if (plan->n_ll >= SB_LL_MAX)
		return; /* bounded; sb_plan_landlock sizes its input below this */
	char *p = strdup(path);
	if (!p)
		return;
	plan->ll[plan->n_ll].path = p;
	plan->ll[plan->n_ll].access = access;
	plan->n_ll++;
}

void sb_plan_landlock(struct sb_plan *plan, const struct sandbox_config *cfg)
{
	add_rule(plan, "/", LL_FS_READ);
	add_rule(plan, "/workspace", LL_FS_WRITE_TREE);
	add_rule(plan, "/tmp", LL_FS_WRITE_TREE);
	add_rule(plan, "/dev/shm", LL_FS_WRITE_TREE);
	add_rule(plan, "/dev/pts", LL_FS_DEVNODE | LL_FS_READ_DIR);
	static const char *const nodes[] = { "/dev/null", "/dev/zero", "/dev/full", "/dev/random",
					     "/dev/urandom" };
	for (size_t i = 0; i < CDN_ARRAY_SIZE(nodes); i++)
		add_rule(plan, nodes[i], LL_FS_DEVNODE);
	for (size_t i = 0; i < cfg->n_binds; i++)
		if (cfg->binds[i].rw)
			add_rule(plan, cfg->binds[i].dst, LL_FS_WRITE_TREE);
	if (cfg->steps_channel)
		add_rule(plan, SANDBOX_STEPS_PATH, LL_FS_WRITE_FILE | LL_FS_READ_FILE);
}

static int add_path_rule(int ruleset, int fd, uint64_t access, uint64_t handled)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -1;
	if (!S_ISDIR(st.st_mode))
		access &= LL_FS_FILE_RIGHTS;
	access &= handled;
	if (!access)
		return 0;
	struct ll_path_beneath_attr pb = { .allowed_access = access, .parent_fd = fd };
	return (int)syscall(SYS_landlock_add_rule, ruleset, LL_RULE_PATH_BENEATH, &pb, 0);
}

/* The caller's stdio may be a file or a terminal on the host; reopening it
 * through /dev/stdout must keep working, with no more rights than the
 * descriptor already carries. */
static void add_stdio_rules(int ruleset, uint64_t handled)
{
	for (int fd = 0; fd <= 2; fd++) {
		int fl = fcntl(fd, F_GETFL);
		struct stat st;
		if (fl < 0 || fstat(fd, &st) < 0)
			continue;
		if (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode))
			continue; /* pipes and sockets are not path-checked */
		uint64_t a = 0;
		int acc = fl & O_ACCMODE;
		if (acc == O_RDONLY || acc == O_RDWR)
			a |= LL_FS_READ_FILE;
		if (acc == O_WRONLY || acc == O_RDWR)
			a |= LL_FS_WRITE_FILE | LL_FS_TRUNCATE;
		if (S_ISCHR(st.st_mode))
			a |= LL_FS_IOCTL_DEV;
		(void)add_path_rule(ruleset, fd, a, handled);
	}
}

int sb_child_apply_landlock(const struct sb_plan *plan, struct sb_msg *fail)
{
	int abi = plan->landlock_abi;
	if (abi <= 0)
		return 0; /* refused or explicitly degraded by the parent */

	struct ll_ruleset_attr attr = { .handled_access_fs = fs_handled(abi) };
	size_t attr_size = sizeof(uint64_t);
	if (abi >= 4) {
		attr.handled_access_net = LL_NET_BIND_TCP | LL_NET_CONNECT_TCP;
		attr_size = 2 * sizeof(uint64_t);
	}
	if (abi >= 6) {
		attr.scoped = LL_SCOPE_ABSTRACT_UNIX_SOCKET | LL_SCOPE_SIGNAL;
		attr_size = sizeof(attr);
	}
	int rs = (int)syscall(SYS_landlock_create_ruleset, &attr, attr_size, 0);
	if (rs < 0)
		return sb_fail(fail, errno, "landlock: create ruleset");

	int r = 0;
	for (size_t i = 0; i < plan->n_ll && r == 0; i++) {
		int fd = open(plan->ll[i].path, O_PATH | O_CLOEXEC);
		if (fd < 0) {
			if (errno == ENOENT)
				continue;
			r = sb_fail(fail, errno, "landlock: open %s", plan->ll[i].path);
			break;
		}
		if (add_path_rule(rs, fd, plan->ll[i].access, attr.handled_access_fs) < 0)
			r = sb_fail(fail, errno, "landlock: rule for %s", plan->ll[i].path);
		close(fd);
	}
	if (r == 0)
		add_stdio_rules(rs, attr.handled_access_fs);

	if (r == 0 && abi >= 4 && plan->net == SANDBOX_NET_PROXY) {
		static const uint64_t ports[] = { SANDBOX_PROXY_PORT, SANDBOX_DNS_PORT };
		for (size_t i = 0; i < CDN_ARRAY_SIZE(ports) && r == 0; i++) {
			struct ll_net_port_attr np = { .allowed_access = LL_NET_CONNECT_TCP,
						       .port = ports[i] };
			if (syscall(SYS_landlock_add_rule, rs, LL_RULE_NET_PORT, &np, 0) < 0)
				r = sb_fail(fail, errno, "landlock: port rule");
		}
	}
	if (r == 0 && abi >= 4 && plan->mcp_channel) {
		struct ll_net_port_attr np = { .allowed_access = LL_NET_CONNECT_TCP,
					       .port = SANDBOX_MCP_PORT };
		if (syscall(SYS_landlock_add_rule, rs, LL_RULE_NET_PORT, &np, 0) < 0)
			r = sb_fail(fail, errno, "landlock: MCP port rule");
	}
	for (size_t i = 0; i < plan->n_local_ports && r == 0 && abi >= 4; i++) {
		struct ll_net_port_attr np = { .allowed_access = LL_NET_CONNECT_TCP |
								 LL_NET_BIND_TCP,
					       .port = plan->local_ports[i] };
		if (syscall(SYS_landlock_add_rule, rs, LL_RULE_NET_PORT, &np, 0) < 0)
			r = sb_fail(fail, errno, "landlock: local port %u", plan->local_ports[i]);
	}
	if (r == 0 && syscall(SYS_landlock_restrict_self, rs, 0) < 0)
		r = sb_fail(fail, errno, "landlock: restrict self");
	close(rs);
	return r;
}

int sb_landlock_deny_all(int abi, struct sb_msg *fail)
{
	struct ll_ruleset_attr attr = { .handled_access_fs = fs_handled(abi) };
	size_t attr_size = sizeof(uint64_t);
	if (abi >= 4) {
		/* Handled, with no rule: no TCP bind. Connect stays unhandled:
		 * the engine connects to the upstreams the policy allows. */
		attr.handled_access_net = LL_NET_BIND_TCP;
		attr_size = 2 * sizeof(uint64_t);
	}
	if (abi >= 6) {
		attr.scoped = LL_SCOPE_ABSTRACT_UNIX_SOCKET | LL_SCOPE_SIGNAL;
		attr_size = sizeof(attr);
	}
	int rs = (int)syscall(SYS_landlock_create_ruleset, &attr, attr_size, 0);
	if (rs < 0)
		return sb_fail(fail, errno, "landlock: create ruleset");
	int r = 0;
	if (syscall(SYS_landlock_restrict_self, rs, 0) < 0)
		r = sb_fail(fail, errno, "landlock: restrict self");
	close(rs);
	return r;
}
