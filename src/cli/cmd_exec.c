/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cordon exec [OPTIONS] -- CMD [ARGS...]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <fcntl.h>

#include "base/cleanup.h"
#include "base/random.h"
#include "base/units.h"
#include "cli/cli.h"
#include "sandbox/sandbox.h"
#ifdef CORDON_FULL
#include <event2/event.h>

#include "audit/audit.h"
#include "egress/engine.h"
#include "egress/policy.h"
#include "egress/tls.h"
#include "run/netpart.h"
#include "run/supervise.h"
#else
#define EGRESS_MAX_PRIVATE 64
#endif

static void exec_usage(FILE *out)
{
	fputs("Usage: cordon exec [OPTIONS] -- CMD [ARGS...]\n"
	      "\n"
	      "Run CMD in a fresh sandbox (user, mount, pid, net, ipc, uts and cgroup\n"
	      "namespaces; a new root; no capabilities; Landlock; a seccomp allowlist)\n"
	      "and destroy the sandbox when it ends.\n"
	      "\n"
	      "Filesystem:\n"
	      "  --profile NAME        offline (default), repo-read, repo-write, deployment\n"
	      "  --repo DIR            repository for the repo-* and deployment profiles\n"
	      "                        (default: the current directory), mounted at /repo\n"
	      "  --ro SRC[:DST]        bind SRC read-only at DST (default: same path)\n"
	      "  --rw SRC[:DST]        bind SRC read-write at DST\n"
	      "  --workspace DIR       bind DIR read-write at /workspace instead of a tmpfs\n"
	      "\n"
	      "Process:\n"
	      "  --env NAME=VALUE      set a variable (the environment is otherwise cleared\n"
	      "                        but for PATH, HOME and LANG)\n"
	      "  --uid N, --gid N      ids inside the sandbox (default 1000)\n"
	      "  --hostname NAME       hostname inside (default cordon)\n"
	      "  --cwd DIR             working directory inside (default /workspace)\n"
	      "\n"
	      "Network:\n"
	      "  --net MODE            none (default: loopback only) or proxy: only through\n"
	      "                        cordon's egress engine (HTTP proxy on\n"
	      "                        127.0.0.1:3128, DNS on 127.0.0.1:53)\n"
	      "  --policy FILE         egress policy (YAML, docs/policy.md); default: the\n"
	      "                        built-in categories only\n"
	      "  --allow HOST[:PORT]   also allow HOST (on PORT, or 80 and 443)\n"
	      "  --allow-private IP:PORT\n"
	      "                        allow one private destination (off by default)\n"
	      "  --audit-log FILE      append the hash-chained audit log here\n"
	      "  --upstream-ca FILE    extra CA certificates (PEM) trusted for the upstream\n"
	      "                        servers of TLS-inspected domains\n"
	      "  --local-port PORT     allow TCP bind/connect on this loopback port\n"
	      "\n"
	      "Limits:\n"
	      "  --mem SIZE            memory limit (default 1g; 0: none)\n"
	      "  --pids N              process limit (default 256; 0: none)\n"
	      "  --cpu CORES           CPU quota, e.g. 0.5 (default: none)\n"
	      "  --timeout DURATION    wall-clock limit, e.g. 30s, 500ms, 2m (default: none)\n"
	      "  --tmp-size SIZE       size of /tmp and /dev/shm (default 64m)\n"
	      "  --workspace-size SIZE size of the /workspace tmpfs (default 256m)\n"
	      "  --nofile N            open file limit (default 1024)\n"
	      "  --fsize SIZE          largest file the command may write (default 1g)\n"
	      "\n"
	      "Protections and status:\n"
	      "  --allow-degraded LIST run even when these protections are unavailable:\n"
	      "                        landlock, cgroup, seccomp (comma-separated); the\n"
	      "                        status records what was missing\n"
	      "  --allow-sockets       bind trees that hold unix sockets (refused by default:\n"
	      "                        the sandbox could connect to what serves them)\n"
	      "  --status-json FILE    write the exit status, resource use and applied\n"
	      "                        protections as JSON\n"
	      "  -h, --help            show this help\n"
	      "\n"
	      "Exit status: the command's own; 128+N if killed by signal N; 124 on\n"
	      "timeout; 137 when out of memory; 125 if cordon failed; 126 if CMD could\n"
	      "not be executed; 127 if CMD was not found.\n",
	      out);
}

