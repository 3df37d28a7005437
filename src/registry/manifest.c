/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent.json (docs/agent.md), parsed strictly with jansson.
 *
 * Every object is closed and every value has exactly one type: a manifest
 * that silently meant something other than it reads ("mem": 512 taken as
 * 512 MiB, a misspelt "egres" ignored, so the agent gets the operator's
 * whole policy) is a hole, so each of those is an error that names the
 * field. Unknown keys are reported before any value is looked at, so a
 * typo is named as a typo and not as a missing field.
 */
#include "registry/manifest.h"

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

#define PATH_LEN  96 /* "egress.rules[63].requests_per_minute" and then some */
#define SHOWN_MAX 64 /* bytes of a user's string quoted in an error */

struct mctx {
	const char *src;
	struct cdn_err *err;
};

static int merr(struct mctx *c, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* "agent.json: limits.mem: expected ..."; the path is left out at the top. */
static int merr(struct mctx *c, const char *path, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cdn_err_vset(c->err, CDN_ERR_USER, EINVAL, fmt, ap);
	va_end(ap);
	return cdn_err_wrap(c->err, "%s%s%s", c->src, path[0] ? ": " : "", path);
}

/* What was found instead, for "expected X, got Y". */
static const char *describe(const json_t *v, char *buf, size_t cap)
{
	char s[SHOWN_MAX + 4];
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "a list";
	case JSON_TRUE: return "true";
	case JSON_FALSE: return "false";
	case JSON_NULL: return "null";
	case JSON_INTEGER:
		snprintf(buf, cap, "the number %lld", (long long)json_integer_value(v));
		return buf;
	case JSON_REAL: snprintf(buf, cap, "the number %.10g", json_real_value(v)); return buf;
	case JSON_STRING:
		snprintf(buf, cap, "the string \"%s\"",
			 cdn_printable_str(s, sizeof(s), json_string_value(v), CDN_TEXT_ELLIPSIS));
		return buf;
	}
	return "an unknown value";
}

/* The one message for null, wherever it appears: a key with a null value
 * would otherwise read as "set" to some parsers and "unset" to others. */
static int null_refused(struct mctx *c, const char *path)
{
	return merr(c, path, "null is not accepted; leave the key out instead");
}

static int wrong_type(struct mctx *c, const char *path, const json_t *v, const char *what)
{
	if (json_is_null(v))
		return null_refused(c, path);
	char d[SHOWN_MAX + 32];
	return merr(c, path, "expected %s, got %s", what, describe(v, d, sizeof(d)));
}

static void path_key(char *out, size_t cap, const char *path, const char *key)
{
	snprintf(out, cap, "%s%s%s", path, path[0] ? "." : "", key);
}

static void path_index(char *out, size_t cap, const char *path, size_t i)
{
	snprintf(out, cap, "%s[%zu]", path, i);
}

/* ---------------------------------------------------------------- objects */

/* Closed objects: every key must be one of `keys`. jansson has already
 * refused duplicates (JSON_REJECT_DUPLICATES). */
static int check_object(struct mctx *c, const json_t *obj, const char *path, const char *what,
			const char *const *keys, size_t n_keys)
{
	if (!json_is_object(obj))
		return wrong_type(c, path, obj, what);
	const char *key;
	json_t *v;
	json_object_foreach ((json_t *)obj, key, v) {
		bool known = false;
		for (size_t i = 0; i < n_keys && !known; i++)
			known = strcmp(key, keys[i]) == 0;
		if (known)
			continue;
		char list[384] = "";
		size_t off = 0;
		for (size_t i = 0; i < n_keys && off < sizeof(list); i++)
			off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s",
						i ? ", " : "", keys[i]);
		char s[SHOWN_MAX + 4];
		return merr(c, path, "unknown key \"%s\" (expected %s)",
			    cdn_printable_str(s, sizeof(s), key, CDN_TEXT_ELLIPSIS), list);
	}
	return 0;
}

/* ----------------------------------------------------------------- scalars */

/* A string without NUL: jansson refuses \u0000 unless asked, and the
 * length check keeps that true whatever the flags. */
static int get_string(struct mctx *c, const json_t *v, const char *path, const char *what,
		      const char **out)
{
	if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
		return wrong_type(c, path, v, what);
	*out = json_string_value(v);
	return 0;
}

/* Whole numbers only: 60.0 and 6e1 are reals to jansson, and refused, so
 * one value has one spelling. */
static int get_uint(struct mctx *c, const json_t *v, const char *path, uint64_t lo, uint64_t hi,
		    uint64_t *out)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (uint64_t)json_integer_value(v) < lo || (uint64_t)json_integer_value(v) > hi) {
		char what[96];
		snprintf(what, sizeof(what), "a whole number from %llu to %llu",
			 (unsigned long long)lo, (unsigned long long)hi);
		return wrong_type(c, path, v, what);
	}
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

