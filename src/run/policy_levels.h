/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The levels of a run's egress policy (docs/policy.md, "Levels"):
 *
 *   operator   --policy FILE, else STATE/policy.yaml, else the built-in
 *              policy; with the operator's --allow-private exceptions
 *   workspace  STATE/policies/WS.yaml (cordon serve's PUT /v1/policy), if
 *              there is one: it may only narrow the operator's
 *              (egress_policy_parse_workspace refuses enforce, private,
 *              approvals and limits above the operator's)
 *   agent      the manifest's egress section, narrowing the result
 *
 * The run (run.c) and the API's view of the policy (serve.c) both read the
 * levels through this file, so what GET /v1/policy shows is what runs get.
 */
#ifndef CORDON_RUN_POLICY_LEVELS_H
#define CORDON_RUN_POLICY_LEVELS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "base/err.h"
#include "egress/policy.h"
#include "store/store.h"

struct run_policy_levels {
	struct egress_policy *operator_policy;
	bool operator_builtin;		 /* no file: the built-in policy */
	char operator_path[PATH_MAX];	 /* "" when built-in */
	struct egress_policy *workspace; /* NULL: the workspace has none */
	char workspace_path[PATH_MAX];	 /* where it is, or would be */
	struct egress_policy *effective; /* operator narrowed by workspace */
};

/*
 * Loads the operator's and the workspace's levels and narrows the first by
 * the second. operator_path NULL: STATE/policy.yaml if it exists, else the
 * built-in policy. A workspace policy that does not load (a key that is
 * the operator's, a limit above the operator's, a syntax error) is an
 * error: the run fails closed rather than running under a policy nobody
 * meant. `dropped`, when given, hears each workspace domain the operator's
 * policy does not allow (it has no effect).
 */
int run_policy_levels_load(struct store *s, const char *ws, const char *operator_path,
			   const char *const *allow_private, size_t n_allow_private,
			   struct run_policy_levels *out,
			   void (*dropped)(void *ctx, const char *domain), void *ctx,
			   struct cdn_err *err);

/* The two steps of run_policy_levels_load. The first fills the operator's
 * level (and effective, the same policy for now); the second reads the
 * workspace's file, when there is one, and narrows. */
int run_policy_levels_operator(struct store *s, const char *operator_path,
			       const char *const *allow_private, size_t n_allow_private,
			       struct run_policy_levels *out, struct cdn_err *err);
int run_policy_levels_workspace(struct store *s, const char *ws, struct run_policy_levels *l,
				void (*dropped)(void *ctx, const char *domain), void *ctx,
				struct cdn_err *err);

/* Hands out the effective policy (the caller frees it) and clears the rest. */
struct egress_policy *run_policy_levels_take(struct run_policy_levels *l);

void run_policy_levels_clear(struct run_policy_levels *l);

#endif
