/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The janitor: one small process per cordon process that cleans up after
 * sandboxes whose supervisor died without tearing them down (SIGKILL, a
 * crash, the OOM killer).
 *
 * The sandbox's pid 1 already dies with its supervisor (PR_SET_PDEATHSIG),
 * which kills the whole pid namespace. What nobody would remove is the
 * sandbox's cgroup directory. The janitor is told about every live sandbox
 * (pid 1 and its cgroup directories) over a socket; when that socket hits
 * EOF, the supervisor is gone, and the janitor kills what is registered,
 * waits for it to exit and removes the cgroups. A normal teardown
 * unregisters the sandbox first, so the janitor has nothing to do.
 *
 * It is forked once, before the first sandbox, in its own session (signals
 * for the terminal's process group do not reach it), holds no fd but its
 * socket, and allocates nothing after the fork.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sandbox/internal.h"
#include "base/file.h"

#define JANITOR_MAX 1024 /* live sandboxes per cordon process */

enum { J_ADD = 1, J_DEL = 2 };

struct j_msg {
	uint32_t op;
	uint32_t id;
	int32_t pid;
	char dirs[JANITOR_MAX_DIRS][JANITOR_DIR_MAX];
};

struct j_entry {
	bool used;
	uint32_t id;
	int pidfd;
	char dirs[JANITOR_MAX_DIRS][JANITOR_DIR_MAX];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int janitor_fd = -1;
static pid_t janitor_pid;
static uint32_t next_id;

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
	nanosleep(&ts, NULL);
}

static void kill_cgroup(const char *dir)
{
	char path[JANITOR_DIR_MAX + 32];
	snprintf(path, sizeof(path), "%s/cgroup.kill", dir);
	(void)cdn_write_once_at(AT_FDCWD, path, "1");
	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	char buf[4096];
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	for (char *p = buf; *p;) {
		char *end;
		long pid = strtol(p, &end, 10);
		if (end == p)
			break;
		if (pid > 0)
			(void)kill((pid_t)pid, SIGKILL);
		p = end;
		while (*p == '\n')
			p++;
	}
}

static void clean_entry(struct j_entry *e)
{
	if (e->pidfd >= 0) {
		(void)syscall(SYS_pidfd_send_signal, e->pidfd, SIGKILL, NULL, 0);
		struct pollfd p = { .fd = e->pidfd, .events = POLLIN };
		(void)poll(&p, 1, 5000);
		close(e->pidfd);
	}
	for (int i = 0; i < JANITOR_MAX_DIRS; i++) {
		if (!e->dirs[i][0])
			continue;
		for (int t = 0; t < 500; t++) {
			if (rmdir(e->dirs[i]) == 0 || errno == ENOENT)
				break;
			if (errno != EBUSY)
				break;
			kill_cgroup(e->dirs[i]);
			sleep_ms(2);
		}
	}
	e->used = false;
}

static __attribute__((noreturn)) void janitor_main(int fd)
{
	static struct j_entry table[JANITOR_MAX];
	struct j_msg m;

	for (;;) {
		ssize_t n = recv(fd, &m, sizeof(m), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* the supervisor is gone */
		if ((size_t)n != sizeof(m))
			continue;
		if (m.op == J_ADD) {
			for (int i = 0; i < JANITOR_MAX; i++) {
				if (table[i].used)
					continue;
				table[i].used = true;
				table[i].id = m.id;
				table[i].pidfd = m.pid > 0 ? (int)syscall(SYS_pidfd_open, m.pid, 0) : -1;
				memcpy(table[i].dirs, m.dirs, sizeof(m.dirs));
				break;
			}
		} else if (m.op == J_DEL) {
			for (int i = 0; i < JANITOR_MAX; i++) {
				if (table[i].used && table[i].id == m.id) {
					if (table[i].pidfd >= 0)
						close(table[i].pidfd);
					table[i].used = false;
				}
			}
		}
	}
	for (int i = 0; i < JANITOR_MAX; i++)
		if (table[i].used)
			clean_entry(&table[i]);
	_exit(0);
}

static void reset_after_fork(void)
{
	/* A forked child (the sandbox itself, or a helper) must not talk to
	 * the parent's janitor; it would start its own. */
	janitor_fd = -1;
	janitor_pid = 0;
}

static int start_locked(void)
{
	static bool atfork;
	if (janitor_fd >= 0)
		return 0;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(sv[0]);
		close(sv[1]);
		return -e;
	}
	if (pid == 0) {
		sigset_t all;
		sigfillset(&all);
		sigprocmask(SIG_BLOCK, &all, NULL);
		(void)setsid();
		int keep = sv[1];
		if (keep != 3) {
			if (dup2(keep, 3) < 0)
				_exit(1);
			keep = 3;
		}
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
			dup2(null, 2);
		}
		syscall(SYS_close_range, 4u, ~0u, 0u);
		janitor_main(keep);
	}
	close(sv[1]);
	janitor_fd = sv[0];
	janitor_pid = pid;
	if (!atfork) {
		pthread_atfork(NULL, NULL, reset_after_fork);
		atfork = true;
	}
	return 0;
}

int janitor_register(pid_t pid, const char *const *dirs, size_t n_dirs, uint32_t *id)
{
	struct j_msg m;
	memset(&m, 0, sizeof(m));
	m.op = J_ADD;
	m.pid = pid;
	for (size_t i = 0; i < n_dirs && i < JANITOR_MAX_DIRS; i++) {
		if (strlen(dirs[i]) >= JANITOR_DIR_MAX)
			return -ENAMETOOLONG;
		snprintf(m.dirs[i], sizeof(m.dirs[i]), "%s", dirs[i]);
	}
	pthread_mutex_lock(&lock);
	int r = start_locked();
	if (r == 0) {
		m.id = ++next_id;
		if (send(janitor_fd, &m, sizeof(m), MSG_NOSIGNAL) < 0)
			r = -errno;
		else
			*id = m.id;
	}
	pthread_mutex_unlock(&lock);
	return r;
}

void janitor_unregister(uint32_t id)
{
	if (!id)
		return;
	struct j_msg m;
	memset(&m, 0, sizeof(m));
	m.op = J_DEL;
	m.id = id;
	pthread_mutex_lock(&lock);
	if (janitor_fd >= 0)
		(void)send(janitor_fd, &m, sizeof(m), MSG_NOSIGNAL);
	pthread_mutex_unlock(&lock);
}

int janitor_fd_for_child(void)
{
	return janitor_fd;
}
