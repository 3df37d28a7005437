/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The SSRF guard (contract in ssrf.h).
 *
 * Classification works on the address bits alone: the engine resolves a
 * name once, classifies every address, and connects to exactly the address
 * it classified, so nothing here depends on DNS.
 *
 * The order of the checks matters in two places:
 *  - the metadata addresses are checked before the range they sit in
 *    (169.254.169.254 is link-local, 100.100.100.200 is CGNAT), so the
 *    audit line names the attack rather than the range;
 *  - IPv6 forms that embed an IPv4 address are unpacked before the IPv6
 *    ranges are applied, and the embedded address wins when it is not
 *    public: ::ffff:169.254.169.254 is a way to say 169.254.169.254.
 *
 * Blocks follow the IANA IPv4 and IPv6 Special-Purpose Address Registries.
 * When in doubt a block is treated as not public: the cost of refusing an
 * address no public site uses is nil, the cost of reaching an internal one
 * is the whole point of the guard.
 */
#include "egress/ssrf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

/* A DNS name is at most 253 characters (RFC 1035, without the root dot),
 * a label at most 63. */
#define SSRF_MAX_NAME 253
#define SSRF_MAX_LABEL 63

/* ---------------------------------------------------------------------------
 * IPv4
 */

struct v4_block {
	uint32_t net;
	unsigned bits;
	enum ssrf_class cls;
};

#define V4(a, b, c, d) (((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((uint32_t)(c) << 8) | (d))

/*
 * Cloud instance metadata services: a request to one of these hands the
 * agent the instance's credentials (the Capital One breach, 2019, was an
 * SSRF to 169.254.169.254). Checked before every range.
 */
static const uint32_t v4_metadata[] = {
	V4(169, 254, 169, 254), /* AWS, GCP, Azure IMDS, OpenStack, DigitalOcean, OCI */
	V4(100, 100, 100, 200), /* Alibaba Cloud */
	V4(168, 63, 129, 16),	/* Azure WireServer */
	V4(192, 0, 0, 192),	/* Oracle Cloud (legacy) */
};

/*
 * First match wins; 255.255.255.255 comes before 240/4, which contains it.
 * 192.88.99.0/24 (6to4 relay anycast) was deprecated by RFC 7526 and is no
 * longer globally reachable; it is refused like the other special blocks.
 */
static const struct v4_block v4_blocks[] = {
	{ V4(0, 0, 0, 0), 8, SSRF_UNSPECIFIED },
	{ V4(10, 0, 0, 0), 8, SSRF_PRIVATE },
	{ V4(100, 64, 0, 0), 10, SSRF_CGNAT },
	{ V4(127, 0, 0, 0), 8, SSRF_LOOPBACK },
	{ V4(169, 254, 0, 0), 16, SSRF_LINK_LOCAL },
	{ V4(172, 16, 0, 0), 12, SSRF_PRIVATE },
	{ V4(192, 0, 0, 0), 24, SSRF_RESERVED },
	{ V4(192, 0, 2, 0), 24, SSRF_DOCUMENTATION },
	{ V4(192, 88, 99, 0), 24, SSRF_RESERVED },
	{ V4(192, 168, 0, 0), 16, SSRF_PRIVATE },
	{ V4(198, 18, 0, 0), 15, SSRF_RESERVED }, /* benchmarking, RFC 2544 */
	{ V4(198, 51, 100, 0), 24, SSRF_DOCUMENTATION },
	{ V4(203, 0, 113, 0), 24, SSRF_DOCUMENTATION },
	{ V4(224, 0, 0, 0), 4, SSRF_MULTICAST },
	{ V4(255, 255, 255, 255), 32, SSRF_BROADCAST },
	{ V4(240, 0, 0, 0), 4, SSRF_RESERVED },
};

static enum ssrf_class classify_v4(uint32_t a)
{
	for (size_t i = 0; i < sizeof(v4_metadata) / sizeof(v4_metadata[0]); i++)
		if (a == v4_metadata[i])
			return SSRF_METADATA;
	for (size_t i = 0; i < sizeof(v4_blocks) / sizeof(v4_blocks[0]); i++) {
		const struct v4_block *b = &v4_blocks[i];
		uint32_t mask = b->bits ? ~(uint32_t)0 << (32 - b->bits) : 0;
		if ((a & mask) == b->net)
			return b->cls;
	}
	return SSRF_PUBLIC;
}

/* ---------------------------------------------------------------------------
 * IPv6
 */

