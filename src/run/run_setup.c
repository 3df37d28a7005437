/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A run's setup: what is resolved before a sandbox exists. The granted
 * capabilities, the env, the input (canonical JSON), the secrets (sealed or
 * raw, each with where it may go), the redactor, the effective policy and
 * the run directory. Anything missing or malformed stops the run here.
 */
#define _GNU_SOURCE
#include "run/run_internal.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit/audit.h"
#include "base/cleanup.h"
#include "base/text.h"
#include "base/clock.h"
#include "base/file.h"
#include "base/hash.h"
#include "base/openat2.h"
#include "base/random.h"
#include <sodium.h>
#include "egress/engine.h"
#include "egress/tls.h"
#include "egress/policy.h"
#include "registry/registry.h"
#include "mcp/mcp.h"
#include "run/artifacts.h"
#include "run/events.h"
#include "run/netpart.h"
#include "run/policy_levels.h"
#include "run/supervise.h"
#include "sandbox/sandbox.h"
#include "vault/redact.h"
#include "vault/seal.h"

void run_secrets_free(struct secret_set *ss)
{
	for (size_t i = 0; i < ss->n; i++) {
		if (ss->env && ss->env[i]) {
			sodium_memzero(ss->env[i], strlen(ss->env[i]));
			free(ss->env[i]);
		}
		if (ss->values && ss->values[i])
			vault_value_free(ss->values[i], ss->lens[i]);
		if (ss->placeholders && ss->placeholders[i])
			free(ss->placeholders[i]);
	}
	free(ss->domains);
	free(ss->placeholders);
	free(ss->seal_in);
	free(ss->env);
	free(ss->values);
	free(ss->lens);
	memset(ss, 0, sizeof(*ss));
}

/* Where a sealed secret is swapped in, for the record (null: raw). */
static json_t *seal_in_json(unsigned in, bool sealed)
{
	if (!sealed)
		return json_null();
	json_t *a = json_pack("[s]", "credential headers");
	if (a && (in & MANIFEST_SEAL_IN_HEADERS))
		json_array_append_new(a, json_string("headers"));
	if (a && (in & MANIFEST_SEAL_IN_QUERY))
		json_array_append_new(a, json_string("query"));
	if (a && (in & MANIFEST_SEAL_IN_BODY))
		json_array_append_new(a, json_string("body"));
	return a ? a : json_null();
}

/*
 * How secret i reaches the sandbox. A secret that may go somewhere (the
 * manifest's egress.secrets, or an LLM key's provider) in a run with a
 * network is sealed unless the manifest says raw: the sandbox gets a
 * placeholder and the network part swaps the value in on the way to that
 * scope, so no transform of what the agent holds can leak it. A raw
 * secret the network part must recognise in any request: it is refused
 * when too short for that.
 */
