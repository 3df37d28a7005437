// SPDX-License-Identifier: Apache-2.0
// End-to-end test of cordon serve's dashboard in Debian's headless Chromium,
// driven by playwright-core (no browser download of its own).
// tests/integration/test_dashboard.py sets up the server and runs this:
//
//   CORDON_URL=http://127.0.0.1:PORT CORDON_API_KEY=cdn_live_… \
//   CORDON_HELLO_AGENT=hello CORDON_APPROVAL_AGENT=deployer \
//   CORDON_UPSTREAM_URL=http://hook.test:PORT/deploy \
//   [CORDON_SCREENSHOT=out.png] [CHROMIUM=/usr/bin/chromium] node dashboard.mjs
//
// Steps: 1. sign in with the key; 2. dispatch a run and watch it finish;
// 3. approve a held request from the approvals view and see the run go on
// and succeed; 4. a full-page screenshot of that run's page.
import { strict as assert } from "node:assert";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const env = (name, dflt) => {
	const v = process.env[name] ?? dflt;
	if (v === undefined) {
		console.error(`dashboard.mjs: set ${name}`);
		process.exit(2);
	}
	return v;
};
const URL_BASE = env("CORDON_URL").replace(/\/$/, "");
const KEY = env("CORDON_API_KEY");
const HELLO = env("CORDON_HELLO_AGENT", "hello");
const DEPLOYER = env("CORDON_APPROVAL_AGENT", "deployer");
const UPSTREAM_URL = env("CORDON_UPSTREAM_URL");
const SHOT = path.resolve(env("CORDON_SCREENSHOT", path.join(here, "artifacts", "dashboard.png")));
const CHROMIUM = env("CHROMIUM", "/usr/bin/chromium");
const WAIT = 20000;

