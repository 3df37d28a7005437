/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The supervisor side of a sandbox: plan, clone, map ids, join the cgroup,
 * wait for the child to build its root, then watch it, enforce the
 * timeout, forward signals, collect the status and tear down.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/clock.h"
#include "base/file.h"
#include "sandbox/internal.h"

#define SETUP_TIMEOUT_MS 30000


/* CORDON_TRACE=1 prints where the start-up time goes (bench/startup). */
static void trace_step(const struct sandbox *sb, const char *what)
{
	static int on = -1;
	if (on < 0) {
		const char *e = getenv("CORDON_TRACE");
		on = e && *e && strcmp(e, "0") != 0;
	}
	if (on)
		fprintf(stderr, "cordon-trace: %-22s %8.3f ms\n", what,
			(double)(cdn_mono_ns() - sb->start_ns) / 1e6);
}

/* ------------------------------------------------------------ spawn */

static int map_ids(pid_t pid, const struct sb_plan *plan, struct cdn_err *err)
{
	char path[64], map[64];
	int r;
	if (plan->rootless) {
		/* Unprivileged gid_map writes require setgroups to be denied
		 * (CVE-2014-8989: dropping groups to gain access). */
		snprintf(path, sizeof(path), "/proc/%d/setgroups", (int)pid);
		if ((r = cdn_write_once_at(AT_FDCWD, path, "deny")) < 0)
			return cdn_err_set(err, -r, "user namespace: deny setgroups");
	}
	snprintf(path, sizeof(path), "/proc/%d/uid_map", (int)pid);
	snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)plan->uid, (unsigned)plan->host_uid);
	if ((r = cdn_write_once_at(AT_FDCWD, path, map)) < 0)
		return cdn_err_set(err, -r, "user namespace: write uid_map");
	snprintf(path, sizeof(path), "/proc/%d/gid_map", (int)pid);
	snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)plan->gid, (unsigned)plan->host_gid);
	if ((r = cdn_write_once_at(AT_FDCWD, path, map)) < 0)
		return cdn_err_set(err, -r, "user namespace: write gid_map");
	return 0;
}

/*
 * A pipe's inode belongs to whoever created it, and reopening it through
 * /dev/stdout re-checks that ownership. Hand the stdio pipes to the sandbox
 * uid so `echo > /dev/stderr` works inside, as it does everywhere else.
 * Only pipes we own are touched; terminals and files are left alone.
 */
static void give_stdio_pipes(const struct sandbox_config *cfg, const struct sb_plan *plan)
{
	const int fds[3] = { cfg->stdin_fd >= 0 ? cfg->stdin_fd : 0,
			     cfg->stdout_fd >= 0 ? cfg->stdout_fd : 1,
			     cfg->stderr_fd >= 0 ? cfg->stderr_fd : 2 };
	if (plan->rootless)
		return;
	for (int i = 0; i < 3; i++) {
		struct stat st;
		if (fstat(fds[i], &st) == 0 && S_ISFIFO(st.st_mode) && st.st_uid == geteuid())
			if (fchown(fds[i], plan->host_uid, plan->host_gid) < 0)
				continue; /* best effort: reopening may fail, nothing else */
	}
}

