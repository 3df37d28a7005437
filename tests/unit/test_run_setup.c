/* SPDX-License-Identifier: Apache-2.0 */
/* The sandbox a run gets, built without a sandbox (run_sandbox_config). */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "registry/manifest.h"
#include "run/run_internal.h"

struct fixture {
	struct run_ctx c;
	struct run_options o;
	struct secret_set ss;
	char *env[2];
	struct sandbox_config cfg;
	struct run_config_store st;
};

static void setup_run(struct fixture *f, const char *manifest, const char *caps, const char *env)
{
	memset(f, 0, sizeof(*f));
	struct cdn_err err = { 0 };
	assert_int_equal(manifest_parse(manifest, strlen(manifest), "agent.json",
					&f->c.agent.manifest, &err),
			 0);
	snprintf(f->c.agent.tree_path, sizeof(f->c.agent.tree_path), "/srv/blobs/tree");
	snprintf(f->c.rec.id, sizeof(f->c.rec.id), "run_0123456789abcdef01234567");
	f->c.rec.input_json = (char *)"{\"k\":1}";
	f->c.o = &f->o;
	f->c.caps = caps ? json_loads(caps, 0, NULL) : json_array();
	f->c.env = env ? json_loads(env, 0, NULL) : json_null();
	sandbox_config_init(&f->cfg);
}

static void teardown_run(struct fixture *f)
{
	run_config_store_free(&f->st);
	manifest_free(f->c.agent.manifest);
	json_decref(f->c.caps);
	json_decref(f->c.env);
}

static ssize_t env_index(const struct sandbox_config *cfg, const char *entry)
{
	for (size_t i = 0; i < cfg->n_env; i++)
		if (strcmp(cfg->env[i], entry) == 0)
			return (ssize_t)i;
	return -1;
}

static void test_defaults_and_layout(void **state)
{
	(void)state;
	struct fixture f;
	setup_run(&f, "{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":[\"/bin/true\"]}", NULL, NULL);
	struct cdn_err err = { 0 };
	assert_int_equal(run_sandbox_config(&f.c, &f.ss, &f.cfg, &f.st, &err), 0);
	assert_int_equal(f.cfg.n_phases, 1);
	assert_ptr_equal(f.cfg.phases[0], f.c.agent.manifest->entrypoint);
	/* The operator's defaults when the manifest sets none. */
	assert_int_equal(f.cfg.limits.mem_bytes, 1ull << 30);
	assert_int_equal(f.cfg.limits.pids, 256);
	assert_int_equal(f.cfg.limits.workspace_bytes, 256ull << 20);
	assert_true(f.cfg.keep_workspace && f.cfg.steps_channel);
	/* input.json holds the record's input, and out/ exists. */
	assert_int_equal(f.cfg.n_files, 2);
	assert_string_equal(f.cfg.files[0].path, "input.json");
	assert_memory_equal(f.cfg.files[0].data, "{\"k\":1}", 7);
	assert_string_equal(f.cfg.files[1].path, "out");
	/* The snapshot, read-only, files and directories only. */
	assert_int_equal(f.cfg.n_binds, 1);
	assert_string_equal(f.cfg.binds[0].src, "/srv/blobs/tree");
	assert_string_equal(f.cfg.binds[0].dst, "/agent");
	assert_false(f.cfg.binds[0].rw);
	assert_true(f.cfg.binds[0].no_special_files);
	assert_true(env_index(&f.cfg, "CORDON_RUN_ID=run_0123456789abcdef01234567") >= 0);
	assert_true(env_index(&f.cfg, "CORDON_INPUT=/workspace/input.json") >= 0);
	teardown_run(&f);
}

static void test_manifest_limits_win_then_operator_defaults(void **state)
{
	(void)state;
	struct fixture f;
	setup_run(&f,
		  "{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":[\"/bin/true\"],"
		  "\"setup\":[\"/bin/sh\",\"-c\",\"true\"],"
		  "\"limits\":{\"mem\":\"64m\",\"timeout_seconds\":7}}",
		  NULL, NULL);
	f.o.default_pids = 32;
	f.o.workspace_bytes = 1u << 20;
	struct cdn_err err = { 0 };
	assert_int_equal(run_sandbox_config(&f.c, &f.ss, &f.cfg, &f.st, &err), 0);
	/* setup first, then the entrypoint, in one workspace. */
	assert_int_equal(f.cfg.n_phases, 2);
	assert_ptr_equal(f.cfg.phases[0], f.c.agent.manifest->setup);
	assert_ptr_equal(f.cfg.phases[1], f.c.agent.manifest->entrypoint);
	assert_int_equal(f.cfg.limits.mem_bytes, 64ull << 20);
	assert_int_equal(f.cfg.limits.timeout_ms, 7000);
	assert_int_equal(f.cfg.limits.pids, 32);
	assert_int_equal(f.cfg.limits.workspace_bytes, 1u << 20);
	teardown_run(&f);
}

static void test_capabilities_env_and_secrets(void **state)
{
	(void)state;
	struct fixture f;
	setup_run(&f, "{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":[\"/bin/true\"]}",
		  "[{\"name\":\"data\",\"path\":\"/srv/blobs/data\",\"mount\":\"/capabilities/data\"}]",
		  "{\"vars\":{\"MODE\":\"fast\",\"SHARED\":\"from-env\"}}");
	f.env[0] = (char *)"SHARED=from-secret";
	f.ss.env = f.env;
	f.ss.n = 1;
	struct cdn_err err = { 0 };
	assert_int_equal(run_sandbox_config(&f.c, &f.ss, &f.cfg, &f.st, &err), 0);
	assert_int_equal(f.cfg.n_binds, 2);
	assert_string_equal(f.cfg.binds[1].dst, "/capabilities/data");
	assert_false(f.cfg.binds[1].rw);
	assert_true(f.cfg.binds[1].no_special_files);
	ssize_t mode = env_index(&f.cfg, "MODE=fast");
	ssize_t from_env = env_index(&f.cfg, "SHARED=from-env");
	ssize_t from_secret = env_index(&f.cfg, "SHARED=from-secret");
	assert_true(mode >= 0 && from_env >= 0 && from_secret >= 0);
	/* The secret comes after the env's variable of the same name: it wins. */
	assert_true(from_secret > from_env);
	assert_int_equal(f.st.n_env, 2);
	teardown_run(&f);
}

static void test_a_bad_capability_mount_is_refused(void **state)
{
	(void)state;
	struct fixture f;
	setup_run(&f, "{\"name\":\"a\",\"version\":\"1\",\"entrypoint\":[\"/bin/true\"]}",
		  "[{\"name\":\"data\",\"path\":\"/srv/blobs/data\",\"mount\":\"relative\"}]", NULL);
	struct cdn_err err = { 0 };
	assert_true(run_sandbox_config(&f.c, &f.ss, &f.cfg, &f.st, &err) < 0);
	assert_true(err.msg[0] != '\0');
	teardown_run(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_and_layout),
		cmocka_unit_test(test_manifest_limits_win_then_operator_defaults),
		cmocka_unit_test(test_capabilities_env_and_secrets),
		cmocka_unit_test(test_a_bad_capability_mount_is_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
