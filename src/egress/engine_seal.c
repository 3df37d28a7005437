/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sealed secrets on the wire (vault/seal.h says what they are).
 *
 * The sandbox holds a placeholder of the same length and shape as the
 * secret. On a request to a host in the secret's scope the engine swaps
 * the value in: in the request target, in every header value but Host
 * (also inside `Basic` credentials), and in the body as it streams. On the
 * response from that host it swaps the other way, so an upstream that
 * echoes the credential (an error page, a debugging endpoint) does not
 * hand it to the agent. Anywhere else nothing is swapped, and content
 * inspection blocks the placeholder like the secret.
 *
 * Each secret is matched raw, percent-encoded and JSON-escaped. The
 * placeholder and the value differ only in letters and digits, which none
 * of those encodings touch, so each encoded placeholder has the length of
 * the encoded value: a swap never changes a length, a Content-Length or a
 * chunk size.
 *
 * An upstream can also echo the value in a form that cannot be swapped in
 * place: base64 (the `Basic` credentials the engine itself wrote), hex, a
 * compressed body, or split by chunk framing. So a request to a scope asks
 * for an unencoded response (Accept-Encoding: identity), a response that
 * is encoded anyway is refused, a chunked one is swapped and scanned
 * de-chunked and re-framed, and whatever the swap leaves is scanned with
 * an inspector of the sealed values (every encoding inspect.c knows): a
 * hit cuts the response before the bytes that hold it reach the agent.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/cleanup.h"
#include "egress/engine_internal.h"

struct seal_swap {
	const char *secret; /* its name (owned by the engine's scope list or here) */
	char *name;
	uint8_t *placeholder; /* what the sandbox has, in one encoding */
	uint8_t *value;	      /* the secret, in the same encoding (guarded memory) */
	size_t len;
	unsigned in; /* EGRESS_SEAL_IN_*: where else than credential headers */
};

/* Percent-encodes s into out (3 * len + 1): RFC 3986 unreserved bytes stay. */
static size_t pct(const uint8_t *s, size_t len, uint8_t *out)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		uint8_t c = s[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			out[n++] = c;
		} else {
			out[n++] = '%';
			out[n++] = (uint8_t)hex[c >> 4];
			out[n++] = (uint8_t)hex[c & 15];
		}
	}
	return n;
}

/* JSON string escaping of what JSON encoders escape (", \, /, controls);
 * out needs 6 * len + 1. */
static size_t jesc(const uint8_t *s, size_t len, uint8_t *out)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		uint8_t c = s[i];
		if (c == '"' || c == '\\' || c == '/') {
			out[n++] = '\\';
			out[n++] = c;
		} else if (c < 0x20) {
			n += (size_t)snprintf((char *)out + n, 7, "\\u%04x", c);
		} else {
			out[n++] = c;
		}
	}
	return n;
}

static int add_swap(struct egress_engine *e, const char *name, const uint8_t *ph,
		    const uint8_t *val, size_t len, unsigned in)
{
	for (size_t i = 0; i < e->n_swaps; i++)
		if (e->swaps[i].len == len && memcmp(e->swaps[i].placeholder, ph, len) == 0)
			return 0; /* the encoding changed nothing */
	if (e->n_swaps >= EGRESS_MAX_SWAPS)
		return -E2BIG;
	struct seal_swap *w = &e->swaps[e->n_swaps];
	w->name = strdup(name);
	w->placeholder = malloc(len);
	w->value = sodium_malloc(len ? len : 1);
	if (!w->name || !w->placeholder || !w->value) {
		free(w->name);
		free(w->placeholder);
		if (w->value)
			sodium_free(w->value);
		memset(w, 0, sizeof(*w));
		return -ENOMEM;
	}
	memcpy(w->placeholder, ph, len);
	memcpy(w->value, val, len);
	w->secret = w->name;
	w->len = len;
	w->in = in;
	e->n_swaps++;
	if (len > e->swap_max_len)
		e->swap_max_len = len;
	return 0;
}

/* An inspector of the values (not the placeholders), for responses. */
#define SEAL_WINDOW_MIN 16 /* bytes of a value found on their own */
static int seal_inspector(struct egress_engine *e, const struct egress_sealed *s, size_t n,
			  struct cdn_err *err)
{
	struct inspect_secret look[INSPECT_MAX_SECRETS];
	size_t k = 0;
	for (size_t i = 0; i < n && k < INSPECT_MAX_SECRETS; i++)
		if (s[i].len >= INSPECT_MIN_SECRET_LEN) /* shorter: like any bytes */
			look[k++] = (struct inspect_secret){ .name = s[i].name,
							     .value = (const char *)s[i].value,
							     .len = s[i].len };
	/* And overlapping pieces of each, as room allows: an echo of most of
	 * the value (an error page that shows a key cut short) is not the
	 * value, but holds enough of it to guess the rest. Windows of w bytes
	 * every w/2 find any 3w/2 consecutive bytes of it. */
	for (size_t i = 0; i < n; i++) {
		size_t len = s[i].len;
		size_t w = len / 8 > SEAL_WINDOW_MIN ? len / 8 : SEAL_WINDOW_MIN;
		if (len < 2 * w)
			continue;
		for (size_t off = 0; off + w <= len && k < INSPECT_MAX_SECRETS; off += w / 2) {
			/* A piece the placeholder shares (a kept tag such as
			 * "sk-proj-", punctuation) is no sign of the value. */
			if (memcmp(s[i].value + off, s[i].placeholder + off, w) == 0)
				continue;
			look[k++] = (struct inspect_secret){ .name = s[i].name,
							     .value = (const char *)s[i].value + off,
							     .len = w };
		}
	}
	return k ? inspector_new(look, k, &e->seal_insp, err) : 0;
}

