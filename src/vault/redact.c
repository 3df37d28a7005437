/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Redaction of secret values (contract in redact.h, the operator's view in
 * docs/vault.md).
 *
 * Needles. Each secret contributes its raw value and, when the value is at
 * least B64_MIN_VALUE bytes long, its standard base64 and base64url
 * encodings at the three byte alignments (what `base64` prints for the value
 * alone, and what the value looks like inside a longer encoded blob such as
 * an HTTP Basic credential "user:password"). Only the encoded characters
 * fixed by the value's bits alone are kept, so the needle matches whatever
 * the value is preceded or followed by inside the blob.
 *
 * cordon's own tokens (MCP tokens and sessions, API keys) are needles of
 * every redactor: a fixed prefix and then 64 hex digits.
 *
 * Matching. At each position the longest needle that matches wins (ties:
 * the secret listed first, raw before encoded), its marker is written, and
 * scanning resumes after it: replaced text is never re-scanned. Whether a
 * needle matches at position i depends only on the bytes [i, i + longest),
 * or on the bytes up to the end when the stream ends sooner. So the stream
 * decides a position once no needle longer than the bytes it has from there
 * could still match (or at redact_finish), and holds the rest back: the
 * output is then the same for every way the input is cut into pieces, byte
 * for byte, and text that cannot start a needle is never held.
 *
 * Cost. Each position is probed with a bitmap of the needles' first two
 * bytes; only positions that pass are compared, against the needles that
 * start with that byte, longest first. For values with no long
 * self-repetition this is linear in the input. A value built from a
 * repeated pattern ("abababab...") can make every position compare up to
 * its length: the worst case is O(input x longest needle).
 */
#include "vault/redact.h"

#include "base/b64.h"
#include "base/secure.h"
#include "base/tokens.h"
#include "store/store.h"

#include <ctype.h>
#include <errno.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Secret names appear in the marker; the store caps them at 64 bytes of
 * [A-Za-z0-9._-] and so do we, so a name cannot forge marker syntax ("]"). */
#define NAME_MAX_LEN  STORE_MAX_NAME
#define MARKER_PREFIX "[REDACTED:"
#define MARKER_SUFFIX "]"
#define MARKER_MAX    (sizeof(MARKER_PREFIX) - 1 + NAME_MAX_LEN + sizeof(MARKER_SUFFIX) - 1)

/* Values at least this long are also redacted in base64. Shorter values have
 * encodings of under ten characters, which would start matching ordinary
 * base64 text (hashes, ids) by chance. */
#define B64_MIN_VALUE 8
/* Encodings per value: {standard, url} x {alignment 0, 1, 2}. */
#define B64_VARIANTS	   6
#define NEEDLES_PER_SECRET (3 + B64_VARIANTS) /* raw, lower and upper case, base64 */

_Static_assert(REDACT_MIN_LEN >= 2, "the prefix filter reads two bytes");

struct marker {
	char text[MARKER_MAX + 1];
	size_t len;
};

struct needle {
	const unsigned char *bytes; /* in the redactor's arena, or a token prefix */
	size_t len;		    /* whole match: the fixed bytes and then `hex` digits */
	unsigned prio;		    /* lower wins among equal lengths */
	const struct marker *marker;
	size_t hex; /* a cordon token: the last `hex` bytes are any hex digits */
};

/*
 * cordon's own credentials, redacted from every run whatever it was
 * granted: the run's MCP tokens are in its environment, and an API key or
 * a session id may reach it through a file or a tool. Each is a prefix and
 * 64 hex digits (keys.h, mcp.h); the digits match in either case, and the
 * prefix as written or all in capitals.
 */
#define TOKEN_HEX CDN_TOKEN_HEX
static const struct token {
	const char *prefix;
	const char *marker;
} tokens[] = {
	{ CDN_TOKEN_MCP_PREFIX, "cordon_mcp_token" },
	{ CDN_TOKEN_SESSION_PREFIX, "cordon_mcp_session" },
	{ CDN_TOKEN_API_KEY_PREFIX, "cordon_api_key" },
};
#define TOKEN_PREFIX_MAX 16
_Static_assert(sizeof(CDN_TOKEN_SESSION_PREFIX) <= TOKEN_PREFIX_MAX, "the longest prefix fits");
#define N_TOKENS (sizeof(tokens) / sizeof(tokens[0]))

