/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Declared dependencies: the layer's key, finding a layer, building one in
 * a sandbox whose only way out is the `registries` egress category, and
 * the keys registered agents still use (docs/deps.md, deps.h).
 */
#define _GNU_SOURCE
#include "run/deps.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/clock.h"
#include "base/file.h"
#include "base/hash.h"
#include "base/random.h"
#include "base/text.h"
#include "egress/engine.h"
#include "egress/policy.h"
#include "egress/tls.h"
#include "registry/manifest.h"
#include "run/netpart.h"
#include "run/supervise.h"
#include "sandbox/sandbox.h"

/* The sandbox's PATH (sandbox/plan.c): the interpreter a run gets. */
static const char *const sandbox_path[] = { "/usr/local/bin", "/usr/bin", "/bin" };

static const char *runtime_binary(const char *runtime)
{
	if (strcmp(runtime, "node") == 0)
		return "node";
	if (strcmp(runtime, "python") == 0)
		return "python3";
	return NULL;
}

/* ---------------------------------------------------------------- the key */

int deps_runtime_version(const char *runtime, char *out, size_t cap, struct cdn_err *err)
{
	static char cached[2][64];
	const char *bin = runtime_binary(runtime);
	if (!bin)
		return cdn_err_msg(err, EINVAL, "dependencies: unknown runtime \"%s\"", runtime);
	char *slot = cached[strcmp(runtime, "node") == 0 ? 0 : 1];
	if (slot[0]) {
		snprintf(out, cap, "%s", slot);
		return 0;
	}
	char path[PATH_MAX] = "";
	for (size_t i = 0; i < CDN_ARRAY_SIZE(sandbox_path) && !path[0]; i++) {
		snprintf(path, sizeof(path), "%s/%s", sandbox_path[i], bin);
		if (access(path, X_OK) < 0)
			path[0] = '\0';
	}
	if (!path[0])
		return cdn_err_msg(err, ENOENT,
				   "dependencies: no %s in %s, %s or %s, where a sandbox finds it", bin,
				   sandbox_path[0], sandbox_path[1], sandbox_path[2]);
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return cdn_err_set(err, errno, "dependencies: %s --version", path);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	char *argv[] = { path, "--version", NULL };
	char *envp[] = { "PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", NULL };
	pid_t pid;
	int sr = posix_spawn(&pid, path, &fa, NULL, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	if (sr != 0) {
		close(p[0]);
		return cdn_err_set(err, sr, "dependencies: %s --version", path);
	}
	char buf[64] = "";
	size_t n = 0;
	ssize_t k;
	while (n < sizeof(buf) - 1 && ((k = read(p[0], buf + n, sizeof(buf) - 1 - n)) > 0 ||
				       (k < 0 && errno == EINTR)))
		n += k > 0 ? (size_t)k : 0;
	close(p[0]);
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	buf[strcspn(buf, "\r\n")] = '\0';
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || !buf[0])
		return cdn_err_msg(err, EIO, "dependencies: %s --version failed", path);
	cdn_printable_str(slot, sizeof(cached[0]), buf, 0);
	snprintf(out, cap, "%s", slot);
	return 0;
}

int deps_layer_key(const char *runtime, const struct deps_input *in, size_t n_in,
		   struct deps_layer *out, struct cdn_err *err)
{
	int r = deps_runtime_version(runtime, out->runtime_version, sizeof(out->runtime_version),
				     err);
	if (r < 0)
		return r;
	struct utsname u;
	if (uname(&u) < 0)
		return cdn_err_set(err, errno, "dependencies: uname");
	snprintf(out->runtime, sizeof(out->runtime), "%s", runtime);
	snprintf(out->platform, sizeof(out->platform), "linux-%.40s", u.machine);
	cdn_sha256_hex(in[0].data, in[0].len, out->lockfile_sha256);
	/* Each part NUL-terminated and each input's length before its bytes,
	 * so no two tuples give the same bytes. Every byte copied into the
	 * build is in the key: two agents share a layer only when the build
	 * saw the same files (package.json too, which a layer once kept). */
	size_t hl = strlen(DEPS_KEY_VERSION) + strlen(out->runtime) + strlen(out->runtime_version) +
		    strlen(out->platform) + 4, total = hl;
	for (size_t i = 0; i < n_in; i++)
		total += strlen(in[i].name) + 1 + 24 + in[i].len;
	_cleanup_free_ char *buf = malloc(total);
	if (!buf)
		return cdn_err_set(err, ENOMEM, "dependencies");
	size_t o = 0;
	const char *parts[] = { DEPS_KEY_VERSION, out->runtime, out->runtime_version, out->platform };
	for (size_t i = 0; i < CDN_ARRAY_SIZE(parts); i++) {
		size_t pl = strlen(parts[i]) + 1;
		memcpy(buf + o, parts[i], pl);
		o += pl;
	}
	for (size_t i = 0; i < n_in; i++) {
		o += (size_t)snprintf(buf + o, total - o, "%s%c%zu%c", in[i].name, 0, in[i].len, 0);
		memcpy(buf + o, in[i].data, in[i].len);
		o += in[i].len;
	}
	cdn_sha256_hex(buf, o, out->key);
	return 0;
}

