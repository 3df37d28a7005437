/* SPDX-License-Identifier: Apache-2.0 */
/* The Prometheus text format's writers (prom.h). */
#define _GNU_SOURCE
#include "serve/prom.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* HELP text escapes '\' and newline; a label value '"' as well. Anything
 * else goes as it is: a newline or quote left raw would end the line or
 * the value early, and let a value forge a sample of its own. */
static void escaped(FILE *f, const char *s, int quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\\\", f);
		else if (*s == '\n')
			fputs("\\n", f);
		else if (quote && *s == '"')
			fputs("\\\"", f);
		else
			fputc(*s, f);
	}
}

void prom_label_value(FILE *f, const char *value)
{
	escaped(f, value ? value : "", 1);
}

void prom_family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s ", name);
	escaped(f, help, 0);
	fprintf(f, "\n# TYPE %s %s\n", name, type);
}

#define NUMBER_MAX 40

/* v the shortest of %.15g, %.16g and %.17g that reads back as v, or
 * +Inf, -Inf, NaN. */
static const char *number(double v, char buf[NUMBER_MAX])
{
	if (isnan(v))
		return "NaN";
	if (isinf(v))
		return v > 0 ? "+Inf" : "-Inf";
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(buf, NUMBER_MAX, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	return buf;
}

/* name{a="x",b="y"} with extra (one more label, or NULL) last. */
static void series(FILE *f, const char *name, const char *suffix, const struct prom_label *labels,
		   size_t n, const struct prom_label *extra)
{
	fprintf(f, "%s%s", name, suffix);
	if (!n && !extra)
		return;
	fputc('{', f);
	for (size_t i = 0; i <= n; i++) {
		const struct prom_label *l = i < n ? &labels[i] : extra;
		if (!l)
			break;
		fprintf(f, "%s%s=\"", i ? "," : "", l->name);
		prom_label_value(f, l->value);
		fputc('"', f);
	}
	fputc('}', f);
}

void prom_sample(FILE *f, const char *name, const struct prom_label *labels, size_t n_labels,
		 double value)
{
	char buf[NUMBER_MAX];
	series(f, name, "", labels, n_labels, NULL);
	fprintf(f, " %s\n", number(value, buf));
}

void prom_sample_u64(FILE *f, const char *name, const struct prom_label *labels,
		     size_t n_labels, uint64_t value)
{
	series(f, name, "", labels, n_labels, NULL);
	fprintf(f, " %" PRIu64 "\n", value);
}

void prom_histogram_observe(struct prom_histogram *h, double value)
{
	size_t i = 0;
	while (i < h->n_bounds && value > h->bounds[i])
		i++;
	h->counts[i]++;
	h->sum += value;
	h->count++;
}

void prom_histogram_write(FILE *f, const char *name, const struct prom_label *labels,
			  size_t n_labels, const struct prom_histogram *h)
{
	uint64_t cumulative = 0;
	for (size_t i = 0; i <= h->n_bounds; i++) {
		char buf[NUMBER_MAX];
		cumulative += h->counts[i];
		const struct prom_label l = {
			"le", i == h->n_bounds ? "+Inf" : number(h->bounds[i], buf)
		};
		series(f, name, "_bucket", labels, n_labels, &l);
		fprintf(f, " %" PRIu64 "\n", cumulative);
	}
	char buf[NUMBER_MAX];
	series(f, name, "_sum", labels, n_labels, NULL);
	fprintf(f, " %s\n", number(h->sum, buf));
	series(f, name, "_count", labels, n_labels, NULL);
	fprintf(f, " %" PRIu64 "\n", h->count);
}
