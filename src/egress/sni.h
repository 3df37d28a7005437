/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The server name in a TLS ClientHello, read from the first bytes a client
 * sends through a CONNECT tunnel the proxy does not inspect.
 *
 * A CONNECT names a host the policy allowed; what flows inside is the
 * client's business, unless the proxy looks. Without this check a tunnel
 * to an allowed name could carry anything (another protocol, or TLS to a
 * server that answers for other names: domain fronting). So the first
 * record must be a TLS handshake record holding a ClientHello whose
 * server_name extension names exactly the CONNECT host.
 *
 * The parser is strict and bounded: one record (at most 16 KiB + 5 bytes),
 * every length checked against what holds it, one host_name entry at most,
 * a name of 1 to 253 bytes of letters, digits, '-' and '.'. It is fuzzed
 * (tests/fuzz/fuzz_sni.c).
 */
#ifndef CORDON_EGRESS_SNI_H
#define CORDON_EGRESS_SNI_H

#include <stddef.h>
#include <stdint.h>

#define SNI_MAX_RECORD (16384 + 5)

enum sni_result {
	SNI_FOUND = 1,	     /* out holds the name, lower-cased */
	SNI_MORE = 0,	     /* the record is not complete yet */
	SNI_NOT_TLS = -1,    /* not a TLS handshake record with a ClientHello */
	SNI_MALFORMED = -2,  /* a length or a field does not add up */
	SNI_NONE = -3,	     /* a ClientHello without a server name */
};

/* Reads the first record of buf. out needs 254 bytes. */
enum sni_result sni_parse(const uint8_t *buf, size_t len, char *out, size_t cap);

/* "found", "incomplete", "not TLS", ... for messages. */
const char *sni_result_name(enum sni_result r);

#endif