/* Wait for READY (collecting the egress fds) or a setup failure. */
static int await_ready(struct sandbox *sb, struct cdn_err *err)
{
	struct pollfd p = { .fd = sb->sync_fd, .events = POLLIN };
	int r;
	do
		r = poll(&p, 1, SETUP_TIMEOUT_MS);
	while (r < 0 && errno == EINTR);
	if (r == 0)
		return cdn_err_msg(err, ETIMEDOUT, "sandbox setup: timed out");
	if (r < 0)
		return cdn_err_set(err, errno, "sandbox setup: poll");

	struct sb_msg m;
	memset(&m, 0, sizeof(m));
	struct iovec iov = { .iov_base = &m, .iov_len = sizeof(m) };
	union {
		char buf[CMSG_SPACE(sizeof(int) * SB_FD_COUNT)];
		struct cmsghdr align;
	} u;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	ssize_t n;
	do
		n = recvmsg(sb->sync_fd, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return cdn_err_set(err, errno, "sandbox setup: read");
	int got[SB_FD_COUNT];
	size_t n_got = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < nfd; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (n_got < SB_FD_COUNT)
				got[n_got++] = fd;
			else
				close(fd);
		}
	}
	/* msg.a says which slots the fds fill, in order. */
	size_t k = 0;
	for (int i = 0; i < SB_FD_COUNT && k < n_got; i++)
		if (m.type == SB_MSG_READY && (m.a & (1 << i)))
			sb->fds[i] = got[k++];
	while (k < n_got)
		close(got[k++]);
	if (n == 0)
		return cdn_err_msg(err, EPIPE, "sandbox setup: the sandbox exited during setup");
	if (n != (ssize_t)sizeof(m))
		return cdn_err_msg(err, EPROTO, "sandbox setup: short message");
	if (m.type == SB_MSG_SETUP_FAILED) {
		m.text[sizeof(m.text) - 1] = '\0';
		return cdn_err_set(err, m.a, "sandbox setup: %s", m.text);
	}
	if (m.type != SB_MSG_READY)
		return cdn_err_msg(err, EPROTO, "sandbox setup: unexpected message %u", m.type);
	return 0;
}

static int create_cgroup(struct sandbox *sb, const struct sandbox_config *cfg,
			 struct cdn_err *err)
{
	int r = sb_cgroup_create(&cfg->limits, false, &sb->cg, err);
	if (r < 0) {
		if (!(cfg->allow_degraded & SANDBOX_PROT_CGROUP))
			return cdn_err_wrap(err, "limits (pass --allow-degraded=cgroup to run without)");
		sb->st.prot.degraded |= SANDBOX_PROT_CGROUP;
		cdn_err_clear(err);
	}
	sb->st.prot.cgroup_version = sb_cgroup_version(sb->cg);
	trace_step(sb, "cgroup");
	return 0;
}

static int send_type(struct sandbox *sb, enum sb_msg_type type, struct cdn_err *err)
{
	struct sb_msg m = { .type = type };
	if (send(sb->sync_fd, &m, sizeof(m), MSG_NOSIGNAL) < 0)
		return cdn_err_set(err, errno, "sandbox: start");
	return 0;
}

/* The child runs plan (cold), or waits for one in arena (warm). */
static int do_clone(struct sandbox *sb, struct sb_plan *plan, struct sb_arena *arena, int cgfd,
		    struct cdn_err *err)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return cdn_err_set(err, errno, "sandbox: socketpair");

	int pidfd = -1;
	struct clone_args args = {
		.flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC |
			 CLONE_NEWUTS | CLONE_PIDFD,
		.pidfd = (uint64_t)(uintptr_t)&pidfd,
		.exit_signal = SIGCHLD,
	};
	if (cgfd >= 0) {
		args.flags |= CLONE_INTO_CGROUP;
		args.cgroup = (uint64_t)cgfd;
	}
	long pid = syscall(SYS_clone3, &args, sizeof(args));
	if (pid == 0) {
		close(sv[0]);
		_exit(arena ? sb_child_warm_main(arena, sv[1]) : sb_child_main(plan, sv[1]));
	}
	int e = errno;
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		/* Moving a process into a cgroup, at clone too, needs write
		 * access to cgroup.procs of the common ancestor of where it is
		 * and where it goes. */
		if (cgfd >= 0 && e == EACCES)
			return cdn_err_set(err, e,
					   "clone into the sandbox's cgroup (without root, cordon "
					   "must itself run inside the delegated cgroup that "
					   "CORDON_CGROUP_PARENT names: docs/exec.md)");
		if (e == EPERM || e == ENOSPC || e == EUSERS)
			return cdn_err_set(err, e,
					   "create namespaces (are unprivileged user namespaces "
					   "enabled? see kernel.unprivileged_userns_clone and "
					   "user.max_user_namespaces)");
		return cdn_err_set(err, e, "create namespaces");
	}
	sb->pid = (pid_t)pid;
	sb->pidfd = pidfd;
	sb->sync_fd = sv[0];
	return 0;
}

static void sandbox_freep(struct sandbox **sb)
{
	sandbox_free(*sb);
}

