/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent.json (docs/agent.md), parsed strictly with jansson: its sections,
 * and the entry points (the readers of single values are in
 * manifest_read.c).
 *
 * Every object is closed and every value has exactly one type: a manifest
 * that silently meant something other than it reads ("mem": 512 taken as
 * 512 MiB, a misspelt "egres" ignored, so the agent gets the operator's
 * whole policy) is a hole, so each of those is an error that names the
 * field. Unknown keys are reported before any value is looked at, so a
 * typo is named as a typo and not as a missing field.
 */
#include "registry/manifest.h"
#include "registry/manifest_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/cleanup.h"
#include "base/file.h"
#include "base/text.h"
#include "base/units.h"
#include "sandbox/sandbox.h"
#include "store/store.h"
/* ----------------------------------------------------------------- sections */

static const char *const limit_keys[] = { "mem", "pids", "cpu", "timeout_seconds" };

static int parse_limits(struct mctx *c, const json_t *v, struct agent_manifest *m)
{
	int r = mf_check_object(c, v, "limits", "an object such as {\"mem\": \"512m\"}", limit_keys,
				CDN_ARRAY_SIZE(limit_keys));
	const json_t *x;
	if (r == 0 && (x = json_object_get(v, "mem")))
		r = mf_get_size(c, x, "limits.mem", MANIFEST_MIN_MEM, MANIFEST_MAX_MEM,
				&m->mem_bytes);
	if (r == 0 && (x = json_object_get(v, "pids")))
		r = mf_get_uint(c, x, "limits.pids", 1, MANIFEST_MAX_PIDS, &m->pids);
	if (r == 0 && (x = json_object_get(v, "cpu")))
		r = mf_get_cpu(c, x, "limits.cpu", &m->cpu_millicores);
	if (r == 0 && (x = json_object_get(v, "timeout_seconds")))
		r = mf_get_uint(c, x, "limits.timeout_seconds", 1, MANIFEST_MAX_TIMEOUT_S,
				&m->timeout_s);
	return r;
}

static const char *const rule_keys[] = {
	"domain", "ports", "methods", "requests_per_minute", "approval", "inspect",
};

static int parse_rule_ports(struct mctx *c, const json_t *v, const char *path,
			    struct egress_rule *r)
{
	if (!json_is_array(v))
		return mf_wrong_type(c, path, v, "a list of port numbers such as [443]");
	size_t n = json_array_size(v);
	if (n == 0)
		return mf_merr(c, path,
			       "the list is empty; give at least one port, or leave "
			       "'ports' out for the operator's");
	if (n > EGRESS_MAX_PORTS)
		return mf_merr(c, path, "%zu ports, more than %d", n, EGRESS_MAX_PORTS);
	for (size_t i = 0; i < n; i++) {
		char ip[PATH_LEN];
		mf_path_index(ip, sizeof(ip), path, i);
		uint64_t port;
		int rc = mf_get_uint(c, json_array_get(v, i), ip, 1, 65535, &port);
		if (rc < 0)
			return rc;
		if (egress_rule_has_port(r, (uint16_t)port))
			return mf_merr(c, ip, "port %llu is listed twice",
				       (unsigned long long)port);
		r->ports[r->n_ports++] = (uint16_t)port;
	}
	return 0;
}

static int parse_rule_methods(struct mctx *c, const json_t *v, const char *path,
			      struct egress_rule *r)
{
	if (!json_is_array(v))
		return mf_wrong_type(c, path, v, "a list of HTTP methods such as [\"GET\"]");
	size_t n = json_array_size(v);
	if (n == 0)
		return mf_merr(c, path,
			       "the list is empty; give at least one method, or leave "
			       "'methods' out for the operator's");
	r->methods = 0;
	for (size_t i = 0; i < n; i++) {
		char ip[PATH_LEN];
		mf_path_index(ip, sizeof(ip), path, i);
		const char *s = NULL;
		int rc = mf_get_string(c, json_array_get(v, i), ip, "an HTTP method", &s);
		if (rc < 0)
			return rc;
		/* Case does not matter here, as in the policy; the engine
		 * compares the request's method case-sensitively. */
		char up[16];
		size_t len = strlen(s);
		unsigned bit = 0;
		if (len < sizeof(up)) {
			for (size_t j = 0; j <= len; j++)
				up[j] = (char)(s[j] >= 'a' && s[j] <= 'z' ? s[j] - 32 : s[j]);
			bit = egress_method_bit(up);
		}
		char sh[SHOWN_MAX + 4];
		if (!bit)
			return mf_merr(
			    c, ip,
			    "unknown method \"%s\" (expected GET, HEAD, POST, PUT, PATCH, "
			    "DELETE, OPTIONS)",
			    cdn_printable_str(sh, sizeof(sh), s, CDN_TEXT_ELLIPSIS));
		if (r->methods & bit)
			return mf_merr(c, ip, "method %s is listed twice", up);
		r->methods |= bit;
	}
	return 0;
}

