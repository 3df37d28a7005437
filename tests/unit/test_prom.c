/* SPDX-License-Identifier: Apache-2.0 */
/* The Prometheus text format's writers (src/serve/prom.c). */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "serve/prom.h"

/* What the writers wrote into an in-memory FILE. */
struct out {
	char *text;
	size_t len;
	FILE *f;
};

static void out_open(struct out *o)
{
	o->text = NULL;
	o->len = 0;
	o->f = open_memstream(&o->text, &o->len);
	assert_non_null(o->f);
}

static void out_is(struct out *o, const char *want)
{
	assert_int_equal(fclose(o->f), 0);
	assert_string_equal(o->text, want);
	free(o->text);
}

static void test_label_escaping(void **state)
{
	(void)state;
	struct out o;
	out_open(&o);
	/* A quote or newline left raw would end the value or the line, and let
	 * a value forge a sample of its own. */
	const struct prom_label l[] = { { "workspace", "a\\b\"c\nd} 1\nx_total 9" },
					{ "status", "ok" } };
	prom_sample_u64(o.f, "x_total", l, 2, 3);
	out_is(&o, "x_total{workspace=\"a\\\\b\\\"c\\nd} 1\\nx_total 9\",status=\"ok\"} 3\n");

	out_open(&o);
	const struct prom_label e = { "workspace", "" };
	prom_sample_u64(o.f, "x", &e, 1, 0);
	prom_sample_u64(o.f, "x", NULL, 0, 0);
	out_is(&o, "x{workspace=\"\"} 0\nx 0\n");
}

static void test_help_escaping(void **state)
{
	(void)state;
	struct out o;
	out_open(&o);
	/* HELP escapes '\' and newline only: a quote stays as it is. */
	prom_family(o.f, "x_total", "counter", "a \"quoted\" back\\slash\nnext line");
	out_is(&o, "# HELP x_total a \"quoted\" back\\\\slash\\nnext line\n"
		   "# TYPE x_total counter\n");
}

static void test_values(void **state)
{
	(void)state;
	struct out o;
	out_open(&o);
	prom_sample(o.f, "a", NULL, 0, 1);
	prom_sample(o.f, "a", NULL, 0, 0.1);
	prom_sample(o.f, "a", NULL, 0, 1.0 / 3);
	prom_sample(o.f, "a", NULL, 0, 1e-9);
	prom_sample(o.f, "a", NULL, 0, -2.5);
	prom_sample(o.f, "a", NULL, 0, INFINITY);
	prom_sample(o.f, "a", NULL, 0, -INFINITY);
	prom_sample(o.f, "a", NULL, 0, NAN);
	/* Counters are exact past 2^53, where a double would round. */
	prom_sample_u64(o.f, "a", NULL, 0, UINT64_MAX);
	out_is(&o, "a 1\na 0.1\na 0.3333333333333333\na 1e-09\na -2.5\na +Inf\na -Inf\na NaN\n"
		   "a 18446744073709551615\n");
}

static void test_histogram(void **state)
{
	(void)state;
	static const double bounds[] = { 0.5, 1, 5 };
	uint64_t counts[4] = { 0 };
	struct prom_histogram h = { bounds, 3, counts, 0, 0 };
	/* A bound is inclusive (le: less than or equal). */
	const double seen[] = { 0.25, 0.5, 1, 2, 4, 10 };
	for (size_t i = 0; i < sizeof(seen) / sizeof(seen[0]); i++)
		prom_histogram_observe(&h, seen[i]);
	assert_int_equal(counts[0], 2);
	assert_int_equal(counts[1], 1);
	assert_int_equal(counts[2], 2);
	assert_int_equal(counts[3], 1);

	struct out o;
	out_open(&o);
	const struct prom_label l = { "w", "x\"y" };
	prom_histogram_write(o.f, "d_seconds", &l, 1, &h);
	/* Cumulative: each bucket holds those below it; +Inf is the count. */
	out_is(&o, "d_seconds_bucket{w=\"x\\\"y\",le=\"0.5\"} 2\n"
		   "d_seconds_bucket{w=\"x\\\"y\",le=\"1\"} 3\n"
		   "d_seconds_bucket{w=\"x\\\"y\",le=\"5\"} 5\n"
		   "d_seconds_bucket{w=\"x\\\"y\",le=\"+Inf\"} 6\n"
		   "d_seconds_sum{w=\"x\\\"y\"} 17.75\n"
		   "d_seconds_count{w=\"x\\\"y\"} 6\n");

	/* Empty, and without labels: every bucket is there, at 0. */
	uint64_t none[2] = { 0 };
	static const double one[] = { 0.1 };
	struct prom_histogram e = { one, 1, none, 0, 0 };
	out_open(&o);
	prom_histogram_write(o.f, "e", NULL, 0, &e);
	out_is(&o, "e_bucket{le=\"0.1\"} 0\ne_bucket{le=\"+Inf\"} 0\ne_sum 0\ne_count 0\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_label_escaping),
		cmocka_unit_test(test_help_escaping),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_histogram),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