json_t *deps_layer_json(const struct deps_layer *l)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:I}", "sha256", l->key, "runtime",
			 l->runtime, "runtime_version", l->runtime_version, "platform",
			 l->platform, "lockfile", l->lockfile, "lockfile_sha256",
			 l->lockfile_sha256, "built", l->built, "build_ms",
			 (json_int_t)l->build_ms);
}

/* ----------------------------------------------------------- registries */

/* "http[s]://HOST[:PORT][/...]" of the operator's registry; userinfo is
 * refused (a password in the environment would reach the build's argv). */
static int parse_registry_url(const char *var, const char *url, char *host, size_t cap,
			      struct egress_registry *reg, struct cdn_err *err)
{
	const char *p;
	bool tls;
	if (strncmp(url, "https://", 8) == 0) {
		p = url + 8;
		tls = true;
	} else if (strncmp(url, "http://", 7) == 0) {
		p = url + 7;
		tls = false;
	} else {
		return cdn_err_msg(err, EINVAL, "%s: expected an http:// or https:// URL", var);
	}
	size_t hl = strcspn(p, ":/?#@");
	if (p[hl] == '@')
		return cdn_err_msg(err, EINVAL, "%s: a URL with credentials is refused", var);
	if (hl == 0 || hl >= cap)
		return cdn_err_msg(err, EINVAL, "%s: no host in the URL", var);
	memcpy(host, p, hl);
	host[hl] = '\0';
	unsigned long port = tls ? 443 : 80;
	if (p[hl] == ':') {
		char *end;
		errno = 0;
		port = strtoul(p + hl + 1, &end, 10);
		if (errno || end == p + hl + 1 || port == 0 || port > 65535 ||
		    (*end && *end != '/'))
			return cdn_err_msg(err, EINVAL, "%s: bad port in the URL", var);
	} else if (p[hl] && p[hl] != '/') {
		return cdn_err_msg(err, EINVAL, "%s: expected http[s]://HOST[:PORT][/PATH]", var);
	}
	*reg = (struct egress_registry){ .host = host, .port = (uint16_t)port, .tls = tls };
	return 0;
}

int deps_registry_setenv(const char *var, const char *url, struct cdn_err *err)
{
	char host[EGRESS_MAX_HOST + 1];
	struct egress_registry reg;
	int r = parse_registry_url(var, url, host, sizeof(host), &reg, err);
	if (r == 0 && setenv(var, url, 1) < 0)
		r = cdn_err_set(err, errno, "%s", var);
	return r;
}

static const char *registry_url(const char *runtime)
{
	bool node = strcmp(runtime, "node") == 0;
	const char *v = getenv(node ? DEPS_ENV_NPM : DEPS_ENV_PYTHON);
	if (v && *v)
		return v;
	return node ? "https://registry.npmjs.org/" : "https://pypi.org/simple";
}

/* ---------------------------------------------------------------- build */

struct build_ctx {
	struct sandbox *sb;
	bool died;
};

static void build_net_died(void *ctx, const char *why)
{
	struct build_ctx *b = ctx;
	(void)why;
	b->died = true;
	if (b->sb)
		sandbox_kill(b->sb, false);
}

static void build_net_event(void *ctx, const char *type, json_t *data)
{
	(void)ctx;
	(void)type;
	(void)data;
}

/* The files a build gets, read from the agent's stored tree (their bytes
 * checked against their hashes): the lockfile first, then node's
 * package.json beside it. */
struct build_inputs {
	char *data[2];
	struct deps_input in[2];
	size_t n;
};

static void build_inputs_free(struct build_inputs *x)
{
	for (size_t i = 0; i < CDN_ARRAY_SIZE(x->data); i++)
		free(x->data[i]);
	memset(x, 0, sizeof(*x));
}

