/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Trees, the snapshot half: walking a directory into a canonical listing
 * and its hash, with the rules a tree's names and symlinks follow
 * (docs/state.md, Trees). Reading a listing back and checking it out is
 * checkout.c.
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


/* ------------------------------------------------------------------ trees */

/*
 * What a name in a tree may be. '\n' would let a name forge a line of the
 * listing; other control bytes (C0, DEL, C1) could drive a terminal when a
 * listing is shown; and listings travel in JSON (API, evidence packs),
 * which must be UTF-8, so a name that is not valid UTF-8 (including
 * overlong forms and surrogates) would be shown as something other than
 * what was hashed. '/' and '\0' cannot come from the kernel, but a listing
 * read back is checked with the same rule.
 */
static bool tree_name_ok(const char *name, size_t len)
{
	if (len == 0 || len > NAME_MAX)
		return false;
	if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
		return false;
	const unsigned char *p = (const unsigned char *)name, *end = p + len;
	while (p < end) {
		unsigned c = *p;
		if (c < 0x20 || c == 0x7f || c == '/')
			return false;
		if (c < 0x80) {
			p++;
			continue;
		}
		size_t more;
		unsigned cp;
		if (c >= 0xc2 && c <= 0xdf) {
			more = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			more = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			more = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if ((size_t)(end - p) <= more)
			return false;
		for (size_t i = 1; i <= more; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		if ((more == 2 && cp < 0x800) || (more == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp <= 0x9f)
			return false;
		p += more + 1;
	}
	return true;
}

/* A relative '/'-separated path of valid names, as a listing holds. */
bool store_tree_path_ok(const char *path, size_t len)
{
	if (len == 0 || len > TREE_PATH_MAX)
		return false;
	size_t start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && path[i] != '/')
			continue;
		if (!tree_name_ok(path + start, i - start))
			return false;
		start = i + 1;
	}
	return true;
}

/*
 * A symlink's target as a tree may hold it: relative, '/'-separated, each
 * component ".", ".." or a valid name, none empty (no "a//b", no trailing
 * '/': one link, one spelling). Where it leads is checked separately
 * (store_tree_links_check), once every entry is known.
 */
bool store_tree_target_ok(const char *t, size_t len)
{
	if (len == 0 || len > TREE_PATH_MAX || t[0] == '/')
		return false;
	size_t start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && t[i] != '/')
			continue;
		size_t n = i - start;
		bool dots = (n == 1 && t[start] == '.') ||
			    (n == 2 && t[start] == '.' && t[start + 1] == '.');
		if (!dots && !tree_name_ok(t + start, n))
			return false;
		start = i + 1;
	}
	return true;
}


