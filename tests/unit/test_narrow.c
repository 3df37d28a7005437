/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "egress/policy.h"
#include "registry/manifest.h"

/* ------------------------------------------------------------- helpers */

static struct egress_policy *load(const char *yaml)
{
	struct egress_policy *p = NULL;
	struct cdn_err err = { 0 };
	if (egress_policy_parse(yaml, strlen(yaml), "policy.yaml", &p, &err) < 0)
		fail_msg("policy does not load: %s\n%s", err.msg, yaml);
	return p;
}

/* A base with only the LLM built-ins (they cannot be turned off) and the
 * operator's own domains. */
#define BASE_HEAD "version: 1\ncategories: {search: false, research: false}\ndomains:\n"

struct drops {
	char names[32][EGRESS_MAX_HOST + 1];
	size_t n;
};

static void on_drop(void *ctx, const char *domain)
{
	struct drops *d = ctx;
	assert_true(d->n < 32);
	snprintf(d->names[d->n++], sizeof(d->names[0]), "%s", domain);
}

static bool dropped(const struct drops *d, const char *name)
{
	for (size_t i = 0; i < d->n; i++)
		if (strcmp(d->names[i], name) == 0)
			return true;
	return false;
}

/* The tighter of a narrowed rule's two limits, 0 when neither is set. */
static uint32_t eff_rpm(const struct egress_rule *r)
{
	if (!r->rpm || !r->agent_rpm)
		return r->rpm ? r->rpm : r->agent_rpm;
	return r->rpm < r->agent_rpm ? r->rpm : r->agent_rpm;
}

/* The window a rule's operator limit counts in. */
static const char *rate_window(const struct egress_rule *r)
{
	return r->rate_key ? r->rate_key : r->name;
}

static void check_valid(const struct egress_policy *p)
{
	for (size_t i = 0; i < p->n_rules; i++) {
		const struct egress_rule *r = &p->rules[i];
		if (i && strcmp(p->rules[i - 1].name, r->name) >= 0)
			fail_msg("rules not sorted/unique at %zu: %s, %s", i, p->rules[i - 1].name,
				 r->name);
		char out[EGRESS_MAX_HOST + 1];
		bool wild = false;
		struct cdn_err err = { 0 };
		assert_int_equal(egress_rule_name_normalize(r->name, out, sizeof(out), &wild, &err),
				 0);
		assert_string_equal(out, r->name);
		assert_int_equal(wild, r->wildcard);
		assert_true(r->n_ports <= EGRESS_MAX_PORTS);
		assert_int_equal(r->methods & ~(unsigned)EGRESS_M_ALL, 0);
		if (r->category == EGRESS_CAT_LLM)
			assert_false(r->approval);
		if (!r->wildcard)
			assert_ptr_equal(egress_policy_match(p, r->name), r);
	}
}

static struct egress_policy *narrow(const struct egress_policy *base, const char *const *domains,
				    size_t n, const struct egress_rule *rules, size_t n_rules,
				    struct drops *d)
{
	struct egress_policy *out = NULL;
	struct cdn_err err = { 0 };
	if (egress_policy_narrow(base, domains, n, rules, n_rules, &out, d ? on_drop : NULL, d,
				 &err) < 0)
		fail_msg("narrowing failed: %s", err.msg);
	assert_non_null(out);
	check_valid(out);
	return out;
}

static void narrow_fails(const struct egress_policy *base, const char *const *domains, size_t n,
			 const struct egress_rule *rules, size_t n_rules, const char *want)
{
	struct egress_policy *sentinel = (struct egress_policy *)(uintptr_t)0x1;
	struct egress_policy *out = sentinel;
	struct cdn_err err = { 0 };
	if (egress_policy_narrow(base, domains, n, rules, n_rules, &out, NULL, NULL, &err) == 0)
		fail_msg("expected narrowing to fail (%s)", want);
	assert_ptr_equal(out, sentinel);
	if (want && !strstr(err.msg, want))
		fail_msg("error '%s' lacks '%s'", err.msg, want);
}

static const char *match_name(const struct egress_policy *p, const char *host)
{
	const struct egress_rule *r = egress_policy_match(p, host);
	return r ? r->name : "(none)";
}