enum {
	OPT_PROFILE = 256,
	OPT_REPO,
	OPT_RO,
	OPT_RW,
	OPT_WORKSPACE,
	OPT_ENV,
	OPT_UID,
	OPT_GID,
	OPT_HOSTNAME,
	OPT_CWD,
	OPT_NET,
	OPT_LOCAL_PORT,
	OPT_MEM,
	OPT_PIDS,
	OPT_CPU,
	OPT_TIMEOUT,
	OPT_TMP,
	OPT_WS_SIZE,
	OPT_NOFILE,
	OPT_FSIZE,
	OPT_DEGRADED,
	OPT_SOCKETS,
	OPT_STATUS,
	OPT_POLICY,
	OPT_ALLOW,
	OPT_ALLOW_PRIVATE,
	OPT_AUDIT_LOG,
	OPT_UPSTREAM_CA,
};

static const struct option long_opts[] = {
	{ "profile", required_argument, NULL, OPT_PROFILE },
	{ "repo", required_argument, NULL, OPT_REPO },
	{ "ro", required_argument, NULL, OPT_RO },
	{ "rw", required_argument, NULL, OPT_RW },
	{ "workspace", required_argument, NULL, OPT_WORKSPACE },
	{ "env", required_argument, NULL, OPT_ENV },
	{ "uid", required_argument, NULL, OPT_UID },
	{ "gid", required_argument, NULL, OPT_GID },
	{ "hostname", required_argument, NULL, OPT_HOSTNAME },
	{ "cwd", required_argument, NULL, OPT_CWD },
	{ "net", required_argument, NULL, OPT_NET },
	{ "local-port", required_argument, NULL, OPT_LOCAL_PORT },
	{ "mem", required_argument, NULL, OPT_MEM },
	{ "pids", required_argument, NULL, OPT_PIDS },
	{ "cpu", required_argument, NULL, OPT_CPU },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "tmp-size", required_argument, NULL, OPT_TMP },
	{ "workspace-size", required_argument, NULL, OPT_WS_SIZE },
	{ "nofile", required_argument, NULL, OPT_NOFILE },
	{ "fsize", required_argument, NULL, OPT_FSIZE },
	{ "allow-degraded", required_argument, NULL, OPT_DEGRADED },
	{ "allow-sockets", no_argument, NULL, OPT_SOCKETS },
	{ "status-json", required_argument, NULL, OPT_STATUS },
	{ "policy", required_argument, NULL, OPT_POLICY },
	{ "allow", required_argument, NULL, OPT_ALLOW },
	{ "allow-private", required_argument, NULL, OPT_ALLOW_PRIVATE },
	{ "audit-log", required_argument, NULL, OPT_AUDIT_LOG },
	{ "upstream-ca", required_argument, NULL, OPT_UPSTREAM_CA },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* Binds live as long as the process; keep their strings here. */
struct bind_arg {
	char *src;
	char *dst;
	bool rw;
};

static int parse_bind(const char *spec, bool rw, struct bind_arg *out, struct cdn_err *err)
{
	/* SRC[:DST], split at the last ':' (as docker -v does). */
	const char *split = strrchr(spec, ':');
	if (split && split[1] != '/')
		return cdn_err_msg(err, EINVAL, "--%s %s: destination '%s' must be an absolute path",
				   rw ? "rw" : "ro", spec, split + 1);
	_cleanup_free_ char *src = split ? strndup(spec, (size_t)(split - spec)) : strdup(spec);
	if (!src)
		return cdn_err_set(err, ENOMEM, "bind");
	if (!*src)
		return cdn_err_msg(err, EINVAL, "--%s '%s': empty source", rw ? "rw" : "ro", spec);
	char abs[PATH_MAX];
	if (!realpath(src, abs))
		return cdn_err_set(err, errno, "--%s %s", rw ? "rw" : "ro", src);
	out->src = strdup(abs);
	out->dst = strdup(split ? split + 1 : abs);
	out->rw = rw;
	if (!out->src || !out->dst)
		return cdn_err_set(err, ENOMEM, "bind");
	return 0;
}

