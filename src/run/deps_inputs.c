/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The checks a dependency build's inputs pass before any installer sees
 * them (docs/deps.md, "What the build accepts"). Both files are the
 * agent author's, so untrusted: pure functions of their bytes, fuzzed by
 * tests/fuzz/fuzz_deps.c.
 *
 * requirements.txt: pip reads option lines inside it, and they override
 * its command line: "--no-binary PKG" there undoes --only-binary=:all:,
 * and pip then builds PKG from source, running the sdist's build backend
 * (arbitrary code) in the build. So cordon reads the file itself and
 * hands pip one it wrote: only "name==version" lines, each with optional
 * "--hash=sha256:HEX", nothing pip could read as an option, a URL, a path
 * or another file.
 *
 * package-lock.json: every package must come from the configured registry
 * and carry its sha512 `integrity`, which npm checks against the bytes it
 * fetched, so the layer holds what the lockfile names.
 */
#define _GNU_SOURCE
#include "run/deps.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cleanup.h"
#include "base/text.h"

#define REQ_SHOWN 48 /* bytes of an offending token quoted */

static bool name_char(char c)
{
	return isalnum((unsigned char)c) || c == '-' || c == '_' || c == '.';
}

/* PEP 508 names: letters and digits, with '-', '_' or '.' inside; written
 * out normalized (PEP 503: lower case, each run of "-_." one '-'). */
static bool req_name(const char *s, size_t n, char *out, size_t cap)
{
	if (n == 0 || n > DEPS_REQ_NAME_MAX || n >= cap || !isalnum((unsigned char)s[0]) ||
	    !isalnum((unsigned char)s[n - 1]))
		return false;
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (!name_char(s[i]))
			return false;
		if (isalnum((unsigned char)s[i]))
			out[o++] = (char)tolower((unsigned char)s[i]);
		else if (o > 0 && out[o - 1] != '-') /* s[0] is alnum: o > 0 */
			out[o++] = '-';
	}
	out[o] = '\0';
	return true;
}

/* A PEP 440 version's characters, no wildcard ("==1.*" is a range, not
 * a pin), beginning and ending with a letter or digit. */
