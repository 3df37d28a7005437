/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cordon serve's /metrics (docs/metrics.md): what the dispatcher counts as
 * runs end, what it holds right now, and this process's use of the
 * machine, in the Prometheus text format (prom.c).
 *
 * Workspace names are tenant data: the per-workspace series go only to a
 * reader of STATE/serve.sock (mode 0600), or to --metrics-listen when it
 * has a --metrics-token-file and then only to scrapes that show the token.
 * A --metrics-listen without a token answers anyone who reaches it with
 * the server-wide sums, which name no workspace.
 */
#define _GNU_SOURCE
#include "serve/internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/file.h"
#include "base/proc.h"
#include "serve/prom.h"

#define N_STATUS (RUN_LOST + 1)

/* Seconds. A run lasts from well under a second (a script) to the
 * longest timeout an operator allows; its wait for a slot from a few
 * milliseconds (an idle server) to minutes (a full queue). */
static const double duration_bounds[] = { 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600,
					   1800, 3600 };
static const double latency_bounds[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
					  10, 30, 60, 300 };

/* Runs finished, by status, of one workspace. */
struct ws_count {
	char ws[STORE_MAX_NAME + 1];
	uint64_t runs[N_STATUS];
	struct ws_count *next; /* by name */
};

struct metrics {
	pthread_mutex_t mu;
	struct ws_count *wss;
	size_t n_wss;
	struct ws_count other; /* past METRICS_MAX_WORKSPACES */
	uint64_t duration_counts[CDN_ARRAY_SIZE(duration_bounds) + 1];
	uint64_t latency_counts[CDN_ARRAY_SIZE(latency_bounds) + 1];
	struct prom_histogram duration, latency;
	uint64_t egress_allowed, egress_blocked;

	double start_time; /* this process's, unix seconds; 0: unknown */
	bool has_token;
	unsigned char token_hash[crypto_hash_sha256_BYTES];
};

/* ------------------------------------------------------------- the token */

/* The token file: the operator's, not writable by anyone else (who could
 * choose the token) nor readable by others (who could then read every
 * workspace's name). One line; its newline is not part of the token. */
static int token_load(struct metrics *m, const char *path, struct cdn_err *err)
{
	/* O_NONBLOCK: a FIFO there must not hang the start (it is refused
	 * below). A symlink is followed, and its target checked: secret
	 * mounts (Kubernetes') are links. */
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return cdn_err_set(err, errno, "--metrics-token-file: open %s", path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return cdn_err_set(err, errno, "--metrics-token-file: stat %s", path);
	if (!S_ISREG(st.st_mode))
		return cdn_err_msg(err, EINVAL, "--metrics-token-file: %s is not a regular file",
				   path);
	if (st.st_uid != geteuid() && st.st_uid != 0)
		return cdn_err_msg(err, EPERM,
				   "--metrics-token-file: refusing %s: it is owned by another user, "
				   "who could choose the token",
				   path);
	if (st.st_mode & (S_IWGRP | S_IWOTH | S_IROTH))
		return cdn_err_msg(err, EPERM,
				   "--metrics-token-file: refusing %s: mode %03o lets others read "
				   "or change it (chmod 600 or 640)",
				   path, (unsigned)(st.st_mode & 0777));
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	int r = cdn_read_fd(fd, METRICS_TOKEN_MAX + 2, &text, &len);
	if (r < 0)
		return cdn_err_set(err, r == -EFBIG ? EFBIG : -r, "--metrics-token-file: read %s",
				   path);
	if (len && text[len - 1] == '\n')
		len--;
	if (len && text[len - 1] == '\r')
		len--;
	bool printable = true;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)text[i] <= ' ' || (unsigned char)text[i] >= 0x7f)
			printable = false;
	if (len < METRICS_TOKEN_MIN || len > METRICS_TOKEN_MAX || !printable)
		r = cdn_err_msg(err, EINVAL,
				"--metrics-token-file: %s must hold one token of %d to %d "
				"printable ASCII characters without spaces (openssl rand -hex 32)",
				path, METRICS_TOKEN_MIN, METRICS_TOKEN_MAX);
	else
		crypto_hash_sha256(m->token_hash, (const unsigned char *)text, len);
	sodium_memzero(text, len);
	m->has_token = r == 0;
	return r;
}

