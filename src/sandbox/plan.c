/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A sandbox_config turned into a plan (internal.h): every path, file,
 * variable, Landlock rule and the seccomp program the child needs,
 * prepared and checked by the supervisor before the child uses it. A warm
 * sandbox's plan is copied into its arena (sb_plan_to_arena).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "sandbox/internal.h"

/* ------------------------------------------------------------ config */

void sandbox_config_init(struct sandbox_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->uid = 1000;
	cfg->gid = 1000;
	cfg->net = SANDBOX_NET_NONE;
	cfg->stdin_fd = cfg->stdout_fd = cfg->stderr_fd = -1;
	cfg->limits.mem_bytes = 1ull << 30;
	cfg->limits.pids = 256;
	cfg->limits.cpu_millicores = 0;
	cfg->limits.timeout_ms = 0;
	cfg->limits.tmp_bytes = 64ull << 20;
	cfg->limits.workspace_bytes = 256ull << 20;
	cfg->limits.nofile = 1024;
	cfg->limits.fsize_bytes = 1ull << 30;
}

int sandbox_config_add_bind(struct sandbox_config *cfg, const char *src, const char *dst,
			    bool rw, struct cdn_err *err)
{
	if (cfg->n_binds >= SANDBOX_MAX_BINDS)
		return cdn_err_msg(err, E2BIG, "too many binds (at most %d)", SANDBOX_MAX_BINDS);
	if (!src || !*src)
		return cdn_err_msg(err, EINVAL, "bind: empty source");
	if (!dst || dst[0] != '/')
		return cdn_err_msg(err, EINVAL, "bind %s: destination must be absolute", src);
	cfg->binds[cfg->n_binds++] = (struct sandbox_bind){ .src = src, .dst = dst, .rw = rw };
	return 0;
}

bool sandbox_env_name_ok(const char *name, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (!(c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (i > 0 && c >= '0' && c <= '9')))
			return false;
	}
	return true;
}

int sandbox_config_add_env(struct sandbox_config *cfg, const char *kv, struct cdn_err *err)
{
	const char *eq = strchr(kv, '=');
	if (!eq || eq == kv)
		return cdn_err_msg(err, EINVAL, "environment entry '%s': expected NAME=VALUE", kv);
	if (!sandbox_env_name_ok(kv, (size_t)(eq - kv)))
		return cdn_err_msg(err, EINVAL, "environment entry '%.*s': bad variable name",
				   (int)(eq - kv), kv);
	if (strlen(kv) > 65536)
		return cdn_err_msg(err, E2BIG, "environment entry '%.*s': value too long",
				   (int)(eq - kv), kv);
	if (cfg->n_env >= SANDBOX_MAX_ENV)
		return cdn_err_msg(err, E2BIG, "too many environment entries (at most %d)",
				   SANDBOX_MAX_ENV);
	cfg->env[cfg->n_env++] = kv;
	return 0;
}

/* ------------------------------------------------------------- plan */

void sb_plan_free(struct sb_plan *plan)
{
	if (!plan)
		return;
	for (size_t i = 0; i < plan->n_steps; i++) {
		free(plan->steps[i].src);
		free(plan->steps[i].dst);
		free(plan->steps[i].text);
	}
	for (size_t i = 0; i < plan->n_ll; i++)
		free(plan->ll[i].path);
	for (size_t i = 0; plan->envp[i]; i++)
		free(plan->envp[i]);
	free(plan->cwd);
	free(plan->hostname);
	for (size_t i = 0; i < SANDBOX_MAX_PHASES; i++)
		free(plan->phase_env[i]);
	/* plan->bpf is the process-wide cached program */
	free(plan);
}

static bool env_has(const struct sandbox_config *cfg, const char *name)
{
	size_t l = strlen(name);
	for (size_t i = 0; i < cfg->n_env; i++)
		if (strncmp(cfg->env[i], name, l) == 0 && cfg->env[i][l] == '=')
			return true;
	return false;
}

