/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/exe.h"
#include "cli/cli.h"
#include "config.h"

void cli_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("cordon: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

void cli_error_err(const struct cdn_err *err)
{
	cli_error("%s", err->msg[0] ? err->msg : "unknown error");
}

int cli_exit_status(const struct cdn_err *err)
{
	switch (err->kind) {
	case CDN_ERR_USER:
	case CDN_ERR_NOT_FOUND:
	case CDN_ERR_CONFLICT:
	case CDN_ERR_FORBIDDEN:
	case CDN_ERR_INTERNAL: return EXIT_CORDON;
	}
	return EXIT_CORDON;
}

int cli_fail(const struct cdn_err *err)
{
	cli_error_err(err);
	return cli_exit_status(err);
}

bool cli_color(void)
{
	const char *nc = getenv("NO_COLOR");
	return isatty(STDERR_FILENO) && !(nc && *nc);
}

char **cli_argv;

/*
 * `cordon` is built twice. The light binary links only the sandbox core,
 * so `cordon exec` without the egress engine starts as fast as a bare
 * sandbox can (no libevent, OpenSSL, ... to load and relocate). Everything
 * else runs in `cordon-full`, next to it or in the libexec directory,
 * which the light binary executes in its place with the same arguments.
 */
int cli_exec_full(void)
{
#ifdef CORDON_FULL
	cli_error("internal error: already the full binary");
	return EXIT_CORDON;
#else
	char path[PATH_MAX];
	if (cdn_sibling_exe("cordon-full", path, sizeof(path)) == 0)
		execv(path, cli_argv);
	cli_error("cannot run %s: %s", path, strerror(errno));
	return EXIT_CORDON;
#endif
}

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{ "exec", cmd_exec, "run one command in a fresh sandbox, then destroy it" },
#ifdef CORDON_FULL
	{ "run", cmd_run, "run an agent in a fresh sandbox and record what ran" },
	{ "agent", cmd_agent, "register and list agents" },
	{ "capability", cmd_capability, "register and list capabilities" },
	{ "env", cmd_env, "register and list envs (plain environment variables)" },
	{ "grant", cmd_grant, "let an agent use a capability" },
	{ "secret", cmd_secret, "set, list and remove secrets in the vault" },
	{ "runs", cmd_runs, "list runs and show their results" },
	{ "logs", cmd_logs, "print (and follow) a run's events" },
#ifdef CORDON_CURL
	{ "serve", cmd_serve, "run the API, the dashboard and the run queue" },
	{ "init", cmd_init, "create the state and the first owner API key" },
	{ "keys", cmd_keys, "create, list and revoke API keys" },
	{ "evidence", cmd_evidence, "export and verify a run's signed evidence pack" },
#endif
	{ "approvals", cmd_approvals, "list and decide requests waiting for a human" },
	{ "audit", cmd_audit, "verify a hash-chained audit log" },
#endif
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: cordon COMMAND [OPTIONS]\n"
		"\n"
		"cordon runs AI agents and commands in throwaway sandboxes that hold only\n"
		"what they were granted.\n"
		"\n"
		"Commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\n"
		     "Run 'cordon COMMAND --help' for the options of a command.\n"
		     "Options:\n"
		     "  -h, --help     show this help\n"
		     "  -V, --version  show the version\n");
}

int main(int argc, char **argv)
{
	cli_argv = argv;
	if (argc < 2) {
		usage(stderr);
		return EXIT_CORDON;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
#ifndef CORDON_FULL
		return cli_exec_full();
#elif !defined(CORDON_CURL)
		return cli_exec_api(); /* it lists every command */
#endif
		usage(stdout);
		return 0;
	}
	if (strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
		printf("cordon %s\n", CORDON_VERSION);
		return 0;
	}
#if defined(CORDON_FULL) && !defined(CORDON_CURL)
	/* The state commands talk to cordon serve when CORDON_URL is set;
	 * the HTTP client lives in cordon-api. */
	static const char *const remote_capable[] = { "agent",	 "capability", "env",
						      "grant",	 "secret",     "runs",
						      "logs",	 "approvals",  "keys" };
	bool help = argc > 2 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0);
	for (size_t i = 0; cli_remote() && !help && i < sizeof(remote_capable) / sizeof(char *); i++)
		if (strcmp(cmd, remote_capable[i]) == 0)
			return cli_exec_api();
	/* The service commands live in cordon-api too. */
	static const char *const service[] = { "serve", "init", "keys", "evidence" };
	for (size_t i = 0; i < sizeof(service) / sizeof(char *); i++)
		if (strcmp(cmd, service[i]) == 0)
			return cli_exec_api();
#endif
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(cmd, commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
#ifndef CORDON_FULL
	return cli_exec_full();
#endif
	cli_error("unknown command '%s' (see 'cordon --help')", cmd);
	return EXIT_CORDON;
}
