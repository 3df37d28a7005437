/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Trees, the read-back half: a stored listing read, parsed strictly and
 * checked by the same rules as an import, then checked out as a read-only
 * directory, or one of its files read from its blob; and scratch
 * directories for uploads (docs/state.md, Trees).
 */
#define _GNU_SOURCE
#include "store/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/file.h"
#include "base/hash.h"
#include "base/random.h"
#include "base/text.h"


int store_tree_listing(struct store *s, const char *hash, char **listing, size_t *len,
		       struct cdn_err *err)
{
	*listing = NULL;
	*len = 0;
	int r = store_hash_check(hash, "a tree hash (64 lowercase hex digits)", err);
	if (r < 0)
		return r;
	_cleanup_close_ int fd = -1;
	struct stat st;
	r = store_blob_open(s, hash, &fd, &st, err);
	if (r == -ENOENT)
		return cdn_err_set(err, ENOENT, "store: tree %s is not stored", hash);
	if (r < 0)
		return r;
	if (st.st_size > TREE_LISTING_MAX)
		return cdn_err_msg(err, E2BIG, "store: tree %s: the listing is over %u bytes", hash,
				   TREE_LISTING_MAX);
	_cleanup_free_ char *buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return cdn_err_set(err, ENOMEM, "store: tree %s", hash);
	size_t got = 0;
	for (;;) {
		/* Read one byte past the size seen: a blob never grows. */
		ssize_t n = store_read_some(fd, buf + got, (size_t)st.st_size + 1 - got);
		if (n < 0)
			return cdn_err_set(err, (int)n, "store: read tree %s", hash);
		if (n == 0)
			break;
		got += (size_t)n;
		if (got > (size_t)st.st_size)
			return cdn_err_msg(err, EIO, "store: tree %s changed while being read",
					   hash);
	}
	char actual[STORE_HASH_HEX + 1];
	cdn_sha256_hex(buf, got, actual);
	if (strcmp(actual, hash) != 0)
		return cdn_err_msg(err, EIO, "store: tree %s: the listing does not match its hash "
				   "(damaged on disk)", hash);
	buf[got] = '\0';
	*len = got;
	*listing = cdn_steal(&buf);
	return 0;
}

/* One line of a listing read back, pointing into the (modified) buffer. */
struct listing_entry {
	const char *path;
	bool dir;
	const char *target; /* a symlink's, NUL-terminated in the buffer; or NULL */
	unsigned mode;
	uint64_t size;
	const char *hash; /* NUL-terminated in the buffer */
};

static bool parse_size(const char *p, size_t n, uint64_t *out)
{
	/* Canonical decimal only: "0" or no leading zero, so one tree has one
	 * listing. */
	if (n == 0 || n > TREE_SIZE_DIGITS || (n > 1 && p[0] == '0'))
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		unsigned dgt = (unsigned)(p[i] - '0');
		if (v > (UINT64_MAX - dgt) / 10)
			return false;
		v = v * 10 + dgt;
	}
	*out = v;
	return true;
}

/* Parses one line (without its '\n', NUL-terminated in place). */
static bool parse_line(char *line, size_t len, struct listing_entry *e)
{
	memset(e, 0, sizeof(*e));
	if (len > 4 && !memcmp(line, "dir ", 4)) {
		e->dir = true;
		e->path = line + 4;
		return store_tree_path_ok(e->path, len - 4);
	}
	/* "link <target length> <target> <path>": the length, because a
	 * target and a path may both hold spaces. */
	if (len > 5 && !memcmp(line, "link ", 5)) {
		char *num = line + 5;
		char *sp = memchr(num, ' ', len - 5);
		uint64_t tl;
		if (!sp || !parse_size(num, (size_t)(sp - num), &tl) || tl == 0 ||
		    tl > TREE_PATH_MAX)
			return false;
		char *t = sp + 1;
		size_t left = len - (size_t)(t - line);
		if (left < tl + 2 || t[tl] != ' ')
			return false;
		t[tl] = '\0';
		if (!store_tree_target_ok(t, (size_t)tl))
			return false;
		e->target = t;
		e->path = t + tl + 1;
		return store_tree_path_ok(e->path, left - (size_t)tl - 1);
	}
	/* "<mode> <hash> <size> <path>" */
	if (len < 5 + STORE_HASH_HEX + 1 + 1 + 1 + 1)
		return false;
	if (!memcmp(line, "0644 ", 5))
		e->mode = 0644;
	else if (!memcmp(line, "0755 ", 5))
		e->mode = 0755;
	else
		return false;
	char *h = line + 5;
	if (h[STORE_HASH_HEX] != ' ')
		return false;
	h[STORE_HASH_HEX] = '\0';
	if (!cdn_sha256_hex_str_ok(h))
		return false;
	e->hash = h;
	char *sz = h + STORE_HASH_HEX + 1;
	char *sp = memchr(sz, ' ', len - (size_t)(sz - line));
	if (!sp || !parse_size(sz, (size_t)(sp - sz), &e->size))
		return false;
	e->path = sp + 1;
	return store_tree_path_ok(e->path, len - (size_t)(e->path - line));
}

