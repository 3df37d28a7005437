/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Moving a store's metadata to another backend (cordon state migrate,
 * docs/state.md): every row of every table copied in one transaction on
 * each side, then every table read back from both and compared by
 * sha256, before and after the commit. The files (blobs, trees, runs)
 * are not moved: both stores are the same state directory's.
 */
#define _GNU_SOURCE
#include "store/internal.h"

#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cleanup.h"
#include "base/hash.h"

static const char *const items_cols[] = { "kind",    "workspace", "name", "version",
					  "hash",    "tree",      "doc",  "created" };
static const char *const grants_cols[] = { "workspace", "agent", "capability", "created" };
static const char *const wskeys_cols[] = { "workspace", "wrapped", "created" };
static const char *const secrets_cols[] = { "workspace", "name",    "ciphertext",
					    "plain_len", "created", "updated" };
static const char *const runs_cols[] = {
	"id",	      "workspace",	"agent",	 "agent_version", "agent_hash",
	"status",     "exit_code",	"caller",	 "created_ms",	  "started_ms",
	"finished_ms", "supervisor_pid", "supervisor_boot", "input_json",    "result_json",
	"error",      "supervisor_start", "audit_head",	 "audit_records", "stdout_sha256",
	"stderr_sha256", "lease_owner",	"lease_until_ms", "labels",	  "attempt",
	"retry_of",   "retry_max"
};
static const char *const keys_cols[] = { "id",	    "workspace", "name",      "role",
					 "hash",    "created",	 "last_used", "revoked" };
static const char *const retention_cols[] = { "workspace",     "records_s",	"files_s",
					      "artifacts_s",   "evidence_s",	"records_max_s",
					      "files_max_s",   "artifacts_max_s", "evidence_max_s",
					      "updated" };
static const char *const marks_cols[] = { "run_id",	     "hold_reason",	"hold_by",
					  "hold_ms",	     "files_pruned_ms", "artifacts_pruned_ms",
					  "evidence_pruned_ms" };

static const char *const schedules_cols[] = {
	"workspace",  "name",	    "agent",	 "cron",	 "tz",	      "input_json",
	"overlap",    "catchup",    "paused",	 "created_by",	 "created_ms", "anchor_ms",
	"next_ms",    "fired",	    "skipped",	 "last_run",	 "last_fire_ms", "last_skip_ms",
	"last_skip"
};

static const char *const services_cols[] = {
	"workspace",	"name",	      "agent",	    "input_json", "env_json",	"secrets_json",
	"paused",	"pause_reason", "created_by", "created_ms", "current_run", "next_ms",
	"starts",	"exits",      "exit_times", "last_exit",  "last_exit_ms", "last_run", "gen"
};

#define TABLE(n, c, o, b) { n, c, (unsigned)CDN_ARRAY_SIZE(c), o, b }

/* Every table of the schema (both backends' latest version), in an order
 * that inserts a row after any it refers to. */
static const struct store_table tables[STORE_MIGRATE_TABLES] = {
	TABLE("items", items_cols, "kind, workspace, name, version", 0),
	TABLE("grants", grants_cols, "workspace, agent, capability", 0),
	TABLE("workspace_keys", wskeys_cols, "workspace", 1u << 1),
	TABLE("secrets", secrets_cols, "workspace, name", 1u << 2),
	TABLE("runs", runs_cols, "id", 0),
	TABLE("api_keys", keys_cols, "id", 0),
	TABLE("retention", retention_cols, "workspace", 0),
	TABLE("run_marks", marks_cols, "run_id", 0),
	TABLE("schedules", schedules_cols, "workspace, name", 0),
	TABLE("services", services_cols, "workspace, name", 0),
};

/* Appends to out at *at, tracking overflow in *at (>= cap: too long). */
static void put_sql(char *out, size_t cap, size_t *at, const char *a, const char *b)
{
	if (*at < cap)
		*at += (size_t)snprintf(out + *at, cap - *at, "%s%s", a, b);
}

