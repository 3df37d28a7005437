/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sandbox child: pid 1 of the new pid namespace.
 *
 * One setup sequence, read top to bottom:
 *
 *   wait for the supervisor (id maps, cgroup) -> cgroup namespace ->
 *   build the root and pivot_root -> hostname -> loopback and egress
 *   sockets -> rlimits -> drop every privilege (caps, securebits,
 *   no_new_privs) -> report ready -> reap.
 *
 * For each phase pid 1 forks the payload, which calls setsid, closes every
 * fd but stdio, applies Landlock and finally seccomp, and executes the
 * command. pid 1 forwards signals, reaps orphans and reports each phase's
 * end. When the last phase ends pid 1 exits, and the kernel kills whatever
 * is left in the namespace.
 *
 * One allocation: the phases' argv is copied before cordon's own argv is
 * wiped (it may live there). Nothing else here allocates. Errors, that one
 * included, are reported to the supervisor as a message naming the step.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <linux/close_range.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox/internal.h"

static void send_msg(int fd, const struct sb_msg *m)
{
	ssize_t r;
	do
		r = send(fd, m, sizeof(*m), MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
}

static __attribute__((noreturn)) void die_setup(int sync_fd, const struct sb_msg *fail)
{
	send_msg(sync_fd, fail);
	_exit(125);
}

static int loopback_up(struct sb_msg *fail)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return sb_fail(fail, errno, "loopback: socket");
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "lo");
	int r = 0;
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		r = sb_fail(fail, errno, "loopback: get flags");
	else {
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
			r = sb_fail(fail, errno, "loopback: bring up");
	}
	close(s);
	return r;
}

static int listen_on(int type, uint16_t port, struct sb_msg *fail)
{
	int s = socket(AF_INET, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s < 0)
		return sb_fail(fail, errno, "egress socket");
	int one = 1;
	(void)setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int r = sb_fail(fail, errno, "egress bind 127.0.0.1:%u", port);
		close(s);
		return r;
	}
	if (type == SOCK_STREAM && listen(s, 512) < 0) {
		int r = sb_fail(fail, errno, "egress listen 127.0.0.1:%u", port);
		close(s);
		return r;
	}
	return s;
}

/* Send READY with the fds the supervisor takes over (SB_FD_* order; msg.a
 * says which are there). */
static int send_ready(int sync_fd, const int *fds, struct sb_msg *fail)
{
	struct sb_msg m = { .type = SB_MSG_READY };
	int present[SB_FD_COUNT];
	size_t n = 0;
	for (int i = 0; i < SB_FD_COUNT; i++)
		if (fds[i] >= 0) {
			m.a |= 1 << i;
			present[n++] = fds[i];
		}
	struct iovec iov = { .iov_base = &m, .iov_len = sizeof(m) };
	union {
		char buf[CMSG_SPACE(sizeof(int) * SB_FD_COUNT)];
		struct cmsghdr align;
	} u;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (n > 0) {
		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * n);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * n);
		memcpy(CMSG_DATA(c), present, sizeof(int) * n);
	}
	if (sendmsg(sync_fd, &mh, MSG_NOSIGNAL) < 0)
		return sb_fail(fail, errno, "report ready");
	return 0;
}

static int set_limit(int res, uint64_t v)
{
	struct rlimit rl = { .rlim_cur = v, .rlim_max = v };
	return setrlimit(res, &rl);
}

/* execvpe() searches the caller's PATH, not the sandbox's: search here. */
static void exec_search(char *const argv[], char *const envp[], const char *path_env)
{
	const char *file = argv[0];
	if (!file || !*file) {
		errno = ENOENT;
		return;
	}
	if (strchr(file, '/')) {
		execve(file, argv, envp);
		return;
	}
	char buf[SANDBOX_PATH_MAX];
	bool eacces = false;
	const char *p = path_env;
	while (p && *p) {
		const char *e = strchrnul(p, ':');
		size_t dl = (size_t)(e - p);
		size_t fl = strlen(file);
		if (dl > 0 && dl + 1 + fl < sizeof(buf)) {
			memcpy(buf, p, dl);
			buf[dl] = '/';
			memcpy(buf + dl + 1, file, fl + 1);
			execve(buf, argv, envp);
			if (errno == EACCES)
				eacces = true;
			else if (errno != ENOENT && errno != ENOTDIR)
				return;
		}
		p = *e ? e + 1 : e;
	}
	errno = eacces ? EACCES : ENOENT;
}