static int deliver_secret(struct run_ctx *c, struct secret_set *ss, size_t i, struct cdn_err *err)
{
	const struct agent_manifest *m = c->agent.manifest;
	const char *name = m->required_secrets[i];
	const char *const *doms = manifest_default_secret_domains(name);
	bool raw = false;
	for (size_t q = 0; q < m->n_secret_scopes; q++)
		if (strcmp(m->secret_scope_names[q], name) == 0) {
			doms = (const char *const *)m->secret_scope_domains[q];
			raw = m->secret_scope_raw[q];
			ss->seal_in[i] = m->secret_scope_in ? m->secret_scope_in[q] : 0;
		}
	ss->domains[i] = doms;
	bool network = manifest_wants_network(m);
	const uint8_t *give = ss->values[i];
	if (network && doms && doms[0] && !raw) {
		if (ss->lens[i] > INSPECT_MAX_SECRET_LEN)
			return cdn_err_msg(err, EINVAL,
					   "secret %s is %zu bytes, too long to seal (at most %d); "
					   "declare it raw in egress.secrets",
					   name, ss->lens[i], INSPECT_MAX_SECRET_LEN);
		ss->placeholders[i] = malloc(ss->lens[i] + 1);
		if (!ss->placeholders[i])
			return cdn_err_set(err, ENOMEM, "secrets");
		struct cdn_err serr = { 0 };
		if (seal_placeholder(ss->values[i], ss->lens[i], ss->placeholders[i], &serr) < 0)
			return cdn_err_msg(err, EINVAL,
					   "secret %s cannot be sealed: %s; declare it raw in "
					   "egress.secrets ({\"domains\": [...], \"raw\": true})",
					   name, serr.msg);
		give = (const uint8_t *)ss->placeholders[i];
	} else if (network && ss->lens[i] < INSPECT_MIN_SECRET_LEN) {
		/* The proxy could not tell it from ordinary bytes, so it could
		 * leave in any request: no run rather than a false promise. */
		return cdn_err_msg(err, EINVAL,
				   "secret %s is raw and only %zu bytes long: the proxy needs at least "
				   "%d to recognise it in a request; seal it (an egress.secrets scope "
				   "without \"raw\") or make it longer",
				   name, ss->lens[i], INSPECT_MIN_SECRET_LEN);
	}
	/* What the network part will look for, and how well: result.json's
	 * protections say it (docs/vault.md). */
	const char *how = "none: the run has no network";
	char chunks[160];
	if (network && ss->placeholders[i] && ss->lens[i] >= INSPECT_MIN_SECRET_LEN) {
		how = "sealed: the value never enters the sandbox; the placeholder is blocked "
		      "outside the scope";
		c->n_inspected++;
	} else if (network && ss->placeholders[i]) {
		how = "sealed: the value never enters the sandbox; the placeholder is too short "
		      "to be told from other bytes, and goes unblocked (it is not the secret)";
	} else if (network) {
		size_t chunk = inspect_chunk_len(ss->lens[i]);
		if (chunk == 0)
			return cdn_err_msg(err, E2BIG, "secret %s is too long to inspect (%zu bytes)",
					   name, ss->lens[i]);
		if (chunk == ss->lens[i]) {
			how = "the whole value and its common encodings";
			c->n_inspected++;
		} else {
			snprintf(chunks, sizeof(chunks),
				 "by chunks of %zu bytes: any %zu consecutive bytes of it are found",
				 chunk, 2 * chunk - 1);
			how = chunks;
			c->n_inspected += ss->lens[i] / chunk;
		}
	}
	if (c->n_inspected > INSPECT_MAX_SECRETS)
		return cdn_err_msg(err, E2BIG,
				   "the agent's secrets need %zu inspection entries, more than %d",
				   c->n_inspected, INSPECT_MAX_SECRETS);
	json_t *scope = json_array();
	for (size_t k = 0; scope && doms && doms[k]; k++)
		json_array_append_new(scope, json_string(doms[k]));
	json_object_set_new(c->delivery, name,
			    json_pack("{s:s, s:o, s:s, s:o}", "delivery",
				      ss->placeholders[i] ? "sealed" : "raw", "scope",
				      scope ? scope : json_array(), "inspection", how, "in",
				      seal_in_json(ss->placeholders[i] ? ss->seal_in[i] : 0,
						   ss->placeholders[i] != NULL)));
	size_t nl = strlen(name);
	ss->env[i] = malloc(nl + 1 + ss->lens[i] + 1);
	if (!ss->env[i])
		return cdn_err_set(err, ENOMEM, "secrets");
	memcpy(ss->env[i], name, nl);
	ss->env[i][nl] = '=';
	memcpy(ss->env[i] + nl + 1, give, ss->lens[i]);
	ss->env[i][nl + 1 + ss->lens[i]] = '\0';
	return 0;
}