static int read_inputs(struct store *s, const char *tree, const struct agent_manifest *m,
		       struct build_inputs *x, struct cdn_err *err)
{
	bool node = strcmp(m->deps_runtime, "node") == 0;
	char pkg_json[MANIFEST_MAX_LOCKFILE + 16] = "package.json";
	const char *slash = strrchr(m->deps_lockfile, '/');
	if (slash)
		snprintf(pkg_json, sizeof(pkg_json), "%.*s/package.json",
			 (int)(slash - m->deps_lockfile), m->deps_lockfile);
	const char *from[] = { m->deps_lockfile, pkg_json };
	const char *to[] = { node ? "package-lock.json" : "requirements.txt", "package.json" };
	memset(x, 0, sizeof(*x));
	for (size_t i = 0; i < (node ? 2u : 1u); i++) {
		size_t n = 0;
		int r = store_tree_file_read(s, tree, from[i], DEPS_MAX_LOCKFILE, &x->data[i], &n,
					     err);
		if (r == -ENOENT)
			r = cdn_err_msg(err, ENOENT,
					"dependencies.%s: %s is not in the agent's directory",
					m->deps_runtime, from[i]);
		if (r < 0) {
			build_inputs_free(x);
			return r;
		}
		x->in[i] = (struct deps_input){ .name = to[i], .data = x->data[i], .len = n };
		x->n++;
	}
	return 0;
}

static int write_input(int dfd, const char *to, const char *data, size_t n, struct cdn_err *err)
{
	_cleanup_close_ int fd = openat(dfd, to, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
					0644);
	if (fd < 0 || cdn_write_all(fd, data, n) < 0)
		return cdn_err_set(err, errno ? errno : EIO, "dependencies: write %s", to);
	return 0;
}

/* Writes the inputs into the build's workspace, as the installer will
 * read them: requirements.txt as cordon rewrote it, package-lock.json
 * once every package is checked to come from the registry with its
 * integrity. Nothing reaches an installer before these checks. */
static int write_inputs(const struct build_inputs *x, const char *runtime, const char *url,
			int dfd, struct cdn_err *err)
{
	if (strcmp(runtime, "python") == 0) {
		_cleanup_free_ char *req = NULL;
		size_t n = 0;
		int r = deps_requirements_normalize(x->in[0].data, x->in[0].len, &req, &n, err);
		return r < 0 ? r : write_input(dfd, x->in[0].name, req, n, err);
	}
	int r = deps_npm_lock_check(x->in[0].data, x->in[0].len, url, err);
	for (size_t i = 0; r == 0 && i < x->n; i++)
		r = write_input(dfd, x->in[i].name, x->in[i].data, x->in[i].len, err);
	return r;
}

/* A failed build's message: the exit, and the end of what it printed. */
static int build_failed(int logfd, const struct sandbox_status *st, const char *what,
			struct cdn_err *err)
{
	char tail[DEPS_LOG_TAIL + 1] = "", shown[DEPS_LOG_TAIL + 1];
	off_t end = logfd >= 0 ? lseek(logfd, 0, SEEK_END) : -1;
	if (end > 0) {
		off_t from = end > DEPS_LOG_TAIL ? end - DEPS_LOG_TAIL : 0;
		ssize_t k = pread(logfd, tail, (size_t)(end - from), from);
		tail[k > 0 ? k : 0] = '\0';
	}
	/* Printable, one line: it ends up in a run's error and the API. */
	for (char *c = tail; *c; c++)
		if (*c == '\n' || *c == '\r' || *c == '\t')
			*c = ' ';
	cdn_printable_str(shown, sizeof(shown), tail, 0);
	return cdn_err_msg(err, EIO, "dependencies: %s failed (exit %d)%s%s", what, st->exit_code,
			   shown[0] ? ": " : "", shown);
}

