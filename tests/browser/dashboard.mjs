// SPDX-License-Identifier: Apache-2.0
// End-to-end test of cordon serve's dashboard in Debian's headless Chromium,
// driven by playwright-core (no browser download of its own).
// tests/integration/test_dashboard.py sets up the server and runs this:
//
//   CORDON_URL=http://127.0.0.1:PORT CORDON_API_KEY=cdn_live_… \
//   CORDON_HELLO_AGENT=hello CORDON_APPROVAL_AGENT=deployer \
//   CORDON_TICKER_AGENT=ticker CORDON_TICKER_SECRET=… \
//   CORDON_UPSTREAM_URL=http://hook.test:PORT/deploy \
//   [CORDON_CALLER_RUN=RUN_ID (a run that called another agent)] \
//   [CORDON_DEPS_AGENT=NAME (an agent that declares dependencies, not built)] \
//   [CORDON_ARTIFACTS=DIR] [CHROMIUM=/usr/bin/chromium] node dashboard.mjs
//
// Steps: 1. sign in with the key; 2. dispatch a run and watch it finish;
// 3. approve a held request from the approvals view and see the run go on
// and succeed; 4. a full-page screenshot of that run's page; 5. the policy
// page; 6. a run's stdout while it runs (secrets redacted); 7. the runs
// list's dates and date range; 8. agents; 9. secrets (set, remove);
// 10. API keys (create, revoke); 11. the same pages as a member, read-only;
// 12. usage; 13. dependencies.
// With CORDON_SCENARIO=builtin (a server without STATE/policy.yaml) it
// signs in and checks that the policy page shows the built-in policy.
//
// Every page gets a full-page screenshot in CORDON_ARTIFACTS (default
// build/browser-artifacts/ of the checkout), kept after the run, and a
// failure leaves failure.png there.
import { strict as assert } from "node:assert";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
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
const SCENARIO = env("CORDON_SCENARIO", "full");
const UPSTREAM_URL = env("CORDON_UPSTREAM_URL", "");
const TICKER = env("CORDON_TICKER_AGENT", "ticker");
const TICKER_SECRET = env("CORDON_TICKER_SECRET", "");
const CALLER_RUN = env("CORDON_CALLER_RUN", "");
const DEPS_AGENT = env("CORDON_DEPS_AGENT", "");
const ARTIFACTS = path.resolve(env("CORDON_ARTIFACTS", path.join(here, "..", "..", "build", "browser-artifacts")));
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
	mkdirSync(ARTIFACTS, { recursive: true });
	rmSync(path.join(ARTIFACTS, "failure.png"), { force: true }); // a past run's
	const shot = async (name) => {
		await page.evaluate(() => document.activeElement && document.activeElement.blur());
		const file = path.join(ARTIFACTS, name + ".png");
		await page.screenshot({ path: file, fullPage: true, animations: "disabled" });
		return file;
	};
	const signIn = async (key, role) => {
		await byTest("signin-key").waitFor();
		await byTest("signin-key").fill(key);
		await byTest("signin-submit").click();
		await byTest("whoami-role").getByText(role).waitFor();
	};

	if (SCENARIO === "builtin") {
		await page.goto(URL_BASE + "/");
		await signIn(KEY, "owner");
		await byTest("nav-policy").click();
		await byTest("policy-builtin-note").waitFor();
		assert.match(await byTest("policy-builtin-note").textContent(), /built-in policy/);
		assert.equal(await byTest("policy-operator-source").textContent(), "built-in");
		assert.ok(await page.locator("#policy-operator-details").evaluate((d) => d.open), "the built-in policy is shown, not folded away");
		assert.match(await byTest("policy-operator-yaml").textContent(), /version: 1/);
		log("built-in policy shown: " + await shot("policy-builtin"));
		assert.deepEqual(problems, [], "no script error or CSP violation");
		await context.close();
		throw "done";
	}

	/* 1. Sign in. */
	await page.goto(URL_BASE + "/");
	await byTest("signin-key").waitFor();
	await byTest("signin-key").fill("cdn_live_" + "0".repeat(64));
	await byTest("signin-submit").click();
	await byTest("signin-error").getByText("unknown API key").waitFor();
	await shot("01-signin");
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

	/* 2b. A run that called another agent links its child, and the child
	 * its parent. */
	if (CALLER_RUN) {
		await page.goto(`${URL_BASE}/#/runs/${encodeURIComponent(CALLER_RUN)}`);
		const child = byTest("run-child").locator("a").first();
		await child.waitFor();
		const childId = (await child.textContent()).trim();
		assert.match(childId, /^run_/);
		assert.ok((await byTest("run-child").first().textContent()).includes("callee@1"));
		await child.click();
		await page.waitForURL(new RegExp("#/runs/" + childId + "$"));
		await page.locator('[data-testid="run-id"]').getByText(childId).waitFor();
		const parent = byTest("run-parent").locator("a");
		assert.equal((await parent.textContent()).trim(), CALLER_RUN);
		log("2b. a call's parent and child link each other");
		await page.goto(`${URL_BASE}/#/runs/${encodeURIComponent(helloId)}`);
		await byTest("run-id").getByText(helloId).waitFor();
	}
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

	/* 4. The screenshot of a finished run's page. */
	const chip = await byTest("chip-supervisor").textContent();
	assert.match(chip, /agent unprivileged/, "the chip says who the agent ran as");
	assert.doesNotMatch(chip, /^run as root$/);
	log("4. screenshot: " + await shot("02-run"));

	/* 5. The policy page: the operator's rule for deploy.test, as the
	 * effective policy shows it, with the line it came from. */
	await byTest("nav-policy").click();
	const rule = page.locator('[data-testid="policy-rule"]', { hasText: "deploy.test" });
	await rule.waitFor();
	assert.match(await rule.textContent(), /deploy\.test.*POST.*required.*policy\.yaml:\d+/);
	assert.match(await byTest("policy-source").textContent(), /operator's applies/);
	assert.ok(await byTest("policy-builtin-note").isHidden(), "STATE/policy.yaml exists: no built-in note");
	await shot("03-policy");
	log("5. policy page: the effective rule for deploy.test names the operator's line");

	/* 6. stdout while the run goes on: the first lines before the end,
	 * the secret's value never on the page. */
	await byTest("nav-runs").click();
	await byTest("dispatch-agent").locator(`option[value="${TICKER}"]`).waitFor({ state: "attached" });
	await byTest("dispatch-agent").selectOption(TICKER);
	await byTest("dispatch-input").fill("{}");
	await byTest("dispatch-submit").click();
	await page.waitForURL(/#\/runs\/run_/);
	const tickId = decodeURIComponent(page.url().split("#/runs/")[1]);
	await page.waitForFunction(() => document.querySelector('[data-testid="run-stdout"]').textContent.includes("tick 1"));
	// The page shows the new status on the first output, without waiting
	// for the poll (1.5 s): well before tick 2 comes, 4 s later.
	await page.locator('[data-testid="run-status"][data-status="running"]').waitFor({ timeout: 1000 });
	assert.ok(!(await byTest("run-stdout").textContent()).includes("tick 2"), "stdout shown while the run goes on");
	assert.match(await byTest("run-stdout").textContent(), /\[REDACTED:TICK_TOKEN\]/);
	assert.equal(await byTest("run-events-state").textContent(), "● live");
	log("6. live stdout while running: " + await shot("04-run-live"));
	await page.locator('[data-testid="run-status"][data-status="succeeded"]').waitFor();
	await page.waitForFunction(() => document.querySelector('[data-testid="run-stdout"]').textContent.includes("tick 3"));
	assert.match(await byTest("run-stderr").textContent(), /ticking on stderr/);
	if (TICKER_SECRET) assert.ok(!(await page.content()).includes(TICKER_SECRET), "no secret value on the page");

	/* 7. The runs list: dates with times, and a date range. */
	await byTest("nav-runs").click();
	await page.locator(`[data-testid="run-row"][data-run-id="${tickId}"]`).waitFor();
	const created = await page.locator(`[data-testid="run-row"][data-run-id="${tickId}"] time`).textContent();
	assert.match(created, /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/, "a date with the time: " + created);
	const local = (ms) => { const d = new Date(ms); const p = (n) => String(n).padStart(2, "0");
		return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`; };
	await byTest("runs-filter-since").fill(local(Date.now() + 3600e3));
	await byTest("runs-empty").waitFor();
	assert.match(await byTest("runs-range-note").textContent(), /^Created from \d{4}-/);
	await byTest("runs-filter-since").fill(local(Date.now() - 3600e3));
	await page.locator(`[data-testid="run-row"][data-run-id="${tickId}"]`).waitFor();
	await byTest("runs-filter-until").fill(local(Date.now() - 1800e3));
	await byTest("runs-empty").waitFor();
	await shot("05-runs-range");
	await byTest("runs-filter-clear").click();
	await page.locator(`[data-testid="run-row"][data-run-id="${tickId}"]`).waitFor();
	log("7. runs list: dates with times; a date range narrows it");

	/* 8. Agents: versions, content hash, manifest. */
	await byTest("nav-agents").click();
	await page.locator(`[data-testid="agent-row"][data-name="${HELLO}"] a`).click();
	await byTest("agent-version-row").first().waitFor();
	assert.match(await byTest("agent-name").textContent(), new RegExp(HELLO));
	assert.match(await byTest("agent-version-sha256").first().textContent(), /^[0-9a-f]{64}$/);
	assert.match(await byTest("agent-manifest").textContent(), /"entrypoint"/);
	log("8. agents: " + await shot("06-agents"));

	/* 9. Secrets: set one, never see it again, remove it. */
	const value = "dashboard-secret-" + Math.random().toString(36).slice(2) + "-0123456789";
	await byTest("nav-secrets").click();
	await byTest("secret-name").fill("UI_TOKEN");
	await byTest("secret-value").fill(value);
	await byTest("secret-submit").click();
	await byTest("secrets-flash").getByText("Set UI_TOKEN").waitFor();
	await page.locator('[data-testid="secret-row"][data-name="UI_TOKEN"]').waitFor();
	assert.equal(await byTest("secret-value").inputValue(), "", "the value leaves the form");
	assert.ok(!(await page.content()).includes(value), "the value is nowhere on the page");
	await shot("07-secrets");
	const rm = page.locator('[data-testid="secret-row"][data-name="UI_TOKEN"] [data-testid="secret-remove"]');
	await rm.click();
	await rm.getByText("Click again").waitFor();
	await rm.click();
	await page.locator('[data-testid="secret-row"][data-name="UI_TOKEN"]').waitFor({ state: "detached" });
	log("9. secrets: set and removed; the value never shown");

	/* 10. API keys: create (shown once), revoke. */
	await byTest("nav-keys").click();
	await byTest("key-row").first().waitFor();
	assert.match(await byTest("key-row").first().locator("time").first().textContent(), /^\d{4}-\d{2}-\d{2} /);
	await byTest("key-name").fill("viewer");
	await byTest("key-role").selectOption("member");
	await byTest("key-submit").click();
	await byTest("key-created").waitFor();
	const viewerKey = (await byTest("key-created-value").textContent()).trim();
	assert.match(viewerKey, /^cdn_live_[0-9a-f]{64}$/);
	await shot("08-keys-created");
	await byTest("key-created-hide").click();
	assert.equal(await byTest("key-created-value").textContent(), "");
	assert.ok(!(await page.content()).includes(viewerKey), "the new key leaves the page once copied");
	await byTest("key-name").fill("temp");
	await byTest("key-submit").click();
	await byTest("key-created").waitFor();
	const tempRow = page.locator('[data-testid="key-row"]', { hasText: "temp" });
	await tempRow.waitFor();
	const revoke = tempRow.locator('[data-testid="key-revoke"]');
	await revoke.click();
	await revoke.getByText("Click again").waitFor();
	await revoke.click();
	await page.locator('[data-testid="key-row"][data-revoked="true"]', { hasText: "temp" }).waitFor();
	log("10. keys: " + await shot("09-keys"));

	/* 10b. Schedules: one made through the API fires; the owner pauses it. */
	const made = await fetch(URL_BASE + "/v1/schedules", { method: "POST",
		headers: { "Authorization": "Bearer " + KEY, "Content-Type": "application/json" },
		body: JSON.stringify({ name: "every-second", agent: HELLO, cron: "@every 1s" }) });
	assert.equal(made.status, 201, await made.text());
	await byTest("nav-schedules").click();
	const srow = page.locator('[data-testid="schedule-row"][data-name="every-second"]');
	await srow.waitFor();
	await srow.locator('[data-testid="schedule-fired"]').filter({ hasNotText: /^0 \// }).waitFor({ timeout: WAIT });
	await srow.locator('[data-testid="schedule-toggle"]').click();
	await page.locator('[data-testid="schedule-row"][data-name="every-second"][data-paused="true"]').waitFor();
	log("10b. schedules: fired, paused; " + await shot("09b-schedules"));

	/* 10c. Services: one made through the API runs; the owner pauses it,
	 * and the badge says so. */
	const svcMade = await fetch(URL_BASE + "/v1/services", { method: "POST",
		headers: { "Authorization": "Bearer " + KEY, "Content-Type": "application/json" },
		body: JSON.stringify({ name: "keeper", agent: HELLO, env: { MODE: "x" } }) });
	assert.equal(svcMade.status, 201, await svcMade.text());
	await byTest("nav-services").click();
	const vrow = page.locator('[data-testid="service-row"][data-name="keeper"]');
	await vrow.waitFor();
	await page.locator('[data-testid="service-row"][data-name="keeper"]:not([data-state="starting"])').waitFor({ timeout: WAIT });
	await vrow.locator('[data-testid="service-toggle"]').click();
	await page.locator('[data-testid="service-row"][data-name="keeper"][data-state="paused"]').waitFor();
	assert.match(await page.locator('[data-testid="service-row"][data-name="keeper"] [data-testid="service-reason"]').innerText(), /paused by key/);
	log("10c. services: running, paused; " + await shot("09c-services"));

	/* 11. A member: the same pages, read-only. */
	await byTest("sign-out").click();
	await signIn(viewerKey, "member");
	await byTest("nav-secrets").click();
	await byTest("secrets-member-note").waitFor();
	assert.ok(await byTest("secret-form").isHidden(), "no form for a member");
	assert.equal(await byTest("secret-remove").count(), 0);
	await shot("10-member-secrets");
	await byTest("nav-keys").click();
	await byTest("keys-member-note").waitFor();
	assert.ok(await byTest("key-form").isHidden() && await byTest("keys-table").isHidden());
	await byTest("nav-agents").click();
	await byTest("agent-row").first().waitFor();
	await byTest("nav-policy").click();
	await byTest("policy-member-note").waitFor();
	assert.ok(await page.locator("#policy-yaml").evaluate((t) => t.readOnly));
	await byTest("nav-approvals").click();
	await byTest("approvals-member-note").waitFor();
	log("11. member: read-only pages; " + await shot("11-member-approvals"));

	/* 12. Usage, as the member: the runs above, by agent, and the total. */
	await byTest("nav-usage").click();
	await page.locator(`[data-testid="usage-row"][data-key="${HELLO}"]`).waitFor();
	const total = Number(await byTest("usage-total").locator('[data-testid="usage-runs"]').textContent());
	assert.ok(total >= 2, "the total counts the runs made above: " + total);
	await byTest("usage-group").selectOption("none");
	await byTest("usage-row").first().waitFor({ state: "detached" });
	assert.equal(Number(await byTest("usage-total").locator('[data-testid="usage-runs"]').textContent()), total);
	log("12. usage: " + total + " runs; " + await shot("12-member-usage"));

	/* 13. Dependencies, as the member: the agent that declares them, its
	 * layer not built on this host. */
	if (DEPS_AGENT) {
		await byTest("nav-deps").click();
		const drow = page.locator(`[data-testid="deps-row"][data-agent="${DEPS_AGENT}"]`);
		await drow.waitFor();
		assert.equal(await drow.getAttribute("data-built"), "no");
		assert.equal(await drow.locator('[data-testid="deps-built"]').innerText(), "no");
		const layer = drow.locator('[data-testid="deps-layer"] .hash');
		const full = await layer.getAttribute("title");
		assert.match(full, /^[0-9a-f]{64}$/);
		assert.equal(await layer.innerText(), full.slice(0, 12) + "…");
		const text = await drow.innerText();
		assert.match(text, /requirements\.txt/);
		assert.match(text, /Python 3\./);
		log("13. dependencies: " + DEPS_AGENT + " not built; " + await shot("13-member-deps"));
	}

	assert.deepEqual(problems, [], "no script error or CSP violation");
	await context.close();
} catch (e) {
	if (e === "done") { /* a short scenario ended well */ } else {
	failed = true;
	console.error("FAILED:", e && e.stack ? e.stack : e);
	if (problems.length) console.error("page problems:\n  " + problems.join("\n  "));
	try {
		const pages = browser.contexts().flatMap((c) => c.pages());
		if (pages.length) {
			const fail = path.join(ARTIFACTS, "failure.png");
			mkdirSync(ARTIFACTS, { recursive: true });
			await pages[0].screenshot({ path: fail, fullPage: true });
			console.error("failure screenshot: " + fail);
		}
	} catch (_) { /* the page may be gone */ }
	}
} finally {
	await browser.close();
}
log(failed ? "FAILED" : "passed");
process.exit(failed ? 1 : 0);
