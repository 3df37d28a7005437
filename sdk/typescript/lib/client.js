// SPDX-License-Identifier: Apache-2.0
// The client: one method per operation of docs/api/openapi.yaml, grouped by
// resource. Zero runtime dependencies: fetch and streams for the API,
// node:http only for the server's unix socket (health, metrics).
import { request as httpRequest } from "node:http";
import { join } from "node:path";
import { CordonError, errorFor } from "./errors.js";
import { OPERATIONS } from "./operations.js";
import { packDirectory } from "./tar.js";
import { VERSION } from "./version.js";

// created (queued) and running are the only statuses that are not final
const PENDING = new Set(["created", "running"]);

function queryString(query) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v === undefined || v === null) continue;
    q.set(k, typeof v === "boolean" ? (v ? "1" : "0") : String(v));
  }
  const s = q.toString();
  return s ? "?" + s : "";
}

function expand(path, params) {
  return path.replace(/\{(\w+)\}/g, (_, k) => {
    const v = params?.[k];
    if (v === undefined || v === null || v === "") throw new TypeError(`${path}: ${k} is required`);
    return encodeURIComponent(String(v));
  });
}

async function* lines(body) {
  const decoder = new TextDecoder();
  let buf = "";
  for await (const chunk of body) {
    buf += decoder.decode(chunk, { stream: true });
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      yield buf.slice(0, nl);
      buf = buf.slice(nl + 1);
    }
  }
  buf += decoder.decode();
  if (buf) yield buf;
}

async function* textChunks(body) {
  const decoder = new TextDecoder();
  for await (const chunk of body) {
    const s = decoder.decode(chunk, { stream: true });
    if (s) yield s;
  }
  const rest = decoder.decode();
  if (rest) yield rest;
}

/** A bundle for an upload: a directory's path (packed here) or tar.gz bytes. */
function bundle(source) {
  if (typeof source === "string") return packDirectory(source);
  if (source instanceof Uint8Array) return source;
  throw new TypeError("expected a directory's path or the bytes of a tar.gz");
}

/** Why a request got no answer (fetch puts the system's reason in `cause`). */
function reason(e) {
  return e?.cause?.message ?? e?.message ?? String(e);
}

