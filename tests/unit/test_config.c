/* SPDX-License-Identifier: Apache-2.0 */
/* cordon serve's config file (src/serve/config.c, docs/config.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <stdio.h>

#include "serve/serve.h"

static int parse(const char *yaml, struct serve_config *cfg, struct serve_config_file **f,
		 struct cdn_err *err)
{
	memset(cfg, 0, sizeof(*cfg));
	*f = NULL;
	return serve_config_parse(yaml, strlen(yaml), "cordon.yaml", cfg, f, err);
}

/* The error names the file, the line, the key's path and the message. */
static void parse_fails(const char *yaml, const char *where, const char *what)
{
	struct serve_config cfg;
	struct serve_config_file *f;
	struct cdn_err err = { 0 };
	assert_true(parse(yaml, &cfg, &f, &err) < 0);
	assert_null(f);
	if (!strstr(err.msg, where) || !strstr(err.msg, what))
		fail_msg("for %s: got '%s', wanted '%s' and '%s'", yaml, err.msg, where, what);
}

static void test_every_key(void **state)
{
	(void)state;
	const char *yaml = "version: 1\n"
			   "state: /var/lib/cordon\n"
			   "database: postgresql:///cordon?host=/run/postgresql\n"
			   "max_call_depth: 2\n"
			   "max_calls: 5\n"
			   "serve:\n"
			   "  listen: 0.0.0.0:9000\n"
			   "  concurrency: 8\n"
			   "  queue: 100\n"
			   "  workspace_queue: 10\n"
			   "  workspace_concurrency: 2\n"
			   "  streams_per_key: 4\n"
			   "  uploads: 3\n"
			   "  trusted_proxies: [10.0.0.1, '0:0::1']\n"
			   "  drain_timeout: 60\n"
			   "  register_root: /srv/agents\n"
			   "  prune_interval: 2h\n"
			   "metrics:\n"
			   "  listen: 127.0.0.1:9470\n"
			   "  token_file: /etc/cordon/metrics-token\n"
			   "egress:\n"
			   "  hosts: /etc/cordon/hosts\n"
			   "  allow_private: [10.1.2.3:8080]\n"
			   "  upstream_ca: /etc/cordon/ca.pem\n"
			   "deps:\n"
			   "  npm_registry: http://127.0.0.1:4873/\n"
			   "  python_index: https://pypi.internal/simple\n"
			   "worker:\n"
			   "  concurrency: 3\n"
			   "  labels: [zone=b, gpu=a100]\n"
			   "  lease: 10\n"
			   "  drain_timeout: 5\n"
			   "  warm_pool: 0\n"
			   "  metrics_listen: 127.0.0.1:9471\n";
	struct serve_config cfg;
	struct serve_config_file *f;
	struct cdn_err err = { 0 };
	assert_int_equal(parse(yaml, &cfg, &f, &err), 0);
	assert_string_equal(cfg.state_dir, "/var/lib/cordon");
	assert_int_equal(cfg.max_call_depth, 2);
	assert_int_equal(cfg.max_calls, 5);
	assert_string_equal(cfg.listen, "0.0.0.0:9000");
	assert_int_equal(cfg.concurrency, 8);
	assert_int_equal(cfg.queue, 100);
	assert_int_equal(cfg.workspace_queue, 10);
	assert_int_equal(cfg.workspace_concurrency, 2);
	assert_int_equal(cfg.max_streams_per_key, 4);
	assert_int_equal(cfg.max_uploads, 3);
	assert_int_equal(cfg.n_trusted_proxies, 2);
	assert_string_equal(cfg.trusted_proxies[0], "10.0.0.1");
	assert_string_equal(cfg.trusted_proxies[1], "::1"); /* canonical */
	assert_int_equal(cfg.drain_timeout_s, 60);
	assert_string_equal(cfg.register_root, "/srv/agents");
	assert_string_equal(cfg.hosts_file, "/etc/cordon/hosts");
	assert_int_equal(cfg.n_allow_private, 1);
	assert_string_equal(cfg.allow_private[0], "10.1.2.3:8080");
	assert_string_equal(cfg.upstream_ca, "/etc/cordon/ca.pem");
	assert_string_equal(cfg.npm_registry, "http://127.0.0.1:4873/");
	assert_string_equal(cfg.python_index, "https://pypi.internal/simple");
	assert_string_equal(cfg.database, "postgresql:///cordon?host=/run/postgresql");
	assert_int_equal(cfg.prune_interval_s, 7200);
	assert_string_equal(cfg.metrics_listen, "127.0.0.1:9470");
	assert_string_equal(cfg.metrics_token_file, "/etc/cordon/metrics-token");
	/* The worker's section, apart from serve's settings of the same names. */
	assert_int_equal(cfg.worker_concurrency, 3);
	assert_string_equal(cfg.worker_labels, "{\"gpu\":\"a100\",\"zone\":\"b\"}");
	assert_int_equal(cfg.worker_lease_s, 10);
	assert_int_equal(cfg.worker_drain_timeout_s, 5);
	assert_int_equal(cfg.worker_warm_pool, 0);
	assert_string_equal(cfg.worker_metrics_listen, "127.0.0.1:9471");
	assert_int_equal(cfg.drain_timeout_s, 60);
	serve_config_file_free(f);
	/* Each kind checks its own: an absolute path is not a sink URL. */
	size_t root = 0;
	const struct serve_option *so;
	for (size_t i = 0; (so = serve_option_at(i)); i++)
		if (strcmp(so->flag, "register-root") == 0)
			root = i;
	assert_int_equal(serve_option_set(&cfg, root, "/srv/agents://x", &err), 0);
	assert_string_equal(cfg.register_root, "/srv/agents://x");
	/* A duration: whole seconds, 0 (off) to 7 days. */
	assert_int_equal(parse("version: 1\nserve:\n  prune_interval: 0\n", &cfg, &f, &err), 0);
	assert_int_equal(cfg.prune_interval_s, 0);
	serve_config_file_free(f);
	assert_true(parse("version: 1\nserve:\n  prune_interval: 8d\n", &cfg, &f, &err) < 0);
	assert_non_null(strstr(err.msg, "prune_interval"));
	assert_true(parse("version: 1\nserve:\n  prune_interval: 1500ms\n", &cfg, &f, &err) < 0);
}

