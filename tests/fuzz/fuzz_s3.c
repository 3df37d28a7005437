/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for what the S3 client reads of an answer
 * (src/store/s3_names.c): header lines, then the same bytes as an XML
 * document. The endpoint is the operator's, but its answers are still read
 * within bounds. Invariants: no read past the input (ASan); a sha256 kept
 * is "" or 64 lowercase hex digits; an ETag kept is printable ASCII without
 * '<', '>' or '&' (it goes back into the completion's XML); an element's
 * text fits its buffer, NUL-terminated.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/s3.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c))                                                                          \
			abort();                                                                   \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct s3_head h = {0};
	const char *p = (const char *)data, *end = p + size;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
		/* A copy of exactly the line: a read past it is caught. */
		char *line = malloc(len ? len : 1);
		if (!line)
			return 0;
		memcpy(line, p, len);
		s3_head_line(line, len, &h);
		free(line);
		p += len;
	}
	size_t n = strlen(h.sha256);
	CHECK(n == 0 || n == S3_HEX);
	for (size_t i = 0; i < n; i++)
		CHECK((h.sha256[i] >= '0' && h.sha256[i] <= '9') ||
		      (h.sha256[i] >= 'a' && h.sha256[i] <= 'f'));
	for (const char *e = h.etag; *e; e++)
		CHECK(*e > 0x20 && *e < 0x7f && *e != '<' && *e != '>' && *e != '&');

	char out[32];
	memset(out, 'x', sizeof(out));
	int r = s3_xml_text((const char *)data, size, NULL, "Code", out, sizeof(out));
	CHECK(r == 0 || r == -ENOENT || r == -EINVAL || r == -E2BIG || r == -ENOSYS);
	if (r == 0)
		CHECK(memchr(out, '\0', sizeof(out)) != NULL);
	return 0;
}
