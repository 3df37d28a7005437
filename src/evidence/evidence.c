/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Evidence packs (contract in evidence.h, format in docs/evidence.md).
 *
 * Writing: the files are streamed into a pax tar through gzip, hashing each
 * on the way; the in-toto Statement naming them is built last, signed as a
 * DSSE envelope, and both go at the end of the archive.
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
#include "evidence/evidence.h"
#include "vault/keyfile.h"

#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
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
#include "base/clock.h"
#include "base/file.h"
#include "base/hash.h"
#include "base/text.h"
#include "config.h"
#include "run/artifacts.h"

#define IO_CHUNK	 (64 * 1024)
#define PACK_MODE	 0644
#define ARTIFACTS_DIR	 "artifacts/"
#define ARTIFACTS_DIR_LEN (sizeof(ARTIFACTS_DIR) - 1)
#define JSON_FLAGS	 (JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL)
#define DUMP_FLAGS	 (JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENSURE_ASCII)

_Static_assert(EVIDENCE_PK_BYTES == crypto_sign_PUBLICKEYBYTES, "Ed25519 public keys");
_Static_assert(EVIDENCE_SEED_BYTES == crypto_sign_SEEDBYTES, "Ed25519 seeds");
_Static_assert(EVIDENCE_SEED_BYTES == KEYFILE_BYTES, "the seed is a key file");
_Static_assert(ARTIFACTS_DIR_LEN + ARTIFACT_NAME_MAX <= EVIDENCE_MAX_NAME, "artifact paths fit");

/* The run directory's files a pack carries, in pack order. */
static const char *const run_files[] = { "result.json", "events.ndjson", "steps.json",
					 "stdout",	"stderr",	 "audit.jsonl" };
/* Every fixed name a pack may hold; artifacts/NAME besides. */
static const char *const pack_files[] = { "record.json", "result.json",	"events.ndjson",
					  "steps.json",	 "stdout",	"stderr",
					  "audit.jsonl", "artifacts.json", "statement.json",
					  "statement.sig" };

static int crypto_ready(struct cdn_err *err)
{
	if (sodium_init() < 0)
		return cdn_err_set(err, EIO, "evidence: libsodium could not initialise");
	return 0;
}

_Static_assert(EVIDENCE_HEX == CDN_SHA256_HEX, "a digest in a pack is a sha256 in hex");

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
 * Names in a pack
 */

/*
 * A path a pack may hold: one of the fixed names, or artifacts/NAME. The
 * specific refusals come first so that the report says what the attack
 * was (CVE-2007-4131 and every tar "extract outside" bug since: a path
 * that is absolute or climbs with ".." is how an archive writes where it
 * should not). verify never extracts, but whoever reads the pack next may.
 */
static bool pack_name_ok(const char *n, char *why, size_t cap)
{
	size_t len = strlen(n);
	if (len == 0) {
		snprintf(why, cap, "an entry with an empty name");
		return false;
	}
	if (len > EVIDENCE_MAX_NAME) {
		snprintf(why, cap, "name longer than %d bytes", EVIDENCE_MAX_NAME);
		return false;
	}
	if (n[0] == '/') {
		snprintf(why, cap, "absolute path: an entry must not point outside the pack");
		return false;
	}
	for (const char *p = n; (p = strstr(p, "..")) != NULL; p += 2) {
		bool starts = p == n || p[-1] == '/';
		bool ends = p[2] == '\0' || p[2] == '/';
		if (starts && ends) {
			snprintf(why, cap, "path climbs out with \"..\"");
			return false;
		}
	}
	for (size_t i = 0; i < CDN_ARRAY_SIZE(pack_files); i++)
		if (strcmp(n, pack_files[i]) == 0)
			return true;
	if (strncmp(n, ARTIFACTS_DIR, ARTIFACTS_DIR_LEN) == 0 &&
	    artifact_name_ok(n + ARTIFACTS_DIR_LEN))
		return true;
	snprintf(why, cap, "not a file an evidence pack holds");
	return false;
}

/* ---------------------------------------------------------------------------
 * Keys
 */

struct evidence_key {
	unsigned char *sk; /* sodium memory: seed || public key */
	unsigned char pk[EVIDENCE_PK_BYTES];
	char keyid[EVIDENCE_HEX + 1];
	char source[PATH_MAX];
};

