/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Credential inspection (contract in inspect.h; the detectors and their
 * false-positive controls are described in docs/inspection.md).
 *
 * How a piece is scanned. The stream keeps the last TAIL_KEEP bytes it has
 * seen. A piece is scanned in two regions: the junction (the tail followed
 * by the first TAIL_KEEP bytes of the piece, copied into a small stack
 * buffer) and the rest of the piece in place. In each region a match is
 * only counted when it ends after the bytes that were already scanned, so
 * a match that lies wholly inside the carried tail is never counted twice.
 *
 * Why the result does not depend on how the stream is cut into pieces:
 *  - every detector decides from a bounded window: a match is fixed by the
 *    byte before it (the boundary) and its bytes up to a decision point at
 *    most TOKEN_MAX_SPAN bytes after its start, and by nothing after that
 *    point. So whether a match exists at a position is the same in every
 *    region that holds its window, and every match that ends in new bytes
 *    has its whole window in the region that counts it;
 *  - findings are appended in order of the stream offset where they are
 *    decided (ties broken by detector), so even the cut-off at
 *    INSPECT_MAX_FINDINGS keeps the same set.
 *
 * The decision point is where a format's minimum length is reached. We do
 * not look at the byte after a token: there is no end-of-stream call, so a
 * token at the very end of a request would otherwise never be decided, and
 * "ghp_...x" (a token with a character appended, which the receiver strips)
 * would be an easy way past the check.
 *
 * Secrets: each granted value is expanded into its encodings (raw, base64
 * and base64url at the three byte alignments, hex, percent- and
 * JSON-encoding). Encodings longer than NEEDLE_MAX are cut into NEEDLE_MAX
 * chunks, so any run of 2 * NEEDLE_MAX - 1 encoded bytes is caught, even if
 * the rest of the value is not sent. Every needle is indexed by its first
 * eight bytes in an open-addressing table; the stream is probed at every
 * offset with one eight-byte load, and candidates are verified with memcmp.
 */
#define _GNU_SOURCE /* qsort_r, memmem */
#include "egress/inspect.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "base/b64.h"
#include "base/cleanup.h"
#include "base/tokens.h"

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

/* ---------------------------------------------------------------------------
 * Pattern identities
 */

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

static const char *const pattern_names[N_PATTERNS + 1] = {
	[P_AWS_ACCESS_KEY_ID] = "aws_access_key_id",
	[P_AWS_SECRET_ACCESS_KEY] = "aws_secret_access_key",
	[P_GITHUB_PAT] = "github_personal_access_token",
	[P_GITHUB_OAUTH] = "github_oauth_token",
	[P_GITHUB_USER_TO_SERVER] = "github_user_to_server_token",
	[P_GITHUB_SERVER_TO_SERVER] = "github_server_to_server_token",
	[P_GITHUB_REFRESH] = "github_refresh_token",
	[P_GITHUB_FINE_GRAINED] = "github_fine_grained_pat",
	[P_OPENAI_API_KEY] = "openai_api_key",
	[P_OPENAI_PROJECT] = "openai_project_key",
	[P_OPENAI_SERVICE_ACCOUNT] = "openai_service_account_key",
	[P_OPENAI_ADMIN] = "openai_admin_key",
	[P_ANTHROPIC_API_KEY] = "anthropic_api_key",
	[P_ANTHROPIC_ADMIN] = "anthropic_admin_key",
	[P_GOOGLE_API_KEY] = "google_api_key",
	[P_SLACK_TOKEN] = "slack_token",
	[P_SLACK_APP_TOKEN] = "slack_app_token",
	[P_SLACK_WEBHOOK] = "slack_webhook_url",
	[P_STRIPE_SECRET] = "stripe_secret_key",
	[P_STRIPE_RESTRICTED] = "stripe_restricted_key",
	[P_STRIPE_TEST] = "stripe_test_key",
	[P_GITLAB_PAT] = "gitlab_pat",
	[P_NPM_TOKEN] = "npm_token",
	[P_JWT] = "jwt",
	[P_PRIVATE_KEY] = "private_key",
	[P_CORDON_MCP_TOKEN] = "cordon_mcp_token",
	[P_CORDON_MCP_SESSION] = "cordon_mcp_session",
	[P_CORDON_API_KEY] = "cordon_api_key",
	[N_PATTERNS] = NULL,
};

const char *const *inspect_pattern_names(void)
{
	return pattern_names;
}

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

static unsigned cbits(unsigned char c)
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

static bool in_class(const char *buf, size_t i, unsigned cls)
{
	return (cbits((unsigned char)buf[i]) & cls) != 0;
}

/* Length of the run of cls at buf[i], stopping at max or at len. */
static size_t run(const char *buf, size_t len, size_t i, unsigned cls, size_t max)
{
	size_t n = 0;
	while (i + n < len && n < max && in_class(buf, i + n, cls))
		n++;
	return n;
}

/* True when one of the n bytes at p is of class cls. */
static bool memchr_class(const char *p, size_t n, unsigned cls)
{
	for (size_t i = 0; i < n; i++)
		if (cbits((unsigned char)p[i]) & cls)
			return true;
	return false;
}

/* True when a token of class cls may start at s: the byte before it, if
 * any, could not be part of the same token. */
static bool boundary(const char *buf, size_t s, unsigned cls)
{
	return s == 0 || !in_class(buf, s - 1, cls);
}

static bool has_prefix(const char *buf, size_t len, size_t s, const char *prefix, size_t n)
{
	return s + n <= len && memcmp(buf + s, prefix, n) == 0;
}

static char lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* Case-insensitive prefix test; word is lowercase. */
static bool has_word_ci(const char *buf, size_t len, size_t s, const char *word)
{
	size_t n = strlen(word);
	if (s + n > len)
		return false;
	for (size_t i = 0; i < n; i++)
		if (lower(buf[s + i]) != word[i])
			return false;
	return true;
}

/* ---------------------------------------------------------------------------
 * False-positive controls
 */

/* log2(x) for x >= 1, without libm: the exponent from the bit length and
 * the mantissa from the atanh series (error below 1e-9 for m in [1, 2)). */
static double log2_uint(unsigned x)
{
	int k = 31 - __builtin_clz(x);
	double m = (double)x / (double)(1u << k);
	double y = (m - 1) / (m + 1), y2 = y * y, term = y, sum = 0;
	for (int i = 1; i < 24; i += 2) {
		sum += term / i;
		term *= y2;
	}
	return k + 2 * sum / 0.69314718055994530942;
}