struct redactor {
	size_t longest;
	struct marker *markers;
	struct marker token_markers[N_TOKENS];
	char token_upper[N_TOKENS][TOKEN_PREFIX_MAX]; /* the prefixes in capitals */
	struct needle *needles; /* sorted: first byte, then longest first, then prio */
	size_t n_needles;
	size_t first[257];	   /* needles starting with byte b: [first[b], first[b+1]) */
	uint64_t pair[65536 / 64]; /* bit (b0 << 8 | b1): some needle starts b0 b1 */
	unsigned char *arena;	   /* every needle's bytes; sodium memory, read-only */
	size_t arena_len;
};

/* ---------------------------------------------------------------------------
 * Building
 */

static int needle_cmp(const void *a, const void *b)
{
	const struct needle *x = a, *y = b;
	if (x->bytes[0] != y->bytes[0])
		return x->bytes[0] < y->bytes[0] ? -1 : 1;
	if (x->len != y->len)
		return x->len > y->len ? -1 : 1;
	return x->prio < y->prio ? -1 : x->prio > y->prio;
}

static void needle_add(struct redactor *r, size_t *used, const unsigned char *bytes, size_t len,
		       unsigned prio, const struct marker *m)
{
	r->needles[r->n_needles++] = (struct needle){ bytes, len, prio, m, 0 };
	*used += len;
	if (len > r->longest)
		r->longest = len;
}

static int check_secrets(const struct redact_secret *secrets, size_t n, struct cdn_err *err)
{
	if (n > REDACT_MAX_SECRETS)
		return cdn_err_msg(err, E2BIG, "redact %zu secrets: at most %d", n,
				   REDACT_MAX_SECRETS);
	for (size_t i = 0; i < n; i++) {
		const struct redact_secret *s = &secrets[i];
		/* The name is not secret, but only a well-formed one is printed:
		 * a secret's name, as the vault holds it. */
		if (!store_secret_name_ok(s->name))
			return cdn_err_msg(err, EINVAL,
					   "redact secret #%zu: the name is not a secret name "
					   "([A-Za-z0-9][A-Za-z0-9._-], at most %d characters)",
					   i + 1, NAME_MAX_LEN);
		if (s->len < REDACT_MIN_LEN)
			return cdn_err_set(
			    err, EINVAL,
			    "redact secret %s: the value is %zu bytes, at least %d are "
			    "needed (a shorter one would match everywhere)",
			    s->name, s->len, REDACT_MIN_LEN);
		if (s->len > REDACT_MAX_LEN)
			return cdn_err_msg(err, E2BIG,
					   "redact secret %s: the value is %zu bytes, at most %d",
					   s->name, s->len, REDACT_MAX_LEN);
		if (!s->value)
			return cdn_err_msg(err, EINVAL, "redact secret %s: no value", s->name);
	}
	return 0;
}

/* Bytes of arena the secrets need (raw values and every encoding). */
/* The value in one case, when that differs from the value. */
static bool recased(const struct redact_secret *s, bool upper, unsigned char *out)
{
	bool differs = false;
	for (size_t i = 0; i < s->len; i++) {
		unsigned char c = (unsigned char)s->value[i];
		unsigned char d = upper ? (unsigned char)toupper(c) : (unsigned char)tolower(c);
		differs |= c != d;
		if (out)
			out[i] = d;
	}
	return differs;
}

static size_t arena_size(const struct redact_secret *secrets, size_t n)
{
	size_t total = 0;
	for (size_t i = 0; i < n; i++) {
		total += secrets[i].len;
		/* Case-insensitive places (host names, hex) show a value in one
		 * case: an event's host is lower-cased before it is written. */
		total += recased(&secrets[i], false, NULL) ? secrets[i].len : 0;
		total += recased(&secrets[i], true, NULL) ? secrets[i].len : 0;
		if (secrets[i].len >= B64_MIN_VALUE)
			for (unsigned a = 0; a < 3; a++)
				total +=
				    2 * cdn_b64_needle(NULL, secrets[i].len, a, CDN_B64_STD, NULL);
	}
	return total;
}

