/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for unpacking uploaded bundles (bundle_extract).
 *
 * Each input is unpacked into a fresh directory inside a private one.
 * Invariants: nothing appears beside that directory; what is inside is
 * only directories, regular files of mode 0644 or 0755 and symlinks whose
 * target is relative, without empty components or control characters
 * (nothing is ever unpacked through one),
 * within the depth, entry and byte bounds; a refusal carries a message
 * that starts with "bundle: " and is printable.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "serve/bundle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x))                                                                          \
			abort();                                                                   \
	} while (0)

static char base[64];
static int base_fd = -1;

struct walk {
	size_t entries;
	uint64_t bytes;
};

/* Checks and removes everything below dfd. */
static void check_and_clear(int dfd, unsigned depth, struct walk *w)
{
	CHECK(depth <= BUNDLE_MAX_DEPTH);
	int fd2 = dup(dfd);
	CHECK(fd2 >= 0);
	DIR *d = fdopendir(fd2);
	CHECK(d);
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		struct stat st;
		CHECK(fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0);
		w->entries++;
		if (S_ISDIR(st.st_mode)) {
			int sub = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
			CHECK(sub >= 0);
			check_and_clear(sub, depth + 1, w);
			close(sub);
			CHECK(unlinkat(dfd, de->d_name, AT_REMOVEDIR) == 0);
		} else if (S_ISLNK(st.st_mode)) {
			char t[BUNDLE_MAX_PATH + 2];
			ssize_t n = readlinkat(dfd, de->d_name, t, sizeof(t) - 1);
			CHECK(n > 0 && n <= BUNDLE_MAX_PATH);
			t[n] = '\0';
			CHECK(t[0] != '/');
			CHECK(!strstr(t, "//") && t[n - 1] != '/');
			for (ssize_t i = 0; i < n; i++)
				CHECK((unsigned char)t[i] >= 0x20 && t[i] != 0x7f);
			CHECK(unlinkat(dfd, de->d_name, 0) == 0);
		} else {
			CHECK(S_ISREG(st.st_mode));
			CHECK((st.st_mode & 07777) == 0644 || (st.st_mode & 07777) == 0755);
			CHECK(st.st_nlink == 1);
			w->bytes += (uint64_t)st.st_size;
			CHECK(unlinkat(dfd, de->d_name, 0) == 0);
		}
	}
	closedir(d);
}

static void remove_base(void)
{
	rmdir(base); /* empty between inputs */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (base_fd < 0) {
		umask(022);
		snprintf(base, sizeof(base), "/tmp/fuzz-bundle.XXXXXX");
		CHECK(mkdtemp(base));
		base_fd = open(base, O_RDONLY | O_DIRECTORY);
		CHECK(base_fd >= 0);
		atexit(remove_base);
	}
	CHECK(mkdirat(base_fd, "x", 0700) == 0);
	int fd = openat(base_fd, "x", O_RDONLY | O_DIRECTORY);
	CHECK(fd >= 0);
	struct cdn_err err = { 0 };
	int r = bundle_extract(data, size, fd, &err);
	if (r < 0) {
		CHECK(strncmp(err.msg, "bundle: ", 8) == 0);
		for (const char *p = err.msg; *p; p++)
			CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
	}
	struct walk w = { 0 };
	check_and_clear(fd, 1, &w);
	close(fd);
	if (r == 0)
		CHECK(w.entries <= BUNDLE_MAX_ENTRIES && w.bytes <= BUNDLE_MAX_BYTES);
	CHECK(unlinkat(base_fd, "x", AT_REMOVEDIR) == 0);
	/* nothing beside it */
	int fd2 = dup(base_fd);
	DIR *d = fdopendir(fd2);
	CHECK(d);
	struct dirent *de;
	while ((de = readdir(d)))
		CHECK(!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."));
	closedir(d);
	return 0;
}