/* Shannon entropy in bits per character, times ten. */
static unsigned entropy10(const char *s, size_t n)
{
	unsigned count[256] = { 0 };
	for (size_t i = 0; i < n; i++)
		count[(unsigned char)s[i]]++;
	double sum = 0;
	for (size_t i = 0; i < 256; i++)
		if (count[i] > 1)
			sum += count[i] * log2_uint(count[i]);
	double h = log2_uint((unsigned)n) - sum / (double)n;
	return (unsigned)(h * 10);
}

/*
 * Placeholders that pass an entropy floor: long runs of steps of 0 or +-1
 * ("abcdefgh", "12345678", "aaaabbbb") and short repeats ("Q7x2M9kLQ7x2M9kL").
 * A random body has a step of 0 or 1 between ~5% of its neighbours, and no
 * period shorter than half its length.
 */
static bool low_variety(const char *s, size_t n)
{
	if (n < 2)
		return true;
	size_t steps = 0;
	for (size_t i = 0; i + 1 < n; i++) {
		int d = (unsigned char)s[i + 1] - (unsigned char)s[i];
		if (d >= -1 && d <= 1)
			steps++;
	}
	if (2 * steps >= n - 1)
		return true;
	for (size_t p = 1; p <= n / 2; p++) {
		size_t i = p;
		while (i < n && s[i] == s[i - p])
			i++;
		if (i == n)
			return true;
	}
	return false;
}

/*
 * Documented example values, never reported. They are written in pieces so
 * that this file does not itself look like it holds credentials. A token
 * matches an entry when its decided bytes are a prefix of the entry.
 */
struct example {
	enum pattern id;
	const char *text;
};

static const struct example examples[] = {
	{ P_AWS_ACCESS_KEY_ID, "AKIA" "IOSFODNN7EXAMPLE" },
	{ P_AWS_SECRET_ACCESS_KEY, "wJalrXUtnFEMI/K7MDENG/" "bPxRfiCYEXAMPLEKEY" },
	/* jwt.io's sample token (both the old and the new one start so). */
	{ P_JWT, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9" "."
		 "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwi" },
	{ P_STRIPE_TEST, "sk_" "test_" "4eC39HqLyjWDarjtT1zdp7dc" },
	{ P_STRIPE_TEST, "sk_" "test_" "BQokikJOvBiI2HlWgH4olfQ2" },
	{ P_SLACK_TOKEN, "xox" "b-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy" },
	{ P_GITHUB_PAT, "gh" "p_16C7e42F292c6912E7710c838347Ae178B4a" },
};

static bool is_example(enum pattern id, const char *tok, size_t n)
{
	for (size_t i = 0; i < CDN_ARRAY_SIZE(examples); i++)
		if (examples[i].id == id && strlen(examples[i].text) >= n &&
		    memcmp(examples[i].text, tok, n) == 0)
			return true;
	/* AWS and many others mark sample keys with the word itself; a random
	 * body contains it with probability ~n / 36^7. */
	for (size_t i = 0; i + 7 <= n; i++)
		if (has_word_ci(tok, n, i, "example"))
			return true;
	/* The AWS documentation also marks key ids with "XMPL"
	 * ("ACCAQFODXMPL4YFHP7DZE"); 36^-4 per position in a random id. */
	if (id == P_AWS_ACCESS_KEY_ID && memmem(tok, n, "XMPL", 4))
		return true;
	return false;
}

/* The common gate for a candidate: not an example, enough entropy in the
 * random part, not a placeholder. */
static bool plausible(enum pattern id, const char *tok, size_t tok_len, const char *body,
		      size_t body_len, unsigned min_entropy10)
{
	if (is_example(id, tok, tok_len))
		return false;
	if (min_entropy10 && entropy10(body, body_len) < min_entropy10)
		return false;
	return !low_variety(body, body_len);
}

/* ---------------------------------------------------------------------------
 * Detectors. Each one is given a start offset s and returns the decision
 * point (the offset just after the last byte it needed), or 0 for no match
 * (including "not enough bytes yet").
 */

/* Fixed prefix, then a run of a class; decided when the run reaches
 * body_len characters. */
struct prefixed {
	const char *prefix;
	unsigned char plen;
	enum pattern id;
	unsigned body_cls;
	unsigned bound_cls;
	unsigned char body_len;
	unsigned char entropy10;
	bool need_dash; /* Slack: the body is team-id, user-id and secret */
	bool own; /* cordon's own: either case, inside words, no plausibility gate */
};

