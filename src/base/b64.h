/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The base64 "needle" of a secret: the characters of its base64 encoding
 * that the value alone decides, wherever it sits in what is encoded.
 *
 * A value that starts `align` bytes (0, 1 or 2) into a 3-byte group of the
 * encoded data shows up in the encoding as a fixed run of characters,
 * framed by at most one character on each side that also depends on the
 * neighbouring bytes. Looking for the fixed run at each of the three
 * alignments finds the value base64-encoded anywhere in a larger blob (a
 * JSON field, a basic-auth header, a file), which is how a secret is
 * caught leaving in a request (src/egress/inspect.c) and redacted from a
 * run's output (src/vault/redact.c). A character too many would make a
 * needle that never matches, and the secret would pass unseen: so this
 * exists once, tested against a plain encoder.
 */
#ifndef CORDON_BASE_B64_H
#define CORDON_BASE_B64_H

#include <stddef.h>

enum cdn_b64_alphabet {
	CDN_B64_STD, /* RFC 4648 section 4: '+' and '/' */
	CDN_B64_URL, /* RFC 4648 section 5: '-' and '_' */
};

/*
 * Writes the needle of v[0..len) at alignment `align` (0..2) to out, when
 * out is not NULL, and returns its length: 8 * (align + len) / 6 minus
 * (8 * align + 5) / 6 characters (0 when that is none, or align > 2). No
 * NUL is written.
 */
size_t cdn_b64_needle(const unsigned char *v, size_t len, unsigned align,
		      enum cdn_b64_alphabet alphabet, char *out);

#endif
