// SPDX-License-Identifier: Apache-2.0
// The agents page: the workspace's agents, and one agent's versions, each
// with its content hash and the manifest it was registered with.

import { $, el, clear, show, timeEl, hashEl } from "./dom.js";
import { api, state } from "./api.js";

function agentLink(name) {
	return el("a", { class: "mono", href: "#/agents/" + encodeURIComponent(name), text: name });
}

async function showAgent(scope, name) {
	const j = await api("/v1/agents/" + encodeURIComponent(name), { signal: scope.signal });
	if (!scope.alive) return;
	$("agent-name").textContent = j.name;
	$("agent-summary").textContent = `${j.versions.length} version${j.versions.length === 1 ? "" : "s"}, latest v${j.latest}` +
		(j.truncated ? " (older versions not shown)" : "");
	const body = clear($("agent-versions-body"));
	const pick = (v, row) => {
		for (const r of body.children) r.classList.remove("selected");
		row.classList.add("selected");
		$("agent-manifest-version").textContent = `agent.json of v${v.version}`;
		// JSON.stringify of the parsed manifest: text, never HTML.
		$("agent-manifest").textContent = v.manifest ? JSON.stringify(v.manifest, null, 2) : "(no manifest stored)";
	};
	for (const v of j.versions) {
		const btn = el("button", { type: "button", class: "btn btn-small", testid: "agent-version-show", text: "Manifest" });
		const row = el("tr", { testid: "agent-version-row", data: { version: String(v.version) } },
			el("td", { class: "num mono", text: "v" + v.version }),
			el("td", {}, el("span", { class: "mono hash-full small", testid: "agent-version-sha256", text: v.sha256 })),
			el("td", {}, hashEl(v.tree_sha256, 16)),
			el("td", {}, timeEl(v.registered)),
			el("td", { class: "num" }, btn));
		btn.addEventListener("click", () => pick(v, row));
		body.append(row);
	}
	if (j.versions.length) pick(j.versions[0], body.firstElementChild);
	show($("agent-detail"), true);
}

export async function viewAgents(scope, name) {
	show($("agent-detail"), false);
	const j = await api("/v1/agents", { signal: scope.signal });
	if (!scope.alive) return;
	const list = (j.items || []).slice().sort((a, b) => a.name.localeCompare(b.name));
	state.agents = list;
	const body = clear($("agents-body"));
	for (const a of list) {
		body.append(el("tr", { testid: "agent-row", class: a.name === name ? "selected" : null, data: { name: a.name } },
			el("td", {}, agentLink(a.name)),
			el("td", { class: "num mono", text: "v" + a.version }),
			el("td", {}, hashEl(a.sha256, 16)),
			el("td", {}, timeEl(a.registered))));
	}
	show($("agents-empty"), list.length === 0);
	if (name) await showAgent(scope, name);
}
