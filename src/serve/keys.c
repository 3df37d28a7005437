/* SPDX-License-Identifier: Apache-2.0 */
#include "serve/keys.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/hash.h"

int api_key_create(struct store *s, const char *ws, const char *name, const char *role,
		   char key[API_KEY_LEN + 1], struct store_key *rec, struct cdn_err *err)
{
	int r = store_name_check("workspace", ws, err);
	if (r < 0 || (r = store_name_check("key name", name, err)) < 0)
		return r;
	if (strcmp(role, "owner") != 0 && strcmp(role, "member") != 0)
		return cdn_err_msg(err, EINVAL, "role must be owner or member, not '%s'", role);
	if (sodium_init() < 0)
		return cdn_err_set(err, EIO, "libsodium");
	unsigned char raw[32];
	randombytes_buf(raw, sizeof(raw));
	char hex[65];
	sodium_bin2hex(hex, sizeof(hex), raw, sizeof(raw));
	sodium_memzero(raw, sizeof(raw));
	snprintf(key, API_KEY_LEN + 1, "%s%s", API_KEY_PREFIX, hex);
	sodium_memzero(hex, sizeof(hex));
	memset(rec, 0, sizeof(*rec));
	snprintf(rec->id, sizeof(rec->id), "%.*s", (int)API_KEY_ID_LEN, key);
	snprintf(rec->workspace, sizeof(rec->workspace), "%s", ws);
	snprintf(rec->name, sizeof(rec->name), "%s", name);
	snprintf(rec->role, sizeof(rec->role), "%s", role);
	cdn_sha256_hex(key, strlen(key), rec->hash); /* only the hash is stored */
	rec->created = (int64_t)time(NULL);
	if ((r = store_key_put(s, rec, err)) < 0)
		sodium_memzero(key, API_KEY_LEN + 1);
	return r;
}

int api_key_check(struct store *s, const char *key, struct store_key *out, struct cdn_err *err)
{
	size_t pl = strlen(API_KEY_PREFIX);
	size_t n = strnlen(key, API_KEY_LEN + 1);
	if (n != API_KEY_LEN || strncmp(key, API_KEY_PREFIX, pl) != 0)
		return cdn_err_msg(err, EACCES, "the API key is malformed (expected %s...)",
				   API_KEY_PREFIX);
	for (size_t i = pl; i < n; i++)
		if (!((key[i] >= '0' && key[i] <= '9') || (key[i] >= 'a' && key[i] <= 'f')))
			return cdn_err_msg(err, EACCES, "the API key is malformed");
	char hex[STORE_HASH_HEX + 1];
	cdn_sha256_hex(key, strlen(key), hex);
	int r = store_key_by_hash(s, hex, out, err);
	if (r == -ENOENT)
		return cdn_err_msg(err, EACCES, "unknown API key");
	if (r < 0)
		return r;
	if (out->revoked)
		return cdn_err_msg(err, EACCES, "API key %s is revoked", out->id);
	return 0;
}

int api_key_owner_exists(struct store *s, bool *exists, struct cdn_err *err)
{
	struct store_key *v = NULL;
	size_t n = 0;
	int r = store_key_list(s, NULL, &v, &n, err);
	if (r < 0)
		return r;
	*exists = false;
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].role, "owner") == 0 && !v[i].revoked)
			*exists = true;
	free(v);
	return 0;
}
