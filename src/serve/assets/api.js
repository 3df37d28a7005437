// SPDX-License-Identifier: Apache-2.0
// The session (the key, in this tab only, and who it is) and the API:
// fetch with the key, errors as values to show, and each view's scope.

import { $, el, clear, show } from "./dom.js";

export const KEY_STORAGE = "cordon.apiKey";

export const state = {
	key: null,
	me: null,
	scope: null, // the current view's timers and requests
	runsFilter: { status: "", agent: "", since: "", until: "" }, // since/until: datetime-local values
	runsCursors: [null], // the cursor of each page visited; the last is the current one
	agents: null,
};

export const isOwner = () => state.me && state.me.role === "owner";

/* ------------------------------------------------------------- the API */

// What a 401 does (app.js signs out): set once at boot.
let unauthorized = () => {};
export function onUnauthorized(fn) { unauthorized = fn; }

export class ApiError extends Error {
	constructor(status, code, message) {
		super(message);
		this.status = status;
		this.code = code;
	}
}

// api("/v1/...", {method, json, body, headers, as: "json"|"text"|"blob"|"response", signal})
export async function api(path, opts = {}) {
	const headers = new Headers(opts.headers || {});
	headers.set("Authorization", "Bearer " + (opts.key || state.key || ""));
	let body = opts.body;
	if (opts.json !== undefined) {
		headers.set("Content-Type", "application/json");
		body = JSON.stringify(opts.json);
	}
	let res;
	try {
		res = await fetch(path, { method: opts.method || "GET", headers, body, signal: opts.signal, cache: "no-store", credentials: "omit" });
	} catch (e) {
		if (e.name === "AbortError") throw e;
		throw new ApiError(0, "network", "cannot reach the server (" + e.message + ")");
	}
	if (!res.ok) {
		let code = "http_" + res.status, message = res.statusText || "HTTP " + res.status;
		try {
			const j = await res.json();
			if (j && j.error) {
				code = String(j.error.code || code);
				message = String(j.error.message || message);
			}
		} catch (_) { /* not JSON */ }
		const err = new ApiError(res.status, code, message);
		if (res.status === 401 && !opts.key) unauthorized("Signed out: " + message);
		throw err;
	}
	switch (opts.as) {
	case "response": return res;
	case "text": return res.text();
	case "blob": return res.blob();
	default: return res.json();
	}
}

export function errorText(err) {
	if (err instanceof ApiError) return err.status ? `${err.code} (${err.status}): ${err.message}` : err.message;
	return String(err && err.message ? err.message : err);
}

export function errorEl(err) {
	if (err instanceof ApiError) {
		return el("div", { class: "api-error" },
			el("strong", { text: err.code }), err.status ? el("span", { class: "muted", text: " HTTP " + err.status }) : null,
			el("div", { class: "api-error-msg", text: err.message }));
	}
	return el("div", { class: "api-error" }, el("div", { class: "api-error-msg", text: String(err && err.message ? err.message : err) }));
}

export function showFormError(node, err) {
	clear(node);
	if (err) node.append(errorEl(err));
	show(node, !!err);
}

export function banner(err) {
	if (err && err.name === "AbortError") return;
	const b = $("banner");
	clear($("banner-text"));
	if (err) $("banner-text").append(errorEl(err));
	show(b, !!err);
}

/* -------------------------------------------------- a view's lifetime */

// Each view gets a scope: its timers and requests end when the view does.
export class Scope {
	constructor() {
		this.alive = true;
		this.ctl = new AbortController();
		this.timers = new Set();
	}
	get signal() { return this.ctl.signal; }
	later(fn, ms) {
		const t = setTimeout(() => { this.timers.delete(t); if (this.alive) fn(); }, ms);
		this.timers.add(t);
		return t;
	}
	// Like later(), but replaces the timer of the same name.
	laterOnce(name, fn, ms) {
		this.named = this.named || {};
		if (this.named[name]) { clearTimeout(this.named[name]); this.timers.delete(this.named[name]); }
		this.named[name] = this.later(fn, ms);
	}
	// Calls fn now and then ms after each call has finished, while the page is visible.
	poll(fn, ms) {
		const tick = async () => {
			if (!this.alive) return;
			if (document.visibilityState === "visible") {
				try { await fn(); } catch (e) { if (e.name !== "AbortError" && this.alive) banner(e); }
			}
			this.later(tick, ms);
		};
		tick();
	}
	end() {
		this.alive = false;
		this.ctl.abort();
		for (const t of this.timers) clearTimeout(t);
		this.timers.clear();
	}
}
