/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Bundles: packing a directory for upload and unpacking an upload (rules
 * in bundle.h). libarchive reads and writes the tar and gzip; this file
 * decides what an entry may be and where it lands.
 */
#include "serve/bundle.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/file.h"
#include "base/text.h"

#define SHOWN_MAX 96
#define IO_CHUNK  (64 * 1024)

/* s made printable for a message: control characters become '?', long cut. */
static const char *shown(const char *s, char out[SHOWN_MAX])
{
	return cdn_printable_str(out, SHOWN_MAX, s, CDN_TEXT_UTF8 | CDN_TEXT_ELLIPSIS);
}

/* ---------------------------------------------------------------- unpack */

struct path {
	char buf[BUNDLE_MAX_PATH + 1];
	char *comp[BUNDLE_MAX_DEPTH];
	size_t n; /* 0: the bundle's root itself */
};

/* Splits an entry's name into checked components. */
static int path_parse(const char *name, struct path *p, struct cdn_err *err)
{
	char sh[SHOWN_MAX];
	if (!name || strlen(name) > BUNDLE_MAX_PATH)
		return cdn_err_msg(err, EINVAL, "bundle: an entry's name is missing or longer than %d bytes",
				   BUNDLE_MAX_PATH);
	if (name[0] == '/')
		return cdn_err_msg(err, EINVAL, "bundle: '%s': absolute paths are not allowed",
				   shown(name, sh));
	const char *s = name;
	while (s[0] == '.' && s[1] == '/')
		s += 2;
	snprintf(p->buf, sizeof(p->buf), "%s", s);
	size_t len = strlen(p->buf);
	while (len && p->buf[len - 1] == '/')
		p->buf[--len] = '\0';
	p->n = 0;
	if (len == 0 || strcmp(p->buf, ".") == 0)
		return 0;
	char *c = p->buf;
	for (;;) {
		char *slash = strchr(c, '/');
		if (slash)
			*slash = '\0';
		if (!*c || strcmp(c, ".") == 0 || strcmp(c, "..") == 0)
			return cdn_err_msg(err, EINVAL,
					   "bundle: '%s': empty, '.' and '..' components are not allowed",
					   shown(name, sh));
		for (const char *q = c; *q; q++)
			if ((unsigned char)*q < 0x20 || *q == 0x7f)
				return cdn_err_msg(err, EINVAL,
						   "bundle: '%s': control characters in a name",
						   shown(name, sh));
		if (p->n == BUNDLE_MAX_DEPTH)
			return cdn_err_msg(err, EINVAL, "bundle: '%s': deeper than %d levels",
					   shown(name, sh), BUNDLE_MAX_DEPTH);
		p->comp[p->n++] = c;
		if (!slash)
			return 0;
		c = slash + 1;
	}
}

/* The directory holding the last component, made as needed, opened one
 * component at a time below root without following symlinks. */
