/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "egress/control_client.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "egress/engine.h"

#define REPLY_MAX 65536

json_t *egress_control_ask(const char *path, json_t *req)
{
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	if (fd < 0 || strlen(path) >= sizeof(sun.sun_path))
		return NULL;
	strcpy(sun.sun_path, path);
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		return NULL;
	_cleanup_free_ char *line = json_dumps(req, JSON_COMPACT);
	if (!line || write(fd, line, strlen(line)) < 0 || write(fd, "\n", 1) != 1)
		return NULL;
	_cleanup_free_ char *buf = malloc(REPLY_MAX);
	size_t got = 0;
	while (buf && got < REPLY_MAX - 1) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 5000) <= 0)
			return NULL;
		ssize_t n = read(fd, buf + got, REPLY_MAX - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
		if (memchr(buf, '\n', got))
			break;
	}
	if (!buf || got == 0)
		return NULL;
	return json_loadb(buf, got, JSON_DISABLE_EOF_CHECK, NULL);
}

int egress_control_each(int (*fn)(const char *path, void *ctx), void *ctx, struct cdn_err *err)
{
	char dir[256];
	if (egress_control_dir(dir, sizeof(dir), false, err) < 0)
		return -1;
	_cleanup_closedir_ DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : cdn_err_set(err, errno, "open %s", dir);
	struct dirent *de;
	int count = 0;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (l < 6 || strcmp(de->d_name + l - 5, ".sock") != 0)
			continue;
		char path[512];
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		int r = fn(path, ctx);
		if (r > 0)
			return r;
		count++;
	}
	return 0;
}