void evidence_keyid(const unsigned char pk[EVIDENCE_PK_BYTES], char out[EVIDENCE_HEX + 1])
{
	cdn_sha256_hex(pk, EVIDENCE_PK_BYTES, out);
}

void evidence_key_free(struct evidence_key *k)
{
	if (!k)
		return;
	if (k->sk)
		sodium_free(k->sk); /* wipes it */
	free(k);
}

const unsigned char *evidence_key_public(const struct evidence_key *k)
{
	return k->pk;
}

const char *evidence_key_id(const struct evidence_key *k)
{
	return k->keyid;
}

const char *evidence_key_source(const struct evidence_key *k)
{
	return k->source;
}

int evidence_key_from_seed(const unsigned char seed[EVIDENCE_SEED_BYTES],
			   struct evidence_key **out, struct cdn_err *err)
{
	*out = NULL;
	int r = crypto_ready(err);
	if (r < 0)
		return r;
	struct evidence_key *k = calloc(1, sizeof(*k));
	if (!k || !(k->sk = sodium_malloc(crypto_sign_SECRETKEYBYTES))) {
		evidence_key_free(k);
		return cdn_err_set(err, ENOMEM, "evidence key");
	}
	crypto_sign_seed_keypair(k->pk, k->sk, seed);
	sodium_mprotect_readonly(k->sk);
	evidence_keyid(k->pk, k->keyid);
	snprintf(k->source, sizeof(k->source), "seed");
	*out = k;
	return 0;
}

static void seed_freep(unsigned char **p)
{
	if (*p)
		sodium_free(*p);
}

int evidence_key_load(const char *state_dir, bool create, struct evidence_key **out,
		      struct cdn_err *err)
{
	*out = NULL;
	int r = crypto_ready(err);
	if (r < 0)
		return r;
	_cleanup_(seed_freep) unsigned char *seed = sodium_malloc(EVIDENCE_SEED_BYTES);
	if (!seed)
		return cdn_err_set(err, ENOMEM, "evidence key");
	char source[PATH_MAX];
	const char *env = getenv(EVIDENCE_KEY_ENV);
	if (env) {
		/* Set, even to "", means "this key": never fall back to the
		 * file and sign with a different one. */
		snprintf(source, sizeof(source), "env");
		r = keyfile_from_text(env, EVIDENCE_KEY_ENV, seed, err);
	} else {
		/* The vault's rules: this key is what makes a pack worth
		 * believing. */
		r = keyfile_load(state_dir, EVIDENCE_KEY_FILE, "evidence key", create, seed, source,
				 sizeof(source), err);
	}
	if (r < 0)
		return r;
	r = evidence_key_from_seed(seed, out, err);
	if (r == 0)
		snprintf((*out)->source, sizeof((*out)->source), "%s", source);
	return r;
}

int evidence_public_parse(const char *hex, unsigned char pk[EVIDENCE_PK_BYTES],
			  struct cdn_err *err)
{
	size_t n = strlen(hex), got = 0;
	const char *end = NULL;
	bool ok = n == 2 * EVIDENCE_PK_BYTES;
	for (size_t i = 0; ok && i < n; i++)
		ok = isxdigit((unsigned char)hex[i]) != 0;
	if (ok && sodium_hex2bin(pk, EVIDENCE_PK_BYTES, hex, n, NULL, &got, &end) == 0 &&
	    got == EVIDENCE_PK_BYTES && end == hex + n)
		return 0;
	return cdn_err_msg(err, EINVAL,
			   "a public key is %d hex digits (`cordon evidence key` prints it)",
			   2 * EVIDENCE_PK_BYTES);
}

/* ---------------------------------------------------------------------------
 * DSSE
 */

unsigned char *evidence_pae(const char *type, const void *body, size_t len, size_t *out_len)
{
	size_t tlen = strlen(type);
	char head[64];
	int h = snprintf(head, sizeof(head), "DSSEv1 %zu ", tlen);
	char mid[32];
	int m = snprintf(mid, sizeof(mid), " %zu ", len);
	size_t total = (size_t)h + tlen + (size_t)m + len;
	unsigned char *out = malloc(total ? total : 1);
	if (!out)
		return NULL;
	memcpy(out, head, (size_t)h);
	memcpy(out + h, type, tlen);
	memcpy(out + (size_t)h + tlen, mid, (size_t)m);
	if (len)
		memcpy(out + (size_t)h + tlen + (size_t)m, body, len);
	*out_len = total;
	return out;
}