int run_load_secrets(struct run_ctx *c, struct secret_set *ss, struct cdn_err *err)
{
	const struct agent_manifest *m = c->agent.manifest;
	ss->n = m->n_required_secrets;
	ss->env = calloc(ss->n + 1, sizeof(char *));
	ss->values = calloc(ss->n + 1, sizeof(uint8_t *));
	ss->lens = calloc(ss->n + 1, sizeof(size_t));
	ss->domains = calloc(ss->n + 1, sizeof(*ss->domains));
	ss->placeholders = calloc(ss->n + 1, sizeof(char *));
	ss->seal_in = calloc(ss->n + 1, sizeof(unsigned));
	if (!ss->env || !ss->values || !ss->lens || !ss->domains || !ss->placeholders ||
	    !ss->seal_in)
		return cdn_err_set(err, ENOMEM, "secrets");
	for (size_t i = 0; i < ss->n; i++) {
		const char *name = m->required_secrets[i];
		if (!c->v)
			return cdn_err_msg(err, ENOENT, "secret %s is required but the vault is not open",
					   name);
		int r = vault_get(c->v, c->ws, name, &ss->values[i], &ss->lens[i], err);
		if (r == -ENOENT)
			return cdn_err_msg(err, ENOENT,
					   "the agent needs secret %s, which is not set in workspace "
					   "%s (cordon secret set %s)",
					   name, c->ws, name);
		if (r < 0)
			return r;
		if (memchr(ss->values[i], '\0', ss->lens[i]))
			return cdn_err_msg(err, EINVAL,
					   "secret %s holds a NUL byte and cannot be an environment "
					   "variable",
					   name);
		if ((r = deliver_secret(c, ss, i, err)) < 0)
			return r;
		json_array_append_new(c->secrets, json_string(name));
	}
	return 0;
}

/* The operator's policy, narrowed by the workspace's, narrowed by the
 * agent's egress section: each level can only narrow the one above it
 * (policy_levels.h). */
int run_policy(struct run_ctx *c, struct egress_policy **out, struct cdn_err *err)
{
	struct run_policy_levels lv;
	int r = run_policy_levels_load(c->s, c->ws, c->o->policy_path, c->o->allow_private,
				       c->o->n_allow_private, &lv, NULL, NULL, err);
	if (r < 0)
		return r;
	const struct agent_manifest *m = c->agent.manifest;
	if (!m->has_egress) {
		*out = run_policy_levels_take(&lv);
		return 0;
	}
	r = egress_policy_narrow(lv.effective, (const char *const *)m->egress_domains,
				 m->n_egress_domains, m->egress_rules, m->n_egress_rules, out, NULL,
				 NULL, err);
	run_policy_levels_clear(&lv);
	return r;
}

/* The rule a request to `host` would match: inspected from now on. */
static void inspect_rule_for(struct egress_policy *p, const char *host)
{
	const struct egress_rule *r = egress_policy_match(p, host);
	if (r)
		((struct egress_rule *)r)->inspect = true;
}

/*
 * A sealed secret is swapped in inside requests, so the network part must
 * read the requests to its scope: those domains are TLS-inspected, whatever
 * the policy says (the run CA then vouches for them too).
 */
void run_inspect_sealed_scopes(struct egress_policy *p, const struct secret_set *ss)
{
	for (size_t i = 0; i < ss->n; i++) {
		for (size_t k = 0; ss->placeholders[i] && ss->domains[i] && ss->domains[i][k]; k++) {
			const char *d = ss->domains[i][k];
			if (strncmp(d, "*.", 2) != 0) {
				inspect_rule_for(p, d);
				continue;
			}
			/* Every rule at or below the wildcard, and the rule a name
			 * below it would fall to (a wider wildcard). */
			size_t sl = strlen(d + 1); /* ".example.com" */
			for (size_t j = 0; j < p->n_rules; j++) {
				const char *n = p->rules[j].name;
				size_t nl = strlen(n);
				if (strcmp(n, d) == 0 || (nl > sl && strcmp(n + nl - sl, d + 1) == 0))
					p->rules[j].inspect = true;
			}
			char probe[EGRESS_MAX_HOST + 8];
			snprintf(probe, sizeof(probe), "cordon-probe%s", d + 1);
			inspect_rule_for(p, probe);
		}
	}
}

/* The capabilities the manifest names: each must be granted to the agent
 * in the workspace; each is mounted read-only at /capabilities/<name>. */
