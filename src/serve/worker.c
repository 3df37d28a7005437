/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cordon worker (docs/deploy.md): takes queued runs from the shared
 * database and runs each as `cordon run --claim ID --lease WORKER`, the
 * same process, sandbox and egress engine as serve's own runs
 * (runproc.c). One thread, one loop:
 *   - reap run processes that ended, and end a record its process left
 *     unfinished;
 *   - every lease/3, renew the leases of its runs (a run whose lease was
 *     not renewed is no longer its own: its process is killed, and the
 *     run is, or will be, marked lost by whoever expires it), and expire
 *     other workers' leases that ran out;
 *   - while it has room, claim the oldest queued run its labels cover;
 *   - wait for a signal, a run announced on the database's queue channel
 *     (Postgres LISTEN/NOTIFY), or the next poll: WORKER_POLL_MS, or
 *     WORKER_POLL_LISTEN_MS while it listens (a notification can be lost
 *     with its connection; the poll is the backstop).
 * SIGTERM or SIGINT: claim nothing more, let the runs finish (up to the
 * drain timeout, then stop them), and exit 0.
 */
#define _GNU_SOURCE
#include "serve/internal.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/clock.h"
#include "base/exe.h"
#include "base/random.h"
#include "base/text.h"
#include "serve/prom.h"

/* How often a worker with room looks for a queued run. */
#define WORKER_POLL_MS 200
#define WORKER_POLL_LISTEN_MS 2000
/* After the drain timeout, how long a stopped run has to end before it is
 * killed. */
#define WORKER_KILL_GRACE_MS 5000

struct wjob {
	char id[STORE_RUN_ID_MAX + 1];
	char ws[STORE_MAX_NAME + 1];
	pid_t pid;
	bool lost;     /* its lease was not renewed: killed */
	bool stopped;  /* the drain timeout stopped it */
	struct wjob *next;
};

struct worker {
	const struct worker_config *cfg;
	/* The counters, under mu: the metrics thread reads them. */
	pthread_mutex_t mu;
	uint64_t ended[RUN_LOST + 1]; /* runs that ended here, by final status */
	struct store *s;
	char id[STORE_WORKER_ID_MAX + 1];
	char exe[PATH_MAX];
	char state[PATH_MAX];
	int64_t lease_ms;
	struct wjob *jobs;
	unsigned n_running;
	uint64_t claimed, renewals, lost, expired;
	int64_t listen_failed_ms; /* when listening failed, to try again; 0: not */
	struct warm_pool pool;	  /* the main loop's; pool_waiting for the metrics, under mu */
	unsigned pool_waiting;
	int64_t renewed_ms;	  /* when the leases were last renewed (or the first claimed) */
};

