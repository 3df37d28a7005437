/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The SSRF guard: which destination addresses an agent may reach.
 *
 * Every address a name resolves to is classified; the request is refused
 * if any of them is not public. IPv4 embedded in IPv6 (mapped, compatible,
 * NAT64, 6to4, Teredo) is unpacked and classified as IPv4 too, so
 * ::ffff:169.254.169.254 is the metadata service it looks like.
 *
 * Numeric hosts must be canonical: dotted-quad IPv4 with four decimal parts
 * without leading zeros, or bracketed IPv6. "2130706433", "0177.0.0.1",
 * "0x7f.1" and "127.1" are refused outright, because some resolvers read
 * them as 127.0.0.1 while a naive check reads them as names.
 */
#ifndef CORDON_EGRESS_SSRF_H
#define CORDON_EGRESS_SSRF_H

#include <stdbool.h>
#include <sys/socket.h>

#include "base/err.h"

enum ssrf_class {
	SSRF_PUBLIC = 0,
	SSRF_LOOPBACK,	    /* 127/8, ::1 */
	SSRF_PRIVATE,	    /* 10/8, 172.16/12, 192.168/16 */
	SSRF_LINK_LOCAL,    /* 169.254/16, fe80::/10 */
	SSRF_CGNAT,	    /* 100.64/10 */
	SSRF_MULTICAST,	    /* 224/4, ff00::/8 */
	SSRF_BROADCAST,	    /* 255.255.255.255 */
	SSRF_UNSPECIFIED,   /* 0/8, :: */
	SSRF_RESERVED,	    /* 240/4, 192.0.0/24, 198.18/15 (benchmarking), and other IANA special-purpose blocks */
	SSRF_DOCUMENTATION, /* 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32 */
	SSRF_METADATA,	    /* 169.254.169.254, 100.100.100.200, 168.63.129.16, 192.0.0.192, fd00:ec2::254 */
	SSRF_ULA,	    /* fc00::/7 */
};

/* The class of an AF_INET or AF_INET6 address (other families: RESERVED). */
enum ssrf_class ssrf_classify(const struct sockaddr *sa);

/* "loopback", "private", "metadata", ... */
const char *ssrf_class_name(enum ssrf_class c);

/*
 * Decides what kind of host a request names. Returns 1 and fills *out (port
 * 0) when host is a canonical IPv4 or IPv6 literal (IPv6 without the
 * brackets), 0 when it is a DNS name, and a negative value with err set when
 * it is a non-canonical numeric form or otherwise not a valid host.
 */
int ssrf_parse_host(const char *host, struct sockaddr_storage *out, struct cdn_err *err);

#endif
