/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench/run_timer: times whole runs of several commands, like spawn_timer,
 * but counts failures instead of stopping at the first one, and measures
 * throughput with several workers at once.
 *
 *   run_timer lat RUNS WARMUP NAME CMD... [';' NAME CMD...]...
 *     Runs the cases interleaved, in rounds of one run each in a new random
 *     order, each run timed from posix_spawn to waitpid. One line per case:
 *       NAME median_ms p10_ms p90_ms failures
 *
 *   run_timer tput TOTAL WORKERS CHUNKS NAME CMD... [';' NAME CMD...]...
 *     Each case runs TOTAL times with WORKERS runs in flight, in CHUNKS
 *     chunks that alternate between the cases (so drift hits all of them
 *     alike); a case's wall time is the sum of its chunks'. One line per case:
 *       NAME runs failures wall_ms runs_per_s median_ms p90_ms
 *
 * A run fails when it does not exit with status 0 (warm-up runs count
 * too); the first failure of each case is reported on stderr. The exit
 * status is 0 when every run of every case succeeded, 1 otherwise.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define MAX_CASES   8
#define MAX_WORKERS 256

struct bench_case {
	const char *name;
	char **argv;
	double *ms; /* one per timed run */
	int n_ms;
	int fails;
	double wall_ms;
};

static posix_spawn_file_actions_t fa;

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static pid_t start(struct bench_case *c)
{
	pid_t pid;
	int e = posix_spawn(&pid, c->argv[0], &fa, NULL, c->argv, environ);
	if (e != 0) {
		fprintf(stderr, "run_timer: %s: %s\n", c->argv[0], strerror(e));
		exit(2);
	}
	return pid;
}

static void check(struct bench_case *c, int st)
{
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return;
	if (c->fails++ == 0) {
		if (WIFEXITED(st))
			fprintf(stderr, "run_timer: %s: a run exited with %d\n", c->name,
				WEXITSTATUS(st));
		else
			fprintf(stderr, "run_timer: %s: a run was killed by signal %d\n", c->name,
				WTERMSIG(st));
	}
}

static double run_once(struct bench_case *c)
{
	double t0 = now_ms();
	pid_t pid = start(c);
	int st;
	while (waitpid(pid, &st, 0) < 0)
		;
	double t = now_ms() - t0;
	check(c, st);
	return t;
}

/* n runs of c with up to w in flight; per-run times go to c->ms. */
static void run_chunk(struct bench_case *c, int n, int w)
{
	pid_t pids[MAX_WORKERS];
	double t0s[MAX_WORKERS];
	int live = 0, started = 0;
	double t0 = now_ms();
	while (started < n || live > 0) {
		while (live < w && started < n) {
			t0s[live] = now_ms();
			pids[live++] = start(c);
			started++;
		}
		int st;
		pid_t p = waitpid(-1, &st, 0);
		if (p < 0)
			continue;
		double t = now_ms();
		for (int i = 0; i < live; i++) {
			if (pids[i] != p)
				continue;
			c->ms[c->n_ms++] = t - t0s[i];
			check(c, st);
			pids[i] = pids[live - 1];
			t0s[i] = t0s[live - 1];
			live--;
			break;
		}
	}
	c->wall_ms += now_ms() - t0;
}

static int parse_cases(int argc, char **argv, int i, struct bench_case *cases, int per_case)
{
	int n = 0;
	while (i < argc) {
		if (n == MAX_CASES) {
			fprintf(stderr, "run_timer: at most %d cases\n", MAX_CASES);
			exit(2);
		}
		cases[n].name = argv[i++];
		cases[n].argv = &argv[i];
		while (i < argc && strcmp(argv[i], ";") != 0)
			i++;
		if (i < argc)
			argv[i++] = NULL;
		if (!cases[n].argv[0]) {
			fprintf(stderr, "run_timer: case %s has no command\n", cases[n].name);
			exit(2);
		}
		cases[n].ms = calloc((size_t)per_case, sizeof(double));
		if (!cases[n].ms) {
			perror("run_timer");
			exit(2);
		}
		n++;
	}
	return n;
}