static char *base64(const void *data, size_t len)
{
	size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
	char *out = malloc(cap);
	if (out)
		sodium_bin2base64(out, cap, data, len, sodium_base64_VARIANT_ORIGINAL);
	return out;
}

/* Standard base64 with padding, all of it; NULL when it is not that. */
static unsigned char *unbase64(const char *text, size_t n, size_t *out_len)
{
	unsigned char *out = malloc(n / 4 * 3 + 3);
	const char *end = NULL;
	if (out && sodium_base642bin(out, n / 4 * 3 + 3, text, n, NULL, out_len, &end,
				     sodium_base64_VARIANT_ORIGINAL) == 0 &&
	    end == text + n)
		return out;
	free(out);
	return NULL;
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
	int r = crypto_ready(err);
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

static bool is_statement_name(const char *name)
{
	return strcmp(name, "statement.json") == 0 || strcmp(name, "statement.sig") == 0;
}

static int writer_header(struct evidence_writer *w, const char *name, uint64_t size,
			 struct cdn_err *err)
{
	char why[128];
	if (!pack_name_ok(name, why, sizeof(why)))
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
	size_t reserve = is_statement_name(name) ? 0 : 2;
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
	if (is_statement_name(name))
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
	if (is_statement_name(name))
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
	_cleanup_free_ char *p64 = base64(payload, len);
	_cleanup_free_ char *s64 = base64(sig, sizeof(sig));
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

/*
 * Runs audit_verify_file over the log in fd. The path is /proc/self/fd/N,
 * which reopens this very file (or memfd); when /proc is not mounted, a
 * copy goes to a private directory that is removed again.
 */
static int audit_verify_fd(int fd, struct audit_verify *res, struct cdn_err *err)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (access(path, R_OK) == 0)
		return audit_verify_file(path, res, err);

	const char *tmpdir = getenv("TMPDIR");
	char dir[PATH_MAX];
	if (!tmpdir || tmpdir[0] != '/')
		tmpdir = "/tmp";
	if ((size_t)snprintf(dir, sizeof(dir), "%s/cordon-evidence-XXXXXX", tmpdir) >= sizeof(dir))
		return cdn_err_set(err, ENAMETOOLONG, "audit log copy");
	if (!mkdtemp(dir)) /* 0700: nobody else can swap the file */
		return cdn_err_set(err, errno, "audit log copy: mkdtemp %s", dir);
	snprintf(path, sizeof(path), "%s/audit.jsonl", dir);
	int r = 0;
	{
		_cleanup_close_ int out =
			open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		_cleanup_free_ char *buf = malloc(IO_CHUNK);
		if (out < 0 || !buf)
			r = out < 0 ? -errno : -ENOMEM;
		for (off_t off = 0; r == 0;) {
			ssize_t n = pread(fd, buf, IO_CHUNK, off);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				r = n < 0 ? -errno : 0;
				break;
			}
			r = cdn_write_all(out, buf, (size_t)n);
			off += n;
		}
	}
	if (r == 0)
		r = audit_verify_file(path, res, err);
	else
		cdn_err_set(err, -r, "audit log copy %s", path);
	unlink(path);
	rmdir(dir);
	return r;
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

static const char *jstr(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
		return NULL;
	return json_string_value(v);
}

/* The artifacts result.json lists: each with a name a pack can hold, a
 * sha256 and a size, no name twice. */
static bool manifest_ok(json_t *arts, char *why, size_t cap)
{
	if (!json_is_array(arts)) {
		snprintf(why, cap, "the artifact list is not a JSON array");
		return false;
	}
	/* Bounded before the quadratic check below. */
	if (json_array_size(arts) > EVIDENCE_MAX_ENTRIES) {
		snprintf(why, cap, "more than %d artifacts", EVIDENCE_MAX_ENTRIES);
		return false;
	}
	size_t i, j;
	json_t *a, *b;
	json_array_foreach(arts, i, a)
	{
		const char *name = jstr(a, "name"), *sha = jstr(a, "sha256");
		json_t *size = json_object_get(a, "size");
		char safe[ARTIFACT_NAME_MAX + 1];
		if (!json_is_object(a) || !name || !artifact_name_ok(name)) {
			cdn_printable_str(safe, sizeof(safe), name ? name : "?", 0);
			snprintf(why, cap, "artifact %zu has no valid name (%s)", i + 1, safe);
			return false;
		}
		if (!sha || !cdn_sha256_hex_str_ok(sha) || !json_is_integer(size) ||
		    json_integer_value(size) < 0) {
			snprintf(why, cap, "artifact %s has no valid sha256 and size", name);
			return false;
		}
		json_array_foreach(arts, j, b)
		{
			if (j < i && strcmp(jstr(b, "name"), name) == 0) {
				snprintf(why, cap, "artifact %s is listed twice", name);
				return false;
			}
		}
	}
	return true;
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
		const char *id = jstr(c->result, "run_id");
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
		int r = audit_verify_fd(c->audit_fd, &c->audit, err);
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
		const char *head = jstr(ra, "head");
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
	if (arts && !manifest_ok(arts, why, sizeof(why)))
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
		const char *name = jstr(a, "name"), *sha = jstr(a, "sha256");
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
	int r = crypto_ready(err);
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
	if (!store_run_status_final(rec.status)) {
		r = cdn_err_msg(err, EBUSY,
				"run %s has not finished (status %s); export it once it has",
				rec.id, store_run_status_name(rec.status));
	} else {
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
	if (!pack_name_ok(name, why, sizeof(why)))
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
	const char *p = jstr(env, "payload"), *type = jstr(env, "payloadType");
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
	else if (!(*payload = unbase64(p, strlen(p), plen)))
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
		const char *id = jstr(s, "keyid"), *sig = jstr(s, "sig");
		size_t slen = 0;
		if (!id || !sig || strcmp(id, keyid) != 0)
			continue;
		_cleanup_free_ unsigned char *raw = unbase64(sig, strlen(sig), &slen);
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
	const char *pkhex = jstr(signer, "public_key"), *kid = jstr(signer, "keyid");
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
	const char *s = jstr(obj, key);
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
	const char *type = jstr(st, "_type"), *ptype = jstr(st, "predicateType");
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
	rep->agent_version = (unsigned)json_integer_value(ver);
	rep->exit_code = (int)json_integer_value(code);
	rep->artifacts_included = json_is_true(inc);
	if (!json_is_null(audit)) {
		const char *head = jstr(audit, "head");
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
		const char *name = jstr(s, "name");
		json_t *dg = json_object_get(s, "digest");
		const char *sha = jstr(dg, "sha256");
		if (!json_is_object(s) || json_object_size(s) != 2 || !name || !sha ||
		    json_object_size(dg) != 1 || !cdn_sha256_hex_str_ok(sha))
			return bad(v, "statement.json", "subject %zu is not {name, digest: {sha256}}",
				   i + 1);
		if (!pack_name_ok(name, why, sizeof(why)) || is_statement_name(name))
			return bad(v, "statement.json", "subject %zu: %s", i + 1,
				   is_statement_name(name) ? "names the statement itself" : why);
		json_array_foreach(subj, j, o)
		{
			if (j < i && strcmp(jstr(o, "name"), name) == 0)
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
			if (strcmp(jstr(s, "name"), f->name) == 0)
				sha = jstr(json_object_get(s, "digest"), "sha256");
		}
		if (!is_statement_name(f->name) && !sha)
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
		const char *name = jstr(s, "name");
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
	const char *s = jstr(obj, key);
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
	int r = audit_verify_fd(v->audit_fd, &av, v->err);
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
	if (!manifest_ok(manifest, why, sizeof(why)))
		return bad(v, "artifacts.json", "%s", why);
	json_t *ra = res ? json_object_get(res, "artifacts") : NULL;
	if (res ? !json_equal(ra, manifest) : json_array_size(manifest) != 0)
		return bad(v, "artifacts.json", "differs from the artifacts result.json lists");
	size_t i;
	json_t *a;
	json_array_foreach(manifest, i, a)
	{
		char path[EVIDENCE_MAX_NAME + 1];
		snprintf(path, sizeof(path), ARTIFACTS_DIR "%s", jstr(a, "name"));
		const struct evidence_file *f = find_file(rep, path);
		if (!rep->artifacts_included)
			continue;
		if (!f)
			return bad(v, path, "in artifacts.json, but its bytes are missing");
		if (strcmp(f->sha256, jstr(a, "sha256")) != 0 ||
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
			listed |= strcmp(jstr(a, "name"), name + ARTIFACTS_DIR_LEN) == 0;
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
	int r = crypto_ready(err);
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
	int r = crypto_ready(err);
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