/* One line on stdout: JSON with --json, else text. */
static void say(struct worker *w, const char *event, const char *run, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void say(struct worker *w, const char *event, const char *run, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (w->cfg->json) {
		json_t *j = json_pack("{s:s, s:s, s:s}", "event", event, "worker", w->id, "message",
				      msg);
		if (run)
			json_object_set_new(j, "run", json_string(run));
		json_dumpf(j, stdout, JSON_COMPACT);
		json_decref(j);
		putchar('\n');
	} else {
		printf("cordon worker %s: %s: %s\n", w->id, event, msg);
	}
	(void)fflush(stdout);
}

/* hostname-RANDOM, in the worker id grammar: which host, and which of
 * its workers. */
static int make_id(char *out, size_t cap)
{
	char host[65] = "";
	if (gethostname(host, sizeof(host) - 1) < 0 || !host[0])
		snprintf(host, sizeof(host), "worker");
	host[32] = '\0';
	for (char *p = host; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' || *p == '_'))
			*p = '-';
	char rnd[24];
	int r = cdn_random_id("", 4, rnd, sizeof(rnd));
	if (r < 0)
		return r;
	snprintf(out, cap, "%s%s-%s", host[0] == '.' || host[0] == '-' || host[0] == '_' ? "w" : "",
		 host, rnd);
	return store_worker_id_ok(out) ? 0 : -EINVAL;
}

/* A run process ended: a record it left unfinished (it died, or failed
 * before it started) is ended here, since the lease still says it is
 * this worker's and nobody else will. */
static void job_ended(struct worker *w, struct wjob *j, int status)
{
	struct store_run r;
	struct cdn_err err = { 0 };
	if (store_run_get(w->s, j->id, &r, &err) < 0) {
		say(w, "error", j->id, "run %s: %s", j->id, err.msg);
		return;
	}
	if (!store_run_status_final(r.status) && !j->lost) {
		bool started = r.status == RUN_RUNNING;
		r.status = j->stopped ? RUN_CANCELLED : RUN_ERROR;
		r.exit_code = 125;
		r.finished_ms = cdn_wall_ms();
		snprintf(r.error, sizeof(r.error), "%s",
			 j->stopped ? "the worker shut down (drain timeout)"
			 : started  ? "the run process died before the run finished"
				    : "the run process exited before it started");
		if (store_run_update(w->s, &r, &err) < 0)
			say(w, "error", j->id, "run %s: %s", j->id, err.msg);
	}
	pthread_mutex_lock(&w->mu);
	/* A run whose lease this worker lost is counted as lost, once. */
	if (!j->lost && store_run_status_final(r.status) && (unsigned)r.status <= RUN_LOST)
		w->ended[r.status]++;
	pthread_mutex_unlock(&w->mu);
	say(w, "finished", j->id, "run %s ended: %s (process %s %d)", j->id,
	    store_run_status_name(r.status), WIFSIGNALED(status) ? "signal" : "exit",
	    WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	store_run_clear(&r);
}

static void reap(struct worker *w)
{
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);
		if (pid <= 0)
			return;
		struct wjob **pp = &w->jobs;
		while (*pp && (*pp)->pid != pid)
			pp = &(*pp)->next;
		struct wjob *j = *pp;
		if (!j) {
			(void)warm_pool_reaped(&w->pool, pid);
			continue;
		}
		*pp = j->next;
		pthread_mutex_lock(&w->mu);
		w->n_running--;
		pthread_mutex_unlock(&w->mu);
		job_ended(w, j, status);
		free(j);
	}
}

/* Run j is no longer under this worker's lease: it is killed at once (its
 * record is, or will be, marked lost by whoever expires it). */
static void lose(struct worker *w, struct wjob *j, const char *why)
{
	if (j->lost)
		return;
	j->lost = true;
	pthread_mutex_lock(&w->mu);
	w->lost++;
	pthread_mutex_unlock(&w->mu);
	kill(j->pid, SIGKILL);
	say(w, "lost", j->id, "run %s: %s; stopped", j->id, why);
}

/* A run not renewed because it has just ended (its record is final, not
 * lost) and its process is on its way out. */
static bool ended_by_itself(struct worker *w, const struct wjob *j)
{
	struct store_run r;
	if (store_run_get(w->s, j->id, &r, NULL) < 0)
		return false;
	bool done = store_run_status_final(r.status) && r.status != RUN_LOST;
	store_run_clear(&r);
	return done;
}

/* Renews this worker's leases; kills the runs whose lease was not
 * renewed; expires others' that ran out. */
static void heartbeat(struct worker *w)
{
	char(*ids)[STORE_RUN_ID_MAX + 1] = NULL;
	size_t n = 0;
	struct cdn_err err = { 0 };
	int64_t now = cdn_wall_ms();
	if (store_lease_renew(w->s, w->id, w->lease_ms, &ids, &n, &err) < 0) {
		say(w, "error", NULL, "renew leases: %s", err.msg);
		/* The database is out of reach. The leases run out at the
		 * last renewal + the lease, and then another node may mark the
		 * runs lost and queue their retries: stop them before the
		 * next heartbeat would come too late, never to run beside a
		 * retry. */
		if (now + w->lease_ms / 3 >= w->renewed_ms + w->lease_ms)
			for (struct wjob *j = w->jobs; j; j = j->next)
				lose(w, j, "its lease could not be renewed (the database is out of reach)");
	} else {
		w->renewed_ms = now;
		pthread_mutex_lock(&w->mu);
		w->renewals += n;
		pthread_mutex_unlock(&w->mu);
		for (struct wjob *j = w->jobs; j; j = j->next) {
			bool renewed = false;
			for (size_t i = 0; i < n && !renewed; i++)
				renewed = strcmp(ids[i], j->id) == 0;
			if (!renewed && !ended_by_itself(w, j))
				/* Another node marks it lost (and maybe queues its
				 * retry): it must not run on beside that. */
				lose(w, j, "its lease was not renewed in time");
		}
	}
	free(ids);
	struct store_run *lost = NULL;
	size_t nl = 0;
	int r = store_leases_expire(w->s, cdn_wall_ms(), &lost, &nl, &err);
	if (r < 0)
		say(w, "error", NULL, "expire leases: %s", err.msg);
	pthread_mutex_lock(&w->mu);
	w->expired += nl;
	pthread_mutex_unlock(&w->mu);
	for (size_t i = 0; i < nl; i++) {
		say(w, "expired", lost[i].id, "run %s marked lost: %s", lost[i].id, lost[i].error);
	}
	store_runs_free(lost, nl);
}

/* The ref `cordon run` resolves: the agent, at the version asked for. */
static void run_ref(const struct store_run *r, char *out, size_t cap)
{
	if (r->agent_version)
		snprintf(out, cap, "%s@%u", r->agent, r->agent_version);
	else
		snprintf(out, cap, "%s", r->agent);
}

/* Claims and starts runs while there is room; false when none waits. */
static bool claim_more(struct worker *w)
{
	const struct worker_config *cfg = w->cfg;
	while (w->n_running < cfg->concurrency) {
		struct store_run r;
		struct cdn_err err = { 0 };
		int c = store_run_lease_claim(w->s, w->id, cfg->labels, w->lease_ms, &r, &err);
		if (c < 0) {
			say(w, "error", NULL, "claim: %s", err.msg);
			return false;
		}
		if (c == 0)
			return false;
		pthread_mutex_lock(&w->mu);
		w->claimed++;
		pthread_mutex_unlock(&w->mu);
		struct wjob *j = calloc(1, sizeof(*j));
		char ref[STORE_MAX_NAME + 16];
		run_ref(&r, ref, sizeof(ref));
		/* A standby of the pool takes it, else a process of its own. */
		int e = !j ? -ENOMEM
			: warm_pool_claim(&w->pool, r.workspace, r.id, ref, w->id, &j->pid)
			    ? 0
			    : runproc_spawn(&w->pool.proc, r.workspace, r.id, ref, w->id, &j->pid);
		if (e < 0) {
			say(w, "error", r.id, "run %s: cannot start %s: %s", r.id, w->exe,
			    strerror(-e));
			r.status = RUN_ERROR;
			r.exit_code = 125;
			r.finished_ms = cdn_wall_ms();
			snprintf(r.error, sizeof(r.error), "the worker could not start the run");
			(void)store_run_update(w->s, &r, NULL);
			free(j);
		} else {
			snprintf(j->id, sizeof(j->id), "%s", r.id);
			snprintf(j->ws, sizeof(j->ws), "%s", r.workspace);
			j->next = w->jobs;
			w->jobs = j;
			pthread_mutex_lock(&w->mu);
			w->n_running++;
			pthread_mutex_unlock(&w->mu);
			say(w, "claimed", r.id, "run %s (workspace %s, agent %s, attempt %u)", r.id,
			    r.workspace, ref, r.attempt ? r.attempt : 1);
		}
		store_run_clear(&r);
	}
	return true;
}

/* Postgres: LISTEN for runs queued, so a new run starts at once rather
 * than at the next poll. SQLite has no notifications: poll. */
static void listen_queue(struct worker *w, int *fd)
{
	struct cdn_err err = { 0 };
	int r = store_queue_listen(w->s, fd, &err);
	w->listen_failed_ms = 0;
	if (r == -ENOTSUP)
		return;
	if (r < 0) {
		say(w, "warning", NULL, "cannot listen for new runs (%s); polling every %d ms",
		    err.msg, WORKER_POLL_MS);
		w->listen_failed_ms = cdn_wall_ms();
		*fd = -1;
	}
}

/* ---------------------------------------------------------------- metrics */

static void counter(FILE *f, const char *name, const char *help, uint64_t v)
{
	prom_family(f, name, "counter", help);
	prom_sample_u64(f, name, NULL, 0, v);
}

static enum MHD_Result worker_metrics(void *cls, struct MHD_Connection *conn, const char *url,
				      const char *method, const char *version, const char *upload,
				      size_t *upload_size, void **con_cls)
{
	(void)version;
	(void)upload;
	struct worker *w = cls;
	enum MHD_Result ret;
	if (!metrics_request_ready(conn, cls, url, method, upload_size, con_cls, &ret))
		return ret;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return api_fail(conn, 500, "internal", "out of memory");
	pthread_mutex_lock(&w->mu);
	prom_family(f, "cordon_runs_total", "counter",
		    "Runs that ended on this worker since it started, by final status (lost: "
		    "its lease was not renewed in time).");
	for (int st = RUN_SUCCEEDED; st <= RUN_LOST; st++) {
		const struct prom_label l = { "status",
					      store_run_status_name((enum store_run_status)st) };
		prom_sample_u64(f, "cordon_runs_total", &l, 1,
				st == RUN_LOST ? w->ended[st] + w->lost : w->ended[st]);
	}
	counter(f, "cordon_lease_renewals_total",
		"Run leases this worker renewed (each run's, every third of --lease).", w->renewals);
	counter(f, "cordon_worker_runs_claimed_total", "Queued runs this worker took.", w->claimed);
	counter(f, "cordon_leases_expired_total",
		"Other workers' runs this worker marked lost, their leases having run out.",
		w->expired);
	prom_family(f, "cordon_worker_runs_running", "gauge", "Runs this worker is running.");
	prom_sample_u64(f, "cordon_worker_runs_running", NULL, 0, w->n_running);
	prom_family(f, "cordon_warm_pool_size", "gauge",
		    "Runs' processes started ahead (cordon run --standby), each with a warm "
		    "sandbox, waiting for a run this worker claims (--warm-pool).");
	prom_sample_u64(f, "cordon_warm_pool_size", NULL, 0, w->pool_waiting);
	pthread_mutex_unlock(&w->mu);
	bool failed = ferror(f);
	failed |= fclose(f) != 0;
	if (failed) {
		free(buf);
		return api_fail(conn, 500, "internal", "out of memory");
	}
	return api_reply_buf(conn, 200, PROM_CONTENT_TYPE, buf, len);
}

static void stop_all(struct worker *w, int sig)
{
	for (struct wjob *j = w->jobs; j; j = j->next) {
		j->stopped = true;
		kill(j->pid, sig);
	}
}

int worker_main(const struct worker_config *cfg, struct cdn_err *err)
{
	struct worker w = { .cfg = cfg, .lease_ms = (int64_t)cfg->lease_s * 1000 };
	int r = make_id(w.id, sizeof(w.id));
	if (r < 0)
		return cdn_err_set(err, -r, "worker id");
	struct sockaddr_in msa;
	if (cfg->metrics_listen &&
	    (r = parse_listen("--metrics-listen", cfg->metrics_listen, &msa, err)) < 0)
		return r;
	pthread_mutex_init(&w.mu, NULL);
	if (cfg->state_dir)
		snprintf(w.state, sizeof(w.state), "%s", cfg->state_dir);
	else if ((r = store_default_dir(w.state, sizeof(w.state), err)) < 0)
		return r;
	if ((r = store_open(w.state, &w.s, err)) < 0)
		return r;
	/* As serve does: a bucket it cannot use stops it now, not a run later. */
	if ((r = store_blobs_check(w.s, err)) < 0) {
		store_close(w.s);
		return r;
	}
	snprintf(w.state, sizeof(w.state), "%s", store_dir(w.s));
	w.pool.who = "cordon worker";
	w.pool.max = cfg->warm_pool;
	if (strcmp(store_backend(w.s), "postgres") != 0)
		say(&w, "warning", NULL,
		    "the database is SQLite in %s: only workers on this host can share it",
		    w.state);
	if (cfg->run_exe)
		snprintf(w.exe, sizeof(w.exe), "%s", cfg->run_exe);
	else if (cdn_sibling_exe("cordon-full", w.exe, sizeof(w.exe)) < 0 &&
		 (r = cdn_self_exe(w.exe, sizeof(w.exe))) < 0) {
		store_close(w.s);
		return cdn_err_set(err, -r, "readlink /proc/self/exe");
	}

	w.pool.proc = (struct runproc){
		.exe = w.exe,
		.state = w.state,
		.hosts_file = cfg->hosts_file,
		.upstream_ca = cfg->upstream_ca,
		.allow_private = cfg->allow_private,
		.n_allow_private = cfg->n_allow_private,
		.max_call_depth = cfg->max_call_depth,
		.max_calls = cfg->max_calls,
	};

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	(void)signal(SIGPIPE, SIG_IGN);
	_cleanup_close_ int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		store_close(w.s);
		return cdn_err_set(err, errno, "signalfd");
	}
	int listen_fd = -1;
	listen_queue(&w, &listen_fd);

	/* Scrapes are short: one polling thread, few connections. */
	struct MHD_Daemon *metrics = NULL;
	if (cfg->metrics_listen &&
	    !(metrics = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0,
					 NULL, NULL, worker_metrics, &w, MHD_OPTION_SOCK_ADDR,
					 &msa, MHD_OPTION_CONNECTION_LIMIT, 32u,
					 MHD_OPTION_PER_IP_CONNECTION_LIMIT, 8u,
					 MHD_OPTION_CONNECTION_TIMEOUT, 10u,
					 MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
					 MHD_OPTION_END))) {
		store_close(w.s);
		return cdn_err_msg(err, EADDRINUSE,
				   "cannot listen on %s for metrics (in use, or not an address of "
				   "this machine)",
				   cfg->metrics_listen);
	}
	say(&w, "started", NULL, "labels %s, concurrency %u, lease %u s, state %s",
	    cfg->labels[0] ? cfg->labels : "{}", cfg->concurrency, cfg->lease_s, w.state);
	int64_t beat_every = w.lease_ms / 3, next_beat = 0, drain_until = 0, kill_at = 0;
	bool draining = false;
	for (;;) {
		reap(&w);
		int64_t now = cdn_wall_ms();
		if (draining)
			warm_pool_close(&w.pool);
		else {
			bool failed;
			struct standby *made =
			    warm_pool_start(&w.pool, warm_pool_want(&w.pool), &failed);
			warm_pool_add(&w.pool, made, false, failed);
		}
		pthread_mutex_lock(&w.mu);
		w.pool_waiting = warm_pool_waiting(&w.pool);
		pthread_mutex_unlock(&w.mu);
		if (draining && !w.n_running && !w.pool.n)
			break;
		if (now >= next_beat) {
			heartbeat(&w);
			next_beat = now + beat_every;
			if (listen_fd < 0 && w.listen_failed_ms && now - w.listen_failed_ms > 10000)
				listen_queue(&w, &listen_fd);
		}
		if (draining && now >= drain_until && !kill_at) {
			say(&w, "draining", NULL, "drain timeout: stopping %u runs", w.n_running);
			stop_all(&w, SIGTERM);
			kill_at = now + WORKER_KILL_GRACE_MS;
		} else if (kill_at && now >= kill_at) {
			stop_all(&w, SIGKILL);
			kill_at = INT64_MAX;
		}
		if (!draining)
			claim_more(&w);
		int64_t wait_ms = listen_fd >= 0 ? WORKER_POLL_LISTEN_MS : WORKER_POLL_MS;
		if (next_beat - now < wait_ms)
			wait_ms = next_beat > now ? next_beat - now : 0;
		struct pollfd pfd[2] = { { .fd = sfd, .events = POLLIN },
					 { .fd = listen_fd, .events = POLLIN } };
		if (poll(pfd, listen_fd >= 0 ? 2 : 1, (int)wait_ms) < 0 && errno != EINTR)
			break;
		if (listen_fd >= 0 && pfd[1].revents) {
			bool broken;
			store_queue_notified(w.s, &broken);
			if (broken) {
				say(&w, "warning", NULL,
				    "the database's notifications stopped; polling every %d ms",
				    WORKER_POLL_MS);
				listen_fd = -1;
				w.listen_failed_ms = cdn_wall_ms();
			}
		}
		int sig = 0;
		struct signalfd_siginfo si;
		while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
			if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
				sig = (int)si.ssi_signo;
		if (sig && !draining) {
			draining = true;
			drain_until = cdn_wall_ms() + (int64_t)cfg->drain_timeout_s * 1000;
			say(&w, "draining", NULL, "claiming nothing more; waiting for %u runs (up to %u s)",
			    w.n_running, cfg->drain_timeout_s);
		}
	}
	say(&w, "stopped", NULL,
	    "claimed %" PRIu64 ", lease renewals %" PRIu64 ", lost %" PRIu64
	    ", others' expired %" PRIu64,
	    w.claimed, w.renewals, w.lost, w.expired);
	if (metrics)
		MHD_stop_daemon(metrics);
	store_close(w.s);
	pthread_mutex_destroy(&w.mu);
	return 0;
}
