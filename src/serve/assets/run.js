// SPDX-License-Identifier: Apache-2.0
// One run's page: its record and result, the sandbox's protections, the
// live events, output, artifacts, the evidence pack, stdout and stderr.

import { $, el, clear, show, sleep, FINAL, OK_STATUS, fmtBytes, fmtMs, timeEl, shortHash, hashEl, statusEl, setStatus, kv, chip, bindOnce, runLink } from "./dom.js";
import { api, errorText, showFormError, banner } from "./api.js";

/* ------------------------------------------------------- one run view */


function renderProtections(p) {
	const box = clear($("run-protections"));
	if (!p) { box.append(el("span", { class: "muted", text: "not known yet" })); return; }
	box.append(
		chip("user namespace " + (p.userns ? "✓" : "✗"), p.userns ? "ok" : "bad"),
		chip("seccomp " + (p.seccomp ? "✓" : "✗"), p.seccomp ? "ok" : "bad"),
		chip(p.landlock_abi ? "landlock ABI " + p.landlock_abi : "landlock ✗", p.landlock_abi ? "ok" : "bad"),
		chip("cgroup " + (p.cgroup || "none"), p.cgroup ? "ok" : "bad"),
		supervisorChip(p));
	for (const d of p.degraded || []) box.append(chip("degraded: " + d, "warn"));
}

// Who cordon ran as, and who the agent ran as: the agent never runs as
// root. rootless false means the supervisor (cordon) was root on the host
// and mapped the agent to an unprivileged host uid; rootless true means
// cordon ran as an ordinary user, and the agent as that user.
function supervisorChip(p) {
	const uid = typeof p.host_uid === "number" ? " (host uid " + p.host_uid + ")" : "";
	if (p.rootless)
		return el("span", { class: "chip", testid: "chip-supervisor", title: "cordon ran as an ordinary user (rootless mode); inside the sandbox the agent is an unprivileged user that is that same user on the host" + uid },
			"cordon rootless · agent unprivileged" + uid);
	return el("span", { class: "chip", testid: "chip-supervisor", title: "cordon (the supervisor) ran as root on the host to build the sandbox; the agent itself ran as an unprivileged user, mapped to an unprivileged host uid" + uid },
		"cordon as root · agent unprivileged" + uid);
}

// name@version; a run not started yet has no version, a directory run has 0.
function agentLabel(rec) {
	if (rec.version) return rec.agent + "@" + rec.version;
	return rec.agent + (FINAL.has(rec.status) || rec.status === "running" ? " (directory)" : "");
}

