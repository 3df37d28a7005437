/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the egress policy.
 *
 * egress_policy_parse on the input. A policy that loads must hold its
 * invariants: rules sorted by name and unique, every name already in
 * normal form, ports and methods in range, and matching a name below a
 * rule finds a rule. A refusal must carry a message without control bytes.
 * The input is also read as a workspace's policy against the built-in
 * operator policy: what loads there must narrow it (egress_policy_narrow_by)
 * into a valid policy that the operator's allows everything of, with the
 * operator's settings. The input's first line is also fed, as a string, to
 * the host name normalisers, --allow and --allow-private.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "egress/policy.h"

#define ARG_MAX 600

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_message(const struct cdn_err *err)
{
	if (!err->msg[0])
		abort();
	for (const char *c = err->msg; *c; c++)
		if ((unsigned char)*c < 0x20)
			abort();
}

static void check_policy(const struct egress_policy *p)
{
	static const char *const hosts[] = {
		"api.openai.com", "en.wikipedia.org", "wikipedia.org", "a.b.example.com",
		"example.com",	  "127.0.0.1",	      "xn--bcher-kva.example", "localhost",
	};
	for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
		const struct egress_rule *r = egress_policy_match(p, hosts[i]);
		if (r)
			(void)egress_rule_has_port(r, 443);
	}
	for (size_t i = 0; i < p->n_rules; i++) {
		const struct egress_rule *r = &p->rules[i];
		if (i && strcmp(p->rules[i - 1].name, r->name) >= 0)
			abort();
		char out[EGRESS_MAX_HOST + 1];
		bool wild = false;
		struct cdn_err err = { 0 };
		if (egress_rule_name_normalize(r->name, out, sizeof(out), &wild, &err) < 0 ||
		    strcmp(out, r->name) != 0 || wild != r->wildcard)
			abort();
		if (r->n_ports == 0 || r->n_ports > EGRESS_MAX_PORTS || r->methods == 0 ||
		    (r->methods & ~(unsigned)EGRESS_M_ALL) || r->rpm > EGRESS_MAX_RPM)
			abort();
		for (size_t k = 0; k < r->n_ports; k++)
			if (r->ports[k] == 0)
				abort();
		/* a name below the rule matches some rule, never none */
		char below[EGRESS_MAX_HOST + 8];
		const char *base = r->wildcard ? r->name + 2 : r->name;
		if (strlen(base) + 2 <= EGRESS_MAX_HOST) {
			memcpy(below, "a.", 2);
			strcpy(below + 2, base);
			const struct egress_rule *m = egress_policy_match(p, below);
			if (r->wildcard && !m)
				abort();
		}
		if (!r->wildcard && egress_policy_match(p, r->name) != r)
			abort();
	}
	if (p->approval_timeout_s < 1 || p->approval_timeout_s > EGRESS_MAX_APPROVAL_TIMEOUT_S ||
	    p->n_private > EGRESS_MAX_PRIVATE)
		abort();
}

static void strings(const uint8_t *data, size_t size)
{
	char s[ARG_MAX + 1];
	size_t n = 0;
	while (n < size && n < ARG_MAX && data[n] != '\n' && data[n] != '\0') {
		s[n] = (char)data[n];
		n++;
	}
	s[n] = '\0';
	char out[EGRESS_MAX_HOST + 1];
	struct cdn_err err = { 0 };
	if (egress_host_normalize(s, out, sizeof(out), &err) == 0) {
		/* idempotent, and never a wildcard */
		char again[EGRESS_MAX_HOST + 1];
		if (egress_host_normalize(out, again, sizeof(again), &err) < 0 ||
		    strcmp(out, again) != 0 || strchr(out, '*'))
			abort();
	} else {
		check_message(&err);
	}
	bool wild;
	(void)egress_rule_name_normalize(s, out, sizeof(out), &wild, &err);

	struct egress_policy *p = NULL;
	if (egress_policy_default(&p, &err) < 0)
		abort();
	size_t before = p->n_rules;
	if (egress_policy_allow(p, s, &err) < 0) {
		check_message(&err);
		if (p->n_rules != before)
			abort();
	}
	if (egress_policy_allow_private(p, s, &err) < 0)
		check_message(&err);
	check_policy(p);
	egress_policy_free(p);
}

static void workspace(const uint8_t *data, size_t size)
{
	struct egress_policy *op = NULL, *ws = NULL, *eff = NULL;
	struct cdn_err err = { 0 };
	if (egress_policy_default(&op, &err) < 0)
		abort();
	if (egress_policy_parse_workspace((const char *)data, size, "fuzz.yaml", op, &ws, &err) < 0) {
		if (ws)
			abort();
		check_message(&err);
		egress_policy_free(op);
		return;
	}
	check_policy(ws);
	if (egress_policy_narrow_by(op, ws, &eff, NULL, NULL, &err) < 0)
		abort(); /* two loaded policies always narrow */
	/* (a narrowed rule may allow nothing, where it shadows a wider one,
	 * so check_policy's "every rule allows something" does not apply) */
	for (size_t i = 1; i < eff->n_rules; i++)
		if (strcmp(eff->rules[i - 1].name, eff->rules[i].name) >= 0)
			abort();
	/* narrowing never widens: settings are the operator's, and every
	 * rule's ports and methods are allowed by the operator's rule */
	if (!eff->enforce || eff->n_private != op->n_private ||
	    eff->approval_timeout_s != op->approval_timeout_s ||
	    (op->global_rpm && (!eff->global_rpm || eff->global_rpm > op->global_rpm)))
		abort();
	for (size_t i = 0; i < eff->n_rules; i++) {
		const struct egress_rule *r = &eff->rules[i];
		const struct egress_rule *o = egress_policy_cover(op, r->name);
		if (!o || (r->methods & ~o->methods))
			abort();
		for (size_t k = 0; k < r->n_ports; k++)
			if (!egress_rule_has_port(o, r->ports[k]))
				abort();
	}
	egress_policy_free(eff);
	egress_policy_free(ws);
	egress_policy_free(op);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct egress_policy *p = NULL;
	struct cdn_err err = { 0 };
	workspace(data, size);
	if (egress_policy_parse((const char *)data, size, "fuzz.yaml", &p, &err) == 0) {
		check_policy(p);
		egress_policy_free(p);
	} else {
		if (p)
			abort();
		check_message(&err);
	}
	strings(data, size);
	return 0;
}
