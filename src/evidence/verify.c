/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Evidence packs, verified (contract in evidence.h, format in
 * docs/evidence.md).
 *
 * Reading is where the care goes: a pack comes from anywhere. It is
 * decompressed in one libarchive handle (gzip only, read to its end so the
 * CRC is checked and nothing hides after it) and parsed as tar in a second
 * one fed from the first, so that the bytes after the tar's end-of-archive
 * marker can be checked too: a second archive appended there would be read
 * by `tar -i`. Each entry must be a regular file with a name from a fixed
 * set, the header fields the writer sets, and sizes under the bounds; only
 * the JSON files and the audit log are kept, the rest is only hashed. Only
 * then is the signature checked, and the statement read.
 */
#define _GNU_SOURCE
#include "evidence/internal.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit/audit.h"
#include "base/cleanup.h"
#include "base/file.h"
#include "base/hash.h"
#include "base/text.h"
#include "run/artifacts.h"

/* "YYYY-MM-DDTHH:MM:SS[.mmm]Z" to unix seconds; -1 when it is not that. */
static int64_t iso_seconds(const char *s)
{
	struct tm tm = { 0 };
	int n = 0;
	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
		   &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6 || n != 19)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (int64_t)timegm(&tm);
}

/* ---------------------------------------------------------------------------
 * Verifying
 */

/* The files verify keeps in memory to read; the rest are only hashed. */
enum kept { K_RECORD, K_RESULT, K_ARTIFACTS, K_STATEMENT, K_SIG, K_COUNT };
static const char *const kept_names[K_COUNT] = { "record.json", "result.json", "artifacts.json",
						  "statement.json", "statement.sig" };

struct verifier {
	const struct evidence_trust *t;
	struct evidence_report *rep;
	struct cdn_err *err;
	/* the decompressing stage */
	struct archive *gz;
	unsigned char *chunk;
	size_t chunk_len;
	uint64_t given;
	const unsigned char *mem; /* the input: in memory, */
	int fd;			  /* or in this file */
	uint64_t input_len;
	bool gz_failed;
	/* what was read */
	char *kept[K_COUNT];
	size_t kept_len[K_COUNT];
	int audit_fd;
	/* parsed */
	json_t *stmt, *pred; /* pred: borrowed from stmt */
};

