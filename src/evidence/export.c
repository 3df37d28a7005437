/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Evidence packs, written (contract in evidence.h, format in
 * docs/evidence.md): the files are streamed into a pax tar through gzip,
 * hashing each on the way; the in-toto Statement naming them is built
 * last, signed as a DSSE envelope, and both go at the end of the archive.
 * Export checks the run directory against the run's record first.
 */
#define _GNU_SOURCE
#include "evidence/internal.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit/audit.h"
#include "base/cleanup.h"
#include "base/clock.h"
#include "base/file.h"
#include "base/hash.h"
#include "config.h"
#include "run/artifacts.h"

/* The run directory's files a pack carries, in pack order. */
static const char *const run_files[] = { "result.json", "events.ndjson", "steps.json",
					 "stdout",	"stderr",	 "audit.jsonl" };

static int read_exact(int fd, void *buf, size_t n)
{
	size_t done = 0;
	while (done < n) {
		ssize_t r = read(fd, (char *)buf + done, n - done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EIO;
		done += (size_t)r;
	}
	return 0;
}

/* ---------------------------------------------------------------------------
 * Writing
 */

struct evidence_writer {
	struct archive *a;
	time_t mtime;
	json_t *subjects;
	size_t n;	    /* subjects */
	size_t entries;	    /* everything written, the statement's files too */
	uint64_t all_bytes; /* of those entries */
};

int evidence_writer_open(int fd, time_t mtime, struct evidence_writer **out, struct cdn_err *err)
{
	*out = NULL;
	int r = evidence_crypto_ready(err);
	if (r < 0)
		return r;
	struct evidence_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return cdn_err_set(err, ENOMEM, "evidence pack");
	w->mtime = mtime;
	w->subjects = json_array();
	w->a = archive_write_new();
	if (!w->a || !w->subjects || archive_write_add_filter_gzip(w->a) != ARCHIVE_OK ||
	    archive_write_set_format_pax_restricted(w->a) != ARCHIVE_OK ||
	    archive_write_open_fd(w->a, fd) != ARCHIVE_OK) {
		r = cdn_err_msg(err, EIO, "evidence pack: %s",
				w->a ? archive_error_string(w->a) ?: "libarchive"
				     : "out of memory");
		evidence_writer_free(w);
		return r;
	}
	*out = w;
	return 0;
}

void evidence_writer_free(struct evidence_writer *w)
{
	if (!w)
		return;
	if (w->a)
		archive_write_free(w->a); /* closes if still open */
	json_decref(w->subjects);
	free(w);
}

static int writer_header(struct evidence_writer *w, const char *name, uint64_t size,
			 struct cdn_err *err)
{
	char why[128];
	if (!evidence_pack_name_ok(name, why, sizeof(why)))
		return cdn_err_msg(err, EINVAL, "evidence pack: %s: %s", name, why);
	size_t i;
	json_t *subj;
	json_array_foreach(w->subjects, i, subj)
	{
		if (strcmp(json_string_value(json_object_get(subj, "name")), name) == 0)
			return cdn_err_msg(err, EEXIST, "evidence pack: %s added twice", name);
	}
	/* Room is kept for statement.json and statement.sig: a pack that is
	 * written must be one that verify accepts. */
	size_t reserve = evidence_is_statement_name(name) ? 0 : 2;
	if (w->entries + 1 + reserve > EVIDENCE_MAX_ENTRIES)
		return cdn_err_msg(err, E2BIG, "evidence pack: more than %d files",
				   EVIDENCE_MAX_ENTRIES);
	if (size > EVIDENCE_MAX_FILE)
		return cdn_err_msg(
		    err, E2BIG, "evidence pack: %s is %llu bytes, over the %llu a pack holds", name,
		    (unsigned long long)size, (unsigned long long)EVIDENCE_MAX_FILE);
	if (w->all_bytes + size > EVIDENCE_MAX_TOTAL - (reserve ? 2ull * EVIDENCE_MAX_JSON : 0))
		return cdn_err_msg(err, E2BIG, "evidence pack: over %llu bytes in all",
				   (unsigned long long)EVIDENCE_MAX_TOTAL);
	struct archive_entry *e = archive_entry_new();
	if (!e)
		return cdn_err_set(err, ENOMEM, "evidence pack");
	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, PACK_MODE);
	archive_entry_set_size(e, (la_int64_t)size);
	archive_entry_set_mtime(e, w->mtime, 0);
	int r = archive_write_header(w->a, e);
	archive_entry_free(e);
	if (r != ARCHIVE_OK)
		return cdn_err_msg(err, EIO, "evidence pack: %s: %s", name,
				   archive_error_string(w->a));
	w->entries++;
	w->all_bytes += size;
	return 0;
}