static int open_parent(int root, const struct path *p, int *out, struct cdn_err *err)
{
	int cur = fcntl(root, F_DUPFD_CLOEXEC, 0);
	if (cur < 0)
		return cdn_err_set(err, errno, "bundle: dup");
	for (size_t i = 0; i + 1 < p->n; i++) {
		if (mkdirat(cur, p->comp[i], 0755) < 0 && errno != EEXIST) {
			int e = errno;
			close(cur);
			return cdn_err_set(err, e, "bundle: mkdir %s", p->comp[i]);
		}
		int fd = openat(cur, p->comp[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int e = errno;
		struct stat st;
		bool link = fd < 0 && fstatat(cur, p->comp[i], &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISLNK(st.st_mode);
		close(cur);
		char sh[SHOWN_MAX];
		/* O_NOFOLLOW: an entry below a symlink the archive made earlier
		 * ("l -> /etc", then "l/passwd") would be written through it. */
		if (link)
			return cdn_err_msg(err, EINVAL,
					   "bundle: '%s' is a symlink; nothing is unpacked below one",
					   shown(p->comp[i], sh));
		if (fd < 0)
			return cdn_err_set(err, e == ENOTDIR ? EEXIST : e,
					   "bundle: '%s' is both a file and a directory",
					   shown(p->comp[i], sh));
		cur = fd;
	}
	*out = cur;
	return 0;
}

static int extract_file(struct archive *a, struct archive_entry *e, int parent, const char *leaf,
			const char *name, uint64_t *total, struct cdn_err *err)
{
	char sh[SHOWN_MAX];
	la_int64_t size = archive_entry_size(e);
	if (size < 0 || (uint64_t)size > BUNDLE_MAX_BYTES - *total)
		return cdn_err_msg(err, EFBIG, "bundle: '%s': the files are over %llu bytes together",
				   shown(name, sh), (unsigned long long)BUNDLE_MAX_BYTES);
	mode_t mode = (archive_entry_perm(e) & 0111) ? 0755 : 0644;
	_cleanup_close_ int fd =
		openat(parent, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return cdn_err_set(err, errno == EEXIST ? EEXIST : errno,
				   errno == EEXIST ? "bundle: '%s' is in the archive twice"
						   : "bundle: create '%s'",
				   shown(name, sh));
	_cleanup_free_ char *buf = malloc(IO_CHUNK);
	if (!buf)
		return cdn_err_set(err, ENOMEM, "bundle");
	uint64_t got = 0;
	for (;;) {
		la_ssize_t n = archive_read_data(a, buf, IO_CHUNK);
		if (n == 0)
			break;
		if (n < 0) {
			char sh2[SHOWN_MAX];
			return cdn_err_msg(err, EINVAL, "bundle: '%s': %s", shown(name, sh),
					   shown(archive_error_string(a) ? archive_error_string(a)
									 : "unreadable",
						 sh2));
		}
		got += (uint64_t)n;
		if (got > (uint64_t)size)
			return cdn_err_msg(err, EINVAL, "bundle: '%s': more data than its size",
					   shown(name, sh));
		int r = cdn_write_all(fd, buf, (size_t)n);
		if (r < 0)
			return cdn_err_set(err, -r, "bundle: write '%s'", shown(name, sh));
	}
	*total += got;
	if (fchmod(fd, mode) < 0) /* the umask may have taken bits */
		return cdn_err_set(err, errno, "bundle: chmod '%s'", shown(name, sh));
	return 0;
}

/*
 * A symlink entry, checked before it is made: its target's text relative,
 * without empty components or control characters, and bounded. Where it
 * leads (inside the tree or not, through ".." and other links, to
 * something or nothing) is the registry's check on the unpacked tree
 * (store_tree_import), the same walk as for a local directory, so an
 * upload is accepted and refused exactly where a local registration is.
 * Until then the link is inert: nothing here follows it (every open is
 * O_NOFOLLOW, and nothing is unpacked below a link).
 */
static int extract_link(struct archive_entry *e, int parent, const char *leaf, const char *name,
			struct cdn_err *err)
{
	char sh[SHOWN_MAX], st[SHOWN_MAX];
	const char *t = archive_entry_symlink(e);
	size_t len = t ? strlen(t) : 0;
	if (len == 0 || len > BUNDLE_MAX_PATH)
		return cdn_err_msg(err, EINVAL, "bundle: '%s': a symlink with no target or one "
				   "longer than %d bytes", shown(name, sh), BUNDLE_MAX_PATH);
	if (t[0] == '/')
		return cdn_err_msg(err, EINVAL, "bundle: '%s': a symlink to '%s': absolute targets "
				   "are not allowed", shown(name, sh), shown(t, st));
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)t[i] < 0x20 || t[i] == 0x7f)
			return cdn_err_msg(err, EINVAL, "bundle: '%s': control characters in a "
					   "symlink's target", shown(name, sh));
		if (t[i] == '/' && (i + 1 == len || t[i + 1] == '/'))
			return cdn_err_msg(err, EINVAL, "bundle: '%s': a symlink to '%s': empty "
					   "components are not allowed", shown(name, sh), shown(t, st));
	}
	if (symlinkat(t, parent, leaf) < 0)
		return cdn_err_set(err, errno == EEXIST ? EEXIST : errno,
				   errno == EEXIST ? "bundle: '%s' is in the archive twice"
						   : "bundle: symlink '%s'",
				   shown(name, sh));
	return 0;
}

static int extract_entry(struct archive *a, struct archive_entry *e, int root, uint64_t *total,
			 struct cdn_err *err)
{
	char sh[SHOWN_MAX];
	const char *name = archive_entry_pathname(e);
	struct path p;
	int r = path_parse(name, &p, err);
	if (r < 0)
		return r;
	/* A hard link would share one file between two paths, and name a file
	 * the archive may not hold at all. */
	if (archive_entry_hardlink(e))
		return cdn_err_msg(err, EINVAL, "bundle: '%s': hard links are not allowed",
				   shown(name, sh));
	mode_t type = archive_entry_filetype(e);
	if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK)
		return cdn_err_msg(err, EINVAL,
				   "bundle: '%s': only regular files, directories and symlinks are "
				   "allowed (a device, fifo or socket)",
				   shown(name, sh));
	if (p.n == 0) {
		if (type != AE_IFDIR)
			return cdn_err_msg(err, EINVAL, "bundle: a file named '.'");
		return 0; /* the root itself */
	}
	int parent = -1;
	if ((r = open_parent(root, &p, &parent, err)) < 0)
		return r;
	const char *leaf = p.comp[p.n - 1];
	if (type == AE_IFDIR) {
		struct stat st;
		if (mkdirat(parent, leaf, 0755) < 0 &&
		    (errno != EEXIST || fstatat(parent, leaf, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		     !S_ISDIR(st.st_mode)))
			r = cdn_err_msg(err, EEXIST, "bundle: '%s' is both a file and a directory",
					shown(name, sh));
	} else if (type == AE_IFLNK) {
		r = extract_link(e, parent, leaf, name, err);
	} else {
		r = extract_file(a, e, parent, leaf, name, total, err);
	}
	close(parent);
	return r;
}

/* Unpacks an opened archive into dirfd, and frees it. */
static int extract(struct archive *a, bool opened, int dirfd, struct cdn_err *err)
{
	int r = 0;
	char sh[SHOWN_MAX];
	if (!opened)
		r = cdn_err_msg(err, EINVAL, "bundle: not a tar or tar.gz archive: %s",
				shown(archive_error_string(a) ? archive_error_string(a)
							      : "unreadable",
				      sh));
	uint64_t total = 0;
	size_t entries = 0;
	la_int64_t end = 0; /* where the last entry ended, in the tar stream */
	while (r == 0) {
		struct archive_entry *e;
		int h = archive_read_next_header(a, &e);
		if (h == ARCHIVE_EOF) {
			/*
			 * libarchive also ends without complaint where the data
			 * ends at an entry's boundary, as if a tar could end there:
			 * an upload cut short in transit then registered as a part
			 * of the tree. A whole tar ends with its end-of-archive
			 * marker (zero blocks), which reading consumes: require it.
			 */
			if (archive_filter_bytes(a, 0) <= end)
				r = cdn_err_msg(err, EINVAL,
						"bundle: the archive ends without its end-of-archive "
						"marker after %zu entries: it was cut short, so nothing "
						"is registered",
						entries);
			break;
		}
		if (h != ARCHIVE_OK) {
			/* a warning (ARCHIVE_WARN) is refused too: strict */
			r = cdn_err_msg(err, EINVAL, "bundle: entry %zu: %s", entries + 1,
					shown(archive_error_string(a) ? archive_error_string(a)
								      : "unreadable header",
					      sh));
			break;
		}
		if (++entries > BUNDLE_MAX_ENTRIES) {
			r = cdn_err_msg(err, EFBIG, "bundle: more than %d entries",
					BUNDLE_MAX_ENTRIES);
			break;
		}
		r = extract_entry(a, e, dirfd, &total, err);
		/* past the entry's data and its padding */
		if (r == 0 && archive_read_data_skip(a) != ARCHIVE_OK)
			r = cdn_err_msg(err, EINVAL, "bundle: entry %zu: %s", entries,
					shown(archive_error_string(a) ? archive_error_string(a)
								      : "unreadable",
					      sh));
		end = archive_filter_bytes(a, 0);
	}
	archive_read_free(a);
	return r;
}

static struct archive *reader(void)
{
	struct archive *a = archive_read_new();
	if (a) {
		archive_read_support_filter_gzip(a);
		archive_read_support_format_tar(a);
	}
	return a;
}

int bundle_extract(const void *data, size_t len, int dirfd, struct cdn_err *err)
{
	if (len > BUNDLE_MAX_UPLOAD)
		return cdn_err_msg(err, EFBIG, "bundle: larger than %u bytes", BUNDLE_MAX_UPLOAD);
	struct archive *a = reader();
	if (!a)
		return cdn_err_set(err, ENOMEM, "bundle");
	return extract(a, archive_read_open_memory(a, data, len) == ARCHIVE_OK, dirfd, err);
}

int bundle_extract_fd(int fd, int dirfd, struct cdn_err *err)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return cdn_err_set(err, errno, "bundle");
	if ((uint64_t)st.st_size > BUNDLE_MAX_UPLOAD)
		return cdn_err_msg(err, EFBIG, "bundle: larger than %u bytes", BUNDLE_MAX_UPLOAD);
	if (lseek(fd, 0, SEEK_SET) < 0)
		return cdn_err_set(err, errno, "bundle");
	struct archive *a = reader();
	if (!a)
		return cdn_err_set(err, ENOMEM, "bundle");
	return extract(a, archive_read_open_fd(a, fd, IO_CHUNK) == ARCHIVE_OK, dirfd, err);
}

