/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench/spawn_timer: runs several commands round-robin (interleaved, so
 * the machine's state drifts equally for all of them), times each run from
 * posix_spawn to waitpid, and prints the median, p10 and p90 of each plus
 * its ratio to the first case.
 *
 * usage: spawn_timer RUNS WARMUP NAME CMD... [';' NAME CMD...]...
 * Output, one line per case:  NAME median_ms p10_ms p90_ms
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

struct bench_case {
	const char *name;
	char **argv;
	double *ms;
};

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

static double run_once(char **argv, posix_spawn_file_actions_t *fa)
{
	pid_t pid;
	double t0 = now_ms();
	if (posix_spawn(&pid, argv[0], fa, NULL, argv, environ) != 0) {
		perror(argv[0]);
		exit(1);
	}
	int st;
	waitpid(pid, &st, 0);
	double t = now_ms() - t0;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "spawn_timer: %s failed (status %d)\n", argv[0], st);
		exit(1);
	}
	return t;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: spawn_timer RUNS WARMUP NAME CMD... [';' NAME CMD...]...\n");
		return 2;
	}
	int runs = atoi(argv[1]), warm = atoi(argv[2]);
	struct bench_case cases[8];
	int n = 0;
	for (int i = 3; i < argc && n < 8;) {
		cases[n].name = argv[i++];
		cases[n].argv = &argv[i];
		while (i < argc && strcmp(argv[i], ";") != 0)
			i++;
		if (i < argc)
			argv[i++] = NULL;
		cases[n].ms = calloc((size_t)runs, sizeof(double));
		n++;
	}
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	for (int w = 0; w < warm; w++)
		for (int c = 0; c < n; c++)
			run_once(cases[c].argv, &fa);
	for (int r = 0; r < runs; r++)
		for (int c = 0; c < n; c++)
			cases[c].ms[r] = run_once(cases[c].argv, &fa);
	for (int c = 0; c < n; c++) {
		qsort(cases[c].ms, (size_t)runs, sizeof(double), cmp);
		printf("%s %.3f %.3f %.3f\n", cases[c].name, cases[c].ms[runs / 2],
		       cases[c].ms[runs / 10], cases[c].ms[runs * 9 / 10]);
		free(cases[c].ms);
	}
	return 0;
}