/* Records the first problem found; returns 1 (bad) for `return bad(...)`. */
static int bad(struct verifier *v, const char *part, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int bad(struct verifier *v, const char *part, const char *fmt, ...)
{
	struct evidence_report *rep = v->rep;
	if (rep->reason[0])
		return 1;
	cdn_printable_str(rep->part, sizeof(rep->part), *part ? part : "archive", 0);
	char reason[sizeof(rep->reason)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	/* Parser messages quote the input they choked on. */
	cdn_printable_str(rep->reason, sizeof(rep->reason), reason, 0);
	return 1;
}

static struct evidence_file *find_file(struct evidence_report *rep, const char *name)
{
	for (size_t i = 0; i < rep->n_files; i++)
		if (strcmp(rep->files[i].name, name) == 0)
			return &rep->files[i];
	return NULL;
}

/* libarchive's read callback for the tar stage: the next decompressed chunk. */
static la_ssize_t tar_read(struct archive *a, void *ctx, const void **buf)
{
	struct verifier *v = ctx;
	la_ssize_t n = archive_read_data(v->gz, v->chunk, IO_CHUNK);
	if (n < 0) {
		v->gz_failed = true;
		archive_set_error(a, EIO, "gzip: %s", archive_error_string(v->gz) ?: "bad data");
		return -1;
	}
	/* The entries' sizes are bounded as their headers are read; this
	 * bounds the rest (tar and pax headers, skipped data), so a small
	 * gzip bomb cannot keep verify inflating. */
	if (v->given + (uint64_t)n > EVIDENCE_MAX_TOTAL + EVIDENCE_MAX_OVERHEAD) {
		v->gz_failed = true;
		archive_set_error(a, EFBIG, "more than %llu bytes uncompressed",
				  (unsigned long long)(EVIDENCE_MAX_TOTAL + EVIDENCE_MAX_OVERHEAD));
		return -1;
	}
	v->chunk_len = (size_t)n;
	v->given += (uint64_t)n;
	*buf = v->chunk;
	return n;
}

static bool all_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* Checks the header of an entry: a regular file, as the writer writes it. */
static int entry_check(struct verifier *v, struct archive_entry *e, const char *name)
{
	char why[128];
	if (archive_entry_hardlink(e))
		return bad(v, name, "a hard link, not a regular file");
	switch (archive_entry_filetype(e)) {
	case AE_IFREG:
		break;
	case AE_IFLNK:
		return bad(v, name, "a symbolic link, not a regular file");
	case AE_IFDIR:
		return bad(v, name, "a directory, not a regular file");
	default:
		return bad(v, name, "a device, FIFO or socket, not a regular file");
	}
	if (!evidence_pack_name_ok(name, why, sizeof(why)))
		return bad(v, name, "%s", why);
	if (find_file(v->rep, name))
		return bad(v, name, "the pack holds two entries with this name");
	if (!archive_entry_size_is_set(e) || archive_entry_size(e) < 0)
		return bad(v, name, "an entry without a size");
	uint64_t size = (uint64_t)archive_entry_size(e);
	if (size > EVIDENCE_MAX_FILE)
		return bad(v, name, "%llu bytes, over the %llu a pack may hold in one file",
			   (unsigned long long)size, (unsigned long long)EVIDENCE_MAX_FILE);
	if (v->rep->bytes + size > EVIDENCE_MAX_TOTAL)
		return bad(v, name, "the files add up to more than the %llu bytes a pack may hold",
			   (unsigned long long)EVIDENCE_MAX_TOTAL);
	/* The header fields are not evidence, but a pack is exactly what the
	 * writer made: anything else was changed, so say so. */
	const char *un = archive_entry_uname(e), *gn = archive_entry_gname(e);
	unsigned long set = 0, clear = 0;
	archive_entry_fflags(e, &set, &clear);
	if ((archive_entry_perm(e) & 07777) != PACK_MODE || archive_entry_uid(e) != 0 ||
	    archive_entry_gid(e) != 0 || (un && *un) || (gn && *gn) ||
	    archive_entry_xattr_count(e) != 0 || archive_entry_sparse_count(e) != 0 || set ||
	    clear)
		return bad(v, name,
			   "its tar header was changed (mode, owner, extended attributes or "
			   "sparse map differ from what cordon writes)");
	return 0;
}

static int keep_data(struct verifier *v, const char *name, uint64_t size, int *slot)
{
	*slot = -1;
	for (int k = 0; k < K_COUNT; k++)
		if (strcmp(name, kept_names[k]) == 0)
			*slot = k;
	if (*slot < 0)
		return 0;
	if (size > EVIDENCE_MAX_JSON)
		return bad(v, name, "%llu bytes, over the %u a pack's JSON files may have",
			   (unsigned long long)size, EVIDENCE_MAX_JSON);
	v->kept[*slot] = malloc((size_t)size + 1);
	if (!v->kept[*slot])
		return cdn_err_set(v->err, ENOMEM, "evidence: %s", name);
	return 0;
}

/* Reads one entry's data: hashed, kept or copied to the audit memfd. */
static int entry_read(struct verifier *v, struct archive *tar, const char *name, uint64_t size,
		      struct evidence_file *f)
{
	int slot;
	int r = keep_data(v, name, size, &slot);
	if (r != 0)
		return r;
	bool audit = strcmp(name, "audit.jsonl") == 0;
	if (audit) {
		v->audit_fd = memfd_create("cordon-evidence-audit", MFD_CLOEXEC);
		if (v->audit_fd < 0)
			return cdn_err_set(v->err, errno, "evidence: memfd for audit.jsonl");
	}
	crypto_hash_sha256_state st;
	crypto_hash_sha256_init(&st);
	_cleanup_free_ unsigned char *buf = malloc(IO_CHUNK);
	if (!buf)
		return cdn_err_set(v->err, ENOMEM, "evidence");
	uint64_t done = 0;
	for (;;) {
		la_ssize_t n = archive_read_data(tar, buf, IO_CHUNK);
		if (n < 0)
			return bad(v, v->gz_failed ? "archive" : name, "%s",
				   archive_error_string(tar) ?: "cannot read the entry");
		if (n == 0)
			break;
		if (done + (uint64_t)n > size)
			return bad(v, name, "more data than its header says");
		crypto_hash_sha256_update(&st, buf, (size_t)n);
		if (slot >= 0)
			memcpy(v->kept[slot] + done, buf, (size_t)n);
		if (audit && (r = cdn_write_all(v->audit_fd, buf, (size_t)n)) < 0)
			return cdn_err_set(v->err, -r, "evidence: memfd for audit.jsonl");
		done += (uint64_t)n;
	}
	if (done != size)
		return bad(v, name, "truncated: %llu of %llu bytes", (unsigned long long)done,
			   (unsigned long long)size);
	if (slot >= 0) {
		v->kept[slot][size] = '\0';
		v->kept_len[slot] = (size_t)size;
	}
	unsigned char d[crypto_hash_sha256_BYTES];
	crypto_hash_sha256_final(&st, d);
	cdn_digest_hex(d, f->sha256);
	return 0;
}

static int add_file(struct verifier *v, const char *name, uint64_t size,
		    struct evidence_file **out)
{
	struct evidence_report *rep = v->rep;
	struct evidence_file *nf = reallocarray(rep->files, rep->n_files + 1, sizeof(*nf));
	if (!nf)
		return cdn_err_set(v->err, ENOMEM, "evidence");
	rep->files = nf;
	struct evidence_file *f = &rep->files[rep->n_files++];
	memset(f, 0, sizeof(*f));
	snprintf(f->name, sizeof(f->name), "%s", name);
	f->size = size;
	rep->bytes += size;
	*out = f;
	return 0;
}

/* The tar stage: every entry checked, read and hashed. */
static int read_entries(struct verifier *v, struct archive *tar, int64_t *mtimes)
{
	struct archive_entry *e;
	for (;;) {
		int r = archive_read_next_header(tar, &e);
		if (r == ARCHIVE_EOF)
			return 0;
		if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
			return bad(v, "archive", "not a valid tar.gz: %s",
				   archive_error_string(tar) ?: "unreadable");
		if (v->rep->n_files >= EVIDENCE_MAX_ENTRIES)
			return bad(v, "archive", "more than %d entries", EVIDENCE_MAX_ENTRIES);
		const char *name = archive_entry_pathname(e);
		if (!name)
			return bad(v, "archive", "an entry without a usable name");
		if ((r = entry_check(v, e, name)) != 0)
			return r;
		uint64_t size = (uint64_t)archive_entry_size(e);
		struct evidence_file *f = NULL;
		size_t idx = v->rep->n_files;
		if ((r = add_file(v, name, size, &f)) < 0)
			return r;
		mtimes[idx] = archive_entry_mtime(e);
		if ((r = entry_read(v, tar, name, size, f)) != 0)
			return r;
	}
}

/*
 * After the gzip stream: nothing, or zeros (a writer that pads its output to
 * whole blocks, as libarchive does when it writes to a pipe, leaves them).
 */
static int check_gz_end(struct verifier *v)
{
	uint64_t end = (uint64_t)archive_filter_bytes(v->gz, 1);
	if (end > v->input_len || v->input_len - end > EVIDENCE_MAX_PADDING)
		return bad(v, "archive", "data after the end of the gzip stream");
	while (end < v->input_len) {
		size_t want = v->input_len - end < IO_CHUNK ? (size_t)(v->input_len - end) : IO_CHUNK;
		ssize_t n;
		if (v->mem) {
			memcpy(v->chunk, v->mem + end, want);
			n = (ssize_t)want;
		} else {
			n = pread(v->fd, v->chunk, want, (off_t)end);
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return cdn_err_set(v->err, errno, "evidence: read");
		if (n == 0 || !all_zero(v->chunk, (size_t)n))
			return bad(v, "archive", "data after the end of the gzip stream");
		end += (uint64_t)n;
	}
	return 0;
}

/*
 * After the tar's end: the rest of the decompressed stream must be zero
 * padding, the gzip stream must end cleanly (its CRC is checked at its
 * end), and nothing may follow it in the file.
 */
static int check_tail(struct verifier *v, struct archive *tar)
{
	uint64_t pos = (uint64_t)archive_filter_bytes(tar, 0);
	if (pos > v->given || v->given - pos > v->chunk_len)
		return bad(v, "archive", "data after the end of the tar archive");
	if (!all_zero(v->chunk + v->chunk_len - (v->given - pos), (size_t)(v->given - pos)))
		return bad(v, "archive",
			   "data after the end of the tar archive (a second archive appended?)");
	uint64_t padding = v->given - pos;
	for (;;) {
		la_ssize_t n = archive_read_data(v->gz, v->chunk, IO_CHUNK);
		if (n < 0)
			return bad(v, "archive", "gzip: %s",
				   archive_error_string(v->gz) ?: "bad data");
		if (n == 0)
			break;
		padding += (uint64_t)n;
		if (padding > EVIDENCE_MAX_PADDING || !all_zero(v->chunk, (size_t)n))
			return bad(v, "archive",
				   "data after the end of the tar archive (a second archive "
				   "appended?)");
	}
	return check_gz_end(v);
}

/* Both stages over an opened gzip handle. */
static int read_archive(struct verifier *v, int64_t *mtimes)
{
	struct archive_entry *e;
	int r = archive_read_next_header(v->gz, &e);
	if (r != ARCHIVE_OK || archive_filter_count(v->gz) != 2 ||
	    archive_filter_code(v->gz, 0) != ARCHIVE_FILTER_GZIP)
		return bad(v, "archive", "not a gzip-compressed tar archive");
	struct archive *tar = archive_read_new();
	if (!tar)
		return cdn_err_set(v->err, ENOMEM, "evidence");
	/* Only tar, and no filters: a pack is compressed once. */
	archive_read_support_format_tar(tar);
	r = archive_read_open(tar, v, NULL, tar_read, NULL);
	if (r != ARCHIVE_OK)
		r = bad(v, "archive", "not a valid tar.gz: %s",
			archive_error_string(tar) ?: "unreadable");
	else
		r = read_entries(v, tar, mtimes);
	if (r == 0)
		r = check_tail(v, tar);
	archive_read_free(tar);
	return r;
}

/* --- the signature */

/* The envelope's own bytes are not signed (nothing can sign itself), so
 * they must be exactly what cordon writes for what they hold: then no byte
 * of statement.sig can change either without verify noticing. */
static int check_canonical(struct verifier *v, json_t *env)
{
	_cleanup_free_ char *text = json_dumps(env, DUMP_FLAGS);
	if (!text)
		return cdn_err_set(v->err, ENOMEM, "evidence");
	size_t n = strlen(text);
	if (n + 1 != v->kept_len[K_SIG] || memcmp(text, v->kept[K_SIG], n) != 0 ||
	    v->kept[K_SIG][n] != '\n')
		return bad(v, "statement.sig",
			   "not in the form cordon writes (keys sorted, indented, one newline): "
			   "it was edited");
	return 0;
}

static int check_envelope(struct verifier *v, unsigned char **payload, size_t *plen,
			  json_t **sigs)
{
	json_error_t je;
	json_t *env = json_loadb(v->kept[K_SIG], v->kept_len[K_SIG], JSON_FLAGS, &je);
	int r = 0;
	const char *p = evidence_jstr(env, "payload"), *type = evidence_jstr(env, "payloadType");
	json_t *s = json_object_get(env, "signatures");
	if (!json_is_object(env))
		r = bad(v, "statement.sig", "not a JSON object (%s)", env ? "" : je.text);
	else if (json_object_size(env) != 3 || !p || !type || !json_is_array(s))
		r = bad(v, "statement.sig",
			"not a DSSE envelope (payload, payloadType and signatures)");
	else if (strcmp(type, EVIDENCE_PAYLOAD_TYPE) != 0)
		r = bad(v, "statement.sig", "payloadType is not " EVIDENCE_PAYLOAD_TYPE);
	else if (json_array_size(s) == 0 || json_array_size(s) > EVIDENCE_MAX_SIGS)
		r = bad(v, "statement.sig", "1 to %d signatures expected, found %zu",
			EVIDENCE_MAX_SIGS, json_array_size(s));
	else if (!(*payload = evidence_unbase64(p, strlen(p), plen)))
		r = bad(v, "statement.sig", "the payload is not standard base64");
	if (r == 0)
		r = check_canonical(v, env);
	if (r == 0)
		*sigs = json_incref(s);
	json_decref(env);
	return r;
}

/* Does any signature verify with pk? The keyid must name pk too. */
static bool signed_by(json_t *sigs, const unsigned char *pae, size_t plen,
		      const unsigned char pk[EVIDENCE_PK_BYTES])
{
	char keyid[EVIDENCE_HEX + 1];
	evidence_keyid(pk, keyid);
	size_t i;
	json_t *s;
	json_array_foreach(sigs, i, s)
	{
		const char *id = evidence_jstr(s, "keyid"), *sig = evidence_jstr(s, "sig");
		size_t slen = 0;
		if (!id || !sig || strcmp(id, keyid) != 0)
			continue;
		_cleanup_free_ unsigned char *raw = evidence_unbase64(sig, strlen(sig), &slen);
		if (raw && slen == crypto_sign_BYTES &&
		    crypto_sign_verify_detached(raw, pae, plen, pk) == 0)
			return true;
	}
	return false;
}

/* statement.sig against statement.json, then the signer. Sets v->stmt. */
static int check_signature(struct verifier *v)
{
	if (!v->kept[K_SIG])
		return bad(v, "statement.sig", "missing: the pack is not signed");
	if (!v->kept[K_STATEMENT])
		return bad(v, "statement.json", "missing");
	_cleanup_free_ unsigned char *payload = NULL;
	size_t plen = 0;
	json_t *sigs = NULL;
	int r = check_envelope(v, &payload, &plen, &sigs);
	if (r != 0)
		return r;
	/* statement.json is for readers; what counts is the signed payload,
	 * and the two must be the same bytes. */
	if (plen != v->kept_len[K_STATEMENT] || memcmp(payload, v->kept[K_STATEMENT], plen) != 0) {
		json_decref(sigs);
		return bad(v, "statement.json", "differs from the payload signed in statement.sig");
	}
	size_t pae_len = 0;
	_cleanup_free_ unsigned char *pae =
		evidence_pae(EVIDENCE_PAYLOAD_TYPE, payload, plen, &pae_len);
	if (!pae) {
		json_decref(sigs);
		return cdn_err_set(v->err, ENOMEM, "evidence");
	}
	struct evidence_report *rep = v->rep;
	for (size_t k = 0; k < v->t->n_keys && !rep->trusted; k++)
		if (signed_by(sigs, pae, pae_len, v->t->keys[k])) {
			rep->trusted = true;
			evidence_keyid(v->t->keys[k], rep->keyid);
		}

	json_error_t je;
	v->stmt = json_loadb((const char *)payload, plen, JSON_FLAGS, &je);
	json_t *pred = json_object_get(v->stmt, "predicate");
	json_t *signer = json_object_get(pred, "signer");
	const char *pkhex = evidence_jstr(signer, "public_key"),
		   *kid = evidence_jstr(signer, "keyid");
	unsigned char pk[EVIDENCE_PK_BYTES];
	if (!rep->trusted) {
		/* Not a trusted key: does the key the statement names sign it?
		 * That proves the pack is whole, not who made it. */
		if (!pkhex || evidence_public_parse(pkhex, pk, NULL) < 0 ||
		    !signed_by(sigs, pae, pae_len, pk))
			r = bad(v, "statement.sig",
				"the signature does not verify: the statement or its signature "
				"was changed");
		else
			evidence_keyid(pk, rep->keyid);
	}
	json_decref(sigs);
	if (r != 0)
		return r;
	if (!v->stmt)
		return bad(v, "statement.json", "not valid JSON: %s", je.text);
	if (!kid || strcmp(kid, rep->keyid) != 0)
		return bad(v, "statement.json", "the predicate's signer is not the key that signed it");
	return 0;
}

/* --- the statement */

static int copy_str(struct verifier *v, json_t *obj, const char *key, char *out, size_t cap)
{
	const char *s = evidence_jstr(obj, key);
	/* The agent's hash is "" in the record of a run that failed before
	 * its agent was resolved; every other field is never empty. */
	bool empty_ok = strcmp(key, "sha256") == 0;
	if (!s || (!*s && !empty_ok) || (*s && empty_ok && !cdn_sha256_hex_str_ok(s)) ||
	    strlen(s) >= cap)
		return bad(v, "statement.json", "the predicate has no valid \"%s\"", key);
	snprintf(out, cap, "%s", s);
	return 0;
}

static int check_statement(struct verifier *v)
{
	json_t *st = v->stmt;
	const char *type = evidence_jstr(st, "_type"), *ptype = evidence_jstr(st, "predicateType");
	json_t *pred = json_object_get(st, "predicate");
	json_t *subj = json_object_get(st, "subject");
	if (!json_is_object(st) || !type || strcmp(type, EVIDENCE_STATEMENT_TYPE) != 0)
		return bad(v, "statement.json", "not an in-toto Statement v1");
	if (!ptype || strcmp(ptype, EVIDENCE_PREDICATE_TYPE) != 0)
		return bad(v, "statement.json", "predicateType is not " EVIDENCE_PREDICATE_TYPE);
	if (!json_is_object(pred) || !json_is_array(subj))
		return bad(v, "statement.json", "no predicate or no subject list");
	v->pred = pred;
	struct evidence_report *rep = v->rep;
	json_t *agent = json_object_get(pred, "agent");
	json_t *ver = json_object_get(agent, "version");
	json_t *code = json_object_get(pred, "exit_code");
	json_t *inc = json_object_get(pred, "artifacts_included");
	json_t *audit = json_object_get(pred, "audit");
	int r = copy_str(v, pred, "run_id", rep->run_id, sizeof(rep->run_id));
	r = r ?: copy_str(v, pred, "workspace", rep->workspace, sizeof(rep->workspace));
	r = r ?: copy_str(v, agent, "name", rep->agent, sizeof(rep->agent));
	r = r ?: copy_str(v, agent, "sha256", rep->agent_sha256, sizeof(rep->agent_sha256));
	r = r ?: copy_str(v, pred, "status", rep->status, sizeof(rep->status));
	r = r ?: copy_str(v, pred, "created", rep->created, sizeof(rep->created));
	r = r ?: copy_str(v, pred, "cordon_version", rep->cordon_version,
			  sizeof(rep->cordon_version));
	if (r)
		return r;
	if (!json_is_integer(ver) || json_integer_value(ver) < 0 ||
	    json_integer_value(ver) > UINT32_MAX || !json_is_integer(code) ||
	    json_integer_value(code) < INT32_MIN || json_integer_value(code) > INT32_MAX ||
	    !json_is_boolean(inc) || iso_seconds(rep->created) < 0)
		return bad(v, "statement.json",
			   "the predicate has no valid agent version, exit_code, "
			   "artifacts_included or created time");
	/* Packs made before dependency layers say nothing: none. */
	json_t *deps = json_object_get(pred, "deps");
	if (deps && !json_is_null(deps)) {
		const char *dh = evidence_jstr(deps, "sha256");
		if (!json_is_object(deps) || !dh || !cdn_sha256_hex_str_ok(dh))
			return bad(v, "statement.json", "the predicate's deps is not valid");
		snprintf(rep->deps_sha256, sizeof(rep->deps_sha256), "%s", dh);
	}
	rep->agent_version = (unsigned)json_integer_value(ver);
	rep->exit_code = (int)json_integer_value(code);
	rep->artifacts_included = json_is_true(inc);
	if (!json_is_null(audit)) {
		const char *head = evidence_jstr(audit, "head");
		json_t *recs = json_object_get(audit, "records");
		if (!head || !cdn_sha256_hex_str_ok(head) || !json_is_integer(recs) ||
		    json_integer_value(recs) < 0)
			return bad(v, "statement.json", "the predicate's audit head is not valid");
		snprintf(rep->audit_head, sizeof(rep->audit_head), "%s", head);
		rep->audit_records = (uint64_t)json_integer_value(recs);
		/* Packs made before the anchor existed say nothing: unanchored. */
		json_t *anch = json_object_get(audit, "anchored");
		if (anch && !json_is_boolean(anch))
			return bad(v, "statement.json", "the predicate's audit anchored is not a boolean");
		rep->audit_anchored = json_is_true(anch);
	}
	return 0;
}

/* Every file in the signed statement with its digest, and nothing else. */
static int check_subjects(struct verifier *v, const int64_t *mtimes)
{
	json_t *subj = json_object_get(v->stmt, "subject");
	struct evidence_report *rep = v->rep;
	if (json_array_size(subj) > EVIDENCE_MAX_ENTRIES)
		return bad(v, "statement.json", "more than %d subjects", EVIDENCE_MAX_ENTRIES);
	size_t i, j;
	json_t *s, *o;
	char why[128];
	json_array_foreach(subj, i, s)
	{
		const char *name = evidence_jstr(s, "name");
		json_t *dg = json_object_get(s, "digest");
		const char *sha = evidence_jstr(dg, "sha256");
		if (!json_is_object(s) || json_object_size(s) != 2 || !name || !sha ||
		    json_object_size(dg) != 1 || !cdn_sha256_hex_str_ok(sha))
			return bad(v, "statement.json", "subject %zu is not {name, digest: {sha256}}",
				   i + 1);
		if (!evidence_pack_name_ok(name, why, sizeof(why)) ||
		    evidence_is_statement_name(name))
			return bad(v, "statement.json", "subject %zu: %s", i + 1,
				   evidence_is_statement_name(name) ? "names the statement itself"
								    : why);
		json_array_foreach(subj, j, o)
		{
			if (j < i && strcmp(evidence_jstr(o, "name"), name) == 0)
				return bad(v, "statement.json", "subject %s is listed twice", name);
		}
	}
	/* The files the archive has: changed, or added. */
	int64_t created = iso_seconds(rep->created);
	for (i = 0; i < rep->n_files; i++) {
		const struct evidence_file *f = &rep->files[i];
		const char *sha = NULL;
		json_array_foreach(subj, j, s)
		{
			if (strcmp(evidence_jstr(s, "name"), f->name) == 0)
				sha = evidence_jstr(json_object_get(s, "digest"), "sha256");
		}
		if (!evidence_is_statement_name(f->name) && !sha)
			return bad(v, f->name, "in the pack but not in the signed statement (added)");
		if (sha && strcmp(sha, f->sha256) != 0)
			return bad(v, f->name,
				   "sha256 %s, but the signed statement says %s: the file was changed",
				   f->sha256, sha);
		if (mtimes[i] != created)
			return bad(v, f->name,
				   "its tar header was changed (the time is not the pack's)");
	}
	/* The subjects the archive lacks: removed. */
	json_array_foreach(subj, i, s)
	{
		const char *name = evidence_jstr(s, "name");
		if (!find_file(rep, name))
			return bad(v, name, "listed in the signed statement but missing from the "
					    "pack (removed)");
	}
	rep->signed_files = json_array_size(subj);
	return 0;
}

/* --- what the files say */

static json_t *load_kept(struct verifier *v, enum kept k, bool *bad_json)
{
	*bad_json = false;
	if (!v->kept[k])
		return NULL;
	json_error_t je;
	json_t *j = json_loadb(v->kept[k], v->kept_len[k], JSON_FLAGS, &je);
	if (!j) {
		bad(v, kept_names[k], "not valid JSON: line %d: %s", je.line, je.text);
		*bad_json = true;
	}
	return j;
}

static bool str_is(json_t *obj, const char *key, const char *want)
{
	const char *s = evidence_jstr(obj, key);
	return s && strcmp(s, want) == 0;
}

static bool int_is(json_t *obj, const char *key, json_int_t want)
{
	json_t *i = json_object_get(obj, key);
	return json_is_integer(i) && json_integer_value(i) == want;
}

static int check_record(struct verifier *v, json_t *rec, json_t *res)
{
	struct evidence_report *rep = v->rep;
	json_t *agent = json_object_get(rec, "agent");
	if (!json_is_object(rec))
		return bad(v, "record.json", "not a JSON object");
	if (!str_is(rec, "id", rep->run_id) || !str_is(rec, "workspace", rep->workspace) ||
	    !json_equal(agent, json_object_get(v->pred, "agent")) ||
	    !str_is(rec, "status", rep->status) || !int_is(rec, "exit_code", rep->exit_code))
		return bad(v, "record.json",
			   "its run, workspace, agent, status or exit code is not the statement's");
	json_t *rr = json_object_get(rec, "result");
	if (res ? !json_equal(rr, res) : !(json_is_null(rr) || !rr))
		return bad(v, "result.json", res ? "differs from the result in record.json"
						 : "missing, but record.json holds a result");
	return 0;
}

static int check_result(struct verifier *v, json_t *res)
{
	struct evidence_report *rep = v->rep;
	json_t *agent = json_object_get(json_object_get(res, "resolved"), "agent");
	if (!json_is_object(res))
		return bad(v, "result.json", "not a JSON object");
	if (!str_is(res, "run_id", rep->run_id) || !str_is(res, "status", rep->status) ||
	    !int_is(res, "exit_code", rep->exit_code) || !str_is(agent, "name", rep->agent) ||
	    !str_is(agent, "sha256", rep->agent_sha256) ||
	    !int_is(agent, "version", rep->agent_version))
		return bad(v, "result.json",
			   "its run, status, exit code or agent is not the statement's");
	/* The layer the statement names is the one the result records. */
	json_t *deps = json_object_get(json_object_get(res, "resolved"), "deps");
	const char *dh = json_string_value(json_object_get(deps, "sha256"));
	if (json_object_get(v->pred, "deps") && strcmp(dh ? dh : "", rep->deps_sha256) != 0)
		return bad(v, "result.json", "its dependency layer is not the statement's");
	return 0;
}

static int check_audit(struct verifier *v, json_t *res)
{
	struct evidence_report *rep = v->rep;
	bool has_log = v->audit_fd >= 0, named = rep->audit_head[0] != '\0';
	json_t *ra = res ? json_object_get(res, "audit") : NULL;
	if (has_log != named)
		return bad(v, "audit.jsonl",
			   has_log ? "in the pack, but the statement names no audit log"
				   : "missing, but the statement names an audit head");
	if (res && (ra != NULL) != named)
		return bad(v, "result.json", "%s", named ? "names no audit log, the statement does"
							 : "names an audit log, the statement does not");
	if (!has_log)
		return 0;
	struct audit_verify av = { 0 };
	int r = evidence_audit_verify_fd(v->audit_fd, &av, v->err);
	if (r < 0)
		return r;
	if (r == 1)
		return bad(v, "audit.jsonl", "the chain is broken at line %llu: %s",
			   (unsigned long long)av.bad_line, av.reason);
	/* The chain alone cannot tell that lines were cut from its end; the
	 * head recorded when the run ended can. */
	if (strcmp(av.last_hash, rep->audit_head) != 0 || av.lines != rep->audit_records)
		return bad(v, "audit.jsonl",
			   "the chain ends at line %llu with hash %s, but the statement's audit "
			   "head is %s after %llu lines: lines were removed from the end or the "
			   "last line was rewritten",
			   (unsigned long long)av.lines, av.last_hash, rep->audit_head,
			   (unsigned long long)rep->audit_records);
	if (ra && (!str_is(ra, "head", rep->audit_head) ||
		   !int_is(ra, "records", (json_int_t)rep->audit_records)))
		return bad(v, "result.json", "its audit head is not the one the audit log ends at");
	return 0;
}

static int check_artifacts(struct verifier *v, json_t *manifest, json_t *res)
{
	struct evidence_report *rep = v->rep;
	char why[256];
	if (!evidence_manifest_ok(manifest, why, sizeof(why)))
		return bad(v, "artifacts.json", "%s", why);
	json_t *ra = res ? json_object_get(res, "artifacts") : NULL;
	if (res ? !json_equal(ra, manifest) : json_array_size(manifest) != 0)
		return bad(v, "artifacts.json", "differs from the artifacts result.json lists");
	size_t i;
	json_t *a;
	json_array_foreach(manifest, i, a)
	{
		char path[EVIDENCE_MAX_NAME + 1];
		snprintf(path, sizeof(path), ARTIFACTS_DIR "%s", evidence_jstr(a, "name"));
		const struct evidence_file *f = find_file(rep, path);
		if (!rep->artifacts_included)
			continue;
		if (!f)
			return bad(v, path, "in artifacts.json, but its bytes are missing");
		if (strcmp(f->sha256, evidence_jstr(a, "sha256")) != 0 ||
		    f->size != (uint64_t)json_integer_value(json_object_get(a, "size")))
			return bad(v, path, "its bytes do not match artifacts.json");
	}
	for (i = 0; i < rep->n_files; i++) {
		const char *name = rep->files[i].name;
		if (strncmp(name, ARTIFACTS_DIR, ARTIFACTS_DIR_LEN) != 0)
			continue;
		if (!rep->artifacts_included)
			return bad(v, name, "the statement says the pack holds no artifact bytes");
		bool listed = false;
		size_t j;
		json_array_foreach(manifest, j, a)
		{
			listed |= strcmp(evidence_jstr(a, "name"), name + ARTIFACTS_DIR_LEN) == 0;
		}
		if (!listed)
			return bad(v, name, "not in artifacts.json");
	}
	return 0;
}

static int check_contents(struct verifier *v)
{
	bool bj = false;
	if (!v->kept[K_RECORD])
		return bad(v, "record.json", "missing");
	if (!v->kept[K_ARTIFACTS])
		return bad(v, "artifacts.json", "missing");
	json_t *rec = load_kept(v, K_RECORD, &bj);
	json_t *res = bj ? NULL : load_kept(v, K_RESULT, &bj);
	json_t *man = bj ? NULL : load_kept(v, K_ARTIFACTS, &bj);
	int r = bj ? 1 : 0;
	if (r == 0)
		r = check_record(v, rec, res);
	if (r == 0 && res)
		r = check_result(v, res);
	if (r == 0)
		r = check_audit(v, res);
	if (r == 0)
		r = check_artifacts(v, man, res);
	json_decref(rec);
	json_decref(res);
	json_decref(man);
	return r;
}

static void report_trust(struct verifier *v)
{
	struct evidence_report *rep = v->rep;
	char want[EVIDENCE_HEX + 1] = "";
	if (v->t->n_keys)
		evidence_keyid(v->t->keys[0], want);
	/* A trusted "public key" that is, digit for digit, the signer's key
	 * id: the caller passed an id where the key belongs. It is never
	 * trusted as such: the id is the hash of the public key the pack
	 * itself carries, so trusting a pack whose signer's id matches would
	 * trust whoever made the pack. Only a key the verifier already holds
	 * can stand behind an id (the CLI resolves ids against its own key). */
	for (size_t k = 0; k < v->t->n_keys; k++) {
		char given[2 * EVIDENCE_PK_BYTES + 1];
		sodium_bin2hex(given, sizeof(given), v->t->keys[k], EVIDENCE_PK_BYTES);
		if (strcmp(given, rep->keyid) == 0) {
			bad(v, "statement.sig",
			    "the trusted key given, %s, is the key id of the key that signed this "
			    "pack, not a public key, and no key known here has that id: an id alone "
			    "cannot make a pack trusted, since the pack carries its own signer's key. "
			    "Pass the public key (`cordon evidence key` on the deployment that made "
			    "the pack prints it, and so does `cordon evidence export`)",
			    rep->keyid);
			return;
		}
	}
	if (v->t->n_keys)
		bad(v, "statement.sig",
		    "signed by key %s, which is not the trusted key %s%s: the pack is intact but "
		    "may have been made by anyone (--any-key checks integrity only)",
		    rep->keyid, want, v->t->n_keys > 1 ? " (or another trusted key)" : "");
	else
		bad(v, "statement.sig",
		    "signed by key %s, and no trusted key was given: the pack is intact but may "
		    "have been made by anyone (pass --key, or --any-key to check integrity only)",
		    rep->keyid);
}

static int verify_opened(struct verifier *v)
{
	_cleanup_free_ int64_t *mtimes = calloc(EVIDENCE_MAX_ENTRIES, sizeof(int64_t));
	v->chunk = malloc(IO_CHUNK);
	if (!mtimes || !v->chunk)
		return cdn_err_set(v->err, ENOMEM, "evidence");
	int r = read_archive(v, mtimes);
	if (r == 0)
		r = check_signature(v);
	if (r == 0)
		r = check_statement(v);
	if (r == 0)
		r = check_subjects(v, mtimes);
	if (r == 0)
		r = check_contents(v);
	if (r != 0)
		return r;
	v->rep->intact = true;
	if (!v->rep->trusted && !v->t->any_key) {
		report_trust(v);
		return 1;
	}
	return 0;
}

static int verify_with(struct archive *gz, const void *mem, int fd, uint64_t input_len,
		       const struct evidence_trust *t, struct evidence_report *rep,
		       struct cdn_err *err)
{
	static const struct evidence_trust none = { 0 };
	struct verifier v = { .t = t ? t : &none, .rep = rep, .err = err, .gz = gz,
			      .mem = mem, .fd = fd, .input_len = input_len, .audit_fd = -1 };
	int r = verify_opened(&v);
	if (r < 0) /* not a verdict: say nothing about the pack */
		rep->intact = rep->trusted = false;
	if (v.audit_fd >= 0)
		close(v.audit_fd);
	for (int k = 0; k < K_COUNT; k++)
		free(v.kept[k]);
	json_decref(v.stmt);
	free(v.chunk);
	return r;
}

static struct archive *gz_reader(void)
{
	struct archive *a = archive_read_new();
	if (!a)
		return NULL;
	/* Stage one only decompresses: gzip, read as one raw stream. */
	archive_read_support_filter_gzip(a);
	archive_read_support_format_raw(a);
	return a;
}

int evidence_verify_mem(const void *data, size_t len, const struct evidence_trust *t,
			struct evidence_report *rep, struct cdn_err *err)
{
	memset(rep, 0, sizeof(*rep));
	int r = evidence_crypto_ready(err);
	if (r < 0)
		return r;
	struct archive *gz = gz_reader();
	if (!gz)
		return cdn_err_set(err, ENOMEM, "evidence");
	if (archive_read_open_memory(gz, data, len) != ARCHIVE_OK) {
		struct verifier v = { .rep = rep };
		r = bad(&v, "archive", "not a gzip-compressed tar archive");
	} else {
		r = verify_with(gz, data, -1, len, t, rep, err);
	}
	archive_read_free(gz);
	return r;
}

int evidence_verify_file(const char *path, const struct evidence_trust *t,
			 struct evidence_report *rep, struct cdn_err *err)
{
	memset(rep, 0, sizeof(*rep));
	int r = evidence_crypto_ready(err);
	if (r < 0)
		return r;
	/* O_NONBLOCK: a FIFO named here must not hang verify. */
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return cdn_err_set(err, errno, "%s", path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return cdn_err_set(err, errno, "%s", path);
	if (!S_ISREG(st.st_mode))
		return cdn_err_msg(err, EINVAL, "%s: not a regular file", path);
	struct archive *gz = gz_reader();
	if (!gz)
		return cdn_err_set(err, ENOMEM, "evidence");
	if (archive_read_open_fd(gz, fd, IO_CHUNK) != ARCHIVE_OK) {
		struct verifier v = { .rep = rep };
		r = bad(&v, "archive", "not a gzip-compressed tar archive");
	} else {
		r = verify_with(gz, NULL, fd, (uint64_t)st.st_size, t, rep, err);
	}
	archive_read_free(gz);
	return r;
}

void evidence_report_clear(struct evidence_report *rep)
{
	free(rep->files);
	rep->files = NULL;
	rep->n_files = 0;
}
