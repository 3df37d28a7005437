// SPDX-License-Identifier: Apache-2.0
// The egress policy: the workspace's own (owners edit it), the effective
// one with each rule's origin, and the operator's.

import { $, el, clear, show, bindOnce } from "./dom.js";
import { api, isOwner, showFormError, banner } from "./api.js";

/* --------------------------------------------------------- policy view */

export async function viewPolicy(scope) {
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
		// No STATE/policy.yaml: say plainly that the built-in policy is in
		// force, and show it rather than fold it away.
		show($("policy-builtin-note"), op.source === "built-in");
		$("policy-operator-details").open = op.source === "built-in";

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
