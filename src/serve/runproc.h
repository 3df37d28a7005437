/* SPDX-License-Identifier: Apache-2.0 */
/* Private to src/serve/: starting a run's process (runproc.c), shared by
 * serve's dispatcher, its warm pool and cordon worker. */
#ifndef CORDON_SERVE_RUNPROC_H
#define CORDON_SERVE_RUNPROC_H

#include <stddef.h>
#include <sys/types.h>

#define RUNPROC_MAX_PRIVATE 16 /* SERVE_MAX_PRIVATE */

/* What every run process is given. */
struct runproc {
	const char *exe; /* the cordon that runs runs */
	const char *state;
	const char *hosts_file;	 /* NULL: none */
	const char *upstream_ca; /* NULL: none */
	const char *const *allow_private;
	size_t n_allow_private;
	unsigned max_call_depth; /* --max-call-depth; 0: none given */
	unsigned max_calls;	 /* --max-calls; 0: none given */
};

/* Starts `cordon run --state STATE -w WS --claim ID [--lease LEASE] -q ...
 * -- REF` with stdin and stdout on /dev/null and every signal unblocked
 * and default; lease names the worker whose lease the run is under. 0
 * with *pid, or a negative errno. */
int runproc_spawn(const struct runproc *p, const char *ws, const char *id, const char *ref,
		  const char *lease, pid_t *pid);
/* Starts `cordon run --state STATE --standby -q ...` (the warm pool's, see
 * pool.c) reading its claim from stdin_fd. */
int runproc_spawn_standby(const struct runproc *p, int stdin_fd, pid_t *pid);

#endif
