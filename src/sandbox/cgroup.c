/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A cgroup per sandbox, on cgroup v2 or v1, for limits (memory, pids, cpu),
 * for peak usage and OOM read-back, and to kill and account every process.
 *
 * v2: the sandbox gets <parent>/cordon-<pid>-<n>, where <parent> is
 *     $CORDON_CGROUP_PARENT or <mount>/cordon (controllers are enabled down
 *     the path). clone3(CLONE_INTO_CGROUP) places the child there before
 *     it runs a single instruction.
 * v1: in each hierarchy (memory, pids, cpu, cpuacct) the sandbox gets
 *     <own cgroup>/cordon-<pid>-<n>; the supervisor moves the child in
 *     before letting it continue.
 *
 * $CORDON_CGROUP=v1|v2|auto forces a version (for tests and odd hosts);
 * $CORDON_CGROUP_ROOT overrides the v2 mount point.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/file.h"
#include "sandbox/internal.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

#define CPU_PERIOD_US 100000

enum { V1_MEMORY, V1_PIDS, V1_CPU, V1_CPUACCT, V1_N };
static const char *const v1_names[V1_N] = { "memory", "pids", "cpu", "cpuacct" };

struct sb_cgroup {
	int version;
	/* v2 */
	char *dir2;
	int fd2;
	/* v1: one directory per controller (co-mounted ones share it) */
	char *dir1[V1_N];
	int fd1[V1_N];
	bool oom_before;
};

static ssize_t read_at(int dirfd, const char *file, char *buf, size_t size)
{
	_cleanup_close_ int fd = openat(dirfd, file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, size - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return n;
}

static bool read_u64_at(int dirfd, const char *file, uint64_t *out)
{
	char buf[64];
	if (read_at(dirfd, file, buf, sizeof(buf)) <= 0)
		return false;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(buf, &end, 10);
	if (errno || end == buf)
		return false;
	*out = v;
	return true;
}

/* "key value" files (memory.events, cpu.stat, memory.oom_control). */
static bool read_key_at(int dirfd, const char *file, const char *key, uint64_t *out)
{
	char buf[4096];
	if (read_at(dirfd, file, buf, sizeof(buf)) <= 0)
		return false;
	size_t kl = strlen(key);
	for (char *line = buf; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (strncmp(line, key, kl) == 0 && line[kl] == ' ') {
			*out = strtoull(line + kl + 1, NULL, 10);
			return true;
		}
		line = nl ? nl + 1 : NULL;
	}
	return false;
}

static unsigned next_serial(void)
{
	static unsigned serial;
	return __atomic_add_fetch(&serial, 1, __ATOMIC_RELAXED);
}

/* Remove leftovers of supervisors that died before their janitor could run
 * (e.g. the whole process group was SIGKILLed). Only empty directories of
 * dead supervisors go; rmdir refuses anything else. */
static void sweep_stale(const char *parent)
{
	_cleanup_closedir_ DIR *d = opendir(parent);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		int pid = 0;
		unsigned n;
		if (sscanf(de->d_name, "cordon-%d-%u", &pid, &n) != 2 || pid <= 0)
			continue;
		if (pid == getpid() || kill(pid, 0) == 0 || errno != ESRCH)
			continue;
		(void)unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR);
	}
}

