// SPDX-License-Identifier: Apache-2.0
// The usage page: what the workspace's runs used (GET /v1/usage), in a
// window of days, grouped by agent, day or caller, with the total. Every
// value goes in as text, never as HTML.

import { $, el, clear, show, fmtBytes } from "./dom.js";
import { api } from "./api.js";

function row(key, g, testid) {
	const ok = (g.by_status && g.by_status.succeeded) || 0;
	return el("tr", { testid, data: { key } },
		el("td", { class: "mono", text: key }),
		el("td", { class: "num", testid: "usage-runs", text: String(g.runs) }),
		el("td", { class: "num", text: String(ok) }),
		el("td", { class: "num", text: String(g.runs - ok) }),
		el("td", { class: "num", text: g.wall_seconds.toFixed(1) }),
		el("td", { class: "num", text: g.cpu_seconds.toFixed(1) }),
		el("td", { class: "num", text: fmtBytes(g.peak_memory_bytes) }),
		el("td", { class: "num", text: `${g.egress.requests_allowed} / ${g.egress.requests_blocked}` }),
		el("td", { class: "num", text: fmtBytes(g.egress.bytes_allowed + g.egress.bytes_blocked) }),
		el("td", { class: "num", testid: "usage-artifact-bytes", text: fmtBytes(g.artifact_bytes) }));
}

export async function viewUsage(scope) {
	const days = Number($("usage-days").value) || 30;
	const by = $("usage-group").value;
	const to = new Date();
	const from = new Date(to.getTime() - days * 86400 * 1000);
	const q = new URLSearchParams({ from: from.toISOString(), to: to.toISOString(), group_by: by });
	const j = await api("/v1/usage?" + q.toString(), { signal: scope.signal });
	if (!scope.alive) return;
	$("usage-window").textContent = `${j.from} to ${j.to}`;
	const body = clear($("usage-body"));
	if (j.group_by !== "none")
		for (const g of j.groups) body.append(row(g.key, g, "usage-row"));
	body.append(row("Total", j.total, "usage-total"));
	show($("usage-empty"), j.total.runs === 0);
}

export function usageControls(reload) {
	for (const id of ["usage-days", "usage-group"])
		$(id).addEventListener("change", reload);
}
