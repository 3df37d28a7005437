/* SPDX-License-Identifier: Apache-2.0 */
/*
 * DNS wire format for the egress DNS filter (contract in dns.h).
 *
 * The filter answers from the policy and never forwards a query, so the
 * parser only has to accept what a stub resolver sends, and it refuses the
 * rest: every byte of a query must be accounted for. Names are restricted
 * to the hostname alphabet at parse time; that is what keeps DNS from
 * being a covert channel (see parse_name).
 */
#include "egress/dns.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

/* Header flag bits (RFC 1035 4.1.1, RFC 4035 3.2 for AD and CD). */
#define DNS_FLAG_QR 0x8000
#define DNS_FLAG_OPCODE 0x7800
#define DNS_FLAG_AA 0x0400
#define DNS_FLAG_TC 0x0200
#define DNS_FLAG_RD 0x0100
#define DNS_FLAG_RA 0x0080
#define DNS_FLAG_Z 0x0040
#define DNS_FLAG_RCODE 0x000f

/* Fixed part of a resource record after its owner name:
 * TYPE, CLASS, TTL, RDLENGTH. */
#define DNS_RR_FIXED 10

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static bool is_label_byte(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

/*
 * Reads the question name at pkt[*pos] into q->name (lowercase, dots, no
 * trailing dot) and advances *pos past it.
 *
 * Label bytes are limited to letters, digits, '-' and '_'. Any byte is
 * legal in a DNS label, and that is what DNS tunnels (iodine, dnscat2) use
 * to pack binary payloads into names; refusing them here means a query can
 * carry at most the entropy of a hostname-shaped name, and the names that
 * reach the policy and the logs are printable. (The policy still returns
 * NXDOMAIN for names not on it, so nothing is resolved either way.)
 */
static int parse_name(const uint8_t *pkt, size_t len, size_t *pos, struct dns_query *q,
		      struct cdn_err *err)
{
	size_t p = *pos, out = 0;
	for (;;) {
		if (p >= len)
			return cdn_err_msg(err, EINVAL,
					   "question name runs past the end of the packet");
		uint8_t l = pkt[p];
		/* 11xxxxxx is a compression pointer; 01 and 10 are the
		 * obsolete extended label types (RFC 6891 5). A query has
		 * nothing earlier to point at, and following pointers is
		 * where loop and out-of-bounds bugs live. */
		if ((l & 0xc0) == 0xc0)
			return cdn_err_msg(
			    err, EINVAL, "compression pointer in the question name at byte %zu", p);
		if (l & 0xc0)
			return cdn_err_msg(
			    err, EINVAL,
			    "label length byte 0x%02x at byte %zu: labels are at most "
			    "%d octets (0x40-0xbf are obsolete extended label types)",
			    l, p, DNS_MAX_LABEL);
		p++;
		if (l == 0)
			break;
		if (p + l > len)
			return cdn_err_msg(err, EINVAL,
					   "question name runs past the end of the packet");
		/* presentation length: labels plus the dots between them */
		size_t need = out + (out ? 1 : 0) + l;
		if (need > DNS_MAX_NAME)
			return cdn_err_msg(err, EINVAL, "question name longer than %d characters",
					   DNS_MAX_NAME);
		if (out) {
			q->raw_name[out] = '.';
			q->name[out++] = '.';
		}
		for (size_t i = 0; i < l; i++) {
			uint8_t c = pkt[p + i];
			if (!is_label_byte(c))
				return cdn_err_msg(
				    err, EINVAL,
				    "byte 0x%02x in the question name at byte %zu "
				    "(only letters, digits, '-' and '_' are accepted)",
				    c, p + i);
			q->raw_name[out] = (char)c;
			q->name[out++] = (char)((c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c);
		}
		p += l;
	}
	q->name[out] = '\0';
	q->raw_name[out] = '\0';
	/* The root has no use for an agent; refusing it also keeps "." out
	 * of the policy's domain matching. */
	if (out == 0)
		return cdn_err_msg(err, EINVAL, "the question asks for the root name");
	*pos = p;
	return 0;
}

/* The OPT pseudo-record (RFC 6891 6.1.2): root owner, TYPE 41, CLASS is
 * the UDP payload size, TTL holds extended flags, then RDLENGTH options. */
static int parse_opt(const uint8_t *pkt, size_t len, size_t *pos, struct dns_query *q,
		     struct cdn_err *err)
{
	size_t p = *pos;
	if (p >= len || pkt[p] != 0)
		return cdn_err_msg(err, EINVAL,
				   "additional record is not an OPT record with root owner");
	p++;
	if (len - p < DNS_RR_FIXED)
		return cdn_err_msg(err, EINVAL, "truncated OPT record");
	if (get16(pkt + p) != DNS_TYPE_OPT)
		return cdn_err_msg(err, EINVAL, "additional record of type %u is not OPT",
				   get16(pkt + p));
	q->edns = true;
	q->edns_udp_size = get16(pkt + p + 2);
	size_t rdlen = get16(pkt + p + 8);
	p += DNS_RR_FIXED;
	if (rdlen > len - p)
		return cdn_err_msg(err, EINVAL, "OPT RDLENGTH %zu runs past the end of the packet",
				   rdlen);
	*pos = p + rdlen;
	return 0;
}

int dns_parse_query(const uint8_t *pkt, size_t len, struct dns_query *q, struct cdn_err *err)
{
	memset(q, 0, sizeof(*q));
	if (len > DNS_MAX_PACKET)
		return cdn_err_msg(err, EINVAL, "packet of %zu bytes is larger than %d", len,
				   DNS_MAX_PACKET);
	if (len < DNS_HEADER_LEN)
		return cdn_err_msg(err, EINVAL, "packet of %zu bytes is shorter than a DNS header",
				   len);
	uint16_t flags = get16(pkt + 2);
	uint16_t qd = get16(pkt + 4), an = get16(pkt + 6), ns = get16(pkt + 8),
		 ar = get16(pkt + 10);
	if (flags & DNS_FLAG_QR)
		return cdn_err_msg(err, EINVAL, "QR is set: this is a response, not a query");
	if (flags & DNS_FLAG_OPCODE)
		return cdn_err_msg(err, EINVAL, "OPCODE %u is not a standard query",
				   (flags & DNS_FLAG_OPCODE) >> 11);
	if (flags & DNS_FLAG_TC)
		return cdn_err_msg(err, EINVAL, "TC is set in a query");
	if (flags & DNS_FLAG_Z)
		return cdn_err_msg(err, EINVAL, "reserved Z bit is set");
	if (flags & DNS_FLAG_RCODE)
		return cdn_err_msg(err, EINVAL, "RCODE %u in a query", flags & DNS_FLAG_RCODE);
	/* AA and RA mean nothing in a query and are ignored; AD and CD are
	 * legitimately set by stubs (dig sets AD). */
	if (qd != 1)
		return cdn_err_msg(err, EINVAL, "QDCOUNT is %u, not 1", qd);
	if (an || ns)
		return cdn_err_msg(err, EINVAL, "query carries %u answer and %u authority records",
				   an, ns);
	if (ar > 1)
		return cdn_err_msg(err, EINVAL, "ARCOUNT is %u (at most one OPT record)", ar);

	q->id = get16(pkt);
	q->rd = flags & DNS_FLAG_RD;
	size_t pos = DNS_HEADER_LEN;
	int r = parse_name(pkt, len, &pos, q, err);
	if (r < 0)
		return r;
	if (len - pos < 4)
		return cdn_err_msg(err, EINVAL, "question is truncated (no QTYPE/QCLASS)");
	q->qtype = get16(pkt + pos);
	q->qclass = get16(pkt + pos + 2);
	pos += 4;
	q->question = pkt + DNS_HEADER_LEN;
	q->question_len = pos - DNS_HEADER_LEN;
	if (ar == 1) {
		r = parse_opt(pkt, len, &pos, q, err);
		if (r < 0)
			return r;
	}
	/* Bytes after the last record are ignored by most servers and so
	 * are free space for a covert payload. */
	if (pos != len)
		return cdn_err_msg(err, EINVAL, "%zu trailing bytes after the last record",
				   len - pos);
	return 0;
}

size_t dns_build_response(const struct dns_query *q, int rcode, const struct dns_answer *answers,
			  size_t n_answers, bool truncated, uint8_t *out, size_t cap)
{
	/* Invalid arguments are refused like a packet that does not fit:
	 * never emit a record of a type the question did not ask for. */
	if (!q || rcode < 0 || rcode > 15 || n_answers > DNS_MAX_ANSWERS ||
	    (n_answers && !answers) || !q->question || q->question_len < 5)
		return 0;
	for (size_t i = 0; i < n_answers; i++) {
		int want = q->qtype == DNS_TYPE_A ? AF_INET : q->qtype == DNS_TYPE_AAAA ? AF_INET6 : -1;
		if (answers[i].family != want)
			return 0;
	}
	size_t rdlen = q->qtype == DNS_TYPE_A ? 4 : 16;
	size_t need = DNS_HEADER_LEN + q->question_len +
		      n_answers * (2 + DNS_RR_FIXED + rdlen) + (q->edns ? 1 + DNS_RR_FIXED : 0);
	if (!out || need > cap)
		return 0;

	uint16_t flags = DNS_FLAG_QR | DNS_FLAG_RA | (uint16_t)rcode;
	if (q->rd)
		flags |= DNS_FLAG_RD;
	if (truncated)
		flags |= DNS_FLAG_TC;
	put16(out, q->id);
	put16(out + 2, flags);
	put16(out + 4, 1);
	put16(out + 6, (uint16_t)n_answers);
	put16(out + 8, 0);
	put16(out + 10, q->edns ? 1 : 0);
	size_t p = DNS_HEADER_LEN;
	/* The question is echoed byte for byte: resolvers that randomise the
	 * case of the name (0x20 encoding) check that it comes back as sent. */
	memcpy(out + p, q->question, q->question_len);
	p += q->question_len;
	for (size_t i = 0; i < n_answers; i++) {
		put16(out + p, 0xc000 | DNS_HEADER_LEN); /* pointer to the question name */
		put16(out + p + 2, q->qtype);
		put16(out + p + 4, DNS_CLASS_IN);
		put32(out + p + 6, answers[i].ttl);
		put16(out + p + 10, (uint16_t)rdlen);
		memcpy(out + p + 12,
		       rdlen == 4 ? (const void *)&answers[i].addr.v4 : (const void *)&answers[i].addr.v6,
		       rdlen);
		p += 2 + DNS_RR_FIXED + rdlen;
	}
	if (q->edns) {
		out[p] = 0; /* root owner */
		put16(out + p + 1, DNS_TYPE_OPT);
		put16(out + p + 3, DNS_EDNS_UDP_SIZE);
		put32(out + p + 5, 0); /* extended RCODE 0, version 0, no DO */
		put16(out + p + 9, 0);
		p += 1 + DNS_RR_FIXED;
	}
	return p;
}