#define PFX(s) s, sizeof(s) - 1
static const struct prefixed prefixed[] = {
	/* AWS access key ids: the 4-letter type, 16 more of [A-Z0-9]. */
	{ PFX("AKIA"), P_AWS_ACCESS_KEY_ID, UPDIG, ALNUM, 16, ENTROPY(25), false },
	{ PFX("ASIA"), P_AWS_ACCESS_KEY_ID, UPDIG, ALNUM, 16, ENTROPY(25), false },
	{ PFX("ABIA"), P_AWS_ACCESS_KEY_ID, UPDIG, ALNUM, 16, ENTROPY(25), false },
	{ PFX("ACCA"), P_AWS_ACCESS_KEY_ID, UPDIG, ALNUM, 16, ENTROPY(25), false },
	{ PFX("A3T"), P_AWS_ACCESS_KEY_ID, UPDIG, ALNUM, 17, ENTROPY(25), false },
	{ PFX("ghp_"), P_GITHUB_PAT, ALNUM, ALNUM | C_US, 36, ENTROPY(36), false },
	{ PFX("gho_"), P_GITHUB_OAUTH, ALNUM, ALNUM | C_US, 36, ENTROPY(36), false },
	{ PFX("ghu_"), P_GITHUB_USER_TO_SERVER, ALNUM, ALNUM | C_US, 36, ENTROPY(36), false },
	{ PFX("ghs_"), P_GITHUB_SERVER_TO_SERVER, ALNUM, ALNUM | C_US, 36, ENTROPY(36), false },
	{ PFX("ghr_"), P_GITHUB_REFRESH, ALNUM, ALNUM | C_US, 36, ENTROPY(36), false },
	{ PFX("sk-proj-"), P_OPENAI_PROJECT, B64URL, B64URL, 48, ENTROPY(40), false },
	{ PFX("sk-svcacct-"), P_OPENAI_SERVICE_ACCOUNT, B64URL, B64URL, 48, ENTROPY(40), false },
	{ PFX("sk-admin-"), P_OPENAI_ADMIN, B64URL, B64URL, 48, ENTROPY(40), false },
	/* Legacy OpenAI keys: only letters and digits after "sk-", so
	 * "sk-ant-..." and "sk-proj-..." never match this one. */
	{ PFX("sk-"), P_OPENAI_API_KEY, ALNUM, B64URL, 48, ENTROPY(40), false },
	{ PFX("AIza"), P_GOOGLE_API_KEY, B64URL, B64URL, 35, ENTROPY(36), false },
	{ PFX("xoxa-"), P_SLACK_TOKEN, SLACK, SLACK, 40, ENTROPY(28), true },
	{ PFX("xoxb-"), P_SLACK_TOKEN, SLACK, SLACK, 40, ENTROPY(28), true },
	{ PFX("xoxp-"), P_SLACK_TOKEN, SLACK, SLACK, 40, ENTROPY(28), true },
	{ PFX("xoxo-"), P_SLACK_TOKEN, SLACK, SLACK, 40, ENTROPY(28), true },
	{ PFX("xoxs-"), P_SLACK_TOKEN, SLACK, SLACK, 40, ENTROPY(28), true },
	{ PFX("xoxr-"), P_SLACK_TOKEN, SLACK, SLACK, 40, ENTROPY(28), true },
	{ PFX("xapp-"), P_SLACK_APP_TOKEN, SLACK, SLACK, 40, ENTROPY(28), true },
	{ PFX("sk_live_"), P_STRIPE_SECRET, ALNUM, ALNUM | C_US, 24, ENTROPY(30), false },
	{ PFX("rk_live_"), P_STRIPE_RESTRICTED, ALNUM, ALNUM | C_US, 24, ENTROPY(30), false },
	{ PFX("sk_test_"), P_STRIPE_TEST, ALNUM, ALNUM | C_US, 24, ENTROPY(30), false },
	{ PFX("rk_test_"), P_STRIPE_TEST, ALNUM, ALNUM | C_US, 24, ENTROPY(30), false },
	/* GitLab: 20 characters, or the longer routable form, which starts
	 * with more than 20 of the same class. */
	{ PFX("glpat-"), P_GITLAB_PAT, B64URL, B64URL, 20, ENTROPY(28), false },
	{ PFX("npm_"), P_NPM_TOKEN, ALNUM, ALNUM | C_US, 36, ENTROPY(36), false },
	/* cordon's own credentials (base/tokens.h): a run holds its MCP
	 * tokens, and must not send them anywhere. The prefix is ours and
	 * distinctive, so every token of the shape counts: inside a word
	 * ("xcdn_mcp_..."), in capitals, and however little entropy it has
	 * (as the redactor does). */
	{ PFX(CDN_TOKEN_SESSION_PREFIX), P_CORDON_MCP_SESSION, C_HEX, 0, CDN_TOKEN_HEX, 0, false,
	  true },
	{ PFX(CDN_TOKEN_MCP_PREFIX), P_CORDON_MCP_TOKEN, C_HEX, 0, CDN_TOKEN_HEX, 0, false, true },
	{ PFX(CDN_TOKEN_API_KEY_PREFIX), P_CORDON_API_KEY, C_HEX, 0, CDN_TOKEN_HEX, 0, false, true },
};

static size_t match_prefixed(const struct prefixed *p, const char *buf, size_t len, size_t s)
{
	size_t pl = p->plen;
	if (p->own ? !has_word_ci(buf, len, s, p->prefix)
			: !has_prefix(buf, len, s, p->prefix, pl))
		return 0;
	if (!boundary(buf, s, p->bound_cls))
		return 0;
	size_t b = s + pl;
	if (run(buf, len, b, p->body_cls, p->body_len) < p->body_len)
		return 0;
	if (p->need_dash && !memchr(buf + b, '-', p->body_len))
		return 0;
	size_t e = b + p->body_len;
	if (!p->own && !plausible(p->id, buf + s, e - s, buf + b, p->body_len, p->entropy10))
		return 0;
	return e;
}

/* github_pat_ + 22 + "_" + 59 (we accept 20..30 before the underscore),
 * decided 50 characters after it. */
#define GH_FINE_PART1_MIN 20
#define GH_FINE_PART1_MAX 30
#define GH_FINE_PART2 50
_Static_assert(11 + GH_FINE_PART1_MAX + 1 + GH_FINE_PART2 <= SHORT_SPAN, "span");
static size_t match_github_fine(const char *buf, size_t len, size_t s)
{
	static const char prefix[] = "github_pat_";
	size_t pl = sizeof(prefix) - 1;
	if (!has_prefix(buf, len, s, prefix, pl) || !boundary(buf, s, ALNUM | C_US))
		return 0;
	size_t b = s + pl;
	size_t r1 = run(buf, len, b, ALNUM, GH_FINE_PART1_MAX + 1);
	if (r1 < GH_FINE_PART1_MIN || r1 > GH_FINE_PART1_MAX || b + r1 >= len || buf[b + r1] != '_')
		return 0;
	size_t b2 = b + r1 + 1;
	if (run(buf, len, b2, ALNUM, GH_FINE_PART2) < GH_FINE_PART2)
		return 0;
	size_t e = b2 + GH_FINE_PART2;
	if (!plausible(P_GITHUB_FINE_GRAINED, buf + s, e - s, buf + b, e - b, ENTROPY(44)))
		return 0;
	return e;
}

/* sk-ant-<kind>-<80..110 of [A-Za-z0-9_-]>, kind as api03 or admin01;
 * decided at 80. */
#define ANT_KIND_MAX 16
#define ANT_BODY 80
_Static_assert(7 + ANT_KIND_MAX + 1 + ANT_BODY <= SHORT_SPAN, "span");
static size_t match_anthropic(const char *buf, size_t len, size_t s, enum pattern *id)
{
	static const char prefix[] = "sk-ant-";
	size_t pl = sizeof(prefix) - 1;
	if (!has_prefix(buf, len, s, prefix, pl) || !boundary(buf, s, B64URL))
		return 0;
	size_t k = s + pl;
	size_t kl = run(buf, len, k, LODIG, ANT_KIND_MAX + 1);
	if (kl == 0 || kl > ANT_KIND_MAX || k + kl >= len || buf[k + kl] != '-')
		return 0;
	size_t b = k + kl + 1;
	if (run(buf, len, b, B64URL, ANT_BODY) < ANT_BODY)
		return 0;
	size_t e = b + ANT_BODY;
	*id = has_prefix(buf, len, k, "admin", 5) ? P_ANTHROPIC_ADMIN : P_ANTHROPIC_API_KEY;
	if (!plausible(*id, buf + s, e - s, buf + b, ANT_BODY, ENTROPY(45)))
		return 0;
	return e;
}

