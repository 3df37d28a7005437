/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for streaming redaction.
 *
 * Input: [mode] [len1] [len2] [len3] [seed] value1 value2 value3 stream.
 * mode picks 1-3 secrets and an alphabet that the value and stream bytes
 * are folded into (small alphabets make values overlap, share prefixes and
 * repeat). The stream is redacted whole, in pseudo-random pieces and byte
 * by byte; all must give the same bytes. Then:
 *  - no value, nor its base64 form, survives in the output. Values never
 *    hold '[' or ']', so an occurrence in the output cannot straddle a
 *    marker; a value that is a substring of a marker's text ("DACT") is
 *    skipped, since the marker itself legitimately shows it;
 *  - in the "abc" alphabets, where no base64 needle can occur, the output
 *    equals a plain reference implementation of the rule in redact.h.
 */
#define _GNU_SOURCE /* memmem */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vault/redact.h"

#define HEADER	      5
#define MAX_SECRETS   3
#define VALUE_SPAN    28 /* value lengths are REDACT_MIN_LEN .. REDACT_MIN_LEN + 27 */
#define B64_MIN_VALUE 8
#define BYTEWISE_MAX  512 /* byte-by-byte feeding costs one call per byte */

static const char *const names[MAX_SECRETS] = { "S0", "S1", "S2" };
static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

struct out {
	char *p;
	size_t len, cap;
};

static void out_add(void *ctx, const char *p, size_t n)
{
	struct out *o = ctx;
	if (n == 0)
		abort(); /* never called with nothing */
	if (o->len + n > o->cap) {
		o->cap = 2 * (o->len + n);
		o->p = realloc(o->p, o->cap);
		if (!o->p)
			abort();
	}
	memcpy(o->p + o->len, p, n);
	o->len += n;
}

static bool same(const struct out *a, const char *p, size_t n)
{
	return a->len == n && (n == 0 || memcmp(a->p, p, n) == 0);
}

/* mode & 3: 0 "ab", 1 "abc", 2 lowercase and digits, 3 any byte. */
static char fold(uint8_t b, unsigned mode)
{
	switch (mode & 3) {
	case 0: return "ab"[b % 2];
	case 1: return "abc"[b % 3];
	case 2: return "abcdefghijklmnopqrstuvwxyz0123456789"[b % 36];
	default: return (char)b;
	}
}

/* Stream bytes: mostly folded, and a few raw high bytes as noise that no
 * folded value holds. */
static char fold_stream(uint8_t b, unsigned mode)
{
	if ((mode & 3) != 3 && b >= 0xf8)
		return (char)b;
	return fold(b, mode);
}

/* The standard base64 characters fixed by the value alone at alignment 0:
 * the full groups, then 1 or 2 characters of a partial one. */
static size_t b64_head(const uint8_t *v, size_t len, char *out)
{
	size_t o = 0, i = 0;
	for (; i + 3 <= len; i += 3) {
		uint32_t w = (uint32_t)v[i] << 16 | (uint32_t)v[i + 1] << 8 | v[i + 2];
		out[o++] = B64[w >> 18 & 63];
		out[o++] = B64[w >> 12 & 63];
		out[o++] = B64[w >> 6 & 63];
		out[o++] = B64[w & 63];
	}
	if (len - i >= 1)
		out[o++] = B64[v[i] >> 2];
	if (len - i == 2)
		out[o++] = B64[(v[i] & 3) << 4 | v[i + 1] >> 4];
	return o;
}

static void reference(const struct redact_secret *sec, size_t nsec, const char *s, size_t n,
		      struct out *o)
{
	size_t i = 0;
	while (i < n) {
		size_t best = nsec;
		for (size_t k = 0; k < nsec; k++)
			if (sec[k].len <= n - i && memcmp(s + i, sec[k].value, sec[k].len) == 0 &&
			    (best == nsec || sec[k].len > sec[best].len))
				best = k;
		if (best == nsec) {
			out_add(o, s + i, 1);
			i++;
			continue;
		}
		char m[32];
		int ml = snprintf(m, sizeof(m), "[REDACTED:%s]", sec[best].name);
		out_add(o, m, (size_t)ml);
		i += sec[best].len;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < HEADER)
		return 0;
	unsigned mode = data[0] >> 2;
	size_t nsec = 1 + data[0] % MAX_SECRETS;
	struct redact_secret sec[MAX_SECRETS];
	char values[MAX_SECRETS][REDACT_MIN_LEN + VALUE_SPAN];
	size_t off = HEADER;
	for (size_t k = 0; k < nsec; k++) {
		size_t len = REDACT_MIN_LEN + data[1 + k] % VALUE_SPAN;
		if (off + len > size)
			return 0;
		for (size_t i = 0; i < len; i++) {
			char c = fold(data[off + i], mode);
			values[k][i] = (c == '[' || c == ']') ? '.' : c;
		}
		sec[k] = (struct redact_secret){ names[k], values[k], len };
		off += len;
	}
	size_t n = size - off;
	char *stream = malloc(n ? n : 1);
	if (!stream)
		return 0;
	for (size_t i = 0; i < n; i++)
		stream[i] = fold_stream(data[off + i], mode);

	struct redactor *r = NULL;
	if (redactor_new(sec, nsec, &r, NULL) != 0)
		abort();

	size_t whole_len = 0;
	char *whole = redact_string(r, stream, n, &whole_len);
	if (!whole)
		abort();

	struct redact_stream st;
	struct out split = { 0 }, bytes = { 0 }, ref = { 0 };
	if (redact_stream_init(&st, r, NULL) != 0)
		abort();
	uint64_t x = 0x9E3779B97F4A7C15ull ^ data[4] ^ ((uint64_t)size << 32);
	for (size_t i = 0; i < n;) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		/* Mostly small pieces, some around the hold size, some empty. */
		size_t piece = (x & 3) ? x % 9 : x % 80;
		if (piece > n - i)
			piece = n - i;
		redact_feed(&st, stream + i, piece, out_add, &split);
		i += piece;
	}
	redact_finish(&st, out_add, &split);
	if (!same(&split, whole, whole_len))
		abort();

	if (n <= BYTEWISE_MAX) {
		for (size_t i = 0; i < n; i++)
			redact_feed(&st, stream + i, 1, out_add, &bytes);
		redact_finish(&st, out_add, &bytes);
		if (!same(&bytes, whole, whole_len))
			abort();
	}
	redact_stream_free(&st);

	for (size_t k = 0; k < nsec; k++) {
		bool in_marker = false;
		for (size_t m = 0; m < nsec; m++) {
			char marker[32];
			int ml = snprintf(marker, sizeof(marker), "[REDACTED:%s]", names[m]);
			in_marker |= memmem(marker, (size_t)ml, sec[k].value, sec[k].len) != NULL;
		}
		if (!in_marker && memmem(whole, whole_len, sec[k].value, sec[k].len))
			abort();
		if (sec[k].len >= B64_MIN_VALUE) {
			char enc[2 * (REDACT_MIN_LEN + VALUE_SPAN)];
			size_t el = b64_head((const uint8_t *)sec[k].value, sec[k].len, enc);
			if (memmem(whole, whole_len, enc, el))
				abort();
		}
	}

	if ((mode & 3) <= 1) {
		reference(sec, nsec, stream, n, &ref);
		if (!same(&ref, whole, whole_len))
			abort();
	}

	free(split.p);
	free(bytes.p);
	free(ref.p);
	free(whole);
	free(stream);
	redactor_free(r);
	return 0;
}
