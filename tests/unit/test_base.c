/* SPDX-License-Identifier: Apache-2.0 */
/* The shared helpers of src/base/. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "base/b64.h"
#include "base/cleanup.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/exe.h"
#include "base/file.h"
#include "base/hash.h"
#include "base/openat2.h"
#include "base/proc.h"
#include "base/text.h"
#include "config.h"

/* ---------------------------------------------------------------- cleanup */

static char *made(void)
{
	_cleanup_free_ char *p = strdup("kept");
	_cleanup_free_ char *q = strdup("freed");
	assert_non_null(q);
	return cdn_steal(&p); /* char *, not void *: the type is kept */
}

static void test_steal(void **state)
{
	(void)state;
	char *p = made();
	assert_string_equal(p, "kept");
	int *ip = malloc(sizeof(*ip));
	int *got = cdn_steal(&ip);
	assert_null(ip);
	assert_non_null(got);
	free(got);
	free(p);
	_cleanup_close_ int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	int owned = cdn_steal_fd(&fd);
	assert_int_equal(fd, -1);
	close(owned);
}

/* -------------------------------------------------------------------- err */

static int helper(struct cdn_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* What a module's own error helper looks like on cdn_err_vset. */
static int helper(struct cdn_err *err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cdn_err_vset(err, CDN_ERR_FORBIDDEN, EINVAL, fmt, ap);
	va_end(ap);
	return cdn_err_wrap(err, "file.yaml:%d", 7);
}

static void test_err(void **state)
{
	(void)state;
	struct cdn_err err = { 0 };
	assert_int_equal(err.kind, CDN_ERR_USER);
	assert_int_equal(cdn_err_set(&err, ENOENT, "open %s", "x"), -ENOENT);
	assert_string_equal(err.msg, "open x: No such file or directory");
	assert_int_equal(err.code, ENOENT);
	assert_int_equal(err.kind, CDN_ERR_NOT_FOUND);
	assert_int_equal(cdn_err_msg(&err, -EEXIST, "taken"), -EEXIST);
	assert_string_equal(err.msg, "taken");
	assert_int_equal(err.kind, CDN_ERR_CONFLICT);
	assert_int_equal(helper(&err, "no %s", "way"), -EINVAL);
	assert_string_equal(err.msg, "file.yaml:7: no way");
	assert_int_equal(err.kind, CDN_ERR_FORBIDDEN); /* told, and kept by wrap */
	assert_int_equal(err.code, EINVAL);
	assert_int_equal(cdn_err_kind_of(EACCES), CDN_ERR_FORBIDDEN);
	assert_int_equal(cdn_err_kind_of(-EPERM), CDN_ERR_FORBIDDEN);
	assert_int_equal(cdn_err_kind_of(ENOSPC), CDN_ERR_INTERNAL);
	assert_int_equal(cdn_err_kind_of(ENOMEM), CDN_ERR_INTERNAL);
	assert_int_equal(cdn_err_kind_of(EIO), CDN_ERR_INTERNAL);
	assert_int_equal(cdn_err_kind_of(E2BIG), CDN_ERR_USER);
	/* NULL is fine; 0 is a bug, recorded as EINVAL. */
	assert_int_equal(cdn_err_set(NULL, EIO, "x"), -EIO);
	assert_int_equal(cdn_err_msg(&err, 0, "oops"), -EINVAL);
	assert_int_equal(err.code, EINVAL);
	/* A message that fills the buffer gets no strerror. */
	char big[CDN_ERR_MSG_MAX + 10];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	cdn_err_set(&err, EIO, "%s", big);
	assert_int_equal(strlen(err.msg), CDN_ERR_MSG_MAX - 1);
	assert_null(strchr(err.msg, ':'));
	cdn_err_clear(&err);
	assert_int_equal(err.code, 0);
	assert_string_equal(err.msg, "");
}

/* ------------------------------------------------------------------ clock */

static void test_rfc3339(void **state)
{
	(void)state;
	char b[CDN_RFC3339_MAX];
	/* 2024-05-01T02:58:36.615Z */
	int64_t ms = 1714532316615;
	assert_string_equal(cdn_rfc3339(ms, CDN_TIME_MS, b, sizeof(b)), "2024-05-01T02:58:36.615Z");
	assert_string_equal(cdn_rfc3339(ms, CDN_TIME_S, b, sizeof(b)), "2024-05-01T02:58:36Z");
	assert_string_equal(cdn_rfc3339(0, CDN_TIME_MS, b, sizeof(b)), "1970-01-01T00:00:00.000Z");
	assert_string_equal(cdn_rfc3339(7, CDN_TIME_MS, b, sizeof(b)), "1970-01-01T00:00:00.007Z");
	assert_string_equal(cdn_rfc3339(999, CDN_TIME_S, b, sizeof(b)), "1970-01-01T00:00:00Z");
	/* Before 1970 the milliseconds count down, not up. */
	assert_string_equal(cdn_rfc3339(-1, CDN_TIME_MS, b, sizeof(b)), "1969-12-31T23:59:59.999Z");
	assert_string_equal(cdn_rfc3339(-1000, CDN_TIME_MS, b, sizeof(b)),
			    "1969-12-31T23:59:59.000Z");
	/* A buffer too small is still terminated. */
	char small[8];
	cdn_rfc3339(ms, CDN_TIME_MS, small, sizeof(small));
	assert_true(memchr(small, '\0', sizeof(small)) != NULL);
}

/* The parser: exact values, each refusal with its reason, and a round
 * trip through cdn_rfc3339 over many instants. */
static void test_rfc3339_parse(void **state)
{
	(void)state;
	int64_t ms = 0;
	const char *why = NULL;
	assert_int_equal(cdn_rfc3339_parse("2024-05-01T02:58:36.615Z", &ms, &why), 0);
	assert_true(ms == 1714532316615 && why == NULL);
	assert_int_equal(cdn_rfc3339_parse("2024-05-01t02:58:36z", &ms, &why), 0);
	assert_true(ms == 1714532316000);
	/* An offset is the same instant in UTC; digits past the third are cut. */
	assert_int_equal(cdn_rfc3339_parse("2024-05-01T04:58:36.6159+02:00", &ms, &why), 0);
	assert_true(ms == 1714532316615);
	assert_int_equal(cdn_rfc3339_parse("2024-04-30T21:28:36.6-05:30", &ms, &why), 0);
	assert_true(ms == 1714532316600);
	assert_int_equal(cdn_rfc3339_parse("1970-01-01T00:00:00Z", &ms, &why), 0);
	assert_true(ms == 0);
	assert_int_equal(cdn_rfc3339_parse("1969-12-31T23:59:59.999Z", &ms, &why), 0);
	assert_true(ms == -1);
	assert_int_equal(cdn_rfc3339_parse("2000-02-29T00:00:00Z", &ms, &why), 0);
	static const struct {
		const char *in, *why;
	} bad[] = {
		{ "", "expected an RFC 3339" },
		{ "2024-05-01", "expected an RFC 3339" },
		{ "2024-05-01 02:58:36Z", "expected an RFC 3339" },
		{ "2024-5-01T02:58:36Z", "expected an RFC 3339" },
		{ "+024-05-01T02:58:36Z", "expected an RFC 3339" },
		{ "2024-13-01T02:58:36Z", "the month" },
		{ "2024-00-01T02:58:36Z", "the month" },
		{ "2023-02-29T02:58:36Z", "no such day" },
		{ "1900-02-29T02:58:36Z", "no such day" },
		{ "2024-04-31T02:58:36Z", "no such day" },
		{ "2024-05-01T24:00:00Z", "the time of day" },
		{ "2016-12-31T23:59:60Z", "the time of day" },
		{ "2024-05-01T02:58:36", "the time needs its offset" },
		{ "2024-05-01T02:58:36.Z", "a fraction" },
		{ "2024-05-01T02:58:36.1234567890Z", "a fraction" },
		{ "2024-05-01T02:58:36+0200", "the offset" },
		{ "2024-05-01T02:58:36+24:00", "the offset" },
		{ "2024-05-01T02:58:36+02", "the offset" },
		{ "2024-05-01T02:58:36Z ", "expected an RFC 3339" },
		{ "2024-05-01T02:58:36ZZ", "expected an RFC 3339" },
	};
	for (size_t i = 0; i < CDN_ARRAY_SIZE(bad); i++) {
		why = NULL;
		assert_int_equal(cdn_rfc3339_parse(bad[i].in, &ms, &why), -EINVAL);
		if (!why || strncmp(why, bad[i].why, strlen(bad[i].why)) != 0)
			fail_msg("%s: %s", bad[i].in, why ? why : "(no reason)");
	}
	char b[CDN_RFC3339_MAX];
	for (int64_t t = -86400000LL * 800; t < 4102444800000LL; t += 86400000LL * 37 + 3723456) {
		assert_int_equal(cdn_rfc3339_parse(cdn_rfc3339(t, CDN_TIME_MS, b, sizeof(b)), &ms, &why), 0);
		assert_true(ms == t);
	}
}

static void test_clocks(void **state)
{
	(void)state;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t before = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	int64_t wall = cdn_wall_ms();
	assert_true(wall >= before && wall - before < 5000);

	uint64_t m0 = cdn_mono_ms(), n0 = cdn_mono_ns();
	struct timespec nap = { 0, 20 * 1000 * 1000 };
	nanosleep(&nap, NULL);
	uint64_t m1 = cdn_mono_ms(), n1 = cdn_mono_ns();
	assert_true(m1 - m0 >= 20);
	assert_true(n1 - n0 >= 20 * 1000 * 1000ull);
	/* The two read one clock. */
	assert_true(n1 / 1000000 >= m1);

	for (uint64_t ms = 0; ms < 3000; ms += 999) {
		struct timespec d = cdn_wall_after(ms);
		int64_t at = (int64_t)d.tv_sec * 1000 + d.tv_nsec / 1000000;
		assert_true(d.tv_nsec >= 0 && d.tv_nsec < 1000000000);
		assert_true(at - cdn_wall_ms() <= (int64_t)ms);
		assert_true(at - cdn_wall_ms() >= (int64_t)ms - 1000);
	}
}

/* ------------------------------------------------------------------- hash */

#define ABC_SHA256 "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

static void test_sha256(void **state)
{
	(void)state;
	char hex[CDN_SHA256_HEX + 1];
	cdn_sha256_hex("abc", 3, hex);
	assert_string_equal(hex, ABC_SHA256);
	cdn_sha256_hex("", 0, hex);
	assert_string_equal(hex,
			    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");

	int p[2];
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], "abc", 3), 3);
	close(p[1]);
	assert_int_equal(cdn_sha256_fd(p[0], hex), 0);
	close(p[0]);
	assert_string_equal(hex, ABC_SHA256);

	assert_true(cdn_sha256_hex_ok(ABC_SHA256, 64));
	assert_true(cdn_sha256_hex_str_ok(ABC_SHA256));
	assert_false(cdn_sha256_hex_str_ok(NULL));
	assert_false(cdn_sha256_hex_str_ok(""));
	assert_false(cdn_sha256_hex_str_ok(ABC_SHA256 "0")); /* too long */
	assert_false(cdn_sha256_hex_ok(ABC_SHA256, 63));     /* too short */
	char upper[] = ABC_SHA256;
	upper[0] = 'B';
	assert_false(cdn_sha256_hex_str_ok(upper)); /* one spelling only */
	char nul[] = ABC_SHA256;
	nul[10] = '\0';
	assert_false(cdn_sha256_hex_ok(nul, 64));
	char g[] = ABC_SHA256;
	g[63] = 'g';
	assert_false(cdn_sha256_hex_str_ok(g));
}

