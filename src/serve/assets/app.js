// SPDX-License-Identifier: Apache-2.0
// The dashboard of `cordon serve`: plain JavaScript, no build step, no
// framework. The page's CSP allows only this file, so there is no inline
// script or style. Everything that comes from the server (names, agent
// output, events) goes into the page as text (textContent, .value), never as
// HTML.
"use strict";

const KEY_STORAGE = "cordon.apiKey";
const FINAL = new Set(["succeeded", "failed", "timeout", "oom", "killed", "error", "cancelled"]);
const OK_STATUS = new Set(["succeeded"]);

const state = {
	key: null,
	me: null,
	scope: null, // the current view's timers and requests
	runsFilter: { status: "", agent: "" },
	runsCursors: [null], // the cursor of each page visited; the last is the current one
	agents: null,
};

/* ------------------------------------------------------------ utilities */

const $ = (id) => document.getElementById(id);

// el("td", {class: "x", text: "y", testid: "z"}, child...): a DOM element.
// Children are nodes or strings (as text); null and false are skipped.
function el(tag, attrs, ...children) {
	const e = document.createElement(tag);
	for (const [k, v] of Object.entries(attrs || {})) {
		if (v === null || v === undefined || v === false) continue;
		if (k === "class") e.className = v;
		else if (k === "text") e.textContent = v;
		else if (k === "testid") e.dataset.testid = v;
		else if (k === "data") Object.assign(e.dataset, v);
		else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
		else if (v === true) e.setAttribute(k, "");
		else e.setAttribute(k, String(v));
	}
	for (const c of children.flat()) {
		if (c === null || c === undefined || c === false) continue;
		e.append(c instanceof Node ? c : document.createTextNode(String(c)));
	}
	return e;
}

function clear(node) {
	while (node.firstChild) node.removeChild(node.firstChild);
	return node;
}

function show(node, on) {
	node.hidden = !on;
	return node;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function fmtBytes(n) {
	if (typeof n !== "number" || !isFinite(n)) return "–";
	if (n < 1024) return n + " B";
	const units = ["KiB", "MiB", "GiB", "TiB"];
	let v = n / 1024, i = 0;
	while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
	return (v < 10 ? v.toFixed(1) : Math.round(v)) + " " + units[i];
}

function fmtMs(ms) {
	if (typeof ms !== "number" || !isFinite(ms)) return "–";
	if (ms < 1000) return ms + " ms";
	if (ms < 60000) return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + " s";
	const s = Math.round(ms / 1000);
	return Math.floor(s / 60) + " min " + (s % 60) + " s";
}

function pad(n, w = 2) { return String(n).padStart(w, "0"); }

// An ISO time as local "YYYY-MM-DD HH:MM:SS" (the time only when today).
function fmtTime(iso, withMs) {
	if (!iso) return "–";
	const d = new Date(iso);
	if (isNaN(d)) return String(iso);
	const t = pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()) +
		(withMs ? "." + pad(d.getMilliseconds(), 3) : "");
	const now = new Date();
	if (d.toDateString() === now.toDateString()) return t;
	return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + t;
}

function timeEl(iso, withMs) {
	return el("time", { datetime: iso || null, title: iso || null, text: fmtTime(iso, withMs) });
}

function shortHash(h, n = 12) {
	return typeof h === "string" && h ? h.slice(0, n) + (h.length > n ? "…" : "") : "–";
}

function hashEl(h, n) {
	return el("span", { class: "mono hash", title: h || null, text: shortHash(h, n) });
}

function statusEl(status, big) {
	const s = String(status || "unknown");
	return el("span", { class: "status status-" + s.replace(/[^a-z]/g, "") + (big ? " status-big" : ""), text: s });
}

function setStatus(node, status) {
	const s = String(status || "unknown");
	node.className = "status status-big status-" + s.replace(/[^a-z]/g, "");
	node.textContent = s;
	node.dataset.status = s;
}

function runLink(id, text) {
	return el("a", { class: "mono", href: "#/runs/" + encodeURIComponent(id), text: text || id });
}

/* ------------------------------------------------------------- the API */

class ApiError extends Error {
	constructor(status, code, message) {
		super(message);
		this.status = status;
		this.code = code;
	}
}

// api("/v1/...", {method, json, body, headers, as: "json"|"text"|"blob"|"response", signal})
async function api(path, opts = {}) {
	const headers = new Headers(opts.headers || {});
	headers.set("Authorization", "Bearer " + (opts.key || state.key || ""));
	let body = opts.body;
	if (opts.json !== undefined) {
		headers.set("Content-Type", "application/json");
		body = JSON.stringify(opts.json);
	}
	let res;
	try {
		res = await fetch(path, { method: opts.method || "GET", headers, body, signal: opts.signal, cache: "no-store", credentials: "omit" });
	} catch (e) {
		if (e.name === "AbortError") throw e;
		throw new ApiError(0, "network", "cannot reach the server (" + e.message + ")");
	}
	if (!res.ok) {
		let code = "http_" + res.status, message = res.statusText || "HTTP " + res.status;
		try {
			const j = await res.json();
			if (j && j.error) {
				code = String(j.error.code || code);
				message = String(j.error.message || message);
			}
		} catch (_) { /* not JSON */ }
		const err = new ApiError(res.status, code, message);
		if (res.status === 401 && !opts.key) signOut("Signed out: " + message);
		throw err;
	}
	switch (opts.as) {
	case "response": return res;
	case "text": return res.text();
	case "blob": return res.blob();
	default: return res.json();
	}
}

function errorText(err) {
	if (err instanceof ApiError) return err.status ? `${err.code} (${err.status}): ${err.message}` : err.message;
	return String(err && err.message ? err.message : err);
}

function errorEl(err) {
	if (err instanceof ApiError) {
		return el("div", { class: "api-error" },
			el("strong", { text: err.code }), err.status ? el("span", { class: "muted", text: " HTTP " + err.status }) : null,
			el("div", { class: "api-error-msg", text: err.message }));
	}
	return el("div", { class: "api-error" }, el("div", { class: "api-error-msg", text: String(err && err.message ? err.message : err) }));
}

function showFormError(node, err) {
	clear(node);
	if (err) node.append(errorEl(err));
	show(node, !!err);
}

function banner(err) {
	if (err && err.name === "AbortError") return;
	const b = $("banner");
	clear($("banner-text"));
	if (err) $("banner-text").append(errorEl(err));
	show(b, !!err);
}

/* -------------------------------------------------- a view's lifetime */

