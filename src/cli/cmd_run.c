/* SPDX-License-Identifier: Apache-2.0 */
/* cordon run [OPTIONS] AGENT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/file.h"
#include "base/text.h"
#include "base/units.h"
#include "cli/cli.h"
#include "run/events.h"
#include "run/run.h"
#include "sandbox/sandbox.h"

#define MAX_ALLOW_PRIVATE 16

static void run_usage(FILE *out)
{
	fputs("Usage: cordon run [OPTIONS] AGENT [OPTIONS]\n"
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
	      "An agent that declares \"dependencies\" (a package-lock.json or a\n"
	      "requirements.txt) gets them read-only at /node_modules or /deps/python,\n"
	      "from a layer built once per lockfile in a sandbox that reaches only the\n"
	      "package registries ($CORDON_NPM_REGISTRY, $CORDON_PYTHON_INDEX; a private\n"
	      "one needs --allow-private); the first run builds it (docs/deps.md).\n"
	      "\n"
	      "The progress view shows the agent's stdout and stderr as it writes them\n"
	      "(redacted; control characters shown as '?' on a terminal) and ends a failed\n"
	      "run with the last lines of its stderr. Options may come before or after\n"
	      "AGENT; an agent takes no arguments (its input is -i), so anything after\n"
	      "\"--\" but AGENT is refused.\n"
	      "\n"
	      "Options:\n"
	      "  -i, --input FILE       input JSON object (\"-\": standard input; default {})\n"
	      "  -w, --workspace NAME   workspace (default $CORDON_WORKSPACE, else \"default\")\n"
	      "      --state DIR        state directory (default $CORDON_STATE, /var/lib/cordon\n"
	      "                         for root, else $XDG_STATE_HOME/cordon)\n"
	      "      --blobs s3://BUCKET/PREFIX  blobs and this run's files written through to\n"
	      "                         S3, and blobs not here read from it (default\n"
	      "                         $CORDON_BLOBS; docs/state.md)\n"
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
	      "      --standby          make a warm sandbox, then wait on standard input\n"
	      "                         for the run to claim: one line \"ID WORKSPACE AGENT\n"
	      "                         [LEASE]\" (what the warm pools of cordon serve and\n"
	      "                         cordon worker use; AGENT is not an argument then)\n"
	      "      --lease WORKER     with --claim: the record must be under WORKER's lease\n"
	      "                         (what cordon worker uses); the run dies with its parent\n"
	      "      --max-call-depth N how deep a chain of agent-to-agent calls (call_agent)\n"
	      "                         may go below this run, 1 to 16 (default 4)\n"
	      "      --max-calls N      calls in a whole tree of calls: this run's and those\n"
	      "                         of every run below it together, 1 to 1024 (default\n"
	      "                         16)\n"
	      "      --deadline MS      end by this time (unix milliseconds) at the latest, the\n"
	      "                         manifest's timeout cut to it (what a call's run gets:\n"
	      "                         its caller's deadline)\n"
	      "      --call-tree NAME   the tree of calls this run is part of, whose count of\n"
	      "                         calls it shares (what a call's run gets from its\n"
	      "                         caller)\n"
	      "  -h, --help             show this help\n"
	      "\n"
	      "With CORDON_URL set, the run is dispatched to cordon serve (key in\n"
	      "CORDON_API_KEY): AGENT must be registered there, --policy, --allow-private,\n"
	      "--hosts, --upstream-ca, --capture, --allow-degraded, --claim, --standby,\n"
	      "--max-call-depth, --max-calls, --deadline, --call-tree and --state\n"
	      "are the server's to set and are refused, and the events are followed\n"
	      "until the run ends. Ctrl-C stops following; the run goes on (cordon runs\n"
	      "cancel RUN stops it).\n"
	      "\n"
	      "Exit status: the agent's own; 124 on timeout, 137 when out of memory; 125\n"
	      "when cordon could not run it (the message says why).\n",
	      out);
}

/* The claim a standby waits for: "ID WORKSPACE AGENT [LEASE]\n" on fd,
 * into o (the strings live in buf); LEASE is the worker whose lease the
 * run is under (cordon worker's pool). 0; 1 when fd ended first (nothing
 * to run); -1 when the line is not one. */