/* hooks.slack.com/services/T<id>/B<id>/<24 alnum> */
#define SLACK_ID_MIN 6
#define SLACK_ID_MAX 12
#define SLACK_HOOK_SECRET 24
_Static_assert(25 + 2 * (SLACK_ID_MAX + 2) + SLACK_HOOK_SECRET <= SHORT_SPAN, "span");
static size_t slack_id(const char *buf, size_t len, size_t i, char lead)
{
	if (i >= len || buf[i] != lead)
		return 0;
	size_t n = run(buf, len, i + 1, UPDIG, SLACK_ID_MAX + 1);
	if (n < SLACK_ID_MIN || n > SLACK_ID_MAX || i + 1 + n >= len || buf[i + 1 + n] != '/')
		return 0;
	return i + 1 + n + 1;
}

static size_t match_slack_webhook(const char *buf, size_t len, size_t s)
{
	static const char prefix[] = "hooks.slack.com/services/";
	size_t pl = sizeof(prefix) - 1;
	if (!has_prefix(buf, len, s, prefix, pl) || !boundary(buf, s, ALNUM | C_DA | C_DOT))
		return 0;
	size_t t = slack_id(buf, len, s + pl, 'T');
	size_t b = t ? slack_id(buf, len, t, 'B') : 0;
	if (!b || run(buf, len, b, ALNUM, SLACK_HOOK_SECRET) < SLACK_HOOK_SECRET)
		return 0;
	size_t e = b + SLACK_HOOK_SECRET;
	if (!plausible(P_SLACK_WEBHOOK, buf + s, e - s, buf + b, SLACK_HOOK_SECRET, ENTROPY(30)))
		return 0;
	return e;
}

/*
 * AWS secret access keys have no prefix: 40 of [A-Za-z0-9/+] anywhere would
 * match a quarter of all base64. So they are only looked for within
 * AWS_CONTEXT bytes after a keyword: "aws" and "secret", or "secret",
 * "access" and "key", case-insensitive, with optional '_', '-', '.' or ' '
 * between the words (aws_secret_access_key, SecretAccessKey, aws-secret,
 * AWSSecretKey), ending a word.
 */
#define AWS_SECRET_LEN 40
#define AWS_CONTEXT 64
/* the longest keyword is 21 bytes ("aws_secret_access_key") */
_Static_assert(21 + AWS_CONTEXT + AWS_SECRET_LEN <= SHORT_SPAN, "span");

static size_t skip_sep(const char *buf, size_t len, size_t i)
{
	if (i < len && (buf[i] == '_' || buf[i] == '-' || buf[i] == '.' || buf[i] == ' '))
		return i + 1;
	return i;
}

static size_t aws_keyword(const char *buf, size_t len, size_t s)
{
	size_t i = s;
	bool aws = has_word_ci(buf, len, i, "aws");
	if (aws)
		i = skip_sep(buf, len, i + 3);
	if (!has_word_ci(buf, len, i, "secret"))
		return 0;
	i += 6;
	bool access = false, key = false;
	size_t j = skip_sep(buf, len, i);
	if (has_word_ci(buf, len, j, "access")) {
		access = true;
		i = j + 6;
		j = skip_sep(buf, len, i);
	}
	if (has_word_ci(buf, len, j, "key")) {
		key = true;
		i = j + 3;
	}
	if (!aws && !(access && key))
		return 0;
	/* The keyword must end a word: "AWSSecretsManager..." is not one. */
	if (i < len && in_class(buf, i, C_UP | C_LO))
		return 0;
	return i;
}

static size_t match_aws_secret(const char *buf, size_t len, size_t s)
{
	size_t k = aws_keyword(buf, len, s);
	if (!k)
		return 0;
	for (size_t p = k; p <= k + AWS_CONTEXT; p++) {
		if (p + AWS_SECRET_LEN > len)
			return 0; /* not enough bytes yet; later candidates neither */
		if (!boundary(buf, p, B64STD))
			continue;
		if (run(buf, len, p, B64STD, AWS_SECRET_LEN) < AWS_SECRET_LEN)
			continue;
		size_t e = p + AWS_SECRET_LEN;
		if (!plausible(P_AWS_SECRET_ACCESS_KEY, buf + p, AWS_SECRET_LEN, buf + p,
			       AWS_SECRET_LEN, ENTROPY(38)))
			continue;
		/* Long CamelCase identifiers ("XksProxyAuthenticationRawSecret...")
		 * follow these keywords in SDK models and pass the entropy floor;
		 * they have no digits. A random key has none with p = 0.1%, and
		 * then still passes on entropy alone in nearly all cases. */
		if (memchr_class(buf + p, AWS_SECRET_LEN, C_DI) ||
		    entropy10(buf + p, AWS_SECRET_LEN) >= ENTROPY(45))
			return e;
	}
	return 0;
}

/*
 * JWTs: "eyJ" is base64url for '{"', so the header and the payload both
 * start with it. The header (at most JWT_MAX_HEADER characters) must decode
 * to a JSON object naming "alg", which every JWS and JWE header does. The
 * token is decided JWT_PAYLOAD characters into the payload: payloads are
 * often longer than the scan window, and a header plus the start of a
 * payload is a JWT whether or not its signature follows.
 */
#define JWT_MIN_HEADER 16
#define JWT_MAX_HEADER 384
#define JWT_PAYLOAD 32
_Static_assert(JWT_MAX_HEADER + 1 + JWT_PAYLOAD <= TOKEN_MAX_SPAN, "JWT window too long");

static int b64url_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

static bool jwt_header_ok(const char *h, size_t n)
{
	if (n % 4 == 1)
		return false; /* not a valid base64 length */
	unsigned char out[JWT_MAX_HEADER];
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		int v = b64url_val((unsigned char)h[i]);
		if (v < 0)
			return false;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
		}
	}
	if (o < 2 || out[0] != '{')
		return false;
	for (size_t i = 0; i + 5 <= o; i++)
		if (memcmp(out + i, "\"alg\"", 5) == 0)
			return true;
	return false;
}

static size_t match_jwt(const char *buf, size_t len, size_t s)
{
	if (!has_prefix(buf, len, s, "eyJ", 3) || !boundary(buf, s, B64URL))
		return 0;
	size_t h = run(buf, len, s, B64URL, JWT_MAX_HEADER + 1);
	if (h < JWT_MIN_HEADER || h > JWT_MAX_HEADER || s + h >= len || buf[s + h] != '.')
		return 0;
	size_t p = s + h + 1;
	if (!has_prefix(buf, len, p, "eyJ", 3) || run(buf, len, p, B64URL, JWT_PAYLOAD) < JWT_PAYLOAD)
		return 0;
	size_t e = p + JWT_PAYLOAD;
	if (is_example(P_JWT, buf + s, e - s) || !jwt_header_ok(buf + s, h))
		return 0;
	return e;
}