/* An agent rule that narrows nothing, to be filled in. */
static struct egress_rule agent_rule(const char *name)
{
	struct egress_rule r = { 0 };
	r.name = (char *)name;
	r.wildcard = name[0] == '*';
	r.methods = EGRESS_M_ALL;
	return r;
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------ wildcards */

static void test_exact_under_base_wildcard(void **state)
{
	(void)state;
	struct egress_policy *base = load(BASE_HEAD "  - name: '*.github.com'\n"
						    "    ports: [443, 8443]\n"
						    "    methods: [GET, POST]\n"
						    "    requests_per_minute: 30\n"
						    "    approval: required\n"
						    "    inspect: true\n");
	const char *dom[] = { "api.github.com" };
	struct drops d = { 0 };
	struct egress_policy *p = narrow(base, dom, 1, NULL, 0, &d);
	assert_int_equal(p->n_rules, 1);
	const struct egress_rule *r = egress_policy_match(p, "api.github.com");
	assert_non_null(r);
	assert_string_equal(r->name, "api.github.com");
	assert_false(r->wildcard);
	assert_int_equal(r->n_ports, 2);
	assert_int_equal(r->ports[0], 443);
	assert_int_equal(r->ports[1], 8443);
	assert_int_equal(r->methods, EGRESS_M_GET | EGRESS_M_POST);
	assert_int_equal(r->rpm, 30);
	assert_string_equal(rate_window(r), "*.github.com"); /* the operator rule's window */
	assert_null(r->agent_rate_key);
	assert_true(r->approval);
	assert_true(r->inspect);
	assert_int_equal(r->category, EGRESS_CAT_USER);
	assert_int_equal(r->line, egress_policy_match(base, "api.github.com")->line);
	/* nothing else under the base's wildcard, and not the LLM APIs */
	assert_null(egress_policy_match(p, "x.github.com"));
	assert_null(egress_policy_match(p, "github.com"));
	assert_null(egress_policy_match(p, "api.openai.com"));
	assert_int_equal(d.n, 0);
	egress_policy_free(p);
	egress_policy_free(base);
}

static void test_wildcard_over_base_exact(void **state)
{
	(void)state;
	struct egress_policy *base = load(BASE_HEAD "  - name: api.github.com\n"
						    "  - name: github.com\n");
	const char *dom[] = { "*.github.com" };
	struct drops d = { 0 };
	struct egress_policy *p = narrow(base, dom, 1, NULL, 0, &d);
	assert_int_equal(p->n_rules, 1);
	assert_string_equal(p->rules[0].name, "api.github.com");
	assert_string_equal(match_name(p, "api.github.com"), "api.github.com");
	assert_null(egress_policy_match(p, "x.github.com"));
	/* the apex is not below the wildcard */
	assert_null(egress_policy_match(p, "github.com"));
	assert_int_equal(d.n, 0);
	egress_policy_free(p);
	egress_policy_free(base);
}

static void test_two_wildcards(void **state)
{
	(void)state;
	struct egress_policy *base = load(BASE_HEAD "  - name: '*.b.com'\n"
						    "    ports: [443]\n");
	/* agent's longer: the agent's */
	const char *dom1[] = { "*.a.b.com" };
	struct egress_policy *p = narrow(base, dom1, 1, NULL, 0, NULL);
	assert_int_equal(p->n_rules, 1);
	assert_string_equal(p->rules[0].name, "*.a.b.com");
	assert_true(p->rules[0].wildcard);
	assert_int_equal(p->rules[0].n_ports, 1);
	assert_string_equal(match_name(p, "x.a.b.com"), "*.a.b.com");
	assert_string_equal(match_name(p, "y.x.a.b.com"), "*.a.b.com");
	assert_null(egress_policy_match(p, "a.b.com"));
	assert_null(egress_policy_match(p, "x.b.com"));
	egress_policy_free(p);
	egress_policy_free(base);

	/* base's longer: the base's */
	base = load(BASE_HEAD "  - name: '*.a.b.com'\n");
	const char *dom2[] = { "*.b.com" };
	p = narrow(base, dom2, 1, NULL, 0, NULL);
	assert_int_equal(p->n_rules, 1);
	assert_string_equal(p->rules[0].name, "*.a.b.com");
	assert_string_equal(match_name(p, "x.a.b.com"), "*.a.b.com");
	assert_null(egress_policy_match(p, "x.b.com"));
	egress_policy_free(p);

	/* the same wildcard */
	const char *dom3[] = { "*.a.b.com" };
	p = narrow(base, dom3, 1, NULL, 0, NULL);
	assert_int_equal(p->n_rules, 1);
	assert_string_equal(p->rules[0].name, "*.a.b.com");
	egress_policy_free(p);
	egress_policy_free(base);
}

static void test_unrelated(void **state)
{
	(void)state;
	struct egress_policy *base = load(BASE_HEAD "  - name: '*.github.com'\n"
						    "  - name: example.com\n");
	const char *dom[] = { "*.gitlab.com",  "badgithub.com",	  "github.com",	  "*.ithub.com",
			      "a.example.com", "*.a.example.com", "*.com.example" };
	struct drops d = { 0 };
	struct egress_policy *p = narrow(base, dom, N(dom), NULL, 0, &d);
	assert_int_equal(p->n_rules, 0);
	assert_null(egress_policy_match(p, "api.github.com"));
	assert_null(egress_policy_match(p, "example.com"));
	assert_int_equal(d.n, N(dom));
	for (size_t i = 0; i < N(dom); i++)
		assert_true(dropped(&d, dom[i]));
	egress_policy_free(p);

	/* no domains at all: nothing, not even the LLM APIs */
	p = narrow(base, NULL, 0, NULL, 0, NULL);
	assert_int_equal(p->n_rules, 0);
	assert_null(egress_policy_match(p, "api.openai.com"));
	egress_policy_free(p);
	egress_policy_free(base);
}

static void test_several_base_rules(void **state)
{
	(void)state;
	struct egress_policy *base = load(BASE_HEAD "  - name: a.example.com\n"
						    "    methods: [GET]\n"
						    "    inspect: true\n"
						    "  - name: b.example.com\n"
						    "    ports: [8080]\n"
						    "  - name: '*.c.example.com'\n"
						    "    requests_per_minute: 7\n"
						    "  - name: example.com\n"
						    "  - name: other.org\n");
	const char *dom[] = { "*.example.com" };
	struct drops d = { 0 };
	struct egress_policy *p = narrow(base, dom, 1, NULL, 0, &d);
	assert_int_equal(p->n_rules, 3);
	assert_string_equal(p->rules[0].name, "*.c.example.com");
	assert_string_equal(p->rules[1].name, "a.example.com");
	assert_string_equal(p->rules[2].name, "b.example.com");
	assert_int_equal(egress_policy_match(p, "a.example.com")->methods, EGRESS_M_GET);
	const struct egress_rule *b = egress_policy_match(p, "b.example.com");
	assert_int_equal(b->n_ports, 1);
	assert_int_equal(b->ports[0], 8080);
	assert_int_equal(eff_rpm(egress_policy_match(p, "x.c.example.com")), 7);
	assert_null(egress_policy_match(p, "c.example.com"));
	assert_null(egress_policy_match(p, "z.example.com"));
	assert_null(egress_policy_match(p, "example.com"));
	assert_null(egress_policy_match(p, "other.org"));
	assert_int_equal(d.n, 0);
	egress_policy_free(p);
	egress_policy_free(base);
}

/* The rule the base applies to a host is not every rule that covers it. */
static void test_base_precedence(void **state)
{
	(void)state;
	struct egress_policy *base = load(BASE_HEAD "  - name: '*.github.com'\n"
						    "  - name: '*.api.github.com'\n"
						    "    methods: [GET]\n"
						    "    inspect: true\n"
						    "  - name: raw.github.com\n"
						    "    methods: [HEAD]\n"
						    "    inspect: true\n");
	const char *dom1[] = { "x.api.github.com" };
	struct egress_policy *p = narrow(base, dom1, 1, NULL, 0, NULL);
	assert_int_equal(p->n_rules, 1);
	assert_string_equal(p->rules[0].name, "x.api.github.com");
	assert_int_equal(p->rules[0].methods, EGRESS_M_GET);
	assert_true(p->rules[0].inspect);
	egress_policy_free(p);

	const char *dom2[] = { "*.github.com" };
	p = narrow(base, dom2, 1, NULL, 0, NULL);
	assert_int_equal(p->n_rules, 3);
	assert_int_equal(egress_policy_match(p, "y.api.github.com")->methods, EGRESS_M_GET);
	assert_int_equal(egress_policy_match(p, "z.github.com")->methods, EGRESS_M_ALL);
	assert_int_equal(egress_policy_match(p, "raw.github.com")->methods, EGRESS_M_HEAD);
	egress_policy_free(p);

	/* the agent's narrow wildcard under the base's narrow one */
	const char *dom3[] = { "*.v3.api.github.com", "*.github.com" };
	p = narrow(base, dom3, 2, NULL, 0, NULL);
	assert_string_equal(match_name(p, "a.v3.api.github.com"), "*.v3.api.github.com");
	assert_int_equal(egress_policy_match(p, "a.v3.api.github.com")->methods, EGRESS_M_GET);
	egress_policy_free(p);
	egress_policy_free(base);
}

/* The agent's own entries follow the same precedence. */
static void test_agent_precedence(void **state)
{
	(void)state;
	struct egress_policy *base = load(BASE_HEAD "  - name: '*.github.com'\n");
	const char *dom[] = { "*.github.com", "api.github.com", "*.uploads.github.com" };
	struct egress_rule rules[3] = { agent_rule("api.github.com"),
					agent_rule("*.uploads.github.com") };
	rules[0].methods = EGRESS_M_GET;
	rules[1].ports[0] = 443;
	rules[1].n_ports = 1;
	struct egress_policy *p = narrow(base, dom, 3, rules, 2, NULL);
	assert_int_equal(p->n_rules, 3);
	assert_int_equal(egress_policy_match(p, "api.github.com")->methods, EGRESS_M_GET);
	assert_int_equal(egress_policy_match(p, "www.github.com")->methods, EGRESS_M_ALL);
	assert_int_equal(egress_policy_match(p, "www.github.com")->n_ports, 2);
	assert_int_equal(egress_policy_match(p, "a.uploads.github.com")->n_ports, 1);
	assert_string_equal(match_name(p, "uploads.github.com"), "*.github.com");
	egress_policy_free(p);
	egress_policy_free(base);
}

static void test_ip_and_idn(void **state)
{
	(void)state;
	struct egress_policy *base = load(BASE_HEAD "  - name: 10.0.0.5\n"
						    "    ports: [8080]\n"
						    "  - name: '*.xn--bcher-kva.example'\n");
	const char *dom[] = { "10.0.0.5", "a.B\xc3\x9c\x43HER.example.", "10.0.0.6" };
	struct drops d = { 0 };
	struct egress_policy *p = narrow(base, dom, 3, NULL, 0, &d);
	assert_int_equal(p->n_rules, 2);
	assert_non_null(egress_policy_match(p, "10.0.0.5"));
	assert_string_equal(match_name(p, "a.xn--bcher-kva.example"), "a.xn--bcher-kva.example");
	assert_int_equal(d.n, 1);
	assert_string_equal(d.names[0], "10.0.0.6");
	egress_policy_free(p);
	egress_policy_free(base);
}

/* -------------------------------------------------------- intersections */

static void test_intersections(void **state)
{
	(void)state;
	struct egress_policy *base = load(BASE_HEAD "  - name: a.example\n"
						    "    ports: [80, 8080, 8443]\n"
						    "    methods: [GET, POST, DELETE]\n"
						    "    requests_per_minute: 30\n"
						    "  - name: b.example\n"
						    "    requests_per_minute: 10\n"
						    "    approval: required\n"
						    "    inspect: true\n"
						    "  - name: c.example\n"
						    "    requests_per_minute: 0\n"
						    "limits:\n  requests_per_minute: 0\n");
	const char *dom[] = { "a.example", "b.example", "c.example" };
	struct egress_rule rules[3] = { agent_rule("a.example"), agent_rule("b.example"),
					agent_rule("c.example") };
	rules[0].ports[0] = 8443;
	rules[0].ports[1] = 8080;
	rules[0].ports[2] = 9000;
	rules[0].n_ports = 3;
	rules[0].methods = EGRESS_M_GET | EGRESS_M_PUT | EGRESS_M_DELETE;
	rules[0].rpm = 50;
	rules[0].approval = true;
	rules[0].inspect = true;
	rules[1].rpm = 20;
	rules[1].approval = false;
	rules[1].inspect = false;
	rules[2].rpm = 5;
	struct egress_policy *p = narrow(base, dom, 3, rules, 3, NULL);
	assert_int_equal(p->n_rules, 3);

	const struct egress_rule *a = egress_policy_match(p, "a.example");
	assert_int_equal(a->n_ports, 2);
	assert_int_equal(a->ports[0], 8080); /* the base's order */
	assert_int_equal(a->ports[1], 8443);
	assert_false(egress_rule_has_port(a, 80));
	assert_false(egress_rule_has_port(a, 9000));
	assert_int_equal(a->methods, EGRESS_M_GET | EGRESS_M_DELETE);
	assert_int_equal(eff_rpm(a), 30); /* base lower */
	assert_int_equal(a->agent_rpm, 50);
	assert_string_equal(a->agent_rate_key, "agent:a.example");
	assert_true(a->approval);     /* agent asks */
	assert_true(a->inspect);      /* agent asks */

	const struct egress_rule *b = egress_policy_match(p, "b.example");
	assert_int_equal(b->n_ports, 2); /* the base's default 80, 443 */
	assert_int_equal(b->methods, EGRESS_M_ALL);
	assert_int_equal(eff_rpm(b), 10); /* base lower */
	assert_true(b->approval);     /* "none" cannot lift the base's hold */
	assert_true(b->inspect);      /* and false cannot turn inspection off */

	const struct egress_rule *c = egress_policy_match(p, "c.example");
	assert_int_equal(eff_rpm(c), 5); /* base unlimited, agent 5 */
	assert_int_equal(c->rpm, 0);
	egress_policy_free(p);

	/* agent 0 means no extra limit; the lower of two wins */
	rules[0] = agent_rule("a.example");
	rules[0].rpm = 0;
	rules[1] = agent_rule("b.example");
	rules[1].rpm = 3;
	p = narrow(base, dom, 3, rules, 2, NULL);
	assert_int_equal(eff_rpm(egress_policy_match(p, "a.example")), 30);
	assert_null(egress_policy_match(p, "a.example")->agent_rate_key);
	assert_int_equal(eff_rpm(egress_policy_match(p, "b.example")), 3);
	assert_int_equal(eff_rpm(egress_policy_match(p, "c.example")), 0); /* both unlimited */
	egress_policy_free(p);
	egress_policy_free(base);
}

static void test_categories(void **state)
{
	(void)state;
	struct egress_policy *base = NULL;
	struct cdn_err err = { 0 };
	assert_int_equal(egress_policy_default(&base, &err), 0);
	const char *dom[] = { "api.openai.com", "*.wikipedia.org", "api.tavily.com" };
	struct egress_rule rules[3] = { agent_rule("api.openai.com"), agent_rule("*.wikipedia.org"),
					agent_rule("api.tavily.com") };
	rules[0].approval = true; /* never on an LLM API */
	rules[0].methods = EGRESS_M_POST;
	rules[1].approval = true;
	rules[2].approval = true;
	struct egress_policy *p = narrow(base, dom, 3, rules, 3, NULL);
	assert_int_equal(p->n_rules, 3);
	const struct egress_rule *llm = egress_policy_match(p, "api.openai.com");
	assert_int_equal(llm->category, EGRESS_CAT_LLM);
	assert_string_equal(llm->group, "llm");
	assert_false(llm->approval);
	assert_int_equal(llm->methods, EGRESS_M_POST);
	const struct egress_rule *wiki = egress_policy_match(p, "en.wikipedia.org");
	assert_int_equal(wiki->category, EGRESS_CAT_RESEARCH);
	/* a research site stays read-only whatever the agent asks */
	assert_int_equal(wiki->methods, EGRESS_M_GET | EGRESS_M_HEAD);
	assert_true(wiki->approval);
	assert_true(wiki->inspect);
	assert_null(egress_policy_match(p, "wikipedia.org"));
	const struct egress_rule *search = egress_policy_match(p, "api.tavily.com");
	assert_int_equal(search->category, EGRESS_CAT_SEARCH);
	assert_true(search->approval);
	egress_policy_free(p);

	/* an operator's rule replacing an LLM built-in stays LLM */
	egress_policy_free(base);
	base = load("version: 1\ndomains:\n  - name: api.anthropic.com\n    ports: [443]\n");
	const char *dom2[] = { "api.anthropic.com" };
	rules[0] = agent_rule("api.anthropic.com");
	rules[0].approval = true;
	p = narrow(base, dom2, 1, rules, 1, NULL);
	assert_int_equal(p->rules[0].category, EGRESS_CAT_LLM);
	assert_false(p->rules[0].approval);
	egress_policy_free(p);
	egress_policy_free(base);
}

/* Ports or methods that miss the base's entirely allow nothing. */
static void test_empty_intersection(void **state)
{
	(void)state;
	struct egress_policy *base = load(BASE_HEAD "  - name: api.github.com\n"
						    "    ports: [443]\n"
						    "  - name: '*.github.com'\n"
						    "    ports: [443, 8443]\n"
						    "  - name: lone.example\n"
						    "    methods: [GET]\n"
						    "    inspect: true\n");
	const char *dom[] = { "*.github.com", "api.github.com", "lone.example" };
	struct egress_rule rules[2] = { agent_rule("api.github.com"), agent_rule("lone.example") };
	rules[0].ports[0] = 8443;
	rules[0].n_ports = 1;
	rules[1].methods = EGRESS_M_POST;
	struct drops d = { 0 };
	struct egress_policy *p = narrow(base, dom, 3, rules, 2, &d);
	/* api.github.com stays, allowing nothing: without it the wildcard
	 * would let api.github.com:8443 through, which the base does not */
	const struct egress_rule *api = egress_policy_match(p, "api.github.com");
	assert_non_null(api);
	assert_string_equal(api->name, "api.github.com");
	assert_false(egress_rule_has_port(api, 443));
	assert_false(egress_rule_has_port(api, 8443));
	assert_true(egress_rule_has_port(egress_policy_match(p, "www.github.com"), 8443));
	/* lone.example shadows nothing: it goes */
	assert_null(egress_policy_match(p, "lone.example"));
	assert_int_equal(p->n_rules, 2);
	assert_int_equal(d.n, 2);
	assert_true(dropped(&d, "api.github.com"));
	assert_true(dropped(&d, "lone.example"));
	assert_false(dropped(&d, "*.github.com"));
	egress_policy_free(p);
	egress_policy_free(base);
}

static void test_settings_and_base_unchanged(void **state)
{
	(void)state;
	struct egress_policy *base = load(BASE_HEAD "  - name: '*.example.com'\n"
						    "    methods: [GET]\n"
						    "    inspect: true\n"
						    "enforce: false\n"
						    "limits:\n"
						    "  requests_per_minute: 17\n"
						    "  global_requests_per_minute: 99\n"
						    "approvals:\n"
						    "  timeout_seconds: 33\n"
						    "private:\n"
						    "  - 10.0.0.5:8080\n"
						    "  - '[fd00::5]:443'\n");
	/* a deep copy of what matters, to compare after */
	size_t n = base->n_rules;
	struct egress_rule *before = calloc(n, sizeof(*before));
	char(*names)[EGRESS_MAX_HOST + 1] = calloc(n, sizeof(*names));
	assert_non_null(before);
	assert_non_null(names);
	memcpy(before, base->rules, n * sizeof(*before));
	for (size_t i = 0; i < n; i++)
		snprintf(names[i], sizeof(names[i]), "%s", base->rules[i].name);
	const struct egress_rule *rules_ptr = base->rules;

	const char *dom[] = { "*.example.com", "a.example.com" };
	struct egress_rule rules[1] = { agent_rule("a.example.com") };
	rules[0].ports[0] = 443;
	rules[0].n_ports = 1;
	rules[0].approval = true;
	struct egress_policy *p = narrow(base, dom, 2, rules, 1, NULL);
	assert_false(p->enforce);
	assert_int_equal(p->default_rpm, 17);
	assert_int_equal(p->global_rpm, 99);
	assert_int_equal(p->approval_timeout_s, 33);
	assert_int_equal(p->n_private, 2);
	struct sockaddr_in a4 = { .sin_family = AF_INET };
	inet_pton(AF_INET, "10.0.0.5", &a4.sin_addr);
	assert_true(egress_policy_private_ok(p, (struct sockaddr *)&a4, 8080));
	assert_false(egress_policy_private_ok(p, (struct sockaddr *)&a4, 8081));
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6 };
	inet_pton(AF_INET6, "fd00::5", &a6.sin6_addr);
	assert_true(egress_policy_private_ok(p, (struct sockaddr *)&a6, 443));
	assert_int_equal(eff_rpm(egress_policy_match(p, "a.example.com")), 17);

