/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "egress/policy.h"

/* ------------------------------------------------------------- helpers */

static struct egress_policy *parse_ok(const char *yaml)
{
	struct egress_policy *p = NULL;
	struct cdn_err err = { 0 };
	int r = egress_policy_parse(yaml, strlen(yaml), "policy.yaml", &p, &err);
	if (r < 0)
		fail_msg("expected to load, got: %s\n---\n%s", err.msg, yaml);
	assert_non_null(p);
	return p;
}

/* Fails unless yaml is refused with a message holding every substring. */
static void parse_fails(const char *yaml, const char *want1, const char *want2)
{
	struct egress_policy *p = NULL;
	struct cdn_err err = { 0 };
	int r = egress_policy_parse(yaml, strlen(yaml), "policy.yaml", &p, &err);
	if (r >= 0) {
		egress_policy_free(p);
		fail_msg("expected an error for:\n%s", yaml);
	}
	assert_null(p);
	if (want1 && !strstr(err.msg, want1))
		fail_msg("error '%s' lacks '%s'", err.msg, want1);
	if (want2 && !strstr(err.msg, want2))
		fail_msg("error '%s' lacks '%s'", err.msg, want2);
}

static const struct egress_rule *match(const struct egress_policy *p, const char *host)
{
	return egress_policy_match(p, host);
}

static const char *match_name(const struct egress_policy *p, const char *host)
{
	const struct egress_rule *r = egress_policy_match(p, host);
	return r ? r->name : "(none)";
}

static void norm_ok(const char *in, const char *want)
{
	char out[EGRESS_MAX_HOST + 1];
	struct cdn_err err = { 0 };
	if (egress_host_normalize(in, out, sizeof(out), &err) < 0)
		fail_msg("normalize '%s': %s", in, err.msg);
	assert_string_equal(out, want);
}

static void norm_fails(const char *in, const char *want)
{
	char out[EGRESS_MAX_HOST + 1];
	struct cdn_err err = { 0 };
	if (egress_host_normalize(in, out, sizeof(out), &err) == 0)
		fail_msg("normalize '%s' gave '%s', expected an error", in, out);
	if (want && !strstr(err.msg, want))
		fail_msg("normalize '%s': error '%s' lacks '%s'", in, err.msg, want);
}

static size_t count_category(const struct egress_policy *p, enum egress_category c)
{
	size_t n = 0;
	for (size_t i = 0; i < p->n_rules; i++)
		n += p->rules[i].category == c;
	return n;
}

/* examples/policy.yaml, found from this file's path: absolute, or
 * relative to the build directory, which holds this binary in tests/. */
static void example_path(char *buf, size_t cap)
{
	const char *f = __FILE__;
	const char *cut = strstr(f, "tests/unit/test_policy.c");
	assert_non_null(cut);
	char base[4096] = "";
	if (f[0] != '/') {
		ssize_t n = readlink("/proc/self/exe", base, sizeof(base) - 1);
		assert_true(n > 0);
		base[n] = '\0';
		char *slash = strrchr(base, '/'); /* .../build/tests/test_policy */
		assert_non_null(slash);
		strcpy(slash, "/../"); /* .../build/tests/../ */
	}
	snprintf(buf, cap, "%s%.*sexamples/policy.yaml", base, (int)(cut - f), f);
}

/* ------------------------------------------------------------- defaults */

static void test_default(void **state)
{
	(void)state;
	struct egress_policy *p = NULL;
	struct cdn_err err = { 0 };
	assert_int_equal(egress_policy_default(&p, &err), 0);
	assert_true(p->enforce);
	assert_int_equal(p->default_rpm, EGRESS_DEFAULT_RPM);
	assert_int_equal(p->global_rpm, EGRESS_DEFAULT_GLOBAL_RPM);
	assert_int_equal(p->approval_timeout_s, EGRESS_DEFAULT_APPROVAL_TIMEOUT_S);
	assert_int_equal(p->n_private, 0);

	const struct egress_rule *r = match(p, "api.openai.com");
	assert_non_null(r);
	assert_int_equal(r->category, EGRESS_CAT_LLM);
	assert_string_equal(r->group, "llm");
	assert_int_equal(r->methods, EGRESS_M_ALL);
	assert_true(egress_rule_has_port(r, 443));
	assert_false(egress_rule_has_port(r, 80));
	assert_int_equal(r->line, 0);
	assert_int_equal(r->rpm, EGRESS_DEFAULT_RPM);
	assert_non_null(match(p, "api.anthropic.com"));
	assert_non_null(match(p, "generativelanguage.googleapis.com"));

	r = match(p, "api.tavily.com");
	assert_non_null(r);
	assert_int_equal(r->category, EGRESS_CAT_SEARCH);
	assert_int_equal(r->methods, EGRESS_M_ALL);
	assert_int_equal(match(p, "api.search.brave.com")->category, EGRESS_CAT_SEARCH);
	assert_int_equal(match(p, "serpapi.com")->category, EGRESS_CAT_SEARCH);

	r = match(p, "en.wikipedia.org");
	assert_non_null(r);
	assert_string_equal(r->name, "*.wikipedia.org");
	assert_int_equal(r->category, EGRESS_CAT_RESEARCH);
	assert_int_equal(r->methods, EGRESS_M_GET | EGRESS_M_HEAD);
	assert_true(r->inspect);
	assert_true(egress_rule_has_port(r, 80));
	assert_true(egress_rule_has_port(r, 443));
	assert_int_equal(match(p, "arxiv.org")->category, EGRESS_CAT_RESEARCH);
	assert_int_equal(match(p, "pypi.org")->category, EGRESS_CAT_RESEARCH);

	assert_null(match(p, "drive.googleapis.com"));
	assert_null(match(p, "gmail.googleapis.com"));
	assert_null(match(p, "example.com"));
	assert_int_equal(count_category(p, EGRESS_CAT_SERVICE), 0);
	assert_int_equal(count_category(p, EGRESS_CAT_USER), 0);
	assert_int_equal(count_category(p, EGRESS_CAT_LLM), 3);

	/* every built-in is already normal, and rules are sorted and unique */
	for (size_t i = 0; i < p->n_rules; i++) {
		char out[EGRESS_MAX_HOST + 1];
		bool wild;
		assert_int_equal(egress_rule_name_normalize(p->rules[i].name, out, sizeof(out),
							    &wild, &err),
				 0);
		assert_string_equal(out, p->rules[i].name);
		assert_int_equal(wild, p->rules[i].wildcard);
		if (i)
			assert_true(strcmp(p->rules[i - 1].name, p->rules[i].name) < 0);
	}
	egress_policy_free(p);
}

/* ------------------------------------------------------ the full example */