int store_table_sql(const struct store_table *t, bool insert, bool pg, char *out, size_t cap)
{
	if (t->ncols > STORE_TABLE_MAX_COLS)
		return -E2BIG;
	size_t at = 0;
	char num[16];
	if (!insert) {
		put_sql(out, cap, &at, "SELECT ", "");
		for (unsigned i = 0; i < t->ncols; i++) {
			bool bytes = (t->bytes >> i) & 1;
			put_sql(out, cap, &at, i ? ", " : "",
				!bytes ? "" : pg ? "encode(" : "lower(hex(");
			put_sql(out, cap, &at, t->cols[i], !bytes ? "" : pg ? ", 'hex')" : "))");
		}
		put_sql(out, cap, &at, " FROM ", t->name);
		put_sql(out, cap, &at, " ORDER BY ", t->order);
	} else {
		put_sql(out, cap, &at, "INSERT INTO ", t->name);
		for (unsigned i = 0; i < t->ncols; i++)
			put_sql(out, cap, &at, i ? ", " : " (", t->cols[i]);
		/* SQLite's values are bound as bytes already decoded. */
		for (unsigned i = 0; i < t->ncols; i++) {
			bool bytes = pg && ((t->bytes >> i) & 1);
			snprintf(num, sizeof(num), "%s%u", pg ? "$" : "?", i + 1);
			put_sql(out, cap, &at, i ? ", " : ") VALUES (", bytes ? "decode(" : "");
			put_sql(out, cap, &at, num, bytes ? ", 'hex')" : "");
		}
		put_sql(out, cap, &at, ")", "");
	}
	return at < cap ? 0 : -E2BIG;
}

/* A table's rows as one sha256: each cell as a 0 byte (NULL), or a 1
 * byte, its length (8 bytes, little-endian) and its bytes. */
struct digest {
	crypto_hash_sha256_state st;
	uint64_t rows;
	unsigned ncols;
	/* When copying: where each row goes. */
	struct store *dst;
	const struct store_table *t;
	struct cdn_err *err;
};

static void digest_row(struct digest *g, const struct store_cell *cells)
{
	for (unsigned i = 0; i < g->ncols; i++) {
		uint8_t tag = cells[i].v ? 1 : 0;
		crypto_hash_sha256_update(&g->st, &tag, 1);
		if (!tag)
			continue;
		uint8_t len[8];
		for (int b = 0; b < 8; b++)
			len[b] = (uint8_t)((uint64_t)cells[i].len >> (8 * b));
		crypto_hash_sha256_update(&g->st, len, sizeof(len));
		crypto_hash_sha256_update(&g->st, (const uint8_t *)cells[i].v, cells[i].len);
	}
	g->rows++;
}

static int on_digest(void *ctx, const struct store_cell *cells)
{
	digest_row(ctx, cells);
	return 0;
}

static int on_copy(void *ctx, const struct store_cell *cells)
{
	struct digest *g = ctx;
	digest_row(g, cells);
	return g->dst->ops->table_insert(g->dst, g->t, cells, g->err);
}

static int on_any(void *ctx, const struct store_cell *cells)
{
	(void)cells;
	*(bool *)ctx = true;
	return 1; /* one row is enough */
}

static void digest_end(struct digest *g, char hex[CDN_SHA256_HEX + 1])
{
	uint8_t d[32];
	crypto_hash_sha256_final(&g->st, d);
	cdn_digest_hex(d, hex);
}

/* Reads t whole from s into rows and hex. */
static int table_digest(struct store *s, const struct store_table *t, uint64_t *rows,
			char hex[CDN_SHA256_HEX + 1], struct cdn_err *err)
{
	struct digest g = { .ncols = t->ncols };
	crypto_hash_sha256_init(&g.st);
	int r = s->ops->table_read(s, t, on_digest, &g, err);
	if (r < 0)
		return r;
	digest_end(&g, hex);
	*rows = g.rows;
	return 0;
}

