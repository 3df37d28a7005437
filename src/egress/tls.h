/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TLS inspection: a certificate authority that exists for one run only.
 *
 * For domains whose rule says `inspect: true`, the proxy terminates the
 * sandbox's TLS with a certificate this CA issues for the CONNECT host,
 * and opens its own TLS connection upstream with full verification
 * (system roots plus any operator-given CA file, hostname checked). That
 * is what lets method rules, approvals, body inspection and sealed secrets
 * apply to HTTPS.
 *
 * The supervisor makes the CA; its private key is handed once to the run's
 * network part (src/run/netpart.h), the only process that uses it, and
 * goes nowhere else. Its certificate is trusted only inside that run's
 * sandbox, and it carries name constraints so it can only vouch for the
 * inspected domains.
 */
#ifndef CORDON_EGRESS_TLS_H
#define CORDON_EGRESS_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>

#include "base/err.h"

#define TLS_CA_VALID_S (7 * 24 * 3600) /* longer than any run may last */
#define TLS_MAX_LEAVES 256	       /* cached host certificates per run */

struct egress_ca;

/*
 * Creates the run's CA. `domains` are the inspected rule names ("a.com",
 * "*.b.com"); they become the CA's permitted DNS name constraints.
 */
int egress_ca_new(const char *run_id, const char *const *domains, size_t n,
		  struct egress_ca **out, struct cdn_err *err);
void egress_ca_free(struct egress_ca *ca);

/* The CA's private key as PEM, malloc'd, for the network part: wipe and
 * free it once sent. */
int egress_ca_key_pem(const struct egress_ca *ca, char **out, struct cdn_err *err);

/* The network part's side: a CA from the certificate and key the
 * supervisor made (a fresh key for the leaves). */
int egress_ca_load(const char *cert_pem, const char *key_pem, struct egress_ca **out,
		   struct cdn_err *err);

/* The CA certificate, PEM, NUL-terminated (owned by ca). */
const char *egress_ca_pem(const struct egress_ca *ca);

/* A server-side SSL for a connection from the sandbox to `host`, with a
 * leaf certificate for host (issued once per host and cached). */
SSL *egress_ca_server_ssl(struct egress_ca *ca, const char *host, struct cdn_err *err);

/* A client-side SSL to `host`: TLS 1.2+, peer verification against the
 * system roots (and extra_ca_file), hostname and SNI set, ALPN http/1.1. */
SSL *egress_tls_client_ssl(const char *host, const char *extra_ca_file, struct cdn_err *err);

/* Reads the roots for verifying upstreams into memory now (the system
 * bundle and extra_ca_file; an unreadable one is an error), so that later
 * handshakes open no file: the network part calls it before it gives up
 * its access to the filesystem. They are parsed at the first handshake. */
int egress_tls_client_init(const char *extra_ca_file, struct cdn_err *err);

#endif
