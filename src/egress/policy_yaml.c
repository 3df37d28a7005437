/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The egress policy's YAML, loaded as every cordon YAML file is (base/yaml.h),
 * with errors that name the file and line (policy_schema.c then walks the
 * tree against the schema).
 */
#include "egress/policy.h"
#include "egress/policy_internal.h"

#include <errno.h>
#include <stdarg.h>

/* "policy.yaml:7: domains[0]: unknown key 'metods' (...)" */
int policy_perr(void *ctx, int line, const char *path, const char *fmt, ...)
{
	struct pctx *c = ctx;
	va_list ap;
	va_start(ap, fmt);
	int r = cdn_yaml_verr(&c->y, line, path, fmt, ap);
	va_end(ap);
	return r;
}

int policy_tree_load(struct pctx *c, const char *yaml, size_t len, struct cdn_ynode *root)
{
	int r = cdn_yaml_load(&c->y, yaml, len, EGRESS_MAX_POLICY_DEPTH, root);
	if (r == -ENODATA)
		r = policy_perr(c, 1, "", "the policy is empty; it needs at least 'version: 1'");
	return r;
}
