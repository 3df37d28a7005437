/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The hash-chained audit log (docs/audit.md).
 *
 * A line is built in three steps. The entry, with "seq" and "prev_hash"
 * added, is dumped as canonical JSON (compact, sorted keys, ASCII only):
 * that is the body. Its SHA-256 is the line's hash. The line written is
 * the body with its closing "}" replaced by ,"hash":"<64 hex>"} and a
 * newline. A verifier gets the body back from the line's text alone (cut
 * the hash field, put the "}" back), so it never has to reproduce
 * jansson's formatting to check a hash.
 *
 * One process writes a file: the chain has one head. audit_open takes an
 * exclusive flock so that a second writer fails at once instead of forking
 * the chain. Within the process the log is safe to share between threads.
 */
#include "audit/audit.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/clock.h"
#include "base/hash.h"

#define HASH_FIELD ",\"hash\":\""
#define HASH_FIELD_LEN (sizeof(HASH_FIELD) - 1)
/* ,"hash":"<hex>"} at the end of every line */
#define HASH_SUFFIX_LEN (HASH_FIELD_LEN + AUDIT_HASH_HEX + 2)

static const char zero_hash[AUDIT_HASH_HEX + 1] =
	"0000000000000000000000000000000000000000000000000000000000000000";

struct audit_log {
	int fd;
	char *path;
	uint64_t seq;
	char last_hash[AUDIT_HASH_HEX + 1];
	off_t size; /* bytes in the file, as far as this writer knows */
	pthread_mutex_t lock;
};

_Static_assert(AUDIT_HASH_HEX == CDN_SHA256_HEX, "an audit hash is a sha256 in hex");

static int crypto_ready(struct cdn_err *err)
{
	/* Idempotent and thread-safe; returns 1 when already done. */
	if (sodium_init() < 0)
		return cdn_err_msg(err, EIO, "audit: libsodium failed to initialise");
	return 0;
}

/*
 * Checks one line (without its newline) on its own: the form of the hash
 * field, the hash over the body, and the chain fields. body is scratch of
 * at least AUDIT_MAX_LINE bytes. 0 with *seq, prev and hash set, or -1
 * with why set.
 */