static int writer_data(struct evidence_writer *w, const char *name, const void *data, size_t len,
		       struct cdn_err *err)
{
	while (len > 0) {
		la_ssize_t n = archive_write_data(w->a, data, len);
		if (n <= 0)
			return cdn_err_msg(err, EIO, "evidence pack: %s: %s", name,
					   archive_error_string(w->a) ?: "write failed");
		data = (const char *)data + n;
		len -= (size_t)n;
	}
	return 0;
}

static int writer_subject(struct evidence_writer *w, const char *name, const char *hex,
			  struct cdn_err *err)
{
	json_t *s = json_pack("{s:s, s:{s:s}}", "name", name, "digest", "sha256", hex);
	if (!s || json_array_append_new(w->subjects, s) < 0)
		return cdn_err_set(err, ENOMEM, "evidence pack");
	w->n++;
	return 0;
}

int evidence_writer_add(struct evidence_writer *w, const char *name, const void *data, size_t len,
			struct cdn_err *err)
{
	if (evidence_is_statement_name(name))
		return cdn_err_msg(err, EINVAL, "evidence pack: %s is written by the pack itself",
				   name);
	int r = writer_header(w, name, len, err);
	if (r == 0)
		r = writer_data(w, name, data, len, err);
	char hex[EVIDENCE_HEX + 1];
	cdn_sha256_hex(data, len, hex);
	return r < 0 ? r : writer_subject(w, name, hex, err);
}