function isGzip(bytes) {
  return bytes.length > 1 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** The client of one `cordon serve`. */
export class Cordon {
  /**
   * @param {object} [options]
   * @param {string} [options.baseUrl] default: $CORDON_URL, else http://127.0.0.1:8470
   * @param {string} [options.apiKey] default: $CORDON_API_KEY
   * @param {string} [options.socket] the server's unix socket, for health() and metrics(); default: $CORDON_STATE/serve.sock
   * @param {typeof fetch} [options.fetch]
   */
  constructor(options = {}) {
    const env = globalThis.process?.env ?? {};
    this.baseUrl = (options.baseUrl ?? env.CORDON_URL ?? "http://127.0.0.1:8470").replace(/\/+$/, "");
    this.socket = options.socket ?? (env.CORDON_STATE ? join(env.CORDON_STATE, "serve.sock") : undefined);
    Object.defineProperty(this, "apiKey", { value: options.apiKey ?? env.CORDON_API_KEY, enumerable: false });
    Object.defineProperty(this, "_fetch", { value: options.fetch ?? globalThis.fetch, enumerable: false });
    this.keys = new Keys(this);
    this.agents = new Agents(this);
    this.capabilities = new Capabilities(this);
    this.envs = new Envs(this);
    this.grants = new Grants(this);
    this.secrets = new Secrets(this);
    this.runs = new Runs(this);
    this.approvals = new Approvals(this);
    this.audit = new Audit(this);
    this.policy = new Policy(this);
    this.schedules = new Schedules(this);
    this.services = new Services(this);
    this.usage = new Usage(this);
    this.deps = new Deps(this);
    this.retention = new Retention(this);
  }

  /**
   * Calls one operation of openapi.yaml and returns the Response, or throws
   * the typed error of the answer.
   * @param {string} operation an operationId
   * @param {{params?: object, query?: object, json?: unknown, body?: Uint8Array|string, headers?: object, signal?: AbortSignal}} [opts]
   */
  async request(operation, opts = {}) {
    const op = OPERATIONS[operation];
    if (!op) throw new TypeError(`no operation ${operation} in openapi.yaml`);
    if (!this.apiKey) {
      const message = `${operation}: no API key: set CORDON_API_KEY or pass apiKey`;
      throw new CordonError(message, { code: "unauthorized", operation });
    }
    const [method, path] = op;
    const headers = {
      Authorization: "Bearer " + this.apiKey,
      "User-Agent": `cordon-sdk-typescript/${VERSION}`,
      ...opts.headers,
    };
    let body = opts.body;
    if (opts.json !== undefined) {
      body = JSON.stringify(opts.json);
      headers["Content-Type"] = "application/json";
    }
    const url = this.baseUrl + expand(path, opts.params) + queryString(opts.query);
    let res;
    try {
      res = await this._fetch(url, { method, headers, body, signal: opts.signal });
    } catch (e) {
      if (e?.name === "AbortError") throw e;
      throw new CordonError(`${operation}: ${method} ${url}: ${reason(e)}`, { operation });
    }
    if (!res.ok) throw errorFor(res.status, await res.text(), operation);
    return res;
  }

  /** Calls an operation that streams text and yields it as it comes, until the server ends it. */
  async *_follow(operation, params, opts = {}) {
    const query = { follow: 1, offset: opts.offset };
    const res = await this.request(operation, { params, query, signal: opts.signal });
    yield* textChunks(res.body);
  }

  /** Calls an operation and returns its JSON body (null when empty). */
  async _json(operation, opts) {
    const text = await (await this.request(operation, opts)).text();
    return text ? JSON.parse(text) : null;
  }

  /** The calling key: `{id, name, role, workspace}`. */
  whoami() {
    return this._json("whoami");
  }

  /**
   * Health, from the server's unix socket (`STATE/serve.sock`, no key): the
   * body also while draining (then `ok` is false).
   * @param {{socket?: string}} [opts]
   */
  async health(opts = {}) {
    const { status, text } = await this._socketGet("health", opts.socket);
    if (status !== 200 && status !== 503) throw errorFor(status, text, "health");
    return JSON.parse(text);
  }

  /**
   * Prometheus metrics: from the unix socket, or from `--metrics-listen`
   * (`url`, and `token` when the operator set one).
   * @param {{socket?: string, url?: string, token?: string}} [opts]
   * @returns {Promise<string>}
   */
  async metrics(opts = {}) {
    if (opts.url) {
      const [, path] = OPERATIONS.metrics;
      const headers = opts.token ? { Authorization: "Bearer " + opts.token } : {};
      let res;
      try {
        res = await this._fetch(opts.url.replace(/\/+$/, "") + path, { headers });
      } catch (e) {
        throw new CordonError(`metrics: ${opts.url}: ${reason(e)}`, { operation: "metrics" });
      }
      const text = await res.text();
      if (!res.ok) throw errorFor(res.status, text, "metrics");
      return text;
    }
    const { status, text } = await this._socketGet("metrics", opts.socket);
    if (status !== 200) throw errorFor(status, text, "metrics");
    return text;
  }

  _socketGet(operation, socket) {
    const [method, path] = OPERATIONS[operation];
    const socketPath = socket ?? this.socket;
    if (!socketPath) {
      const message = `${operation}: no socket: pass socket or set CORDON_STATE`;
      return Promise.reject(new CordonError(message, { operation }));
    }
    return new Promise((resolve, reject) => {
      const req = httpRequest({ socketPath, method, path, headers: { Host: "localhost" } }, (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString() }));
        res.on("error", reject);
      });
      req.on("error", (e) => reject(new CordonError(`${operation}: ${socketPath}: ${reason(e)}`, { operation })));
      req.end();
    });
  }
}

class Resource {
  constructor(client) {
    Object.defineProperty(this, "_c", { value: client, enumerable: false });
  }
}

