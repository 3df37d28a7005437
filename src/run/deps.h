/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Declared dependencies (docs/deps.md). An agent's manifest names a
 * lockfile ("dependencies": {"node": "package-lock.json"} or {"python":
 * "requirements.txt"}); cordon installs it once, in a build sandbox whose
 * only network is the `registries` egress category (GET and HEAD to the
 * package registries), and keeps the result as a read-only layer named by
 * its key:
 *
 *   key = sha256("cordon-deps-2\0" runtime "\0" runtime version "\0"
 *                platform "\0" then, for each input file copied into the
 *                build: name "\0" length "\0" bytes)
 *
 * Every later run of any agent with the same lockfile, runtime and
 * platform gets that layer bound read-only, with no network for it and no
 * install time: node's at /node_modules (which require() and import find
 * from anywhere below /, /agent included) and the whole layer at /deps;
 * python's at /deps/python, on PYTHONPATH.
 */
#ifndef CORDON_RUN_DEPS_H
#define CORDON_RUN_DEPS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "store/store.h"

struct agent_manifest;

#define DEPS_MAX_LOCKFILE (16u << 20)	     /* bytes of a lockfile or package.json */
#define DEPS_BUILD_TIMEOUT_MS (15 * 60 * 1000) /* one build, wall clock */
#define DEPS_BUILD_MEM (2ull << 30)	     /* the build sandbox's memory */
#define DEPS_BUILD_PIDS 1024
#define DEPS_BUILD_TMP (1ull << 30)	     /* its /tmp: npm's cache */
#define DEPS_LOG_TAIL 2048		     /* bytes of a failed build's output quoted */
#define DEPS_KEY_VERSION "cordon-deps-2"
#define DEPS_REQ_MAX 10000	     /* packages in a requirements.txt */
#define DEPS_REQ_NAME_MAX 128	     /* bytes of a package's name */
#define DEPS_REQ_VERSION_MAX 64	     /* bytes of its version */
#define DEPS_REQ_HASHES_MAX 32	     /* --hash= of one package */
#define DEPS_LOCK_ENTRIES_MAX 100000 /* packages in a package-lock.json */

/* The operator's registries, from the environment (cordon serve sets
 * them from its config's deps section): CORDON_NPM_REGISTRY (default
 * https://registry.npmjs.org/) and CORDON_PYTHON_INDEX (default
 * https://pypi.org/simple). */
#define DEPS_ENV_NPM "CORDON_NPM_REGISTRY"
#define DEPS_ENV_PYTHON "CORDON_PYTHON_INDEX"

/* Checks url (http[s]://HOST[:PORT][/PATH], no credentials) and sets the
 * variable var to it, for this process and the runs it starts: cordon
 * serve's and cordon worker's deps.npm_registry and deps.python_index. */
int deps_registry_setenv(const char *var, const char *url, struct cdn_err *err);

struct deps_options {
	/* --allow-private entries: a registry on a private or loopback
	 * address (a mirror; a test's stand-in). */
	const char *const *allow_private;
	size_t n_allow_private;
	const char *hosts_file;	 /* extra hosts for the build's resolver */
	const char *upstream_ca; /* extra CA for the registries' HTTPS */
	unsigned allow_degraded; /* SANDBOX_PROT_* bits */
	int log_fd;		 /* the build's output goes here; -1: kept for errors only */
	bool no_build;		 /* a missing layer is an error, not a build */
};

struct deps_layer {
	char key[STORE_HASH_HEX + 1];
	char runtime[8];	       /* "node", "python" */
	char runtime_version[64];      /* "v20.20.2", "Python 3.11.2" */
	char platform[48];	       /* "linux-x86_64" */
	char lockfile[256];	       /* the manifest's path */
	char lockfile_sha256[STORE_HASH_HEX + 1];
	char path[4096];	       /* <state>/deps/<key> */
	bool built;		       /* built by this call */
	uint64_t build_ms;
	uint64_t files, bytes;	       /* of a layer built by this call */
};

/* The runtime version a sandbox would run (its PATH's node or python3,
 * asked on the host, which the sandbox shares /usr with), remembered per
 * process. */
int deps_runtime_version(const char *runtime, char *out, size_t cap, struct cdn_err *err);

/* A file copied into a build: every byte of it is in the key. */
struct deps_input {
	const char *name; /* its name in the build's /workspace */
	const char *data;
	size_t len;
};

/* The key of (runtime, the build's inputs) on this machine, the lockfile
 * first; fills key, runtime, runtime_version, platform, lockfile_sha256. */
int deps_layer_key(const char *runtime, const struct deps_input *in, size_t n_in,
		   struct deps_layer *out, struct cdn_err *err);

/* requirements.txt as cordon hands it to pip (deps_inputs.c): only
 * "name==version" lines (PEP 503 names, exact versions), each with
 * optional --hash=sha256:HEX; comments and blank lines dropped; any option
 * line, URL, path, marker or extra refused, naming the line. */
int deps_requirements_normalize(const char *in, size_t len, char **out, size_t *out_len,
				struct cdn_err *err);

/* Refuses a package-lock.json with a package whose "resolved" is not on
 * registry (or registry.npmjs.org, which npm maps to it) or that lacks a
 * sha512 "integrity"; lockfileVersion 2 or 3 ("packages"). */
int deps_npm_lock_check(const char *lock, size_t len, const char *registry, struct cdn_err *err);

/*
 * The layer of the agent whose stored tree is `tree` and manifest `m`
 * (which declares dependencies): found by its key, else built (unless
 * o->no_build), one build per key at a time across processes. With hold,
 * *hold is an fd holding a shared lock on the layer (its deps/<key>.lock)
 * for as long as the caller keeps it open: `cordon deps gc` removes no
 * layer a run holds.
 */
int deps_resolve(struct store *s, const char *tree, const struct agent_manifest *m,
		 const struct deps_options *o, struct deps_layer *out, int *hold,
		 struct cdn_err *err);

/* The record of a layer for result.json and the API:
 * {"sha256", "runtime", "runtime_version", "platform", "lockfile",
 *  "lockfile_sha256", "built", "build_ms"}. */
json_t *deps_layer_json(const struct deps_layer *l);

/* The layer an agent's stored tree declares, without building it:
 * *declares false when its agent.json has no dependencies (out is then
 * empty); out->path "" when the layer is not built on this host. */
int deps_tree_layer(struct store *s, const char *tree, struct deps_layer *out, bool *declares,
		    struct cdn_err *err);

/* The keys every registered agent version with dependencies uses, on
 * this machine (each agent.json and lockfile read from its stored tree);
 * a version whose lockfile cannot be read is skipped and counted. */
int deps_used_keys(struct store *s, char (**keys)[STORE_HASH_HEX + 1], size_t *n,
		   size_t *unreadable, struct cdn_err *err);

#endif