static int mkdir_p(const char *path)
{
	char buf[PATH_MAX];
	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* ---------------------------------------------------------------- mounts */

struct cg_mounts {
	char v2[PATH_MAX];	    /* cgroup2 mount point, "" if none */
	char v1[V1_N][PATH_MAX];   /* hierarchy mount point per controller */
	char own1[V1_N][PATH_MAX]; /* our cgroup path in that hierarchy */
	char own2[PATH_MAX];
};

static void scan_mounts(struct cg_mounts *m)
{
	memset(m, 0, sizeof(*m));
	_cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096];
	while (f && fgets(line, sizeof(line), f)) {
		/* id parent maj:min root mountpoint opts [optional...] - fstype src superopts */
		char *sep = strstr(line, " - ");
		if (!sep)
			continue;
		char mnt[PATH_MAX], fstype[64], src[256], sopts[1024];
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1 ||
		    sscanf(sep + 3, "%63s %255s %1023s", fstype, src, sopts) != 3)
			continue;
		if (strcmp(fstype, "cgroup2") == 0 && !m->v2[0]) {
			snprintf(m->v2, sizeof(m->v2), "%s", mnt);
		} else if (strcmp(fstype, "cgroup") == 0) {
			for (int c = 0; c < V1_N; c++) {
				char *save = NULL;
				char opts[1024];
				snprintf(opts, sizeof(opts), "%s", sopts);
				for (char *t = strtok_r(opts, ",", &save); t;
				     t = strtok_r(NULL, ",", &save))
					if (strcmp(t, v1_names[c]) == 0 && !m->v1[c][0])
						snprintf(m->v1[c], sizeof(m->v1[c]), "%s", mnt);
			}
		}
	}

	_cleanup_fclose_ FILE *g = fopen("/proc/self/cgroup", "re");
	while (g && fgets(line, sizeof(line), g)) {
		line[strcspn(line, "\n")] = '\0';
		char *c1 = strchr(line, ':');
		char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c2 = '\0';
		const char *ctrls = c1 + 1, *path = c2 + 1;
		if (!*ctrls) {
			snprintf(m->own2, sizeof(m->own2), "%s", path);
			continue;
		}
		for (int c = 0; c < V1_N; c++) {
			char opts[256];
			snprintf(opts, sizeof(opts), "%s", ctrls);
			char *save = NULL;
			for (char *t = strtok_r(opts, ",", &save); t; t = strtok_r(NULL, ",", &save))
				if (strcmp(t, v1_names[c]) == 0)
					snprintf(m->own1[c], sizeof(m->own1[c]), "%s", path);
		}
	}
}

/* Is `name` listed in the space-separated controller file `file` of dir
 * (cgroup.controllers: available here; cgroup.subtree_control: handed on
 * to the children)? */
static bool lists_controller(const char *dir, const char *file, const char *name)
{
	char buf[512];
	_cleanup_close_ int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || read_at(fd, file, buf, sizeof(buf)) < 0)
		return false;
	char *save = NULL;
	for (char *t = strtok_r(buf, " \n", &save); t; t = strtok_r(NULL, " \n", &save))
		if (strcmp(t, name) == 0)
			return true;
	return false;
}

/* ------------------------------------------------------------------ v2 */

/* Write +ctrl to every cgroup.subtree_control from the mount root down to
 * the parent, so the parent's children can use it. A write may fail where
 * the controller is already handed on (a cgroup we may not write, such as
 * the root of a delegated tree); only a cgroup that does not hand it on is
 * an error, and `where` names it. */
static int enable_down(const char *mnt, const char *parent, const char *ctrl, char *where,
		       size_t where_size)
{
	char path[PATH_MAX];
	size_t ml = strlen(mnt);
	if (strncmp(parent, mnt, ml) != 0)
		return -EINVAL;
	snprintf(path, sizeof(path), "%s", mnt);
	const char *rest = parent + ml;
	char plus[32];
	snprintf(plus, sizeof(plus), "+%s", ctrl);
	for (;;) {
		_cleanup_close_ int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0) {
			snprintf(where, where_size, "%s", path);
			return -errno;
		}
		int r = cdn_write_once_at(fd, "cgroup.subtree_control", plus);
		if (r < 0 && !lists_controller(path, "cgroup.subtree_control", ctrl)) {
			snprintf(where, where_size, "%s", path);
			return r;
		}
		while (*rest == '/')
			rest++;
		if (!*rest)
			return 0;
		const char *e = strchrnul(rest, '/');
		size_t l = strlen(path);
		snprintf(path + l, sizeof(path) - l, "/%.*s", (int)(e - rest), rest);
		rest = e;
	}
}

/*
 * cgroup v2 lets a cgroup hand controllers to its children only while no
 * process sits in it ("no internal processes"; the root is exempt). When
 * cordon itself sits in a cgroup on the way to the sandboxes' parent, as it
 * does when started in a delegated scope or service and told to put the
 * sandboxes beneath it (systemd-run --user --scope -p Delegate=yes), it
 * moves into a leaf of its own first, as crun and podman do.
 */
