// SPDX-License-Identifier: Apache-2.0
// Drives @cordon/sdk, installed from its packed tarball, against a real
// `cordon serve` (tests/integration/test_sdk.py copies this file next to
// that install and runs it). The key and URL come from CORDON_API_KEY and
// CORDON_URL, as a user's would; SDK_AGENT_DIR is an agent to register,
// SDK_MEMBER_KEY a member key, SDK_OUT where to write the evidence pack.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { inspect } from "node:util";
import * as sdk from "@cordon/sdk";

const { Cordon, VERSION, OPERATIONS } = sdk;
const env = process.env;
const out = {};

// It is the installed package, not the source tree.
out.resolved = fileURLToPath(import.meta.resolve("@cordon/sdk"));
out.version = VERSION;

const c = new Cordon();
assert.equal(c.apiKey, env.CORDON_API_KEY);
assert.ok(!JSON.stringify(c).includes(env.CORDON_API_KEY), "the key stays out of JSON");
assert.ok(!inspect(c, { depth: 5 }).includes(env.CORDON_API_KEY), "and out of console.log");
const me = await c.whoami();
assert.equal(me.role, "owner");

// Registry: an agent uploaded as a tar.gz packed by the SDK.
const reg = await c.agents.register(env.SDK_AGENT_DIR);
assert.equal(reg.name, "sdk-hello");
out.agent_sha256 = reg.sha256;
assert.ok((await c.agents.list()).some((a) => a.name === "sdk-hello"));
const got = await c.agents.get("sdk-hello");
assert.equal(got.versions[0].manifest.name, "sdk-hello");
await assert.rejects(c.agents.get("no-such-agent"), sdk.NotFound);
const cap = await c.capabilities.register("sdk-data", env.SDK_AGENT_DIR);
assert.equal(cap.name, "sdk-data");
assert.ok((await c.capabilities.list()).some((x) => x.name === "sdk-data"));
await c.envs.register("sdk-env", { REGION: "eu" });
assert.ok((await c.envs.list()).some((x) => x.name === "sdk-env"));
await c.grants.create("sdk-hello", "sdk-data");

// Secrets: set, list (no value), the value refused, remove.
const value = "ts-sdk-secret-" + "x".repeat(20);
assert.deepEqual(await c.secrets.set("SDK_TS", value), { name: "SDK_TS", size: value.length });
const secrets = await c.secrets.list();
assert.ok(secrets.some((s) => s.name === "SDK_TS"));
assert.ok(!JSON.stringify(secrets).includes(value));
await assert.rejects(c.secrets.value("SDK_TS"), (e) => e instanceof sdk.Forbidden && e.status === 403 && e.code === "forbidden");
await c.secrets.remove("SDK_TS");
assert.ok(!(await c.secrets.list()).some((s) => s.name === "SDK_TS"));

// A run: dispatch, follow its events to the end, read what it left.
const run = await c.runs.create("sdk-hello", { from: "typescript" });
assert.equal(run.status, "queued");
const types = [];
for await (const ev of c.runs.events(run.id, { follow: true })) {
  assert.equal(ev.run_id, run.id);
  // live: the first event comes while the run still goes on (it sleeps 1 s)
  if (!types.length) assert.ok(["created", "running"].includes((await c.runs.get(run.id)).status));
  types.push(ev.type);
}
assert.equal(types[0], "run.created");
assert.equal(types.at(-1), "run.finished");
out.event_types = types;
const rec = await c.runs.wait(run.id);
assert.equal(rec.status, "succeeded", JSON.stringify(rec));
assert.deepEqual(rec.result.output, { ok: true });
// the same events again, after the first one
const later = [];
for await (const ev of c.runs.events(run.id, { after: 1 })) later.push(ev.seq);
assert.ok(later.length === types.length - 1 && later[0] > 1);
assert.match(await c.runs.stdout(run.id), /hello from the agent/);
let followed = "";
for await (const chunk of c.runs.followStdout(run.id)) followed += chunk;
assert.match(followed, /hello from the agent/);
assert.equal(typeof (await c.runs.stderr(run.id)), "string");
const art = new TextDecoder().decode(await c.runs.artifact(run.id, "report.txt"));
assert.equal(art, "report\n");
const pack = await c.runs.evidence(run.id);
assert.equal(pack[0], 0x1f);
assert.equal(pack[1], 0x8b);
writeFileSync(env.SDK_OUT, pack);
await assert.rejects(c.runs.cancel(run.id), sdk.Conflict);
await assert.rejects(c.runs.get("run_does_not_exist"), sdk.NotFound);
const listed = await c.runs.list({ agent: "sdk-hello", limit: 5 });
assert.ok(listed.runs.some((r) => r.id === run.id));
const audit = await c.audit.list({ run: run.id });
assert.equal(audit.verify.ok, true);
out.run_id = run.id;