// Each view gets a scope: its timers and requests end when the view does.
class Scope {
	constructor() {
		this.alive = true;
		this.ctl = new AbortController();
		this.timers = new Set();
	}
	get signal() { return this.ctl.signal; }
	later(fn, ms) {
		const t = setTimeout(() => { this.timers.delete(t); if (this.alive) fn(); }, ms);
		this.timers.add(t);
		return t;
	}
	// Like later(), but replaces the timer of the same name.
	laterOnce(name, fn, ms) {
		this.named = this.named || {};
		if (this.named[name]) { clearTimeout(this.named[name]); this.timers.delete(this.named[name]); }
		this.named[name] = this.later(fn, ms);
	}
	// Calls fn now and then ms after each call has finished, while the page is visible.
	poll(fn, ms) {
		const tick = async () => {
			if (!this.alive) return;
			if (document.visibilityState === "visible") {
				try { await fn(); } catch (e) { if (e.name !== "AbortError" && this.alive) banner(e); }
			}
			this.later(tick, ms);
		};
		tick();
	}
	end() {
		this.alive = false;
		this.ctl.abort();
		for (const t of this.timers) clearTimeout(t);
		this.timers.clear();
	}
}

/* ------------------------------------------------------ sign in / out */

function signOut(message) {
	sessionStorage.removeItem(KEY_STORAGE);
	state.key = null;
	state.me = null;
	state.agents = null;
	if (state.scope) state.scope.end();
	if (globalScope) globalScope.end();
	globalScope = null;
	state.scope = null;
	show($("nav"), false);
	show($("who"), false);
	banner(null);
	for (const v of document.querySelectorAll(".view")) show(v, false);
	show($("view-signin"), true);
	showFormError($("signin-error"), message ? new ApiError(0, "signed_out", message) : null);
	$("signin-key").value = "";
	$("signin-key").focus();
}

function showIdentity(me) {
	$("who-role").textContent = me.role;
	$("who-role").className = "who-role role-" + (me.role === "owner" ? "owner" : "member");
	$("who-ws").textContent = me.workspace;
	$("who-id").textContent = me.id + (me.name ? " (" + me.name + ")" : "");
	show($("who"), true);
	show($("nav"), true);
}

async function signIn(key) {
	const me = await api("/v1/whoami", { key });
	state.key = key;
	state.me = me;
	sessionStorage.setItem(KEY_STORAGE, key);
	showIdentity(me);
	show($("view-signin"), false);
	startGlobal();
	route();
}

const isOwner = () => state.me && state.me.role === "owner";

/* ---------------------------------------------------------- routing */

const VIEWS = {
	runs: viewRuns,
	run: viewRun,
	approvals: viewApprovals,
	audit: viewAudit,
	policy: viewPolicy,
	secrets: viewSecrets,
};

