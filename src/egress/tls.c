/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "egress/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/file.h"

#include "base/cleanup.h"

#define LEAF_VALID_S (24 * 3600)

struct leaf {
	char *host;
	X509 *cert;
};

struct egress_ca {
	EVP_PKEY *ca_key;
	X509 *ca_cert;
	EVP_PKEY *leaf_key; /* one key for every leaf of this run */
	SSL_CTX *server_ctx;
	char *pem;
	struct leaf leaves[TLS_MAX_LEAVES];
	size_t n_leaves, next_evict;
};

static void bio_freep(BIO **b)
{
	BIO_free(*b);
}

static void x509_freep(X509 **x)
{
	X509_free(*x);
}

static void ca_freep(struct egress_ca **ca)
{
	egress_ca_free(*ca);
}

#define _cleanup_bio_  _cleanup_(bio_freep)
#define _cleanup_x509_ _cleanup_(x509_freep)
#define _cleanup_ca_   _cleanup_(ca_freep)

static int ssl_err(struct cdn_err *err, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256] = "unknown error";
	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return cdn_err_msg(err, EPROTO, "%s: %s", what, buf);
}

static bool add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return false;
	bool ok = X509_add_ext(x, ext, -1) == 1;
	X509_EXTENSION_free(ext);
	return ok;
}

static X509 *make_cert(EVP_PKEY *pub, X509 *issuer, const char *cn, long valid_s)
{
	_cleanup_x509_ X509 *x = X509_new();
	unsigned char serial[16];
	if (!x || RAND_bytes(serial, sizeof(serial)) != 1)
		return NULL;
	serial[0] &= 0x7f; /* positive */
	BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
	bool ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
	BN_free(bn);
	if (!ok || X509_set_version(x, 2) != 1 || !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), valid_s) || X509_set_pubkey(x, pub) != 1)
		return NULL;
	X509_NAME *name = X509_get_subject_name(x);
	if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)"cordon", -1,
				       -1, 0) != 1 ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
				       0) != 1 ||
	    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name) != 1)
		return NULL;
	return cdn_steal(&x);
}

/* What a CA needs besides its key and certificate: the PEM the sandbox
 * trusts, and the server context leaves are served from. */
static int finish_ca(struct egress_ca *ca, struct cdn_err *err)
{
	_cleanup_bio_ BIO *bio = BIO_new(BIO_s_mem());
	char *data = NULL;
	long len;
	if (!bio || PEM_write_bio_X509(bio, ca->ca_cert) != 1 ||
	    (len = BIO_get_mem_data(bio, &data)) <= 0 || !(ca->pem = strndup(data, (size_t)len)))
		return ssl_err(err, "TLS CA: PEM");
	ca->server_ctx = SSL_CTX_new(TLS_server_method());
	if (!ca->server_ctx || SSL_CTX_set_min_proto_version(ca->server_ctx, TLS1_2_VERSION) != 1)
		return ssl_err(err, "TLS CA: server context");
	/* No session tickets: nothing of this run outlives it. */
	SSL_CTX_set_options(ca->server_ctx, SSL_OP_NO_TICKET);
	return 0;
}

int egress_ca_new(const char *run_id, const char *const *domains, size_t n,
		  struct egress_ca **out, struct cdn_err *err)
{
	*out = NULL;
	_cleanup_ca_ struct egress_ca *ca = calloc(1, sizeof(*ca));
	if (!ca)
		return cdn_err_set(err, ENOMEM, "TLS CA");
	ca->ca_key = EVP_EC_gen("P-256");
	ca->leaf_key = EVP_EC_gen("P-256");
	if (!ca->ca_key || !ca->leaf_key)
		return ssl_err(err, "TLS CA: generate keys");
	char cn[128];
	snprintf(cn, sizeof(cn), "cordon run %s CA", run_id ? run_id : "");
	ca->ca_cert = make_cert(ca->ca_key, NULL, cn, TLS_CA_VALID_S);

