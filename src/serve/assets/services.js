// SPDX-License-Identifier: Apache-2.0
// The services page: the workspace's services (GET /v1/services), each with
// its state (a badge: running, waiting for its backoff, paused, with the
// reason of a crash loop), its run, its restarts and its last end; owners
// pause, resume and remove. Made with `cordon service create` or
// POST /v1/services. Every value is text.

import { $, el, clear, show, timeEl, armed, runLink } from "./dom.js";
import { api, isOwner, errorText } from "./api.js";

const BADGE = { running: "pill-ok", starting: "pill-muted", waiting: "pill-muted", paused: "pill-bad" };

export async function viewServices(scope) {
	const owner = isOwner();
	const flash = (text, kind) => {
		const f = $("services-flash");
		f.textContent = text;
		f.className = "flash " + (kind || "");
		show(f, !!text);
	};
	flash("");
	const act = async (name, path, method, what) => {
		try {
			await api("/v1/services/" + encodeURIComponent(name) + path, { method });
			flash(`${what} ${name}.`, "ok");
			await load();
		} catch (e) {
			if (scope.alive) flash(errorText(e), "bad");
		}
	};
	const load = async () => {
		const j = await api("/v1/services", { signal: scope.signal });
		if (!scope.alive) return;
		const body = clear($("services-body"));
		for (const s of j.items || []) {
			const paused = s.state === "paused";
			const buttons = el("td", { class: "num" });
			if (owner) {
				const toggle = el("button", { type: "button", class: "btn btn-small", testid: "service-toggle",
					text: paused ? "Resume" : "Pause" });
				toggle.addEventListener("click", () => act(s.name, paused ? "/resume" : "/pause", "POST",
					paused ? "Resumed" : "Paused"));
				const rm = el("button", { type: "button", class: "btn btn-small btn-danger", testid: "service-remove", text: "Remove" });
				rm.addEventListener("click", () => {
					if (armed(rm, "Remove", "Click again to remove", scope)) act(s.name, "", "DELETE", "Removed");
				});
				buttons.append(toggle, " ", rm);
			}
			const state = el("td", {},
				el("span", { class: "pill " + (BADGE[s.state] || "pill-muted"), testid: "service-state", text: s.state }));
			if (s.paused_reason) state.append(" ", el("span", { class: "small", testid: "service-reason", text: s.paused_reason }));
			if (s.next_start) state.append(" ", el("span", { class: "small muted", text: "next " }), timeEl(s.next_start));
			const last = s.last_exit ? el("span", { class: "small", title: s.last_exit.at, text: s.last_exit.reason })
				: el("span", { class: "muted", text: "–" });
			const run = s.run || s.last_run;
			body.append(el("tr", { testid: "service-row", data: { name: s.name, state: s.state } },
				el("td", { class: "mono", text: s.name }),
				el("td", { class: "mono", text: s.agent }),
				state,
				el("td", {}, run ? runLink(run) : el("span", { class: "muted", text: "–" })),
				el("td", { class: "num", testid: "service-restarts", text: String(s.restarts) }),
				el("td", {}, last),
				buttons));
		}
		show($("services-empty"), (j.items || []).length === 0);
	};
	await load();
	scope.poll(load, 3000);
}