function parseHash() {
	const parts = location.hash.replace(/^#\/?/, "").split("/").map((p) => { try { return decodeURIComponent(p); } catch (_) { return ""; } });
	const top = parts[0] || "runs";
	if (top === "runs" && parts[1]) return { view: "run", arg: parts[1] };
	if (top === "audit") return { view: "audit", arg: parts[1] || "" };
	if (VIEWS[top]) return { view: top, arg: "" };
	return { view: "runs", arg: "" };
}

function route() {
	if (!state.key) return;
	if (state.scope) state.scope.end();
	banner(null);
	const { view, arg } = parseHash();
	for (const v of document.querySelectorAll(".view")) show(v, v.id === "view-" + view);
	for (const a of document.querySelectorAll("#nav a")) {
		const on = a.dataset.route === view || (view === "run" && a.dataset.route === "runs");
		a.classList.toggle("active", on);
		if (on) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
	}
	const scope = new Scope();
	state.scope = scope;
	window.scrollTo(0, 0);
	Promise.resolve(VIEWS[view](scope, arg)).catch((e) => { if (scope.alive) banner(e); });
}

/* Pending approvals, counted in the navigation bar while signed in. */
let globalScope = null;

function setApprovalCount(n) {
	const c = $("approvals-count");
	c.textContent = String(n);
	show(c, n > 0);
}

function startGlobal() {
	if (globalScope) globalScope.end();
	const g = new Scope();
	globalScope = g;
	g.poll(async () => {
		if (parseHash().view === "approvals") return; // that view polls faster
		const j = await api("/v1/approvals", { signal: g.signal });
		if (g.alive) setApprovalCount((j.approvals || []).length);
	}, 4000);
}

/* ---------------------------------------------------------- runs view */

async function loadAgents(signal) {
	const j = await api("/v1/agents", { signal });
	state.agents = (j.items || []).slice().sort((a, b) => a.name.localeCompare(b.name));
	return state.agents;
}

function fillAgentSelects(agents) {
	const sel = $("dispatch-agent");
	const prev = sel.value;
	clear(sel);
	for (const a of agents) sel.append(el("option", { value: a.name, text: `${a.name}  (v${a.version})` }));
	if (agents.some((a) => a.name === prev)) sel.value = prev;
	show($("dispatch-agent-note"), agents.length === 0);

	const f = $("runs-filter-agent");
	clear(f);
	f.append(el("option", { value: "", text: "any" }));
	for (const a of agents) f.append(el("option", { value: a.name, text: a.name }));
	if (state.runsFilter.agent && !agents.some((a) => a.name === state.runsFilter.agent))
		f.append(el("option", { value: state.runsFilter.agent, text: state.runsFilter.agent }));
	f.value = state.runsFilter.agent;
	validateInput();
}

// The input textarea: a JSON object of at most 1 MiB.
function parseInput() {
	const text = $("dispatch-input").value;
	if (!text.trim()) return { ok: true, value: {} };
	if (new TextEncoder().encode(text).length > 1 << 20) return { ok: false, why: "the input is over 1 MiB" };
	let v;
	try { v = JSON.parse(text); } catch (e) { return { ok: false, why: "not valid JSON: " + e.message }; }
	if (v === null || typeof v !== "object" || Array.isArray(v)) return { ok: false, why: "the input must be a JSON object ({…}), not " + (Array.isArray(v) ? "an array" : v === null ? "null" : typeof v) };
	return { ok: true, value: v };
}

function validateInput() {
	const r = parseInput();
	const st = $("dispatch-input-status");
	st.textContent = r.ok ? "✓ a valid JSON object" : "✗ " + r.why;
	st.className = "field-status " + (r.ok ? "ok" : "bad");
	$("dispatch-input").classList.toggle("invalid", !r.ok);
	$("dispatch-submit").disabled = !r.ok || !$("dispatch-agent").value;
	return r;
}

async function loadRuns(scope) {
	const q = new URLSearchParams({ limit: "25" });
	if (state.runsFilter.status) q.set("status", state.runsFilter.status);
	if (state.runsFilter.agent) q.set("agent", state.runsFilter.agent);
	const cursor = state.runsCursors[state.runsCursors.length - 1];
	if (cursor) q.set("cursor", cursor);
	const j = await api("/v1/runs?" + q, { signal: scope.signal });
	if (!scope.alive) return;
	const body = clear($("runs-body"));
	const runs = j.runs || [];
	for (const r of runs) {
		body.append(el("tr", { testid: "run-row", data: { runId: r.id, status: r.status } },
			el("td", {}, runLink(r.id)),
			el("td", {}, el("span", { text: r.agent }), el("span", { class: "muted", text: r.version ? " v" + r.version : "" })),
			el("td", {}, statusEl(r.status)),
			el("td", { class: "num mono", text: FINAL.has(r.status) && r.exit_code >= 0 ? r.exit_code : "–" }),
			el("td", {}, timeEl(r.created)),
			el("td", { class: "num", text: fmtMs(r.duration_ms) }),
			el("td", { class: "muted small ellipsis", title: r.caller, text: r.caller })));
	}
	show($("runs-empty"), runs.length === 0);
	const page = state.runsCursors.length;
	$("runs-page").textContent = "page " + page;
	$("runs-first").disabled = page === 1;
	$("runs-next").disabled = !j.next_cursor;
	$("runs-next").dataset.cursor = j.next_cursor || "";
	const busy = runs.some((r) => !FINAL.has(r.status));
	show($("runs-live"), busy);
	if (busy) scope.laterOnce("runs", () => loadRuns(scope).catch((e) => scope.alive && e.name !== "AbortError" && banner(e)), 1500);
}

async function viewRuns(scope) {
	$("runs-filter-status").value = state.runsFilter.status;
	const reload = () => { if (scope.alive) loadRuns(scope).catch((e) => scope.alive && banner(e)); };
	const handlers = {
		"runs-filter-status": ["change", (e) => { state.runsFilter.status = e.target.value; state.runsCursors = [null]; reload(); }],
		"runs-filter-agent": ["change", (e) => { state.runsFilter.agent = e.target.value; state.runsCursors = [null]; reload(); }],
		"runs-refresh": ["click", reload],
		"runs-first": ["click", () => { state.runsCursors = [null]; reload(); }],
		"runs-next": ["click", (e) => { if (e.target.dataset.cursor) { state.runsCursors.push(e.target.dataset.cursor); reload(); } }],
		"dispatch-input": ["input", validateInput],
		"dispatch-agent": ["change", validateInput],
		"dispatch-form": ["submit", (e) => { e.preventDefault(); dispatchRun(scope); }],
	};
	bindOnce(handlers);
	showFormError($("dispatch-error"), null);
	validateInput();
	const agents = loadAgents(scope.signal).then((a) => scope.alive && fillAgentSelects(a));
	await Promise.all([agents, loadRuns(scope)]);
}

// Static elements: each view entry replaces the listener its last entry set.
function bindOnce(handlers) {
	for (const [id, [ev, fn]] of Object.entries(handlers)) {
		const node = $(id);
		if (node._cordonHandler && node._cordonHandler[ev]) node.removeEventListener(ev, node._cordonHandler[ev]);
		node._cordonHandler = node._cordonHandler || {};
		node._cordonHandler[ev] = fn;
		node.addEventListener(ev, fn);
	}
}

async function dispatchRun(scope) {
	const r = validateInput();
	if (!r.ok) return;
	const agent = $("dispatch-agent").value;
	const btn = $("dispatch-submit");
	btn.disabled = true;
	showFormError($("dispatch-error"), null);
	try {
		const j = await api("/v1/runs", { method: "POST", json: { agent, input: r.value } });
		location.hash = "#/runs/" + encodeURIComponent(j.id);
	} catch (e) {
		if (scope.alive) showFormError($("dispatch-error"), e);
	} finally {
		btn.disabled = false;
	}
}

/* ------------------------------------------------------- one run view */

function kv(dl, label, value, opts = {}) {
	const v = value instanceof Node ? value : el("span", { text: value === undefined || value === null || value === "" ? "–" : String(value) });
	dl.append(el("dt", { text: label }), el("dd", { testid: opts.testid, class: opts.class }, v));
}

function yesNo(b) { return b ? "yes" : "no"; }

function chip(text, kind, title) {
	return el("span", { class: "chip" + (kind ? " chip-" + kind : ""), title, text });
}

function renderProtections(p) {
	const box = clear($("run-protections"));
	if (!p) { box.append(el("span", { class: "muted", text: "not known yet" })); return; }
	box.append(
		chip("user namespace " + (p.userns ? "✓" : "✗"), p.userns ? "ok" : "bad"),
		chip("seccomp " + (p.seccomp ? "✓" : "✗"), p.seccomp ? "ok" : "bad"),
		chip(p.landlock_abi ? "landlock ABI " + p.landlock_abi : "landlock ✗", p.landlock_abi ? "ok" : "bad"),
		chip("cgroup " + (p.cgroup || "none"), p.cgroup ? "ok" : "bad"),
		chip(p.rootless ? "rootless" : "run as root", ""));
	for (const d of p.degraded || []) box.append(chip("degraded: " + d, "warn"));
}

// name@version; a run not started yet has no version, a directory run has 0.
function agentLabel(rec) {
	if (rec.version) return rec.agent + "@" + rec.version;
	return rec.agent + (FINAL.has(rec.status) || rec.status === "running" ? " (directory)" : "");
}

function renderRecord(rec) {
	const res = rec.result || null;
	$("run-id").textContent = rec.id;
	$("run-agent").textContent = agentLabel(rec);
	$("run-agent-sha").textContent = rec.sha256 ? "sha256:" + rec.sha256.slice(0, 16) + "…" : "";
	$("run-agent-sha").title = rec.sha256 || "";
	setStatus($("run-status"), rec.status);
	$("run-audit-link").href = "#/audit/" + encodeURIComponent(rec.id);

	const dl = clear($("run-result"));
	kv(dl, "Status", statusEl(rec.status), { testid: "run-result-status" });
	let exit = FINAL.has(rec.status) && rec.exit_code >= 0 ? String(rec.exit_code) : "–";
	if (res && res.signal) exit += " (signal " + res.signal + ")";
	kv(dl, "Exit code", exit, { testid: "run-exit-code", class: "mono" });
	kv(dl, "Duration", fmtMs(res && typeof res.duration_ms === "number" ? res.duration_ms : rec.duration_ms), { testid: "run-duration" });
	if (res && typeof res.setup_ms === "number") kv(dl, "Setup", fmtMs(res.setup_ms));
	if (res && (res.timed_out || res.oom_killed)) kv(dl, "Stopped by", res.timed_out ? "timeout" : "memory limit (OOM)");
	kv(dl, "Created", timeEl(rec.created));
	kv(dl, "Started", timeEl(rec.started));
	kv(dl, "Finished", timeEl(rec.finished));
	kv(dl, "Caller", rec.caller, { class: "small" });
	if (rec.error || (res && res.error)) kv(dl, "Error", rec.error || res.error, { testid: "run-record-error", class: "bad-text" });

	const rv = clear($("run-resolved"));
	const ra = res && res.resolved ? res.resolved.agent : null;
	kv(rv, "Agent", el("span", {}, el("span", { text: ra ? ra.name + "@" + ra.version : agentLabel(rec) }), el("br"),
		el("span", { class: "mono hash-full", text: (ra ? ra.sha256 : rec.sha256) || "resolved when the run starts" })), { testid: "run-resolved-agent" });
	const caps = res && res.resolved ? res.resolved.capabilities || [] : [];
	kv(rv, "Capabilities", caps.length ? el("span", {}, ...caps.map((c) => el("div", {}, el("span", { text: c.name + "@" + c.version + " " }), hashEl(c.sha256, 16)))) : "none");
	const env = res && res.resolved ? res.resolved.env : null;
	kv(rv, "Env", env ? el("span", {}, el("span", { text: env.name + "@" + env.version + " " }), hashEl(env.sha256, 16)) : "none");
	kv(rv, "Secrets", res && res.secrets && res.secrets.length ? res.secrets.join(", ") : "none");
	kv(rv, "Input", res && res.input_sha256 ? el("span", {}, el("span", { class: "muted", text: "sha256 " }), hashEl(res.input_sha256, 16)) : "–");

	if (res) renderProtections(res.protections);
	const rr = clear($("run-resources"));
	if (res && res.resources) {
		kv(rr, "Wall / CPU", fmtMs(res.resources.wall_ms) + " / " + fmtMs(res.resources.cpu_ms));
		kv(rr, "Peak memory", fmtBytes(res.resources.mem_peak_bytes));
	}
	if (res) {
		kv(rr, "Steps", res.steps);
		if (res.egress) kv(rr, "Egress", `${res.egress.allowed} allowed, ${res.egress.blocked} blocked`, { testid: "run-egress" });
		if (res.audit) kv(rr, "Audit", el("span", {}, el("span", { text: res.audit.records + " records, head " }), hashEl(res.audit.head, 12)));
	}

	const out = $("run-output");
	if (!res) out.textContent = FINAL.has(rec.status) ? "(no result)" : "(the output appears when the run ends)";
	else if (res.output === undefined || res.output === null) out.textContent = "(no output.json)";
	else out.textContent = JSON.stringify(res.output, null, 2);

	show($("run-cancel"), !FINAL.has(rec.status));
}

function renderArtifacts(runId, res) {
	const box = clear($("run-artifacts"));
	const list = res && res.artifacts ? res.artifacts : [];
	if (!res) { box.append(el("p", { class: "muted", text: "Artifacts are collected when the run ends." })); return; }
	// The signed evidence pack: record, events, steps, audit log, artifact
	// manifest; `cordon evidence verify` checks it.
	const ev = el("a", { href: "#", class: "btn btn-small", testid: "evidence-download", text: "Evidence pack" });
	ev.addEventListener("click", (e) => downloadPath(e, `/v1/runs/${encodeURIComponent(runId)}/evidence`, `${runId}.evidence.tar.gz`, ev));
	box.append(el("p", { class: "muted" }, ev));
	if (!list.length) { box.append(el("p", { class: "muted", text: "No artifacts." })); return; }
	const tb = el("tbody");
	for (const a of list) {
		const link = el("a", { href: "#", class: "btn btn-small", testid: "artifact-download", data: { name: a.name }, text: "Download" });
		link.addEventListener("click", (e) => downloadArtifact(e, runId, a.name, link));
		tb.append(el("tr", { testid: "artifact-row" },
			el("td", { class: "mono", text: a.name }),
			el("td", { class: "num", text: fmtBytes(a.size) }),
			el("td", {}, hashEl(a.sha256, 12)),
			el("td", { class: "num" }, link)));
	}
	box.append(el("table", { class: "table" }, el("thead", {}, el("tr", {}, el("th", { text: "Name" }), el("th", { class: "num", text: "Size" }), el("th", { text: "sha256" }), el("th"))), tb));
}

// Artifacts need the key, so a plain link cannot fetch them: fetch, then
// hand the bytes to the browser as a download.
function downloadArtifact(e, runId, name, link) {
	return downloadPath(e, `/v1/runs/${encodeURIComponent(runId)}/artifacts/${encodeURIComponent(name)}`, name, link);
}

async function downloadPath(e, path, name, link) {
	if (link.dataset.ready === "1") return; // the object URL is set: let the browser download
	e.preventDefault();
	link.classList.add("busy");
	try {
		const blob = await api(path, { as: "blob" });
		const url = URL.createObjectURL(blob);
		link.href = url;
		link.download = name;
		link.dataset.ready = "1";
		link.click();
		setTimeout(() => { URL.revokeObjectURL(url); link.href = "#"; link.removeAttribute("download"); delete link.dataset.ready; }, 60000);
	} catch (err) {
		banner(err);
	} finally {
		link.classList.remove("busy");
	}
}

async function loadLog(scope, id, which) {
	const pre = $("run-" + which);
	try {
		const text = await api(`/v1/runs/${encodeURIComponent(id)}/${which}`, { as: "text", signal: scope.signal });
		if (!scope.alive) return;
		pre.textContent = text;
		pre.classList.toggle("empty-log", !text);
		if (!text) pre.textContent = "(empty)";
	} catch (e) {
		if (!scope.alive || e.name === "AbortError") return;
		pre.textContent = e.status === 404 ? "(none)" : errorText(e);
		pre.classList.add("empty-log");
	}
}

// One event, as a row: what happened, in words.
function eventDetail(ev) {
	const dest = (e) => `${e.hostname || e.host || "?"}${e.port ? ":" + e.port : ""}${e.path || ""}`;
	switch (ev.type) {
	case "run.created":
		return `agent ${ev.agent}${ev.version ? "@" + ev.version : ""} · sha256 ${shortHash(ev.sha256)} · ${ev.caller || ""}` +
			(ev.capabilities && ev.capabilities.length ? ` · capabilities ${ev.capabilities.map((c) => c.name || c).join(", ")}` : "") +
			(ev.secrets && ev.secrets.length ? ` · secrets ${ev.secrets.join(", ")}` : "");
	case "sandbox.ready": {
		const p = ev.protections || {};
		return `network ${ev.network} · userns ${p.userns ? "✓" : "✗"} · seccomp ${p.seccomp ? "✓" : "✗"} · landlock ${p.landlock_abi || "✗"} · cgroup ${p.cgroup || "none"}` +
			(p.degraded && p.degraded.length ? ` · degraded: ${p.degraded.join(", ")}` : "");
	}
	case "setup.finished":
		return `exit ${ev.exit_code} in ${fmtMs(ev.duration_ms)}`;
	case "step": {
		const s = ev.step || {};
		if (typeof s.name === "string") {
			const rest = Object.assign({}, s);
			delete rest.name;
			return s.name + (Object.keys(rest).length ? "  " + JSON.stringify(rest) : "");
		}
		if (typeof s.text === "string") return s.text;
		return JSON.stringify(s);
	}
	case "egress.allowed":
		return `${ev.method || ""} ${dest(ev)} → ${ev.status_code ?? "?"}` + (ev.rule ? ` · rule ${ev.rule}` : "") +
			(typeof ev.duration_ms === "number" ? ` · ${fmtMs(ev.duration_ms)}` : "");
	case "egress.blocked":
		return `${ev.method || ""} ${dest(ev)} blocked: ${ev.blocked_reason || "?"}` + (ev.stage ? ` (stage ${ev.stage})` : "");
	case "approval.requested":
		if (ev.source === "mcp")
			return `the agent asks to: ${ev.action || "?"} · reason: ${ev.reason || "(none)"} · waits for a decision · ${ev.approval_id}`;
		return `${ev.method || ""} ${dest(ev)} waits for a decision · ${ev.approval_id}`;
	case "approval.decided": {
		const by = ev.decided_by || ev.by;
		return `${ev.approval_id} ${ev.decision}` + (by ? ` by ${by}` : "") +
			(ev.source === "mcp" ? ` · the agent asked to: ${ev.action || "?"}` : ` · ${ev.method || ""} ${dest(ev)}`);
	}
	case "artifact.saved":
		return `${ev.name} · ${fmtBytes(ev.size)} · sha256 ${shortHash(ev.sha256)}` + (ev.original && ev.original !== ev.name ? ` (was ${ev.original})` : "");
	case "artifact.skipped":
		return `${ev.name}: ${ev.reason}`;
	case "output.invalid":
		return String(ev.problem || "");
	case "run.finished":
		return `${ev.status} · exit ${ev.exit_code} · ${fmtMs(ev.duration_ms)} · ${ev.steps ?? 0} steps · egress ${ev.egress_allowed ?? 0} allowed, ${ev.egress_blocked ?? 0} blocked` +
			(ev.error ? ` · ${ev.error}` : "");
	default: {
		// A type this page does not know: its "detail" when it has one, else its fields.
		const rest = Object.assign({}, ev);
		for (const k of ["seq", "ts", "run_id", "type"]) delete rest[k];
		if (typeof rest.detail === "string") {
			const d = rest.detail;
			delete rest.detail;
			return d + (Object.keys(rest).length ? "  " + JSON.stringify(rest) : "");
		}
		return JSON.stringify(rest);
	}
	}
}

function eventKind(ev) {
	const t = ev.type || "";
	if (t === "egress.blocked" || t === "artifact.skipped" || t === "output.invalid") return "bad";
	if (t === "approval.requested") return "warn";
	if (t === "approval.decided") return ev.decision === "approved" ? "ok" : "bad";
	if (t === "run.finished") return OK_STATUS.has(ev.status) ? "ok" : "bad";
	if (t === "egress.allowed" || t === "artifact.saved") return "ok";
	if (t === "step") return "step";
	return "info";
}

function eventRow(ev) {
	return el("tr", { testid: "event-row", class: "ev ev-" + eventKind(ev), data: { type: ev.type || "", seq: String(ev.seq ?? "") } },
		el("td", { class: "num muted mono", text: ev.seq ?? "" }),
		el("td", { class: "mono small nowrap" }, timeEl(ev.ts, true)),
		el("td", { class: "nowrap" }, el("span", { class: "ev-type ev-type-" + eventKind(ev), text: ev.type || "?" })),
		el("td", { class: "ev-detail", text: eventDetail(ev) }));
}

// Follows the run's events: GET .../events?follow=1, read as it arrives.
// Reconnects (skipping what it has) until the run has finished.
async function followEvents(scope, id, onEvent) {
	let lastSeq = 0, finished = false;
	const stateEl = $("run-events-state");
	while (scope.alive && !finished) {
		stateEl.textContent = "● live";
		stateEl.className = "stream-state live small";
		try {
			const res = await api(`/v1/runs/${encodeURIComponent(id)}/events?follow=1&after=${lastSeq}`, { as: "response", signal: scope.signal, headers: { Accept: "application/x-ndjson" } });
			const reader = res.body.getReader();
			const dec = new TextDecoder();
			let buf = "";
			for (;;) {
				const { value, done } = await reader.read();
				if (done) break;
				buf += dec.decode(value, { stream: true });
				let nl;
				while ((nl = buf.indexOf("\n")) >= 0) {
					const line = buf.slice(0, nl).trim();
					buf = buf.slice(nl + 1);
					if (!line) continue;
					let ev;
					try { ev = JSON.parse(line); } catch (_) { continue; }
					if (typeof ev.seq === "number") {
						if (ev.seq <= lastSeq) continue;
						lastSeq = ev.seq;
					}
					if (!scope.alive) return;
					onEvent(ev);
					if (ev.type === "run.finished") finished = true;
				}
			}
		} catch (e) {
			if (!scope.alive || e.name === "AbortError") return;
			stateEl.textContent = "reconnecting: " + errorText(e);
			if (e.status === 404) return;
		}
		if (finished || !scope.alive) break;
		// The stream ended without run.finished: the run may have ended
		// another way (cancelled while queued, its supervisor died).
		try {
			const rec = await api(`/v1/runs/${encodeURIComponent(id)}`, { signal: scope.signal });
			if (FINAL.has(rec.status)) break;
		} catch (e) {
			if (!scope.alive || e.name === "AbortError") return;
		}
		await sleep(1000);
	}
	if (scope.alive) {
		stateEl.textContent = "complete";
		stateEl.className = "stream-state muted small";
	}
}

async function viewRun(scope, id) {
	$("run-id").textContent = id;
	$("run-agent").textContent = "";
	$("run-agent-sha").textContent = "";
	setStatus($("run-status"), "loading");
	for (const n of ["run-result", "run-resolved", "run-protections", "run-resources", "run-events", "run-artifacts"]) clear($(n));
	for (const n of ["run-output", "run-stdout", "run-stderr"]) { $(n).textContent = ""; $(n).classList.remove("empty-log"); }
	$("run-events-state").textContent = "";
	show($("run-waiting"), false);
	show($("run-cancel"), false);
	showFormError($("run-error"), null);

	let rec = null, finalLoaded = false;
	const pending = new Map(); // approval id -> event

	const renderWaiting = () => {
		const box = clear($("run-waiting"));
		if (!pending.size || (rec && FINAL.has(rec.status))) { show(box, false); return; }
		box.append(el("strong", { text: pending.size === 1 ? "A request is waiting for approval: " : pending.size + " requests are waiting for approval: " }));
		for (const ev of pending.values())
			box.append(el("span", { class: "mono", text: ev.source === "mcp" ? `the agent asks to: ${ev.action} ` : `${ev.method} ${ev.hostname}:${ev.port}${ev.path || ""} ` }));
		box.append(el("a", { href: "#/approvals", text: "Open the approvals queue →" }));
		show(box, true);
	};

	const loadRecord = async () => {
		const r = await api(`/v1/runs/${encodeURIComponent(id)}`, { signal: scope.signal });
		if (!scope.alive) return;
		rec = r;
		renderRecord(r);
		renderWaiting();
		if (FINAL.has(r.status) && !finalLoaded) {
			finalLoaded = true;
			renderArtifacts(id, r.result);
			$("run-stdout-note").textContent = r.result && r.result.stdout && r.result.stdout.truncated ? `(first ${fmtBytes(r.result.stdout.kept)} of ${fmtBytes(r.result.stdout.bytes)})` : "";
			$("run-stderr-note").textContent = r.result && r.result.stderr && r.result.stderr.truncated ? `(first ${fmtBytes(r.result.stderr.kept)} of ${fmtBytes(r.result.stderr.bytes)})` : "";
			await Promise.all([loadLog(scope, id, "stdout"), loadLog(scope, id, "stderr")]);
		} else if (!FINAL.has(r.status)) {
			renderArtifacts(id, null);
			for (const w of ["stdout", "stderr"]) { $("run-" + w).textContent = "(appears when the run ends)"; $("run-" + w).classList.add("empty-log"); }
		}
	};

	try {
		await loadRecord();
	} catch (e) {
		if (!scope.alive) return;
		setStatus($("run-status"), "unknown");
		showFormError($("run-error"), e);
		return;
	}

	// Cancel: click twice (no dialog).
	const cancel = $("run-cancel");
	cancel.textContent = "Cancel run";
	cancel.disabled = false;
	bindOnce({ "run-cancel": ["click", async () => {
		if (cancel.dataset.armed !== "1") {
			cancel.dataset.armed = "1";
			cancel.textContent = "Click again to cancel";
			scope.later(() => { cancel.dataset.armed = ""; cancel.textContent = "Cancel run"; }, 3000);
			return;
		}
		cancel.dataset.armed = "";
		cancel.disabled = true;
		cancel.textContent = "Cancelling…";
		try {
			await api(`/v1/runs/${encodeURIComponent(id)}/cancel`, { method: "POST" });
			await loadRecord();
		} catch (e) {
			if (scope.alive) showFormError($("run-error"), e);
		} finally {
			cancel.disabled = false;
			cancel.textContent = "Cancel run";
		}
	}] });

	// The record, while the run is not final (status changes, the result).
	const pollRecord = async () => {
		if (rec && FINAL.has(rec.status) && finalLoaded) return;
		try { await loadRecord(); } catch (e) { if (scope.alive && e.name !== "AbortError") banner(e); }
		if (scope.alive && !(rec && FINAL.has(rec.status))) scope.later(pollRecord, 1500);
	};
	if (!FINAL.has(rec.status)) scope.later(pollRecord, 1500);

	const tbody = $("run-events");
	followEvents(scope, id, (ev) => {
		tbody.append(eventRow(ev));
		if (ev.type === "approval.requested") pending.set(ev.approval_id, ev);
		if (ev.type === "approval.decided") pending.delete(ev.approval_id);
		if (ev.type === "sandbox.ready" && rec && !FINAL.has(rec.status)) renderProtections(ev.protections);
		// The record changes at these: show it now rather than at the next poll.
		if ((ev.type === "sandbox.ready" && rec && rec.status === "created") || ev.type === "run.finished")
			loadRecord().catch((e) => scope.alive && e.name !== "AbortError" && banner(e));
		renderWaiting();
	}).catch((e) => scope.alive && banner(e));
}

/* ------------------------------------------------------ approvals view */

// What a human decides on: where a held request goes, or what the agent
// asks to do over MCP and the reason it gave (kept as text: never HTML).
function approvalWhat(a) {
	if (a.source !== "mcp")
		return el("td", { class: "mono" }, el("span", { text: `${a.host}:${a.port}` }), el("span", { class: "muted", text: a.path || "" }));
	return el("td", { testid: "approval-what" },
		el("div", { testid: "approval-action", class: "approval-action", text: a.action || "" }),
		el("div", { testid: "approval-reason", class: "approval-reason muted" },
			el("span", { text: "Reason: " }), el("span", { text: (a.reason || "") + (a.reason_truncated ? " […] (the run's events have all of it)" : "") })));
}

async function viewApprovals(scope) {
	const owner = isOwner();
	show($("approvals-member-note"), !owner);
	show($("approvals-flash"), false);
	const body = clear($("approvals-body"));
	const rows = new Map(); // id -> {tr, waiting, expires}

	const flash = (text, kind) => {
		const f = $("approvals-flash");
		f.textContent = text;
		f.className = "flash " + (kind || "");
		show(f, true);
	};

	const decide = async (a, verb, buttons) => {
		for (const b of buttons) b.disabled = true;
		try {
			const j = await api(`/v1/approvals/${encodeURIComponent(a.id)}/${verb}`, { method: "POST" });
			const what = a.source === "mcp" ? `the agent's request to ${a.action}` : `${a.method} ${a.host}:${a.port}${a.path || ""}`;
			flash(`${j.decision === "approved" ? "Approved" : "Rejected"} ${what} (${j.id}, run ${a.run_id}).`, j.decision === "approved" ? "ok" : "bad");
			await refresh();
		} catch (e) {
			if (!scope.alive) return;
			flash(errorText(e), "bad");
			for (const b of buttons) b.disabled = !owner;
		}
	};

	const refresh = async () => {
		const j = await api("/v1/approvals", { signal: scope.signal });
		if (!scope.alive) return;
		const list = j.approvals || [];
		setApprovalCount(list.length);
		const seen = new Set();
		for (const a of list) {
			seen.add(a.id);
			const waiting = typeof a.waiting_ms === "number" ? Math.round(a.waiting_ms / 1000) : a.waiting_s;
			const expires = typeof a.expires_in_ms === "number" ? Math.round(a.expires_in_ms / 1000) : a.expires_in_s;
			let row = rows.get(a.id);
			if (!row) {
				const approve = el("button", { type: "button", class: "btn btn-approve", testid: "approval-approve", text: "Approve", disabled: !owner, title: owner ? null : "only an owner can decide" });
				const reject = el("button", { type: "button", class: "btn btn-danger", testid: "approval-reject", text: "Reject", disabled: !owner, title: owner ? null : "only an owner can decide" });
				approve.addEventListener("click", () => decide(a, "approve", [approve, reject]));
				reject.addEventListener("click", () => decide(a, "reject", [approve, reject]));
				row = { waiting: el("td", { class: "num" }), expires: el("td", { class: "num" }) };
				row.tr = el("tr", { testid: "approval-row", data: { approvalId: a.id, runId: a.run_id || "" } },
					el("td", {}, el("span", { class: "method", text: a.method }), " ", el("span", { class: "mono small muted", text: a.id })),
					approvalWhat(a),
					el("td", {}, a.run_id ? runLink(a.run_id) : "–"),
					row.waiting, row.expires,
					el("td", { class: "actions" }, approve, reject));
				rows.set(a.id, row);
				body.append(row.tr);
			}
			row.waiting.textContent = typeof waiting === "number" ? waiting + " s" : "–";
			row.expires.textContent = typeof expires === "number" ? expires + " s" : "–";
			row.expires.classList.toggle("bad-text", typeof expires === "number" && expires < 15);
		}
		for (const [id, row] of rows) if (!seen.has(id)) { row.tr.remove(); rows.delete(id); }
		show($("approvals-empty"), rows.size === 0);
	};
	scope.poll(refresh, 1000);
}

/* ---------------------------------------------------------- audit view */

function auditSummary(e) {
	const dest = `${e.hostname || e.host || ""}${e.port ? ":" + e.port : ""}${e.path || ""}`;
	return `${e.method || ""} ${dest}`.trim();
}

function auditOutcome(e) {
	if (e.blocked_reason) return `blocked: ${e.blocked_reason}${e.stage ? " (stage " + e.stage + ")" : ""}${e.enforced === false ? " (not enforced)" : ""}` +
		(e.status_code !== undefined ? ` · ${e.status_code}` : "");
	if (e.decision) return `${e.decision}${e.decided_by ? " by " + e.decided_by : ""}`;
	if (e.status_code !== undefined) return `${e.status_code}${e.rule ? " · rule " + e.rule : ""}`;
	const rest = Object.assign({}, e);
	for (const k of ["seq", "timestamp", "run_id", "event_type", "prev_hash", "hash", "method", "hostname", "port", "path"]) delete rest[k];
	return JSON.stringify(rest);
}

const AUDIT_PAGE = 100;

async function viewAudit(scope, runId) {
	const sel = $("audit-run-select");
	const input = $("audit-run-input");
	input.value = runId || "";
	show($("audit-result"), false);
	bindOnce({
		"audit-form": ["submit", (e) => {
			e.preventDefault();
			const id = input.value.trim() || sel.value;
			if (id) location.hash = "#/audit/" + encodeURIComponent(id);
		}],
		"audit-run-select": ["change", () => { if (sel.value) location.hash = "#/audit/" + encodeURIComponent(sel.value); }],
	});

	api("/v1/runs?limit=50", { signal: scope.signal }).then((j) => {
		if (!scope.alive) return;
		clear(sel);
		sel.append(el("option", { value: "", text: "choose…" }));
		for (const r of j.runs || []) sel.append(el("option", { value: r.id, text: `${r.id} · ${r.agent} · ${r.status} · ${fmtTime(r.created)}` }));
		if (runId && (j.runs || []).some((r) => r.id === runId)) sel.value = runId;
	}).catch((e) => scope.alive && e.name !== "AbortError" && banner(e));

	if (!runId) return;
	let offset = 0;
	const load = async () => {
		const j = await api(`/v1/audit?run=${encodeURIComponent(runId)}&limit=${AUDIT_PAGE}&offset=${offset}`, { signal: scope.signal });
		if (!scope.alive) return;
		show($("audit-result"), true);
		const v = j.verify || {};
		const box = clear($("audit-verify"));
		let kind;
		if (v.note) {
			kind = "none";
			box.append(el("div", { class: "verify-title", text: "No audit log" }), el("div", { text: v.note }));
		} else if (v.ok) {
			kind = "ok";
			box.append(el("div", { class: "verify-title", text: "✓ Audit log verified" }),
				el("div", { text: `${v.lines} line${v.lines === 1 ? "" : "s"}, hash chain intact · last hash ` }, el("span", { class: "mono hash-full", text: v.last_hash || "–" })));
		} else {
			kind = "bad";
			box.append(el("div", { class: "verify-title", text: "✗ Audit log verification FAILED" }),
				el("div", { text: (v.bad_line ? `first bad line: ${v.bad_line} — ` : "") + (v.reason || "unknown reason") }));
		}
		box.className = "verify verify-" + kind;
		box.dataset.ok = v.ok ? "true" : "false";
		box.dataset.kind = kind;
		const body = clear($("audit-body"));
		const entries = j.entries || [];
		for (const e of entries) {
			const bad = v.bad_line && e.seq === v.bad_line;
			body.append(el("tr", { testid: "audit-row", class: bad ? "row-bad" : null },
				el("td", { class: "num mono muted", text: e.seq ?? "" }),
				el("td", { class: "mono small nowrap" }, timeEl(e.timestamp, true)),
				el("td", {}, el("span", { class: "ev-type ev-type-" + (e.blocked_reason ? "bad" : e.event_type === "approval" ? "warn" : "ok"), text: e.event_type || "?" })),
				el("td", { class: "mono small", text: auditSummary(e) }),
				el("td", { class: "small", text: auditOutcome(e) }),
				el("td", {}, hashEl(e.hash, 10))));
		}
		show($("audit-empty"), entries.length === 0);
		$("audit-range").textContent = entries.length ? `${offset + 1}–${offset + entries.length}` + (v.ok && v.lines ? ` of ${v.lines}` : "") : "";
		$("audit-prev").disabled = offset === 0;
		$("audit-next").disabled = entries.length < AUDIT_PAGE;
	};
	bindOnce({
		"audit-prev": ["click", () => { offset = Math.max(0, offset - AUDIT_PAGE); load().catch((e) => scope.alive && banner(e)); }],
		"audit-next": ["click", () => { offset += AUDIT_PAGE; load().catch((e) => scope.alive && banner(e)); }],
	});
	await load();
}

/* --------------------------------------------------------- policy view */

async function viewPolicy(scope) {
	const owner = isOwner();
	const ta = $("policy-yaml");
	showFormError($("policy-error"), null);
	show($("policy-message"), false);
	show($("policy-actions"), owner);
	show($("policy-member-note"), !owner);
	ta.readOnly = !owner;

	const rulesBody = $("policy-rules-body");
	const origin = (o) => o ? `${o.rule} (${o.at === "built-in" ? o.group + ", built-in" : o.at})` : "–";
	const load = async () => {
		const j = await api("/v1/policy", { signal: scope.signal });
		if (!scope.alive) return;
		const own = j.workspace;
		const src = $("policy-source");
		src.textContent = own ? (own.error ? "does not load" : "workspace policy") : "none: the operator's applies";
		src.className = "pill " + (own ? (own.error ? "pill-bad" : "pill-ok") : "pill-muted");
		src.dataset.source = own ? "workspace" : "operator";
		let help = own
			? "Runs of this workspace use the operator's policy narrowed by this one, then by each agent's manifest. The schema is in docs/policy.md."
			: "This workspace has no policy of its own: its runs use the operator's, narrowed by each agent's manifest." + (owner ? " Write one below to narrow it further." : "");
		if (own && own.dropped && own.dropped.length)
			help += " Not allowed by the operator, so without effect: " + own.dropped.join(", ") + ".";
		if (own && own.error)
			help += " Runs fail until it is fixed: " + own.error;
		$("policy-help").textContent = help;
		ta.value = own ? (own.yaml || "") : "";
		ta.placeholder = own ? "" : "version: 1\ndomains:\n  - name: api.example.com\n    ports: [443]\n";

		const op = j.operator;
		const os = $("policy-operator-source");
		os.textContent = op.source === "built-in" ? "built-in" : "STATE/policy.yaml";
		os.className = "pill " + (op.source === "built-in" ? "pill-muted" : "pill-ok");
		$("policy-operator-yaml").textContent = op.yaml || "";

		clear(rulesBody);
		const eff = j.effective;
		$("policy-effective-summary").textContent = eff
			? `${eff.rules.length} rules; ${eff.enforce ? "enforced" : "audit only"}; ${eff.limits.requests_per_minute}/min per rule, ${eff.limits.global_requests_per_minute}/min in all (0: no limit)`
			: "none: the workspace's policy does not load";
		for (const r of (eff ? eff.rules : [])) {
			const rpm = r.workspace_requests_per_minute !== undefined
				? `${r.requests_per_minute} / ${r.workspace_requests_per_minute}` : String(r.requests_per_minute);
			rulesBody.append(el("tr", { testid: "policy-rule" },
				el("td", { class: "mono", text: r.name }),
				el("td", { class: "mono", text: r.ports.join(", ") }),
				el("td", { class: "mono", text: r.methods.length === 7 ? "all" : r.methods.join(", ") }),
				el("td", { class: "num", text: rpm }),
				el("td", { text: r.approval ? "required" : "–" }),
				el("td", { text: r.inspect ? "yes" : "–" }),
				el("td", { class: "small", text: origin(r.from.operator) }),
				el("td", { class: "small", text: origin(r.from.workspace) })));
		}
	};

	bindOnce({
		"policy-save": ["click", async () => {
			const btn = $("policy-save");
			btn.disabled = true;
			showFormError($("policy-error"), null);
			show($("policy-message"), false);
			try {
				await api("/v1/policy", { method: "PUT", body: ta.value, headers: { "Content-Type": "application/yaml" } });
				const m = $("policy-message");
				m.textContent = "Saved. Runs that start from now on use the operator's policy narrowed by this one.";
				m.className = "flash ok";
				show(m, true);
				await load();
			} catch (e) {
				showFormError($("policy-error"), e);
			} finally {
				btn.disabled = false;
			}
		}],
		"policy-revert": ["click", () => {
			showFormError($("policy-error"), null);
			show($("policy-message"), false);
			load().catch((e) => banner(e));
		}],
	});
	await load();
}

/* -------------------------------------------------------- secrets view */

async function viewSecrets(scope) {
	const j = await api("/v1/secrets", { signal: scope.signal });
	if (!scope.alive) return;
	const body = clear($("secrets-body"));
	const list = j.secrets || [];
	for (const s of list) {
		body.append(el("tr", { testid: "secret-row", data: { name: s.name } },
			el("td", { class: "mono", text: s.name }),
			el("td", { class: "num", text: fmtBytes(s.size) }),
			el("td", {}, timeEl(s.updated))));
	}
	show($("secrets-empty"), list.length === 0);
}

/* ---------------------------------------------------------------- boot */

function boot() {
	$("signin-form").addEventListener("submit", async (e) => {
		e.preventDefault();
		const key = $("signin-key").value.trim();
		if (!key) return;
		const btn = $("signin-submit");
		btn.disabled = true;
		showFormError($("signin-error"), null);
		try {
			await signIn(key);
			$("signin-key").value = "";
		} catch (err) {
			showFormError($("signin-error"), err);
		} finally {
			btn.disabled = false;
		}
	});
	$("sign-out").addEventListener("click", () => signOut(null));
	$("banner-close").addEventListener("click", () => banner(null));
	window.addEventListener("hashchange", route);

	const saved = sessionStorage.getItem(KEY_STORAGE);
	if (!saved) { signOut(null); return; }
	signIn(saved).catch((err) => {
		signOut(null);
		showFormError($("signin-error"), err);
	});
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
else boot();