/* Fills the arena with the needles and indexes them. */
static void needles_build(struct redactor *r, const struct redact_secret *secrets, size_t n)
{
	size_t used = 0;
	unsigned prio = 0;

	/* Raw values first: on a tie they name the secret, not an encoding. */
	for (size_t i = 0; i < n; i++) {
		memcpy(r->arena + used, secrets[i].value, secrets[i].len);
		needle_add(r, &used, r->arena + used, secrets[i].len, prio++, &r->markers[i]);
	}
	for (size_t i = 0; i < n; i++)
		for (int upper = 0; upper < 2; upper++)
			if (recased(&secrets[i], upper, NULL)) {
				recased(&secrets[i], upper, r->arena + used);
				needle_add(r, &used, r->arena + used, secrets[i].len, prio++,
					   &r->markers[i]);
			}
	for (size_t i = 0; i < n; i++) {
		const unsigned char *v = (const unsigned char *)secrets[i].value;
		if (secrets[i].len < B64_MIN_VALUE)
			continue;
		for (unsigned a = 0; a < 3; a++) {
			unsigned char *std = r->arena + used;
			size_t k = cdn_b64_needle(v, secrets[i].len, a, CDN_B64_STD, (char *)std);
			needle_add(r, &used, std, k, prio++, &r->markers[i]);
			/* The url alphabet differs only in '+' and '/'. */
			if (!memchr(std, '+', k) && !memchr(std, '/', k))
				continue;
			unsigned char *url = r->arena + used;
			cdn_b64_needle(v, secrets[i].len, a, CDN_B64_URL, (char *)url);
			needle_add(r, &used, url, k, prio++, &r->markers[i]);
		}
	}
	r->arena_len = used;

	/* Tokens last: a granted value that covers a token names the secret. */
	for (size_t t = 0; t < N_TOKENS; t++) {
		size_t pl = strlen(tokens[t].prefix);
		for (size_t i = 0; i < pl; i++)
			r->token_upper[t][i] = (char)toupper((unsigned char)tokens[t].prefix[i]);
		const char *forms[] = { tokens[t].prefix, r->token_upper[t] };
		for (size_t f = 0; f < 2; f++)
			r->needles[r->n_needles++] =
			    (struct needle){ (const unsigned char *)forms[f], pl + TOKEN_HEX,
					     prio++, &r->token_markers[t], TOKEN_HEX };
		if (pl + TOKEN_HEX > r->longest)
			r->longest = pl + TOKEN_HEX;
	}

	qsort(r->needles, r->n_needles, sizeof(r->needles[0]), needle_cmp);
	size_t k = 0;
	for (unsigned b = 0; b < 256; b++) {
		r->first[b] = k;
		while (k < r->n_needles && r->needles[k].bytes[0] == b)
			k++;
	}
	r->first[256] = k;
	for (size_t i = 0; i < r->n_needles; i++) {
		unsigned p = (unsigned)r->needles[i].bytes[0] << 8 | r->needles[i].bytes[1];
		r->pair[p / 64] |= 1ull << (p % 64);
	}
}

int redactor_new(const struct redact_secret *secrets, size_t n, struct redactor **out,
		 struct cdn_err *err)
{
	*out = NULL;
	int rc = check_secrets(secrets, n, err);
	if (rc < 0)
		return rc;
	/* sodium_malloc needs the page size that sodium_init measures. */
	if (sodium_init() < 0)
		return cdn_err_msg(err, EIO, "redact: libsodium could not initialise");