/* ------------------------------------------------------------------- file */

static void test_dir_names(void **state)
{
	(void)state;
	char dir[] = "/tmp/cdn-dir-names.XXXXXX";
	assert_non_null(mkdtemp(dir));
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	for (int i = 0; i < 3; i++) {
		char name[8];
		snprintf(name, sizeof(name), "f%d", i);
		int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		assert_true(fd >= 0);
		close(fd);
	}
	char **names;
	size_t n;
	bool more = true;
	assert_int_equal(cdn_dir_names(dfd, 10, &more, &names, &n), 0);
	assert_int_equal(n, 3);
	assert_false(more);
	for (size_t i = 0; i < n; i++)
		assert_true(strcmp(names[i], ".") != 0 && strcmp(names[i], "..") != 0);
	cdn_names_free(names, n);
	/* Past max: the first max with more, or -E2BIG without. */
	assert_int_equal(cdn_dir_names(dfd, 2, &more, &names, &n), 0);
	assert_int_equal(n, 2);
	assert_true(more);
	cdn_names_free(names, n);
	assert_int_equal(cdn_dir_names(dfd, 2, NULL, &names, &n), -E2BIG);
	assert_null(names);
	/* The caller's fd keeps its offset: a second listing sees it all. */
	assert_int_equal(cdn_dir_names(dfd, 10, NULL, &names, &n), 0);
	assert_int_equal(n, 3);
	cdn_names_free(names, n);
	for (int i = 0; i < 3; i++) {
		char name[8];
		snprintf(name, sizeof(name), "f%d", i);
		unlinkat(dfd, name, 0);
	}
	close(dfd);
	rmdir(dir);
}