static int build_in_sandbox(struct sandbox_config *cfg, const struct deps_options *o,
			    const char *url, const char *runtime,
			    struct sandbox_status *st, struct cdn_err *err)
{
	char host[EGRESS_MAX_HOST + 1];
	struct egress_registry reg;
	bool node = strcmp(runtime, "node") == 0;
	int r = parse_registry_url(node ? DEPS_ENV_NPM : DEPS_ENV_PYTHON, url, host, sizeof(host),
				   &reg, err);
	if (r < 0)
		return r;
	struct egress_policy *policy = NULL;
	if ((r = egress_policy_registries(&reg, 1, o->allow_private, o->n_allow_private, &policy,
					  err)) < 0)
		return r;
	struct egress_ca *ca = NULL;
	struct event_base *base = event_base_new();
	struct build_ctx b = { 0 };
	struct netpart *net = NULL;
	char id[40];
	r = base ? cdn_random_id("deps_", 8, id, sizeof(id)) : -ENOMEM;
	if (r < 0) {
		cdn_err_set(err, -r, "dependencies: build");
		goto out;
	}
	size_t n_names = 0;
	const char **names = egress_inspected_names(policy, &n_names);
	r = n_names ? egress_ca_new(id, names, n_names, &ca, err) : 0;
	free(names);
	if (r < 0)
		goto out;
	cfg->ca_pem = ca ? egress_ca_pem(ca) : NULL;
	if ((r = sandbox_spawn(cfg, &b.sb, err)) < 0)
		goto out;
	struct netpart_config nc = {
		.run_id = id,
		.policy = policy,
		.ca = ca,
		.hosts_file = o->hosts_file,
		.upstream_ca_file = o->upstream_ca,
		.mcp_fd = -1,
		.allow_degraded = o->allow_degraded,
	};
	sandbox_take_egress_fds(b.sb, &nc.proxy_fd, &nc.dns_udp_fd, &nc.dns_tcp_fd);
	struct netpart_hooks nh = { .ctx = &b, .event = build_net_event, .died = build_net_died };
	r = netpart_start(base, &nc, &nh, &net, err);
	if (r == 0)
		r = netpart_wait_ready(net, err);
	if (r < 0) {
		sandbox_kill(b.sb, false);
		goto out;
	}
	struct supervise_opts so = { .base = base, .sb = b.sb };
	r = run_supervise(&so, st, err);
	if (r == 0 && b.died)
		r = cdn_err_msg(err, ECHILD, "dependencies: the build's network part failed");
out:
	netpart_free(net);
	sandbox_free(b.sb);
	if (base)
		event_base_free(base);
	egress_policy_free(policy);
	egress_ca_free(ca);
	return r;
}

