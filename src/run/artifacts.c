/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Artifact collection (the rules are in artifacts.h).
 *
 * The directory belonged to the agent, so every entry is hostile until
 * shown otherwise: it is looked at with fstatat(AT_SYMLINK_NOFOLLOW), then
 * opened with O_NOFOLLOW|O_NONBLOCK and checked again on the fd, which is
 * what gets read. A symlink to /etc/passwd is never followed, a fifo never
 * blocks the collector, and a hard link to a file the agent should not
 * publish (st_nlink > 1) is refused. Reads stop at the limit, so a file
 * that grows while it is read is still bounded.
 */
#define _GNU_SOURCE
#include "run/artifacts.h"
#include "vault/redact.h"

#include <ctype.h>
#include <dirent.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/file.h"
#include "base/openat2.h"
#include "base/text.h"

#define ARTIFACT_DIR_MODE 0755
#define ARTIFACT_FILE_MODE 0644
#define ARTIFACT_EXT_KEEP 16 /* bytes of an extension kept when a long name is cut */
#define ARTIFACT_SIZE_TEXT 32
#define SCAN_WINDOW (1 << 20) /* bytes read at a time when looking for secrets */

/*
 * Documents, data, logs and images: formats a reader opens, not runs. No
 * scripts or binaries (sh, py, exe, so...), which a careless download
 * would execute. html and svg can hold scripts when rendered: whatever
 * serves artifacts must send them as attachments.
 */
static const char *const default_extensions[] = {
	/* text and data */
	"txt", "md", "json", "jsonl", "ndjson", "csv", "tsv", "log", "html", "xml", "yaml", "yml",
	"toml", "diff", "patch",
	/* images and documents */
	"png", "jpg", "jpeg", "gif", "webp", "svg", "pdf",
	/* archives (not unpacked by cordon) */
	"zip", "gz", "tar",
	NULL,
};

const char *const *artifact_default_extensions(void)
{
	return default_extensions;
}

void artifact_limits_default(struct artifact_limits *lim)
{
	lim->max_files = ARTIFACT_DEFAULT_MAX_FILES;
	lim->max_file_bytes = ARTIFACT_DEFAULT_MAX_FILE;
	lim->max_total_bytes = ARTIFACT_DEFAULT_MAX_TOTAL;
	lim->extensions = default_extensions;
	lim->n_extensions = CDN_ARRAY_SIZE(default_extensions) - 1;
}

/* ------------------------------------------------------------------ names */

