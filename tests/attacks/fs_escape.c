/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Host file access and writes outside the granted paths.
 * usage: fs_escape [RO_DIR]   (RO_DIR: a read-only bind to try to write)
 */
#include "attack.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static long open_read(const char *p)
{
	int fd = open(p, O_RDONLY);
	if (fd < 0)
		return -1;
	char b[16];
	ssize_t n = read(fd, b, sizeof(b));
	close(fd);
	if (n <= 0) {
		errno = n == 0 ? ENODATA : errno;
		return -1; /* empty: masked */
	}
	return 0;
}

static long create_file(const char *p)
{
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return -1;
	close(fd);
	unlink(p);
	return 0;
}

static long append_file(const char *p)
{
	int fd = open(p, O_WRONLY | O_APPEND);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	MUST_FAIL("read /etc/shadow", open_read("/etc/shadow"));
	MUST_FAIL("read /root", open("/root", O_RDONLY | O_DIRECTORY));
	MUST_FAIL("read /home", open("/home", O_RDONLY | O_DIRECTORY));
	MUST_FAIL("read /sys", open("/sys/kernel", O_RDONLY | O_DIRECTORY));
	MUST_FAIL("read through /proc/1/root", open_read("/proc/1/root/etc/shadow"));
	MUST_FAIL("read through /proc/self/root/..", open_read("/proc/self/root/../../etc/shadow"));
	MUST_FAIL("write /etc/passwd", append_file("/etc/passwd"));
	MUST_FAIL("create /evil", create_file("/evil"));
	MUST_FAIL("create /etc/evil", create_file("/etc/evil"));
	MUST_FAIL("create /usr/bin/evil", create_file("/usr/bin/evil"));
	MUST_FAIL("write /usr/bin/sh", append_file("/usr/bin/sh"));
	MUST_FAIL("create /dev/evil", create_file("/dev/evil"));
	MUST_FAIL("chmod /usr/bin/env", chmod("/usr/bin/env", 04777));
	MUST_FAIL("rename /etc/hosts", rename("/etc/hosts", "/etc/hosts2"));
	MUST_FAIL("mknod char device", mknod("/tmp/mem", S_IFCHR | 0666, makedev(1, 1)));
	MUST_FAIL("mknod block device", mknod("/tmp/vda", S_IFBLK | 0666, makedev(254, 0)));
	MUST_FAIL("hard link a system file", link("/usr/bin/env", "/tmp/env-link"));
	MUST_FAIL("write /proc/sys/kernel/hostname", append_file("/proc/sys/kernel/hostname"));
	MUST_FAIL("write /proc/sys/vm/drop_caches", append_file("/proc/sys/vm/drop_caches"));
	MUST_FAIL("write /proc/self/oom_score_adj", append_file("/proc/self/oom_score_adj"));
	if (argc > 1) {
		char p[4096];
		snprintf(p, sizeof(p), "%s/evil", argv[1]);
		MUST_FAIL("create in read-only bind", create_file(p));
		MUST_FAIL("chmod read-only bind", chmod(argv[1], 0777));
	}

	/* Sanity: the granted places are writable. */
	if (create_file("/workspace/ok") < 0)
		escaped("sanity: write /workspace", strerror(errno));
	if (create_file("/tmp/ok") < 0)
		escaped("sanity: write /tmp", strerror(errno));
	if (append_file("/dev/null") < 0)
		escaped("sanity: write /dev/null", strerror(errno));
	return attack_result();
}
