/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cordon approvals list|approve ID|reject ID
 *
 * Talks to every running run of this user over its control socket
 * (src/run/control.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <jansson.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/text.h"
#include "cli/cli.h"
#include "run/control.h"

static void approvals_usage(FILE *out)
{
	fputs("Usage: cordon approvals list [--json]\n"
	      "       cordon approvals approve ID [--by NAME]\n"
	      "       cordon approvals reject ID [--by NAME]\n"
	      "\n"
	      "List and decide the requests that wait for a human: write methods to\n"
	      "domains whose egress rule says `approval: required` (with their\n"
	      "destination), and the agents' own request_approval calls over MCP (with\n"
	      "the action and the agent's reason). An undecided request is denied when\n"
	      "its timeout passes.\n"
	      "\n"
	      "Options:\n"
	      "  --json       list as JSON\n"
	      "  --by NAME    who decided (default: your user name), for the audit log\n"
	      "  -h, --help   show this help\n"
	      "\n"
	      "With CORDON_URL set, this calls cordon serve with the key in CORDON_API_KEY\n"
	      "(the key's workspace).\n",
	      out);
}

/* Text from the agent, fit for a terminal (cdn_printable: control
 * characters, escape sequences among them, become '?'), a tab a space;
 * newlines are kept only when `lines`, each followed by `indent`. */
static void print_clean(const char *text, bool lines, const char *indent)
{
	const char *p = text ? text : "";
	char buf[1024];
	for (;;) {
		size_t line = lines ? strcspn(p, "\n") : strlen(p);
		while (line) {
			size_t k = line < sizeof(buf) - 1 ? line : sizeof(buf) - 1;
			/* a chunk never ends inside a character, so a C1
			 * control is seen whole */
			size_t whole = k;
			while (whole < line && whole > 0 && ((unsigned char)p[whole] & 0xc0) == 0x80)
				whole--;
			k = whole ? whole : k;
			for (size_t i = 0; i < k; i++)
				buf[i] = p[i] == '\t' ? ' ' : p[i];
			fputs(cdn_printable(buf, sizeof(buf), buf, k, CDN_TEXT_UTF8), stdout);
			p += k;
			line -= k;
		}
		if (*p != '\n' || !lines)
			return;
		printf("\n%s", indent);
		p++;
	}
}

static const char *str_or(const json_t *o, const char *key, const char *dflt)
{
	const char *v = json_string_value(json_object_get(o, key));
	return v ? v : dflt;
}

/*
 * What a human decides on, one approval per entry: a held request says
 * where it goes (method, host:port and path), an agent's request_approval
 * call what it wants to do and why, its reason on the lines below.
 */
static void print_approvals(const json_t *arr)
{
	printf("%-24s %-28s %-7s %8s %8s  %s\n", "ID", "RUN", "METHOD", "WAITING", "EXPIRES",
	       "WHAT");
	size_t i;
	json_t *a;
	json_array_foreach(arr, i, a)
	{
		const char *source = json_string_value(json_object_get(a, "source"));
		bool mcp = source && strcmp(source, "mcp") == 0;
		char waiting[24] = "-", expires[24] = "-";
		json_t *w = json_object_get(a, "waiting_s"), *e = json_object_get(a, "expires_in_s");
		if (json_is_integer(w))
			snprintf(waiting, sizeof(waiting), "%llds", (long long)json_integer_value(w));
		if (json_is_integer(e))
			snprintf(expires, sizeof(expires), "%llds", (long long)json_integer_value(e));
		printf("%-24s %-28s %-7s %8s %8s  ", str_or(a, "id", "?"), str_or(a, "run_id", "?"),
		       str_or(a, "method", "?"), waiting, expires);
		if (mcp) {
			print_clean(str_or(a, "action", ""), false, "");
			printf("\n%24s reason: ", "");
			print_clean(str_or(a, "reason", ""), true,
				    "                                 ");
			if (json_is_true(json_object_get(a, "reason_truncated")))
				printf(" [...] (the run's approval.requested event has all of it)");
		} else {
			char dest[1024];
			snprintf(dest, sizeof(dest), "%s:%lld%s", str_or(a, "host", "?"),
				 (long long)json_integer_value(json_object_get(a, "port")),
				 str_or(a, "path", ""));
			print_clean(dest, false, "");
		}
		putchar('\n');
	}
}

struct list_ctx {
	json_t *all;
};

static int list_one(const char *run_id, void *vctx)
{
	struct list_ctx *ctx = vctx;
	json_t *req = json_pack("{s:s}", "op", "list");
	struct cdn_err err = { 0 };
	json_t *res = control_ask(run_id, req, &err);
	json_decref(req);
	if (!res)
		return 0;
	json_t *arr = json_object_get(res, "approvals");
	size_t i;
	json_t *a;
	json_array_foreach(arr, i, a)
	{
		/* The run is the socket's, not what the socket says it is. */
		json_object_set_new(a, "run_id", json_string(run_id));
		json_array_append(ctx->all, a);
	}
	json_decref(res);
	return 0;
}

struct decide_ctx {
	const char *id;
	bool approve;
	const char *by;
	bool done;
	char error[256];
};

static int decide_one(const char *run_id, void *vctx)
{
	struct decide_ctx *ctx = vctx;
	json_t *req = json_pack("{s:s, s:s, s:b, s:s}", "op", "decide", "id", ctx->id, "approve",
				ctx->approve, "by", ctx->by);
	struct cdn_err err = { 0 };
	json_t *res = control_ask(run_id, req, &err);
	json_decref(req);
	if (!res)
		return 0;
	if (json_is_true(json_object_get(res, "ok")))
		ctx->done = true;
	json_decref(res);
	return ctx->done ? 1 : 0;
}

/* The same through cordon serve: the key's workspace, decided as the key. */
static int remote_approvals(const char *verb, const char *id, bool as_json)
{
	struct cli_api_resp rs;
	if (strcmp(verb, "list") == 0) {
		if (cli_api_json("GET", "/v1/approvals", NULL, 200, &rs) < 0)
			return EXIT_CORDON;
		json_t *arr = json_object_get(rs.json, "approvals");
		if (as_json) {
			json_dumpf(arr, stdout, JSON_COMPACT);
			putchar('\n');
		} else if (json_array_size(arr) == 0) {
			printf("no requests are waiting for approval\n");
		} else {
			print_approvals(arr);
		}
		cli_api_resp_free(&rs);
		return 0;
	}
	if ((strcmp(verb, "approve") != 0 && strcmp(verb, "reject") != 0) || !id) {
		approvals_usage(stderr);
		return EXIT_CORDON;
	}
	char path[256];
	snprintf(path, sizeof(path), "/v1/approvals/%s/%s", id, verb);
	if (cli_api_json("POST", path, NULL, 200, &rs) < 0)
		return 1;
	printf("%s %s\n", id, strcmp(verb, "approve") == 0 ? "approved" : "rejected");
	cli_api_resp_free(&rs);
	return 0;
}

int cmd_approvals(int argc, char **argv)
{
	static const struct option opts[] = { { "json", no_argument, NULL, 'j' },
					      { "by", required_argument, NULL, 'b' },
					      { "help", no_argument, NULL, 'h' },
					      { NULL, 0, NULL, 0 } };
	bool as_json = false;
	const char *by = NULL;
	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			as_json = true;
			break;
		case 'b':
			by = optarg;
			break;
		case 'h':
			approvals_usage(stdout);
			return 0;
		default:
			approvals_usage(stderr);
			return EXIT_CORDON;
		}
	}
	if (optind >= argc) {
		approvals_usage(stderr);
		return EXIT_CORDON;
	}
	/* Every send on a control socket is MSG_NOSIGNAL already; ignoring
	 * SIGPIPE as well keeps a run that hangs up (or a closed stdout) an
	 * error to report, never a silent death halfway through a decision. */
	(void)signal(SIGPIPE, SIG_IGN);
	const char *verb = argv[optind];
	struct cdn_err err = { 0 };
	if (cli_remote())
		return remote_approvals(verb, optind + 1 < argc ? argv[optind + 1] : NULL, as_json);
	if (strcmp(verb, "list") == 0) {
		struct list_ctx ctx = { json_array() };
		if (control_each(list_one, &ctx, &err) < 0) {
			cli_error_err(&err);
			json_decref(ctx.all);
			return cli_exit_status(&err);
		}
		if (as_json) {
			char *s = json_dumps(ctx.all, JSON_COMPACT);
			printf("%s\n", s ? s : "[]");
			free(s);
		} else if (json_array_size(ctx.all) == 0) {
			printf("no requests are waiting for approval\n");
		} else {
			print_approvals(ctx.all);
		}
		json_decref(ctx.all);
		return 0;
	}
	if (strcmp(verb, "approve") == 0 || strcmp(verb, "reject") == 0) {
		if (optind + 1 >= argc) {
			cli_error("approvals %s: which ID? (see 'cordon approvals list')", verb);
			return EXIT_CORDON;
		}
		struct passwd *pw = getpwuid(geteuid());
		struct decide_ctx ctx = { .id = argv[optind + 1],
					  .approve = strcmp(verb, "approve") == 0,
					  .by = by ? by : (pw ? pw->pw_name : "operator") };
		if (control_each(decide_one, &ctx, &err) < 0) {
			return cli_fail(&err);
		}
		if (!ctx.done) {
			cli_error("approvals %s: no pending request %s in a running cordon", verb,
				  ctx.id);
			return 1;
		}
		printf("%s %s\n", ctx.id, ctx.approve ? "approved" : "rejected");
		return 0;
	}
	cli_error("approvals: unknown verb '%s' (list, approve, reject)", verb);
	return EXIT_CORDON;
}