#define STANDBY_LINE_MAX 512
static int read_claim(int fd, char *buf, size_t cap, struct run_options *o)
{
	size_t n = 0;
	char *nl = NULL;
	while (!nl) {
		if (n == cap - 1) {
			cli_error("--standby: the claim is longer than %zu bytes", cap - 2);
			return -1;
		}
		/* The line comes whole (one write, under PIPE_BUF), but may be
		 * read in parts all the same. */
		ssize_t k = read(fd, buf + n, cap - 1 - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			cli_error("--standby: read the claim: %s", strerror(errno));
			return -1;
		}
		if (k == 0)
			return n == 0 ? 1 : (cli_error("--standby: the claim ends without a newline"), -1);
		nl = memchr(buf + n, '\n', (size_t)k);
		n += (size_t)k;
	}
	if (nl != buf + n - 1) {
		cli_error("--standby: expected one line, the claim");
		return -1;
	}
	*nl = '\0';
	char *f[4] = { NULL, NULL, NULL, NULL };
	char *save = NULL, *p = buf;
	for (int i = 0; i < 4; i++, p = NULL)
		if (!(f[i] = strtok_r(p, " ", &save)))
			break;
	if (!f[0] || !f[1] || !f[2] || strtok_r(NULL, " ", &save) || !store_run_id_ok(f[0]) ||
	    !store_name_ok(f[1]) || (f[3] && !store_worker_id_ok(f[3]))) {
		cli_error("--standby: expected \"ID WORKSPACE AGENT [LEASE]\", got '%.80s'", buf);
		return -1;
	}
	snprintf(o->run_id, sizeof(o->run_id), "%s", f[0]);
	o->claim = true;
	o->workspace = f[1];
	o->ref = f[2];
	o->lease_owner = f[3];
	return 0;
}

enum view { VIEW_PROGRESS, VIEW_JSON, VIEW_NONE };

struct view_ctx {
	enum view view;
	bool color;
	struct cli_output out;
};

/* How `cordon run` shows each event as the run writes it. */
static void show_event(void *ctx, const char *line, size_t len)
{
	struct view_ctx *v = ctx;
	if (v->view == VIEW_PROGRESS)
		cli_output_flush(&v->out);
	if (v->view == VIEW_JSON) {
		fwrite(line, 1, len, stdout);
		fputc('\n', stdout);
		fflush(stdout);
	} else {
		cli_progress_event(line, len, v->color);
	}
}

/* The agent's output, live (progress view only: --json is events only). */
static void show_output(void *ctx, int fd, const char *p, size_t n)
{
	struct view_ctx *v = ctx;
	cli_output_write(&v->out, fd, p, n);
}

/* The end of a failed run's stderr: at most its last CLI_TAIL_BYTES. */
static void show_tail(const char *text, size_t len, bool cut, bool color)
{
	size_t off = len > CLI_TAIL_BYTES ? len - CLI_TAIL_BYTES : 0;
	cli_progress_stderr_tail(text + off, len - off, cut || off > 0, color);
}

static void show_local_tail(struct store *s, const char *id, bool color)
{
	char path[PATH_MAX];
	if (store_run_file(s, id, "stderr", path, sizeof(path), NULL) < 0)
		return;
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return;
	char buf[CLI_TAIL_BYTES];
	off_t off = st.st_size > (off_t)sizeof(buf) ? st.st_size - (off_t)sizeof(buf) : 0;
	ssize_t n = pread(fd, buf, sizeof(buf), off);
	if (n > 0)
		show_tail(buf, (size_t)n, off > 0, color);
}

/* ------------------------------------------------------------ the writer */

/*
 * What a local run shows goes through a queue to a thread of its own. The
 * run's loop (which also enforces its timeout) hands each event and each
 * piece of output over and goes on; only the writer blocks on a reader that
 * is slow or has stopped reading (`cordon run X | slow`). Past
 * VIEW_QUEUE_MAX bytes waiting, the rest is left out of the view, and the
 * writer says so at the end; the run's record keeps everything.
 */
