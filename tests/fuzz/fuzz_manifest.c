/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for agent.json.
 *
 * manifest_parse on the input. A refusal must leave *out alone and carry a
 * printable message that names the document. A manifest that parses must
 * hold its invariants: argv vectors NULL-terminated with their counts,
 * every bound of manifest.h respected, egress names already normal and
 * rules naming listed domains. Its egress is then narrowed against the
 * built-in policy and against an operator policy with nested wildcards,
 * and the result must be a valid policy that allows nothing the base does
 * not: for hosts derived from every name involved, the result's rule is
 * within the base's (ports, methods, rate, approval).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "registry/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x))                                                                          \
			abort();                                                                   \
	} while (0)

static const char operator_policy[] = "version: 1\n"
				      "limits: {requests_per_minute: 20}\n"
				      "domains:\n"
				      "  - name: '*.example.com'\n"
				      "    ports: [80, 8080]\n"
				      "    methods: [GET, POST]\n"
				      "  - name: '*.api.example.com'\n"
				      "    ports: [443]\n"
				      "    methods: [GET]\n"
				      "    inspect: true\n"
				      "  - name: a.example.com\n"
				      "    approval: required\n"
				      "    inspect: true\n"
				      "    requests_per_minute: 0\n"
				      "  - name: api.github.com\n"
				      "    ports: [443, 8443]\n"
				      "  - name: '*.github.com'\n"
				      "  - name: 10.0.0.5\n"
				      "    ports: [8080]\n"
				      "private: [10.0.0.5:8080]\n";

static struct egress_policy *bases[2];

static void check_message(const struct cdn_err *err)
{
	CHECK(err->msg[0]);
	for (const char *c = err->msg; *c; c++)
		CHECK((unsigned char)*c >= 0x20 && (unsigned char)*c < 0x7f);
}

static void check_argv(char **v, size_t n, bool required)
{
	if (!v) {
		CHECK(!required && n == 0);
		return;
	}
	CHECK(n >= 1 && n <= MANIFEST_MAX_ARGS);
	for (size_t i = 0; i < n; i++)
		CHECK(v[i] && v[i][0] && strlen(v[i]) <= MANIFEST_MAX_ARG);
	CHECK(v[n] == NULL);
}

static void check_list(char **v, size_t n, size_t max_len)
{
	if (!v) {
		CHECK(n == 0);
		return;
	}
	CHECK(n <= MANIFEST_MAX_LIST && v[n] == NULL);
	for (size_t i = 0; i < n; i++) {
		CHECK(v[i] && v[i][0] && strlen(v[i]) <= max_len);
		for (size_t j = 0; j < i; j++)
			CHECK(strcmp(v[i], v[j]) != 0);
	}
}

static void check_manifest(const struct agent_manifest *m)
{
	size_t nl = strnlen(m->name, sizeof(m->name));
	CHECK(nl >= 1 && nl <= MANIFEST_MAX_NAME);
	nl = strnlen(m->version, sizeof(m->version));
	CHECK(nl >= 1 && nl <= MANIFEST_MAX_VERSION);
	CHECK(!m->description || strlen(m->description) <= MANIFEST_MAX_DESCRIPTION);
	check_argv(m->entrypoint, m->n_entrypoint, true);
	check_argv(m->setup, m->n_setup, false);
	CHECK(m->mem_bytes == 0 ||
	      (m->mem_bytes >= MANIFEST_MIN_MEM && m->mem_bytes <= MANIFEST_MAX_MEM));
	CHECK(m->pids <= MANIFEST_MAX_PIDS);
	CHECK(m->cpu_millicores == 0 || (m->cpu_millicores >= MANIFEST_MIN_CPU_MILLICORES &&
					 m->cpu_millicores <= MANIFEST_MAX_CPU_MILLICORES));
	CHECK(m->timeout_s >= 1 && m->timeout_s <= MANIFEST_MAX_TIMEOUT_S);
	CHECK(strcmp(m->profile, "offline") == 0 || strcmp(m->profile, "deployment") == 0);
	CHECK(!m->has_egress || strcmp(m->profile, "deployment") == 0);
	CHECK(m->has_egress || (!m->egress_domains && !m->egress_rules));
	if (m->has_egress) {
		CHECK(m->egress_domains && m->egress_domains[m->n_egress_domains] == NULL);
		check_list(m->egress_domains, m->n_egress_domains, EGRESS_MAX_HOST);
	}
	for (size_t i = 0; i < m->n_egress_domains; i++) {
		char out[EGRESS_MAX_HOST + 1];
		bool wild;
		struct cdn_err err = { 0 };
		CHECK(egress_rule_name_normalize(m->egress_domains[i], out, sizeof(out), &wild,
						 &err) == 0);
		CHECK(strcmp(out, m->egress_domains[i]) == 0);
	}
	CHECK(m->n_egress_rules <= MANIFEST_MAX_LIST);
	for (size_t i = 0; i < m->n_egress_rules; i++) {
		const struct egress_rule *r = &m->egress_rules[i];
		bool listed = false;
		for (size_t j = 0; j < m->n_egress_domains; j++)
			listed |= strcmp(r->name, m->egress_domains[j]) == 0;
		CHECK(listed);
		CHECK(r->wildcard == (r->name[0] == '*'));
		CHECK(r->n_ports <= EGRESS_MAX_PORTS && r->methods &&
		      !(r->methods & ~EGRESS_M_ALL));
		CHECK(r->rpm <= EGRESS_MAX_RPM);
		for (size_t k = 0; k < r->n_ports; k++)
			CHECK(r->ports[k] != 0);
		for (size_t j = 0; j < i; j++)
			CHECK(strcmp(r->name, m->egress_rules[j].name) != 0);
	}
	check_list(m->required_secrets, m->n_required_secrets, MANIFEST_MAX_SECRET_NAME);
	check_list(m->capabilities, m->n_capabilities, MANIFEST_MAX_NAME);
	CHECK(strnlen(m->env, sizeof(m->env)) <= MANIFEST_MAX_NAME);
	const struct agent_outputs *o = &m->outputs;
	CHECK(o->max_files <= MANIFEST_MAX_OUTPUT_FILES);
	CHECK(o->max_file_bytes <= MANIFEST_MAX_OUTPUT_BYTES);
	CHECK(o->max_total_bytes <= MANIFEST_MAX_OUTPUT_BYTES);
	CHECK(!o->max_file_bytes || !o->max_total_bytes || o->max_file_bytes <= o->max_total_bytes);
	check_list(o->extensions, o->n_extensions, MANIFEST_MAX_EXTENSION);
	CHECK(!o->extensions || o->n_extensions >= 1);
	CHECK(manifest_wants_network(m) == (strcmp(m->profile, "deployment") == 0));
}