int egress_seal_init(struct egress_engine *e, const struct egress_sealed *s, size_t n,
		     struct cdn_err *err)
{
	if (n == 0)
		return 0;
	e->swaps = calloc(EGRESS_MAX_SWAPS, sizeof(*e->swaps));
	if (!e->swaps)
		return cdn_err_set(err, ENOMEM, "sealed secrets");
	for (size_t i = 0; i < n; i++) {
		size_t len = s[i].len;
		if (len == 0 || len > INSPECT_MAX_SECRET_LEN || strlen(s[i].placeholder) != len)
			return cdn_err_msg(err, EINVAL, "sealed secret %s: a placeholder of another length",
					   s[i].name);
		const uint8_t *ph = (const uint8_t *)s[i].placeholder;
		uint8_t *a = sodium_malloc(6 * len + 1), *b = sodium_malloc(6 * len + 1);
		int r = a && b ? add_swap(e, s[i].name, ph, s[i].value, len, s[i].in) : -ENOMEM;
		if (r == 0) {
			size_t la = pct(ph, len, a), lb = pct(s[i].value, len, b);
			r = la == lb ? add_swap(e, s[i].name, a, b, la, s[i].in) : -EINVAL;
		}
		if (r == 0) {
			size_t la = jesc(ph, len, a), lb = jesc(s[i].value, len, b);
			r = la == lb ? add_swap(e, s[i].name, a, b, la, s[i].in) : -EINVAL;
		}
		if (a)
			sodium_free(a);
		if (b)
			sodium_free(b);
		if (r < 0)
			return cdn_err_msg(err, -r, "sealed secret %s: cannot prepare its swap",
					   s[i].name);
	}
	return seal_inspector(e, s, n, err);
}

void egress_seal_free(struct egress_engine *e)
{
	inspector_free(e->seal_insp);
	e->seal_insp = NULL;
	for (size_t i = 0; e->swaps && i < e->n_swaps; i++) {
		free(e->swaps[i].name);
		free(e->swaps[i].placeholder);
		sodium_free(e->swaps[i].value); /* wipes it */
	}
	free(e->swaps);
	e->swaps = NULL;
	e->n_swaps = 0;
}

void egress_seal_select(const struct egress_engine *e, const char *host, struct seal_sel *sel)
{
	sel->n = 0;
	sel->max_len = 0;
	for (size_t i = 0; host && i < e->n_swaps; i++)
		if (egress_secret_in_scope(&e->secrets, e->swaps[i].secret, host)) {
			sel->idx[sel->n++] = (uint16_t)i;
			if (e->swaps[i].len > sel->max_len)
				sel->max_len = e->swaps[i].len;
		}
}

bool egress_credential_header(const char *name, size_t len)
{
	static const char *const words[] = { "authorization", "auth", "key", "token", "secret",
					     "passw", "credential", "signature" };
	char low[96];
	if (len == 0 || len >= sizeof(low))
		return false;
	for (size_t i = 0; i < len; i++)
		low[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i]);
	low[len] = '\0';
	for (size_t i = 0; i < CDN_ARRAY_SIZE(words); i++)
		if (strstr(low, words[i]))
			return true;
	return false;
}

size_t egress_seal_apply(const struct egress_engine *e, const struct seal_sel *sel, unsigned at,
			 char *buf, size_t len)
{
	size_t n = 0;
	bool forward = at != SEAL_BACK;
	for (size_t k = 0; k < sel->n; k++) {
		const struct seal_swap *w = &e->swaps[sel->idx[k]];
		/* In a request, only where the scope allows it: the value put
		 * anywhere else could be kept by the scope and read back. */
		if (forward && at != SEAL_AT_CREDENTIAL && !(w->in & at))
			continue;
		const uint8_t *from = forward ? w->placeholder : w->value;
		const uint8_t *to = forward ? w->value : w->placeholder;
		char *p = buf;
		size_t left = len;
		char *hit;
		while (left >= w->len && (hit = memmem(p, left, from, w->len))) {
			memcpy(hit, to, w->len);
			n++;
			left -= (size_t)(hit + w->len - p);
			p = hit + w->len;
		}
	}
	return n;
}

size_t egress_seal_apply_basic(const struct egress_engine *e, const struct seal_sel *sel,
			       unsigned at, char *value, size_t len)
{
	/* "Basic " then base64(user ":" password): decode, swap, encode back;
	 * the same length in gives the same length out. */
	if (sel->n == 0 || len < 7 || strncasecmp(value, "Basic ", 6) != 0)
		return 0;
	char *b64 = value + 6;
	size_t blen = len - 6;
	while (blen && b64[0] == ' ') {
		b64++;
		blen--;
	}
	if (blen == 0 || blen > 4 * INSPECT_MAX_SECRET_LEN)
		return 0;
	size_t cap = blen / 4 * 3 + 3;
	unsigned char *raw = sodium_malloc(cap);
	char *enc = sodium_malloc(blen + 1);
	size_t rl = 0, n = 0;
	if (raw && enc &&
	    sodium_base642bin(raw, cap, b64, blen, NULL, &rl, NULL,
			      sodium_base64_VARIANT_ORIGINAL) == 0 &&
	    (n = egress_seal_apply(e, sel, at, (char *)raw, rl)) > 0 &&
	    sodium_base64_ENCODED_LEN(rl, sodium_base64_VARIANT_ORIGINAL) == blen + 1) {
		sodium_bin2base64(enc, blen + 1, raw, rl, sodium_base64_VARIANT_ORIGINAL);
		memcpy(b64, enc, blen);
	} else {
		n = 0;
	}
	if (raw)
		sodium_free(raw);
	if (enc)
		sodium_free(enc);
	return n;
}
