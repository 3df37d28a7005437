// SPDX-License-Identifier: Apache-2.0
// Typings of @cordon/sdk. scripts/reference.mjs makes REFERENCE.md from the
// comments here; the shapes are docs/api/openapi.yaml's schemas.

/** A JSON object as the API returns it. */
export type Json = { [key: string]: any };

/** The SDK's version: cordon's. */
export const VERSION: string;

/** Every operationId of openapi.yaml: [method, path, SDK method]. */
export const OPERATIONS: Readonly<Record<string, readonly [string, string, string]>>;

/** The contents of a directory as a tar.gz, as `cordon agent register DIR` uploads it. */
export function packDirectory(dir: string): Uint8Array;

export interface CordonOptions {
  /** The server's URL. Default: `$CORDON_URL`, else `http://127.0.0.1:8470`. */
  baseUrl?: string;
  /** The API key. Default: `$CORDON_API_KEY`. */
  apiKey?: string;
  /** The server's unix socket, for health() and metrics(). Default: `$CORDON_STATE/serve.sock`. */
  socket?: string;
  /** A fetch to use instead of the global one. */
  fetch?: typeof fetch;
}

export interface RequestOptions {
  params?: Record<string, string | number>;
  query?: Record<string, string | number | boolean | undefined | null>;
  json?: unknown;
  body?: Uint8Array | string;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/** An error the API answered (`{"error": {"code", "message"}}`), or a failure to reach it. */
export class CordonError extends Error {
  /** The HTTP status; 0 when no answer came. */
  status: number;
  /** The API's error code (`not_found`, ...), or `connection`. */
  code: string;
  /** The operationId that failed. */
  operation?: string;
}
/** 400 `bad_request`: malformed JSON, a wrong type, a bad name. */
export class BadRequest extends CordonError {}
/** 401 `unauthorized`: no key, an unknown or revoked key. */
export class Unauthorized extends CordonError {}
/** 403 `forbidden`: the key's role may not do this. */
export class Forbidden extends CordonError {}
/** 404 `not_found`: no such thing in this workspace. */
export class NotFound extends CordonError {}
/** 405 `method_not_allowed`. */
export class MethodNotAllowed extends CordonError {}
/** 409 `conflict`: the run already finished, a name taken. */
export class Conflict extends CordonError {}
/** 413 `too_large`: the body is over the limit. */
export class TooLarge extends CordonError {}
/** 415 `unsupported_media_type`. */
export class UnsupportedMediaType extends CordonError {}
/** 429 `too_many_requests`: a per-key or per-client limit. */
export class TooManyRequests extends CordonError {}
/** 500 `internal`: the store failed. */
export class Internal extends CordonError {}
/** 503 `unavailable`: a queue is full, or the server is draining. */
export class Unavailable extends CordonError {}
/** 504 `timeout`: a decision the run did not confirm in time (it still applies). */
export class Timeout extends CordonError {}
/** The class of each error code. */
export const ERROR_CLASSES: Readonly<Record<string, typeof CordonError>>;

/** An event of a run (docs/runs.md, "Events"). */
export interface RunEvent {
  seq: number;
  ts: string;
  run_id: string;
  type: string;
  [field: string]: any;
}

/** A run's record. */
export interface Run {
  id: string;
  workspace: string;
  agent: string;
  version: string;
  status: "created" | "running" | "succeeded" | "failed" | "timeout" | "oom" | "killed" | "error" | "cancelled" | "lost";
  exit_code: number | null;
  result: Json | null;
  [field: string]: any;
}

/** A registry entry: `{name, version, sha256, registered}`. */
export interface Item {
  name: string;
  version: string;
  sha256: string;
  registered: string;
}

/** The client of one `cordon serve`. */
export class Cordon {
  constructor(options?: CordonOptions);
  readonly baseUrl: string;
  readonly socket?: string;
  keys: Keys;
  agents: Agents;
  capabilities: Capabilities;
  envs: Envs;
  grants: Grants;
  deps: Deps;
  secrets: Secrets;
  runs: Runs;
  approvals: Approvals;
  audit: Audit;
  policy: Policy;
  schedules: Schedules;
  services: Services;
  usage: Usage;
  retention: Retention;
  /** Calls one operation by its operationId; throws the typed error of an error answer. */
  request(operation: string, opts?: RequestOptions): Promise<Response>;
  /** The calling key: `{id, name, role, workspace}`. */
  whoami(): Promise<{ id: string; name: string; role: "owner" | "member"; workspace: string }>;
  /** Health from the unix socket STATE/serve.sock (no key); `ok` is false while draining. */
  health(opts?: { socket?: string }): Promise<Json>;
  /** Prometheus metrics from the unix socket, or from `--metrics-listen` (`url`, `token`). */
  metrics(opts?: { socket?: string; url?: string; token?: string }): Promise<string>;
}

/** API keys of the workspace (owner). */
export interface Keys {
  /** The workspace's keys. */
  list(): Promise<Json[]>;
  /** A new key; its `key` is shown only in this answer. */
  create(name: string, role?: "owner" | "member"): Promise<Json>;
  /** Revokes the key with this public id. */
  revoke(id: string): Promise<Json>;
}

/** Agents of the registry. */
export interface Agents {
  /** Every agent's latest version. */
  list(): Promise<Item[]>;
  /** One agent with every version, newest first, and their manifests. */
  get(name: string): Promise<Json>;
  /** Registers an agent (owner): a directory (packed as a tar.gz here) or tar(.gz) bytes. */
  register(source: string | Uint8Array, opts?: { treeSha256?: string }): Promise<Json>;
  /** Registers a directory on the server (only with `--register-root`). */
  registerPath(path: string): Promise<Json>;
}

/** Capabilities of the registry. */
export interface Capabilities {
  /** Every capability's latest version. */
  list(): Promise<Item[]>;
  /** Registers a capability (owner) from a directory or tar(.gz) bytes. */
  register(name: string, source: string | Uint8Array, opts?: { treeSha256?: string }): Promise<Json>;
  /** Registers a directory on the server (only with `--register-root`). */
  registerPath(name: string, path: string): Promise<Json>;
}

/** Environments: named sets of variables. */
export interface Envs {
  /** Every env's latest version. */
  list(): Promise<Item[]>;
  /** Registers an env (owner). */
  register(name: string, vars: Record<string, string>): Promise<Json>;
}

/** Grants of capabilities to agents. */
export interface Grants {
  /** Grants `capability` to `agent` (owner). */
  create(agent: string, capability: string): Promise<Json>;
  /** Lets `agent` call `callee` (`NAME` or `NAME@VERSION`) with call_agent (owner). */
  call(agent: string, callee: string): Promise<Json>;
}

/** Secrets: names and sizes only; values go in and never come out. */
export interface Secrets {
  /** `[{name, size, updated}]`. */
  list(): Promise<{ name: string; size: number; updated: string }[]>;
  /** Creates or replaces a secret (owner). */
  set(name: string, value: string): Promise<{ name: string; size: number }>;
  /** Removes a secret (owner). */
  remove(name: string): Promise<Json>;
  /** Always throws Forbidden: the server never returns a secret's value. */
  value(name: string): Promise<never>;
}

/** Runs: dispatch, follow, read and cancel. */
export interface Runs {
  /** Runs, newest first; pass `next_cursor` back as `cursor`. */
  list(query?: { agent?: string; status?: string; limit?: number; since?: string; until?: string; cursor?: string }): Promise<{ runs: Run[]; next_cursor: string | null }>;
  /** Dispatches a run of `NAME` or `NAME@VERSION`. */
  create(agent: string, input?: unknown, opts?: { labels?: Record<string, string> }): Promise<{ id: string; status: string; agent: string }>;
  /** The run's record, with `result` once it finished. */
  get(id: string): Promise<Run>;
  /** The run's events; with `follow`, live until the run ends. */
  events(id: string, opts?: { follow?: boolean; after?: number; signal?: AbortSignal }): AsyncGenerator<RunEvent>;
  /** Follows the run to its end and returns its final record. */
  wait(id: string, opts?: { onEvent?: (event: RunEvent) => void; timeoutMs?: number }): Promise<Run>;
  /** The run's stdout as it is now (redacted, capped). */
  stdout(id: string): Promise<string>;
  /** The run's stderr as it is now. */
  stderr(id: string): Promise<string>;
  /** The run's stdout as it is written, until the run ends. */
  followStdout(id: string, opts?: { offset?: number; signal?: AbortSignal }): AsyncGenerator<string>;
  /** The run's stderr as it is written, until the run ends. */
  followStderr(id: string, opts?: { offset?: number; signal?: AbortSignal }): AsyncGenerator<string>;
  /** An artifact's bytes (a name the result lists). */
  artifact(id: string, name: string): Promise<Uint8Array>;
  /** The finished run's signed evidence pack, a tar.gz (`cordon evidence verify`). */
  evidence(id: string, opts?: { artifacts?: boolean }): Promise<Uint8Array>;
  /** Cancels a queued or running run; Conflict when it finished. */
  cancel(id: string): Promise<{ id: string; cancelling: boolean }>;
  /** Keeps the run past every retention age (owner). */
  hold(id: string, reason: string): Promise<Json>;
  /** Releases the hold (owner). */
  release(id: string): Promise<Json>;
}

/** Held requests waiting for a decision. */
export interface Approvals {
  /** The pending approvals of the workspace. */
  list(): Promise<Json[]>;
  /** Approves a held request (owner). */
  approve(id: string): Promise<{ id: string; decision: string }>;
  /** Rejects a held request (owner). */
  reject(id: string): Promise<{ id: string; decision: string }>;
}

/** The audit log and its verification. */
export interface Audit {
  /** `{entries, verify}`. */
  list(query?: { run?: string; limit?: number; offset?: number }): Promise<{ entries: Json[]; verify: Json }>;
}

/** The workspace's egress policy. */
export interface Policy {
  /** `{operator, workspace, effective}`. */
  get(): Promise<Json>;
  /** Replaces the workspace's policy (owner) with this YAML. */
  put(yaml: string): Promise<Json>;
}

/** Runs started on a cron schedule. */
export interface Schedules {
  /** Every schedule of the workspace. */
  list(): Promise<Json[]>;
  /** One schedule. */
  get(name: string): Promise<Json>;
  /** Creates a schedule (owner). */
  create(spec: { name: string; agent: string; cron: string; tz?: string; input?: unknown; overlap?: "forbid" | "allow" | "replace"; catch_up?: "skip" | "once" }): Promise<Json>;
  /** Removes a schedule (owner); its runs stay. */
  remove(name: string): Promise<Json>;
  /** Pauses a schedule (owner). */
  pause(name: string): Promise<Json>;
  /** Resumes a schedule (owner). */
  resume(name: string): Promise<Json>;
}

/** Long-running agents the server keeps running. */
export interface Services {
  /** Every service of the workspace. */
  list(): Promise<Json[]>;
  /** One service. */
  get(name: string): Promise<Json>;
  /** Creates a service (owner). */
  create(spec: { name: string; agent: string; input?: unknown; env?: Record<string, string>; secrets?: string[] }): Promise<Json>;
  /** Removes a service (owner); its run is cancelled. */
  remove(name: string): Promise<Json>;
  /** Pauses a service (owner). */
  pause(name: string): Promise<Json>;
  /** Resumes a service (owner). */
  resume(name: string): Promise<Json>;
  /** The stdout of the service's run, or of its last one. */
  stdout(name: string): Promise<string>;
  /** The stderr of the service's run, or of its last one. */
  stderr(name: string): Promise<string>;
  /** The stdout of the service's run as it is written, until that run ends. */
  followStdout(name: string, opts?: { offset?: number; signal?: AbortSignal }): AsyncGenerator<string>;
}

/** What the workspace's runs used. */
export interface Usage {
  /** `{workspace, from, to, group_by, groups, total}` for runs created in [from, to). */
  get(query?: { from?: string; to?: string; groupBy?: "agent" | "day" | "caller" | "none" }): Promise<Json>;
}

/** The dependency layers the workspace's agents declare. */
export interface Deps {
  /** `[{agent, version, deps: {sha256, runtime, ..., built} | null}]`. */
  list(): Promise<Json[]>;
}

/** How long the workspace's runs are kept. */
export interface Retention {
  /** The ages that apply, the workspace's own and the operator's. */
  get(): Promise<Json>;
  /** Sets the workspace's own ages (owner); null takes the operator's. */
  put(ages: { records?: string | null; files?: string | null }): Promise<Json>;
}