static bool keep_byte(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

static bool has_alnum(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9'))
			return true;
	return false;
}

/* The extension's offset in name (at its '.'), or len when there is none. */
static size_t ext_at(const char *name, size_t len)
{
	const char *dot = memrchr(name, '.', len);
	return dot && dot != name ? (size_t)(dot - name) : len;
}

int artifact_sanitize(const char *in, char *out, size_t cap)
{
	if (!out || cap == 0)
		return -EINVAL;
	out[0] = '\0';
	if (!in)
		return -EINVAL;
	size_t max = cap - 1 < ARTIFACT_NAME_MAX ? cap - 1 : ARTIFACT_NAME_MAX;
	size_t inlen = strlen(in);
	_cleanup_free_ char *tmp = malloc(inlen + 1);
	if (!tmp)
		return -ENOMEM;
	/* Every other byte (a '/', a space, each byte of a UTF-8 character)
	 * becomes '_', one per run: the name stays a single plain path
	 * component on every filesystem and in every shell. */
	size_t n = 0;
	bool in_run = false;
	for (size_t i = 0; i < inlen; i++) {
		unsigned char c = (unsigned char)in[i];
		if (keep_byte(c)) {
			tmp[n++] = (char)c;
			in_run = false;
		} else if (!in_run) {
			tmp[n++] = '_';
			in_run = true;
		}
	}
	/* No leading dots: no hidden files, and never "." or "..". */
	size_t start = 0;
	while (start < n && tmp[start] == '.')
		start++;
	const char *name = tmp + start;
	size_t len = n - start;
	if (len > max) {
		/* Cut the stem, keep a short extension: "report.pdf" stays a pdf. */
		size_t e = ext_at(name, len);
		size_t ext = len - e;
		if (ext > ARTIFACT_EXT_KEEP + 1 || ext >= max)
			ext = 0;
		memcpy(out, name, max - ext);
		memcpy(out + max - ext, name + len - ext, ext);
		len = max;
	} else {
		memcpy(out, name, len);
	}
	out[len] = '\0';
	if (!has_alnum(out, len)) {
		out[0] = '\0';
		return -EINVAL;
	}
	return 0;
}

static void size_text(uint64_t bytes, char out[ARTIFACT_SIZE_TEXT])
{
	if (bytes && bytes % (1ull << 20) == 0)
		snprintf(out, ARTIFACT_SIZE_TEXT, "%llu MiB", (unsigned long long)(bytes >> 20));
	else if (bytes && bytes % 1024 == 0)
		snprintf(out, ARTIFACT_SIZE_TEXT, "%llu KiB", (unsigned long long)(bytes >> 10));
	else
		snprintf(out, ARTIFACT_SIZE_TEXT, "%llu bytes", (unsigned long long)bytes);
}

/* ------------------------------------------------------------- collection */

struct collector {
	struct store *s;
	int out_fd;
	const char *dest_dir;
	struct artifact_limits lim;
	struct artifact_result *res;
	size_t saved_cap, skipped_cap;
	uint64_t total;
	struct cdn_err *err;
};

static int skip(struct collector *c, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int skip(struct collector *c, const char *name, const char *fmt, ...)
{
	struct artifact_result *res = c->res;
	if (res->n_skipped == c->skipped_cap) {
		size_t nc = c->skipped_cap ? c->skipped_cap * 2 : 16;
		struct artifact_skip *nv = realloc(res->skipped, nc * sizeof(*nv));
		if (!nv)
			return cdn_err_set(c->err, ENOMEM, "artifacts");
		res->skipped = nv;
		c->skipped_cap = nc;
	}
	struct artifact_skip *sk = &res->skipped[res->n_skipped++];
	memset(sk, 0, sizeof(*sk));
	cdn_printable_str(sk->name, sizeof(sk->name), name, 0);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sk->reason, sizeof(sk->reason), fmt, ap);
	va_end(ap);
	return 0;
}

static bool ext_allowed(const struct collector *c, const char *ext)
{
	for (size_t i = 0; i < c->lim.n_extensions; i++)
		if (c->lim.extensions[i] && !strcasecmp(ext, c->lim.extensions[i]))
			return true;
	return false;
}

static bool name_taken(const struct collector *c, const char *name)
{
	/* Case-insensitively: "A.txt" and "a.txt" are one file once
	 * downloaded to macOS or Windows. */
	for (size_t i = 0; i < c->res->n_saved; i++)
		if (!strcasecmp(c->res->saved[i].name, name))
			return true;
	return false;
}

/* clean, or clean with "-1", "-2"... before its extension, within the
 * name bound. */
static int unique_name(const struct collector *c, const char *clean, char *out, size_t cap)
{
	snprintf(out, cap, "%s", clean);
	size_t len = strlen(clean);
	size_t e = ext_at(clean, len);
	/* The first n_saved + 1 suffixes cannot all be taken. */
	for (size_t k = 1; name_taken(c, out); k++) {
		if (k > c->res->n_saved + 1)
			return -EEXIST;
		char suffix[24];
		int sl = snprintf(suffix, sizeof(suffix), "-%zu", k);
		size_t ext = len - e;
		size_t stem = e;
		if (stem + (size_t)sl + ext > ARTIFACT_NAME_MAX)
			stem = ARTIFACT_NAME_MAX - (size_t)sl - ext;
		snprintf(out, cap, "%.*s%s%s", (int)stem, clean, suffix, clean + e);
	}
	return 0;
}

/* Scans the file for secret values in overlapping windows; *which is the
 * marker of the first found. Leaves the offset at 0. */
static int holds_secret(const struct redactor *red, int fd, uint64_t size, const char **which)
{
	size_t keep = redact_longest(red) ? redact_longest(red) - 1 : 0;
	size_t win = SCAN_WINDOW + keep;
	_cleanup_free_ char *buf = malloc(win);
	if (!buf) {
		errno = ENOMEM;
		return -1;
	}
	size_t have = 0;
	uint64_t off = 0;
	*which = NULL;
	while (off < size) {
		ssize_t n = pread(fd, buf + have, win - have, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		off += (uint64_t)n;
		have += (size_t)n;
		if ((*which = redact_find(red, buf, have)))
			return 0;
		size_t k = have < keep ? have : keep;
		memmove(buf, buf + have - k, k);
		have = k;
	}
	return 0;
}

static int save(struct collector *c, const char *name, const char *clean, int fd)
{
	uint64_t room_total = c->lim.max_total_bytes - c->total;
	uint64_t room = c->lim.max_file_bytes < room_total ? c->lim.max_file_bytes : room_total;
	char hex[STORE_HASH_HEX + 1], limit[ARTIFACT_SIZE_TEXT];
	uint64_t got = 0;
	int r = store_blob_put_fd(c->s, fd, room, hex, &got, c->err);
	if (r == -E2BIG) {
		/* It grew while being read: still bounded, and still reported. */
		if (room == c->lim.max_file_bytes) {
			size_text(c->lim.max_file_bytes, limit);
			return skip(c, name, "larger than %s", limit);
		}
		size_text(c->lim.max_total_bytes, limit);
		return skip(c, name, "total over %s", limit);
	}
	if (r < 0)
		return cdn_err_wrap(c->err, "artifacts: store %s", clean);
	char final[ARTIFACT_NAME_MAX + 1];
	if (unique_name(c, clean, final, sizeof(final)) < 0)
		return cdn_err_msg(c->err, EEXIST, "artifacts: no free name for %s", clean);
	_cleanup_free_ char *path = NULL;
	if (asprintf(&path, "%s/%s", c->dest_dir, final) < 0) {
		path = NULL;
		return cdn_err_set(c->err, ENOMEM, "artifacts");
	}
	/* The copy is made from the blob, so it holds exactly the bytes
	 * hashed, whatever happens to the agent's file meanwhile. */
	if ((r = store_blob_export(c->s, hex, path, ARTIFACT_FILE_MODE, c->err)) < 0)
		return cdn_err_wrap(c->err, "artifacts");

	struct artifact_result *res = c->res;
	if (res->n_saved == c->saved_cap) {
		size_t nc = c->saved_cap ? c->saved_cap * 2 : 8;
		struct artifact *nv = realloc(res->saved, nc * sizeof(*nv));
		if (!nv)
			return cdn_err_set(c->err, ENOMEM, "artifacts");
		res->saved = nv;
		c->saved_cap = nc;
	}
	struct artifact *a = &res->saved[res->n_saved++];
	memset(a, 0, sizeof(*a));
	snprintf(a->name, sizeof(a->name), "%s", final);
	cdn_printable_str(a->original, sizeof(a->original), name, 0);
	memcpy(a->sha256, hex, sizeof(a->sha256));
	a->size = got;
	c->total += got;
	return 0;
}

static int collect_one(struct collector *c, const char *name)
{
	struct stat st;
	char limit[ARTIFACT_SIZE_TEXT];
	if (fstatat(c->out_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return skip(c, name, "could not be read: %s", strerror(errno));
	if (S_ISLNK(st.st_mode))
		return skip(c, name, "symlink");
	if (S_ISDIR(st.st_mode))
		return skip(c, name, "directory");
	if (!S_ISREG(st.st_mode))
		return skip(c, name, "not a regular file");
	char clean[ARTIFACT_NAME_MAX + 1];
	if (artifact_sanitize(name, clean, sizeof(clean)) < 0)
		return skip(c, name, "name has no usable characters");
	size_t len = strlen(clean), e = ext_at(clean, len);
	if (e + 1 >= len)
		return skip(c, name, "no extension (only allowed extensions are kept)");
	if (!ext_allowed(c, clean + e + 1))
		return skip(c, name, "extension '%s' is not allowed", clean + e);

	_cleanup_close_ int fd =
		openat(c->out_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return errno == ELOOP ? skip(c, name, "symlink")
				      : skip(c, name, "could not be opened: %s", strerror(errno));
	if (fstat(fd, &st) < 0)
		return skip(c, name, "could not be read: %s", strerror(errno));
	if (!S_ISREG(st.st_mode))
		return skip(c, name, "not a regular file");
	if (st.st_nlink > 1)
		return skip(c, name, "hard link");
	uint64_t size = (uint64_t)st.st_size;
	if (size > c->lim.max_file_bytes) {
		size_text(c->lim.max_file_bytes, limit);
		return skip(c, name, "larger than %s", limit);
	}
	if (c->res->n_saved >= c->lim.max_files)
		return skip(c, name, "more than %u files", (unsigned)c->lim.max_files);
	if (size > c->lim.max_total_bytes - c->total) {
		size_text(c->lim.max_total_bytes, limit);
		return skip(c, name, "total over %s", limit);
	}
	if (c->lim.secrets && redact_find(c->lim.secrets, name, strlen(name)))
		return skip(c, name, "its name holds a secret value");
	if (c->lim.secrets) {
		const char *which = NULL;
		if (holds_secret(c->lim.secrets, fd, size, &which) < 0)
			return skip(c, name, "could not be read: %s", strerror(errno));
		if (which)
			return skip(c, name, "holds a secret value %s", which);
	}
	return save(c, name, clean, fd);
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* At most ARTIFACT_SCAN_MAX names, sorted; *more when the directory has
 * others. */
static int read_names(int dirfd, char ***out, size_t *n, bool *more)
{
	int r = cdn_dir_names(dirfd, ARTIFACT_SCAN_MAX, more, out, n);
	if (r < 0)
		return r;
	/* readdir order is the filesystem's; sorted, the same files give the
	 * same result, suffixes included. */
	if (*n)
		qsort(*out, *n, sizeof(**out), name_cmp);
	return 0;
}

int artifacts_collect(int out_dirfd, struct store *s, const char *dest_dir,
		      const struct artifact_limits *lim, struct artifact_result *res,
		      struct cdn_err *err)
{
	memset(res, 0, sizeof(*res));
	if (!dest_dir || !*dest_dir)
		return cdn_err_msg(err, EINVAL, "artifacts: no destination directory");
	struct collector c = { .s = s, .out_fd = out_dirfd, .dest_dir = dest_dir, .res = res,
			       .err = err };
	artifact_limits_default(&c.lim);
	if (lim) {
		if (lim->max_files)
			c.lim.max_files = lim->max_files;
		if (lim->max_file_bytes)
			c.lim.max_file_bytes = lim->max_file_bytes;
		if (lim->max_total_bytes)
			c.lim.max_total_bytes = lim->max_total_bytes;
		if (lim->extensions) {
			c.lim.extensions = lim->extensions;
			c.lim.n_extensions = lim->n_extensions;
		}
		c.lim.secrets = lim->secrets;
	}
	if (mkdir(dest_dir, ARTIFACT_DIR_MODE) < 0 && errno != EEXIST)
		return cdn_err_set(err, errno, "artifacts: mkdir %s", dest_dir);
	struct stat st;
	if (lstat(dest_dir, &st) < 0)
		return cdn_err_set(err, errno, "artifacts: stat %s", dest_dir);
	if (!S_ISDIR(st.st_mode))
		return cdn_err_msg(err, ENOTDIR, "artifacts: %s", dest_dir);
	if (out_dirfd < 0)
		return 0;

	char **names;
	size_t n;
	bool more;
	int r = read_names(out_dirfd, &names, &n, &more);
	if (r < 0)
		return cdn_err_set(err, r, "artifacts: read the output directory");
	for (size_t i = 0; r == 0 && i < n; i++)
		r = collect_one(&c, names[i]);
	cdn_names_free(names, n);
	if (r == 0 && more)
		r = skip(&c, "...", "more than %d entries in the output directory: the rest were "
			 "not looked at", ARTIFACT_SCAN_MAX);
	if (r < 0)
		artifacts_result_free(res);
	return r;
}

void artifacts_result_free(struct artifact_result *res)
{
	if (!res)
		return;
	free(res->saved);
	free(res->skipped);
	memset(res, 0, sizeof(*res));
}

bool artifact_name_ok(const char *name)
{
	size_t n = name ? strnlen(name, ARTIFACT_NAME_MAX + 1) : 0;
	if (n == 0 || n > ARTIFACT_NAME_MAX || name[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && name[i] != '.' && name[i] != '_' &&
		    name[i] != '-')
			return false;
	return true;
}

int artifact_save(int ws_fd, const char *name, const uint8_t *data, size_t len, uid_t uid,
		  gid_t gid, struct cdn_err *err)
{
	/* The name comes from the agent (through the network part): the same
	 * grammar the MCP layer enforces, checked again here, where the file
	 * is made. */
	if (!artifact_name_ok(name))
		return cdn_err_msg(err, EINVAL, "not a valid artifact name");
	if (ws_fd < 0)
		return cdn_err_msg(err, EAGAIN, "the workspace is not ready");
	char rel[ARTIFACT_NAME_MAX + 8];
	snprintf(rel, sizeof(rel), "out/%s", name);
	/* Made as the sandbox user, whose ids the sandbox's file system knows
	 * (host root's it does not); the file system ids of this thread only. */
	uid_t ouid = (uid_t)setfsuid(uid);
	gid_t ogid = (gid_t)setfsgid(gid);
	int fd = cdn_openat2(ws_fd, rel, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644,
			     RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
				 RESOLVE_NO_XDEV);
	int saved = errno;
	setfsgid(ogid);
	setfsuid(ouid);
	if (fd < 0 && saved == EEXIST)
		return cdn_err_msg(err, EEXIST, "an artifact named %s exists already", name);
	if (fd < 0)
		return cdn_err_msg(err, saved, "cannot create artifact %s: %s", name,
				   strerror(saved));
	_cleanup_close_ int cfd = fd;
	if (cdn_write_all(cfd, data, len) < 0)
		return cdn_err_msg(err, EIO, "cannot write artifact %s (is the workspace full?)",
				   name);
	return 0;
}

bool artifact_listed(const char *result_json, const char *name)
{
	json_t *res = result_json ? json_loads(result_json, 0, NULL) : NULL;
	bool found = false;
	size_t i;
	json_t *a;
	json_array_foreach(json_object_get(res, "artifacts"), i, a)
		if (strcmp(json_string_value(json_object_get(a, "name")) ?: "", name) == 0)
			found = true;
	json_decref(res);
	return found;
}