static bool warm_always(void)
{
	static int on = -1;
	if (on < 0) {
		const char *e = getenv("CORDON_SANDBOX_WARM");
		on = e && *e && strcmp(e, "0") != 0;
	}
	return on;
}

int sandbox_spawn(const struct sandbox_config *cfg, struct sandbox **out, struct cdn_err *err)
{
	*out = NULL;
	if (warm_always()) {
		/* Every sandbox through the warm path (the test suites run
		 * this way too): made, then started at once. */
		_cleanup_(sandbox_freep) struct sandbox *w = NULL;
		int r = sandbox_warm_create(cfg, &w, err);
		if (r == 0)
			r = sandbox_warm_start(w, cfg, err);
		if (r == 0)
			*out = cdn_steal(&w);
		return r;
	}
	_cleanup_(sandbox_freep) struct sandbox *sb = calloc(1, sizeof(*sb));
	if (!sb)
		return cdn_err_set(err, ENOMEM, "sandbox");
	sb->pid = -1;
	sb->pidfd = sb->sync_fd = -1;
	for (int i = 0; i < SB_FD_COUNT; i++)
		sb->fds[i] = -1;
	sb->start_ns = cdn_mono_ns();
	sb->n_phases = cfg->n_phases;
	if (cfg->limits.timeout_ms)
		sb->deadline_ns = sb->start_ns + cfg->limits.timeout_ms * 1000000ull;

	_cleanup_(sb_plan_freep) struct sb_plan *plan = NULL;
	_cleanup_close_ int cgfd = -1;
	int r = sb_plan_build(cfg, &plan, &sb->st.prot, err);
	if (r < 0)
		return r;
	trace_step(sb, "plan");

	/*
	 * cgroup v2: create the cgroup first, and clone3(CLONE_INTO_CGROUP)
	 * starts the child inside it. cgroup v1 has no such thing, and moving
	 * a task between v1 cgroups waits for an RCU grace period: create and
	 * join it while the child builds its root, which it does before it
	 * runs anything of the caller's.
	 */
	int version = sb_cgroup_probe_version();
	if (version == 2 && (r = create_cgroup(sb, cfg, err)) < 0)
		return r;
	cgfd = sb_cgroup_clone_fd(sb->cg);
	if (sb->cg && sb_cgroup_version(sb->cg) == 2 && cgfd < 0)
		return cdn_err_set(err, errno, "cgroup v2: open for clone");
	give_stdio_pipes(cfg, plan);
	sb->host_uid = plan->host_uid;
	sb->host_gid = plan->host_gid;
	if ((r = do_clone(sb, plan, NULL, cgfd, err)) < 0)
		return r;
	sb->st.prot.userns = true;
	trace_step(sb, "clone");
	if ((r = map_ids(sb->pid, plan, err)) < 0 || (r = send_type(sb, SB_MSG_GO, err)) < 0)
		return r;
	trace_step(sb, "ids mapped");
	if (version != 2 && !sb->cg && !(sb->st.prot.degraded & SANDBOX_PROT_CGROUP) &&
	    (r = create_cgroup(sb, cfg, err)) < 0)
		return r;

	const char *dirs[JANITOR_MAX_DIRS];
	size_t nd = sb_cgroup_dirs(sb->cg, dirs, JANITOR_MAX_DIRS);
	r = janitor_register(sb->pid, dirs, nd, &sb->janitor_id);
	if (r < 0)
		return cdn_err_set(err, -r, "sandbox: start the janitor");
	trace_step(sb, "janitor");
	if (cgfd < 0 && (r = sb_cgroup_attach(sb->cg, sb->pid, err)) < 0)
		return r;
	/* If the child already failed its setup, this send fails; its report
	 * is waiting in the socket and await_ready() returns it. */
	(void)send_type(sb, SB_MSG_CGROUP, NULL);
	trace_step(sb, "cgroup joined");
	if ((r = await_ready(sb, err)) < 0)
		return r;
	trace_step(sb, "sandbox ready");
	*out = cdn_steal(&sb);
	return 0;
}

/* ------------------------------------------------------------- warm */

/* Room for a plan: the largest input.json (1 MiB), a CA, the steps and
 * the environment. Pages never touched cost nothing. */