static double pct(const struct bench_case *c, int p)
{
	if (c->n_ms == 0)
		return 0;
	int i = c->n_ms * p / 100; /* as spawn_timer: ms[runs / 2], ms[runs * 9 / 10] */
	return c->ms[i < c->n_ms ? i : c->n_ms - 1];
}

int main(int argc, char **argv)
{
	const char *usage = "usage: run_timer lat RUNS WARMUP NAME CMD... [';' NAME CMD...]...\n"
			    "       run_timer tput TOTAL WORKERS CHUNKS NAME CMD... [';' ...]...\n";
	struct bench_case cases[MAX_CASES] = {0};
	int n, failed = 0;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);

	if (argc >= 6 && strcmp(argv[1], "lat") == 0) {
		int runs = atoi(argv[2]), warm = atoi(argv[3]);
		if (runs < 1 || warm < 0) {
			fputs(usage, stderr);
			return 2;
		}
		n = parse_cases(argc, argv, 4, cases, runs);
		for (int w = 0; w < warm; w++)
			for (int c = 0; c < n; c++)
				(void)run_once(&cases[c]);
		/* Each round runs the cases in a new random order: what ran just
		 * before a case changes its time (a cgroup write soon after
		 * another one is faster, for one), and a fixed or rotated order
		 * would give each case the same neighbour every time. */
		int perm[MAX_CASES];
		uint64_t rng = 0x9e3779b97f4a7c15ull; /* fixed seed: runs are comparable */
		for (int r = 0; r < runs; r++) {
			for (int i = 0; i < n; i++)
				perm[i] = i;
			for (int i = n - 1; i > 0; i--) {
				rng ^= rng << 13; /* xorshift64 */
				rng ^= rng >> 7;
				rng ^= rng << 17;
				int j = (int)(rng % (uint64_t)(i + 1)), t = perm[i];
				perm[i] = perm[j];
				perm[j] = t;
			}
			for (int i = 0; i < n; i++) {
				struct bench_case *c = &cases[perm[i]];
				c->ms[c->n_ms++] = run_once(c);
			}
		}
		for (int c = 0; c < n; c++) {
			qsort(cases[c].ms, (size_t)cases[c].n_ms, sizeof(double), cmp);
			printf("%s %.3f %.3f %.3f %d\n", cases[c].name, pct(&cases[c], 50),
			       pct(&cases[c], 10), pct(&cases[c], 90), cases[c].fails);
			failed |= cases[c].fails != 0;
		}
	} else if (argc >= 7 && strcmp(argv[1], "tput") == 0) {
		int total = atoi(argv[2]), workers = atoi(argv[3]), chunks = atoi(argv[4]);
		if (total < 1 || workers < 1 || workers > MAX_WORKERS || chunks < 1) {
			fputs(usage, stderr);
			return 2;
		}
		if (chunks > total)
			chunks = total;
		n = parse_cases(argc, argv, 5, cases, total);
		for (int k = 0; k < chunks; k++) {
			/* chunk k of TOTAL, sizes differing by at most one */
			int size = total * (k + 1) / chunks - total * k / chunks;
			for (int c = 0; c < n; c++)
				run_chunk(&cases[c], size, workers);
		}
		for (int c = 0; c < n; c++) {
			qsort(cases[c].ms, (size_t)cases[c].n_ms, sizeof(double), cmp);
			printf("%s %d %d %.1f %.2f %.3f %.3f\n", cases[c].name, cases[c].n_ms,
			       cases[c].fails, cases[c].wall_ms,
			       cases[c].n_ms / (cases[c].wall_ms / 1e3), pct(&cases[c], 50),
			       pct(&cases[c], 90));
			failed |= cases[c].fails != 0;
		}
	} else {
		fputs(usage, stderr);
		return 2;
	}
	return failed;
}