static void test_write_all(void **state)
{
	(void)state;
	/* More than a pipe holds, read on the other side as it is written:
	 * write(2) returns short, and every byte arrives once, in order. */
	int p[2];
	assert_int_equal(pipe(p), 0);
	size_t len = 1 << 20;
	char *buf = malloc(len);
	assert_non_null(buf);
	for (size_t i = 0; i < len; i++)
		buf[i] = (char)(i * 7);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		_exit(cdn_write_all(p[1], buf, len) == 0 ? 0 : 1);
	}
	close(p[1]);
	char *got = malloc(len + 1);
	size_t n = 0;
	for (ssize_t r; (r = read(p[0], got + n, len + 1 - n)) > 0;)
		n += (size_t)r;
	close(p[0]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_int_equal(n, len);
	assert_memory_equal(got, buf, len);
	free(got);

	/* A full non-blocking pipe: -EAGAIN, not a loop. */
	assert_int_equal(pipe2(p, O_NONBLOCK), 0);
	assert_int_equal(cdn_write_all(p[1], buf, len), -EAGAIN);
	close(p[0]);
	close(p[1]);
	free(buf);
	assert_int_equal(cdn_write_all(-1, "x", 1), -EBADF);
	assert_int_equal(cdn_write_all(-1, "", 0), 0);
}