#define SB_ARENA_SIZE (4u << 20)

int sandbox_warm_create(const struct sandbox_config *shape, struct sandbox **out,
			struct cdn_err *err)
{
	*out = NULL;
	_cleanup_(sandbox_freep) struct sandbox *sb = calloc(1, sizeof(*sb));
	if (!sb)
		return cdn_err_set(err, ENOMEM, "sandbox");
	sb->pid = -1;
	sb->pidfd = sb->sync_fd = -1;
	for (int i = 0; i < SB_FD_COUNT; i++)
		sb->fds[i] = -1;
	sb->start_ns = cdn_mono_ns();
	sb->warm = true;
	int r = sb_plan_ids(shape, &sb->ids, err);
	if (r < 0)
		return r;
	void *a = mmap(NULL, SB_ARENA_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		       -1, 0);
	if (a == MAP_FAILED)
		return cdn_err_set(err, errno, "sandbox: map the warm plan's arena");
	sb->arena = a;
	sb->arena->cap = SB_ARENA_SIZE;
	sb->arena->used = sizeof(*sb->arena);

	/* Every controller, the shape's limits for now (those its runs need
	 * must be there): the run's own are written at the start, before
	 * anything of the run's executes. */
	if ((r = sb_cgroup_create(&shape->limits, true, &sb->cg, err)) < 0) {
		if (!(shape->allow_degraded & SANDBOX_PROT_CGROUP))
			return cdn_err_wrap(err, "limits (pass --allow-degraded=cgroup to run without)");
		sb->st.prot.degraded |= SANDBOX_PROT_CGROUP;
		cdn_err_clear(err);
	}
	trace_step(sb, "cgroup");
	_cleanup_close_ int cgfd = sb_cgroup_clone_fd(sb->cg);
	if (sb->cg && sb_cgroup_version(sb->cg) == 2 && cgfd < 0)
		return cdn_err_set(err, errno, "cgroup v2: open for clone");
	if ((r = do_clone(sb, NULL, sb->arena, cgfd, err)) < 0)
		return r;
	/* The child has it; no other child of ours gets it (the janitor,
	 * forked below, would keep the run's plan, its secrets too). */
	(void)madvise(sb->arena, sb->arena->cap, MADV_DONTFORK);
	trace_step(sb, "clone");
	if ((r = map_ids(sb->pid, &sb->ids, err)) < 0)
		return r;
	const char *dirs[JANITOR_MAX_DIRS];
	size_t nd = sb_cgroup_dirs(sb->cg, dirs, JANITOR_MAX_DIRS);
	if ((r = janitor_register(sb->pid, dirs, nd, &sb->janitor_id)) < 0)
		return cdn_err_set(err, -r, "sandbox: start the janitor");
	if (cgfd < 0 && (r = sb_cgroup_attach(sb->cg, sb->pid, err)) < 0)
		return r;
	trace_step(sb, "warm");
	*out = cdn_steal(&sb);
	return 0;
}

/* GO, with the run's stdio: the caller's fd, or our own 0, 1 and 2. */
static int send_go(struct sandbox *sb, const struct sandbox_config *cfg, struct cdn_err *err)
{
	int fds[3] = { cfg->stdin_fd >= 0 ? cfg->stdin_fd : 0,
		       cfg->stdout_fd >= 0 ? cfg->stdout_fd : 1,
		       cfg->stderr_fd >= 0 ? cfg->stderr_fd : 2 };
	struct sb_msg m = { .type = SB_MSG_GO };
	struct iovec iov = { .iov_base = &m, .iov_len = sizeof(m) };
	union {
		char buf[CMSG_SPACE(sizeof(fds))];
		struct cmsghdr align;
	} u;
	memset(&u, 0, sizeof(u));
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(fds));
	memcpy(CMSG_DATA(c), fds, sizeof(fds));
	ssize_t n;
	do
		n = sendmsg(sb->sync_fd, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(m))
		return cdn_err_set(err, n < 0 ? errno : EPIPE, "sandbox: start the warm sandbox");
	return 0;
}

static int warm_start(struct sandbox *sb, const struct sandbox_config *cfg, bool *began,
		      struct cdn_err *err);