/* ------------------------------------------------------------------ pack */

struct membuf {
	char *p;
	size_t len, cap;
	bool too_big;
};

static la_ssize_t mem_write(struct archive *a, void *ctx, const void *buf, size_t n)
{
	struct membuf *m = ctx;
	if (m->len + n > BUNDLE_MAX_UPLOAD) {
		m->too_big = true;
		archive_set_error(a, EFBIG, "larger than %u bytes packed", BUNDLE_MAX_UPLOAD);
		return -1;
	}
	if (m->len + n > m->cap) {
		size_t nc = m->cap ? m->cap * 2 : 64 * 1024;
		while (nc < m->len + n)
			nc *= 2;
		char *np = realloc(m->p, nc);
		if (!np) {
			archive_set_error(a, ENOMEM, "out of memory");
			return -1;
		}
		m->p = np;
		m->cap = nc;
	}
	memcpy(m->p + m->len, buf, n);
	m->len += n;
	return (la_ssize_t)n;
}

struct packer {
	struct archive *a;
	struct archive_entry *e;
	const char *top;
	size_t entries;
	uint64_t bytes;
	struct cdn_err *err;
};

static int pack_fail(struct packer *k, const char *rel)
{
	int code = archive_errno(k->a) > 0 ? archive_errno(k->a) : EIO;
	return cdn_err_set(k->err, code, "bundle: %s/%s: %s", k->top, rel,
			   archive_error_string(k->a) ? archive_error_string(k->a) : "cannot pack");
}

