/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Prometheus text exposition format, version 0.0.4 (what /metrics
 * answers, docs/metrics.md): "# HELP" and "# TYPE" lines, samples with
 * escaped label values, and histograms as cumulative `_bucket{le=...}`
 * series ending in `le="+Inf"`, then `_sum` and `_count`. The writers only
 * format; the caller holds whatever lock guards the numbers.
 */
#ifndef CORDON_SERVE_PROM_H
#define CORDON_SERVE_PROM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct prom_label {
	const char *name;  /* [a-zA-Z_][a-zA-Z0-9_]*, never "le" */
	const char *value; /* UTF-8; escaped when written */
};

/* "# HELP name help" (help's '\' and newlines escaped) and
 * "# TYPE name type" (counter, gauge, histogram). Once per metric, before
 * its samples. */
void prom_family(FILE *f, const char *name, const char *type, const char *help);

/* name{labels} value. A value is written the shortest way that reads
 * back the same, or +Inf, -Inf, NaN. */
void prom_sample(FILE *f, const char *name, const struct prom_label *labels, size_t n_labels,
		 double value);
/* The same for an integer: counters are written exactly, past 2^53 too. */
void prom_sample_u64(FILE *f, const char *name, const struct prom_label *labels,
		     size_t n_labels, uint64_t value);

/* A label value inside its quotes: '\' as "\\", '"' as "\"" and a
 * newline as "\n", the three escapes the format has. */
void prom_label_value(FILE *f, const char *value);

/*
 * A histogram: counts[i] is the number of observations in
 * (bounds[i-1], bounds[i]] (each bucket on its own, not cumulative), and
 * counts[n_bounds] those above the last bound. bounds ascend and hold no
 * +Inf; counts has n_bounds + 1 entries.
 */
struct prom_histogram {
	const double *bounds;
	size_t n_bounds;
	uint64_t *counts;
	double sum;
	uint64_t count;
};

void prom_histogram_observe(struct prom_histogram *h, double value);
/* name_bucket{labels,le="B"} for each bound and "+Inf", cumulative, then
 * name_sum and name_count. */
void prom_histogram_write(FILE *f, const char *name, const struct prom_label *labels,
			  size_t n_labels, const struct prom_histogram *h);

#endif
