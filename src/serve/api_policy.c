/* SPDX-License-Identifier: Apache-2.0 */
/*
 * /v1/policy: the egress policy's levels as a run of this workspace gets
 * them, and the workspace's own level (owners), which only narrows.
 */
#define _GNU_SOURCE
#include "serve/internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/file.h"
#include "egress/policy.h"
#include "run/policy_levels.h"

static json_t *yaml_text(const char *path)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	_cleanup_free_ char *buf = NULL;
	size_t n = 0;
	if (fd < 0 || cdn_read_fd(fd, EGRESS_MAX_POLICY_BYTES, &buf, &n) < 0)
		return json_null();
	json_t *y = json_stringn(buf, n);
	return y ? y : json_null();
}

/* Where a rule of the effective policy came from, at one level: the rule
 * of that level's policy that covers it. */
static json_t *rule_origin(const struct egress_policy *p, const char *name, const char *file)
{
	const struct egress_rule *r = p ? egress_policy_cover(p, name) : NULL;
	if (!r)
		return json_null();
	json_t *j = json_pack("{s:s, s:s, s:s}", "rule", r->name, "group", r->group ? r->group : "",
			      "category", egress_category_name(r->category));
	/* Line 0 is a built-in rule; the others name their line. */
	if (r->line > 0)
		json_object_set_new(j, "at", json_sprintf("%s:%d", file, r->line));
	else
		json_object_set_new(j, "at", json_string("built-in"));
	return j;
}

static json_t *effective_json(const struct run_policy_levels *lv)
{
	const struct egress_policy *e = lv->effective;
	json_t *rules = json_array();
	for (size_t i = 0; i < e->n_rules; i++) {
		const struct egress_rule *r = &e->rules[i];
		json_t *ports = json_array(), *methods = json_array();
		for (size_t k = 0; k < r->n_ports; k++)
			json_array_append_new(ports, json_integer(r->ports[k]));
		for (unsigned bit = 1; bit & EGRESS_M_ALL; bit <<= 1)
			if (r->methods & bit)
				json_array_append_new(methods, json_string(egress_method_name(bit)));
		json_t *j = json_pack("{s:s, s:o, s:o, s:I, s:b, s:b, s:s}", "name", r->name,
				      "ports", ports, "methods", methods, "requests_per_minute",
				      (json_int_t)r->rpm, "approval", r->approval, "inspect",
				      r->inspect, "category", egress_category_name(r->category));
		if (r->agent_rate_key)
			json_object_set_new(j, "workspace_requests_per_minute",
					    json_integer((json_int_t)r->agent_rpm));
		json_object_set_new(
			j, "from",
			json_pack("{s:o, s:o}", "operator",
				  rule_origin(lv->operator_policy, r->name,
					      lv->operator_builtin ? "built-in" : "policy.yaml"),
				  "workspace", rule_origin(lv->workspace, r->name, "workspace")));
		json_array_append_new(rules, j);
	}
	json_t *priv = json_array();
	for (size_t i = 0; i < e->n_private; i++) {
		const struct egress_private *pv = &e->private_ok[i];
		char ip[INET6_ADDRSTRLEN] = "?";
		const void *a = pv->addr.ss_family == AF_INET
					? (const void *)&((const struct sockaddr_in *)&pv->addr)->sin_addr
					: (const void *)&((const struct sockaddr_in6 *)&pv->addr)->sin6_addr;
		inet_ntop(pv->addr.ss_family, a, ip, sizeof(ip));
		json_array_append_new(priv, pv->addr.ss_family == AF_INET
						    ? json_sprintf("%s:%u", ip, pv->port)
						    : json_sprintf("[%s]:%u", ip, pv->port));
	}
	return json_pack("{s:b, s:{s:I, s:I}, s:{s:I}, s:o, s:o}", "enforce", e->enforce, "limits",
			 "requests_per_minute", (json_int_t)e->default_rpm,
			 "global_requests_per_minute", (json_int_t)e->global_rpm, "approvals",
			 "timeout_seconds", (json_int_t)e->approval_timeout_s, "private", priv,
			 "rules", rules);
}

