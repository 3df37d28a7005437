/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A compiled policy as JSON, and back: how the privileged supervisor hands
 * the policy it resolved (operator, workspace, agent, --allow) to the
 * network part that enforces it (src/run/netpart.c). Every field of the
 * structure is carried, so the network part enforces exactly what the
 * supervisor decided, without re-reading files it may not open.
 *
 * The reader is strict all the same: every rule name must be normalised,
 * the rules sorted by name with no duplicates (egress_policy_match
 * bisects them), every number in its documented range, every key known.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "base/cleanup.h"
#include "egress/policy.h"
#include "egress/policy_internal.h"

static json_t *methods_json(unsigned bits)
{
	static const char *const names[] = { "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE",
					     "OPTIONS" };
	json_t *a = json_array();
	for (size_t i = 0; a && i < CDN_ARRAY_SIZE(names); i++)
		if (bits & egress_method_bit(names[i]))
			json_array_append_new(a, json_string(names[i]));
	return a;
}

static json_t *rule_json(const struct egress_rule *r)
{
	json_t *ports = json_array();
	for (size_t i = 0; ports && i < r->n_ports; i++)
		json_array_append_new(ports, json_integer(r->ports[i]));
	json_t *j = json_pack("{s:s, s:s, s:s?, s:o, s:o, s:I, s:b, s:b, s:i}", "name", r->name,
			      "category", egress_category_name(r->category), "group", r->group,
			      "ports", ports ? ports : json_null(), "methods",
			      methods_json(r->methods), "rpm", (json_int_t)r->rpm, "approval",
			      r->approval, "inspect", r->inspect, "line", r->line);
	if (j) {
		json_object_set_new(j, "max_label", json_integer(r->max_label));
		json_object_set_new(j, "random_labels", json_boolean(r->random_labels));
	}
	if (j && r->rate_key)
		json_object_set_new(j, "rate_key", json_string(r->rate_key));
	if (j && r->agent_rate_key)
		json_object_set_new(j, "agent_rate_key", json_string(r->agent_rate_key));
	if (j && r->agent_rate_key)
		json_object_set_new(j, "agent_rpm", json_integer(r->agent_rpm));
	return j;
}

json_t *egress_policy_to_json(const struct egress_policy *p)
{
	json_t *rules = json_array(), *priv = json_array();
	for (size_t i = 0; rules && i < p->n_rules; i++) {
		json_t *r = rule_json(&p->rules[i]);
		if (!r || json_array_append_new(rules, r) < 0) {
			json_decref(rules);
			rules = NULL;
		}
	}
	for (size_t i = 0; priv && i < p->n_private; i++) {
		const struct sockaddr_storage *a = &p->private_ok[i].addr;
		char ip[INET6_ADDRSTRLEN];
		const void *raw = a->ss_family == AF_INET
					  ? (const void *)&((const struct sockaddr_in *)a)->sin_addr
					  : (const void *)&((const struct sockaddr_in6 *)a)->sin6_addr;
		if (!inet_ntop(a->ss_family, raw, ip, sizeof(ip)))
			continue;
		json_array_append_new(priv, json_pack("{s:s, s:i}", "ip", ip, "port",
						      p->private_ok[i].port));
	}
	if (!rules || !priv) {
		json_decref(rules);
		json_decref(priv);
		return NULL;
	}
	return json_pack("{s:b, s:I, s:I, s:I, s:o, s:o}", "enforce", p->enforce, "default_rpm",
			 (json_int_t)p->default_rpm, "global_rpm", (json_int_t)p->global_rpm,
			 "approval_timeout_s", (json_int_t)p->approval_timeout_s, "rules", rules,
			 "private", priv);
}

/* ------------------------------------------------------------------ reading */

static bool only_keys(const json_t *o, const char *const *keys, size_t n, const char **bad)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)o, k, v)
	{
		bool known = false;
		for (size_t i = 0; i < n && !known; i++)
			known = strcmp(k, keys[i]) == 0;
		if (!known) {
			*bad = k;
			return false;
		}
	}
	return true;
}

static int get_uint(const json_t *o, const char *key, uint64_t max, uint64_t *out,
		    struct cdn_err *err)
{
	json_t *v = json_object_get(o, key);
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (uint64_t)json_integer_value(v) > max)
		return cdn_err_msg(err, EINVAL, "policy wire: %s must be an integer from 0 to %llu",
				   key, (unsigned long long)max);
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

