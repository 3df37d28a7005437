/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The hash-chained audit log: one JSON object per line.
 *
 * Each line carries "seq" (1, 2, ...), "prev_hash" (the previous line's
 * hash, 64 zeros for the first) and last "hash": the SHA-256 of the line's
 * own bytes up to the hash field, closed with "}". Editing a line breaks its
 * hash; removing or reordering lines breaks seq and prev_hash. Removing
 * lines at the end leaves a valid shorter chain: anchor the last hash
 * elsewhere (run records and evidence packs do) to detect that.
 *
 * Lines are written with one write(2) each (O_APPEND) and never exceed
 * AUDIT_MAX_LINE bytes.
 */
#ifndef CORDON_AUDIT_H
#define CORDON_AUDIT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"

#define AUDIT_MAX_LINE 65536
#define AUDIT_HASH_HEX 64

struct audit_log;

/*
 * Opens (creating it mode 0600) the log at path and continues its chain
 * from the last line, after checking that line. Fails if the file's last
 * line is not a valid entry. Only the last line is read, not the whole
 * file. One writer per file: an exclusive flock is held until audit_close,
 * and a second audit_open of the same file fails. The handle itself may be
 * shared between threads.
 */
int audit_open(const char *path, struct audit_log **out, struct cdn_err *err);

/*
 * Appends entry (a JSON object; borrowed). "timestamp" is added when
 * absent (RFC 3339, UTC, milliseconds); "seq", "prev_hash" and "hash" are
 * set here and must not be in entry. With `sync`, fdatasync follows.
 */
int audit_append(struct audit_log *log, json_t *entry, bool sync, struct cdn_err *err);

/* The hash of the last line written, hex (for anchoring elsewhere). */
const char *audit_last_hash(const struct audit_log *log);
uint64_t audit_last_seq(const struct audit_log *log);

void audit_close(struct audit_log *log);

struct audit_verify {
	uint64_t lines;	    /* lines checked and found good (those before bad_line) */
	uint64_t bad_line;  /* first bad line (1-based), 0 when all good */
	char reason[256];   /* why that line is bad */
	char last_hash[AUDIT_HASH_HEX + 1]; /* of the last good line; 64 zeros if none */
	/* In: a line whose hash is wanted too (0: none). Out: its hash, ""
	 * when the log is shorter. Compares a log with an anchor (the run
	 * record's head) that a few lines may have followed. */
	uint64_t mark_line;
	char mark_hash[AUDIT_HASH_HEX + 1];
};

/* 0 when the whole file is a valid chain, 1 when a line was altered,
 * removed or reordered (res says which), negative on I/O errors. Set
 * res->mark_line before the call (or zero res) to get that line's hash. */
int audit_verify_file(const char *path, struct audit_verify *res, struct cdn_err *err);

#endif
