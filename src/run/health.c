/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A run's health check (docs/services.md): every interval, an HTTP GET of
 * the manifest's path on 127.0.0.1:port inside the sandbox's own network
 * namespace. Nothing is published: the probe joins the namespace instead.
 *
 * Each probe is a child process, because what answers is the agent's and
 * nothing that reads its bytes runs with privileges: the child enters the
 * sandbox's network namespace (through its pidfd), makes its socket, and
 * then confines itself as the network part does (sandbox_confine_helper:
 * its own unprivileged ids, no capabilities, Landlock with no files, the
 * helper's seccomp allowlist) before it connects or reads a byte. It reads
 * at most the status line and says what it found in its exit status only.
 */
#define _GNU_SOURCE
#include "run/health.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "sandbox/sandbox.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/* What a probe found: its exit status. */
enum probe_result {
	PROBE_OK = 0,
	PROBE_SETUP = 10, /* the probe could not enter or confine itself */
	PROBE_REFUSED,	  /* nothing listens, or the connection failed */
	PROBE_TIMEOUT,	  /* no answer in time */
	PROBE_MALFORMED,  /* not an HTTP status line */
	PROBE_STATUS_4XX,
	PROBE_STATUS_5XX,
	PROBE_STATUS_OTHER, /* 1xx, or 600 and above */
};

struct run_health {
	struct event_base *base;
	struct event *timer, *child_ev;
	int sb_pidfd;
	pid_t supervisor;
	unsigned allow_degraded;
	unsigned port, interval_s, timeout_s, failures;
	char path[MANIFEST_MAX_HEALTH_PATH + 1];
	run_health_cb cb;
	void *ctx;
	pid_t child;
	int child_pidfd;
	uint64_t child_deadline;
	unsigned in_a_row;
	bool armed; /* probing (after the setup phase, when there is one) */
	bool done;  /* failed for good: no more probes */
};

static const char *result_text(int code)
{
	switch (code) {
	case PROBE_OK: return "healthy";
	case PROBE_SETUP: return "the probe could not start";
	case PROBE_REFUSED: return "the connection failed (nothing listens?)";
	case PROBE_TIMEOUT: return "no answer in time";
	case PROBE_MALFORMED: return "the answer is not an HTTP status line";
	case PROBE_STATUS_4XX: return "it answered 4xx";
	case PROBE_STATUS_5XX: return "it answered 5xx";
	case PROBE_STATUS_OTHER: return "it answered a status that is not 2xx or 3xx";
	default: return "the probe died";
	}
}

static int remaining_ms(uint64_t deadline)
{
	uint64_t now = cdn_mono_ms();
	return now >= deadline ? 0 : (int)(deadline - now);
}

/* Waits for events on fd until the deadline: 1, 0 on timeout, -1. */
static int wait_fd(int fd, short events, uint64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	for (;;) {
		int ms = remaining_ms(deadline);
		if (ms == 0)
			return 0;
		int r = poll(&p, 1, ms);
		if (r > 0)
			return 1;
		if (r == 0)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

/* "HTTP/1.x NNN" then a space or the line's end: the status, or -1. */
static int status_of(const char *b, size_t n)
{
	if (n < 12 || memcmp(b, "HTTP/1.", 7) != 0 || (b[7] != '0' && b[7] != '1') || b[8] != ' ')
		return -1;
	int st = 0;
	for (size_t i = 9; i < 12; i++) {
		if (b[i] < '0' || b[i] > '9')
			return -1;
		st = st * 10 + (b[i] - '0');
	}
	if (n > 12 && b[12] != ' ' && b[12] != '\r')
		return -1;
	return st >= 100 ? st : -1;
}

/* The child: never returns. */
static void __attribute__((noreturn)) probe(const struct run_health *h)
{
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	uint64_t deadline = cdn_mono_ms() + (uint64_t)h->timeout_s * 1000;
	/* Root joins the network namespace alone; a rootless supervisor owns
	 * the sandbox's user namespace and joins it first. */
	if (setns(h->sb_pidfd, geteuid() == 0 ? CLONE_NEWNET : CLONE_NEWUSER | CLONE_NEWNET) < 0)
		_exit(PROBE_SETUP);
	int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s < 0)
		_exit(PROBE_SETUP);
	/* Nothing of the supervisor's goes along: every other descriptor (the
	 * store, control sockets, the sandbox's pipes) is closed first. */
	if ((s > 3 && syscall(SYS_close_range, 3u, (unsigned)s - 1, 0u) < 0) ||
	    syscall(SYS_close_range, (unsigned)s + 1, ~0u, 0u) < 0)
		_exit(PROBE_SETUP);
	uid_t uid = geteuid();
	gid_t gid = getegid();
	struct cdn_err err = { 0 };
	struct sandbox_confinement conf;
	if ((uid == 0 && sandbox_helper_ids(h->supervisor, &uid, &gid, &err) < 0) ||
	    sandbox_confine_helper(uid, gid, h->allow_degraded, &conf, &err) < 0)
		_exit(PROBE_SETUP);
	/* From here on, only what the agent's server says. */
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)h->port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0 && errno != EINPROGRESS)
		_exit(PROBE_REFUSED);
	int w = wait_fd(s, POLLOUT, deadline);
	int soerr = 0;
	socklen_t sl = sizeof(soerr);
	if (w == 0)
		_exit(PROBE_TIMEOUT);
	if (w < 0 || getsockopt(s, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr)
		_exit(PROBE_REFUSED);
	char req[MANIFEST_MAX_HEALTH_PATH + 128];
	int rl = snprintf(req, sizeof(req),
			  "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nUser-Agent: cordon-health\r\n"
			  "Connection: close\r\n\r\n",
			  h->path, h->port);
	for (int off = 0; off < rl;) {
		if ((w = wait_fd(s, POLLOUT, deadline)) <= 0)
			_exit(w == 0 ? PROBE_TIMEOUT : PROBE_REFUSED);
		ssize_t n = send(s, req + off, (size_t)(rl - off), MSG_NOSIGNAL);
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			_exit(PROBE_REFUSED);
		off += n > 0 ? (int)n : 0;
	}
	/* The status line's first 13 bytes are all it needs. */
	char buf[13];
	size_t got = 0;
	while (got < sizeof(buf)) {
		if ((w = wait_fd(s, POLLIN, deadline)) <= 0)
			_exit(w == 0 ? PROBE_TIMEOUT : PROBE_REFUSED);
		ssize_t n = recv(s, buf + got, sizeof(buf) - got, 0);
		if (n == 0)
			break;
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			_exit(PROBE_REFUSED);
		got += n > 0 ? (size_t)n : 0;
	}
	int st = status_of(buf, got);
	_exit(st < 0	 ? PROBE_MALFORMED
	      : st < 200 ? PROBE_STATUS_OTHER
	      : st < 400 ? PROBE_OK
	      : st < 500 ? PROBE_STATUS_4XX
	      : st < 600 ? PROBE_STATUS_5XX
			 : PROBE_STATUS_OTHER);
}

static void reaped(struct run_health *h, int code)
{
	if (h->done)
		return;
	if (code == PROBE_OK) {
		if (h->in_a_row)
			h->cb(h->ctx, true, result_text(code), 0, false);
		h->in_a_row = 0;
		return;
	}
	h->in_a_row++;
	bool last = h->in_a_row >= h->failures;
	h->done = last;
	h->cb(h->ctx, false, result_text(code), h->in_a_row, last);
}

static void on_child(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct run_health *h = arg;
	siginfo_t si = { 0 };
	if (waitid(P_PIDFD, (id_t)h->child_pidfd, &si, WEXITED | WNOHANG) < 0 || si.si_pid == 0)
		return;
	event_free(h->child_ev);
	h->child_ev = NULL;
	close(h->child_pidfd);
	h->child_pidfd = -1;
	h->child = 0;
	reaped(h, si.si_code == CLD_EXITED ? si.si_status
		  : si.si_status == SIGKILL && h->child_deadline ? PROBE_TIMEOUT
								: -1);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct run_health *h = arg;
	if (h->done || !h->armed)
		return;
	if (h->child) {
		/* The last probe outlived its own deadline: it is killed, and
		 * its reaping counts as no answer. */
		if (cdn_mono_ms() > h->child_deadline) {
			(void)syscall(SYS_pidfd_send_signal, h->child_pidfd, SIGKILL, NULL, 0);
			/* Reaped by someone else already: forget it. */
			siginfo_t si = { 0 };
			if (waitid(P_PIDFD, (id_t)h->child_pidfd, &si, WEXITED | WNOHANG) < 0 &&
			    errno == ECHILD) {
				event_free(h->child_ev);
				h->child_ev = NULL;
				close(h->child_pidfd);
				h->child_pidfd = -1;
				h->child = 0;
				reaped(h, PROBE_TIMEOUT);
			}
		}
		return;
	}
	pid_t pid = fork();
	if (pid == 0)
		probe(h);
	if (pid < 0) {
		reaped(h, PROBE_SETUP);
		return;
	}
	h->child = pid;
	h->child_pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	h->child_deadline = cdn_mono_ms() + (uint64_t)h->timeout_s * 1000 + 1000;
	if (h->child_pidfd < 0 ||
	    !(h->child_ev = event_new(h->base, h->child_pidfd, EV_READ, on_child, h)) ||
	    event_add(h->child_ev, NULL) < 0) {
		kill(pid, SIGKILL);
		(void)waitpid(pid, NULL, 0);
		if (h->child_pidfd >= 0)
			close(h->child_pidfd);
		h->child_pidfd = -1;
		h->child = 0;
		reaped(h, PROBE_SETUP);
	}
}

void run_health_arm(struct run_health *h)
{
	if (!h || h->armed)
		return;
	h->armed = true;
	/* The first probe one interval from now. */
	struct timeval tv = { (time_t)h->interval_s, 0 };
	event_del(h->timer);
	event_add(h->timer, &tv);
}

int run_health_start(struct event_base *base, int sb_pidfd, pid_t supervisor,
		     unsigned allow_degraded, const struct agent_manifest *m, bool armed,
		     run_health_cb cb, void *ctx, struct run_health **out, struct cdn_err *err)
{
	*out = NULL;
	if (!m->health.port)
		return 0;
	struct run_health *h = calloc(1, sizeof(*h));
	if (!h)
		return cdn_err_set(err, ENOMEM, "health check");
	*h = (struct run_health){ .base = base,
				  .sb_pidfd = sb_pidfd,
				  .supervisor = supervisor,
				  .allow_degraded = allow_degraded,
				  .port = m->health.port,
				  .interval_s = m->health.interval_s,
				  .timeout_s = m->health.timeout_s,
				  .failures = m->health.failures,
				  .cb = cb,
				  .ctx = ctx,
				  .armed = armed,
				  .child_pidfd = -1 };
	snprintf(h->path, sizeof(h->path), "%s", m->health.path);
	h->timer = event_new(base, -1, EV_PERSIST, on_timer, h);
	struct timeval tv = { (time_t)h->interval_s, 0 };
	if (!h->timer || event_add(h->timer, &tv) < 0) {
		run_health_free(h);
		return cdn_err_set(err, ENOMEM, "health check");
	}
	*out = h;
	return 0;
}

void run_health_free(struct run_health *h)
{
	if (!h)
		return;
	if (h->timer)
		event_free(h->timer);
	if (h->child_ev)
		event_free(h->child_ev);
	if (h->child > 0) {
		kill(h->child, SIGKILL);
		(void)waitpid(h->child, NULL, 0);
	}
	if (h->child_pidfd >= 0)
		close(h->child_pidfd);
	free(h);
}
