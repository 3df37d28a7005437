/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the unit parsers accept or reject, never misbehave. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/units.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char buf[64];
	if (size >= sizeof(buf))
		size = sizeof(buf) - 1;
	memcpy(buf, data, size);
	buf[size] = '\0';
	uint64_t v;
	struct cdn_err err;
	if (cdn_parse_size(buf, &v, &err) == 0 && strlen(buf) == 0)
		abort();
	(void)cdn_parse_duration_ms(buf, &v, &err);
	if (cdn_parse_cpu(buf, &v, &err) == 0 && v > 4096999)
		abort();
	(void)cdn_parse_uint(buf, 65535, &v, &err);
	return 0;
}
