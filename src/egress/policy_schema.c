/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The egress policy's schema (docs/policy.md): the YAML tree is walked
 * against it, so every error can name the key, its path
 * ("domains[2].ports[0]") and its line. Nothing is coerced: YAML 1.1's
 * "yes", "0x1f" and "010" are errors, not booleans and numbers, because a
 * policy that silently means something else than it reads is a hole. The
 * entry points that parse and load a policy are here too.
 */
#include "egress/policy.h"
#include "egress/policy_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/file.h"
#include "base/text.h"

static int parse_ports(struct pctx *c, const struct cdn_ynode *v, const char *path, int kline,
		       struct egress_rule *r)
{
	int rc = cdn_yget_list(&c->y, v, path, kline, "port numbers");
	if (rc < 0)
		return rc;
	if (v->n == 0)
		return policy_perr(c, kline, path, "the list is empty; give at least one port");
	if (v->n > EGRESS_MAX_PORTS)
		return policy_perr(c, kline, path, "%zu ports, more than %d", v->n,
				   EGRESS_MAX_PORTS);
	r->n_ports = 0;
	for (size_t i = 0; i < v->n; i++) {
		char ip[CDN_YAML_PATH_MAX];
		cdn_yaml_path_index(ip, sizeof(ip), path, i);
		uint32_t port;
		rc = cdn_yget_uint(&c->y, &v->kids[i], ip, v->kids[i].line, 1, 65535, &port);
		if (rc < 0)
			return rc;
		if (egress_rule_has_port(r, (uint16_t)port))
			return policy_perr(c, v->kids[i].line, ip, "port %u is listed twice", port);
		r->ports[r->n_ports++] = (uint16_t)port;
	}
	return 0;
}

static int parse_methods(struct pctx *c, const struct cdn_ynode *v, const char *path, int kline,
			 struct egress_rule *r)
{
	int rc = cdn_yget_list(&c->y, v, path, kline, "HTTP methods");
	if (rc < 0)
		return rc;
	if (v->n == 0)
		return policy_perr(c, kline, path,
			    "the list is empty; give at least one method, or leave 'methods' out "
			    "for all");
	r->methods = 0;
	for (size_t i = 0; i < v->n; i++) {
		char ip[CDN_YAML_PATH_MAX];
		cdn_yaml_path_index(ip, sizeof(ip), path, i);
		const char *s;
		rc = cdn_yget_string(&c->y, &v->kids[i], ip, v->kids[i].line, &s);
		if (rc < 0)
			return rc;
		char up[16];
		size_t n = strlen(s);
		unsigned bit = 0;
		if (n < sizeof(up)) {
			for (size_t j = 0; j <= n; j++)
				up[j] = (char)(s[j] >= 'a' && s[j] <= 'z' ? s[j] - 32 : s[j]);
			bit = egress_method_bit(up);
		}
		char d[80];
		if (!bit)
			return policy_perr(
			    c, v->kids[i].line, ip,
			    "unknown method %s (expected GET, HEAD, POST, PUT, PATCH, "
			    "DELETE, OPTIONS)",
			    cdn_ynode_describe(&v->kids[i], d, sizeof(d)));
		if (r->methods & bit)
			return policy_perr(c, v->kids[i].line, ip, "method %s is listed twice", up);
		r->methods |= bit;
	}
	return 0;
}

static const char *const domain_keys[] = {
	"name",	   "ports",   "methods",	  "requests_per_minute",
	"approval", "inspect", "max_label_length", "random_labels",
};
enum { D_NAME, D_PORTS, D_METHODS, D_RPM, D_APPROVAL, D_INSPECT, D_MAX_LABEL, D_RANDOM_LABELS };

static int parse_domain(struct pctx *c, const struct cdn_ynode *y, size_t index,
			struct user_rule *u)
{
	char path[CDN_YAML_PATH_MAX];
	cdn_yaml_path_index(path, sizeof(path), "domains", index);
	memset(u, 0, sizeof(*u));
	struct egress_rule *r = &u->r;
	u->index = index;
	r->category = EGRESS_CAT_USER;
	r->group = "user";
	r->line = y->line;
	r->methods = EGRESS_M_ALL;
	r->max_label = EGRESS_DEFAULT_MAX_LABEL;
	egress_rule_set_ports(r, policy_ports_web, CDN_ARRAY_SIZE(policy_ports_web));

