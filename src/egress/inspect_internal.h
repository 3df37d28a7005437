/* SPDX-License-Identifier: Apache-2.0 */
/* Private to src/egress/: what the credential patterns
 * (inspect_patterns.c) and the secrets and streams (inspect.c) share: the
 * bounds on a detector's window, the patterns' identities, the character
 * classes and one region's scan state. */
#ifndef CORDON_EGRESS_INSPECT_INTERNAL_H
#define CORDON_EGRESS_INSPECT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "egress/inspect.h"

/* Bytes kept between pieces. */
#define TAIL_KEEP (INSPECT_OVERLAP - 1)
/* The furthest a detector looks from a token's first byte to its decision
 * point (inclusive of both). With the boundary byte before the token this
 * must fit in the tail, so a token found at offset 0 of a full tail never
 * ends in new bytes (and so its unknown predecessor never matters). */
#define TOKEN_MAX_SPAN 480
_Static_assert(TOKEN_MAX_SPAN + 1 < TAIL_KEEP, "detector window must fit in the carried tail");
/* All detectors but the JWT one decide within SHORT_SPAN bytes. Only JWTs
 * are looked for further back when a piece is scanned, so a stream fed in
 * small pieces costs ~SHORT_SPAN per piece, not ~TOKEN_MAX_SPAN. */
#define SHORT_SPAN 160

/* Secret needles: at least 8 bytes (one probe load), at most NEEDLE_MAX. */
#define NEEDLE_MIN 8
#define NEEDLE_MAX 128
_Static_assert(NEEDLE_MAX <= TOKEN_MAX_SPAN, "needles must fit in the detector window");
_Static_assert(INSPECT_MIN_SECRET_LEN >= NEEDLE_MIN, "a secret must be one probe long");
/* Secret names are copied for the findings, cut at this length. */
#define SECRET_NAME_MAX 128

/* Entropy floors are tenths of a bit per character, see docs/inspection.md. */
#define ENTROPY(x10) (x10)

/* Pattern identities (inspect_patterns.c) */

enum pattern {
	P_AWS_ACCESS_KEY_ID,
	P_AWS_SECRET_ACCESS_KEY,
	P_GITHUB_PAT,
	P_GITHUB_OAUTH,
	P_GITHUB_USER_TO_SERVER,
	P_GITHUB_SERVER_TO_SERVER,
	P_GITHUB_REFRESH,
	P_GITHUB_FINE_GRAINED,
	P_OPENAI_API_KEY,
	P_OPENAI_PROJECT,
	P_OPENAI_SERVICE_ACCOUNT,
	P_OPENAI_ADMIN,
	P_ANTHROPIC_API_KEY,
	P_ANTHROPIC_ADMIN,
	P_GOOGLE_API_KEY,
	P_SLACK_TOKEN,
	P_SLACK_APP_TOKEN,
	P_SLACK_WEBHOOK,
	P_STRIPE_SECRET,
	P_STRIPE_RESTRICTED,
	P_STRIPE_TEST,
	P_GITLAB_PAT,
	P_NPM_TOKEN,
	P_JWT,
	P_PRIVATE_KEY,
	P_CORDON_MCP_TOKEN,
	P_CORDON_MCP_SESSION,
	P_CORDON_API_KEY,
	N_PATTERNS
};

/* inspect_patterns.c: each pattern's name, NULL after the last. */
extern const char *const inspect_pattern_table[N_PATTERNS + 1];

/* ---------------------------------------------------------------------------
 * Character classes
 */

enum {
	C_UP = 1 << 0,	  /* A-Z */
	C_LO = 1 << 1,	  /* a-z */
	C_DI = 1 << 2,	  /* 0-9 */
	C_US = 1 << 3,	  /* _ */
	C_DA = 1 << 4,	  /* - */
	C_SL = 1 << 5,	  /* / */
	C_PL = 1 << 6,	  /* + */
	C_DOT = 1 << 7,	  /* . */
	C_HEX = 1 << 8,	  /* 0-9 a-f A-F, as well as the bits above */
	ALNUM = C_UP | C_LO | C_DI,
	UPDIG = C_UP | C_DI,
	LODIG = C_LO | C_DI,
	B64URL = ALNUM | C_US | C_DA,
	B64STD = ALNUM | C_SL | C_PL,
	SLACK = ALNUM | C_DA,
};

static inline unsigned cbits(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return C_UP | (c <= 'F' ? C_HEX : 0);
	if (c >= 'a' && c <= 'z')
		return C_LO | (c <= 'f' ? C_HEX : 0);
	if (c >= '0' && c <= '9')
		return C_DI | C_HEX;
	switch (c) {
	case '_': return C_US;
	case '-': return C_DA;
	case '/': return C_SL;
	case '+': return C_PL;
	case '.': return C_DOT;
	}
	return 0;
}

/* ---------------------------------------------------------------------------
 * The pattern scan of one region
 */

/* Per scan: the first decision offset of each detector and secret, or
 * NO_MATCH. */
#define NO_MATCH SIZE_MAX
#define N_IDS (N_PATTERNS + INSPECT_MAX_SECRETS)

struct scan {
	size_t first_end[N_IDS];
	bool seen[N_IDS]; /* already among the stream's findings */
};

void inspect_scan_patterns(struct scan *sc, const char *buf, size_t len, size_t min_end);

#endif