static void test_example_file(void **state)
{
	(void)state;
	char path[4096];
	example_path(path, sizeof(path));
	struct egress_policy *p = NULL;
	struct cdn_err err = { 0 };
	if (egress_policy_load(path, &p, &err) < 0)
		fail_msg("%s", err.msg);
	assert_true(p->enforce);
	assert_int_equal(p->default_rpm, 60);
	assert_int_equal(p->global_rpm, 600);
	assert_int_equal(p->approval_timeout_s, 120);

	const struct egress_rule *r = match(p, "api.github.com");
	assert_non_null(r);
	assert_int_equal(r->category, EGRESS_CAT_USER);
	assert_int_equal(r->methods, EGRESS_M_GET | EGRESS_M_HEAD | EGRESS_M_POST | EGRESS_M_PATCH);
	assert_int_equal(r->rpm, 30);
	assert_true(r->approval);
	assert_true(r->inspect);
	assert_int_equal(r->n_ports, 1);
	assert_int_equal(r->ports[0], 443);
	assert_true(r->line > 0);

	r = match(p, "github.com");
	assert_non_null(r);
	assert_int_equal(r->methods, EGRESS_M_ALL);
	assert_false(r->inspect);
	assert_false(r->approval);
	assert_int_equal(r->rpm, 60);

	r = match(p, "raw.githubusercontent.com");
	assert_non_null(r);
	assert_string_equal(r->name, "*.githubusercontent.com");
	assert_null(match(p, "githubusercontent.com"));

	r = match(p, "mirror.internal.example.com");
	assert_non_null(r);
	assert_int_equal(r->rpm, 0);
	assert_true(egress_rule_has_port(r, 8443));
	assert_false(egress_rule_has_port(r, 443));

	assert_non_null(match(p, "xn--bcher-kva.example"));
	assert_int_equal(match(p, "drive.googleapis.com")->category, EGRESS_CAT_SERVICE);
	assert_string_equal(match(p, "drive.googleapis.com")->group, "google_drive");
	assert_null(match(p, "calendar-json.googleapis.com"));
	assert_non_null(match(p, "api.openai.com"));
	assert_non_null(match(p, "export.arxiv.org"));

	assert_int_equal(p->n_private, 2);
	struct sockaddr_in a4 = { .sin_family = AF_INET };
	inet_pton(AF_INET, "10.0.0.5", &a4.sin_addr);
	assert_true(egress_policy_private_ok(p, (struct sockaddr *)&a4, 8443));
	assert_false(egress_policy_private_ok(p, (struct sockaddr *)&a4, 8080));
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6 };
	inet_pton(AF_INET6, "fd00::5", &a6.sin6_addr);
	assert_true(egress_policy_private_ok(p, (struct sockaddr *)&a6, 8443));
	egress_policy_free(p);
}

static const char full[] = "version: 1\n"			    /* 1 */
			   "enforce: false\n"			    /* 2 */
			   "limits:\n"				    /* 3 */
			   "  requests_per_minute: 10\n"	    /* 4 */
			   "  global_requests_per_minute: 0\n"	    /* 5 */
			   "approvals:\n"			    /* 6 */
			   "  timeout_seconds: 86400\n"		    /* 7 */
			   "categories:\n"			    /* 8 */
			   "  llm: true\n"			    /* 9 */
			   "  search: false\n"			    /* 10 */
			   "  research: false\n"		    /* 11 */
			   "services:\n"			    /* 12 */
			   "  gmail: true\n"			    /* 13 */
			   "  google_people: true\n"		    /* 14 */
			   "  youtube: false\n"			    /* 15 */
			   "domains:\n"				    /* 16 */
			   "  - name: Example.COM.\n"		    /* 17 */
			   "    ports: [8080, 8443]\n"		    /* 18 */
			   "    methods: [get, Head, OPTIONS]\n"    /* 19 */
			   "    requests_per_minute: 100000\n"	    /* 20 */
			   "    approval: none\n"		    /* 21 */
			   "    inspect: false\n"		    /* 22 */
			   "  - {name: '*.cdn.example.net'}\n"	    /* 23 */
			   "  - name: 93.184.216.34\n"		    /* 24 */
			   "    ports:\n"			    /* 25 */
			   "      - 80\n"			    /* 26 */
			   "private:\n"				    /* 27 */
			   "  - 10.0.0.5:8080\n"		    /* 28 */
			   "  - '[::1]:9000'\n";		    /* 29 */

static void test_full_inline(void **state)
{
	(void)state;
	struct egress_policy *p = parse_ok(full);
	assert_false(p->enforce);
	assert_int_equal(p->default_rpm, 10);
	assert_int_equal(p->global_rpm, 0);
	assert_int_equal(p->approval_timeout_s, 86400);
	assert_int_equal(count_category(p, EGRESS_CAT_SEARCH), 0);
	assert_int_equal(count_category(p, EGRESS_CAT_RESEARCH), 0);
	assert_int_equal(count_category(p, EGRESS_CAT_LLM), 3);
	assert_int_equal(count_category(p, EGRESS_CAT_SERVICE), 2);
	assert_int_equal(count_category(p, EGRESS_CAT_USER), 3);
	assert_null(match(p, "api.tavily.com"));
	assert_null(match(p, "arxiv.org"));
	assert_null(match(p, "youtube.googleapis.com"));
	assert_int_equal(match(p, "gmail.googleapis.com")->category, EGRESS_CAT_SERVICE);
	assert_int_equal(match(p, "gmail.googleapis.com")->rpm, 10);
	assert_non_null(match(p, "people.googleapis.com"));
	assert_int_equal(match(p, "api.openai.com")->rpm, 10);

	const struct egress_rule *r = match(p, "example.com");
	assert_non_null(r);
	assert_string_equal(r->name, "example.com");
	assert_int_equal(r->line, 17);
	assert_int_equal(r->n_ports, 2);
	assert_int_equal(r->ports[0], 8080);
	assert_int_equal(r->ports[1], 8443);
	assert_int_equal(r->methods, EGRESS_M_GET | EGRESS_M_HEAD | EGRESS_M_OPTIONS);
	assert_int_equal(r->rpm, 100000);
	assert_false(r->approval);
	assert_false(r->inspect);
	assert_string_equal(r->group, "user");

	r = match(p, "a.cdn.example.net");
	assert_non_null(r);
	assert_true(r->wildcard);
	assert_int_equal(r->n_ports, 2); /* default 80, 443 */
	assert_int_equal(r->methods, EGRESS_M_ALL);
	assert_int_equal(r->rpm, 10);
	assert_int_equal(r->line, 23);

	r = match(p, "93.184.216.34");
	assert_non_null(r);
	assert_int_equal(r->n_ports, 1);
	assert_int_equal(r->ports[0], 80);

	assert_int_equal(p->n_private, 2);
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6 };
	inet_pton(AF_INET6, "::1", &a6.sin6_addr);
	assert_true(egress_policy_private_ok(p, (struct sockaddr *)&a6, 9000));
	egress_policy_free(p);

	/* minimal */
	p = parse_ok("version: 1\n");
	assert_true(p->enforce);
	assert_int_equal(count_category(p, EGRESS_CAT_SEARCH) > 0, 1);
	assert_int_equal(count_category(p, EGRESS_CAT_RESEARCH) > 0, 1);
	egress_policy_free(p);

	/* empty collections are fine where a list or mapping is expected */
	p = parse_ok("version: 1\ndomains: []\nprivate: []\nservices: {}\nlimits: {}\n");
	egress_policy_free(p);
	/* JSON is YAML */
	p = parse_ok("{\"version\": 1, \"domains\": [{\"name\": \"a.example\"}]}");
	assert_non_null(match(p, "a.example"));
	egress_policy_free(p);
}

