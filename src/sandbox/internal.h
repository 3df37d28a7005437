/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to src/sandbox/. The supervisor (parent) prepares everything the
 * sandbox child needs into a `struct sb_plan` before clone: paths, files,
 * environment, the compiled seccomp program, Landlock rules. The child then
 * works through it with plain syscalls and no allocation, which keeps it
 * safe to clone from a multi-threaded daemon.
 */
#ifndef CORDON_SANDBOX_INTERNAL_H
#define CORDON_SANDBOX_INTERNAL_H

#include <linux/filter.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "sandbox/sandbox.h"

#define SB_PLAN_MAX 192 /* mount plan steps */
#define SB_LL_MAX 96    /* Landlock rules */
#define SB_MSG_TEXT 384

#define SB_BPF_PROGS 2
struct sb_bpf {
	struct sock_filter *filter;
	unsigned short len;
};

enum sb_step_kind {
	SB_STEP_BIND,     /* clone of a host path (src) onto dst */
	SB_STEP_SYMLINK,  /* symlink dst -> text */
	SB_STEP_DIR,      /* directory dst */
	SB_STEP_FILE,     /* regular file dst with contents text */
	SB_STEP_TMPFS,    /* fresh tmpfs at dst */
	SB_STEP_PROC,     /* fresh procfs at dst */
	SB_STEP_DEVPTS,   /* fresh devpts at dst */
	SB_STEP_MASK,     /* hide dst (inside /proc) behind /dev/null or an empty ro tmpfs */
	SB_STEP_READONLY, /* rebind dst over itself read-only */
	SB_STEP_SEAL,     /* make the mount at dst read-only (not its submounts) */
	SB_STEP_OVERLAY,  /* bind src, a path in the new root, over dst */
	SB_STEP_FIFO,     /* a named pipe at dst, mode */
};

struct sb_step {
	enum sb_step_kind kind;
	char *src;  /* host path for BIND */
	char *dst;  /* path inside the new root, relative ("usr/bin") */
	char *text; /* symlink target or file contents */
	size_t text_len;
	bool rw;
	bool dev;      /* device nodes must stay usable (no nodev) */
	bool optional; /* skip silently when the source is missing */
	bool is_dir;   /* BIND: source is a directory; MASK: target is a directory */
	bool owned;    /* TMPFS: owned by the sandbox uid (workspace) */
	unsigned mode; /* DIR/FILE/TMPFS */
	uint64_t size; /* TMPFS bytes */
	int fd;        /* child: detached clone of src, -1 until opened */
};

struct sb_ll_rule {
	char *path; /* inside the sandbox, after pivot_root */
	uint64_t access;             /* LANDLOCK_ACCESS_FS_* */
};

struct sb_plan {
	/* Mount plan. */
	struct sb_step steps[SB_PLAN_MAX];
	size_t n_steps;
	int mask_dir_fd; /* child: the first masked /proc directory */
	int parent_fd;   /* child: cached directory of the last FILE step */
	const char *parent_path;
	size_t parent_len;

	/* Identity. */
	uid_t uid, gid;       /* inside */
	uid_t host_uid;       /* outside */
	gid_t host_gid;
	bool rootless;
	int last_cap;

	/* Process. */
	char *const *phases[SANDBOX_MAX_PHASES];
	size_t n_phases;
	char *envp[SANDBOX_MAX_ENV + 8]; /* NULL-terminated, owned */
	const char *path_env;            /* PATH value, for the exec search */
	char *cwd;
	char *hostname;
	int stdio[3];
	uint64_t nofile, fsize;

	/* Handed back with READY (SB_FD_* order). */
	bool keep_workspace;
	bool steps_channel;
	bool mcp_channel;
	char *phase_env[SANDBOX_MAX_PHASES]; /* owned; NULL: none */
	size_t n_envp;			     /* entries in envp */

	/* Network. */
	enum sandbox_net net;
	uint16_t local_ports[SANDBOX_MAX_LOCAL_PORTS];
	size_t n_local_ports;

