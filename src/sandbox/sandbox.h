/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sandbox: one throwaway Linux sandbox per call.
 *
 * sandbox_spawn() creates user, mount, pid, net, ipc, uts and cgroup
 * namespaces, builds a fresh root (tmpfs + read-only system binds + the
 * caller's binds), pivots into it, drops every privilege, applies Landlock
 * and, last, a seccomp allowlist, then executes the phases one after the
 * other under a small pid-1 reaper of ours. Limits go through a cgroup per
 * sandbox (v1 or v2) and rlimits.
 *
 * Every protection that cannot be applied refuses the sandbox unless the
 * caller lowered the requirement in `allow_degraded`; what was applied is
 * reported in `struct sandbox_protections`.
 *
 * Teardown (sandbox_free) leaves no process, mount, cgroup, fd or temporary
 * directory behind. If the calling process dies, the sandbox dies with it and
 * a janitor process removes its cgroup.
 *
 * This is the whole public API of src/sandbox/.
 */
#ifndef CORDON_SANDBOX_H
#define CORDON_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/err.h"

/* Bounds, named once. */
#define SANDBOX_MAX_BINDS 64
#define SANDBOX_MAX_ENV 256
#define SANDBOX_MAX_PHASES 4
#define SANDBOX_MAX_ARGS 1024
#define SANDBOX_PATH_MAX 1024
#define SANDBOX_MAX_LOCAL_PORTS 16
#define SANDBOX_MAX_FILES 16
#define SANDBOX_STEPS_PATH "/run/cordon/steps"

/* When cordon runs as root, inside uid U is host uid BASE + U
 * (CORDON_HOSTID_BASE overrides BASE): an unprivileged id that owns
 * nothing on the host. The ids just below BASE belong to run helpers
 * (sandbox_helper_ids). */
#define SANDBOX_HOSTID_BASE 1000000000u

/* Protections that an operator may explicitly allow to be missing. */
enum sandbox_protection {
	SANDBOX_PROT_LANDLOCK = 1u << 0,
	SANDBOX_PROT_CGROUP = 1u << 1,
	SANDBOX_PROT_SECCOMP = 1u << 2,
};

/*
 * The parts of Landlock, each from the kernel ABI that brought it. Older
 * kernels apply only some (Debian 12's 6.1: FS and FS_REFER); a sandbox
 * reports which, and what holds the line for the rest
 * (sandbox_protections_json, docs/exec.md).
 */
enum sandbox_landlock_part {
	SANDBOX_LL_FS = 1u << 0,           /* ABI 1: file system access rights */
	SANDBOX_LL_FS_REFER = 1u << 1,     /* ABI 2: renames and links across directories */
	SANDBOX_LL_FS_TRUNCATE = 1u << 2,  /* ABI 3 */
	SANDBOX_LL_NET_TCP = 1u << 3,      /* ABI 4: TCP bind and connect by port */
	SANDBOX_LL_FS_IOCTL_DEV = 1u << 4, /* ABI 5: ioctl on device files */
	SANDBOX_LL_SCOPE = 1u << 5,        /* ABI 6: signals, abstract unix sockets */
};

enum sandbox_net {
	SANDBOX_NET_NONE = 0, /* loopback only */
	SANDBOX_NET_PROXY,    /* loopback + egress sockets handed to the caller */
};

/* Fixed loopback ports of the egress sockets inside the sandbox. */
#define SANDBOX_PROXY_PORT 3128
#define SANDBOX_DNS_PORT 53
#define SANDBOX_MCP_PORT 3129 /* cordon's MCP endpoint for the agent, on loopback */

struct sandbox_bind {
	const char *src; /* host path */
	const char *dst; /* absolute path inside the sandbox */
	bool rw;
	/* The caller made the tree itself with files and directories only (a
	 * content-addressed snapshot): it is not searched for unix sockets. */
	bool no_special_files;
};

/* A file or directory laid into /workspace before the first phase. */
struct sandbox_file {
	const char *path; /* relative to /workspace, normalised ("input.json", "out") */
	const char *data; /* file contents; NULL for a directory */
	size_t len;
};

struct sandbox_limits {
	uint64_t mem_bytes;       /* 0: no memory limit */
	uint64_t pids;            /* 0: no pids limit */
	uint64_t cpu_millicores;  /* 0: no cpu quota; 1000 = one core */
	uint64_t timeout_ms;      /* 0: no wall-clock timeout */
	uint64_t tmp_bytes;       /* size of /tmp and /dev/shm tmpfs */
	uint64_t workspace_bytes; /* size of /workspace tmpfs (when no dir) */
	uint64_t nofile;          /* RLIMIT_NOFILE */
	uint64_t fsize_bytes;     /* RLIMIT_FSIZE; 0: unlimited */
};

struct sandbox_config {
	/* Phases run one after the other in the same sandbox; a phase that
	 * does not exit 0 ends the sandbox. Each argv is NULL-terminated. */
	char *const *phases[SANDBOX_MAX_PHASES];
	size_t n_phases;

	/* Extra "K=V" entries; PATH, HOME and LANG have sane defaults. */
	const char *env[SANDBOX_MAX_ENV];
	size_t n_env;

	struct sandbox_bind binds[SANDBOX_MAX_BINDS];
	size_t n_binds;

	const char *workspace_dir; /* NULL: a sized tmpfs at /workspace */
	/* Bound trees (binds, workspace_dir) that hold a unix socket are
	 * refused: from inside, a socket can be connected to whatever serves
	 * it on the host. true lets them through. */
	bool allow_sockets;
	const char *cwd;           /* inside; NULL: /workspace */
	const char *hostname;      /* NULL: "cordon" */

	uid_t uid; /* inside the sandbox */
	gid_t gid;

	enum sandbox_net net;
	/* Loopback TCP ports the sandbox may bind and connect to (Landlock
	 * refuses every other TCP bind and connect). */
	uint16_t local_ports[SANDBOX_MAX_LOCAL_PORTS];
	size_t n_local_ports;
	struct sandbox_limits limits;
	unsigned allow_degraded; /* enum sandbox_protection bits */

	/* Files and directories created in /workspace (owned by the sandbox
	 * user) before the first phase. */
	struct sandbox_file files[SANDBOX_MAX_FILES];
	size_t n_files;
	/* Hand the caller a directory fd of /workspace that stays readable
	 * after the sandbox is gone (sandbox_take_workspace_fd), so outputs
	 * are collected from a tree nothing can change any more. */
	bool keep_workspace;
	/* A FIFO at SANDBOX_STEPS_PATH the sandbox may write lines to; the
	 * caller reads them (sandbox_take_steps_fd). */
	bool steps_channel;
	/* A TCP listener on the sandbox's 127.0.0.1:SANDBOX_MCP_PORT, made in
	 * its network namespace and served from outside
	 * (sandbox_take_mcp_fd): the run's MCP endpoint. */
	bool mcp_channel;
	/* One extra "K=V" for a single phase (e.g. that phase's token). */
	const char *phase_env[SANDBOX_MAX_PHASES];

	/* An extra CA certificate (PEM) the sandbox trusts: the run CA of TLS
	 * inspection. Added to the system bundle at
	 * /etc/ssl/certs/ca-certificates.crt and pointed to by the usual
	 * SSL_CERT_FILE-style variables. NULL: none. */
	const char *ca_pem;

	/* stdio for the phases; -1 inherits the caller's. */
	int stdin_fd, stdout_fd, stderr_fd;
};

struct sandbox_protections {
	bool userns;
	bool seccomp;
	int landlock_abi;   /* 0: not applied */
	unsigned landlock_parts; /* enum sandbox_landlock_part bits applied */
	int cgroup_version; /* 0: not applied, 1 or 2 */
	bool rootless;
	uid_t host_uid; /* what the sandbox uid is on the host */
	unsigned degraded; /* enum sandbox_protection bits that were missing */
	bool warm;	   /* made ahead (sandbox_warm_create), then given its run */
};

struct sandbox_phase_status {
	bool started;
	int exit_code; /* valid when !signal */
	int signal;
};

struct sandbox_status {
	int exit_code; /* the cordon-style code: own, 128+N, 124, 137, 126/127 */
	int signal;    /* signal that ended the last phase, 0 if none */
	bool timed_out;
	bool oom_killed;
	int exec_errno; /* execve failure of a phase, 0 if none */
	int failed_phase;
	uint64_t wall_ms;
	uint64_t cpu_ms;
	uint64_t mem_peak_bytes;
	struct sandbox_phase_status phases[SANDBOX_MAX_PHASES];
	struct sandbox_protections prot;
};

struct sandbox;

/* Fills a config with the defaults (offline profile limits, uid 1000). */
void sandbox_config_init(struct sandbox_config *cfg);

/* Adds a bind; fails on overflow or a relative destination. */
int sandbox_config_add_bind(struct sandbox_config *cfg, const char *src, const char *dst,
			    bool rw, struct cdn_err *err);

/* Adds an environment entry "K=V"; fails on overflow or bad syntax. */
int sandbox_config_add_env(struct sandbox_config *cfg, const char *kv, struct cdn_err *err);
/* name[0..len) is a variable name the sandbox's environment takes:
 * [A-Za-z_][A-Za-z0-9_]* (POSIX's portable names). Envs and secrets,
 * which become such variables, add their own bounds to it. */
bool sandbox_env_name_ok(const char *name, size_t len);

/* Parses "landlock", "cgroup", "seccomp" (comma-separated) into bits. */
int sandbox_parse_degraded(const char *list, unsigned *bits, struct cdn_err *err);

/* The Landlock ABI sandboxes use: the running kernel's, lowered to
 * $CORDON_LANDLOCK_ABI_MAX when set (to test older kernels' behaviour on a
 * new one); 0 when Landlock is unavailable. */
int sandbox_landlock_abi(void);

/* The Landlock parts (enum sandbox_landlock_part) an ABI applies. */
unsigned sandbox_landlock_parts_of_abi(int abi);

/*
 * Creates the sandbox and starts its first phase. On failure nothing is
 * left behind and err names the step that failed ("mount /proc: EPERM").
 * The returned handle must be released with sandbox_free().
 */
int sandbox_spawn(const struct sandbox_config *cfg, struct sandbox **out, struct cdn_err *err);

/*
 * Warm sandboxes: the half of a start that does not depend on the run,
 * done before the run is known. sandbox_warm_create clones the namespaces,
 * maps the ids (shape's uid and gid), creates and joins a cgroup with
 * every controller and no limit, and registers the janitor; the child then
 * waits, holding nothing but its channel to us. sandbox_warm_start gives it
 * its run: the plan sandbox_spawn would build from cfg (copied into a
 * memory region the child makes private before it reads it), the limits,
 * written before anything of the run executes, and the stdio; the setup
 * then goes on exactly as a cold sandbox's. A warm sandbox is started at
 * most once; sandbox_free releases one started or not.
 * With CORDON_SANDBOX_WARM=1 in the environment, sandbox_spawn makes every
 * sandbox this way (the test suites' second pass).
 */
int sandbox_warm_create(const struct sandbox_config *shape, struct sandbox **out,
			struct cdn_err *err);
int sandbox_warm_start(struct sandbox *sb, const struct sandbox_config *cfg, struct cdn_err *err);
/* The sandbox for cfg: *warm when there is one (taken: *warm is NULL
 * after), else a cold one. A warm sandbox that cannot take this run
 * before its setup began (other ids, a plan too large) is dropped and a
 * cold one made instead. */
int sandbox_start(struct sandbox **warm, const struct sandbox_config *cfg, struct sandbox **out,
		  struct cdn_err *err);

/*
 * The egress sockets created inside the sandbox's network namespace
 * (SANDBOX_NET_PROXY only): a listening TCP socket on 127.0.0.1:3128,
 * a UDP and a listening TCP socket on 127.0.0.1:53. Ownership passes to
 * the caller; each is -1 when absent.
 */
void sandbox_take_egress_fds(struct sandbox *sb, int *proxy_tcp, int *dns_udp, int *dns_tcp);

/* The fds asked for with keep_workspace and steps_channel; ownership
 * passes to the caller; -1 when absent. */
int sandbox_take_workspace_fd(struct sandbox *sb);
int sandbox_take_steps_fd(struct sandbox *sb);
int sandbox_take_mcp_fd(struct sandbox *sb);

/* The protections this sandbox has (also in its final status). */
const struct sandbox_protections *sandbox_protections(const struct sandbox *sb);

/* The same before a sandbox exists, for cfg's uid and gid: a directory
 * handed to it as its workspace must be that uid's (src/run/deps.c). */
int sandbox_config_host_ids(const struct sandbox_config *cfg, uid_t *uid, gid_t *gid,
			    struct cdn_err *err);
/* The host uid and gid the sandbox user has (to hand it files). */
void sandbox_host_ids(const struct sandbox *sb, uid_t *uid, gid_t *gid);

/* An fd that becomes readable when the sandbox has news (a phase ended or
 * the sandbox exited); then call sandbox_poll(). */
int sandbox_event_fd(const struct sandbox *sb);
/* An fd that becomes readable when a phase ends (then call sandbox_poll()
 * to get the phase callback at once); -1 once it has nothing more to say. */
int sandbox_msg_fd(const struct sandbox *sb);

/* Called for each phase as it ends; set before the phase ends. */
typedef void (*sandbox_phase_cb)(void *ctx, int phase, const struct sandbox_phase_status *st);
void sandbox_set_phase_cb(struct sandbox *sb, sandbox_phase_cb cb, void *ctx);

/*
 * Processes pending news without blocking. Returns 1 when the sandbox has
 * finished (status filled in), 0 while it runs, negative on error.
 */
int sandbox_poll(struct sandbox *sb, struct sandbox_status *st, struct cdn_err *err);

/* Milliseconds until the wall-clock timeout fires, -1 if none. */
int sandbox_timeout_remaining_ms(const struct sandbox *sb);

/*
 * Blocks until the sandbox finishes, enforcing the timeout and forwarding
 * SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 to the sandbox.
 */
int sandbox_wait(struct sandbox *sb, struct sandbox_status *st, struct cdn_err *err);

/*
 * sandbox_wait, also copying data from each relay's `from` fd (the read end
 * of a pipe whose write end the sandbox holds) to its `to` fd until EOF.
 * The supervisor uses it when the caller's stdout is a file the sandbox uid
 * could not reopen through /dev/stdout.
 */
struct sandbox_relay {
	int from;
	int to;
};
int sandbox_wait_relay(struct sandbox *sb, struct sandbox_relay *relays, size_t n,
		       struct sandbox_status *st, struct cdn_err *err);

/* Sends a signal to the sandbox's payload (pid-1 forwards it). */
int sandbox_signal(struct sandbox *sb, int sig);

/* Kills the whole sandbox now; `timed_out` marks the reason. */
void sandbox_kill(struct sandbox *sb, bool timed_out);

/* Host pid of the sandbox's pid 1 (for diagnostics). */
pid_t sandbox_pid(const struct sandbox *sb);

/* Kills what is left and tears everything down. NULL is a no-op. */
void sandbox_free(struct sandbox *sb);

/* Profiles (docs/profiles.md). */
enum sandbox_repo_mode { SANDBOX_REPO_NONE, SANDBOX_REPO_RO, SANDBOX_REPO_RW };

struct sandbox_profile {
	const char *name;
	const char *summary;
	enum sandbox_net net;
	enum sandbox_repo_mode repo;
};

/* NULL when unknown. */
const struct sandbox_profile *sandbox_profile_find(const char *name);
/* Iterates the table; NULL past the end. */
const struct sandbox_profile *sandbox_profile_at(size_t i);
/* Sets the network mode and mounts repo_dir (read-only or read-write) at
 * /repo, which becomes the working directory. */
int sandbox_apply_profile(struct sandbox_config *cfg, const struct sandbox_profile *p,
			  const char *repo_dir, struct cdn_err *err);

/*
 * Confines the calling process for good: a helper of ours that parses
 * bytes a sandbox controls (a run's network part, src/run/netpart.h), but
 * needs the host's network, so it cannot live in a sandbox. As root it
 * takes ids uid/gid (sandbox_helper_ids) and no supplementary groups; as
 * anyone it ends with no capabilities in any set, locked securebits,
 * no_new_privs, not dumpable, Landlock granting no filesystem access and
 * no TCP bind (and, ABI >= 6, no signals or abstract sockets outside its
 * domain), and last the helper's seccomp allowlist. A layer it cannot
 * apply fails it unless allowed in allow_degraded (landlock, seccomp).
 */
struct sandbox_confinement {
	uid_t uid;
	gid_t gid;
	bool no_new_privs;
	bool seccomp;
	int landlock_abi; /* 0: not applied */
};
int sandbox_confine_helper(uid_t uid, gid_t gid, unsigned allow_degraded,
			   struct sandbox_confinement *out, struct cdn_err *err);

/* A run helper's host ids as root: its own, from the supervisor's pid,
 * just below the sandboxes' BASE. */
int sandbox_helper_ids(pid_t supervisor, uid_t *uid, gid_t *gid, struct cdn_err *err);

/* Human names of the protection bits, for status output. */
const char *sandbox_protection_name(enum sandbox_protection p);

/*
 * The protections as JSON (a new jansson object; NULL on allocation
 * failure): the one form shared by `cordon exec --status-json`, a run's
 * result.json and its sandbox.ready event. Landlock is reported part by
 * part: "landlock": {"abi", "applied": [...], "missing": {part: what still
 * holds}}.
 */
struct json_t;
struct json_t *sandbox_protections_json(const struct sandbox_protections *p);

#endif