int sandbox_warm_start(struct sandbox *sb, const struct sandbox_config *cfg, struct cdn_err *err)
{
	bool began = false;
	return warm_start(sb, cfg, &began, err);
}

int sandbox_start(struct sandbox **warm, const struct sandbox_config *cfg, struct sandbox **out,
		  struct cdn_err *err)
{
	*out = NULL;
	struct sandbox *w = warm ? *warm : NULL;
	if (!w)
		return sandbox_spawn(cfg, out, err);
	*warm = NULL;
	bool began = false;
	int r = warm_start(w, cfg, &began, err);
	if (r == 0) {
		*out = w;
		return 0;
	}
	sandbox_free(w);
	if (began)
		return r;
	cdn_err_clear(err);
	return sandbox_spawn(cfg, out, err);
}

/* *began: GO was sent, the run's setup is under way (or done). */
static int warm_start(struct sandbox *sb, const struct sandbox_config *cfg, bool *began,
		      struct cdn_err *err)
{
	if (!sb->warm || sb->started)
		return cdn_err_msg(err, EINVAL, "sandbox: a warm sandbox is started once");
	sb->started = true;
	_cleanup_(sb_plan_freep) struct sb_plan *plan = NULL;
	int r = sb_plan_build(cfg, &plan, &sb->st.prot, err);
	if (r < 0)
		return r;
	if (plan->uid != sb->ids.uid || plan->gid != sb->ids.gid ||
	    plan->host_uid != sb->ids.host_uid || plan->host_gid != sb->ids.host_gid ||
	    plan->rootless != sb->ids.rootless)
		return cdn_err_msg(err, EINVAL,
				   "sandbox: the warm sandbox was made for other ids (%u:%u)",
				   (unsigned)sb->ids.uid, (unsigned)sb->ids.gid);
	if (!sb->cg && !(cfg->allow_degraded & SANDBOX_PROT_CGROUP))
		return cdn_err_msg(err, EOPNOTSUPP,
				   "limits: the warm sandbox has no cgroup (pass "
				   "--allow-degraded=cgroup to run without)");
	sb->start_ns = cdn_mono_ns();
	sb->n_phases = cfg->n_phases;
	sb->deadline_ns =
	    cfg->limits.timeout_ms ? sb->start_ns + cfg->limits.timeout_ms * 1000000ull : 0;
	sb->host_uid = plan->host_uid;
	sb->host_gid = plan->host_gid;
	sb->st.prot.userns = true;
	sb->st.prot.cgroup_version = sb_cgroup_version(sb->cg);
	if ((r = sb_cgroup_set_limits(sb->cg, &cfg->limits, err)) < 0)
		return r;
	give_stdio_pipes(cfg, plan);
	if (sb_plan_to_arena(plan, sb->arena) < 0)
		return cdn_err_msg(err, ENOSPC,
				   "sandbox: the run's plan is larger than a warm sandbox's %u bytes",
				   SB_ARENA_SIZE);
	*began = true;
	sb->st.prot.warm = true;
	if ((r = send_go(sb, cfg, err)) < 0)
		return r;
	/* The child makes its copy private before it reads it; ours goes. */
	munmap(sb->arena, sb->arena->cap);
	sb->arena = NULL;
	trace_step(sb, "warm go");
	(void)send_type(sb, SB_MSG_CGROUP, NULL);
	if ((r = await_ready(sb, err)) < 0)
		return r;
	trace_step(sb, "sandbox ready");
	return 0;
}

static int take(struct sandbox *sb, int slot)
{
	int fd = sb->fds[slot];
	sb->fds[slot] = -1;
	return fd;
}

void sandbox_take_egress_fds(struct sandbox *sb, int *proxy_tcp, int *dns_udp, int *dns_tcp)
{
	*proxy_tcp = take(sb, SB_FD_PROXY);
	*dns_udp = take(sb, SB_FD_DNS_UDP);
	*dns_tcp = take(sb, SB_FD_DNS_TCP);
}

int sandbox_take_workspace_fd(struct sandbox *sb)
{
	return take(sb, SB_FD_WORKSPACE);
}