const t0 = Date.now();
const log = (msg) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s] ${msg}`);

const browser = await chromium.launch({
	executablePath: CHROMIUM,
	headless: true,
	// This machine has no network but localhost: keep Chromium from trying.
	args: ["--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--disable-extensions",
		"--disable-dev-shm-usage"],
});
const problems = [];
let failed = false;
try {
	const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, acceptDownloads: true });
	const page = await context.newPage();
	page.setDefaultTimeout(WAIT);
	// Any script error, CSP violation or failed load fails the test (but
	// the 401 of the wrong key below).
	page.on("pageerror", (e) => problems.push("page error: " + e.message));
	page.on("console", (m) => {
		if (m.type() === "error" && !/status of 401/.test(m.text())) problems.push("console: " + m.text());
	});
	const byTest = (id) => page.locator(`[data-testid="${id}"]`);

	/* 1. Sign in. */
	await page.goto(URL_BASE + "/");
	await byTest("signin-key").waitFor();
	await byTest("signin-key").fill("cdn_live_" + "0".repeat(64));
	await byTest("signin-submit").click();
	await byTest("signin-error").getByText("unknown API key").waitFor();
	await byTest("signin-key").fill(KEY);
	await byTest("signin-submit").click();
	await byTest("whoami-role").getByText("owner").waitFor();
	assert.equal(await byTest("whoami-workspace").textContent(), "default");
	assert.equal(await page.evaluate(() => sessionStorage.getItem("cordon.apiKey")), KEY);
	assert.equal(await page.evaluate(() => localStorage.length), 0);
	log("1. signed in as " + (await byTest("whoami-id").textContent()));

	/* 2. Dispatch a run and watch it finish. */
	await byTest("dispatch-agent").locator(`option[value="${HELLO}"]`).waitFor({ state: "attached" });
	await byTest("dispatch-agent").selectOption(HELLO);
	await byTest("dispatch-input").fill("[1, 2]");
	await byTest("dispatch-input-status").getByText("must be a JSON object").waitFor();
	assert.ok(await byTest("dispatch-submit").isDisabled(), "a non-object input cannot be sent");
	const markup = "<img src=x data-injected=1>";
	await byTest("dispatch-input").fill(JSON.stringify({ who: markup }, null, 2));
	await byTest("dispatch-input-status").getByText("valid JSON object").waitFor();
	await byTest("dispatch-submit").click();
	await page.waitForURL(/#\/runs\/run_/);
	const helloId = decodeURIComponent(page.url().split("#/runs/")[1]);
	assert.equal(await byTest("run-id").textContent(), helloId);
	await page.locator('[data-testid="run-status"][data-status="succeeded"]').waitFor();
	await page.locator('[data-testid="event-row"][data-type="run.finished"]').waitFor();
	const types = await byTest("event-row").evaluateAll((rows) => rows.map((r) => r.dataset.type));
	for (const t of ["run.created", "sandbox.ready", "step", "artifact.saved", "run.finished"])
		assert.ok(types.includes(t), `event ${t} shown (got ${types})`);
	assert.equal(await byTest("run-exit-code").textContent(), "0");
	await byTest("run-stdout").getByText(markup, { exact: false }).waitFor();
	// Agent output is text, never markup.
	assert.equal(await page.locator("[data-injected]").count(), 0);
	assert.match(await byTest("run-output").textContent(), /"greeting": "hi"/);
	const [download] = await Promise.all([
		page.waitForEvent("download"),
		byTest("artifact-download").first().click(),
	]);
	assert.equal(download.suggestedFilename(), "report.txt");
	assert.equal(readFileSync(await download.path(), "utf8"), "report\n");
	const [pack] = await Promise.all([
		page.waitForEvent("download"),
		byTest("evidence-download").click(),
	]);
	assert.equal(pack.suggestedFilename(), `${helloId}.evidence.tar.gz`);
	const packBytes = readFileSync(await pack.path());
	assert.ok(packBytes.length > 100 && packBytes[0] === 0x1f && packBytes[1] === 0x8b, "a gzip pack");
	if (process.env.CORDON_EVIDENCE) writeFileSync(process.env.CORDON_EVIDENCE, packBytes);
	log(`2. run ${helloId} succeeded; ${types.length} events; artifact and evidence pack downloaded`);

	/* 3. A held request: approve it, the agent goes on. */
	await byTest("nav-runs").click();
	await page.locator(`[data-testid="run-row"][data-run-id="${helloId}"]`).waitFor();
	await byTest("dispatch-agent").selectOption(DEPLOYER);
	await byTest("dispatch-input").fill(JSON.stringify({ url: UPSTREAM_URL }));
	await byTest("dispatch-submit").click();
	await page.waitForURL(/#\/runs\/run_/);
	const heldId = decodeURIComponent(page.url().split("#/runs/")[1]);
	assert.notEqual(heldId, helloId);
	await page.locator('[data-testid="event-row"][data-type="approval.requested"]').waitFor();
	await byTest("run-waiting-approval").waitFor();
	await page.locator('[data-testid="run-status"][data-status="running"]').waitFor();
	log(`3. run ${heldId} waits for approval`);
	await byTest("nav-approvals").click();
	const row = page.locator(`[data-testid="approval-row"][data-run-id="${heldId}"]`);
	await row.waitFor();
	assert.match(await row.textContent(), /POST/);
	await row.locator('[data-testid="approval-approve"]').click();
	await byTest("approvals-flash").getByText("Approved").waitFor();
	await row.waitFor({ state: "detached" });
	log("   approved from the approvals view");
	await page.goto(`${URL_BASE}/#/runs/${encodeURIComponent(heldId)}`);
	await page.locator('[data-testid="run-status"][data-status="succeeded"]').waitFor();
	await page.locator('[data-testid="event-row"][data-type="run.finished"]').waitFor();
	for (const t of ["approval.requested", "approval.decided", "egress.allowed"])
		await page.locator(`[data-testid="event-row"][data-type="${t}"]`).first().waitFor();
	assert.match(await page.locator('[data-testid="event-row"][data-type="approval.decided"]').textContent(), /approved by key:/);
	assert.match(await byTest("run-output").textContent(), /"status": 200/);
	assert.match(await byTest("run-output").textContent(), /"path": "\/deploy"/);
	await byTest("run-waiting-approval").waitFor({ state: "hidden" });
	await page.waitForFunction(() => document.querySelector('[data-testid="run-stdout"]').textContent.includes("upstream answered 200"));
	log(`   run ${heldId} succeeded; the upstream answered 200`);

	/* 4. The screenshot, kept by the test. */
	mkdirSync(path.dirname(SHOT), { recursive: true });
	await page.evaluate(() => document.activeElement && document.activeElement.blur());
	await page.screenshot({ path: SHOT, fullPage: true, animations: "disabled" });
	log("4. screenshot: " + SHOT);

	/* 5. The policy page: the operator's rule for deploy.test, as the
	 * effective policy shows it, with the line it came from. */
	await byTest("nav-policy").click();
	const rule = page.locator('[data-testid="policy-rule"]', { hasText: "deploy.test" });
	await rule.waitFor();
	assert.match(await rule.textContent(), /deploy\.test.*POST.*required.*policy\.yaml:\d+/);
	assert.match(await byTest("policy-source").textContent(), /operator's applies/);
	log("5. policy page: the effective rule for deploy.test names the operator's line");

	assert.deepEqual(problems, [], "no script error or CSP violation");
	await context.close();
} catch (e) {
	failed = true;
	console.error("FAILED:", e && e.stack ? e.stack : e);
	if (problems.length) console.error("page problems:\n  " + problems.join("\n  "));
	try {
		const pages = browser.contexts().flatMap((c) => c.pages());
		if (pages.length) {
			const fail = SHOT.replace(/\.png$/, "") + "-failure.png";
			mkdirSync(path.dirname(fail), { recursive: true });
			await pages[0].screenshot({ path: fail, fullPage: true });
			console.error("failure screenshot: " + fail);
		}
	} catch (_) { /* the page may be gone */ }
} finally {
	await browser.close();
}
log(failed ? "FAILED" : "passed");
process.exit(failed ? 1 : 0);
