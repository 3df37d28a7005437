// SPDX-License-Identifier: Apache-2.0
// The schedules page: the workspace's schedules (GET /v1/schedules), each
// with its expression, zone, policies, next time, what it fired and what
// it skipped and why; owners pause, resume and remove. Made with
// `cordon schedule create` or POST /v1/schedules. Every value is text.

import { $, el, clear, show, timeEl, armed, runLink } from "./dom.js";
import { api, isOwner, errorText } from "./api.js";

export async function viewSchedules(scope) {
	const owner = isOwner();
	const flash = (text, kind) => {
		const f = $("schedules-flash");
		f.textContent = text;
		f.className = "flash " + (kind || "");
		show(f, !!text);
	};
	flash("");
	const act = async (name, path, method, what) => {
		try {
			await api("/v1/schedules/" + encodeURIComponent(name) + path, { method });
			flash(`${what} ${name}.`, "ok");
			await load();
		} catch (e) {
			if (scope.alive) flash(errorText(e), "bad");
		}
	};
	const load = async () => {
		const j = await api("/v1/schedules", { signal: scope.signal });
		if (!scope.alive) return;
		const body = clear($("schedules-body"));
		for (const s of j.items || []) {
			const buttons = el("td", { class: "num" });
			if (owner) {
				const toggle = el("button", { type: "button", class: "btn btn-small", testid: "schedule-toggle",
					text: s.paused ? "Resume" : "Pause" });
				toggle.addEventListener("click", () => act(s.name, s.paused ? "/resume" : "/pause", "POST",
					s.paused ? "Resumed" : "Paused"));
				const rm = el("button", { type: "button", class: "btn btn-small btn-danger", testid: "schedule-remove", text: "Remove" });
				rm.addEventListener("click", () => {
					if (armed(rm, "Remove", "Click again to remove", scope)) act(s.name, "", "DELETE", "Removed");
				});
				buttons.append(toggle, " ", rm);
			}
			const skip = s.last_skip ? el("span", { class: "small", title: s.last_skip.at, text: s.last_skip.reason }) : el("span", { class: "muted", text: "–" });
			body.append(el("tr", { testid: "schedule-row", data: { name: s.name, paused: String(s.paused) } },
				el("td", { class: "mono", text: s.name }),
				el("td", { class: "mono", text: s.agent }),
				el("td", { class: "mono", text: s.cron + (s.tz !== "UTC" ? " (" + s.tz + ")" : "") }),
				el("td", { text: s.overlap + " / " + s.catch_up }),
				el("td", { testid: "schedule-state", text: s.paused ? "paused" : "active" }),
				el("td", {}, s.next ? timeEl(s.next) : el("span", { class: "muted", text: "–" })),
				el("td", { class: "num", testid: "schedule-fired", text: `${s.fired} / ${s.skipped}` }),
				el("td", {}, s.last_run ? runLink(s.last_run) : el("span", { class: "muted", text: "–" })),
				el("td", {}, skip),
				buttons));
		}
		show($("schedules-empty"), (j.items || []).length === 0);
	};
	await load();
	scope.poll(load, 3000);
}
