/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Redaction of secret values: whole strings, streams cut every way, and a
 * reference implementation written apart from the real one.
 */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "vault/redact.h"

/* ---------------------------------------------------------------------------
 * Helpers
 */

struct buf {
	char *p;
	size_t len, cap;
};

static void buf_add(void *ctx, const char *p, size_t n)
{
	struct buf *b = ctx;
	assert_true(n > 0); /* the redactor never calls out with nothing */
	if (b->len + n + 1 > b->cap) {
		b->cap = 2 * (b->len + n + 1);
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static struct redactor *new_redactor(const struct redact_secret *sec, size_t n)
{
	struct redactor *r = NULL;
	struct cdn_err err = { 0 };
	if (redactor_new(sec, n, &r, &err) != 0)
		fail_msg("redactor_new: %s", err.msg);
	assert_non_null(r);
	return r;
}

/* The input in pieces: cuts[] are the offsets where a new piece starts. */
static struct buf stream_cut(const struct redactor *r, const char *s, size_t n, const size_t *cuts,
			     size_t ncuts)
{
	struct redact_stream st;
	struct buf b = { 0 };
	assert_int_equal(redact_stream_init(&st, r, NULL), 0);
	size_t at = 0;
	for (size_t i = 0; i <= ncuts; i++) {
		size_t end = i < ncuts ? cuts[i] : n;
		redact_feed(&st, s + at, end - at, buf_add, &b);
		at = end;
	}
	redact_finish(&st, buf_add, &b);
	redact_stream_free(&st);
	return b;
}

static struct buf whole(const struct redactor *r, const char *s, size_t n)
{
	size_t len = 0;
	char *p = redact_string(r, s, n, &len);
	assert_non_null(p);
	assert_int_equal(p[len], '\0');
	return (struct buf){ p, len, len + 1 };
}

static void assert_buf(const struct buf *b, const char *want)
{
	if (b->len != strlen(want) || (b->len && memcmp(b->p, want, b->len) != 0))
		fail_msg("got \"%.*s\" (%zu bytes), want \"%s\"", (int)b->len, b->p ? b->p : "",
			 b->len, want);
}

/* Redacts s whole, in every two-piece and three-piece split, and byte by
 * byte, checks that all agree, and returns the whole result. */
static struct buf redact_all_ways(const struct redactor *r, const char *s, size_t n)
{
	struct buf w = whole(r, s, n);
	for (size_t i = 0; i <= n; i++) {
		for (size_t j = i; j <= n; j++) {
			size_t cuts[2] = { i, j };
			struct buf b = stream_cut(r, s, n, cuts, 2);
			if (b.len != w.len || (w.len && memcmp(b.p, w.p, w.len) != 0))
				fail_msg("cut at %zu and %zu: \"%.*s\" but whole: \"%.*s\"", i, j,
					 (int)b.len, b.p ? b.p : "", (int)w.len, w.p);
			free(b.p);
		}
	}
	size_t *cuts = malloc((n + 1) * sizeof(*cuts));
	for (size_t i = 0; i < n; i++)
		cuts[i] = i;
	struct buf b = stream_cut(r, s, n, cuts, n);
	assert_int_equal(b.len, w.len);
	assert_memory_equal(b.p ? b.p : "", w.p, w.len);
	free(b.p);
	free(cuts);
	return w;
}

static void check(const struct redact_secret *sec, size_t nsec, const char *in, const char *want)
{
	struct redactor *r = new_redactor(sec, nsec);
	struct buf w = redact_all_ways(r, in, strlen(in));
	assert_buf(&w, want);
	free(w.p);
	redactor_free(r);
}

#define SECRET(name, value) ((struct redact_secret){ (name), (value), sizeof(value) - 1 })

/* ---------------------------------------------------------------------------
 * Reference: the rule from redact.h, as plainly as it can be written (raw
 * values only; callers keep their input free of base64 lookalikes).
 */

static struct buf reference(const struct redact_secret *sec, size_t nsec, const char *s, size_t n)
{
	struct buf b = { 0 };
	buf_add(&b, "x", 1);
	b.len = 0;
	size_t i = 0;
	while (i < n) {
		size_t best = nsec;
		for (size_t k = 0; k < nsec; k++) {
			if (sec[k].len > n - i || memcmp(s + i, sec[k].value, sec[k].len) != 0)
				continue;
			if (best == nsec || sec[k].len > sec[best].len)
				best = k;
		}
		if (best == nsec) {
			buf_add(&b, s + i, 1);
			i++;
			continue;
		}
		char m[128];
		int ml = snprintf(m, sizeof(m), "[REDACTED:%s]", sec[best].name);
		buf_add(&b, m, (size_t)ml);
		i += sec[best].len;
	}
	return b;
}

static uint64_t rng = 0x243F6A8885A308D3ull;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* ---------------------------------------------------------------------------
 * Matching
 */

static void test_single(void **state)
{
	(void)state;
	struct redact_secret s[] = { SECRET("API_KEY", "s3cr3t-v4lue") };
	check(s, 1, "key=s3cr3t-v4lue; done", "key=[REDACTED:API_KEY]; done");
	check(s, 1, "no secret here", "no secret here");
	check(s, 1, "s3cr3t-v4lu", "s3cr3t-v4lu");   /* one byte short */
	/* All upper or all lower case too (host names and hex are written
	 * in one case), but not any other mix. */
	check(s, 1, "S3CR3T-V4LUE", "[REDACTED:API_KEY]");
	check(s, 1, "S3cr3t-v4lue", "S3cr3t-v4lue");
	struct redact_secret mixed[] = { SECRET("K", "AbCdEf-123") };
	check(mixed, 1, "x abcdef-123 ABCDEF-123 AbCdEf-123 aBcDeF-123",
	      "x [REDACTED:K] [REDACTED:K] [REDACTED:K] aBcDeF-123");
}

static void test_multiple(void **state)
{
	(void)state;
	struct redact_secret s[] = {
		SECRET("ONE", "first-value"),
		SECRET("TWO", "second-value"),
		SECRET("three", "3rd!"),
	};
	check(s, 3, "a first-value b second-value c 3rd! d",
	      "a [REDACTED:ONE] b [REDACTED:TWO] c [REDACTED:three] d");
	check(s, 3, "second-valuefirst-value3rd!", "[REDACTED:TWO][REDACTED:ONE][REDACTED:three]");
}

static void test_longest_wins(void **state)
{
	(void)state;
	/* Listed both ways: the order of the secrets does not matter. */
	struct redact_secret a[] = { SECRET("SHORT", "abcd"), SECRET("LONG", "abcdxyz") };
	struct redact_secret b[] = { SECRET("LONG", "abcdxyz"), SECRET("SHORT", "abcd") };
	const char *in = "abcdxyz abcdxy abcd";
	const char *want = "[REDACTED:LONG] [REDACTED:SHORT]xy [REDACTED:SHORT]";
	check(a, 2, in, want);
	check(b, 2, in, want);
}

static void test_prefix_sharing(void **state)
{
	(void)state;
	struct redact_secret s[] = {
		SECRET("P", "prefix-AAAA"),
		SECRET("Q", "prefix-BBBB"),
		SECRET("R", "prefix-AAAB"),
	};
	check(s, 3, "prefix-AAAB prefix-BBBB prefix-AAAA prefix-ABBB",
	      "[REDACTED:R] [REDACTED:Q] [REDACTED:P] prefix-ABBB");
	/* A near miss right before a match: the stream must not lose the
	 * bytes it held while waiting. */
	check(s, 3, "prefix-AAAprefix-BBBB", "prefix-AAA[REDACTED:Q]");
	check(s, 3, "prefix-prefix-AAAA", "prefix-[REDACTED:P]");
}

static void test_overlapping(void **state)
{
	(void)state;
	/* The leftmost match wins, and replaced text is not scanned again. */
	struct redact_secret s[] = { SECRET("A", "abcdef"), SECRET("B", "defghi") };
	check(s, 2, "abcdefghi", "[REDACTED:A]ghi");
	check(s, 2, "xxdefghijk", "xx[REDACTED:B]jk");
	/* Leftmost before longest: the longer value starts later. */
	struct redact_secret t[] = { SECRET("S", "bcde"), SECRET("L", "cdefghij") };
	check(t, 2, "abcdefghij", "a[REDACTED:S]fghij");
	check(t, 2, "abccdefghij", "abc[REDACTED:L]");
}

static void test_start_and_end(void **state)
{
	(void)state;
	struct redact_secret s[] = { SECRET("K", "edge-value") };
	check(s, 1, "edge-value", "[REDACTED:K]");
	check(s, 1, "edge-value tail", "[REDACTED:K] tail");
	check(s, 1, "head edge-value", "head [REDACTED:K]");
	check(s, 1, "edge-valueedge-value", "[REDACTED:K][REDACTED:K]");
}

static void test_repeated(void **state)
{
	(void)state;
	struct redact_secret s[] = { SECRET("R", "rep!") };
	check(s, 1, "rep!rep!rep! and rep!",
	      "[REDACTED:R][REDACTED:R][REDACTED:R] and [REDACTED:R]");
	/* A self-overlapping value: matches do not overlap, left to right. */
	struct redact_secret a[] = { SECRET("A", "aaaa") };
	check(a, 1, "aaaaaaaaa", "[REDACTED:A][REDACTED:A]a");
	check(a, 1, "aaa", "aaa");
	struct redact_secret ab[] = { SECRET("AB", "abab") };
	check(ab, 1, "abababa", "[REDACTED:AB]aba");
	check(ab, 1, "ababab", "[REDACTED:AB]ab");
	check(ab, 1, "abababab", "[REDACTED:AB][REDACTED:AB]");
}

static void test_binary_values(void **state)
{
	(void)state;
	static const char v[] = { 'x', '\0', '\n', (char)0xff, 'y' };
	static const char in[] = { 'a', 'x', '\0', '\n', (char)0xff, 'y', '\0', 'b' };
	struct redact_secret s[] = { { "BIN", v, sizeof(v) } };
	struct redactor *r = new_redactor(s, 1);
	struct buf w = redact_all_ways(r, in, sizeof(in));
	static const char want[] = "a[REDACTED:BIN]\0b";
	assert_int_equal(w.len, sizeof(want) - 1);
	assert_memory_equal(w.p, want, w.len);
	free(w.p);
	redactor_free(r);
}

static void test_identical_values(void **state)
{
	(void)state;
	/* The same value under two names: the first listed is reported. */
	struct redact_secret s[] = { SECRET("FIRST", "same-value"),
				     SECRET("SECOND", "same-value") };
	check(s, 2, "x same-value y", "x [REDACTED:FIRST] y");
	struct redact_secret t[] = { SECRET("SECOND", "same-value"),
				     SECRET("FIRST", "same-value") };
	check(t, 2, "x same-value y", "x [REDACTED:SECOND] y");
}

static void test_no_secrets(void **state)
{
	(void)state;
	check(NULL, 0, "anything at all", "anything at all");
	check(NULL, 0, "", "");
}

static void test_empty_input(void **state)
{
	(void)state;
	struct redact_secret s[] = { SECRET("K", "value") };
	struct redactor *r = new_redactor(s, 1);
	size_t len = 99;
	char *p = redact_string(r, "", 0, &len);
	assert_non_null(p);
	assert_int_equal(len, 0);
	assert_string_equal(p, "");
	free(p);
	p = redact_string(r, NULL, 0, NULL);
	assert_non_null(p);
	free(p);

	struct redact_stream st;
	struct buf b = { 0 };
	assert_int_equal(redact_stream_init(&st, r, NULL), 0);
	redact_feed(&st, "", 0, buf_add, &b);
	redact_finish(&st, buf_add, &b);
	assert_int_equal(b.len, 0);
	redact_stream_free(&st);
	redactor_free(r);
}

/* ---------------------------------------------------------------------------
 * Streaming
 */

static void test_split_everywhere(void **state)
{
	(void)state;
	struct redact_secret s[] = {
		SECRET("TOKEN", "tok-123456789"),
		SECRET("PW", "hunter22"),
		SECRET("SHORT", "tok-"),
	};
	/* redact_all_ways cuts at every pair of boundaries. */
	check(s, 3, "tok-123456789hunter22 tok-12345678 tok-hunter22tok-123456789",
	      "[REDACTED:TOKEN][REDACTED:PW] [REDACTED:SHORT]12345678 "
	      "[REDACTED:SHORT][REDACTED:PW][REDACTED:TOKEN]");
}

static void test_cordon_tokens(void **state)
{
	(void)state;
	char hex[65] = "", in[512], want[512];
	for (int i = 0; i < 64; i++)
		hex[i] = "0123456789abcdef"[(i * 7 + 3) % 16];
	/* With no secrets at all, cordon's own credentials are redacted, in
	 * either case, however the output is cut. */
	snprintf(in, sizeof(in), "k=cdn_live_%s;CDN_MCP_%.32s%.32s x-cdn_mcps_%s.", hex, hex,
		 "ABCDEF0123456789ABCDEF0123456789", hex);
	snprintf(want, sizeof(want), "k=[REDACTED:cordon_api_key];[REDACTED:cordon_mcp_token] "
				     "x-[REDACTED:cordon_mcp_session].");
	check(NULL, 0, in, want);
	/* 63 digits, or a digit that is not hex, is not a token. */
	snprintf(in, sizeof(in), "cdn_mcp_%.63s cdn_mcp_%.63sg", hex, hex);
	check(NULL, 0, in, in);
	/* A granted value that covers a token names the secret. */
	char val[128];
	snprintf(val, sizeof(val), "cdn_mcp_%s", hex);
	struct redact_secret s[] = { { "TOKEN", val, strlen(val) } };
	snprintf(in, sizeof(in), "<%s>", val);
	check(s, 1, in, "<[REDACTED:TOKEN]>");
}

static void test_not_held_when_no_needle_can_start(void **state)
{
	(void)state;
	struct redactor *r = new_redactor(NULL, 0);
	struct redact_stream st;
	struct buf b = { 0 };
	assert_int_equal(redact_stream_init(&st, r, NULL), 0);
	/* A live line goes out at once: no needle starts with these bytes. */
	redact_feed(&st, "hello\n", 6, buf_add, &b);
	assert_buf(&b, "hello\n");
	/* A token's beginning is held, and a byte that rules it out frees it. */
	redact_feed(&st, "see cdn_mc", 10, buf_add, &b);
	assert_buf(&b, "hello\nsee ");
	redact_feed(&st, "p_12!", 5, buf_add, &b);
	assert_buf(&b, "hello\nsee cdn_mcp_12!");
	redact_finish(&st, buf_add, &b);
	assert_int_equal(st.hold_len, 0);
	free(b.p);
	redact_stream_free(&st);
	redactor_free(r);
}

static void test_finish_flushes(void **state)
{
	(void)state;
	/* Seven bytes: too short for base64 needles, so the longest needle is
	 * the value itself. */
	struct redact_secret s[] = { SECRET("K", "abcdefg") };
	struct redactor *r = new_redactor(s, 1);
	struct redact_stream st;
	struct buf b = { 0 };
	assert_int_equal(redact_stream_init(&st, r, NULL), 0);

	/* A value's prefix is held back, not written... */
	redact_feed(&st, "abcdef", 6, buf_add, &b);
	assert_int_equal(b.len, 0);
	/* ...only while it could still be the value. */
	redact_feed(&st, "0123456789", 10, buf_add, &b);
	assert_buf(&b, "abcdef0123456789");
	redact_finish(&st, buf_add, &b);
	assert_buf(&b, "abcdef0123456789");
	assert_int_equal(st.hold_len, 0);
	redact_feed(&st, "xabcde", 6, buf_add, &b);
	assert_buf(&b, "abcdef0123456789x");
	redact_finish(&st, buf_add, &b);
	assert_buf(&b, "abcdef0123456789xabcde");

	/* The stream can be used again after finish. */
	b.len = 0;
	redact_feed(&st, "xxabc", 5, buf_add, &b);
	redact_feed(&st, "defgxx", 6, buf_add, &b);
	redact_finish(&st, buf_add, &b);
	assert_buf(&b, "xx[REDACTED:K]xx");

	/* A value is replaced as soon as it is complete; what follows it is
	 * held until finish. */
	b.len = 0;
	redact_feed(&st, "abcdefgab", 9, buf_add, &b);
	assert_buf(&b, "[REDACTED:K]");
	redact_finish(&st, buf_add, &b);
	assert_buf(&b, "[REDACTED:K]ab");
	free(b.p);
	redact_stream_free(&st);
	redactor_free(r);
}

static void test_held_bytes_bounded(void **state)
{
	(void)state;
	struct redact_secret s[] = { SECRET("K", "0123456") };
	struct redactor *r = new_redactor(s, 1);
	struct redact_stream st;
	struct buf b = { 0 };
	assert_int_equal(redact_stream_init(&st, r, NULL), 0);
	/* Every byte could start the value, and the last six are its start. */
	char in[996];
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = "012345"[i % 6];
	for (size_t i = 0; i < sizeof(in); i++) {
		redact_feed(&st, in + i, 1, buf_add, &b);
		assert_true(st.hold_len <= 6);
		assert_int_equal(b.len + st.hold_len, i + 1);
	}
	redact_feed(&st, in, sizeof(in), buf_add, &b);
	assert_int_equal(st.hold_len, 6);
	redact_finish(&st, buf_add, &b);
	assert_int_equal(b.len, 2 * sizeof(in));
	free(b.p);
	redact_stream_free(&st);
	redactor_free(r);
}

static void test_long_value_in_pieces(void **state)
{
	(void)state;
	size_t n = REDACT_MAX_LEN;
	char *v = malloc(n);
	for (size_t i = 0; i < n; i++)
		v[i] = "abc"[rnd() % 3];
	struct redact_secret s[] = { { "BIG", v, n } };
	struct redactor *r = new_redactor(s, 1);
	size_t in_len = 3 * n + 10;
	char *in = malloc(in_len);
	memcpy(in, "<<", 2);
	memcpy(in + 2, v, n);
	memcpy(in + 2 + n, ">>", 2);
	memcpy(in + 4 + n, v, n - 1); /* a near miss */
	memcpy(in + 3 + 2 * n, "|", 1);
	memcpy(in + 4 + 2 * n, v, n);
	memcpy(in + 4 + 3 * n, "<end>!", 6);
	size_t cuts[] = { 1, 5, 4000, n, n + 3, n + 4, 2 * n, 2 * n + 5, 3 * n };
	struct buf b = stream_cut(r, in, in_len, cuts, sizeof(cuts) / sizeof(cuts[0]));
	struct buf w = whole(r, in, in_len);
	assert_int_equal(b.len, w.len);
	assert_memory_equal(b.p, w.p, w.len);
	assert_non_null(memmem(w.p, w.len, "<<[REDACTED:BIG]>>", 18));
	assert_non_null(memmem(w.p, w.len, "|[REDACTED:BIG]<end>!", 21));
	assert_int_equal(w.len, 2 * strlen("[REDACTED:BIG]") + n - 1 + 11);
	free(b.p);
	free(w.p);
	free(in);
	redactor_free(r);
	free(v);
}

/* Random inputs over a small alphabet (so values overlap and repeat),
 * against the reference, whole and in random pieces. */
static void test_random_against_reference(void **state)
{
	(void)state;
	static const char alphabet[] = "abcx";
	char vals[4][24];
	char in[300];
	for (int round = 0; round < 400; round++) {
		struct redact_secret s[4];
		size_t nsec = 1 + rnd() % 4;
		static const char *const names[] = { "N0", "N1", "N2", "N3" };
		for (size_t k = 0; k < nsec; k++) {
			size_t len = REDACT_MIN_LEN + rnd() % (round % 2 ? 4 : 20);
			for (size_t i = 0; i < len; i++)
				vals[k][i] = alphabet[rnd() % 3]; /* no 'x' in values */
			s[k] = (struct redact_secret){ names[k], vals[k], len };
		}
		/* Identical values: the reference keeps the first of equal
		 * lengths too, as the strict '>' above does. */
		size_t n = rnd() % sizeof(in);
		for (size_t i = 0; i < n; i++) {
			if (rnd() % 5 == 0 && i + 24 < n) { /* plant a value */
				size_t k = rnd() % nsec;
				memcpy(in + i, s[k].value, s[k].len);
				i += s[k].len - 1;
				continue;
			}
			in[i] = alphabet[rnd() % 4];
		}
		struct redactor *r = new_redactor(s, nsec);
		struct buf ref = reference(s, nsec, in, n);
		struct buf w = whole(r, in, n);
		if (w.len != ref.len || memcmp(w.p, ref.p, w.len) != 0)
			fail_msg("round %d: whole \"%.*s\", reference \"%.*s\"", round, (int)w.len,
				 w.p, (int)ref.len, ref.p);
		size_t cuts[16], nc = 0;
		size_t at = 0;
		while (nc < 16 && n > 0) {
			at += rnd() % (n / 4 + 2);
			if (at > n)
				break;
			cuts[nc++] = at;
		}
		struct buf b = stream_cut(r, in, n, cuts, nc);
		assert_int_equal(b.len, ref.len);
		assert_memory_equal(b.p ? b.p : "", ref.p, ref.len);
		free(b.p);
		free(w.p);
		free(ref.p);
		redactor_free(r);
	}
}

/* ---------------------------------------------------------------------------
 * Base64
 */

static char *b64(const char *v, size_t n, const char *alphabet, bool pad)
{
	char *out = malloc(4 * (n / 3 + 1) + 1);
	size_t o = 0;
	const unsigned char *u = (const unsigned char *)v;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t w = (uint32_t)u[i] << 16;
		if (i + 1 < n)
			w |= (uint32_t)u[i + 1] << 8;
		if (i + 2 < n)
			w |= u[i + 2];
		out[o++] = alphabet[(w >> 18) & 63];
		out[o++] = alphabet[(w >> 12) & 63];
		if (i + 1 < n || pad)
			out[o++] = i + 1 < n ? alphabet[(w >> 6) & 63] : '=';
		if (i + 2 < n || pad)
			out[o++] = i + 2 < n ? alphabet[w & 63] : '=';
	}
	out[o] = '\0';
	return out;
}

static const char STD[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void test_base64_alone(void **state)
{
	(void)state;
	/* `printf %s VALUE | base64`, for each length mod 3. */
	const char *values[] = { "password", "password1", "password12", "p>?>?>?>?>?" };
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		struct redact_secret s[] = { { "PW", values[i], strlen(values[i]) } };
		struct redactor *r = new_redactor(s, 1);
		for (int url = 0; url < 2; url++) {
			char *e = b64(values[i], strlen(values[i]), url ? URL : STD, true);
			char in[128];
			snprintf(in, sizeof(in), "echo %s\n", e);
			struct buf w = redact_all_ways(r, in, strlen(in));
			if (memmem(w.p, w.len, e, strlen(e) - (strchr(e, '=') ? 1 : 0)))
				fail_msg("%s: base64 %s survived: %s", values[i], e, w.p);
			assert_non_null(strstr(w.p, "echo [REDACTED:PW]"));
			/* At most the last character and the padding remain. */
			assert_true(w.len <= strlen("echo [REDACTED:PW]") + 3 + 1);
			free(w.p);
			free(e);
		}
		redactor_free(r);
	}
}

static void test_base64_inside_blob(void **state)
{
	(void)state;
	/* HTTP Basic: base64("user:" + password), the value at offset 5 (and
	 * at offsets 3 and 4 for the other alignments). */
	const char *prefixes[] = { "user:", "usr:", "us:" };
	struct redact_secret s[] = { SECRET("PW", "correct horse battery") };
	struct redactor *r = new_redactor(s, 1);
	for (size_t i = 0; i < 3; i++) {
		char plain[64], in[128];
		snprintf(plain, sizeof(plain), "%sc%s!", prefixes[i], s[0].value);
		char *e = b64(plain, strlen(plain), STD, true);
		snprintf(in, sizeof(in), "Authorization: Basic %s\r\n", e);
		struct buf w = redact_all_ways(r, in, strlen(in));
		assert_non_null(strstr(w.p, "[REDACTED:PW]"));
		/* No run of 8 encoded characters of the value is left. */
		size_t start = strlen("Authorization: Basic ");
		const char *after = strstr(w.p, "]");
		size_t before = (size_t)(strstr(w.p, "[REDACTED") - w.p) - start;
		assert_true(before <= 4 * (strlen(prefixes[i]) + 1) / 3 + 2);
		assert_true(strlen(after + 1) <= 2 + 4 + 2);
		free(w.p);
		free(e);
	}
	redactor_free(r);
}

static void test_base64_short_values_not_encoded(void **state)
{
	(void)state;
	/* Under 8 bytes the encoding would hit ordinary base64 text. */
	struct redact_secret s[] = { SECRET("S", "short7!") };
	char *e = b64("short7!", 7, STD, true);
	struct redactor *r = new_redactor(s, 1);
	struct buf w = whole(r, e, strlen(e));
	assert_string_equal(w.p, e);
	free(w.p);
	free(e);
	redactor_free(r);
}

/* ---------------------------------------------------------------------------
 * Refusals
 */

static void expect_refused(const struct redact_secret *s, size_t n, const char *msg_part)
{
	struct redactor *r = (struct redactor *)&r;
	struct cdn_err err = { 0 };
	int rc = redactor_new(s, n, &r, &err);
	assert_true(rc < 0);
	assert_null(r);
	assert_int_equal(-rc, err.code);
	if (!strstr(err.msg, msg_part))
		fail_msg("error \"%s\" does not mention \"%s\"", err.msg, msg_part);
	for (size_t i = 0; i < n; i++)
		if (s[i].value && s[i].len >= 3 &&
		    memmem(err.msg, strlen(err.msg), s[i].value, s[i].len))
			fail_msg("error \"%s\" holds a value", err.msg);
}

static void test_short_values_refused(void **state)
{
	(void)state;
	struct redact_secret s[] = { SECRET("LONG_ENOUGH", "fine-value"), SECRET("TINY", "abc") };
	expect_refused(s, 2, "TINY");
	expect_refused(s, 2, "at least 4");
	struct redact_secret e[] = { { "EMPTY", "", 0 } };
	expect_refused(e, 1, "EMPTY");
	/* Exactly REDACT_MIN_LEN is fine. */
	struct redact_secret ok[] = { SECRET("FOUR", "four") };
	check(ok, 1, "four!", "[REDACTED:FOUR]!");
}

static void test_other_refusals(void **state)
{
	(void)state;
	char *big = calloc(1, REDACT_MAX_LEN + 1);
	memset(big, 'q', REDACT_MAX_LEN + 1);
	struct redact_secret s1[] = { { "HUGE", big, REDACT_MAX_LEN + 1 } };
	expect_refused(s1, 1, "HUGE");
	free(big);

	struct redact_secret many[REDACT_MAX_SECRETS + 1];
	for (size_t i = 0; i < REDACT_MAX_SECRETS + 1; i++)
		many[i] = SECRET("SAME", "value-of-all");
	expect_refused(many, REDACT_MAX_SECRETS + 1, "at most 64");
	struct redactor *r = new_redactor(many, REDACT_MAX_SECRETS);
	redactor_free(r);

	/* A name that could forge marker syntax, or none at all. */
	struct redact_secret bad_name[] = { SECRET("X] [REDACTED:Y", "value-x") };
	expect_refused(bad_name, 1, "#1");
	struct redact_secret no_name[] = { SECRET("OK", "value-ok"), { NULL, "value", 5 } };
	expect_refused(no_name, 2, "#2");
	struct redact_secret empty_name[] = { SECRET("", "value-e") };
	expect_refused(empty_name, 1, "name");
	char long_name[70];
	memset(long_name, 'n', 65);
	long_name[65] = '\0';
	struct redact_secret ln[] = { { long_name, "value-ln", 8 } };
	expect_refused(ln, 1, "name");
	long_name[64] = '\0';
	r = new_redactor(ln, 1);
	redactor_free(r);
	struct redact_secret no_value[] = { { "NOVALUE", NULL, 8 } };
	expect_refused(no_value, 1, "NOVALUE");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_single),
		cmocka_unit_test(test_multiple),
		cmocka_unit_test(test_longest_wins),
		cmocka_unit_test(test_cordon_tokens),
		cmocka_unit_test(test_not_held_when_no_needle_can_start),
		cmocka_unit_test(test_prefix_sharing),
		cmocka_unit_test(test_overlapping),
		cmocka_unit_test(test_start_and_end),
		cmocka_unit_test(test_repeated),
		cmocka_unit_test(test_binary_values),
		cmocka_unit_test(test_identical_values),
		cmocka_unit_test(test_no_secrets),
		cmocka_unit_test(test_empty_input),
		cmocka_unit_test(test_split_everywhere),
		cmocka_unit_test(test_finish_flushes),
		cmocka_unit_test(test_held_bytes_bounded),
		cmocka_unit_test(test_long_value_in_pieces),
		cmocka_unit_test(test_random_against_reference),
		cmocka_unit_test(test_base64_alone),
		cmocka_unit_test(test_base64_inside_blob),
		cmocka_unit_test(test_base64_short_values_not_encoded),
		cmocka_unit_test(test_short_values_refused),
		cmocka_unit_test(test_other_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
