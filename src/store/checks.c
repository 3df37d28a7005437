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
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/cleanup.h"
#include "base/clock.h"
#include "base/hash.h"
#include "base/units.h"
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
	if ((unsigned)r->status > RUN_LOST)
		return cdn_err_msg(err, EINVAL, "store: run %s: unknown status %d", r->id,
				   (int)r->status);
	if (!bounded(r->caller, sizeof(r->caller)) ||
	    !bounded(r->supervisor_boot, sizeof(r->supervisor_boot)) ||
	    !bounded(r->error, sizeof(r->error)))
		return cdn_err_msg(err, EINVAL, "store: run %s: a text field is not terminated",
				   r->id);
	if (!bounded(r->lease_owner, sizeof(r->lease_owner)) ||
	    !bounded(r->labels, sizeof(r->labels)) || !bounded(r->retry_of, sizeof(r->retry_of)))
		return cdn_err_msg(err, EINVAL, "store: run %s: a text field is not terminated",
				   r->id);
	if (r->lease_owner[0] && !store_worker_id_ok(r->lease_owner))
		return cdn_err_msg(err, EINVAL, "store: run %s: the lease owner is not a worker id",
				   r->id);
	if (r->retry_of[0] && !store_run_id_ok(r->retry_of))
		return cdn_err_msg(err, EINVAL, "store: run %s: retry_of is not a run id", r->id);
	if (r->retry_max > STORE_RETRY_MAX || r->attempt > STORE_RETRY_MAX + 1)
		return cdn_err_msg(err, EINVAL, "store: run %s: attempt %u of %u retries is out of range",
				   r->id, r->attempt, r->retry_max);
	if (r->labels[0]) {
		/* Stored as given only in the canonical form, which the
		 * claim's subset test compares. */
		char canon[STORE_LABELS_JSON_MAX + 1];
		if ((e = store_labels_parse(r->labels, canon, err)) < 0)
			return e;
		if (strcmp(canon, r->labels) != 0)
			return cdn_err_msg(err, EINVAL, "store: run %s: labels are not canonical",
					   r->id);
	}
	if (r->input_json && strnlen(r->input_json, STORE_MAX_RUN_JSON + 1) > STORE_MAX_RUN_JSON)
		return cdn_err_msg(err, E2BIG, "store: run %s: the input is over %d bytes", r->id,
				   STORE_MAX_RUN_JSON);
	if (r->result_json &&
	    strnlen(r->result_json, STORE_MAX_RUN_RESULT + 1) > STORE_MAX_RUN_RESULT)
		return cdn_err_msg(err, E2BIG, "store: run %s: the result is over %d bytes", r->id,
				   STORE_MAX_RUN_RESULT);
	return 0;
}

/* ------------------------------------------------------------------- runs */

static const char *const status_names[] = {
	[RUN_CREATED] = "created",   [RUN_RUNNING] = "running", [RUN_SUCCEEDED] = "succeeded",
	[RUN_FAILED] = "failed",     [RUN_TIMEOUT] = "timeout", [RUN_OOM] = "oom",
	[RUN_KILLED] = "killed",     [RUN_ERROR] = "error",	[RUN_CANCELLED] = "cancelled",
	[RUN_LOST] = "lost",
};

const char *store_run_status_name(enum store_run_status st)
{
	return (unsigned)st < CDN_ARRAY_SIZE(status_names) ? status_names[st] : "unknown";
}

int store_name_pick(const char *const *names, size_t n, const char *name)
{
	for (size_t i = 0; name && i < n; i++)
		if (names[i] && !strcmp(name, names[i]))
			return (int)i;
	return -EINVAL;
}

int store_run_status_parse(const char *name, enum store_run_status *st)
{
	int i = store_name_pick(status_names, CDN_ARRAY_SIZE(status_names), name);
	if (i >= 0)
		*st = (enum store_run_status)i;
	return i < 0 ? i : 0;
}

bool store_run_status_final(enum store_run_status st)
{
	return st != RUN_CREATED && st != RUN_RUNNING;
}

/* ----------------------------------------------------------------- labels */

bool store_worker_id_ok(const char *id)
{
	return id && ident_ok(id, strnlen(id, STORE_WORKER_ID_MAX + 1), STORE_WORKER_ID_MAX, true);
}

static bool label_ok(const char *s)
{
	return ident_ok(s, strnlen(s, STORE_LABEL_MAX + 1), STORE_LABEL_MAX, true);
}

/* Labels as canonical text: keys sorted, compact; "" for none. */
static int labels_dump(json_t *o, char out[STORE_LABELS_JSON_MAX + 1], struct cdn_err *err)
{
	out[0] = '\0';
	if (json_object_size(o) == 0)
		return 0;
	_cleanup_free_ char *t = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	if (!t)
		return cdn_err_set(err, ENOMEM, "labels");
	if (strlen(t) > STORE_LABELS_JSON_MAX)
		return cdn_err_msg(err, E2BIG, "labels: over %d bytes", STORE_LABELS_JSON_MAX);
	memcpy(out, t, strlen(t) + 1);
	return 0;
}

