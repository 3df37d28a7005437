/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP side of cordon serve. Every /v1 request: bounded body, a key
 * (Authorization: Bearer), the key's workspace and role, then the handler.
 * Errors are JSON ({"error": {"code", "message"}}) with the fitting status.
 */
#define _GNU_SOURCE
#include "serve/internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "audit/audit.h"
#include "base/cleanup.h"
#include "base/clock.h"
#include "base/file.h"
#include "base/hash.h"
#include "base/proc.h"
#include "base/random.h"
#include "base/exe.h"
#include "run/control.h"
#include "egress/policy.h"
#include "evidence/evidence.h"
#include "registry/registry.h"
#include "run/events.h"
#include "run/policy_levels.h"
#include "serve/assets.h"
#include "serve/bundle.h"
#include "serve/keys.h"

#define BODY_MAX (1 << 20)
#define SECRET_BODY_MAX (64 * 1024)
#define MAX_SEGMENTS 8
#define AUDIT_PAGE_MAX 1000
/* A keep-alive on an idle event stream this often: how a follower that
 * went away without closing is noticed. */
#define STREAM_KEEPALIVE_S 15
/* How long a follower waits for run.finished once the record is final. */
#define FINAL_GRACE_MS 2000

struct request {
	char *body;
	size_t len;
	size_t max; /* BODY_MAX, or BUNDLE_MAX_UPLOAD for a bundle upload */
	bool too_large;
	/* A bundle upload goes to a file under STATE/tmp (unlinked at once),
	 * not memory: three unfinished 32 MiB uploads once held 94 MiB of the
	 * server's. It holds one of the server's upload slots. */
	int fd;
	bool upload_slot;
	bool write_failed;
};

struct call {
	struct server *sv;
	struct MHD_Connection *conn;
	const char *method;
	const char *seg[MAX_SEGMENTS];
	size_t n_seg;
	struct store_key key;
	struct request *req;
};

/* A time in the API: whole seconds, "" for a time not yet known (0). */
static void iso(int64_t ms, char *buf, size_t cap)
{
	if (ms <= 0)
		snprintf(buf, cap, "%s", "");
	else
		cdn_rfc3339(ms, CDN_TIME_S, buf, cap);
}

/* ---------------------------------------------------------------- replies */

static void common_headers(struct MHD_Response *r)
{
	MHD_add_response_header(r, "Cache-Control", "no-store");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "X-Frame-Options", "DENY");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
}

static enum MHD_Result send_buf(struct MHD_Connection *conn, unsigned status, const char *type,
				const void *data, size_t len, const char *hname, const char *hval)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free((void *)data);
		return MHD_NO;
	}
	common_headers(r);
	MHD_add_response_header(r, "Content-Type", type);
	if (hname)
		MHD_add_response_header(r, hname, hval);
	enum MHD_Result ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* Steals j; adds one header when hname is set. */
static enum MHD_Result reply_with(struct MHD_Connection *conn, unsigned status, json_t *j,
				  const char *hname, const char *hval)
{
	char *text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (!text)
		return MHD_NO;
	size_t len = strlen(text);
	char *full = realloc(text, len + 2);
	if (!full) {
		free(text);
		return MHD_NO;
	}
	full[len] = '\n';
	full[len + 1] = '\0';
	return send_buf(conn, status, "application/json", full, len + 1, hname, hval);
}

/* Steals j. */
static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, json_t *j)
{
	return reply_with(conn, status, j, NULL, NULL);
}

/* The error body, {"error": {"code": ..., "message": ...}}, with one more
 * header when hname is not NULL. */
static enum MHD_Result verror(struct MHD_Connection *conn, unsigned status, const char *code,
			      const char *hname, const char *hval, const char *fmt, va_list ap)
    __attribute__((format(printf, 6, 0)));

static enum MHD_Result verror(struct MHD_Connection *conn, unsigned status, const char *code,
			      const char *hname, const char *hval, const char *fmt, va_list ap)
{
	char msg[CDN_ERR_MSG_MAX];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	return reply_with(conn, status,
			  json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", msg), hname,
			  hval);
}

static enum MHD_Result fail(struct MHD_Connection *conn, unsigned status, const char *code,
			    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static enum MHD_Result fail(struct MHD_Connection *conn, unsigned status, const char *code,
			    const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	enum MHD_Result ret = verror(conn, status, code, NULL, NULL, fmt, ap);
	va_end(ap);
	return ret;
}

/* 405 with the methods the route takes (RFC 9110 15.5.6: Allow is required). */
static enum MHD_Result fail_allow(struct MHD_Connection *conn, const char *allow, const char *fmt,
				  ...) __attribute__((format(printf, 3, 4)));

static enum MHD_Result fail_allow(struct MHD_Connection *conn, const char *allow, const char *fmt,
				  ...)
{
	va_list ap;
	va_start(ap, fmt);
	enum MHD_Result ret = verror(conn, 405, "method_not_allowed", "Allow", allow, fmt, ap);
	va_end(ap);
	return ret;
}

/*
 * A library call's failure as an HTTP answer: the one place an error's
 * kind becomes a status. The kind is err's when err records this failure
 * (its code is the one returned); a function that returned without
 * recording it is judged by the errno it returned.
 */
static enum MHD_Result fail_err(struct MHD_Connection *conn, int r, const struct cdn_err *err)
{
	int e = r < 0 ? -r : r;
	enum cdn_err_kind kind = err->code == e ? err->kind : cdn_err_kind_of(e);
	switch (kind) {
	case CDN_ERR_NOT_FOUND: return fail(conn, 404, "not_found", "%s", err->msg);
	case CDN_ERR_CONFLICT: return fail(conn, 409, "conflict", "%s", err->msg);
	case CDN_ERR_FORBIDDEN: return fail(conn, 403, "forbidden", "%s", err->msg);
	case CDN_ERR_INTERNAL: return fail(conn, 500, "internal", "%s", err->msg);
	case CDN_ERR_USER: return fail(conn, 400, "bad_request", "%s", err->msg);
	}
	return fail(conn, 500, "internal", "%s", err->msg);
}

/* A packed directory (bundle.h): tar, or tar.gz. */
static bool bundle_type(const char *ct)
{
	static const char *const types[] = { "application/gzip", "application/x-gzip",
					     "application/x-tar" };
	if (!ct)
		return false;
	for (size_t i = 0; i < CDN_ARRAY_SIZE(types); i++) {
		size_t n = strlen(types[i]);
		if (strncasecmp(ct, types[i], n) == 0 && (ct[n] == '\0' || ct[n] == ';'))
			return true;
	}
	return false;
}

/* The body as a JSON object, or a reply saying why not. */
static json_t *body_json(struct call *c, enum MHD_Result *ret)
{
	const char *ct = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, "Content-Type");
	if (ct && strncasecmp(ct, "application/json", 16) != 0) {
		*ret = fail(c->conn, 415, "unsupported_media_type",
			    "the body must be application/json, not %.64s", ct);
		return NULL;
	}
	json_error_t je;
	json_t *j = json_loadb(c->req->body ? c->req->body : "", c->req->len,
			       JSON_REJECT_DUPLICATES, &je);
	if (!j) {
		*ret = fail(c->conn, 400, "bad_request", "the body is not valid JSON: line %d: %s",
			    je.line, je.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		*ret = fail(c->conn, 400, "bad_request", "the body must be a JSON object");
		return NULL;
	}
	return j;
}

static const char *jstr(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* ------------------------------------------------------------ validation */

/* The run, if it is in the caller's workspace. */
static int run_in_ws(struct call *c, const char *id, struct store_run *out)
{
	if (!store_run_id_ok(id))
		return -ENOENT;
	struct cdn_err err = { 0 };
	int r = store_run_get(c->sv->s, id, out, &err);
	if (r < 0)
		return r;
	if (strcmp(out->workspace, c->key.workspace) != 0) {
		store_run_clear(out);
		return -ENOENT;
	}
	return 0;
}

static json_t *run_json(const struct store_run *r)
{
	char created[32], started[32], finished[32];
	iso(r->created_ms, created, sizeof(created));
	iso(r->started_ms, started, sizeof(started));
	iso(r->finished_ms, finished, sizeof(finished));
	const char *status = store_run_status_name(r->status);
	json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:i, s:s, s:s, s:s, s:s}", "id", r->id,
			      "workspace", r->workspace, "agent", r->agent, "version",
			      (json_int_t)r->agent_version, "sha256", r->agent_hash, "status",
			      status, "exit_code", r->exit_code, "caller", r->caller, "created",
			      created, "started", started, "finished", finished);
	if (r->finished_ms && r->created_ms)
		json_object_set_new(j, "duration_ms",
				    json_integer((json_int_t)(r->finished_ms - r->created_ms)));
	if (r->error[0])
		json_object_set_new(j, "error", json_string(r->error));
	return j;
}

/* ------------------------------------------------------------- handlers */

static enum MHD_Result h_whoami(struct call *c)
{
	return reply(c->conn, 200,
		     json_pack("{s:s, s:s, s:s, s:s}", "id", c->key.id, "name", c->key.name, "role",
			       c->key.role, "workspace", c->key.workspace));
}

static enum MHD_Result keys_list(struct call *c)
{
	struct cdn_err err = { 0 };
	struct store_key *v;
	size_t n;
	int r = store_key_list(c->sv->s, c->key.workspace, &v, &n, &err);
	if (r < 0)
		return fail_err(c->conn, r, &err);
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:I, s:I, s:b}", "id", v[i].id,
						     "name", v[i].name, "role", v[i].role,
						     "created", (json_int_t)v[i].created,
						     "last_used", (json_int_t)v[i].last_used,
						     "revoked", v[i].revoked));
	free(v);
	return reply(c->conn, 200, json_pack("{s:o}", "keys", arr));
}