/** API keys of the workspace (owner). */
class Keys extends Resource {
  /** The workspace's keys. */
  async list() {
    return (await this._c._json("listKeys")).keys;
  }
  /**
   * A new key; its `key` is shown only in this answer.
   * @param {string} name
   * @param {"owner"|"member"} [role]
   */
  create(name, role = "member") {
    return this._c._json("createKey", { json: { name, role } });
  }
  /** Revokes the key with this public id. */
  revoke(id) {
    return this._c._json("revokeKey", { params: { id } });
  }
}

/** Agents of the registry. */
class Agents extends Resource {
  /** Every agent's latest version: `[{name, version, sha256, registered}]`. */
  async list() {
    return (await this._c._json("listAgents")).items;
  }
  /** One agent with every version, newest first, and their manifests. */
  get(name) {
    return this._c._json("getAgent", { params: { name } });
  }
  /**
   * Registers an agent (owner): a directory, packed here as a tar.gz and
   * uploaded, or the bytes of a tar or tar.gz.
   * @param {string|Uint8Array} source
   * @param {{treeSha256?: string}} [opts] the hash the unpacked tree must have
   */
  register(source, opts = {}) {
    const body = bundle(source);
    const headers = { "Content-Type": isGzip(body) ? "application/gzip" : "application/x-tar" };
    if (opts.treeSha256) headers["X-Cordon-Tree-Sha256"] = opts.treeSha256;
    return this._c._json("registerAgent", { body, headers });
  }
  /** Registers a directory on the server (only with `--register-root`). */
  registerPath(path) {
    return this._c._json("registerAgent", { json: { path } });
  }
}

/** Capabilities of the registry. */
class Capabilities extends Resource {
  /** Every capability's latest version. */
  async list() {
    return (await this._c._json("listCapabilities")).items;
  }
  /**
   * Registers a capability (owner) from a directory or tar(.gz) bytes.
   * @param {string} name
   * @param {string|Uint8Array} source
   * @param {{treeSha256?: string}} [opts]
   */
  register(name, source, opts = {}) {
    const body = bundle(source);
    const headers = { "Content-Type": isGzip(body) ? "application/gzip" : "application/x-tar" };
    if (opts.treeSha256) headers["X-Cordon-Tree-Sha256"] = opts.treeSha256;
    return this._c._json("registerCapability", { query: { name }, body, headers });
  }
  /** Registers a directory on the server (only with `--register-root`). */
  registerPath(name, path) {
    return this._c._json("registerCapability", { json: { name, path } });
  }
}

/** Environments: named sets of variables. */
class Envs extends Resource {
  /** Every env's latest version. */
  async list() {
    return (await this._c._json("listEnvs")).items;
  }
  /**
   * Registers an env (owner).
   * @param {string} name
   * @param {Record<string, string>} vars
   */
  register(name, vars) {
    return this._c._json("registerEnv", { json: { name, vars } });
  }
}

/** Grants of capabilities to agents. */
class Grants extends Resource {
  /** Grants `capability` to `agent` (owner). */
  create(agent, capability) {
    return this._c._json("grant", { json: { agent, capability } });
  }
  /** Lets `agent` call `callee` (`NAME` or `NAME@VERSION`) with call_agent (owner). */
  call(agent, callee) {
    return this._c._json("grant", { json: { agent, call: callee } });
  }
}

/** Secrets: names and sizes only; values go in and never come out. */
class Secrets extends Resource {
  /** `[{name, size, updated}]`. */
  async list() {
    return (await this._c._json("listSecrets")).secrets;
  }
  /** Creates or replaces a secret (owner). */
  set(name, value) {
    return this._c._json("setSecret", { params: { name }, json: { value } });
  }
  /** Removes a secret (owner). */
  remove(name) {
    return this._c._json("removeSecret", { params: { name } });
  }
  /** Always throws Forbidden: the server never returns a secret's value. */
  value(name) {
    return this._c._json("getSecretValue", { params: { name } });
  }
}

