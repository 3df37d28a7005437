/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the evidence pack reader.
 *
 * A pack is gzip around tar around JSON with a signature in front of
 * everything interesting, and random bytes get past none of those. The
 * first byte of the input picks how the rest becomes a pack:
 *
 *   0  the bytes are the pack (seeds: real packs), as a user's file is;
 *   1  the bytes are a tar stream: each header's checksum is fixed up and
 *      the whole is gzipped here, so the fuzzer works on entries (names,
 *      types, sizes, links, pax records) rather than on the CRC;
 *   2  the bytes are a list of files (u8 name length, name, u32 LE length,
 *      data; the name "@predicate" gives the predicate's JSON), written
 *      and signed by the pack writer with the trusted key, so the fuzzer
 *      gets past the signature to the statement, the audit chain, the
 *      record, result and artifact manifest checks.
 *
 * Whatever the input, verify must return 0 or 1 with a report that agrees
 * (a reason and a part when it refuses), never crash and never leak.
 */
#define _GNU_SOURCE
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "evidence/evidence.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_INPUT (1 << 20)

static struct evidence_key *key;
static unsigned char trusted[1][EVIDENCE_PK_BYTES];

static void check(const uint8_t *pack, size_t len, bool any_key)
{
	struct evidence_trust t = { .keys = trusted, .n_keys = 1, .any_key = any_key };
	struct evidence_report rep;
	struct cdn_err err = { 0 };
	int r = evidence_verify_mem(pack, len, &t, &rep, &err);
	if (r < 0 && err.code != ENOMEM)
		abort();
	if (r == 1 && (!rep.reason[0] || !rep.part[0]))
		abort();
	if (r == 0 && (!rep.intact || rep.reason[0] || (!any_key && !rep.trusted)))
		abort();
	if (rep.n_files > EVIDENCE_MAX_ENTRIES)
		abort();
	evidence_report_clear(&rep);
}

struct growbuf {
	uint8_t *p;
	size_t len, cap;
	bool oom;
};

static la_ssize_t grow_write(struct archive *a, void *ctx, const void *buf, size_t n)
{
	(void)a;
	struct growbuf *g = ctx;
	if (g->len + n > g->cap) {
		size_t cap = (g->len + n) * 2;
		uint8_t *p = realloc(g->p, cap);
		if (!p) {
			g->oom = true;
			return -1;
		}
		g->p = p;
		g->cap = cap;
	}
	memcpy(g->p + g->len, buf, n);
	g->len += n;
	return (la_ssize_t)n;
}

static void gzip_check(const uint8_t *data, size_t size)
{
	struct growbuf g = { 0 };
	struct archive *a = archive_write_new();
	archive_write_add_filter_gzip(a);
	archive_write_set_format_raw(a);
	archive_write_set_bytes_in_last_block(a, 1);
	if (archive_write_open(a, &g, NULL, grow_write, NULL) == ARCHIVE_OK) {
		struct archive_entry *e = archive_entry_new();
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_pathname(e, "raw");
		if (archive_write_header(a, e) == ARCHIVE_OK && size)
			archive_write_data(a, data, size);
		archive_entry_free(e);
		if (archive_write_close(a) == ARCHIVE_OK && !g.oom)
			check(g.p, g.len, false);
	}
	archive_write_free(a);
	free(g.p);
}

/* Fixes the checksum of every tar header block the sizes lead to. */
static void fix_tar(uint8_t *p, size_t size)
{
	size_t off = 0;
	while (off + 512 <= size) {
		uint8_t *h = p + off;
		bool zero = true;
		for (int i = 0; i < 512 && zero; i++)
			zero = h[i] == 0;
		if (zero) {
			off += 512;
			continue;
		}
		memset(h + 148, ' ', 8);
		unsigned sum = 0;
		for (int i = 0; i < 512; i++)
			sum += h[i];
		char ck[8];
		snprintf(ck, sizeof(ck), "%06o", sum & 0777777);
		memcpy(h + 148, ck, 7);
		h[155] = ' ';
		unsigned long long len = 0;
		for (int i = 124; i < 136 && h[i] >= '0' && h[i] <= '7'; i++)
			len = len * 8 + (unsigned long long)(h[i] - '0');
		if (len > size)
			break;
		off += 512 + (size_t)((len + 511) / 512 * 512);
	}
}

static const char default_predicate[] =
	"{\"run_id\":\"run_f\",\"workspace\":\"default\",\"agent\":{\"name\":\"bot\","
	"\"version\":1,\"sha256\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"},"
	"\"status\":\"succeeded\",\"exit_code\":0,\"artifacts_included\":true,"
	"\"created\":\"2026-01-01T00:00:00.000Z\",\"cordon_version\":\"0.1.0\",\"audit\":null}";

static void structured(const uint8_t *data, size_t size)
{
	int fd = memfd_create("pack", MFD_CLOEXEC);
	if (fd < 0)
		return;
	struct cdn_err err = { 0 };
	struct evidence_writer *w;
	json_t *pred = NULL;
	if (evidence_writer_open(fd, 1767225600, &w, &err) < 0) {
		close(fd);
		return;
	}
	size_t off = 0;
	while (off < size) {
		size_t nl = data[off++];
		if (off + nl + 4 > size)
			break;
		char name[256];
		memcpy(name, data + off, nl);
		name[nl] = '\0';
		off += nl;
		uint32_t dl;
		memcpy(&dl, data + off, 4);
		off += 4;
		if (dl > size - off)
			dl = (uint32_t)(size - off);
		if (strcmp(name, "@predicate") == 0) {
			json_decref(pred);
			pred = json_loadb((const char *)data + off, dl, 0, NULL);
		} else if (strlen(name) == nl) {
			(void)evidence_writer_add(w, name, data + off, dl, &err);
		}
		off += dl;
	}
	if (!json_is_object(pred)) {
		json_decref(pred);
		pred = json_loads(default_predicate, 0, NULL);
	}
	if (evidence_writer_finish(w, pred, key, NULL, &err) == 0) {
		struct stat st;
		if (fstat(fd, &st) == 0) {
			uint8_t *p = mmap(NULL, (size_t)st.st_size ?: 1, PROT_READ, MAP_PRIVATE, fd,
					  0);
			if (p != MAP_FAILED) {
				check(p, (size_t)st.st_size, false);
				check(p, (size_t)st.st_size, true);
				munmap(p, (size_t)st.st_size ?: 1);
			}
		}
	}
	json_decref(pred);
	evidence_writer_free(w);
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!key) {
		unsigned char seed[EVIDENCE_SEED_BYTES];
		memset(seed, 0x5a, sizeof(seed));
		struct cdn_err err = { 0 };
		if (evidence_key_from_seed(seed, &key, &err) < 0)
			abort();
		memcpy(trusted[0], evidence_key_public(key), EVIDENCE_PK_BYTES);
	}
	if (size < 1 || size > FUZZ_MAX_INPUT)
		return 0;
	const uint8_t *body = data + 1;
	size_t len = size - 1;
	switch (data[0] % 3) {
	case 0:
		check(body, len, false);
		check(body, len, true);
		break;
	case 1: {
		uint8_t *copy = malloc(len ? len : 1);
		if (!copy)
			return 0;
		memcpy(copy, body, len);
		fix_tar(copy, len);
		gzip_check(copy, len);
		free(copy);
		break;
	}
	default:
		structured(body, len);
		break;
	}
	return 0;
}
