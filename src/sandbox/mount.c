/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sandbox's root filesystem.
 *
 * Parent side (sb_plan_mounts): turn the config into an ordered list of
 * steps with every string prepared.
 *
 * Child side (sb_child_open_sources, sb_child_build_root): with the new
 * mount API, clone every bind source into a detached mount first, then
 * create a fresh tmpfs root, resolve every target *inside* that root with
 * openat2(RESOLVE_IN_ROOT) and attach the clones by fd. A symlink planted
 * in a granted tree therefore resolves against the sandbox root and can
 * never steer a mount onto a host path (the class of bug behind
 * CVE-2019-5736-style and runc CVE-2021-30465 symlink-exchange attacks).
 * Finally pivot_root and detach the old root.
 *
 * The child side allocates nothing.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/file.h"
#include "base/openat2.h"
#include "sandbox/internal.h"

/* The new root is assembled on top of this directory (in the sandbox's
 * private mount namespace only), then becomes "/" by pivot_root. */
#define STAGING "/tmp"

#define ROOT_TMPFS_SIZE "4m"
#define ROOT_TMPFS_INODES "4096"
#define DEV_TMPFS_SIZE "256k"
#define TMPFS_MAX_INODES 262144

/* Small /etc files are copied into the root instead of bound: a bind costs
 * a mount at set-up and teardown, a copy one page of tmpfs. */
#define ETC_COPY_MAX (16 * 1024)

/* ---------------------------------------------------------------------------
 * Parent side: planning
 */

static int check_dst(const char *dst, struct cdn_err *err);

static struct sb_step *plan_add(struct sb_plan *plan, enum sb_step_kind kind, const char *dst,
				struct cdn_err *err)
{
	if (plan->n_steps >= SB_PLAN_MAX) {
		cdn_err_msg(err, E2BIG, "too many mounts (at most %d)", SB_PLAN_MAX);
		return NULL;
	}
	struct sb_step *s = &plan->steps[plan->n_steps];
	memset(s, 0, sizeof(*s));
	s->kind = kind;
	s->fd = -1;
	while (*dst == '/')
		dst++;
	s->dst = strdup(dst);
	if (!s->dst) {
		cdn_err_set(err, ENOMEM, "plan %s", dst);
		return NULL;
	}
	plan->n_steps++;
	return s;
}

static int plan_dir(struct sb_plan *plan, const char *dst, unsigned mode, struct cdn_err *err)
{
	struct sb_step *s = plan_add(plan, SB_STEP_DIR, dst, err);
	if (!s)
		return -ENOMEM;
	s->mode = mode;
	return 0;
}

static int plan_text(struct sb_plan *plan, enum sb_step_kind kind, const char *dst,
		     const char *text, unsigned mode, struct cdn_err *err)
{
	struct sb_step *s = plan_add(plan, kind, dst, err);
	if (!s)
		return -ENOMEM;
	s->mode = mode;
	s->text = strdup(text);
	if (!s->text)
		return cdn_err_set(err, ENOMEM, "plan %s", dst);
	s->text_len = strlen(text);
	return 0;
}

static int plan_bind(struct sb_plan *plan, const char *src, const char *dst, bool rw,
		     bool optional, bool dev, struct cdn_err *err)
{
	struct stat st;
	if (stat(src, &st) < 0) {
		if (optional && errno == ENOENT)
			return 0;
		return cdn_err_set(err, errno, "bind source %s", src);
	}
	struct sb_step *s = plan_add(plan, SB_STEP_BIND, dst, err);
	if (!s)
		return -ENOMEM;
	s->src = strdup(src);
	if (!s->src)
		return cdn_err_set(err, ENOMEM, "plan %s", src);
	s->rw = rw;
	s->optional = optional;
	s->dev = dev;
	s->is_dir = S_ISDIR(st.st_mode);
	return 0;
}

static int plan_tmpfs(struct sb_plan *plan, const char *dst, uint64_t size, unsigned mode,
		      bool owned, struct cdn_err *err)
{
	struct sb_step *s = plan_add(plan, SB_STEP_TMPFS, dst, err);
	if (!s)
		return -ENOMEM;
	s->size = size;
	s->mode = mode;
	s->owned = owned;
	return 0;
}

/* A file or directory for /workspace, created in the sandbox by its user.
 * Paths are checked like bind destinations: relative, no "." or "..". */
