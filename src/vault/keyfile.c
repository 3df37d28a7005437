/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "vault/keyfile.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/file.h"

#define HEX_LEN (2 * KEYFILE_BYTES)
#define B64_LEN 44	 /* standard base64 of 32 bytes, with one '=' */
#define B64_NOPAD_LEN 43 /* the same without the padding */

int keyfile_from_text(const char *text, const char *var, unsigned char key[KEYFILE_BYTES],
		      struct cdn_err *err)
{
	size_t n = strlen(text), got = 0;
	const char *end = NULL;
	if (n == HEX_LEN) {
		bool hex = true;
		for (size_t i = 0; i < n; i++)
			hex &= isxdigit((unsigned char)text[i]) != 0;
		if (hex && sodium_hex2bin(key, KEYFILE_BYTES, text, n, NULL, &got, &end) == 0 &&
		    got == KEYFILE_BYTES && end == text + n)
			return 0;
	} else if (n == B64_LEN || n == B64_NOPAD_LEN) {
		int variant = n == B64_LEN ? sodium_base64_VARIANT_ORIGINAL
					   : sodium_base64_VARIANT_ORIGINAL_NO_PADDING;
		if (sodium_base642bin(key, KEYFILE_BYTES, text, n, NULL, &got, &end, variant) == 0 &&
		    got == KEYFILE_BYTES && end == text + n)
			return 0;
	}
	sodium_memzero(key, KEYFILE_BYTES);
	return cdn_err_msg(err, EINVAL,
			   "%s must be 64 hex digits or the standard base64 of 32 bytes (44 "
			   "characters); the value set (%zu characters) is neither",
			   var, n);
}

static int read_exact(int fd, unsigned char *buf, size_t n)
{
	for (size_t done = 0; done < n;) {
		ssize_t r = read(fd, buf + done, n - done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		done += (size_t)r;
	}
	return 0;
}

/* -ENOENT (err untouched) when absent. */
static int key_read(const char *path, const char *what, unsigned char *key, struct cdn_err *err)
{
	/* O_NOFOLLOW: a symlink would let whoever controls it pick the key.
	 * O_NONBLOCK: a FIFO planted there must not hang the open. */
	_cleanup_close_ int fd =
		open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	if (fd < 0 && errno == ENOENT)
		return -ENOENT;
	if (fd < 0 && errno == ELOOP)
		return cdn_err_msg(err, EPERM,
				   "%s %s is a symbolic link; refusing it (replace it with the key "
				   "file itself)",
				   what, path);
	if (fd < 0)
		return cdn_err_set(err, errno, "open %s %s", what, path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return cdn_err_set(err, errno, "stat %s %s", what, path);
	if (!S_ISREG(st.st_mode))
		return cdn_err_msg(err, EPERM, "%s %s is not a regular file; refusing it", what,
				   path);
	/* Another user's file could have been planted by them, who would then
	 * know (or choose) the key. */
	if (st.st_uid != geteuid())
		return cdn_err_msg(err, EPERM,
				   "%s %s is owned by uid %u, not by this user (uid %u); refusing a "
				   "key another user controls",
				   what, path, (unsigned)st.st_uid, (unsigned)geteuid());
	/* Wider than 0600: others may have read it, and using it would hide
	 * the leak. The operator decides: rotate, or chmod 600. */
	if (st.st_mode & 07177)
		return cdn_err_msg(err, EPERM,
				   "%s %s has mode %04o, wider than 0600; others may have read it "
				   "(rotate the key, or chmod 600 it if they could not)",
				   what, path, (unsigned)(st.st_mode & 07777));
	if (st.st_size != KEYFILE_BYTES)
		return cdn_err_msg(err, EINVAL,
				   "%s %s is %lld bytes; the key file holds exactly %d random bytes",
				   what, path, (long long)st.st_size, KEYFILE_BYTES);
	int r = read_exact(fd, key, KEYFILE_BYTES);
	if (r < 0)
		return cdn_err_set(err, -r, "read %s %s", what, path);
	return 0;
}

/* -EEXIST when another process published its key first. */
static int key_create(const char *dir, const char *file, const char *path, const char *what,
		      unsigned char *key, struct cdn_err *err)
{
	char tmp[PATH_MAX];
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", dir, file) >= sizeof(tmp))
		return cdn_err_set(err, ENAMETOOLONG, "%s in %s", what, dir);
	_cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return cdn_err_set(err, errno, "create %s %s", what, path);
	randombytes_buf(key, KEYFILE_BYTES);
	int r = cdn_write_all(fd, key, KEYFILE_BYTES);
	if (r == 0 && fchmod(fd, 0600) < 0)
		r = -errno;
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (r == 0 && link(tmp, path) < 0)
		r = -errno;
	unlink(tmp);
	if (r == -EEXIST)
		return -EEXIST;
	if (r < 0)
		return cdn_err_set(err, -r, "create %s %s", what, path);
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) < 0)
		return cdn_err_set(err, errno, "sync %s after creating the %s", dir, what);
	return 0;
}

int keyfile_load(const char *dir, const char *file, const char *what, bool create,
		 unsigned char key[KEYFILE_BYTES], char *path, size_t cap, struct cdn_err *err)
{
	if ((size_t)snprintf(path, cap, "%s/%s", dir, file) >= cap)
		return cdn_err_set(err, ENAMETOOLONG, "%s in %s", what, dir);
	int r = key_read(path, what, key, err);
	if (r != -ENOENT || !create)
		return r;
	r = key_create(dir, file, path, what, key, err);
	if (r == -EEXIST) /* lost a race: the winner's key it is */
		r = key_read(path, what, key, err);
	if (r == -ENOENT) /* made, then removed under us */
		r = cdn_err_set(err, ENOENT, "%s %s", what, path);
	return r;
}
