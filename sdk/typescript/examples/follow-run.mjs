// SPDX-License-Identifier: Apache-2.0
// Dispatches a run and follows its events to the end:
//   CORDON_URL=http://127.0.0.1:8470 CORDON_API_KEY=cdn_live_… node follow-run.mjs AGENT '{"url": "https://example.com"}'
import { Cordon, CordonError } from "@cordon/sdk";

const [agent, input = "{}"] = process.argv.slice(2);
if (!agent) {
  console.error("usage: node follow-run.mjs AGENT [INPUT-JSON]");
  process.exit(2);
}
const cordon = new Cordon();
try {
  const { id } = await cordon.runs.create(agent, JSON.parse(input));
  for await (const event of cordon.runs.events(id, { follow: true })) {
    const detail = event.type === "step" ? JSON.stringify(event.step) : "";
    console.log(`${event.seq}\t${event.type}\t${detail}`);
  }
  const run = await cordon.runs.wait(id);
  console.log(`${id}: ${run.status}`, JSON.stringify(run.result?.output ?? null));
  process.exit(run.status === "succeeded" ? 0 : 1);
} catch (e) {
  if (!(e instanceof CordonError)) throw e;
  console.error(`cordon: ${e.message}`);
  process.exit(1);
}