/*
 * Private keys: "-----BEGIN [TYPE ]PRIVATE KEY-----" (TYPE such as RSA, EC,
 * DSA, OPENSSH, ENCRYPTED; or "PGP PRIVATE KEY BLOCK"), followed after at
 * most PEM_GAP bytes of line breaks (real or JSON-escaped "\n") by key
 * material (PEM_BODY base64 characters) or an armor header ("Proc-Type:",
 * "Version:"). The header line alone is what code and documentation quote;
 * the key material is what leaks.
 */
#define PEM_TYPE_MAX 32
#define PEM_GAP 16
#define PEM_BODY 16
#define PEM_FIELD_MAX 20
_Static_assert(11 + PEM_TYPE_MAX + 1 + 22 + PEM_GAP + 1 + PEM_FIELD_MAX + 1 <= SHORT_SPAN, "span");

static size_t match_private_key(const char *buf, size_t len, size_t s)
{
	static const char begin[] = "-----BEGIN ";
	size_t i = s + sizeof(begin) - 1;
	if (!has_prefix(buf, len, s, begin, sizeof(begin) - 1) || !boundary(buf, s, C_DA))
		return 0;
	/* The type words: upper case, digits, single spaces. */
	size_t t = i;
	while (t < len && t - i <= PEM_TYPE_MAX && !has_prefix(buf, len, t, "PRIVATE KEY", 11)) {
		if (!in_class(buf, t, UPDIG) && buf[t] != ' ')
			return 0;
		t++;
	}
	if (!has_prefix(buf, len, t, "PRIVATE KEY", 11))
		return 0;
	t += 11;
	if (has_prefix(buf, len, t, " BLOCK", 6))
		t += 6;
	if (!has_prefix(buf, len, t, "-----", 5))
		return 0;
	t += 5;
	size_t g = t;
	while (g < len && g - t < PEM_GAP) {
		if (buf[g] == '\r' || buf[g] == '\n' || buf[g] == ' ' || buf[g] == '\t')
			g++;
		else if (buf[g] == '\\' && g + 1 < len && (buf[g + 1] == 'n' || buf[g + 1] == 'r'))
			g += 2;
		else
			break;
	}
	if (g >= len)
		return 0;
	if (run(buf, len, g, B64STD, PEM_BODY) == PEM_BODY)
		return g + PEM_BODY;
	/* An armor or PEM header field: a word and a colon. */
	size_t f = run(buf, len, g, ALNUM | C_DA, PEM_FIELD_MAX + 1);
	if (f > 0 && f <= PEM_FIELD_MAX && g + f < len && buf[g + f] == ':')
		return g + f + 1;
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

static void found_within(struct scan *sc, size_t id, size_t s, size_t e, size_t min_end,
			 size_t span)
{
	/* A decision further than its window from its start could differ
	 * between a whole and a split stream. None of the detectors produces
	 * one (their bounds are below); this keeps it true. */
	if (e == 0 || e <= min_end || e - s > span || sc->seen[id])
		return;
	if (e < sc->first_end[id])
		sc->first_end[id] = e;
}

static void found(struct scan *sc, size_t id, size_t s, size_t e, size_t min_end)
{
	found_within(sc, id, s, e, min_end, SHORT_SPAN);
}

/* The prefixed tokens looked for in either case and inside words. */
static void scan_own(struct scan *sc, const char *buf, size_t len, size_t s, size_t min_end)
{
	for (size_t i = 0; i < CDN_ARRAY_SIZE(prefixed); i++) {
		const struct prefixed *p = &prefixed[i];
		if (!p->own || sc->seen[p->id])
			continue;
		size_t e = match_prefixed(p, buf, len, s);
		if (e) {
			found(sc, p->id, s, e, min_end);
			return;
		}
	}
}

static void scan_patterns(struct scan *sc, const char *buf, size_t len, size_t min_end)
{
	size_t s = min_end >= TOKEN_MAX_SPAN ? min_end - TOKEN_MAX_SPAN + 1 : 0;
	size_t s_short = min_end >= SHORT_SPAN ? min_end - SHORT_SPAN + 1 : 0;
	/* Only a JWT can start this far back and still end in new bytes. */
	for (; s < s_short && s < len; s++)
		if (buf[s] == 'e' && !sc->seen[P_JWT] && boundary(buf, s, B64URL))
			found_within(sc, P_JWT, s, match_jwt(buf, len, s), min_end,
				     TOKEN_MAX_SPAN);
	for (; s < len; s++) {
		char c = buf[s];
		/* The keyword for AWS secrets needs no boundary. */
		if ((c == 'a' || c == 'A' || c == 's' || c == 'S') &&
		    !sc->seen[P_AWS_SECRET_ACCESS_KEY])
			found(sc, P_AWS_SECRET_ACCESS_KEY, s, match_aws_secret(buf, len, s),
			      min_end);
		if (c == '-') {
			found(sc, P_PRIVATE_KEY, s, match_private_key(buf, len, s), min_end);
			continue;
		}
		if (c == 'c' || c == 'C') {
			scan_own(sc, buf, len, s, min_end);
			continue;
		}
		/* Every other token starts after a byte that is not a letter or
		 * a digit: skip the insides of words cheaply. */
		if (!boundary(buf, s, ALNUM))
			continue;
		switch (c) {
		case 'e':
			if (!sc->seen[P_JWT])
				found_within(sc, P_JWT, s, match_jwt(buf, len, s), min_end,
					     TOKEN_MAX_SPAN);
			continue;
		case 'h':
			found(sc, P_SLACK_WEBHOOK, s, match_slack_webhook(buf, len, s), min_end);
			continue;
		case 'g':
			found(sc, P_GITHUB_FINE_GRAINED, s, match_github_fine(buf, len, s),
			      min_end);
			break;
		case 's': {
			enum pattern id = P_ANTHROPIC_API_KEY;
			size_t e = match_anthropic(buf, len, s, &id);
			if (e) {
				found(sc, id, s, e, min_end);
				continue;
			}
			break;
		}
		case 'A':
		case 'x':
		case 'r':
		case 'n':
			break;
		default:
			continue;
		}
		for (size_t i = 0; i < CDN_ARRAY_SIZE(prefixed); i++) {
			const struct prefixed *p = &prefixed[i];
			if (p->prefix[0] != c || p->own || sc->seen[p->id])
				continue;
			size_t e = match_prefixed(p, buf, len, s);
			if (e) {
				found(sc, p->id, s, e, min_end);
				break; /* prefixes are ordered longest first */
			}
		}
	}
}

/* ---------------------------------------------------------------------------
 * Secrets: compiled needles
 */

struct needle {
	uint64_t key; /* the first eight bytes */
	uint32_t off; /* in the arena */
	uint16_t len;
	uint16_t secret;
};

struct bucket {
	uint64_t key;
	uint32_t first; /* needles[first .. first + count) share key */
	uint32_t count; /* 0: empty slot */
};

struct inspector {
	size_t n_secrets;
	char *names[INSPECT_MAX_SECRETS];
	char *arena; /* every encoding of every secret, wiped on free */
	size_t arena_cap;
	struct needle *needles;
	size_t n_needles;
	struct bucket *table;
	unsigned table_bits;
};

static uint64_t load64(const char *p)
{
	uint64_t k;
	memcpy(&k, p, sizeof(k));
	return k;
}

static size_t bucket_of(uint64_t key, unsigned bits)
{
	return (size_t)((key * 0x9E3779B97F4A7C15ull) >> (64 - bits));
}

static const struct bucket *find_bucket(const struct inspector *in, uint64_t key)
{
	size_t mask = ((size_t)1 << in->table_bits) - 1;
	for (size_t i = bucket_of(key, in->table_bits);; i = (i + 1) & mask) {
		const struct bucket *b = &in->table[i];
		if (b->count == 0)
			return NULL;
		if (b->key == key)
			return b;
	}
}

static void scan_secrets(struct scan *sc, const struct inspector *in, const char *buf, size_t len,
			 size_t min_end)
{
	if (!in || in->n_needles == 0)
		return;
	size_t p = min_end >= NEEDLE_MAX ? min_end - NEEDLE_MAX + 1 : 0;
	for (; p + NEEDLE_MIN <= len; p++) {
		const struct bucket *b = find_bucket(in, load64(buf + p));
		if (!b)
			continue;
		for (size_t i = b->first; i < (size_t)b->first + b->count; i++) {
			const struct needle *nd = &in->needles[i];
			size_t id = N_PATTERNS + nd->secret;
			size_t e = p + nd->len;
			if (sc->seen[id] || e > len || e <= min_end || e >= sc->first_end[id])
				continue;
			if (memcmp(buf + p + NEEDLE_MIN, in->arena + nd->off + NEEDLE_MIN,
				   nd->len - NEEDLE_MIN) == 0)
				sc->first_end[id] = e;
		}
	}
}

/* ---------------------------------------------------------------------------
 * Secrets: encodings
 */

static const char hex_lo[] = "0123456789abcdef";
static const char hex_up[] = "0123456789ABCDEF";

static size_t enc_hex(char *dst, const unsigned char *v, size_t n, const char *digits)
{
	for (size_t i = 0; i < n; i++) {
		dst[2 * i] = digits[v[i] >> 4];
		dst[2 * i + 1] = digits[v[i] & 15];
	}
	return 2 * n;
}

static bool unreserved(unsigned char c)
{
	return (cbits(c) & ALNUM) || c == '-' || c == '.' || c == '_' || c == '~';
}

/* Percent-encoding of every byte outside RFC 3986 "unreserved"; with form,
 * a space becomes '+' (application/x-www-form-urlencoded). */
static size_t enc_pct(char *dst, const unsigned char *v, size_t n, const char *digits, bool form)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (unreserved(v[i])) {
			dst[o++] = (char)v[i];
		} else if (form && v[i] == ' ') {
			dst[o++] = '+';
		} else {
			dst[o++] = '%';
			dst[o++] = digits[v[i] >> 4];
			dst[o++] = digits[v[i] & 15];
		}
	}
	return o;
}

