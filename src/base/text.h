/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Untrusted text, made safe to show: on an operator's terminal, in a log
 * line, in an error message that goes into JSON. A name, a path or a
 * message from an agent, a bundle or a peer can carry escape sequences
 * that retitle or rewrite a terminal, newlines that forge a log line, or
 * bytes that are not UTF-8 (which JSON cannot carry). Every place that
 * shows such text goes through cdn_printable(), so the rule is one rule.
 */
#ifndef CORDON_BASE_TEXT_H
#define CORDON_BASE_TEXT_H

#include <stddef.h>
#include <string.h>

/* Without flags: printable ASCII (0x20-0x7e) as it is, every other byte '?'. */
enum {
	/* Keep bytes >= 0x80 (UTF-8 text) but for the C1 controls
	 * (U+0080-U+009F): only C0 controls, DEL and C1 become '?'. */
	CDN_TEXT_UTF8 = 1u << 0,
	/* "\xNN" instead of '?', and '\\' and '\'' escaped too, so that a log
	 * line can be read back to the bytes. */
	CDN_TEXT_ESCAPE = 1u << 1,
	/* Keep at most cap - 4 bytes, and end with "..." when the input was
	 * longer. */
	CDN_TEXT_ELLIPSIS = 1u << 2,
};

/*
 * in[0..len) into out (cap bytes, always terminated when cap > 0), as the
 * flags say; a cut never splits a "\xNN". in and out may be the same
 * buffer unless CDN_TEXT_ESCAPE is given. Returns out.
 */
const char *cdn_printable(char *out, size_t cap, const char *in, size_t len, unsigned flags);

/* The same for a C string; NULL reads as "". */
static inline const char *cdn_printable_str(char *out, size_t cap, const char *in, unsigned flags)
{
	return cdn_printable(out, cap, in ? in : "", in ? strlen(in) : 0, flags);
}

#endif
