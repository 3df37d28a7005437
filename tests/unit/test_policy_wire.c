/* SPDX-License-Identifier: Apache-2.0 */
/* The policy's wire form (policy_wire.c): exact round trips, strict reads. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "egress/policy.h"

static struct egress_policy *load(const char *yaml)
{
	struct egress_policy *p = NULL;
	struct cdn_err err = { 0 };
	if (egress_policy_parse(yaml, strlen(yaml), "policy.yaml", &p, &err) < 0)
		fail_msg("policy does not load: %s\n%s", err.msg, yaml);
	return p;
}

static void assert_same(const struct egress_policy *a, const struct egress_policy *b)
{
	assert_int_equal(a->enforce, b->enforce);
	assert_int_equal(a->default_rpm, b->default_rpm);
	assert_int_equal(a->global_rpm, b->global_rpm);
	assert_int_equal(a->approval_timeout_s, b->approval_timeout_s);
	assert_int_equal(a->n_rules, b->n_rules);
	for (size_t i = 0; i < a->n_rules; i++) {
		const struct egress_rule *x = &a->rules[i], *y = &b->rules[i];
		assert_string_equal(x->name, y->name);
		assert_int_equal(x->wildcard, y->wildcard);
		assert_int_equal(x->category, y->category);
		if (x->group || y->group)
			assert_string_equal(x->group, y->group);
		assert_int_equal(x->n_ports, y->n_ports);
		assert_memory_equal(x->ports, y->ports, x->n_ports * sizeof(x->ports[0]));
		assert_int_equal(x->methods, y->methods);
		assert_int_equal(x->rpm, y->rpm);
		assert_int_equal(x->agent_rpm, y->agent_rpm);
		assert_int_equal(x->approval, y->approval);
		assert_int_equal(x->inspect, y->inspect);
		assert_int_equal(x->line, y->line);
		assert_int_equal(x->rate_key == NULL, y->rate_key == NULL);
		if (x->rate_key)
			assert_string_equal(x->rate_key, y->rate_key);
		assert_int_equal(x->agent_rate_key == NULL, y->agent_rate_key == NULL);
		if (x->agent_rate_key)
			assert_string_equal(x->agent_rate_key, y->agent_rate_key);
	}
	assert_int_equal(a->n_private, b->n_private);
	for (size_t i = 0; i < a->n_private; i++) {
		assert_int_equal(a->private_ok[i].port, b->private_ok[i].port);
		assert_memory_equal(&a->private_ok[i].addr, &b->private_ok[i].addr,
				    sizeof(a->private_ok[i].addr));
	}
}

/* p survives to_json/from_json exactly, and the JSON is stable. */
static void round_trip(const struct egress_policy *p)
{
	json_t *j = egress_policy_to_json(p);
	assert_non_null(j);
	struct egress_policy *back = NULL;
	struct cdn_err err = { 0 };
	if (egress_policy_from_json(j, &back, &err) < 0)
		fail_msg("from_json: %s", err.msg);
	assert_same(p, back);
	json_t *again = egress_policy_to_json(back);
	assert_true(json_equal(j, again));
	json_decref(again);
	json_decref(j);
	egress_policy_free(back);
}

static void test_round_trips(void **state)
{
	(void)state;
	struct egress_policy *p = NULL;
	struct cdn_err err = { 0 };
	assert_int_equal(egress_policy_default(&p, &err), 0);
	round_trip(p);
	assert_int_equal(egress_policy_allow(p, "upstream.test:8080", &err), 0);
	assert_int_equal(egress_policy_allow_private(p, "127.0.0.2:8080", &err), 0);
	assert_int_equal(egress_policy_allow_private(p, "[::1]:443", &err), 0);
	round_trip(p);
	egress_policy_free(p);

	p = load("version: 1\nenforce: false\n"
		 "limits: {requests_per_minute: 7, global_requests_per_minute: 70}\n"
		 "approvals: {timeout_seconds: 33}\n"
		 "services: {gmail: true}\n"
		 "domains:\n"
		 "  - name: '*.example.com'\n    ports: [80, 8080]\n    methods: [GET, POST]\n"
		 "    approval: required\n"
		 "  - name: api.example.org\n    inspect: true\n    requests_per_minute: 0\n");
	round_trip(p);

	/* A narrowed policy carries rate keys and agent limits. */
	const char *domains[] = { "a.example.com", "b.example.com", "api.example.org" };
	struct egress_rule narrow[1];
	memset(narrow, 0, sizeof(narrow));
	narrow[0].name = (char *)"b.example.com";
	narrow[0].rpm = 3;
	narrow[0].methods = EGRESS_M_ALL;
	struct egress_policy *n = NULL;
	if (egress_policy_narrow(p, domains, 3, narrow, 1, &n, NULL, NULL, &err) < 0)
		fail_msg("narrow: %s", err.msg);
	round_trip(n);
	egress_policy_free(n);
	egress_policy_free(p);
}

