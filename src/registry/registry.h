/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The registry: agents, capabilities and envs, each versioned by content.
 *
 * Registering snapshots the bytes (the store's content-addressed trees) and
 * records a content hash: for agents and capabilities the tree hash (sorted
 * paths, modes and bytes); for envs the sha256 of the canonical JSON of the
 * variables (sorted keys). Registering changed bytes makes a new version;
 * the same bytes again change nothing.
 */
#ifndef CORDON_REGISTRY_H
#define CORDON_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>

#include "base/err.h"
#include "registry/manifest.h"
#include "store/store.h"

#define REGISTRY_MAX_ENV_VARS 256
#define REGISTRY_MAX_ENV_VALUE 4096

struct registry_result {
	char name[STORE_MAX_NAME + 1];
	unsigned version;
	char hash[STORE_HASH_HEX + 1];
	bool created; /* a new version (false: same bytes as the latest) */
};

/* Validates DIR/agent.json and snapshots DIR. */
int registry_agent_register(struct store *s, const char *ws, const char *dir,
			    struct registry_result *res, struct cdn_err *err);

int registry_capability_register(struct store *s, const char *ws, const char *name,
				 const char *dir, struct registry_result *res, struct cdn_err *err);

/* vars: "K=V" strings. A name that looks like a secret (vault_name_looks_
 * secret) is refused with a hint to use `cordon secret set`. */
int registry_env_register(struct store *s, const char *ws, const char *name,
			  const char *const *vars, size_t n, struct registry_result *res,
			  struct cdn_err *err);

/* vars "K=V" into a JSON object, each checked as an env's (above); what
 * names the owner in errors; service: the hint for a name that looks like
 * a secret says --secret (a service's) instead of required_secrets. */
int registry_env_vars(const char *what, bool service, const char *const *vars, size_t n,
		      struct json_t **out, struct cdn_err *err);

/* A new service (docs/services.md): sv names the workspace, name, agent,
 * input and created_by; vars ("K=V", --env) and secrets (vault names,
 * --secret) are checked, each secret must be in the workspace's vault, and
 * then store_service_new creates it. */
int registry_service_create(struct store *s, struct store_service *sv, const char *const *vars,
			    size_t n_vars, const char *const *secrets, size_t n_secrets,
			    struct cdn_err *err);

int registry_grant(struct store *s, const char *ws, const char *agent, const char *capability,
		   struct cdn_err *err);

/* A grant to call: AGENT may call CALLEE (a registered agent's name; every
 * version) through call_agent, when its manifest also declares the call.
 * Kept as a grant of the pseudo-capability "call:CALLEE" (REGISTRY_CALL_PREFIX),
 * which no capability name can be (':' is not in a store name). */
#define REGISTRY_CALL_PREFIX "call:"
int registry_grant_call(struct store *s, const char *ws, const char *agent, const char *callee,
			struct cdn_err *err);
bool registry_call_granted(struct store *s, const char *ws, const char *agent,
			   const char *callee);

/*
 * An agent to run. `ref` is a directory (anything with a '/'; a bare word
 * that names no registered agent but an existing directory) run
 * unregistered, hashed and snapshotted the same way (version 0), or
 * NAME[@VERSION] from the registry.
 */
struct resolved_agent {
	struct agent_manifest *manifest;
	char name[STORE_MAX_NAME + 1];
	unsigned version; /* 0: unregistered directory */
	char hash[STORE_HASH_HEX + 1];
	char tree_path[4096]; /* read-only checkout of exactly those bytes */
};

int registry_resolve_agent(struct store *s, const char *ws, const char *ref,
			   struct resolved_agent *out, struct cdn_err *err);
void registry_resolved_clear(struct resolved_agent *a);

#endif
