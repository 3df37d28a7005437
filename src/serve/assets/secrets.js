// SPDX-License-Identifier: Apache-2.0
// The secrets page: names, sizes and times, never a value. Owners set
// (add or replace) and remove secrets; members see the list.

import { $, el, clear, show, fmtBytes, timeEl, bindOnce, armed } from "./dom.js";
import { api, isOwner, showFormError, errorText } from "./api.js";

export async function viewSecrets(scope) {
	const owner = isOwner();
	show($("secret-form"), owner);
	show($("secrets-member-note"), !owner);
	show($("secrets-flash"), false);
	showFormError($("secret-error"), null);
	$("secret-value").value = "";

	const flash = (text, kind) => {
		const f = $("secrets-flash");
		f.textContent = text;
		f.className = "flash " + (kind || "");
		show(f, true);
	};

	const load = async () => {
		const j = await api("/v1/secrets", { signal: scope.signal });
		if (!scope.alive) return;
		const body = clear($("secrets-body"));
		const list = j.secrets || [];
		for (const s of list) {
			let remove = null;
			if (owner) {
				remove = el("button", { type: "button", class: "btn btn-small btn-danger", testid: "secret-remove", text: "Remove" });
				remove.addEventListener("click", async () => {
					if (!armed(remove, "Remove", "Click again to remove", scope)) return;
					remove.disabled = true;
					try {
						await api("/v1/secrets/" + encodeURIComponent(s.name), { method: "DELETE" });
						flash(`Removed ${s.name}. Runs that start from now on cannot get it.`, "ok");
						await load();
					} catch (e) {
						if (scope.alive) { flash(errorText(e), "bad"); remove.disabled = false; }
					}
				});
			}
			body.append(el("tr", { testid: "secret-row", data: { name: s.name } },
				el("td", { class: "mono", text: s.name }),
				el("td", { class: "num", text: fmtBytes(s.size) }),
				el("td", {}, timeEl(s.updated)),
				el("td", { class: "num" }, remove)));
		}
		show($("secrets-empty"), list.length === 0);
	};

	bindOnce({
		"secret-form": ["submit", async (e) => {
			e.preventDefault();
			const name = $("secret-name").value.trim();
			const input = $("secret-value");
			const btn = $("secret-submit");
			btn.disabled = true;
			showFormError($("secret-error"), null);
			try {
				const j = await api("/v1/secrets/" + encodeURIComponent(name), { method: "PUT", json: { value: input.value } });
				// The value leaves the page as soon as it is stored.
				input.value = "";
				$("secret-name").value = "";
				flash(`Set ${j.name} (${fmtBytes(j.size)}).`, "ok");
				await load();
			} catch (err) {
				if (scope.alive) showFormError($("secret-error"), err);
			} finally {
				btn.disabled = false;
			}
		}],
	});
	await load();
}
