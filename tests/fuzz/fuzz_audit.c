/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the audit log reader.
 *
 * The input becomes a file (a memfd, reached as /proc/self/fd/N, as a
 * user's file would be). audit_verify_file must not crash or leak, and
 * must agree with audit_open: a file that verifies whole can be continued.
 * When audit_open accepts the file, a line appended to it must make a last
 * line that audit_open accepts again.
 *
 * Random edits almost never leave a valid hash, which would keep the
 * fuzzer at the hash check. So the input is run a second time with every
 * line that ends like ,"hash":"<64 bytes>"} given its correct hash: that
 * reaches the JSON, seq and prev_hash checks behind it.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <sys/mman.h>
#include <unistd.h>

#include "audit/audit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SUFFIX ",\"hash\":\""
#define SUFFIX_LEN (sizeof(SUFFIX) - 1 + AUDIT_HASH_HEX + 2)

static void rehash_lines(uint8_t *buf, size_t size)
{
	size_t start = 0;
	for (size_t i = 0; i <= size; i++) {
		if (i < size && buf[i] != '\n')
			continue;
		size_t len = i - start;
		uint8_t *line = buf + start;
		start = i + 1;
		if (len <= SUFFIX_LEN || len > AUDIT_MAX_LINE ||
		    memcmp(line + len - SUFFIX_LEN, SUFFIX, sizeof(SUFFIX) - 1) != 0 ||
		    line[len - 2] != '"' || line[len - 1] != '}')
			continue;
		size_t blen = len - SUFFIX_LEN;
		unsigned char d[crypto_hash_sha256_BYTES];
		crypto_hash_sha256_state st;
		crypto_hash_sha256_init(&st);
		crypto_hash_sha256_update(&st, line, blen);
		crypto_hash_sha256_update(&st, (const unsigned char *)"}", 1);
		crypto_hash_sha256_final(&st, d);
		char hex[AUDIT_HASH_HEX + 1];
		sodium_bin2hex(hex, sizeof(hex), d, sizeof(d));
		memcpy(line + blen + sizeof(SUFFIX) - 1, hex, AUDIT_HASH_HEX);
	}
}

static void run(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (sodium_init() < 0)
		abort();
	run(data, size);
	uint8_t *copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	rehash_lines(copy, size);
	if (memcmp(copy, data, size) != 0)
		run(copy, size);
	free(copy);
	return 0;
}

static void run(const uint8_t *data, size_t size)
{
	int fd = memfd_create("audit", MFD_CLOEXEC);
	if (fd < 0)
		return;
	size_t off = 0;
	while (off < size) {
		ssize_t n = write(fd, data + off, size - off);
		if (n <= 0)
			abort();
		off += (size_t)n;
	}
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);

	struct audit_verify res;
	struct cdn_err err = { 0 };
	int r = audit_verify_file(path, &res, &err);
	if (r < 0 || r > 1 || (r == 1 && (res.bad_line == 0 || !res.reason[0])) ||
	    (r == 0 && res.bad_line != 0) || strlen(res.last_hash) != AUDIT_HASH_HEX)
		abort();

	struct audit_log *log = NULL;
	int o = audit_open(path, &log, &err);
	if (r == 0 && o < 0)
		abort();
	if (o == 0) {
		uint64_t seq = audit_last_seq(log);
		if (r == 0 && (seq != res.lines || strcmp(audit_last_hash(log), res.last_hash)))
			abort();
		json_t *e = json_pack("{s:s}", "event_type", "request");
		int a = audit_append(log, e, false, &err);
		json_decref(e);
		audit_close(log);
		if (a == 0) {
			if (audit_open(path, &log, &err) < 0 || audit_last_seq(log) != seq + 1)
				abort();
			audit_close(log);
			/* a whole chain stays whole */
			if (r == 0 && audit_verify_file(path, &res, &err) != 0)
				abort();
		}
	}
	close(fd);
}