static bool listing_has_dir(const struct listing_entry *v, size_t n, const char *path, size_t len)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strncmp(v[mid].path, path, len);
		if (c == 0 && v[mid].path[len] != '\0')
			c = 1;
		if (c == 0)
			return v[mid].dir;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

static int listing_links_check(const struct listing_entry *e, size_t n, const char *hash,
			       struct cdn_err *err)
{
	size_t links = 0;
	for (size_t i = 0; i < n; i++)
		links += e[i].target != NULL;
	if (!links)
		return 0;
	_cleanup_free_ struct tree_node *v = calloc(n, sizeof(*v));
	if (!v)
		return cdn_err_set(err, ENOMEM, "store: tree %s", hash);
	for (size_t i = 0; i < n; i++)
		v[i] = (struct tree_node){ .path = e[i].path,
					   .kind = e[i].dir ? 'd' : e[i].target ? 'l' : 'f',
					   .target = e[i].target };
	const char *bad = NULL, *why = NULL;
	if (store_tree_links_check(v, n, &bad, &why) == 0)
		return 0;
	char shown[SHOWN_MAX];
	cdn_printable_str(shown, sizeof(shown), bad, 0);
	return cdn_err_msg(err, EIO, "store: tree %s: the listing's symlink %s: %s", hash, shown,
			   why);
}

/* Splits a listing into entries, checking every rule the writer follows:
 * the checkout below trusts nothing that was not checked here. */
static int listing_parse(char *buf, size_t len, struct listing_entry **out, size_t *n,
			 const char *hash, struct cdn_err *err)
{
	size_t lines = 0;
	for (size_t i = 0; i < len; i++)
		lines += buf[i] == '\n';
	if (len && buf[len - 1] != '\n')
		return cdn_err_msg(err, EIO, "store: tree %s: the listing does not end with a "
				   "newline", hash);
	struct listing_entry *v = calloc(lines ? lines : 1, sizeof(*v));
	if (!v)
		return cdn_err_set(err, ENOMEM, "store: tree %s", hash);
	size_t count = 0;
	char *p = buf;
	while (p < buf + len) {
		char *nl = memchr(p, '\n', (size_t)(buf + len - p));
		*nl = '\0';
		struct listing_entry *e = &v[count];
		bool ok = parse_line(p, (size_t)(nl - p), e);
		/* Sorted strictly: no duplicates, one order. */
		if (ok && count && strcmp(v[count - 1].path, e->path) >= 0)
			ok = false;
		const char *slash = ok ? strrchr(e->path, '/') : NULL;
		if (ok && slash && !listing_has_dir(v, count, e->path, (size_t)(slash - e->path)))
			ok = false;
		if (!ok) {
			free(v);
			return cdn_err_msg(err, EIO, "store: tree %s: line %zu of the listing is "
					   "malformed", hash, count + 1);
		}
		count++;
		p = nl + 1;
	}
	/* The links of a listing read back are held to the import's rules:
	 * a listing written by hand (or damaged) must not make a checkout
	 * whose links lead out of it. */
	int r = listing_links_check(v, count, hash, err);
	if (r < 0) {
		free(v);
		return r;
	}
	*out = v;
	*n = count;
	return 0;
}