function renderRecord(rec) {
	const res = rec.result || null;
	$("run-id").textContent = rec.id;
	$("run-agent").textContent = agentLabel(rec);
	$("run-agent-sha").textContent = rec.sha256 ? "sha256:" + rec.sha256.slice(0, 16) + "…" : "";
	$("run-agent-sha").title = rec.sha256 || "";
	setStatus($("run-status"), rec.status);
	$("run-audit-link").href = "#/audit/" + encodeURIComponent(rec.id);

	const dl = clear($("run-result"));
	kv(dl, "Status", statusEl(rec.status), { testid: "run-result-status" });
	let exit = FINAL.has(rec.status) && rec.exit_code >= 0 ? String(rec.exit_code) : "–";
	if (res && res.signal) exit += " (signal " + res.signal + ")";
	kv(dl, "Exit code", exit, { testid: "run-exit-code", class: "mono" });
	kv(dl, "Duration", fmtMs(res && typeof res.duration_ms === "number" ? res.duration_ms : rec.duration_ms), { testid: "run-duration" });
	if (res && typeof res.setup_ms === "number") kv(dl, "Setup", fmtMs(res.setup_ms));
	if (res && (res.timed_out || res.oom_killed)) kv(dl, "Stopped by", res.timed_out ? "timeout" : "memory limit (OOM)");
	kv(dl, "Created", timeEl(rec.created));
	kv(dl, "Started", timeEl(rec.started));
	kv(dl, "Finished", timeEl(rec.finished));
	// Agent-to-agent calls (docs/mcp.md): the run that called this one,
	// and the runs this one called, each a link.
	if (rec.caller && rec.caller.startsWith("run:"))
		kv(dl, "Caller", el("span", {}, el("span", { text: "called by run " }), runLink(rec.caller.slice(4))), { testid: "run-parent", class: "small" });
	else
		kv(dl, "Caller", rec.caller, { class: "small" });
	const kids = res && Array.isArray(res.children) ? res.children : [];
	if (kids.length)
		kv(dl, "Called", el("span", {}, ...kids.map((k) => el("div", { testid: "run-child" },
			runLink(k.run_id),
			el("span", { text: " " + k.agent + "@" + k.version + " " }),
			statusEl(k.status), el("span", { text: " " }), hashEl(k.sha256, 12)))), { testid: "run-children", class: "small" });
	// Workers (docs/deploy.md): which ran it, what it asked for, which attempt.
	if (rec.worker) kv(dl, "Worker", rec.worker, { testid: "run-worker", class: "mono small" });
	if (rec.labels) kv(dl, "Labels", Object.entries(rec.labels).map(([k, v]) => k + "=" + v).join(", "), { class: "mono small" });
	if (rec.attempt > 1 || rec.retry_of) {
		kv(dl, "Attempt", el("span", {}, el("span", { text: String(rec.attempt) + " (retry of " }),
			runLink(rec.retry_of),
			el("span", { text: ")" })), { testid: "run-attempt" });
	}
	if (rec.error || (res && res.error)) kv(dl, "Error", rec.error || res.error, { testid: "run-record-error", class: "bad-text" });

	const rv = clear($("run-resolved"));
	const ra = res && res.resolved ? res.resolved.agent : null;
	kv(rv, "Agent", el("span", {}, el("span", { text: ra ? ra.name + "@" + ra.version : agentLabel(rec) }), el("br"),
		el("span", { class: "mono hash-full", text: (ra ? ra.sha256 : rec.sha256) || "resolved when the run starts" })), { testid: "run-resolved-agent" });
	const caps = res && res.resolved ? res.resolved.capabilities || [] : [];
	kv(rv, "Capabilities", caps.length ? el("span", {}, ...caps.map((c) => el("div", {}, el("span", { text: c.name + "@" + c.version + " " }), hashEl(c.sha256, 16)))) : "none");
	const env = res && res.resolved ? res.resolved.env : null;
	kv(rv, "Env", env ? el("span", {}, el("span", { text: env.name + "@" + env.version + " " }), hashEl(env.sha256, 16)) : "none");
	kv(rv, "Secrets", res && res.secrets && res.secrets.length ? res.secrets.join(", ") : "none");
	kv(rv, "Input", res && res.input_sha256 ? el("span", {}, el("span", { class: "muted", text: "sha256 " }), hashEl(res.input_sha256, 16)) : "–");

	if (res) renderProtections(res.protections);
	const rr = clear($("run-resources"));
	if (res && res.resources) {
		kv(rr, "Wall / CPU", fmtMs(res.resources.wall_ms) + " / " + fmtMs(res.resources.cpu_ms));
		kv(rr, "Peak memory", fmtBytes(res.resources.mem_peak_bytes));
	}
	if (res) {
		kv(rr, "Steps", res.steps);
		if (res.egress) kv(rr, "Egress", `${res.egress.allowed} allowed, ${res.egress.blocked} blocked`, { testid: "run-egress" });
		if (res.audit) kv(rr, "Audit", el("span", {}, el("span", { text: res.audit.records + " records, head " }), hashEl(res.audit.head, 12)));
	}

	const out = $("run-output");
	if (!res) out.textContent = FINAL.has(rec.status) ? "(no result)" : "(the output appears when the run ends)";
	else if (res.output === undefined || res.output === null) out.textContent = "(no output.json)";
	else out.textContent = JSON.stringify(res.output, null, 2);

	show($("run-cancel"), !FINAL.has(rec.status));
}