int evidence_writer_add_fd(struct evidence_writer *w, const char *name, int fd, uint64_t size,
			   char hex[EVIDENCE_HEX + 1], struct cdn_err *err)
{
	if (evidence_is_statement_name(name))
		return cdn_err_msg(err, EINVAL, "evidence pack: %s is written by the pack itself",
				   name);
	int r = writer_header(w, name, size, err);
	if (r < 0)
		return r;
	_cleanup_free_ unsigned char *buf = malloc(IO_CHUNK);
	if (!buf)
		return cdn_err_set(err, ENOMEM, "evidence pack");
	crypto_hash_sha256_state st;
	crypto_hash_sha256_init(&st);
	uint64_t done = 0;
	/* One byte past size is asked for, so a file that grew is noticed. */
	for (;;) {
		size_t want = size - done + 1 < IO_CHUNK ? (size_t)(size - done + 1) : IO_CHUNK;
		ssize_t n = read(fd, buf, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return cdn_err_set(err, errno, "evidence pack: read %s", name);
		if (n == 0)
			break;
		if (done + (uint64_t)n > size)
			return cdn_err_msg(err, EAGAIN, "evidence pack: %s grew while it was read",
					   name);
		crypto_hash_sha256_update(&st, buf, (size_t)n);
		if ((r = writer_data(w, name, buf, (size_t)n, err)) < 0)
			return r;
		done += (uint64_t)n;
	}
	if (done != size)
		return cdn_err_msg(err, EAGAIN, "evidence pack: %s shrank while it was read", name);
	unsigned char d[crypto_hash_sha256_BYTES];
	char local[EVIDENCE_HEX + 1];
	crypto_hash_sha256_final(&st, d);
	cdn_digest_hex(d, local);
	if (hex)
		memcpy(hex, local, sizeof(local));
	return writer_subject(w, name, local, err);
}

/* The DSSE envelope over payload, signed by key, as the text of statement.sig. */
static char *envelope_text(const char *payload, size_t len, const struct evidence_key *key)
{
	size_t plen = 0;
	_cleanup_free_ unsigned char *pae = evidence_pae(EVIDENCE_PAYLOAD_TYPE, payload, len, &plen);
	unsigned char sig[crypto_sign_BYTES];
	if (!pae || crypto_sign_detached(sig, NULL, pae, plen, key->sk) != 0)
		return NULL;
	_cleanup_free_ char *p64 = evidence_base64(payload, len);
	_cleanup_free_ char *s64 = evidence_base64(sig, sizeof(sig));
	if (!p64 || !s64)
		return NULL;
	json_t *env = json_pack("{s:s, s:s, s:[{s:s, s:s}]}", "payload", p64, "payloadType",
				EVIDENCE_PAYLOAD_TYPE, "signatures", "keyid", key->keyid, "sig", s64);
	char *text = env ? json_dumps(env, DUMP_FLAGS) : NULL;
	json_decref(env);
	return text;
}

static int writer_file_text(struct evidence_writer *w, const char *name, const char *text,
			    struct cdn_err *err)
{
	size_t len = strlen(text);
	int r = writer_header(w, name, len + 1, err);
	if (r == 0)
		r = writer_data(w, name, text, len, err);
	if (r == 0)
		r = writer_data(w, name, "\n", 1, err);
	return r;
}

int evidence_writer_finish(struct evidence_writer *w, json_t *predicate,
			   const struct evidence_key *key, char stmt_hex[EVIDENCE_HEX + 1],
			   struct cdn_err *err)
{
	char pkhex[2 * EVIDENCE_PK_BYTES + 1];
	sodium_bin2hex(pkhex, sizeof(pkhex), key->pk, EVIDENCE_PK_BYTES);
	json_t *pred = json_copy(predicate); /* shallow: the caller's stays as it was */
	json_t *stmt = NULL;
	if (pred && json_object_set_new(pred, "signer", json_pack("{s:s, s:s}", "keyid",
								  key->keyid, "public_key",
								  pkhex)) == 0)
		stmt = json_pack("{s:s, s:O, s:s, s:O}", "_type", EVIDENCE_STATEMENT_TYPE,
				 "subject", w->subjects, "predicateType",
				 EVIDENCE_PREDICATE_TYPE, "predicate", pred);
	json_decref(pred);
	_cleanup_free_ char *body = stmt ? json_dumps(stmt, DUMP_FLAGS) : NULL;
	json_decref(stmt);
	_cleanup_free_ char *payload = NULL;
	if (!body || asprintf(&payload, "%s\n", body) < 0) {
		payload = NULL;
		return cdn_err_set(err, ENOMEM, "evidence statement");
	}
	size_t plen = strlen(payload);
	if (plen > EVIDENCE_MAX_JSON)
		return cdn_err_msg(err, E2BIG, "evidence statement: %zu bytes, over %u", plen,
				   EVIDENCE_MAX_JSON);
	_cleanup_free_ char *env = envelope_text(payload, plen, key);
	if (!env)
		return cdn_err_set(err, ENOMEM, "evidence statement: signing");
	int r = writer_header(w, "statement.json", plen, err);
	if (r == 0)
		r = writer_data(w, "statement.json", payload, plen, err);
	if (r == 0)
		r = writer_file_text(w, "statement.sig", env, err);
	if (r < 0)
		return r;
	if (archive_write_close(w->a) != ARCHIVE_OK)
		return cdn_err_msg(err, EIO, "evidence pack: %s", archive_error_string(w->a));
	if (stmt_hex)
		cdn_sha256_hex(payload, plen, stmt_hex);
	return 0;
}

/* ---------------------------------------------------------------------------
 * Export
 */

/* Opens a regular file in the run directory without following links;
 * -ENOENT (err untouched) when it is absent. */
static int run_file_open(int dirfd, const char *dirname, const char *name, struct stat *st,
			 struct cdn_err *err)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	if (fd < 0 && errno == ENOENT)
		return -ENOENT;
	if (fd < 0)
		return cdn_err_set(err, errno, "%s/%s", dirname, name);
	int r = 0;
	if (fstat(fd, st) < 0)
		r = cdn_err_set(err, errno, "%s/%s", dirname, name);
	else if (!S_ISREG(st->st_mode))
		r = cdn_err_msg(err, EINVAL, "%s/%s: not a regular file", dirname, name);
	if (r < 0)
		close(fd);
	return r < 0 ? r : fd;
}

