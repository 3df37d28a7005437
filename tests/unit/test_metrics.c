/* SPDX-License-Identifier: Apache-2.0 */
/* serve's metrics (src/serve/metrics.c): what finished runs add, and
 * which scrape names workspaces. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "serve/internal.h"

static struct server *server_new(void)
{
	struct server *sv = calloc(1, sizeof(*sv));
	assert_non_null(sv);
	pthread_mutex_init(&sv->mu, NULL);
	pthread_mutex_init(&sv->lim_mu, NULL);
	sv->queue_max = 64;
	sv->concurrency = 4;
	struct cdn_err err = { 0 };
	assert_int_equal(metrics_open(sv, &err), 0);
	return sv;
}

static void server_free(struct server *sv)
{
	metrics_close(sv);
	pthread_mutex_destroy(&sv->mu);
	pthread_mutex_destroy(&sv->lim_mu);
	free(sv);
}

static char *render(struct server *sv, bool per_workspace)
{
	char *text = NULL;
	size_t len = 0;
	assert_int_equal(metrics_render(sv, per_workspace, &text, &len), 0);
	assert_int_equal(strlen(text), len);
	return text;
}

static void finished(struct server *sv, const char *ws, enum store_run_status st,
		     int64_t created, int64_t started, int64_t ended, const char *result)
{
	struct store_run r = { 0 };
	snprintf(r.workspace, sizeof(r.workspace), "%s", ws);
	r.status = st;
	r.created_ms = created;
	r.started_ms = started;
	r.finished_ms = ended;
	r.result_json = (char *)result;
	metrics_run_finished(sv, &r);
}

static void has(const char *text, const char *line)
{
	const char *at = strstr(text, line);
	if (!at)
		print_error("missing line: %s\nin:\n%s", line, text);
	assert_non_null(at);
}

static void test_runs_counted(void **state)
{
	(void)state;
	struct server *sv = server_new();
	finished(sv, "alpha", RUN_SUCCEEDED, 1000, 1250, 3250,
		 "{\"egress\": {\"allowed\": 3, \"blocked\": 1}}");
	finished(sv, "alpha", RUN_FAILED, 1000, 1010, 1510, "{\"egress\": {\"allowed\": 0}}");
	finished(sv, "beta", RUN_SUCCEEDED, 1000, 2000, 2050, "not json");
	/* Cancelled in the queue: counted, but in neither histogram. */
	finished(sv, "beta", RUN_CANCELLED, 1000, 0, 1500, NULL);
	/* Not final: not a finished run at all. */
	finished(sv, "beta", RUN_RUNNING, 1000, 1100, 0, NULL);

	char *all = render(sv, true);
	has(all, "\ncordon_runs_total{workspace=\"alpha\",status=\"succeeded\"} 1\n");
	has(all, "\ncordon_runs_total{workspace=\"alpha\",status=\"failed\"} 1\n");
	has(all, "\ncordon_runs_total{workspace=\"beta\",status=\"succeeded\"} 1\n");
	has(all, "\ncordon_runs_total{workspace=\"beta\",status=\"cancelled\"} 1\n");
	has(all, "\ncordon_runs_total{workspace=\"beta\",status=\"error\"} 0\n");
	assert_null(strstr(all, "status=\"running\""));
	assert_null(strstr(all, "_other"));
	/* Durations 2 s, 0.5 s and 0.05 s; waits 0.25 s, 0.01 s and 1 s. */
	has(all, "\ncordon_run_duration_seconds_bucket{le=\"0.1\"} 1\n");
	has(all, "\ncordon_run_duration_seconds_bucket{le=\"0.5\"} 2\n");
	has(all, "\ncordon_run_duration_seconds_bucket{le=\"2.5\"} 3\n");
	has(all, "\ncordon_run_duration_seconds_bucket{le=\"+Inf\"} 3\n");
	has(all, "\ncordon_run_duration_seconds_sum 2.55\n");
	has(all, "\ncordon_run_duration_seconds_count 3\n");
	has(all, "\ncordon_run_start_latency_seconds_bucket{le=\"0.01\"} 1\n");
	has(all, "\ncordon_run_start_latency_seconds_bucket{le=\"0.25\"} 2\n");
	has(all, "\ncordon_run_start_latency_seconds_bucket{le=\"1\"} 3\n");
	has(all, "\ncordon_run_start_latency_seconds_sum 1.26\n");
	has(all, "\ncordon_egress_requests_total{decision=\"allowed\"} 3\n");
	has(all, "\ncordon_egress_requests_total{decision=\"blocked\"} 1\n");
	has(all, "\ncordon_queue_limit 64\n");
	has(all, "\ncordon_warm_pool_size 0\n");

	/* Without the workspaces: the same sums, and no name. */
	char *sums = render(sv, false);
	has(sums, "\ncordon_runs_total{status=\"succeeded\"} 2\n");
	has(sums, "\ncordon_runs_total{status=\"cancelled\"} 1\n");
	has(sums, "\ncordon_run_duration_seconds_count 3\n");
	assert_null(strstr(sums, "workspace"));
	assert_null(strstr(sums, "alpha"));
	free(all);
	free(sums);
	server_free(sv);
}

/* What the dispatcher holds is shown per workspace only in the full form. */
static void test_queue_per_workspace(void **state)
{
	(void)state;
	struct server *sv = server_new();
	struct ws_runs w = { .ws = "gamma", .queued = 2, .running = 1 };
	sv->wss = &w;
	sv->n_queued = 2;
	sv->n_running = 1;
	char *all = render(sv, true), *sums = render(sv, false);
	has(all, "\ncordon_queue_depth 2\n");
	has(all, "\ncordon_runs_running 1\n");
	has(all, "\ncordon_workspace_queue_depth{workspace=\"gamma\"} 2\n");
	has(all, "\ncordon_workspace_runs_running{workspace=\"gamma\"} 1\n");
	has(sums, "\ncordon_queue_depth 2\n");
	assert_null(strstr(sums, "gamma"));
	sv->wss = NULL;
	free(all);
	free(sums);
	server_free(sv);
}

/* Past METRICS_MAX_WORKSPACES, runs count under _other: the series stay
 * bounded and the sums stay right. */
static void test_workspaces_bounded(void **state)
{
	(void)state;
	struct server *sv = server_new();
	for (int i = 0; i < METRICS_MAX_WORKSPACES + 5; i++) {
		char ws[32];
		snprintf(ws, sizeof(ws), "w%05d", i);
		finished(sv, ws, RUN_SUCCEEDED, 1, 2, 3, NULL);
	}
	finished(sv, "w00000", RUN_SUCCEEDED, 1, 2, 3, NULL);
	char *all = render(sv, true), *sums = render(sv, false);
	has(all, "\ncordon_runs_total{workspace=\"w00000\",status=\"succeeded\"} 2\n");
	has(all, "\ncordon_runs_total{workspace=\"_other\",status=\"succeeded\"} 5\n");
	assert_null(strstr(all, "workspace=\"w01024\""));
	has(sums, "\ncordon_runs_total{status=\"succeeded\"} 1030\n");
	free(all);
	free(sums);
	server_free(sv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_runs_counted),
		cmocka_unit_test(test_queue_per_workspace),
		cmocka_unit_test(test_workspaces_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
