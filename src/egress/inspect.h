/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Credential inspection of outgoing plain-HTTP requests.
 *
 * Two kinds of detectors:
 *  - patterns for well-known credential formats (AWS, GitHub, OpenAI,
 *    Anthropic, Google, Slack, Stripe, GitLab, npm, JWTs, private keys);
 *  - the exact values of the secrets granted to this run, and their common
 *    encodings (base64 at each alignment, base64url, percent-encoding, hex).
 *
 * Scanning is streamed: feed the request line, the headers and the decoded
 * body in any pieces; a match that spans pieces is still found, because the
 * scanner keeps the last INSPECT_OVERLAP - 1 bytes. Results name the pattern
 * or the secret, never the matched bytes.
 *
 * False positives are kept down by: exact prefixes and lengths, character
 * classes, a Shannon-entropy floor on the random part, context keywords for
 * formats without a prefix (AWS secret keys), and a list of documented
 * example values (AKIAIOSFODNN7EXAMPLE and friends) that never match.
 *
 * Streaming limits (docs/inspection.md has the details):
 *  - a pattern is decided when its minimum form is complete: the byte before
 *    a token must not be of the token's class, the bytes after it are not
 *    looked at (there is no end-of-stream call, and "token + one more
 *    character" must not get through). Everything a detector looks at lies
 *    within 480 bytes of the token's start, so the findings are the same
 *    however the stream is cut into pieces, and the same as for the whole;
 *  - so JWTs are decided 32 characters into the payload, with a header of at
 *    most 384 characters; private keys by their BEGIN line and the first
 *    key bytes after it; AWS secret keys within 64 bytes after the keyword;
 *  - secret encodings longer than 128 bytes are matched in 128-byte chunks,
 *    so any 255 consecutive bytes of such an encoding are found;
 *  - findings are reported in stream order, at most one per pattern and per
 *    secret, and at most INSPECT_MAX_FINDINGS; a stream that has that many
 *    is no longer scanned.
 */
#ifndef CORDON_EGRESS_INSPECT_H
#define CORDON_EGRESS_INSPECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define INSPECT_OVERLAP 512	 /* bytes carried across pieces */
#define INSPECT_MAX_SECRETS 64	 /* secret values per run */
#define INSPECT_MAX_SECRET_LEN 8192
#define INSPECT_MIN_SECRET_LEN 8 /* shorter values would match everywhere */
#define INSPECT_MAX_FINDINGS 16	 /* distinct findings reported per stream */

#define INSPECT_MAX_CHUNKS 32 /* pieces a long secret is looked for by */

/*
 * A secret longer than INSPECT_MAX_SECRET_LEN is looked for by its pieces:
 * consecutive chunks of this many bytes (the last one longer when what is
 * left would be too short), at most INSPECT_MAX_CHUNKS of them; any
 * 2 * chunk - 1 consecutive bytes of the secret hold a whole chunk, so a
 * leak of that much is found. 0 when len is too long even for that.
 */
size_t inspect_chunk_len(size_t len);

struct inspector; /* compiled detectors, shared by all streams of a run */

struct inspect_secret {
	const char *name;  /* reported on a match */
	const char *value; /* never reported */
	size_t len;
};

/* secrets may be NULL/0. Values shorter than INSPECT_MIN_SECRET_LEN bytes are
 * refused (they would match everywhere), as are longer than
 * INSPECT_MAX_SECRET_LEN, more than INSPECT_MAX_SECRETS, and unnamed ones.
 * The inspector keeps the values (and their encodings) until
 * inspector_free(), which wipes them; the caller's copies are not kept. */
int inspector_new(const struct inspect_secret *secrets, size_t n, struct inspector **out,
		  struct cdn_err *err);
void inspector_free(struct inspector *in);

struct inspect_finding {
	bool is_secret;	  /* a granted secret's value, not a pattern */
	const char *name; /* pattern name ("aws_access_key_id", ...) or secret name; static
			     or owned by the inspector */
};

struct inspect_stream {
	const struct inspector *in;
	char tail[INSPECT_OVERLAP];
	size_t tail_len;
	struct inspect_finding findings[INSPECT_MAX_FINDINGS];
	size_t n_findings;
	/* Set after inspect_stream_init: look for the inspector's secrets
	 * only, not the built-in patterns (a response scanned for values it
	 * must not carry, where other findings would only use up the
	 * INSPECT_MAX_FINDINGS a stream reports). */
	bool secrets_only;
};

/* in may be NULL: then only the built-in patterns are looked for. */
void inspect_stream_init(struct inspect_stream *s, const struct inspector *in);

/* Scans the next piece. Returns the number of findings so far. */
size_t inspect_feed(struct inspect_stream *s, const char *data, size_t len);

/*
 * Percent-decoding as a stream, so that the decoded form of a query string
 * or a body is scanned too: a credential written "%2B"-style in a form
 * field is the credential. "%41" becomes "A", and with plus_space "+" a
 * space (query strings and form bodies). A '%' not followed by two hex
 * digits stays as it is. Sequences cut between pieces are completed in the
 * next one.
 */
struct inspect_pct {
	char held[2]; /* a '%' and maybe one digit, waiting for the rest */
	size_t n_held;
	bool plus_space;
};

/* Decodes n bytes into out, which has room for n + 2; returns how many. */
size_t inspect_pct_feed(struct inspect_pct *d, const char *in, size_t n, char *out);

/* The names of all built-in patterns, NULL-terminated (for docs and tests). */
const char *const *inspect_pattern_names(void);

#endif
