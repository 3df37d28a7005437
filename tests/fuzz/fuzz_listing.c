/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for a tree's listing read back (store_tree_checkout):
 * the strict parse, the link rules and the checkout a listing drives.
 *
 * Each input is stored as a blob and checked out as a tree. Invariants:
 * a refused listing leaves no checkout and no temp directory; a checkout
 * that is made holds only directories, read-only regular files and
 * symlinks, and every symlink in it resolves, with openat2's
 * RESOLVE_BENEATH from the checkout's root, to an entry inside it (no
 * link leads out, none dangles, none loops). A refusal's message is
 * printable.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/openat2.h"
#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x))                                                                          \
			abort();                                                                   \
	} while (0)

static char base[64];
static struct store *s;

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	chmod(path, 0700); /* a checkout's directories may be read-only */
	return remove(path);
}

static void cleanup(void)
{
	if (s)
		store_close(s);
	nftw(base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static size_t count(const char *dir)
{
	DIR *d = opendir(dir);
	CHECK(d);
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	closedir(d);
	return n;
}

/* Every entry below dfd (path rel from the root): the invariants above. */
static void check_tree(int root, int dfd, const char *rel, unsigned depth)
{
	CHECK(depth < 64);
	int fd2 = dup(dfd);
	CHECK(fd2 >= 0);
	DIR *d = fdopendir(fd2);
	CHECK(d);
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char path[8192];
		snprintf(path, sizeof(path), "%s%s%s", rel, *rel ? "/" : "", de->d_name);
		struct stat st;
		CHECK(fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0);
		if (S_ISDIR(st.st_mode)) {
			int sub = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
			CHECK(sub >= 0);
			check_tree(root, sub, path, depth + 1);
			close(sub);
		} else if (S_ISLNK(st.st_mode)) {
			int fd = cdn_openat2(root, path, O_PATH | O_CLOEXEC, 0, RESOLVE_BENEATH);
			CHECK(fd >= 0);
			close(fd);
		} else {
			CHECK(S_ISREG(st.st_mode));
			CHECK((st.st_mode & 0222) == 0);
		}
	}
	closedir(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cdn_err err = { 0 };
	if (!s) {
		snprintf(base, sizeof(base), "/tmp/fuzz-listing.XXXXXX");
		CHECK(mkdtemp(base));
		CHECK(store_open(base, &s, &err) == 0);
		/* The blobs a listing may name: "a", "abc" and the empty file. */
		char h[STORE_HASH_HEX + 1];
		CHECK(store_blob_put(s, "a", 1, h, &err) == 0);
		CHECK(store_blob_put(s, "abc", 3, h, &err) == 0);
		CHECK(store_blob_put(s, "", 0, h, &err) == 0);
		atexit(cleanup);
	}
	if (size > 65536)
		return 0;
	char hash[STORE_HASH_HEX + 1], out[4096], blob[4096];
	CHECK(store_blob_put(s, data, size, hash, &err) == 0);
	int r = store_tree_checkout(s, hash, out, sizeof(out), &err);
	char trees[256], tmp[256];
	snprintf(trees, sizeof(trees), "%s/trees", base);
	snprintf(tmp, sizeof(tmp), "%s/tmp", base);
	if (r < 0) {
		CHECK(err.msg[0]);
		for (const char *p = err.msg; *p; p++)
			CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
		CHECK(count(trees) == 0);
	} else {
		int root = open(out, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		CHECK(root >= 0);
		check_tree(root, root, "", 0);
		close(root);
		nftw(out, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	}
	CHECK(count(tmp) == 0);
	/* The input's blob goes, unless it is one of the three above. */
	if (size > 3 && store_blob_path(s, hash, blob, sizeof(blob), &err) == 0)
		unlink(blob);
	return 0;
}