static int leave_parent_path(const char *mnt, const char *own, const char *parent,
			     struct cdn_err *err)
{
	char self[PATH_MAX];
	if (!own[0] || strcmp(own, "/") == 0)
		return 0;
	if (snprintf(self, sizeof(self), "%s%s", mnt, own) >= (int)sizeof(self))
		return cdn_err_set(err, ENAMETOOLONG, "cgroup v2: own cgroup");
	size_t sl = strlen(self);
	if (strncmp(parent, self, sl) != 0 || (parent[sl] != '\0' && parent[sl] != '/'))
		return 0; /* not on the way: nothing to move */
	char leaf[PATH_MAX + 32];
	snprintf(leaf, sizeof(leaf), "%s/cordon-supervisor", self);
	if (mkdir(leaf, 0755) < 0 && errno != EEXIST)
		return cdn_err_set(err, errno, "cgroup v2: create %s", leaf);
	_cleanup_close_ int fd = open(leaf, O_PATH | O_DIRECTORY | O_CLOEXEC);
	/* "0": this process */
	int r = fd < 0 ? -errno : cdn_write_once_at(fd, "cgroup.procs", "0");
	if (r < 0)
		return cdn_err_set(err, -r, "cgroup v2: move cordon out of %s into %s", self, leaf);
	return 0;
}

static int limits_v2(struct sb_cgroup *cg, const struct sandbox_limits *lim, bool reset,
		     struct cdn_err *err);

/* all: every controller is handed down, as a warm sandbox's limits come
 * later (sb_cgroup_set_limits); else only those lim needs. */