static int plan_env(struct sb_plan *plan, const struct sandbox_config *cfg, struct cdn_err *err)
{
	static const char *const defaults[] = {
		"PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
		"HOME=/workspace",
		"LANG=C.UTF-8",
	};
	static const char *const proxy_env[] = {
		"http_proxy=http://127.0.0.1:3128",  "HTTP_PROXY=http://127.0.0.1:3128",
		"https_proxy=http://127.0.0.1:3128", "HTTPS_PROXY=http://127.0.0.1:3128",
		"all_proxy=http://127.0.0.1:3128",   "ALL_PROXY=http://127.0.0.1:3128",
		"no_proxy=localhost,127.0.0.1,::1",  "NO_PROXY=localhost,127.0.0.1,::1",
	};
	size_t n = 0;
	const size_t cap = CDN_ARRAY_SIZE(plan->envp) - 1;
	for (size_t i = 0; i < CDN_ARRAY_SIZE(defaults); i++) {
		char name[16];
		snprintf(name, sizeof(name), "%.*s", (int)strcspn(defaults[i], "="), defaults[i]);
		if (!env_has(cfg, name))
			plan->envp[n++] = strdup(defaults[i]);
	}
	static const char *const ca_env[] = {
		"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
		"REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt",
		"CURL_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt",
		"GIT_SSL_CAINFO=/etc/ssl/certs/ca-certificates.crt",
		"PIP_CERT=/etc/ssl/certs/ca-certificates.crt",
		"AWS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt",
		"NODE_EXTRA_CA_CERTS=/etc/cordon/ca.pem",
	};
	/* The caller's own entries win over these (getenv finds the first). */
	char name[32];
	if (cfg->net == SANDBOX_NET_PROXY)
		for (size_t i = 0; i < CDN_ARRAY_SIZE(proxy_env); i++) {
			snprintf(name, sizeof(name), "%.*s", (int)strcspn(proxy_env[i], "="),
				 proxy_env[i]);
			if (!env_has(cfg, name))
				plan->envp[n++] = strdup(proxy_env[i]);
		}
	if (cfg->ca_pem)
		for (size_t i = 0; i < CDN_ARRAY_SIZE(ca_env); i++) {
			snprintf(name, sizeof(name), "%.*s", (int)strcspn(ca_env[i], "="), ca_env[i]);
			if (!env_has(cfg, name))
				plan->envp[n++] = strdup(ca_env[i]);
		}
	for (size_t i = 0; i < cfg->n_env && n < cap; i++)
		plan->envp[n++] = strdup(cfg->env[i]);
	for (size_t i = 0; i < n; i++) {
		if (!plan->envp[i])
			return cdn_err_set(err, ENOMEM, "environment");
		if (strncmp(plan->envp[i], "PATH=", 5) == 0)
			plan->path_env = plan->envp[i] + 5;
	}
	plan->envp[n] = NULL;
	plan->n_envp = n;
	return 0;
}

int sb_plan_ids(const struct sandbox_config *cfg, struct sb_plan *plan, struct cdn_err *err)
{
	plan->uid = cfg->uid;
	plan->gid = cfg->gid;
	plan->rootless = geteuid() != 0;
	if (plan->rootless) {
		plan->host_uid = geteuid();
		plan->host_gid = getegid();
		return 0;
	}
	const char *base = getenv("CORDON_HOSTID_BASE");
	unsigned long b = base && *base ? strtoul(base, NULL, 10) : SANDBOX_HOSTID_BASE;
	if (b == 0 || b + cfg->uid > 0xfffffffeul || b + cfg->gid > 0xfffffffeul)
		return cdn_err_msg(err, EINVAL, "CORDON_HOSTID_BASE: must map to a non-root id");
	plan->host_uid = (uid_t)(b + cfg->uid);
	plan->host_gid = (gid_t)(b + cfg->gid);
	return 0;
}

int sandbox_config_host_ids(const struct sandbox_config *cfg, uid_t *uid, gid_t *gid,
			    struct cdn_err *err)
{
	/* The plan is large (its mount steps): not on the stack. */
	_cleanup_free_ struct sb_plan *plan = calloc(1, sizeof(*plan));
	if (!plan)
		return cdn_err_set(err, ENOMEM, "sandbox plan");
	int r = sb_plan_ids(cfg, plan, err);
	if (r == 0) {
		*uid = plan->host_uid;
		*gid = plan->host_gid;
	}
	return r;
}

void sb_plan_freep(struct sb_plan **plan)
{
	sb_plan_free(*plan);
}