static int pack_file(struct packer *k, int dfd, const char *name, const char *rel,
		     const struct stat *st)
{
	_cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return cdn_err_set(k->err, errno, "bundle: open %s/%s", k->top, rel);
	if ((uint64_t)st->st_size > BUNDLE_MAX_BYTES - k->bytes)
		return cdn_err_msg(k->err, EFBIG, "bundle: %s: the files are over %llu bytes",
				   k->top, (unsigned long long)BUNDLE_MAX_BYTES);
	archive_entry_clear(k->e);
	archive_entry_set_pathname(k->e, rel);
	archive_entry_set_filetype(k->e, AE_IFREG);
	archive_entry_set_perm(k->e, (st->st_mode & 0111) ? 0755 : 0644);
	archive_entry_set_size(k->e, st->st_size);
	if (archive_write_header(k->a, k->e) != ARCHIVE_OK)
		return pack_fail(k, rel);
	_cleanup_free_ char *buf = malloc(IO_CHUNK);
	if (!buf)
		return cdn_err_set(k->err, ENOMEM, "bundle");
	off_t left = st->st_size;
	while (left > 0) {
		ssize_t n = read(fd, buf, (size_t)(left < IO_CHUNK ? left : IO_CHUNK));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return cdn_err_set(k->err, n < 0 ? errno : EIO,
					   "bundle: %s/%s changed while it was packed", k->top, rel);
		if (archive_write_data(k->a, buf, (size_t)n) != n)
			return pack_fail(k, rel);
		left -= n;
	}
	k->bytes += (uint64_t)st->st_size;
	return 0;
}

/* A symlink as it is, never followed; where it leads is checked by the
 * tree hash the CLI computes before packing and by the server after. */
static int pack_link(struct packer *k, int dfd, const char *name, const char *rel)
{
	char target[BUNDLE_MAX_PATH + 2];
	ssize_t n = readlinkat(dfd, name, target, sizeof(target) - 1);
	if (n < 0)
		return cdn_err_set(k->err, errno, "bundle: readlink %s/%s", k->top, rel);
	if (n > BUNDLE_MAX_PATH)
		return cdn_err_set(k->err, ENAMETOOLONG,
				   "bundle: %s/%s: a symlink's target longer than %d", k->top, rel,
				   BUNDLE_MAX_PATH);
	target[n] = '\0';
	archive_entry_clear(k->e);
	archive_entry_set_pathname(k->e, rel);
	archive_entry_set_filetype(k->e, AE_IFLNK);
	archive_entry_set_perm(k->e, 0777);
	archive_entry_set_symlink(k->e, target);
	if (archive_write_header(k->a, k->e) != ARCHIVE_OK)
		return pack_fail(k, rel);
	return 0;
}