/* ------------------------------------------------------------- errors */

static void test_unknown_keys(void **state)
{
	(void)state;
	parse_fails("version: 1\n"
		    "domains:\n"
		    "  - name: a.example\n"
		    "    metods: [GET]\n",
		    "policy.yaml:4: domains[0]: unknown key 'metods' (expected name, ports, "
		    "methods, requests_per_minute, approval, inspect, max_label_length, random_labels)",
		    NULL);
	parse_fails("version: 1\nenforcing: true\n", "policy.yaml:2: unknown key 'enforcing'",
		    "expected version, enforce, limits");
	parse_fails("version: 1\nlimits:\n  rpm: 5\n", "policy.yaml:3: limits: unknown key 'rpm'",
		    "requests_per_minute, global_requests_per_minute");
	parse_fails("version: 1\napprovals:\n  timeout: 5\n",
		    "policy.yaml:3: approvals: unknown key", "timeout_seconds");
	parse_fails("version: 1\ncategories:\n  social: true\n",
		    "policy.yaml:3: categories: unknown key 'social'", "llm, search, research");
	parse_fails("version: 1\nservices:\n  dropbox: true\n",
		    "policy.yaml:3: services: unknown key 'dropbox'", "google_drive, gmail");
	parse_fails("version: 1\n[a]: 1\n", "policy.yaml:2", "keys must be plain names");
	parse_fails("version: 1\n? {a: 1}\n: 2\n", "policy.yaml:2", "keys must be plain names");
}

static void test_types(void **state)
{
	(void)state;
	parse_fails("version: 1\ndomains:\n  - name: a.example\n    ports: 443\n",
		    "policy.yaml:4: domains[0].ports: expected a list of port numbers", "'443'");
	parse_fails("version: 1\ndomains:\n  - name: a.example\n    methods: GET\n",
		    "policy.yaml:4: domains[0].methods: expected a list of HTTP methods", NULL);
	parse_fails("version: 1\ndomains:\n  name: a.example\n",
		    "policy.yaml:2: domains: expected a list of domain rules, got a mapping", NULL);
	parse_fails("version: 1\ndomains:\n  - a.example\n",
		    "policy.yaml:3: domains[0]: expected a mapping with 'name'", "'a.example'");
	parse_fails("version: 1\ndomains:\n  - ports: [443]\n", "policy.yaml:3: domains[0]",
		    "missing key 'name'");
	parse_fails("version: 1\ndomains:\n  - name: [a]\n", "policy.yaml:3: domains[0].name",
		    "expected a string, got a list");
	parse_fails("version: 1\nlimits: 5\n", "policy.yaml:2: limits: expected a mapping", "'5'");
	parse_fails("version: 1\nlimits:\n", "policy.yaml:2: limits: expected a mapping",
		    "an empty value");
	parse_fails("version: 1\ndomains:\n", "policy.yaml:2: domains: expected a list",
		    "an empty value");
	parse_fails("version: 1\nservices:\n  - gmail\n",
		    "policy.yaml:2: services: expected a mapping, got a list", NULL);
	parse_fails("version: 1\nprivate: 10.0.0.1:80\n", "policy.yaml:2: private: expected a list",
		    NULL);
	parse_fails("- version: 1\n", "policy.yaml:1", "expected a mapping at the top level");
	parse_fails("version\n", "policy.yaml:1", "expected a mapping at the top level");
	parse_fails("", "policy.yaml:1", "empty");
	parse_fails("# only a comment\n", "policy.yaml:1", "empty");
	parse_fails("---\n", "policy.yaml:1", "empty");
	parse_fails("version: 1\ndomains:\n  - name: a.example\n    approval: maybe\n",
		    "policy.yaml:4: domains[0].approval: expected 'required' or 'none'", "'maybe'");
	parse_fails("version: 1\ndomains:\n  - name: a.example\n    approval: true\n",
		    "domains[0].approval: expected 'required' or 'none'", NULL);
}

static void test_version(void **state)
{
	(void)state;
	parse_fails("enforce: true\n", "policy.yaml:1: missing key 'version'", NULL);
	parse_fails("version: 2\nnew_key_of_v2: 1\n",
		    "policy.yaml:1: version: unsupported version 2", "version: 1");
	/* the version is looked at before any other key */
	parse_fails("enforce: maybe\nversion: 3\n", "policy.yaml:2: version: unsupported version 3",
		    NULL);
	parse_fails("version: \"1\"\n", "policy.yaml:1: version: expected the number 1",
		    "quoted string");
	parse_fails("version: 01\n", "version: expected the number 1", "'01'");
	parse_fails("version: 1.0\n", "version: expected the number 1", NULL);
	parse_fails("version: 1\nversion: 1\n",
		    "policy.yaml:2: duplicate key 'version' (first at line 1)", NULL);
}

static void test_booleans(void **state)
{
	(void)state;
	static const char *const bad[] = { "yes", "no", "on", "off", "True", "FALSE", "y", "1",
					   "\"true\"", "'false'", "~", "null" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char y[128];
		snprintf(y, sizeof(y), "version: 1\nenforce: %s\n", bad[i]);
		parse_fails(y, "policy.yaml:2: enforce: expected true or false", NULL);
		snprintf(y, sizeof(y), "version: 1\ndomains:\n  - name: a.b\n    inspect: %s\n",
			 bad[i]);
		parse_fails(y, "policy.yaml:4: domains[0].inspect: expected true or false", NULL);
	}
	parse_fails("version: 1\nenforce: yes\n", "yes/no/on/off are not booleans", "'yes'");
	parse_fails("version: 1\nenforce:\n", "policy.yaml:2: enforce", "an empty value");
	struct egress_policy *p = parse_ok("version: 1\nenforce: false\n");
	assert_false(p->enforce);
	egress_policy_free(p);
}