static int write_status(const char *path, const struct sandbox_status *st)
{
	json_t *prot = sandbox_protections_json(&st->prot);
	json_t *root = json_pack("{s:i, s:o, s:b, s:b, s:I, s:I, s:I, s:o}", "exit_code",
				 st->exit_code, "signal",
				 st->signal ? json_integer(st->signal) : json_null(), "timed_out",
				 st->timed_out, "oom_killed", st->oom_killed, "wall_ms",
				 (json_int_t)st->wall_ms, "cpu_ms", (json_int_t)st->cpu_ms,
				 "mem_peak_bytes", (json_int_t)st->mem_peak_bytes, "protections",
				 prot);
	if (!root)
		return -ENOMEM;
	if (st->exec_errno)
		json_object_set_new(root, "exec_error", json_string(strerror(st->exec_errno)));
	errno = 0;
	int r = json_dump_file(root, path, JSON_COMPACT | JSON_SORT_KEYS);
	int e = errno ? errno : EIO;
	json_decref(root);
	return r < 0 ? -e : 0;
}

#define MAX_ALLOW 256
#define EXEC_NOT_STARTED INT_MIN /* the sandbox could not be created */

struct exec_args {
	struct bind_arg binds[SANDBOX_MAX_BINDS];
	size_t n_binds;
	char *workspace;
	const char *policy_path;
	const char *audit_path;
	const char *upstream_ca;
	const char *allow[MAX_ALLOW];
	size_t n_allow;
	const char *allow_private[EGRESS_MAX_PRIVATE];
	size_t n_allow_private;
	bool net_set;
};

static void close_pipe_ends(int pipes[2][2], int end)
{
	for (int i = 0; i < 2; i++)
		if (pipes[i][end] >= 0) {
			close(pipes[i][end]);
			pipes[i][end] = -1;
		}
}

/* --net none: the blocking wait, no event loop. Returns EXEC_NOT_STARTED when
 * the sandbox could not be created, else what sandbox_wait returned. */
static int exec_plain(const struct sandbox_config *cfg, struct sandbox_relay *relays,
		      size_t n_relays, int pipes[2][2], struct sandbox_status *st,
		      struct cdn_err *err)
{
	struct sandbox *sb = NULL;
	int r = sandbox_spawn(cfg, &sb, err);
	close_pipe_ends(pipes, 1);
	if (r < 0)
		return EXEC_NOT_STARTED;
	r = sandbox_wait_relay(sb, relays, n_relays, st, err);
	sandbox_free(sb);
	close_pipe_ends(pipes, 0);
	return r;
}

#ifdef CORDON_FULL
static void exec_event(void *ctx, const char *type, json_t *data)
{
	(void)ctx;
	if (strcmp(type, "approval.requested") != 0)
		return;
	const char *id = json_string_value(json_object_get(data, "approval_id"));
	fprintf(stderr,
		"cordon: approval %s: %s %s:%lld%s is waiting for a human "
		"('cordon approvals approve %s' or 'reject %s')\n",
		id, json_string_value(json_object_get(data, "method")),
		json_string_value(json_object_get(data, "hostname")),
		(long long)json_integer_value(json_object_get(data, "port")),
		json_string_value(json_object_get(data, "path")), id, id);
}

/* The policy from its file (or the built-in one), with --allow and
 * --allow-private applied: at start, and again on SIGHUP. */