static int get_bool(const json_t *o, const char *key, bool *out, struct cdn_err *err)
{
	json_t *v = json_object_get(o, key);
	if (!json_is_boolean(v))
		return cdn_err_msg(err, EINVAL, "policy wire: %s must be a boolean", key);
	*out = json_is_true(v);
	return 0;
}

static int category_of(const char *s, enum egress_category *out)
{
	static const enum egress_category all[] = { EGRESS_CAT_USER, EGRESS_CAT_LLM,
						    EGRESS_CAT_SEARCH, EGRESS_CAT_RESEARCH,
						    EGRESS_CAT_SERVICE };
	for (size_t i = 0; s && i < CDN_ARRAY_SIZE(all); i++)
		if (strcmp(s, egress_category_name(all[i])) == 0) {
			*out = all[i];
			return 0;
		}
	return -1;
}

/* A rate key is a rule name, or "agent:" and one. */
static int get_key(const json_t *o, const char *key, char **out, struct cdn_err *err)
{
	json_t *v = json_object_get(o, key);
	if (!v)
		return 0;
	const char *s = json_string_value(v);
	if (!s || !*s || strlen(s) > EGRESS_MAX_HOST + 16 || strchr(s, '\n'))
		return cdn_err_msg(err, EINVAL, "policy wire: bad %s", key);
	*out = strdup(s);
	return *out ? 0 : cdn_err_set(err, ENOMEM, "policy wire");
}

static int rule_from_json(const json_t *j, struct egress_rule *r, struct cdn_err *err)
{
	static const char *const keys[] = { "name",	   "category",	     "group",
					    "ports",	   "methods",	     "rpm",
					    "approval",	   "inspect",	     "line",
					    "rate_key",	   "agent_rate_key", "agent_rpm",
					    "max_label", "random_labels" };
	const char *bad = NULL;
	if (!json_is_object(j))
		return cdn_err_msg(err, EINVAL, "policy wire: a rule is not an object");
	if (!only_keys(j, keys, CDN_ARRAY_SIZE(keys), &bad))
		return cdn_err_msg(err, EINVAL, "policy wire: unknown rule key %.40s", bad);
	const char *name = json_string_value(json_object_get(j, "name"));
	char norm[EGRESS_MAX_HOST + 1];
	struct cdn_err e2 = { 0 };
	if (!name || egress_rule_name_normalize(name, norm, sizeof(norm), &r->wildcard, &e2) < 0 ||
	    strcmp(norm, name) != 0)
		return cdn_err_msg(err, EINVAL, "policy wire: a rule name is not normalised");
	if (!(r->name = strdup(name)))
		return cdn_err_set(err, ENOMEM, "policy wire");
	if (category_of(json_string_value(json_object_get(j, "category")), &r->category) < 0)
		return cdn_err_msg(err, EINVAL, "policy wire: rule %s: unknown category", name);
	json_t *g = json_object_get(j, "group");
	if (g && !(r->group = egress_policy_group_intern(json_string_value(g))))
		return cdn_err_msg(err, EINVAL, "policy wire: rule %s: unknown group", name);
	json_t *ports = json_object_get(j, "ports");
	if (!json_is_array(ports) || json_array_size(ports) > EGRESS_MAX_PORTS)
		return cdn_err_msg(err, EINVAL, "policy wire: rule %s: bad ports", name);
	size_t i;
	json_t *v;
	json_array_foreach(ports, i, v)
	{
		if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 65535)
			return cdn_err_msg(err, EINVAL, "policy wire: rule %s: bad port", name);
		r->ports[r->n_ports++] = (uint16_t)json_integer_value(v);
	}
	json_t *ms = json_object_get(j, "methods");
	if (!json_is_array(ms))
		return cdn_err_msg(err, EINVAL, "policy wire: rule %s: bad methods", name);
	json_array_foreach(ms, i, v)
	{
		unsigned bit = egress_method_bit(json_string_value(v));
		if (!bit)
			return cdn_err_msg(err, EINVAL, "policy wire: rule %s: bad method", name);
		r->methods |= bit;
	}
	uint64_t n;
	int rc;
	if ((rc = get_uint(j, "rpm", EGRESS_MAX_RPM, &n, err)) < 0)
		return rc;
	r->rpm = (uint32_t)n;
	if ((rc = get_bool(j, "approval", &r->approval, err)) < 0 ||
	    (rc = get_bool(j, "inspect", &r->inspect, err)) < 0 ||
	    (rc = get_uint(j, "line", INT32_MAX, &n, err)) < 0)
		return rc;
	r->line = (int)n;
	if ((rc = get_uint(j, "max_label", 63, &n, err)) < 0 ||
	    (rc = get_bool(j, "random_labels", &r->random_labels, err)) < 0)
		return rc;
	r->max_label = (uint8_t)n;
	if ((rc = get_key(j, "rate_key", &r->rate_key, err)) < 0 ||
	    (rc = get_key(j, "agent_rate_key", &r->agent_rate_key, err)) < 0)
		return rc;
	if (r->agent_rate_key) {
		if ((rc = get_uint(j, "agent_rpm", EGRESS_MAX_RPM, &n, err)) < 0)
			return rc;
		r->agent_rpm = (uint32_t)n;
	} else if (json_object_get(j, "agent_rpm")) {
		return cdn_err_msg(err, EINVAL, "policy wire: rule %s: agent_rpm without a key",
				   name);
	}
	return 0;
}