static void test_numbers(void **state)
{
	(void)state;
	static const char *const bad[] = { "0x10", "1e3", "+5", "-1", "1.5", "010", "\"60\"",
					   "100001", "1_000", "0o7", "60s", "99999999999",
					   "4294967356", ".5", "'0'" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char y[160];
		snprintf(y, sizeof(y), "version: 1\nlimits:\n  requests_per_minute: %s\n", bad[i]);
		parse_fails(y, "policy.yaml:3: limits.requests_per_minute: expected a whole number "
			       "from 0 to 100000",
			    NULL);
		snprintf(y, sizeof(y),
			 "version: 1\ndomains:\n  - name: a.b\n    requests_per_minute: %s\n",
			 bad[i]);
		parse_fails(y, "policy.yaml:4: domains[0].requests_per_minute: expected a whole "
			       "number",
			    NULL);
	}
	parse_fails("version: 1\napprovals:\n  timeout_seconds: 0\n",
		    "policy.yaml:3: approvals.timeout_seconds: expected a whole number from 1 to "
		    "86400",
		    "'0'");
	parse_fails("version: 1\napprovals:\n  timeout_seconds: 86401\n", "from 1 to 86400", NULL);
	parse_fails("version: 1\nlimits:\n  global_requests_per_minute: 100001\n",
		    "limits.global_requests_per_minute", NULL);

	struct egress_policy *p = parse_ok("version: 1\nlimits:\n  requests_per_minute: 0\n"
					   "  global_requests_per_minute: 100000\n");
	assert_int_equal(p->default_rpm, 0);
	assert_int_equal(p->global_rpm, 100000);
	assert_int_equal(match(p, "api.openai.com")->rpm, 0);
	egress_policy_free(p);
	/* a rule's own limit, and the default applied whatever the key order */
	p = parse_ok("version: 1\ndomains:\n  - name: a.b\n  - name: c.d\n"
		     "    requests_per_minute: 7\nlimits:\n  requests_per_minute: 9\n");
	assert_int_equal(match(p, "a.b")->rpm, 9);
	assert_int_equal(match(p, "c.d")->rpm, 7);
	egress_policy_free(p);
}

static void test_ports_methods(void **state)
{
	(void)state;
	parse_fails("version: 1\ndomains:\n  - name: a.b\n    ports: [443, 0]\n",
		    "policy.yaml:4: domains[0].ports[1]: expected a whole number from 1 to 65535",
		    "'0'");
	parse_fails("version: 1\ndomains:\n  - name: a.b\n    ports: [65536]\n",
		    "domains[0].ports[0]: expected a whole number from 1 to 65535", NULL);
	parse_fails("version: 1\ndomains:\n  - name: a.b\n    ports:\n      - 443\n      - 443\n",
		    "policy.yaml:6: domains[0].ports[1]: port 443 is listed twice", NULL);
	parse_fails("version: 1\ndomains:\n  - name: a.b\n    ports: []\n",
		    "policy.yaml:4: domains[0].ports: the list is empty", NULL);
	parse_fails("version: 1\ndomains:\n  - name: a.b\n"
		    "    ports: [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]\n",
		    "domains[0].ports: 17 ports, more than 16", NULL);
	parse_fails("version: 1\ndomains:\n  - name: a.b\n    ports: [[443]]\n",
		    "domains[0].ports[0]: expected a whole number", "a list");
	parse_fails("version: 1\ndomains:\n  - name: a.b\n    methods: [GET, FETCH]\n",
		    "policy.yaml:4: domains[0].methods[1]: unknown method 'FETCH'", "GET, HEAD");
	parse_fails("version: 1\ndomains:\n  - name: a.b\n    methods: [GET, CONNECT]\n",
		    "unknown method 'CONNECT'", NULL);
	parse_fails("version: 1\ndomains:\n  - name: a.b\n    methods: [GET, get]\n",
		    "domains[0].methods[1]: method GET is listed twice", NULL);
	parse_fails("version: 1\ndomains:\n  - name: a.b\n    methods: []\n",
		    "domains[0].methods: the list is empty", NULL);
	parse_fails("version: 1\ndomains:\n  - name: a.b\n    methods: [GETTTTTTTTTTTTTTTTTTTT]\n",
		    "unknown method", NULL);

	struct egress_policy *p = parse_ok(
		"version: 1\ndomains:\n  - name: a.b\n    methods: [delete, pUt, patch, post]\n"
		"    ports: [65535, 1]\n");
	const struct egress_rule *r = match(p, "a.b");
	assert_int_equal(r->methods, EGRESS_M_WRITE);
	assert_true(egress_rule_has_port(r, 65535));
	assert_true(egress_rule_has_port(r, 1));
	assert_false(egress_rule_has_port(r, 443));
	egress_policy_free(p);

	assert_int_equal(egress_method_bit("GET"), EGRESS_M_GET);
	assert_int_equal(egress_method_bit("OPTIONS"), EGRESS_M_OPTIONS);
	assert_int_equal(egress_method_bit("get"), 0); /* HTTP methods are case-sensitive */
	assert_int_equal(egress_method_bit("CONNECT"), 0);
	assert_int_equal(egress_method_bit(""), 0);
	assert_int_equal(egress_method_bit(NULL), 0);
	assert_string_equal(egress_category_name(EGRESS_CAT_LLM), "llm");
	assert_string_equal(egress_category_name(EGRESS_CAT_USER), "user");
	assert_string_equal(egress_category_name(EGRESS_CAT_RESEARCH), "research");
}

