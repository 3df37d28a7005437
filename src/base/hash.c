/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "base/hash.h"

#include <errno.h>
#include <sodium.h>
#include <unistd.h>

void cdn_digest_hex(const uint8_t digest[32], char out[CDN_SHA256_HEX + 1])
{
	sodium_bin2hex(out, CDN_SHA256_HEX + 1, digest, 32);
}

void cdn_sha256_hex(const void *data, size_t len, char out[CDN_SHA256_HEX + 1])
{
	uint8_t d[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(d, data, len);
	cdn_digest_hex(d, out);
}

bool cdn_sha256_hex_ok(const char *s, size_t len)
{
	if (!s || len != CDN_SHA256_HEX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

int cdn_sha256_fd(int fd, char out[CDN_SHA256_HEX + 1])
{
	crypto_hash_sha256_state st;
	crypto_hash_sha256_init(&st);
	uint8_t buf[65536];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		crypto_hash_sha256_update(&st, buf, (unsigned long long)n);
	}
	uint8_t d[crypto_hash_sha256_BYTES];
	crypto_hash_sha256_final(&st, d);
	cdn_digest_hex(d, out);
	return 0;
}
