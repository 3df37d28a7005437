// SPDX-License-Identifier: Apache-2.0
// The approvals queue: requests held for a human; owners decide.

import { $, el, clear, show, runLink } from "./dom.js";
import { api, isOwner, errorText } from "./api.js";

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

export function setApprovalCount(n) {
	const c = $("approvals-count");
	c.textContent = String(n);
	show(c, n > 0);
}

export async function viewApprovals(scope) {
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