static void test_refused(void **state)
{
	(void)state;
	parse_fails("version: 1\nserve:\n  listen: x\n  concurency: 4\n", "cordon.yaml:4: serve",
		    "unknown key 'concurency'");
	parse_fails("version: 1\nlisten: 127.0.0.1:1\n", "cordon.yaml:2", "unknown key 'listen'");
	parse_fails("version: 1\nworkers: {}\n", "cordon.yaml:2", "unknown key 'workers'");
	parse_fails("version: 1\nworker:\n  lease: 0\n", "cordon.yaml:3: worker.lease", "from 1");
	parse_fails("version: 1\nworker:\n  labels: [gpu]\n", "worker.labels", "gpu");
	parse_fails("version: 1\nworker:\n  listen: x\n", "cordon.yaml:3: worker",
		    "unknown key 'listen'");
	parse_fails("serve: {}\n", "cordon.yaml:1", "missing key 'version'");
	parse_fails("version: 2\n", "cordon.yaml:1: version", "unsupported version 2");
	parse_fails("version: 1\nmax_call_depth: 17\n", "cordon.yaml:2: max_call_depth",
		    "from 1 to 16");
	parse_fails("", "cordon.yaml:1", "the config is empty");
	parse_fails("- a\n", "cordon.yaml:1", "expected a mapping");
	parse_fails("version: 1\nserve: 4\n", "cordon.yaml:2: serve", "expected a mapping");
	parse_fails("version: 1\nserve:\n  queue: 0\n", "cordon.yaml:3: serve.queue",
		    "from 1 to 100000");
	parse_fails("version: 1\nserve:\n  queue: 1e3\n", "serve.queue", "got '1e3'");
	parse_fails("version: 1\nserve:\n  queue: '12'\n", "serve.queue", "a quoted string");
	parse_fails("version: 1\nstate: var/lib\n", "cordon.yaml:2: state", "not an absolute path");
	parse_fails("version: 1\nserve:\n  trusted_proxies: 1.2.3.4\n", "serve.trusted_proxies",
		    "expected a list");
	parse_fails("version: 1\nserve:\n  trusted_proxies: [1.2.3.4, proxy.lan]\n",
		    "cordon.yaml:3: serve.trusted_proxies[1]", "not an IP address");
	parse_fails("version: 1\nserve:\n  queue: 1\n  queue: 2\n", "cordon.yaml:4: serve",
		    "duplicate key 'queue'");
	parse_fails("version: 1\nserve: &a {queue: 1}\n", "cordon.yaml:2",
		    "the config is plain YAML");
	parse_fails("version: 1\n---\nversion: 1\n", "cordon.yaml:2",
		    "a config file holds exactly one");
}

