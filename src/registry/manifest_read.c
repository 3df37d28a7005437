/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent.json (docs/agent.md), parsed strictly with jansson: the readers
 * of its values (closed objects, scalars, names and lists) and the messages
 * that name a field. The sections and the entry points are in manifest.c.
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

/* "agent.json: limits.mem: expected ..."; the path is left out at the top. */
int mf_merr(struct mctx *c, const char *path, const char *fmt, ...)
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
	return mf_merr(c, path, "null is not accepted; leave the key out instead");
}

int mf_wrong_type(struct mctx *c, const char *path, const json_t *v, const char *what)
{
	if (json_is_null(v))
		return null_refused(c, path);
	char d[SHOWN_MAX + 32];
	return mf_merr(c, path, "expected %s, got %s", what, describe(v, d, sizeof(d)));
}

void mf_path_key(char *out, size_t cap, const char *path, const char *key)
{
	snprintf(out, cap, "%s%s%s", path, path[0] ? "." : "", key);
}

void mf_path_index(char *out, size_t cap, const char *path, size_t i)
{
	snprintf(out, cap, "%s[%zu]", path, i);
}

/* ---------------------------------------------------------------- objects */

/* Closed objects: every key must be one of `keys`. jansson has already
 * refused duplicates (JSON_REJECT_DUPLICATES). */
int mf_check_object(struct mctx *c, const json_t *obj, const char *path, const char *what,
		    const char *const *keys, size_t n_keys)
{
	if (!json_is_object(obj))
		return mf_wrong_type(c, path, obj, what);
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
		return mf_merr(c, path, "unknown key \"%s\" (expected %s)",
			       cdn_printable_str(s, sizeof(s), key, CDN_TEXT_ELLIPSIS), list);
	}
	return 0;
}

/* ----------------------------------------------------------------- scalars */

/* A string without NUL: jansson refuses \u0000 unless asked, and the
 * length check keeps that true whatever the flags. */
int mf_get_string(struct mctx *c, const json_t *v, const char *path, const char *what,
		  const char **out)
{
	if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
		return mf_wrong_type(c, path, v, what);
	*out = json_string_value(v);
	return 0;
}

/* Whole numbers only: 60.0 and 6e1 are reals to jansson, and refused, so
 * one value has one spelling. */