int sandbox_take_steps_fd(struct sandbox *sb)
{
	return take(sb, SB_FD_STEPS);
}

int sandbox_take_mcp_fd(struct sandbox *sb)
{
	return take(sb, SB_FD_MCP);
}

const struct sandbox_protections *sandbox_protections(const struct sandbox *sb)
{
	return &sb->st.prot;
}

void sandbox_host_ids(const struct sandbox *sb, uid_t *uid, gid_t *gid)
{
	*uid = sb->host_uid;
	*gid = sb->host_gid;
}

int sandbox_event_fd(const struct sandbox *sb)
{
	return sb->pidfd;
}

int sandbox_msg_fd(const struct sandbox *sb)
{
	return sb->msgs_eof || sb->finished ? -1 : sb->sync_fd;
}

void sandbox_set_phase_cb(struct sandbox *sb, sandbox_phase_cb cb, void *ctx)
{
	sb->cb = cb;
	sb->cb_ctx = ctx;
}

pid_t sandbox_pid(const struct sandbox *sb)
{
	return sb->pid;
}

/* ------------------------------------------------------------ running */

static void handle_msg(struct sandbox *sb, const struct sb_msg *m)
{
	int ph = m->phase;
	switch (m->type) {
	case SB_MSG_PHASE_END:
		if (ph < 0 || ph >= SANDBOX_MAX_PHASES)
			return;
		sb->st.phases[ph] = (struct sandbox_phase_status){ .started = true,
								   .exit_code = m->a,
								   .signal = m->b };
		if (sb->cb)
			sb->cb(sb->cb_ctx, ph, &sb->st.phases[ph]);
		/* pid 1 waits for this before it starts the next phase */
		if (!m->a && !m->b && (size_t)ph + 1 < sb->n_phases && !sb->finished) {
			struct sb_msg go = { .type = SB_MSG_NEXT_PHASE, .phase = ph };
			(void)send(sb->sync_fd, &go, sizeof(go), MSG_NOSIGNAL | MSG_DONTWAIT);
		}
		break;
	case SB_MSG_EXEC_FAILED:
		if (ph < 0 || ph >= SANDBOX_MAX_PHASES)
			return;
		sb->st.exec_errno = m->a > 0 ? m->a : ENOEXEC;
		sb->st.failed_phase = ph;
		cdn_err_set(&sb->late_err, sb->st.exec_errno, "exec %.*s", (int)sizeof(m->text),
			    m->text);
		break;
	case SB_MSG_SETUP_FAILED:
		sb->setup_failed = true;
		cdn_err_set(&sb->late_err, m->a, "sandbox setup: %.*s", (int)sizeof(m->text),
			    m->text);
		break;
	default:
		break;
	}
}

