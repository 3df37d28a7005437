// SPDX-License-Identifier: Apache-2.0
// The runs page: dispatch a run, and the runs list with its filters and pages.

import { $, el, clear, show, FINAL, fmtMs, fmtTime, timeEl, statusEl, runLink, bindOnce, localInputToRfc3339 } from "./dom.js";
import { api, state, showFormError, banner } from "./api.js";

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
	// The date range: the inputs are in the browser's local time; the API
	// takes RFC 3339 (UTC here), since inclusive and until exclusive.
	const since = localInputToRfc3339(state.runsFilter.since);
	const until = localInputToRfc3339(state.runsFilter.until);
	if (since) q.set("since", since);
	if (until) q.set("until", until);
	const note = $("runs-range-note");
	note.textContent = since || until
		? "Created " + (since ? "from " + fmtTime(since) : "") + (since && until ? ", " : "") + (until ? "before " + fmtTime(until) : "") + " (your local time)."
		: "";
	show(note, !!(since || until));
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

export async function viewRuns(scope) {
	$("runs-filter-status").value = state.runsFilter.status;
	$("runs-filter-since").value = state.runsFilter.since || "";
	$("runs-filter-until").value = state.runsFilter.until || "";
	const reload = () => { if (scope.alive) loadRuns(scope).catch((e) => scope.alive && banner(e)); };
	const handlers = {
		"runs-filter-status": ["change", (e) => { state.runsFilter.status = e.target.value; state.runsCursors = [null]; reload(); }],
		"runs-filter-agent": ["change", (e) => { state.runsFilter.agent = e.target.value; state.runsCursors = [null]; reload(); }],
		"runs-filter-since": ["change", (e) => { state.runsFilter.since = e.target.value; state.runsCursors = [null]; reload(); }],
		"runs-filter-until": ["change", (e) => { state.runsFilter.until = e.target.value; state.runsCursors = [null]; reload(); }],
		"runs-filter-clear": ["click", () => { state.runsFilter.since = state.runsFilter.until = ""; $("runs-filter-since").value = $("runs-filter-until").value = ""; state.runsCursors = [null]; reload(); }],
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
