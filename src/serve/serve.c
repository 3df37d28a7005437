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
	{ "GET", "/v1/keys", ROLE_OWNER, h_keys_list, "manage keys" },
	{ "POST", "/v1/keys", ROLE_OWNER, h_keys_create, "manage keys" },
	{ "DELETE", "/v1/keys/{id}", ROLE_OWNER, h_keys_revoke, "manage keys" },
	{ "GET", "/v1/agents", ROLE_MEMBER, h_agents_list, NULL },
	{ "POST", "/v1/agents", ROLE_OWNER, h_agents_register, "register agents" },
	{ "GET", "/v1/agents/{name}", ROLE_MEMBER, h_agent_get, NULL },
	{ "GET", "/v1/capabilities", ROLE_MEMBER, h_capabilities_list, NULL },
	{ "POST", "/v1/capabilities", ROLE_OWNER, h_capabilities_register, "register capabilities" },
	{ "GET", "/v1/envs", ROLE_MEMBER, h_envs_list, NULL },
	{ "POST", "/v1/envs", ROLE_OWNER, h_envs_register, "register envs" },
	{ "POST", "/v1/grants", ROLE_OWNER, h_grants_create, "grant" },
	{ "GET", "/v1/secrets", ROLE_MEMBER, h_secrets_list, NULL },
	{ "GET", "/v1/secrets/{name}", ROLE_MEMBER, h_secret_get, NULL },
	{ "PUT", "/v1/secrets/{name}", ROLE_OWNER, h_secret_put, "set secrets" },
	{ "DELETE", "/v1/secrets/{name}", ROLE_OWNER, h_secret_delete, "remove secrets" },
	{ "GET", "/v1/runs", ROLE_MEMBER, h_runs_list, NULL },
	{ "POST", "/v1/runs", ROLE_MEMBER, h_runs_create, NULL },
	{ "GET", "/v1/runs/{id}", ROLE_MEMBER, h_run_get, NULL },
	{ "GET", "/v1/runs/{id}/events", ROLE_MEMBER, h_run_events_get, NULL },
	{ "GET", "/v1/runs/{id}/stdout", ROLE_MEMBER, h_run_stdout, NULL },
	{ "GET", "/v1/runs/{id}/stderr", ROLE_MEMBER, h_run_stderr, NULL },
	{ "GET", "/v1/runs/{id}/evidence", ROLE_MEMBER, h_run_evidence_get, NULL },
	{ "GET", "/v1/runs/{id}/artifacts/{name}", ROLE_MEMBER, h_run_artifact, NULL },
	{ "POST", "/v1/runs/{id}/cancel", ROLE_MEMBER, h_run_cancel, NULL },
	{ "PUT", "/v1/runs/{id}/hold", ROLE_OWNER, h_run_hold_put, "hold runs" },
	{ "DELETE", "/v1/runs/{id}/hold", ROLE_OWNER, h_run_hold_delete, "release runs" },
	{ "GET", "/v1/approvals", ROLE_MEMBER, h_approvals_list, NULL },
	{ "POST", "/v1/approvals/{id}/approve", ROLE_OWNER, h_approval_approve, "approve or reject" },
	{ "POST", "/v1/approvals/{id}/reject", ROLE_OWNER, h_approval_reject, "approve or reject" },
	{ "GET", "/v1/audit", ROLE_MEMBER, h_audit_get, NULL },
	{ "GET", "/v1/policy", ROLE_MEMBER, h_policy_get, NULL },
	{ "PUT", "/v1/policy", ROLE_OWNER, h_policy_put, "change the policy" },
	{ "GET", "/v1/usage", ROLE_MEMBER, h_usage, NULL },
	{ "GET", "/v1/deps", ROLE_MEMBER, h_deps, NULL },
	{ "GET", "/v1/schedules", ROLE_MEMBER, h_schedules_list, NULL },
	{ "POST", "/v1/schedules", ROLE_OWNER, h_schedule_create, "create schedules" },
	{ "GET", "/v1/schedules/{name}", ROLE_MEMBER, h_schedule_get, NULL },
	{ "DELETE", "/v1/schedules/{name}", ROLE_OWNER, h_schedule_delete, "remove schedules" },
	{ "POST", "/v1/schedules/{name}/pause", ROLE_OWNER, h_schedule_pause, "pause schedules" },
	{ "POST", "/v1/schedules/{name}/resume", ROLE_OWNER, h_schedule_resume,
	  "resume schedules" },
	{ "GET", "/v1/services", ROLE_MEMBER, h_services_list, NULL },
	{ "POST", "/v1/services", ROLE_OWNER, h_service_create, "create services" },
	{ "GET", "/v1/services/{name}", ROLE_MEMBER, h_service_get, NULL },
	{ "DELETE", "/v1/services/{name}", ROLE_OWNER, h_service_delete, "remove services" },
	{ "POST", "/v1/services/{name}/pause", ROLE_OWNER, h_service_pause, "pause services" },
	{ "POST", "/v1/services/{name}/resume", ROLE_OWNER, h_service_resume, "resume services" },
	{ "GET", "/v1/services/{name}/stdout", ROLE_MEMBER, h_service_stdout, NULL },
	{ "GET", "/v1/services/{name}/stderr", ROLE_MEMBER, h_service_stderr, NULL },
	{ "GET", "/v1/retention", ROLE_MEMBER, h_retention_get, NULL },
	{ "PUT", "/v1/retention", ROLE_OWNER, h_retention_put, "change retention" },
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
			return api_fail(c->conn, 403, "forbidden", "this key's role (%s) cannot %s",
					c->key.role, rt->what ? rt->what : "do this");
		return rt->handler(c);
	}
	if (allow[0])
		return api_fail_allow(c->conn, allow, "%s is not allowed here (allowed: %s)",
				      c->method, allow);
	return api_fail(c->conn, 404, "not_found", "no such route");
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
		return api_fail(conn, 404, "not_found", "no such page");
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(a->len, (void *)a->data, MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	api_headers(r);
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
const char *api_bearer(struct MHD_Connection *conn)
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
	const char *token = api_bearer(conn);
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
			return api_fail(conn, (unsigned)st,
					st == 400   ? "bad_request"
					: st == 429 ? "too_many_requests"
						    : "unavailable",
					"%s", why);
		if (strcmp(method, "POST") == 0 &&
		    (strcmp(url, "/v1/agents") == 0 || strcmp(url, "/v1/capabilities") == 0) &&
		    api_bundle_type(
			MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type")) &&
		    upload_allowed(sv, conn)) {
			if (!front_upload_take(sv))
				return api_fail(
				    conn, 503, "unavailable",
				    "%u bundle uploads are in progress, the server's limit; "
				    "try again shortly",
				    sv->max_uploads);
			req->upload_slot = true;
			if ((req->fd = upload_spool(sv)) < 0)
				return api_fail(conn, 500, "internal",
						"cannot spool the upload: %s", strerror(errno));
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
			return api_fail_allow(conn, "GET, HEAD", "%s is not allowed here", method);
		return serve_asset(conn, url);
	}
	if (req->too_large)
		return api_fail(conn, 413, "too_large", "the body is over %zu bytes", req->max);
	if (req->write_failed && req->fd < 0)
		return api_fail(conn, 500, "internal", "out of memory for the body");

	struct call c = {.sv = sv, .conn = conn, .method = method, .req = req};
	/* Split the path; every segment is a plain name. */
	char path[1024];
	if ((size_t)snprintf(path, sizeof(path), "%s", url + 1) >= sizeof(path))
		return api_fail(conn, 404, "not_found", "no such route"); /* never a cut path */
	char *save = NULL;
	for (char *p = strtok_r(path, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
		if (c.n_seg == SERVE_MAX_SEGMENTS || !segment_ok(p, strlen(p)))
			return api_fail(conn, 404, "not_found", "no such route");
		c.seg[c.n_seg++] = p;
	}

	const char *token = api_bearer(conn);
	if (!token)
		return api_fail(
		    conn, 401, "unauthorized",
		    "send an API key: Authorization: Bearer cdn_live_... (cordon keys create)");
	struct cdn_err err = {0};
	int r = api_key_check(sv->s, token, &c.key, &err);
	if (r == -EACCES)
		return api_fail(conn, 401, "unauthorized", "%s", err.msg);
	if (r < 0)
		return api_fail_err(conn, r, &err);
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

/* /healthz and /metrics (every series: the socket is the server's
 * user's alone) on the unix socket. */
static enum MHD_Result on_health(void *cls, struct MHD_Connection *conn, const char *url,
				 const char *method, const char *version, const char *upload,
				 size_t *upload_size, void **con_cls)
{
	(void)version;
	(void)upload;
	(void)upload_size;
	(void)con_cls;
	struct server *sv = cls;
	if (strcmp(method, "GET") == 0 && strcmp(url, "/metrics") == 0)
		return metrics_reply(sv, conn, true);
	if (strcmp(url, "/healthz") != 0 || strcmp(method, "GET") != 0)
		return api_fail(conn, 404, "not_found", "only GET /healthz and GET /metrics here");
	unsigned q, r;
	bool d;
	dispatch_counts(sv, &q, &r, &d);
	unsigned conns, anon, uploads;
	front_counts(sv, &conns, &anon, &uploads);
	return api_reply(conn, d ? 503 : 200,
			 json_pack("{s:b, s:i, s:i, s:b, s:{s:i, s:i, s:i}}", "ok", !d, "queued", q,
				   "running", r, "draining", d, "connections", "open", conns,
				   "anonymous", anon, "uploads", uploads));
}

/* ------------------------------------------------------------------ main */

int parse_listen(const char *opt, const char *s, struct sockaddr_in *sa, struct cdn_err *err)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return cdn_err_msg(err, EINVAL, "%s: expected ADDR:PORT, got '%s'", opt, s);
	snprintf(host, sizeof(host), "%.*s", (int)(colon - s), s);
	char *end;
	unsigned long port = strtoul(colon + 1, &end, 10);
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	if (*end || port == 0 || port > 65535 || inet_pton(AF_INET, host, &sa->sin_addr) != 1)
		return cdn_err_msg(err, EINVAL,
				   "%s: expected an IPv4 ADDR:PORT such as 127.0.0.1:8470, "
				   "got '%s'",
				   opt, s);
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
	/* TZ in the environment before any thread starts: the scheduler's
	 * zone computations (base/cron.h) then only replace its value, never
	 * add or remove the variable, which would move the environment's
	 * array under another thread's getenv. cordon keeps to UTC itself. */
	if (!getenv("TZ") && setenv("TZ", "UTC", 1) < 0)
		return cdn_err_set(err, errno, "serve: TZ");
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
	pthread_mutex_init(&sv->prune_mu, NULL);
	pthread_cond_init(&sv->prune_cv, NULL);
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	sv->concurrency = cfg->concurrency ? cfg->concurrency : (unsigned)(cpus > 0 ? cpus * 2 : 2);
	sv->queue_max = cfg->queue ? cfg->queue : 64;
	/* With --dispatch workers runs start in the workers: no pool here. */
	sv->pool.max = cfg->dispatch_workers ? 0 : cfg->warm_pool;
	sv->pool.who = "cordon serve";
	sv->ws_queue_max = cfg->workspace_queue ? cfg->workspace_queue : (sv->queue_max + 3) / 4;
	sv->ws_running_max = cfg->workspace_concurrency ? cfg->workspace_concurrency
							: sv->concurrency;
	struct MHD_Daemon *http = NULL, *health = NULL, *metrics = NULL;
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
	if ((r = store_open(sv->state, &sv->s, err)) < 0 || (r = store_blobs_check(sv->s, err)) < 0 ||
	    (r = vault_open(sv->s, &sv->v, err)) < 0)
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
	/* What every run process of this server is given, warm or cold. */
	sv->pool.proc = (struct runproc){
		.exe = sv->exe,
		.state = sv->state,
		.hosts_file = cfg->hosts_file,
		.upstream_ca = cfg->upstream_ca,
		.allow_private = cfg->allow_private,
		.n_allow_private = cfg->n_allow_private,
		.max_call_depth = cfg->max_call_depth,
		.max_calls = cfg->max_calls,
	};
	(void)store_runs_recover(sv->s, NULL);

	struct sockaddr_in sa;
	if ((r = parse_listen("--listen", cfg->listen ? cfg->listen : "127.0.0.1:8470", &sa,
			      err)) < 0)
		goto out;
	struct sockaddr_in msa;
	if (cfg->metrics_listen &&
	    (r = parse_listen("--metrics-listen", cfg->metrics_listen, &msa, err)) < 0)
		goto out;
	if ((r = metrics_open(sv, err)) < 0)
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

	/* Before the dispatcher and the API, which report runs' ends to it. */
	if ((r = sink_start(sv, err)) < 0)
		goto out;
	if (pthread_create(&dispatcher, NULL, dispatch_main, sv) != 0) {
		r = cdn_err_set(err, EAGAIN, "dispatcher thread");
		goto out;
	}
	dispatcher_started = true;
	if (pruner_start(sv) < 0) {
		r = cdn_err_set(err, EAGAIN, "the pruner thread");
		goto out;
	}
	if (scheduler_start(sv) < 0) {
		r = cdn_err_set(err, EAGAIN, "the scheduler thread");
		goto out;
	}
	if (services_start(sv) < 0) {
		r = cdn_err_set(err, EAGAIN, "the service manager thread");
		goto out;
	}

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
	/* Scrapes are short and need no thread each: one polling thread,
	 * few connections, and a quick timeout for a client that stalls. */
	if (cfg->metrics_listen &&
	    !(metrics = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0,
					 NULL, NULL, metrics_on_request, sv,
					 MHD_OPTION_SOCK_ADDR, &msa, MHD_OPTION_CONNECTION_LIMIT,
					 32u, MHD_OPTION_PER_IP_CONNECTION_LIMIT, 8u,
					 MHD_OPTION_CONNECTION_TIMEOUT, 10u,
					 MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
					 MHD_OPTION_END))) {
		r = cdn_err_msg(err, EADDRINUSE,
				"cannot listen on %s for metrics (in use, or not an address of "
				"this machine)",
				cfg->metrics_listen);
		goto out;
	}
	if (metrics)
		fprintf(stderr, "cordon serve: metrics on http://%s/metrics (%s)\n",
			cfg->metrics_listen,
			cfg->metrics_token_file ? "with the token of --metrics-token-file"
						: "server-wide series only: no token");
	fprintf(stderr,
		"cordon serve: listening on http://%s (dashboard at /), health on %s/serve.sock; "
		"%u runs at once, %u queued at most; per workspace %u queued, %u running; "
		"%u warm; metadata in %s\n",
		cfg->listen ? cfg->listen : "127.0.0.1:8470", sv->state, sv->concurrency,
		sv->queue_max, sv->ws_queue_max, sv->ws_running_max, sv->pool.max,
		store_backend(sv->s));
	if (cfg->dispatch_workers)
		fprintf(stderr, "cordon serve: --dispatch workers: runs wait in the database for "
				"cordon worker processes (the limits above are the queue's)\n");

	for (;;) {
		int sig = 0;
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGTERM || sig == SIGINT)
			break;
	}
	unsigned drain = cfg->drain_timeout_s ? cfg->drain_timeout_s : 30;
	fprintf(stderr, "cordon serve: draining (up to %u s)\n", drain);
	scheduler_stop(sv); /* nothing new while draining */
	services_drain(sv); /* services stop first, gracefully */
	dispatch_drain(sv, drain);
	r = 0;
out:
	scheduler_stop(sv);
	services_drain(sv);
	pruner_stop(sv);
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
	if (metrics)
		MHD_stop_daemon(metrics);
	if (http)
		MHD_stop_daemon(http);
	front_stop(sv);
	if (health)
		MHD_stop_daemon(health);
	/* After the dispatcher and the API (a cancel reports a run's end):
	 * the packs of the runs that ended are written before the server
	 * exits. */
	sink_stop(sv);
	if (hfd >= 0)
		close(hfd);
	if (sv->state[0] && sv->s) {
		char sock[PATH_MAX + 16];
		snprintf(sock, sizeof(sock), "%s/serve.sock", sv->state);
		unlink(sock);
	}
	metrics_close(sv);
	vault_close(sv->v);
	store_close(sv->s);
	pthread_mutex_destroy(&sv->mu);
	pthread_mutex_destroy(&sv->lim_mu);
	pthread_cond_destroy(&sv->cv);
	pthread_mutex_destroy(&sv->prune_mu);
	pthread_cond_destroy(&sv->prune_cv);
	free(sv);
	if (r == 0)
		fprintf(stderr, "cordon serve: stopped\n");
	return r;
}
