/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent.json's "dependencies": {"node": "package-lock.json"} or
 * {"python": "requirements.txt"}: the lockfile, inside the agent's
 * directory, from which cordon builds the agent's dependency layer once
 * (docs/deps.md). Parsed here, on its own, so the rest of the manifest
 * does not change with it.
 */
#include "registry/manifest.h"
#include "registry/manifest_internal.h"

#include <stdio.h>
#include <string.h>

#include "base/cleanup.h"

#include "base/text.h"

static const char *const deps_keys[] = { "node", "python" };

/* A path inside the agent's directory: relative, no "." or ".." part, no
 * empty part, printable ASCII without '\\'. The build reads it from the
 * agent's snapshot, so a path that could leave it is refused here. */
static bool lockfile_path_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > MANIFEST_MAX_LOCKFILE || s[0] == '/' || s[n - 1] == '/')
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] <= 0x20 || s[i] >= 0x7f || s[i] == '\\')
			return false;
	for (const char *p = s; *p;) {
		size_t l = strcspn(p, "/");
		if (l == 0 || (l == 1 && p[0] == '.') || (l == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		p += l;
		if (*p == '/')
			p++;
	}
	return true;
}

int mf_parse_dependencies(struct mctx *c, const json_t *v, struct agent_manifest *m)
{
	int rc = mf_check_object(c, v, "dependencies",
				 "an object such as {\"node\": \"package-lock.json\"}", deps_keys,
				 CDN_ARRAY_SIZE(deps_keys));
	if (rc < 0)
		return rc;
	if (json_object_size(v) != 1)
		return mf_merr(c, "dependencies",
			       "expected exactly one runtime, \"node\" or \"python\", with its "
			       "lockfile");
	const char *key = json_object_iter_key(json_object_iter((json_t *)v));
	char path[PATH_LEN];
	mf_path_key(path, sizeof(path), "dependencies", key);
	const char *s = NULL;
	if ((rc = mf_get_string(c, json_object_get(v, key), path,
				"a lockfile path inside the agent's directory", &s)) < 0)
		return rc;
	if (!lockfile_path_ok(s)) {
		char sh[SHOWN_MAX + 4];
		return mf_merr(c, path,
			       "\"%s\": expected a relative path inside the agent's directory "
			       "(no \"..\", no leading '/', at most %d bytes)",
			       cdn_printable_str(sh, sizeof(sh), s, CDN_TEXT_ELLIPSIS),
			       MANIFEST_MAX_LOCKFILE);
	}
	snprintf(m->deps_runtime, sizeof(m->deps_runtime), "%s", key);
	snprintf(m->deps_lockfile, sizeof(m->deps_lockfile), "%s", s);
	return 0;
}
