/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Starting a run's process: `cordon run --claim ID`, which takes over a
 * record made ahead of time and supervises its sandbox, for serve's
 * dispatcher and for cordon worker alike, so that a run is the same
 * process, sandbox and egress engine whichever started it.
 */
#define _GNU_SOURCE
#include "serve/runproc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <unistd.h>

extern char **environ;

/* "cordon run --state STATE -q" and what every run is given; the count.
 * nums holds the numbers' text. */
static size_t common_argv(const struct runproc *p, const char **argv, char nums[2][16])
{
	size_t n = 0;
	argv[n++] = p->exe;
	argv[n++] = "run";
	argv[n++] = "--state";
	argv[n++] = p->state;
	argv[n++] = "-q";
	if (p->hosts_file) {
		argv[n++] = "--hosts";
		argv[n++] = p->hosts_file;
	}
	if (p->upstream_ca) {
		argv[n++] = "--upstream-ca";
		argv[n++] = p->upstream_ca;
	}
	for (size_t i = 0; i < p->n_allow_private && i < RUNPROC_MAX_PRIVATE; i++) {
		argv[n++] = "--allow-private";
		argv[n++] = p->allow_private[i];
	}
	if (p->max_call_depth) {
		snprintf(nums[0], 16, "%u", p->max_call_depth);
		argv[n++] = "--max-call-depth";
		argv[n++] = nums[0];
	}
	if (p->max_calls) {
		snprintf(nums[1], 16, "%u", p->max_calls);
		argv[n++] = "--max-calls";
		argv[n++] = nums[1];
	}
	return n;
}

static int spawn_argv(const struct runproc *p, const char *const *argv, int stdin_fd, pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	if (stdin_fd >= 0)
		posix_spawn_file_actions_adddup2(&fa, stdin_fd, STDIN_FILENO);
	else
		posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
	/* The caller blocks its signals for sigwait(); the run must not. */
	sigset_t none, all;
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &all);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	int r = posix_spawn(pid, p->exe, &fa, &at, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	return -r;
}

int runproc_spawn(const struct runproc *p, const char *ws, const char *id, const char *ref,
		  const char *lease, pid_t *pid)
{
	const char *argv[24 + 2 * RUNPROC_MAX_PRIVATE];
	char nums[2][16];
	size_t n = common_argv(p, argv, nums);
	argv[n++] = "-w";
	argv[n++] = ws;
	argv[n++] = "--claim";
	argv[n++] = id;
	if (lease) {
		argv[n++] = "--lease";
		argv[n++] = lease;
	}
	argv[n++] = "--";
	argv[n++] = ref;
	argv[n] = NULL;
	return spawn_argv(p, argv, -1, pid);
}

int runproc_spawn_standby(const struct runproc *p, int stdin_fd, pid_t *pid)
{
	const char *argv[24 + 2 * RUNPROC_MAX_PRIVATE];
	char nums[2][16];
	size_t n = common_argv(p, argv, nums);
	argv[n++] = "--standby";
	argv[n] = NULL;
	return spawn_argv(p, argv, stdin_fd, pid);
}