static int exec_policy(const struct exec_args *a, struct egress_policy **out,
		       struct cdn_err *err)
{
	struct egress_policy *policy = NULL;
	int r = a->policy_path ? egress_policy_load(a->policy_path, &policy, err)
			       : egress_policy_default(&policy, err);
	for (size_t i = 0; r == 0 && i < a->n_allow; i++)
		if ((r = egress_policy_allow(policy, a->allow[i], err)) < 0)
			cdn_err_wrap(err, "--allow");
	for (size_t i = 0; r == 0 && i < a->n_allow_private; i++)
		if ((r = egress_policy_allow_private(policy, a->allow_private[i], err)) < 0)
			cdn_err_wrap(err, "--allow-private");
	if (r < 0) {
		egress_policy_free(policy);
		return r;
	}
	*out = policy;
	return 0;
}

struct exec_net {
	const struct exec_args *a;
	struct audit_log *audit;
	struct sandbox *sb;
	struct netpart *net;
	bool died;
};

static void exec_reload(void *ctx)
{
	struct exec_net *x = ctx;
	struct cdn_err err = { 0 };
	struct egress_policy *p = NULL;
	if (exec_policy(x->a, &p, &err) < 0 || netpart_set_policy(x->net, p, &err) < 0) {
		cdn_err_wrap(&err, "policy reload (the previous policy stays)");
		cli_error_err(&err);
	} else {
		cli_error("egress policy reloaded");
	}
	egress_policy_free(p);
}

static void exec_audit(void *ctx, json_t *entry)
{
	struct exec_net *x = ctx;
	struct cdn_err err = { 0 };
	if (x->audit && audit_append(x->audit, entry, false, &err) < 0)
		cli_error("audit log: %s", err.msg);
}

static void exec_died(void *ctx, const char *why)
{
	struct exec_net *x = ctx;
	cli_error("%s; stopping the sandbox", why);
	x->died = true;
	if (x->sb)
		sandbox_kill(x->sb, false);
}

/* --net proxy: the sandbox's sockets are served by a network part of
 * their own (src/run/netpart.h); this process supervises the sandbox and
 * keeps the audit log. */
static int exec_with_egress(const struct sandbox_config *cfg, const struct exec_args *a,
			    struct sandbox_relay *relays, size_t n_relays, int pipes[2][2],
			    struct sandbox_status *st, struct cdn_err *err)
{
	struct egress_policy *policy = NULL;
	struct egress_ca *ca = NULL;
	struct event_base *base = NULL;
	struct exec_net x = { .a = a };
	char run_id[40];
	int r;

	if (exec_policy(a, &policy, err) < 0) {
		close_pipe_ends(pipes, 1);
		return EXEC_NOT_STARTED;
	}
	if (a->audit_path && audit_open(a->audit_path, &x.audit, err) < 0) {
		egress_policy_free(policy);
		close_pipe_ends(pipes, 1);
		return EXEC_NOT_STARTED;
	}
	r = EXEC_NOT_STARTED;
	if (cdn_random_id("run_", 8, run_id, sizeof(run_id)) < 0) {
		cdn_err_set(err, EIO, "run id");
		goto out;
	}
	base = event_base_new();
	if (!base) {
		cdn_err_set(err, ENOMEM, "event loop");
		goto out;
	}
	size_t n_names = 0;
	const char **names = egress_inspected_names(policy, &n_names);
	int cr = n_names ? egress_ca_new(run_id, names, n_names, &ca, err) : 0;
	free(names);
	if (cr < 0)
		goto out;
	struct sandbox_config scfg = *cfg;
	scfg.ca_pem = ca ? egress_ca_pem(ca) : NULL;
	if (sandbox_spawn(&scfg, &x.sb, err) < 0)
		goto out;
	close_pipe_ends(pipes, 1);
	struct netpart_config nc = {
		.run_id = run_id,
		.policy = policy,
		.ca = ca,
		.hosts_file = getenv("CORDON_HOSTS_FILE"),
		.upstream_ca_file = a->upstream_ca,
		.mcp_fd = -1,
		.allow_degraded = cfg->allow_degraded,
		.want_audit = x.audit != NULL,
	};
	sandbox_take_egress_fds(x.sb, &nc.proxy_fd, &nc.dns_udp_fd, &nc.dns_tcp_fd);
	struct netpart_hooks nh = { .ctx = &x,
				    .event = exec_event,
				    .audit = exec_audit,
				    .died = exec_died };
	int nr = netpart_start(base, &nc, &nh, &x.net, err);
	egress_ca_free(ca);
	ca = NULL;
	if (nr == 0)
		nr = netpart_wait_ready(x.net, err);
	if (nr < 0) {
		/* No way out for the sandbox's network: stop it, say why. */
		sandbox_kill(x.sb, false);
		goto out;
	}
	struct supervise_opts so = { .base = base, .sb = x.sb, .relays = relays,
				     .n_relays = n_relays,
				     .on_sighup = a->policy_path ? exec_reload : NULL, .ctx = &x };
	r = run_supervise(&so, st, err);
	if (r == 0 && x.died) {
		/* A command that lost its network part ends as cordon's
		 * failure, not its own. */
		r = cdn_err_msg(err, ECHILD, "the sandbox's network part failed");
	}
out:
	close_pipe_ends(pipes, 1);
	netpart_free(x.net);
	struct sandbox *sb = x.sb;
	x.sb = NULL;
	sandbox_free(sb);
	close_pipe_ends(pipes, 0);
	if (base)
		event_base_free(base);
	egress_policy_free(policy);
	egress_ca_free(ca);
	audit_close(x.audit);
	return r;
}