static enum MHD_Result keys_create(struct call *c)
{
	enum MHD_Result ret;
	struct cdn_err err = { 0 };
	json_t *b = body_json(c, &ret);
	if (!b)
		return ret;
	const char *name = jstr(b, "name"), *role = jstr(b, "role");
	if (!name || !role) {
		json_decref(b);
		return fail(c->conn, 400, "bad_request",
			    "expected {\"name\": \"...\", \"role\": \"owner\"|\"member\"}");
	}
	char key[API_KEY_LEN + 1];
	struct store_key rec;
	int r = api_key_create(c->sv->s, c->key.workspace, name, role, key, &rec, &err);
	json_decref(b);
	if (r < 0)
		return fail_err(c->conn, r, &err);
	json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s}", "id", rec.id, "name", rec.name, "role",
			      rec.role, "workspace", rec.workspace, "key", key);
	sodium_memzero(key, sizeof(key));
	return reply(c->conn, 201, j);
}

static enum MHD_Result keys_revoke(struct call *c)
{
	struct cdn_err err = { 0 };
	int r = store_key_revoke(c->sv->s, c->key.workspace, c->seg[2], &err);
	if (r < 0)
		return fail_err(c->conn, r, &err);
	return reply(c->conn, 200, json_pack("{s:s, s:b}", "id", c->seg[2], "revoked", 1));
}

static enum MHD_Result registered(struct call *c, const struct registry_result *res)
{
	return reply(c->conn, res->created ? 201 : 200,
		     json_pack("{s:s, s:I, s:s, s:b}", "name", res->name, "version",
			       (json_int_t)res->version, "sha256", res->hash, "created",
			       res->created));
}

/* A path the server may register: below --register-root, symlinks
 * resolved (real gets the resolved path, which is what is read). */
static bool server_path_ok(const struct server *sv, const char *path, char real[PATH_MAX])
{
	char root[PATH_MAX];
	if (!sv->cfg.register_root || !realpath(sv->cfg.register_root, root) ||
	    !realpath(path, real))
		return false;
	size_t n = strlen(root);
	return strcmp(root, "/") == 0 || (strncmp(real, root, n) == 0 && real[n] == '/');
}

/* Replaces each occurrence of path in msg with `as`. */
static void unpath(char *msg, size_t cap, const char *path, const char *as)
{
	char out[CDN_ERR_MSG_MAX];
	size_t n = 0, pl = strlen(path);
	for (const char *p = msg; *p && n + 1 < sizeof(out);) {
		if (pl && strncmp(p, path, pl) == 0) {
			n += (size_t)snprintf(out + n, sizeof(out) - n, "%s", as);
			p += pl;
		} else {
			out[n++] = *p++;
		}
	}
	out[n < sizeof(out) ? n : sizeof(out) - 1] = '\0';
	snprintf(msg, cap, "%s", out);
}

/* POST /v1/agents or /v1/capabilities?name=N with a tar(.gz) body: unpacked
 * into a scratch directory, registered from there, removed. */
static enum MHD_Result register_upload(struct call *c, enum store_kind kind)
{
	struct cdn_err err = { 0 };
	const char *name = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, "name");
	if (kind == STORE_CAPABILITY && (!name || !*name))
		return fail(c->conn, 400, "bad_request",
			    "a capability upload needs its name: POST /v1/capabilities?name=NAME");
	const char *want = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, BUNDLE_TREE_HEADER);
	if (want && !cdn_sha256_hex_str_ok(want))
		return fail(c->conn, 400, "bad_request",
			    "%s: expected the tree's sha256 (64 lowercase hex digits)",
			    BUNDLE_TREE_HEADER);
	if (c->req->write_failed)
		return fail(c->conn, 500, "internal", "the upload could not be spooled to disk");
	char dir[PATH_MAX];
	int fd;
	int r = store_scratch_dir(c->sv->s, dir, sizeof(dir), &fd, &err);
	if (r < 0)
		return fail_err(c->conn, r, &err);
	r = c->req->fd >= 0 ? bundle_extract_fd(c->req->fd, fd, &err)
			    : bundle_extract(c->req->body ? c->req->body : "", c->req->len, fd, &err);
	close(fd);
	char got[STORE_HASH_HEX + 1];
	if (r == 0 && want && (r = store_tree_hash(dir, NULL, got, &err)) == 0 &&
	    strcmp(got, want) != 0)
		r = cdn_err_msg(&err, EINVAL,
				"bundle: the tree unpacked has sha256 %s, not the %s the client "
				"sent: the upload was cut or changed on its way, so nothing is "
				"registered",
				got, want);
	if (r < 0) {
		store_scratch_remove(c->sv->s, dir);
		/* what the upload holds is at fault; a full disk is the server's */
		if (err.code == EFBIG)
			return fail(c->conn, 413, "too_large", "%s", err.msg);
		if (err.code == EINVAL || err.code == EEXIST)
			return fail(c->conn, 400, "bad_request", "%s", err.msg);
		return fail_err(c->conn, r, &err);
	}
	struct registry_result res;
	r = kind == STORE_AGENT
		    ? registry_agent_register(c->sv->s, c->key.workspace, dir, &res, &err)
		    : registry_capability_register(c->sv->s, c->key.workspace, name, dir, &res,
						   &err);
	store_scratch_remove(c->sv->s, dir);
	if (r < 0) {
		/* The messages name the scratch directory: a path of the
		 * server's, which is not the client's business. */
		unpath(err.msg, sizeof(err.msg), dir, "upload");
		return fail_err(c->conn, r, &err);
	}
	return registered(c, &res);
}

static enum MHD_Result items_list(struct call *c, enum store_kind kind)
{
	struct cdn_err err = { 0 };
	struct store_item *items;
	size_t n;
	int r = store_item_list(c->sv->s, kind, c->key.workspace, &items, &n, &err);
	if (r < 0)
		return fail_err(c->conn, r, &err);
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++) {
		char when[32];
		iso(items[i].created * 1000, when, sizeof(when));
		json_array_append_new(arr, json_pack("{s:s, s:I, s:s, s:s}", "name", items[i].name,
						     "version", (json_int_t)items[i].version,
						     "sha256", items[i].hash, "registered", when));
	}
	store_items_free(items, n);
	return reply(c->conn, 200, json_pack("{s:o}", "items", arr));
}

static enum MHD_Result items_register(struct call *c, enum store_kind kind)
{
	struct cdn_err err = { 0 };
	enum MHD_Result ret;
	if (kind != STORE_ENV &&
	    bundle_type(MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, "Content-Type")))
		return register_upload(c, kind);
	json_t *b = body_json(c, &ret);
	if (!b)
		return ret;
	struct registry_result res;
	int r;
	const char *path = jstr(b, "path"), *name = jstr(b, "name");
	char real[PATH_MAX];
	if (kind != STORE_ENV && path && path[0] == '/' && !server_path_ok(c->sv, path, real)) {
		json_decref(b);
		return fail(c->conn, 403, "forbidden",
			    "registering a path on the server is %s; upload the directory as a "
			    "tar.gz instead (Content-Type: application/gzip), as cordon %s "
			    "register does with CORDON_URL set",
			    c->sv->cfg.register_root ? "allowed only below --register-root"
						     : "off (cordon serve --register-root DIR)",
			    kind == STORE_AGENT ? "agent" : "capability");
	}
	if (kind == STORE_AGENT) {
		r = path && path[0] == '/' ? registry_agent_register(c->sv->s, c->key.workspace, real,
								      &res, &err)
					   : cdn_err_msg(&err, EINVAL,
							 "expected {\"path\": \"/absolute/dir\"} or a "
							 "tar.gz body");
	} else if (kind == STORE_CAPABILITY) {
		r = path && path[0] == '/' && name
			    ? registry_capability_register(c->sv->s, c->key.workspace, name, real,
							   &res, &err)
			    : cdn_err_msg(&err, EINVAL,
					  "expected {\"name\": \"...\", \"path\": \"/absolute/dir\"} "
					  "or a tar.gz body with ?name=");
	} else {
		json_t *vars = json_object_get(b, "vars");
		const char *kv[REGISTRY_MAX_ENV_VARS];
		char *store_kv[REGISTRY_MAX_ENV_VARS];
		size_t n = 0;
		r = 0;
		if (!name || !json_is_object(vars))
			r = cdn_err_msg(&err, EINVAL,
					"expected {\"name\": \"...\", \"vars\": {\"K\": \"V\"}}");
		const char *k;
		json_t *v;
		json_object_foreach(vars, k, v)
		{
			if (r < 0)
				break;
			if (n == REGISTRY_MAX_ENV_VARS || !json_is_string(v)) {
				r = cdn_err_msg(&err, EINVAL,
						"vars: at most %d, each value a string",
						REGISTRY_MAX_ENV_VARS);
				break;
			}
			if (asprintf(&store_kv[n], "%s=%s", k, json_string_value(v)) < 0) {
				r = cdn_err_set(&err, ENOMEM, "env");
				break;
			}
			kv[n] = store_kv[n];
			n++;
		}
		if (r == 0)
			r = registry_env_register(c->sv->s, c->key.workspace, name, kv, n, &res, &err);
		for (size_t i = 0; i < n; i++)
			free(store_kv[i]);
	}
	json_decref(b);
	if (r < 0)
		return fail_err(c->conn, r, &err);
	return registered(c, &res);
}

static enum MHD_Result agents_list(struct call *c)
{
	return items_list(c, STORE_AGENT);
}

static enum MHD_Result agents_register(struct call *c)
{
	return items_register(c, STORE_AGENT);
}

static enum MHD_Result capabilities_list(struct call *c)
{
	return items_list(c, STORE_CAPABILITY);
}