static int read_small(int fd, const char *what, char **out, size_t *len, struct cdn_err *err)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return cdn_err_set(err, errno, "%s", what);
	if ((uint64_t)st.st_size > EVIDENCE_MAX_JSON)
		return cdn_err_msg(err, E2BIG, "%s: %lld bytes, over the %u a pack reads", what,
				   (long long)st.st_size, EVIDENCE_MAX_JSON);
	char *buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return cdn_err_set(err, ENOMEM, "%s", what);
	int r = read_exact(fd, buf, (size_t)st.st_size);
	if (r < 0) {
		free(buf);
		return cdn_err_set(err, -r, "read %s", what);
	}
	buf[st.st_size] = '\0';
	*out = buf;
	*len = (size_t)st.st_size;
	return 0;
}


static json_t *record_json(const struct store_run *r, json_t *result)
{
	char created[CDN_RFC3339_MAX], started[CDN_RFC3339_MAX], finished[CDN_RFC3339_MAX];
	cdn_rfc3339(r->created_ms, CDN_TIME_MS, created, sizeof(created));
	cdn_rfc3339(r->started_ms, CDN_TIME_MS, started, sizeof(started));
	cdn_rfc3339(r->finished_ms, CDN_TIME_MS, finished, sizeof(finished));
	json_t *j = json_pack("{s:s, s:s, s:{s:s, s:I, s:s}, s:s, s:i, s:s, s:s, s:I, s:I, s:I,"
			      " s:{s:i, s:s}}",
			      "id", r->id, "workspace", r->workspace, "agent", "name", r->agent,
			      "version", (json_int_t)r->agent_version, "sha256", r->agent_hash,
			      "status", store_run_status_name(r->status), "exit_code",
			      r->exit_code, "caller", r->caller, "created", created, "created_ms",
			      (json_int_t)r->created_ms, "started_ms", (json_int_t)r->started_ms,
			      "finished_ms", (json_int_t)r->finished_ms, "supervisor", "pid",
			      r->supervisor_pid, "boot_id", r->supervisor_boot);
	if (!j)
		return NULL;
	json_object_set_new(j, "started", r->started_ms ? json_string(started) : json_null());
	json_object_set_new(j, "finished", r->finished_ms ? json_string(finished) : json_null());
	json_object_set_new(j, "error", r->error[0] ? json_string(r->error) : json_null());
	/* The input itself stays out: unlike the run directory it is stored
	 * as given, not redacted, and a caller may have put a key in it. Its
	 * hash is what result.json records too. */
	if (r->input_json) {
		char h[EVIDENCE_HEX + 1];
		cdn_sha256_hex(r->input_json, strlen(r->input_json), h);
		json_object_set_new(j, "input_sha256", json_string(h));
	} else {
		json_object_set_new(j, "input_sha256", json_null());
	}
	json_object_set(j, "result", result ? result : json_null());
	return j;
}

static int add_json(struct evidence_writer *w, const char *name, json_t *j, struct cdn_err *err)
{
	_cleanup_free_ char *text = j ? json_dumps(j, DUMP_FLAGS) : NULL;
	if (!text)
		return cdn_err_set(err, ENOMEM, "evidence pack: %s", name);
	size_t len = strlen(text);
	text[len] = '\n'; /* over the NUL: the buffer's length is len + 1 */
	return evidence_writer_add(w, name, text, len + 1, err);
}


struct export_ctx {
	const struct evidence_export_opts *o;
	char dirname[PATH_MAX];
	int dirfd;
	json_t *result;      /* result.json, parsed; NULL when absent */
	char *result_text;
	size_t result_len;
	int audit_fd;
	struct audit_verify audit;
	bool anchored; /* the log's end matches a head recorded by the run */
};

/* Loads result.json and checks the run directory against the record
 * before anything is signed: signing a directory someone edited after the
 * run would launder the edit. */
