/* SPDX-License-Identifier: Apache-2.0 */
/* cordon audit verify FILE [--json] */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "cli/cli.h"

static void audit_usage(FILE *out)
{
	fputs("Usage: cordon audit verify FILE [--json]\n"
	      "\n"
	      "Check a hash-chained audit log: every line's hash, and that no line was\n"
	      "altered, removed or reordered. Exit 0 when the chain is intact, 1 when it\n"
	      "is not (the first bad line is reported), 125 when FILE cannot be read.\n"
	      "\n"
	      "Options:\n"
	      "  --json       print the result as JSON\n"
	      "  -h, --help   show this help\n",
	      out);
}

int cmd_audit(int argc, char **argv)
{
	static const struct option opts[] = { { "json", no_argument, NULL, 'j' },
					      { "help", no_argument, NULL, 'h' },
					      { NULL, 0, NULL, 0 } };
	bool as_json = false;
	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'j') {
			as_json = true;
		} else if (c == 'h') {
			audit_usage(stdout);
			return 0;
		} else {
			audit_usage(stderr);
			return EXIT_CORDON;
		}
	}
	if (optind + 2 != argc || strcmp(argv[optind], "verify") != 0) {
		audit_usage(stderr);
		return EXIT_CORDON;
	}
	const char *path = argv[optind + 1];
	struct audit_verify res = { 0 };
	struct cdn_err err = { 0 };
	int r = audit_verify_file(path, &res, &err);
	if (r < 0) {
		return cli_fail(&err);
	}
	if (as_json) {
		json_t *j = json_pack("{s:b, s:I, s:s}", "ok", r == 0, "lines", (json_int_t)res.lines,
				      "last_hash", res.last_hash);
		if (r != 0) {
			json_object_set_new(j, "bad_line", json_integer((json_int_t)res.bad_line));
			json_object_set_new(j, "reason", json_string(res.reason));
		}
		char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
		printf("%s\n", s);
		free(s);
		json_decref(j);
	} else if (r == 0) {
		printf("%s: intact, %llu lines, last hash %s\n", path, (unsigned long long)res.lines,
		       res.last_hash);
	} else {
		printf("%s: line %llu: %s\n", path, (unsigned long long)res.bad_line, res.reason);
	}
	return r == 0 ? 0 : 1;
}