int run_resolve_caps(struct run_ctx *c, struct cdn_err *err)
{
	const struct agent_manifest *m = c->agent.manifest;
	for (size_t i = 0; i < m->n_capabilities; i++) {
		const char *name = m->capabilities[i];
		if (!store_grant_has(c->s, c->ws, c->agent.name, name))
			return cdn_err_msg(err, EACCES,
					   "agent %s uses capability %s, which is not granted to it in "
					   "workspace %s (cordon grant %s %s)",
					   c->agent.name, name, c->ws, c->agent.name, name);
		struct store_item it = { 0 };
		int r = store_item_get(c->s, STORE_CAPABILITY, c->ws, name, 0, &it, err);
		if (r == -ENOENT)
			return cdn_err_msg(err, ENOENT, "capability %s is not registered in workspace %s",
					   name, c->ws);
		if (r < 0)
			return r;
		char path[4096];
		r = store_tree_checkout(c->s, it.tree, path, sizeof(path), err);
		if (r == 0) {
			json_t *j = run_item_json(name, it.version, it.hash);
			json_object_set_new(j, "path", json_string(path));
			json_object_set_new(j, "mount", json_sprintf("/capabilities/%s", name));
			json_array_append_new(c->caps, j);
		}
		store_item_clear(&it);
		if (r < 0)
			return r;
	}
	return 0;
}

/* The agent's dependency layer (docs/deps.md): found by its key, or
 * built now, once, in a sandbox of its own; its build's output goes to a
 * terminal when there is one (progress), else only into a failure's
 * message. The run itself never has a network for it. */
int run_resolve_deps(struct run_ctx *c, struct cdn_err *err)
{
	const struct agent_manifest *m = c->agent.manifest;
	if (!m->deps_runtime[0])
		return 0;
	struct deps_options o = { .allow_private = c->o->allow_private,
				  .n_allow_private = c->o->n_allow_private,
				  .hosts_file = c->o->hosts_file,
				  .upstream_ca = c->o->upstream_ca,
				  .allow_degraded = c->o->allow_degraded,
				  .log_fd = isatty(STDERR_FILENO) ? STDERR_FILENO : -1 };
	return deps_resolve(c->s, c->agent.hash, m, &o, &c->deps, &c->deps_hold, err);
}

int run_resolve_env(struct run_ctx *c, struct cdn_err *err)
{
	const struct agent_manifest *m = c->agent.manifest;
	if (!m->env[0])
		return 0;
	struct store_item it = { 0 };
	int r = store_item_get(c->s, STORE_ENV, c->ws, m->env, 0, &it, err);
	if (r == -ENOENT)
		return cdn_err_msg(err, ENOENT,
				   "the agent uses env %s, which is not registered in workspace %s "
				   "(cordon env register %s K=V...)",
				   m->env, c->ws, m->env);
	if (r < 0)
		return r;
	json_error_t je;
	json_t *vars = json_loads(it.doc ? it.doc : "", JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(vars)) {
		json_decref(vars);
		store_item_clear(&it);
		return cdn_err_msg(err, EIO, "env %s: stored document is damaged", m->env);
	}
	c->env = run_item_json(m->env, it.version, it.hash);
	json_object_set_new(c->env, "vars", vars);
	store_item_clear(&it);
	return 0;
}

int run_apply_service(struct run_ctx *c, struct cdn_err *err)
{
	static const char prefix[] = "service:";
	if (!c->o->claim || strncmp(c->rec.caller, prefix, sizeof(prefix) - 1) != 0)
		return 0;
	const char *name = c->rec.caller + sizeof(prefix) - 1;
	struct store_service sv;
	int r = store_service_get(c->s, c->ws, name, &sv, err);
	if (r == -ENOENT)
		return cdn_err_msg(err, ENOENT, "service %s was removed before its run started",
				   name);
	if (r < 0)
		return r;
	/* Its env and secrets go only to runs of its own agent. */
	size_t an = strcspn(sv.agent, "@");
	if (strlen(c->agent.name) != an || strncmp(sv.agent, c->agent.name, an) != 0) {
		store_service_clear(&sv);
		return cdn_err_msg(err, EPERM, "service %s runs agent %s, not %s", name, sv.agent,
				   c->agent.name);
	}
	json_t *env = sv.env_json ? json_loads(sv.env_json, JSON_REJECT_DUPLICATES, NULL)
				  : json_object();
	json_t *names = sv.secrets_json ? json_loads(sv.secrets_json, 0, NULL) : json_array();
	store_service_clear(&sv);
	if (!json_is_object(env) || !json_is_array(names)) {
		json_decref(env);
		json_decref(names);
		return cdn_err_msg(err, EIO, "service %s: stored env or secrets are damaged", name);
	}
	c->service = json_pack("{s:s, s:o}", "name", name, "env", env);
	struct agent_manifest *m = c->agent.manifest;
	size_t i;
	json_t *v;
	r = c->service ? 0 : cdn_err_set(err, ENOMEM, "service %s", name);
	json_array_foreach(names, i, v)
	{
		const char *s = json_string_value(v);
		if (r < 0 || !s)
			break;
		bool have = false;
		for (size_t k = 0; k < m->n_required_secrets && !have; k++)
			have = strcmp(m->required_secrets[k], s) == 0;
		if (have)
			continue;
		char **nv = realloc(m->required_secrets,
				    (m->n_required_secrets + 2) * sizeof(*nv));
		char *d = strdup(s);
		if (nv)
			m->required_secrets = nv;
		if (!nv || !d) {
			free(d);
			r = cdn_err_set(err, ENOMEM, "service %s", name);
			break;
		}
		m->required_secrets[m->n_required_secrets++] = d;
		m->required_secrets[m->n_required_secrets] = NULL;
	}
	json_decref(names);
	return r;
}

