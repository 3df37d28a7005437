// SPDX-License-Identifier: Apache-2.0
// The dependencies page: the workspace's agents that declare dependencies
// (GET /v1/deps, docs/deps.md), each with its layer (runtime and its
// version, lockfile, the layer's sha256) and whether the layer is built on
// this host, or why its key could not be computed. Read-only: a layer is
// built by a run's first use, or by `cordon deps build AGENT` on the host.
// Every value is text.

import { $, el, clear, show, hashEl } from "./dom.js";
import { api } from "./api.js";

// "Python 3.11.2" (python3 --version) says its runtime; "v20.19.2" (node
// --version) is said as "node v20.19.2".
const runtimeText = (d) => d.runtime_version.toLowerCase().startsWith(d.runtime)
	? d.runtime_version : d.runtime + " " + d.runtime_version;

export async function viewDeps(scope) {
	const load = async () => {
		const j = await api("/v1/deps", { signal: scope.signal });
		if (!scope.alive) return;
		const body = clear($("deps-body"));
		const dash = () => el("span", { class: "muted", text: "–" });
		for (const a of j.agents || []) {
			const d = a.deps;
			const built = d ? (a.built ? "yes" : "no") : "error";
			const status = el("td", { testid: "deps-built" });
			if (d) {
				status.append(el("span", { class: "pill " + (a.built ? "pill-ok" : "pill-muted"), text: built }));
			} else {
				status.append(el("span", { class: "pill pill-bad", text: "error" }), " ",
					el("span", { class: "small", testid: "deps-error", text: a.error || "" }));
			}
			body.append(el("tr", { testid: "deps-row", data: { agent: a.agent, built } },
				el("td", { class: "mono", text: a.agent }),
				el("td", { class: "num", text: String(a.version) }),
				el("td", { class: "mono", title: d ? d.runtime + " on " + d.platform : null,
					text: d ? runtimeText(d) : "–" }),
				el("td", { class: "mono", title: d ? "sha256 " + d.lockfile_sha256 : null,
					text: d ? d.lockfile : "–" }),
				el("td", { testid: "deps-layer" }, d ? hashEl(d.sha256) : dash()),
				status));
		}
		show($("deps-empty"), (j.agents || []).length === 0);
	};
	await load();
	scope.poll(load, 10000);
}
