/* SPDX-License-Identifier: Apache-2.0 */
/* /proc: host information masked, kernel knobs read-only, pid 1 out of reach. */
#include "attack.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

/* Fails (blocked) when the file is missing, unreadable or empty. */
static long read_some(const char *p)
{
	int fd = open(p, O_RDONLY);
	if (fd < 0)
		return -1;
	char b[256];
	ssize_t n = read(fd, b, sizeof(b));
	int e = errno;
	close(fd);
	if (n <= 0) {
		errno = n == 0 ? ENODATA : e;
		return -1;
	}
	return 0;
}

static volatile sig_atomic_t got_term;

static void on_term(int sig)
{
	(void)sig;
	got_term = 1;
}

/*
 * Signals to our pid 1. Landlock's signal scope (ABI >= 6) refuses them
 * (EPERM). Older kernels deliver them: the kernel drops SIGKILL to a
 * namespace's init sent from inside, and pid 1 ignores what it would
 * otherwise forward, so the payload (us) must not receive it back.
 */
static void signal_pid1(const char *name, int sig)
{
	struct sigaction sa = { .sa_handler = on_term };
	sigaction(SIGTERM, &sa, NULL);
	got_term = 0;
	errno = 0;
	if (kill(1, sig) < 0) {
		if (errno == EPERM)
			blocked(name, strerror(errno));
		else
			escaped(name, strerror(errno));
		return;
	}
	/* Give pid 1 time to (wrongly) forward it; slow emulators included. */
	for (int i = 0; i < 50 && !got_term; i++)
		usleep(20000);
	if (got_term)
		escaped(name, "pid 1 forwarded a signal sent from inside the sandbox");
	else if (kill(1, 0) < 0)
		escaped(name, "pid 1 is gone");
	else
		degraded(name, "delivered (no Landlock signal scope) and ignored by pid 1");
}

static long write_some(const char *p, const char *v)
{
	int fd = open(p, O_WRONLY);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, v, strlen(v));
	int e = errno;
	close(fd);
	errno = e;
	return n < 0 ? -1 : 0;
}

int main(void)
{
	static const char *const masked[] = { "/proc/kcore", "/proc/keys", "/proc/kallsyms",
					      "/proc/timer_list", "/proc/sched_debug",
					      "/proc/kmsg", "/proc/iomem", "/proc/modules",
					      "/proc/slabinfo", "/proc/vmallocinfo" };
	for (size_t i = 0; i < sizeof(masked) / sizeof(masked[0]); i++) {
		char name[128];
		snprintf(name, sizeof(name), "read %s", masked[i]);
		MUST_FAIL(name, read_some(masked[i]));
	}
	MUST_FAIL("list /proc/bus", read_some("/proc/bus/pci/devices"));
	MUST_FAIL("list /proc/irq", read_some("/proc/irq/default_smp_affinity"));
	MUST_FAIL("write /proc/sysrq-trigger", write_some("/proc/sysrq-trigger", "h"));
	MUST_FAIL("write /proc/sys/kernel/core_pattern",
		  write_some("/proc/sys/kernel/core_pattern", "|/tmp/x"));
	MUST_FAIL("write /proc/sys/net/ipv4/ip_forward",
		  write_some("/proc/sys/net/ipv4/ip_forward", "1"));
	MUST_FAIL("read /proc/1/environ", read_some("/proc/1/environ"));
	MUST_FAIL("read /proc/1/mem", read_some("/proc/1/mem"));
	MUST_FAIL("open /proc/1/root", open("/proc/1/root/", O_RDONLY | O_DIRECTORY));
	MUST_FAIL("open /proc/1/cwd", open("/proc/1/cwd/", O_RDONLY | O_DIRECTORY));
	signal_pid1("signal pid 1 (SIGTERM)", SIGTERM);
	signal_pid1("signal pid 1 (SIGKILL)", SIGKILL);

	/* Only the sandbox's own processes are visible. */
	DIR *d = opendir("/proc");
	int pids = 0;
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (de->d_name[0] >= '1' && de->d_name[0] <= '9')
			pids++;
	if (d)
		closedir(d);
	if (pids > 3) {
		char b[64];
		snprintf(b, sizeof(b), "%d processes visible", pids);
		escaped("host processes hidden", b);
	} else
		blocked("host processes hidden", "only the sandbox's own pids");

	/* Sanity: ordinary /proc still works. */
	if (read_some("/proc/self/status") < 0 || read_some("/proc/meminfo") < 0)
		escaped("sanity: /proc readable", strerror(errno));
	return attack_result();
}
