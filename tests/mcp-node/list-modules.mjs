// SPDX-License-Identifier: Apache-2.0
//
// Lists every file Node loads for a program: `node --import
// ./list-modules.mjs PROGRAM` appends to the file named by $MODULE_LIST
// each file: URL an ES module import resolved to (a hook, which runs in a
// thread of its own) and, when the program exits, each file the CommonJS
// loader loaded (require.cache: packages such as ajv are CommonJS, and
// their own require() calls pass no ES module hook).
//
// tests/integration/test_mcp_node.py copies only those files (and the
// package.json files above them, which Node reads to resolve and to know
// each package's module type) into the agent's directory: some 300 files,
// where node_modules holds some 3,700 that registering the agent would
// read and hash on every run.
import { appendFileSync } from "node:fs";
import { createRequire, register } from "node:module";
import { pathToFileURL } from "node:url";

const list = process.env.MODULE_LIST;
const cache = createRequire(import.meta.url).cache;
process.on("exit", () => {
	if (list)
		for (const f of Object.keys(cache)) appendFileSync(list, pathToFileURL(f).href + "\n");
});

register("data:text/javascript," + encodeURIComponent(`
import { appendFileSync } from "node:fs";
export async function resolve(specifier, context, next) {
	const r = await next(specifier, context);
	if (r.url.startsWith("file:") && process.env.MODULE_LIST)
		appendFileSync(process.env.MODULE_LIST, r.url + "\\n");
	return r;
}
`));
