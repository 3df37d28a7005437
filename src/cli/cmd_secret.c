/* SPDX-License-Identifier: Apache-2.0 */
/* cordon secret set NAME | list | rm NAME */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "cli/cli.h"
#include "store/store.h"
#include "vault/vault.h"

static void secret_usage(FILE *out)
{
	fputs("Usage: cordon secret set NAME [--raw] [OPTIONS]   (the value on standard input)\n"
	      "       cordon secret list [OPTIONS]\n"
	      "       cordon secret rm NAME [OPTIONS]\n"
	      "\n"
	      "Secrets are encrypted in the vault (see docs/vault.md) and given to a run only\n"
	      "when its agent.json declares them in required_secrets; their values are\n"
	      "redacted from everything the run records. The value is never an argument, so\n"
	      "it stays out of shell history and the process list. One trailing newline is\n"
	      "removed unless --raw is given. On a terminal the value is read without echo.\n"
	      "\n"
	      "Options:\n"
	      "      --raw             keep the value's bytes exactly, trailing newline included\n"
	      "  -w, --workspace NAME  workspace (default $CORDON_WORKSPACE, else \"default\")\n"
	      "      --state DIR       state directory (default $CORDON_STATE)\n"
	      "      --json            print the result as JSON\n"
	      "  -h, --help            show this help\n"
	      "\n"
	      "With CORDON_URL set, this calls cordon serve with the key in CORDON_API_KEY\n"
	      "(the key's workspace).\n",
	      out);
}

/* The value from stdin, in guarded memory. */
static int read_value(bool raw, unsigned char **out, size_t *len)
{
	unsigned char *buf = sodium_init() < 0 ? NULL : sodium_malloc(VAULT_MAX_VALUE + 1);
	if (!buf) {
		cli_error("out of memory");
		return -1;
	}
	struct termios old, quiet;
	bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
	if (tty) {
		fputs("value (not shown): ", stderr);
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	}
	size_t n = 0;
	int rc = 0;
	for (;;) {
		ssize_t r = read(STDIN_FILENO, buf + n, VAULT_MAX_VALUE + 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			cli_error("read the value: %s", strerror(errno));
			rc = -1;
			break;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (tty && memchr(buf + n - (size_t)r, '\n', (size_t)r))
			break;
		if (n > VAULT_MAX_VALUE) {
			cli_error("the value is longer than %d bytes", VAULT_MAX_VALUE);
			rc = -1;
			break;
		}
	}
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fputc('\n', stderr);
	}
	if (rc == 0 && !raw && n > 0 && buf[n - 1] == '\n') {
		n--;
		if (n > 0 && buf[n - 1] == '\r')
			n--;
	}
	if (rc == 0 && n == 0) {
		cli_error("the value is empty (nothing on standard input)");
		rc = -1;
	}
	if (rc < 0) {
		sodium_free(buf);
		return -1;
	}
	*out = buf;
	*len = n;
	return 0;
}

/* The same through cordon serve (the key's workspace). Takes value. */
static int remote_secret(bool set, bool rm, const char *name, unsigned char *value, size_t len,
			 bool json)
{
	struct cli_api_resp rs;
	char path[128];
	snprintf(path, sizeof(path), "/v1/secrets/%s", name ? name : "");
	int r;
	if (set) {
		json_t *v = json_stringn((const char *)value, len);
		sodium_free(value);
		if (!v) {
			cli_error("the API takes secret values that are UTF-8 text");
			return EXIT_CORDON;
		}
		json_t *b = json_pack("{s:o}", "value", v);
		r = cli_api_json("PUT", path, b, 200, &rs);
		json_decref(b);
		if (r == 0)
			printf("secret %s set (%zu bytes)\n", name, len);
	} else if (rm) {
		r = cli_api_json("DELETE", path, NULL, 200, &rs);
		if (r == 0)
			printf("secret %s removed\n", name);
	} else {
		r = cli_api_json("GET", "/v1/secrets", NULL, 200, &rs);
		json_t *arr = json_object_get(rs.json, "secrets");
		if (r == 0 && json) {
			json_dumpf(arr, stdout, JSON_COMPACT);
			putchar('\n');
		} else if (r == 0) {
			size_t i;
			json_t *x;
			if (json_array_size(arr))
				printf("%-32s %-8s %s\n", "NAME", "BYTES", "UPDATED");
			json_array_foreach(arr, i, x)
				printf("%-32s %-8lld %s\n", json_string_value(json_object_get(x, "name")),
				       (long long)json_integer_value(json_object_get(x, "size")),
				       json_string_value(json_object_get(x, "updated")));
		}
	}
	if (r < 0)
		return EXIT_CORDON;
	cli_api_resp_free(&rs);
	return 0;
}