	struct cdn_ymap_iter it;
	int rc = cdn_ymap_begin(&c->y, y, path, y->line,
				"a mapping with 'name' (- name: api.example.com)", &it);
	size_t idx;
	const struct cdn_ynode *v;
	int kline;
	while (rc == 0 &&
	       (rc = cdn_ymap_next(&c->y, &it, path, domain_keys, CDN_ARRAY_SIZE(domain_keys), &idx,
				   &v, &kline)) == 0) {
		char kp[CDN_YAML_PATH_MAX];
		cdn_yaml_path_key(kp, sizeof(kp), path, domain_keys[idx]);
		const char *s;
		switch (idx) {
		case D_NAME: {
			rc = cdn_yget_string(&c->y, v, kp, kline, &s);
			if (rc < 0)
				break;
			char name[EGRESS_MAX_HOST + 1];
			struct cdn_err e = { 0 };
			if (egress_rule_name_normalize(s, name, sizeof(name), &r->wildcard, &e) <
			    0) {
				rc = policy_perr(c, v->line, kp, "%s", e.msg);
				break;
			}
			r->name = strdup(name);
			if (!r->name)
				rc = cdn_err_set(c->y.err, ENOMEM, "%s", c->y.src);
			/* blame the name's line for duplicates */
			r->line = v->line;
			break;
		}
		case D_PORTS:
			rc = parse_ports(c, v, kp, kline, r);
			break;
		case D_METHODS:
			rc = parse_methods(c, v, kp, kline, r);
			break;
		case D_RPM:
			rc = cdn_yget_uint(&c->y, v, kp, kline, 0, EGRESS_MAX_RPM, &r->rpm);
			u->rpm_set = true;
			u->rpm_line = cdn_yaml_value_line(v, kline);
			break;
		case D_APPROVAL:
			rc = cdn_yget_string(&c->y, v, kp, kline, &s);
			u->approval_line = kline;
			if (rc == 0 && strcmp(s, "required") == 0)
				r->approval = true;
			else if (rc == 0 && strcmp(s, "none") == 0)
				r->approval = false;
			else if (rc == 0) {
				char d[80];
				rc = policy_perr(c, v->line, kp,
						 "expected 'required' or 'none', got %s",
						 cdn_ynode_describe(v, d, sizeof(d)));
			}
			break;
		case D_INSPECT: rc = cdn_yget_bool(&c->y, v, kp, kline, &r->inspect); break;
		case D_MAX_LABEL: {
			uint32_t n = 0;
			rc = cdn_yget_uint(&c->y, v, kp, kline, 1, 63, &n);
			r->max_label = (uint8_t)n;
			u->max_label_line = cdn_yaml_value_line(v, kline);
			break;
		}
		case D_RANDOM_LABELS:
			rc = cdn_yget_bool(&c->y, v, kp, kline, &r->random_labels);
			u->random_labels_line = cdn_yaml_value_line(v, kline);
			break;
		}
	}
	if (rc < 0)
		return rc;
	if (!r->name)
		return policy_perr(c, y->line, path, "missing key 'name'");
	return 0;
}

/* A limit above the operator's: 0 is unlimited, above any other. */
static bool rpm_above(uint32_t v, uint32_t op)
{
	return op != 0 && (v == 0 || v > op);
}

/* A workspace's rule may not set a limit above the operator's rule for
 * the same hosts. Narrowing would keep the operator's limit anyway (both
 * windows apply); refusing says so where the owner can see it. A name the
 * operator does not allow at all is not an error here: it is narrowed
 * away, and the API lists it as dropped. */