	struct redactor *r = calloc(1, sizeof(*r));
	if (!r)
		return cdn_err_set(err, ENOMEM, "redact: allocating the redactor");
	r->markers = calloc(n ? n : 1, sizeof(r->markers[0]));
	r->needles = calloc(n * NEEDLES_PER_SECRET + 2 * N_TOKENS, sizeof(r->needles[0]));
	size_t need = arena_size(secrets, n);
	/* The arena holds the values themselves: guarded, locked where the
	 * limit allows, read-only once built, and wiped by sodium_free. */
	if (need)
		r->arena = cdn_secure_malloc(need);
	if (!r->markers || !r->needles || (need && !r->arena)) {
		redactor_free(r);
		return cdn_err_set(err, ENOMEM, "redact: allocating %zu secrets", n);
	}
	for (size_t i = 0; i < n; i++) {
		struct marker *m = &r->markers[i];
		int k = snprintf(m->text, sizeof(m->text), MARKER_PREFIX "%s" MARKER_SUFFIX,
				 secrets[i].name);
		m->len = (size_t)k;
	}
	for (size_t t = 0; t < N_TOKENS; t++) {
		struct marker *m = &r->token_markers[t];
		int k = snprintf(m->text, sizeof(m->text), MARKER_PREFIX "%s" MARKER_SUFFIX,
				 tokens[t].marker);
		m->len = (size_t)k;
	}
	needles_build(r, secrets, n);
	if (need)
		sodium_mprotect_readonly(r->arena);
	*out = r;
	return 0;
}

void redactor_free(struct redactor *r)
{
	if (!r)
		return;
	if (r->arena)
		cdn_secure_free(r->arena); /* zeroes the values before unmapping */
	free(r->needles);
	free(r->markers);
	free(r);
}

/* ---------------------------------------------------------------------------
 * Matching
 */

