/* SPDX-License-Identifier: Apache-2.0 */
/* What the state commands share: the store, the vault, the workspace. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/file.h"
#include "cli/cli.h"
#include "run/run.h"
#include "store/store.h"
#include "vault/vault.h"

int cli_open_state(const char *dir, struct store **s, struct vault **v)
{
	return cli_open_state_db(dir, store_default_database(), s, v);
}

int cli_open_state_db(const char *dir, const char *database, struct store **s, struct vault **v)
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
	if (store_open_db(dir, database, s, &err) < 0) {
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
		bool arg = extra[i].value || extra[i].list;
		opts[n++] = (struct option){ extra[i].name, arg ? required_argument : no_argument,
					     NULL, val };
		if (extra[i].short_name) {
			shorts[ns++] = extra[i].short_name;
			if (arg)
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
		if (extra[i].list) {
			if (*extra[i].n_list >= extra[i].max) {
				cli_error("--%s: at most %zu of them", extra[i].name, extra[i].max);
				return -1;
			}
			extra[i].list[(*extra[i].n_list)++] = optarg;
		} else if (extra[i].value) {
			*extra[i].value = optarg;
		} else {
			*extra[i].flag = true;
		}
	}
	co->workspace = cli_workspace(co->workspace);
	return 0;
}

/* ----------------------------------------------------------------- sinks */

int cli_sink_open(struct cli_sink *k, const char *path, bool force)
{
	memset(k, 0, sizeof(*k));
	k->path = path;
	k->force = force;
	if (!path || strcmp(path, "-") == 0) {
		k->f = stdout;
		k->path = NULL;
		return 0;
	}
	if (!force && access(path, F_OK) == 0) {
		cli_error("%s exists (--force replaces it)", path);
		return -1;
	}
	snprintf(k->tmp, sizeof(k->tmp), "%s.XXXXXX", path);
	int fd = mkostemp(k->tmp, O_CLOEXEC);
	if (fd < 0 || !(k->f = fdopen(fd, "w"))) {
		cli_error("%s: %s", path, strerror(errno));
		if (fd >= 0) {
			close(fd);
			unlink(k->tmp);
		}
		return -1;
	}
	return 0;
}

int cli_sink_close(struct cli_sink *k, bool ok)
{
	if (!k->path) {
		(void)fflush(stdout);
		return ok && !ferror(stdout) ? 0 : -1;
	}
	bool good = ok && fflush(k->f) == 0 && !ferror(k->f) && fsync(fileno(k->f)) == 0;
	int e = errno;
	if (fclose(k->f) != 0 && good) {
		good = false;
		e = errno;
	}
	/* Without --force, a FILE made since the check is not replaced either. */
	if (good && renameat2(AT_FDCWD, k->tmp, AT_FDCWD, k->path,
			      k->force ? 0 : RENAME_NOREPLACE) == 0)
		return 0;
	if (good)
		e = errno;
	unlink(k->tmp);
	if (ok && e == EEXIST)
		cli_error("%s exists (--force replaces it)", k->path);
	else if (ok)
		cli_error("%s: %s", k->path, strerror(e));
	return -1;
}

void cli_sink_data(void *ctx, const char *p, size_t n)
{
	struct cli_sink *k = ctx;
	(void)fwrite(p, 1, n, k->f);
}

int cli_read_input(const char *path, char **out, size_t *len)
{
	_cleanup_close_ int fd = strcmp(path, "-") == 0 ? dup(STDIN_FILENO)
							: open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		cli_error("input %s: %s", path, strerror(errno));
		return -1;
	}
	int r = cdn_read_fd(fd, RUN_MAX_INPUT, out, len);
	if (r == -EFBIG)
		cli_error("input %s: larger than %d bytes", path, RUN_MAX_INPUT);
	else if (r < 0)
		cli_error("input %s: %s", path, strerror(-r));
	return r < 0 ? -1 : 0;
}

json_t *cli_read_input_object(const char *what, const char *path)
{
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	if (cli_read_input(path, &text, &len) < 0)
		return NULL;
	json_error_t jerr;
	json_t *input = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(input)) {
		cli_error("%s: input %s: not a JSON object%s%s", what, path, input ? "" : ": ",
			  input ? "" : jerr.text);
		json_decref(input);
		return NULL;
	}
	return input;
}
