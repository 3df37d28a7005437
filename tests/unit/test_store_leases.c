/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Workers' leases in the store (store.h, docs/deploy.md): labels, claiming
 * the oldest queued run a worker's labels cover, renewing, and expiring
 * into "lost" with an opted-in retry. Run against SQLite and, by
 * tests/pg/with-postgres (the store-pg test), against Postgres; the
 * concurrent cases fork processes that each open the store, as workers
 * and API nodes do.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "base/clock.h"
#include "db_fixture.h"
#include "store/store.h"

#define LEASE_MS 60000

struct fx {
	char tmp[64];
	char state[128];
	struct store *s;
};

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	snprintf(f->tmp, sizeof(f->tmp), "/tmp/cordon-test-leases-XXXXXX");
	if (!f || !mkdtemp(f->tmp) || db_fixture_reset() < 0)
		return -1;
	snprintf(f->state, sizeof(f->state), "%s/state", f->tmp);
	struct cdn_err err = { 0 };
	if (store_open(f->state, &f->s, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	store_close(f->s);
	nftw(f->tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* A run queued for a worker, as serve --dispatch workers makes it. */
static void queue(struct fx *f, const char *id, int64_t created_ms, const char *labels,
		  unsigned retry_max)
{
	struct store_run r = { .status = RUN_CREATED, .exit_code = -1, .created_ms = created_ms,
			       .attempt = 1, .retry_max = retry_max };
	snprintf(r.id, sizeof(r.id), "%s", id);
	snprintf(r.workspace, sizeof(r.workspace), "default");
	snprintf(r.agent, sizeof(r.agent), "bot");
	snprintf(r.caller, sizeof(r.caller), "key:k (test)");
	snprintf(r.labels, sizeof(r.labels), "%s", labels);
	r.input_json = "{\"n\":1}";
	struct cdn_err err = { 0 };
	assert_int_equal(store_run_create(f->s, &r, &err), 0);
}

/* The id a claim by worker with labels gives, or "" for none. */
static const char *claim(struct fx *f, const char *worker, const char *labels, char *out)
{
	struct store_run r;
	struct cdn_err err = { 0 };
	int c = store_run_lease_claim(f->s, worker, labels, LEASE_MS, &r, &err);
	assert_true(c == 0 || c == 1);
	out[0] = '\0';
	if (c == 1) {
		assert_string_equal(r.lease_owner, worker);
		assert_true(r.lease_until_ms > cdn_wall_ms() + LEASE_MS - 5000);
		snprintf(out, STORE_RUN_ID_MAX + 1, "%s", r.id);
		store_run_clear(&r);
	}
	return out;
}

static struct store_run get(struct fx *f, const char *id)
{
	struct store_run r;
	struct cdn_err err = { 0 };
	assert_int_equal(store_run_get(f->s, id, &r, &err), 0);
	return r;
}

/* Moves run id's lease into the past, as a worker that died leaves it. */
static void age_lease(struct fx *f, const char *id, int64_t until_ms)
{
	char sql[256];
	snprintf(sql, sizeof(sql), "UPDATE runs SET lease_until_ms = %lld WHERE id = '%s'",
		 (long long)until_ms, id);
	assert_true(db_fixture_exec(f->state, sql));
}

static void test_labels(void **state)
{
	(void)state;
	char out[STORE_LABELS_JSON_MAX + 1];
	struct cdn_err err = { 0 };
	assert_int_equal(store_labels_parse("{\"zone\":\"b\",\"gpu\":\"a100\"}", out, &err), 0);
	assert_string_equal(out, "{\"gpu\":\"a100\",\"zone\":\"b\"}");
	assert_int_equal(store_labels_parse("{}", out, &err), 0);
	assert_string_equal(out, "");
	assert_int_equal(store_labels_parse(NULL, out, &err), 0);
	assert_int_equal(store_labels_parse("{\"a b\":\"x\"}", out, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "key"));
	assert_int_equal(store_labels_parse("{\"a\":1}", out, &err), -EINVAL);
	assert_int_equal(store_labels_parse("{\"a\":\"-x\"}", out, &err), -EINVAL);
	assert_int_equal(store_labels_parse("[\"a\"]", out, &err), -EINVAL);
	assert_int_equal(store_labels_parse("{\"a\":\"1\",\"a\":\"2\"}", out, &err), -EINVAL);
	char many[1024] = "{";
	for (int i = 0; i <= STORE_MAX_LABELS; i++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many), "%s\"k%d\":\"v\"",
			 i ? "," : "", i);
	strcat(many, "}");
	assert_int_equal(store_labels_parse(many, out, &err), -E2BIG);

	char l[STORE_LABELS_JSON_MAX + 1] = "";
	assert_int_equal(store_labels_add(l, "zone=b", &err), 0);
	assert_int_equal(store_labels_add(l, "gpu=a100", &err), 0);
	assert_int_equal(store_labels_add(l, "zone=c", &err), 0);
	assert_string_equal(l, "{\"gpu\":\"a100\",\"zone\":\"c\"}");
	assert_int_equal(store_labels_add(l, "novalue", &err), -EINVAL);
	assert_int_equal(store_labels_add(l, "k=", &err), -EINVAL);
	assert_string_equal(l, "{\"gpu\":\"a100\",\"zone\":\"c\"}");
	assert_true(store_worker_id_ok("host-1.example-ab12"));
	assert_false(store_worker_id_ok("-x"));
	assert_false(store_worker_id_ok("a b"));
}

static void test_claim_oldest_by_labels(void **state)
{
	struct fx *f = *state;
	char id[STORE_RUN_ID_MAX + 1];
	queue(f, "q-gpu", 1000, "{\"gpu\":\"a100\"}", 0);
	queue(f, "q-new", 3000, "", 0);
	queue(f, "q-old", 2000, "", 0);
	queue(f, "q-two", 4000, "{\"gpu\":\"a100\",\"zone\":\"b\"}", 0);
	/* A run of serve's own queue (a supervisor, no lease): never a worker's. */
	struct store_run own = get(f, "q-new");
	snprintf(own.id, sizeof(own.id), "own");
	own.supervisor_pid = 4242;
	own.created_ms = 1;
	struct cdn_err err = { 0 };
	assert_int_equal(store_run_create(f->s, &own, &err), 0);
	store_run_clear(&own);

	/* Waiting for a worker: the four queued, not serve's own. */
	uint64_t total = 0, in_ws = 0;
	assert_int_equal(store_runs_queued(f->s, "default", &total, &in_ws, &err), 0);
	assert_int_equal(total, 4);
	assert_int_equal(in_ws, 4);
	assert_int_equal(store_runs_queued(f->s, "other", &total, &in_ws, &err), 0);
	assert_int_equal(total, 4);
	assert_int_equal(in_ws, 0);
	/* Without labels: the oldest unlabelled ones, oldest first. */
	assert_string_equal(claim(f, "w-plain", "", id), "q-old");
	assert_string_equal(claim(f, "w-plain", "{}", id), "q-new");
	assert_string_equal(claim(f, "w-plain", "", id), "");
	/* gpu alone covers q-gpu, not q-two, which needs zone too. */
	assert_string_equal(claim(f, "w-gpu", "{\"gpu\":\"a100\"}", id), "q-gpu");
	assert_string_equal(claim(f, "w-gpu", "{\"gpu\":\"a100\"}", id), "");
	assert_string_equal(claim(f, "w-h100", "{\"gpu\":\"h100\",\"zone\":\"b\"}", id), "");
	assert_string_equal(claim(f, "w-both", "{\"zone\":\"b\",\"gpu\":\"a100\",\"x\":\"y\"}", id),
			    "q-two");
	struct store_run r = get(f, "q-two");
	assert_string_equal(r.lease_owner, "w-both");
	assert_int_equal(r.status, RUN_CREATED);
	assert_string_equal(r.input_json, "{\"n\":1}");
	store_run_clear(&r);
	r = get(f, "own");
	assert_string_equal(r.lease_owner, "");
	store_run_clear(&r);
	assert_int_equal(store_runs_queued(f->s, "default", &total, &in_ws, &err), 0);
	assert_int_equal(total, 0);

	/* Bad arguments are refused before any SQL. */
	struct store_run o;
	assert_int_equal(store_run_lease_claim(f->s, "bad id", "", LEASE_MS, &o, &err), -EINVAL);
	assert_int_equal(store_run_lease_claim(f->s, "w", "", 10, &o, &err), -EINVAL);
	assert_int_equal(store_run_lease_claim(f->s, "w", "{\"a\":", LEASE_MS, &o, &err), -EINVAL);
}

/* The run process's claim must be its worker's unexpired lease; a lost
 * record keeps its status. */
static void test_claim_under_lease(void **state)
{
	struct fx *f = *state;
	char id[STORE_RUN_ID_MAX + 1];
	struct cdn_err err = { 0 };
	queue(f, "q-1", 1000, "", 0);
	assert_string_equal(claim(f, "w-1", "", id), "q-1");
	struct store_run r = get(f, "q-1");
	r.supervisor_pid = (int)getpid();
	snprintf(r.lease_owner, sizeof(r.lease_owner), "w-2");
	assert_int_equal(store_run_claim(f->s, &r, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "w-2"));
	snprintf(r.lease_owner, sizeof(r.lease_owner), "%s", "");
	assert_int_equal(store_run_claim(f->s, &r, &err), -ENOENT);
	age_lease(f, "q-1", cdn_wall_ms() - 1);
	snprintf(r.lease_owner, sizeof(r.lease_owner), "w-1");
	assert_int_equal(store_run_claim(f->s, &r, &err), -ENOENT);
	age_lease(f, "q-1", cdn_wall_ms() + LEASE_MS);
	assert_int_equal(store_run_claim(f->s, &r, &err), 0);

	r.status = RUN_RUNNING;
	assert_int_equal(store_run_update(f->s, &r, &err), 0);
	age_lease(f, "q-1", 1000);
	assert_int_equal(store_leases_expire(f->s, cdn_wall_ms(), NULL, NULL, &err), 1);
	r.status = RUN_SUCCEEDED;
	assert_int_equal(store_run_update(f->s, &r, &err), -ESTALE);
	store_run_clear(&r);
	r = get(f, "q-1");
	assert_int_equal(r.status, RUN_LOST);
	store_run_clear(&r);
	snprintf(r.id, sizeof(r.id), "nope");
	snprintf(r.workspace, sizeof(r.workspace), "default");
	snprintf(r.agent, sizeof(r.agent), "bot");
	assert_int_equal(store_run_update(f->s, &r, &err), -ENOENT);
}

static void test_renew(void **state)
{
	struct fx *f = *state;
	char id[STORE_RUN_ID_MAX + 1];
	struct cdn_err err = { 0 };
	queue(f, "a-1", 1000, "", 0);
	queue(f, "a-2", 2000, "", 0);
	queue(f, "b-1", 3000, "", 0);
	claim(f, "w-a", "", id);
	claim(f, "w-a", "", id);
	claim(f, "w-b", "", id);
	/* a-2 ran out before the heartbeat: it is the expiry's now. */
	age_lease(f, "a-2", cdn_wall_ms() - 10);
	age_lease(f, "a-1", cdn_wall_ms() + 5000);
	char(*ids)[STORE_RUN_ID_MAX + 1] = NULL;
	size_t n = 0;
	assert_int_equal(store_lease_renew(f->s, "w-a", LEASE_MS, &ids, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(ids[0], "a-1");
	free(ids);
	struct store_run r = get(f, "a-1");
	assert_true(r.lease_until_ms > cdn_wall_ms() + LEASE_MS - 5000);
	store_run_clear(&r);
	r = get(f, "a-2");
	assert_true(r.lease_until_ms < cdn_wall_ms());
	store_run_clear(&r);
	/* A finished run's lease is not renewed. */
	r = get(f, "b-1");
	r.status = RUN_SUCCEEDED;
	assert_int_equal(store_run_update(f->s, &r, &err), 0);
	store_run_clear(&r);
	assert_int_equal(store_lease_renew(f->s, "w-b", LEASE_MS, &ids, &n, &err), 0);
	assert_int_equal(n, 0);
	assert_null(ids);
}

static void test_expire_and_retry(void **state)
{
	struct fx *f = *state;
	char id[STORE_RUN_ID_MAX + 1];
	struct cdn_err err = { 0 };
	queue(f, "plain", 1000, "", 0);
	queue(f, "retried", 2000, "{\"gpu\":\"a100\"}", 1);
	queue(f, "alive", 3000, "", 0);
	claim(f, "w-dead", "", id);
	claim(f, "w-dead", "{\"gpu\":\"a100\"}", id);
	claim(f, "w-live", "", id);
	/* 2024-05-01T02:58:36.615Z */
	age_lease(f, "plain", 1714532316615);
	age_lease(f, "retried", 1714532316615);
	struct store_run *lost = NULL;
	size_t n = 0;
	assert_int_equal(store_leases_expire(f->s, cdn_wall_ms(), &lost, &n, &err), 2);
	assert_int_equal(n, 2);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(lost[i].status, RUN_LOST);
		assert_string_equal(lost[i].error,
				    "worker w-dead's lease expired at 2024-05-01T02:58:36.615Z");
	}
	store_runs_free(lost, n);
	/* Marked once: a second pass finds nothing. */
	assert_int_equal(store_leases_expire(f->s, cdn_wall_ms(), NULL, NULL, &err), 0);
	struct store_run r = get(f, "plain");
	assert_int_equal(r.status, RUN_LOST);
	assert_int_equal(r.exit_code, 125);
	assert_true(r.finished_ms > 0);
	store_run_clear(&r);
	r = get(f, "alive");
	assert_int_equal(r.status, RUN_CREATED);
	store_run_clear(&r);

	/* "retried" opted in: attempt 2, linked, queued with its labels and
	 * input, for a worker that has them. */
	char next[STORE_RUN_ID_MAX + 1];
	assert_string_equal(claim(f, "w-other", "", id), "");
	assert_string_equal(claim(f, "w-other", "{\"gpu\":\"a100\"}", next), next);
	assert_true(next[0]);
	r = get(f, next);
	assert_int_equal(r.attempt, 2);
	assert_string_equal(r.retry_of, "retried");
	assert_int_equal(r.retry_max, 1);
	assert_string_equal(r.labels, "{\"gpu\":\"a100\"}");
	assert_string_equal(r.input_json, "{\"n\":1}");
	assert_string_equal(r.caller, "key:k (test)");
	store_run_clear(&r);
	/* Its retries are used up: lost again, it is not queued a third time. */
	age_lease(f, next, 1000);
	assert_int_equal(store_leases_expire(f->s, cdn_wall_ms(), NULL, NULL, &err), 1);
	assert_string_equal(claim(f, "w-other", "{\"gpu\":\"a100\"}", id), "");
}

/* Only a run no worker took yet is cancelled in the queue. */
static void test_cancel_queued(void **state)
{
	struct fx *f = *state;
	char id[STORE_RUN_ID_MAX + 1];
	struct cdn_err err = { 0 };
	queue(f, "q-1", 1000, "", 0);
	queue(f, "q-2", 2000, "", 0);
	assert_string_equal(claim(f, "w-1", "", id), "q-1");
	assert_int_equal(store_run_cancel_queued(f->s, "q-1", "cancelled by key k", &err), 0);
	assert_int_equal(store_run_cancel_queued(f->s, "q-2", "cancelled by key k", &err), 1);
	assert_int_equal(store_run_cancel_queued(f->s, "q-2", "cancelled by key k", &err), 0);
	assert_int_equal(store_run_cancel_queued(f->s, "nope", "x", &err), 0);
	struct store_run r = get(f, "q-2");
	assert_int_equal(r.status, RUN_CANCELLED);
	assert_string_equal(r.error, "cancelled by key k");
	assert_true(r.finished_ms > 0);
	store_run_clear(&r);
	r = get(f, "q-1");
	assert_int_equal(r.status, RUN_CREATED);
	store_run_clear(&r);
	assert_string_equal(claim(f, "w-1", "", id), "");
}

/* Several processes (workers) claiming at once: each run goes to one. */
static void test_concurrent_claims(void **state)
{
	struct fx *f = *state;
	enum { RUNS = 24, PROCS = 4 };
	for (int i = 0; i < RUNS; i++) {
		char id[16];
		snprintf(id, sizeof(id), "c-%02d", i);
		queue(f, id, 1000 + i, "", 0);
	}
	int pipes[PROCS][2];
	pid_t pids[PROCS];
	for (int p = 0; p < PROCS; p++) {
		assert_int_equal(pipe(pipes[p]), 0);
		pids[p] = fork();
		assert_true(pids[p] >= 0);
		if (pids[p] == 0) {
			close(pipes[p][0]);
			struct store *s;
			struct cdn_err err = { 0 };
			if (store_open(f->state, &s, &err) < 0)
				_exit(2);
			char worker[16];
			snprintf(worker, sizeof(worker), "w-%d", p);
			for (;;) {
				struct store_run r;
				int c = store_run_lease_claim(s, worker, "", LEASE_MS, &r, &err);
				if (c < 0) {
					fprintf(stderr, "claim: %s\n", err.msg);
					_exit(3);
				}
				if (c == 0)
					break;
				dprintf(pipes[p][1], "%s\n", r.id);
				store_run_clear(&r);
			}
			store_close(s);
			_exit(0);
		}
		close(pipes[p][1]);
	}
	int seen[RUNS] = { 0 };
	int total = 0;
	for (int p = 0; p < PROCS; p++) {
		char buf[4096];
		ssize_t k, len = 0;
		while ((k = read(pipes[p][0], buf + len, sizeof(buf) - 1 - (size_t)len)) > 0)
			len += k;
		buf[len] = '\0';
		close(pipes[p][0]);
		for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
			int i = atoi(line + 2);
			assert_true(i >= 0 && i < RUNS);
			seen[i]++;
			total++;
		}
		int st;
		assert_int_equal(waitpid(pids[p], &st, 0), pids[p]);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	assert_int_equal(total, RUNS);
	for (int i = 0; i < RUNS; i++)
		assert_int_equal(seen[i], 1);
}

/* Several nodes expiring at once: each lost run is marked, and retried,
 * once. */
static void test_concurrent_expiry(void **state)
{
	struct fx *f = *state;
	enum { RUNS = 12, PROCS = 4 };
	char id[STORE_RUN_ID_MAX + 1];
	for (int i = 0; i < RUNS; i++) {
		char rid[16];
		snprintf(rid, sizeof(rid), "e-%02d", i);
		queue(f, rid, 1000 + i, "", 2);
		claim(f, "w-dead", "", id);
	}
	assert_true(db_fixture_exec(f->state, "UPDATE runs SET lease_until_ms = 1000"));
	pid_t pids[PROCS];
	for (int p = 0; p < PROCS; p++) {
		pids[p] = fork();
		assert_true(pids[p] >= 0);
		if (pids[p] == 0) {
			struct store *s;
			struct cdn_err err = { 0 };
			if (store_open(f->state, &s, &err) < 0)
				_exit(200);
			int r = store_leases_expire(s, cdn_wall_ms(), NULL, NULL, &err);
			store_close(s);
			_exit(r < 0 ? 201 : r);
		}
	}
	int marked = 0;
	for (int p = 0; p < PROCS; p++) {
		int st;
		assert_int_equal(waitpid(pids[p], &st, 0), pids[p]);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) <= RUNS);
		marked += WEXITSTATUS(st);
	}
	assert_int_equal(marked, RUNS);
	/* One retry each, no more. */
	int retries = 0;
	while (claim(f, "w-new", "", id)[0]) {
		struct store_run r = get(f, id);
		assert_int_equal(r.attempt, 2);
		assert_true(strncmp(r.retry_of, "e-", 2) == 0);
		store_run_clear(&r);
		retries++;
	}
	assert_int_equal(retries, RUNS);
}

/* Postgres announces a run queued for a worker (NOTIFY), and only such a
 * run; SQLite has no notifications. */
static void test_queue_notify(void **state)
{
	struct fx *f = *state;
	struct cdn_err err = { 0 };
	int fd = -1;
	bool broken = false;
	if (!db_fixture_pg()) {
		assert_int_equal(store_queue_listen(f->s, &fd, &err), -ENOTSUP);
		assert_false(store_queue_notified(f->s, &broken));
		return;
	}
	assert_int_equal(store_queue_listen(f->s, &fd, &err), 0);
	assert_true(fd >= 0);
	/* Another process's store: serve's, making records. */
	struct store *other;
	assert_int_equal(store_open(f->state, &other, &err), 0);
	struct store_run own = { .status = RUN_CREATED, .exit_code = -1, .supervisor_pid = 4242 };
	snprintf(own.id, sizeof(own.id), "own");
	snprintf(own.workspace, sizeof(own.workspace), "default");
	snprintf(own.agent, sizeof(own.agent), "bot");
	assert_int_equal(store_run_create(other, &own, &err), 0);
	struct pollfd p = { .fd = fd, .events = POLLIN };
	if (poll(&p, 1, 300) > 0)
		assert_false(store_queue_notified(f->s, &broken));
	assert_false(broken);
	struct store *mine = f->s;
	f->s = other;
	queue(f, "q-1", 1000, "", 0);
	f->s = mine;
	assert_int_equal(poll(&p, 1, 5000), 1);
	assert_true(store_queue_notified(f->s, &broken));
	assert_false(broken);
	assert_false(store_queue_notified(f->s, &broken));
	store_close(other);
}

/* A running run in ws, as a supervisor records it. */
static void running(struct store *s, const char *id, const char *ws, enum store_run_status st)
{
	struct store_run r = { .status = st, .exit_code = -1, .supervisor_pid = 4242,
			       .created_ms = 1000, .attempt = 1 };
	snprintf(r.id, sizeof(r.id), "%s", id);
	snprintf(r.workspace, sizeof(r.workspace), "%s", ws);
	snprintf(r.agent, sizeof(r.agent), "bot");
	struct cdn_err err = { 0 };
	assert_int_equal(store_run_create(s, &r, &err), 0);
}

/* Run controls (store.h, "Reaching a run on another host"): a run
 * publishes, any node of its workspace decides once, the run is told,
 * takes, answers; cancels likewise; nothing reaches a run that no longer
 * runs, or another workspace's. SQLite carries none. */
static void test_run_controls(void **state)
{
	struct fx *f = *state;
	struct cdn_err err = { 0 };
	struct store_control *v = NULL;
	size_t n = 9;
	char run[STORE_RUN_ID_MAX + 1], id[STORE_CONTROL_ID_MAX + 1], out[256];
	int fd = -1;
	if (!db_fixture_pg()) {
		assert_int_equal(store_control_publish(f->s, "r-1", "default", "apr_1", "{}", 1, 0,
						       &err), -ENOTSUP);
		assert_int_equal(store_controls_list(f->s, "default", &v, &n, &err), -ENOTSUP);
		assert_int_equal(n, 0);
		assert_int_equal(store_control_decide(f->s, "default", "apr_1", true, "k", run, &err),
				 -ENOTSUP);
		assert_int_equal(store_run_listen(f->s, "r-1", &fd, &err), -ENOTSUP);
		assert_int_equal(store_run_events_put(f->s, "r-1", "[]", &err), -ENOTSUP);
		assert_false(store_has_run_controls(f->s));
		return;
	}
	assert_true(store_has_run_controls(f->s));
	/* The worker's run process (f->s) and an API node (node). */
	struct store *node;
	assert_int_equal(store_open(f->state, &node, &err), 0);
	running(node, "r-1", "default", RUN_RUNNING);
	running(node, "r-2", "other", RUN_RUNNING);
	running(node, "r-3", "default", RUN_SUCCEEDED);
	assert_int_equal(store_run_listen(f->s, "r-1", &fd, &err), 0);
	int64_t now = (int64_t)cdn_wall_ms();
	assert_int_equal(store_control_publish(f->s, "r-1", "default", "apr_1",
					       "{\"id\":\"apr_1\",\"method\":\"POST\"}", now,
					       now + 60000, &err), 0);
	assert_int_equal(store_control_publish(f->s, "r-2", "other", "apr_2", "{}", now, 0, &err),
			 0);
	assert_int_equal(store_control_publish(f->s, "r-3", "default", "apr_3", "{}", now, 0, &err),
			 0);
	/* the same id twice is refused: ids are the fleet's */
	assert_int_equal(store_control_publish(f->s, "r-2", "other", "apr_1", "{}", now, 0, &err),
			 -EEXIST);
	/* a bad id or entry never reaches the database */
	assert_int_equal(store_control_publish(f->s, "r-1", "default", "apr 1'", "{}", now, 0,
					       &err), -EINVAL);

	/* listed to its workspace alone, and only while its run runs */
	assert_int_equal(store_controls_list(node, "default", &v, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].id, "apr_1");
	assert_string_equal(v[0].run_id, "r-1");
	assert_string_equal(v[0].entry, "{\"id\":\"apr_1\",\"method\":\"POST\"}");
	assert_true(v[0].deadline_ms == now + 60000);
	store_controls_free(v, n);

	/* another workspace's key cannot decide it; a finished run's is nobody's */
	assert_int_equal(store_control_decide(node, "other", "apr_1", true, "k", run, &err), 0);
	assert_int_equal(store_control_decide(node, "default", "apr_3", true, "k", run, &err), 0);
	assert_int_equal(store_control_decide(node, "default", "nope'; --", true, "k", run, &err),
			 0);
	/* decided once: a second decision, from any node, finds nothing */
	assert_int_equal(store_control_decide(node, "default", "apr_1", true, "key:k (alice)", run,
					      &err), 1);
	assert_string_equal(run, "r-1");
	assert_int_equal(store_control_decide(f->s, "default", "apr_1", false, "k", run, &err), 0);
	assert_int_equal(store_controls_list(node, "default", &v, &n, &err), 0);
	assert_int_equal(n, 0);
	free(v);

	/* the run hears of it, takes it, answers; the node reads the answer */
	struct pollfd p = { .fd = fd, .events = POLLIN };
	bool broken = false;
	assert_int_equal(poll(&p, 1, 5000), 1);
	assert_true(store_queue_notified(f->s, &broken));
	assert_false(broken);
	assert_int_equal(store_control_outcome(node, "apr_1", out, sizeof(out), &err), 0);
	assert_int_equal(store_controls_take(f->s, "r-1", &v, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].id, "apr_1");
	assert_true(v[0].approve && !v[0].cancel);
	assert_string_equal(v[0].by, "key:k (alice)");
	store_controls_free(v, n);
	assert_int_equal(store_control_done(f->s, "apr_1", "", &err), 0);
	assert_int_equal(store_control_outcome(node, "apr_1", out, sizeof(out), &err), 1);
	assert_string_equal(out, "");
	assert_int_equal(store_controls_take(f->s, "r-1", &v, &n, &err), 0);
	assert_int_equal(n, 0);
	free(v);

	/* closed (timed out): no longer listed or decided */
	assert_int_equal(store_control_publish(f->s, "r-1", "default", "apr_4", "{}", now, 0, &err),
			 0);
	assert_int_equal(store_control_close(f->s, "r-1", "apr_4", &err), 0);
	assert_int_equal(store_control_decide(node, "default", "apr_4", false, "k", run, &err), 0);

	/* a cancel: for a running run of the caller's workspace only */
	assert_int_equal(store_control_cancel(node, "other", "r-1", "k", id, &err), 0);
	assert_string_equal(id, "");
	assert_int_equal(store_control_cancel(node, "default", "r-3", "k", id, &err), 0);
	assert_int_equal(store_control_cancel(node, "default", "r-1", "key:k (bob)", id, &err), 1);
	assert_true(strncmp(id, "cancel_", 7) == 0);
	assert_int_equal(poll(&p, 1, 5000), 1);
	assert_true(store_queue_notified(f->s, &broken));
	assert_int_equal(store_controls_take(f->s, "r-1", &v, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_true(v[0].cancel);
	assert_string_equal(v[0].by, "key:k (bob)");
	store_controls_free(v, n);
	assert_int_equal(store_control_done(f->s, id, "the run's sandbox is not running", &err), 0);
	assert_int_equal(store_control_outcome(node, id, out, sizeof(out), &err), 1);
	assert_string_equal(out, "the run's sandbox is not running");

	/* live events: written in batches as they come, a batch sent again
	 * adds nothing, read in order after a seq, bounded */
	struct store_event_line *ev = NULL;
	assert_int_equal(store_run_events_put(f->s, "r-1",
					      "[[1,\"{\\\"seq\\\":1}\"],[2,\"two \\u00e9\\n\"]]", &err),
			 0);
	assert_int_equal(store_run_events_put(f->s, "r-1", "[[2,\"again\"],[3,\"three\"]]", &err),
			 0);
	assert_int_equal(store_run_events_read(node, "r-1", 0, 10, &ev, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_true(ev[0].seq == 1 && strcmp(ev[0].line, "{\"seq\":1}") == 0);
	assert_true(ev[1].seq == 2 && strcmp(ev[1].line, "two \xc3\xa9\n") == 0 && ev[1].len == 7);
	assert_true(ev[2].seq == 3 && strcmp(ev[2].line, "three") == 0);
	store_event_lines_free(ev, n);
	assert_int_equal(store_run_events_read(node, "r-1", 1, 1, &ev, &n, &err), 0);
	assert_true(n == 1 && ev[0].seq == 2);
	store_event_lines_free(ev, n);
	assert_int_equal(store_run_events_read(node, "r-2", 0, 10, &ev, &n, &err), 0);
	assert_int_equal(n, 0);
	char *big = malloc(STORE_EVENTS_BATCH_MAX + 2);
	memset(big, 'x', STORE_EVENTS_BATCH_MAX + 1);
	big[STORE_EVENTS_BATCH_MAX + 1] = '\0';
	assert_int_equal(store_run_events_put(f->s, "r-1", big, &err), -EINVAL);
	free(big);

	/* the run's end takes its rows with it */
	assert_int_equal(store_run_live_clear(f->s, "r-1", &err), 0);
	assert_int_equal(store_control_outcome(node, "apr_1", out, sizeof(out), &err), -ENOENT);
	assert_int_equal(store_run_events_read(node, "r-1", 0, 10, &ev, &n, &err), 0);
	assert_int_equal(n, 0);

	/* and so does a lost run's: expiry clears what it published */
	queue(f, "q-1", 1000, "", 0);
	assert_string_equal(claim(f, "w1", "", run), "q-1");
	assert_int_equal(store_control_publish(f->s, "q-1", "default", "apr_5", "{}", now, 0, &err),
			 0);
	age_lease(f, "q-1", now - 1000);
	assert_int_equal(store_leases_expire(node, (int64_t)cdn_wall_ms(), NULL, NULL, &err), 1);
	assert_int_equal(store_control_outcome(node, "apr_5", out, sizeof(out), &err), -ENOENT);
	store_close(node);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_labels),
		cmocka_unit_test_setup_teardown(test_claim_oldest_by_labels, setup, teardown),
		cmocka_unit_test_setup_teardown(test_claim_under_lease, setup, teardown),
		cmocka_unit_test_setup_teardown(test_renew, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expire_and_retry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_queued, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_claims, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_expiry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_notify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_run_controls, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