int mf_get_uint(struct mctx *c, const json_t *v, const char *path, uint64_t lo, uint64_t hi,
		uint64_t *out)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (uint64_t)json_integer_value(v) < lo || (uint64_t)json_integer_value(v) > hi) {
		char what[96];
		snprintf(what, sizeof(what), "a whole number from %llu to %llu",
			 (unsigned long long)lo, (unsigned long long)hi);
		return mf_wrong_type(c, path, v, what);
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
int mf_get_size(struct mctx *c, const json_t *v, const char *path, uint64_t lo, uint64_t hi,
		uint64_t *out)
{
	static const char what[] = "a size such as \"512m\" or a number of bytes";
	uint64_t n = 0;
	if (json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v)) {
		struct cdn_err e = { 0 };
		if (cdn_parse_size(json_string_value(v), &n, &e) < 0)
			return mf_wrong_type(c, path, v, what);
	} else if (json_is_integer(v) && json_integer_value(v) >= 0) {
		n = (uint64_t)json_integer_value(v);
	} else {
		return mf_wrong_type(c, path, v, what);
	}
	char a[32], b[32], got[32];
	if (n < lo)
		return mf_merr(c, path, "%s is less than %s%s", size_str(n, got, sizeof(got)),
			       size_str(lo, a, sizeof(a)),
			       json_is_integer(v) && n > 0
				    ? " (a bare number is bytes: write \"512m\" "
				      "for megabytes)"
				    : "");
	if (n > hi)
		return mf_merr(c, path, "%s is more than %s", size_str(n, got, sizeof(got)),
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
int mf_get_cpu(struct mctx *c, const json_t *v, const char *path, uint64_t *millicores)
{
	static const char what[] = "a number of cores such as 1.5 or \"0.5\" (at most 4 decimals)";
	uint64_t units = 0;
	if (json_is_integer(v)) {
		json_int_t n = json_integer_value(v);
		if (n < 0 || n > MANIFEST_MAX_CPU_MILLICORES / 1000)
			return mf_merr(c, path, "expected from 0.01 to %d cores, got %lld",
				       MANIFEST_MAX_CPU_MILLICORES / 1000, (long long)n);
		units = (uint64_t)n * 10000;
	} else if (json_is_real(v)) {
		double d = json_real_value(v);
		/* written so that NaN fails too (every comparison is false) */
		if (!(d >= 0 && d <= MANIFEST_MAX_CPU_MILLICORES / 1000))
			return mf_merr(c, path, "expected from 0.01 to %d cores, got %.10g",
				       MANIFEST_MAX_CPU_MILLICORES / 1000, d);
		/* 1.2345 * 10000 is 12344.999999999998 in binary: round, then
		 * check that rounding moved it by no more than that. */
		double t = d * 10000.0;
		units = (uint64_t)(t + 0.5);
		double off = t - (double)units;
		if (off > 1e-6 || off < -1e-6)
			return mf_merr(c, path, "%.10g: at most %d decimals", d,
				       MANIFEST_CPU_DECIMALS);
	} else if (json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v)) {
		if (!cpu_text(json_string_value(v), &units) ||
		    units > (uint64_t)MANIFEST_MAX_CPU_MILLICORES * 10)
			return mf_wrong_type(c, path, v, what);
	} else {
		return mf_wrong_type(c, path, v, what);
	}
	if (units == 0)
		return mf_merr(c, path, "0 cores: leave cpu out for no quota");
	if (units < MANIFEST_MIN_CPU_MILLICORES * 10)
		return mf_merr(c, path, "at least 0.01 cores");
	*millicores = (units + 5) / 10;
	return 0;
}

/* ------------------------------------------------------------ names, lists */

/* Names the store keeps (name, env, capabilities) follow its grammar,
 * store_name_ok(): there they become paths and keys. */
_Static_assert(MANIFEST_MAX_NAME == STORE_MAX_NAME, "a manifest's names are store names");
_Static_assert(MANIFEST_MAX_SECRET_NAME == STORE_MAX_NAME, "a secret's name fits the vault");

bool mf_version_ok(const char *s)
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

void mf_strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

/* Index of s in the first n entries of v, or -1. */
long mf_strv_find(char *const *v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], s) == 0)
			return (long)i;
	return -1;
}

/* A list of at most `max` strings into a NULL-terminated vector. Each item
 * goes through check(), which may rewrite it into norm (a buffer of
 * norm_cap bytes) and returns 0 or an error it reported itself. */
int mf_get_strv(struct mctx *c, const json_t *v, const char *path, const char *what, size_t min,
		size_t max, bool unique, item_check_fn check, size_t norm_cap, char ***out,
		size_t *n_out)
{
	if (!json_is_array(v))
		return mf_wrong_type(c, path, v, what);
	size_t n = json_array_size(v);
	if (n < min)
		return mf_merr(c, path,
			       "the list is empty; give at least one element, or leave the "
			       "key out");
	if (n > max)
		return mf_merr(c, path, "%zu elements, more than %zu", n, max);
	char **vec = calloc(n + 1, sizeof(*vec));
	_cleanup_free_ char *norm = malloc(norm_cap);
	if (!vec || !norm) {
		free(vec);
		return cdn_err_set(c->err, ENOMEM, "%s", c->src);
	}
	int r = 0;
	for (size_t i = 0; i < n && r == 0; i++) {
		char ip[PATH_LEN];
		mf_path_index(ip, sizeof(ip), path, i);
		const char *s = NULL;
		r = mf_get_string(c, json_array_get(v, i), ip, "a string", &s);
		if (r == 0 && !s[0])
			r = mf_merr(c, ip, "empty string");
		if (r == 0) {
			snprintf(norm, norm_cap, "%s", s);
			if (check)
				r = check(c, ip, s, norm, norm_cap);
		}
		long dup = r == 0 && unique ? mf_strv_find(vec, i, norm) : -1;
		if (dup >= 0) {
			char sh[SHOWN_MAX + 4];
			r = strcmp(s, norm) == 0
				? mf_merr(c, ip, "\"%s\" is listed twice (also at [%ld])",
					  cdn_printable_str(sh, sizeof(sh), s, CDN_TEXT_ELLIPSIS),
					  dup)
				: mf_merr(c, ip, "\"%s\" is \"%s\", listed already at [%ld]",
					  cdn_printable_str(sh, sizeof(sh), s, CDN_TEXT_ELLIPSIS),
					  norm, dup);
		}
		if (r == 0 && !(vec[i] = strdup(norm)))
			r = cdn_err_set(c->err, ENOMEM, "%s", c->src);
	}
	if (r < 0) {
		mf_strv_free(vec);
		return r;
	}
	*out = vec;
	*n_out = n;
	return 0;
}

