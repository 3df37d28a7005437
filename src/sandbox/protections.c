/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What protects a sandbox, in words: the names of the protections an
 * operator may lower (--allow-degraded), the parts of Landlock the kernel
 * let us apply, and the one JSON form of it all that `cordon exec
 * --status-json`, result.json and the sandbox.ready event share, so the
 * three cannot disagree about what protected a run.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "base/cleanup.h"
#include "sandbox/internal.h"

static const struct {
	enum sandbox_protection bit;
	const char *name;
} prot_names[] = {
	{ SANDBOX_PROT_LANDLOCK, "landlock" },
	{ SANDBOX_PROT_CGROUP, "cgroup" },
	{ SANDBOX_PROT_SECCOMP, "seccomp" },
};

/*
 * Each part of Landlock, the ABI that brought it, and what holds the line
 * when the kernel is older. Debian 12's own kernel (6.1) has ABI 2, so this
 * table is what such hosts run with; docs/exec.md and SECURITY.md explain
 * each line, and a partial Landlock is reported part by part, never as a
 * whole.
 */
static const struct {
	enum sandbox_landlock_part bit;
	int abi;
	const char *name;
	const char *held_by; /* what still stops it when the part is missing */
} ll_parts[] = {
	{ SANDBOX_LL_FS, 1, "fs", "read-only mounts only" },
	/* ABI 1 refuses every rename or link across directories. */
	{ SANDBOX_LL_FS_REFER, 2, "fs_refer", "refused outright by ABI 1" },
	{ SANDBOX_LL_FS_TRUNCATE, 3, "fs_truncate", "read-only mounts" },
	/* Only loopback, the egress sockets cordon made and the sandbox's own
	 * listeners exist in its network namespace. */
	{ SANDBOX_LL_NET_TCP, 4, "net_tcp", "network namespace" },
	{ SANDBOX_LL_FS_IOCTL_DEV, 5, "fs_ioctl_dev", "minimal /dev and seccomp ioctl rules" },
	/* No process outside the sandbox is visible in its pid namespace,
	 * abstract sockets are per network namespace, and pid 1 ignores
	 * signals sent from inside (child.c). */
	{ SANDBOX_LL_SCOPE, 6, "scope", "pid and network namespaces" },
};

const char *sandbox_protection_name(enum sandbox_protection p)
{
	for (size_t i = 0; i < CDN_ARRAY_SIZE(prot_names); i++)
		if (prot_names[i].bit == p)
			return prot_names[i].name;
	return "unknown";
}

int sandbox_parse_degraded(const char *list, unsigned *bits, struct cdn_err *err)
{
	const char *p = list;
	while (*p) {
		const char *e = strchrnul(p, ',');
		size_t len = (size_t)(e - p);
		bool found = false;
		for (size_t i = 0; i < CDN_ARRAY_SIZE(prot_names); i++) {
			if (strlen(prot_names[i].name) == len &&
			    strncmp(prot_names[i].name, p, len) == 0) {
				*bits |= prot_names[i].bit;
				found = true;
			}
		}
		if (!found)
			return cdn_err_msg(err, EINVAL,
					   "--allow-degraded: unknown protection '%.*s' "
					   "(expected landlock, cgroup or seccomp)",
					   (int)len, p);
		p = *e ? e + 1 : e;
	}
	return 0;
}

unsigned sandbox_landlock_parts_of_abi(int abi)
{
	unsigned parts = 0;
	for (size_t i = 0; i < CDN_ARRAY_SIZE(ll_parts); i++)
		if (abi >= ll_parts[i].abi)
			parts |= ll_parts[i].bit;
	return parts;
}

static json_t *landlock_json(const struct sandbox_protections *p)
{
	json_t *applied = json_array(), *missing = json_object();
	for (size_t i = 0; i < CDN_ARRAY_SIZE(ll_parts); i++) {
		if (p->landlock_parts & ll_parts[i].bit)
			json_array_append_new(applied, json_string(ll_parts[i].name));
		else
			json_object_set_new(missing, ll_parts[i].name,
					    json_string(ll_parts[i].held_by));
	}
	return json_pack("{s:i, s:o, s:o}", "abi", p->landlock_abi, "applied", applied, "missing",
			 missing);
}

json_t *sandbox_protections_json(const struct sandbox_protections *p)
{
	json_t *deg = json_array();
	for (size_t i = 0; i < CDN_ARRAY_SIZE(prot_names); i++)
		if (p->degraded & prot_names[i].bit)
			json_array_append_new(deg, json_string(prot_names[i].name));
	return json_pack("{s:b, s:b, s:i, s:o, s:o, s:b, s:I, s:o, s:s}", "userns", p->userns,
			 "seccomp", p->seccomp, "landlock_abi", p->landlock_abi, "landlock",
			 landlock_json(p), "cgroup",
			 p->cgroup_version ? json_sprintf("v%d", p->cgroup_version) : json_null(),
			 "rootless", p->rootless, "host_uid", (json_int_t)p->host_uid, "degraded",
			 deg, "start", p->warm ? "warm" : "cold");
}
