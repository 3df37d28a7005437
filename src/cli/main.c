/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/cleanup.h"
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

bool cli_remote(void)
{
	const char *u = getenv("CORDON_URL");
	return u && *u;
}

/*
 * `cordon` is built three times from this file (meson.build), each binary
 * with the libraries its commands need. The light binary links only the
 * sandbox core, so `cordon exec` without the egress engine starts as fast
 * as a bare sandbox can (no libevent, OpenSSL, ... to load and relocate).
 * A command this binary does not have runs in the one that does, next to
 * it or in the libexec directory, which is executed in its place with the
 * same arguments.
 */
#if defined(CORDON_CURL)
#define THIS_TIER CLI_API
#elif defined(CORDON_FULL)
#define THIS_TIER CLI_FULL
#else
#define THIS_TIER CLI_LIGHT
#endif

static const char *const tier_binary[] = {
	[CLI_LIGHT] = "cordon",
	[CLI_FULL] = "cordon-full",
	[CLI_API] = "cordon-api",
};

int cli_exec_tier(enum cli_tier tier)
{
	if (tier <= THIS_TIER || (size_t)tier >= CDN_ARRAY_SIZE(tier_binary)) {
		cli_error("internal error: no binary above %s for this", tier_binary[THIS_TIER]);
		return EXIT_CORDON;
	}
	char path[PATH_MAX];
	if (cdn_sibling_exe(tier_binary[tier], path, sizeof(path)) < 0) {
		cli_error("cannot find %s (looked next to this binary, in %s relative to it, and "
			  "as %s)", tier_binary[tier], CORDON_LIBEXEC_FROM_BIN, path);
		return EXIT_CORDON;
	}
	execv(path, cli_argv);
	cli_error("cannot run %s: %s", path, strerror(errno));
	return EXIT_CORDON;
}

struct command {
	const char *name;
	enum cli_tier tier; /* the first binary that has it */
	bool remote;	    /* with CORDON_URL set, it calls cordon serve: cordon-api's */
	int (*fn)(int argc, char **argv); /* NULL in a binary below its tier */
	const char *summary;
};

/* The command's function where this binary links it, else NULL. */
#define FN_CLI_LIGHT(fn) fn
#ifdef CORDON_FULL
#define FN_CLI_FULL(fn) fn
#else
#define FN_CLI_FULL(fn) NULL
#endif
#ifdef CORDON_CURL
#define FN_CLI_API(fn) fn
#else
#define FN_CLI_API(fn) NULL
#endif
#define COMMAND(name, tier, remote, fn, summary) { name, tier, remote, FN_##tier(fn), summary }

/* Every command of every binary, in the order --help lists them. */
static const struct command commands[] = {
	COMMAND("exec", CLI_LIGHT, false, cmd_exec,
		"run one command in a fresh sandbox, then destroy it"),
	COMMAND("run", CLI_FULL, true, cmd_run,
		"run an agent in a fresh sandbox and record what ran"),
	COMMAND("agent", CLI_FULL, true, cmd_agent, "register and list agents"),
	COMMAND("capability", CLI_FULL, true, cmd_capability, "register and list capabilities"),
	COMMAND("env", CLI_FULL, true, cmd_env,
		"register and list envs (plain environment variables)"),
	COMMAND("grant", CLI_FULL, true, cmd_grant, "let an agent use a capability"),
	COMMAND("secret", CLI_FULL, true, cmd_secret, "set, list and remove secrets in the vault"),
	COMMAND("runs", CLI_FULL, true, cmd_runs, "list runs and show their results"),
	COMMAND("logs", CLI_FULL, true, cmd_logs, "print (and follow) a run's events"),
	COMMAND("serve", CLI_API, false, cmd_serve, "run the API, the dashboard and the run queue"),
	COMMAND("worker", CLI_API, false, cmd_worker,
		"take queued runs from a shared database and run them"),
	COMMAND("init", CLI_API, false, cmd_init, "create the state and the first owner API key"),
	COMMAND("keys", CLI_API, true, cmd_keys, "create, list and revoke API keys"),
	COMMAND("evidence", CLI_API, false, cmd_evidence,
		"export and verify a run's signed evidence pack"),
	COMMAND("approvals", CLI_FULL, true, cmd_approvals,
		"list and decide requests waiting for a human"),
	COMMAND("audit", CLI_FULL, false, cmd_audit, "verify a hash-chained audit log"),
	COMMAND("retention", CLI_FULL, true, cmd_retention,
		"show and set how long what runs leave is kept"),
	COMMAND("prune", CLI_FULL, false, cmd_prune, "remove what runs left that is past its age"),
	COMMAND("usage", CLI_FULL, true, cmd_usage, "what the runs used, summed from their records"),
	COMMAND("schedule", CLI_FULL, true, cmd_schedule, "run agents on a cron schedule"),
	COMMAND("service", CLI_FULL, true, cmd_service, "keep agents running, restarted when they end"),
	COMMAND("deps", CLI_FULL, false, cmd_deps,
		"build, list and remove agents' dependency layers"),
	COMMAND("state", CLI_FULL, false, cmd_state,
		"move the state's records to another database (Postgres)"),
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
	for (size_t i = 0; i < CDN_ARRAY_SIZE(commands); i++)
		fprintf(out, "  %-11s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\n"
		     "Run 'cordon COMMAND --help' for the options of a command (installed, also\n"
		     "man cordon-COMMAND).\n"
		     "\n"
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
		usage(stdout);
		return 0;
	}
	if (strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
		printf("cordon %s\n", CORDON_VERSION);
		return 0;
	}
	for (size_t i = 0; i < CDN_ARRAY_SIZE(commands); i++) {
		const struct command *c = &commands[i];
		if (strcmp(cmd, c->name) != 0)
			continue;
		/* A command's own --help is its own binary's, even remote. */
		bool help =
		    argc > 2 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0);
		enum cli_tier need = c->remote && cli_remote() && !help ? CLI_API : c->tier;
		if (need > THIS_TIER)
			return cli_exec_tier(need);
		return c->fn(argc - 1, argv + 1);
	}
	cli_error("unknown command '%s' (see 'cordon --help')", cmd);
	return EXIT_CORDON;
}
