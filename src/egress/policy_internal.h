/* SPDX-License-Identifier: Apache-2.0 */
/* Private to src/egress/: what policy.c and its parts share with each other
 * and with policy_wire.c. */
#ifndef CORDON_EGRESS_POLICY_INTERNAL_H
#define CORDON_EGRESS_POLICY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "base/err.h"
#include "base/yaml.h"
#include "egress/policy.h"

/* The static string a rule's `group` points to for this name (a category,
 * "allow", "agent", "user", or a service group's key); NULL if unknown. */
const char *egress_policy_group_intern(const char *name);

/* ---- policy.c, policy_builtin.c, policy_hosts.c, policy_yaml.c and
 * policy_schema.c: the one policy, split by what each part does. */

/* policy_builtin.c: the built-in categories, and the rules built from
 * them and a file's domains. */
#define POLICY_N_SERVICES 9
struct policy_service {
	const char *key;
	const char *host;
};
extern const struct policy_service *const policy_services; /* POLICY_N_SERVICES of them */
extern const uint16_t policy_ports_web[2];
/* Inline: every part sets a rule's ports, and none should link another for
 * two lines. */
static inline void egress_rule_set_ports(struct egress_rule *r, const uint16_t *ports, size_t n)
{
	memcpy(r->ports, ports, n * sizeof(ports[0]));
	r->n_ports = n;
}

/* What the file asked for, before it is merged with the built-ins. */
struct user_rule {
	struct egress_rule r;
	bool rpm_set;
	int rpm_line;
	int approval_line;
	int max_label_line, random_labels_line; /* 0: not set */
	size_t index;				/* in the domains list, for errors */
};

struct settings {
	bool search;
	bool research;
	bool service_on[POLICY_N_SERVICES];
	struct user_rule *dom;
	size_t n_dom;
};

typedef int (*report_fn)(void *ctx, int line, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void policy_settings_free(struct settings *s);
int policy_build_rules(struct egress_policy *p, struct settings *s, report_fn report, void *ctx,
		       struct cdn_err *err);

/* policy_hosts.c: host names, and matching them against the rules. */
bool policy_ipv4_canonical(const char *s);
int policy_rule_sort_cmp(const void *a, const void *b);
struct egress_rule *policy_find_rule(const struct egress_policy *p, const char *name);

/* policy.c: the policy object and its private exceptions. */
struct egress_policy *policy_new(void);
int policy_parse_ip_port(const char *s, struct egress_private *out, struct cdn_err *err);
int policy_private_add(struct egress_policy *p, const struct egress_private *e,
		       struct cdn_err *err);

/* policy_yaml.c: the YAML text as a tree (base/yaml.h), and errors that
 * name a line. */
struct pctx {
	struct cdn_yctx y;
	/* Set when the file is a workspace's policy: the operator's, which it
	 * may only narrow (egress_policy_parse_workspace). */
	const struct egress_policy *op;
};

int policy_perr(void *ctx, int line, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int policy_tree_load(struct pctx *c, const char *yaml, size_t len, struct cdn_ynode *root);

#endif