static void test_yaml_extras(void **state)
{
	(void)state;
	parse_fails("version: 1\nlimits: &l\n  requests_per_minute: 5\n", "policy.yaml:2",
		    "anchor '&l' is not allowed");
	parse_fails("version: 1\ndomains:\n  - &d {name: a.b}\n  - *d\n", "policy.yaml:3",
		    "alias bombs");
	parse_fails("version: 1\nx: &a 1\ny: *a\n", "anchor", NULL);
	parse_fails("version: !!int 1\n", "policy.yaml:1", "tag '");
	parse_fails("version: 1\nenforce: !!bool yes\n", "policy.yaml:2", "tag");
	parse_fails("version: 1\ndomains: !seq []\n", "policy.yaml:2", "tag");
	parse_fails("%TAG ! tag:example.com,2000:\n---\nversion: 1\n", "%TAG directives", NULL);
	parse_fails("version: 1\n---\nversion: 1\n", "policy.yaml:2",
		    "a second YAML document");
	parse_fails("version: 1\n...\n---\nenforce: true\n", "a second YAML document", NULL);
	/* the classic billion laughs never gets past its first anchor */
	parse_fails("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a]\n"
		    "c: [*b, *b, *b, *b, *b, *b]\nversion: 1\n",
		    "policy.yaml:1", "anchor");
	parse_fails("version: 1\nlimits: {requests_per_minute: 1\n", "policy.yaml:",
		    "not valid YAML");
	parse_fails("version: 1\n  bad indent: 2\n", "policy.yaml:2", "not valid YAML");
	parse_fails("version: 1\nenforce: \xff\n", "policy.yaml:2", "not valid YAML");
	parse_fails("version: 1\nenforce: tr\x01ue\n", "policy.yaml:2", "not valid YAML");
	/* nesting is bounded */
	parse_fails("version: 1\ndomains: [[[[[[[[[[[[1]]]]]]]]]]]]\n", "policy.yaml:2",
		    "nested deeper than");
	/* a quoted string with a NUL is not a name */
	parse_fails("version: 1\ndomains:\n  - name: \"a\\0b.example\"\n",
		    "policy.yaml:3: domains[0].name: expected a string", NULL);
}

static void test_duplicates(void **state)
{
	(void)state;
	parse_fails("version: 1\nenforce: true\nlimits: {}\nenforce: false\n",
		    "policy.yaml:4: duplicate key 'enforce' (first at line 2)", NULL);
	parse_fails("version: 1\nlimits:\n  requests_per_minute: 1\n  requests_per_minute: 2\n",
		    "policy.yaml:4: limits: duplicate key 'requests_per_minute' (first at line 3)",
		    NULL);
	parse_fails("version: 1\ndomains:\n  - name: a.b\n    name: c.d\n",
		    "policy.yaml:4: domains[0]: duplicate key 'name' (first at line 3)", NULL);
	parse_fails("version: 1\n"
		    "domains:\n"
		    "  - name: api.github.com\n"
		    "  - name: example.org\n"
		    "  - name: API.GitHub.com.\n",
		    "policy.yaml:5: domains[2]: duplicate domain 'api.github.com' (also at line 3)",
		    NULL);
	parse_fails("version: 1\ndomains:\n  - name: bücher.example\n"
		    "  - name: xn--bcher-kva.example\n",
		    "policy.yaml:4: domains[1]: duplicate domain 'xn--bcher-kva.example' (also at "
		    "line 3)",
		    NULL);
	parse_fails("version: 1\ndomains:\n  - name: '*.a.example'\n  - name: '*.A.example.'\n",
		    "duplicate domain '*.a.example' (also at line 3)", NULL);
	parse_fails("version: 1\nprivate:\n  - 10.0.0.1:80\n  - 10.0.0.1:80\n",
		    "policy.yaml:4: private[1]: '10.0.0.1:80' is listed twice", NULL);
	/* a wildcard and an exact name are different rules */
	struct egress_policy *p =
		parse_ok("version: 1\ndomains:\n  - name: a.example\n  - name: '*.a.example'\n");
	egress_policy_free(p);
}

static void test_names_in_policy(void **state)
{
	(void)state;
	parse_fails("version: 1\ndomains:\n  - name: a..b\n", "policy.yaml:3: domains[0].name",
		    "empty label");
	parse_fails("version: 1\ndomains:\n  - name: '*.com'\n", "domains[0].name",
		    "at least two labels");
	parse_fails("version: 1\ndomains:\n  - name: 'a.*.com'\n", "domains[0].name",
		    "leading '*.'");
	parse_fails("version: 1\ndomains:\n  - name: '*'\n", "domains[0].name", NULL);
	parse_fails("version: 1\ndomains:\n  - name: '*.1.2.3.4'\n", "cannot cover an IP", NULL);
	parse_fails("version: 1\ndomains:\n  - name: 127.1\n", "not a canonical IPv4", NULL);
	parse_fails("version: 1\ndomains:\n  - name: 'a b.example'\n", "not allowed", NULL);
	parse_fails("version: 1\ndomains:\n  - name: 'http://a.example'\n", "not allowed", NULL);
	parse_fails("version: 1\ndomains:\n  - name: ''\n", "domains[0].name", NULL);
}


/* A method rule or an approval hold on HTTPS needs inspection: without it
 * the engine sees only CONNECT and could never enforce the rule. */