static int labels_check(json_t *o, struct cdn_err *err)
{
	if (!json_is_object(o))
		return cdn_err_msg(err, EINVAL,
				   "labels: expected an object of strings such as {\"gpu\": \"a100\"}");
	if (json_object_size(o) > STORE_MAX_LABELS)
		return cdn_err_msg(err, E2BIG, "labels: %zu labels, more than %d",
				   json_object_size(o), STORE_MAX_LABELS);
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v) {
		char shown[STORE_LABEL_MAX + 8];
		if (!label_ok(k))
			return cdn_err_msg(err, EINVAL,
					   "labels: key \"%s\": expected 1 to %d of letters, digits, "
					   "'.', '_' and '-', starting with a letter or digit",
					   cdn_printable_str(shown, sizeof(shown), k, CDN_TEXT_ELLIPSIS),
					   STORE_LABEL_MAX);
		if (!json_is_string(v) || !label_ok(json_string_value(v)))
			return cdn_err_msg(err, EINVAL,
					   "labels.%s: expected a string of 1 to %d letters, digits, "
					   "'.', '_' and '-', starting with a letter or digit",
					   k, STORE_LABEL_MAX);
	}
	return 0;
}

int store_labels_parse(const char *json, char out[STORE_LABELS_JSON_MAX + 1],
		       struct cdn_err *err)
{
	out[0] = '\0';
	if (!json || !*json)
		return 0;
	if (strnlen(json, STORE_LABELS_JSON_MAX * 4) >= STORE_LABELS_JSON_MAX * 4)
		return cdn_err_msg(err, E2BIG, "labels: over %d bytes", STORE_LABELS_JSON_MAX);
	json_error_t je;
	json_t *o = json_loads(json, JSON_REJECT_DUPLICATES, &je);
	if (!o)
		return cdn_err_msg(err, EINVAL, "labels: not JSON (%s)", je.text);
	int r = labels_check(o, err);
	if (r == 0)
		r = labels_dump(o, out, err);
	json_decref(o);
	return r;
}

int store_labels_add(char labels[STORE_LABELS_JSON_MAX + 1], const char *kv,
		     struct cdn_err *err)
{
	const char *eq = strchr(kv, '=');
	char key[STORE_LABEL_MAX + 2];
	if (!eq || (size_t)(eq - kv) > STORE_LABEL_MAX)
		return cdn_err_msg(err, EINVAL, "label '%s': expected KEY=VALUE", kv);
	snprintf(key, sizeof(key), "%.*s", (int)(eq - kv), kv);
	json_t *o = labels[0] ? json_loads(labels, 0, NULL) : json_object();
	if (!o)
		return cdn_err_msg(err, EINVAL, "labels: not JSON");
	json_t *v = json_string(eq + 1);
	int r = v ? json_object_set_new(o, key, v) : -1;
	r = r < 0 ? cdn_err_msg(err, EINVAL, "label '%s': not UTF-8", key) : labels_check(o, err);
	if (r == 0)
		r = labels_dump(o, labels, err);
	json_decref(o);
	return r;
}


/* -------------------------------------------------------------- retention */

static const char *const retain_names[RETAIN_N] = {
	[RETAIN_RECORDS] = "records",
	[RETAIN_FILES] = "files",
	[RETAIN_ARTIFACTS] = "artifacts",
	[RETAIN_EVIDENCE] = "evidence",
};

const char *store_retain_name(enum store_retain k)
{
	return (unsigned)k < RETAIN_N ? retain_names[k] : "unknown";
}

int store_retain_parse(const char *name, enum store_retain *k)
{
	int i = store_name_pick(retain_names, RETAIN_N, name);
	if (i >= 0)
		*k = (enum store_retain)i;
	return i < 0 ? i : 0;
}

int store_retention_check(const char *ws, const struct store_retention *r, struct cdn_err *err)
{
	for (int k = 0; k < RETAIN_N; k++) {
		if (r->age_s[k] < 0 || r->age_s[k] > STORE_AGE_MAX_S || r->max_s[k] < 0 ||
		    r->max_s[k] > STORE_AGE_MAX_S)
			return cdn_err_msg(err, ERANGE,
					   "retention: the age of %s must be between 1 second and "
					   "100 years",
					   retain_names[k]);
		if (*ws && r->max_s[k])
			return cdn_err_msg(err, EINVAL,
					   "retention: only the operator sets a bound (%s)",
					   retain_names[k]);
		if (!*ws && r->max_s[k] && r->age_s[k] > r->max_s[k])
			return cdn_err_msg(err, EINVAL,
					   "retention: the default age of %s is over its bound",
					   retain_names[k]);
	}
	return 0;
}

void store_retention_effective(const struct store_retention *op, const struct store_retention *ws,
			       int64_t out[RETAIN_N])
{
	for (int k = 0; k < RETAIN_N; k++) {
		int64_t v = ws && ws->age_s[k] ? ws->age_s[k] : op->age_s[k];
		if (op->max_s[k] && (!v || v > op->max_s[k]))
			v = op->max_s[k];
		out[k] = v;
	}
	/* Nothing of a run outlives its record. */
	for (int k = 0; k < RETAIN_N; k++)
		if (out[RETAIN_RECORDS] && (!out[k] || out[k] > out[RETAIN_RECORDS]))
			out[k] = out[RETAIN_RECORDS];
}

