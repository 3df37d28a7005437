/* SPDX-License-Identifier: Apache-2.0 */
#include "base/text.h"

#include <stdbool.h>
#include <stdio.h>

const char *cdn_printable(char *out, size_t cap, const char *in, size_t len, unsigned flags)
{
	if (!cap)
		return out;
	bool ellipsis = (flags & CDN_TEXT_ELLIPSIS) && cap >= 4;
	size_t room = ellipsis ? cap - 4 : cap - 1; /* bytes of text out may hold */
	const unsigned char *p = (const unsigned char *)in;
	size_t i = 0, o = 0;
	while (i < len) {
		unsigned char c = p[i];
		bool c1 = c == 0xc2 && i + 1 < len && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f;
		bool keep;
		if (flags & CDN_TEXT_UTF8)
			keep = c >= 0x20 && c != 0x7f && !c1;
		else
			keep = c >= 0x20 && c < 0x7f;
		if ((flags & CDN_TEXT_ESCAPE) && (c == '\\' || c == '\''))
			keep = false;
		if (keep) {
			if (o + 1 > room)
				break;
			out[o++] = (char)c;
			i++;
		} else if (flags & CDN_TEXT_ESCAPE) {
			if (o + 4 > room)
				break;
			snprintf(out + o, 5, "\\x%02x", c);
			o += 4;
			i++;
		} else if (c1 && (flags & CDN_TEXT_UTF8)) {
			/* Both bytes of the C1 control: the pair is one
			 * character, and neither half is left to be shown. */
			if (o + 2 > room)
				break;
			out[o++] = '?';
			out[o++] = '?';
			i += 2;
		} else {
			if (o + 1 > room)
				break;
			out[o++] = '?';
			i++;
		}
	}
	if (ellipsis && i < len) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}
