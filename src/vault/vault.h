/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The vault: secrets encrypted at rest, injected only into the runs that
 * declare them.
 *
 * Envelope: a 32-byte master key (from $CORDON_MASTER_KEY, 64 hex digits
 * or base64, or the key file <state>/master.key, created 0600 on first use)
 * wraps one random data key per workspace; each value is sealed with the
 * workspace's data key using XChaCha20-Poly1305 (libsodium) with a fresh
 * 24-byte nonce and associated data "cordon-secret-v1\0<workspace>\0<name>",
 * so a ciphertext moved to another name or workspace does not open. The
 * wrapped data key is itself sealed with associated data binding the
 * workspace.
 *
 * Values and keys live in sodium_malloc'd memory and are wiped when freed.
 * No function here logs, and no error message contains a value.
 */
#ifndef CORDON_VAULT_H
#define CORDON_VAULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "store/store.h"

#define VAULT_MAX_VALUE (64 * 1024)
#define VAULT_KEY_BYTES 32

struct vault;

/* Loads the master key (creating the key file if neither source exists). */
int vault_open(struct store *s, struct vault **out, struct cdn_err *err);
void vault_close(struct vault *v);

/* Where the master key came from: "env" or the key file's path. */
const char *vault_key_source(const struct vault *v);

int vault_set(struct vault *v, const char *ws, const char *name, const uint8_t *value, size_t len,
	      struct cdn_err *err);

/* -ENOENT when absent. *value is sodium-allocated, NUL-terminated for
 * convenience; release with vault_value_free. */
int vault_get(struct vault *v, const char *ws, const char *name, uint8_t **value, size_t *len,
	      struct cdn_err *err);
void vault_value_free(uint8_t *value, size_t len);

int vault_rm(struct vault *v, const char *ws, const char *name, struct cdn_err *err);
int vault_list(struct vault *v, const char *ws, struct store_secret_info **out, size_t *n,
	       struct cdn_err *err);

/*
 * True when an environment variable name looks like it holds a secret
 * (contains SECRET, TOKEN, PASSWORD, PASSWD, API_KEY, APIKEY, CREDENTIAL,
 * PRIVATE_KEY, ACCESS_KEY, case-insensitive): such values belong in the
 * vault, not in a plain env.
 */
bool vault_name_looks_secret(const char *name);

#endif