/* "512m" for sizes that are whole units, else bytes: for bounds in errors. */
static const char *size_str(uint64_t n, char *buf, size_t cap)
{
	static const char units[] = "kmgt";
	unsigned u = 0;
	while (u < 4 && n >= 1024 && n % 1024 == 0) {
		n /= 1024;
		u++;
	}
	if (u)
		snprintf(buf, cap, "%llu%c", (unsigned long long)n, units[u - 1]);
	else
		snprintf(buf, cap, "%llu byte%s", (unsigned long long)n, n == 1 ? "" : "s");
	return buf;
}

/* A size: a string for cdn_parse_size ("512m", "1g") or a whole number of
 * bytes. Bounds are checked here so a bare 512 (bytes, almost surely meant
 * as megabytes) gets a message that says so. */
static int get_size(struct mctx *c, const json_t *v, const char *path, uint64_t lo, uint64_t hi,
		    uint64_t *out)
{
	static const char what[] = "a size such as \"512m\" or a number of bytes";
	uint64_t n = 0;
	if (json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v)) {
		struct cdn_err e = { 0 };
		if (cdn_parse_size(json_string_value(v), &n, &e) < 0)
			return wrong_type(c, path, v, what);
	} else if (json_is_integer(v) && json_integer_value(v) >= 0) {
		n = (uint64_t)json_integer_value(v);
	} else {
		return wrong_type(c, path, v, what);
	}
	char a[32], b[32], got[32];
	if (n < lo)
		return merr(c, path, "%s is less than %s%s", size_str(n, got, sizeof(got)),
			    size_str(lo, a, sizeof(a)),
			    json_is_integer(v) && n > 0
				    ? " (a bare number is bytes: write \"512m\" "
				      "for megabytes)"
				    : "");
	if (n > hi)
		return merr(c, path, "%s is more than %s", size_str(n, got, sizeof(got)),
			    size_str(hi, b, sizeof(b)));
	*out = n;
	return 0;
}

/* "1.5" into ten-thousandths of a core: digits, then at most
 * MANIFEST_CPU_DECIMALS after one dot. No sign, no exponent, no leading
 * zero, no spaces. */
static bool cpu_text(const char *s, uint64_t *units)
{
	uint64_t whole = 0, frac = 0;
	size_t i = 0;
	for (; s[i] >= '0' && s[i] <= '9'; i++) {
		if (i >= 4) /* 4096 cores at most */
			return false;
		whole = whole * 10 + (uint64_t)(s[i] - '0');
	}
	if (i == 0 || (s[0] == '0' && i > 1))
		return false;
	if (s[i] == '.') {
		size_t d = 0;
		for (i++; s[i] >= '0' && s[i] <= '9'; i++, d++) {
			if (d >= MANIFEST_CPU_DECIMALS)
				return false;
			frac = frac * 10 + (uint64_t)(s[i] - '0');
		}
		if (d == 0)
			return false;
		for (; d < MANIFEST_CPU_DECIMALS; d++)
			frac *= 10;
	}
	if (s[i])
		return false;
	*units = whole * 10000 + frac;
	return true;
}

/* Cores as a JSON number (1.5) or a string ("1.5"), kept as millicores,
 * the unit the sandbox takes (sandbox.h): a fourth decimal is rounded to
 * the nearest millicore. */
static int get_cpu(struct mctx *c, const json_t *v, const char *path, uint64_t *millicores)
{
	static const char what[] = "a number of cores such as 1.5 or \"0.5\" (at most 4 decimals)";
	uint64_t units = 0;
	if (json_is_integer(v)) {
		json_int_t n = json_integer_value(v);
		if (n < 0 || n > MANIFEST_MAX_CPU_MILLICORES / 1000)
			return merr(c, path, "expected from 0.01 to %d cores, got %lld",
				    MANIFEST_MAX_CPU_MILLICORES / 1000, (long long)n);
		units = (uint64_t)n * 10000;
	} else if (json_is_real(v)) {
		double d = json_real_value(v);
		/* written so that NaN fails too (every comparison is false) */
		if (!(d >= 0 && d <= MANIFEST_MAX_CPU_MILLICORES / 1000))
			return merr(c, path, "expected from 0.01 to %d cores, got %.10g",
				    MANIFEST_MAX_CPU_MILLICORES / 1000, d);
		/* 1.2345 * 10000 is 12344.999999999998 in binary: round, then
		 * check that rounding moved it by no more than that. */
		double t = d * 10000.0;
		units = (uint64_t)(t + 0.5);
		double off = t - (double)units;
		if (off > 1e-6 || off < -1e-6)
			return merr(c, path, "%.10g: at most %d decimals", d, MANIFEST_CPU_DECIMALS);
	} else if (json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v)) {
		if (!cpu_text(json_string_value(v), &units) ||
		    units > (uint64_t)MANIFEST_MAX_CPU_MILLICORES * 10)
			return wrong_type(c, path, v, what);
	} else {
		return wrong_type(c, path, v, what);
	}
	if (units == 0)
		return merr(c, path, "0 cores: leave cpu out for no quota");
	if (units < MANIFEST_MIN_CPU_MILLICORES * 10)
		return merr(c, path, "at least 0.01 cores");
	*millicores = (units + 5) / 10;
	return 0;
}