static void test_https_rules_need_inspection(void **state)
{
	(void)state;
	parse_fails("version: 1\ndomains:\n  - name: ok.example\n  - name: a.example\n"
		    "    methods: [GET]\n",
		    "policy.yaml:4: domains[1]: 'a.example' restricts methods on port 443 (HTTPS) "
		    "without 'inspect: true'",
		    "list only plain-HTTP ports");
	parse_fails("version: 1\ndomains:\n  - name: '*.a.example'\n    ports: [443]\n"
		    "    approval: required\n    inspect: false\n",
		    "policy.yaml:3: domains[0]: '*.a.example' requires approval on port 443", NULL);
	/* inspected, or plain HTTP only: loads */
	const char *ok[] = {
		"version: 1\ndomains:\n  - name: a.example\n    methods: [GET]\n    inspect: true\n",
		"version: 1\ndomains:\n  - name: a.example\n    methods: [GET]\n    ports: [80]\n",
		"version: 1\ndomains:\n  - name: a.example\n    approval: required\n"
		"    ports: [8080]\n",
		"version: 1\ndomains:\n  - name: a.example\n    ports: [443]\n",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		egress_policy_free(parse_ok(ok[i]));
}

static void test_llm_rules(void **state)
{
	(void)state;
	parse_fails("version: 1\ncategories:\n  llm: false\n",
		    "policy.yaml:3: categories.llm: LLM APIs are always allowed and cannot be "
		    "turned off",
		    NULL);
	parse_fails("version: 1\ndomains:\n  - name: api.openai.com\n    approval: required\n",
		    "policy.yaml:4: domains[0].approval: 'api.openai.com' is an LLM API",
		    "never held for approval");
	parse_fails("version: 1\ndomains:\n  - name: API.Anthropic.com.\n    approval: required\n",
		    "is an LLM API", NULL);

	/* an operator's rule overrides a built-in one; an LLM API stays one */
	struct egress_policy *p = parse_ok("version: 1\n"
					   "categories: {llm: true}\n"
					   "domains:\n"
					   "  - name: api.openai.com\n"
					   "    requests_per_minute: 5\n"
					   "    inspect: true\n"
					   "  - name: pypi.org\n"
					   "  - name: '*.openai.com'\n"
					   "    approval: required\n"
					   "    inspect: true\n"
					   "  - name: '*.wikipedia.org'\n"
					   "    methods: [GET]\n"
					   "    inspect: true\n");
	const struct egress_rule *r = match(p, "api.openai.com");
	assert_int_equal(r->category, EGRESS_CAT_LLM);
	assert_string_equal(r->group, "llm");
	assert_int_equal(r->rpm, 5);
	assert_true(r->inspect);
	assert_int_equal(r->line, 4);
	r = match(p, "pypi.org");
	assert_int_equal(r->category, EGRESS_CAT_USER);
	assert_int_equal(r->methods, EGRESS_M_ALL);
	assert_false(r->inspect);
	r = match(p, "chat.openai.com");
	assert_int_equal(r->category, EGRESS_CAT_USER);
	assert_true(r->approval);
	r = match(p, "de.wikipedia.org");
	assert_int_equal(r->category, EGRESS_CAT_USER);
	assert_int_equal(r->methods, EGRESS_M_GET);
	/* no duplicates left behind */
	for (size_t i = 1; i < p->n_rules; i++)
		assert_true(strcmp(p->rules[i - 1].name, p->rules[i].name) < 0);
	egress_policy_free(p);
}

static void test_limits_and_sizes(void **state)
{
	(void)state;
	struct egress_policy *p = NULL;
	struct cdn_err err = { 0 };
	size_t big = EGRESS_MAX_POLICY_BYTES + 1;
	char *y = malloc(big + 1);
	assert_non_null(y);
	memset(y, '#', big);
	memcpy(y, "version: 1\n", 11);
	y[big] = '\0';
	assert_true(egress_policy_parse(y, big, "policy.yaml", &p, &err) < 0);
	assert_non_null(strstr(err.msg, "more than the limit"));
	free(y);

	/* EGRESS_MAX_RULES rules with the built-ins: too many */
	size_t cap = 64 + (size_t)EGRESS_MAX_RULES * 32;
	y = malloc(cap);
	assert_non_null(y);
	size_t off = (size_t)snprintf(y, cap, "version: 1\ndomains:\n");
	for (int i = 0; i < EGRESS_MAX_RULES; i++)
		off += (size_t)snprintf(y + off, cap - off, "  - name: h%d.example\n", i);
	assert_true(egress_policy_parse(y, off, "policy.yaml", &p, &err) < 0);
	assert_non_null(strstr(err.msg, "more than 4096"));
	/* one more: refused before any is looked at */
	off += (size_t)snprintf(y + off, cap - off, "  - name: extra.example\n");
	assert_true(egress_policy_parse(y, off, "policy.yaml", &p, &err) < 0);
	assert_non_null(strstr(err.msg, "policy.yaml:2: domains: 4097 rules, more than 4096"));
	free(y);

	/* and a thousand rules load and match */
	cap = 64 + 1000 * 48;
	y = malloc(cap);
	assert_non_null(y);
	off = (size_t)snprintf(y, cap, "version: 1\ndomains:\n");
	for (int i = 0; i < 1000; i++)
		off += (size_t)snprintf(y + off, cap - off, "  - name: '%sh%d.example'\n",
					i % 2 ? "*." : "", i);
	assert_int_equal(egress_policy_parse(y, off, "policy.yaml", &p, &err), 0);
	for (int i = 0; i < 1000; i++) {
		char h[64];
		snprintf(h, sizeof(h), "x.h%d.example", i);
		if (i % 2) {
			assert_non_null(match(p, h));
			assert_null(match(p, h + 2));
		} else {
			assert_null(match(p, h));
			assert_non_null(match(p, h + 2));
		}
	}
	egress_policy_free(p);
	free(y);
}

/* --------------------------------------------------- names and matching */

static void test_normalize(void **state)
{
	(void)state;
	norm_ok("Example.COM", "example.com");
	norm_ok("example.com.", "example.com");
	norm_ok("BÜCHER.example.", "xn--bcher-kva.example");
	norm_ok("bücher.example", "xn--bcher-kva.example");
	norm_ok("xn--bcher-kva.example", "xn--bcher-kva.example");
	/* non-transitional: sharp s is kept, not folded to "ss" */
	norm_ok("faß.de", "xn--fa-hia.de");
	/* fullwidth letters map to ASCII under UTS #46 */
	norm_ok("\xef\xbc\xa1\xef\xbc\xa2\xef\xbc\xa3.com", "abc.com");
	norm_ok("_dmarc.example.com", "_dmarc.example.com");
	norm_ok("127.0.0.1", "127.0.0.1");
	norm_ok("a", "a");
	norm_ok("a-b.c", "a-b.c");

	norm_fails("example.com..", "empty label");
	norm_fails("a..b", "empty label");
	norm_fails(".a", "empty label");
	norm_fails("", "empty");
	norm_fails(".", "empty");
	norm_fails("*.example.com", "'*' is not allowed");
	norm_fails("a b", "not allowed");
	norm_fails("a/b", "not allowed");
	norm_fails("a:80", "not allowed");
	norm_fails("[::1]", "not allowed");
	norm_fails("\xff\xfe.com", "internationalised");
	norm_fails("\xe2\x98\x83.com", "internationalised"); /* a snowman is no letter */
	norm_fails("127.1", "not a canonical IPv4");
	norm_fails("0x7f.0.0.1", "not a canonical IPv4");
	norm_fails("2130706433", "not a canonical IPv4");
	norm_fails("010.0.0.1", "not a canonical IPv4");

	char label[80];
	memset(label, 'a', 64);
	label[64] = '\0';
	norm_fails(label, "longer than 63");
	label[63] = '\0';
	norm_ok(label, label);

	/* 253 is the most a name may have: three 63-byte labels and one of 61 */
	char name[300];
	memset(name, 'a', 253);
	name[63] = name[127] = name[191] = '.';
	name[253] = '\0';
	norm_ok(name, name);
	name[253] = 'c';
	name[254] = '\0';
	norm_fails(name, "more than 253");
	name[253] = '\0';
	/* a trailing dot does not count */
	char dotted[300];
	snprintf(dotted, sizeof(dotted), "%s.", name);
	norm_ok(dotted, name);

	/* too small an output buffer is an error, not a truncation */
	char small[4];
	struct cdn_err err = { 0 };
	assert_true(egress_host_normalize("example.com", small, sizeof(small), &err) < 0);

	/* rule names: the wildcard is kept */
	char out[EGRESS_MAX_HOST + 1];
	bool wild = false;
	assert_int_equal(egress_rule_name_normalize("*.BÜCHER.example.", out, sizeof(out), &wild,
						    &err),
			 0);
	assert_string_equal(out, "*.xn--bcher-kva.example");
	assert_true(wild);
	assert_int_equal(egress_rule_name_normalize("Plain.example", out, sizeof(out), &wild,
						    &err),
			 0);
	assert_false(wild);
	assert_true(egress_rule_name_normalize("*.*.a.com", out, sizeof(out), &wild, &err) < 0);
	assert_true(egress_rule_name_normalize("*a.com", out, sizeof(out), &wild, &err) < 0);
	assert_true(egress_rule_name_normalize("*.", out, sizeof(out), &wild, &err) < 0);
}

static void test_wildcards(void **state)
{
	(void)state;
	struct egress_policy *p = parse_ok("version: 1\n"
					   "categories: {search: false, research: false}\n"
					   "domains:\n"
					   "  - name: '*.example.com'\n"
					   "  - name: '*.b.example.com'\n"
					   "    methods: [GET]\n"
					   "    ports: [80]\n"
					   "  - name: exact.b.example.com\n"
					   "    ports: [8443]\n"
					   "  - name: '*.exact.b.example.com'\n"
					   "    ports: [9000]\n"
					   "  - name: 10.1.2.3\n");
	assert_string_equal(match_name(p, "a.example.com"), "*.example.com");
	assert_string_equal(match_name(p, "a.c.example.com"), "*.example.com");
	assert_string_equal(match_name(p, "z.y.x.example.com"), "*.example.com");
	assert_string_equal(match_name(p, "example.com"), "(none)");
	assert_string_equal(match_name(p, "badexample.com"), "(none)");
	assert_string_equal(match_name(p, "example.com.evil.net"), "(none)");
	assert_string_equal(match_name(p, "com"), "(none)");
	/* longest wildcard wins */
	assert_string_equal(match_name(p, "b.example.com"), "*.example.com");
	assert_string_equal(match_name(p, "x.b.example.com"), "*.b.example.com");
	assert_string_equal(match_name(p, "y.x.b.example.com"), "*.b.example.com");
	/* exact beats every wildcard */
	assert_string_equal(match_name(p, "exact.b.example.com"), "exact.b.example.com");
	assert_string_equal(match_name(p, "q.exact.b.example.com"), "*.exact.b.example.com");
	/* a rule's own name is not a host */
	assert_string_equal(match_name(p, "*.example.com"), "(none)");
	assert_string_equal(match_name(p, ""), "(none)");
	assert_null(egress_policy_match(p, NULL));
	assert_null(egress_policy_match(NULL, "a.example.com"));
	/* IPs only by exact rules */
	assert_string_equal(match_name(p, "10.1.2.3"), "10.1.2.3");
	assert_string_equal(match_name(p, "10.1.2.4"), "(none)");
	/* LLM APIs are there even with the other categories off */
	assert_string_equal(match_name(p, "api.anthropic.com"), "api.anthropic.com");
	assert_string_equal(match_name(p, "x.api.anthropic.com"), "(none)");
	egress_policy_free(p);

	/* names from requests go through normalisation first */
	p = parse_ok("version: 1\ndomains:\n  - name: '*.bücher.example'\n");
	char host[EGRESS_MAX_HOST + 1];
	struct cdn_err err = { 0 };
	assert_int_equal(egress_host_normalize("WWW.Bücher.Example.", host, sizeof(host), &err),
			 0);
	assert_string_equal(match_name(p, host), "*.xn--bcher-kva.example");
	egress_policy_free(p);
}

static void test_services(void **state)
{
	(void)state;
	static const struct {
		const char *key, *host;
	} svc[] = {
		{ "google_drive", "drive.googleapis.com" },
		{ "gmail", "gmail.googleapis.com" },
		{ "google_calendar", "calendar-json.googleapis.com" },
		{ "youtube", "youtube.googleapis.com" },
		{ "google_photos", "photoslibrary.googleapis.com" },
		{ "google_docs", "docs.googleapis.com" },
		{ "google_sheets", "sheets.googleapis.com" },
		{ "google_slides", "slides.googleapis.com" },
		{ "google_people", "people.googleapis.com" },
	};
	for (size_t i = 0; i < sizeof(svc) / sizeof(svc[0]); i++) {
		char y[128];
		snprintf(y, sizeof(y), "version: 1\nservices:\n  %s: true\n", svc[i].key);
		struct egress_policy *p = parse_ok(y);
		assert_int_equal(count_category(p, EGRESS_CAT_SERVICE), 1);
		const struct egress_rule *r = match(p, svc[i].host);
		assert_non_null(r);
		assert_int_equal(r->category, EGRESS_CAT_SERVICE);
		assert_string_equal(r->group, svc[i].key);
		assert_int_equal(r->n_ports, 1);
		assert_int_equal(r->ports[0], 443);
		assert_int_equal(r->methods, EGRESS_M_ALL);
		egress_policy_free(p);
		snprintf(y, sizeof(y), "version: 1\nservices:\n  %s: false\n", svc[i].key);
		p = parse_ok(y);
		assert_null(match(p, svc[i].host));
		egress_policy_free(p);
	}
}

/* ------------------------------------------------- --allow, --allow-private */

static void test_allow(void **state)
{
	(void)state;
	struct egress_policy *p = NULL;
	struct cdn_err err = { 0 };
	assert_int_equal(egress_policy_default(&p, &err), 0);
	size_t before = p->n_rules;

	assert_int_equal(egress_policy_allow(p, "Example.ORG", &err), 0);
	const struct egress_rule *r = match(p, "example.org");
	assert_non_null(r);
	assert_int_equal(r->category, EGRESS_CAT_USER);
	assert_string_equal(r->group, "allow");
	assert_int_equal(r->methods, EGRESS_M_ALL);
	assert_int_equal(r->n_ports, 2);
	assert_true(egress_rule_has_port(r, 80) && egress_rule_has_port(r, 443));
	assert_int_equal(r->rpm, EGRESS_DEFAULT_RPM);

	assert_int_equal(egress_policy_allow(p, "svc.example.net:8080", &err), 0);
	r = match(p, "svc.example.net");
	assert_int_equal(r->n_ports, 1);
	assert_int_equal(r->ports[0], 8080);
	/* again with another port: widened, not duplicated */
	assert_int_equal(egress_policy_allow(p, "svc.example.net:9090", &err), 0);
	r = match(p, "svc.example.net");
	assert_int_equal(r->n_ports, 2);
	assert_true(egress_rule_has_port(r, 9090));

	assert_int_equal(egress_policy_allow(p, "*.corp.example:443", &err), 0);
	assert_string_equal(match_name(p, "git.corp.example"), "*.corp.example");
	assert_int_equal(egress_policy_allow(p, "192.0.2.7:8000", &err), 0);
	assert_string_equal(match_name(p, "192.0.2.7"), "192.0.2.7");

	/* widening a research rule: every method, and it keeps its category */
	assert_int_equal(egress_policy_allow(p, "pypi.org", &err), 0);
	r = match(p, "pypi.org");
	assert_int_equal(r->methods, EGRESS_M_ALL);
	assert_int_equal(r->category, EGRESS_CAT_RESEARCH);
	/* and an LLM API stays on 443 while gaining 8443 */
	assert_int_equal(egress_policy_allow(p, "api.openai.com:8443", &err), 0);
	r = match(p, "api.openai.com");
	assert_true(egress_rule_has_port(r, 443) && egress_rule_has_port(r, 8443));
	assert_int_equal(r->category, EGRESS_CAT_LLM);

	assert_int_equal(p->n_rules, before + 4);
	for (size_t i = 1; i < p->n_rules; i++)
		assert_true(strcmp(p->rules[i - 1].name, p->rules[i].name) < 0);

	static const char *const bad[] = { "",	       ":443",	       "a.example:",
					   "a.example:0", "a.example:65536", "a.example:08",
					   "a.example:x", "[::1]:80",	 "::1",
					   "a..b",	  "*.com",	     "a.example:80:90",
					   "127.1",	  "http://a.example" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err.msg[0] = '\0';
		if (egress_policy_allow(p, bad[i], &err) == 0)
			fail_msg("--allow '%s' was accepted", bad[i]);
		assert_non_null(strstr(err.msg, "--allow"));
	}
	assert_int_equal(p->n_rules, before + 4);
	egress_policy_free(p);
}

static void test_allow_private(void **state)
{
	(void)state;
	struct egress_policy *p = NULL;
	struct cdn_err err = { 0 };
	assert_int_equal(egress_policy_default(&p, &err), 0);
	assert_int_equal(egress_policy_allow_private(p, "10.0.0.5:8080", &err), 0);
	assert_int_equal(egress_policy_allow_private(p, "[fd00::1]:443", &err), 0);
	assert_int_equal(egress_policy_allow_private(p, "[::1]:1", &err), 0);
	/* again: no duplicate */
	assert_int_equal(egress_policy_allow_private(p, "10.0.0.5:8080", &err), 0);
	assert_int_equal(p->n_private, 3);

	struct sockaddr_in a4 = { .sin_family = AF_INET };
	inet_pton(AF_INET, "10.0.0.5", &a4.sin_addr);
	assert_true(egress_policy_private_ok(p, (struct sockaddr *)&a4, 8080));
	assert_false(egress_policy_private_ok(p, (struct sockaddr *)&a4, 8081));
	inet_pton(AF_INET, "10.0.0.6", &a4.sin_addr);
	assert_false(egress_policy_private_ok(p, (struct sockaddr *)&a4, 8080));
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6 };
	inet_pton(AF_INET6, "fd00::1", &a6.sin6_addr);
	assert_true(egress_policy_private_ok(p, (struct sockaddr *)&a6, 443));
	/* the IPv4-mapped form of an allowed IPv4 address is a different address */
	inet_pton(AF_INET6, "::ffff:10.0.0.5", &a6.sin6_addr);
	assert_false(egress_policy_private_ok(p, (struct sockaddr *)&a6, 8080));

	static const char *const bad[] = {
		"",		  "10.0.0.5",	    "10.0.0.5:",	"10.0.0.5:0",
		"10.0.0.5:65536", "10.0.0.5:080",   "10.0.0.5:http",	"10.1:80",
		"010.0.0.5:80",	  "10.0.0.256:80",  "fd00::1:443",	"[fd00::1]443",
		"[fd00::1]",	  "[fe80::1%eth0]:80", "[::ffff:10.0.0.5]:80", "host.example:80",
		"[10.0.0.5]:80",  " 10.0.0.5:80",   "10.0.0.5:80 ",	"[]:80",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err.msg[0] = '\0';
		if (egress_policy_allow_private(p, bad[i], &err) == 0)
			fail_msg("--allow-private '%s' was accepted", bad[i]);
		assert_non_null(strstr(err.msg, "--allow-private"));
	}
	assert_int_equal(p->n_private, 3);
	for (int i = 3; i < EGRESS_MAX_PRIVATE; i++) {
		char s[32];
		snprintf(s, sizeof(s), "10.1.0.%d:80", i);
		assert_int_equal(egress_policy_allow_private(p, s, &err), 0);
	}
	assert_true(egress_policy_allow_private(p, "10.2.0.1:80", &err) < 0);
	assert_non_null(strstr(err.msg, "more than 64"));
	egress_policy_free(p);

	parse_fails("version: 1\nprivate:\n  - 10.0.0.5\n",
		    "policy.yaml:3: private[0]: '10.0.0.5': missing ':PORT'", NULL);
	parse_fails("version: 1\nprivate:\n  - 10.0.0.5:80\n  - [fd00::1]:80\n", "policy.yaml:4",
		    NULL);
}