/* Printable text: no C0 control, no DEL, valid UTF-8 (jansson checks it:
 * the text goes into JSON anyway). */
static bool text_ok(const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1);
	if (n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	json_t *j = json_stringn(s, n);
	json_decref(j);
	return j != NULL;
}

int store_hold_check(const char *reason, const char *by, struct cdn_err *err)
{
	if (!reason || !*reason || !text_ok(reason, 255))
		return cdn_err_msg(err, EINVAL,
				   "a hold needs a reason: 1 to 255 bytes of printable UTF-8 text");
	if (!by || !text_ok(by, 127))
		return cdn_err_msg(err, EINVAL, "a hold's holder is not printable text");
	return 0;
}

void store_run_marks_json(const struct store_run_marks *m, struct json_t *obj)
{
	char when[CDN_RFC3339_MAX];
	if (m->hold_ms) {
		cdn_rfc3339(m->hold_ms, CDN_TIME_S, when, sizeof(when));
		json_object_set_new(obj, "hold",
				    json_pack("{s:s, s:s, s:s}", "reason", m->hold_reason, "by",
					      m->hold_by, "since", when));
	}
	json_t *pruned = NULL;
	for (int k = 0; k < RETAIN_N; k++) {
		if (!m->pruned_ms[k])
			continue;
		if (!pruned)
			pruned = json_object();
		cdn_rfc3339(m->pruned_ms[k], CDN_TIME_S, when, sizeof(when));
		json_object_set_new(pruned, retain_names[k], json_string(when));
	}
	if (pruned)
		json_object_set_new(obj, "pruned", pruned);
}

/* "90d" into seconds; "default" (a workspace) or "forever" (the operator)
 * into 0. */
int store_age_parse(const char *s, int64_t *out, struct cdn_err *err)
{
	if (!strcmp(s, "default") || !strcmp(s, "forever")) {
		*out = 0;
		return 0;
	}
	uint64_t ms;
	int r = cdn_parse_duration_ms(s, &ms, err);
	if (r < 0)
		return r;
	if (ms < 1000 || ms % 1000 || ms / 1000 > (uint64_t)STORE_AGE_MAX_S)
		return cdn_err_msg(err, ERANGE,
				   "age '%s': whole seconds from 1s to 100 years, such as 90d", s);
	*out = (int64_t)(ms / 1000);
	return 0;
}

static json_t *ages_json(const int64_t v[RETAIN_N])
{
	json_t *o = json_object();
	for (int k = 0; k < RETAIN_N; k++)
		json_object_set_new(o, store_retain_name((enum store_retain)k),
				    v[k] ? json_integer(v[k]) : json_null());
	return o;
}

struct json_t *store_retention_json(const char *ws, const struct store_retention *op,
			   const struct store_retention *own)
{
	int64_t eff[RETAIN_N];
	store_retention_effective(op, own, eff);
	return json_pack("{s:s, s:o, s:o, s:{s:o, s:o}}", "workspace", ws, "effective",
			 ages_json(eff), "workspace_ages", ages_json(own->age_s), "operator",
			 "default", ages_json(op->age_s), "max", ages_json(op->max_s));
}


int store_text_check(const char *owner, const char *what, const char *v, size_t cap,
		     struct cdn_err *err)
{
	size_t n = v ? strnlen(v, cap) : cap;
	char shown[256];
	if (n >= cap || n >= sizeof(shown) ||
	    strcmp(cdn_printable_str(shown, sizeof(shown), v, CDN_TEXT_UTF8), v) != 0)
		return cdn_err_msg(err, EINVAL, "%s: %s: at most %zu printable bytes", owner, what,
				   cap - 1);
	return 0;
}

int store_agent_ref_check(struct store *s, const char *ws, const char *owner, const char *agent,
			  struct cdn_err *err)
{
	char name[STORE_MAX_NAME + 1];
	const char *at = strchr(agent, '@');
	size_t nl = at ? (size_t)(at - agent) : strlen(agent);
	unsigned long version = 0;
	if (nl > STORE_MAX_NAME)
		return cdn_err_msg(err, EINVAL, "%s: agent: a name of at most %d bytes", owner,
				   STORE_MAX_NAME);
	snprintf(name, sizeof(name), "%.*s", (int)nl, agent);
	if (at) {
		char *end;
		errno = 0;
		version = strtoul(at + 1, &end, 10);
		if (at[1] < '1' || at[1] > '9' || *end || errno || version > UINT32_MAX)
			return cdn_err_msg(err, EINVAL,
					   "%s: agent: the version after '@' is a number", owner);
	}
	struct store_item it;
	int r = store_item_get(s, STORE_AGENT, ws, name, (unsigned)version, &it, err);
	if (r == 0)
		store_item_clear(&it);
	return r;
}
