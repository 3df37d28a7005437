/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the ClientHello server-name parser (src/egress/sni.c),
 * which reads the first bytes a sandbox sends into a tunnel the proxy does
 * not inspect. Invariants: no read past the input (ASan); a found name is
 * 1 to 253 bytes of lower-case letters, digits, '-' and '.'; the result is
 * the same for any longer input that starts with a complete record, and
 * "more" only when the record is not complete.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "egress/sni.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                 \
	do {                     \
		if (!(c))        \
			abort(); \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char name[256];
	enum sni_result r = sni_parse(data, size, name, sizeof(name));
	if (r == SNI_FOUND) {
		size_t n = strlen(name);
		CHECK(n >= 1 && n <= 253);
		for (size_t i = 0; i < n; i++)
			CHECK((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
			      name[i] == '-' || name[i] == '.');
	}
	if (r != SNI_MORE && size >= 5) {
		/* Bytes after the first record change nothing. */
		size_t rec = 5 + ((size_t)data[3] << 8 | data[4]);
		if (rec <= size) {
			uint8_t *longer = malloc(size + 7);
			if (!longer)
				return 0;
			memcpy(longer, data, size);
			memcpy(longer + size, "garbage", 7);
			char n2[256];
			CHECK(sni_parse(longer, size + 7, n2, sizeof(n2)) == r);
			if (r == SNI_FOUND)
				CHECK(strcmp(name, n2) == 0);
			free(longer);
		}
	}
	return 0;
}