static void collect_dropped(void *ctx, const char *domain)
{
	json_array_append_new(ctx, json_string(domain));
}

/* The operator's level as runs get it: the server's own --allow-private
 * exceptions are the operator's too. */
static int operator_level(struct server *sv, struct run_policy_levels *lv, struct cdn_err *err)
{
	return run_policy_levels_operator(sv->s, NULL, sv->cfg.allow_private,
					  sv->cfg.n_allow_private, lv, err);
}

/*
 * GET /v1/policy: the three levels a run of this workspace gets (the
 * operator's, the workspace's, and the effective one, each rule with where
 * it came from), read exactly as a run reads them.
 */
enum MHD_Result h_policy_get(struct call *c)
{
	struct cdn_err err = {0};
	struct run_policy_levels lv;
	if (operator_level(c->sv, &lv, &err) < 0)
		return api_fail(c->conn, 500, "internal", "the operator's policy does not load: %s",
				err.msg);
	json_t *op =
	    json_pack("{s:s, s:o}", "source", lv.operator_builtin ? "built-in" : "file", "yaml",
		      lv.operator_builtin ? json_string(egress_policy_builtin_yaml())
					  : yaml_text(lv.operator_path));
	json_t *dropped = json_array();
	int r = run_policy_levels_workspace(c->sv->s, c->key.workspace, &lv, collect_dropped,
					    dropped, &err);
	json_t *ws = json_null();
	if (lv.workspace_path[0] && access(lv.workspace_path, F_OK) == 0) {
		ws = json_pack("{s:o, s:o}", "yaml", yaml_text(lv.workspace_path), "dropped",
			       json_incref(dropped));
		/* A file written before the levels were enforced may not load
		 * any more: runs then fail, and this says why. */
		if (r < 0)
			json_object_set_new(ws, "error", json_string(err.msg));
	}
	json_decref(dropped);
	json_t *eff = r < 0 ? json_null() : effective_json(&lv);
	run_policy_levels_clear(&lv);
	return api_reply(
	    c->conn, 200,
	    json_pack("{s:o, s:o, s:o}", "operator", op, "workspace", ws, "effective", eff));
}

/* PUT /v1/policy: the workspace's own policy, which can only narrow the
 * operator's; checked exactly as a run will load it. */
enum MHD_Result h_policy_put(struct call *c)
{
	struct cdn_err err = {0};
	struct run_policy_levels lv;
	if (operator_level(c->sv, &lv, &err) < 0)
		return api_fail(c->conn, 500, "internal", "the operator's policy does not load: %s",
				err.msg);
	struct egress_policy *ws = NULL, *eff = NULL;
	json_t *dropped = json_array();
	int r = egress_policy_parse_workspace(c->req->body ? c->req->body : "", c->req->len,
					      "policy.yaml", lv.operator_policy, &ws, &err);
	if (r == 0)
		r = egress_policy_narrow_by(lv.operator_policy, ws, &eff, collect_dropped, dropped,
					    &err);
	egress_policy_free(eff);
	egress_policy_free(ws);
	run_policy_levels_clear(&lv);
	if (r < 0) {
		json_decref(dropped);
		return api_fail(c->conn, r == -ENOMEM ? 500 : 400,
				r == -ENOMEM ? "internal" : "bad_request", "%s", err.msg);
	}
	if ((r = store_policy_put(c->sv->s, c->key.workspace, c->req->body, c->req->len, &err)) <
	    0) {
		json_decref(dropped);
		return api_fail_err(c->conn, r, &err);
	}
	return api_reply(c->conn, 200, json_pack("{s:b, s:o}", "updated", 1, "dropped", dropped));
}