function renderArtifacts(runId, res) {
	const box = clear($("run-artifacts"));
	const list = res && res.artifacts ? res.artifacts : [];
	if (!res) { box.append(el("p", { class: "muted", text: "Artifacts are collected when the run ends." })); return; }
	// The signed evidence pack: record, events, steps, audit log, artifact
	// manifest; `cordon evidence verify` checks it.
	const ev = el("a", { href: "#", class: "btn btn-small", testid: "evidence-download", text: "Evidence pack" });
	ev.addEventListener("click", (e) => downloadPath(e, `/v1/runs/${encodeURIComponent(runId)}/evidence`, `${runId}.evidence.tar.gz`, ev));
	box.append(el("p", { class: "muted" }, ev));
	if (!list.length) { box.append(el("p", { class: "muted", text: "No artifacts." })); return; }
	const tb = el("tbody");
	for (const a of list) {
		const link = el("a", { href: "#", class: "btn btn-small", testid: "artifact-download", data: { name: a.name }, text: "Download" });
		link.addEventListener("click", (e) => downloadArtifact(e, runId, a.name, link));
		tb.append(el("tr", { testid: "artifact-row" },
			el("td", { class: "mono", text: a.name }),
			el("td", { class: "num", text: fmtBytes(a.size) }),
			el("td", {}, hashEl(a.sha256, 12)),
			el("td", { class: "num" }, link)));
	}
	box.append(el("table", { class: "table" }, el("thead", {}, el("tr", {}, el("th", { text: "Name" }), el("th", { class: "num", text: "Size" }), el("th", { text: "sha256" }), el("th"))), tb));
}

// Artifacts need the key, so a plain link cannot fetch them: fetch, then
// hand the bytes to the browser as a download.
function downloadArtifact(e, runId, name, link) {
	return downloadPath(e, `/v1/runs/${encodeURIComponent(runId)}/artifacts/${encodeURIComponent(name)}`, name, link);
}

async function downloadPath(e, path, name, link) {
	if (link.dataset.ready === "1") return; // the object URL is set: let the browser download
	e.preventDefault();
	link.classList.add("busy");
	try {
		const blob = await api(path, { as: "blob" });
		const url = URL.createObjectURL(blob);
		link.href = url;
		link.download = name;
		link.dataset.ready = "1";
		link.click();
		setTimeout(() => { URL.revokeObjectURL(url); link.href = "#"; link.removeAttribute("download"); delete link.dataset.ready; }, 60000);
	} catch (err) {
		banner(err);
	} finally {
		link.classList.remove("busy");
	}
}

async function loadLog(scope, id, which) {
	const pre = $("run-" + which);
	try {
		const text = await api(`/v1/runs/${encodeURIComponent(id)}/${which}`, { as: "text", signal: scope.signal });
		if (!scope.alive) return;
		pre.textContent = text;
		pre.classList.toggle("empty-log", !text);
		if (!text) pre.textContent = "(empty)";
	} catch (e) {
		if (!scope.alive || e.name === "AbortError") return;
		pre.textContent = e.status === 404 ? "(none)" : errorText(e);
		pre.classList.add("empty-log");
	}
}