/* Opens the directory that holds path inside root; *base is its last name. */
static int open_parent_in(int root, const char *path, int *out, const char **base)
{
	char buf[TREE_PATH_MAX + 1];
	snprintf(buf, sizeof(buf), "%s", path);
	const char *slash = strrchr(path, '/');
	*base = slash ? slash + 1 : path;
	int fd = openat(root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (!slash) {
		*out = fd;
		return 0;
	}
	buf[slash - path] = '\0';
	char *save = NULL;
	for (char *c = strtok_r(buf, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		int next = openat(fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int e = errno;
		close(fd);
		if (next < 0)
			return -e;
		fd = next;
	}
	*out = fd;
	return 0;
}

static int checkout_fill(struct store *s, int root, const struct listing_entry *v, size_t n,
			 const char *hash, struct cdn_err *err)
{
	/* The directory of the last entry stays open: entries of one
	 * directory mostly come together, and opening each parent again from
	 * the root cost most of a large checkout's system calls. */
	_cleanup_close_ int pfd = -1;
	size_t plen = 0;
	const char *ppath = NULL;
	for (size_t i = 0; i < n; i++) {
		const struct listing_entry *e = &v[i];
		char shown[SHOWN_MAX];
		cdn_printable_str(shown, sizeof(shown), e->path, 0);
		const char *slash = strrchr(e->path, '/');
		size_t len = slash ? (size_t)(slash - e->path) : 0;
		const char *base = slash ? slash + 1 : e->path;
		if (pfd < 0 || len != plen || (len && memcmp(ppath, e->path, len) != 0)) {
			if (pfd >= 0)
				close(pfd);
			pfd = -1;
			int r = open_parent_in(root, e->path, &pfd, &base);
			if (r < 0)
				return cdn_err_set(err, r, "store: checkout %s: %s", hash, shown);
			ppath = e->path;
			plen = len;
		}
		int r;
		if (e->dir) {
			/* 0755 leaves the owner able to fill it; the mode is set
			 * again because mkdir obeys the umask. */
			if (mkdirat(pfd, base, CHECKOUT_DIR_MODE) < 0 ||
			    fchmodat(pfd, base, CHECKOUT_DIR_MODE, 0) < 0)
				return cdn_err_set(err, errno, "store: checkout %s: mkdir %s", hash,
						   shown);
			continue;
		}
		if (e->target) {
			/* The link as it was, relative: checked to resolve inside
			 * the tree, so it does wherever the checkout is bound. */
			if (symlinkat(e->target, pfd, base) < 0)
				return cdn_err_set(err, errno, "store: checkout %s: symlink %s",
						   hash, shown);
			continue;
		}
		int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
		_cleanup_close_ int out = openat(pfd, base, flags, 0600);
		if (out < 0)
			return cdn_err_set(err, errno, "store: checkout %s: create %s", hash,
					   shown);
		if ((r = store_blob_copy_checked(s, e->hash, out, err)) < 0)
			return cdn_err_wrap(err, "checkout %s: %s", hash, shown);
		struct stat st;
		if (fstat(out, &st) < 0 || (uint64_t)st.st_size != e->size)
			return cdn_err_msg(err, EIO, "store: checkout %s: %s: the blob's size is "
					   "not the listing's", hash, shown);
		/* Read-only copies: a sandbox bind of the checkout must not be
		 * able to change what the next run gets. */
		if (fchmod(out, e->mode == 0755 ? 0555 : 0444) < 0)
			return cdn_err_set(err, errno, "store: checkout %s: chmod %s", hash, shown);
	}
	return 0;
}

int store_tree_file_read(struct store *s, const char *hash, const char *path, size_t max,
			 char **out, size_t *len, struct cdn_err *err)
{
	*out = NULL;
	*len = 0;
	_cleanup_free_ char *listing = NULL;
	size_t n;
	int r = store_tree_listing(s, hash, &listing, &n, err);
	if (r < 0)
		return r;
	_cleanup_free_ struct listing_entry *v = NULL;
	size_t count = 0;
	if ((r = listing_parse(listing, n, &v, &count, hash, err)) < 0)
		return r;
	const struct listing_entry *e = NULL;
	for (size_t i = 0; i < count && !e; i++)
		if (strcmp(v[i].path, path) == 0)
			e = &v[i];
	char shown[SHOWN_MAX];
	cdn_printable_str(shown, sizeof(shown), path, 0);
	/* A link is not followed, even inside the tree: the caller asked for
	 * the file at this path, as an O_NOFOLLOW open of a checkout would. */
	if (!e || e->dir || e->target)
		return cdn_err_set(err, !e ? ENOENT : e->dir ? EISDIR : ELOOP,
				   "store: tree %s: %s is %s", hash, shown,
				   !e ? "not in it" : e->dir ? "a directory" : "a symlink");
	if (e->size > max)
		return cdn_err_msg(err, EFBIG, "store: tree %s: %s: more than %zu bytes", hash,
				   shown, max);
	_cleanup_close_ int fd = -1;
	struct stat st;
	if ((r = store_blob_open(s, e->hash, &fd, &st, err)) < 0)
		return cdn_err_wrap(err, "tree %s: %s", hash, shown);
	r = cdn_read_fd(fd, max, out, len);
	if (r < 0)
		return cdn_err_set(err, -r, "store: tree %s: read %s", hash, shown);
	/* Checked as a checkout's copy is: a blob damaged on disk is an
	 * error, never other bytes handed on. */
	char got[STORE_HASH_HEX + 1];
	cdn_sha256_hex(*out, *len, got);
	if (strcmp(got, e->hash) != 0) {
		free(*out);
		*out = NULL;
		return cdn_err_msg(err, EIO, "store: blob %s/blobs/%.2s/%s does not match its hash "
				   "(damaged on disk)", s->dir, e->hash, e->hash + 2);
	}
	if (*len != e->size) {
		free(*out);
		*out = NULL;
		return cdn_err_msg(err, EIO, "store: tree %s: %s: the blob's size is not the "
				   "listing's", hash, shown);
	}
	return 0;
}

int store_tree_checkout(struct store *s, const char *hash, char *path, size_t cap,
			struct cdn_err *err)
{
	int r = store_hash_check(hash, "a tree hash (64 lowercase hex digits)", err);
	if (r < 0)
		return r;
	int n = snprintf(path, cap, "%s/trees/%s", s->dir, hash);
	if (n < 0 || (size_t)n >= cap)
		return cdn_err_set(err, ENAMETOOLONG, "store: checkout %s", hash);
	struct stat st;
	/* Checkouts appear only whole (rename of a synced directory), so one
	 * that exists is complete. */
	if (fstatat(s->trees_fd, hash, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
		return 0;

	_cleanup_free_ char *listing = NULL;
	size_t len;
	r = store_tree_listing(s, hash, &listing, &len, err);
	if (r < 0)
		return r;
	_cleanup_free_ struct listing_entry *v = NULL;
	size_t count = 0;
	if ((r = listing_parse(listing, len, &v, &count, hash, err)) < 0)
		return r;

	char name[TMP_NAME_MAX];
	if ((r = store_tmp_name("c", name, sizeof(name))) < 0)
		return cdn_err_set(err, r, "store: checkout %s", hash);
	if (mkdirat(s->tmp_fd, name, 0700) < 0)
		return cdn_err_set(err, errno, "store: checkout %s: mkdir %s/tmp/%s", hash, s->dir,
				   name);
	_cleanup_close_ int root =
		openat(s->tmp_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (root < 0)
		r = cdn_err_set(err, errno, "store: checkout %s: open %s/tmp/%s", hash, s->dir,
				name);
	if (r == 0)
		r = checkout_fill(s, root, v, count, hash, err);
	if (r == 0 && fchmod(root, CHECKOUT_DIR_MODE) < 0)
		r = cdn_err_set(err, errno, "store: checkout %s: chmod", hash);
	/* One syncfs rather than an fsync per file: everything written must be
	 * on disk before the rename makes the checkout visible. */
	if (r == 0 && syncfs(root) < 0)
		r = cdn_err_set(err, errno, "store: checkout %s: sync", hash);
	if (r == 0 && renameat(s->tmp_fd, name, s->trees_fd, hash) < 0) {
		/* Another process made it first: theirs is as good as ours. */
		if (errno != EEXIST && errno != ENOTEMPTY)
			r = cdn_err_set(err, errno, "store: checkout %s: rename into %s/trees",
					hash, s->dir);
	} else if (r == 0) {
		name[0] = '\0';
		if (fsync(s->trees_fd) < 0)
			r = cdn_err_set(err, errno, "store: checkout %s: fsync %s/trees", hash,
					s->dir);
	}
	if (name[0])
		(void)store_rm_rf_at(s->tmp_fd, name, 0);
	return r;
}

int store_scratch_dir(struct store *s, char *path, size_t cap, int *fd, struct cdn_err *err)
{
	char name[TMP_NAME_MAX];
	int r = store_tmp_name("u", name, sizeof(name));
	if (r < 0)
		return cdn_err_set(err, r, "store: scratch directory");
	if ((size_t)snprintf(path, cap, "%s/tmp/%s", s->dir, name) >= cap)
		return cdn_err_set(err, ENAMETOOLONG, "store: scratch directory");
	if (mkdirat(s->tmp_fd, name, 0700) < 0)
		return cdn_err_set(err, errno, "store: mkdir %s", path);
	*fd = openat(s->tmp_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (*fd < 0) {
		r = cdn_err_set(err, errno, "store: open %s", path);
		(void)unlinkat(s->tmp_fd, name, AT_REMOVEDIR);
		return r;
	}
	return 0;
}

void store_scratch_remove(struct store *s, const char *path)
{
	/* Only a direct child of tmp/, by its name: never a path elsewhere. */
	const char *name = strrchr(path, '/');
	name = name ? name + 1 : path;
	if (strncmp(name, "u.", 2) == 0 && !strchr(name, '/'))
		(void)store_rm_rf_at(s->tmp_fd, name, 0);
}