static void test_load_errors(void **state)
{
	(void)state;
	struct egress_policy *p = NULL;
	struct cdn_err err = { 0 };
	assert_true(egress_policy_load("/nonexistent/policy.yaml", &p, &err) < 0);
	assert_non_null(strstr(err.msg, "/nonexistent/policy.yaml"));
	assert_true(egress_policy_load("/", &p, &err) < 0);
	assert_non_null(strstr(err.msg, "not a regular file"));

	char dir[] = "/tmp/cordon-policy-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[256];
	snprintf(path, sizeof(path), "%s/policy.yaml", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("version: 1\ndomains:\n  - name: a.example\n    metods: [GET]\n", f);
	fclose(f);
	assert_true(egress_policy_load(path, &p, &err) < 0);
	char want[300];
	snprintf(want, sizeof(want), "%s:4: domains[0]: unknown key 'metods'", path);
	assert_non_null(strstr(err.msg, want));
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_default),
		cmocka_unit_test(test_example_file),
		cmocka_unit_test(test_full_inline),
		cmocka_unit_test(test_unknown_keys),
		cmocka_unit_test(test_types),
		cmocka_unit_test(test_version),
		cmocka_unit_test(test_booleans),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_ports_methods),
		cmocka_unit_test(test_yaml_extras),
		cmocka_unit_test(test_duplicates),
		cmocka_unit_test(test_names_in_policy),
		cmocka_unit_test(test_llm_rules),
		cmocka_unit_test(test_https_rules_need_inspection),
		cmocka_unit_test(test_limits_and_sizes),
		cmocka_unit_test(test_normalize),
		cmocka_unit_test(test_wildcards),
		cmocka_unit_test(test_services),
		cmocka_unit_test(test_allow),
		cmocka_unit_test(test_allow_private),
		cmocka_unit_test(test_load_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