static int check_domain_rpm(struct pctx *c, const struct user_rule *u)
{
	if (!c->op || !u->rpm_set || !u->r.name)
		return 0;
	const struct egress_rule *o = egress_policy_cover(c->op, u->r.name);
	if (!o || !rpm_above(u->r.rpm, o->rpm))
		return 0;
	char kp[CDN_YAML_PATH_MAX];
	snprintf(kp, sizeof(kp), "domains[%zu].requests_per_minute", u->index);
	return policy_perr(c, u->rpm_line, kp,
		    "%u%s is above the operator's limit of %u for '%s'; a workspace policy can "
		    "only lower limits",
		    u->r.rpm, u->r.rpm ? "" : " (unlimited)", o->rpm, u->r.name);
}

/* The same for the host-name label controls: a workspace may lower
 * max_label_length and turn random_labels off, not the reverse. What it
 * leaves out is the operator's, so narrowing by it changes nothing there. */
static int check_domain_labels(struct pctx *c, struct user_rule *u)
{
	if (!c->op || !u->r.name)
		return 0;
	const struct egress_rule *o = egress_policy_cover(c->op, u->r.name);
	if (!o)
		return 0; /* narrowed away, and listed as dropped */
	char kp[CDN_YAML_PATH_MAX];
	if (!u->max_label_line) {
		u->r.max_label = o->max_label;
	} else if (u->r.max_label > o->max_label) {
		snprintf(kp, sizeof(kp), "domains[%zu].max_label_length", u->index);
		return policy_perr(c, u->max_label_line, kp,
			    "%u is above the operator's limit of %u for '%s'; a workspace policy "
			    "can only lower limits",
			    (unsigned)u->r.max_label, (unsigned)o->max_label, u->r.name);
	}
	if (!u->random_labels_line) {
		u->r.random_labels = o->random_labels;
	} else if (u->r.random_labels && !o->random_labels) {
		snprintf(kp, sizeof(kp), "domains[%zu].random_labels", u->index);
		return policy_perr(c, u->random_labels_line, kp,
			    "the operator refuses random-looking labels under '%s'; a workspace "
			    "policy cannot allow them",
			    u->r.name);
	}
	return 0;
}