	/* the base is as it was, and its rules are not shared */
	assert_ptr_equal(base->rules, rules_ptr);
	assert_int_equal(base->n_rules, n);
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(base->rules[i].name, names[i]);
		assert_ptr_equal(base->rules[i].name, before[i].name);
		assert_memory_equal(base->rules[i].ports, before[i].ports, sizeof(before[i].ports));
		assert_int_equal(base->rules[i].n_ports, before[i].n_ports);
		assert_int_equal(base->rules[i].methods, before[i].methods);
		assert_int_equal(base->rules[i].rpm, before[i].rpm);
		assert_int_equal(base->rules[i].approval, before[i].approval);
		assert_int_equal(base->rules[i].inspect, before[i].inspect);
	}
	for (size_t i = 0; i < p->n_rules; i++)
		for (size_t j = 0; j < n; j++)
			assert_ptr_not_equal(p->rules[i].name, base->rules[j].name);
	assert_false(base->enforce);
	/* the result can be freed first */
	egress_policy_free(p);
	assert_string_equal(base->rules[0].name, names[0]);
	free(before);
	free(names);
	egress_policy_free(base);
}

static void test_duplicates_and_drops(void **state)
{
	(void)state;
	struct egress_policy *base = NULL;
	struct cdn_err err = { 0 };
	assert_int_equal(egress_policy_default(&base, &err), 0);
	const char *dom[] = { "API.OpenAI.com.", "api.openai.com", "evil.example", "evil.example" };
	struct drops d = { 0 };
	struct egress_policy *p = narrow(base, dom, 4, NULL, 0, &d);
	assert_int_equal(p->n_rules, 1);
	assert_string_equal(p->rules[0].name, "api.openai.com");
	/* reported once, normalised */
	assert_int_equal(d.n, 1);
	assert_string_equal(d.names[0], "evil.example");
	egress_policy_free(p);
	/* no callback is fine */
	p = narrow(base, dom, 4, NULL, 0, NULL);
	egress_policy_free(p);
	egress_policy_free(base);
}