static uint32_t be32_at(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* True when the first `bits` bits of a equal those of prefix. */
static bool v6_in(const uint8_t a[16], const uint8_t prefix[16], unsigned bits)
{
	unsigned full = bits / 8, rest = bits % 8;
	if (memcmp(a, prefix, full) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (a[full] & mask) == (prefix[full] & mask);
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* The worse of two classes: a non-public inner (embedded) class wins, since
 * that is where the packet ends up. */
static enum ssrf_class worse(enum ssrf_class outer, enum ssrf_class inner)
{
	return inner != SSRF_PUBLIC ? inner : outer;
}

static const uint8_t p_metadata_ec2[16] = { 0xfd, 0x00, 0x0e, 0xc2, [14] = 0x02, [15] = 0x54 };
static const uint8_t p_mapped[16] = { [10] = 0xff, [11] = 0xff };
static const uint8_t p_siit[16] = { [8] = 0xff, [9] = 0xff };
static const uint8_t p_nat64[16] = { 0x00, 0x64, 0xff, 0x9b };
static const uint8_t p_nat64_local[16] = { 0x00, 0x64, 0xff, 0x9b, 0x00, 0x01 };
static const uint8_t p_6to4[16] = { 0x20, 0x02 };
static const uint8_t p_teredo[16] = { 0x20, 0x01 };
static const uint8_t p_ietf[16] = { 0x20, 0x01 };
static const uint8_t p_doc[16] = { 0x20, 0x01, 0x0d, 0xb8 };
static const uint8_t p_doc2[16] = { 0x3f, 0xff };
static const uint8_t p_discard[16] = { 0x01, 0x00 };
static const uint8_t p_srv6[16] = { 0x5f, 0x00 };
static const uint8_t p_link_local[16] = { 0xfe, 0x80 };
static const uint8_t p_ula[16] = { 0xfc };
static const uint8_t p_multicast[16] = { 0xff };
static const uint8_t p_global[16] = { 0x20 };

static enum ssrf_class classify_v6(const uint8_t a[16])
{
	if (all_zero(a, 16))
		return SSRF_UNSPECIFIED;
	if (all_zero(a, 15) && a[15] == 1)
		return SSRF_LOOPBACK;
	/* AWS's IPv6 IMDS lives inside the ULA block: check it first. */
	if (memcmp(a, p_metadata_ec2, 16) == 0)
		return SSRF_METADATA;

	/* Forms with an IPv4 address inside: the IPv4 class decides unless it
	 * is public. */
	if (v6_in(a, p_mapped, 96)) /* ::ffff:a.b.c.d, the socket API's IPv4 */
		return classify_v4(be32_at(a + 12));
	if (v6_in(a, p_siit, 96)) /* ::ffff:0:a.b.c.d, SIIT (RFC 6145) */
		return classify_v4(be32_at(a + 12));
	if (all_zero(a, 12)) {
		/* ::a.b.c.d, IPv4-compatible (deprecated by RFC 4291). Not
		 * globally routable itself, so a public inner address still
		 * makes it RESERVED. */
		return worse(SSRF_RESERVED, classify_v4(be32_at(a + 12)));
	}
	if (v6_in(a, p_nat64, 96)) /* 64:ff9b::a.b.c.d, RFC 6052 */
		return classify_v4(be32_at(a + 12));
	if (v6_in(a, p_nat64_local, 48)) {
		/* Local-use NAT64 (RFC 8215) leads into the operator's own
		 * network and is not globally reachable, so it is RESERVED even
		 * with a public address inside. Where the IPv4 address sits
		 * depends on the local prefix length (RFC 6052); the common /96
		 * placement is classified only to name the target better. */
		return worse(SSRF_RESERVED, classify_v4(be32_at(a + 12)));
	}
	if (v6_in(a, p_6to4, 16)) /* 2002:AABB:CCDD::/48, RFC 3056 */
		return classify_v4(be32_at(a + 2));
	if (v6_in(a, p_teredo, 32)) {
		/* Teredo (RFC 4380): the server in bits 32..63, the client's
		 * address inverted in the last 32 bits. Either can be aimed at
		 * an internal host. */
		enum ssrf_class server = classify_v4(be32_at(a + 4));
		enum ssrf_class client = classify_v4(~be32_at(a + 12));
		return worse(server, client);
	}

	if (v6_in(a, p_doc, 32) || v6_in(a, p_doc2, 20))
		return SSRF_DOCUMENTATION;
	if (v6_in(a, p_ietf, 23)) /* IETF protocol assignments, RFC 2928 */
		return SSRF_RESERVED;
	if (v6_in(a, p_discard, 64)) /* discard-only, RFC 6666 */
		return SSRF_RESERVED;
	if (v6_in(a, p_srv6, 16)) /* SRv6 SIDs, RFC 9602 */
		return SSRF_RESERVED;
	if (v6_in(a, p_link_local, 10))
		return SSRF_LINK_LOCAL;
	if (v6_in(a, p_ula, 7))
		return SSRF_ULA;
	if (v6_in(a, p_multicast, 8))
		return SSRF_MULTICAST;
	/* Only 2000::/3 is allocated as global unicast. Everything else that
	 * is left (site-local fec0::/10, the unassigned IETF-reserved space)
	 * is nothing a public server can have. */
	if (!v6_in(a, p_global, 3))
		return SSRF_RESERVED;
	return SSRF_PUBLIC;
}

enum ssrf_class ssrf_classify(const struct sockaddr *sa)
{
	if (!sa)
		return SSRF_RESERVED;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		return classify_v4(ntohl(in->sin_addr.s_addr));
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		return classify_v6(in6->sin6_addr.s6_addr);
	}
	/* Unknown families cannot be checked, so they are not allowed. */
	return SSRF_RESERVED;
}

const char *ssrf_class_name(enum ssrf_class c)
{
	switch (c) {
	case SSRF_PUBLIC: return "public";
	case SSRF_LOOPBACK: return "loopback";
	case SSRF_PRIVATE: return "private";
	case SSRF_LINK_LOCAL: return "link-local";
	case SSRF_CGNAT: return "cgnat";
	case SSRF_MULTICAST: return "multicast";
	case SSRF_BROADCAST: return "broadcast";
	case SSRF_UNSPECIFIED: return "unspecified";
	case SSRF_RESERVED: return "reserved";
	case SSRF_DOCUMENTATION: return "documentation";
	case SSRF_METADATA: return "metadata";
	case SSRF_ULA: return "unique-local";
	}
	return "unknown";
}

/* ---------------------------------------------------------------------------
 * Host parsing
 *
 * The danger is a host that one component reads as a name and another as
 * an address. inet_aton(3), and the resolvers and URL parsers built on it,
 * accept "2130706433", "0x7f000001", "0177.0.0.1", "127.1" and "127.0.0.1."
 * as 127.0.0.1. A policy check that treats them as names sees a harmless
 * unknown domain; the connect goes to loopback.
 *
 * The rule (the same one the WHATWG URL standard uses to decide that a host
 * "ends in a number"): look at the last label, ignoring one trailing dot.
 * If it is all decimal digits, or starts with "0x"/"0X", the host is
 * numeric, and the only numeric form we accept is the canonical dotted quad
 * without a trailing dot. No real top-level domain is numeric or starts with
 * "0x", so refusing these costs nothing. Anything else made of letters,
 * digits, '-', '_' and '.' is a name, and is checked against the policy and
 * resolved as one.
 */

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '-' ||
	       c == '_' || c == '.';
}

/* Parses a canonical dotted quad: four parts, each "0" or 1-3 decimal digits
 * without a leading zero, at most 255, nothing else. host has passed the
 * label walk in ssrf_parse_host (no empty labels, only name characters). */
static int parse_dotted_quad(const char *host, uint32_t *out, struct cdn_err *err)
{
	size_t len = strlen(host);
	if (host[len - 1] == '.')
		return cdn_err_msg(err, EINVAL, "numeric host '%s' has a trailing dot", host);
	size_t dots = 0;
	for (size_t i = 0; i < len; i++)
		dots += host[i] == '.';
	/* "2130706433", "127.1", "127.0.1": inet_aton fills the missing
	 * parts from the last number. */
	if (dots != 3)
		return cdn_err_msg(err, EINVAL,
				   "numeric host '%s' is not a canonical IPv4 address (expected "
				   "four decimal parts)",
				   host);
	uint32_t addr = 0;
	const char *p = host;
	for (int part = 0; part < 4; part++, p++) {
		const char *start = p;
		unsigned v = 0;
		while (*p && *p != '.') {
			if (!is_digit(*p))
				return cdn_err_msg(err, EINVAL,
						   "numeric host '%s' is not a canonical IPv4 "
						   "address (non-decimal part)",
						   host);
			if (v <= 255)
				v = v * 10 + (unsigned)(*p - '0');
			p++;
		}
		size_t n = (size_t)(p - start);
		/* A leading zero means octal to inet_aton: 0177 is 127. */
		if (n > 1 && start[0] == '0')
			return cdn_err_msg(err, EINVAL,
					   "numeric host '%s' has a part with a leading zero "
					   "(read as octal by some resolvers)",
					   host);
		if (n > 3 || v > 255)
			return cdn_err_msg(err, EINVAL, "numeric host '%s' has a part above 255",
					   host);
		addr = (addr << 8) | v;
	}
	*out = addr;
	return 0;
}

/* Messages quote a host only once it is known to hold nothing but name or
 * address characters: they end up in the audit log and in the answer. */
static int parse_v6(const char *host, struct sockaddr_storage *out, struct cdn_err *err)
{
	size_t len = strlen(host);
	for (size_t i = 0; i < len; i++) {
		char c = host[i];
		/* A zone id ("fe80::1%eth0") names an interface of this host: no
		 * upstream is reached that way, and it is one more spelling to
		 * get wrong. */
		if (c == '%')
			return cdn_err_msg(err, EINVAL, "IPv6 host has a zone id");
		if (!is_digit(c) && !(c >= 'a' && c <= 'f') && !(c >= 'A' && c <= 'F') && c != ':' &&
		    c != '.')
			return cdn_err_msg(err, EINVAL, "host has an invalid character 0x%02x",
					   (unsigned char)c);
	}
	struct in6_addr a;
	if (len >= INET6_ADDRSTRLEN)
		return cdn_err_msg(err, EINVAL, "host is too long for an IPv6 address");
	if (inet_pton(AF_INET6, host, &a) != 1)
		return cdn_err_msg(err, EINVAL, "host '%s' is not a valid IPv6 address", host);
	if (out) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
		in6->sin6_family = AF_INET6;
		in6->sin6_addr = a;
	}
	return 1;
}

