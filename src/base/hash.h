/* SPDX-License-Identifier: Apache-2.0 */
/* SHA-256 in lowercase hex, the form every record and pack of cordon uses. */
#ifndef CORDON_BASE_HASH_H
#define CORDON_BASE_HASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define CDN_SHA256_HEX 64

/* out gets 64 hex digits and a NUL. */
void cdn_sha256_hex(const void *data, size_t len, char out[CDN_SHA256_HEX + 1]);
/* A digest (32 bytes) in hex. */
void cdn_digest_hex(const uint8_t digest[32], char out[CDN_SHA256_HEX + 1]);
/* The whole of what fd reads from its current offset; 0 or -errno. */
int cdn_sha256_fd(int fd, char out[CDN_SHA256_HEX + 1]);

/* s[0..len) is exactly 64 lowercase hex digits: the form above, and no
 * other spelling of the same digest (upper case would make two names of
 * one blob). */
bool cdn_sha256_hex_ok(const char *s, size_t len);
/* The same for a C string; NULL is not. */
static inline bool cdn_sha256_hex_str_ok(const char *s)
{
	return s && cdn_sha256_hex_ok(s, strnlen(s, CDN_SHA256_HEX + 1));
}

#endif