/* Hashes first, so the comparison takes as long for every guess. */
static bool token_ok(const struct metrics *m, const char *token)
{
	unsigned char h[crypto_hash_sha256_BYTES];
	if (!m->has_token || !token)
		return false;
	crypto_hash_sha256(h, (const unsigned char *)token, strlen(token));
	return sodium_memcmp(h, m->token_hash, sizeof(h)) == 0;
}

/* ------------------------------------------------------------ the state */

int metrics_open(struct server *sv, struct cdn_err *err)
{
	struct metrics *m = calloc(1, sizeof(*m));
	if (!m)
		return cdn_err_set(err, ENOMEM, "metrics");
	pthread_mutex_init(&m->mu, NULL);
	snprintf(m->other.ws, sizeof(m->other.ws), "_other");
	m->duration = (struct prom_histogram){ duration_bounds, CDN_ARRAY_SIZE(duration_bounds),
					       m->duration_counts, 0, 0 };
	m->latency = (struct prom_histogram){ latency_bounds, CDN_ARRAY_SIZE(latency_bounds),
					      m->latency_counts, 0, 0 };
	struct cdn_proc_usage u;
	uint64_t boot;
	long hz = sysconf(_SC_CLK_TCK);
	if (cdn_proc_usage(getpid(), &u) == 0 && cdn_boot_time(&boot) == 0 && hz > 0)
		m->start_time = (double)boot + (double)u.start_ticks / (double)hz;
	sv->metrics = m;
	if (sv->cfg.metrics_token_file)
		return token_load(m, sv->cfg.metrics_token_file, err);
	return 0;
}

void metrics_close(struct server *sv)
{
	struct metrics *m = sv->metrics;
	if (!m)
		return;
	while (m->wss) {
		struct ws_count *next = m->wss->next;
		free(m->wss);
		m->wss = next;
	}
	pthread_mutex_destroy(&m->mu);
	sodium_memzero(m->token_hash, sizeof(m->token_hash));
	free(m);
	sv->metrics = NULL;
}

/* Called with m->mu held: ws's counts, made in name order when new. */
static struct ws_count *ws_count(struct metrics *m, const char *ws)
{
	struct ws_count **pp = &m->wss;
	int c = 1;
	while (*pp && (c = strcmp((*pp)->ws, ws)) < 0)
		pp = &(*pp)->next;
	if (*pp && c == 0)
		return *pp;
	struct ws_count *w = m->n_wss < METRICS_MAX_WORKSPACES ? calloc(1, sizeof(*w)) : NULL;
	if (!w)
		return &m->other;
	snprintf(w->ws, sizeof(w->ws), "%s", ws);
	w->next = *pp;
	*pp = w;
	m->n_wss++;
	return w;
}

/* The result's egress counts ({"egress": {"allowed", "blocked"}}, run.c);
 * a run that never started has no result. */
static void result_egress(const char *result, uint64_t *allowed, uint64_t *blocked)
{
	*allowed = *blocked = 0;
	json_t *res = result ? json_loads(result, 0, NULL) : NULL;
	json_t *eg = json_object_get(res, "egress");
	json_t *a = json_object_get(eg, "allowed"), *b = json_object_get(eg, "blocked");
	if (json_is_integer(a) && json_integer_value(a) > 0)
		*allowed = (uint64_t)json_integer_value(a);
	if (json_is_integer(b) && json_integer_value(b) > 0)
		*blocked = (uint64_t)json_integer_value(b);
	json_decref(res);
}