static int line_check(const char *line, size_t len, char *body, uint64_t *seq,
		      char prev[AUDIT_HASH_HEX + 1], char hash[AUDIT_HASH_HEX + 1], char *why,
		      size_t cap)
{
	if (len == 0) {
		snprintf(why, cap, "empty line");
		return -1;
	}
	if (len + 1 > AUDIT_MAX_LINE) {
		snprintf(why, cap, "line is longer than %d bytes", AUDIT_MAX_LINE);
		return -1;
	}
	const char *suffix = len > HASH_SUFFIX_LEN ? line + len - HASH_SUFFIX_LEN : NULL;
	if (!suffix || memcmp(suffix, HASH_FIELD, HASH_FIELD_LEN) != 0 ||
	    !cdn_sha256_hex_ok(suffix + HASH_FIELD_LEN, AUDIT_HASH_HEX) || line[len - 2] != '"' ||
	    line[len - 1] != '}') {
		snprintf(why, cap,
			 "line does not end with a \"hash\" field of %d lowercase hex digits",
			 AUDIT_HASH_HEX);
		return -1;
	}
	size_t blen = len - HASH_SUFFIX_LEN;
	memcpy(body, line, blen);
	body[blen++] = '}';
	char want[AUDIT_HASH_HEX + 1];
	memcpy(want, suffix + HASH_FIELD_LEN, AUDIT_HASH_HEX);
	want[AUDIT_HASH_HEX] = '\0';
	cdn_sha256_hex(body, blen, hash);
	if (strcmp(hash, want) != 0) {
		snprintf(why, cap, "hash does not match the line's contents: the line was altered");
		return -1;
	}

	/* A matching hash says the line is as written; the checks below say
	 * it was written by a well-behaved writer, and not forged whole. */
	json_error_t jerr;
	json_t *j = json_loadb(body, blen, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	int r = -1;
	const char *ph = NULL;
	json_t *s = j ? json_object_get(j, "seq") : NULL;
	json_t *p = j ? json_object_get(j, "prev_hash") : NULL;
	if (!j)
		snprintf(why, cap, "not a valid JSON object: %s", jerr.text);
	else if (!json_is_object(j))
		snprintf(why, cap, "not a JSON object");
	else if (json_object_get(j, "hash"))
		snprintf(why, cap, "a second \"hash\" field inside the hashed part");
	else if (!json_is_integer(s) || json_integer_value(s) < 1)
		snprintf(why, cap, "missing or invalid \"seq\" (a whole number from 1)");
	else if (!json_is_string(p) ||
		 !cdn_sha256_hex_ok((ph = json_string_value(p)), json_string_length(p)))
		snprintf(why, cap, "missing or invalid \"prev_hash\" (%d lowercase hex digits)",
			 AUDIT_HASH_HEX);
	else
		r = 0;
	if (r == 0) {
		*seq = (uint64_t)json_integer_value(s);
		memcpy(prev, ph, AUDIT_HASH_HEX + 1);
	}
	json_decref(j);
	return r;
}

/* ------------------------------------------------------------------ writer */

/* Reads the file's last line and checks it on its own. */
static int read_tail(struct audit_log *log, off_t size, struct cdn_err *err)
{
	if (size == 0) {
		log->seq = 0;
		memcpy(log->last_hash, zero_hash, sizeof(zero_hash));
		return 0;
	}
	/* The last line and the newline before it: never the whole file. */
	size_t w = size > AUDIT_MAX_LINE + 1 ? AUDIT_MAX_LINE + 1 : (size_t)size;
	off_t start = size - (off_t)w;
	_cleanup_free_ char *buf = malloc(w);
	_cleanup_free_ char *body = malloc(AUDIT_MAX_LINE);
	if (!buf || !body)
		return cdn_err_set(err, ENOMEM, "audit log %s", log->path);
	size_t got = 0;
	while (got < w) {
		ssize_t n = pread(log->fd, buf + got, w - got, start + (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return cdn_err_set(err, errno, "read audit log %s", log->path);
		if (n == 0)
			return cdn_err_msg(err, EINVAL, "audit log %s: shrank while being opened",
					   log->path);
		got += (size_t)n;
	}
	if (buf[w - 1] != '\n')
		return cdn_err_msg(err, EINVAL,
				   "audit log %s: the last line has no newline (an interrupted "
				   "write?); refusing to continue a broken chain",
				   log->path);
	size_t b = w - 1;
	while (b > 0 && buf[b - 1] != '\n')
		b--;
	if (b == 0 && start > 0)
		return cdn_err_msg(err, EINVAL,
				   "audit log %s: the last line is longer than %d bytes", log->path,
				   AUDIT_MAX_LINE);
	char why[200], prev[AUDIT_HASH_HEX + 1];
	if (line_check(buf + b, w - 1 - b, body, &log->seq, prev, log->last_hash, why,
		       sizeof(why)) < 0)
		return cdn_err_msg(err, EINVAL,
				   "audit log %s: the last line does not verify (%s); refusing to "
				   "continue a broken chain",
				   log->path, why);
	return 0;
}

int audit_open(const char *path, struct audit_log **out, struct cdn_err *err)
{
	int r = crypto_ready(err);
	if (r < 0)
		return r;
	/* O_RDWR rather than O_WRONLY: the chain continues from the last
	 * line, which is read through this same fd, so it is this file. */
	_cleanup_close_ int fd =
		open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0)
		return cdn_err_set(err, errno, "audit log %s", path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return cdn_err_set(err, errno, "audit log %s", path);
	if (!S_ISREG(st.st_mode))
		return cdn_err_msg(err, EINVAL, "audit log %s: not a regular file", path);
	/* Two writers would both append "seq N+1" and fork the chain. */
	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		return cdn_err_set(err, errno,
				   "audit log %s: another process is writing it (one writer per "
				   "file)",
				   path);
	/* The size is taken again under the lock. */
	if (fstat(fd, &st) < 0)
		return cdn_err_set(err, errno, "audit log %s", path);

	struct audit_log *log = calloc(1, sizeof(*log));
	if (!log || !(log->path = strdup(path))) {
		free(log);
		return cdn_err_set(err, ENOMEM, "audit log %s", path);
	}
	log->fd = fd;
	log->size = st.st_size;
	r = read_tail(log, st.st_size, err);
	if (r < 0) {
		free(log->path);
		free(log);
		return r;
	}
	pthread_mutex_init(&log->lock, NULL);
	log->fd = cdn_steal_fd(&fd);
	*out = log;
	return 0;
}

/* Builds the line for entry: body, hash field, newline. */
static int build_line(struct audit_log *log, json_t *entry, char **out, size_t *out_len,
		      char hash[AUDIT_HASH_HEX + 1], struct cdn_err *err)
{
	json_t *j = json_copy(entry); /* shallow: the caller's object stays as it was */
	if (!j)
		return cdn_err_set(err, ENOMEM, "audit entry");
	int r = 0;
	if (!json_object_get(j, "timestamp")) {
		char ts[CDN_RFC3339_MAX];
		cdn_rfc3339(cdn_wall_ms(), CDN_TIME_MS, ts, sizeof(ts));
		r = json_object_set_new(j, "timestamp", json_string(ts));
	}
	if (r == 0)
		r = json_object_set_new(j, "seq", json_integer((json_int_t)(log->seq + 1)));
	if (r == 0)
		r = json_object_set_new(j, "prev_hash", json_string(log->last_hash));
	char *body = r == 0 ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII)
			    : NULL;
	json_decref(j);
	if (!body)
		return cdn_err_set(err, ENOMEM, "audit entry: cannot serialise");
	size_t blen = strlen(body);
	size_t len = blen - 1 + HASH_SUFFIX_LEN + 1;
	if (blen < 2 || body[blen - 1] != '}') {
		free(body);
		return cdn_err_msg(err, EINVAL,
				   "audit entry: serialised to something not an object");
	}
	if (len > AUDIT_MAX_LINE) {
		free(body);
		return cdn_err_msg(err, EMSGSIZE, "audit entry of %zu bytes (limit %d)", len,
				   AUDIT_MAX_LINE);
	}
	cdn_sha256_hex(body, blen, hash);
	char *line = malloc(len + 1); /* and snprintf's NUL, not written */
	if (!line) {
		free(body);
		return cdn_err_set(err, ENOMEM, "audit entry");
	}
	memcpy(line, body, blen - 1);
	free(body);
	snprintf(line + blen - 1, len + 1 - (blen - 1), "%s%s\"}\n", HASH_FIELD, hash);
	*out = line;
	*out_len = len;
	return 0;
}

static int append_locked(struct audit_log *log, json_t *entry, bool sync, struct cdn_err *err)
{
	if (!json_is_object(entry))
		return cdn_err_msg(err, EINVAL, "audit entry: not a JSON object");
	static const char *const reserved[] = { "seq", "prev_hash", "hash" };
	for (size_t i = 0; i < CDN_ARRAY_SIZE(reserved); i++)
		if (json_object_get(entry, reserved[i]))
			return cdn_err_msg(err, EINVAL,
					   "audit entry: \"%s\" is set by the audit log",
					   reserved[i]);
	if (log->fd < 0)
		return cdn_err_msg(err, EIO, "audit log %s: an earlier write failed", log->path);
	if (log->seq >= (uint64_t)INT64_MAX)
		return cdn_err_msg(err, EOVERFLOW, "audit log %s", log->path);

	_cleanup_free_ char *line = NULL;
	size_t len = 0;
	char hash[AUDIT_HASH_HEX + 1];
	int r = build_line(log, entry, &line, &len, hash, err);
	if (r < 0)
		return r;
	/* One write(2) per line: with O_APPEND the line lands whole at the
	 * end, and a reader never sees half of it (regular files). */
	ssize_t n;
	do
		n = write(log->fd, line, len);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)len) {
		int e = n < 0 ? errno : EIO;
		struct stat st;
		/* A short write (disk full) leaves a torn last line that would
		 * stop audit_open. Cut it off if the file is as we left it;
		 * else stop writing: the chain is someone else's problem now. */
		if (n > 0 &&
		    !(fstat(log->fd, &st) == 0 && st.st_size == log->size + n &&
		      ftruncate(log->fd, log->size) == 0)) {
			close(log->fd);
			log->fd = -1;
		}
		return cdn_err_set(err, e, "audit log %s: write", log->path);
	}
	log->size += n;
	log->seq++;
	memcpy(log->last_hash, hash, sizeof(hash));
	if (sync && fdatasync(log->fd) < 0)
		return cdn_err_set(err, errno, "audit log %s: fdatasync", log->path);
	return 0;
}

