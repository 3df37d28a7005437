/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Who the sandboxed process is: unprivileged ids, no capabilities in any
 * set, no_new_privs, seccomp in filter mode, a single-id user namespace,
 * its own cgroup namespace, loopback only, no inherited fds.
 */
#include "attack.h"

#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

static int status_field(const char *key, char *out, size_t size)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	int found = 0;
	while (f && fgets(line, sizeof(line), f)) {
		size_t kl = strlen(key);
		if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
			char *v = line + kl + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			v[strcspn(v, "\n")] = '\0';
			snprintf(out, size, "%s", v);
			found = 1;
		}
	}
	if (f)
		fclose(f);
	return found;
}

static void expect_field(const char *key, const char *want)
{
	char v[128] = "";
	char name[64];
	snprintf(name, sizeof(name), "%s is %s", key, want);
	if (status_field(key, v, sizeof(v)) && strcmp(v, want) == 0)
		blocked(name, v);
	else
		escaped(name, v[0] ? v : "missing");
}

int main(void)
{
	expect_field("CapInh", "0000000000000000");
	expect_field("CapPrm", "0000000000000000");
	expect_field("CapEff", "0000000000000000");
	expect_field("CapBnd", "0000000000000000");
	expect_field("CapAmb", "0000000000000000");
	expect_field("NoNewPrivs", "1");
	expect_field("Seccomp", "2");

	if (getuid() == 0 || geteuid() == 0 || getgid() == 0)
		escaped("unprivileged ids", "running as uid/gid 0");
	else
		blocked("unprivileged ids", "not root");

	/* Exactly one id mapped, and it is not host root. */
	FILE *f = fopen("/proc/self/uid_map", "r");
	unsigned in, out, cnt;
	int lines = 0, bad = 0;
	while (f && fscanf(f, "%u %u %u", &in, &out, &cnt) == 3) {
		lines++;
		if (out == 0 || cnt != 1)
			bad = 1;
	}
	if (f)
		fclose(f);
	if (lines != 1 || bad)
		escaped("uid_map: one unprivileged id", "host root or a range is mapped");
	else
		blocked("uid_map: one unprivileged id", "ok");

	/* The cgroup namespace hides where the sandbox sits on the host. */
	f = fopen("/proc/self/cgroup", "r");
	char line[512];
	int leak = 0;
	while (f && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		const char *path = strrchr(line, ':');
		if (!path || strcmp(path, ":/") != 0)
			leak = 1;
	}
	if (f)
		fclose(f);
	if (leak)
		escaped("cgroup namespace", line);
	else
		blocked("cgroup namespace", "every path is /");

	/* Loopback only. */
	f = fopen("/proc/net/dev", "r");
	int ifaces = 0, others = 0;
	while (f && fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');
		if (!colon)
			continue;
		ifaces++;
		*colon = '\0';
		char *name = line;
		while (*name == ' ')
			name++;
		if (strcmp(name, "lo") != 0)
			others++;
	}
	if (f)
		fclose(f);
	if (others || ifaces != 1)
		escaped("network: loopback only", "other interfaces present");
	else
		blocked("network: loopback only", "lo");

	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(80) };
	inet_pton(AF_INET, "1.1.1.1", &a.sin_addr);
	MUST_FAIL("connect to the internet", connect(s, (struct sockaddr *)&a, sizeof(a)));
	close(s);
	s = socket(AF_INET, SOCK_DGRAM, 0);
	inet_pton(AF_INET, "8.8.8.8", &a.sin_addr);
	a.sin_port = htons(53);
	MUST_FAIL("UDP to a public resolver", sendto(s, "x", 1, 0, (struct sockaddr *)&a, sizeof(a)));
	close(s);
	/* Landlock: no TCP listeners unless granted with --local-port. Without
	 * its TCP rules (ABI < 4) a listener can be made, but only in the
	 * sandbox's own network namespace, which the checks above show holds
	 * nothing but loopback. */
	s = socket(AF_INET, SOCK_STREAM, 0);
	a.sin_port = htons(8080);
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	errno = 0;
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) < 0)
		blocked("bind a TCP port", strerror(errno));
	else if (others || ifaces != 1)
		escaped("bind a TCP port", "bound, and the network is not loopback only");
	else
		degraded("bind a TCP port", "bound in the sandbox's own loopback-only network namespace "
					    "(no Landlock TCP rules)");
	close(s);

	/* No descriptor but stdio crossed into the sandbox. */
	DIR *d = opendir("/proc/self/fd");
	int extra = 0;
	struct dirent *de;
	char list[256] = "";
	while (d && (de = readdir(d))) {
		int fd = atoi(de->d_name);
		if (de->d_name[0] == '.' || fd <= 2 || fd == dirfd(d))
			continue;
		extra++;
		size_t l = strlen(list);
		snprintf(list + l, sizeof(list) - l, "%d ", fd);
	}
	if (d)
		closedir(d);
	if (extra)
		escaped("no inherited fds", list);
	else
		blocked("no inherited fds", "only 0, 1, 2");
	return attack_result();
}