static void test_errors(void **state)
{
	(void)state;
	struct egress_policy *base = NULL;
	struct cdn_err err = { 0 };
	assert_int_equal(egress_policy_default(&base, &err), 0);
	const char *dom[] = { "api.openai.com", "*.example.com" };
	struct egress_rule rules[2] = { agent_rule("api.github.com"), agent_rule("x") };
	narrow_fails(base, dom, 2, rules, 1, "the rule for 'api.github.com' names no domain");
	rules[0] = agent_rule("a.example.com");
	narrow_fails(base, dom, 2, rules, 1, "names no domain");
	rules[0] = agent_rule("API.openai.com");
	rules[1] = agent_rule("api.openai.com");
	narrow_fails(base, dom, 2, rules, 2, "'api.openai.com' has two rules");
	rules[0].n_ports = EGRESS_MAX_PORTS + 1;
	narrow_fails(base, dom, 2, rules, 1, "more than 16");
	rules[0] = agent_rule("*.com");
	narrow_fails(base, dom, 2, rules, 1, "agent rule 0");
	const char *bad[] = { "a..b" };
	narrow_fails(base, bad, 1, NULL, 0, "agent domain 0");
	const char *nul[] = { NULL };
	narrow_fails(base, nul, 1, NULL, 0, "NULL");
	rules[0].name = NULL;
	narrow_fails(base, dom, 2, rules, 1, "no name");
	narrow_fails(NULL, dom, 2, NULL, 0, "missing argument");
	narrow_fails(base, NULL, 2, NULL, 0, "missing argument");
	narrow_fails(base, dom, 2, NULL, 1, "missing argument");
	assert_true(egress_policy_narrow(base, dom, 2, NULL, 0, NULL, NULL, NULL, &err) < 0);
	egress_policy_free(base);
}

