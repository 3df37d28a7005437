// SPDX-License-Identifier: Apache-2.0
//
// An agent written the way a user writes one: with the official MCP
// TypeScript SDK (@modelcontextprotocol/sdk, pinned in package-lock.json),
// talking to its run's MCP endpoint ($CORDON_MCP_URL, the phase's token in
// $CORDON_MCP_TOKEN). tests/integration/test_mcp_node.py runs it in a real
// sandbox and a thread there plays the human who decides the approvals.
//
// Right after connecting, a second client on the same session (given the
// session id: no initialize) starts the long waits, which the human
// decides after 65 s, past the SDK's default request timeout of 60 s; the
// SDK's defaults are left alone except where said:
//
//   L1. request_approval with onprogress and resetTimeoutOnProgress: the
//       progress notifications keep restarting the 60 s timer, so the
//       call gets its decision;
//   L2. the same call with the SDK's defaults (no progress asked): the
//       60 s pass, the SDK fails it with RequestTimeout and sends
//       notifications/cancelled, which withdraws it from the human's queue;
//   L3. the call as a plain POST that accepts only JSON: one JSON answer
//       after 65 s (the endpoint's 60 s idle timeout does not cut it);
//   L4. the call as a plain POST that accepts SSE without a progressToken:
//       keep-alive comments every 15 s, then the answer.
//
// Meanwhile, on the first client (so the test's 60+ s are spent once):
//
//   1. list the tools, call each one;
//   2. a second session with the same token is refused: a token opens one;
//   3. reconnect once: a new client and transport, given the session id,
//      go on with the session (no initialize);
//   4. a waiting request_approval call survives a dropped connection: the
//      SDK's resumptionToken (the stream's Last-Event-ID) takes the stream
//      up again from the new connection, and the decision arrives there;
//   5. a 2 s timeout without progress passes, and the SDK's
//      notifications/cancelled withdraws the request at once.
//
// What it saw goes to /workspace/output.json.
//
// `node agent.mjs --imports-only` loads the SDK and exits: the test runs it
// so on the host, with list-modules.mjs, to learn which files the agent
// needs (see there).
import { writeFileSync } from "node:fs";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CallToolResultSchema } from "@modelcontextprotocol/sdk/types.js";
import { DEFAULT_REQUEST_TIMEOUT_MSEC } from "@modelcontextprotocol/sdk/shared/protocol.js";

if (process.argv.includes("--imports-only")) process.exit(0);

const url = new URL(process.env.CORDON_MCP_URL);
const requestInit = { headers: { Authorization: `Bearer ${process.env.CORDON_MCP_TOKEN}` } };
const out = { errors: [] };
const save = () => writeFileSync("/workspace/output.json", JSON.stringify(out));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const newClient = () => new Client({ name: "cordon-node-agent", version: "1.0.0" });
const text = (res) => res.content?.[0]?.text;
const t0 = Date.now();

// One request_approval call as a plain POST of the session (L3, L4).
async function rawCall(session, protocol, id, action, accept) {
	const t0 = Date.now();
	const r = await fetch(url, {
		method: "POST",
		headers: { "Content-Type": "application/json", Accept: accept, "Mcp-Session-Id": session,
			   "MCP-Protocol-Version": protocol },
		body: JSON.stringify({ jsonrpc: "2.0", id, method: "tools/call",
				       params: { name: "request_approval", arguments: { action, reason: "a slow human" } } }) });
	return { status: r.status, type: r.headers.get("content-type"), body: await r.text(),
		 waited_ms: Date.now() - t0 };
}

// L1 to L4, on a client of its own in the same session.
async function longWaits(session, protocol) {
	const waiter = newClient();
	await waiter.connect(new StreamableHTTPClientTransport(url, { requestInit, sessionId: session }));
	const args = (action) => ({ name: "request_approval", arguments: { action, reason: "a human takes longer than the client's timeout" } });
	const progress = [];
	const t0 = Date.now();
	const withProgress = waiter.callTool(args("long wait"), CallToolResultSchema,
		{ onprogress: (p) => progress.push(p), resetTimeoutOnProgress: true })
		.then((r) => ({ decision: r.structuredContent?.decision }), (e) => ({ code: e.code, message: String(e.message) }));
	const withoutProgress = waiter.callTool(args("no progress"))
		.then(() => "answered", (e) => ({ code: e.code, message: String(e.message).slice(0, 200) }));
	const both = [withProgress, withoutProgress].map((p) => p.then((r) => Object.assign(r, { waited_ms: Date.now() - t0 })));
	const [l1, l2, l3, l4] = await Promise.all([...both,
		rawCall(session, protocol, 9001, "as json", "application/json"),
		rawCall(session, protocol, 9002, "keep-alives", "text/event-stream, application/json")]);
	await sleep(300); // L2's notifications/cancelled POST
	await waiter.close();
	return { default_timeout_ms: DEFAULT_REQUEST_TIMEOUT_MSEC,
		 with_progress: Object.assign(l1, { progress: progress.length, last: progress[progress.length - 1] }),
		 without_progress: l2, as_json: l3, keep_alives: l4 };
}

