/* SPDX-License-Identifier: Apache-2.0 */
/* Private to src/egress/: the character classes the HTTP head parser
 * (http.c) and the chunked decoder (http_chunked.c) both use. Inline, so
 * that neither links the other for them. */
#ifndef CORDON_EGRESS_HTTP_INTERNAL_H
#define CORDON_EGRESS_HTTP_INTERNAL_H

#include <stdbool.h>
#include <string.h>

static inline bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static inline bool is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static inline int hex_value(unsigned char c)
{
	if (is_digit(c))
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* RFC 9110 5.6.2 tchar. */
static inline bool is_tchar(unsigned char c)
{
	if (is_digit(c) || is_alpha(c))
		return true;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* RFC 5234 CTL: what may not appear in a field value (HTAB excepted). */
static inline bool is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

static inline bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

#endif
