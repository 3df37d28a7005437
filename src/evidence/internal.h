/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to src/evidence: what the pack's writer (export.c), its reader
 * (verify.c) and its signatures (dsse.c) share. evidence.h is the module's
 * contract; nothing outside this folder includes this file.
 */
#ifndef CORDON_EVIDENCE_INTERNAL_H
#define CORDON_EVIDENCE_INTERNAL_H

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "audit/audit.h"
#include "base/err.h"
#include "evidence/evidence.h"

#define IO_CHUNK	 (64 * 1024)
#define PACK_MODE	 0644
#define ARTIFACTS_DIR	 "artifacts/"
#define ARTIFACTS_DIR_LEN (sizeof(ARTIFACTS_DIR) - 1)
#define JSON_FLAGS	 (JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL)
#define DUMP_FLAGS	 (JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENSURE_ASCII)

struct evidence_key {
	unsigned char *sk; /* sodium memory: seed || public key */
	unsigned char pk[EVIDENCE_PK_BYTES];
	char keyid[EVIDENCE_HEX + 1];
	char source[PATH_MAX];
};

/* evidence.c */
int evidence_crypto_ready(struct cdn_err *err);
bool evidence_pack_name_ok(const char *n, char *why, size_t cap);
bool evidence_is_statement_name(const char *name);
const char *evidence_jstr(json_t *obj, const char *key);
bool evidence_manifest_ok(json_t *arts, char *why, size_t cap);
int evidence_audit_verify_fd(int fd, struct audit_verify *res, struct cdn_err *err);

/* dsse.c */
char *evidence_base64(const void *data, size_t len);
unsigned char *evidence_unbase64(const char *text, size_t n, size_t *out_len);

#endif
