/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Credential inspection (contract in inspect.h; the detectors and their
 * false-positive controls are described in docs/inspection.md, and are in
 * inspect_patterns.c; the secrets and the streams are here).
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
#include "egress/inspect_internal.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "base/b64.h"
#include "base/cleanup.h"
#include "base/tokens.h"

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
		return cdn_err_msg(err, E2BIG, "inspector: %zu secrets, at most %d", n,
				   INSPECT_MAX_SECRETS);
	if (n && !secrets)
		return cdn_err_msg(err, EINVAL, "inspector: no secret list");
	size_t arena = 0;
	for (size_t i = 0; i < n; i++) {
		const struct inspect_secret *s = &secrets[i];
		if (!s->name || !*s->name)
			return cdn_err_msg(err, EINVAL, "inspector: secret %zu has no name", i);
		/* Messages name the secret, never its value. */
		if (!s->value || s->len < INSPECT_MIN_SECRET_LEN)
			return cdn_err_msg(err, EINVAL,
					   "inspector: secret '%.*s' is shorter than %d bytes "
					   "(it would match everywhere)",
					   SECRET_NAME_MAX, s->name, INSPECT_MIN_SECRET_LEN);
		if (s->len > INSPECT_MAX_SECRET_LEN)
			return cdn_err_msg(err, EINVAL,
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
				if (fd->name == inspect_pattern_table[i])
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
		f->name =
		    f->is_secret ? s->in->names[best - N_PATTERNS] : inspect_pattern_table[best];
	}
	for (size_t i = 0; i < N_IDS; i++)
		sc->first_end[i] = NO_MATCH;
}

static void scan_region(struct scan *sc, struct inspect_stream *s, const char *buf, size_t len,
			size_t min_end)
{
	if (!s->secrets_only)
		inspect_scan_patterns(sc, buf, len, min_end);
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