static enum MHD_Result capabilities_register(struct call *c)
{
	return items_register(c, STORE_CAPABILITY);
}

static enum MHD_Result envs_list(struct call *c)
{
	return items_list(c, STORE_ENV);
}

static enum MHD_Result envs_register(struct call *c)
{
	return items_register(c, STORE_ENV);
}

static enum MHD_Result grants_create(struct call *c)
{
	enum MHD_Result ret;
	json_t *b = body_json(c, &ret);
	if (!b)
		return ret;
	const char *agent = jstr(b, "agent"), *cap = jstr(b, "capability");
	struct cdn_err err = { 0 };
	int r = agent && cap ? registry_grant(c->sv->s, c->key.workspace, agent, cap, &err)
			     : cdn_err_msg(&err, EINVAL,
					   "expected {\"agent\": \"...\", \"capability\": \"...\"}");
	json_t *j = r == 0 ? json_pack("{s:s, s:s, s:b}", "agent", agent, "capability", cap,
				       "granted", 1)
			   : NULL;
	json_decref(b);
	if (r < 0)
		return fail_err(c->conn, r, &err);
	return reply(c->conn, 200, j);
}

static enum MHD_Result secrets_list(struct call *c)
{
	struct cdn_err err = { 0 };
	struct store_secret_info *v;
	size_t n;
	int r = vault_list(c->sv->v, c->key.workspace, &v, &n, &err);
	if (r < 0)
		return fail_err(c->conn, r, &err);
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++) {
		char when[32];
		iso(v[i].updated * 1000, when, sizeof(when));
		json_array_append_new(arr, json_pack("{s:s, s:I, s:s}", "name", v[i].name, "size",
						     (json_int_t)v[i].size, "updated", when));
	}
	free(v);
	return reply(c->conn, 200, json_pack("{s:o}", "secrets", arr));
}

static enum MHD_Result secret_get(struct call *c)
{
	return fail(c->conn, 403, "forbidden", "secret values are never returned");
}

static enum MHD_Result secret_put(struct call *c)
{
	struct cdn_err err = { 0 };
	enum MHD_Result ret;
	const char *name = c->seg[2];
	if (c->req->len > SECRET_BODY_MAX)
		return fail(c->conn, 413, "too_large", "a secret's body is at most %d bytes",
			    SECRET_BODY_MAX);
	json_t *b = body_json(c, &ret);
	if (!b)
		return ret;
	json_t *val = json_object_get(b, "value");
	int r;
	size_t len = json_string_length(val);
	if (!json_is_string(val) || len == 0)
		r = cdn_err_msg(&err, EINVAL, "expected {\"value\": \"...\"} (not empty)");
	else
		r = vault_set(c->sv->v, c->key.workspace, name,
			      (const uint8_t *)json_string_value(val), len, &err);
	/* The body held the value: wipe it before it is freed. */
	sodium_memzero(c->req->body, c->req->len);
	json_decref(b);
	if (r < 0)
		return fail_err(c->conn, r, &err);
	return reply(c->conn, 200, json_pack("{s:s, s:I}", "name", name, "size", (json_int_t)len));
}

static enum MHD_Result secret_delete(struct call *c)
{
	struct cdn_err err = { 0 };
	const char *name = c->seg[2];
	int r = vault_rm(c->sv->v, c->key.workspace, name, &err);
	if (r == -ENOENT)
		return fail(c->conn, 404, "not_found", "no secret %s", name);
	if (r < 0)
		return fail_err(c->conn, r, &err);
	return reply(c->conn, 200, json_pack("{s:s, s:b}", "name", name, "removed", 1));
}

/* POST /v1/runs */
static enum MHD_Result runs_create(struct call *c)
{
	enum MHD_Result ret;
	json_t *b = body_json(c, &ret);
	if (!b)
		return ret;
	const char *agent = jstr(b, "agent");
	json_t *input = json_object_get(b, "input");
	struct cdn_err err = { 0 };
	if (!agent || strchr(agent, '/')) {
		json_decref(b);
		return fail(c->conn, 400, "bad_request",
			    "expected {\"agent\": \"NAME[@VERSION]\", \"input\": {...}}; agents run "
			    "over the API are registered ones");
	}
	if (input && !json_is_object(input)) {
		json_decref(b);
		return fail(c->conn, 400, "bad_request", "input must be a JSON object");
	}
	char name[STORE_MAX_NAME + 1];
	const char *at = strchr(agent, '@');
	size_t nl = at ? (size_t)(at - agent) : strlen(agent);
	snprintf(name, sizeof(name), "%.*s", (int)(nl < sizeof(name) ? nl : 0), agent);
	if (nl > STORE_MAX_NAME || store_name_check("agent", name, &err) < 0) {
		json_decref(b);
		return fail(c->conn, 400, "bad_request", "agent: %s", err.msg);
	}
	struct store_item it;
	int r = store_item_get(c->sv->s, STORE_AGENT, c->key.workspace, name, 0, &it, &err);
	if (r < 0) {
		json_decref(b);
		if (r == -ENOENT)
			return fail(c->conn, 404, "not_found", "agent %s is not registered", name);
		return fail_err(c->conn, r, &err);
	}
	store_item_clear(&it);
	char why[256];
	if (!dispatch_has_room(c->sv, c->key.workspace, why, sizeof(why))) {
		json_decref(b);
		return fail(c->conn, 503, "unavailable", "%s", why);
	}
	_cleanup_free_ char *in = input ? json_dumps(input, JSON_COMPACT | JSON_SORT_KEYS)
					: strdup("{}");
	struct store_run rec = { .status = RUN_CREATED, .exit_code = -1 };
	cdn_random_id("run_", 12, rec.id, sizeof(rec.id));
	snprintf(rec.workspace, sizeof(rec.workspace), "%s", c->key.workspace);
	snprintf(rec.agent, sizeof(rec.agent), "%s", name);
	snprintf(rec.caller, sizeof(rec.caller), "key:%s (%s)", c->key.id, c->key.name);
	rec.created_ms = cdn_wall_ms();
	rec.supervisor_pid = (int)c->sv->self;
	cdn_boot_id(rec.supervisor_boot, sizeof(rec.supervisor_boot), NULL);
	rec.input_json = in;
	if (in && strlen(in) > STORE_MAX_RUN_JSON) {
		json_decref(b);
		return fail(c->conn, 413, "too_large", "input is over %d bytes", STORE_MAX_RUN_JSON);
	}
	r = in ? store_run_create(c->sv->s, &rec, &err) : cdn_err_set(&err, ENOMEM, "input");
	if (r == 0 &&
	    (r = dispatch_submit(c->sv, rec.id, rec.workspace, agent, why, sizeof(why))) < 0) {
		/* Lost a race for the last place since the check above. */
		rec.input_json = NULL;
		rec.status = RUN_CANCELLED;
		rec.finished_ms = cdn_wall_ms();
		snprintf(rec.error, sizeof(rec.error), "%s", why);
		store_run_update(c->sv->s, &rec, NULL);
		json_decref(b);
		return fail(c->conn, 503, "unavailable", "%s", why);
	}
	json_t *j = json_pack("{s:s, s:s, s:s}", "id", rec.id, "status", "queued", "agent", agent);
	json_decref(b);
	if (r < 0) {
		json_decref(j);
		return fail_err(c->conn, r, &err);
	}
	return reply(c->conn, 202, j);
}

static enum MHD_Result runs_list(struct call *c)
{
	struct store_run_query q = { .workspace = c->key.workspace, .status = -1, .limit = 50 };
	const char *agent = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, "agent");
	const char *status = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, "status");
	const char *limit = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, "limit");
	const char *cursor = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, "cursor");
	struct cdn_err err = { 0 };
	if (agent && *agent) {
		if (store_name_check("agent", agent, &err) < 0)
			return fail(c->conn, 400, "bad_request", "agent: %s", err.msg);
		q.agent = agent;
	}
	if (status && *status) {
		enum store_run_status st;
		if (store_run_status_parse(status, &st) < 0)
			return fail(c->conn, 400, "bad_request", "status: unknown status");
		q.status = (int)st;
	}
	if (limit && *limit) {
		char *end;
		unsigned long l = strtoul(limit, &end, 10);
		if (*end || l == 0 || l > 1000)
			return fail(c->conn, 400, "bad_request", "limit: a number from 1 to 1000");
		q.limit = l;
	}
	char cur_id[STORE_RUN_ID_MAX + 1];
	if (cursor && *cursor) {
		char *end;
		long long ms = strtoll(cursor, &end, 10);
		if (*end != ':' || ms <= 0 || !store_run_id_ok(end + 1))
			return fail(c->conn, 400, "bad_request", "cursor: pass back next_cursor");
		snprintf(cur_id, sizeof(cur_id), "%s", end + 1);
		q.before_ms = ms;
		q.before_id = cur_id;
	}
	struct store_run *runs;
	size_t n;
	int r = store_run_list(c->sv->s, &q, &runs, &n, &err);
	if (r < 0)
		return fail_err(c->conn, r, &err);
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, run_json(&runs[i]));
	json_t *next = n == q.limit ? json_sprintf("%lld:%s", (long long)runs[n - 1].created_ms,
						    runs[n - 1].id)
				    : json_null();
	store_runs_free(runs, n);
	return reply(c->conn, 200, json_pack("{s:o, s:o}", "runs", arr, "next_cursor", next));
}