static int export_check(struct export_ctx *c, const struct store_run *rec, struct cdn_err *err)
{
	struct stat st;
	const char *d = c->dirname;
	int fd = run_file_open(c->dirfd, d, "result.json", &st, err);
	if (fd < 0 && fd != -ENOENT)
		return fd;
	if (fd >= 0) {
		int r = read_small(fd, "result.json", &c->result_text, &c->result_len, err);
		close(fd);
		if (r < 0)
			return r;
		json_error_t je;
		c->result = json_loadb(c->result_text, c->result_len, JSON_FLAGS, &je);
		if (!json_is_object(c->result))
			return cdn_err_msg(err, EINVAL, "%s/result.json is not a JSON object (%s)",
					   d, c->result ? "" : je.text);
		const char *id = evidence_jstr(c->result, "run_id");
		if (!id || strcmp(id, rec->id) != 0)
			return cdn_err_msg(err, EINVAL, "%s/result.json is not run %s's result", d,
					   rec->id);
	}
	json_t *stored = rec->result_json ? json_loads(rec->result_json, JSON_FLAGS, NULL) : NULL;
	bool same = (!stored && !c->result) || (stored && c->result && json_equal(stored, c->result));
	json_decref(stored);
	if (!same)
		return cdn_err_msg(
		    err, EINVAL,
		    "%s/result.json %s the result in the run's record; it was changed or "
		    "removed after the run, and a pack would sign the change",
		    d, c->result ? "differs from" : "is missing, unlike");

	json_t *ra = c->result ? json_object_get(c->result, "audit") : NULL;
	c->audit_fd = run_file_open(c->dirfd, d, "audit.jsonl", &st, err);
	if (c->audit_fd < 0 && c->audit_fd != -ENOENT)
		return c->audit_fd;
	if (c->audit_fd < 0 && ra)
		return cdn_err_msg(err, EINVAL,
				   "%s/audit.jsonl is missing, but result.json names it", d);
	if (c->audit_fd >= 0 && c->result && !ra)
		return cdn_err_msg(err, EINVAL,
				   "%s/audit.jsonl exists, but result.json names no audit log", d);
	if (c->audit_fd >= 0) {
		c->audit.mark_line = rec->audit_records;
		int r = evidence_audit_verify_fd(c->audit_fd, &c->audit, err);
		if (r < 0)
			return r;
		if (r == 1)
			return cdn_err_msg(err, EINVAL, "%s/audit.jsonl: line %llu: %s", d,
					   (unsigned long long)c->audit.bad_line, c->audit.reason);
		/* The chain alone cannot tell that lines were cut from its end:
		 * the head the run recorded as it wrote them can, also for a run
		 * whose supervisor died before result.json. A line or so may
		 * follow the last anchor (written, and the writer died). */
		if (rec->audit_head[0]) {
			if (c->audit.lines < rec->audit_records)
				return cdn_err_msg(
				    err, EINVAL,
				    "%s/audit.jsonl has %llu lines, but the run's record "
				    "anchored its head after %llu: lines were cut off its end",
				    d, (unsigned long long)c->audit.lines,
				    (unsigned long long)rec->audit_records);
			if (strcmp(c->audit.mark_hash, rec->audit_head) != 0)
				return cdn_err_msg(
				    err, EINVAL,
				    "%s/audit.jsonl line %llu has hash %s, but the run's record "
				    "anchored %s: the log was rewritten",
				    d, (unsigned long long)rec->audit_records, c->audit.mark_hash,
				    rec->audit_head);
			c->anchored = true;
		}
		const char *head = evidence_jstr(ra, "head");
		json_t *recs = json_object_get(ra, "records");
		if (ra && (!head || strcmp(head, c->audit.last_hash) != 0 ||
			   !json_is_integer(recs) ||
			   (uint64_t)json_integer_value(recs) != c->audit.lines))
			return cdn_err_msg(
			    err, EINVAL,
			    "%s/audit.jsonl ends at line %llu with hash %s, but result.json "
			    "records its head as %s: lines were removed or rewritten",
			    d, (unsigned long long)c->audit.lines, c->audit.last_hash,
			    head ? head : "(none)");
		if (ra)
			c->anchored = true;
	}
	char why[256];
	json_t *arts = c->result ? json_object_get(c->result, "artifacts") : NULL;
	if (arts && !evidence_manifest_ok(arts, why, sizeof(why)))
		return cdn_err_msg(err, EINVAL, "%s/result.json: %s", d, why);
	return 0;
}