void metrics_run_finished(struct server *sv, const struct store_run *r)
{
	struct metrics *m = sv->metrics;
	if (!m || !store_run_status_final(r->status))
		return;
	uint64_t allowed, blocked;
	result_egress(r->result_json, &allowed, &blocked);
	pthread_mutex_lock(&m->mu);
	ws_count(m, r->workspace)->runs[r->status]++;
	/* A run cancelled in the queue never started: it has neither. */
	if (r->started_ms > 0 && r->created_ms > 0 && r->started_ms >= r->created_ms)
		prom_histogram_observe(&m->latency, (double)(r->started_ms - r->created_ms) / 1e3);
	if (r->started_ms > 0 && r->finished_ms >= r->started_ms)
		prom_histogram_observe(&m->duration,
				       (double)(r->finished_ms - r->started_ms) / 1e3);
	m->egress_allowed += allowed;
	m->egress_blocked += blocked;
	pthread_mutex_unlock(&m->mu);
}

/* ------------------------------------------------------------ rendering */

struct ws_now {
	char ws[STORE_MAX_NAME + 1];
	unsigned queued, running;
};

static int ws_now_cmp(const void *a, const void *b)
{
	return strcmp(((const struct ws_now *)a)->ws, ((const struct ws_now *)b)->ws);
}

/* What the dispatcher holds now; *v (sorted by name) only when wanted. */
static void dispatcher_now(struct server *sv, unsigned *queued, unsigned *running,
			   bool *draining, struct ws_now **v, size_t *n)
{
	*n = 0;
	pthread_mutex_lock(&sv->mu);
	*queued = sv->n_queued;
	*running = sv->n_running;
	*draining = sv->draining;
	size_t count = 0;
	for (struct ws_runs *w = sv->wss; w; w = w->next)
		count++;
	if (v && count && (*v = calloc(count, sizeof(**v)))) {
		for (struct ws_runs *w = sv->wss; w; w = w->next, (*n)++) {
			snprintf((*v)[*n].ws, sizeof((*v)[*n].ws), "%s", w->ws);
			(*v)[*n].queued = w->queued;
			(*v)[*n].running = w->running;
		}
	}
	pthread_mutex_unlock(&sv->mu);
	if (v && *v)
		qsort(*v, *n, sizeof(**v), ws_now_cmp);
}

static void gauge(FILE *f, const char *name, const char *help, double v)
{
	prom_family(f, name, "gauge", help);
	prom_sample(f, name, NULL, 0, v);
}

static void runs_total(FILE *f, struct metrics *m, bool per_workspace)
{
	prom_family(f, "cordon_runs_total", "counter",
		    "Runs that ended since this server started, by final status: those it "
		    "dispatched, cancelled in the queue, or could not start.");
	uint64_t sum[N_STATUS] = { 0 };
	bool other_used = false;
	for (int st = RUN_SUCCEEDED; st < N_STATUS; st++)
		other_used |= m->other.runs[st] != 0;
	for (struct ws_count *w = m->wss;; w = w->next) {
		if (!w)
			w = &m->other;
		for (int st = RUN_SUCCEEDED; st < N_STATUS; st++) {
			sum[st] += w->runs[st];
			const struct prom_label l[] = {
				{ "workspace", w->ws },
				{ "status", store_run_status_name((enum store_run_status)st) },
			};
			/* _other only once something was counted there. */
			if (per_workspace && (w != &m->other || other_used))
				prom_sample_u64(f, "cordon_runs_total", l, 2, w->runs[st]);
		}
		if (w == &m->other)
			break;
	}
	if (per_workspace)
		return;
	for (int st = RUN_SUCCEEDED; st < N_STATUS; st++) {
		const struct prom_label l = { "status",
					      store_run_status_name((enum store_run_status)st) };
		prom_sample_u64(f, "cordon_runs_total", &l, 1, sum[st]);
	}
}