int cmd_secret(int argc, char **argv)
{
	bool raw = false;
	const struct cli_extra extra[] = { { "raw", 0, NULL, &raw } };
	struct cli_common co;
	int p = cli_parse_opts(argc, argv, extra, 1, true, secret_usage, &co);
	if (p)
		return p > 0 ? 0 : EXIT_CORDON;
	const char *state = co.state, *ws = co.workspace;
	bool json = co.json;
	int nargs = argc - optind;
	const char *verb = nargs > 0 ? argv[optind] : "";
	bool set = strcmp(verb, "set") == 0 && nargs == 2;
	bool rm = strcmp(verb, "rm") == 0 && nargs == 2;
	bool list = strcmp(verb, "list") == 0 && nargs == 1;
	if (!set && !rm && !list) {
		secret_usage(stderr);
		return EXIT_CORDON;
	}
	struct cdn_err err = { 0 };
	const char *name = nargs == 2 ? argv[optind + 1] : NULL;
	if (name && store_secret_name_check(name, &err) < 0) {
		return cli_fail(&err);
	}
	unsigned char *value = NULL;
	size_t len = 0;
	if (set && read_value(raw, &value, &len) < 0)
		return EXIT_CORDON;
	if (cli_remote())
		return remote_secret(set, rm, name, value, len, json);
	struct store *s;
	struct vault *v;
	if (cli_open_state(state, &s, &v) < 0) {
		sodium_free(value);
		return EXIT_CORDON;
	}
	int r = 0, rc = 0;
	if (set) {
		r = vault_set(v, ws, name, value, len, &err);
		sodium_free(value);
		if (r == 0 && !json)
			printf("secret %s set in workspace %s (%zu bytes)\n", name, ws, len);
		else if (r == 0)
			printf("{\"name\":\"%s\",\"workspace\":\"%s\",\"size\":%zu}\n", name, ws, len);
	} else if (rm) {
		r = vault_rm(v, ws, name, &err);
		if (r == -ENOENT)
			cdn_err_set(&err, ENOENT, "secret %s is not set in workspace %s", name, ws);
		if (r == 0)
			printf(json ? "{\"name\":\"%s\",\"removed\":true}\n" : "secret %s removed\n",
			       name);
	} else {
		struct store_secret_info *info = NULL;
		size_t n = 0;
		r = vault_list(v, ws, &info, &n, &err);
		json_t *arr = json_array();
		if (r == 0 && !json && n)
			printf("%-32s %-8s %s\n", "NAME", "BYTES", "UPDATED");
		for (size_t i = 0; r == 0 && i < n; i++) {
			char when[CDN_RFC3339_MAX];
			cdn_rfc3339(info[i].updated * 1000, CDN_TIME_S, when, sizeof(when));
			if (json)
				json_array_append_new(arr, json_pack("{s:s, s:I, s:s}", "name",
								     info[i].name, "size",
								     (json_int_t)info[i].size,
								     "updated", when));
			else
				printf("%-32s %-8zu %s\n", info[i].name, info[i].size, when);
		}
		if (r == 0 && json) {
			json_dumpf(arr, stdout, JSON_COMPACT);
			putchar('\n');
		} else if (r == 0 && n == 0) {
			fprintf(stderr, "no secrets in workspace %s\n", ws);
		}
		json_decref(arr);
		free(info);
	}
	if (r < 0) {
		cli_error_err(&err);
		rc = cli_exit_status(&err);
	}
	vault_close(v);
	store_close(s);
	return rc;
}