int sb_plan_build(const struct sandbox_config *cfg, struct sb_plan **out,
		  struct sandbox_protections *prot, struct cdn_err *err)
{
	_cleanup_(sb_plan_freep) struct sb_plan *plan = calloc(1, sizeof(*plan));
	if (!plan)
		return cdn_err_set(err, ENOMEM, "sandbox plan");
	int r = 0;

	if (cfg->n_phases == 0 || cfg->n_phases > SANDBOX_MAX_PHASES)
		return cdn_err_msg(err, EINVAL, "sandbox: no command to run");
	for (size_t i = 0; i < cfg->n_phases; i++) {
		if (!cfg->phases[i] || !cfg->phases[i][0])
			return cdn_err_msg(err, EINVAL, "sandbox: phase %zu has an empty command",
					   i);
		plan->phases[i] = cfg->phases[i];
	}
	plan->n_phases = cfg->n_phases;

	if ((r = sb_plan_ids(cfg, plan, err)) < 0)
		return r;
	prot->rootless = plan->rootless;
	prot->host_uid = plan->host_uid;
	plan->last_cap = sb_last_cap();

	plan->stdio[0] = cfg->stdin_fd;
	plan->stdio[1] = cfg->stdout_fd;
	plan->stdio[2] = cfg->stderr_fd;
	plan->nofile = cfg->limits.nofile;
	plan->fsize = cfg->limits.fsize_bytes;
	plan->net = cfg->net;
	plan->keep_workspace = cfg->keep_workspace;
	plan->steps_channel = cfg->steps_channel;
	plan->mcp_channel = cfg->mcp_channel;
	for (size_t i = 0; i < SANDBOX_MAX_PHASES; i++)
		if (cfg->phase_env[i] && !(plan->phase_env[i] = strdup(cfg->phase_env[i])))
			return cdn_err_set(err, ENOMEM, "environment");
	if (cfg->n_files > SANDBOX_MAX_FILES)
		return cdn_err_msg(err, E2BIG, "too many workspace files (at most %d)",
				   SANDBOX_MAX_FILES);
	if (cfg->n_local_ports > SANDBOX_MAX_LOCAL_PORTS)
		return cdn_err_msg(err, E2BIG, "too many local ports");
	memcpy(plan->local_ports, cfg->local_ports, sizeof(plan->local_ports));
	plan->n_local_ports = cfg->n_local_ports;
	plan->cwd = strdup(cfg->cwd ? cfg->cwd : "/workspace");
	plan->hostname = strdup(cfg->hostname ? cfg->hostname : "cordon");
	if (!plan->cwd || !plan->hostname)
		return cdn_err_set(err, ENOMEM, "sandbox plan");
	if (strlen(plan->hostname) > 63)
		return cdn_err_msg(err, EINVAL, "hostname: longer than 63 characters");
	if ((r = plan_env(plan, cfg, err)) < 0 || (r = sb_plan_mounts(plan, cfg, err)) < 0)
		return r;
	/* Whether the sandbox's user can use what is bound in: a bare
	 * "Permission denied" from inside tells nobody what to fix. */
	for (size_t i = 0; i < cfg->n_binds && r == 0; i++)
		r = sb_check_bind_access(cfg->binds[i].src, cfg->binds[i].rw,
					 cfg->binds[i].rw ? "read-write bind" : "read-only bind",
					 plan->host_uid, plan->host_gid, err);
	if (r == 0 && cfg->workspace_dir)
		r = sb_check_bind_access(cfg->workspace_dir, true, "workspace", plan->host_uid,
					 plan->host_gid, err);
	if (r < 0)
		return r;
	/* After the binds are known to be well-formed: the search is the
	 * costly part (a walk of each tree). */
	for (size_t i = 0; !cfg->allow_sockets && i < cfg->n_binds && r == 0; i++)
		if (!cfg->binds[i].no_special_files)
			r = sb_check_no_sockets(cfg->binds[i].src, err);
	if (r == 0 && !cfg->allow_sockets && cfg->workspace_dir)
		r = sb_check_no_sockets(cfg->workspace_dir, err);
	if (r < 0)
		return r;

	/* Landlock: refuse to run without it unless the operator said so. */
	plan->landlock_abi = sandbox_landlock_abi();
	if (plan->landlock_abi <= 0) {
		if (!(cfg->allow_degraded & SANDBOX_PROT_LANDLOCK))
			return cdn_err_msg(err, EOPNOTSUPP,
					   "landlock: not available on this kernel "
					   "(pass --allow-degraded=landlock to run without it)");
		prot->degraded |= SANDBOX_PROT_LANDLOCK;
	} else {
		sb_plan_landlock(plan, cfg);
		prot->landlock_parts = sandbox_landlock_parts_of_abi(plan->landlock_abi);
	}
	prot->landlock_abi = plan->landlock_abi;