static int export_artifacts(struct export_ctx *c, struct evidence_writer *w, json_t *arts,
			    struct cdn_err *err)
{
	char adir[PATH_MAX];
	snprintf(adir, sizeof(adir), "%s/artifacts", c->dirname);
	_cleanup_close_ int afd = -1;
	size_t i;
	json_t *a;
	json_array_foreach(arts, i, a)
	{
		if (afd < 0 && (afd = openat(c->dirfd, "artifacts", O_RDONLY | O_DIRECTORY |
									 O_NOFOLLOW | O_CLOEXEC)) < 0)
			return cdn_err_set(err, errno, "%s", adir);
		const char *name = evidence_jstr(a, "name"), *sha = evidence_jstr(a, "sha256");
		uint64_t size = (uint64_t)json_integer_value(json_object_get(a, "size"));
		struct stat st;
		_cleanup_close_ int fd = run_file_open(afd, adir, name, &st, err);
		if (fd == -ENOENT)
			return cdn_err_msg(err, ENOENT, "%s/%s is missing", adir, name);
		if (fd < 0)
			return fd;
		if ((uint64_t)st.st_size != size)
			return cdn_err_msg(
			    err, EINVAL,
			    "%s/%s is %lld bytes, but result.json records %llu: changed "
			    "after the run",
			    adir, name, (long long)st.st_size, (unsigned long long)size);
		char path[EVIDENCE_MAX_NAME + 1], hex[EVIDENCE_HEX + 1];
		snprintf(path, sizeof(path), ARTIFACTS_DIR "%s", name);
		int r = evidence_writer_add_fd(w, path, fd, size, hex, err);
		if (r < 0)
			return r;
		if (strcmp(hex, sha) != 0)
			return cdn_err_msg(
			    err, EINVAL,
			    "%s/%s has sha256 %s, but result.json records %s: changed after "
			    "the run",
			    adir, name, hex, sha);
	}
	return 0;
}

static int export_write(struct export_ctx *c, const struct store_run *rec, int fd,
			struct evidence_export_info *info, struct cdn_err *err)
{
	int64_t now = cdn_wall_ms();
	struct evidence_writer *w;
	int r = evidence_writer_open(fd, (time_t)(now / 1000), &w, err);
	if (r < 0)
		return r;
	json_t *record = record_json(rec, c->result);
	r = add_json(w, "record.json", record, err);
	json_decref(record);
	for (size_t i = 0; r == 0 && i < CDN_ARRAY_SIZE(run_files); i++) {
		const char *name = run_files[i];
		if (strcmp(name, "result.json") == 0) {
			if (c->result_text)
				r = evidence_writer_add(w, name, c->result_text, c->result_len, err);
			continue;
		}
		struct stat st;
		int ffd;
		if (strcmp(name, "audit.jsonl") != 0)
			ffd = run_file_open(c->dirfd, c->dirname, name, &st, err);
		else if (c->audit_fd < 0)
			ffd = -ENOENT;
		else if ((ffd = dup(c->audit_fd)) < 0)
			ffd = cdn_err_set(err, errno, "%s/%s", c->dirname, name);
		if (ffd == -ENOENT)
			continue;
		if (ffd < 0) {
			r = ffd;
			break;
		}
		char hex[EVIDENCE_HEX + 1] = "";
		if (fstat(ffd, &st) < 0 || lseek(ffd, 0, SEEK_SET) < 0)
			r = cdn_err_set(err, errno, "%s/%s", c->dirname, name);
		else
			r = evidence_writer_add_fd(w, name, ffd, (uint64_t)st.st_size, hex, err);
		close(ffd);
		/* Output is signed as it was when the run ended, not as found. */
		const char *want = strcmp(name, "stdout") == 0	 ? rec->stdout_sha256
				   : strcmp(name, "stderr") == 0 ? rec->stderr_sha256
								 : "";
		if (r == 0 && want[0] && strcmp(hex, want) != 0)
			r = cdn_err_msg(
			    err, EINVAL,
			    "%s/%s has sha256 %s, but the run's record has %s: changed after "
			    "the run",
			    c->dirname, name, hex, want);
	}
	json_t *arts = c->result ? json_object_get(c->result, "artifacts") : NULL;
	json_t *manifest = arts ? json_incref(arts) : json_array();
	if (r == 0)
		r = add_json(w, "artifacts.json", manifest, err);
	if (r == 0 && c->o->artifacts)
		r = export_artifacts(c, w, manifest, err);
	json_decref(manifest);

