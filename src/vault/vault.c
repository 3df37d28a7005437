/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The vault (contract in vault.h; key sources, envelope and rotation are
 * described for operators in docs/vault.md).
 *
 *   master key (env or <store>/master.key, 32 bytes)
 *     wraps, per workspace:  nonce(24) || XChaCha20-Poly1305(data key)
 *                            AD "cordon-wskey-v1\0<workspace>"
 *                            stored with store_wskey_put
 *   data key
 *     seals, per secret:     nonce(24) || XChaCha20-Poly1305(value)
 *                            AD "cordon-secret-v1\0<workspace>\0<name>"
 *                            stored with store_secret_put
 *
 * The associated data is what makes a row mean one thing: a ciphertext
 * copied to another name, or a wrapped key copied to another workspace,
 * fails authentication instead of opening as the other secret.
 *
 * Keys are held in sodium_malloc'd memory (guard pages, locked where the
 * limit allows, wiped by sodium_free); the master key is read-only once
 * loaded. Data keys are unwrapped per call and wiped when the call returns,
 * so a vault left open holds only the master key.
 */
#define _GNU_SOURCE /* strcasestr */
#include "vault/vault.h"
#include "vault/keyfile.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/secure.h"

#define MASTER_KEY_ENV		 "CORDON_MASTER_KEY"
#define MASTER_KEY_FILE		 "master.key"
#define KEY_SOURCE_MAX		 PATH_MAX

#define NONCE_BYTES	 crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_BYTES	 crypto_aead_xchacha20poly1305_ietf_ABYTES
#define WSKEY_BLOB_BYTES (NONCE_BYTES + VAULT_KEY_BYTES + TAG_BYTES)

/* Associated data: a versioned label, then NUL-separated names. The NUL
 * cannot occur in a name, so "a\0bc" and "ab\0c" stay different. */
#define WSKEY_AD_LABEL	"cordon-wskey-v1"
#define SECRET_AD_LABEL "cordon-secret-v1"
#define AD_MAX		(sizeof(SECRET_AD_LABEL) + STORE_MAX_NAME + 1 + STORE_MAX_NAME)

_Static_assert(VAULT_KEY_BYTES == KEYFILE_BYTES, "the master key is a key file's size");
_Static_assert(VAULT_KEY_BYTES == crypto_aead_xchacha20poly1305_ietf_KEYBYTES,
	       "the vault's keys are XChaCha20-Poly1305 keys");

struct vault {
	struct store *s;
	unsigned char *master; /* sodium memory, read-only after vault_open */
	char source[KEY_SOURCE_MAX];
};

static void key_freep(unsigned char **k)
{
	if (*k)
		cdn_secure_free(*k);
}
#define _cleanup_key_ _cleanup_(key_freep)

/* ---------------------------------------------------------------------------
 * The master key
 */

static int master_from_file(struct vault *v, struct cdn_err *err)
{
	/* Read, else create; when creation loses a race, read the winner's. */
	return keyfile_load(store_dir(v->s), MASTER_KEY_FILE, "master key", true, v->master,
			    v->source, sizeof(v->source), err);
}

int vault_open(struct store *s, struct vault **out, struct cdn_err *err)
{
	*out = NULL;
	if (sodium_init() < 0)
		return cdn_err_msg(err, EIO, "vault: libsodium could not initialise");
	struct vault *v = calloc(1, sizeof(*v));
	if (!v)
		return cdn_err_set(err, ENOMEM, "vault: allocating");
	v->s = s;
	v->master = cdn_secure_malloc(VAULT_KEY_BYTES);
	if (!v->master) {
		vault_close(v);
		return cdn_err_set(err, ENOMEM, "vault: allocating key memory");
	}

	int r;
	const char *env = getenv(MASTER_KEY_ENV);
	if (env) {
		/* Set, even to "", means "use this": never fall back to a key
		 * file and quietly open (or create) a different vault. */
		snprintf(v->source, sizeof(v->source), "env");
		/* 64 hex digits or base64 of 32 bytes; anything else is refused
		 * rather than hashed into a key: a typo must not silently make
		 * a new, empty vault. */
		r = keyfile_from_text(env, MASTER_KEY_ENV, v->master, err);
		/* The key is in the vault's memory now; the environment's copy
		 * would be inherited by every process this one forks. */
		cdn_secure_scrub_env(MASTER_KEY_ENV);
	} else {
		r = master_from_file(v, err);
	}
	if (r < 0) {
		vault_close(v);
		return r;
	}
	sodium_mprotect_readonly(v->master);
	*out = v;
	return 0;
}

void vault_close(struct vault *v)
{
	if (!v)
		return;
	if (v->master)
		cdn_secure_free(v->master); /* wipes it */
	free(v);
}

const char *vault_key_source(const struct vault *v)
{
	return v->source;
}

/* ---------------------------------------------------------------------------
 * Workspace data keys
 */