static void dispatcher_metrics(FILE *f, struct server *sv, bool per_workspace)
{
	unsigned queued, running;
	bool draining;
	_cleanup_free_ struct ws_now *v = NULL;
	size_t n;
	dispatcher_now(sv, &queued, &running, &draining, per_workspace ? &v : NULL, &n);
	gauge(f, "cordon_queue_depth", "Runs waiting in the queue for a slot.", queued);
	gauge(f, "cordon_queue_limit", "The most runs that may wait (--queue).", sv->queue_max);
	gauge(f, "cordon_runs_running", "Runs running now.", running);
	gauge(f, "cordon_runs_running_limit", "The most runs at once (--concurrency).",
	      sv->concurrency);
	gauge(f, "cordon_draining", "1 while the server drains (SIGTERM): it takes no runs.",
	      draining);
	if (!per_workspace)
		return;
	prom_family(f, "cordon_workspace_queue_depth", "gauge",
		    "Runs of the workspace waiting; a workspace with none waiting or running "
		    "has no series.");
	for (size_t i = 0; i < n; i++) {
		const struct prom_label l = { "workspace", v[i].ws };
		prom_sample_u64(f, "cordon_workspace_queue_depth", &l, 1, v[i].queued);
	}
	prom_family(f, "cordon_workspace_runs_running", "gauge",
		    "Runs of the workspace running; a workspace with none waiting or running "
		    "has no series.");
	for (size_t i = 0; i < n; i++) {
		const struct prom_label l = { "workspace", v[i].ws };
		prom_sample_u64(f, "cordon_workspace_runs_running", &l, 1, v[i].running);
	}
}

/* This process, as the Prometheus client libraries name it. */
static void process_metrics(FILE *f, const struct metrics *m)
{
	struct cdn_proc_usage u;
	long hz = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	if (cdn_proc_usage(getpid(), &u) == 0 && hz > 0 && page > 0) {
		prom_family(f, "process_cpu_seconds_total", "counter",
			    "User and system CPU time spent, in seconds.");
		prom_sample(f, "process_cpu_seconds_total", NULL, 0,
			    (double)(u.utime_ticks + u.stime_ticks) / (double)hz);
		gauge(f, "process_resident_memory_bytes", "Resident memory size in bytes.",
		      (double)u.rss_pages * (double)page);
		gauge(f, "process_virtual_memory_bytes", "Virtual memory size in bytes.",
		      (double)u.vsize_bytes);
	}
	DIR *d = opendir("/proc/self/fd");
	if (d) {
		unsigned long n = 0;
		for (struct dirent *e; (e = readdir(d));)
			if (e->d_name[0] != '.')
				n++;
		closedir(d);
		/* Less the one opendir held while counting. */
		gauge(f, "process_open_fds", "Number of open file descriptors.",
		      (double)(n ? n - 1 : 0));
	}
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		gauge(f, "process_max_fds", "Maximum number of open file descriptors.",
		      rl.rlim_cur == RLIM_INFINITY ? INFINITY : (double)rl.rlim_cur);
	if (m->start_time > 0)
		gauge(f, "process_start_time_seconds",
		      "Start time of the process since unix epoch in seconds.", m->start_time);
}