/** Runs: dispatch, follow, read and cancel. */
class Runs extends Resource {
  /**
   * Runs, newest first: `{runs, next_cursor}`.
   * @param {{agent?: string, status?: string, limit?: number, since?: string, until?: string, cursor?: string}} [query]
   */
  list(query = {}) {
    return this._c._json("listRuns", { query });
  }
  /**
   * Dispatches a run: `{id, status: "queued", agent}`.
   * @param {string} agent `NAME` or `NAME@VERSION`
   * @param {unknown} [input]
   * @param {{labels?: Record<string, string>}} [opts]
   */
  create(agent, input = {}, opts = {}) {
    const json = { agent, input };
    if (opts.labels) json.labels = opts.labels;
    return this._c._json("createRun", { json });
  }
  /** The run's record, with `result` once it finished. */
  get(id) {
    return this._c._json("getRun", { params: { id } });
  }
  /**
   * The run's events as an async iterator; with `follow`, live until the
   * run ends (keep-alives skipped). `after`: only events with a greater seq.
   * @param {string} id
   * @param {{follow?: boolean, after?: number, signal?: AbortSignal}} [opts]
   */
  async *events(id, opts = {}) {
    const res = await this._c.request("runEvents", {
      params: { id },
      query: { follow: opts.follow ? 1 : undefined, after: opts.after },
      headers: { Accept: "application/x-ndjson" },
      signal: opts.signal,
    });
    for await (const line of lines(res.body)) {
      if (line.trim()) yield JSON.parse(line);
    }
  }
  /**
   * Follows the run to its end and returns its final record.
   * @param {string} id
   * @param {{onEvent?: (event: object) => void, timeoutMs?: number}} [opts]
   */
  async wait(id, opts = {}) {
    const deadline = Date.now() + (opts.timeoutMs ?? 3600_000);
    for await (const ev of this.events(id, { follow: true })) opts.onEvent?.(ev);
    // the stream ends at run.finished; the record is written right after
    for (;;) {
      const run = await this.get(id);
      if (!PENDING.has(run.status)) return run;
      if (Date.now() > deadline) {
        throw new CordonError(`run ${id} is still ${run.status}`, { code: "timeout", operation: "getRun" });
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  /** The run's stdout as it is now (redacted, capped). */
  async stdout(id) {
    return (await this._c.request("runStdout", { params: { id } })).text();
  }
  /** The run's stderr as it is now. */
  async stderr(id) {
    return (await this._c.request("runStderr", { params: { id } })).text();
  }
  /**
   * The run's stdout as it is written, in chunks, until the run ends.
   * @param {string} id
   * @param {{offset?: number, signal?: AbortSignal}} [opts] offset: the bytes already received
   */
  followStdout(id, opts = {}) {
    return this._c._follow("runStdout", { id }, opts);
  }
  /** The run's stderr as it is written, until the run ends. */
  followStderr(id, opts = {}) {
    return this._c._follow("runStderr", { id }, opts);
  }
  /**
   * An artifact's bytes (a name the result lists).
   * @returns {Promise<Uint8Array>}
   */
  async artifact(id, name) {
    const res = await this._c.request("runArtifact", { params: { id, name } });
    return new Uint8Array(await res.arrayBuffer());
  }
  /**
   * The finished run's signed evidence pack (a tar.gz; `cordon evidence verify` checks it).
   * @param {string} id
   * @param {{artifacts?: boolean}} [opts] include the artifacts
   * @returns {Promise<Uint8Array>}
   */
  async evidence(id, opts = {}) {
    const query = { artifacts: opts.artifacts ? 1 : undefined };
    const res = await this._c.request("runEvidence", { params: { id }, query });
    return new Uint8Array(await res.arrayBuffer());
  }
  /** Cancels a queued or running run: `{id, cancelling: true}`; Conflict when it finished. */
  cancel(id) {
    return this._c._json("cancelRun", { params: { id } });
  }
  /** Keeps the run past every retention age (owner). */
  hold(id, reason) {
    return this._c._json("holdRun", { params: { id }, json: { reason } });
  }
  /** Releases the hold (owner). */
  release(id) {
    return this._c._json("releaseRun", { params: { id } });
  }
}

/** Held requests waiting for a decision. */
class Approvals extends Resource {
  /** The pending approvals of the workspace. */
  async list() {
    return (await this._c._json("listApprovals")).approvals;
  }
  /** Approves a held request (owner): `{id, decision}`. */
  approve(id) {
    return this._c._json("approve", { params: { id } });
  }
  /** Rejects a held request (owner). */
  reject(id) {
    return this._c._json("reject", { params: { id } });
  }
}

/** The audit log and its verification. */
class Audit extends Resource {
  /**
   * `{entries, verify}`.
   * @param {{run?: string, limit?: number, offset?: number}} [query]
   */
  list(query = {}) {
    return this._c._json("audit", { query });
  }
}

/** The workspace's egress policy. */
class Policy extends Resource {
  /** `{operator, workspace, effective}`. */
  get() {
    return this._c._json("getPolicy");
  }
  /**
   * Replaces the workspace's policy (owner) with this YAML.
   * @param {string} yaml
   */
  put(yaml) {
    return this._c._json("putPolicy", { body: yaml, headers: { "Content-Type": "application/yaml" } });
  }
}

/** Runs started on a cron schedule. */
class Schedules extends Resource {
  /** Every schedule of the workspace. */
  async list() {
    return (await this._c._json("listSchedules")).items;
  }
  /** One schedule. */
  get(name) {
    return this._c._json("getSchedule", { params: { name } });
  }
  /**
   * Creates a schedule (owner).
   * @param {{name: string, agent: string, cron: string, tz?: string, input?: unknown, overlap?: string, catch_up?: string}} spec
   */
  create(spec) {
    return this._c._json("createSchedule", { json: spec });
  }
  /** Removes a schedule (owner); its runs stay. */
  remove(name) {
    return this._c._json("deleteSchedule", { params: { name } });
  }
  /** Pauses a schedule (owner). */
  pause(name) {
    return this._c._json("pauseSchedule", { params: { name } });
  }
  /** Resumes a schedule (owner). */
  resume(name) {
    return this._c._json("resumeSchedule", { params: { name } });
  }
}

/** Long-running agents the server keeps running. */
class Services extends Resource {
  /** Every service of the workspace. */
  async list() {
    return (await this._c._json("listServices")).items;
  }
  /** One service. */
  get(name) {
    return this._c._json("getService", { params: { name } });
  }
  /**
   * Creates a service (owner).
   * @param {{name: string, agent: string, input?: unknown, env?: Record<string, string>, secrets?: string[]}} spec
   */
  create(spec) {
    return this._c._json("createService", { json: spec });
  }
  /** Removes a service (owner); its run is cancelled. */
  remove(name) {
    return this._c._json("deleteService", { params: { name } });
  }
  /** Pauses a service (owner). */
  pause(name) {
    return this._c._json("pauseService", { params: { name } });
  }
  /** Resumes a service (owner). */
  resume(name) {
    return this._c._json("resumeService", { params: { name } });
  }
  /** The stdout of the service's run, or of its last one. */
  async stdout(name) {
    return (await this._c.request("serviceStdout", { params: { name } })).text();
  }
  /** The stderr of the service's run, or of its last one. */
  async stderr(name) {
    return (await this._c.request("serviceStderr", { params: { name } })).text();
  }
  /** The stdout of the service's run as it is written, until that run ends. */
  followStdout(name, opts = {}) {
    return this._c._follow("serviceStdout", { name }, opts);
  }
}

/** What the workspace's runs used. */
class Usage extends Resource {
  /**
   * `{workspace, from, to, group_by, groups, total}`.
   * @param {{from?: string, to?: string, groupBy?: "agent"|"day"|"caller"|"none"}} [query]
   */
  get(query = {}) {
    return this._c._json("getUsage", { query: { from: query.from, to: query.to, group_by: query.groupBy } });
  }
}

/** The dependency layers the workspace's agents declare. */
class Deps extends Resource {
  /** `[{agent, version, deps: {sha256, runtime, ..., built} | null}]`. */
  async list() {
    return (await this._c._json("listDeps")).agents;
  }
}

/** How long the workspace's runs are kept. */
class Retention extends Resource {
  /** The ages that apply, the workspace's own and the operator's. */
  get() {
    return this._c._json("getRetention");
  }
  /**
   * Sets the workspace's own ages (owner); null takes the operator's.
   * @param {{records?: string|null, files?: string|null}} ages
   */
  put(ages) {
    return this._c._json("putRetention", { json: ages });
  }
}