#endif

static int exec_main(int argc, char **argv, struct exec_args *a)
{
	struct sandbox_config cfg;
	struct cdn_err err = { 0 };
	struct bind_arg *binds = a->binds;
	size_t n_binds = 0;
	const char *profile = "offline", *repo = NULL, *status_path = NULL;
	uint64_t v;
	int r = 0;

	sandbox_config_init(&cfg);
	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, "+h", long_opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			exec_usage(stdout);
			return 0;
		case OPT_PROFILE:
			profile = optarg;
			break;
		case OPT_REPO:
			repo = optarg;
			break;
		case OPT_RO:
		case OPT_RW:
			if (n_binds >= SANDBOX_MAX_BINDS) {
				cli_error("too many binds (at most %d)", SANDBOX_MAX_BINDS);
				return EXIT_CORDON;
			}
			r = parse_bind(optarg, c == OPT_RW, &binds[n_binds], &err);
			n_binds++;
			a->n_binds = n_binds;
			break;
		case OPT_WORKSPACE: {
			char abs[PATH_MAX];
			if (!realpath(optarg, abs))
				r = cdn_err_set(&err, errno, "--workspace %s", optarg);
			else {
				free(a->workspace);
				cfg.workspace_dir = a->workspace = strdup(abs);
			}
			break;
		}
		case OPT_ENV:
			r = sandbox_config_add_env(&cfg, optarg, &err);
			break;
		case OPT_UID:
		case OPT_GID:
			r = cdn_parse_uint(optarg, 65533, &v, &err);
			if (r == 0 && c == OPT_UID)
				cfg.uid = (uid_t)v;
			else if (r == 0)
				cfg.gid = (gid_t)v;
			if (r < 0)
				cdn_err_wrap(&err, c == OPT_UID ? "--uid" : "--gid");
			break;
		case OPT_HOSTNAME:
			cfg.hostname = optarg;
			break;
		case OPT_CWD:
			if (optarg[0] != '/')
				r = cdn_err_msg(&err, EINVAL, "--cwd %s: must be an absolute path",
						optarg);
			cfg.cwd = optarg;
			break;
		case OPT_NET:
			a->net_set = true;
			if (strcmp(optarg, "none") == 0)
				cfg.net = SANDBOX_NET_NONE;
			else if (strcmp(optarg, "proxy") == 0)
				cfg.net = SANDBOX_NET_PROXY;
			else
				r = cdn_err_msg(&err, EINVAL, "--net %s: expected none or proxy",
						optarg);
			break;
		case OPT_LOCAL_PORT:
			if (cfg.n_local_ports >= SANDBOX_MAX_LOCAL_PORTS) {
				r = cdn_err_msg(&err, E2BIG, "--local-port: at most %d",
						SANDBOX_MAX_LOCAL_PORTS);
				break;
			}
			r = cdn_parse_uint(optarg, 65535, &v, &err);
			if (r == 0 && v == 0)
				r = cdn_err_msg(&err, EINVAL, "port 0");
			if (r == 0)
				cfg.local_ports[cfg.n_local_ports++] = (uint16_t)v;
			else
				cdn_err_wrap(&err, "--local-port");
			break;
		case OPT_MEM:
			if ((r = cdn_parse_size(optarg, &cfg.limits.mem_bytes, &err)) < 0)
				cdn_err_wrap(&err, "--mem");
			break;
		case OPT_PIDS:
			if ((r = cdn_parse_uint(optarg, 4194304, &cfg.limits.pids, &err)) < 0)
				cdn_err_wrap(&err, "--pids");
			break;
		case OPT_CPU:
			if ((r = cdn_parse_cpu(optarg, &cfg.limits.cpu_millicores, &err)) < 0)
				cdn_err_wrap(&err, "--cpu");
			break;
		case OPT_TIMEOUT:
			if ((r = cdn_parse_duration_ms(optarg, &cfg.limits.timeout_ms, &err)) < 0)
				cdn_err_wrap(&err, "--timeout");
			break;
		case OPT_TMP:
			if ((r = cdn_parse_size(optarg, &cfg.limits.tmp_bytes, &err)) < 0)
				cdn_err_wrap(&err, "--tmp-size");
			else if (cfg.limits.tmp_bytes < 4096)
				r = cdn_err_msg(&err, EINVAL, "--tmp-size: at least 4k");
			break;
		case OPT_WS_SIZE:
			if ((r = cdn_parse_size(optarg, &cfg.limits.workspace_bytes, &err)) < 0)
				cdn_err_wrap(&err, "--workspace-size");
			else if (cfg.limits.workspace_bytes < 4096)
				r = cdn_err_msg(&err, EINVAL, "--workspace-size: at least 4k");
			break;
		case OPT_NOFILE:
			if ((r = cdn_parse_uint(optarg, 1048576, &cfg.limits.nofile, &err)) < 0)
				cdn_err_wrap(&err, "--nofile");
			else if (cfg.limits.nofile < 16)
				r = cdn_err_msg(&err, EINVAL, "--nofile: at least 16");
			break;
		case OPT_FSIZE:
			if ((r = cdn_parse_size(optarg, &cfg.limits.fsize_bytes, &err)) < 0)
				cdn_err_wrap(&err, "--fsize");
			break;
		case OPT_DEGRADED:
			r = sandbox_parse_degraded(optarg, &cfg.allow_degraded, &err);
			break;
		case OPT_SOCKETS:
			cfg.allow_sockets = true;
			break;
		case OPT_STATUS:
			status_path = optarg;
			break;
		case OPT_POLICY:
			a->policy_path = optarg;
			break;
		case OPT_AUDIT_LOG:
			a->audit_path = optarg;
			break;
		case OPT_UPSTREAM_CA:
			a->upstream_ca = optarg;
			break;
		case OPT_ALLOW:
			if (a->n_allow >= MAX_ALLOW)
				r = cdn_err_msg(&err, E2BIG, "--allow: at most %d", MAX_ALLOW);
			else
				a->allow[a->n_allow++] = optarg;
			break;
		case OPT_ALLOW_PRIVATE:
			if (a->n_allow_private >= EGRESS_MAX_PRIVATE)
				r = cdn_err_msg(&err, E2BIG, "--allow-private: at most %d",
						EGRESS_MAX_PRIVATE);
			else
				a->allow_private[a->n_allow_private++] = optarg;
			break;
		default:
			fputs("Run 'cordon exec --help' for usage.\n", stderr);
			return EXIT_CORDON;
		}
		if (r < 0) {
			return cli_fail(&err);
		}
	}
	if (optind >= argc) {
		cli_error("exec: no command given (usage: cordon exec [OPTIONS] -- CMD [ARGS...])");
		return EXIT_CORDON;
	}

	const struct sandbox_profile *prof = sandbox_profile_find(profile);
	if (!prof) {
		cli_error("--profile %s: unknown profile (offline, repo-read, repo-write, deployment)",
			  profile);
		return EXIT_CORDON;
	}
	char repo_abs[PATH_MAX];
	if (prof->repo != SANDBOX_REPO_NONE) {
		if (!realpath(repo ? repo : ".", repo_abs)) {
			cli_error("--repo %s: %s", repo ? repo : ".", strerror(errno));
			return EXIT_CORDON;
		}
		repo = repo_abs;
	} else if (repo) {
		cli_error("--repo: profile %s mounts no repository", prof->name);
		return EXIT_CORDON;
	}
	enum sandbox_net net = cfg.net;
	if (sandbox_apply_profile(&cfg, prof, repo, &err) < 0) {
		return cli_fail(&err);
	}
	if (a->net_set)
		cfg.net = net; /* an explicit --net wins over the profile */
	for (size_t i = 0; i < n_binds; i++) {
		if (sandbox_config_add_bind(&cfg, binds[i].src, binds[i].dst, binds[i].rw, &err) < 0) {
			return cli_fail(&err);
		}
	}
	if (cfg.net != SANDBOX_NET_PROXY &&
	    (a->policy_path || a->audit_path || a->n_allow || a->n_allow_private || a->upstream_ca)) {
		cli_error("--policy, --allow, --allow-private, --audit-log and --upstream-ca need "
			  "--net proxy");
		return EXIT_CORDON;
	}