int audit_append(struct audit_log *log, json_t *entry, bool sync, struct cdn_err *err)
{
	if (!log)
		return cdn_err_set(err, EBADF, "audit log");
	pthread_mutex_lock(&log->lock);
	int r = append_locked(log, entry, sync, err);
	pthread_mutex_unlock(&log->lock);
	return r;
}

const char *audit_last_hash(const struct audit_log *log)
{
	return log ? log->last_hash : zero_hash;
}

uint64_t audit_last_seq(const struct audit_log *log)
{
	return log ? log->seq : 0;
}

void audit_close(struct audit_log *log)
{
	if (!log)
		return;
	if (log->fd >= 0)
		close(log->fd);
	pthread_mutex_destroy(&log->lock);
	free(log->path);
	free(log);
}

/* ---------------------------------------------------------------- verifier */

struct line_reader {
	int fd;
	char *buf;
	size_t cap, start, end;
	bool eof;
};

enum read_result { LR_LINE, LR_LAST_NO_NEWLINE, LR_TOO_LONG, LR_END };

/* The next line, without its newline, in bounded memory. */
static int next_line(struct line_reader *rd, const char **line, size_t *len, enum read_result *res)
{
	for (;;) {
		char *nl = memchr(rd->buf + rd->start, '\n', rd->end - rd->start);
		if (nl) {
			*line = rd->buf + rd->start;
			*len = (size_t)(nl - *line);
			rd->start += *len + 1;
			*res = *len + 1 > AUDIT_MAX_LINE ? LR_TOO_LONG : LR_LINE;
			return 0;
		}
		if (rd->end - rd->start >= AUDIT_MAX_LINE) {
			*res = LR_TOO_LONG;
			return 0;
		}
		if (rd->eof) {
			*line = rd->buf + rd->start;
			*len = rd->end - rd->start;
			rd->start = rd->end;
			*res = *len ? LR_LAST_NO_NEWLINE : LR_END;
			return 0;
		}
		memmove(rd->buf, rd->buf + rd->start, rd->end - rd->start);
		rd->end -= rd->start;
		rd->start = 0;
		ssize_t n = read(rd->fd, rd->buf + rd->end, rd->cap - rd->end);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			rd->eof = true;
		else
			rd->end += (size_t)n;
	}
}

