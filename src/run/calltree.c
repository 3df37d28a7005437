/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The call budget of a tree of calls (docs/mcp.md, "Calling another agent").
 *
 * --max-calls bounds the calls of a whole tree: the first run and every run
 * below it, together. Counted per run, every child would get the whole
 * budget again, and with the defaults (16 calls, depth 4) one run could
 * start 16 + 256 + 4096 + 65536 sandboxes.
 *
 * Every run of a tree is on one host: a supervisor starts its children as
 * `cordon run --claim` processes of its own. So the count is a small file in
 * the state directory's tmp/, named for the first run ("calls.PID.RUN_ID",
 * PID that run's process, so that store_open's clean-up of tmp/ takes the
 * file of a first run that died), made by the first run at its first call,
 * named to each child by the supervisor that starts it (--call-tree), and
 * read and changed under flock by supervisors only: nothing the agent or its
 * network part says counts. It holds three numbers: the budget (the first
 * run's --max-calls), the calls made, and those still running.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "run/run_internal.h"

#define CALL_TREE_PREFIX   "calls."
#define CALL_TREE_FILE_MAX 64 /* "BUDGET MADE RUNNING\n" */

bool run_call_tree_name_ok(const char *name)
{
	size_t pl = strlen(CALL_TREE_PREFIX);
	if (!name || strlen(name) > RUN_CALL_TREE_NAME_MAX ||
	    strncmp(name, CALL_TREE_PREFIX, pl) != 0)
		return false;
	const char *p = name + pl;
	size_t digits = 0;
	while (p[digits] >= '0' && p[digits] <= '9')
		digits++;
	return digits > 0 && digits <= 10 && p[digits] == '.' && store_run_id_ok(p + digits + 1);
}

enum call_tree_verdict run_call_tree_decide(const struct run_call_tree_count *n)
{
	if (n->made >= n->budget)
		return CALL_TREE_SPENT;
	if (n->running >= RUN_MAX_LIVE_CALLS)
		return CALL_TREE_BUSY;
	return CALL_TREE_OK;
}

/* The tree's file, locked; create: the first run's first call makes it. */
static int tree_open(struct store *s, const char *name, bool create, struct cdn_err *err)
{
	if (!run_call_tree_name_ok(name))
		return cdn_err_msg(err, EINVAL, "'%s' is not the name of a tree of calls", name);
	char path[PATH_MAX];
	int r = store_tmp_path(s, name, path, sizeof(path), err);
	if (r < 0)
		return r;
	/* O_NOFOLLOW and the checks below: a file planted in its place
	 * (a link, another user's) must not stand for the count. */
	int fd =
	    open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | (create ? O_CREAT | O_EXCL : 0),
		 0600);
	if (fd < 0)
		return cdn_err_set(err, errno, "the tree's call count %s", path);
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & 077)) {
		close(fd);
		return cdn_err_msg(err, EPERM,
				   "the tree's call count %s is not a private file of this user",
				   path);
	}
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			r = cdn_err_set(err, errno, "lock the tree's call count %s", path);
			close(fd);
			return r;
		}
	}
	return fd;
}

static int tree_read(int fd, const char *name, struct run_call_tree_count *n, struct cdn_err *err)
{
	char buf[CALL_TREE_FILE_MAX + 1];
	ssize_t len = pread(fd, buf, CALL_TREE_FILE_MAX, 0);
	if (len < 0)
		return cdn_err_set(err, errno, "read the tree's call count %s", name);
	buf[len] = '\0';
	char *p = buf, *end;
	unsigned long v[3];
	for (int i = 0; i < 3; i++) {
		errno = 0;
		if (*p < '0' || *p > '9')
			break;
		v[i] = strtoul(p, &end, 10);
		if (errno || v[i] > RUN_MAX_MAX_CALLS || *end != (i < 2 ? ' ' : '\n'))
			break;
		p = end + 1;
		if (i == 2 && !*p) {
			*n = (struct run_call_tree_count){(unsigned)v[0], (unsigned)v[1],
							  (unsigned)v[2]};
			return 0;
		}
	}
	return cdn_err_msg(err, EINVAL, "the tree's call count %s is damaged", name);
}

static int tree_write(int fd, const char *name, const struct run_call_tree_count *n,
		      struct cdn_err *err)
{
	char buf[CALL_TREE_FILE_MAX];
	int len = snprintf(buf, sizeof(buf), "%u %u %u\n", n->budget, n->made, n->running);
	if (pwrite(fd, buf, (size_t)len, 0) != len || ftruncate(fd, len) < 0)
		return cdn_err_set(err, errno ? errno : EIO, "write the tree's call count %s",
				   name);
	return 0;
}

int run_call_tree_take(struct store *s, const char *name, bool create, unsigned budget,
		       struct run_call_tree_count *n, enum call_tree_verdict *verdict,
		       struct cdn_err *err)
{
	_cleanup_close_ int fd = tree_open(s, name, create, err);
	if (fd < 0)
		return fd;
	int r;
	if (create)
		*n = (struct run_call_tree_count){.budget = budget};
	else if ((r = tree_read(fd, name, n, err)) < 0)
		return r;
	*verdict = run_call_tree_decide(n);
	if (*verdict != CALL_TREE_OK && !create)
		return 0;
	if (*verdict == CALL_TREE_OK) {
		n->made++;
		n->running++;
	}
	if ((r = tree_write(fd, name, n, err)) < 0) {
		if (create)
			run_call_tree_remove(s, name);
		return r;
	}
	return 0;
}

void run_call_tree_done(struct store *s, const char *name)
{
	struct cdn_err err = {0};
	_cleanup_close_ int fd = tree_open(s, name, false, &err);
	struct run_call_tree_count n;
	if (fd < 0 || tree_read(fd, name, &n, &err) < 0 || !n.running)
		return;
	n.running--;
	(void)tree_write(fd, name, &n, &err);
}

void run_call_tree_remove(struct store *s, const char *name)
{
	char path[PATH_MAX];
	struct cdn_err err = {0};
	if (run_call_tree_name_ok(name) && store_tmp_path(s, name, path, sizeof(path), &err) == 0)
		(void)unlink(path);
}
