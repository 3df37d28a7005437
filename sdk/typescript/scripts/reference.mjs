// SPDX-License-Identifier: Apache-2.0
// Writes REFERENCE.md from index.d.ts: each exported declaration and each
// member, with its doc comment. `node scripts/reference.mjs > REFERENCE.md`;
// tests/integration/test_sdk.py checks the committed file is what this gives.
import { readFileSync } from "node:fs";

const src = readFileSync(new URL("../index.d.ts", import.meta.url), "utf8").split("\n");
const out = [
  "# @cordon/sdk reference",
  "",
  "Generated from `index.d.ts` by `scripts/reference.mjs`; do not edit by hand.",
  "The HTTP API behind each call is [docs/api.md](../../docs/api.md).",
  "",
];
let doc = [];
let inBody = false;
for (const raw of src) {
  const line = raw.trim();
  let m;
  if ((m = line.match(/^\/\*\*\s*(.*?)\s*\*\/$/))) {
    doc = [m[1]];
    continue;
  }
  if (line.startsWith("/**")) {
    doc = [line.replace(/^\/\*\*\s*/, "")].filter(Boolean);
    continue;
  }
  if (line.startsWith("*/")) continue;
  if (line.startsWith("* ")) {
    doc.push(line.slice(2));
    continue;
  }
  if ((m = line.match(/^export (class|interface) (\w+)(?: extends (\w+))?\s*\{(\})?$/))) {
    out.push(`## ${m[1]} \`${m[2]}\`${m[3] ? ` extends \`${m[3]}\`` : ""}`, "");
    if (doc.length) out.push(doc.join(" "), "");
    inBody = !m[4];
    doc = [];
    continue;
  }
  if ((m = line.match(/^export (const|function|type) (\w+)(.*);$/))) {
    out.push(`## ${m[1]} \`${m[2]}\``, "", "```ts", line.replace(/^export /, ""), "```", "");
    if (doc.length) out.push(doc.join(" "), "");
    doc = [];
    continue;
  }
  if (inBody && line === "}") {
    inBody = false;
    doc = [];
    continue;
  }
  if (inBody && line && !line.startsWith("//")) {
    const sig = line.replace(/;$/, "");
    out.push(`- \`${sig}\`${doc.length ? "  \n  " + doc.join(" ") : ""}`);
    doc = [];
    continue;
  }
  if (!line && out.at(-1)?.startsWith("- ")) out.push("");
}
process.stdout.write(out.join("\n").replace(/\n{3,}/g, "\n\n").trimEnd() + "\n");