int audit_verify_file(const char *path, struct audit_verify *res, struct cdn_err *err)
{
	uint64_t mark = res->mark_line;
	memset(res, 0, sizeof(*res));
	res->mark_line = mark;
	memcpy(res->last_hash, zero_hash, sizeof(zero_hash));
	int r = crypto_ready(err);
	if (r < 0)
		return r;
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return cdn_err_set(err, errno, "audit log %s", path);
	/* Twice the longest line, so one read usually brings several. */
	_cleanup_free_ char *buf = malloc(2 * (size_t)AUDIT_MAX_LINE);
	_cleanup_free_ char *body = malloc(AUDIT_MAX_LINE);
	if (!buf || !body)
		return cdn_err_set(err, ENOMEM, "audit log %s", path);
	struct line_reader rd = { .fd = fd, .buf = buf, .cap = 2 * (size_t)AUDIT_MAX_LINE };

	uint64_t want_seq = 1;
	char prev_hash[AUDIT_HASH_HEX + 1];
	memcpy(prev_hash, zero_hash, sizeof(zero_hash));
	for (uint64_t lineno = 1;; lineno++) {
		const char *line;
		size_t len;
		enum read_result rr;
		r = next_line(&rd, &line, &len, &rr);
		if (r < 0)
			return cdn_err_set(err, -r, "read audit log %s", path);
		if (rr == LR_END)
			return 0;
		res->bad_line = lineno;
		if (rr == LR_TOO_LONG) {
			snprintf(res->reason, sizeof(res->reason), "line is longer than %d bytes",
				 AUDIT_MAX_LINE);
			return 1;
		}
		if (rr == LR_LAST_NO_NEWLINE) {
			snprintf(res->reason, sizeof(res->reason),
				 "the last line has no newline (an interrupted write?)");
			return 1;
		}
		uint64_t seq;
		char prev[AUDIT_HASH_HEX + 1], hash[AUDIT_HASH_HEX + 1];
		if (line_check(line, len, body, &seq, prev, hash, res->reason,
			       sizeof(res->reason)) < 0)
			return 1;
		if (seq != want_seq) {
			snprintf(res->reason, sizeof(res->reason),
				 "seq is %llu, expected %llu: lines were removed or reordered",
				 (unsigned long long)seq, (unsigned long long)want_seq);
			return 1;
		}
		if (strcmp(prev, prev_hash) != 0 && lineno == 1) {
			snprintf(res->reason, sizeof(res->reason),
				 "prev_hash of the first line is not %d zeros", AUDIT_HASH_HEX);
			return 1;
		}
		if (strcmp(prev, prev_hash) != 0) {
			snprintf(res->reason, sizeof(res->reason),
				 "prev_hash does not match the hash of line %llu: that line was "
				 "replaced",
				 (unsigned long long)(lineno - 1));
			return 1;
		}
		res->bad_line = 0;
		res->lines = lineno;
		memcpy(prev_hash, hash, sizeof(hash));
		memcpy(res->last_hash, hash, sizeof(hash));
		if (lineno == res->mark_line)
			memcpy(res->mark_hash, hash, sizeof(hash));
		want_seq++;
	}
}
