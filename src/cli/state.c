/* SPDX-License-Identifier: Apache-2.0 */
/* What the state commands share: the store, the vault, the workspace. */
#define _GNU_SOURCE
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "store/store.h"
#include "vault/vault.h"

int cli_open_state(const char *dir, struct store **s, struct vault **v)
{
	struct cdn_err err = { 0 };
	char path[PATH_MAX];
	if (!dir) {
		if (store_default_dir(path, sizeof(path), &err) < 0) {
			cli_error_err(&err);
			return -1;
		}
		dir = path;
	} else if (dir[0] != '/') {
		/* Runs and the server hand the path on: make it absolute. */
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof(cwd)) ||
		    snprintf(path, sizeof(path), "%s/%s", cwd, dir) >= (int)sizeof(path)) {
			cli_error("state %s: cannot make the path absolute", dir);
			return -1;
		}
		dir = path;
	}
	if (store_open(dir, s, &err) < 0) {
		cli_error("state %s: %s", dir, err.msg);
		return -1;
	}
	if (v && vault_open(*s, v, &err) < 0) {
		cli_error("vault: %s", err.msg);
		store_close(*s);
		*s = NULL;
		return -1;
	}
	return 0;
}

const char *cli_workspace(const char *opt)
{
	if (opt)
		return opt;
	const char *e = getenv("CORDON_WORKSPACE");
	return e && *e ? e : STORE_DEFAULT_WORKSPACE;
}

const char *cli_caller(void)
{
	static char who[96];
	struct passwd *pw = getpwuid(getuid());
	if (pw)
		snprintf(who, sizeof(who), "user:%.64s", pw->pw_name);
	else
		snprintf(who, sizeof(who), "uid:%u", (unsigned)getuid());
	return who;
}

int cli_parse_opts(int argc, char **argv, const struct cli_extra *extra, size_t n_extra,
		   bool with_json, void (*usage)(FILE *), struct cli_common *co)
{
	enum { O_STATE = 256, O_JSON, O_EXTRA };
	struct option opts[4 + CLI_MAX_EXTRA + 1] = {
		{ "state", required_argument, NULL, O_STATE },
		{ "workspace", required_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
	};
	size_t n = 3;
	if (with_json)
		opts[n++] = (struct option){ "json", no_argument, NULL, O_JSON };
	char shorts[4 + 2 * CLI_MAX_EXTRA + 1] = "w:h";
	size_t ns = 3;
	if (n_extra > CLI_MAX_EXTRA)
		n_extra = CLI_MAX_EXTRA;
	for (size_t i = 0; i < n_extra; i++) {
		int val = extra[i].short_name ? extra[i].short_name : O_EXTRA + (int)i;
		opts[n++] = (struct option){ extra[i].name,
					     extra[i].value ? required_argument : no_argument, NULL,
					     val };
		if (extra[i].short_name) {
			shorts[ns++] = extra[i].short_name;
			if (extra[i].value)
				shorts[ns++] = ':';
		}
	}
	shorts[ns] = '\0';
	memset(co, 0, sizeof(*co));
	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, shorts, opts, NULL)) != -1) {
		if (c == O_STATE) {
			co->state = optarg;
			continue;
		}
		if (c == 'w') {
			co->workspace = optarg;
			continue;
		}
		if (c == O_JSON) {
			co->json = true;
			continue;
		}
		if (c == 'h') {
			usage(stdout);
			return 1;
		}
		size_t i = 0;
		while (i < n_extra &&
		       c != (extra[i].short_name ? extra[i].short_name : O_EXTRA + (int)i))
			i++;
		if (i == n_extra) {
			usage(stderr);
			return -1;
		}
		if (extra[i].value)
			*extra[i].value = optarg;
		else
			*extra[i].flag = true;
	}
	co->workspace = cli_workspace(co->workspace);
	return 0;
}