/* ------------------------------------------------------------ names, lists */

/* Names the store keeps (name, env, capabilities) follow its grammar,
 * store_name_ok(): there they become paths and keys. */
_Static_assert(MANIFEST_MAX_NAME == STORE_MAX_NAME, "a manifest's names are store names");
_Static_assert(MANIFEST_MAX_SECRET_NAME == STORE_MAX_NAME, "a secret's name fits the vault");

static bool version_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > MANIFEST_MAX_VERSION)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '+' || ch == '-'))
			return false;
	}
	return true;
}

/*
 * A secret's name in a manifest is the environment variable that carries
 * it, in upper case: [A-Z_][A-Z0-9_]{0,63} (sandbox_env_name_ok). That is not the vault's grammar
 * (store_secret_name_ok: [A-Za-z0-9][A-Za-z0-9._-]{0,63}), and the two
 * disagree on one point: a name that starts with '_' passes here but no
 * vault holds it, so a run of such an agent is refused when it asks the
 * vault for the value, naming the secret. It is kept, because refusing it
 * here would refuse agents registered with it today.
 */
static bool secret_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n > MANIFEST_MAX_SECRET_NAME || !sandbox_env_name_ok(s, n))
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] >= 'a' && s[i] <= 'z')
			return false;
	return true;
}

/*
 * Variables the sandbox sets itself. A secret is delivered as an
 * environment variable, so a secret with one of these names would replace
 * how the run reaches the network (the proxy, the run's CA bundle) or what
 * it executes (PATH, the dynamic loader), with a value the agent's author
 * asked the operator to supply.
 */
static const char *secret_name_reserved(const char *s)
{
	static const char *const exact[] = {
		"PATH",
		"HOME",
		"LANG",
		"HTTP_PROXY",
		"HTTPS_PROXY",
		"ALL_PROXY",
		"NO_PROXY",
		"SSL_CERT_FILE",
		"REQUESTS_CA_BUNDLE",
		"CURL_CA_BUNDLE",
		"GIT_SSL_CAINFO",
		"PIP_CERT",
		"AWS_CA_BUNDLE",
		"NODE_EXTRA_CA_CERTS",
	};
	if (strncmp(s, "LD_", 3) == 0)
		return "LD_ variables steer the dynamic loader";
	if (strncmp(s, "CORDON_", 7) == 0)
		return "CORDON_ variables are set by cordon for the run";
	for (size_t i = 0; i < CDN_ARRAY_SIZE(exact); i++)
		if (strcmp(s, exact[i]) == 0)
			return "the sandbox sets it (network proxy, CA bundle or search path)";
	return NULL;
}

static void strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

/* Index of s in the first n entries of v, or -1. */
static long strv_find(char *const *v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], s) == 0)
			return (long)i;
	return -1;
}

/* A list of at most `max` strings into a NULL-terminated vector. Each item
 * goes through check(), which may rewrite it into norm (a buffer of
 * norm_cap bytes) and returns 0 or an error it reported itself. */
typedef int (*item_check_fn)(struct mctx *c, const char *path, const char *s, char *norm,
			     size_t norm_cap);

static int get_strv(struct mctx *c, const json_t *v, const char *path, const char *what, size_t min,
		    size_t max, bool unique, item_check_fn check, size_t norm_cap, char ***out,
		    size_t *n_out)
{
	if (!json_is_array(v))
		return wrong_type(c, path, v, what);
	size_t n = json_array_size(v);
	if (n < min)
		return merr(c, path,
			    "the list is empty; give at least one element, or leave the "
			    "key out");
	if (n > max)
		return merr(c, path, "%zu elements, more than %zu", n, max);
	char **vec = calloc(n + 1, sizeof(*vec));
	_cleanup_free_ char *norm = malloc(norm_cap);
	if (!vec || !norm) {
		free(vec);
		return cdn_err_set(c->err, ENOMEM, "%s", c->src);
	}
	int r = 0;
	for (size_t i = 0; i < n && r == 0; i++) {
		char ip[PATH_LEN];
		path_index(ip, sizeof(ip), path, i);
		const char *s = NULL;
		r = get_string(c, json_array_get(v, i), ip, "a string", &s);
		if (r == 0 && !s[0])
			r = merr(c, ip, "empty string");
		if (r == 0) {
			snprintf(norm, norm_cap, "%s", s);
			if (check)
				r = check(c, ip, s, norm, norm_cap);
		}
		long dup = r == 0 && unique ? strv_find(vec, i, norm) : -1;
		if (dup >= 0) {
			char sh[SHOWN_MAX + 4];
			r = strcmp(s, norm) == 0
				? merr(c, ip, "\"%s\" is listed twice (also at [%ld])",
				       cdn_printable_str(sh, sizeof(sh), s, CDN_TEXT_ELLIPSIS), dup)
				: merr(c, ip, "\"%s\" is \"%s\", listed already at [%ld]",
				       cdn_printable_str(sh, sizeof(sh), s, CDN_TEXT_ELLIPSIS),
				       norm, dup);
		}
		if (r == 0 && !(vec[i] = strdup(norm)))
			r = cdn_err_set(c->err, ENOMEM, "%s", c->src);
	}
	if (r < 0) {
		strv_free(vec);
		return r;
	}
	*out = vec;
	*n_out = n;
	return 0;
}

