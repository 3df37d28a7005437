/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Strict HTTP/1.1 chunked decoder (contract in http.h; the head parser is
 * in http.c).
 */
#include "egress/http.h"
#include "egress/http_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------------------
 * Chunked decoder (RFC 9112 7.1)
 */

enum chunk_state {
	CH_SIZE_FIRST,	   /* first hex digit of chunk-size */
	CH_SIZE,	   /* more digits, ';' or CR */
	CH_EXT_NAME_FIRST, /* after ';' */
	CH_EXT_NAME,	   /* token, then '=', ';' or CR */
	CH_EXT_VAL_FIRST,  /* after '=': token or '"' */
	CH_EXT_VAL_TOKEN,
	CH_EXT_VAL_QUOTED,
	CH_EXT_VAL_ESCAPE, /* after '\' in a quoted string */
	CH_EXT_VAL_END,	   /* after the closing quote: ';' or CR */
	CH_SIZE_LF,
	CH_DATA,
	CH_DATA_CR,
	CH_DATA_LF,
	CH_TRAILER_START, /* start of a trailer line: CR or a field name */
	CH_TRAILER_NAME,
	CH_TRAILER_VALUE,
	CH_TRAILER_LF,
	CH_FINAL_LF,
	CH_DONE,
	CH_ERROR,
};

void http_chunked_init(struct http_chunked *c)
{
	memset(c, 0, sizeof(*c));
	c->state = CH_SIZE_FIRST;
}

static long chunk_fail(struct http_chunked *c, uint64_t at, struct cdn_err *err, const char *what,
		       unsigned char byte)
{
	c->state = CH_ERROR;
	cdn_err_msg(err, EINVAL, "malformed chunked body at byte %llu: %s (got 0x%02x)",
		    (unsigned long long)at, what, byte);
	return -1;
}

/* qdtext / quoted-pair content (RFC 9110 5.6.4), obs-text included. */
static bool is_qdtext(unsigned char c)
{
	return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b) ||
	       (c >= 0x5d && c <= 0x7e) || c >= 0x80;
}

/* After the size line's LF: data, or the trailer section for last-chunk. */
static int after_size_line(const struct http_chunked *c)
{
	return c->remaining ? CH_DATA : CH_TRAILER_START;
}

/*
 * One byte of everything but chunk data. Returns false on malformed input
 * with *what saying what was expected. Whitespace is refused everywhere
 * (no BWS around ';' or '=', RFC 9112 7.1.1 only tolerates it) and so is
 * any line end but CRLF: parsers that disagree on lenient chunk lines
 * ("funky chunks": LF-only or CR-only terminators, odd bytes in
 * extensions) read one side's extension as the other side's data, which
 * is enough to smuggle a request.
 */
