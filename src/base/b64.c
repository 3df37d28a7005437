/* SPDX-License-Identifier: Apache-2.0 */
#include "base/b64.h"

static const char alphabets[2][65] = {
	[CDN_B64_STD] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
	[CDN_B64_URL] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
};

size_t cdn_b64_needle(const unsigned char *v, size_t len, unsigned align,
		      enum cdn_b64_alphabet alphabet, char *out)
{
	if (align > 2 || (unsigned)alphabet > CDN_B64_URL)
		return 0;
	/* Character c covers bits [6c, 6c + 6) of the encoded data; the value
	 * holds bits [8 align, 8 (align + len)). The characters whose six
	 * bits all lie in the value are [lo, hi). */
	size_t lo = (8 * (size_t)align + 5) / 6;
	size_t hi = 8 * ((size_t)align + len) / 6;
	if (hi <= lo)
		return 0;
	if (!out)
		return hi - lo;
	const char *abc = alphabets[alphabet];
	for (size_t c = lo; c < hi; c++) {
		size_t bit = 6 * c - 8 * (size_t)align; /* c's first bit, within v */
		unsigned idx = 0;
		for (size_t b = bit; b < bit + 6; b++)
			idx = (idx << 1) | ((v[b / 8] >> (7 - b % 8)) & 1u);
		out[c - lo] = abc[idx];
	}
	return hi - lo;
}
