/* SPDX-License-Identifier: Apache-2.0 */
/* The server name of a TLS ClientHello (see sni.h). RFC 8446 4.1.2, RFC 6066 3. */
#include "egress/sni.h"

#include <stdbool.h>
#include <string.h>

struct rd {
	const uint8_t *p;
	size_t n;
};

static bool take(struct rd *r, size_t n, struct rd *out)
{
	if (r->n < n)
		return false;
	if (out)
		*out = (struct rd){ r->p, n };
	r->p += n;
	r->n -= n;
	return true;
}

static bool u8(struct rd *r, size_t *v)
{
	if (r->n < 1)
		return false;
	*v = r->p[0];
	return take(r, 1, NULL);
}

static bool u16(struct rd *r, size_t *v)
{
	if (r->n < 2)
		return false;
	*v = (size_t)r->p[0] << 8 | r->p[1];
	return take(r, 2, NULL);
}

static bool u24(struct rd *r, size_t *v)
{
	if (r->n < 3)
		return false;
	*v = (size_t)r->p[0] << 16 | (size_t)r->p[1] << 8 | r->p[2];
	return take(r, 3, NULL);
}

/* A vector with a length prefix of `width` bytes. */
static bool vec(struct rd *r, int width, struct rd *out)
{
	size_t n;
	if (!(width == 1 ? u8(r, &n) : u16(r, &n)))
		return false;
	return take(r, n, out);
}

enum sni_result sni_parse(const uint8_t *buf, size_t len, char *out, size_t cap)
{
	if (cap < 254)
		return SNI_MALFORMED;
	out[0] = '\0';
	/* The record header: handshake (22), a TLS 1.x legacy version. */
	if (len >= 1 && buf[0] != 22)
		return SNI_NOT_TLS;
	if (len >= 2 && buf[1] != 3)
		return SNI_NOT_TLS;
	if (len < 5)
		return SNI_MORE;
	size_t rlen = (size_t)buf[3] << 8 | buf[4];
	if (rlen == 0 || rlen > SNI_MAX_RECORD - 5)
		return SNI_MALFORMED;
	if (len < 5 + rlen)
		return SNI_MORE;
	struct rd rec = { buf + 5, rlen }, hs;
	size_t type, hlen;
	if (!u8(&rec, &type) || type != 1)
		return SNI_NOT_TLS;
	/* The ClientHello must be whole in this record: its extensions are
	 * what the name is in. */
	if (!u24(&rec, &hlen) || !take(&rec, hlen, &hs))
		return SNI_MALFORMED;
	size_t ver;
	if (!u16(&hs, &ver) || (ver >> 8) != 3 || !take(&hs, 32, NULL) /* random */ ||
	    !vec(&hs, 1, NULL) /* session id */)
		return SNI_MALFORMED;
	struct rd suites, exts;
	if (!vec(&hs, 2, &suites) || suites.n == 0 || suites.n % 2 || !vec(&hs, 1, NULL) /* comp */)
		return SNI_MALFORMED;
	if (hs.n == 0)
		return SNI_NONE; /* no extensions at all */
	if (!vec(&hs, 2, &exts) || hs.n != 0)
		return SNI_MALFORMED;
	bool found = false;
	while (exts.n) {
		size_t etype;
		struct rd ext;
		if (!u16(&exts, &etype) || !vec(&exts, 2, &ext))
			return SNI_MALFORMED;
		if (etype != 0)
			continue;
		if (found)
			return SNI_MALFORMED; /* server_name twice */
		struct rd list;
		if (!vec(&ext, 2, &list) || ext.n != 0)
			return SNI_MALFORMED;
		while (list.n) {
			size_t ntype;
			struct rd name;
			if (!u8(&list, &ntype) || !vec(&list, 2, &name))
				return SNI_MALFORMED;
			if (ntype != 0)
				continue;
			if (found || name.n == 0 || name.n > 253)
				return SNI_MALFORMED; /* one host_name, of a real length */
			for (size_t i = 0; i < name.n; i++) {
				char c = (char)name.p[i];
				if (c >= 'A' && c <= 'Z')
					c = (char)(c - 'A' + 'a');
				if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
				      c == '.'))
					return SNI_MALFORMED;
				out[i] = c;
			}
			out[name.n] = '\0';
			found = true;
		}
	}
	return found ? SNI_FOUND : SNI_NONE;
}

const char *sni_result_name(enum sni_result r)
{
	switch (r) {
	case SNI_FOUND: return "found";
	case SNI_MORE: return "incomplete";
	case SNI_NOT_TLS: return "not a TLS ClientHello";
	case SNI_MALFORMED: return "a malformed ClientHello";
	case SNI_NONE: return "a ClientHello without a server name";
	}
	return "?";
}