static ssize_t tree_node_find(const struct tree_node *v, size_t n, const char *path)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(v[mid].path, path);
		if (c == 0)
			return (ssize_t)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* Drops the last component of a resolved path ("" is the tree's root). */
static void path_up(char *cur)
{
	char *slash = strrchr(cur, '/');
	if (slash)
		*slash = '\0';
	else
		cur[0] = '\0';
}

/*
 * Resolves link v[i] the way the kernel would inside a copy of the tree
 * mounted anywhere, following links to links, and says why not when it
 * cannot be kept:
 *  - a ".." above the tree's root leaves the tree (directly, through a
 *    chain of ".." or through another link): inside the sandbox it would
 *    reach the host's /agent's parent, or on the host the store itself;
 *  - a component that names nothing in the tree, or goes on below a
 *    file: a dangling link. Refused too, so that every kept link resolves
 *    to an entry of the same tree on every machine, and "inside" is a fact
 *    checked on the whole path, not a guess about parts that are missing;
 *  - more than TREE_LINK_HOPS links on the way: a loop;
 *  - the whole tree's links taking more than TREE_LINK_WORK_MAX steps
 *    (bytes compared or copied) to resolve.
 * v is sorted by path. Returns NULL when the link is kept.
 */
static const char *tree_link_why(const struct tree_node *v, size_t n, size_t i,
				 uint64_t *work)
{
	char cur[TREE_PATH_MAX + 1], rest[2 * TREE_PATH_MAX + 2], tmp[2 * TREE_PATH_MAX + 2];
	unsigned log_n = 1;
	while (((size_t)1 << log_n) < n && log_n < 63)
		log_n++;
	snprintf(cur, sizeof(cur), "%s", v[i].path);
	path_up(cur);
	snprintf(rest, sizeof(rest), "%s", v[i].target);
	size_t pos = 0; /* what is left to resolve is rest + pos */
	unsigned hops = 0;
	while (rest[pos]) {
		const char *c = rest + pos;
		const char *slash = strchr(c, '/');
		size_t len = slash ? (size_t)(slash - c) : strlen(c);
		if (len > NAME_MAX)
			return "its target holds a name longer than NAME_MAX";
		char name[NAME_MAX + 1];
		memcpy(name, c, len);
		name[len] = '\0';
		pos += len + (slash ? 1 : 0);
		if (!strcmp(name, "."))
			continue;
		if (!strcmp(name, "..")) {
			if (!cur[0])
				return "its target leaves the tree";
			path_up(cur);
			continue;
		}
		size_t cl = strlen(cur);
		if (cl + 1 + len > TREE_PATH_MAX)
			return "its target resolves to too long a path";
		if (cl)
			cur[cl++] = '/';
		memcpy(cur + cl, name, len + 1);
		/* A bound on the whole check: a lookup compares up to the path's
		 * length at each step of the search, so a tree crafted with
		 * thousands of links through long paths could otherwise keep
		 * an import (or the server's check of an upload) busy for
		 * minutes. */
		*work += (uint64_t)(cl + len + 1) * log_n;
		if (*work > TREE_LINK_WORK_MAX)
			return "resolving the tree's links takes too long (too many links "
			       "through too long paths)";
		ssize_t k = tree_node_find(v, n, cur);
		if (k < 0)
			return "its target is not in the tree (a dangling link)";
		if (v[k].kind == 'f' && rest[pos])
			return "its target goes on below a file (a dangling link)";
		if (v[k].kind != 'l')
			continue;
		if (++hops > TREE_LINK_HOPS)
			return "its target is a loop of links";
		/* v[k]'s target is relative to v[k]'s directory, and what is
		 * left of this one comes after it. */
		path_up(cur);
		int m = snprintf(tmp, sizeof(tmp), "%s%s%s", v[k].target, rest[pos] ? "/" : "",
				 rest + pos);
		if (m < 0 || (size_t)m >= sizeof(rest))
			return "its target resolves to too long a path";
		*work += (uint64_t)m;
		memcpy(rest, tmp, (size_t)m + 1);
		pos = 0;
	}
	return NULL;
}

/* Every link of v (sorted by path) checked; the first refused is named. */
int store_tree_links_check(const struct tree_node *v, size_t n, const char **bad,
			    const char **why)
{
	uint64_t work = 0;
	for (size_t i = 0; i < n; i++) {
		if (v[i].kind != 'l')
			continue;
		const char *w = tree_link_why(v, n, i, &work);
		if (w) {
			*bad = v[i].path;
			*why = w;
			return -EINVAL;
		}
	}
	return 0;
}

struct tree_entry {
	char *path;
	bool dir;
	char *target;  /* a symlink's, or NULL */
	unsigned mode; /* 0644 or 0755 */
	uint64_t size;
	char hash[STORE_HASH_HEX + 1];
};

struct tree_walk {
	struct store *s;
	char root[SHOWN_MAX]; /* printable, for messages */
	struct tree_limits lim;
	struct tree_entry *v;
	size_t n, cap;
	uint64_t bytes;
	struct blob_batch batch; /* the files' blobs, with a store */
	struct cdn_err *err;
};

static void tree_entries_free(struct tree_entry *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].path);
		free(v[i].target);
	}
	free(v);
}

static int tree_fail(struct tree_walk *w, int code, const char *path, const char *why)
{
	char shown[SHOWN_MAX];
	cdn_printable_str(shown, sizeof(shown), path, 0);
	return cdn_err_set(w->err, code, "tree %s: %s: %s", w->root, shown, why);
}