/* r allows nothing that b does not. */
static void check_within(const struct egress_rule *r, const struct egress_rule *b)
{
	for (size_t k = 0; k < r->n_ports; k++)
		CHECK(egress_rule_has_port(b, r->ports[k]));
	CHECK((r->methods & ~b->methods) == 0);
	/* the operator's limit, counted in the operator rule's own window */
	CHECK(r->rpm == b->rpm);
	CHECK(!b->rpm || strcmp(r->rate_key ? r->rate_key : r->name, b->name) == 0);
	CHECK(!r->agent_rate_key == !r->agent_rpm);
	CHECK(!r->agent_rate_key || strncmp(r->agent_rate_key, "agent:", 6) == 0);
	CHECK(!b->approval || r->approval);
	CHECK(!b->inspect || r->inspect);
	CHECK(r->category == b->category);
	CHECK(r->category != EGRESS_CAT_LLM || !r->approval);
}

/* A host the name stands for: itself, or one label below a wildcard. */
static void probe(const struct egress_policy *p, const struct egress_policy *base, const char *name)
{
	char host[EGRESS_MAX_HOST + 8];
	if (name[0] == '*') {
		if (strlen(name) + 1 > EGRESS_MAX_HOST)
			return;
		host[0] = 'q';
		strcpy(host + 1, name + 1);
	} else {
		strcpy(host, name);
	}
	const struct egress_rule *r = egress_policy_match(p, host);
	if (!r || !r->n_ports || !r->methods)
		return;
	const struct egress_rule *b = egress_policy_match(base, host);
	CHECK(b);
	check_within(r, b);
}

static void dropped(void *ctx, const char *domain)
{
	CHECK(domain && domain[0]);
	(*(size_t *)ctx)++;
}

static void narrow_against(const struct agent_manifest *m, const struct egress_policy *base)
{
	struct egress_policy *p = NULL;
	struct cdn_err err = { 0 };
	size_t drops = 0;
	int r = egress_policy_narrow(base, (const char *const *)m->egress_domains,
				     m->n_egress_domains, m->egress_rules, m->n_egress_rules, &p,
				     dropped, &drops, &err);
	/* a manifest that parsed always narrows */
	CHECK(r == 0 && p);
	CHECK(drops <= m->n_egress_domains);
	CHECK(p->enforce == base->enforce && p->global_rpm == base->global_rpm &&
	      p->default_rpm == base->default_rpm && p->n_private == base->n_private);
	CHECK(p->n_rules <= base->n_rules + m->n_egress_domains);
	for (size_t i = 0; i < p->n_rules; i++) {
		const struct egress_rule *x = &p->rules[i];
		if (i)
			CHECK(strcmp(p->rules[i - 1].name, x->name) < 0);
		CHECK(x->wildcard == (x->name[0] == '*'));
		if (!x->wildcard)
			CHECK(egress_policy_match(p, x->name) == x);
		probe(p, base, x->name);
	}
	for (size_t i = 0; i < m->n_egress_domains; i++)
		probe(p, base, m->egress_domains[i]);
	for (size_t i = 0; i < base->n_rules; i++)
		probe(p, base, base->rules[i].name);
	egress_policy_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cdn_err err = { 0 };
	if (!bases[0]) {
		CHECK(egress_policy_default(&bases[0], &err) == 0);
		CHECK(egress_policy_parse(operator_policy, sizeof(operator_policy) - 1, "op.yaml",
					  &bases[1], &err) == 0);
	}
	struct agent_manifest *sentinel = (struct agent_manifest *)(uintptr_t)0x1;
	struct agent_manifest *m = sentinel;
	if (manifest_parse((const char *)data, size, "agent.json", &m, &err) < 0) {
		CHECK(m == sentinel);
		check_message(&err);
		CHECK(strncmp(err.msg, "agent.json", 10) == 0);
		return 0;
	}
	CHECK(m && m != sentinel);
	check_manifest(m);
	for (size_t i = 0; i < 2; i++)
		narrow_against(m, bases[i]);
	manifest_free(m);
	return 0;
}
