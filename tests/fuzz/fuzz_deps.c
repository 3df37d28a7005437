/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: a dependency build's inputs, which agent authors
 * write (docs/deps.md): requirements.txt is rewritten or refused, and what
 * it is rewritten to contains only "name==version[ --hash=sha256:HEX]"
 * lines, which rewrite to themselves; package-lock.json is accepted or
 * refused without a crash.
 *
 * Input: the first byte picks the parser; the rest is the file.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "run/deps.h"

/* Each byte of the rewritten file is one pip reads as a requirement:
 * no option, URL, marker or extra can survive the rewrite. */
static void check_normalized(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '=' ||
			  c == '.' || c == '-' || c == '!' || c == '+' || c == '_' || c == ' ' ||
			  c == ':' || c == '\n' || (c >= 'A' && c <= 'Z');
		if (!ok || (c == '-' && i > 0 && s[i - 1] == '\n') || (i == 0 && c == '-'))
			abort();
	}
	if (n && s[n - 1] != '\n')
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > (1u << 16))
		return 0;
	const char *in = (const char *)data + 1;
	size_t n = size - 1;
	struct cdn_err err = { 0 };
	if (data[0] & 1) {
		(void)deps_npm_lock_check(in, n, "http://127.0.0.1:4873/", &err);
		return 0;
	}
	char *out = NULL, *again = NULL;
	size_t on = 0, an = 0;
	if (deps_requirements_normalize(in, n, &out, &on, &err) < 0)
		return 0;
	check_normalized(out, on);
	/* The rewrite is a fixed point: cordon's own output passes unchanged. */
	if (deps_requirements_normalize(out, on, &again, &an, &err) < 0 || an != on ||
	    memcmp(out, again, on) != 0)
		abort();
	free(out);
	free(again);
	return 0;
}
