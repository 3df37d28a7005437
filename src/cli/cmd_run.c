/* SPDX-License-Identifier: Apache-2.0 */
/* cordon run [OPTIONS] AGENT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/file.h"
#include "base/units.h"
#include "cli/cli.h"
#include "run/run.h"
#include "sandbox/sandbox.h"

#define MAX_ALLOW_PRIVATE 16

static void run_usage(FILE *out)
{
	fputs("Usage: cordon run [OPTIONS] AGENT\n"
	      "\n"
	      "Run an agent in a fresh sandbox and leave a record of what ran. AGENT is a\n"
	      "registered NAME[@VERSION] or a directory with an agent.json (snapshotted\n"
	      "and hashed like a registration, then run from the snapshot).\n"
	      "\n"
	      "The agent sees its files read-only at /agent, granted capabilities under\n"
	      "/capabilities/NAME, its input at /workspace/input.json, the secrets it\n"
	      "declares as environment variables, and nothing else. It may write\n"
	      "/workspace/output.json, files in /workspace/out (kept as artifacts) and\n"
	      "progress lines to $CORDON_STEPS.\n"
	      "\n"
	      "Options:\n"
	      "  -i, --input FILE       input JSON object (\"-\": standard input; default {})\n"
	      "  -w, --workspace NAME   workspace (default $CORDON_WORKSPACE, else \"default\")\n"
	      "      --state DIR        state directory (default $CORDON_STATE, /var/lib/cordon\n"
	      "                         for root, else $XDG_STATE_HOME/cordon)\n"
	      "      --json             print events as NDJSON instead of the progress view\n"
	      "  -q, --quiet            print nothing but errors; the record is kept\n"
	      "      --policy FILE      operator egress policy (default STATE/policy.yaml,\n"
	      "                         else the built-in one); the workspace's policy\n"
	      "                         (STATE/policies/WS.yaml) and the agent can only\n"
	      "                         narrow it\n"
	      "      --allow-private IP:PORT  let the proxy reach this private address\n"
	      "      --hosts FILE       extra hosts file for the proxy's resolver\n"
	      "                         (default $CORDON_HOSTS_FILE)\n"
	      "      --upstream-ca FILE extra CA for inspected HTTPS upstreams\n"
	      "      --capture BYTES    stdout and stderr kept per run (default 10k)\n"
	      "      --allow-degraded LIST  run without these protections if the host lacks\n"
	      "                         them: landlock, cgroup, seccomp (recorded)\n"
	      "      --claim ID         run the queued record ID (what cordon serve uses)\n"
	      "  -h, --help             show this help\n"
	      "\n"
	      "Exit status: the agent's own; 124 on timeout, 137 when out of memory; 125\n"
	      "when cordon could not run it (the message says why).\n",
	      out);
}

static int read_all(const char *path, char **out, size_t *len)
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

enum view { VIEW_PROGRESS, VIEW_JSON, VIEW_NONE };

struct view_ctx {
	enum view view;
	bool color;
};

/* How `cordon run` shows each event as the run writes it. */
static void show_event(void *ctx, const char *line, size_t len)
{
	const struct view_ctx *v = ctx;
	if (v->view == VIEW_JSON) {
		fwrite(line, 1, len, stdout);
		fputc('\n', stdout);
		fflush(stdout);
	} else {
		cli_progress_event(line, len, v->color);
	}
}

