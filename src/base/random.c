/* SPDX-License-Identifier: Apache-2.0 */
#include "base/random.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

int cdn_random_id(const char *prefix, size_t nbytes, char *out, size_t cap)
{
	uint8_t buf[64];
	size_t pl = strlen(prefix);
	if (nbytes > sizeof(buf) || pl + 2 * nbytes + 1 > cap)
		return -EINVAL;
	size_t got = 0;
	while (got < nbytes) {
		ssize_t n = getrandom(buf + got, nbytes - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		got += (size_t)n;
	}
	memcpy(out, prefix, pl);
	for (size_t i = 0; i < nbytes; i++)
		snprintf(out + pl + 2 * i, 3, "%02x", buf[i]);
	return 0;
}
