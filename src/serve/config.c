/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The settings of cordon serve and cordon worker: one table gives each its
 * command-line flag, its key in the config file (docs/config.md), its type,
 * its bound and whose flag it is, and the flags (src/cli/cmd_serve.c,
 * cmd_worker.c) and the file are read through it, so a setting cannot mean
 * one thing as a flag and another in the file.
 *
 * The file is read strictly (base/yaml.h): an unknown key is an error that
 * names it and its line, since a misspelt "concurency" silently ignored
 * would leave the service running with a setting the operator believes
 * changed.
 */
#define _GNU_SOURCE
#include "serve/serve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/file.h"
#include "base/units.h"
#include "base/yaml.h"

enum opt_kind {
	OPT_STRING,  /* any text: the service checks it when it starts (listen) */
	OPT_PATH,    /* a path; absolute when it comes from the file */
	OPT_ABSPATH, /* an absolute path wherever it comes from */
	OPT_UINT,    /* 1 to max */
	OPT_COUNT,   /* 0 to max */
	OPT_PROXY,   /* an IP address, kept in its canonical form */
	OPT_PRIVATE, /* IP:PORT, checked by each run's policy */
	OPT_SECONDS, /* a duration ("1h", "90s") in whole seconds, 0 to max; 0 is off */
	OPT_MS,	     /* a duration ("250ms", "1s") in milliseconds, 1 to max */
	OPT_SINK,    /* file:///PATH or /PATH (sink_check) */
	OPT_LABEL,   /* KEY=VALUE, added to a labels object (store_labels_add) */
	OPT_DISPATCH, /* "embedded" (false) or "workers" (true) */
};

struct opt_def {
	struct serve_option pub;
	enum opt_kind kind;
	uint32_t max;
	size_t field; /* offsetof the value in struct serve_config */
};

#define FIELD(name) offsetof(struct serve_config, name)
/* Whose flag each is. */
#define SC_SERVE SERVE_SCOPE_SERVE
#define SC_WORKER SERVE_SCOPE_WORKER
#define SC_BOTH (SERVE_SCOPE_SERVE | SERVE_SCOPE_WORKER)

