/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The egress policy: the YAML schema (docs/policy.md), the built-in seed
 * categories, host name normalisation and matching. This file holds the
 * policy object, --allow and the private exceptions; the rest is in
 * policy_builtin.c (the categories, and building the rules), policy_hosts.c
 * (names and matching), policy_yaml.c (YAML to a tree) and policy_schema.c
 * (the tree against the schema, and the entry points that parse and load).
 *
 * Parsing runs in two steps. libyaml's event stream is turned into a small
 * tree, refusing anchors, aliases, tags and second documents as the events
 * arrive. The tree is then walked against the schema, so every error can
 * name the key, its path ("domains[2].ports[0]") and its line. Nothing is
 * coerced: YAML 1.1's "yes", "0x1f" and "010" are errors, not booleans and
 * numbers, because a policy that silently means something else than it
 * reads is a hole.
 *
 * Rules are kept sorted by name. A lookup is one binary search for the
 * exact name, then one per label for "*." wildcards, longest suffix first.
 */
#include "egress/policy.h"
#include "egress/policy_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/cleanup.h"
#include "base/file.h"
#include "base/text.h"

/* --allow and --allow-private arguments; far above any valid one. */
#define ARG_MAX_LEN 512
#define SHOWN_MAX 64

/* ------------------------------------------------------- private exceptions */

static int parse_port(const char *s, size_t n, uint16_t *out)
{
	if (n == 0 || n > 5 || (s[0] == '0'))
		return -EINVAL;
	unsigned v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v < 1 || v > 65535)
		return -EINVAL;
	*out = (uint16_t)v;
	return 0;
}

int policy_parse_ip_port(const char *s, struct egress_private *out, struct cdn_err *err)
{
	static const char usage[] = "(expected IPv4:PORT or [IPv6]:PORT, e.g. 10.0.0.5:8080)";
	size_t n = strnlen(s, ARG_MAX_LEN + 1);
	if (n == 0 || n > ARG_MAX_LEN)
		return cdn_err_msg(err, EINVAL, "private destination: bad length %s", usage);
	memset(out, 0, sizeof(*out));
	char show[SHOWN_MAX + 4];
	const char *as = cdn_printable_str(show, sizeof(show), s, CDN_TEXT_ELLIPSIS);
	char ip[INET6_ADDRSTRLEN + 1];
	const char *port;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':')
			return cdn_err_msg(err, EINVAL, "'%s': missing ']:PORT' %s", as, usage);
		size_t il = (size_t)(close - s - 1);
		if (il == 0 || il >= sizeof(ip))
			return cdn_err_msg(err, EINVAL, "'%s': not an IPv6 address %s", as, usage);
		memcpy(ip, s + 1, il);
		ip[il] = '\0';
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&out->addr;
		if (strchr(ip, '%'))
			return cdn_err_msg(err, EINVAL, "'%s': zone indexes are not supported", as);
		if (inet_pton(AF_INET6, ip, &a6->sin6_addr) != 1)
			return cdn_err_msg(err, EINVAL, "'%s': not an IPv6 address %s", as, usage);
		/* The exception is matched against exact resolved addresses;
		 * a mapped form would silently never match an A record. */
		if (IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr))
			return cdn_err_msg(err, EINVAL,
					   "'%s': an IPv4-mapped address; write the IPv4 address "
					   "instead",
					   s);
		a6->sin6_family = AF_INET6;
		port = close + 2;
	} else {
		const char *colon = strrchr(s, ':');
		if (!colon)
			return cdn_err_msg(err, EINVAL, "'%s': missing ':PORT' %s", as, usage);
		size_t il = (size_t)(colon - s);
		if (memchr(s, ':', il))
			return cdn_err_msg(err, EINVAL,
					   "'%s': write an IPv6 address as [ADDR]:PORT", as);
		if (il == 0 || il >= sizeof(ip))
			return cdn_err_msg(err, EINVAL, "'%s': not an IPv4 address %s", as, usage);
		memcpy(ip, s, il);
		ip[il] = '\0';
		/* Canonical dotted quads only: "10.1" or "012.0.0.1" mean
		 * different addresses to different parsers. */
		if (!policy_ipv4_canonical(ip))
			return cdn_err_msg(err, EINVAL, "'%s': not a canonical IPv4 address %s", as,
					   usage);
		struct sockaddr_in *a4 = (struct sockaddr_in *)&out->addr;
		inet_pton(AF_INET, ip, &a4->sin_addr);
		a4->sin_family = AF_INET;
		port = colon + 1;
	}
	if (parse_port(port, strlen(port), &out->port) < 0)
		return cdn_err_msg(err, EINVAL, "'%s': the port must be a number from 1 to 65535",
				   as);
	return 0;
}

static bool private_equal(const struct egress_private *e, const struct sockaddr *addr,
			  uint16_t port)
{
	if (e->port != port || e->addr.ss_family != addr->sa_family)
		return false;
	if (addr->sa_family == AF_INET)
		return memcmp(&((const struct sockaddr_in *)&e->addr)->sin_addr,
			      &((const struct sockaddr_in *)addr)->sin_addr,
			      sizeof(struct in_addr)) == 0;
	if (addr->sa_family == AF_INET6)
		return memcmp(&((const struct sockaddr_in6 *)&e->addr)->sin6_addr,
			      &((const struct sockaddr_in6 *)addr)->sin6_addr,
			      sizeof(struct in6_addr)) == 0;
	return false;
}

bool egress_policy_private_ok(const struct egress_policy *p, const struct sockaddr *addr,
			      uint16_t port)
{
	for (size_t i = 0; p && addr && i < p->n_private; i++)
		if (private_equal(&p->private_ok[i], addr, port))
			return true;
	return false;
}