/* The manifest's egress, narrowed: what a run does. */
static void test_from_manifest(void **state)
{
	(void)state;
	static const char doc[] =
		"{\"name\": \"s\", \"version\": \"1\", \"entrypoint\": [\"x\"], \"profile\": "
		"\"deployment\", \"egress\": {\"domains\": [\"api.openai.com\", "
		"\"*.wikipedia.org\", "
		"\"api.github.com\"], \"rules\": [{\"domain\": \"api.github.com\", \"methods\": "
		"[\"GET\"], \"ports\": [443], \"requests_per_minute\": 10, \"approval\": "
		"\"required\"}]}}";
	struct agent_manifest *m = NULL;
	struct cdn_err err = { 0 };
	assert_int_equal(manifest_parse(doc, strlen(doc), "agent.json", &m, &err), 0);
	struct egress_policy *base = load("version: 1\ndomains:\n"
					  "  - name: api.github.com\n"
					  "    inspect: true\n"
					  "    requests_per_minute: 100\n");
	struct drops d = { 0 };
	struct egress_policy *p =
		narrow(base, (const char *const *)m->egress_domains, m->n_egress_domains,
		       m->egress_rules, m->n_egress_rules, &d);
	assert_int_equal(d.n, 0);
	const struct egress_rule *gh = egress_policy_match(p, "api.github.com");
	assert_non_null(gh);
	assert_int_equal(gh->n_ports, 1);
	assert_int_equal(gh->ports[0], 443);
	assert_int_equal(gh->methods, EGRESS_M_GET);
	assert_int_equal(eff_rpm(gh), 10);
	assert_true(gh->approval);
	assert_true(gh->inspect);
	assert_non_null(egress_policy_match(p, "api.openai.com"));
	assert_non_null(egress_policy_match(p, "de.wikipedia.org"));
	assert_null(egress_policy_match(p, "api.anthropic.com"));
	assert_null(egress_policy_match(p, "pypi.org"));
	assert_int_equal(p->n_rules, 3);
	egress_policy_free(p);
	egress_policy_free(base);

	/* against the built-in policy, api.github.com is not allowed */
	assert_int_equal(egress_policy_default(&base, &err), 0);
	d.n = 0;
	p = narrow(base, (const char *const *)m->egress_domains, m->n_egress_domains,
		   m->egress_rules, m->n_egress_rules, &d);
	assert_int_equal(d.n, 1);
	assert_string_equal(d.names[0], "api.github.com");
	assert_null(egress_policy_match(p, "api.github.com"));
	assert_int_equal(p->n_rules, 2);
	egress_policy_free(p);
	egress_policy_free(base);
	manifest_free(m);
}

