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

static int key_of(const char *runtime, const char *lock, const char *pkg, struct deps_layer *l,
		  struct cdn_err *err)
{
	struct deps_input in[] = { { "package-lock.json", lock, strlen(lock) },
				   { "package.json", pkg, pkg ? strlen(pkg) : 0 } };
	return deps_layer_key(runtime, in, pkg ? 2 : 1, l, err);
}

static void test_key(void **state)
{
	(void)state;
	struct deps_layer a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 }, e = { 0 };
	struct cdn_err err = { 0 };
	if (key_of("node", "lock-1", "{}", &a, &err) < 0)
		skip(); /* no node where a sandbox finds it */
	assert_int_equal(key_of("node", "lock-1", "{}", &b, &err), 0);
	assert_int_equal(key_of("node", "lock-2", "{}", &c, &err), 0);
	assert_string_equal(a.key, b.key);	    /* the same inputs, the same key */
	assert_string_not_equal(a.key, c.key);	    /* another lockfile, another */
	/* Another package.json, another key: the build saw it. */
	assert_int_equal(key_of("node", "lock-1", "{\"x\":1}", &d, &err), 0);
	assert_string_not_equal(a.key, d.key);
	assert_string_equal(a.lockfile_sha256, d.lockfile_sha256);
	/* Bytes moved from one input to the next: the lengths tell them apart. */
	assert_int_equal(key_of("node", "lock-1{", "}", &e, &err), 0);
	assert_string_not_equal(a.key, e.key);
	assert_string_not_equal(a.key, a.lockfile_sha256);
	assert_int_equal(strlen(a.key), 64);
	assert_string_equal(a.runtime, "node");
	assert_true(strncmp(a.platform, "linux-", 6) == 0);
	assert_true(a.runtime_version[0] != '\0');
	assert_int_equal(key_of("ruby", "x", NULL, &a, &err), -EINVAL);
}

static void test_requirements(void **state)
{
	(void)state;
	struct cdn_err err = { 0 };
	char *out = NULL;
	size_t n = 0;
	const char *h = "0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789abcdef";
	char in[1024];
	snprintf(in, sizeof(in),
		 "# pinned\n\nGreet_Py.Two==1.0.post1  # a comment\r\nzope.interface==6.0 \\\n"
		 "    --hash=sha256:%s\n",
		 h);
	assert_int_equal(deps_requirements_normalize(in, strlen(in), &out, &n, &err), 0);
	assert_string_equal(out, "greet-py-two==1.0.post1\nzope-interface==6.0 --hash=sha256:"
				 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n");
	assert_int_equal(n, strlen(out));
	free(out);
	static const struct {
		const char *in, *want;
	} bad[] = {
		{ "--no-binary evil\nevil==1.0\n", "line 1: \"--no-binary\": an option line" },
		{ "evil==1.0\n--no-binary=:all:\n", "line 2" },
		{ "-r other.txt\n", "option line" },
		{ "-c c.txt\n", "option line" },
		{ "-e .\n", "option line" },
		{ "--index-url http://x/\n", "option line" },
		{ "evil\n", "expected NAME==VERSION" },
		{ "evil>=1.0\n", "expected NAME==VERSION" },
		{ "evil==1.*\n", "not an exact version" },
		{ "evil===1.0\n", "not an exact version" },
		{ "evil==1.0;python_version<'4'\n", "not an exact version" },
		{ "evil[extra]==1.0\n", "not a package name" },
		{ "evil @ https://x/e.whl\n", "expected NAME==VERSION" },
		{ "./evil.whl\n", "expected NAME==VERSION" },
		{ "https://x/evil==1.0.tar.gz\n", "not a package name" },
		{ "evil==1.0 --global-option=x\n", "only --hash=sha256" },
		{ "evil==1.0 --hash=sha512:00\n", "only --hash=sha256" },
		{ "evil==1.0 --hash=sha256:00\n", "only --hash=sha256" },
		{ "evil==1.0\nEvil==2.0\n", "pinned twice" },
		{ "evil==1.0 \\\n--no-binary evil\n", "only --hash=sha256" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&err, 0, sizeof(err));
		int r = deps_requirements_normalize(bad[i].in, strlen(bad[i].in), &out, &n, &err);
		if (r == 0 || !strstr(err.msg, bad[i].want))
			fail_msg("%s: expected \"%s\", got \"%s\"", bad[i].in, bad[i].want,
				 r == 0 ? out : err.msg);
	}
	assert_int_equal(deps_requirements_normalize("a==1\0", 5, &out, &n, &err), -EINVAL);
}

static void test_npm_lock(void **state)
{
	(void)state;
	struct cdn_err err = { 0 };
	const char *reg = "http://127.0.0.1:4873";
#define ENTRY(res, integ)                                                                    \
	"{\"lockfileVersion\": 3, \"packages\": {\"\": {\"name\": \"a\"}, "                  \
	"\"node_modules/x\": {\"version\": \"1.0.0\", \"resolved\": " res ", "              \
	"\"integrity\": " integ "}}}"
	static const char ok1[] = ENTRY("\"http://127.0.0.1:4873/x/-/x-1.0.0.tgz\"",
					"\"sha512-AAAA\"");
	static const char ok2[] = ENTRY("\"https://registry.npmjs.org/x/-/x-1.0.0.tgz\"",
					"\"sha512-AAAA\"");
	assert_int_equal(deps_npm_lock_check(ok1, strlen(ok1), reg, &err), 0);
	assert_int_equal(deps_npm_lock_check(ok2, strlen(ok2), "http://127.0.0.1:4873/", &err), 0);
	static const struct {
		const char *lock, *want;
	} bad[] = {
		{ ENTRY("\"http://127.0.0.1:48731/x.tgz\"", "\"sha512-AAAA\""), "not on the configured" },
		{ ENTRY("\"http://evil.test/x.tgz\"", "\"sha512-AAAA\""), "not on the configured" },
		{ ENTRY("\"git+ssh://git@github.com/a/b.git\"", "\"sha512-AAAA\""), "not on the" },
		{ ENTRY("\"file:../x\"", "\"sha512-AAAA\""), "not on the configured" },
		{ ENTRY("\"http://127.0.0.1:4873/x.tgz\"", "null"), "no sha512" },
		{ ENTRY("\"http://127.0.0.1:4873/x.tgz\"", "\"sha1-AAAA\""), "no sha512" },
		{ ENTRY("\"http://127.0.0.1:4873/x.tgz?a\"", "\"sha512-AAAA\""), "plain registry" },
		{ "{\"lockfileVersion\": 3, \"packages\": {\"x\": {\"link\": true}}}", "link" },
		{ "{\"lockfileVersion\": 1, \"dependencies\": {}}", "lockfileVersion 2 or 3" },
		{ "[1]", "not a JSON object" },
	};
#undef ENTRY
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&err, 0, sizeof(err));
		int r = deps_npm_lock_check(bad[i].lock, strlen(bad[i].lock), reg, &err);
		if (r == 0 || !strstr(err.msg, bad[i].want))
			fail_msg("%s: expected \"%s\", got \"%s\"", bad[i].lock, bad[i].want,
				 r == 0 ? "(accepted)" : err.msg);
	}
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
		cmocka_unit_test(test_requirements),
		cmocka_unit_test(test_npm_lock),
		cmocka_unit_test(test_registries_policy),
		cmocka_unit_test(test_registry_url),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