enum json_style {
	JSON_PLAIN,   /* Python, JavaScript */
	JSON_SLASH,   /* "\/" as PHP writes it */
	JSON_HTMLSAFE /* <, >, & as \u003c ... as Go writes them */
};

static size_t enc_json(char *dst, const unsigned char *v, size_t n, enum json_style style)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = v[i];
		const char *esc = NULL;
		switch (c) {
		case '"': esc = "\\\""; break;
		case '\\': esc = "\\\\"; break;
		case '\b': esc = "\\b"; break;
		case '\f': esc = "\\f"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		case '\t': esc = "\\t"; break;
		case '/':
			if (style == JSON_SLASH)
				esc = "\\/";
			break;
		}
		if (esc) {
			size_t l = strlen(esc);
			memcpy(dst + o, esc, l);
			o += l;
		} else if (c < 0x20 || (style == JSON_HTMLSAFE && (c == '<' || c == '>' || c == '&'))) {
			memcpy(dst + o, "\\u00", 4);
			dst[o + 4] = hex_lo[c >> 4];
			dst[o + 5] = hex_lo[c & 15];
			o += 6;
		} else {
			dst[o++] = (char)c;
		}
	}
	return o;
}

/* Upper bound of the bytes all encodings of an n-byte value take. */
#define N_ENCODINGS 15
static size_t encodings_bound(size_t n)
{
	return n			 /* raw */
	       + 6 * ((4 * (n + 2)) / 3) /* base64, base64url, three alignments */
	       + 2 * 2 * n		 /* hex */
	       + 3 * 3 * n		 /* percent: upper, lower, form */
	       + 3 * 6 * n;		 /* JSON: three styles */
}

struct builder {
	struct inspector *in;
	size_t used;
	struct {
		uint32_t off, len;
		uint16_t secret;
	} enc[INSPECT_MAX_SECRETS * N_ENCODINGS];
	size_t n_enc;
};

/* Keeps the encoding just written at arena + used unless this secret has
 * the same one already (a value of letters and digits reads the same raw,
 * percent-encoded and JSON-escaped). */
static void commit(struct builder *b, size_t secret, size_t first_enc, size_t n)
{
	char *p = b->in->arena + b->used;
	for (size_t i = first_enc; i < b->n_enc; i++)
		if (b->enc[i].len == n && memcmp(b->in->arena + b->enc[i].off, p, n) == 0) {
			sodium_memzero(p, n);
			return;
		}
	if (n < NEEDLE_MIN || b->n_enc >= CDN_ARRAY_SIZE(b->enc)) {
		sodium_memzero(p, n);
		return;
	}
	b->enc[b->n_enc].off = (uint32_t)b->used;
	b->enc[b->n_enc].len = (uint32_t)n;
	b->enc[b->n_enc].secret = (uint16_t)secret;
	b->n_enc++;
	b->used += n;
}

