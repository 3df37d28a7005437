/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent.json: what an agent is and what it may use (docs/agent.md).
 *
 * Parsed strictly with jansson: unknown keys, wrong types, out-of-range
 * values and missing required fields are errors that name the field
 * ("agent.json: limits.mem: expected a size such as \"512m\"").
 */
#ifndef CORDON_REGISTRY_MANIFEST_H
#define CORDON_REGISTRY_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "egress/policy.h"
#include "store/store.h"

#define MANIFEST_MAX_BYTES (64 * 1024)
#define MANIFEST_MAX_ARGS 64
#define MANIFEST_MAX_ARG 4096
#define MANIFEST_MAX_LIST 64 /* domains, rules, secrets, capabilities, extensions */
#define MANIFEST_MAX_VERSION 32
#define MANIFEST_MAX_DESCRIPTION 1024
#define MANIFEST_DEFAULT_TIMEOUT_S 30
#define MANIFEST_MAX_TIMEOUT_S 86400

/* Further bounds, each documented in docs/agent.md. */
#define MANIFEST_MAX_NAME 64	     /* store names: name, env, capabilities */
#define MANIFEST_MAX_HEALTH_PATH 256
#define MANIFEST_MAX_SECRET_NAME 64  /* [A-Z_][A-Z0-9_]{0,63} */
#define MANIFEST_MIN_MEM (1ULL << 20) /* limits.mem: 1 MiB .. 1 TiB */
#define MANIFEST_MAX_MEM (1ULL << 40)
#define MANIFEST_MAX_PIDS 65536	     /* limits.pids: 1 .. this */
#define MANIFEST_MIN_CPU_MILLICORES 10	/* limits.cpu: 0.01 .. 4096 cores, */
#define MANIFEST_MAX_CPU_MILLICORES 4096000 /* at most 4 decimals */
#define MANIFEST_CPU_DECIMALS 4
#define MANIFEST_MAX_OUTPUT_FILES 1000		     /* outputs.max_files: 1 .. this */
#define MANIFEST_MAX_OUTPUT_BYTES (4ULL << 30)	     /* outputs sizes: 1 byte .. 4 GiB */
#define MANIFEST_MAX_EXTENSION 16		     /* outputs.extensions: [a-z0-9]{1,16} */
#define MANIFEST_MAX_LOCKFILE 255		     /* dependencies: the lockfile's path */

struct agent_outputs {
	bool set; /* an "outputs" object was given */
	uint32_t max_files;	  /* 0: the operator's */
	uint64_t max_file_bytes;  /* 0: the operator's */
	uint64_t max_total_bytes; /* 0: the operator's */
	char **extensions;	  /* NULL: the operator's list */
	size_t n_extensions;
};

/* Where a sealed secret is swapped in besides the credential headers
 * (Authorization, and headers named for a key, token, secret, password,
 * credential, signature or auth): every header, the request target, the
 * body. Each lets the agent put the value where the scope may keep it and
 * hand it back (docs/vault.md). */
enum {
	MANIFEST_SEAL_IN_HEADERS = 1u << 0,
	MANIFEST_SEAL_IN_QUERY = 1u << 1,
	MANIFEST_SEAL_IN_BODY = 1u << 2,
};

struct agent_manifest {
	char name[65];		 /* store name rules */
	char version[MANIFEST_MAX_VERSION + 1]; /* free-form label: [A-Za-z0-9._+-] */
	char *description;	 /* may be NULL */

	char **entrypoint; /* NULL-terminated argv, at least one element */
	size_t n_entrypoint;
	char **setup; /* NULL-terminated argv, or NULL */
	size_t n_setup;

	uint64_t mem_bytes;	 /* 0: the operator's default */
	uint64_t pids;		 /* 0: the operator's default */
	uint64_t cpu_millicores; /* 0: no quota */
	uint64_t timeout_s;	 /* MANIFEST_DEFAULT_TIMEOUT_S when absent */

	char profile[16]; /* "offline" (default) or "deployment" (network through the proxy) */

	/*
	 * Egress: can only narrow the operator's policy (egress_policy_narrow).
	 * Set only when the profile is "deployment".
	 *
	 * egress_domains is NULL-terminated, each name unique after
	 * normalisation. Each of egress_rules narrows one of those domains
	 * (rule.name is that domain, normalised; no domain has two rules)
	 * and encodes "not said" as "no narrowing":
	 *   n_ports 0           any port the operator allows
	 *   methods EGRESS_M_ALL any method the operator allows
	 *   rpm 0               no limit beyond the operator's
	 *   approval false      as the operator says ("none" cannot lift a hold)
	 *   inspect false       as the operator says
	 * category is EGRESS_CAT_USER, group "agent" and line 0: the result
	 * of narrowing takes these from the operator's rule.
	 */
	bool has_egress;
	char **egress_domains; /* exact names or "*." wildcards, normalised */
	size_t n_egress_domains;
	struct egress_rule *egress_rules; /* per-domain narrowing: ports, methods, rpm, approval */
	size_t n_egress_rules;