static bool is_hex(unsigned char c)
{
	return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

/* Whether the n bytes at p agree with the first n bytes of the needle
 * (n <= nd->len). */
static bool agrees(const struct needle *nd, const unsigned char *p, size_t n)
{
	size_t fixed = nd->len - nd->hex;
	size_t k = n < fixed ? n : fixed;
	/* The last fixed byte first: cheap, and it stops long near-misses. */
	if (k && (p[k - 1] != nd->bytes[k - 1] || memcmp(p, nd->bytes, k) != 0))
		return false;
	for (size_t i = fixed; i < n; i++)
		if (!is_hex(p[i]))
			return false;
	return true;
}

/*
 * Decides position p, of which avail bytes are known: sets *out to the
 * needle that wins there, or NULL for none, and returns true. Returns false
 * when it cannot be decided yet: some needle longer than avail agrees with
 * every byte so far (unless the stream has ended: final). A needle that
 * matches wins only when no longer one is still possible, so the decision
 * is the one the whole stream would give, and bytes that cannot start a
 * needle are passed on at once rather than held.
 */
static bool decide(const struct redactor *r, const unsigned char *p, size_t avail, bool final,
		   const struct needle **out)
{
	*out = NULL;
	size_t i = r->first[p[0]], end = r->first[p[0] + 1];
	if (i == end)
		return true;
	if (avail < 2)
		return final;
	unsigned pair = (unsigned)p[0] << 8 | p[1];
	if (!(r->pair[pair / 64] & (1ull << (pair % 64))))
		return true;
	for (; i < end; i++) { /* longest first */
		const struct needle *nd = &r->needles[i];
		if (nd->len > avail) {
			if (!final && agrees(nd, p, avail))
				return false;
			continue;
		}
		if (agrees(nd, p, nd->len)) {
			*out = nd;
			return true;
		}
	}
	return true;
}

/* The needle that wins at p when the stream has ended avail bytes on. */
static const struct needle *match_at(const struct redactor *r, const unsigned char *p, size_t avail)
{
	const struct needle *nd;
	decide(r, p, avail, true, &nd);
	return nd;
}

static void emit(redact_out_fn out, void *ctx, const char *p, size_t n)
{
	if (n)
		out(ctx, p, n);
}

/*
 * Decides the positions of buf[0..len) from the left while they are before
 * stop and can be decided (always, when the stream has ended: final).
 * Unmatched bytes go out in runs, matches as markers. Returns the first
 * undecided position (a match may carry it past stop). A position is
 * undecided only while a needle longer than the bytes after it is still
 * possible, so fewer than `longest` bytes are ever left.
 */
static size_t scan(const struct redactor *r, const char *buf, size_t len, size_t stop, bool final,
		   redact_out_fn out, void *ctx)
{
	const unsigned char *u = (const unsigned char *)buf;
	size_t pos = 0, run = 0;
	while (pos < stop) {
		const struct needle *nd;
		if (!decide(r, u + pos, len - pos, final, &nd))
			break;
		if (!nd) {
			pos++;
			continue;
		}
		emit(out, ctx, buf + run, pos - run);
		out(ctx, nd->marker->text, nd->marker->len);
		pos += nd->len;
		run = pos;
	}
	emit(out, ctx, buf + run, pos - run);
	return pos;
}

/* ---------------------------------------------------------------------------
 * Streams
 */

/* The hold carries fewer than `longest` bytes between pieces, and while a
 * piece is joined to it, up to `longest` more. */
static size_t hold_cap(const struct redactor *r)
{
	return 2 * r->longest - 1;
}

int redact_stream_init(struct redact_stream *st, const struct redactor *r, struct cdn_err *err)
{
	*st = (struct redact_stream){ .r = r };
	size_t cap = hold_cap(r);
	st->hold = malloc(cap);
	if (!st->hold)
		return cdn_err_set(err, ENOMEM, "redact: allocating a %zu-byte stream buffer", cap);
	return 0;
}

void redact_feed(struct redact_stream *st, const char *p, size_t n, redact_out_fn out, void *ctx)
{
	const struct redactor *r = st->r;
	size_t longest = r->longest;
	size_t j = 0; /* first byte of p not yet decided */

	if (n == 0)
		return;
	if (st->hold_len > 0) {
		/*
		 * The junction: the held bytes followed by up to `longest` bytes
		 * of p, enough to decide every held position. Once those are
		 * decided the rest of p is scanned in place.
		 */
		size_t h = st->hold_len;
		size_t k = n < longest ? n : longest;
		memcpy(st->hold + h, p, k);
		size_t pos = scan(r, st->hold, h + k, h, false, out, ctx);
		if (pos < h) {
			/* Only when k == n < longest: all of p is held now. */
			memmove(st->hold, st->hold + pos, h + k - pos);
			st->hold_len = h + k - pos;
			return;
		}
		st->hold_len = 0;
		j = pos - h;
	}
	j += scan(r, p + j, n - j, n - j, false, out, ctx);
	memcpy(st->hold, p + j, n - j);
	st->hold_len = n - j;
}

void redact_finish(struct redact_stream *st, redact_out_fn out, void *ctx)
{
	if (st->hold_len > 0)
		scan(st->r, st->hold, st->hold_len, st->hold_len, true, out, ctx);
	if (st->hold)
		sodium_memzero(st->hold, hold_cap(st->r));
	st->hold_len = 0;
}

void redact_stream_free(struct redact_stream *st)
{
	if (!st)
		return;
	/* The hold may carry the first bytes of a value. */
	if (st->hold && st->r)
		sodium_memzero(st->hold, hold_cap(st->r));
	free(st->hold);
	st->hold = NULL;
	st->hold_len = 0;
}

/* ---------------------------------------------------------------------------
 * Whole strings
 */

struct growbuf {
	char *p;
	size_t len, cap;
	bool failed;
};

static void growbuf_add(void *ctx, const char *p, size_t n)
{
	struct growbuf *g = ctx;
	if (g->failed || n == 0)
		return;
	if (g->len + n + 1 > g->cap) {
		size_t cap = g->cap ? g->cap : 64;
		while (cap < g->len + n + 1)
			cap *= 2;
		char *np = realloc(g->p, cap);
		if (!np) {
			g->failed = true;
			return;
		}
		g->p = np;
		g->cap = cap;
	}
	memcpy(g->p + g->len, p, n);
	g->len += n;
}

const char *redact_find(const struct redactor *r, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	for (size_t pos = 0; pos < n; pos++) {
		const struct needle *nd = match_at(r, u + pos, n - pos);
		if (nd)
			return nd->marker->text;
	}
	return NULL;
}

size_t redact_longest(const struct redactor *r)
{
	return r->longest;
}

char *redact_string(const struct redactor *r, const char *s, size_t n, size_t *out_len)
{
	/* Room for the input as is; markers may grow it. */
	struct growbuf g = { .p = malloc(n + 1), .cap = n + 1 };
	if (!g.p)
		return NULL;
	scan(r, s, n, n, true, growbuf_add, &g);
	if (g.failed) {
		free(g.p);
		return NULL;
	}
	g.p[g.len] = '\0';
	if (out_len)
		*out_len = g.len;
	return g.p;
}