static int tree_add(struct tree_walk *w, char **path, bool dir, unsigned mode, uint64_t size,
		    const char *hash)
{
	if (w->n >= w->lim.max_files)
		return tree_fail(w, E2BIG, *path,
				 "over the limit of entries (files and directories)");
	if (w->n == w->cap) {
		size_t nc = w->cap ? w->cap * 2 : 64;
		struct tree_entry *nv = realloc(w->v, nc * sizeof(*nv));
		if (!nv)
			return cdn_err_set(w->err, ENOMEM, "tree %s", w->root);
		w->v = nv;
		w->cap = nc;
	}
	struct tree_entry *e = &w->v[w->n++];
	e->path = cdn_steal(path);
	e->target = NULL;
	e->dir = dir;
	e->mode = mode;
	e->size = size;
	snprintf(e->hash, sizeof(e->hash), "%s", hash ? hash : "");
	return 0;
}

static int tree_walk_dir(struct tree_walk *w, int dfd, const char *prefix, unsigned depth);

static int tree_walk_file(struct tree_walk *w, int dfd, const char *name, char **path,
			  const struct stat *lst)
{
	/* O_NONBLOCK: if a fifo was swapped in after the fstatat, opening it
	 * must not hang; the fstat below then refuses it. */
	_cleanup_close_ int fd =
		openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return tree_fail(w, errno, *path, "open");
	struct stat st;
	if (fstat(fd, &st) < 0)
		return tree_fail(w, errno, *path, "stat");
	if (!S_ISREG(st.st_mode) || st.st_ino != lst->st_ino || st.st_dev != lst->st_dev)
		return tree_fail(w, EAGAIN, *path, "changed while being read");
	char hash[STORE_HASH_HEX + 1];
	uint64_t size = 0;
	int r = w->s ? store_blob_batch_put_fd(w->s, &w->batch, fd, w->lim.max_bytes - w->bytes, hash,
					 &size, w->err)
		     : store_hash_stream(NULL, fd, w->lim.max_bytes - w->bytes, -1, hash, &size, w->err);
	if (r == -E2BIG) {
		char why[96];
		snprintf(why, sizeof(why), "the files add up to more than %llu bytes",
			 (unsigned long long)w->lim.max_bytes);
		return tree_fail(w, E2BIG, *path, why);
	}
	if (r < 0) {
		char shown[SHOWN_MAX];
		cdn_printable_str(shown, sizeof(shown), *path, 0);
		return cdn_err_wrap(w->err, "tree %s: %s", w->root, shown);
	}
	w->bytes += size;
	/* Only the execute bit survives: owners, umasks and the rest differ
	 * between machines and would change the hash of the same tree. */
	return tree_add(w, path, false, (st.st_mode & 0111) ? 0755 : 0644, size, hash);
}

/*
 * A symlink is recorded, never followed: its target's text goes into the
 * listing, and where it leads is checked once the whole tree is known
 * (store_tree_links_check). An absolute target is refused here: it would name
 * the host's file on the host and the sandbox's inside it, a different
 * file on every machine.
 */
static int tree_walk_link(struct tree_walk *w, int dfd, const char *name, char **path,
			  const struct stat *lst)
{
	char buf[TREE_PATH_MAX + 2];
	ssize_t n = readlinkat(dfd, name, buf, sizeof(buf) - 1);
	if (n < 0)
		return tree_fail(w, errno == EINVAL ? EAGAIN : errno, *path,
				 errno == EINVAL ? "changed while being read" : "readlink");
	if ((uint64_t)n != (uint64_t)lst->st_size && lst->st_size != 0)
		return tree_fail(w, EAGAIN, *path, "changed while being read");
	buf[n] = '\0';
	if (buf[0] == '/')
		return tree_fail(w, EINVAL, *path,
				 "is a symlink with an absolute target; a tree's links must be "
				 "relative and stay inside it");
	if (!store_tree_target_ok(buf, (size_t)n))
		return tree_fail(w, EINVAL, *path,
				 "is a symlink whose target is too long, holds an empty component "
				 "or a name that is not UTF-8 or holds control characters");
	char *target = strdup(buf);
	if (!target)
		return cdn_err_set(w->err, ENOMEM, "tree %s", w->root);
	int r = tree_add(w, path, false, 0, 0, NULL);
	if (r < 0) {
		free(target);
		return r;
	}
	w->v[w->n - 1].target = target;
	return 0;
}