/* A file of the run directory, as it is. */
static enum MHD_Result run_file(struct call *c, const char *id, const char *rel, const char *type,
				bool download)
{
	char path[PATH_MAX];
	int fd = -1;
	if (store_run_file(c->sv->s, id, rel, path, sizeof(path), NULL) == 0)
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		if (fd >= 0)
			close(fd);
		return fail(c->conn, 404, "not_found", "run %s has no %s", id, rel);
	}
	struct MHD_Response *r = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
	if (!r) {
		close(fd);
		return MHD_NO;
	}
	common_headers(r);
	MHD_add_response_header(r, "Content-Type", type);
	if (download) {
		char cd[256];
		const char *base = strrchr(rel, '/');
		snprintf(cd, sizeof(cd), "attachment; filename=\"%s\"", base ? base + 1 : rel);
		MHD_add_response_header(r, "Content-Disposition", cd);
	}
	enum MHD_Result ret = MHD_queue_response(c->conn, 200, r);
	MHD_destroy_response(r);
	return ret;
}

/*
 * The event stream: the run's events.ndjson from the start (or after
 * Last-Event-ID), then, with follow, what comes, until this run's
 * run.finished (the parsed type, events.h), the record is final, or the
 * server stops. A queued run has no file yet: it is waited for.
 *
 * A follower holds a connection and a thread. Two things keep that
 * bounded: each key has at most SERVE_MAX_STREAMS_PER_KEY streams, and a
 * client that went away is noticed, by a peer shutdown seen on the socket
 * at once, and by a keep-alive every STREAM_KEEPALIVE_S (a blank line in
 * NDJSON, an SSE comment) that fails on a dead connection. Without them 64
 * abandoned streams kept their slots for as long as the runs lasted.
 */
struct stream {
	struct server *sv;
	struct MHD_Connection *conn;
	char id[STORE_RUN_ID_MAX + 1];
	char path[PATH_MAX];
	char key_id[STORE_MAX_NAME + 1];
	struct events_follower f;
	bool follow, sse, done;
	char *out;
	size_t out_len, out_off, out_cap;
	int64_t last_sent_ms, last_check_ms, final_ms;
};

static bool out_append(struct stream *s, const char *p, size_t n)
{
	if (s->out_off == s->out_len)
		s->out_off = s->out_len = 0;
	if (s->out_len + n > s->out_cap) {
		size_t nc = s->out_cap ? s->out_cap : 16384;
		while (nc < s->out_len + n)
			nc *= 2;
		char *nb = realloc(s->out, nc);
		if (!nb)
			return false;
		s->out = nb;
		s->out_cap = nc;
	}
	memcpy(s->out + s->out_len, p, n);
	s->out_len += n;
	return true;
}

static void on_stream_event(void *ctx, const struct events_head *h, const char *line,
			    size_t len)
{
	struct stream *s = ctx;
	/* The server's own paths are not the API's business (run_dir names
	 * where the state lives): such an event goes out without them. */
	_cleanup_free_ char *text = NULL;
	if (memmem(line, len, "\"run_dir\"", 9)) {
		struct events_head again;
		json_t *ev = NULL;
		if (events_parse(line, len, &again, &ev) == 0) {
			json_object_del(ev, "run_dir");
			text = json_dumps(ev, JSON_COMPACT | JSON_SORT_KEYS);
		}
		json_decref(ev);
		if (!text)
			return;
		line = text;
		len = strlen(text);
	}
	char id[48];
	if (s->sse) {
		snprintf(id, sizeof(id), "id: %llu\ndata: ", (unsigned long long)h->seq);
		out_append(s, id, strlen(id));
	}
	out_append(s, line, len);
	out_append(s, s->sse ? "\n\n" : "\n", s->sse ? 2 : 1);
}

/* The client closed its side: nobody reads this stream any more. */
static bool client_gone(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (!ci)
		return true;
	struct pollfd p = { .fd = ci->connect_fd, .events = POLLRDHUP };
	return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

static bool run_final(struct server *sv, const char *id)
{
	struct store_run r;
	if (store_run_get(sv->s, id, &r, NULL) < 0)
		return true;
	bool fin = store_run_status_final(r.status);
	store_run_clear(&r);
	return fin;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	(void)pos;
	struct stream *s = cls;
	for (;;) {
		if (s->out_off < s->out_len) {
			size_t n = s->out_len - s->out_off;
			if (n > max)
				n = max;
			memcpy(buf, s->out + s->out_off, n);
			s->out_off += n;
			s->last_sent_ms = cdn_wall_ms();
			return (ssize_t)n;
		}
		if (s->f.fd < 0 && !s->done) {
			s->f.fd = open(s->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
			if (s->f.fd < 0 && !s->follow)
				s->done = true;
		}
		if (s->f.fd >= 0) {
			ssize_t n = events_follow_poll(&s->f, on_stream_event, s);
			if (n < 0)
				return MHD_CONTENT_READER_END_WITH_ERROR;
			if (n > 0)
				continue;
		}
		int64_t now = cdn_wall_ms();
		/* The record is final a moment before run.finished is written:
		 * that moment is waited for (the end of a run whose supervisor
		 * died never comes, so not for long). */
		if (!s->follow || s->f.finished ||
		    (s->done && (s->f.fd < 0 || now - s->final_ms >= FINAL_GRACE_MS)))
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (client_gone(s->conn))
			return MHD_CONTENT_READER_END_WITH_ERROR;
		/* Every half second: has the run ended (maybe without run.finished:
		 * its supervisor died), or is the server stopping? */
		if (!s->done && now - s->last_check_ms >= 500) {
			s->last_check_ms = now;
			if (run_final(s->sv, s->id)) {
				s->done = true;
				s->final_ms = now;
				continue;
			}
			pthread_mutex_lock(&s->sv->mu);
			bool stop = s->sv->stop;
			pthread_mutex_unlock(&s->sv->mu);
			if (stop)
				return MHD_CONTENT_READER_END_OF_STREAM;
		}
		if (now - s->last_sent_ms >= STREAM_KEEPALIVE_S * 1000) {
			const char *ka = s->sse ? ": keep-alive\n\n" : "\n";
			if (!out_append(s, ka, strlen(ka)))
				return MHD_CONTENT_READER_END_WITH_ERROR;
			continue;
		}
		struct timespec ts = { 0, 25 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

/* Live streams per key (a short list: keys with a stream open). */
static bool streams_take(struct server *sv, const char *key_id)
{
	pthread_mutex_lock(&sv->lim_mu);
	struct key_streams *k = sv->streams;
	while (k && strcmp(k->key_id, key_id) != 0)
		k = k->next;
	bool ok = true;
	if (!k && (k = calloc(1, sizeof(*k)))) {
		snprintf(k->key_id, sizeof(k->key_id), "%s", key_id);
		k->next = sv->streams;
		sv->streams = k;
	}
	if (!k || k->n >= sv->max_streams_per_key)
		ok = false;
	else
		k->n++;
	pthread_mutex_unlock(&sv->lim_mu);
	return ok;
}

static void streams_give(struct server *sv, const char *key_id)
{
	pthread_mutex_lock(&sv->lim_mu);
	for (struct key_streams **pp = &sv->streams; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->key_id, key_id) == 0) {
			struct key_streams *k = *pp;
			if (--k->n == 0) {
				*pp = k->next;
				free(k);
			}
			break;
		}
	pthread_mutex_unlock(&sv->lim_mu);
}

static void stream_free(void *cls)
{
	struct stream *s = cls;
	if (s->f.fd >= 0)
		close(s->f.fd);
	events_follower_free(&s->f);
	streams_give(s->sv, s->key_id);
	free(s->out);
	free(s);
}

/* Last-Event-ID (what an SSE client sends when it reconnects) or ?after=:
 * events up to that seq are not sent again. */
static bool resume_point(struct call *c, uint64_t *after)
{
	const char *v = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, "Last-Event-ID");
	if (!v)
		v = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, "after");
	*after = 0;
	if (!v || !*v)
		return true;
	char *end;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	if (*end || errno || v[0] == '-')
		return false;
	*after = n;
	return true;
}

static enum MHD_Result run_events(struct call *c, const char *id)
{
	const char *f = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, "follow");
	const char *accept = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, "Accept");
	uint64_t after;
	if (!resume_point(c, &after))
		return fail(c->conn, 400, "bad_request",
			    "Last-Event-ID (or after): the seq of the last event received");
	if (!streams_take(c->sv, c->key.id))
		return fail(c->conn, 429, "too_many_requests",
			    "this key has %u event streams open, its limit; close one first",
			    c->sv->max_streams_per_key);
	struct stream *s = calloc(1, sizeof(*s));
	if (!s) {
		streams_give(c->sv, c->key.id);
		return MHD_NO;
	}
	s->sv = c->sv;
	s->conn = c->conn;
	snprintf(s->id, sizeof(s->id), "%s", id);
	snprintf(s->key_id, sizeof(s->key_id), "%s", c->key.id);
	(void)store_run_file(c->sv->s, id, "events.ndjson", s->path, sizeof(s->path), NULL);
	s->follow = f && (strcmp(f, "1") == 0 || strcmp(f, "true") == 0);
	s->sse = accept && strstr(accept, "text/event-stream");
	s->last_sent_ms = cdn_wall_ms();
	events_follower_init(&s->f, -1, id, after);
	struct MHD_Response *r =
		MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, s, stream_free);
	if (!r) {
		stream_free(s);
		return MHD_NO;
	}
	common_headers(r);
	MHD_add_response_header(r, "Content-Type",
				s->sse ? "text/event-stream" : "application/x-ndjson");
	enum MHD_Result ret = MHD_queue_response(c->conn, 200, r);
	MHD_destroy_response(r);
	return ret;
}