static void encode_secret(struct builder *b, size_t secret, const unsigned char *v, size_t n)
{
	size_t first = b->n_enc;
	char *a = b->in->arena;
#define EMIT(expr) commit(b, secret, first, (expr))
	memcpy(a + b->used, v, n);
	EMIT(n);
	for (unsigned align = 0; align < 3; align++) {
		/* The characters the value alone fixes at each alignment. */
		EMIT(cdn_b64_needle(v, n, align, CDN_B64_STD, a + b->used));
		EMIT(cdn_b64_needle(v, n, align, CDN_B64_URL, a + b->used));
	}
	EMIT(enc_hex(a + b->used, v, n, hex_lo));
	EMIT(enc_hex(a + b->used, v, n, hex_up));
	EMIT(enc_pct(a + b->used, v, n, hex_up, false));
	EMIT(enc_pct(a + b->used, v, n, hex_lo, false));
	EMIT(enc_pct(a + b->used, v, n, hex_up, true));
	EMIT(enc_json(a + b->used, v, n, JSON_PLAIN));
	EMIT(enc_json(a + b->used, v, n, JSON_SLASH));
	EMIT(enc_json(a + b->used, v, n, JSON_HTMLSAFE));
#undef EMIT
}

static int cmp_needle(const void *pa, const void *pb, void *arena)
{
	const struct needle *a = pa, *b = pb;
	if (a->key != b->key)
		return a->key < b->key ? -1 : 1;
	if (a->secret != b->secret)
		return a->secret < b->secret ? -1 : 1;
	if (a->len != b->len)
		return a->len < b->len ? -1 : 1;
	return memcmp((const char *)arena + a->off, (const char *)arena + b->off, a->len);
}

static size_t needles_of(size_t len)
{
	if (len <= NEEDLE_MAX)
		return 1;
	return (len + NEEDLE_MAX - 1) / NEEDLE_MAX;
}

/*
 * Cuts the encodings into needles: whole when short, else NEEDLE_MAX-byte
 * chunks at every multiple of NEEDLE_MAX plus one that ends at the end, so
 * the whole encoding and any 2 * NEEDLE_MAX - 1 bytes of it contain one.
 */
static int build_needles(struct inspector *in, const struct builder *b, struct cdn_err *err)
{
	size_t n = 0;
	for (size_t i = 0; i < b->n_enc; i++)
		n += needles_of(b->enc[i].len);
	if (n == 0)
		return 0;
	in->needles = calloc(n, sizeof(*in->needles));
	if (!in->needles)
		return cdn_err_set(err, ENOMEM, "inspector: %zu secret needles", n);
	size_t k = 0;
	for (size_t i = 0; i < b->n_enc; i++) {
		size_t off = b->enc[i].off, len = b->enc[i].len;
		for (size_t c = 0; c < needles_of(len); c++) {
			struct needle *nd = &in->needles[k++];
			size_t o = len <= NEEDLE_MAX ? 0 : c * NEEDLE_MAX;
			size_t l = len <= NEEDLE_MAX ? len : NEEDLE_MAX;
			if (o + l > len)
				o = len - l;
			nd->off = (uint32_t)(off + o);
			nd->len = (uint16_t)l;
			nd->secret = b->enc[i].secret;
			nd->key = load64(in->arena + nd->off);
		}
	}
	qsort_r(in->needles, n, sizeof(*in->needles), cmp_needle, in->arena);
	/* Drop duplicates (a value made of one repeated chunk, say): they
	 * would only make the scan verify the same bytes again. */
	size_t u = 0;
	for (size_t i = 0; i < n; i++)
		if (u == 0 || cmp_needle(&in->needles[u - 1], &in->needles[i], in->arena) != 0)
			in->needles[u++] = in->needles[i];
	sodium_memzero(in->needles + u, (n - u) * sizeof(*in->needles));
	in->n_needles = u;

	size_t groups = 0;
	for (size_t i = 0; i < u; i++)
		if (i == 0 || in->needles[i].key != in->needles[i - 1].key)
			groups++;
	unsigned bits = 4;
	while (((size_t)1 << bits) < 2 * groups)
		bits++;
	in->table = calloc((size_t)1 << bits, sizeof(*in->table));
	if (!in->table)
		return cdn_err_set(err, ENOMEM, "inspector: secret table");
	in->table_bits = bits;
	size_t mask = ((size_t)1 << bits) - 1;
	for (size_t i = 0; i < u;) {
		size_t j = i;
		while (j < u && in->needles[j].key == in->needles[i].key)
			j++;
		size_t slot = bucket_of(in->needles[i].key, bits);
		while (in->table[slot].count)
			slot = (slot + 1) & mask;
		in->table[slot].key = in->needles[i].key;
		in->table[slot].first = (uint32_t)i;
		in->table[slot].count = (uint32_t)(j - i);
		i = j;
	}
	return 0;
}

static void free_builder(struct builder **b)
{
	free(*b);
}

int inspector_new(const struct inspect_secret *secrets, size_t n, struct inspector **out,
		  struct cdn_err *err)
{
	*out = NULL;
	if (n > INSPECT_MAX_SECRETS)
		return cdn_err_set(err, E2BIG, "inspector: %zu secrets, at most %d", n,
				   INSPECT_MAX_SECRETS);
	if (n && !secrets)
		return cdn_err_set(err, EINVAL, "inspector: no secret list");
	size_t arena = 0;
	for (size_t i = 0; i < n; i++) {
		const struct inspect_secret *s = &secrets[i];
		if (!s->name || !*s->name)
			return cdn_err_set(err, EINVAL, "inspector: secret %zu has no name", i);
		/* Messages name the secret, never its value. */
		if (!s->value || s->len < INSPECT_MIN_SECRET_LEN)
			return cdn_err_set(err, EINVAL,
					   "inspector: secret '%.*s' is shorter than %d bytes "
					   "(it would match everywhere)",
					   SECRET_NAME_MAX, s->name, INSPECT_MIN_SECRET_LEN);
		if (s->len > INSPECT_MAX_SECRET_LEN)
			return cdn_err_set(err, EINVAL,
					   "inspector: secret '%.*s' is longer than %d bytes",
					   SECRET_NAME_MAX, s->name, INSPECT_MAX_SECRET_LEN);
		arena += encodings_bound(s->len);
	}

