/* SPDX-License-Identifier: Apache-2.0 */
/* Forks until the kernel refuses; prints how many processes it got. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void)
{
	int n = 0;
	for (;;) {
		pid_t p = fork();
		if (p == 0) {
			pause();
			_exit(0);
		}
		if (p < 0) {
			printf("fork refused after %d: %s\n", n, strerror(errno));
			fflush(stdout);
			break;
		}
		n++;
		if (n > 100000)
			break;
	}
	pause(); /* hold them until the timeout */
	return 0;
}