int run_read_input(struct run_ctx *c, char **canon, char hash[STORE_HASH_HEX + 1],
		      struct cdn_err *err)
{
	const char *in = c->o->input ? c->o->input : "{}";
	size_t len = c->o->input ? c->o->input_len : 2;
	if (len > RUN_MAX_INPUT)
		return cdn_err_msg(err, E2BIG, "input: %zu bytes, at most %d", len, RUN_MAX_INPUT);
	json_error_t je;
	json_t *j = json_loadb(in, len, JSON_REJECT_DUPLICATES, &je);
	if (!j)
		return cdn_err_msg(err, EINVAL, "input is not valid JSON: line %d, column %d: %s",
				   je.line, je.column, je.text);
	if (!json_is_object(j)) {
		json_decref(j);
		return cdn_err_msg(err, EINVAL, "input must be a JSON object");
	}
	*canon = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(j);
	if (!*canon)
		return cdn_err_set(err, ENOMEM, "input");
	cdn_sha256_hex(*canon, strlen(*canon), hash);
	return 0;
}

int run_make_redactor(struct run_ctx *c, const struct secret_set *ss, struct cdn_err *err)
{
	struct redact_secret rs[REDACT_MAX_SECRETS];
	size_t n = 0;
	for (size_t i = 0; i < ss->n && n < REDACT_MAX_SECRETS; i++) {
		if (ss->lens[i] < REDACT_MIN_LEN)
			return cdn_err_msg(err, EINVAL,
					   "secret %s is shorter than %d bytes: too short to keep out of "
					   "logs, so it is refused",
					   c->agent.manifest->required_secrets[i], REDACT_MIN_LEN);
		rs[n++] = (struct redact_secret){ .name = c->agent.manifest->required_secrets[i],
						  .value = (const char *)ss->values[i],
						  .len = ss->lens[i] };
		/* A placeholder is the secret as far as the logs go. */
		if (ss->placeholders[i] && n < REDACT_MAX_SECRETS)
			rs[n++] = (struct redact_secret){ .name = c->agent.manifest->required_secrets[i],
							  .value = ss->placeholders[i],
							  .len = ss->lens[i] };
	}
	int r = redactor_new(rs, n, &c->red, err);
	if (r == 0)
		r = redact_stream_init(&c->out.rs, c->red, err);
	if (r == 0)
		r = redact_stream_init(&c->errc.rs, c->red, err);
	return r;
}

