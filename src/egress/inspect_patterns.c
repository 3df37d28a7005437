/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Credential inspection's patterns (contract in inspect.h; how a stream is
 * scanned is in inspect.c, and the detectors and their false-positive
 * controls are described in docs/inspection.md): the patterns' names, the
 * character classes, the false-positive controls, the detectors, and the
 * scan of one region for all of them.
 */
#define _GNU_SOURCE /* memmem */
#include "egress/inspect.h"
#include "egress/inspect_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/cleanup.h"
#include "base/tokens.h"

/* ---------------------------------------------------------------------------
 * Pattern identities
 */

const char *const inspect_pattern_table[N_PATTERNS + 1] = {
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
	return inspect_pattern_table;
}

/* ---------------------------------------------------------------------------
 * Character classes (the classes themselves are in inspect_internal.h)
 */

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

void inspect_scan_patterns(struct scan *sc, const char *buf, size_t len, size_t min_end)
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
