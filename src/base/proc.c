/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Process liveness from /proc (proc.h). Moved from the store, whose SQL
 * backends and crash recovery use it: none of it is about the store.
 */
#define _GNU_SOURCE
#include "base/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/file.h"

static ssize_t read_some(int fd, void *buf, size_t len)
{
	for (;;) {
		ssize_t n = read(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 ? -errno : n;
	}
}

/* Reads a small file (at most cap - 1 bytes) NUL-terminated; bytes or -errno. */
static ssize_t read_small(const char *path, char *buf, size_t cap)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	size_t got = 0;
	while (got + 1 < cap) {
		ssize_t n = read_some(fd, buf + got, cap - 1 - got);
		if (n < 0)
			return n;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	return (ssize_t)got;
}

static void trim_end(char *s)
{
	size_t n = strlen(s);
	while (n && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
		s[--n] = '\0';
}

int cdn_boot_id(char *out, size_t cap, struct cdn_err *err)
{
	char buf[64];
	ssize_t n = read_small("/proc/sys/kernel/random/boot_id", buf, sizeof(buf));
	if (n < 0)
		return cdn_err_set(err, (int)-n, "store: read /proc/sys/kernel/random/boot_id");
	trim_end(buf);
	size_t len = strlen(buf);
	if (len == 0 || len >= cap)
		return cdn_err_msg(err, EINVAL, "store: /proc/sys/kernel/random/boot_id: "
				   "unexpected contents");
	memcpy(out, buf, len + 1);
	return 0;
}

static bool same_trimmed(const char *a, const char *b)
{
	char x[CDN_BOOT_ID_MAX + 1], y[CDN_BOOT_ID_MAX + 1];
	snprintf(x, sizeof(x), "%s", a);
	snprintf(y, sizeof(y), "%s", b);
	trim_end(x);
	trim_end(y);
	return x[0] && !strcmp(x, y);
}

/* Field n (n >= 3) of /proc/PID/stat text `buf`, a number: the (n - 2)th
 * after the comm's closing parenthesis. False when it is not there. */
static bool stat_field(const char *buf, int n, uint64_t *out)
{
	/* "pid (comm) S ...": comm may hold ')' itself, so the last one. */
	const char *p = strrchr(buf, ')');
	if (!p || n < 3)
		return false;
	p++;
	for (int field = 3; field < n; field++) {
		p = strchr(p + 1, ' ');
		if (!p)
			return false;
	}
	char *end;
	errno = 0;
	unsigned long long v = strtoull(p + 1, &end, 10);
	if (errno || end == p + 1 || (*end != ' ' && *end != '\n' && *end != '\0'))
		return false;
	*out = (uint64_t)v;
	return true;
}

/* starttime, the 22nd field; 0 when it is not there. */
static uint64_t stat_start(const char *buf)
{
	uint64_t v;
	return stat_field(buf, 22, &v) ? v : 0;
}

uint64_t cdn_proc_start(int pid)
{
	char path[64], buf[1024];
	if (pid <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (read_small(path, buf, sizeof(buf)) <= 0)
		return 0;
	return stat_start(buf);
}

int cdn_proc_usage(int pid, struct cdn_proc_usage *out)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	ssize_t n = read_small(path, buf, sizeof(buf));
	if (n < 0)
		return (int)n;
	memset(out, 0, sizeof(*out));
	if (!stat_field(buf, 14, &out->utime_ticks) || !stat_field(buf, 15, &out->stime_ticks) ||
	    !stat_field(buf, 22, &out->start_ticks) || !stat_field(buf, 23, &out->vsize_bytes) ||
	    !stat_field(buf, 24, &out->rss_pages))
		return -EINVAL;
	return 0;
}

int cdn_boot_time(uint64_t *secs)
{
	_cleanup_close_ int fd = open("/proc/stat", O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	/* A line per CPU comes first: a few KiB each on large machines. */
	_cleanup_free_ char *text = NULL;
	size_t len;
	int r = cdn_read_fd(fd, 4u << 20, &text, &len);
	if (r < 0)
		return r;
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (strncmp(p, "btime ", 6) != 0)
			continue;
		char *end;
		errno = 0;
		unsigned long long v = strtoull(p + 6, &end, 10);
		if (errno || end == p + 6 || (*end != '\n' && *end != '\0'))
			return -EINVAL;
		*secs = (uint64_t)v;
		return 0;
	}
	return -ENOENT;
}

/* See proc.h. */
bool cdn_supervisor_alive(int pid, const char *boot, const char *current_boot, uint64_t start)
{
	if (pid <= 0 || !boot || !current_boot || !same_trimmed(boot, current_boot))
		return false;
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (read_small(path, buf, sizeof(buf)) <= 0)
		return false;
	const char *rp = strrchr(buf, ')');
	if (!rp || rp[1] != ' ' || rp[2] == 'Z' || rp[2] == 'X' || rp[2] == 'x')
		return false;
	if (start && stat_start(buf) != start)
		return false;
	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	if (read_small(path, buf, sizeof(buf)) <= 0)
		return false;
	trim_end(buf);
	return !strcmp(buf, "cordon") || !strcmp(buf, "cordon-full") || !strcmp(buf, "cordon-api");
}