/* ----------------------------------------------------- model-based check */

/*
 * Random bases and agents over a small universe of nested names, checked
 * host by host against the definition: the result's rule for h is the
 * narrowing of the base's rule for h and the agent's entry for h (both
 * found with egress_policy_match), and nothing where either has none.
 */
static const char *const universe[] = {
	"a.com",       "*.a.com",     "b.a.com", "*.b.a.com", "c.b.a.com",
	"*.c.b.a.com", "d.c.b.a.com", "x.a.com", "*.x.a.com", "y.x.a.com",
	"e.com",       "*.e.com",     "f.e.com", "1.2.3.4",   "*.z.b.a.com",
};
static const char *const probes[] = {
	"a.com",       "b.a.com",     "c.b.a.com",   "d.c.b.a.com", "q.d.c.b.a.com",
	"q.c.b.a.com", "q.b.a.com",   "q.a.com",     "x.a.com",	    "y.x.a.com",
	"q.x.a.com",   "q.y.x.a.com", "e.com",	     "f.e.com",	    "q.e.com",
	"q.f.e.com",   "1.2.3.4",     "q.z.b.a.com", "z.b.a.com",   "other.org",
};

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint32_t rnd(uint32_t n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state % n);
}

static const uint16_t port_pool[] = { 80, 443, 8080, 8443 };

static void random_settings(struct egress_rule *r, bool agent)
{
	r->n_ports = 0;
	if (!agent || rnd(2)) {
		for (size_t i = 0; i < N(port_pool); i++)
			if (rnd(2))
				r->ports[r->n_ports++] = port_pool[i];
		if (!agent && !r->n_ports)
			r->ports[r->n_ports++] = 443;
	}
	r->methods = rnd(3) ? EGRESS_M_ALL : (rnd(EGRESS_M_ALL) + 1);
	r->rpm = rnd(2) ? 0 : rnd(5) * 10;
	r->approval = rnd(4) == 0;
	r->inspect = rnd(4) == 0;
}

static int rule_cmp(const void *a, const void *b)
{
	return strcmp(((const struct egress_rule *)a)->name, ((const struct egress_rule *)b)->name);
}

/* A policy built by hand from a random subset of the universe. */
static struct egress_policy *random_policy(bool agent)
{
	struct egress_policy *p = calloc(1, sizeof(*p));
	assert_non_null(p);
	p->enforce = true;
	p->rules = calloc(N(universe), sizeof(*p->rules));
	assert_non_null(p->rules);
	for (size_t i = 0; i < N(universe); i++) {
		if (rnd(3) == 0)
			continue;
		struct egress_rule *r = &p->rules[p->n_rules++];
		r->name = strdup(universe[i]);
		r->wildcard = universe[i][0] == '*';
		r->category = !agent && rnd(5) == 0 ? EGRESS_CAT_LLM : EGRESS_CAT_USER;
		r->group = "g";
		random_settings(r, agent);
	}
	qsort(p->rules, p->n_rules, sizeof(p->rules[0]), rule_cmp);
	return p;
}

static void test_model(void **state)
{
	(void)state;
	for (int round = 0; round < 3000; round++) {
		struct egress_policy *base = random_policy(false);
		struct egress_policy *ag = random_policy(true);
		const char *dom[N(universe)];
		struct egress_rule rules[N(universe)];
		size_t nr = 0;
		for (size_t i = 0; i < ag->n_rules; i++) {
			struct egress_rule *e = &ag->rules[i];
			dom[i] = e->name;
			if (rnd(2)) {
				rules[nr++] = *e;
				continue;
			}
			/* a domain without a rule narrows nothing */
			e->n_ports = 0;
			e->methods = EGRESS_M_ALL;
			e->rpm = 0;
			e->approval = false;
			e->inspect = false;
		}
		struct drops d = { 0 };
		struct egress_policy *p = narrow(base, dom, ag->n_rules, rules, nr, &d);
		for (size_t k = 0; k < N(probes); k++) {
			const char *h = probes[k];
			const struct egress_rule *b = egress_policy_match(base, h);
			const struct egress_rule *a = egress_policy_match(ag, h);
			const struct egress_rule *r = egress_policy_match(p, h);
			if (!a || !b) {
				if (r && r->n_ports && r->methods)
					fail_msg("round %d: %s allowed by '%s' but base '%s' agent "
						 "'%s'",
						 round, h, r->name, b ? b->name : "-",
						 a ? a->name : "-");
				continue;
			}
			unsigned methods = a->methods & b->methods;
			size_t np = 0;
			for (size_t i = 0; i < b->n_ports; i++)
				np += !a->n_ports || egress_rule_has_port(a, b->ports[i]);
			if (!methods || !np) {
				if (r && r->n_ports && r->methods)
					fail_msg("round %d: %s should allow nothing", round, h);
				continue;
			}
			if (!r)
				fail_msg("round %d: %s not allowed (base '%s', agent '%s')", round,
					 h, b->name, a->name);
			assert_int_equal(r->methods, methods);
			assert_int_equal(r->n_ports, np);
			for (size_t i = 0; i < b->n_ports; i++)
				assert_int_equal(egress_rule_has_port(r, b->ports[i]),
						 !a->n_ports ||
							 egress_rule_has_port(a, b->ports[i]));
			/* each limit counts in its own side's window, so every
			 * host under one base rule shares that rule's count */
			assert_int_equal(r->rpm, b->rpm);
			if (b->rpm)
				assert_string_equal(rate_window(r), b->name);
			assert_int_equal(r->agent_rpm, a->rpm);
			if (a->rpm) {
				char key[EGRESS_MAX_HOST + 16];
				snprintf(key, sizeof(key), "agent:%s", a->name);
				assert_string_equal(r->agent_rate_key, key);
			} else {
				assert_null(r->agent_rate_key);
			}
			assert_int_equal(r->approval, (a->approval || b->approval) &&
							      b->category != EGRESS_CAT_LLM);
			assert_int_equal(r->inspect, a->inspect || b->inspect);
			assert_int_equal(r->category, b->category);
		}
		/* an agent domain is reported exactly when no probe below it is
		 * reachable (the probes reach every result rule here) */
		for (size_t i = 0; i < ag->n_rules; i++) {
			bool reach = false;
			for (size_t q = 0; q < p->n_rules; q++) {
				const struct egress_rule *r = &p->rules[q];
				const char *x = r->name, *y = ag->rules[i].name;
				bool in = strcmp(x, y) == 0 ||
					  (y[0] == '*' && strlen(x) > strlen(y) - 1 &&
					   strcmp(x + strlen(x) - strlen(y) + 1, y + 1) == 0);
				reach |= in && r->n_ports && r->methods;
			}
			assert_int_equal(dropped(&d, ag->rules[i].name), !reach);
		}
		egress_policy_free(p);
		egress_policy_free(base);
		egress_policy_free(ag);
	}
}