int ssrf_parse_host(const char *host, struct sockaddr_storage *out, struct cdn_err *err)
{
	if (out)
		memset(out, 0, sizeof(*out));
	if (!host || !*host)
		return cdn_err_msg(err, EINVAL, "empty host");
	size_t len = strnlen(host, SSRF_MAX_NAME + 2);
	if (strchr(host, ':'))
		return parse_v6(host, out, err);
	if (len > SSRF_MAX_NAME + 1)
		return cdn_err_msg(err, EINVAL, "host is longer than %d characters", SSRF_MAX_NAME);

	/* The character set first (so later messages may quote the host),
	 * then the labels: empty ones, their length, where the last starts. */
	for (size_t i = 0; i < len; i++)
		if (!is_name_char(host[i]))
			return cdn_err_msg(err, EINVAL, "host has an invalid character 0x%02x",
					   (unsigned char)host[i]);
	size_t end = len;
	if (host[end - 1] == '.')
		end--; /* one trailing dot: the root, valid on a name */
	if (end == 0)
		return cdn_err_msg(err, EINVAL, "host '%s' has an empty label", host);
	if (end > SSRF_MAX_NAME)
		return cdn_err_msg(err, EINVAL, "host is longer than %d characters", SSRF_MAX_NAME);
	size_t label = 0, last = 0;
	for (size_t i = 0; i < end; i++) {
		char c = host[i];
		if (c == '.') {
			if (i == label)
				return cdn_err_msg(err, EINVAL, "host '%s' has an empty label",
						   host);
			label = i + 1;
			continue;
		}
		if (i - label >= SSRF_MAX_LABEL)
			return cdn_err_msg(err, EINVAL,
					   "host has a label longer than %d characters",
					   SSRF_MAX_LABEL);
	}
	if (label == end)
		return cdn_err_msg(err, EINVAL, "host '%s' has an empty label", host);
	last = label;

	bool numeric = (host[last] == '0' && (host[last + 1] == 'x' || host[last + 1] == 'X'));
	if (!numeric) {
		numeric = true;
		for (size_t i = last; i < end; i++)
			if (!is_digit(host[i]))
				numeric = false;
	}
	if (!numeric)
		return 0;

	for (size_t i = 0; i < end; i++) {
		bool label_start = i == 0 || host[i - 1] == '.';
		if (label_start && host[i] == '0' && (host[i + 1] == 'x' || host[i + 1] == 'X'))
			return cdn_err_msg(err, EINVAL,
					   "numeric host '%s' has a hexadecimal part (read as a "
					   "number by some resolvers)",
					   host);
	}
	uint32_t addr = 0;
	int r = parse_dotted_quad(host, &addr, err);
	if (r < 0)
		return r;
	if (out) {
		struct sockaddr_in *in = (struct sockaddr_in *)out;
		in->sin_family = AF_INET;
		in->sin_addr.s_addr = htonl(addr);
	}
	return 1;
}
