/* SPDX-License-Identifier: Apache-2.0 */
/* The levels of a run's egress policy (policy_levels.h). */
#include "run/policy_levels.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void run_policy_levels_clear(struct run_policy_levels *l)
{
	if (l->effective != l->operator_policy)
		egress_policy_free(l->effective);
	egress_policy_free(l->operator_policy);
	egress_policy_free(l->workspace);
	memset(l, 0, sizeof(*l));
}

struct egress_policy *run_policy_levels_take(struct run_policy_levels *l)
{
	struct egress_policy *p = l->effective;
	if (p == l->operator_policy)
		l->operator_policy = NULL;
	l->effective = NULL;
	run_policy_levels_clear(l);
	return p;
}

int run_policy_levels_operator(struct store *s, const char *operator_path,
			       const char *const *allow_private, size_t n_allow_private,
			       struct run_policy_levels *out, struct cdn_err *err)
{
	memset(out, 0, sizeof(*out));
	if (operator_path) {
		snprintf(out->operator_path, sizeof(out->operator_path), "%s", operator_path);
	} else if (store_operator_policy_path(s, out->operator_path, sizeof(out->operator_path),
					      NULL) < 0 ||
		   access(out->operator_path, F_OK) != 0) {
		out->operator_path[0] = '\0';
	}
	out->operator_builtin = !out->operator_path[0];
	int r = out->operator_builtin
		    ? egress_policy_default(&out->operator_policy, err)
		    : egress_policy_load(out->operator_path, &out->operator_policy, err);
	for (size_t i = 0; r == 0 && i < n_allow_private; i++)
		r = egress_policy_allow_private(out->operator_policy, allow_private[i], err);
	if (r == 0)
		out->effective = out->operator_policy;
	else
		run_policy_levels_clear(out);
	return r;
}

int run_policy_levels_workspace(struct store *s, const char *ws, struct run_policy_levels *l,
				void (*dropped)(void *ctx, const char *domain), void *ctx,
				struct cdn_err *err)
{
	int r = store_policy_path(s, ws, l->workspace_path, sizeof(l->workspace_path), err);
	if (r < 0 || access(l->workspace_path, F_OK) != 0)
		return r;
	/* Named as the API knows it, not by the server's path. */
	char source[STORE_MAX_NAME + 32];
	(void)store_policy_path(NULL, ws, source, sizeof(source), NULL);
	r = egress_policy_load_workspace(l->workspace_path, source, l->operator_policy,
					 &l->workspace, err);
	if (r < 0)
		return cdn_err_wrap(err, "workspace %s's policy (PUT /v1/policy)", ws);
	struct egress_policy *eff = NULL;
	r = egress_policy_narrow_by(l->operator_policy, l->workspace, &eff, dropped, ctx, err);
	if (r < 0)
		return r;
	if (l->effective != l->operator_policy)
		egress_policy_free(l->effective);
	l->effective = eff;
	return 0;
}

int run_policy_levels_load(struct store *s, const char *ws, const char *operator_path,
			   const char *const *allow_private, size_t n_allow_private,
			   struct run_policy_levels *out,
			   void (*dropped)(void *ctx, const char *domain), void *ctx,
			   struct cdn_err *err)
{
	int r =
	    run_policy_levels_operator(s, operator_path, allow_private, n_allow_private, out, err);
	if (r == 0 && (r = run_policy_levels_workspace(s, ws, out, dropped, ctx, err)) < 0)
		run_policy_levels_clear(out);
	return r;
}