// One event, as a row: what happened, in words.
function eventDetail(ev) {
	const dest = (e) => `${e.hostname || e.host || "?"}${e.port ? ":" + e.port : ""}${e.path || ""}`;
	switch (ev.type) {
	case "run.created":
		return `agent ${ev.agent}${ev.version ? "@" + ev.version : ""} · sha256 ${shortHash(ev.sha256)} · ${ev.caller || ""}` +
			(ev.capabilities && ev.capabilities.length ? ` · capabilities ${ev.capabilities.map((c) => c.name || c).join(", ")}` : "") +
			(ev.secrets && ev.secrets.length ? ` · secrets ${ev.secrets.join(", ")}` : "");
	case "sandbox.ready": {
		const p = ev.protections || {};
		return `network ${ev.network} · userns ${p.userns ? "✓" : "✗"} · seccomp ${p.seccomp ? "✓" : "✗"} · landlock ${p.landlock_abi || "✗"} · cgroup ${p.cgroup || "none"}` +
			(p.degraded && p.degraded.length ? ` · degraded: ${p.degraded.join(", ")}` : "");
	}
	case "setup.finished":
		return `exit ${ev.exit_code} in ${fmtMs(ev.duration_ms)}`;
	case "step": {
		const s = ev.step || {};
		if (typeof s.name === "string") {
			const rest = Object.assign({}, s);
			delete rest.name;
			return s.name + (Object.keys(rest).length ? "  " + JSON.stringify(rest) : "");
		}
		if (typeof s.text === "string") return s.text;
		return JSON.stringify(s);
	}
	case "egress.allowed":
		return `${ev.method || ""} ${dest(ev)} → ${ev.status_code ?? "?"}` + (ev.rule ? ` · rule ${ev.rule}` : "") +
			(typeof ev.duration_ms === "number" ? ` · ${fmtMs(ev.duration_ms)}` : "");
	case "egress.blocked":
		return `${ev.method || ""} ${dest(ev)} blocked: ${ev.blocked_reason || "?"}` + (ev.stage ? ` (stage ${ev.stage})` : "");
	case "approval.requested":
		if (ev.source === "mcp")
			return `the agent asks to: ${ev.action || "?"} · reason: ${ev.reason || "(none)"} · waits for a decision · ${ev.approval_id}`;
		return `${ev.method || ""} ${dest(ev)} waits for a decision · ${ev.approval_id}`;
	case "approval.decided": {
		const by = ev.decided_by || ev.by;
		return `${ev.approval_id} ${ev.decision}` + (by ? ` by ${by}` : "") +
			(ev.source === "mcp" ? ` · the agent asked to: ${ev.action || "?"}` : ` · ${ev.method || ""} ${dest(ev)}`);
	}
	case "artifact.saved":
		return `${ev.name} · ${fmtBytes(ev.size)} · sha256 ${shortHash(ev.sha256)}` + (ev.original && ev.original !== ev.name ? ` (was ${ev.original})` : "");
	case "artifact.skipped":
		return `${ev.name}: ${ev.reason}`;
	case "output.invalid":
		return String(ev.problem || "");
	case "run.finished":
		return `${ev.status} · exit ${ev.exit_code} · ${fmtMs(ev.duration_ms)} · ${ev.steps ?? 0} steps · egress ${ev.egress_allowed ?? 0} allowed, ${ev.egress_blocked ?? 0} blocked` +
			(ev.error ? ` · ${ev.error}` : "");
	default: {
		// A type this page does not know: its "detail" when it has one, else its fields.
		const rest = Object.assign({}, ev);
		for (const k of ["seq", "ts", "run_id", "type"]) delete rest[k];
		if (typeof rest.detail === "string") {
			const d = rest.detail;
			delete rest.detail;
			return d + (Object.keys(rest).length ? "  " + JSON.stringify(rest) : "");
		}
		return JSON.stringify(rest);
	}
	}
}

function eventKind(ev) {
	const t = ev.type || "";
	if (t === "egress.blocked" || t === "artifact.skipped" || t === "output.invalid") return "bad";
	if (t === "approval.requested") return "warn";
	if (t === "approval.decided") return ev.decision === "approved" ? "ok" : "bad";
	if (t === "run.finished") return OK_STATUS.has(ev.status) ? "ok" : "bad";
	if (t === "egress.allowed" || t === "artifact.saved") return "ok";
	if (t === "step") return "step";
	return "info";
}

function eventRow(ev) {
	return el("tr", { testid: "event-row", class: "ev ev-" + eventKind(ev), data: { type: ev.type || "", seq: String(ev.seq ?? "") } },
		el("td", { class: "num muted mono", text: ev.seq ?? "" }),
		el("td", { class: "mono small nowrap" }, timeEl(ev.ts, true)),
		el("td", { class: "nowrap" }, el("span", { class: "ev-type ev-type-" + eventKind(ev), text: ev.type || "?" })),
		el("td", { class: "ev-detail", text: eventDetail(ev) }));
}