	r = sb_seccomp_programs(plan->bpf, err);
	if (r < 0) {
		if (!(cfg->allow_degraded & SANDBOX_PROT_SECCOMP))
			return r;
		prot->degraded |= SANDBOX_PROT_SECCOMP;
		memset(plan->bpf, 0, sizeof(plan->bpf));
		r = 0;
	}
	prot->seccomp = plan->bpf[0].len > 0;
	*out = cdn_steal(&plan);
	return 0;
}


/* ------------------------------------------------------------ arena */

struct arena_w {
	struct sb_arena *a;
	size_t off;
	bool full;
};

static void *aw_alloc(struct arena_w *w, size_t n)
{
	size_t o = (w->off + 15) & ~(size_t)15;
	if (w->full || o > w->a->cap || n > w->a->cap - o) {
		w->full = true;
		return NULL;
	}
	w->off = o + n;
	return (char *)w->a + o;
}

/* n bytes of p, and a NUL after them. */
static char *aw_bytes(struct arena_w *w, const void *p, size_t n)
{
	if (!p)
		return NULL;
	char *d = aw_alloc(w, n + 1);
	if (d) {
		memcpy(d, p, n);
		d[n] = '\0';
	}
	return d;
}

static char *aw_str(struct arena_w *w, const char *s)
{
	return s ? aw_bytes(w, s, strlen(s)) : NULL;
}

int sb_plan_to_arena(const struct sb_plan *plan, struct sb_arena *arena)
{
	struct arena_w w = { .a = arena, .off = sizeof(*arena) };
	arena->plan = NULL;
	struct sb_plan *p = aw_alloc(&w, sizeof(*p));
	if (!p)
		return -ENOSPC;
	memcpy(p, plan, sizeof(*p));
	for (size_t i = 0; i < plan->n_steps; i++) {
		const struct sb_step *s = &plan->steps[i];
		p->steps[i].src = aw_str(&w, s->src);
		p->steps[i].dst = aw_str(&w, s->dst);
		p->steps[i].text = aw_bytes(&w, s->text, s->text_len);
	}
	p->parent_path = NULL;
	for (size_t i = 0; i < plan->n_phases; i++) {
		size_t argc = 0;
		while (plan->phases[i][argc])
			argc++;
		char **argv = aw_alloc(&w, (argc + 1) * sizeof(char *));
		for (size_t k = 0; argv && k < argc; k++)
			argv[k] = aw_str(&w, plan->phases[i][k]);
		if (argv)
			argv[argc] = NULL;
		p->phases[i] = argv;
	}
	p->path_env = NULL;
	for (size_t i = 0; i < plan->n_envp; i++) {
		p->envp[i] = aw_str(&w, plan->envp[i]);
		size_t len = strlen(plan->envp[i]);
		if (p->envp[i] && plan->path_env && plan->path_env >= plan->envp[i] &&
		    plan->path_env <= plan->envp[i] + len)
			p->path_env = p->envp[i] + (plan->path_env - plan->envp[i]);
	}
	p->envp[plan->n_envp] = NULL;
	p->cwd = aw_str(&w, plan->cwd);
	p->hostname = aw_str(&w, plan->hostname);
	for (size_t i = 0; i < SANDBOX_MAX_PHASES; i++)
		p->phase_env[i] = aw_str(&w, plan->phase_env[i]);
	for (size_t i = 0; i < plan->n_ll; i++)
		p->ll[i].path = aw_str(&w, plan->ll[i].path);
	for (size_t i = 0; i < SB_BPF_PROGS; i++) {
		size_t n = plan->bpf[i].len * sizeof(struct sock_filter);
		p->bpf[i].filter = plan->bpf[i].filter && n ? aw_alloc(&w, n) : NULL;
		if (p->bpf[i].filter)
			memcpy(p->bpf[i].filter, plan->bpf[i].filter, n);
	}
	if (w.full)
		return -ENOSPC;
	arena->used = w.off;
	arena->plan = p;
	return 0;
}