/* The signed evidence pack of a finished run, made on demand. */
static enum MHD_Result run_evidence(struct call *c, const struct store_run *r)
{
	if (!store_run_status_final(r->status))
		return fail(c->conn, 409, "conflict", "run %s has not finished", r->id);
	const char *art = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, "artifacts");
	struct cdn_err err = { 0 };
	struct evidence_key *key = NULL;
	int e = evidence_key_load(c->sv->state, true, &key, &err);
	if (e < 0)
		return fail(c->conn, 500, "internal", "evidence key: %s", err.msg);
	char path[PATH_MAX], name[STORE_RUN_ID_MAX + 32];
	snprintf(name, sizeof(name), "evidence-%s.XXXXXX", r->id);
	int tfd = store_tmp_path(c->sv->s, name, path, sizeof(path), NULL) < 0
		      ? -1
		      : mkostemp(path, O_CLOEXEC);
	if (tfd < 0) {
		evidence_key_free(key);
		return fail(c->conn, 500, "internal", "cannot stage the pack: %s", strerror(errno));
	}
	close(tfd);
	struct evidence_export_opts o = { .run_id = r->id,
					  .workspace = c->key.workspace,
					  .out_path = path,
					  .artifacts = art && strcmp(art, "1") == 0,
					  .force = true,
					  .key = key };
	struct evidence_export_info info;
	e = evidence_export(c->sv->s, &o, &info, &err);
	evidence_key_free(key);
	int fd = e == 0 ? open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) : -1;
	unlink(path); /* the open fd keeps it until it is sent */
	struct stat st;
	if (e < 0 || fd < 0 || fstat(fd, &st) < 0) {
		if (fd >= 0)
			close(fd);
		return fail(c->conn, 500, "internal", "evidence: %s", err.msg);
	}
	struct MHD_Response *resp = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
	if (!resp) {
		close(fd);
		return MHD_NO;
	}
	common_headers(resp);
	MHD_add_response_header(resp, "Content-Type", "application/gzip");
	char cd[128];
	snprintf(cd, sizeof(cd), "attachment; filename=\"%s.evidence.tar.gz\"", r->id);
	MHD_add_response_header(resp, "Content-Disposition", cd);
	enum MHD_Result ret = MHD_queue_response(c->conn, 200, resp);
	MHD_destroy_response(resp);
	return ret;
}

static bool artifact_listed(const struct store_run *r, const char *name)
{
	json_t *res = r->result_json ? json_loads(r->result_json, 0, NULL) : NULL;
	bool found = false;
	size_t i;
	json_t *a;
	json_array_foreach(json_object_get(res, "artifacts"), i, a)
		if (strcmp(json_string_value(json_object_get(a, "name")) ?: "", name) == 0)
			found = true;
	json_decref(res);
	return found;
}

/* The run {id} of the path, when it is in the key's workspace; otherwise
 * false, with the 404 sent. */
static bool the_run(struct call *c, struct store_run *r, enum MHD_Result *ret)
{
	if (run_in_ws(c, c->seg[2], r) == 0)
		return true;
	*ret = fail(c->conn, 404, "not_found", "no run %s in workspace %s", c->seg[2],
		    c->key.workspace);
	return false;
}

static enum MHD_Result run_get(struct call *c)
{
	struct store_run r;
	enum MHD_Result ret;
	if (!the_run(c, &r, &ret))
		return ret;
	json_t *j = run_json(&r);
	json_t *res = r.result_json ? json_loads(r.result_json, 0, NULL) : NULL;
	json_object_set_new(j, "result", res ? res : json_null());
	store_run_clear(&r);
	return reply(c->conn, 200, j);
}

static enum MHD_Result run_cancel(struct call *c)
{
	struct store_run r;
	enum MHD_Result ret;
	if (!the_run(c, &r, &ret))
		return ret;
	const char *id = c->seg[2];
	if (store_run_status_final(r.status)) {
		ret = fail(c->conn, 409, "conflict", "run %s already ended (%s)", id,
			   store_run_status_name(r.status));
	} else {
		char why[160];
		snprintf(why, sizeof(why), "cancelled by key %s", c->key.id);
		if (dispatch_cancel(c->sv, id, why) < 0)
			ret = fail(c->conn, 409, "conflict",
				   "run %s is not run by this server (started elsewhere)", id);
		else
			ret = reply(c->conn, 202, json_pack("{s:s, s:b}", "id", id, "cancelling", 1));
	}
	store_run_clear(&r);
	return ret;
}

static enum MHD_Result run_output(struct call *c, const char *which)
{
	struct store_run r;
	enum MHD_Result ret;
	if (!the_run(c, &r, &ret))
		return ret;
	store_run_clear(&r);
	return run_file(c, c->seg[2], which, "text/plain; charset=utf-8", false);
}

static enum MHD_Result run_stdout(struct call *c)
{
	return run_output(c, "stdout");
}

static enum MHD_Result run_stderr(struct call *c)
{
	return run_output(c, "stderr");
}

static enum MHD_Result run_events_get(struct call *c)
{
	struct store_run r;
	enum MHD_Result ret;
	if (!the_run(c, &r, &ret))
		return ret;
	store_run_clear(&r);
	return run_events(c, c->seg[2]);
}

static enum MHD_Result run_evidence_get(struct call *c)
{
	struct store_run r;
	enum MHD_Result ret;
	if (!the_run(c, &r, &ret))
		return ret;
	ret = run_evidence(c, &r);
	store_run_clear(&r);
	return ret;
}

static enum MHD_Result run_artifact(struct call *c)
{
	struct store_run r;
	enum MHD_Result ret;
	if (!the_run(c, &r, &ret))
		return ret;
	/* Only names the result lists: nothing else under the run. */
	if (!artifact_listed(&r, c->seg[4])) {
		ret = fail(c->conn, 404, "not_found", "run %s has no artifact %s", c->seg[2],
			   c->seg[4]);
	} else {
		char rel[PATH_MAX];
		snprintf(rel, sizeof(rel), "artifacts/%s", c->seg[4]);
		ret = run_file(c, c->seg[2], rel, "application/octet-stream", true);
	}
	store_run_clear(&r);
	return ret;
}

/* Approvals: every live engine's control socket, kept to this workspace. */
struct appr_ctx {
	struct call *c;
	json_t *all;
	const char *id;
	bool approve, done;
	char by[160];
};

static bool run_is_ours(struct call *c, const char *run_id)
{
	struct store_run r;
	if (!run_id || run_in_ws(c, run_id, &r) < 0)
		return false;
	store_run_clear(&r);
	return true;
}

/* The run is the socket's name, checked against this workspace before
 * anything is asked: never what the socket says about itself. */
static int appr_list(const char *run_id, void *vctx)
{
	struct appr_ctx *a = vctx;
	if (!run_is_ours(a->c, run_id))
		return 0;
	json_t *req = json_pack("{s:s}", "op", "list");
	struct cdn_err err = { 0 };
	json_t *res = control_ask(run_id, req, &err);
	json_decref(req);
	size_t i;
	json_t *x;
	json_array_foreach(json_object_get(res, "approvals"), i, x)
	{
		json_object_set_new(x, "run_id", json_string(run_id));
		json_array_append(a->all, x);
	}
	json_decref(res);
	return 0;
}

static int appr_decide(const char *run_id, void *vctx)
{
	struct appr_ctx *a = vctx;
	if (!run_is_ours(a->c, run_id))
		return 0;
	json_t *req = json_pack("{s:s, s:s, s:b, s:s}", "op", "decide", "id", a->id, "approve",
				a->approve, "by", a->by);
	struct cdn_err err = { 0 };
	json_t *res = control_ask(run_id, req, &err);
	json_decref(req);
	if (res && json_is_true(json_object_get(res, "ok")))
		a->done = true;
	json_decref(res);
	return a->done ? 1 : 0;
}

static enum MHD_Result approvals_list(struct call *c)
{
	struct cdn_err err = { 0 };
	struct appr_ctx a = { .c = c, .all = json_array() };
	control_each(appr_list, &a, &err);
	return reply(c->conn, 200, json_pack("{s:o}", "approvals", a.all));
}

static enum MHD_Result approval_decide(struct call *c, bool approve)
{
	struct cdn_err err = { 0 };
	struct appr_ctx a = { .c = c, .id = c->seg[2], .approve = approve };
	snprintf(a.by, sizeof(a.by), "key:%s (%s)", c->key.id, c->key.name);
	control_each(appr_decide, &a, &err);
	if (!a.done)
		return fail(c->conn, 404, "not_found", "no pending request %s in this workspace",
			    a.id);
	return reply(c->conn, 200, json_pack("{s:s, s:s}", "id", a.id, "decision",
					     a.approve ? "approved" : "rejected"));
}

static enum MHD_Result approval_approve(struct call *c)
{
	return approval_decide(c, true);
}

static enum MHD_Result approval_reject(struct call *c)
{
	return approval_decide(c, false);
}

static enum MHD_Result audit_get(struct call *c)
{
	const char *run = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, "run");
	const char *lim = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, "limit");
	const char *off = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, "offset");
	struct store_run r;
	if (!run || run_in_ws(c, run, &r) < 0)
		return fail(c->conn, 404, "not_found", "give ?run=ID of a run in this workspace");
	store_run_clear(&r);
	unsigned long limit = lim ? strtoul(lim, NULL, 10) : 100, offset = off ? strtoul(off, NULL, 10) : 0;
	if (limit == 0 || limit > AUDIT_PAGE_MAX)
		limit = AUDIT_PAGE_MAX;
	char path[PATH_MAX] = "";
	(void)store_run_file(c->sv->s, run, "audit.jsonl", path, sizeof(path), NULL);
	json_t *entries = json_array();
	json_t *verify;
	FILE *f = fopen(path, "re");
	if (!f) {
		verify = json_pack("{s:b, s:I, s:s}", "ok", 1, "lines", (json_int_t)0, "note",
				   "this run had no network, so no audit log");
	} else {
		char *line = NULL;
		size_t cap = 0;
		unsigned long i = 0;
		while (getline(&line, &cap, f) > 0 && json_array_size(entries) < limit) {
			if (i++ < offset)
				continue;
			json_t *e = json_loads(line, 0, NULL);
			if (e)
				json_array_append_new(entries, e);
		}
		free(line);
		fclose(f);
		struct audit_verify v = { 0 };
		struct cdn_err err = { 0 };
		int vr = audit_verify_file(path, &v, &err);
		verify = vr < 0 ? json_pack("{s:b, s:s}", "ok", 0, "reason", err.msg)
				: json_pack("{s:b, s:I, s:s, s:I, s:s}", "ok", vr == 0, "lines",
					    (json_int_t)v.lines, "last_hash", v.last_hash, "bad_line",
					    (json_int_t)v.bad_line, "reason", v.reason);
	}
	return reply(c->conn, 200, json_pack("{s:s, s:o, s:o}", "run", run, "entries", entries,
					     "verify", verify));
}