// Follows the run's events: GET .../events?follow=1, read as it arrives.
// Reconnects (skipping what it has) until the run has finished.
async function followEvents(scope, id, onEvent) {
	let lastSeq = 0, finished = false;
	const stateEl = $("run-events-state");
	while (scope.alive && !finished) {
		stateEl.textContent = "● live";
		stateEl.className = "stream-state live small";
		try {
			const res = await api(`/v1/runs/${encodeURIComponent(id)}/events?follow=1&after=${lastSeq}`, { as: "response", signal: scope.signal, headers: { Accept: "application/x-ndjson" } });
			const reader = res.body.getReader();
			const dec = new TextDecoder();
			let buf = "";
			for (;;) {
				const { value, done } = await reader.read();
				if (done) break;
				buf += dec.decode(value, { stream: true });
				let nl;
				while ((nl = buf.indexOf("\n")) >= 0) {
					const line = buf.slice(0, nl).trim();
					buf = buf.slice(nl + 1);
					if (!line) continue;
					let ev;
					try { ev = JSON.parse(line); } catch (_) { continue; }
					if (typeof ev.seq === "number") {
						if (ev.seq <= lastSeq) continue;
						lastSeq = ev.seq;
					}
					if (!scope.alive) return;
					onEvent(ev);
					if (ev.type === "run.finished") finished = true;
				}
			}
		} catch (e) {
			if (!scope.alive || e.name === "AbortError") return;
			stateEl.textContent = "reconnecting: " + errorText(e);
			if (e.status === 404) return;
		}
		if (finished || !scope.alive) break;
		// The stream ended without run.finished: the run may have ended
		// another way (cancelled while queued, its supervisor died).
		try {
			const rec = await api(`/v1/runs/${encodeURIComponent(id)}`, { signal: scope.signal });
			if (FINAL.has(rec.status)) break;
		} catch (e) {
			if (!scope.alive || e.name === "AbortError") return;
		}
		await sleep(1000);
	}
	if (scope.alive) {
		stateEl.textContent = "complete";
		stateEl.className = "stream-state muted small";
	}
}

// What a page keeps of one live output: the server caps it (--capture),
// this caps it again in case a server's cap is large.
const OUTPUT_SHOW_MAX = 1 << 20;

// Follows the run's stdout or stderr: GET .../stdout?follow=1 (from the
// bytes already here, after a reconnect), appended as text while live()
// holds. The server sends only what the run wrote after redaction.
async function followOutput(scope, id, which, live, onBytes) {
	const pre = $("run-" + which);
	const dec = new TextDecoder();
	let got = 0, text = "";
	for (let tries = 0; scope.alive && live() && tries < 30; tries++) {
		try {
			const res = await api(`/v1/runs/${encodeURIComponent(id)}/${which}?follow=1` + (got ? `&offset=${got}` : ""), { as: "response", signal: scope.signal });
			const reader = res.body.getReader();
			for (;;) {
				const { value, done } = await reader.read();
				if (done) return; // the run has ended
				got += value.length;
				if (text.length < OUTPUT_SHOW_MAX) text += dec.decode(value, { stream: true }).slice(0, OUTPUT_SHOW_MAX - text.length);
				if (!scope.alive || !live()) return;
				pre.textContent = text;
				pre.classList.toggle("empty-log", !text);
				if (value.length) onBytes();
			}
		} catch (e) {
			if (!scope.alive || e.name === "AbortError") return;
			if (e.status === 404 || e.status === 400) return;
			await sleep(1000); // 429 (too many streams) or the network: try again
		}
	}
}

