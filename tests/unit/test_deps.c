/* SPDX-License-Identifier: Apache-2.0 */
/* Declared dependencies (docs/deps.md): the manifest's "dependencies",
 * the layer's key, and the `registries` egress category. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "egress/policy.h"
#include "registry/manifest.h"
#include "run/deps.h"

#define REQ "\"name\": \"a\", \"version\": \"1\", \"entrypoint\": [\"x\"]"

static struct agent_manifest *parse(const char *deps, struct cdn_err *err)
{
	char doc[1024];
	snprintf(doc, sizeof(doc), "{" REQ ", \"dependencies\": %s}", deps);
	struct agent_manifest *m = NULL;
	memset(err, 0, sizeof(*err));
	if (manifest_parse(doc, strlen(doc), "agent.json", &m, err) < 0)
		return NULL;
	return m;
}

static void test_manifest(void **state)
{
	(void)state;
	struct cdn_err err;
	struct agent_manifest *m = parse("{\"node\": \"package-lock.json\"}", &err);
	assert_non_null(m);
	assert_string_equal(m->deps_runtime, "node");
	assert_string_equal(m->deps_lockfile, "package-lock.json");
	manifest_free(m);
	m = parse("{\"python\": \"deps/requirements.txt\"}", &err);
	assert_non_null(m);
	assert_string_equal(m->deps_runtime, "python");
	assert_string_equal(m->deps_lockfile, "deps/requirements.txt");
	manifest_free(m);

	static const struct {
		const char *deps, *want;
	} bad[] = {
		{ "{}", "exactly one runtime" },
		{ "{\"node\": \"a\", \"python\": \"b\"}", "exactly one runtime" },
		{ "{\"ruby\": \"Gemfile.lock\"}", "unknown key \"ruby\"" },
		{ "{\"node\": 1}", "dependencies.node" },
		{ "{\"node\": \"../package-lock.json\"}", "inside the agent's directory" },
		{ "{\"node\": \"/etc/passwd\"}", "inside the agent's directory" },
		{ "{\"node\": \"a/./b\"}", "inside the agent's directory" },
		{ "{\"node\": \"a//b\"}", "inside the agent's directory" },
		{ "{\"node\": \"\"}", "inside the agent's directory" },
		{ "{\"node\": \"a b\"}", "inside the agent's directory" },
		{ "[\"node\"]", "dependencies" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		m = parse(bad[i].deps, &err);
		if (m || !strstr(err.msg, bad[i].want))
			fail_msg("%s: expected an error with \"%s\", got \"%s\"", bad[i].deps,
				 bad[i].want, m ? "(parsed)" : err.msg);
	}
	/* No dependencies: none. */
	const char *doc = "{" REQ "}";
	assert_int_equal(manifest_parse(doc, strlen(doc), "agent.json", &m, &err), 0);
	assert_string_equal(m->deps_runtime, "");
	manifest_free(m);
}

static void test_key(void **state)
{
	(void)state;
	struct deps_layer a = { 0 }, b = { 0 }, c = { 0 };
	struct cdn_err err = { 0 };
	if (deps_layer_key("node", "lock-1", 6, &a, &err) < 0)
		skip(); /* no node where a sandbox finds it */
	assert_int_equal(deps_layer_key("node", "lock-1", 6, &b, &err), 0);
	assert_int_equal(deps_layer_key("node", "lock-2", 6, &c, &err), 0);
	assert_string_equal(a.key, b.key);	    /* the same inputs, the same key */
	assert_string_not_equal(a.key, c.key);	    /* another lockfile, another */
	assert_string_not_equal(a.key, a.lockfile_sha256);
	assert_int_equal(strlen(a.key), 64);
	assert_string_equal(a.runtime, "node");
	assert_true(strncmp(a.platform, "linux-", 6) == 0);
	assert_true(a.runtime_version[0] != '\0');
	assert_int_equal(deps_layer_key("ruby", "x", 1, &a, &err), -EINVAL);
}

static void test_registries_policy(void **state)
{
	(void)state;
	struct egress_policy *p = NULL;
	struct cdn_err err = { 0 };
	struct egress_registry extra[] = { { "registry.test", 4873, false },
					   { "registry.npmjs.org", 443, true } };
	const char *priv[] = { "127.0.0.5:4873" };
	assert_int_equal(egress_policy_registries(extra, 2, priv, 1, &p, &err), 0);
	/* The three public registries and the operator's, nothing else. */
	assert_int_equal(p->n_rules, 4);
	for (size_t i = 0; i < p->n_rules; i++) {
		assert_int_equal(p->rules[i].methods, EGRESS_M_GET | EGRESS_M_HEAD);
		assert_string_equal(p->rules[i].group, "registries");
		assert_true(p->rules[i].category != EGRESS_CAT_LLM);
	}
	assert_null(egress_policy_match(p, "api.openai.com"));
	assert_null(egress_policy_match(p, "api.exa.ai"));
	assert_null(egress_policy_match(p, "arxiv.org"));
	const struct egress_rule *r = egress_policy_match(p, "registry.test");
	assert_non_null(r);
	assert_true(egress_rule_has_port(r, 4873));
	assert_false(r->inspect);
	r = egress_policy_match(p, "registry.npmjs.org");
	assert_non_null(r);
	assert_int_equal(r->n_ports, 1); /* merged, not twice */
	assert_true(r->inspect);	 /* GET-only holds inside HTTPS */
	assert_int_equal(p->n_private, 1);
	egress_policy_free(p);

	struct egress_registry wild = { "*.example.com", 443, true };
	assert_true(egress_policy_registries(&wild, 1, NULL, 0, &p, &err) < 0);
	assert_non_null(strstr(err.msg, "wildcard"));
	struct egress_registry evil = { "a.test\nprivate: [\"10.0.0.1:80\"]", 80, false };
	assert_true(egress_policy_registries(&evil, 1, NULL, 0, &p, &err) < 0);
}

static void test_registry_url(void **state)
{
	(void)state;
	struct cdn_err err = { 0 };
	assert_int_equal(deps_registry_setenv("CORDON_TEST_REG", "http://127.0.0.1:4873/", &err),
			 0);
	assert_string_equal(getenv("CORDON_TEST_REG"), "http://127.0.0.1:4873/");
	assert_int_equal(deps_registry_setenv("CORDON_TEST_REG", "https://r.example/npm", &err), 0);
	static const char *const bad[] = { "ftp://x/", "http://", "http://u:p@r.example/",
					   "http://r.example:0/", "http://r.example:99999/",
					   "http://r.example:80x/", "registry.npmjs.org" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (deps_registry_setenv("CORDON_TEST_REG", bad[i], &err) == 0)
			fail_msg("%s: accepted", bad[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_manifest),
		cmocka_unit_test(test_key),
		cmocka_unit_test(test_registries_policy),
		cmocka_unit_test(test_registry_url),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