int metrics_render(struct server *sv, bool per_workspace, char **out, size_t *len)
{
	struct metrics *m = sv->metrics;
	FILE *f = open_memstream(out, len);
	if (!f)
		return -ENOMEM;
	pthread_mutex_lock(&m->mu);
	runs_total(f, m, per_workspace);
	prom_family(f, "cordon_run_duration_seconds", "histogram",
		    "How long runs that started ran, from start to end (the record's times), "
		    "counted when they end.");
	prom_histogram_write(f, "cordon_run_duration_seconds", NULL, 0, &m->duration);
	prom_family(f, "cordon_run_start_latency_seconds", "histogram",
		    "How long runs waited from being created (POST /v1/runs) to starting, "
		    "counted when they end.");
	prom_histogram_write(f, "cordon_run_start_latency_seconds", NULL, 0, &m->latency);
	prom_family(f, "cordon_egress_requests_total", "counter",
		    "Egress requests of runs that ended since this server started, by the "
		    "proxy's decision (the runs' results).");
	const struct prom_label allowed = { "decision", "allowed" };
	const struct prom_label blocked = { "decision", "blocked" };
	prom_sample_u64(f, "cordon_egress_requests_total", &allowed, 1, m->egress_allowed);
	prom_sample_u64(f, "cordon_egress_requests_total", &blocked, 1, m->egress_blocked);
	pthread_mutex_unlock(&m->mu);

	dispatcher_metrics(f, sv, per_workspace);
	unsigned warm;
	uint64_t by_start[2];
	dispatch_pool_counts(sv, &warm, by_start);
	gauge(f, "cordon_warm_pool_size",
	      "Runs' processes started ahead (cordon run --standby), each with a warm sandbox, "
	      "waiting for a run (--warm-pool).",
	      warm);
	prom_family(f, "cordon_runs_dispatched_total", "counter",
		    "Runs handed to a process since this server started: to a standby of the "
		    "warm pool (warm) or to a process started for it (cold).");
	const struct prom_label warm_l = { "start", "warm" }, cold_l = { "start", "cold" };
	prom_sample_u64(f, "cordon_runs_dispatched_total", &warm_l, 1, by_start[1]);
	prom_sample_u64(f, "cordon_runs_dispatched_total", &cold_l, 1, by_start[0]);
	prom_family(f, "cordon_lease_renewals_total", "counter",
		    "Run leases renewed by this process. Always 0 on serve: its own runs need "
		    "no lease, and cordon worker processes renew theirs (their /metrics).");
	prom_sample_u64(f, "cordon_lease_renewals_total", NULL, 0, 0);
	unsigned conns, anonymous, uploads;
	front_counts(sv, &conns, &anonymous, &uploads);
	gauge(f, "cordon_http_connections", "Open connections to the API listener.", conns);
	gauge(f, "cordon_http_connections_anonymous",
	      "Open connections to the API listener that have not shown a valid key.", anonymous);
	gauge(f, "cordon_bundle_uploads", "Bundle uploads in progress.", uploads);
	process_metrics(f, m);
	bool failed = ferror(f);
	if (fclose(f) != 0 || failed) {
		free(*out);
		*out = NULL;
		return -ENOMEM;
	}
	return 0;
}

enum MHD_Result metrics_reply(struct server *sv, struct MHD_Connection *conn, bool per_workspace)
{
	char *text = NULL;
	size_t len = 0;
	if (metrics_render(sv, per_workspace, &text, &len) < 0)
		return api_fail(conn, 500, "internal", "out of memory for the metrics");
	return api_reply_buf(conn, 200, PROM_CONTENT_TYPE, text, len);
}

bool metrics_request_ready(struct MHD_Connection *conn, void *cls, const char *url,
			   const char *method, size_t *upload_size, void **con_cls,
			   enum MHD_Result *ret)
{
	*ret = MHD_YES;
	/* The first call has only the head: answer on the second, so a body
	 * (which nothing here reads) is never taken as the next request. */
	if (!*con_cls) {
		*con_cls = cls;
		return false;
	}
	if (*upload_size) {
		*upload_size = 0;
		return false;
	}
	if (strcmp(url, "/metrics") != 0)
		*ret = api_fail(conn, 404, "not_found", "only /metrics here");
	else if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		*ret = api_fail_allow(conn, "GET, HEAD", "%s is not allowed here", method);
	else
		return true;
	return false;
}

enum MHD_Result metrics_on_request(void *cls, struct MHD_Connection *conn, const char *url,
				   const char *method, const char *version, const char *upload,
				   size_t *upload_size, void **con_cls)
{
	(void)version;
	(void)upload;
	struct server *sv = cls;
	enum MHD_Result ret;
	if (!metrics_request_ready(conn, cls, url, method, upload_size, con_cls, &ret))
		return ret;
	/* With a token, every scrape shows it and sees every series; without,
	 * nobody is told a workspace's name. */
	if (!sv->metrics->has_token)
		return metrics_reply(sv, conn, false);
	if (!token_ok(sv->metrics, api_bearer(conn)))
		return api_fail_header(conn, 401, "unauthorized", "WWW-Authenticate", "Bearer",
				       "send this server's metrics token: Authorization: Bearer "
				       "TOKEN (--metrics-token-file)");
	return metrics_reply(sv, conn, true);
}