/* Adds e unless it is there already: 1 when added, 0 when a duplicate. */
int policy_private_add(struct egress_policy *p, const struct egress_private *e,
		       struct cdn_err *err)
{
	if (egress_policy_private_ok(p, (const struct sockaddr *)&e->addr, e->port))
		return 0;
	if (p->n_private >= EGRESS_MAX_PRIVATE)
		return cdn_err_msg(err, EINVAL, "more than %d private destinations",
				   EGRESS_MAX_PRIVATE);
	p->private_ok[p->n_private++] = *e;
	return 1;
}

int egress_policy_allow_private(struct egress_policy *p, const char *ip_port,
				struct cdn_err *err)
{
	struct egress_private e;
	int r = policy_parse_ip_port(ip_port ? ip_port : "", &e, err);
	if (r < 0)
		return cdn_err_wrap(err, "--allow-private");
	r = policy_private_add(p, &e, err);
	char show[SHOWN_MAX + 4];
	return r < 0
		   ? cdn_err_wrap(err, "--allow-private %s",
				  cdn_printable_str(show, sizeof(show), ip_port, CDN_TEXT_ELLIPSIS))
		   : 0;
}

/* ------------------------------------------------------------ policy object */

void egress_policy_free(struct egress_policy *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n_rules; i++) {
		free(p->rules[i].name);
		free(p->rules[i].rate_key);
		free(p->rules[i].agent_rate_key);
	}
	free(p->rules);
	free(p);
}

struct egress_policy *policy_new(void)
{
	struct egress_policy *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->enforce = true;
	p->default_rpm = EGRESS_DEFAULT_RPM;
	p->global_rpm = EGRESS_DEFAULT_GLOBAL_RPM;
	p->approval_timeout_s = EGRESS_DEFAULT_APPROVAL_TIMEOUT_S;
	return p;
}

int egress_policy_allow(struct egress_policy *p, const char *host_port, struct cdn_err *err)
{
	char show[SHOWN_MAX + 4];
	const char *arg =
	    cdn_printable_str(show, sizeof(show), host_port ? host_port : "", CDN_TEXT_ELLIPSIS);
	const char *raw = host_port ? host_port : "";
	size_t n = strnlen(raw, ARG_MAX_LEN + 1);
	if (n == 0 || n > ARG_MAX_LEN)
		return cdn_err_msg(err, EINVAL, "--allow: expected HOST or HOST:PORT");
	if (raw[0] == '[' || (strchr(raw, ':') && strchr(raw, ':') != strrchr(raw, ':')))
		return cdn_err_msg(err, EINVAL,
				   "--allow %s: expected HOST or HOST:PORT; IPv6 literals cannot "
				   "be allowed by name",
				   arg);
	char host[ARG_MAX_LEN + 1];
	memcpy(host, raw, n + 1);
	uint16_t port = 0;
	char *colon = strchr(host, ':');
	if (colon) {
		*colon = '\0';
		if (parse_port(colon + 1, strlen(colon + 1), &port) < 0)
			return cdn_err_msg(err, EINVAL,
					   "--allow %s: the port must be a number from 1 to 65535",
					   arg);
	}
	char name[EGRESS_MAX_HOST + 1];
	bool wild = false;
	if (egress_rule_name_normalize(host, name, sizeof(name), &wild, err) < 0)
		return cdn_err_wrap(err, "--allow %s", arg);

	struct egress_rule *r = policy_find_rule(p, name);
	if (r) {
		/* --allow only ever adds access: the existing rule (kept with
		 * its category, so an LLM API stays one) gains the port, every
		 * method and no approval hold. */
		if (port && !egress_rule_has_port(r, port)) {
			if (r->n_ports >= EGRESS_MAX_PORTS)
				return cdn_err_msg(err, EINVAL,
						   "--allow %s: %s already has %d ports", arg, name,
						   EGRESS_MAX_PORTS);
			r->ports[r->n_ports++] = port;
		} else if (!port) {
			for (size_t i = 0; i < CDN_ARRAY_SIZE(policy_ports_web); i++)
				if (!egress_rule_has_port(r, policy_ports_web[i])) {
					if (r->n_ports >= EGRESS_MAX_PORTS)
						return cdn_err_msg(err, EINVAL,
								   "--allow %s: %s already has %d "
								   "ports",
								   arg, name, EGRESS_MAX_PORTS);
					r->ports[r->n_ports++] = policy_ports_web[i];
				}
		}
		r->methods = EGRESS_M_ALL;
		r->approval = false;
		return 0;
	}
	if (p->n_rules >= EGRESS_MAX_RULES)
		return cdn_err_msg(err, EINVAL, "--allow %s: more than %d rules", arg,
				   EGRESS_MAX_RULES);
	char *dup = strdup(name);
	struct egress_rule *grown = dup ? realloc(p->rules, (p->n_rules + 1) * sizeof(*grown))
					: NULL;
	if (!grown) {
		free(dup);
		return cdn_err_set(err, ENOMEM, "--allow %s", arg);
	}
	p->rules = grown;
	r = &p->rules[p->n_rules++];
	memset(r, 0, sizeof(*r));
	r->name = dup;
	r->wildcard = wild;
	r->category = EGRESS_CAT_USER;
	r->group = "allow";
	r->max_label = EGRESS_DEFAULT_MAX_LABEL;
	if (port)
		egress_rule_set_ports(r, &port, 1);
	else
		egress_rule_set_ports(r, policy_ports_web, CDN_ARRAY_SIZE(policy_ports_web));
	r->methods = EGRESS_M_ALL;
	r->rpm = p->default_rpm;
	qsort(p->rules, p->n_rules, sizeof(p->rules[0]), policy_rule_sort_cmp);
	return 0;
}