/* The operator's artifact limits, narrowed by the manifest's outputs. */
void run_artifact_limits_for(const struct run_ctx *c, struct artifact_limits *lim,
				const char **exts)
{
	artifact_limits_default(lim);
	const struct artifact_limits *op = &c->o->artifacts;
	if (op->max_files)
		lim->max_files = op->max_files;
	if (op->max_file_bytes)
		lim->max_file_bytes = op->max_file_bytes;
	if (op->max_total_bytes)
		lim->max_total_bytes = op->max_total_bytes;
	if (op->extensions) {
		lim->extensions = op->extensions;
		lim->n_extensions = op->n_extensions;
	}
	const struct agent_outputs *ao = &c->agent.manifest->outputs;
	if (ao->max_files && ao->max_files < lim->max_files)
		lim->max_files = ao->max_files;
	if (ao->max_file_bytes && ao->max_file_bytes < lim->max_file_bytes)
		lim->max_file_bytes = ao->max_file_bytes;
	if (ao->max_total_bytes && ao->max_total_bytes < lim->max_total_bytes)
		lim->max_total_bytes = ao->max_total_bytes;
	if (ao->extensions) {
		/* Only extensions the operator allows as well. */
		const char *const *allowed = lim->extensions ? lim->extensions
							     : artifact_default_extensions();
		size_t n_allowed = lim->extensions ? lim->n_extensions : SIZE_MAX;
		size_t k = 0;
		for (size_t i = 0; i < ao->n_extensions; i++)
			for (size_t j = 0; j < n_allowed && allowed[j]; j++)
				if (strcmp(ao->extensions[i], allowed[j]) == 0) {
					exts[k++] = ao->extensions[i];
					break;
				}
		exts[k] = NULL;
		lim->extensions = exts;
		lim->n_extensions = k;
	}
}

/*
 * The sandbox a run gets, as a sandbox_config: its phases (setup, then the
 * entrypoint), limits (the manifest's, else the operator's defaults), the
 * input and out/ in the workspace, the snapshot read-only at /agent and
 * each capability at its mount (files and directories only), and the
 * environment: cordon's fixed variables, then the env's, then the
 * secrets, so a secret of the same name wins. Strings the config points
 * at live in *st. The execution adds what only it has (pipes, the MCP
 * tokens, the network). Tested on its own in test_run_setup.
 */
void run_cut_to_deadline(const struct run_ctx *c, uint64_t *timeout_ms)
{
	if (!c->o->deadline_ms)
		return;
	/* A called run ends by its caller's deadline at the latest. */
	int64_t left = c->o->deadline_ms - cdn_wall_ms();
	if (left < 1)
		left = 1;
	if (!*timeout_ms || (uint64_t)left < *timeout_ms)
		*timeout_ms = (uint64_t)left;
}

int run_sandbox_config(const struct run_ctx *c, const struct secret_set *ss,
		       struct sandbox_config *cfg, struct run_config_store *st, struct cdn_err *err)
{
	const struct agent_manifest *m = c->agent.manifest;
	int r;

	cfg->phases[cfg->n_phases++] = m->setup ? m->setup : m->entrypoint;
	if (m->setup)
		cfg->phases[cfg->n_phases++] = m->entrypoint;
	cfg->limits.mem_bytes = m->mem_bytes ? m->mem_bytes
					    : c->o->default_mem_bytes ? c->o->default_mem_bytes
								      : DEFAULT_MEM;
	cfg->limits.pids = m->pids ? m->pids : c->o->default_pids ? c->o->default_pids : DEFAULT_PIDS;
	cfg->limits.cpu_millicores = m->cpu_millicores;
	cfg->limits.timeout_ms = m->timeout_s * 1000ull;
	/* The health check's port is the one TCP port the agent may listen
	 * on (Landlock refuses every other bind); only the probe, inside the
	 * sandbox's network namespace, can reach it. */
	if (m->health.port)
		cfg->local_ports[cfg->n_local_ports++] = (uint16_t)m->health.port;
	run_cut_to_deadline(c, &cfg->limits.timeout_ms);
	cfg->limits.workspace_bytes = c->o->workspace_bytes ? c->o->workspace_bytes : DEFAULT_WORKSPACE;
	cfg->allow_degraded = c->o->allow_degraded;
	cfg->keep_workspace = true;
	cfg->steps_channel = true;
	cfg->files[cfg->n_files++] = (struct sandbox_file){ .path = "input.json",
							  .data = c->rec.input_json,
							  .len = strlen(c->rec.input_json) };
	cfg->files[cfg->n_files++] = (struct sandbox_file){ .path = "out" };

