/* SPDX-License-Identifier: Apache-2.0 */
/*
 * API keys: "cdn_live_" + 64 lowercase hex digits (32 random bytes). Only
 * the key's sha256 is stored; its id ("cdn_live_" + the first 12 digits)
 * tells keys apart in lists and logs. A key is shown once, when created.
 */
#ifndef CORDON_SERVE_KEYS_H
#define CORDON_SERVE_KEYS_H

#include "base/err.h"
#include "base/tokens.h"
#include "store/store.h"

#define API_KEY_PREFIX CDN_TOKEN_API_KEY_PREFIX
#define API_KEY_LEN (sizeof(API_KEY_PREFIX) - 1 + CDN_TOKEN_HEX)
#define API_KEY_ID_LEN (sizeof(API_KEY_PREFIX) - 1 + 12)

/* Creates a key in ws with role "owner" or "member". key gets the key
 * itself (NUL-terminated), rec what is stored. */
int api_key_create(struct store *s, const char *ws, const char *name, const char *role,
		   char key[API_KEY_LEN + 1], struct store_key *rec, struct cdn_err *err);

/* The live key a request presents: -EACCES (with a message that never
 * quotes the key) when it is malformed, unknown or revoked. */
int api_key_check(struct store *s, const char *key, struct store_key *out, struct cdn_err *err);

/* Whether any key of role "owner" exists (in any workspace). */
int api_key_owner_exists(struct store *s, bool *exists, struct cdn_err *err);

#endif