async function main() {
	// connect
	let transport = new StreamableHTTPClientTransport(url, { requestInit });
	let client = newClient();
	client.onerror = (e) => out.errors.push(String(e.message || e));
	await client.connect(transport);
	const session = transport.sessionId;
	out.connected = { session: /^cdn_mcps_[0-9a-f]{64}$/.test(session || ""), protocol: transport.protocolVersion,
			  server: client.getServerVersion()?.name };
	const long = longWaits(session, transport.protocolVersion);
	long.catch(() => {}); // awaited below; not an unhandled rejection meanwhile

	// 1. list, call each tool
	out.tools = (await client.listTools()).tools.map((t) => t.name);
	out.report_step = text(await client.callTool({ name: "report_step", arguments: { name: "node agent connected", detail: { sdk: "typescript" } } }));
	out.get_input = (await client.callTool({ name: "get_input", arguments: {} })).structuredContent;
	out.save_artifact = (await client.callTool({ name: "save_artifact", arguments: { name: "from-node.txt", content: "saved with the MCP SDK\n" } })).structuredContent;
	out.log = text(await client.callTool({ name: "log", arguments: { level: "notice", message: "hello from the SDK" } }));
	out.quick = (await client.callTool({ name: "request_approval", arguments: { action: "quick check", reason: "the first call" } })).structuredContent;
	const bad = await client.callTool({ name: "save_artifact", arguments: { name: "../escape", content: "x" } });
	out.bad_argument = { isError: bad.isError, text: text(bad) };

	// 2. the same token cannot open a second session
	try {
		const c2 = newClient();
		await c2.connect(new StreamableHTTPClientTransport(url, { requestInit }));
		out.second_session = "opened";
	} catch (e) {
		out.second_session = { code: e.code, message: String(e.message).slice(0, 200) };
	}

	// 3. reconnect once: the session goes on
	await client.close();
	transport = new StreamableHTTPClientTransport(url, { requestInit, sessionId: session });
	client = newClient();
	await client.connect(transport);
	out.reconnected = text(await client.callTool({ name: "report_step", arguments: { name: "after reconnecting" } }));

	// 4. a waiting call, its connection dropped, the stream resumed
	let token;
	const params = { name: "request_approval", arguments: { action: "resume after a drop", reason: "the connection will drop while this waits" } };
	const first = client.request({ method: "tools/call", params }, CallToolResultSchema, {
		onresumptiontoken: (t) => { token = t; } });
	first.catch(() => {}); // it fails when its client closes; the call goes on
	for (let i = 0; !token && i < 100; i++) await sleep(50);
	out.resumption_token = token;
	await client.close(); // the connection drops; the server keeps the call
	transport = new StreamableHTTPClientTransport(url, { requestInit, sessionId: session });
	client = newClient();
	await client.connect(transport);
	const resumed = await client.request({ method: "tools/call", params }, CallToolResultSchema, {
		resumptionToken: token });
	out.resumed = resumed.structuredContent;

	// 5. a short timeout without progress: the client gives up and withdraws the request
	const t1 = Date.now();
	try {
		await client.callTool({ name: "request_approval", arguments: { action: "short timeout", reason: "nobody will decide this one" } },
			CallToolResultSchema, { timeout: 2000 });
		out.short = "answered";
	} catch (e) {
		out.short = { code: e.code, waited_ms: Date.now() - t1 };
	}
	await sleep(300); // the notifications/cancelled POST
	out.quick_done_ms = Date.now() - t0;
	save();
	out.long = await long;
	await client.close();
}

try {
	await main();
} catch (e) {
	out.failed = String(e.stack || e);
}
save();
process.exit(out.failed ? 1 : 0);