	if ((r = sandbox_config_add_bind(cfg, c->agent.tree_path, "/agent", false, err)) < 0)
		return r;
	/* Snapshots the store made: files, directories and links that stay
	 * inside them; no sockets or devices to search for. */
	cfg->binds[cfg->n_binds - 1].no_special_files = true;
	/* The paths of resolved capabilities live in caps[i].path. */
	size_t i;
	json_t *cap;
	json_array_foreach(c->caps, i, cap)
	{
		const char *src = json_string_value(json_object_get(cap, "path"));
		const char *dst = json_string_value(json_object_get(cap, "mount"));
		if ((r = sandbox_config_add_bind(cfg, src, dst, false, err)) < 0)
			return r;
		cfg->binds[cfg->n_binds - 1].no_special_files = true;
	}

	/* The dependency layer, read-only: node's node_modules at
	 * /node_modules, which resolution from anywhere below / finds (ESM
	 * imports included, which ignore NODE_PATH), and the whole layer at
	 * /deps (python's packages at /deps/python, on PYTHONPATH). */
	if (c->deps.key[0]) {
		bool node = strcmp(c->deps.runtime, "node") == 0;
		snprintf(st->deps_nm, sizeof(st->deps_nm), "%s/node_modules", c->deps.path);
		struct stat sst;
		if (node && lstat(st->deps_nm, &sst) == 0 && S_ISDIR(sst.st_mode)) {
			if ((r = sandbox_config_add_bind(cfg, st->deps_nm, "/node_modules", false,
							 err)) < 0)
				return r;
			/* Sealed when built: no sockets or devices to search for. */
			cfg->binds[cfg->n_binds - 1].no_special_files = true;
		}
		if ((r = sandbox_config_add_bind(cfg, c->deps.path, "/deps", false, err)) < 0)
			return r;
		cfg->binds[cfg->n_binds - 1].no_special_files = true;
		if ((r = sandbox_config_add_env(cfg, node ? "NODE_PATH=/node_modules"
							  : "PYTHONPATH=/deps/python",
						err)) < 0)
			return r;
	}

	snprintf(st->run_env, sizeof(st->run_env), "CORDON_RUN_ID=%s", c->rec.id);
	const char *fixed[] = { st->run_env, "CORDON_INPUT=/workspace/input.json",
				"CORDON_OUTPUT=/workspace/output.json",
				"CORDON_ARTIFACTS=/workspace/out",
				"CORDON_STEPS=" SANDBOX_STEPS_PATH };
	for (size_t k = 0; k < CDN_ARRAY_SIZE(fixed); k++)
		if ((r = sandbox_config_add_env(cfg, fixed[k], err)) < 0)
			return r;
	/* The env's variables first (a service's own over the agent's), so a
	 * secret of the same name wins. */
	json_t *svc_env = json_object_get(c->service, "env");
	json_t *envs[2] = { json_object_get(c->env, "vars"), svc_env };
	for (size_t e = 0; e < 2; e++) {
		const char *key;
		json_t *val;
		json_object_foreach(envs[e], key, val)
		{
			if (st->n_env >= CDN_ARRAY_SIZE(st->env))
				break;
			if (e == 0 && json_object_get(svc_env, key))
				continue;
			if (asprintf(&st->env[st->n_env], "%s=%s", key, json_string_value(val)) < 0) {
				st->env[st->n_env] = NULL;
				return cdn_err_set(err, ENOMEM, "env");
			}
			if ((r = sandbox_config_add_env(cfg, st->env[st->n_env++], err)) < 0)
				return r;
		}
	}
	for (size_t k = 0; k < ss->n; k++)
		if ((r = sandbox_config_add_env(cfg, ss->env[k], err)) < 0) {
			/* the message quotes only the name: see add_env */
			return cdn_err_set(err, -r, "secret %s cannot be an environment variable",
					   m->required_secrets[k]);
		}
	return 0;
}

void run_config_store_free(struct run_config_store *st)
{
	for (size_t k = 0; k < st->n_env; k++)
		free(st->env[k]);
	memset(st, 0, sizeof(*st));
}

json_t *run_item_json(const char *name, unsigned version, const char *hash)
{
	return json_pack("{s:s, s:I, s:s}", "name", name, "version", (json_int_t)version, "sha256",
			 hash);
}