/* Tells the supervisor why the payload cannot start, and ends (as
 * bubblewrap's die(): the child before execve may only die). */
static __attribute__((noreturn)) void die_report(int err_fd, const struct sb_msg *fail)
{
	(void)!write(err_fd, fail, sizeof(*fail));
	_exit(125);
}

/* The payload: final hardening, then execve. Never returns. */
static __attribute__((noreturn)) void payload(const struct sb_plan *plan, int phase, int err_fd)
{
	struct sb_msg fail = { 0 };
	sigset_t none;
	sigemptyset(&none);
	for (int sig = 1; sig < NSIG; sig++)
		(void)signal(sig, SIG_DFL);
	sigprocmask(SIG_SETMASK, &none, NULL);

	/* A new session: no controlling terminal, no job-control signals from
	 * the caller's terminal. */
	if (setsid() < 0) {
		sb_fail(&fail, errno, "setsid");
		die_report(err_fd, &fail);
	}
	for (int i = 0; i < 3; i++) {
		if (plan->stdio[i] >= 0 && plan->stdio[i] != i && dup2(plan->stdio[i], i) < 0) {
			sb_fail(&fail, errno, "stdio %d", i);
			die_report(err_fd, &fail);
		}
	}
	/* Every inherited fd but stdio is gone at execve. */
	if (syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC) < 0) {
		sb_fail(&fail, errno, "close fds");
		die_report(err_fd, &fail);
	}
	if (sb_child_apply_landlock(plan, &fail) < 0)
		die_report(err_fd, &fail);
	/* Last step before execve: the seccomp allowlist. */
	if (sb_child_apply_seccomp(plan) < 0) {
		sb_fail(&fail, errno, "seccomp: load filter");
		die_report(err_fd, &fail);
	}
	char *const *argv = plan->phases[phase];
	/* This phase's own entry goes in the slot after the shared ones (the
	 * plan is this process's copy). */
	char **envp = (char **)plan->envp;
	if (plan->phase_env[phase] && plan->n_envp + 1 < sizeof(plan->envp) / sizeof(plan->envp[0])) {
		envp[plan->n_envp] = plan->phase_env[phase];
		envp[plan->n_envp + 1] = NULL;
	}
	exec_search(argv, envp, plan->path_env);
	int e = errno;
	memset(&fail, 0, sizeof(fail));
	fail.type = SB_MSG_EXEC_FAILED;
	fail.phase = phase;
	fail.a = e;
	snprintf(fail.text, sizeof(fail.text), "%s", argv[0] ? argv[0] : "");
	(void)!write(err_fd, &fail, sizeof(fail));
	_exit(e == ENOENT ? 127 : 126);
}