static int check_arg(struct mctx *c, const char *path, const char *s, char *norm, size_t cap)
{
	(void)norm;
	(void)cap;
	if (strlen(s) > MANIFEST_MAX_ARG)
		return merr(c, path, "%zu bytes, more than %d", strlen(s), MANIFEST_MAX_ARG);
	return 0;
}

static int check_store_name(struct mctx *c, const char *path, const char *s, char *norm, size_t cap)
{
	(void)norm;
	(void)cap;
	char sh[SHOWN_MAX + 4];
	if (!store_name_ok(s))
		return merr(c, path,
			    "\"%s\": expected a name of lowercase letters, digits, '.', '_' and "
			    "'-', starting with a letter or digit, at most %d bytes",
			    cdn_printable_str(sh, sizeof(sh), s, CDN_TEXT_ELLIPSIS),
			    MANIFEST_MAX_NAME);
	return 0;
}

static int check_secret_name(struct mctx *c, const char *path, const char *s, char *norm,
			     size_t cap)
{
	(void)norm;
	(void)cap;
	char sh[SHOWN_MAX + 4];
	if (!secret_name_ok(s))
		return merr(c, path,
			    "\"%s\": expected an environment variable name of upper-case letters, "
			    "digits and '_', not starting with a digit, at most %d bytes (e.g. "
			    "OPENAI_API_KEY)",
			    cdn_printable_str(sh, sizeof(sh), s, CDN_TEXT_ELLIPSIS),
			    MANIFEST_MAX_SECRET_NAME);
	const char *why = secret_name_reserved(s);
	if (why)
		return merr(c, path, "\"%s\" cannot be a secret: %s", s, why);
	return 0;
}

static int check_extension(struct mctx *c, const char *path, const char *s, char *norm, size_t cap)
{
	(void)norm;
	(void)cap;
	size_t n = strlen(s);
	bool ok = n >= 1 && n <= MANIFEST_MAX_EXTENSION;
	for (size_t i = 0; ok && i < n; i++)
		ok = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9');
	char sh[SHOWN_MAX + 4];
	if (!ok)
		return merr(c, path,
			    "\"%s\": expected an extension of lowercase letters and digits without "
			    "the dot, at most %d bytes (e.g. \"json\")",
			    cdn_printable_str(sh, sizeof(sh), s, CDN_TEXT_ELLIPSIS),
			    MANIFEST_MAX_EXTENSION);
	return 0;
}

/* Egress names go through the policy's own normaliser, so a manifest and a
 * policy agree on what a name means (case, trailing dot, IDN, "*."). */
static int check_domain(struct mctx *c, const char *path, const char *s, char *norm, size_t cap)
{
	struct cdn_err e = { 0 };
	bool wild;
	if (egress_rule_name_normalize(s, norm, cap, &wild, &e) < 0)
		return merr(c, path, "%s", e.msg);
	return 0;
}

/* ----------------------------------------------------------------- sections */

static const char *const limit_keys[] = { "mem", "pids", "cpu", "timeout_seconds" };