static void drain_msgs(struct sandbox *sb)
{
	struct sb_msg m;
	for (;;) {
		ssize_t n = recv(sb->sync_fd, &m, sizeof(m), MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			sb->msgs_eof = true;
		if (n != (ssize_t)sizeof(m))
			return;
		m.text[sizeof(m.text) - 1] = '\0';
		handle_msg(sb, &m);
	}
}

static void finish(struct sandbox *sb, const siginfo_t *si, const struct rusage *ru)
{
	struct sandbox_status *st = &sb->st;
	drain_msgs(sb);
	st->wall_ms = (cdn_mono_ns() - sb->start_ns) / 1000000ull;
	uint64_t cpu_ns = ((uint64_t)ru->ru_utime.tv_sec + (uint64_t)ru->ru_stime.tv_sec) *
				  1000000000ull +
			  ((uint64_t)ru->ru_utime.tv_usec + (uint64_t)ru->ru_stime.tv_usec) * 1000ull;
	uint64_t peak = (uint64_t)ru->ru_maxrss * 1024ull;
	sb_cgroup_stats(sb->cg, &peak, &cpu_ns, &st->oom_killed);
	st->cpu_ms = cpu_ns / 1000000ull;
	st->mem_peak_bytes = peak;
	st->timed_out = sb->timed_out;

	/* The last phase that reported is the one that decides. */
	const struct sandbox_phase_status *last = NULL;
	for (int i = SANDBOX_MAX_PHASES - 1; i >= 0 && !last; i--)
		if (st->phases[i].started)
			last = &st->phases[i];

	if (last && last->signal)
		st->signal = last->signal;
	if (sb->setup_failed)
		st->exit_code = 125;
	else if (st->timed_out)
		st->exit_code = 124;
	else if (st->oom_killed)
		st->exit_code = 137;
	else if (st->exec_errno)
		st->exit_code = st->exec_errno == ENOENT ? 127 : 126;
	else if (last && last->signal)
		st->exit_code = 128 + last->signal;
	else if (last)
		st->exit_code = last->exit_code;
	else if (si->si_code == CLD_KILLED || si->si_code == CLD_DUMPED) {
		/* pid 1 itself was killed before a phase could report. */
		st->signal = si->si_status;
		st->exit_code = 128 + si->si_status;
	} else {
		st->exit_code = si->si_status ? si->si_status : 125;
		if (!sb->late_err.code)
			cdn_err_msg(&sb->late_err, EPROTO, "sandbox ended without a status");
		sb->setup_failed = true;
	}
	sb->finished = true;
	/* The namespace is gone with pid 1; make sure of the cgroup too. */
	sb_cgroup_kill(sb->cg);
}

int sandbox_poll(struct sandbox *sb, struct sandbox_status *st, struct cdn_err *err)
{
	if (!sb->finished) {
		drain_msgs(sb);
		siginfo_t si;
		struct rusage ru;
		memset(&si, 0, sizeof(si));
		memset(&ru, 0, sizeof(ru));
		long r = syscall(SYS_waitid, P_PIDFD, sb->pidfd, &si, WEXITED | WNOHANG, &ru);
		if (r < 0 && errno != EINTR)
			return cdn_err_set(err, errno, "sandbox: wait");
		if (r < 0 || si.si_pid == 0) {
			if (sb->deadline_ns && cdn_mono_ns() >= sb->deadline_ns)
				sandbox_kill(sb, true);
			return 0;
		}
		sb->pid = -1;
		trace_step(sb, "exited");
		finish(sb, &si, &ru);
	}
	*st = sb->st;
	if (sb->setup_failed) {
		if (err)
			*err = sb->late_err;
		return -(sb->late_err.code ? sb->late_err.code : EINVAL);
	}
	if (st->exec_errno && err)
		*err = sb->late_err;
	return 1;
}

int sandbox_timeout_remaining_ms(const struct sandbox *sb)
{
	if (!sb->deadline_ns || sb->finished)
		return -1;
	uint64_t now = cdn_mono_ns();
	if (now >= sb->deadline_ns)
		return 0;
	uint64_t ms = (sb->deadline_ns - now + 999999) / 1000000;
	return ms > 0x7fffffff ? 0x7fffffff : (int)ms;
}

int sandbox_signal(struct sandbox *sb, int sig)
{
	if (sb->finished || sb->pidfd < 0)
		return -ESRCH;
	if (syscall(SYS_pidfd_send_signal, sb->pidfd, sig, NULL, 0) < 0)
		return -errno;
	return 0;
}

void sandbox_kill(struct sandbox *sb, bool timed_out)
{
	if (sb->finished || sb->pidfd < 0)
		return;
	if (timed_out)
		sb->timed_out = true;
	/* SIGKILL to pid 1 of a pid namespace kills every process in it. */
	(void)syscall(SYS_pidfd_send_signal, sb->pidfd, SIGKILL, NULL, 0);
	sb_cgroup_kill(sb->cg);
}

#define RELAY_MAX 4

/* Moves what is available; returns false at EOF or on a write error. */
static bool relay_pump(struct sandbox_relay *rl)
{
	for (;;) {
		ssize_t n = splice(rl->from, NULL, rl->to, NULL, 1 << 16, SPLICE_F_NONBLOCK);
		if (n > 0)
			continue;
		if (n < 0 && (errno == EINTR))
			continue;
		if (n < 0 && errno == EAGAIN)
			return true;
		if (n < 0 && errno == EINVAL) {
			/* `to` does not support splice (O_APPEND file): copy. */
			char buf[16384];
			ssize_t r = read(rl->from, buf, sizeof(buf));
			if (r < 0 && errno == EAGAIN)
				return true;
			if (r <= 0 || cdn_write_all(rl->to, buf, (size_t)r) < 0)
				return false;
			continue;
		}
		return false; /* EOF or error: this relay is done */
	}
}

int sandbox_wait_relay(struct sandbox *sb, struct sandbox_relay *relays, size_t n_relays,
		       struct sandbox_status *st, struct cdn_err *err)
{
	static const int fwd[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH };
	sigset_t set, old;
	sigemptyset(&set);
	for (size_t i = 0; i < CDN_ARRAY_SIZE(fwd); i++)
		sigaddset(&set, fwd[i]);
	sigprocmask(SIG_BLOCK, &set, &old);
	int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	bool open_relay[RELAY_MAX] = { false };
	if (n_relays > RELAY_MAX)
		n_relays = RELAY_MAX;
	for (size_t i = 0; i < n_relays; i++) {
		open_relay[i] = true;
		fcntl(relays[i].from, F_SETFL, fcntl(relays[i].from, F_GETFL) | O_NONBLOCK);
	}

	int r;
	for (;;) {
		r = sandbox_poll(sb, st, err);
		if (r != 0)
			break;
		struct pollfd p[3 + RELAY_MAX];
		nfds_t np = 0;
		p[np++] = (struct pollfd){ .fd = sb->pidfd, .events = POLLIN };
		p[np++] = (struct pollfd){ .fd = sfd, .events = POLLIN };
		/* phase ends: pid 1 waits for their answer (handle_msg) */
		p[np++] = (struct pollfd){ .fd = sandbox_msg_fd(sb), .events = POLLIN };
		for (size_t i = 0; i < n_relays; i++)
			p[np++] = (struct pollfd){ .fd = open_relay[i] ? relays[i].from : -1,
						   .events = POLLIN };
		int pr = poll(p, np, sandbox_timeout_remaining_ms(sb));
		if (pr < 0 && errno != EINTR) {
			r = cdn_err_set(err, errno, "sandbox: poll");
			break;
		}
		if (pr <= 0)
			continue;
		if (sfd >= 0 && (p[1].revents & POLLIN)) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
				(void)sandbox_signal(sb, (int)si.ssi_signo);
		}
		for (size_t i = 0; i < n_relays; i++)
			if (open_relay[i] && p[3 + i].revents)
				open_relay[i] = relay_pump(&relays[i]);
	}
	/* The sandbox is gone, and with it every write end: drain to EOF. */
	for (size_t i = 0; i < n_relays; i++) {
		if (!open_relay[i])
			continue;
		fcntl(relays[i].from, F_SETFL, fcntl(relays[i].from, F_GETFL) & ~O_NONBLOCK);
		while (relay_pump(&relays[i])) {
			struct pollfd q = { .fd = relays[i].from, .events = POLLIN };
			if (poll(&q, 1, 1000) <= 0)
				break;
		}
	}
	if (sfd >= 0)
		close(sfd);
	sigprocmask(SIG_SETMASK, &old, NULL);
	return r < 0 ? r : 0;
}

int sandbox_wait(struct sandbox *sb, struct sandbox_status *st, struct cdn_err *err)
{
	return sandbox_wait_relay(sb, NULL, 0, st, err);
}

void sandbox_free(struct sandbox *sb)
{
	if (!sb)
		return;
	if (sb->pidfd >= 0 && !sb->finished) {
		(void)syscall(SYS_pidfd_send_signal, sb->pidfd, SIGKILL, NULL, 0);
		siginfo_t si;
		while (waitid(P_PIDFD, (id_t)sb->pidfd, &si, WEXITED) < 0 && errno == EINTR)
			;
	}
	for (int i = 0; i < SB_FD_COUNT; i++)
		if (sb->fds[i] >= 0)
			close(sb->fds[i]);
	if (sb->sync_fd >= 0)
		close(sb->sync_fd);
	if (sb->pidfd >= 0)
		close(sb->pidfd);
	sb_cgroup_destroy(sb->cg);
	janitor_unregister(sb->janitor_id);
	if (sb->arena)
		munmap(sb->arena, sb->arena->cap);
	trace_step(sb, "torn down");
	free(sb);
}