static bool chunk_step(struct http_chunked *c, unsigned char b, const char **what)
{
	int hv;
	switch (c->state) {
	case CH_SIZE_FIRST:
	case CH_SIZE:
		hv = hex_value(b);
		if (hv >= 0) {
			if (++c->digits > HTTP_MAX_CHUNK_SIZE_DIGITS) {
				*what = "chunk size has more than 16 hex digits";
				return false;
			}
			c->remaining = (c->remaining << 4) | (uint64_t)hv;
			c->state = CH_SIZE;
			return true;
		}
		if (c->state == CH_SIZE_FIRST) {
			*what = "expected a hex chunk size";
			return false;
		}
		if (b == ';') {
			c->ext_len = 1;
			c->state = CH_EXT_NAME_FIRST;
			return true;
		}
		if (b == '\r') {
			c->state = CH_SIZE_LF;
			return true;
		}
		*what = "expected a hex digit, ';' or CRLF after the chunk size";
		return false;
	case CH_EXT_NAME_FIRST:
	case CH_EXT_NAME:
	case CH_EXT_VAL_FIRST:
	case CH_EXT_VAL_TOKEN:
	case CH_EXT_VAL_QUOTED:
	case CH_EXT_VAL_ESCAPE:
	case CH_EXT_VAL_END:
		if (b != '\r' && ++c->ext_len > HTTP_MAX_CHUNK_EXT) {
			*what = "chunk extensions longer than HTTP_MAX_CHUNK_EXT";
			return false;
		}
		switch (c->state) {
		case CH_EXT_NAME_FIRST:
			if (is_tchar(b)) {
				c->state = CH_EXT_NAME;
				return true;
			}
			*what = "expected a chunk extension name after ';'";
			return false;
		case CH_EXT_NAME:
		case CH_EXT_VAL_TOKEN:
			if (is_tchar(b))
				return true;
			if (b == '=' && c->state == CH_EXT_NAME) {
				c->state = CH_EXT_VAL_FIRST;
				return true;
			}
			break;
		case CH_EXT_VAL_FIRST:
			if (b == '"') {
				c->state = CH_EXT_VAL_QUOTED;
				return true;
			}
			if (is_tchar(b)) {
				c->state = CH_EXT_VAL_TOKEN;
				return true;
			}
			*what = "expected a token or quoted string after '=' in a chunk extension";
			return false;
		case CH_EXT_VAL_QUOTED:
			if (b == '"')
				c->state = CH_EXT_VAL_END;
			else if (b == '\\')
				c->state = CH_EXT_VAL_ESCAPE;
			else if (!is_qdtext(b)) {
				*what = "invalid byte in a quoted chunk extension value";
				return false;
			}
			return true;
		case CH_EXT_VAL_ESCAPE:
			if (b == '\t' || (b >= 0x20 && b != 0x7f)) {
				c->state = CH_EXT_VAL_QUOTED;
				return true;
			}
			*what = "invalid quoted-pair in a chunk extension value";
			return false;
		default: /* CH_EXT_VAL_END */
			break;
		}
		/* End of a name or value: another extension or the line end. */
		if (b == ';') {
			c->state = CH_EXT_NAME_FIRST;
			return true;
		}
		if (b == '\r') {
			c->state = CH_SIZE_LF;
			return true;
		}
		*what = "malformed chunk extension";
		return false;
	case CH_SIZE_LF:
		if (b != '\n') {
			*what = "expected LF after CR in the chunk size line";
			return false;
		}
		c->state = after_size_line(c);
		return true;
	case CH_DATA_CR:
		/* Without this check "5\r\nhelloXX" would let the two extra
		 * bytes be read as data by one side and as the next chunk
		 * size by the other. */
		if (b != '\r') {
			*what = "expected CRLF after chunk data";
			return false;
		}
		c->state = CH_DATA_LF;
		return true;
	case CH_DATA_LF:
		if (b != '\n') {
			*what = "expected CRLF after chunk data";
			return false;
		}
		c->state = CH_SIZE_FIRST;
		c->digits = 0;
		c->remaining = 0;
		c->ext_len = 0;
		return true;
	default:
		break;
	}

	/* Trailer section: field lines with the head's rules, then CRLF. */
	if (++c->trailer_len > HTTP_MAX_TRAILERS) {
		*what = "trailer section longer than HTTP_MAX_TRAILERS";
		return false;
	}
	switch (c->state) {
	case CH_TRAILER_START:
		if (b == '\r') {
			c->state = CH_FINAL_LF;
			return true;
		}
		if (!is_tchar(b)) {
			*what = is_ows(b) ? "obs-fold or whitespace at the start of a trailer line"
					  : "invalid character in a trailer field name";
			return false;
		}
		c->state = CH_TRAILER_NAME;
		return true;
	case CH_TRAILER_NAME:
		if (b == ':') {
			c->state = CH_TRAILER_VALUE;
			return true;
		}
		if (is_tchar(b))
			return true;
		*what = is_ows(b) ? "whitespace before ':' in a trailer field"
				  : "invalid character in a trailer field name";
		return false;
	case CH_TRAILER_VALUE:
		if (b == '\r') {
			c->state = CH_TRAILER_LF;
			return true;
		}
		if (is_ctl(b) && b != '\t') {
			*what = "control character in a trailer field value";
			return false;
		}
		return true;
	case CH_TRAILER_LF:
		if (b != '\n') {
			*what = "expected LF after CR in the trailer section";
			return false;
		}
		c->state = CH_TRAILER_START;
		return true;
	case CH_FINAL_LF:
		if (b != '\n') {
			*what = "expected LF after CR at the end of the chunked body";
			return false;
		}
		c->state = CH_DONE;
		c->done = true;
		return true;
	default:
		*what = "internal: bad decoder state";
		return false;
	}
}

long http_chunked_feed(struct http_chunked *c, const char *in, size_t len,
		       void (*data)(void *ctx, const char *p, size_t n), void *ctx,
		       struct cdn_err *err)
{
	if (c->state == CH_ERROR) {
		cdn_err_msg(err, EINVAL, "chunked body already failed to parse");
		return -1;
	}
	if (len > (size_t)LONG_MAX)
		len = (size_t)LONG_MAX;
	size_t i = 0;
	while (i < len && c->state != CH_DONE) {
		if (c->state == CH_DATA) {
			size_t take = len - i;
			if ((uint64_t)take > c->remaining)
				take = (size_t)c->remaining;
			if (data)
				data(ctx, in + i, take);
			c->remaining -= take;
			c->offset += take;
			i += take;
			if (c->remaining == 0)
				c->state = CH_DATA_CR;
			continue;
		}
		const char *what = NULL;
		unsigned char b = (unsigned char)in[i];
		/* A bare LF ends a line for some parsers and not others. */
		if (b == '\n' && c->state != CH_SIZE_LF && c->state != CH_DATA_LF &&
		    c->state != CH_TRAILER_LF && c->state != CH_FINAL_LF)
			return chunk_fail(c, c->offset, err, "bare LF", b);
		if (!chunk_step(c, b, &what))
			return chunk_fail(c, c->offset, err, what, b);
		c->offset++;
		i++;
	}
	return (long)i;
}
