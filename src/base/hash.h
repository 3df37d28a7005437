/* SPDX-License-Identifier: Apache-2.0 */
/* SHA-256 in lowercase hex, the form every record and pack of cordon uses. */
#ifndef CORDON_BASE_HASH_H
#define CORDON_BASE_HASH_H

#include <stddef.h>
#include <stdint.h>

#define CDN_SHA256_HEX 64

/* out gets 64 hex digits and a NUL. */
void cdn_sha256_hex(const void *data, size_t len, char out[CDN_SHA256_HEX + 1]);
/* A digest (32 bytes) in hex. */
void cdn_digest_hex(const uint8_t digest[32], char out[CDN_SHA256_HEX + 1]);
/* The whole of what fd reads from its current offset; 0 or -errno. */
int cdn_sha256_fd(int fd, char out[CDN_SHA256_HEX + 1]);

#endif
