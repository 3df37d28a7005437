/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The `registries` category: the egress policy of a dependency build
 * sandbox (docs/deps.md), and of nothing else. The usual package
 * registries, plus the ones the operator named (a mirror, or a local
 * stand-in in tests), each with GET and HEAD only: a build downloads
 * packages and never publishes one, and a registry's write methods are how
 * a build's install script could carry data out. A run's policy never
 * holds these rules: the category exists only here, so no policy file,
 * workspace or manifest can turn it on for a run.
 */
#include "egress/policy.h"
#include "egress/policy_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cleanup.h"

/* The public registries' download hosts, on HTTPS. */
static const char *const registry_hosts[] = {
	"files.pythonhosted.org",
	"pypi.org",
	"registry.npmjs.org",
};

struct reg_rule {
	char name[EGRESS_MAX_HOST + 1];
	uint16_t ports[EGRESS_MAX_PORTS];
	size_t n_ports;
	bool tls;
};

static int add_rule(struct reg_rule *v, size_t *n, size_t cap, const char *host, uint16_t port,
		    bool tls, struct cdn_err *err)
{
	char norm[EGRESS_MAX_HOST + 1];
	bool wildcard = false;
	int r = egress_rule_name_normalize(host, norm, sizeof(norm), &wildcard, err);
	if (r < 0)
		return r;
	if (wildcard)
		return cdn_err_msg(err, EINVAL, "registry %s: a registry is one host, not a wildcard",
				   host);
	struct reg_rule *x = NULL;
	for (size_t i = 0; i < *n && !x; i++)
		if (strcmp(v[i].name, norm) == 0)
			x = &v[i];
	if (!x) {
		if (*n >= cap)
			return cdn_err_msg(err, E2BIG, "too many registries (at most %zu)", cap);
		x = &v[(*n)++];
		memset(x, 0, sizeof(*x));
		snprintf(x->name, sizeof(x->name), "%s", norm);
	}
	for (size_t i = 0; i < x->n_ports; i++)
		if (x->ports[i] == port)
			return 0;
	if (x->n_ports >= EGRESS_MAX_PORTS)
		return cdn_err_msg(err, E2BIG, "registry %s: too many ports", norm);
	x->ports[x->n_ports++] = port;
	x->tls |= tls;
	return 0;
}

int egress_policy_registries(const struct egress_registry *extra, size_t n_extra,
			     const char *const *private_ok, size_t n_private,
			     struct egress_policy **out, struct cdn_err *err)
{
	struct reg_rule rules[CDN_ARRAY_SIZE(registry_hosts) + EGRESS_MAX_REGISTRIES];
	size_t n = 0;
	int r = 0;
	if (n_extra > EGRESS_MAX_REGISTRIES)
		return cdn_err_msg(err, E2BIG, "too many registries (at most %d)",
				   EGRESS_MAX_REGISTRIES);
	for (size_t i = 0; r == 0 && i < CDN_ARRAY_SIZE(registry_hosts); i++)
		r = add_rule(rules, &n, CDN_ARRAY_SIZE(rules), registry_hosts[i], 443, true, err);
	for (size_t i = 0; r == 0 && i < n_extra; i++)
		r = add_rule(rules, &n, CDN_ARRAY_SIZE(rules), extra[i].host, extra[i].port,
			     extra[i].tls, err);
	if (r < 0)
		return r;

	/* Written as a policy file and read by the one reader, so the rules
	 * are checked as any policy's are. The names were normalised above:
	 * nothing in them can break out of the YAML. Rate limits are off: a
	 * lockfile of a thousand packages is a thousand GETs in a minute. */
	size_t cap = 256 + n * (EGRESS_MAX_HOST + 160);
	_cleanup_free_ char *yaml = malloc(cap);
	if (!yaml)
		return cdn_err_set(err, ENOMEM, "registries policy");
	size_t len = (size_t)snprintf(yaml, cap,
				      "version: 1\n"
				      "limits: {requests_per_minute: 0, global_requests_per_minute: 0}\n"
				      "categories: {search: false, research: false}\n"
				      "domains:\n");
	for (size_t i = 0; i < n && len < cap; i++) {
		len += (size_t)snprintf(yaml + len, cap - len, "  - {name: \"%s\", ports: [",
					rules[i].name);
		for (size_t k = 0; k < rules[i].n_ports && len < cap; k++)
			len += (size_t)snprintf(yaml + len, cap - len, "%s%u", k ? ", " : "",
						(unsigned)rules[i].ports[k]);
		if (len < cap)
			len += (size_t)snprintf(yaml + len, cap - len,
						"], methods: [GET, HEAD], inspect: %s}\n",
						rules[i].tls ? "true" : "false");
	}
	if (len >= cap)
		return cdn_err_set(err, E2BIG, "registries policy");
	struct egress_policy *p = NULL;
	if ((r = egress_policy_parse(yaml, len, "registries policy", &p, err)) < 0)
		return r;
	/* LLM APIs are always on in a policy file; a build reaches none. */
	size_t k = 0;
	for (size_t i = 0; i < p->n_rules; i++) {
		if (p->rules[i].category == EGRESS_CAT_LLM) {
			free(p->rules[i].name);
			free(p->rules[i].rate_key);
			free(p->rules[i].agent_rate_key);
			continue;
		}
		p->rules[i].group = egress_policy_group_intern("registries");
		p->rules[k++] = p->rules[i]; /* still sorted by name */
	}
	p->n_rules = k;
	for (size_t i = 0; r == 0 && i < n_private; i++)
		r = egress_policy_allow_private(p, private_ok[i], err);
	if (r < 0) {
		egress_policy_free(p);
		return r;
	}
	*out = p;
	return 0;
}