	/* Landlock. */
	int landlock_abi;
	struct sb_ll_rule ll[SB_LL_MAX];
	size_t n_ll;

	/* Seccomp: the process-wide compiled programs. */
	struct sb_bpf bpf[SB_BPF_PROGS];

};

/* The fds a READY message may carry, in this order; msg.a has a bit for
 * each one present. */
enum {
	SB_FD_PROXY,
	SB_FD_DNS_UDP,
	SB_FD_DNS_TCP,
	SB_FD_WORKSPACE,
	SB_FD_STEPS,
	SB_FD_MCP,
	SB_FD_COUNT,
};

/* Messages on the supervisor <-> pid-1 SOCK_SEQPACKET channel. */
enum sb_msg_type {
	SB_MSG_GO = 1,       /* parent: ids mapped; build the root */
	SB_MSG_CGROUP,       /* parent: the cgroup is joined; finish */
	SB_MSG_READY,        /* child: sandbox built (+ fds, see SB_FD_*) */
	SB_MSG_SETUP_FAILED, /* child: a = errno, text = step */
	SB_MSG_EXEC_FAILED,  /* child: phase, a = errno, text = argv[0] */
	SB_MSG_PHASE_END,    /* child: phase, a = exit code, b = signal */
	SB_MSG_NEXT_PHASE,   /* parent: the phase end is handled; start the next */
};

struct sb_msg {
	uint32_t type;
	int32_t phase;
	int32_t a;
	int32_t b;
	char text[SB_MSG_TEXT];
};

/* mount.c */
int sb_plan_mounts(struct sb_plan *plan, const struct sandbox_config *cfg, struct cdn_err *err);
int sb_child_open_sources(struct sb_plan *plan, struct sb_msg *fail);
int sb_child_build_root(struct sb_plan *plan, struct sb_msg *fail);

/* seccomp.c */
int sb_seccomp_programs(struct sb_bpf progs[SB_BPF_PROGS], struct cdn_err *err);
/* seccomp_policy.c (build time and tests only): compile with libseccomp. */
int sb_seccomp_build(struct sb_bpf progs[SB_BPF_PROGS], struct cdn_err *err);
int sb_child_apply_seccomp(const struct sb_plan *plan);
/* The helper's allowlist (a run's network part), compiled the same way. */
void sb_seccomp_helper_program(struct sb_bpf *prog);
int sb_seccomp_build_helper(struct sb_bpf *prog, struct cdn_err *err);

/* bindaccess.c: 0 when the sandbox's user (host uid/gid) may use path as
 * bound (read, enter a directory, and write when rw); otherwise an error
 * naming `what` (the option), the path, the uid and the fix. */
int sb_check_bind_access(const char *path, bool rw, const char *what, uid_t uid, gid_t gid,
			 struct cdn_err *err);

/* sockscan.c: 0 when the tree at path holds no unix socket (bounded). */
int sb_check_no_sockets(const char *path, struct cdn_err *err);

/* landlock.c */
void sb_plan_landlock(struct sb_plan *plan, const struct sandbox_config *cfg);
int sb_child_apply_landlock(const struct sb_plan *plan, struct sb_msg *fail);
/* A ruleset that handles every filesystem right the ABI knows and grants
 * none, refuses TCP bind (ABI >= 4) and scopes signals and abstract unix
 * sockets (ABI >= 6): for a helper that needs no file at all. */
int sb_landlock_deny_all(int abi, struct sb_msg *fail);

/* caps.c */
int sb_last_cap(void);
int sb_child_drop_privileges(const struct sb_plan *plan, struct sb_msg *fail);
/* Securebits locked, bounding and ambient sets emptied, (supplementary
 * groups cleared,) ids set, every capability cleared and verified,
 * no_new_privs. */
int sb_drop_privileges(uid_t uid, gid_t gid, int last_cap, bool clear_groups,
		       struct sb_msg *fail);

/*
 * A warm sandbox's plan lives in an arena: a shared anonymous mapping made
 * before the clone, so the child sees at the same address what the
 * supervisor copies in once the run is known (warm.c). The child makes it
 * private before it reads it.
 */
