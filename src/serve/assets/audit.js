// SPDX-License-Identifier: Apache-2.0
// A run's audit log, a page at a time, and whether its hash chain verifies.

import { $, el, clear, show, fmtTime, timeEl, hashEl, bindOnce } from "./dom.js";
import { api, banner } from "./api.js";

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

export async function viewAudit(scope, runId) {
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