	char created[CDN_RFC3339_MAX];
	cdn_rfc3339(now, CDN_TIME_MS, created, sizeof(created));
	json_t *pred = json_pack("{s:s, s:s, s:{s:s, s:I, s:s}, s:s, s:i, s:b, s:s, s:s}",
				 "run_id", rec->id, "workspace", rec->workspace, "agent", "name",
				 rec->agent, "version", (json_int_t)rec->agent_version, "sha256",
				 rec->agent_hash, "status", store_run_status_name(rec->status),
				 "exit_code", rec->exit_code, "artifacts_included",
				 c->o->artifacts, "created", created, "cordon_version",
				 CORDON_VERSION);
	if (pred && rec->caller[0])
		json_object_set_new(pred, "caller", json_string(rec->caller));
	/* The runs it called (call_agent), each by what it resolved, as its
	 * result lists them: signed here, so the chain is in the statement. */
	json_t *kids = c->result ? json_object_get(c->result, "children") : NULL;
	if (pred && json_is_array(kids)) {
		json_t *list = json_array();
		size_t i;
		json_t *k;
		json_array_foreach(kids, i, k)
		json_array_append_new(
		    list, json_pack("{s:O?, s:{s:O?, s:O?, s:O?}, s:O?}", "run_id",
				    json_object_get(k, "run_id"), "agent", "name",
				    json_object_get(k, "agent"), "version", json_object_get(k, "version"),
				    "sha256", json_object_get(k, "sha256"), "status",
				    json_object_get(k, "status")));
		json_object_set_new(pred, "children", list);
	}
	/* The dependency layer that was bound into the run (docs/deps.md),
	 * by its hash, as result.json records it; null when none. */
	json_t *dl = c->result ? json_object_get(json_object_get(c->result, "resolved"), "deps")
			       : NULL;
	const char *dh = json_string_value(json_object_get(dl, "sha256"));
	if (pred)
		json_object_set_new(pred, "deps",
				    dh ? json_pack("{s:s}", "sha256", dh) : json_null());
	if (pred && c->audit_fd >= 0)
		json_object_set_new(pred, "audit",
				    json_pack("{s:s, s:I, s:b}", "head", c->audit.last_hash, "records",
					      (json_int_t)c->audit.lines, "anchored", c->anchored));
	else if (pred)
		json_object_set_new(pred, "audit", json_null());
	if (r == 0 && !pred)
		r = cdn_err_set(err, ENOMEM, "evidence statement");
	if (r == 0)
		r = evidence_writer_finish(w, pred, c->o->key, info->statement_sha256, err);
	json_decref(pred);
	if (r == 0) {
		info->files = w->entries;
		info->bytes = w->all_bytes;
		info->signed_files = w->n;
		snprintf(info->audit_head, sizeof(info->audit_head), "%s",
			 c->audit_fd >= 0 ? c->audit.last_hash : "");
		info->audit_anchored = c->anchored;
	}
	evidence_writer_free(w);
	return r;
}

/* Publishes tmp as path: link(2) never replaces (EEXIST), rename(2) does. */
static int publish(const char *tmp, const char *path, bool force, struct cdn_err *err)
{
	if (force ? rename(tmp, path) < 0 : link(tmp, path) < 0) {
		int e = errno;
		if (e == EEXIST)
			return cdn_err_msg(err, EEXIST, "%s exists; use --force to replace it",
					   path);
		return cdn_err_set(err, e, "%s", path);
	}
	if (!force)
		unlink(tmp);
	return 0;
}