static int build_layer(const struct build_inputs *x, struct store *s,
		       const struct deps_options *o, struct deps_layer *l, struct cdn_err *err)
{
	char scratch[PATH_MAX];
	_cleanup_free_ char *text = NULL;
	int sfd = -1;
	int r = store_scratch_dir(s, scratch, sizeof(scratch), &sfd, err);
	if (r < 0)
		return r;
	int64_t t0 = cdn_mono_ms();
	bool node = strcmp(l->runtime, "node") == 0;
	const char *url = registry_url(l->runtime);
	/* Kept for a failure's message; never the caller's stdout, which may
	 * be `cordon run --json`'s events. */
	int logfd = o->log_fd >= 0 ? -1 : memfd_create("cordon-deps-log", MFD_CLOEXEC);
	if (o->log_fd < 0 && logfd < 0)
		logfd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (o->log_fd < 0 && logfd < 0) {
		r = cdn_err_set(err, errno, "dependencies: the build's output");
		store_scratch_remove(s, scratch);
		close(sfd);
		return r;
	}
	struct sandbox_config cfg;
	sandbox_config_init(&cfg);
	r = write_inputs(x, l->runtime, url, sfd, err);
	uid_t uid = 0;
	gid_t gid = 0;
	if (r == 0)
		r = sandbox_config_host_ids(&cfg, &uid, &gid, err);
	/* The build's workspace is the scratch directory itself: what it
	 * leaves there becomes the layer, with no copy. */
	if (r == 0 && geteuid() == 0 && fchown(sfd, uid, gid) < 0)
		r = cdn_err_set(err, errno, "dependencies: chown %s", scratch);
	if (r < 0)
		goto fail;

	char reg_env[4200], trusted[4200];
	char *npm[] = { "npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund",
			"--no-update-notifier", NULL };
	char *pip[] = { "python3", "-m", "pip", "install", "--no-deps", "--only-binary=:all:",
			"--no-cache-dir", "--disable-pip-version-check", "--no-input",
			"--target", "/workspace/python", "--index-url", (char *)url,
			"-r", "/workspace/requirements.txt", NULL, NULL, NULL };
	size_t pip_extra = CDN_ARRAY_SIZE(pip) - 3;
	if (!node && strncmp(url, "http://", 7) == 0) {
		/* The operator's plain-HTTP index (a mirror, a test's stand-in):
		 * pip ignores one unless told to trust it. */
		snprintf(trusted, sizeof(trusted), "%.*s", (int)strcspn(url + 7, "/?#"), url + 7);
		pip[pip_extra] = "--trusted-host";
		pip[pip_extra + 1] = trusted;
	}
	cfg.phases[0] = node ? npm : pip;
	cfg.n_phases = 1;
	cfg.workspace_dir = scratch;
	cfg.net = SANDBOX_NET_PROXY;
	cfg.limits.mem_bytes = DEPS_BUILD_MEM;
	cfg.limits.pids = DEPS_BUILD_PIDS;
	cfg.limits.tmp_bytes = DEPS_BUILD_TMP;
	cfg.limits.timeout_ms = DEPS_BUILD_TIMEOUT_MS;
	cfg.limits.nofile = 8192;
	cfg.allow_degraded = o->allow_degraded;
	cfg.stdout_fd = cfg.stderr_fd = o->log_fd >= 0 ? o->log_fd : logfd;
	snprintf(reg_env, sizeof(reg_env), "npm_config_registry=%s", url);
	/* Nothing is served inside a build sandbox: every request, a
	 * registry on loopback included, goes through the proxy. */
	const char *env[] = { reg_env, "no_proxy=", "NO_PROXY=", "npm_config_cache=/tmp/npm-cache",
			      "npm_config_update_notifier=false", "PIP_NO_CACHE_DIR=1",
			      /* No pip.conf of the host's or anyone's: options come
			       * from this command line alone. */
			      "PIP_CONFIG_FILE=/dev/null", "PIP_NO_INPUT=1",
			      "PYTHONDONTWRITEBYTECODE=1" };
	for (size_t i = 0; r == 0 && i < CDN_ARRAY_SIZE(env); i++)
		r = sandbox_config_add_env(&cfg, env[i], err);
	struct sandbox_status st = { 0 };
	if (r == 0)
		r = build_in_sandbox(&cfg, o, url, l->runtime, &st, err);
	if (r == 0 && st.exit_code != 0)
		r = build_failed(logfd, &st, node ? "npm ci" : "pip install", err);
	/* The inputs are not part of the layer: it holds what the installer
	 * made of them, and nothing of one agent's files for another. */
	for (size_t i = 0; r == 0 && i < x->n; i++)
		if (unlinkat(sfd, x->in[i].name, 0) < 0 && errno != ENOENT)
			r = cdn_err_set(err, errno, "dependencies: remove the build's %s",
					x->in[i].name);
	if (r < 0)
		goto fail;

	l->build_ms = (uint64_t)(cdn_mono_ms() - t0);
	json_t *meta = deps_layer_json(l);
	json_object_del(meta, "built"); /* a run's word, not the layer's */
	char t[CDN_RFC3339_MAX];
	cdn_rfc3339(cdn_wall_ms(), CDN_TIME_MS, t, sizeof(t));
	json_object_set_new(meta, "created", json_string(t));
	text = json_dumps(meta, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(meta);
	struct store_layer_info info;
	if (!text)
		r = cdn_err_set(err, ENOMEM, "dependencies");
	else
		r = store_layer_install(s, scratch, l->key, text, &info, err);
	if (r < 0)
		goto fail;
	l->built = info.installed;
	l->files = info.files;
	l->bytes = info.bytes;
	if (logfd >= 0)
		close(logfd);
	close(sfd);
	return 0;
fail:
	/* A failed build leaves nothing: no layer, no scratch. */
	close(sfd);
	store_scratch_remove(s, scratch);
	if (logfd >= 0)
		close(logfd);
	return r;
}

/* Times a run retries finding its layer when `cordon deps gc` removed it
 * between its build and its shared lock. */
#define DEPS_RESOLVE_TRIES 3

int deps_resolve(struct store *s, const char *tree, const struct agent_manifest *m,
		 const struct deps_options *o, struct deps_layer *out, int *hold,
		 struct cdn_err *err)
{
	memset(out, 0, sizeof(*out));
	if (hold)
		*hold = -1;
	if (!m->deps_runtime[0])
		return cdn_err_msg(err, EINVAL, "the agent declares no dependencies");
	_cleanup_(build_inputs_free) struct build_inputs x;
	int r = read_inputs(s, tree, m, &x, err);
	if (r < 0)
		return r;
	snprintf(out->lockfile, sizeof(out->lockfile), "%s", m->deps_lockfile);
	if ((r = deps_layer_key(m->deps_runtime, x.in, x.n, out, err)) < 0)
		return r;
	/*
	 * A shared lock on deps/<key>.lock while the layer is found, kept by
	 * a run until it ends: gc removes a layer only under the exclusive
	 * lock, so never one a run has bound. A build takes it exclusive (one
	 * build per key; a second process waits, then finds the layer), and
	 * drops to shared after; flock's change is not atomic, so a gc may
	 * come between, which the next try sees.
	 */
	for (int t = 0; t < DEPS_RESOLVE_TRIES; t++) {
		_cleanup_close_ int lfd = -1;
		bool exists = false;
		if ((r = store_layer_lock(s, out->key, LOCK_SH, &lfd, err)) < 0 ||
		    (r = store_layer_path(s, out->key, out->path, sizeof(out->path), &exists, err)) <
			    0)
			return r;
		if (!exists) {
			if (o->no_build)
				return cdn_err_msg(err, ENOENT,
						   "dependency layer %.12s is not built (cordon deps "
						   "build)",
						   out->key);
			close(lfd);
			lfd = -1;
			if ((r = store_layer_lock(s, out->key, LOCK_EX, &lfd, err)) < 0 ||
			    (r = store_layer_path(s, out->key, out->path, sizeof(out->path), &exists,
						  err)) < 0)
				return r;
			if (!exists && (r = build_layer(&x, s, o, out, err)) < 0)
				return r;
			while (flock(lfd, LOCK_SH) < 0)
				if (errno != EINTR)
					return cdn_err_set(err, errno, "dependencies: layer lock");
			if ((r = store_layer_path(s, out->key, out->path, sizeof(out->path),
						  &exists, err)) < 0)
				return r;
			if (!exists)
				continue;
		}
		if (hold)
			*hold = cdn_steal_fd(&lfd);
		return 0;
	}
	return cdn_err_msg(err, EAGAIN,
			   "dependencies: layer %.12s was removed (cordon deps gc) as it was "
			   "built, %d times",
			   out->key, DEPS_RESOLVE_TRIES);
}

/* ----------------------------------------------------------------- used */

int deps_tree_layer(struct store *s, const char *tree, struct deps_layer *out, bool *declares,
		    struct cdn_err *err)
{
	memset(out, 0, sizeof(*out));
	*declares = false;
	_cleanup_free_ char *doc = NULL;
	size_t dl = 0;
	struct agent_manifest *m = NULL;
	int r = store_tree_file_read(s, tree, "agent.json", MANIFEST_MAX_BYTES, &doc, &dl, err);
	if (r < 0)
		return r;
	if ((r = manifest_parse(doc, dl, "agent.json", &m, err)) < 0)
		return r;
	*declares = m->deps_runtime[0] != '\0';
	if (*declares) {
		struct build_inputs x;
		snprintf(out->lockfile, sizeof(out->lockfile), "%s", m->deps_lockfile);
		r = read_inputs(s, tree, m, &x, err);
		if (r == 0) {
			r = deps_layer_key(m->deps_runtime, x.in, x.n, out, err);
			build_inputs_free(&x);
		}
		bool exists = false;
		if (r == 0)
			r = store_layer_path(s, out->key, out->path, sizeof(out->path), &exists, err);
		if (r == 0 && !exists)
			out->path[0] = '\0';
	}
	manifest_free(m);
	return r;
}

int deps_used_keys(struct store *s, char (**keys)[STORE_HASH_HEX + 1], size_t *n,
		   size_t *unreadable, struct cdn_err *err)
{
	char(*trees)[STORE_HASH_HEX + 1] = NULL;
	size_t nt = 0;
	*keys = NULL;
	*n = 0;
	*unreadable = 0;
	int r = store_item_trees(s, &trees, &nt, err);
	if (r < 0)
		return r;
	*keys = calloc(nt + 1, sizeof(**keys));
	if (!*keys) {
		free(trees);
		return cdn_err_set(err, ENOMEM, "dependencies");
	}
	for (size_t i = 0; i < nt; i++) {
		struct cdn_err e = { 0 };
		struct deps_layer l;
		bool declares = false;
		/* Capabilities' trees have no agent.json: not agents. */
		int k = deps_tree_layer(s, trees[i], &l, &declares, &e);
		if (declares && k < 0)
			(*unreadable)++;
		else if (declares)
			snprintf((*keys)[(*n)++], STORE_HASH_HEX + 1, "%s", l.key);
	}
	free(trees);
	return 0;
}