static int plan_workspace_file(struct sb_plan *plan, const struct sandbox_file *f,
			       struct cdn_err *err)
{
	char dst[SANDBOX_PATH_MAX];
	if (!f->path || !*f->path || f->path[0] == '/' ||
	    snprintf(dst, sizeof(dst), "/workspace/%s", f->path) >= (int)sizeof(dst))
		return cdn_err_msg(err, EINVAL, "workspace file '%s': bad path",
				   f->path ? f->path : "");
	int r = check_dst(dst, err);
	if (r < 0)
		return r;
	if (!f->data)
		return plan_dir(plan, dst, 0755, err);
	struct sb_step *s = plan_add(plan, SB_STEP_FILE, dst, err);
	if (!s)
		return -ENOMEM;
	s->mode = 0644;
	s->text = malloc(f->len + 1);
	if (!s->text)
		return cdn_err_set(err, ENOMEM, "workspace file %s", f->path);
	memcpy(s->text, f->data, f->len);
	s->text[f->len] = '\0';
	s->text_len = f->len;
	return 0;
}

/* Reproduce a host path in the new root: a symlink stays a symlink (the
 * merged-/usr links such as /bin -> usr/bin), anything else is bound
 * read-only. */
static int plan_replicate(struct sb_plan *plan, const char *host, bool optional,
			  struct cdn_err *err)
{
	struct stat st;
	if (lstat(host, &st) < 0) {
		if (optional && errno == ENOENT)
			return 0;
		return cdn_err_set(err, errno, "system path %s", host);
	}
	if (S_ISLNK(st.st_mode)) {
		char target[PATH_MAX];
		ssize_t n = readlink(host, target, sizeof(target) - 1);
		if (n < 0)
			return cdn_err_set(err, errno, "readlink %s", host);
		target[n] = '\0';
		return plan_text(plan, SB_STEP_SYMLINK, host, target, 0, err);
	}
	if (S_ISREG(st.st_mode) && st.st_size <= ETC_COPY_MAX && strncmp(host, "/etc/", 5) == 0) {
		_cleanup_close_ int fd = open(host, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		char buf[ETC_COPY_MAX + 1];
		ssize_t n = fd < 0 ? -1 : read(fd, buf, ETC_COPY_MAX);
		if (n >= 0) {
			buf[n] = '\0';
			if (memchr(buf, '\0', (size_t)n) == NULL)
				return plan_text(plan, SB_STEP_FILE, host, buf, 0644, err);
		}
		/* unreadable or binary: fall back to a bind */
	}
	return plan_bind(plan, host, host, false, optional, false, err);
}

/* Destinations must be absolute and normalised: no "." or ".." segments
 * and no empty segments, so the child never has to interpret them. */
static int check_dst(const char *dst, struct cdn_err *err)
{
	if (dst[0] != '/')
		return cdn_err_msg(err, EINVAL, "destination %s: must be an absolute path", dst);
	if (strlen(dst) >= SANDBOX_PATH_MAX)
		return cdn_err_set(err, ENAMETOOLONG, "destination %.64s...", dst);
	const char *p = dst;
	while (*p) {
		while (*p == '/')
			p++;
		const char *e = strchrnul(p, '/');
		size_t len = (size_t)(e - p);
		if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
			return cdn_err_msg(err, EINVAL,
					   "destination %s: '.' and '..' segments are not allowed",
					   dst);
		if (*e == '/' && e[1] == '/')
			return cdn_err_msg(err, EINVAL, "destination %s: empty path segment", dst);
		p = e;
	}
	if (strcmp(dst, "/") == 0)
		return cdn_err_msg(err, EINVAL, "destination /: cannot replace the root");
	return 0;
}

static const char *const system_paths[] = {
	"/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32",
};

/* Host /etc entries a normal program needs: the dynamic loader cache, TLS
 * roots, the Debian alternatives links, protocol and time data. Nothing
 * with accounts or credentials (passwd, shadow, ssh, sudoers). */
static const char *const etc_paths[] = {
	"/etc/ld.so.cache", "/etc/alternatives", "/etc/ssl",	  "/etc/ca-certificates",
	"/etc/localtime",   "/etc/timezone",	 "/etc/protocols", "/etc/services",
	"/etc/mime.types",  "/etc/host.conf",	 "/etc/gai.conf",  "/etc/os-release",
	"/etc/debian_version",
};


/* procfs entries that leak host information or offer kernel knobs. Files
 * are hidden behind /dev/null, directories behind an empty read-only
 * tmpfs (the set Docker and Podman mask, plus a few more). */
static const char *const proc_mask_files[] = {
	"proc/kcore",	    "proc/keys",	  "proc/key-users", "proc/timer_list",
	"proc/sched_debug", "proc/latency_stats", "proc/kallsyms",  "proc/config.gz",
	"proc/iomem",	    "proc/ioports",	  "proc/modules",   "proc/mtrr",
	"proc/sysrq-trigger",
};
/* Not masked, because the sandbox uid is never host root and the kernel
 * keeps these 0400/0200 root-only: kmsg, kpage*, slabinfo, vmallocinfo
 * (tests/attacks/proc_mask checks they stay unreadable). */
static const char *const proc_mask_dirs[] = {
	"proc/acpi", "proc/scsi", "proc/asound", "proc/bus", "proc/driver", "proc/irq", "proc/tty",
};
static const char *const proc_readonly[] = { "proc/sys", "proc/fs" };

static const char *const dev_nodes[] = { "null", "zero", "full", "random", "urandom" };

#define CA_BUNDLE "/etc/ssl/certs/ca-certificates.crt"
#define CA_BUNDLE_MAX (4 << 20)

/* TLS inspection's run CA: /etc/cordon/ca.pem, and a bundle of the host's
 * roots plus it laid over the system bundle, so every TLS library in the
 * sandbox trusts it without configuration. */
static int plan_ca(struct sb_plan *plan, const char *pem, struct cdn_err *err)
{
	int r = plan_text(plan, SB_STEP_FILE, "/etc/cordon/ca.pem", pem, 0644, err);
	if (r < 0)
		return r;
	_cleanup_close_ int fd = open(CA_BUNDLE, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : cdn_err_set(err, errno, "read %s", CA_BUNDLE);
	struct stat st;
	if (fstat(fd, &st) < 0 || st.st_size > CA_BUNDLE_MAX)
		return cdn_err_msg(err, EFBIG, "read %s", CA_BUNDLE);
	size_t pl = strlen(pem);
	_cleanup_free_ char *buf = malloc((size_t)st.st_size + pl + 2);
	if (!buf)
		return cdn_err_set(err, ENOMEM, "CA bundle");
	ssize_t n = read(fd, buf, (size_t)st.st_size);
	if (n < 0)
		return cdn_err_set(err, errno, "read %s", CA_BUNDLE);
	size_t len = (size_t)n;
	if (len && buf[len - 1] != '\n')
		buf[len++] = '\n';
	memcpy(buf + len, pem, pl + 1);
	if ((r = plan_text(plan, SB_STEP_FILE, "/etc/cordon/ca-certificates.crt", buf, 0644,
			   err)) < 0)
		return r;
	struct sb_step *s = plan_add(plan, SB_STEP_OVERLAY, CA_BUNDLE, err);
	if (!s)
		return -ENOMEM;
	s->src = strdup("etc/cordon/ca-certificates.crt");
	return s->src ? 0 : cdn_err_set(err, ENOMEM, "CA bundle");
}

static int plan_etc(struct sb_plan *plan, const struct sandbox_config *cfg, struct cdn_err *err)
{
	char buf[1024];
	const char *host = cfg->hostname ? cfg->hostname : "cordon";
	const char *user = cfg->uid == 0 ? "root" : "agent";
	const char *group = cfg->gid == 0 ? "root" : "agent";
	int r;

	if ((r = plan_dir(plan, "/etc", 0755, err)) < 0)
		return r;
	snprintf(buf, sizeof(buf),
		 "%s:x:%u:%u:cordon sandbox:/workspace:/bin/sh\n"
		 "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
		 user, (unsigned)cfg->uid, (unsigned)cfg->gid);
	if ((r = plan_text(plan, SB_STEP_FILE, "/etc/passwd", buf, 0644, err)) < 0)
		return r;
	snprintf(buf, sizeof(buf), "%s:x:%u:\nnogroup:x:65534:\n", group, (unsigned)cfg->gid);
	if ((r = plan_text(plan, SB_STEP_FILE, "/etc/group", buf, 0644, err)) < 0)
		return r;
	snprintf(buf, sizeof(buf), "127.0.0.1\tlocalhost %s\n::1\tlocalhost ip6-localhost\n", host);
	if ((r = plan_text(plan, SB_STEP_FILE, "/etc/hosts", buf, 0644, err)) < 0)
		return r;
	snprintf(buf, sizeof(buf), "%s\n", host);
	if ((r = plan_text(plan, SB_STEP_FILE, "/etc/hostname", buf, 0644, err)) < 0)
		return r;
	/* DNS goes to the sandbox's own loopback: the egress DNS filter in
	 * proxy mode, nothing at all (a fast failure) otherwise. */
	if ((r = plan_text(plan, SB_STEP_FILE, "/etc/resolv.conf",
			   "nameserver 127.0.0.1\noptions timeout:2 attempts:2\n", 0644, err)) < 0)
		return r;
	if ((r = plan_text(plan, SB_STEP_FILE, "/etc/nsswitch.conf",
			   "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n"
			   "networks: files\nprotocols: files\nservices: files\n",
			   0644, err)) < 0)
		return r;
	for (size_t i = 0; i < CDN_ARRAY_SIZE(etc_paths); i++)
		if ((r = plan_replicate(plan, etc_paths[i], true, err)) < 0)
			return r;
	if (cfg->ca_pem)
		return plan_ca(plan, cfg->ca_pem, err);
	return 0;
}

static int plan_proc(struct sb_plan *plan, struct cdn_err *err)
{
	if (!plan_add(plan, SB_STEP_PROC, "/proc", err))
		return -ENOMEM;
	/* The sandbox's procfs shows what the host's does: skip what this
	 * kernel does not have, so the child spends no mount on it. */
	struct stat st;
	char host[64];
	for (size_t i = 0; i < CDN_ARRAY_SIZE(proc_mask_files); i++) {
		snprintf(host, sizeof(host), "/%s", proc_mask_files[i]);
		if (lstat(host, &st) < 0 && errno == ENOENT)
			continue;
		struct sb_step *s = plan_add(plan, SB_STEP_MASK, proc_mask_files[i], err);
		if (!s)
			return -ENOMEM;
	}
	for (size_t i = 0; i < CDN_ARRAY_SIZE(proc_mask_dirs); i++) {
		snprintf(host, sizeof(host), "/%s", proc_mask_dirs[i]);
		if (lstat(host, &st) < 0 && errno == ENOENT)
			continue;
		struct sb_step *s = plan_add(plan, SB_STEP_MASK, proc_mask_dirs[i], err);
		if (!s)
			return -ENOMEM;
		s->is_dir = true;
	}
	for (size_t i = 0; i < CDN_ARRAY_SIZE(proc_readonly); i++)
		if (!plan_add(plan, SB_STEP_READONLY, proc_readonly[i], err))
			return -ENOMEM;
	return 0;
}

static int plan_dev(struct sb_plan *plan, const struct sandbox_config *cfg, struct cdn_err *err)
{
	int r;
	char src[64], dst[64];

	if ((r = plan_tmpfs(plan, "/dev", 0, 0755, false, err)) < 0)
		return r;
	for (size_t i = 0; i < CDN_ARRAY_SIZE(dev_nodes); i++) {
		snprintf(src, sizeof(src), "/dev/%s", dev_nodes[i]);
		snprintf(dst, sizeof(dst), "/dev/%s", dev_nodes[i]);
		if ((r = plan_bind(plan, src, dst, true, false, true, err)) < 0)
			return r;
	}
	static const char *const links[][2] = {
		{ "/dev/fd", "/proc/self/fd" },	       { "/dev/stdin", "/proc/self/fd/0" },
		{ "/dev/stdout", "/proc/self/fd/1" }, { "/dev/stderr", "/proc/self/fd/2" },
		{ "/dev/ptmx", "pts/ptmx" },
	};
	for (size_t i = 0; i < CDN_ARRAY_SIZE(links); i++)
		if ((r = plan_text(plan, SB_STEP_SYMLINK, links[i][0], links[i][1], 0, err)) < 0)
			return r;
	if (!plan_add(plan, SB_STEP_DEVPTS, "/dev/pts", err))
		return -ENOMEM;
	if ((r = plan_tmpfs(plan, "/dev/shm", cfg->limits.tmp_bytes, 01777, false, err)) < 0)
		return r;
	/* /dev itself is read-only once populated; its nodes, pts and shm
	 * are mounts of their own. */
	return plan_add(plan, SB_STEP_SEAL, "/dev", err) ? 0 : -ENOMEM;
}

int sb_plan_mounts(struct sb_plan *plan, const struct sandbox_config *cfg, struct cdn_err *err)
{
	int r;

	for (size_t i = 0; i < CDN_ARRAY_SIZE(system_paths); i++)
		if ((r = plan_replicate(plan, system_paths[i], i > 0, err)) < 0)
			return r;
	if ((r = plan_etc(plan, cfg, err)) < 0)
		return r;
	if ((r = plan_proc(plan, err)) < 0)
		return r;
	if ((r = plan_dev(plan, cfg, err)) < 0)
		return r;
	if ((r = plan_tmpfs(plan, "/tmp", cfg->limits.tmp_bytes, 01777, false, err)) < 0)
		return r;
	if (cfg->workspace_dir)
		r = plan_bind(plan, cfg->workspace_dir, "/workspace", true, false, false, err);
	else
		r = plan_tmpfs(plan, "/workspace", cfg->limits.workspace_bytes, 0755, true, err);
	if (r < 0)
		return cdn_err_wrap(err, "workspace");
	for (size_t i = 0; i < cfg->n_files; i++)
		if ((r = plan_workspace_file(plan, &cfg->files[i], err)) < 0)
			return r;
	if (cfg->steps_channel) {
		struct sb_step *s = plan_add(plan, SB_STEP_FIFO, SANDBOX_STEPS_PATH, err);
		if (!s)
			return -ENOMEM;
		s->mode = 0600;
	}

	for (size_t i = 0; i < cfg->n_binds; i++) {
		const struct sandbox_bind *b = &cfg->binds[i];
		if ((r = check_dst(b->dst, err)) < 0)
			return r;
		if ((r = plan_bind(plan, b->src, b->dst, b->rw, false, false, err)) < 0)
			return r;
	}
	return 0;
}

/* ---------------------------------------------------------------------------
 * Child side: no allocation from here on.
 */

static int sys_mount_setattr(int dfd, const char *path, unsigned flags, uint64_t set,
			     uint64_t clr)
{
	struct mount_attr attr = { .attr_set = set, .attr_clr = clr };
	return (int)syscall(SYS_mount_setattr, dfd, path, flags, &attr, sizeof(attr));
}

#define IN_ROOT (RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)

/*
 * Open `rel` (relative, normalised) inside the root as O_PATH. When
 * `create` is set, missing directories are created on the way and a
 * missing last component becomes a directory (want_dir) or an empty file.
 * Every lookup is resolved with the root as "/", so symlinks on the way
 * stay inside it.
 */
static int open_in_root(int root, const char *rel, bool create, bool want_dir)
{
	char buf[SANDBOX_PATH_MAX];
	size_t len = strlen(rel);
	if (len >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	int fd = cdn_openat2(root, rel, O_PATH | O_CLOEXEC, 0, IN_ROOT);
	if (fd >= 0 || errno != ENOENT || !create)
		return fd;

	memcpy(buf, rel, len + 1);
	int parent = fcntl(root, F_DUPFD_CLOEXEC, 0);
	if (parent < 0)
		return -1;
	char *p = buf;
	for (;;) {
		char *slash = strchr(p, '/');
		bool last = slash == NULL;
		if (slash)
			*slash = '\0';
		int next = cdn_openat2(root, buf, O_PATH | O_CLOEXEC, 0, IN_ROOT);
		if (next < 0 && errno == ENOENT) {
			int r;
			if (!last || want_dir) {
				r = mkdirat(parent, p, 0755);
			} else {
				r = openat(parent, p,
					   O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC,
					   0644);
				if (r >= 0)
					close(r);
			}
			if (r < 0 && errno != EEXIST) {
				int e = errno;
				close(parent);
				errno = e;
				return -1;
			}
			next = cdn_openat2(root, buf, O_PATH | O_CLOEXEC, 0, IN_ROOT);
		}
		if (next < 0) {
			int e = errno;
			close(parent);
			errno = e;
			return -1;
		}
		close(parent);
		if (last)
			return next;
		parent = next;
		*slash = '/';
		p = slash + 1;
	}
}

/* Split "a/b/c" into an fd for "a/b" (created if needed) and "c". */
static int open_parent_in_root(int root, const char *rel, const char **base)
{
	char buf[SANDBOX_PATH_MAX];
	const char *slash = strrchr(rel, '/');
	if (!slash) {
		*base = rel;
		return fcntl(root, F_DUPFD_CLOEXEC, 0);
	}
	size_t n = (size_t)(slash - rel);
	if (n >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, rel, n);
	buf[n] = '\0';
	*base = slash + 1;
	return open_in_root(root, buf, true, true);
}

/* Generated files come in runs in one directory (/etc): keep its fd. */
static int cached_parent(struct sb_plan *plan, int root, const char *rel, const char **base)
{
	const char *slash = strrchr(rel, '/');
	size_t n = slash ? (size_t)(slash - rel) : 0;
	if (plan->parent_fd >= 0 && n == plan->parent_len &&
	    strncmp(rel, plan->parent_path, n) == 0) {
		*base = slash ? slash + 1 : rel;
		return plan->parent_fd;
	}
	if (plan->parent_fd >= 0)
		close(plan->parent_fd);
	plan->parent_fd = open_parent_in_root(root, rel, base);
	plan->parent_path = rel;
	plan->parent_len = n;
	return plan->parent_fd;
}

static int new_fs(const char *type, const char *const *opts, unsigned attrs)
{
	int fs = fsopen(type, FSOPEN_CLOEXEC);
	if (fs < 0)
		return -1;
	for (size_t i = 0; opts && opts[i]; i += 2) {
		int r = opts[i + 1] ? fsconfig(fs, FSCONFIG_SET_STRING, opts[i], opts[i + 1], 0)
				    : fsconfig(fs, FSCONFIG_SET_FLAG, opts[i], NULL, 0);
		if (r < 0) {
			int e = errno;
			close(fs);
			errno = e;
			return -1;
		}
	}
	if (fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) {
		int e = errno;
		close(fs);
		errno = e;
		return -1;
	}
	int mnt = fsmount(fs, FSMOUNT_CLOEXEC, attrs);
	int e = errno;
	close(fs);
	errno = e;
	return mnt;
}

static int attach(int mnt, int root, const char *dst, bool dir)
{
	int target = open_in_root(root, dst, true, dir);
	if (target < 0)
		return -1;
	int r = move_mount(mnt, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
	int e = errno;
	close(target);
	errno = e;
	return r;
}

int sb_child_open_sources(struct sb_plan *plan, struct sb_msg *fail)
{
	for (size_t i = 0; i < plan->n_steps; i++) {
		struct sb_step *s = &plan->steps[i];
		const char *src;
		if (s->kind == SB_STEP_BIND)
			src = s->src;
		else if (s->kind == SB_STEP_MASK && !s->is_dir)
			src = "/dev/null";
		else
			continue;
		s->fd = open_tree(AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
		if (s->fd < 0) {
			if (s->optional && errno == ENOENT)
				continue;
			return sb_fail(fail, errno, "clone bind source %s", src);
		}
		/* Everything is nosuid; device nodes are reachable only through
		 * the explicit /dev binds; only rw binds stay writable. */
		uint64_t set = MOUNT_ATTR_NOSUID;
		if (!s->dev)
			set |= MOUNT_ATTR_NODEV;
		if (!s->rw)
			set |= MOUNT_ATTR_RDONLY;
		if (s->kind == SB_STEP_MASK)
			set |= MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOEXEC;
		if (sys_mount_setattr(s->fd, "", AT_EMPTY_PATH | AT_RECURSIVE, set, 0) < 0)
			return sb_fail(fail, errno, "set attributes of bind %s", src);
	}
	return 0;
}

/* A mount step failed; errno says why. */
static int mount_failed(const struct sb_step *s, struct sb_msg *fail)
{
	return sb_fail(fail, errno, "mount /%s", s->dst);
}

static int do_step(struct sb_plan *plan, struct sb_step *s, int root, struct sb_msg *fail)
{
	char num[32], mode[16];
	const char *base;
	_cleanup_close_ int fd = -1;
	int r;

	/* A mount may cover the cached directory: look it up again. */
	if (s->kind != SB_STEP_FILE && plan->parent_fd >= 0) {
		close(plan->parent_fd);
		plan->parent_fd = -1;
	}

	switch (s->kind) {
	case SB_STEP_DIR:
		fd = open_in_root(root, s->dst, true, true);
		if (fd < 0)
			return sb_fail(fail, errno, "create /%s", s->dst);
		/* The mode of a mount point does not matter: the mount on top
		 * brings its own. */
		return 0;
	case SB_STEP_SYMLINK:
		fd = open_parent_in_root(root, s->dst, &base);
		if (fd < 0 || symlinkat(s->text, fd, base) < 0)
			return sb_fail(fail, errno, "symlink /%s", s->dst);
		return 0;
	case SB_STEP_FILE: {
		int dir = cached_parent(plan, root, s->dst, &base);
		if (dir < 0)
			return sb_fail(fail, errno, "create /%s", s->dst);
		fd = openat(dir, base, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC,
			    s->mode);
		if (fd < 0)
			return sb_fail(fail, errno, "create /%s", s->dst);
		if ((r = cdn_write_all(fd, s->text, s->text_len)) < 0)
			return sb_fail(fail, -r, "write /%s", s->dst);
		return 0;
	}
	case SB_STEP_TMPFS: {
		snprintf(mode, sizeof(mode), "%o", s->mode);
		const char *opts[16] = { "mode", mode };
		size_t n = 2;
		char inodes[32], uid[16], gid[16];
		if (s->size) {
			snprintf(num, sizeof(num), "%llu", (unsigned long long)s->size);
			opts[n++] = "size";
			opts[n++] = num;
			uint64_t ino = s->size / 4096;
			if (ino < 1024)
				ino = 1024;
			if (ino > TMPFS_MAX_INODES)
				ino = TMPFS_MAX_INODES;
			snprintf(inodes, sizeof(inodes), "%llu", (unsigned long long)ino);
			opts[n++] = "nr_inodes";
			opts[n++] = inodes;
		} else {
			opts[n++] = "size";
			opts[n++] = DEV_TMPFS_SIZE;
		}
		if (s->owned) {
			snprintf(uid, sizeof(uid), "%u", (unsigned)plan->uid);
			snprintf(gid, sizeof(gid), "%u", (unsigned)plan->gid);
			opts[n++] = "uid";
			opts[n++] = uid;
			opts[n++] = "gid";
			opts[n++] = gid;
		}
		opts[n] = NULL;
		unsigned attrs = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
		if (!s->size) /* /dev itself: nothing executes from there */
			attrs |= MOUNT_ATTR_NOEXEC;
		fd = new_fs("tmpfs", opts, attrs);
		if (fd < 0 || attach(fd, root, s->dst, true) < 0)
			return mount_failed(s, fail);
		return 0;
	}
	case SB_STEP_PROC:
		fd = new_fs("proc", NULL, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
		if (fd < 0 || attach(fd, root, s->dst, true) < 0)
			return mount_failed(s, fail);
		return 0;
	case SB_STEP_DEVPTS: {
		static const char *const opts[] = { "newinstance", NULL, "ptmxmode", "0666",
						     "mode", "0620", NULL };
		fd = new_fs("devpts", opts, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC);
		if (fd < 0 || attach(fd, root, s->dst, true) < 0)
			return mount_failed(s, fail);
		return 0;
	}
	case SB_STEP_BIND:
		if (s->fd < 0) /* optional and missing */
			return 0;
		if (attach(s->fd, root, s->dst, s->is_dir) < 0)
			return sb_fail(fail, errno, "bind %s on /%s", s->src, s->dst);
		close(s->fd);
		s->fd = -1;
		return 0;
	case SB_STEP_MASK: {
		_cleanup_close_ int target =
		    cdn_openat2(root, s->dst, O_PATH | O_CLOEXEC, 0, IN_ROOT | RESOLVE_NO_SYMLINKS);
		if (target < 0) {
			if (errno == ENOENT)
				return 0; /* the kernel does not have it */
			return sb_fail(fail, errno, "mask /%s", s->dst);
		}
		if (s->is_dir && plan->mask_dir_fd >= 0) {
			/* Every masked directory shares one empty tmpfs. */
			fd = open_tree(plan->mask_dir_fd, "",
				       OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
		} else if (s->is_dir) {
			static const char *const opts[] = { "size", "0", "mode", "0555", NULL };
			fd = new_fs("tmpfs", opts,
				    MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
					    MOUNT_ATTR_NOEXEC);
		} else {
			fd = s->fd;
			s->fd = -1;
		}
		r = fd < 0 ? -1 :
			     move_mount(fd, "", target, "",
					MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
		if (r < 0)
			return mount_failed(s, fail);
		if (s->is_dir && plan->mask_dir_fd < 0)
			plan->mask_dir_fd = cdn_openat2(root, s->dst, O_PATH | O_CLOEXEC, 0,
							IN_ROOT | RESOLVE_NO_SYMLINKS);
		return 0;
	}
	case SB_STEP_READONLY: {
		_cleanup_close_ int target =
		    cdn_openat2(root, s->dst, O_PATH | O_CLOEXEC, 0, IN_ROOT | RESOLVE_NO_SYMLINKS);
		if (target < 0)
			return errno == ENOENT ? 0 : sb_fail(fail, errno, "read-only /%s", s->dst);
		fd = open_tree(target, "",
			       OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_EMPTY_PATH);
		r = -1;
		if (fd >= 0 &&
		    sys_mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE,
				      MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
					      MOUNT_ATTR_NOEXEC,
				      0) == 0)
			r = move_mount(fd, "", target, "",
				       MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
		if (r < 0)
			return mount_failed(s, fail);
		return 0;
	}
	case SB_STEP_OVERLAY: {
		{
			_cleanup_close_ int src = cdn_openat2(root, s->src, O_PATH | O_CLOEXEC, 0,
							      IN_ROOT | RESOLVE_NO_SYMLINKS);
			if (src < 0)
				return sb_fail(fail, errno, "overlay source /%s", s->src);
			fd =
			    open_tree(src, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
		}
		if (fd < 0 || sys_mount_setattr(fd, "", AT_EMPTY_PATH, MOUNT_ATTR_RDONLY |
						MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, 0) < 0)
			return mount_failed(s, fail);
		_cleanup_close_ int target =
		    cdn_openat2(root, s->dst, O_PATH | O_CLOEXEC, 0, IN_ROOT);
		if (target < 0 || move_mount(fd, "", target, "",
					     MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
			return mount_failed(s, fail);
		return 0;
	}
	case SB_STEP_FIFO: {
		_cleanup_close_ int dir = open_parent_in_root(root, s->dst, &base);
		if (dir < 0)
			return sb_fail(fail, errno, "create /%s", s->dst);
		if (mknodat(dir, base, S_IFIFO | s->mode, 0) < 0)
			return sb_fail(fail, errno, "create the pipe /%s", s->dst);
		return 0;
	}
	case SB_STEP_SEAL: {
		_cleanup_close_ int target =
		    cdn_openat2(root, s->dst, O_PATH | O_CLOEXEC, 0, IN_ROOT | RESOLVE_NO_SYMLINKS);
		if (target < 0)
			return sb_fail(fail, errno, "seal /%s", s->dst);
		if (sys_mount_setattr(target, "", AT_EMPTY_PATH, MOUNT_ATTR_RDONLY, 0) < 0)
			return mount_failed(s, fail);
		return 0;
	}
	}
	errno = EINVAL;
	return mount_failed(s, fail);
}

int sb_child_build_root(struct sb_plan *plan, struct sb_msg *fail)
{
	/* Nothing we mount may propagate back to the host. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return sb_fail(fail, errno, "make mounts private");

	static const char *const root_opts[] = { "mode",      "0755", "size", ROOT_TMPFS_SIZE,
						 "nr_inodes", ROOT_TMPFS_INODES, NULL };
	int mnt = new_fs("tmpfs", root_opts, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
	if (mnt < 0)
		return sb_fail(fail, errno, "create root tmpfs");
	if (move_mount(mnt, "", AT_FDCWD, STAGING, MOVE_MOUNT_F_EMPTY_PATH) < 0) {
		int r = sb_fail(fail, errno, "attach root tmpfs");
		close(mnt);
		return r;
	}
	close(mnt);
	int root = open(STAGING, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		return sb_fail(fail, errno, "open new root");
	plan->mask_dir_fd = -1;
	plan->parent_fd = -1;

	for (size_t i = 0; i < plan->n_steps; i++) {
		int r = do_step(plan, &plan->steps[i], root, fail);
		if (r < 0) {
			close(root);
			return r;
		}
	}
	if (plan->mask_dir_fd >= 0)
		close(plan->mask_dir_fd);
	if (plan->parent_fd >= 0)
		close(plan->parent_fd);

	/* The root itself (and so /etc) is read-only from here on. */
	if (sys_mount_setattr(root, "", AT_EMPTY_PATH, MOUNT_ATTR_RDONLY, 0) < 0) {
		int r = sb_fail(fail, errno, "make root read-only");
		close(root);
		return r;
	}
	if (fchdir(root) < 0) {
		int r = sb_fail(fail, errno, "enter new root");
		close(root);
		return r;
	}
	close(root);
	/* pivot_root(".", ".") stacks the old root on top of the new one;
	 * detaching it leaves no path back to the host tree. */
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		return sb_fail(fail, errno, "pivot_root");
	if (umount2(".", MNT_DETACH) < 0)
		return sb_fail(fail, errno, "detach old root");
	if (chdir("/") < 0)
		return sb_fail(fail, errno, "chdir /");
	return 0;
}
