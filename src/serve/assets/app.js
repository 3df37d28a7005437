// SPDX-License-Identifier: Apache-2.0
// The dashboard of `cordon serve`: native ES modules, no build step, no
// framework. The page's CSP allows only scripts of this origin, so there is
// no inline script or style. Everything that comes from the server (names,
// agent output, events) goes into the page as text (textContent, .value),
// never as HTML. This module signs in and out and routes #/... to a page's
// module.

import { $, show } from "./dom.js";
import { api, state, KEY_STORAGE, Scope, ApiError, banner, showFormError, onUnauthorized } from "./api.js";
import { viewRuns } from "./runs.js";
import { viewRun } from "./run.js";
import { viewApprovals, setApprovalCount } from "./approvals.js";
import { viewAudit } from "./audit.js";
import { viewPolicy } from "./policy.js";
import { viewSecrets } from "./secrets.js";
import { viewAgents } from "./agents.js";
import { viewKeys } from "./keys.js";
import { viewUsage, usageControls } from "./usage.js";
import { viewSchedules } from "./schedules.js";
import { viewServices } from "./services.js";
import { viewDeps } from "./deps.js";

/* ------------------------------------------------------ sign in / out */

function signOut(message) {
	sessionStorage.removeItem(KEY_STORAGE);
	$("key-created-value").textContent = "";
	state.key = null;
	state.me = null;
	state.agents = null;
	if (state.scope) state.scope.end();
	if (globalScope) globalScope.end();
	globalScope = null;
	state.scope = null;
	show($("nav"), false);
	show($("who"), false);
	banner(null);
	for (const v of document.querySelectorAll(".view")) show(v, false);
	show($("view-signin"), true);
	showFormError($("signin-error"), message ? new ApiError(0, "signed_out", message) : null);
	$("signin-key").value = "";
	$("signin-key").focus();
}

function showIdentity(me) {
	$("who-role").textContent = me.role;
	$("who-role").className = "who-role role-" + (me.role === "owner" ? "owner" : "member");
	$("who-ws").textContent = me.workspace;
	$("who-id").textContent = me.id + (me.name ? " (" + me.name + ")" : "");
	show($("who"), true);
	show($("nav"), true);
}

async function signIn(key) {
	const me = await api("/v1/whoami", { key });
	state.key = key;
	state.me = me;
	sessionStorage.setItem(KEY_STORAGE, key);
	showIdentity(me);
	show($("view-signin"), false);
	startGlobal();
	route();
}

/* ---------------------------------------------------------- routing */

const VIEWS = {
	runs: viewRuns,
	run: viewRun,
	approvals: viewApprovals,
	audit: viewAudit,
	policy: viewPolicy,
	secrets: viewSecrets,
	agents: viewAgents,
	keys: viewKeys,
	usage: viewUsage,
	schedules: viewSchedules,
	services: viewServices,
	deps: viewDeps,
};

function parseHash() {
	const parts = location.hash.replace(/^#\/?/, "").split("/").map((p) => { try { return decodeURIComponent(p); } catch (_) { return ""; } });
	const top = parts[0] || "runs";
	if (top === "runs" && parts[1]) return { view: "run", arg: parts[1] };
	if (top === "audit") return { view: "audit", arg: parts[1] || "" };
	if (top === "agents") return { view: "agents", arg: parts[1] || "" };
	if (VIEWS[top]) return { view: top, arg: "" };
	return { view: "runs", arg: "" };
}

function route() {
	if (!state.key) return;
	if (state.scope) state.scope.end();
	banner(null);
	const { view, arg } = parseHash();
	// A new key's secret part leaves the page with its view.
	$("key-created-value").textContent = "";
	for (const v of document.querySelectorAll(".view")) show(v, v.id === "view-" + view);
	for (const a of document.querySelectorAll("#nav a")) {
		const on = a.dataset.route === view || (view === "run" && a.dataset.route === "runs");
		a.classList.toggle("active", on);
		if (on) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
	}
	const scope = new Scope();
	state.scope = scope;
	window.scrollTo(0, 0);
	Promise.resolve(VIEWS[view](scope, arg)).catch((e) => { if (scope.alive) banner(e); });
}

/* Pending approvals, counted in the navigation bar while signed in. */
let globalScope = null;

function startGlobal() {
	if (globalScope) globalScope.end();
	const g = new Scope();
	globalScope = g;
	g.poll(async () => {
		if (parseHash().view === "approvals") return; // that view polls faster
		const j = await api("/v1/approvals", { signal: g.signal });
		if (g.alive) setApprovalCount((j.approvals || []).length);
	}, 4000);
}

/* ---------------------------------------------------------------- boot */

function boot() {
	onUnauthorized(signOut);
	$("signin-form").addEventListener("submit", async (e) => {
		e.preventDefault();
		const key = $("signin-key").value.trim();
		if (!key) return;
		const btn = $("signin-submit");
		btn.disabled = true;
		showFormError($("signin-error"), null);
		try {
			await signIn(key);
			$("signin-key").value = "";
		} catch (err) {
			showFormError($("signin-error"), err);
		} finally {
			btn.disabled = false;
		}
	});
	$("sign-out").addEventListener("click", () => signOut(null));
	$("banner-close").addEventListener("click", () => banner(null));
	window.addEventListener("hashchange", route);
	usageControls(route);

	const saved = sessionStorage.getItem(KEY_STORAGE);
	if (!saved) { signOut(null); return; }
	signIn(saved).catch((err) => {
		signOut(null);
		showFormError($("signin-error"), err);
	});
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
else boot();