int cmd_run(int argc, char **argv)
{
	enum { O_STATE = 256, O_JSON, O_POLICY, O_PRIVATE, O_HOSTS, O_CA, O_CAPTURE, O_DEGRADED,
	       O_CLAIM };
	static const struct option opts[] = {
		{ "input", required_argument, NULL, 'i' },
		{ "workspace", required_argument, NULL, 'w' },
		{ "state", required_argument, NULL, O_STATE },
		{ "json", no_argument, NULL, O_JSON },
		{ "quiet", no_argument, NULL, 'q' },
		{ "policy", required_argument, NULL, O_POLICY },
		{ "allow-private", required_argument, NULL, O_PRIVATE },
		{ "hosts", required_argument, NULL, O_HOSTS },
		{ "upstream-ca", required_argument, NULL, O_CA },
		{ "capture", required_argument, NULL, O_CAPTURE },
		{ "allow-degraded", required_argument, NULL, O_DEGRADED },
		{ "claim", required_argument, NULL, O_CLAIM },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct run_options o = { 0 };
	struct view_ctx view = { .view = VIEW_PROGRESS };
	const char *state = NULL, *input_path = NULL;
	const char *priv[MAX_ALLOW_PRIVATE];
	struct cdn_err err = { 0 };
	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, "+i:w:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			input_path = optarg;
			break;
		case 'w':
			o.workspace = optarg;
			break;
		case O_STATE:
			state = optarg;
			break;
		case O_JSON:
			view.view = VIEW_JSON;
			break;
		case 'q':
			view.view = VIEW_NONE;
			break;
		case O_POLICY:
			o.policy_path = optarg;
			break;
		case O_PRIVATE:
			if (o.n_allow_private == MAX_ALLOW_PRIVATE) {
				cli_error("--allow-private: at most %d", MAX_ALLOW_PRIVATE);
				return EXIT_CORDON;
			}
			priv[o.n_allow_private++] = optarg;
			break;
		case O_HOSTS:
			o.hosts_file = optarg;
			break;
		case O_CA:
			o.upstream_ca = optarg;
			break;
		case O_CAPTURE: {
			uint64_t v;
			if (cdn_parse_size(optarg, &v, &err) < 0 || v == 0 || v > (64u << 20)) {
				cli_error("--capture: '%s' is not a size from 1 byte to 64m", optarg);
				return EXIT_CORDON;
			}
			o.capture_bytes = (size_t)v;
			break;
		}
		case O_DEGRADED:
			if (sandbox_parse_degraded(optarg, &o.allow_degraded, &err) < 0) {
				return cli_fail(&err);
			}
			break;
		case O_CLAIM:
			if (strlen(optarg) > STORE_RUN_ID_MAX) {
				cli_error("--claim: '%s' is not a run id", optarg);
				return EXIT_CORDON;
			}
			snprintf(o.run_id, sizeof(o.run_id), "%s", optarg);
			o.claim = true;
			break;
		case 'h':
			run_usage(stdout);
			return 0;
		default:
			run_usage(stderr);
			return EXIT_CORDON;
		}
	}
	if (optind + 1 != argc) {
		cli_error(optind == argc ? "run: which agent? (a directory or NAME[@VERSION])"
					 : "run: one agent at a time");
		return EXIT_CORDON;
	}
	o.ref = argv[optind];
	if (!o.hosts_file && getenv("CORDON_HOSTS_FILE") && *getenv("CORDON_HOSTS_FILE"))
		o.hosts_file = getenv("CORDON_HOSTS_FILE");
	o.allow_private = priv;
	o.workspace = cli_workspace(o.workspace);
	view.color = view.view == VIEW_PROGRESS && isatty(STDOUT_FILENO) && !getenv("NO_COLOR");
	if (view.view != VIEW_NONE) {
		o.on_event = show_event;
		o.event_ctx = &view;
	}
	o.caller = cli_caller();

	_cleanup_free_ char *input = NULL;
	if (input_path && read_all(input_path, &input, &o.input_len) < 0)
		return EXIT_CORDON;
	o.input = input;

	/* A reader that goes away (cordon run --json | head) must not end the
	 * run: writes to it fail instead, and the run is still recorded. */
	signal(SIGPIPE, SIG_IGN);
	struct store *s = NULL;
	struct vault *v = NULL;
	if (cli_open_state(state, &s, &v) < 0)
		return EXIT_CORDON;
	struct run_outcome out;
	int r = run_agent(s, v, &o, &out, &err);
	vault_close(v);
	store_close(s);
	if (r < 0) {
		return cli_fail(&err);
	}
	return run_exit_code(&out);
}