/* ---------------------------------------------------------------- policy */

static json_t *yaml_text(const char *path)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	_cleanup_free_ char *buf = NULL;
	size_t n = 0;
	if (fd < 0 || cdn_read_fd(fd, EGRESS_MAX_POLICY_BYTES, &buf, &n) < 0)
		return json_null();
	json_t *y = json_stringn(buf, n);
	return y ? y : json_null();
}

/* Where a rule of the effective policy came from, at one level: the rule
 * of that level's policy that covers it. */
static json_t *rule_origin(const struct egress_policy *p, const char *name, const char *file)
{
	const struct egress_rule *r = p ? egress_policy_cover(p, name) : NULL;
	if (!r)
		return json_null();
	json_t *j = json_pack("{s:s, s:s, s:s}", "rule", r->name, "group", r->group ? r->group : "",
			      "category", egress_category_name(r->category));
	/* Line 0 is a built-in rule; the others name their line. */
	if (r->line > 0)
		json_object_set_new(j, "at", json_sprintf("%s:%d", file, r->line));
	else
		json_object_set_new(j, "at", json_string("built-in"));
	return j;
}

static json_t *effective_json(const struct run_policy_levels *lv)
{
	const struct egress_policy *e = lv->effective;
	json_t *rules = json_array();
	for (size_t i = 0; i < e->n_rules; i++) {
		const struct egress_rule *r = &e->rules[i];
		json_t *ports = json_array(), *methods = json_array();
		for (size_t k = 0; k < r->n_ports; k++)
			json_array_append_new(ports, json_integer(r->ports[k]));
		for (unsigned bit = 1; bit & EGRESS_M_ALL; bit <<= 1)
			if (r->methods & bit)
				json_array_append_new(methods, json_string(egress_method_name(bit)));
		json_t *j = json_pack("{s:s, s:o, s:o, s:I, s:b, s:b, s:s}", "name", r->name,
				      "ports", ports, "methods", methods, "requests_per_minute",
				      (json_int_t)r->rpm, "approval", r->approval, "inspect",
				      r->inspect, "category", egress_category_name(r->category));
		if (r->agent_rate_key)
			json_object_set_new(j, "workspace_requests_per_minute",
					    json_integer((json_int_t)r->agent_rpm));
		json_object_set_new(
			j, "from",
			json_pack("{s:o, s:o}", "operator",
				  rule_origin(lv->operator_policy, r->name,
					      lv->operator_builtin ? "built-in" : "policy.yaml"),
				  "workspace", rule_origin(lv->workspace, r->name, "workspace")));
		json_array_append_new(rules, j);
	}
	json_t *priv = json_array();
	for (size_t i = 0; i < e->n_private; i++) {
		const struct egress_private *pv = &e->private_ok[i];
		char ip[INET6_ADDRSTRLEN] = "?";
		const void *a = pv->addr.ss_family == AF_INET
					? (const void *)&((const struct sockaddr_in *)&pv->addr)->sin_addr
					: (const void *)&((const struct sockaddr_in6 *)&pv->addr)->sin6_addr;
		inet_ntop(pv->addr.ss_family, a, ip, sizeof(ip));
		json_array_append_new(priv, pv->addr.ss_family == AF_INET
						    ? json_sprintf("%s:%u", ip, pv->port)
						    : json_sprintf("[%s]:%u", ip, pv->port));
	}
	return json_pack("{s:b, s:{s:I, s:I}, s:{s:I}, s:o, s:o}", "enforce", e->enforce, "limits",
			 "requests_per_minute", (json_int_t)e->default_rpm,
			 "global_requests_per_minute", (json_int_t)e->global_rpm, "approvals",
			 "timeout_seconds", (json_int_t)e->approval_timeout_s, "private", priv,
			 "rules", rules);
}

static void collect_dropped(void *ctx, const char *domain)
{
	json_array_append_new(ctx, json_string(domain));
}

/* The operator's level as runs get it: the server's own --allow-private
 * exceptions are the operator's too. */
static int operator_level(struct server *sv, struct run_policy_levels *lv, struct cdn_err *err)
{
	return run_policy_levels_operator(sv->s, NULL, sv->cfg.allow_private,
					  sv->cfg.n_allow_private, lv, err);
}

/*
 * GET /v1/policy: the three levels a run of this workspace gets (the
 * operator's, the workspace's, and the effective one, each rule with where
 * it came from), read exactly as a run reads them.
 */
static enum MHD_Result policy_get(struct call *c)
{
	struct cdn_err err = { 0 };
	struct run_policy_levels lv;
	if (operator_level(c->sv, &lv, &err) < 0)
		return fail(c->conn, 500, "internal", "the operator's policy does not load: %s",
			    err.msg);
	json_t *op = json_pack("{s:s, s:o}", "source", lv.operator_builtin ? "built-in" : "file",
			       "yaml",
			       lv.operator_builtin ? json_string(egress_policy_builtin_yaml())
						   : yaml_text(lv.operator_path));
	json_t *dropped = json_array();
	int r = run_policy_levels_workspace(c->sv->s, c->key.workspace, &lv, collect_dropped,
					    dropped, &err);
	json_t *ws = json_null();
	if (lv.workspace_path[0] && access(lv.workspace_path, F_OK) == 0) {
		ws = json_pack("{s:o, s:o}", "yaml", yaml_text(lv.workspace_path), "dropped",
			       json_incref(dropped));
		/* A file written before the levels were enforced may not load
		 * any more: runs then fail, and this says why. */
		if (r < 0)
			json_object_set_new(ws, "error", json_string(err.msg));
	}
	json_decref(dropped);
	json_t *eff = r < 0 ? json_null() : effective_json(&lv);
	run_policy_levels_clear(&lv);
	return reply(c->conn, 200, json_pack("{s:o, s:o, s:o}", "operator", op, "workspace", ws,
					     "effective", eff));
}

/* PUT /v1/policy: the workspace's own policy, which can only narrow the
 * operator's; checked exactly as a run will load it. */
static enum MHD_Result policy_put(struct call *c)
{
	struct cdn_err err = { 0 };
	struct run_policy_levels lv;
	if (operator_level(c->sv, &lv, &err) < 0)
		return fail(c->conn, 500, "internal", "the operator's policy does not load: %s",
			    err.msg);
	struct egress_policy *ws = NULL, *eff = NULL;
	json_t *dropped = json_array();
	int r = egress_policy_parse_workspace(c->req->body ? c->req->body : "", c->req->len,
					      "policy.yaml", lv.operator_policy, &ws, &err);
	if (r == 0)
		r = egress_policy_narrow_by(lv.operator_policy, ws, &eff, collect_dropped, dropped,
					    &err);
	egress_policy_free(eff);
	egress_policy_free(ws);
	run_policy_levels_clear(&lv);
	if (r < 0) {
		json_decref(dropped);
		return fail(c->conn, r == -ENOMEM ? 500 : 400,
			    r == -ENOMEM ? "internal" : "bad_request", "%s", err.msg);
	}
	if ((r = store_policy_put(c->sv->s, c->key.workspace, c->req->body, c->req->len, &err)) <
	    0) {
		json_decref(dropped);
		return fail_err(c->conn, r, &err);
	}
	return reply(c->conn, 200, json_pack("{s:b, s:o}", "updated", 1, "dropped", dropped));
}

/* --------------------------------------------------------------- routing */

enum role { ROLE_MEMBER, ROLE_OWNER };

/*
 * Every route of the API, and the least role each needs: the one place
 * authorization is decided (docs/api/openapi.yaml documents the same
 * table as x-cordon-role; a test walks the two against each other). A
 * path's "{x}" is one segment of [A-Za-z0-9._-]. A route that exists with
 * other methods is 405 with Allow; none is 404. Members are refused owner
 * routes before any handler runs; "what" names the verb in the 403.
 */