static int parse_limits(struct mctx *c, const json_t *v, struct agent_manifest *m)
{
	int r = check_object(c, v, "limits", "an object such as {\"mem\": \"512m\"}", limit_keys,
			     CDN_ARRAY_SIZE(limit_keys));
	const json_t *x;
	if (r == 0 && (x = json_object_get(v, "mem")))
		r = get_size(c, x, "limits.mem", MANIFEST_MIN_MEM, MANIFEST_MAX_MEM, &m->mem_bytes);
	if (r == 0 && (x = json_object_get(v, "pids")))
		r = get_uint(c, x, "limits.pids", 1, MANIFEST_MAX_PIDS, &m->pids);
	if (r == 0 && (x = json_object_get(v, "cpu")))
		r = get_cpu(c, x, "limits.cpu", &m->cpu_millicores);
	if (r == 0 && (x = json_object_get(v, "timeout_seconds")))
		r = get_uint(c, x, "limits.timeout_seconds", 1, MANIFEST_MAX_TIMEOUT_S,
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
		return wrong_type(c, path, v, "a list of port numbers such as [443]");
	size_t n = json_array_size(v);
	if (n == 0)
		return merr(c, path,
			    "the list is empty; give at least one port, or leave "
			    "'ports' out for the operator's");
	if (n > EGRESS_MAX_PORTS)
		return merr(c, path, "%zu ports, more than %d", n, EGRESS_MAX_PORTS);
	for (size_t i = 0; i < n; i++) {
		char ip[PATH_LEN];
		path_index(ip, sizeof(ip), path, i);
		uint64_t port;
		int rc = get_uint(c, json_array_get(v, i), ip, 1, 65535, &port);
		if (rc < 0)
			return rc;
		if (egress_rule_has_port(r, (uint16_t)port))
			return merr(c, ip, "port %llu is listed twice", (unsigned long long)port);
		r->ports[r->n_ports++] = (uint16_t)port;
	}
	return 0;
}

static int parse_rule_methods(struct mctx *c, const json_t *v, const char *path,
			      struct egress_rule *r)
{
	if (!json_is_array(v))
		return wrong_type(c, path, v, "a list of HTTP methods such as [\"GET\"]");
	size_t n = json_array_size(v);
	if (n == 0)
		return merr(c, path,
			    "the list is empty; give at least one method, or leave "
			    "'methods' out for the operator's");
	r->methods = 0;
	for (size_t i = 0; i < n; i++) {
		char ip[PATH_LEN];
		path_index(ip, sizeof(ip), path, i);
		const char *s = NULL;
		int rc = get_string(c, json_array_get(v, i), ip, "an HTTP method", &s);
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
			return merr(c, ip,
				    "unknown method \"%s\" (expected GET, HEAD, POST, PUT, PATCH, "
				    "DELETE, OPTIONS)",
				    cdn_printable_str(sh, sizeof(sh), s, CDN_TEXT_ELLIPSIS));
		if (r->methods & bit)
			return merr(c, ip, "method %s is listed twice", up);
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
	int rc = check_object(c, v, path,
			      "an object such as {\"domain\": \"api.github.com\", \"methods\": "
			      "[\"GET\"]}",
			      rule_keys, CDN_ARRAY_SIZE(rule_keys));
	if (rc < 0)
		return rc;
	char kp[PATH_LEN];
	const json_t *x = json_object_get(v, "domain");
	path_key(kp, sizeof(kp), path, "domain");
	if (!x)
		return merr(c, path,
			    "missing key \"domain\" (the egress.domains entry it narrows)");
	const char *s = NULL;
	char name[EGRESS_MAX_HOST + 1];
	rc = get_string(c, x, kp, "a domain from egress.domains", &s);
	if (rc == 0)
		rc = check_domain(c, kp, s, name, sizeof(name));
	if (rc < 0)
		return rc;
	char sh[SHOWN_MAX + 4];
	if (strv_find(m->egress_domains, m->n_egress_domains, name) < 0)
		return merr(c, kp,
			    "\"%s\" is not in egress.domains; a rule narrows a domain the agent "
			    "lists, so list it there too",
			    cdn_printable_str(sh, sizeof(sh), s, CDN_TEXT_ELLIPSIS));
	for (size_t i = 0; i < m->n_egress_rules; i++)
		if (m->egress_rules[i].name && strcmp(m->egress_rules[i].name, name) == 0)
			return merr(c, kp, "\"%s\" already has a rule (egress.rules[%zu])", name,
				    i);
	r->name = strdup(name);
	if (!r->name)
		return cdn_err_set(c->err, ENOMEM, "%s", c->src);
	r->wildcard = name[0] == '*';

	if ((x = json_object_get(v, "ports"))) {
		path_key(kp, sizeof(kp), path, "ports");
		if ((rc = parse_rule_ports(c, x, kp, r)) < 0)
			return rc;
	}
	if ((x = json_object_get(v, "methods"))) {
		path_key(kp, sizeof(kp), path, "methods");
		if ((rc = parse_rule_methods(c, x, kp, r)) < 0)
			return rc;
	}
	if ((x = json_object_get(v, "requests_per_minute"))) {
		path_key(kp, sizeof(kp), path, "requests_per_minute");
		uint64_t rpm;
		if ((rc = get_uint(c, x, kp, 0, EGRESS_MAX_RPM, &rpm)) < 0)
			return rc;
		r->rpm = (uint32_t)rpm;
	}
	if ((x = json_object_get(v, "approval"))) {
		path_key(kp, sizeof(kp), path, "approval");
		if ((rc = get_string(c, x, kp, "\"required\" or \"none\"", &s)) < 0)
			return rc;
		if (strcmp(s, "required") == 0)
			r->approval = true;
		else if (strcmp(s, "none") != 0)
			return merr(c, kp, "expected \"required\" or \"none\", got \"%s\"",
				    cdn_printable_str(sh, sizeof(sh), s, CDN_TEXT_ELLIPSIS));
	}
	if ((x = json_object_get(v, "inspect"))) {
		path_key(kp, sizeof(kp), path, "inspect");
		if (!json_is_boolean(x))
			return wrong_type(c, kp, x, "true or false");
		r->inspect = json_is_true(x);
	}
	return 0;
}

static const char *const egress_keys[] = { "domains", "rules", "secrets" };

static int parse_secret_scopes(struct mctx *c, const json_t *v, struct agent_manifest *m)
{
	if (!json_is_object(v))
		return wrong_type(c, "egress.secrets", v,
				  "an object such as {\"OPENAI_API_KEY\": [\"api.openai.com\"]}");
	size_t n = json_object_size(v);
	if (n > MANIFEST_MAX_LIST)
		return merr(c, "egress.secrets", "%zu secrets, more than %d", n, MANIFEST_MAX_LIST);
	m->secret_scope_names = calloc(n + 1, sizeof(char *));
	m->secret_scope_domains = calloc(n + 1, sizeof(char **));
	m->secret_scope_raw = calloc(n + 1, sizeof(bool));
	if (!m->secret_scope_names || !m->secret_scope_domains || !m->secret_scope_raw)
		return cdn_err_set(c->err, ENOMEM, "%s", c->src);
	const char *key;
	const json_t *val;
	json_object_foreach((json_t *)v, key, val)
	{
		char kp[PATH_LEN];
		path_key(kp, sizeof(kp), "egress.secrets", key);
		char norm[MANIFEST_MAX_SECRET_NAME + 1];
		int rc = check_secret_name(c, kp, key, norm, sizeof(norm));
		if (rc < 0)
			return rc;
		size_t i = m->n_secret_scopes;
		if (!(m->secret_scope_names[i] = strdup(key)))
			return cdn_err_set(c->err, ENOMEM, "%s", c->src);
		m->n_secret_scopes++;
		const json_t *doms = val;
		if (json_is_object(val)) {
			/* {"domains": [...], "raw": true}: the long form, for a
			 * secret the agent must hold itself. */
			static const char *const keys[] = { "domains", "raw" };
			if ((rc = check_object(c, val, kp, "an object with \"domains\" and \"raw\"",
					       keys, CDN_ARRAY_SIZE(keys))) < 0)
				return rc;
			char sub[PATH_LEN];
			const json_t *raw = json_object_get(val, "raw");
			if (raw) {
				path_key(sub, sizeof(sub), kp, "raw");
				if (!json_is_boolean(raw))
					return wrong_type(c, sub, raw, "true or false");
				m->secret_scope_raw[i] = json_is_true(raw);
			}
			doms = json_object_get(val, "domains");
			if (!doms)
				return merr(c, kp, "missing key \"domains\" (where the secret may go)");
			path_key(sub, sizeof(sub), kp, "domains");
			snprintf(kp, sizeof(kp), "%s", sub);
		}
		size_t nd = 0;
		rc = get_strv(c, doms, kp, "a list of domain names", 1, MANIFEST_MAX_LIST, true,
			      check_domain, EGRESS_MAX_HOST + 1, &m->secret_scope_domains[i], &nd);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int parse_egress(struct mctx *c, const json_t *v, struct agent_manifest *m)
{
	int rc = check_object(c, v, "egress",
			      "an object such as {\"domains\": [\"api.github.com\"]}", egress_keys,
			      CDN_ARRAY_SIZE(egress_keys));
	if (rc < 0)
		return rc;
	m->has_egress = true;
	const json_t *x = json_object_get(v, "domains");
	if (!x)
		return merr(c, "egress",
			    "missing key \"domains\" (the domains the agent may reach)");
	rc = get_strv(c, x, "egress.domains", "a list of domain names", 0, MANIFEST_MAX_LIST, true,
		      check_domain, EGRESS_MAX_HOST + 1, &m->egress_domains, &m->n_egress_domains);
	if (rc < 0)
		return rc;
	if ((x = json_object_get(v, "secrets")) && (rc = parse_secret_scopes(c, x, m)) < 0)
		return rc;
	x = json_object_get(v, "rules");
	if (!x)
		return 0;
	if (!json_is_array(x))
		return wrong_type(c, "egress.rules", x, "a list of rules");
	size_t n = json_array_size(x);
	if (n > MANIFEST_MAX_LIST)
		return merr(c, "egress.rules", "%zu rules, more than %d", n, MANIFEST_MAX_LIST);
	m->egress_rules = calloc(n ? n : 1, sizeof(*m->egress_rules));
	if (!m->egress_rules)
		return cdn_err_set(c->err, ENOMEM, "%s", c->src);
	for (size_t i = 0; i < n; i++) {
		char ip[PATH_LEN];
		path_index(ip, sizeof(ip), "egress.rules", i);
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
	int rc = check_object(c, v, "outputs", "an object such as {\"max_files\": 5}", output_keys,
			      CDN_ARRAY_SIZE(output_keys));
	if (rc < 0)
		return rc;
	o->set = true;
	const json_t *x;
	uint64_t n;
	if ((x = json_object_get(v, "max_files"))) {
		if ((rc = get_uint(c, x, "outputs.max_files", 1, MANIFEST_MAX_OUTPUT_FILES, &n)) <
		    0)
			return rc;
		o->max_files = (uint32_t)n;
	}
	if ((x = json_object_get(v, "max_file_bytes")) &&
	    (rc = get_size(c, x, "outputs.max_file_bytes", 1, MANIFEST_MAX_OUTPUT_BYTES,
			   &o->max_file_bytes)) < 0)
		return rc;
	if ((x = json_object_get(v, "max_total_bytes")) &&
	    (rc = get_size(c, x, "outputs.max_total_bytes", 1, MANIFEST_MAX_OUTPUT_BYTES,
			   &o->max_total_bytes)) < 0)
		return rc;
	/* One file cannot be larger than all of them together: such a pair
	 * is a mistake in one of the two numbers. */
	if (o->max_file_bytes && o->max_total_bytes && o->max_file_bytes > o->max_total_bytes)
		return merr(c, "outputs.max_file_bytes",
			    "larger than outputs.max_total_bytes (%llu > %llu bytes)",
			    (unsigned long long)o->max_file_bytes,
			    (unsigned long long)o->max_total_bytes);
	if ((x = json_object_get(v, "extensions")))
		rc = get_strv(c, x, "outputs.extensions", "a list of extensions such as [\"json\"]",
			      1, MANIFEST_MAX_LIST, true, check_extension,
			      MANIFEST_MAX_EXTENSION + 1, &o->extensions, &o->n_extensions);
	return rc;
}

/* -------------------------------------------------------------- top level */

static const char *const top_keys[] = {
	"name",	   "version", "description",	  "entrypoint",	  "setup", "limits",
	"profile", "egress",  "required_secrets", "capabilities", "env",   "outputs",
};

static int parse_name(struct mctx *c, const json_t *v, const char *path, char *out, size_t cap)
{
	const char *s = NULL;
	int rc = get_string(c, v, path, "a name such as \"summarizer\"", &s);
	char dummy[1];
	if (rc == 0)
		rc = check_store_name(c, path, s, dummy, sizeof(dummy));
	if (rc == 0)
		snprintf(out, cap, "%s", s);
	return rc;
}

static int parse_top(struct mctx *c, const json_t *root, struct agent_manifest *m)
{
	int rc = check_object(c, root, "", "an object at the top level ({\"name\": ...})", top_keys,
			      CDN_ARRAY_SIZE(top_keys));
	if (rc < 0)
		return rc;
	static const char *const required[] = { "name", "version", "entrypoint" };
	for (size_t i = 0; i < CDN_ARRAY_SIZE(required); i++)
		if (!json_object_get(root, required[i]))
			return merr(c, "", "missing key \"%s\"", required[i]);

	const json_t *x;
	const char *s = NULL;
	char sh[SHOWN_MAX + 4];
	rc = parse_name(c, json_object_get(root, "name"), "name", m->name, sizeof(m->name));
	if (rc < 0)
		return rc;

	x = json_object_get(root, "version");
	if ((rc = get_string(c, x, "version", "a version label such as \"1.2.0\"", &s)) < 0)
		return rc;
	if (!version_ok(s))
		return merr(c, "version",
			    "\"%s\": expected 1 to %d of letters, digits, '.', '_', '+' and '-'",
			    cdn_printable_str(sh, sizeof(sh), s, CDN_TEXT_ELLIPSIS),
			    MANIFEST_MAX_VERSION);
	snprintf(m->version, sizeof(m->version), "%s", s);

	if ((x = json_object_get(root, "description"))) {
		if ((rc = get_string(c, x, "description", "a string", &s)) < 0)
			return rc;
		if (strlen(s) > MANIFEST_MAX_DESCRIPTION)
			return merr(c, "description", "%zu bytes, more than %d", strlen(s),
				    MANIFEST_MAX_DESCRIPTION);
		if (!(m->description = strdup(s)))
			return cdn_err_set(c->err, ENOMEM, "%s", c->src);
	}

	rc = get_strv(c, json_object_get(root, "entrypoint"), "entrypoint",
		      "a command as a list of strings such as [\"python3\", \"/agent/main.py\"]", 1,
		      MANIFEST_MAX_ARGS, false, check_arg, MANIFEST_MAX_ARG + 1, &m->entrypoint,
		      &m->n_entrypoint);
	if (rc < 0)
		return rc;
	if ((x = json_object_get(root, "setup")) &&
	    (rc = get_strv(c, x, "setup",
			   "a command as a list of strings such as [\"sh\", \"/agent/setup.sh\"]",
			   1, MANIFEST_MAX_ARGS, false, check_arg, MANIFEST_MAX_ARG + 1, &m->setup,
			   &m->n_setup)) < 0)
		return rc;

	if ((x = json_object_get(root, "limits")) && (rc = parse_limits(c, x, m)) < 0)
		return rc;

	if ((x = json_object_get(root, "profile"))) {
		if ((rc = get_string(c, x, "profile", "\"offline\" or \"deployment\"", &s)) < 0)
			return rc;
		if (strcmp(s, "offline") != 0 && strcmp(s, "deployment") != 0)
			return merr(c, "profile",
				    "expected \"offline\" or \"deployment\", got \"%s\"",
				    cdn_printable_str(sh, sizeof(sh), s, CDN_TEXT_ELLIPSIS));
		snprintf(m->profile, sizeof(m->profile), "%s", s);
	}
	if ((x = json_object_get(root, "egress"))) {
		/* An egress list under "offline" would read as a grant and do
		 * nothing: the sandbox has no network at all. Saying so beats
		 * an agent that fails later on its first request. */
		if (strcmp(m->profile, "deployment") != 0)
			return merr(
				c, "egress",
				"the profile is \"offline\"%s, which has no network, so egress "
				"would never be used; set \"profile\": \"deployment\" or remove "
				"egress",
				json_object_get(root, "profile") ? "" : " (the default)");
		if ((rc = parse_egress(c, x, m)) < 0)
			return rc;
	}

	if ((x = json_object_get(root, "required_secrets")) &&
	    (rc = get_strv(c, x, "required_secrets",
			   "a list of secret names such as [\"OPENAI_API_KEY\"]", 0,
			   MANIFEST_MAX_LIST, true, check_secret_name, MANIFEST_MAX_SECRET_NAME + 1,
			   &m->required_secrets, &m->n_required_secrets)) < 0)
		return rc;
	for (size_t i = 0; i < m->n_secret_scopes; i++) {
		bool declared = false;
		for (size_t k = 0; k < m->n_required_secrets; k++)
			declared = declared || strcmp(m->required_secrets[k], m->secret_scope_names[i]) == 0;
		if (!declared) {
			char kp[PATH_LEN];
			path_key(kp, sizeof(kp), "egress.secrets", m->secret_scope_names[i]);
			return merr(c, kp, "%s is not in required_secrets", m->secret_scope_names[i]);
		}
	}
	if ((x = json_object_get(root, "capabilities")) &&
	    (rc = get_strv(c, x, "capabilities",
			   "a list of capability names such as [\"datasets\"]", 0,
			   MANIFEST_MAX_LIST, true, check_store_name, MANIFEST_MAX_NAME + 1,
			   &m->capabilities, &m->n_capabilities)) < 0)
		return rc;
	if ((x = json_object_get(root, "env")) &&
	    (rc = parse_name(c, x, "env", m->env, sizeof(m->env))) < 0)
		return rc;
	if ((x = json_object_get(root, "outputs")) && (rc = parse_outputs(c, x, &m->outputs)) < 0)
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
		return cdn_err_set(c.err, EFBIG, "%s: %zu bytes, more than the limit of %d", c.src,
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
		return cdn_err_set(err, EINVAL, "agent directory: empty path");
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
		return cdn_err_set(err, ENOENT, "%s (every agent directory needs an agent.json)",
				   path);
	if (fd < 0)
		return cdn_err_set(err, errno, "%s", path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return cdn_err_set(err, errno, "%s", path);
	if (!S_ISREG(st.st_mode))
		return cdn_err_msg(err, EINVAL, "%s: not a regular file", path);
	if (st.st_size > MANIFEST_MAX_BYTES)
		return cdn_err_set(err, EFBIG, "%s: %lld bytes, more than the limit of %d", path,
				   (long long)st.st_size, MANIFEST_MAX_BYTES);
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r = cdn_read_fd(fd, MANIFEST_MAX_BYTES, &buf, &len);
	if (r == -EFBIG)
		return cdn_err_set(err, EFBIG, "%s: more than the limit of %d bytes", path,
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
	strv_free(m->entrypoint);
	strv_free(m->setup);
	strv_free(m->egress_domains);
	for (size_t i = 0; m->secret_scope_domains && i < m->n_secret_scopes; i++)
		strv_free(m->secret_scope_domains[i]);
	free(m->secret_scope_domains);
	free(m->secret_scope_raw);
	strv_free(m->secret_scope_names);
	for (size_t i = 0; m->egress_rules && i < m->n_egress_rules; i++)
		free(m->egress_rules[i].name);
	free(m->egress_rules);
	strv_free(m->required_secrets);
	strv_free(m->capabilities);
	strv_free(m->outputs.extensions);
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