/* A section whose keys are all commented out (the packaged file's egress:)
 * holds no settings; an empty value for a setting is still refused. */
static void test_empty_section(void **state)
{
	(void)state;
	struct serve_config cfg;
	struct serve_config_file *f;
	struct cdn_err err = { 0 };
	assert_int_equal(parse("version: 1\nserve:\n  queue: 7\negress:\n  # hosts: /x\n", &cfg,
			       &f, &err),
			 0);
	assert_int_equal(cfg.queue, 7);
	assert_null(cfg.hosts_file);
	serve_config_file_free(f);
	parse_fails("version: 1\nserve:\n  queue:\n", "cordon.yaml:3: serve.queue",
		    "an empty value");
	parse_fails("version: 1\nserve: ''\n", "cordon.yaml:2: serve", "expected a mapping");
}

/* A flag (serve_option_set after the file) overrides the file's value, and
 * each flag is the file's key under another name: one table. */
static void test_flags_share_the_table(void **state)
{
	(void)state;
	struct serve_config cfg;
	struct serve_config_file *f;
	struct cdn_err err = { 0 };
	assert_int_equal(parse("version: 1\nserve:\n  queue: 7\n  trusted_proxies: [1.1.1.1]\n",
			       &cfg, &f, &err),
			 0);
	size_t queue = 0, proxy = 0;
	const struct serve_option *o;
	for (size_t i = 0; (o = serve_option_at(i)); i++) {
		char key[64];
		snprintf(key, sizeof(key), "%s", o->flag);
		for (char *p = key; *p; p++)
			if (*p == '-')
				*p = '_';
		/* Keys are flags with '_' for '-', without their section's
		 * name ("metrics-listen" is metrics.listen), but for the lists'
		 * plurals. */
		const char *k = key;
		if (o->section && strncmp(k, o->section, strlen(o->section)) == 0 &&
		    k[strlen(o->section)] == '_')
			k += strlen(o->section) + 1;
		if (!o->list)
			assert_string_equal(k, o->key);
		if (strcmp(o->flag, "queue") == 0)
			queue = i;
		if (strcmp(o->flag, "trusted-proxy") == 0)
			proxy = i;
	}
	assert_int_equal(serve_option_set(&cfg, queue, "9", &err), 0);
	assert_int_equal(cfg.queue, 9);
	serve_option_clear(&cfg, proxy);
	assert_int_equal(serve_option_set(&cfg, proxy, "2.2.2.2", &err), 0);
	assert_int_equal(cfg.n_trusted_proxies, 1);
	assert_string_equal(cfg.trusted_proxies[0], "2.2.2.2");
	assert_true(serve_option_set(&cfg, queue, "100001", &err) < 0);
	assert_non_null(strstr(err.msg, "from 1 to 100000"));
	serve_config_file_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_key),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_empty_section),
		cmocka_unit_test(test_flags_share_the_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