static int parse_rule(struct mctx *c, const json_t *v, const char *path,
		      const struct agent_manifest *m, struct egress_rule *r)
{
	/* "No narrowing" until a key says otherwise (manifest.h). */
	r->category = EGRESS_CAT_USER;
	r->group = "agent";
	r->methods = EGRESS_M_ALL;
	int rc = mf_check_object(c, v, path,
				 "an object such as {\"domain\": \"api.github.com\", \"methods\": "
				 "[\"GET\"]}",
				 rule_keys, CDN_ARRAY_SIZE(rule_keys));
	if (rc < 0)
		return rc;
	char kp[PATH_LEN];
	const json_t *x = json_object_get(v, "domain");
	mf_path_key(kp, sizeof(kp), path, "domain");
	if (!x)
		return mf_merr(c, path,
			       "missing key \"domain\" (the egress.domains entry it narrows)");
	const char *s = NULL;
	char name[EGRESS_MAX_HOST + 1];
	rc = mf_get_string(c, x, kp, "a domain from egress.domains", &s);
	if (rc == 0)
		rc = mf_check_domain(c, kp, s, name, sizeof(name));
	if (rc < 0)
		return rc;
	char sh[SHOWN_MAX + 4];
	if (mf_strv_find(m->egress_domains, m->n_egress_domains, name) < 0)
		return mf_merr(c, kp,
			       "\"%s\" is not in egress.domains; a rule narrows a domain the agent "
			       "lists, so list it there too",
			       cdn_printable_str(sh, sizeof(sh), s, CDN_TEXT_ELLIPSIS));
	for (size_t i = 0; i < m->n_egress_rules; i++)
		if (m->egress_rules[i].name && strcmp(m->egress_rules[i].name, name) == 0)
			return mf_merr(c, kp, "\"%s\" already has a rule (egress.rules[%zu])", name,
				       i);
	r->name = strdup(name);
	if (!r->name)
		return cdn_err_set(c->err, ENOMEM, "%s", c->src);
	r->wildcard = name[0] == '*';

	if ((x = json_object_get(v, "ports"))) {
		mf_path_key(kp, sizeof(kp), path, "ports");
		if ((rc = parse_rule_ports(c, x, kp, r)) < 0)
			return rc;
	}
	if ((x = json_object_get(v, "methods"))) {
		mf_path_key(kp, sizeof(kp), path, "methods");
		if ((rc = parse_rule_methods(c, x, kp, r)) < 0)
			return rc;
	}
	if ((x = json_object_get(v, "requests_per_minute"))) {
		mf_path_key(kp, sizeof(kp), path, "requests_per_minute");
		uint64_t rpm;
		if ((rc = mf_get_uint(c, x, kp, 0, EGRESS_MAX_RPM, &rpm)) < 0)
			return rc;
		r->rpm = (uint32_t)rpm;
	}
	if ((x = json_object_get(v, "approval"))) {
		mf_path_key(kp, sizeof(kp), path, "approval");
		if ((rc = mf_get_string(c, x, kp, "\"required\" or \"none\"", &s)) < 0)
			return rc;
		if (strcmp(s, "required") == 0)
			r->approval = true;
		else if (strcmp(s, "none") != 0)
			return mf_merr(c, kp, "expected \"required\" or \"none\", got \"%s\"",
				       cdn_printable_str(sh, sizeof(sh), s, CDN_TEXT_ELLIPSIS));
	}
	if ((x = json_object_get(v, "inspect"))) {
		mf_path_key(kp, sizeof(kp), path, "inspect");
		if (!json_is_boolean(x))
			return mf_wrong_type(c, kp, x, "true or false");
		r->inspect = json_is_true(x);
	}
	return 0;
}

static const char *const egress_keys[] = { "domains", "rules", "secrets" };