#define VIEW_QUEUE_MAX (64u << 20)

struct view_item {
	struct view_item *next;
	int kind; /* 0: an event line; 1, 2: the agent's stdout, stderr */
	size_t len;
	char data[];
};

struct view_queue {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct view_item *head, *tail;
	size_t bytes;
	uint64_t dropped;
	bool done, started;
	pthread_t th;
	struct view_ctx *view;
};

static void view_put(struct view_queue *q, int kind, const char *p, size_t n)
{
	pthread_mutex_lock(&q->mu);
	struct view_item *it = NULL;
	if (q->bytes + n <= VIEW_QUEUE_MAX && (it = malloc(sizeof(*it) + n))) {
		it->next = NULL;
		it->kind = kind;
		it->len = n;
		memcpy(it->data, p, n);
		if (q->tail)
			q->tail->next = it;
		else
			q->head = it;
		q->tail = it;
		q->bytes += n;
		pthread_cond_signal(&q->cv);
	} else {
		q->dropped += n;
	}
	pthread_mutex_unlock(&q->mu);
}

static void *view_writer(void *arg)
{
	struct view_queue *q = arg;
	pthread_mutex_lock(&q->mu);
	for (;;) {
		while (!q->head && !q->done)
			pthread_cond_wait(&q->cv, &q->mu);
		struct view_item *it = q->head;
		if (!it)
			break;
		q->head = it->next;
		if (!q->head)
			q->tail = NULL;
		q->bytes -= it->len;
		pthread_mutex_unlock(&q->mu);
		if (it->kind == 0)
			show_event(q->view, it->data, it->len);
		else
			show_output(q->view, it->kind, it->data, it->len);
		free(it);
		pthread_mutex_lock(&q->mu);
	}
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

static void queue_event(void *ctx, const char *line, size_t len)
{
	view_put(ctx, 0, line, len);
}

static void queue_output(void *ctx, int fd, const char *p, size_t n)
{
	view_put(ctx, fd == 2 ? 2 : 1, p, n);
}

/* Waits for the writer to show all that is queued. */
static void view_finish(struct view_queue *q)
{
	if (!q->started)
		return;
	pthread_mutex_lock(&q->mu);
	q->done = true;
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mu);
	pthread_join(q->th, NULL);
	if (q->view->view == VIEW_PROGRESS)
		cli_output_flush(&q->view->out);
	if (q->dropped)
		cli_error("%llu bytes of the run's output and events were left out of this view: "
			  "its reader was too slow (the record has all of them: cordon logs, cordon "
			  "runs output)",
			  (unsigned long long)q->dropped);
}

/* ---------------------------------------------------------------- remote */

struct remote_view {
	struct view_ctx *view;
	struct view_queue *q; /* the writer, when something is shown */
	const char *run_id;
	struct events_reader rd;
	bool finished;
	char *end_line; /* run.finished, held: the output is shown before it */
	size_t end_len;
};

static void on_remote_line(void *ctx, const char *line, size_t len)
{
	struct remote_view *rv = ctx;
	struct events_head h;
	if (events_parse(line, len, &h, NULL) < 0 || strcmp(h.run_id, rv->run_id) != 0)
		return;
	bool end = events_is_end(&h, rv->run_id);
	if (end && rv->view->view == VIEW_PROGRESS && !rv->end_line &&
	    (rv->end_line = strndup(line, len)))
		rv->end_len = len;
	else if (rv->q)
		view_put(rv->q, 0, line, len);
	if (end)
		rv->finished = true;
}

static void on_remote_data(void *ctx, const char *p, size_t n)
{
	struct remote_view *rv = ctx;
	(void)events_reader_feed(&rv->rd, p, n, on_remote_line, rv);
}

/* One of a remote run's outputs, followed into the view. */
struct output_follower {
	struct view_queue *q;
	int fd;
	char path[160];
	pthread_t th;
	bool started;
};

static void on_output_data(void *ctx, const char *p, size_t n)
{
	struct output_follower *f = ctx;
	view_put(f->q, f->fd, p, n);
}

