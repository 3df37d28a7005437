/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Profiles: named starting points for a sandbox. A profile decides the
 * network mode and whether, and how, a repository is mounted; every other
 * option still applies on top. docs/profiles.md documents the table.
 */
#include <errno.h>
#include <string.h>

#include "base/cleanup.h"
#include "sandbox/sandbox.h"

#define REPO_DST "/repo"

static const struct sandbox_profile profiles[] = {
	{ "offline", "no network, no repository; a scratch /workspace only", SANDBOX_NET_NONE,
	  SANDBOX_REPO_NONE },
	{ "repo-read", "no network; the repository read-only at /repo", SANDBOX_NET_NONE,
	  SANDBOX_REPO_RO },
	{ "repo-write", "no network; the repository read-write at /repo", SANDBOX_NET_NONE,
	  SANDBOX_REPO_RW },
	{ "deployment",
	  "egress through the filtering proxy only; the repository read-only at /repo",
	  SANDBOX_NET_PROXY, SANDBOX_REPO_RO },
};

const struct sandbox_profile *sandbox_profile_find(const char *name)
{
	for (size_t i = 0; i < CDN_ARRAY_SIZE(profiles); i++)
		if (strcmp(profiles[i].name, name) == 0)
			return &profiles[i];
	return NULL;
}

const struct sandbox_profile *sandbox_profile_at(size_t i)
{
	return i < CDN_ARRAY_SIZE(profiles) ? &profiles[i] : NULL;
}

int sandbox_apply_profile(struct sandbox_config *cfg, const struct sandbox_profile *p,
			  const char *repo_dir, struct cdn_err *err)
{
	cfg->net = p->net;
	if (p->repo == SANDBOX_REPO_NONE)
		return 0;
	if (!repo_dir)
		return cdn_err_msg(err, EINVAL, "profile %s: needs a repository (--repo DIR)",
				   p->name);
	int r = sandbox_config_add_bind(cfg, repo_dir, REPO_DST, p->repo == SANDBOX_REPO_RW, err);
	if (r < 0)
		return r;
	/* The repository belongs to a host user the sandbox's user is not,
	 * and git refuses such a directory ("dubious ownership"). Trust the
	 * bound repository, and only it, through git's environment config. */
	static const char *const git_env[] = { "GIT_CONFIG_COUNT=1",
					       "GIT_CONFIG_KEY_0=safe.directory",
					       ("GIT_CONFIG_VALUE_0=" REPO_DST) };
	for (size_t i = 0; i < CDN_ARRAY_SIZE(git_env); i++)
		if ((r = sandbox_config_add_env(cfg, git_env[i], err)) < 0)
			return r;
	cfg->cwd = REPO_DST;
	return 0;
}
