// SPDX-License-Identifier: Apache-2.0
// The API keys page (owners): the workspace's keys, creating one (its
// secret part shown once, here) and revoking one. A member's key may not
// list keys (GET /v1/keys is owner-only): the page says so.

import { $, el, clear, show, timeEl, bindOnce, armed } from "./dom.js";
import { api, state, isOwner, showFormError, errorText } from "./api.js";

export async function viewKeys(scope) {
	const owner = isOwner();
	show($("keys-member-note"), !owner);
	$("keys-self").textContent = state.me ? state.me.id + (state.me.name ? " (" + state.me.name + ")" : "") : "";
	show($("keys-card"), owner);
	show($("key-form"), owner);
	show($("keys-flash"), false);
	show($("key-created"), false);
	$("key-created-value").textContent = "";
	showFormError($("key-error"), null);
	if (!owner) return;

	const flash = (text, kind) => {
		const f = $("keys-flash");
		f.textContent = text;
		f.className = "flash " + (kind || "");
		show(f, true);
	};

	const load = async () => {
		const j = await api("/v1/keys", { signal: scope.signal });
		if (!scope.alive) return;
		const body = clear($("keys-body"));
		for (const k of j.keys || []) {
			const self = state.me && k.id === state.me.id;
			let revoke = null;
			if (!k.revoked) {
				revoke = el("button", { type: "button", class: "btn btn-small btn-danger", testid: "key-revoke", text: "Revoke",
					title: self ? "this is the key you are signed in with" : null });
				revoke.addEventListener("click", async () => {
					if (!armed(revoke, "Revoke", self ? "Click again: this signs you out" : "Click again to revoke", scope)) return;
					revoke.disabled = true;
					try {
						await api("/v1/keys/" + encodeURIComponent(k.id), { method: "DELETE" });
						flash(`Revoked ${k.id} (${k.name}): it stops working at once.`, "ok");
						await load();
					} catch (e) {
						if (scope.alive) { flash(errorText(e), "bad"); revoke.disabled = false; }
					}
				});
			}
			body.append(el("tr", { testid: "key-row", class: k.revoked ? "muted" : null, data: { keyId: k.id, revoked: String(!!k.revoked) } },
				el("td", { class: "mono small", text: k.id }),
				el("td", { text: k.name + (self ? " (you)" : "") }),
				el("td", {}, el("span", { class: "who-role role-" + (k.role === "owner" ? "owner" : "member"), text: k.role })),
				el("td", {}, timeEl(k.created)),
				el("td", {}, k.last_used ? timeEl(k.last_used) : el("span", { class: "muted", text: "never" })),
				el("td", { testid: "key-state", text: k.revoked ? "revoked" : "active" }),
				el("td", { class: "num" }, revoke)));
		}
	};

	bindOnce({
		"key-form": ["submit", async (e) => {
			e.preventDefault();
			const btn = $("key-submit");
			btn.disabled = true;
			showFormError($("key-error"), null);
			show($("key-created"), false);
			try {
				const j = await api("/v1/keys", { method: "POST", json: { name: $("key-name").value.trim(), role: $("key-role").value } });
				$("key-created-value").textContent = j.key;
				show($("key-created"), true);
				$("key-name").value = "";
				await load();
			} catch (err) {
				if (scope.alive) showFormError($("key-error"), err);
			} finally {
				btn.disabled = false;
			}
		}],
		// Once copied, the key leaves the page.
		"key-created-hide": ["click", () => { $("key-created-value").textContent = ""; show($("key-created"), false); }],
	});
	await load();
}