static int export_to(struct export_ctx *c, const struct store_run *rec,
		     struct evidence_export_info *info, struct cdn_err *err)
{
	const char *out = c->o->out_path;
	_cleanup_free_ char *copy = strdup(out);
	if (!copy)
		return cdn_err_set(err, ENOMEM, "%s", out);
	char *slash = strrchr(copy, '/');
	const char *dir = slash ? (slash == copy ? "/" : copy) : ".";
	const char *base = slash ? slash + 1 : copy;
	if (slash)
		*slash = '\0';
	if (!*base)
		return cdn_err_msg(err, EINVAL, "%s: the output must name a file", out);
	if (!c->o->force && faccessat(AT_FDCWD, out, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return cdn_err_msg(err, EEXIST, "%s exists; use --force to replace it", out);
	char tmp[PATH_MAX];
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", dir, base) >= sizeof(tmp))
		return cdn_err_set(err, ENAMETOOLONG, "%s", out);
	/* Beside the target, so rename/link stay on one filesystem; 0600
	 * from mkostemp: a pack holds the run's outputs. */
	_cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return cdn_err_set(err, errno, "create a temp file in %s", dir);
	int r = export_write(c, rec, fd, info, err);
	if (r == 0 && fsync(fd) < 0)
		r = cdn_err_set(err, errno, "sync %s", tmp);
	if (r == 0)
		r = publish(tmp, out, c->o->force, err);
	if (r < 0) {
		unlink(tmp);
		return r;
	}
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0)
		(void)fsync(dfd);
	return 0;
}

int evidence_export(struct store *s, const struct evidence_export_opts *o,
		    struct evidence_export_info *info, struct cdn_err *err)
{
	memset(info, 0, sizeof(*info));
	int r = evidence_crypto_ready(err);
	if (r < 0)
		return r;
	if (!o->key || !o->out_path || !o->run_id)
		return cdn_err_msg(err, EINVAL,
				   "evidence export: a run, an output and a key are needed");
	/* The id goes into a path: nothing but the store's id characters. */
	if (!store_run_id_ok(o->run_id))
		return cdn_err_msg(err, ENOENT, "no run %.64s", o->run_id);
	struct store_run rec;
	r = store_run_get(s, o->run_id, &rec, err);
	if (r == -ENOENT || (r == 0 && o->workspace && strcmp(rec.workspace, o->workspace) != 0)) {
		if (r == 0)
			store_run_clear(&rec);
		return o->workspace ? cdn_err_msg(err, ENOENT, "no run %s in workspace %s",
						  o->run_id, o->workspace)
				    : cdn_err_msg(err, ENOENT, "no run %s", o->run_id);
	}
	if (r < 0)
		return r;
	struct export_ctx c = { .o = o, .dirfd = -1, .audit_fd = -1 };
	struct store_run_marks m;
	if ((r = store_run_marks_get(s, rec.id, &m, err)) < 0) {
		store_run_clear(&rec);
		return r;
	}
	if (m.pruned_ms[RETAIN_EVIDENCE]) {
		char when[CDN_RFC3339_MAX];
		cdn_rfc3339(m.pruned_ms[RETAIN_EVIDENCE], CDN_TIME_S, when, sizeof(when));
		r = cdn_err_msg(err, ENOENT,
				"the evidence of run %s (its events and audit log) was pruned by "
				"retention at %s; no pack can be made any more",
				rec.id, when);
	} else if (!store_run_status_final(rec.status)) {
		r = cdn_err_msg(err, EBUSY,
				"run %s has not finished (status %s); export it once it has",
				rec.id, store_run_status_name(rec.status));
	} else {
		/* A run of another host: its files from the blob store's S3. */
		r = store_run_files_pull(s, rec.id, err);
		if (r == -ENOENT)
			r = 0;
		if (r == 0)
			r = store_run_file(s, rec.id, NULL, c.dirname, sizeof(c.dirname), err);
		if (r == 0)
			c.dirfd = open(c.dirname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (r == 0 && c.dirfd < 0)
			r = cdn_err_set(err, errno, "run directory %s", c.dirname);
	}
	if (r == 0)
		r = export_check(&c, &rec, err);
	if (r == 0)
		r = export_to(&c, &rec, info, err);
	if (c.dirfd >= 0)
		close(c.dirfd);
	if (c.audit_fd >= 0)
		close(c.audit_fd);
	json_decref(c.result);
	free(c.result_text);
	store_run_clear(&rec);
	return r;
}
