/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The 32-bit ABIs: `int 0x80` (i386 syscall table) and the x32 bit
 * (0x40000000) reach syscall tables the x86_64 filter does not describe.
 * The sandbox must kill the process (SIGSYS) rather than run them.
 */
#include "attack.h"

#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void try_child(const char *name, void (*fn)(void))
{
	pid_t p = fork();
	if (p == 0) {
		fn();
		_exit(42); /* the syscall returned: not killed */
	}
	int st;
	if (p < 0 || waitpid(p, &st, 0) != p) {
		escaped(name, "could not run the probe");
		return;
	}
	if (WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS)
		blocked(name, "killed by SIGSYS");
	else if (WIFSIGNALED(st)) {
		char b[64];
		snprintf(b, sizeof(b), "killed by signal %d, expected SIGSYS", WTERMSIG(st));
		escaped(name, b);
	} else
		escaped(name, "the syscall ran and returned");
}

static void int80_getpid(void)
{
	long ret;
	/* i386 __NR_getpid = 20 */
	__asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory");
	(void)ret;
}

static void int80_mount(void)
{
	long ret;
	/* i386 __NR_mount = 21: a denied call, through the other table */
	__asm__ volatile("int $0x80" : "=a"(ret) : "a"(21L), "b"(0L), "c"(0L), "d"(0L) : "memory");
	(void)ret;
}

static void x32_getpid(void)
{
	syscall(0x40000000L | 39); /* x32 getpid */
}

static void x32_unshare(void)
{
	syscall(0x40000000L | 272, 0x10000000L); /* x32 unshare(CLONE_NEWUSER) */
}

int main(void)
{
	try_child("int 0x80 getpid", int80_getpid);
	try_child("int 0x80 mount", int80_mount);
	try_child("x32 getpid", x32_getpid);
	try_child("x32 unshare", x32_unshare);
	return attack_result();
}