static void *follow_output(void *arg)
{
	struct output_follower *f = arg;
	struct cli_api_req rq = { .method = "GET", .path = f->path, .on_data = on_output_data,
				  .ctx = f, .stream_status = 200 };
	struct cli_api_resp rs;
	if (cli_api_call(&rq, &rs) == 0)
		cli_api_resp_free(&rs);
	return NULL;
}

/* Dispatches the run to cordon serve, follows its events to the end and
 * exits as a local run would. */
static int remote_run(const char *ref, const char *input_path, struct view_ctx *view)
{
	if (strchr(ref, '/')) {
		cli_error("run: %s is a directory; through cordon serve (CORDON_URL) only "
			  "registered agents run: register it first (cordon agent register "
			  "DIR)",
			  ref);
		return EXIT_CORDON;
	}
	_cleanup_free_ char *input = NULL;
	size_t input_len = 0;
	if (input_path && cli_read_input(input_path, &input, &input_len) < 0)
		return EXIT_CORDON;
	json_error_t jerr;
	json_t *in = input ? json_loadb(input, input_len, JSON_REJECT_DUPLICATES, &jerr)
			   : json_object();
	if (!in || !json_is_object(in)) {
		cli_error("input %s: not a JSON object%s%s", input_path, in ? "" : ": ",
			  in ? "" : jerr.text);
		json_decref(in);
		return EXIT_CORDON;
	}
	json_t *body = json_pack("{s:s, s:o}", "agent", ref, "input", in);
	struct cli_api_resp rs;
	int r = cli_api_json("POST", "/v1/runs", body, 202, &rs);
	json_decref(body);
	if (r < 0)
		return EXIT_CORDON;
	char id[STORE_RUN_ID_MAX + 1];
	const char *rid = json_string_value(json_object_get(rs.json, "id"));
	if (!rid || store_run_id_check(rid, NULL) < 0) {
		cli_error("the server's answer has no run id");
		cli_api_resp_free(&rs);
		return EXIT_CORDON;
	}
	snprintf(id, sizeof(id), "%s", rid);
	cli_api_resp_free(&rs);
	view->color = view->view == VIEW_PROGRESS && isatty(STDOUT_FILENO) && !getenv("NO_COLOR");
	if (view->view == VIEW_PROGRESS)
		fprintf(stderr, "cordon: run %s queued on %s\n", id, getenv("CORDON_URL"));

	/* The events until run.finished, and in the progress view the agent's
	 * stdout and stderr as the server's followers give them (the redacted
	 * copy, up to the run's capture): three streams, one writer. A stream
	 * cut short ends the view, and the record says how far the run got. */
	char path[256];
	struct view_queue q = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER,
				.view = view };
	struct remote_view rv = { .view = view, .run_id = id };
	struct output_follower outs[2] = { { .q = &q, .fd = 1 }, { .q = &q, .fd = 2 } };
	if (view->view == VIEW_PROGRESS)
		cli_output_init(&view->out, view->color);
	if (view->view != VIEW_NONE && pthread_create(&q.th, NULL, view_writer, &q) == 0) {
		q.started = true;
		rv.q = &q;
	}
	for (int k = 0; rv.q && view->view == VIEW_PROGRESS && k < 2; k++) {
		snprintf(outs[k].path, sizeof(outs[k].path), "/v1/runs/%s/%s?follow=1", id,
			 k ? "stderr" : "stdout");
		outs[k].started = pthread_create(&outs[k].th, NULL, follow_output, &outs[k]) == 0;
	}
	snprintf(path, sizeof(path), "/v1/runs/%s/events?follow=1", id);
	struct cli_api_req rq = { .method = "GET", .path = path, .on_data = on_remote_data,
				  .ctx = &rv };
	r = cli_api_call(&rq, &rs);
	events_reader_free(&rv.rd);
	if (r == 0)
		cli_api_resp_free(&rs);
	/* The followers end when the run does; then its last line. */
	for (int k = 0; k < 2; k++)
		if (outs[k].started)
			pthread_join(outs[k].th, NULL);
	if (rv.q && rv.end_line)
		view_put(&q, 0, rv.end_line, rv.end_len);
	view_finish(&q);
	free(rv.end_line);
	if (r < 0)
		return EXIT_CORDON;

	snprintf(path, sizeof(path), "/v1/runs/%s", id);
	if (cli_api_json("GET", path, NULL, 200, &rs) < 0)
		return EXIT_CORDON;
	struct run_outcome out = { .exit_code = -1, .status = RUN_ERROR };
	snprintf(out.id, sizeof(out.id), "%s", id);
	const char *st = json_string_value(json_object_get(rs.json, "status"));
	enum store_run_status status;
	if (st && store_run_status_parse(st, &status) == 0)
		out.status = status;
	out.exit_code = (int)json_integer_value(json_object_get(rs.json, "exit_code"));
	const char *error = json_string_value(json_object_get(rs.json, "error"));
	if (!rv.finished && view->view != VIEW_NONE) {
		char safe[512];
		cli_error("run %s: %s%s%s", id, st ? st : "unknown",
			  error ? ": " : "", error ? cdn_printable_str(safe, sizeof(safe), error,
								      CDN_TEXT_UTF8)
						   : "");
	}
	cli_api_resp_free(&rs);
	if (view->view == VIEW_PROGRESS && out.status != RUN_SUCCEEDED) {
		snprintf(path, sizeof(path), "/v1/runs/%s/stderr", id);
		struct cli_api_req oq = { .method = "GET", .path = path, .accept = "text/plain" };
		if (cli_api_call(&oq, &rs) == 0 && rs.status == 200 && rs.raw)
			show_tail(rs.raw, rs.raw_len, false, view->color);
		cli_api_resp_free(&rs);
	}
	if (!store_run_status_final(out.status)) {
		cli_error("run %s has not ended (%s); follow it with cordon logs -f %s", id,
			  st ? st : "unknown", id);
		return EXIT_CORDON;
	}
	return run_exit_code(&out);
}