static size_t ad_build(unsigned char ad[AD_MAX], const char *label, size_t label_size,
		       const char *ws, const char *name)
{
	size_t n = 0, wl = strnlen(ws, STORE_MAX_NAME);
	memcpy(ad, label, label_size); /* with its NUL */
	n += label_size;
	memcpy(ad + n, ws, wl);
	n += wl;
	if (name) {
		size_t nl = strnlen(name, STORE_MAX_NAME);
		ad[n++] = '\0';
		memcpy(ad + n, name, nl);
		n += nl;
	}
	return n;
}

static int wskey_unwrap(struct vault *v, const char *ws, const uint8_t *blob, size_t len,
			unsigned char *key, struct cdn_err *err)
{
	unsigned char ad[AD_MAX];
	size_t adlen = ad_build(ad, WSKEY_AD_LABEL, sizeof(WSKEY_AD_LABEL), ws, NULL);
	unsigned long long klen = 0;

	if (len != WSKEY_BLOB_BYTES)
		return cdn_err_msg(err, EBADMSG,
				   "workspace %s: the stored data key is %zu bytes, not %d; the "
				   "store is damaged",
				   ws, len, WSKEY_BLOB_BYTES);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(key, &klen, NULL, blob + NONCE_BYTES,
						       len - NONCE_BYTES, ad, adlen, blob,
						       v->master) != 0 ||
	    klen != VAULT_KEY_BYTES) {
		sodium_memzero(key, VAULT_KEY_BYTES);
		return cdn_err_msg(err, EKEYREJECTED,
				   "workspace %s: the master key does not open this store's "
				   "workspace key: wrong " MASTER_KEY_ENV " or " MASTER_KEY_FILE
				   "? (the key in use came from %s)",
				   ws, v->source);
	}
	return 0;
}

/* Makes a fresh data key for ws and stores it wrapped. -EEXIST from the
 * store (another process made one first) is success: the caller reads
 * back whichever key was stored. */
static int wskey_create(struct vault *v, const char *ws, struct cdn_err *err)
{
	unsigned char ad[AD_MAX];
	size_t adlen = ad_build(ad, WSKEY_AD_LABEL, sizeof(WSKEY_AD_LABEL), ws, NULL);
	uint8_t blob[WSKEY_BLOB_BYTES];
	unsigned long long clen = 0;

	_cleanup_key_ unsigned char *fresh = cdn_secure_malloc(VAULT_KEY_BYTES);
	if (!fresh)
		return cdn_err_set(err, ENOMEM, "workspace %s: allocating a data key", ws);
	randombytes_buf(fresh, VAULT_KEY_BYTES);
	randombytes_buf(blob, NONCE_BYTES);
	crypto_aead_xchacha20poly1305_ietf_encrypt(
	    blob + NONCE_BYTES, &clen, fresh, VAULT_KEY_BYTES, ad, adlen, NULL, blob, v->master);
	int r = store_wskey_put(v->s, ws, blob, sizeof(blob), err);
	if (r == -EEXIST)
		return 0;
	if (r < 0)
		return cdn_err_wrap(err, "workspace %s: storing its data key", ws);
	return 0;
}

/*
 * The data key of ws, in sodium memory the caller frees. With create, a
 * workspace without one gets one; without, -ENOENT with err untouched.
 */
static int wskey_load(struct vault *v, const char *ws, bool create, unsigned char **out,
		      struct cdn_err *err)
{
	*out = NULL;
	_cleanup_free_ uint8_t *blob = NULL;
	size_t len = 0;
	struct cdn_err quiet = { 0 };

	int r = store_wskey_get(v->s, ws, &blob, &len, &quiet);
	if (r == -ENOENT && create) {
		r = wskey_create(v, ws, err);
		if (r < 0)
			return r;
		/* Read back what the store holds, so two racing first writers
		 * both use the one key that was kept. */
		r = store_wskey_get(v->s, ws, &blob, &len, &quiet);
		if (r == -ENOENT)
			return cdn_err_msg(err, EIO,
					   "workspace %s: its data key was stored but "
					   "cannot be read back",
					   ws);
	}
	if (r == -ENOENT)
		return -ENOENT;
	if (r < 0) {
		if (err)
			*err = quiet;
		return cdn_err_wrap(err, "workspace %s: loading its data key", ws);
	}

	_cleanup_key_ unsigned char *key = cdn_secure_malloc(VAULT_KEY_BYTES);
	if (!key)
		return cdn_err_set(err, ENOMEM, "workspace %s: allocating a data key", ws);
	r = wskey_unwrap(v, ws, blob, len, key, err);
	if (r < 0)
		return r;
	sodium_mprotect_readonly(key);
	*out = cdn_steal(&key);
	return 0;
}

/* ---------------------------------------------------------------------------
 * Secrets
 */

static int check_names(const char *ws, const char *name, struct cdn_err *err)
{
	int r = store_name_check("workspace", ws, err);
	if (r == 0 && name)
		r = store_secret_name_check(name, err);
	return r;
}