static int parse_domains(struct pctx *c, const struct cdn_ynode *v, int kline, struct settings *s)
{
	int rc = cdn_yget_list(&c->y, v, "domains", kline, "domain rules");
	if (rc < 0)
		return rc;
	if (v->n > EGRESS_MAX_RULES)
		return policy_perr(c, kline, "domains", "%zu rules, more than %d", v->n,
				   EGRESS_MAX_RULES);
	s->dom = calloc(v->n ? v->n : 1, sizeof(s->dom[0]));
	if (!s->dom)
		return cdn_err_set(c->y.err, ENOMEM, "%s", c->y.src);
	for (size_t i = 0; i < v->n; i++) {
		rc = parse_domain(c, &v->kids[i], i, &s->dom[s->n_dom]);
		/* counted even on failure, so its name is freed */
		s->n_dom++;
		if (rc == 0)
			rc = check_domain_rpm(c, &s->dom[s->n_dom - 1]);
		if (rc == 0)
			rc = check_domain_labels(c, &s->dom[s->n_dom - 1]);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int parse_private(struct pctx *c, const struct cdn_ynode *v, int kline,
			 struct egress_policy *p)
{
	int rc = cdn_yget_list(&c->y, v, "private", kline, "IP:PORT destinations");
	if (rc < 0)
		return rc;
	if (v->n > EGRESS_MAX_PRIVATE)
		return policy_perr(c, kline, "private", "%zu destinations, more than %d", v->n,
				   EGRESS_MAX_PRIVATE);
	for (size_t i = 0; i < v->n; i++) {
		char ip[CDN_YAML_PATH_MAX];
		cdn_yaml_path_index(ip, sizeof(ip), "private", i);
		const char *s;
		rc = cdn_yget_string(&c->y, &v->kids[i], ip, v->kids[i].line, &s);
		if (rc < 0)
			return rc;
		struct egress_private e;
		struct cdn_err pe = { 0 };
		if (policy_parse_ip_port(s, &e, &pe) < 0)
			return policy_perr(c, v->kids[i].line, ip, "%s", pe.msg);
		rc = policy_private_add(p, &e, &pe);
		if (rc == 0)
			return policy_perr(c, v->kids[i].line, ip, "'%s' is listed twice", s);
		if (rc < 0)
			return policy_perr(c, v->kids[i].line, ip, "%s", pe.msg);
	}
	return 0;
}

static const char *const limit_keys[] = { "requests_per_minute", "global_requests_per_minute" };
static const char *const approval_keys[] = { "timeout_seconds" };
static const char *const category_keys[] = { "llm", "search", "research" };

static int parse_limits(struct pctx *c, const struct cdn_ynode *v, int kline,
			struct egress_policy *p)
{
	struct cdn_ymap_iter it;
	int rc = cdn_ymap_begin(&c->y, v, "limits", kline, "a mapping", &it);
	size_t idx;
	const struct cdn_ynode *val;
	int kl;
	while (rc == 0 && (rc = cdn_ymap_next(&c->y, &it, "limits", limit_keys,
					      CDN_ARRAY_SIZE(limit_keys), &idx, &val, &kl)) == 0) {
		char kp[CDN_YAML_PATH_MAX];
		cdn_yaml_path_key(kp, sizeof(kp), "limits", limit_keys[idx]);
		uint32_t *dst = idx == 0 ? &p->default_rpm : &p->global_rpm;
		rc = cdn_yget_uint(&c->y, val, kp, kl, 0, EGRESS_MAX_RPM, dst);
		uint32_t op = !c->op ? 0 : idx == 0 ? c->op->default_rpm : c->op->global_rpm;
		if (rc == 0 && c->op && rpm_above(*dst, op))
			rc = policy_perr(
			    c, cdn_yaml_value_line(val, kl), kp,
			    "%u%s is above the operator's limit of %u; a workspace policy can "
			    "only lower limits",
			    *dst, *dst ? "" : " (unlimited)", op);
	}
	return rc < 0 ? rc : 0;
}

static int parse_approvals(struct pctx *c, const struct cdn_ynode *v, int kline,
			   struct egress_policy *p)
{
	struct cdn_ymap_iter it;
	int rc = cdn_ymap_begin(&c->y, v, "approvals", kline, "a mapping", &it);
	size_t idx;
	const struct cdn_ynode *val;
	int kl;
	while (rc == 0 && (rc = cdn_ymap_next(&c->y, &it, "approvals", approval_keys,
					      CDN_ARRAY_SIZE(approval_keys), &idx, &val, &kl)) == 0)
		rc = cdn_yget_uint(&c->y, val, "approvals.timeout_seconds", kl, 1,
				   EGRESS_MAX_APPROVAL_TIMEOUT_S, &p->approval_timeout_s);
	return rc < 0 ? rc : 0;
}

static int parse_categories(struct pctx *c, const struct cdn_ynode *v, int kline,
			    struct settings *s)
{
	struct cdn_ymap_iter it;
	int rc = cdn_ymap_begin(&c->y, v, "categories", kline, "a mapping", &it);
	size_t idx;
	const struct cdn_ynode *val;
	int kl;
	while (rc == 0 &&
	       (rc = cdn_ymap_next(&c->y, &it, "categories", category_keys,
				   CDN_ARRAY_SIZE(category_keys), &idx, &val, &kl)) == 0) {
		char kp[CDN_YAML_PATH_MAX];
		cdn_yaml_path_key(kp, sizeof(kp), "categories", category_keys[idx]);
		bool on = false;
		rc = cdn_yget_bool(&c->y, val, kp, kl, &on);
		if (rc < 0)
			break;
		if (idx == 0 && !on)
			rc = policy_perr(c, val->line, kp,
				  "LLM APIs are always allowed and cannot be turned off (remove "
				  "the key or set it to true)");
		else if (idx == 1)
			s->search = on;
		else if (idx == 2)
			s->research = on;
	}
	return rc < 0 ? rc : 0;
}

static int parse_services(struct pctx *c, const struct cdn_ynode *v, int kline, struct settings *s)
{
	const char *names[POLICY_N_SERVICES];
	for (size_t i = 0; i < POLICY_N_SERVICES; i++)
		names[i] = policy_services[i].key;
	struct cdn_ymap_iter it;
	int rc = cdn_ymap_begin(&c->y, v, "services", kline, "a mapping", &it);
	size_t idx;
	const struct cdn_ynode *val;
	int kl;
	while (rc == 0 && (rc = cdn_ymap_next(&c->y, &it, "services", names, POLICY_N_SERVICES,
					      &idx, &val, &kl)) == 0) {
		char kp[CDN_YAML_PATH_MAX];
		cdn_yaml_path_key(kp, sizeof(kp), "services", names[idx]);
		rc = cdn_yget_bool(&c->y, val, kp, kl, &s->service_on[idx]);
	}
	return rc < 0 ? rc : 0;
}

static const char *const top_keys[] = {
	"version", "enforce", "limits", "approvals", "categories", "services", "domains", "private",
};
enum { T_VERSION, T_ENFORCE, T_LIMITS, T_APPROVALS, T_CATEGORIES, T_SERVICES, T_DOMAINS,
       T_PRIVATE };

/*
 * Keys a workspace's policy may not hold: they are not rules that can be
 * narrowed but the operator's settings, and each would let a workspace
 * owner step over the operator's boundary. Audit-only mode (enforce:
 * false) let every request through, and a private exception (private:
 * [127.0.0.1:PORT]) opened the SSRF guard, so an agent read a service on
 * the host's loopback, cordon serve's own API included. The approval
 * timeout decides how long a held request waits, which is the operator's
 * to set.
 */
static int operator_only(struct pctx *c, size_t idx, int kline)
{
	const char *why = NULL;
	if (idx == T_ENFORCE)
		why = "whether the policy is enforced is the operator's to decide";
	else if (idx == T_PRIVATE)
		why = "exceptions to the SSRF guard are the operator's alone (they open the "
		      "server's own network to runs)";
	else if (idx == T_APPROVALS)
		why = "the approval settings are the operator's";
	if (!why)
		return 0;
	return policy_perr(c, kline, top_keys[idx],
		    "not allowed in a workspace's policy: %s; a workspace policy can only narrow "
		    "the operator's (remove the key)",
		    why);
}

static int walk(struct pctx *c, const struct cdn_ynode *root, struct egress_policy *p,
		struct settings *s)
{
	struct cdn_ymap_iter it;
	int rc = cdn_ymap_begin(&c->y, root, "", root->line,
				"a mapping at the top level (version: 1, ...)", &it);
	if (rc == 0)
		rc = cdn_yaml_check_version(&c->y, root, 1);
	size_t idx;
	const struct cdn_ynode *v;
	int kline;
	while (rc == 0 && (rc = cdn_ymap_next(&c->y, &it, "", top_keys, CDN_ARRAY_SIZE(top_keys),
					      &idx, &v, &kline)) == 0) {
		if (c->op && (rc = operator_only(c, idx, kline)) < 0)
			break;
		switch (idx) {
		case T_VERSION: break; /* checked above */
		case T_ENFORCE: rc = cdn_yget_bool(&c->y, v, "enforce", kline, &p->enforce); break;
		case T_LIMITS: rc = parse_limits(c, v, kline, p); break;
		case T_APPROVALS: rc = parse_approvals(c, v, kline, p); break;
		case T_CATEGORIES: rc = parse_categories(c, v, kline, s); break;
		case T_SERVICES: rc = parse_services(c, v, kline, s); break;
		case T_DOMAINS: rc = parse_domains(c, v, kline, s); break;
		case T_PRIVATE: rc = parse_private(c, v, kline, p); break;
		}
	}
	return rc < 0 ? rc : 0;
}

static int parse_level(const char *yaml, size_t len, const char *source,
		       const struct egress_policy *op, struct egress_policy **out,
		       struct cdn_err *err)
{
	struct cdn_err local = { 0 };
	struct pctx c = {
	    .y = {.src = source ? source : "policy", .what = "policy", .err = err ? err : &local},
	    .op = op};
	c.y.err->msg[0] = '\0';
	if (len > EGRESS_MAX_POLICY_BYTES)
		return cdn_err_msg(err, EFBIG, "%s: %zu bytes, more than the limit of %d", c.y.src,
				   len, EGRESS_MAX_POLICY_BYTES);
	struct cdn_ynode root = {0};
	int rc = policy_tree_load(&c, yaml ? yaml : "", yaml ? len : 0, &root);
	if (rc < 0)
		return rc;
	struct egress_policy *p = policy_new();
	struct settings s = { .search = true, .research = true };
	if (!p) {
		rc = cdn_err_set(c.y.err, ENOMEM, "%s", c.y.src);
	} else if (op) {
		/* Limits a workspace leaves out are the operator's, not the
		 * defaults: a policy that only lists domains lowers nothing. */
		p->default_rpm = op->default_rpm;
		p->global_rpm = op->global_rpm;
		p->approval_timeout_s = op->approval_timeout_s;
		p->enforce = op->enforce;
	}
	if (rc == 0)
		rc = walk(&c, &root, p, &s);
	if (rc == 0)
		rc = policy_build_rules(p, &s, policy_perr, &c, c.y.err);
	policy_settings_free(&s);
	cdn_ynode_clear(&root);
	if (rc < 0) {
		egress_policy_free(p);
		return rc;
	}
	*out = p;
	return 0;
}

int egress_policy_parse(const char *yaml, size_t len, const char *source,
			struct egress_policy **out, struct cdn_err *err)
{
	return parse_level(yaml, len, source, NULL, out, err);
}

int egress_policy_parse_workspace(const char *yaml, size_t len, const char *source,
				  const struct egress_policy *op, struct egress_policy **out,
				  struct cdn_err *err)
{
	if (!op)
		return cdn_err_msg(err, EINVAL, "%s: a workspace policy needs the operator's",
				   source ? source : "policy");
	return parse_level(yaml, len, source, op, out, err);
}

/* The file at path, read whole, into *buf. */
static int read_policy_file(const char *path, char **buf, size_t *len, struct cdn_err *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return cdn_err_set(err, errno, "policy %s", path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return cdn_err_set(err, errno, "policy %s", path);
	if (!S_ISREG(st.st_mode))
		return cdn_err_msg(err, EINVAL, "policy %s: not a regular file", path);
	if (st.st_size > EGRESS_MAX_POLICY_BYTES)
		return cdn_err_msg(err, EFBIG, "%s: %lld bytes, more than the limit of %d", path,
				   (long long)st.st_size, EGRESS_MAX_POLICY_BYTES);
	int r = cdn_read_fd(fd, EGRESS_MAX_POLICY_BYTES, buf, len);
	if (r == -EFBIG)
		return cdn_err_msg(err, EFBIG, "%s: more than the limit of %d bytes", path,
				   EGRESS_MAX_POLICY_BYTES);
	if (r < 0)
		return cdn_err_set(err, -r, "read %s", path);
	return 0;
}

int egress_policy_load(const char *path, struct egress_policy **out, struct cdn_err *err)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r = read_policy_file(path, &buf, &len, err);
	return r < 0 ? r : egress_policy_parse(buf, len, path, out, err);
}

int egress_policy_load_workspace(const char *path, const char *source,
				 const struct egress_policy *op, struct egress_policy **out,
				 struct cdn_err *err)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	int r = read_policy_file(path, &buf, &len, err);
	return r < 0 ? r
		     : egress_policy_parse_workspace(buf, len, source ? source : path, op, out,
						     err);
}

int egress_policy_default(struct egress_policy **out, struct cdn_err *err)
{
	/* The built-in policy's text (policy_builtin.c) holds no NUL: its
	 * strlen is the sizeof - 1 it had when the two were in one file. */
	const char *yaml = egress_policy_builtin_yaml();
	return egress_policy_parse(yaml, strlen(yaml), "built-in policy", out, err);
}