// Approvals: none waiting; an unknown one is NotFound.
assert.deepEqual(await c.approvals.list(), []);
await assert.rejects(c.approvals.approve("apr_0123456789"), sdk.NotFound);
await assert.rejects(c.approvals.reject("apr_0123456789"), sdk.NotFound);

// Usage: the run counted under its agent.
const usage = await c.usage.get({ groupBy: "agent" });
const g = usage.groups.find((x) => x.key === "sdk-hello");
assert.ok(g && g.runs >= 1, JSON.stringify(usage));
await assert.rejects(c.usage.get({ groupBy: "planet" }), sdk.BadRequest);

// Keys, policy, retention, schedules, services: a call each.
assert.ok((await c.keys.list()).length >= 2);
const k = await c.keys.create("sdk-temp", "member");
assert.match(k.key, /^cdn_live_/);
const temp = new Cordon({ apiKey: k.key });
assert.equal((await temp.whoami()).role, "member");
await c.keys.revoke(k.id);
await assert.rejects(temp.whoami(), sdk.Unauthorized);
assert.ok("operator" in (await c.policy.get()));
assert.ok(await c.retention.get());
const sched = await c.schedules.create({ name: "sdk-nightly", agent: "sdk-hello", cron: "0 3 * * *" });
assert.equal(sched.name, "sdk-nightly");
assert.equal((await c.schedules.pause("sdk-nightly")).paused, true);
assert.equal((await c.schedules.resume("sdk-nightly")).paused, false);
assert.ok((await c.schedules.list()).some((s) => s.name === "sdk-nightly"));
assert.equal((await c.schedules.get("sdk-nightly")).cron, "0 3 * * *");
assert.equal((await c.schedules.remove("sdk-nightly")).removed, true);
assert.deepEqual(await c.services.list(), []);
await assert.rejects(c.services.get("nothing"), sdk.NotFound);

// Roles: a member key may read but not set secrets.
const member = new Cordon({ apiKey: env.SDK_MEMBER_KEY });
await assert.rejects(member.secrets.set("X", "y"), (e) => e instanceof sdk.Forbidden && e.operation === "setSecret");
assert.ok(Array.isArray(await member.secrets.list()));
await assert.rejects(new Cordon({ apiKey: "" }).whoami(), sdk.CordonError);

// The unix socket: health and metrics.
const health = await c.health();
assert.equal(health.ok, true);
assert.match(await c.metrics(), /^# (HELP|TYPE) /m);
// --metrics-listen: with the operator's token, and refused without it
const scrape = await c.metrics({ url: env.SDK_METRICS_URL, token: env.SDK_METRICS_TOKEN });
assert.match(scrape, /^cordon_runs_total\{/m);
await assert.rejects(c.metrics({ url: env.SDK_METRICS_URL }), sdk.Unauthorized);

// Every operation of the table is a function of the client.
for (const [op, [, , method]] of Object.entries(OPERATIONS)) {
  const fn = method.split(".").reduce((o, k) => o?.[k], c);
  assert.equal(typeof fn, "function", op);
}
console.log(JSON.stringify(out));