static const struct route {
	const char *method;
	const char *path;
	enum role role;
	enum MHD_Result (*handler)(struct call *c);
	const char *what;
} routes[] = {
	{ "GET", "/v1/whoami", ROLE_MEMBER, h_whoami, NULL },
	{ "GET", "/v1/keys", ROLE_OWNER, keys_list, "manage keys" },
	{ "POST", "/v1/keys", ROLE_OWNER, keys_create, "manage keys" },
	{ "DELETE", "/v1/keys/{id}", ROLE_OWNER, keys_revoke, "manage keys" },
	{ "GET", "/v1/agents", ROLE_MEMBER, agents_list, NULL },
	{ "POST", "/v1/agents", ROLE_OWNER, agents_register, "register agents" },
	{ "GET", "/v1/capabilities", ROLE_MEMBER, capabilities_list, NULL },
	{ "POST", "/v1/capabilities", ROLE_OWNER, capabilities_register, "register capabilities" },
	{ "GET", "/v1/envs", ROLE_MEMBER, envs_list, NULL },
	{ "POST", "/v1/envs", ROLE_OWNER, envs_register, "register envs" },
	{ "POST", "/v1/grants", ROLE_OWNER, grants_create, "grant" },
	{ "GET", "/v1/secrets", ROLE_MEMBER, secrets_list, NULL },
	{ "GET", "/v1/secrets/{name}", ROLE_MEMBER, secret_get, NULL },
	{ "PUT", "/v1/secrets/{name}", ROLE_OWNER, secret_put, "set secrets" },
	{ "DELETE", "/v1/secrets/{name}", ROLE_OWNER, secret_delete, "remove secrets" },
	{ "GET", "/v1/runs", ROLE_MEMBER, runs_list, NULL },
	{ "POST", "/v1/runs", ROLE_MEMBER, runs_create, NULL },
	{ "GET", "/v1/runs/{id}", ROLE_MEMBER, run_get, NULL },
	{ "GET", "/v1/runs/{id}/events", ROLE_MEMBER, run_events_get, NULL },
	{ "GET", "/v1/runs/{id}/stdout", ROLE_MEMBER, run_stdout, NULL },
	{ "GET", "/v1/runs/{id}/stderr", ROLE_MEMBER, run_stderr, NULL },
	{ "GET", "/v1/runs/{id}/evidence", ROLE_MEMBER, run_evidence_get, NULL },
	{ "GET", "/v1/runs/{id}/artifacts/{name}", ROLE_MEMBER, run_artifact, NULL },
	{ "POST", "/v1/runs/{id}/cancel", ROLE_MEMBER, run_cancel, NULL },
	{ "GET", "/v1/approvals", ROLE_MEMBER, approvals_list, NULL },
	{ "POST", "/v1/approvals/{id}/approve", ROLE_OWNER, approval_approve, "approve or reject" },
	{ "POST", "/v1/approvals/{id}/reject", ROLE_OWNER, approval_reject, "approve or reject" },
	{ "GET", "/v1/audit", ROLE_MEMBER, audit_get, NULL },
	{ "GET", "/v1/policy", ROLE_MEMBER, policy_get, NULL },
	{ "PUT", "/v1/policy", ROLE_OWNER, policy_put, "change the policy" },
};

bool serve_route_at(size_t i, const char **method, const char **path, const char **role)
{
	if (i >= CDN_ARRAY_SIZE(routes))
		return false;
	*method = routes[i].method;
	*path = routes[i].path;
	*role = routes[i].role == ROLE_OWNER ? "owner" : "member";
	return true;
}

/* The request's segments against a route's path ("/v1/runs/{id}"). */
static bool path_matches(const char *pattern, const char *const *seg, size_t n)
{
	size_t i = 0;
	for (const char *p = pattern + 1; *p; i++) {
		const char *end = strchrnul(p, '/');
		size_t len = (size_t)(end - p);
		if (i == n)
			return false;
		if (p[0] != '{' && (strlen(seg[i]) != len || memcmp(seg[i], p, len) != 0))
			return false;
		p = *end ? end + 1 : end;
	}
	return i == n;
}

static enum MHD_Result route(struct call *c)
{
	char allow[128] = "";
	size_t off = 0;
	for (size_t i = 0; i < CDN_ARRAY_SIZE(routes); i++) {
		const struct route *rt = &routes[i];
		if (!path_matches(rt->path, c->seg, c->n_seg))
			continue;
		if (strcmp(rt->method, c->method) != 0) {
			if (off < sizeof(allow))
				off += (size_t)snprintf(allow + off, sizeof(allow) - off, "%s%s",
							off ? ", " : "", rt->method);
			continue;
		}
		if (rt->role == ROLE_OWNER && strcmp(c->key.role, "owner") != 0)
			return fail(c->conn, 403, "forbidden", "this key's role (%s) cannot %s",
				    c->key.role, rt->what ? rt->what : "do this");
		return rt->handler(c);
	}
	if (allow[0])
		return fail_allow(c->conn, allow, "%s is not allowed here (allowed: %s)", c->method,
				  allow);
	return fail(c->conn, 404, "not_found", "no such route");
}

static bool segment_ok(const char *s, size_t n)
{
	if (n == 0 || n > 128 || (n <= 2 && s[0] == '.'))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		      ch == '_' || ch == '-' || ch == '.'))
			return false;
	}
	return true;
}