	/* Name constraints: this CA can vouch only for the inspected domains,
	 * so even a leaked CA key could not impersonate anything else. A
	 * "*.x" rule permits the subtree x (its apex is not allowed by the
	 * policy anyway). */
	size_t cap = 64;
	for (size_t i = 0; i < n; i++)
		cap += strlen(domains[i]) + 20;
	_cleanup_free_ char *nc = malloc(cap);
	if (!ca->ca_cert || !nc)
		return ssl_err(err, "TLS CA: certificate");
	size_t used = (size_t)snprintf(nc, cap, "critical");
	for (size_t i = 0; i < n; i++) {
		const char *d = domains[i];
		if (strncmp(d, "*.", 2) == 0)
			d += 2;
		used += (size_t)snprintf(nc + used, cap - used, ",permitted;DNS:%s", d);
	}
	bool ok = add_ext(ca->ca_cert, NULL, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") &&
		  add_ext(ca->ca_cert, NULL, NID_key_usage, "critical,keyCertSign,cRLSign") &&
		  add_ext(ca->ca_cert, NULL, NID_subject_key_identifier, "hash") &&
		  (n == 0 || add_ext(ca->ca_cert, NULL, NID_name_constraints, nc)) &&
		  X509_sign(ca->ca_cert, ca->ca_key, EVP_sha256()) > 0;
	if (!ok)
		return ssl_err(err, "TLS CA: sign");
	int r = finish_ca(ca, err);
	if (r == 0)
		*out = cdn_steal(&ca);
	return r;
}

int egress_ca_key_pem(const struct egress_ca *ca, char **out, struct cdn_err *err)
{
	*out = NULL;
	/* A secure-memory BIO wipes what it held when it is freed. */
	_cleanup_bio_ BIO *bio = BIO_new(BIO_s_secmem());
	char *data = NULL;
	long len;
	if (!bio || PEM_write_bio_PrivateKey(bio, ca->ca_key, NULL, NULL, 0, NULL, NULL) != 1 ||
	    (len = BIO_get_mem_data(bio, &data)) <= 0 || !(*out = strndup(data, (size_t)len)))
		return ssl_err(err, "TLS CA: export the key");
	return 0;
}

int egress_ca_load(const char *cert_pem, const char *key_pem, struct egress_ca **out,
		   struct cdn_err *err)
{
	*out = NULL;
	_cleanup_ca_ struct egress_ca *ca = calloc(1, sizeof(*ca));
	if (!ca)
		return cdn_err_set(err, ENOMEM, "TLS CA");
	_cleanup_bio_ BIO *cb = BIO_new_mem_buf(cert_pem, -1);
	_cleanup_bio_ BIO *kb = BIO_new_mem_buf(key_pem, -1);
	ca->ca_cert = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
	ca->ca_key = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
	ca->leaf_key = EVP_EC_gen("P-256");
	int r;
	if (!ca->ca_cert || !ca->ca_key || !ca->leaf_key)
		r = ssl_err(err, "TLS CA: load");
	else if (X509_check_private_key(ca->ca_cert, ca->ca_key) != 1)
		r = ssl_err(err, "TLS CA: the key does not match the certificate");
	else
		r = finish_ca(ca, err);
	if (r == 0)
		*out = cdn_steal(&ca);
	return r;
}

void egress_ca_free(struct egress_ca *ca)
{
	if (!ca)
		return;
	for (size_t i = 0; i < ca->n_leaves; i++) {
		free(ca->leaves[i].host);
		X509_free(ca->leaves[i].cert);
	}
	SSL_CTX_free(ca->server_ctx);
	X509_free(ca->ca_cert);
	EVP_PKEY_free(ca->ca_key);
	EVP_PKEY_free(ca->leaf_key);
	free(ca->pem);
	free(ca);
}

const char *egress_ca_pem(const struct egress_ca *ca)
{
	return ca->pem;
}

static X509 *leaf_for(struct egress_ca *ca, const char *host, struct cdn_err *err)
{
	for (size_t i = 0; i < ca->n_leaves; i++)
		if (strcmp(ca->leaves[i].host, host) == 0)
			return ca->leaves[i].cert;
	_cleanup_x509_ X509 *x = make_cert(ca->leaf_key, ca->ca_cert, host, LEAF_VALID_S);
	char san[300];
	snprintf(san, sizeof(san), "DNS:%s", host);
	if (!x || !add_ext(x, ca->ca_cert, NID_basic_constraints, "critical,CA:FALSE") ||
	    !add_ext(x, ca->ca_cert, NID_key_usage, "critical,digitalSignature") ||
	    !add_ext(x, ca->ca_cert, NID_ext_key_usage, "serverAuth") ||
	    !add_ext(x, ca->ca_cert, NID_subject_alt_name, san) ||
	    !add_ext(x, ca->ca_cert, NID_authority_key_identifier, "keyid:always") ||
	    X509_sign(x, ca->ca_key, EVP_sha256()) <= 0) {
		ssl_err(err, "TLS: issue a certificate");
		return NULL;
	}
	_cleanup_free_ char *h = strdup(host);
	if (!h) {
		cdn_err_set(err, ENOMEM, "TLS");
		return NULL;
	}
	size_t slot;
	if (ca->n_leaves < TLS_MAX_LEAVES) {
		slot = ca->n_leaves++;
	} else {
		slot = ca->next_evict++ % TLS_MAX_LEAVES;
		free(ca->leaves[slot].host);
		X509_free(ca->leaves[slot].cert);
	}
	ca->leaves[slot].host = cdn_steal(&h);
	ca->leaves[slot].cert = cdn_steal(&x);
	return ca->leaves[slot].cert;
}

SSL *egress_ca_server_ssl(struct egress_ca *ca, const char *host, struct cdn_err *err)
{
	X509 *leaf = leaf_for(ca, host, err);
	if (!leaf)
		return NULL;
	SSL *ssl = SSL_new(ca->server_ctx);
	if (!ssl || SSL_use_certificate(ssl, leaf) != 1 ||
	    SSL_use_PrivateKey(ssl, ca->leaf_key) != 1) {
		SSL_free(ssl);
		ssl_err(err, "TLS: server session");
		return NULL;
	}
	return ssl;
}

/* One verifying context per process (and per extra CA file). */
/*
 * The roots for verifying upstreams. egress_tls_client_init reads the
 * files into memory while the network part may still open files; the
 * first handshake parses them (~45 ms for Debian's bundle of ~140 roots),
 * so a run that never opens an inspected TLS connection never pays for it,
 * and none waits for it at start or at stop.
 */
#define TRUST_FILE_MAX (8u << 20)

static struct {
	char *path;   /* extra_ca_file as given, or NULL */
	char *pem[2]; /* the system bundle, and the extra file's bytes */
	size_t len[2];
	SSL_CTX *ctx; /* built at the first handshake */
} trust;

static int read_trust_file(const char *path, char **out, size_t *len, struct cdn_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cdn_err_set(err, errno, "TLS: read %s", path);
	int r = cdn_read_fd(fd, TRUST_FILE_MAX, out, len);
	close(fd);
	if (r == -EFBIG)
		return cdn_err_msg(err, EFBIG, "TLS: %s is over %u bytes", path, TRUST_FILE_MAX);
	return r < 0 ? cdn_err_set(err, -r, "TLS: read %s", path) : 0;
}

static void trust_clear(void)
{
	for (int i = 0; i < 2; i++) {
		free(trust.pem[i]);
		trust.pem[i] = NULL;
		trust.len[i] = 0;
	}
	free(trust.path);
	trust.path = NULL;
	SSL_CTX_free(trust.ctx);
	trust.ctx = NULL;
}

/* Every certificate (and CRL) of a PEM buffer into the store, as
 * SSL_CTX_load_verify_file does from a file; how many certificates, or -1. */
static int add_pem(X509_STORE *st, const char *pem, size_t len)
{
	if (len > INT_MAX)
		return -1;
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	STACK_OF(X509_INFO) *infos = b ? PEM_X509_INFO_read_bio(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	if (!infos)
		return -1;
	int n = 0;
	for (int i = 0; i < sk_X509_INFO_num(infos); i++) {
		X509_INFO *xi = sk_X509_INFO_value(infos, i);
		if (xi->x509 && X509_STORE_add_cert(st, xi->x509) == 1)
			n++;
		if (xi->crl)
			(void)X509_STORE_add_crl(st, xi->crl);
	}
	sk_X509_INFO_pop_free(infos, X509_INFO_free);
	return n;
}

static SSL_CTX *client_ctx(const char *extra_ca_file, struct cdn_err *err)
{
	bool same = (trust.path == NULL) == (extra_ca_file == NULL) &&
		    (!trust.path || strcmp(trust.path, extra_ca_file) == 0);
	/* Not read yet, or read for another extra file: only possible where
	 * files may still be opened (the network part reads them first). */
	if ((!trust.pem[0] || !same) && egress_tls_client_init(extra_ca_file, err) < 0)
		return NULL;
	if (trust.ctx)
		return trust.ctx;
	static const unsigned char alpn[] = "\x08http/1.1";
	SSL_CTX *c = SSL_CTX_new(TLS_client_method());
	X509_STORE *st = c ? SSL_CTX_get_cert_store(c) : NULL;
	const char *what = "TLS: client context";
	bool ok = st && SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION) == 1 &&
		  SSL_CTX_set_alpn_protos(c, alpn, sizeof(alpn) - 1) == 0;
	if (ok && !(ok = add_pem(st, trust.pem[0], trust.len[0]) > 0))
		what = "TLS: the system's trusted roots";
	if (ok && trust.pem[1] && !(ok = add_pem(st, trust.pem[1], trust.len[1]) > 0))
		what = "TLS: upstream CA file";
	if (!ok) {
		SSL_CTX_free(c);
		ssl_err(err, what);
		return NULL;
	}
	SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
	trust.ctx = c;
	return c;
}

int egress_tls_client_init(const char *extra_ca_file, struct cdn_err *err)
{
	trust_clear();
	/* The system bundle, whole: not the hashed directory, which OpenSSL
	 * reads lazily during a handshake, when the network part may no
	 * longer open any file. */
	int r = read_trust_file(X509_get_default_cert_file(), &trust.pem[0], &trust.len[0], err);
	if (r == 0 && extra_ca_file)
		r = read_trust_file(extra_ca_file, &trust.pem[1], &trust.len[1], err);
	if (r == 0 && extra_ca_file && !(trust.path = strdup(extra_ca_file)))
		r = cdn_err_set(err, ENOMEM, "TLS");
	/* The operator's own file is small: check it now, so a bad one is
	 * an error before the run rather than at its first handshake. */
	if (r == 0 && extra_ca_file) {
		X509_STORE *st = X509_STORE_new();
		if (!st || add_pem(st, trust.pem[1], trust.len[1]) <= 0)
			r = cdn_err_msg(err, EINVAL, "TLS: %s holds no PEM certificate",
					extra_ca_file);
		X509_STORE_free(st);
	}
	if (r < 0)
		trust_clear();
	return r;
}

SSL *egress_tls_client_ssl(const char *host, const char *extra_ca_file, struct cdn_err *err)
{
	SSL_CTX *ctx = client_ctx(extra_ca_file, err);
	if (!ctx)
		return NULL;
	SSL *ssl = SSL_new(ctx);
	if (!ssl || SSL_set_tlsext_host_name(ssl, host) != 1 || SSL_set1_host(ssl, host) != 1) {
		SSL_free(ssl);
		ssl_err(err, "TLS: client session");
		return NULL;
	}
	return ssl;
}
