/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Redaction of secret values in output: every occurrence of a granted
 * secret's value becomes "[REDACTED:NAME]" in captured stdout/stderr and
 * in events, even when the value is split across reads.
 *
 * Streaming: the stream keeps back at most the last (longest needle - 1)
 * bytes, and only while they could still start a needle; redact_finish
 * flushes them. The output is the same for every way the input is cut into
 * pieces. Matching is exact on the raw bytes of each value, longest first
 * when values overlap. Values shorter than REDACT_MIN_LEN are refused (they would match
 * everywhere).
 *
 * Needles: each value, and for values of 8 bytes or more also their
 * standard and url-safe base64 forms at the three byte alignments (the
 * characters fixed by the value alone), so a needle can be up to 4/3 of
 * the value's length.
 *
 * Every redactor, even one with no secrets, also redacts cordon's own
 * credentials: "cdn_mcp_", "cdn_mcps_" and "cdn_live_" (or the same in
 * capitals) followed by 64 hex digits become [REDACTED:cordon_mcp_token],
 * [REDACTED:cordon_mcp_session] and [REDACTED:cordon_api_key].
 *
 * See docs/vault.md for what is and is not covered.
 */
#ifndef CORDON_VAULT_REDACT_H
#define CORDON_VAULT_REDACT_H

#include <stddef.h>

#include "base/err.h"

#define REDACT_MIN_LEN 4
#define REDACT_MAX_SECRETS 64
#define REDACT_MAX_LEN (64 * 1024)

struct redact_secret {
	const char *name;
	const char *value;
	size_t len;
};

struct redactor;

/*
 * Copies the values (into wiped, guarded memory). Refused: more than
 * REDACT_MAX_SECRETS, a value shorter than REDACT_MIN_LEN or longer than
 * REDACT_MAX_LEN, a name that is not 1-64 characters of [A-Za-z0-9._-]
 * (as secret names are in the store; nothing else can appear in a marker).
 * The same value under two names is reported under the first.
 */
int redactor_new(const struct redact_secret *secrets, size_t n, struct redactor **out,
		 struct cdn_err *err);
void redactor_free(struct redactor *r); /* wipes the values */

typedef void (*redact_out_fn)(void *ctx, const char *p, size_t n);

struct redact_stream {
	const struct redactor *r;
	char *hold; /* up to longest needle - 1 bytes carried over */
	size_t hold_len;
};

int redact_stream_init(struct redact_stream *st, const struct redactor *r, struct cdn_err *err);
void redact_feed(struct redact_stream *st, const char *p, size_t n, redact_out_fn out, void *ctx);
void redact_finish(struct redact_stream *st, redact_out_fn out, void *ctx);
void redact_stream_free(struct redact_stream *st);

/* The marker ("[REDACTED:NAME]") of the first value or encoding found in
 * s, or NULL when there is none. To scan something in pieces, let each
 * piece overlap the previous one by redact_longest(r) - 1 bytes. */
const char *redact_find(const struct redactor *r, const char *s, size_t n);
size_t redact_longest(const struct redactor *r);

/* A redacted copy of a whole string (malloc'd); NULL on allocation failure. */
char *redact_string(const struct redactor *r, const char *s, size_t n, size_t *out_len);

#endif