	struct inspector *in = calloc(1, sizeof(*in));
	_cleanup_(free_builder) struct builder *b = calloc(1, sizeof(*b));
	if (!in || !b) {
		free(in);
		return cdn_err_set(err, ENOMEM, "inspector");
	}
	int r = 0;
	if (arena && !(in->arena = malloc(arena)))
		r = cdn_err_set(err, ENOMEM, "inspector: %zu bytes of secret encodings", arena);
	in->arena_cap = arena;
	for (size_t i = 0; r == 0 && i < n; i++) {
		in->names[i] = strndup(secrets[i].name, SECRET_NAME_MAX);
		if (!in->names[i]) {
			r = cdn_err_set(err, ENOMEM, "inspector: secret names");
			break;
		}
		in->n_secrets = i + 1;
	}
	if (r == 0) {
		b->in = in;
		for (size_t i = 0; i < n; i++)
			encode_secret(b, i, (const unsigned char *)secrets[i].value, secrets[i].len);
		r = build_needles(in, b, err);
	}
	sodium_memzero(b, sizeof(*b));
	if (r < 0) {
		inspector_free(in);
		return r;
	}
	*out = in;
	return 0;
}

void inspector_free(struct inspector *in)
{
	if (!in)
		return;
	if (in->arena) {
		sodium_memzero(in->arena, in->arena_cap);
		free(in->arena);
	}
	if (in->needles) {
		sodium_memzero(in->needles, in->n_needles * sizeof(*in->needles));
		free(in->needles);
	}
	if (in->table) {
		sodium_memzero(in->table, ((size_t)1 << in->table_bits) * sizeof(*in->table));
		free(in->table);
	}
	for (size_t i = 0; i < in->n_secrets; i++)
		free(in->names[i]);
	sodium_memzero(in, sizeof(*in));
	free(in);
}

/* ---------------------------------------------------------------------------
 * Streams
 */

void inspect_stream_init(struct inspect_stream *s, const struct inspector *in)
{
	memset(s, 0, sizeof(*s));
	s->in = in;
}

static void mark_seen(struct scan *sc, const struct inspect_stream *s)
{
	for (size_t i = 0; i < N_IDS; i++)
		sc->first_end[i] = NO_MATCH;
	memset(sc->seen, 0, sizeof(sc->seen));
	for (size_t f = 0; f < s->n_findings && f < INSPECT_MAX_FINDINGS; f++) {
		const struct inspect_finding *fd = &s->findings[f];
		if (!fd->is_secret) {
			for (size_t i = 0; i < N_PATTERNS; i++)
				if (fd->name == pattern_names[i])
					sc->seen[i] = true;
		} else if (s->in) {
			for (size_t i = 0; i < s->in->n_secrets; i++)
				if (fd->name == s->in->names[i])
					sc->seen[N_PATTERNS + i] = true;
		}
	}
}

/* Appends this region's findings in the order they were decided. */
static void report(struct scan *sc, struct inspect_stream *s)
{
	for (;;) {
		size_t best = N_IDS;
		for (size_t i = 0; i < N_IDS; i++)
			if (sc->first_end[i] != NO_MATCH &&
			    (best == N_IDS || sc->first_end[i] < sc->first_end[best]))
				best = i;
		if (best == N_IDS || s->n_findings >= INSPECT_MAX_FINDINGS)
			break;
		sc->first_end[best] = NO_MATCH;
		sc->seen[best] = true;
		struct inspect_finding *f = &s->findings[s->n_findings++];
		f->is_secret = best >= N_PATTERNS;
		f->name = f->is_secret ? s->in->names[best - N_PATTERNS] : pattern_names[best];
	}
	for (size_t i = 0; i < N_IDS; i++)
		sc->first_end[i] = NO_MATCH;
}

static void scan_region(struct scan *sc, struct inspect_stream *s, const char *buf, size_t len,
			size_t min_end)
{
	if (!s->secrets_only)
		scan_patterns(sc, buf, len, min_end);
	scan_secrets(sc, s->in, buf, len, min_end);
	report(sc, s);
}

size_t inspect_feed(struct inspect_stream *s, const char *data, size_t len)
{
	if (s->n_findings > INSPECT_MAX_FINDINGS)
		s->n_findings = INSPECT_MAX_FINDINGS;
	if (s->tail_len > TAIL_KEEP)
		s->tail_len = TAIL_KEEP;
	if (!data || len == 0)
		return s->n_findings;

	if (s->n_findings < INSPECT_MAX_FINDINGS) {
		struct scan sc;
		mark_seen(&sc, s);
		/* The junction: what was carried, then the start of the piece. */
		char junction[TAIL_KEEP + TAIL_KEEP];
		size_t head = len < TAIL_KEEP ? len : TAIL_KEEP;
		memcpy(junction, s->tail, s->tail_len);
		memcpy(junction + s->tail_len, data, head);
		scan_region(&sc, s, junction, s->tail_len + head, s->tail_len);
		/* It may hold a credential from the request: leave nothing on
		 * the stack. */
		sodium_memzero(junction, sizeof(junction));
		/* The rest in place: the junction covered every decision up to
		 * `head`, and nothing here starts before the piece. */
		if (len > head && s->n_findings < INSPECT_MAX_FINDINGS)
			scan_region(&sc, s, data, len, head);
	}

	/* Carry the last TAIL_KEEP bytes of everything seen. */
	if (len >= TAIL_KEEP) {
		memcpy(s->tail, data + len - TAIL_KEEP, TAIL_KEEP);
		s->tail_len = TAIL_KEEP;
	} else {
		size_t keep = s->tail_len + len > TAIL_KEEP ? TAIL_KEEP - len : s->tail_len;
		memmove(s->tail, s->tail + s->tail_len - keep, keep);
		memcpy(s->tail + keep, data, len);
		s->tail_len = keep + len;
	}
	return s->n_findings;
}

size_t inspect_chunk_len(size_t len)
{
	if (len <= INSPECT_MAX_SECRET_LEN)
		return len;
	size_t chunk = (len + INSPECT_MAX_CHUNKS - 1) / INSPECT_MAX_CHUNKS;
	if (chunk < 1024)
		chunk = 1024;
	return chunk > INSPECT_MAX_SECRET_LEN / 2 ? 0 : chunk;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

size_t inspect_pct_feed(struct inspect_pct *d, const char *in, size_t n, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char c = in[i];
		if (d->n_held == 0) {
			if (c == '%')
				d->held[d->n_held++] = c;
			else
				out[o++] = d->plus_space && c == '+' ? ' ' : c;
			continue;
		}
		if (hexval(c) < 0) {
			/* Not an escape after all: what was held goes out as it is. */
			for (size_t k = 0; k < d->n_held; k++)
				out[o++] = d->held[k];
			d->n_held = 0;
			i--; /* this byte starts afresh */
			continue;
		}
		if (d->n_held == 1) {
			d->held[d->n_held++] = c;
			continue;
		}
		out[o++] = (char)(hexval(d->held[1]) << 4 | hexval(c));
		d->n_held = 0;
	}
	return o;
}
