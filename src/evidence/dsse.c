/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Evidence packs' signatures (contract in evidence.h, format in
 * docs/evidence.md): the deployment's Ed25519 key, DSSE's
 * pre-authentication encoding, and the base64 an envelope is written in.
 */
#define _GNU_SOURCE
#include "evidence/internal.h"
#include "vault/keyfile.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cleanup.h"
#include "base/hash.h"

_Static_assert(EVIDENCE_PK_BYTES == crypto_sign_PUBLICKEYBYTES, "Ed25519 public keys");
_Static_assert(EVIDENCE_SEED_BYTES == crypto_sign_SEEDBYTES, "Ed25519 seeds");
_Static_assert(EVIDENCE_SEED_BYTES == KEYFILE_BYTES, "the seed is a key file");

/* ---------------------------------------------------------------------------
 * Keys
 */


void evidence_keyid(const unsigned char pk[EVIDENCE_PK_BYTES], char out[EVIDENCE_HEX + 1])
{
	cdn_sha256_hex(pk, EVIDENCE_PK_BYTES, out);
}

void evidence_key_free(struct evidence_key *k)
{
	if (!k)
		return;
	if (k->sk)
		sodium_free(k->sk); /* wipes it */
	free(k);
}

const unsigned char *evidence_key_public(const struct evidence_key *k)
{
	return k->pk;
}

const char *evidence_key_id(const struct evidence_key *k)
{
	return k->keyid;
}

const char *evidence_key_source(const struct evidence_key *k)
{
	return k->source;
}

int evidence_key_from_seed(const unsigned char seed[EVIDENCE_SEED_BYTES],
			   struct evidence_key **out, struct cdn_err *err)
{
	*out = NULL;
	int r = evidence_crypto_ready(err);
	if (r < 0)
		return r;
	struct evidence_key *k = calloc(1, sizeof(*k));
	if (!k || !(k->sk = sodium_malloc(crypto_sign_SECRETKEYBYTES))) {
		evidence_key_free(k);
		return cdn_err_set(err, ENOMEM, "evidence key");
	}
	crypto_sign_seed_keypair(k->pk, k->sk, seed);
	sodium_mprotect_readonly(k->sk);
	evidence_keyid(k->pk, k->keyid);
	snprintf(k->source, sizeof(k->source), "seed");
	*out = k;
	return 0;
}

static void seed_freep(unsigned char **p)
{
	if (*p)
		sodium_free(*p);
}

int evidence_key_load(const char *state_dir, bool create, struct evidence_key **out,
		      struct cdn_err *err)
{
	*out = NULL;
	int r = evidence_crypto_ready(err);
	if (r < 0)
		return r;
	_cleanup_(seed_freep) unsigned char *seed = sodium_malloc(EVIDENCE_SEED_BYTES);
	if (!seed)
		return cdn_err_set(err, ENOMEM, "evidence key");
	char source[PATH_MAX];
	const char *env = getenv(EVIDENCE_KEY_ENV);
	if (env) {
		/* Set, even to "", means "this key": never fall back to the
		 * file and sign with a different one. */
		snprintf(source, sizeof(source), "env");
		r = keyfile_from_text(env, EVIDENCE_KEY_ENV, seed, err);
	} else {
		/* The vault's rules: this key is what makes a pack worth
		 * believing. */
		r = keyfile_load(state_dir, EVIDENCE_KEY_FILE, "evidence key", create, seed, source,
				 sizeof(source), err);
	}
	if (r < 0)
		return r;
	r = evidence_key_from_seed(seed, out, err);
	if (r == 0)
		snprintf((*out)->source, sizeof((*out)->source), "%s", source);
	return r;
}

int evidence_public_parse(const char *hex, unsigned char pk[EVIDENCE_PK_BYTES],
			  struct cdn_err *err)
{
	size_t n = strlen(hex), got = 0;
	const char *end = NULL;
	bool ok = n == 2 * EVIDENCE_PK_BYTES;
	for (size_t i = 0; ok && i < n; i++)
		ok = isxdigit((unsigned char)hex[i]) != 0;
	if (ok && sodium_hex2bin(pk, EVIDENCE_PK_BYTES, hex, n, NULL, &got, &end) == 0 &&
	    got == EVIDENCE_PK_BYTES && end == hex + n)
		return 0;
	return cdn_err_msg(err, EINVAL,
			   "a public key is %d hex digits (`cordon evidence key` prints it)",
			   2 * EVIDENCE_PK_BYTES);
}


/* ---------------------------------------------------------------------------
 * DSSE
 */

unsigned char *evidence_pae(const char *type, const void *body, size_t len, size_t *out_len)
{
	size_t tlen = strlen(type);
	char head[64];
	int h = snprintf(head, sizeof(head), "DSSEv1 %zu ", tlen);
	char mid[32];
	int m = snprintf(mid, sizeof(mid), " %zu ", len);
	size_t total = (size_t)h + tlen + (size_t)m + len;
	unsigned char *out = malloc(total ? total : 1);
	if (!out)
		return NULL;
	memcpy(out, head, (size_t)h);
	memcpy(out + h, type, tlen);
	memcpy(out + (size_t)h + tlen, mid, (size_t)m);
	if (len)
		memcpy(out + (size_t)h + tlen + (size_t)m, body, len);
	*out_len = total;
	return out;
}

char *evidence_base64(const void *data, size_t len)
{
	size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
	char *out = malloc(cap);
	if (out)
		sodium_bin2base64(out, cap, data, len, sodium_base64_VARIANT_ORIGINAL);
	return out;
}

/* Standard base64 with padding, all of it; NULL when it is not that. */
unsigned char *evidence_unbase64(const char *text, size_t n, size_t *out_len)
{
	unsigned char *out = malloc(n / 4 * 3 + 3);
	const char *end = NULL;
	if (out && sodium_base642bin(out, n / 4 * 3 + 3, text, n, NULL, out_len, &end,
				     sodium_base64_VARIANT_ORIGINAL) == 0 &&
	    end == text + n)
		return out;
	free(out);
	return NULL;
}