static const struct opt_def opts[] = {
	{ { "state", NULL, "state", false, "DIR", SC_BOTH }, OPT_PATH, 0, FIELD(state_dir) },
	{ { "database", NULL, "database", false, "URL", SC_BOTH }, OPT_STRING, 0, FIELD(database) },
	{ { "blobs", NULL, "blobs", false, "URL", SC_BOTH }, OPT_STRING, 0, FIELD(blobs) },
	{ { "listen", "serve", "listen", false, "ADDR:PORT", SC_SERVE },
	  OPT_STRING, 0, FIELD(listen) },
	{ { "concurrency", "serve", "concurrency", false, "N", SC_SERVE },
	  OPT_UINT, 1024, FIELD(concurrency) },
	{ { "queue", "serve", "queue", false, "N", SC_SERVE }, OPT_UINT, 100000, FIELD(queue) },
	{ { "workspace-queue", "serve", "workspace_queue", false, "N", SC_SERVE },
	  OPT_UINT, 100000, FIELD(workspace_queue) },
	{ { "workspace-concurrency", "serve", "workspace_concurrency", false, "N", SC_SERVE },
	  OPT_UINT, 1024, FIELD(workspace_concurrency) },
	{ { "warm-pool", "serve", "warm_pool", false, "N", SC_SERVE },
	  OPT_COUNT, 256, FIELD(warm_pool) },
	{ { "streams-per-key", "serve", "streams_per_key", false, "N", SC_SERVE },
	  OPT_UINT, 1024, FIELD(max_streams_per_key) },
	{ { "uploads", "serve", "uploads", false, "N", SC_SERVE },
	  OPT_UINT, 64, FIELD(max_uploads) },
	{ { "trusted-proxy", "serve", "trusted_proxies", true, "ADDR", SC_SERVE },
	  OPT_PROXY, SERVE_MAX_TRUSTED_PROXIES, 0 },
	{ { "dispatch", "serve", "dispatch", false, "MODE", SC_SERVE },
	  OPT_DISPATCH, 0, FIELD(dispatch_workers) },
	{ { "drain-timeout", "serve", "drain_timeout", false, "SECS", SC_SERVE },
	  OPT_UINT, 86400, FIELD(drain_timeout_s) },
	{ { "register-root", "serve", "register_root", false, "DIR", SC_SERVE },
	  OPT_ABSPATH, 0, FIELD(register_root) },
	{ { "prune-interval", "serve", "prune_interval", false, "AGE", SC_SERVE },
	  OPT_SECONDS, 7 * 86400, FIELD(prune_interval_s) },
	{ { "evidence-sink", "serve", "evidence_sink", false, "DIR", SC_SERVE },
	  OPT_SINK, 0, FIELD(evidence_sink) },
	{ { "service-backoff", "service", "backoff", false, "AGE", SC_SERVE },
	  OPT_MS, 3600 * 1000, FIELD(service_backoff_ms) },
	{ { "service-backoff-max", "service", "backoff_max", false, "AGE", SC_SERVE },
	  OPT_MS, 86400 * 1000, FIELD(service_backoff_max_ms) },
	{ { "crash-loop-exits", "service", "crash_loop_exits", false, "N", SC_SERVE },
	  OPT_UINT, STORE_SERVICE_EXITS_MAX, FIELD(crash_loop_exits) },
	{ { "crash-loop-window", "service", "crash_loop_window", false, "AGE", SC_SERVE },
	  OPT_MS, 86400 * 1000, FIELD(crash_loop_window_ms) },
	{ { "service-stop-timeout", "service", "stop_timeout", false, "AGE", SC_SERVE },
	  OPT_MS, 3600 * 1000, FIELD(service_stop_ms) },
	{ { "metrics-listen", "metrics", "listen", false, "ADDR:PORT", SC_SERVE },
	  OPT_STRING, 0, FIELD(metrics_listen) },
	{ { "metrics-token-file", "metrics", "token_file", false, "FILE", SC_SERVE },
	  OPT_PATH, 0, FIELD(metrics_token_file) },
	{ { "hosts", "egress", "hosts", false, "FILE", SC_BOTH }, OPT_PATH, 0, FIELD(hosts_file) },
	{ { "allow-private", "egress", "allow_private", true, "IP:PORT", SC_BOTH },
	  OPT_PRIVATE, SERVE_MAX_PRIVATE, 0 },
	{ { "upstream-ca", "egress", "upstream_ca", false, "FILE", SC_BOTH },
	  OPT_PATH, 0, FIELD(upstream_ca) },
	{ { "max-call-depth", NULL, "max_call_depth", false, "N", SC_BOTH },
	  OPT_UINT, 16, FIELD(max_call_depth) },
	{ { "max-calls", NULL, "max_calls", false, "N", SC_BOTH },
	  OPT_UINT, 1024, FIELD(max_calls) },
	{ { "npm-registry", "deps", "npm_registry", false, "URL", SC_BOTH },
	  OPT_STRING, 0, FIELD(npm_registry) },
	{ { "python-index", "deps", "python_index", false, "URL", SC_BOTH },
	  OPT_STRING, 0, FIELD(python_index) },
	{ { "concurrency", "worker", "concurrency", false, "N", SC_WORKER },
	  OPT_UINT, 1024, FIELD(worker_concurrency) },
	{ { "label", "worker", "labels", true, "KEY=VALUE", SC_WORKER },
	  OPT_LABEL, 32, FIELD(worker_labels) },
	{ { "lease", "worker", "lease", false, "SECS", SC_WORKER },
	  OPT_UINT, 3600, FIELD(worker_lease_s) },
	{ { "drain-timeout", "worker", "drain_timeout", false, "SECS", SC_WORKER },
	  OPT_UINT, 86400, FIELD(worker_drain_timeout_s) },
	{ { "warm-pool", "worker", "warm_pool", false, "N", SC_WORKER },
	  OPT_COUNT, 256, FIELD(worker_warm_pool) },
	{ { "metrics-listen", "worker", "metrics_listen", false, "ADDR:PORT", SC_WORKER },
	  OPT_STRING, 0, FIELD(worker_metrics_listen) },
};