static void test_write_once_at(void **state)
{
	(void)state;
	char dir[] = "/tmp/cdn-test-XXXXXX";
	assert_non_null(mkdtemp(dir));
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	assert_int_equal(cdn_write_once_at(dfd, "v", "1"), -ENOENT); /* never creates */
	int fd = openat(dfd, "v", O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(cdn_write_once_at(dfd, "v", "max 100000"), 0);
	char b[32] = "";
	fd = openat(dfd, "v", O_RDONLY | O_CLOEXEC);
	assert_int_equal(read(fd, b, sizeof(b) - 1), 10);
	close(fd);
	assert_string_equal(b, "max 100000");
	char path[64];
	snprintf(path, sizeof(path), "%s/v", dir);
	assert_int_equal(cdn_write_once_at(AT_FDCWD, path, "2"), 0);
	unlinkat(dfd, "v", 0);
	close(dfd);
	rmdir(dir);
}

/* -------------------------------------------------------------------- exe */

static void test_exe(void **state)
{
	(void)state;
	char self[4096], sib[4096];
	assert_int_equal(cdn_self_exe(self, sizeof(self)), 0);
	const char *base = strrchr(self, '/');
	assert_non_null(base);
	assert_string_equal(base, "/test_base");
	/* A sibling is looked for next to the running binary first. */
	assert_int_equal(cdn_sibling_exe("test_base", sib, sizeof(sib)), 0);
	assert_string_equal(sib, self);
	/* Then in the libexec directory, whose path is left in out. */
	assert_int_equal(cdn_sibling_exe("no-such-cordon-binary", sib, sizeof(sib)), -ENOENT);
	assert_string_equal(sib, CORDON_LIBEXECDIR "/no-such-cordon-binary");
	assert_int_equal(cdn_self_exe(self, 4), -ENAMETOOLONG);
}

/* ---------------------------------------------------------------- openat2 */

struct tree {
	char dir[32];
	int fd;
};

static void tree_make(struct tree *t)
{
	snprintf(t->dir, sizeof(t->dir), "/tmp/cdn-openat2-XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	t->fd = open(t->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(t->fd >= 0);
	assert_int_equal(mkdirat(t->fd, "a", 0755), 0);
	assert_int_equal(mkdirat(t->fd, "a/b", 0755), 0);
	int f = openat(t->fd, "a/f", O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	assert_true(f >= 0);
	close(f);
	static const char *const links[][2] = {
		{ "a/up", "../.." },	  /* climbs out */
		{ "a/rel", "f" },	  /* stays in */
		{ "a/bl", "b" },	  /* a directory, inside */
		{ "abs", "/a/f" },	  /* absolute: the root's a/f under IN_ROOT */
		{ "esc", "/etc/passwd" }, /* absolute, out */
		{ "dd", ".." },		  /* the root's parent */
		{ "loop", "loop" },	  /* ELOOP */
		{ "dl", "a" },		  /* a directory, inside */
		{ "dangling", "nothere" },
	};
	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++)
		assert_int_equal(symlinkat(links[i][1], t->fd, links[i][0]), 0);
}

static void tree_free(struct tree *t)
{
	char cmd[64];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", t->dir);
	assert_int_equal(system(cmd), 0);
	close(t->fd);
}

static int kernel_openat2(int dirfd, const char *path, int flags, mode_t mode, uint64_t resolve)
{
	struct open_how how = { .flags = (uint64_t)flags, .mode = mode, .resolve = resolve };
	return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

/* Runs fn and describes the outcome: "ok DEV:INO" or "errno N". */
static void outcome(int fd, char *out, size_t cap)
{
	struct stat st;
	if (fd >= 0 && fstat(fd, &st) == 0)
		snprintf(out, cap, "ok %lu:%lu", (unsigned long)st.st_dev,
			 (unsigned long)st.st_ino);
	else
		snprintf(out, cap, "errno %d", fd < 0 ? errno : -1);
	if (fd >= 0)
		close(fd);
}

/* The fallback gives the kernel's answer for each path and flag set. */
static void test_openat2_matches_kernel(void **state)
{
	(void)state;
	if (kernel_openat2(AT_FDCWD, ".", O_PATH, 0, RESOLVE_BENEATH) < 0 && errno == ENOSYS)
		skip();
	struct tree t;
	tree_make(&t);
	static const char *const paths[] = {
		"a",	    "a/f",	     "a/",
		"a/b/",	    "a/./f",	     "./a//f",
		"a/b/../f", "a/up",	     "a/up/x",
		"a/rel",    "a/bl/",	     "a/bl/../f",
		"abs",	    "esc",	     "dd",
		"dd/a/f",   "loop",	     "dl/f",
		"dl/rel",   "dangling",	     "..",
		"../x",	    "/a/f",	     "a/f/x",
		"nothere",  "a/b/../../a/f", "a/b/../../../a/f",
		".",	    "dl/../a/f",
	};
	static const uint64_t resolves[] = {
		RESOLVE_BENEATH,
		RESOLVE_IN_ROOT,
		RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS,
		RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS,
		RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
		RESOLVE_IN_ROOT | RESOLVE_NO_XDEV,
		RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
	};
	static const int flagsets[] = {
		O_PATH | O_CLOEXEC,
		O_RDONLY | O_CLOEXEC,
		O_RDONLY | O_NOFOLLOW | O_CLOEXEC,
		O_RDONLY | O_DIRECTORY | O_CLOEXEC,
		O_PATH | O_NOFOLLOW | O_CLOEXEC,
	};
	for (size_t p = 0; p < sizeof(paths) / sizeof(paths[0]); p++)
		for (size_t r = 0; r < sizeof(resolves) / sizeof(resolves[0]); r++)
			for (size_t f = 0; f < sizeof(flagsets) / sizeof(flagsets[0]); f++) {
				char want[64], got[64], via[64];
				outcome(kernel_openat2(t.fd, paths[p], flagsets[f], 0, resolves[r]),
					want, sizeof(want));
				outcome(cdn_openat2_emulated(t.fd, paths[p], flagsets[f], 0,
							     resolves[r]),
					got, sizeof(got));
				outcome(cdn_openat2(t.fd, paths[p], flagsets[f], 0, resolves[r]),
					via, sizeof(via));
				if (strcmp(want, got) != 0 || strcmp(want, via) != 0)
					fail_msg(
					    "%s resolve 0x%llx flags 0%o: kernel %s, fallback %s, "
					    "cdn_openat2 %s",
					    paths[p], (unsigned long long)resolves[r],
					    (unsigned)flagsets[f], want, got, via);
			}

	/* Creating: beneath, never through a link, never twice. */
	int cf = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
	uint64_t cr =
	    RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
	int fd = cdn_openat2_emulated(t.fd, "a/new", cf, 0644, cr);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(cdn_openat2_emulated(t.fd, "a/new", cf, 0644, cr), -1);
	assert_int_equal(errno, EEXIST);
	assert_int_equal(cdn_openat2_emulated(t.fd, "dl/new2", cf, 0644, cr), -1);
	assert_int_equal(errno, ELOOP);
	assert_int_equal(cdn_openat2_emulated(t.fd, "a/up/new3", cf, 0644, cr), -1);
	assert_int_equal(errno, ELOOP);
	/* Under RESOLVE_IN_ROOT a dangling link's target is made, in the
	 * root, as the kernel does. */
	fd = cdn_openat2_emulated(t.fd, "dangling", O_WRONLY | O_CREAT | O_CLOEXEC, 0644,
				  RESOLVE_IN_ROOT);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(faccessat(t.fd, "nothere", F_OK, 0), 0);

	/* What the fallback does not promise, it refuses. */
	assert_int_equal(cdn_openat2_emulated(t.fd, "a", O_PATH, 0, 0), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(
	    cdn_openat2_emulated(t.fd, "a", O_PATH, 0, RESOLVE_BENEATH | RESOLVE_IN_ROOT), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(cdn_openat2_emulated(t.fd, "", O_PATH, 0, RESOLVE_BENEATH), -1);
	assert_int_equal(errno, ENOENT);
	tree_free(&t);
}

/* Where openat2 answers ENOSYS (a seccomp profile that predates it, as
 * here, or an old kernel), cdn_openat2 walks instead, just as strictly. */
static void test_openat2_fallback_in_use(void **state)
{
	(void)state;
	struct tree t;
	tree_make(&t);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct sock_filter f[] = {
			BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat2, 0, 1),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		};
		struct sock_fprog prog = { sizeof(f) / sizeof(f[0]), f };
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
		    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
			_exit(2);
		if (kernel_openat2(t.fd, "a/f", O_PATH, 0, RESOLVE_BENEATH) != -1 ||
		    errno != ENOSYS)
			_exit(3);
		for (int i = 0; i < 2; i++) { /* the probe, then the remembered answer */
			int fd =
			    cdn_openat2(t.fd, "a/rel", O_RDONLY | O_CLOEXEC, 0, RESOLVE_BENEATH);
			if (fd < 0)
				_exit(4);
			close(fd);
			if (cdn_openat2(t.fd, "a/up/etc", O_PATH, 0, RESOLVE_BENEATH) != -1 ||
			    errno != EXDEV)
				_exit(5);
			if (cdn_openat2(t.fd, "a/rel", O_RDONLY, 0,
					RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) != -1 ||
			    errno != ELOOP)
				_exit(6);
		}
		_exit(0);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	tree_free(&t);
}

/* Mount crossings and magic links, against the kernel, on this machine's
 * own /, /proc and /etc. */
static void test_openat2_mounts(void **state)
{
	(void)state;
	if (kernel_openat2(AT_FDCWD, ".", O_PATH, 0, RESOLVE_BENEATH) < 0 && errno == ENOSYS)
		skip();
	int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	int proc = open("/proc/self", O_PATH | O_DIRECTORY | O_CLOEXEC);
	assert_true(root >= 0 && proc >= 0);
	static const char *const paths[] = { "proc/version", "etc/passwd", "etc/hostname",
					     "usr/bin/env",  "dev/null",   "tmp" };
	for (int xdev = 0; xdev < 2; xdev++)
		for (size_t p = 0; p < sizeof(paths) / sizeof(paths[0]); p++) {
			uint64_t r = RESOLVE_BENEATH | (xdev ? RESOLVE_NO_XDEV : 0);
			char want[64], got[64];
			outcome(kernel_openat2(root, paths[p], O_PATH | O_CLOEXEC, 0, r), want,
				sizeof(want));
			outcome(cdn_openat2_emulated(root, paths[p], O_PATH | O_CLOEXEC, 0, r), got,
				sizeof(got));
			if (strcmp(want, got) != 0)
				fail_msg("/%s xdev %d: kernel %s, fallback %s", paths[p], xdev,
					 want, got);
		}
	/* /proc/self/fd/N, exe and cwd are magic links, refused with or
	 * without RESOLVE_NO_MAGICLINKS; /proc/self itself is a plain one. */
	int procfs = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
	assert_true(procfs >= 0);
	const struct {
		int *dir;
		const char *path;
	} links[] = { { &proc, "fd/0" },     { &proc, "exe" },	       { &proc, "cwd" },
		      { &proc, "cwd/tmp" },  { &procfs, "self/fd" },   { &procfs, "self" },
		      { &procfs, "mounts" }, { &procfs, "self/fd/0" } };
	static const uint64_t how[] = { RESOLVE_BENEATH, RESOLVE_IN_ROOT,
					RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
					RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
	for (size_t p = 0; p < sizeof(links) / sizeof(links[0]); p++)
		for (size_t h = 0; h < sizeof(how) / sizeof(how[0]); h++) {
			char want[64], got[64];
			outcome(kernel_openat2(*links[p].dir, links[p].path, O_PATH | O_CLOEXEC, 0,
					       how[h]),
				want, sizeof(want));
			outcome(cdn_openat2_emulated(*links[p].dir, links[p].path,
						     O_PATH | O_CLOEXEC, 0, how[h]),
				got, sizeof(got));
			if (strcmp(want, got) != 0)
				fail_msg("/proc %s resolve 0x%llx: kernel %s, fallback %s",
					 links[p].path, (unsigned long long)how[h], want, got);
		}
	close(procfs);
	close(root);
	close(proc);
}

/* ------------------------------------------------------------------- text */

static void test_printable(void **state)
{
	(void)state;
	char b[64];
	const char esc[] = "a\x1b]0;owned\x07"
			   "b\xc2\x9b"
			   "2Jc\xc3\xa9\x7f";
	assert_string_equal(cdn_printable_str(b, sizeof(b), esc, 0), "a?]0;owned?b??2Jc???");
	assert_string_equal(cdn_printable_str(b, sizeof(b), esc, CDN_TEXT_UTF8),
			    "a?]0;owned?b??2Jc\xc3\xa9?");
	assert_string_equal(cdn_printable_str(b, sizeof(b), "a\\b'c\n", CDN_TEXT_ESCAPE),
			    "a\\x5cb\\x27c\\x0a");
	assert_string_equal(cdn_printable_str(b, sizeof(b), NULL, 0), "");
	assert_string_equal(cdn_printable(b, sizeof(b), "a\0b", 3, 0), "a?b");
	/* Cut: at cap - 1, or at cap - 4 and "..." */
	assert_string_equal(cdn_printable_str(b, 4, "abcdef", 0), "abc");
	assert_string_equal(cdn_printable_str(b, 7, "abcdef", CDN_TEXT_ELLIPSIS), "abc...");
	assert_string_equal(cdn_printable_str(b, 7, "abc", CDN_TEXT_ELLIPSIS), "abc");
	assert_string_equal(cdn_printable_str(b, 7, "abcd", CDN_TEXT_ELLIPSIS), "abc...");
	assert_string_equal(cdn_printable_str(b, 9, "\n\n\n", CDN_TEXT_ESCAPE), "\\x0a\\x0a");
	assert_string_equal(cdn_printable_str(b, 3, "a\xc2\x85", CDN_TEXT_UTF8), "a");
	/* In place. */
	char t[] = "x\ty\xc2\x80z";
	cdn_printable(t, sizeof(t), t, strlen(t), CDN_TEXT_UTF8);
	assert_string_equal(t, "x?y??z");
	cdn_printable(b, 0, "x", 1, 0); /* no room: nothing written, no crash */
}

/* The copies cdn_printable replaced, as they were, held against it on
 * random input: the same bytes out, but for C1 controls, which the
 * bundle messages and the approvals list now scrub too. */
static void old_ascii(const char *in, char *out, size_t cap)
{
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)in; *p && n + 1 < cap; p++)
		out[n++] = (*p >= 0x20 && *p < 0x7f) ? (char)*p : '?';
	out[n] = '\0';
}

static void old_shown(const char *s, char *buf, size_t cap, size_t max)
{
	size_t k = 0;
	for (; s[k] && k < max && k + 4 < cap; k++)
		buf[k] = s[k] >= 0x20 && s[k] < 0x7f ? s[k] : '?';
	snprintf(buf + k, cap - k, "%s", s[k] ? "..." : "");
}

static void old_tty(char *t)
{
	for (unsigned char *p = (unsigned char *)t; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			*p = '?';
		else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
			p[0] = '?', p[1] = '?';
	}
}

static void old_snip(char *out, size_t cap, const char *p, size_t n, size_t max)
{
	size_t o = 0;
	for (size_t i = 0; i < n && i < max; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'')
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
	}
	if (n > max) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

static void test_printable_as_before(void **state)
{
	(void)state;
	srandom(11);
	for (int round = 0; round < 20000; round++) {
		char in[96];
		size_t len = (size_t)random() % (sizeof(in) - 1);
		for (size_t i = 0; i < len; i++) {
			/* Mostly printable, with controls, C1 pairs and NUL-free high bytes. */
			long r = random() % 10;
			in[i] = r < 6 ? (char)(0x20 + random() % 95)
				: r < 8 ? (char)(1 + random() % 31)
				: r < 9 ? (char)0xc2
					: (char)(0x80 + random() % 128);
		}
		in[len] = '\0';
		char want[512], got[512];
		size_t cap = 1 + (size_t)random() % 80;
		old_ascii(in, want, cap);
		assert_string_equal(cdn_printable_str(got, cap, in, 0), want);
		old_shown(in, want, 68, 64);
		assert_string_equal(cdn_printable_str(got, 68, in, CDN_TEXT_ELLIPSIS), want);
		strcpy(want, in);
		old_tty(want);
		assert_string_equal(cdn_printable_str(got, sizeof(got), in, CDN_TEXT_UTF8), want);
		old_snip(want, sizeof(want), in, len, 16);
		cdn_printable(got, 16 * 4 + 1, in, len < 16 ? len : 16, CDN_TEXT_ESCAPE);
		if (len > 16)
			strcat(got, "...");
		assert_string_equal(got, want);
	}
}

/* -------------------------------------------------------------------- b64 */

/* A plain base64 encoder, the textbook way: every 3 bytes make 4
 * characters, '=' pads the end. */
static size_t ref_b64(const unsigned char *in, size_t n, bool url, char *out)
{
	const char *abc = url ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
			      : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		unsigned b0 = in[i], b1 = i + 1 < n ? in[i + 1] : 0, b2 = i + 2 < n ? in[i + 2] : 0;
		out[o++] = abc[b0 >> 2];
		out[o++] = abc[((b0 & 3) << 4) | (b1 >> 4)];
		out[o++] = i + 1 < n ? abc[((b1 & 15) << 2) | (b2 >> 6)] : '=';
		out[o++] = i + 2 < n ? abc[b2 & 63] : '=';
	}
	out[o] = '\0';
	return o;
}

/*
 * For random values at each alignment, with random bytes around them:
 * the needle stands in the plain encoding of the whole at character
 * ceil(8 align / 6), whatever the neighbours are; and it is as long as it
 * can be: the characters just before and after it change with them.
 */
static void test_b64_needle(void **state)
{
	(void)state;
	srandom(7);
	for (int round = 0; round < 3000; round++) {
		unsigned char v[48];
		size_t len = (size_t)random() % sizeof(v);
		for (size_t i = 0; i < len; i++)
			v[i] = (unsigned char)random();
		for (unsigned align = 0; align < 3; align++)
			for (int url = 0; url < 2; url++) {
				enum cdn_b64_alphabet alpha = url ? CDN_B64_URL : CDN_B64_STD;
				char needle[80];
				size_t k = cdn_b64_needle(v, len, align, alpha, needle);
				assert_int_equal(cdn_b64_needle(v, len, align, alpha, NULL), k);
				size_t lo = (8 * align + 5) / 6;
				size_t bits = 8 * (align + len);
				assert_int_equal(k, bits / 6 > lo ? bits / 6 - lo : 0);
				bool before_varies = false, after_varies = false;
				char first_before = 0, first_after = 0;
				for (int t = 0; t < 32; t++) {
					unsigned char whole[64], enc[96];
					size_t tail = 1 + (size_t)random() % 3, n = 0;
					for (unsigned i = 0; i < align; i++)
						whole[n++] = (unsigned char)random();
					memcpy(whole + n, v, len);
					n += len;
					for (size_t i = 0; i < tail; i++)
						whole[n++] = (unsigned char)random();
					ref_b64(whole, n, url, (char *)enc);
					assert_memory_equal(enc + lo, needle, k);
					if (k == 0)
						continue;
					char b = lo ? (char)enc[lo - 1] : 0, a = (char)enc[lo + k];
					if (t == 0)
						first_before = b, first_after = a;
					before_varies |= b != first_before;
					after_varies |= a != first_after;
				}
				/* A value of whole groups has no partial character
				 * before it (align 0) or after it ((align + len) % 3
				 * == 0 and 8 bits per 6 leave none). */
				if (k && align)
					assert_true(before_varies);
				if (k && bits % 6)
					assert_true(after_varies);
			}
	}
	/* Bounds. */
	char out[8];
	assert_int_equal(cdn_b64_needle((const unsigned char *)"", 0, 1, CDN_B64_STD, out), 0);
	assert_int_equal(cdn_b64_needle((const unsigned char *)"a", 1, 1, CDN_B64_STD, out), 0);
	assert_int_equal(cdn_b64_needle((const unsigned char *)"a", 1, 2, CDN_B64_STD, out), 1);
	assert_int_equal(out[0], 'h'); /* the low six bits of 'a' end its group */
	assert_int_equal(cdn_b64_needle((const unsigned char *)"abc", 3, 3, CDN_B64_STD, out), 0);
	assert_int_equal(cdn_b64_needle((const unsigned char *)"abc", 3, 0, CDN_B64_STD, out), 4);
	assert_memory_equal(out, "YWJj", 4);
}

/* ------------------------------------------------------------- proc */

/* Liveness of a run's supervisor: this boot, a live pid, cordon's comm and
 * (when recorded) the same start time. */
static void test_proc_liveness(void **state)
{
	(void)state;
	struct cdn_err err = { 0 };
	char boot[CDN_BOOT_ID_MAX];
	assert_int_equal(cdn_boot_id(boot, sizeof(boot), &err), 0);
	assert_int_equal(strlen(boot), 36); /* a UUID, without its newline */
	char tiny[8];
	assert_int_equal(cdn_boot_id(tiny, sizeof(tiny), &err), -EINVAL);

	assert_true(cdn_proc_start((int)getpid()) > 0);
	assert_true(cdn_proc_start(1) <= cdn_proc_start((int)getpid()));
	assert_int_equal(cdn_proc_start(0), 0);
	assert_int_equal(cdn_proc_start(-1), 0);

	/* A child named as cordon's binaries are. */
	int go[2], ready[2];
	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(ready), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char c;
		prctl(PR_SET_NAME, "cordon-full");
		close(go[1]);
		close(ready[0]);
		(void)!write(ready[1], "r", 1);
		(void)!read(go[0], &c, 1); /* until the parent closes its end */
		_exit(0);
	}
	close(go[0]);
	close(ready[1]);
	char c;
	assert_int_equal(read(ready[0], &c, 1), 1); /* the child has its name */
	close(ready[0]);
	uint64_t start = cdn_proc_start((int)pid);
	assert_true(start > 0);
	assert_true(cdn_supervisor_alive((int)pid, boot, boot, 0));
	assert_true(cdn_supervisor_alive((int)pid, boot, boot, start));
	/* The boot id as stored may carry its newline. */
	char nl[CDN_BOOT_ID_MAX + 2];
	snprintf(nl, sizeof(nl), "%s\n", boot);
	assert_true(cdn_supervisor_alive((int)pid, nl, boot, start));
	/* Another start time: the pid was reused by another cordon. */
	assert_false(cdn_supervisor_alive((int)pid, boot, boot, start + 1));
	/* Another boot, no boot, no pid. */
	assert_false(cdn_supervisor_alive((int)pid, "00000000-0000-0000-0000-000000000000", boot,
					  start));
	assert_false(cdn_supervisor_alive((int)pid, "", "", 0));
	assert_false(cdn_supervisor_alive((int)pid, NULL, boot, 0));
	assert_false(cdn_supervisor_alive(0, boot, boot, 0));
	/* Not cordon: this test program. */
	assert_false(cdn_supervisor_alive((int)getpid(), boot, boot, 0));
	/* A zombie is dead. */
	close(go[1]);
	siginfo_t si;
	assert_int_equal(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
	assert_false(cdn_supervisor_alive((int)pid, boot, boot, 0));
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	assert_false(cdn_supervisor_alive((int)pid, boot, boot, 0));
}

/* What serve's process metrics read: the start time agrees with
 * cdn_proc_start, memory and CPU move the right way, boot came first. */
static void test_proc_usage(void **state)
{
	(void)state;
	struct cdn_proc_usage u, later;
	assert_int_equal(cdn_proc_usage((int)getpid(), &u), 0);
	assert_int_equal(u.start_ticks, cdn_proc_start((int)getpid()));
	assert_true(u.rss_pages > 0 && u.vsize_bytes >= u.rss_pages * 4096);
	/* Some CPU time, then the counter has not gone back. */
	volatile uint64_t spin = 0;
	for (uint64_t i = 0; i < 20000000; i++)
		spin = spin + i;
	assert_true(spin > 0);
	assert_int_equal(cdn_proc_usage((int)getpid(), &later), 0);
	assert_true(later.utime_ticks + later.stime_ticks >= u.utime_ticks + u.stime_ticks);
	assert_int_equal(cdn_proc_usage(-1, &u), -ENOENT);
	uint64_t boot;
	assert_int_equal(cdn_boot_time(&boot), 0);
	assert_true(boot > 1000000000 && boot <= (uint64_t)time(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_steal),
		cmocka_unit_test(test_err),
		cmocka_unit_test(test_rfc3339),
		cmocka_unit_test(test_rfc3339_parse),
		cmocka_unit_test(test_clocks),
		cmocka_unit_test(test_sha256),
		cmocka_unit_test(test_write_all),
		cmocka_unit_test(test_write_once_at),
		cmocka_unit_test(test_exe),
		cmocka_unit_test(test_openat2_matches_kernel),
		cmocka_unit_test(test_openat2_mounts),
		cmocka_unit_test(test_openat2_fallback_in_use),
		cmocka_unit_test(test_printable),
		cmocka_unit_test(test_printable_as_before),
		cmocka_unit_test(test_b64_needle),
		cmocka_unit_test(test_proc_liveness),
		cmocka_unit_test(test_proc_usage),
		cmocka_unit_test(test_dir_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