static int private_from_json(const json_t *j, struct egress_private *e, struct cdn_err *err)
{
	const char *ip = json_string_value(json_object_get(j, "ip"));
	json_t *port = json_object_get(j, "port");
	memset(e, 0, sizeof(*e));
	if (!ip || !json_is_integer(port) || json_integer_value(port) < 1 ||
	    json_integer_value(port) > 65535 || json_object_size(j) != 2)
		return cdn_err_msg(err, EINVAL, "policy wire: bad private entry");
	e->port = (uint16_t)json_integer_value(port);
	struct sockaddr_in *v4 = (struct sockaddr_in *)&e->addr;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&e->addr;
	if (inet_pton(AF_INET, ip, &v4->sin_addr) == 1)
		v4->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, ip, &v6->sin6_addr) == 1)
		v6->sin6_family = AF_INET6;
	else
		return cdn_err_msg(err, EINVAL, "policy wire: bad private address");
	return 0;
}

int egress_policy_from_json(const json_t *j, struct egress_policy **out, struct cdn_err *err)
{
	static const char *const keys[] = { "enforce", "default_rpm", "global_rpm",
					    "approval_timeout_s", "rules", "private" };
	*out = NULL;
	const char *bad = NULL;
	if (!json_is_object(j))
		return cdn_err_msg(err, EINVAL, "policy wire: not an object");
	if (!only_keys(j, keys, CDN_ARRAY_SIZE(keys), &bad))
		return cdn_err_msg(err, EINVAL, "policy wire: unknown key %.40s", bad);
	struct egress_policy *p = calloc(1, sizeof(*p));
	if (!p)
		return cdn_err_set(err, ENOMEM, "policy wire");
	uint64_t n;
	int r = get_bool(j, "enforce", &p->enforce, err);
	if (r == 0 && (r = get_uint(j, "default_rpm", EGRESS_MAX_RPM, &n, err)) == 0)
		p->default_rpm = (uint32_t)n;
	if (r == 0 && (r = get_uint(j, "global_rpm", EGRESS_MAX_RPM, &n, err)) == 0)
		p->global_rpm = (uint32_t)n;
	if (r == 0 &&
	    (r = get_uint(j, "approval_timeout_s", EGRESS_MAX_APPROVAL_TIMEOUT_S, &n, err)) == 0)
		p->approval_timeout_s = (uint32_t)n;
	json_t *rules = json_object_get(j, "rules"), *priv = json_object_get(j, "private");
	if (r == 0 && (!json_is_array(rules) || json_array_size(rules) > EGRESS_MAX_RULES ||
		       !json_is_array(priv) || json_array_size(priv) > EGRESS_MAX_PRIVATE))
		r = cdn_err_msg(err, EINVAL, "policy wire: bad rules or private list");
	if (r == 0 && json_array_size(rules) &&
	    !(p->rules = calloc(json_array_size(rules), sizeof(*p->rules))))
		r = cdn_err_set(err, ENOMEM, "policy wire");
	for (size_t i = 0; r == 0 && i < json_array_size(rules); i++) {
		p->n_rules++;
		r = rule_from_json(json_array_get(rules, i), &p->rules[i], err);
		/* Sorted and unique, as every policy that was built is. */
		if (r == 0 && i > 0 && strcmp(p->rules[i - 1].name, p->rules[i].name) >= 0)
			r = cdn_err_msg(err, EINVAL, "policy wire: rules out of order");
	}
	for (size_t i = 0; r == 0 && i < json_array_size(priv); i++) {
		r = private_from_json(json_array_get(priv, i), &p->private_ok[i], err);
		if (r == 0)
			p->n_private++;
	}
	if (r < 0) {
		egress_policy_free(p);
		return r;
	}
	*out = p;
	return 0;
}