const struct serve_option *serve_option_at(size_t i)
{
	return i < CDN_ARRAY_SIZE(opts) ? &opts[i].pub : NULL;
}

void serve_option_clear(struct serve_config *cfg, size_t i)
{
	if (i < CDN_ARRAY_SIZE(opts) && opts[i].kind == OPT_LABEL)
		cfg->worker_labels[0] = '\0';
	if (i < CDN_ARRAY_SIZE(opts) && opts[i].kind == OPT_PROXY)
		cfg->n_trusted_proxies = 0;
	else if (i < CDN_ARRAY_SIZE(opts) && opts[i].kind == OPT_PRIVATE)
		cfg->n_allow_private = 0;
}

int serve_option_flag(struct serve_config *cfg, size_t i, bool *seen, const char *value,
		      struct cdn_err *err)
{
	if (i < CDN_ARRAY_SIZE(opts) && opts[i].pub.list && !seen[i])
		serve_option_clear(cfg, i);
	seen[i] = true;
	return serve_option_set(cfg, i, value, err);
}

int serve_option_set(struct serve_config *cfg, size_t i, const char *value, struct cdn_err *err)
{
	if (i >= CDN_ARRAY_SIZE(opts))
		return cdn_err_msg(err, EINVAL, "internal error: no option %zu", i);
	const struct opt_def *o = &opts[i];
	char *base = (char *)cfg;
	switch (o->kind) {
	case OPT_SINK: {
		char dir[PATH_MAX];
		int r = sink_check(value, dir, sizeof(dir), err);
		if (r < 0)
			return r;
	}
		/* fall through */
	case OPT_ABSPATH:
		if (o->kind == OPT_ABSPATH && value[0] != '/')
			return cdn_err_msg(err, EINVAL, "'%s' is not an absolute path", value);
		/* fall through */
	case OPT_STRING:
	case OPT_PATH:
		if (!value[0])
			return cdn_err_msg(err, EINVAL, "expected a %s, got an empty value", o->pub.arg);
		*(const char **)(void *)(base + o->field) = value;
		return 0;
	case OPT_UINT:
	case OPT_COUNT: {
		uint64_t x;
		struct cdn_err e = { 0 };
		unsigned lo = o->kind == OPT_COUNT ? 0 : 1;
		if (cdn_parse_uint(value, o->max, &x, &e) < 0 || x < lo)
			return cdn_err_msg(err, EINVAL, "'%s' is not a number from %u to %u", value,
					   lo, o->max);
		*(unsigned *)(void *)(base + o->field) = (unsigned)x;
		return 0;
	}
	case OPT_MS: {
		uint64_t ms;
		struct cdn_err e = { 0 };
		if (cdn_parse_duration_ms(value, &ms, &e) < 0 || ms < 1 || ms > o->max)
			return cdn_err_msg(err, EINVAL,
					   "'%s': a duration such as 500ms, 10s or 5m, from 1ms to "
					   "%ums",
					   value, o->max);
		*(unsigned *)(void *)(base + o->field) = (unsigned)ms;
		return 0;
	}
	case OPT_SECONDS: {
		uint64_t ms;
		struct cdn_err e = { 0 };
		if (cdn_parse_duration_ms(value, &ms, &e) < 0 || ms % 1000 || ms / 1000 > o->max)
			return cdn_err_msg(err, EINVAL,
					   "'%s': a duration in whole seconds such as 1h, at most %us "
					   "(0: off)",
					   value, o->max);
		*(unsigned *)(void *)(base + o->field) = (unsigned)(ms / 1000);
		return 0;
	}
	case OPT_PROXY: {
		unsigned char a[sizeof(struct in6_addr)];
		int af = inet_pton(AF_INET, value, a) == 1	 ? AF_INET
			 : inet_pton(AF_INET6, value, a) == 1 ? AF_INET6
							       : 0;
		if (!af)
			return cdn_err_msg(err, EINVAL, "'%s' is not an IP address", value);
		size_t n = cfg->n_trusted_proxies;
		if (n == SERVE_MAX_TRUSTED_PROXIES)
			return cdn_err_msg(err, E2BIG, "at most %d trusted proxies",
					   SERVE_MAX_TRUSTED_PROXIES);
		/* The server compares addresses as inet_ntop writes them. */
		if (!inet_ntop(af, a, cfg->trusted_proxy_text[n], sizeof(cfg->trusted_proxy_text[n])))
			return cdn_err_set(err, errno, "inet_ntop");
		cfg->trusted_proxies[cfg->n_trusted_proxies++] = cfg->trusted_proxy_text[n];
		return 0;
	}
	case OPT_DISPATCH:
		if (strcmp(value, "embedded") != 0 && strcmp(value, "workers") != 0)
			return cdn_err_msg(err, EINVAL,
					   "'%s': expected embedded (this server runs the runs) or "
					   "workers (cordon worker processes take them from the "
					   "database)",
					   value);
		*(bool *)(void *)(base + o->field) = strcmp(value, "workers") == 0;
		return 0;
	case OPT_LABEL:
		return store_labels_add(cfg->worker_labels, value, err);
	case OPT_PRIVATE:
		if (cfg->n_allow_private == SERVE_MAX_PRIVATE)
			return cdn_err_msg(err, E2BIG, "at most %d private destinations",
					   SERVE_MAX_PRIVATE);
		cfg->allow_private[cfg->n_allow_private++] = value;
		return 0;
	}
	return cdn_err_msg(err, EINVAL, "internal error: option %zu", i);
}

