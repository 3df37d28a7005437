/* SPDX-License-Identifier: Apache-2.0 */
/* What the state commands share: the store, the vault, the workspace. */
#define _GNU_SOURCE
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
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
