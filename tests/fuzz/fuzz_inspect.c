/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the credential inspector.
 *
 * Input: [len1][len2][seed] secret1 secret2 stream. The stream is scanned
 * whole, in pseudo-random pieces (sizes from the seed and the input), and
 * byte by byte; all three must give the same findings in the same order.
 * A stream that holds a secret's raw value must report that secret (unless
 * the findings are full), and findings only ever carry known names.
 */
#define _GNU_SOURCE /* memmem */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "egress/inspect.h"

#define SECRET_SPAN 56 /* secret lengths are 8 .. 8 + SECRET_SPAN - 1 */

static const char *const secret_names[] = { "alpha", "beta" };

static void same(const struct inspect_stream *a, const struct inspect_stream *b)
{
	if (a->n_findings != b->n_findings)
		abort();
	for (size_t i = 0; i < a->n_findings; i++)
		if (a->findings[i].is_secret != b->findings[i].is_secret ||
		    strcmp(a->findings[i].name, b->findings[i].name) != 0)
			abort();
}

static bool known_name(const struct inspect_finding *f)
{
	if (f->is_secret)
		return strcmp(f->name, "alpha") == 0 || strcmp(f->name, "beta") == 0;
	for (const char *const *n = inspect_pattern_names(); *n; n++)
		if (strcmp(*n, f->name) == 0)
			return true;
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 3)
		return 0;
	struct inspect_secret sec[2];
	size_t n_sec = 0, off = 3;
	for (size_t i = 0; i < 2; i++) {
		size_t len = INSPECT_MIN_SECRET_LEN + data[i] % SECRET_SPAN;
		if (off + len > size)
			break;
		sec[n_sec] = (struct inspect_secret){ secret_names[i], (const char *)data + off, len };
		n_sec++;
		off += len;
	}
	struct inspector *in = NULL;
	if (inspector_new(sec, n_sec, &in, NULL) != 0)
		abort();
	const char *stream = (const char *)data + off;
	size_t n = size - off;

	struct inspect_stream whole, split, bytes;
	inspect_stream_init(&whole, in);
	inspect_feed(&whole, stream, n);

	uint64_t x = 0x9E3779B97F4A7C15ull ^ data[2] ^ ((uint64_t)size << 32);
	inspect_stream_init(&split, in);
	for (size_t i = 0; i < n;) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		/* Mostly small pieces, sometimes around the carried tail size. */
		size_t piece = (x & 3) ? x % 17 : x % (2 * INSPECT_OVERLAP + 3);
		if (piece > n - i)
			piece = n - i;
		inspect_feed(&split, stream + i, piece);
		i += piece;
	}
	same(&whole, &split);

	if (n <= 256) { /* byte by byte: a rescan of the tail per byte */
		inspect_stream_init(&bytes, in);
		for (size_t i = 0; i < n; i++)
			inspect_feed(&bytes, stream + i, 1);
		same(&whole, &bytes);
	}

	for (size_t i = 0; i < whole.n_findings; i++)
		if (!known_name(&whole.findings[i]))
			abort();
	if (whole.n_findings < INSPECT_MAX_FINDINGS) {
		for (size_t i = 0; i < n_sec; i++) {
			if (!memmem(stream, n, sec[i].value, sec[i].len))
				continue;
			bool found = false;
			for (size_t f = 0; f < whole.n_findings; f++)
				found |= whole.findings[f].is_secret &&
					 strcmp(whole.findings[f].name, sec[i].name) == 0;
			if (!found)
				abort();
		}
	}
	inspector_free(in);
	return 0;
}