/* ------------------------------------------------------------------ the file */

struct serve_config_file {
	struct cdn_ynode root;
};

void serve_config_file_free(struct serve_config_file *f)
{
	if (!f)
		return;
	cdn_ynode_clear(&f->root);
	free(f);
}

/* One value of the file, as its flag's argument would be. */
static int set_from_file(struct cdn_yctx *c, struct serve_config *cfg, size_t i,
			 const struct cdn_ynode *v, const char *path, int kline)
{
	const struct opt_def *o = &opts[i];
	const char *text = NULL;
	int r = 0;
	if (o->kind == OPT_UINT || o->kind == OPT_COUNT) {
		uint32_t x;
		r = cdn_yget_uint(c, v, path, kline, o->kind == OPT_COUNT ? 0 : 1, o->max, &x);
		text = v->value;
	} else {
		r = cdn_yget_string(c, v, path, kline, &text);
	}
	if (r == 0 && (o->kind == OPT_PATH || o->kind == OPT_ABSPATH) && text[0] != '/')
		/* Relative to what? Not to wherever the service was started. */
		return cdn_yaml_err(c, cdn_yaml_value_line(v, kline), path,
				    "'%s' is not an absolute path (the file's paths are)", text);
	struct cdn_err e = { 0 };
	if (r == 0 && serve_option_set(cfg, i, text, &e) < 0)
		r = cdn_yaml_err(c, cdn_yaml_value_line(v, kline), path, "%s", e.msg);
	return r;
}

static int read_list(struct cdn_yctx *c, struct serve_config *cfg, size_t i,
		     const struct cdn_ynode *v, const char *path, int kline)
{
	int r = cdn_yget_list(c, v, path, kline, opts[i].pub.arg);
	if (r == 0 && v->n > opts[i].max)
		r = cdn_yaml_err(c, kline, path, "%zu items, more than %u", v->n, opts[i].max);
	for (size_t k = 0; r == 0 && k < v->n; k++) {
		char ip[CDN_YAML_PATH_MAX];
		cdn_yaml_path_index(ip, sizeof(ip), path, k);
		r = set_from_file(c, cfg, i, &v->kids[k], ip, v->kids[k].line);
	}
	return r;
}

/* The keys of one mapping: section's (NULL: the top level's), and the
 * sections when top. */
