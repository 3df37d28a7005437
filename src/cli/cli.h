/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cordon command: one file per verb. Exit codes follow Docker and
 * Podman: 125 when cordon itself fails (bad usage included), 126 when the
 * command cannot be executed, 127 when it is not found, otherwise the
 * command's own status.
 */
#ifndef CORDON_CLI_H
#define CORDON_CLI_H

#include <stdbool.h>

#include "base/err.h"

#define EXIT_CORDON 125
#define EXIT_CANNOT_EXEC 126
#define EXIT_NOT_FOUND 127

/* Prints "cordon: <msg>" to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_error_err(const struct cdn_err *err);
/* The exit status of a command that failed with err: the one place an
 * error's kind becomes one (every kind is EXIT_CORDON today: the status
 * says cordon failed, the message says why). */
int cli_exit_status(const struct cdn_err *err);
/* cli_error_err(err), then its exit status. */
int cli_fail(const struct cdn_err *err);
/* True when stderr is a terminal and NO_COLOR is unset. */
bool cli_color(void);

/* The process's original argv, for re-executing as another binary. */
extern char **cli_argv;

/* The three binaries of the CLI, each linking what its commands need:
 * cordon (plain exec), cordon-full (runs, the registry, the state),
 * cordon-api (serve, keys, evidence, the API client). main.c's command
 * table says which command is whose. */
enum cli_tier {
	CLI_LIGHT,
	CLI_FULL,
	CLI_API,
};
/* Replaces this process with the binary of `tier`, found as
 * cdn_sibling_exe() finds it, with the same argv; returns EXIT_CORDON,
 * with the message printed, only when that fails. */
int cli_exec_tier(enum cli_tier tier);
/* True when CORDON_URL is set: the state commands then call cordon serve
 * (with the key in CORDON_API_KEY) instead of opening the state. */
bool cli_remote(void);

#ifdef CORDON_FULL
#include <jansson.h>
#include <stddef.h>

struct cli_api_req {
	const char *method, *path; /* path from "/v1/..." */
	const char *body;	   /* NULL: none */
	size_t body_len;
	const char *content_type;  /* default application/json */
	const char *accept;
	const char *header;	   /* one more "Name: value", or NULL */
	void (*on_data)(void *ctx, const char *p, size_t n); /* stream instead of buffering */
	void *ctx;
	/* With on_data: only a response with this status is streamed; any
	 * other is buffered like an unstreamed one (the server's error stays
	 * out of the caller's output). 0: every response is streamed. */
	int stream_status;
};
struct cli_api_resp {
	int status;
	json_t *json; /* the body parsed, or NULL */
	char *raw;
	size_t raw_len;
};
/* -1 (with the message printed) when the server cannot be reached. */
int cli_api_call(const struct cli_api_req *rq, struct cli_api_resp *rs);
void cli_api_resp_free(struct cli_api_resp *rs);
/* A JSON call that must answer `want` (200 also accepts 201): otherwise the
 * server's error message is printed and -1 returned. */
int cli_api_json(const char *method, const char *path, json_t *body, int want,
		 struct cli_api_resp *rs);
/* The same for any request. */
int cli_api_expect(const struct cli_api_req *rq, int want, struct cli_api_resp *rs);

struct store;
struct vault;
/* Opens the state directory (dir, else store_default_dir()) and, when v
 * is not NULL, the vault. Prints the error; -1 on failure. */
int cli_open_state(const char *dir, struct store **s, struct vault **v);
/* The same with the metadata in database (NULL or "": SQLite in dir). */
int cli_open_state_db(const char *dir, const char *database, struct store **s, struct vault **v);
/* The workspace: opt, else $CORDON_WORKSPACE, else "default". */
const char *cli_workspace(const char *opt);