int cmd_run(int argc, char **argv)
{
	enum { O_STATE = 256, O_JSON, O_POLICY, O_PRIVATE, O_HOSTS, O_CA, O_CAPTURE, O_DEGRADED,
	       O_CLAIM, O_STANDBY, O_BLOBS, O_LEASE, O_DEADLINE, O_CALL_DEPTH, O_CALLS, O_CALL_TREE };
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
		{ "standby", no_argument, NULL, O_STANDBY },
		{ "blobs", required_argument, NULL, O_BLOBS },
		{ "lease", required_argument, NULL, O_LEASE },
		{ "deadline", required_argument, NULL, O_DEADLINE },
		{ "max-call-depth", required_argument, NULL, O_CALL_DEPTH },
		{ "max-calls", required_argument, NULL, O_CALLS },
		{ "call-tree", required_argument, NULL, O_CALL_TREE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct run_options o = { 0 };
	struct view_ctx view = { .view = VIEW_PROGRESS };
	const char *local_only = NULL; /* the first option that only a local run has */
	const char *state = NULL, *input_path = NULL;
	const char *priv[MAX_ALLOW_PRIVATE];
	bool standby = false;
	struct cdn_err err = { 0 };
	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, "i:w:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			input_path = optarg;
			break;
		case 'w':
			o.workspace = optarg;
			break;
		case O_STATE:
			local_only = local_only ? local_only : "--state";
			state = optarg;
			break;
		case O_JSON:
			view.view = VIEW_JSON;
			break;
		case 'q':
			view.view = VIEW_NONE;
			break;
		case O_POLICY:
			local_only = local_only ? local_only : "--policy";
			o.policy_path = optarg;
			break;
		case O_PRIVATE:
			local_only = local_only ? local_only : "--allow-private";
			if (o.n_allow_private == MAX_ALLOW_PRIVATE) {
				cli_error("--allow-private: at most %d", MAX_ALLOW_PRIVATE);
				return EXIT_CORDON;
			}
			priv[o.n_allow_private++] = optarg;
			break;
		case O_HOSTS:
			local_only = local_only ? local_only : "--hosts";
			o.hosts_file = optarg;
			break;
		case O_CA:
			local_only = local_only ? local_only : "--upstream-ca";
			o.upstream_ca = optarg;
			break;
		case O_CAPTURE: {
			local_only = local_only ? local_only : "--capture";
			uint64_t v;
			if (cdn_parse_size(optarg, &v, &err) < 0 || v == 0 || v > (64u << 20)) {
				cli_error("--capture: '%s' is not a size from 1 byte to 64m", optarg);
				return EXIT_CORDON;
			}
			o.capture_bytes = (size_t)v;
			break;
		}
		case O_DEGRADED:
			local_only = local_only ? local_only : "--allow-degraded";
			if (sandbox_parse_degraded(optarg, &o.allow_degraded, &err) < 0) {
				return cli_fail(&err);
			}
			break;
		case O_BLOBS:
			/* Through the environment, where every store open reads it
			 * (docs/state.md). */
			local_only = local_only ? local_only : "--blobs";
			if (setenv("CORDON_BLOBS", optarg, 1) < 0) {
				cli_error("--blobs: %s", strerror(errno));
				return EXIT_CORDON;
			}
			break;
		case O_CLAIM:
			local_only = local_only ? local_only : "--claim";
			if (strlen(optarg) > STORE_RUN_ID_MAX) {
				cli_error("--claim: '%s' is not a run id", optarg);
				return EXIT_CORDON;
			}
			snprintf(o.run_id, sizeof(o.run_id), "%s", optarg);
			o.claim = true;
			break;
		case O_STANDBY:
			local_only = local_only ? local_only : "--standby";
			standby = true;
			break;
		case O_LEASE:
			local_only = local_only ? local_only : "--lease";
			if (!store_worker_id_ok(optarg)) {
				cli_error("--lease: '%s' is not a worker id", optarg);
				return EXIT_CORDON;
			}
			o.lease_owner = optarg;
			break;
		case O_DEADLINE:
		case O_CALL_DEPTH:
		case O_CALLS: {
			static const char *const names[] = { "--deadline", "--max-call-depth",
							     "--max-calls" };
			static const unsigned long long max[] = { 1ULL << 50, RUN_MAX_CALL_DEPTH,
								  RUN_MAX_MAX_CALLS };
			int k = c - O_DEADLINE;
			local_only = local_only ? local_only : names[k];
			char *end;
			errno = 0;
			unsigned long long v = strtoull(optarg, &end, 10);
			if (optarg[0] < '0' || optarg[0] > '9' || *end || errno || v > max[k] ||
			    (k > 0 && v == 0)) {
				cli_error("%s: '%s' is not a number from %d to %llu", names[k], optarg,
					  k ? 1 : 0, max[k]);
				return EXIT_CORDON;
			}
			if (k == 0)
				o.deadline_ms = (int64_t)v;
			else if (k == 1)
				o.max_call_depth = (unsigned)v;
			else
				o.max_calls = (unsigned)v;
			break;
		}
		case O_CALL_TREE:
			local_only = local_only ? local_only : "--call-tree";
			if (!run_call_tree_name_ok(optarg)) {
				cli_error("--call-tree: '%s' is not the name of a tree of calls",
					  optarg);
				return EXIT_CORDON;
			}
			o.call_tree = optarg;
			break;
		case 'h':
			run_usage(stdout);
			return 0;
		default:
			run_usage(stderr);
			return EXIT_CORDON;
		}
	}
	if (standby && (optind != argc || o.claim || input_path)) {
		cli_error("run: --standby takes its run from standard input: no AGENT, --claim "
			  "or -i");
		return EXIT_CORDON;
	}
	if (!standby && optind + 1 != argc) {
		if (optind == argc)
			cli_error("run: which agent? (a directory or NAME[@VERSION])");
		else
			cli_error("run: one agent at a time, and an agent takes no arguments ('%s' "
				  "after %s): its input is a JSON object, given with -i FILE",
				  argv[optind + 1], argv[optind]);
		return EXIT_CORDON;
	}
	o.ref = standby ? NULL : argv[optind];
	if (o.lease_owner && !o.claim) {
		cli_error("run: --lease goes with --claim");
		return EXIT_CORDON;
	}
	if (o.lease_owner && !cli_remote()) {
		/* The worker that holds the lease renews it and stops the run
		 * when it loses it; a run that outlived its worker would run on
		 * under a lease nobody renews, beside the retry of the run. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() == 1) {
			cli_error("run: its worker is gone");
			return EXIT_CORDON;
		}
	}
	if (cli_remote()) {
		if (local_only) {
			cli_error("run: %s is for a local run; CORDON_URL is set, so the run goes to "
				  "cordon serve, whose operator sets it (unset CORDON_URL to run "
				  "here)",
				  local_only);
			return EXIT_CORDON;
		}
		return remote_run(o.ref, input_path, &view);
	}
	if (!o.hosts_file && getenv("CORDON_HOSTS_FILE") && *getenv("CORDON_HOSTS_FILE"))
		o.hosts_file = getenv("CORDON_HOSTS_FILE");
	o.allow_private = priv;
	o.workspace = cli_workspace(o.workspace);
	view.color = view.view == VIEW_PROGRESS && isatty(STDOUT_FILENO) && !getenv("NO_COLOR");
	struct view_queue q = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER,
				.view = &view };
	if (view.view == VIEW_PROGRESS)
		cli_output_init(&view.out, view.color);
	if (view.view != VIEW_NONE) {
		if (pthread_create(&q.th, NULL, view_writer, &q) != 0) {
			cli_error("cannot start the thread that shows the run");
			return EXIT_CORDON;
		}
		q.started = true;
		o.on_event = queue_event;
		o.event_ctx = &q;
	}
	if (view.view == VIEW_PROGRESS) {
		o.on_output = queue_output;
		o.output_ctx = &q;
	}
	o.caller = cli_caller();

	_cleanup_free_ char *input = NULL;
	if (input_path && cli_read_input(input_path, &input, &o.input_len) < 0) {
		view_finish(&q);
		return EXIT_CORDON;
	}
	o.input = input;

	/* A reader that goes away (cordon run --json | head) must not end the
	 * run: writes to it fail instead, and the run is still recorded. */
	signal(SIGPIPE, SIG_IGN);
	/* A standby makes its warm sandbox first, before the vault's key is
	 * in this process: the sandbox's pid 1 is a copy of it. */
	if (standby) {
		struct sandbox_config shape;
		sandbox_config_init(&shape);
		shape.allow_degraded = o.allow_degraded;
		if (sandbox_warm_create(&shape, &o.warm, &err) < 0) {
			/* A run may be handed to us before we know: it starts
			 * cold, as it would have without a pool. */
			cli_error("run --standby: no warm sandbox here (%s); the run this "
				  "standby gets starts cold (serve --warm-pool 0 on such a host)",
				  err.msg);
			cdn_err_clear(&err);
			o.warm = NULL;
		}
	}
	struct store *s = NULL;
	struct vault *v = NULL;
	if (cli_open_state(state, &s, &v) < 0) {
		sandbox_free(o.warm);
		view_finish(&q);
		return EXIT_CORDON;
	}
	char claim[STANDBY_LINE_MAX];
	if (standby) {
		/* The part of the start that needs no run is done: the store and
		 * the vault are open, the sandbox waits. */
		int e = read_claim(STDIN_FILENO, claim, sizeof(claim), &o);
		/* Under a worker's lease, as with --lease: it dies with its worker. */
		if (e == 0 && o.lease_owner &&
		    (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() == 1)) {
			cli_error("run: its worker is gone");
			e = -1;
		}
		if (e != 0) {
			/* 1: the server closed the pool; nothing was claimed. */
			sandbox_free(o.warm);
			vault_close(v);
			view_finish(&q);
			store_close(s);
			return e > 0 ? 0 : EXIT_CORDON;
		}
	}
	struct run_outcome out;
	int r = run_agent(s, v, &o, &out, &err);
	/* A run that ended before its sandbox started leaves it unused. */
	sandbox_free(o.warm);
	o.warm = NULL;
	vault_close(v);
	view_finish(&q);
	if (r < 0) {
		store_close(s);
		return cli_fail(&err);
	}
	if (view.view == VIEW_PROGRESS && out.status != RUN_SUCCEEDED)
		show_local_tail(s, out.id, view.color);
	store_close(s);
	return run_exit_code(&out);
}