static enum MHD_Result serve_asset(struct MHD_Connection *conn, const char *url)
{
	const struct serve_asset *a = serve_asset_find(strcmp(url, "/") == 0 ? "/index.html" : url);
	if (!a)
		return fail(conn, 404, "not_found", "no such page");
	struct MHD_Response *r =
		MHD_create_response_from_buffer(a->len, (void *)a->data, MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	common_headers(r);
	MHD_add_response_header(r, "Content-Type", a->type);
	MHD_add_response_header(r, "Content-Security-Policy",
				"default-src 'self'; img-src 'self' data:; style-src 'self'; "
				"script-src 'self'; connect-src 'self'; frame-ancestors 'none'");
	enum MHD_Result ret = MHD_queue_response(conn, 200, r);
	MHD_destroy_response(r);
	return ret;
}

/* Only an owner's key may send a body as large as a bundle: others get
 * the usual bound before anything is buffered (and are refused later). */
/* The credentials of "Authorization: Bearer TOKEN". The scheme's name is
 * case-insensitive (RFC 9110 11.1: "bearer" and "BEARER" are Bearer). */
static const char *bearer(struct MHD_Connection *conn)
{
	const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
	if (!auth || strncasecmp(auth, "Bearer", 6) != 0 || (auth[6] != ' ' && auth[6] != '\t'))
		return NULL;
	auth += 7;
	while (*auth == ' ' || *auth == '\t')
		auth++;
	return auth;
}

static bool upload_allowed(struct server *sv, struct MHD_Connection *conn)
{
	const char *token = bearer(conn);
	struct store_key key;
	struct cdn_err err = { 0 };
	return token && api_key_check(sv->s, token, &key, &err) == 0 &&
	       strcmp(key.role, "owner") == 0;
}

/* A bundle upload's body goes to an unlinked file under STATE/tmp. */
static int upload_spool(struct server *sv)
{
	char path[PATH_MAX];
	int fd = store_tmp_path(sv->s, "upload.XXXXXX", path, sizeof(path), NULL) < 0
		     ? -1
		     : mkostemp(path, O_CLOEXEC);
	if (fd >= 0)
		unlink(path);
	return fd;
}

static void body_add(struct request *req, const char *data, size_t n)
{
	if (req->too_large)
		return;
	if (req->len + n > req->max) {
		req->too_large = true;
		if (req->body)
			sodium_memzero(req->body, req->len);
		return;
	}
	if (req->fd >= 0) {
		if (req->write_failed)
			return;
		if (cdn_write_all(req->fd, data, n) < 0)
			req->write_failed = true;
		else
			req->len += n;
		return;
	}
	char *nb = realloc(req->body, req->len + n + 1);
	if (!nb) {
		req->write_failed = true;
		return;
	}
	req->body = nb;
	memcpy(req->body + req->len, data, n);
	req->len += n;
	req->body[req->len] = '\0';
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	(void)version;
	struct server *sv = cls;
	struct request *req = *con_cls;
	if (!req) {
		/* The head is complete: the front door's checks first. */
		char why[160];
		int st = front_request(sv, conn, why, sizeof(why));
		req = calloc(1, sizeof(*req));
		if (!req)
			return MHD_NO;
		req->fd = -1;
		req->max = BODY_MAX;
		*con_cls = req;
		if (st)
			return fail(conn, (unsigned)st, st == 400 ? "bad_request"
						: st == 429 ? "too_many_requests"
							    : "unavailable",
				    "%s", why);
		if (strcmp(method, "POST") == 0 &&
		    (strcmp(url, "/v1/agents") == 0 || strcmp(url, "/v1/capabilities") == 0) &&
		    bundle_type(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type")) &&
		    upload_allowed(sv, conn)) {
			if (!front_upload_take(sv))
				return fail(conn, 503, "unavailable",
					    "%u bundle uploads are in progress, the server's limit; "
					    "try again shortly",
					    sv->max_uploads);
			req->upload_slot = true;
			if ((req->fd = upload_spool(sv)) < 0)
				return fail(conn, 500, "internal", "cannot spool the upload: %s",
					    strerror(errno));
			req->max = BUNDLE_MAX_UPLOAD;
		}
		return MHD_YES;
	}
	if (*upload_size) {
		body_add(req, upload, *upload_size);
		*upload_size = 0;
		return MHD_YES;
	}
	if (strncmp(url, "/v1/", 4) != 0 && strcmp(url, "/v1") != 0) {
		if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
			return fail_allow(conn, "GET, HEAD", "%s is not allowed here", method);
		return serve_asset(conn, url);
	}
	if (req->too_large)
		return fail(conn, 413, "too_large", "the body is over %zu bytes", req->max);
	if (req->write_failed && req->fd < 0)
		return fail(conn, 500, "internal", "out of memory for the body");

	struct call c = { .sv = sv, .conn = conn, .method = method, .req = req };
	/* Split the path; every segment is a plain name. */
	char path[1024];
	if ((size_t)snprintf(path, sizeof(path), "%s", url + 1) >= sizeof(path))
		return fail(conn, 404, "not_found", "no such route"); /* never a cut path */
	char *save = NULL;
	for (char *p = strtok_r(path, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
		if (c.n_seg == MAX_SEGMENTS || !segment_ok(p, strlen(p)))
			return fail(conn, 404, "not_found", "no such route");
		c.seg[c.n_seg++] = p;
	}

	const char *token = bearer(conn);
	if (!token)
		return fail(conn, 401, "unauthorized",
			    "send an API key: Authorization: Bearer cdn_live_... (cordon keys create)");
	struct cdn_err err = { 0 };
	int r = api_key_check(sv->s, token, &c.key, &err);
	if (r == -EACCES)
		return fail(conn, 401, "unauthorized", "%s", err.msg);
	if (r < 0)
		return fail_err(conn, r, &err);
	front_authenticated(sv, conn);
	int64_t now = (int64_t)time(NULL);
	if (now - c.key.last_used >= 60)
		store_key_touch(sv->s, c.key.id, now, NULL);
	return route(&c);
}

static void on_done(void *cls, struct MHD_Connection *conn, void **con_cls,
		    enum MHD_RequestTerminationCode code)
{
	(void)code;
	struct server *sv = cls;
	front_request_done(sv, conn);
	struct request *req = *con_cls;
	if (!req)
		return;
	if (req->body) {
		sodium_memzero(req->body, req->len);
		free(req->body);
	}
	if (req->fd >= 0)
		close(req->fd);
	if (req->upload_slot)
		front_upload_give(sv);
	free(req);
	*con_cls = NULL;
}

/* /healthz on the unix socket. */
static enum MHD_Result on_health(void *cls, struct MHD_Connection *conn, const char *url,
				 const char *method, const char *version, const char *upload,
				 size_t *upload_size, void **con_cls)
{
	(void)version;
	(void)upload;
	(void)upload_size;
	(void)con_cls;
	struct server *sv = cls;
	if (strcmp(url, "/healthz") != 0 || strcmp(method, "GET") != 0)
		return fail(conn, 404, "not_found", "only GET /healthz here");
	unsigned q, r;
	bool d;
	dispatch_counts(sv, &q, &r, &d);
	unsigned conns, anon, uploads;
	front_counts(sv, &conns, &anon, &uploads);
	return reply(conn, d ? 503 : 200,
		     json_pack("{s:b, s:i, s:i, s:b, s:{s:i, s:i, s:i}}", "ok", !d, "queued", q,
			       "running", r, "draining", d, "connections", "open", conns,
			       "anonymous", anon, "uploads", uploads));
}

/* ------------------------------------------------------------------ main */

static int parse_listen(const char *s, struct sockaddr_in *sa, struct cdn_err *err)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return cdn_err_msg(err, EINVAL, "--listen: expected ADDR:PORT, got '%s'", s);
	snprintf(host, sizeof(host), "%.*s", (int)(colon - s), s);
	char *end;
	unsigned long port = strtoul(colon + 1, &end, 10);
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	if (*end || port == 0 || port > 65535 || inet_pton(AF_INET, host, &sa->sin_addr) != 1)
		return cdn_err_msg(err, EINVAL,
				   "--listen: expected an IPv4 ADDR:PORT such as 127.0.0.1:8470, "
				   "got '%s'",
				   s);
	return 0;
}

static int health_socket(struct server *sv, struct cdn_err *err)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	if (snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/serve.sock", sv->state) >=
	    (int)sizeof(sun.sun_path))
		return cdn_err_msg(err, ENAMETOOLONG, "the state path is too long for serve.sock");
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return cdn_err_set(err, errno, "socket");
	unlink(sun.sun_path);
	mode_t old = umask(0177);
	int r = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (r < 0 || listen(fd, 16) < 0) {
		int e = errno;
		close(fd);
		return cdn_err_set(err, e, "bind %s", sun.sun_path);
	}
	return fd;
}

int serve_main(const struct serve_config *cfg, struct cdn_err *err)
{
	struct server *sv = calloc(1, sizeof(*sv));
	if (!sv)
		return cdn_err_set(err, ENOMEM, "serve");
	sv->cfg = *cfg;
	sv->self = getpid();
	pthread_mutex_init(&sv->mu, NULL);
	pthread_mutex_init(&sv->lim_mu, NULL);
	sv->max_streams_per_key = cfg->max_streams_per_key ? cfg->max_streams_per_key : 16;
	sv->max_uploads = cfg->max_uploads ? cfg->max_uploads : 4;
	pthread_cond_init(&sv->cv, NULL);
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	sv->concurrency = cfg->concurrency ? cfg->concurrency : (unsigned)(cpus > 0 ? cpus * 2 : 2);
	sv->queue_max = cfg->queue ? cfg->queue : 64;
	sv->ws_queue_max = cfg->workspace_queue ? cfg->workspace_queue : (sv->queue_max + 3) / 4;
	sv->ws_running_max = cfg->workspace_concurrency ? cfg->workspace_concurrency
							: sv->concurrency;
	struct MHD_Daemon *http = NULL, *health = NULL;
	pthread_t dispatcher;
	bool dispatcher_started = false;
	int r = 0, hfd = -1;

	char cwd[PATH_MAX];
	if (cfg->state_dir && cfg->state_dir[0] != '/' && getcwd(cwd, sizeof(cwd)))
		snprintf(sv->state, sizeof(sv->state), "%s/%s", cwd, cfg->state_dir);
	else if (cfg->state_dir)
		snprintf(sv->state, sizeof(sv->state), "%s", cfg->state_dir);
	else if ((r = store_default_dir(sv->state, sizeof(sv->state), err)) < 0)
		goto out;
	if ((r = store_open(sv->state, &sv->s, err)) < 0 || (r = vault_open(sv->s, &sv->v, err)) < 0)
		goto out;
	/* Absolute, so each run finds the same store. */
	snprintf(sv->state, sizeof(sv->state), "%s", store_dir(sv->s));
	if (cfg->run_exe) {
		snprintf(sv->exe, sizeof(sv->exe), "%s", cfg->run_exe);
	} else {
		/* Runs go to cordon-full: it loads fewer libraries. This binary
		 * runs them too, if that is all there is. */
		if (cdn_sibling_exe("cordon-full", sv->exe, sizeof(sv->exe)) < 0 &&
		    (r = cdn_self_exe(sv->exe, sizeof(sv->exe))) < 0) {
			r = cdn_err_set(err, -r, "readlink /proc/self/exe");
			goto out;
		}
	}
	(void)store_runs_recover(sv->s, NULL);

	struct sockaddr_in sa;
	if ((r = parse_listen(cfg->listen ? cfg->listen : "127.0.0.1:8470", &sa, err)) < 0)
		goto out;
	if ((hfd = health_socket(sv, err)) < 0) {
		r = hfd;
		goto out;
	}

	/* Signals are taken by sigwait() below, in this thread only. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (pthread_create(&dispatcher, NULL, dispatch_main, sv) != 0) {
		r = cdn_err_set(err, EAGAIN, "dispatcher thread");
		goto out;
	}
	dispatcher_started = true;

	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
			 MHD_USE_ERROR_LOG;
	if (front_start(sv) < 0) {
		r = cdn_err_set(err, EAGAIN, "the connection reaper thread");
		goto out;
	}
	/* No per-IP limit here: every loopback client, and everything behind a
	 * proxy, shares one address (front.c decides where it applies). */
	http = MHD_start_daemon(flags, 0, front_accept, sv, on_request, sv, MHD_OPTION_SOCK_ADDR,
				&sa, MHD_OPTION_NOTIFY_COMPLETED, on_done, sv,
				MHD_OPTION_NOTIFY_CONNECTION, front_notify, sv,
				MHD_OPTION_URI_LOG_CALLBACK, front_uri, sv,
				MHD_OPTION_CONNECTION_LIMIT, 256u, MHD_OPTION_CONNECTION_TIMEOUT, 30u,
				MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(256 * 1024),
				MHD_OPTION_END);
	if (!http) {
		r = cdn_err_msg(err, EADDRINUSE, "cannot listen on %s (in use, or not an address "
				"of this machine)", cfg->listen ? cfg->listen : "127.0.0.1:8470");
		goto out;
	}
	health = MHD_start_daemon(flags, 0, NULL, NULL, on_health, sv, MHD_OPTION_LISTEN_SOCKET,
				  hfd, MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
	if (!health) {
		r = cdn_err_msg(err, EIO, "cannot serve %s/serve.sock", sv->state);
		goto out;
	}
	hfd = -1;
	fprintf(stderr,
		"cordon serve: listening on http://%s (dashboard at /), health on %s/serve.sock; "
		"%u runs at once, %u queued at most; per workspace %u queued, %u running\n",
		cfg->listen ? cfg->listen : "127.0.0.1:8470", sv->state, sv->concurrency,
		sv->queue_max, sv->ws_queue_max, sv->ws_running_max);

	for (;;) {
		int sig = 0;
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGTERM || sig == SIGINT)
			break;
	}
	unsigned drain = cfg->drain_timeout_s ? cfg->drain_timeout_s : 30;
	fprintf(stderr, "cordon serve: draining (up to %u s)\n", drain);
	dispatch_drain(sv, drain);
	r = 0;
out:
	if (dispatcher_started) {
		pthread_mutex_lock(&sv->mu);
		sv->stop = true;
		sv->draining = true;
		pthread_cond_signal(&sv->cv);
		pthread_mutex_unlock(&sv->mu);
		if (r < 0)
			dispatch_drain(sv, 0);
		pthread_join(dispatcher, NULL);
	}
	if (http)
		MHD_stop_daemon(http);
	front_stop(sv);
	if (health)
		MHD_stop_daemon(health);
	if (hfd >= 0)
		close(hfd);
	if (sv->state[0] && sv->s) {
		char sock[PATH_MAX + 16];
		snprintf(sock, sizeof(sock), "%s/serve.sock", sv->state);
		unlink(sock);
	}
	vault_close(sv->v);
	store_close(sv->s);
	pthread_mutex_destroy(&sv->mu);
	pthread_mutex_destroy(&sv->lim_mu);
	pthread_cond_destroy(&sv->cv);
	free(sv);
	if (r == 0)
		fprintf(stderr, "cordon serve: stopped\n");
	return r;
}