static int tree_walk_one(struct tree_walk *w, int dfd, const char *prefix, const char *name,
			 unsigned depth)
{
	_cleanup_free_ char *path = NULL;
	if (asprintf(&path, "%s%s%s", prefix ? prefix : "", prefix ? "/" : "", name) < 0) {
		path = NULL;
		return cdn_err_set(w->err, ENOMEM, "tree %s", w->root);
	}
	if (strlen(path) > TREE_PATH_MAX)
		return tree_fail(w, ENAMETOOLONG, path, "the path is too long");
	if (!tree_name_ok(name, strlen(name)))
		return tree_fail(w, EINVAL, path,
				 "the name is not UTF-8 or holds control characters (a newline "
				 "would forge a line of the tree's listing)");
	if (depth > w->lim.max_depth) {
		char why[64];
		snprintf(why, sizeof(why), "deeper than %u levels", w->lim.max_depth);
		return tree_fail(w, E2BIG, path, why);
	}
	struct stat st;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return tree_fail(w, errno, path, "stat");
	if (S_ISREG(st.st_mode))
		return tree_walk_file(w, dfd, name, &path, &st);
	if (S_ISLNK(st.st_mode))
		return tree_walk_link(w, dfd, name, &path, &st);
	const char *what = S_ISFIFO(st.st_mode)	 ? "fifo"
			   : S_ISSOCK(st.st_mode) ? "socket"
			   : S_ISDIR(st.st_mode)  ? NULL
						  : "device";
	if (what) {
		char why[80];
		snprintf(why, sizeof(why), "is a %s; trees hold files and directories only", what);
		return tree_fail(w, EINVAL, path, why);
	}
	_cleanup_close_ int cfd =
		openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (cfd < 0)
		return tree_fail(w, errno == ELOOP ? EAGAIN : errno, path, "open");
	struct stat cst;
	if (fstat(cfd, &cst) < 0)
		return tree_fail(w, errno, path, "stat");
	if (cst.st_ino != st.st_ino || cst.st_dev != st.st_dev)
		return tree_fail(w, EAGAIN, path, "changed while being read");
	/* The entry owns the path; it stays put when the array grows. */
	const char *kept = path;
	int r = tree_add(w, &path, true, 0, 0, NULL);
	if (r < 0)
		return r;
	return tree_walk_dir(w, cfd, kept, depth + 1);
}

static int tree_walk_dir(struct tree_walk *w, int dfd, const char *prefix, unsigned depth)
{
	char **names;
	size_t n;
	int r = cdn_dir_names(dfd, (size_t)(w->lim.max_files - w->n), NULL, &names, &n);
	if (r == -E2BIG)
		return tree_fail(w, E2BIG, prefix ? prefix : ".",
				 "over the limit of entries (files and directories)");
	if (r < 0)
		return tree_fail(w, -r, prefix ? prefix : ".", "read the directory");
	for (size_t i = 0; r == 0 && i < n; i++)
		r = tree_walk_one(w, dfd, prefix, names[i], depth);
	cdn_names_free(names, n);
	return r;
}

static int tree_entry_cmp(const void *a, const void *b)
{
	/* strcmp compares as unsigned char: raw byte order. */
	return strcmp(((const struct tree_entry *)a)->path, ((const struct tree_entry *)b)->path);
}