int vault_set(struct vault *v, const char *ws, const char *name, const uint8_t *value, size_t len,
	      struct cdn_err *err)
{
	int r = check_names(ws, name, err);
	if (r < 0)
		return r;
	if (len == 0)
		return cdn_err_msg(err, EINVAL, "secret %s: the value is empty", name);
	if (len > VAULT_MAX_VALUE)
		return cdn_err_msg(err, E2BIG, "secret %s: the value is %zu bytes, at most %d",
				   name, len, VAULT_MAX_VALUE);
	if (!value)
		return cdn_err_msg(err, EINVAL, "secret %s: no value", name);

	_cleanup_key_ unsigned char *key = NULL;
	r = wskey_load(v, ws, true, &key, err);
	if (r < 0)
		return r;

	unsigned char ad[AD_MAX];
	size_t adlen = ad_build(ad, SECRET_AD_LABEL, sizeof(SECRET_AD_LABEL), ws, name);
	size_t blen = NONCE_BYTES + len + TAG_BYTES;
	_cleanup_free_ uint8_t *blob = malloc(blen);
	if (!blob)
		return cdn_err_set(err, ENOMEM, "secret %s: allocating", name);
	unsigned long long clen = 0;
	/* 24 random bytes: XChaCha's nonce is long enough that random nonces
	 * do not collide over any realistic number of writes. */
	randombytes_buf(blob, NONCE_BYTES);
	crypto_aead_xchacha20poly1305_ietf_encrypt(blob + NONCE_BYTES, &clen, value, len, ad, adlen,
						   NULL, blob, key);
	r = store_secret_put(v->s, ws, name, blob, NONCE_BYTES + (size_t)clen, len, err);
	if (r < 0)
		return cdn_err_wrap(err, "secret %s", name);
	return 0;
}

int vault_get(struct vault *v, const char *ws, const char *name, uint8_t **value, size_t *len,
	      struct cdn_err *err)
{
	*value = NULL;
	*len = 0;
	int r = check_names(ws, name, err);
	if (r < 0)
		return r;

	_cleanup_free_ uint8_t *blob = NULL;
	size_t blen = 0;
	r = store_secret_get(v->s, ws, name, &blob, &blen, err);
	if (r < 0)
		return r; /* -ENOENT passes through as the contract says */

	_cleanup_key_ unsigned char *key = NULL;
	r = wskey_load(v, ws, false, &key, err);
	if (r == -ENOENT)
		return cdn_err_msg(
		    err, EBADMSG,
		    "secret %s: workspace %s holds it but has no data key; the store "
		    "is damaged",
		    name, ws);
	if (r < 0)
		return r;

	if (blen <= NONCE_BYTES + TAG_BYTES || blen - NONCE_BYTES - TAG_BYTES > VAULT_MAX_VALUE)
		return cdn_err_msg(err, EBADMSG,
				   "secret %s in workspace %s: the stored ciphertext is %zu bytes, "
				   "which no sealed value has; the store is damaged",
				   name, ws, blen);
	size_t plen = blen - NONCE_BYTES - TAG_BYTES;
	uint8_t *plain = cdn_secure_malloc(plen + 1);
	if (!plain)
		return cdn_err_set(err, ENOMEM, "secret %s: allocating", name);

	unsigned char ad[AD_MAX];
	size_t adlen = ad_build(ad, SECRET_AD_LABEL, sizeof(SECRET_AD_LABEL), ws, name);
	unsigned long long got = 0;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain, &got, NULL, blob + NONCE_BYTES,
						       blen - NONCE_BYTES, ad, adlen, blob,
						       key) != 0) {
		cdn_secure_free(plain);
		return cdn_err_msg(
		    err, EBADMSG,
		    "secret %s in workspace %s does not open with the workspace's "
		    "data key: the ciphertext was altered, or was copied from another "
		    "name or workspace",
		    name, ws);
	}
	plain[plen] = '\0';
	*value = plain;
	*len = plen;
	return 0;
}

void vault_value_free(uint8_t *value, size_t len)
{
	(void)len; /* sodium_free knows the size, and wipes it all */
	if (value)
		cdn_secure_free(value);
}

int vault_rm(struct vault *v, const char *ws, const char *name, struct cdn_err *err)
{
	int r = check_names(ws, name, err);
	if (r < 0)
		return r;
	return store_secret_delete(v->s, ws, name, err);
}

int vault_list(struct vault *v, const char *ws, struct store_secret_info **out, size_t *n,
	       struct cdn_err *err)
{
	int r = check_names(ws, NULL, err);
	if (r < 0)
		return r;
	return store_secret_list(v->s, ws, out, n, err);
}

/* ---------------------------------------------------------------------------
 * Names
 */

static const char *const secret_words[] = {
	"SECRET", "TOKEN",	"PASSWORD",    "PASSWD",     "API_KEY",
	"APIKEY", "CREDENTIAL", "PRIVATE_KEY", "ACCESS_KEY",
};

bool vault_name_looks_secret(const char *name)
{
	if (!name)
		return false;
	for (size_t i = 0; i < CDN_ARRAY_SIZE(secret_words); i++)
		if (strcasestr(name, secret_words[i]))
			return true;
	return false;
}