	/*
	 * egress.secrets: {"NAME": ["domain", ...]} or {"NAME": {"domains":
	 * [...], "raw": true}}. Where each declared secret may be sent;
	 * everywhere else the proxy blocks a request that carries it.
	 * secret_scope_names[i] goes with the NULL-terminated list
	 * secret_scope_domains[i] (normalised like egress domains) and
	 * secret_scope_raw[i]. A scoped secret is sealed unless raw: the
	 * sandbox gets a placeholder, the proxy swaps in the value on the way
	 * to the scope. A secret with no entry may be sent nowhere, except the
	 * conventional LLM keys, which may go to their provider
	 * (manifest_default_secret_domains), sealed.
	 */
	char **secret_scope_names;
	char ***secret_scope_domains;
	bool *secret_scope_raw;
	/* Where in a request to its scope a sealed secret is swapped in, over
	 * the credential headers it always is (MANIFEST_SEAL_IN_*; 0: only
	 * those). Long form: "in": ["headers", "query", "body"]. */
	unsigned *secret_scope_in;
	size_t n_secret_scopes;

	char **required_secrets; /* environment variable names, e.g. OPENAI_API_KEY; */
	size_t n_required_secrets; /* NULL-terminated, like every list here */
	char **capabilities;
	size_t n_capabilities;
	char env[65]; /* "" when none */
	/* "calls": agents it may call (call_agent), each NAME or NAME@VERSION
	 * as written, one per agent; NULL-terminated, NULL when none. */
	char **calls;
	size_t n_calls;

	struct agent_outputs outputs;

	/* Workers (docs/deploy.md): how many more attempts a run lost with
	 * its worker gets ("retry": {"on_lost": true, "max": N}; 0: none, the
	 * default), and the labels a worker needs to take its runs (canonical
	 * JSON, "" for none). */
	unsigned retry_on_lost;
	/* "health" (docs/services.md): an HTTP GET of path on the sandbox's
	 * own 127.0.0.1:port every interval_s; failures in a row end the run.
	 * port 0: none. */
	struct {
		unsigned port, interval_s, timeout_s, failures;
		char path[MANIFEST_MAX_HEALTH_PATH + 1];
	} health;
	char labels[STORE_LABELS_JSON_MAX + 1];

	/* "dependencies" (docs/deps.md): the runtime ("node" or "python",
	 * "" for none) and its lockfile, a path inside the agent's directory. */
	char deps_runtime[8];
	char deps_lockfile[MANIFEST_MAX_LOCKFILE + 1];
};

/* `source` names the document in errors ("agent.json"). On error *out is
 * left alone and nothing is allocated. */
int manifest_parse(const char *json, size_t len, const char *source, struct agent_manifest **out,
		   struct cdn_err *err);

/* Reads DIR/agent.json (at most MANIFEST_MAX_BYTES) and parses it. The
 * manifest must be a regular file: a symbolic link is refused, so what is
 * validated is the file in the agent's directory and nothing outside it. */
int manifest_load_dir(const char *dir, struct agent_manifest **out, struct cdn_err *err);

/* Frees m and everything it holds; NULL is fine, and so is a struct that
 * was only partly filled. */
void manifest_free(struct agent_manifest *m);

/* The provider domains a conventional LLM key (OPENAI_API_KEY,
 * ANTHROPIC_API_KEY, GEMINI_API_KEY, ...) may be sent to, NULL-terminated;
 * NULL for any other name. */
const char *const *manifest_default_secret_domains(const char *secret);

/* A call reference NAME or NAME@VERSION (version > 0): 0 with name and
 * *version (0: the latest), or -EINVAL. */
int manifest_call_ref_parse(const char *ref, char name[MANIFEST_MAX_NAME + 1],
			    unsigned *version);

/* Whether m declares a call of ref (NAME, or NAME@VERSION that must be
 * the declared version): 0 with the agent's name and the declared
 * *version (0: the latest at call time); -ENOENT when not declared,
 * -EINVAL when ref is malformed. */
int manifest_call_find(const struct agent_manifest *m, const char *ref,
		       char name[MANIFEST_MAX_NAME + 1], unsigned *version);

/* The network the agent needs: true for "deployment" or any egress. */
bool manifest_wants_network(const struct agent_manifest *m);

#endif
