/* SPDX-License-Identifier: Apache-2.0 */
/*
 * DNS wire format for the egress DNS filter (RFC 1035, RFC 3596, RFC 6891).
 *
 * Only what a stub resolver sends is accepted: a standard query (QR=0,
 * OPCODE=0) with exactly one question, no answer or authority records, and
 * at most one additional record (an EDNS OPT). Compression pointers are not
 * accepted in a query's question. Everything is bounded by DNS_MAX_PACKET;
 * the parser never allocates.
 */
#ifndef CORDON_EGRESS_DNS_H
#define CORDON_EGRESS_DNS_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define DNS_MAX_PACKET 4096 /* largest query or answer we handle (EDNS sizes) */
#define DNS_MAX_NAME 253    /* presentation form, without the trailing dot */
#define DNS_MAX_ANSWERS 16
#define DNS_HEADER_LEN 12
#define DNS_MAX_LABEL 63	/* octets per label (RFC 1035 2.3.4) */
#define DNS_EDNS_UDP_SIZE 1232	/* the UDP size we advertise in answers (DNS flag day 2020) */

enum {
	DNS_TYPE_A = 1,
	DNS_TYPE_AAAA = 28,
	DNS_TYPE_OPT = 41,
	DNS_CLASS_IN = 1,
	DNS_RCODE_NOERROR = 0,
	DNS_RCODE_FORMERR = 1,
	DNS_RCODE_SERVFAIL = 2,
	DNS_RCODE_NXDOMAIN = 3,
	DNS_RCODE_NOTIMP = 4,
	DNS_RCODE_REFUSED = 5,
};

struct dns_query {
	uint16_t id;
	bool rd;			/* recursion desired, echoed back */
	char name[DNS_MAX_NAME + 1];	/* lowercase presentation form, no trailing dot */
	char raw_name[DNS_MAX_NAME + 1]; /* the same in the case it was sent in */
	uint16_t qtype;
	uint16_t qclass;
	bool edns;			/* the query carried an OPT record */
	uint16_t edns_udp_size;
	size_t question_len;		/* bytes of the question section, for echoing */
	const uint8_t *question;	/* points into the packet */
};

struct dns_answer {
	int family; /* AF_INET or AF_INET6 */
	union {
		struct in_addr v4;
		struct in6_addr v6;
	} addr;
	uint32_t ttl;
};

/* Parses a query. 0 on success; negative with err set when malformed (the
 * filter drops those: no answer at all). */
int dns_parse_query(const uint8_t *pkt, size_t len, struct dns_query *q, struct cdn_err *err);

/*
 * Builds the response to q: rcode, and the answers (their family must match
 * q->qtype). Returns the packet length, or 0 when it does not fit in cap
 * (then the caller sends a truncated, TC=1 empty answer built with
 * n_answers = 0 and truncated = true).
 */
size_t dns_build_response(const struct dns_query *q, int rcode, const struct dns_answer *answers,
			  size_t n_answers, bool truncated, uint8_t *out, size_t cap);

#endif