int mf_check_arg(struct mctx *c, const char *path, const char *s, char *norm, size_t cap)
{
	(void)norm;
	(void)cap;
	if (strlen(s) > MANIFEST_MAX_ARG)
		return mf_merr(c, path, "%zu bytes, more than %d", strlen(s), MANIFEST_MAX_ARG);
	return 0;
}

int mf_check_store_name(struct mctx *c, const char *path, const char *s, char *norm, size_t cap)
{
	(void)norm;
	(void)cap;
	char sh[SHOWN_MAX + 4];
	if (!store_name_ok(s))
		return mf_merr(c, path,
			       "\"%s\": expected a name of lowercase letters, digits, '.', '_' and "
			       "'-', starting with a letter or digit, at most %d bytes",
			       cdn_printable_str(sh, sizeof(sh), s, CDN_TEXT_ELLIPSIS),
			       MANIFEST_MAX_NAME);
	return 0;
}

int mf_check_secret_name(struct mctx *c, const char *path, const char *s, char *norm,
			 size_t cap)
{
	(void)norm;
	(void)cap;
	char sh[SHOWN_MAX + 4];
	if (!secret_name_ok(s))
		return mf_merr(
		    c, path,
		    "\"%s\": expected an environment variable name of upper-case letters, "
		    "digits and '_', not starting with a digit, at most %d bytes (e.g. "
		    "OPENAI_API_KEY)",
		    cdn_printable_str(sh, sizeof(sh), s, CDN_TEXT_ELLIPSIS),
		    MANIFEST_MAX_SECRET_NAME);
	const char *why = secret_name_reserved(s);
	if (why)
		return mf_merr(c, path, "\"%s\" cannot be a secret: %s", s, why);
	return 0;
}

int mf_check_extension(struct mctx *c, const char *path, const char *s, char *norm, size_t cap)
{
	(void)norm;
	(void)cap;
	size_t n = strlen(s);
	bool ok = n >= 1 && n <= MANIFEST_MAX_EXTENSION;
	for (size_t i = 0; ok && i < n; i++)
		ok = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9');
	char sh[SHOWN_MAX + 4];
	if (!ok)
		return mf_merr(
		    c, path,
		    "\"%s\": expected an extension of lowercase letters and digits without "
		    "the dot, at most %d bytes (e.g. \"json\")",
		    cdn_printable_str(sh, sizeof(sh), s, CDN_TEXT_ELLIPSIS),
		    MANIFEST_MAX_EXTENSION);
	return 0;
}

/* Egress names go through the policy's own normaliser, so a manifest and a
 * policy agree on what a name means (case, trailing dot, IDN, "*."). */
int mf_check_domain(struct mctx *c, const char *path, const char *s, char *norm, size_t cap)
{
	struct cdn_err e = { 0 };
	bool wild;
	if (egress_rule_name_normalize(s, norm, cap, &wild, &e) < 0)
		return mf_merr(c, path, "%s", e.msg);
	return 0;
}