struct sb_arena {
	size_t cap;	      /* bytes mapped, this header included */
	size_t used;	      /* bytes filled, this header included */
	struct sb_plan *plan; /* in the arena; NULL until filled */
};

/* plan.c */
int sb_plan_build(const struct sandbox_config *cfg, struct sb_plan **out,
		  struct sandbox_protections *prot, struct cdn_err *err);
void sb_plan_free(struct sb_plan *plan);
void sb_plan_freep(struct sb_plan **plan);
/* The ids inside and what they are on the host (rootless: the caller's). */
int sb_plan_ids(const struct sandbox_config *cfg, struct sb_plan *plan, struct cdn_err *err);
/* A copy of plan, with everything it points to, in arena (after its
 * header): -ENOSPC when it does not fit. */
int sb_plan_to_arena(const struct sb_plan *plan, struct sb_arena *arena);

/* The supervisor's handle (spawn.c, warm.c). */
struct sandbox {
	pid_t pid;
	int pidfd;
	int sync_fd;
	struct sb_cgroup *cg;
	uint32_t janitor_id;
	int fds[SB_FD_COUNT]; /* handed over by the child (SB_FD_*) */
	uid_t host_uid;
	gid_t host_gid;
	uint64_t start_ns;
	uint64_t deadline_ns; /* 0: none */
	bool timed_out;
	bool finished;
	bool msgs_eof; /* the child closed its end of sync_fd */
	bool setup_failed;
	size_t n_phases;
	struct cdn_err late_err; /* failure reported after READY (payload setup) */
	struct sandbox_status st;
	sandbox_phase_cb cb;
	void *cb_ctx;
	/* A warm sandbox (sandbox_warm_create): its arena until started, the
	 * ids it was made for, and whether it was started already. */
	struct sb_arena *arena;
	bool warm, started;
	struct sb_plan ids;
};

/* child.c */
int sb_child_main(struct sb_plan *plan, int sync_fd);
int sb_child_warm_main(struct sb_arena *arena, int sync_fd);

/* cgroup.c */
struct sb_cgroup;
int sb_cgroup_probe_version(void); /* 0 when none is usable */
/* all: join every controller mounted, whatever lim asks for (a warm
 * sandbox, whose limits are set later). */
int sb_cgroup_create(const struct sandbox_limits *lim, bool all, struct sb_cgroup **out,
		     struct cdn_err *err);
/* Writes lim's limits (the nonzero ones) into a cgroup no task of the
 * sandbox's payload has run in yet. */
int sb_cgroup_set_limits(struct sb_cgroup *cg, const struct sandbox_limits *lim,
			 struct cdn_err *err);
int sb_cgroup_version(const struct sb_cgroup *cg);
int sb_cgroup_clone_fd(const struct sb_cgroup *cg); /* v2 dir fd for CLONE_INTO_CGROUP, or -1 */
int sb_cgroup_attach(struct sb_cgroup *cg, pid_t pid, struct cdn_err *err);
void sb_cgroup_stats(struct sb_cgroup *cg, uint64_t *mem_peak, uint64_t *cpu_ns, bool *oom);
void sb_cgroup_kill(struct sb_cgroup *cg);
void sb_cgroup_destroy(struct sb_cgroup *cg); /* kills leftovers, removes, frees */
void sb_cgroup_forget(struct sb_cgroup *cg); /* frees memory only */
size_t sb_cgroup_dirs(const struct sb_cgroup *cg, const char **dirs, size_t max);

/* janitor.c: cleanup of sandboxes whose supervisor died. */
#define JANITOR_MAX_DIRS 5
#define JANITOR_DIR_MAX 512
int janitor_register(pid_t pid, const char *const *dirs, size_t n_dirs, uint32_t *id);
void janitor_unregister(uint32_t id);
int janitor_fd_for_child(void);

/* msg.c: helpers shared by the child-side files: record a setup failure. */
int sb_fail(struct sb_msg *fail, int errnum, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