/* ------------------------------------------------------ workspace level */

static int ws_load(const struct egress_policy *op, const char *yaml, struct egress_policy **out,
		   struct cdn_err *err)
{
	return egress_policy_parse_workspace(yaml, strlen(yaml), "policy.yaml", op, out, err);
}

static void ws_fails(const struct egress_policy *op, const char *yaml, const char *want)
{
	struct egress_policy *p = NULL;
	struct cdn_err err = { 0 };
	if (ws_load(op, yaml, &p, &err) == 0)
		fail_msg("expected the workspace policy to be refused (%s):\n%s", want, yaml);
	assert_null(p);
	if (!strstr(err.msg, want))
		fail_msg("error '%s' lacks '%s'", err.msg, want);
}

/* What the operator alone decides is refused in a workspace's policy, with
 * the key and its line; so is any limit above the operator's. */
static void test_workspace_refusals(void **state)
{
	(void)state;
	struct egress_policy *op = load(BASE_HEAD "  - name: api.example.com\n"
						  "    requests_per_minute: 30\n"
						  "  - name: \"*.free.example\"\n"
						  "    requests_per_minute: 0\n");
	ws_fails(op, "version: 1\nenforce: false\n", "policy.yaml:2: enforce: not allowed");
	ws_fails(op, "version: 1\nenforce: true\n", "policy.yaml:2: enforce: not allowed");
	ws_fails(op, "version: 1\nprivate: [127.0.0.1:80]\n", "policy.yaml:2: private: not allowed");
	ws_fails(op, "version: 1\nprivate: []\n", "policy.yaml:2: private: not allowed");
	ws_fails(op, "version: 1\napprovals: {timeout_seconds: 5}\n",
		 "policy.yaml:2: approvals: not allowed");
	ws_fails(op, "version: 1\nlimits:\n  requests_per_minute: 61\n",
		 "policy.yaml:3: limits.requests_per_minute: 61 is above the operator's limit of 60");
	ws_fails(op, "version: 1\nlimits:\n  requests_per_minute: 0\n",
		 "0 (unlimited) is above the operator's limit of 60");
	ws_fails(op, "version: 1\nlimits: {global_requests_per_minute: 601}\n",
		 "limits.global_requests_per_minute: 601 is above the operator's limit of 600");
	ws_fails(op, "version: 1\ndomains:\n  - name: api.example.com\n    requests_per_minute: 31\n",
		 "policy.yaml:4: domains[0].requests_per_minute: 31 is above the operator's limit of "
		 "30 for 'api.example.com'");
	egress_policy_free(op);
}

/* What a workspace may write: lower limits, its own rules (narrowed later),
 * names the operator does not allow (dropped later); limits it leaves out
 * are the operator's, not the defaults. */
static void test_workspace_accepts(void **state)
{
	(void)state;
	struct egress_policy *op = load("version: 1\nlimits: {requests_per_minute: 100, "
					"global_requests_per_minute: 0}\ndomains:\n"
					"  - name: \"*.free.example\"\n    requests_per_minute: 0\n");
	struct egress_policy *ws = NULL;
	struct cdn_err err = { 0 };
	assert_int_equal(ws_load(op, "version: 1\ndomains:\n  - name: a.free.example\n"
				     "    requests_per_minute: 0\n  - name: not.allowed.example\n"
				     "    requests_per_minute: 5000\n",
				 &ws, &err),
			 0);
	assert_int_equal(ws->default_rpm, 100);
	assert_int_equal(ws->global_rpm, 0);
	assert_true(ws->enforce);
	assert_int_equal(ws->n_private, 0);
	egress_policy_free(ws);
	assert_int_equal(ws_load(op, "version: 1\nlimits: {requests_per_minute: 7, "
				     "global_requests_per_minute: 70}\n",
				 &ws, &err),
			 0);
	assert_int_equal(ws->default_rpm, 7);
	assert_int_equal(ws->global_rpm, 70);
	egress_policy_free(ws);
	/* a workspace policy needs the operator's */
	assert_int_equal(egress_policy_parse_workspace("version: 1\n", 11, "p", NULL, &ws, &err),
			 -EINVAL);
	egress_policy_free(op);
}

/* The host-name label controls: a workspace may only tighten them, and
 * what it leaves out is the operator's. */
static void test_workspace_labels(void **state)
{
	(void)state;
	struct egress_policy *op = load("version: 1\ndomains:\n"
					"  - name: \"*.bucket.example\"\n    max_label_length: 63\n"
					"    random_labels: true\n"
					"  - name: \"*.strict.example\"\n    max_label_length: 20\n");
	ws_fails(op, "version: 1\ndomains:\n  - name: \"*.strict.example\"\n"
		     "    max_label_length: 30\n",
		 "policy.yaml:4: domains[0].max_label_length: 30 is above the operator's limit of "
		 "20");
	ws_fails(op, "version: 1\ndomains:\n  - name: \"*.strict.example\"\n"
		     "    random_labels: true\n",
		 "policy.yaml:4: domains[0].random_labels: the operator refuses random-looking");
	struct egress_policy *ws = NULL, *eff = NULL;
	struct cdn_err err = { 0 };
	/* Left out: the operator's (63 and random allowed), not the defaults. */
	assert_int_equal(ws_load(op, "version: 1\ndomains:\n  - name: \"*.bucket.example\"\n"
				     "  - name: \"*.strict.example\"\n    max_label_length: 8\n",
				 &ws, &err),
			 0);
	assert_int_equal(egress_policy_narrow_by(op, ws, &eff, NULL, NULL, &err), 0);
	const struct egress_rule *b = egress_policy_match(eff, "x.bucket.example");
	const struct egress_rule *st = egress_policy_match(eff, "x.strict.example");
	assert_non_null(b);
	assert_non_null(st);
	assert_int_equal(b->max_label, 63);
	assert_true(b->random_labels);
	assert_int_equal(st->max_label, 8);
	assert_false(st->random_labels);
	egress_policy_free(eff);
	egress_policy_free(ws);
	/* Set lower: kept. */
	assert_int_equal(ws_load(op, "version: 1\ndomains:\n  - name: \"*.bucket.example\"\n"
				     "    max_label_length: 12\n    random_labels: false\n",
				 &ws, &err),
			 0);
	assert_int_equal(egress_policy_narrow_by(op, ws, &eff, NULL, NULL, &err), 0);
	b = egress_policy_match(eff, "x.bucket.example");
	assert_int_equal(b->max_label, 12);
	assert_false(b->random_labels);
	egress_policy_free(eff);
	egress_policy_free(ws);
	egress_policy_free(op);
}

