// SPDX-License-Identifier: Apache-2.0
// The page's small helpers: building elements (text only, never HTML),
// formatting sizes, durations, times and hashes, and binding the static
// elements' listeners.

export const FINAL = new Set(["succeeded", "failed", "timeout", "oom", "killed", "error", "cancelled", "lost"]);
export const OK_STATUS = new Set(["succeeded"]);

/* ------------------------------------------------------------ utilities */

export const $ = (id) => document.getElementById(id);

// el("td", {class: "x", text: "y", testid: "z"}, child...): a DOM element.
// Children are nodes or strings (as text); null and false are skipped.
export function el(tag, attrs, ...children) {
	const e = document.createElement(tag);
	for (const [k, v] of Object.entries(attrs || {})) {
		if (v === null || v === undefined || v === false) continue;
		if (k === "class") e.className = v;
		else if (k === "text") e.textContent = v;
		else if (k === "testid") e.dataset.testid = v;
		else if (k === "data") Object.assign(e.dataset, v);
		else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
		else if (v === true) e.setAttribute(k, "");
		else e.setAttribute(k, String(v));
	}
	for (const c of children.flat()) {
		if (c === null || c === undefined || c === false) continue;
		e.append(c instanceof Node ? c : document.createTextNode(String(c)));
	}
	return e;
}

export function clear(node) {
	while (node.firstChild) node.removeChild(node.firstChild);
	return node;
}

export function show(node, on) {
	node.hidden = !on;
	return node;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function fmtBytes(n) {
	if (typeof n !== "number" || !isFinite(n)) return "–";
	if (n < 1024) return n + " B";
	const units = ["KiB", "MiB", "GiB", "TiB"];
	let v = n / 1024, i = 0;
	while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
	return (v < 10 ? v.toFixed(1) : Math.round(v)) + " " + units[i];
}

export function fmtMs(ms) {
	if (typeof ms !== "number" || !isFinite(ms)) return "–";
	if (ms < 1000) return ms + " ms";
	if (ms < 60000) return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + " s";
	const s = Math.round(ms / 1000);
	return Math.floor(s / 60) + " min " + (s % 60) + " s";
}

export function pad(n, w = 2) { return String(n).padStart(w, "0"); }

// An RFC 3339 time as the browser's local date and time, always with the
// date: "YYYY-MM-DD HH:MM:SS" (".mmm" withMs). A time alone ("12:03:04")
// reads as today's even on a page left open overnight.
export function fmtTime(iso, withMs) {
	if (!iso) return "–";
	const d = new Date(iso);
	if (isNaN(d)) return String(iso);
	return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
		pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()) +
		(withMs ? "." + pad(d.getMilliseconds(), 3) : "");
}

// The browser's time zone and its offset at d, for a time's tooltip.
function zoneOf(d) {
	const off = -d.getTimezoneOffset();
	const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";
	return `${zone}, UTC${off < 0 ? "-" : "+"}${pad(Math.floor(Math.abs(off) / 60))}:${pad(Math.abs(off) % 60)}`;
}

// A <time>: local date and time as text, the API's RFC 3339 (UTC) and the
// zone shown in its tooltip.
export function timeEl(iso, withMs) {
	const d = iso ? new Date(iso) : null;
	const title = d && !isNaN(d) ? `${iso} (shown in ${zoneOf(d)})` : iso || null;
	return el("time", { datetime: iso || null, title, text: fmtTime(iso, withMs) });
}

// A datetime-local input's value (the browser's local time) as RFC 3339
// UTC, or "" when it is empty or not a time.
export function localInputToRfc3339(v) {
	if (!v) return "";
	const d = new Date(v);
	return isNaN(d) ? "" : d.toISOString();
}

// Two clicks to do something that cannot be undone, without a dialog: the
// first arms the button for 3 s.
export function armed(button, label, armedLabel, scope) {
	if (button.dataset.armed === "1") {
		button.dataset.armed = "";
		button.textContent = label;
		return true;
	}
	button.dataset.armed = "1";
	button.textContent = armedLabel;
	scope.later(() => { button.dataset.armed = ""; button.textContent = label; }, 3000);
	return false;
}

export function shortHash(h, n = 12) {
	return typeof h === "string" && h ? h.slice(0, n) + (h.length > n ? "…" : "") : "–";
}

export function hashEl(h, n) {
	return el("span", { class: "mono hash", title: h || null, text: shortHash(h, n) });
}

export function statusEl(status, big) {
	const s = String(status || "unknown");
	return el("span", { class: "status status-" + s.replace(/[^a-z]/g, "") + (big ? " status-big" : ""), text: s });
}

export function setStatus(node, status) {
	const s = String(status || "unknown");
	node.className = "status status-big status-" + s.replace(/[^a-z]/g, "");
	node.textContent = s;
	node.dataset.status = s;
}

export function runLink(id, text) {
	return el("a", { class: "mono", href: "#/runs/" + encodeURIComponent(id), text: text || id });
}

export function kv(dl, label, value, opts = {}) {
	const v = value instanceof Node ? value : el("span", { text: value === undefined || value === null || value === "" ? "–" : String(value) });
	dl.append(el("dt", { text: label }), el("dd", { testid: opts.testid, class: opts.class }, v));
}

export function chip(text, kind, title) {
	return el("span", { class: "chip" + (kind ? " chip-" + kind : ""), title, text });
}

// Static elements: each view entry replaces the listener its last entry set.
export function bindOnce(handlers) {
	for (const [id, [ev, fn]] of Object.entries(handlers)) {
		const node = $(id);
		if (node._cordonHandler && node._cordonHandler[ev]) node.removeEventListener(ev, node._cordonHandler[ev]);
		node._cordonHandler = node._cordonHandler || {};
		node._cordonHandler[ev] = fn;
		node.addEventListener(ev, fn);
	}
}