/* The options the state commands share, parsed by cli_parse_opts. */
struct cli_common {
	const char *state;     /* --state DIR */
	const char *workspace; /* -w/--workspace, resolved by cli_workspace */
	bool json;	       /* --json */
};
/* A command's own option: a string (value) or a flag. */
struct cli_extra {
	const char *name; /* the long name */
	char short_name;  /* 0: none */
	const char **value;
	bool *flag;
	/* A repeatable option: each value appended to list (value NULL), at
	 * most max of them. */
	const char **list;
	size_t *n_list, max;
};
#define CLI_MAX_EXTRA 8
/* A run's input from path ("-": standard input), at most RUN_MAX_INPUT
 * bytes: 0, or -1 with the message printed. */
int cli_read_input(const char *path, char **out, size_t *len);
/* The same, which must be a JSON object (what names the command in the
 * error): NULL after saying why. */
struct json_t *cli_read_input_object(const char *what, const char *path);
/* Parses --state, -w/--workspace, --json (when with_json) and -h/--help,
 * and the extras. 0; 1 after printing the help to stdout; -1 after
 * printing the usage to stderr. */
int cli_parse_opts(int argc, char **argv, const struct cli_extra *extra, size_t n_extra,
		   bool with_json, void (*usage)(FILE *), struct cli_common *co);
/* What run id wrote to stdout or stderr, as cordon runs output prints it
 * (local, or through cordon serve with CORDON_URL). An exit code. */
int cli_runs_output(const struct cli_common *co, const char *id, const char *which);
/* Where fetched bytes go: standard output (path NULL or "-"), or FILE made
 * anew through a temporary file renamed into place, which replaces an
 * existing FILE only with force (and never one made after the check).
 * close(ok) keeps the file when ok and every write worked, else removes
 * it; -1 after saying why. data is a cli_api_req.on_data for it. */
struct cli_sink {
	FILE *f;
	char tmp[4096];
	const char *path;
	bool force;
};
int cli_sink_open(struct cli_sink *k, const char *path, bool force);
int cli_sink_close(struct cli_sink *k, bool ok);
void cli_sink_data(void *ctx, const char *p, size_t n);
/* Who is asking, for records: "user:NAME". */
const char *cli_caller(void);
/* cordon runs hold RUN --reason TEXT, and release (cmd_retention.c). */
int cli_runs_hold(const struct cli_common *co, const char *id, const char *reason, bool hold);
/* Prints one event line (as in events.ndjson) as the progress view does
 * (src/cli/progress.c); colours when color. */
void cli_progress_event(const char *line, size_t len, bool color);

/* The agent's output in the progress view: to a pipe or a file, its bytes
 * as they are (stdout to stdout, stderr to stderr); to a terminal, whole
 * lines behind a "  │ " gutter, each made safe (cdn_printable). */
#define CLI_OUTPUT_LINE 1024 /* a longer line is shown in pieces */
struct cli_output {
	bool color;
	bool tty[3];
	char line[3][CLI_OUTPUT_LINE];
	size_t len[3];
};
void cli_output_init(struct cli_output *o, bool color);
void cli_output_write(struct cli_output *o, int fd, const char *p, size_t n);
/* Shows what is held of an unfinished line (before an event's line). */
void cli_output_flush(struct cli_output *o);

/* A failed run's end: the last lines of its (redacted) stderr, made safe. */
#define CLI_TAIL_LINES 10
#define CLI_TAIL_BYTES 2048
/* cut: buf is the end of a longer stderr, so its first line is partial. */
void cli_progress_stderr_tail(const char *buf, size_t len, bool cut, bool color);
#endif

int cmd_exec(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_agent(int argc, char **argv);
int cmd_capability(int argc, char **argv);
int cmd_env(int argc, char **argv);
int cmd_grant(int argc, char **argv);
int cmd_secret(int argc, char **argv);
int cmd_runs(int argc, char **argv);
int cmd_logs(int argc, char **argv);
int cmd_evidence(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_worker(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_keys(int argc, char **argv);
int cmd_approvals(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_retention(int argc, char **argv);
int cmd_usage(int argc, char **argv);
int cmd_schedule(int argc, char **argv);
int cmd_service(int argc, char **argv);
int cmd_deps(int argc, char **argv);
int cmd_prune(int argc, char **argv);
int cmd_state(int argc, char **argv);

#endif