static int read_mapping(struct cdn_yctx *c, struct serve_config *cfg, const struct cdn_ynode *map,
			const char *section, int kline)
{
	static const char *const sections[] = { "serve",  "egress",  "metrics",
						"worker", "service", "deps" };
	const char *names[CDN_YAML_MAX_KEYS];
	size_t which[CDN_YAML_MAX_KEYS], n = 0;
	if (!section)
		names[n++] = "version"; /* checked first, by cdn_yaml_check_version */
	for (size_t s = 0; !section && s < CDN_ARRAY_SIZE(sections); s++)
		names[n++] = sections[s];
	size_t first_opt = n;
	for (size_t i = 0; i < CDN_ARRAY_SIZE(opts) && n < CDN_YAML_MAX_KEYS; i++) {
		const char *sec = opts[i].pub.section;
		if ((!sec && !section) || (sec && section && strcmp(sec, section) == 0)) {
			which[n] = i;
			names[n++] = opts[i].pub.key;
		}
	}
	const char *path = section ? section : "";
	struct cdn_ymap_iter it;
	char what[64];
	snprintf(what, sizeof(what), "a mapping of %s settings", section ? section : "cordon's");
	int r = cdn_ymap_begin(c, map, path, kline, what, &it);
	size_t idx;
	const struct cdn_ynode *v;
	int kl;
	while (r == 0 && (r = cdn_ymap_next(c, &it, path, names, n, &idx, &v, &kl)) == 0) {
		char kp[CDN_YAML_PATH_MAX];
		cdn_yaml_path_key(kp, sizeof(kp), path, names[idx]);
		if (idx == 0 && !section)
			continue; /* version */
		if (idx < first_opt) {
			/* "egress:" with every key below it commented out, as
			 * in the packaged file: a section without settings. */
			if (v->type == CDN_Y_SCALAR && v->plain && v->len == 0)
				continue;
			r = read_mapping(c, cfg, v, names[idx], kl);
		} else if (opts[which[idx]].pub.list)
			r = read_list(c, cfg, which[idx], v, kp, kl);
		else
			r = set_from_file(c, cfg, which[idx], v, kp, kl);
	}
	return r < 0 ? r : 0;
}

int serve_config_parse(const char *yaml, size_t len, const char *src, struct serve_config *cfg,
		       struct serve_config_file **out, struct cdn_err *err)
{
	struct cdn_yctx c = { .src = src, .what = "config", .err = err };
	struct serve_config_file *f = calloc(1, sizeof(*f));
	if (!f)
		return cdn_err_set(err, ENOMEM, "%s", src);
	/* version, a section, a list: three levels at most. */
	int r = cdn_yaml_load(&c, yaml, len, 3, &f->root);
	if (r == -ENODATA)
		r = cdn_err_msg(err, ENODATA, "%s:1: the config is empty; it needs at least "
				"'version: 1'", src);
	if (r == 0)
		r = cdn_ymap_begin(&c, &f->root, "", 1, "a mapping such as 'version: 1'",
				   &(struct cdn_ymap_iter){ 0 });
	if (r == 0)
		r = cdn_yaml_check_version(&c, &f->root, 1);
	if (r == 0)
		r = read_mapping(&c, cfg, &f->root, NULL, 1);
	if (r < 0) {
		serve_config_file_free(f);
		return r;
	}
	*out = f;
	return 0;
}

int serve_config_load(const char *path, struct serve_config *cfg, struct serve_config_file **out,
		      struct cdn_err *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return cdn_err_set(err, errno, "config %s", path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return cdn_err_set(err, errno, "config %s", path);
	if (!S_ISREG(st.st_mode))
		return cdn_err_msg(err, EINVAL, "config %s: not a regular file", path);
	/* Checked on the open file, not the path: whoever can write it decides
	 * which private addresses the runs reach and which directories owners
	 * may register from. */
	if ((st.st_uid != 0 && st.st_uid != geteuid()) || (st.st_mode & (S_IWGRP | S_IWOTH)))
		return cdn_err_msg(err, EPERM,
				   "config %s: refusing a file that another user can change (it "
				   "must belong to root or to this user, without group or world "
				   "write)",
				   path);
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	int r = cdn_read_fd(fd, SERVE_MAX_CONFIG_BYTES, &buf, &len);
	if (r == -EFBIG)
		return cdn_err_msg(err, EFBIG, "config %s: more than the limit of %d bytes", path,
				   SERVE_MAX_CONFIG_BYTES);
	if (r < 0)
		return cdn_err_set(err, -r, "config %s", path);
	return serve_config_parse(buf, len, path, cfg, out, err);
}