/* The walked tree's links (w->v sorted), checked as a listing's are. */
static int tree_walk_links_check(struct tree_walk *w)
{
	size_t links = 0;
	for (size_t i = 0; i < w->n; i++)
		links += w->v[i].target != NULL;
	if (!links)
		return 0;
	_cleanup_free_ struct tree_node *v = calloc(w->n, sizeof(*v));
	if (!v)
		return cdn_err_set(w->err, ENOMEM, "tree %s", w->root);
	for (size_t i = 0; i < w->n; i++)
		v[i] = (struct tree_node){ .path = w->v[i].path,
					   .kind = w->v[i].dir	   ? 'd'
						   : w->v[i].target ? 'l'
								    : 'f',
					   .target = w->v[i].target };
	const char *bad = NULL, *why = NULL;
	if (store_tree_links_check(v, w->n, &bad, &why) == 0)
		return 0;
	char shown[SHOWN_MAX], target[SHOWN_MAX];
	cdn_printable_str(shown, sizeof(shown), bad, 0);
	cdn_printable_str(target, sizeof(target), v[tree_node_find(v, w->n, bad)].target, 0);
	return cdn_err_msg(w->err, EINVAL, "tree %s: %s: is a symlink to '%s' and %s", w->root,
			   shown, target, why);
}

int store_tree_import(struct store *s, const char *dir, const struct tree_limits *lim,
		      char hash[STORE_HASH_HEX + 1], struct cdn_err *err)
{
	struct tree_walk w = { .s = s, .err = err };
	cdn_printable_str(w.root, sizeof(w.root), dir, 0);
	w.lim.max_files = lim && lim->max_files ? lim->max_files : TREE_DEFAULT_MAX_FILES;
	w.lim.max_bytes = lim && lim->max_bytes ? lim->max_bytes : TREE_DEFAULT_MAX_BYTES;
	w.lim.max_depth = lim && lim->max_depth ? lim->max_depth : TREE_DEFAULT_MAX_DEPTH;

	/* The root may be a symlink: the caller named it. Below it, nothing
	 * is followed. */
	_cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return cdn_err_set(err, errno, "tree %s", w.root);
	int r = tree_walk_dir(&w, fd, NULL, 1);
	_cleanup_free_ char *listing = NULL;
	size_t len = 0;
	if (r == 0) {
		if (w.n) /* qsort(NULL, 0) is undefined (UBSan) */
			qsort(w.v, w.n, sizeof(*w.v), tree_entry_cmp);
		r = tree_walk_links_check(&w);
	}
	if (r == 0) {
		size_t cap = 1;
		for (size_t i = 0; i < w.n; i++)
			cap += strlen(w.v[i].path) + STORE_HASH_HEX + TREE_SIZE_DIGITS + 16 +
			       (w.v[i].target ? strlen(w.v[i].target) : 0);
		if (!(listing = malloc(cap)))
			r = cdn_err_set(err, ENOMEM, "tree %s", w.root);
		for (size_t i = 0; r == 0 && i < w.n; i++) {
			const struct tree_entry *e = &w.v[i];
			int n = e->dir	  ? snprintf(listing + len, cap - len, "dir %s\n", e->path)
				: e->target ? snprintf(listing + len, cap - len, "link %zu %s %s\n",
						       strlen(e->target), e->target, e->path)
					    : snprintf(listing + len, cap - len, "%04o %s %llu %s\n",
						       e->mode, e->hash, (unsigned long long)e->size,
						       e->path);
			len += (size_t)n;
		}
	}
	tree_entries_free(w.v, w.n);
	/* With S3, a listing there means every blob it names is there too (it
	 * is put after them): the blobs found stored here need no HEAD each,
	 * which for an unchanged node_modules would be thousands. */
	if (r == 0 && s && w.batch.npresent) {
		char lhash[STORE_HASH_HEX + 1];
		cdn_sha256_hex(listing ? listing : "", len, lhash);
		w.batch.skip_present = store_remote_blob_known(s, lhash);
	}
	if (r == 0 && s)
		r = store_blob_batch_commit(s, &w.batch, err);
	if (s)
		store_blob_batch_abort(s, &w.batch);
	if (r < 0)
		return r;
	/* The listing is a blob like any other: its hash is the tree's. */
	if (!s) {
		cdn_sha256_hex(listing ? listing : "", len, hash);
		return 0;
	}
	r = store_blob_put(s, listing ? listing : "", len, hash, err);
	return r < 0 ? cdn_err_wrap(err, "tree %s", w.root) : 0;
}

int store_tree_hash(const char *dir, const struct tree_limits *lim, char hash[STORE_HASH_HEX + 1],
		    struct cdn_err *err)
{
	return store_tree_import(NULL, dir, lim, hash, err);
}

