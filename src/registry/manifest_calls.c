/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent.json's "calls": the agents this agent may call through its run's
 * MCP endpoint (call_agent, docs/mcp.md#calling-another-agent). Each entry
 * is a registered agent's NAME, called at its latest version when the call
 * is made, or NAME@VERSION, pinned. The manifest asks; the operator's
 * grant (cordon grant AGENT --call NAME) allows.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/text.h"
#include "registry/manifest.h"
#include "registry/manifest_internal.h"

int manifest_call_ref_parse(const char *ref, char name[MANIFEST_MAX_NAME + 1], unsigned *version)
{
	const char *at = strchr(ref, '@');
	size_t nl = at ? (size_t)(at - ref) : strlen(ref);
	if (nl == 0 || nl > MANIFEST_MAX_NAME)
		return -EINVAL;
	memcpy(name, ref, nl);
	name[nl] = '\0';
	if (!store_name_ok(name))
		return -EINVAL;
	*version = 0;
	if (!at)
		return 0;
	/* A version is what the registry numbers: 1, 2, ... without a sign,
	 * a leading zero or anything after it. */
	unsigned long v = 0;
	const char *p = at + 1;
	if (*p < '1' || *p > '9' || strlen(p) > 9)
		return -EINVAL;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(*p - '0');
	}
	*version = (unsigned)v;
	return 0;
}

static int check_call(struct mctx *c, const char *path, const char *s, char *norm, size_t cap)
{
	(void)norm;
	(void)cap;
	char name[MANIFEST_MAX_NAME + 1], sh[SHOWN_MAX + 4];
	unsigned v;
	if (manifest_call_ref_parse(s, name, &v) < 0)
		return mf_merr(c, path,
			       "\"%s\": expected a registered agent's name, or NAME@VERSION "
			       "(such as \"summarizer@2\")",
			       cdn_printable_str(sh, sizeof(sh), s, CDN_TEXT_ELLIPSIS));
	return 0;
}

int mf_parse_calls(struct mctx *c, const json_t *v, struct agent_manifest *m)
{
	int rc = mf_get_strv(
	    c, v, "calls", "a list of agents such as [\"summarizer@2\", \"search\"]", 0,
	    MANIFEST_MAX_LIST, true, check_call, MANIFEST_MAX_NAME + 16, &m->calls, &m->n_calls);
	if (rc < 0)
		return rc;
	/* One entry per agent: "search" and "search@2" together would leave
	 * which one a call means to chance. */
	for (size_t i = 0; i < m->n_calls; i++) {
		char a[MANIFEST_MAX_NAME + 1], b[MANIFEST_MAX_NAME + 1];
		unsigned va, vb;
		(void)manifest_call_ref_parse(m->calls[i], a, &va);
		for (size_t k = 0; k < i; k++) {
			(void)manifest_call_ref_parse(m->calls[k], b, &vb);
			if (strcmp(a, b) == 0) {
				char ip[PATH_LEN];
				mf_path_index(ip, sizeof(ip), "calls", i);
				return mf_merr(c, ip, "agent %s is listed already at [%zu]", a, k);
			}
		}
	}
	return 0;
}

int manifest_call_find(const struct agent_manifest *m, const char *ref,
		       char name[MANIFEST_MAX_NAME + 1], unsigned *version)
{
	unsigned asked = 0;
	if (manifest_call_ref_parse(ref, name, &asked) < 0)
		return -EINVAL;
	for (size_t i = 0; i < m->n_calls; i++) {
		char dn[MANIFEST_MAX_NAME + 1];
		unsigned dv = 0;
		if (manifest_call_ref_parse(m->calls[i], dn, &dv) < 0 || strcmp(dn, name) != 0)
			continue;
		/* The manifest fixes the version: the agent may name it
		 * again, never pick another. */
		if (asked && asked != dv)
			return -ENOENT;
		*version = dv;
		return 0;
	}
	return -ENOENT;
}