/* Run one phase; returns 0 when it exited 0. */
static int run_phase(const struct sb_plan *plan, int phase, int sync_fd, int sfd)
{
	int errp[2];
	if (pipe2(errp, O_CLOEXEC) < 0) {
		struct sb_msg fail;
		sb_fail(&fail, errno, "exec pipe");
		send_msg(sync_fd, &fail);
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		struct sb_msg fail;
		sb_fail(&fail, errno, "fork payload");
		send_msg(sync_fd, &fail);
		close(errp[0]);
		close(errp[1]);
		return -1;
	}
	if (pid == 0) {
		close(errp[0]);
		close(sync_fd);
		close(sfd);
		payload(plan, phase, errp[1]);
	}
	close(errp[1]);

	/* Either the exec succeeded (EOF) or the payload reports why not. */
	struct sb_msg m;
	ssize_t n;
	do
		n = read(errp[0], &m, sizeof(m));
	while (n < 0 && errno == EINTR);
	close(errp[0]);
	bool exec_failed = n == (ssize_t)sizeof(m);
	if (exec_failed)
		send_msg(sync_fd, &m);

	struct sb_msg end = { .type = SB_MSG_PHASE_END, .phase = phase };
	for (;;) {
		struct signalfd_siginfo si;
		n = read(sfd, &si, sizeof(si));
		if (n < 0 && errno == EINTR)
			continue;
		if (n != (ssize_t)sizeof(si))
			_exit(125);
		if (si.ssi_signo != SIGCHLD) {
			/*
			 * Forward only what the supervisor sent. It lives outside
			 * our pid namespace, so the kernel reports its pid as 0;
			 * a sender inside the sandbox has a pid here. Landlock's
			 * signal scope (ABI 6) refuses the sandbox's signals to us
			 * outright; on older kernels (Debian 12's 6.1 has ABI 2)
			 * the payload shares our uid and may signal us. It gains
			 * little (it could signal the payload itself), but pid 1
			 * takes orders only from the supervisor, so a signal from
			 * inside changes nothing on any kernel.
			 */
			if (si.ssi_pid == 0)
				(void)kill(pid, (int)si.ssi_signo);
			continue;
		}
		int status;
		pid_t w;
		bool done = false;
		while ((w = waitpid(-1, &status, WNOHANG)) > 0) {
			if (w != pid)
				continue; /* an orphan we inherited */
			if (WIFEXITED(status))
				end.a = WEXITSTATUS(status);
			else if (WIFSIGNALED(status))
				end.b = WTERMSIG(status);
			done = true;
		}
		if (done)
			break;
	}
	if (exec_failed)
		return -1;
	send_msg(sync_fd, &end);
	if (end.a || end.b)
		return -1;
	/*
	 * Before the next phase starts, the supervisor has handled this one's
	 * end (its callback ran: a run drains the steps the phase wrote and
	 * records that it finished), so what the record says came from one
	 * phase cannot have come from the next. No answer: end here.
	 */
	if ((size_t)phase + 1 < plan->n_phases) {
		struct sb_msg go;
		do
			n = recv(sync_fd, &go, sizeof(go), 0);
		while (n < 0 && errno == EINTR);
		if (n != (ssize_t)sizeof(go) || go.type != SB_MSG_NEXT_PHASE || go.phase != phase)
			return -1;
	}
	return 0;
}

/* pid 1 keeps stdio, its channel and the caller's stdio fds; every other
 * fd of the supervisor (sockets of a daemon, its janitor channel, ...) is
 * closed so the sandbox cannot hold them open. */
static void close_all_except(const int *keep, size_t n)
{
	int sorted[8];
	size_t m = 0;
	for (size_t i = 0; i < n && m < 8; i++)
		if (keep[i] > 2)
			sorted[m++] = keep[i];
	for (size_t i = 1; i < m; i++)
		for (size_t j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) {
			int t = sorted[j];
			sorted[j] = sorted[j - 1];
			sorted[j - 1] = t;
		}
	unsigned from = 3;
	for (size_t i = 0; i < m; i++) {
		if ((unsigned)sorted[i] > from)
			syscall(SYS_close_range, from, (unsigned)sorted[i] - 1, 0u);
		if ((unsigned)sorted[i] + 1 > from)
			from = (unsigned)sorted[i] + 1;
	}
	syscall(SYS_close_range, from, ~0u, 0u);
}

/* pid 1 is a copy of cordon: its argv (the host's paths, options) would be
 * readable in the sandbox at /proc/1/cmdline. Wipe it in this copy. */
static void wipe_cmdline(void)
{
	char buf[1024];
	int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	/* Fields after the command name, which may hold spaces: from the last ')'. */
	char *p = strrchr(buf, ')');
	if (!p)
		return;
	unsigned long long start = 0, end = 0;
	int field = 2;
	for (char *tok = strtok(p + 1, " "); tok; tok = strtok(NULL, " ")) {
		field++;
		if (field == 48)
			start = strtoull(tok, NULL, 10);
		else if (field == 49)
			end = strtoull(tok, NULL, 10);
	}
	if (start && end > start && end - start < (1u << 20))
		memset((void *)(uintptr_t)start, 0, (size_t)(end - start));
}

static int child_setup(struct sb_plan *plan, int sync_fd);