static int pack_dir(struct packer *k, int dfd, const char *prefix, unsigned depth)
{
	if (depth > BUNDLE_MAX_DEPTH)
		return cdn_err_msg(k->err, EINVAL, "bundle: %s/%s: deeper than %d levels", k->top,
				   prefix, BUNDLE_MAX_DEPTH);
	int fd2 = fcntl(dfd, F_DUPFD_CLOEXEC, 0);
	DIR *d = fd2 >= 0 ? fdopendir(fd2) : NULL;
	if (!d) {
		if (fd2 >= 0)
			close(fd2);
		return cdn_err_set(k->err, errno, "bundle: read %s/%s", k->top, prefix);
	}
	int r = 0;
	struct dirent *de;
	while (r == 0 && (errno = 0, de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char rel[BUNDLE_MAX_PATH + 1];
		if ((size_t)snprintf(rel, sizeof(rel), "%s%s%s", prefix, *prefix ? "/" : "",
				     de->d_name) >= sizeof(rel)) {
			r = cdn_err_msg(k->err, ENAMETOOLONG, "bundle: %s: a path longer than %d",
					k->top, BUNDLE_MAX_PATH);
			break;
		}
		if (++k->entries > BUNDLE_MAX_ENTRIES) {
			r = cdn_err_msg(k->err, EFBIG, "bundle: %s: more than %d entries", k->top,
					BUNDLE_MAX_ENTRIES);
			break;
		}
		struct stat st;
		if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			r = cdn_err_set(k->err, errno, "bundle: stat %s/%s", k->top, rel);
		} else if (S_ISREG(st.st_mode)) {
			r = pack_file(k, dfd, de->d_name, rel, &st);
		} else if (S_ISDIR(st.st_mode)) {
			archive_entry_clear(k->e);
			archive_entry_set_pathname(k->e, rel);
			archive_entry_set_filetype(k->e, AE_IFDIR);
			archive_entry_set_perm(k->e, 0755);
			if (archive_write_header(k->a, k->e) != ARCHIVE_OK) {
				r = pack_fail(k, rel);
				break;
			}
			_cleanup_close_ int sub = openat(dfd, de->d_name,
							 O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
								 O_CLOEXEC);
			r = sub < 0 ? cdn_err_set(k->err, errno, "bundle: open %s/%s", k->top, rel)
				    : pack_dir(k, sub, rel, depth + 1);
		} else if (S_ISLNK(st.st_mode)) {
			r = pack_link(k, dfd, de->d_name, rel);
		} else {
			r = cdn_err_msg(k->err, EINVAL,
					"bundle: %s/%s is a device, fifo or socket; a bundle holds only "
					"regular files, directories and symlinks",
					k->top, rel);
		}
	}
	if (r == 0 && errno)
		r = cdn_err_set(k->err, errno, "bundle: read %s/%s", k->top, prefix);
	closedir(d);
	return r;
}

int bundle_pack(const char *dir, char **out, size_t *out_len, struct cdn_err *err)
{
	*out = NULL;
	*out_len = 0;
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return cdn_err_set(err, errno, "bundle: %s", dir);
	struct membuf m = { 0 };
	struct packer k = { .a = archive_write_new(), .e = archive_entry_new(), .top = dir,
			    .err = err };
	int r = 0;
	if (!k.a || !k.e)
		r = cdn_err_set(err, ENOMEM, "bundle");
	if (r == 0 && (archive_write_set_format_pax_restricted(k.a) != ARCHIVE_OK ||
		       archive_write_add_filter_gzip(k.a) != ARCHIVE_OK ||
		       archive_write_set_bytes_in_last_block(k.a, 1) != ARCHIVE_OK ||
		       archive_write_open(k.a, &m, NULL, mem_write, NULL) != ARCHIVE_OK))
		r = pack_fail(&k, ".");
	if (r == 0)
		r = pack_dir(&k, dfd, "", 1);
	if (r == 0 && archive_write_close(k.a) != ARCHIVE_OK)
		r = m.too_big ? cdn_err_msg(err, EFBIG, "bundle: %s: larger than %u bytes packed",
					    dir, BUNDLE_MAX_UPLOAD)
			      : pack_fail(&k, ".");
	if (r < 0 && m.too_big && err->code != EFBIG)
		r = cdn_err_msg(err, EFBIG, "bundle: %s: larger than %u bytes packed", dir,
				BUNDLE_MAX_UPLOAD);
	if (k.e)
		archive_entry_free(k.e);
	if (k.a)
		archive_write_free(k.a);
	if (r < 0) {
		free(m.p);
		return r;
	}
	*out = m.p;
	*out_len = m.len;
	return 0;
}