static bool req_version(const char *s, size_t n)
{
	if (n == 0 || n > DEPS_REQ_VERSION_MAX || !isalnum((unsigned char)s[0]) ||
	    !isalnum((unsigned char)s[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr(".!+_-", s[i]))
			return false;
	return true;
}

static int req_err(struct cdn_err *err, unsigned line, const char *tok, size_t n, const char *why)
{
	char raw[REQ_SHOWN + 1], shown[REQ_SHOWN * 4 + 8];
	snprintf(raw, sizeof(raw), "%.*s", (int)(n < REQ_SHOWN ? n : REQ_SHOWN), tok);
	cdn_printable_str(shown, sizeof(shown), raw, n > REQ_SHOWN ? CDN_TEXT_ELLIPSIS : 0);
	return cdn_err_msg(err, EINVAL, "dependencies: requirements.txt line %u: \"%s\": %s", line,
			   shown, why);
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

struct req_out {
	char *buf;
	size_t len, cap;
	char (*names)[DEPS_REQ_NAME_MAX + 1];
	size_t n_names, cap_names;
};

static int out_add(struct req_out *o, const char *s, size_t n)
{
	if (o->len + n + 1 > o->cap) {
		size_t cap = (o->cap ? o->cap * 2 : 4096) + n;
		char *b = realloc(o->buf, cap);
		if (!b)
			return -ENOMEM;
		o->buf = b;
		o->cap = cap;
	}
	memcpy(o->buf + o->len, s, n);
	o->len += n;
	o->buf[o->len] = '\0';
	return 0;
}

/* One logical line (continuations joined, comment cut), its tokens
 * separated by blanks. */
static int req_line(struct req_out *o, unsigned lineno, const char *p, size_t n,
		    struct cdn_err *err)
{
	size_t i = 0;
	while (i < n && is_blank(p[i]))
		i++;
	if (i == n)
		return 0;
	const char *tok = p + i;
	size_t tl = 0;
	while (i + tl < n && !is_blank(p[i + tl]))
		tl++;
	if (tok[0] == '-')
		return req_err(err, lineno, tok, tl,
			       "an option line; cordon passes none to pip (only NAME==VERSION "
			       "lines, each with optional --hash=sha256:HEX)");
	const char *eq = memmem(tok, tl, "==", 2);
	if (!eq)
		return req_err(err, lineno, tok, tl,
			       "expected NAME==VERSION (every package pinned; no URL, path, "
			       "range or marker)");
	char name[DEPS_REQ_NAME_MAX + 1];
	const char *ver = eq + 2;
	size_t vl = tl - (size_t)(ver - tok);
	if (!req_name(tok, (size_t)(eq - tok), name, sizeof(name)))
		return req_err(err, lineno, tok, tl,
			       "not a package name (letters, digits and \"-_.\"; extras, URLs "
			       "and paths are refused)");
	if (!req_version(ver, vl))
		return req_err(err, lineno, tok, tl,
			       "not an exact version (no '*', '===', ';' marker or space)");
	for (size_t k = 0; k < o->n_names; k++)
		if (strcmp(o->names[k], name) == 0)
			return req_err(err, lineno, tok, tl, "the package is pinned twice");
	if (o->n_names >= DEPS_REQ_MAX)
		return req_err(err, lineno, tok, tl, "more packages than cordon accepts (10000)");
	if (o->n_names == o->cap_names) {
		size_t cap = o->cap_names ? o->cap_names * 2 : 64;
		void *nn = realloc(o->names, cap * sizeof(*o->names));
		if (!nn)
			return cdn_err_set(err, ENOMEM, "dependencies: requirements.txt");
		o->names = nn;
		o->cap_names = cap;
	}
	snprintf(o->names[o->n_names++], DEPS_REQ_NAME_MAX + 1, "%s", name);
	int r = out_add(o, name, strlen(name)) ?: out_add(o, "==", 2) ?: out_add(o, ver, vl);
	i += tl;
	unsigned hashes = 0;
	while (r == 0) {
		while (i < n && is_blank(p[i]))
			i++;
		if (i == n)
			break;
		tok = p + i;
		for (tl = 0; i + tl < n && !is_blank(p[i + tl]); tl++)
			;
		static const char pre[] = "--hash=sha256:";
		const size_t pl = sizeof(pre) - 1;
		bool hex = tl == pl + 64;
		for (size_t k = pl; hex && k < tl; k++)
			hex = isxdigit((unsigned char)tok[k]);
		if (tl < pl || strncmp(tok, pre, pl) != 0 || !hex)
			return req_err(err, lineno, tok, tl,
				       "after NAME==VERSION only --hash=sha256:HEX (64 hex "
				       "digits) is accepted");
		if (++hashes > DEPS_REQ_HASHES_MAX)
			return req_err(err, lineno, tok, tl, "too many hashes for one package");
		char h[sizeof(pre) + 64];
		for (size_t k = 0; k < tl; k++)
			h[k] = k < pl ? tok[k] : (char)tolower((unsigned char)tok[k]);
		r = out_add(o, " ", 1) ?: out_add(o, h, tl);
		i += tl;
	}
	if (r == 0)
		r = out_add(o, "\n", 1);
	return r < 0 ? cdn_err_set(err, -r, "dependencies: requirements.txt") : 0;
}

int deps_requirements_normalize(const char *in, size_t len, char **out, size_t *out_len,
				struct cdn_err *err)
{
	*out = NULL;
	*out_len = 0;
	if (memchr(in, '\0', len))
		return cdn_err_msg(err, EINVAL, "dependencies: requirements.txt holds a NUL byte");
	struct req_out o = { 0 };
	_cleanup_free_ char *line = malloc(len + 1);
	if (!line)
		return cdn_err_set(err, ENOMEM, "dependencies: requirements.txt");
	int r = out_add(&o, "", 0);
	unsigned lineno = 0, first = 1;
	size_t ll = 0;
	for (size_t pos = 0; r == 0 && pos < len;) {
		const char *nl = memchr(in + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (in + pos)) : len - pos;
		const char *p = in + pos;
		pos += n + (nl ? 1 : 0);
		lineno++;
		if (n && p[n - 1] == '\r')
			n--;
		/* A comment: '#' first, or after a blank (pip's rule). */
		for (size_t k = 0; k < n; k++)
			if (p[k] == '#' && (k == 0 || is_blank(p[k - 1]))) {
				n = k;
				break;
			}
		/* "\" at the end joins the next line (pip-compile's hashes). */
		bool cont = n && p[n - 1] == '\\';
		if (ll == 0)
			first = lineno;
		memcpy(line + ll, p, cont ? n - 1 : n);
		ll += cont ? n - 1 : n;
		if (cont && pos < len) {
			line[ll++] = ' ';
			continue;
		}
		r = req_line(&o, first, line, ll, err);
		ll = 0;
	}
	free(o.names);
	if (r < 0) {
		free(o.buf);
		return r;
	}
	*out = o.buf;
	*out_len = o.len;
	return 0;
}

/* ------------------------------------------------------------- npm lock */

static int lock_err(struct cdn_err *err, const char *entry, const char *why)
{
	char shown[96];
	cdn_printable_str(shown, sizeof(shown), entry, CDN_TEXT_ELLIPSIS);
	return cdn_err_msg(err, EINVAL, "dependencies: package-lock.json: \"%s\": %s", shown, why);
}

int deps_npm_lock_check(const char *lock, size_t len, const char *registry, struct cdn_err *err)
{
	json_error_t je;
	json_t *doc = json_loadb(lock, len, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(doc)) {
		json_decref(doc);
		return cdn_err_msg(err, EINVAL, "dependencies: package-lock.json: not a JSON object");
	}
	/* The registry's prefix ends with '/', so http://h:48 does not match
	 * a package on http://h:4873. */
	char prefix[4200];
	snprintf(prefix, sizeof(prefix), "%s%s", registry,
		 registry[0] && registry[strlen(registry) - 1] == '/' ? "" : "/");
	static const char npmjs[] = "https://registry.npmjs.org/";
	json_t *pkgs = json_object_get(doc, "packages");
	int r = 0;
	if (!json_is_object(pkgs))
		r = cdn_err_msg(err, EINVAL,
				"dependencies: package-lock.json: no \"packages\" (lockfileVersion "
				"2 or 3 is needed: npm install with npm 7 or later writes one)");
	else if (json_object_size(pkgs) > DEPS_LOCK_ENTRIES_MAX)
		r = cdn_err_msg(err, EINVAL, "dependencies: package-lock.json: more than %u packages",
				DEPS_LOCK_ENTRIES_MAX);
	const char *k;
	json_t *v;
	json_object_foreach(pkgs, k, v)
	{
		if (r < 0)
			break;
		if (k[0] == '\0') /* the agent's own package.json */
			continue;
		if (!json_is_object(v)) {
			r = lock_err(err, k, "not an object");
			break;
		}
		/* Inside its parent's tarball, which the parent's integrity covers. */
		if (json_is_true(json_object_get(v, "inBundle")))
			continue;
		if (json_is_true(json_object_get(v, "link"))) {
			r = lock_err(err, k, "a link to a local directory is refused");
			break;
		}
		const char *res = json_string_value(json_object_get(v, "resolved"));
		const char *integ = json_string_value(json_object_get(v, "integrity"));
		if (!res || !(strncmp(res, prefix, strlen(prefix)) == 0 ||
			      strncmp(res, npmjs, sizeof(npmjs) - 1) == 0))
			r = lock_err(err, k, "its \"resolved\" is not on the configured npm registry");
		else if (strstr(res, "/../") || strchr(res, '?') || strchr(res, '#'))
			r = lock_err(err, k, "its \"resolved\" is not a plain registry URL");
		else if (!integ || strncmp(integ, "sha512-", 7) != 0)
			r = lock_err(err, k, "no sha512 \"integrity\" (npm checks the bytes against it)");
	}
	json_decref(doc);
	return r;
}
