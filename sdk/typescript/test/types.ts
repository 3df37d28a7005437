// SPDX-License-Identifier: Apache-2.0
// A type test: compiled by `npm run check` (tsc, no emit) against index.d.ts;
// it fails to compile when the typings stop describing the calls below.
import { Cordon, CordonError, Forbidden, NotFound, OPERATIONS, VERSION, packDirectory } from "../index.js";
import type { Item, Run, RunEvent } from "../index.js";

export async function use(): Promise<string> {
  const c = new Cordon({ baseUrl: "http://127.0.0.1:8470" });
  // @ts-expect-error the key is never a positional argument
  new Cordon("cdn_live_x");
  const me = await c.whoami();
  const role: "owner" | "member" = me.role;
  const agents: Item[] = await c.agents.list();
  await c.agents.register("./agent", { treeSha256: agents[0]?.sha256 });
  await c.agents.register(packDirectory("./agent"));
  await c.secrets.set("TOKEN", "value");
  const sizes: number[] = (await c.secrets.list()).map((s) => s.size);
  const { id } = await c.runs.create("summarizer@2", { url: "https://example.com" }, { labels: { gpu: "a100" } });
  for await (const ev of c.runs.events(id, { follow: true, after: 3 })) {
    const e: RunEvent = ev;
    const seq: number = e.seq;
    void seq;
  }
  const run: Run = await c.runs.wait(id, { onEvent: (e) => void e.type, timeoutMs: 1000 });
  for await (const chunk of c.runs.followStdout(id, { offset: 10 })) void (chunk satisfies string);
  const pack: Uint8Array = await c.runs.evidence(id, { artifacts: true });
  const page = await c.runs.list({ status: "failed", limit: 20 });
  const next: string | null = page.next_cursor;
  const usage = await c.usage.get({ groupBy: "agent" });
  // @ts-expect-error group_by takes one of four values
  await c.usage.get({ groupBy: "planet" });
  await c.schedules.create({ name: "nightly", agent: "summarizer", cron: "0 3 * * *", overlap: "forbid" });
  await c.retention.put({ records: "90d", files: null });
  const health = await c.health({ socket: "/var/lib/cordon/serve.sock" });
  const ops: readonly [string, string, string] | undefined = OPERATIONS["createRun"];
  try {
    await c.secrets.value("TOKEN");
  } catch (e) {
    if (e instanceof Forbidden || e instanceof NotFound) {
      const err: CordonError = e;
      return `${err.status} ${err.code} ${err.operation}`;
    }
  }
  return [VERSION, role, sizes, run.status, pack.length, next, usage, health, ops].join();
}
