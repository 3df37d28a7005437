/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The credential inspector. Test credentials are assembled at run time from
 * a prefix written in pieces and a pseudo-random body, so this file holds
 * nothing a secret scanner would take for a live credential.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "egress/inspect.h"

/* ---------------------------------------------------------------------------
 * Helpers
 */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rnd(void)
{
	uint64_t x = rng_state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return x * 0x2545F4914F6CDD1Dull;
}

static const char UPDIG[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
static const char ALNUM[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static const char B64STD[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char DIGITS[] = "0123456789";
static const char HEXLO[] = "0123456789abcdef";

/* Appends n random characters of alphabet to buf. */
static void add_rand(char *buf, size_t n, const char *alphabet)
{
	size_t l = strlen(buf), k = strlen(alphabet);
	for (size_t i = 0; i < n; i++)
		buf[l + i] = alphabet[rnd() % k];
	buf[l + n] = '\0';
}

static void add(char *buf, const char *s)
{
	strcat(buf, s);
}

/* Base64 with padding, of any alphabet; the result is malloc'd. */
static char *b64(const unsigned char *v, size_t n, const char *alphabet)
{
	char *out = malloc(4 * (n / 3 + 1) + 1);
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t w = (uint32_t)v[i] << 16;
		if (i + 1 < n)
			w |= (uint32_t)v[i + 1] << 8;
		if (i + 2 < n)
			w |= v[i + 2];
		out[o++] = alphabet[(w >> 18) & 63];
		out[o++] = alphabet[(w >> 12) & 63];
		out[o++] = i + 1 < n ? alphabet[(w >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? alphabet[w & 63] : '=';
	}
	out[o] = '\0';
	return out;
}

static struct inspector *new_inspector(const struct inspect_secret *sec, size_t n)
{
	struct inspector *in = NULL;
	struct cdn_err err = { 0 };
	if (inspector_new(sec, n, &in, &err) != 0)
		fail_msg("inspector_new: %s", err.msg);
	return in;
}

/* Feeds d in pieces of `piece` bytes (0: at once). */
static size_t feed(struct inspect_stream *s, const char *d, size_t n, size_t piece)
{
	if (piece == 0)
		return inspect_feed(s, d, n);
	for (size_t i = 0; i < n; i += piece)
		inspect_feed(s, d + i, n - i < piece ? n - i : piece);
	return s->n_findings;
}

static size_t scan(const struct inspector *in, const char *d, struct inspect_stream *s)
{
	inspect_stream_init(s, in);
	return inspect_feed(s, d, strlen(d));
}

static void assert_same_findings(const struct inspect_stream *a, const struct inspect_stream *b,
				 const char *what)
{
	if (a->n_findings != b->n_findings)
		fail_msg("%s: %zu findings, want %zu", what, b->n_findings, a->n_findings);
	for (size_t i = 0; i < a->n_findings; i++) {
		if (a->findings[i].is_secret != b->findings[i].is_secret ||
		    strcmp(a->findings[i].name, b->findings[i].name) != 0)
			fail_msg("%s: finding %zu is %s, want %s", what, i, b->findings[i].name,
				 a->findings[i].name);
	}
}

/* ---------------------------------------------------------------------------
 * Test credentials
 */

#define TOK_MAX 1024

struct tp {
	const char *name;
	char tok[TOK_MAX];
};

static void b64url_json(char *dst, const char *json)
{
	char *e = b64((const unsigned char *)json, strlen(json), B64URL);
	char *eq = strchr(e, '=');
	if (eq)
		*eq = '\0';
	add(dst, e);
	free(e);
}

/* One true positive per pattern. */
static size_t make_true_positives(struct tp *t)
{
	size_t n = 0;
#define NEW(nm) (t[n].name = (nm), t[n].tok[0] = '\0', t[n++].tok)
	char *p;
	p = NEW("aws_access_key_id");
	add(p, "AK" "IA");
	add_rand(p, 16, UPDIG);
	p = NEW("aws_access_key_id");
	add(p, "AS" "IA");
	add_rand(p, 16, UPDIG);
	p = NEW("aws_access_key_id");
	add(p, "A3" "T");
	add_rand(p, 17, UPDIG);
	p = NEW("aws_secret_access_key");
	add(p, "aws_secret_" "access_key = ");
	add_rand(p, 40, B64STD);
	p = NEW("aws_secret_access_key"); /* far from its keyword */
	add(p, "\"AWS_SECRET_" "ACCESS_KEY\":                                                  \"");
	add_rand(p, 40, B64STD);
	add(p, "\"");
	p = NEW("github_personal_access_token");
	add(p, "gh" "p_");
	add_rand(p, 36, ALNUM);
	p = NEW("github_oauth_token");
	add(p, "gh" "o_");
	add_rand(p, 36, ALNUM);
	p = NEW("github_user_to_server_token");
	add(p, "gh" "u_");
	add_rand(p, 36, ALNUM);
	p = NEW("github_server_to_server_token");
	add(p, "gh" "s_");
	add_rand(p, 36, ALNUM);
	p = NEW("github_refresh_token");
	add(p, "gh" "r_");
	add_rand(p, 36, ALNUM);
	p = NEW("github_fine_grained_pat");
	add(p, "github" "_pat_");
	add_rand(p, 22, ALNUM);
	add(p, "_");
	add_rand(p, 59, ALNUM);
	p = NEW("openai_api_key");
	add(p, "sk" "-");
	add_rand(p, 48, ALNUM);
	p = NEW("openai_project_key");
	add(p, "sk" "-proj-");
	add_rand(p, 156, B64URL);
	p = NEW("openai_service_account_key");
	add(p, "sk" "-svcacct-");
	add_rand(p, 120, B64URL);
	p = NEW("openai_admin_key");
	add(p, "sk" "-admin-");
	add_rand(p, 120, B64URL);
	p = NEW("anthropic_api_key");
	add(p, "sk" "-ant-api03-");
	add_rand(p, 95, B64URL);
	p = NEW("anthropic_admin_key");
	add(p, "sk" "-ant-admin01-");
	add_rand(p, 95, B64URL);
	p = NEW("google_api_key");
	add(p, "AI" "za");
	add_rand(p, 35, B64URL);
	p = NEW("slack_token");
	add(p, "xo" "xb-");
	add_rand(p, 12, DIGITS);
	add(p, "-");
	add_rand(p, 13, DIGITS);
	add(p, "-");
	add_rand(p, 24, ALNUM);
	p = NEW("slack_token");
	add(p, "xo" "xp-");
	add_rand(p, 11, DIGITS);
	add(p, "-");
	add_rand(p, 11, DIGITS);
	add(p, "-");
	add_rand(p, 12, DIGITS);
	add(p, "-");
	add_rand(p, 32, HEXLO);
	p = NEW("slack_app_token");
	add(p, "xa" "pp-1-A");
	add_rand(p, 10, UPDIG);
	add(p, "-");
	add_rand(p, 13, DIGITS);
	add(p, "-");
	add_rand(p, 64, HEXLO);
	p = NEW("slack_webhook_url");
	add(p, "https://hooks" ".slack.com/services/T");
	add_rand(p, 8, UPDIG);
	add(p, "/B");
	add_rand(p, 10, UPDIG);
	add(p, "/");
	add_rand(p, 24, ALNUM);
	p = NEW("stripe_secret_key");
	add(p, "sk" "_live_");
	add_rand(p, 24, ALNUM);
	p = NEW("stripe_restricted_key");
	add(p, "rk" "_live_");
	add_rand(p, 99, ALNUM);
	p = NEW("stripe_test_key");
	add(p, "sk" "_test_");
	add_rand(p, 24, ALNUM);
	p = NEW("gitlab_pat");
	add(p, "gl" "pat-");
	add_rand(p, 20, B64URL);
	p = NEW("gitlab_pat");
	add(p, "gl" "pat-");
	add_rand(p, 27, B64URL);
	add(p, ".01.0w1");
	add_rand(p, 8, ALNUM);
	p = NEW("npm_token");
	add(p, "np" "m_");
	add_rand(p, 36, ALNUM);
	p = NEW("jwt");
	b64url_json(p, "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"k-20240101\"}");
	add(p, ".");
	b64url_json(p, "{\"sub\":\"user-8812\",\"iat\":1700000000,\"scope\":\"admin write\"}");
	add(p, ".");
	add_rand(p, 342, B64URL);
	p = NEW("jwt"); /* a long header: the decision lies ~340 bytes in */
	{
		char hdr[400] = "{\"alg\":\"RS256\",\"kid\":\"";
		add_rand(hdr, 200, ALNUM);
		add(hdr, "\"}");
		b64url_json(p, hdr);
	}
	add(p, ".");
	b64url_json(p, "{\"sub\":\"user-8812\",\"iat\":1700000000,\"scope\":\"read\"}");
	add(p, ".");
	add_rand(p, 86, B64URL);
	p = NEW("jwt"); /* a payload longer than the scan window */
	b64url_json(p, "{\"alg\":\"HS256\"}");
	add(p, ".");
	b64url_json(p, "{\"sub\":\"someone\",\"groups\":[\"a\",\"b\"],\"pad\":\"");
	add_rand(p, 700, ALNUM);
	add(p, ".");
	add_rand(p, 43, B64URL);
	static const char *pem_types[] = { "RSA ", "EC ", "DSA ", "OPENSSH ", "ENCRYPTED ", "" };
	for (size_t i = 0; i < sizeof(pem_types) / sizeof(pem_types[0]); i++) {
		p = NEW("private_key");
		add(p, "-----BEGIN ");
		add(p, pem_types[i]);
		add(p, "PRIVATE" " KEY-----\n");
		add_rand(p, 64, B64STD);
		add(p, "\n");
	}
	p = NEW("private_key"); /* inside a JSON string */
	add(p, "-----BEGIN " "PRIVATE" " KEY-----\\n");
	add_rand(p, 64, B64STD);
	p = NEW("private_key");
	add(p, "-----BEGIN PGP " "PRIVATE" " KEY BLOCK-----\r\n\r\n");
	add_rand(p, 64, B64STD);
	p = NEW("private_key");
	add(p, "-----BEGIN PGP " "PRIVATE" " KEY BLOCK-----\nVersion: GnuPG v2\n\n");
	add_rand(p, 64, B64STD);
	p = NEW("private_key");
	add(p, "-----BEGIN RSA " "PRIVATE" " KEY-----\nProc-Type: 4,ENCRYPTED\n");
	p = NEW("cordon_mcp_token");
	add(p, "cdn_" "mcp_");
	add_rand(p, 64, HEXLO);
	p = NEW("cordon_mcp_session");
	add(p, "cdn_" "mcps_");
	add_rand(p, 64, HEXLO);
	p = NEW("cordon_api_key");
	add(p, "cdn_" "live_");
	add_rand(p, 64, HEXLO);
	p = NEW("cordon_api_key");
	add(p, "CDN_" "LIVE_");
	add_rand(p, 64, "0123456789ABCDEF");
#undef NEW
	return n;
}

/* ---------------------------------------------------------------------------
 * Patterns
 */

static void test_pattern_names(void **state)
{
	(void)state;
	const char *const *names = inspect_pattern_names();
	size_t n = 0;
	for (; names[n]; n++) {
		const char *s = names[n];
		assert_true(strlen(s) > 2);
		for (const char *c = s; *c; c++)
			assert_true((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_');
		for (size_t j = 0; j < n; j++)
			assert_string_not_equal(s, names[j]);
	}
	assert_true(n >= 25);
	/* Every name the true positives use is listed. */
	static struct tp t[64];
	size_t nt = make_true_positives(t);
	for (size_t i = 0; i < nt; i++) {
		bool listed = false;
		for (size_t j = 0; j < n; j++)
			listed |= strcmp(t[i].name, names[j]) == 0;
		if (!listed)
			fail_msg("%s is not in inspect_pattern_names()", t[i].name);
	}
}

static void test_true_positives(void **state)
{
	(void)state;
	static struct tp t[64];
	size_t nt = make_true_positives(t);
	static const char *ctx[][2] = {
		{ "", "" },
		{ "POST /v1 HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer ",
		  "\r\nAccept: */*\r\n\r\n" },
		{ "{\"config\": {\"token\": \"", "\", \"n\": 1}}" },
		{ "GET /x?key=", "&y=2 HTTP/1.1\r\n" },
		{ "'", "'" },
	};
	char buf[4096];
	for (size_t i = 0; i < nt; i++) {
		for (size_t c = 0; c < sizeof(ctx) / sizeof(ctx[0]); c++) {
			snprintf(buf, sizeof(buf), "%s%s%s", ctx[c][0], t[i].tok, ctx[c][1]);
			struct inspect_stream s;
			size_t n = scan(NULL, buf, &s);
			if (n != 1 || strcmp(s.findings[0].name, t[i].name) != 0 ||
			    s.findings[0].is_secret)
				fail_msg("case %zu (%s), context %zu: %zu findings, first %s", i,
					 t[i].name, c, n, n ? s.findings[0].name : "-");
		}
	}
}

static void test_anthropic_is_not_openai(void **state)
{
	(void)state;
	char tok[256] = "sk" "-ant-api03-";
	add_rand(tok, 100, ALNUM); /* letters and digits only, like a legacy key */
	struct inspect_stream s;
	assert_int_equal(scan(NULL, tok, &s), 1);
	assert_string_equal(s.findings[0].name, "anthropic_api_key");
	char tok2[256] = "sk" "-ant-sid01-";
	add_rand(tok2, 90, B64URL);
	assert_int_equal(scan(NULL, tok2, &s), 1);
	assert_string_equal(s.findings[0].name, "anthropic_api_key");
}

static void test_examples_ignored(void **state)
{
	(void)state;
	static const char *examples[] = {
		"AKIA" "IOSFODNN7EXAMPLE",
		"id=AKIA" "I44QH8DHBEXAMPLE&x",
		"aws_secret_access_key=" "wJalrXUtnFEMI/K7MDENG/" "bPxRfiCYEXAMPLEKEY",
		"AWS_SECRET_ACCESS_KEY: " "je7MtGbClwBF/2Zp9Utk/" "h3yCo8nvbEXAMPLEKEY",
		"Authorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9" "."
		"eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ" "."
		"SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
		"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9" "."
		"eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiYWRtaW4iOnRydWUsImlhdCI6MTUxNjIzOTAyMn0"
		"." "KMUFsIDTnFmyG3nMiGM6H9FNFUROf3wh7SmqJp-QV30",
		"stripe.api_key = 'sk_" "test_" "4eC39HqLyjWDarjtT1zdp7dc'",
		"token: xox" "b-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy",
		"https://hooks" ".slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
		"gh" "p_16C7e42F292c6912E7710c838347Ae178B4a",
		"gh" "p_EXAMPLEabcdefghijklmnopqrstuvwxyz012",
		"AC" "CAQFODXMPL4YFHP7DZE",
	};
	for (size_t i = 0; i < sizeof(examples) / sizeof(examples[0]); i++) {
		struct inspect_stream s;
		if (scan(NULL, examples[i], &s) != 0)
			fail_msg("example %zu reported as %s", i, s.findings[0].name);
	}
}

static void test_low_entropy_ignored(void **state)
{
	(void)state;
	static const char *fakes[] = {
		"gh" "p_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		"gh" "p_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ",
		"gh" "p_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
		"gh" "p_000000000000000000000000000000000000",
		"gh" "p_Q7x2M9kLQ7x2M9kLQ7x2M9kLQ7x2M9kLQ7x2",
		"gh" "p_aaaabbbbccccddddeeeeffffgggghhhhiiii",
		"AK" "IAAAAAAAAAAAAAAAAA",
		"AK" "IA0123456789ABCDEF",
		"AK" "IA1111222233334444",
		"sk" "-000000000000000000000000000000000000000000000000",
		"sk" "-proj-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
		"sk" "_live_000000000000000000000000",
		"sk" "_live_abcdefghijklmnopqrstuvwx",
		"xo" "xb-1234567890-1234567890-abcdefghijklmnopqrst",
		"AI" "zaXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
		"np" "m_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		"gl" "pat-xxxxxxxxxxxxxxxxxxxx",
		"aws_secret_access_key=" "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"aws_secret_access_key=" "abcdefghijklmnopqrstuvwxyzabcdefghijklmn",
		"sk" "-ant-api03-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	};
	for (size_t i = 0; i < sizeof(fakes) / sizeof(fakes[0]); i++) {
		struct inspect_stream s;
		if (scan(NULL, fakes[i], &s) != 0)
			fail_msg("lookalike %zu reported as %s", i, s.findings[0].name);
	}
	/* Few distinct characters in no particular order: only the entropy
	 * floor tells these from keys. */
	for (int round = 0; round < 50; round++) {
		struct inspect_stream s;
		char t[128] = "gh" "p_";
		add_rand(t, 36, "aZ7");
		assert_int_equal(scan(NULL, t, &s), 0);
		strcpy(t, "AK" "IA");
		add_rand(t, 16, "AQ7X");
		assert_int_equal(scan(NULL, t, &s), 0);
		strcpy(t, "aws_secret_access_key=");
		add_rand(t, 40, "abcdefgh/+");
		assert_int_equal(scan(NULL, t, &s), 0);
		strcpy(t, "sk" "_live_");
		add_rand(t, 24, "Kq3m");
		assert_int_equal(scan(NULL, t, &s), 0);
	}
}

static size_t count_with(const char *pre, const char *tok, const char *post)
{
	char buf[2048];
	snprintf(buf, sizeof(buf), "%s%s%s", pre, tok, post);
	struct inspect_stream s;
	return scan(NULL, buf, &s);
}

static void test_boundaries(void **state)
{
	(void)state;
	char gh[64] = "gh" "p_";
	add_rand(gh, 36, ALNUM);
	assert_int_equal(count_with("", gh, ""), 1);
	assert_int_equal(count_with("=", gh, ""), 1);
	assert_int_equal(count_with("\"", gh, "\""), 1);
	assert_int_equal(count_with("x", gh, ""), 0);
	assert_int_equal(count_with("9", gh, ""), 0);
	assert_int_equal(count_with("_", gh, ""), 0);
	/* The bytes after the decision are not looked at. */
	assert_int_equal(count_with("", gh, "Z"), 1);
	char short_gh[64];
	memcpy(short_gh, gh, 39);
	short_gh[39] = '\0';
	assert_int_equal(count_with("", short_gh, ""), 0);
	assert_int_equal(count_with("", short_gh, "!"), 0);

	char ak[32] = "AK" "IA";
	add_rand(ak, 16, UPDIG);
	assert_int_equal(count_with("", ak, ""), 1);
	assert_int_equal(count_with("key_", ak, ""), 1);
	assert_int_equal(count_with("A", ak, ""), 0);
	assert_int_equal(count_with("a", ak, ""), 0);
	char ak_low[32] = "AK" "IA";
	add_rand(ak_low, 15, UPDIG);
	add(ak_low, "z");
	assert_int_equal(count_with("", ak_low, ""), 0);

	/* "sk-" inside a word ("task-...") is not a key. */
	char oa[64] = "";
	add_rand(oa, 48, ALNUM);
	assert_int_equal(count_with("ta" "sk-", oa, ""), 0);
	assert_int_equal(count_with(" sk" "-", oa, ""), 1);
	assert_int_equal(count_with("-sk" "-", oa, ""), 0);

	/* AWS secret keys need the keyword within 64 bytes before. */
	char sec[64] = "";
	add_rand(sec, 40, B64STD);
	assert_int_equal(count_with("", sec, ""), 0);
	assert_int_equal(count_with("client_secret=", sec, ""), 0);
	assert_int_equal(count_with("secret=", sec, ""), 0);
	assert_int_equal(count_with("aws_secret_access_key=", sec, ""), 1);
	assert_int_equal(count_with("AWS_SECRET_ACCESS_KEY: ", sec, ""), 1);
	assert_int_equal(count_with("{\"SecretAccessKey\":\"", sec, "\"}"), 1);
	assert_int_equal(count_with("aws-secret = ", sec, ""), 1);
	assert_int_equal(count_with("aws.secret.access.key=", sec, ""), 1);
	assert_int_equal(count_with("secret_access_key=", sec, ""), 1);
	char gap[128];
	memset(gap, ' ', sizeof(gap));
	memcpy(gap, "aws_secret=", 11);
	gap[10 + 64] = '\0'; /* the value starts 64 bytes after the keyword */
	assert_int_equal(count_with(gap, sec, ""), 1);
	gap[10 + 64] = ' ';
	gap[10 + 65] = '\0';
	assert_int_equal(count_with(gap, sec, ""), 0);

	/* cordon's own tokens are found inside words too, but need all 64
	 * hex digits. */
	char cdn[96] = "cdn_" "mcp_";
	add_rand(cdn, 64, HEXLO);
	assert_int_equal(count_with("x", cdn, ""), 1);
	assert_int_equal(count_with("Bearer ", cdn, "\r\n"), 1);
	cdn[8 + 63] = 'g';
	assert_int_equal(count_with("", cdn, ""), 0);
	cdn[8 + 63] = '\0';
	assert_int_equal(count_with("", cdn, ""), 0);

	/* JWTs: the header must name "alg", the payload must be a JSON object. */
	char jwt[512] = "";
	b64url_json(jwt, "{\"typ\":\"JWT\",\"cty\":\"x\"}");
	add(jwt, ".");
	b64url_json(jwt, "{\"sub\":\"user-8812\",\"iat\":1700000000}");
	assert_int_equal(count_with("", jwt, ".abc"), 0);
	char jwt2[512] = "";
	b64url_json(jwt2, "{\"alg\":\"ES256\",\"typ\":\"JWT\"}");
	add(jwt2, ".abc");
	add_rand(jwt2, 60, B64URL);
	assert_int_equal(count_with("", jwt2, ""), 0);
	char jwt3[1024] = "";
	b64url_json(jwt3, "{\"alg\":\"ES256\",\"x5u\":\"https://");
	add_rand(jwt3, 400, ALNUM); /* a header longer than the window allows */
	add(jwt3, ".");
	b64url_json(jwt3, "{\"sub\":\"user-8812\",\"iat\":1700000000}");
	assert_int_equal(count_with("", jwt3, ""), 0);

	/* Private keys: the BEGIN line alone (as code quotes it) is not. */
	assert_int_equal(count_with("const char *h = \"-----BEGIN RSA " "PRIVATE" " KEY-----\";", "",
				    ""),
			 0);
	assert_int_equal(count_with("-----BEGIN " "PUBLIC" " KEY-----\nMIIBIjANBgkqhkiG9w0BAQEF", "",
				    ""),
			 0);
	assert_int_equal(count_with("-----BEGIN CERTIFICATE-----\nMIIBIjANBgkqhkiG9w0BAQEF", "", ""),
			 0);

	/* Slack tokens need the dashes of their id-id-secret structure. */
	char sl[64] = "xo" "xb-";
	add_rand(sl, 40, ALNUM);
	assert_int_equal(count_with("", sl, ""), 0);
}

/* ---------------------------------------------------------------------------
 * Streaming
 */

/* A request with several credentials and filler long enough that both the
 * junction and the in-place scan are used. */
static size_t make_stream(char *buf, size_t cap, const struct tp *t, size_t nt, size_t filler)
{
	size_t n = 0;
	n += (size_t)snprintf(buf + n, cap - n, "POST /upload HTTP/1.1\r\nHost: h\r\n\r\n");
	for (size_t i = 0; i < nt; i++) {
		for (size_t f = 0; f < filler && n + 1 < cap; f++)
			buf[n++] = "lorem ipsum dolor sit amet, "[f % 28];
		n += (size_t)snprintf(buf + n, cap - n, " %s ", t[i].tok);
	}
	buf[n] = '\0';
	return n;
}

static void test_split_everywhere(void **state)
{
	(void)state;
	static struct tp all[64];
	size_t nt = make_true_positives(all);
	static struct tp t[64];
	/* Up to 15 distinct patterns: below the cap, so none is cut off. */
	size_t k = 0;
	for (size_t i = 0; i < nt && k < 15; i++) {
		bool dup = false;
		for (size_t j = 0; j < k; j++)
			dup |= strcmp(t[j].name, all[i].name) == 0;
		if (!dup)
			t[k++] = all[i];
	}
	static char buf[32768];
	size_t n = make_stream(buf, sizeof(buf), t, k, 100);
	struct inspect_stream whole;
	inspect_stream_init(&whole, NULL);
	assert_int_equal(inspect_feed(&whole, buf, n), k);
	for (size_t i = 0; i < k; i++)
		assert_string_equal(whole.findings[i].name, t[i].name);

	for (size_t cut = 0; cut <= n; cut++) {
		struct inspect_stream s;
		inspect_stream_init(&s, NULL);
		inspect_feed(&s, buf, cut);
		inspect_feed(&s, buf + cut, n - cut);
		char what[64];
		snprintf(what, sizeof(what), "cut at %zu", cut);
		assert_same_findings(&whole, &s, what);
	}
	static const size_t pieces[] = { 1, 2, 3, 7, 64, 510, 511, 512, 513, 1000, 1023 };
	for (size_t p = 0; p < sizeof(pieces) / sizeof(pieces[0]); p++) {
		struct inspect_stream s;
		inspect_stream_init(&s, NULL);
		feed(&s, buf, n, pieces[p]);
		char what[64];
		snprintf(what, sizeof(what), "pieces of %zu", pieces[p]);
		assert_same_findings(&whole, &s, what);
	}
	for (int round = 0; round < 200; round++) {
		struct inspect_stream s;
		inspect_stream_init(&s, NULL);
		for (size_t i = 0; i < n;) {
			size_t l = rnd() % 700;
			if (l > n - i)
				l = n - i;
			inspect_feed(&s, buf + i, l);
			i += l;
		}
		assert_same_findings(&whole, &s, "random pieces");
	}
}

/* Every cut through every single credential, in a short and in a long
 * stream (where the token sits past the first TAIL_KEEP bytes). */
static void test_split_each_token(void **state)
{
	(void)state;
	static struct tp t[64];
	size_t nt = make_true_positives(t);
	for (size_t lead = 0; lead < 2; lead++) {
		for (size_t i = 0; i < nt; i++) {
			static char buf[4096];
			size_t pad = lead ? 700 : 0;
			memset(buf, '.', pad);
			snprintf(buf + pad, sizeof(buf) - pad, "%s;", t[i].tok);
			size_t n = strlen(buf);
			for (size_t cut = 0; cut <= n; cut++) {
				struct inspect_stream s;
				inspect_stream_init(&s, NULL);
				inspect_feed(&s, buf, cut);
				inspect_feed(&s, buf + cut, n - cut);
				if (s.n_findings != 1 || strcmp(s.findings[0].name, t[i].name) != 0)
					fail_msg("%s cut at %zu (pad %zu): %zu findings", t[i].name,
						 cut, pad, s.n_findings);
			}
		}
	}
}

/* Findings come in the order of their first occurrence, whatever repeats. */
static void test_order_of_first_occurrence(void **state)
{
	(void)state;
	char gh1[64] = "gh" "p_", gh2[64] = "gh" "p_", ak[32] = "AK" "IA";
	add_rand(gh1, 36, ALNUM);
	add_rand(gh2, 36, ALNUM);
	add_rand(ak, 16, UPDIG);
	char text[256];
	snprintf(text, sizeof(text), "a=%s&b=%s&c=%s&d=%s", gh1, ak, gh2, ak);
	size_t n = strlen(text);
	for (size_t piece = 0; piece < n; piece++) {
		struct inspect_stream s;
		inspect_stream_init(&s, NULL);
		feed(&s, text, n, piece);
		assert_int_equal(s.n_findings, 2);
		assert_string_equal(s.findings[0].name, "github_personal_access_token");
		assert_string_equal(s.findings[1].name, "aws_access_key_id");
	}
}

static void test_tail_not_reported_twice(void **state)
{
	(void)state;
	char gh[64] = "gh" "p_";
	add_rand(gh, 36, ALNUM);
	struct inspect_stream s;
	inspect_stream_init(&s, NULL);
	assert_int_equal(inspect_feed(&s, gh, strlen(gh)), 1);
	/* The engine clears the findings after reporting them in audit-only
	 * mode; the token still in the carried tail must not come back. */
	s.n_findings = 0;
	for (int i = 0; i < 100; i++)
		assert_int_equal(inspect_feed(&s, "x", 1), 0);
	assert_int_equal(inspect_feed(&s, " ", 1), 0);
	assert_int_equal(inspect_feed(&s, "", 0), 0);
	assert_int_equal(inspect_feed(&s, NULL, 5), 0);
	/* A second occurrence is a new finding once the list was cleared. */
	assert_int_equal(inspect_feed(&s, gh, strlen(gh)), 1);
	/* Repeats within a stream are one finding, for every detector, in one
	 * piece or in separate ones. */
	static struct tp t[64];
	size_t nt = make_true_positives(t);
	for (size_t i = 0; i < nt; i++) {
		inspect_stream_init(&s, NULL);
		for (int r = 0; r < 3; r++) {
			inspect_feed(&s, t[i].tok, strlen(t[i].tok));
			inspect_feed(&s, " ", 1);
		}
		if (s.n_findings != 1)
			fail_msg("%s repeated: %zu findings", t[i].name, s.n_findings);
		static char buf[8192];
		snprintf(buf, sizeof(buf), "%s %s %s", t[i].tok, t[i].tok, t[i].tok);
		assert_int_equal(scan(NULL, buf, &s), 1);
	}
}

/* ---------------------------------------------------------------------------
 * Secrets
 */

static char *hex(const unsigned char *v, size_t n, const char *digits)
{
	char *o = malloc(2 * n + 1);
	for (size_t i = 0; i < n; i++) {
		o[2 * i] = digits[v[i] >> 4];
		o[2 * i + 1] = digits[v[i] & 15];
	}
	o[2 * n] = '\0';
	return o;
}

static char *pct(const unsigned char *v, size_t n, const char *digits, bool form)
{
	char *o = malloc(3 * n + 1);
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = v[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			o[k++] = (char)c;
		} else if (form && c == ' ') {
			o[k++] = '+';
		} else {
			o[k++] = '%';
			o[k++] = digits[c >> 4];
			o[k++] = digits[c & 15];
		}
	}
	o[k] = '\0';
	return o;
}

static char *json(const unsigned char *v, size_t n, int style)
{
	char *o = malloc(6 * n + 1);
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = v[i];
		if (c == '"' || c == '\\' || (style == 1 && c == '/')) {
			o[k++] = '\\';
			o[k++] = (char)c;
		} else if (c == '\n') {
			o[k++] = '\\';
			o[k++] = 'n';
		} else if (c < 0x20 || (style == 2 && (c == '<' || c == '>' || c == '&'))) {
			k += (size_t)sprintf(o + k, "\\u%04x", c);
		} else {
			o[k++] = (char)c;
		}
	}
	o[k] = '\0';
	return o;
}

/* A value whose encodings all differ from each other and from the raw
 * bytes. */
static const char secret_value[] = "pw/7+Vq \"x\"\n<a&b>~K9z%";
static const char other_value[] = "entirely-different-secret-value";

static const struct inspect_secret two_secrets[] = {
	{ "db_password", secret_value, sizeof(secret_value) - 1 },
	{ "other", other_value, sizeof(other_value) - 1 },
};

static void expect_secret(const struct inspector *in, const char *text, const char *what)
{
	struct inspect_stream s;
	inspect_stream_init(&s, in);
	size_t n = inspect_feed(&s, text, strlen(text));
	if (n != 1 || !s.findings[0].is_secret || strcmp(s.findings[0].name, "db_password") != 0)
		fail_msg("%s: %zu findings", what, n);
	/* The same, byte by byte. */
	inspect_stream_init(&s, in);
	feed(&s, text, strlen(text), 1);
	if (s.n_findings != 1 || strcmp(s.findings[0].name, "db_password") != 0)
		fail_msg("%s (byte by byte): %zu findings", what, s.n_findings);
	for (size_t i = 0; i < s.n_findings; i++) {
		assert_null(strstr(s.findings[i].name, secret_value));
		assert_null(strstr(s.findings[i].name, "pw/7"));
	}
}

static void test_secret_encodings(void **state)
{
	(void)state;
	struct inspector *in = new_inspector(two_secrets, 2);
	const unsigned char *v = (const unsigned char *)secret_value;
	size_t n = sizeof(secret_value) - 1;
	char text[4096];

	snprintf(text, sizeof(text), "POST / HTTP/1.1\r\n\r\npassword=%s&x=1", secret_value);
	expect_secret(in, text, "raw");
	snprintf(text, sizeof(text), "%s", secret_value);
	expect_secret(in, text, "raw, alone");

	/* base64 and base64url, inside a larger blob, at every alignment. */
	for (int alphabet = 0; alphabet < 2; alphabet++) {
		for (size_t pre = 0; pre < 6; pre++) {
			for (size_t post = 0; post < 4; post++) {
				unsigned char blob[256];
				for (size_t i = 0; i < pre; i++)
					blob[i] = (unsigned char)rnd();
				memcpy(blob + pre, v, n);
				for (size_t i = 0; i < post; i++)
					blob[pre + n + i] = (unsigned char)rnd();
				char *e = b64(blob, pre + n + post, alphabet ? B64URL : B64STD);
				snprintf(text, sizeof(text), "{\"data\":\"%s\"}", e);
				char what[64];
				snprintf(what, sizeof(what), "base64%s pre %zu post %zu",
					 alphabet ? "url" : "", pre, post);
				expect_secret(in, text, what);
				free(e);
			}
		}
	}
	char *e;
	e = hex(v, n, "0123456789abcdef");
	snprintf(text, sizeof(text), "h=%s", e);
	expect_secret(in, text, "hex");
	free(e);
	e = hex(v, n, "0123456789ABCDEF");
	snprintf(text, sizeof(text), "h=%s", e);
	expect_secret(in, text, "HEX");
	free(e);
	e = pct(v, n, "0123456789ABCDEF", false);
	snprintf(text, sizeof(text), "GET /?p=%s HTTP/1.1", e);
	expect_secret(in, text, "percent");
	free(e);
	e = pct(v, n, "0123456789abcdef", false);
	snprintf(text, sizeof(text), "GET /?p=%s HTTP/1.1", e);
	expect_secret(in, text, "percent, lower case");
	free(e);
	e = pct(v, n, "0123456789ABCDEF", true);
	snprintf(text, sizeof(text), "a=1&p=%s", e);
	expect_secret(in, text, "form");
	free(e);
	for (int style = 0; style < 3; style++) {
		e = json(v, n, style);
		snprintf(text, sizeof(text), "{\"p\": \"%s\"}", e);
		expect_secret(in, text, "json");
		free(e);
	}

	/* Half of a short value, or a neighbour of it, is not the value. */
	struct inspect_stream s;
	snprintf(text, sizeof(text), "x=%.*s", (int)(n / 2), secret_value);
	assert_int_equal(scan(in, text, &s), 0);
	assert_int_equal(scan(in, "entirely-different-secret-valu", &s), 0);
	assert_int_equal(scan(in, "xentirely-different-secret-value", &s), 1);
	assert_string_equal(s.findings[0].name, "other");
	assert_true(s.findings[0].is_secret);
	inspector_free(in);
}

static void test_secret_long(void **state)
{
	(void)state;
	static unsigned char v[1000];
	for (size_t i = 0; i < sizeof(v); i++)
		v[i] = (unsigned char)rnd();
	struct inspect_secret sec = { "signing_key", (const char *)v, sizeof(v) };
	struct inspector *in = new_inspector(&sec, 1);
	static char text[8192];
	struct inspect_stream s;

	/* 300 raw bytes from the middle. */
	memcpy(text, "x=", 2);
	memcpy(text + 2, v + 333, 300);
	inspect_stream_init(&s, in);
	feed(&s, text, 302, 0);
	assert_int_equal(s.n_findings, 1);
	inspect_stream_init(&s, in);
	feed(&s, text, 302, 1);
	assert_int_equal(s.n_findings, 1);
	/* The hex of bytes 100..400, the base64 of the whole, in pieces. */
	char *e = hex(v + 100, 300, "0123456789abcdef");
	inspect_stream_init(&s, in);
	feed(&s, e, strlen(e), 13);
	assert_int_equal(s.n_findings, 1);
	free(e);
	e = b64(v, sizeof(v), B64STD);
	for (size_t piece = 0; piece < 700; piece += 97) {
		inspect_stream_init(&s, in);
		feed(&s, e, strlen(e), piece);
		assert_int_equal(s.n_findings, 1);
		assert_string_equal(s.findings[0].name, "signing_key");
	}
	/* The last 200 bytes of the base64: found by the end-aligned chunk. */
	inspect_stream_init(&s, in);
	feed(&s, e + strlen(e) - 200, 200, 0);
	assert_int_equal(s.n_findings, 1);
	free(e);
	/* 100 raw bytes are less than two chunks: not enough to be sure. */
	inspect_stream_init(&s, in);
	feed(&s, (const char *)v + 500, 100, 0);
	assert_int_equal(s.n_findings, 0);
	inspector_free(in);
}

static void test_secret_validation(void **state)
{
	(void)state;
	struct inspector *in = (struct inspector *)1;
	struct cdn_err err = { 0 };
	struct inspect_secret s = { "short", "1234567", 7 };
	assert_true(inspector_new(&s, 1, &in, &err) < 0);
	assert_null(in);
	assert_non_null(strstr(err.msg, "short"));
	assert_null(strstr(err.msg, "1234567"));
	s.value = "12345678";
	s.len = 8;
	assert_int_equal(inspector_new(&s, 1, &in, &err), 0);
	struct inspect_stream st;
	assert_int_equal(scan(in, "pin 12345678.", &st), 1);
	inspector_free(in);

	static char big[INSPECT_MAX_SECRET_LEN + 1];
	memset(big, 'q', sizeof(big));
	s = (struct inspect_secret){ "big", big, sizeof(big) };
	assert_true(inspector_new(&s, 1, &in, &err) < 0);
	assert_non_null(strstr(err.msg, "longer"));
	s = (struct inspect_secret){ NULL, "abcdefghij", 10 };
	assert_true(inspector_new(&s, 1, &in, &err) < 0);
	assert_non_null(strstr(err.msg, "no name"));
	s = (struct inspect_secret){ "nul", NULL, 10 };
	assert_true(inspector_new(&s, 1, &in, &err) < 0);
	static struct inspect_secret many[INSPECT_MAX_SECRETS + 1];
	for (size_t i = 0; i < INSPECT_MAX_SECRETS + 1; i++)
		many[i] = (struct inspect_secret){ "m", "abcdefghij", 10 };
	assert_true(inspector_new(many, INSPECT_MAX_SECRETS + 1, &in, &err) < 0);
	assert_int_equal(inspector_new(many, INSPECT_MAX_SECRETS, &in, &err), 0);
	inspector_free(in);
	assert_int_equal(inspector_new(NULL, 0, &in, &err), 0);
	assert_non_null(in);
	assert_int_equal(scan(in, "nothing here", &st), 0);
	inspector_free(in);
	inspector_free(NULL);
}

/* The largest inspector the bounds allow builds, and scans. */
static void test_secret_limits(void **state)
{
	(void)state;
	static char vals[INSPECT_MAX_SECRETS][INSPECT_MAX_SECRET_LEN];
	static struct inspect_secret sec[INSPECT_MAX_SECRETS];
	static char names[INSPECT_MAX_SECRETS][16];
	for (size_t i = 0; i < INSPECT_MAX_SECRETS; i++) {
		for (size_t j = 0; j < INSPECT_MAX_SECRET_LEN; j++)
			vals[i][j] = (char)rnd();
		snprintf(names[i], sizeof(names[i]), "s%zu", i);
		sec[i] = (struct inspect_secret){ names[i], vals[i], INSPECT_MAX_SECRET_LEN };
	}
	struct inspector *in = new_inspector(sec, INSPECT_MAX_SECRETS);
	struct inspect_stream s;
	inspect_stream_init(&s, in);
	feed(&s, vals[63] + 4000, 1000, 0);
	feed(&s, vals[7] + 10, 300, 0);
	assert_int_equal(s.n_findings, 2);
	assert_string_equal(s.findings[0].name, "s63");
	assert_string_equal(s.findings[1].name, "s7");
	inspector_free(in);
}

static void test_findings_cap(void **state)
{
	(void)state;
	static char vals[20][32];
	static char names[20][16];
	struct inspect_secret sec[20];
	static char text[4096];
	size_t n = 0;
	for (size_t i = 0; i < 20; i++) {
		snprintf(vals[i], sizeof(vals[i]), "secret-number-%02zu-", i);
		add_rand(vals[i], 8, ALNUM);
		snprintf(names[i], sizeof(names[i]), "sec%zu", i);
		sec[i] = (struct inspect_secret){ names[i], vals[i], strlen(vals[i]) };
		n += (size_t)snprintf(text + n, sizeof(text) - n, "k%zu=%s&", i, vals[i]);
	}
	struct inspector *in = new_inspector(sec, 20);
	struct inspect_stream whole;
	inspect_stream_init(&whole, in);
	assert_int_equal(inspect_feed(&whole, text, n), INSPECT_MAX_FINDINGS);
	for (size_t i = 0; i < INSPECT_MAX_FINDINGS; i++)
		assert_string_equal(whole.findings[i].name, names[i]);
	for (size_t piece = 1; piece < 64; piece++) {
		struct inspect_stream s;
		inspect_stream_init(&s, in);
		feed(&s, text, n, piece);
		assert_same_findings(&whole, &s, "capped");
	}
	inspector_free(in);
}

static void test_patterns_and_secrets_split(void **state)
{
	(void)state;
	struct inspector *in = new_inspector(two_secrets, 2);
	static char text[8192];
	char gh[64] = "gh" "o_";
	add_rand(gh, 36, ALNUM);
	char *e = b64((const unsigned char *)secret_value, sizeof(secret_value) - 1, B64STD);
	int n = snprintf(text, sizeof(text), "%0600d a=%s&b=%s&c=%s", 0, e, gh, other_value);
	free(e);
	struct inspect_stream whole;
	inspect_stream_init(&whole, in);
	assert_int_equal(inspect_feed(&whole, text, (size_t)n), 3);
	assert_string_equal(whole.findings[0].name, "db_password");
	assert_string_equal(whole.findings[1].name, "github_oauth_token");
	assert_string_equal(whole.findings[2].name, "other");
	for (int cut = 0; cut <= n; cut++) {
		struct inspect_stream s;
		inspect_stream_init(&s, in);
		inspect_feed(&s, text, (size_t)cut);
		inspect_feed(&s, text + cut, (size_t)(n - cut));
		assert_same_findings(&whole, &s, "mixed");
	}
	inspector_free(in);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pattern_names),
		cmocka_unit_test(test_true_positives),
		cmocka_unit_test(test_anthropic_is_not_openai),
		cmocka_unit_test(test_examples_ignored),
		cmocka_unit_test(test_low_entropy_ignored),
		cmocka_unit_test(test_boundaries),
		cmocka_unit_test(test_split_everywhere),
		cmocka_unit_test(test_split_each_token),
		cmocka_unit_test(test_order_of_first_occurrence),
		cmocka_unit_test(test_tail_not_reported_twice),
		cmocka_unit_test(test_secret_encodings),
		cmocka_unit_test(test_secret_long),
		cmocka_unit_test(test_secret_validation),
		cmocka_unit_test(test_secret_limits),
		cmocka_unit_test(test_findings_cap),
		cmocka_unit_test(test_patterns_and_secrets_split),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