static int create_v2(struct sb_cgroup *cg, const struct cg_mounts *m,
		     const struct sandbox_limits *lim, bool all, struct cdn_err *err)
{
	const char *mnt = getenv("CORDON_CGROUP_ROOT");
	if (!mnt || !*mnt)
		mnt = m->v2;
	char parent[PATH_MAX];
	const char *env = getenv("CORDON_CGROUP_PARENT");
	if (env && *env && strncmp(env, mnt, strlen(mnt)) == 0)
		snprintf(parent, sizeof(parent), "%s", env);
	else if (env && *env)
		snprintf(parent, sizeof(parent), "%s/%s", mnt, env + (env[0] == '/'));
	else
		snprintf(parent, sizeof(parent), "%s/cordon", mnt);

	int r = leave_parent_path(mnt, m->own2, parent, err);
	if (r < 0)
		return r;
	if ((r = mkdir_p(parent)) < 0)
		return cdn_err_set(err, -r, "cgroup v2: create %s", parent);
	sweep_stale(parent);

	struct {
		const char *name;
		bool needed;
	} ctrls[] = { { "memory", lim->mem_bytes > 0 },
		      { "pids", lim->pids > 0 },
		      { "cpu", lim->cpu_millicores > 0 } };
	(void)all; /* v2 hands every controller down it can; needed ones must be */
	for (size_t i = 0; i < CDN_ARRAY_SIZE(ctrls); i++) {
		char where[PATH_MAX] = "";
		r = enable_down(mnt, parent, ctrls[i].name, where, sizeof(where));
		if (r == -EBUSY && ctrls[i].needed)
			return cdn_err_msg(err, EBUSY,
					   "cgroup v2: cannot hand the %s controller on below %s, "
					   "which holds processes (cgroup v2 allows that only in a "
					   "cgroup without processes)",
					   ctrls[i].name, where);
		if (r < 0 && ctrls[i].needed)
			return cdn_err_set(err, -r,
					   "cgroup v2: controller %s is not available under %s "
					   "(enabling it in %s failed)",
					   ctrls[i].name, parent, where);
	}

	if (asprintf(&cg->dir2, "%s/cordon-%d-%u", parent, getpid(), next_serial()) < 0) {
		cg->dir2 = NULL;
		return cdn_err_set(err, ENOMEM, "cgroup v2");
	}
	if (mkdir(cg->dir2, 0755) < 0)
		return cdn_err_set(err, errno, "cgroup v2: create %s", cg->dir2);
	cg->fd2 = open(cg->dir2, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (cg->fd2 < 0)
		return cdn_err_set(err, errno, "cgroup v2: open %s", cg->dir2);
	cg->version = 2;
	return limits_v2(cg, lim, false, err);
}

/* reset: a limit of 0 is written as none ("max"), in case the cgroup had
 * one (a warm sandbox's cgroup holds its shape's). */
static int limits_v2(struct sb_cgroup *cg, const struct sandbox_limits *lim, bool reset,
		     struct cdn_err *err)
{
	char v[64];
	int r;
	if (lim->mem_bytes) {
		snprintf(v, sizeof(v), "%" PRIu64, lim->mem_bytes);
		if ((r = cdn_write_once_at(cg->fd2, "memory.max", v)) < 0)
			return cdn_err_set(err, -r, "cgroup v2: memory.max");
		/* No swapping around the limit; absent without swap support. */
		(void)cdn_write_once_at(cg->fd2, "memory.swap.max", "0");
		/* An OOM kills the whole sandbox, not a random member. */
		(void)cdn_write_once_at(cg->fd2, "memory.oom.group", "1");
	}
	if (lim->pids) {
		snprintf(v, sizeof(v), "%" PRIu64, lim->pids);
		if ((r = cdn_write_once_at(cg->fd2, "pids.max", v)) < 0)
			return cdn_err_set(err, -r, "cgroup v2: pids.max");
	}
	if (lim->cpu_millicores) {
		snprintf(v, sizeof(v), "%" PRIu64 " %d",
			 lim->cpu_millicores * CPU_PERIOD_US / 1000, CPU_PERIOD_US);
		if ((r = cdn_write_once_at(cg->fd2, "cpu.max", v)) < 0)
			return cdn_err_set(err, -r, "cgroup v2: cpu.max");
	}
	/* Best effort: a controller not handed down has nothing to reset. */
	if (reset && !lim->mem_bytes)
		(void)cdn_write_once_at(cg->fd2, "memory.max", "max");
	if (reset && !lim->pids)
		(void)cdn_write_once_at(cg->fd2, "pids.max", "max");
	if (reset && !lim->cpu_millicores)
		(void)cdn_write_once_at(cg->fd2, "cpu.max", "max");
	return 0;
}

/* ------------------------------------------------------------------ v1 */

static int limits_v1(struct sb_cgroup *cg, const struct sandbox_limits *lim, bool reset,
		     struct cdn_err *err);

static int create_v1(struct sb_cgroup *cg, const struct cg_mounts *m,
		     const struct sandbox_limits *lim, bool all, struct cdn_err *err)
{
	const bool needed[V1_N] = { lim->mem_bytes > 0, lim->pids > 0, lim->cpu_millicores > 0,
				    false };
	/* Memory is always wanted (peak usage, OOM detection); the others only
	 * when a limit asks for them: every v1 hierarchy costs a mkdir and an
	 * rmdir per sandbox. CPU time comes from the reaped rusage when
	 * cpuacct is not joined. A warm sandbox (all) joins every hierarchy
	 * mounted: its limits are not known yet. */
	const bool wanted[V1_N] = { true, all || needed[V1_PIDS], all || needed[V1_CPU],
				    all || needed[V1_CPU] };
	unsigned serial = next_serial();
	for (int c = 0; c < V1_N; c++) {
		if (!wanted[c])
			continue;
		if (!m->v1[c][0]) {
			if (needed[c])
				return cdn_err_msg(err, EOPNOTSUPP,
						   "cgroup v1: no %s hierarchy is mounted",
						   v1_names[c]);
			continue;
		}
		/* Co-mounted controllers (cpu,cpuacct) share a directory. */
		int same = -1;
		for (int p = 0; p < c; p++)
			if (cg->dir1[p] && strcmp(m->v1[p], m->v1[c]) == 0)
				same = p;
		if (same >= 0) {
			cg->dir1[c] = strdup(cg->dir1[same]);
			cg->fd1[c] = fcntl(cg->fd1[same], F_DUPFD_CLOEXEC, 0);
			if (!cg->dir1[c] || cg->fd1[c] < 0)
				return cdn_err_set(err, ENOMEM, "cgroup v1");
			continue;
		}
		char parent[PATH_MAX * 2];
		snprintf(parent, sizeof(parent), "%s%s", m->v1[c],
			 strcmp(m->own1[c], "/") == 0 ? "" : m->own1[c]);
		sweep_stale(parent);
		if (asprintf(&cg->dir1[c], "%s/cordon-%d-%u", parent, getpid(), serial) < 0) {
			cg->dir1[c] = NULL;
			return cdn_err_set(err, ENOMEM, "cgroup v1");
		}
		int e = mkdir(cg->dir1[c], 0755) < 0 ? errno : 0;
		if (!e && (cg->fd1[c] = open(cg->dir1[c], O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
			e = errno;
			(void)rmdir(cg->dir1[c]);
		}
		if (e && !needed[c] && c != V1_MEMORY) {
			/* Joined ahead only (a warm sandbox's): one no limit of
			 * the shape needs, so one a cold sandbox would not have
			 * joined. A run that needs it finds it missing then. */
			free(cg->dir1[c]);
			cg->dir1[c] = NULL;
			cg->fd1[c] = -1;
			continue;
		}
		if (e)
			return cdn_err_set(err, e, "cgroup v1: create %s", cg->dir1[c]);
	}
	cg->version = 1;
	return limits_v1(cg, lim, false, err);
}

static int limits_v1(struct sb_cgroup *cg, const struct sandbox_limits *lim, bool reset,
		     struct cdn_err *err)
{
	char v[64];
	int r;
	if (lim->pids && cg->fd1[V1_PIDS] < 0)
		return cdn_err_msg(err, EOPNOTSUPP, "cgroup v1: no pids hierarchy is joined");
	if (lim->cpu_millicores && cg->fd1[V1_CPU] < 0)
		return cdn_err_msg(err, EOPNOTSUPP, "cgroup v1: no cpu hierarchy is joined");
	/* memory+swap may never be below memory: lift it first. */
	if (reset)
		(void)cdn_write_once_at(cg->fd1[V1_MEMORY], "memory.memsw.limit_in_bytes", "-1");
	if (reset && !lim->mem_bytes)
		(void)cdn_write_once_at(cg->fd1[V1_MEMORY], "memory.limit_in_bytes", "-1");
	if (reset && !lim->pids && cg->fd1[V1_PIDS] >= 0)
		(void)cdn_write_once_at(cg->fd1[V1_PIDS], "pids.max", "max");
	if (reset && !lim->cpu_millicores && cg->fd1[V1_CPU] >= 0)
		(void)cdn_write_once_at(cg->fd1[V1_CPU], "cpu.cfs_quota_us", "-1");
	if (lim->mem_bytes) {
		snprintf(v, sizeof(v), "%" PRIu64, lim->mem_bytes);
		if ((r = cdn_write_once_at(cg->fd1[V1_MEMORY], "memory.limit_in_bytes", v)) < 0)
			return cdn_err_set(err, -r, "cgroup v1: memory.limit_in_bytes");
		/* memory+swap: absent when swap accounting is off. */
		(void)cdn_write_once_at(cg->fd1[V1_MEMORY], "memory.memsw.limit_in_bytes", v);
		(void)cdn_write_once_at(cg->fd1[V1_MEMORY], "memory.swappiness", "0");
	}
	if (lim->pids) {
		snprintf(v, sizeof(v), "%" PRIu64, lim->pids);
		if ((r = cdn_write_once_at(cg->fd1[V1_PIDS], "pids.max", v)) < 0)
			return cdn_err_set(err, -r, "cgroup v1: pids.max");
	}
	if (lim->cpu_millicores) {
		snprintf(v, sizeof(v), "%d", CPU_PERIOD_US);
		if ((r = cdn_write_once_at(cg->fd1[V1_CPU], "cpu.cfs_period_us", v)) < 0)
			return cdn_err_set(err, -r, "cgroup v1: cpu.cfs_period_us");
		snprintf(v, sizeof(v), "%" PRIu64, lim->cpu_millicores * CPU_PERIOD_US / 1000);
		if ((r = cdn_write_once_at(cg->fd1[V1_CPU], "cpu.cfs_quota_us", v)) < 0)
			return cdn_err_set(err, -r, "cgroup v1: cpu.cfs_quota_us");
	}
	return 0;
}

/* --------------------------------------------------------------- public */

static struct sb_cgroup *cg_new(void)
{
	struct sb_cgroup *cg = calloc(1, sizeof(*cg));
	if (!cg)
		return NULL;
	cg->fd2 = -1;
	for (int c = 0; c < V1_N; c++)
		cg->fd1[c] = -1;
	return cg;
}

static int choose_version(const struct cg_mounts *m)
{
	const char *force = getenv("CORDON_CGROUP");
	if (force && strcmp(force, "v1") == 0)
		return 1;
	if (force && strcmp(force, "v2") == 0)
		return 2;
	struct statfs sf;
	if (statfs("/sys/fs/cgroup", &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC)
		return 2;
	if (m->v1[V1_MEMORY][0])
		return 1;
	if (m->v2[0])
		return 2;
	return 0;
}

int sb_cgroup_probe_version(void)
{
	const char *force = getenv("CORDON_CGROUP");
	if (force && strcmp(force, "v1") == 0)
		return 1;
	if (force && strcmp(force, "v2") == 0)
		return 2;
	struct statfs sf;
	if (statfs("/sys/fs/cgroup", &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC)
		return 2;
	if (statfs("/sys/fs/cgroup/memory", &sf) == 0 && sf.f_type != CGROUP2_SUPER_MAGIC)
		return 1;
	return 0; /* unusual layout: sb_cgroup_create decides from mountinfo */
}

int sb_cgroup_create(const struct sandbox_limits *lim, bool all, struct sb_cgroup **out,
		     struct cdn_err *err)
{
	*out = NULL;
	_cleanup_free_ struct cg_mounts *m = malloc(sizeof(*m));
	if (!m)
		return cdn_err_set(err, ENOMEM, "cgroup");
	scan_mounts(m);
	int want = choose_version(m);
	if (!want)
		return cdn_err_msg(err, EOPNOTSUPP, "cgroup: no cgroup filesystem is mounted");

	struct sb_cgroup *cg = cg_new();
	if (!cg)
		return cdn_err_set(err, ENOMEM, "cgroup");
	int r = want == 2 ? create_v2(cg, m, lim, all, err) : create_v1(cg, m, lim, all, err);
	if (r < 0) {
		sb_cgroup_destroy(cg);
		return r;
	}
	*out = cg;
	return 0;
}

int sb_cgroup_set_limits(struct sb_cgroup *cg, const struct sandbox_limits *lim,
			 struct cdn_err *err)
{
	if (!cg)
		return 0;
	return cg->version == 2 ? limits_v2(cg, lim, true, err) : limits_v1(cg, lim, true, err);
}

int sb_cgroup_version(const struct sb_cgroup *cg)
{
	return cg ? cg->version : 0;
}

int sb_cgroup_clone_fd(const struct sb_cgroup *cg)
{
	if (!cg || cg->version != 2)
		return -1;
	/* CLONE_INTO_CGROUP needs a real directory fd, not O_PATH. */
	return open(cg->dir2, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

int sb_cgroup_attach(struct sb_cgroup *cg, pid_t pid, struct cdn_err *err)
{
	if (!cg)
		return 0;
	char v[32];
	snprintf(v, sizeof(v), "%d", (int)pid);
	if (cg->version == 2) {
		int r = cdn_write_once_at(cg->fd2, "cgroup.procs", v);
		return r < 0 ? cdn_err_set(err, -r, "cgroup v2: join %s", cg->dir2) : 0;
	}
	for (int c = 0; c < V1_N; c++) {
		if (cg->fd1[c] < 0)
			continue;
		bool dup = false;
		for (int p = 0; p < c; p++)
			if (cg->dir1[p] && strcmp(cg->dir1[p], cg->dir1[c]) == 0)
				dup = true;
		if (dup)
			continue;
		int r = cdn_write_once_at(cg->fd1[c], "cgroup.procs", v);
		if (r < 0)
			return cdn_err_set(err, -r, "cgroup v1: join %s", cg->dir1[c]);
	}
	return 0;
}

void sb_cgroup_stats(struct sb_cgroup *cg, uint64_t *mem_peak, uint64_t *cpu_ns, bool *oom)
{
	uint64_t v;
	if (!cg)
		return;
	if (cg->version == 2) {
		if (read_u64_at(cg->fd2, "memory.peak", &v))
			*mem_peak = v;
		if (read_key_at(cg->fd2, "cpu.stat", "usage_usec", &v))
			*cpu_ns = v * 1000;
		if (read_key_at(cg->fd2, "memory.events", "oom_kill", &v) && v > 0)
			*oom = true;
		if (read_key_at(cg->fd2, "memory.events", "oom_group_kill", &v) && v > 0)
			*oom = true;
	} else if (cg->version == 1) {
		if (cg->fd1[V1_MEMORY] >= 0) {
			if (read_u64_at(cg->fd1[V1_MEMORY], "memory.max_usage_in_bytes", &v))
				*mem_peak = v;
			if (read_key_at(cg->fd1[V1_MEMORY], "memory.oom_control", "oom_kill", &v) &&
			    v > 0)
				*oom = true;
		}
		if (cg->fd1[V1_CPUACCT] >= 0 && read_u64_at(cg->fd1[V1_CPUACCT], "cpuacct.usage", &v))
			*cpu_ns = v;
	}
}

static bool kill_listed(int dirfd)
{
	char buf[8192];
	bool any = false;
	if (read_at(dirfd, "cgroup.procs", buf, sizeof(buf)) <= 0)
		return false;
	for (char *p = buf; *p;) {
		long pid = strtol(p, &p, 10);
		if (pid > 0) {
			(void)kill((pid_t)pid, SIGKILL);
			any = true;
		}
		while (*p == '\n')
			p++;
		if (*p && (*p < '0' || *p > '9'))
			break;
	}
	return any;
}

void sb_cgroup_kill(struct sb_cgroup *cg)
{
	if (!cg)
		return;
	if (cg->version == 2) {
		if (cdn_write_once_at(cg->fd2, "cgroup.kill", "1") < 0)
			kill_listed(cg->fd2);
	} else {
		for (int c = 0; c < V1_N; c++)
			if (cg->fd1[c] >= 0)
				kill_listed(cg->fd1[c]);
	}
}

static void rmdir_retry(const char *dir, int fd)
{
	/* A cgroup can be busy for a moment after its last task exits. */
	for (int i = 0; i < 200; i++) {
		if (rmdir(dir) == 0 || errno == ENOENT)
			return;
		if (errno != EBUSY)
			return;
		if (fd >= 0)
			kill_listed(fd);
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
}

void sb_cgroup_forget(struct sb_cgroup *cg)
{
	if (!cg)
		return;
	free(cg->dir2);
	if (cg->fd2 >= 0)
		close(cg->fd2);
	for (int c = 0; c < V1_N; c++) {
		free(cg->dir1[c]);
		if (cg->fd1[c] >= 0)
			close(cg->fd1[c]);
	}
	free(cg);
}

void sb_cgroup_destroy(struct sb_cgroup *cg)
{
	if (!cg)
		return;
	if (cg->version == 2 || cg->dir2) {
		if (cg->fd2 >= 0)
			sb_cgroup_kill(cg);
		if (cg->dir2)
			rmdir_retry(cg->dir2, cg->fd2);
	}
	for (int c = 0; c < V1_N; c++) {
		if (!cg->dir1[c])
			continue;
		bool dup = false;
		for (int p = 0; p < c; p++)
			if (cg->dir1[p] && strcmp(cg->dir1[p], cg->dir1[c]) == 0)
				dup = true;
		if (!dup)
			rmdir_retry(cg->dir1[c], cg->fd1[c]);
	}
	sb_cgroup_forget(cg);
}

size_t sb_cgroup_dirs(const struct sb_cgroup *cg, const char **dirs, size_t max)
{
	size_t n = 0;
	if (!cg)
		return 0;
	if (cg->dir2 && n < max)
		dirs[n++] = cg->dir2;
	for (int c = 0; c < V1_N && n < max; c++) {
		if (!cg->dir1[c])
			continue;
		bool dup = false;
		for (size_t p = 0; p < n; p++)
			if (strcmp(dirs[p], cg->dir1[c]) == 0)
				dup = true;
		if (!dup)
			dirs[n++] = cg->dir1[c];
	}
	return n;
}