int sb_child_main(struct sb_plan *plan, int sync_fd)
{
	struct sb_msg m;

	const int keep[] = { sync_fd, plan->stdio[0], plan->stdio[1], plan->stdio[2] };
	close_all_except(keep, 4);
	/* Our own session: the caller's terminal signals reach the sandbox
	 * only through the supervisor, once. */
	(void)setsid();
	/* Die with the supervisor. The GO message below doubles as the check
	 * that it did not die before this took effect. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		_exit(125);
	ssize_t n;
	do
		n = recv(sync_fd, &m, sizeof(m), 0);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(m) || m.type != SB_MSG_GO)
		_exit(125);
	return child_setup(plan, sync_fd);
}

/*
 * A warm sandbox's pid 1: made before its run was known, it waits here
 * with nothing but its channel. GO brings the run's stdio (three fds);
 * the plan is in the arena, which the supervisor filled after the clone
 * (the mapping is shared). The arena is made private first, so nothing
 * outside can change the plan from here on, and the setup is then the
 * cold one's, step for step.
 */
int sb_child_warm_main(struct sb_arena *arena, int sync_fd)
{
	const int keep[] = { sync_fd };
	close_all_except(keep, 1);
	(void)setsid();
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		_exit(125);

	struct sb_msg m;
	memset(&m, 0, sizeof(m));
	struct iovec iov = { .iov_base = &m, .iov_len = sizeof(m) };
	union {
		char buf[CMSG_SPACE(sizeof(int) * 3)];
		struct cmsghdr align;
	} u;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	ssize_t n;
	/* Not close-on-exec: like a cold sandbox's inherited stdio, they
	 * become the payload's 0, 1 and 2, and every other fd is closed. */
	do
		n = recvmsg(sync_fd, &mh, 0);
	while (n < 0 && errno == EINTR);
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	if (n != (ssize_t)sizeof(m) || m.type != SB_MSG_GO || (mh.msg_flags & MSG_CTRUNC) || !c ||
	    c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
	    c->cmsg_len != CMSG_LEN(sizeof(int) * 3))
		_exit(125);
	int stdio[3];
	memcpy(stdio, CMSG_DATA(c), sizeof(stdio));

	/* Private from here on: copy out, map private pages at the same
	 * address (the plan's pointers stay valid), copy back. */
	if (!arena)
		_exit(125);
	size_t cap = arena->cap, used = arena->used;
	if (used < sizeof(*arena) || used > cap)
		_exit(125);
	void *tmp = mmap(NULL, used, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (tmp == MAP_FAILED)
		_exit(125);
	memcpy(tmp, arena, used);
	/* The shared pages, emptied: whatever else may map them sees no
	 * plan (the supervisor unmaps its view after GO). */
	explicit_bzero(arena, used);
	if (mmap(arena, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1,
		 0) != (void *)arena)
		_exit(125);
	memcpy(arena, tmp, used);
	munmap(tmp, used);
	struct sb_plan *plan = arena->plan;
	if (!plan)
		_exit(125);
	for (int i = 0; i < 3; i++)
		plan->stdio[i] = stdio[i];
	return child_setup(plan, sync_fd);
}

static int child_setup(struct sb_plan *plan, int sync_fd)
{
	struct sb_msg fail = { 0 };
	struct sb_msg m;
	ssize_t n;

	umask(022);
	/* Bind sources are opened with the caller's own file access, before
	 * anything else changes. */
	if (sb_child_open_sources(plan, &fail) < 0)
		die_setup(sync_fd, &fail);
	/* Become the sandbox user now: files of the new root must be created
	 * by an id that exists in the namespace. Our mapping has no uid 0, so
	 * this keeps the namespace capabilities needed to finish the setup;
	 * sb_child_drop_privileges() removes them below. */
	if (setresgid(plan->gid, plan->gid, plan->gid) < 0 ||
	    setresuid(plan->uid, plan->uid, plan->uid) < 0)
		sb_fail(&fail, errno, "switch to uid %u", (unsigned)plan->uid),
			die_setup(sync_fd, &fail);
	if (sb_child_build_root(plan, &fail) < 0)
		die_setup(sync_fd, &fail);
	const char *host = plan->hostname ? plan->hostname : "cordon";
	if (sethostname(host, strlen(host)) < 0)
		sb_fail(&fail, errno, "sethostname"), die_setup(sync_fd, &fail);
	if (loopback_up(&fail) < 0)
		die_setup(sync_fd, &fail);

	int handed[SB_FD_COUNT];
	for (int i = 0; i < SB_FD_COUNT; i++)
		handed[i] = -1;
	if (plan->net == SANDBOX_NET_PROXY) {
		/* Created here, inside the namespace, while we may still bind
		 * port 53; handed to the supervisor and closed below, so the
		 * sandbox itself never holds them. */
		handed[SB_FD_PROXY] = listen_on(SOCK_STREAM, SANDBOX_PROXY_PORT, &fail);
		if (handed[SB_FD_PROXY] >= 0)
			handed[SB_FD_DNS_UDP] = listen_on(SOCK_DGRAM, SANDBOX_DNS_PORT, &fail);
		if (handed[SB_FD_DNS_UDP] >= 0)
			handed[SB_FD_DNS_TCP] = listen_on(SOCK_STREAM, SANDBOX_DNS_PORT, &fail);
		if (handed[SB_FD_DNS_TCP] < 0)
			die_setup(sync_fd, &fail);
	}
	if (plan->mcp_channel &&
	    (handed[SB_FD_MCP] = listen_on(SOCK_STREAM, SANDBOX_MCP_PORT, &fail)) < 0)
		die_setup(sync_fd, &fail);
	if (plan->keep_workspace &&
	    (handed[SB_FD_WORKSPACE] = open("/workspace", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
		sb_fail(&fail, errno, "open /workspace"), die_setup(sync_fd, &fail);
	/* Read and write: opening never blocks, and the pipe never reports
	 * EOF while the sandbox's writers come and go. */
	if (plan->steps_channel &&
	    (handed[SB_FD_STEPS] = open(SANDBOX_STEPS_PATH, O_RDWR | O_NONBLOCK | O_CLOEXEC)) < 0)
		sb_fail(&fail, errno, "open %s", SANDBOX_STEPS_PATH), die_setup(sync_fd, &fail);

	/* The supervisor joins us to the cgroup while we build the root. The
	 * cgroup namespace must be created afterwards so that the sandbox's
	 * cgroup is its root. */
	do
		n = recv(sync_fd, &m, sizeof(m), 0);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(m) || m.type != SB_MSG_CGROUP)
		_exit(125);
	if (unshare(CLONE_NEWCGROUP) < 0)
		sb_fail(&fail, errno, "cgroup namespace"), die_setup(sync_fd, &fail);

	if (chdir(plan->cwd) < 0)
		sb_fail(&fail, errno, "chdir %s", plan->cwd), die_setup(sync_fd, &fail);
	if (set_limit(RLIMIT_CORE, 0) < 0 ||
	    (plan->nofile && set_limit(RLIMIT_NOFILE, plan->nofile) < 0) ||
	    (plan->fsize && set_limit(RLIMIT_FSIZE, plan->fsize) < 0))
		sb_fail(&fail, errno, "setrlimit"), die_setup(sync_fd, &fail);

	if (sb_child_drop_privileges(plan, &fail) < 0)
		die_setup(sync_fd, &fail);
	/* Changing credentials cleared the parent-death signal: arm it again
	 * and make sure the supervisor is still there. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		sb_fail(&fail, errno, "parent death signal"), die_setup(sync_fd, &fail);
	struct pollfd pfd = { .fd = sync_fd, .events = POLLIN };
	if (poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLHUP | POLLERR)))
		_exit(125);
	/* Nobody in the sandbox may ptrace or read the memory of pid 1. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		sb_fail(&fail, errno, "set non-dumpable"), die_setup(sync_fd, &fail);

	if (send_ready(sync_fd, handed, &fail) < 0)
		die_setup(sync_fd, &fail);
	for (int i = 0; i < SB_FD_COUNT; i++)
		if (handed[i] >= 0)
			close(handed[i]);

	sigset_t set;
	sigemptyset(&set);
	static const int sigs[] = { SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2,
				    SIGWINCH, SIGCONT };
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaddset(&set, sigs[i]);
	sigprocmask(SIG_BLOCK, &set, NULL);
	int sfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (sfd < 0)
		sb_fail(&fail, errno, "signalfd"), die_setup(sync_fd, &fail);

	/* The phases' argv may live in cordon's own argv: copy, then wipe. */
	for (size_t i = 0; i < plan->n_phases; i++) {
		size_t argc = 0;
		while (plan->phases[i][argc])
			argc++;
		char **copy = calloc(argc + 1, sizeof(char *));
		for (size_t k = 0; copy && k < argc; k++)
			if (!(copy[k] = strdup(plan->phases[i][k])))
				copy = NULL;
		if (!copy)
			sb_fail(&fail, ENOMEM, "copy the command"), die_setup(sync_fd, &fail);
		plan->phases[i] = copy;
	}
	wipe_cmdline();

	for (size_t i = 0; i < plan->n_phases; i++)
		if (run_phase(plan, (int)i, sync_fd, sfd) < 0)
			break;
	_exit(0);
}