/* dst's tables against what was copied. */
static int verify(struct store *dst, const struct store_migrate_report *rep, const char *when,
		  struct cdn_err *err)
{
	for (size_t i = 0; i < CDN_ARRAY_SIZE(tables); i++) {
		uint64_t rows;
		char hex[CDN_SHA256_HEX + 1];
		int r = table_digest(dst, &tables[i], &rows, hex, err);
		if (r < 0)
			return r;
		if (rows != rep->tables[i].rows || strcmp(hex, rep->tables[i].sha256) != 0)
			return cdn_err_msg(err, EIO,
					   "migrate: %s: table %s differs from the source: %" PRIu64
					   " rows, sha256 %s; the source has %" PRIu64 " rows, %s",
					   when, tables[i].name, rows, hex, rep->tables[i].rows,
					   rep->tables[i].sha256);
	}
	return 0;
}

static int migrate_in(struct store *src, struct store *dst, struct store_migrate_report *rep,
		      struct cdn_err *err)
{
	int r;
	/* Nothing may be running on the source: its supervisor would go on
	 * writing the record there. */
	struct store_recover_candidate *c = NULL;
	size_t nc = 0;
	if ((r = src->ops->runs_unfinished(src, &c, &nc, err)) < 0)
		return r;
	free(c);
	if (nc)
		return cdn_err_msg(err, EBUSY,
				   "migrate: %zu runs are not finished: stop cordon serve and let "
				   "them end (or cancel them) first",
				   nc);
	for (size_t i = 0; i < CDN_ARRAY_SIZE(tables); i++) {
		bool any = false;
		if ((r = dst->ops->table_read(dst, &tables[i], on_any, &any, err)) < 0)
			return r;
		if (any)
			return cdn_err_msg(err, EEXIST,
					   "migrate: the destination already has %s: it must be an "
					   "empty database",
					   tables[i].name);
	}
	for (size_t i = 0; i < CDN_ARRAY_SIZE(tables); i++) {
		struct digest g = { .ncols = tables[i].ncols, .dst = dst, .t = &tables[i],
				    .err = err };
		crypto_hash_sha256_init(&g.st);
		if ((r = src->ops->table_read(src, &tables[i], on_copy, &g, err)) < 0)
			return r;
		rep->tables[i].name = tables[i].name;
		rep->tables[i].rows = g.rows;
		digest_end(&g, rep->tables[i].sha256);
	}
	rep->n = CDN_ARRAY_SIZE(tables);
	return verify(dst, rep, "before commit", err);
}

int store_migrate(struct store *src, struct store *dst, struct store_migrate_report *rep,
		  struct cdn_err *err)
{
	memset(rep, 0, sizeof(*rep));
	if (src->dirfd >= 0 && dst->dirfd >= 0 && src->ops == dst->ops &&
	    src->ops == &store_sqlite_ops)
		return cdn_err_msg(err, EINVAL, "migrate: the source and destination are the same");
	int r;
	/* The source's transaction keeps it still (SQLite: its write lock)
	 * and gives one snapshot; it is only read, and rolled back. */
	if ((r = src->ops->txn_begin(src, err)) < 0)
		return r;
	if ((r = dst->ops->txn_begin(dst, err)) < 0) {
		src->ops->txn_end(src, false, NULL);
		return r;
	}
	r = migrate_in(src, dst, rep, err);
	if (r < 0) {
		dst->ops->txn_end(dst, false, NULL);
		src->ops->txn_end(src, false, NULL);
		return r;
	}
	/* From here a failure may have changed dst: a commit that fails may
	 * still have been carried out. */
	rep->committed = true;
	r = dst->ops->txn_end(dst, true, err);
	src->ops->txn_end(src, false, NULL);
	if (r < 0)
		return r;
	return verify(dst, rep, "after commit", err);
}