/* Three levels: operator, workspace, agent. Each narrows; the workspace's
 * limit and the agent's are both kept (the lower where only one window is
 * left), the operator's window always; settings are the operator's, the
 * global limit the stricter. */
static void test_three_levels(void **state)
{
	(void)state;
	struct egress_policy *op = load(BASE_HEAD "  - name: \"*.example.com\"\n"
						  "    ports: [443, 8443]\n"
						  "    requests_per_minute: 50\n"
						  "  - name: open.example.org\n"
						  "private:\n  - 10.0.0.5:8080\n");
	struct egress_policy *ws = NULL;
	struct cdn_err err = { 0 };
	assert_int_equal(ws_load(op, "version: 1\ncategories: {search: false, research: false}\n"
				     "limits: {global_requests_per_minute: 100}\n"
				     "domains:\n  - name: \"*.api.example.com\"\n"
				     "    ports: [443]\n    requests_per_minute: 20\n"
				     "  - name: gone.example.net\n",
				 &ws, &err),
			 0);
	struct drops d = { 0 };
	struct egress_policy *eff = NULL;
	assert_int_equal(egress_policy_narrow_by(op, ws, &eff, on_drop, &d, &err), 0);
	check_valid(eff);
	assert_true(dropped(&d, "gone.example.net"));
	assert_false(dropped(&d, "*.api.example.com"));
	assert_true(eff->enforce);
	assert_int_equal(eff->global_rpm, 100);
	assert_int_equal(eff->n_private, 1);
	/* open.example.org: the workspace does not list it, so it is gone */
	assert_null(egress_policy_match(eff, "open.example.org"));
	assert_null(egress_policy_match(eff, "www.example.com"));
	const struct egress_rule *r = egress_policy_match(eff, "x.api.example.com");
	assert_non_null(r);
	assert_int_equal(r->n_ports, 1);
	assert_int_equal(r->ports[0], 443);
	assert_int_equal(r->rpm, 50);
	assert_string_equal(rate_window(r), "*.example.com");
	assert_int_equal(r->agent_rpm, 20);
	assert_string_equal(r->agent_rate_key, "workspace:*.api.example.com");
	/* provenance: the rules each level's cover gives */
	assert_string_equal(egress_policy_cover(op, r->name)->name, "*.example.com");
	assert_string_equal(egress_policy_cover(ws, r->name)->name, "*.api.example.com");

	/* The agent narrows again: its limit is higher than the workspace's,
	 * so the workspace's window stays; a lower one takes its place. */
	const char *doms[] = { "a.api.example.com", "b.api.example.com" };
	struct egress_rule rules[2] = { agent_rule(doms[0]), agent_rule(doms[1]) };
	rules[0].rpm = 40;
	rules[1].rpm = 5;
	struct egress_policy *fin = narrow(eff, doms, 2, rules, 2, NULL);
	const struct egress_rule *a = egress_policy_match(fin, "a.api.example.com");
	const struct egress_rule *b = egress_policy_match(fin, "b.api.example.com");
	assert_non_null(a);
	assert_non_null(b);
	assert_string_equal(rate_window(a), "*.example.com");
	assert_string_equal(a->agent_rate_key, "workspace:*.api.example.com");
	assert_int_equal(a->agent_rpm, 20);
	assert_string_equal(b->agent_rate_key, "agent:b.api.example.com");
	assert_int_equal(b->agent_rpm, 5);
	assert_int_equal(eff_rpm(b), 5);
	assert_int_equal(fin->global_rpm, 100);
	egress_policy_free(fin);
	egress_policy_free(eff);
	egress_policy_free(ws);
	egress_policy_free(op);
}

/* The built-in policy is its YAML, parsed: what GET /v1/policy shows. */
static void test_builtin_yaml(void **state)
{
	(void)state;
	struct egress_policy *a = NULL, *b = load(egress_policy_builtin_yaml());
	struct cdn_err err = { 0 };
	assert_int_equal(egress_policy_default(&a, &err), 0);
	assert_int_equal(a->n_rules, b->n_rules);
	for (size_t i = 0; i < a->n_rules; i++) {
		assert_string_equal(a->rules[i].name, b->rules[i].name);
		assert_int_equal(a->rules[i].methods, b->rules[i].methods);
		assert_int_equal(a->rules[i].rpm, EGRESS_DEFAULT_RPM);
	}
	assert_int_equal(a->global_rpm, EGRESS_DEFAULT_GLOBAL_RPM);
	assert_int_equal(a->approval_timeout_s, EGRESS_DEFAULT_APPROVAL_TIMEOUT_S);
	egress_policy_free(a);
	egress_policy_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exact_under_base_wildcard),
		cmocka_unit_test(test_wildcard_over_base_exact),
		cmocka_unit_test(test_two_wildcards),
		cmocka_unit_test(test_unrelated),
		cmocka_unit_test(test_several_base_rules),
		cmocka_unit_test(test_base_precedence),
		cmocka_unit_test(test_agent_precedence),
		cmocka_unit_test(test_ip_and_idn),
		cmocka_unit_test(test_intersections),
		cmocka_unit_test(test_categories),
		cmocka_unit_test(test_empty_intersection),
		cmocka_unit_test(test_settings_and_base_unchanged),
		cmocka_unit_test(test_duplicates_and_drops),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_from_manifest),
		cmocka_unit_test(test_model),
		cmocka_unit_test(test_workspace_refusals),
		cmocka_unit_test(test_workspace_accepts),
		cmocka_unit_test(test_workspace_labels),
		cmocka_unit_test(test_three_levels),
		cmocka_unit_test(test_builtin_yaml),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
