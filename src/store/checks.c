/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The checks every backend shares, with no file or SQL in them: the
 * grammars of the identifiers the store keeps (store.h), the checks of an
 * item and a run record before they are written, and run status names.
 * Modules that only check a name (the vault, the redactor, the manifest
 * parser) link this file alone.
 */
#define _GNU_SOURCE
#include "store/internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/cleanup.h"
#include "base/hash.h"
#include "base/text.h"

/* ------------------------------------------------------------------ names */

/*
 * The one shape of every identifier the store keeps: a letter or digit,
 * then letters, digits, '.', '_' and '-' (no "/", no ".." component, no
 * leading dot or dash: each becomes a path or a key, and an option). Upper
 * case only where `upper`: agent and workspace names are lower case, so
 * that two spellings are never two names.
 */
static bool ident_ok(const char *s, size_t len, size_t max, bool upper)
{
	if (len == 0 || len > max)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			  (upper && c >= 'A' && c <= 'Z') ||
			  (i > 0 && (c == '.' || c == '_' || c == '-'));
		if (!ok)
			return false;
	}
	return true;
}

bool store_name_ok(const char *name)
{
	return name && ident_ok(name, strnlen(name, STORE_MAX_NAME + 1), STORE_MAX_NAME, false);
}

bool store_secret_name_ok(const char *name)
{
	return name && ident_ok(name, strnlen(name, STORE_MAX_NAME + 1), STORE_MAX_NAME, true);
}

bool store_run_id_ok(const char *id)
{
	return id && ident_ok(id, strnlen(id, STORE_RUN_ID_MAX + 1), STORE_RUN_ID_MAX, true);
}

static int name_check(const char *what, const char *name, bool upper, struct cdn_err *err)
{
	char shown[STORE_MAX_NAME + 8];
	size_t len = name ? strnlen(name, STORE_MAX_NAME + 1) : 0;
	if (len == 0)
		return cdn_err_msg(err, EINVAL, "%s name is empty", what);
	cdn_printable_str(shown, sizeof(shown), name, 0);
	if (len > STORE_MAX_NAME)
		return cdn_err_msg(err, EINVAL, "%s name \"%s...\" is longer than %d characters",
				   what, shown, STORE_MAX_NAME);
	if (!ident_ok(name, len, STORE_MAX_NAME, upper))
		return cdn_err_msg(err, EINVAL,
				   "%s name \"%s\": use %s, digits, '.', '_' and '-', "
				   "starting with a letter or digit",
				   what, shown, upper ? "letters" : "lowercase letters");
	return 0;
}

int store_name_check(const char *what, const char *name, struct cdn_err *err)
{
	return name_check(what ? what : "a", name, false, err);
}

int store_secret_name_check(const char *name, struct cdn_err *err)
{
	return name_check("secret", name, true, err);
}


/* ------------------------------------------------- checks shared with SQL */

const char *store_kind_name(enum store_kind kind)
{
	switch (kind) {
	case STORE_AGENT: return "agent";
	case STORE_CAPABILITY: return "capability";
	case STORE_ENV: return "env";
	}
	return NULL;
}

int store_item_check(const struct store_item *it, struct cdn_err *err)
{
	const char *kind = store_kind_name(it->kind);
	if (!kind)
		return cdn_err_msg(err, EINVAL, "store: unknown item kind %d", (int)it->kind);
	int r = store_name_check("workspace", it->workspace, err);
	if (r < 0 || (r = store_name_check(kind, it->name, err)) < 0)
		return r;
	if (!cdn_sha256_hex_str_ok(it->hash))
		return cdn_err_msg(err, EINVAL, "store: %s %s: the content hash is not a sha256",
				   kind, it->name);
	bool want_tree = it->kind != STORE_ENV;
	if (want_tree && !cdn_sha256_hex_str_ok(it->tree))
		return cdn_err_msg(err, EINVAL, "store: %s %s: the tree is not a sha256", kind,
				   it->name);
	if (!want_tree && it->tree[0])
		return cdn_err_msg(err, EINVAL, "store: env %s: an env has no tree", it->name);
	if (it->doc && strnlen(it->doc, STORE_MAX_MANIFEST + 1) > STORE_MAX_MANIFEST)
		return cdn_err_msg(err, E2BIG, "store: %s %s: the document is over %d bytes", kind,
				   it->name, STORE_MAX_MANIFEST);
	return 0;
}

int store_run_id_check(const char *id, struct cdn_err *err)
{
	char shown[STORE_RUN_ID_MAX + 8];
	cdn_printable_str(shown, sizeof(shown), id, 0);
	if (!store_run_id_ok(id))
		return cdn_err_msg(err, EINVAL,
				   "store: run id \"%s\": use letters, digits, '.', '_' and '-', "
				   "starting with a letter or digit, at most %d",
				   shown, STORE_RUN_ID_MAX);
	return 0;
}

static bool bounded(const char *field, size_t size)
{
	return memchr(field, '\0', size) != NULL;
}

int store_run_check(const struct store_run *r, struct cdn_err *err)
{
	int e = store_run_id_check(r->id, err);
	if (e < 0 || (e = store_name_check("workspace", r->workspace, err)) < 0 ||
	    (e = store_name_check("agent", r->agent, err)) < 0)
		return e;
	if (r->agent_hash[0] && !cdn_sha256_hex_str_ok(r->agent_hash))
		return cdn_err_msg(err, EINVAL, "store: run %s: the agent hash is not a sha256",
				   r->id);
	if ((unsigned)r->status > RUN_CANCELLED)
		return cdn_err_msg(err, EINVAL, "store: run %s: unknown status %d", r->id,
				   (int)r->status);
	if (!bounded(r->caller, sizeof(r->caller)) ||
	    !bounded(r->supervisor_boot, sizeof(r->supervisor_boot)) ||
	    !bounded(r->error, sizeof(r->error)))
		return cdn_err_msg(err, EINVAL, "store: run %s: a text field is not terminated",
				   r->id);
	if (r->input_json && strnlen(r->input_json, STORE_MAX_RUN_JSON + 1) > STORE_MAX_RUN_JSON)
		return cdn_err_msg(err, E2BIG, "store: run %s: the input is over %d bytes", r->id,
				   STORE_MAX_RUN_JSON);
	if (r->result_json &&
	    strnlen(r->result_json, STORE_MAX_RUN_JSON + 1) > STORE_MAX_RUN_JSON)
		return cdn_err_msg(err, E2BIG, "store: run %s: the result is over %d bytes", r->id,
				   STORE_MAX_RUN_JSON);
	return 0;
}

/* ------------------------------------------------------------------- runs */

static const char *const status_names[] = {
	[RUN_CREATED] = "created",   [RUN_RUNNING] = "running", [RUN_SUCCEEDED] = "succeeded",
	[RUN_FAILED] = "failed",     [RUN_TIMEOUT] = "timeout", [RUN_OOM] = "oom",
	[RUN_KILLED] = "killed",     [RUN_ERROR] = "error",	[RUN_CANCELLED] = "cancelled",
};

const char *store_run_status_name(enum store_run_status st)
{
	return (unsigned)st < CDN_ARRAY_SIZE(status_names) ? status_names[st] : "unknown";
}

int store_run_status_parse(const char *name, enum store_run_status *st)
{
	for (size_t i = 0; name && i < CDN_ARRAY_SIZE(status_names); i++)
		if (!strcmp(name, status_names[i])) {
			*st = (enum store_run_status)i;
			return 0;
		}
	return -EINVAL;
}

bool store_run_status_final(enum store_run_status st)
{
	return st != RUN_CREATED && st != RUN_RUNNING;
}