#ifndef CORDON_FULL
	/* The egress engine lives in the full binary. */
	if (cfg.net == SANDBOX_NET_PROXY)
		return cli_exec_tier(CLI_FULL);
#endif
	cfg.phases[0] = &argv[optind];
	cfg.n_phases = 1;

	/* A host file as stdout/stderr belongs to the caller, and the sandbox
	 * uid could not reopen it through /dev/stdout: hand the sandbox a pipe
	 * and copy. Terminals and pipes are passed through as they are. */
	struct sandbox_relay relays[2];
	size_t n_relays = 0;
	int pipes[2][2] = { { -1, -1 }, { -1, -1 } };
	for (int fd = 1; fd <= 2; fd++) {
		struct stat sst;
		if (fstat(fd, &sst) < 0 || !S_ISREG(sst.st_mode))
			continue;
		if (pipe2(pipes[fd - 1], O_CLOEXEC) < 0) {
			cli_error("stdio pipe: %s", strerror(errno));
			return EXIT_CORDON;
		}
		if (fd == 1)
			cfg.stdout_fd = pipes[0][1];
		else
			cfg.stderr_fd = pipes[1][1];
		relays[n_relays++] = (struct sandbox_relay){ .from = pipes[fd - 1][0], .to = fd };
	}

	struct sandbox_status st = { 0 };
#ifdef CORDON_FULL
	if (cfg.net == SANDBOX_NET_PROXY)
		r = exec_with_egress(&cfg, a, relays, n_relays, pipes, &st, &err);
	else
#endif
		r = exec_plain(&cfg, relays, n_relays, pipes, &st, &err);
	if (r == EXEC_NOT_STARTED) {
		return cli_fail(&err);
	}
	if (r < 0) {
		cli_error_err(&err);
		st.exit_code = cli_exit_status(&err);
	} else if (st.exec_errno) {
		cli_error_err(&err);
	}
	if (status_path && (r = write_status(status_path, &st)) < 0) {
		cli_error("--status-json %s: %s", status_path, strerror(-r));
		return EXIT_CORDON;
	}
	return st.exit_code;
}

int cmd_exec(int argc, char **argv)
{
	struct exec_args a;
	memset(&a, 0, sizeof(a));
	int r = exec_main(argc, argv, &a);
	for (size_t i = 0; i < a.n_binds; i++) {
		free(a.binds[i].src);
		free(a.binds[i].dst);
	}
	free(a.workspace);
	return r;
}