static int from_text(const char *text, struct cdn_err *err)
{
	json_t *j = json_loads(text, 0, NULL);
	assert_non_null(j);
	struct egress_policy *p = NULL;
	int r = egress_policy_from_json(j, &p, err);
	json_decref(j);
	egress_policy_free(p);
	return r;
}

#define HEAD "{\"enforce\":true,\"default_rpm\":60,\"global_rpm\":600,\"approval_timeout_s\":120,"
#define RULE(name) "{\"name\":\"" name "\",\"category\":\"user\",\"ports\":[80],\"methods\":[\"GET\"]," \
		   "\"rpm\":1,\"approval\":false,\"inspect\":false,\"line\":1,\"max_label\":40," \
		   "\"random_labels\":false}"

static void test_strict(void **state)
{
	(void)state;
	struct cdn_err err = { 0 };
	assert_int_equal(from_text(HEAD "\"rules\":[" RULE("a.test") "," RULE("b.test") "],\"private\":[]}", &err), 0);
	/* out of order, or twice: the bisecting matcher would miss rules */
	assert_true(from_text(HEAD "\"rules\":[" RULE("b.test") "," RULE("a.test") "],\"private\":[]}", &err) < 0);
	assert_non_null(strstr(err.msg, "order"));
	assert_true(from_text(HEAD "\"rules\":[" RULE("a.test") "," RULE("a.test") "],\"private\":[]}", &err) < 0);
	/* names must be normalised */
	assert_true(from_text(HEAD "\"rules\":[" RULE("A.test") "],\"private\":[]}", &err) < 0);
	assert_true(from_text(HEAD "\"rules\":[" RULE("*") "],\"private\":[]}", &err) < 0);
	assert_true(from_text(HEAD "\"rules\":[" RULE("a.test.") "],\"private\":[]}", &err) < 0);
	/* unknown keys, ranges, types */
	assert_true(from_text(HEAD "\"rules\":[],\"private\":[],\"extra\":1}", &err) < 0);
	assert_true(from_text("{\"enforce\":1,\"default_rpm\":60,\"global_rpm\":600,\"approval_timeout_s\":120,"
			      "\"rules\":[],\"private\":[]}", &err) < 0);
	assert_true(from_text("{\"enforce\":true,\"default_rpm\":100001,\"global_rpm\":600,"
			      "\"approval_timeout_s\":120,\"rules\":[],\"private\":[]}", &err) < 0);
	assert_true(from_text(HEAD "\"rules\":[],\"private\":[{\"ip\":\"1.2.3\",\"port\":80}]}", &err) < 0);
	assert_true(from_text(HEAD "\"rules\":[],\"private\":[{\"ip\":\"1.2.3.4\",\"port\":0}]}", &err) < 0);
	assert_true(from_text(HEAD "\"rules\":[{\"name\":\"a.test\",\"category\":\"user\",\"ports\":[80],"
			      "\"methods\":[\"get\"],\"rpm\":1,\"approval\":false,\"inspect\":false,"
			      "\"line\":1,\"max_label\":40,\"random_labels\":false}],\"private\":[]}", &err) < 0);
	assert_true(from_text(HEAD "\"rules\":[{\"name\":\"a.test\",\"category\":\"user\",\"group\":\"nope\","
			      "\"ports\":[80],\"methods\":[],\"rpm\":1,\"approval\":false,"
			      "\"inspect\":false,\"line\":1}],\"private\":[]}", &err) < 0);
	assert_true(from_text("[]", &err) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trips),
		cmocka_unit_test(test_strict),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