static int parse_secret_scopes(struct mctx *c, const json_t *v, struct agent_manifest *m)
{
	if (!json_is_object(v))
		return mf_wrong_type(
		    c, "egress.secrets", v,
		    "an object such as {\"OPENAI_API_KEY\": [\"api.openai.com\"]}");
	size_t n = json_object_size(v);
	if (n > MANIFEST_MAX_LIST)
		return mf_merr(c, "egress.secrets", "%zu secrets, more than %d", n,
			       MANIFEST_MAX_LIST);
	m->secret_scope_names = calloc(n + 1, sizeof(char *));
	m->secret_scope_domains = calloc(n + 1, sizeof(char **));
	m->secret_scope_raw = calloc(n + 1, sizeof(bool));
	m->secret_scope_in = calloc(n + 1, sizeof(unsigned));
	if (!m->secret_scope_names || !m->secret_scope_domains || !m->secret_scope_raw ||
	    !m->secret_scope_in)
		return cdn_err_set(c->err, ENOMEM, "%s", c->src);
	const char *key;
	const json_t *val;
	json_object_foreach((json_t *)v, key, val)
	{
		char kp[PATH_LEN];
		mf_path_key(kp, sizeof(kp), "egress.secrets", key);
		char norm[MANIFEST_MAX_SECRET_NAME + 1];
		int rc = mf_check_secret_name(c, kp, key, norm, sizeof(norm));
		if (rc < 0)
			return rc;
		size_t i = m->n_secret_scopes;
		if (!(m->secret_scope_names[i] = strdup(key)))
			return cdn_err_set(c->err, ENOMEM, "%s", c->src);
		m->n_secret_scopes++;
		const json_t *doms = val;
		if (json_is_object(val)) {
			/* {"domains": [...], "raw": true, "in": [...]}: the long
			 * form, for a secret the agent must hold itself, or one
			 * swapped in beyond the credential headers. */
			static const char *const keys[] = { "domains", "raw", "in" };
			if ((rc = mf_check_object(c, val, kp,
						  "an object with \"domains\", \"raw\" and \"in\"",
						  keys, CDN_ARRAY_SIZE(keys))) < 0)
				return rc;
			char sub[PATH_LEN];
			const json_t *in = json_object_get(val, "in");
			if (in) {
				mf_path_key(sub, sizeof(sub), kp, "in");
				size_t k;
				const json_t *w;
				if (!json_is_array(in) || json_array_size(in) > 3)
					return mf_wrong_type(c, sub, in,
							     "a list of \"headers\", \"query\", \"body\"");
				json_array_foreach(in, k, w)
				{
					const char *s = json_string_value(w);
					unsigned bit = !s ? 0
						       : !strcmp(s, "headers") ? MANIFEST_SEAL_IN_HEADERS
						       : !strcmp(s, "query")	? MANIFEST_SEAL_IN_QUERY
						       : !strcmp(s, "body")	? MANIFEST_SEAL_IN_BODY
										: 0;
					if (!bit)
						return mf_merr(c, sub,
							       "%s%s%s is not where a secret goes "
							       "(\"headers\", \"query\" or \"body\")",
							       s ? "\"" : "", s ? s : "an entry",
							       s ? "\"" : "");
					m->secret_scope_in[i] |= bit;
				}
			}
			const json_t *raw = json_object_get(val, "raw");
			if (raw) {
				mf_path_key(sub, sizeof(sub), kp, "raw");
				if (!json_is_boolean(raw))
					return mf_wrong_type(c, sub, raw, "true or false");
				m->secret_scope_raw[i] = json_is_true(raw);
			}
			doms = json_object_get(val, "domains");
			if (!doms)
				return mf_merr(c, kp,
					       "missing key \"domains\" (where the secret may go)");
			mf_path_key(sub, sizeof(sub), kp, "domains");
			snprintf(kp, sizeof(kp), "%s", sub);
		}
		size_t nd = 0;
		rc = mf_get_strv(c, doms, kp, "a list of domain names", 1, MANIFEST_MAX_LIST, true,
				 mf_check_domain, EGRESS_MAX_HOST + 1, &m->secret_scope_domains[i],
				 &nd);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int parse_egress(struct mctx *c, const json_t *v, struct agent_manifest *m)
{
	int rc =
	    mf_check_object(c, v, "egress", "an object such as {\"domains\": [\"api.github.com\"]}",
			    egress_keys, CDN_ARRAY_SIZE(egress_keys));
	if (rc < 0)
		return rc;
	m->has_egress = true;
	const json_t *x = json_object_get(v, "domains");
	if (!x)
		return mf_merr(c, "egress",
			       "missing key \"domains\" (the domains the agent may reach)");
	rc = mf_get_strv(c, x, "egress.domains", "a list of domain names", 0, MANIFEST_MAX_LIST,
			 true, mf_check_domain, EGRESS_MAX_HOST + 1, &m->egress_domains,
			 &m->n_egress_domains);
	if (rc < 0)
		return rc;
	if ((x = json_object_get(v, "secrets")) && (rc = parse_secret_scopes(c, x, m)) < 0)
		return rc;
	x = json_object_get(v, "rules");
	if (!x)
		return 0;
	if (!json_is_array(x))
		return mf_wrong_type(c, "egress.rules", x, "a list of rules");
	size_t n = json_array_size(x);
	if (n > MANIFEST_MAX_LIST)
		return mf_merr(c, "egress.rules", "%zu rules, more than %d", n, MANIFEST_MAX_LIST);
	m->egress_rules = calloc(n ? n : 1, sizeof(*m->egress_rules));
	if (!m->egress_rules)
		return cdn_err_set(c->err, ENOMEM, "%s", c->src);
	for (size_t i = 0; i < n; i++) {
		char ip[PATH_LEN];
		mf_path_index(ip, sizeof(ip), "egress.rules", i);
		struct egress_rule r = { 0 };
		rc = parse_rule(c, json_array_get(x, i), ip, m, &r);
		if (rc < 0) {
			free(r.name);
			return rc;
		}
		m->egress_rules[m->n_egress_rules++] = r;
	}
	return 0;
}

static const char *const output_keys[] = {
	"max_files",
	"max_file_bytes",
	"max_total_bytes",
	"extensions",
};

static int parse_outputs(struct mctx *c, const json_t *v, struct agent_outputs *o)
{
	int rc = mf_check_object(c, v, "outputs", "an object such as {\"max_files\": 5}",
				 output_keys, CDN_ARRAY_SIZE(output_keys));
	if (rc < 0)
		return rc;
	o->set = true;
	const json_t *x;
	uint64_t n;
	if ((x = json_object_get(v, "max_files"))) {
		if ((rc = mf_get_uint(c, x, "outputs.max_files", 1, MANIFEST_MAX_OUTPUT_FILES,
				      &n)) < 0)
			return rc;
		o->max_files = (uint32_t)n;
	}
	if ((x = json_object_get(v, "max_file_bytes")) &&
	    (rc = mf_get_size(c, x, "outputs.max_file_bytes", 1, MANIFEST_MAX_OUTPUT_BYTES,
			      &o->max_file_bytes)) < 0)
		return rc;
	if ((x = json_object_get(v, "max_total_bytes")) &&
	    (rc = mf_get_size(c, x, "outputs.max_total_bytes", 1, MANIFEST_MAX_OUTPUT_BYTES,
			      &o->max_total_bytes)) < 0)
		return rc;
	/* One file cannot be larger than all of them together: such a pair
	 * is a mistake in one of the two numbers. */
	if (o->max_file_bytes && o->max_total_bytes && o->max_file_bytes > o->max_total_bytes)
		return mf_merr(c, "outputs.max_file_bytes",
			       "larger than outputs.max_total_bytes (%llu > %llu bytes)",
			       (unsigned long long)o->max_file_bytes,
			       (unsigned long long)o->max_total_bytes);
	if ((x = json_object_get(v, "extensions")))
		rc = mf_get_strv(c, x, "outputs.extensions",
				 "a list of extensions such as [\"json\"]", 1, MANIFEST_MAX_LIST,
				 true, mf_check_extension, MANIFEST_MAX_EXTENSION + 1,
				 &o->extensions, &o->n_extensions);
	return rc;
}

static const char *const retry_keys[] = { "on_lost", "max" };

/* "retry": {"on_lost": true, "max": N}: a run lost with its worker (its
 * lease expired) is queued again, each attempt a record of its own, at
 * most N more times. Opt-in and bounded: an agent's actions have side
 * effects, and a run is never re-run unless its agent says it may be. */
static int parse_retry(struct mctx *c, const json_t *v, struct agent_manifest *m)
{
	int rc = mf_check_object(c, v, "retry", "an object such as {\"on_lost\": true, \"max\": 2}",
				 retry_keys, CDN_ARRAY_SIZE(retry_keys));
	if (rc < 0)
		return rc;
	const json_t *on = json_object_get(v, "on_lost");
	if (!on)
		return mf_merr(c, "retry", "missing key \"on_lost\"");
	if (!json_is_boolean(on))
		return mf_wrong_type(c, "retry.on_lost", on, "true or false");
	uint64_t max = 1;
	const json_t *x = json_object_get(v, "max");
	if (x && (rc = mf_get_uint(c, x, "retry.max", 1, STORE_RETRY_MAX, &max)) < 0)
		return rc;
	m->retry_on_lost = json_is_true(on) ? (unsigned)max : 0;
	return 0;
}

static const char *const health_keys[] = { "port", "path", "interval", "timeout", "failures" };

/* "health": {"port": 8080, "path": "/healthz", "interval": 10, "timeout": 2,
 * "failures": 3}: what cordon probes inside the run's network namespace
 * (docs/services.md). The path goes into a request line as it is, so it is
 * strict: '/' and then visible ASCII, no space, no control byte. */
static int parse_health(struct mctx *c, const json_t *v, struct agent_manifest *m)
{
	int rc = mf_check_object(c, v, "health",
				 "an object such as {\"port\": 8080, \"path\": \"/healthz\", "
				 "\"interval\": 10}",
				 health_keys, CDN_ARRAY_SIZE(health_keys));
	if (rc < 0)
		return rc;
	const json_t *x = json_object_get(v, "port");
	if (!x)
		return mf_merr(c, "health", "missing key \"port\"");
	uint64_t port, interval = 10, timeout = 0, failures = 3;
	if ((rc = mf_get_uint(c, x, "health.port", 1024, 65535, &port)) < 0 ||
	    ((x = json_object_get(v, "interval")) &&
	     (rc = mf_get_uint(c, x, "health.interval", 1, 3600, &interval)) < 0) ||
	    ((x = json_object_get(v, "timeout")) &&
	     (rc = mf_get_uint(c, x, "health.timeout", 1, 60, &timeout)) < 0) ||
	    ((x = json_object_get(v, "failures")) &&
	     (rc = mf_get_uint(c, x, "health.failures", 1, 100, &failures)) < 0))
		return rc;
	const char *path = "/";
	if ((x = json_object_get(v, "path")) &&
	    (rc = mf_get_string(c, x, "health.path", "a path such as \"/healthz\"", &path)) < 0)
		return rc;
	size_t n = strlen(path);
	bool ok = n >= 1 && n <= MANIFEST_MAX_HEALTH_PATH && path[0] == '/';
	for (size_t i = 0; ok && i < n; i++)
		ok = path[i] > 0x20 && path[i] < 0x7f;
	if (!ok)
		return mf_merr(c, "health.path",
			       "'/' and then at most %d visible ASCII characters (no space)",
			       MANIFEST_MAX_HEALTH_PATH - 1);
	if (port == SANDBOX_PROXY_PORT || port == SANDBOX_MCP_PORT)
		return mf_merr(c, "health.port", "%u is cordon's own inside the sandbox (%d and %d are)",
			       (unsigned)port, SANDBOX_PROXY_PORT, SANDBOX_MCP_PORT);
	m->health.port = (unsigned)port;
	m->health.interval_s = (unsigned)interval;
	/* A probe ends before the next one is due. */
	m->health.timeout_s = (unsigned)(timeout ? timeout : interval < 5 ? interval : 5);
	if (m->health.timeout_s > m->health.interval_s)
		return mf_merr(c, "health.timeout", "at most health.interval (%u)",
			       m->health.interval_s);
	m->health.failures = (unsigned)failures;
	snprintf(m->health.path, sizeof(m->health.path), "%s", path);
	return 0;
}

/* "labels": {"KEY": "VALUE"}: what a worker must have to take the
 * agent's runs (store_labels_parse's rules). */
static int parse_labels(struct mctx *c, const json_t *v, struct agent_manifest *m)
{
	if (!json_is_object(v))
		return mf_wrong_type(c, "labels", v, "an object of strings such as {\"gpu\": \"a100\"}");
	_cleanup_free_ char *text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
	struct cdn_err e = { 0 };
	if (!text)
		return cdn_err_set(c->err, ENOMEM, "%s", c->src);
	if (store_labels_parse(text, m->labels, &e) < 0)
		return mf_merr(c, "labels", "%s", strncmp(e.msg, "labels: ", 8) ? e.msg : e.msg + 8);
	return 0;
}

/* -------------------------------------------------------------- top level */

static const char *const top_keys[] = {
    "name",    "version", "description",      "entrypoint",   "setup", "limits",
    "profile", "egress",  "required_secrets", "capabilities", "env",   "outputs",
    "retry",   "labels",  "health", "calls", "dependencies",
};

static int parse_name(struct mctx *c, const json_t *v, const char *path, char *out, size_t cap)
{
	const char *s = NULL;
	int rc = mf_get_string(c, v, path, "a name such as \"summarizer\"", &s);
	char dummy[1];
	if (rc == 0)
		rc = mf_check_store_name(c, path, s, dummy, sizeof(dummy));
	if (rc == 0)
		snprintf(out, cap, "%s", s);
	return rc;
}

static int parse_top(struct mctx *c, const json_t *root, struct agent_manifest *m)
{
	int rc = mf_check_object(c, root, "", "an object at the top level ({\"name\": ...})",
				 top_keys, CDN_ARRAY_SIZE(top_keys));
	if (rc < 0)
		return rc;
	static const char *const required[] = { "name", "version", "entrypoint" };
	for (size_t i = 0; i < CDN_ARRAY_SIZE(required); i++)
		if (!json_object_get(root, required[i]))
			return mf_merr(c, "", "missing key \"%s\"", required[i]);

	const json_t *x;
	const char *s = NULL;
	char sh[SHOWN_MAX + 4];
	rc = parse_name(c, json_object_get(root, "name"), "name", m->name, sizeof(m->name));
	if (rc < 0)
		return rc;

	x = json_object_get(root, "version");
	if ((rc = mf_get_string(c, x, "version", "a version label such as \"1.2.0\"", &s)) < 0)
		return rc;
	if (!mf_version_ok(s))
		return mf_merr(c, "version",
			       "\"%s\": expected 1 to %d of letters, digits, '.', '_', '+' and '-'",
			       cdn_printable_str(sh, sizeof(sh), s, CDN_TEXT_ELLIPSIS),
			       MANIFEST_MAX_VERSION);
	snprintf(m->version, sizeof(m->version), "%s", s);

	if ((x = json_object_get(root, "description"))) {
		if ((rc = mf_get_string(c, x, "description", "a string", &s)) < 0)
			return rc;
		if (strlen(s) > MANIFEST_MAX_DESCRIPTION)
			return mf_merr(c, "description", "%zu bytes, more than %d", strlen(s),
				       MANIFEST_MAX_DESCRIPTION);
		if (!(m->description = strdup(s)))
			return cdn_err_set(c->err, ENOMEM, "%s", c->src);
	}

	rc = mf_get_strv(c, json_object_get(root, "entrypoint"), "entrypoint",
			 "a command as a list of strings such as [\"python3\", \"/agent/main.py\"]",
			 1, MANIFEST_MAX_ARGS, false, mf_check_arg, MANIFEST_MAX_ARG + 1,
			 &m->entrypoint, &m->n_entrypoint);
	if (rc < 0)
		return rc;
	if ((x = json_object_get(root, "setup")) &&
	    (rc =
		 mf_get_strv(c, x, "setup",
			     "a command as a list of strings such as [\"sh\", \"/agent/setup.sh\"]",
			     1, MANIFEST_MAX_ARGS, false, mf_check_arg, MANIFEST_MAX_ARG + 1,
			     &m->setup, &m->n_setup)) < 0)
		return rc;

	if ((x = json_object_get(root, "limits")) && (rc = parse_limits(c, x, m)) < 0)
		return rc;

	if ((x = json_object_get(root, "profile"))) {
		if ((rc = mf_get_string(c, x, "profile", "\"offline\" or \"deployment\"", &s)) < 0)
			return rc;
		if (strcmp(s, "offline") != 0 && strcmp(s, "deployment") != 0)
			return mf_merr(c, "profile",
				       "expected \"offline\" or \"deployment\", got \"%s\"",
				       cdn_printable_str(sh, sizeof(sh), s, CDN_TEXT_ELLIPSIS));
		snprintf(m->profile, sizeof(m->profile), "%s", s);
	}
	if ((x = json_object_get(root, "egress"))) {
		/* An egress list under "offline" would read as a grant and do
		 * nothing: the sandbox has no network at all. Saying so beats
		 * an agent that fails later on its first request. */
		if (strcmp(m->profile, "deployment") != 0)
			return mf_merr(
				c, "egress",
				"the profile is \"offline\"%s, which has no network, so egress "
				"would never be used; set \"profile\": \"deployment\" or remove "
				"egress",
				json_object_get(root, "profile") ? "" : " (the default)");
		if ((rc = parse_egress(c, x, m)) < 0)
			return rc;
	}

	if ((x = json_object_get(root, "required_secrets")) &&
	    (rc = mf_get_strv(
		 c, x, "required_secrets", "a list of secret names such as [\"OPENAI_API_KEY\"]", 0,
		 MANIFEST_MAX_LIST, true, mf_check_secret_name, MANIFEST_MAX_SECRET_NAME + 1,
		 &m->required_secrets, &m->n_required_secrets)) < 0)
		return rc;
	for (size_t i = 0; i < m->n_secret_scopes; i++) {
		bool declared = false;
		for (size_t k = 0; k < m->n_required_secrets; k++)
			declared = declared ||
				   strcmp(m->required_secrets[k], m->secret_scope_names[i]) == 0;
		if (!declared) {
			char kp[PATH_LEN];
			mf_path_key(kp, sizeof(kp), "egress.secrets", m->secret_scope_names[i]);
			return mf_merr(c, kp, "%s is not in required_secrets",
				       m->secret_scope_names[i]);
		}
	}
	if ((x = json_object_get(root, "capabilities")) &&
	    (rc = mf_get_strv(c, x, "capabilities",
			      "a list of capability names such as [\"datasets\"]", 0,
			      MANIFEST_MAX_LIST, true, mf_check_store_name, MANIFEST_MAX_NAME + 1,
			      &m->capabilities, &m->n_capabilities)) < 0)
		return rc;
	if ((x = json_object_get(root, "env")) &&
	    (rc = parse_name(c, x, "env", m->env, sizeof(m->env))) < 0)
		return rc;
	if ((x = json_object_get(root, "outputs")) && (rc = parse_outputs(c, x, &m->outputs)) < 0)
		return rc;
	if ((x = json_object_get(root, "retry")) && (rc = parse_retry(c, x, m)) < 0)
		return rc;
	if ((x = json_object_get(root, "labels")) && (rc = parse_labels(c, x, m)) < 0)
		return rc;
	if ((x = json_object_get(root, "health")) && (rc = parse_health(c, x, m)) < 0)
		return rc;
	if ((x = json_object_get(root, "calls")) && (rc = mf_parse_calls(c, x, m)) < 0)
		return rc;
	if ((x = json_object_get(root, "dependencies")) && (rc = mf_parse_dependencies(c, x, m)) < 0)
		return rc;
	return 0;
}

/* jansson's messages quote the input; keep them printable. */
static int json_syntax_error(struct mctx *c, const json_error_t *je)
{
	char text[JSON_ERROR_TEXT_LENGTH];
	cdn_printable_str(text, sizeof(text), je->text, 0);
	if (json_error_code(je) == json_error_duplicate_key)
		return cdn_err_msg(c->err, EINVAL,
				   "%s:%d:%d: a key appears twice in one object (%s); each key "
				   "may be given once",
				   c->src, je->line, je->column, text);
	return cdn_err_msg(c->err, EINVAL, "%s:%d:%d: not valid JSON: %s", c->src, je->line,
			   je->column, text);
}

int manifest_parse(const char *json, size_t len, const char *source, struct agent_manifest **out,
		   struct cdn_err *err)
{
	struct cdn_err local = { 0 };
	struct mctx c = { .src = source ? source : "agent.json", .err = err ? err : &local };
	if (len > MANIFEST_MAX_BYTES)
		return cdn_err_msg(c.err, EFBIG, "%s: %zu bytes, more than the limit of %d", c.src,
				   len, MANIFEST_MAX_BYTES);
	json_error_t je;
	json_t *root = json_loadb(json ? json : "", json ? len : 0,
				  JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
	if (!root)
		return json_syntax_error(&c, &je);
	struct agent_manifest *m = calloc(1, sizeof(*m));
	int rc;
	if (!m) {
		rc = cdn_err_set(c.err, ENOMEM, "%s", c.src);
	} else {
		snprintf(m->profile, sizeof(m->profile), "offline");
		m->timeout_s = MANIFEST_DEFAULT_TIMEOUT_S;
		rc = parse_top(&c, root, m);
	}
	json_decref(root);
	if (rc < 0) {
		manifest_free(m);
		return rc;
	}
	*out = m;
	return 0;
}

int manifest_load_dir(const char *dir, struct agent_manifest **out, struct cdn_err *err)
{
	char path[4096 + 16];
	snprintf(path, sizeof(path), "%s/agent.json", dir ? dir : "");
	if (!dir || !dir[0])
		return cdn_err_msg(err, EINVAL, "agent directory: empty path");
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return cdn_err_set(err, errno, "agent directory %s", dir);
	/*
	 * O_NOFOLLOW: a symlinked agent.json could name a file outside the
	 * agent's directory, so the manifest checked here would not be the
	 * one snapshotted with the code. O_NONBLOCK: a FIFO planted as
	 * agent.json must not hang the caller; fstat refuses it next.
	 */
	_cleanup_close_ int fd = openat(dfd, "agent.json",
					O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 && errno == ELOOP)
		return cdn_err_msg(
		    err, EINVAL,
		    "%s: a symbolic link; the manifest must be a regular file in the "
		    "agent's directory",
		    path);
	if (fd < 0 && errno == ENOENT)
		return cdn_err_msg(err, ENOENT, "%s: not found (every agent directory needs an agent.json)",
				   path);
	if (fd < 0)
		return cdn_err_set(err, errno, "%s", path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return cdn_err_set(err, errno, "%s", path);
	if (!S_ISREG(st.st_mode))
		return cdn_err_msg(err, EINVAL, "%s: not a regular file", path);
	if (st.st_size > MANIFEST_MAX_BYTES)
		return cdn_err_msg(err, EFBIG, "%s: %lld bytes, more than the limit of %d", path,
				   (long long)st.st_size, MANIFEST_MAX_BYTES);
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r = cdn_read_fd(fd, MANIFEST_MAX_BYTES, &buf, &len);
	if (r == -EFBIG)
		return cdn_err_msg(err, EFBIG, "%s: more than the limit of %d bytes", path,
				   MANIFEST_MAX_BYTES);
	if (r < 0)
		return cdn_err_set(err, -r, "read %s", path);
	return manifest_parse(buf, len, path, out, err);
}

void manifest_free(struct agent_manifest *m)
{
	if (!m)
		return;
	free(m->description);
	mf_strv_free(m->entrypoint);
	mf_strv_free(m->setup);
	mf_strv_free(m->egress_domains);
	for (size_t i = 0; m->secret_scope_domains && i < m->n_secret_scopes; i++)
		mf_strv_free(m->secret_scope_domains[i]);
	free(m->secret_scope_domains);
	free(m->secret_scope_raw);
	free(m->secret_scope_in);
	mf_strv_free(m->secret_scope_names);
	for (size_t i = 0; m->egress_rules && i < m->n_egress_rules; i++)
		free(m->egress_rules[i].name);
	free(m->egress_rules);
	mf_strv_free(m->required_secrets);
	mf_strv_free(m->capabilities);
	mf_strv_free(m->calls);
	mf_strv_free(m->outputs.extensions);
	free(m);
}

const char *const *manifest_default_secret_domains(const char *secret)
{
	static const char *const openai[] = { "api.openai.com", NULL };
	static const char *const anthropic[] = { "api.anthropic.com", NULL };
	static const char *const gemini[] = { "generativelanguage.googleapis.com", NULL };
	static const char *const mistral[] = { "api.mistral.ai", NULL };
	static const struct {
		const char *name;
		const char *const *domains;
	} known[] = {
		{ "OPENAI_API_KEY", openai },	{ "ANTHROPIC_API_KEY", anthropic },
		{ "GEMINI_API_KEY", gemini },	{ "GOOGLE_API_KEY", gemini },
		{ "MISTRAL_API_KEY", mistral },
	};
	for (size_t i = 0; i < CDN_ARRAY_SIZE(known); i++)
		if (strcmp(secret, known[i].name) == 0)
			return known[i].domains;
	return NULL;
}

bool manifest_wants_network(const struct agent_manifest *m)
{
	return m && (strcmp(m->profile, "deployment") == 0 || m->n_egress_domains > 0);
}
