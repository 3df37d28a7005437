/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the unit and time parsers accept or reject, never misbehave. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
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
	/* A time that parses prints as an RFC 3339 time that parses to the
	 * same instant (from 1970 to 9998: strftime's %Y has four digits
	 * there). */
	int64_t ms, again;
	const char *why;
	if (cdn_rfc3339_parse(buf, &ms, &why) == 0) {
		if (ms < 0 || ms >= 253370764800000LL)
			return 0;
		char out[CDN_RFC3339_MAX];
		if (cdn_rfc3339_parse(cdn_rfc3339(ms, CDN_TIME_MS, out, sizeof(out)), &again, &why) != 0 ||
		    again != ms)
			abort();
	} else if (!why) {
		abort();
	}
	return 0;
}