export async function viewRun(scope, id) {
	$("run-id").textContent = id;
	$("run-agent").textContent = "";
	$("run-agent-sha").textContent = "";
	setStatus($("run-status"), "loading");
	for (const n of ["run-result", "run-resolved", "run-protections", "run-resources", "run-events", "run-artifacts"]) clear($(n));
	for (const n of ["run-output", "run-stdout", "run-stderr"]) { $(n).textContent = ""; $(n).classList.remove("empty-log"); }
	$("run-events-state").textContent = "";
	show($("run-waiting"), false);
	show($("run-cancel"), false);
	showFormError($("run-error"), null);

	let rec = null, finalLoaded = false;
	const pending = new Map(); // approval id -> event

	const renderWaiting = () => {
		const box = clear($("run-waiting"));
		if (!pending.size || (rec && FINAL.has(rec.status))) { show(box, false); return; }
		box.append(el("strong", { text: pending.size === 1 ? "A request is waiting for approval: " : pending.size + " requests are waiting for approval: " }));
		for (const ev of pending.values())
			box.append(el("span", { class: "mono", text: ev.source === "mcp" ? `the agent asks to: ${ev.action} ` : `${ev.method} ${ev.hostname}:${ev.port}${ev.path || ""} ` }));
		box.append(el("a", { href: "#/approvals", text: "Open the approvals queue →" }));
		show(box, true);
	};

	// Record fetches can overlap (the poll, an event, the first output):
	// only the newest one's answer is shown, so an older answer that was
	// slower never puts a running run back to "created".
	let recSeq = 0;
	const loadRecord = async () => {
		const seq = ++recSeq;
		const r = await api(`/v1/runs/${encodeURIComponent(id)}`, { signal: scope.signal });
		if (!scope.alive || seq !== recSeq) return;
		rec = r;
		renderRecord(r);
		renderWaiting();
		if (FINAL.has(r.status) && !finalLoaded) {
			finalLoaded = true;
			renderArtifacts(id, r.result);
			$("run-stdout-note").textContent = r.result && r.result.stdout && r.result.stdout.truncated ? `(first ${fmtBytes(r.result.stdout.kept)} of ${fmtBytes(r.result.stdout.bytes)})` : "";
			$("run-stderr-note").textContent = r.result && r.result.stderr && r.result.stderr.truncated ? `(first ${fmtBytes(r.result.stderr.kept)} of ${fmtBytes(r.result.stderr.bytes)})` : "";
			await Promise.all([loadLog(scope, id, "stdout"), loadLog(scope, id, "stderr")]);
		} else if (!FINAL.has(r.status)) {
			renderArtifacts(id, null);
		}
	};

	try {
		await loadRecord();
	} catch (e) {
		if (!scope.alive) return;
		setStatus($("run-status"), "unknown");
		showFormError($("run-error"), e);
		return;
	}

	// Cancel: click twice (no dialog).
	const cancel = $("run-cancel");
	cancel.textContent = "Cancel run";
	cancel.disabled = false;
	bindOnce({ "run-cancel": ["click", async () => {
		if (cancel.dataset.armed !== "1") {
			cancel.dataset.armed = "1";
			cancel.textContent = "Click again to cancel";
			scope.later(() => { cancel.dataset.armed = ""; cancel.textContent = "Cancel run"; }, 3000);
			return;
		}
		cancel.dataset.armed = "";
		cancel.disabled = true;
		cancel.textContent = "Cancelling…";
		try {
			await api(`/v1/runs/${encodeURIComponent(id)}/cancel`, { method: "POST" });
			await loadRecord();
		} catch (e) {
			if (scope.alive) showFormError($("run-error"), e);
		} finally {
			cancel.disabled = false;
			cancel.textContent = "Cancel run";
		}
	}] });

	// The record, while the run is not final (status changes, the result).
	const pollRecord = async () => {
		if (rec && FINAL.has(rec.status) && finalLoaded) return;
		try { await loadRecord(); } catch (e) { if (scope.alive && e.name !== "AbortError") banner(e); }
		if (scope.alive && !(rec && FINAL.has(rec.status))) scope.later(pollRecord, 1500);
	};
	if (!FINAL.has(rec.status)) scope.later(pollRecord, 1500);

	// stdout and stderr as the run writes them, until it ends; then the
	// whole files replace what came (loadRecord, above).
	if (!FINAL.has(rec.status)) {
		for (const w of ["stdout", "stderr"]) {
			$("run-" + w).textContent = "(nothing yet)";
			$("run-" + w).classList.add("empty-log");
			$("run-" + w + "-note").textContent = "live";
			// Output means the sandbox runs: show the record's new status
			// now rather than at the next poll.
			const onBytes = () => {
				if (rec && (rec.status === "created" || rec.status === "queued"))
					loadRecord().catch((e) => scope.alive && e.name !== "AbortError" && banner(e));
			};
			followOutput(scope, id, w, () => !finalLoaded, onBytes).catch((e) => scope.alive && e.name !== "AbortError" && banner(e));
		}
	}

	const tbody = $("run-events");
	followEvents(scope, id, (ev) => {
		tbody.append(eventRow(ev));
		if (ev.type === "approval.requested") pending.set(ev.approval_id, ev);
		if (ev.type === "approval.decided") pending.delete(ev.approval_id);
		if (ev.type === "sandbox.ready" && rec && !FINAL.has(rec.status)) renderProtections(ev.protections);
		// The record changes at these: show it now rather than at the next poll.
		if ((ev.type === "sandbox.ready" && rec && rec.status === "created") || ev.type === "run.finished")
			loadRecord().catch((e) => scope.alive && e.name !== "AbortError" && banner(e));
		renderWaiting();
	}).catch((e) => scope.alive && banner(e));
}
